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

/// Whether a server pings quiet connections to find peers that are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    /// HTTP/2 pings on a connection quiet for 30 s; one unanswered for 20 s closes it.
    Ping,
    /// No pings, for peers on this host (a loopback address, a Unix socket): a peer process
    /// that ends closes its socket in the kernel, which the server sees at once, so a ping
    /// finds nothing more. Pings are not free there: hyper notes every frame for them, about
    /// 1,500 instructions of each `Authorize` (a sixth of what iamlet adds to a call).
    SameHost,
}

impl Keepalive {
    /// [`Keepalive::SameHost`] for a loopback address, [`Keepalive::Ping`] for any other.
    pub fn for_address(addr: std::net::SocketAddr) -> Self {
        if addr.ip().is_loopback() {
            Self::SameHost
        } else {
            Self::Ping
        }
    }
}

/// A server with the limits every gRPC listener of iamlet has.
fn server() -> tonic::transport::Server {
    server_with(Keepalive::Ping)
}

/// [`server`], with or without keepalive pings.
fn server_with(keepalive: Keepalive) -> tonic::transport::Server {
    let builder = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .http2_max_pending_accept_reset_streams(Some(64));
    match keepalive {
        Keepalive::Ping => builder
            .http2_keepalive_interval(Some(KEEPALIVE.0))
            .http2_keepalive_timeout(Some(KEEPALIVE.1)),
        Keepalive::SameHost => builder,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_peers_on_this_host_go_without_keepalive_pings() {
        for (addr, expected) in [
            ("127.0.0.1:7071", Keepalive::SameHost),
            ("127.8.9.10:7071", Keepalive::SameHost),
            ("[::1]:7071", Keepalive::SameHost),
            ("0.0.0.0:7071", Keepalive::Ping),
            ("[::]:7071", Keepalive::Ping),
            ("10.1.2.3:7071", Keepalive::Ping),
            ("[fd00::1]:7071", Keepalive::Ping),
        ] {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            assert_eq!(Keepalive::for_address(addr), expected, "{addr}");
        }
    }
}
