//! The policy simulator through `dispatch`: AWS's shapes, positions, errors and pagination.
//! Its agreement with the engine over the decision-vector corpus is `tests/simulator.rs`.

use serde_json::{json, Value};

use super::super::{dispatch, is_mutating, Dispatched};
use super::statement_spans;
use crate::control_plane::AdminError;
use crate::directory::{IdGenerator, PasswordHasher, Tenant};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);

/// AWS's example of `simulate-custom-policy` (AWS CLI reference).
const DYNAMO_AFTER_DATE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}"#;

struct Fixture {
    tenant: Tenant,
    ids: IdGenerator,
}

impl Fixture {
    fn new(account: &str) -> Self {
        Self {
            tenant: Tenant::new(account, 0),
            ids: IdGenerator::seeded(1),
        }
    }

    fn call(&mut self, action: &str, parameters: &Value) -> Result<Dispatched, AdminError> {
        dispatch(
            &mut self.tenant,
            &mut self.ids,
            HASHER,
            NOW,
            action,
            parameters,
        )
    }

    #[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
    fn ok(&mut self, action: &str, parameters: Value) -> Value {
        let out = self
            .call(action, &parameters)
            .unwrap_or_else(|e| panic!("{action} failed: {} {e}", e.code()));
        assert_eq!(out.changed, is_mutating(action), "{action}");
        out.result
    }

    #[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
    fn fails(&mut self, action: &str, parameters: Value) -> AdminError {
        let before = self.tenant.clone();
        let err = self
            .call(action, &parameters)
            .err()
            .unwrap_or_else(|| panic!("{action} succeeded"));
        assert_eq!(self.tenant, before, "a failed {action} changed the tenant");
        err
    }
}

fn results(out: &Value) -> &Vec<Value> {
    out["EvaluationResults"]
        .as_array()
        .expect("EvaluationResults is a list")
}

#[test]
fn positions_are_awss_for_its_own_example() {
    // AWS answers (1, 38) .. (1, 167) for this document.
    assert_eq!(
        statement_spans(DYNAMO_AFTER_DATE),
        vec![((1, 38), (1, 167))]
    );
    let text = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": \"s3:*\", \"Resource\": \"*\"},\n    {\n      \"Sid\": \"Two \\\" }\",\n      \"Effect\": \"Deny\", \"Action\": \"s3:Delete*\", \"Resource\": \"*\"\n    }\n  ]\n}";
    assert_eq!(
        statement_spans(text),
        vec![((4, 6), (4, 59)), ((5, 6), (8, 6))]
    );
}

#[test]
fn custom_policy_allows_as_awss_example_and_reports_the_statement() {
    let mut f = Fixture::new(ACCOUNT);
    let out = f.ok(
        "SimulateCustomPolicy",
        json!({
            "PolicyInputList": [DYNAMO_AFTER_DATE],
            "ActionNames": ["dynamodb:CreateBackup"],
            "ContextEntries": [{"ContextKeyName": "aws:CurrentTime", "ContextKeyValues": ["2019-04-25T11:00:00Z"], "ContextKeyType": "date"}],
        }),
    );
    assert_eq!(
        out,
        json!({
            "EvaluationResults": [{
                "EvalActionName": "dynamodb:CreateBackup",
                "EvalResourceName": "*",
                "EvalDecision": "allowed",
                "MatchedStatements": [{
                    "SourcePolicyId": "PolicyInputList.1",
                    "SourcePolicyType": "IAM Policy",
                    "StartPosition": {"Line": 1, "Column": 38},
                    "EndPosition": {"Line": 1, "Column": 167},
                }],
                "MissingContextValues": [],
            }],
            "IsTruncated": false,
        })
    );

    // An earlier time: the condition fails, nothing allows, nothing matched.
    let out = f.ok(
        "SimulateCustomPolicy",
        json!({
            "PolicyInputList": [DYNAMO_AFTER_DATE],
            "ActionNames": ["dynamodb:CreateBackup"],
            "ContextEntries": [{"ContextKeyName": "aws:CurrentTime", "ContextKeyValues": ["2018-04-25T11:00:00Z"], "ContextKeyType": "date"}],
        }),
    );
    assert_eq!(results(&out)[0]["EvalDecision"], "implicitDeny");
    assert_eq!(results(&out)[0]["MatchedStatements"], json!([]));

    // No time given: the key is reported missing.
    let out = f.ok(
        "SimulateCustomPolicy",
        json!({"PolicyInputList": [DYNAMO_AFTER_DATE], "ActionNames": ["dynamodb:CreateBackup"]}),
    );
    assert_eq!(results(&out)[0]["EvalDecision"], "implicitDeny");
    assert_eq!(
        results(&out)[0]["MissingContextValues"],
        json!(["aws:CurrentTime"])
    );
}

#[test]
fn lists_inside_structures_are_read() {
    // As the Query form decoder gives them (`ContextEntries.member.1.ContextKeyValues.member.1`
    // through the model), and an empty list (`ResourceArns=`).
    let mut f = Fixture::new(ACCOUNT);
    let out = f.ok(
        "SimulateCustomPolicy",
        json!({
            "PolicyInputList": [DYNAMO_AFTER_DATE],
            "ActionNames": ["dynamodb:CreateBackup"],
            "ResourceArns": [],
            "ContextEntries": [{"ContextKeyName": "aws:CurrentTime", "ContextKeyValues": ["2019-04-25T11:00:00Z"], "ContextKeyType": "date"}],
            "OrderedOrganizationPolicyInputList": [{"ServiceControlPolicyInputList": [r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"dynamodb:*","Resource":"*"}]}"#]}],
        }),
    );
    let r = &results(&out)[0];
    assert_eq!(r["EvalDecision"], "explicitDeny");
    assert_eq!(r["MissingContextValues"], json!([]));
    assert_eq!(
        r["OrganizationsDecisionDetail"],
        json!({"AllowedByOrganizations": false})
    );
    // SCP statements are not among the matched ones.
    assert_eq!(r["MatchedStatements"], json!([]));
}

#[test]
fn an_explicit_deny_reports_only_the_denying_statement() {
    let mut f = Fixture::new(ACCOUNT);
    let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Keep","Effect":"Allow","Action":"ec2:*","Resource":"*"},{"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::logs/*"}]}"#;
    let out = f.ok(
        "SimulateCustomPolicy",
        json!({
            "PolicyInputList": [allow, deny],
            "ActionNames": ["s3:DeleteObject", "s3:GetObject"],
            "ResourceArns": ["arn:aws:s3:::logs/a", "arn:aws:s3:::data/b"],
        }),
    );
    let delete = &results(&out)[0];
    assert_eq!(delete["EvalDecision"], "explicitDeny");
    assert_eq!(delete["EvalResourceName"], "*");
    let matched = delete["MatchedStatements"].as_array().expect("list");
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0]["SourcePolicyId"], "PolicyInputList.2");
    assert_eq!(matched[0]["StartPosition"]["Column"], 103);
    let specific = delete["ResourceSpecificResults"].as_array().expect("list");
    assert_eq!(specific.len(), 2);
    assert_eq!(specific[0]["EvalResourceName"], "arn:aws:s3:::logs/a");
    assert_eq!(specific[0]["EvalResourceDecision"], "explicitDeny");
    assert_eq!(specific[1]["EvalResourceName"], "arn:aws:s3:::data/b");
    assert_eq!(specific[1]["EvalResourceDecision"], "allowed");
    assert_eq!(
        specific[1]["MatchedStatements"][0]["SourcePolicyId"],
        "PolicyInputList.1"
    );
    // Same account with resources named: the details map is present and empty.
    assert_eq!(delete["EvalDecisionDetails"], json!({}));
    let get = &results(&out)[1];
    assert_eq!(get["EvalDecision"], "allowed");
}

#[test]
fn boundary_and_organization_details() {
    let mut f = Fixture::new(ACCOUNT);
    let all =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let s3_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let out = f.ok(
        "SimulateCustomPolicy",
        json!({
            "PolicyInputList": [all],
            "PermissionsBoundaryPolicyInputList": [s3_only],
            "OrderedOrganizationPolicyInputList": [
                {"ServiceControlPolicyInputList": [all]},
                {"ServiceControlPolicyInputList": [r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","ec2:*"],"Resource":"*"}]}"#]},
            ],
            "ActionNames": ["s3:GetObject", "ec2:RunInstances", "iam:CreateUser"],
        }),
    );
    let r = results(&out);
    assert_eq!(r[0]["EvalDecision"], "allowed");
    assert_eq!(
        r[0]["PermissionsBoundaryDecisionDetail"],
        json!({"AllowedByPermissionsBoundary": true})
    );
    assert_eq!(
        r[0]["OrganizationsDecisionDetail"],
        json!({"AllowedByOrganizations": true})
    );
    assert_eq!(r[1]["EvalDecision"], "implicitDeny");
    assert_eq!(
        r[1]["PermissionsBoundaryDecisionDetail"],
        json!({"AllowedByPermissionsBoundary": false})
    );
    assert_eq!(
        r[1]["OrganizationsDecisionDetail"],
        json!({"AllowedByOrganizations": true})
    );
    assert_eq!(r[2]["EvalDecision"], "implicitDeny");
    assert_eq!(
        r[2]["OrganizationsDecisionDetail"],
        json!({"AllowedByOrganizations": false})
    );
}

#[test]
fn cross_account_resource_policy_and_decision_details() {
    let mut f = Fixture::new(ACCOUNT);
    let identity = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    let bucket = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"}]}"#;
    let call = |f: &mut Fixture, resource_policy: Option<&str>| {
        let mut params = json!({
            "PolicyInputList": [identity],
            "ActionNames": ["s3:GetObject"],
            "ResourceArns": ["arn:aws:s3:::shared/report"],
            "CallerArn": "arn:aws:iam::111122223333:user/alice",
            "ResourceOwner": "arn:aws:iam::444455556666:root",
        });
        if let Some(policy) = resource_policy {
            params["ResourcePolicy"] = json!(policy);
        }
        f.ok("SimulateCustomPolicy", params)
    };
    let out = call(&mut f, Some(bucket));
    let r = &results(&out)[0];
    assert_eq!(r["EvalDecision"], "allowed");
    assert_eq!(
        r["EvalDecisionDetails"],
        json!({"IAM Policy": "allowed", "Resource Policy": "allowed"})
    );
    let types: Vec<&Value> = r["MatchedStatements"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| &s["SourcePolicyType"])
        .collect();
    assert_eq!(types, [&json!("resource"), &json!("IAM Policy")]);
    // Without the bucket's grant, another account's resource is out of reach.
    let out = call(&mut f, None);
    assert_eq!(results(&out)[0]["EvalDecision"], "implicitDeny");
    assert_eq!(
        results(&out)[0]["ResourceSpecificResults"][0]["EvalDecisionDetails"],
        json!({"IAM Policy": "allowed"})
    );
    // A resource policy needs a caller.
    let err = f.fails(
        "SimulateCustomPolicy",
        json!({"PolicyInputList": [identity], "ActionNames": ["s3:GetObject"], "ResourcePolicy": bucket}),
    );
    assert_eq!(err.code().as_str(), "InvalidInput");
}

#[test]
fn results_are_paginated() {
    let mut f = Fixture::new(ACCOUNT);
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let actions = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"];
    let first = f.ok(
        "SimulateCustomPolicy",
        json!({"PolicyInputList": [all], "ActionNames": actions, "MaxItems": 2}),
    );
    assert_eq!(first["IsTruncated"], true);
    let names: Vec<&Value> = results(&first)
        .iter()
        .map(|r| &r["EvalActionName"])
        .collect();
    assert_eq!(names, [&json!("s3:GetObject"), &json!("s3:PutObject")]);
    let marker = first["Marker"].as_str().expect("a marker");
    let second = f.ok(
        "SimulateCustomPolicy",
        json!({"PolicyInputList": [all], "ActionNames": actions, "MaxItems": 2, "Marker": marker}),
    );
    assert_eq!(second["IsTruncated"], false);
    assert_eq!(results(&second).len(), 1);
    assert_eq!(results(&second)[0]["EvalActionName"], "s3:ListBucket");
    let err = f.fails(
        "SimulateCustomPolicy",
        json!({"PolicyInputList": [all], "ActionNames": actions, "MaxItems": 0}),
    );
    assert_eq!(err.code().as_str(), "ValidationError");
}

#[test]
fn principal_policy_reads_the_users_inline_attached_group_and_boundary_policies() {
    let mut f = Fixture::new(ACCOUNT);
    f.ok("CreateUser", json!({"UserName": "alice", "Path": "/eng/"}));
    f.ok(
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "Reads", "PolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"*"}]}"#}),
    );
    f.ok("CreateGroup", json!({"GroupName": "ops"}));
    f.ok(
        "AddUserToGroup",
        json!({"GroupName": "ops", "UserName": "alice"}),
    );
    f.ok(
        "AttachGroupPolicy",
        json!({"GroupName": "ops", "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}),
    );
    f.ok(
        "CreatePolicy",
        json!({"PolicyName": "NoIam", "PolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#}),
    );
    f.ok(
        "PutUserPermissionsBoundary",
        json!({"UserName": "alice", "PermissionsBoundary": "arn:aws:iam::111122223333:policy/NoIam"}),
    );
    let arn = "arn:aws:iam::111122223333:user/eng/alice";
    let out = f.ok(
        "SimulatePrincipalPolicy",
        json!({
            "PolicySourceArn": arn,
            "ActionNames": ["sqs:SendMessage", "s3:ListBucket", "iam:CreateUser"],
            "PolicyInputList": [r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#],
        }),
    );
    let r = results(&out);
    assert_eq!(r[0]["EvalDecision"], "allowed");
    assert_eq!(r[0]["MatchedStatements"][0]["SourcePolicyId"], "Reads");
    assert_eq!(r[0]["MatchedStatements"][0]["SourcePolicyType"], "user");
    assert_eq!(r[1]["EvalDecision"], "allowed");
    assert_eq!(
        r[1]["MatchedStatements"][0]["SourcePolicyId"],
        "AmazonS3ReadOnlyAccess"
    );
    assert_eq!(
        r[1]["MatchedStatements"][0]["SourcePolicyType"],
        "aws-managed"
    );
    // The extra policy allows iam:*, the boundary does not.
    assert_eq!(r[2]["EvalDecision"], "implicitDeny");
    assert_eq!(
        r[2]["PermissionsBoundaryDecisionDetail"],
        json!({"AllowedByPermissionsBoundary": false})
    );
    // A boundary given in the request replaces the user's.
    let out = f.ok(
        "SimulatePrincipalPolicy",
        json!({
            "PolicySourceArn": arn,
            "ActionNames": ["iam:CreateUser"],
            "PolicyInputList": [r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#],
            "PermissionsBoundaryPolicyInputList": [r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#],
        }),
    );
    assert_eq!(results(&out)[0]["EvalDecision"], "allowed");
    assert_eq!(
        results(&out)[0]["MatchedStatements"][0]["SourcePolicyId"],
        "PolicyInputList.1"
    );

    // The group alone: its policies only.
    let out = f.ok(
        "SimulatePrincipalPolicy",
        json!({"PolicySourceArn": "arn:aws:iam::111122223333:group/ops", "ActionNames": ["sqs:SendMessage", "s3:ListBucket"]}),
    );
    assert_eq!(results(&out)[0]["EvalDecision"], "implicitDeny");
    assert_eq!(results(&out)[1]["EvalDecision"], "allowed");

    // Context keys: the user's, its group's and the boundary's, sorted, once each.
    f.ok(
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "Tagged", "PolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#}),
    );
    let keys = f.ok(
        "GetContextKeysForPrincipalPolicy",
        json!({"PolicySourceArn": arn, "PolicyInputList": [DYNAMO_AFTER_DATE]}),
    );
    assert_eq!(
        keys,
        json!({"ContextKeyNames": ["aws:CurrentTime", "aws:MultiFactorAuthPresent", "aws:SourceIp", "aws:username"]})
    );
}

#[test]
fn principal_policy_for_a_role_and_unknown_entities() {
    let mut f = Fixture::new(ACCOUNT);
    f.ok(
        "CreateRole",
        json!({"RoleName": "app", "AssumeRolePolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#}),
    );
    f.ok(
        "PutRolePolicy",
        json!({"RoleName": "app", "PolicyName": "Queue", "PolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"arn:aws:sqs:us-east-1:111122223333:jobs"}]}"#}),
    );
    let out = f.ok(
        "SimulatePrincipalPolicy",
        json!({
            "PolicySourceArn": "arn:aws:iam::111122223333:role/app",
            "ActionNames": ["sqs:SendMessage"],
            "ResourceArns": ["arn:aws:sqs:us-east-1:111122223333:jobs", "arn:aws:sqs:us-east-1:111122223333:other"],
        }),
    );
    let r = &results(&out)[0];
    assert_eq!(r["EvalDecision"], "implicitDeny");
    assert_eq!(
        r["ResourceSpecificResults"][0]["EvalResourceDecision"],
        "allowed"
    );
    assert_eq!(
        r["ResourceSpecificResults"][0]["MatchedStatements"][0]["SourcePolicyType"],
        "role"
    );
    assert_eq!(
        r["ResourceSpecificResults"][1]["EvalResourceDecision"],
        "implicitDeny"
    );

    for arn in [
        "arn:aws:iam::111122223333:user/nobody",
        "arn:aws:iam::111122223333:role/nobody",
        "arn:aws:iam::111122223333:user/wrong/path/app",
    ] {
        let err = f.fails(
            "SimulatePrincipalPolicy",
            json!({"PolicySourceArn": arn, "ActionNames": ["s3:GetObject"]}),
        );
        assert_eq!(err.code().as_str(), "NoSuchEntity", "{arn}");
    }
    let err = f.fails(
        "SimulatePrincipalPolicy",
        json!({"PolicySourceArn": "arn:aws:iam::111122223333:role/nobody", "ActionNames": ["s3:GetObject"]}),
    );
    assert_eq!(
        err.to_string(),
        "The role with name nobody cannot be found."
    );
    let err = f.fails(
        "SimulatePrincipalPolicy",
        json!({"PolicySourceArn": "arn:aws:s3:::bucket-name-long", "ActionNames": ["s3:GetObject"]}),
    );
    assert_eq!(err.code().as_str(), "InvalidInput");
    let err = f.fails(
        "SimulatePrincipalPolicy",
        json!({"PolicySourceArn": "arn:aws:iam::111122223333:role/app", "ActionNames": ["s3:GetObject"], "PolicyExclusionList": [{"PolicyType": "inline"}]}),
    );
    assert_eq!(err.code().as_str(), "InvalidInput");
}

#[test]
fn a_stored_policy_that_no_longer_parses_is_a_policy_evaluation_error() {
    let mut f = Fixture::new(ACCOUNT);
    f.ok("CreateUser", json!({"UserName": "old"}));
    // A document stored before a stricter parser (written here directly: the write path
    // refuses it).
    f.tenant
        .users
        .get_mut("old")
        .expect("the user")
        .inline_policies
        .insert("Legacy".to_owned(), "{\"Statement\": 3}".to_owned());
    let err = f.fails(
        "SimulatePrincipalPolicy",
        json!({"PolicySourceArn": "arn:aws:iam::111122223333:user/old", "ActionNames": ["s3:GetObject"]}),
    );
    assert_eq!(err.code().as_str(), "PolicyEvaluation");
    assert_eq!(err.code().http_status(), 500);
    assert!(err.to_string().contains("Legacy"), "{err}");
}

#[test]
fn bad_input_is_refused_with_awss_codes() {
    let mut f = Fixture::new(ACCOUNT);
    let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let cases = [
        (json!({"ActionNames": ["s3:GetObject"]}), "MissingParameter"),
        (json!({"PolicyInputList": [ok]}), "MissingParameter"),
        (
            json!({"PolicyInputList": ["{not json"], "ActionNames": ["s3:GetObject"]}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:*"]}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["GetObject"]}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok, ok], "PermissionsBoundaryPolicyInputList": [ok, ok], "ActionNames": ["s3:GetObject"]}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:GetObject"], "ContextEntries": [{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["nope"], "ContextKeyType": "ip"}]}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:GetObject"], "ContextEntries": [{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["10.0.0.1"], "ContextKeyType": "address"}]}),
            // Not one of the model's context key types.
            "ValidationError",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:GetObject"], "ContextEntries": [{"ContextKeyName": "s3:prefix", "ContextKeyValues": ["a", "b"], "ContextKeyType": "string"}]}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:GetObject"], "ContextEntries": [
                {"ContextKeyName": "aws:UserAgent", "ContextKeyValues": ["a"]},
                {"ContextKeyName": "AWS:useragent", "ContextKeyValues": ["b"]}]}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:GetObject"], "ResourceOwner": "someone"}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:GetObject"], "CallerArn": "arn:aws:sts::111122223333:assumed-role/app/s"}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["ec2:RunInstances"], "ResourceHandlingOption": "EC2-VPC-EBS", "ResourceArns": ["arn:aws:ec2:us-east-1:111122223333:instance/i-1"]}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:GetObject"], "ResourceHandlingOption": "EC2-Classic"}),
            "InvalidInput",
        ),
        (
            json!({"PolicyInputList": [ok], "ActionNames": ["s3:GetObject"], "OrderedOrganizationPolicyInputList": [{}, {}, {}, {}, {}, {}, {}, {}]}),
            "ValidationError",
        ),
        (
            json!({"PolicyInputList": ["{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"\u{0100}\"}]}"], "ActionNames": ["s3:GetObject"]}),
            // Outside the model's pattern for policy documents.
            "ValidationError",
        ),
    ];
    for (params, code) in cases {
        let err = f.fails("SimulateCustomPolicy", params.clone());
        assert_eq!(err.code().as_str(), code, "{params}");
    }
    let err = f.fails(
        "SimulateCustomPolicy",
        json!({"PolicyInputList": [ok, "{\"Statement\": 3}"], "ActionNames": ["s3:GetObject"]}),
    );
    assert!(
        err.to_string()
            .starts_with("Policy document PolicyInputList.2 is malformed: "),
        "{err}"
    );

    // The EC2 scenario passes with every resource type it needs.
    let out = f.ok(
        "SimulateCustomPolicy",
        json!({"PolicyInputList": [r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:RunInstances","Resource":"*"}]}"#],
            "ActionNames": ["ec2:RunInstances"], "ResourceHandlingOption": "EC2-VPC-InstanceStore",
            "ResourceArns": [
                "arn:aws:ec2:us-east-1:111122223333:instance/*",
                "arn:aws:ec2:us-east-1::image/ami-1",
                "arn:aws:ec2:us-east-1:111122223333:security-group/sg-1",
                "arn:aws:ec2:us-east-1:111122223333:network-interface/eni-1"]}),
    );
    assert_eq!(results(&out)[0]["EvalDecision"], "allowed");
}

#[test]
fn context_keys_of_custom_policies_are_sorted_and_distinct() {
    let mut f = Fixture::new(ACCOUNT);
    let a = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:GetItem","Resource":"*","Condition":{"ForAllValues:StringEquals":{"dynamodb:Attributes":["a"]},"StringEqualsIfExists":{"dynamodb:Select":"SPECIFIC_ATTRIBUTES"}}}]}"#;
    let b = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"DynamoDB:Select":"x","aws:PrincipalTag/team":"${aws:username}"}}}]}"#;
    let keys = f.ok(
        "GetContextKeysForCustomPolicy",
        json!({"PolicyInputList": [a, b]}),
    );
    assert_eq!(
        keys,
        json!({"ContextKeyNames": ["aws:PrincipalTag/team", "aws:username", "dynamodb:Attributes", "dynamodb:Select"]})
    );
    let err = f.fails(
        "GetContextKeysForCustomPolicy",
        json!({"PolicyInputList": ["[]"]}),
    );
    assert_eq!(err.code().as_str(), "InvalidInput");
    let err = f.fails("GetContextKeysForCustomPolicy", json!({}));
    assert_eq!(err.code().as_str(), "MissingParameter");
}
