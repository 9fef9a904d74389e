//! Minimized counterexamples: places where the engine and the reference model once disagreed,
//! on inputs outside the generated universe (which keeps to ASCII condition keys). Each runs
//! in every `cargo test`, so a divergence that comes back fails.

use super::model::{CtxEntry, Verdict};
use super::strategies::{GenRequest, Parsed};

/// alice asks for `s3:GetObject` on `*` with one single-valued context key.
fn request(key: &str, value: &str) -> GenRequest {
    GenRequest {
        caller: "arn:aws:iam::111122223333:user/alice",
        action: "s3:GetObject",
        resource: "arn:aws:s3:::bucket-a/blue",
        resource_account: None,
        context: vec![(
            key.to_owned(),
            CtxEntry {
                multi: false,
                values: vec![value.to_owned()],
            },
        )],
    }
}

/// Condition key names are case-insensitive, the tag-key part of `aws:PrincipalTag/K`
/// included (IAM-SEMANTICS §2.1), and IAM tag keys may hold any Unicode letter: the engine
/// folds keys with Unicode lowercasing (`Context::insert*` in `authz/context.rs`,
/// `CompiledCondition::compile` in `policy/condition.rs`), so `Équipe` and `équipe` are one
/// key.
#[test]
fn condition_key_case_folds_non_ascii_letters() {
    let parsed = Parsed::identity(&[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":"s3:GetObject","Resource":"*",
        "Condition":{"StringEquals":{"aws:PrincipalTag/Équipe":"blue"}}}]}"#]);
    let request = request("aws:PrincipalTag/équipe", "blue");
    assert_eq!(parsed.reference(&request), Verdict::Allow);
    assert_eq!(parsed.engine(&request), Verdict::Allow);
}

/// The same for a policy variable's key (`parse_variable` in `policy/pattern.rs`): the
/// variable resolves to the tag's value whatever the case of its key.
#[test]
fn variable_key_case_folds_non_ascii_letters() {
    let parsed = Parsed::identity(&[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket-a/${aws:PrincipalTag/Équipe}"}]}"#]);
    let request = request("aws:PrincipalTag/équipe", "blue");
    assert_eq!(parsed.reference(&request), Verdict::Allow);
    assert_eq!(parsed.engine(&request), Verdict::Allow);
}

/// The ASCII twin of the tests above passes: keys differing in ASCII case are one key.
#[test]
fn condition_and_variable_keys_fold_ascii_case() {
    let parsed = Parsed::identity(&[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket-a/${aws:PrincipalTag/TEAM}",
        "Condition":{"StringEquals":{"aws:PrincipalTag/Team":"blue"}}}]}"#]);
    let request = request("AWS:principaltag/team", "blue");
    assert_eq!(parsed.reference(&request), Verdict::Allow);
    assert_eq!(parsed.engine(&request), Verdict::Allow);
}

/// Issue 12's reproductions, decided by both evaluators.
fn alice_asks(
    action: &'static str,
    resource: &'static str,
    context: Vec<(String, CtxEntry)>,
) -> GenRequest {
    GenRequest {
        caller: "arn:aws:iam::111122223333:user/alice",
        action,
        resource,
        resource_account: Some("111122223333"),
        context,
    }
}

/// Rule 1: `ForAnyValue:Null` is always false, so the allow never applies.
#[test]
fn for_any_value_null_never_holds() {
    let parsed = Parsed::identity(&[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":"s3:GetObject","Resource":"*",
        "Condition":{"ForAnyValue:Null":{"aws:TagKeys":"true"}}}]}"#]);
    for context in [
        Vec::new(),
        vec![(
            "aws:TagKeys".to_owned(),
            CtxEntry {
                multi: true,
                values: vec!["a".to_owned()],
            },
        )],
    ] {
        let request = alice_asks("s3:GetObject", "arn:aws:s3:::bucket-a/key", context);
        assert_eq!(parsed.reference(&request), Verdict::ImplicitDeny);
        assert_eq!(parsed.engine(&request), Verdict::ImplicitDeny);
    }
}

/// Rule 2: an identity policy alone never grants on a KMS key.
#[test]
fn kms_key_without_key_policy_is_implicitly_denied() {
    let parsed = Parsed::identity(&[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":"kms:Decrypt","Resource":"*"}]}"#]);
    let key = alice_asks(
        "kms:Decrypt",
        "arn:aws:kms:us-east-1:111122223333:key/k1",
        Vec::new(),
    );
    assert_eq!(parsed.reference(&key), Verdict::ImplicitDeny);
    assert_eq!(parsed.engine(&key), Verdict::ImplicitDeny);
    let alias = alice_asks(
        "kms:Decrypt",
        "arn:aws:kms:us-east-1:111122223333:alias/a1",
        Vec::new(),
    );
    assert_eq!(parsed.reference(&alias), Verdict::Allow);
    assert_eq!(parsed.engine(&alias), Verdict::Allow);
}
