//! Sidecars fail over between control-plane replicas (issue #16, item 3). Two gRPC servers
//! serving one `Arc<ControlPlane>` on one SQLite store stand in for two replicas of a store:
//! same store identity and epoch, so a sidecar moving between them resumes from its versions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::serve_control_plane;
use iamlet::sidecar::{spawn_sidecar, SidecarConfig, SidecarHandle};
use iamlet::snapshot::{AwsManagedCatalog, SnapshotStore, SnapshotVersion};
use iamlet::sync::{run_sync, Applier, Backoff, Liveness, Readiness, SyncConfig, SyncState};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio::sync::watch;

use super::support::{eventually, eventually_within, temp_dir, HANG};

const A: &str = "111122223333";
const B: &str = "444455556666";

/// A control plane on a fresh SQLite store.
fn control_plane(name: &str) -> Arc<ControlPlane> {
    let dir = temp_dir("failover", name);
    let store = SqliteStore::open(&dir.join("iamlet.db"), None).unwrap();
    Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ))
}

/// Tenant `account` with alice and one policy.
fn tenant(cp: &ControlPlane, account: &str) {
    cp.create_tenant(account, None, "test").unwrap();
    cp.call(account, "test", "CreateUser", &json!({"UserName": "alice"}))
        .unwrap();
    change(cp, account, "p0");
}

/// One more version of `account`: a new inline policy of alice's.
fn change(cp: &ControlPlane, account: &str, policy: &str) {
    cp.call(
        account,
        "test",
        "PutUserPolicy",
        &json!({"UserName": "alice", "PolicyName": policy, "PolicyDocument":
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#}),
    )
    .unwrap();
}

/// A loopback port held without listening: connections to it are refused until a replica
/// serves it, and no other test can take it meanwhile.
fn reserve() -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket
}

/// One replica: a gRPC server on its own runtime, so that stopping it cuts every connection
/// and stream at once, as a crash or a deleted pod does.
struct Replica {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Replica {
    fn serve(cp: &Arc<ControlPlane>, socket: TcpSocket, heartbeat: Duration) -> Self {
        let addr = socket.local_addr().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let cp = Arc::clone(cp);
        runtime.spawn(async move {
            let listener = socket.listen(4096).unwrap();
            let _ = serve_control_plane(cp, listener, heartbeat, std::future::pending()).await;
        });
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The backoff of the sidecars of these tests: fast, so the envelope is short.
const FAST: Backoff = Backoff {
    initial: Duration::from_millis(20),
    max: Duration::from_millis(200),
    multiplier: 1.6,
    jitter: 0.2,
};

fn sidecar(urls: String, readiness: Readiness, name: &str) -> (SidecarHandle, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let (handle, _task) = spawn_sidecar(
        &SidecarConfig {
            control_plane: urls,
            readiness,
            state_dir: temp_dir("failover", name),
            sidecar_id: name.into(),
            backoff: FAST,
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown,
    );
    (handle, stop)
}

fn versions(store: &SnapshotStore) -> BTreeMap<String, SnapshotVersion> {
    store
        .versions()
        .into_iter()
        .map(|(t, v)| (t.to_string(), v))
        .collect()
}

/// Which of `replicas` the sidecar's stream is on.
fn on(handle: &SidecarHandle, replicas: &[SocketAddr]) -> Option<usize> {
    let endpoint = handle.sync.endpoint()?;
    replicas
        .iter()
        .position(|a| endpoint.contains(&a.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_fails_over_to_another_replica_resumes_and_stays_ready() {
    let cp = control_plane("one-store");
    tenant(&cp, A);
    tenant(&cp, B);
    let heartbeat = Duration::from_millis(200);
    let mut replicas = [
        Replica::serve(&cp, reserve(), heartbeat),
        Replica::serve(&cp, reserve(), heartbeat),
    ];
    let addrs = [replicas[0].addr, replicas[1].addr];
    let urls = format!("http://{},http://{}", addrs[0], addrs[1]);
    let (handle, _stop) = sidecar(urls, Readiness::Tenants(vec![A.into(), B.into()]), "one");
    // Ready, and both tenants' first versions ACKed (the count follows the apply).
    eventually("the sidecar ready on a replica", || {
        handle.is_ready() && on(&handle, &addrs).is_some() && handle.sync.ack_counts().0 >= 2
    })
    .await;
    let first = on(&handle, &addrs).unwrap();
    let second = 1 - first;

    // A change through the replica the stream is on.
    let before = versions(&handle.store);
    let (acks_before, _) = handle.sync.ack_counts();
    change(&cp, A, "p1");
    eventually("the change through the first replica, ACKed", || {
        versions(&handle.store).get(A) > before.get(A) && handle.sync.ack_counts().0 > acks_before
    })
    .await;
    assert_eq!(on(&handle, &addrs), Some(first));
    assert_eq!(handle.sync.failovers(), 0);

    // Readiness is watched every millisecond from before the stop to the end.
    let unready = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (handle, unready, watching) =
            (handle.clone(), Arc::clone(&unready), Arc::clone(&watching));
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                if !handle.is_ready() {
                    unready.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let (acks, _) = handle.sync.ack_counts();
    let at_stop = versions(&handle.store);
    let opened = handle.sync.streams_opened();
    replicas[first].stop();
    let stopped = Instant::now();
    let moved = eventually("the stream on the second replica", || {
        on(&handle, &addrs) == Some(second) && handle.sync.streams_opened() > opened
    })
    .await;
    // Resumed from its versions: the second replica (same store, same epoch) has nothing to
    // send, so nothing is applied or ACKed again; a full resend would ACK both tenants.
    tokio::time::sleep(heartbeat * 2).await;
    assert_eq!(
        handle.sync.ack_counts().0,
        acks,
        "the second replica resent tenants"
    );
    assert_eq!(versions(&handle.store), at_stop);

    // A new change reaches the sidecar through the second replica.
    change(&cp, A, "p2");
    eventually("the change through the second replica", || {
        versions(&handle.store).get(A) > at_stop.get(A)
    })
    .await;
    let elapsed = stopped.elapsed();
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();

    // The backoff envelope of the move: the spread after a drop (20 initial delays, capped at
    // the maximum), then at most one failed round's delay (max × (1 + jitter)); plus a second
    // for connecting on a loaded 2-core box. The change itself then follows at once.
    let envelope = FAST.max + FAST.max.mul_f64(1.0 + FAST.jitter) + Duration::from_secs(1);
    eprintln!(
        "failover: on the second replica {moved:?} after the first stopped (envelope \
         {envelope:?}); the next change arrived {elapsed:?} after the stop"
    );
    assert!(moved <= envelope, "{moved:?} > {envelope:?}");
    assert!(elapsed <= envelope + heartbeat * 2 + Duration::from_secs(1));
    assert_eq!(on(&handle, &addrs), Some(second));
    assert_eq!(handle.sync.failovers(), 1);
    assert!(
        !unready.load(Ordering::Relaxed),
        "the sidecar was not ready during the failover"
    );
    assert_eq!(handle.sync.ack_counts().1, 0);
    assert_eq!(versions(&handle.store).get(B), at_stop.get(B));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_another_store_cannot_remove_tenants() {
    // The sidecar follows store X (tenant A); the other endpoint serves store Y, which has no
    // tenants. Failing over to Y must not empty the sidecar (issue #13's rule).
    let x = control_plane("store-x");
    let y = control_plane("store-y");
    tenant(&x, A);
    let heartbeat = Duration::from_millis(200);
    let y_socket = reserve();
    let y_addr = y_socket.local_addr().unwrap();
    let mut on_x = Replica::serve(&x, reserve(), heartbeat);
    let addrs = [on_x.addr, y_addr];
    let urls = format!("http://{},http://{}", addrs[0], addrs[1]);
    let (handle, _stop) = sidecar(urls, Readiness::Tenants(vec![A.into()]), "other-store");
    eventually("the sidecar ready on X", || {
        handle.is_ready() && on(&handle, &addrs) == Some(0)
    })
    .await;
    let _on_y = Replica::serve(&y, y_socket, heartbeat);
    let opened = handle.sync.streams_opened();
    on_x.stop();
    eventually("the stream on Y", || {
        on(&handle, &addrs) == Some(1) && handle.sync.streams_opened() > opened
    })
    .await;
    // A few heartbeats on Y: its answers (a removal of A, from another store) are refused.
    tokio::time::sleep(heartbeat * 3).await;
    assert_eq!(on(&handle, &addrs), Some(1));
    assert!(
        versions(&handle.store).contains_key(A),
        "a removal from another store was taken"
    );
    assert!(handle.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_of_1000_clients_moves_to_the_surviving_replica_spread_out() {
    const CLIENTS: usize = 1_000;
    let cp = control_plane("storm");
    tenant(&cp, A);
    let heartbeat = Duration::from_secs(2);
    let second_socket = reserve();
    let second_addr = second_socket.local_addr().unwrap();
    let mut first = Replica::serve(&cp, reserve(), heartbeat);
    let addrs = [first.addr, second_addr];
    // Every client lists both; the second is not listening yet, so those that start there are
    // refused and move to the first: all 1,000 begin on the first.
    let urls = format!("http://{},http://{}", addrs[0], addrs[1]);
    let aws = Arc::new(AwsManagedCatalog::compile());
    let backoff = Backoff::default();
    let (stop, shutdown) = watch::channel(false);
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let store = Arc::new(SnapshotStore::new());
        let applier = Arc::new(
            Applier::new(Arc::clone(&store), None, aws.clone())
                .with_trust(super::support::snapshot_trust()),
        );
        let state = Arc::new(SyncState::default());
        tokio::spawn(run_sync(
            applier,
            SyncConfig {
                endpoint: urls.clone(),
                subscribe: vec!["*".into()],
                sidecar_id: format!("storm-{i}"),
                backoff,
                tls: None,
                credentials: None,
                liveness: Liveness::default(),
            },
            Arc::clone(&state),
            shutdown.clone(),
        ));
        clients.push((store, state));
    }
    let on_first = |s: &SyncState| {
        s.connected()
            && s.endpoint()
                .is_some_and(|e| e.contains(&addrs[0].to_string()))
    };
    // Each client has applied its tenant and counted its ACK (the count follows the apply),
    // so the counts below start from a settled state.
    eventually_within(HANG * 2, "1,000 clients on the first replica", || {
        clients
            .iter()
            .all(|(store, s)| on_first(s) && !store.versions().is_empty() && s.ack_counts().0 >= 1)
    })
    .await;
    let before: Vec<(u64, u64)> = clients
        .iter()
        .map(|(_, s)| (s.attempts().0, s.ack_counts().0))
        .collect();

    let _second = Replica::serve(&cp, second_socket, heartbeat);
    let stopped = Instant::now();
    first.stop();
    let on_second = |s: &SyncState| {
        s.connected()
            && s.endpoint()
                .is_some_and(|e| e.contains(&addrs[1].to_string()))
    };
    let mut back = vec![None; CLIENTS];
    while back.iter().any(Option::is_none) {
        assert!(stopped.elapsed() < HANG * 2, "clients never reconnected");
        for (i, (_, s)) in clients.iter().enumerate() {
            if back[i].is_none() && on_second(s) {
                back[i] = Some(stopped.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut backs: Vec<Duration> = back.iter().flatten().copied().collect();
    backs.sort();
    let all_back = backs.last().copied().unwrap();

    // The first attempt after the stop, per client: the one that reached the second replica,
    // when it was the only one since the stop.
    let mut firsts = Vec::new();
    let mut retried = 0;
    let mut resent = 0;
    for ((_, s), (attempts, acks)) in clients.iter().zip(&before) {
        let (now, last) = s.attempts();
        if now == attempts + 1 {
            firsts.push(last.unwrap().saturating_duration_since(stopped));
        } else {
            retried += 1;
        }
        if s.ack_counts().0 != *acks {
            resent += 1;
        }
        assert_eq!(s.failovers(), 1);
    }
    let _ = stop.send(true);
    firsts.sort();
    let busiest = firsts
        .iter()
        .enumerate()
        .map(|(i, start)| {
            firsts[i..]
                .iter()
                .take_while(|t| **t < *start + Duration::from_millis(100))
                .count()
        })
        .max()
        .unwrap_or(0);
    let bucket = Duration::from_millis(100);
    let mut histogram = BTreeMap::new();
    for t in &firsts {
        *histogram
            .entry(t.as_millis() / bucket.as_millis())
            .or_insert(0usize) += 1;
    }
    let rows: Vec<String> = histogram
        .iter()
        .map(|(b, n)| {
            format!(
                "{:>4}-{:<4} ms {n:>4} {}",
                b * 100,
                (b + 1) * 100,
                "#".repeat(n / 5)
            )
        })
        .collect();
    eprintln!(
        "storm: {CLIENTS} clients all back on the surviving replica {all_back:?} after the stop; \
         p50 {:?}; {retried} needed more than one attempt; {resent} were resent a tenant; \
         busiest 100 ms window {busiest} first attempts ({:.1} %)\nfirst attempts after the stop:\n{}",
        backs.get(CLIENTS / 2).copied().unwrap_or_default(),
        busiest as f64 * 100.0 / firsts.len().max(1) as f64,
        rows.join("\n")
    );
    // Generous bounds for a loaded 2-core box: the spread is two seconds (20 × 100 ms).
    assert!(all_back < Duration::from_secs(15), "{all_back:?}");
    assert!(retried * 20 <= CLIENTS, "{retried} clients needed a retry");
    // Resumed from their versions: no client was sent its tenant again.
    assert_eq!(resent, 0);
    // RELIABILITY T13: no 100 ms window holds more than 15 % of the attempts.
    assert!(
        busiest * 100 <= 15 * firsts.len(),
        "{busiest} of {} in one 100 ms window",
        firsts.len()
    );
}

/// A bad `--control-plane` URL stops the sidecar at start with a message naming it.
#[test]
fn a_bad_control_plane_url_is_refused_at_start() {
    let state = temp_dir("failover", "bad-url");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args([
            "sidecar",
            "--insecure-unsigned-snapshots",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(&state)
        .args(["--control-plane", "http://cp-0:7070,ftp://cp-1:21"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--control-plane: control plane URL `ftp://cp-1:21` is not valid: the scheme must be http or https"),
        "{stderr}"
    );
}
