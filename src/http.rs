//! The HTTP edge: an axum router over the same domain API as the gRPC edge, served on its own
//! listener (`--http-listen`) with the same TLS configuration.
//!
//! Every edge serves the probes and metrics (`/healthz`, `/readyz`, `/metrics`). The sidecar's
//! adds AWS STS's Query API ([`sts`]) and the container-credentials endpoint
//! ([`credentials`]); the control plane's adds AWS IAM's Query API ([`iam`]). The Query
//! protocol they share (form decoding, SigV4 over the HTTP request, the XML envelope) is
//! [`query`]. Each route decodes once, calls the domain API and renders, never a copy of its
//! logic; errors become AWS's XML or JSON error bodies in one place, [`error`]. Routes see the
//! client's address as axum's `ConnectInfo` ([`peer_ip`]).
//!
//! Every connection is bounded: a client has [`HEADER_READ_TIMEOUT`] to send its request head,
//! a request body is at most [`MAX_BODY_BYTES`], a request is answered within
//! [`REQUEST_TIMEOUT`] or gets a 503, and at most
//! [`crate::net::ConnectionLimits::max_connections`] connections are served
//! at once (more wait in the kernel's backlog). Each request is a tracing span.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

pub use crate::observe::Probes;

pub mod authzen;
pub mod console;
pub mod credentials;
pub mod error;
pub mod iam;
pub mod query;
pub mod sts;

pub use credentials::credentials_routes;
pub use error::{aws_error, xml_escape, ErrorFormat, IAM_NAMESPACE, STS_NAMESPACE};

/// How long a client may take to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request body the edge reads (AWS's Query APIs accept far less).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// `GET /healthz` (alive: always 200), `GET /readyz` (200 when ready, 503 otherwise) and
/// `GET /metrics`.
pub fn probe_routes(probes: Arc<dyn Probes>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probes)
}

async fn readyz(State(probes): State<Arc<dyn Probes>>) -> Response {
    if probes.ready() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    match probes.not_ready_reason() {
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response(),
    }
}

async fn metrics(State(probes): State<Arc<dyn Probes>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut page = probes.metrics();
            crate::net::render_metrics(&mut page);
            query::render_refusals(&mut page);
            page
        },
    )
        .into_response()
}

/// The layers every route gets: the body limit, the time limit, a span per request, and a
/// plain 404 for unknown paths.
fn bounded(router: Router) -> Router {
    router
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::from_fn(limit_and_trace))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn limit_and_trace(request: Request, next: Next) -> Response {
    use tracing::Instrument;
    // A declared length over the limit is refused before a byte of the body is read; a body
    // without one is cut at the limit as it streams (`DefaultBodyLimit`).
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        query::count_refusal("http", crate::error::AwsCode::RequestEntityTooLarge);
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds {MAX_BODY_BYTES} bytes\n"),
        )
            .into_response();
    }
    let span = tracing::info_span!(
        "http",
        http.method = %request.method(),
        http.path = %crate::error::echo(request.uri().path()),
    );
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request).instrument(span)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    }
}

/// Serves `router` on `listener` (plain TCP, or TLS from `tls`) until `shutdown` completes;
/// connections still open then get a graceful close, bounded by the caller.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    tls: Option<Arc<crate::tls::ReloadingServerTls>>,
    shutdown: impl Future<Output = ()> + Send,
) {
    match tls {
        Some(tls) => serve_incoming(router, tls.incoming(listener), shutdown).await,
        None => {
            serve_incoming(
                router,
                crate::net::accept(listener, crate::net::ConnectionLimits::default()),
                shutdown,
            )
            .await
        }
    }
}

/// A connection that knows its client's address.
pub trait PeerAddr {
    /// The client's address, when the transport has one.
    fn peer_addr(&self) -> Option<std::net::SocketAddr>;
}

impl PeerAddr for crate::net::Bounded<tokio::net::TcpStream> {
    fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        use tonic::transport::server::Connected;
        self.connect_info().remote_addr()
    }
}

impl PeerAddr for tokio_rustls::server::TlsStream<crate::net::Bounded<tokio::net::TcpStream>> {
    fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.get_ref().0.peer_addr()
    }
}

/// The address of the client that sent `request` (`aws:SourceIp`), as the connection gave it.
pub fn peer_ip(request: &axum::http::request::Parts) -> Option<std::net::IpAddr> {
    request
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_canonical())
}

/// The router, with each request marked with its connection's client address (axum's
/// `ConnectInfo`), which the AWS protocols read as `aws:SourceIp`.
#[derive(Clone)]
struct WithPeer {
    router: Router,
    peer: Option<std::net::SocketAddr>,
}

impl<B> tower_service::Service<axum::http::Request<B>> for WithPeer
where
    Router: tower_service::Service<axum::http::Request<B>>,
{
    type Response = <Router as tower_service::Service<axum::http::Request<B>>>::Response;
    type Error = <Router as tower_service::Service<axum::http::Request<B>>>::Error;
    type Future = <Router as tower_service::Service<axum::http::Request<B>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::<axum::http::Request<B>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        if let Some(peer) = self.peer {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        self.router.call(request)
    }
}

/// Serves `router` on each connection `incoming` yields, until `shutdown` completes.
pub async fn serve_incoming<S, IO>(
    router: Router,
    incoming: S,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: tokio_stream::Stream<Item = std::io::Result<IO>> + Send,
    IO: AsyncRead + AsyncWrite + PeerAddr + Unpin + Send + 'static,
{
    use tokio_stream::StreamExt;
    let router = bounded(router);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(incoming);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = incoming.next() => accepted,
        };
        let stream = match accepted {
            Some(Ok(stream)) => stream,
            // Accept errors are logged and paced where connections are accepted.
            Some(Err(_)) => continue,
            None => break,
        };
        let service = TowerToHyperService::new(WithPeer {
            router: router.clone(),
            peer: stream.peer_addr(),
        });
        let builder = Arc::clone(&builder);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "http: connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Fixed(bool);

    impl Probes for Fixed {
        fn ready(&self) -> bool {
            self.0
        }
        fn metrics(&self) -> String {
            "# TYPE x counter\nx_total 1\n".into()
        }
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let status = text.get(9..12).unwrap().parse().unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn probes_answer_healthz_readyz_and_metrics() {
        for ready in [true, false] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(
                probe_routes(Arc::new(Fixed(ready))),
                listener,
                None,
                async {
                    let _ = stopped.await;
                },
            ));
            assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));
            assert_eq!(get(addr, "/readyz").await.0, if ready { 200 } else { 503 });
            let (status, body) = get(addr, "/metrics").await;
            assert_eq!(status, 200);
            assert!(body.contains("x_total 1"), "{body}");
            assert_eq!(get(addr, "/nowhere").await.0, 404);
            let _ = stop.send(());
            server.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_sends_its_request_is_dropped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            probe_routes(Arc::new(Fixed(true))),
            listener,
            None,
            std::future::pending(),
        ));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        // The server closes the connection once the header-read timeout passes.
        let read = tokio::time::timeout(
            HEADER_READ_TIMEOUT + Duration::from_secs(5),
            stream.read_to_end(&mut buf),
        )
        .await;
        assert!(read.is_ok(), "the connection was not closed");
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_without_being_read() {
        let router = Router::new().route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(router, listener, None, std::future::pending()));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text).await;
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    }
}
