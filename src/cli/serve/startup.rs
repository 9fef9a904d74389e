//! A control plane's readiness (issue #16, "Bad input and faults"): its probes answer from
//! the moment the process starts, before its store is reachable.
//!
//! Starting: the health port (`grpc.health.v1`) and the HTTP edge are bound first; liveness
//! answers OK and readiness NOT_SERVING / 503 with the reason (the store's last error) while
//! the store is opened and the tenants are loaded, retried with a doubling delay for as long
//! as the database is unreachable ([`until_reachable`]), so that an orchestrator neither
//! restarts the process in a loop nor routes traffic to it. The IAM Query API on the HTTP
//! edge answers `ServiceUnavailable` meanwhile ([`SwitchRouter`] swaps in the real routes
//! once loaded).
//!
//! Serving: once loaded the replica stays ready while its database is lost. Reads of the
//! tenants it holds and the sync streams go on from memory (as AWS IAM keeps reads up while a
//! region's control plane is impaired); only writes fail, with the retryable
//! `ServiceUnavailable`. Readiness turning false there would take every replica out of the
//! Service at once (they share the database) and cut the reads and streams that still work.
//! The outage shows instead in `iamlet_control_plane_store_up` (0), in
//! `iamlet_control_plane_store_unavailable_total` and in one log line when the store becomes
//! unreachable and one when it is back ([`ObservedStore`]); the follower's catch-up poll
//! notices both within its interval.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use parking_lot::Mutex;

use crate::control_plane::{
    AdminAuth, AuditEvent, AuthFailureLog, ChangeDraft, ChangeFeed, ChangeRecord, ControlPlane,
    Prior, StoreError, StoredTenant, TenantSeq, TenantStore, TrailLog, TrailRecord, UsageBatch,
    UsageLog,
};
use crate::directory::Tenant;
use crate::error::AwsCode;
use crate::observe;

use super::ServeError;

/// How a start retries an unreachable database: the first wait, doubled after each failure
/// up to `max`.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryDelays {
    pub(super) first: Duration,
    pub(super) max: Duration,
}

/// The start's delays: a database coming back is found within 5 s, and a replica waiting
/// for one costs it one connection attempt every 5 s at most.
pub(super) const START_RETRY: RetryDelays = RetryDelays {
    first: Duration::from_millis(500),
    max: Duration::from_secs(5),
};

/// Whether the store answered its last call: written by [`ObservedStore`], read by the
/// probes' metrics.
#[derive(Debug)]
pub(super) struct StoreHealth {
    up: AtomicBool,
    unavailable: AtomicU64,
}

/// A [`TenantStore`] whose calls tell [`StoreHealth`] whether the database answered.
pub(super) struct ObservedStore {
    inner: Arc<dyn TenantStore>,
    health: Arc<StoreHealth>,
}

/// A control plane's `/healthz`, `/readyz` and `/metrics`, from its start: not ready (and
/// why) until the tenants are loaded, ready from then on until it stops.
pub(super) struct ControlPlaneProbes {
    admin_auth: Arc<AdminAuth>,
    control_plane: OnceLock<Arc<ControlPlane>>,
    health: Arc<StoreHealth>,
    /// Why not ready yet (`None` once loaded).
    waiting: Mutex<Option<String>>,
    serving: tokio::sync::watch::Receiver<bool>,
    metrics: observe::Metrics,
}

/// An axum service that forwards each request to the router it holds now: the HTTP edge is
/// bound (and its probes answer) before the routes that need the loaded control plane exist.
#[derive(Clone)]
pub(super) struct SwitchRouter(Arc<arc_swap::ArcSwap<Router>>);

// === impl StoreHealth ===

impl StoreHealth {
    /// Not up until a call answers: a starting replica has not reached its database yet.
    pub(super) fn new() -> Self {
        Self {
            up: AtomicBool::new(false),
            unavailable: AtomicU64::new(0),
        }
    }

    /// True when the store's last call reached the database.
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Calls refused because the database could not be reached.
    pub(super) fn unavailable(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// Notes a call's outcome; the moments the database is lost and back are logged once
    /// each, not once per call.
    fn note<T>(&self, outcome: &Result<T, StoreError>) {
        match outcome {
            Err(error @ StoreError::Unavailable { .. }) => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "the store became unreachable: admin writes are refused \
                        (ServiceUnavailable, retryable) until it is back; reads and sync streams \
                        go on from the tenants held");
                }
            }
            // Any other answer came from the database: it is reachable.
            Ok(_) | Err(_) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("the store is reachable");
                }
            }
        }
    }
}

// === impl ObservedStore ===

impl ObservedStore {
    pub(super) fn new(inner: Arc<dyn TenantStore>, health: Arc<StoreHealth>) -> Self {
        Self { inner, health }
    }

    fn noted<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        self.health.note(&outcome);
        outcome
    }
}

impl AuthFailureLog for ObservedStore {
    fn record_auth_failure(
        &self,
        source: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<u32, StoreError> {
        self.noted(self.inner.record_auth_failure(source, now, window_seconds))
    }

    fn auth_failures(
        &self,
        source: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<u32, StoreError> {
        self.noted(self.inner.auth_failures(source, now, window_seconds))
    }
}

impl UsageLog for ObservedStore {
    fn record_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        self.noted(self.inner.record_usage(batch))
    }

    fn usage(&self, account_id: &str) -> Result<UsageBatch, StoreError> {
        self.noted(self.inner.usage(account_id))
    }
}

impl TrailLog for ObservedStore {
    fn record_trail(&self, events: &[TrailRecord]) -> Result<usize, StoreError> {
        self.noted(self.inner.record_trail(events))
    }

    fn trail(
        &self,
        account_id: &str,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError> {
        self.noted(self.inner.trail(account_id, start_ms, end_ms, limit))
    }
}

impl TenantStore for ObservedStore {
    fn load_tenants(&self) -> Result<Vec<StoredTenant>, StoreError> {
        self.noted(self.inner.load_tenants())
    }

    fn load_tenant(&self, account_id: &str) -> Result<Option<StoredTenant>, StoreError> {
        self.noted(self.inner.load_tenant(account_id))
    }

    fn commit(
        &self,
        change: &ChangeDraft,
        prior: Prior,
        after: Option<&Tenant>,
    ) -> Result<ChangeRecord, StoreError> {
        self.noted(self.inner.commit(change, prior, after))
    }

    fn changes(
        &self,
        account_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        self.noted(self.inner.changes(account_id, after_seq, limit))
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    fn store_id(&self) -> &str {
        self.inner.store_id()
    }

    fn record_event(&self, event: &AuditEvent) -> Result<u64, StoreError> {
        self.noted(self.inner.record_event(event))
    }

    fn events(
        &self,
        account_id: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.noted(self.inner.events(account_id, after_id, limit))
    }

    fn tenant_seqs(&self) -> Result<Vec<TenantSeq>, StoreError> {
        self.noted(self.inner.tenant_seqs())
    }

    fn watch_changes(&self) -> Option<ChangeFeed> {
        self.inner.watch_changes()
    }
}

// === impl ControlPlaneProbes ===

impl ControlPlaneProbes {
    pub(super) fn new(
        admin_auth: Arc<AdminAuth>,
        health: Arc<StoreHealth>,
        serving: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            admin_auth,
            control_plane: OnceLock::new(),
            health,
            waiting: Mutex::new(Some("opening the store".into())),
            serving,
            metrics: observe::Metrics::default(),
        }
    }

    /// Says why the replica is not ready yet.
    pub(super) fn waiting_for(&self, reason: String) {
        *self.waiting.lock() = Some(reason);
    }

    /// The tenants are loaded: readiness follows the serving channel from now on.
    pub(super) fn loaded(&self, control_plane: Arc<ControlPlane>) {
        let _ = self.control_plane.set(control_plane);
        *self.waiting.lock() = None;
    }

    pub(super) fn admin_auth(&self) -> &Arc<AdminAuth> {
        &self.admin_auth
    }
}

impl observe::Probes for ControlPlaneProbes {
    fn ready(&self) -> bool {
        *self.serving.borrow()
    }

    fn not_ready_reason(&self) -> Option<String> {
        if self.ready() {
            return None;
        }
        Some(
            self.waiting
                .lock()
                .clone()
                .unwrap_or_else(|| "stopping".into()),
        )
    }

    fn metrics(&self) -> String {
        self.metrics.render(self)
    }
}

impl observe::Gauges for ControlPlaneProbes {
    fn render(&self, out: &mut String) {
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        observe::gauge(
            out,
            "iamlet_control_plane_ready",
            "1 when the replica is ready (its tenants loaded), 0 while it starts or stops.",
            &[(String::new(), flag(observe::Probes::ready(self)))],
        );
        observe::gauge(
            out,
            "iamlet_control_plane_store_up",
            "1 when the store's last call reached the database; 0 while it is unreachable \
             (writes are refused, reads and sync streams go on).",
            &[(String::new(), flag(self.health.is_up()))],
        );
        observe::counter(
            out,
            "iamlet_control_plane_store_unavailable_total",
            "Store calls that failed because the database could not be reached.",
            self.health.unavailable(),
        );
        if let Some(control_plane) = self.control_plane.get() {
            observe::gauge(
                out,
                "iamlet_control_plane_tenants",
                "Tenants in the store.",
                &[(String::new(), control_plane.list_tenants().len() as f64)],
            );
            observe::gauge(
                out,
                "iamlet_control_plane_epoch",
                "The store's epoch.",
                &[(String::new(), control_plane.epoch() as f64)],
            );
            let usage = control_plane.usage_counters();
            let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
            observe::counter(
                out,
                "iamlet_control_plane_usage_reports_total",
                "Usage reports from sidecars merged into the store.",
                read(&usage.accepted),
            );
            observe::counter(
                out,
                "iamlet_control_plane_usage_reports_refused_not_admitted_total",
                "Usage reports refused: the stream is not admitted to the tenant, or it does not \
                 exist.",
                read(&usage.refused_not_admitted),
            );
            observe::counter(
                out,
                "iamlet_control_plane_usage_reports_refused_malformed_total",
                "Usage reports refused as malformed or oversized.",
                read(&usage.refused_malformed),
            );
            observe::counter(
                out,
                "iamlet_control_plane_usage_reports_failed_total",
                "Valid usage reports the store failed to record.",
                read(&usage.failed),
            );
        }
        let counters = self.admin_auth.counters();
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        observe::counter(
            out,
            "iamlet_admin_auth_failures_total",
            "Admin calls whose credentials did not authenticate.",
            read(&counters.auth_failures),
        );
        observe::counter(
            out,
            "iamlet_admin_auth_throttled_total",
            "Admin calls refused because their source failed to authenticate too often.",
            read(&counters.throttled),
        );
        observe::counter(
            out,
            "iamlet_admin_access_denied_total",
            "Admin calls denied by policy.",
            read(&counters.denied),
        );
    }
}

// === impl SwitchRouter ===

impl SwitchRouter {
    pub(super) fn new(router: Router) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(router)))
    }

    /// Serves `router` from the next request on (requests under way finish on the old one).
    pub(super) fn switch(&self, router: Router) {
        self.0.store(Arc::new(router));
    }

    /// A router for [`crate::http::serve`] that forwards every path to the current router.
    pub(super) fn router(&self) -> Router {
        Router::new()
            .route_service("/", self.clone())
            .route_service("/{*path}", self.clone())
    }
}

impl tower_service::Service<Request> for SwitchRouter {
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        // A router is always ready; the one a request meets is picked in `call`.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let mut router = Router::clone(&self.0.load());
        tower_service::Service::call(&mut router, request)
    }
}

/// The HTTP edge of a starting control plane: the probes, and the IAM Query API answering
/// `ServiceUnavailable` (retryable) until the tenants are loaded.
pub(super) fn starting_routes(probes: Arc<dyn observe::Probes>) -> Router {
    crate::http::probe_routes(probes)
        .route("/", any(not_loaded))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not found\n") })
}

async fn not_loaded() -> Response {
    crate::http::aws_error(
        AwsCode::ServiceUnavailable,
        "the control plane is starting: its store is not loaded yet; retry",
        &crate::http::query::new_request_id(),
        crate::http::ErrorFormat::Query {
            namespace: crate::http::IAM_NAMESPACE,
        },
    )
    .into_response()
}

/// Runs `attempt` on a blocking thread (the store's calls block) until it succeeds or fails
/// otherwise than with an unreachable database. Each failure is logged and shown by the
/// probes as the reason the replica is not ready; the waits double from `delays.first` to
/// `delays.max`. Never gives up: an orchestrator restarting the process would not bring the
/// database back sooner.
pub(super) async fn until_reachable<T: Send + 'static>(
    what: &'static str,
    probes: &ControlPlaneProbes,
    delays: RetryDelays,
    mut attempt: impl FnMut() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServeError> {
    let mut delay = delays.first;
    loop {
        let (returned, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = attempt();
            (attempt, outcome)
        })
        .await
        .map_err(|e| ServeError::Start(format!("{what}: the attempt did not complete: {e}")))?;
        attempt = returned;
        match outcome {
            Err(error @ StoreError::Unavailable { .. }) => {
                tracing::warn!(
                    "{what}: {error}; retrying in {}ms (not ready meanwhile)",
                    delay.as_millis()
                );
                probes.waiting_for(format!("{what}: {error}"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(delays.max);
            }
            other => return Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests;
