//! Policy text → [`PolicyDocument`], with AWS's validation order and messages.
//!
//! IAM reports only the first problem it finds, and which one it reports depends on the order
//! of its checks. The phases below follow that order as observed against IAM (and reproduced by
//! moto's `IAMPolicyDocumentValidator`, whose test cases are in our corpus):
//!
//! 1. API constraints: length 1..=131,072 and the character set (`ValidationError`);
//! 2. syntax: JSON, element names, shapes, `Effect` spelled in any case, known operators
//!    ("Syntax errors in policy.");
//! 3. version, where the kind requires `2012-10-17`;
//! 4. "legacy parsing": exact-case `Effect`, date values, resource ARN shape;
//! 5. unique `Sid`s; 6. actions present; 7. the first resource-format error;
//! 8. action vendor prefixes; 9. the rules of the policy kind.
//!
//! Every error carries the location of the offending element where there is one, such as
//! `Statement[2].Condition.StringLike`.

use super::condition::{Cidr, Decimal};
use super::date::parse_policy_date;
use super::document::{
    ActionBlock, ConditionEntry, Effect, PolicyDocument, PolicyVersion, PrincipalBlock,
    PrincipalSpec, PrincipalType, ResourceBlock, Statement,
};
use super::{PolicyError, PolicyKind};

/// The API's limit on a policy document, whitespace included.
pub const MAX_POLICY_CHARS: usize = 131_072;

/// The partitions a resource ARN may name.
const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
    "*",
];

/// S3 resource types whose ARNs carry a region (from the service authorization reference);
/// bucket and object ARNs never do.
const S3_REGIONAL_PREFIXES: &[&str] = &[
    "accesspoint/",
    "access-grants/",
    "job/",
    "storage-lens",
    "async-request/",
];

const IAM_RESOURCE_PREFIXES: &[&str] = &[
    "user/",
    "federated-user/",
    "role/",
    "group/",
    "instance-profile/",
    "mfa/",
    "server-certificate/",
    "policy/",
    "sms-mfa/",
    "saml-provider/",
    "oidc-provider/",
    "report/",
    "access-report/",
];

/// The actions a trust policy may name.
const TRUST_ACTIONS: &[&str] = &[
    "sts:assumerole",
    "sts:assumerolewithsaml",
    "sts:assumerolewithwebidentity",
    "sts:tagsession",
    "sts:setsourceidentity",
];

const MSG_SYNTAX: &str = "Syntax errors in policy.";
const MSG_VERSION: &str = "Policy document must be version 2012-10-17 or greater.";
const MSG_LEGACY: &str = "The policy failed legacy parsing";
const MSG_SID: &str = "Statement IDs (SID) in a single policy must be unique.";
const MSG_ACTIONS: &str = "Policy statement must contain actions.";
const MSG_RESOURCES: &str = "Policy statement must contain resources.";
const MSG_PRINCIPAL_FORBIDDEN: &str = "Policy document should not specify a principal.";
const MSG_PRINCIPAL_MISSING: &str = "Missing required field Principal.";
const MSG_TRUST_RESOURCE: &str = "Has prohibited field Resource.";
// AWS's text, double space included.
const MSG_TRUST_ACTIONS: &str = "Trust Policy statement actions can only be sts:AssumeRole, sts:AssumeRoleWithSAML,  and sts:AssumeRoleWithWebIdentity";
const MSG_NOT_PRINCIPAL_ALLOW: &str = "NotPrincipal is only supported with the Deny effect.";
const MSG_NOT_PRINCIPAL_TRUST: &str = "Trust policies cannot use NotPrincipal.";
// The RCP syntax page's element summary lists Version, Statement, Sid, Effect, Principal,
// Action, Resource, NotResource and Condition only `[UG-live: orgs_manage_policies_rcps_syntax]`.
const MSG_RCP_NOT_PRINCIPAL: &str = "Resource control policies do not support NotPrincipal.";
const MSG_RCP_NOT_ACTION: &str = "Resource control policies do not support NotAction.";
const MSG_RCP_ALLOW: &str = "Resource control policies support Allow only in the full-access statement (Principal, Action and Resource \"*\", no Condition).";

/// How strictly to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// The kind of policy, which decides the per-kind rules.
    pub kind: PolicyKind,
    /// Accept `2008-10-17` and an absent `Version` even where the kind's default requires
    /// `2012-10-17` (inline identity policies and stored documents are evaluated as written).
    pub allow_legacy_version: bool,
    /// Enforce the API's limit of 131,072 characters. AWS-managed policies are stored by AWS
    /// beyond it (`AWSSupportServiceRolePolicy` is 152,297 characters), so loading them turns
    /// it off; every document a tenant submits keeps it.
    pub enforce_length_limit: bool,
    /// The size quota of the kind, checked after the document is valid.
    pub size_quota: Option<SizeQuota>,
    /// Refuse condition values that cannot be read as their operator's type: malformed
    /// IP/CIDR, numeric and boolean (`Bool`, `Null`) values. Malformed dates are refused in
    /// every mode, as IAM's legacy parsing does. Only [`ParseOptions::stored`] turns this off,
    /// for documents saved before the check existed; evaluation never lets such a value make
    /// a statement match.
    pub check_condition_values: bool,
}

/// A size quota on a policy document (IAM-SEMANTICS §5.4–5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeQuota {
    /// The quota's name in AWS's message (`PolicySize`, `ACLSizePerRole`, ...).
    pub name: &'static str,
    /// The limit, in characters.
    pub limit: usize,
    /// IAM does not count whitespace; Organizations counts every character.
    pub counts_whitespace: bool,
}

// === impl SizeQuota ===

impl SizeQuota {
    /// A managed policy or permissions boundary: 6,144 non-whitespace characters.
    pub const MANAGED_POLICY: Self = Self {
        name: "PolicySize",
        limit: 6_144,
        counts_whitespace: false,
    };
    /// A role trust policy: 2,048 non-whitespace characters by default (AWS raises it to
    /// 4,096 on request; the directory makes it configurable per tenant).
    pub const TRUST_POLICY: Self = Self {
        name: "ACLSizePerRole",
        limit: 2_048,
        counts_whitespace: false,
    };
    /// An SCP or RCP: 5,120 characters, whitespace included.
    pub const ORGANIZATION_POLICY: Self = Self {
        name: "PolicySize",
        limit: 5_120,
        counts_whitespace: true,
    };

    /// The quota IAM applies to a newly created document of `kind`, if any. Inline identity
    /// policies have an aggregate quota per user, group or role instead, which the directory
    /// checks; resource and session policies are limited by their own services.
    pub fn for_kind(kind: PolicyKind) -> Option<Self> {
        match kind {
            PolicyKind::Identity | PolicyKind::Boundary => Some(Self::MANAGED_POLICY),
            PolicyKind::Trust => Some(Self::TRUST_POLICY),
            PolicyKind::Scp | PolicyKind::Rcp => Some(Self::ORGANIZATION_POLICY),
            PolicyKind::Resource | PolicyKind::Session | PolicyKind::VpcEndpoint => None,
        }
    }

    /// Checks `text` against the quota.
    pub fn check(self, text: &str) -> Result<(), PolicyError> {
        let size = if self.counts_whitespace {
            text.chars().count()
        } else {
            super::non_whitespace_len(text)
        };
        if size > self.limit {
            return Err(PolicyError::LimitExceeded {
                message: format!("Cannot exceed quota for {}: {}", self.name, self.limit),
            });
        }
        Ok(())
    }
}

// === impl ParseOptions ===

impl ParseOptions {
    /// The rules IAM applies when a policy of `kind` is created: managed identity policies,
    /// permissions boundaries, SCPs and RCPs must be `2012-10-17`.
    pub fn for_kind(kind: PolicyKind) -> Self {
        Self {
            kind,
            allow_legacy_version: !matches!(
                kind,
                PolicyKind::Identity | PolicyKind::Boundary | PolicyKind::Scp | PolicyKind::Rcp
            ),
            enforce_length_limit: true,
            size_quota: SizeQuota::for_kind(kind),
            check_condition_values: true,
        }
    }

    /// The rules for an AWS-managed policy document: those of `kind`, without the API's
    /// length limit or the kind's size quota, which bind tenants' documents only.
    pub fn aws_managed(kind: PolicyKind) -> Self {
        Self {
            enforce_length_limit: false,
            size_quota: None,
            ..Self::for_kind(kind)
        }
    }

    /// The grammar and rules of `kind` for a document that is already stored or comes from
    /// elsewhere (an inline policy, a decision vector): any version, no size quota.
    pub fn lenient(kind: PolicyKind) -> Self {
        Self {
            kind,
            allow_legacy_version: true,
            enforce_length_limit: true,
            size_quota: None,
            check_condition_values: true,
        }
    }

    /// The rules for re-reading a document that is already stored: [`ParseOptions::lenient`],
    /// except that condition values of the wrong type are accepted (a document stored before
    /// they were refused must still load; its unreadable values never make a statement
    /// match).
    pub fn stored(kind: PolicyKind) -> Self {
        Self {
            check_condition_values: false,
            ..Self::lenient(kind)
        }
    }
}

/// A statement after the syntax phase, before the later phases decide it is valid.
struct Draft {
    location: String,
    sid: Option<String>,
    effect: String,
    principal: Option<PrincipalBlock>,
    action: Option<ActionBlock>,
    resource: Option<ResourceBlock>,
    conditions: Vec<ConditionEntry>,
}

/// Parses and validates `text` as a policy of the kind `options` names.
pub(crate) fn parse(text: &str, options: ParseOptions) -> Result<PolicyDocument, PolicyError> {
    parse_after(text, options, syntax::syntax_phase)
}

/// [`parse`] with the syntax phase `syntax_phase` (the tests run the tree walk it replaced
/// through the same later phases, to prove both give the same documents and errors).
fn parse_after(
    text: &str,
    options: ParseOptions,
    syntax_phase: fn(&str) -> Result<SyntaxOutput, PolicyError>,
) -> Result<PolicyDocument, PolicyError> {
    check_api_constraints(text, options.enforce_length_limit)?;
    let (version, id, drafts) = syntax_phase(text)?;

    if !options.allow_legacy_version && version != PolicyVersion::Current {
        return Err(PolicyError::malformed(MSG_VERSION, Some("Version".into())));
    }
    legacy_phase(&drafts, version, options.check_condition_values)?;
    let resource_error = resource_format_phase(&drafts)?;
    sid_phase(&drafts)?;
    for draft in &drafts {
        if draft.action.as_ref().is_none_or(|a| a.patterns.is_empty()) {
            return Err(PolicyError::malformed(
                MSG_ACTIONS,
                Some(draft.location.clone()),
            ));
        }
    }
    if let Some((message, location)) = resource_error {
        return Err(PolicyError::malformed(&message, Some(location)));
    }
    for draft in &drafts {
        if let Some(action) = &draft.action {
            let field = if action.negated {
                "NotAction"
            } else {
                "Action"
            };
            for pattern in &action.patterns {
                check_action_prefix(pattern)
                    .map_err(|m| PolicyError::malformed(&m, Some(at(&draft.location, field))))?;
            }
        }
    }
    kind_phase(&drafts, options.kind)?;
    if let Some(quota) = options.size_quota {
        quota.check(text)?;
    }

    let statements = drafts
        .into_iter()
        .map(|d| {
            let effect = if d.effect == "Allow" {
                Effect::Allow
            } else {
                Effect::Deny
            };
            Statement {
                sid: d.sid,
                effect,
                principal: d.principal,
                action: d.action.unwrap_or(ActionBlock {
                    negated: false,
                    patterns: Vec::new(),
                }),
                resource: d.resource,
                conditions: d.conditions,
            }
        })
        .collect();
    Ok(PolicyDocument {
        version,
        id,
        statements,
    })
}

/// The constraints the IAM API checks before it reads the document.
fn check_api_constraints(text: &str, enforce_length_limit: bool) -> Result<(), PolicyError> {
    const PREFIX: &str =
        "1 validation error detected: Value at 'policyDocument' failed to satisfy constraint: ";
    if text.is_empty() {
        return Err(PolicyError::validation(format!(
            "{PREFIX}Member must have length greater than or equal to 1"
        )));
    }
    let mut chars = 0usize;
    for c in text.chars() {
        chars += 1;
        if !matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{ff}') {
            return Err(PolicyError::validation(format!(
                "{PREFIX}Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+"
            )));
        }
    }
    if enforce_length_limit && chars > MAX_POLICY_CHARS {
        return Err(PolicyError::validation(format!(
            "{PREFIX}Member must have length less than or equal to {MAX_POLICY_CHARS}"
        )));
    }
    Ok(())
}

fn at(location: &str, field: &str) -> String {
    format!("{location}.{field}")
}

fn syntax(location: impl Into<String>) -> PolicyError {
    PolicyError::malformed(MSG_SYNTAX, Some(location.into()))
}

type SyntaxOutput = (PolicyVersion, Option<String>, Vec<Draft>);

/// IAM's "legacy parsing": `Effect` in its exact case, and condition values that read as
/// their operator's type. IAM refuses a malformed date here with "The policy failed legacy
/// parsing"; iamlet refuses malformed IP/CIDR, numeric and boolean values the same way (with
/// `check_values`), because a negated operator over a value nobody can read would otherwise
/// match every request: `"NotIpAddress": {"aws:SourceIp": "10.0.0.0/33"}` in an `Allow`
/// grants to everyone. Each operator's values are typed
/// `[UG:reference_policies_elements_condition_operators]`: numbers are integers or decimals,
/// IP values "IPv4 or IPv6 addresses or ranges of IP addresses" in CIDR notation, `Bool` and
/// `Null` take `true`/`false`. `Bool` values may be policy variables in `2012-10-17`
/// documents `[UG-live:reference_policies_elements_condition_operators]`.
fn legacy_phase(
    drafts: &[Draft],
    version: PolicyVersion,
    check_values: bool,
) -> Result<(), PolicyError> {
    use super::document::OperatorFamily as F;
    for draft in drafts {
        if draft.effect != "Allow" && draft.effect != "Deny" {
            return Err(PolicyError::malformed(
                MSG_LEGACY,
                Some(at(&draft.location, "Effect")),
            ));
        }
        for entry in &draft.conditions {
            let family = entry.operator.base.family();
            let readable = |value: &str| match family {
                F::Date => parse_policy_date(value).is_some(),
                _ if !check_values => true,
                F::Numeric => Decimal::parse(value).is_some(),
                F::Ip => Cidr::parse(value).is_some(),
                F::Bool => {
                    is_boolean(value) || (version.supports_variables() && has_variable(value))
                }
                F::Null => is_boolean(value),
                F::String | F::Binary | F::Arn => true,
            };
            if entry.values.iter().any(|v| !readable(v)) {
                return Err(PolicyError::malformed(
                    MSG_LEGACY,
                    Some(format!(
                        "{}.Condition.{}.{}",
                        draft.location, entry.operator, entry.key
                    )),
                ));
            }
        }
    }
    Ok(())
}

fn is_boolean(value: &str) -> bool {
    value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
}

/// True when `value` holds a `${...}` policy variable (not one of the `${*}`, `${?}`, `${$}`
/// escapes, which stand for literal characters).
fn has_variable(value: &str) -> bool {
    super::pattern::Glob::compile(
        value,
        super::pattern::Syntax {
            wildcards: false,
            variables: true,
            lowercase: false,
        },
    )
    .has_variables()
}

/// Checks resource ARN shapes. A "legacy parsing" failure is returned at once; a format
/// error is remembered and reported after the Sid and action checks, as IAM does. When
/// several resources are malformed, IAM reports the last one it examined (lists in reverse
/// lexical order), and so do we.
fn resource_format_phase(drafts: &[Draft]) -> Result<Option<(String, String)>, PolicyError> {
    let mut error: Option<(String, String)> = None;
    for negated in [false, true] {
        for draft in drafts {
            let Some(block) = draft.resource.as_ref().filter(|b| b.negated == negated) else {
                continue;
            };
            let field = if negated { "NotResource" } else { "Resource" };
            let location = at(&draft.location, field);
            let mut ordered: Vec<&String> = block.patterns.iter().collect();
            if ordered.len() > 1 {
                ordered.sort_unstable_by(|a, b| b.cmp(a));
            }
            for resource in ordered {
                if let Some(message) = resource_format_error(resource) {
                    error = Some((message, location.clone()));
                }
            }
            if error.is_none() && block.patterns.iter().any(|r| !legacy_resource_ok(r)) {
                return Err(PolicyError::malformed(MSG_LEGACY, Some(location)));
            }
        }
    }
    Ok(error)
}

fn legacy_resource_ok(resource: &str) -> bool {
    if resource == "*" {
        return true;
    }
    (resource.matches(':').count() >= 5 || !resource.contains("::"))
        && resource
            .split(':')
            .nth(2)
            .is_some_and(|service| !service.is_empty())
}

fn resource_format_error(resource: &str) -> Option<String> {
    if resource == "*" {
        return None;
    }
    let Some((_, rest)) = resource.split_once(':') else {
        return Some(format!(
            "Resource {resource} must be in ARN format or \"*\"."
        ));
    };
    let (partition, rest) = match rest.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (rest, None),
    };
    if !PARTITIONS.contains(&partition) {
        let parts: Vec<&str> = rest.unwrap_or("").split(':').collect();
        let first = parts.first().copied().unwrap_or("");
        let arn1 = if !first.is_empty() || parts.len() > 1 {
            first
        } else {
            "*"
        };
        let arn2 = parts.get(1).copied().unwrap_or("*");
        let arn3 = parts.get(2).copied().unwrap_or("*");
        let arn4 = if parts.len() > 3 {
            parts.get(3..).map(|p| p.join(":")).unwrap_or_default()
        } else {
            "*".to_owned()
        };
        return Some(format!(
            "Partition \"{partition}\" is not valid for resource \"arn:{partition}:{arn1}:{arn2}:{arn3}:{arn4}\"."
        ));
    }
    let Some(rest) = rest else {
        return Some("Resource vendor must be fully qualified and cannot contain regexes.".into());
    };
    let (service, after_service) = rest.split_once(':').unwrap_or((rest, ""));
    let mut tail = after_service.splitn(3, ':');
    let region = tail.next().unwrap_or("");
    let _account = tail.next();
    let resource_id = tail.next().unwrap_or("");
    match service {
        "iam" if !region.is_empty() => {
            return Some(format!(
                "IAM resource {resource} cannot contain region information."
            ))
        }
        "s3" if !region.is_empty()
            && !S3_REGIONAL_PREFIXES
                .iter()
                .any(|p| resource_id.starts_with(p)) =>
        {
            return Some(format!(
                "Resource {resource} can not contain region information."
            ))
        }
        // `root` names the account's root user (AWS's root-credential management policies
        // use `arn:aws:iam::*:root`); a leading `*` covers every resource type
        // (`CloudFrontFullAccess` uses `arn:aws:iam::*:*`).
        "iam"
            if resource_id != "root"
                && !resource_id.starts_with('*')
                && !IAM_RESOURCE_PREFIXES
                    .iter()
                    .any(|p| resource_id.starts_with(p)) =>
        {
            return Some(format!(
                "IAM resource path must either be \"*\" or start with {}.",
                IAM_RESOURCE_PREFIXES.join(", ")
            ))
        }
        _ => {}
    }
    None
}

fn sid_phase(drafts: &[Draft]) -> Result<(), PolicyError> {
    let mut seen: Vec<&str> = Vec::new();
    for draft in drafts {
        if let Some(sid) = draft.sid.as_deref().filter(|s| !s.is_empty()) {
            if seen.contains(&sid) {
                return Err(PolicyError::malformed(
                    MSG_SID,
                    Some(at(&draft.location, "Sid")),
                ));
            }
            seen.push(sid);
        }
    }
    Ok(())
}

fn check_action_prefix(action: &str) -> Result<(), String> {
    let mut parts = action.split(':');
    let vendor = parts.next().unwrap_or("");
    let name = parts.next();
    if name.is_none() && vendor != "*" {
        return Err(
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.".into(),
        );
    }
    if parts.next().is_some() {
        return Err("Actions/Condition can contain only one colon.".into());
    }
    if vendor != "*"
        && !vendor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!("Vendor {vendor} is not valid"));
    }
    Ok(())
}

fn kind_phase(drafts: &[Draft], kind: PolicyKind) -> Result<(), PolicyError> {
    for draft in drafts {
        let loc = &draft.location;
        match kind {
            PolicyKind::Identity | PolicyKind::Boundary | PolicyKind::Session | PolicyKind::Scp => {
                if draft.principal.is_some() {
                    return Err(PolicyError::malformed(
                        MSG_PRINCIPAL_FORBIDDEN,
                        Some(at(loc, "Principal")),
                    ));
                }
            }
            PolicyKind::Trust => {
                let actions_ok = draft
                    .action
                    .as_ref()
                    .is_some_and(|a| !a.negated && a.patterns.iter().all(|p| trust_action_ok(p)));
                if !actions_ok {
                    return Err(PolicyError::malformed(
                        MSG_TRUST_ACTIONS,
                        Some(at(loc, "Action")),
                    ));
                }
            }
            PolicyKind::Rcp => {
                // Elements outside the RCP grammar, before any rule about their values.
                if draft.principal.as_ref().is_some_and(|p| p.negated) {
                    return Err(PolicyError::malformed(
                        MSG_RCP_NOT_PRINCIPAL,
                        Some(at(loc, "NotPrincipal")),
                    ));
                }
                if draft.action.as_ref().is_some_and(|a| a.negated) {
                    return Err(PolicyError::malformed(
                        MSG_RCP_NOT_ACTION,
                        Some(at(loc, "NotAction")),
                    ));
                }
            }
            PolicyKind::Resource | PolicyKind::VpcEndpoint => {}
        }
    }
    for draft in drafts {
        let loc = &draft.location;
        match kind {
            PolicyKind::Trust => {
                if draft.resource.is_some() {
                    return Err(PolicyError::malformed(
                        MSG_TRUST_RESOURCE,
                        Some(at(loc, "Resource")),
                    ));
                }
                match &draft.principal {
                    None => {
                        return Err(PolicyError::malformed(
                            MSG_PRINCIPAL_MISSING,
                            Some(loc.clone()),
                        ))
                    }
                    Some(p) if p.negated => {
                        return Err(PolicyError::malformed(
                            MSG_NOT_PRINCIPAL_TRUST,
                            Some(at(loc, "NotPrincipal")),
                        ))
                    }
                    Some(p) => check_principals(p, loc)?,
                }
            }
            _ => {
                if draft
                    .resource
                    .as_ref()
                    .is_none_or(|r| r.patterns.is_empty())
                {
                    return Err(PolicyError::malformed(MSG_RESOURCES, Some(loc.clone())));
                }
            }
        }
        if matches!(
            kind,
            PolicyKind::Resource | PolicyKind::Rcp | PolicyKind::VpcEndpoint
        ) {
            match &draft.principal {
                None => {
                    return Err(PolicyError::malformed(
                        MSG_PRINCIPAL_MISSING,
                        Some(loc.clone()),
                    ))
                }
                Some(p) => {
                    if p.negated && draft.effect == "Allow" {
                        return Err(PolicyError::malformed(
                            MSG_NOT_PRINCIPAL_ALLOW,
                            Some(at(loc, "NotPrincipal")),
                        ));
                    }
                    check_principals(p, loc)?;
                }
            }
        }
        if kind == PolicyKind::Rcp && draft.effect == "Allow" && !is_rcp_full_access(draft) {
            return Err(PolicyError::malformed(MSG_RCP_ALLOW, Some(loc.clone())));
        }
    }
    Ok(())
}

fn is_rcp_full_access(draft: &Draft) -> bool {
    let star =
        |patterns: &[String]| patterns.len() == 1 && patterns.first().is_some_and(|p| p == "*");
    draft.conditions.is_empty()
        && draft
            .principal
            .as_ref()
            .is_some_and(|p| !p.negated && p.principals == PrincipalSpec::Everyone)
        && draft
            .action
            .as_ref()
            .is_some_and(|a| !a.negated && star(&a.patterns))
        && draft
            .resource
            .as_ref()
            .is_some_and(|r| !r.negated && star(&r.patterns))
}

/// A trust-policy action must be one of the STS actions a trust policy governs; a wildcard is
/// accepted when it covers at least one of them (`sts:*`, `sts:AssumeRole*`).
fn trust_action_ok(pattern: &str) -> bool {
    let lower = pattern.to_ascii_lowercase();
    if !lower.contains(['*', '?']) {
        return TRUST_ACTIONS.contains(&lower.as_str());
    }
    let compiled = super::pattern::Glob::new(&lower);
    TRUST_ACTIONS.iter().any(|a| compiled.matches(a))
}

fn check_principals(block: &PrincipalBlock, location: &str) -> Result<(), PolicyError> {
    let PrincipalSpec::Map(map) = &block.principals else {
        return Ok(());
    };
    let field = if block.negated {
        "NotPrincipal"
    } else {
        "Principal"
    };
    for (kind, values) in map {
        let invalid = |value: &str| {
            PolicyError::malformed(
                &format!(
                    "Invalid principal in policy: \"{}\":\"{value}\"",
                    kind.as_str()
                ),
                Some(format!("{location}.{field}.{}", kind.as_str())),
            )
        };
        if values.is_empty() {
            return Err(invalid(""));
        }
        for value in values {
            let ok = match kind {
                PrincipalType::Aws => super::principal::aws_principal_ok(value),
                PrincipalType::Service
                | PrincipalType::Federated
                | PrincipalType::CanonicalUser => {
                    !value.is_empty() && (value == "*" || !value.contains(['*', '?']))
                }
            };
            if !ok {
                return Err(invalid(value));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod reference;
mod syntax;
#[cfg(test)]
mod tests;
