//! The control plane's gRPC server: `iamlet.v1.Admin`, `iamlet.v1.Sync` and server reflection
//! on one listener, plain or TLS (mutual TLS with a client CA).

use std::sync::Arc;
use std::time::Duration;

use crate::control_plane::{AdminAuth, ControlPlane, SyncAdmission};
use crate::tls::TenantAccess;

use super::admin::AdminService;
use super::sync::SyncService;

/// The services the control plane serves, as health and reflection name them.
pub const CONTROL_PLANE_SERVICES: &[&str] = &["iamlet.v1.Admin", "iamlet.v1.Sync"];

/// How the control plane's API is served beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// TLS, and with a client CA, mutual TLS; certificates follow their files.
    pub tls: Option<Arc<crate::tls::ReloadingServerTls>>,
    /// The tenants each client certificate may subscribe to.
    pub access: Option<Arc<TenantAccess>>,
    /// Who may call the admin API (default: tenants' principals, no operator).
    pub admin_auth: Option<Arc<AdminAuth>>,
    /// Who may stream tenants besides mapped certificates (default: verified certificates
    /// and loopback peers).
    pub sync_admission: Arc<SyncAdmission>,
}

/// Serves the Admin and Sync APIs of `control_plane` on `listener` until `shutdown` completes.
///
/// tonic's graceful shutdown waits for every open stream, and sidecars keep theirs open for
/// good: callers bound the wait (the CLI gives it a few seconds, then exits).
pub async fn serve_control_plane(
    control_plane: Arc<ControlPlane>,
    listener: tokio::net::TcpListener,
    heartbeat: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_control_plane_with(
        control_plane,
        listener,
        heartbeat,
        ServeOptions::default(),
        shutdown,
    )
    .await
}

/// [`serve_control_plane`] with TLS, operators, per-identity tenant limits and admission.
pub async fn serve_control_plane_with(
    control_plane: Arc<ControlPlane>,
    listener: tokio::net::TcpListener,
    heartbeat: Duration,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let secure = options.tls.is_some();
    let admin = AdminService::new(Arc::clone(&control_plane)).with_secure_transport(secure);
    let admin = match options.admin_auth {
        Some(auth) => admin.with_auth(auth),
        None => admin,
    };
    let sync = SyncService::new(control_plane)
        .with_heartbeat(heartbeat)
        .with_access(options.access)
        .with_admission(options.sync_admission)
        .with_secure_transport(secure);
    let (reflection, reflection_alpha) = super::health::reflection(CONTROL_PLANE_SERVICES)
        .map_err(|e| tracing::warn!(error = %e, "gRPC reflection is not served"))
        .ok()
        .unzip();
    let gate = super::admin::AdminGateLayer::new(&admin);
    let router = super::server()
        .layer(gate)
        .trace_fn(crate::telemetry::grpc_span)
        .add_service(admin.into_server())
        .add_service(sync.into_server())
        .add_optional_service(reflection)
        .add_optional_service(reflection_alpha);
    match options.tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls.incoming(listener), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(
                    crate::net::accept(listener, crate::net::ConnectionLimits::default()),
                    shutdown,
                )
                .await
        }
    }
}
