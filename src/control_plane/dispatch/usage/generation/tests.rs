//! Access Analyzer's policy generation from a usage batch made here.

use serde_json::{json, Value};

use super::super::{run_with_usage, UsageContext};
use crate::control_plane::store::{ActionUsage, ServiceUsage, UsageBatch};
use crate::control_plane::usage::UsageState;
use crate::control_plane::AdminError;
use crate::directory::{IdGenerator, PasswordHasher, Tenant};
use crate::error::AwsCode;
use crate::policy::{PolicyDocument, PolicyKind};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const DAY: i64 = 86_400;
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const ROLE: &str = "arn:aws:iam::111122223333:role/app";

struct Fixture {
    tenant: Tenant,
    usage: UsageBatch,
    state: UsageState,
    ids: IdGenerator,
}

fn service(principal: &str, service: &str, actions: &[(&str, i64)]) -> ServiceUsage {
    ServiceUsage {
        principal_arn: principal.into(),
        service: service.into(),
        last_authenticated: actions.iter().map(|(_, at)| *at).max().unwrap_or(0),
        region: "us-east-1".into(),
        actions: actions
            .iter()
            .map(|(action, at)| ActionUsage {
                action: (*action).into(),
                last_accessed: *at,
                region: "us-east-1".into(),
            })
            .collect(),
    }
}

impl Fixture {
    /// alice: s3 GetObject an hour ago, PutObject 30 days ago, dynamodb GetItem yesterday,
    /// sts GetCallerIdentity-free; the role `app`'s sessions: sqs SendMessage.
    fn new() -> Self {
        Self {
            tenant: Tenant::new(ACCOUNT, NOW - 100 * DAY),
            usage: UsageBatch {
                account_id: ACCOUNT.into(),
                services: vec![
                    service(
                        ALICE,
                        "s3",
                        &[("GetObject", NOW - 3600), ("PutObject", NOW - 30 * DAY)],
                    ),
                    service(ALICE, "dynamodb", &[("getitem", NOW - DAY)]),
                    service(
                        "arn:aws:sts::111122223333:assumed-role/app/s1",
                        "sqs",
                        &[("SendMessage", NOW - DAY)],
                    ),
                ],
                ..UsageBatch::default()
            },
            state: UsageState::default(),
            ids: IdGenerator::seeded(11),
        }
    }

    fn call(&mut self, action: &str, parameters: &Value) -> Result<Value, AdminError> {
        let cx = UsageContext {
            state: &self.state,
            ids: &mut self.ids,
            hasher: PasswordHasher::with_iterations(2),
            now: NOW,
            max_password_age_days: None,
        };
        run_with_usage(&self.tenant, &self.usage, cx, action, parameters)
    }

    fn ok(&mut self, action: &str, parameters: &Value) -> Value {
        self.call(action, parameters)
            .unwrap_or_else(|e| panic!("{action}: {} {e}", e.code()))
    }

    fn start(&mut self, principal: &str, start: Option<&str>) -> String {
        let mut parameters = json!({ "policyGenerationDetails": { "principalArn": principal } });
        if let Some(start) = start {
            parameters["cloudTrailDetails"] = json!({
                "trails": [],
                "accessRole": "arn:aws:iam::111122223333:role/trail-reader",
                "startTime": start,
            });
        }
        self.ok("StartPolicyGeneration", &parameters)["jobId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn policy(&mut self, job: &str, placeholders: bool) -> Value {
        let got = self.ok(
            "GetGeneratedPolicy",
            &json!({ "jobId": job, "includeResourcePlaceholders": placeholders }),
        );
        assert_eq!(got["jobDetails"]["status"], "SUCCEEDED");
        let text = got["generatedPolicyResult"]["generatedPolicies"][0]["policy"]
            .as_str()
            .unwrap();
        // What Access Analyzer hands out must be a valid identity policy.
        PolicyDocument::parse(text, PolicyKind::Identity).unwrap();
        serde_json::from_str(text).unwrap()
    }
}

#[test]
fn the_window_keeps_actions_last_used_since_its_start_in_canonical_case() {
    let mut f = Fixture::new();
    let week = f.start(ALICE, Some("2023-11-07T22:13:20Z"));
    assert_eq!(
        f.policy(&week, false)["Statement"],
        json!([
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
        ])
    );
    // Without a start: the whole tracking period.
    let all = f.start(ALICE, None);
    assert_eq!(
        f.policy(&all, false)["Statement"][1]["Action"],
        json!(["s3:GetObject", "s3:PutObject"])
    );
}

#[test]
fn placeholders_are_the_resource_types_arn_formats_with_partition_and_account() {
    let mut f = Fixture::new();
    let job = f.start(ALICE, None);
    assert_eq!(
        f.policy(&job, true)["Statement"],
        json!([
            {"Effect": "Allow", "Action": "dynamodb:GetItem",
             "Resource": "arn:aws:dynamodb:${Region}:111122223333:table/${TableName}"},
            // Every resource type the catalogue lists for the actions: objects reached
            // through an access point too.
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": [
                "arn:aws:s3:${Region}:111122223333:accesspoint/${AccessPointName}/object/${ObjectName}",
                "arn:aws:s3:::${BucketName}/${ObjectName}",
             ]},
        ])
    );
}

#[test]
fn a_role_takes_its_sessions_usage() {
    let mut f = Fixture::new();
    let job = f.start(ROLE, None);
    assert_eq!(
        f.policy(&job, false)["Statement"],
        json!([{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}])
    );
}

#[test]
fn no_activity_gives_no_policy_and_jobs_are_listed_paged_and_cancelled() {
    let mut f = Fixture::new();
    let idle = f.start("arn:aws:iam::111122223333:user/bob", None);
    let got = f.ok("GetGeneratedPolicy", &json!({ "jobId": idle }));
    assert_eq!(got["generatedPolicyResult"]["generatedPolicies"], json!([]));
    assert_eq!(
        got["generatedPolicyResult"]["properties"]["principalArn"],
        "arn:aws:iam::111122223333:user/bob"
    );
    let alice = f.start(ALICE, None);
    let listed = f.ok("ListPolicyGenerations", &json!({}));
    let ids: Vec<&str> = listed["policyGenerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [idle.as_str(), alice.as_str()]);
    let mine = f.ok("ListPolicyGenerations", &json!({ "principalArn": ALICE }));
    assert_eq!(mine["policyGenerations"][0]["jobId"], alice.as_str());
    assert_eq!(mine["policyGenerations"].as_array().unwrap().len(), 1);
    let first = f.ok("ListPolicyGenerations", &json!({ "maxResults": 1 }));
    assert_eq!(first["policyGenerations"][0]["jobId"], idle.as_str());
    let next = first["nextToken"].as_str().unwrap().to_owned();
    let second = f.ok(
        "ListPolicyGenerations",
        &json!({ "maxResults": 1, "nextToken": next }),
    );
    assert_eq!(second["policyGenerations"][0]["jobId"], alice.as_str());
    assert!(second.get("nextToken").is_none());

    assert_eq!(
        f.ok("CancelPolicyGeneration", &json!({ "jobId": alice })),
        json!({})
    );
    for action in ["CancelPolicyGeneration", "GetGeneratedPolicy"] {
        let e = f
            .call(action, &json!({ "jobId": "no-such-job" }))
            .unwrap_err();
        assert_eq!(e.code(), AwsCode::ResourceNotFoundException, "{action}");
    }
}

#[test]
fn bad_windows_and_principals_are_refused() {
    let mut f = Fixture::new();
    let backwards = json!({
        "policyGenerationDetails": { "principalArn": ALICE },
        "cloudTrailDetails": {
            "trails": [], "accessRole": "arn:aws:iam::111122223333:role/r",
            "startTime": "2023-11-10T00:00:00Z", "endTime": "2023-11-01T00:00:00Z",
        },
    });
    let e = f.call("StartPolicyGeneration", &backwards).unwrap_err();
    assert_eq!(e.code(), AwsCode::ValidationError);
    assert_eq!(
        e.to_string(),
        "The endTime must not be before the startTime."
    );
    let other = json!({
        "policyGenerationDetails": { "principalArn": "arn:aws:iam::444455556666:user/alice" },
    });
    let e = f.call("StartPolicyGeneration", &other).unwrap_err();
    assert_eq!(e.code(), AwsCode::ValidationError);
    let e = f.call("StartPolicyGeneration", &json!({})).unwrap_err();
    assert_eq!(e.code(), AwsCode::MissingParameter);
}
