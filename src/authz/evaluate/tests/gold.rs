//! IAM-SEMANTICS §6.2 worked cases.
//!
//! One test per gold group. Account A is `111122223333`, account B `444455556666`; every
//! policy is `"Version":"2012-10-17"` unless the case says otherwise. The engine does not add
//! principal keys itself, so principal tags, `aws:username`, `aws:TokenIssueTime`,
//! `aws:MultiFactorAuthPresent`, `aws:PrincipalArn` and `aws:PrincipalAccount` are put into the
//! request context as the STS/IAM layer would.
//!
//! Not here:
//! - T21 (durations and role chaining) and T23 (AssumeRoleWithWebIdentity / IRSA) need the STS
//!   service, which is built later; they are not decisions of the evaluator.
//! - T24's first line (`GetCallerIdentity` succeeds even under an explicit deny) is STS-service
//!   behaviour too: the call needs no permission, so the evaluator is never asked.
//! - T20 is covered only for its trust-policy decisions (`sts:AssumeRole` and `sts:TagSession`
//!   evaluated against the trust policy); assembling them into one `AssumeRole` call is STS's
//!   job.

use std::sync::Arc;

use super::{policy, request, with_context};
use crate::authz::{evaluate, Context, Decision, Outcome, PolicySet, Request};
use crate::policy::{CompiledPolicy, ContextValue, PolicyKind};

const A: &str = "111122223333";
const B: &str = "444455556666";
const ALLOW_ALL: &str = r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#;

/// Checks the outcome of a decision.
#[track_caller]
fn expect(d: &Decision, outcome: Outcome, case: &str) {
    assert_eq!(d.outcome, outcome, "{case}: {d:?}");
}

/// Checks the outcome and the policy type that decided it.
#[track_caller]
fn expect_by(d: &Decision, outcome: Outcome, kind: PolicyKind, case: &str) {
    assert_eq!(d.outcome, outcome, "{case}: {d:?}");
    assert_eq!(d.policy_type, Some(kind), "{case}: deciding policy type");
}

/// An identity policy from a list of statements.
fn identity(statements: &str) -> Arc<CompiledPolicy> {
    policy(
        PolicyKind::Identity,
        &format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#),
    )
}

/// A policy of `kind` from a list of statements.
fn doc(kind: PolicyKind, statements: &str) -> Arc<CompiledPolicy> {
    policy(
        kind,
        &format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#),
    )
}

/// Evaluates `req` against identity policies only.
fn with_identity(policies: &[Arc<CompiledPolicy>], req: &Request) -> Decision {
    evaluate(
        &PolicySet {
            identity: policies,
            ..PolicySet::default()
        },
        req,
    )
}

/// Sets single-valued and multi-valued context keys (replacing the request's context).
fn with_keys(req: Request, single: &[(&str, &str)], multi: &[(&str, &[&str])]) -> Request {
    let mut ctx = Context::new();
    for (k, v) in single {
        ctx.insert_str(k, v);
    }
    for (k, vs) in multi {
        ctx.insert_multi(k, vs.iter().map(|v| ContextValue::new(*v)).collect());
    }
    req.with_context(ctx)
}

fn user(name: &str) -> String {
    format!("arn:aws:iam::{A}:user/{name}")
}

fn session(role: &str, name: &str) -> String {
    format!("arn:aws:sts::{A}:assumed-role/{role}/{name}")
}

#[test]
fn t01_explicit_deny_beats_allow() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::carlossalazar","arn:aws:s3:::carlossalazar/*"]},
           {"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::*log*"}"#,
    );
    let ids = [p];
    let carlos = user("carlossalazar");
    let d = with_identity(
        &ids,
        &request(
            &carlos,
            "s3:PutObject",
            "arn:aws:s3:::carlossalazar-logs/f.txt",
        ),
    );
    expect_by(
        &d,
        Outcome::ExplicitDeny,
        PolicyKind::Identity,
        "*log* spans '/'",
    );
    let d = with_identity(
        &ids,
        &request(&carlos, "s3:PutObject", "arn:aws:s3:::carlossalazar/f.txt"),
    );
    expect_by(&d, Outcome::Allow, PolicyKind::Identity, "own bucket");
    let d = with_identity(
        &ids,
        &request(&carlos, "s3:PutObject", "arn:aws:s3:::someoneelse/f.txt"),
    );
    expect_by(
        &d,
        Outcome::ImplicitDeny,
        PolicyKind::Identity,
        "other bucket",
    );
}

#[test]
fn t02_action_case_insensitive_with_wildcards() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":"IAM:*accesskey*","Resource":"*"}"#,
    )];
    let u = user("U");
    for (action, outcome) in [
        ("iam:ListAccessKeys", Outcome::Allow),
        ("iam:UpdateAccessKey", Outcome::Allow),
        ("iam:CreateUser", Outcome::ImplicitDeny),
    ] {
        expect(
            &with_identity(&ids, &request(&u, action, "*")),
            outcome,
            action,
        );
    }
}

#[test]
fn t03_resource_case_sensitive() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::111122223333:user/Bob"}"#,
    )];
    let u = user("U");
    let d = with_identity(
        &ids,
        &request(&u, "iam:GetUser", "arn:aws:iam::111122223333:user/Bob"),
    );
    expect(&d, Outcome::Allow, "user/Bob");
    let d = with_identity(
        &ids,
        &request(&u, "iam:GetUser", "arn:aws:iam::111122223333:user/bob"),
    );
    expect(&d, Outcome::ImplicitDeny, "user/bob");
}

#[test]
fn t04_star_spans_slash_in_resource() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::DOC-EXAMPLE-BUCKET/*/test/*"}"#,
    )];
    let u = user("U");
    let run = |key: &str| {
        with_identity(
            &ids,
            &request(
                &u,
                "s3:GetObject",
                &format!("arn:aws:s3:::DOC-EXAMPLE-BUCKET/{key}"),
            ),
        )
    };
    for key in [
        "1/test/object.jpg",
        "1/2/test/object.jpg",
        "1/2/test/3/object.jpg",
        "1/2/3/test/4/object.jpg",
        "1///test///object.jpg",
        "1/test/.jpg",
        "/test/object.jpg",
        "1/test/",
    ] {
        expect(&run(key), Outcome::Allow, key);
    }
    for key in ["1-test/object.jpg", "test/object.jpg", "1/2/test.jpg"] {
        expect(&run(key), Outcome::ImplicitDeny, key);
    }
}

#[test]
fn t05_arn_like_vs_string_like() {
    let source =
        "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt";
    let req = with_context(
        request(&user("U"), "s3:GetObject", "arn:aws:s3:::b/k"),
        &[("aws:SourceArn", source)],
    );
    let string_like = [identity(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
            "Condition":{"StringLike":{"aws:SourceArn":"arn:aws:someservice:*:111122223333:finance/*"}}}"#,
    )];
    expect(
        &with_identity(&string_like, &req),
        Outcome::Allow,
        "StringLike: first * eats across colons",
    );
    let arn_like = [identity(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
            "Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:someservice:*:111122223333:finance/*"}}}"#,
    )];
    expect(
        &with_identity(&arn_like, &req),
        Outcome::ImplicitDeny,
        "ArnLike: * stays in the region segment",
    );
}

#[test]
fn t06_missing_key_positive_vs_negated_operator() {
    let ids = [identity(&format!(
        r#"{ALLOW_ALL},
           {{"Effect":"Deny","Action":"*","Resource":"*",
             "Condition":{{"StringNotEquals":{{"aws:PrincipalTag/team":"blue"}}}}}}"#
    ))];
    let base = || request(&user("U"), "s3:GetObject", "arn:aws:s3:::b/k");
    let d = with_identity(&ids, &base());
    expect_by(
        &d,
        Outcome::ExplicitDeny,
        PolicyKind::Identity,
        "no tags: negated op on missing key is true",
    );
    let d = with_identity(
        &ids,
        &with_context(base(), &[("aws:PrincipalTag/team", "blue")]),
    );
    expect(&d, Outcome::Allow, "team=blue");
    let d = with_identity(
        &ids,
        &with_context(base(), &[("aws:PrincipalTag/team", "red")]),
    );
    expect_by(&d, Outcome::ExplicitDeny, PolicyKind::Identity, "team=red");

    let variant = [identity(&format!(
        r#"{ALLOW_ALL},
           {{"Effect":"Deny","Action":"*","Resource":"*",
             "Condition":{{"StringEquals":{{"aws:PrincipalTag/team":"red"}}}}}}"#
    ))];
    expect(
        &with_identity(&variant, &base()),
        Outcome::Allow,
        "positive op on missing key is false",
    );
}

#[test]
fn t07_multiple_values_or_vs_nor_and_key_case() {
    let ids = [identity(&format!(
        r#"{ALLOW_ALL},
           {{"Effect":"Deny","Action":"*","Resource":"*",
             "Condition":{{"StringNotEquals":{{"aws:PrincipalAccount":["111122223333","444455556666"]}}}}}}"#
    ))];
    for (account, outcome) in [
        (A, Outcome::Allow),
        (B, Outcome::Allow),
        ("999988887777", Outcome::ExplicitDeny),
    ] {
        let req = with_context(
            request(
                &format!("arn:aws:iam::{account}:user/U"),
                "s3:GetObject",
                "arn:aws:s3:::b/k",
            ),
            &[("aws:PrincipalAccount", account)],
        );
        expect(&with_identity(&ids, &req), outcome, account);
    }

    let ids = [identity(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
            "Condition":{"StringEquals":{"AWS:PRINCIPALTAG/Department":["hr","legal"]}}}"#,
    )];
    let base = || request(&user("U"), "s3:GetObject", "arn:aws:s3:::b/k");
    let d = with_identity(
        &ids,
        &with_context(base(), &[("aws:PrincipalTag/department", "legal")]),
    );
    expect(
        &d,
        Outcome::Allow,
        "department=legal (key name and tag key case-insensitive)",
    );
    let d = with_identity(
        &ids,
        &with_context(base(), &[("aws:PrincipalTag/department", "HR")]),
    );
    expect(
        &d,
        Outcome::ImplicitDeny,
        "department=HR (value case-sensitive)",
    );
    expect(
        &with_identity(&ids, &base()),
        Outcome::ImplicitDeny,
        "no tags",
    );
}

#[test]
fn t08_set_operators_on_missing_and_empty_keys() {
    let u = user("U");
    let role = "arn:aws:iam::111122223333:role/R";
    let tag_keys = |action: &str, keys: Option<&[&str]>| {
        let req = request(&u, action, role);
        match keys {
            Some(keys) => with_keys(req, &[], &[("aws:TagKeys", keys)]),
            None => req,
        }
    };

    let all = [identity(
        r#"{"Effect":"Allow","Action":"iam:TagRole","Resource":"*",
            "Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["Project","Team"]}}}"#,
    )];
    for (keys, outcome) in [
        (Some(&["Project"][..]), Outcome::Allow),
        (Some(&["Project", "Owner"][..]), Outcome::ImplicitDeny),
        (None, Outcome::Allow),
    ] {
        expect(
            &with_identity(&all, &tag_keys("iam:TagRole", keys)),
            outcome,
            &format!("A ForAllValues {keys:?}"),
        );
    }

    let any = [identity(
        r#"{"Effect":"Allow","Action":"iam:TagRole","Resource":"*",
            "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["Project","Team"]}}}"#,
    )];
    for (keys, outcome) in [
        (Some(&["Owner", "Team"][..]), Outcome::Allow),
        (Some(&["Owner"][..]), Outcome::ImplicitDeny),
        (None, Outcome::ImplicitDeny),
    ] {
        expect(
            &with_identity(&any, &tag_keys("iam:TagRole", keys)),
            outcome,
            &format!("B ForAnyValue {keys:?}"),
        );
    }

    let deny = [identity(&format!(
        r#"{ALLOW_ALL},
           {{"Effect":"Deny","Action":"iam:Tag*","Resource":"*",
             "Condition":{{"ForAllValues:StringNotLike":{{"aws:TagKeys":"key1*"}}}}}}"#
    ))];
    for (keys, outcome) in [
        (Some(&["key1:legal"][..]), Outcome::Allow),
        (Some(&["key1:hr", "key1:personnel"][..]), Outcome::Allow),
        (Some(&["key2:audit"][..]), Outcome::ExplicitDeny),
        (None, Outcome::ExplicitDeny),
    ] {
        expect(
            &with_identity(&deny, &tag_keys("iam:TagRole", keys)),
            outcome,
            &format!("C ForAllValues:StringNotLike {keys:?}"),
        );
    }
}

#[test]
fn t09_policy_variables_legacy_version_and_missing_variable() {
    let statement = r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::mybucket/${aws:username}/*"}"#;
    let current = [policy(
        PolicyKind::Identity,
        &format!(r#"{{"Version":"2012-10-17","Statement":{statement}}}"#),
    )];
    let david = |key: &str| {
        with_context(
            request(
                &user("David"),
                "s3:GetObject",
                &format!("arn:aws:s3:::mybucket/{key}"),
            ),
            &[("aws:username", "David")],
        )
    };
    expect(
        &with_identity(&current, &david("David/a")),
        Outcome::Allow,
        "2012-10-17, David, own prefix",
    );
    expect(
        &with_identity(&current, &david("Eve/a")),
        Outcome::ImplicitDeny,
        "2012-10-17, David, Eve's prefix",
    );
    let role_session = |key: &str| {
        request(
            &session("R", "S"),
            "s3:GetObject",
            &format!("arn:aws:s3:::mybucket/{key}"),
        )
    };
    expect(
        &with_identity(&current, &role_session("David/a")),
        Outcome::ImplicitDeny,
        "2012-10-17, role session without aws:username",
    );
    expect(
        &with_identity(&current, &role_session("${aws:username}/a")),
        Outcome::ImplicitDeny,
        "2012-10-17, role session, literal variable text",
    );

    let legacy = policy(
        PolicyKind::Identity,
        &format!(r#"{{"Version":"2008-10-17","Statement":{statement}}}"#),
    );
    let unversioned = policy(
        PolicyKind::Identity,
        &format!(r#"{{"Statement":{statement}}}"#),
    );
    for (label, p) in [("2008-10-17", legacy), ("no Version", unversioned)] {
        let ids = [p];
        expect(
            &with_identity(&ids, &david("David/a")),
            Outcome::ImplicitDeny,
            &format!("{label}: variable not substituted"),
        );
        expect(
            &with_identity(&ids, &david("${aws:username}/a")),
            Outcome::Allow,
            &format!("{label}: variable text is literal"),
        );
    }
}

#[test]
fn t10_variable_default_value_and_escapes() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::bucket-${aws:PrincipalTag/team, 'company-wide'}"}"#,
    )];
    let list = |bucket: &str, tags: &[(&str, &str)]| {
        with_context(
            request(
                &user("U"),
                "s3:ListBucket",
                &format!("arn:aws:s3:::{bucket}"),
            ),
            tags,
        )
    };
    let yellow = [("aws:PrincipalTag/team", "yellow")];
    for (bucket, tags, outcome) in [
        ("bucket-company-wide", &[][..], Outcome::Allow),
        ("bucket-yellow", &[][..], Outcome::ImplicitDeny),
        ("bucket-yellow", &yellow[..], Outcome::Allow),
        ("bucket-company-wide", &yellow[..], Outcome::ImplicitDeny),
    ] {
        expect(
            &with_identity(&ids, &list(bucket, tags)),
            outcome,
            &format!("{bucket} with tags {tags:?}"),
        );
    }

    let escapes = [identity(
        r#"{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*",
            "Condition":{"StringLike":{"s3:prefix":"a${*}b"}}}"#,
    )];
    for (prefix, outcome) in [("a*b", Outcome::Allow), ("axyzb", Outcome::ImplicitDeny)] {
        let req = list("bucket", &[("s3:prefix", prefix)]);
        expect(
            &with_identity(&escapes, &req),
            outcome,
            &format!("s3:prefix={prefix}"),
        );
    }
}

#[test]
fn t11_unresolved_variable_in_negated_condition() {
    let ids = [identity(&format!(
        r#"{ALLOW_ALL},
           {{"Effect":"Deny","Action":"s3:GetObject","Resource":"*",
             "Condition":{{"StringNotEquals":{{"s3:ExistingObjectTag/Team":"${{aws:PrincipalTag/Team}}"}}}}}}"#
    ))];
    let get = |pairs: &[(&str, &str)]| {
        with_context(
            request(&user("U"), "s3:GetObject", "arn:aws:s3:::b/k"),
            pairs,
        )
    };
    let d = with_identity(&ids, &get(&[("s3:ExistingObjectTag/Team", "x")]));
    expect_by(
        &d,
        Outcome::ExplicitDeny,
        PolicyKind::Identity,
        "principal tag Team unset",
    );
    let d = with_identity(
        &ids,
        &get(&[
            ("s3:ExistingObjectTag/Team", "x"),
            ("aws:PrincipalTag/Team", "x"),
        ]),
    );
    expect(&d, Outcome::Allow, "principal tag Team=x");
}

#[test]
fn t12_bool_if_exists_vs_bool_for_mfa() {
    let deny = |op: &str| {
        [identity(&format!(
            r#"{ALLOW_ALL},
               {{"Effect":"Deny","NotAction":"iam:*","Resource":"*",
                 "Condition":{{"{op}":{{"aws:MultiFactorAuthPresent":"false"}}}}}}"#
        ))]
    };
    let if_exists = deny("BoolIfExists");
    let u = user("U");
    let long_term = |action: &str, resource: &str| request(&u, action, resource);
    let temporary = |mfa: &str| {
        with_context(
            long_term("s3:GetObject", "arn:aws:s3:::b/k"),
            &[
                ("aws:MultiFactorAuthPresent", mfa),
                ("aws:TokenIssueTime", "2025-01-01T00:00:00Z"),
            ],
        )
    };

    let d = with_identity(&if_exists, &long_term("s3:GetObject", "arn:aws:s3:::b/k"));
    expect_by(
        &d,
        Outcome::ExplicitDeny,
        PolicyKind::Identity,
        "long-term key, s3:GetObject",
    );
    let d = with_identity(&if_exists, &long_term("iam:ListUsers", "*"));
    expect(&d, Outcome::Allow, "long-term key, iam:ListUsers");
    expect(
        &with_identity(&if_exists, &temporary("true")),
        Outcome::Allow,
        "GetSessionToken with MFA",
    );
    expect(
        &with_identity(&if_exists, &temporary("false")),
        Outcome::ExplicitDeny,
        "GetSessionToken without MFA",
    );

    let plain = deny("Bool");
    expect(
        &with_identity(&plain, &long_term("s3:GetObject", "arn:aws:s3:::b/k")),
        Outcome::Allow,
        "Bool, long-term key: key absent so the deny does not apply",
    );
}

#[test]
fn t13_null_operator() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*",
            "Condition":{"Null":{"aws:TokenIssueTime":"true"}}}"#,
    )];
    let issued = [("aws:TokenIssueTime", "2025-01-01T00:00:00Z")];
    let d = with_identity(&ids, &request(&user("U"), "ec2:RunInstances", "*"));
    expect(&d, Outcome::Allow, "user long-term key");
    let d = with_identity(
        &ids,
        &with_context(
            request(&session("R", "S"), "ec2:RunInstances", "*"),
            &issued,
        ),
    );
    expect(&d, Outcome::ImplicitDeny, "role session");
    let d = with_identity(
        &ids,
        &with_context(request(&user("U"), "ec2:RunInstances", "*"), &issued),
    );
    expect(&d, Outcome::ImplicitDeny, "GetSessionToken credentials");
}

#[test]
fn t14_boundary_is_an_intersection_and_can_deny() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":["s3:*","ec2:*"],"Resource":"*"}"#,
    )];
    let boundary = [doc(
        PolicyKind::Boundary,
        r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"},
           {"Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}"#,
    )];
    let set = PolicySet {
        identity: &ids,
        boundary: &boundary,
        ..PolicySet::default()
    };
    let u = user("U");
    let d = evaluate(&set, &request(&u, "ec2:RunInstances", "*"));
    expect_by(
        &d,
        Outcome::ImplicitDeny,
        PolicyKind::Boundary,
        "ec2 outside the boundary",
    );
    let d = evaluate(&set, &request(&u, "s3:GetObject", "arn:aws:s3:::b/k"));
    expect(&d, Outcome::Allow, "s3:GetObject in both");
    let d = evaluate(&set, &request(&u, "s3:DeleteBucket", "arn:aws:s3:::b"));
    expect_by(
        &d,
        Outcome::ExplicitDeny,
        PolicyKind::Boundary,
        "deny in the boundary",
    );

    let no_identity = PolicySet {
        boundary: &boundary,
        ..PolicySet::default()
    };
    let d = evaluate(
        &no_identity,
        &request(&u, "s3:GetObject", "arn:aws:s3:::b/k"),
    );
    expect_by(
        &d,
        Outcome::ImplicitDeny,
        PolicyKind::Identity,
        "boundary alone grants nothing",
    );
}

#[test]
fn t15_resource_policy_naming_user_bypasses_boundary_account_does_not() {
    let boundary = [doc(
        PolicyKind::Boundary,
        r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"}"#,
    )];
    let req = request(&user("U"), "s3:GetObject", "arn:aws:s3:::b/k");

    let by_user = doc(
        PolicyKind::Resource,
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/U"},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
    );
    let set = PolicySet {
        boundary: &boundary,
        resource: Some(&by_user),
        ..PolicySet::default()
    };
    expect_by(
        &evaluate(&set, &req),
        Outcome::Allow,
        PolicyKind::Resource,
        "bucket policy names the user",
    );

    let by_account = doc(
        PolicyKind::Resource,
        r#"{"Effect":"Allow","Principal":{"AWS":"111122223333"},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
    );
    let set = PolicySet {
        boundary: &boundary,
        resource: Some(&by_account),
        ..PolicySet::default()
    };
    expect_by(
        &evaluate(&set, &req),
        Outcome::ImplicitDeny,
        PolicyKind::Identity,
        "account principal is delegation: identity allow needed",
    );
}

#[test]
fn t16_role_arn_vs_session_arn_vs_wildcard_under_boundary() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"}"#,
    )];
    let boundary = [doc(
        PolicyKind::Boundary,
        r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"}"#,
    )];
    let req = with_context(
        request(&session("R", "S"), "s3:GetObject", "arn:aws:s3:::b/k"),
        &[("aws:PrincipalArn", "arn:aws:iam::111122223333:role/R")],
    );
    let bucket = |principal: &str, condition: &str| {
        doc(
            PolicyKind::Resource,
            &format!(
                r#"{{"Effect":"Allow","Principal":{principal},"Action":"s3:GetObject",
                     "Resource":"arn:aws:s3:::b/*"{condition}}}"#
            ),
        )
    };
    let run = |resource: &CompiledPolicy| {
        evaluate(
            &PolicySet {
                identity: &ids,
                boundary: &boundary,
                resource: Some(resource),
                ..PolicySet::default()
            },
            &req,
        )
    };

    let by_role = bucket(r#"{"AWS":"arn:aws:iam::111122223333:role/R"}"#, "");
    expect_by(
        &run(&by_role),
        Outcome::ImplicitDeny,
        PolicyKind::Boundary,
        "role ARN: boundary applies",
    );
    let by_session = bucket(
        r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/R/S"}"#,
        "",
    );
    expect_by(
        &run(&by_session),
        Outcome::Allow,
        PolicyKind::Resource,
        "session ARN",
    );
    let by_arn_condition = bucket(
        r#""*""#,
        r#","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/R"}}"#,
    );
    expect_by(
        &run(&by_arn_condition),
        Outcome::Allow,
        PolicyKind::Resource,
        "* with aws:PrincipalArn",
    );
}

#[test]
fn t17_session_policies() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
    )];
    let get_only = [doc(
        PolicyKind::Session,
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}"#,
    )];
    let s = session("R", "S");
    let set = PolicySet {
        identity: &ids,
        session: &get_only,
        ..PolicySet::default()
    };
    expect(
        &evaluate(&set, &request(&s, "s3:GetObject", "arn:aws:s3:::b/k")),
        Outcome::Allow,
        "s3:GetObject",
    );
    expect_by(
        &evaluate(&set, &request(&s, "s3:PutObject", "arn:aws:s3:::b/k")),
        Outcome::ImplicitDeny,
        PolicyKind::Session,
        "s3:PutObject outside the session policy",
    );

    let everything = [doc(PolicyKind::Session, ALLOW_ALL)];
    let set = PolicySet {
        identity: &ids,
        session: &everything,
        ..PolicySet::default()
    };
    expect_by(
        &evaluate(&set, &request(&s, "ec2:RunInstances", "*")),
        Outcome::ImplicitDeny,
        PolicyKind::Identity,
        "session policy never grants",
    );

    let put = |principal: &str| {
        doc(
            PolicyKind::Resource,
            &format!(
                r#"{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},
                     "Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}}"#
            ),
        )
    };
    let run = |resource: &CompiledPolicy| {
        evaluate(
            &PolicySet {
                identity: &ids,
                session: &get_only,
                resource: Some(resource),
                ..PolicySet::default()
            },
            &request(&s, "s3:PutObject", "arn:aws:s3:::b/k"),
        )
    };
    expect_by(
        &run(&put("arn:aws:iam::111122223333:role/R")),
        Outcome::ImplicitDeny,
        PolicyKind::Session,
        "bucket policy names the role: session policy limits it",
    );
    // U1: follow the documentation (3P-SIM disagrees).
    expect_by(
        &run(&put(&s)),
        Outcome::Allow,
        PolicyKind::Resource,
        "bucket policy names the session",
    );
}

#[test]
fn t18_cross_account_needs_both_sides() {
    let ids = [identity(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucketB/*"}"#,
    )];
    let allow_a = r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},
                      "Action":"s3:GetObject","Resource":"arn:aws:s3:::bucketB/*"}"#;
    let bucket = doc(PolicyKind::Resource, allow_a);
    let req =
        request(&user("U"), "s3:GetObject", "arn:aws:s3:::bucketB/k").with_resource_account(B);

    let d = evaluate(
        &PolicySet {
            identity: &ids,
            resource: Some(&bucket),
            ..PolicySet::default()
        },
        &req,
    );
    expect(&d, Outcome::Allow, "identity allow + bucket policy names A");

    let d = evaluate(
        &PolicySet {
            resource: Some(&bucket),
            ..PolicySet::default()
        },
        &req,
    );
    expect_by(
        &d,
        Outcome::ImplicitDeny,
        PolicyKind::Identity,
        "no identity policy",
    );

    let d = with_identity(&ids, &req);
    expect_by(
        &d,
        Outcome::ImplicitDeny,
        PolicyKind::Resource,
        "no bucket policy",
    );

    let with_deny = doc(
        PolicyKind::Resource,
        &format!(
            r#"{allow_a},
               {{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::bucketB/*"}}"#
        ),
    );
    let d = evaluate(
        &PolicySet {
            identity: &ids,
            resource: Some(&with_deny),
            ..PolicySet::default()
        },
        &req,
    );
    expect_by(
        &d,
        Outcome::ExplicitDeny,
        PolicyKind::Resource,
        "bucket deny to *",
    );
}

#[test]
fn t19_trust_policy_rules_for_assume_role() {
    let role_a = "arn:aws:iam::111122223333:role/R";
    let u = user("U");
    let trust = |statements: &str| doc(PolicyKind::Trust, statements);
    let trusts = |principal: &str| {
        trust(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}"#
        ))
    };
    let may_assume = |role: &str| {
        [identity(&format!(
            r#"{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{role}"}}"#
        ))]
    };
    let assume = |ids: &[Arc<CompiledPolicy>], trust: &CompiledPolicy, role: &str| {
        evaluate(
            &PolicySet {
                identity: ids,
                resource: Some(trust),
                ..PolicySet::default()
            },
            &request(&u, "sts:AssumeRole", role),
        )
    };
    let allow_a = may_assume(role_a);

    let trusts_account = trusts("arn:aws:iam::111122223333:root");
    expect(
        &assume(&[], &trusts_account, role_a),
        Outcome::ImplicitDeny,
        "trust names account A, U has no policies",
    );
    expect(
        &assume(&allow_a, &trusts_account, role_a),
        Outcome::Allow,
        "trust names account A, U's identity allows",
    );
    expect_by(
        &assume(&[], &trusts("arn:aws:iam::111122223333:user/U"), role_a),
        Outcome::Allow,
        PolicyKind::Trust,
        "trust names U directly, U has no policies",
    );
    expect_by(
        &assume(
            &allow_a,
            &trusts("arn:aws:iam::111122223333:user/Other"),
            role_a,
        ),
        Outcome::ImplicitDeny,
        PolicyKind::Trust,
        "trust names another user: identity allow never suffices",
    );

    let deny_only = trust(
        r#"{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}"#,
    );
    expect_by(
        &assume(&allow_a, &deny_only, role_a),
        Outcome::ExplicitDeny,
        PolicyKind::Trust,
        "trust denies account A",
    );
    let allow_and_deny = trust(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"},
           {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}"#,
    );
    expect_by(
        &assume(&allow_a, &allow_and_deny, role_a),
        Outcome::ExplicitDeny,
        PolicyKind::Trust,
        "trust allows and denies account A",
    );

    let role_b = "arn:aws:iam::444455556666:role/R";
    let allow_b = may_assume(role_b);
    expect(
        &assume(&allow_b, &trusts_account, role_b),
        Outcome::Allow,
        "cross-account: role in B trusts A, U's identity allows",
    );
    expect(
        &assume(&[], &trusts_account, role_b),
        Outcome::ImplicitDeny,
        "cross-account: role in B trusts A, U has no identity allow",
    );
}

/// The trust-policy decisions of one `AssumeRole` call (T20): `sts:AssumeRole`, and
/// `sts:TagSession` when tags are passed. The call succeeds only if every decision allows.
struct AssumeRoleCall<'a> {
    tags: &'a [(&'a str, &'a str)],
    transitive: &'a [&'a str],
    external_id: Option<&'a str>,
}

impl AssumeRoleCall<'_> {
    fn request(&self, action: &str) -> Request {
        let mut single: Vec<(String, &str)> = self
            .tags
            .iter()
            .map(|(k, v)| (format!("aws:RequestTag/{k}"), *v))
            .collect();
        if let Some(id) = self.external_id {
            single.push(("sts:ExternalId".to_owned(), id));
        }
        let single: Vec<(&str, &str)> = single.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let keys: Vec<&str> = self.tags.iter().map(|(k, _)| *k).collect();
        let mut multi: Vec<(&str, &[&str])> = Vec::new();
        if !keys.is_empty() {
            multi.push(("aws:TagKeys", &keys));
        }
        if !self.transitive.is_empty() {
            multi.push(("sts:TransitiveTagKeys", self.transitive));
        }
        with_keys(
            request(
                &user("test-session-tags"),
                action,
                "arn:aws:iam::111122223333:role/R",
            ),
            &single,
            &multi,
        )
    }

    /// The `sts:AssumeRole` decision and, when tags are passed, the `sts:TagSession` one.
    fn decide(&self, trust: &CompiledPolicy) -> (Decision, Option<Decision>) {
        let set = PolicySet {
            resource: Some(trust),
            ..PolicySet::default()
        };
        let assume = evaluate(&set, &self.request("sts:AssumeRole"));
        let tag = (!self.tags.is_empty()).then(|| evaluate(&set, &self.request("sts:TagSession")));
        (assume, tag)
    }
}

#[test]
fn t20_external_id_and_session_tags_on_assume_role() {
    let assume_statement = r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/test-session-tags"},
        "Action":"sts:AssumeRole",
        "Condition":{"StringLike":{"aws:RequestTag/Project":"*"},"StringEquals":{"sts:ExternalId":"Example987"}}}"#;
    let tag_statement = r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/test-session-tags"},
        "Action":"sts:TagSession",
        "Condition":{"StringLike":{"aws:RequestTag/Project":"*"},
                     "ForAllValues:StringEquals":{"sts:TransitiveTagKeys":["Project","Department"]}}}"#;
    let trust = doc(
        PolicyKind::Trust,
        &format!("{assume_statement},{tag_statement}"),
    );
    let project = [("Project", "X")];

    let (assume, tag) = AssumeRoleCall {
        tags: &project,
        transitive: &[],
        external_id: Some("Example987"),
    }
    .decide(&trust);
    expect_by(
        &assume,
        Outcome::Allow,
        PolicyKind::Trust,
        "tags + ExternalId: AssumeRole",
    );
    expect_by(
        &tag.unwrap(),
        Outcome::Allow,
        PolicyKind::Trust,
        "tags + ExternalId: TagSession",
    );

    let (assume, _) = AssumeRoleCall {
        tags: &project,
        transitive: &[],
        external_id: None,
    }
    .decide(&trust);
    expect_by(
        &assume,
        Outcome::ImplicitDeny,
        PolicyKind::Trust,
        "no ExternalId: key missing",
    );

    let (assume, _) = AssumeRoleCall {
        tags: &project,
        transitive: &[],
        external_id: Some("example987"),
    }
    .decide(&trust);
    expect_by(
        &assume,
        Outcome::ImplicitDeny,
        PolicyKind::Trust,
        "ExternalId compares case-sensitively",
    );

    let (assume, tag) = AssumeRoleCall {
        tags: &project,
        transitive: &["Project", "CostCenter"],
        external_id: Some("Example987"),
    }
    .decide(&trust);
    expect(
        &assume,
        Outcome::Allow,
        "transitive CostCenter: AssumeRole itself allowed",
    );
    expect_by(
        &tag.unwrap(),
        Outcome::ImplicitDeny,
        PolicyKind::Trust,
        "transitive CostCenter not in the allowed list: TagSession denied",
    );

    let (assume, tag) = AssumeRoleCall {
        tags: &[],
        transitive: &[],
        external_id: Some("Example987"),
    }
    .decide(&trust);
    assert!(tag.is_none());
    expect_by(
        &assume,
        Outcome::ImplicitDeny,
        PolicyKind::Trust,
        "no tags: aws:RequestTag/Project missing",
    );

    let without_tag_session = doc(PolicyKind::Trust, assume_statement);
    let (assume, tag) = AssumeRoleCall {
        tags: &project,
        transitive: &[],
        external_id: Some("Example987"),
    }
    .decide(&without_tag_session);
    expect(
        &assume,
        Outcome::Allow,
        "no TagSession statement: AssumeRole itself allowed",
    );
    expect_by(
        &tag.unwrap(),
        Outcome::ImplicitDeny,
        PolicyKind::Trust,
        "no TagSession statement: tags refused",
    );
}

// T21 (durations, role chaining) needs the STS service: not an evaluator decision.

#[test]
fn t22_session_revocation() {
    let revoke = r#"{"Effect":"Deny","Action":"*","Resource":"*",
        "Condition":{"DateLessThan":{"aws:TokenIssueTime":"2025-01-01T00:00:00Z"}}}"#;
    let ids = [identity(&format!("{ALLOW_ALL},{revoke}"))];
    let s = session("R", "S");
    let issued = |at: &str, action: &str, resource: &str| {
        with_context(request(&s, action, resource), &[("aws:TokenIssueTime", at)])
    };
    for (action, resource) in [
        ("s3:GetObject", "arn:aws:s3:::b/k"),
        ("iam:ListUsers", "*"),
        ("ec2:RunInstances", "*"),
    ] {
        expect_by(
            &with_identity(&ids, &issued("2024-12-31T23:59:59Z", action, resource)),
            Outcome::ExplicitDeny,
            PolicyKind::Identity,
            &format!("session issued before revocation: {action}"),
        );
    }
    expect(
        &with_identity(
            &ids,
            &issued("2025-01-01T00:00:01Z", "s3:GetObject", "arn:aws:s3:::b/k"),
        ),
        Outcome::Allow,
        "session issued after revocation",
    );
    expect(
        &with_identity(
            &ids,
            &request(&user("U"), "s3:GetObject", "arn:aws:s3:::b/k"),
        ),
        Outcome::Allow,
        "user with a long-term key: aws:TokenIssueTime absent",
    );
}

// T23 (AssumeRoleWithWebIdentity / IRSA) needs the STS service: not an evaluator decision.

#[test]
fn t24_special_operations_and_quirks() {
    // GetCallerIdentity needs no permission: the STS service answers without asking the
    // evaluator, so that line of T24 is not tested here.

    // NotPrincipal + Deny always applies to a principal with a permissions boundary.
    let ids = [identity(ALLOW_ALL)];
    let not_role = doc(
        PolicyKind::Resource,
        r#"{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/R"},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/obj"}"#,
    );
    let req = request(&session("R", "S"), "s3:GetObject", "arn:aws:s3:::b/obj");
    let d = evaluate(
        &PolicySet {
            identity: &ids,
            resource: Some(&not_role),
            ..PolicySet::default()
        },
        &req,
    );
    expect(&d, Outcome::Allow, "NotPrincipal names R, no boundary");
    let boundary = [doc(PolicyKind::Boundary, ALLOW_ALL)];
    let d = evaluate(
        &PolicySet {
            identity: &ids,
            boundary: &boundary,
            resource: Some(&not_role),
            ..PolicySet::default()
        },
        &req,
    );
    expect_by(
        &d,
        Outcome::ExplicitDeny,
        PolicyKind::Resource,
        "NotPrincipal names R, boundary attached",
    );

    // IpAddress / NotIpAddress, with aws:SourceIp absent behind a VPC endpoint.
    let ip = |op: &str| {
        [identity(&format!(
            r#"{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
                 "Condition":{{"{op}":{{"aws:SourceIp":"203.0.113.0/24"}}}}}}"#
        ))]
    };
    let from = |source: Option<&str>| {
        let req = request(&user("U"), "s3:GetObject", "arn:aws:s3:::b/k");
        match source {
            Some(addr) => with_context(req, &[("aws:SourceIp", addr)]),
            None => req,
        }
    };
    let in_range = ip("IpAddress");
    for (source, outcome) in [
        (Some("203.0.113.77"), Outcome::Allow),
        (Some("198.51.100.1"), Outcome::ImplicitDeny),
        (None, Outcome::ImplicitDeny),
    ] {
        expect(
            &with_identity(&in_range, &from(source)),
            outcome,
            &format!("IpAddress, aws:SourceIp {source:?}"),
        );
    }
    expect(
        &with_identity(&ip("NotIpAddress"), &from(None)),
        Outcome::Allow,
        "NotIpAddress, aws:SourceIp absent",
    );
}
