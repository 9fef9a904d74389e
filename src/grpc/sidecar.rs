//! The sidecar's gRPC servers: the local API (Authorizer, SecurityTokenService, SidecarStatus,
//! health, reflection) and the health port, over TCP, TLS or a Unix socket. One serve helper
//! serves every listener kind.

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use super::Keepalive;
use crate::proto::v1 as pb;
use crate::sidecar::{CacheStats, SidecarHandle};

use std::net::SocketAddr;
use std::path::PathBuf;

use super::authorizer::AuthorizerService;
use super::health::{reflection, HealthService};
use super::sts::StsService;

/// The services the local API serves, as health and reflection name them.
pub const SIDECAR_SERVICES: &[&str] = &[
    "iamlet.v1.Authorizer",
    "iamlet.v1.SecurityTokenService",
    "iamlet.v1.SidecarStatus",
];

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

/// `iamlet.v1.SidecarStatus`.
#[derive(Debug, Clone)]
pub struct StatusService {
    handle: SidecarHandle,
}

/// Serves the sidecar's local API on `incoming` (TCP, TLS or Unix socket connections) until
/// `shutdown` completes.
pub async fn serve_local_api<S, IO, IE>(
    handle: SidecarHandle,
    incoming: S,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError>
where
    S: tokio_stream::Stream<Item = Result<IO, IE>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_local_api_with(handle, None, Keepalive::Ping, incoming, shutdown).await
}

/// The services health reports when Envoy's ext_authz is served too. Reflection cannot
/// describe it (`envoy-types` ships no descriptors), so reflection keeps [`SIDECAR_SERVICES`].
pub const SIDECAR_SERVICES_WITH_EXT_AUTHZ: &[&str] = &[
    "iamlet.v1.Authorizer",
    "iamlet.v1.SecurityTokenService",
    "iamlet.v1.SidecarStatus",
    super::ext_authz::EXT_AUTHZ_SERVICE,
];

/// Serves the sidecar's local API on `incoming`, with Envoy's ext_authz
/// (`envoy.service.auth.v3.Authorization`) when `ext_authz` is given, until `shutdown`
/// completes; `keepalive` says whether its peers are on this host (see [`Keepalive`]).
pub async fn serve_local_api_with<S, IO, IE>(
    handle: SidecarHandle,
    ext_authz: Option<Arc<crate::sidecar::ext_authz::ExtAuthz>>,
    keepalive: Keepalive,
    incoming: S,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError>
where
    S: tokio_stream::Stream<Item = Result<IO, IE>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let authorizer = AuthorizerService::new(Arc::clone(&handle.api));
    let sts = StsService::new(Arc::clone(&handle.api));
    let (reflection, reflection_alpha) =
        reflection(SIDECAR_SERVICES).map_err(SidecarError::Reflection)?;
    let health = if ext_authz.is_some() {
        SIDECAR_SERVICES_WITH_EXT_AUTHZ
    } else {
        SIDECAR_SERVICES
    };
    let ext_authz = ext_authz.map(|e| {
        handle
            .api
            .metrics()
            .ext_authz
            .served
            .store(true, std::sync::atomic::Ordering::Relaxed);
        super::ext_authz::ExtAuthzService::new(e).into_server()
    });
    super::server_with(keepalive)
        .trace_fn(crate::telemetry::grpc_span)
        .add_service(authorizer.into_server())
        .add_service(sts.into_server())
        .add_service(HealthService::new(health, handle.serving()).into_server())
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(pb::sidecar_status_server::SidecarStatusServer::new(
            StatusService { handle },
        ))
        .add_optional_service(ext_authz)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Serves the sidecar's local API on a TCP `listener` until `shutdown` completes.
pub async fn serve_sidecar(
    handle: SidecarHandle,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    serve_local_api(
        handle,
        crate::net::accept(listener, crate::net::ConnectionLimits::default()),
        shutdown,
    )
    .await
}

/// Serves `grpc.health.v1` (following `serving`) and reflection on `listener`: the health
/// port the kubelet probes, for the sidecar (`services` = [`SIDECAR_SERVICES`]) or the control
/// plane.
pub async fn serve_health(
    services: &'static [&'static str],
    serving: tokio::sync::watch::Receiver<bool>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SidecarError> {
    let (reflection, reflection_alpha) = reflection(&[]).map_err(SidecarError::Reflection)?;
    super::server()
        .add_service(HealthService::new(services, serving).into_server())
        .add_service(reflection)
        .add_service(reflection_alpha)
        .serve_with_incoming_shutdown(
            crate::net::accept(listener, crate::net::ConnectionLimits::default()),
            shutdown,
        )
        .await?;
    Ok(())
}

fn cache_stats(stats: CacheStats) -> pb::CacheStats {
    pb::CacheStats {
        hits: stats.hits,
        misses: stats.misses,
        entries: stats.entries,
    }
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
            missing: h.missing(),
            connected: h.sync.connected(),
            endpoint: h.sync.endpoint().unwrap_or_default(),
            failovers: h.sync.failovers(),
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
            decision_cache: Some(cache_stats(h.api.decision_cache_stats())),
            credential_cache: Some(cache_stats(h.api.credential_cache_stats())),
            decision_log_written: h.api.decision_log().written(),
            decision_log_dropped: h.api.decision_log().dropped(),
            decision_log_write_errors: h.api.decision_log().write_errors(),
        }))
    }
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
