//! Focused tests of the combining logic; the worked cases of IAM-SEMANTICS §6.2 are in
//! `gold.rs` beside this file, AWS's rules that decide on their own (KMS key policies,
//! `sts:GetCallerIdentity`) in `rules.rs`.

mod gold;
mod rules;

use std::sync::Arc;

use crate::authz::{evaluate, Context, Outcome, PolicySet, Principal, Request};
use crate::policy::{CompiledPolicy, ParseOptions, PolicyDocument, PolicyKind};

pub(super) fn policy(kind: PolicyKind, json: &str) -> Arc<CompiledPolicy> {
    let doc = PolicyDocument::parse_with(json, ParseOptions::lenient(kind)).unwrap();
    Arc::new(CompiledPolicy::compile(
        format!("{kind}-policy"),
        kind,
        &doc,
    ))
}

pub(super) fn request(principal: &str, action: &str, resource: &str) -> Request {
    Request::try_new(Principal::parse(principal).unwrap(), action, resource).unwrap()
}

pub(super) fn with_context(req: Request, pairs: &[(&str, &str)]) -> Request {
    let mut ctx = Context::new();
    for (k, v) in pairs {
        ctx.insert_str(k, v);
    }
    req.with_context(ctx)
}

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

#[test]
fn default_is_implicit_deny() {
    let d = evaluate(
        &PolicySet::default(),
        &request(ALICE, "s3:GetObject", "arn:aws:s3:::b/k"),
    );
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
    assert_eq!(d.policy_type, Some(PolicyKind::Identity));
}

#[test]
fn deciding_statement_is_reported() {
    let p = policy(
        PolicyKind::Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"Read","Effect":"Allow","Action":"s3:Get*","Resource":"*"},{"Sid":"NoSecrets","Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::secrets/*"}]}"#,
    );
    let set = PolicySet {
        identity: std::slice::from_ref(&p),
        ..PolicySet::default()
    };
    let allowed = evaluate(&set, &request(ALICE, "s3:GetObject", "arn:aws:s3:::b/k"));
    assert_eq!(allowed.outcome, Outcome::Allow);
    assert_eq!(allowed.statement.unwrap().sid.as_deref(), Some("Read"));
    let req = request(ALICE, "s3:GetObject", "arn:aws:s3:::secrets/k");
    let denied = evaluate(&set, &req);
    assert_eq!(denied.outcome, Outcome::ExplicitDeny);
    assert_eq!(
        denied.statement.as_ref().unwrap().sid.as_deref(),
        Some("NoSecrets")
    );
    assert_eq!(
        denied.message(&req),
        "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::secrets/k with an explicit deny in an identity-based policy"
    );
}

#[test]
fn implicit_deny_message_names_the_policy_type() {
    let req = request(ALICE, "s3:GetObject", "arn:aws:s3:::b/k");
    let d = evaluate(&PolicySet::default(), &req);
    assert_eq!(
        d.message(&req),
        "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::b/k because no identity-based policy allows the s3:GetObject action"
    );
}

#[test]
fn explain_lists_every_applicable_statement() {
    let a = policy(
        PolicyKind::Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#,
    );
    let b = policy(
        PolicyKind::Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"Also","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
    );
    let identity = [a, b];
    let set = PolicySet {
        identity: &identity,
        ..PolicySet::default()
    };
    let (d, trace) =
        crate::authz::evaluate_explained(&set, &request(ALICE, "s3:GetObject", "arn:aws:s3:::b/k"));
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(trace.entries.len(), 2);
    assert_eq!(trace.entries[1].statement.sid.as_deref(), Some("Also"));
}

#[test]
fn root_user_has_full_access_in_its_account_but_not_past_scps() {
    let root = "arn:aws:iam::111122223333:root";
    let d = evaluate(
        &PolicySet::default(),
        &request(root, "s3:DeleteBucket", "arn:aws:s3:::b"),
    );
    assert_eq!(d.outcome, Outcome::Allow);
    let scp = policy(
        PolicyKind::Scp,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#,
    );
    let levels = [crate::authz::OrgLevel {
        name: "r-root".into(),
        policies: vec![scp],
    }];
    let set = PolicySet {
        scp: &levels,
        ..PolicySet::default()
    };
    let req = request(root, "s3:DeleteBucket", "arn:aws:s3:::b");
    let d = evaluate(&set, &req);
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
    assert_eq!(d.policy_type, Some(PolicyKind::Scp));
    assert!(d
        .message(&req)
        .ends_with("with an explicit deny in a service control policy"));
}

#[test]
fn anonymous_callers_need_a_public_resource_policy() {
    let public = policy(
        PolicyKind::Resource,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#,
    );
    let set = PolicySet {
        resource: Some(&public),
        ..PolicySet::default()
    };
    assert_eq!(
        evaluate(
            &set,
            &request("anonymous", "s3:GetObject", "arn:aws:s3:::site/index.html")
        )
        .outcome,
        Outcome::Allow
    );
    assert_eq!(
        evaluate(
            &set,
            &request("anonymous", "s3:PutObject", "arn:aws:s3:::site/index.html")
        )
        .outcome,
        Outcome::ImplicitDeny
    );
}

#[test]
fn federated_user_sessions_need_a_session_policy() {
    let admin = policy(
        PolicyKind::Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    );
    let identity = [admin];
    let set = PolicySet {
        identity: &identity,
        ..PolicySet::default()
    };
    let d = evaluate(
        &set,
        &request(
            "arn:aws:sts::111122223333:federated-user/bob",
            "s3:GetObject",
            "arn:aws:s3:::b/k",
        ),
    );
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
    assert_eq!(d.policy_type, Some(PolicyKind::Session));
}

#[test]
fn service_linked_roles_and_the_management_account_skip_scps() {
    let deny_all = policy(
        PolicyKind::Scp,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
    );
    let levels = [crate::authz::OrgLevel {
        name: "r".into(),
        policies: vec![deny_all],
    }];
    let admin = policy(
        PolicyKind::Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    );
    let identity = [admin];
    let set = PolicySet {
        identity: &identity,
        scp: &levels,
        ..PolicySet::default()
    };
    let req = request(ALICE, "s3:GetObject", "arn:aws:s3:::b/k");
    assert_eq!(evaluate(&set, &req).outcome, Outcome::ExplicitDeny);
    let slr = req.clone().with_environment(crate::authz::Environment {
        management_account: None,
        principal_is_service_linked_role: true,
    });
    assert_eq!(evaluate(&set, &slr).outcome, Outcome::Allow);
    let mgmt = req.with_environment(crate::authz::Environment {
        management_account: Some("111122223333".into()),
        principal_is_service_linked_role: false,
    });
    assert_eq!(evaluate(&set, &mgmt).outcome, Outcome::Allow);
}
