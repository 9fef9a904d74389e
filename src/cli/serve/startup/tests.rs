use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::super::{
    serve_control_plane, ControlPlaneArgs, ControlPlaneSettings, OpenStore, OpenedStore,
};
use super::*;
use crate::control_plane::{OperatorKey, SqliteStore};
use crate::observe::Probes as _;

/// Delays short enough that a test waits little, long enough that the loop is the one the
/// process runs.
const QUICK: RetryDelays = RetryDelays {
    first: Duration::from_millis(1),
    max: Duration::from_millis(4),
};

fn unreachable(n: usize) -> StoreError {
    StoreError::Unavailable {
        reason: format!("connection refused (attempt {n})"),
    }
}

fn probes() -> Arc<ControlPlaneProbes> {
    let (_, serving) = tokio::sync::watch::channel(false);
    Arc::new(ControlPlaneProbes::new(
        Arc::new(AdminAuth::new(Vec::<OperatorKey>::new(), Vec::new())),
        Arc::new(StoreHealth::new()),
        serving,
    ))
}

#[tokio::test]
async fn a_store_unreachable_three_times_is_retried_and_each_failure_is_the_reason_not_ready() {
    let probes = probes();
    let attempts = Arc::new(AtomicUsize::new(0));
    // What readiness said when each attempt began: the previous attempt's failure.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let opened = until_reachable("cannot reach the store", &probes, QUICK, {
        let (probes, attempts, seen) = (
            Arc::clone(&probes),
            Arc::clone(&attempts),
            Arc::clone(&seen),
        );
        move || {
            let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            seen.lock()
                .push((probes.ready(), probes.not_ready_reason()));
            if n <= 3 {
                Err(unreachable(n))
            } else {
                Ok(n)
            }
        }
    })
    .await;
    assert!(matches!(opened, Ok(4)), "{opened:?}");
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        seen.first(),
        Some(&(false, Some("opening the store".to_owned())))
    );
    for (n, (ready, reason)) in seen.iter().enumerate().skip(1) {
        assert!(!ready, "ready while the store was unreachable");
        assert_eq!(
            reason.as_deref(),
            Some(
                format!(
                    "cannot reach the store: the database is unavailable: connection refused \
                     (attempt {n})"
                )
                .as_str()
            )
        );
    }
}

#[tokio::test]
async fn a_store_that_refuses_otherwise_stops_the_start_without_a_retry() {
    let probes = probes();
    let attempts = Arc::new(AtomicUsize::new(0));
    let opened: Result<(), _> = until_reachable("cannot reach the store", &probes, QUICK, {
        let attempts = Arc::clone(&attempts);
        move || {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::SchemaTooNew { found: 9, known: 1 })
        }
    })
    .await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    let error = opened.expect_err("a newer schema is no reason to wait");
    assert!(
        matches!(error, ServeError::Store(StoreError::SchemaTooNew { .. })),
        "{error}"
    );
    // Exit status 64: the operator must act, a restart would not help.
    assert!(error.is_configuration());
}

#[test]
fn the_store_health_follows_the_last_call_and_counts_unreachable_ones() {
    let health = Arc::new(StoreHealth::new());
    let store = ObservedStore::new(
        Arc::new(SqliteStore::open_in_memory().unwrap()),
        Arc::clone(&health),
    );
    assert!(!health.is_up(), "up before the database answered once");
    store.load_tenants().unwrap();
    assert!(health.is_up());
    health.note::<()>(&Err(unreachable(1)));
    health.note::<()>(&Err(unreachable(2)));
    assert!(!health.is_up());
    assert_eq!(health.unavailable(), 2);
    // A refusal by the database (not a lost connection) shows it answers.
    health.note::<()>(&Err(StoreError::Corrupt {
        account: "111122223333".into(),
        reason: "x".into(),
    }));
    assert!(health.is_up());
    assert_eq!(health.unavailable(), 2);
}

// === the whole start, as `run_control_plane` runs it ===

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iamlet-startup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A port nothing listens on now.
fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn settings(dir: &std::path::Path, listen: [std::net::SocketAddr; 3]) -> ControlPlaneSettings {
    let [api, health, http] = listen;
    let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
        "iamlet".to_owned(),
        "control-plane".to_owned(),
        format!("--data-dir={}", dir.display()),
        format!("--listen={api}"),
        format!("--health-listen={health}"),
        format!("--http-listen={http}"),
    ])
    .unwrap();
    let crate::cli::Command::ControlPlane(args) = cli.command else {
        panic!("not the control-plane command");
    };
    let args: ControlPlaneArgs = *args;
    ControlPlaneSettings::try_from(args).unwrap()
}

async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: \
                 application/x-www-form-urlencoded\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text.get(9..12).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

async fn grpc_health(addr: std::net::SocketAddr) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let status = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_whose_database_is_down_answers_alive_and_not_ready_until_it_loads() {
    let dir = temp_dir("down");
    let [api, health, web] = [free_port(), free_port(), free_port()];
    let settings = settings(&dir, [api, health, web]);
    // The database: unreachable until `up` is set; every attempt counted.
    let up = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let open: OpenStore = Box::new({
        let (up, attempts) = (Arc::clone(&up), Arc::clone(&attempts));
        move || {
            let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if up.load(Ordering::SeqCst) {
                Ok(OpenedStore::Sqlite(
                    Box::new(SqliteStore::open_in_memory()?),
                ))
            } else {
                Err(unreachable(n))
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(serve_control_plane(
        settings,
        open,
        "test store".into(),
        async {
            let _ = stopped.await;
        },
        QUICK,
    ));
    // Waiting: the probes answer as soon as the process runs, the failures go on.
    let mut waited = 0;
    while attempts.load(Ordering::SeqCst) < 3 {
        waited += 1;
        assert!(waited < 1_000, "the store was not retried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(http(web, "GET", "/healthz").await, (200, "ok\n".into()));
    let (status, body) = http(web, "GET", "/readyz").await;
    assert_eq!(status, 503);
    assert!(
        body.starts_with(
            "not ready: cannot reach the store: the database is unavailable: connection refused"
        ),
        "{body}"
    );
    assert_eq!(grpc_health(health).await, ServingStatus::NotServing);
    // The IAM Query API refuses with AWS's retryable code; the admin and sync port is not
    // bound, so clients move to another replica at once.
    let (status, body) = http(web, "POST", "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");
    assert!(tokio::net::TcpStream::connect(api).await.is_err());
    let (_, metrics) = http(web, "GET", "/metrics").await;
    assert!(
        metrics.contains("\niamlet_control_plane_ready 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\niamlet_control_plane_store_up 0\n"),
        "{metrics}"
    );
    assert!(
        !running.is_finished(),
        "the control plane exited while it waited"
    );

    // The database is back: ready, every port served.
    up.store(true, Ordering::SeqCst);
    let mut waited = 0;
    while http(web, "GET", "/readyz").await.0 != 200 {
        waited += 1;
        assert!(waited < 1_000, "not ready after the store came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(http(web, "GET", "/readyz").await, (200, "ready\n".into()));
    assert_eq!(grpc_health(health).await, ServingStatus::Serving);
    assert!(tokio::net::TcpStream::connect(api).await.is_ok());
    // The IAM Query API is the real one now: an unsigned call is refused for its missing
    // signature, not for a store not loaded.
    let (status, body) = http(web, "POST", "/").await;
    assert_ne!(status, 503, "{body}");
    assert!(!body.contains("ServiceUnavailable"), "{body}");
    let (_, metrics) = http(web, "GET", "/metrics").await;
    assert!(
        metrics.contains("\niamlet_control_plane_ready 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\niamlet_control_plane_store_up 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\niamlet_control_plane_tenants 0\n"),
        "{metrics}"
    );
    assert_eq!(http(web, "GET", "/nowhere").await.0, 404);

    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_database_is_down_ends_the_start_cleanly() {
    let dir = temp_dir("stop");
    let [api, health, web] = [free_port(), free_port(), free_port()];
    let settings = settings(&dir, [api, health, web]);
    let attempts = Arc::new(AtomicUsize::new(0));
    let open: OpenStore = Box::new({
        let attempts = Arc::clone(&attempts);
        move || Err(unreachable(attempts.fetch_add(1, Ordering::SeqCst) + 1))
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(serve_control_plane(
        settings,
        open,
        "test store".into(),
        async {
            let _ = stopped.await;
        },
        QUICK,
    ));
    let mut waited = 0;
    while attempts.load(Ordering::SeqCst) < 2 {
        waited += 1;
        assert!(waited < 1_000, "the store was not retried");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(web).await.is_err(),
        "the HTTP edge outlived the stop"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
