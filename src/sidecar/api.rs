//! What the local API's services share: the snapshot store, the caches, the decision log,
//! freshness, and the caller's authentication.

use crate::error::AwsCode;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::policy::{ContextValue, Timestamp};
use crate::snapshot::{Served, SnapshotStore, SnapshotVersion, TenantSnapshot};

use crate::jose::constant_time_eq;
use crate::sts::sigv4::{Signature, SignedRequest};
use crate::sts::{self, MfaReplayGuard, Presented, StsError, Verified};

use super::decision_log::DecisionLog;
use super::fingerprint_cache::{Fingerprint, FingerprintCache};
use crate::observe::Metrics;
use crate::sync::{Readiness, SyncState};

/// A cache's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that were not.
    pub misses: u64,
    /// Entries held now.
    pub entries: u64,
}

/// How the caches are sized.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Decisions kept at most: an ordinary decision counts one, a larger one one per 512
    /// bytes it holds (keys are not held, so long context values in a key weigh nothing).
    pub decisions: u64,
    /// How long a decision may be served from the cache.
    pub decision_ttl: Duration,
    /// Verified credentials kept at most.
    pub credentials: u64,
    /// How long verified credentials are kept (expiry is still checked at every use).
    pub credential_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            decisions: 100_000,
            decision_ttl: Duration::from_secs(60),
            credentials: 10_000,
            credential_ttl: Duration::from_secs(300),
        }
    }
}

/// How long a sidecar cut off from its control plane keeps answering (RELIABILITY §1.4):
/// decisions on its last good snapshots up to `max_serve_stale`, then it fails closed, but for
/// tenants that opted to fail open (each such decision counted); credentials only up to the
/// stricter `max_issue_stale`, and never beyond what `max_serve_stale` leaves.
#[derive(Debug, Clone)]
pub struct StalenessPolicy {
    /// Decisions are refused past this.
    pub max_serve_stale: Duration,
    /// Credentials are refused past this.
    pub max_issue_stale: Duration,
    /// Tenants whose decisions go on past `max_serve_stale`.
    pub fail_open_tenants: Vec<String>,
}

impl Default for StalenessPolicy {
    fn default() -> Self {
        Self {
            max_serve_stale: Duration::from_secs(24 * 3600),
            max_issue_stale: Duration::from_secs(15 * 60),
            fail_open_tenants: Vec::new(),
        }
    }
}

/// Where the API learns how fresh its snapshots are and which tenants it must have.
#[derive(Debug, Clone)]
pub struct Freshness {
    /// The stream's state (last contact).
    pub sync: Arc<SyncState>,
    /// The tenants the sidecar must serve.
    pub readiness: Readiness,
    /// The policy.
    pub policy: StalenessPolicy,
    /// When the process started (staleness before any contact counts from here).
    pub started_ms: i64,
}

/// Why a call to the local API failed. A deny is not an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field of the request is malformed.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field (`action`, `context[aws:SourceIp]`, ...).
        field: String,
        /// Why.
        reason: String,
    },
    /// The sidecar does not serve the tenant.
    #[error("tenant `{0}` is not served by this sidecar")]
    UnknownTenant(String),
    /// The principal named by ARN does not exist in its tenant.
    #[error("principal `{principal}` does not exist in tenant `{tenant}`")]
    UnknownPrincipal {
        /// The principal.
        principal: String,
        /// The tenant.
        tenant: String,
    },
    /// The tenant's snapshot is older than the version asked for.
    #[error("tenant `{tenant}` is at version {current}, older than the {wanted} asked for")]
    VersionBehind {
        /// The tenant.
        tenant: String,
        /// Its version here.
        current: SnapshotVersion,
        /// The version asked for.
        wanted: SnapshotVersion,
    },
    /// A tenant the sidecar must serve is not loaded yet.
    #[error("tenant `{0}` is not loaded yet")]
    NotLoaded(String),
    /// The tenant's data is older than the staleness policy allows for this operation.
    #[error("tenant `{tenant}` was last refreshed {stale_s} s ago, beyond the {limit_s} s allowed for {what}")]
    Stale {
        /// The tenant.
        tenant: String,
        /// Seconds since the control plane was last heard from.
        stale_s: u64,
        /// The bound.
        limit_s: u64,
        /// `decisions` or `issuing credentials`.
        what: &'static str,
    },
    /// An STS error (credentials, parameters, authorization).
    #[error(transparent)]
    Sts(#[from] StsError),
}

// === impl ApiError ===

impl ApiError {
    /// A malformed field.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// AWS's error code (iamlet's own where AWS has none).
    pub fn code(&self) -> AwsCode {
        match self {
            Self::InvalidArgument { .. } => AwsCode::ValidationError,
            Self::UnknownTenant(_) => AwsCode::NoSuchTenant,
            Self::UnknownPrincipal { .. } => AwsCode::NoSuchEntity,
            Self::VersionBehind { .. } => AwsCode::VersionNotReached,
            Self::NotLoaded(_) => AwsCode::ServiceUnavailable,
            Self::Stale { .. } => AwsCode::StalePolicy,
            Self::Sts(e) => e.code(),
        }
    }
}

/// The state the Authorizer and STS services share.
#[derive(Debug)]
pub struct Api {
    pub(super) store: Arc<SnapshotStore>,
    pub(super) credentials: CredentialCache,
    pub(super) decisions: FingerprintCache<Arc<super::authorize::CachedDecision>>,
    pub(super) decision_stats: HitStats,
    pub(super) mfa: MfaSteps,
    pub(super) log: Arc<DecisionLog>,
    /// `aws:CurrentTime` and `aws:EpochTime` of the current second, formatted once a second.
    clock: arc_swap::ArcSwapOption<(i64, ContextValue, ContextValue)>,
    /// Request metrics.
    pub(super) metrics: Metrics,
    /// Absent for an API over a store nobody refreshes (benchmarks, embedding).
    freshness: Option<Freshness>,
    /// Where decisions and STS calls are recorded as uses, when usage is shipped.
    pub(super) usage: Option<Arc<super::Usage>>,
    /// Where STS calls are queued as events, when they are shipped.
    pub(super) trail: Option<Arc<super::Trail>>,
}

/// Cache hits and misses.
#[derive(Debug, Default)]
pub(super) struct HitStats {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HitStats {
    pub(super) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// (hits, misses) so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Verified credentials by tenant, snapshot version and access key id, with the session token
/// they were verified with, so that token signatures are checked once per snapshot rather
/// than per request. The token and the secret or signature of every request are still
/// compared with the entry, in constant time. Entries are found by their key's fingerprint,
/// as decisions are: a hit neither allocates a key nor pays a general-purpose cache's
/// bookkeeping.
#[derive(Debug)]
pub(super) struct CredentialCache {
    cache: FingerprintCache<Arc<CachedCredential>>,
    stats: HitStats,
}

impl CredentialCache {
    fn new(config: &CacheConfig) -> Self {
        Self {
            cache: FingerprintCache::new(config.credentials, config.credential_ttl),
            stats: HitStats::default(),
        }
    }

    /// Tenant, snapshot version and access key id: a new snapshot (a key deactivated, a role
    /// deleted, an issuer key retired) makes every older entry unreachable. The account id
    /// goes first with its length and the version has fixed widths, so the key id is what
    /// remains. The key is put together on the stack and hashed in one go: fed to the hasher
    /// in parts, its buffering alone (`Hasher::write`) cost 546 instructions a lookup.
    fn fingerprint(&self, snapshot: &TenantSnapshot, access_key_id: &str) -> Fingerprint {
        let account = snapshot.account_id().as_bytes();
        let version = snapshot.version();
        let length = [u8::try_from(account.len()).unwrap_or(u8::MAX)];
        let parts: [&[u8]; 5] = [
            &length,
            account,
            &version.epoch.to_le_bytes(),
            &version.seq.to_le_bytes(),
            access_key_id.as_bytes(),
        ];
        // Room for the common key ids (20 characters; real ones are 16 to 128).
        let mut key = [0; 96];
        let mut len = 0;
        for part in parts {
            match key.get_mut(len..len + part.len()) {
                Some(to) => to.copy_from_slice(part),
                None => return self.cache.fingerprint(&parts.concat()),
            }
            len += part.len();
        }
        self.cache.fingerprint(key.get(..len).unwrap_or_default())
    }
}

struct CachedCredential {
    session_token: Option<Box<str>>,
    verified: Arc<Verified>,
}

impl std::fmt::Debug for CachedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCredential")
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

/// MFA time steps used at this sidecar, per device: a code is accepted once.
#[derive(Debug)]
pub(super) struct MfaSteps(Cache<(String, String), u64>);

impl MfaReplayGuard for MfaSteps {
    fn accept(&self, tenant: &str, serial: &str, step: u64) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let key = (tenant.to_owned(), serial.to_owned());
        // Atomic per key: of two concurrent uses of one code, one wins.
        let result = self.0.entry(key).and_compute_with(|last| match last {
            Some(last) if *last.value() >= step => Op::Nop,
            _ => Op::Put(step),
        });
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }
}

/// How a caller identified itself, decoded at the edge.
#[derive(Clone)]
pub enum CallerId {
    /// A principal ARN the application authenticated.
    PrincipalArn(String),
    /// Access keys.
    Keys {
        /// The key id.
        access_key_id: String,
        /// The secret.
        secret: String,
        /// The session token.
        session_token: Option<String>,
    },
    /// A SigV4-signed request, parsed.
    Signed(Box<Signature>),
}

impl std::fmt::Debug for CallerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PrincipalArn(arn) => f.debug_tuple("PrincipalArn").field(arn).finish(),
            Self::Keys { access_key_id, .. } => f
                .debug_struct("Keys")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
            Self::Signed(s) => f
                .debug_struct("Signed")
                .field("access_key_id", &s.access_key_id())
                .finish_non_exhaustive(),
        }
    }
}

// === impl CallerId ===

impl CallerId {
    /// A caller proven by a SigV4-signed request: parses the signature and builds the string
    /// to sign from the request's parts (any edge: a protobuf message, an HTTP request).
    pub fn signed(request: &SignedRequest<'_>) -> Result<Self, ApiError> {
        let signature = Signature::parse(request).map_err(StsError::from)?;
        Ok(Self::Signed(Box::new(signature)))
    }

    fn presented(&self) -> Option<Presented<'_>> {
        match self {
            Self::PrincipalArn(_) => None,
            Self::Keys {
                access_key_id,
                secret,
                session_token,
            } => Some(Presented::Keys {
                access_key_id,
                secret,
                session_token: session_token.as_deref(),
            }),
            Self::Signed(s) => Some(Presented::Signed(s)),
        }
    }
}

// === impl Api ===

impl Api {
    /// The shared state over `store`.
    pub fn new(store: Arc<SnapshotStore>, caches: &CacheConfig, log: Arc<DecisionLog>) -> Self {
        Self {
            store,
            credentials: CredentialCache::new(caches),
            decisions: FingerprintCache::new(caches.decisions, caches.decision_ttl),
            decision_stats: HitStats::default(),
            mfa: MfaSteps(Cache::builder().max_capacity(100_000).build()),
            log,
            clock: arc_swap::ArcSwapOption::empty(),
            metrics: Metrics::default(),
            freshness: None,
            usage: None,
            trail: None,
        }
    }

    /// Records every decision and authenticated STS call in `usage`.
    pub fn with_usage(mut self, usage: Arc<super::Usage>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Where uses are recorded, if anywhere.
    pub fn usage(&self) -> Option<&Arc<super::Usage>> {
        self.usage.as_ref()
    }

    /// Queues every STS call (but `GetCallerIdentity`, which AWS does not record) in `trail`.
    pub fn with_trail(mut self, trail: Arc<super::Trail>) -> Self {
        self.trail = Some(trail);
        self
    }

    /// Where STS calls are queued, if they are shipped.
    pub fn trail(&self) -> Option<&Arc<super::Trail>> {
        self.trail.as_ref()
    }

    /// Applies the staleness policy of `freshness` to every request.
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = Some(freshness);
        self
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Milliseconds since the control plane was last heard from (since start if never).
    pub fn staleness_ms(&self, now: Timestamp) -> i64 {
        self.freshness.as_ref().map_or(0, |f| {
            let now = now.epoch_millis();
            f.sync
                .staleness_ms(now)
                .unwrap_or_else(|| now.saturating_sub(f.started_ms))
                .max(0)
        })
    }

    /// Checks that `tenant`'s data may still be used for decisions.
    #[inline]
    pub(super) fn check_decide(&self, tenant: &str, now: Timestamp) -> Result<(), ApiError> {
        let Some(f) = &self.freshness else {
            return Ok(());
        };
        let stale = self.staleness_ms(now);
        let limit = millis(f.policy.max_serve_stale);
        if stale < limit {
            return Ok(());
        }
        if f.policy.fail_open_tenants.iter().any(|t| t == tenant) {
            self.metrics
                .stale_fail_open
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
        self.metrics
            .stale_refusals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(stale_error(tenant, stale, limit, "decisions"))
    }

    /// Checks that `tenant`'s data may still be used to issue credentials, and returns the
    /// latest expiry they may have (epoch seconds): what the decision bound leaves.
    pub(super) fn check_issue(
        &self,
        tenant: &str,
        now: Timestamp,
    ) -> Result<Option<i64>, ApiError> {
        let Some(f) = &self.freshness else {
            return Ok(None);
        };
        let stale = self.staleness_ms(now);
        let limit = millis(f.policy.max_issue_stale);
        if stale >= limit {
            self.metrics
                .stale_refusals
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(stale_error(tenant, stale, limit, "issuing credentials"));
        }
        let left_ms = millis(f.policy.max_serve_stale).saturating_sub(stale);
        Ok(Some(now.epoch_seconds().saturating_add(left_ms / 1000)))
    }

    /// The values of `aws:CurrentTime` and `aws:EpochTime` at `second` (a whole second).
    pub(super) fn clock_values(&self, second: Timestamp) -> (ContextValue, ContextValue) {
        let secs = second.epoch_seconds();
        if let Some(cached) = self.clock.load().as_deref().filter(|c| c.0 == secs) {
            return (cached.1.clone(), cached.2.clone());
        }
        let values = (
            ContextValue::from_timestamp(second),
            ContextValue::from_i64(secs),
        );
        self.clock
            .store(Some(Arc::new((secs, values.0.clone(), values.1.clone()))));
        values
    }

    /// Hits, misses and size of the decision cache.
    pub fn decision_cache_stats(&self) -> CacheStats {
        let (hits, misses) = self.decision_stats.counts();
        CacheStats {
            hits,
            misses,
            entries: self.decisions.entry_count(),
        }
    }

    /// Hits, misses and size of the verified-credential cache.
    pub fn credential_cache_stats(&self) -> CacheStats {
        let (hits, misses) = self.credentials.stats.counts();
        CacheStats {
            hits,
            misses,
            entries: self.credentials.cache.entry_count(),
        }
    }

    /// The decision log.
    pub fn decision_log(&self) -> &DecisionLog {
        &self.log
    }

    /// The snapshot of `tenant`: `NotLoaded` (retry) for a tenant the sidecar must serve but
    /// has not received yet, `UnknownTenant` for one it does not serve.
    pub fn load(&self, tenant: &str) -> Result<Arc<TenantSnapshot>, ApiError> {
        self.find(&self.store.served(), tenant).cloned()
    }

    /// [`Self::load`], borrowed from a view of the served tenants.
    #[inline]
    pub(super) fn find<'s>(
        &self,
        served: &'s Served,
        tenant: &str,
    ) -> Result<&'s Arc<TenantSnapshot>, ApiError> {
        served.get(tenant).ok_or_else(|| self.not_served(tenant))
    }

    /// Why `tenant` has no snapshot here.
    #[cold]
    fn not_served(&self, tenant: &str) -> ApiError {
        let required = self.freshness.as_ref().is_some_and(|f| match &f.readiness {
            Readiness::Tenants(t) => t.iter().any(|t| t == tenant),
            Readiness::All => !f.sync.full_response_seen(),
        });
        if required {
            ApiError::NotLoaded(tenant.to_owned())
        } else {
            ApiError::UnknownTenant(tenant.to_owned())
        }
    }

    /// Authenticates credentials: the tenant they name must be served here, and they must
    /// check out against its current snapshot. Returns the caller and that snapshot.
    pub fn authenticate(
        &self,
        caller: &CallerId,
        now: Timestamp,
    ) -> Result<(Arc<Verified>, Arc<TenantSnapshot>), ApiError> {
        let Some(presented) = caller.presented() else {
            return Err(ApiError::invalid(
                "caller",
                "give credentials or a signed request",
            ));
        };
        // Credentials of a tenant this sidecar does not serve are as unknown as forged ones.
        // A session token's tenant is read from its field alone: a hit needs the token to be
        // byte for byte one that verified, so reading the whole token (~1,800 instructions)
        // waits for a miss.
        let tenant = match presented.session_token() {
            Some(token) => {
                Cow::Borrowed(crate::jose::token_tenant_field(token).ok_or(StsError::InvalidToken)?)
            }
            None => Cow::Owned(sts::credential_tenant(&presented).ok_or(StsError::InvalidToken)?),
        };
        let snapshot = self.store.load(&tenant).ok_or(StsError::InvalidToken)?;
        let fingerprint = self
            .credentials
            .fingerprint(&snapshot, presented.access_key_id());
        let token = presented.session_token();
        let started = super::clock::now();
        let cached = self
            .credentials
            .cache
            .get(fingerprint, started)
            .filter(|c| match (c.session_token.as_deref(), token) {
                (Some(cached), Some(given)) => {
                    constant_time_eq(cached.as_bytes(), given.as_bytes())
                }
                (None, None) => true,
                _ => false,
            });
        let verified = match cached {
            Some(c) => {
                self.credentials.stats.hit();
                Arc::clone(&c.verified)
            }
            None => {
                self.credentials.stats.miss();
                // What the full read refuses is refused as it was before the field was read
                // alone.
                if token.is_some()
                    && sts::credential_tenant(&presented).as_deref() != Some(&*tenant)
                {
                    return Err(StsError::InvalidToken.into());
                }
                let v = Arc::new(sts::resolve_credentials(
                    &snapshot,
                    presented.access_key_id(),
                    token,
                    now,
                )?);
                // Only credentials that verified enter the cache: a forged token under a
                // genuine key id never displaces the genuine entry.
                // An entry weighs one unit whatever its token's length: the capacity counts
                // credentials.
                self.credentials.cache.insert(
                    fingerprint,
                    Arc::new(CachedCredential {
                        session_token: token.map(Into::into),
                        verified: Arc::clone(&v),
                    }),
                    0,
                    started,
                );
                v
            }
        };
        verified.check(&presented, now)?;
        Ok((verified, snapshot))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn stale_error(tenant: &str, stale_ms: i64, limit_ms: i64, what: &'static str) -> ApiError {
    ApiError::Stale {
        tenant: tenant.to_owned(),
        // INVARIANT: staleness and bounds are never negative (`staleness_ms` clamps at 0, a
        // `Duration` has no sign); a negative one would read as 0 s, the freshest.
        stale_s: u64::try_from(stale_ms / 1000).unwrap_or(0),
        limit_s: u64::try_from(limit_ms / 1000).unwrap_or(0),
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(stale_for: Duration, policy: StalenessPolicy) -> (Api, Timestamp) {
        let now = Timestamp::now();
        let api = Api::new(
            Arc::new(SnapshotStore::new()),
            &CacheConfig::default(),
            DecisionLog::off(),
        )
        .with_freshness(Freshness {
            // Never contacted: staleness counts from the start, set `stale_for` ago.
            sync: Arc::new(SyncState::default()),
            readiness: Readiness::Tenants(vec!["111122223333".into()]),
            policy,
            started_ms: now.epoch_millis() - millis(stale_for),
        });
        (api, now)
    }

    #[test]
    fn issuing_is_stricter_than_deciding_and_caps_the_expiry() {
        let policy = StalenessPolicy {
            max_serve_stale: Duration::from_secs(3600),
            max_issue_stale: Duration::from_secs(600),
            fail_open_tenants: vec!["444455556666".into()],
        };
        let (fresh, now) = api(Duration::from_secs(60), policy.clone());
        fresh.check_decide("111122223333", now).unwrap();
        let cap = fresh.check_issue("111122223333", now).unwrap().unwrap();
        assert_eq!(
            cap,
            now.epoch_seconds() + 3600 - 60,
            "what the serve bound leaves"
        );

        let (stale, now) = api(Duration::from_secs(900), policy.clone());
        stale.check_decide("111122223333", now).unwrap();
        let refused = stale.check_issue("111122223333", now).unwrap_err();
        assert_eq!(refused.code(), "StalePolicy");
        // A retryable refusal: the edges answer it as unavailable.
        assert_eq!(refused.code().http_status(), 503);

        let (expired, now) = api(Duration::from_secs(4000), policy);
        assert_eq!(
            expired
                .check_decide("111122223333", now)
                .unwrap_err()
                .code(),
            "StalePolicy"
        );
        expired.check_decide("444455556666", now).unwrap();
        assert_eq!(
            expired
                .metrics()
                .stale_fail_open
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(
            expired
                .metrics()
                .stale_refusals
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn a_required_tenant_not_loaded_is_unavailable_and_an_unknown_one_not_found() {
        let (api, _) = api(Duration::ZERO, StalenessPolicy::default());
        assert_eq!(
            api.load("111122223333").unwrap_err().code(),
            crate::error::AwsCode::ServiceUnavailable
        );
        assert_eq!(
            api.load("999999999999").unwrap_err().code(),
            crate::error::AwsCode::NoSuchTenant
        );
    }
}
