//! The policy document model: AWS's JSON policy language as typed values.
//!
//! A [`PolicyDocument`] is what the parser produces after every grammar and per-kind rule has
//! passed; it is still uncompiled text (patterns are strings). [`crate::policy::CompiledPolicy`]
//! turns it into matchers.

use std::fmt;

/// A parsed and validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// The language version.
    pub version: PolicyVersion,
    /// The optional `Id` element.
    pub id: Option<String>,
    /// The statements, in document order (order never changes a decision).
    pub statements: Vec<Statement>,
}

/// The `Version` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    /// `2012-10-17`: the current language, with policy variables.
    Current,
    /// `2008-10-17`: the legacy language, where `${...}` is literal text.
    Legacy,
    /// No `Version` element: treated as the legacy language, as AWS does.
    Unspecified,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The `Sid` element, if present.
    pub sid: Option<String>,
    /// `Allow` or `Deny`.
    pub effect: Effect,
    /// `Principal` or `NotPrincipal` (resource, trust, RCP and VPC endpoint policies).
    pub principal: Option<PrincipalBlock>,
    /// `Action` or `NotAction`.
    pub action: ActionBlock,
    /// `Resource` or `NotResource`; absent only in trust policies.
    pub resource: Option<ResourceBlock>,
    /// The `Condition` block, flattened to one entry per (operator, key).
    pub conditions: Vec<ConditionEntry>,
}

/// A statement's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Grants the matching requests.
    Allow,
    /// Denies the matching requests, overriding any allow.
    Deny,
}

/// The `Principal` or `NotPrincipal` element.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalBlock {
    /// True for `NotPrincipal`.
    pub negated: bool,
    /// The principals named.
    pub principals: PrincipalSpec,
}

/// What a `Principal` element names.
#[derive(Debug, Clone, PartialEq)]
pub enum PrincipalSpec {
    /// `"Principal": "*"`: everyone, anonymous callers included.
    Everyone,
    /// `{"AWS": [...], "Service": [...], ...}`.
    Map(Vec<(PrincipalType, Vec<String>)>),
}

/// The key of a principal map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    /// `AWS`: accounts, users, roles, sessions, unique ids, or `*`.
    Aws,
    /// `Service`: AWS service principals such as `ec2.amazonaws.com`.
    Service,
    /// `Federated`: OIDC or SAML providers and the built-in web identity providers.
    Federated,
    /// `CanonicalUser`: S3 canonical user ids.
    CanonicalUser,
}

/// The `Action` or `NotAction` element.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionBlock {
    /// True for `NotAction`.
    pub negated: bool,
    /// The action patterns (`s3:Get*`, `*`).
    pub patterns: Vec<String>,
}

/// The `Resource` or `NotResource` element.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceBlock {
    /// True for `NotResource`.
    pub negated: bool,
    /// The resource patterns (`arn:aws:s3:::bucket/*`, `*`).
    pub patterns: Vec<String>,
}

/// One (operator, key, values) entry of a `Condition` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionEntry {
    /// The operator with its qualifiers.
    pub operator: ConditionOperator,
    /// The condition key as written (matched case-insensitively).
    pub key: String,
    /// The values; scalars written as JSON numbers or booleans are kept as their text.
    pub values: Vec<String>,
}

/// A condition operator such as `ForAnyValue:StringLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConditionOperator {
    /// `ForAllValues:` or `ForAnyValue:`.
    pub qualifier: Option<SetQualifier>,
    /// The base operator.
    pub base: BaseOperator,
    /// The `IfExists` suffix.
    pub if_exists: bool,
}

/// The set qualifiers of multi-valued conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetQualifier {
    /// `ForAllValues:`: every request value must match (vacuously true when there is none).
    ForAllValues,
    /// `ForAnyValue:`: at least one request value must match.
    ForAnyValue,
}

/// The family of a base operator, which decides how values are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorFamily {
    /// String comparisons.
    String,
    /// Integer or decimal comparisons.
    Numeric,
    /// Date comparisons (ISO 8601 or epoch seconds).
    Date,
    /// `Bool`.
    Bool,
    /// `BinaryEquals`.
    Binary,
    /// `IpAddress` / `NotIpAddress`.
    Ip,
    /// ARN comparisons, segment by segment.
    Arn,
    /// `Null`: tests whether a key is present.
    Null,
}

macro_rules! base_operators {
    ($($variant:ident => $family:ident, $negated:expr;)*) => {
        /// A condition operator without qualifiers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum BaseOperator {
            $(
                #[doc = concat!("`", stringify!($variant), "`")]
                $variant,
            )*
        }

        impl BaseOperator {
            /// Every operator, in AWS's documentation order.
            pub const ALL: &'static [BaseOperator] = &[$(BaseOperator::$variant,)*];

            /// The operator's name as written in policies.
            pub fn name(self) -> &'static str {
                match self { $(BaseOperator::$variant => stringify!($variant),)* }
            }

            /// The operator's family.
            pub fn family(self) -> OperatorFamily {
                match self { $(BaseOperator::$variant => OperatorFamily::$family,)* }
            }

            /// True for the negated operators (`StringNotEquals`, `NotIpAddress`, ...), whose
            /// multiple values combine as NOR and which are true when the key is missing.
            pub fn is_negated(self) -> bool {
                match self { $(BaseOperator::$variant => $negated,)* }
            }

            /// Looks an operator up by name, in any case (see [`ConditionOperator::parse`]).
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|op| op.name().eq_ignore_ascii_case(name))
            }
        }
    };
}

base_operators! {
    StringEquals => String, false;
    StringNotEquals => String, true;
    StringEqualsIgnoreCase => String, false;
    StringNotEqualsIgnoreCase => String, true;
    StringLike => String, false;
    StringNotLike => String, true;
    NumericEquals => Numeric, false;
    NumericNotEquals => Numeric, true;
    NumericLessThan => Numeric, false;
    NumericLessThanEquals => Numeric, false;
    NumericGreaterThan => Numeric, false;
    NumericGreaterThanEquals => Numeric, false;
    DateEquals => Date, false;
    DateNotEquals => Date, true;
    DateLessThan => Date, false;
    DateLessThanEquals => Date, false;
    DateGreaterThan => Date, false;
    DateGreaterThanEquals => Date, false;
    Bool => Bool, false;
    BinaryEquals => Binary, false;
    IpAddress => Ip, false;
    NotIpAddress => Ip, true;
    ArnEquals => Arn, false;
    ArnLike => Arn, false;
    ArnNotEquals => Arn, true;
    ArnNotLike => Arn, true;
    Null => Null, false;
}

// === impl PolicyVersion ===

impl PolicyVersion {
    /// True when `${...}` policy variables are substituted (only in `2012-10-17`).
    pub fn supports_variables(self) -> bool {
        matches!(self, Self::Current)
    }

    /// The version string, or `None` when the element was absent.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Current => Some("2012-10-17"),
            Self::Legacy => Some("2008-10-17"),
            Self::Unspecified => None,
        }
    }
}

// === impl Effect ===

impl Effect {
    /// `Allow` or `Deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::Deny => "Deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl PrincipalType ===

impl PrincipalType {
    /// The key as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "AWS",
            Self::Service => "Service",
            Self::Federated => "Federated",
            Self::CanonicalUser => "CanonicalUser",
        }
    }

    /// Looks a principal key up by its exact name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AWS" => Some(Self::Aws),
            "Service" => Some(Self::Service),
            "Federated" => Some(Self::Federated),
            "CanonicalUser" => Some(Self::CanonicalUser),
            _ => None,
        }
    }
}

// === impl ConditionOperator ===

impl ConditionOperator {
    /// Parses an operator name such as `ForAnyValue:StringLikeIfExists`.
    ///
    /// Open point U14, decided: names are read case-insensitively. AWS's own published
    /// resource control policy `STS-protect-IAMRA-session-tags.json` (aws-samples) writes
    /// `ForAnyValue:Stringlike`, and cloud-copilot/iam-simulate reads names the same way.
    /// `IfExists` is not accepted on `Null`, which already tests for presence.
    pub fn parse(name: &str) -> Option<Self> {
        let (qualifier, rest) = if let Some(rest) = strip_prefix_ignore_case(name, "ForAllValues:")
        {
            (Some(SetQualifier::ForAllValues), rest)
        } else if let Some(rest) = strip_prefix_ignore_case(name, "ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else {
            (None, name)
        };
        let (base, if_exists) = match strip_suffix_ignore_case(rest, "IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let base = BaseOperator::from_name(base)?;
        if if_exists && base == BaseOperator::Null {
            return None;
        }
        Some(Self {
            qualifier,
            base,
            if_exists,
        })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(suffix.len())?;
    let tail = text.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix)
        .then(|| text.get(..cut))
        .flatten()
}

impl fmt::Display for ConditionOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.qualifier {
            Some(SetQualifier::ForAllValues) => f.write_str("ForAllValues:")?,
            Some(SetQualifier::ForAnyValue) => f.write_str("ForAnyValue:")?,
            None => {}
        }
        f.write_str(self.base.name())?;
        if self.if_exists {
            f.write_str("IfExists")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_round_trip() {
        for base in BaseOperator::ALL {
            let op = ConditionOperator::parse(base.name()).unwrap();
            assert_eq!(op.base, *base);
            assert_eq!(op.to_string(), base.name());
        }
        let op = ConditionOperator::parse("ForAnyValue:StringLikeIfExists").unwrap();
        assert_eq!(op.qualifier, Some(SetQualifier::ForAnyValue));
        assert_eq!(op.base, BaseOperator::StringLike);
        assert!(op.if_exists);
        assert_eq!(op.to_string(), "ForAnyValue:StringLikeIfExists");
    }

    #[test]
    fn operator_names_are_read_in_any_case() {
        let op = ConditionOperator::parse("forAnyValue:Stringlikeifexists").unwrap();
        assert_eq!(op.to_string(), "ForAnyValue:StringLikeIfExists");
        assert_eq!(
            ConditionOperator::parse("stringequals").unwrap().base,
            BaseOperator::StringEquals
        );
        assert!(ConditionOperator::parse("ForAnyValue::StringEquals").is_none());
        assert!(ConditionOperator::parse("StringEqualsIfExistsIfExists").is_none());
        assert!(ConditionOperator::parse("NullIfExists").is_none());
        assert!(ConditionOperator::parse("IfExists").is_none());
    }

    #[test]
    fn negation_and_families() {
        assert!(BaseOperator::StringNotLike.is_negated());
        assert!(BaseOperator::NotIpAddress.is_negated());
        assert!(!BaseOperator::NumericGreaterThanEquals.is_negated());
        assert_eq!(BaseOperator::ArnLike.family(), OperatorFamily::Arn);
        assert_eq!(BaseOperator::Null.family(), OperatorFamily::Null);
    }
}
