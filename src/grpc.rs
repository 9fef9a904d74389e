//! The gRPC edge: decodes each protobuf message once into domain types (`TryFrom`), calls the
//! domain API, and renders its answer. Errors become `tonic::Status` here and nowhere else
//! ([`status`]).
//!
//! | module | serves |
//! |---|---|
//! | [`authorizer`] | `iamlet.v1.Authorizer` over [`crate::sidecar::Authorizer`] |
//! | [`sts`] | `iamlet.v1.SecurityTokenService` over [`crate::sidecar::SecurityTokenService`] |
//! | [`sidecar`] | the sidecar's local API and health port, over TCP, TLS or a Unix socket |
//! | [`ext_authz`] | `envoy.service.auth.v3.Authorization` (Envoy's ext_authz) over [`crate::sidecar::ext_authz::ExtAuthz`] |
//! | [`health`] | `grpc.health.v1` following a readiness channel, and reflection |
//! | [`admin`] | `iamlet.v1.Admin` over [`crate::control_plane::Admin`] |
//! | [`sync`] | `iamlet.v1.Sync`: admission, one task per stream, chunked deltas, heartbeats |
//! | [`control_plane`] | the control plane's server: Admin and Sync on one listener |
//! | [`status`] | [`crate::error::AwsCode`] → `tonic::Status` |

pub mod admin;
pub mod authorizer;
pub mod control_plane;
pub mod ext_authz;
pub mod health;
pub mod sidecar;
pub mod status;
pub mod sts;
pub mod sync;

/// Streams one connection may carry at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// How often a server pings a quiet connection, and how long it waits for the answer: a peer
/// that is gone is noticed, and its connection slot freed, within a minute.
const KEEPALIVE: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(30),
    std::time::Duration::from_secs(20),
);

/// A server with the limits every gRPC listener of iamlet has.
fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .http2_keepalive_interval(Some(KEEPALIVE.0))
        .http2_keepalive_timeout(Some(KEEPALIVE.1))
        .http2_max_pending_accept_reset_streams(Some(64))
}

pub use admin::{signed_admin_request, AdminService, MAX_ADMIN_MESSAGE};
pub use authorizer::AuthorizerService;
pub use control_plane::{
    serve_control_plane, serve_control_plane_with, ServeOptions, CONTROL_PLANE_SERVICES,
};
pub use sidecar::{
    bind, bind_uds, serve_health, serve_local_api, serve_local_api_with, serve_sidecar,
    SidecarError, StatusService, SIDECAR_SERVICES, SIDECAR_SERVICES_WITH_EXT_AUTHZ,
};
pub use status::{admin_status, api_status, aws_error_code, grpc_code, to_status, ErrorDomain};
pub use sts::StsService;
pub use sync::{refusal_status, SyncService, DEFAULT_HEARTBEAT, MAX_SYNC_MESSAGE};
