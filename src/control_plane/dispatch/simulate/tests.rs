//! The policy simulator through `dispatch`: AWS's shapes, positions, errors, pagination, and
//! agreement with the engine over the decision-vector corpus.

use std::sync::Arc;

use serde_json::{json, Value};

use super::super::{dispatch, is_mutating, Dispatched};
use super::statement_spans;
use crate::authz::evaluate;
use crate::control_plane::AdminError;
use crate::directory::{IdGenerator, PasswordHasher, Tenant};
use crate::simulate::{policy_text, Expected, Vector};
use crate::snapshot::{AwsManagedCatalog, SnapshotVersion, TenantSnapshot};

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
fn query_form_lists_inside_structures_are_read() {
    // The Query form decoder leaves `ContextEntries.member.1.ContextKeyValues.member.1` as a
    // field of the entry, and an empty list (`ResourceArns=`) as an empty string.
    let mut f = Fixture::new(ACCOUNT);
    let out = f.ok(
        "SimulateCustomPolicy",
        json!({
            "PolicyInputList": [DYNAMO_AFTER_DATE],
            "ActionNames": ["dynamodb:CreateBackup"],
            "ResourceArns": "",
            "ContextEntries": [{"ContextKeyName": "aws:CurrentTime", "ContextKeyValues.member.1": "2019-04-25T11:00:00Z", "ContextKeyType": "date"}],
            "OrderedOrganizationPolicyInputList": [{"ServiceControlPolicyInputList.member.1": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"dynamodb:*","Resource":"*"}]}"#}],
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
            "InvalidInput",
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
            "InvalidParameterValue",
        ),
        (
            json!({"PolicyInputList": ["{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"\u{0100}\"}]}"], "ActionNames": ["s3:GetObject"]}),
            "InvalidParameterValue",
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

/// How a vector reads as simulator parameters, or why it cannot.
fn express(vector: &Value) -> Result<(Value, String, String), String> {
    let policies = &vector["policies"];
    for key in ["session", "rcp", "vpc_endpoint"] {
        if policies.get(key).is_some_and(|v| !v.is_null()) {
            return Err(format!("{key} policies (the simulator takes none)"));
        }
    }
    let request = &vector["request"];
    let principal = request["principal"]
        .as_str()
        .ok_or("a principal that is not an ARN")?;
    let parts: Vec<&str> = principal.splitn(6, ':').collect();
    // The simulator's caller is never a service-linked role nor in the organization's
    // management account: SCPs always apply to it.
    let environment = &vector["environment"];
    if environment["principal_is_service_linked_role"] == json!(true) {
        return Err("a service-linked role as the caller".into());
    }
    if let Some(management) = environment["organization_management_account"].as_str() {
        if parts.get(4) == Some(&management) {
            return Err("a caller in the organization's management account".into());
        }
    }
    if parts.len() != 6
        || parts[2] != "iam"
        || !(parts[5].starts_with("user/") || parts[5].starts_with("role/"))
    {
        return Err("a caller that is not an IAM user or role (CallerArn takes users, groups and roles only)".into());
    }
    let texts = |key: &str| -> Vec<String> {
        match policies.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(docs)) => docs.iter().filter_map(policy_text).collect(),
            Some(doc) => policy_text(doc).into_iter().collect(),
        }
    };
    let boundary = texts("permission_boundary");
    if boundary.len() > 1 {
        return Err("several permissions boundaries".into());
    }
    let mut context = Vec::new();
    if let Some(entries) = request.get("context").and_then(Value::as_object) {
        for (key, value) in entries {
            let kind = |v: &Value| match v {
                Value::Number(_) => "numeric",
                Value::Bool(_) => "boolean",
                _ => "string",
            };
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let entry = match value {
                Value::Array(items) => json!({
                    "ContextKeyName": key,
                    "ContextKeyValues": items.iter().map(text).collect::<Vec<_>>(),
                    "ContextKeyType": format!("{}List", items.first().map_or("string", kind)),
                }),
                other => json!({
                    "ContextKeyName": key,
                    "ContextKeyValues": [text(other)],
                    "ContextKeyType": kind(other),
                }),
            };
            context.push(entry);
        }
    }
    let mut params = json!({
        "PolicyInputList": texts("identity"),
        "ActionNames": [request["action"]],
        "ResourceArns": [request["resource"]],
        "CallerArn": principal,
        "ContextEntries": context,
    });
    if let Some(owner) = request.get("resource_account").and_then(Value::as_str) {
        params["ResourceOwner"] = json!(format!("arn:aws:iam::{owner}:root"));
    }
    if !boundary.is_empty() {
        params["PermissionsBoundaryPolicyInputList"] = json!(boundary);
    }
    if let Some(resource) = texts("resource").pop() {
        params["ResourcePolicy"] = json!(resource);
    }
    if let Some(levels) = policies["scp"].as_array() {
        let levels: Vec<Value> = levels
            .iter()
            .map(|level| {
                let docs: Vec<String> = level["policies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(policy_text)
                    .collect();
                json!({"ServiceControlPolicyInputList": docs})
            })
            .collect();
        params["OrderedOrganizationPolicyInputList"] = json!(levels);
    }
    Ok((params, parts[4].to_owned(), parts[5].to_owned()))
}

fn engine_word(decision: &str) -> &'static str {
    match decision {
        "Allow" => "allowed",
        "ExplicitDeny" => "explicitDeny",
        _ => "implicitDeny",
    }
}

fn outcome_of(word: &str) -> crate::authz::Outcome {
    match word {
        "allowed" => crate::authz::Outcome::Allow,
        "explicitDeny" => crate::authz::Outcome::ExplicitDeny,
        _ => crate::authz::Outcome::ImplicitDeny,
    }
}

/// The decision of a one-action, one-resource simulation, checked for agreement between
/// the top level and the resource's own result.
fn decision_of(out: &Value, id: &str) -> String {
    let r = &results(out)[0];
    let top = r["EvalDecision"].as_str().expect("a decision");
    // A simulation on `*` has no resource-specific results (AWS reports it at the top).
    if let Some(specific) = r.get("ResourceSpecificResults") {
        assert_eq!(
            specific[0]["EvalResourceDecision"], top,
            "{id}: top level and resource disagree"
        );
    } else {
        assert_eq!(r["EvalResourceName"], "*", "{id}");
    }
    top.to_owned()
}

/// Stores the vector's principal with its policies in a tenant, through the admin API;
/// `Err` names the write-time rule of IAM's that refuses them.
fn store_principal(f: &mut Fixture, entity: &str, params: &Value) -> Result<(), String> {
    let (kind, rest) = entity.split_once('/').ok_or("no entity name")?;
    let (path, name) = match rest.rsplit_once('/') {
        Some((path, name)) => (format!("/{path}/"), name),
        None => ("/".to_owned(), rest),
    };
    let refused = |e: AdminError| format!("IAM refuses storing it: {}", e.code().as_str());
    let (noun, create) = if kind == "user" {
        ("User", json!({"UserName": name, "Path": path}))
    } else {
        (
            "Role",
            json!({"RoleName": name, "Path": path, "AssumeRolePolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#}),
        )
    };
    f.call(&format!("Create{noun}"), &create).map_err(refused)?;
    for (i, text) in params["PolicyInputList"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        f.call(
            &format!("Put{noun}Policy"),
            &json!({format!("{noun}Name"): name, "PolicyName": format!("p{i}"), "PolicyDocument": text}),
        )
        .map_err(refused)?;
    }
    if let Some(boundary) = params["PermissionsBoundaryPolicyInputList"].get(0) {
        let created = f
            .call(
                "CreatePolicy",
                &json!({"PolicyName": "boundary", "PolicyDocument": boundary}),
            )
            .map_err(refused)?;
        let arn = created.result["Policy"]["Arn"].clone();
        f.call(
            &format!("Put{noun}PermissionsBoundary"),
            &json!({format!("{noun}Name"): name, "PermissionsBoundary": arn}),
        )
        .map_err(refused)?;
    }
    Ok(())
}

#[test]
fn simulations_agree_with_the_engine_on_every_expressible_corpus_vector() {
    let corpus = include_str!("../../../../tests/corpus/vectors.jsonl");
    let mut custom = 0;
    let mut principal = 0;
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut principal_skipped: Vec<(String, String)> = Vec::new();
    let catalog = AwsManagedCatalog::compile();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let raw: Value = serde_json::from_str(line).expect("vector JSON");
        let id = raw["id"].as_str().unwrap_or("?").to_owned();
        let vector = Vector::parse(line).expect("the corpus parses");
        let engine = vector.run();
        let (params, account, entity) = match express(&raw) {
            Ok(x) => x,
            Err(reason) => {
                skipped.push((id, reason));
                continue;
            }
        };

        let mut f = Fixture::new(&account);
        let out = f
            .call("SimulateCustomPolicy", &params)
            .unwrap_or_else(|e| panic!("{id}: SimulateCustomPolicy failed: {} {e}", e.code()));
        assert!(!out.changed);
        let decision = decision_of(&out.result, &id);
        assert_eq!(
            decision,
            engine_word(engine.decision),
            "{id}: SimulateCustomPolicy and the engine disagree"
        );
        if let Some(expected) = vector.expected {
            assert!(
                expected.accepts(outcome_of(&decision)),
                "{id}: expected {}, simulated {decision}",
                Expected::as_str(expected)
            );
        }
        custom += 1;

        let stored = if !raw["request"]["principal"]
            .as_str()
            .is_some_and(|p| p.starts_with("arn:aws:"))
        {
            Err("a principal of another partition (a tenant's entities are in aws)".to_owned())
        } else if params.get("OrderedOrganizationPolicyInputList").is_some() {
            Err("SCPs at several organization levels (a tenant's SCPs are one level)".to_owned())
        } else {
            store_principal(&mut f, &entity, &params)
        };
        match stored {
            Err(reason) => principal_skipped.push((id, reason)),
            Ok(()) => {
                let mut by_principal = json!({
                    "PolicySourceArn": raw["request"]["principal"],
                    "ActionNames": params["ActionNames"],
                    "ResourceArns": params["ResourceArns"],
                    "ContextEntries": params["ContextEntries"],
                });
                for key in ["ResourceOwner", "ResourcePolicy"] {
                    if let Some(v) = params.get(key) {
                        by_principal[key] = v.clone();
                    }
                }
                let out = f
                    .call("SimulatePrincipalPolicy", &by_principal)
                    .unwrap_or_else(|e| {
                        panic!("{id}: SimulatePrincipalPolicy failed: {} {e}", e.code())
                    });
                let simulated = decision_of(&out.result, &id);
                assert_eq!(
                    simulated,
                    engine_word(engine.decision),
                    "{id}: SimulatePrincipalPolicy and the engine disagree"
                );
                // The sidecar's path: the tenant compiled into a snapshot, the principal
                // resolved against it, the request evaluated. (`Authorize` also fills the
                // keys that follow from the principal; the simulator, as AWS's, takes the
                // context as given, so both are run on the vector's context.)
                let snapshot = TenantSnapshot::compile(
                    Arc::new(f.tenant.clone()),
                    SnapshotVersion::new(1, 1),
                    &catalog,
                )
                .unwrap_or_else(|e| panic!("{id}: the tenant compiles: {e}"));
                let resolved = snapshot
                    .resolve(vector.request.principal())
                    .unwrap_or_else(|| panic!("{id}: the principal resolves"));
                let authorize = evaluate(
                    &resolved.policy_set(vector.policy_set().resource, &[]),
                    &vector.request,
                );
                assert_eq!(
                    simulated,
                    engine_word(authorize.outcome.as_str()),
                    "{id}: SimulatePrincipalPolicy and the snapshot's decision disagree"
                );
                principal += 1;
            }
        }
    }
    let total = corpus.lines().filter(|l| !l.trim().is_empty()).count();
    eprintln!(
        "corpus: {total} vectors; SimulateCustomPolicy expressed {custom}, skipped {}; SimulatePrincipalPolicy expressed {principal}, skipped {} more",
        skipped.len(),
        principal_skipped.len()
    );
    for (id, reason) in skipped.iter().chain(&principal_skipped) {
        eprintln!("  skipped {id}: {reason}");
    }
    assert_eq!(custom + skipped.len(), total);
    // Most of the corpus is expressible: a change that makes the simulator refuse vectors
    // shows here.
    assert!(custom >= 79, "only {custom} vectors expressed");
    assert!(
        principal >= 71,
        "only {principal} vectors stored and simulated"
    );
}
