//! What an attacker's requests do to the sidecar's and the control plane's edges: oversized
//! and pathological input is refused with its real code and a bounded message, and a
//! worst-case request within the bounds never stalls other clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::control_plane::{ControlPlane, SqliteStore, TenantSpec};
use iamlet::directory::IdGenerator;
use iamlet::grpc::{aws_error_code, serve_control_plane, serve_sidecar};
use iamlet::proto::v1 as pb;
use iamlet::sidecar::{spawn_sidecar, SidecarConfig};
use iamlet::sync::Readiness;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

const A: &str = "111122223333";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

type AuthorizerClient = pb::authorizer_client::AuthorizerClient<Channel>;
type StsClient = pb::security_token_service_client::SecurityTokenServiceClient<Channel>;

struct Running {
    channel: Channel,
    cp: Arc<ControlPlane>,
    _stop: watch::Sender<bool>,
}

impl Running {
    fn authorizer(&self) -> AuthorizerClient {
        AuthorizerClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    fn sts(&self) -> StsClient {
        StsClient::new(self.channel.clone())
    }
}

/// The demo tenant in a control plane, and a sidecar serving it on loopback.
async fn start(name: &str) -> Running {
    let data = super::support::temp_dir("hardening", name);
    let store = SqliteStore::open(&data.join("iamlet.db"), None).unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    let spec =
        TenantSpec::from_yaml_or_json(include_str!("../deploy/examples/demo-tenant.yaml")).unwrap();
    cp.apply_spec(&spec, "test", false).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp_addr = listener.local_addr().unwrap();
    tokio::spawn(serve_control_plane(
        Arc::clone(&cp),
        listener,
        Duration::from_millis(200),
        std::future::pending(),
    ));
    let (stop, shutdown) = watch::channel(false);
    let (handle, _sync) = spawn_sidecar(
        &SidecarConfig {
            control_plane: format!("http://{cp_addr}"),
            readiness: Readiness::Tenants(vec![A.into()]),
            state_dir: super::support::temp_dir("hardening", &format!("{name}-sidecar")),
            sidecar_id: name.into(),
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown,
    );
    super::support::eventually_within(Duration::from_secs(20), "the sidecar to be ready", || {
        handle.is_ready()
    })
    .await;
    let local = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = local.local_addr().unwrap();
    tokio::spawn(serve_sidecar(handle, local, std::future::pending()));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        channel,
        cp,
        _stop: stop,
    }
}

fn ask(principal: &str, action: &str, resource: &str) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: Some(pb::authorize_request::Caller::PrincipalArn(
            principal.into(),
        )),
        action: action.into(),
        resource: resource.into(),
        ..pb::AuthorizeRequest::default()
    }
}

/// The refusal of `result`: its code is `code`, its AWS code `ValidationError`, and its
/// message, bounded, names `field`.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str, what: &str) {
    let Err(status) = result else {
        panic!("{what}: answered {result:?}");
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert_eq!(
        aws_error_code(&status).as_deref(),
        Some("ValidationError"),
        "{what}"
    );
    assert!(
        status.message().len() <= 2100,
        "{what}: a {}-byte message",
        status.message().len()
    );
    assert!(
        status.message().contains(field),
        "{what}: `{field}` not in {}",
        status.message()
    );
}

/// A resource policy of `statements` wildcard patterns that backtrack as much as the glob
/// matcher ever does, against a resource of 2,000 characters: the most one request within the
/// bounds can cost.
fn worst_case_request() -> pb::AuthorizeRequest {
    let statements: Vec<String> = (0..256)
        .map(|i| {
            format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::*a*b*c*d*e*f*g*{i}*"}}"#
            )
        })
        .collect();
    pb::AuthorizeRequest {
        resource_policy_json: format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        ),
        ..ask(
            ALICE,
            "s3:GetObject",
            &format!("arn:aws:s3:::{}", "ab".repeat(1_000)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_before_any_work() {
    let r = start("oversized").await;
    let mut client = r.authorizer();
    let huge = "x".repeat(1 << 20);
    let cases: Vec<(&str, pb::AuthorizeRequest, &str)> = vec![
        (
            "a 1 MB resource",
            ask(ALICE, "s3:GetObject", &format!("arn:aws:s3:::{huge}")),
            "resource",
        ),
        (
            "a 1 MB action",
            ask(ALICE, &format!("s3:{huge}"), "*"),
            "action",
        ),
        (
            "a 10 KB principal",
            ask(
                &format!("arn:aws:iam::111122223333:user/{}", "p".repeat(10_000)),
                "s3:GetObject",
                "*",
            ),
            "principal_arn",
        ),
        (
            "100,000 context keys",
            pb::AuthorizeRequest {
                context: (0..100_000)
                    .map(|i| {
                        (
                            format!("app:key{i}"),
                            pb::ContextValue {
                                value: Some(pb::context_value::Value::StringValue("v".into())),
                            },
                        )
                    })
                    .collect(),
                ..ask(ALICE, "s3:GetObject", "*")
            },
            "context",
        ),
        (
            "a 10,000-value context key",
            pb::AuthorizeRequest {
                context: [(
                    "aws:TagKeys".to_owned(),
                    pb::ContextValue {
                        value: Some(pb::context_value::Value::ListValue(pb::StringList {
                            values: vec!["k".into(); 10_000],
                        })),
                    },
                )]
                .into(),
                ..ask(ALICE, "s3:GetObject", "*")
            },
            "context[aws:TagKeys]",
        ),
        (
            "a 40 KB resource policy",
            pb::AuthorizeRequest {
                resource_policy_json: format!(
                    r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{}","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}]}}"#,
                    "s".repeat(40_000)
                ),
                ..ask(ALICE, "s3:GetObject", "*")
            },
            "resource_policy_json",
        ),
        (
            "a resource policy of 300 statements",
            pb::AuthorizeRequest {
                resource_policy_json: format!(
                    r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                    vec![
                        r#"{"Effect":"Deny","Principal":"*","Action":"s3:x","Resource":"*"}"#;
                        300
                    ]
                    .join(",")
                ),
                ..ask(ALICE, "s3:GetObject", "*")
            },
            "resource_policy_json",
        ),
    ];
    for (what, request, field) in cases {
        let started = Instant::now();
        assert_refused(client.authorize(request).await, field, what);
        // Generous for a debug build on a busy machine: the unbounded forms took seconds.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worst_case_request_never_stalls_other_clients() {
    let r = start("worst-case").await;
    // It is decided, and correctly: nothing in the policy matches the resource.
    let mut heavy = r.authorizer();
    let answer = heavy
        .authorize(worst_case_request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, pb::Decision::ImplicitDeny as i32);
    // Four clients send worst-case requests back to back while a fifth asks ordinary
    // questions; the ordinary client keeps being answered.
    let (stop, stopped) = watch::channel(false);
    let mut attackers = Vec::new();
    for _ in 0..4 {
        let mut client = r.authorizer();
        let stopped = stopped.clone();
        attackers.push(tokio::spawn(async move {
            let mut sent = 0u32;
            while !*stopped.borrow() {
                let _ = client.authorize(worst_case_request()).await;
                sent += 1;
            }
            sent
        }));
    }
    let mut normal = r.authorizer();
    let mut latencies = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        let answer = normal
            .authorize(ask(
                ALICE,
                "s3:PutObject",
                &format!("arn:aws:s3:::demo-data/home/alice/{i}.txt"),
            ))
            .await
            .unwrap()
            .into_inner();
        latencies.push(started.elapsed());
        assert_eq!(answer.decision, pb::Decision::Allow as i32);
    }
    let _ = stop.send(true);
    let mut sent = 0;
    for attacker in attackers {
        sent += attacker.await.unwrap();
    }
    assert!(sent >= 4, "the worst-case requests were answered too");
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    // A liveness bound, not a speed claim (benches/README has the figures): before the
    // bounds and the blocking pool, one such request held a worker for seconds.
    assert!(
        p99 < Duration::from_secs(1),
        "the ordinary client's p99 was {p99:?} beside {sent} worst-case requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_never_echo_unbounded_input() {
    let r = start("echo").await;
    // An STS parameter 10 KB long: the real code and a bounded message.
    let session = r
        .sts()
        .assume_role(pb::AssumeRoleRequest {
            caller: Some(pb::StsCaller {
                caller: Some(pb::sts_caller::Caller::Credentials(pb::Credentials {
                    access_key_id: format!("AKIA{}", "Q".repeat(10_000)),
                    secret_access_key: "s".repeat(10_000),
                    session_token: String::new(),
                })),
            }),
            role_arn: format!("arn:aws:iam::111122223333:role/{}", "r".repeat(10_000)),
            role_session_name: "n".repeat(10_000),
            ..pb::AssumeRoleRequest::default()
        })
        .await
        .unwrap_err();
    assert_ne!(session.code(), Code::ResourceExhausted, "{session:?}");
    assert!(
        session.message().len() <= 2100,
        "{}",
        session.message().len()
    );
    // The same for a decision request whose every field is long.
    let mut client = r.authorizer();
    for request in [
        ask(
            &format!("arn:aws:iam::111122223333:user/{}", "u".repeat(10_000)),
            "s3:GetObject",
            "*",
        ),
        ask(ALICE, &"a".repeat(1 << 20), "*"),
    ] {
        let status = client.authorize(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().len() <= 2100, "{}", status.message().len());
    }
    // And for the directory's validation errors, which quote the value: bounded.
    let error =
        r.cp.call(
            A,
            "test",
            "CreateUser",
            &serde_json::json!({"UserName": "u".repeat(10_000)}),
        )
        .unwrap_err();
    assert_eq!(error.code(), "ValidationError");
    assert!(error.to_string().len() < 600, "{}", error.to_string().len());
    assert!(error.to_string().contains("(truncated)"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_actions_and_resource_tenants_name_the_right_field() {
    let r = start("fields").await;
    let mut client = r.authorizer();
    for action in ["s3:", ":GetObject", "GetObject"] {
        assert_refused(
            client.authorize(ask(ALICE, action, "*")).await,
            "action",
            action,
        );
    }
    for tenant in ["../../x", "12345678901", "11112222333a", "*"] {
        assert_refused(
            client
                .authorize(pb::AuthorizeRequest {
                    resource_tenant: tenant.into(),
                    ..ask(ALICE, "s3:GetObject", "arn:aws:s3:::demo-data/x")
                })
                .await,
            "resource_tenant",
            tenant,
        );
    }
}

/// CPU seconds `pid` has used (user + system), from `/proc`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Out of file descriptors, a sidecar neither spins nor stops: accepts are retried at a
/// pace, counted, and served again once descriptors are free.
#[test]
fn out_of_file_descriptors_the_sidecar_neither_spins_nor_stops() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let state = super::support::temp_dir("hardening", "emfile");
    let port = |l: std::net::TcpListener| l.local_addr().unwrap().port();
    let (local, http) = (
        port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
        port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
    );
    let mut sidecar = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 48 && exec {} sidecar --insecure-unsigned-snapshots --control-plane http://127.0.0.1:9 --listen 127.0.0.1:{local} --http-listen 127.0.0.1:{http} --state-dir {}",
            env!("CARGO_BIN_EXE_iamlet"),
            state.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    };
    let started = Instant::now();
    while get("/healthz").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sidecar did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // More connections than descriptors: the accept loop meets EMFILE.
    let hogs: Vec<std::net::TcpStream> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", local)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(sidecar.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(sidecar.id()) - before;
    assert!(
        used < 0.5,
        "the sidecar used {used:.2} s of CPU in 2 s while out of descriptors (it spun)"
    );
    // Descriptors back: it serves again, and counted what it went through.
    drop(hogs);
    let started = Instant::now();
    let metrics = loop {
        if let Some(page) = get("/metrics").filter(|p| p.starts_with("HTTP/1.1 200")) {
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sidecar did not recover"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let errors = metrics
        .lines()
        .find_map(|l| l.strip_prefix("iamlet_connection_accept_errors_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(errors > 0, "no accept error counted: {metrics}");
    let _ = Command::new("kill")
        .args(["-TERM", &sidecar.id().to_string()])
        .status();
    let _ = sidecar.wait();
    let mut log = String::new();
    let _ = sidecar.stderr.take().unwrap().read_to_string(&mut log);
    assert!(log.contains("accepting a connection failed"), "{log}");
    let _ = std::fs::remove_dir_all(state);
}

/// The admin API reads a large message only from an authenticated `ApplyTenant`: anyone else's
/// is refused from its metadata, or cut at 1 MiB, before the control plane holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_admin_messages_are_read_only_from_authenticated_callers() {
    use iamlet::client::Profile;
    use iamlet::control_plane::{AdminAuth, OperatorKey};
    use iamlet::directory::Secret;
    use iamlet::grpc::{serve_control_plane_with, signed_admin_request, ServeOptions};
    let data = super::support::temp_dir("hardening", "admin-size");
    let store = SqliteStore::open(&data.join("iamlet.db"), None).unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    let operator = OperatorKey {
        name: "ops".into(),
        access_key_id: "IOPRHARDENINGTEST001".into(),
        secret: Secret::new("the-operators-secret"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_control_plane_with(
        Arc::clone(&cp),
        listener,
        Duration::from_secs(5),
        ServeOptions {
            admin_auth: Some(Arc::new(AdminAuth::new(vec![operator], Vec::new()))),
            ..ServeOptions::default()
        },
        std::future::pending(),
    ));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::admin_client::AdminClient::new(channel)
        .max_encoding_message_size(128 << 20)
        .max_decoding_message_size(128 << 20);
    // A 3 MB tenant (a YAML comment pads it): the operator applies it.
    let spec = format!(
        "# {}\nAccountId: \"777788889999\"\nUsers:\n  - UserName: big\n",
        "x".repeat(3 << 20)
    );
    let ops = Profile {
        access_key_id: "IOPRHARDENINGTEST001".into(),
        secret_access_key: Secret::new("the-operators-secret"),
        session_token: None,
    };
    let applied = client
        .apply_tenant(signed_admin_request(
            pb::ApplyTenantRequest {
                spec_json: spec.clone(),
                dry_run: false,
            },
            "ApplyTenant",
            Some(&ops),
        ))
        .await;
    assert!(applied.is_ok(), "{applied:?}");
    assert!(cp.tenant("777788889999").is_some());
    // Without credentials, or with a wrong secret, the same message is refused from its
    // metadata, and the tenant is untouched.
    let wrong = Profile {
        secret_access_key: Secret::new("not-the-secret"),
        ..ops.clone()
    };
    for (what, request) in [
        (
            "no credentials",
            tonic::Request::new(pb::ApplyTenantRequest {
                spec_json: spec.replace("big", "bigger"),
                dry_run: false,
            }),
        ),
        (
            "a wrong secret",
            signed_admin_request(
                pb::ApplyTenantRequest {
                    spec_json: spec.replace("big", "bigger"),
                    dry_run: false,
                },
                "ApplyTenant",
                Some(&wrong),
            ),
        ),
    ] {
        let refused = client.apply_tenant(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
    }
    let users = cp.tenant("777788889999").unwrap().0.users.len();
    assert_eq!(users, 1, "a refused apply changed the tenant");
    // Any other method's message is cut at 1 MiB, whoever sends it.
    let call = client
        .call(signed_admin_request(
            pb::CallRequest {
                tenant: "777788889999".into(),
                action: "CreateUser".into(),
                parameters_json: format!(r#"{{"UserName":"{}"}}"#, "u".repeat(2 << 20)),
            },
            "Call",
            Some(&ops),
        ))
        .await
        .unwrap_err();
    // Cut where it is read, not refused later by the action's own validation (which would
    // answer InvalidArgument for a name this long).
    assert_eq!(call.code(), Code::ResourceExhausted, "{call:?}");
    assert!(call.message().contains("exceeds 1048576 bytes"), "{call:?}");
    assert_eq!(cp.tenant("777788889999").unwrap().0.users.len(), 1);
}

/// Readiness and status tell the truth: a sidecar of every tenant started from its state
/// files is ready while the control plane is down, and answers; a state file that is refused
/// shows in `missing`; decision-log records lost to write errors are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_status_tell_the_truth() {
    use iamlet::sidecar::decision_log::{DecisionLog, DecisionLogConfig, LogSink};
    let r = start("truth").await;
    // The first sidecar wrote tenant A's state file; stop nothing, but start a second
    // sidecar of every tenant against a control plane that is not there, on a copy of it.
    let state = super::support::temp_dir("hardening", "truth-copy");
    let original = std::env::temp_dir().join(format!(
        "iamlet-hardening-truth-sidecar-{}",
        std::process::id()
    ));
    super::support::eventually("tenant A's state file", || {
        original.join(format!("tenant-{A}.json")).exists()
    })
    .await;
    std::fs::copy(
        original.join(format!("tenant-{A}.json")),
        state.join(format!("tenant-{A}.json")),
    )
    .unwrap();
    // And a tenant whose file is garbage.
    std::fs::write(state.join("tenant-444455556666.json"), b"{not json").unwrap();
    let (log, _task) = DecisionLog::spawn(DecisionLogConfig {
        sink: LogSink::File("/dev/full".into()),
        ..DecisionLogConfig::default()
    })
    .unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let (handle, _sync) = spawn_sidecar(
        &SidecarConfig {
            control_plane: "http://127.0.0.1:9".into(),
            readiness: Readiness::All,
            state_dir: state,
            sidecar_id: "truth-2".into(),
            decision_log: log,
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown,
    );
    assert!(
        handle.is_ready(),
        "a `*` sidecar with a state file is ready"
    );
    super::support::eventually("health to follow readiness", || *handle.serving().borrow()).await;
    let local = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = local.local_addr().unwrap();
    tokio::spawn(serve_sidecar(handle.clone(), local, std::future::pending()));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let answer = AuthorizerClient::new(channel.clone())
        .authorize(ask(
            ALICE,
            "s3:PutObject",
            "arn:aws:s3:::demo-data/home/alice/notes.txt",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.decision,
        pb::Decision::Allow as i32,
        "it answers as ready"
    );
    let mut status_client = pb::sidecar_status_client::SidecarStatusClient::new(channel);
    let started = Instant::now();
    let status = loop {
        let status = status_client
            .status(pb::StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        if status.decision_log_write_errors > 0 || started.elapsed() > Duration::from_secs(20) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.ready);
    assert_eq!(status.missing, vec!["444455556666".to_owned()]);
    assert!(
        status.decision_log_write_errors > 0,
        "the record lost to /dev/full is not counted: {status:?}"
    );
    drop(r);
}
