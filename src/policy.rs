//! The IAM policy language: documents, parsing with AWS's errors, per-kind validation, and
//! compiled matchers.
//!
//! ```text
//! text ──parse──▶ PolicyDocument ──compile──▶ CompiledPolicy ──▶ authz::evaluate
//!        (AWS's validation order       (wildcard and ARN matchers, typed
//!         and messages, per kind)       condition values, action index)
//! ```
//!
//! Everything here is synchronous and allocation-free once compiled: evaluation borrows the
//! compiled policy and the request and builds no strings.

mod arn;
pub mod catalog;
mod compile;
mod condition;
mod date;
mod document;
pub mod findings;
#[cfg(test)]
mod json;
mod parse;
mod pattern;
mod principal;

pub use arn::ArnParts;
pub use compile::{
    reads_clock, ActionName, CompiledPolicy, CompiledStatement, PrincipalMatcher, ResourceName,
    CLOCK_KEYS,
};
pub use condition::{Cidr, CompiledCondition, ConditionLookup, ContextValue, Decimal, KeyValues};
pub use date::{parse_policy_date, Timestamp};
pub use document::{
    ActionBlock, BaseOperator, ConditionEntry, ConditionOperator, Effect, OperatorFamily,
    PolicyDocument, PolicyVersion, PrincipalBlock, PrincipalSpec, PrincipalType, ResourceBlock,
    SetQualifier, Statement,
};
pub use parse::{ParseOptions, SizeQuota, MAX_POLICY_CHARS};
pub use pattern::{Glob, VarLookup};
pub use principal::PrincipalRef;

use crate::error::AwsCode;
use std::fmt;
use std::str::FromStr;

/// The kinds of policy, each with its own grammar rules (IAM-SEMANTICS §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// An identity-based policy attached to a user, group or role (managed or inline).
    Identity,
    /// A resource-based policy (bucket, queue, key, ... policies).
    Resource,
    /// A role's trust policy (`AssumeRolePolicyDocument`).
    Trust,
    /// A permissions boundary.
    Boundary,
    /// A session policy passed to `AssumeRole*`.
    Session,
    /// An Organizations service control policy.
    Scp,
    /// An Organizations resource control policy.
    Rcp,
    /// A VPC endpoint policy.
    VpcEndpoint,
}

/// Why a policy document was refused, with AWS's error code and message.
///
/// The message is AWS's own text where AWS has one (so clients that match on it keep working);
/// the location names the offending element, such as `Statement[2].Condition.StringLike`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `MalformedPolicyDocument`: the document breaks the policy grammar.
    #[error("{message}")]
    Malformed {
        /// AWS's message.
        message: String,
        /// The offending element.
        location: Option<String>,
    },
    /// `ValidationError`: the API's constraints on the document string (length, characters).
    #[error("{message}")]
    Validation {
        /// AWS's message.
        message: String,
    },
    /// `LimitExceeded`: the document is larger than the quota for its kind.
    #[error("{message}")]
    LimitExceeded {
        /// AWS's message.
        message: String,
    },
}

/// A policy kind name that `--kind` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy kind `{0}`; expected identity, resource, trust, boundary, session, scp, rcp or vpc-endpoint")]
pub struct UnknownPolicyKindError(String);

// === impl PolicyKind ===

impl PolicyKind {
    /// Every kind.
    pub const ALL: &'static [PolicyKind] = &[
        PolicyKind::Identity,
        PolicyKind::Resource,
        PolicyKind::Trust,
        PolicyKind::Boundary,
        PolicyKind::Session,
        PolicyKind::Scp,
        PolicyKind::Rcp,
        PolicyKind::VpcEndpoint,
    ];

    /// The kind's command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Resource => "resource",
            Self::Trust => "trust",
            Self::Boundary => "boundary",
            Self::Session => "session",
            Self::Scp => "scp",
            Self::Rcp => "rcp",
            Self::VpcEndpoint => "vpc-endpoint",
        }
    }

    /// The policy-type phrase of AWS's access-denied messages.
    pub fn denial_phrase(self) -> &'static str {
        match self {
            Self::Identity => "identity-based",
            Self::Resource | Self::Trust => "resource-based",
            Self::Boundary => "permissions boundary",
            Self::Session => "session",
            Self::Scp => "service control",
            Self::Rcp => "resource control",
            Self::VpcEndpoint => "VPC endpoint",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyKind {
    type Err = UnknownPolicyKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownPolicyKindError(s.to_owned()))
    }
}

// === impl PolicyError ===

impl PolicyError {
    pub(crate) fn malformed(message: &str, location: Option<String>) -> Self {
        Self::Malformed {
            message: message.to_owned(),
            location,
        }
    }

    pub(crate) fn validation(message: String) -> Self {
        Self::Validation { message }
    }

    /// AWS's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::Malformed { .. } => AwsCode::MalformedPolicyDocument,
            Self::Validation { .. } => AwsCode::ValidationError,
            Self::LimitExceeded { .. } => AwsCode::LimitExceeded,
        }
    }

    /// AWS's message.
    pub fn message(&self) -> &str {
        match self {
            Self::Malformed { message, .. }
            | Self::Validation { message }
            | Self::LimitExceeded { message } => message,
        }
    }

    /// The offending element, when the error concerns one.
    pub fn location(&self) -> Option<&str> {
        match self {
            Self::Malformed { location, .. } => location.as_deref(),
            Self::Validation { .. } | Self::LimitExceeded { .. } => None,
        }
    }
}

// === impl PolicyDocument ===

impl PolicyDocument {
    /// Parses and validates `text` with the rules IAM applies when a policy of `kind` is
    /// created (see [`ParseOptions::for_kind`]).
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Self, PolicyError> {
        parse::parse(text, ParseOptions::for_kind(kind))
    }

    /// Parses and validates `text` with explicit options.
    pub fn parse_with(text: &str, options: ParseOptions) -> Result<Self, PolicyError> {
        parse::parse(text, options)
    }

    /// The document as canonical JSON: elements in AWS's order, a single value written as a
    /// string, conditions grouped by operator. Parsing the result gives this document back.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        fn one_or_many(values: &[String]) -> Value {
            match values {
                [single] => Value::String(single.clone()),
                many => Value::Array(many.iter().cloned().map(Value::String).collect()),
            }
        }
        let statements: Vec<Value> = self
            .statements
            .iter()
            .map(|s| {
                let mut out = Map::new();
                if let Some(sid) = &s.sid {
                    out.insert("Sid".into(), json!(sid));
                }
                out.insert("Effect".into(), json!(s.effect.as_str()));
                if let Some(p) = &s.principal {
                    let value = match &p.principals {
                        PrincipalSpec::Everyone => json!("*"),
                        PrincipalSpec::Map(map) => Value::Object(
                            map.iter()
                                .map(|(kind, values)| {
                                    (kind.as_str().to_owned(), one_or_many(values))
                                })
                                .collect(),
                        ),
                    };
                    let key = if p.negated {
                        "NotPrincipal"
                    } else {
                        "Principal"
                    };
                    out.insert(key.into(), value);
                }
                let key = if s.action.negated {
                    "NotAction"
                } else {
                    "Action"
                };
                out.insert(key.into(), one_or_many(&s.action.patterns));
                if let Some(r) = &s.resource {
                    let key = if r.negated { "NotResource" } else { "Resource" };
                    out.insert(key.into(), one_or_many(&r.patterns));
                }
                if !s.conditions.is_empty() {
                    let mut blocks = Map::new();
                    for entry in &s.conditions {
                        let block = blocks
                            .entry(entry.operator.to_string())
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(keys) = block {
                            let values = match entry.values.as_slice() {
                                [single] => Value::String(single.clone()),
                                many => {
                                    Value::Array(many.iter().cloned().map(Value::String).collect())
                                }
                            };
                            keys.insert(entry.key.clone(), values);
                        }
                    }
                    out.insert("Condition".into(), Value::Object(blocks));
                }
                Value::Object(out)
            })
            .collect();
        let mut doc = Map::new();
        if let Some(version) = self.version.as_str() {
            doc.insert("Version".into(), json!(version));
        }
        if let Some(id) = &self.id {
            doc.insert("Id".into(), json!(id));
        }
        doc.insert("Statement".into(), Value::Array(statements));
        Value::Object(doc)
    }
}

/// The size IAM charges a policy against its quota: every character except JSON whitespace
/// (U+0009, U+000A, U+000D, U+0020), wherever it stands (open point U8).
pub fn non_whitespace_len(text: &str) -> usize {
    text.chars()
        .filter(|c| !matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | ' '))
        .count()
}
