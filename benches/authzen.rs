//! One decision over AuthZEN (`POST /access/v1/evaluation`, HTTP/1.1 keep-alive, JSON) beside
//! the same decision over gRPC (`iamlet.v1.Authorizer/Authorize`, HTTP/2): both edges served
//! in process on loopback, clients and server on one single-threaded tokio runtime (so the
//! whole request path shares one core), the same domain `Api` behind both. The decision is
//! the demo tenant's alice reading her own prefix (allowed by `OwnPrefix`), a decision-cache
//! hit after the first, so what differs is the edge: decoding, rendering and the transport.
//!
//! Two figures per edge: the latency of one decision with one request in flight (p50, p99),
//! and the rate with `CONCURRENCY` in flight.
//!
//! Run with `cargo bench --bench authzen` (each phase for `AUTHZEN_BENCH_SECS`, default 5);
//! under `cargo test --benches` each phase runs a moment, after the same outcome checks.
//! Results are in `benches/README.md`.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark whose fixtures do not load, or whose case does not give the outcome \
              it names, has nothing to measure"
)]
#![expect(clippy::print_stdout, reason = "the results are the program's output")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::control_plane::{ControlPlane, SqliteStore, TenantSpec};
use iamlet::directory::IdGenerator;
use iamlet::grpc::AuthorizerService;
use iamlet::proto::v1 as pb;
use iamlet::sidecar::decision_log::DecisionLog;
use iamlet::sidecar::{Api, CacheConfig};
use iamlet::snapshot::{AwsManagedCatalog, SnapshotStore, TenantSnapshot};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const ACCOUNT: &str = "111122223333";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const ACTION: &str = "s3:GetObject";
const OBJECT: &str = "demo-data/home/alice/notes.txt";
/// Requests in flight at once, per edge, for the rate: enough to keep the one core busy.
const CONCURRENCY: usize = 16;

/// The demo tenant's snapshot in a store.
fn fixture() -> Arc<SnapshotStore> {
    let dir = std::env::temp_dir().join(format!("iamlet-bench-authzen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteStore::open(&dir.join("iamlet.db"), None).expect("store");
    let cp = ControlPlane::open(Arc::new(store), IdGenerator::system()).expect("control plane");
    let spec: TenantSpec =
        serde_yaml_ng::from_str(include_str!("../deploy/examples/demo-tenant.yaml"))
            .expect("demo tenant");
    cp.apply_spec(&spec, "bench", false).expect("apply");
    let (tenant, version) = cp.tenant(ACCOUNT).expect("tenant");
    let catalog = AwsManagedCatalog::compile();
    let store = Arc::new(SnapshotStore::new());
    store
        .apply(TenantSnapshot::compile(tenant, version, &catalog).expect("compile"))
        .expect("publish");
    let _ = std::fs::remove_dir_all(&dir);
    store
}

/// The bytes of a keep-alive `POST /access/v1/evaluation`.
fn evaluation_request() -> Vec<u8> {
    let body = serde_json::json!({
        "subject": {"type": "iam_principal", "id": ALICE},
        "action": {"name": ACTION},
        "resource": {"type": "s3_object", "id": OBJECT},
    })
    .to_string();
    format!(
        "POST /access/v1/evaluation HTTP/1.1\r\nhost: pdp.local\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A minimal HTTP/1.1 keep-alive client: one request at a time on one connection.
struct Http {
    stream: BufReader<TcpStream>,
}

impl Http {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// Sends `request`; the status and body of the answer.
    async fn call(&mut self, request: &[u8]) -> (u16, String) {
        self.stream
            .get_mut()
            .write_all(request)
            .await
            .expect("write");
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status");
        let status = line[9..12].parse().expect("status code");
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("length");
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.expect("body");
        (status, String::from_utf8(body).expect("utf-8"))
    }
}

/// Runs `CONCURRENCY` client loops, each returning how many calls it completed; completed
/// calls per second.
async fn rate<F, Fut>(one: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = u64> + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| tokio::task::spawn_local(one(i)))
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("task");
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// p50 and p99 of `samples`, in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.99))
}

fn main() {
    let timed = std::env::args().any(|a| a == "--bench");
    let span = if timed {
        Duration::from_secs(
            std::env::var("AUTHZEN_BENCH_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(5),
        )
    } else {
        Duration::from_millis(200)
    };
    let api = Arc::new(Api::new(
        fixture(),
        &CacheConfig::default(),
        DecisionLog::off(),
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        // The HTTP edge, with the layers `iamlet sidecar` serves it with.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http_addr = listener.local_addr().expect("addr");
        tokio::spawn(iamlet::http::serve(
            iamlet::http::authzen::authzen_routes(Arc::clone(&api), iamlet::http::authzen::PdpBase::FromRequest { tls: false }),
            listener,
            None,
            std::future::pending(),
        ));
        // The gRPC edge, on the sidecar's own accept loop (connection limits, TCP_NODELAY).
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let grpc_addr = listener.local_addr().expect("addr");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AuthorizerService::new(Arc::clone(&api)).into_server())
                .serve_with_incoming(iamlet::net::accept(
                    listener,
                    iamlet::net::ConnectionLimits::default(),
                )),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let grpc = pb::authorizer_client::AuthorizerClient::new(channel);
        let grpc_request = pb::AuthorizeRequest {
            caller: Some(pb::authorize_request::Caller::PrincipalArn(ALICE.into())),
            action: ACTION.into(),
            resource: format!("arn:aws:s3:::{OBJECT}"),
            ..pb::AuthorizeRequest::default()
        };
        let http_request = Arc::new(evaluation_request());

        // Each edge's outcome is checked before it is timed: a refusal or a deny must never
        // be reported as the cost of an allow.
        let (status, body) = Http::connect(http_addr).await.call(&http_request).await;
        assert_eq!(status, 200, "AuthZEN evaluation: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(answer["decision"], true, "{body}");
        assert_eq!(answer["context"]["reason_admin"]["statement"]["sid"], "OwnPrefix");
        let answer = grpc
            .clone()
            .authorize(grpc_request.clone())
            .await
            .expect("grpc Authorize")
            .into_inner();
        assert_eq!(answer.decision, pb::Decision::Allow as i32, "grpc Authorize");

        // Latency: one request in flight.
        let mut client = Http::connect(http_addr).await;
        let mut samples = Vec::new();
        let started = Instant::now();
        while started.elapsed() < span {
            let t = Instant::now();
            let (status, _) = client.call(&http_request).await;
            samples.push(t.elapsed());
            assert_eq!(status, 200);
        }
        let (http_p50, http_p99) = percentiles(samples);
        let mut client = grpc.clone();
        let mut samples = Vec::new();
        let started = Instant::now();
        while started.elapsed() < span {
            let t = Instant::now();
            client
                .authorize(grpc_request.clone())
                .await
                .expect("grpc Authorize");
            samples.push(t.elapsed());
        }
        let (grpc_p50, grpc_p99) = percentiles(samples);

        // Rate: CONCURRENCY in flight.
        let http_rate = rate(|_| {
            let request = Arc::clone(&http_request);
            async move {
                let mut client = Http::connect(http_addr).await;
                let (started, mut n) = (Instant::now(), 0);
                while started.elapsed() < span {
                    let (status, _) = client.call(&request).await;
                    assert_eq!(status, 200);
                    n += 1;
                }
                n
            }
        })
        .await;
        let grpc_rate = rate(|_| {
            let (mut client, request) = (grpc.clone(), grpc_request.clone());
            async move {
                let (started, mut n) = (Instant::now(), 0);
                while started.elapsed() < span {
                    client
                        .authorize(request.clone())
                        .await
                        .expect("grpc Authorize");
                    n += 1;
                }
                n
            }
        })
        .await;
        println!(
            "authzen: one allowed decision on one core, {:.1} s per phase",
            span.as_secs_f64()
        );
        println!("                                    p50 (µs)  p99 (µs)  rate ({CONCURRENCY} in flight)");
        println!(
            "  AuthZEN (HTTP/1.1 keep-alive, JSON): {http_p50:>7.1}  {http_p99:>8.1}  {http_rate:>8.0} /s"
        );
        println!(
            "  Authorize (gRPC, HTTP/2):           {grpc_p50:>7.1}  {grpc_p99:>8.1}  {grpc_rate:>8.0} /s"
        );
        println!(
            "  AuthZEN / gRPC:                     {:>7.2}  {:>8.2}  {:>8.2}",
            http_p50 / grpc_p50,
            http_p99 / grpc_p99,
            http_rate / grpc_rate
        );
    });
}
