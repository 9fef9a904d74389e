//! Roles.

use super::*;

fn role_input(name: &str) -> CreateRoleInput {
    CreateRoleInput {
        name: name.into(),
        assume_role_policy: TRUST_DOC.into(),
        ..Default::default()
    }
}

#[test]
fn create_get_list_roles() {
    let (mut t, mut ids) = tenant();
    let role = t
        .create_role(
            &mut ids,
            NOW,
            CreateRoleInput {
                path: Some("/service-role/".into()),
                description: Some("Runs the café's jobs".into()),
                max_session_duration: Some(43_200),
                tags: vec![tag("Team", "a")],
                ..role_input("Runner")
            },
        )
        .unwrap();
    assert_eq!(
        role.arn,
        "arn:aws:iam::111122223333:role/service-role/Runner"
    );
    assert!(role.role_id.starts_with("AROA"));
    assert_eq!(role.max_session_duration, 43_200);
    assert_eq!(role.sessions_revoked_before, None);
    add_role(&mut t, &mut ids, "other");
    assert_eq!(t.get_role("other").unwrap().max_session_duration, 3_600);
    assert_eq!(t.get_role("RUNNER").unwrap().name, "Runner");
    assert_eq!(t.list_roles(None).unwrap().len(), 2);
    assert_eq!(t.list_roles(Some("/service-role/")).unwrap().len(), 1);
    assert_eq!(
        t.get_role("x").unwrap_err(),
        DirectoryError::NoSuchEntity("The role with name x cannot be found.".into())
    );
}

#[test]
fn create_role_errors_change_nothing() {
    let (mut t, mut ids) = tenant();
    add_role(&mut t, &mut ids, "r");
    let cases = [
        (role_input("R"), "EntityAlreadyExists"),
        (role_input(&"r".repeat(65)), "ValidationError"),
        (
            CreateRoleInput {
                max_session_duration: Some(3_599),
                ..role_input("a")
            },
            "ValidationError",
        ),
        (
            CreateRoleInput {
                max_session_duration: Some(43_201),
                ..role_input("a")
            },
            "ValidationError",
        ),
        (
            CreateRoleInput {
                description: Some("€".into()),
                ..role_input("a")
            },
            "ValidationError",
        ),
        (
            CreateRoleInput {
                description: Some("d".repeat(1001)),
                ..role_input("a")
            },
            "ValidationError",
        ),
        (
            CreateRoleInput {
                assume_role_policy: IDENTITY_DOC.into(),
                ..role_input("a")
            },
            "MalformedPolicyDocument",
        ),
        (
            CreateRoleInput {
                assume_role_policy: "{".into(),
                ..role_input("a")
            },
            "MalformedPolicyDocument",
        ),
        (
            CreateRoleInput {
                permissions_boundary: Some("arn:aws:iam::aws:policy/Nope".into()),
                ..role_input("a")
            },
            "NoSuchEntity",
        ),
        (
            CreateRoleInput {
                tags: vec![tag("aws:x", "")],
                ..role_input("a")
            },
            "InvalidInput",
        ),
    ];
    for (input, expected) in cases {
        let err = fails(&mut t, |t| {
            t.create_role(&mut IdGenerator::seeded(5), NOW, input)
                .map(drop)
        });
        assert_eq!(err.code(), expected, "{err}");
    }
    t.quotas.roles = 1;
    assert_eq!(
        fails(&mut t, |t| t
            .create_role(&mut ids, NOW, role_input("b"))
            .map(drop))
        .to_string(),
        "Cannot exceed quota for RolesPerAccount: 1"
    );
}

#[test]
fn trust_policy_size_quota_is_the_tenants() {
    let (mut t, mut ids) = tenant();
    add_role(&mut t, &mut ids, "r");
    t.quotas.trust_policy_size = 50;
    let err = fails(&mut t, |t| t.update_assume_role_policy("r", TRUST_DOC));
    assert_eq!(err.code(), "LimitExceeded");
    assert_eq!(
        err.to_string(),
        "Cannot exceed quota for ACLSizePerRole: 50"
    );
    t.quotas.trust_policy_size = 4_096;
    let updated = TRUST_DOC.replace("ec2", "lambda");
    t.update_assume_role_policy("R", &updated).unwrap();
    assert_eq!(t.get_role("r").unwrap().assume_role_policy, updated);
    assert_eq!(
        fails(&mut t, |t| t.update_assume_role_policy("nope", TRUST_DOC)).code(),
        "NoSuchEntity"
    );
}

#[test]
fn update_role_and_revoke_sessions() {
    let (mut t, mut ids) = tenant();
    add_role(&mut t, &mut ids, "r");
    t.update_role("r", Some("new"), Some(7_200)).unwrap();
    let role = t.get_role("r").unwrap();
    assert_eq!(
        (role.description.as_deref(), role.max_session_duration),
        (Some("new"), 7_200)
    );
    t.update_role("r", None, None).unwrap();
    assert_eq!(
        fails(&mut t, |t| t.update_role("r", Some("ok"), Some(100))).code(),
        "ValidationError"
    );
    assert_eq!(
        fails(&mut t, |t| t.update_role("x", None, None)).code(),
        "NoSuchEntity"
    );
    t.revoke_sessions("R", NOW + 10).unwrap();
    assert_eq!(
        t.get_role("r").unwrap().sessions_revoked_before,
        Some(NOW + 10)
    );
    assert_eq!(
        fails(&mut t, |t| t.revoke_sessions("x", NOW)).code(),
        "NoSuchEntity"
    );
}

#[test]
fn delete_role_conflicts() {
    let (mut t, mut ids) = tenant();
    add_role(&mut t, &mut ids, "r");
    t.put_role_policy("r", "p", IDENTITY_DOC).unwrap();
    t.attach_role_policy("r", "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        .unwrap();
    assert_eq!(
        fails(&mut t, |t| t.delete_role("r")).to_string(),
        "Cannot delete entity, must delete policies first."
    );
    t.delete_role_policy("r", "p").unwrap();
    assert_eq!(
        fails(&mut t, |t| t.delete_role("r")).to_string(),
        "Cannot delete entity, must detach all policies first."
    );
    t.detach_role_policy("r", "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        .unwrap();
    t.delete_role("R").unwrap();
    assert_eq!(t.delete_role("r").unwrap_err().code(), "NoSuchEntity");
}

#[test]
fn role_tags() {
    let (mut t, mut ids) = tenant();
    add_role(&mut t, &mut ids, "r");
    t.tag_role("r", &[tag("Env", "prod")]).unwrap();
    t.tag_role("r", &[tag("ENV", "dev"), tag("x", "")]).unwrap();
    assert_eq!(
        t.list_role_tags("r").unwrap(),
        [tag("ENV", "dev"), tag("x", "")]
    );
    t.untag_role("r", &["env".into()]).unwrap();
    assert_eq!(t.list_role_tags("r").unwrap(), [tag("x", "")]);
    t.quotas.tags_per_entity = 1;
    assert_eq!(
        fails(&mut t, |t| t.tag_role("r", &[tag("y", "")])).to_string(),
        "Cannot exceed quota for TagsPerRole: 1"
    );
    assert_eq!(
        fails(&mut t, |t| t.tag_role("r", &[tag("y", "\u{7}")])).code(),
        "ValidationError"
    );
}
