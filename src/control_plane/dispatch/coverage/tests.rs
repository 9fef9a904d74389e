use super::*;

/// The README, read from the source tree.
fn readme_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

#[test]
fn the_readme_lists_what_the_model_table_says() {
    let model = ApiModel::embedded().unwrap();
    let expected = markdown(model);
    let path = readme_path();
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("the README has the coverage markers");
    let end = readme
        .find(END)
        .expect("the README has the coverage end marker")
        + END.len();
    let current = &readme[start..end];
    if current != expected {
        if std::env::var_os("IAMLET_BLESS").is_some() {
            let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!(
                "the README's coverage section is not what the model table says; \
                 run `IAMLET_BLESS=1 cargo test --lib coverage` to regenerate it"
            );
        }
    }
}

#[test]
fn served_and_refused_operations_are_listed_with_counts() {
    let model = ApiModel::embedded().unwrap();
    let text = markdown(model);
    assert!(text.starts_with(BEGIN) && text.ends_with(END));
    assert!(text.contains("`CreateUser`"), "{text}");
    assert!(
        text.contains("| `UploadServerCertificate`, `GetServerCertificate`"),
        "{text}"
    );
    let iam = model
        .operations()
        .iter()
        .filter(|op| op.service == Service::Iam)
        .count();
    assert!(
        text.contains(&format!("of the {iam} operations of AWS's IAM model")),
        "{text}"
    );
}

// --- every operation of the model, through the admin API ---

use serde_json::{json, Map, Value};
use std::sync::Arc;

use crate::control_plane::api_model::Operation;
use crate::control_plane::{AdminError, ControlPlane, SqliteStore};
use crate::directory::totp::{code_at_step, time_step};
use crate::directory::{IdGenerator, PasswordHasher};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const IDENTITY_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const RESOURCE_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#;
const SCP_DOC: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXch","e":"AQAB"}]}"#;
const PASSWORD: &str = "Correct-Horse-9";

fn now() -> i64 {
    NOW
}

/// A tenant holding one of every kind of entity, and the values that name them.
struct World {
    cp: ControlPlane,
    values: Map<String, Value>,
    /// Values for one operation, where the world's would not do (a create needs a new
    /// name); members named here are sent even when the model calls them optional.
    overrides: Vec<(&'static str, &'static str, Value)>,
}

// === impl World ===

impl World {
    fn call(&self, action: &str, parameters: &Value) -> Result<Value, AdminError> {
        self.cp
            .call(ACCOUNT, "coverage-test", action, parameters)
            .map(|(result, _)| result)
    }

    fn ok(&self, action: &str, parameters: &Value) -> Value {
        self.call(action, parameters)
            .unwrap_or_else(|e| panic!("setting up, {action} failed: {} {e}", e.code()))
    }

    fn set(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_owned(), value);
    }

    fn new() -> Self {
        let store = SqliteStore::open_in_memory().unwrap();
        let cp = ControlPlane::open(Arc::new(store), IdGenerator::seeded(7))
            .unwrap()
            .with_password_hasher(PasswordHasher::with_iterations(2))
            .with_clock(now);
        cp.create_tenant(ACCOUNT, None, "coverage-test").unwrap();
        let mut w = Self {
            cp,
            values: Map::new(),
            overrides: Vec::new(),
        };
        let arn = |path: &str| format!("arn:aws:iam::{ACCOUNT}:{path}");
        w.ok("CreateUser", &json!({"UserName": "alice"}));
        w.ok("CreateUser", &json!({"UserName": "bob"}));
        w.ok(
            "CreateLoginProfile",
            &json!({"UserName": "alice", "Password": PASSWORD}),
        );
        let key = w.ok("CreateAccessKey", &json!({"UserName": "alice"}));
        w.ok("CreateGroup", &json!({"GroupName": "devs"}));
        w.ok(
            "AddUserToGroup",
            &json!({"GroupName": "devs", "UserName": "alice"}),
        );
        w.ok(
            "CreateRole",
            &json!({"RoleName": "app", "AssumeRolePolicyDocument": TRUST_DOC}),
        );
        let policy = w.ok(
            "CreatePolicy",
            &json!({"PolicyName": "reader", "PolicyDocument": IDENTITY_DOC}),
        );
        let policy_arn = policy["Policy"]["Arn"].clone();
        w.ok(
            "CreatePolicyVersion",
            &json!({"PolicyArn": policy_arn, "PolicyDocument": IDENTITY_DOC}),
        );
        w.ok(
            "AttachUserPolicy",
            &json!({"UserName": "alice", "PolicyArn": policy_arn}),
        );
        w.ok(
            "AttachRolePolicy",
            &json!({"RoleName": "app", "PolicyArn": policy_arn}),
        );
        for (action, entity, name) in [
            ("PutUserPolicy", "UserName", "alice"),
            ("PutGroupPolicy", "GroupName", "devs"),
            ("PutRolePolicy", "RoleName", "app"),
        ] {
            w.ok(
                action,
                &json!({entity: name, "PolicyName": "inline", "PolicyDocument": IDENTITY_DOC}),
            );
        }
        for (action, entity, name) in [
            ("TagUser", "UserName", "alice"),
            ("TagRole", "RoleName", "app"),
        ] {
            w.ok(
                action,
                &json!({entity: name, "Tags": [{"Key": "team", "Value": "data"}]}),
            );
        }
        w.ok(
            "TagPolicy",
            &json!({"PolicyArn": policy_arn, "Tags": [{"Key": "team", "Value": "data"}]}),
        );
        let device = w.ok(
            "CreateVirtualMFADevice",
            &json!({"VirtualMFADeviceName": "alice-phone"}),
        );
        let serial = device["VirtualMFADevice"]["SerialNumber"].clone();
        let seed = device["VirtualMFADevice"]["Base32StringSeed"]
            .as_str()
            .unwrap()
            .to_owned();
        let step = time_step(NOW);
        w.ok(
            "EnableMFADevice",
            &json!({"UserName": "alice", "SerialNumber": serial,
                    "AuthenticationCode1": code_at_step(&seed, step - 1).unwrap(),
                    "AuthenticationCode2": code_at_step(&seed, step).unwrap()}),
        );
        let spare = w.ok(
            "CreateVirtualMFADevice",
            &json!({"VirtualMFADeviceName": "spare-phone"}),
        );
        let spare_serial = spare["VirtualMFADevice"]["SerialNumber"].clone();
        let spare_seed = spare["VirtualMFADevice"]["Base32StringSeed"]
            .as_str()
            .unwrap()
            .to_owned();
        let oidc = w.ok(
            "CreateOpenIDConnectProvider",
            &json!({"Url": "https://oidc.example.com", "ClientIDList": ["sts.amazonaws.com"], "Jwks": JWKS}),
        );
        w.ok(
            "PutResourcePolicy",
            &json!({"ResourceArn": "arn:aws:s3:::reports", "PolicyDocument": RESOURCE_DOC}),
        );
        w.ok(
            "PutServiceControlPolicy",
            &json!({"PolicyName": "guard", "PolicyDocument": SCP_DOC}),
        );
        w.ok("CreateAccountAlias", &json!({"AccountAlias": "acme-data"}));
        let association = w.ok(
            "CreatePodIdentityAssociation",
            &json!({"clusterName": "prod", "oidcProviderArn": oidc["OpenIDConnectProviderArn"],
                    "namespace": "web", "serviceAccount": "api", "roleArn": arn("role/app")}),
        );

        w.ok(
            "UpdateAccountPasswordPolicy",
            &json!({"MinimumPasswordLength": 8, "MaxPasswordAge": 90, "AllowUsersToChangePassword": true}),
        );
        w.ok(
            "CreateInstanceProfile",
            &json!({"InstanceProfileName": "web"}),
        );
        w.ok(
            "CreateInstanceProfile",
            &json!({"InstanceProfileName": "spare"}),
        );
        w.ok(
            "AddRoleToInstanceProfile",
            &json!({"InstanceProfileName": "web", "RoleName": "app"}),
        );
        let metadata = crate::directory::saml_fixtures::metadata();
        let saml = w.ok(
            "CreateSAMLProvider",
            &json!({"Name": "corp", "SAMLMetadataDocument": metadata}),
        );
        let linked = w.ok(
            "CreateServiceLinkedRole",
            &json!({"AWSServiceName": "elasticloadbalancing.amazonaws.com"}),
        );
        let task = w.ok(
            "DeleteServiceLinkedRole",
            &json!({"RoleName": linked["Role"]["RoleName"]}),
        );
        let analyzer = w.ok(
            "CreateAnalyzer",
            &json!({"analyzerName": "unused", "type": "ACCOUNT_UNUSED_ACCESS"}),
        );
        let alice_arn = arn("user/alice");
        let job = w.ok(
            "GenerateServiceLastAccessedDetails",
            &json!({"Arn": alice_arn}),
        );
        let generation = w.ok(
            "StartPolicyGeneration",
            &json!({"policyGenerationDetails": {"principalArn": alice_arn}}),
        );

        // The values requests are built from, by member name.
        w.set("UserName", json!("alice"));
        w.set("GroupName", json!("devs"));
        w.set("RoleName", json!("app"));
        w.set("PolicyArn", policy_arn);
        w.set("PolicyName", json!("inline"));
        w.set("PolicyDocument", json!(IDENTITY_DOC));
        w.set("AssumeRolePolicyDocument", json!(TRUST_DOC));
        w.set("VersionId", json!("v2"));
        w.set("AccessKeyId", key["AccessKey"]["AccessKeyId"].clone());
        w.set("Status", json!("Inactive"));
        w.set("SerialNumber", serial);
        w.set(
            "AuthenticationCode1",
            json!(code_at_step(&seed, step + 1).unwrap()),
        );
        w.set(
            "AuthenticationCode2",
            json!(code_at_step(&seed, step + 2).unwrap()),
        );
        w.set(
            "OpenIDConnectProviderArn",
            oidc["OpenIDConnectProviderArn"].clone(),
        );
        w.set("Url", json!("https://second.example.com"));
        w.set("ClientID", json!("another-client"));
        w.set(
            "ThumbprintList",
            json!(["990f4193972f2becf12ddeda5237f9c952f20d9e"]),
        );
        w.set("Jwks", json!(JWKS));
        w.set("Tags", json!([{"Key": "env", "Value": "prod"}]));
        w.set("TagKeys", json!(["team"]));
        w.set("Password", json!(PASSWORD));
        w.set("OldPassword", json!(PASSWORD));
        w.set("NewPassword", json!("Battery-Staple-7"));
        w.set("VirtualMFADeviceName", json!("bob-phone"));
        w.set("AccountAlias", json!("acme-data"));
        w.set("ResourceArn", json!("arn:aws:s3:::reports"));
        w.set(
            "PermissionsBoundary",
            json!("arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"),
        );
        w.set("clusterName", json!("prod"));
        w.set(
            "associationId",
            association["association"]["associationId"].clone(),
        );
        w.set("oidcProviderArn", oidc["OpenIDConnectProviderArn"].clone());
        w.set("namespace", json!("batch"));
        w.set("serviceAccount", json!("worker"));
        w.set("roleArn", json!(arn("role/app")));
        w.set("InstanceProfileName", json!("web"));
        w.set("Name", json!("okta"));
        w.set("SAMLMetadataDocument", json!(metadata));
        w.set("SAMLProviderArn", saml["SAMLProviderArn"].clone());
        w.set("AWSServiceName", json!("autoscaling.amazonaws.com"));
        w.set("DeletionTaskId", task["DeletionTaskId"].clone());
        w.set("Arn", json!(alice_arn));
        w.set("PolicySourceArn", json!(alice_arn));
        w.set("PolicyInputList", json!([IDENTITY_DOC]));
        w.set("ActionNames", json!(["s3:GetObject", "s3:PutObject"]));
        w.set("JobId", job["JobId"].clone());
        w.set(
            "policyGenerationDetails",
            json!({"principalArn": alice_arn}),
        );
        w.set("jobId", generation["jobId"].clone());
        w.set("ServiceNamespace", json!("s3"));
        w.set("ServiceNamespaces", json!(["s3", "iam"]));
        w.set("GlobalEndpointTokenVersion", json!("v2Token"));
        w.set("Description", json!("The application's role"));
        w.set("policyDocument", json!(IDENTITY_DOC));
        w.set("policyType", json!("IDENTITY_POLICY"));
        w.set("analyzerName", json!("unused"));
        w.set("type", json!("ACCOUNT_UNUSED_ACCESS"));
        w.set("analyzerArn", analyzer["arn"].clone());
        w.set("id", json!("00000000-0000-0000-0000-000000000000"));
        w.set("status", json!("ARCHIVED"));
        w.overrides = vec![
            ("CreateUser", "UserName", json!("carol")),
            ("CreateGroup", "GroupName", json!("ops")),
            ("CreateRole", "RoleName", json!("batch")),
            ("CreateAnalyzer", "analyzerName", json!("second")),
            ("UpdateFindings", "resourceArn", json!(arn("role/app"))),
            ("CreatePolicy", "PolicyName", json!("writer")),
            ("CreateLoginProfile", "UserName", json!("bob")),
            ("CreateLoginProfile", "Password", json!(PASSWORD)),
            // The admin service names the calling user; here the call names alice.
            ("ChangePassword", "UserName", json!("alice")),
            ("PutServiceControlPolicy", "PolicyName", json!("second")),
            ("GetServiceControlPolicy", "PolicyName", json!("guard")),
            ("DeleteServiceControlPolicy", "PolicyName", json!("guard")),
            ("PutResourcePolicy", "PolicyDocument", json!(RESOURCE_DOC)),
            ("PutServiceControlPolicy", "PolicyDocument", json!(SCP_DOC)),
            ("UpdateAssumeRolePolicy", "PolicyDocument", json!(TRUST_DOC)),
            ("CreateAccountAlias", "AccountAlias", json!("acme-data-2")),
            ("DeleteAccountAlias", "AccountAlias", json!("acme-data-2")),
            (
                "AddRoleToInstanceProfile",
                "InstanceProfileName",
                json!("spare"),
            ),
            (
                "CreateInstanceProfile",
                "InstanceProfileName",
                json!("batch"),
            ),
            // SetDefaultPolicyVersion made v2 the default.
            ("DeletePolicyVersion", "VersionId", json!("v1")),
            (
                "DeleteServiceLinkedRole",
                "RoleName",
                json!("AWSServiceRoleForAutoScaling"),
            ),
            // Bob's own device, enabled with its own codes.
            ("EnableMFADevice", "UserName", json!("bob")),
            ("EnableMFADevice", "SerialNumber", spare_serial),
            (
                "EnableMFADevice",
                "AuthenticationCode1",
                json!(code_at_step(&spare_seed, step - 1).unwrap()),
            ),
            (
                "EnableMFADevice",
                "AuthenticationCode2",
                json!(code_at_step(&spare_seed, step).unwrap()),
            ),
        ];
        w
    }
}

/// The answer each operation must give the world when it is not a success, with why.
const EXPECTED_ERRORS: &[(&str, &str)] = &[
    // Alice has keys, a password, policies, a group and a device: AWS refuses until removed.
    ("DeleteUser", "DeleteConflict"),
    ("DeleteGroup", "DeleteConflict"),
    ("DeleteRole", "DeleteConflict"),
    ("DeletePolicy", "DeleteConflict"),
    // The tenant was created with its root key, shown once.
    ("CreateRootAccessKey", "EntityAlreadyExists"),
    // Everything in the world is as old as the world's one instant: nothing is unused yet.
    ("GetFindingV2", "ResourceNotFoundException"),
];

/// When in the run an operation goes: reads first, then changes, then removals and last
/// deletions, so that each finds the world it needs.
fn phase(name: &str) -> u8 {
    let removal = ["Remove", "Detach", "Untag", "Deactivate", "Revoke"];
    if name.starts_with("Delete") {
        3
    } else if removal.iter().any(|p| name.starts_with(p)) {
        2
    } else if super::super::is_mutating(name) {
        1
    } else {
        0
    }
}

fn request(world: &World, op: &Operation) -> Value {
    let mut out = Map::new();
    let overridden = |member: &str| {
        world
            .overrides
            .iter()
            .find(|(o, m, _)| *o == op.name && *m == member)
            .map(|(_, _, v)| v.clone())
    };
    // Required members, a user's own credentials named (the caller is no user here, so
    // AWS's default of the caller itself does not apply), and every overridden member.
    for member in &op.members {
        let named = member.required || member.name == "UserName";
        match overridden(&member.name) {
            Some(value) => {
                out.insert(member.name.clone(), value);
            }
            None if named => {
                let value =
                    world.values.get(&member.name).cloned().unwrap_or_else(|| {
                        panic!("no example value for {}.{}", op.name, member.name)
                    });
                out.insert(member.name.clone(), value);
            }
            None => {}
        }
    }
    // Members the admin service adds (`ChangePassword`'s caller).
    for (_, member, value) in world.overrides.iter().filter(|(o, _, _)| *o == op.name) {
        out.entry(member.to_string())
            .or_insert_with(|| value.clone());
    }
    Value::Object(out)
}

/// Response members iamlet adds to AWS's operations (documented in the README).
const EXTRA_OUTPUT: &[(&str, &str)] = &[
    ("GetOpenIDConnectProvider", "Jwks"),
    // Access Analyzer's security warnings on a stored policy (issue 17 item 5).
    ("CreatePolicy", "Findings"),
    ("CreatePolicyVersion", "Findings"),
    ("PutUserPolicy", "Findings"),
    ("PutGroupPolicy", "Findings"),
    ("PutRolePolicy", "Findings"),
    ("UpdateAssumeRolePolicy", "Findings"),
];

/// The result's members are the model's response members, the required ones present.
fn shaped(op: &Operation, result: &Value) -> Result<(), String> {
    let Some(object) = result.as_object() else {
        return Err(format!(
            "{}: the result is not an object: {result}",
            op.name
        ));
    };
    if op.service == Service::Iamlet {
        return Ok(());
    }
    for key in object.keys() {
        let extra = EXTRA_OUTPUT.contains(&(op.name.as_str(), key.as_str()));
        if !(extra || op.output.iter().any(|m| &m.name == key)) {
            return Err(format!(
                "{}: {key} is not a member of AWS's response",
                op.name
            ));
        }
    }
    match op
        .output
        .iter()
        .find(|m| m.required && !object.contains_key(&m.name))
    {
        Some(member) => Err(format!(
            "{}: AWS's response always has {}",
            op.name, member.name
        )),
        None => Ok(()),
    }
}

#[test]
fn every_operation_of_the_model_round_trips_or_is_refused_with_its_reason() {
    let model = ApiModel::embedded().unwrap();
    let world = World::new();
    let mut operations: Vec<&Operation> = model.operations().iter().collect();
    operations.sort_by_key(|op| (phase(&op.name), op.name.clone()));
    let mut absent = Vec::new();
    let mut failures = Vec::new();
    for op in operations {
        if let Some(reason) = super::super::refusal(&op.name) {
            let err = world.call(&op.name, &json!({})).unwrap_err();
            assert_eq!(err.code().as_str(), "UnsupportedOperation", "{}", op.name);
            assert!(err.to_string().contains(reason), "{}: {err}", op.name);
            continue;
        }
        if !ACTIONS.contains(&op.name.as_str()) {
            absent.push(op.name.clone());
            continue;
        }
        let parameters = request(&world, op);
        let expected = EXPECTED_ERRORS
            .iter()
            .find(|(name, _)| *name == op.name)
            .map(|(_, code)| *code);
        match (world.call(&op.name, &parameters), expected) {
            (Ok(result), None) => {
                if let Err(wrong) = shaped(op, &result) {
                    failures.push(wrong);
                }
            }
            (Err(err), Some(code)) if err.code().as_str() == code => {}
            (Err(err), Some(code)) => failures.push(format!(
                "{} answered {} {err} where {code} was expected",
                op.name,
                err.code()
            )),
            (Ok(result), Some(code)) => failures.push(format!(
                "{} succeeded ({result}) where {code} was expected",
                op.name
            )),
            (Err(err), None) => failures.push(format!(
                "{} {parameters} failed: {} {err}",
                op.name,
                err.code()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        absent.is_empty(),
        "operations neither served nor refused: {absent:?}"
    );
}
