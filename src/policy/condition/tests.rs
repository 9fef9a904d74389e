use std::collections::HashMap;

use super::*;
use crate::policy::document::ConditionEntry;

#[derive(Default)]
struct Ctx(HashMap<String, Vec<ContextValue>>, HashMap<String, bool>);

impl Ctx {
    fn single(mut self, key: &str, value: &str) -> Self {
        self.0
            .insert(key.to_ascii_lowercase(), vec![ContextValue::new(value)]);
        self.1.insert(key.to_ascii_lowercase(), false);
        self
    }
    fn multi(mut self, key: &str, values: &[&str]) -> Self {
        self.0.insert(
            key.to_ascii_lowercase(),
            values.iter().map(|v| ContextValue::new(*v)).collect(),
        );
        self.1.insert(key.to_ascii_lowercase(), true);
        self
    }
}

impl VarLookup for Ctx {
    fn lookup(&self, key: &str) -> Option<&str> {
        match (self.0.get(key), self.1.get(key)) {
            (Some(v), Some(false)) => v.first().map(ContextValue::as_str),
            _ => None,
        }
    }
}

impl ConditionLookup for Ctx {
    fn values(&self, key: &str) -> Option<KeyValues<'_>> {
        let values = self.0.get(key)?;
        Some(if self.1.get(key) == Some(&true) {
            KeyValues::Multi(values)
        } else {
            KeyValues::Single(values.first()?)
        })
    }
}

fn cond(op: &str, key: &str, values: &[&str]) -> CompiledCondition {
    CompiledCondition::compile(
        &ConditionEntry {
            operator: ConditionOperator::parse(op).unwrap(),
            key: key.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        },
        true,
    )
}

#[test]
fn missing_keys() {
    let empty = Ctx::default();
    assert!(!cond("StringEquals", "k", &["a"]).evaluate(&empty));
    assert!(cond("StringNotEquals", "k", &["a"]).evaluate(&empty));
    assert!(cond("StringEqualsIfExists", "k", &["a"]).evaluate(&empty));
    assert!(cond("ForAllValues:StringEquals", "k", &["a"]).evaluate(&empty));
    assert!(!cond("ForAnyValue:StringEquals", "k", &["a"]).evaluate(&empty));
    assert!(cond("NotIpAddress", "aws:SourceIp", &["10.0.0.0/8"]).evaluate(&empty));
    assert!(!cond("IpAddress", "aws:SourceIp", &["10.0.0.0/8"]).evaluate(&empty));
    assert!(cond("Null", "k", &["true"]).evaluate(&empty));
    assert!(!cond("Null", "k", &["false"]).evaluate(&empty));
}

#[test]
fn negated_operators_are_nor() {
    let c = cond(
        "StringNotEquals",
        "aws:PrincipalAccount",
        &["111122223333", "444455556666"],
    );
    assert!(!c.evaluate(&Ctx::default().single("aws:PrincipalAccount", "111122223333")));
    assert!(!c.evaluate(&Ctx::default().single("aws:PrincipalAccount", "444455556666")));
    assert!(c.evaluate(&Ctx::default().single("aws:PrincipalAccount", "999988887777")));
}

#[test]
fn set_operators() {
    let all = cond(
        "ForAllValues:StringEquals",
        "aws:TagKeys",
        &["Project", "Team"],
    );
    assert!(all.evaluate(&Ctx::default().multi("aws:TagKeys", &["Project"])));
    assert!(!all.evaluate(&Ctx::default().multi("aws:TagKeys", &["Project", "Owner"])));
    assert!(all.evaluate(&Ctx::default().multi("aws:TagKeys", &[])));
    let any = cond(
        "ForAnyValue:StringEquals",
        "aws:TagKeys",
        &["Project", "Team"],
    );
    assert!(any.evaluate(&Ctx::default().multi("aws:TagKeys", &["Owner", "Team"])));
    assert!(!any.evaluate(&Ctx::default().multi("aws:TagKeys", &["Owner"])));
    let not_like = cond("ForAllValues:StringNotLike", "aws:TagKeys", &["key1*"]);
    assert!(!not_like.evaluate(&Ctx::default().multi("aws:TagKeys", &["key1:legal"])));
    assert!(not_like.evaluate(&Ctx::default().multi("aws:TagKeys", &["key2:audit"])));
    // U3: a plain operator on a multi-valued key does not match.
    let plain = cond("StringEquals", "aws:TagKeys", &["Project"]);
    assert!(!plain.evaluate(&Ctx::default().multi("aws:TagKeys", &["Project"])));
}

#[test]
fn typed_comparisons() {
    let n = cond("NumericLessThan", "s3:max-keys", &["10"]);
    assert!(n.evaluate(&Ctx::default().single("s3:max-keys", "9.5")));
    assert!(!n.evaluate(&Ctx::default().single("s3:max-keys", "10")));
    assert!(!n.evaluate(&Ctx::default().single("s3:max-keys", "ten")));
    let ne = cond("NumericNotEquals", "s3:max-keys", &["10"]);
    assert!(ne.evaluate(&Ctx::default().single("s3:max-keys", "ten")));
    let d = cond(
        "DateLessThan",
        "aws:TokenIssueTime",
        &["2025-01-01T00:00:00Z"],
    );
    assert!(d.evaluate(&Ctx::default().single("aws:TokenIssueTime", "2024-12-31T23:59:59Z")));
    assert!(!d.evaluate(&Ctx::default().single("aws:TokenIssueTime", "2025-01-01T00:00:01Z")));
    let epoch = cond(
        "DateGreaterThan",
        "aws:EpochTime",
        &["2025-01-01T00:00:00Z"],
    );
    assert!(epoch.evaluate(&Ctx::default().single("aws:EpochTime", "1735689601")));
    let b = cond("Bool", "aws:SecureTransport", &["True"]);
    assert!(b.evaluate(&Ctx::default().single("aws:SecureTransport", "true")));
    assert!(!b.evaluate(&Ctx::default().single("aws:SecureTransport", "false")));
    let ip = cond(
        "IpAddress",
        "aws:SourceIp",
        &["203.0.113.0/24", "2001:db8::/32"],
    );
    assert!(ip.evaluate(&Ctx::default().single("aws:SourceIp", "203.0.113.77")));
    assert!(!ip.evaluate(&Ctx::default().single("aws:SourceIp", "198.51.100.1")));
    assert!(ip.evaluate(&Ctx::default().single("aws:SourceIp", "2001:db8::1")));
    assert!(ip.evaluate(&Ctx::default().single("aws:SourceIp", "::ffff:203.0.113.9")));
    let bin = cond("BinaryEquals", "k", &["aGVsbG8="]);
    assert!(bin.evaluate(&Ctx::default().single("k", "aGVsbG8=")));
    assert!(!bin.evaluate(&Ctx::default().single("k", "aGVsbG9=")));
}

#[test]
fn string_operators_and_case() {
    let eq = cond(
        "StringEquals",
        "aws:PrincipalTag/Department",
        &["hr", "legal"],
    );
    assert!(eq.evaluate(&Ctx::default().single("aws:principaltag/department", "legal")));
    assert!(!eq.evaluate(&Ctx::default().single("aws:principaltag/department", "HR")));
    let ic = cond("StringEqualsIgnoreCase", "k", &["HR"]);
    assert!(ic.evaluate(&Ctx::default().single("k", "hr")));
    let like = cond("StringLike", "s3:prefix", &["home/${aws:username}/*"]);
    let ctx = Ctx::default()
        .single("s3:prefix", "home/alice/x")
        .single("aws:username", "alice");
    assert!(like.evaluate(&ctx));
    let literal_star = cond("StringEquals", "k", &["a*"]);
    assert!(literal_star.evaluate(&Ctx::default().single("k", "a*")));
    assert!(!literal_star.evaluate(&Ctx::default().single("k", "ab")));
}

#[test]
fn unresolved_variable_in_negated_condition_matches() {
    // IAM-SEMANTICS §6.2 T11 / U17: follow the documentation.
    let c = cond(
        "StringNotEquals",
        "s3:ExistingObjectTag/Team",
        &["${aws:PrincipalTag/Team}"],
    );
    assert!(c.evaluate(&Ctx::default().single("s3:ExistingObjectTag/Team", "x")));
    let ctx = Ctx::default()
        .single("s3:ExistingObjectTag/Team", "x")
        .single("aws:PrincipalTag/Team", "x");
    assert!(!c.evaluate(&ctx));
}

#[test]
fn arn_operators() {
    let c = cond(
        "ArnLike",
        "aws:SourceArn",
        &["arn:aws:someservice:*:111122223333:finance/*"],
    );
    let v =
        "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt";
    assert!(!c.evaluate(&Ctx::default().single("aws:SourceArn", v)));
    let s = cond(
        "StringLike",
        "aws:SourceArn",
        &["arn:aws:someservice:*:111122223333:finance/*"],
    );
    assert!(s.evaluate(&Ctx::default().single("aws:SourceArn", v)));
    let not = cond(
        "ArnNotEquals",
        "aws:PrincipalArn",
        &["arn:aws:iam::111122223333:role/R"],
    );
    assert!(not
        .evaluate(&Ctx::default().single("aws:PrincipalArn", "arn:aws:iam::111122223333:role/Q")));
    assert!(!not
        .evaluate(&Ctx::default().single("aws:PrincipalArn", "arn:aws:iam::111122223333:role/R")));
}

#[test]
fn decimals_and_networks_parse_exactly() {
    assert_eq!(
        Decimal::parse("9223372036854775807").unwrap().to_string(),
        "9223372036854775807"
    );
    assert_eq!(Decimal::parse("-1.50").unwrap().to_string(), "-1.5");
    assert!(Decimal::parse("1e5").is_none());
    assert!(Decimal::parse(".").is_none());
    assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    assert!(Cidr::parse("10.0.0.0/33").is_none());
    assert_eq!(
        Cidr::parse("2001:db8::1").unwrap().to_string(),
        "2001:db8::1/128"
    );
}

/// Issue 12, rule 1: "When you use the Null condition operator with ForAllValues, the
/// statement always returns true … with ForAnyValue, … always returns false" (Access Analyzer
/// policy checks, "Null with qualifier").
#[test]
fn null_under_a_set_qualifier_ignores_the_request() {
    let contexts = [
        Ctx::default(),
        Ctx::default().multi("aws:TagKeys", &[]),
        Ctx::default().multi("aws:TagKeys", &["a", "b"]),
        Ctx::default().single("aws:TagKeys", "a"),
    ];
    for value in ["true", "false"] {
        let all = cond("ForAllValues:Null", "aws:TagKeys", &[value]);
        let any = cond("ForAnyValue:Null", "aws:TagKeys", &[value]);
        for ctx in &contexts {
            assert!(all.evaluate(ctx), "ForAllValues:Null {value}");
            assert!(!any.evaluate(ctx), "ForAnyValue:Null {value}");
        }
    }
    // The plain operator still tests presence.
    assert!(cond("Null", "aws:TagKeys", &["true"]).evaluate(&contexts[0]));
    assert!(!cond("Null", "aws:TagKeys", &["true"]).evaluate(&contexts[2]));
}

/// Issue 12, rule 5: a stored value that cannot be read never makes its condition hold, for
/// negated operators, `IfExists`, set qualifiers and missing keys alike.
#[test]
fn unreadable_policy_values_never_match() {
    let requests = [
        Ctx::default(),
        Ctx::default().single("k", "10.1.2.3"),
        Ctx::default().single("k", "5"),
        Ctx::default().single("k", "2020-01-01T00:00:00Z"),
        Ctx::default().single("k", "true"),
        Ctx::default().single("k", "false"),
        Ctx::default().multi("k", &[]),
        Ctx::default().multi("k", &["1", "true"]),
    ];
    let conditions = [
        cond("NotIpAddress", "k", &["10.0.0.0/33"]),
        cond("NotIpAddressIfExists", "k", &["10.0.0.0/8", "10.0.0.0/33"]),
        cond("IpAddress", "k", &["10.0.0.0/8", "bad"]),
        cond("NumericNotEquals", "k", &["abc"]),
        cond("ForAllValues:NumericNotEquals", "k", &["abc"]),
        cond("NumericLessThanIfExists", "k", &["abc"]),
        cond("DateNotEquals", "k", &["someday"]),
        cond("Bool", "k", &["yes"]),
        cond("BoolIfExists", "k", &["yes"]),
        cond("ForAllValues:Bool", "k", &["1"]),
        cond("Null", "k", &["yes"]),
    ];
    for c in &conditions {
        for (i, ctx) in requests.iter().enumerate() {
            assert!(!c.evaluate(ctx), "{} matched request {i}", c.operator());
        }
    }
}

/// Issue 12, rule 7: `Bool` substitutes policy variables ("You can use a policy variable with
/// the Boolean condition operator").
#[test]
fn bool_substitutes_policy_variables() {
    let c = cond(
        "Bool",
        "aws:SecureTransport",
        &["${aws:PrincipalTag/secure}"],
    );
    let ctx = |tag: Option<&str>, value: &str| {
        let ctx = Ctx::default().single("aws:SecureTransport", value);
        match tag {
            Some(t) => ctx.single("aws:PrincipalTag/secure", t),
            None => ctx,
        }
    };
    assert!(c.evaluate(&ctx(Some("true"), "true")));
    assert!(c.evaluate(&ctx(Some("FALSE"), "false")));
    assert!(!c.evaluate(&ctx(Some("true"), "false")));
    assert!(!c.evaluate(&ctx(Some("false"), "true")));
    // A value that is no boolean, or no value at all: the condition does not hold.
    assert!(!c.evaluate(&ctx(Some("yes"), "true")));
    assert!(!c.evaluate(&ctx(None, "true")));
    assert!(!c.evaluate(&ctx(None, "false")));
    // A default applies when the key is missing.
    let d = cond(
        "Bool",
        "aws:SecureTransport",
        &["${aws:PrincipalTag/secure, 'true'}"],
    );
    assert!(d.evaluate(&ctx(None, "true")));
    assert!(!d.evaluate(&ctx(None, "false")));
    // The variable's key is one the policy reads (decision caches key on it).
    assert_eq!(
        c.variable_keys(),
        vec![Box::<str>::from("aws:principaltag/secure")]
    );
    // Without variables (a legacy document), the text is literal and unreadable.
    let literal = CompiledCondition::compile(
        &ConditionEntry {
            operator: ConditionOperator::parse("Bool").unwrap(),
            key: "aws:SecureTransport".into(),
            values: vec!["${aws:PrincipalTag/secure}".into()],
        },
        false,
    );
    assert!(!literal.evaluate(&ctx(Some("true"), "true")));
}
