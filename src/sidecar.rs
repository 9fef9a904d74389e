//! The sidecar process: it loads its tenants from disk, follows the control plane's stream, and
//! answers on its local listener. Decisions read the snapshot store only; the stream and the
//! disk only ever replace snapshots.

mod api;
mod authorize;
pub mod decision_log;
mod sts;

pub use api::{status, Api, ApiError, CacheConfig, CallerId, Freshness, StalenessPolicy};
pub use authorize::AuthorizerService;
pub use sts::StsService;

use decision_log::DecisionLog;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::observe::{self, Gauges, Probes};
use crate::snapshot::SnapshotVersion;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::proto::v1 as pb;
use crate::snapshot::{AwsManagedCatalog, SnapshotStore};
use crate::sync::{report, run_sync, Applier, Backoff, Readiness, SyncConfig, SyncState};

/// How a sidecar runs.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// The control plane's URL.
    pub control_plane: String,
    /// The tenants to serve.
    pub readiness: Readiness,
    /// Where the last known good snapshots live.
    pub state_dir: PathBuf,
    /// This sidecar's name in the control plane's logs.
    pub sidecar_id: String,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Decision and credential cache sizes.
    pub caches: CacheConfig,
    /// Where decisions are logged.
    pub decision_log: Arc<DecisionLog>,
    /// How long stale snapshots may be used.
    pub staleness: StalenessPolicy,
    /// TLS to the control plane.
    pub tls: Option<crate::tls::ClientTlsFiles>,
    /// The sync key presented to the control plane, if any.
    pub sync_credentials: Option<crate::control_plane::Profile>,
    /// Keepalive and idle bound of the stream to the control plane.
    pub liveness: crate::sync::Liveness,
}

impl Default for SidecarConfig {
    /// A sidecar of every tenant of a control plane on `127.0.0.1:7070`, without a decision
    /// log.
    fn default() -> Self {
        Self {
            control_plane: "http://127.0.0.1:7070".into(),
            readiness: Readiness::All,
            state_dir: PathBuf::from("iamlet-sidecar"),
            sidecar_id: "sidecar".into(),
            backoff: Backoff::default(),
            caches: CacheConfig::default(),
            decision_log: DecisionLog::off(),
            staleness: StalenessPolicy::default(),
            tls: None,
            sync_credentials: None,
            liveness: crate::sync::Liveness::default(),
        }
    }
}

/// A running sidecar's shared state.
#[derive(Debug, Clone)]
pub struct SidecarHandle {
    /// The published snapshots.
    pub store: Arc<SnapshotStore>,
    /// The stream's state.
    pub sync: Arc<SyncState>,
    /// The tenants it must serve.
    pub readiness: Readiness,
    /// The local API's shared state: caches and decision log.
    pub api: Arc<Api>,
    /// `grpc.health.v1`'s statuses.
    pub health: HealthReporter,
    /// Set on SIGTERM: the sidecar reports not ready while it drains.
    pub draining: Arc<AtomicBool>,
}

/// `iamlet.v1.SidecarStatus`.
#[derive(Debug, Clone)]
pub struct StatusService {
    handle: SidecarHandle,
}

/// Why the sidecar could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the local server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The Unix domain socket could not be bound.
    #[error("cannot listen on {}: {source}", path.display())]
    Uds {
        /// The socket's path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The reflection service could not be built from the descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(tonic_reflection::server::Error),
}

// === impl SidecarHandle ===

impl SidecarHandle {
    /// True once every required tenant is served.
    pub fn is_ready(&self) -> bool {
        self.readiness
            .is_ready(&self.store, self.sync.full_response_seen())
    }

    /// True while the sidecar should receive traffic: ready, and not draining.
    pub fn is_serving(&self) -> bool {
        self.is_ready() && !self.draining.load(Ordering::Relaxed)
    }

    /// Stops reporting ready (health NOT_SERVING, `/readyz` 503) ahead of shutdown, so that
    /// traffic moves away while in-flight calls finish.
    pub async fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        set_health(&self.health, false).await;
    }
}

/// The services `grpc.health.v1` reports on: the server as a whole (`""`) and each API.
const HEALTH_SERVICES: [&str; 3] = ["", "iamlet.v1.Authorizer", "iamlet.v1.SecurityTokenService"];

async fn set_health(reporter: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in HEALTH_SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Keeps `grpc.health.v1` in step with readiness: NOT_SERVING until every required tenant is
/// loaded, and again once draining starts.
async fn report_health(handle: SidecarHandle, mut shutdown: watch::Receiver<bool>) {
    let mut reported = false;
    set_health(&handle.health, false).await;
    loop {
        let serving = handle.is_serving();
        if serving != reported {
            set_health(&handle.health, serving).await;
            reported = serving;
        }
        tokio::select! {
            _ = shutdown.changed() => {
                set_health(&handle.health, false).await;
                return;
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
        }
    }
}

/// The health and reflection services, for any server of the sidecar.
fn grpc_health_and_reflection(
    handle: &SidecarHandle,
) -> Result<
    (
        HealthServer<HealthService>,
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    SidecarError,
> {
    let (reflection, reflection_alpha) = reflection_services()?;
    Ok((
        HealthServer::new(HealthService::from_health_reporter(handle.health.clone())),
        reflection,
        reflection_alpha,
    ))
}

/// Server reflection, v1 and v1alpha (grpcurl speaks the latter), over every iamlet proto and
/// `grpc.health.v1`.
fn reflection_services() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    SidecarError,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((
        builder().build_v1().map_err(SidecarError::Reflection)?,
        builder()
            .build_v1alpha()
            .map_err(SidecarError::Reflection)?,
    ))
}

/// Serves `grpc.health.v1` and server reflection on `listener` (the health port the kubelet
/// probes) until `shutdown` completes.
pub async fn serve_sidecar_health(
    handle: SidecarHandle,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    let (health, reflection, reflection_alpha) = grpc_health_and_reflection(&handle)?;
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .serve_with_incoming_shutdown(crate::observe::no_delay(listener), shutdown)
        .await?;
    Ok(())
}

/// Serves `grpc.health.v1` (as `reporter` says) and server reflection on `listener`: the
/// control plane's health port.
pub async fn serve_health_only(
    reporter: HealthReporter,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    let (reflection, reflection_alpha) = reflection_services()?;
    tonic::transport::Server::builder()
        .add_service(HealthServer::new(HealthService::from_health_reporter(
            reporter,
        )))
        .add_service(reflection)
        .add_service(reflection_alpha)
        .serve_with_incoming_shutdown(crate::observe::no_delay(listener), shutdown)
        .await?;
    Ok(())
}

/// `/healthz`, `/readyz` and `/metrics` for a sidecar.
#[derive(Debug, Clone)]
pub struct SidecarProbes(pub SidecarHandle);

impl Probes for SidecarProbes {
    fn ready(&self) -> bool {
        self.0.is_serving()
    }

    fn metrics(&self) -> String {
        self.0.api.metrics().render(self)
    }
}

impl Gauges for SidecarProbes {
    fn render(&self, out: &mut String) {
        let h = &self.0;
        let now = crate::policy::Timestamp::now();
        let versions = h.store.versions();
        let per_tenant = |f: &dyn Fn(SnapshotVersion) -> f64| -> Vec<(String, f64)> {
            versions
                .iter()
                .map(|(t, v)| (format!("tenant=\"{}\"", observe::label(t)), f(*v)))
                .collect()
        };
        observe::gauge(
            out,
            "iamlet_tenant_snapshot_epoch",
            "The epoch of each served tenant's snapshot.",
            &per_tenant(&|v| v.epoch as f64),
        );
        observe::gauge(
            out,
            "iamlet_tenant_snapshot_seq",
            "The sequence number of each served tenant's snapshot.",
            &per_tenant(&|v| v.seq as f64),
        );
        let stale = h.api.staleness_ms(now) as f64 / 1000.0;
        observe::gauge(
            out,
            "iamlet_tenant_staleness_seconds",
            "Seconds since each tenant's data was last confirmed by the control plane.",
            &per_tenant(&|_| stale),
        );
        observe::gauge(
            out,
            "iamlet_control_plane_connected",
            "1 while the snapshot stream is open.",
            &[(String::new(), if h.sync.connected() { 1.0 } else { 0.0 })],
        );
        observe::gauge(
            out,
            "iamlet_ready",
            "1 while the sidecar is ready and not draining.",
            &[(String::new(), if h.is_serving() { 1.0 } else { 0.0 })],
        );
        let (acks, nacks) = h.sync.ack_counts();
        observe::counter(
            out,
            "iamlet_sync_acks_total",
            "Tenant updates applied and ACKed.",
            acks,
        );
        observe::counter(
            out,
            "iamlet_sync_nacks_total",
            "Tenant updates refused and NACKed.",
            nacks,
        );
        let d = h.api.decision_cache_stats();
        let c = h.api.credential_cache_stats();
        observe::counter(
            out,
            "iamlet_decision_cache_hits_total",
            "Decisions served from the cache.",
            d.hits,
        );
        observe::counter(
            out,
            "iamlet_decision_cache_misses_total",
            "Decisions evaluated and cached.",
            d.misses,
        );
        observe::gauge(
            out,
            "iamlet_decision_cache_entries",
            "Decisions in the cache.",
            &[(String::new(), d.entries as f64)],
        );
        observe::counter(
            out,
            "iamlet_credential_cache_hits_total",
            "Credential checks served from the cache.",
            c.hits,
        );
        observe::counter(
            out,
            "iamlet_credential_cache_misses_total",
            "Credentials verified in full.",
            c.misses,
        );
        let log = h.api.decision_log();
        observe::counter(
            out,
            "iamlet_decision_log_written_total",
            "Decision-log records written.",
            log.written(),
        );
        observe::counter(
            out,
            "iamlet_decision_log_dropped_total",
            "Decision-log records dropped because the queue was full.",
            log.dropped(),
        );
        observe::counter(
            out,
            "iamlet_decision_log_write_errors_total",
            "Decision-log records lost to write errors.",
            log.write_errors(),
        );
    }
}

/// Loads persisted tenants and starts the stream; returns the handle and the stream task.
pub fn spawn_sidecar(
    config: &SidecarConfig,
    shutdown: watch::Receiver<bool>,
) -> (SidecarHandle, tokio::task::JoinHandle<()>) {
    let store = Arc::new(SnapshotStore::new());
    let applier = Arc::new(Applier::new(
        Arc::clone(&store),
        Some(config.state_dir.clone()),
        Arc::new(AwsManagedCatalog::compile()),
    ));
    let persisted = match &config.readiness {
        Readiness::Tenants(t) => t.clone(),
        Readiness::All => persisted_tenants(&config.state_dir),
    };
    for (tenant, result) in applier.boot_from_disk(&persisted) {
        if let crate::sync::UpdateResult::Rejected { error, .. } = result {
            report(&format!("not loading tenant {tenant} from disk: {error}"));
        }
    }
    let state = Arc::new(SyncState::restored(&config.state_dir));
    let shutdown_copy = shutdown.clone();
    let subscribe = match &config.readiness {
        Readiness::Tenants(t) => t.clone(),
        Readiness::All => vec!["*".to_owned()],
    };
    let sync = tokio::spawn(run_sync(
        applier,
        SyncConfig {
            endpoint: config.control_plane.clone(),
            subscribe,
            sidecar_id: config.sidecar_id.clone(),
            backoff: config.backoff,
            tls: config.tls.clone(),
            credentials: config.sync_credentials.clone(),
            liveness: config.liveness,
        },
        Arc::clone(&state),
        shutdown,
    ));
    let api = Arc::new(
        Api::new(
            Arc::clone(&store),
            &config.caches,
            Arc::clone(&config.decision_log),
        )
        .with_freshness(Freshness {
            sync: Arc::clone(&state),
            readiness: config.readiness.clone(),
            policy: config.staleness.clone(),
            started_ms: crate::policy::Timestamp::now().epoch_millis(),
        }),
    );
    let (health, _) = tonic_health::server::health_reporter();
    let handle = SidecarHandle {
        store,
        sync: state,
        readiness: config.readiness.clone(),
        api,
        health,
        draining: Arc::new(AtomicBool::new(false)),
    };
    tokio::spawn(report_health(handle.clone(), shutdown_copy));
    (handle, sync)
}

/// The tenants with a persisted snapshot under `dir`.
fn persisted_tenants(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut tenants: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let account = name.strip_prefix("tenant-")?.strip_suffix(".json")?;
            (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
                .then(|| account.to_owned())
        })
        .collect();
    tenants.sort();
    tenants
}

/// Serves the sidecar's local API on `listener` until `shutdown` completes.
pub async fn serve_sidecar(
    handle: SidecarHandle,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    local_api(handle)?
        .serve_with_incoming_shutdown(crate::observe::no_delay(listener), shutdown)
        .await?;
    Ok(())
}

/// The local API's services: Authorizer, SecurityTokenService, SidecarStatus, health and
/// reflection.
fn local_api(handle: SidecarHandle) -> Result<tonic::transport::server::Router, SidecarError> {
    let authorizer = AuthorizerService::new(Arc::clone(&handle.api));
    let sts = StsService::new(Arc::clone(&handle.api));
    let (health, reflection, reflection_alpha) = grpc_health_and_reflection(&handle)?;
    Ok(tonic::transport::Server::builder()
        .trace_fn(crate::telemetry::grpc_span)
        .add_service(authorizer.into_server())
        .add_service(sts.into_server())
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(pb::sidecar_status_server::SidecarStatusServer::new(
            StatusService { handle },
        )))
}

/// Serves the local API over TLS (certificates follow their files) until `shutdown` completes.
pub async fn serve_sidecar_tls(
    handle: SidecarHandle,
    listener: TcpListener,
    tls: Arc<crate::tls::ReloadingServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    local_api(handle)?
        .serve_with_incoming_shutdown(tls.incoming(listener), shutdown)
        .await?;
    Ok(())
}

/// Serves the local API on a Unix domain socket until `shutdown` completes.
#[cfg(unix)]
pub async fn serve_sidecar_uds(
    handle: SidecarHandle,
    listener: tokio::net::UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    local_api(handle)?
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            shutdown,
        )
        .await?;
    Ok(())
}

/// Binds a Unix domain socket at `path`, readable and writable by this user only (0600). A
/// socket left by a previous run is replaced; any other file at `path` is an error, never
/// removed.
#[cfg(unix)]
pub fn bind_uds(path: &std::path::Path) -> Result<tokio::net::UnixListener, SidecarError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let failed = |source| SidecarError::Uds {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path).map_err(failed)?,
        Ok(_) => {
            return Err(failed(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(failed)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    Ok(listener)
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, SidecarError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SidecarError::Listen { addr, source })
}

#[tonic::async_trait]
impl pb::sidecar_status_server::SidecarStatus for StatusService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let h = &self.handle;
        Ok(Response::new(pb::StatusResponse {
            ready: h.is_ready(),
            tenants: h
                .store
                .versions()
                .into_iter()
                .map(|(t, v)| pb::TenantVersion {
                    tenant: t.to_string(),
                    version: Some(v.into()),
                })
                .collect(),
            missing: h.readiness.missing(&h.store),
            connected: h.sync.connected(),
            // What decisions are refused by (from the start when never contacted).
            staleness_ms: h.api.staleness_ms(crate::policy::Timestamp::now()),
            last_nacks: h
                .sync
                .last_nacks()
                .into_iter()
                .map(|(tenant, (v, error))| pb::TenantNack {
                    tenant,
                    version: Some(v.into()),
                    error,
                })
                .collect(),
            decision_cache: Some(h.api.decision_cache_stats()),
            credential_cache: Some(h.api.credential_cache_stats()),
            decision_log_written: h.api.log.written(),
            decision_log_dropped: h.api.log.dropped(),
        }))
    }
}
