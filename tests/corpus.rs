//! The corpus: real policies and decision vectors written by other people (see
//! `tests/corpus/ATTRIBUTION.md`). Every file is read whole; counts are asserted so a truncated
//! copy cannot pass quietly.

use std::path::PathBuf;
use std::sync::Arc;

use iamlet::authz::Outcome;
use iamlet::policy::{CompiledPolicy, ParseOptions, PolicyDocument, PolicyKind};
use iamlet::simulate::Vector;
use serde_json::Value;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

fn lines(name: &str) -> Vec<Value> {
    std::fs::read_to_string(corpus(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn kind_of_api(api: &str) -> PolicyKind {
    match api {
        "iam:CreatePolicy" => PolicyKind::Identity,
        "iam:UpdateAssumeRolePolicy" => PolicyKind::Trust,
        other => panic!("unexpected api {other}"),
    }
}

#[test]
fn every_decision_vector_passes() {
    let text = std::fs::read_to_string(corpus("vectors.jsonl")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        count += 1;
        let vector = Vector::parse(line).unwrap();
        let result = vector.run();
        if result.pass != Some(true) {
            failures.push(format!(
                "{}: expected {:?}, got {} ({})",
                result.id, result.expected, result.decision, result.reason
            ));
        }
    }
    assert_eq!(count, 85);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vectors_exercise_every_outcome() {
    // A guard against a vacuous pass: the corpus must reach all three outcomes.
    let text = std::fs::read_to_string(corpus("vectors.jsonl")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let vector = Vector::parse(line).unwrap();
        seen.insert(iamlet::authz::evaluate(&vector.policy_set(), &vector.request).outcome);
    }
    assert!(seen.contains(&Outcome::Allow));
    assert!(seen.contains(&Outcome::ExplicitDeny));
    assert!(seen.contains(&Outcome::ImplicitDeny));
}

#[test]
fn every_invalid_policy_is_rejected_with_aws_code_and_message() {
    let cases = lines("invalid_policies.jsonl");
    assert_eq!(cases.len(), 81);
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let text = case["policy_text"].as_str().unwrap();
        let kind = kind_of_api(case["api"].as_str().unwrap());
        let expected = &case["expected_error"];
        match PolicyDocument::parse(text, kind) {
            Ok(_) => failures.push(format!("{id}: accepted")),
            Err(e) => {
                if e.code() != expected["code"].as_str().unwrap()
                    || e.message() != expected["message"].as_str().unwrap()
                {
                    failures.push(format!(
                        "{id}: got {}: {:?}, expected {}: {:?}",
                        e.code(),
                        e.message(),
                        expected["code"],
                        expected["message"]
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_valid_policy_is_accepted() {
    let cases = lines("valid_policies.jsonl");
    assert_eq!(cases.len(), 54);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let text = case["policy_text"].as_str().unwrap();
            let kind = kind_of_api(case["api"].as_str().unwrap());
            PolicyDocument::parse(text, kind)
                .err()
                .map(|e| format!("{}: {}: {}", case["id"], e.code(), e.message()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_aws_managed_policy_parses_and_compiles_as_an_identity_policy() {
    let policies = lines("managed-policies.jsonl");
    assert_eq!(policies.len(), 1641);
    let mut failures = Vec::new();
    let mut statements = 0;
    for p in &policies {
        let text = p["document"].to_string();
        match PolicyDocument::parse_with(&text, ParseOptions::aws_managed(PolicyKind::Identity)) {
            Ok(doc) => {
                // Some entries carry no ARN; the name identifies them as well.
                let id = p["arn"].as_str().or(p["name"].as_str()).unwrap();
                let compiled = CompiledPolicy::compile(Arc::from(id), PolicyKind::Identity, &doc);
                assert_eq!(compiled.statements().len(), doc.statements.len());
                statements += doc.statements.len();
            }
            Err(e) => failures.push(format!("{}: {}: {}", p["name"], e.code(), e.message())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(statements > 9000, "{statements}");
}

#[test]
fn under_tenant_rules_aws_managed_policies_fail_only_on_size() {
    // AWS stores its own policies beyond the quotas it sets tenants: under CreatePolicy's rules
    // every refusal must be a size limit, never a grammar error. 83 documents have more than
    // 6,144 non-whitespace characters; AWSSupportServiceRolePolicy is also past the API's
    // 131,072-character limit, which is checked first.
    let mut over_quota = Vec::new();
    for p in lines("managed-policies.jsonl") {
        let name = p["name"].as_str().unwrap().to_owned();
        if let Err(e) = PolicyDocument::parse(&p["document"].to_string(), PolicyKind::Identity) {
            match (name.as_str(), e.code()) {
                ("AWSSupportServiceRolePolicy", iamlet::error::AwsCode::ValidationError)
                | (_, iamlet::error::AwsCode::LimitExceeded) => over_quota.push(name),
                _ => panic!("{name}: {}: {}", e.code(), e.message()),
            }
        }
    }
    assert_eq!(over_quota.len(), 83, "{over_quota:?}");
    assert!(over_quota.iter().any(|n| n == "ReadOnlyAccess"));
}

#[test]
fn aws_example_scps_rcps_and_endpoint_policies_validate_for_their_kind() {
    let index: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(corpus("example-policies/index.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(index.len(), 109);
    let mut failures = Vec::new();
    for entry in &index {
        let file = entry["file"]
            .as_str()
            .unwrap()
            .trim_start_matches("example_policies/");
        let text = std::fs::read_to_string(corpus("example-policies").join(file)).unwrap();
        let kind = match entry["policy_kind"].as_str().unwrap() {
            "scp" => PolicyKind::Scp,
            "rcp" => PolicyKind::Rcp,
            "vpc_endpoint" => PolicyKind::VpcEndpoint,
            "resource" => PolicyKind::Resource,
            other => panic!("unexpected kind {other}"),
        };
        // The grammar of the kind; the size quota is checked below, on the minified text.
        let result = PolicyDocument::parse_with(
            &text,
            ParseOptions {
                size_quota: None,
                ..ParseOptions::for_kind(kind)
            },
        );
        let is_json = entry["parses_as_json"].as_bool().unwrap();
        // AWS's examples mark values to fill in as `<PLACEHOLDER>` (the index flags those) or
        // as `"[PLACEHOLDER]"` (S3-Prevent-long-term-presigned-url.json puts one where
        // `NumericGreaterThan` needs a number, which a validator must refuse).
        let has_placeholders = entry["contains_angle_bracket_placeholders"]
            .as_bool()
            .unwrap()
            || square_bracket_placeholder(&text);
        match (is_json, has_placeholders, result) {
            (false, _, Ok(_)) => failures.push(format!("{file}: not JSON, yet accepted")),
            (false, _, Err(e)) => assert_eq!(e.message(), "Syntax errors in policy.", "{file}"),
            (true, false, Err(e)) => {
                failures.push(format!("{file}: {}: {}", e.code(), e.message()))
            }
            // Examples with `<PLACEHOLDER>` values may be refused (a placeholder is no ARN),
            // but never with a syntax error: their structure is valid.
            (true, true, Err(e)) if e.message() == "Syntax errors in policy." => {
                failures.push(format!("{file}: syntax error on a well-formed example"));
            }
            (true, _, _) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// True when `text` holds a JSON string that is a whole `[UPPER_CASE]` placeholder.
fn square_bracket_placeholder(text: &str) -> bool {
    text.split('"').any(|s| {
        s.len() > 2
            && s.starts_with('[')
            && s.ends_with(']')
            && s[1..s.len() - 1]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_')
    })
}

#[test]
fn organizations_count_whitespace_so_an_indented_example_must_be_minified() {
    let path = "example-policies/scp/data-perimeter-policy-examples/service_control_policies/data_perimeter_governance_scp.json";
    let text = std::fs::read_to_string(corpus(path)).unwrap();
    let e = PolicyDocument::parse(&text, PolicyKind::Scp).unwrap_err();
    assert_eq!(e.code(), "LimitExceeded");
    let minified = serde_json::from_str::<Value>(&text).unwrap().to_string();
    assert!(minified.chars().count() <= 5_120);
    PolicyDocument::parse(&minified, PolicyKind::Scp).unwrap();
}
