//! Issue #20, item 2: no long-term secret at a sidecar. A control plane and a sidecar run in
//! process; the tenants' users have access keys and a role. Every file of the sidecar's state
//! directory, and every byte the sync stream delivers (read off the wire by a bare Watch
//! client, so nothing a sidecar strips or keeps in memory matters), is searched for each
//! access key's secret; the sidecar still authenticates the keys, from what it does hold.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use iamlet::authz::Context;
use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::{serve_control_plane_with, ServeOptions};
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{
    spawn_sidecar, AuthorizeInput, Authorizer, CallerId, SidecarConfig, SidecarHandle,
};
use iamlet::snapshot::read_last_known_good;
use iamlet::sync::{Backoff, Readiness};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::support::{eventually, temp_dir, HANG};

const TENANTS: [&str; 2] = ["111122223333", "444455556666"];

/// A served world: the control plane, its address, and each tenant's access keys (id, secret).
struct World {
    cp: Arc<ControlPlane>,
    addr: SocketAddr,
    keys: Vec<(String, String, String)>,
}

async fn world() -> World {
    let store = SqliteStore::open_in_memory().unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    let mut keys = Vec::new();
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]});
    let s3 = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
    for tenant in TENANTS {
        cp.create_tenant(tenant, None, "test").unwrap();
        cp.call(
            tenant,
            "test",
            "CreateRole",
            &json!({"RoleName": "app", "AssumeRolePolicyDocument": trust.to_string()}),
        )
        .unwrap();
        for user in ["alice", "bob"] {
            cp.call(tenant, "test", "CreateUser", &json!({"UserName": user}))
                .unwrap();
            cp.call(
                tenant,
                "test",
                "PutUserPolicy",
                &json!({"UserName": user, "PolicyName": "s3", "PolicyDocument": s3.to_string()}),
            )
            .unwrap();
            // Two keys each, the quota: one of them made inactive, which ships too.
            for _ in 0..2 {
                let (created, _) = cp
                    .call(
                        tenant,
                        "test",
                        "CreateAccessKey",
                        &json!({"UserName": user}),
                    )
                    .unwrap();
                let key = &created["AccessKey"];
                keys.push((
                    tenant.to_owned(),
                    key["AccessKeyId"].as_str().unwrap().to_owned(),
                    key["SecretAccessKey"].as_str().unwrap().to_owned(),
                ));
            }
            let inactive = &keys.last().unwrap().1;
            cp.call(
                tenant,
                "test",
                "UpdateAccessKey",
                &json!({"UserName": user, "AccessKeyId": inactive, "Status": "Inactive"}),
            )
            .unwrap();
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_control_plane_with(
        Arc::clone(&cp),
        listener,
        Duration::from_millis(200),
        ServeOptions::default(),
        std::future::pending(),
    ));
    World { cp, addr, keys }
}

fn sidecar(addr: SocketAddr, state: &Path) -> (SidecarHandle, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let (handle, _task) = spawn_sidecar(
        &SidecarConfig {
            control_plane: format!("http://{addr}"),
            readiness: Readiness::Tenants(TENANTS.iter().map(|t| (*t).to_owned()).collect()),
            state_dir: state.to_owned(),
            sidecar_id: "sidecar-secrets".into(),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                multiplier: 1.6,
                jitter: 0.2,
            },
            snapshot_trust: super::support::snapshot_trust(),
            usage: None,
            trail: None,
            ..SidecarConfig::default()
        },
        shutdown,
    );
    (handle, stop)
}

/// Whether the sidecar lets the holder of `id` and `secret` read an object.
fn may_read(handle: &SidecarHandle, id: &str, secret: &str) -> bool {
    Authorizer::new(Arc::clone(&handle.api))
        .authorize(&AuthorizeInput {
            caller: CallerId::Keys {
                access_key_id: id.into(),
                secret: secret.into(),
                session_token: None,
            },
            action: "s3:GetObject".into(),
            resource: "arn:aws:s3:::reports/q4.csv".into(),
            context: Context::new(),
            resource_tenant: None,
            resource_policy: None,
            explain: false,
            min_version: None,
            request_id: None,
        })
        .is_ok_and(|d| d.is_allowed())
}

/// Every file under `dir`, recursively, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.push((path, bytes));
            }
        }
    }
    found
}

/// Every byte of every response a bare Watch client receives until each tenant has arrived.
async fn wire_dump(addr: SocketAddr) -> Vec<u8> {
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
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let response = tokio::time::timeout(HANG, inbound.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        wire.extend(prost::Message::encode_to_vec(&response));
        seen.extend(response.tenants.iter().map(|t| t.tenant.clone()));
        if TENANTS.iter().all(|t| seen.contains(*t)) && !response.more {
            break;
        }
    }
    drop(tx);
    wire
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The state directory after the sidecar persisted every tenant, and the wire dump.
async fn scanned(world: &World, name: &str) -> (Vec<(PathBuf, Vec<u8>)>, Vec<u8>) {
    let state = temp_dir("sidecar-secrets", name);
    let (handle, stop) = sidecar(world.addr, &state);
    eventually("every tenant at the sidecar", || handle.is_ready()).await;
    eventually("every tenant's state file", || {
        TENANTS
            .iter()
            .all(|t| read_last_known_good(&state, t).is_ok())
    })
    .await;
    // The sidecar serves the keys from what it holds: active keys with their secrets, and
    // nothing else.
    for (i, (_, id, secret)) in world.keys.iter().enumerate() {
        let active = i % 2 == 0;
        assert_eq!(may_read(&handle, id, secret), active, "key {id}");
        assert!(!may_read(&handle, id, &format!("{secret}x")));
    }
    stop.send_replace(true);
    let files = files(&state);
    assert!(
        files.len() >= TENANTS.len(),
        "a state file per tenant: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    (files, wire_dump(world.addr).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_key_secret_is_in_the_state_dir_or_on_the_stream() {
    let world = world().await;
    let (files, wire) = scanned(&world, "access-keys").await;
    assert_eq!(world.keys.len(), 8);
    let text = String::from_utf8_lossy(&wire);
    for (tenant, id, _) in &world.keys {
        // What was scanned is the right thing: every tenant and key is in it.
        assert!(
            text.contains(tenant.as_str()) && text.contains(id.as_str()),
            "{id}"
        );
    }
    for (_, id, secret) in &world.keys {
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "the secret of {id} is in {}",
                path.display()
            );
        }
        assert!(
            !contains(&wire, secret.as_bytes()),
            "the secret of {id} is in what the stream delivered"
        );
    }
    // The control plane keeps the secrets: its own admin API still authenticates with them.
    let (held, _) = world.cp.tenant(TENANTS[0]).unwrap();
    assert!(held.users.values().flat_map(|u| &u.access_keys).all(|k| !k
        .secret
        .expose()
        .is_empty()
        && k.derived.is_none()));
}

/// The tenant-wide issuer private keys stay at the control plane (item 3): sidecars mint with
/// issuing keys certified for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_wide_issuer_private_key_is_in_the_state_dir_or_on_the_stream() {
    let world = world().await;
    let (files, wire) = scanned(&world, "issuer-keys").await;
    for tenant in TENANTS {
        let (held, _) = world.cp.tenant(tenant).unwrap();
        assert!(
            !held.issuer_keys.is_empty(),
            "tenant {tenant} has issuer keys"
        );
        for key in &held.issuer_keys {
            let private = key
                .private_key
                .as_ref()
                .expect("the control plane holds the private key");
            let text = private.expose().as_bytes().to_vec();
            let seed = data_encoding::BASE64
                .decode(&text)
                .or_else(|_| data_encoding::BASE64URL_NOPAD.decode(&text))
                .expect("the private key is base64");
            assert!(seed.len() >= 32, "issuer key {} has a seed", key.key_id);
            for needle in [text, seed] {
                for (path, bytes) in &files {
                    assert!(
                        !contains(bytes, &needle),
                        "issuer key {} of {tenant} is in {}",
                        key.key_id,
                        path.display()
                    );
                }
                assert!(
                    !contains(&wire, &needle),
                    "issuer key {} of {tenant} is in what the stream delivered",
                    key.key_id
                );
            }
        }
    }
}
