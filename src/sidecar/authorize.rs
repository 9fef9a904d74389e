//! The Authorizer: decisions for applications, from the snapshot store only.
//!
//! This is the domain API every edge calls: the gRPC `iamlet.v1.Authorizer`, and the HTTP
//! protocols built on the HTTP edge. Inputs arrive decoded ([`AuthorizeInput`]); answers
//! leave as a [`Decision`], which the edge renders. A deny is a decision, not an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ring::digest;

use crate::authz::{
    evaluate, evaluate_explained, Context, Outcome, Principal, Request as AuthzRequest,
    StatementRef, TraceEntry,
};
use crate::policy::{
    CompiledPolicy, KeyValues, ParseOptions, PolicyDocument, PolicyKind, Timestamp,
};
use crate::snapshot::{SnapshotVersion, TenantSnapshot};
use crate::sts::{fill_session_context, Caller, Verified};

use super::api::{Api, ApiError, CallerId};
use super::decision_log::{rfc3339_millis, sample_key, DecisionRecord};
use crate::observe::{Answer, Method};
use crate::sync::usage::{region_of, Subject, UsageSlot, Use};

/// The most requests one batch carries.
pub const MAX_BATCH: usize = 1000;

/// The bounds of one request. Where AWS bounds a field (IAM's policy-simulation API: action
/// names 3–128 characters, ARNs 1–2048, context key names 5–256; a KMS key policy, the largest
/// resource policy, 32 KiB), the bound is AWS's; the others are iamlet's, generous for any real
/// request and small enough that no request costs more than a few milliseconds of CPU.
pub mod limits {
    /// Characters of an action name.
    pub const MAX_ACTION_CHARS: usize = 128;
    /// Characters of a resource or principal ARN.
    pub const MAX_ARN_CHARS: usize = 2048;
    /// Context keys per request.
    pub const MAX_CONTEXT_KEYS: usize = 256;
    /// Characters of a context key.
    pub const MAX_CONTEXT_KEY_CHARS: usize = 256;
    /// Values of one multi-valued context key.
    pub const MAX_CONTEXT_VALUES: usize = 256;
    /// Characters of one context value.
    pub const MAX_CONTEXT_VALUE_CHARS: usize = 4096;
    /// Bytes of a resource policy supplied with a request.
    pub const MAX_POLICY_BYTES: usize = 32 * 1024;
    /// Statements of a resource policy supplied with a request.
    pub const MAX_POLICY_STATEMENTS: usize = 256;
    /// Characters of a tenant id or request id.
    pub const MAX_ID_CHARS: usize = 128;
}

/// Why an authorization could not be decided. A deny is a [`Decision`], never this.
pub type AuthorizeError = ApiError;

/// One question: may `caller` perform `action` on `resource`, in `context`?
#[derive(Debug, Clone)]
pub struct AuthorizeInput {
    /// Who asks: a principal the application vouches for, or credentials the sidecar checks.
    pub caller: CallerId,
    /// The IAM action (`s3:GetObject`).
    pub action: String,
    /// The resource's ARN, or `*`.
    pub resource: String,
    /// Condition keys the application supplies. Keys that follow from the principal are
    /// dropped; keys that follow from credentials are dropped for authenticated callers.
    pub context: Context,
    /// The tenant owning the resource, when its ARN does not say (S3 buckets).
    pub resource_tenant: Option<String>,
    /// A resource-based policy supplied with the request (a trust policy for
    /// `sts:AssumeRole*`), instead of the one registered for the resource.
    pub resource_policy: Option<String>,
    /// Return every statement that applied, and bypass the cache.
    pub explain: bool,
    /// Refuse (retryably) while the caller tenant's snapshot is older than this.
    pub min_version: Option<SnapshotVersion>,
    /// The caller's id for this request, echoed to the decision log; one is made up when
    /// absent.
    pub request_id: Option<String>,
}

/// A decision and what made it: a handle on what the decision cache holds, so that a hit
/// costs one reference count, never a copy. Its fields read through [`Decided`].
#[derive(Debug, Clone)]
pub struct Decision {
    decided: Arc<CachedDecision>,
    cached: bool,
}

/// Decisions are equal when they say the same and both did or did not come from the cache;
/// where their uses are counted is no part of what they say.
impl PartialEq for Decision {
    fn eq(&self, other: &Self) -> bool {
        self.decided.decided == other.decided.decided && self.cached == other.cached
    }
}

impl Eq for Decision {}

/// What the decision cache holds: a decision, and the usage entry its hits are uses of (a
/// cached decision is of one tenant, caller, action and region, since its key covers them).
#[derive(Debug)]
pub(super) struct CachedDecision {
    decided: Decided,
    /// None when usage is not shipped, or a bound dropped the use.
    usage: Option<UsageSlot>,
}

/// What a decision says, shared by every answer made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// Allow, explicit deny or implicit deny.
    pub outcome: Outcome,
    /// The policy type that decided.
    pub policy_type: Option<PolicyKind>,
    /// The deciding statement (none for an implicit deny).
    pub statement: Option<StatementRef>,
    /// AWS's message for the decision.
    pub message: Box<str>,
    /// The principal that was decided for (the session's ARN for session credentials).
    pub principal: Box<str>,
    /// The tenant whose snapshot decided.
    pub tenant: Box<str>,
    /// That snapshot's version.
    pub version: SnapshotVersion,
    /// Every statement that applied, when the request asked to explain.
    pub trace: Box<[TraceEntry]>,
    /// A rule of AWS's that decided rather than a statement, if one did.
    pub rule: Option<crate::authz::Rule>,
}

impl Decision {
    /// True for `Allow`.
    pub fn is_allowed(&self) -> bool {
        self.decided.decided.outcome == Outcome::Allow
    }

    /// True when the decision came from the cache.
    pub fn cached(&self) -> bool {
        self.cached
    }
}

impl std::ops::Deref for Decision {
    type Target = Decided;

    fn deref(&self) -> &Decided {
        &self.decided.decided
    }
}

/// The Authorizer: decides with an [`Api`]'s snapshots, caches and decision log.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use iamlet::sidecar::{Api, AuthorizeInput, Authorizer, CacheConfig, CallerId};
/// # use iamlet::sidecar::decision_log::DecisionLog;
/// # use iamlet::snapshot::SnapshotStore;
/// # use iamlet::authz::Context;
/// let store = Arc::new(SnapshotStore::new()); // filled by the sync stream or from disk
/// let api = Arc::new(Api::new(store, &CacheConfig::default(), DecisionLog::off()));
/// let authorizer = Authorizer::new(api);
/// let decision = authorizer.authorize(&AuthorizeInput {
///     caller: CallerId::PrincipalArn("arn:aws:iam::111122223333:user/alice".into()),
///     action: "s3:GetObject".into(),
///     resource: "arn:aws:s3:::demo-data/home/alice/notes.txt".into(),
///     context: Context::new(),
///     resource_tenant: None,
///     resource_policy: None,
///     explain: false,
///     min_version: None,
///     request_id: None,
/// });
/// match decision {
///     Ok(d) if d.is_allowed() => println!("allowed by {:?}", d.statement),
///     Ok(d) => println!("denied: {}", d.message),
///     Err(e) => println!("{}: {e}", e.code()),
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authorizer {
    api: Arc<Api>,
}

/// The caller of a request: named by the application, or proven by credentials (shared with
/// the credential cache, so a hit clones nothing).
enum Authenticated {
    Named(Caller),
    Credentials(Arc<Verified>),
}

impl Authenticated {
    fn caller(&self) -> &Caller {
        match self {
            Self::Named(c) => c,
            Self::Credentials(v) => &v.caller,
        }
    }
}

/// The snapshots a request is decided on: one load per tenant per request, so every part of
/// the decision sees one version.
struct Snapshots {
    caller: Arc<TenantSnapshot>,
    /// The resource tenant's, when it is another tenant served here.
    resource: Option<Arc<TenantSnapshot>>,
    resource_tenant: String,
}

/// The context key of the region a request names, which its use is of.
const REQUESTED_REGION: &str = "aws:requestedregion";

/// Context keys whose values follow from the clock.
const CLOCK_KEYS: [&str; 3] = ["aws:currenttime", "aws:epochtime", "aws:multifactorauthage"];

/// Keys that follow from credentials: a caller authenticated by the sidecar cannot claim
/// them. (An application naming a principal by ARN vouches for its caller, MFA included.)
const SESSION_KEYS: [&str; 7] = [
    "aws:tokenissuetime",
    "aws:multifactorauthpresent",
    "aws:multifactorauthage",
    "aws:sourceidentity",
    "aws:federatedprovider",
    "aws:currenttime",
    "aws:epochtime",
];

// === impl Authorizer ===

impl Authorizer {
    /// Decides with `api`'s snapshots and caches.
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// The shared state this Authorizer decides with.
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// Decides one request, logs it, and counts it.
    pub fn authorize(&self, input: &AuthorizeInput) -> Result<Decision, AuthorizeError> {
        self.authorize_logged(input, Method::Authorize)
    }

    /// Decides up to [`MAX_BATCH`] requests, each on its own: one request's error does not
    /// fail the others.
    pub fn authorize_batch(
        &self,
        inputs: &[AuthorizeInput],
    ) -> Result<Vec<Result<Decision, AuthorizeError>>, AuthorizeError> {
        if inputs.len() > MAX_BATCH {
            return Err(ApiError::invalid(
                "requests",
                format!("{} requests; at most {MAX_BATCH}", inputs.len()),
            ));
        }
        Ok(inputs
            .iter()
            .map(|input| self.authorize_logged(input, Method::BatchAuthorize))
            .collect())
    }

    /// Counts and logs a request an edge could not decode, as a decided one would be.
    pub fn refused(
        &self,
        action: &str,
        resource: &str,
        request_id: Option<&str>,
        error: &AuthorizeError,
        batch: bool,
    ) {
        let method = if batch {
            Method::BatchAuthorize
        } else {
            Method::Authorize
        };
        self.api
            .metrics
            .record(method, Answer::Error, std::time::Duration::ZERO);
        let log = &self.api.log;
        let generated;
        let request_id = match request_id {
            Some(id) => id,
            None => {
                generated = next_request_id();
                &generated
            }
        };
        if log.is_enabled() && log.wants(true, sample_key(request_id)) {
            let mut record = record_of(request_id, method, Timestamp::now(), 0, Err(error));
            record.action = action.to_owned();
            record.resource = resource.to_owned();
            log.record(record);
        }
    }

    fn authorize_logged(
        &self,
        input: &AuthorizeInput,
        method: Method,
    ) -> Result<Decision, AuthorizeError> {
        let started = Instant::now();
        let now = Timestamp::now();
        let result = self.decide(input, now);
        self.api
            .metrics
            .record(method, answer(&result), started.elapsed());
        let log = &self.api.log;
        if !log.is_enabled() {
            return result;
        }
        let generated;
        let request_id = match &input.request_id {
            Some(id) => id.as_str(),
            None => {
                generated = next_request_id();
                &generated
            }
        };
        let deny_or_error = !matches!(&result, Ok(d) if d.is_allowed());
        if log.wants(deny_or_error, sample_key(request_id)) {
            let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let mut record = record_of(request_id, method, now, latency_us, result.as_ref());
            record.action.clone_from(&input.action);
            record.resource.clone_from(&input.resource);
            log.record(record);
        }
        result
    }

    /// The decision procedure, step by step: who asks, on which snapshots, whether the cache
    /// knows the answer, and otherwise the evaluation.
    fn decide(&self, input: &AuthorizeInput, now: Timestamp) -> Result<Decision, ApiError> {
        check_present(input)?;
        let (authenticated, caller_snapshot) = self.authenticate(&input.caller, now)?;
        let caller = authenticated.caller();
        let snapshots = self.snapshots(input, caller_snapshot, now)?;
        let inline = compile_inline_policy(
            input.resource_policy.as_deref(),
            is_assume_role(&input.action),
        )?;

        // The cache is consulted before anything is derived from the caller: a hit costs the
        // key and one lookup.
        let clock = Timestamp::from_epoch_seconds(now.epoch_seconds());
        let cache_key = (!input.explain).then(|| {
            cache_key(
                &snapshots,
                input,
                matches!(authenticated, Authenticated::Credentials(_)),
                &caller.session_policies,
                inline.as_ref(),
                clock,
            )
        });
        if let Some(hit) = cache_key.as_ref().and_then(|k| self.api.decisions.get(k)) {
            self.api.decision_stats.hit();
            if let Some(usage) = &self.api.usage {
                // A hit is a use of the cached decision's entry: raised in place.
                let raised = hit
                    .usage
                    .as_ref()
                    .is_some_and(|slot| usage.raise(slot, now.epoch_seconds()));
                if !raised {
                    self.record_hit_anew(input, caller, &snapshots.caller, now, &hit, cache_key);
                }
            }
            return Ok(Decision {
                decided: hit,
                cached: true,
            });
        }
        if cache_key.is_some() {
            self.api.decision_stats.miss();
        }
        let decided = self.evaluate(input, &authenticated, &snapshots, inline.as_ref(), clock)?;
        let usage = self.record_use(input, caller, &snapshots.caller, now);
        let decided = Arc::new(CachedDecision { decided, usage });
        if let Some(key) = cache_key {
            self.api.decisions.insert(key, Arc::clone(&decided));
        }
        Ok(Decision {
            decided,
            cached: false,
        })
    }

    /// Records a hit whose cached decision has no live usage entry (its entry left the table
    /// after an idle interval, or a bound dropped it): through the table, as a miss is, and
    /// the cached decision is replaced by one holding the entry now there, so that later hits
    /// raise it in place again.
    #[cold]
    fn record_hit_anew(
        &self,
        input: &AuthorizeInput,
        caller: &Caller,
        snapshot: &TenantSnapshot,
        now: Timestamp,
        hit: &CachedDecision,
        key: Option<Box<[u8]>>,
    ) {
        let Some(slot) = self.record_use(input, caller, snapshot, now) else {
            return;
        };
        if let Some(key) = key {
            let replaced = CachedDecision {
                decided: hit.decided.clone(),
                usage: Some(slot),
            };
            self.api.decisions.insert(key, Arc::new(replaced));
        }
    }

    /// Records a decision as a use of the caller's key or name, when usage is shipped, and
    /// returns a handle on its entry for the decision cache: a known use costs a hash and a
    /// lock, and only a new one derives what it is of.
    fn record_use(
        &self,
        input: &AuthorizeInput,
        caller: &Caller,
        snapshot: &TenantSnapshot,
        now: Timestamp,
    ) -> Option<UsageSlot> {
        let usage = self.api.usage.as_ref()?;
        let (presented, signed) = match &input.caller {
            CallerId::PrincipalArn(arn) => (arn.as_str(), None),
            CallerId::Keys { access_key_id, .. } => (access_key_id.as_str(), None),
            CallerId::Signed(s) => (s.access_key_id(), Some(s.region())),
        };
        let requested = match input.context.get(REQUESTED_REGION) {
            Some(KeyValues::Single(v)) => Some(v.as_str()),
            _ => None,
        };
        let at = Use {
            tenant: snapshot.account_id(),
            caller: presented,
            action: &input.action,
            region: region_of(requested, signed, &input.resource),
        };
        usage.record_slot(at, now.epoch_seconds(), || {
            Subject::of(&caller.principal, snapshot)
        })
    }

    /// Who is asking, and the caller tenant's snapshot.
    fn authenticate(
        &self,
        caller: &CallerId,
        now: Timestamp,
    ) -> Result<(Authenticated, Arc<TenantSnapshot>), ApiError> {
        match caller {
            CallerId::PrincipalArn(arn) => {
                let principal =
                    Principal::parse(arn).map_err(|e| ApiError::invalid("principal_arn", e))?;
                let tenant = principal.account().ok_or_else(|| {
                    ApiError::invalid("principal_arn", "the caller must belong to a tenant")
                })?;
                let snapshot = self.api.load(tenant)?;
                let caller = Caller {
                    principal,
                    session: None,
                    session_policies: Arc::new([]),
                };
                Ok((Authenticated::Named(caller), snapshot))
            }
            other => {
                let (verified, snapshot) = self.api.authenticate(other, now)?;
                Ok((Authenticated::Credentials(verified), snapshot))
            }
        }
    }

    /// Checks that the caller tenant may decide now and is recent enough, and loads the
    /// resource tenant's snapshot when it is another tenant.
    fn snapshots(
        &self,
        input: &AuthorizeInput,
        caller: Arc<TenantSnapshot>,
        now: Timestamp,
    ) -> Result<Snapshots, ApiError> {
        let caller_tenant = caller.account_id();
        self.api.check_decide(caller_tenant, now)?;
        if let Some(wanted) = input.min_version {
            let current = caller.version();
            if current < wanted {
                return Err(ApiError::VersionBehind {
                    tenant: caller_tenant.to_owned(),
                    current,
                    wanted,
                });
            }
        }
        let resource_tenant = input
            .resource_tenant
            .as_deref()
            .or_else(|| arn_account(&input.resource))
            .unwrap_or(caller_tenant)
            .to_owned();
        let resource = if resource_tenant == caller_tenant {
            None
        } else {
            self.api.store.load(&resource_tenant)
        };
        Ok(Snapshots {
            caller,
            resource,
            resource_tenant,
        })
    }

    /// Evaluates a request the cache did not know.
    fn evaluate(
        &self,
        input: &AuthorizeInput,
        authenticated: &Authenticated,
        snapshots: &Snapshots,
        inline: Option<&CompiledPolicy>,
        clock: Timestamp,
    ) -> Result<Decided, ApiError> {
        let caller = authenticated.caller();
        let snapshot = &snapshots.caller;
        let caller_tenant = snapshot.account_id();
        let principal = &caller.principal;
        let resolved = snapshot
            .resolve(principal)
            .ok_or_else(|| ApiError::UnknownPrincipal {
                principal: principal.to_string(),
                tenant: caller_tenant.to_owned(),
            })?;
        let authenticated_caller = matches!(authenticated, Authenticated::Credentials(_));
        let mut context = Context::new();
        for (key, values) in input.context.iter() {
            if !caller_may_set(key, authenticated_caller) {
                continue;
            }
            match values {
                KeyValues::Single(v) => context.insert(key, v.clone()),
                KeyValues::Multi(vs) => context.insert_multi(key, vs.to_vec()),
            }
        }
        // The clock at whole seconds, as AWS's `aws:CurrentTime` reads: decisions that read it
        // can then be cached within the second.
        let (current_time, epoch_time) = self.api.clock_values(clock);
        context.insert_if_absent("aws:CurrentTime", current_time);
        context.insert_if_absent("aws:EpochTime", epoch_time);
        resolved.fill_context(principal, &mut context);
        fill_session_context(caller.session.as_deref(), clock, &mut context);
        let mut request = AuthzRequest::try_new(principal.clone(), &input.action, &input.resource)
            .map_err(|e| {
                let field = match e {
                    crate::authz::RequestError::InvalidAction(_) => "action",
                    crate::authz::RequestError::EmptyResource => "resource",
                };
                ApiError::invalid(field, e)
            })?
            .with_context(context);
        if snapshots.resource_tenant != caller_tenant {
            request = request.with_resource_account(snapshots.resource_tenant.clone());
        }
        let resource_snapshot = if snapshots.resource_tenant == caller_tenant {
            Some(snapshot)
        } else {
            snapshots.resource.as_ref()
        };
        let registered = resource_snapshot.and_then(|s| {
            let resource = request.resource().as_str();
            if is_assume_role(&input.action) {
                let role = resource.rsplit('/').next()?;
                s.role(role)
                    .filter(|r| &*r.arn == resource)
                    .map(|r| Arc::clone(&r.trust))
            } else {
                s.resource_policy(resource).cloned()
            }
        });
        let resource_policy = inline.or(registered.as_deref());
        let policies = resolved.policy_set(resource_policy, &caller.session_policies);
        let (decision, trace) = if input.explain {
            let (d, t) = evaluate_explained(&policies, &request);
            (d, t.entries)
        } else {
            (evaluate(&policies, &request), Vec::new())
        };
        Ok(Decided {
            outcome: decision.outcome,
            policy_type: decision.policy_type,
            message: decision.message(&request).into(),
            rule: decision.rule,
            statement: decision.statement,
            principal: principal.to_string().into(),
            tenant: caller_tenant.into(),
            version: snapshot.version(),
            trace: trace.into(),
        })
    }
}

/// Whether a request's caller may supply context key `key` (lowercased). Keys that follow
/// from the principal are the sidecar's to set (IAM-SEMANTICS §3.7); keys that follow from
/// credentials are too, when the sidecar authenticated the caller.
fn caller_may_set(key: &str, authenticated: bool) -> bool {
    let principal_key = key.starts_with("aws:principaltag/")
        || matches!(
            key,
            "aws:principalarn"
                | "aws:principalaccount"
                | "aws:principaltype"
                | "aws:userid"
                | "aws:username"
        );
    !(principal_key || authenticated && SESSION_KEYS.contains(&key))
}

fn is_assume_role(action: &str) -> bool {
    action
        .get(..14)
        .is_some_and(|p| p.eq_ignore_ascii_case("sts:assumerole"))
}

/// Checks that the request is present and within [`limits`], before any work is done on it.
fn check_present(input: &AuthorizeInput) -> Result<(), ApiError> {
    use limits::*;
    if input.action.is_empty() {
        return Err(ApiError::invalid("action", "missing"));
    }
    if input.resource.is_empty() {
        return Err(ApiError::invalid("resource", "missing"));
    }
    check_chars("action", &input.action, MAX_ACTION_CHARS)?;
    check_chars("resource", &input.resource, MAX_ARN_CHARS)?;
    if let CallerId::PrincipalArn(arn) = &input.caller {
        check_chars("principal_arn", arn, MAX_ARN_CHARS)?;
    }
    if let Some(tenant) = &input.resource_tenant {
        // A tenant is an account: twelve digits, nothing that could name a path.
        if !crate::account::AccountId::is_valid(tenant) {
            return Err(ApiError::invalid(
                "resource_tenant",
                format!(
                    "`{}` is not a 12-digit account id",
                    crate::error::echo(tenant)
                ),
            ));
        }
    }
    if let Some(id) = &input.request_id {
        check_chars("request_id", id, MAX_ID_CHARS)?;
    }
    if let Some(policy) = &input.resource_policy {
        if policy.len() > MAX_POLICY_BYTES {
            return Err(ApiError::invalid(
                "resource_policy_json",
                format!("{} bytes; at most {MAX_POLICY_BYTES}", policy.len()),
            ));
        }
    }
    check_context(input.context.len(), || {
        input.context.iter().map(|(key, values)| {
            let values: &[crate::policy::ContextValue] = match values {
                KeyValues::Single(v) => std::slice::from_ref(v),
                KeyValues::Multi(vs) => vs,
            };
            (
                key,
                values.len(),
                values.iter().map(|v| value_chars(v.as_str())).max(),
            )
        })
    })
}

/// Checks a context against [`limits`]: `len` keys, each with its value count and longest
/// value. An edge calls it before it builds a [`Context`], so that an oversized request costs
/// nothing to refuse.
pub fn check_context<'a, I>(len: usize, entries: impl FnOnce() -> I) -> Result<(), ApiError>
where
    I: Iterator<Item = (&'a str, usize, Option<usize>)>,
{
    use limits::*;
    if len > MAX_CONTEXT_KEYS {
        return Err(ApiError::invalid(
            "context",
            format!("{len} keys; at most {MAX_CONTEXT_KEYS}"),
        ));
    }
    for (key, count, longest) in entries() {
        check_chars("context key", key, MAX_CONTEXT_KEY_CHARS)?;
        if count > MAX_CONTEXT_VALUES {
            return Err(ApiError::invalid(
                format!("context[{}]", crate::error::echo(key)),
                format!("{count} values; at most {MAX_CONTEXT_VALUES}"),
            ));
        }
        if longest.is_some_and(|n| n > MAX_CONTEXT_VALUE_CHARS) {
            return Err(ApiError::invalid(
                format!("context[{}]", crate::error::echo(key)),
                format!("a value is longer than {MAX_CONTEXT_VALUE_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

/// A context value's length as [`check_context`] takes it: its bytes, which bound its
/// characters from above, and its characters only when the bytes are over the bound, so that
/// ordinary values are never walked.
pub fn value_chars(value: &str) -> usize {
    if value.len() <= limits::MAX_CONTEXT_VALUE_CHARS {
        value.len()
    } else {
        value.chars().count()
    }
}

fn check_chars(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    // Bytes bound characters from above: most values need no count.
    if value.len() > max && value.chars().nth(max).is_some() {
        return Err(ApiError::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    Ok(())
}

/// Parses and compiles a policy supplied with the request: a trust policy for
/// `sts:AssumeRole*`, a resource-based policy otherwise.
fn compile_inline_policy(
    text: Option<&str>,
    is_assume_role: bool,
) -> Result<Option<CompiledPolicy>, ApiError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let kind = if is_assume_role {
        PolicyKind::Trust
    } else {
        PolicyKind::Resource
    };
    let document = PolicyDocument::parse_with(text, ParseOptions::lenient(kind)).map_err(|e| {
        ApiError::invalid(
            "resource_policy_json",
            format!("{}: {}", e.code(), e.message()),
        )
    })?;
    if document.statements.len() > limits::MAX_POLICY_STATEMENTS {
        return Err(ApiError::invalid(
            "resource_policy_json",
            format!(
                "{} statements; at most {}",
                document.statements.len(),
                limits::MAX_POLICY_STATEMENTS
            ),
        ));
    }
    Ok(Some(CompiledPolicy::compile(
        "request#resource-policy",
        kind,
        &document,
    )))
}

/// The account of an ARN (`arn:partition:service:region:account:...`), if it names one.
fn arn_account(arn: &str) -> Option<&str> {
    crate::policy::ArnParts::split(arn)
        .map(|parts| parts.account())
        .filter(|a| !a.is_empty())
}

/// The decision cache's key: everything the decision depends on, read before the request is
/// evaluated. Both tenants' snapshot versions come first, so a swap makes older entries
/// unreachable. The caller enters by its ARN, or by its access key id, which names a user for
/// a version or one session (its policies, tags and times); the context enters only through
/// the keys some policy in play can read (less the keys an authenticated caller cannot
/// claim), and the clock only when a policy reads it. The keys the sidecar derives from the
/// caller are a function of those, so they need no place here. The region a use is of (the
/// requested one, the signature's, the resource's) is in it too, so that a cached decision's
/// usage entry is the entry of every request it answers.
fn cache_key(
    snapshots: &Snapshots,
    input: &AuthorizeInput,
    authenticated: bool,
    session_policies: &[Arc<CompiledPolicy>],
    inline: Option<&CompiledPolicy>,
    now: Timestamp,
) -> Box<[u8]> {
    let snapshot = &*snapshots.caller;
    let resource_snapshot = snapshots.resource.as_deref();
    let mut key = Vec::with_capacity(192);
    let mut field = |bytes: &[u8]| {
        key.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        key.extend_from_slice(bytes);
    };
    for s in std::iter::once(snapshot).chain(resource_snapshot) {
        let v = s.version();
        field(s.account_id().as_bytes());
        field(&v.epoch.to_le_bytes());
        field(&v.seq.to_le_bytes());
    }
    field(snapshots.resource_tenant.as_bytes());
    match &input.caller {
        CallerId::PrincipalArn(arn) => {
            field(b"arn");
            field(arn.as_bytes());
        }
        CallerId::Keys { access_key_id, .. } => {
            field(b"key");
            field(access_key_id.as_bytes());
        }
        CallerId::Signed(s) => {
            field(b"key");
            field(s.access_key_id().as_bytes());
            // The signature's region is the use's region when the request names none.
            field(s.region().as_bytes());
        }
    }
    field(input.action.as_bytes());
    field(input.resource.as_bytes());
    match input
        .resource_policy
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        Some(text) => field(digest::digest(&digest::SHA256, text.as_bytes()).as_ref()),
        None => field(b""),
    }
    let reads = |k: &str| {
        let found = |keys: &[Box<str>]| keys.binary_search_by(|x| (**x).cmp(k)).is_ok();
        found(snapshot.context_keys())
            || resource_snapshot.is_some_and(|s| found(s.context_keys()))
            || inline.is_some_and(|p| found(p.context_keys()))
            || session_policies.iter().any(|p| found(p.context_keys()))
    };
    for (k, values) in input.context.iter() {
        // The region a request names is the region of its use, which a cached decision's
        // usage entry is fixed to: in the key whether or not a policy reads it.
        if !(reads(k) && caller_may_set(k, authenticated) || k == REQUESTED_REGION) {
            continue;
        }
        field(k.as_bytes());
        match values {
            KeyValues::Single(v) => field(v.as_str().as_bytes()),
            KeyValues::Multi(vs) => {
                field(&u32::try_from(vs.len()).unwrap_or(u32::MAX).to_le_bytes());
                for v in vs {
                    field(v.as_str().as_bytes());
                }
            }
        }
    }
    if CLOCK_KEYS.iter().any(|k| reads(k)) {
        field(b"clock");
        field(&now.epoch_seconds().to_le_bytes());
    }
    key.into_boxed_slice()
}

/// How a request ended, for the latency metric.
fn answer(result: &Result<Decision, ApiError>) -> Answer {
    match result.as_ref().map(|d| d.outcome) {
        Ok(Outcome::Allow) => Answer::Allow,
        Ok(Outcome::ExplicitDeny) => Answer::ExplicitDeny,
        Ok(Outcome::ImplicitDeny) => Answer::ImplicitDeny,
        Err(_) => Answer::Error,
    }
}

/// The decision log's record of one request (its action and resource are the caller's to
/// fill).
fn record_of(
    request_id: &str,
    method: Method,
    now: Timestamp,
    latency_us: u64,
    result: Result<&Decision, &ApiError>,
) -> DecisionRecord {
    let operation = match method {
        Method::BatchAuthorize => "BatchAuthorize",
        _ => "Authorize",
    };
    let mut record = DecisionRecord {
        time: rfc3339_millis(now),
        request_id: request_id.to_owned(),
        operation,
        tenant: String::new(),
        principal: String::new(),
        action: String::new(),
        resource: String::new(),
        decision: "Error",
        error_code: None,
        policy_type: None,
        statement: None,
        snapshot_version: String::new(),
        latency_us,
        cached: false,
    };
    match result {
        Ok(d) => {
            record.tenant = String::from(&*d.tenant);
            record.principal = String::from(&*d.principal);
            record.decision = d.outcome.as_str();
            record.policy_type = d.policy_type.map(policy_type_name);
            record.statement = d.statement.as_ref().map(|s| match &s.sid {
                Some(sid) => format!("{}#{}({sid})", s.policy, s.index),
                None => format!("{}#{}", s.policy, s.index),
            });
            record.snapshot_version = format!("{}.{}", d.version.epoch, d.version.seq);
            record.cached = d.cached();
        }
        Err(e) => record.error_code = Some(e.code().as_str()),
    }
    record
}

/// The policy type's name in the decision log.
fn policy_type_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Identity => "Identity",
        PolicyKind::Resource => "Resource",
        PolicyKind::Trust => "Trust",
        PolicyKind::Boundary => "Boundary",
        PolicyKind::Session => "Session",
        PolicyKind::Scp => "SCP",
        PolicyKind::Rcp => "RCP",
        PolicyKind::VpcEndpoint => "VpcEndpoint",
    }
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-unique request id: the start time and a counter (no randomness on the hot path).
pub fn next_request_id() -> String {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| Timestamp::now().epoch_millis());
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{start:x}-{n}")
}
