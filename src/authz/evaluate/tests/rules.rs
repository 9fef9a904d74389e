//! The rules that decide beside the policies: a KMS key needs its key policy, and
//! `sts:GetCallerIdentity` needs no permission.

use super::{policy, request};
use crate::authz::{evaluate, evaluate_explained, Outcome, PolicySet, Rule};
use crate::policy::{Effect, PolicyKind};

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const CAROL: &str = "arn:aws:iam::444455556666:user/carol";
const SESSION: &str = "arn:aws:sts::111122223333:assumed-role/ops/laptop";
const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/0000aaaa-1111-2222-3333-444455556666";
const ALIAS: &str = "arn:aws:kms:eu-west-1:111122223333:alias/app";

fn allow_kms(resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:*","Resource":"{resource}"}}]}}"#
    )
}

/// AWS's default key policy: the account root as principal, `kms:*`.
fn default_key_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

#[test]
fn a_kms_key_without_a_key_policy_allows_nobody() {
    let identity = policy(PolicyKind::Identity, &allow_kms("*"));
    let set = PolicySet {
        identity: std::slice::from_ref(&identity),
        ..PolicySet::default()
    };
    let req = request(ALICE, "kms:Decrypt", KEY);
    let d = evaluate(&set, &req);
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
    assert_eq!(d.policy_type, Some(PolicyKind::Resource));
    assert_eq!(d.rule, Some(Rule::KeyPolicyRequired));
    assert!(
        d.message(&req)
            .ends_with("because no resource-based policy allows the kms:Decrypt action"),
        "{}",
        d.message(&req)
    );
    let (explained, trace) = evaluate_explained(&set, &req);
    assert_eq!(explained, d);
    assert_eq!(trace.rule, Some(Rule::KeyPolicyRequired));
    // The identity statement applied; the rule is why it was not enough.
    assert_eq!(trace.entries.len(), 1);
}

#[test]
fn the_rule_spares_aliases_star_resources_and_other_services() {
    let identity = policy(PolicyKind::Identity, &allow_kms("*"));
    let set = PolicySet {
        identity: std::slice::from_ref(&identity),
        ..PolicySet::default()
    };
    for (action, resource) in [
        ("kms:Decrypt", ALIAS),
        ("kms:CreateKey", "*"),
        ("kms:ListKeys", "*"),
    ] {
        let d = evaluate(&set, &request(ALICE, action, resource));
        assert_eq!(d.outcome, Outcome::Allow, "{action} on {resource}");
        assert_eq!(d.rule, None);
    }
    // Upper-case head: the ARN's partition, service, region and account are case-insensitive.
    let upper = KEY.replacen("arn:aws:kms", "ARN:AWS:KMS", 1);
    let d = evaluate(&set, &request(ALICE, "KMS:Decrypt", &upper));
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
}

#[test]
fn the_default_key_policy_delegates_to_iam() {
    let key_policy = policy(PolicyKind::Resource, &default_key_policy("111122223333"));
    let identity = policy(PolicyKind::Identity, &allow_kms(KEY));
    let with_identity = PolicySet {
        identity: std::slice::from_ref(&identity),
        resource: Some(&key_policy),
        ..PolicySet::default()
    };
    let d = evaluate(&with_identity, &request(ALICE, "kms:Decrypt", KEY));
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.rule, None);
    // Delegation grants nothing by itself.
    let alone = PolicySet {
        resource: Some(&key_policy),
        ..PolicySet::default()
    };
    let d = evaluate(&alone, &request(ALICE, "kms:Decrypt", KEY));
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
    assert_eq!(d.policy_type, Some(PolicyKind::Identity));
    // Another account's caller: the key policy names only the key's own account.
    let carol = policy(PolicyKind::Identity, &allow_kms("*"));
    let cross = PolicySet {
        identity: std::slice::from_ref(&carol),
        resource: Some(&key_policy),
        ..PolicySet::default()
    };
    let d = evaluate(&cross, &request(CAROL, "kms:Decrypt", KEY));
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
    assert_eq!(d.policy_type, Some(PolicyKind::Resource));
}

#[test]
fn a_key_policy_naming_the_caller_grants_on_its_own() {
    let key_policy = policy(
        PolicyKind::Resource,
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ALICE}"}},"Action":"kms:Decrypt","Resource":"*"}}]}}"#
        ),
    );
    let set = PolicySet {
        resource: Some(&key_policy),
        ..PolicySet::default()
    };
    assert_eq!(
        evaluate(&set, &request(ALICE, "kms:Decrypt", KEY)).outcome,
        Outcome::Allow
    );
}

#[test]
fn get_caller_identity_is_allowed_under_any_deny() {
    let deny = policy(
        PolicyKind::Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoSts","Effect":"Deny","Action":"sts:*","Resource":"*"}]}"#,
    );
    let scp_deny = policy(
        PolicyKind::Scp,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
    );
    let levels = [crate::authz::OrgLevel {
        name: "r-root".into(),
        policies: vec![scp_deny],
    }];
    let set = PolicySet {
        identity: std::slice::from_ref(&deny),
        scp: &levels,
        ..PolicySet::default()
    };
    for principal in [SESSION, ALICE] {
        let req = request(principal, "sts:GetCallerIdentity", "*");
        let d = evaluate(&set, &req);
        assert_eq!(d.outcome, Outcome::Allow, "{principal}");
        assert_eq!(d.rule, Some(Rule::NoPermissionRequired));
        assert!(
            d.message(&req)
                .contains("because sts:GetCallerIdentity requires no permission"),
            "{}",
            d.message(&req)
        );
        let (explained, trace) = evaluate_explained(&set, &req);
        assert_eq!(explained, d);
        assert_eq!(trace.rule, Some(Rule::NoPermissionRequired));
        // The denies that applied are listed: they are what the rule overrode.
        assert!(trace.entries.iter().any(|e| e.effect == Effect::Deny));
    }
    // Without any policy too, and in any case.
    let d = evaluate(
        &PolicySet::default(),
        &request(ALICE, "STS:getcalleridentity", "*"),
    );
    assert_eq!(d.outcome, Outcome::Allow);
    // Other STS actions are still decided by the policies.
    let d = evaluate(&set, &request(ALICE, "sts:GetSessionToken", "*"));
    assert_eq!(d.outcome, Outcome::ExplicitDeny);
    // A caller without credentials is decided by the policies as before.
    let anonymous = crate::authz::Request::try_new(
        crate::authz::Principal::Anonymous,
        "sts:GetCallerIdentity",
        "*",
    )
    .unwrap();
    assert_eq!(
        evaluate(&PolicySet::default(), &anonymous).outcome,
        Outcome::ImplicitDeny
    );
}
