//! The decision procedure.

use std::sync::Arc;

use crate::policy::{ArnParts, CompiledPolicy, CompiledStatement, Effect, PolicyKind};

use super::decision::{Decision, Outcome, Rule, StatementRef, Trace, TraceEntry};
use super::principal::{Principal, PrincipalMatch};
use super::request::Request;

/// The policies that apply to one request. Empty slices mean "none of this type".
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicySet<'a> {
    /// Identity-based policies: the user's and its groups', or the role's.
    pub identity: &'a [Arc<CompiledPolicy>],
    /// The permissions boundary of the user or role (normally one policy).
    pub boundary: &'a [Arc<CompiledPolicy>],
    /// Session policies of a role or federated session (inline and managed).
    pub session: &'a [Arc<CompiledPolicy>],
    /// The resource-based policy of the target (a role's trust policy for `sts:AssumeRole*`).
    pub resource: Option<&'a CompiledPolicy>,
    /// SCPs on the caller's account path, root first; every level must allow.
    pub scp: &'a [OrgLevel],
    /// RCPs on the resource's account path, root first; every level must allow.
    pub rcp: &'a [OrgLevel],
    /// Policies of the VPC endpoint the request came through.
    pub vpc_endpoint: &'a [Arc<CompiledPolicy>],
}

/// One level of an organization path (root, an OU, the account) and its policies.
#[derive(Debug, Clone, Default)]
pub struct OrgLevel {
    /// The level's name (`r-abcd`, `ou-…`, the account id).
    pub name: Arc<str>,
    /// The policies attached at this level.
    pub policies: Vec<Arc<CompiledPolicy>>,
}

/// Decides `request` against `policies`.
pub fn evaluate(policies: &PolicySet<'_>, request: &Request) -> Decision {
    decide(policies, request, &mut Quiet)
}

/// Decides `request` and lists every statement that applied.
pub fn evaluate_explained(policies: &PolicySet<'_>, request: &Request) -> (Decision, Trace) {
    let mut trace = Trace::default();
    let decision = decide(policies, request, &mut trace);
    (decision, trace)
}

/// Receives the applicable statements. The quiet observer compiles to nothing, so the
/// decision path pays for explanations only when one is asked for.
trait Observer {
    const TRACING: bool;
    /// Notes the rule that decided.
    fn rule(&mut self, _rule: Rule) {}
    fn record(
        &mut self,
        kind: PolicyKind,
        policy: &CompiledPolicy,
        statement: &CompiledStatement,
        principal_match: Option<PrincipalMatch>,
    );
}

struct Quiet;

impl Observer for Quiet {
    const TRACING: bool = false;
    fn record(
        &mut self,
        _: PolicyKind,
        _: &CompiledPolicy,
        _: &CompiledStatement,
        _: Option<PrincipalMatch>,
    ) {
    }
}

impl Observer for Trace {
    const TRACING: bool = true;
    fn rule(&mut self, rule: Rule) {
        self.rule = Some(rule);
    }
    fn record(
        &mut self,
        kind: PolicyKind,
        policy: &CompiledPolicy,
        statement: &CompiledStatement,
        principal_match: Option<PrincipalMatch>,
    ) {
        self.entries.push(TraceEntry {
            policy_type: kind,
            statement: statement_ref(policy, statement),
            effect: statement.effect(),
            principal_match,
        });
    }
}

fn statement_ref(policy: &CompiledPolicy, statement: &CompiledStatement) -> StatementRef {
    StatementRef {
        policy: Arc::clone(policy.id()),
        index: statement.index(),
        sid: statement.sid().cloned(),
    }
}

type Grant<'p> = (&'p CompiledPolicy, &'p CompiledStatement, PrincipalMatch);

/// One evaluation: the request, the observer, and the first explicit deny seen.
struct Run<'r, 'o, O: Observer> {
    request: &'r Request,
    /// The resource's ARN segments, split once for every statement to use.
    resource_parts: Option<ArnParts<'r>>,
    has_boundary: bool,
    observer: &'o mut O,
    deny: Option<Decision>,
}

impl<O: Observer> Run<'_, '_, O> {
    /// Scans one policy: records its first applicable `Deny` (if no earlier one) and returns its
    /// strongest applicable `Allow`. With `want_allow` false, only `Deny` statements are looked
    /// at (an allow of this type was already found).
    fn scan<'p>(
        &mut self,
        policy: &'p CompiledPolicy,
        kind: PolicyKind,
        want_allow: bool,
    ) -> Option<Grant<'p>> {
        let request = self.request;
        let mut best: Option<Grant<'p>> = None;
        for statement in policy.candidates(request.action().service()) {
            let is_allow = statement.effect() == Effect::Allow;
            if is_allow
                && !O::TRACING
                && (!want_allow || best.is_some_and(|(_, _, m)| m == PrincipalMatch::Direct))
            {
                continue;
            }
            if !statement.matches_action(request.action())
                || !statement.matches_resource_split(
                    request.resource(),
                    self.resource_parts.as_ref(),
                    request.context(),
                )
            {
                continue;
            }
            let principal_match = match statement.principal() {
                None => None,
                Some(matcher) => match request.principal().matches(matcher, self.has_boundary) {
                    Some(m) => Some(m),
                    None => continue,
                },
            };
            if !statement.matches_conditions(request.context()) {
                continue;
            }
            self.observer
                .record(kind, policy, statement, principal_match);
            if is_allow {
                let strength = principal_match.unwrap_or(PrincipalMatch::Direct);
                if best.is_none_or(|(_, _, m)| strength > m) {
                    best = Some((policy, statement, strength));
                }
            } else if self.deny.is_none() {
                self.deny = Some(Decision {
                    outcome: Outcome::ExplicitDeny,
                    policy_type: Some(kind),
                    statement: Some(statement_ref(policy, statement)),
                    rule: None,
                });
                if !O::TRACING {
                    return best;
                }
            }
        }
        best
    }

    /// Scans policies of one type; returns the first allow. In quiet mode the first explicit
    /// deny ends the evaluation: it is returned as `Err`, and nothing after it is looked at.
    fn scan_all<'p>(
        &mut self,
        policies: impl IntoIterator<Item = &'p CompiledPolicy>,
        kind: PolicyKind,
    ) -> Result<Option<Grant<'p>>, Decision> {
        let mut grant = None;
        for policy in policies {
            let found = self.scan(policy, kind, grant.is_none());
            grant = grant.or(found);
            match &self.deny {
                Some(deny) if !O::TRACING => return Err(deny.clone()),
                _ => {}
            }
        }
        Ok(grant)
    }
}

/// Borrows shared policies for [`Run::scan_all`].
fn arcs(policies: &[Arc<CompiledPolicy>]) -> impl Iterator<Item = &CompiledPolicy> {
    policies.iter().map(|p| &**p)
}

fn allow(kind: PolicyKind, grant: Option<Grant<'_>>) -> Decision {
    Decision {
        outcome: Outcome::Allow,
        policy_type: Some(kind),
        statement: grant.map(|(p, s, _)| statement_ref(p, s)),
        rule: None,
    }
}

fn implicit(kind: PolicyKind) -> Decision {
    Decision {
        outcome: Outcome::ImplicitDeny,
        policy_type: Some(kind),
        statement: None,
        rule: None,
    }
}

fn decide<O: Observer>(set: &PolicySet<'_>, request: &Request, observer: &mut O) -> Decision {
    let free = needs_no_permission(request);
    if free && !O::TRACING {
        return no_permission_required();
    }
    // An explanation still lists the statements that applied: they are what the rule overrode.
    let decision = decide_or_deny(set, request, observer).unwrap_or_else(|deny| deny);
    let rule = if free {
        Some(Rule::NoPermissionRequired)
    } else {
        decision.rule
    };
    if let Some(rule) = rule {
        observer.rule(rule);
    }
    if free {
        no_permission_required()
    } else {
        decision
    }
}

/// `sts:GetCallerIdentity` by a caller with AWS credentials (one that belongs to an account).
/// "No permissions are required to perform this operation. If an administrator attaches a
/// policy to your identity that explicitly denies access to the sts:GetCallerIdentity action,
/// you can still perform this operation" `[BOTO-STS]` GetCallerIdentity; IAM-SEMANTICS §4
/// ("allowed even with an explicit Deny") and T24. Decided here, in the engine, so every
/// caller of it (the sidecar's `Authorize` and `BatchAuthorize`, `policy simulate`) answers
/// the same. Callers outside any account (anonymous, services, web identities) have no
/// credentials to call it with, and are decided by the policies as before.
fn needs_no_permission(request: &Request) -> bool {
    request.action().lower() == "sts:getcalleridentity" && request.principal().account().is_some()
}

fn no_permission_required() -> Decision {
    Decision {
        outcome: Outcome::Allow,
        policy_type: None,
        statement: None,
        rule: Some(Rule::NoPermissionRequired),
    }
}

/// True when the request names a KMS key (`arn:PARTITION:kms:REGION:ACCOUNT:key/ID`) in a
/// KMS action: not an alias (`alias/…`), and not `*`, the resource of actions such as
/// `kms:CreateKey` that act on no key.
fn targets_kms_key(request: &Request) -> bool {
    request.action().service() == "kms"
        && request
            .resource()
            .matching_parts()
            .is_some_and(|arn| arn.service() == "kms" && arn.resource().starts_with("key/"))
}

/// The decision procedure; `Err` carries an explicit deny found while scanning.
fn decide_or_deny<O: Observer>(
    set: &PolicySet<'_>,
    request: &Request,
    observer: &mut O,
) -> Result<Decision, Decision> {
    let principal = request.principal();
    let env = request.environment();
    let principal_account = principal.account();
    let resource_account = request.resource_account();
    let management = env.management_account.as_deref();
    let exempt_role = env.principal_is_service_linked_role;

    let mut run = Run {
        request,
        resource_parts: request.resource().matching_parts(),
        has_boundary: !set.boundary.is_empty(),
        observer,
        deny: None,
    };

    // 1. Explicit denies, in AWS's reporting order; allows are collected on the way.
    let rcp_applies = !set.rcp.is_empty()
        && !exempt_role
        && !matches!(principal, Principal::Service { .. })
        && resource_account.is_some_and(|a| Some(a) != management);
    let mut rcp_ok = true;
    for level in set.rcp.iter().filter(|_| rcp_applies) {
        rcp_ok &= run
            .scan_all(arcs(&level.policies), PolicyKind::Rcp)?
            .is_some();
    }

    let scp_applies = !set.scp.is_empty()
        && !exempt_role
        && principal_account.is_some_and(|a| Some(a) != management);
    let mut scp_ok = true;
    for level in set.scp.iter().filter(|_| scp_applies) {
        scp_ok &= run
            .scan_all(arcs(&level.policies), PolicyKind::Scp)?
            .is_some();
    }

    let resource_kind = set
        .resource
        .map_or(PolicyKind::Resource, CompiledPolicy::kind);
    let resource_grant = run.scan_all(set.resource, resource_kind)?;
    let identity_grant = run.scan_all(arcs(set.identity), PolicyKind::Identity)?;
    let boundary_allows = run
        .scan_all(arcs(set.boundary), PolicyKind::Boundary)?
        .is_some();
    let session_allows = run
        .scan_all(arcs(set.session), PolicyKind::Session)?
        .is_some();
    // A request passes through one endpoint; each endpoint policy given must allow.
    let mut endpoint_ok = true;
    for policy in set.vpc_endpoint {
        endpoint_ok &= run
            .scan_all([&**policy], PolicyKind::VpcEndpoint)?
            .is_some();
    }

    // With an explanation being built, the first deny was remembered rather than returned.
    if let Some(deny) = run.deny {
        return Err(deny);
    }

    // 2–3. Guardrails must allow.
    if !rcp_ok {
        return Ok(implicit(PolicyKind::Rcp));
    }
    if !scp_ok {
        return Ok(implicit(PolicyKind::Scp));
    }
    if !endpoint_ok {
        return Ok(implicit(PolicyKind::VpcEndpoint));
    }

    // Principals outside any account (anonymous, services, web identities) have no identity
    // policies: only a resource policy can grant them anything.
    let Some(principal_account) = principal_account else {
        return Ok(match resource_grant {
            Some(grant) => allow(resource_kind, Some(grant)),
            None => implicit(resource_kind),
        });
    };

    // The caller's own account: identity ∩ boundary ∩ session. The root user has every
    // permission in its own account and no boundary or session policy.
    let is_root = matches!(principal, Principal::Root { .. });
    let boundary_ok = set.boundary.is_empty() || boundary_allows;
    let session_ok = if !principal.is_session() {
        true
    } else if set.session.is_empty() {
        // A GetFederationToken session without a session policy has no permissions.
        !matches!(principal, Principal::FederatedUser { .. })
    } else {
        session_allows
    };
    let identity_side = if !(is_root || identity_grant.is_some()) {
        Err(PolicyKind::Identity)
    } else if !boundary_ok {
        Err(PolicyKind::Boundary)
    } else if !session_ok {
        Err(PolicyKind::Session)
    } else {
        Ok(())
    };

    // 4–6. Resource-based policy and the identity side.
    let cross_account = resource_account.is_some_and(|a| a != principal_account);
    let action = request.action();
    // KMS key policies, like trust policies, must allow the caller themselves: "Every KMS key
    // must have exactly one key policy … Without permission from the key policy, IAM policies
    // that allow permissions have no effect" (KMS Developer Guide, key-policies;
    // IAM-SEMANTICS §3.3). A key with no key policy given or registered therefore allows
    // nobody. The default key policy (the account root as principal, `kms:*`) is the account
    // principal: delegation, so IAM policies then decide, as AWS documents.
    let kms_key = targets_kms_key(request);
    let resource_required = resource_kind == PolicyKind::Trust
        || (action.service() == "sts" && action.name().starts_with("assumerole"))
        || kms_key;

    Ok(match resource_grant {
        None if kms_key && set.resource.is_none() => Decision {
            rule: Some(Rule::KeyPolicyRequired),
            ..implicit(PolicyKind::Resource)
        },
        None if cross_account || resource_required => implicit(resource_kind),
        None => match identity_side {
            Ok(()) => allow(PolicyKind::Identity, identity_grant),
            Err(kind) => implicit(kind),
        },
        Some(grant) => {
            let (_, _, strength) = grant;
            let needs = if cross_account || strength == PrincipalMatch::ViaAccount {
                identity_side
            } else if strength == PrincipalMatch::ViaRole {
                // A grant to the caller's role replaces the identity policies, not the limits.
                if !boundary_ok {
                    Err(PolicyKind::Boundary)
                } else if !session_ok {
                    Err(PolicyKind::Session)
                } else {
                    Ok(())
                }
            } else {
                Ok(())
            };
            match needs {
                Ok(()) => allow(resource_kind, Some(grant)),
                // Same account, the account principal (delegation): identity may still grant.
                Err(kind) => implicit(kind),
            }
        }
    })
}

#[cfg(test)]
mod tests;
