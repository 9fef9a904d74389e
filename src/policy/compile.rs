//! Compiling a [`PolicyDocument`] into matchers, and the request-side names they match.
//!
//! Compilation happens once, when a snapshot is built; evaluation then only borrows. Each
//! policy carries an action index: statements are grouped by the service prefix of their
//! `Action` patterns, so a request for `s3:GetObject` looks only at the statements that name
//! `s3` (and at those that can match any service: `*`, `NotAction`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::arn::{colon_offsets, ArnParts, ArnPattern};
use super::condition::{CompiledCondition, ConditionLookup};
use super::document::{Effect, PolicyDocument, PrincipalSpec, PrincipalType};
use super::pattern::{Glob, NoVars, Syntax, VarLookup};
use super::principal::PrincipalRef;
use super::PolicyKind;

/// A request action, normalised once: `s3:GetObject` → service `s3`, name `getobject`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionName {
    raw: Box<str>,
    lower: Box<str>,
    colon: usize,
}

/// A request resource: an ARN (matched segment by segment) or any other text such as `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceName {
    raw: Box<str>,
    /// ASCII-lowercased copy with the same byte offsets, for the case-insensitive ARN head.
    lower: Box<str>,
    /// Where the first five colons are, when the resource is an ARN: split once here, never
    /// on the decision path.
    colons: Option<[usize; 5]>,
}

/// A compiled policy, ready for evaluation.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    id: Arc<str>,
    kind: PolicyKind,
    statements: Box<[CompiledStatement]>,
    /// Service prefix → statements naming it, sorted by prefix for a binary search.
    by_service: Box<[ServiceBucket]>,
    any_service: Box<[u32]>,
    context_keys: Box<[Box<str>]>,
    /// Whether one of `context_keys` follows from the clock ([`CLOCK_KEYS`]): found once here,
    /// since a decision cache asks it of every request.
    reads_clock: bool,
}

/// The request context keys whose values follow from the clock: a decision that reads one
/// holds only for the second it was made in.
pub const CLOCK_KEYS: [&str; 3] = ["aws:currenttime", "aws:epochtime", "aws:multifactorauthage"];

/// True when `keys` (lowercased, sorted, as [`CompiledPolicy::context_keys`] gives them)
/// holds one of the [`CLOCK_KEYS`].
pub fn reads_clock(keys: &[Box<str>]) -> bool {
    CLOCK_KEYS
        .iter()
        .any(|k| keys.binary_search_by(|x| (**x).cmp(k)).is_ok())
}

/// A service prefix and the statements whose `Action` names it.
type ServiceBucket = (Box<str>, Box<[u32]>);

/// A compiled statement.
#[derive(Debug, Clone)]
pub struct CompiledStatement {
    index: u32,
    sid: Option<Arc<str>>,
    effect: Effect,
    principal: Option<PrincipalMatcher>,
    actions: ActionMatcher,
    resources: Option<ResourceMatcher>,
    conditions: Box<[CompiledCondition]>,
}

/// The compiled `Principal` / `NotPrincipal` element.
#[derive(Debug, Clone)]
pub struct PrincipalMatcher {
    /// True for `NotPrincipal`.
    pub negated: bool,
    /// The principals named.
    pub refs: Box<[PrincipalRef]>,
}

/// A statement's `Action`/`NotAction`, arranged so that a statement naming hundreds of
/// actions (AWS's managed policies do) costs two binary searches, not a scan.
#[derive(Debug, Clone)]
struct ActionMatcher {
    negated: bool,
    /// The pattern `*`.
    any: bool,
    /// Lowercased `service:name` without wildcards, sorted.
    exact: Box<[Box<str>]>,
    /// Lowercased service prefix and name pattern, sorted by service.
    wildcards: Box<[(Box<str>, Glob)]>,
}

#[derive(Debug, Clone)]
struct ResourceMatcher {
    negated: bool,
    patterns: Box<[ResourcePattern]>,
}

#[derive(Debug, Clone)]
enum ResourcePattern {
    Any,
    Arn(ArnPattern),
    /// A pattern that is not ARN-shaped, matched against the whole resource text.
    Text(Glob),
}

// === impl ActionName ===

impl ActionName {
    /// Normalises `service:Name`; `None` without a colon.
    pub fn new(action: &str) -> Option<Self> {
        let colon = action.find(':')?;
        Some(Self {
            raw: action.into(),
            lower: action.to_ascii_lowercase().into(),
            colon,
        })
    }

    /// The action as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The lowercased service prefix.
    pub fn service(&self) -> &str {
        self.lower.get(..self.colon).unwrap_or("")
    }

    /// The lowercased action name.
    pub fn name(&self) -> &str {
        self.lower.get(self.colon + 1..).unwrap_or("")
    }

    /// The whole action, lowercased.
    pub fn lower(&self) -> &str {
        &self.lower
    }
}

// === impl ResourceName ===

impl ResourceName {
    /// Wraps a resource ARN or `*`.
    pub fn new(resource: &str) -> Self {
        Self {
            raw: resource.into(),
            lower: resource.to_ascii_lowercase().into(),
            colons: colon_offsets(resource),
        }
    }

    /// The resource as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The ARN segments, when the resource is an ARN.
    pub fn arn(&self) -> Option<ArnParts<'_>> {
        ArnParts::from_colons(&self.raw, self.colons?)
    }

    /// The segments as `Resource` patterns compare them: the head lowercased (partition,
    /// service, region and account are case-insensitive), the resource part as given.
    pub(crate) fn matching_parts(&self) -> Option<ArnParts<'_>> {
        let colons = self.colons?;
        let mut parts = ArnParts::from_colons(&self.lower, colons)?;
        parts.segments[5] = ArnParts::from_colons(&self.raw, colons)?.segments[5];
        Some(parts)
    }

    /// The account segment, when the resource is an ARN that names one.
    pub fn account(&self) -> Option<&str> {
        self.arn().map(|a| a.account()).filter(|a| !a.is_empty())
    }
}

// === impl CompiledPolicy ===

impl CompiledPolicy {
    /// Compiles a validated document. `id` names the policy in decisions (an ARN, or a label
    /// such as `user/alice/inline/S3Access`).
    pub fn compile(id: impl Into<Arc<str>>, kind: PolicyKind, document: &PolicyDocument) -> Self {
        let variables = document.version.supports_variables();
        let statements: Box<[CompiledStatement]> = document
            .statements
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                CompiledStatement {
                    index,
                    sid: s.sid.as_deref().filter(|s| !s.is_empty()).map(Arc::from),
                    effect: s.effect,
                    principal: s.principal.as_ref().map(|p| PrincipalMatcher {
                        negated: p.negated,
                        refs: compile_principals(&p.principals),
                    }),
                    actions: ActionMatcher::compile(s.action.negated, &s.action.patterns),
                    resources: s.resource.as_ref().map(|r| ResourceMatcher {
                        negated: r.negated,
                        patterns: r
                            .patterns
                            .iter()
                            .map(|p| compile_resource(p, variables))
                            .collect(),
                    }),
                    conditions: s
                        .conditions
                        .iter()
                        .map(|c| CompiledCondition::compile(c, variables))
                        .collect(),
                }
            })
            .collect();

        let mut by_service: BTreeMap<Box<str>, Vec<u32>> = BTreeMap::new();
        let mut any_service = Vec::new();
        for st in statements.iter() {
            if st.actions.negated {
                any_service.push(st.index);
                continue;
            }
            for service in st.actions.services() {
                let bucket = by_service.entry(service.into()).or_default();
                if bucket.last() != Some(&st.index) {
                    bucket.push(st.index);
                }
            }
            if st.actions.any {
                any_service.push(st.index);
                // The statement is reachable for every service; drop its per-service entries
                // so it is visited once.
                for bucket in by_service.values_mut() {
                    bucket.retain(|i| *i != st.index);
                }
            }
        }
        by_service.retain(|_, v| !v.is_empty());

        let mut context_keys: Vec<Box<str>> = statements
            .iter()
            .flat_map(|s| {
                s.conditions.iter().flat_map(|c| {
                    std::iter::once(Box::from(c.key_lower())).chain(c.variable_keys())
                })
            })
            .chain(statements.iter().flat_map(|s| {
                s.resources
                    .iter()
                    .flat_map(|r| r.patterns.iter())
                    .flat_map(ResourcePattern::variable_keys)
            }))
            .collect();
        context_keys.sort_unstable();
        context_keys.dedup();

        Self {
            reads_clock: reads_clock(&context_keys),
            id: id.into(),
            kind,
            statements,
            by_service: by_service
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            any_service: any_service.into_boxed_slice(),
            context_keys: context_keys.into_boxed_slice(),
        }
    }

    /// The same statements under another kind: a managed policy used as a permissions
    /// boundary is compiled once and reported as a boundary in decisions.
    pub fn with_kind(&self, kind: PolicyKind) -> Self {
        Self {
            kind,
            ..self.clone()
        }
    }

    /// The policy's id.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The policy's kind.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// Every statement, in document order.
    pub fn statements(&self) -> &[CompiledStatement] {
        &self.statements
    }

    /// The lowercased request context keys the policy's conditions and variables read. A
    /// decision cache keys on these values and no others.
    pub fn context_keys(&self) -> &[Box<str>] {
        &self.context_keys
    }

    /// True when one of [`Self::context_keys`] follows from the clock ([`CLOCK_KEYS`]).
    pub fn reads_clock(&self) -> bool {
        self.reads_clock
    }

    /// True when some statement is a `Deny`.
    pub fn has_deny(&self) -> bool {
        self.statements.iter().any(|s| s.effect == Effect::Deny)
    }

    /// The statements whose `Action`/`NotAction` can match an action of `service`, in
    /// document order. Others cannot apply and are never looked at.
    pub fn candidates<'a>(
        &'a self,
        service: &str,
    ) -> impl Iterator<Item = &'a CompiledStatement> + 'a {
        let bucket: &[u32] = self
            .by_service
            .binary_search_by(|(s, _)| (**s).cmp(service))
            .ok()
            .and_then(|i| self.by_service.get(i))
            .map_or(&[], |(_, b)| &b[..]);
        Merge {
            a: bucket,
            b: &self.any_service,
        }
        .filter_map(move |i| self.statements.get(i as usize))
    }
}

/// Merges two ascending index lists.
struct Merge<'a> {
    a: &'a [u32],
    b: &'a [u32],
}

impl Iterator for Merge<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match (self.a.split_first(), self.b.split_first()) {
            (Some((&x, ra)), Some((&y, rb))) => {
                if x <= y {
                    self.a = ra;
                    if x == y {
                        self.b = rb;
                    }
                    Some(x)
                } else {
                    self.b = rb;
                    Some(y)
                }
            }
            (Some((&x, ra)), None) => {
                self.a = ra;
                Some(x)
            }
            (None, Some((&y, rb))) => {
                self.b = rb;
                Some(y)
            }
            (None, None) => None,
        }
    }
}

// === impl CompiledStatement ===

impl CompiledStatement {
    /// The statement's position in its document.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The `Sid`, when the statement has a non-empty one.
    pub fn sid(&self) -> Option<&Arc<str>> {
        self.sid.as_ref()
    }

    /// The effect.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The compiled `Principal` / `NotPrincipal`, if any.
    pub fn principal(&self) -> Option<&PrincipalMatcher> {
        self.principal.as_ref()
    }

    /// The conditions (all must hold).
    pub fn conditions(&self) -> &[CompiledCondition] {
        &self.conditions
    }

    /// Does `Action`/`NotAction` match the request action?
    pub fn matches_action(&self, action: &ActionName) -> bool {
        self.actions.matches(action) != self.actions.negated
    }

    /// Does `Resource`/`NotResource` match the request resource? A statement without either
    /// (a trust policy's) applies to the resource it is attached to.
    pub fn matches_resource(&self, resource: &ResourceName, vars: &dyn VarLookup) -> bool {
        self.matches_resource_split(resource, resource.matching_parts().as_ref(), vars)
    }

    /// [`CompiledStatement::matches_resource`] with the resource's segments split once per
    /// request by the caller (see [`ResourceName::matching_parts`]).
    pub(crate) fn matches_resource_split(
        &self,
        resource: &ResourceName,
        parts: Option<&ArnParts<'_>>,
        vars: &dyn VarLookup,
    ) -> bool {
        let Some(matcher) = &self.resources else {
            return true;
        };
        let any = matcher.patterns.iter().any(|p| match p {
            ResourcePattern::Any => true,
            ResourcePattern::Arn(pattern) => parts.is_some_and(|a| pattern.matches(a, vars)),
            ResourcePattern::Text(glob) => glob.matches_with(&resource.raw, vars, false),
        });
        any != matcher.negated
    }

    /// Do all conditions hold?
    pub fn matches_conditions(&self, ctx: &dyn ConditionLookup) -> bool {
        self.conditions.iter().all(|c| c.evaluate(ctx))
    }
}

// === impl ResourcePattern ===

impl ResourcePattern {
    fn variable_keys(&self) -> Vec<Box<str>> {
        match self {
            Self::Any => Vec::new(),
            Self::Arn(arn) => arn.globs().flat_map(Glob::variable_keys).collect(),
            Self::Text(glob) => glob.variable_keys().collect(),
        }
    }
}

// === impl ActionMatcher ===

impl ActionMatcher {
    fn compile(negated: bool, patterns: &[String]) -> Self {
        let mut any = false;
        let mut exact = Vec::new();
        let mut wildcards = Vec::new();
        for pattern in patterns {
            if pattern == "*" {
                any = true;
                continue;
            }
            let lower = pattern.to_ascii_lowercase();
            let (service, name) = lower.split_once(':').unwrap_or((&lower, ""));
            if name.contains(['*', '?']) {
                let glob = Glob::compile(
                    name,
                    Syntax {
                        wildcards: true,
                        variables: false,
                        lowercase: false,
                    },
                );
                wildcards.push((Box::<str>::from(service), glob));
            } else {
                exact.push(Box::<str>::from(lower.as_str()));
            }
        }
        exact.sort_unstable();
        exact.dedup();
        wildcards.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            negated,
            any,
            exact: exact.into_boxed_slice(),
            wildcards: wildcards.into_boxed_slice(),
        }
    }

    /// Does some pattern match (before `NotAction` negation)?
    fn matches(&self, action: &ActionName) -> bool {
        if self.any
            || self
                .exact
                .binary_search_by(|e| (**e).cmp(action.lower()))
                .is_ok()
        {
            return true;
        }
        let service = action.service();
        let start = self.wildcards.partition_point(|(s, _)| **s < *service);
        self.wildcards
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .take_while(|(s, _)| **s == *service)
            .any(|(_, glob)| glob.matches_with(action.name(), &NoVars, false))
    }

    /// The distinct service prefixes the patterns name.
    fn services(&self) -> impl Iterator<Item = &str> {
        let exact = self
            .exact
            .iter()
            .map(|e| e.split_once(':').map_or(&**e, |(s, _)| s));
        let wild = self.wildcards.iter().map(|(s, _)| &**s);
        exact.chain(wild)
    }
}

fn compile_resource(pattern: &str, variables: bool) -> ResourcePattern {
    if pattern == "*" {
        return ResourcePattern::Any;
    }
    match ArnPattern::compile(pattern, variables, true) {
        Some(arn) => ResourcePattern::Arn(arn),
        None => ResourcePattern::Text(Glob::compile(
            pattern,
            Syntax {
                wildcards: true,
                variables,
                lowercase: false,
            },
        )),
    }
}

fn compile_principals(spec: &PrincipalSpec) -> Box<[PrincipalRef]> {
    match spec {
        PrincipalSpec::Everyone => Box::new([PrincipalRef::Everyone]),
        PrincipalSpec::Map(map) => map
            .iter()
            .flat_map(|(kind, values)| {
                values.iter().filter_map(move |v| match kind {
                    PrincipalType::Aws => PrincipalRef::parse_aws(v),
                    PrincipalType::Service => Some(PrincipalRef::Service(v.as_str().into())),
                    PrincipalType::Federated => Some(PrincipalRef::Federated(v.as_str().into())),
                    PrincipalType::CanonicalUser => {
                        Some(PrincipalRef::CanonicalUser(v.as_str().into()))
                    }
                })
            })
            .collect(),
    }
}
