//! The sidecar process: it loads its tenants from disk, follows the control plane's stream, and
//! answers on its local listener. Decisions read the snapshot store only; the stream and the
//! disk only ever replace snapshots.

mod api;
mod authorize;
pub mod decision_log;
mod sts;

pub use api::{status, Api, ApiError, CacheConfig, CallerId};
pub use authorize::AuthorizerService;
pub use sts::StsService;

use decision_log::DecisionLog;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
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
}

// === impl SidecarHandle ===

impl SidecarHandle {
    /// True once every required tenant is served.
    pub fn is_ready(&self) -> bool {
        self.readiness
            .is_ready(&self.store, self.sync.full_response_seen())
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
    let state = Arc::new(SyncState::default());
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
        },
        Arc::clone(&state),
        shutdown,
    ));
    let api = Arc::new(Api::new(
        Arc::clone(&store),
        &config.caches,
        Arc::clone(&config.decision_log),
    ));
    (
        SidecarHandle {
            store,
            sync: state,
            readiness: config.readiness.clone(),
            api,
        },
        sync,
    )
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
    let authorizer = AuthorizerService::new(Arc::clone(&handle.api));
    let sts = StsService::new(Arc::clone(&handle.api));
    tonic::transport::Server::builder()
        .add_service(authorizer.into_server())
        .add_service(sts.into_server())
        .add_service(pb::sidecar_status_server::SidecarStatusServer::new(
            StatusService { handle },
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
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
        let now = crate::policy::Timestamp::now().epoch_millis();
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
            staleness_ms: h.sync.staleness_ms(now).unwrap_or(-1),
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
