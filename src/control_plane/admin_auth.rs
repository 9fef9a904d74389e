//! Who may call the admin API, and what they may do: the control plane secures itself with
//! IAM, as AWS authorizes its own IAM API.
//!
//! **Authentication.** A call presents, in its gRPC metadata, either a SigV4 signature over
//! the call (the CLI's way: the secret never travels) or an access key id with its secret
//! (and a session token for temporary credentials). The key is one of:
//!
//! * a tenant's root access key, created with the tenant and shown once;
//! * an IAM user's access key;
//! * a role session's temporary credentials from `AssumeRole` (verified offline, as sidecars
//!   verify them);
//! * an operator key configured on the control plane. A client certificate valid for one of
//!   the configured operator identities also makes the caller the operator.
//!
//! **Authorization.** The operator manages tenants (create, delete, list, SCPs) and may act
//! on any of them. A tenant's principals act on their own tenant only, and each action is
//! evaluated by the policy engine as AWS evaluates the IAM API: action `iam:<Operation>` on
//! the target's ARN ([`target`]), with the caller's `aws:` keys, the action's `iam:` keys,
//! the caller's identity policies, boundary and session policies, and the tenant's SCPs. The
//! root user may do anything in its tenant that no SCP denies.
//!
//! **Guard rails.** Failed authentications are counted, and a source that fails
//! [`FailureLimit::max_failures`] times within a window is refused (`Throttling`) until the
//! window ends, before any credential is looked at.
//!
//! **Throttling across replicas.** Given a store ([`AdminAuth::count_failures_in`]), the
//! failures are counted in the database ([`AuthFailureLog`]), so every control-plane replica
//! on it shares one budget per source: running three replicas does not give a guesser three
//! times the guesses. When the database cannot answer, each replica falls back to its own
//! count of the failures it saw (kept all along, so it is warm), and asks the database again
//! after [`STORE_RETRY_SECONDS`]: neither fail open (a database outage would let unlimited
//! guesses through) nor fail closed (it would lock every caller out, the operator included,
//! even from reads that need no database). At worst, during an outage, a guesser gets the
//! budget once per replica, as before failures were shared.

mod target;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::authz::{evaluate, Principal, Request};
use crate::directory::{Secret, Tenant};
use crate::policy::{ContextValue, Timestamp};
use crate::snapshot::{AwsManagedCatalog, SnapshotVersion, TenantSnapshot};
use crate::sts::{authenticate, credential_tenant, fill_session_context, Caller, Presented};

use super::core::ControlPlane;
use super::store::{AuthFailureLog, StoreError};
use super::AdminError;

pub use target::{defaults_to_caller, is_operator_only, target, Target};

/// An operator's access key, configured on the control plane.
#[derive(Clone)]
pub struct OperatorKey {
    /// The operator's name in the audit trail (`operator:NAME`).
    pub name: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret: Secret,
}

impl OperatorKey {
    /// Whether `secret` is this key's, compared in constant time. An empty secret (a
    /// misconfigured file) matches nothing.
    pub fn secret_matches(&self, secret: &str) -> bool {
        !self.secret.expose().is_empty()
            && crate::jose::constant_time_eq(self.secret.expose().as_bytes(), secret.as_bytes())
    }
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorKey")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How many failed authentications a source may have in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    /// Failures allowed in one window; the next attempt is refused.
    pub max_failures: u32,
    /// The window, in seconds.
    pub window_seconds: i64,
}

impl Default for FailureLimit {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window_seconds: 60,
        }
    }
}

/// Credentials as one admin call presented them, decoded at the edge.
#[derive(Debug, Clone, Copy)]
pub enum AdminCredentials<'a> {
    /// An access key (with its secret, or a SigV4 signature made with it).
    Key(Presented<'a>),
    /// A verified client certificate (DER), and no key.
    Certificate(&'a [u8]),
    /// Nothing.
    None,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum AdminCaller {
    /// The platform's operator.
    Operator {
        /// The configured name, or the certificate identity.
        name: String,
    },
    /// A principal of a tenant.
    Tenant {
        /// The tenant.
        account: String,
        /// The principal, its session and session policies.
        caller: Caller,
        /// The access key id it presented (failed proofs count against it).
        access_key_id: String,
    },
}

/// What the service knows of a call besides its message and credentials.
#[derive(Debug, Clone, Copy)]
pub struct CallEnv {
    /// The client's address (`aws:SourceIp`), when known.
    pub source: Option<IpAddr>,
    /// Whether the call came over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
    /// The time of the call.
    pub now: Timestamp,
}

/// Counters of the admin API's refusals, for `/metrics`.
#[derive(Debug, Default)]
pub struct AdminAuthCounters {
    /// Failed authentications.
    pub auth_failures: AtomicU64,
    /// Calls refused because their source failed too often.
    pub throttled: AtomicU64,
    /// Calls denied by policy.
    pub denied: AtomicU64,
}

/// Authenticates and authorizes admin calls.
pub struct AdminAuth {
    operators: Vec<OperatorKey>,
    operator_identities: Vec<String>,
    aws: AwsManagedCatalog,
    snapshots: Mutex<HashMap<String, Arc<TenantSnapshot>>>,
    limit: FailureLimit,
    /// Where failures are counted for every replica; `None`: this process alone counts.
    shared: RwLock<Option<Arc<dyn AuthFailureLog>>>,
    /// When (Unix seconds) to ask the store again after it failed; 0 while it answers.
    store_retry_at: AtomicI64,
    /// This process's own failures: what decides without a store, or when it cannot answer.
    failures: Mutex<HashMap<String, (i64, u32)>>,
    counters: AdminAuthCounters,
}

/// How long, after the store failed to count a failure, this replica counts alone before it
/// asks the store again: an unreachable database slows one call in this time, not every one.
pub const STORE_RETRY_SECONDS: i64 = 5;

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("operators", &self.operators)
            .field("operator_identities", &self.operator_identities)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Checks each action of one authorized call against the caller's permissions.
#[derive(Debug)]
pub struct Checker<'a> {
    caller: &'a AdminCaller,
    snapshot: Option<Arc<TenantSnapshot>>,
    env: CallEnv,
}

// === impl AdminCaller ===

impl AdminCaller {
    /// The caller as the audit trail names it: `operator:NAME` or the principal's ARN.
    pub fn actor(&self) -> String {
        match self {
            Self::Operator { name } => format!("operator:{name}"),
            Self::Tenant { caller, .. } => caller.principal.to_string(),
        }
    }

    /// True for the root user of a tenant.
    pub fn is_root(&self) -> bool {
        matches!(
            self,
            Self::Tenant {
                caller: Caller {
                    principal: Principal::Root { .. },
                    ..
                },
                ..
            }
        )
    }

    /// The IAM user the caller is (the user `UserName` defaults to): with the user's own
    /// keys, or a `GetSessionToken` session of the user (a console session is one), whose
    /// principal is the user itself.
    pub fn user_name(&self) -> Option<&str> {
        match self {
            Self::Tenant {
                caller:
                    Caller {
                        principal: Principal::User { arn, .. },
                        ..
                    },
                ..
            } => arn.rsplit('/').next(),
            _ => None,
        }
    }
}

// === impl AdminAuth ===

impl AdminAuth {
    /// Authenticates tenants' principals and the given operators.
    pub fn new(operators: Vec<OperatorKey>, operator_identities: Vec<String>) -> Self {
        Self {
            operators,
            operator_identities,
            aws: AwsManagedCatalog::compile(),
            snapshots: Mutex::new(HashMap::new()),
            limit: FailureLimit::default(),
            shared: RwLock::new(None),
            store_retry_at: AtomicI64::new(0),
            failures: Mutex::new(HashMap::new()),
            counters: AdminAuthCounters::default(),
        }
    }

    /// Uses `limit` for failed authentications.
    #[must_use]
    pub fn with_failure_limit(mut self, limit: FailureLimit) -> Self {
        self.limit = limit;
        self
    }

    /// Counts failed authentications in `log` from now on (the control plane's store), shared
    /// with every replica on it. Without one, this process counts alone. Set once the store
    /// is open, which may be after the service was built around this `AdminAuth`.
    pub fn count_failures_in(&self, log: Arc<dyn AuthFailureLog>) {
        *self.shared.write() = Some(log);
    }

    /// The refusal counters.
    pub fn counters(&self) -> &AdminAuthCounters {
        &self.counters
    }

    /// Who presented `credentials`. A source over its failure limit is refused before the
    /// credentials are looked at; every failure counts against its source.
    pub fn authenticate(
        &self,
        control_plane: &ControlPlane,
        credentials: AdminCredentials<'_>,
        env: &CallEnv,
    ) -> Result<AdminCaller, AdminError> {
        let key = match credentials {
            AdminCredentials::Key(presented) => presented.access_key_id(),
            AdminCredentials::Certificate(_) | AdminCredentials::None => "",
        };
        let source = limiter_key(env, key);
        let now = env.now.epoch_seconds();
        if self.is_throttled(&source, now) {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(AdminError::Throttling);
        }
        let result = self.authenticate_unlimited(control_plane, credentials, env.now);
        if result.is_err() {
            self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
            self.record_failure(source, now);
        }
        result
    }

    /// Counts `error`, a presentation refused before any credential was looked at (a
    /// malformed signature), against the call's source; `Throttling` once over the limit.
    pub fn refuse(&self, error: AdminError, env: &CallEnv, claimed_key: &str) -> AdminError {
        let source = limiter_key(env, claimed_key);
        let now = env.now.epoch_seconds();
        if self.is_throttled(&source, now) {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
            return AdminError::Throttling;
        }
        self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        self.record_failure(source, now);
        error
    }

    fn authenticate_unlimited(
        &self,
        control_plane: &ControlPlane,
        credentials: AdminCredentials<'_>,
        now: Timestamp,
    ) -> Result<AdminCaller, AdminError> {
        let presented = match credentials {
            AdminCredentials::None => return Err(AdminError::MissingAuthenticationToken),
            AdminCredentials::Certificate(leaf) => {
                return crate::tls::valid_for_any(leaf, &self.operator_identities)
                    .map(|name| AdminCaller::Operator { name })
                    .ok_or(AdminError::MissingAuthenticationToken)
            }
            AdminCredentials::Key(presented) => presented,
        };
        if let Some(operator) = self
            .operators
            .iter()
            .find(|o| o.access_key_id == presented.access_key_id())
        {
            let ok = match presented {
                // An empty secret (a misconfigured file) never authenticates.
                _ if operator.secret.expose().is_empty() => false,
                Presented::Keys {
                    secret,
                    session_token: None,
                    ..
                } => operator.secret_matches(secret),
                Presented::Signed(signature) if signature.security_token().is_none() => {
                    signature
                        .verify(operator.secret.expose().as_bytes(), now)
                        .map_err(|e| AdminError::Authentication {
                            code: e.code(),
                            message: e.to_string(),
                        })?;
                    true
                }
                _ => false,
            };
            return if ok {
                Ok(AdminCaller::Operator {
                    name: operator.name.clone(),
                })
            } else {
                Err(AdminError::invalid_client_token())
            };
        }
        let account = credential_tenant(&presented).ok_or_else(AdminError::invalid_client_token)?;
        let snapshot = self
            .snapshot(control_plane, &account)
            .ok_or_else(AdminError::invalid_client_token)?;
        let caller =
            authenticate(&snapshot, &presented, now).map_err(|e| AdminError::Authentication {
                code: e.code(),
                message: e.to_string(),
            })?;
        Ok(AdminCaller::Tenant {
            account,
            caller,
            access_key_id: presented.access_key_id().to_owned(),
        })
    }

    /// The checker of one call by `caller` on tenant `account`: the operator may do
    /// anything; a tenant's principal only acts on its own tenant.
    pub fn checker<'a>(
        &self,
        control_plane: &ControlPlane,
        caller: &'a AdminCaller,
        account: &str,
        env: CallEnv,
    ) -> Result<Checker<'a>, AdminError> {
        match caller {
            AdminCaller::Operator { .. } => Ok(Checker {
                caller,
                snapshot: None,
                env,
            }),
            AdminCaller::Tenant {
                account: own,
                caller: who,
                ..
            } => {
                if own != account {
                    return Err(AdminError::AccessDenied(format!(
                        "User: {} is not authorized to act on account {account}: credentials \
                         act on their own account only",
                        who.principal
                    )));
                }
                let snapshot = self
                    .snapshot(control_plane, own)
                    .ok_or_else(|| AdminError::NoSuchTenant(own.clone()))?;
                Ok(Checker {
                    caller,
                    snapshot: Some(snapshot),
                    env,
                })
            }
        }
    }

    /// Counts a failed proof made inside an authenticated call (`ChangePassword`'s old
    /// password) against the caller's source and key, as a failed authentication.
    pub fn count_failed_proof(&self, env: &CallEnv, caller: &AdminCaller) {
        let AdminCaller::Tenant { access_key_id, .. } = caller else {
            return;
        };
        self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        self.record_failure(limiter_key(env, access_key_id), env.now.epoch_seconds());
    }

    /// Whether console sign-ins as `key` (the user name typed) from the call's source are over
    /// the failure limit.
    pub fn sign_in_throttled(&self, env: &CallEnv, key: &str) -> bool {
        let throttled = self.is_throttled(&limiter_key(env, key), env.now.epoch_seconds());
        if throttled {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
        }
        throttled
    }

    /// Counts a failed console sign-in as `key` from the call's source, as a failed
    /// authentication.
    pub fn count_failed_sign_in(&self, env: &CallEnv, key: &str) {
        self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        self.record_failure(limiter_key(env, key), env.now.epoch_seconds());
    }

    /// The compiled snapshot of a tenant's current version (console sign-in mints with it).
    pub(crate) fn compiled(
        &self,
        control_plane: &ControlPlane,
        account: &str,
    ) -> Option<Arc<TenantSnapshot>> {
        self.snapshot(control_plane, account)
    }

    /// Counts a denial (the service calls it when a checker refused).
    pub fn count_denied(&self) {
        self.counters.denied.fetch_add(1, Ordering::Relaxed);
    }

    /// The compiled snapshot of a tenant's current version, compiled at most once per
    /// version.
    fn snapshot(&self, control_plane: &ControlPlane, account: &str) -> Option<Arc<TenantSnapshot>> {
        let (tenant, version) = control_plane.tenant(account)?;
        if let Some(cached) = self
            .snapshots
            .lock()
            .get(account)
            .filter(|s| s.version() == version)
        {
            return Some(Arc::clone(cached));
        }
        let compiled = Arc::new(self.compile(tenant, version)?);
        self.snapshots
            .lock()
            .insert(account.to_owned(), Arc::clone(&compiled));
        Some(compiled)
    }

    fn compile(&self, tenant: Arc<Tenant>, version: SnapshotVersion) -> Option<TenantSnapshot> {
        match TenantSnapshot::compile(tenant, version, &self.aws) {
            Ok(snapshot) => Some(snapshot),
            Err(error) => {
                // The control plane validated every change, so this is a bug; refuse to
                // authenticate against a tenant that does not compile rather than guess.
                tracing::error!(%error, "a tenant does not compile for admin authorization");
                None
            }
        }
    }

    /// Whether `source` used up its failures: as the store counts them, or this process when
    /// there is no store or it cannot answer.
    fn is_throttled(&self, source: &str, now: i64) -> bool {
        let window = self.limit.window_seconds;
        let shared = self
            .store(now)
            .and_then(|log| self.answered(log.auth_failures(source, now, window), now));
        let failures = shared.unwrap_or_else(|| self.local_failures(source, now));
        failures >= self.limit.max_failures
    }

    /// Counts a failure of `source` in the store and in this process (whose count is the
    /// fallback when the store cannot answer, so it is kept whether or not the store did).
    fn record_failure(&self, source: String, now: i64) {
        if let Some(log) = self.store(now) {
            let recorded = log.record_auth_failure(&source, now, self.limit.window_seconds);
            self.answered(recorded, now);
        }
        self.record_local_failure(source, now);
    }

    /// The store to ask at `now`: none when there is none, or it failed less than
    /// [`STORE_RETRY_SECONDS`] ago. (A retry time further away than that is a clock that went
    /// back: the store is asked.)
    fn store(&self, now: i64) -> Option<Arc<dyn AuthFailureLog>> {
        let retry_at = self.store_retry_at.load(Ordering::Relaxed);
        let resting =
            retry_at != 0 && now < retry_at && retry_at.saturating_sub(now) <= STORE_RETRY_SECONDS;
        if resting {
            return None;
        }
        self.shared.read().clone()
    }

    /// The store's answer, or `None` when it failed: logged once per outage, and the store is
    /// left alone for [`STORE_RETRY_SECONDS`].
    fn answered(&self, answer: Result<u32, StoreError>, now: i64) -> Option<u32> {
        match answer {
            Ok(failures) => {
                if self.store_retry_at.swap(0, Ordering::Relaxed) != 0 {
                    tracing::info!("failed admin authentications are counted in the store again");
                }
                Some(failures)
            }
            Err(error) => {
                let retry_at = now.saturating_add(STORE_RETRY_SECONDS).max(1);
                if self.store_retry_at.swap(retry_at, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        %error,
                        retry_in_s = STORE_RETRY_SECONDS,
                        "cannot count failed admin authentications in the store; this replica \
                         counts the failures it sees until the store answers"
                    );
                }
                None
            }
        }
    }

    /// This process's count of `source`'s failures in its live window.
    fn local_failures(&self, source: &str, now: i64) -> u32 {
        let failures = self.failures.lock();
        failures
            .get(source)
            .filter(|(start, _)| now < start.saturating_add(self.limit.window_seconds))
            .map_or(0, |(_, count)| *count)
    }

    fn record_local_failure(&self, source: String, now: i64) {
        let window = self.limit.window_seconds;
        let mut failures = self.failures.lock();
        // Forget finished windows so that a scan from many addresses cannot grow the map
        // without bound; if every window is live, start over rather than grow (the counters
        // still count every failure).
        if failures.len() >= MAX_TRACKED_SOURCES && !failures.contains_key(&source) {
            failures.retain(|_, (start, _)| now < start.saturating_add(window));
            // Still full of live windows: track no new pair rather than forget the ones
            // being counted (a flood of made-up keys must not reset the key under attack).
            if failures.len() >= MAX_TRACKED_SOURCES {
                return;
            }
        }
        let entry = failures.entry(source).or_insert((now, 0));
        if now >= entry.0.saturating_add(window) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// How many (source, key) pairs the failure limiter remembers at most.
const MAX_TRACKED_SOURCES: usize = 10_000;

/// What failures are counted against: the client's address and the key it presented, so
/// that guessing one key's secret from an address does not lock every other key (the
/// operator's included) out from there.
fn limiter_key(env: &CallEnv, access_key_id: &str) -> String {
    let source = env
        .source
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let key: String = access_key_id.chars().take(32).collect();
    format!("{source}/{key}")
}

// === impl Checker ===

impl Checker<'_> {
    /// Authorizes IAM action `action` (`CreateUser`) with `params` on `state`, the tenant
    /// as the action will find it.
    pub fn check(&self, state: &Tenant, action: &str, params: &Value) -> Result<(), AdminError> {
        if matches!(self.caller, AdminCaller::Operator { .. }) {
            return Ok(());
        }
        if is_operator_only(action) {
            return Err(AdminError::AccessDenied(format!(
                "User: {} is not authorized to perform: iam:{action}: only the platform operator \
                 changes a tenant's service control policies",
                self.caller.actor()
            )));
        }
        if matches!(action, "CreateRootAccessKey" | "DeleteRootAccessKey") && !self.caller.is_root()
        {
            return Err(AdminError::AccessDenied(format!(
                "User: {} is not authorized to perform: iam:{action}: only the root user and the \
                 platform operator manage the root user's access key",
                self.caller.actor()
            )));
        }
        let Target { resource, context } = target(state, action, params);
        let full = format!("{}:{action}", target::service_prefix(action));
        if let Some(role) = target::passed_role(action, params) {
            self.check_named("iam:PassRole", role, crate::authz::Context::new())?;
        }
        if let Some(role) = target::instance_profile_passed_role(state, action, params) {
            self.check_named("iam:PassRole", &role, crate::authz::Context::new())?;
        }
        if let Some(renamed) = target::renamed_target(state, action, params) {
            self.check_named(&full, &renamed, context.clone())?;
        }
        let granted =
            target::granted_by_password_policy(state, self.caller.user_name(), action, params);
        self.check_named_or(&full, &resource, context, granted)
    }

    /// Authorizes `action` (`service:Name`) on `resource` with the action's own `context`
    /// keys; the caller's keys are added here.
    pub fn check_named(
        &self,
        action: &str,
        resource: &str,
        context: crate::authz::Context,
    ) -> Result<(), AdminError> {
        self.check_named_or(action, resource, context, false)
    }

    /// [`Self::check_named`], where `granted` is a permission AWS gives without a policy
    /// (the password policy's `AllowUsersToChangePassword`): it stands in for a missing
    /// allow, never against an explicit deny.
    fn check_named_or(
        &self,
        action: &str,
        resource: &str,
        mut context: crate::authz::Context,
        granted: bool,
    ) -> Result<(), AdminError> {
        let (AdminCaller::Tenant { caller, .. }, Some(snapshot)) = (self.caller, &self.snapshot)
        else {
            return Ok(());
        };
        let principal = &caller.principal;
        let resolved = snapshot
            .resolve(principal)
            .ok_or_else(AdminError::invalid_client_token)?;
        let now = self.env.now;
        resolved.fill_context(principal, &mut context);
        fill_session_context(caller.session.as_deref(), now, &mut context);
        context.insert_if_absent("aws:CurrentTime", ContextValue::from_timestamp(now));
        context.insert_if_absent("aws:EpochTime", ContextValue::from_i64(now.epoch_seconds()));
        context.insert(
            "aws:SecureTransport",
            ContextValue::from_bool(self.env.secure_transport),
        );
        if let Some(ip) = self.env.source {
            context.insert("aws:SourceIp", ContextValue::new(ip.to_string()));
        }
        let request = Request::try_new(principal.clone(), action, resource)
            .map_err(|e| AdminError::InvalidParameterValue {
                name: "resource".into(),
                reason: e.to_string(),
            })?
            .with_context(context);
        let decision = evaluate(
            &resolved.policy_set(None, &caller.session_policies),
            &request,
        );
        if decision.is_allowed()
            || (granted && decision.outcome == crate::authz::Outcome::ImplicitDeny)
        {
            Ok(())
        } else {
            Err(AdminError::AccessDenied(decision.message(&request)))
        }
    }

    /// True when the caller is the operator.
    pub fn is_operator(&self) -> bool {
        matches!(self.caller, AdminCaller::Operator { .. })
    }
}

#[cfg(test)]
mod tests;
