//! Access Analyzer's policy checks in the admin API: `ValidatePolicy`, and the findings that
//! creating or updating a policy returns and audits.
//!
//! The checks are `crate::policy::findings`; this file only maps AWS's parameters onto them
//! and shapes the answers.

use serde_json::{json, Map, Value};

use super::params::{invalid, Params};
use crate::control_plane::AdminError;
use crate::policy::findings::{
    validate_kind, validate_policy, FindingType, ValidatePolicyType, ValidateResourceType,
};
use crate::policy::PolicyKind;

/// What a `nextToken` starts with, so that a token from another listing is refused.
const TOKEN_PREFIX: &str = "iamlet-findings-";

/// The actions that store a policy document, the member that holds it and its kind: they
/// succeed with security warnings, as in AWS, but return and audit them.
const HOOKED: &[(&str, &str, PolicyKind)] = &[
    ("CreatePolicy", "PolicyDocument", PolicyKind::Identity),
    (
        "CreatePolicyVersion",
        "PolicyDocument",
        PolicyKind::Identity,
    ),
    ("PutUserPolicy", "PolicyDocument", PolicyKind::Identity),
    ("PutGroupPolicy", "PolicyDocument", PolicyKind::Identity),
    ("PutRolePolicy", "PolicyDocument", PolicyKind::Identity),
    (
        "UpdateAssumeRolePolicy",
        "PolicyDocument",
        PolicyKind::Trust,
    ),
    ("PutResourcePolicy", "PolicyDocument", PolicyKind::Resource),
];

/// The member of the result and of the audit entry that carries the findings.
pub(super) const FINDINGS_MEMBER: &str = "Findings";

/// Runs `ValidatePolicy`; `None` for any other action.
pub(super) fn run(action: &str, p: Params<'_>) -> Result<Option<Value>, AdminError> {
    if action != "ValidatePolicy" {
        return Ok(None);
    }
    let document = p.str("policyDocument")?;
    let policy_type: ValidatePolicyType = p.str("policyType")?.parse().map_err(
        |e: crate::policy::findings::UnknownPolicyTypeError| invalid("policyType", &e.to_string()),
    )?;
    let resource_type = p
        .opt_str("validatePolicyResourceType")?
        .map(ValidateResourceType::from_aws);
    let max_results = match p.opt_u32("maxResults")? {
        Some(0) => return Err(invalid("maxResults", "must be at least 1")),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => usize::MAX,
    };
    let start = match p.opt_str("nextToken")? {
        None => 0,
        Some(token) => token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| invalid("nextToken", "is not a token this listing returned"))?,
    };
    let findings = validate_policy(document, policy_type, resource_type);
    let page: Vec<Value> = findings
        .iter()
        .skip(start)
        .take(max_results)
        .map(|f| f.to_json())
        .collect();
    let mut out = Map::new();
    let end = start.saturating_add(page.len());
    out.insert("findings".into(), Value::Array(page));
    if end < findings.len() {
        out.insert("nextToken".into(), json!(format!("{TOKEN_PREFIX}{end}")));
    }
    Ok(Some(Value::Object(out)))
}

/// For an action that stores a policy document: the document's `SECURITY_WARNING` findings,
/// added to the result and to the audit entry under [`FINDINGS_MEMBER`] when there are any.
pub(super) fn attach(
    action: &str,
    parameters: &Map<String, Value>,
    result: &mut Value,
    audit: &mut Value,
) {
    let Some((_, member, kind)) = HOOKED.iter().find(|(name, _, _)| *name == action) else {
        return;
    };
    let Some(document) = parameters.get(*member).and_then(Value::as_str) else {
        return;
    };
    let warnings: Vec<Value> = validate_kind(document, *kind)
        .iter()
        .filter(|f| f.finding_type == FindingType::SecurityWarning)
        .map(|f| f.to_json())
        .collect();
    if warnings.is_empty() {
        return;
    }
    for target in [result, audit] {
        if let Some(object) = target.as_object_mut() {
            object.insert(FINDINGS_MEMBER.into(), Value::Array(warnings.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(parameters: Value) -> Result<Value, AdminError> {
        let Value::Object(map) = parameters else {
            panic!("parameters are an object")
        };
        run("ValidatePolicy", Params::new(&map)).map(|v| v.unwrap())
    }

    const PASS_ROLE: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:PassRole", "iam:GetRole", "iam:Get*"], "Resource": "*"}]}"#;

    #[test]
    fn validate_policy_returns_access_analyzer_findings_in_pages() {
        let all =
            call(json!({"policyDocument": PASS_ROLE, "policyType": "IDENTITY_POLICY"})).unwrap();
        let findings = all["findings"].as_array().unwrap();
        let codes: Vec<&str> = findings
            .iter()
            .map(|f| f["issueCode"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            ["REDUNDANT_ACTION", "PASS_ROLE_WITH_STAR_IN_RESOURCE"]
        );
        assert!(all.get("nextToken").is_none());
        let first = call(
            json!({"policyDocument": PASS_ROLE, "policyType": "IDENTITY_POLICY", "maxResults": 1}),
        )
        .unwrap();
        assert_eq!(first["findings"].as_array().unwrap().len(), 1);
        let token = first["nextToken"].as_str().unwrap();
        let second = call(json!({"policyDocument": PASS_ROLE, "policyType": "IDENTITY_POLICY", "maxResults": 1, "nextToken": token})).unwrap();
        assert_eq!(
            second["findings"][0]["issueCode"],
            "PASS_ROLE_WITH_STAR_IN_RESOURCE"
        );
        assert!(second.get("nextToken").is_none());
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(call(json!({"policyDocument": PASS_ROLE, "policyType": "IDENTITY"})).is_err());
        assert!(call(
            json!({"policyDocument": PASS_ROLE, "policyType": "IDENTITY_POLICY", "nextToken": "x"})
        )
        .is_err());
        assert!(call(
            json!({"policyDocument": PASS_ROLE, "policyType": "IDENTITY_POLICY", "maxResults": 0})
        )
        .is_err());
        assert!(call(json!({"policyType": "IDENTITY_POLICY"})).is_err());
    }

    #[test]
    fn trust_policies_validate_as_role_trust_resource_policies() {
        let trust = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;
        let out = call(json!({"policyDocument": trust, "policyType": "RESOURCE_POLICY", "validatePolicyResourceType": "AWS::IAM::AssumeRolePolicyDocument"})).unwrap();
        assert_eq!(out["findings"], json!([]));
    }

    #[test]
    fn storing_a_policy_returns_and_audits_only_security_warnings() {
        let parameters = json!({"PolicyName": "p", "PolicyDocument": PASS_ROLE});
        let map = parameters.as_object().unwrap();
        let mut result = json!({"Policy": {}});
        let mut audit = json!({"PolicyName": "p"});
        attach("CreatePolicy", map, &mut result, &mut audit);
        let codes: Vec<&str> = result[FINDINGS_MEMBER]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["issueCode"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["PASS_ROLE_WITH_STAR_IN_RESOURCE"]);
        assert_eq!(audit[FINDINGS_MEMBER], result[FINDINGS_MEMBER]);
        let mut quiet = json!({});
        let mut quiet_audit = json!({});
        attach("ListPolicies", map, &mut quiet, &mut quiet_audit);
        let clean = json!({"PolicyDocument": r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}"#});
        attach(
            "PutUserPolicy",
            clean.as_object().unwrap(),
            &mut quiet,
            &mut quiet_audit,
        );
        assert_eq!(quiet, json!({}));
        assert_eq!(quiet_audit, json!({}));
    }
}
