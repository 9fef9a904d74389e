//! Unused access findings on a tenant and a usage batch made here, through the actions.

use serde_json::{json, Value};

use crate::control_plane::dispatch::{dispatch, run_with_usage, UsageContext};
use crate::control_plane::store::{ActionUsage, KeyUsage, RoleUsage, ServiceUsage, UsageBatch};
use crate::control_plane::usage::UsageState;
use crate::control_plane::AdminError;
use crate::directory::{IdGenerator, PasswordHasher, Tenant};
use crate::error::AwsCode;

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const DAY: i64 = 86_400;
const CREATED: i64 = NOW - 200 * DAY;
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);
const ANALYZER: &str = "arn:aws:access-analyzer:us-east-1:111122223333:analyzer/unused";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const BUSY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","dynamodb:GetItem"],"Resource":"*"}]}"#;
const ALICE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;

fn arn(kind_and_name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{kind_and_name}")
}

fn date(secs: i64) -> Value {
    Value::String(crate::policy::Timestamp::from_epoch_seconds(secs).to_string())
}

struct Fixture {
    tenant: Tenant,
    usage: UsageBatch,
    state: UsageState,
    ids: IdGenerator,
    /// alice's keys: used 100 days ago, used yesterday.
    keys: Vec<String>,
}

impl Fixture {
    /// Created 200 days before NOW: roles `idle` (never used) and `busy` (used yesterday, in
    /// s3:GetObject only, though allowed s3:PutObject and dynamodb:GetItem), the
    /// service-linked role of Auto Scaling (never used); alice (a password, the three keys, s3
    /// used yesterday), bob (tagged team=ops, nothing) and carol (an inactive key never used). Created 10 days before NOW: the
    /// role `young`. The analyzer `unused` with the default window, 90 days.
    fn new() -> Self {
        let mut f = Self {
            tenant: Tenant::new(ACCOUNT, CREATED),
            usage: UsageBatch {
                account_id: ACCOUNT.into(),
                ..UsageBatch::default()
            },
            state: UsageState::default(),
            ids: IdGenerator::seeded(11),
            keys: Vec::new(),
        };
        for role in ["idle", "busy"] {
            f.at(
                CREATED,
                "CreateRole",
                &json!({"RoleName": role, "AssumeRolePolicyDocument": TRUST}),
            );
        }
        f.at(
            CREATED,
            "PutRolePolicy",
            &json!({"RoleName": "busy", "PolicyName": "p", "PolicyDocument": BUSY_POLICY}),
        );
        f.at(
            CREATED,
            "CreateServiceLinkedRole",
            &json!({"AWSServiceName": "autoscaling.amazonaws.com"}),
        );
        f.at(
            NOW - 10 * DAY,
            "CreateRole",
            &json!({"RoleName": "young", "AssumeRolePolicyDocument": TRUST}),
        );
        f.at(CREATED, "CreateUser", &json!({"UserName": "alice"}));
        f.at(
            CREATED,
            "CreateUser",
            &json!({"UserName": "bob", "Tags": [{"Key": "team", "Value": "ops"}]}),
        );
        f.at(
            CREATED,
            "CreateLoginProfile",
            &json!({"UserName": "alice", "Password": "Correct-Horse-9"}),
        );
        f.at(
            CREATED,
            "PutUserPolicy",
            &json!({"UserName": "alice", "PolicyName": "p", "PolicyDocument": ALICE_POLICY}),
        );
        for _ in 0..2 {
            let key = f.at(CREATED, "CreateAccessKey", &json!({"UserName": "alice"}));
            f.keys
                .push(key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned());
        }
        f.at(CREATED, "CreateUser", &json!({"UserName": "carol"}));
        let key = f.at(CREATED, "CreateAccessKey", &json!({"UserName": "carol"}));
        let carols = key["AccessKey"]["AccessKeyId"].clone();
        f.at(
            CREATED,
            "UpdateAccessKey",
            &json!({"UserName": "carol", "AccessKeyId": carols, "Status": "Inactive"}),
        );
        for (key, at) in [(&f.keys[0], NOW - 100 * DAY), (&f.keys[1], NOW - DAY)] {
            f.usage.access_keys.push(KeyUsage {
                access_key_id: key.clone(),
                last_used: at,
                service: "s3".into(),
                region: "us-east-1".into(),
            });
        }
        for who in ["user/alice", "role/busy"] {
            f.usage.services.push(ServiceUsage {
                principal_arn: arn(who),
                service: "s3".into(),
                last_authenticated: NOW - DAY,
                region: "us-east-1".into(),
                actions: vec![ActionUsage {
                    action: "GetObject".into(),
                    last_accessed: NOW - DAY,
                    region: "us-east-1".into(),
                }],
            });
        }
        f.usage.roles.push(RoleUsage {
            role_arn: arn("role/busy"),
            last_used: NOW - DAY,
            region: "us-east-1".into(),
        });
        f.at(
            NOW - DAY,
            "CreateAnalyzer",
            &json!({"analyzerName": "unused", "type": "ACCOUNT_UNUSED_ACCESS"}),
        );
        f
    }

    /// A plain action at `at`.
    fn at(&mut self, at: i64, action: &str, parameters: &Value) -> Value {
        self.try_at(at, action, parameters)
            .unwrap_or_else(|e| panic!("{action}: {e}"))
    }

    fn try_at(&mut self, at: i64, action: &str, parameters: &Value) -> Result<Value, AdminError> {
        dispatch(
            &mut self.tenant,
            &mut self.ids,
            HASHER,
            at,
            action,
            parameters,
        )
        .map(|d| d.result)
    }

    /// A findings action at NOW.
    fn read(&mut self, action: &str, parameters: &Value) -> Result<Value, AdminError> {
        let cx = UsageContext {
            state: &self.state,
            ids: &mut self.ids,
            hasher: HASHER,
            now: NOW,
            max_password_age_days: None,
        };
        run_with_usage(&self.tenant, &self.usage, cx, action, parameters)
    }

    fn list(&mut self, parameters: &Value) -> Vec<Value> {
        let got = self
            .read("ListFindingsV2", parameters)
            .unwrap_or_else(|e| panic!("{}: {e}", e.code()));
        got["findings"].as_array().unwrap().clone()
    }

    fn all(&mut self) -> Vec<Value> {
        self.list(&json!({"analyzerArn": ANALYZER}))
    }
}

/// (findingType, resource) of each finding.
fn kinds(findings: &[Value]) -> Vec<(String, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f["findingType"].as_str().unwrap().to_owned(),
                f["resource"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn find<'a>(findings: &'a [Value], kind: &str, resource: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["findingType"] == kind && f["resource"] == resource)
        .unwrap_or_else(|| panic!("no {kind} for {resource} in {findings:?}"))
}

#[test]
fn each_kind_of_unused_access_is_found_and_nothing_else() {
    let mut f = Fixture::new();
    let all = f.all();
    let s = |a: &str, b: String| (a.to_owned(), b);
    assert_eq!(
        kinds(&all),
        vec![
            s("UnusedPermission", arn("role/busy")),
            s("UnusedIAMRole", arn("role/idle")),
            s("UnusedIAMUserAccessKey", arn("user/alice")),
            s("UnusedIAMUserPassword", arn("user/alice")),
            // bob's policies allow nothing, and he has no credentials.
        ],
        "the young role, the service-linked role and the used role are not unused roles"
    );
    for finding in &all {
        assert_eq!(finding["status"], "ACTIVE");
        assert_eq!(finding["resourceOwnerAccount"], ACCOUNT);
        assert_eq!(finding["analyzedAt"], date(NOW));
        assert_eq!(finding["id"].as_str().unwrap().len(), 36);
    }
    let idle = find(&all, "UnusedIAMRole", &arn("role/idle"));
    assert_eq!(idle["resourceType"], "AWS::IAM::Role");
    // Never used: unused from the moment it was old enough.
    assert_eq!(idle["createdAt"], date(CREATED + 90 * DAY));
    assert_eq!(
        find(&all, "UnusedIAMUserPassword", &arn("user/alice"))["resourceType"],
        "AWS::IAM::User"
    );
}

#[test]
fn details_have_access_analyzers_shapes() {
    let mut f = Fixture::new();
    let all = f.all();
    let detail = |f: &mut Fixture, kind: &str, resource: &str| {
        let id = find(&all, kind, resource)["id"].clone();
        let got = f
            .read("GetFindingV2", &json!({"analyzerArn": ANALYZER, "id": id}))
            .unwrap();
        assert_eq!(got["id"], id);
        assert_eq!(got["findingType"], kind);
        got["findingDetails"].clone()
    };
    assert_eq!(
        detail(&mut f, "UnusedIAMRole", &arn("role/idle")),
        json!([{"unusedIamRoleDetails": {}}])
    );
    // Only the key unused for 90 days, with its last use; the one used yesterday is not a
    // finding (nor carol's inactive key).
    assert_eq!(
        detail(&mut f, "UnusedIAMUserAccessKey", &arn("user/alice")),
        json!([{"unusedIamUserAccessKeyDetails": {
            "accessKeyId": f.keys[0], "lastAccessed": date(NOW - 100 * DAY)}}])
    );
    assert_eq!(
        detail(&mut f, "UnusedIAMUserPassword", &arn("user/alice")),
        json!([{"unusedIamUserPasswordDetails": {}}])
    );
    // dynamodb never used; s3 used, but not s3:PutObject (s3 is tracked at action level).
    assert_eq!(
        detail(&mut f, "UnusedPermission", &arn("role/busy")),
        json!([
            {"unusedPermissionDetails": {"serviceNamespace": "dynamodb"}},
            {"unusedPermissionDetails": {
                "actions": [{"action": "PutObject"}],
                "serviceNamespace": "s3",
                "lastAccessed": date(NOW - DAY)}},
        ])
    );
}

#[test]
fn ids_are_stable_and_unknown_ones_are_not_found() {
    let mut f = Fixture::new();
    let first = f.all();
    f.usage.services.clear();
    let again = f.all();
    let id = |v: &[Value], kind: &str| find(v, kind, &arn("role/idle"))["id"].clone();
    assert_eq!(id(&first, "UnusedIAMRole"), id(&again, "UnusedIAMRole"));
    let e = f
        .read(
            "GetFindingV2",
            &json!({"analyzerArn": ANALYZER, "id": "00000000-0000-0000-0000-000000000000"}),
        )
        .unwrap_err();
    assert_eq!(e.code(), AwsCode::ResourceNotFoundException);
}

#[test]
fn a_use_within_the_window_clears_the_finding_and_the_window_is_the_analyzers() {
    let mut f = Fixture::new();
    f.usage.roles.push(RoleUsage {
        role_arn: arn("role/idle"),
        last_used: NOW - 89 * DAY,
        region: "us-east-1".into(),
    });
    assert!(!kinds(&f.all()).iter().any(|(k, _)| k == "UnusedIAMRole"));
    // With a 30-day window, the same use is too old: the role is unused again, with its
    // last use.
    f.at(
        NOW,
        "UpdateAnalyzer",
        &json!({"analyzerName": "unused", "configuration": {"unusedAccess": {"unusedAccessAge": 30}}}),
    );
    let all = f.all();
    let idle = find(&all, "UnusedIAMRole", &arn("role/idle"));
    assert_eq!(idle["createdAt"], date(NOW - 59 * DAY));
    // A window longer than the entities' life analyzes none of them.
    f.at(
        NOW,
        "UpdateAnalyzer",
        &json!({"analyzerName": "unused", "configuration": {"unusedAccess": {"unusedAccessAge": 365}}}),
    );
    assert_eq!(f.all(), Vec::<Value>::new());
}

#[test]
fn filters_sort_and_pages_as_access_analyzer() {
    let mut f = Fixture::new();
    let roles = f.list(&json!({"analyzerArn": ANALYZER,
        "filter": {"findingType": {"eq": ["UnusedIAMRole", "UnusedPermission"]}}}));
    assert_eq!(roles.len(), 2);
    let not_alice = f.list(&json!({"analyzerArn": ANALYZER,
        "filter": {"resource": {"neq": [arn("user/alice")]}, "resourceType": {"eq": ["AWS::IAM::Role"]}}}));
    assert_eq!(kinds(&not_alice), kinds(&roles));
    let contains = f.list(&json!({"analyzerArn": ANALYZER,
        "filter": {"resource": {"contains": ["alice"]}}}));
    assert_eq!(contains.len(), 2);
    let sorted = f.list(&json!({"analyzerArn": ANALYZER,
        "sort": {"attributeName": "findingType", "orderBy": "DESC"}}));
    let types: Vec<String> = kinds(&sorted).into_iter().map(|(k, _)| k).collect();
    let mut expected = types.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(types, expected);
    // One at a time, the pages add up to the whole list.
    let all = f.all();
    let mut paged = Vec::new();
    let mut token: Option<Value> = None;
    loop {
        let mut p = json!({"analyzerArn": ANALYZER, "maxResults": 1});
        if let Some(t) = &token {
            p["nextToken"] = t.clone();
        }
        let got = f.read("ListFindingsV2", &p).unwrap();
        paged.extend(got["findings"].as_array().unwrap().iter().cloned());
        match got.get("nextToken") {
            Some(t) => token = Some(t.clone()),
            None => break,
        }
    }
    assert_eq!(paged, all);
}

#[test]
fn bad_requests_get_access_analyzers_errors() {
    let mut f = Fixture::new();
    let code = |r: Result<Value, AdminError>| r.unwrap_err().code();
    let list = |filter: Value| json!({"analyzerArn": ANALYZER, "filter": filter});
    assert_eq!(
        code(f.read("ListFindingsV2", &list(json!({"color": {"eq": ["red"]}})))),
        AwsCode::ValidationException
    );
    assert_eq!(
        code(f.read("ListFindingsV2", &list(json!({"status": {}})))),
        AwsCode::ValidationException
    );
    assert_eq!(
        code(f.read(
            "ListFindingsV2",
            &json!({"analyzerArn": ANALYZER, "sort": {"attributeName": "color"}})
        )),
        AwsCode::ValidationException
    );
    assert_eq!(
        code(f.read(
            "ListFindingsV2",
            &json!({"analyzerArn": ANALYZER, "nextToken": "forged"})
        )),
        AwsCode::ValidationException
    );
    assert_eq!(
        code(f.read(
            "ListFindingsV2",
            &json!({"analyzerArn": "arn:aws:access-analyzer:us-east-1:111122223333:analyzer/nope"})
        )),
        AwsCode::ResourceNotFoundException
    );
    assert_eq!(
        code(f.read("ListFindingsV2", &json!({}))),
        AwsCode::ValidationException,
        "a missing analyzerArn"
    );
    let create = |name: &str, kind: &str, age: i64| {
        json!({"analyzerName": name, "type": kind,
               "configuration": {"unusedAccess": {"unusedAccessAge": age}}})
    };
    assert_eq!(
        code(f.try_at(
            NOW,
            "CreateAnalyzer",
            &create("unused", "ACCOUNT_UNUSED_ACCESS", 90)
        )),
        AwsCode::ConflictException
    );
    assert_eq!(
        code(f.try_at(NOW, "CreateAnalyzer", &create("ext", "ACCOUNT", 90))),
        AwsCode::ValidationException
    );
    for age in [0, 366, -1] {
        assert_eq!(
            code(f.try_at(
                NOW,
                "CreateAnalyzer",
                &create("b", "ACCOUNT_UNUSED_ACCESS", age)
            )),
            AwsCode::ValidationException,
            "{age}"
        );
    }
    assert_eq!(
        code(f.try_at(
            NOW,
            "CreateAnalyzer",
            &json!({"analyzerName": "x", "type": "ACCOUNT_UNUSED_ACCESS", "colour": 1})
        )),
        AwsCode::ValidationException
    );
    assert_eq!(
        code(f.try_at(NOW, "GetAnalyzer", &json!({"analyzerName": "nope"}))),
        AwsCode::ResourceNotFoundException
    );
}

#[test]
fn archived_findings_stay_archived_until_made_active() {
    let mut f = Fixture::new();
    let all = f.all();
    let idle = find(&all, "UnusedIAMRole", &arn("role/idle"))["id"].clone();
    f.at(
        NOW - 60,
        "UpdateFindings",
        &json!({"analyzerArn": ANALYZER, "status": "ARCHIVED", "ids": [idle]}),
    );
    let active =
        f.list(&json!({"analyzerArn": ANALYZER, "filter": {"status": {"eq": ["ACTIVE"]}}}));
    assert_eq!(active.len(), all.len() - 1);
    let got = f
        .read(
            "GetFindingV2",
            &json!({"analyzerArn": ANALYZER, "id": idle}),
        )
        .unwrap();
    assert_eq!(
        (got["status"].clone(), got["updatedAt"].clone()),
        (json!("ARCHIVED"), date(NOW - 60))
    );
    let stats = f
        .read("GetFindingsStatistics", &json!({"analyzerArn": ANALYZER}))
        .unwrap();
    let s = &stats["findingsStatistics"][0]["unusedAccessFindingsStatistics"];
    assert_eq!(s["totalActiveFindings"], 3);
    assert_eq!(s["totalArchivedFindings"], 1);
    assert_eq!(
        s["unusedAccessTypeStatistics"],
        json!([
            {"unusedAccessType": "UnusedIAMUserAccessKey", "total": 1},
            {"unusedAccessType": "UnusedIAMUserPassword", "total": 1},
            {"unusedAccessType": "UnusedPermission", "total": 1},
        ])
    );
    // By resource, later: active again.
    f.at(
        NOW - 30,
        "UpdateFindings",
        &json!({"analyzerArn": ANALYZER, "status": "ACTIVE", "resourceArn": arn("role/idle")}),
    );
    let got = f
        .read(
            "GetFindingV2",
            &json!({"analyzerArn": ANALYZER, "id": idle}),
        )
        .unwrap();
    assert_eq!(got["status"], "ACTIVE");
}

#[test]
fn excluded_principals_are_not_analyzed() {
    let mut f = Fixture::new();
    f.at(
        NOW,
        "UpdateAnalyzer",
        &json!({"analyzerName": "unused", "configuration": {"unusedAccess": {
            "unusedAccessAge": 90,
            "analysisRule": {"exclusions": [{"resourceTags": [{"team": "ops"}]}]}}}}),
    );
    f.at(
        NOW,
        "TagRole",
        &json!({"RoleName": "idle", "Tags": [{"Key": "team", "Value": "ops"}]}),
    );
    assert!(!kinds(&f.all()).iter().any(|(_, r)| *r == arn("role/idle")));
    let got = f
        .try_at(NOW, "GetAnalyzer", &json!({"analyzerName": "unused"}))
        .unwrap();
    assert_eq!(got["analyzer"]["type"], "ACCOUNT_UNUSED_ACCESS");
    assert_eq!(got["analyzer"]["status"], "ACTIVE");
    assert_eq!(
        got["analyzer"]["configuration"]["unusedAccess"]["analysisRule"]["exclusions"],
        json!([{"resourceTags": [{"team": "ops"}]}])
    );
    let listed = f.try_at(NOW, "ListAnalyzers", &json!({})).unwrap();
    assert_eq!(listed["analyzers"][0]["arn"], ANALYZER);
    f.at(NOW, "DeleteAnalyzer", &json!({"analyzerName": "unused"}));
    assert_eq!(
        f.read("ListFindingsV2", &json!({"analyzerArn": ANALYZER}))
            .unwrap_err()
            .code(),
        AwsCode::ResourceNotFoundException
    );
}
