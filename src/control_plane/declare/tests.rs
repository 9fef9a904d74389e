//! Declarative tenants: export, round trips through JSON and YAML, plans that converge and
//! are empty once converged, ordering, version quotas, refusals.

use serde_json::{json, Value};

use super::{export, plan, PlanError, PlannedAction, SpecError, TenantSpec};
use crate::control_plane::dispatch;
use crate::directory::saml_fixtures;
use crate::directory::{IdGenerator, PasswordHasher, Tenant};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
/// Cheap hashing: unoptimized builds make the production cost slow.
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);

const READ_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const LIST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;
const BOUNDARY_DOC: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
const EDIT_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
const LOGS_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"*"}]}"#;
const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const RESOURCE_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#;
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXch","e":"AQAB"}]}"#;
const ADMIN_ARN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const THUMB_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const THUMB_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// One IdP's metadata for every fixture (each `saml_fixtures::metadata()` makes a new
/// certificate), so that two fixtures export alike.
fn metadata() -> String {
    static METADATA: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(saml_fixtures::metadata);
    METADATA.clone()
}

fn arn(kind_and_name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind_and_name}")
}

fn reports_arn() -> String {
    arn("policy/app/ReadReports")
}

fn boundary_arn() -> String {
    arn("policy/Boundary")
}

struct Fixture {
    tenant: Tenant,
    ids: IdGenerator,
}

impl Fixture {
    fn empty() -> Self {
        Self {
            tenant: Tenant::new(ACCOUNT, 0),
            ids: IdGenerator::seeded(1),
        }
    }

    /// A tenant with a bit of everything, built through `dispatch`; with `secrets`, bob also
    /// holds an access key and a login profile.
    fn full(secrets: bool) -> Self {
        let mut f = Self::empty();
        f.ok("CreateAccountAlias", json!({"AccountAlias": "demo"}));
        f.ok(
            "CreatePolicy",
            json!({"PolicyName": "ReadReports", "Path": "/app/", "PolicyDocument": LIST_DOC,
                   "Description": "Reports, read-only",
                   "Tags": [{"Key": "owner", "Value": "data"}]}),
        );
        // v2 becomes the default: older versions are not declared.
        f.ok(
            "CreatePolicyVersion",
            json!({"PolicyArn": reports_arn(), "PolicyDocument": READ_DOC, "SetAsDefault": true}),
        );
        f.ok(
            "CreatePolicy",
            json!({"PolicyName": "Boundary", "PolicyDocument": BOUNDARY_DOC}),
        );
        f.ok(
            "CreateGroup",
            json!({"GroupName": "readers", "Path": "/teams/"}),
        );
        f.ok("CreateGroup", json!({"GroupName": "Admins"}));
        f.ok(
            "AttachGroupPolicy",
            json!({"GroupName": "readers", "PolicyArn": reports_arn()}),
        );
        f.ok(
            "PutGroupPolicy",
            json!({"GroupName": "readers", "PolicyName": "list", "PolicyDocument": LIST_DOC}),
        );
        f.ok(
            "AttachGroupPolicy",
            json!({"GroupName": "Admins", "PolicyArn": ADMIN_ARN}),
        );
        f.ok(
            "CreateUser",
            json!({"UserName": "alice", "Path": "/eng/", "PermissionsBoundary": boundary_arn(),
                   "Tags": [{"Key": "team", "Value": "core"}, {"Key": "Env", "Value": "prod"}]}),
        );
        f.ok(
            "AddUserToGroup",
            json!({"GroupName": "readers", "UserName": "alice"}),
        );
        f.ok(
            "AddUserToGroup",
            json!({"GroupName": "admins", "UserName": "alice"}),
        );
        f.ok(
            "AttachUserPolicy",
            json!({"UserName": "alice", "PolicyArn": reports_arn()}),
        );
        f.ok(
            "PutUserPolicy",
            json!({"UserName": "alice", "PolicyName": "logs", "PolicyDocument": LOGS_DOC}),
        );
        f.ok("CreateUser", json!({"UserName": "bob"}));
        f.ok(
            "AddUserToGroup",
            json!({"GroupName": "readers", "UserName": "bob"}),
        );
        if secrets {
            f.ok("CreateAccessKey", json!({"UserName": "bob"}));
            f.ok(
                "CreateLoginProfile",
                json!({"UserName": "bob", "Password": "Correct-Horse-9"}),
            );
        }
        f.ok(
            "CreateRole",
            json!({"RoleName": "ci", "Path": "/svc/", "AssumeRolePolicyDocument": TRUST_DOC,
                   "Description": "CI runners", "MaxSessionDuration": 7200,
                   "PermissionsBoundary": boundary_arn(),
                   "Tags": [{"Key": "cost", "Value": "ci"}]}),
        );
        f.ok(
            "AttachRolePolicy",
            json!({"RoleName": "ci", "PolicyArn": reports_arn()}),
        );
        f.ok(
            "AttachRolePolicy",
            json!({"RoleName": "ci", "PolicyArn": ADMIN_ARN}),
        );
        f.ok(
            "PutRolePolicy",
            json!({"RoleName": "ci", "PolicyName": "logs", "PolicyDocument": LOGS_DOC}),
        );
        f.ok(
            "CreateRole",
            json!({"RoleName": "plain", "AssumeRolePolicyDocument": TRUST_DOC}),
        );
        f.ok(
            "CreateOpenIDConnectProvider",
            json!({"Url": "https://oidc.example.com/id/X", "ClientIDList": ["sts.amazonaws.com", "app"],
                   "ThumbprintList": [THUMB_B, THUMB_A], "Jwks": JWKS,
                   "Tags": [{"Key": "cluster", "Value": "prod"}]}),
        );
        f.ok(
            "PutResourcePolicy",
            json!({"ResourceArn": "arn:aws:s3:::reports", "PolicyDocument": RESOURCE_DOC}),
        );
        f.ok(
            "CreateInstanceProfile",
            json!({"InstanceProfileName": "web", "Path": "/app/",
                   "Tags": [{"Key": "tier", "Value": "front"}]}),
        );
        f.ok(
            "AddRoleToInstanceProfile",
            json!({"InstanceProfileName": "web", "RoleName": "ci"}),
        );
        f.ok(
            "CreateInstanceProfile",
            json!({"InstanceProfileName": "spare"}),
        );
        f.ok(
            "CreateSAMLProvider",
            json!({"Name": "corp", "SAMLMetadataDocument": metadata(),
                   "Tags": [{"Key": "idp", "Value": "okta"}]}),
        );
        f.ok(
            "UpdateAccountPasswordPolicy",
            json!({"MinimumPasswordLength": 12, "RequireSymbols": true, "MaxPasswordAge": 90}),
        );
        f
    }

    #[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
    fn ok(&mut self, action: &str, parameters: Value) -> Value {
        dispatch(
            &mut self.tenant,
            &mut self.ids,
            HASHER,
            NOW,
            action,
            &parameters,
        )
        .unwrap_or_else(|e| panic!("{action} failed: {} {e}", e.code()))
        .result
    }

    /// Runs a plan step by step with `dispatch`.
    fn apply(&mut self, actions: &[PlannedAction]) {
        for (i, a) in actions.iter().enumerate() {
            if let Err(e) = dispatch(
                &mut self.tenant,
                &mut self.ids,
                HASHER,
                NOW,
                &a.action,
                &a.parameters,
            ) {
                panic!("step {} {} {} failed: {e}", i + 1, a.action, a.parameters);
            }
        }
    }

    /// Plans `spec`, applies the plan, checks the tenant now exports as the spec and that
    /// planning again gives nothing; returns the plan.
    fn converge(&mut self, spec: &TenantSpec) -> Vec<PlannedAction> {
        let actions = plan(&self.tenant, spec).unwrap_or_else(|e| panic!("plan failed: {e}"));
        self.apply(&actions);
        assert_eq!(export(&self.tenant), spec.normalized(), "did not converge");
        let again = plan(&self.tenant, spec).unwrap();
        assert!(again.is_empty(), "a converged tenant still plans {again:?}");
        actions
    }
}

fn step(action: &str, parameters: Value) -> PlannedAction {
    PlannedAction {
        action: action.to_owned(),
        parameters,
    }
}

fn names(actions: &[PlannedAction]) -> Vec<&str> {
    actions.iter().map(|a| a.action.as_str()).collect()
}

fn doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn export_reads_everything_declarable_sorted_and_readable() {
    let f = Fixture::full(true);
    let spec = export(&f.tenant);
    assert_eq!(spec.account_id, ACCOUNT);
    assert_eq!(spec.account_alias.as_deref(), Some("demo"));

    let names: Vec<&str> = spec.users.iter().map(|u| u.user_name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    let alice = &spec.users[0];
    assert_eq!(alice.path, "/eng/");
    assert_eq!(
        alice.groups,
        ["Admins", "readers"],
        "sorted case-insensitively"
    );
    assert_eq!(alice.managed_policy_arns, [reports_arn()]);
    assert_eq!(alice.permissions_boundary, Some(boundary_arn()));
    assert_eq!(alice.inline_policies["logs"], doc(LOGS_DOC));
    assert_eq!(alice.tags["Env"], "prod");

    let groups: Vec<&str> = spec.groups.iter().map(|g| g.group_name.as_str()).collect();
    assert_eq!(groups, ["Admins", "readers"]);

    let ci = &spec.roles[0];
    assert_eq!(ci.role_name, "ci");
    assert_eq!(ci.description.as_deref(), Some("CI runners"));
    assert_eq!(ci.max_session_duration, 7200);
    assert_eq!(ci.assume_role_policy_document, doc(TRUST_DOC));
    assert_eq!(
        ci.managed_policy_arns,
        [reports_arn(), ADMIN_ARN.to_owned()]
    );

    let reports = &spec.managed_policies[1];
    assert_eq!(reports.policy_name, "ReadReports");
    assert_eq!(
        reports.policy_document,
        doc(READ_DOC),
        "the default version"
    );

    let oidc = &spec.open_id_connect_providers[0];
    assert_eq!(oidc.client_id_list, ["app", "sts.amazonaws.com"]);
    assert_eq!(oidc.thumbprint_list, [THUMB_A, THUMB_B]);
    assert_eq!(oidc.jwks, doc(JWKS));
    assert_eq!(
        spec.resource_policies["arn:aws:s3:::reports"],
        doc(RESOURCE_DOC)
    );

    // Documents are JSON in the file, not escaped strings; defaults are left out.
    let text = spec.to_json().unwrap();
    assert!(text.contains(r#""Statement": ["#), "{text}");
    assert!(!text.contains(r#"\"Statement\""#), "{text}");
    let plain = &serde_json::to_value(&spec).unwrap()["Roles"][1];
    assert_eq!(
        plain,
        &json!({"RoleName": "plain", "AssumeRolePolicyDocument": doc(TRUST_DOC)})
    );
}

#[test]
fn export_leaves_out_secrets() {
    let f = Fixture::full(true);
    let key_id = f.tenant.users["bob"].access_keys[0].access_key_id.clone();
    let secret = f.tenant.users["bob"].access_keys[0]
        .secret
        .expose()
        .to_owned();
    let text = export(&f.tenant).to_json().unwrap();
    for needle in [
        key_id.as_str(),
        secret.as_str(),
        "pbkdf2",
        "\"Password\"",
        "Correct-Horse-9",
        "LoginProfile",
        "AccessKey",
    ] {
        assert!(!text.contains(needle), "{needle} leaked into {text}");
    }
    let yaml = export(&f.tenant).to_yaml().unwrap();
    assert!(!yaml.contains(&key_id));
}

#[test]
fn the_spec_round_trips_through_json() {
    let spec = export(&Fixture::full(true).tenant);
    let text = spec.to_json().unwrap();
    assert_eq!(TenantSpec::from_yaml_or_json(&text).unwrap(), spec);
    assert_eq!(serde_json::from_str::<TenantSpec>(&text).unwrap(), spec);
    let compact = serde_json::to_string(&spec).unwrap();
    assert_eq!(TenantSpec::from_yaml_or_json(&compact).unwrap(), spec);
}

#[test]
fn the_spec_round_trips_through_yaml() {
    let spec = export(&Fixture::full(true).tenant);
    let yaml = spec.to_yaml().unwrap();
    assert!(yaml.contains("AccountId: '111122223333'"), "{yaml}");
    assert!(
        yaml.contains("Statement:"),
        "documents are YAML too: {yaml}"
    );
    assert_eq!(TenantSpec::from_yaml_or_json(&yaml).unwrap(), spec);

    // Hand-written YAML, documents as mappings or as JSON strings.
    let text = r#"
AccountId: "111122223333"
Users:
  - UserName: carol
    Tags: {team: data}
    InlinePolicies:
      read:
        Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: "s3:GetObject", Resource: "*"}
Roles:
  - RoleName: svc
    AssumeRolePolicyDocument: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
"#;
    let spec = TenantSpec::from_yaml_or_json(text).unwrap();
    let mut f = Fixture::empty();
    f.converge(&spec);
    assert_eq!(
        f.tenant.users["carol"].inline_policies["read"],
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#
    );
}

#[test]
fn declared_exported_applied_and_exported_again_compares_equal() {
    let source = Fixture::full(true);
    let spec = export(&source.tenant);
    let text = spec.to_json().unwrap();
    let read = TenantSpec::from_yaml_or_json(&text).unwrap();

    let mut target = Fixture::empty();
    let actions = plan(&target.tenant, &read).unwrap();
    assert!(!actions.is_empty());
    // Nothing about credentials is ever planned.
    assert!(actions.iter().all(|a| !a.action.contains("AccessKey")
        && !a.action.contains("LoginProfile")
        && !a.action.contains("MFA")));
    target.apply(&actions);
    assert_eq!(export(&target.tenant), spec);

    // Applying the same spec again plans nothing, on either tenant.
    assert_eq!(plan(&target.tenant, &read).unwrap(), []);
    assert_eq!(plan(&source.tenant, &read).unwrap(), []);
}

#[test]
fn creations_come_in_a_working_order() {
    let spec = export(&Fixture::full(false).tenant);
    let actions = plan(&Tenant::new(ACCOUNT, 0), &spec).unwrap();
    let position = |action: &str| {
        actions
            .iter()
            .position(|a| a.action == action)
            .unwrap_or_else(|| panic!("no {action}"))
    };
    assert!(position("CreatePolicy") < position("CreateUser"));
    assert!(position("CreateGroup") < position("AddUserToGroup"));
    assert!(position("CreateUser") < position("AddUserToGroup"));
    assert!(position("CreateRole") < position("AttachRolePolicy"));
    assert!(position("CreatePolicy") < position("AttachGroupPolicy"));
    // One policy version: older versions are not declared.
    assert!(!names(&actions).contains(&"CreatePolicyVersion"));
}

#[test]
fn a_changed_spec_plans_the_expected_actions_and_converges() {
    let mut f = Fixture::full(true);
    let mut spec = export(&f.tenant);
    // Edit a managed policy's document.
    spec.managed_policies[1].policy_document = doc(EDIT_DOC);
    // Take alice out of readers.
    spec.users[0].groups.retain(|g| g != "readers");
    // Delete role ci, which leaves its instance profile first.
    spec.roles.retain(|r| r.role_name != "ci");
    spec.instance_profiles[1].roles.clear();
    // Tag bob.
    spec.users[1].tags.insert("team".into(), "ops".into());

    let actions = f.converge(&spec);
    assert_eq!(
        actions,
        [
            step(
                "DetachRolePolicy",
                json!({"PolicyArn": reports_arn(), "RoleName": "ci"})
            ),
            step(
                "DetachRolePolicy",
                json!({"PolicyArn": ADMIN_ARN, "RoleName": "ci"})
            ),
            step(
                "RemoveUserFromGroup",
                json!({"GroupName": "readers", "UserName": "alice"})
            ),
            step(
                "DeleteRolePolicy",
                json!({"PolicyName": "logs", "RoleName": "ci"})
            ),
            step(
                "RemoveRoleFromInstanceProfile",
                json!({"InstanceProfileName": "web", "RoleName": "ci"})
            ),
            step("DeleteRole", json!({"RoleName": "ci"})),
            step(
                "CreatePolicyVersion",
                json!({"PolicyArn": reports_arn(), "PolicyDocument": EDIT_DOC, "SetAsDefault": true})
            ),
            step(
                "TagUser",
                json!({"UserName": "bob", "Tags": [{"Key": "team", "Value": "ops"}]})
            ),
        ]
    );
    // bob kept his credentials.
    assert_eq!(f.tenant.users["bob"].access_keys.len(), 1);
    assert!(f.tenant.users["bob"].login_profile.is_some());
}

#[test]
fn updates_in_place_cover_tags_boundaries_roles_inline_attachments_and_federation() {
    let mut f = Fixture::full(true);
    let mut spec = export(&f.tenant);
    {
        let alice = &mut spec.users[0];
        alice.tags.remove("team");
        alice.tags.remove("Env");
        alice.tags.insert("env".into(), "prod".into()); // the key's case changes
        alice.permissions_boundary = None;
        alice.managed_policy_arns = vec![ADMIN_ARN.to_owned()];
        alice.inline_policies.clear();
        alice.path = "/ops/".into();
    }
    {
        let ci = &mut spec.roles[0];
        ci.description = None;
        ci.max_session_duration = 3600;
        ci.assume_role_policy_document = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        );
        ci.permissions_boundary = Some(ADMIN_ARN.to_owned());
        ci.inline_policies.insert("list".into(), doc(LIST_DOC));
        ci.tags.clear();
    }
    spec.groups[1].inline_policies.clear();
    spec.groups[1].path = "/".into();
    spec.managed_policies[1]
        .tags
        .insert("tier".into(), "1".into());
    {
        let oidc = &mut spec.open_id_connect_providers[0];
        oidc.client_id_list = vec!["app".into(), "other".into()];
        oidc.thumbprint_list = vec![THUMB_A.into()];
        oidc.jwks = doc(
            r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k2","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
        );
    }
    spec.resource_policies.clear();
    spec.resource_policies.insert(
        "arn:aws:s3:::other".into(),
        doc(RESOURCE_DOC.replace("reports", "other").as_str()),
    );
    spec.account_alias = Some("demo2".into());

    let actions = f.converge(&spec);
    for expected in [
        "UpdateUser",
        "UntagUser",
        "TagUser",
        "DeleteUserPermissionsBoundary",
        "DetachUserPolicy",
        "AttachUserPolicy",
        "DeleteUserPolicy",
        "UpdateRole",
        "UpdateAssumeRolePolicy",
        "PutRolePermissionsBoundary",
        "PutRolePolicy",
        "UntagRole",
        "UpdateGroup",
        "DeleteGroupPolicy",
        "TagPolicy",
        "RemoveClientIDFromOpenIDConnectProvider",
        "AddClientIDToOpenIDConnectProvider",
        "UpdateOpenIDConnectProviderThumbprint",
        "UpdateOpenIDConnectProviderJwks",
        "DeleteResourcePolicy",
        "PutResourcePolicy",
        "CreateAccountAlias",
    ] {
        assert!(
            names(&actions).contains(&expected),
            "no {expected} in {actions:?}"
        );
    }
    // Nothing was deleted and created again.
    assert!(!names(&actions)
        .iter()
        .any(|a| a.starts_with("Create") && *a != "CreateAccountAlias"));
    assert_eq!(f.tenant.users["alice"].arn, arn("user/ops/alice"));
    assert_eq!(f.tenant.roles["ci"].description.as_deref(), Some(""));

    // And back again.
    let original = export(&Fixture::full(true).tenant);
    f.converge(&original);
}

#[test]
fn replacements_delete_and_create_again() {
    let mut f = Fixture::full(false);
    let mut spec = export(&f.tenant);
    // Descriptions are immutable: the policy is replaced, detached and attached again.
    spec.managed_policies[0].description = Some("the boundary".into());
    // A role's path cannot change: it is replaced.
    spec.roles[0].path = "/build/".into();
    // A user's name case can change in place.
    spec.users[1].user_name = "Bob".into();
    // An OIDC provider cannot be retagged: it is replaced.
    spec.open_id_connect_providers[0]
        .tags
        .insert("zone".into(), "a".into());

    let actions = f.converge(&spec);
    let order = names(&actions);
    let position = |action: &str| order.iter().position(|a| *a == action).unwrap();
    assert!(position("DeleteUserPermissionsBoundary") < position("DeletePolicy"));
    assert!(position("DeleteRole") < position("DeletePolicy"));
    assert!(position("DeletePolicy") < position("CreatePolicy"));
    assert!(position("CreatePolicy") < position("PutUserPermissionsBoundary"));
    assert!(position("DeleteRole") < position("CreateRole"));
    assert!(order.contains(&"DeleteOpenIDConnectProvider"));
    assert!(order.contains(&"CreateOpenIDConnectProvider"));
    assert!(actions.contains(&step(
        "UpdateUser",
        json!({"UserName": "bob", "NewUserName": "Bob"})
    )));
    assert_eq!(f.tenant.roles["ci"].arn, arn("role/build/ci"));

    // A renamed user is a new user: delete and create.
    spec.users[1].user_name = "robert".into();
    let actions = f.converge(&spec);
    assert!(actions.contains(&step(
        "RemoveUserFromGroup",
        json!({"GroupName": "readers", "UserName": "Bob"})
    )));
    assert!(actions.contains(&step("DeleteUser", json!({"UserName": "Bob"}))));
    assert!(names(&actions).contains(&"CreateUser"));
}

#[test]
fn an_empty_spec_deletes_everything_in_order_and_back() {
    let mut f = Fixture::full(false);
    let original = export(&f.tenant);
    let empty: TenantSpec = serde_json::from_value(json!({"AccountId": ACCOUNT})).unwrap();
    let actions = f.converge(&empty);
    assert!(actions.contains(&step(
        "DeletePolicyVersion",
        json!({"PolicyArn": reports_arn(), "VersionId": "v1"})
    )));
    assert!(actions.contains(&step("DeleteAccountAlias", json!({"AccountAlias": "demo"}))));
    assert!(f.tenant.users.is_empty() && f.tenant.policies.is_empty());
    assert!(f.tenant.oidc_providers.is_empty() && f.tenant.resource_policies.is_empty());
    f.converge(&original);
}

#[test]
fn a_policy_at_the_version_quota_loses_its_oldest_other_version_first() {
    let mut f = Fixture::empty();
    let policy = arn("policy/P");
    let version = |n: u32| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b{n}/*"}}]}}"#
        )
    };
    f.ok(
        "CreatePolicy",
        json!({"PolicyName": "P", "PolicyDocument": version(1)}),
    );
    for n in 2..=5 {
        f.ok(
            "CreatePolicyVersion",
            json!({"PolicyArn": policy, "PolicyDocument": version(n), "SetAsDefault": n == 3}),
        );
    }
    assert_eq!(f.tenant.policies["p"].versions.len(), 5);
    assert_eq!(f.tenant.policies["p"].default_version_id, "v3");

    // A new document: v1 (the oldest, not the default) makes room.
    let mut spec = export(&f.tenant);
    spec.managed_policies[0].policy_document = doc(&version(6));
    let actions = f.converge(&spec);
    assert_eq!(
        actions,
        [
            step(
                "DeletePolicyVersion",
                json!({"PolicyArn": policy, "VersionId": "v1"})
            ),
            step(
                "CreatePolicyVersion",
                json!({"PolicyArn": policy, "PolicyDocument": version(6), "SetAsDefault": true})
            ),
        ]
    );
    assert_eq!(f.tenant.policies["p"].default_version_id, "v6");

    // Going back to a document a kept version has makes that version the default.
    spec.managed_policies[0].policy_document = doc(&version(4));
    let actions = f.converge(&spec);
    assert_eq!(
        actions,
        [step(
            "SetDefaultPolicyVersion",
            json!({"PolicyArn": policy, "VersionId": "v4"})
        )]
    );

    // At a quota of one version nothing can make room.
    let mut g = Fixture::empty();
    g.tenant.quotas.versions_per_policy = 1;
    g.ok(
        "CreatePolicy",
        json!({"PolicyName": "P", "PolicyDocument": version(1)}),
    );
    let mut spec = export(&g.tenant);
    spec.managed_policies[0].policy_document = doc(&version(2));
    assert!(matches!(
        plan(&g.tenant, &spec),
        Err(PlanError::VersionQuota { versions: 1, .. })
    ));
}

#[test]
fn users_holding_credentials_are_never_deleted() {
    let f = Fixture::full(true);
    let mut spec = export(&f.tenant);
    spec.users.retain(|u| u.user_name != "bob");
    let err = plan(&f.tenant, &spec).unwrap_err();
    assert_eq!(
        err,
        PlanError::UserHoldsCredentials {
            account: ACCOUNT.into(),
            user: "bob".into(),
            credentials: "access keys, a login profile".into(),
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("user bob of account 111122223333"),
        "{message}"
    );
    assert!(message.contains("access keys"), "{message}");

    // Renaming him is a deletion too.
    let mut spec = export(&f.tenant);
    spec.users[1].user_name = "robert".into();
    assert!(matches!(
        plan(&f.tenant, &spec),
        Err(PlanError::UserHoldsCredentials { user, .. }) if user == "bob"
    ));

    // Without credentials he goes.
    let g = Fixture::full(false);
    let mut spec = export(&g.tenant);
    spec.users.retain(|u| u.user_name != "bob");
    let actions = plan(&g.tenant, &spec).unwrap();
    assert!(actions.contains(&step("DeleteUser", json!({"UserName": "bob"}))));
}

#[test]
fn document_formatting_and_key_order_cause_no_churn() {
    let f = Fixture::full(true);
    let mut spec = export(&f.tenant);
    // Pretty-printed strings with the keys in another order.
    let reordered = r#"{
        "Statement": [ { "Resource": "*", "Action": "logs:PutLogEvents", "Effect": "Allow" } ],
        "Version": "2012-10-17"
    }"#;
    spec.users[0]
        .inline_policies
        .insert("logs".into(), Value::String(reordered.into()));
    spec.roles[0]
        .inline_policies
        .insert("logs".into(), doc(reordered));
    spec.roles[0].assume_role_policy_document =
        Value::String(serde_json::to_string_pretty(&doc(TRUST_DOC)).unwrap());
    spec.managed_policies[1].policy_document = Value::String(READ_DOC.into());
    // Lists in another order, a group named in another case.
    spec.users[0].groups = vec!["READERS".into(), "admins".into()];
    spec.roles[0].managed_policy_arns.reverse();
    spec.open_id_connect_providers[0].thumbprint_list.reverse();
    spec.open_id_connect_providers[0].client_id_list.reverse();
    spec.users.reverse();
    assert_eq!(plan(&f.tenant, &spec).unwrap(), []);
}

#[test]
fn unknown_fields_are_rejected() {
    let typo_top = r#"{"AccountId": "111122223333", "Userz": []}"#;
    let err = TenantSpec::from_yaml_or_json(typo_top).unwrap_err();
    assert!(
        matches!(&err, SpecError::Json(m) if m.contains("unknown field `Userz`")),
        "{err}"
    );
    let typo_nested = r#"{"AccountId": "111122223333", "Users": [{"UserName": "a", "Tag": {}}]}"#;
    let err = TenantSpec::from_yaml_or_json(typo_nested).unwrap_err();
    assert!(err.to_string().contains("unknown field `Tag`"), "{err}");
    let typo_yaml =
        "AccountId: '111122223333'\nRoles:\n  - RoleName: r\n    AssumeRolePolicy: {}\n";
    let err = TenantSpec::from_yaml_or_json(typo_yaml).unwrap_err();
    assert!(
        matches!(&err, SpecError::Yaml(m) if m.contains("unknown field `AssumeRolePolicy`")),
        "{err}"
    );
    assert!(
        TenantSpec::from_yaml_or_json(r#"{"Users": []}"#).is_err(),
        "AccountId is required"
    );
}

#[test]
fn the_account_must_match() {
    let f = Fixture::full(true);
    let mut spec = export(&f.tenant);
    spec.account_id = "444455556666".into();
    let err = plan(&f.tenant, &spec).unwrap_err();
    assert_eq!(
        err,
        PlanError::AccountMismatch {
            tenant: ACCOUNT.into(),
            spec: "444455556666".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the spec declares account 444455556666, but the tenant is account 111122223333"
    );
}

#[test]
fn references_must_be_declared_and_names_unique() {
    let f = Fixture::full(true);

    let mut spec = export(&f.tenant);
    spec.users[0].groups.push("ghosts".into());
    assert!(matches!(
        plan(&f.tenant, &spec),
        Err(PlanError::UnknownGroup { user, group, .. }) if user == "alice" && group == "ghosts"
    ));

    let mut spec = export(&f.tenant);
    spec.roles[0]
        .managed_policy_arns
        .push(arn("policy/Missing"));
    let err = plan(&f.tenant, &spec).unwrap_err();
    assert!(
        matches!(&err, PlanError::UnknownPolicy { holder, .. } if holder == "role ci"),
        "{err}"
    );

    // A policy that is no longer declared cannot stay attached.
    let mut spec = export(&f.tenant);
    spec.managed_policies
        .retain(|p| p.policy_name != "Boundary");
    assert!(matches!(
        plan(&f.tenant, &spec),
        Err(PlanError::UnknownPolicy { holder, .. }) if holder == "user alice"
    ));

    let mut spec = export(&f.tenant);
    let mut twin = spec.groups[0].clone();
    twin.group_name = "ADMINS".into();
    spec.groups.push(twin);
    let err = plan(&f.tenant, &spec).unwrap_err();
    assert!(
        matches!(&err, PlanError::Duplicate { what, name, .. } if what == "group" && name == "ADMINS"),
        "{err}"
    );

    let mut spec = export(&f.tenant);
    spec.users[0].tags.insert("ENV".into(), "x".into());
    assert!(matches!(
        plan(&f.tenant, &spec),
        Err(PlanError::Duplicate { .. })
    ));
}

#[test]
fn a_step_that_would_be_refused_fails_the_plan_naming_it() {
    let f = Fixture::full(true);
    let mut spec = export(&f.tenant);
    spec.roles[1].assume_role_policy_document = json!({"Version": "2012-10-17", "Statement": []});
    spec.roles[1].role_name = "new-role".into();
    let err = plan(&f.tenant, &spec).unwrap_err();
    let PlanError::Rejected {
        action, subject, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(action, "CreateRole");
    assert_eq!(subject, "RoleName new-role");
    assert!(err.to_string().contains("account 111122223333"), "{err}");
    // The tenant is untouched by planning.
    assert_eq!(export(&f.tenant), export(&Fixture::full(true).tenant));
}

#[test]
fn planned_actions_serialize_with_aws_names() {
    let a = step("DeleteUser", json!({"UserName": "bob"}));
    let text = serde_json::to_string(&a).unwrap();
    assert_eq!(
        text,
        r#"{"Action":"DeleteUser","Parameters":{"UserName":"bob"}}"#
    );
    assert_eq!(serde_json::from_str::<PlannedAction>(&text).unwrap(), a);
}

/// Variants of the full tenant's spec, each touching different parts.
fn variants() -> Vec<TenantSpec> {
    let full = export(&Fixture::full(false).tenant);
    let mut edited = full.clone();
    edited.managed_policies[1].policy_document = doc(EDIT_DOC);
    edited.users[0].groups.clear();
    edited.users[0].tags.insert("new".into(), "tag".into());
    edited.roles.remove(0);
    // ci is gone: its instance profile keeps no role; the spare one goes.
    edited.instance_profiles[1].roles.clear();
    edited.instance_profiles.remove(0);
    edited.saml_providers[0]
        .tags
        .insert("owner".into(), "it".into());
    edited.groups.remove(1);
    edited.users[1].groups.clear();
    let mut moved = full.clone();
    moved.managed_policies[0].description = Some("replaced".into());
    moved.managed_policies[0].path = "/b/".into();
    let boundary = arn("policy/b/Boundary");
    moved.users[0].permissions_boundary = Some(boundary.clone());
    moved.roles[0].permissions_boundary = Some(boundary);
    moved.roles[0].path = "/".into();
    moved.users[1].user_name = "BOB".into();
    moved.groups[0].group_name = "admins".into();
    moved.open_id_connect_providers[0].tags.clear();
    moved.account_alias = None;
    // ci is replaced (a new path): its instance profile gets the new role.
    moved.instance_profiles[1].path = "/".into();
    moved.saml_providers[0].name = "Corp".into();
    if let Some(policy) = moved.password_policy.as_mut() {
        policy.minimum_password_length = Some(20);
        policy.password_reuse_prevention = Some(3);
    }
    let mut swapped = full.clone();
    swapped.users[1].managed_policy_arns = vec![reports_arn(), ADMIN_ARN.into()];
    swapped.users[1].permissions_boundary = Some(boundary_arn());
    swapped.users[0].managed_policy_arns.clear();
    swapped.users[0].permissions_boundary = None;
    swapped.groups[1].managed_policy_arns = vec![boundary_arn()];
    swapped.roles[1].inline_policies = full.roles[0].inline_policies.clone();
    swapped.roles[0].inline_policies.clear();
    swapped.instance_profiles[1].roles = vec!["plain".into()];
    swapped.instance_profiles[0].roles = vec!["CI".into()];
    swapped.saml_providers.clear();
    swapped.password_policy = None;
    let empty: TenantSpec = serde_json::from_value(json!({"AccountId": ACCOUNT})).unwrap();
    vec![full, edited, moved, swapped, empty]
}

#[test]
fn any_variant_converges_to_any_other() {
    let variants = variants();
    for (i, from) in variants.iter().enumerate() {
        for (j, to) in variants.iter().enumerate() {
            let mut f = Fixture::empty();
            f.converge(from);
            let actions = plan(&f.tenant, to).unwrap_or_else(|e| panic!("{i} -> {j}: {e}"));
            f.apply(&actions);
            assert_eq!(export(&f.tenant), to.normalized(), "{i} -> {j}");
            assert_eq!(plan(&f.tenant, to).unwrap(), [], "{i} -> {j}");
            if i == j {
                assert!(actions.is_empty(), "{i} -> {i}: {actions:?}");
            }
        }
    }
}

#[test]
fn pod_identity_associations_are_declared_exported_and_converge() {
    let provider = arn("oidc-provider/oidc.example.com/id/X");
    let mut f = Fixture::full(false);
    f.ok(
        "CreatePodIdentityAssociation",
        json!({"clusterName": "prod", "oidcProviderArn": provider, "namespace": "web",
               "serviceAccount": "api", "roleArn": arn("role/plain"), "tags": {"team": "data"}}),
    );
    let spec = export(&f.tenant);
    assert_eq!(spec.pod_identity_associations.len(), 1);
    let yaml = spec.to_yaml().unwrap();
    assert!(yaml.contains("PodIdentityAssociations:"), "{yaml}");
    assert!(yaml.contains("OpenIDConnectProviderArn:"), "{yaml}");
    assert_eq!(TenantSpec::from_yaml_or_json(&yaml).unwrap(), spec);

    // From nothing: the association is created last, after its role and provider.
    let mut target = Fixture::empty();
    let actions = target.converge(&spec);
    assert_eq!(
        names(&actions).last(),
        Some(&"CreatePodIdentityAssociation")
    );

    // A new role is an update in place; new tags replace the association.
    let mut changed = spec.clone();
    changed.pod_identity_associations[0].role_arn = arn("role/svc/ci");
    let actions = target.converge(&changed);
    assert_eq!(names(&actions), ["UpdatePodIdentityAssociation"]);
    changed.pod_identity_associations[0]
        .tags
        .insert("tier".into(), "1".into());
    let actions = target.converge(&changed);
    assert_eq!(
        names(&actions),
        [
            "DeletePodIdentityAssociation",
            "CreatePodIdentityAssociation"
        ]
    );

    // Gone from the spec with its role and provider: the association is deleted first.
    let mut gone = changed.clone();
    gone.pod_identity_associations.clear();
    gone.roles.retain(|r| r.role_name != "ci");
    gone.instance_profiles.clear();
    gone.open_id_connect_providers.clear();
    let actions = target.converge(&gone);
    assert_eq!(names(&actions)[0], "DeletePodIdentityAssociation");

    // Two declarations of one service account are refused.
    let mut twice = spec.clone();
    twice
        .pod_identity_associations
        .push(spec.pod_identity_associations[0].clone());
    assert!(matches!(
        plan(&target.tenant, &twice),
        Err(PlanError::Duplicate { .. })
    ));
}

#[test]
fn service_linked_roles_are_neither_exported_nor_deleted() {
    let mut f = Fixture::full(false);
    let original = export(&f.tenant);
    f.ok(
        "CreateServiceLinkedRole",
        json!({"AWSServiceName": "ecs.amazonaws.com"}),
    );
    assert_eq!(
        export(&f.tenant),
        original,
        "the service's role is not the spec's"
    );
    assert!(plan(&f.tenant, &original).unwrap().is_empty());
    let empty: TenantSpec = serde_json::from_value(json!({"AccountId": ACCOUNT})).unwrap();
    let actions = f.converge(&empty);
    assert!(!actions
        .iter()
        .any(|a| a.parameters["RoleName"] == "AWSServiceRoleForECS"));
    assert_eq!(
        f.tenant.roles.len(),
        1,
        "only the service-linked role is left"
    );
}

#[test]
fn instance_profiles_saml_providers_and_the_password_policy_are_exported() {
    let spec = export(&Fixture::full(true).tenant);
    let text = spec.to_json().unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value["InstanceProfiles"],
        json!([
            {"InstanceProfileName": "spare"},
            {"InstanceProfileName": "web", "Path": "/app/", "Roles": ["ci"],
             "Tags": {"tier": "front"}}
        ])
    );
    assert_eq!(value["SAMLProviders"][0]["Name"], "corp");
    assert_eq!(
        value["SAMLProviders"][0]["SAMLMetadataDocument"],
        metadata()
    );
    assert_eq!(value["SAMLProviders"][0]["Tags"], json!({"idp": "okta"}));
    // AWS's defaults are left out: only what the operator set is written.
    assert_eq!(
        value["PasswordPolicy"],
        json!({"MinimumPasswordLength": 12, "RequireSymbols": true, "MaxPasswordAge": 90})
    );
}

#[test]
fn a_role_leaves_its_instance_profile_before_it_is_deleted_or_replaced() {
    let mut f = Fixture::full(false);
    let mut spec = export(&f.tenant);
    // ci moves to /: it is replaced, so it leaves `web` first and joins it again after.
    spec.roles[0].path = "/".into();
    let actions = f.converge(&spec);
    let position = |action: &str, name: &str| {
        actions
            .iter()
            .position(|a| a.action == action && a.parameters.to_string().contains(name))
            .unwrap_or_else(|| panic!("no {action} of {name} in {:?}", names(&actions)))
    };
    assert!(position("RemoveRoleFromInstanceProfile", "ci") < position("DeleteRole", "ci"));
    assert!(position("CreateRole", "ci") < position("AddRoleToInstanceProfile", "ci"));
    let web = f.tenant.get_instance_profile("web").unwrap();
    assert_eq!(web.roles, ["ci"]);

    // Leaving the role and the profile out deletes both, the profile emptied first.
    spec.roles.remove(0);
    spec.instance_profiles
        .retain(|p| p.instance_profile_name != "web");
    let actions = f.converge(&spec);
    let position = |action: &str| {
        actions
            .iter()
            .position(|a| a.action == action)
            .unwrap_or_else(|| panic!("no {action} in {:?}", names(&actions)))
    };
    assert!(position("RemoveRoleFromInstanceProfile") < position("DeleteInstanceProfile"));
    assert!(position("DeleteInstanceProfile") < position("DeleteRole"));
    assert!(f.tenant.get_instance_profile("web").is_err());
}

#[test]
fn a_saml_provider_is_updated_in_place_and_replaced_on_a_new_name_case() {
    let mut f = Fixture::full(false);
    let mut spec = export(&f.tenant);
    let arn = f.tenant.saml_providers.values().next().unwrap().arn.clone();
    spec.saml_providers[0].saml_metadata_document = metadata().replace("Example IdP", "Corp IdP");
    spec.saml_providers[0].tags.clear();
    let actions = f.converge(&spec);
    assert_eq!(
        actions,
        [
            step(
                "UpdateSAMLProvider",
                json!({"SAMLProviderArn": arn,
                       "SAMLMetadataDocument": spec.saml_providers[0].saml_metadata_document}),
            ),
            step(
                "UntagSAMLProvider",
                json!({"SAMLProviderArn": arn, "TagKeys": ["idp"]}),
            ),
        ]
    );
    spec.saml_providers[0].name = "CORP".into();
    let actions = f.converge(&spec);
    assert_eq!(
        names(&actions),
        ["DeleteSAMLProvider", "CreateSAMLProvider"]
    );
}

#[test]
fn the_password_policy_is_set_whole_and_deleted_when_left_out() {
    let mut f = Fixture::full(false);
    let mut spec = export(&f.tenant);
    let policy = spec.password_policy.as_mut().unwrap();
    policy.max_password_age = None;
    policy.hard_expiry = true;
    let actions = f.converge(&spec);
    // Every parameter is sent, so whatever was set before and is not declared now is reset.
    assert_eq!(
        actions,
        [step(
            "UpdateAccountPasswordPolicy",
            json!({"MinimumPasswordLength": 12, "RequireSymbols": true, "RequireNumbers": false,
                   "RequireUppercaseCharacters": false, "RequireLowercaseCharacters": false,
                   "AllowUsersToChangePassword": false, "HardExpiry": true}),
        )]
    );
    assert_eq!(
        f.tenant.password_policy.as_ref().unwrap().max_password_age,
        None
    );
    spec.password_policy = None;
    let actions = f.converge(&spec);
    assert_eq!(names(&actions), ["DeleteAccountPasswordPolicy"]);
    assert!(f.tenant.password_policy.is_none());
    // A declared policy of AWS's defaults only is still a policy.
    spec.password_policy = Some(super::PasswordPolicySpec::default());
    let actions = f.converge(&spec);
    assert_eq!(names(&actions), ["UpdateAccountPasswordPolicy"]);
    assert!(f.tenant.password_policy.is_some());
}

#[test]
fn an_instance_profile_must_hold_declared_roles() {
    let f = Fixture::full(false);
    let mut spec = export(&f.tenant);
    spec.instance_profiles[0].roles = vec!["ghost".into()];
    let err = plan(&f.tenant, &spec).unwrap_err();
    assert!(matches!(&err, PlanError::UnknownRole { role, .. } if role == "ghost"));
    assert!(err
        .to_string()
        .contains("instance profile spare holds role ghost"));
    spec.instance_profiles[0].roles.clear();
    spec.instance_profiles
        .push(spec.instance_profiles[0].clone());
    spec.instance_profiles[1].instance_profile_name = "SPARE".into();
    assert!(matches!(
        plan(&f.tenant, &spec),
        Err(PlanError::Duplicate { what, .. }) if what == "instance profile"
    ));
}
