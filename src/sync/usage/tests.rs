use super::*;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

use crate::authz::Context;
use crate::sidecar::decision_log::DecisionLog;
use crate::sidecar::{Api, AuthorizeInput, Authorizer, CacheConfig, CallerId};
use crate::snapshot::test_support::{demo_tenant, NoAwsManaged};
use crate::snapshot::{SnapshotStore, SnapshotVersion, TenantSnapshot, TenantUpdate};
use crate::sync::{run_sync_with_usage, Applier, Backoff, Liveness, SyncConfig, SyncState};

const A: &str = "111122223333";
const B: &str = "444455556666";
const ALICE: &str = "arn:aws:iam::111122223333:user/eng/alice";
const APP: &str = "arn:aws:iam::111122223333:role/svc/app";

fn config() -> UsageConfig {
    UsageConfig {
        interval: Duration::from_millis(50),
        ..UsageConfig::default()
    }
}

fn user(arn: &str) -> Subject {
    Subject {
        principal_arn: Some(arn.into()),
        role_arn: None,
    }
}

fn session(role: &str) -> Subject {
    Subject {
        principal_arn: Some(role.into()),
        role_arn: Some(role.into()),
    }
}

fn at<'a>(tenant: &'a str, caller: &'a str, action: &'a str, region: &'a str) -> Use<'a> {
    Use {
        tenant,
        caller,
        action,
        region,
    }
}

/// Everything `take` returns, as one report per tenant (messages joined), for comparison.
fn joined(messages: Vec<Vec<pb::UsageReport>>) -> BTreeMap<String, pb::UsageReport> {
    let mut out: BTreeMap<String, pb::UsageReport> = BTreeMap::new();
    for report in messages.into_iter().flatten() {
        let into = out.entry(report.tenant.clone()).or_default();
        into.tenant = report.tenant;
        into.access_keys.extend(report.access_keys);
        into.services.extend(report.services);
        into.roles.extend(report.roles);
    }
    out
}

#[test]
fn uses_coalesce_into_one_entry_and_the_latest_time_wins() {
    let usage = Usage::new(config());
    let mut derived = 0;
    for t in [10, 30, 20] {
        usage.record(at(A, "AKIAALICE", "s3:GetObject", "eu-west-1"), t, || {
            derived += 1;
            user(ALICE)
        });
    }
    // What the caller is was derived once, for the entry's creation.
    assert_eq!(derived, 1);
    let stats = usage.stats();
    assert_eq!(
        (stats.recorded, stats.entries_created, stats.entries),
        (3, 1, 1)
    );
    usage.collect();
    let reports = joined(usage.take());
    let report = &reports[A];
    assert_eq!(
        report.access_keys,
        vec![pb::AccessKeyUsage {
            access_key_id: "AKIAALICE".into(),
            last_used: 30,
            service: "s3".into(),
            region: "eu-west-1".into(),
        }]
    );
    assert_eq!(
        report.services,
        vec![pb::ServiceUsage {
            principal_arn: ALICE.into(),
            service: "s3".into(),
            last_authenticated: 30,
            region: "eu-west-1".into(),
            actions: vec![pb::ActionUsage {
                action: "GetObject".into(),
                last_accessed: 30,
                region: "eu-west-1".into(),
            }],
        }]
    );
    assert!(report.roles.is_empty());
    // Taken: nothing is left to send.
    assert!(usage.take().is_empty());
}

#[test]
fn a_key_reports_the_service_and_region_of_its_latest_use() {
    let usage = Usage::new(config());
    usage.record(at(A, "AKIAALICE", "s3:GetObject", "us-east-1"), 10, || {
        user(ALICE)
    });
    usage.record(
        at(A, "AKIAALICE", "DynamoDB:GetItem", "eu-west-1"),
        20,
        || user(ALICE),
    );
    usage.record(at(A, "AKIAALICE", "s3:PutObject", "us-east-1"), 15, || {
        user(ALICE)
    });
    usage.collect();
    let report = joined(usage.take()).remove(A).unwrap();
    assert_eq!(report.access_keys.len(), 1);
    let key = &report.access_keys[0];
    assert_eq!(
        (key.last_used, key.service.as_str(), key.region.as_str()),
        (20, "dynamodb", "eu-west-1")
    );
    // Per service, with its actions: s3's last is its latest action.
    let services: BTreeMap<&str, &pb::ServiceUsage> = report
        .services
        .iter()
        .map(|s| (s.service.as_str(), s))
        .collect();
    assert_eq!(services["dynamodb"].last_authenticated, 20);
    assert_eq!(services["s3"].last_authenticated, 15);
    let s3_actions: Vec<(&str, i64)> = services["s3"]
        .actions
        .iter()
        .map(|a| (a.action.as_str(), a.last_accessed))
        .collect();
    assert_eq!(s3_actions, vec![("GetObject", 10), ("PutObject", 15)]);
}

#[test]
fn a_session_key_is_a_use_of_its_role_not_a_reported_key() {
    let usage = Usage::new(config());
    usage.record(
        at(A, "ASIASESSION1", "s3:GetObject", "us-east-1"),
        5,
        || session(APP),
    );
    usage.record(
        at(A, "ASIASESSION2", "s3:GetObject", "us-west-2"),
        7,
        || session(APP),
    );
    usage.collect();
    let report = joined(usage.take()).remove(A).unwrap();
    assert!(report.access_keys.is_empty(), "{:?}", report.access_keys);
    assert_eq!(
        report.roles,
        vec![pb::RoleUsage {
            role_arn: APP.into(),
            last_used: 7,
            region: "us-west-2".into(),
        }]
    );
    assert_eq!(report.services.len(), 1);
    assert_eq!(report.services[0].principal_arn, APP);
}

#[test]
fn the_table_is_bounded_per_tenant_and_overall_and_drops_are_counted() {
    let usage = Usage::new(UsageConfig {
        max_entries: 3,
        max_entries_per_tenant: 2,
        ..config()
    });
    for key in ["AKIA1", "AKIA2", "AKIA3"] {
        usage.record(at(A, key, "s3:GetObject", ""), 1, || user(ALICE));
    }
    assert_eq!(
        usage.stats().dropped,
        1,
        "A's third caller is past its bound"
    );
    // A known entry is still raised at the bound.
    usage.record(at(A, "AKIA1", "s3:GetObject", ""), 9, || user(ALICE));
    // Another tenant has its own bound, within the overall one.
    usage.record(at(B, "AKIAB1", "s3:GetObject", ""), 1, || user(ALICE));
    usage.record(at(B, "AKIAB2", "s3:GetObject", ""), 1, || user(ALICE));
    let stats = usage.stats();
    assert_eq!((stats.entries, stats.dropped), (3, 2), "{stats:?}");
    usage.collect();
    let reports = joined(usage.take());
    let keys = |t: &str| -> Vec<(String, i64)> {
        reports[t]
            .access_keys
            .iter()
            .map(|k| (k.access_key_id.clone(), k.last_used))
            .collect()
    };
    assert_eq!(keys(A), vec![("AKIA1".into(), 9), ("AKIA2".into(), 1)]);
    assert_eq!(keys(B), vec![("AKIAB1".into(), 1)]);
}

#[test]
fn an_entry_idle_for_an_interval_leaves_the_table_and_frees_its_place() {
    let usage = Usage::new(UsageConfig {
        max_entries_per_tenant: 1,
        ..config()
    });
    usage.record(at(A, "AKIA1", "s3:GetObject", ""), 1, || user(ALICE));
    usage.collect();
    // Used again since: stays.
    usage.record(at(A, "AKIA1", "s3:GetObject", ""), 2, || user(ALICE));
    usage.collect();
    assert_eq!(usage.stats().entries, 1);
    // Not used since the last collection: leaves, and another caller fits.
    usage.collect();
    assert_eq!(usage.stats().entries, 0);
    usage.record(at(A, "AKIA2", "s3:GetObject", ""), 3, || user(ALICE));
    assert_eq!(usage.stats().dropped, 0);
    usage.collect();
    let keys: Vec<(String, i64)> = joined(usage.take())[A]
        .access_keys
        .iter()
        .map(|k| (k.access_key_id.clone(), k.last_used))
        .collect();
    assert_eq!(keys, vec![("AKIA1".into(), 2), ("AKIA2".into(), 3)]);
}

#[test]
fn reports_are_split_into_messages_under_the_byte_budget_and_lose_nothing() {
    let budget = MIN_MESSAGE_BYTES;
    let usage = Usage::new(UsageConfig {
        max_message_bytes: budget,
        ..config()
    });
    let keys: Vec<String> = (0..3000).map(|i| format!("AKIA{i:016}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let tenant = if i.is_multiple_of(2) { A } else { B };
        usage.record(at(tenant, key, "s3:GetObject", "eu-west-1"), 1, || {
            user(ALICE)
        });
    }
    // One principal with very many actions: its ServiceUsage is split too.
    let actions: Vec<String> = (0..2000).map(|i| format!("s3:Action{i:04}")).collect();
    for action in &actions {
        usage.record(at(A, ALICE, action, "eu-west-1"), 2, || user(ALICE));
    }
    usage.collect();
    let messages = usage.take();
    assert!(messages.len() > 3, "{} messages", messages.len());
    for batch in &messages {
        let message = pb::WatchRequest {
            usage: batch.clone(),
            ..pb::WatchRequest::default()
        };
        assert!(
            message.encoded_len() <= budget,
            "{} bytes over a budget of {budget}",
            message.encoded_len()
        );
    }
    let all: Vec<&pb::UsageReport> = messages.iter().flatten().collect();
    let sent_keys: BTreeSet<&str> = all
        .iter()
        .flat_map(|r| r.access_keys.iter().map(|k| k.access_key_id.as_str()))
        .collect();
    assert_eq!(sent_keys.len(), keys.len());
    let mut sent_actions: Vec<&str> = all
        .iter()
        .filter(|r| r.tenant == A)
        .flat_map(|r| &r.services)
        .filter(|s| s.service == "s3")
        .flat_map(|s| s.actions.iter().map(|a| a.action.as_str()))
        .collect();
    sent_actions.sort_unstable();
    sent_actions.dedup();
    // Every action once, and GetObject from the keys' uses.
    assert_eq!(sent_actions.len(), actions.len() + 1);
    // Each key is in the report of its own tenant.
    for report in &all {
        for k in &report.access_keys {
            let index: usize = k.access_key_id[4..].parse().unwrap();
            assert_eq!(report.tenant, if index.is_multiple_of(2) { A } else { B });
        }
    }
}

#[test]
fn what_was_not_delivered_is_restored_and_merged_with_later_uses() {
    let usage = Usage::new(config());
    usage.record(at(A, "AKIAALICE", "s3:GetObject", "us-east-1"), 10, || {
        user(ALICE)
    });
    usage.record(
        at(A, "ASIAS", "ec2:DescribeInstances", "us-east-1"),
        10,
        || session(APP),
    );
    usage.collect();
    let first = usage.take();
    // The send failed: it goes back.
    for batch in &first {
        usage.restore(batch);
    }
    assert_eq!(joined(usage.take()), joined(first.clone()));
    for batch in &first {
        usage.restore(batch);
    }
    // A later use of the key, and an older report put back again: the latest time wins.
    usage.record(at(A, "AKIAALICE", "s3:PutObject", "eu-west-1"), 20, || {
        user(ALICE)
    });
    usage.collect();
    for batch in &first {
        usage.restore(batch);
    }
    let report = joined(usage.take()).remove(A).unwrap();
    let key = &report.access_keys[0];
    assert_eq!(
        (key.last_used, key.region.as_str()),
        (20, "eu-west-1"),
        "{report:?}"
    );
    assert_eq!(report.roles[0].last_used, 10);
    let s3 = report.services.iter().find(|s| s.service == "s3").unwrap();
    let actions: Vec<(&str, i64)> = s3
        .actions
        .iter()
        .map(|a| (a.action.as_str(), a.last_accessed))
        .collect();
    assert_eq!(actions, vec![("GetObject", 10), ("PutObject", 20)]);
}

#[test]
fn the_region_is_the_requested_one_then_the_signature_then_the_resource() {
    let s3 = "arn:aws:s3:::bucket/key";
    let table = "arn:aws:dynamodb:eu-west-3:111122223333:table/t";
    assert_eq!(
        region_of(Some("eu-west-1"), Some("us-east-1"), table),
        "eu-west-1"
    );
    assert_eq!(region_of(None, Some("us-east-1"), table), "us-east-1");
    assert_eq!(region_of(None, None, table), "eu-west-3");
    assert_eq!(region_of(None, None, s3), "");
    assert_eq!(region_of(None, None, "*"), "");
}

#[test]
fn a_hit_through_a_slot_raises_its_entry_without_the_table() {
    let usage = Usage::new(config());
    let use_ = at(A, "AKIAALICE", "s3:GetObject", "eu-west-1");
    let slot = usage.record_slot(use_, 10, || user(ALICE)).unwrap();
    // Later, earlier and equal times: each is a use, the latest wins.
    for t in [20, 15, 20] {
        assert!(usage.raise(&slot, t));
    }
    let stats = usage.stats();
    assert_eq!(
        (
            stats.recorded,
            stats.raised,
            stats.entries_created,
            stats.entries
        ),
        (4, 3, 1, 1),
        "{stats:?}"
    );
    // The table and the slot are one entry: a use through the table raises what the slot
    // raises, and the other way round.
    usage.record(use_, 25, || user(ALICE));
    assert!(usage.raise(&slot, 30));
    usage.collect();
    let report = joined(usage.take()).remove(A).unwrap();
    assert_eq!(report.access_keys.len(), 1, "{report:?}");
    assert_eq!(report.access_keys[0].last_used, 30);
    assert_eq!(report.services[0].actions[0].last_accessed, 30);
    assert_eq!(usage.stats().entries_created, 1);
}

#[test]
fn a_slot_used_between_collections_keeps_its_entry() {
    let usage = Usage::new(config());
    let use_ = at(A, "AKIAALICE", "s3:GetObject", "");
    let slot = usage.record_slot(use_, 1, || user(ALICE)).unwrap();
    usage.collect();
    assert_eq!(joined(usage.take())[A].access_keys[0].last_used, 1);
    // Used since, at a later second: collected again, and it stays.
    assert!(usage.raise(&slot, 2));
    usage.collect();
    assert_eq!(usage.stats().entries, 1);
    assert_eq!(joined(usage.take())[A].access_keys[0].last_used, 2);
    assert!(usage.raise(&slot, 3));
    assert_eq!(usage.stats().entries_created, 1);
}

#[test]
fn a_hit_after_its_entry_left_the_table_is_recorded_anew_not_lost() {
    let usage = Usage::new(UsageConfig {
        max_entries_per_tenant: 1,
        ..config()
    });
    let use_ = at(A, "AKIAALICE", "s3:GetObject", "eu-west-1");
    let slot = usage.record_slot(use_, 1, || user(ALICE)).unwrap();
    usage.collect();
    usage.collect();
    // Idle for an interval: the entry left the table and freed its place.
    assert_eq!(usage.stats().entries, 0);
    assert_eq!(joined(usage.take())[A].access_keys[0].last_used, 1);
    // The slot says so, at any time, and nothing was counted through it.
    assert!(!usage.raise(&slot, 5));
    assert!(!usage.raise(&slot, 1));
    assert!(!usage.raise(&slot, i64::MAX));
    assert_eq!(usage.stats().raised, 0);
    // Recorded through the table, the use makes a new entry with a live slot.
    let fresh = usage.record_slot(use_, 5, || user(ALICE)).unwrap();
    assert!(usage.raise(&fresh, 6));
    let stats = usage.stats();
    assert_eq!(
        (
            stats.recorded,
            stats.raised,
            stats.entries_created,
            stats.entries
        ),
        (3, 1, 2, 1),
        "{stats:?}"
    );
    usage.collect();
    let report = joined(usage.take()).remove(A).unwrap();
    let key = &report.access_keys[0];
    assert_eq!((key.last_used, key.region.as_str()), (6, "eu-west-1"));
}

#[test]
fn a_slot_dropped_by_a_bound_is_none_and_counted() {
    let usage = Usage::new(UsageConfig {
        max_entries_per_tenant: 1,
        ..config()
    });
    assert!(usage
        .record_slot(at(A, "AKIA1", "s3:GetObject", ""), 1, || user(ALICE))
        .is_some());
    assert!(usage
        .record_slot(at(A, "AKIA2", "s3:GetObject", ""), 1, || user(ALICE))
        .is_none());
    assert_eq!(usage.stats().dropped, 1);
}

/// Alice's key in the demo tenant, as the control plane makes them: its id names its
/// tenant, which is how a sidecar finds the tenant of a caller.
fn alice_key_id() -> String {
    crate::directory::IdGenerator::seeded(7).access_key_id(crate::directory::IdPrefix::AccessKey, A)
}

/// The demo tenant, alice's key with a real id.
fn tenant() -> crate::directory::Tenant {
    let mut t = demo_tenant();
    if let Some(alice) = t.users.get_mut("alice") {
        alice.access_keys[0].access_key_id = alice_key_id();
    }
    t
}

fn served(store: &Arc<SnapshotStore>) {
    let snapshot = TenantSnapshot::compile(
        Arc::new(tenant()),
        SnapshotVersion::new(1, 1),
        &NoAwsManaged,
    )
    .unwrap();
    store.apply(snapshot).unwrap();
}

fn authorize(
    caller: CallerId,
    action: &str,
    resource: &str,
    region: Option<&str>,
) -> AuthorizeInput {
    let mut context = Context::new();
    if let Some(region) = region {
        context.insert_str("aws:RequestedRegion", region);
    }
    AuthorizeInput {
        caller,
        action: action.into(),
        resource: resource.into(),
        context,
        resource_tenant: None,
        resource_policy: None,
        explain: false,
        min_version: None,
        request_id: None,
    }
}

fn alice_key() -> CallerId {
    CallerId::Keys {
        access_key_id: alice_key_id(),
        secret: "secret".into(),
        session_token: None,
    }
}

#[test]
fn decisions_cache_hits_included_are_recorded_with_what_they_were_of() {
    let store = Arc::new(SnapshotStore::new());
    served(&store);
    let usage = Arc::new(Usage::new(config()));
    let api =
        Api::new(store, &CacheConfig::default(), DecisionLog::off()).with_usage(Arc::clone(&usage));
    let authorizer = Authorizer::new(Arc::new(api));
    let request = authorize(
        alice_key(),
        "s3:GetObject",
        "arn:aws:s3:::reports/q4.csv",
        Some("eu-west-1"),
    );
    let first = authorizer.authorize(&request).unwrap();
    let second = authorizer.authorize(&request).unwrap();
    assert!(first.is_allowed() && !first.cached() && second.cached());
    // A denied request is a use too; a session named by ARN is a use of its role, whose ARN
    // (with its path) comes from the snapshot.
    let denied = authorize(alice_key(), "iam:CreateUser", "*", None);
    assert!(!authorizer.authorize(&denied).unwrap().is_allowed());
    let by_session = authorize(
        CallerId::PrincipalArn("arn:aws:sts::111122223333:assumed-role/app/s1".into()),
        "s3:ListBucket",
        "arn:aws:s3:::shared",
        Some("us-west-2"),
    );
    authorizer.authorize(&by_session).unwrap();
    // A request that fails (an unknown key) is no decision and no use.
    let unknown = CallerId::Keys {
        access_key_id: "AKIANOBODY".into(),
        secret: "x".into(),
        session_token: None,
    };
    assert!(authorizer
        .authorize(&authorize(unknown, "s3:GetObject", "*", None))
        .is_err());
    let stats = usage.stats();
    assert_eq!((stats.recorded, stats.entries_created), (4, 3), "{stats:?}");
    usage.collect();
    let report = joined(usage.take()).remove(A).unwrap();
    let keys: Vec<&str> = report
        .access_keys
        .iter()
        .map(|k| k.access_key_id.as_str())
        .collect();
    assert_eq!(keys, vec![alice_key_id().as_str()]);
    let services: BTreeSet<(&str, &str)> = report
        .services
        .iter()
        .map(|s| (s.principal_arn.as_str(), s.service.as_str()))
        .collect();
    assert_eq!(
        services,
        BTreeSet::from([(ALICE, "iam"), (ALICE, "s3"), (APP, "s3")])
    );
    assert_eq!(
        report.roles,
        vec![pb::RoleUsage {
            role_arn: APP.into(),
            last_used: report.roles[0].last_used,
            region: "us-west-2".into(),
        }]
    );
}

/// A control plane that serves one tenant and keeps every request of the stream.
struct Recorder {
    update: TenantUpdate,
    requests: mpsc::UnboundedSender<pb::WatchRequest>,
}

#[tonic::async_trait]
impl pb::sync_server::Sync for Recorder {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, tonic::Status>>;

    async fn watch(
        &self,
        request: tonic::Request<tonic::Streaming<pb::WatchRequest>>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let update = self.update.clone();
        let requests = self.requests.clone();
        tokio::spawn(async move {
            let first = pb::WatchResponse {
                nonce: "1".into(),
                tenants: vec![pb::TenantSnapshot {
                    tenant: update.account_id,
                    version: Some(update.version.into()),
                    sha256: update.sha256,
                    payload: update.payload,
                    signature: update.signature.map(|s| pb::SnapshotSignature {
                        key_id: s.key_id,
                        store: Some(pb::StoreIdentity {
                            id: s.store.id,
                            epoch: s.store.epoch,
                        }),
                        value: s.value,
                    }),
                }],
                ..pb::WatchResponse::default()
            };
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(m)) => {
                            let _ = requests.send(m);
                        }
                        _ => return,
                    },
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        let heartbeat = pb::WatchResponse {
                            heartbeat: Some(pb::Heartbeat { server_time_ms: 0 }),
                            ..pb::WatchResponse::default()
                        };
                        if tx.send(Ok(heartbeat)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }
}

/// The recording control plane's snapshot signing key.
fn recorder_key() -> &'static crate::snapshot::SigningKey {
    static KEY: std::sync::OnceLock<crate::snapshot::SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| crate::snapshot::SigningKey::generate("recorder").unwrap().0)
}

async fn recorder() -> (SocketAddr, mpsc::UnboundedReceiver<pb::WatchRequest>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (requests, received) = mpsc::unbounded_channel();
    // As a control plane's commit does: sidecars receive date keys of today's day.
    let mut shipped = tenant();
    shipped.roll_sidecar_keys(
        &mut crate::directory::IdGenerator::seeded(1),
        crate::policy::Timestamp::now().epoch_seconds(),
    );
    let service = Recorder {
        update: TenantUpdate::signed(
            &shipped,
            SnapshotVersion::new(1, 1),
            recorder_key(),
            &crate::snapshot::StoreRef {
                id: "recorder".into(),
                epoch: 1,
            },
        )
        .unwrap(),
        requests,
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::sync_server::SyncServer::new(service))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, received)
}

/// The next request of the stream that carries usage.
async fn next_usage(
    received: &mut mpsc::UnboundedReceiver<pb::WatchRequest>,
) -> Vec<pb::UsageReport> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let request = received.recv().await.expect("the stream is open");
            if !request.usage.is_empty() {
                return request.usage;
            }
        }
    })
    .await
    .expect("a usage report within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_reaches_the_control_plane_on_the_sync_stream_and_is_flushed_at_shutdown() {
    let (addr, mut received) = recorder().await;
    let store = Arc::new(SnapshotStore::new());
    let applier = Arc::new(
        Applier::new(Arc::clone(&store), None, Arc::new(NoAwsManaged)).with_trust(
            crate::snapshot::SnapshotTrust::keys(
                crate::snapshot::TrustedKeys::parse(&recorder_key().trust_line()).unwrap(),
            ),
        ),
    );
    let usage = Arc::new(Usage::new(UsageConfig {
        interval: Duration::from_millis(200),
        ..UsageConfig::default()
    }));
    let state = Arc::new(SyncState::default());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_sync_with_usage(
        applier,
        SyncConfig {
            endpoint: format!("http://{addr}"),
            subscribe: vec!["*".into()],
            sidecar_id: "usage-test".into(),
            backoff: Backoff::default(),
            tls: None,
            credentials: None,
            liveness: Liveness::default(),
        },
        Some(Arc::clone(&usage)),
        Arc::clone(&state),
        shutdown,
    ));
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.version(A).is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the tenant arrives on the stream");
    let authorizer = Authorizer::new(Arc::new(
        Api::new(
            Arc::clone(&store),
            &CacheConfig::default(),
            DecisionLog::off(),
        )
        .with_usage(Arc::clone(&usage)),
    ));
    let before = crate::policy::Timestamp::now().epoch_seconds();
    let decision = authorizer
        .authorize(&authorize(
            alice_key(),
            "s3:GetObject",
            "arn:aws:s3:::reports/q4.csv",
            Some("eu-west-1"),
        ))
        .unwrap();
    assert!(decision.is_allowed());
    let after = crate::policy::Timestamp::now().epoch_seconds();
    let reports = next_usage(&mut received).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert_eq!(report.tenant, A);
    assert_eq!(report.access_keys.len(), 1, "{report:?}");
    let key = &report.access_keys[0];
    assert_eq!(
        (
            key.access_key_id.as_str(),
            key.service.as_str(),
            key.region.as_str()
        ),
        (alice_key_id().as_str(), "s3", "eu-west-1")
    );
    assert!((before..=after).contains(&key.last_used), "{key:?}");
    assert_eq!(report.services.len(), 1);
    assert_eq!(report.services[0].principal_arn, ALICE);
    assert_eq!(report.services[0].actions[0].action, "GetObject");
    let stats = usage.stats();
    assert!(
        stats.messages_sent >= 1 && stats.bytes_sent > 0,
        "{stats:?}"
    );

    // A use just before shutdown is not left behind: the stream flushes it on its way out.
    authorizer
        .authorize(&authorize(
            alice_key(),
            "s3:PutObject",
            "arn:aws:s3:::home/alice/x",
            Some("us-east-2"),
        ))
        .unwrap();
    stop.send(true).unwrap();
    let flushed = next_usage(&mut received).await;
    let key = &flushed[0].access_keys[0];
    assert_eq!(
        (key.service.as_str(), key.region.as_str()),
        ("s3", "us-east-2")
    );
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the stream stops")
        .unwrap();
}

#[test]
fn a_cached_decision_whose_entry_left_the_table_records_its_hits_anew() {
    let store = Arc::new(SnapshotStore::new());
    served(&store);
    let usage = Arc::new(Usage::new(config()));
    let api =
        Api::new(store, &CacheConfig::default(), DecisionLog::off()).with_usage(Arc::clone(&usage));
    let authorizer = Authorizer::new(Arc::new(api));
    let request = authorize(
        alice_key(),
        "s3:GetObject",
        "arn:aws:s3:::reports/q4.csv",
        Some("eu-west-1"),
    );
    assert!(!authorizer.authorize(&request).unwrap().cached());
    assert!(authorizer.authorize(&request).unwrap().cached());
    let stats = usage.stats();
    assert_eq!((stats.recorded, stats.raised), (2, 1), "{stats:?}");
    usage.collect();
    usage.collect();
    assert_eq!(usage.stats().entries, 0, "idle for an interval, it left");
    let _ = usage.take();
    // The decision is still cached; its hit is a use all the same, of a new entry.
    assert!(authorizer.authorize(&request).unwrap().cached());
    let stats = usage.stats();
    assert_eq!(
        (
            stats.recorded,
            stats.raised,
            stats.entries_created,
            stats.entries
        ),
        (3, 1, 2, 1),
        "{stats:?}"
    );
    // The cached decision now holds the new entry: the next hit is raised in place again.
    assert!(authorizer.authorize(&request).unwrap().cached());
    let stats = usage.stats();
    assert_eq!((stats.recorded, stats.raised), (4, 2), "{stats:?}");
    usage.collect();
    let report = joined(usage.take()).remove(A).unwrap();
    let key = &report.access_keys[0];
    assert_eq!(
        (
            key.access_key_id.as_str(),
            key.service.as_str(),
            key.region.as_str()
        ),
        (alice_key_id().as_str(), "s3", "eu-west-1")
    );
}

#[test]
fn a_cached_decision_is_of_one_region_even_where_no_policy_reads_it() {
    let store = Arc::new(SnapshotStore::new());
    served(&store);
    let usage = Arc::new(Usage::new(config()));
    let api =
        Api::new(store, &CacheConfig::default(), DecisionLog::off()).with_usage(Arc::clone(&usage));
    let authorizer = Authorizer::new(Arc::new(api));
    let in_region = |region| {
        authorize(
            alice_key(),
            "s3:GetObject",
            "arn:aws:s3:::reports/q4.csv",
            Some(region),
        )
    };
    // No policy of the demo tenant reads aws:RequestedRegion, yet a request in another region
    // is another use, so it is not answered by the first one's cached decision.
    assert!(!authorizer
        .authorize(&in_region("eu-west-1"))
        .unwrap()
        .cached());
    assert!(!authorizer
        .authorize(&in_region("us-east-1"))
        .unwrap()
        .cached());
    assert!(authorizer
        .authorize(&in_region("eu-west-1"))
        .unwrap()
        .cached());
    assert!(authorizer
        .authorize(&in_region("us-east-1"))
        .unwrap()
        .cached());
    let stats = usage.stats();
    assert_eq!(
        (stats.recorded, stats.raised, stats.entries_created),
        (4, 2, 2),
        "{stats:?}"
    );
    assert_eq!(stats.entries, 2);
}
