//! Service-linked roles: the table, creation, the protections, deletion tasks, and the STS
//! preference.

use super::{ServiceLinkedRoleSpec, RETAINED_DELETION_TASKS, SERVICE_LINKED_ROLES};
use crate::directory::{
    CreateRoleInput, CreateServiceLinkedRoleInput, DeletionTaskStatus, DirectoryError,
    GlobalEndpointTokenVersion, IdGenerator, Tenant,
};
use crate::policy::{ParseOptions, PolicyDocument, PolicyKind};

const NOW: i64 = 1_700_000_000;
const IDENTITY_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

fn input(service: &str, suffix: Option<&str>) -> CreateServiceLinkedRoleInput {
    CreateServiceLinkedRoleInput {
        service: service.into(),
        description: None,
        custom_suffix: suffix.map(Into::into),
    }
}

fn fails(
    t: &mut Tenant,
    op: impl FnOnce(&mut Tenant) -> Result<(), DirectoryError>,
) -> DirectoryError {
    let before = t.clone();
    let err = op(t).expect_err("the operation should fail");
    assert_eq!(*t, before, "a failed operation changed the tenant ({err})");
    err
}

#[test]
fn the_table_is_consistent() {
    let mut services: Vec<&str> = SERVICE_LINKED_ROLES.iter().map(|s| s.service).collect();
    services.sort_unstable();
    services.dedup();
    assert_eq!(
        services.len(),
        SERVICE_LINKED_ROLES.len(),
        "a service listed twice"
    );
    for spec in SERVICE_LINKED_ROLES {
        assert!(spec.role_name.starts_with("AWSServiceRoleFor"), "{spec:?}");
        assert!(spec.role_name.len() <= 64, "{spec:?}");
        assert!(spec.service.ends_with(".amazonaws.com"), "{spec:?}");
        // Every trust policy parses as one.
        PolicyDocument::parse_with(
            &spec.trust_policy(),
            ParseOptions::for_kind(PolicyKind::Trust),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", spec.service));
    }
    for service in [
        "autoscaling.amazonaws.com",
        "elasticloadbalancing.amazonaws.com",
        "ecs.amazonaws.com",
        "eks.amazonaws.com",
        "rds.amazonaws.com",
        "elasticache.amazonaws.com",
        "es.amazonaws.com",
        "opensearchservice.amazonaws.com",
        "organizations.amazonaws.com",
        "support.amazonaws.com",
        "trustedadvisor.amazonaws.com",
        "config.amazonaws.com",
    ] {
        assert!(ServiceLinkedRoleSpec::find(service).is_some(), "{service}");
    }
    assert_eq!(ServiceLinkedRoleSpec::find("ECS.amazonaws.com"), None);
}

#[test]
fn creation_follows_the_services_table() {
    let mut t = Tenant::new("111122223333", NOW);
    let mut ids = IdGenerator::seeded(2);
    let role = t
        .create_service_linked_role(
            &mut ids,
            NOW,
            CreateServiceLinkedRoleInput {
                description: Some("scaling".into()),
                ..input("autoscaling.amazonaws.com", None)
            },
        )
        .unwrap()
        .clone();
    assert_eq!(role.name, "AWSServiceRoleForAutoScaling");
    assert_eq!(role.path, "/aws-service-role/autoscaling.amazonaws.com/");
    assert_eq!(
        role.arn,
        "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    );
    assert!(role.role_id.starts_with("AROA"));
    assert_eq!(role.description.as_deref(), Some("scaling"));
    assert!(role.is_service_linked());
    assert!(role
        .assume_role_policy
        .contains(r#""Principal":{"Service":"autoscaling.amazonaws.com"}"#));
    assert!(role.attached_policies.is_empty());

    let suffixed = t
        .create_service_linked_role(
            &mut ids,
            NOW,
            input("autoscaling.amazonaws.com", Some("blue")),
        )
        .unwrap();
    assert_eq!(suffixed.name, "AWSServiceRoleForAutoScaling_blue");

    let cases = [
        (
            input("autoscaling.amazonaws.com", None),
            "InvalidInput",
            "Service role name AWSServiceRoleForAutoScaling has been taken in this account, please try a different suffix.",
        ),
        (
            input("ecs.amazonaws.com", Some("x")),
            "InvalidInput",
            "Custom suffix is not allowed for ecs.amazonaws.com",
        ),
        (
            input("nope.amazonaws.com", None),
            "InvalidInput",
            "Service nope.amazonaws.com does not support service-linked roles.",
        ),
        (input("", None), "ValidationError", "aWSServiceName"),
        (input("ecs amazonaws", None), "ValidationError", "aWSServiceName"),
        (
            input("autoscaling.amazonaws.com", Some(&"s".repeat(40))),
            "ValidationError",
            "at 'roleName'",
        ),
        (
            input("autoscaling.amazonaws.com", Some("bad suffix")),
            "ValidationError",
            "customSuffix",
        ),
    ];
    for (input, code, text) in cases {
        let err = fails(&mut t, |t| {
            t.create_service_linked_role(&mut ids, NOW, input)
                .map(|_| ())
        });
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(text), "{err}");
    }
    t.quotas.roles = 2;
    let err = fails(&mut t, |t| {
        t.create_service_linked_role(&mut ids, NOW, input("ecs.amazonaws.com", None))
            .map(|_| ())
    });
    assert_eq!(
        err.to_string(),
        "Cannot exceed quota for RolesPerAccount: 2"
    );
}

#[test]
fn create_role_cannot_use_the_service_role_path() {
    let mut t = Tenant::new("111122223333", NOW);
    let err = fails(&mut t, |t| {
        t.create_role(
            &mut IdGenerator::seeded(1),
            NOW,
            CreateRoleInput {
                name: "fake".into(),
                path: Some("/aws-service-role/ecs.amazonaws.com/".into()),
                assume_role_policy: TRUST_DOC.into(),
                ..Default::default()
            },
        )
        .map(|_| ())
    });
    assert_eq!(err.code(), "InvalidInput");
    assert_eq!(
        err.to_string(),
        "Path prefix '/aws-service-role/' can only be used for AWS Service linked Roles"
    );
}

#[test]
fn service_linked_roles_are_only_modifiable_by_aws() {
    let mut t = Tenant::new("111122223333", NOW);
    let mut ids = IdGenerator::seeded(3);
    t.create_service_linked_role(&mut ids, NOW, input("eks.amazonaws.com", None))
        .unwrap();
    let name = "AWSServiceRoleForAmazonEKS";
    let protected = format!(
        "Cannot perform the operation on the protected role '{name}' - this role is only modifiable by AWS"
    );
    type Op = Box<dyn FnOnce(&mut Tenant) -> Result<(), DirectoryError>>;
    let ops: Vec<(&str, Op)> = vec![
        ("DeleteRole", Box::new(move |t| t.delete_role(name))),
        (
            "UpdateAssumeRolePolicy",
            Box::new(move |t| t.update_assume_role_policy(name, TRUST_DOC)),
        ),
        (
            "UpdateRole",
            Box::new(move |t| t.update_role(name, None, Some(7_200))),
        ),
        (
            "PutRolePolicy",
            Box::new(move |t| t.put_role_policy(name, "p", IDENTITY_DOC)),
        ),
        (
            "DeleteRolePolicy",
            Box::new(move |t| t.delete_role_policy(name, "p")),
        ),
        (
            "AttachRolePolicy",
            Box::new(move |t| t.attach_role_policy(name, ADMIN)),
        ),
        (
            "DetachRolePolicy",
            Box::new(move |t| t.detach_role_policy(name, ADMIN)),
        ),
        (
            "PutRolePermissionsBoundary",
            Box::new(move |t| t.put_role_permissions_boundary(name, ADMIN)),
        ),
        (
            "DeleteRolePermissionsBoundary",
            Box::new(move |t| t.delete_role_permissions_boundary(name)),
        ),
    ];
    for (action, op) in ops {
        let err = fails(&mut t, op);
        assert_eq!(err.code(), "UnmodifiableEntity", "{action}: {err}");
        assert_eq!(err.to_string(), protected, "{action}");
    }
    // The description is the customer's to edit, as in AWS.
    t.update_role(name, Some("EKS's role"), None).unwrap();
    assert_eq!(
        t.get_role(name).unwrap().description.as_deref(),
        Some("EKS's role")
    );
}

#[test]
fn deletion_tasks_succeed_at_once_and_are_bounded() {
    let mut t = Tenant::new("111122223333", NOW);
    let mut ids = IdGenerator::seeded(4);
    t.create_service_linked_role(&mut ids, NOW, input("rds.amazonaws.com", None))
        .unwrap();
    let task = t
        .delete_service_linked_role(&mut ids, NOW + 1, "awsservicerolefordrs")
        .map(|_| ())
        .unwrap_err();
    assert_eq!(task.code(), "NoSuchEntity");
    let task = t
        .delete_service_linked_role(&mut ids, NOW + 1, "AWSServiceRoleForRDS")
        .unwrap();
    let prefix = "task/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS/";
    let uuid = task
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{task}"));
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(uuid.as_bytes()[14], b'4', "a version-4 UUID: {uuid}");
    assert_eq!(
        t.get_role("AWSServiceRoleForRDS").unwrap_err().code(),
        "NoSuchEntity"
    );
    let status = t.service_linked_role_deletion_status(&task).unwrap();
    assert_eq!(status.status, DeletionTaskStatus::Succeeded);
    assert_eq!(status.status.as_str(), "SUCCEEDED");

    // Unknown and malformed task ids.
    let unknown = format!("{prefix}00000000-0000-4000-8000-000000000000");
    let err = t.service_linked_role_deletion_status(&unknown).unwrap_err();
    assert_eq!(err.code(), "NoSuchEntity");
    for bad in [
        "task/other",
        "task/aws-service-role/rds.amazonaws.com/x",
        "nope",
    ] {
        let err = t.service_linked_role_deletion_status(bad).unwrap_err();
        assert_eq!(err.code(), "InvalidInput", "{bad}");
    }
    let err = t.service_linked_role_deletion_status("").unwrap_err();
    assert_eq!(err.code(), "ValidationError");

    // An ordinary role is DeleteRole's.
    t.create_role(
        &mut ids,
        NOW,
        CreateRoleInput {
            name: "app".into(),
            assume_role_policy: TRUST_DOC.into(),
            ..Default::default()
        },
    )
    .unwrap();
    let err = fails(&mut t, |t| {
        t.delete_service_linked_role(&mut IdGenerator::seeded(1), NOW, "app")
            .map(|_| ())
    });
    assert_eq!(err.code(), "InvalidInput");

    // Only the newest tasks are kept.
    for _ in 0..RETAINED_DELETION_TASKS + 5 {
        t.create_service_linked_role(&mut ids, NOW, input("rds.amazonaws.com", None))
            .unwrap();
        t.delete_service_linked_role(&mut ids, NOW, "AWSServiceRoleForRDS")
            .unwrap();
    }
    assert_eq!(
        t.service_linked_role_deletions.len(),
        RETAINED_DELETION_TASKS
    );
    assert_eq!(
        t.service_linked_role_deletion_status(&task)
            .unwrap_err()
            .code(),
        "NoSuchEntity",
        "the oldest task was dropped"
    );
}

#[test]
fn the_sts_preference_is_stored_and_summarized() {
    let mut t = Tenant::new("111122223333", NOW);
    assert_eq!(
        t.global_endpoint_token_version,
        GlobalEndpointTokenVersion::V1Token
    );
    assert_eq!(t.global_endpoint_token_version.summary_value(), 1);
    t.set_security_token_service_preferences("v2Token").unwrap();
    assert_eq!(t.global_endpoint_token_version.summary_value(), 2);
    assert_eq!(t.global_endpoint_token_version.as_str(), "v2Token");
    let err = fails(&mut t, |t| {
        t.set_security_token_service_preferences("v3Token")
    });
    assert_eq!(
        err.to_string(),
        "1 validation error detected: Value 'v3Token' at 'globalEndpointTokenVersion' failed to satisfy constraint: Member must satisfy enum value set: [v1Token, v2Token]"
    );
}

#[test]
fn tenants_stored_before_these_fields_still_load() {
    let mut t = Tenant::new("111122223333", NOW);
    t.set_security_token_service_preferences("v2Token").unwrap();
    let mut json = serde_json::to_value(&t).unwrap();
    let obj = json.as_object_mut().unwrap();
    for field in [
        "instance_profiles",
        "service_linked_role_deletions",
        "global_endpoint_token_version",
    ] {
        assert!(obj.remove(field).is_some(), "{field}");
    }
    obj["quotas"]
        .as_object_mut()
        .unwrap()
        .remove("instance_profiles");
    let old: Tenant = serde_json::from_value(json).unwrap();
    assert!(old.instance_profiles.is_empty());
    assert_eq!(old.quotas.instance_profiles, 1_000);
    assert_eq!(
        old.global_endpoint_token_version,
        GlobalEndpointTokenVersion::V1Token
    );
    // And the new ones round-trip.
    let back: Tenant = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(back, t);
}
