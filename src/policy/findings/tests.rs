use std::collections::BTreeMap;

use super::*;

fn codes(text: &str, policy_type: ValidatePolicyType) -> Vec<String> {
    validate_policy(text, policy_type, None)
        .into_iter()
        .map(|f| f.issue_code)
        .collect()
}

fn identity(text: &str) -> Vec<Finding> {
    validate_policy(text, ValidatePolicyType::Identity, None)
}

fn only(text: &str, policy_type: ValidatePolicyType) -> Finding {
    let mut findings = validate_policy(text, policy_type, None);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings.remove(0)
}

#[test]
fn a_clean_policy_has_no_findings() {
    let text = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}]}"#;
    assert_eq!(identity(text), Vec::new());
}

#[test]
fn pass_role_with_star_in_resource_points_at_the_action_and_resource() {
    let text = "{\"Version\": \"2012-10-17\",\n \"Statement\": [{\"Effect\": \"Allow\", \"Action\": [\"s3:GetObject\", \"iam:PassRole\"], \"Resource\": \"*\"}]}";
    let f = only(text, ValidatePolicyType::Identity);
    assert_eq!(f.finding_type, FindingType::SecurityWarning);
    assert_eq!(f.issue_code, "PASS_ROLE_WITH_STAR_IN_RESOURCE");
    assert_eq!(
        f.learn_more_link,
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html#access-analyzer-reference-policy-checks-security-warning-pass-role-with-star-in-resource"
    );
    assert!(f
        .details
        .starts_with("Using the iam:PassRole action with wildcards (*)"));
    let action = &f.locations[0];
    assert_eq!(
        action.path,
        vec![
            PathElement::Value("Statement".into()),
            PathElement::Index(0),
            PathElement::Value("Action".into()),
            PathElement::Index(1),
        ]
    );
    assert_eq!(action.path_text(), "Statement[0].Action[1]");
    let start = action.span.start;
    assert_eq!((start.line, start.column), (2, 62));
    assert_eq!(
        text.chars()
            .skip(start.offset)
            .take(action.span.end.offset - start.offset)
            .collect::<String>(),
        "\"iam:PassRole\""
    );
    assert_eq!(f.locations[1].path_text(), "Statement[0].Resource");
    let json = f.to_json();
    assert_eq!(json["findingType"], "SECURITY_WARNING");
    assert_eq!(json["locations"][0]["path"][1]["index"], 0);
    assert_eq!(json["locations"][0]["span"]["start"]["line"], 2);
}

#[test]
fn pass_role_variants_and_their_guards() {
    let doc =
        |statement: &str| format!(r#"{{"Version": "2012-10-17", "Statement": [{statement}]}}"#);
    let id = |statement: &str| codes(&doc(statement), ValidatePolicyType::Identity);
    assert_eq!(
        id(r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#),
        [
            "PASS_ROLE_WITH_STAR_IN_ACTION_AND_RESOURCE",
            "CREATE_SLR_WITH_STAR_IN_ACTION_AND_RESOURCE"
        ]
    );
    assert_eq!(
        id(r#"{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}"#),
        [
            "PASS_ROLE_WITH_STAR_IN_RESOURCE_AND_NOT_ACTION",
            "CREATE_SLR_WITH_STAR_IN_RESOURCE_AND_NOT_ACTION"
        ]
    );
    assert_eq!(
        id(r#"{"Effect": "Allow", "Action": "iam:PassRole", "NotResource": "arn:aws:s3:::b"}"#),
        ["PASS_ROLE_WITH_NOT_RESOURCE"]
    );
    assert_eq!(
        id(
            r#"{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::111122223333:role/*"}"#
        ),
        ["PASS_ROLE_WITH_STAR_IN_RESOURCE"]
    );
    // Narrower wildcards, a named role, the PassedToService guard, Deny, and resource policies
    // give none.
    assert!(id(r#"{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::*:role/Service*"}"#).is_empty());
    assert!(id(r#"{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::111122223333:role/app"}"#).is_empty());
    assert!(id(r#"{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*", "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}"#).is_empty());
    assert!(id(r#"{"Effect": "Deny", "Action": "*", "Resource": "*"}"#).is_empty());
    assert!(id(r#"{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}"#).is_empty());
    let scp = doc(r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#);
    assert!(codes(&scp, ValidatePolicyType::ServiceControl).is_empty());
}

#[test]
fn missing_version_is_a_warning_at_the_document() {
    let f = only(
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#,
        ValidatePolicyType::Identity,
    );
    assert_eq!(f.issue_code, "MISSING_VERSION");
    assert_eq!(f.finding_type, FindingType::Warning);
    assert!(f.locations[0].path.is_empty());
}

#[test]
fn null_with_qualifier_and_if_exists() {
    let text = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
        "Condition": {"ForAllValues:Null": {"aws:TagKeys": "true"}, "NullIfExists": {"aws:SourceIp": "true"}}}]}"#;
    let findings = identity(text);
    let got: Vec<(&str, FindingType)> = findings
        .iter()
        .map(|f| (f.issue_code.as_str(), f.finding_type))
        .collect();
    assert_eq!(
        got,
        [
            ("NULL_WITH_QUALIFIER", FindingType::Suggestion),
            ("NULL_WITH_IF_EXISTS", FindingType::Error)
        ]
    );
    assert_eq!(
        findings[0].locations[0].path_text(),
        "Statement[0].Condition.ForAllValues:Null"
    );
}

#[test]
fn redundant_actions_resources_and_statements() {
    let text = r#"{"Version": "2012-10-17", "Statement": [
        {"Sid": "A", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*", "iam:GetCredentialReport", "iam:*CredentialReport"],
         "Resource": ["arn:aws:iam::111122223333:role/jane-admin", "arn:aws:iam::111122223333:role/jane*"]},
        {"Sid": "B", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*", "iam:GetCredentialReport", "iam:*CredentialReport"],
         "Resource": ["arn:aws:iam::111122223333:role/jane-admin", "arn:aws:iam::111122223333:role/jane*"]}]}"#;
    let findings = identity(text);
    let got: Vec<&str> = findings.iter().map(|f| f.issue_code.as_str()).collect();
    assert_eq!(
        got,
        [
            "REDUNDANT_ACTION",
            "REDUNDANT_RESOURCE",
            "REDUNDANT_ACTION",
            "REDUNDANT_RESOURCE",
            "REDUNDANT_STATEMENT"
        ]
    );
    assert_eq!(
        findings[0].details,
        "The 1 action(s) are redundant because they provide similar permissions. Update the policy to remove the redundant action such as: iam:GetCredentialReport."
    );
    assert_eq!(
        findings[0].locations[0].path_text(),
        "Statement[0].Action[2]"
    );
    assert_eq!(
        findings[1].locations[0].path_text(),
        "Statement[0].Resource[0]"
    );
    assert_eq!(findings[4].locations[0].path_text(), "Statement[1]");
}

#[test]
fn unknown_services_and_actions_are_errors() {
    let text = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["s3:GetObjectz", "nosuchsvc:Get", "s3:Get*", "s*:GetObject"], "Resource": "*"}]}"#;
    let findings = identity(text);
    let got: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f.issue_code.as_str(), f.details.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("INVALID_ACTION", "The action s3:GetObjectz does not exist."),
            (
                "INVALID_SERVICE_IN_ACTION",
                "The service nosuchsvc specified in the action does not exist."
            ),
            (
                "WILDCARD_IN_SERVICE_NAME",
                "Avoid using wildcards (*, ?) in the service name because it might grant unintended access to other AWS services with similar names."
            ),
        ]
    );
}

#[test]
fn unsupported_action_for_condition_key_lists_the_literal_actions() {
    let text = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject", "s3:List*"], "Resource": "*",
        "Condition": {"StringEquals": {"s3:x-amz-acl": "private"}}}]}"#;
    let f = only(text, ValidatePolicyType::Identity);
    assert_eq!(f.issue_code, "UNSUPPORTED_ACTION_FOR_CONDITION_KEY");
    assert_eq!(f.finding_type, FindingType::Error);
    assert!(f.details.starts_with("The following actions: s3:GetObject are not supported by the condition key s3:x-amz-acl."), "{}", f.details);
    assert_eq!(
        f.locations[0].path.last(),
        Some(&PathElement::Key("s3:x-amz-acl".into()))
    );
}

#[test]
fn for_all_values_with_a_single_valued_key() {
    let text = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"aws:PrincipalTag/team": "a", "aws:TagKeys": ["a"]}}}]}"#;
    let f = only(text, ValidatePolicyType::Identity);
    assert_eq!(f.issue_code, "FORALLVALUES_WITH_SINGLE_VALUED_KEY");
    assert_eq!(f.finding_type, FindingType::SecurityWarning);
}

#[test]
fn grammar_findings() {
    let id = |t: &str| codes(t, ValidatePolicyType::Identity);
    assert_eq!(
        id("{\"Version\": \"2012-10-17\", \"Statement\": ["),
        ["JSON_SYNTAX_ERROR"]
    );
    assert_eq!(id(r#"{"Version": "2012-10-17"}"#), ["MISSING_STATEMENT"]);
    assert_eq!(
        id(
            r#"{"Version": "2012-10-18", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#
        ),
        ["INVALID_VERSION"]
    );
    assert_eq!(
        id(
            r#"{"Version": "2012-10-17", "Statement": [{"Sid": "", "Effect": "Permit", "Action": [], "Resuorce": "*"}]}"#
        ),
        [
            "INVALID_POLICY_ELEMENT",
            "EMPTY_SID_VALUE",
            "INVALID_EFFECT",
            "EMPTY_ARRAY_ACTION",
            "MISSING_RESOURCE"
        ]
    );
    assert_eq!(
        id(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3"}]}"#
        ),
        ["UNSUPPORTED_PRINCIPAL", "MISSING_ARN_FIELD"]
    );
    assert_eq!(
        id(
            r#"{"Version": "2012-10-17", "Statement": [{"Sid": "a", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "b"}, {"Sid": "a", "Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}]}"#
        ),
        ["INVALID_ARN_PREFIX", "UNIQUE_SIDS_REQUIRED"]
    );
    let json_error = only("{\n  \"Version\": 1,,}", ValidatePolicyType::Identity);
    assert_eq!(
        json_error.details,
        "Fix the JSON syntax error at index 17 line 2 column 15."
    );
    let resource = |t: &str| codes(t, ValidatePolicyType::Resource);
    assert_eq!(
        resource(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": []}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}"#
        ),
        ["ALLOW_WITH_NOT_PRINCIPAL", "EMPTY_ARRAY_PRINCIPAL"]
    );
    assert_eq!(
        resource(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Condition": {}}]}"#
        ),
        ["MISSING_PRINCIPAL", "EMPTY_OBJECT_CONDITION"]
    );
    let trust = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;
    assert!(validate_kind(trust, PolicyKind::Trust).is_empty());
    assert_eq!(
        codes(trust, ValidatePolicyType::Resource),
        ["MISSING_RESOURCE"]
    );
}

#[test]
fn policy_types_read_and_print_as_aws_writes_them() {
    for t in [
        ValidatePolicyType::Identity,
        ValidatePolicyType::Resource,
        ValidatePolicyType::ServiceControl,
        ValidatePolicyType::ResourceControl,
    ] {
        assert_eq!(t.as_str().parse::<ValidatePolicyType>(), Ok(t));
    }
    assert!("identity".parse::<ValidatePolicyType>().is_err());
}

/// Every corpus policy with its kind label and findings.
fn corpus() -> Vec<(String, &'static str, Vec<Finding>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out = Vec::new();
    let managed = std::fs::read_to_string(root.join("managed-policies.jsonl")).unwrap();
    for line in managed.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = serde_json::to_string_pretty(&entry["document"]).unwrap();
        let name = entry["name"].as_str().unwrap().to_owned();
        out.push((name, "managed", validate_kind(&text, PolicyKind::Identity)));
    }
    let index = std::fs::read_to_string(root.join("example-policies/index.json")).unwrap();
    let index: Vec<serde_json::Value> = serde_json::from_str(&index).unwrap();
    for entry in index {
        let file = entry["file"].as_str().unwrap();
        let relative = file.strip_prefix("example_policies/").unwrap_or(file);
        let text = std::fs::read_to_string(root.join("example-policies").join(relative)).unwrap();
        let (label, kind) = match entry["policy_kind"].as_str().unwrap() {
            "scp" => ("scp", PolicyKind::Scp),
            "rcp" => ("rcp", PolicyKind::Rcp),
            "resource" => ("resource", PolicyKind::Resource),
            _ => ("vpc-endpoint", PolicyKind::VpcEndpoint),
        };
        out.push((relative.to_owned(), label, validate_kind(&text, kind)));
    }
    out
}

/// The corpus findings, computed once for the tests that read them.
fn corpus_once() -> &'static [(String, &'static str, Vec<Finding>)] {
    static CORPUS: std::sync::OnceLock<Vec<(String, &'static str, Vec<Finding>)>> =
        std::sync::OnceLock::new();
    CORPUS.get_or_init(corpus)
}

#[test]
fn no_aws_managed_policy_has_an_error() {
    let mut policies = 0;
    for (name, label, findings) in corpus_once() {
        if *label != "managed" {
            continue;
        }
        policies += 1;
        let errors: Vec<String> = findings
            .iter()
            .filter(|f| f.finding_type == FindingType::Error)
            .map(ToString::to_string)
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    assert_eq!(policies, 1_641);
}

/// Where the generated summary starts and ends in the README.
const BEGIN: &str =
    "<!-- policy-findings: generated by `IAMLET_BLESS=1 cargo test --lib findings`; do not edit by hand -->";
const END: &str = "<!-- /policy-findings -->";

/// The README's summary: findings per issue code and corpus.
fn summary() -> String {
    let columns = ["managed", "scp", "rcp", "resource", "vpc-endpoint"];
    let mut policies: BTreeMap<&str, usize> = BTreeMap::new();
    let mut with_findings: BTreeMap<&str, usize> = BTreeMap::new();
    let mut counts: BTreeMap<(FindingType, &str), BTreeMap<&str, usize>> = BTreeMap::new();
    for (_, label, findings) in corpus_once() {
        *policies.entry(label).or_default() += 1;
        if !findings.is_empty() {
            *with_findings.entry(label).or_default() += 1;
        }
        for f in findings {
            *counts
                .entry((f.finding_type, f.issue_code.as_str()))
                .or_default()
                .entry(label)
                .or_default() += 1;
        }
    }
    let mut out = format!("{BEGIN}\n");
    out.push_str("| finding type | issue code | AWS managed | SCP examples | RCP examples | resource policy examples | VPC endpoint examples |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    let cell = |m: &BTreeMap<&str, usize>, c: &str| m.get(c).copied().unwrap_or(0).to_string();
    out.push_str(&format!(
        "| | policies | {} |\n",
        columns.map(|c| cell(&policies, c)).join(" | ")
    ));
    out.push_str(&format!(
        "| | policies with findings | {} |\n",
        columns.map(|c| cell(&with_findings, c)).join(" | ")
    ));
    for ((finding_type, code), per) in &counts {
        out.push_str(&format!(
            "| {finding_type} | `{code}` | {} |\n",
            columns.map(|c| cell(per, c)).join(" | ")
        ));
    }
    out.push_str(END);
    out
}

#[test]
fn the_readme_summarises_the_corpus_findings() {
    let expected = summary();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("the README has the findings markers");
    let end = readme
        .find(END)
        .expect("the README has the findings end marker")
        + END.len();
    if readme[start..end] != expected {
        if std::env::var_os("IAMLET_BLESS").is_some() {
            let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!(
                "the README's findings summary is not what the corpus gives; \
                 run `IAMLET_BLESS=1 cargo test --lib findings` to regenerate it"
            );
        }
    }
}
