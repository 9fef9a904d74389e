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
const SCP_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXch","e":"AQAB"}]}"#;
const PASSWORD: &str = "Correct-Horse-9";

fn now() -> i64 {
    NOW
}

/// A tenant holding one of every kind of entity, and the values that name them.
struct World {
    cp: ControlPlane,
    values: Map<String, Value>,
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
        };
        let arn = |path: &str| format!("arn:aws:iam::{ACCOUNT}:{path}");
        w.ok("CreateUser", &json!({"UserName": "alice"}));
        w.ok("CreateUser", &json!({"UserName": "bob"}));
        w.ok("CreateLoginProfile", &json!({"UserName": "alice", "Password": PASSWORD}));
        let key = w.ok("CreateAccessKey", &json!({"UserName": "alice"}));
        w.ok("CreateGroup", &json!({"GroupName": "devs"}));
        w.ok("AddUserToGroup", &json!({"GroupName": "devs", "UserName": "alice"}));
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
        w.ok("AttachUserPolicy", &json!({"UserName": "alice", "PolicyArn": policy_arn}));
        w.ok("AttachRolePolicy", &json!({"RoleName": "app", "PolicyArn": policy_arn}));
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
        for (action, entity, name) in [("TagUser", "UserName", "alice"), ("TagRole", "RoleName", "app")] {
            w.ok(action, &json!({entity: name, "Tags": [{"Key": "team", "Value": "data"}]}));
        }
        w.ok("TagPolicy", &json!({"PolicyArn": policy_arn, "Tags": [{"Key": "team", "Value": "data"}]}));
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
        w.set("AuthenticationCode1", json!(code_at_step(&seed, step + 1).unwrap()));
        w.set("AuthenticationCode2", json!(code_at_step(&seed, step + 2).unwrap()));
        w.set("OpenIDConnectProviderArn", oidc["OpenIDConnectProviderArn"].clone());
        w.set("Url", json!("https://second.example.com"));
        w.set("ClientID", json!("another-client"));
        w.set("ThumbprintList", json!(["990f4193972f2becf12ddeda5237f9c952f20d9e"]));
        w.set("Jwks", json!(JWKS));
        w.set("Tags", json!([{"Key": "env", "Value": "prod"}]));
        w.set("TagKeys", json!(["team"]));
        w.set("Password", json!(PASSWORD));
        w.set("OldPassword", json!(PASSWORD));
        w.set("NewPassword", json!("Battery-Staple-7"));
        w.set("VirtualMFADeviceName", json!("bob-phone"));
        w.set("AccountAlias", json!("acme-data"));
        w.set("ResourceArn", json!("arn:aws:s3:::reports"));
        w.set("PermissionsBoundary", json!("arn:aws:iam::aws:policy/ViewOnlyAccess"));
        w.set("clusterName", json!("prod"));
        w.set("associationId", association["association"]["associationId"].clone());
        w.set("oidcProviderArn", oidc["OpenIDConnectProviderArn"].clone());
        w.set("namespace", json!("batch"));
        w.set("serviceAccount", json!("worker"));
        w.set("roleArn", json!(arn("role/app")));
        w
    }
}

/// Values that differ from the world's for one operation (a create needs a new name).
const OVERRIDES: &[(&str, &str, &str)] = &[
    ("CreateUser", "UserName", "\"carol\""),
    ("CreateGroup", "GroupName", "\"ops\""),
    ("CreateRole", "RoleName", "\"batch\""),
    ("CreatePolicy", "PolicyName", "\"writer\""),
    ("CreateLoginProfile", "UserName", "\"bob\""),
    ("PutServiceControlPolicy", "PolicyName", "\"second\""),
    ("GetServiceControlPolicy", "PolicyName", "\"guard\""),
    ("DeleteServiceControlPolicy", "PolicyName", "\"guard\""),
    ("PutResourcePolicy", "PolicyDocument", "RESOURCE_DOC"),
    ("PutServiceControlPolicy", "PolicyDocument", "SCP_DOC"),
    ("CreateAccountAlias", "AccountAlias", "\"acme-data-2\""),
];

/// The answer each operation must give the world when it is not a success, with why.
const EXPECTED_ERRORS: &[(&str, &str)] = &[
    // Alice has keys, a password, policies, a group and a device: AWS refuses until removed.
    ("DeleteUser", "DeleteConflict"),
    ("DeleteGroup", "DeleteConflict"),
    ("DeleteRole", "DeleteConflict"),
    ("DeletePolicy", "DeleteConflict"),
    // The device is in use by alice.
    ("DeleteVirtualMFADevice", "DeleteConflict"),
    // A user's own password change: only a user may change its own (the caller is no user).
    ("ChangePassword", "InvalidUserType"),
    // v2 is not the default version, so it can be deleted; v1 is the default.
    // The association already exists for the role's service account pair? No: a new pair.
];

/// When in the run an operation goes: reads first, then changes, then removals, so that each
/// finds the world it needs.
fn phase(name: &str) -> u8 {
    let removal = ["Delete", "Remove", "Detach", "Untag", "Deactivate", "Revoke"];
    if removal.iter().any(|p| name.starts_with(p)) {
        2
    } else if super::super::is_mutating(name) {
        1
    } else {
        0
    }
}

fn request(world: &World, op: &Operation) -> Value {
    let mut out = Map::new();
    // A user's own credentials are named when the caller is no user (AWS's default is the
    // caller itself).
    let named = |m: &&crate::control_plane::api_model::Member| m.required || m.name == "UserName";
    for member in op.members.iter().filter(named) {
        let overridden = OVERRIDES
            .iter()
            .find(|(o, m, _)| *o == op.name && *m == member.name)
            .map(|(_, _, v)| match *v {
                "RESOURCE_DOC" => json!(RESOURCE_DOC),
                "SCP_DOC" => json!(SCP_DOC),
                text => serde_json::from_str(text).unwrap(),
            });
        let value = overridden
            .or_else(|| world.values.get(&member.name).cloned())
            .unwrap_or_else(|| panic!("no example value for {}.{}", op.name, member.name));
        out.insert(member.name.clone(), value);
    }
    Value::Object(out)
}

/// Response members iamlet adds to AWS's operations (documented in the README).
const EXTRA_OUTPUT: &[(&str, &str)] = &[("GetOpenIDConnectProvider", "Jwks")];

/// The result's members are the model's response members, the required ones present.
fn assert_shaped(op: &Operation, result: &Value) {
    let Some(object) = result.as_object() else {
        panic!("{}: the result is not an object: {result}", op.name);
    };
    if op.service == Service::Iamlet {
        return;
    }
    for key in object.keys() {
        let extra = EXTRA_OUTPUT.contains(&(op.name.as_str(), key.as_str()));
        assert!(
            extra || op.output.iter().any(|m| &m.name == key),
            "{}: {key} is not a member of AWS's response",
            op.name
        );
    }
    for member in op.output.iter().filter(|m| m.required) {
        assert!(
            object.contains_key(&member.name),
            "{}: AWS's response always has {}",
            op.name,
            member.name
        );
    }
}

#[test]
fn every_operation_of_the_model_round_trips_or_is_refused_with_its_reason() {
    let model = ApiModel::embedded().unwrap();
    let world = World::new();
    let mut operations: Vec<&Operation> = model.operations().iter().collect();
    operations.sort_by_key(|op| (phase(&op.name), op.name.clone()));
    let mut absent = Vec::new();
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
            (Ok(result), None) => assert_shaped(op, &result),
            (Err(err), Some(code)) => assert_eq!(err.code().as_str(), code, "{}: {err}", op.name),
            (Ok(result), Some(code)) => {
                panic!("{} succeeded ({result}) where {code} was expected", op.name)
            }
            (Err(err), None) => panic!("{} {parameters} failed: {} {err}", op.name, err.code()),
        }
    }
    assert!(
        absent.is_empty(),
        "operations neither served nor refused: {absent:?}"
    );
}
