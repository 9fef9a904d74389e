//! Instance profiles: lifecycle, the one-role quota, tags, and what a role in a profile
//! blocks.

use crate::directory::{
    CreateInstanceProfileInput, CreateRoleInput, CreateServiceLinkedRoleInput, DirectoryError,
    IdGenerator, Tag, Tenant,
};

const NOW: i64 = 1_700_000_000;
const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn tenant() -> (Tenant, IdGenerator) {
    let mut t = Tenant::new("111122223333", NOW);
    let mut ids = IdGenerator::seeded(5);
    for name in ["web", "batch"] {
        t.create_role(
            &mut ids,
            NOW,
            CreateRoleInput {
                name: name.into(),
                assume_role_policy: TRUST_DOC.into(),
                ..Default::default()
            },
        )
        .unwrap();
    }
    (t, ids)
}

fn create(t: &mut Tenant, ids: &mut IdGenerator, name: &str, path: Option<&str>) {
    t.create_instance_profile(
        ids,
        NOW,
        CreateInstanceProfileInput {
            name: name.into(),
            path: path.map(Into::into),
            tags: Vec::new(),
        },
    )
    .unwrap();
}

/// Runs an operation that must fail and checks that it left the tenant as it was.
fn fails(
    t: &mut Tenant,
    op: impl FnOnce(&mut Tenant) -> Result<(), DirectoryError>,
) -> DirectoryError {
    let before = t.clone();
    let err = op(t).expect_err("the operation should fail");
    assert_eq!(*t, before, "a failed operation changed the tenant ({err})");
    err
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

#[test]
fn profiles_have_aws_ids_arns_and_paths() {
    let (mut t, mut ids) = tenant();
    let p = t
        .create_instance_profile(
            &mut ids,
            NOW,
            CreateInstanceProfileInput {
                name: "Web-Profile".into(),
                path: Some("/ec2/".into()),
                tags: vec![tag("env", "prod")],
            },
        )
        .unwrap()
        .clone();
    assert_eq!(
        p.arn,
        "arn:aws:iam::111122223333:instance-profile/ec2/Web-Profile"
    );
    assert!(p.instance_profile_id.starts_with("AIPA"));
    assert_eq!(p.instance_profile_id.len(), 21);
    assert_eq!(p.created_at, NOW);
    assert!(p.roles.is_empty());
    // Names are case-insensitive and case-preserving.
    assert_eq!(
        t.get_instance_profile("web-profile").unwrap().name,
        "Web-Profile"
    );
    create(&mut t, &mut ids, "plain", None);
    assert_eq!(t.get_instance_profile("plain").unwrap().path, "/");

    let listed: Vec<&str> = t
        .list_instance_profiles(Some("/ec2/"))
        .unwrap()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(listed, ["Web-Profile"]);
    assert_eq!(t.list_instance_profiles(None).unwrap().len(), 2);
    assert_eq!(
        t.list_instance_profiles(Some("ec2")).unwrap_err().code(),
        "ValidationError"
    );
}

#[test]
fn creation_is_validated_and_bounded() {
    let (mut t, mut ids) = tenant();
    create(&mut t, &mut ids, "web", None);
    let make = |name: &str, path: Option<&str>, tags: Vec<Tag>| CreateInstanceProfileInput {
        name: name.into(),
        path: path.map(Into::into),
        tags,
    };
    let cases = [
        (
            make("WEB", None, vec![]),
            "EntityAlreadyExists",
            "Instance Profile WEB already exists.",
        ),
        (
            make("", None, vec![]),
            "ValidationError",
            "length greater than or equal to 1",
        ),
        (
            make(&"n".repeat(129), None, vec![]),
            "ValidationError",
            "less than or equal to 128",
        ),
        (
            make("bad name", None, vec![]),
            "ValidationError",
            "instanceProfileName",
        ),
        (
            make("p", Some("ec2"), vec![]),
            "ValidationError",
            "at 'path'",
        ),
        (
            make("p", None, vec![tag("aws:x", "")]),
            "InvalidInput",
            "reserved prefix",
        ),
    ];
    for (input, code, text) in cases {
        let mut ids2 = IdGenerator::seeded(9);
        let err = fails(&mut t, |t| {
            t.create_instance_profile(&mut ids2, NOW, input).map(|_| ())
        });
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(text), "{err}");
    }
    t.quotas.instance_profiles = 1;
    let err = fails(&mut t, |t| {
        t.create_instance_profile(&mut ids, NOW, make("second", None, vec![]))
            .map(|_| ())
    });
    assert_eq!(err.code(), "LimitExceeded");
    assert_eq!(
        err.to_string(),
        "Cannot exceed quota for InstanceProfilesPerAccount: 1"
    );
}

#[test]
fn a_profile_holds_one_role() {
    let (mut t, mut ids) = tenant();
    create(&mut t, &mut ids, "web", None);
    t.add_role_to_instance_profile("WEB", "Web").unwrap();
    assert_eq!(t.get_instance_profile("web").unwrap().roles, ["web"]);
    let roles = t.instance_profile_roles(t.get_instance_profile("web").unwrap());
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].name, "web");
    for role in ["batch", "web"] {
        let err = fails(&mut t, |t| t.add_role_to_instance_profile("web", role));
        assert_eq!(err.code(), "LimitExceeded");
        assert_eq!(
            err.to_string(),
            "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1"
        );
    }
    let err = fails(&mut t, |t| t.add_role_to_instance_profile("nope", "web"));
    assert_eq!(err.to_string(), "Instance Profile nope cannot be found.");
    let err = fails(&mut t, |t| t.add_role_to_instance_profile("web", "nope"));
    assert_eq!(err.to_string(), "The role with name nope cannot be found.");

    // One role may be in several profiles.
    create(&mut t, &mut ids, "web2", None);
    t.add_role_to_instance_profile("web2", "web").unwrap();
    let names: Vec<&str> = t
        .list_instance_profiles_for_role("WEB")
        .unwrap()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["web", "web2"]);
    assert!(t
        .list_instance_profiles_for_role("batch")
        .unwrap()
        .is_empty());
    assert_eq!(
        t.list_instance_profiles_for_role("nope")
            .unwrap_err()
            .code(),
        "NoSuchEntity"
    );

    let err = fails(&mut t, |t| {
        t.remove_role_from_instance_profile("web", "batch")
    });
    assert_eq!(err.code(), "NoSuchEntity");
    t.remove_role_from_instance_profile("web", "WEB").unwrap();
    assert!(t.get_instance_profile("web").unwrap().roles.is_empty());
    t.add_role_to_instance_profile("web", "batch").unwrap();
}

#[test]
fn roles_and_profiles_block_each_others_deletion() {
    let (mut t, mut ids) = tenant();
    create(&mut t, &mut ids, "web", None);
    t.add_role_to_instance_profile("web", "web").unwrap();
    let msg = "Cannot delete entity, must remove roles from instance profile first.";
    let err = fails(&mut t, |t| t.delete_instance_profile("web"));
    assert_eq!(
        (err.code().to_string(), err.to_string()),
        ("DeleteConflict".into(), msg.into())
    );
    let err = fails(&mut t, |t| t.delete_role("web"));
    assert_eq!(
        (err.code().to_string(), err.to_string()),
        ("DeleteConflict".into(), msg.into())
    );

    t.remove_role_from_instance_profile("web", "web").unwrap();
    t.delete_role("web").unwrap();
    t.delete_instance_profile("WEB").unwrap();
    assert_eq!(
        t.get_instance_profile("web").unwrap_err().code(),
        "NoSuchEntity"
    );
    assert_eq!(
        t.delete_instance_profile("web").unwrap_err().code(),
        "NoSuchEntity"
    );
}

#[test]
fn service_linked_roles_stay_out_of_profiles() {
    let (mut t, mut ids) = tenant();
    create(&mut t, &mut ids, "web", None);
    t.create_service_linked_role(
        &mut ids,
        NOW,
        CreateServiceLinkedRoleInput {
            service: "ecs.amazonaws.com".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let err = fails(&mut t, |t| {
        t.add_role_to_instance_profile("web", "AWSServiceRoleForECS")
    });
    assert_eq!(err.code(), "UnmodifiableEntity");
}

#[test]
fn tags_are_case_sensitive_and_bounded() {
    let (mut t, mut ids) = tenant();
    create(&mut t, &mut ids, "web", None);
    t.tag_instance_profile("web", &[tag("Env", "prod"), tag("env", "dev")])
        .unwrap();
    t.tag_instance_profile("web", &[tag("Env", "stage")])
        .unwrap();
    assert_eq!(
        t.list_instance_profile_tags("web").unwrap(),
        [tag("Env", "stage"), tag("env", "dev")]
    );
    t.untag_instance_profile("web", &["env".into(), "absent".into()])
        .unwrap();
    assert_eq!(
        t.list_instance_profile_tags("web").unwrap(),
        [tag("Env", "stage")]
    );

    t.quotas.tags_per_entity = 2;
    let err = fails(&mut t, |t| {
        t.tag_instance_profile("web", &[tag("a", ""), tag("b", "")])
    });
    assert_eq!(
        err.to_string(),
        "Cannot exceed quota for TagsPerInstanceProfile: 2"
    );
    let err = fails(&mut t, |t| {
        t.untag_instance_profile("web", &[String::new()])
    });
    assert_eq!(err.code(), "ValidationError");
    let err = fails(&mut t, |t| t.tag_instance_profile("nope", &[tag("a", "")]));
    assert_eq!(err.code(), "NoSuchEntity");
}
