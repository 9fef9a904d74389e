//! The result of an evaluation and its explanation.

use std::fmt;
use std::sync::Arc;

use crate::policy::{Effect, PolicyKind};

use super::principal::PrincipalMatch;
use super::request::Request;

/// The three outcomes of IAM's evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Some policy allows and nothing denies.
    Allow,
    /// A `Deny` statement applies.
    ExplicitDeny,
    /// No policy allows (the default).
    ImplicitDeny,
}

/// A statement of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatementRef {
    /// The policy's id.
    pub policy: Arc<str>,
    /// The statement's position in the policy.
    pub index: u32,
    /// The statement's `Sid`, if it has one.
    pub sid: Option<Arc<str>>,
}

/// A decision with what decided it. Small and cheap to clone, so caches can hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// The policy type that decided: the one whose statement allowed or denied, or the one
    /// that failed to allow.
    pub policy_type: Option<PolicyKind>,
    /// The deciding statement (none for an implicit deny).
    pub statement: Option<StatementRef>,
    /// A rule of AWS's that decided rather than (or before) a statement.
    pub rule: Option<Rule>,
}

/// The rules of AWS's that decide a request on their own, whatever the policies say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `sts:GetCallerIdentity` needs no permission: "No permissions are required to perform
    /// this operation. If an administrator attaches a policy to your identity that explicitly
    /// denies access to the sts:GetCallerIdentity action, you can still perform this
    /// operation" `[BOTO-STS]` GetCallerIdentity (STS API Reference).
    NoPermissionRequired,
    /// A request on a KMS key with no key policy: "Every KMS key must have exactly one key
    /// policy … Without permission from the key policy, IAM policies that allow permissions
    /// have no effect" (KMS Developer Guide, key-policies).
    KeyPolicyRequired,
}

/// Every statement that applied to a request, for `explain`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The applicable statements, in evaluation order. With [`Trace::rule`] set they still
    /// list what applied (a `Deny` of `sts:*`, say), which the rule overrode.
    pub entries: Vec<TraceEntry>,
    /// The rule that decided, if one did ([`Decision::rule`]).
    pub rule: Option<Rule>,
}

/// One applicable statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// The policy type.
    pub policy_type: PolicyKind,
    /// The statement.
    pub statement: StatementRef,
    /// Its effect.
    pub effect: Effect,
    /// For resource-based policies, how the `Principal` matched.
    pub principal_match: Option<PrincipalMatch>,
}

// === impl Outcome ===

impl Outcome {
    /// `Allow`, `ExplicitDeny` or `ImplicitDeny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::ExplicitDeny => "ExplicitDeny",
            Self::ImplicitDeny => "ImplicitDeny",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Rule ===

impl Rule {
    /// The rule's name, for traces and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoPermissionRequired => "NoPermissionRequired",
            Self::KeyPolicyRequired => "KeyPolicyRequired",
        }
    }

    /// Why the rule decided, in a sentence.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::NoPermissionRequired => {
                "sts:GetCallerIdentity requires no permission: AWS answers it whatever the policies say, an explicit deny included"
            }
            Self::KeyPolicyRequired => {
                "no key policy was given or registered for this KMS key, and without permission from its key policy IAM policies that allow have no effect"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Decision ===

impl Decision {
    /// True for `Allow`.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// AWS's message for the decision (IAM-SEMANTICS §3.6), such as `User: arn:… is not
    /// authorized to perform: s3:GetObject on resource: arn:… because no identity-based policy
    /// allows the s3:GetObject action`. Built only when asked for: the decision path never
    /// formats text.
    pub fn message(&self, request: &Request) -> String {
        decision_message(
            self.outcome,
            self.policy_type,
            self.rule,
            &request.principal().to_string(),
            request.action().as_str(),
            request.resource().as_str(),
        )
    }
}

/// AWS's message for a decision of `outcome` (see [`Decision::message`]) about `principal`
/// (as AWS names it), `action` and `resource`: what a decision cache renders at the edge
/// rather than keeps. Written with `push_str`, not `format!`, since an edge builds one per
/// answer.
pub fn decision_message(
    outcome: Outcome,
    policy_type: Option<PolicyKind>,
    rule: Option<Rule>,
    principal: &str,
    action: &str,
    resource: &str,
) -> String {
    let phrase = policy_type.map_or("identity-based", PolicyKind::denial_phrase);
    // AWS writes "an identity-based policy" but "a session policy".
    let article = if phrase.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an "
    } else {
        "a "
    };
    let mut out = String::with_capacity(
        principal.len() + 2 * action.len() + resource.len() + phrase.len() + 120,
    );
    let mut push = |parts: &[&str]| parts.iter().for_each(|p| out.push_str(p));
    let allowed = [
        principal,
        " is authorized to perform: ",
        action,
        " on resource: ",
        resource,
    ];
    let head = [
        "User: ",
        principal,
        " is not authorized to perform: ",
        action,
        " on resource: ",
        resource,
    ];
    match outcome {
        Outcome::Allow if rule == Some(Rule::NoPermissionRequired) => {
            push(&allowed);
            push(&[" because ", Rule::NoPermissionRequired.explanation()]);
        }
        Outcome::Allow => push(&allowed),
        Outcome::ExplicitDeny => {
            push(&head);
            push(&[" with an explicit deny in ", article, phrase, " policy"]);
        }
        // AWS words an SCP's or RCP's implicit deny as an explicit one.
        Outcome::ImplicitDeny if matches!(policy_type, Some(PolicyKind::Scp | PolicyKind::Rcp)) => {
            push(&head);
            push(&[" with an explicit deny in ", article, phrase, " policy"]);
        }
        Outcome::ImplicitDeny => {
            push(&head);
            push(&[
                " because no ",
                phrase,
                " policy allows the ",
                action,
                " action",
            ]);
        }
    }
    out
}

// === impl StatementRef ===

impl fmt::Display for StatementRef {
    /// `policy#Sid`, or `policy#3` for a statement without a `Sid`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid {
            Some(sid) => write!(f, "{}#{sid}", self.policy),
            None => write!(f, "{}#{}", self.policy, self.index),
        }
    }
}
