//! The Authorizer: decisions for applications, from the snapshot store only.
//!
//! This is the domain API every edge calls: the gRPC `iamlet.v1.Authorizer`, and the HTTP
//! protocols built on the HTTP edge. Inputs arrive decoded ([`AuthorizeInput`]); answers
//! leave as a [`Decision`], which the edge renders. A deny is a decision, not an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ring::digest;

use crate::authz::{
    evaluate, evaluate_explained, Context, Outcome, Principal, Request as AuthzRequest,
    StatementRef, TraceEntry,
};
use crate::policy::{
    CompiledPolicy, KeyValues, ParseOptions, PolicyDocument, PolicyKind, Timestamp,
};
use crate::snapshot::{Served, SnapshotVersion, TenantSnapshot};
use crate::sts::{fill_session_context, Caller, Verified};

use super::api::{Api, ApiError, CallerId};
use super::clock::{Instant, Reading};
use super::decision_log::{
    rfc3339_millis, sample_key, DecisionRecord, JsonLine, TimeText, MAX_FIELD_BYTES,
};
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
/// Entries whose decisions are equal (and are uses of one entry) share one, through
/// [`FingerprintCache::share`](super::fingerprint_cache::FingerprintCache::share).
#[derive(Debug)]
pub(super) struct CachedDecision {
    decided: Decided,
    /// None when usage is not shipped, or a bound dropped the use.
    usage: Option<UsageSlot>,
    /// The decision's fields of a decision-log line, made by the log's writer the first
    /// time it writes the decision and copied whole into each later line.
    log_fields: std::sync::OnceLock<LogFields>,
}

/// What a decision adds to a decision-log line, as JSON: the fields before the request's
/// action and resource (`,"tenant":…,"principal":…`) and those after (`,"decision":…` to
/// `,"snapshot_version":…`). Every hit of a cached decision writes the same text there:
/// written once and copied, they cost a line two copies instead of seven fields (the writer
/// went from 2,487 to 1,313 instructions a decision, `benches/README.md`).
#[derive(Debug)]
struct LogFields {
    json: Box<[u8]>,
    /// Where the fields after the action and resource start.
    head_len: usize,
    /// The fields the text cut to their bound.
    cut: u64,
}

/// Equal when they say the same and are uses of one entry; the log's text is made from the
/// rest.
impl PartialEq for CachedDecision {
    fn eq(&self, other: &Self) -> bool {
        self.decided == other.decided && self.usage == other.usage
    }
}

impl Eq for CachedDecision {}

/// Hashes what tells decisions apart; equality compares everything but the log's text, the
/// trace included.
impl std::hash::Hash for CachedDecision {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let d = &self.decided;
        d.outcome.hash(state);
        d.policy_type.hash(state);
        d.statement.hash(state);
        d.principal.hash(state);
        d.tenant.hash(state);
        d.version.hash(state);
        d.trace.len().hash(state);
        d.rule.hash(state);
        self.usage.hash(state);
    }
}

impl CachedDecision {
    /// What the decision holds on the heap, for its weight in the cache: its own allocation
    /// and its strings (shared ones counted as if they were not, which overstates). Its log
    /// fields are not counted: made only when the log writes the decision, they are held once
    /// for every entry that shares it, as the decision is, and counting them would make an
    /// ordinary decision weigh two units instead of one.
    fn heap_bytes(&self) -> usize {
        let d = &self.decided;
        std::mem::size_of::<Self>()
            + 16
            + d.principal.len()
            + d.tenant.len()
            + d.trace.len() * std::mem::size_of::<TraceEntry>()
    }

    fn new(decided: Decided, usage: Option<UsageSlot>) -> Self {
        Self {
            decided,
            usage,
            log_fields: std::sync::OnceLock::new(),
        }
    }
}

impl LogFields {
    /// `decided`'s fields, as [`write_head`] and [`write_tail`] write them.
    fn of(decided: &Decided) -> Self {
        let (mut json, mut scratch, mut clock) = (Vec::new(), String::new(), TimeText::default());
        let mut line = JsonLine::continuing(&mut json, &mut scratch, &mut clock);
        write_head(&mut line, Some(decided));
        let head_len = line.len();
        write_tail(&mut line, Some(decided), None);
        let cut = line.cut();
        Self {
            json: json.into_boxed_slice(),
            head_len,
            cut,
        }
    }
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

impl Decided {
    /// AWS's message for the decision, about the request it answers (`action` and
    /// `resource` as the request gave them): rendered when an edge answers, never kept, since
    /// it would be most of a cached decision's bytes.
    pub fn message(&self, action: &str, resource: &str) -> String {
        crate::authz::decision_message(
            self.outcome,
            self.policy_type,
            self.rule,
            &self.principal,
            action,
            resource,
        )
    }
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
/// let input = AuthorizeInput {
///     caller: CallerId::PrincipalArn("arn:aws:iam::111122223333:user/alice".into()),
///     action: "s3:GetObject".into(),
///     resource: "arn:aws:s3:::demo-data/home/alice/notes.txt".into(),
///     context: Context::new(),
///     resource_tenant: None,
///     resource_policy: None,
///     explain: false,
///     min_version: None,
///     request_id: None,
/// };
/// match authorizer.authorize(&input) {
///     Ok(d) if d.is_allowed() => println!("allowed by {:?}", d.statement),
///     Ok(d) => println!("denied: {}", d.message(&input.action, &input.resource)),
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

/// The snapshots a request is decided on, taken once per request (from one view of the
/// served tenants, or for credentials the snapshot they were verified against), so every part
/// of the decision sees one version.
struct Snapshots<'a> {
    caller: Held<'a>,
    /// The resource tenant's, when it is another tenant served here.
    resource: Option<&'a TenantSnapshot>,
    /// The resource tenant, when it is not the caller's.
    other_tenant: Option<&'a str>,
}

/// The caller tenant's snapshot: borrowed from the request's view of the served tenants, or
/// the one its credentials were verified against.
enum Held<'a> {
    Served(&'a TenantSnapshot),
    Verified(Arc<TenantSnapshot>),
}

impl std::ops::Deref for Held<'_> {
    type Target = TenantSnapshot;

    #[inline]
    fn deref(&self) -> &TenantSnapshot {
        match self {
            Held::Served(s) => s,
            Held::Verified(s) => s,
        }
    }
}

/// Who asks, as far as the cache lookup needs to know: a named caller's ARN (read in full
/// only on a miss), or verified credentials (shared with the credential cache).
enum Identified<'a> {
    Named(&'a str),
    Credentials(Arc<Verified>),
}

/// The context key of the region a request names, which its use is of.
const REQUESTED_REGION: &str = "aws:requestedregion";

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
            let mut record = record_of(
                request_id,
                method,
                rfc3339_millis(Timestamp::now()),
                0,
                Err(error.code().as_str()),
            );
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
        let clock = Reading::take();
        let now = clock.now;
        let result = self.decide(input, now, clock.started);
        let elapsed = clock.elapsed();
        self.api.metrics.record(method, answer(&result), elapsed);
        if self.api.log.is_enabled() {
            self.log_decision(input, method, now, elapsed, &result);
        }
        result
    }

    /// Hands a decision to the decision log, if it keeps it. The request path only captures
    /// what the record is made of (a handle on the decision, the request's action and
    /// resource, a number for its id); the writer makes the record and its JSON line.
    fn log_decision(
        &self,
        input: &AuthorizeInput,
        method: Method,
        now: Timestamp,
        elapsed: std::time::Duration,
        result: &Result<Decision, AuthorizeError>,
    ) {
        let log = &self.api.log;
        let deny_or_error = !matches!(result, Ok(d) if d.is_allowed());
        // The sample key is made only when sampling reads it: a made-up id is then made now,
        // to be hashed, rather than by the writer.
        let mut made_up = None;
        let wanted = log.wants_with(deny_or_error, || match &input.request_id {
            Some(id) => sample_key(id),
            None => sample_key(made_up.insert(next_request_id())),
        });
        if !wanted {
            return;
        }
        let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let outcome = match result {
            Ok(d) => Ok(d.clone()),
            Err(e) => Err(e.code().as_str()),
        };
        let given = input.request_id.as_deref();
        let oversized = [given.unwrap_or(""), &input.action, &input.resource]
            .iter()
            .any(|f| f.len() > MAX_FIELD_BYTES);
        if oversized {
            // Built and capped now, so that nothing queued is larger than a field's bound.
            let id = match (given, made_up) {
                (Some(id), _) => id.to_owned(),
                (None, Some(id)) => id,
                (None, None) => next_request_id(),
            };
            let outcome = outcome.as_ref().map_err(|code| *code);
            let mut record = record_of(&id, method, rfc3339_millis(now), latency_us, outcome);
            record.action.clone_from(&input.action);
            record.resource.clone_from(&input.resource);
            log.record(record);
            return;
        }
        let request_id = match (given, made_up) {
            (Some(id), _) => RequestId::Given(id.into()),
            (None, Some(id)) => RequestId::Given(id.into()),
            (None, None) => RequestId::Numbered(next_request_number()),
        };
        log.record_deferred(LoggedDecision {
            request_id,
            method,
            at: now,
            latency_us,
            outcome,
            request: RequestText::new(&input.action, &input.resource),
        });
    }

    /// The decision procedure, step by step: who asks, on which snapshots, whether the cache
    /// knows the answer, and otherwise the evaluation.
    fn decide(
        &self,
        input: &AuthorizeInput,
        now: Timestamp,
        started: Instant,
    ) -> Result<Decision, ApiError> {
        check_present(input)?;
        let served = self.api.store.served();
        let (identified, caller_snapshot) = self.identify(&input.caller, &served, now)?;
        let named = match &identified {
            Identified::Named(arn) => Some(*arn),
            Identified::Credentials(_) => None,
        };
        // A named caller's ARN is read in full only on a miss; an error before that is the
        // ARN's own, when it has one, as it was when the ARN was read first.
        let before_lookup = |e: ApiError| match named {
            Some(arn) => parse_principal(arn).err().unwrap_or(e),
            None => e,
        };
        let snapshots = self
            .snapshots(input, &served, caller_snapshot, now)
            .map_err(before_lookup)?;
        let inline = compile_inline_policy(input.resource_policy.as_deref(), &input.action)
            .map_err(before_lookup)?;
        let session_policies: &[Arc<CompiledPolicy>] = match &identified {
            Identified::Named(_) => &[],
            Identified::Credentials(v) => &v.caller.session_policies,
        };

        // The cache is consulted before anything is derived from the caller: a hit costs the
        // key, its hash and one lookup, and allocates nothing.
        let clock = Timestamp::from_epoch_seconds(now.epoch_seconds());
        let cache = &self.api.decisions;
        let lookup = (!input.explain).then(|| {
            with_key_buffer(|key| {
                cache_key(
                    key,
                    &snapshots,
                    input,
                    named.is_none(),
                    session_policies,
                    inline.as_ref(),
                    clock,
                );
                let fingerprint = cache.fingerprint(key);
                cache.get(fingerprint, started).ok_or(fingerprint)
            })
        });
        let missed = match lookup {
            Some(Ok(hit)) => {
                return Ok(self.answer_hit(input, &identified, &snapshots, now, started, hit))
            }
            Some(Err(missed)) => Some(missed),
            None => None,
        };
        if missed.is_some() {
            self.api.decision_stats.miss();
        }
        let authenticated = match identified {
            Identified::Named(arn) => Authenticated::Named(named_caller(arn, &snapshots.caller)?),
            Identified::Credentials(v) => Authenticated::Credentials(v),
        };
        let caller = authenticated.caller();
        let decided = self.evaluate(input, &authenticated, &snapshots, inline.as_ref(), clock)?;
        let usage = self.record_use(input, caller, &snapshots.caller, now);
        let mut decided = Arc::new(CachedDecision::new(decided, usage));
        if let Some(fingerprint) = missed {
            let heap = decided.heap_bytes();
            decided = cache.share(decided);
            cache.insert(fingerprint, Arc::clone(&decided), heap, started);
        }
        Ok(Decision {
            decided,
            cached: false,
        })
    }

    /// A hit: counted, and a use of its usage entry.
    #[inline]
    fn answer_hit(
        &self,
        input: &AuthorizeInput,
        identified: &Identified<'_>,
        snapshots: &Snapshots<'_>,
        now: Timestamp,
        started: Instant,
        hit: Arc<CachedDecision>,
    ) -> Decision {
        self.api.decision_stats.hit();
        if let Some(usage) = &self.api.usage {
            // A hit is a use of the cached decision's entry: raised in place.
            let raised = hit
                .usage
                .as_ref()
                .is_some_and(|slot| usage.raise(slot, now.epoch_seconds()));
            if !raised {
                self.record_hit_anew(input, identified, snapshots, now, started, &hit);
            }
        }
        Decision {
            decided: hit,
            cached: true,
        }
    }

    /// Records a hit whose cached decision has no live usage entry (its entry left the table
    /// after an idle interval, or a bound dropped it): through the table, as a miss is, and
    /// the cached decision is replaced by one holding the entry now there, so that later hits
    /// raise it in place again.
    #[cold]
    fn record_hit_anew(
        &self,
        input: &AuthorizeInput,
        identified: &Identified<'_>,
        snapshots: &Snapshots<'_>,
        now: Timestamp,
        started: Instant,
        hit: &CachedDecision,
    ) {
        let named;
        let caller = match identified {
            Identified::Named(arn) => match named_caller(arn, &snapshots.caller) {
                Ok(c) => {
                    named = c;
                    &named
                }
                Err(_) => return,
            },
            Identified::Credentials(v) => &v.caller,
        };
        let Some(slot) = self.record_use(input, caller, &snapshots.caller, now) else {
            return;
        };
        let replaced = Arc::new(CachedDecision::new(hit.decided.clone(), Some(slot)));
        let heap = replaced.heap_bytes();
        let cache = &self.api.decisions;
        let replaced = cache.share(replaced);
        let session_policies: &[Arc<CompiledPolicy>] = match identified {
            Identified::Named(_) => &[],
            Identified::Credentials(v) => &v.caller.session_policies,
        };
        // The key is made again (only the cold path pays twice): the inline policy, the one
        // input it needs compiled, cannot be in play here, since a hit means it was compiled
        // for this very key; its digest is in the key, its context keys are read again.
        let Ok(inline) = compile_inline_policy(input.resource_policy.as_deref(), &input.action)
        else {
            return;
        };
        let clock = Timestamp::from_epoch_seconds(now.epoch_seconds());
        with_key_buffer(|key| {
            cache_key(
                key,
                snapshots,
                input,
                matches!(identified, Identified::Credentials(_)),
                session_policies,
                inline.as_ref(),
                clock,
            );
            cache.insert(cache.fingerprint(key), replaced, heap, started);
        });
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

    /// Who is asking, and the caller tenant's snapshot. A caller named by ARN is found by the
    /// account its ARN names; the ARN is read in full only on a miss.
    fn identify<'a>(
        &self,
        caller: &'a CallerId,
        served: &'a Served,
        now: Timestamp,
    ) -> Result<(Identified<'a>, Held<'a>), ApiError> {
        match caller {
            CallerId::PrincipalArn(arn) => {
                let Some(tenant) = arn_account(arn) else {
                    // An ARN that names no account, or a service principal.
                    parse_principal(arn)?;
                    return Err(ApiError::invalid(
                        "principal_arn",
                        "the caller must belong to a tenant",
                    ));
                };
                let snapshot = self
                    .api
                    .find(served, tenant)
                    .map_err(|e| parse_principal(arn).err().unwrap_or(e))?;
                Ok((Identified::Named(arn), Held::Served(snapshot)))
            }
            other => {
                let (verified, snapshot) = self.api.authenticate(other, now)?;
                Ok((Identified::Credentials(verified), Held::Verified(snapshot)))
            }
        }
    }

    /// Checks that the caller tenant may decide now and is recent enough, and loads the
    /// resource tenant's snapshot when it is another tenant.
    fn snapshots<'a>(
        &self,
        input: &'a AuthorizeInput,
        served: &'a Served,
        caller: Held<'a>,
        now: Timestamp,
    ) -> Result<Snapshots<'a>, ApiError> {
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
        let other_tenant = input
            .resource_tenant
            .as_deref()
            .or_else(|| arn_account(&input.resource))
            .filter(|t| *t != caller_tenant);
        let resource = other_tenant.and_then(|t| served.get(t)).map(|s| &**s);
        Ok(Snapshots {
            caller,
            resource,
            other_tenant,
        })
    }

    /// Evaluates a request the cache did not know.
    fn evaluate(
        &self,
        input: &AuthorizeInput,
        authenticated: &Authenticated,
        snapshots: &Snapshots<'_>,
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
        if let Some(other) = snapshots.other_tenant {
            request = request.with_resource_account(other);
        }
        let resource_snapshot = match snapshots.other_tenant {
            None => Some(&**snapshot),
            Some(_) => snapshots.resource,
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

/// Parses and compiles a policy supplied with the request, if there is one: a trust policy
/// when `action` is `sts:AssumeRole*`, a resource-based policy otherwise.
// Inlined, so that the usual request, which supplies none, pays a branch and no call.
#[inline]
fn compile_inline_policy(
    text: Option<&str>,
    action: &str,
) -> Result<Option<CompiledPolicy>, ApiError> {
    match text.filter(|t| !is_blank_policy(t)) {
        None => Ok(None),
        Some(text) => compile_supplied_policy(text, is_assume_role(action)).map(Some),
    }
}

/// Whether a policy given with a request is only JSON's whitespace, which stands for none.
/// Not `str::trim`, which reads Unicode's whitespace table on every request: a document of
/// other blanks is not JSON, and is refused as such.
pub fn is_blank_policy(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Parses and compiles a supplied policy (see [`compile_inline_policy`]).
#[inline(never)]
fn compile_supplied_policy(text: &str, is_assume_role: bool) -> Result<CompiledPolicy, ApiError> {
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
    Ok(CompiledPolicy::compile(
        "request#resource-policy",
        kind,
        &document,
    ))
}

/// The account of an ARN (`arn:partition:service:region:account:...`), if it names one: as
/// `ArnParts::split(arn)?.account()` reads it (an `arn:` prefix in any case, at least five
/// colons), but scanning no further than the fifth colon, and not at all for a principal's
/// usual shape, since every request reads its resource's and a named caller's.
fn arn_account(arn: &str) -> Option<&str> {
    if let Some(account) = principal_account(arn) {
        return Some(account);
    }
    let bytes = arn.as_bytes();
    // `arn:` in any case, as one word: the bytewise case-insensitive comparison cost ~30
    // instructions. Setting bit 5 folds `A`, `R` and `N` onto their lowercase and nothing
    // else onto them; the colon is compared exactly.
    let head = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    if head | 0x0020_2020 != u32::from_le_bytes(*b"arn:") {
        return None;
    }
    // A plain search for each colon: the iterator chain this replaced (enumerate, filter,
    // nth) cost each request ~900 instructions for its two ARNs, and a search eight bytes at
    // a time saved nothing on ARNs this short.
    let colon = |from: usize| Some(from + bytes.get(from..)?.iter().position(|&b| b == b':')?);
    // After `arn:`, the partition, the service and the region each end at a colon.
    let start = colon(colon(colon(4)? + 1)? + 1)? + 1;
    let end = colon(start)?;
    arn.get(start..end).filter(|a| !a.is_empty())
}

/// The account of an ARN of the shape a named principal's nearly always has: `arn:aws:iam::`
/// or `arn:aws:sts::`, then twelve bytes without a colon, then a colon. `None` for any other
/// ARN, which the search reads. Searching for the colons a byte at a time cost the caller's
/// ARN ~190 instructions; this compares four words.
#[inline]
fn principal_account(arn: &str) -> Option<&str> {
    let bytes = arn.as_bytes();
    let word = |at: usize| {
        bytes
            .get(at..at + 8)?
            .try_into()
            .ok()
            .map(u64::from_le_bytes)
    };
    let (head, service) = (word(0)?, word(5)?);
    // The word at 5..13 is `ws:iam::` or `ws:sts::` (its first three bytes were in `head`).
    if head != u64::from_le_bytes(*b"arn:aws:")
        || (service != u64::from_le_bytes(*b"ws:iam::")
            && service != u64::from_le_bytes(*b"ws:sts::"))
    {
        return None;
    }
    // The account is bytes 13..25 and byte 25 the colon that ends it: the words at 13..21 and
    // 18..26 hold no other colon. A byte of `w` is a colon where `w ^ ::::::::` is zero, and
    // `(x - 0x01..01) & !x & 0x80..80` marks the high bit of `x`'s lowest zero byte and of no
    // byte below it (a byte above may be marked by the borrow): so a word's marks are nonzero
    // exactly when one of its bytes is zero, and its seven low bytes' marks when one of those
    // is.
    let (first, last) = (word(13)?, word(18)?);
    let zeros = |x: u64| x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080;
    let colons = |w: u64| zeros(w ^ u64::from_le_bytes([b':'; 8]));
    let ends = last >> 56 == u64::from(b':');
    let inner = colons(first) != 0 || colons(last) & 0x0080_8080_8080_8080 != 0;
    if ends && !inner {
        arn.get(13..25)
    } else {
        None
    }
}

/// The decision cache's key: everything the decision depends on, read before the request is
/// evaluated. Both tenants' snapshots come first, so a swap makes older entries
/// unreachable. The caller enters by its ARN, or by its access key id, which names a user for
/// a version or one session (its policies, tags and times); the context enters only through
/// the keys some policy in play can read (less the keys an authenticated caller cannot
/// claim), and the clock only when a policy reads it. The keys the sidecar derives from the
/// caller are a function of those, so they need no place here. The region a use is of (the
/// requested one, the signature's, the resource's) is in it too, so that a cached decision's
/// usage entry is the entry of every request it answers.
fn cache_key(
    key: &mut Vec<u8>,
    snapshots: &Snapshots<'_>,
    input: &AuthorizeInput,
    authenticated: bool,
    session_policies: &[Arc<CompiledPolicy>],
    inline: Option<&CompiledPolicy>,
    now: Timestamp,
) {
    let snapshot = &*snapshots.caller;
    let resource_snapshot = snapshots.resource;
    // Each snapshot by its serial, which names its tenant and version in eight bytes: the
    // account and the version's two numbers written and hashed cost a hit ~100 instructions
    // more. A serial is never reused, so a key is never shared by two snapshots.
    key.extend_from_slice(&snapshot.serial().to_le_bytes());
    match resource_snapshot {
        Some(s) => {
            key.push(b'r');
            key.extend_from_slice(&s.serial().to_le_bytes());
        }
        None => key.push(b'-'),
    }
    // The resource tenant, when it is not the caller's (an empty field when it is).
    field(key, snapshots.other_tenant.unwrap_or("").as_bytes());
    match &input.caller {
        CallerId::PrincipalArn(arn) => {
            key.push(b'a');
            field(key, arn.as_bytes());
        }
        CallerId::Keys { access_key_id, .. } => {
            key.push(b'k');
            field(key, access_key_id.as_bytes());
        }
        CallerId::Signed(s) => {
            key.push(b's');
            field(key, s.access_key_id().as_bytes());
            // The signature's region is the use's region when the request names none.
            field(key, s.region().as_bytes());
        }
    }
    field(key, input.action.as_bytes());
    field(key, input.resource.as_bytes());
    match input
        .resource_policy
        .as_deref()
        .filter(|t| !is_blank_policy(t))
    {
        Some(text) => field(
            key,
            digest::digest(&digest::SHA256, text.as_bytes()).as_ref(),
        ),
        None => field(key, b""),
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
        field(key, k.as_bytes());
        match values {
            KeyValues::Single(v) => {
                key.push(b'1');
                field(key, v.as_str().as_bytes());
            }
            KeyValues::Multi(vs) => {
                key.push(b'n');
                length(key, vs.len());
                for v in vs {
                    field(key, v.as_str().as_bytes());
                }
            }
        }
    }
    // Whether a policy in play reads the clock was found when each was compiled: searching
    // for the three clock keys here cost a hit ~630 instructions, a fifth of its decision.
    let reads_clock = snapshot.reads_clock()
        || resource_snapshot.is_some_and(TenantSnapshot::reads_clock)
        || inline.is_some_and(CompiledPolicy::reads_clock)
        || session_policies.iter().any(|p| p.reads_clock());
    if reads_clock {
        key.push(b'c');
        key.extend_from_slice(&now.epoch_seconds().to_le_bytes());
    } else {
        key.push(b'-');
    }
}

/// Appends a field to a key: its length, then its bytes, so that no two sequences of fields
/// make the same bytes.
#[inline]
fn field(key: &mut Vec<u8>, bytes: &[u8]) {
    // A field under 128 bytes (nearly every one) has a one-byte length: written without
    // the loop.
    match u8::try_from(bytes.len()) {
        Ok(short) if short < 0x80 => key.push(short),
        _ => length(key, bytes.len()),
    }
    key.extend_from_slice(bytes);
}

/// Appends a length in as few bytes as it needs (LEB128: seven bits a byte, the high bit set
/// on all but the last), so that the short fields of an ordinary key cost one byte each.
fn length(key: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        key.push(u8::try_from(n & 0x7f).unwrap_or(0) | 0x80);
        n >>= 7;
    }
    key.push(u8::try_from(n).unwrap_or(0));
}

thread_local! {
    /// Where a request's cache key is made: one buffer a thread, grown by its first key, so
    /// that later lookups allocate nothing.
    static KEY_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's key buffer, emptied.
fn with_key_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    KEY_BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut key) => {
            key.clear();
            let result = f(&mut key);
            // A buffer grown by an unusually large key is not kept.
            if key.capacity() > 4096 {
                *key = Vec::with_capacity(256);
            }
            result
        }
        // Not reentered today; a buffer of its own if it ever is.
        Err(_) => f(&mut Vec::with_capacity(256)),
    })
}

/// Reads a named caller's ARN.
fn parse_principal(arn: &str) -> Result<Principal, ApiError> {
    Principal::parse(arn).map_err(|e| ApiError::invalid("principal_arn", e))
}

/// The caller an ARN names, which must be of the tenant its ARN's account field named.
fn named_caller(arn: &str, snapshot: &TenantSnapshot) -> Result<Caller, ApiError> {
    let principal = parse_principal(arn)?;
    if principal.account() != Some(snapshot.account_id()) {
        return Err(ApiError::invalid(
            "principal_arn",
            "the caller must belong to a tenant",
        ));
    }
    Ok(Caller {
        principal,
        session: None,
        session_policies: Arc::new([]),
    })
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

/// A decision as the decision log queues it: what its record is made of, captured on the
/// request path without formatting anything, and made into the record by the log's writer.
#[derive(Debug)]
pub(super) struct LoggedDecision {
    request_id: RequestId,
    method: Method,
    at: Timestamp,
    latency_us: u64,
    /// The decision, or the error's code.
    outcome: Result<Decision, &'static str>,
    request: RequestText,
}

/// The longest action and resource, together, kept inline in a queued decision.
const INLINE_REQUEST_BYTES: usize = 118;

/// A logged request's action and then its resource: inline when they are short (nearly
/// every request), so that queuing a decision allocates nothing. A block taken on a request's
/// thread and freed on the writer's leaves the allocator's per-thread caches on both sides
/// (some 400 instructions a record); longer texts take one allocation.
#[derive(Debug)]
struct RequestText {
    /// Where the action ends.
    action_len: usize,
    text: InlineOrBoxed,
}

#[derive(Debug)]
enum InlineOrBoxed {
    Inline {
        len: u8,
        bytes: [u8; INLINE_REQUEST_BYTES],
    },
    Boxed(Box<str>),
}

impl RequestText {
    fn new(action: &str, resource: &str) -> Self {
        let len = action.len() + resource.len();
        let text = match u8::try_from(len) {
            Ok(short) if len <= INLINE_REQUEST_BYTES => {
                let mut bytes = [0; INLINE_REQUEST_BYTES];
                let (head, tail) = bytes.split_at_mut(action.len());
                head.copy_from_slice(action.as_bytes());
                if let Some(tail) = tail.get_mut(..resource.len()) {
                    tail.copy_from_slice(resource.as_bytes());
                }
                InlineOrBoxed::Inline { len: short, bytes }
            }
            _ => {
                let mut text = String::with_capacity(len);
                text.push_str(action);
                text.push_str(resource);
                InlineOrBoxed::Boxed(text.into_boxed_str())
            }
        };
        Self {
            action_len: action.len(),
            text,
        }
    }

    /// The action and the resource, as the bytes of their `str`s: checking them as UTF-8
    /// again would cost more than writing them.
    fn parts(&self) -> (&[u8], &[u8]) {
        let text = match &self.text {
            InlineOrBoxed::Inline { len, bytes } => {
                bytes.get(..usize::from(*len)).unwrap_or_default()
            }
            InlineOrBoxed::Boxed(text) => text.as_bytes(),
        };
        text.split_at_checked(self.action_len)
            .unwrap_or((text, &[]))
    }
}

/// A logged request's id: the caller's, or one made up from a number of this process's.
#[derive(Debug)]
enum RequestId {
    Given(Box<str>),
    Numbered(u64),
}

impl LoggedDecision {
    /// Writes the record [`Self::into_record`] makes as its JSON line's object, without
    /// making it; the fields cut to their bound.
    pub(super) fn write_json(&self, mut line: JsonLine<'_>) -> u64 {
        line.time("time", self.at);
        match &self.request_id {
            RequestId::Given(id) => line.text("request_id", id),
            RequestId::Numbered(n) => line.plain_with("request_id", |text| {
                push_request_id(text, *n);
            }),
        }
        line.name("operation", Some(operation_name(self.method)));
        let (action, resource) = self.request.parts();
        match &self.outcome {
            Ok(decision) => {
                let fields = decision
                    .decided
                    .log_fields
                    .get_or_init(|| LogFields::of(&decision.decided.decided));
                let (head, tail) = fields.json.split_at(fields.head_len.min(fields.json.len()));
                line.fields(head, fields.cut);
                line.utf8_text("action", action);
                line.utf8_text("resource", resource);
                line.fields(tail, 0);
            }
            Err(code) => {
                write_head(&mut line, None);
                line.utf8_text("action", action);
                line.utf8_text("resource", resource);
                write_tail(&mut line, None, Some(*code));
            }
        }
        line.number("latency_us", self.latency_us);
        line.boolean("cached", self.outcome.as_ref().is_ok_and(Decision::cached));
        line.finish()
    }

    /// The record, as [`DecisionLog`](super::decision_log::DecisionLog) wrote it before
    /// [`Self::write_json`]: the reference that tests hold the line to.
    #[cfg(test)]
    pub(super) fn into_record(self, clock: &mut TimeText) -> DecisionRecord {
        let id = match &self.request_id {
            RequestId::Given(id) => String::from(&**id),
            RequestId::Numbered(n) => request_id_of(*n),
        };
        let outcome = self.outcome.as_ref().map_err(|code| *code);
        let time = clock.millis(self.at);
        let mut record = record_of(&id, self.method, time, self.latency_us, outcome);
        let (action, resource) = self.request.parts();
        record.action = String::from_utf8_lossy(action).into_owned();
        record.resource = String::from_utf8_lossy(resource).into_owned();
        record
    }
}

/// The decision log's record of one request (its action and resource are the caller's to
/// fill); an error is named by its code.
fn record_of(
    request_id: &str,
    method: Method,
    time: String,
    latency_us: u64,
    result: Result<&Decision, &'static str>,
) -> DecisionRecord {
    let mut record = DecisionRecord {
        time,
        request_id: request_id.to_owned(),
        operation: operation_name(method),
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
            record.statement = d.statement.as_ref().map(|s| {
                let mut text = String::new();
                push_statement(&mut text, s);
                text
            });
            record.snapshot_version = format!("{}.{}", d.version.epoch, d.version.seq);
            record.cached = d.cached();
        }
        Err(code) => record.error_code = Some(code),
    }
    record
}

/// The operation's name in the decision log.
fn operation_name(method: Method) -> &'static str {
    match method {
        Method::BatchAuthorize => "BatchAuthorize",
        _ => "Authorize",
    }
}

/// A line's fields before the request's action and resource: the decision's tenant and
/// principal, empty for an error.
fn write_head(line: &mut JsonLine<'_>, decided: Option<&Decided>) {
    line.text("tenant", decided.map_or("", |d| &d.tenant));
    line.text("principal", decided.map_or("", |d| &d.principal));
}

/// A line's fields after the request's action and resource, up to the snapshot's version:
/// what was decided and by what, or the error's code.
fn write_tail(line: &mut JsonLine<'_>, decided: Option<&Decided>, error: Option<&'static str>) {
    line.name(
        "decision",
        Some(decided.map_or("Error", |d| d.outcome.as_str())),
    );
    line.name("error_code", error);
    line.name(
        "policy_type",
        decided.and_then(|d| d.policy_type).map(policy_type_name),
    );
    match decided.and_then(|d| d.statement.as_ref()) {
        Some(statement) => line.text_with("statement", |text| {
            push_statement(text, statement);
        }),
        None => line.name("statement", None),
    }
    line.plain_with("snapshot_version", |text| {
        if let Some(d) = decided {
            let mut digits = itoa::Buffer::new();
            text.extend_from_slice(digits.format(d.version.epoch).as_bytes());
            text.push(b'.');
            text.extend_from_slice(digits.format(d.version.seq).as_bytes());
        }
    });
}

/// A deciding statement as the decision log names it: `policy-id#index(sid)`.
fn push_statement(text: &mut String, statement: &StatementRef) {
    text.push_str(&statement.policy);
    text.push('#');
    text.push_str(itoa::Buffer::new().format(statement.index));
    if let Some(sid) = &statement.sid {
        text.push('(');
        text.push_str(sid);
        text.push(')');
    }
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

/// The made-up ids' prefix: when this process made its first one, in milliseconds, in hex,
/// and a dash; made once, since the decision log writes it on every such record.
static REQUEST_ID_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// [`REQUEST_ID_PREFIX`], made on first use.
fn request_id_prefix() -> &'static str {
    REQUEST_ID_PREFIX.get_or_init(|| format!("{:x}-", Timestamp::now().epoch_millis()))
}

/// A process-unique request id: the start time and a counter (no randomness on the hot path).
pub fn next_request_id() -> String {
    request_id_of(next_request_number())
}

/// The number of the next made-up request id; [`request_id_of`] makes it the id.
fn next_request_number() -> u64 {
    request_id_prefix();
    REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// The made-up request id numbered `n`.
fn request_id_of(n: u64) -> String {
    let mut id = Vec::new();
    push_request_id(&mut id, n);
    // ASCII throughout: nothing is replaced.
    String::from_utf8_lossy(&id).into_owned()
}

/// Appends [`request_id_of`]`(n)` to `text`.
fn push_request_id(text: &mut Vec<u8>, n: u64) {
    text.extend_from_slice(request_id_prefix().as_bytes());
    text.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::directory::{CreateUserInput, IdGenerator, Tenant};
    use crate::sidecar::decision_log::{DecisionLogConfig, LogSink, Rotation};
    use crate::sidecar::CacheConfig;
    use crate::snapshot::{AwsManagedCatalog, SnapshotStore};

    /// An Authorizer over one tenant whose alice may read `arn:aws:s3:::b/*` but not
    /// `arn:aws:s3:::b/secret`, logging every decision to `log`.
    fn logging_authorizer(log: Arc<crate::sidecar::decision_log::DecisionLog>) -> Authorizer {
        let mut t = Tenant::new("111122223333", 0);
        let mut ids = IdGenerator::seeded(7);
        t.create_user(
            &mut ids,
            0,
            CreateUserInput {
                name: "alice".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let doc = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Reads", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret"}
        ]});
        t.put_user_policy("alice", "reads", &doc.to_string())
            .unwrap();
        let store = Arc::new(SnapshotStore::new());
        store
            .apply(
                TenantSnapshot::compile(
                    Arc::new(t),
                    SnapshotVersion::new(3, 4),
                    &AwsManagedCatalog::compile(),
                )
                .unwrap(),
            )
            .unwrap();
        Authorizer::new(Arc::new(Api::new(store, &CacheConfig::default(), log)))
    }

    fn input(resource: &str, request_id: Option<&str>) -> AuthorizeInput {
        AuthorizeInput {
            caller: CallerId::PrincipalArn("arn:aws:iam::111122223333:user/alice".into()),
            action: "s3:GetObject".into(),
            resource: resource.into(),
            context: Context::new(),
            resource_tenant: None,
            resource_policy: None,
            explain: false,
            min_version: None,
            request_id: request_id.map(str::to_owned),
        }
    }

    #[test]
    fn an_ordinary_decision_weighs_one_unit_of_the_cache() {
        use crate::sidecar::fingerprint_cache::{SLOT_BYTES, UNIT_BYTES};
        let authorizer = logging_authorizer(crate::sidecar::decision_log::DecisionLog::off());
        let decided = authorizer
            .authorize(&input("arn:aws:s3:::b/notes", None))
            .unwrap();
        assert!(decided.statement.is_some());
        // Its log fields made, as when the log has written it: they weigh nothing more.
        let logged = LoggedDecision {
            request_id: RequestId::Numbered(1),
            method: Method::Authorize,
            at: Timestamp::now(),
            latency_us: 1,
            outcome: Ok(decided.clone()),
            request: RequestText::new("s3:GetObject", "arn:aws:s3:::b/notes"),
        };
        let (mut line, mut scratch, mut clock) = (Vec::new(), String::new(), TimeText::default());
        logged.write_json(JsonLine::new(&mut line, &mut scratch, &mut clock));
        assert!(decided.decided.log_fields.get().is_some());
        let bytes = SLOT_BYTES + decided.decided.heap_bytes();
        assert!(bytes <= UNIT_BYTES, "{bytes} bytes");
    }

    #[test]
    fn a_requests_text_gives_back_its_action_and_resource_inline_or_not() {
        // Around the inline bound, with multi-byte characters on either side of the split.
        for total in [
            0,
            1,
            INLINE_REQUEST_BYTES - 1,
            INLINE_REQUEST_BYTES,
            INLINE_REQUEST_BYTES + 1,
            300,
        ] {
            for action_len in [0, 1, total / 2, total].into_iter().filter(|&a| a <= total) {
                let action = "é".repeat(action_len / 2) + &"a".repeat(action_len % 2);
                let rest = total - action.len();
                let resource = "😀".repeat(rest / 4) + &"b".repeat(rest % 4);
                let text = RequestText::new(&action, &resource);
                assert_eq!(
                    text.parts(),
                    (action.as_bytes(), resource.as_bytes()),
                    "{total} {action_len}"
                );
                assert_eq!(
                    matches!(text.text, InlineOrBoxed::Inline { .. }),
                    total <= INLINE_REQUEST_BYTES,
                    "{total} bytes inline"
                );
            }
        }
    }

    #[test]
    fn a_decisions_line_is_the_json_of_its_record_byte_for_byte() {
        let authorizer = logging_authorizer(crate::sidecar::decision_log::DecisionLog::off());
        let allowed = authorizer
            .authorize(&input("arn:aws:s3:::b/notes", Some("r-1")))
            .unwrap();
        let cached = authorizer
            .authorize(&input("arn:aws:s3:::b/notes", None))
            .unwrap();
        let denied = authorizer
            .authorize(&input("arn:aws:s3:::b/secret", None))
            .unwrap();
        assert!(allowed.statement.as_ref().unwrap().sid.is_some());
        assert!(denied.statement.as_ref().unwrap().sid.is_none() && cached.cached());
        // Escapes (quotes, backslashes, newlines, control characters, non-ASCII) and texts
        // over the bound, cut on a character boundary.
        let odd = "arn:aws:s3:::b/\"q\"\\\n\t\u{1}\u{7f}é😀";
        let long = format!("arn:aws:s3:::b/{}", "é".repeat(3000));
        // The request id, the method, the outcome, the action, the resource.
        type Case<'a> = (
            RequestId,
            Method,
            Result<Decision, &'static str>,
            &'a str,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                RequestId::Given("r-1".into()),
                Method::Authorize,
                Ok(allowed),
                "s3:GetObject",
                "arn:aws:s3:::b/notes",
            ),
            (
                RequestId::Numbered(7),
                Method::BatchAuthorize,
                Ok(cached),
                "s3:GetObject",
                odd,
            ),
            (
                RequestId::Given("\"id\"\n".into()),
                Method::Authorize,
                Ok(denied),
                "s3:Get\"Object",
                &long,
            ),
            (
                RequestId::Given("x".repeat(5000).into()),
                Method::Authorize,
                Err("AccessDenied"),
                &long,
                odd,
            ),
            (
                RequestId::Numbered(u64::MAX),
                Method::BatchAuthorize,
                Err("InvalidInput"),
                "",
                "",
            ),
        ];
        let mut clock = TimeText::default();
        let mut scratch = String::new();
        for (i, (request_id, method, outcome, action, resource)) in cases.into_iter().enumerate() {
            let logged = LoggedDecision {
                request_id,
                method,
                at: Timestamp(1_700_000_000_123_456_789 + i128::try_from(i).unwrap() * 999_000_000),
                latency_us: 12 + u64::try_from(i).unwrap(),
                outcome,
                request: RequestText::new(action, resource),
            };
            let mut line = Vec::new();
            let cut = logged.write_json(JsonLine::new(&mut line, &mut scratch, &mut clock));
            // Written again, from the decision's fields as the first line left them.
            let mut again = Vec::new();
            let cut_again = logged.write_json(JsonLine::new(&mut again, &mut scratch, &mut clock));
            assert_eq!((&again, cut_again), (&line, cut), "case {i}, written twice");
            let mut record = logged.into_record(&mut TimeText::default());
            let expected_cut = record.cap_fields();
            assert_eq!(
                String::from_utf8(line).unwrap(),
                serde_json::to_string(&record).unwrap(),
                "case {i}"
            );
            assert_eq!(cut, expected_cut, "case {i}");
        }
    }

    #[tokio::test]
    async fn the_writer_makes_an_authorize_record_with_every_field_the_decision_says() {
        let path = std::env::temp_dir().join(format!(
            "iamlet-authorize-log-{}-{}.jsonl",
            std::process::id(),
            Timestamp::now().0
        ));
        let (log, task) = crate::sidecar::decision_log::DecisionLog::spawn(DecisionLogConfig {
            sink: LogSink::File(path.clone()),
            deny_only: false,
            sample_rate: 1.0,
            capacity: 64,
            rotation: Rotation::default(),
        })
        .unwrap();
        let authorizer = logging_authorizer(Arc::clone(&log));
        let allowed = authorizer
            .authorize(&input("arn:aws:s3:::b/notes", Some("r-1")))
            .unwrap();
        let again = authorizer
            .authorize(&input("arn:aws:s3:::b/notes", Some("r-2")))
            .unwrap();
        assert!(allowed.is_allowed() && !allowed.cached() && again.cached());
        let denied = authorizer
            .authorize(&input("arn:aws:s3:::b/secret", None))
            .unwrap();
        assert!(!denied.is_allowed());
        let mut refused = input("arn:aws:s3:::b/x", Some("r-4"));
        refused.caller = CallerId::PrincipalArn("arn:aws:iam::999999999999:user/eve".into());
        let error = authorizer.authorize(&refused).unwrap_err();
        // A field over the log's bound is capped before it is queued, and counted.
        let long = format!("arn:aws:s3:::b/{}", "x".repeat(5000));
        assert!(authorizer.authorize(&input(&long, Some("r-5"))).is_err());
        task.shutdown().await;
        assert_eq!((log.written(), log.dropped(), log.truncated()), (5, 0, 1));

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let statement = allowed.statement.as_ref().unwrap();
        let mut first = lines[0].clone();
        let time = first["time"].as_str().unwrap().to_owned();
        // RFC 3339 in UTC with milliseconds, as the eager record had it.
        assert_eq!((time.len(), &time[10..11], &time[19..20]), (24, "T", "."));
        assert!(time.ends_with('Z'), "{time}");
        assert!(first["latency_us"].is_u64());
        first["time"] = serde_json::Value::Null;
        first["latency_us"] = serde_json::Value::Null;
        assert_eq!(
            first,
            serde_json::json!({
                "time": null,
                "request_id": "r-1",
                "operation": "Authorize",
                "tenant": "111122223333",
                "principal": "arn:aws:iam::111122223333:user/alice",
                "action": "s3:GetObject",
                "resource": "arn:aws:s3:::b/notes",
                "decision": "Allow",
                "error_code": null,
                "policy_type": "Identity",
                "statement": format!("{}#0(Reads)", statement.policy),
                "snapshot_version": "3.4",
                "latency_us": null,
                "cached": false
            })
        );
        assert_eq!(
            (&lines[1]["request_id"], &lines[1]["cached"]),
            (&serde_json::json!("r-2"), &serde_json::json!(true))
        );
        // A made-up id: this process's start, in hex, and a number.
        let made_up = lines[2]["request_id"].as_str().unwrap();
        let (start, n) = made_up.split_once('-').unwrap();
        assert!(i64::from_str_radix(start, 16).is_ok() && n.parse::<u64>().is_ok());
        assert_eq!(lines[2]["decision"], "ExplicitDeny");
        assert_eq!(lines[2]["statement"], format!("{}#1", statement.policy));
        assert_eq!(lines[3]["decision"], "Error");
        assert_eq!(lines[3]["error_code"], error.code().as_str());
        assert_eq!(lines[3]["principal"], "");
        let capped = lines[4]["resource"].as_str().unwrap();
        assert_eq!(capped.len(), MAX_FIELD_BYTES);
        assert!(capped.ends_with(crate::sidecar::decision_log::TRUNCATED_MARK));
    }

    #[test]
    fn the_account_of_an_arn_is_read_as_arn_parts_reads_it() {
        for arn in [
            "arn:aws:iam::111122223333:user/alice",
            "ARN:aws:sts::111122223333:assumed-role/r/s",
            "arn:aws:s3:::demo-data/home/alice/notes.txt",
            "arn:aws:sqs:us-east-1:111122223333:demo-jobs",
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333",
            "arn:aws:iam:111122223333:user/a:b:c",
            "arn:aws:sérvice:ü:111122223333:thing/ä",
            "arn:aws:s3:::bücket/ö:x",
            "arn:a:b:c",
            "arn::::",
            "ec2.amazonaws.com",
            "arn:",
            "ar",
            "aRn:aws:iam::111122223333:root",
            "arn\u{1a}aws:iam::111122223333:root",
            "`rn:aws:iam::111122223333:root",
            "arn;aws:iam::111122223333:root",
            "",
            "*",
        ] {
            let expected = crate::policy::ArnParts::split(arn)
                .map(|p| p.account())
                .filter(|a| !a.is_empty());
            assert_eq!(arn_account(arn), expected, "{arn}");
        }
        // The principal's shape read without a search, beside near misses the search reads: a
        // colon at each byte of the account or none, each length around twelve, other cases.
        for prefix in [
            "arn:aws:iam::",
            "arn:aws:sts::",
            "arn:aws:iam:x:",
            "arn:aws:s3::",
            "arn:aws:sns::",
            "arn:AWS:iam::",
        ] {
            for length in 0..15 {
                for colon in (0..length).map(Some).chain([None]) {
                    let mut account: Vec<u8> = (0..length).map(|i| b'0' + (i % 10) as u8).collect();
                    if let Some(at) = colon {
                        account[at] = b':';
                    }
                    let account = String::from_utf8(account).expect("ASCII");
                    for tail in ["", ":", ":user/alice", "x:role/r", "::"] {
                        let arn = format!("{prefix}{account}{tail}");
                        let expected = crate::policy::ArnParts::split(&arn)
                            .map(|p| p.account())
                            .filter(|a| !a.is_empty());
                        assert_eq!(arn_account(&arn), expected, "{arn}");
                    }
                }
            }
        }
        // Each of the first four fields from 0 to 9 bytes long, so that the colons fall at every
        // offset, and after the account every kind of tail (none, a colon, more fields).
        for lengths in (0..10_000usize).map(|n| [n % 10, n / 10 % 10, n / 100 % 10, n / 1000]) {
            let [partition, service, region, account] = lengths.map(|l| "a".repeat(l));
            for tail in ["", ":", ":x", "x:y:z"] {
                let arn = format!("arn:{partition}:{service}:{region}:{account}{tail}");
                let expected = crate::policy::ArnParts::split(&arn)
                    .map(|p| p.account())
                    .filter(|a| !a.is_empty());
                assert_eq!(arn_account(&arn), expected, "{arn}");
            }
        }
    }

    #[test]
    fn a_policy_of_json_whitespace_is_none_and_one_of_other_blanks_is_refused() {
        for blank in ["", " ", "\n\t\r  \n"] {
            assert!(is_blank_policy(blank), "{blank:?}");
            assert!(
                matches!(compile_inline_policy(Some(blank), "s3:GetObject"), Ok(None)),
                "{blank:?} stands for no policy"
            );
        }
        // No-break space, the line separator, a vertical tab: blanks to `str::trim`, not JSON's.
        for other in ["\u{a0}", " \u{2028} ", "\u{b}"] {
            assert!(!is_blank_policy(other), "{other:?}");
            match compile_inline_policy(Some(other), "s3:GetObject") {
                Err(e) => assert!(e.to_string().contains("resource_policy_json"), "{e}"),
                Ok(p) => panic!("{other:?} was taken for a policy: {}", p.is_some()),
            }
        }
    }

    #[test]
    fn key_fields_carry_their_length_so_that_no_two_sequences_make_one_key() {
        let key = |fields: &[&[u8]]| {
            let mut key = Vec::new();
            for f in fields {
                field(&mut key, f);
            }
            key
        };
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_ne!(key(&[b"", b"a"]), key(&[b"a", b""]));
        // Lengths of 128 and more take more than one byte, and stay distinct.
        let long = vec![b'x'; 300];
        let mut encoded = Vec::new();
        length(&mut encoded, 300);
        assert_eq!(encoded, [0xac, 0x02]);
        assert_eq!(key(&[&long]).len(), 302);
        let mut short = Vec::new();
        length(&mut short, 127);
        assert_eq!(short, [0x7f]);
    }
}
