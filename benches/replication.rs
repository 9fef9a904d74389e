//! Replication measurements (PERFORMANCE.md P5, issue #16), per store:
//!
//! 1. write → every sidecar serving it: an operator's `TagUser`, SigV4-signed as `iamlet admin`
//!    sends it, through the admin gRPC edge of replica 1, timed from the call (and from its
//!    acknowledgement) until N in-process sidecars (each with its sync stream over real gRPC on
//!    loopback and its snapshot store) all serve the version the acknowledgement names;
//! 2. admin write throughput through the same edge: one writer, then 4 and 8 concurrent
//!    writers, each with a connection of its own, to different tenants and to one tenant.
//!
//! Arms: SQLite (one control plane); PostgreSQL with 1 replica; PostgreSQL with 3 replicas,
//! where writes go to replica 1 and the sidecars are spread over the replicas starting with
//! replica 2, so the database's notices (`LISTEN/NOTIFY`) are in the path of every sidecar
//! not on replica 1. The PostgreSQL arms run when `IAMLET_TEST_POSTGRES_URL` (the variable
//! the store's suite uses) names a database; each arm gets a schema of its own, made empty and
//! dropped afterwards. `tests/ha/bench.sh` makes a throwaway server and runs this bench.
//!
//! Every case asserts its outcome: each acknowledged version is newer than the one before,
//! every sidecar reaches it, every replica ends at each tenant's last version, and the versions
//! one tenant's writes were acknowledged with are exactly the next numbers, none lost or
//! repeated. Concurrent writers retry what the control plane refuses as retryable
//! (`ConcurrentModification`, `ServiceUnavailable`), as an SDK would, and the count is printed.
//!
//! Run with `cargo bench --bench replication`; `benches/README.md` has results.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark whose setup fails, or whose case does not give the outcome it names, \
              has nothing to measure"
)]
#![expect(clippy::print_stdout, reason = "the results are the program's output")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::client::Profile;
use iamlet::control_plane::{
    AdminAuth, ControlPlane, Follower, OperatorKey, PostgresOptions, PostgresStore, SecretSealer,
    SqliteStore, TenantStore, DEFAULT_CATCH_UP,
};
use iamlet::directory::{IdGenerator, Secret};
use iamlet::grpc::{
    serve_control_plane_with, signed_admin_request, ServeOptions, DEFAULT_HEARTBEAT,
};
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{spawn_sidecar, SidecarConfig, SidecarHandle};
use iamlet::snapshot::SnapshotVersion;
use iamlet::sync::{Backoff, Readiness};
use tonic::transport::Channel;

type AdminClient = pb::admin_client::AdminClient<Channel>;

/// The variable naming the PostgreSQL database, shared with the store's suite.
const POSTGRES_URL: &str = "IAMLET_TEST_POSTGRES_URL";

const OPERATOR_KEY_ID: &str = "IOPRBENCHREPLICATE01";
const OPERATOR_SECRET: &str = "bench-replication-operator-secret-0123456";

/// The longest any one step may take: a hang fails the bench rather than skewing a figure.
const BOUND: Duration = Duration::from_secs(30);

/// How often the measuring thread looks at the sidecars' snapshot stores (the resolution of
/// the latencies; Linux sleeps a little longer than asked).
const POLL: Duration = Duration::from_micros(50);

/// A retryable refusal retried this many times for one write fails the bench.
const MAX_RETRIES_PER_WRITE: u32 = 50;

/// Which database the replicas share.
#[derive(Debug, Clone)]
enum Store {
    Sqlite,
    Postgres(String),
}

/// One arm: a store and how many control-plane replicas serve it.
#[derive(Debug, Clone)]
struct Arm {
    name: &'static str,
    store: Store,
    replicas: usize,
}

/// One control plane: its domain, its gRPC edge's address, and its follower of the others.
struct Replica {
    control_plane: Arc<ControlPlane>,
    addr: SocketAddr,
    follower: Option<Follower>,
}

/// The replicas of one arm, served on one runtime; removed (schema, files) when dropped.
struct Cluster {
    runtime: Option<tokio::runtime::Runtime>,
    replicas: Vec<Replica>,
    dir: PathBuf,
    /// The PostgreSQL database and the arm's schema in it.
    schema: Option<(String, String)>,
    next_account: AtomicU64,
}

fn operator() -> Profile {
    Profile {
        access_key_id: OPERATOR_KEY_ID.into(),
        secret_access_key: Secret::new(OPERATOR_SECRET),
        session_token: None,
    }
}

fn postgres_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to the database {POSTGRES_URL} names: {e}"))
}

impl Cluster {
    fn start(arm: &Arm) -> Self {
        let tag: String = arm
            .name
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '_',
            })
            .collect();
        let dir =
            std::env::temp_dir().join(format!("iamlet-bench-repl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let schema = match &arm.store {
            Store::Sqlite => None,
            Store::Postgres(url) => {
                // An arm of its own: empty when it starts, whatever ran before.
                let schema = format!("bench_{tag}_{}", std::process::id());
                postgres_client(url)
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                    ))
                    .expect("fresh schema");
                Some((url.clone(), schema))
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sealer = || SecretSealer::from_key(&[7; 32]).expect("sealer");
        let replicas = (0..arm.replicas)
            .map(|_| {
                let store: Arc<dyn TenantStore> = match &schema {
                    None => Arc::new(
                        SqliteStore::open(&dir.join("iamlet.db"), None)
                            .expect("store")
                            .with_sealer(sealer()),
                    ),
                    Some((url, schema)) => Arc::new(
                        PostgresStore::open(&PostgresOptions {
                            schema: Some(schema.clone()),
                            ..PostgresOptions::new(url.clone())
                        })
                        .expect("store")
                        .with_sealer(sealer()),
                    ),
                };
                let control_plane = Arc::new(
                    ControlPlane::open(store, IdGenerator::system()).expect("control plane"),
                );
                // As `iamlet control-plane` does, with its default catch-up interval.
                let follower = Some(control_plane.follow(DEFAULT_CATCH_UP));
                let listener = runtime
                    .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                let auth = AdminAuth::new(
                    vec![OperatorKey {
                        name: "bench".into(),
                        access_key_id: OPERATOR_KEY_ID.into(),
                        secret: Secret::new(OPERATOR_SECRET),
                    }],
                    Vec::new(),
                );
                runtime.spawn(serve_control_plane_with(
                    Arc::clone(&control_plane),
                    listener,
                    DEFAULT_HEARTBEAT,
                    ServeOptions {
                        admin_auth: Some(Arc::new(auth)),
                        ..ServeOptions::default()
                    },
                    std::future::pending(),
                ));
                Replica {
                    control_plane,
                    addr,
                    follower,
                }
            })
            .collect();
        Self {
            runtime: Some(runtime),
            replicas,
            dir,
            schema,
            next_account: AtomicU64::new(100_000_000_000),
        }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime runs until the cluster is dropped")
    }

    fn replica(&self, index: usize) -> &Replica {
        self.replicas
            .get(index % self.replicas.len())
            .expect("a replica")
    }

    /// A new admin connection to replica `index` (modulo the replicas).
    fn client(&self, index: usize) -> AdminClient {
        let url = format!("http://{}", self.replica(index).addr);
        self.runtime()
            .block_on(AdminClient::connect(url))
            .expect("admin connection")
    }

    /// A new tenant with the user alice, made through replica 1 and waited for on every
    /// replica; its account and version.
    fn new_tenant(&self) -> (String, SnapshotVersion) {
        let account = self
            .next_account
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let first = &self.replica(0).control_plane;
        first
            .create_tenant(&account, None, "operator:bench")
            .expect("tenant");
        let (_, version) = first
            .call(
                &account,
                "operator:bench",
                "CreateUser",
                &serde_json::json!({"UserName": "alice"}),
            )
            .expect("user");
        self.wait_replicas(&account, version);
        (account, version)
    }

    /// Waits until every replica holds `account` at `version` or later.
    fn wait_replicas(&self, account: &str, version: SnapshotVersion) {
        let deadline = Instant::now() + BOUND;
        for (i, replica) in self.replicas.iter().enumerate() {
            while replica
                .control_plane
                .tenant(account)
                .is_none_or(|(_, v)| v < version)
            {
                assert!(
                    Instant::now() < deadline,
                    "replica {} did not reach tenant {account} at {version:?} within {BOUND:?}",
                    i + 1
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// `count` sidecars following `account`, sidecar i on replica i + 1 (modulo the replicas:
    /// with several, the first sidecar is on replica 2); returned once all are ready.
    fn sidecars(&self, count: usize, account: &str) -> Fleet {
        let _entered = self.runtime().enter();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let handles: Vec<SidecarHandle> = (0..count)
            .map(|i| {
                let replica = self.replica(i + 1);
                spawn_sidecar(
                    &SidecarConfig {
                        control_plane: format!("http://{}", replica.addr),
                        readiness: Readiness::Tenants(vec![account.to_owned()]),
                        state_dir: self.dir.join(format!("sidecar-{account}-{i}")),
                        sidecar_id: format!("bench-{account}-{i}"),
                        backoff: Backoff::default(),
                        // Each replica signs what it ships with its own key.
                        snapshot_trust: replica.control_plane.snapshot_trust(),
                        ..SidecarConfig::default()
                    },
                    shutdown.clone(),
                )
                .0
            })
            .collect();
        let deadline = Instant::now() + BOUND;
        while !handles.iter().all(SidecarHandle::is_ready) {
            assert!(
                Instant::now() < deadline,
                "{count} sidecar(s) were not ready within {BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        Fleet { handles, stop }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Followers first: none may be reading the schema when it is dropped.
        for replica in &mut self.replicas {
            if let Some(follower) = replica.follower.take() {
                follower.stop();
            }
        }
        // The runtime's tasks are dropped on its threads; the last handle on each control
        // plane must go here, outside the runtime, as a PostgreSQL store's synchronous client
        // closes its connections by blocking on a runtime of its own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(BOUND);
        }
        self.replicas.clear();
        if let Some((url, schema)) = &self.schema {
            let _ = postgres_client(url).batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sidecars following one tenant; stopped when dropped.
struct Fleet {
    handles: Vec<SidecarHandle>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Fleet {
    /// Waits (polling from this thread, outside the runtime) until every sidecar serves
    /// `account` at `version` or later.
    fn wait_serving(&self, account: &str, version: SnapshotVersion) {
        let deadline = Instant::now() + BOUND;
        while !self
            .handles
            .iter()
            .all(|h| h.store.version(account).is_some_and(|v| v >= version))
        {
            assert!(
                Instant::now() < deadline,
                "the sidecars did not all serve {account} at {version:?} within {BOUND:?}"
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// One admin write: a tag on alice, through the admin edge; the version it was acknowledged
/// with.
async fn tag(
    client: &mut AdminClient,
    account: &str,
    key: &str,
    value: usize,
) -> Result<SnapshotVersion, tonic::Status> {
    let request = pb::CallRequest {
        tenant: account.to_owned(),
        action: "TagUser".into(),
        parameters_json: serde_json::json!({
            "UserName": "alice",
            "Tags": [{"Key": key, "Value": value.to_string()}],
        })
        .to_string(),
    };
    let answer = client
        .call(signed_admin_request(request, "Call", Some(&operator())))
        .await?
        .into_inner();
    let version = answer
        .version
        .ok_or_else(|| tonic::Status::internal("the answer names no version"))?;
    Ok(SnapshotVersion::new(version.epoch, version.seq))
}

/// Retryable refusals a writer retried, by kind.
#[derive(Debug, Default, Clone, Copy)]
struct Retries {
    /// `ConcurrentModification`: the control plane's own retries of a conflict ran out.
    conflicts: u32,
    /// `ServiceUnavailable`.
    unavailable: u32,
}

impl std::ops::AddAssign for Retries {
    fn add_assign(&mut self, other: Self) {
        self.conflicts += other.conflicts;
        self.unavailable += other.unavailable;
    }
}

/// [`tag`], retrying the refusals the control plane calls retryable; the version and the
/// retries it took.
async fn tag_retrying(
    client: &mut AdminClient,
    account: &str,
    key: &str,
    value: usize,
) -> (SnapshotVersion, Retries) {
    let mut retries = Retries::default();
    loop {
        let status = match tag(client, account, key, value).await {
            Ok(version) => return (version, retries),
            Err(status) => status,
        };
        match status.code() {
            _ if retries.conflicts + retries.unavailable >= MAX_RETRIES_PER_WRITE => {
                panic!("a write to {account} was refused {MAX_RETRIES_PER_WRITE} times: {status:?}")
            }
            tonic::Code::Aborted => retries.conflicts += 1,
            tonic::Code::Unavailable => retries.unavailable += 1,
            _ => panic!("a write to {account} was refused: {status:?}"),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50, p99 and max of `samples`, in milliseconds.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(samples, 0.50)),
        ms(percentile(samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default()),
    )
}

/// Measurement 1: `writes` writes through replica 1, each timed until `sidecars` sidecars
/// serve it.
fn write_to_serving(cluster: &Cluster, arm: &Arm, sidecars: usize, writes: usize) {
    let (account, mut last) = cluster.new_tenant();
    let fleet = cluster.sidecars(sidecars, &account);
    fleet.wait_serving(&account, last);
    let mut client = cluster.client(0);
    let mut from_call = Vec::with_capacity(writes);
    let mut from_ack = Vec::with_capacity(writes);
    for i in 0..writes {
        let started = Instant::now();
        let version = cluster
            .runtime()
            .block_on(tag(&mut client, &account, "n", i))
            .expect("write");
        let acknowledged = Instant::now();
        assert!(
            version > last,
            "write {i} was acknowledged with {version:?}, not after {last:?}"
        );
        last = version;
        fleet.wait_serving(&account, version);
        let served = Instant::now();
        from_call.push(served - started);
        from_ack.push(served - acknowledged);
    }
    cluster.wait_replicas(&account, last);
    println!(
        "{}: write → {sidecars} sidecar(s) serving it, {writes} writes: from the call {}; from the acknowledgement {}",
        arm.name,
        summary(&mut from_call),
        summary(&mut from_ack),
    );
}

/// Measurement 2: `writers` concurrent writers (writer w on replica w, modulo the replicas)
/// of `per_writer` writes each, to one tenant each or all to one tenant.
fn write_throughput(
    cluster: &Cluster,
    arm: &Arm,
    writers: usize,
    same_tenant: bool,
    per_writer: usize,
) {
    let tenants: Vec<(String, SnapshotVersion)> = if same_tenant {
        vec![cluster.new_tenant()]
    } else {
        (0..writers).map(|_| cluster.new_tenant()).collect()
    };
    let clients: Vec<AdminClient> = (0..writers).map(|w| cluster.client(w)).collect();
    let started = Instant::now();
    let results: Vec<(usize, Vec<SnapshotVersion>, Vec<Duration>, Retries)> =
        cluster.runtime().block_on(async {
            let tasks: Vec<_> = clients
                .into_iter()
                .enumerate()
                .map(|(w, mut client)| {
                    let tenant = if same_tenant { 0 } else { w };
                    let account = tenants.get(tenant).expect("a tenant").0.clone();
                    tokio::spawn(async move {
                        let key = format!("w{w}");
                        let mut versions = Vec::with_capacity(per_writer);
                        let mut latencies = Vec::with_capacity(per_writer);
                        let mut retries = Retries::default();
                        for i in 0..per_writer {
                            let call = Instant::now();
                            let (version, r) = tag_retrying(&mut client, &account, &key, i).await;
                            latencies.push(call.elapsed());
                            versions.push(version);
                            retries += r;
                        }
                        (tenant, versions, latencies, retries)
                    })
                })
                .collect();
            let mut results = Vec::with_capacity(tasks.len());
            for task in tasks {
                results.push(task.await.expect("writer"));
            }
            results
        });
    let elapsed = started.elapsed();

    // Nothing lost, nothing repeated: a tenant's acknowledged versions are exactly the next
    // numbers after its version before the run, and each writer saw its own rise.
    for (t, (account, before)) in tenants.iter().enumerate() {
        let mut seqs: Vec<u64> = results
            .iter()
            .filter(|r| r.0 == t)
            .flat_map(|r| r.1.iter().map(|v| v.seq))
            .collect();
        seqs.sort_unstable();
        let expected: Vec<u64> = (before.seq + 1..=before.seq + seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "tenant {account}: acknowledged versions");
        let last = SnapshotVersion::new(before.epoch, before.seq + seqs.len() as u64);
        cluster.wait_replicas(account, last);
    }
    for (w, r) in results.iter().enumerate() {
        assert!(
            r.1.windows(2).all(|p| matches!(p, [a, b] if a < b)),
            "writer {w}'s versions did not rise"
        );
    }
    let total = writers * per_writer;
    let mut retries = Retries::default();
    for r in &results {
        retries += r.3;
    }
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|r| r.2).collect();
    let target = match (writers, same_tenant) {
        (1, _) => "sequential".to_owned(),
        (_, true) => format!("{writers} writers, one tenant"),
        (_, false) => format!("{writers} writers, a tenant each"),
    };
    println!(
        "{}: admin writes, {target}: {total} writes in {:.2} s = {:.0} writes/s; per write {}; retried: {} ConcurrentModification, {} ServiceUnavailable",
        arm.name,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        summary(&mut latencies),
        retries.conflicts,
        retries.unavailable,
    );
}

fn run(arm: &Arm, quick: bool) {
    let cluster = Cluster::start(arm);
    let (writes, fleets, sequential, per_writer) = if quick {
        (20, [1, 2], 10, 5)
    } else {
        (1_000, [1, 10], 500, 100)
    };
    for sidecars in fleets {
        write_to_serving(&cluster, arm, sidecars, writes);
    }
    write_throughput(&cluster, arm, 1, false, sequential);
    for writers in [4, 8] {
        write_throughput(&cluster, arm, writers, false, per_writer);
        write_throughput(&cluster, arm, writers, true, per_writer);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let mut arms = vec![Arm {
        name: "SQLite",
        store: Store::Sqlite,
        replicas: 1,
    }];
    match std::env::var(POSTGRES_URL) {
        Ok(url) if !url.is_empty() => {
            arms.push(Arm {
                name: "PostgreSQL, 1 replica",
                store: Store::Postgres(url.clone()),
                replicas: 1,
            });
            arms.push(Arm {
                name: "PostgreSQL, 3 replicas",
                store: Store::Postgres(url),
                replicas: 3,
            });
        }
        _ => println!(
            "PostgreSQL arms not run: {POSTGRES_URL} must name a database (tests/ha/bench.sh makes one)"
        ),
    }
    for arm in &arms {
        run(arm, quick);
    }
}
