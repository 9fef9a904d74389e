//! Running a sidecar as a platform team does: health and readiness, metrics, reflection,
//! draining, and the staleness policy, over real sockets on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::{serve_control_plane, serve_health, serve_sidecar, SIDECAR_SERVICES};
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{
    spawn_sidecar, SidecarConfig, SidecarHandle, SidecarProbes, StalenessPolicy,
};
use iamlet::sync::{Backoff, Readiness};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const A: &str = "111122223333";
const B: &str = "444455556666";

fn temp_dir(name: &str) -> std::path::PathBuf {
    super::support::temp_dir("ops", name)
}

use super::support::eventually;

struct Running {
    control_plane: Arc<ControlPlane>,
    cp_runtime: Option<tokio::runtime::Runtime>,
    handle: SidecarHandle,
    local: SocketAddr,
    health: SocketAddr,
    metrics: SocketAddr,
}

/// A control plane on its own runtime (so that killing it cuts every stream), and a sidecar
/// with its local API, health port and metrics port.
async fn start(name: &str, readiness: Readiness, staleness: StalenessPolicy) -> Running {
    let dir = temp_dir(name);
    let store = SqliteStore::open(&dir.join("iamlet.db"), None).unwrap();
    let control_plane = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let cp_addr = std_listener.local_addr().unwrap();
    let cp_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cp = Arc::clone(&control_plane);
    cp_runtime.spawn(async move {
        let listener = TcpListener::from_std(std_listener).unwrap();
        let _ = serve_control_plane(
            cp,
            listener,
            Duration::from_millis(100),
            std::future::pending(),
        )
        .await;
    });
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    std::mem::forget(_stop);
    let (handle, _stream) = spawn_sidecar(
        &SidecarConfig {
            control_plane: format!("http://{cp_addr}"),
            readiness,
            state_dir: dir.join("sidecar"),
            sidecar_id: format!("ops-{name}"),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(100),
                multiplier: 1.5,
                jitter: 0.1,
            },
            staleness,
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown,
    );
    let bind = || async { TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let (local, health, metrics) = (bind().await, bind().await, bind().await);
    let addrs = (
        local.local_addr().unwrap(),
        health.local_addr().unwrap(),
        metrics.local_addr().unwrap(),
    );
    tokio::spawn(serve_sidecar(handle.clone(), local, std::future::pending()));
    tokio::spawn(serve_health(
        SIDECAR_SERVICES,
        handle.serving(),
        health,
        std::future::pending(),
    ));
    tokio::spawn(iamlet::http::serve(
        iamlet::http::probe_routes(Arc::new(SidecarProbes(handle.clone()))),
        metrics,
        None,
        std::future::pending(),
    ));
    Running {
        control_plane,
        cp_runtime: Some(cp_runtime),
        handle,
        local: addrs.0,
        health: addrs.1,
        metrics: addrs.2,
    }
}

impl Running {
    fn call(
        &self,
        tenant: &str,
        action: &str,
        params: &serde_json::Value,
    ) -> iamlet::snapshot::SnapshotVersion {
        self.control_plane
            .call(tenant, "test", action, params)
            .unwrap()
            .1
    }

    /// Waits until the sidecar serves `tenant` at `version` or later.
    async fn synced(&self, tenant: &str, version: iamlet::snapshot::SnapshotVersion) {
        eventually("the sidecar to apply the change", || {
            self.handle
                .store
                .version(tenant)
                .is_some_and(|v| v >= version)
        })
        .await;
    }

    /// A tenant with alice, allowed s3:GetObject on reports; returns its version.
    fn tenant(&self, account: &str) -> iamlet::snapshot::SnapshotVersion {
        self.control_plane
            .create_tenant(account, None, "test")
            .unwrap();
        self.call(account, "CreateUser", &json!({"UserName": "alice"}));
        self.call(
            account,
            "PutUserPolicy",
            &json!({"UserName": "alice", "PolicyName": "p", "PolicyDocument":
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#}),
        )
    }

    async fn health_status(&self, addr: SocketAddr, service: &str) -> ServingStatus {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let status = client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        ServingStatus::try_from(status).unwrap()
    }

    async fn http(&self, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.metrics).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (code, body)
    }

    async fn authorize(&self, account: &str) -> Result<pb::AuthorizeResponse, tonic::Status> {
        let mut client =
            pb::authorizer_client::AuthorizerClient::connect(format!("http://{}", self.local))
                .await
                .unwrap();
        client
            .authorize(pb::AuthorizeRequest {
                caller: Some(pb::authorize_request::Caller::PrincipalArn(format!(
                    "arn:aws:iam::{account}:user/alice"
                ))),
                action: "s3:GetObject".into(),
                resource: "arn:aws:s3:::reports/q3.csv".into(),
                ..pb::AuthorizeRequest::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    fn kill_control_plane(&mut self) {
        if let Some(rt) = self.cp_runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Running {
    /// The control plane's runtime cannot be dropped inside the test's runtime: shut it down
    /// in the background.
    fn drop(&mut self) {
        self.kill_control_plane();
    }
}

async fn wait_health(r: &Running, addr: SocketAddr, want: ServingStatus) {
    let started = Instant::now();
    loop {
        if r.health_status(addr, "").await == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "health never became {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_required_tenants_and_draining() {
    let r = start(
        "readiness",
        Readiness::Tenants(vec![A.into()]),
        StalenessPolicy::default(),
    )
    .await;
    // Not ready before the required tenant exists: gRPC health on both ports, and /readyz.
    assert_eq!(
        r.health_status(r.health, "").await,
        ServingStatus::NotServing
    );
    assert_eq!(
        r.health_status(r.local, "iamlet.v1.Authorizer").await,
        ServingStatus::NotServing
    );
    assert_eq!(r.http("/readyz").await.0, 503);
    assert_eq!(r.http("/healthz").await.0, 200, "alive while not ready");
    // A required tenant not loaded yet is UNAVAILABLE (retry), not NOT_FOUND.
    let early = r.authorize(A).await.unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");

    let version = r.tenant(A);
    r.synced(A, version).await;
    wait_health(&r, r.health, ServingStatus::Serving).await;
    assert_eq!(r.health_status(r.local, "").await, ServingStatus::Serving);
    assert_eq!(r.http("/readyz").await.0, 200);
    assert_eq!(
        r.authorize(A).await.unwrap().decision,
        pb::Decision::Allow as i32
    );

    // Draining: not ready again, while calls in flight still succeed.
    r.handle.start_draining();
    assert_eq!(
        r.health_status(r.health, "").await,
        ServingStatus::NotServing
    );
    assert_eq!(r.http("/readyz").await.0, 503);
    assert_eq!(
        r.authorize(A).await.unwrap().decision,
        pb::Decision::Allow as i32,
        "a draining sidecar still answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_exposition_with_the_listed_series() {
    let r = start(
        "metrics",
        Readiness::Tenants(vec![A.into()]),
        StalenessPolicy::default(),
    )
    .await;
    let version = r.tenant(A);
    r.synced(A, version).await;
    for _ in 0..3 {
        r.authorize(A).await.unwrap();
    }
    let _ = r.authorize(B).await.unwrap_err();
    let (code, text) = r.http("/metrics").await;
    assert_eq!(code, 200);
    for series in [
        "iamlet_request_duration_seconds_bucket{method=\"Authorize\",result=\"allow\",le=\"+Inf\"} 3",
        "iamlet_request_duration_seconds_count{method=\"Authorize\",result=\"error\"} 1",
        "iamlet_decision_cache_hits_total 2",
        "iamlet_decision_cache_misses_total 1",
        "iamlet_credential_cache_hits_total",
        &format!("iamlet_tenant_snapshot_seq{{tenant=\"{A}\"}}"),
        &format!("iamlet_tenant_staleness_seconds{{tenant=\"{A}\"}}"),
        "iamlet_control_plane_connected 1",
        "iamlet_sync_acks_total",
        "iamlet_sync_nacks_total 0",
        "iamlet_decision_log_dropped_total 0",
        "iamlet_stale_fail_open_total 0",
        "iamlet_ready 1",
    ] {
        assert!(text.contains(series), "missing `{series}` in\n{text}");
    }
    // The exposition format: HELP and TYPE before each family's samples, samples are
    // `name{labels} value` with a number, histogram buckets are cumulative.
    let mut typed = std::collections::HashSet::new();
    let mut last_bucket: Option<(String, f64)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_owned()), "family typed twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.contains(*f))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if name.ends_with("_bucket") {
            let labels = series.split(",le=").next().unwrap().to_owned();
            if let Some((previous, count)) = &last_bucket {
                if *previous == labels {
                    assert!(value >= *count, "buckets must be cumulative: {line}");
                }
            }
            last_bucket = Some((labels, value));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    let r = start("reflection", Readiness::All, StalenessPolicy::default()).await;
    // Each server lists exactly what it serves: the local API its three services, the health
    // port health alone, and neither the control plane's Admin or Sync.
    let local_api: &[&str] = &[
        "iamlet.v1.Authorizer",
        "iamlet.v1.SecurityTokenService",
        "iamlet.v1.SidecarStatus",
        "grpc.health.v1.Health",
    ];
    for (addr, served) in [
        (r.local, local_api),
        (r.health, &["grpc.health.v1.Health"][..]),
    ] {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = responses.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a service list: {response:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for wanted in served {
            assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
        }
        for unserved in local_api
            .iter()
            .chain(&["iamlet.v1.Admin", "iamlet.v1.Sync"])
        {
            if !served.contains(unserved) {
                assert!(
                    !names.iter().any(|n| n == unserved),
                    "{unserved} in {names:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_snapshots_serve_until_the_bound_then_fail_closed_but_for_fail_open_tenants() {
    let mut r = start(
        "stale",
        Readiness::Tenants(vec![A.into(), B.into()]),
        StalenessPolicy {
            max_serve_stale: Duration::from_millis(1500),
            max_issue_stale: Duration::from_millis(500),
            fail_open_tenants: vec![B.into()],
        },
    )
    .await;
    let (a, b) = (r.tenant(A), r.tenant(B));
    r.synced(A, a).await;
    r.synced(B, b).await;
    assert!(r.authorize(A).await.is_ok());

    r.kill_control_plane();
    let cut = Instant::now();
    // Within the bound the last good snapshot keeps serving.
    assert_eq!(
        r.authorize(A).await.unwrap().decision,
        pb::Decision::Allow as i32
    );
    // Past it: A fails closed with UNAVAILABLE (StalePolicy); B, which opted in, goes on and is
    // counted.
    let started = Instant::now();
    let refused = loop {
        match r.authorize(A).await {
            Err(status) => break status,
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "never failed closed"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(
        cut.elapsed() >= Duration::from_millis(1400),
        "not before the bound"
    );
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert_eq!(
        iamlet::grpc::aws_error_code(&refused).as_deref(),
        Some("StalePolicy")
    );
    assert_eq!(
        r.authorize(B).await.unwrap().decision,
        pb::Decision::Allow as i32
    );
    let (_, metrics) = r.http("/metrics").await;
    assert!(
        metrics.contains("iamlet_stale_fail_open_total 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("iamlet_stale_refusals_total 0"),
        "{metrics}"
    );
    assert!(metrics.contains("iamlet_control_plane_connected 0"));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unix_socket_is_private_and_replaces_only_a_stale_socket() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("uds");
    let path = dir.join("iamlet.sock");
    let first = iamlet::grpc::bind_uds(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    drop(first);
    // The socket file of a previous run is still there: it is replaced.
    assert!(path.exists());
    let second = iamlet::grpc::bind_uds(&path).unwrap();
    assert!(tokio::net::UnixStream::connect(&path).await.is_ok());
    drop(second);
    // Anything else at that path is left alone.
    let file = dir.join("not-a-socket");
    std::fs::write(&file, "data").unwrap();
    let err = iamlet::grpc::bind_uds(&file).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

/// SIGTERM under load: the sidecar stops reporting ready, then stops its server gracefully;
/// every call sent before the shutdown began completes, and none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_fails_no_call_in_flight() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let r = start(
        "drain",
        Readiness::Tenants(vec![A.into()]),
        StalenessPolicy::default(),
    )
    .await;
    let version = r.tenant(A);
    r.synced(A, version).await;
    // A second local API whose shutdown the test controls.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_sidecar(r.handle.clone(), listener, async {
        let _ = stopped.await;
    }));
    let shutting_down = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let shutting_down = Arc::clone(&shutting_down);
        load.push(tokio::spawn(async move {
            let mut client =
                pb::authorizer_client::AuthorizerClient::connect(format!("http://{addr}"))
                    .await
                    .unwrap();
            let (mut before, mut failed_before, mut after) = (0u32, Vec::new(), 0u32);
            for i in 0.. {
                let sent_during_shutdown = shutting_down.load(Ordering::SeqCst);
                let result = client
                    .authorize(pb::AuthorizeRequest {
                        caller: Some(pb::authorize_request::Caller::PrincipalArn(format!(
                            "arn:aws:iam::{A}:user/alice"
                        ))),
                        action: "s3:GetObject".into(),
                        resource: format!("arn:aws:s3:::reports/{i}.csv"),
                        ..pb::AuthorizeRequest::default()
                    })
                    .await;
                if sent_during_shutdown {
                    after += 1;
                    if result.is_err() || after > 200 {
                        break;
                    }
                } else {
                    before += 1;
                    if let Err(status) = result {
                        failed_before.push(status);
                    }
                }
            }
            (before, failed_before)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.handle.start_draining();
    assert_eq!(r.http("/readyz").await.0, 503, "not ready while draining");
    shutting_down.store(true, Ordering::SeqCst);
    // A client reads the flag, then sends: a call that read `false` an instant before the
    // flag was set could otherwise reach the server after its GOAWAY, which refuses new
    // streams by design. Every call counted as "before" is on the wire well before the stop.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stop.send(());
    let mut total = 0;
    for task in load {
        let (before, failed) = task.await.unwrap();
        assert!(failed.is_empty(), "calls in flight failed: {failed:?}");
        total += before;
    }
    assert!(
        total > 50,
        "the load ran ({total} calls before the shutdown)"
    );
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops within its drain time")
        .unwrap()
        .unwrap();
}
