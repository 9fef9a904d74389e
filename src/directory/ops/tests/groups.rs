//! Groups and membership.

use super::*;

#[test]
fn create_get_list_update_groups() {
    let (mut t, mut ids) = tenant();
    let g = t
        .create_group(&mut ids, NOW, "Admins", Some("/it/"))
        .unwrap();
    assert_eq!(g.arn, "arn:aws:iam::111122223333:group/it/Admins");
    assert!(g.group_id.starts_with("AGPA"));
    t.create_group(&mut ids, NOW, &"g".repeat(128), None)
        .unwrap();
    assert_eq!(
        fails(&mut t, |t| t
            .create_group(&mut IdGenerator::seeded(3), NOW, "admins", None)
            .map(drop)),
        DirectoryError::EntityAlreadyExists("Group with name admins already exists.".into())
    );
    assert_eq!(
        fails(&mut t, |t| t
            .create_group(&mut IdGenerator::seeded(3), NOW, &"g".repeat(129), None)
            .map(drop))
        .code(),
        "ValidationError"
    );
    assert_eq!(
        t.get_group("nope").unwrap_err(),
        DirectoryError::NoSuchEntity("The group with name nope cannot be found.".into())
    );
    assert_eq!(t.list_groups(None).unwrap().len(), 2);
    assert_eq!(t.list_groups(Some("/it/")).unwrap().len(), 1);

    add_user(&mut t, &mut ids, "alice");
    t.add_user_to_group("ADMINS", "Alice").unwrap();
    t.add_user_to_group("admins", "alice").unwrap(); // again: no change
    assert_eq!(t.get_user("alice").unwrap().groups, ["Admins"]);
    assert_eq!(t.list_groups_for_user("alice").unwrap()[0].name, "Admins");

    assert_eq!(
        fails(&mut t, |t| t.update_group(
            "admins",
            Some(&"g".repeat(128)),
            None
        ))
        .code(),
        "EntityAlreadyExists"
    );
    t.update_group("admins", Some("Operators"), Some("/ops/"))
        .unwrap();
    let (group, members) = t.get_group("operators").unwrap();
    assert_eq!(group.arn, "arn:aws:iam::111122223333:group/ops/Operators");
    assert_eq!(members.len(), 1);
    assert_eq!(t.get_user("alice").unwrap().groups, ["Operators"]);
    assert!(t.get_group("admins").is_err());
}

#[test]
fn membership_quota_and_removal() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    t.quotas.groups_per_user = 2;
    for g in ["a", "b", "c"] {
        t.create_group(&mut ids, NOW, g, None).unwrap();
    }
    t.add_user_to_group("a", "alice").unwrap();
    t.add_user_to_group("b", "alice").unwrap();
    assert_eq!(
        fails(&mut t, |t| t.add_user_to_group("c", "alice")),
        DirectoryError::LimitExceeded("Cannot exceed quota for GroupsPerUser: 2".into())
    );
    assert_eq!(
        fails(&mut t, |t| t.add_user_to_group("zz", "alice")).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.add_user_to_group("c", "zz")).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.remove_user_from_group("c", "alice")).code(),
        "NoSuchEntity"
    );
    t.remove_user_from_group("A", "alice").unwrap();
    assert_eq!(t.get_user("alice").unwrap().groups, ["b"]);
    t.add_user_to_group("c", "alice").unwrap();
}

#[test]
fn delete_group_conflicts() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    t.create_group(&mut ids, NOW, "g", None).unwrap();
    t.add_user_to_group("g", "alice").unwrap();
    t.put_group_policy("g", "p", IDENTITY_DOC).unwrap();
    t.attach_group_policy("g", "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        .unwrap();
    let conflict = |t: &mut Tenant| fails(t, |t| t.delete_group("g")).to_string();
    assert_eq!(
        conflict(&mut t),
        "Cannot delete entity, must remove users from group first."
    );
    t.remove_user_from_group("g", "alice").unwrap();
    assert_eq!(
        conflict(&mut t),
        "Cannot delete entity, must delete policies first."
    );
    t.delete_group_policy("g", "p").unwrap();
    assert_eq!(
        conflict(&mut t),
        "Cannot delete entity, must detach all policies first."
    );
    t.detach_group_policy("g", "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        .unwrap();
    t.delete_group("G").unwrap();
    assert!(t.groups.is_empty());
}

#[test]
fn group_quota() {
    let (mut t, mut ids) = tenant();
    t.quotas.groups = 1;
    t.create_group(&mut ids, NOW, "a", None).unwrap();
    assert_eq!(
        fails(&mut t, |t| t
            .create_group(&mut IdGenerator::seeded(2), NOW, "b", None)
            .map(drop)),
        DirectoryError::LimitExceeded("Cannot exceed quota for GroupsPerAccount: 1".into())
    );
}
