//! Users and user tags.

use super::*;
use crate::directory::{AccessKeyStatus, PasswordHasher};

#[test]
fn create_get_list_users() {
    let (mut t, mut ids) = tenant();
    let user = t
        .create_user(
            &mut ids,
            NOW,
            CreateUserInput {
                name: "Alice".into(),
                path: Some("/eng/".into()),
                permissions_boundary: Some("arn:aws:iam::aws:policy/PowerUserAccess".into()),
                tags: vec![tag("team", "blue")],
            },
        )
        .unwrap();
    assert_eq!(user.arn, "arn:aws:iam::111122223333:user/eng/Alice");
    assert!(user.user_id.starts_with("AIDA") && user.user_id.len() == 21);
    assert_eq!(user.created_at, NOW);
    add_user(&mut t, &mut ids, "bob");
    assert_eq!(t.users["bob"].arn, "arn:aws:iam::111122223333:user/bob");

    // Case-insensitive lookups, case-preserving names.
    assert_eq!(t.get_user("ALICE").unwrap().name, "Alice");
    assert_eq!(
        t.get_user("carol").unwrap_err(),
        DirectoryError::NoSuchEntity("The user with name carol cannot be found.".into())
    );
    let names = |users: Vec<&crate::directory::User>| {
        users.iter().map(|u| u.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(t.list_users(None).unwrap()), ["Alice", "bob"]);
    assert_eq!(names(t.list_users(Some("/eng")).unwrap()), ["Alice"]);
    assert_eq!(
        t.list_users(Some("eng")).unwrap_err().code(),
        "ValidationError"
    );
}

#[test]
fn create_user_errors_change_nothing() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    let mut create = |input: CreateUserInput| {
        let mut ids = IdGenerator::seeded(2);
        fails(&mut t, |t| t.create_user(&mut ids, NOW, input).map(drop))
    };
    let err = create(CreateUserInput {
        name: "ALICE".into(),
        ..Default::default()
    });
    assert_eq!(
        err,
        DirectoryError::EntityAlreadyExists("User with name ALICE already exists.".into())
    );
    for (input, expected) in [
        (
            CreateUserInput {
                name: "bad name".into(),
                ..Default::default()
            },
            "ValidationError",
        ),
        (
            CreateUserInput {
                name: "x".repeat(65),
                ..Default::default()
            },
            "ValidationError",
        ),
        (
            CreateUserInput {
                name: "ok".into(),
                path: Some("nope".into()),
                ..Default::default()
            },
            "ValidationError",
        ),
        (
            CreateUserInput {
                name: "ok".into(),
                tags: vec![tag("aws:x", "")],
                ..Default::default()
            },
            "InvalidInput",
        ),
        (
            CreateUserInput {
                name: "ok".into(),
                permissions_boundary: Some("arn:aws:iam::111122223333:policy/missing".into()),
                ..Default::default()
            },
            "NoSuchEntity",
        ),
    ] {
        assert_eq!(create(input).code(), expected);
    }
    t.quotas.users = 1;
    let err = fails(&mut t, |t| {
        t.create_user(
            &mut ids,
            NOW,
            CreateUserInput {
                name: "bob".into(),
                ..Default::default()
            },
        )
        .map(drop)
    });
    assert_eq!(
        err,
        DirectoryError::LimitExceeded("Cannot exceed quota for UsersPerAccount: 1".into())
    );
}

#[test]
fn rename_keeps_id_and_moves_memberships_and_devices() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    add_user(&mut t, &mut ids, "bob");
    t.create_group(&mut ids, NOW, "Admins", None).unwrap();
    t.add_user_to_group("admins", "alice").unwrap();
    let device = t
        .create_virtual_mfa_device(&mut ids, "phone", None)
        .unwrap();
    let seed = device.seed.expose().to_owned();
    let step = crate::directory::totp::time_step(NOW);
    let c1 = crate::directory::totp::code_at_step(&seed, step - 1).unwrap();
    let c2 = crate::directory::totp::code_at_step(&seed, step).unwrap();
    t.enable_mfa_device("alice", &device.serial_number, &c1, &c2, NOW)
        .unwrap();
    let id = t.get_user("alice").unwrap().user_id.clone();

    assert_eq!(
        fails(&mut t, |t| t.update_user("alice", Some("BOB"), None)).code(),
        "EntityAlreadyExists"
    );
    assert_eq!(
        fails(&mut t, |t| t.update_user("alice", Some("a b"), None)).code(),
        "ValidationError"
    );
    assert_eq!(
        fails(&mut t, |t| t.update_user("alice", None, Some("x"))).code(),
        "ValidationError"
    );
    assert_eq!(
        fails(&mut t, |t| t.update_user("nobody", Some("x"), None)).code(),
        "NoSuchEntity"
    );

    t.update_user("alice", Some("Alicia"), Some("/ops/"))
        .unwrap();
    assert!(t.get_user("alice").is_err());
    let renamed = t.get_user("alicia").unwrap();
    assert_eq!(renamed.user_id, id);
    assert_eq!(renamed.arn, "arn:aws:iam::111122223333:user/ops/Alicia");
    let (_, members) = t.get_group("Admins").unwrap();
    assert_eq!(
        members.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["Alicia"]
    );
    assert_eq!(
        t.mfa_devices[&device.serial_number].user.as_deref(),
        Some("Alicia")
    );
    assert_eq!(t.list_mfa_devices("alicia").unwrap()[0].user_name, "Alicia");

    // A change of case only is a rename too.
    t.update_user("alicia", Some("ALICIA"), None).unwrap();
    assert_eq!(t.get_user("alicia").unwrap().name, "ALICIA");
}

#[test]
fn delete_user_requires_removing_dependents_first() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    t.create_group(&mut ids, NOW, "g", None).unwrap();
    let hasher = PasswordHasher::with_iterations(1);
    t.create_login_profile(&mut ids, &hasher, NOW, "alice", "Passw0rd!", false)
        .unwrap();
    let key = t.create_access_key(&mut ids, NOW, "alice").unwrap();
    t.put_user_policy("alice", "inline", IDENTITY_DOC).unwrap();
    t.attach_user_policy("alice", "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        .unwrap();
    t.add_user_to_group("g", "alice").unwrap();

    let mut expect = |message: &str| {
        assert_eq!(
            fails(&mut t, |t| t.delete_user("alice")),
            DirectoryError::DeleteConflict(message.into())
        );
    };
    expect("Cannot delete entity, must delete login profile first.");
    t.delete_login_profile("alice").unwrap();
    let expect = |t: &mut Tenant, message: &str| {
        assert_eq!(
            fails(t, |t| t.delete_user("alice")),
            DirectoryError::DeleteConflict(message.into())
        );
    };
    expect(
        &mut t,
        "Cannot delete entity, must delete access keys first.",
    );
    t.update_access_key("alice", &key.access_key_id, AccessKeyStatus::Inactive)
        .unwrap();
    t.delete_access_key("alice", &key.access_key_id).unwrap();
    expect(&mut t, "Cannot delete entity, must delete policies first.");
    t.delete_user_policy("alice", "inline").unwrap();
    expect(
        &mut t,
        "Cannot delete entity, must detach all policies first.",
    );
    t.detach_user_policy("alice", "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        .unwrap();
    expect(
        &mut t,
        "Cannot delete entity, must remove user from all groups first.",
    );
    t.remove_user_from_group("g", "alice").unwrap();
    t.delete_user("ALICE").unwrap();
    assert!(t.users.is_empty());
    assert_eq!(t.delete_user("alice").unwrap_err().code(), "NoSuchEntity");
}

#[test]
fn delete_user_with_mfa_device_conflicts() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    let device = t
        .create_virtual_mfa_device(&mut ids, "phone", None)
        .unwrap();
    let step = crate::directory::totp::time_step(NOW);
    let code = |s| crate::directory::totp::code_at_step(device.seed.expose(), s).unwrap();
    t.enable_mfa_device(
        "alice",
        &device.serial_number,
        &code(step - 1),
        &code(step),
        NOW,
    )
    .unwrap();
    assert_eq!(
        fails(&mut t, |t| t.delete_user("alice")).to_string(),
        "Cannot delete entity, must delete MFA device first."
    );
    t.deactivate_mfa_device("alice", &device.serial_number)
        .unwrap();
    t.delete_user("alice").unwrap();
}

#[test]
fn user_tags_are_case_insensitive_and_case_preserving() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    t.tag_user("alice", &[tag("Department", "eng"), tag("cost", "1")])
        .unwrap();
    t.tag_user("alice", &[tag("department", "ops")]).unwrap();
    assert_eq!(
        t.list_user_tags("alice").unwrap(),
        [tag("department", "ops"), tag("cost", "1")]
    );
    t.untag_user("alice", &["COST".into(), "absent".into()])
        .unwrap();
    assert_eq!(
        t.list_user_tags("alice").unwrap(),
        [tag("department", "ops")]
    );

    assert_eq!(
        fails(&mut t, |t| t.tag_user("alice", &[tag("aws:k", "v")])).code(),
        "InvalidInput"
    );
    assert_eq!(
        fails(&mut t, |t| t
            .tag_user("alice", &[tag("a", "1"), tag("A", "2")]))
        .code(),
        "InvalidInput"
    );
    assert_eq!(
        fails(&mut t, |t| t.tag_user("nobody", &[tag("a", "1")])).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.untag_user("alice", &[String::new()])).code(),
        "ValidationError"
    );
    t.quotas.tags_per_entity = 2;
    t.tag_user("alice", &[tag("DEPARTMENT", "x"), tag("b", "")])
        .unwrap();
    assert_eq!(
        fails(&mut t, |t| t.tag_user("alice", &[tag("c", "")])),
        DirectoryError::LimitExceeded("Cannot exceed quota for TagsPerUser: 2".into())
    );
}
