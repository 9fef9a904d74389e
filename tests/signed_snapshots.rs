//! Issue #20, item 1: signed snapshots. A state file edited on disk (Deny to Allow, digest
//! recomputed, as an attacker who can write the sidecar's state directory would) is refused
//! when the sidecar restarts, and a snapshot signed by a key the sidecar does not trust never
//! loads.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use iamlet::authz::Context;
use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::{serve_control_plane_with, ServeOptions};
use iamlet::sidecar::{
    spawn_sidecar, AuthorizeInput, Authorizer, CallerId, SidecarConfig, SidecarHandle,
};
use iamlet::snapshot::{
    read_last_known_good, write_signed_last_known_good, SigningKey, SnapshotTrust, TrustedKeys,
};
use iamlet::sync::{Backoff, Readiness};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::support::{eventually, temp_dir};

const A: &str = "111122223333";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const AUDIT_LOG: &str = "arn:aws:s3:::audit-logs/2026/12/03.log";

/// A control plane with tenant A: alice may do anything in S3 but delete the audit logs.
async fn control_plane() -> (Arc<ControlPlane>, SocketAddr) {
    let store = SqliteStore::open_in_memory().unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    cp.create_tenant(A, None, "test").unwrap();
    cp.call(A, "test", "CreateUser", &json!({"UserName": "alice"}))
        .unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::audit-logs/*"},
    ]});
    cp.call(
        A,
        "test",
        "PutUserPolicy",
        &json!({"UserName": "alice", "PolicyName": "s3", "PolicyDocument": policy.to_string()}),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_control_plane_with(
        Arc::clone(&cp),
        listener,
        Duration::from_millis(200),
        ServeOptions::default(),
        std::future::pending(),
    ));
    (cp, addr)
}

fn sidecar(
    control_plane: &str,
    state: &Path,
    trust: SnapshotTrust,
) -> (SidecarHandle, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let (handle, _task) = spawn_sidecar(
        &SidecarConfig {
            control_plane: control_plane.to_owned(),
            readiness: Readiness::Tenants(vec![A.to_owned()]),
            state_dir: state.to_owned(),
            sidecar_id: "signed-snapshots".into(),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                multiplier: 1.6,
                jitter: 0.2,
            },
            snapshot_trust: trust,
            usage: None,
            trail: None,
            ..SidecarConfig::default()
        },
        shutdown,
    );
    (handle, stop)
}

/// Whether alice may delete an audit log, as the sidecar decides (`None`: it cannot decide,
/// the tenant is not served).
fn may_delete_audit_log(handle: &SidecarHandle) -> Option<bool> {
    Authorizer::new(Arc::clone(&handle.api))
        .authorize(&AuthorizeInput {
            caller: CallerId::PrincipalArn(ALICE.into()),
            action: "s3:DeleteObject".into(),
            resource: AUDIT_LOG.into(),
            context: Context::new(),
            resource_tenant: None,
            resource_policy: None,
            explain: false,
            min_version: None,
            request_id: None,
        })
        .ok()
        .map(|d| d.is_allowed())
}

/// No control plane listens here: a restarted sidecar has only its state directory.
const NOWHERE: &str = "http://127.0.0.1:9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_edited_deny_to_allow_is_refused_on_restart() {
    let (_cp, addr) = control_plane().await;
    let state = temp_dir("signed", "edited");
    let trust = super::support::snapshot_trust();
    {
        let (first, _stop) = sidecar(&format!("http://{addr}"), &state, trust.clone());
        eventually("tenant A at the sidecar", || first.is_ready()).await;
        assert_eq!(may_delete_audit_log(&first), Some(false), "denied at first");
        // Published first, persisted right after.
        eventually("the state file", || read_last_known_good(&state, A).is_ok()).await;
    }
    // The genuine file serves a restart without the control plane.
    let (restarted, _stop) = sidecar(NOWHERE, &state, trust.clone());
    assert!(restarted.store.version(A).is_some());
    assert_eq!(may_delete_audit_log(&restarted), Some(false));

    // The attacker edits the Deny into an Allow and recomputes the file's (unkeyed) digest,
    // keeping the signature the control plane made for the original.
    let persisted = read_last_known_good(&state, A).unwrap();
    assert_eq!(persisted.payload.matches("Deny").count(), 1);
    let edited = persisted.payload.replace("Deny", "Allow");
    write_signed_last_known_good(
        &state,
        A,
        &edited,
        persisted.version,
        persisted.store.as_ref(),
        persisted.signature.as_ref(),
    )
    .unwrap();
    let forged = read_last_known_good(&state, A).unwrap();
    assert!(forged.payload.contains("Allow") && !forged.payload.contains("Deny"));
    // Without verification the forgery would be served, and alice could delete the logs.
    let (unverified, _stop) = sidecar(NOWHERE, &state, SnapshotTrust::InsecureUnsigned);
    assert_eq!(may_delete_audit_log(&unverified), Some(true));
    drop(unverified);

    // A verifying sidecar refuses the file: the tenant is not served, nothing is allowed.
    let (refusing, _stop) = sidecar(NOWHERE, &state, trust.clone());
    assert_eq!(refusing.store.version(A), None);
    assert!(!refusing.is_ready());
    assert_ne!(may_delete_audit_log(&refusing), Some(true));
    assert!(refusing
        .signature_refusals
        .snapshot()
        .contains(&("bad_signature", 1)));

    // The same file with the signature stripped: refused as unsigned.
    write_signed_last_known_good(
        &state,
        A,
        &edited,
        persisted.version,
        persisted.store.as_ref(),
        None,
    )
    .unwrap();
    let (refusing, _stop) = sidecar(NOWHERE, &state, trust);
    assert_eq!(refusing.store.version(A), None);
    assert!(refusing
        .signature_refusals
        .snapshot()
        .contains(&("unsigned", 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_signed_by_a_foreign_key_is_refused() {
    let (cp, addr) = control_plane().await;
    let state = temp_dir("signed", "foreign");
    // A sidecar that trusts another key of the same store (say, a stale trust file).
    let (foreign, _) = SigningKey::generate(&cp.store_identity().id).unwrap();
    let trust = SnapshotTrust::keys(TrustedKeys::parse(&foreign.trust_line()).unwrap());
    let (handle, _stop) = sidecar(&format!("http://{addr}"), &state, trust);
    eventually("the update refused", || {
        handle
            .signature_refusals
            .snapshot()
            .contains(&("unknown_key", 1))
    })
    .await;
    eventually("the refusal NACKed", || handle.sync.ack_counts().1 >= 1).await;
    assert_eq!(handle.store.version(A), None);
    assert!(!handle.is_ready());
    assert_eq!(may_delete_audit_log(&handle), None);
    // Nothing was persisted from it.
    assert!(!state.join(format!("tenant-{A}.json")).exists());
}
