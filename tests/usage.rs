//! Issue #17: usage reports on a real sync stream, merged by the control plane, read back by
//! `GetAccessKeyLastUsed` and the credential report. The client is a bare Watch stream that
//! sends the reports a sidecar would.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use data_encoding::BASE64;
use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::serve_control_plane;
use iamlet::proto::v1 as pb;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::support::{eventually, temp_dir, HANG};

const A: &str = "111122223333";
const B: &str = "444455556666";

/// A tenant with alice and one access key; returns the key id.
fn tenant_with_alice(cp: &ControlPlane, account: &str) -> String {
    cp.create_tenant(account, None, "test").unwrap();
    cp.call(account, "test", "CreateUser", &json!({"UserName": "alice"}))
        .unwrap();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    cp.call(
        account,
        "test",
        "PutUserPolicy",
        &json!({"UserName": "alice", "PolicyName": "read", "PolicyDocument": policy}),
    )
    .unwrap();
    let (key, _) = cp
        .call(
            account,
            "test",
            "CreateAccessKey",
            &json!({"UserName": "alice"}),
        )
        .unwrap();
    key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned()
}

fn key_report(account: &str, key: &str, at: i64) -> pb::UsageReport {
    pb::UsageReport {
        tenant: account.into(),
        access_keys: vec![pb::AccessKeyUsage {
            access_key_id: key.into(),
            last_used: at,
            service: "s3".into(),
            region: "eu-west-1".into(),
        }],
        services: vec![pb::ServiceUsage {
            principal_arn: format!("arn:aws:iam::{account}:user/alice"),
            service: "s3".into(),
            last_authenticated: at,
            region: "eu-west-1".into(),
            actions: vec![pb::ActionUsage {
                action: "GetObject".into(),
                last_accessed: at,
                region: "eu-west-1".into(),
            }],
        }],
        roles: Vec::new(),
    }
}

fn last_used(cp: &ControlPlane, account: &str, key: &str) -> Value {
    cp.call(
        account,
        "test",
        "GetAccessKeyLastUsed",
        &json!({"AccessKeyId": key}),
    )
    .unwrap()
    .0["AccessKeyLastUsed"]
        .clone()
}

async fn next(inbound: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    tokio::time::timeout(HANG, inbound.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_sent_on_the_sync_stream_reaches_last_used_and_the_credential_report() {
    let root = temp_dir("usage", "stream");
    let store = SqliteStore::open(&root.join("iamlet.db"), None).unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    let key_a = tenant_with_alice(&cp, A);
    let key_b = tenant_with_alice(&cp, B);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve_control_plane(
        Arc::clone(&cp),
        listener,
        Duration::from_secs(5),
        async move {
            let _ = stopped.await;
        },
    ));

    // A loopback client following tenant A only.
    let mut client = pb::sync_client::SyncClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::WatchRequest {
        subscribe: vec![A.into()],
        ..pb::WatchRequest::default()
    })
    .await
    .unwrap();
    let mut inbound = client
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut inbound).await;
    assert!(first.tenants.iter().any(|t| t.tenant == A));
    let version_before = cp.tenant(A).unwrap().1;
    assert_eq!(
        last_used(&cp, A, &key_a),
        json!({"ServiceName": "N/A", "Region": "N/A"})
    );

    let now = iamlet::control_plane::system_clock();
    let used_at = now - 30;
    let mut far_future = key_report(A, &key_a, now + 86_400);
    far_future.access_keys[0].region = "us-west-2".into();
    let mut bad_arn = key_report(A, &key_a, now);
    bad_arn.services[0].principal_arn = format!("arn:aws:iam::{B}:user/alice");
    tx.send(pb::WatchRequest {
        usage: vec![
            key_report(A, &key_a, used_at),
            // Not followed by this stream: refused.
            key_report(B, &key_b, used_at),
            // Malformed: refused whole, without touching the stream.
            far_future,
            bad_arn,
        ],
        ..pb::WatchRequest::default()
    })
    .await
    .unwrap();
    let counters = cp.usage_counters();
    eventually("the reports are counted", || {
        counters.accepted.load(Ordering::Relaxed) == 1
            && counters.refused_not_admitted.load(Ordering::Relaxed) == 1
            && counters.refused_malformed.load(Ordering::Relaxed) == 2
    })
    .await;
    let date = iamlet::policy::Timestamp::from_epoch_seconds(used_at).to_string();
    assert_eq!(
        last_used(&cp, A, &key_a),
        json!({"LastUsedDate": date, "ServiceName": "s3", "Region": "eu-west-1"})
    );
    // B's usage was refused; usage is no change: A's version did not move.
    assert_eq!(
        last_used(&cp, B, &key_b),
        json!({"ServiceName": "N/A", "Region": "N/A"})
    );
    assert_eq!(cp.tenant(A).unwrap().1, version_before);

    // A resend and an older report change nothing (at-least-once, merged by the latest time).
    tx.send(pb::WatchRequest {
        usage: vec![
            key_report(A, &key_a, used_at),
            key_report(A, &key_a, used_at - 3_600),
        ],
        ..pb::WatchRequest::default()
    })
    .await
    .unwrap();
    eventually("the resends are merged", || {
        counters.accepted.load(Ordering::Relaxed) == 3
    })
    .await;
    assert_eq!(last_used(&cp, A, &key_a)["LastUsedDate"], date);

    // The stream's snapshot traffic goes on: a change reaches it.
    cp.call(A, "test", "CreateUser", &json!({"UserName": "bob"}))
        .unwrap();
    let version_after = cp.tenant(A).unwrap().1;
    loop {
        let response = next(&mut inbound).await;
        if response
            .tenants
            .iter()
            .any(|t| t.tenant == A && t.version.is_some_and(|v| v.seq == version_after.seq))
        {
            break;
        }
    }

    // The credential report: the root row, alice's first key as used, bob without keys.
    let (started, _) = cp
        .call(A, "test", "GenerateCredentialReport", &json!({}))
        .unwrap();
    assert_eq!(started["State"], "STARTED");
    let (report, _) = cp
        .call(A, "test", "GetCredentialReport", &json!({}))
        .unwrap();
    assert_eq!(report["ReportFormat"], "text/csv");
    let csv = String::from_utf8(
        BASE64
            .decode(report["Content"].as_str().unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert_eq!(rows[0][0], "user");
    assert_eq!(rows[0].len(), 22);
    assert_eq!(rows[1][0], "<root_account>");
    let alice = &rows[2];
    assert_eq!(alice[0], "alice");
    assert_eq!(alice[8], "true");
    assert_eq!(alice[10], date.replace('Z', "+00:00"));
    assert_eq!(alice[11], "eu-west-1");
    assert_eq!(alice[12], "s3");
    assert_eq!(rows[3][0], "bob");
    assert_eq!(rows[3][8], "false");
    // Generating again within 4 hours reuses the report.
    let (again, _) = cp
        .call(A, "test", "GenerateCredentialReport", &json!({}))
        .unwrap();
    assert_eq!(again, json!({"State": "COMPLETE"}));

    // Access Advisor lists the service alice's policy allows, as she used it.
    let (job, _) = cp
        .call(
            A,
            "test",
            "GenerateServiceLastAccessedDetails",
            &json!({"Arn": format!("arn:aws:iam::{A}:user/alice")}),
        )
        .unwrap();
    let (details, _) = cp
        .call(
            A,
            "test",
            "GetServiceLastAccessedDetails",
            &json!({"JobId": job["JobId"]}),
        )
        .unwrap();
    assert_eq!(details["JobStatus"], "COMPLETED");
    assert_eq!(
        details["ServicesLastAccessed"],
        json!([{"ServiceName": "Amazon S3", "LastAuthenticated": date, "ServiceNamespace": "s3",
                "LastAuthenticatedEntity": format!("arn:aws:iam::{A}:user/alice"),
                "LastAuthenticatedRegion": "eu-west-1", "TotalAuthenticatedEntities": 1}])
    );

    drop(tx);
    let _ = stop.send(());
    let _ = tokio::time::timeout(HANG, serving).await;
}
