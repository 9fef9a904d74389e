//! Actions through JSON: shapes of results, parameter errors, `changed`, audit redaction.

use serde_json::{json, Value};

use super::{dispatch, is_mutating, Dispatched, ACTIONS, REDACTED};
use crate::control_plane::api_model::{ApiModel, InputError};
use crate::control_plane::AdminError;
use crate::directory::totp::{code_at_step, time_step};
use crate::directory::{IdGenerator, PasswordHasher, Tenant};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
/// Cheap hashing: unoptimized builds make the production cost slow.
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);
const NOW_ISO: &str = "2023-11-14T22:13:20Z";

const IDENTITY_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const OTHER_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;
const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const RESOURCE_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#;
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXch","e":"AQAB"}]}"#;
const ADMIN_ARN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const PASSWORD: &str = "Correct-Horse-9";

struct Fixture {
    tenant: Tenant,
    ids: IdGenerator,
}

impl Fixture {
    fn new() -> Self {
        Self {
            tenant: Tenant::new(ACCOUNT, 0),
            ids: IdGenerator::seeded(1),
        }
    }

    #[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
    fn call(&mut self, action: &str, parameters: Value) -> Result<Dispatched, AdminError> {
        dispatch(
            &mut self.tenant,
            &mut self.ids,
            HASHER,
            NOW,
            action,
            &parameters,
        )
    }

    /// A call that must succeed; checks `changed` and returns the result.
    fn ok(&mut self, action: &str, parameters: Value) -> Value {
        let out = self
            .call(action, parameters)
            .unwrap_or_else(|e| panic!("{action} failed: {} {e}", e.code()));
        assert_eq!(out.changed, is_mutating(action), "{action}");
        out.result
    }

    /// A call that must fail without changing the tenant; returns the error.
    fn fails(&mut self, action: &str, parameters: Value) -> AdminError {
        let before = self.tenant.clone();
        let err = self
            .call(action, parameters)
            .expect_err("the call should fail");
        assert_eq!(
            self.tenant, before,
            "{action} failed but changed the tenant"
        );
        err
    }

    fn code(&mut self, action: &str, parameters: Value) -> crate::error::AwsCode {
        self.fails(action, parameters).code()
    }
}

fn arn(kind_and_name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind_and_name}")
}

#[test]
fn a_realistic_sequence() {
    let mut f = Fixture::new();

    let created = f.ok(
        "CreateUser",
        json!({"UserName": "alice", "Path": "/eng/", "Tags": [{"Key": "team", "Value": "core"}]}),
    );
    let user = &created["User"];
    assert_eq!(user["UserName"], "alice");
    assert_eq!(user["Path"], "/eng/");
    assert_eq!(user["Arn"], arn("user/eng/alice"));
    assert!(user["UserId"].as_str().unwrap().starts_with("AIDA"));
    assert_eq!(user["CreateDate"], NOW_ISO);
    assert_eq!(user["Tags"], json!([{"Key": "team", "Value": "core"}]));
    assert!(user.get("PermissionsBoundary").is_none());

    let group = f.ok("CreateGroup", json!({"GroupName": "devs"}));
    assert_eq!(group["Group"]["Arn"], arn("group/devs"));
    assert!(group["Group"]["GroupId"]
        .as_str()
        .unwrap()
        .starts_with("AGPA"));
    assert_eq!(
        f.ok(
            "AddUserToGroup",
            json!({"GroupName": "devs", "UserName": "alice"})
        ),
        json!({})
    );
    let got = f.ok("GetGroup", json!({"GroupName": "DEVS"}));
    assert_eq!(got["Users"][0]["UserName"], "alice");
    assert_eq!(got["IsTruncated"], false);
    let groups = f.ok("ListGroupsForUser", json!({"UserName": "alice"}));
    assert_eq!(groups["Groups"][0]["GroupName"], "devs");

    let policy = f.ok(
        "CreatePolicy",
        json!({"PolicyName": "ReadReports", "PolicyDocument": IDENTITY_DOC, "Description": "reads"}),
    )["Policy"]
        .clone();
    let policy_arn = arn("policy/ReadReports");
    assert_eq!(
        policy,
        json!({
            "PolicyName": "ReadReports",
            "PolicyId": policy["PolicyId"],
            "Arn": policy_arn,
            "Path": "/",
            "DefaultVersionId": "v1",
            "AttachmentCount": 0,
            "PermissionsBoundaryUsageCount": 0,
            "IsAttachable": true,
            "Description": "reads",
            "CreateDate": NOW_ISO,
            "UpdateDate": NOW_ISO,
        })
    );
    assert!(policy["PolicyId"].as_str().unwrap().starts_with("ANPA"));
    f.ok(
        "AttachUserPolicy",
        json!({"UserName": "alice", "PolicyArn": policy_arn}),
    );
    let attached = f.ok("ListAttachedUserPolicies", json!({"UserName": "alice"}));
    assert_eq!(
        attached,
        json!({"AttachedPolicies": [{"PolicyName": "ReadReports", "PolicyArn": policy_arn}], "IsTruncated": false})
    );
    let got = f.ok("GetPolicy", json!({"PolicyArn": policy_arn}));
    assert_eq!(got["Policy"]["AttachmentCount"], 1);

    let role = f.ok(
        "CreateRole",
        json!({
            "RoleName": "app",
            "AssumeRolePolicyDocument": TRUST_DOC,
            "MaxSessionDuration": "7200",
            "Description": "the app",
            "PermissionsBoundary": ADMIN_ARN,
        }),
    );
    assert_eq!(role["Role"]["MaxSessionDuration"], 7200);
    f.ok(
        "PutRolePolicy",
        json!({"RoleName": "app", "PolicyName": "inline", "PolicyDocument": IDENTITY_DOC}),
    );
    let got = f.ok("GetRole", json!({"RoleName": "app"}))["Role"].clone();
    assert_eq!(got["AssumeRolePolicyDocument"], TRUST_DOC);
    assert_eq!(got["Description"], "the app");
    assert_eq!(got["Arn"], arn("role/app"));
    assert!(got["RoleId"].as_str().unwrap().starts_with("AROA"));
    assert_eq!(
        got["PermissionsBoundary"],
        json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": ADMIN_ARN})
    );
    assert_eq!(
        f.ok(
            "GetRolePolicy",
            json!({"RoleName": "APP", "PolicyName": "inline"})
        ),
        json!({"RoleName": "app", "PolicyName": "inline", "PolicyDocument": IDENTITY_DOC})
    );
    assert_eq!(
        f.ok("ListRolePolicies", json!({"RoleName": "app"})),
        json!({"PolicyNames": ["inline"], "IsTruncated": false})
    );
    let roles = f.ok("ListRoles", json!({}));
    assert!(roles["Roles"][0].get("PermissionsBoundary").is_none());
    assert_eq!(roles["Roles"][0]["AssumeRolePolicyDocument"], TRUST_DOC);

    // The secret appears once, in CreateAccessKey's result.
    let key = f.ok("CreateAccessKey", json!({"UserName": "alice"}))["AccessKey"].clone();
    let secret = key["SecretAccessKey"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40);
    assert_eq!(key["UserName"], "alice");
    assert_eq!(key["Status"], "Active");
    assert_eq!(key["CreateDate"], NOW_ISO);
    let key_id = key["AccessKeyId"].as_str().unwrap().to_owned();
    let listed = f.ok("ListAccessKeys", json!({"UserName": "alice"}));
    assert_eq!(
        listed,
        json!({"AccessKeyMetadata": [{"UserName": "alice", "AccessKeyId": key_id, "Status": "Active", "CreateDate": NOW_ISO}], "IsTruncated": false})
    );
    for (action, params) in [
        ("GetUser", json!({"UserName": "alice"})),
        ("ListUsers", json!({})),
        ("GetAccessKeyLastUsed", json!({"AccessKeyId": key_id})),
    ] {
        assert!(
            !f.ok(action, params).to_string().contains(&secret),
            "{action}"
        );
    }
    assert_eq!(
        f.ok("GetAccessKeyLastUsed", json!({"AccessKeyId": key_id})),
        json!({"UserName": "alice", "AccessKeyLastUsed": {"ServiceName": "N/A", "Region": "N/A"}})
    );

    let got = f.ok("GetUser", json!({"UserName": "ALICE"}));
    assert_eq!(got["User"]["Tags"][0]["Key"], "team");
    let users = f.ok("ListUsers", json!({"PathPrefix": "/eng/"}));
    assert_eq!(users["IsTruncated"], false);
    assert_eq!(users["Users"][0]["UserName"], "alice");
    assert!(users["Users"][0].get("Tags").is_none());
    assert_eq!(
        f.ok("ListUsers", json!({"PathPrefix": "/ops/"}))["Users"],
        json!([])
    );

    // DeleteUser refuses while dependents remain; removing them lets it through.
    assert_eq!(
        f.code("DeleteUser", json!({"UserName": "alice"})),
        "DeleteConflict"
    );
    f.ok(
        "DeleteAccessKey",
        json!({"UserName": "alice", "AccessKeyId": key_id}),
    );
    f.ok(
        "DetachUserPolicy",
        json!({"UserName": "alice", "PolicyArn": policy_arn}),
    );
    f.ok(
        "RemoveUserFromGroup",
        json!({"GroupName": "devs", "UserName": "alice"}),
    );
    f.ok("DeleteUser", json!({"UserName": "alice"}));
    assert_eq!(
        f.code("GetUser", json!({"UserName": "alice"})),
        "NoSuchEntity"
    );
    assert_eq!(
        f.code("DeleteRole", json!({"RoleName": "app"})),
        "DeleteConflict"
    );
    f.ok(
        "DeleteRolePolicy",
        json!({"RoleName": "app", "PolicyName": "inline"}),
    );
    f.ok("DeleteRole", json!({"RoleName": "app"}));
    f.ok("DeleteGroup", json!({"GroupName": "devs"}));
    f.ok("DeletePolicy", json!({"PolicyArn": policy_arn}));
    assert_eq!(f.tenant, Tenant::new(ACCOUNT, 0));
}

#[test]
fn policy_versions_tags_and_listings() {
    let mut f = Fixture::new();
    let policy_arn = arn("policy/team/P");
    f.ok(
        "CreatePolicy",
        json!({"PolicyName": "P", "Path": "/team/", "PolicyDocument": IDENTITY_DOC, "Tags": [{"Key": "k", "Value": "v"}]}),
    );
    let v2 = f.ok(
        "CreatePolicyVersion",
        json!({"PolicyArn": policy_arn, "PolicyDocument": OTHER_DOC, "SetAsDefault": "true"}),
    );
    assert_eq!(
        v2,
        json!({"PolicyVersion": {"VersionId": "v2", "IsDefaultVersion": true, "CreateDate": NOW_ISO}})
    );
    let v1 = f.ok(
        "GetPolicyVersion",
        json!({"PolicyArn": policy_arn, "VersionId": "v1"}),
    );
    assert_eq!(v1["PolicyVersion"]["Document"], IDENTITY_DOC);
    assert_eq!(v1["PolicyVersion"]["IsDefaultVersion"], false);
    let versions = f.ok("ListPolicyVersions", json!({"PolicyArn": policy_arn}));
    assert_eq!(versions["Versions"].as_array().unwrap().len(), 2);
    assert!(versions["Versions"][0].get("Document").is_none());
    f.ok(
        "SetDefaultPolicyVersion",
        json!({"PolicyArn": policy_arn, "VersionId": "v1"}),
    );
    f.ok(
        "DeletePolicyVersion",
        json!({"PolicyArn": policy_arn, "VersionId": "v2"}),
    );
    assert_eq!(
        f.code(
            "DeletePolicyVersion",
            json!({"PolicyArn": policy_arn, "VersionId": "v1"})
        ),
        "DeleteConflict"
    );

    f.ok(
        "TagPolicy",
        json!({"PolicyArn": policy_arn, "Tags": [{"Key": "K", "Value": "w"}]}),
    );
    assert_eq!(
        f.ok("ListPolicyTags", json!({"PolicyArn": policy_arn})),
        json!({"Tags": [{"Key": "K", "Value": "w"}, {"Key": "k", "Value": "v"}], "IsTruncated": false})
    );
    f.ok(
        "UntagPolicy",
        json!({"PolicyArn": policy_arn, "TagKeys": ["k"]}),
    );
    assert_eq!(
        f.ok("GetPolicy", json!({"PolicyArn": policy_arn}))["Policy"]["Tags"],
        json!([{"Key": "K", "Value": "w"}])
    );

    // Scopes: AWS-managed policies come from the catalog.
    let local = f.ok("ListPolicies", json!({"Scope": "Local"}));
    assert_eq!(local["Policies"].as_array().unwrap().len(), 1);
    assert!(local["Policies"][0].get("Tags").is_none());
    let all = f.ok("ListPolicies", json!({}));
    assert!(all["Policies"].as_array().unwrap().len() > 1);
    let aws = f.ok(
        "ListPolicies",
        json!({"Scope": "AWS", "PathPrefix": "/job-function/"}),
    );
    assert_eq!(aws["Policies"][0]["PolicyName"], "ViewOnlyAccess");
    assert_eq!(
        f.code("ListPolicies", json!({"Scope": "Everything"})),
        "ValidationError"
    );
    let admin = f.ok("GetPolicy", json!({"PolicyArn": ADMIN_ARN}));
    assert_eq!(admin["Policy"]["PolicyName"], "AdministratorAccess");

    // Attachments show in ListEntitiesForPolicy and OnlyAttached.
    f.ok("CreateGroup", json!({"GroupName": "g"}));
    f.ok(
        "AttachGroupPolicy",
        json!({"GroupName": "g", "PolicyArn": ADMIN_ARN}),
    );
    let attached = f.ok("ListPolicies", json!({"OnlyAttached": true}));
    assert_eq!(
        attached["Policies"],
        json!([{"PolicyName": "AdministratorAccess", "Arn": ADMIN_ARN, "Path": "/", "AttachmentCount": 1, "PermissionsBoundaryUsageCount": 0, "IsAttachable": true}])
    );
    let entities = f.ok("ListEntitiesForPolicy", json!({"PolicyArn": ADMIN_ARN}));
    assert_eq!(entities["PolicyGroups"][0]["GroupName"], "g");
    assert_eq!(entities["PolicyUsers"], json!([]));
    assert_eq!(
        f.ok(
            "ListAttachedGroupPolicies",
            json!({"GroupName": "g", "PathPrefix": "/team/"})
        )["AttachedPolicies"],
        json!([])
    );
    assert_eq!(
        f.code(
            "AttachGroupPolicy",
            json!({"GroupName": "g", "PolicyArn": arn("policy/none")})
        ),
        "NoSuchEntity"
    );
    assert_eq!(
        f.code("DeletePolicy", json!({"PolicyArn": ADMIN_ARN})),
        "UnmodifiableEntity"
    );
    f.ok(
        "PutGroupPolicy",
        json!({"GroupName": "g", "PolicyName": "i", "PolicyDocument": IDENTITY_DOC}),
    );
    assert_eq!(
        f.ok(
            "GetGroupPolicy",
            json!({"GroupName": "g", "PolicyName": "i"})
        )["PolicyDocument"],
        IDENTITY_DOC
    );
    assert_eq!(
        f.ok("ListGroupPolicies", json!({"GroupName": "g"}))["PolicyNames"],
        json!(["i"])
    );
    assert_eq!(
        f.code(
            "PutGroupPolicy",
            json!({"GroupName": "g", "PolicyName": "j", "PolicyDocument": "{not json"})
        ),
        "MalformedPolicyDocument"
    );
}

#[test]
fn users_and_roles_updates_boundaries_and_tags() {
    let mut f = Fixture::new();
    f.ok("CreateUser", json!({"UserName": "bob"}));
    f.ok(
        "PutUserPermissionsBoundary",
        json!({"UserName": "bob", "PermissionsBoundary": ADMIN_ARN}),
    );
    let got = f.ok("GetUser", json!({"UserName": "bob"}));
    assert_eq!(
        got["User"]["PermissionsBoundary"]["PermissionsBoundaryArn"],
        ADMIN_ARN
    );
    assert!(got["User"].get("Tags").is_none());
    f.ok("DeleteUserPermissionsBoundary", json!({"UserName": "bob"}));
    f.ok(
        "TagUser",
        json!({"UserName": "bob", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]}),
    );
    f.ok("UntagUser", json!({"UserName": "bob", "TagKeys": ["A"]}));
    assert_eq!(
        f.ok("ListUserTags", json!({"UserName": "bob"})),
        json!({"Tags": [{"Key": "b", "Value": ""}], "IsTruncated": false})
    );
    f.ok(
        "PutUserPolicy",
        json!({"UserName": "bob", "PolicyName": "p", "PolicyDocument": IDENTITY_DOC}),
    );
    f.ok(
        "UpdateUser",
        json!({"UserName": "bob", "NewUserName": "robert", "NewPath": "/x/"}),
    );
    let got = f.ok(
        "GetUserPolicy",
        json!({"UserName": "robert", "PolicyName": "p"}),
    );
    assert_eq!(got["UserName"], "robert");
    assert_eq!(
        f.ok("ListUserPolicies", json!({"UserName": "robert"}))["PolicyNames"],
        json!(["p"])
    );

    f.ok(
        "CreateRole",
        json!({"RoleName": "r", "AssumeRolePolicyDocument": TRUST_DOC, "MaxSessionDuration": 3600}),
    );
    f.ok(
        "UpdateRole",
        json!({"RoleName": "r", "MaxSessionDuration": 43200}),
    );
    let updated = f.ok(
        "UpdateRoleDescription",
        json!({"RoleName": "r", "Description": "new"}),
    );
    assert_eq!(updated["Role"]["Description"], "new");
    assert_eq!(updated["Role"]["MaxSessionDuration"], 43200);
    assert_eq!(
        f.code(
            "UpdateRole",
            json!({"RoleName": "r", "MaxSessionDuration": 100})
        ),
        "ValidationError"
    );
    f.ok(
        "UpdateAssumeRolePolicy",
        json!({"RoleName": "r", "PolicyDocument": TRUST_DOC}),
    );
    f.ok(
        "TagRole",
        json!({"RoleName": "r", "Tags": [{"Key": "env", "Value": "prod"}]}),
    );
    assert_eq!(
        f.ok("ListRoleTags", json!({"RoleName": "r"}))["Tags"],
        json!([{"Key": "env", "Value": "prod"}])
    );
    f.ok("UntagRole", json!({"RoleName": "r", "TagKeys": ["env"]}));
    f.ok(
        "PutRolePermissionsBoundary",
        json!({"RoleName": "r", "PermissionsBoundary": ADMIN_ARN}),
    );
    f.ok("DeleteRolePermissionsBoundary", json!({"RoleName": "r"}));
    f.ok(
        "AttachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": ADMIN_ARN}),
    );
    assert_eq!(
        f.ok("ListAttachedRolePolicies", json!({"RoleName": "r"}))["AttachedPolicies"][0]
            ["PolicyName"],
        "AdministratorAccess"
    );
    f.ok(
        "DetachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": ADMIN_ARN}),
    );
    let revoked = f.call("RevokeSessions", json!({"RoleName": "r"})).unwrap();
    assert!(revoked.changed);
    assert_eq!(
        f.tenant.get_role("r").unwrap().sessions_revoked_before,
        Some(NOW)
    );
}

#[test]
fn parameter_errors() {
    let mut f = Fixture::new();
    let err = f.fails("CreateUser", json!({"Path": "/"}));
    assert_eq!(err.code(), "MissingParameter");
    assert!(matches!(&err, AdminError::MissingParameter(n) if n == "UserName"));
    assert!(matches!(
        f.fails("CreateUser", json!({"UserName": null})),
        AdminError::MissingParameter(_)
    ));
    let err = f.fails("CreateUser", json!({"UserName": 5}));
    assert!(
        matches!(&err, AdminError::InvalidParameterValue { name, .. } if name == "UserName"),
        "{err}"
    );
    for (action, params) in [
        (
            "CreateRole",
            json!({"RoleName": "r", "AssumeRolePolicyDocument": TRUST_DOC, "MaxSessionDuration": "an hour"}),
        ),
        ("CreateUser", json!({"UserName": "u", "Tags": {"k": "v"}})),
        ("CreateUser", json!({"UserName": "u", "Path": ["/"]})),
        ("UntagUser", json!({"UserName": "u", "TagKeys": "k"})),
        ("UntagUser", json!({"UserName": "u", "TagKeys": [1]})),
        (
            "CreatePolicyVersion",
            json!({"PolicyArn": "a", "PolicyDocument": IDENTITY_DOC, "SetAsDefault": "yes"}),
        ),
        (
            "CreatePolicy",
            json!({"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17"}}),
        ),
    ] {
        assert_eq!(f.code(action, params), "InvalidParameterValue", "{action}");
    }
    // Values of the right type that break the model's constraints: AWS's ValidationError.
    for (action, params) in [
        (
            "CreateRole",
            json!({"RoleName": "r", "AssumeRolePolicyDocument": TRUST_DOC, "MaxSessionDuration": -1}),
        ),
        (
            "CreateRole",
            json!({"RoleName": "r", "AssumeRolePolicyDocument": TRUST_DOC, "MaxSessionDuration": 99_999_999_999_u64}),
        ),
        (
            "CreateUser",
            json!({"UserName": "u", "Tags": [{"Key": "k"}]}),
        ),
        (
            "UpdateAccessKey",
            json!({"UserName": "u", "AccessKeyId": "AKIA", "Status": "Enabled"}),
        ),
    ] {
        assert_eq!(f.code(action, params), "ValidationError", "{action}");
    }
    assert_eq!(
        f.fails("ListUsers", json!(["UserName"])).code(),
        "InvalidParameterValue"
    );
    assert_eq!(
        f.code("TagUser", json!({"UserName": "u"})),
        "MissingParameter"
    );
    assert_eq!(
        f.code("CreateRole", json!({"RoleName": "r"})),
        "MissingParameter"
    );
    // A well-formed call to a missing entity is the directory's error.
    assert_eq!(
        f.code("GetUser", json!({"UserName": "nobody"})),
        "NoSuchEntity"
    );
    assert_eq!(
        f.code("CreateUser", json!({"UserName": "bad name"})),
        "ValidationError"
    );
    // `null` parameters are an empty object.
    let listed = dispatch(
        &mut f.tenant,
        &mut f.ids,
        HASHER,
        NOW,
        "ListUsers",
        &Value::Null,
    )
    .unwrap();
    assert_eq!(listed.result, json!({"Users": [], "IsTruncated": false}));
}

#[test]
fn unknown_actions_are_invalid() {
    let mut f = Fixture::new();
    for action in ["CreateUsers", "AssumeRole", "createUser", "", "Delete"] {
        let err = f.fails(action, json!({"UserName": "alice"}));
        assert!(
            matches!(&err, AdminError::InvalidAction(a) if a == action),
            "{action}: {err}"
        );
        assert_eq!(err.code(), "InvalidAction");
    }
}

#[test]
fn changed_only_for_successful_mutations() {
    let mut f = Fixture::new();
    assert!(
        f.call("CreateUser", json!({"UserName": "u"}))
            .unwrap()
            .changed
    );
    assert!(!f.call("GetUser", json!({"UserName": "u"})).unwrap().changed);
    assert!(!f.call("ListUsers", json!({})).unwrap().changed);
    assert!(
        !f.call("ListAccessKeys", json!({"UserName": "u"}))
            .unwrap()
            .changed
    );
    // Failed calls produce no outcome and leave the tenant untouched.
    assert_eq!(
        f.code("CreateUser", json!({"UserName": "U"})),
        "EntityAlreadyExists"
    );
}

#[test]
fn secrets_are_redacted_from_audit_and_errors() {
    let mut f = Fixture::new();
    f.ok("CreateUser", json!({"UserName": "carol"}));

    let out = f
        .call(
            "CreateLoginProfile",
            json!({"UserName": "carol", "Password": PASSWORD, "PasswordResetRequired": "true"}),
        )
        .unwrap();
    assert!(out.changed);
    assert_eq!(
        out.audit_parameters,
        json!({"UserName": "carol", "Password": REDACTED, "PasswordResetRequired": "true"})
    );
    assert_eq!(
        out.result,
        json!({"LoginProfile": {"UserName": "carol", "CreateDate": NOW_ISO, "PasswordResetRequired": true}})
    );
    let got = f.ok("GetLoginProfile", json!({"UserName": "carol"}));
    assert_eq!(got, out.result);
    assert!(!got.to_string().contains("pbkdf2"));

    let weak = "weakpassword";
    let err = f.fails(
        "UpdateLoginProfile",
        json!({"UserName": "carol", "Password": weak}),
    );
    assert_eq!(err.code(), "PasswordPolicyViolation");
    assert!(!err.to_string().contains(weak));
    let err = f.fails(
        "UpdateLoginProfile",
        json!({"UserName": "carol", "Password": "\u{1F600}-Sm1ley"}),
    );
    assert!(!err.to_string().contains("Sm1ley"), "{err}");
    let out = f
        .call(
            "UpdateLoginProfile",
            json!({"UserName": "carol", "Password": "An0ther-Secret", "PasswordResetRequired": false}),
        )
        .unwrap();
    assert_eq!(out.audit_parameters["Password"], REDACTED);
    assert!(!out.audit_parameters.to_string().contains("An0ther"));

    // MFA: the seed is shown once; codes are redacted and never echoed.
    let device = f.ok(
        "CreateVirtualMFADevice",
        json!({"VirtualMFADeviceName": "carol-phone"}),
    )["VirtualMFADevice"]
        .clone();
    let serial = arn("mfa/carol-phone");
    assert_eq!(device["SerialNumber"], serial);
    let seed = device["Base32StringSeed"].as_str().unwrap().to_owned();
    let step = time_step(NOW);
    let code1 = code_at_step(&seed, step - 1).unwrap();
    let code2 = code_at_step(&seed, step).unwrap();

    let bad = "9876543";
    let err = f.fails(
        "EnableMFADevice",
        json!({"UserName": "carol", "SerialNumber": serial, "AuthenticationCode1": bad, "AuthenticationCode2": code2}),
    );
    assert_eq!(err.code(), "ValidationError");
    assert!(!err.to_string().contains(bad), "{err}");

    let out = f
        .call(
            "EnableMFADevice",
            json!({"UserName": "carol", "SerialNumber": serial, "AuthenticationCode1": code1, "AuthenticationCode2": code2}),
        )
        .unwrap();
    assert!(out.changed);
    assert_eq!(out.result, json!({}));
    assert_eq!(
        out.audit_parameters,
        json!({"UserName": "carol", "SerialNumber": serial, "AuthenticationCode1": REDACTED, "AuthenticationCode2": REDACTED})
    );
    let listed = f.ok("ListMFADevices", json!({"UserName": "carol"}));
    assert_eq!(
        listed,
        json!({"MFADevices": [{"UserName": "carol", "SerialNumber": serial, "EnableDate": NOW_ISO}], "IsTruncated": false})
    );
    let virtual_devices = f.ok(
        "ListVirtualMFADevices",
        json!({"AssignmentStatus": "Assigned"}),
    );
    assert_eq!(
        virtual_devices["VirtualMFADevices"][0]["User"]["UserName"],
        "carol"
    );
    assert!(!virtual_devices.to_string().contains(&seed));
    assert_eq!(
        f.ok(
            "ListVirtualMFADevices",
            json!({"AssignmentStatus": "Unassigned"})
        )["VirtualMFADevices"],
        json!([])
    );
    assert_eq!(
        f.code("DeleteVirtualMFADevice", json!({"SerialNumber": serial})),
        "DeleteConflict"
    );
    f.ok(
        "DeactivateMFADevice",
        json!({"UserName": "carol", "SerialNumber": serial}),
    );
    f.ok("DeleteVirtualMFADevice", json!({"SerialNumber": serial}));
    f.ok("DeleteLoginProfile", json!({"UserName": "carol"}));

    // Redaction reaches nested members and leaves policy documents alone.
    let out = f
        .call(
            "PutUserPolicy",
            json!({"UserName": "carol", "PolicyName": "p", "PolicyDocument": IDENTITY_DOC}),
        )
        .unwrap();
    assert_eq!(out.audit_parameters["PolicyDocument"], IDENTITY_DOC);
    assert_eq!(
        super::redact(&json!({"x": [{"OldPassword": "o", "NewPassword": "n", "k": 1}]})),
        json!({"x": [{"OldPassword": REDACTED, "NewPassword": REDACTED, "k": 1}]})
    );
}

#[test]
fn federation_resource_policies_and_alias() {
    let mut f = Fixture::new();
    let created = f.ok(
        "CreateOpenIDConnectProvider",
        json!({
            "Url": "https://oidc.example.com/id/X",
            "ClientIDList": ["sts.amazonaws.com"],
            "ThumbprintList": ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
            "Jwks": JWKS,
        }),
    );
    let provider_arn = arn("oidc-provider/oidc.example.com/id/X");
    assert_eq!(created, json!({"OpenIDConnectProviderArn": provider_arn}));
    f.ok(
        "AddClientIDToOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": provider_arn, "ClientID": "app"}),
    );
    f.ok(
        "RemoveClientIDFromOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": provider_arn, "ClientID": "sts.amazonaws.com"}),
    );
    f.ok(
        "UpdateOpenIDConnectProviderThumbprint",
        json!({"OpenIDConnectProviderArn": provider_arn, "ThumbprintList": []}),
    );
    f.ok(
        "UpdateOpenIDConnectProviderJwks",
        json!({"OpenIDConnectProviderArn": provider_arn, "Jwks": JWKS}),
    );
    let got = f.ok(
        "GetOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": provider_arn}),
    );
    assert_eq!(got["Url"], "oidc.example.com/id/X");
    assert_eq!(got["ClientIDList"], json!(["app"]));
    assert_eq!(got["ThumbprintList"], json!([]));
    assert_eq!(got["CreateDate"], NOW_ISO);
    assert_eq!(
        f.ok("ListOpenIDConnectProviders", json!({})),
        json!({"OpenIDConnectProviderList": [{"Arn": provider_arn}]})
    );
    assert_eq!(
        f.code(
            "UpdateOpenIDConnectProviderJwks",
            json!({"OpenIDConnectProviderArn": provider_arn, "Jwks": "{}"})
        ),
        "InvalidInput"
    );
    f.ok(
        "DeleteOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": provider_arn}),
    );

    let bucket = "arn:aws:s3:::reports";
    f.ok(
        "PutResourcePolicy",
        json!({"ResourceArn": bucket, "PolicyDocument": RESOURCE_DOC}),
    );
    let expected =
        json!({"ResourceArn": bucket, "PolicyDocument": RESOURCE_DOC, "UpdateDate": NOW_ISO});
    assert_eq!(
        f.ok("GetResourcePolicy", json!({"ResourceArn": bucket})),
        json!({"ResourcePolicy": expected})
    );
    assert_eq!(
        f.ok("ListResourcePolicies", json!({})),
        json!({"ResourcePolicies": [expected], "IsTruncated": false})
    );
    f.ok("DeleteResourcePolicy", json!({"ResourceArn": bucket}));
    assert_eq!(
        f.code("GetResourcePolicy", json!({"ResourceArn": bucket})),
        "NoSuchEntity"
    );

    f.ok("CreateAccountAlias", json!({"AccountAlias": "acme-corp"}));
    assert_eq!(
        f.ok("ListAccountAliases", json!({})),
        json!({"AccountAliases": ["acme-corp"], "IsTruncated": false})
    );
    f.ok("DeleteAccountAlias", json!({"AccountAlias": "acme-corp"}));
    assert_eq!(
        f.ok("ListAccountAliases", json!({}))["AccountAliases"],
        json!([])
    );
}

#[test]
fn access_key_updates() {
    let mut f = Fixture::new();
    f.ok("CreateUser", json!({"UserName": "dave"}));
    let key = f.ok("CreateAccessKey", json!({"UserName": "dave"}));
    let id = key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned();
    f.ok(
        "UpdateAccessKey",
        json!({"UserName": "dave", "AccessKeyId": id, "Status": "Inactive"}),
    );
    assert_eq!(
        f.ok("ListAccessKeys", json!({"UserName": "dave"}))["AccessKeyMetadata"][0]["Status"],
        "Inactive"
    );
    assert_eq!(
        f.code(
            "GetAccessKeyLastUsed",
            json!({"AccessKeyId": "AKIANOPENOPENOPE0000"})
        ),
        "NoSuchEntity"
    );
    f.ok("CreateAccessKey", json!({"UserName": "dave"}));
    assert_eq!(
        f.code("CreateAccessKey", json!({"UserName": "dave"})),
        "LimitExceeded"
    );
}

#[test]
fn refused_operations_say_why_and_change_nothing() {
    let mut f = Fixture::new();
    let err = f.fails("UploadServerCertificate", json!({}));
    assert_eq!(err.code(), "UnsupportedOperation");
    assert!(
        err.to_string()
            .starts_with("iamlet does not serve UploadServerCertificate: server certificates"),
        "{err}"
    );
    for (actions, reason) in super::REFUSED {
        assert!(!reason.is_empty() && !reason.ends_with('.'), "{reason}");
        for action in *actions {
            assert!(
                !ACTIONS.contains(action),
                "{action} is both refused and served"
            );
            assert_eq!(
                f.code(action, json!({})),
                "UnsupportedOperation",
                "{action}"
            );
        }
    }
}

#[test]
fn parameters_are_checked_against_the_model_before_the_action_runs() {
    let mut f = Fixture::new();
    // A misspelt boundary must never create a user without it.
    let err = f.fails(
        "CreateUser",
        json!({"UserName": "erin", "PermissionsBoundry": "arn:aws:iam::aws:policy/ViewOnlyAccess"}),
    );
    assert_eq!(err.code(), "ValidationError");
    assert!(
        err.to_string()
            .contains("did you mean PermissionsBoundary?"),
        "{err}"
    );
    let err = f.fails("CreateUser", json!({"UserName": "erin", "Path": "ops"}));
    assert_eq!(err.code(), "ValidationError");
    assert!(
        err.to_string()
            .starts_with("1 validation error detected: Value 'ops' at 'path'"),
        "{err}"
    );
    let err = f.fails(
        "TagUser",
        json!({"UserName": "erin", "Tags": [{"Key": "k", "Value": "v", "Colour": "red"}]}),
    );
    assert_eq!(err.code(), "ValidationError");
}

#[test]
fn every_listed_action_is_dispatchable() {
    let mut names: Vec<&str> = ACTIONS.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ACTIONS.len(), "ACTIONS has duplicates");
    for action in ACTIONS {
        let mut f = Fixture::new();
        match f.call(action, json!({})) {
            Ok(out) => {
                assert_eq!(out.changed, is_mutating(action), "{action}");
                assert!(out.result.is_object(), "{action}");
            }
            // Answered from the tenant's usage by the control plane (`dispatch/usage/tests.rs`).
            Err(AdminError::InvalidAction(_)) if super::reads_usage(action) => {}
            // Read from the store by the control plane (`control_plane/trail/tests.rs`).
            Err(AdminError::InvalidAction(_))
                if crate::control_plane::trail::reads_trail(action) => {}
            Err(AdminError::InvalidAction(_)) => panic!("{action} is listed but not dispatched"),
            Err(
                AdminError::MissingParameter(_)
                | AdminError::Directory(_)
                | AdminError::Input(InputError::Constraints(_)),
            ) => {}
            Err(other) => panic!("{action}: unexpected {other}"),
        }
    }
}

/// Every page of `action` with `MaxItems` `max`, following markers: the names under
/// `member`/`field` in order, and how many pages it took.
fn all_pages(
    f: &mut Fixture,
    action: &str,
    member: &str,
    field: &str,
    max: u32,
) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    for pages in 1..=1_000 {
        let mut params = json!({ "MaxItems": max });
        if let Some(m) = &marker {
            params["Marker"] = json!(m);
        }
        let page = f.ok(action, params);
        let items = page[member].as_array().unwrap();
        assert!(items.len() <= max as usize, "{action}: {page}");
        names.extend(items.iter().map(|i| i[field].as_str().unwrap().to_owned()));
        match page["IsTruncated"].as_bool().unwrap() {
            true => marker = Some(page["Marker"].as_str().unwrap().to_owned()),
            false => {
                assert!(page.get("Marker").is_none(), "{page}");
                return (names, pages);
            }
        }
    }
    panic!("{action} never stopped paging");
}

fn create_users(f: &mut Fixture, names: &[&str]) {
    for name in names {
        f.ok("CreateUser", json!({ "UserName": name }));
    }
}

#[test]
fn listings_page_by_max_items_and_marker() {
    let mut f = Fixture::new();
    create_users(&mut f, &["erin", "alice", "dave", "bob", "carol"]);
    let (names, pages) = all_pages(&mut f, "ListUsers", "Users", "UserName", 2);
    assert_eq!(names, ["alice", "bob", "carol", "dave", "erin"]);
    assert_eq!(pages, 3);
    let (names, pages) = all_pages(&mut f, "ListUsers", "Users", "UserName", 5);
    assert_eq!((names.len(), pages), (5, 1));
    let (names, pages) = all_pages(&mut f, "ListUsers", "Users", "UserName", 1000);
    assert_eq!((names.len(), pages), (5, 1));
}

#[test]
fn max_items_defaults_to_a_hundred() {
    let mut f = Fixture::new();
    let names: Vec<String> = (0..101).map(|i| format!("user{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    create_users(&mut f, &names);
    let first = f.ok("ListUsers", json!({}));
    assert_eq!(first["Users"].as_array().unwrap().len(), 100);
    assert_eq!(first["IsTruncated"], true);
    let rest = f.ok("ListUsers", json!({"Marker": first["Marker"]}));
    assert_eq!(rest["Users"].as_array().unwrap().len(), 1);
    assert_eq!(rest["Users"][0]["UserName"], "user100");
    assert_eq!(rest["IsTruncated"], false);
}

#[test]
fn a_marker_survives_changes_between_pages() {
    let mut f = Fixture::new();
    create_users(&mut f, &["alice", "bob", "carol", "dave"]);
    let first = f.ok("ListUsers", json!({"MaxItems": 2}));
    let marker = first["Marker"].clone();
    // The item the marker names goes away, one before it and one after it come.
    f.ok("DeleteUser", json!({"UserName": "bob"}));
    create_users(&mut f, &["aaron", "bobby"]);
    let next = f.ok("ListUsers", json!({"MaxItems": 2, "Marker": marker}));
    let names: Vec<&str> = next["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["UserName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bobby", "carol"]);
    assert_eq!(next["IsTruncated"], true);
}

#[test]
fn bad_paging_parameters_are_refused() {
    let mut f = Fixture::new();
    create_users(&mut f, &["alice", "bob"]);
    for max in [json!(0), json!(1001)] {
        let err = f.fails("ListUsers", json!({ "MaxItems": max }));
        assert_eq!(err.code(), "ValidationError", "{max}");
        assert!(err.to_string().contains("'maxItems'"), "{err}");
    }
    assert_eq!(
        f.code("ListUsers", json!({"MaxItems": "many"})),
        "InvalidParameterValue"
    );
    for marker in ["", "not a marker!", "AAAA", "aWFtbGV0LW1hcmtlci0x"] {
        assert_eq!(
            f.code("ListUsers", json!({ "Marker": marker })),
            "ValidationError",
            "{marker}"
        );
    }
    // A marker of another listing is not this one's.
    f.ok("CreateGroup", json!({"GroupName": "g1"}));
    f.ok("CreateGroup", json!({"GroupName": "g2"}));
    let groups = f.ok("ListGroups", json!({"MaxItems": 1}));
    assert_eq!(
        f.code("ListUsers", json!({"Marker": groups["Marker"]})),
        "ValidationError"
    );
}

#[test]
fn every_kind_of_listing_pages() {
    let mut f = Fixture::new();
    create_users(&mut f, &["alice", "bob", "carol"]);
    f.ok("CreateGroup", json!({"GroupName": "team"}));
    for user in ["alice", "bob", "carol"] {
        f.ok(
            "AddUserToGroup",
            json!({"GroupName": "team", "UserName": user}),
        );
        f.ok(
            "AttachUserPolicy",
            json!({"UserName": user, "PolicyArn": ADMIN_ARN}),
        );
    }
    f.ok(
        "AttachGroupPolicy",
        json!({"GroupName": "team", "PolicyArn": ADMIN_ARN}),
    );
    // GetGroup pages its users.
    let first = f.ok("GetGroup", json!({"GroupName": "team", "MaxItems": 2}));
    assert_eq!(first["Group"]["GroupName"], "team");
    assert_eq!(first["Users"].as_array().unwrap().len(), 2);
    assert_eq!(first["IsTruncated"], true);
    let rest = f.ok(
        "GetGroup",
        json!({"GroupName": "team", "MaxItems": 2, "Marker": first["Marker"]}),
    );
    assert_eq!(rest["Users"][0]["UserName"], "carol");
    assert_eq!(rest["IsTruncated"], false);
    // ListEntitiesForPolicy pages across groups, users and roles with one marker.
    let mut seen = Vec::new();
    let mut params = json!({"PolicyArn": ADMIN_ARN, "MaxItems": 3});
    loop {
        let page = f.ok("ListEntitiesForPolicy", params.clone());
        for (kind, field) in [("PolicyGroups", "GroupName"), ("PolicyUsers", "UserName")] {
            for item in page[kind].as_array().unwrap() {
                seen.push(item[field].as_str().unwrap().to_owned());
            }
        }
        if page["IsTruncated"] == false {
            break;
        }
        params["Marker"] = page["Marker"].clone();
    }
    assert_eq!(seen, ["team", "alice", "bob", "carol"]);
    // Tags, inline policy names and policies page too.
    let tags: Vec<Value> = (0..5)
        .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
        .collect();
    f.ok("TagUser", json!({"UserName": "alice", "Tags": tags}));
    let page = f.ok("ListUserTags", json!({"UserName": "alice", "MaxItems": 4}));
    assert_eq!(page["Tags"].as_array().unwrap().len(), 4);
    assert_eq!(page["IsTruncated"], true);
    for name in ["p1", "p2"] {
        f.ok(
            "PutUserPolicy",
            json!({"UserName": "alice", "PolicyName": name, "PolicyDocument": IDENTITY_DOC}),
        );
    }
    let page = f.ok(
        "ListUserPolicies",
        json!({"UserName": "alice", "MaxItems": 1}),
    );
    assert_eq!(page["PolicyNames"], json!(["p1"]));
    let page = f.ok(
        "ListUserPolicies",
        json!({"UserName": "alice", "MaxItems": 1, "Marker": page["Marker"]}),
    );
    assert_eq!(page["PolicyNames"], json!(["p2"]));
    assert_eq!(page["IsTruncated"], false);
    let page = f.ok("ListPolicies", json!({"MaxItems": 1}));
    assert_eq!(page["Policies"].as_array().unwrap().len(), 1);
    assert_eq!(page["IsTruncated"], true);
}

#[test]
fn policy_versions_sort_by_number() {
    use super::render::version_key;
    let key = |id: &str| version_key(&json!({ "VersionId": id }));
    assert!(key("v9") < key("v10"));
    assert!(key("v1") < key("v2"));
}

#[test]
fn every_listing_reads_max_items() {
    let mut f = Fixture::new();
    f.ok("CreateUser", json!({"UserName": "u"}));
    f.ok("CreateGroup", json!({"GroupName": "g"}));
    f.ok(
        "CreateRole",
        json!({"RoleName": "r", "AssumeRolePolicyDocument": TRUST_DOC}),
    );
    let created = f.ok(
        "CreatePolicy",
        json!({"PolicyName": "p", "PolicyDocument": IDENTITY_DOC}),
    );
    let policy = created["Policy"]["Arn"].clone();
    f.ok(
        "CreateInstanceProfile",
        json!({"InstanceProfileName": "ip"}),
    );
    let names = json!({"UserName": "u", "GroupName": "g", "RoleName": "r", "PolicyArn": policy, "InstanceProfileName": "ip"});
    // AWS does not page its list of OIDC providers; EKS's listing pages with its own
    // `maxResults`/`nextToken` (its tests are beside it).
    let listings = ACTIONS
        .iter()
        .filter(|a| {
            a.starts_with("List")
                && **a != "ListOpenIDConnectProviders"
                && **a != "ListPodIdentityAssociations"
                // Access Analyzer's `maxResults`/`nextToken`, tested in usage/generation.
                && **a != "ListPolicyGenerations"
                // Access Analyzer's page with `maxResults`/`nextToken` (`unused/tests.rs`).
                && **a != "ListAnalyzers"
                && **a != "ListFindingsV2"
                // Not paged by AWS; the tag listings of SAML, OIDC providers and MFA devices
                // page in `saml/tests.rs`, with the entities they need.
                && !matches!(
                    **a,
                    "ListSAMLProviders"
                        | "ListSAMLProviderTags"
                        | "ListOpenIDConnectProviderTags"
                        | "ListMFADeviceTags"
                )
                // AWS's has a Marker but no MaxItems; paged in `account.rs`'s tests.
                && **a != "ListPoliciesGrantingServiceAccess"
        })
        .chain(std::iter::once(&"GetGroup"));
    let model = ApiModel::embedded().unwrap();
    for action in listings {
        // The names each listing takes, of the four.
        let takes = |name: &String| {
            model
                .operation(action)
                .is_some_and(|op| op.members.iter().any(|m| &m.name == name))
        };
        let names: Value = names
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| takes(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let mut params = names.clone();
        params["MaxItems"] = json!(0);
        let err = f.fails(action, params);
        assert_eq!(err.code(), "ValidationError", "{action}: {err}");
        let mut params = names.clone();
        params["MaxItems"] = json!(1000);
        let page = f.ok(action, params);
        assert_eq!(page["IsTruncated"], false, "{action}: {page}");
    }
}

#[test]
fn listed_policy_counts_match_each_policys_own() {
    let mut f = Fixture::new();
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let mut arns = Vec::new();
    for name in ["p1", "p2", "p3"] {
        let out = f.ok(
            "CreatePolicy",
            json!({"PolicyName": name, "PolicyDocument": doc}),
        );
        arns.push(out["Policy"]["Arn"].as_str().unwrap().to_owned());
    }
    for user in ["u1", "u2"] {
        f.ok("CreateUser", json!({"UserName": user}));
        f.ok(
            "AttachUserPolicy",
            json!({"UserName": user, "PolicyArn": arns[0]}),
        );
    }
    f.ok(
        "PutUserPermissionsBoundary",
        json!({"UserName": "u1", "PermissionsBoundary": arns[1]}),
    );
    f.ok("CreateGroup", json!({"GroupName": "g"}));
    f.ok(
        "AttachGroupPolicy",
        json!({"GroupName": "g", "PolicyArn": arns[0]}),
    );
    f.ok(
        "AttachGroupPolicy",
        json!({"GroupName": "g", "PolicyArn": ADMIN_ARN}),
    );
    f.ok(
        "CreateRole",
        json!({"RoleName": "r", "AssumeRolePolicyDocument": trust, "PermissionsBoundary": arns[1]}),
    );
    f.ok(
        "AttachRolePolicy",
        json!({"RoleName": "r", "PolicyArn": arns[1]}),
    );
    let listed = f.ok("ListPolicies", json!({"Scope": "All", "MaxItems": 1000}));
    let listed = listed["Policies"].as_array().unwrap();
    for arn in arns.iter().map(String::as_str).chain([ADMIN_ARN]) {
        let own = f.ok("GetPolicy", json!({"PolicyArn": arn}))["Policy"].clone();
        let entry = listed.iter().find(|p| p["Arn"] == arn).unwrap();
        for member in ["AttachmentCount", "PermissionsBoundaryUsageCount"] {
            assert_eq!(entry[member], own[member], "{arn} {member}");
        }
    }
    let p1 = listed
        .iter()
        .find(|p| p["Arn"] == arns[0].as_str())
        .unwrap();
    assert_eq!(p1["AttachmentCount"], 3);
    let p2 = listed
        .iter()
        .find(|p| p["Arn"] == arns[1].as_str())
        .unwrap();
    assert_eq!(
        (
            p2["AttachmentCount"].clone(),
            p2["PermissionsBoundaryUsageCount"].clone()
        ),
        (json!(1), json!(2))
    );
    let attached = f.ok(
        "ListPolicies",
        json!({"Scope": "Local", "OnlyAttached": true, "PolicyUsageFilter": "PermissionsBoundary"}),
    );
    let names: Vec<&str> = attached["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["PolicyName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p2"]);
}
