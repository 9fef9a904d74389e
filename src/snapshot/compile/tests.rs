use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::authz::{evaluate, Outcome, Request};
use crate::directory::{
    AccessKey, AccessKeyStatus, Group, ManagedPolicy, PolicyVersionEntry, ResourcePolicy, Role,
    Secret, User,
};

pub(crate) const A: &str = "111122223333";

pub(crate) struct NoAwsManaged;

impl AwsManagedLookup for NoAwsManaged {
    fn compiled(&self, _arn: &str) -> Option<Arc<CompiledPolicy>> {
        None
    }
}

fn managed(name: &str, versions: &[(&str, &str)], default: &str) -> ManagedPolicy {
    ManagedPolicy {
        name: name.into(),
        path: "/".into(),
        policy_id: format!("ANPA{name}"),
        arn: format!("arn:aws:iam::{A}:policy/{name}"),
        description: None,
        created_at: 0,
        updated_at: 0,
        default_version_id: default.into(),
        versions: versions
            .iter()
            .map(|(id, doc)| PolicyVersionEntry {
                version_id: (*id).into(),
                document: (*doc).into(),
                created_at: 0,
            })
            .collect(),
        next_version: versions.len() as u32 + 1,
        tags: Vec::new(),
    }
}

fn allow(action: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}]}}"#
    )
}

/// alice (path /eng/, in group devs, tagged team=blue), role app with a boundary, a bucket
/// policy, and a managed policy whose default version is v2.
pub(crate) fn demo_tenant() -> Tenant {
    let mut t = Tenant::new(A, 0);
    let read = managed(
        "ReadReports",
        &[
            ("v1", &allow("s3:*", "*")),
            ("v2", &allow("s3:GetObject", "arn:aws:s3:::reports/*")),
        ],
        "v2",
    );
    let only_s3 = managed("OnlyS3", &[("v1", &allow("s3:*", "*"))], "v1");
    let everything = managed("Everything", &[("v1", &allow("*", "*"))], "v1");
    for p in [read, only_s3, everything] {
        t.policies.insert(p.name.to_lowercase(), p);
    }
    t.groups.insert(
        "devs".into(),
        Group {
            name: "Devs".into(),
            path: "/".into(),
            group_id: "AGPADEVS".into(),
            arn: format!("arn:aws:iam::{A}:group/Devs"),
            created_at: 0,
            inline_policies: BTreeMap::from([("Describe".into(), allow("ec2:Describe*", "*"))]),
            attached_policies: vec![format!("arn:aws:iam::{A}:policy/ReadReports")],
        },
    );
    t.users.insert(
        "alice".into(),
        User {
            name: "alice".into(),
            path: "/eng/".into(),
            user_id: "AIDAALICE".into(),
            arn: format!("arn:aws:iam::{A}:user/eng/alice"),
            created_at: 0,
            tags: vec![crate::directory::Tag {
                key: "team".into(),
                value: "blue".into(),
            }],
            permissions_boundary: None,
            inline_policies: BTreeMap::from([(
                "Own".into(),
                allow("s3:PutObject", "arn:aws:s3:::home/${aws:username}/*"),
            )]),
            attached_policies: vec![format!("arn:aws:iam::{A}:policy/ReadReports")],
            groups: vec!["Devs".into()],
            access_keys: vec![AccessKey {
                access_key_id: "AKIAALICE".into(),
                secret: Secret::new("secret"),
                derived: None,
                status: AccessKeyStatus::Active,
                created_at: 0,
                last_used_at: None,
            }],
            login_profile: None,
            mfa_devices: Vec::new(),
        },
    );
    t.roles.insert(
        "app".into(),
        Role {
            name: "app".into(),
            path: "/svc/".into(),
            role_id: "AROAAPP".into(),
            arn: format!("arn:aws:iam::{A}:role/svc/app"),
            created_at: 0,
            description: None,
            max_session_duration: 3600,
            assume_role_policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#.into(),
            tags: Vec::new(),
            permissions_boundary: Some(format!("arn:aws:iam::{A}:policy/OnlyS3")),
            inline_policies: BTreeMap::new(),
            attached_policies: vec![format!("arn:aws:iam::{A}:policy/Everything")],
            sessions_revoked_before: None,
        },
    );
    t.resource_policies.insert(
        "arn:aws:s3:::shared".into(),
        ResourcePolicy {
            resource_arn: "arn:aws:s3:::shared".into(),
            document: format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:user/eng/alice"}},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::shared"}}]}}"#),
            updated_at: 0,
        },
    );
    t
}

pub(crate) fn compile(t: Tenant, seq: u64) -> TenantSnapshot {
    compile_at(t, SnapshotVersion::new(0, seq))
}

pub(crate) fn compile_at(t: Tenant, version: SnapshotVersion) -> TenantSnapshot {
    TenantSnapshot::compile(Arc::new(t), version, &NoAwsManaged).unwrap()
}

fn decide(
    snap: &TenantSnapshot,
    principal: &str,
    action: &str,
    resource: &str,
    ctx: &[(&str, &str)],
) -> Outcome {
    let principal = Principal::parse(principal).unwrap();
    let resolved = snap.resolve(&principal).unwrap();
    let mut context = Context::new();
    for (k, v) in ctx {
        context.insert_str(k, v);
    }
    resolved.fill_context(&principal, &mut context);
    let resource_policy = snap.resource_policy(resource).map(|p| &**p);
    let request = Request::try_new(principal, action, resource)
        .unwrap()
        .with_context(context);
    evaluate(&resolved.policy_set(resource_policy, &[]), &request).outcome
}

const ALICE: &str = "arn:aws:iam::111122223333:user/eng/alice";

#[test]
fn users_get_their_own_and_their_groups_policies_at_the_default_version() {
    let snap = compile(demo_tenant(), 1);
    assert_eq!(
        decide(
            &snap,
            ALICE,
            "s3:GetObject",
            "arn:aws:s3:::reports/q3.csv",
            &[]
        ),
        Outcome::Allow
    );
    // v1 (s3:* on *) is not the default version.
    assert_eq!(
        decide(&snap, ALICE, "s3:GetObject", "arn:aws:s3:::other/x", &[]),
        Outcome::ImplicitDeny
    );
    // The group's inline policy.
    assert_eq!(
        decide(&snap, ALICE, "ec2:DescribeInstances", "*", &[]),
        Outcome::Allow
    );
    // The inline policy's variable is filled from the principal, not from the caller.
    assert_eq!(
        decide(
            &snap,
            ALICE,
            "s3:PutObject",
            "arn:aws:s3:::home/alice/notes",
            &[("aws:username", "bob")]
        ),
        Outcome::Allow
    );
    assert_eq!(
        decide(
            &snap,
            ALICE,
            "s3:PutObject",
            "arn:aws:s3:::home/bob/notes",
            &[("aws:username", "bob")]
        ),
        Outcome::ImplicitDeny
    );
    // The registered resource policy names alice directly.
    assert_eq!(
        decide(&snap, ALICE, "s3:ListBucket", "arn:aws:s3:::shared", &[]),
        Outcome::Allow
    );
    // The same managed policy attached to alice and to her group is evaluated once.
    assert_eq!(snap.user("ALICE").unwrap().identity.len(), 3);
}

#[test]
fn role_sessions_get_the_role_policies_within_its_boundary() {
    let snap = compile(demo_tenant(), 1);
    let session = "arn:aws:sts::111122223333:assumed-role/app/pod-1";
    assert_eq!(
        decide(&snap, session, "s3:GetObject", "arn:aws:s3:::x/y", &[]),
        Outcome::Allow
    );
    assert_eq!(
        decide(&snap, session, "ec2:RunInstances", "*", &[]),
        Outcome::ImplicitDeny
    );
    let role = snap.role("APP").unwrap();
    assert_eq!(&*role.arn, "arn:aws:iam::111122223333:role/svc/app");
    assert_eq!(role.boundary[0].kind(), PolicyKind::Boundary);
    assert_eq!(role.trust.kind(), PolicyKind::Trust);
}

#[test]
fn revoked_sessions_are_denied_by_issue_time() {
    let mut t = demo_tenant();
    t.roles.get_mut("app").unwrap().sessions_revoked_before = Some(1_735_689_600); // 2025-01-01
    let snap = compile(t, 2);
    let session = "arn:aws:sts::111122223333:assumed-role/app/pod-1";
    let before = [("aws:TokenIssueTime", "2024-12-31T23:59:59Z")];
    let after = [("aws:TokenIssueTime", "2025-01-01T00:00:01Z")];
    assert_eq!(
        decide(&snap, session, "s3:GetObject", "arn:aws:s3:::x/y", &before),
        Outcome::ExplicitDeny
    );
    assert_eq!(
        decide(&snap, session, "s3:GetObject", "arn:aws:s3:::x/y", &after),
        Outcome::Allow
    );
}

#[test]
fn principals_resolve_only_to_their_own_entity() {
    let snap = compile(demo_tenant(), 1);
    let wrong_path = Principal::parse("arn:aws:iam::111122223333:user/alice").unwrap();
    assert!(snap.resolve(&wrong_path).is_none());
    let other_account = Principal::parse("arn:aws:iam::444455556666:user/eng/alice").unwrap();
    assert!(snap.resolve(&other_account).is_none());
    let unknown_role = Principal::parse("arn:aws:sts::111122223333:assumed-role/nope/s").unwrap();
    assert!(snap.resolve(&unknown_role).is_none());
    // The root user has no policies of its own: it may do anything in its account that an
    // SCP or an explicit deny does not forbid, which one allow-everything policy stands for.
    let root = Principal::parse("arn:aws:iam::111122223333:root").unwrap();
    let resolved = snap.resolve(&root).unwrap();
    assert_eq!(resolved.identity.len(), 1);
    assert!(resolved.boundary.is_empty());
    let request = crate::authz::Request::try_new(root.clone(), "iam:DeleteUser", "*").unwrap();
    assert!(crate::authz::evaluate(&resolved.policy_set(None, &[]), &request).is_allowed());
    assert!(snap
        .access_key("AKIAALICE")
        .is_some_and(|k| k.active && &*k.user == "alice"));
}

#[test]
fn principal_context_keys_replace_what_the_caller_sent() {
    let snap = compile(demo_tenant(), 1);
    let principal = Principal::parse(ALICE).unwrap();
    let mut ctx = Context::new();
    ctx.insert_str("aws:PrincipalTag/team", "red");
    ctx.insert_str("aws:username", "mallory");
    snap.resolve(&principal)
        .unwrap()
        .fill_context(&principal, &mut ctx);
    let get = |k: &str| match ctx.get(k) {
        Some(crate::policy::KeyValues::Single(v)) => v.as_str().to_owned(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(get("aws:PrincipalTag/team"), "blue");
    assert_eq!(get("aws:username"), "alice");
    assert_eq!(get("aws:userid"), "AIDAALICE");
    assert_eq!(get("aws:PrincipalType"), "User");
    assert_eq!(get("aws:PrincipalArn"), ALICE);
    let session = Principal::parse("arn:aws:sts::111122223333:assumed-role/app/pod-1").unwrap();
    let mut ctx = Context::new();
    snap.resolve(&session)
        .unwrap()
        .fill_context(&session, &mut ctx);
    assert!(
        matches!(ctx.get("aws:userid"), Some(crate::policy::KeyValues::Single(v)) if v.as_str() == "AROAAPP:pod-1")
    );
    assert!(ctx.get("aws:username").is_none());
}

/// The keys built with the snapshot are exactly those the request-time code fills, for
/// users, roles and role sessions, over whatever the caller sent.
#[test]
fn prebuilt_principal_keys_equal_the_ones_filled_at_request_time() {
    let snap = compile(demo_tenant(), 1);
    for arn in [
        ALICE,
        "arn:aws:sts::111122223333:assumed-role/app/pod-1",
        "arn:aws:iam::111122223333:role/svc/app",
    ] {
        let principal = Principal::parse(arn).unwrap();
        let resolved = snap.resolve(&principal).unwrap();
        assert!(resolved.base_context.is_some(), "{arn}");
        let sent = |ctx: &mut Context| {
            ctx.insert_str("aws:PrincipalTag/team", "red");
            ctx.insert_str("aws:SourceIp", "10.0.0.1");
        };
        let (mut fast, mut slow) = (Context::new(), Context::new());
        sent(&mut fast);
        sent(&mut slow);
        resolved.fill_context(&principal, &mut fast);
        resolved.fill_context_from_parts(&principal, &mut slow);
        assert_eq!(fast, slow, "{arn}");
        assert!(fast.get("aws:SourceIp").is_some());
    }
}

#[test]
fn context_keys_cover_variables_and_conditions() {
    let mut t = demo_tenant();
    t.users.get_mut("alice").unwrap().inline_policies.insert(
        "Tagged".into(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/Team":"x"}}}]}"#.into(),
    );
    let snap = compile(t, 1);
    let keys: Vec<&str> = snap.context_keys().iter().map(|k| &**k).collect();
    assert!(keys.contains(&"aws:username"), "{keys:?}");
    assert!(keys.contains(&"aws:resourcetag/team"), "{keys:?}");
}

#[test]
fn a_tenant_reads_the_clock_when_one_of_its_policies_does() {
    let clock_key = |k: &str| crate::policy::CLOCK_KEYS.contains(&k);
    let base = compile(demo_tenant(), 1);
    assert!(!base.context_keys().iter().any(|k| clock_key(k)));
    assert!(!base.reads_clock());
    for condition in [
        r#""DateLessThan":{"aws:CurrentTime":"2100-01-01T00:00:00Z"}"#,
        r#""NumericLessThan":{"aws:EpochTime":"4102444800"}"#,
        r#""NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}"#,
    ] {
        let mut t = demo_tenant();
        t.users.get_mut("alice").unwrap().inline_policies.insert(
            "Timed".into(),
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{{{condition}}}}}]}}"#
            ),
        );
        let snap = compile(t, 1);
        assert!(
            snap.context_keys().iter().any(|k| clock_key(k)),
            "{condition}"
        );
        assert!(snap.reads_clock(), "{condition}");
        let policies = snap
            .managed
            .values()
            .chain(snap.users.values().flat_map(|u| u.identity.iter()));
        for policy in policies {
            assert_eq!(
                policy.reads_clock(),
                policy.context_keys().iter().any(|k| clock_key(k)),
                "{}",
                policy.id()
            );
        }
    }
}

#[test]
fn a_bad_tenant_is_refused_whole_with_the_entity_named() {
    let mut t = demo_tenant();
    t.users
        .get_mut("alice")
        .unwrap()
        .attached_policies
        .push(format!("arn:aws:iam::{A}:policy/Gone"));
    let e = TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(0, 1), &NoAwsManaged)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "tenant `111122223333`: user `alice`: policy `arn:aws:iam::111122223333:policy/Gone` does not exist"
    );

    let mut t = demo_tenant();
    t.roles.get_mut("app").unwrap().assume_role_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}"#.into();
    let e = TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(0, 1), &NoAwsManaged)
        .unwrap_err();
    assert!(
        matches!(
            &e,
            SnapshotError::InvalidPolicy {
                code: crate::error::AwsCode::MalformedPolicyDocument,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("role `app` trust policy"), "{e}");

    let mut t = demo_tenant();
    t.users
        .get_mut("alice")
        .unwrap()
        .groups
        .push("ghosts".into());
    assert!(matches!(
        TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(0, 1), &NoAwsManaged),
        Err(SnapshotError::DanglingGroup { .. })
    ));

    let mut t = demo_tenant();
    t.policies
        .get_mut("readreports")
        .unwrap()
        .default_version_id = "v9".into();
    assert!(matches!(
        TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(0, 1), &NoAwsManaged),
        Err(SnapshotError::MissingDefaultVersion { .. })
    ));

    let t = Tenant::new("12345", 0);
    assert!(matches!(
        TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(0, 1), &NoAwsManaged),
        Err(SnapshotError::InvalidAccountId(_))
    ));
}

#[test]
fn the_aws_managed_catalog_compiles_whole_and_resolves_attachments() {
    let catalog = AwsManagedCatalog::compile();
    assert_eq!(
        catalog.len(),
        crate::directory::aws_managed_policies().len()
    );
    let mut t = demo_tenant();
    t.users
        .get_mut("alice")
        .unwrap()
        .attached_policies
        .push("arn:aws:iam::aws:policy/IAMReadOnlyAccess".into());
    let snap = TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(0, 1), &catalog).unwrap();
    assert_eq!(
        decide(
            &snap,
            ALICE,
            "iam:GetUser",
            "arn:aws:iam::111122223333:user/bob",
            &[]
        ),
        Outcome::Allow
    );
    assert_eq!(
        decide(
            &snap,
            ALICE,
            "iam:CreateUser",
            "arn:aws:iam::111122223333:user/bob",
            &[]
        ),
        Outcome::ImplicitDeny
    );
}

#[test]
fn pod_identity_associations_are_indexed_by_issuer_namespace_and_service_account() {
    use crate::directory::{OidcProvider, PodIdentityAssociation};
    let mut t = demo_tenant();
    let provider = |url: &str| OidcProvider {
        url: format!("https://{url}"),
        arn: format!("arn:aws:iam::{A}:oidc-provider/{url}"),
        client_ids: vec![],
        thumbprints: vec![],
        jwks: r#"{"keys":[]}"#.into(),
        created_at: 0,
        tags: vec![],
    };
    t.oidc_providers.insert(
        "oidc.example.com/c1".into(),
        provider("oidc.example.com/c1"),
    );
    let association = |id: &str, provider: &str, sa: &str| PodIdentityAssociation {
        association_id: id.into(),
        association_arn: format!("arn:aws:eks:us-east-1:{A}:podidentityassociation/prod/{id}"),
        cluster_name: "prod".into(),
        oidc_provider_arn: format!("arn:aws:iam::{A}:oidc-provider/{provider}"),
        namespace: "web".into(),
        service_account: sa.into(),
        role_arn: format!("arn:aws:iam::{A}:role/app"),
        tags: BTreeMap::new(),
        created_at: 0,
        modified_at: 0,
    };
    for a in [
        association("a-1", "oidc.example.com/c1", "api"),
        // Its provider is gone: left out, the tenant still compiles.
        association("a-2", "oidc.example.com/deleted", "worker"),
    ] {
        t.pod_identity_associations
            .insert(a.association_id.clone(), a);
    }
    let snap = compile_at(t, SnapshotVersion::new(0, 1));
    let found = snap
        .pod_identity("https://oidc.example.com/c1", "web", "api")
        .unwrap();
    assert_eq!(&*found.association_id, "a-1");
    assert_eq!(
        &*found.cluster_arn,
        "arn:aws:eks:us-east-1:111122223333:cluster/prod"
    );
    assert_eq!(&*found.role_arn, "arn:aws:iam::111122223333:role/app");
    assert!(snap
        .pod_identity("https://oidc.example.com/c1", "web", "worker")
        .is_none());
    assert!(snap
        .pod_identity("https://oidc.example.com/c1", "jobs", "api")
        .is_none());
    assert!(snap
        .pod_identity("https://oidc.example.com/deleted", "web", "worker")
        .is_none());
}

/// `demo_tenant` with `ReadReports` back at its first version (`s3:*` on everything).
fn demo_tenant_read_reports_v1() -> Tenant {
    let mut t = demo_tenant();
    t.policies
        .get_mut("readreports")
        .unwrap()
        .default_version_id = "v1".into();
    t
}

fn reusing(
    t: Tenant,
    seq: u64,
    previous: &TenantSnapshot,
) -> Result<TenantSnapshot, SnapshotError> {
    TenantSnapshot::compile_reusing(
        Arc::new(t),
        SnapshotVersion::new(0, seq),
        &NoAwsManaged,
        Some(previous),
    )
}

#[test]
fn unchanged_documents_are_reused_and_a_changed_one_recompiled() {
    let v1 = compile(demo_tenant(), 1);
    let v2 = reusing(demo_tenant_read_reports_v1(), 2, &v1).unwrap();
    let policy = |snap: &TenantSnapshot, name: &str| {
        Arc::clone(
            snap.managed_policy(&format!("arn:aws:iam::{A}:policy/{name}"))
                .unwrap(),
        )
    };
    // Unchanged text: the very same compiled policy, shared between the versions.
    for name in ["OnlyS3", "Everything"] {
        assert!(
            Arc::ptr_eq(&policy(&v1, name), &policy(&v2, name)),
            "{name}"
        );
    }
    let (alice1, alice2) = (v1.user("alice").unwrap(), v2.user("alice").unwrap());
    assert_eq!(
        alice1.identity[0].id().as_ref(),
        format!("{ALICE}#inline/Own")
    );
    assert!(Arc::ptr_eq(&alice1.identity[0], &alice2.identity[0]));
    assert!(Arc::ptr_eq(
        &v1.role("app").unwrap().trust,
        &v2.role("app").unwrap().trust
    ));
    assert!(Arc::ptr_eq(
        v1.resource_policy("arn:aws:s3:::shared").unwrap(),
        v2.resource_policy("arn:aws:s3:::shared").unwrap()
    ));
    // The changed document is compiled anew, and decides as its new text says.
    assert!(!Arc::ptr_eq(
        &policy(&v1, "ReadReports"),
        &policy(&v2, "ReadReports")
    ));
    assert!(alice2
        .identity
        .iter()
        .any(|p| Arc::ptr_eq(p, &policy(&v2, "ReadReports"))));
    let elsewhere = ("s3:GetObject", "arn:aws:s3:::other/x");
    assert_eq!(
        decide(&v1, ALICE, elsewhere.0, elsewhere.1, &[]),
        Outcome::ImplicitDeny
    );
    assert_eq!(
        decide(&v2, ALICE, elsewhere.0, elsewhere.1, &[]),
        Outcome::Allow
    );
    // Reusing gives the snapshot a fresh compile gives.
    let fresh = compile(demo_tenant_read_reports_v1(), 2);
    for (action, resource) in [
        elsewhere,
        ("s3:GetObject", "arn:aws:s3:::reports/a"),
        ("s3:PutObject", "arn:aws:s3:::home/alice/x"),
        ("ec2:DescribeInstances", "*"),
        ("s3:ListBucket", "arn:aws:s3:::shared"),
        ("iam:CreateUser", "*"),
    ] {
        assert_eq!(
            decide(&v2, ALICE, action, resource, &[]),
            decide(&fresh, ALICE, action, resource, &[]),
            "{action} {resource}"
        );
    }
    assert_eq!(v2.context_keys(), fresh.context_keys());
}

#[test]
fn reuse_needs_the_same_text_the_same_id_and_the_same_kind() {
    let v1 = compile(demo_tenant(), 1);
    // The same text under another ARN: compiled under its own id, not shared.
    let mut t = demo_tenant();
    let mut copy = t.policies.get("everything").unwrap().clone();
    copy.name = "Everything2".into();
    copy.arn = format!("arn:aws:iam::{A}:policy/Everything2");
    t.policies.insert("everything2".into(), copy);
    let v2 = reusing(t, 2, &v1).unwrap();
    let copy = v2
        .managed_policy(&format!("arn:aws:iam::{A}:policy/Everything2"))
        .unwrap();
    assert_eq!(
        copy.id().as_ref(),
        format!("arn:aws:iam::{A}:policy/Everything2")
    );
    assert!(!Arc::ptr_eq(
        copy,
        v1.managed_policy(&format!("arn:aws:iam::{A}:policy/Everything"))
            .unwrap()
    ));
    // A changed text is validated again: an invalid one refuses the tenant, reuse or not.
    let mut t = demo_tenant();
    t.policies.get_mut("onlys3").unwrap().versions[0].document =
        allow("s3:*", "*").replace("Allow", "Allowed");
    let e = reusing(t, 3, &v1).unwrap_err();
    assert!(e.to_string().contains("managed policy"), "{e}");
    assert!(e.to_string().contains("OnlyS3"), "{e}");
}

#[test]
fn a_group_inline_policy_is_compiled_once_for_all_its_members() {
    let mut t = demo_tenant();
    let mut bob = t.users.get("alice").unwrap().clone();
    bob.name = "bob".into();
    bob.user_id = "AIDABOB".into();
    bob.arn = format!("arn:aws:iam::{A}:user/bob");
    bob.access_keys.clear();
    t.users.insert("bob".into(), bob);
    let snap = compile(t, 1);
    let describe = |user: &str| {
        let entry = snap.user(user).unwrap();
        Arc::clone(
            entry
                .identity
                .iter()
                .find(|p| p.id().ends_with("group/Devs#inline/Describe"))
                .unwrap(),
        )
    };
    assert!(Arc::ptr_eq(&describe("alice"), &describe("bob")));
}
