//! Distribution measurements (PERFORMANCE.md P5), printed as percentiles:
//!
//! 1. admin write → every connected sidecar serving the new version, over real gRPC on
//!    loopback (target p99 ≤ 50 ms);
//! 2. 1,000 tenants × 100 managed policies decoded, validated, compiled and swapped in
//!    (target ≤ 1 s);
//! 3. one policy changed in a 100-policy tenant: the update applied (digest, decode, validate,
//!    compile, swap) while the previous version is served (target ≤ 1 ms).
//!
//! Run with `cargo bench --bench distribution`; `benches/README.md` has results. A last
//! argument `write`, `cold` or `change` runs that case only (for callgrind).

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark whose setup fails has nothing to measure"
)]
#![expect(clippy::print_stdout, reason = "the results are the program's output")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::{
    IdGenerator, ManagedPolicy, PasswordHasher, PolicyVersionEntry, Tenant, User,
};
use iamlet::grpc::serve_control_plane;
use iamlet::sidecar::{spawn_sidecar, SidecarConfig};
use iamlet::snapshot::{
    AwsManagedCatalog, SigningKey, SnapshotStore, SnapshotTrust, SnapshotVersion, StoreRef,
    TenantUpdate, TrustedKeys,
};
use iamlet::sync::{Applier, Backoff, Readiness, UpdateResult};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn write_to_sidecar_latency(writes: usize, sidecars: usize) {
    let dir = std::env::temp_dir().join(format!("iamlet-bench-dist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(&dir.join("iamlet.db"), None).expect("store");
        let cp = Arc::new(
            ControlPlane::open(Arc::new(store), IdGenerator::system())
                .expect("control plane")
                .with_password_hasher(PasswordHasher::with_iterations(2)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve_control_plane(Arc::clone(&cp), listener, Duration::from_secs(5), std::future::pending()));
        cp.create_tenant("111122223333", None, "bench").expect("tenant");
        cp.call("111122223333", "bench", "CreateUser", &serde_json::json!({"UserName": "alice"}))
            .expect("user");
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let handles: Vec<_> = (0..sidecars)
            .map(|i| {
                let state = dir.join(format!("sidecar-{i}"));
                spawn_sidecar(
                    &SidecarConfig {
                        control_plane: format!("http://{addr}"),
                        readiness: Readiness::Tenants(vec!["111122223333".into()]),
                        state_dir: state,
                        sidecar_id: format!("bench-{i}"),
                        backoff: Backoff::default(),
                        snapshot_trust: cp.snapshot_trust(),
                        ..SidecarConfig::default()
                    },
                    shutdown.clone(),
                )
                .0
            })
            .collect();
        while !handles.iter().all(|h| h.is_ready()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut samples = Vec::with_capacity(writes);
        for i in 0..writes {
            let started = Instant::now();
            let cp2 = Arc::clone(&cp);
            let (_, version) = tokio::task::spawn_blocking(move || {
                let tag = serde_json::json!({"UserName": "alice", "Tags": [{"Key": "n", "Value": i.to_string()}]});
                cp2.call("111122223333", "bench", "TagUser", &tag)
            })
            .await
            .expect("join")
            .expect("write");
            while !handles
                .iter()
                .all(|h| h.store.version("111122223333").is_some_and(|v| v >= version))
            {
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
            samples.push(started.elapsed());
        }
        samples.sort();
        println!(
            "write → {sidecars} sidecar(s) serving it, {writes} writes: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&samples, 0.50).as_secs_f64() * 1e3,
            percentile(&samples, 0.90).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    });
    runtime.shutdown_background();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tenant_with_policies(account: &str, policies: usize) -> Tenant {
    tenant_with_change(account, policies, 0)
}

/// The tenant of `tenant_with_policies` with `policy-0` in its `change`th edit (0: none).
fn tenant_with_change(account: &str, policies: usize, change: usize) -> Tenant {
    let mut t = Tenant::new(account, 0);
    for i in 0..policies {
        let name = format!("policy-{i}");
        let bucket = if i == 0 && change > 0 {
            format!("bucket-{i}-edit-{change}")
        } else {
            format!("bucket-{i}")
        };
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Read","Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":"arn:aws:s3:::{bucket}/*"}},{{"Sid":"Team","Effect":"Allow","Action":"dynamodb:*","Resource":"arn:aws:dynamodb:*:{account}:table/t-{i}","Condition":{{"StringEquals":{{"aws:PrincipalTag/team":"team-{i}"}}}}}},{{"Sid":"NoDelete","Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}}]}}"#
        );
        t.policies.insert(
            name.clone(),
            ManagedPolicy {
                name: name.clone(),
                path: "/".into(),
                policy_id: format!("ANPA{i:017}"),
                arn: format!("arn:aws:iam::{account}:policy/{name}"),
                description: None,
                created_at: 0,
                updated_at: 0,
                default_version_id: "v1".into(),
                versions: vec![PolicyVersionEntry {
                    version_id: "v1".into(),
                    document: doc,
                    created_at: 0,
                }],
                next_version: 2,
                tags: Vec::new(),
            },
        );
    }
    t.users.insert(
        "alice".into(),
        User {
            name: "alice".into(),
            path: "/".into(),
            user_id: "AIDAALICE".into(),
            arn: format!("arn:aws:iam::{account}:user/alice"),
            created_at: 0,
            tags: Vec::new(),
            permissions_boundary: None,
            inline_policies: Default::default(),
            attached_policies: (0..10.min(policies))
                .map(|i| format!("arn:aws:iam::{account}:policy/policy-{i}"))
                .collect(),
            groups: Vec::new(),
            access_keys: Vec::new(),
            login_profile: None,
            mfa_devices: Vec::new(),
        },
    );
    t
}

fn compile_and_swap(tenants: usize, policies: usize) {
    let store = StoreRef {
        id: "bench-store".into(),
        epoch: 1,
    };
    let (key, _) = SigningKey::generate(&store.id).expect("key");
    let trust = SnapshotTrust::keys(TrustedKeys::parse(&key.trust_line()).expect("trust"));
    let updates: Vec<TenantUpdate> = (0..tenants)
        .map(|i| {
            let account = format!("{:012}", 100_000_000_000u64 + i as u64);
            TenantUpdate::signed(
                &tenant_with_policies(&account, policies),
                SnapshotVersion::new(1, 1),
                &key,
                &store,
            )
            .expect("update")
        })
        .collect();
    let bytes: usize = updates.iter().map(|u| u.payload.len()).sum();
    let catalog = Arc::new(AwsManagedCatalog::compile());

    // The signature check alone (issue #20): what verification adds to each update's apply.
    let started = Instant::now();
    for update in &updates {
        trust
            .check(
                &update.account_id,
                update.version,
                &update.sha256,
                update.signature.as_ref(),
                Some(&store),
            )
            .expect("verifies");
    }
    let verify = started.elapsed();

    // One by one without verification (`--insecure-unsigned-snapshots`, today's path before
    // signed snapshots), for comparison.
    let applier = Applier::new(Arc::new(SnapshotStore::new()), None, catalog.clone())
        .with_trust(SnapshotTrust::InsecureUnsigned);
    let started = Instant::now();
    for update in &updates {
        match applier.apply(update) {
            UpdateResult::Applied(_) => {}
            other => panic!("tenant {} not applied: {other:?}", update.account_id),
        }
    }
    let unverified = started.elapsed();

    // One by one, as updates of single tenants arrive.
    let applier = Applier::new(Arc::new(SnapshotStore::new()), None, catalog.clone())
        .with_trust(trust.clone());
    let started = Instant::now();
    for update in &updates {
        match applier.apply(update) {
            UpdateResult::Applied(_) => {}
            other => panic!("tenant {} not applied: {other:?}", update.account_id),
        }
    }
    let one_by_one = started.elapsed();

    // As one full response, as a sidecar's first response arrives.
    let applier = Applier::new(Arc::new(SnapshotStore::new()), None, catalog).with_trust(trust);
    let started = Instant::now();
    let results = applier.apply_all(&updates);
    let all_at_once = started.elapsed();
    assert!(results
        .iter()
        .all(|r| matches!(r, UpdateResult::Applied(_))));
    println!(
        "{tenants} tenants × {policies} policies ({:.1} MB of JSON) decoded, validated, compiled and swapped: one by one {:.0} ms ({:.0} µs per tenant); as one response on {} cores {:.0} ms",
        bytes as f64 / 1e6,
        one_by_one.as_secs_f64() * 1e3,
        one_by_one.as_secs_f64() * 1e6 / tenants as f64,
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        all_at_once.as_secs_f64() * 1e3,
    );
    println!(
        "signed snapshots: verifying {tenants} signatures {:.1} ms ({:.1} µs per update, SHA-256 of the payload not included); apply one by one without verification {:.0} ms ({:.0} µs per tenant), with it {:.0} ms ({:.0} µs per tenant)",
        verify.as_secs_f64() * 1e3,
        verify.as_secs_f64() * 1e6 / tenants as f64,
        unverified.as_secs_f64() * 1e3,
        unverified.as_secs_f64() * 1e6 / tenants as f64,
        one_by_one.as_secs_f64() * 1e3,
        one_by_one.as_secs_f64() * 1e6 / tenants as f64,
    );
}

/// One policy of a served 100-policy tenant changes, `changes` times in a row: each update
/// is applied while the previous version is served, so unchanged documents are reused.
/// Compared with the same updates applied to an empty store each time (every document parsed
/// and compiled, as every update was before issue #19 P5).
fn one_policy_changed(policies: usize, changes: usize) {
    let account = "100000000000";
    // Signed and verified, as a deployed sidecar applies them (issue #20).
    let store = StoreRef {
        id: "bench-store".into(),
        epoch: 1,
    };
    let (key, _) = SigningKey::generate(&store.id).expect("key");
    let trust = SnapshotTrust::keys(TrustedKeys::parse(&key.trust_line()).expect("trust"));
    let updates: Vec<TenantUpdate> = (0..=changes)
        .map(|change| {
            TenantUpdate::signed(
                &tenant_with_change(account, policies, change),
                SnapshotVersion::new(1, 1 + change as u64),
                &key,
                &store,
            )
            .expect("update")
        })
        .collect();
    let catalog = Arc::new(AwsManagedCatalog::compile());
    let applier = Applier::new(Arc::new(SnapshotStore::new()), None, catalog.clone())
        .with_trust(trust.clone());
    let (first, rest) = updates.split_first().expect("updates");
    assert_eq!(applier.apply(first), UpdateResult::Applied(first.version));
    let mut incremental = Vec::with_capacity(rest.len());
    for update in rest {
        let started = Instant::now();
        let result = applier.apply(update);
        incremental.push(started.elapsed());
        assert_eq!(result, UpdateResult::Applied(update.version));
    }
    let mut full = Vec::with_capacity(rest.len());
    for update in rest {
        let applier = Applier::new(Arc::new(SnapshotStore::new()), None, catalog.clone())
            .with_trust(trust.clone());
        let started = Instant::now();
        let result = applier.apply(update);
        full.push(started.elapsed());
        assert_eq!(result, UpdateResult::Applied(update.version));
    }
    for samples in [&mut incremental, &mut full] {
        samples.sort();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "one policy of a {policies}-policy tenant changed ({:.1} KB of JSON), {changes} updates: \
         applied over the served version p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; \
         the same updates into an empty store p50 {:.3} ms, p99 {:.3} ms",
        first.payload.len() as f64 / 1e3,
        ms(percentile(&incremental, 0.50)),
        ms(percentile(&incremental, 0.99)),
        ms(incremental.last().copied().unwrap_or_default()),
        ms(percentile(&full, 0.50)),
        ms(percentile(&full, 0.99)),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, briefly.
    let args: Vec<String> = std::env::args().collect();
    let quick = !args.iter().any(|a| a == "--bench");
    let only = args
        .last()
        .map(String::as_str)
        .filter(|a| ["write", "cold", "change"].contains(a));
    let run = |case: &str| only.is_none_or(|o| o == case);
    if quick {
        if run("write") {
            write_to_sidecar_latency(20, 1);
        }
        if run("cold") {
            compile_and_swap(20, 100);
        }
        if run("change") {
            one_policy_changed(100, 5);
        }
    } else {
        if run("write") {
            for sidecars in [1, 4] {
                write_to_sidecar_latency(500, sidecars);
            }
        }
        if run("cold") {
            compile_and_swap(1_000, 100);
        }
        if run("change") {
            one_policy_changed(100, 200);
        }
    }
}
