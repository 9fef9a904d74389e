//! Resilience, end to end in process: a lost database never empties a sidecar
//! (item 1), staleness survives a restart (item 2), a dead connection is noticed (item 3), and
//! a caller cannot supply the principal's own condition keys (item 12).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iamlet::control_plane::{ControlPlane, DataDirOptions, SqliteStore, StoreError, IDENTITY_FILE};
use iamlet::directory::IdGenerator;
use iamlet::grpc::{aws_error_code, serve_control_plane, serve_sidecar};
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{spawn_sidecar, SidecarConfig, SidecarHandle, StalenessPolicy};
use iamlet::sync::{Backoff, Liveness, Readiness};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::support::{eventually, temp_dir};

const A: &str = "111122223333";
const B: &str = "444455556666";

/// A control plane on its own runtime, so that killing it cuts every stream as a crash would.
struct Cp {
    control_plane: Arc<ControlPlane>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Cp {
    /// Serves `store` on `addr` (retrying while a killed predecessor releases the port).
    fn start(store: SqliteStore, addr: SocketAddr, heartbeat: Duration) -> (Self, SocketAddr) {
        let control_plane = Arc::new(super::support::signed(
            ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
        ));
        let started = Instant::now();
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(started.elapsed() < super::support::HANG, "bind {addr}: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        listener.set_nonblocking(true).unwrap();
        let bound = listener.local_addr().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let cp = Arc::clone(&control_plane);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            let _ = serve_control_plane(cp, listener, heartbeat, std::future::pending()).await;
        });
        let cp = Self {
            control_plane,
            runtime: Some(runtime),
        };
        (cp, bound)
    }

    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Tenant `account` with alice, allowed s3:GetObject on reports/*.
    fn tenant(&self, account: &str) {
        let cp = &self.control_plane;
        cp.create_tenant(account, None, "test").unwrap();
        cp.call(account, "test", "CreateUser", &json!({"UserName": "alice"}))
            .unwrap();
        cp.call(
            account,
            "test",
            "PutUserPolicy",
            &json!({"UserName": "alice", "PolicyName": "p", "PolicyDocument":
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#}),
        )
        .unwrap();
    }
}

impl Drop for Cp {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Sidecar {
    handle: SidecarHandle,
    local: SocketAddr,
    stop: watch::Sender<bool>,
}

async fn sidecar(
    endpoint: SocketAddr,
    readiness: Readiness,
    state: &Path,
    staleness: StalenessPolicy,
    liveness: Liveness,
) -> Sidecar {
    let (stop, shutdown) = watch::channel(false);
    let (handle, _task) = spawn_sidecar(
        &SidecarConfig {
            control_plane: format!("http://{endpoint}"),
            readiness,
            state_dir: state.to_owned(),
            sidecar_id: "resilience".into(),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(100),
                multiplier: 1.6,
                jitter: 0.2,
            },
            staleness,
            liveness,
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown.clone(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let mut until = shutdown;
    tokio::spawn(serve_sidecar(handle.clone(), listener, async move {
        let _ = until.wait_for(|s| *s).await;
    }));
    Sidecar {
        handle,
        local,
        stop,
    }
}

impl Sidecar {
    async fn authorize(
        &self,
        caller: &str,
        context: &[(&str, &str)],
    ) -> Result<pb::AuthorizeResponse, tonic::Status> {
        let mut client =
            pb::authorizer_client::AuthorizerClient::connect(format!("http://{}", self.local))
                .await
                .unwrap();
        client
            .authorize(pb::AuthorizeRequest {
                caller: Some(pb::authorize_request::Caller::PrincipalArn(caller.into())),
                action: "s3:GetObject".into(),
                resource: "arn:aws:s3:::reports/q3.csv".into(),
                context: context
                    .iter()
                    .map(|(k, v)| {
                        (
                            (*k).to_owned(),
                            pb::ContextValue {
                                value: Some(pb::context_value::Value::StringValue((*v).into())),
                            },
                        )
                    })
                    .collect(),
                ..pb::AuthorizeRequest::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn allows_alice(&self, account: &str) -> bool {
        let alice = format!("arn:aws:iam::{account}:user/alice");
        self.authorize(&alice, &[]).await.unwrap().decision == pb::Decision::Allow as i32
    }

    async fn status(&self) -> pb::StatusResponse {
        let mut client = pb::sidecar_status_client::SidecarStatusClient::connect(format!(
            "http://{}",
            self.local
        ))
        .await
        .unwrap();
        client
            .status(pb::StatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }
}

fn lenient() -> StalenessPolicy {
    StalenessPolicy::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item1_a_lost_database_never_empties_a_sidecar() {
    let root = temp_dir("resilience", "item1");
    let data = root.join("data");
    let state = root.join("sidecar");
    let key = data.join("secrets.key");
    let open = |new_store: bool| {
        SqliteStore::open_data_dir(
            &data,
            &DataDirOptions {
                new_store,
                initialized_by: vec![key.clone()]
                    .into_iter()
                    .filter(|k| k.exists())
                    .collect(),
                ..DataDirOptions::default()
            },
        )
    };
    let (mut cp, addr) = Cp::start(
        open(false).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(100),
    );
    std::fs::write(&key, b"the sealing key stands for an initialized directory").unwrap();
    cp.tenant(A);
    let first_store = cp.control_plane.store_identity();
    let s = sidecar(addr, Readiness::All, &state, lenient(), Liveness::default()).await;
    eventually("tenant A at the sidecar", || {
        s.handle.store.version(A).is_some()
    })
    .await;
    let held = s.handle.store.version(A).unwrap();

    // The operator loses the database: the control plane refuses to start without a word
    // from them, and names the way out.
    cp.kill();
    for name in ["iamlet.db", "iamlet.db-wal", "iamlet.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    let refused = open(false).unwrap_err();
    assert!(
        matches!(refused, StoreError::MissingDatabase { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("--new-store"), "{refused}");
    assert!(data.join(IDENTITY_FILE).exists());

    // They start a new, empty store deliberately: it has a new identity and epoch, and every
    // tenant the sidecar holds is "removed" by it. The sidecar keeps them all.
    let (cp, _) = Cp::start(open(true).unwrap(), addr, Duration::from_millis(100));
    let second_store = cp.control_plane.store_identity();
    assert_ne!(second_store.id, first_store.id);
    assert_ne!(second_store.epoch, first_store.epoch);
    assert!(cp.control_plane.list_tenants().is_empty());
    // The new store signs with a key of its own (issue #20): the operator hands its public
    // key to the sidecar, which restarts with it; tenants of the old store keep loading from
    // their files, signed by the old store's key, which it still trusts.
    s.stop.send_replace(true);
    let s = sidecar(addr, Readiness::All, &state, lenient(), Liveness::default()).await;
    // A tenant created in the new store arrives: the removals (sent before it) were seen.
    cp.tenant(B);
    eventually("tenant B from the new store", || {
        s.handle.store.version(B).is_some()
    })
    .await;
    assert_eq!(
        s.handle.store.version(A),
        Some(held),
        "A must not be removed"
    );
    assert!(state.join(format!("tenant-{A}.json")).exists());
    assert!(s.allows_alice(A).await);

    // Re-created in the new store, A moves to it (its versions are the new store's).
    cp.tenant(A);
    let moved = cp.control_plane.tenant(A).unwrap().1;
    eventually("A from the new store", || {
        s.handle.store.version(A) == Some(moved)
    })
    .await;
    // ... and from then on the new store may remove it.
    cp.control_plane.delete_tenant(A, "test").unwrap();
    eventually("A removed by its own store", || {
        s.handle.store.version(A).is_none()
    })
    .await;
    assert!(!state.join(format!("tenant-{A}.json")).exists());
    s.stop.send_replace(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_a_restarted_sidecar_measures_staleness_from_its_last_contact() {
    let root = temp_dir("resilience", "item2");
    let state = root.join("sidecar");
    let (mut cp, addr) = Cp::start(
        SqliteStore::open(&root.join("iamlet.db"), None).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(100),
    );
    cp.tenant(A);
    let policy = StalenessPolicy {
        max_serve_stale: Duration::from_millis(1500),
        max_issue_stale: Duration::from_millis(500),
        fail_open_tenants: Vec::new(),
    };
    let tenants = Readiness::Tenants(vec![A.into()]);
    let first = sidecar(
        addr,
        tenants.clone(),
        &state,
        policy.clone(),
        Liveness::default(),
    )
    .await;
    eventually("tenant A", || first.handle.store.version(A).is_some()).await;
    // Long enough that the last contact was persisted (at most one write a second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(first.allows_alice(A).await);

    // The control plane goes away; the sidecar crashes and is restarted, again and again.
    cp.kill();
    first.stop.send_replace(true);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let second = sidecar(addr, tenants, &state, policy, Liveness::default()).await;
    eventually("tenant A from disk", || {
        second.handle.store.version(A).is_some()
    })
    .await;
    // At once, not after another bound: the last contact is older than the bound.
    let refused = second
        .authorize(&format!("arn:aws:iam::{A}:user/alice"), &[])
        .await
        .unwrap_err();
    assert_eq!(
        aws_error_code(&refused).as_deref(),
        Some("StalePolicy"),
        "{refused:?}"
    );
    let status = second.status().await;
    assert!(!status.connected);
    assert!(
        status.staleness_ms >= 1500,
        "StalenessMs must show why decisions are refused: {}",
        status.staleness_ms
    );
    second.stop.send_replace(true);
}

/// A TCP proxy that can stop forwarding on its open connections without closing them: what a
/// half-open connection (a peer gone without FIN or RST) looks like from each side.
struct Proxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    links: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            links: Arc::default(),
        };
        let (accepted, links) = (Arc::clone(&proxy.accepted), Arc::clone(&proxy.links));
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(upstream).await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let cut = Arc::new(AtomicBool::new(false));
                links.lock().unwrap().push(Arc::clone(&cut));
                let (down_read, down_write) = down.into_split();
                let (up_read, up_write) = up.into_split();
                tokio::spawn(pipe(down_read, up_write, Arc::clone(&cut)));
                tokio::spawn(pipe(up_read, down_write, cut));
            }
        });
        proxy
    }

    /// Every open connection stops forwarding, both ways, and stays open; new ones work.
    fn blackhole_open_connections(&self) {
        for cut in self.links.lock().unwrap().drain(..) {
            cut.store(true, Ordering::SeqCst);
        }
    }
}

/// Copies `from` to `to` until `cut`, then reads and drops everything, never closing.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                if cut.load(Ordering::SeqCst) {
                    // Even a close is swallowed: the other side must find out by itself.
                    std::future::pending::<()>().await;
                }
                return;
            }
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Cuts the sidecar's connection without closing it, and measures how long the sidecar takes
/// to notice (a new connection through the proxy), checking that it serves throughout.
async fn half_open(name: &str, liveness: Liveness, heartbeat: Duration) -> Duration {
    let root = temp_dir("resilience", name);
    let (cp, upstream) = Cp::start(
        SqliteStore::open(&root.join("iamlet.db"), None).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        heartbeat,
    );
    cp.tenant(A);
    let proxy = Proxy::start(upstream).await;
    let s = sidecar(
        proxy.addr,
        Readiness::All,
        &root.join("sidecar"),
        lenient(),
        liveness,
    )
    .await;
    eventually("tenant A", || s.handle.store.version(A).is_some()).await;
    assert!(s.handle.sync.connected());
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 1);

    proxy.blackhole_open_connections();
    let cut = Instant::now();
    let mut calls = 0;
    while proxy.accepted.load(Ordering::SeqCst) < 2 {
        // Serving throughout: the last good snapshot answers while the link is dead.
        assert!(
            s.allows_alice(A).await,
            "call {calls} refused while reconnecting"
        );
        calls += 1;
        assert!(
            cut.elapsed() < super::support::HANG,
            "the dead connection was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let noticed = cut.elapsed();
    assert!(s.handle.sync.dead_connections() >= 1);
    // The new connection works: a change made now arrives.
    cp.tenant(B);
    eventually("tenant B over the new connection", || {
        s.handle.store.version(B).is_some()
    })
    .await;
    assert!(s.allows_alice(A).await);
    s.stop.send_replace(true);
    noticed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_a_half_open_connection_is_noticed_by_keepalive() {
    // The idle bound far away: only the keepalive PING can notice.
    let liveness = Liveness {
        keepalive_interval: Duration::from_millis(400),
        keepalive_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_secs(600),
    };
    let noticed = half_open("item3-keepalive", liveness, Duration::from_millis(100)).await;
    // Interval + timeout, with a second of slack for a loaded CI box.
    assert!(
        noticed < Duration::from_millis(1800),
        "noticed after {noticed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_a_silent_stream_is_dropped_after_the_idle_bound() {
    // Keepalive far away: only the idle bound (a few heartbeats) can notice.
    let liveness = Liveness {
        keepalive_interval: Duration::from_secs(600),
        keepalive_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_millis(500),
    };
    let noticed = half_open("item3-idle", liveness, Duration::from_millis(100)).await;
    assert!(
        noticed < Duration::from_millis(1500),
        "noticed after {noticed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_a_caller_cannot_supply_the_principals_own_condition_keys() {
    // Policies that read aws:PrincipalTag/*, aws:username and aws:PrincipalArn: the values
    // must come from the principal, never from the request's context.
    let root = temp_dir("resilience", "item12");
    let (cp, addr) = Cp::start(
        SqliteStore::open(&root.join("iamlet.db"), None).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(100),
    );
    let c = &cp.control_plane;
    c.create_tenant(A, None, "test").unwrap();
    let call = |action: &str, params: serde_json::Value| {
        c.call(A, "test", action, &params).unwrap();
    };
    let allow_if = |key: &str, value: &str| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*",
            "Condition": {"StringEquals": {key: value}}}]})
        .to_string()
    };
    // alice (no tags) and bob (team=admins) share a policy on the team tag; alice also has
    // one on her ARN being bob's.
    for user in ["alice", "bob"] {
        call("CreateUser", json!({"UserName": user}));
        call(
            "PutUserPolicy",
            json!({"UserName": user, "PolicyName": "by-tag",
                "PolicyDocument": allow_if("aws:PrincipalTag/team", "admins")}),
        );
    }
    call(
        "TagUser",
        json!({"UserName": "bob", "Tags": [{"Key": "team", "Value": "admins"}]}),
    );
    call(
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "by-arn",
            "PolicyDocument": allow_if("aws:PrincipalArn", &format!("arn:aws:iam::{A}:user/bob"))}),
    );
    // A role whose sessions are allowed only for the user name bob: a role session has no
    // aws:username at all.
    call(
        "CreateRole",
        json!({"RoleName": "app", "AssumeRolePolicyDocument": json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{A}:root")},
            "Action": "sts:AssumeRole"}]}).to_string()}),
    );
    call(
        "PutRolePolicy",
        json!({"RoleName": "app", "PolicyName": "by-name",
            "PolicyDocument": allow_if("aws:username", "bob")}),
    );
    let s = sidecar(
        addr,
        Readiness::All,
        &root.join("sidecar"),
        lenient(),
        Liveness::default(),
    )
    .await;
    eventually("the tenant", || s.handle.store.version(A).is_some()).await;
    let decide = |caller: String, context: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let context: Vec<(&str, &str)> =
                context.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.authorize(&caller, &context).await.unwrap().decision
        }
    };
    let (allow, deny) = (
        pb::Decision::Allow as i32,
        pb::Decision::ImplicitDeny as i32,
    );
    let user = |name: &str| format!("arn:aws:iam::{A}:user/{name}");
    let session = format!("arn:aws:sts::{A}:assumed-role/app/s1");
    // The policies work: bob's own tag allows him.
    assert_eq!(decide(user("bob"), vec![]).await, allow);
    // alice claiming bob's tag, ARN or (as a role session) user name: not allowed.
    for (caller, key, value) in [
        (user("alice"), "aws:PrincipalTag/team", "admins".to_owned()),
        (user("alice"), "aws:principaltag/TEAM", "admins".to_owned()),
        (user("alice"), "aws:PrincipalArn", user("bob")),
        (session.clone(), "aws:username", "bob".to_owned()),
    ] {
        assert_eq!(
            decide(caller.clone(), vec![(key, value.clone())]).await,
            deny,
            "{caller} claiming {key}={value} must not be allowed"
        );
    }
    s.stop.send_replace(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_no_root_key_or_password_hash_is_in_the_bytes_the_control_plane_sends() {
    // What goes on the wire, read by a bare Watch client (no sidecar to strip anything): the
    // root user's secret, its key id and a console password hash are nowhere in it.
    let root = temp_dir("resilience", "item12-wire");
    let (cp, addr) = Cp::start(
        SqliteStore::open(&root.join("iamlet.db"), None).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(100),
    );
    let c = &cp.control_plane;
    let (_, (root_key_id, root_secret)) = c.create_tenant_with_root(A, None, "test").unwrap();
    c.call(A, "test", "CreateUser", &json!({"UserName": "alice"}))
        .unwrap();
    c.call(
        A,
        "test",
        "CreateLoginProfile",
        &json!({"UserName": "alice", "Password": "Correct-Horse-Battery-9"}),
    )
    .unwrap();
    let held = c.tenant(A).unwrap().0;
    let hash = serde_json::to_value(&held.users["alice"].login_profile)
        .unwrap()
        .to_string();
    assert!(hash.len() > 20, "alice has a password hash: {hash}");
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the root secret", root_secret.expose().as_bytes().to_vec()),
        ("the root key id", root_key_id.as_bytes().to_vec()),
        ("the password", b"Correct-Horse-Battery-9".to_vec()),
    ];
    // The hash's distinctive part: its longest string value (the digest).
    let digest = serde_json::to_value(&held.users["alice"].login_profile)
        .unwrap()
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .max_by_key(String::len)
        .unwrap();
    assert!(digest.len() >= 16, "{digest}");

    let mut client = pb::sync_client::SyncClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::WatchRequest {
        subscribe: vec!["*".into()],
        ..pb::WatchRequest::default()
    })
    .await
    .unwrap();
    let mut inbound = client
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut wire = Vec::new();
    loop {
        let response = tokio::time::timeout(super::support::HANG, inbound.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        wire.extend(prost::Message::encode_to_vec(&response));
        if response.tenants.iter().any(|t| t.tenant == A) && !response.more {
            break;
        }
    }
    let text = String::from_utf8_lossy(&wire);
    assert!(text.contains("alice"), "the tenant was sent");
    for (what, needle) in secrets
        .iter()
        .map(|(w, n)| (*w, n.clone()))
        .chain([("the password hash", digest.into_bytes())])
    {
        assert!(
            !wire.windows(needle.len()).any(|w| w == needle.as_slice()),
            "{what} is in the bytes the control plane sent"
        );
    }
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t09_an_update_storm_only_moves_forward_and_catches_up() {
    // RELIABILITY T09 (in process, smaller): 200 changes to one tenant as fast as the store
    // commits them while the sidecar answers. The version served never goes back, decisions
    // go on, and the sidecar ends at the latest version.
    let root = temp_dir("resilience", "t09");
    let (cp, addr) = Cp::start(
        SqliteStore::open(&root.join("iamlet.db"), None).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(100),
    );
    cp.tenant(A);
    let s = sidecar(
        addr,
        Readiness::All,
        &root.join("sidecar"),
        lenient(),
        Liveness::default(),
    )
    .await;
    eventually("tenant A", || s.handle.store.version(A).is_some()).await;
    let (acks_before, _) = s.handle.sync.ack_counts();

    let storm = {
        let cp = Arc::clone(&cp.control_plane);
        tokio::task::spawn_blocking(move || {
            for i in 0..200 {
                cp.call(
                    A,
                    "test",
                    "TagUser",
                    &json!({"UserName": "alice", "Tags": [{"Key": "n", "Value": i.to_string()}]}),
                )
                .unwrap();
            }
        })
    };
    let mut seen = s.handle.store.version(A).unwrap();
    let mut decisions = 0;
    while !storm.is_finished() {
        let now = s.handle.store.version(A).unwrap();
        assert!(now >= seen, "went back from {seen} to {now}");
        seen = now;
        assert!(
            s.allows_alice(A).await,
            "a decision failed during the storm"
        );
        decisions += 1;
    }
    storm.await.unwrap();
    let latest = cp.control_plane.tenant(A).unwrap().1;
    let took = super::support::eventually("the latest version", || {
        s.handle.store.version(A) == Some(latest)
    })
    .await;
    assert!(took < Duration::from_secs(5), "caught up after {took:?}");
    let (acks, nacks) = s.handle.sync.ack_counts();
    assert_eq!(nacks, 0);
    eprintln!(
        "t09: 200 versions, {} applied (the rest coalesced), {decisions} decisions during the storm",
        acks - acks_before
    );
    assert!(acks - acks_before <= 200);
    s.stop.send_replace(true);
}

/// A control plane that says what the test tells it to, stream by stream, and keeps every
/// message each stream receives.
#[derive(Clone)]
struct ScriptedSync {
    streams: tokio::sync::mpsc::UnboundedSender<ScriptedStream>,
}

/// One stream of [`ScriptedSync`]: where its responses go, and what the sidecar sent on it.
struct ScriptedStream {
    tx: tokio::sync::mpsc::Sender<Result<pb::WatchResponse, tonic::Status>>,
    received: Arc<Mutex<Vec<pb::WatchRequest>>>,
}

#[tonic::async_trait]
impl pb::sync_server::Sync for ScriptedSync {
    type WatchStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::WatchResponse, tonic::Status>>;

    async fn watch(
        &self,
        request: tonic::Request<tonic::Streaming<pb::WatchRequest>>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                log.lock().unwrap().push(message);
            }
        });
        let _ = self.streams.send(ScriptedStream { tx, received });
        Ok(tonic::Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    }
}

/// The next stream the sidecar opens.
async fn next_stream(
    streams: &mut tokio::sync::mpsc::UnboundedReceiver<ScriptedStream>,
) -> ScriptedStream {
    // Timing out here means the sidecar never reconnected.
    tokio::time::timeout(super::support::HANG, streams.recv())
        .await
        .unwrap()
        .unwrap()
}

/// RELIABILITY T27 over the stream itself: random sequences of responses (new, duplicate and
/// old versions, corrupt payloads, odd nonces, heartbeats, removals), error statuses and
/// disconnects. Every response that carries state is answered exactly once, on its own
/// stream, echoing its nonce, in order; heartbeats are not answered; a new stream starts with
/// no nonce and the versions the sidecar holds; the applied version only moves forward and is
/// the newest valid one sent; a tenant goes only on an explicit removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t27_every_response_is_answered_once_on_its_stream_with_its_nonce() {
    use iamlet::snapshot::{SnapshotVersion, TenantUpdate};

    // Real payloads: tenant A at six versions, tenant B at one, from a real control plane.
    let cp = super::support::signed(
        ControlPlane::open(
            Arc::new(SqliteStore::open_in_memory().unwrap()),
            IdGenerator::seeded(27),
        )
        .unwrap(),
    );
    cp.create_tenant(A, None, "test").unwrap();
    cp.create_tenant(B, None, "test").unwrap();
    let snapshot_of = |account: &str| {
        let (tenant, version) = cp.tenant(account).unwrap();
        let update =
            TenantUpdate::signed(&tenant, version, cp.snapshot_signer(), &cp.store_identity())
                .unwrap();
        let signature = update.signature.unwrap();
        pb::TenantSnapshot {
            tenant: update.account_id,
            version: Some(version.into()),
            sha256: update.sha256,
            payload: update.payload,
            signature: Some(pb::SnapshotSignature {
                key_id: signature.key_id,
                store: Some(pb::StoreIdentity {
                    id: signature.store.id,
                    epoch: signature.store.epoch,
                }),
                value: signature.value,
            }),
        }
    };
    let mut versions_of_a = vec![snapshot_of(A)];
    for i in 0..5 {
        cp.call(
            A,
            "test",
            "CreateUser",
            &json!({"UserName": format!("u{i}")}),
        )
        .unwrap();
        versions_of_a.push(snapshot_of(A));
    }
    let tenant_b = snapshot_of(B);
    let store = cp.store_identity();
    let identity = pb::StoreIdentity {
        id: store.id.clone(),
        epoch: store.epoch,
    };
    let version = |s: &pb::TenantSnapshot| SnapshotVersion::from(s.version.unwrap());

    for seed in 1..=3u64 {
        let (streams_tx, mut streams) = tokio::sync::mpsc::unbounded_channel();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::sync_server::SyncServer::new(ScriptedSync {
                    streams: streams_tx,
                }))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let state = temp_dir("resilience", &format!("t27-{seed}"));
        let side = sidecar(addr, Readiness::All, &state, lenient(), Liveness::default()).await;
        let mut stream = next_stream(&mut streams).await;
        // What each stream's answers must be, in order: the nonces of its state responses.
        let mut expected: Vec<String> = Vec::new();
        let mut applied: Option<SnapshotVersion> = None;
        let mut has_b = false;
        let mut nonce = 1000 * seed;
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut step = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut last_sent: Option<usize> = None;
        for _ in 0..40 {
            let roll = step();
            nonce += 1;
            // Odd nonces too: the sidecar echoes whatever names the response.
            let this_nonce = if nonce % 7 == 0 {
                format!("nonce with spaces/é {nonce}")
            } else {
                nonce.to_string()
            };
            let mut response = pb::WatchResponse {
                nonce: this_nonce.clone(),
                store: Some(identity.clone()),
                ..pb::WatchResponse::default()
            };
            match roll % 9 {
                // A version of A (new or old), a duplicate of the last one sent.
                0..=2 => {
                    let i = usize::try_from(step() % 6).unwrap();
                    last_sent = Some(i);
                    response.tenants.push(versions_of_a[i].clone());
                    let v = version(&versions_of_a[i]);
                    applied = Some(applied.map_or(v, |a| a.max(v)));
                }
                3 => {
                    let i = last_sent.unwrap_or(0);
                    response.tenants.push(versions_of_a[i].clone());
                    let v = version(&versions_of_a[i]);
                    applied = Some(applied.map_or(v, |a| a.max(v)));
                }
                // A corrupt payload: NACKed, nothing changes.
                4 => {
                    let mut bad = versions_of_a[5].clone();
                    bad.payload.truncate(bad.payload.len() / 2);
                    response.tenants.push(bad);
                }
                // Tenant B arrives, or is removed.
                5 => {
                    if has_b {
                        response.removed_tenants.push(B.into());
                        has_b = false;
                    } else {
                        response.tenants.push(tenant_b.clone());
                        has_b = true;
                    }
                }
                // A heartbeat: no state, no answer.
                6 => {
                    response.heartbeat = Some(pb::Heartbeat { server_time_ms: 0 });
                }
                // The stream ends with an error, or just ends; the sidecar reconnects.
                _ => {
                    if roll % 2 == 0 {
                        let _ = stream
                            .tx
                            .send(Err(tonic::Status::unavailable("scripted")))
                            .await;
                    }
                    drop(stream);
                    stream = next_stream(&mut streams).await;
                    expected.clear();
                    let first = {
                        let received = Arc::clone(&stream.received);
                        eventually("the new stream's first message", || {
                            !received.lock().unwrap().is_empty()
                        })
                        .await;
                        let first = received.lock().unwrap()[0].clone();
                        first
                    };
                    assert!(
                        first.response_nonce.is_empty(),
                        "seed {seed}: a new stream reuses nonce {:?}",
                        first.response_nonce
                    );
                    let held: HashMap<String, SnapshotVersion> = first
                        .initial_versions
                        .iter()
                        .map(|tv| {
                            (
                                tv.tenant.clone(),
                                SnapshotVersion::from(tv.version.unwrap()),
                            )
                        })
                        .collect();
                    assert_eq!(
                        held.get(A).copied(),
                        applied,
                        "seed {seed}: initial versions"
                    );
                    assert_eq!(held.contains_key(B), has_b, "seed {seed}: initial versions");
                    continue;
                }
            }
            let carries_state =
                !response.tenants.is_empty() || !response.removed_tenants.is_empty();
            stream.tx.send(Ok(response)).await.unwrap();
            if carries_state {
                expected.push(this_nonce);
            }
            // The answers so far are exactly the expected ones, in order, each once.
            let received = Arc::clone(&stream.received);
            let answered = || {
                received
                    .lock()
                    .unwrap()
                    .iter()
                    .skip(1)
                    .map(|m| m.response_nonce.clone())
                    .collect::<Vec<_>>()
            };
            eventually("the sidecar's answer", || {
                answered().len() >= expected.len()
            })
            .await;
            assert_eq!(
                answered(),
                expected,
                "seed {seed}: the answers on this stream"
            );
            assert_eq!(
                side.handle.store.version(A),
                applied,
                "seed {seed}: A's version"
            );
            assert_eq!(
                side.handle.store.version(B).is_some(),
                has_b,
                "seed {seed}: B is held exactly while it was not removed"
            );
        }
        let _ = side.stop.send(true);
        server.abort();
    }
}
