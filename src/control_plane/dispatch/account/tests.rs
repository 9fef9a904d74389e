//! The account-wide actions through `dispatch`, with AWS's parameter names and shapes; and
//! the `PolicyUsageFilter` of `ListPolicies` and `ListEntitiesForPolicy`.

use serde_json::{json, Value};

use super::super::{dispatch, is_mutating};
use super::grants_service;
use crate::control_plane::AdminError;
use crate::directory::{IdGenerator, PasswordHasher, Tenant};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const DAY: i64 = 86_400;
/// Cheap hashing: unoptimized builds make the production cost slow.
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);
const NOW_ISO: &str = "2023-11-14T22:13:20Z";

const S3_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const SQS_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sqs:Send*"],"Resource":"*"}]}"#;
const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const S3_READ: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";

struct Fixture {
    tenant: Tenant,
    ids: IdGenerator,
}

impl Fixture {
    fn new() -> Self {
        Self {
            tenant: Tenant::new(ACCOUNT, 0),
            ids: IdGenerator::seeded(3),
        }
    }

    #[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
    fn call_at(&mut self, now: i64, action: &str, params: Value) -> Result<Value, AdminError> {
        dispatch(
            &mut self.tenant,
            &mut self.ids,
            HASHER,
            now,
            action,
            &params,
        )
        .map(|out| {
            assert_eq!(out.changed, is_mutating(action), "{action}");
            out.result
        })
    }

    fn ok(&mut self, action: &str, params: Value) -> Value {
        self.call_at(NOW, action, params)
            .unwrap_or_else(|e| panic!("{action} failed: {} {e}", e.code()))
    }

    /// A call that must fail without changing the tenant: `"Code message"`.
    fn fails(&mut self, action: &str, params: Value) -> String {
        let before = self.tenant.clone();
        let err = self
            .call_at(NOW, action, params)
            .expect_err("the call should fail");
        assert_eq!(
            self.tenant, before,
            "{action} failed but changed the tenant"
        );
        format!("{} {err}", err.code())
    }

    /// A user, group and role with inline and attached policies and a boundary; a customer
    /// managed policy with two versions.
    fn populated() -> (Self, String) {
        let mut f = Self::new();
        f.ok("CreateUser", json!({"UserName": "alice", "Path": "/eng/", "Tags": [{"Key": "team", "Value": "blue"}]}));
        f.ok("CreateUser", json!({"UserName": "bob"}));
        f.ok("CreateGroup", json!({"GroupName": "Devs"}));
        f.ok(
            "AddUserToGroup",
            json!({"GroupName": "devs", "UserName": "alice"}),
        );
        f.ok(
            "CreateRole",
            json!({"RoleName": "app", "AssumeRolePolicyDocument": TRUST_DOC}),
        );
        let created = f.ok(
            "CreatePolicy",
            json!({"PolicyName": "Queue", "PolicyDocument": SQS_DOC}),
        );
        let local = created["Policy"]["Arn"].as_str().unwrap().to_owned();
        f.ok(
            "CreatePolicyVersion",
            json!({"PolicyArn": local, "PolicyDocument": S3_DOC, "SetAsDefault": true}),
        );
        f.ok(
            "PutUserPolicy",
            json!({"UserName": "alice", "PolicyName": "own", "PolicyDocument": S3_DOC}),
        );
        f.ok(
            "PutGroupPolicy",
            json!({"GroupName": "devs", "PolicyName": "team", "PolicyDocument": SQS_DOC}),
        );
        f.ok(
            "AttachGroupPolicy",
            json!({"GroupName": "devs", "PolicyArn": S3_READ}),
        );
        f.ok(
            "AttachUserPolicy",
            json!({"UserName": "alice", "PolicyArn": S3_READ}),
        );
        f.ok(
            "AttachRolePolicy",
            json!({"RoleName": "app", "PolicyArn": local}),
        );
        f.ok(
            "PutRolePermissionsBoundary",
            json!({"RoleName": "app", "PermissionsBoundary": POWER_USER}),
        );
        (f, local)
    }
}

// --- the password policy ---

#[test]
fn password_policy_round_trip_in_aws_shape() {
    let mut f = Fixture::new();
    assert_eq!(
        f.fails("GetAccountPasswordPolicy", json!({})),
        "NoSuchEntity The Password Policy with domain name 111122223333 cannot be found."
    );
    assert_eq!(
        f.fails("DeleteAccountPasswordPolicy", json!({})),
        "NoSuchEntity The Password Policy with domain name 111122223333 cannot be found."
    );
    assert_eq!(f.ok("UpdateAccountPasswordPolicy", json!({})), json!({}));
    assert_eq!(
        f.ok("GetAccountPasswordPolicy", json!({})),
        json!({"PasswordPolicy": {
            "MinimumPasswordLength": 6,
            "RequireSymbols": false,
            "RequireNumbers": false,
            "RequireUppercaseCharacters": false,
            "RequireLowercaseCharacters": false,
            "AllowUsersToChangePassword": false,
            "ExpirePasswords": false,
        }})
    );
    f.ok(
        "UpdateAccountPasswordPolicy",
        json!({"MinimumPasswordLength": 12, "RequireSymbols": true, "RequireNumbers": true,
               "RequireUppercaseCharacters": true, "RequireLowercaseCharacters": true,
               "AllowUsersToChangePassword": true, "MaxPasswordAge": 90,
               "PasswordReusePrevention": 5, "HardExpiry": false}),
    );
    let got = f.ok("GetAccountPasswordPolicy", json!({}));
    assert_eq!(
        got,
        json!({"PasswordPolicy": {
            "MinimumPasswordLength": 12,
            "RequireSymbols": true,
            "RequireNumbers": true,
            "RequireUppercaseCharacters": true,
            "RequireLowercaseCharacters": true,
            "AllowUsersToChangePassword": true,
            "ExpirePasswords": true,
            "MaxPasswordAge": 90,
            "PasswordReusePrevention": 5,
            "HardExpiry": false,
        }})
    );
    // The model's member order.
    let keys: Vec<&String> = got["PasswordPolicy"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys.first().map(|k| k.as_str()),
        Some("MinimumPasswordLength")
    );
    assert_eq!(f.ok("DeleteAccountPasswordPolicy", json!({})), json!({}));
    assert!(f
        .fails("GetAccountPasswordPolicy", json!({}))
        .starts_with("NoSuchEntity"));
}

#[test]
fn password_policy_parameters_are_validated() {
    let mut f = Fixture::new();
    let err = f.fails(
        "UpdateAccountPasswordPolicy",
        json!({"MinimumPasswordLength": 5}),
    );
    assert_eq!(
        err,
        "ValidationError 1 validation error detected: Value '5' at 'minimumPasswordLength' failed to satisfy constraint: Member must have value greater than or equal to 6"
    );
    let err = f.fails(
        "UpdateAccountPasswordPolicy",
        json!({"MaxPasswordAge": 2000}),
    );
    assert!(err.contains("'maxPasswordAge'"), "{err}");
    let err = f.fails(
        "UpdateAccountPasswordPolicy",
        json!({"PasswordReusePrevention": 25}),
    );
    assert!(err.contains("'passwordReusePrevention'"), "{err}");
    let err = f.fails(
        "UpdateAccountPasswordPolicy",
        json!({"RequireSymbols": "maybe"}),
    );
    assert!(err.contains("RequireSymbols"), "{err}");
}

#[test]
fn login_profiles_obey_the_policy_with_aws_code_and_message() {
    let mut f = Fixture::new();
    f.ok("CreateUser", json!({"UserName": "alice"}));
    f.ok(
        "UpdateAccountPasswordPolicy",
        json!({"MinimumPasswordLength": 10, "RequireNumbers": true, "PasswordReusePrevention": 2, "MaxPasswordAge": 30}),
    );
    assert_eq!(
        f.fails(
            "CreateLoginProfile",
            json!({"UserName": "alice", "Password": "short1"})
        ),
        "PasswordPolicyViolation Password does not conform to the account password policy."
    );
    assert_eq!(
        f.fails(
            "CreateLoginProfile",
            json!({"UserName": "alice", "Password": "no-digits-here"})
        ),
        "PasswordPolicyViolation Password does not conform to the account password policy."
    );
    let created = f.ok(
        "CreateLoginProfile",
        json!({"UserName": "alice", "Password": "long-enough-1"}),
    );
    assert_eq!(created["LoginProfile"]["PasswordResetRequired"], false);
    assert_eq!(
        f.fails(
            "UpdateLoginProfile",
            json!({"UserName": "alice", "Password": "long-enough-1"})
        ),
        "PasswordPolicyViolation Password does not conform to the account password policy."
    );
    assert_eq!(
        f.fails(
            "ChangePassword",
            json!({"UserName": "alice", "OldPassword": "long-enough-1", "NewPassword": "long-enough-1"})
        ),
        "PasswordPolicyViolation Password does not conform to the account password policy."
    );
    f.ok(
        "ChangePassword",
        json!({"UserName": "alice", "OldPassword": "long-enough-1", "NewPassword": "long-enough-2"}),
    );
    // Past the maximum age the user must change the password.
    let expired = f
        .call_at(
            NOW + 30 * DAY,
            "GetLoginProfile",
            json!({"UserName": "alice"}),
        )
        .unwrap();
    assert_eq!(expired["LoginProfile"]["PasswordResetRequired"], true);
    let fresh = f
        .call_at(
            NOW + 29 * DAY,
            "GetLoginProfile",
            json!({"UserName": "alice"}),
        )
        .unwrap();
    assert_eq!(fresh["LoginProfile"]["PasswordResetRequired"], false);
    // No hash or password reaches a result.
    let text = f
        .ok("GetLoginProfile", json!({"UserName": "alice"}))
        .to_string();
    assert!(
        !text.contains("pbkdf2") && !text.contains("long-enough"),
        "{text}"
    );
}

// --- GetAccountSummary ---

#[test]
fn summary_has_aws_keys_with_counts_and_quotas() {
    let (mut f, _) = Fixture::populated();
    let summary = f.ok("GetAccountSummary", json!({}));
    let map = summary["SummaryMap"].as_object().unwrap();
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "AccessKeysPerUserQuota",
        "AccountAccessKeysPresent",
        "AccountMFAEnabled",
        "AccountSigningCertificatesPresent",
        "AssumeRolePolicySizeQuota",
        "AttachedPoliciesPerGroupQuota",
        "AttachedPoliciesPerRoleQuota",
        "AttachedPoliciesPerUserQuota",
        "GlobalEndpointTokenVersion",
        "GroupPolicySizeQuota",
        "Groups",
        "GroupsPerUserQuota",
        "GroupsQuota",
        "InstanceProfiles",
        "InstanceProfilesQuota",
        "MFADevices",
        "MFADevicesInUse",
        "Policies",
        "PoliciesQuota",
        "PolicySizeQuota",
        "PolicyVersionsInUse",
        "PolicyVersionsInUseQuota",
        "Providers",
        "RolePolicySizeQuota",
        "Roles",
        "RolesQuota",
        "ServerCertificates",
        "ServerCertificatesQuota",
        "SigningCertificatesPerUserQuota",
        "UserPolicySizeQuota",
        "Users",
        "UsersQuota",
        "VersionsPerPolicyQuota",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(map["Users"], 2);
    assert_eq!(map["Groups"], 1);
    assert_eq!(map["Roles"], 1);
    assert_eq!(map["Policies"], 1);
    // Three attachments: S3_READ to alice and devs, the local policy to the role.
    assert_eq!(map["PolicyVersionsInUse"], 3);
    assert_eq!(map["UsersQuota"], 5_000);
    assert_eq!(map["VersionsPerPolicyQuota"], 5);
    assert_eq!(map["AttachedPoliciesPerRoleQuota"], 10);
    assert_eq!(map["AccountAccessKeysPresent"], 0);
    assert_eq!(map["MFADevices"], 0);
    f.ok(
        "CreateVirtualMFADevice",
        json!({"VirtualMFADeviceName": "m"}),
    );
    f.tenant.quotas.users = 7;
    let map = f.ok("GetAccountSummary", json!({}))["SummaryMap"].clone();
    assert_eq!(map["MFADevices"], 1);
    assert_eq!(map["MFADevicesInUse"], 0);
    assert_eq!(map["UsersQuota"], 7, "the tenant's own quota");
}

// --- GetAccountAuthorizationDetails ---

#[test]
fn authorization_details_in_aws_shapes() {
    let (mut f, local) = Fixture::populated();
    let out = f.ok("GetAccountAuthorizationDetails", json!({}));
    assert_eq!(out["IsTruncated"], false);
    assert!(out.get("Marker").is_none());
    let users = out["UserDetailList"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    let alice = &users[0];
    assert_eq!(alice["UserName"], "alice");
    assert_eq!(alice["Path"], "/eng/");
    assert_eq!(
        alice["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:user/eng/alice")
    );
    assert_eq!(alice["CreateDate"], NOW_ISO);
    assert_eq!(
        alice["UserPolicyList"],
        json!([{"PolicyName": "own", "PolicyDocument": S3_DOC}])
    );
    assert_eq!(alice["GroupList"], json!(["Devs"]));
    assert_eq!(
        alice["AttachedManagedPolicies"],
        json!([{"PolicyName": "AmazonS3ReadOnlyAccess", "PolicyArn": S3_READ}])
    );
    assert_eq!(alice["Tags"], json!([{"Key": "team", "Value": "blue"}]));
    assert!(alice.get("PermissionsBoundary").is_none());

    let group = &out["GroupDetailList"][0];
    assert_eq!(group["GroupName"], "Devs");
    assert_eq!(
        group["GroupPolicyList"],
        json!([{"PolicyName": "team", "PolicyDocument": SQS_DOC}])
    );
    assert_eq!(group["AttachedManagedPolicies"][0]["PolicyArn"], S3_READ);

    let role = &out["RoleDetailList"][0];
    assert_eq!(role["RoleName"], "app");
    assert_eq!(role["AssumeRolePolicyDocument"], TRUST_DOC);
    assert_eq!(role["InstanceProfileList"], json!([]));
    assert_eq!(role["RolePolicyList"], json!([]));
    assert_eq!(
        role["AttachedManagedPolicies"],
        json!([{"PolicyName": "Queue", "PolicyArn": local}])
    );
    assert_eq!(
        role["PermissionsBoundary"],
        json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": POWER_USER})
    );
    assert_eq!(role["RoleLastUsed"], json!({}));

    // The customer managed policy with every version and its document; the AWS managed
    // policies in use (attached, or a boundary) and no other.
    let policies = out["Policies"].as_array().unwrap();
    let arns: Vec<&str> = policies
        .iter()
        .map(|p| p["Arn"].as_str().unwrap())
        .collect();
    assert_eq!(arns, vec![local.as_str(), S3_READ, POWER_USER]);
    let queue = &policies[0];
    assert_eq!(queue["DefaultVersionId"], "v2");
    assert_eq!(queue["AttachmentCount"], 1);
    assert_eq!(queue["IsAttachable"], true);
    assert_eq!(
        queue["PolicyVersionList"],
        json!([
            {"Document": SQS_DOC, "VersionId": "v1", "IsDefaultVersion": false, "CreateDate": NOW_ISO},
            {"Document": S3_DOC, "VersionId": "v2", "IsDefaultVersion": true, "CreateDate": NOW_ISO},
        ])
    );
    assert_eq!(policies[2]["PermissionsBoundaryUsageCount"], 1);
    assert_eq!(policies[2]["AttachmentCount"], 0);
    assert_eq!(policies[1]["AttachmentCount"], 2);
    let doc = policies[1]["PolicyVersionList"][0]["Document"]
        .as_str()
        .unwrap();
    assert!(doc.contains("s3:Get*"), "{doc}");
}

#[test]
fn authorization_details_filter() {
    let (mut f, local) = Fixture::populated();
    let lists = |out: &Value| {
        [
            "UserDetailList",
            "GroupDetailList",
            "RoleDetailList",
            "Policies",
        ]
        .map(|m| out[m].as_array().map_or(usize::MAX, Vec::len))
    };
    let out = f.ok(
        "GetAccountAuthorizationDetails",
        json!({"Filter": ["Role"]}),
    );
    assert_eq!(lists(&out), [0, 0, 1, 0]);
    let out = f.ok(
        "GetAccountAuthorizationDetails",
        json!({"Filter": ["User", "Group"]}),
    );
    assert_eq!(lists(&out), [2, 1, 0, 0]);
    let out = f.ok(
        "GetAccountAuthorizationDetails",
        json!({"Filter": ["LocalManagedPolicy"]}),
    );
    assert_eq!(lists(&out), [0, 0, 0, 1]);
    assert_eq!(out["Policies"][0]["Arn"], local.as_str());
    let out = f.ok(
        "GetAccountAuthorizationDetails",
        json!({"Filter": ["AWSManagedPolicy"]}),
    );
    assert_eq!(lists(&out), [0, 0, 0, 2]);
    let err = f.fails(
        "GetAccountAuthorizationDetails",
        json!({"Filter": ["User", "Users"]}),
    );
    assert_eq!(
        err,
        "ValidationError 1 validation error detected: Value 'Users' at 'filter.2.member' failed to satisfy constraint: Member must satisfy enum value set: [User, Role, Group, LocalManagedPolicy, AWSManagedPolicy]"
    );
}

#[test]
fn authorization_details_page_across_the_combined_listing() {
    let (mut f, _) = Fixture::populated();
    let whole = f.ok("GetAccountAuthorizationDetails", json!({}));
    // 2 users, 1 group, 1 role, 3 policies: seven items, pages of 2.
    let mut seen: Vec<String> = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = json!({"MaxItems": 2});
        if let Some(m) = &marker {
            params["Marker"] = json!(m);
        }
        let page = f.ok("GetAccountAuthorizationDetails", params);
        pages += 1;
        let mut count = 0;
        for member in [
            "UserDetailList",
            "GroupDetailList",
            "RoleDetailList",
            "Policies",
        ] {
            for item in page[member].as_array().unwrap() {
                seen.push(item["Arn"].as_str().unwrap().to_owned());
                count += 1;
            }
        }
        assert!(count <= 2);
        if page["IsTruncated"] == true {
            marker = Some(page["Marker"].as_str().unwrap().to_owned());
        } else {
            assert!(page.get("Marker").is_none());
            break;
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 4);
    let all: Vec<String> = [
        "UserDetailList",
        "GroupDetailList",
        "RoleDetailList",
        "Policies",
    ]
    .iter()
    .flat_map(|m| whole[*m].as_array().unwrap().iter())
    .map(|i| i["Arn"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(seen, all);
    // A marker of another listing is refused.
    let users = f.ok("ListUsers", json!({"MaxItems": 1}));
    let err = f.fails(
        "GetAccountAuthorizationDetails",
        json!({"Marker": users["Marker"]}),
    );
    assert!(err.starts_with("ValidationError"), "{err}");
}

// --- ListPoliciesGrantingServiceAccess ---

#[test]
fn grants_follow_action_and_not_action() {
    let power = crate::directory::aws_managed_policy(POWER_USER)
        .unwrap()
        .document;
    assert!(grants_service(power, "ec2"), "NotAction leaves ec2 in");
    assert!(
        grants_service(power, "iam"),
        "the second statement names iam actions"
    );
    assert!(!grants_service(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#,
        "iam"
    ));
    assert!(
        grants_service(S3_DOC, "S3"),
        "namespaces compare case-insensitively"
    );
    assert!(!grants_service(S3_DOC, "s3-object-lambda"));
    assert!(grants_service(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        "anything"
    ));
    assert!(!grants_service(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
        "s3"
    ));
}

#[test]
fn policies_granting_service_access_for_a_user_include_its_groups() {
    let (mut f, local) = Fixture::populated();
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/eng/alice");
    let out = f.ok(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": alice, "ServiceNamespaces": ["s3", "sqs", "ec2"]}),
    );
    assert_eq!(out["IsTruncated"], false);
    // The model's member order.
    let first: Vec<&String> = out["PoliciesGrantingServiceAccess"][0]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(first, ["ServiceNamespace", "Policies"]);
    assert_eq!(
        out["PoliciesGrantingServiceAccess"],
        json!([
            {"ServiceNamespace": "s3", "Policies": [
                {"PolicyName": "own", "PolicyType": "INLINE", "EntityType": "USER", "EntityName": "alice"},
                // Attached to alice and to her group: listed once.
                {"PolicyName": "AmazonS3ReadOnlyAccess", "PolicyType": "MANAGED", "PolicyArn": S3_READ},
            ]},
            {"ServiceNamespace": "sqs", "Policies": [
                {"PolicyName": "team", "PolicyType": "INLINE", "EntityType": "GROUP", "EntityName": "Devs"},
            ]},
            {"ServiceNamespace": "ec2", "Policies": []},
        ])
    );
    // A role: its managed policy's default version (v2) grants s3, not sqs; the boundary
    // grants nothing by itself.
    let role = format!("arn:aws:iam::{ACCOUNT}:role/app");
    let out = f.ok(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": role, "ServiceNamespaces": ["sqs", "s3", "ec2"]}),
    );
    let granting = &out["PoliciesGrantingServiceAccess"];
    assert_eq!(granting[0]["Policies"], json!([]));
    assert_eq!(
        granting[1]["Policies"],
        json!([{"PolicyName": "Queue", "PolicyType": "MANAGED", "PolicyArn": local}])
    );
    assert_eq!(granting[2]["Policies"], json!([]));
}

#[test]
fn policies_granting_service_access_refuses_bad_input() {
    let (mut f, _) = Fixture::populated();
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/eng/alice");
    assert_eq!(
        f.fails("ListPoliciesGrantingServiceAccess", json!({"Arn": alice})),
        format!("MissingParameter {}", missing("ServiceNamespaces"))
    );
    let err = f.fails(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": format!("arn:aws:iam::{ACCOUNT}:user/nobody"), "ServiceNamespaces": ["s3"]}),
    );
    assert_eq!(
        err,
        "NoSuchEntity The user with name nobody cannot be found."
    );
    let err = f.fails(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": "arn:aws:s3:::example-bucket", "ServiceNamespaces": ["s3"]}),
    );
    assert!(
        err.starts_with("InvalidInput ARN arn:aws:s3:::example-bucket is not"),
        "{err}"
    );
    let err = f.fails(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": alice, "ServiceNamespaces": []}),
    );
    assert!(err.contains("at 'serviceNamespaces' failed to satisfy constraint: Member must have length greater than or equal to 1"), "{err}");
    let many: Vec<String> = (0..201).map(|i| format!("svc{i}")).collect();
    let err = f.fails(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": alice, "ServiceNamespaces": many}),
    );
    assert!(err.contains("less than or equal to 200"), "{err}");
    let err = f.fails(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": alice, "ServiceNamespaces": ["s3", "s3:*"]}),
    );
    assert!(
        err.contains("'serviceNamespaces.2.member'") && err.contains("pattern"),
        "{err}"
    );
}

/// `MissingParameter`'s message for `name`, as `AdminError` words it.
fn missing(name: &str) -> String {
    AdminError::MissingParameter(name.to_owned()).to_string()
}

#[test]
fn policies_granting_service_access_pages_by_namespace() {
    let (mut f, _) = Fixture::populated();
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/eng/alice");
    let namespaces: Vec<String> = (0..150).map(|i| format!("svc{i}")).collect();
    let first = f.ok(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": alice, "ServiceNamespaces": namespaces}),
    );
    assert_eq!(first["IsTruncated"], true);
    let page = first["PoliciesGrantingServiceAccess"].as_array().unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(page[0]["ServiceNamespace"], "svc0");
    assert_eq!(page[99]["ServiceNamespace"], "svc99");
    let second = f.ok(
        "ListPoliciesGrantingServiceAccess",
        json!({"Arn": alice, "ServiceNamespaces": namespaces, "Marker": first["Marker"]}),
    );
    assert_eq!(second["IsTruncated"], false);
    let page = second["PoliciesGrantingServiceAccess"].as_array().unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page[0]["ServiceNamespace"], "svc100");
}

// --- ListPolicies and ListEntitiesForPolicy: PolicyUsageFilter ---

#[test]
fn list_policies_usage_filter() {
    let (mut f, local) = Fixture::populated();
    let arns = |out: &Value| -> Vec<String> {
        out["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["Arn"].as_str().unwrap().to_owned())
            .collect()
    };
    let attached = f.ok("ListPolicies", json!({"OnlyAttached": true}));
    assert_eq!(arns(&attached), vec![local, S3_READ.to_owned()]);
    let permissions = f.ok(
        "ListPolicies",
        json!({"OnlyAttached": true, "PolicyUsageFilter": "PermissionsPolicy"}),
    );
    assert_eq!(arns(&permissions), arns(&attached));
    let boundaries = f.ok(
        "ListPolicies",
        json!({"OnlyAttached": true, "PolicyUsageFilter": "PermissionsBoundary"}),
    );
    assert_eq!(arns(&boundaries), vec![POWER_USER.to_owned()]);
    let local_only = f.ok(
        "ListPolicies",
        json!({"OnlyAttached": true, "Scope": "Local", "PolicyUsageFilter": "PermissionsBoundary"}),
    );
    assert!(arns(&local_only).is_empty());
    let err = f.fails("ListPolicies", json!({"PolicyUsageFilter": "Boundary"}));
    assert!(
        err.starts_with("ValidationError") && err.contains("'policyUsageFilter'"),
        "{err}"
    );
}

#[test]
fn list_entities_for_policy_usage_filter() {
    let (mut f, _) = Fixture::populated();
    f.ok(
        "AttachRolePolicy",
        json!({"RoleName": "app", "PolicyArn": S3_READ}),
    );
    f.ok(
        "PutUserPermissionsBoundary",
        json!({"UserName": "bob", "PermissionsBoundary": S3_READ}),
    );
    let names = |out: &Value, member: &str, field: &str| -> Vec<String> {
        out[member]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[field].as_str().unwrap().to_owned())
            .collect()
    };
    let both = f.ok("ListEntitiesForPolicy", json!({"PolicyArn": S3_READ}));
    assert_eq!(names(&both, "PolicyUsers", "UserName"), ["alice", "bob"]);
    assert_eq!(names(&both, "PolicyGroups", "GroupName"), ["Devs"]);
    assert_eq!(names(&both, "PolicyRoles", "RoleName"), ["app"]);
    let attached = f.ok(
        "ListEntitiesForPolicy",
        json!({"PolicyArn": S3_READ, "PolicyUsageFilter": "PermissionsPolicy"}),
    );
    assert_eq!(names(&attached, "PolicyUsers", "UserName"), ["alice"]);
    assert_eq!(names(&attached, "PolicyGroups", "GroupName"), ["Devs"]);
    assert_eq!(names(&attached, "PolicyRoles", "RoleName"), ["app"]);
    let bounded = f.ok(
        "ListEntitiesForPolicy",
        json!({"PolicyArn": S3_READ, "PolicyUsageFilter": "PermissionsBoundary"}),
    );
    assert_eq!(names(&bounded, "PolicyUsers", "UserName"), ["bob"]);
    assert!(names(&bounded, "PolicyGroups", "GroupName").is_empty());
    assert!(names(&bounded, "PolicyRoles", "RoleName").is_empty());
    let roles = f.ok(
        "ListEntitiesForPolicy",
        json!({"PolicyArn": POWER_USER, "EntityFilter": "Role", "PolicyUsageFilter": "PermissionsBoundary"}),
    );
    assert_eq!(names(&roles, "PolicyRoles", "RoleName"), ["app"]);
    let err = f.fails(
        "ListEntitiesForPolicy",
        json!({"PolicyArn": S3_READ, "PolicyUsageFilter": "x"}),
    );
    assert!(err.starts_with("ValidationError"), "{err}");
}
