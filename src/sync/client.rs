//! The sidecar's stream to the control plane: connect, subscribe with the versions it has,
//! apply every response, ACK or NACK it, and reconnect with jittered exponential backoff when
//! the stream breaks. Decisions never wait on any of this: they read the snapshot store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::trail::Trail;
use super::usage::Usage;
use crate::proto::v1 as pb;
use crate::snapshot::{SnapshotVersion, StoreRef};

use super::endpoints::{Endpoint, EndpointError, EndpointList, Rotation};
use super::{Applier, UpdateResult};
use crate::snapshot::{SnapshotSignature, TenantUpdate};

/// How the client reaches and subscribes to the control plane.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The control plane's URLs, comma-separated (`http://cp-0:7070,http://cp-1:7070`); a
    /// host name stands for every address it resolves to (see [`super::EndpointList`]).
    pub endpoint: String,
    /// The tenants to serve; `["*"]` for all.
    pub subscribe: Vec<String>,
    /// This sidecar's name in the control plane's logs.
    pub sidecar_id: String,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// TLS to the control plane (files re-read at every connection).
    pub tls: Option<crate::tls::ClientTlsFiles>,
    /// A sync key to present (`--sync-credentials`), where no client certificate does.
    pub credentials: Option<crate::client::Profile>,
    /// How a dead connection is noticed.
    pub liveness: Liveness,
}

/// How the client notices a dead connection (RELIABILITY T06): a half-open TCP connection
/// (the peer gone without FIN or RST) otherwise looks connected until the serve bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// HTTP/2 PING every this long, even while the stream is idle.
    pub keepalive_interval: Duration,
    /// A PING unanswered this long closes the connection.
    pub keepalive_timeout: Duration,
    /// A stream that delivers nothing (no change, no heartbeat) this long is dropped and
    /// reconnected: a few of the control plane's heartbeat intervals.
    pub idle_timeout: Duration,
}

impl Default for Liveness {
    /// PING every 10 s, 5 s to answer; idle bound 3 heartbeats of the control plane's default
    /// (5 s): 15 s.
    fn default() -> Self {
        Self {
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
            idle_timeout: crate::control_plane::DEFAULT_HEARTBEAT.saturating_mul(3),
        }
    }
}

/// Exponential backoff with jitter, as gRPC's connection-backoff spec: each delay is the
/// previous × `multiplier`, capped at `max`, then spread by ±`jitter`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The growth factor.
    pub multiplier: f64,
    /// The relative spread (0.2: ±20 %).
    pub jitter: f64,
}

/// What the stream has done, for readiness, status and metrics.
///
/// The last contact survives restarts (RELIABILITY T10): it is kept in `sync-state.json` in
/// the state directory, so a restarted sidecar measures staleness from it, not from its own
/// start, and a crash-looping sidecar reaches fail-closed on time.
#[derive(Debug, Default)]
pub struct SyncState {
    connected: AtomicBool,
    /// Unix milliseconds of the last response; 0 for never.
    last_contact_ms: AtomicI64,
    /// Where the last contact is persisted, if anywhere.
    file: Option<PathBuf>,
    /// The last contact last written to `file`.
    persisted_ms: AtomicI64,
    /// Streams ended by the idle bound or a dead connection, for tests and metrics.
    dead_connections: AtomicU64,
    /// Streams the control plane accepted (the `Watch` call answered).
    streams_opened: AtomicU64,
    /// Attempts that ended in an error, and the last one's reason.
    failures: AtomicU64,
    last_failure: Mutex<Option<SyncFailure>>,
    full_response_seen: AtomicBool,
    last_nacks: Mutex<BTreeMap<String, (SnapshotVersion, String)>>,
    acks: AtomicU64,
    nacks: AtomicU64,
    /// The endpoint the open stream is on (`None` while disconnected), and the one the last
    /// stream was on: a stream opened on another is a fail-over.
    endpoint: Mutex<Option<String>>,
    last_endpoint: Mutex<Option<Endpoint>>,
    failovers: AtomicU64,
    /// Connection attempts so far, and when the last one started.
    attempts: AtomicU64,
    last_attempt: Mutex<Option<std::time::Instant>>,
    /// Signalled after each response is applied: what the sidecar's readiness follows.
    applied: tokio::sync::Notify,
}

// === impl Backoff ===

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 1.6,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `attempt` (0-based), with `unit` ∈ [0, 1) as the
    /// random draw.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.initial.as_secs_f64() * self.multiplier.powi(attempt.min(64) as i32);
        let capped = base.min(self.max.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((capped * spread).max(0.0))
    }
}

/// Why the last attempt to stream failed: what an operator (or a test) reads to tell a
/// refusal from an outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFailure {
    /// The gRPC code when the control plane answered with a status (a refusal:
    /// `PermissionDenied`, `Unauthenticated`); `None` when no call got through (connection,
    /// TLS, a dead connection).
    pub code: Option<tonic::Code>,
    /// The error and its causes.
    pub message: String,
}

/// The file of the persisted last contact, in the state directory.
pub const SYNC_STATE_FILE: &str = "sync-state.json";

/// How often the last contact is written at most: a write lost or skipped leaves an older
/// contact on disk, which only makes a restarted sidecar more stale, never less.
const PERSIST_EVERY_MS: i64 = 1_000;

#[derive(serde::Serialize, serde::Deserialize)]
struct PersistedSync {
    last_contact_ms: i64,
}

// === impl SyncState ===

impl SyncState {
    /// The state of a sidecar whose state directory is `dir`: the last contact persisted
    /// there, if any (a file that does not read, or a contact in the future, counts as none,
    /// with a warning).
    pub fn restored(dir: &Path) -> Self {
        let file = dir.join(SYNC_STATE_FILE);
        let now = now_ms();
        let last = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<PersistedSync>(&bytes) {
                Ok(p) if p.last_contact_ms > 0 && p.last_contact_ms <= now => p.last_contact_ms,
                Ok(p) => {
                    report(&format!(
                        "{}: ignoring a last contact of {} ms, in the future or invalid",
                        file.display(),
                        p.last_contact_ms
                    ));
                    0
                }
                Err(e) => {
                    report(&format!(
                        "{}: ignoring, it does not decode: {e}",
                        file.display()
                    ));
                    0
                }
            },
            Err(_) => 0,
        };
        Self {
            last_contact_ms: AtomicI64::new(last),
            persisted_ms: AtomicI64::new(last),
            file: Some(file),
            ..Self::default()
        }
    }

    /// Records a response from the control plane at `now` (Unix ms), and persists it at most
    /// once a second.
    pub fn contact(&self, now: i64) {
        self.last_contact_ms.store(now, Ordering::Relaxed);
        let Some(file) = &self.file else {
            return;
        };
        if now - self.persisted_ms.load(Ordering::Relaxed) < PERSIST_EVERY_MS {
            return;
        }
        self.persisted_ms.store(now, Ordering::Relaxed);
        if let Err(error) = write_contact(file, now) {
            report(&format!(
                "cannot persist the last contact to {}: {error}",
                file.display()
            ));
        }
    }

    /// Streams dropped because the connection was found dead or idle past the bound.
    pub fn dead_connections(&self) -> u64 {
        self.dead_connections.load(Ordering::Relaxed)
    }

    /// Streams the control plane accepted so far.
    pub fn streams_opened(&self) -> u64 {
        self.streams_opened.load(Ordering::Relaxed)
    }

    /// Attempts that failed so far, and why the last one did.
    pub fn failures(&self) -> (u64, Option<SyncFailure>) {
        (
            self.failures.load(Ordering::Relaxed),
            self.last_failure.lock().clone(),
        )
    }

    fn record_failure(&self, error: &StreamError) {
        let code = match error {
            StreamError::Status(status) => Some(status.code()),
            _ => None,
        };
        *self.last_failure.lock() = Some(SyncFailure {
            code,
            message: with_causes(error),
        });
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// True while a stream is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// True once a complete response arrived (the sidecar then has every subscribed tenant
    /// the control plane has).
    pub fn full_response_seen(&self) -> bool {
        self.full_response_seen.load(Ordering::Relaxed)
    }

    /// Completes after the next response has been applied (at once if one was applied since
    /// the last call): the one waiter is the sidecar's readiness.
    pub async fn applied(&self) {
        self.applied.notified().await;
    }

    /// Milliseconds since the control plane was last heard from; `None` if never.
    pub fn staleness_ms(&self, now_ms: i64) -> Option<i64> {
        match self.last_contact_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some((now_ms - t).max(0)),
        }
    }

    /// The endpoint the stream is on (`URL (ADDRESS)`), while one is open.
    pub fn endpoint(&self) -> Option<String> {
        self.endpoint.lock().clone()
    }

    /// Streams opened on another endpoint than the previous stream's.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Connection attempts so far, and when the last one started: what a reconnect storm's
    /// spread is measured by.
    pub fn attempts(&self) -> (u64, Option<std::time::Instant>) {
        (
            self.attempts.load(Ordering::Relaxed),
            *self.last_attempt.lock(),
        )
    }

    fn attempting(&self) {
        *self.last_attempt.lock() = Some(std::time::Instant::now());
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream was accepted on `endpoint`.
    fn opened_on(&self, endpoint: &Endpoint) {
        let mut last = self.last_endpoint.lock();
        if last.as_ref().is_some_and(|l| l != endpoint) {
            self.failovers.fetch_add(1, Ordering::Relaxed);
        }
        *last = Some(endpoint.clone());
        drop(last);
        *self.endpoint.lock() = Some(endpoint.to_string());
        self.connected.store(true, Ordering::Relaxed);
        self.streams_opened.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.connected.store(false, Ordering::Relaxed);
        *self.endpoint.lock() = None;
    }

    /// Tenant updates ACKed and NACKed so far.
    pub fn ack_counts(&self) -> (u64, u64) {
        (
            self.acks.load(Ordering::Relaxed),
            self.nacks.load(Ordering::Relaxed),
        )
    }

    /// The last refusal of each tenant still refused.
    pub fn last_nacks(&self) -> BTreeMap<String, (SnapshotVersion, String)> {
        self.last_nacks.lock().clone()
    }
}

fn now_ms() -> i64 {
    crate::policy::Timestamp::now().epoch_millis()
}

/// Writes the last contact: a temporary file renamed over the old one, so a crash leaves one
/// or the other. Not fsynced: a lost write leaves an older contact, which is the safe side.
fn write_contact(file: &Path, now: i64) -> std::io::Result<()> {
    let text = serde_json::to_vec(&PersistedSync {
        last_contact_ms: now,
    })
    .map_err(std::io::Error::other)?;
    let tmp = file.with_extension("json.tmp");
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&tmp)?, &text)?;
    std::fs::rename(&tmp, file)
}

/// A random draw in [0, 1) for jitter; the quality of the draw only spreads reconnects.
fn unit_draw() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// 64 random bits: the jitter's draws and the first endpoint's.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    crate::directory::IdGenerator::system().fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// An error and its causes, `a: b: c`: tonic's transport errors say "transport error" and keep
/// the reason (a refused certificate, a closed port) in their sources.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why one stream ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("the stream failed: {0}")]
    Status(#[from] tonic::Status),
    #[error("the stream closed")]
    Closed,
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("nothing arrived for {0:?} (not even a heartbeat): the connection is presumed dead")]
    Idle(Duration),
    #[error("{0}")]
    Endpoints(#[from] EndpointError),
    #[error("cannot resolve {url}: {source}")]
    Resolve { url: String, source: std::io::Error },
}

/// Runs the stream until `shutdown` turns true: the sidecar's only task that talks to the
/// control plane.
///
/// The endpoints are resolved before every attempt and tried in turn from a random start; a
/// failed attempt moves straight to the next endpoint, and only a round in which every
/// endpoint failed waits the exponential backoff (a stream that delivered resets it, gRFC
/// A57). A stream that ends after delivering is the event a whole fleet sees at once (a
/// replica stopped), so its first retry waits a uniform draw over twenty initial delays
/// (capped at the maximum; 2 s by default): "full jitter", which spreads a reconnect storm
/// over the surviving replicas instead of moving it 100 ms later (RELIABILITY T13: with
/// 1,000 sidecars, about 5 % of them per 100 ms).
pub async fn run_sync(
    applier: Arc<Applier>,
    config: SyncConfig,
    state: Arc<SyncState>,
    shutdown: watch::Receiver<bool>,
) {
    run_sync_with_usage(applier, config, None, state, shutdown).await;
}

/// What a stream ships to the control plane beside its answers: usage aggregates and STS
/// events, each when configured.
#[derive(Debug, Clone, Default)]
pub struct Shipping {
    /// The usage aggregates.
    pub usage: Option<Arc<Usage>>,
    /// The STS events.
    pub trail: Option<Arc<Trail>>,
}

/// [`run_sync`], shipping `usage` on the stream (see [`run_sync_shipping`]).
pub async fn run_sync_with_usage(
    applier: Arc<Applier>,
    config: SyncConfig,
    usage: Option<Arc<Usage>>,
    state: Arc<SyncState>,
    shutdown: watch::Receiver<bool>,
) {
    let shipping = Shipping { usage, trail: None };
    run_sync_shipping(applier, config, shipping, state, shutdown).await;
}

/// [`run_sync`], shipping usage and STS events on the stream: what was used (and called) is
/// sent at every interval of its configuration and once more at shutdown, and what a broken
/// stream may have lost is sent again on the next one.
pub async fn run_sync_shipping(
    applier: Arc<Applier>,
    config: SyncConfig,
    shipping: Shipping,
    state: Arc<SyncState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let list = match EndpointList::parse(&config.endpoint) {
        Ok(list) => list,
        Err(error) => {
            // Checked at start by the command line; a library caller learns it here, once.
            let error = StreamError::from(error);
            state.record_failure(&error);
            report(&format!("control plane stream: {error}"));
            let _ = shutdown.wait_for(|stop| *stop).await;
            return;
        }
    };
    let mut rotation = Rotation::new(random_u64());
    let mut attempt = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (endpoints, unresolved) = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            resolved = list.resolve() => resolved,
        };
        for (url, source) in unresolved {
            let error = StreamError::Resolve { url, source };
            state.record_failure(&error);
            report(&format!("control plane stream: {}", with_causes(&error)));
        }
        let delay = match rotation.pick(endpoints.len()) {
            None => Some(next_delay(&config.backoff, &mut attempt)),
            Some(index) => {
                let endpoint = endpoints.get(index).cloned();
                let mut delivered = false;
                let outcome = match &endpoint {
                    Some(endpoint) => {
                        state.attempting();
                        // The stream watches shutdown itself, to flush usage on its way out.
                        let stream = Stream {
                            applier: &applier,
                            config: &config,
                            target: endpoint,
                            state: &state,
                            usage: shipping.usage.as_ref(),
                            trail: shipping.trail.as_ref(),
                        };
                        stream.run(shutdown.clone(), &mut delivered).await
                    }
                    None => Ok(()),
                };
                state.closed();
                if *shutdown.borrow() {
                    return;
                }
                if let Err(error) = &outcome {
                    state.record_failure(error);
                    report(&format!("control plane stream: {}", with_causes(error)));
                }
                // However it ended (a replica that stopped cuts it with an error), a stream
                // that delivered resets the backoff.
                if delivered {
                    rotation.delivered(index);
                    attempt = 0;
                    let spread = config
                        .backoff
                        .initial
                        .saturating_mul(DROP_SPREAD_INITIALS)
                        .min(config.backoff.max);
                    Some(spread.mul_f64(unit_draw()))
                } else {
                    rotation
                        .failed(index, endpoints.len())
                        .then(|| next_delay(&config.backoff, &mut attempt))
                }
            }
        };
        if let Some(delay) = delay {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// How many initial delays the first retry after a dropped stream is spread over.
pub const DROP_SPREAD_INITIALS: u32 = 20;

/// The backoff after failed round `attempt`, counting it.
fn next_delay(backoff: &Backoff, attempt: &mut u32) -> Duration {
    let delay = backoff.delay(*attempt, unit_draw());
    *attempt = attempt.saturating_add(1);
    delay
}

/// One stream's parts.
struct Stream<'a> {
    applier: &'a Arc<Applier>,
    config: &'a SyncConfig,
    target: &'a Endpoint,
    state: &'a SyncState,
    usage: Option<&'a Arc<Usage>>,
    trail: Option<&'a Arc<Trail>>,
}

impl Stream<'_> {
    /// Runs the stream until it ends or `shutdown` turns true (then usage is flushed, within
    /// [`FLUSH_TIMEOUT`]); `delivered` turns true once a response was applied.
    async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
        delivered: &mut bool,
    ) -> Result<(), StreamError> {
        let (tx, rx) = mpsc::channel(4);
        let inbound = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => return Ok(()),
            inbound = self.open(&tx, rx) => inbound?,
        };
        self.state.opened_on(self.target);
        let mut in_flight = InFlight {
            usage: self.usage,
            batches: Vec::new(),
            trail: self.trail,
            events: Vec::new(),
        };
        self.follow(inbound, tx, &mut in_flight, shutdown, delivered)
            .await
    }

    /// Connects, subscribes, and opens the call.
    async fn open(
        &self,
        tx: &mpsc::Sender<pb::WatchRequest>,
        rx: mpsc::Receiver<pb::WatchRequest>,
    ) -> Result<tonic::Streaming<pb::WatchResponse>, StreamError> {
        let (applier, config, target) = (self.applier, self.config, self.target);
        let mut endpoint = tonic::transport::Endpoint::from_shared(target.dial_uri())?
            .http2_keep_alive_interval(config.liveness.keepalive_interval)
            .keep_alive_timeout(config.liveness.keepalive_timeout)
            .keep_alive_while_idle(true)
            .connect_timeout(
                config.liveness.keepalive_interval + config.liveness.keepalive_timeout,
            );
        if let Some(tls) = &config.tls {
            // The server name is the URL's host (or `--control-plane-name`), whichever of its
            // addresses is dialled.
            endpoint = endpoint.tls_config(tls.load(&target.url)?)?;
        }
        let mut client = pb::sync_client::SyncClient::new(endpoint.connect().await?)
            .max_decoding_message_size(crate::control_plane::MAX_SYNC_MESSAGE);
        let initial_versions = applier
            .store()
            .versions()
            .into_iter()
            .map(|(tenant, v)| pb::TenantVersion {
                tenant: tenant.to_string(),
                version: Some(v.into()),
            })
            .collect();
        let first = pb::WatchRequest {
            node: Some(pb::Node {
                sidecar_id: config.sidecar_id.clone(),
                build_version: env!("CARGO_PKG_VERSION").into(),
            }),
            subscribe: config.subscribe.clone(),
            initial_versions,
            ..pb::WatchRequest::default()
        };
        tx.send(first).await.map_err(|_| StreamError::Closed)?;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(credentials) = &config.credentials {
            let metadata = request.metadata_mut();
            if let (Ok(id), Ok(secret)) = (
                credentials.access_key_id.parse(),
                credentials.secret_access_key.expose().parse(),
            ) {
                metadata.insert("x-iamlet-access-key-id", id);
                metadata.insert("x-iamlet-secret-access-key", secret);
            }
        }
        Ok(client.watch(request).await?.into_inner())
    }

    /// Applies every response and answers it, and ships usage at each interval.
    async fn follow(
        &self,
        mut inbound: tonic::Streaming<pb::WatchResponse>,
        tx: mpsc::Sender<pb::WatchRequest>,
        in_flight: &mut InFlight<'_>,
        mut shutdown: watch::Receiver<bool>,
        delivered: &mut bool,
    ) -> Result<(), StreamError> {
        let (applier, config, state) = (self.applier, self.config, self.state);
        let idle = config.liveness.idle_timeout;
        // The first tick is at once: what an earlier stream could not deliver goes out first.
        let interval = [
            self.usage.map(|u| u.config().interval),
            self.trail.map(|t| t.config().interval),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut ticks = interval.map(|interval| {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        let mut deadline = tokio::time::Instant::now() + idle;
        loop {
            let next = tokio::select! {
                biased;
                () = stopped(&mut shutdown) => {
                    in_flight.flush(tx, &mut inbound).await;
                    return Ok(());
                }
                next = tokio::time::timeout_at(deadline, inbound.message()) => next,
                () = tick(&mut ticks) => {
                    in_flight.ship(&tx)?;
                    continue;
                }
            };
            let next = match next {
                Ok(next) => next.inspect_err(|_| {
                    // A keepalive that went unanswered ends the stream with an error too.
                    state.dead_connections.fetch_add(1, Ordering::Relaxed);
                })?,
                Err(_) => {
                    state.dead_connections.fetch_add(1, Ordering::Relaxed);
                    return Err(StreamError::Idle(idle));
                }
            };
            let Some(response) = next else {
                break;
            };
            deadline = tokio::time::Instant::now() + idle;
            // The control plane answered after every usage message sent so far.
            in_flight.confirm();
            state.contact(now_ms());
            let pb::WatchResponse {
                nonce,
                tenants,
                removed_tenants,
                heartbeat: _,
                more,
                store,
                issuing,
            } = response;
            let source = store.map(|s| StoreRef {
                id: s.id,
                epoch: s.epoch,
            });
            let mut acks = Vec::new();
            let mut nacks = Vec::new();
            let issuing = stash_issuing(applier.store(), &issuing);
            for (tenant, version, result) in apply_response(applier, tenants, source.as_ref()).await
            {
                match result {
                    UpdateResult::Applied(v) | UpdateResult::Unchanged(v) => {
                        state.last_nacks.lock().remove(&tenant);
                        acks.push(pb::TenantVersion {
                            tenant,
                            version: Some(v.into()),
                        });
                    }
                    UpdateResult::Rejected { version: v, error } => {
                        report(&format!("refused tenant {tenant} version {v}: {error}"));
                        state
                            .last_nacks
                            .lock()
                            .insert(tenant.clone(), (v, error.clone()));
                        nacks.push(pb::TenantNack {
                            tenant,
                            version: version.map(Into::into),
                            error,
                        });
                    }
                }
            }
            for tenant in &removed_tenants {
                applier.remove_from(tenant, source.as_ref());
            }
            accept_issuing(applier.store(), issuing);
            if !more {
                state.full_response_seen.store(true, Ordering::Relaxed);
            }
            state.applied.notify_one();
            *delivered = true;
            // A length always fits in u64 on the targets iamlet builds for; the fallback only
            // satisfies the conversion's type.
            state
                .acks
                .fetch_add(u64::try_from(acks.len()).unwrap_or(0), Ordering::Relaxed);
            state
                .nacks
                .fetch_add(u64::try_from(nacks.len()).unwrap_or(0), Ordering::Relaxed);
            // Every response that carries state is answered exactly once, on this stream, with its
            // nonce (a removal alone is answered with no ACK or NACK); heartbeats carry none.
            if !acks.is_empty() || !nacks.is_empty() || !removed_tenants.is_empty() {
                let answer = pb::WatchRequest {
                    response_nonce: nonce,
                    acks,
                    nacks,
                    ..pb::WatchRequest::default()
                };
                tx.send(answer).await.map_err(|_| StreamError::Closed)?;
            }
        }
        Ok(())
    }
}

/// Holds the issuing keys a response delivered as pending, before its tenants are applied:
/// a tenant is then never served without its credential, which the first mint can check if
/// it comes before [`accept_issuing`].
fn stash_issuing(
    store: &crate::snapshot::SnapshotStore,
    grants: &[pb::IssuingGrant],
) -> Vec<String> {
    use base64::Engine as _;
    let mut stashed = Vec::with_capacity(grants.len());
    for grant in grants {
        match base64::engine::general_purpose::STANDARD.decode(&grant.private_key) {
            Ok(seed) => {
                store
                    .issuing()
                    .stash(grant.tenant.clone(), grant.certificate.clone(), seed);
                stashed.push(grant.tenant.clone());
            }
            Err(_) => report(&format!(
                "refused the issuing certificate for tenant {}: the issuing key is not base64",
                crate::error::echo(&grant.tenant)
            )),
        }
    }
    stashed
}

/// Checks the issuing keys of a response after its tenants were applied, against each
/// tenant's issuer public keys as now loaded. One that does not check out is refused and
/// logged, and the previous one (if any) stays: this sidecar never mints under a
/// certificate other sidecars would refuse. One a mint already checked is not pending any
/// more.
fn accept_issuing(store: &crate::snapshot::SnapshotStore, tenants: Vec<String>) {
    for tenant in tenants {
        let Some(snapshot) = store.load(&tenant) else {
            // It stays pending: the tenant's next update may load it.
            report(&format!(
                "holding the issuing certificate for tenant {}: the tenant is not loaded",
                crate::error::echo(&tenant)
            ));
            continue;
        };
        match store.issuing().resolve(&tenant, snapshot.issuer_keys()) {
            Some(Ok(credential)) => tracing::info!(
                tenant = %tenant,
                sidecar = %credential.claims().sidecar,
                expires_at = credential.claims().expires_at,
                "issuing certificate received"
            ),
            Some(Err(reason)) => report(&format!(
                "refused the issuing certificate for tenant {}: {reason}",
                crate::error::echo(&tenant)
            )),
            None => {}
        }
    }
}

/// Completes once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// How long a stopping sidecar gives its last usage message to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Completes at the next tick; never without usage.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Usage messages handed to one stream and not yet followed by an answer of the control
/// plane: when the stream ends, they go back to be sent on the next one.
struct InFlight<'a> {
    usage: Option<&'a Arc<Usage>>,
    batches: Vec<Vec<pb::UsageReport>>,
    trail: Option<&'a Arc<Trail>>,
    events: Vec<Vec<pb::TrailEvent>>,
}

impl InFlight<'_> {
    /// Collects what was used and called and hands it to the stream.
    fn ship(&mut self, tx: &mpsc::Sender<pb::WatchRequest>) -> Result<(), StreamError> {
        self.ship_usage(tx)?;
        self.ship_events(tx)
    }

    /// Hands the queued STS events to the stream. A full channel keeps the rest for the next
    /// tick.
    fn ship_events(&mut self, tx: &mpsc::Sender<pb::WatchRequest>) -> Result<(), StreamError> {
        let Some(trail) = self.trail else {
            return Ok(());
        };
        let mut batches = trail.take().into_iter();
        while let Some(batch) = batches.next() {
            let message = pb::WatchRequest {
                events: batch.clone(),
                ..pb::WatchRequest::default()
            };
            let bytes = prost::Message::encoded_len(&message);
            match tx.try_send(message) {
                Ok(()) => {
                    trail.sent(bytes);
                    self.events.push(batch);
                }
                Err(error) => {
                    trail.restore(&batch);
                    let rest: Vec<pb::TrailEvent> = batches.flatten().collect();
                    trail.restore(&rest);
                    return match error {
                        mpsc::error::TrySendError::Full(_) => Ok(()),
                        mpsc::error::TrySendError::Closed(_) => Err(StreamError::Closed),
                    };
                }
            }
        }
        Ok(())
    }

    /// Collects what was used and hands it to the stream. A full channel (the transport is
    /// slow) keeps the rest for the next tick.
    fn ship_usage(&mut self, tx: &mpsc::Sender<pb::WatchRequest>) -> Result<(), StreamError> {
        let Some(usage) = self.usage else {
            return Ok(());
        };
        usage.collect();
        let mut batches = usage.take().into_iter();
        while let Some(batch) = batches.next() {
            let message = pb::WatchRequest {
                usage: batch.clone(),
                ..pb::WatchRequest::default()
            };
            let bytes = prost::Message::encoded_len(&message);
            match tx.try_send(message) {
                Ok(()) => {
                    usage.sent(bytes);
                    self.batches.push(batch);
                }
                Err(error) => {
                    usage.restore(&batch);
                    for rest in batches {
                        usage.restore(&rest);
                    }
                    return match error {
                        mpsc::error::TrySendError::Full(_) => Ok(()),
                        mpsc::error::TrySendError::Closed(_) => Err(StreamError::Closed),
                    };
                }
            }
        }
        Ok(())
    }

    fn confirm(&mut self) {
        self.batches.clear();
        self.events.clear();
    }

    /// At shutdown: sends what is left, closes the sending side, and waits (bounded) for the
    /// control plane to end the stream, which it does once it has read everything.
    async fn flush(
        &mut self,
        tx: mpsc::Sender<pb::WatchRequest>,
        inbound: &mut tonic::Streaming<pb::WatchResponse>,
    ) {
        if self.usage.is_none() && self.trail.is_none() {
            return;
        }
        let mut messages = Vec::new();
        if let Some(usage) = self.usage {
            usage.collect();
            messages.extend(usage.take().into_iter().map(|batch| pb::WatchRequest {
                usage: batch,
                ..pb::WatchRequest::default()
            }));
        }
        if let Some(trail) = self.trail {
            messages.extend(trail.take().into_iter().map(|events| pb::WatchRequest {
                events,
                ..pb::WatchRequest::default()
            }));
        }
        let (usage, trail) = (self.usage, self.trail);
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
            for message in messages {
                let bytes = prost::Message::encoded_len(&message);
                let events = !message.events.is_empty();
                if tx.send(message).await.is_err() {
                    return;
                }
                match (events, usage, trail) {
                    (true, _, Some(trail)) => trail.sent(bytes),
                    (false, Some(usage), _) => usage.sent(bytes),
                    _ => {}
                }
            }
        })
        .await;
        // What was sent before is as delivered as it will be: the process is stopping.
        self.batches.clear();
        self.events.clear();
        // The last sender: dropping it ends the request stream, and the control plane then
        // ends its side.
        drop(tx);
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(usage) = self.usage {
            for batch in &self.batches {
                usage.restore(batch);
            }
        }
        if let Some(trail) = self.trail {
            let events: Vec<pb::TrailEvent> = self.events.drain(..).flatten().collect();
            trail.restore(&events);
        }
    }
}

/// A signature as the domain takes it; one without a store cannot verify and is dropped, so
/// the update is refused as unsigned.
fn snapshot_signature(signature: pb::SnapshotSignature) -> Option<SnapshotSignature> {
    let pb::SnapshotSignature {
        key_id,
        store,
        value,
    } = signature;
    store.map(|pb::StoreIdentity { id, epoch }| SnapshotSignature {
        key_id,
        store: StoreRef { id, epoch },
        value,
    })
}

/// Decodes the tenants of a response (once, here) and applies them off the async workers,
/// all at once: [`Applier::apply_all`] spreads them over the cores.
async fn apply_response(
    applier: &Arc<Applier>,
    tenants: Vec<pb::TenantSnapshot>,
    source: Option<&StoreRef>,
) -> Vec<(String, Option<SnapshotVersion>, UpdateResult)> {
    let mut out = Vec::with_capacity(tenants.len());
    let mut updates = Vec::with_capacity(tenants.len());
    for snapshot in tenants {
        let pb::TenantSnapshot {
            tenant,
            version,
            sha256,
            payload,
            signature,
        } = snapshot;
        match version.map(SnapshotVersion::from) {
            Some(version) => updates.push(TenantUpdate {
                account_id: tenant,
                version,
                payload,
                sha256,
                signature: signature.and_then(snapshot_signature),
            }),
            None => {
                let error = format!("tenant `{tenant}`: the update has no version");
                let rejected = UpdateResult::Rejected {
                    version: SnapshotVersion::default(),
                    error,
                };
                out.push((tenant, None, rejected));
            }
        }
    }
    if updates.is_empty() {
        return out;
    }
    let keys: Vec<(String, SnapshotVersion)> = updates
        .iter()
        .map(|u| (u.account_id.clone(), u.version))
        .collect();
    let applier = Arc::clone(applier);
    let source = source.cloned();
    let results = match tokio::task::spawn_blocking(move || {
        applier.apply_all_from(&updates, source.as_ref())
    })
    .await
    {
        Ok(results) => results,
        Err(join) => keys
            .iter()
            .map(|(tenant, version)| UpdateResult::Rejected {
                version: *version,
                error: format!("tenant `{tenant}`: applying failed: {join}"),
            })
            .collect(),
    };
    out.extend(
        keys.into_iter()
            .zip(results)
            .map(|((tenant, version), result)| (tenant, Some(version), result)),
    );
    out
}

/// A warning in the process's log (plain or JSON on standard error, which the kubelet
/// collects).
pub(crate) fn report(message: &str) {
    tracing::warn!("{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_on_another_endpoint_is_a_failover() {
        let endpoint = |url: &str, addr: &str| Endpoint {
            url: url.into(),
            addr: addr.parse().unwrap(),
        };
        let one = endpoint("https://cp.svc:7443", "10.0.0.1:7443");
        let two = endpoint("https://cp.svc:7443", "10.0.0.2:7443");
        let state = SyncState::default();
        state.opened_on(&one);
        assert_eq!(
            state.endpoint().as_deref(),
            Some("https://cp.svc:7443 (10.0.0.1:7443)")
        );
        state.closed();
        assert!(!state.connected() && state.endpoint().is_none());
        // Back on the same endpoint: a reconnect, not a failover.
        state.opened_on(&one);
        assert_eq!(state.failovers(), 0);
        state.closed();
        state.opened_on(&two);
        assert_eq!(state.failovers(), 1);
        assert_eq!(state.streams_opened(), 3);
        assert!(state.connected());
    }

    #[tokio::test]
    async fn a_bad_endpoint_list_is_a_recorded_failure_until_shutdown() {
        let store = Arc::new(crate::snapshot::SnapshotStore::new());
        let applier = Arc::new(Applier::new(
            store,
            None,
            Arc::new(crate::snapshot::AwsManagedCatalog::compile()),
        ));
        let state = Arc::new(SyncState::default());
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(run_sync(
            applier,
            SyncConfig {
                endpoint: "ftp://cp:21".into(),
                subscribe: vec!["*".into()],
                sidecar_id: "t".into(),
                backoff: Backoff::default(),
                tls: None,
                credentials: None,
                liveness: Liveness::default(),
            },
            Arc::clone(&state),
            shutdown,
        ));
        for _ in 0..500 {
            if state.failures().0 > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (count, last) = state.failures();
        assert_eq!(count, 1);
        let last = last.unwrap();
        assert_eq!(last.code, None);
        assert!(last.message.contains("`ftp://cp:21`"), "{}", last.message);
        assert_eq!(state.attempts().0, 0);
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn backoff_grows_caps_and_spreads() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0.5), Duration::from_millis(100));
        assert!((b.delay(1, 0.5).as_secs_f64() - 0.16).abs() < 1e-9);
        assert_eq!(b.delay(50, 0.5), Duration::from_secs(30));
        assert!((b.delay(50, 0.0).as_secs_f64() - 24.0).abs() < 1e-9);
        assert!((b.delay(50, 0.999_999).as_secs_f64() - 36.0).abs() < 1e-3);
    }

    #[test]
    fn t13_a_reconnect_storm_is_spread_and_within_the_envelope() {
        // RELIABILITY T13: 200 sidecars lose the control plane at once and retry with the
        // real schedule (the delays and draws `run_sync` uses); it returns after 60 s. The
        // attempt that finds it back, per sidecar, is spread: no 100 ms window holds more
        // than 15 % of them; and no delay leaves gRPC's envelope (max × (1 + jitter)).
        let backoff = Backoff::default();
        let back_at = 60.0;
        let envelope = backoff.max.as_secs_f64() * (1.0 + backoff.jitter);
        let mut returns = Vec::new();
        for _ in 0..200 {
            let (mut t, mut attempt) = (0.0, 0u32);
            while t < back_at {
                let delay = backoff.delay(attempt, unit_draw()).as_secs_f64();
                assert!(delay <= envelope + 1e-9, "{delay} s");
                t += delay;
                attempt += 1;
            }
            returns.push(t);
        }
        returns.sort_by(f64::total_cmp);
        let busiest = returns
            .iter()
            .enumerate()
            .map(|(i, start)| {
                returns[i..]
                    .iter()
                    .take_while(|t| **t < start + 0.1)
                    .count()
            })
            .max()
            .unwrap();
        assert!(
            busiest * 100 <= 15 * returns.len(),
            "{busiest} of 200 in one 100 ms window"
        );
        // And the draws are spread, not constant: jitter is real.
        let first: Vec<Duration> = (0..50).map(|_| backoff.delay(0, unit_draw())).collect();
        assert!(first.iter().any(|d| *d != first[0]));
    }
}
