//! Issue #17, item 7: STS calls at a real sidecar shipped to the control plane on the sync
//! stream, found by `LookupEvents` beside the admin changes, and exported in CloudTrail's
//! record format without a secret; and what the control plane refuses of a bare stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::serve_control_plane;
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{
    spawn_sidecar, AssumeRoleInput, CallerId, SecurityTokenService, SidecarConfig, TrailConfig,
};
use iamlet::sync::{Backoff, Readiness};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::support::{eventually, temp_dir, HANG};

const A: &str = "111122223333";
const B: &str = "444455556666";

/// Serves `cp`'s admin and sync APIs on loopback; returns the address.
async fn serve(cp: &Arc<ControlPlane>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_control_plane(
        Arc::clone(cp),
        listener,
        Duration::from_secs(5),
        std::future::pending(),
    ));
    addr
}

fn call(cp: &ControlPlane, action: &str, parameters: &Value) -> Value {
    cp.call(A, "operator:test", action, parameters)
        .unwrap_or_else(|e| panic!("{action}: {e}"))
        .0
}

/// Every page of `LookupEvents` with `parameters`, `MaxResults` 2 (so that paging is
/// exercised): the events, newest first.
fn lookup_all(cp: &ControlPlane, mut parameters: serde_json::Map<String, Value>) -> Vec<Value> {
    parameters.insert("MaxResults".into(), json!(2));
    let mut events = Vec::new();
    loop {
        let page = call(cp, "LookupEvents", &Value::Object(parameters.clone()));
        events.extend(page["Events"].as_array().unwrap().iter().cloned());
        match page.get("NextToken").and_then(Value::as_str) {
            Some(next) => {
                parameters.insert("NextToken".into(), json!(next));
            }
            None => return events,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assume_role_at_the_sidecar_is_looked_up_and_exported_without_a_secret() {
    let root = temp_dir("trail", "e2e");
    let store = SqliteStore::open(&root.join("iamlet.db"), None).unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    cp.create_tenant(A, None, "operator:test").unwrap();
    call(&cp, "CreateUser", &json!({"UserName": "alice"}));
    let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sts:AssumeRole","iam:ChangePassword"],"Resource":"*"}]}"#;
    call(
        &cp,
        "PutUserPolicy",
        &json!({"UserName": "alice", "PolicyName": "p", "PolicyDocument": allow}),
    );
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:user/alice"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = call(
        &cp,
        "CreateRole",
        &json!({"RoleName": "app", "AssumeRolePolicyDocument": trust}),
    );
    let role_arn = role["Role"]["Arn"].as_str().unwrap().to_owned();
    let key = call(&cp, "CreateAccessKey", &json!({"UserName": "alice"}));
    let key_id = key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned();
    let secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let (first_password, second_password) = ("Trail-first-Pa55word!", "Trail-second-Pa55word!");
    call(
        &cp,
        "CreateLoginProfile",
        &json!({"UserName": "alice", "Password": first_password}),
    );
    call(
        &cp,
        "ChangePassword",
        &json!({"UserName": "alice", "OldPassword": first_password, "NewPassword": second_password}),
    );

    let addr = serve(&cp).await;
    let (_stop, shutdown) = watch::channel(false);
    let (handle, _sync) = spawn_sidecar(
        &SidecarConfig {
            control_plane: format!("http://{addr}"),
            readiness: Readiness::Tenants(vec![A.into()]),
            state_dir: root.join("sidecar"),
            sidecar_id: "trail".into(),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                multiplier: 1.6,
                jitter: 0.2,
            },
            trail: Some(TrailConfig {
                interval: Duration::from_millis(100),
                ..TrailConfig::default()
            }),
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown,
    );
    eventually("the sidecar serves A", || handle.is_ready()).await;
    let sts = SecurityTokenService::new(Arc::clone(&handle.api));
    let input = AssumeRoleInput {
        caller: Some(CallerId::Keys {
            access_key_id: key_id.clone(),
            secret: secret.clone(),
            session_token: None,
        }),
        role_arn: role_arn.clone(),
        role_session_name: "trail-session".into(),
        duration_seconds: Some(900),
        ..AssumeRoleInput::default()
    };
    let issued = sts.assume_role(&input).unwrap();
    // A refused call is an event too, with AWS's code.
    let denied = sts
        .assume_role(&AssumeRoleInput {
            role_arn: format!("arn:aws:iam::{A}:role/missing"),
            ..input.clone()
        })
        .unwrap_err();

    let by_name = |name: &str| {
        let mut p = serde_json::Map::new();
        p.insert(
            "LookupAttributes".into(),
            json!([{"AttributeKey": "EventName", "AttributeValue": name}]),
        );
        p
    };
    eventually("both AssumeRole events are stored", || {
        lookup_all(&cp, by_name("AssumeRole")).len() == 2
    })
    .await;
    let events = lookup_all(&cp, by_name("AssumeRole"));
    let ok: Vec<&Value> = events
        .iter()
        .filter(|e| {
            let r: Value = serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
            r.get("errorCode").is_none()
        })
        .collect();
    assert_eq!(ok.len(), 1, "{events:#?}");
    let event = ok[0];
    assert_eq!(event["EventSource"], "sts.amazonaws.com");
    assert_eq!(event["AccessKeyId"], key_id.as_str());
    assert_eq!(event["Username"], "alice");
    assert_eq!(event["ReadOnly"], "true");
    let record: Value = serde_json::from_str(event["CloudTrailEvent"].as_str().unwrap()).unwrap();
    assert_eq!(record["eventVersion"], "1.08");
    assert_eq!(record["eventType"], "AwsApiCall");
    assert_eq!(record["eventCategory"], "Management");
    assert_eq!(record["managementEvent"], true);
    assert_eq!(record["recipientAccountId"], A);
    assert_eq!(record["userIdentity"]["type"], "IAMUser");
    assert_eq!(record["userIdentity"]["accessKeyId"], key_id.as_str());
    assert_eq!(
        record["userIdentity"]["arn"],
        format!("arn:aws:iam::{A}:user/alice")
    );
    assert_eq!(
        record["requestParameters"],
        json!({"roleArn": role_arn, "roleSessionName": "trail-session", "durationSeconds": 900})
    );
    assert_eq!(
        record["responseElements"]["credentials"]["accessKeyId"],
        issued.access_key_id.as_str()
    );
    assert_eq!(
        record["responseElements"]["assumedRoleUser"]["arn"],
        issued.arn.as_str()
    );
    let failed: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap())
        .filter(|r: &Value| r.get("errorCode").is_some())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["errorCode"], denied.code().as_str());
    assert_eq!(failed[0]["responseElements"], Value::Null);

    // The access key id finds it too, and the admin changes are there beside it.
    let mut by_key = serde_json::Map::new();
    by_key.insert(
        "LookupAttributes".into(),
        json!([{"AttributeKey": "AccessKeyId", "AttributeValue": key_id}]),
    );
    assert_eq!(lookup_all(&cp, by_key).len(), 2);
    let everything = lookup_all(&cp, serde_json::Map::new());
    let names: Vec<&str> = everything
        .iter()
        .map(|e| e["EventName"].as_str().unwrap())
        .collect();
    for name in [
        "CreateUser",
        "CreateAccessKey",
        "CreateLoginProfile",
        "ChangePassword",
        "AssumeRole",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let times: Vec<&str> = everything
        .iter()
        .map(|e| e["EventTime"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");

    // No secret in any field of any record: the key's secret, the session's secret and
    // token, and both passwords.
    let exported: String = everything
        .iter()
        .map(|e| format!("{}\n", e["CloudTrailEvent"].as_str().unwrap()))
        .collect();
    for (what, secret) in [
        ("alice's secret access key", secret.as_str()),
        ("the session's secret", issued.secret_access_key.as_str()),
        ("the session token", issued.session_token.as_str()),
        ("the first password", first_password),
        ("the second password", second_password),
    ] {
        assert!(!exported.contains(secret), "{what} is in the trail");
    }
    for line in exported.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        assert!(record["eventTime"].as_str().unwrap().ends_with('Z'));
        assert!(record["eventID"].is_string());
    }
}

fn event(tenant: &str, id: &str, name: &str) -> pb::TrailEvent {
    pb::TrailEvent {
        tenant: tenant.into(),
        event_id: id.into(),
        event_time_ms: iamlet::control_plane::system_clock() * 1_000,
        event_name: name.into(),
        user_identity: Some(pb::TrailIdentity {
            r#type: "IAMUser".into(),
            arn: format!("arn:aws:iam::{tenant}:user/alice"),
            account_id: tenant.into(),
            access_key_id: "AKIAEXAMPLEEXAMPLE01".into(),
            user_name: "alice".into(),
            ..pb::TrailIdentity::default()
        }),
        request_parameters_json: json!({"durationSeconds": 900, "tokenCode": "123456"}).to_string(),
        ..pb::TrailEvent::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_stream_is_deduplicated_and_refused_per_tenant_and_for_malformed_events() {
    let root = temp_dir("trail", "bare");
    let store = SqliteStore::open(&root.join("iamlet.db"), None).unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    cp.create_tenant(A, None, "operator:test").unwrap();
    cp.create_tenant(B, None, "operator:test").unwrap();
    let addr = serve(&cp).await;
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
    tokio::time::timeout(HANG, inbound.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut bad_identity = event(A, "e-4", "GetSessionToken");
    if let Some(identity) = &mut bad_identity.user_identity {
        identity.account_id = B.into();
    }
    tx.send(pb::WatchRequest {
        events: vec![
            event(A, "e-1", "GetSessionToken"),
            // A resend of the same event: stored once.
            event(A, "e-1", "GetSessionToken"),
            // Not followed by this stream.
            event(B, "e-2", "GetSessionToken"),
            // Not an event iamlet records.
            event(A, "e-3", "GetCallerIdentity"),
            // A caller of another tenant.
            bad_identity,
        ],
        ..pb::WatchRequest::default()
    })
    .await
    .unwrap();
    // An oversized message is refused whole.
    let many: Vec<pb::TrailEvent> = (0..=iamlet::control_plane::MAX_TRAIL_EVENTS)
        .map(|n| event(A, &format!("big-{n}"), "GetSessionToken"))
        .collect();
    tx.send(pb::WatchRequest {
        events: many,
        ..pb::WatchRequest::default()
    })
    .await
    .unwrap();
    let counters = cp.trail_counters();
    eventually("the events are counted", || {
        counters.accepted.load(Ordering::Relaxed) == 1
            && counters.duplicates.load(Ordering::Relaxed) == 1
            && counters.refused_not_admitted.load(Ordering::Relaxed) == 1
            && counters.refused_malformed.load(Ordering::Relaxed)
                == 2 + 1 + iamlet::control_plane::MAX_TRAIL_EVENTS as u64
    })
    .await;
    let page = cp
        .call(A, "operator:test", "LookupEvents", &json!({}))
        .unwrap()
        .0;
    let sts: Vec<&Value> = page["Events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["EventSource"] == "sts.amazonaws.com")
        .collect();
    assert_eq!(sts.len(), 1);
    assert_eq!(sts[0]["EventId"], "e-1");
    // What a sidecar sent beyond the named members (an MFA code) is not kept.
    let record: Value = serde_json::from_str(sts[0]["CloudTrailEvent"].as_str().unwrap()).unwrap();
    assert_eq!(record["requestParameters"], json!({"durationSeconds": 900}));
    let b = cp
        .call(B, "operator:test", "LookupEvents", &json!({}))
        .unwrap()
        .0;
    assert!(b["Events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["EventSource"] != "sts.amazonaws.com"));

    // The stream's snapshot traffic goes on: a change reaches it.
    cp.call(
        A,
        "operator:test",
        "CreateUser",
        &json!({"UserName": "bob"}),
    )
    .unwrap();
    let seq = cp.tenant(A).unwrap().1.seq;
    loop {
        let response = tokio::time::timeout(HANG, inbound.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if response
            .tenants
            .iter()
            .any(|t| t.tenant == A && t.version.is_some_and(|v| v.seq == seq))
        {
            break;
        }
    }
}
