//! Engine benchmarks: uncached evaluation and policy compilation.
//!
//! Run with `cargo bench --bench evaluate`; results and method are in `benches/README.md`.
//! Setup (parsing, compiling, building requests) happens outside the measured closures.

#![expect(
    clippy::expect_used,
    reason = "a benchmark whose fixtures do not load has nothing to measure"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use iamlet::authz::{evaluate, Context, Outcome, PolicySet, Principal, Request};
use iamlet::policy::{CompiledPolicy, ContextValue, ParseOptions, PolicyDocument, PolicyKind};

fn compile(id: &str, json: &str) -> Arc<CompiledPolicy> {
    let doc = PolicyDocument::parse(json, PolicyKind::Identity).expect("bench policy parses");
    Arc::new(CompiledPolicy::compile(id, PolicyKind::Identity, &doc))
}

/// Ten policies, 60 statements, as a service role typically has: wildcards in actions and
/// resources, policy variables, conditions of every common family, and two denies.
fn typical_policies() -> Vec<Arc<CompiledPolicy>> {
    let services = [
        "rds",
        "dynamodb",
        "sqs",
        "sns",
        "kms",
        "logs",
        "lambda",
        "ec2",
        "secretsmanager",
        "ssm",
    ];
    services
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            let statements = [
                format!(r#"{{"Sid":"Read{i}","Effect":"Allow","Action":["{svc}:Get*","{svc}:List*","{svc}:Describe*"],"Resource":"arn:aws:{svc}:*:111122223333:*"}}"#),
                format!(r#"{{"Sid":"TeamWrite{i}","Effect":"Allow","Action":["{svc}:Put*","{svc}:Update*"],"Resource":"arn:aws:{svc}:eu-west-1:111122223333:team-${{aws:PrincipalTag/team}}/*","Condition":{{"StringEquals":{{"aws:RequestedRegion":["eu-west-1","eu-central-1"]}}}}}}"#),
                format!(r#"{{"Sid":"Network{i}","Effect":"Allow","Action":"{svc}:Create*","Resource":"*","Condition":{{"IpAddress":{{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}},"Bool":{{"aws:SecureTransport":"true"}}}}}}"#),
                format!(r#"{{"Sid":"Window{i}","Effect":"Allow","Action":"{svc}:Tag*","Resource":"*","Condition":{{"DateLessThan":{{"aws:CurrentTime":"2030-01-01T00:00:00Z"}},"StringLike":{{"aws:PrincipalTag/project":"proj-*"}}}}}}"#),
                format!(r#"{{"Sid":"Owner{i}","Effect":"Allow","Action":"{svc}:Delete*","Resource":"*","Condition":{{"StringEquals":{{"aws:ResourceTag/owner":"${{aws:username}}"}}}}}}"#),
                if i % 5 == 0 {
                    format!(r#"{{"Sid":"DenyNoMfa{i}","Effect":"Deny","NotAction":["iam:*","sts:*"],"Resource":"*","Condition":{{"BoolIfExists":{{"aws:MultiFactorAuthPresent":"false"}},"StringNotEquals":{{"aws:PrincipalTag/break-glass":"yes"}}}}}}"#)
                } else {
                    format!(r#"{{"Sid":"Admin{i}","Effect":"Allow","Action":"{svc}:*","Resource":"arn:aws:{svc}:*:111122223333:admin/*","Condition":{{"ForAnyValue:StringEquals":{{"aws:PrincipalTag/roles":["admin"]}}}}}}"#)
                },
            ];
            compile(
                &format!("arn:aws:iam::111122223333:policy/{svc}-access"),
                &format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(",")),
            )
        })
        .collect()
}

fn typical_request(action: &str, resource: &str) -> Request {
    let mut ctx = Context::new();
    for (k, v) in [
        ("aws:username", "alice"),
        ("aws:PrincipalTag/team", "payments"),
        ("aws:PrincipalTag/project", "proj-42"),
        ("aws:RequestedRegion", "eu-west-1"),
        ("aws:SourceIp", "10.1.2.3"),
        ("aws:SecureTransport", "true"),
        ("aws:CurrentTime", "2026-11-28T12:00:00Z"),
        ("aws:MultiFactorAuthPresent", "true"),
        ("aws:ResourceTag/owner", "alice"),
    ] {
        ctx.insert(k, ContextValue::new(v));
    }
    let principal =
        Principal::parse("arn:aws:sts::111122223333:assumed-role/app/pod-1").expect("principal");
    Request::try_new(principal, action, resource)
        .expect("request")
        .with_context(ctx)
}

fn bench_evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");

    let simple = vec![compile(
        "simple",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket/*"}}"#,
    )];
    let set = PolicySet {
        identity: &simple,
        ..PolicySet::default()
    };
    let req = typical_request("s3:GetObject", "arn:aws:s3:::bucket/key");
    assert_eq!(evaluate(&set, &req).outcome, Outcome::Allow);
    group.bench_function("simple_allow", |b| {
        b.iter(|| evaluate(black_box(&set), black_box(&req)))
    });

    let typical = typical_policies();
    let set = PolicySet {
        identity: &typical,
        ..PolicySet::default()
    };
    let cases = [
        (
            "typical_allow",
            "dynamodb:PutItem",
            "arn:aws:dynamodb:eu-west-1:111122223333:team-payments/orders",
            Outcome::Allow,
        ),
        (
            "typical_implicit_deny",
            "sqs:PurgeQueue",
            "arn:aws:sqs:eu-west-1:111122223333:orders",
            Outcome::ImplicitDeny,
        ),
        (
            "typical_condition_allow",
            "kms:CreateKey",
            "*",
            Outcome::Allow,
        ),
    ];
    for (name, action, resource, expected) in cases {
        let req = typical_request(action, resource);
        assert_eq!(evaluate(&set, &req).outcome, expected, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| evaluate(black_box(&set), black_box(&req)))
        });
    }
    let mut no_mfa = typical_request("s3:GetObject", "arn:aws:s3:ca-central-1:111122223333:x");
    no_mfa
        .context_mut()
        .insert("aws:MultiFactorAuthPresent", ContextValue::new("false"));
    assert_eq!(evaluate(&set, &no_mfa).outcome, Outcome::ExplicitDeny);
    group.bench_function("typical_explicit_deny", |b| {
        b.iter(|| evaluate(black_box(&set), black_box(&no_mfa)))
    });

    // Heavy: ten of the largest AWS managed policies, thousands of action patterns.
    let heavy = largest_managed_policies(10);
    let set = PolicySet {
        identity: &heavy,
        ..PolicySet::default()
    };
    let req = typical_request("ec2:DescribeInstances", "*");
    let decided = evaluate(&set, &req);
    assert_eq!(
        decided.outcome,
        Outcome::Allow,
        "heavy_managed_10: {decided:?}"
    );
    group.bench_function("heavy_managed_10", |b| {
        b.iter(|| evaluate(black_box(&set), black_box(&req)))
    });
    group.finish();
}

fn managed_policy_texts() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/managed-policies.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("managed policies corpus")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            (
                v.get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_owned(),
                v.get("document")
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn largest_managed_policies(n: usize) -> Vec<Arc<CompiledPolicy>> {
    let mut texts = managed_policy_texts();
    texts.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
    texts
        .iter()
        .take(n)
        .map(|(name, text)| {
            let doc =
                PolicyDocument::parse_with(text, ParseOptions::aws_managed(PolicyKind::Identity))
                    .expect("managed policy parses");
            Arc::new(CompiledPolicy::compile(
                name.as_str(),
                PolicyKind::Identity,
                &doc,
            ))
        })
        .collect()
}

fn bench_compile(c: &mut Criterion) {
    let texts = managed_policy_texts();
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("all_1641_managed_policies", |b| {
        b.iter_batched(
            || texts.clone(),
            |texts| {
                texts
                    .iter()
                    .map(|(name, text)| {
                        let doc = PolicyDocument::parse_with(
                            text,
                            ParseOptions::aws_managed(PolicyKind::Identity),
                        )
                        .expect("parses");
                        CompiledPolicy::compile(name.as_str(), PolicyKind::Identity, &doc)
                    })
                    .collect::<Vec<_>>()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_evaluate, bench_compile);
criterion_main!(benches);
