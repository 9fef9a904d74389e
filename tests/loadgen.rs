//! `iamlet bench` against the in-process no-op server, with churn writes to an in-process
//! control plane; and the command line's answers to bad input.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use iamlet::client::Profile;
use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::serve_control_plane;
use iamlet::loadgen::{
    mix::DEFAULT_MIX, plot_svg, serve_noop, ChurnConfig, Credentials, Mix, Plan, RunConfig,
    RunReport,
};
use serde_json::json;
use tokio::net::TcpListener;

const TENANT: &str = "111122223333";

/// A control plane with the tenant and its user bob; its URL, and the tenant's root key that
/// the churn writes are made with.
async fn control_plane() -> (String, Profile) {
    let dir = super::support::temp_dir("loadgen", "cp");
    let store = SqliteStore::open(&dir.join("iamlet.db"), None).unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    let (_, (root_id, root_secret)) = cp.create_tenant_with_root(TENANT, None, "test").unwrap();
    cp.call(TENANT, "test", "CreateUser", &json!({"UserName": "bob"}))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_control_plane(
        cp,
        listener,
        Duration::from_millis(200),
        std::future::pending(),
    ));
    (
        format!("http://{addr}"),
        Profile {
            access_key_id: root_id,
            secret_access_key: root_secret,
            session_token: None,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_against_the_noop_server_with_churn() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve_noop(listener, std::future::pending()));
    let (churn_endpoint, churn_credentials) = control_plane().await;

    let config = RunConfig {
        target: target.clone(),
        label: Some("noop".into()),
        plan: Plan {
            rate: 200.0,
            warmup: Duration::from_millis(200),
            duration: Duration::from_secs(1),
            concurrency: 64,
        },
        connections: 2,
        mix: Mix::parse(DEFAULT_MIX).unwrap(),
        batch_size: 10,
        principal: None,
        credentials: Some(Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: String::new(),
        }),
        action: "s3:GetObject".into(),
        resource: "arn:aws:s3:::demo-data/home/alice/notes.txt".into(),
        role_arn: "arn:aws:iam::111122223333:role/reports-writer".into(),
        churn: Some(ChurnConfig {
            endpoint: churn_endpoint,
            tenant: TENANT.into(),
            user: "bob".into(),
            every: Duration::from_millis(200),
            credentials: Some(churn_credentials),
        }),
        timeout: Duration::from_secs(5),
    };
    let report = iamlet::loadgen::run(&config).await.unwrap();

    assert_eq!(report.sent, 200, "{report}");
    assert_eq!(report.completed, 200, "{report}");
    assert_eq!(report.error_count(), 0, "{report}");
    assert_eq!(report.denied, 0, "{report}");
    let l = report.latency_us;
    assert!(0 < l.p50 && l.p50 < l.max, "{report}");
    assert!(l.p50 <= l.p99 && l.p99 <= l.max, "{report}");
    // Not a speed claim (that is the benchmarks' job): the schedule cannot run faster than
    // asked, and a run that completed every request achieved some rate.
    assert!(
        report.achieved_rate > 0.0 && report.achieved_rate <= 240.0,
        "achieved {} of 200/s",
        report.achieved_rate
    );
    // 1.2 s of writes every 200 ms, the first at once: about 6, fewer when the control
    // plane's fsyncs are slow on a busy machine (a write waits for the one before).
    let churn = report.churn.clone().unwrap();
    assert!(churn.succeeded >= 1, "{churn:?}");
    assert!(churn.attempted >= churn.succeeded, "{churn:?}");

    // What --save writes, plot reads.
    let path = std::env::temp_dir().join(format!("iamlet-loadgen-run-{}.json", std::process::id()));
    report.save(&path).unwrap();
    let back = RunReport::load(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(back, report);
    let svg = plot_svg(&[back]);
    assert!(svg.starts_with("<svg") && svg.matches("<polyline").count() == 1);
}

fn iamlet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap()
}

#[test]
fn bad_input_is_a_usage_error_and_an_unreachable_target_is_reported() {
    for (args, says) in [
        (&["--rate", "0"][..], "invalid rate"),
        (
            &["--rate", "100", "--duration", "ten"][..],
            "invalid duration",
        ),
        (
            &["--rate", "100", "--mix", "authorize=1"][..],
            "unknown request kind",
        ),
        (&["--duration", "1s"][..], "give --rate"),
        (&["--rate", "100"][..], "no caller"),
    ] {
        let out = iamlet(&[&["bench", "run"][..], args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let out = iamlet(&[
        "bench",
        "run",
        "--target",
        "http://127.0.0.1:1",
        "--rate",
        "10",
        "--mix",
        "authorize-hit=1",
        "--principal",
        "arn:aws:iam::111122223333:user/alice",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach http://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
