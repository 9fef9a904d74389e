//! The control plane, the snapshot stream and a sidecar, over real gRPC on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::client::render_profile;
use iamlet::control_plane::{AdminAuth, ControlPlane, OperatorKey, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::directory::Secret;
use iamlet::grpc::{aws_error_code, serve_control_plane_with, ServeOptions};
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{spawn_sidecar, SidecarConfig, SidecarHandle};
use iamlet::snapshot::SnapshotVersion;
use iamlet::sync::{Backoff, Readiness};
use tokio::net::TcpListener;
use tokio::sync::watch;

const A: &str = "111122223333";
const B: &str = "444455556666";
/// The operator key the control planes of these tests are configured with.
const OPERATOR_KEY_ID: &str = "IOPRTESTOPERATOR0001";
const OPERATOR_SECRET: &str = "operator-secret-for-the-distribution-tests";

type AdminClient = pb::admin_client::AdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, OperatorKeys>,
>;
type OperatorKeys = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// Presents the operator's key (the admin API's plain-key form) on every call.
fn operator_keys(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let metadata = request.metadata_mut();
    metadata.insert("x-iamlet-access-key-id", OPERATOR_KEY_ID.parse().unwrap());
    metadata.insert(
        "x-iamlet-secret-access-key",
        OPERATOR_SECRET.parse().unwrap(),
    );
    Ok(request)
}

async fn admin_client(addr: SocketAddr) -> Result<AdminClient, tonic::transport::Error> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    Ok(pb::admin_client::AdminClient::with_interceptor(
        channel,
        operator_keys as OperatorKeys,
    ))
}

fn temp_dir(name: &str) -> PathBuf {
    super::support::temp_dir("e2e", name)
}

/// A control plane on its own runtime, so that killing it ends every task it has (the accept
/// loop, each connection, each stream) at once, as a crash would.
struct RunningControlPlane {
    control_plane: Arc<ControlPlane>,
    runtime: tokio::runtime::Runtime,
}

impl RunningControlPlane {
    fn start(data: &std::path::Path, addr: SocketAddr) -> (Self, SocketAddr) {
        let store = SqliteStore::open(&data.join("iamlet.db"), None).unwrap();
        let control_plane = Arc::new(super::support::signed(
            ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
        ));
        // The previous instance's runtime releases the port in the background: retry briefly.
        let started = Instant::now();
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => break listener,
                Err(_) if started.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot bind {addr}: {e}"),
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
            let options = ServeOptions {
                admin_auth: Some(Arc::new(AdminAuth::new(
                    vec![OperatorKey {
                        name: "test".into(),
                        access_key_id: OPERATOR_KEY_ID.into(),
                        secret: Secret::new(OPERATOR_SECRET),
                    }],
                    Vec::new(),
                ))),
                ..ServeOptions::default()
            };
            let _ = serve_control_plane_with(
                cp,
                listener,
                Duration::from_millis(200),
                options,
                std::future::pending(),
            )
            .await;
        });
        (
            Self {
                control_plane,
                runtime,
            },
            bound,
        )
    }

    /// RELIABILITY T01: no graceful drain; connections and streams are cut.
    fn kill(self) {
        self.runtime.shutdown_background();
    }
}

fn sidecar(
    endpoint: SocketAddr,
    readiness: Readiness,
    state: &std::path::Path,
) -> (SidecarHandle, watch::Sender<bool>) {
    sidecar_with_key(
        endpoint,
        readiness,
        state,
        None,
        super::support::snapshot_trust(),
    )
}

/// [`sidecar`] presenting a sync key.
fn sidecar_with_key(
    endpoint: SocketAddr,
    readiness: Readiness,
    state: &std::path::Path,
    sync_credentials: Option<iamlet::client::Profile>,
    snapshot_trust: iamlet::snapshot::SnapshotTrust,
) -> (SidecarHandle, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let (handle, _task) = spawn_sidecar(
        &SidecarConfig {
            control_plane: format!("http://{endpoint}"),
            readiness,
            state_dir: state.to_owned(),
            sidecar_id: "test-sidecar".into(),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                multiplier: 1.6,
                jitter: 0.2,
            },
            sync_credentials,
            snapshot_trust,
            ..SidecarConfig::default()
        },
        shutdown,
    );
    (handle, stop)
}

use super::support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_sidecars_which_survive_the_control_plane() {
    let data = temp_dir("cp");
    let state = temp_dir("sidecar");
    let (cp, addr) = RunningControlPlane::start(&data, "127.0.0.1:0".parse().unwrap());

    let (sidecar, _stop) = sidecar(addr, Readiness::All, &state);
    eventually("the first response", || sidecar.sync.full_response_seen()).await;
    assert!(
        sidecar.is_ready(),
        "an empty control plane is a complete answer"
    );

    // An admin change over gRPC reaches the sidecar.
    let mut admin = admin_client(addr).await.unwrap();
    admin
        .create_tenant(pb::CreateTenantRequest {
            account_id: A.into(),
            alias: "demo".into(),
        })
        .await
        .unwrap();
    eventually("tenant A at the sidecar", || {
        sidecar.store.version(A).is_some()
    })
    .await;
    assert_eq!(
        sidecar.store.load(A).unwrap().tenant().alias.as_deref(),
        Some("demo")
    );
    let duplicate = admin
        .create_tenant(pb::CreateTenantRequest {
            account_id: A.into(),
            alias: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        aws_error_code(&duplicate).as_deref(),
        Some("EntityAlreadyExists")
    );
    assert_eq!(duplicate.code(), tonic::Code::AlreadyExists);
    let changes = admin
        .list_changes(pb::ListChangesRequest {
            tenant: A.into(),
            after_seq: 0,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, "CreateTenant");

    // T01: the control plane dies; the sidecar keeps serving what it has.
    let served = sidecar.store.version(A).unwrap();
    cp.kill();
    eventually("the sidecar noticing", || !sidecar.sync.connected()).await;
    assert_eq!(sidecar.store.version(A), Some(served));

    // It comes back on the same address with the same data, and a new change flows.
    let (cp, _) = RunningControlPlane::start(&data, addr);
    cp.control_plane.create_tenant(B, None, "test").unwrap();
    eventually("tenant B after the restart", || {
        sidecar.store.version(B).is_some()
    })
    .await;
    assert_eq!(
        sidecar.store.version(A),
        Some(served),
        "A was not re-sent or changed"
    );
    cp.control_plane.delete_tenant(B, "test").unwrap();
    eventually("tenant B's removal", || sidecar.store.version(B).is_none()).await;
    // Its last known good file is gone too: a restart must not serve a removed tenant.
    eventually("B's file removed", || {
        !state.join(format!("tenant-{B}.json")).exists()
    })
    .await;
    assert!(state.join(format!("tenant-{A}.json")).exists());
    cp.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_boots_from_disk_while_the_control_plane_is_down() {
    // RELIABILITY T10 over the real process wiring.
    let data = temp_dir("boot-cp");
    let state = temp_dir("boot-sidecar");
    let (cp, addr) = RunningControlPlane::start(&data, "127.0.0.1:0".parse().unwrap());
    cp.control_plane
        .create_tenant(A, Some("demo"), "test")
        .unwrap();
    {
        let (first, stop) = sidecar(addr, Readiness::Tenants(vec![A.into()]), &state);
        eventually("tenant A", || first.store.version(A).is_some()).await;
        // The sidecar serves a version before it writes it to disk: wait for the file.
        eventually("A's file written", || {
            state.join(format!("tenant-{A}.json")).exists()
        })
        .await;
        let _ = stop.send(true);
    }
    let cp_epoch = cp.control_plane.epoch();
    cp.kill();

    // No control plane now: the new sidecar is ready from its state directory alone.
    let (second, _stop) = sidecar(addr, Readiness::Tenants(vec![A.into()]), &state);
    assert!(second.is_ready());
    assert_eq!(
        second.store.version(A),
        Some(SnapshotVersion::new(cp_epoch, 1))
    );
    assert!(!second.sync.connected());

    // A sidecar that must serve a tenant it has never seen is not ready (T14).
    let other_state = temp_dir("boot-empty");
    let (third, _stop) = sidecar(
        addr,
        Readiness::Tenants(vec![A.into(), B.into()]),
        &other_state,
    );
    assert!(!third.is_ready());
}

/// The real `iamlet control-plane` process on a free port.
struct ControlPlaneProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl ControlPlaneProcess {
    fn spawn(data: &std::path::Path, addr: Option<SocketAddr>) -> Self {
        Self::spawn_with(data, addr, &[])
    }

    fn spawn_with(data: &std::path::Path, addr: Option<SocketAddr>, extra: &[&str]) -> Self {
        let addr = addr.unwrap_or_else(|| {
            // Reserve a free port, then hand it to the process.
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        });
        let operators = data.join("operator-credentials");
        if !operators.exists() {
            std::fs::write(
                &operators,
                render_profile("test", OPERATOR_KEY_ID, OPERATOR_SECRET),
            )
            .unwrap();
        }
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_iamlet"))
            .args(["control-plane", "--listen", &addr.to_string(), "--data-dir"])
            .arg(data)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self { child, addr }
    }

    async fn admin(&self) -> AdminClient {
        let started = Instant::now();
        loop {
            match admin_client(self.addr).await {
                Ok(client) => return client,
                Err(e) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "control plane did not start: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_change_survives_sigkill_of_the_control_plane() {
    let data = temp_dir("sigkill");
    let cp = ControlPlaneProcess::spawn(&data, None);
    let mut admin = cp.admin().await;
    admin
        .create_tenant(pb::CreateTenantRequest {
            account_id: A.into(),
            alias: String::new(),
        })
        .await
        .unwrap();
    let created = admin
        .call(pb::CallRequest {
            tenant: A.into(),
            action: "CreateUser".into(),
            parameters_json: r#"{"UserName":"alice"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.version.unwrap().seq, 2);
    let addr = cp.addr;
    cp.kill();

    let cp = ControlPlaneProcess::spawn(&data, Some(addr));
    let mut admin = cp.admin().await;
    let user = admin
        .call(pb::CallRequest {
            tenant: A.into(),
            action: "GetUser".into(),
            parameters_json: r#"{"UserName":"alice"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let user: serde_json::Value = serde_json::from_str(&user.result_json).unwrap();
    assert_eq!(user["User"]["UserName"], "alice");
    let changes = admin
        .list_changes(pb::ListChangesRequest {
            tenant: A.into(),
            after_seq: 0,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let actions: Vec<&str> = changes.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(actions, ["CreateTenant", "CreateUser"]);
    // A refused call changes nothing and records nothing.
    let refused = admin
        .call(pb::CallRequest {
            tenant: A.into(),
            action: "CreateUser".into(),
            parameters_json: r#"{"UserName":"ALICE"}"#.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        aws_error_code(&refused).as_deref(),
        Some("EntityAlreadyExists")
    );
    let after = admin
        .list_changes(pb::ListChangesRequest {
            tenant: A.into(),
            after_seq: 0,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(after.len(), 2);
    cp.kill();
}

fn admin_cli(endpoint: SocketAddr, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .arg("admin")
        .args(args)
        .env("IAMLET_ENDPOINT", format!("http://{endpoint}"))
        .env("AWS_ACCESS_KEY_ID", OPERATOR_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", OPERATOR_SECRET)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_tenant_applies_exports_and_compares_equal() {
    let data = temp_dir("declare");
    let cp = ControlPlaneProcess::spawn(&data, None);
    let _ = cp.admin().await;
    let spec_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tenant-spec.yaml"
    );

    let applied = admin_cli(cp.addr, &["apply", "-f", spec_path]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let applied: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert!(applied["Actions"].as_array().unwrap().len() >= 5);

    let exported = admin_cli(cp.addr, &["export", "--tenant", A, "--format", "json"]);
    assert!(exported.status.success());
    let declared = iamlet::control_plane::TenantSpec::from_yaml_or_json(
        &std::fs::read_to_string(spec_path).unwrap(),
    )
    .unwrap();
    let exported = iamlet::control_plane::TenantSpec::from_yaml_or_json(
        std::str::from_utf8(&exported.stdout).unwrap(),
    )
    .unwrap();
    assert_eq!(exported.normalized(), declared.normalized());

    // Idempotent: applying again changes nothing and records nothing.
    let again = admin_cli(cp.addr, &["apply", "-f", spec_path]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["Actions"], serde_json::json!([]));
    let changes = admin_cli(cp.addr, &["list-changes", "--tenant", A]);
    let changes: serde_json::Value = serde_json::from_slice(&changes.stdout).unwrap();
    let actions: Vec<&str> = changes["Changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["CreateTenant", "ApplyTenant"]);

    // A spec that cannot apply changes nothing and says why.
    let bad = data.join("bad.yaml");
    std::fs::write(
        &bad,
        "AccountId: \"111122223333\"\nUsers:\n  - UserName: bob\n    Groups: [nobody]\n",
    )
    .unwrap();
    let refused = admin_cli(cp.addr, &["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("InvalidTenantSpec"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    cp.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_larger_than_a_grpc_message_reaches_a_new_sidecar_in_chunks() {
    let data = temp_dir("chunks");
    let state = temp_dir("chunks-sidecar");
    let (cp, addr) = RunningControlPlane::start(&data, "127.0.0.1:0".parse().unwrap());
    // 8 tenants of 130 managed policies of ~5.5 kB each: about 6 MB, past gRPC's usual 4 MiB.
    let resources: Vec<String> = (0..150)
        .map(|j| format!("arn:aws:s3:::bucket-{j}/prefix-{j}/*"))
        .collect();
    let document = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": resources}]
    });
    let mut accounts = Vec::new();
    for t in 0..8u64 {
        let account = format!("{:012}", 555_500_000_000 + t);
        let policies: Vec<serde_json::Value> = (0..130)
            .map(|i| serde_json::json!({"PolicyName": format!("p{i}"), "PolicyDocument": document}))
            .collect();
        let spec =
            serde_json::json!({"AccountId": account, "ManagedPolicies": policies}).to_string();
        let spec = iamlet::control_plane::TenantSpec::from_yaml_or_json(&spec).unwrap();
        cp.control_plane.apply_spec(&spec, "test", false).unwrap();
        accounts.push(account);
    }
    let total: usize = cp
        .control_plane
        .tenants()
        .iter()
        .map(|(t, _)| serde_json::to_string(&**t).unwrap().len())
        .sum();
    assert!(total > 5 << 20, "the state is only {total} bytes");

    let (sidecar, _stop) = sidecar(addr, Readiness::All, &state);
    eventually("the complete state", || sidecar.sync.full_response_seen()).await;
    for account in &accounts {
        assert!(
            sidecar.store.version(account).is_some(),
            "{account} missing"
        );
    }
    assert!(sidecar.is_ready());
    cp.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_authorize_through_the_sidecar() {
    let data = temp_dir("authorize");
    let state = temp_dir("authorize-sidecar");
    let (cp, addr) = RunningControlPlane::start(&data, "127.0.0.1:0".parse().unwrap());
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tenant-spec.yaml"
    ))
    .unwrap();
    let spec = iamlet::control_plane::TenantSpec::from_yaml_or_json(&spec).unwrap();
    cp.control_plane.apply_spec(&spec, "test", false).unwrap();
    cp.control_plane
        .call(
            A,
            "test",
            "CreateUser",
            &serde_json::json!({"UserName": "bob"}),
        )
        .unwrap();

    let (handle, _stop) = sidecar(addr, Readiness::Tenants(vec![A.into()]), &state);
    eventually("tenant A", || handle.is_ready()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(iamlet::grpc::serve_sidecar(
        handle.clone(),
        listener,
        std::future::pending(),
    ));
    let mut client = loop {
        if let Ok(c) =
            pb::authorizer_client::AuthorizerClient::connect(format!("http://{local}")).await
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let alice = "arn:aws:iam::111122223333:user/eng/alice";
    let ask = |principal: &str, action: &str, resource: &str| pb::AuthorizeRequest {
        caller: Some(pb::authorize_request::Caller::PrincipalArn(
            principal.into(),
        )),
        action: action.into(),
        resource: resource.into(),
        ..pb::AuthorizeRequest::default()
    };

    // Allowed through her group's managed policy, with the deciding statement and version.
    let allowed = client
        .authorize(ask(alice, "s3:GetObject", "arn:aws:s3:::reports/q3.csv"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(allowed.decision, pb::Decision::Allow as i32);
    assert_eq!(
        allowed.statement.unwrap().policy,
        "arn:aws:iam::111122223333:policy/ReadReports"
    );
    assert_eq!(
        allowed.version.unwrap().seq,
        handle.store.version(A).unwrap().seq
    );

    // Denied with AWS's message.
    let denied = client
        .authorize(ask(alice, "s3:PutObject", "arn:aws:s3:::reports/q3.csv"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied.decision, pb::Decision::ImplicitDeny as i32);
    assert!(
        denied
            .message
            .ends_with("because no identity-based policy allows the s3:PutObject action"),
        "{}",
        denied.message
    );

    // A resource policy given with the request grants bob directly; explain lists it.
    let mut with_policy = ask(
        "arn:aws:iam::111122223333:user/bob",
        "s3:GetObject",
        "arn:aws:s3:::shared/x",
    );
    with_policy.resource_policy_json = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Bob","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"}]}"#.into();
    with_policy.explain = true;
    let granted = client.authorize(with_policy).await.unwrap().into_inner();
    assert_eq!(granted.decision, pb::Decision::Allow as i32);
    assert_eq!(granted.trace.len(), 1);
    assert_eq!(granted.trace[0].statement.as_ref().unwrap().sid, "Bob");

    // Principal keys come from the principal, never from the caller.
    let mut spoofed = ask(alice, "s3:GetObject", "arn:aws:s3:::reports/q3.csv");
    spoofed.context.insert(
        "aws:username".into(),
        pb::ContextValue {
            value: Some(pb::context_value::Value::StringValue("mallory".into())),
        },
    );
    assert_eq!(
        client
            .authorize(spoofed)
            .await
            .unwrap()
            .into_inner()
            .decision,
        pb::Decision::Allow as i32
    );

    // Requests that cannot be decided are errors that name the problem.
    let unknown = client
        .authorize(ask(
            "arn:aws:iam::111122223333:user/nobody",
            "s3:GetObject",
            "*",
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let other_tenant = client
        .authorize(ask("arn:aws:iam::999988887777:user/x", "s3:GetObject", "*"))
        .await
        .unwrap_err();
    assert_eq!(other_tenant.code(), tonic::Code::NotFound);
    let malformed = client
        .authorize(ask(alice, "GetObject", "*"))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert!(
        malformed.message().starts_with("action:"),
        "{}",
        malformed.message()
    );

    // Read-your-writes: after an admin change, asking for its version sees it.
    let (_, version) = cp
        .control_plane
        .call(
            A,
            "test",
            "RemoveUserFromGroup",
            &serde_json::json!({"GroupName": "analysts", "UserName": "alice"}),
        )
        .unwrap();
    let mut after = ask(alice, "s3:GetObject", "arn:aws:s3:::reports/q3.csv");
    after.min_version = Some(pb::Version {
        epoch: version.epoch,
        seq: version.seq,
    });
    let result = loop {
        match client.authorize(after.clone()).await {
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(2)).await
            }
            other => break other.unwrap().into_inner(),
        }
    };
    assert_eq!(result.decision, pb::Decision::ImplicitDeny as i32);
    cp.kill();
}

/// A control plane that loads a declared tenant at start and admits sidecars by sync key:
/// a sidecar with a wrong key never streams, one with the right key does, and what it
/// receives has no root key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_keys_admit_sidecars_and_no_root_key_reaches_them() {
    let data = temp_dir("sync-keys");
    let keys = data.join("sync-credentials");
    std::fs::write(
        &keys,
        render_profile(
            "sidecars",
            "IOPRSYNCKEYTEST00001",
            "sync-secret-of-the-test",
        ),
    )
    .unwrap();
    let spec = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tenant-spec.yaml"
    );
    let cp = ControlPlaneProcess::spawn_with(
        &data,
        None,
        &[
            "--sync-credentials",
            keys.to_str().unwrap(),
            "--apply",
            spec,
        ],
    );
    let mut admin = cp.admin().await;
    let changes = admin
        .list_changes(pb::ListChangesRequest {
            tenant: A.into(),
            after_seq: 0,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert_eq!(changes.last().unwrap().actor, "operator:apply");

    // The trust file the control plane process wrote for its sidecars.
    let trust = iamlet::snapshot::SnapshotTrust::keys(
        iamlet::snapshot::TrustedKeys::parse(
            &std::fs::read_to_string(data.join("snapshot-keys.pub")).unwrap(),
        )
        .unwrap(),
    );
    let with_key = |secret: &str, state: &std::path::Path| {
        sidecar_with_key(
            cp.addr,
            Readiness::Tenants(vec![A.into()]),
            state,
            Some(iamlet::client::Profile {
                access_key_id: "IOPRSYNCKEYTEST00001".into(),
                secret_access_key: Secret::new(secret),
                session_token: None,
            }),
            trust.clone(),
        )
    };
    let (good, _stop_good) = with_key("sync-secret-of-the-test", &temp_dir("sync-keys-good"));
    eventually("the keyed sidecar", || good.is_ready()).await;
    let snapshot = good.store.load(A).unwrap();
    assert!(snapshot.tenant().root_access_key.is_none());
    assert!(!snapshot.tenant().users.is_empty());

    // The wrong key: refused by the control plane, attempt after attempt, with its code.
    let (bad, _stop_bad) = with_key("guessed", &temp_dir("sync-keys-bad"));
    eventually("two refused attempts", || bad.sync.failures().0 >= 2).await;
    let why = bad.sync.failures().1.unwrap();
    assert_eq!(why.code, Some(tonic::Code::Unauthenticated), "{why:?}");
    assert!(
        why.message.contains("the sync credentials are not valid"),
        "{why:?}"
    );
    assert_eq!(bad.sync.streams_opened(), 0, "{why:?}");
    assert!(!bad.is_ready());
    assert!(bad.store.version(A).is_none());
    cp.kill();
}
