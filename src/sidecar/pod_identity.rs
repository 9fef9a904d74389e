//! Container credentials, as EKS Pod Identity's agent serves them: a pod presents its projected
//! service-account token and gets credentials of the role its service account is associated
//! with.
//!
//! A request goes through three steps, each cheap on a repeat:
//!
//! 1. **The token verifies**, offline, against the keys of the OIDC provider registered for
//!    its issuer, with the configured audience (default `pods.eks.amazonaws.com`). A
//!    verification is kept per token (by its SHA-256) until the token expires or the tenant's
//!    snapshot changes, so a repeat costs a hash, a lookup and a clock comparison; an expired
//!    token never passes, cached or not.
//! 2. **The association is found** among the tenants the sidecar serves, by the snapshot's
//!    (issuer, namespace, service account) index. A pod matched by associations of two
//!    tenants is refused: which role it gets must never depend on the order tenants load.
//! 3. **The role is assumed** for the service principal (`crate::sts::assume_role_for_service`),
//!    and the credentials kept per (tenant, association, role, pod uid) until their expiry
//!    minus a margin and a random jitter, so that a fleet of pods does not refresh at once.
//!    Concurrent identical requests wait for one assumption (single flight, moka's
//!    `try_get_with`). The key holds the pod's uid and service account, so another pod's
//!    token never reaches these credentials.
//!
//! Every request is counted in the sidecar's metrics (`ContainerCredentials`) and written to
//! the decision log like the STS calls, without the token or the secrets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::directory::IdGenerator;
use crate::observe::{Answer, Method};
use crate::policy::Timestamp;
use crate::snapshot::{PodIdentityEntry, SnapshotVersion, TenantSnapshot};
use crate::sts::jwt::{UnverifiedToken, CLOCK_SKEW_SECONDS, MAX_TOKEN_CHARS};
use crate::sts::{self, IssueEnv, PodToken, PodTokenError, ServiceRoleParams, StsError};

use super::api::{Api, ApiError};
use super::authorize::next_request_id;
use super::clock::{self, Reading};
use super::decision_log::{rfc3339_millis, sample_key, DecisionRecord};

/// The audience a pod's token must carry, as EKS Pod Identity's.
pub const DEFAULT_POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";
/// Where the endpoint is served, as EKS Pod Identity's agent serves it.
pub const DEFAULT_CONTAINER_CREDENTIALS_PATH: &str = "/v1/credentials";
/// The service principal that assumes the roles.
const SERVICE: &str = crate::directory::POD_IDENTITY_SERVICE;

/// How the endpoint behaves.
#[derive(Debug, Clone)]
pub struct ContainerCredentialsConfig {
    /// The audience a token must carry.
    pub audience: String,
    /// Credentials are assumed again this long before they expire (the SDKs refresh
    /// 5 to 15 minutes before, so a refresh always gets fresh ones).
    pub refresh_margin: Duration,
    /// Up to this much more, at random per entry, so that pods refresh spread out.
    pub refresh_jitter: Duration,
    /// At most this many credentials and verifications are kept.
    pub max_entries: u64,
}

/// Credentials for a pod.
#[derive(Clone, PartialEq, Eq)]
pub struct PodCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token.
    pub token: String,
    /// The role's account.
    pub account_id: String,
    /// When they expire.
    pub expiration: Timestamp,
    /// The session's ARN (`arn:aws:sts::A:assumed-role/R/eks-…`).
    pub arn: String,
}

/// Why a pod gets no credentials, with the status EKS Pod Identity's agent answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerCredentialsError {
    /// 400: no `Authorization` header, or an empty one.
    #[error("Service account token cannot be empty")]
    MissingToken,
    /// 401: the token is malformed, badly signed, of an unknown issuer, or names no pod.
    #[error("{0}")]
    InvalidToken(String),
    /// 401: the token has expired.
    #[error("{0}")]
    ExpiredToken(String),
    /// 403: the token is not for the configured audience.
    #[error("{0}")]
    WrongAudience(String),
    /// 403: the role's trust policy does not allow the service, or associations of two
    /// tenants match the pod.
    #[error("{0}")]
    AccessDenied(String),
    /// 404: no association matches the pod's service account.
    #[error("{0}")]
    NoAssociation(String),
    /// 500: the sidecar cannot issue now (stale data, a tenant not loaded, no issuer key).
    #[error("{0}")]
    Internal(String),
}

/// Counters of the endpoint's caches, for tests, benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerCredentialsStats {
    /// Roles assumed (cache fills).
    pub assumptions: u64,
    /// Requests answered from the credentials cache.
    pub hits: u64,
    /// Requests that waited for an assumption.
    pub misses: u64,
    /// Tokens verified with a signature check.
    pub verifications: u64,
}

/// The container-credentials endpoint's domain over an [`Api`]'s snapshots.
#[derive(Debug)]
pub struct ContainerCredentials {
    api: Arc<Api>,
    config: ContainerCredentialsConfig,
    verified: Cache<Box<[u8]>, Arc<VerifiedPod>>,
    issued: Cache<Box<str>, Arc<Fresh>>,
    assumptions: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    verifications: AtomicU64,
}

/// A token that verified, and what it was matched with.
#[derive(Debug)]
struct VerifiedPod {
    tenant: Box<str>,
    version: SnapshotVersion,
    pod: PodToken,
    association: PodIdentityEntry,
}

/// Credentials in the cache with how long they stay there.
#[derive(Debug)]
struct Fresh {
    credentials: Arc<PodCredentials>,
    keep_for: Duration,
}

/// Each entry leaves the cache at its own refresh time.
struct RefreshAt;

// === impl ContainerCredentialsConfig ===

impl Default for ContainerCredentialsConfig {
    fn default() -> Self {
        Self {
            audience: DEFAULT_POD_IDENTITY_AUDIENCE.to_owned(),
            refresh_margin: Duration::from_secs(15 * 60),
            refresh_jitter: Duration::from_secs(60),
            max_entries: 100_000,
        }
    }
}

// === impl PodCredentials ===

impl std::fmt::Debug for PodCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("expiration", &self.expiration)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

// === impl ContainerCredentialsError ===

impl ContainerCredentialsError {
    /// The HTTP status EKS Pod Identity's agent answers.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingToken => 400,
            Self::InvalidToken(_) | Self::ExpiredToken(_) => 401,
            Self::WrongAudience(_) | Self::AccessDenied(_) => 403,
            Self::NoAssociation(_) => 404,
            Self::Internal(_) => 500,
        }
    }

    /// The error code, as EKS Auth names it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "InvalidParameterException",
            Self::InvalidToken(_) => "InvalidTokenException",
            Self::ExpiredToken(_) => "ExpiredTokenException",
            Self::WrongAudience(_) | Self::AccessDenied(_) => "AccessDeniedException",
            Self::NoAssociation(_) => "ResourceNotFoundException",
            Self::Internal(_) => "InternalServerException",
        }
    }
}

impl From<PodTokenError> for ContainerCredentialsError {
    fn from(error: PodTokenError) -> Self {
        match error {
            PodTokenError::Invalid(m) => Self::InvalidToken(m),
            PodTokenError::Expired(m) => Self::ExpiredToken(m),
            e @ PodTokenError::WrongAudience(_) => Self::WrongAudience(e.to_string()),
        }
    }
}

impl From<ApiError> for ContainerCredentialsError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Sts(StsError::AccessDenied(m)) => Self::AccessDenied(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

// === impl RefreshAt ===

impl moka::Expiry<Box<str>, Arc<Fresh>> for RefreshAt {
    fn expire_after_create(
        &self,
        _key: &Box<str>,
        value: &Arc<Fresh>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }
}

// === impl ContainerCredentials ===

impl ContainerCredentials {
    /// The endpoint over `api`'s snapshots.
    pub fn new(api: Arc<Api>, config: ContainerCredentialsConfig) -> Self {
        Self {
            verified: Cache::builder()
                .max_capacity(config.max_entries)
                // A token lives an hour by default; a verification is also re-checked against
                // the token's `exp` and the snapshot's version on every hit.
                .time_to_live(Duration::from_secs(3600))
                .build(),
            issued: Cache::builder()
                .max_capacity(config.max_entries)
                .expire_after(RefreshAt)
                .build(),
            api,
            config,
            assumptions: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            verifications: AtomicU64::new(0),
        }
    }

    /// The audience tokens must carry.
    pub fn audience(&self) -> &str {
        &self.config.audience
    }

    /// The caches' counters.
    pub fn stats(&self) -> ContainerCredentialsStats {
        ContainerCredentialsStats {
            assumptions: self.assumptions.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            verifications: self.verifications.load(Ordering::Relaxed),
        }
    }

    /// Credentials for the pod whose token is `authorization` (the `Authorization` header's
    /// value: the token itself, as the SDKs send it, or `Bearer <token>`). Blocks while an
    /// identical request assumes the role.
    pub fn credentials(
        &self,
        authorization: Option<&str>,
    ) -> Result<Arc<PodCredentials>, ContainerCredentialsError> {
        let Reading { started, now } = Reading::take();
        let mut logged = Logged::default();
        let result = self.credentials_at(authorization, now, &mut logged);
        self.log(started, now, logged, result.as_ref().err());
        result
    }

    /// The credentials for `authorization` when both its verification and its credentials
    /// are cached: it never blocks and never checks a signature, so an async edge answers a
    /// hit in place. `None` for anything else: then call [`Self::credentials`], which may wait
    /// for an assumption, on a blocking thread.
    pub fn cached(&self, authorization: Option<&str>) -> Option<Arc<PodCredentials>> {
        let Reading { started, now } = Reading::take();
        let token = token_of(authorization).ok()?;
        let verified = self.verified_hit(&sha256(token), now)?;
        let fresh = self.issued.get(&cache_key(&verified))?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        let mut logged = Logged::of(&verified);
        logged.cached = true;
        self.log(started, now, logged, None);
        Some(Arc::clone(&fresh.credentials))
    }

    /// A cached verification of the token hashed `hash`, while the token is unexpired and its
    /// tenant's snapshot unchanged.
    fn verified_hit(&self, hash: &[u8], now: Timestamp) -> Option<Arc<VerifiedPod>> {
        let hit = self.verified.get(hash)?;
        let unexpired = now.epoch_seconds()
            < hit
                .pod
                .expires_at
                .epoch_seconds()
                .saturating_add(CLOCK_SKEW_SECONDS);
        let current = self.api.store.version(&hit.tenant) == Some(hit.version);
        (unexpired && current).then_some(hit)
    }

    /// Counts and logs a request an edge refused before it reached [`Self::credentials`] (an
    /// `Authorization` header that is not text), as a refusal here is; returns the error.
    pub fn refused(&self, error: ContainerCredentialsError) -> ContainerCredentialsError {
        let clock = Reading::take();
        self.log(clock.started, clock.now, Logged::default(), Some(&error));
        error
    }

    fn credentials_at(
        &self,
        authorization: Option<&str>,
        now: Timestamp,
        logged: &mut Logged,
    ) -> Result<Arc<PodCredentials>, ContainerCredentialsError> {
        let token = token_of(authorization)?;
        if token.len() > MAX_TOKEN_CHARS {
            return Err(ContainerCredentialsError::InvalidToken(format!(
                "the service account token exceeds {MAX_TOKEN_CHARS} characters"
            )));
        }
        let verified = self.verify(token, now)?;
        *logged = Logged::of(&verified);
        let key = cache_key(&verified);
        let mut filled = false;
        let fresh = self
            .issued
            .try_get_with(key, || {
                filled = true;
                self.assume(&verified, now)
            })
            .map_err(|e| (*e).clone())?;
        if filled {
            self.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        logged.cached = !filled;
        Ok(Arc::clone(&fresh.credentials))
    }

    /// The token's verification: from the cache while the token is unexpired and its tenant's
    /// snapshot unchanged, otherwise checked against every served tenant with a provider for
    /// its issuer.
    fn verify(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Arc<VerifiedPod>, ContainerCredentialsError> {
        let hash = sha256(token);
        if let Some(hit) = self.verified_hit(&hash, now) {
            return Ok(hit);
        }
        self.verified.invalidate(&hash);
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let issuer = UnverifiedToken::parse(token)
            .map_err(PodTokenError::from)?
            .issuer()
            .to_owned();
        let mut matched: Vec<(Arc<TenantSnapshot>, PodToken, PodIdentityEntry)> = Vec::new();
        let mut refused: Option<ContainerCredentialsError> = None;
        let mut verified_somewhere = false;
        for (tenant, _) in self.api.store.versions() {
            let Some(snapshot) = self.api.store.load(&tenant) else {
                continue;
            };
            let Some(provider) = snapshot.oidc_provider(&issuer) else {
                continue;
            };
            match sts::verify_pod_token(
                token,
                &provider.jwks,
                &provider.url,
                &self.config.audience,
                now,
            ) {
                Ok(pod) => {
                    verified_somewhere = true;
                    let association = snapshot
                        .pod_identity(&provider.url, &pod.namespace, &pod.service_account)
                        .cloned();
                    if let Some(association) = association {
                        matched.push((snapshot, pod, association));
                    }
                }
                Err(e) => refused = refused.or(Some(e.into())),
            }
        }
        let mut matched = matched.into_iter();
        match (matched.next(), matched.next()) {
            (Some((snapshot, pod, association)), None) => {
                let verified = Arc::new(VerifiedPod {
                    tenant: snapshot.account_id().into(),
                    version: snapshot.version(),
                    pod,
                    association,
                });
                self.verified.insert(hash, Arc::clone(&verified));
                Ok(verified)
            }
            (Some(_), Some(_)) => Err(ContainerCredentialsError::AccessDenied(
                "the service account is associated with roles in more than one account".into(),
            )),
            (None, _) if verified_somewhere => Err(ContainerCredentialsError::NoAssociation(
                "No Pod Identity Association found for the service account".into(),
            )),
            (None, _) => Err(refused.unwrap_or_else(|| {
                ContainerCredentialsError::InvalidToken(
                    sts::jwt::JwtError::no_provider(&issuer).to_string(),
                )
            })),
        }
    }

    /// Assumes the association's role for the pod: the cache's fill.
    fn assume(
        &self,
        verified: &VerifiedPod,
        now: Timestamp,
    ) -> Result<Arc<Fresh>, ContainerCredentialsError> {
        self.assumptions.fetch_add(1, Ordering::Relaxed);
        let snapshot = self.api.load(&verified.tenant)?;
        let latest_expiry = self.api.check_issue(&verified.tenant, now)?;
        let mut ids = IdGenerator::system();
        let mut env = IssueEnv {
            now,
            ids: &mut ids,
            mfa: &self.api.mfa,
            latest_expiry,
            issuing: crate::sts::Issuing::Certified(self.api.store.issuing()),
        };
        let issued = sts::assume_role_for_service(
            &snapshot,
            &ServiceRoleParams {
                service: SERVICE,
                association: &verified.association,
                pod: &verified.pod,
            },
            &mut env,
        )
        .map_err(ApiError::from)?;
        let lifetime = issued
            .expiration
            .epoch_seconds()
            .saturating_sub(now.epoch_seconds());
        let keep = Duration::from_secs(u64::try_from(lifetime).unwrap_or(0))
            .saturating_sub(self.config.refresh_margin)
            .saturating_sub(jitter(&mut ids, self.config.refresh_jitter));
        Ok(Arc::new(Fresh {
            credentials: Arc::new(PodCredentials {
                access_key_id: issued.access_key_id,
                secret_access_key: issued.secret_access_key,
                token: issued.session_token,
                account_id: issued.tenant,
                expiration: issued.expiration,
                arn: issued.arn,
            }),
            keep_for: keep,
        }))
    }

    fn log(
        &self,
        started: clock::Instant,
        now: Timestamp,
        logged: Logged,
        refusal: Option<&ContainerCredentialsError>,
    ) {
        let answer = if refusal.is_none() {
            Answer::Allow
        } else {
            Answer::Error
        };
        // One reading for the metric and the log line, so that both say the same.
        let elapsed = started.elapsed();
        self.api
            .metrics
            .record(Method::ContainerCredentials, answer, elapsed);
        let request_id = next_request_id();
        if !self
            .api
            .log
            .wants(refusal.is_some(), sample_key(&request_id))
        {
            return;
        }
        self.api.log.record(DecisionRecord {
            time: rfc3339_millis(now),
            request_id,
            operation: "ContainerCredentials",
            tenant: logged.tenant,
            principal: logged.principal,
            action: "sts:AssumeRole".to_owned(),
            resource: logged.resource,
            decision: if refusal.is_none() { "Allow" } else { "Error" },
            error_code: refusal.map(ContainerCredentialsError::code),
            policy_type: None,
            statement: None,
            snapshot_version: String::new(),
            latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            cached: logged.cached,
        });
    }
}

/// What a request reports to the decision log.
#[derive(Default)]
struct Logged {
    tenant: String,
    principal: String,
    resource: String,
    cached: bool,
}

// === impl Logged ===

impl Logged {
    /// What the log says of a request by the pod `verified` names.
    fn of(verified: &VerifiedPod) -> Self {
        Self {
            tenant: verified.tenant.to_string(),
            principal: format!(
                "{SERVICE} for pod {}/{} (service account {})",
                verified.pod.namespace, verified.pod.pod_name, verified.pod.service_account
            ),
            resource: verified.association.role_arn.to_string(),
            cached: false,
        }
    }
}

/// The token in an `Authorization` header's value: the token itself (as the SDKs send it) or
/// `Bearer <token>`.
fn token_of(authorization: Option<&str>) -> Result<&str, ContainerCredentialsError> {
    authorization
        .map(str::trim)
        .map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim())
        .filter(|t| !t.is_empty())
        .ok_or(ContainerCredentialsError::MissingToken)
}

/// The credentials cache's key: the tenant, the association and its role, and the pod (its
/// issuer, namespace, service account and uid), so that another pod never shares an entry.
fn cache_key(verified: &VerifiedPod) -> Box<str> {
    [
        &*verified.tenant,
        &verified.association.association_id,
        &verified.association.role_arn,
        &verified.association.issuer,
        &verified.pod.namespace,
        &verified.pod.service_account,
        &verified.pod.pod_uid,
    ]
    .join("\n")
    .into()
}

fn sha256(token: &str) -> Box<[u8]> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .into()
}

/// A random duration up to `max`.
fn jitter(ids: &mut IdGenerator, max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let mut bytes = [0u8; 8];
    ids.fill(&mut bytes);
    Duration::from_millis(u64::from_le_bytes(bytes) % max_ms)
}

#[cfg(test)]
mod tests;
