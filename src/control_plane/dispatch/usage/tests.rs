//! The actions that answer from usage, on a tenant and a usage batch made here.

use data_encoding::BASE64;
use serde_json::{json, Value};

use super::*;
use crate::control_plane::store::{ActionUsage, KeyUsage, RoleUsage, ServiceUsage};
use crate::directory::{IdGenerator, PasswordHasher, Tenant};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const DAY: i64 = 86_400;
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);
const ALICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","iam:GetUser"],"Resource":"*"},{"Effect":"Deny","Action":"ec2:*","Resource":"*"}]}"#;
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

struct Fixture {
    tenant: Tenant,
    usage: UsageBatch,
    state: UsageState,
    ids: IdGenerator,
    now: i64,
    max_age: Option<u32>,
    /// alice's keys, oldest first.
    keys: Vec<String>,
}

fn arn(kind_and_name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind_and_name}")
}

impl Fixture {
    /// alice (a password, two keys the second inactive, an inline policy), bob (nothing),
    /// the role `app`; usage: alice's first key in s3/eu-west-1, alice in s3 (GetObject) and
    /// iam long ago, `app` used yesterday.
    fn new() -> Self {
        let mut f = Self {
            tenant: Tenant::new(ACCOUNT, NOW - 30 * DAY),
            usage: UsageBatch {
                account_id: ACCOUNT.into(),
                ..UsageBatch::default()
            },
            state: UsageState::default(),
            ids: IdGenerator::seeded(7),
            now: NOW,
            max_age: None,
            keys: Vec::new(),
        };
        f.plain("CreateUser", &json!({"UserName": "alice"}));
        f.plain("CreateUser", &json!({"UserName": "bob"}));
        f.plain(
            "CreateLoginProfile",
            &json!({"UserName": "alice", "Password": "Correct-Horse-9"}),
        );
        f.plain(
            "PutUserPolicy",
            &json!({"UserName": "alice", "PolicyName": "p", "PolicyDocument": ALICE_POLICY}),
        );
        f.plain(
            "CreateRole",
            &json!({"RoleName": "app", "AssumeRolePolicyDocument": TRUST}),
        );
        for _ in 0..2 {
            let key = f.plain("CreateAccessKey", &json!({"UserName": "alice"}));
            f.keys
                .push(key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned());
        }
        f.plain(
            "UpdateAccessKey",
            &json!({"UserName": "alice", "AccessKeyId": f.keys[1], "Status": "Inactive"}),
        );
        f.usage.access_keys.push(KeyUsage {
            access_key_id: f.keys[0].clone(),
            last_used: NOW - 60,
            service: "s3".into(),
            region: "eu-west-1".into(),
        });
        f.usage.services.push(ServiceUsage {
            principal_arn: arn("user/alice"),
            service: "s3".into(),
            last_authenticated: NOW - 60,
            region: "eu-west-1".into(),
            actions: vec![ActionUsage {
                action: "GetObject".into(),
                last_accessed: NOW - 60,
                region: "eu-west-1".into(),
            }],
        });
        // Before the tracking period: not reported.
        f.usage.services.push(ServiceUsage {
            principal_arn: arn("user/alice"),
            service: "iam".into(),
            last_authenticated: NOW - 401 * DAY,
            region: String::new(),
            actions: Vec::new(),
        });
        f.usage.roles.push(RoleUsage {
            role_arn: arn("role/app"),
            last_used: NOW - DAY,
            region: "us-east-1".into(),
        });
        f
    }

    fn plain(&mut self, action: &str, parameters: &Value) -> Value {
        crate::control_plane::dispatch(
            &mut self.tenant,
            &mut self.ids,
            HASHER,
            NOW - 10 * DAY,
            action,
            parameters,
        )
        .unwrap_or_else(|e| panic!("{action}: {e}"))
        .result
    }

    fn call(&mut self, action: &str, parameters: &Value) -> Result<Value, AdminError> {
        let cx = UsageContext {
            state: &self.state,
            ids: &mut self.ids,
            hasher: HASHER,
            now: self.now,
            max_password_age_days: self.max_age,
        };
        run_with_usage(&self.tenant, &self.usage, cx, action, parameters)
    }

    fn ok(&mut self, action: &str, parameters: &Value) -> Value {
        self.call(action, parameters)
            .unwrap_or_else(|e| panic!("{action}: {} {e}", e.code()))
    }

    fn code(&mut self, action: &str, parameters: &Value) -> AwsCode {
        self.call(action, parameters).unwrap_err().code()
    }

    fn report(&mut self) -> String {
        let got = self.ok("GetCredentialReport", &json!({}));
        assert_eq!(got["ReportFormat"], "text/csv");
        let bytes = BASE64
            .decode(got["Content"].as_str().unwrap().as_bytes())
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }
}

#[test]
fn access_key_last_used_answers_from_the_usage_and_na_when_never_used() {
    let mut f = Fixture::new();
    let used = f.ok("GetAccessKeyLastUsed", &json!({"AccessKeyId": f.keys[0]}));
    assert_eq!(
        used,
        json!({"UserName": "alice", "AccessKeyLastUsed": {
            "LastUsedDate": "2023-11-14T22:12:20Z", "ServiceName": "s3", "Region": "eu-west-1"
        }})
    );
    let unused = f.ok("GetAccessKeyLastUsed", &json!({"AccessKeyId": f.keys[1]}));
    assert_eq!(
        unused["AccessKeyLastUsed"],
        json!({"ServiceName": "N/A", "Region": "N/A"})
    );
    assert_eq!(
        f.code(
            "GetAccessKeyLastUsed",
            &json!({"AccessKeyId": "AKIANOSUCHKEY0000000"})
        ),
        AwsCode::NoSuchEntity
    );
}

#[test]
fn role_last_used_is_reported_within_the_tracking_period_only() {
    let mut f = Fixture::new();
    let got = f.ok("GetRole", &json!({"RoleName": "app"}));
    assert_eq!(
        got["Role"]["RoleLastUsed"],
        json!({"LastUsedDate": "2023-11-13T22:13:20Z", "Region": "us-east-1"})
    );
    assert_eq!(got["Role"]["RoleName"], "app");
    f.now = NOW + 400 * DAY;
    let got = f.ok("GetRole", &json!({"RoleName": "app"}));
    assert_eq!(got["Role"]["RoleLastUsed"], json!({}));
}

#[test]
fn the_credential_report_has_aws_columns_the_root_row_first_and_the_users_values() {
    let mut f = Fixture::new();
    f.tenant.root_access_key = None;
    let csv = credential_report(&f.tenant, &f.usage, None);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(
        lines[0],
        "user,arn,user_creation_time,password_enabled,password_last_used,\
         password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
         access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,\
         access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,\
         access_key_2_last_used_date,access_key_2_last_used_region,\
         access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,\
         cert_2_last_rotated"
    );
    assert_eq!(
        lines[1],
        "<root_account>,arn:aws:iam::111122223333:root,2023-10-15T22:13:20+00:00,\
         not_supported,no_information,not_supported,not_supported,false,false,N/A,N/A,N/A,N/A,\
         false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
    );
    let created = "2023-11-04T22:13:20+00:00";
    assert_eq!(
        lines[2],
        format!(
            "alice,arn:aws:iam::111122223333:user/alice,{created},true,no_information,{created},\
             N/A,false,true,{created},2023-11-14T22:12:20+00:00,eu-west-1,s3,false,{created},\
             N/A,N/A,N/A,false,N/A,false,N/A"
        )
    );
    assert_eq!(
        lines[3],
        format!(
            "bob,arn:aws:iam::111122223333:user/bob,{created},false,N/A,N/A,N/A,false,false,N/A,\
             N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
        )
    );
    // Every row has every column.
    for line in &lines {
        assert_eq!(line.split(',').count(), REPORT_COLUMNS.len(), "{line}");
    }
}

#[test]
fn password_next_rotation_follows_the_password_policy_when_there_is_one() {
    let f = Fixture::new();
    let csv = credential_report(&f.tenant, &f.usage, Some(90));
    let alice: Vec<&str> = csv.lines().nth(2).unwrap().split(',').collect();
    // Changed 2023-11-04, 90 days later.
    assert_eq!(alice[6], "2024-02-02T22:13:20+00:00");
    let bob: Vec<&str> = csv.lines().nth(3).unwrap().split(',').collect();
    assert_eq!(bob[6], "N/A");
}

#[test]
fn an_empty_tenant_reports_the_root_row_with_its_access_key() {
    let mut tenant = Tenant::new(ACCOUNT, NOW);
    tenant
        .create_root_access_key(&mut IdGenerator::seeded(3), NOW)
        .unwrap();
    let key = tenant
        .root_access_key
        .as_ref()
        .unwrap()
        .access_key_id
        .clone();
    let usage = UsageBatch {
        account_id: ACCOUNT.into(),
        access_keys: vec![KeyUsage {
            access_key_id: key,
            last_used: NOW + 5,
            service: "iam".into(),
            region: String::new(),
        }],
        ..UsageBatch::default()
    };
    let csv = credential_report(&tenant, &usage, None);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].starts_with("<root_account>,arn:aws:iam::111122223333:root,"));
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(
        &cells[8..13],
        &[
            "true",
            "2023-11-14T22:13:20+00:00",
            "2023-11-14T22:13:25+00:00",
            "N/A",
            "iam"
        ]
    );
}

#[test]
fn a_report_is_generated_reused_for_four_hours_then_expires() {
    let mut f = Fixture::new();
    assert_eq!(
        f.code("GetCredentialReport", &json!({})),
        AwsCode::ReportNotPresent
    );
    let started = f.ok("GenerateCredentialReport", &json!({}));
    assert_eq!(started["State"], "STARTED");
    assert!(started["Description"].is_string());
    let first = f.report();
    assert!(first.contains("\nalice,"));
    // A new user within 4 hours: the report is reused, not made again.
    f.plain("CreateUser", &json!({"UserName": "carol"}));
    f.now = NOW + 4 * 3_600 - 1;
    assert_eq!(
        f.ok("GenerateCredentialReport", &json!({})),
        json!({"State": "COMPLETE"})
    );
    assert_eq!(f.report(), first);
    assert_eq!(
        f.ok("GetCredentialReport", &json!({}))["GeneratedTime"],
        "2023-11-14T22:13:20Z"
    );
    f.now = NOW + 4 * 3_600;
    assert_eq!(
        f.code("GetCredentialReport", &json!({})),
        AwsCode::ReportExpired
    );
    assert_eq!(
        f.ok("GenerateCredentialReport", &json!({}))["State"],
        "STARTED"
    );
    assert!(f.report().contains("\ncarol,"));
}

#[test]
fn access_advisor_lists_the_allowed_services_with_their_usage() {
    let mut f = Fixture::new();
    let job = f.ok(
        "GenerateServiceLastAccessedDetails",
        &json!({"Arn": arn("user/alice")}),
    );
    let id = job["JobId"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    let got = f.ok("GetServiceLastAccessedDetails", &json!({"JobId": id}));
    assert_eq!(got["JobStatus"], "COMPLETED");
    assert_eq!(got["JobType"], "SERVICE_LEVEL");
    assert_eq!(got["IsTruncated"], false);
    // The members in the model's order.
    let members: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        [
            "JobStatus",
            "JobType",
            "JobCreationDate",
            "ServicesLastAccessed",
            "JobCompletionDate",
            "IsTruncated"
        ]
    );
    // s3 and iam are allowed (ec2 is only denied); iam's use is before the tracking period.
    assert_eq!(
        got["ServicesLastAccessed"],
        json!([
            {"ServiceName": "AWS Identity and Access Management", "ServiceNamespace": "iam",
             "TotalAuthenticatedEntities": 0},
            {"ServiceName": "Amazon S3", "LastAuthenticated": "2023-11-14T22:12:20Z",
             "ServiceNamespace": "s3", "LastAuthenticatedEntity": arn("user/alice"),
             "LastAuthenticatedRegion": "eu-west-1", "TotalAuthenticatedEntities": 1},
        ])
    );
    let entities = f.ok(
        "GetServiceLastAccessedDetailsWithEntities",
        &json!({"JobId": id, "ServiceNamespace": "s3"}),
    );
    assert_eq!(
        entities["EntityDetailsList"][0]["EntityInfo"]["Arn"],
        arn("user/alice")
    );
    assert_eq!(
        entities["EntityDetailsList"][0]["LastAuthenticated"],
        "2023-11-14T22:12:20Z"
    );
    // Pages of one.
    let first = f.ok(
        "GetServiceLastAccessedDetails",
        &json!({"JobId": id, "MaxItems": 1}),
    );
    assert_eq!(first["IsTruncated"], true);
    assert_eq!(first["ServicesLastAccessed"][0]["ServiceNamespace"], "iam");
    let second = f.ok(
        "GetServiceLastAccessedDetails",
        &json!({"JobId": id, "MaxItems": 1, "Marker": first["Marker"]}),
    );
    assert_eq!(second["ServicesLastAccessed"][0]["ServiceNamespace"], "s3");
    assert_eq!(second["IsTruncated"], false);
}

#[test]
fn access_advisor_at_action_level_lists_tracked_actions() {
    let mut f = Fixture::new();
    let job = f.ok(
        "GenerateServiceLastAccessedDetails",
        &json!({"Arn": arn("user/alice"), "Granularity": "ACTION_LEVEL"}),
    );
    let got = f.ok(
        "GetServiceLastAccessedDetails",
        &json!({"JobId": job["JobId"]}),
    );
    assert_eq!(got["JobType"], "ACTION_LEVEL");
    let services = got["ServicesLastAccessed"].as_array().unwrap();
    let s3 = services
        .iter()
        .find(|s| s["ServiceNamespace"] == "s3")
        .unwrap();
    assert_eq!(
        s3["TrackedActionsLastAccessed"],
        json!([{"ActionName": "GetObject", "LastAccessedEntity": arn("user/alice"),
                "LastAccessedTime": "2023-11-14T22:12:20Z", "LastAccessedRegion": "eu-west-1"}])
    );
    let iam = services
        .iter()
        .find(|s| s["ServiceNamespace"] == "iam")
        .unwrap();
    assert_eq!(
        iam["TrackedActionsLastAccessed"],
        json!([{"ActionName": "GetUser"}])
    );
}

#[test]
fn access_advisor_refuses_unknown_entities_jobs_and_granularities() {
    let mut f = Fixture::new();
    assert_eq!(
        f.code(
            "GenerateServiceLastAccessedDetails",
            &json!({"Arn": arn("user/nobody")})
        ),
        AwsCode::NoSuchEntity
    );
    assert_eq!(
        f.code(
            "GenerateServiceLastAccessedDetails",
            &json!({"Arn": "alice"})
        ),
        AwsCode::InvalidInput
    );
    assert_eq!(
        f.code(
            "GenerateServiceLastAccessedDetails",
            &json!({"Arn": arn("user/alice"), "Granularity": "RESOURCE_LEVEL"})
        ),
        AwsCode::ValidationError
    );
    assert_eq!(
        f.code(
            "GetServiceLastAccessedDetails",
            &json!({"JobId": "00000000-0000-0000-0000-000000000000"})
        ),
        AwsCode::NoSuchEntity
    );
    let job = f.ok(
        "GenerateServiceLastAccessedDetails",
        &json!({"Arn": arn("role/app")}),
    );
    // The role's policies allow nothing: no service.
    let got = f.ok(
        "GetServiceLastAccessedDetails",
        &json!({"JobId": job["JobId"]}),
    );
    assert_eq!(got["ServicesLastAccessed"], json!([]));
    assert_eq!(
        f.code(
            "GetServiceLastAccessedDetails",
            &json!({"JobId": job["JobId"], "MaxItems": 0})
        ),
        AwsCode::ValidationError
    );
    // Another tenant's job is not found.
    let mut other = Fixture::new();
    other.tenant.account_id = "999999999999".into();
    other.state = std::mem::take(&mut f.state);
    assert_eq!(
        other.code(
            "GetServiceLastAccessedDetails",
            &json!({"JobId": job["JobId"]})
        ),
        AwsCode::NoSuchEntity
    );
}

#[test]
fn a_policy_job_counts_every_entity_it_is_attached_to() {
    let mut f = Fixture::new();
    let policy = f.plain(
        "CreatePolicy",
        &json!({"PolicyName": "s3", "PolicyDocument": r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}}"#}),
    );
    let policy_arn = policy["Policy"]["Arn"].as_str().unwrap().to_owned();
    for (action, key, name) in [
        ("AttachUserPolicy", "UserName", "alice"),
        ("AttachUserPolicy", "UserName", "bob"),
        ("AttachRolePolicy", "RoleName", "app"),
    ] {
        f.plain(action, &json!({key: name, "PolicyArn": policy_arn}));
    }
    f.usage.services.push(ServiceUsage {
        principal_arn: arn("role/app"),
        service: "s3".into(),
        last_authenticated: NOW - 10,
        region: "us-east-1".into(),
        actions: Vec::new(),
    });
    let job = f.ok(
        "GenerateServiceLastAccessedDetails",
        &json!({"Arn": policy_arn}),
    );
    let got = f.ok(
        "GetServiceLastAccessedDetails",
        &json!({"JobId": job["JobId"]}),
    );
    let s3 = &got["ServicesLastAccessed"][0];
    assert_eq!(s3["TotalAuthenticatedEntities"], 2);
    assert_eq!(s3["LastAuthenticatedEntity"], arn("role/app"));
    let entities = f.ok(
        "GetServiceLastAccessedDetailsWithEntities",
        &json!({"JobId": job["JobId"], "ServiceNamespace": "s3"}),
    );
    let names: Vec<&str> = entities["EntityDetailsList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["EntityInfo"]["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "alice", "bob"]);
    assert!(entities["EntityDetailsList"][2]
        .get("LastAuthenticated")
        .is_none());
}

#[test]
fn iam_wildcards_match_as_iam_does() {
    assert!(glob(b"s3:get*", b"s3:getobject"));
    assert!(glob(b"*", b"ec2:x"));
    assert!(glob(b"s3:?etobject", b"s3:getobject"));
    assert!(!glob(b"s3:get*", b"s3:putobject"));
    assert!(!glob(b"s3:get", b"s3:getobject"));
    assert!(glob(b"s*", b"sts"));
    assert!(glob(b"S3:Get*", b"s3:GetObject"));
}
