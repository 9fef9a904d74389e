//! Managed policies, versions, attachments, inline policies and boundaries.

use super::*;
use crate::directory::{AttachedPolicy, CreatePolicyInput};

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const P_ARN: &str = "arn:aws:iam::111122223333:policy/teams/ReadS3";

fn policy_input(name: &str) -> CreatePolicyInput {
    CreatePolicyInput {
        name: name.into(),
        document: IDENTITY_DOC.into(),
        ..Default::default()
    }
}

fn with_policy() -> (Tenant, IdGenerator) {
    let (mut t, mut ids) = tenant();
    t.create_policy(
        &mut ids,
        NOW,
        CreatePolicyInput {
            path: Some("/teams/".into()),
            description: Some("read".into()),
            tags: vec![tag("a", "1"), tag("A", "2")],
            ..policy_input("ReadS3")
        },
    )
    .unwrap();
    (t, ids)
}

#[test]
fn create_and_get_policy() {
    let (mut t, mut ids) = with_policy();
    let p = t.get_policy(P_ARN).unwrap();
    assert!(p.policy_id.starts_with("ANPA"));
    assert_eq!(
        (
            p.default_version_id.as_str(),
            p.versions.len(),
            p.next_version
        ),
        ("v1", 1, 2)
    );
    assert_eq!(p.versions[0].document, IDENTITY_DOC);
    assert_eq!(p.tags.len(), 2, "policy tag keys are case-sensitive");
    assert_eq!(t.list_policies(None).unwrap().len(), 1);
    assert_eq!(t.list_policies(Some("/other/")).unwrap().len(), 0);
    assert_eq!(
        t.get_policy("arn:aws:iam::111122223333:policy/ReadS3")
            .unwrap_err()
            .to_string(),
        "Policy arn:aws:iam::111122223333:policy/ReadS3 was not found."
    );

    let cases = [
        (policy_input("reads3"), "EntityAlreadyExists"),
        (policy_input("bad name"), "ValidationError"),
        (
            CreatePolicyInput {
                path: Some("/a*/".into()),
                ..policy_input("x")
            },
            "ValidationError",
        ),
        (
            CreatePolicyInput {
                description: Some("d".repeat(1001)),
                ..policy_input("x")
            },
            "ValidationError",
        ),
        (
            CreatePolicyInput {
                document: TRUST_DOC.into(),
                ..policy_input("x")
            },
            "MalformedPolicyDocument",
        ),
        (
            // Managed policies must be version 2012-10-17.
            CreatePolicyInput {
                document: IDENTITY_DOC.replace("2012-10-17", "2008-10-17"),
                ..policy_input("x")
            },
            "MalformedPolicyDocument",
        ),
    ];
    for (input, expected) in cases {
        let err = fails(&mut t, |t| {
            t.create_policy(&mut IdGenerator::seeded(9), NOW, input)
                .map(drop)
        });
        assert_eq!(err.code(), expected, "{err}");
    }
    assert_eq!(
        fails(&mut t, |t| t
            .create_policy(&mut IdGenerator::seeded(9), NOW, policy_input("READS3"))
            .map(drop))
        .to_string(),
        "A policy called READS3 already exists. Duplicate names are not allowed."
    );
    t.quotas.managed_policy_size = 40;
    assert_eq!(
        fails(&mut t, |t| t
            .create_policy(&mut ids, NOW, policy_input("big"))
            .map(drop))
        .to_string(),
        "Cannot exceed quota for PolicySize: 40"
    );
    t.quotas.managed_policy_size = 6_144;
    t.quotas.policies = 1;
    assert_eq!(
        fails(&mut t, |t| t
            .create_policy(&mut ids, NOW, policy_input("two"))
            .map(drop))
        .code(),
        "LimitExceeded"
    );
}

#[test]
fn versions() {
    let (mut t, _) = with_policy();
    let doc2 = IDENTITY_DOC.replace("GetObject", "PutObject");
    let v2 = t
        .create_policy_version(P_ARN, &doc2, false, NOW + 1)
        .unwrap();
    assert_eq!(v2.version_id, "v2");
    assert_eq!(t.get_policy(P_ARN).unwrap().default_version_id, "v1");
    t.create_policy_version(P_ARN, &doc2, true, NOW + 2)
        .unwrap();
    let p = t.get_policy(P_ARN).unwrap();
    assert_eq!(
        (p.default_version_id.as_str(), p.updated_at),
        ("v3", NOW + 2)
    );
    assert_eq!(t.managed_policy_document(P_ARN), Some(doc2.as_str()));
    t.create_policy_version(P_ARN, IDENTITY_DOC, false, NOW)
        .unwrap();
    t.create_policy_version(P_ARN, IDENTITY_DOC, false, NOW)
        .unwrap();
    assert_eq!(t.list_policy_versions(P_ARN).unwrap().len(), 5);
    assert_eq!(
        fails(&mut t, |t| t.create_policy_version(P_ARN, IDENTITY_DOC, true, NOW).map(drop)),
        DirectoryError::LimitExceeded(
            "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.".into()
        )
    );
    assert_eq!(
        fails(&mut t, |t| t.delete_policy_version(P_ARN, "v3")).to_string(),
        "Cannot delete the default version of the policy."
    );
    assert_eq!(
        fails(&mut t, |t| t.delete_policy_version(P_ARN, "v9")).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.delete_policy_version(P_ARN, "x1")).code(),
        "ValidationError"
    );
    t.delete_policy_version(P_ARN, "v1").unwrap();
    let v6 = t
        .create_policy_version(P_ARN, IDENTITY_DOC, false, NOW)
        .unwrap();
    assert_eq!(v6.version_id, "v6", "version numbers are never reused");
    assert_eq!(t.get_policy_version(P_ARN, "v2").unwrap().document, doc2);
    assert_eq!(
        t.get_policy_version(P_ARN, "v1").unwrap_err().to_string(),
        format!("Policy {P_ARN} version v1 does not exist or is not attachable.")
    );
    t.set_default_policy_version(P_ARN, "v2", NOW + 5).unwrap();
    assert_eq!(t.get_policy(P_ARN).unwrap().default_version_id, "v2");
    assert_eq!(
        fails(&mut t, |t| t.set_default_policy_version(P_ARN, "v1", NOW)).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t
            .create_policy_version(P_ARN, TRUST_DOC, false, NOW)
            .map(drop))
        .code(),
        "MalformedPolicyDocument"
    );
}

#[test]
fn aws_managed_policies_are_read_only() {
    let (mut t, _) = with_policy();
    for err in [
        fails(&mut t, |t| {
            t.create_policy_version(ADMIN, IDENTITY_DOC, true, NOW)
                .map(drop)
        }),
        fails(&mut t, |t| t.delete_policy(ADMIN)),
        fails(&mut t, |t| t.delete_policy_version(ADMIN, "v1")),
        fails(&mut t, |t| t.set_default_policy_version(ADMIN, "v1", NOW)),
        fails(&mut t, |t| t.tag_policy(ADMIN, &[tag("a", "")])),
    ] {
        assert_eq!(err.code(), "UnmodifiableEntity", "{err}");
    }
    let unknown = "arn:aws:iam::aws:policy/NotInTheCatalog";
    assert_eq!(
        fails(&mut t, |t| t.delete_policy(unknown)).code(),
        "NoSuchEntity"
    );
    assert_eq!(t.get_policy(ADMIN).unwrap_err().code(), "NoSuchEntity");
}

#[test]
fn delete_policy_conflicts() {
    let (mut t, mut ids) = with_policy();
    add_role(&mut t, &mut ids, "r");
    add_user(&mut t, &mut ids, "u");
    t.attach_role_policy("r", P_ARN).unwrap();
    assert_eq!(t.policy_attachment_count(P_ARN), 1);
    assert_eq!(
        fails(&mut t, |t| t.delete_policy(P_ARN)).to_string(),
        "Cannot delete a policy attached to entities."
    );
    t.detach_role_policy("r", P_ARN).unwrap();
    t.put_user_permissions_boundary("u", P_ARN).unwrap();
    assert_eq!(t.policy_boundary_usage_count(P_ARN), 1);
    assert_eq!(
        fails(&mut t, |t| t.delete_policy(P_ARN)).code(),
        "DeleteConflict"
    );
    t.delete_user_permissions_boundary("u").unwrap();
    t.create_policy_version(P_ARN, IDENTITY_DOC, true, NOW)
        .unwrap();
    assert!(fails(&mut t, |t| t.delete_policy(P_ARN))
        .to_string()
        .starts_with("This policy has more than one version."));
    t.delete_policy_version(P_ARN, "v1").unwrap();
    t.delete_policy(P_ARN).unwrap();
    assert!(t.policies.is_empty());
    assert_eq!(t.delete_policy(P_ARN).unwrap_err().code(), "NoSuchEntity");
}

#[test]
fn policy_tags() {
    let (mut t, _) = with_policy();
    t.tag_policy(P_ARN, &[tag("a", "9"), tag("b", "")]).unwrap();
    assert_eq!(
        t.list_policy_tags(P_ARN).unwrap(),
        [tag("a", "9"), tag("A", "2"), tag("b", "")]
    );
    t.untag_policy(P_ARN, &["A".into()]).unwrap();
    assert_eq!(
        t.list_policy_tags(P_ARN).unwrap(),
        [tag("a", "9"), tag("b", "")]
    );
    assert_eq!(
        fails(&mut t, |t| t.tag_policy(P_ARN, &[tag("aws:x", "")])).code(),
        "InvalidInput"
    );
}

#[test]
fn attachments() {
    let (mut t, mut ids) = with_policy();
    add_user(&mut t, &mut ids, "u");
    add_role(&mut t, &mut ids, "r");
    t.create_group(&mut ids, NOW, "g", None).unwrap();
    t.attach_user_policy("U", P_ARN).unwrap();
    t.attach_user_policy("u", P_ARN).unwrap(); // no-op
    t.attach_user_policy("u", ADMIN).unwrap();
    assert_eq!(
        t.list_attached_user_policies("u").unwrap(),
        [
            AttachedPolicy {
                policy_name: "ReadS3".into(),
                policy_arn: P_ARN.into()
            },
            AttachedPolicy {
                policy_name: "AdministratorAccess".into(),
                policy_arn: ADMIN.into()
            },
        ]
    );
    t.attach_group_policy("g", ADMIN).unwrap();
    t.attach_role_policy("r", ADMIN).unwrap();
    assert_eq!(t.list_attached_group_policies("g").unwrap().len(), 1);
    assert_eq!(t.list_attached_role_policies("r").unwrap().len(), 1);
    assert_eq!(t.policy_attachment_count(ADMIN), 3);

    let missing = "arn:aws:iam::111122223333:policy/Nope";
    assert_eq!(
        fails(&mut t, |t| t.attach_role_policy("r", missing)).to_string(),
        format!("Policy {missing} does not exist or is not attachable.")
    );
    // A policy of another account is not attachable.
    assert_eq!(
        fails(&mut t, |t| t.attach_role_policy(
            "r",
            "arn:aws:iam::999999999999:policy/teams/ReadS3"
        ))
        .code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.attach_role_policy("nobody", ADMIN)).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.detach_group_policy("g", P_ARN)).to_string(),
        format!("Policy {P_ARN} was not found.")
    );
    t.quotas.attached_per_user_or_role = 1;
    t.quotas.attached_per_group = 1;
    assert_eq!(
        fails(&mut t, |t| t.attach_role_policy("r", P_ARN)).to_string(),
        "Cannot exceed quota for PoliciesPerRole: 1"
    );
    assert_eq!(
        fails(&mut t, |t| t.attach_group_policy("g", P_ARN)).to_string(),
        "Cannot exceed quota for PoliciesPerGroup: 1"
    );
    assert_eq!(
        fails(&mut t, |t| t.attach_user_policy(
            "u",
            "arn:aws:iam::aws:policy/IAMFullAccess"
        ))
        .to_string(),
        "Cannot exceed quota for PoliciesPerUser: 1"
    );
    t.detach_user_policy("u", ADMIN).unwrap();
    t.detach_group_policy("g", ADMIN).unwrap();
    assert_eq!(t.list_attached_user_policies("u").unwrap().len(), 1);
    assert!(t.list_attached_group_policies("g").unwrap().is_empty());
}

#[test]
fn inline_policies() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    add_role(&mut t, &mut ids, "r");
    t.create_group(&mut ids, NOW, "g", None).unwrap();
    t.put_user_policy("alice", "b", IDENTITY_DOC).unwrap();
    // Inline policies may be any version.
    let legacy = r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    t.put_user_policy("alice", "a", legacy).unwrap();
    assert_eq!(t.list_user_policies("alice").unwrap(), ["a", "b"]);
    assert_eq!(t.get_user_policy("ALICE", "a").unwrap(), legacy);
    t.put_user_policy("alice", "a", IDENTITY_DOC).unwrap(); // replace
    assert_eq!(t.get_user_policy("alice", "a").unwrap(), IDENTITY_DOC);
    assert_eq!(
        t.get_user_policy("alice", "zz").unwrap_err().to_string(),
        "The user policy with name zz cannot be found."
    );
    assert_eq!(
        fails(&mut t, |t| t.put_user_policy(
            "alice",
            "bad name",
            IDENTITY_DOC
        ))
        .code(),
        "ValidationError"
    );
    assert_eq!(
        fails(&mut t, |t| t.put_user_policy("alice", "c", TRUST_DOC)).code(),
        "MalformedPolicyDocument"
    );
    assert_eq!(
        fails(&mut t, |t| t.put_user_policy("nobody", "c", IDENTITY_DOC)).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.delete_user_policy("alice", "zz")).code(),
        "NoSuchEntity"
    );

    t.put_group_policy("g", "p", IDENTITY_DOC).unwrap();
    t.put_role_policy("r", "p", IDENTITY_DOC).unwrap();
    assert_eq!(t.get_group_policy("g", "p").unwrap(), IDENTITY_DOC);
    assert_eq!(t.get_role_policy("r", "p").unwrap(), IDENTITY_DOC);
    assert_eq!(t.list_group_policies("g").unwrap(), ["p"]);
    assert_eq!(t.list_role_policies("r").unwrap(), ["p"]);
    assert_eq!(
        t.get_role_policy("r", "q").unwrap_err().to_string(),
        "The role policy with name q cannot be found."
    );
}

#[test]
fn inline_policy_sizes_are_aggregate() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    add_role(&mut t, &mut ids, "Runner");
    t.create_group(&mut ids, NOW, "g", None).unwrap();
    let size = crate::policy::non_whitespace_len(IDENTITY_DOC);
    t.quotas.user_inline_size = 2 * size;
    t.quotas.role_inline_size = size;
    t.quotas.group_inline_size = size;
    t.put_user_policy("alice", "one", IDENTITY_DOC).unwrap();
    t.put_user_policy("alice", "two", IDENTITY_DOC).unwrap();
    // Replacing a policy counts its new size, not both.
    t.put_user_policy("alice", "two", IDENTITY_DOC).unwrap();
    assert_eq!(
        fails(&mut t, |t| t.put_user_policy(
            "alice",
            "three",
            IDENTITY_DOC
        ))
        .to_string(),
        format!(
            "Maximum policy size of {} bytes exceeded for user alice",
            2 * size
        )
    );
    t.put_role_policy("runner", "one", IDENTITY_DOC).unwrap();
    assert_eq!(
        fails(&mut t, |t| t.put_role_policy("runner", "two", IDENTITY_DOC)).to_string(),
        format!("Maximum policy size of {size} bytes exceeded for role Runner")
    );
    t.put_group_policy("g", "one", IDENTITY_DOC).unwrap();
    assert_eq!(
        fails(&mut t, |t| t.put_group_policy("g", "two", IDENTITY_DOC)).code(),
        "LimitExceeded"
    );
    // Whitespace does not count.
    let spaced = IDENTITY_DOC.replace(',', " ,\n\t ");
    t.put_group_policy("g", "one", &spaced).unwrap();
}

#[test]
fn permissions_boundaries() {
    let (mut t, mut ids) = with_policy();
    add_user(&mut t, &mut ids, "u");
    add_role(&mut t, &mut ids, "r");
    t.put_user_permissions_boundary("u", P_ARN).unwrap();
    t.put_role_permissions_boundary("r", ADMIN).unwrap();
    assert_eq!(
        t.get_user("u").unwrap().permissions_boundary.as_deref(),
        Some(P_ARN)
    );
    assert_eq!(
        t.get_role("r").unwrap().permissions_boundary.as_deref(),
        Some(ADMIN)
    );
    let missing = "arn:aws:iam::111122223333:policy/none";
    assert_eq!(
        fails(&mut t, |t| t.put_role_permissions_boundary("r", missing)).to_string(),
        format!("Scope ARN: {missing} does not exist or is not attachable.")
    );
    assert_eq!(
        fails(&mut t, |t| t.put_user_permissions_boundary("x", P_ARN)).code(),
        "NoSuchEntity"
    );
    t.delete_user_permissions_boundary("u").unwrap();
    t.delete_role_permissions_boundary("r").unwrap();
    t.delete_role_permissions_boundary("r").unwrap();
    assert_eq!(t.get_role("r").unwrap().permissions_boundary, None);
    assert_eq!(
        fails(&mut t, |t| t.delete_role_permissions_boundary("x")).code(),
        "NoSuchEntity"
    );
}
