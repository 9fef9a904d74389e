//! Access-Analyzer-style policy checks: findings, not only errors.
//!
//! [`validate_policy`] reads a policy text and returns what IAM Access Analyzer's
//! `ValidatePolicy` would: each finding has a type (`ERROR`, `SECURITY_WARNING`, `WARNING`,
//! `SUGGESTION`), AWS's issue code, AWS's message, the link to the check's entry in AWS's
//! policy check reference, and the locations (a path into the document and the span of the
//! offending text). Issue codes, types and messages follow AWS's "IAM policy validation check
//! reference"; the code is the reference entry's anchor, which is how AWS derives it.
//!
//! Only checks that can be made exactly are made: a wrong finding on a valid AWS managed policy
//! is worse than a missing one. Checks that need the action catalogue (unknown services and
//! actions, redundant actions, condition keys an action does not support) use
//! [`super::catalog`]; when the catalogue cannot be read they are skipped, never guessed.
//!
//! Everything here is synchronous; findings are computed on demand, never on the decision path.

mod checks;
mod spanned;

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value as JsonValue};

pub use spanned::Position;

use super::PolicyKind;

/// The base of AWS's policy check reference; each check's anchor is appended.
const REFERENCE_URL: &str =
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html";

/// The impact of a finding, as Access Analyzer names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingType {
    /// A part of the policy is not functional.
    Error,
    /// The policy allows access that is considered overly permissive.
    SecurityWarning,
    /// The policy does not follow policy-writing best practices.
    Warning,
    /// A stylistic improvement that does not change access.
    Suggestion,
}

/// The policy types `ValidatePolicy` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidatePolicyType {
    /// `IDENTITY_POLICY`: identity policies, permissions boundaries, session policies.
    Identity,
    /// `RESOURCE_POLICY`: resource-based policies and role trust policies.
    Resource,
    /// `SERVICE_CONTROL_POLICY`.
    ServiceControl,
    /// `RESOURCE_CONTROL_POLICY`.
    ResourceControl,
}

/// A `policyType` that is not one of AWS's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the policy type `{0}` is not valid; expected IDENTITY_POLICY, RESOURCE_POLICY, SERVICE_CONTROL_POLICY or RESOURCE_CONTROL_POLICY")]
pub struct UnknownPolicyTypeError(String);

/// The resource type a resource policy is for (`validatePolicyResourceType`), when it matters
/// to the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidateResourceType {
    /// `AWS::IAM::AssumeRolePolicyDocument`: a role trust policy (no `Resource` element).
    RoleTrust,
    /// Any other resource type AWS lists (`AWS::S3::Bucket`, ...).
    Other,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The impact.
    pub finding_type: FindingType,
    /// AWS's issue code (`PASS_ROLE_WITH_STAR_IN_RESOURCE`).
    pub issue_code: String,
    /// AWS's message, with the policy's values filled in.
    pub details: String,
    /// The check's entry in AWS's policy check reference.
    pub learn_more_link: String,
    /// Where in the document the issue is.
    pub locations: Vec<Location>,
}

/// A place in the policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The path from the document's root to the element.
    pub path: Vec<PathElement>,
    /// The span of the element's text.
    pub span: Span,
}

/// One step of a [`Location`]'s path, as Access Analyzer writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathElement {
    /// An object member by name (`{"value": "Statement"}`).
    Value(String),
    /// An array element by position (`{"index": 0}`).
    Index(usize),
    /// An object key itself, when the key is the offending text (`{"key": "Resuorce"}`).
    Key(String),
}

/// The start (inclusive) and end (exclusive) of a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Where it starts.
    pub start: Position,
    /// Where it ends.
    pub end: Position,
}

/// Validates a policy document as Access Analyzer's `ValidatePolicy` does, returning the
/// findings in document order (a document that is not JSON gives one `JSON_SYNTAX_ERROR`).
pub fn validate_policy(
    text: &str,
    policy_type: ValidatePolicyType,
    resource_type: Option<ValidateResourceType>,
) -> Vec<Finding> {
    checks::run(text, policy_type, resource_type)
}

/// The findings for a policy of an iamlet [`PolicyKind`] (trust policies are resource policies
/// of the role-trust resource type, as Access Analyzer validates them).
pub fn validate_kind(text: &str, kind: PolicyKind) -> Vec<Finding> {
    let (policy_type, resource_type) = ValidatePolicyType::for_kind(kind);
    validate_policy(text, policy_type, resource_type)
}

/// True when any finding is an `ERROR`.
pub fn has_error(findings: &[Finding]) -> bool {
    findings
        .iter()
        .any(|f| f.finding_type == FindingType::Error)
}

// === impl FindingType ===

impl FindingType {
    /// Access Analyzer's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::SecurityWarning => "SECURITY_WARNING",
            Self::Warning => "WARNING",
            Self::Suggestion => "SUGGESTION",
        }
    }

    /// The word the reference's anchors use for the type.
    fn anchor(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::SecurityWarning => "security-warning",
            Self::Warning => "general-warning",
            Self::Suggestion => "suggestion",
        }
    }
}

impl fmt::Display for FindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl ValidatePolicyType ===

impl ValidatePolicyType {
    /// AWS's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "IDENTITY_POLICY",
            Self::Resource => "RESOURCE_POLICY",
            Self::ServiceControl => "SERVICE_CONTROL_POLICY",
            Self::ResourceControl => "RESOURCE_CONTROL_POLICY",
        }
    }

    /// The type and resource type Access Analyzer validates a policy of `kind` as.
    pub fn for_kind(kind: PolicyKind) -> (Self, Option<ValidateResourceType>) {
        match kind {
            PolicyKind::Identity | PolicyKind::Boundary | PolicyKind::Session => {
                (Self::Identity, None)
            }
            PolicyKind::Trust => (Self::Resource, Some(ValidateResourceType::RoleTrust)),
            PolicyKind::Resource | PolicyKind::VpcEndpoint => (Self::Resource, None),
            PolicyKind::Scp => (Self::ServiceControl, None),
            PolicyKind::Rcp => (Self::ResourceControl, None),
        }
    }
}

impl FromStr for ValidatePolicyType {
    type Err = UnknownPolicyTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Identity,
            Self::Resource,
            Self::ServiceControl,
            Self::ResourceControl,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or_else(|| UnknownPolicyTypeError(s.to_owned()))
    }
}

// === impl ValidateResourceType ===

impl ValidateResourceType {
    /// Reads AWS's `validatePolicyResourceType` value.
    pub fn from_aws(name: &str) -> Self {
        if name == "AWS::IAM::AssumeRolePolicyDocument" {
            Self::RoleTrust
        } else {
            Self::Other
        }
    }
}

// === impl Finding ===

impl Finding {
    /// A finding of the reference entry `slug` (the anchor after the type, such as
    /// `pass-role-with-star-in-resource`): the issue code and link follow from it.
    fn new(
        finding_type: FindingType,
        slug: &str,
        details: String,
        locations: Vec<Location>,
    ) -> Self {
        Self {
            finding_type,
            issue_code: slug.to_ascii_uppercase().replace('-', "_"),
            details,
            learn_more_link: format!(
                "{REFERENCE_URL}#access-analyzer-reference-policy-checks-{}-{slug}",
                finding_type.anchor()
            ),
            locations,
        }
    }

    /// Access Analyzer's JSON shape (`ValidatePolicyFinding`).
    pub fn to_json(&self) -> JsonValue {
        json!({
            "findingDetails": self.details,
            "findingType": self.finding_type.as_str(),
            "issueCode": self.issue_code,
            "learnMoreLink": self.learn_more_link,
            "locations": self.locations.iter().map(Location::to_json).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Finding {
    /// One human line: `WARNING MISSING_VERSION at 1:0 (Statement[0].Action[1]): message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.finding_type, self.issue_code)?;
        if let Some(location) = self.locations.first() {
            let start = location.span.start;
            write!(f, " at {}:{}", start.line, start.column)?;
            let path = location.path_text();
            if !path.is_empty() {
                write!(f, " ({path})")?;
            }
        }
        write!(f, ": {}", self.details)
    }
}

// === impl Location ===

impl Location {
    /// Access Analyzer's JSON shape (`Location`).
    pub fn to_json(&self) -> JsonValue {
        let position =
            |p: Position| json!({"line": p.line, "column": p.column, "offset": p.offset});
        json!({
            "path": self.path.iter().map(|e| match e {
                PathElement::Value(v) => json!({"value": v}),
                PathElement::Index(i) => json!({"index": i}),
                PathElement::Key(k) => json!({"key": k}),
            }).collect::<Vec<_>>(),
            "span": {"start": position(self.span.start), "end": position(self.span.end)},
        })
    }

    /// The path as text: `Statement[0].Condition.StringEquals.aws:SourceIp`.
    pub fn path_text(&self) -> String {
        let mut out = String::new();
        for element in &self.path {
            match element {
                PathElement::Index(i) => out.push_str(&format!("[{i}]")),
                PathElement::Value(name) | PathElement::Key(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
