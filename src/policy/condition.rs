//! Condition operators: compiled policy values, typed request values, and the rules for
//! missing keys and multi-valued keys (IAM-SEMANTICS §2).
//!
//! | request key                     | plain operator | `IfExists` | `ForAllValues:` | `ForAnyValue:` |
//! |---------------------------------|----------------|------------|-----------------|----------------|
//! | missing (or an empty list)      | false; negated operators true | true | true (vacuous) | false |
//! | one value                       | compare        | compare    | compare the one | compare the one|
//! | several values                  | false (U3)     | false      | every value     | some value     |
//!
//! "Compare" is: positive operators match when the request value matches any policy value
//! (OR); negated operators when it matches none (NOR). A request value of the wrong type for
//! the operator (`NumericLessThan` on `abc`) matches no policy value. Decisions on the open
//! points: U3, a plain operator on a multi-valued key does not match; U4, `Bool` compares
//! `true`/`false` case-insensitively.
//!
//! `Null` under a set qualifier does not test presence at all: "When you use the Null
//! condition operator with ForAllValues, the statement always returns true … with
//! ForAnyValue, … always returns false" `[UG-live:access-analyzer-reference-policy-checks]`
//! (suggestion "Null with qualifier"). `ForAllValues:Null` is therefore always true and
//! `ForAnyValue:Null` always false, whatever the request carries.
//!
//! A policy value that cannot be read as its operator's type (`10.0.0.0/33` under
//! `NotIpAddress`, `abc` under `NumericNotEquals`, `yes` under `Bool`) makes the whole
//! condition false, negated operators, `IfExists` and set qualifiers included: otherwise a
//! negated operator would see "the request matches none of the (zero readable) values" and
//! grant to everyone. The parser refuses such values when a document is written
//! (`MalformedPolicyDocument`); this rule covers documents stored before it did
//! `[UG:reference_policies_elements_condition_operators]`: each operator's values are typed.
//!
//! `Bool` values may be policy variables (`${aws:PrincipalTag/mfa-exempt}`) in `2012-10-17`
//! documents: "You can use a policy variable with the Boolean condition operator"
//! `[UG-live:reference_policies_elements_condition_operators]` (the variables page says the
//! opposite; open point U4 decided for the operator page). The substituted text must read as
//! `true`/`false`, else the condition is false as above.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine as _;

use super::arn::{ArnParts, ArnPattern};
use super::date::{parse_policy_date, Timestamp};
use super::document::{
    BaseOperator, ConditionEntry, ConditionOperator, OperatorFamily, SetQualifier,
};
use super::pattern::{Glob, Syntax, VarLookup};

/// A decimal number with 18 fractional digits, exact for every integer IAM compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal(i128);

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A request context value with its typed readings, computed once when the request is built
/// so conditions never parse on the decision path.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextValue {
    raw: Box<str>,
    number: Option<Decimal>,
    date: Option<Timestamp>,
    ip: Option<IpAddr>,
    boolean: Option<bool>,
}

/// The values of one request key.
#[derive(Debug, Clone, Copy)]
pub enum KeyValues<'a> {
    /// A single-valued key.
    Single(&'a ContextValue),
    /// A multi-valued key (possibly empty).
    Multi(&'a [ContextValue]),
}

/// Where conditions read request values.
pub trait ConditionLookup: VarLookup {
    /// The values of `key` (lowercased), or `None` when the request does not carry it.
    fn values(&self, key: &str) -> Option<KeyValues<'_>>;
}

/// A compiled condition entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledCondition {
    operator: ConditionOperator,
    /// Some policy value cannot be read as the operator's type: the condition never holds.
    unreadable: bool,
    /// The key as written.
    key: Box<str>,
    /// The key lowercased, for lookups.
    key_lower: Box<str>,
    values: PolicyValues,
}

/// One `Bool` policy value.
#[derive(Debug, Clone, PartialEq)]
enum BoolValue {
    /// `true` / `false` (any case); `None` when the text is neither.
    Fixed(Option<bool>),
    /// A value with a policy variable, compiled lowercased for a case-insensitive reading.
    Variable(Glob),
}

#[derive(Debug, Clone, PartialEq)]
enum PolicyValues {
    /// `StringEquals`, `StringEqualsIgnoreCase` (literal patterns, possibly with variables)
    /// and `StringLike` (wildcard patterns).
    Strings(Box<[Glob]>),
    Numbers(Box<[Option<Decimal>]>),
    Dates(Box<[Option<Timestamp>]>),
    /// `Bool`: fixed values, or policy variables read when the condition is evaluated.
    Bools(Box<[BoolValue]>),
    Binary(Box<[Option<Box<[u8]>>]>),
    Networks(Box<[Option<Cidr>]>),
    Arns(Box<[Option<ArnPattern>]>),
    /// `Null`: `true` tests absence, `false` presence.
    Null(Box<[Option<bool>]>),
}

// === impl Decimal ===

impl Decimal {
    const SCALE: i128 = 1_000_000_000_000_000_000;

    /// Parses `[+-]digits[.digits]` with at most 18 fractional digits.
    pub fn parse(text: &str) -> Option<Self> {
        let (negative, digits) = match text.as_bytes().first()? {
            b'-' => (true, text.get(1..)?),
            b'+' => (false, text.get(1..)?),
            _ => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && fraction.is_empty())
            || fraction.len() > 18
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut value: i128 = 0;
        for b in whole.bytes() {
            value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        value = value.checked_mul(Self::SCALE)?;
        let mut scale = Self::SCALE;
        for b in fraction.bytes() {
            scale /= 10;
            value = value.checked_add(i128::from(b - b'0') * scale)?;
        }
        Some(Self(if negative { -value } else { value }))
    }

    /// The number `v`.
    pub fn from_i64(v: i64) -> Self {
        Self(i128::from(v) * Self::SCALE)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = Self::SCALE.unsigned_abs();
        let (whole, frac) = (abs / scale, abs % scale);
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let digits = format!("{frac:018}");
            write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

// === impl Cidr ===

impl Cidr {
    /// Parses `address/prefix` or a bare address (a /32 or /128 network).
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (addr, Some(prefix.parse::<u8>().ok()?))
            }
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr).ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Self {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// True when `addr` is inside the network. An IPv4-mapped IPv6 address is read as the
    /// IPv4 address it maps (open point: AWS does not document cross-family matching).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

// === impl ContextValue ===

impl ContextValue {
    /// A value given as text, read in every type a condition may ask for.
    pub fn new(raw: impl Into<Box<str>>) -> Self {
        let raw = raw.into();
        let boolean = if raw.eq_ignore_ascii_case("true") {
            Some(true)
        } else if raw.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        };
        Self {
            number: Decimal::parse(&raw),
            date: parse_policy_date(&raw),
            ip: IpAddr::from_str(&raw).ok(),
            boolean,
            raw,
        }
    }

    /// A boolean value (`true` / `false`).
    pub fn from_bool(v: bool) -> Self {
        Self::new(if v { "true" } else { "false" })
    }

    /// A date value, written as RFC 3339 for string operators.
    pub fn from_timestamp(t: Timestamp) -> Self {
        Self {
            raw: t.to_string().into(),
            number: None,
            date: Some(t),
            ip: None,
            boolean: None,
        }
    }

    /// An integer value.
    pub fn from_i64(v: i64) -> Self {
        Self::new(v.to_string())
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

// === impl CompiledCondition ===

impl CompiledCondition {
    /// Compiles one condition entry; `variables` is true for `2012-10-17` documents.
    pub(crate) fn compile(entry: &ConditionEntry, variables: bool) -> Self {
        let op = entry.operator;
        let texts = entry.values.iter().map(String::as_str);
        let values = match op.base.family() {
            OperatorFamily::String => {
                let wildcards = matches!(
                    op.base,
                    BaseOperator::StringLike | BaseOperator::StringNotLike
                );
                let lowercase = matches!(
                    op.base,
                    BaseOperator::StringEqualsIgnoreCase | BaseOperator::StringNotEqualsIgnoreCase
                );
                let syntax = Syntax {
                    wildcards,
                    variables,
                    lowercase,
                };
                PolicyValues::Strings(texts.map(|t| Glob::compile(t, syntax)).collect())
            }
            OperatorFamily::Numeric => PolicyValues::Numbers(texts.map(Decimal::parse).collect()),
            OperatorFamily::Date => PolicyValues::Dates(texts.map(parse_policy_date).collect()),
            OperatorFamily::Bool => PolicyValues::Bools(
                texts
                    .map(|t| {
                        let glob = Glob::compile(
                            t,
                            Syntax {
                                wildcards: false,
                                variables,
                                lowercase: true,
                            },
                        );
                        if glob.has_variables() {
                            BoolValue::Variable(glob)
                        } else {
                            BoolValue::Fixed(parse_bool(t))
                        }
                    })
                    .collect(),
            ),
            OperatorFamily::Binary => PolicyValues::Binary(
                texts
                    .map(|t| {
                        base64::engine::general_purpose::STANDARD
                            .decode(t)
                            .ok()
                            .map(Vec::into_boxed_slice)
                    })
                    .collect(),
            ),
            OperatorFamily::Ip => PolicyValues::Networks(texts.map(Cidr::parse).collect()),
            OperatorFamily::Arn => PolicyValues::Arns(
                texts
                    .map(|t| ArnPattern::compile(t, variables, false))
                    .collect(),
            ),
            OperatorFamily::Null => PolicyValues::Null(texts.map(parse_bool).collect()),
        };
        Self {
            operator: op,
            unreadable: values.has_unreadable(),
            key: entry.key.as_str().into(),
            key_lower: entry.key.to_lowercase().into(),
            values,
        }
    }

    /// The operator.
    pub fn operator(&self) -> ConditionOperator {
        self.operator
    }

    /// The condition key as written in the policy.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The condition key, lowercased.
    pub fn key_lower(&self) -> &str {
        &self.key_lower
    }

    /// The lowercased keys of the policy variables this condition reads.
    pub(crate) fn variable_keys(&self) -> Vec<Box<str>> {
        match &self.values {
            PolicyValues::Strings(globs) => globs.iter().flat_map(Glob::variable_keys).collect(),
            PolicyValues::Bools(values) => values
                .iter()
                .flat_map(|v| match v {
                    BoolValue::Variable(glob) => glob.variable_keys().collect(),
                    BoolValue::Fixed(_) => Vec::new(),
                })
                .collect(),
            PolicyValues::Arns(arns) => arns
                .iter()
                .flatten()
                .flat_map(|a| a.globs().flat_map(Glob::variable_keys).collect::<Vec<_>>())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Evaluates the condition against a request.
    pub fn evaluate(&self, ctx: &dyn ConditionLookup) -> bool {
        let op = self.operator;
        if self.unreadable {
            return false;
        }
        if let PolicyValues::Bools(ps) = &self.values {
            // A variable whose text is not a boolean (or that has no value) is unreadable too.
            if ps.iter().any(|p| p.resolve(ctx).is_none()) {
                return false;
            }
        }
        if let (PolicyValues::Null(_), Some(qualifier)) = (&self.values, op.qualifier) {
            // Access Analyzer's "Null with qualifier": the qualifier decides on its own.
            return qualifier == SetQualifier::ForAllValues;
        }
        let values = ctx.values(&self.key_lower);
        if let PolicyValues::Null(expected) = &self.values {
            let absent = match values {
                None => true,
                Some(KeyValues::Multi(list)) => list.is_empty(),
                Some(KeyValues::Single(_)) => false,
            };
            return expected.iter().flatten().any(|&want| want == absent);
        }
        let negated = op.base.is_negated();
        let test = |v: &ContextValue| self.any_policy_value_matches(v, ctx) != negated;
        match (op.qualifier, values) {
            (_, None) | (Some(_), Some(KeyValues::Multi([]))) => {
                op.if_exists
                    || match op.qualifier {
                        Some(SetQualifier::ForAllValues) => true,
                        Some(SetQualifier::ForAnyValue) => false,
                        None => negated,
                    }
            }
            (None, Some(KeyValues::Single(v))) => test(v),
            (None, Some(KeyValues::Multi(list))) => match list {
                [] => op.if_exists || negated,
                // U3: a plain operator on a multi-valued key does not match.
                _ => false,
            },
            (Some(_), Some(KeyValues::Single(v))) => test(v),
            (Some(SetQualifier::ForAllValues), Some(KeyValues::Multi(list))) => {
                list.iter().all(test)
            }
            (Some(SetQualifier::ForAnyValue), Some(KeyValues::Multi(list))) => {
                list.iter().any(test)
            }
        }
    }

    /// The base comparison: does the request value match at least one policy value?
    fn any_policy_value_matches(&self, v: &ContextValue, vars: &dyn VarLookup) -> bool {
        let base = self.operator.base;
        match &self.values {
            PolicyValues::Strings(globs) => {
                let fold = matches!(
                    base,
                    BaseOperator::StringEqualsIgnoreCase | BaseOperator::StringNotEqualsIgnoreCase
                );
                globs.iter().any(|g| g.matches_with(&v.raw, vars, fold))
            }
            PolicyValues::Numbers(ps) => v.number.is_some_and(|n| {
                ps.iter()
                    .flatten()
                    .any(|p| ordering_matches(base, n.cmp(p)))
            }),
            PolicyValues::Dates(ps) => v.date.is_some_and(|d| {
                ps.iter()
                    .flatten()
                    .any(|p| ordering_matches(base, d.cmp(p)))
            }),
            PolicyValues::Bools(ps) => v
                .boolean
                .is_some_and(|b| ps.iter().any(|p| p.resolve(vars) == Some(b))),
            PolicyValues::Binary(ps) => {
                // Rare operator: decoding here allocates, which keeps every other value lean.
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(v.raw.as_bytes())
                else {
                    return false;
                };
                ps.iter().flatten().any(|p| **p == *bytes)
            }
            PolicyValues::Networks(ps) => {
                v.ip.is_some_and(|ip| ps.iter().flatten().any(|c| c.contains(ip)))
            }
            PolicyValues::Arns(ps) => ArnParts::split(&v.raw)
                .is_some_and(|arn| ps.iter().flatten().any(|p| p.matches(&arn, vars))),
            PolicyValues::Null(_) => false,
        }
    }
}

// === impl BoolValue ===

impl BoolValue {
    /// The value, its variables substituted; `None` when it does not read as a boolean.
    fn resolve(&self, vars: &dyn VarLookup) -> Option<bool> {
        match self {
            Self::Fixed(b) => *b,
            // Compiled lowercased and compared case-insensitively: `True`, `FALSE` read too.
            Self::Variable(glob) => {
                if glob.matches_with("true", vars, true) {
                    Some(true)
                } else if glob.matches_with("false", vars, true) {
                    Some(false)
                } else {
                    None
                }
            }
        }
    }
}

// === impl PolicyValues ===

impl PolicyValues {
    /// True when some value cannot be read as the operator's type. Strings always read; an
    /// ARN pattern that is not ARN-shaped keeps its pre-existing reading (no match), as the
    /// typed values listed here are the ones the validator refuses.
    fn has_unreadable(&self) -> bool {
        match self {
            // `BinaryEquals` is never negated: an undecodable value can only fail to match.
            Self::Strings(_) | Self::Arns(_) | Self::Binary(_) => false,
            Self::Numbers(ps) => ps.iter().any(Option::is_none),
            Self::Dates(ps) => ps.iter().any(Option::is_none),
            Self::Bools(ps) => ps.iter().any(|p| matches!(p, BoolValue::Fixed(None))),
            Self::Networks(ps) => ps.iter().any(Option::is_none),
            Self::Null(ps) => ps.iter().any(Option::is_none),
        }
    }
}

/// Whether `request.cmp(policy)` satisfies a numeric or date operator. The negated `NotEquals`
/// operators test equality here; the caller negates.
fn ordering_matches(base: BaseOperator, ord: Ordering) -> bool {
    use BaseOperator as B;
    match base {
        B::NumericEquals | B::NumericNotEquals | B::DateEquals | B::DateNotEquals => ord.is_eq(),
        B::NumericLessThan | B::DateLessThan => ord.is_lt(),
        B::NumericLessThanEquals | B::DateLessThanEquals => ord.is_le(),
        B::NumericGreaterThan | B::DateGreaterThan => ord.is_gt(),
        B::NumericGreaterThanEquals | B::DateGreaterThanEquals => ord.is_ge(),
        _ => false,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
