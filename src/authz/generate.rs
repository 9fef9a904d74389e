//! Policy generation from activity: the least-privilege identity policy that allows what one
//! principal was allowed to do, as IAM Access Analyzer generates one from CloudTrail.
//!
//! ```text
//! allowed (action, resource) ──describe──▶ canonical action, resource types' ARN formats
//!        ──generalise──▶ resource patterns per action ──group──▶ statements per service and
//!        resource set ──parse──▶ PolicyDocument (2012-10-17)
//! ```
//!
//! Resources keep the granularity they were seen at. An action that takes no resource type gets
//! `"*"` (IAM cannot scope it to anything else). An action with resource types gets the ARNs it
//! was seen on, except that when [`GenerateOptions::generalise_at`] or more ARNs of one resource
//! type differ only in one variable of the type's ARN format (the objects of one bucket, the
//! roles of one account), that variable becomes `*` (`arn:aws:s3:::bucket/*`). Partition,
//! region and account variables are never generalised, nor is anything across resource types.
//! Text of a seen ARN that a policy would read as a wildcard or a variable (`*`, `?`, `$`) is
//! escaped (`${*}`, `${?}`, `${$}`), so an exact resource matches only itself.
//!
//! What the generator knows about actions comes through [`DescribeAction`]: the AWS action
//! catalogue ([`ActionCatalog`]), or [`WithoutCatalogue`], which keeps every action as it was
//! seen and every resource as it was seen (an action the catalogue does not know is kept so
//! too). [`replay`] checks a generated policy against a decision with the
//! evaluator, so a generated policy can be verified against every decision it came from.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::{evaluate, Outcome, PolicySet, Principal, Request};
use crate::policy::catalog::ActionCatalog;
use crate::policy::{
    ArnParts, CompiledPolicy, ParseOptions, PolicyDocument, PolicyError, PolicyKind,
};

/// The default [`GenerateOptions::generalise_at`]: three ARNs that differ in one variable.
pub const DEFAULT_GENERALISE_AT: usize = 3;

/// How a policy is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// The number of distinct values of one variable of a resource type's ARN format, all
    /// other variables equal, from which that variable becomes `*`; 0 never generalises.
    pub generalise_at: usize,
}

/// What the generator needs to know about an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionShape {
    /// The action in AWS's canonical case, `service:Name`.
    pub canonical: String,
    /// The ARN formats of the resource types the action takes, with `${...}` variables; empty
    /// when it takes none (it is then granted on `"*"`).
    pub resource_formats: Vec<String>,
}

/// A source of [`ActionShape`]s: the action catalogue, or [`WithoutCatalogue`].
pub trait DescribeAction {
    /// The action's shape, or `None` when the action is unknown (it is then kept as seen, with
    /// the resources seen).
    fn describe(&self, action: &str) -> Option<ActionShape>;
}

/// Knows no action: every action is kept as seen, with the resources seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct WithoutCatalogue;

/// A generated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedPolicy {
    /// The document, parsed back with the identity-policy rules.
    pub document: PolicyDocument,
    /// The document as JSON, elements in AWS's order.
    pub json: Value,
    /// The distinct (action, resource) pairs it was generated from.
    pub pairs: usize,
}

/// Why no policy could be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// There was no allowed activity to generate from.
    #[error("no allowed activity to generate a policy from")]
    NoActivity,
    /// An action is not `service:Name`.
    #[error("invalid action `{0}`: expected `service:Name`")]
    InvalidAction(String),
    /// A resource is empty.
    #[error("the resource of action `{0}` is empty")]
    EmptyResource(String),
    /// The generated document does not parse; a bug in the generator, reported rather than
    /// handed out.
    #[error("the generated policy is invalid: {code}: {message}")]
    Invalid {
        /// AWS's error code.
        code: crate::error::AwsCode,
        /// AWS's message.
        message: String,
    },
}

/// Why a decision could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The principal is not an ARN the evaluator reads.
    #[error("invalid principal `{0}`")]
    Principal(String),
    /// The action or resource is not a valid request.
    #[error("invalid request: {0}")]
    Request(String),
    /// A bug: what should not happen, reported instead of a panic.
    #[error("internal error: {0}")]
    Unreachable(&'static str),
}

/// A resource type's ARN format, split into literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    pieces: Vec<Piece>,
    /// The variables (in order) and whether each may be generalised.
    variables: Vec<bool>,
    literal_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Variable,
}

// === impl GenerateOptions ===

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            generalise_at: DEFAULT_GENERALISE_AT,
        }
    }
}

// === impl WithoutCatalogue ===

impl DescribeAction for WithoutCatalogue {
    fn describe(&self, _action: &str) -> Option<ActionShape> {
        None
    }
}

// === impl ActionCatalog ===

impl DescribeAction for ActionCatalog {
    /// The catalogue's spelling, and the ARN formats of the resource types its table lists
    /// for the action (required or not: a decision names one resource, of any of them).
    fn describe(&self, action: &str) -> Option<ActionShape> {
        let (service, entry) = self.action(action)?;
        Some(ActionShape {
            canonical: format!("{}:{}", service.prefix(), entry.name()),
            resource_formats: entry
                .resource_types()
                .iter()
                .filter_map(|r| service.resource_type(r.name()))
                .map(|t| t.arn_format().to_owned())
                .collect(),
        })
    }
}

// === impl GeneratedPolicy ===

impl GeneratedPolicy {
    /// The document as indented JSON text.
    pub fn to_pretty(&self) -> String {
        // Serializing a `Value` cannot fail; the fallback keeps this total.
        serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| self.json.to_string())
    }

    /// The document compiled for evaluation.
    pub fn compile(&self, id: &str) -> CompiledPolicy {
        CompiledPolicy::compile(id, PolicyKind::Identity, &self.document)
    }
}

/// Generates the least-privilege identity policy that allows every `(action, resource)` of
/// `activity` (the allowed decisions of one principal), as the module documentation describes.
/// The result depends only on the set of pairs, not on their order or repetition.
pub fn generate<'a>(
    activity: impl IntoIterator<Item = (&'a str, &'a str)>,
    describe: &dyn DescribeAction,
    options: GenerateOptions,
) -> Result<GeneratedPolicy, GenerateError> {
    // Action (lowercased) → (its canonical spelling, its formats when the action is known, the
    // resources seen).
    type Seen<'a> = (String, Option<Vec<String>>, BTreeSet<&'a str>);
    let mut actions: BTreeMap<String, Seen<'a>> = BTreeMap::new();
    let mut pairs = BTreeSet::new();
    for (action, resource) in activity {
        let Some((service, name)) = action.split_once(':') else {
            return Err(GenerateError::InvalidAction(action.to_owned()));
        };
        if service.is_empty() || name.is_empty() || name.contains(':') {
            return Err(GenerateError::InvalidAction(action.to_owned()));
        }
        if resource.is_empty() {
            return Err(GenerateError::EmptyResource(action.to_owned()));
        }
        let key = action.to_ascii_lowercase();
        pairs.insert((key.clone(), resource));
        let entry = actions.entry(key).or_insert_with(|| {
            match describe.describe(action) {
                Some(shape) => (
                    shape.canonical,
                    Some(shape.resource_formats),
                    BTreeSet::new(),
                ),
                // Unknown: IAM's service prefixes are lower case; the name is kept as seen.
                None => (
                    format!("{}:{name}", service.to_ascii_lowercase()),
                    None,
                    BTreeSet::new(),
                ),
            }
        });
        entry.2.insert(resource);
    }
    if actions.is_empty() {
        return Err(GenerateError::NoActivity);
    }

    let granted = actions
        .into_values()
        .map(|(canonical, formats, resources)| {
            let patterns = match formats {
                // IAM cannot scope an action that takes no resource type to anything but `*`.
                Some(formats) if formats.is_empty() => vec!["*".to_owned()],
                Some(formats) => resource_patterns(&formats, &resources, options),
                None => resource_patterns(&[], &resources, options),
            };
            (canonical, patterns)
        })
        .collect();
    assemble(granted, pairs.len())
}

/// Generates an identity policy from actions alone (`service:Name`, as Access Advisor's
/// action-level data names them), as Access Analyzer does when it cannot see resources: each
/// action on its resource types' ARN formats with their `${...}` placeholders (the partition
/// and account variables filled with `partition` and `account`), or on `"*"` when
/// `placeholders` is false or the action takes no resource type.
pub fn generate_from_actions<'a>(
    actions: impl IntoIterator<Item = &'a str>,
    describe: &dyn DescribeAction,
    placeholders: bool,
    partition: &str,
    account: &str,
) -> Result<GeneratedPolicy, GenerateError> {
    let mut granted: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for action in actions {
        let Some((service, name)) = action.split_once(':') else {
            return Err(GenerateError::InvalidAction(action.to_owned()));
        };
        if service.is_empty() || name.is_empty() || name.contains(':') {
            return Err(GenerateError::InvalidAction(action.to_owned()));
        }
        let shape = describe.describe(action);
        let canonical = shape.as_ref().map_or_else(
            || format!("{}:{name}", service.to_ascii_lowercase()),
            |s| s.canonical.clone(),
        );
        let resources = match shape {
            Some(shape) if placeholders && !shape.resource_formats.is_empty() => shape
                .resource_formats
                .iter()
                .map(|format| fill_placeholders(format, partition, account))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            _ => vec!["*".to_owned()],
        };
        granted
            .entry(action.to_ascii_lowercase())
            .or_insert((canonical, resources));
    }
    let count = granted.len();
    assemble(granted.into_values().collect(), count)
}

/// A resource type's ARN format with its partition and account variables filled in; the
/// other variables stay as `${...}` placeholders for the reader to replace.
fn fill_placeholders(format: &str, partition: &str, account: &str) -> String {
    format
        .replace("${Partition}", partition)
        .replace("${Account}", account)
}

/// The document granting each `(canonical action, resource patterns)`: statements grouped by
/// service, then by resource set; actions sorted within a statement.
fn assemble(
    granted: Vec<(String, Vec<String>)>,
    pairs: usize,
) -> Result<GeneratedPolicy, GenerateError> {
    if granted.is_empty() {
        return Err(GenerateError::NoActivity);
    }
    // Service → resource set → actions.
    let mut services: BTreeMap<String, BTreeMap<Vec<String>, BTreeSet<String>>> = BTreeMap::new();
    for (canonical, patterns) in granted {
        let service = canonical
            .split_once(':')
            .map_or(canonical.as_str(), |(s, _)| s)
            .to_ascii_lowercase();
        services
            .entry(service)
            .or_default()
            .entry(patterns)
            .or_default()
            .insert(canonical);
    }

    let statements: Vec<Value> = services
        .into_values()
        .flat_map(BTreeMap::into_iter)
        .map(|(resources, actions)| {
            let mut actions: Vec<String> = actions.into_iter().collect();
            actions.sort_by_key(|a| a.to_ascii_lowercase());
            json!({
                "Effect": "Allow",
                "Action": one_or_many(actions),
                "Resource": one_or_many(resources),
            })
        })
        .collect();
    let json = json!({ "Version": "2012-10-17", "Statement": statements });
    let document = PolicyDocument::parse_with(
        &json.to_string(),
        ParseOptions::lenient(PolicyKind::Identity),
    )
    .map_err(|e: PolicyError| GenerateError::Invalid {
        code: e.code(),
        message: e.message().to_owned(),
    })?;
    Ok(GeneratedPolicy {
        document,
        json,
        pairs,
    })
}

/// Does the caller `caller` (a decision's principal ARN) belong to `wanted`? An ARN matches
/// itself; a role's ARN (`arn:aws:iam::A:role/path/R`) also matches its sessions
/// (`arn:aws:sts::A:assumed-role/R/*`), whose ARNs omit the role's path.
pub fn principal_matches(wanted: &str, caller: &str) -> bool {
    if wanted == caller {
        return true;
    }
    let role = ArnParts::split(wanted).and_then(|arn| {
        let name = arn.resource().strip_prefix("role/")?.rsplit('/').next()?;
        (arn.service() == "iam" && !name.is_empty()).then(|| (arn.partition(), arn.account(), name))
    });
    let Some((partition, account, role)) = role else {
        return false;
    };
    ArnParts::split(caller).is_some_and(|arn| {
        arn.partition() == partition
            && arn.service() == "sts"
            && arn.account() == account
            && arn
                .resource()
                .strip_prefix("assumed-role/")
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(name, session)| name == role && !session.is_empty())
    })
}

/// Evaluates `principal` doing `action` on `resource` against `policy` as its only identity
/// policy, and returns the outcome.
///
/// The target is given a resource-based policy that names the caller's account: delegation,
/// which grants nothing by itself, so the identity policy decides, as it does for an AWS
/// resource with its default policy. Without it a role trust policy or KMS key policy would be
/// missing and no identity policy could allow `sts:AssumeRole*` or a KMS key action
/// (IAM-SEMANTICS §3.3), and no cross-account decision could be replayed.
pub fn replay(
    policy: &Arc<CompiledPolicy>,
    principal: &str,
    action: &str,
    resource: &str,
) -> Result<Outcome, ReplayError> {
    let caller =
        Principal::parse(principal).map_err(|_| ReplayError::Principal(principal.into()))?;
    let request = Request::try_new(caller.clone(), action, resource)
        .map_err(|e| ReplayError::Request(e.to_string()))?;
    let delegation = match caller.account() {
        None => None,
        Some(account) => {
            let (kind, statement) = if request.action().lower().starts_with("sts:assumerole") {
                // A trust policy has no `Resource`.
                let statement = json!({
                    "Effect": "Allow",
                    "Principal": { "AWS": account },
                    "Action": "sts:*",
                });
                (PolicyKind::Trust, statement)
            } else {
                let statement = json!({
                    "Effect": "Allow",
                    "Principal": { "AWS": account },
                    "Action": "*",
                    "Resource": "*",
                });
                (PolicyKind::Resource, statement)
            };
            let text = json!({ "Version": "2012-10-17", "Statement": [statement] }).to_string();
            let doc = PolicyDocument::parse_with(&text, ParseOptions::lenient(kind))
                .map_err(|_| ReplayError::Unreachable("the delegating policy does not parse"))?;
            Some(CompiledPolicy::compile("delegation", kind, &doc))
        }
    };
    let identity = [Arc::clone(policy)];
    let set = PolicySet {
        identity: &identity,
        resource: delegation.as_ref(),
        ..PolicySet::default()
    };
    Ok(evaluate(&set, &request).outcome)
}

/// The patterns one action is granted on, sorted.
fn resource_patterns(
    formats: &[String],
    resources: &BTreeSet<&str>,
    options: GenerateOptions,
) -> Vec<String> {
    let templates: Vec<Template> = formats.iter().filter_map(|f| Template::parse(f)).collect();
    let mut out = BTreeSet::new();
    // Template index → the variable values of the ARNs of that type.
    let mut typed: BTreeMap<usize, Vec<Vec<&str>>> = BTreeMap::new();
    for &resource in resources {
        // The most specific type the ARN fits: the most variables, then the most literal text.
        let best = templates
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.capture(resource).map(|values| (i, t, values)))
            .max_by_key(|(i, t, _)| (t.variables.len(), t.literal_len, std::cmp::Reverse(*i)));
        match best {
            Some((i, _, values)) => typed.entry(i).or_default().push(values),
            None if resource == "*" => {
                out.insert("*".to_owned());
            }
            None => {
                out.insert(escape(resource));
            }
        }
    }
    for (i, mut arns) in typed {
        let Some(template) = templates.get(i) else {
            continue;
        };
        if options.generalise_at > 0 {
            for variable in (0..template.variables.len()).rev() {
                if template.variables.get(variable) != Some(&true) {
                    continue;
                }
                // The ARNs that agree on every other variable, grouped.
                let mut groups: BTreeMap<Vec<&str>, BTreeSet<&str>> = BTreeMap::new();
                for values in &arns {
                    let mut others = values.clone();
                    if let Some(slot) = others.get_mut(variable) {
                        *slot = "";
                    }
                    if let Some(value) = values.get(variable) {
                        groups.entry(others).or_default().insert(value);
                    }
                }
                for (others, distinct) in groups {
                    if distinct.len() >= options.generalise_at {
                        out.insert(template.render(&others, Some(variable)));
                        arns.retain(|values| {
                            values
                                .iter()
                                .enumerate()
                                .any(|(j, v)| j != variable && others.get(j) != Some(v))
                        });
                    }
                }
            }
        }
        for values in arns {
            out.insert(template.render(&values, None));
        }
    }
    out.into_iter().collect()
}

/// A single value as a string, several as an array.
fn one_or_many(values: Vec<String>) -> Value {
    match <[String; 1]>::try_from(values) {
        Ok([single]) => Value::String(single),
        Err(many) => Value::Array(many.into_iter().map(Value::String).collect()),
    }
}

/// `text` as policy text that matches exactly `text`: `*`, `?` and `$` are escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' => out.push_str("${*}"),
            '?' => out.push_str("${?}"),
            '$' => out.push_str("${$}"),
            c => out.push(c),
        }
    }
    out
}

// === impl Template ===

impl Template {
    /// Splits an ARN format such as `arn:${Partition}:s3:::${BucketName}/${ObjectName}`.
    /// `None` when a `${` is not closed or two variables touch (nothing would separate their
    /// values).
    fn parse(format: &str) -> Option<Self> {
        let mut pieces = Vec::new();
        let mut variables = Vec::new();
        let mut literal_len = 0;
        let mut rest = format;
        while !rest.is_empty() {
            match rest.find("${") {
                Some(0) => {
                    let end = rest.find('}')?;
                    let name = rest.get(2..end)?.to_ascii_lowercase();
                    if matches!(pieces.last(), Some(Piece::Variable)) {
                        return None;
                    }
                    pieces.push(Piece::Variable);
                    // Never generalised across partitions, regions or accounts.
                    variables.push(
                        !["partition", "region", "account"]
                            .iter()
                            .any(|fixed| name.contains(fixed)),
                    );
                    rest = rest.get(end + 1..)?;
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = rest.get(..end)?;
                    literal_len += literal.len();
                    pieces.push(Piece::Literal(literal.to_owned()));
                    rest = rest.get(end..)?;
                }
            }
        }
        Some(Self {
            pieces,
            variables,
            literal_len,
        })
    }

    /// The values of the variables when `arn` fits the format: literal text matches exactly
    /// (so the pattern rendered from the values matches the ARN), a variable takes the shortest
    /// non-empty text up to the next literal, and the last one takes the rest.
    fn capture<'a>(&self, arn: &'a str) -> Option<Vec<&'a str>> {
        let mut values = Vec::with_capacity(self.variables.len());
        let mut pos = 0;
        let mut pieces = self.pieces.iter().peekable();
        while let Some(piece) = pieces.next() {
            let rest = arn.get(pos..)?;
            match piece {
                Piece::Literal(literal) => {
                    if !rest.starts_with(literal.as_str()) {
                        return None;
                    }
                    pos += literal.len();
                }
                Piece::Variable => {
                    let first = rest.chars().next()?.len_utf8();
                    let len = match pieces.peek() {
                        None => rest.len(),
                        Some(Piece::Literal(next)) => {
                            first + rest.get(first..)?.find(next.as_str())?
                        }
                        Some(Piece::Variable) => return None,
                    };
                    values.push(rest.get(..len)?);
                    pos += len;
                }
            }
        }
        (pos == arn.len()).then_some(values)
    }

    /// The pattern for `values`, with variable `wild` (if any) as `*`.
    fn render(&self, values: &[&str], wild: Option<usize>) -> String {
        let mut out = String::new();
        let mut variable = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(literal) => out.push_str(&escape(literal)),
                Piece::Variable => {
                    if wild == Some(variable) {
                        out.push('*');
                    } else {
                        out.push_str(&escape(values.get(variable).copied().unwrap_or("")));
                    }
                    variable += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
