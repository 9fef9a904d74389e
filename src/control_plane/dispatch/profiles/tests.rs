//! Instance profiles, service-linked roles and STS preferences through the admin API: AWS's
//! response shapes, pagination and error codes.

use serde_json::{json, Value};

use crate::control_plane::dispatch::{dispatch, is_mutating};
use crate::control_plane::AdminError;
use crate::directory::{IdGenerator, PasswordHasher, Tenant};

const NOW: i64 = 1_700_000_000;
const NOW_ISO: &str = "2023-11-14T22:13:20Z";
const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const A: &str = "arn:aws:iam::111122223333";

struct Fixture {
    tenant: Tenant,
    ids: IdGenerator,
}

impl Fixture {
    fn new() -> Self {
        Self {
            tenant: Tenant::new("111122223333", 0),
            ids: IdGenerator::seeded(7),
        }
    }

    #[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
    fn call(&mut self, action: &str, parameters: Value) -> Result<Value, AdminError> {
        let out = dispatch(
            &mut self.tenant,
            &mut self.ids,
            PasswordHasher::with_iterations(2),
            NOW,
            action,
            &parameters,
        )?;
        assert_eq!(out.changed, is_mutating(action), "{action}");
        Ok(out.result)
    }

    fn ok(&mut self, action: &str, parameters: Value) -> Value {
        self.call(action, parameters)
            .unwrap_or_else(|e| panic!("{action} failed: {} {e}", e.code()))
    }

    /// A call that must fail without changing the tenant: its code and message.
    fn fails(&mut self, action: &str, parameters: Value) -> (String, String) {
        let before = self.tenant.clone();
        let err = self
            .call(action, parameters)
            .expect_err("the call should fail");
        assert_eq!(
            self.tenant, before,
            "{action} failed but changed the tenant"
        );
        (err.code().to_string(), err.to_string())
    }
}

#[test]
fn instance_profiles_have_aws_shapes() {
    let mut f = Fixture::new();
    f.ok(
        "CreateRole",
        json!({"RoleName": "web", "AssumeRolePolicyDocument": TRUST_DOC, "Tags": [{"Key": "k", "Value": "v"}]}),
    );
    let created = f.ok(
        "CreateInstanceProfile",
        json!({"InstanceProfileName": "Web", "Path": "/ec2/", "Tags": [{"Key": "env", "Value": "prod"}]}),
    );
    let p = &created["InstanceProfile"];
    let id = p["InstanceProfileId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("AIPA") && id.len() == 21, "{id}");
    assert_eq!(
        created,
        json!({"InstanceProfile": {
            "Path": "/ec2/", "InstanceProfileName": "Web", "InstanceProfileId": id,
            "Arn": format!("{A}:instance-profile/ec2/Web"), "CreateDate": NOW_ISO,
            "Roles": [], "Tags": [{"Key": "env", "Value": "prod"}]
        }})
    );

    f.ok(
        "AddRoleToInstanceProfile",
        json!({"InstanceProfileName": "web", "RoleName": "web"}),
    );
    let got = f.ok("GetInstanceProfile", json!({"InstanceProfileName": "WEB"}));
    let roles = got["InstanceProfile"]["Roles"].as_array().unwrap();
    assert_eq!(roles.len(), 1);
    let role = &roles[0];
    assert_eq!(role["RoleName"], "web");
    assert_eq!(role["Arn"], format!("{A}:role/web"));
    assert_eq!(role["AssumeRolePolicyDocument"], TRUST_DOC);
    assert!(role["RoleId"].as_str().unwrap().starts_with("AROA"));
    assert_eq!(
        role.get("Tags"),
        None,
        "embedded roles leave their tags out"
    );

    let listed = f.ok("ListInstanceProfilesForRole", json!({"RoleName": "web"}));
    assert_eq!(listed["InstanceProfiles"][0], got["InstanceProfile"]);
    assert_eq!(listed["IsTruncated"], false);

    let (code, msg) = f.fails(
        "AddRoleToInstanceProfile",
        json!({"InstanceProfileName": "web", "RoleName": "web"}),
    );
    assert_eq!(
        (code.as_str(), msg.as_str()),
        (
            "LimitExceeded",
            "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1"
        )
    );
    let (code, _) = f.fails("DeleteRole", json!({"RoleName": "web"}));
    assert_eq!(code, "DeleteConflict");
    let (code, _) = f.fails(
        "DeleteInstanceProfile",
        json!({"InstanceProfileName": "web"}),
    );
    assert_eq!(code, "DeleteConflict");
    f.ok(
        "RemoveRoleFromInstanceProfile",
        json!({"InstanceProfileName": "web", "RoleName": "web"}),
    );
    assert_eq!(
        f.ok(
            "DeleteInstanceProfile",
            json!({"InstanceProfileName": "web"})
        ),
        json!({})
    );
    let (code, msg) = f.fails("GetInstanceProfile", json!({"InstanceProfileName": "web"}));
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("NoSuchEntity", "Instance Profile web cannot be found.")
    );
    let (code, _) = f.fails("CreateInstanceProfile", json!({}));
    assert_eq!(code, "MissingParameter");
}

#[test]
fn instance_profile_listings_page_and_filter() {
    let mut f = Fixture::new();
    for (name, path) in [("c", "/a/"), ("a", "/a/"), ("b", "/b/"), ("d", "/")] {
        f.ok(
            "CreateInstanceProfile",
            json!({"InstanceProfileName": name, "Path": path}),
        );
    }
    let names = |v: &Value| -> Vec<String> {
        v["InstanceProfiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["InstanceProfileName"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = f.ok("ListInstanceProfiles", json!({"MaxItems": 3}));
    assert_eq!(names(&first), ["a", "b", "c"]);
    assert_eq!(first["IsTruncated"], true);
    let second = f.ok(
        "ListInstanceProfiles",
        json!({"MaxItems": 3, "Marker": first["Marker"]}),
    );
    assert_eq!(names(&second), ["d"]);
    assert_eq!(second["IsTruncated"], false);
    let under = f.ok("ListInstanceProfiles", json!({"PathPrefix": "/a/"}));
    assert_eq!(names(&under), ["a", "c"]);

    f.ok(
        "TagInstanceProfile",
        json!({"InstanceProfileName": "a", "Tags": [{"Key": "z", "Value": "1"}, {"Key": "y", "Value": "2"}]}),
    );
    let tags = f.ok(
        "ListInstanceProfileTags",
        json!({"InstanceProfileName": "a", "MaxItems": 1}),
    );
    assert_eq!(tags["Tags"], json!([{"Key": "y", "Value": "2"}]));
    assert_eq!(tags["IsTruncated"], true);
    f.ok(
        "UntagInstanceProfile",
        json!({"InstanceProfileName": "a", "TagKeys": ["y"]}),
    );
    let tags = f.ok(
        "ListInstanceProfileTags",
        json!({"InstanceProfileName": "a"}),
    );
    assert_eq!(
        tags,
        json!({"Tags": [{"Key": "z", "Value": "1"}], "IsTruncated": false})
    );
    let (code, _) = f.fails("TagInstanceProfile", json!({"InstanceProfileName": "a"}));
    assert_eq!(code, "MissingParameter");
}

#[test]
fn service_linked_roles_through_the_api() {
    let mut f = Fixture::new();
    let created = f.ok(
        "CreateServiceLinkedRole",
        json!({"AWSServiceName": "elasticloadbalancing.amazonaws.com", "Description": "ELB"}),
    );
    let role = &created["Role"];
    assert_eq!(role["RoleName"], "AWSServiceRoleForElasticLoadBalancing");
    assert_eq!(
        role["Path"],
        "/aws-service-role/elasticloadbalancing.amazonaws.com/"
    );
    assert_eq!(role["Description"], "ELB");
    assert_eq!(role["MaxSessionDuration"], 3600);
    let name = "AWSServiceRoleForElasticLoadBalancing";

    let (code, msg) = f.fails(
        "PutRolePolicy",
        json!({"RoleName": name, "PolicyName": "p", "PolicyDocument": TRUST_DOC}),
    );
    assert_eq!(code, "UnmodifiableEntity");
    assert!(msg.contains("only modifiable by AWS"), "{msg}");
    let (code, _) = f.fails("DeleteRole", json!({"RoleName": name}));
    assert_eq!(code, "UnmodifiableEntity");
    let described = f.ok(
        "UpdateRoleDescription",
        json!({"RoleName": name, "Description": "load balancers"}),
    );
    assert_eq!(described["Role"]["Description"], "load balancers");

    let deleted = f.ok("DeleteServiceLinkedRole", json!({"RoleName": name}));
    let task = deleted["DeletionTaskId"].as_str().unwrap().to_owned();
    assert!(
        task.starts_with(&format!(
            "task/aws-service-role/elasticloadbalancing.amazonaws.com/{name}/"
        )),
        "{task}"
    );
    assert_eq!(deleted.as_object().unwrap().len(), 1);
    let status = f.ok(
        "GetServiceLinkedRoleDeletionStatus",
        json!({"DeletionTaskId": task}),
    );
    assert_eq!(status, json!({"Status": "SUCCEEDED"}));
    let (code, _) = f.fails(
        "GetServiceLinkedRoleDeletionStatus",
        json!({"DeletionTaskId": "not-a-task"}),
    );
    assert_eq!(code, "InvalidInput");
    let (code, _) = f.fails("GetRole", json!({"RoleName": name}));
    assert_eq!(code, "NoSuchEntity");
    let (code, _) = f.fails(
        "CreateServiceLinkedRole",
        json!({"AWSServiceName": "unknown.amazonaws.com"}),
    );
    assert_eq!(code, "InvalidInput");
}

#[test]
fn sts_preferences_are_stored() {
    let mut f = Fixture::new();
    assert_eq!(
        f.ok(
            "SetSecurityTokenServicePreferences",
            json!({"GlobalEndpointTokenVersion": "v2Token"})
        ),
        json!({})
    );
    assert_eq!(f.tenant.global_endpoint_token_version.summary_value(), 2);
    let (code, _) = f.fails(
        "SetSecurityTokenServicePreferences",
        json!({"GlobalEndpointTokenVersion": "v2"}),
    );
    assert_eq!(code, "ValidationError");
    let (code, _) = f.fails("SetSecurityTokenServicePreferences", json!({}));
    assert_eq!(code, "MissingParameter");
}
