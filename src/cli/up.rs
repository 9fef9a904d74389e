//! `iamlet up`: a control plane and a sidecar on loopback with a demo tenant, in one process.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::control_plane::{ControlPlane, SqliteStore, TenantSpec};
use crate::directory::IdGenerator;
use crate::grpc::{serve_control_plane_with, ServeOptions, DEFAULT_HEARTBEAT};
use crate::jose::Es256Signer;
use crate::policy::Timestamp;
use crate::sidecar::decision_log::{DecisionLog, DecisionLogConfig, LogSink};
use crate::sidecar::{spawn_sidecar, SidecarConfig};
use crate::sync::{Backoff, Readiness};

use super::serve::{load_or_create_operators, say, stop_signal, ServeError, DRAIN};

/// The demo tenant, as declared in `deploy/examples/demo-tenant.yaml`.
const DEMO_TENANT: &str = include_str!("../../deploy/examples/demo-tenant.yaml");
/// The demo's OIDC issuer (its provider is created at start, with a fresh signing key).
const DEMO_ISSUER: &str = "https://oidc.demo.iamlet.dev";
/// The demo's cluster, as its pod identity association names it.
const DEMO_CLUSTER: &str = "demo";
/// The service account the demo token stands for.
const DEMO_SUBJECT: &str = "system:serviceaccount:demo:reports-reader";
/// Who `up` is in the audit trail.
const ACTOR: &str = "iamlet-up";

/// `iamlet up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// The control plane's admin and sync APIs.
    #[arg(long, default_value = "127.0.0.1:7070")]
    control_plane_listen: SocketAddr,
    /// The control plane's HTTP edge (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, default_value = "127.0.0.1:7080")]
    control_plane_http_listen: SocketAddr,
    /// The sidecar's local API (Authorizer, SecurityTokenService, SidecarStatus).
    #[arg(long, default_value = "127.0.0.1:7071")]
    listen: SocketAddr,
    /// The sidecar's HTTP edge (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, default_value = "127.0.0.1:7081")]
    http_listen: SocketAddr,
    /// Where the database, the sidecar's snapshots, the decision log and the demo token go;
    /// default: a new temporary directory, removed on exit.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Another tenant spec to load instead of the demo tenant.
    #[arg(long)]
    tenant_spec: Option<PathBuf>,
    /// An Envoy ext_authz route table; default: the demo table, written to
    /// `$DATA_DIR/ext-authz-routes.yaml` on first start (with the demo tenant only).
    #[arg(long, env = "IAMLET_EXT_AUTHZ_ROUTES")]
    ext_authz_routes: Option<PathBuf>,
    /// How often the sidecar reports usage and its STS calls (CloudTrail events) to the
    /// control plane; `0s` reports nothing.
    #[arg(long, env = "IAMLET_USAGE_INTERVAL", default_value = "60s", value_parser = super::serve::parse_duration)]
    usage_interval: Duration,
    /// FOR TESTS ONLY: run the control plane's clock this many seconds ahead of the system's
    /// (behind when negative), as `iamlet control-plane --clock-offset`.
    #[arg(
        long,
        hide_short_help = true,
        allow_hyphen_values = true,
        value_name = "SECS"
    )]
    clock_offset: Option<i64>,
}

/// The demo route table: SigV4 callers on `sigv4.local` (API Gateway's mapping; the
/// `demo-admin` profile may invoke, alice may not), the demo web-identity token on
/// `jwt.local` as the reports-reader role (reading `demo-data` objects by path), and a dry
/// run on `dry.local`.
const DEMO_ROUTES: &str = r#"# iamlet's Envoy ext_authz route table (re-read when it changes). See the README.
account: "111122223333"
region: us-east-1
api_id: demo
stage: prod
unmatched: deny
routes:
  # API Gateway's IAM authorization: execute-api:Invoke on
  # arn:aws:execute-api:us-east-1:111122223333:demo/prod/{method}/{path}. The body is hashed
  # when Envoy sends it (with_request_body, pack_as_bytes); without it, the empty body.
  - name: sigv4
    host: sigv4.local
    path: /{proxy+}
    caller: sigv4
    with_body: true
  # The demo OIDC provider's token, as a session of reports-reader: s3:GetObject on
  # demo-data/<path>, so /reports/... is allowed and anything else denied.
  - name: jwt
    host: jwt.local
    path: /{proxy+}
    action: s3:GetObject
    resource: "arn:aws:s3:::demo-data/{proxy}"
    caller: jwt
    jwt:
      issuer: "https://oidc.demo.iamlet.dev"
      audience: sts.amazonaws.com
      role: "arn:aws:iam::111122223333:role/reports-reader"
  # As sigv4.local, but a deny passes with x-iamlet-would-deny: true (and is logged).
  - name: dry-run
    host: dry.local
    path: /{proxy+}
    caller: sigv4
    with_body: true
    dry_run: true
"#;

/// The route table `up` serves: the flag's, else the demo's (written on first start) when the
/// demo tenant is loaded, else none.
fn ext_authz_routes(
    args: &UpArgs,
    demo: &Demo,
    dir: &Path,
) -> Result<Option<(PathBuf, crate::sidecar::ext_authz::RouteTable)>, ServeError> {
    let path = match (&args.ext_authz_routes, &demo.token_file) {
        (Some(path), _) => path.clone(),
        (None, Some(_)) => {
            let path = dir.join("ext-authz-routes.yaml");
            if !path.exists() {
                std::fs::write(&path, DEMO_ROUTES).map_err(|source| ServeError::DataDir {
                    path: path.clone(),
                    source,
                })?;
            }
            path
        }
        (None, None) => return Ok(None),
    };
    let table = crate::sidecar::ext_authz::RouteTable::load(&path)
        .map_err(|e| ServeError::Config(e.to_string()))?;
    Ok(Some((path, table)))
}

/// What `up` made for the user to try.
struct Demo {
    account: String,
    access_key_id: String,
    secret_access_key: String,
    token_file: Option<PathBuf>,
    /// An AWS credentials file with the profiles `demo-admin` (the tenant's administrator)
    /// and `iamlet-operator`.
    credentials_file: PathBuf,
    /// The administrator's access key id and secret.
    admin: Option<(String, crate::directory::Secret)>,
    /// A pod's projected service-account token (audience `pods.eks.amazonaws.com`) for the
    /// container-credentials endpoint.
    pod_token_file: Option<PathBuf>,
    /// The administrator's console password and the file that holds it.
    console_password: Option<(crate::directory::Secret, PathBuf)>,
}

/// The demo tenant's administrator: an IAM user with `AdministratorAccess`.
const ADMIN_USER: &str = "admin";
/// Its profile in the credentials file `up` writes.
const ADMIN_PROFILE: &str = "demo-admin";

pub(crate) fn run_up(args: &UpArgs, out: &mut dyn Write) -> Result<(), ServeError> {
    let (dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("iamlet-up-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|source| ServeError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let result = run(args, &dir, out);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run(args: &UpArgs, dir: &Path, out: &mut dyn Write) -> Result<(), ServeError> {
    let sealer = crate::control_plane::SecretSealer::load_or_create(&dir.join("secrets.key"))
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let store = SqliteStore::open(&dir.join("iamlet.db"), None)?.with_sealer(sealer);
    let clock = super::serve::clock_with_offset(args.clock_offset);
    let control_plane = ControlPlane::open(Arc::new(store), IdGenerator::system())?;
    // Signed snapshots as in a deployment: the key ring and the sidecar's trust file in the
    // data directory.
    let config = |e: &dyn std::fmt::Display| ServeError::Config(e.to_string());
    let (ring, _) = crate::control_plane::SnapshotKeyRing::load_or_create(
        &dir.join("snapshot-signing.key"),
        &control_plane.store_identity().id,
    )
    .map_err(|e| config(&e))?;
    ring.export_trust(&dir.join("snapshot-keys.pub"))
        .map_err(|e| config(&e))?;
    let snapshot_trust = crate::snapshot::SnapshotTrust::keys(
        crate::snapshot::TrustedKeys::parse(&ring.trust_file()).map_err(|e| config(&e))?,
    );
    let control_plane = Arc::new(
        control_plane
            .with_clock(clock)
            .with_snapshot_signer(ring.current().map_err(|e| config(&e))?),
    );
    let (operators, _) = load_or_create_operators(&dir.join("operator-credentials"))?;
    let mut demo = load_demo(&control_plane, args.tenant_spec.as_deref(), dir)?;
    let routes = ext_authz_routes(args, &demo, dir)?;
    let admin = create_admin(&control_plane, &demo.account)?;
    demo.admin = Some(admin.clone());
    let password = console_password(&control_plane, &demo.account)?;
    let password_file = dir.join("console-password");
    write_private(&password_file, &format!("{}\n", password.expose())).map_err(|source| {
        ServeError::DataDir {
            path: password_file.clone(),
            source,
        }
    })?;
    demo.console_password = Some((password, password_file));
    let mut profiles = crate::client::render_profile(ADMIN_PROFILE, &admin.0, admin.1.expose());
    for operator in &operators {
        profiles.push_str(&crate::client::render_profile(
            &operator.name,
            &operator.access_key_id,
            operator.secret.expose(),
        ));
    }
    write_private(&demo.credentials_file, &profiles).map_err(|source| ServeError::DataDir {
        path: demo.credentials_file.clone(),
        source,
    })?;
    let auth = Arc::new(crate::control_plane::AdminAuth::new(operators, Vec::new()));
    // Its sidecar holds date keys for two days: each day's roll must reach it (issue #20).
    let _key_roll =
        control_plane.roll_sidecar_keys_daily(crate::control_plane::DEFAULT_KEY_ROLL_CHECK);
    super::serve::runtime(None)?.block_on(async {
        let telemetry = crate::telemetry::init(crate::telemetry::LogFormat::Plain)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let cp_listener = tokio::net::TcpListener::bind(args.control_plane_listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: args.control_plane_listen,
                source,
            })?;
        let cp_addr = cp_listener
            .local_addr()
            .map_err(|source| ServeError::Listen {
                addr: args.control_plane_listen,
                source,
            })?;
        let sidecar_listener = crate::grpc::bind(args.listen).await?;
        let sidecar_addr = sidecar_listener
            .local_addr()
            .map_err(|source| ServeError::Listen {
                addr: args.listen,
                source,
            })?;
        let cp_http = bind_local(args.control_plane_http_listen).await?;
        let sidecar_http = bind_local(args.http_listen).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let cp_probes = Arc::new(UpProbes {
            control_plane: Arc::clone(&control_plane),
        });
        let admin_api =
            crate::control_plane::Admin::new(Arc::clone(&control_plane), Arc::clone(&auth));
        let cp_http_server = tokio::spawn(crate::http::serve(
            crate::http::iam::routes(admin_api.clone(), cp_probes, false)
                .merge(crate::http::console::routes(admin_api, false, false)),
            cp_http.0,
            None,
            until_stopped(stopped.clone()),
        ));
        let (stop_cp, cp_stopped) = tokio::sync::oneshot::channel::<()>();
        let cp_server = tokio::spawn(serve_control_plane_with(
            Arc::clone(&control_plane),
            cp_listener,
            DEFAULT_HEARTBEAT,
            ServeOptions {
                admin_auth: Some(auth),
                ..ServeOptions::default()
            },
            async {
                let _ = cp_stopped.await;
            },
        ));

        let log_path = dir.join("decisions.log");
        let (decision_log, log_task) = DecisionLog::spawn(DecisionLogConfig {
            sink: LogSink::File(log_path.clone()),
            ..DecisionLogConfig::default()
        })
        .map_err(|e| ServeError::Config(e.to_string()))?;
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let (handle, stream) = spawn_sidecar(
            &SidecarConfig {
                control_plane: format!("http://{cp_addr}"),
                // Every tenant, so that one created with `iamlet admin create-tenant` is
                // served too; the demo tenant exists before the sidecar starts, so the first
                // full response carries it.
                readiness: Readiness::All,
                state_dir: dir.join("sidecar"),
                sidecar_id: "iamlet-up".into(),
                backoff: Backoff::default(),
                decision_log,
                usage: (!args.usage_interval.is_zero()).then(|| crate::sidecar::UsageConfig {
                    interval: args.usage_interval,
                    ..crate::sidecar::UsageConfig::default()
                }),
                trail: (!args.usage_interval.is_zero()).then(|| crate::sidecar::TrailConfig {
                    interval: args.usage_interval,
                    ..crate::sidecar::TrailConfig::default()
                }),
                snapshot_trust: snapshot_trust.clone(),
                ..SidecarConfig::default()
            },
            shutdown,
        );
        let started = std::time::Instant::now();
        while !handle.is_ready() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(ServeError::Config(
                    "the sidecar did not load the demo tenant within 30 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (stop_sidecar, sidecar_stopped) = tokio::sync::oneshot::channel::<()>();
        let ext_authz = routes.as_ref().map(|(path, table)| {
            let ext_authz = Arc::new(crate::sidecar::ext_authz::ExtAuthz::new(
                Arc::clone(&handle.api),
                table.clone(),
            ));
            crate::sidecar::ext_authz::spawn_route_table_reload(
                Arc::clone(&ext_authz),
                path.clone(),
                crate::sidecar::ext_authz::RELOAD_INTERVAL,
                stopped.clone(),
            );
            ext_authz
        });
        let sidecar_server = tokio::spawn(crate::grpc::serve_local_api_with(
            handle.clone(),
            ext_authz,
            crate::grpc::Keepalive::for_address(sidecar_addr),
            crate::net::accept(sidecar_listener, crate::net::ConnectionLimits::default()),
            async {
                let _ = sidecar_stopped.await;
            },
        ));
        let sidecar_http_server = tokio::spawn(crate::http::serve(
            crate::http::sts::sidecar_routes(&handle, false).merge(
                crate::http::credentials_routes(
                    Arc::new(crate::sidecar::ContainerCredentials::new(
                        Arc::clone(&handle.api),
                        crate::sidecar::ContainerCredentialsConfig::default(),
                    )),
                    crate::sidecar::DEFAULT_CONTAINER_CREDENTIALS_PATH,
                ),
            ),
            sidecar_http.0,
            None,
            until_stopped(stopped.clone()),
        ));
        let addresses = Addresses {
            control_plane: cp_addr,
            control_plane_http: cp_http.1,
            sidecar: sidecar_addr,
            sidecar_http: sidecar_http.1,
            ext_authz_routes: routes.map(|(path, _)| path),
        };
        let _ = print_welcome(out, &demo, &addresses, &log_path);
        let _ = out.flush();

        stop_signal().await;
        say("iamlet up: stopping");
        let _ = shutdown_tx.send(true);
        let _ = stop_sidecar.send(());
        let _ = stop_cp.send(());
        let _ = stop.send(true);
        let _ = tokio::time::timeout(DRAIN, async {
            let _ = sidecar_server.await;
            let _ = sidecar_http_server.await;
            let _ = cp_http_server.await;
            let _ = stream.await;
            let _ = cp_server.await;
        })
        .await;
        log_task.shutdown().await;
        telemetry.shutdown();
        Ok(())
    })
}

/// Applies the demo tenant (or `spec`), gives its first user an access key, and for the demo
/// tenant registers an OIDC provider with a fresh key and writes a token signed with it.
fn load_demo(
    control_plane: &ControlPlane,
    spec: Option<&Path>,
    dir: &Path,
) -> Result<Demo, ServeError> {
    let text = match spec {
        Some(path) => std::fs::read_to_string(path).map_err(|source| ServeError::DataDir {
            path: path.to_owned(),
            source,
        })?,
        None => DEMO_TENANT.to_owned(),
    };
    let spec: TenantSpec = serde_yaml_ng::from_str(&text)
        .map_err(|e| ServeError::Config(format!("tenant spec: {e}")))?;
    let account = spec.account_id.clone();
    // A data directory used before keeps its tenant as the user left it: `up` declares the
    // tenant only the first time.
    if control_plane.tenant(&account).is_none() {
        control_plane.apply_spec(&spec, ACTOR, false)?;
    }
    let user = spec
        .users
        .first()
        .map(|u| u.user_name.clone())
        .ok_or_else(|| ServeError::Config("the tenant spec declares no user".into()))?;
    let (access_key_id, secret_access_key) = fresh_key(control_plane, &account, &user)?;
    let mut demo = Demo {
        account: account.clone(),
        access_key_id,
        secret_access_key: secret_access_key.expose().to_owned(),
        token_file: None,
        credentials_file: dir.join("aws-credentials"),
        admin: None,
        pod_token_file: None,
        console_password: None,
    };
    if spec.account_id == "111122223333"
        && spec.roles.iter().any(|r| r.role_name == "reports-reader")
    {
        let signer =
            Es256Signer::generate("demo-1").map_err(|e| ServeError::Config(e.to_string()))?;
        // The provider of an earlier run gets this run's key.
        let provider_arn = format!(
            "arn:aws:iam::{account}:oidc-provider/{}",
            DEMO_ISSUER.trim_start_matches("https://")
        );
        let provider = json!({"OpenIDConnectProviderArn": provider_arn});
        if control_plane
            .call(&account, ACTOR, "GetOpenIDConnectProvider", &provider)
            .is_ok()
        {
            control_plane.call(
                &account,
                ACTOR,
                "UpdateOpenIDConnectProviderJwks",
                &json!({"OpenIDConnectProviderArn": provider_arn, "Jwks": signer.jwks()}),
            )?;
        } else {
            control_plane.call(
                &account,
                ACTOR,
                "CreateOpenIDConnectProvider",
                &json!({"Url": DEMO_ISSUER, "ClientIDList": ["sts.amazonaws.com"], "Jwks": signer.jwks()}),
            )?;
        }
        let now = Timestamp::now().epoch_seconds();
        let token = signer
            .sign(&json!({
                "iss": DEMO_ISSUER,
                "aud": "sts.amazonaws.com",
                "sub": DEMO_SUBJECT,
                "iat": now,
                "exp": now + 24 * 3600,
            }))
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let path = dir.join("web-identity-token");
        write_private(&path, &token).map_err(|source| ServeError::DataDir {
            path: path.clone(),
            source,
        })?;
        demo.token_file = Some(path);

        // EKS Pod Identity style: the demo cluster's service account reports-reader is
        // associated with the role, and a pod of it gets a token for the agent's audience.
        let associated = control_plane.call(
            &account,
            ACTOR,
            "CreatePodIdentityAssociation",
            &json!({
                "clusterName": DEMO_CLUSTER,
                "oidcProviderArn": provider_arn,
                "namespace": "demo",
                "serviceAccount": "reports-reader",
                "roleArn": format!("arn:aws:iam::{account}:role/reports-reader"),
            }),
        );
        match associated {
            // An earlier run's association stands.
            Err(e) if e.code() == crate::error::AwsCode::ResourceInUseException => {}
            other => {
                other?;
            }
        }
        let mut ids = IdGenerator::system();
        let pod_uid = [4usize, 2, 2, 2, 6]
            .map(|n| {
                let mut bytes = vec![0u8; n];
                ids.fill(&mut bytes);
                data_encoding::HEXLOWER.encode(&bytes)
            })
            .join("-");
        let pod_token = signer
            .sign(&json!({
                "iss": DEMO_ISSUER,
                "aud": [crate::sidecar::DEFAULT_POD_IDENTITY_AUDIENCE],
                "sub": DEMO_SUBJECT,
                "iat": now,
                "nbf": now,
                "exp": now + 24 * 3600,
                "kubernetes.io": {
                    "namespace": "demo",
                    "serviceaccount": {"name": "reports-reader", "uid": "demo-reports-reader"},
                    "pod": {"name": "reports-reader-0", "uid": pod_uid},
                },
            }))
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let path = dir.join("pod-identity-token");
        write_private(&path, &pod_token).map_err(|source| ServeError::DataDir {
            path: path.clone(),
            source,
        })?;
        demo.pod_token_file = Some(path);
    }
    Ok(demo)
}

/// Makes sure the tenant has its administrator (`admin` with `AdministratorAccess`) and gives
/// it a fresh access key (an earlier run's keys are deleted: a user has at most two).
fn create_admin(
    control_plane: &ControlPlane,
    account: &str,
) -> Result<(String, crate::directory::Secret), ServeError> {
    let user = json!({"UserName": ADMIN_USER});
    if control_plane
        .call(account, ACTOR, "GetUser", &user)
        .is_err()
    {
        control_plane.call(account, ACTOR, "CreateUser", &user)?;
        control_plane.call(
            account,
            ACTOR,
            "AttachUserPolicy",
            &json!({"UserName": ADMIN_USER, "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        )?;
    }
    fresh_key(control_plane, account, ADMIN_USER)
}

/// A fresh console password for the administrator (a new one at every start, as its keys
/// are): upper and lower case letters, digits and a symbol, so any password policy that
/// allows 26 characters accepts it.
fn console_password(
    control_plane: &ControlPlane,
    account: &str,
) -> Result<crate::directory::Secret, ServeError> {
    let mut ids = IdGenerator::system();
    let password = format!(
        "{}-{}-7q",
        ids.base32(12),
        ids.base32(10).to_ascii_lowercase()
    );
    let profile =
        json!({"UserName": ADMIN_USER, "Password": password, "PasswordResetRequired": false});
    let exists = control_plane
        .call(
            account,
            ACTOR,
            "GetLoginProfile",
            &json!({"UserName": ADMIN_USER}),
        )
        .is_ok();
    let action = if exists {
        "UpdateLoginProfile"
    } else {
        "CreateLoginProfile"
    };
    control_plane.call(account, ACTOR, action, &profile)?;
    Ok(crate::directory::Secret::new(password))
}

/// A new access key for `user_name`, whose earlier keys are deleted (a user has at most two,
/// and an earlier run's secrets were shown once and are gone).
fn fresh_key(
    control_plane: &ControlPlane,
    account: &str,
    user_name: &str,
) -> Result<(String, crate::directory::Secret), ServeError> {
    let user = json!({"UserName": user_name});
    let (keys, _) = control_plane.call(account, ACTOR, "ListAccessKeys", &user)?;
    for id in keys
        .pointer("/AccessKeyMetadata")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|k| k.get("AccessKeyId").and_then(|v| v.as_str()))
    {
        control_plane.call(
            account,
            ACTOR,
            "DeleteAccessKey",
            &json!({"UserName": user_name, "AccessKeyId": id}),
        )?;
    }
    let (key, _) = control_plane.call(account, ACTOR, "CreateAccessKey", &user)?;
    Ok(access_key_of(&key))
}

/// The key id and secret of a `CreateAccessKey` result.
fn access_key_of(result: &serde_json::Value) -> (String, crate::directory::Secret) {
    let field = |name: &str| {
        result
            .pointer(&format!("/AccessKey/{name}"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    (
        field("AccessKeyId"),
        crate::directory::Secret::new(field("SecretAccessKey")),
    )
}

/// Writes `text` to `path`, readable by its owner only, replacing an earlier run's file.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    crate::control_plane::write_new_private(path, text)
}

/// Where `up` serves.
struct Addresses {
    control_plane: SocketAddr,
    control_plane_http: SocketAddr,
    sidecar: SocketAddr,
    sidecar_http: SocketAddr,
    ext_authz_routes: Option<PathBuf>,
}

/// The control plane's probes in `up`: ready while it runs.
struct UpProbes {
    control_plane: Arc<ControlPlane>,
}

impl crate::observe::Probes for UpProbes {
    fn ready(&self) -> bool {
        true
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        crate::observe::gauge(
            &mut out,
            "iamlet_control_plane_tenants",
            "Tenants in the store.",
            &[(
                String::new(),
                self.control_plane.list_tenants().len() as f64,
            )],
        );
        out
    }
}

/// Binds `addr` and returns the listener with the address it got.
async fn bind_local(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let listener = crate::grpc::bind(addr).await?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    Ok((listener, local))
}

fn print_welcome(
    out: &mut dyn Write,
    demo: &Demo,
    addresses: &Addresses,
    log: &Path,
) -> std::io::Result<()> {
    let (cp, sidecar) = (addresses.control_plane, addresses.sidecar);
    let a = &demo.account;
    let s = if sidecar.port() == 7071 && sidecar.ip().is_loopback() {
        String::new()
    } else {
        format!(" --sidecar http://{sidecar}")
    };
    writeln!(out, "iamlet {} is up.", env!("CARGO_PKG_VERSION"))?;
    writeln!(
        out,
        "  control plane (Admin, Sync)                         http://{cp}"
    )?;
    writeln!(
        out,
        "  control plane HTTP (IAM Query API, probes, metrics) http://{}",
        addresses.control_plane_http
    )?;
    writeln!(
        out,
        "  sidecar (Authorizer, SecurityTokenService, Status)  http://{sidecar}"
    )?;
    writeln!(
        out,
        "  sidecar HTTP (STS Query API, /v1/credentials, ...)  http://{}",
        addresses.sidecar_http
    )?;
    if let Some(routes) = &addresses.ext_authz_routes {
        writeln!(
            out,
            "  sidecar Envoy ext_authz (Authorization/Check)       http://{sidecar} (routes: {})",
            routes.display()
        )?;
    }
    writeln!(
        out,
        "  decision log                                        {}",
        log.display()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Tenant {a} is loaded. Credentials of its user alice (shown once):"
    )?;
    writeln!(out, "  export AWS_ACCESS_KEY_ID={}", demo.access_key_id)?;
    writeln!(
        out,
        "  export AWS_SECRET_ACCESS_KEY={}",
        demo.secret_access_key
    )?;
    writeln!(out)?;
    writeln!(out, "Then, in another shell:")?;
    writeln!(out, "  iamlet authorize{s} --action s3:PutObject --resource arn:aws:s3:::demo-data/home/alice/notes.txt")?;
    writeln!(out, "  iamlet authorize{s} --action s3:DeleteObject --resource arn:aws:s3:::demo-audit-logs/2026/11/28.log")?;
    writeln!(out, "  iamlet authorize{s} --principal arn:aws:iam::{a}:user/bob --action s3:GetObject --resource arn:aws:s3:::demo-data/shared/q4.csv --context aws:SourceIp=10.1.2.3")?;
    writeln!(out, "  eval \"$(iamlet assume-role{s} --role-arn arn:aws:iam::{a}:role/reports-writer --role-session-name demo --tag project=q4 --output env)\"")?;
    writeln!(out, "  iamlet authorize{s} --action s3:PutObject --resource arn:aws:s3:::demo-data/reports/q4/summary.csv")?;
    if let Some(token) = &demo.token_file {
        writeln!(out, "  iamlet assume-role{s} --role-arn arn:aws:iam::{a}:role/reports-reader --role-session-name pod-1 --web-identity-token-file {}", token.display())?;
    }
    if let Some(token) = &demo.token_file {
        writeln!(out)?;
        writeln!(
            out,
            "Any AWS SDK or the AWS CLI assumes the role through the sidecar's STS (IRSA style):"
        )?;
        writeln!(
            out,
            "  AWS_ENDPOINT_URL_STS=http://{} AWS_WEB_IDENTITY_TOKEN_FILE={} \\\n    AWS_ROLE_ARN=arn:aws:iam::{a}:role/reports-reader aws sts get-caller-identity",
            addresses.sidecar_http,
            token.display()
        )?;
    }
    if let Some(token) = &demo.pod_token_file {
        writeln!(out)?;
        writeln!(
            out,
            "A pod of service account demo/reports-reader gets the role's credentials with any AWS SDK (EKS Pod Identity style):"
        )?;
        writeln!(
            out,
            "  export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{}{}",
            addresses.sidecar_http,
            crate::sidecar::DEFAULT_CONTAINER_CREDENTIALS_PATH
        )?;
        writeln!(
            out,
            "  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}",
            token.display()
        )?;
    }
    let e = if cp.port() == 7070 {
        String::new()
    } else {
        format!(" --endpoint http://{cp}")
    };
    writeln!(out)?;
    if let Some((id, secret)) = &demo.admin {
        writeln!(
            out,
            "The admin API takes IAM credentials. The tenant's administrator, user {ADMIN_USER} \
             with AdministratorAccess (shown once):"
        )?;
        writeln!(out, "  aws_access_key_id = {id}")?;
        writeln!(out, "  aws_secret_access_key = {}", secret.expose())?;
    }
    writeln!(
        out,
        "It and the operator are the profiles {ADMIN_PROFILE} and iamlet-operator of:"
    )?;
    writeln!(
        out,
        "  export AWS_SHARED_CREDENTIALS_FILE={}",
        demo.credentials_file.display()
    )?;
    writeln!(
        out,
        "  iamlet admin{e} --profile {ADMIN_PROFILE} list-users"
    )?;
    writeln!(
        out,
        "  iamlet admin{e} --profile {ADMIN_PROFILE} list-changes"
    )?;
    writeln!(
        out,
        "  aws iam --endpoint-url http://{} --profile {ADMIN_PROFILE} list-users",
        addresses.control_plane_http
    )?;
    if let Some((password, file)) = &demo.console_password {
        writeln!(out)?;
        writeln!(
            out,
            "The console: http://{}/console  (account {a}, user {ADMIN_USER}, password {}; also in {})",
            addresses.control_plane_http,
            password.expose(),
            file.display()
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Ctrl-C stops (a temporary data directory is removed).")
}
