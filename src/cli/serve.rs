//! `iamlet control-plane` and `iamlet sidecar`: the long-running processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::control_plane::{ControlPlane, SqliteStore, TenantSpec, TenantStore};
use crate::directory::IdGenerator;
use crate::grpc::{
    bind, serve_control_plane_with, serve_health, serve_local_api_with, Keepalive, ServeOptions,
    CONTROL_PLANE_SERVICES, DEFAULT_HEARTBEAT, SIDECAR_SERVICES,
};
use crate::observe;
use crate::sidecar::decision_log::{DecisionLog, DecisionLogConfig};
use crate::sidecar::{spawn_sidecar, CacheConfig, SidecarConfig, StalenessPolicy};
use crate::sync::{Backoff, Readiness};
use crate::telemetry::{self, LogFormat};
use crate::tls::ReloadingServerTls;

mod startup;

use startup::{
    starting_routes, until_reachable, ControlPlaneProbes, ObservedStore, RetryDelays, StoreHealth,
    SwitchRouter, START_RETRY,
};

/// How long a stopping process waits for open streams before it exits anyway: tonic's
/// graceful shutdown waits for every stream, and sidecars never close theirs.
pub(super) const DRAIN: Duration = Duration::from_secs(5);

/// The settings of every long-running command's process.
#[derive(Debug, Args)]
pub(crate) struct ProcessArgs {
    /// Log lines as `plain` text or `json`; the filter is `IAMLET_LOG` or `RUST_LOG`.
    #[arg(long, env = "IAMLET_LOG_FORMAT", value_enum, default_value = "plain")]
    log_format: LogFormat,
    /// Threads of the async runtime; default: 1 for a sidecar; for a control plane 2, or 1
    /// when the process may use only one CPU (its CPU affinity or cgroup CPU limit). One
    /// thread runs the current-thread scheduler, which writes the answers of requests that
    /// arrived together in fewer writes: a sidecar answers more calls a core with it than with
    /// two threads. More threads than cores make them preempt each other and lengthen the tail.
    #[arg(long, env = "IAMLET_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=64))]
    worker_threads: Option<u16>,
    /// A YAML file of settings (keys are the flags' names); flags and `IAMLET_*` variables
    /// override it.
    #[arg(long, env = "IAMLET_CONFIG")]
    config: Option<PathBuf>,
}

/// `iamlet control-plane`.
#[derive(Debug, Args)]
pub(crate) struct ControlPlaneArgs {
    /// The address of the admin and sync APIs.
    #[arg(long, env = "IAMLET_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Where the tenants' database lives (created if missing).
    #[arg(long, env = "IAMLET_DATA_DIR", default_value = "iamlet-data")]
    data_dir: PathBuf,
    /// Raise the store's epoch (after restoring the database from a backup).
    #[arg(long)]
    epoch: Option<u64>,
    /// Start a new, empty store in a data directory that had one (its database lost).
    #[arg(long, env = "IAMLET_NEW_STORE")]
    new_store: bool,
    /// The health port: `grpc.health.v1` and reflection, for kubelet gRPC probes.
    #[arg(long, env = "IAMLET_HEALTH_LISTEN")]
    health_listen: Option<SocketAddr>,
    /// The HTTP edge: `/healthz`, `/readyz` and `/metrics` (Prometheus), with the same TLS
    /// as the gRPC APIs. `--metrics-listen` is its former name.
    #[arg(long, visible_alias = "metrics-listen", env = "IAMLET_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Serve the HTTP edge with the gRPC APIs' TLS (`--tls-cert`, client certificates
    /// included). Off by default: the kubelet's HTTP probes and most scrapers speak plain
    /// HTTP to a port of its own.
    #[arg(long, env = "IAMLET_HTTP_TLS", requires = "tls_cert")]
    http_tls: bool,
    /// Do not serve the console (`/console`) on the HTTP edge.
    #[arg(long, env = "IAMLET_NO_CONSOLE")]
    no_console: bool,
    /// Mark the console's cookies `Secure` although the HTTP edge is plain HTTP: for a
    /// console behind an ingress that terminates TLS.
    #[arg(long, env = "IAMLET_CONSOLE_SECURE_COOKIES")]
    console_secure_cookies: bool,
    /// Serve TLS with this certificate chain (PEM), with `--tls-key`.
    #[arg(long, env = "IAMLET_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "IAMLET_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (mutual TLS).
    #[arg(long, env = "IAMLET_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// A YAML mapping of client identities (DNS names their certificates are valid for) to
    /// the tenants they may subscribe to (`"*"` for all).
    #[arg(long, env = "IAMLET_TENANT_ACCESS", requires = "tls_client_ca")]
    tenant_access: Option<PathBuf>,
    #[command(flatten)]
    process: ProcessArgs,
    /// The operators' access keys, an AWS credentials file (each profile is an operator,
    /// named after it). Default: `DATA_DIR/operator-credentials`, created with one new key
    /// (profile `iamlet-operator`, mode 0600) when missing.
    #[arg(long, env = "IAMLET_OPERATOR_CREDENTIALS")]
    operator_credentials: Option<PathBuf>,
    /// A client-certificate identity (DNS name) that is an operator; may repeat.
    #[arg(
        long = "operator-identity",
        env = "IAMLET_OPERATOR_IDENTITY",
        value_delimiter = ',',
        requires = "tls_client_ca"
    )]
    operator_identities: Vec<String>,
    /// The key that seals secrets in the database (32 random bytes, base64). Default:
    /// `DATA_DIR/secrets.key`, created when missing. Keep it apart from the database: a copy
    /// of the database alone reveals no secret.
    #[arg(long, env = "IAMLET_SECRETS_KEY_FILE")]
    secrets_key_file: Option<PathBuf>,
    /// The key ring that signs every tenant update sidecars receive (Ed25519; private, 0600).
    /// Default: `DATA_DIR/snapshot-signing.key`, created when missing. Keep it apart from
    /// the database; every replica of one store mounts the same file.
    #[arg(long, env = "IAMLET_SNAPSHOT_SIGNING_KEY")]
    snapshot_signing_key: Option<PathBuf>,
    /// Where the sidecars' trust file (the ring's public keys) is written at start, for
    /// their `--snapshot-keys`. Default: `DATA_DIR/snapshot-keys.pub`.
    #[arg(long, env = "IAMLET_SNAPSHOT_KEYS_OUT")]
    snapshot_keys_out: Option<PathBuf>,
    /// Rotate at start: a new key signs, the previous one stays in the trust file (accepted)
    /// until retired with `--retire-snapshot-key`.
    #[arg(long)]
    rotate_snapshot_key: bool,
    /// Retire a previous snapshot key at start (its private half is dropped; sidecars given
    /// the new trust file refuse what it signed); may repeat.
    #[arg(long, value_delimiter = ',')]
    retire_snapshot_key: Vec<String>,
    /// Sync keys (an AWS credentials file): a sidecar presenting one may stream every
    /// tenant. Without mutual TLS, sidecars elsewhere than on loopback need one.
    #[arg(long, env = "IAMLET_SYNC_CREDENTIALS")]
    sync_credentials: Option<PathBuf>,
    /// Let any peer that reaches the port stream every tenant, secrets included, without a
    /// certificate or key: only where a NetworkPolicy alone decides who reaches it (demos).
    #[arg(long, env = "IAMLET_INSECURE_OPEN_SYNC")]
    insecure_open_sync: bool,
    /// Let loopback peers stream every tenant without a certificate or key even though the
    /// control plane listens beyond loopback (it always does when it listens on loopback
    /// only). Not behind a proxy in the pod (a service mesh): every peer is loopback there.
    #[arg(long, env = "IAMLET_SYNC_ALLOW_LOOPBACK")]
    sync_allow_loopback: bool,
    /// Converge to this tenant spec at start (as `iamlet admin apply -f`, recorded as the
    /// operator `apply`); may repeat. A file that cannot be read stops the start; a plan that
    /// cannot be applied is logged and leaves the tenant as it was.
    #[arg(long = "apply", env = "IAMLET_APPLY", value_delimiter = ',')]
    apply: Vec<PathBuf>,
    /// How often to poll the store for changes other replicas made that no notice brought
    /// (a lost PostgreSQL notification delays an update by at most this much).
    #[arg(long, env = "IAMLET_CATCH_UP_INTERVAL", default_value = "5s", value_parser =
        |t: &str| parse_duration(t).and_then(|d| if d.is_zero() {
            Err("the interval must be above zero".to_owned())
        } else {
            Ok(d)
        }))]
    catch_up_interval: Duration,
    /// FOR TESTS ONLY: run the control plane's clock this many seconds ahead of the system's
    /// (behind when negative), so that time-based answers (unused access findings, report
    /// expiry) can be shown without waiting. Change times in the audit trail move with it;
    /// a warning is logged at start. Never set it in production.
    #[arg(
        long,
        hide_short_help = true,
        allow_hyphen_values = true,
        value_name = "SECS"
    )]
    clock_offset: Option<i64>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    pub(crate) action: Option<ControlPlaneAction>,
}

/// Where the control plane keeps its tenants.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// A PostgreSQL database that several control-plane replicas share:
    /// `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=CA.pem]`.
    /// Absent: the SQLite database in `--data-dir`. Its schema is migrated at start.
    #[arg(long = "store", env = "IAMLET_STORE")]
    url: Option<String>,
    /// A file holding the database password (else the URL's, or `PGPASSWORD`).
    #[arg(long, env = "IAMLET_STORE_PASSWORD_FILE")]
    store_password_file: Option<PathBuf>,
}

/// `iamlet control-plane <action>`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ControlPlaneAction {
    /// Bring a PostgreSQL store's schema up to this binary's version, then exit (a start
    /// does it too; this lets it happen before a rolling update).
    Migrate(StoreArgs),
    /// Copy a whole store into an empty one (SQLite to PostgreSQL, or back): every tenant, its
    /// change log and audit events, and the store's identity and epoch, so that sidecars
    /// resume from their versions; then verify the copy. Stop the source's control planes
    /// first.
    MigrateStore(MigrateStoreArgs),
}

/// `iamlet control-plane migrate-store`.
#[derive(Debug, Args)]
pub(crate) struct MigrateStoreArgs {
    /// The store to copy: a control plane's data directory (SQLite), or
    /// `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=CA.pem]`.
    #[arg(long)]
    from: String,
    /// The store to copy into, new or empty: a data directory or a `postgres://` URL.
    #[arg(long)]
    to: String,
    /// A file holding the password of `--from`'s database (else the URL's, or `PGPASSWORD`).
    #[arg(long)]
    from_password_file: Option<PathBuf>,
    /// A file holding the password of `--to`'s database (else the URL's, or `PGPASSWORD`).
    #[arg(long)]
    to_password_file: Option<PathBuf>,
    /// The key the source's secrets are sealed with (default: `secrets.key` in a `--from`
    /// data directory). The copy keeps them sealed: the destination's control planes need
    /// this same key.
    #[arg(long, env = "IAMLET_SECRETS_KEY_FILE")]
    secrets_key_file: Option<PathBuf>,
}

/// The first line of a password file.
fn read_password(flag: &str, path: &Path) -> Result<String, ServeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServeError::Config(format!("--{flag} {}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

impl StoreArgs {
    fn postgres_options(
        &self,
        url: &str,
    ) -> Result<crate::control_plane::PostgresOptions, ServeError> {
        let mut options = crate::control_plane::PostgresOptions::new(url);
        if let Some(path) = &self.store_password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ServeError::Config(format!("--store-password-file {}: {e}", path.display()))
            })?;
            options.password = Some(text.trim_end_matches(['\r', '\n']).to_owned());
        }
        Ok(options)
    }
}

/// `iamlet control-plane migrate` and `migrate-store`.
pub(crate) fn run_control_plane_action(action: ControlPlaneAction) -> Result<(), ServeError> {
    use std::io::Write as _;
    match action {
        ControlPlaneAction::Migrate(store) => {
            let url = store.url.clone().ok_or_else(|| {
                ServeError::Config("migrate needs --store postgres://… (or IAMLET_STORE)".into())
            })?;
            let report =
                crate::control_plane::PostgresStore::migrate(&store.postgres_options(&url)?)?;
            let line = format!(
                "iamlet control plane: the schema of {} is at version {} (was {})",
                crate::control_plane::redact_url(&url),
                report.to,
                report.from
            );
            // Best effort: the migration is done whether or not its report can be written.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
            Ok(())
        }
        ControlPlaneAction::MigrateStore(args) => {
            let location = |text: &str, flag: &str, file: &Option<PathBuf>| {
                let password = file
                    .as_deref()
                    .map(|p| read_password(flag, p))
                    .transpose()?;
                Ok::<_, ServeError>(crate::control_plane::StoreLocation::parse(text, password))
            };
            let summary =
                crate::control_plane::migrate_store(&crate::control_plane::MigrateStoreOptions {
                    from: location(&args.from, "from-password-file", &args.from_password_file)?,
                    to: location(&args.to, "to-password-file", &args.to_password_file)?,
                    secrets_key_file: args.secrets_key_file,
                })?;
            // Best effort, as above: the copy is made and verified.
            for line in summary.to_string().lines() {
                let _ = writeln!(std::io::stdout().lock(), "iamlet control plane: {line}");
            }
            Ok(())
        }
    }
}

/// The profile name of a generated operator key.
pub(super) const OPERATOR_PROFILE: &str = "iamlet-operator";

/// Reads the operators' keys from `path`, or creates the file with one new key when it does
/// not exist. Returns the keys and whether the file was created.
pub(super) fn load_or_create_operators(
    path: &Path,
) -> Result<(Vec<crate::control_plane::OperatorKey>, bool), ServeError> {
    read_credentials_file(path, true)
}

/// The keys of an AWS credentials file, each named after its profile; with `create`, a
/// missing file is created with one new key (profile `iamlet-operator`, mode 0600).
pub(super) fn read_credentials_file(
    path: &Path,
    create: bool,
) -> Result<(Vec<crate::control_plane::OperatorKey>, bool), ServeError> {
    let config = |message: String| ServeError::Config(format!("{}: {message}", path.display()));
    let (text, created) = match std::fs::read_to_string(path) {
        Ok(text) => (text, false),
        Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
            let mut ids = IdGenerator::system();
            let key_id = format!("IOPR{}", ids.base32(16));
            let text =
                crate::client::render_profile(OPERATOR_PROFILE, &key_id, &ids.secret_access_key());
            crate::control_plane::write_new_private(path, &text)
                .map_err(|e| config(e.to_string()))?;
            (text, true)
        }
        Err(e) => return Err(config(e.to_string())),
    };
    let profiles =
        crate::client::parse_credentials_file(&text).map_err(|e| config(e.to_string()))?;
    if profiles.is_empty() {
        return Err(config("no key in the file".into()));
    }
    let keys = profiles
        .into_iter()
        .map(|(name, p)| crate::control_plane::OperatorKey {
            name,
            access_key_id: p.access_key_id,
            secret: p.secret_access_key,
        })
        .collect();
    Ok((keys, created))
}

/// `iamlet sidecar`.
#[derive(Debug, Args)]
pub(crate) struct SidecarArgs {
    /// The control plane's URLs, comma-separated: the sidecar streams from one and fails
    /// over to the next; a host name stands for every address it resolves to.
    #[arg(
        long,
        env = "IAMLET_CONTROL_PLANE",
        default_value = "http://127.0.0.1:7070"
    )]
    control_plane: String,
    /// The tenants to serve, comma-separated, or `*` for all.
    #[arg(long, env = "IAMLET_TENANTS", default_value = "*")]
    tenants: String,
    /// The control plane's snapshot public keys (its trust file, `snapshot-keys.pub`): every
    /// update and state file must carry a signature of one of them. Required unless
    /// `--insecure-unsigned-snapshots`.
    // Checked when the sidecar starts, not by clap: a requirement in clap would not see the
    // value a configuration file gives (`snapshot-keys:` there is a default).
    #[arg(long, env = "IAMLET_SNAPSHOT_KEYS")]
    snapshot_keys: Option<PathBuf>,
    /// INSECURE: accept unsigned snapshots and do not verify signatures, for control planes
    /// older than signed snapshots. A state file edited on disk is then served.
    #[arg(
        long,
        env = "IAMLET_INSECURE_UNSIGNED_SNAPSHOTS",
        conflicts_with = "snapshot_keys"
    )]
    insecure_unsigned_snapshots: bool,
    /// Where the last known good snapshots live.
    #[arg(long, env = "IAMLET_STATE_DIR", default_value = "iamlet-sidecar")]
    state_dir: PathBuf,
    /// The address of the sidecar's local API.
    #[arg(long, env = "IAMLET_SIDECAR_LISTEN", default_value = "127.0.0.1:7071")]
    listen: SocketAddr,
    /// Where decisions are logged, one JSON line each: `off`, `stdout` or a file path.
    #[arg(long, env = "IAMLET_DECISION_LOG", default_value = "off")]
    decision_log: String,
    /// Log only denies and errors.
    #[arg(long, env = "IAMLET_DECISION_LOG_DENY_ONLY")]
    decision_log_deny_only: bool,
    /// The share of decisions logged, from 0 to 1.
    #[arg(long, env = "IAMLET_DECISION_LOG_SAMPLE_RATE", default_value_t = 1.0)]
    decision_log_sample_rate: f64,
    /// A decision log file rotates before it grows past this many bytes (0: never).
    #[arg(long, env = "IAMLET_DECISION_LOG_MAX_FILE_BYTES", default_value_t = crate::sidecar::decision_log::DEFAULT_MAX_FILE_BYTES)]
    decision_log_max_file_bytes: u64,
    /// Rotated decision log files kept (`PATH.1` newest), uncompressed.
    #[arg(long, env = "IAMLET_DECISION_LOG_KEEP", default_value_t = crate::sidecar::decision_log::DEFAULT_KEEP_FILES)]
    decision_log_keep: u32,
    /// Decisions kept in the decision cache at most (0 disables it).
    #[arg(long, env = "IAMLET_DECISION_CACHE_ENTRIES", default_value_t = 100_000)]
    decision_cache_entries: u64,
    /// How long a cached decision may be served, in seconds.
    #[arg(long, env = "IAMLET_DECISION_CACHE_TTL", default_value_t = 60)]
    decision_cache_ttl: u64,
    /// Connect to the control plane with TLS, trusting only this CA (PEM).
    #[arg(long, env = "IAMLET_CONTROL_PLANE_CA")]
    control_plane_ca: Option<PathBuf>,
    /// A sync key to present to the control plane (an AWS credentials file), where no
    /// client certificate authenticates this sidecar.
    #[arg(long, env = "IAMLET_SYNC_CREDENTIALS")]
    sync_credentials: Option<PathBuf>,
    /// The profile of `--sync-credentials` (default: its only or first profile).
    #[arg(long, env = "IAMLET_SYNC_PROFILE", requires = "sync_credentials")]
    sync_profile: Option<String>,
    /// The name the control plane's certificate must be valid for (default: the URL's host).
    #[arg(long, env = "IAMLET_CONTROL_PLANE_NAME", requires = "control_plane_ca")]
    control_plane_name: Option<String>,
    /// This sidecar's certificate (PEM), for mutual TLS, with `--tls-key`.
    #[arg(long, env = "IAMLET_TLS_CERT", requires_all = ["tls_key", "control_plane_ca"])]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "IAMLET_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve the local API with TLS, with this certificate (PEM) and `--local-tls-key`.
    #[arg(long, env = "IAMLET_LOCAL_TLS_CERT", requires = "local_tls_key")]
    local_tls_cert: Option<PathBuf>,
    /// The private key of `--local-tls-cert` (PEM).
    #[arg(long, env = "IAMLET_LOCAL_TLS_KEY", requires = "local_tls_cert")]
    local_tls_key: Option<PathBuf>,
    /// The local API on a Unix domain socket too (created 0600; a stale socket is replaced).
    #[arg(long, env = "IAMLET_UDS")]
    uds: Option<PathBuf>,
    /// The health port: `grpc.health.v1` and reflection, for kubelet gRPC probes.
    #[arg(long, env = "IAMLET_HEALTH_LISTEN")]
    health_listen: Option<SocketAddr>,
    /// The HTTP edge (off unless given): `/healthz`, `/readyz` and `/metrics`
    /// (Prometheus), with the local API's TLS. `--metrics-listen` is its former name.
    #[arg(long, visible_alias = "metrics-listen", env = "IAMLET_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Serve the HTTP edge with the local API's TLS (`--local-tls-cert`). Off by default: the
    /// kubelet's HTTP probes speak plain HTTP to a port of its own.
    #[arg(long, env = "IAMLET_HTTP_TLS", requires = "local_tls_cert")]
    http_tls: bool,
    /// Decisions go on from the last good snapshots this long after the control plane was
    /// last heard from, then fail closed (`30s`, `15m`, `24h`).
    #[arg(long, env = "IAMLET_MAX_SERVE_STALE", default_value = "24h", value_parser = parse_duration)]
    max_serve_stale: Duration,
    /// Credentials are issued only this long after the control plane was last heard from.
    #[arg(long, env = "IAMLET_MAX_ISSUE_STALE", default_value = "15m", value_parser = parse_duration)]
    max_issue_stale: Duration,
    /// Tenants whose decisions go on past `--max-serve-stale` (each one counted), comma-separated.
    #[arg(long, env = "IAMLET_FAIL_OPEN_TENANTS", value_delimiter = ',')]
    fail_open_tenants: Vec<String>,
    #[command(flatten)]
    process: ProcessArgs,
    /// How long a stopping sidecar reports not ready before it stops accepting calls, so that
    /// traffic moves away first.
    #[arg(long, env = "IAMLET_DRAIN_DELAY", default_value = "2s", value_parser = parse_duration)]
    drain_delay: Duration,
    /// HTTP/2 keepalive PING interval on the stream to the control plane.
    #[arg(long, env = "IAMLET_KEEPALIVE_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    keepalive_interval: Duration,
    /// A keepalive PING unanswered this long closes the connection.
    #[arg(long, env = "IAMLET_KEEPALIVE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    keepalive_timeout: Duration,
    /// A stream silent this long (no heartbeat) is dropped and reconnected.
    #[arg(long, env = "IAMLET_SYNC_IDLE_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    sync_idle_timeout: Duration,
    /// How often what this sidecar decided is reported to the control plane (last use of each
    /// access key, role and service, and its STS calls as CloudTrail events); `0s` reports
    /// nothing.
    #[arg(long, env = "IAMLET_USAGE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    usage_interval: Duration,
    /// The HTTP edge's container-credentials path (EKS Pod Identity style), where
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` points.
    #[arg(long, env = "IAMLET_CONTAINER_CREDENTIALS_PATH", default_value = crate::sidecar::DEFAULT_CONTAINER_CREDENTIALS_PATH, value_parser = parse_route_path)]
    container_credentials_path: String,
    /// The audience a pod's service-account token must carry at the container-credentials
    /// path.
    #[arg(long, env = "IAMLET_POD_IDENTITY_AUDIENCE", default_value = crate::sidecar::DEFAULT_POD_IDENTITY_AUDIENCE)]
    pod_identity_audience: String,
    /// A route table (YAML): the local API (TCP and Unix socket) then also serves Envoy's
    /// ext_authz, `envoy.service.auth.v3.Authorization/Check`. Re-read when it changes.
    #[arg(long, env = "IAMLET_EXT_AUTHZ_ROUTES")]
    ext_authz_routes: Option<PathBuf>,
}

/// A route path: `/` and then segments of letters, digits, `-`, `_`, `.` (no parameters or
/// wildcards, which the router would read as patterns).
fn parse_route_path(text: &str) -> Result<String, String> {
    let ok = text.len() > 1
        && text.starts_with('/')
        && text.split('/').skip(1).all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if ok {
        Ok(text.to_owned())
    } else {
        Err("expected a path such as /v1/credentials".into())
    }
}

/// Parses `500ms`, `30s`, `15m`, `24h` or a number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a duration such as 500ms, 30s, 15m or 24h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{text}`: the unit must be ms, s, m or h")),
    };
    Ok(d)
}

/// A problem that stops a process before or while it serves.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    #[error("cannot create `{path}`: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::control_plane::StoreError),
    #[error("cannot load the tenants: {0}")]
    Load(#[from] crate::control_plane::AdminError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Sidecar(#[from] crate::grpc::SidecarError),
    #[error("invalid tenant list: {0}")]
    Tenants(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the start failed: {0}")]
    Start(String),
    #[error("cannot copy the store: {0}")]
    MigrateStore(Box<crate::control_plane::MigrateStoreError>),
}

impl From<crate::control_plane::MigrateStoreError> for ServeError {
    fn from(error: crate::control_plane::MigrateStoreError) -> Self {
        Self::MigrateStore(Box::new(error))
    }
}

impl ServeError {
    /// True for errors in the configuration (exit status 64), as opposed to failures while
    /// starting or serving.
    pub(crate) fn is_configuration(&self) -> bool {
        use crate::control_plane::StoreError as S;
        // A data directory whose database is gone or foreign needs the operator's decision.
        if let Self::MigrateStore(e) = self {
            return e.is_refusal();
        }
        matches!(
            self,
            Self::Config(_)
                | Self::Tenants(_)
                | Self::Store(
                    S::MissingDatabase { .. }
                        | S::ForeignDatabase { .. }
                        | S::SchemaTooNew { .. }
                        | S::InvalidUrl { .. }
                )
        )
    }
}

pub(super) fn runtime(worker_threads: Option<u16>) -> Result<tokio::runtime::Runtime, ServeError> {
    build_runtime(worker_threads.map_or_else(default_worker_threads, |n| usize::from(n.max(1))))
        .map_err(ServeError::Runtime)
}

/// A sidecar's runtime threads when `--worker-threads` is not given: one, on any node. One
/// current-thread runtime answered more `Authorize` calls than two threads on two cores
/// (71-73 k against 66 k a second at saturation) for less CPU a call (13.7-14.0 against
/// 19.7 us at saturation, 47-51 against 58-62 us at 2,000/s), and bounds the cores a
/// sidecar's requests take from its pod to one (`benches/README.md`, issue 19, round 7).
/// Blocking work (snapshot applies, request policies, large batches) runs on threads of its
/// own, on every core, whatever this is.
pub(crate) const SIDECAR_WORKER_THREADS: u16 = 1;

/// The threads of a sidecar's runtime: `--worker-threads`, or [`SIDECAR_WORKER_THREADS`].
fn sidecar_worker_threads(flag: Option<u16>) -> u16 {
    flag.unwrap_or(SIDECAR_WORKER_THREADS)
}

/// A runtime of `threads` threads. One thread runs tokio's current-thread scheduler, not
/// the multi-thread one with a single worker: the latter runs a task woken by the running
/// task next (its LIFO slot), so an HTTP/2 connection, woken at each step of each stream's
/// answer, wrote twice an answer (headers and data, then trailers); the current-thread
/// scheduler runs woken tasks in turn, so the frames of the answers ready together share
/// writes (1.13 a request at saturation against 2.00, and 45-61 % more requests a second on
/// one core: `benches/README.md`, issue 19, round 7). linkerd2-proxy picks its runtime the
/// same way.
pub(crate) fn build_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build()
}

/// Two runtime threads, or one when the process may use only one CPU: a second thread on a
/// single CPU only adds hand-offs (a thread that finds work wakes the other to steal it) and
/// preemption between the two. Rust's count follows the affinity mask and the cgroup's CPU
/// quota (rounded down).
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(2))
}

/// Completes on SIGINT or SIGTERM.
pub(super) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Binds `addr`, if given.
async fn bind_optional(
    addr: Option<SocketAddr>,
) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    match addr {
        Some(addr) => Ok(Some(bind(addr).await?)),
        None => Ok(None),
    }
}

/// Completes when `stopped` says so.
async fn until_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

pub(super) fn say(message: &str) {
    tracing::info!("{message}");
}

/// A control plane's configuration, read and checked: every file it names is read here, so
/// that a bad one stops the process before anything is bound or opened.
pub(crate) struct ControlPlaneSettings {
    args: ControlPlaneArgs,
    tls: Option<Arc<ReloadingServerTls>>,
    access: Option<Arc<crate::tls::TenantAccess>>,
    operator_file: PathBuf,
    operators: Vec<crate::control_plane::OperatorKey>,
    operators_created: bool,
    sync_keys: Vec<crate::control_plane::OperatorKey>,
    sealer: crate::control_plane::SecretSealer,
    /// The files that showed the data directory was initialized before this start.
    initialized_by: Vec<PathBuf>,
    apply: Vec<(PathBuf, TenantSpec)>,
}

impl TryFrom<ControlPlaneArgs> for ControlPlaneSettings {
    type Error = ServeError;

    fn try_from(args: ControlPlaneArgs) -> Result<Self, ServeError> {
        let config = |e: &dyn std::fmt::Display| ServeError::Config(e.to_string());
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(
                ReloadingServerTls::try_new(&crate::tls::ServerTlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: args.tls_client_ca.clone(),
                })
                .map_err(|e| config(&e))?,
            ),
            _ => None,
        };
        let access = match &args.tenant_access {
            Some(path) => Some(Arc::new(
                crate::tls::TenantAccess::load(path).map_err(|e| config(&e))?,
            )),
            None => None,
        };
        std::fs::create_dir_all(&args.data_dir).map_err(|source| ServeError::DataDir {
            path: args.data_dir.clone(),
            source,
        })?;
        let operator_file = args
            .operator_credentials
            .clone()
            .unwrap_or_else(|| args.data_dir.join("operator-credentials"));
        let (operators, operators_created) = load_or_create_operators(&operator_file)?;
        let sync_keys = match &args.sync_credentials {
            Some(path) => read_credentials_file(path, false)?.0,
            None => Vec::new(),
        };
        let secrets_key =
            (args.secrets_key_file.clone()).unwrap_or_else(|| args.data_dir.join("secrets.key"));
        // Whether the directory was initialized is read before the key is created.
        let initialized_by = secrets_key.exists().then(|| secrets_key.clone());
        let sealer = crate::control_plane::SecretSealer::load_or_create(&secrets_key)
            .map_err(|e| config(&e))?;
        // A declared file that cannot be read or parsed is a configuration error; whether
        // its plan applies is found out at start.
        let apply = args
            .apply
            .iter()
            .map(|path| {
                let failed = |e: &dyn std::fmt::Display| {
                    ServeError::Config(format!("--apply {}: {e}", path.display()))
                };
                let text = std::fs::read_to_string(path).map_err(|e| failed(&e))?;
                let spec = TenantSpec::from_yaml_or_json(&text).map_err(|e| failed(&e))?;
                Ok((path.clone(), spec))
            })
            .collect::<Result<_, ServeError>>()?;
        Ok(Self {
            args,
            tls,
            access,
            operator_file,
            operators,
            operators_created,
            sync_keys,
            sealer,
            initialized_by: initialized_by.into_iter().collect(),
            apply,
        })
    }
}

/// The store a control plane opened, before its sealer is attached (boxed: it moves
/// between threads while a start retries).
enum OpenedStore {
    Sqlite(Box<SqliteStore>),
    Postgres(Box<crate::control_plane::PostgresStore>),
}

impl OpenedStore {
    fn sealed(self, sealer: crate::control_plane::SecretSealer) -> Arc<dyn TenantStore> {
        match self {
            Self::Sqlite(store) => Arc::new(store.with_sealer(sealer)),
            Self::Postgres(store) => Arc::new(store.with_sealer(sealer)),
        }
    }
}

/// Opens the store once; a start calls it again while the database is unreachable.
type OpenStore = Box<dyn FnMut() -> Result<OpenedStore, crate::control_plane::StoreError> + Send>;

/// How `settings` opens its store, and the store's name for the log (a URL's password
/// removed). A flag that does not fit the store is refused here, before anything is bound.
fn store_opener(settings: &ControlPlaneSettings) -> Result<(OpenStore, String), ServeError> {
    let args = &settings.args;
    match &args.store.url {
        None => {
            let dir = args.data_dir.clone();
            let options = crate::control_plane::DataDirOptions {
                epoch: args.epoch,
                new_store: args.new_store,
                initialized_by: settings.initialized_by.clone(),
            };
            let name = dir.display().to_string();
            let open: OpenStore = Box::new(move || {
                SqliteStore::open_data_dir(&dir, &options).map(|s| OpenedStore::Sqlite(Box::new(s)))
            });
            Ok((open, name))
        }
        Some(_) if args.new_store => Err(ServeError::Config(
            "--new-store starts a new SQLite store; a PostgreSQL store is made new by \
             pointing --store at an empty database"
                .into(),
        )),
        Some(url) => {
            let options = crate::control_plane::PostgresOptions {
                epoch: args.epoch,
                ..args.store.postgres_options(url)?
            };
            let open: OpenStore = Box::new(move || {
                crate::control_plane::PostgresStore::open(&options)
                    .map(|s| OpenedStore::Postgres(Box::new(s)))
            });
            Ok((open, crate::control_plane::redact_url(url)))
        }
    }
}

/// Binds the probes, opens the store (waiting, not ready, while the database is
/// unreachable), applies declared tenants, then serves until a stop signal; then drains.
pub(crate) fn run_control_plane(settings: ControlPlaneSettings) -> Result<(), ServeError> {
    let (open, store_name) = store_opener(&settings)?;
    let log_format = settings.args.process.log_format;
    let runtime = runtime(settings.args.process.worker_threads)?;
    let result = runtime.block_on(async move {
        let telemetry =
            telemetry::init(log_format).map_err(|e| ServeError::Config(e.to_string()))?;
        let served =
            serve_control_plane(settings, open, store_name, stop_signal(), START_RETRY).await;
        telemetry.shutdown();
        served
    });
    // An attempt to reach the database may still be under way on a blocking thread (for at
    // most its connect timeout): the process does not wait for it.
    runtime.shutdown_timeout(DRAIN);
    result
}

/// The control plane's life from its listeners to its drain: the probes are bound and
/// answer (alive, not ready, and why) first; the store is opened and the tenants loaded,
/// retried with `delays` while the database is unreachable; then the admin and sync APIs
/// are bound and every edge serves, ready, until `stop` completes.
async fn serve_control_plane(
    settings: ControlPlaneSettings,
    open: OpenStore,
    store_name: String,
    stop: impl std::future::Future<Output = ()>,
    delays: RetryDelays,
) -> Result<(), ServeError> {
    let ControlPlaneSettings {
        args,
        tls,
        access,
        operator_file,
        operators,
        operators_created,
        sync_keys,
        sealer,
        initialized_by: _,
        apply,
    } = settings;
    // The action catalogue behind every policy write's findings is parsed once, on first use
    // (a third of a second in a debug build): parse it now, off the runtime, so that the first
    // CreatePolicy does not pay for it.
    drop(tokio::task::spawn_blocking(|| {
        if let Err(e) = crate::policy::catalog::catalog() {
            say(&format!("iamlet control plane: {e}"));
        }
    }));
    let operator_names: Vec<String> = operators.iter().map(|o| o.name.clone()).collect();
    let admin_auth = Arc::new(crate::control_plane::AdminAuth::new(
        operators,
        args.operator_identities.clone(),
    ));
    let options = ServeOptions {
        tls: tls.clone(),
        access,
        admin_auth: Some(Arc::clone(&admin_auth)),
        sync_admission: Arc::new(crate::control_plane::SyncAdmission {
            keys: sync_keys,
            open: args.insecure_open_sync,
            loopback: args.listen.ip().is_loopback() || args.sync_allow_loopback,
        }),
    };
    // The probes' listeners first: a port in use stops the process at once, and a replica
    // waiting for its database answers its kubelet (alive, not ready) instead of refusing.
    let health_listener = bind_optional(args.health_listen).await?;
    let http_listener = bind_optional(args.http_listen).await?;
    let (serving, _) = tokio::sync::watch::channel(false);
    let (stop_serving, stopped) = tokio::sync::watch::channel(false);
    let store_health = Arc::new(StoreHealth::new());
    let probes = Arc::new(ControlPlaneProbes::new(
        Arc::clone(&admin_auth),
        Arc::clone(&store_health),
        serving.subscribe(),
    ));
    let mut servers = Vec::new();
    if let Some(listener) = health_listener {
        let stopped = until_stopped(stopped.clone());
        let serving = serving.subscribe();
        servers.push(tokio::spawn(async move {
            if let Err(e) = serve_health(CONTROL_PLANE_SERVICES, serving, listener, stopped).await {
                say(&format!("iamlet control plane: health port: {e}"));
            }
        }));
    }
    let http_edge = http_listener.map(|listener| {
        let edge = SwitchRouter::new(starting_routes(
            Arc::clone(&probes) as Arc<dyn observe::Probes>
        ));
        servers.push(tokio::spawn(crate::http::serve(
            edge.router(),
            listener,
            tls.clone().filter(|_| args.http_tls),
            until_stopped(stopped.clone()),
        )));
        edge
    });
    say(&format!(
        "iamlet control plane: opening the store {store_name}; not ready until its tenants are loaded{}{}",
        args.http_listen.map(|a| format!(", HTTP on {a}")).unwrap_or_default(),
        args.health_listen.map(|a| format!(", health on {a}")).unwrap_or_default(),
    ));
    let mut stop = std::pin::pin!(stop);
    let clock = clock_with_offset(args.clock_offset);
    let keys = SnapshotKeySettings {
        ring: (args.snapshot_signing_key.clone())
            .unwrap_or_else(|| args.data_dir.join("snapshot-signing.key")),
        trust_out: (args.snapshot_keys_out.clone())
            .unwrap_or_else(|| args.data_dir.join("snapshot-keys.pub")),
        rotate: args.rotate_snapshot_key,
        retire: args.retire_snapshot_key.clone(),
    };
    let loading = load_control_plane(open, sealer, store_health, &probes, delays, clock, keys);
    let control_plane = tokio::select! {
        () = &mut stop => None,
        loaded = loading => Some(loaded?),
    };
    let Some(control_plane) = control_plane else {
        say("iamlet control plane: stopping before its store was loaded");
        let _ = stop_serving.send(true);
        drain(servers).await;
        return Ok(());
    };
    // A plan that cannot be applied (say, a user created since holds keys) leaves the tenant
    // as it is, with a warning: a control plane that would not start could not be fixed
    // through its API.
    let not_applied = tokio::task::spawn_blocking({
        let control_plane = Arc::clone(&control_plane);
        move || {
            apply
                .into_iter()
                .filter_map(|(path, spec)| {
                    control_plane
                        .apply_spec(&spec, "operator:apply", false)
                        .err()
                        .map(|error| (path, error))
                })
                .collect::<Vec<_>>()
        }
    })
    .await
    .map_err(|e| {
        ServeError::Start(format!(
            "applying the declared tenants did not complete: {e}"
        ))
    })?;
    for (path, error) in not_applied {
        tracing::warn!(
            file = %path.display(),
            code = error.code().as_str(),
            %error,
            "a declared tenant was not applied; it stays as it was"
        );
    }
    // Other replicas' commits reach this one's admin reads and sync streams; stopped
    // (dropped) when the process stops serving.
    let _follower = control_plane.follow(args.catch_up_interval);
    // Sidecars hold date keys for two days: each day's roll must reach them (issue #20).
    let _key_roll =
        control_plane.roll_sidecar_keys_daily(crate::control_plane::DEFAULT_KEY_ROLL_CHECK);
    // Bound once loaded: until then a sidecar or an admin client is refused at once and
    // moves to another replica, rather than waiting on a port nobody answers.
    let listener = bind(args.listen).await?;
    servers.push(tokio::spawn({
        let stopped = until_stopped(stopped.clone());
        let cp = Arc::clone(&control_plane);
        async move {
            if let Err(e) =
                serve_control_plane_with(cp, listener, DEFAULT_HEARTBEAT, options, stopped).await
            {
                say(&format!("iamlet control plane: {e}"));
            }
        }
    }));
    if let Some(edge) = &http_edge {
        let admin = crate::control_plane::Admin::new(
            Arc::clone(&control_plane),
            Arc::clone(probes.admin_auth()),
        );
        let secure = args.http_tls && tls.is_some();
        let mut routes = crate::http::iam::routes(
            admin.clone(),
            Arc::clone(&probes) as Arc<dyn observe::Probes>,
            secure,
        );
        if !args.no_console {
            routes = routes.merge(crate::http::console::routes(
                admin,
                secure,
                args.console_secure_cookies,
            ));
        }
        edge.switch(
            routes.fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not found\n") }),
        );
    }
    probes.loaded(Arc::clone(&control_plane));
    serving.send_replace(true);
    say(&format!(
        "iamlet control plane: {} tenant(s), epoch {}, admin and sync APIs on {}{}{}, data in {}",
        control_plane.list_tenants().len(),
        control_plane.epoch(),
        args.listen,
        args.http_listen
            .map(|a| format!(", HTTP on {a}"))
            .unwrap_or_default(),
        args.health_listen
            .map(|a| format!(", health on {a}"))
            .unwrap_or_default(),
        store_name
    ));
    say(&format!(
        "iamlet control plane: operators {} from {}{}",
        operator_names.join(", "),
        operator_file.display(),
        if operators_created {
            " (created now)"
        } else {
            ""
        }
    ));
    stop.await;
    say("iamlet control plane: stopping");
    serving.send_replace(false);
    let _ = stop_serving.send(true);
    drain(servers).await;
    Ok(())
}

/// Opens the store and loads its tenants, each retried while the database is unreachable;
/// the store's calls report to `health` from then on.
async fn load_control_plane(
    open: OpenStore,
    sealer: crate::control_plane::SecretSealer,
    health: Arc<StoreHealth>,
    probes: &ControlPlaneProbes,
    delays: RetryDelays,
    clock: fn() -> i64,
    keys: SnapshotKeySettings,
) -> Result<Arc<ControlPlane>, ServeError> {
    let opened = until_reachable("cannot reach the store", probes, delays, open).await?;
    let store: Arc<dyn TenantStore> = Arc::new(ObservedStore::new(opened.sealed(sealer), health));
    // Failed admin authentications are counted in the database: every replica shares a budget.
    probes
        .admin_auth()
        .count_failures_in(Arc::clone(&store) as _);
    let control_plane = until_reachable("cannot load the tenants", probes, delays, move || {
        ControlPlane::open(Arc::clone(&store), IdGenerator::system())
    })
    .await?;
    let signer = keys.load(&control_plane.store_identity().id)?;
    Ok(Arc::new(
        control_plane.with_clock(clock).with_snapshot_signer(signer),
    ))
}

/// Where the snapshot signing keys live and what to do with them at start.
struct SnapshotKeySettings {
    ring: PathBuf,
    trust_out: PathBuf,
    rotate: bool,
    retire: Vec<String>,
}

impl SnapshotKeySettings {
    /// Loads (or creates) the key ring for `store_id`, rotates and retires as asked, writes
    /// the sidecars' trust file, and returns the key that signs.
    fn load(self, store_id: &str) -> Result<crate::snapshot::SigningKey, ServeError> {
        use crate::control_plane::SnapshotKeyRing;
        let config = |e: &dyn std::fmt::Display| ServeError::Config(e.to_string());
        let (mut ring, written) =
            SnapshotKeyRing::load_or_create(&self.ring, store_id).map_err(|e| config(&e))?;
        let mut changed = false;
        if self.rotate && !written {
            let id = ring.rotate(store_id).map_err(|e| config(&e))?;
            say(&format!(
                "iamlet control plane: snapshot key {id} now signs (rotated)"
            ));
            changed = true;
        }
        for id in &self.retire {
            ring.retire(id).map_err(|e| config(&e))?;
            say(&format!("iamlet control plane: snapshot key {id} retired"));
            changed = true;
        }
        if changed {
            ring.save(&self.ring).map_err(|e| config(&e))?;
        }
        ring.export_trust(&self.trust_out).map_err(|e| config(&e))?;
        let signer = ring.current().map_err(|e| config(&e))?;
        say(&format!(
            "iamlet control plane: snapshots signed by {} (key ring {}{}); sidecars' \
             --snapshot-keys: {}",
            signer.id(),
            self.ring.display(),
            if written { ", created now" } else { "" },
            self.trust_out.display()
        ));
        Ok(signer)
    }
}

/// `--clock-offset`'s seconds: a `fn() -> i64` clock cannot capture it.
static CLOCK_OFFSET: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// The control plane's clock: the system's, or with `--clock-offset` (tests only) the
/// system's moved by `offset` seconds, announced loudly.
pub(crate) fn clock_with_offset(offset: Option<i64>) -> fn() -> i64 {
    let Some(offset) = offset else {
        return crate::control_plane::system_clock;
    };
    CLOCK_OFFSET.store(offset, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        offset_seconds = offset,
        "the control plane's clock is offset from the system's (--clock-offset, for tests only)"
    );
    say(&format!(
        "iamlet control plane: WARNING: the clock runs {offset} seconds off the system's \
         (--clock-offset, for tests only)"
    ));
    offset_clock
}

/// The system clock moved by `--clock-offset` (tests only).
fn offset_clock() -> i64 {
    crate::control_plane::system_clock()
        .saturating_add(CLOCK_OFFSET.load(std::sync::atomic::Ordering::Relaxed))
}

/// Waits for the servers to finish their open calls, at most [`DRAIN`].
async fn drain(servers: Vec<tokio::task::JoinHandle<()>>) {
    let _ = tokio::time::timeout(DRAIN, async {
        for server in servers {
            let _ = server.await;
        }
    })
    .await;
}

/// A sidecar's configuration, read and checked: every file it names is read here, so that a
/// bad one stops the process before anything is bound.
pub(crate) struct SidecarSettings {
    args: SidecarArgs,
    readiness: Readiness,
    log_config: DecisionLogConfig,
    caches: CacheConfig,
    staleness: StalenessPolicy,
    sync_credentials: Option<crate::client::Profile>,
    tls: Option<crate::tls::ClientTlsFiles>,
    local_tls: Option<Arc<ReloadingServerTls>>,
}

impl TryFrom<SidecarArgs> for SidecarSettings {
    type Error = ServeError;

    fn try_from(args: SidecarArgs) -> Result<Self, ServeError> {
        let config = |e: &dyn std::fmt::Display| ServeError::Config(e.to_string());
        let readiness = parse_tenants(&args.tenants)?;
        let endpoints = crate::sync::EndpointList::parse(&args.control_plane)
            .map_err(|e| ServeError::Config(format!("--control-plane: {e}")))?;
        let log_config = DecisionLogConfig {
            sink: DecisionLogConfig::parse_sink(&args.decision_log)
                .map_err(|e| ServeError::Config(format!("--decision-log: {e}")))?,
            deny_only: args.decision_log_deny_only,
            sample_rate: args.decision_log_sample_rate,
            rotation: crate::sidecar::decision_log::Rotation {
                max_file_bytes: args.decision_log_max_file_bytes,
                keep: args.decision_log_keep,
            },
            ..DecisionLogConfig::default()
        };
        log_config.validate().map_err(|e| config(&e))?;
        let caches = CacheConfig {
            decisions: args.decision_cache_entries,
            decision_ttl: Duration::from_secs(args.decision_cache_ttl),
            ..CacheConfig::default()
        };
        if args.max_issue_stale > args.max_serve_stale {
            return Err(ServeError::Config(
                "--max-issue-stale must not exceed --max-serve-stale: issuing is stricter than deciding"
                    .into(),
            ));
        }
        let staleness = StalenessPolicy {
            max_serve_stale: args.max_serve_stale,
            max_issue_stale: args.max_issue_stale,
            fail_open_tenants: args.fail_open_tenants.clone(),
        };
        let sync_credentials = match &args.sync_credentials {
            Some(path) => {
                let (keys, _) = read_credentials_file(path, false)?;
                let key = match &args.sync_profile {
                    Some(name) => keys.into_iter().find(|k| &k.name == name),
                    None => keys.into_iter().next(),
                }
                .ok_or_else(|| {
                    ServeError::Config(format!("{}: no such profile", path.display()))
                })?;
                Some(crate::client::Profile {
                    access_key_id: key.access_key_id,
                    secret_access_key: key.secret,
                    session_token: None,
                })
            }
            None => None,
        };
        let tls = match &args.control_plane_ca {
            Some(ca) => {
                let files = crate::tls::ClientTlsFiles {
                    ca: ca.clone(),
                    server_name: args.control_plane_name.clone(),
                    identity: args.tls_cert.clone().zip(args.tls_key.clone()),
                };
                // Read once now, so that a bad file stops the process before it starts.
                for url in endpoints.urls() {
                    files.load(&url.url).map_err(|e| config(&e))?;
                }
                Some(files)
            }
            None => None,
        };
        let local_tls = match (&args.local_tls_cert, &args.local_tls_key) {
            (Some(cert), Some(key)) => Some(
                ReloadingServerTls::try_new(&crate::tls::ServerTlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: None,
                })
                .map_err(|e| config(&e))?,
            ),
            _ => None,
        };
        Ok(Self {
            args,
            readiness,
            log_config,
            caches,
            staleness,
            sync_credentials,
            tls,
            local_tls,
        })
    }
}

/// `*`, or account ids separated by commas.
fn parse_tenants(text: &str) -> Result<Readiness, ServeError> {
    if text.trim() == "*" {
        return Ok(Readiness::All);
    }
    let tenants: Vec<String> = text
        .split(',')
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if tenants.is_empty()
        || tenants
            .iter()
            .any(|t| !crate::account::AccountId::is_valid(t))
    {
        return Err(ServeError::Tenants(format!(
            "`{}`: expected 12-digit account ids separated by commas, or `*`",
            crate::error::echo(text)
        )));
    }
    Ok(Readiness::Tenants(tenants))
}

/// The trust `--snapshot-keys` names (a file that cannot be read, does not parse or lists no
/// key stops the start), or none with `--insecure-unsigned-snapshots`.
fn snapshot_trust(args: &SidecarArgs) -> Result<crate::snapshot::SnapshotTrust, ServeError> {
    let Some(path) = &args.snapshot_keys else {
        return if args.insecure_unsigned_snapshots {
            Ok(crate::snapshot::SnapshotTrust::InsecureUnsigned)
        } else {
            Err(ServeError::Config(
                "--snapshot-keys is required (or --insecure-unsigned-snapshots)".into(),
            ))
        };
    };
    let failed = |e: &dyn std::fmt::Display| {
        ServeError::Config(format!("--snapshot-keys {}: {e}", path.display()))
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(&e))?;
    let keys = crate::snapshot::TrustedKeys::parse(&text).map_err(|e| failed(&e))?;
    if keys.is_empty() {
        return Err(failed(&"no key is accepted (every key listed is retired)"));
    }
    Ok(crate::snapshot::SnapshotTrust::keys(keys))
}

/// Starts the stream, binds every listener, and serves until a stop signal; then drains.
pub(crate) fn run_sidecar(settings: SidecarSettings) -> Result<(), ServeError> {
    let SidecarSettings {
        args,
        readiness,
        log_config,
        caches,
        staleness,
        sync_credentials,
        tls,
        local_tls,
    } = settings;
    let snapshot_trust = snapshot_trust(&args)?;
    runtime(Some(sidecar_worker_threads(args.process.worker_threads)))?.block_on(async move {
        let telemetry = telemetry::init(args.process.log_format)
            .map_err(|e| ServeError::Config(e.to_string()))?;
        if matches!(
            snapshot_trust,
            crate::snapshot::SnapshotTrust::InsecureUnsigned
        ) {
            tracing::warn!(
                "snapshot signatures are NOT verified (--insecure-unsigned-snapshots): an \
                 edited state file or an unsigned update is served"
            );
            say(
                "iamlet sidecar: WARNING: snapshot signatures are not verified \
                 (--insecure-unsigned-snapshots)",
            );
        }
        let (decision_log, log_task) =
            DecisionLog::spawn(log_config).map_err(|e| ServeError::Config(e.to_string()))?;
        let config = SidecarConfig {
            control_plane: args.control_plane.clone(),
            readiness,
            state_dir: args.state_dir.clone(),
            sidecar_id: format!("{}:{}", hostname(), std::process::id()),
            backoff: Backoff::default(),
            caches,
            decision_log,
            staleness,
            tls,
            sync_credentials,
            liveness: crate::sync::Liveness {
                keepalive_interval: args.keepalive_interval,
                keepalive_timeout: args.keepalive_timeout,
                idle_timeout: args.sync_idle_timeout,
            },
            usage: (!args.usage_interval.is_zero()).then(|| crate::sidecar::UsageConfig {
                interval: args.usage_interval,
                ..crate::sidecar::UsageConfig::default()
            }),
            // STS events ride with usage, at its interval.
            trail: (!args.usage_interval.is_zero()).then(|| crate::sidecar::TrailConfig {
                interval: args.usage_interval,
                ..crate::sidecar::TrailConfig::default()
            }),
            snapshot_trust,
        };
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        // A route table that does not check out stops the start, as a bad flag does.
        let route_table = match &args.ext_authz_routes {
            Some(path) => Some(
                crate::sidecar::ext_authz::RouteTable::load(path)
                    .map_err(|e| ServeError::Config(e.to_string()))?,
            ),
            None => None,
        };
        let (handle, stream) = spawn_sidecar(&config, shutdown.clone());
        let ext_authz = route_table.map(|table| {
            Arc::new(crate::sidecar::ext_authz::ExtAuthz::new(
                Arc::clone(&handle.api),
                table,
            ))
        });
        if let (Some(ext_authz), Some(path)) = (&ext_authz, &args.ext_authz_routes) {
            crate::sidecar::ext_authz::spawn_route_table_reload(
                Arc::clone(ext_authz),
                path.clone(),
                crate::sidecar::ext_authz::RELOAD_INTERVAL,
                shutdown.clone(),
            );
        }
        // Every listener is bound before anything is served: a port in use stops the
        // process before it reports ready.
        let listener = bind(args.listen).await?;
        let health_listener = bind_optional(args.health_listen).await?;
        let http_listener = bind_optional(args.http_listen).await?;
        #[cfg(unix)]
        let uds_listener = match &args.uds {
            Some(path) => Some(crate::grpc::bind_uds(path)?),
            None => None,
        };
        say(&format!(
            "iamlet sidecar: following {}, serving {} tenant(s) from {}, local API on {}{}{}",
            args.control_plane,
            handle.store.versions().len(),
            args.state_dir.display(),
            args.listen,
            args.health_listen
                .map(|a| format!(", health on {a}"))
                .unwrap_or_default(),
            args.http_listen
                .map(|a| format!(", HTTP on {a}"))
                .unwrap_or_default(),
        ));
        if let Some(path) = &args.ext_authz_routes {
            say(&format!(
                "iamlet sidecar: Envoy ext_authz on the local API, routes from {}",
                path.display()
            ));
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut servers = Vec::new();
        let serve_api = |name: &'static str, served| {
            tokio::spawn(async move {
                if let Err(e) = served.await {
                    say(&format!("iamlet sidecar: {name}: {e}"));
                }
            })
        };
        let keepalive = listener
            .local_addr()
            .map_or(Keepalive::Ping, Keepalive::for_address);
        let local: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), crate::grpc::SidecarError>> + Send>,
        > = match local_tls.clone() {
            Some(tls) => Box::pin(serve_local_api_with(
                handle.clone(),
                ext_authz.clone(),
                keepalive,
                tls.incoming(listener),
                until_stopped(stopped.clone()),
            )),
            None => Box::pin(serve_local_api_with(
                handle.clone(),
                ext_authz.clone(),
                keepalive,
                crate::net::accept(listener, crate::net::ConnectionLimits::default()),
                until_stopped(stopped.clone()),
            )),
        };
        servers.push(serve_api("local API", local));
        if let Some(listener) = health_listener {
            servers.push(serve_api(
                "health port",
                Box::pin(serve_health(
                    if ext_authz.is_some() {
                        crate::grpc::SIDECAR_SERVICES_WITH_EXT_AUTHZ
                    } else {
                        SIDECAR_SERVICES
                    },
                    handle.serving(),
                    listener,
                    until_stopped(stopped.clone()),
                )),
            ));
        }
        #[cfg(unix)]
        if let Some(listener) = uds_listener {
            servers.push(serve_api(
                "unix socket",
                Box::pin(serve_local_api_with(
                    handle.clone(),
                    ext_authz.clone(),
                    Keepalive::SameHost,
                    tokio_stream::wrappers::UnixListenerStream::new(listener),
                    until_stopped(stopped.clone()),
                )),
            ));
        }
        if let Some(listener) = http_listener {
            let router =
                crate::http::sts::sidecar_routes(&handle, args.http_tls && local_tls.is_some())
                    .merge(crate::http::credentials_routes(
                        Arc::new(crate::sidecar::ContainerCredentials::new(
                            Arc::clone(&handle.api),
                            crate::sidecar::ContainerCredentialsConfig {
                                audience: args.pod_identity_audience.clone(),
                                ..Default::default()
                            },
                        )),
                        &args.container_credentials_path,
                    ));
            servers.push(tokio::spawn(crate::http::serve(
                router,
                listener,
                local_tls.filter(|_| args.http_tls),
                until_stopped(stopped.clone()),
            )));
        }
        stop_signal().await;
        // Not ready first, so that traffic moves away; then stop accepting, and give
        // in-flight calls a bounded time (an open stream never holds the exit).
        say("iamlet sidecar: draining");
        handle.start_draining();
        tokio::time::sleep(args.drain_delay).await;
        let _ = shutdown_tx.send(true);
        let _ = stop.send(true);
        let _ = tokio::time::timeout(DRAIN, async {
            for server in servers {
                let _ = server.await;
            }
            let _ = stream.await;
        })
        .await;
        log_task.shutdown().await;
        telemetry.shutdown();
        Ok(())
    })
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "sidecar".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn a_sidecar_runs_one_thread_unless_told_otherwise() {
        assert_eq!(sidecar_worker_threads(None), 1);
        for n in [1, 2, 8] {
            assert_eq!(sidecar_worker_threads(Some(n)), n);
        }
    }

    #[test]
    fn one_thread_runs_the_current_thread_scheduler_and_more_the_multi_thread_one() {
        for (threads, flavor) in [
            (0, RuntimeFlavor::CurrentThread),
            (1, RuntimeFlavor::CurrentThread),
            (2, RuntimeFlavor::MultiThread),
            (4, RuntimeFlavor::MultiThread),
        ] {
            let runtime = build_runtime(threads).unwrap();
            assert_eq!(
                runtime.handle().runtime_flavor(),
                flavor,
                "{threads} threads"
            );
            // Either runs what is spawned on it, and blocking work beside it.
            let answer = runtime.block_on(async {
                let spawned = tokio::spawn(async { 20 });
                let blocking = tokio::task::spawn_blocking(|| 22);
                spawned.await.unwrap() + blocking.await.unwrap()
            });
            assert_eq!(answer, 42);
        }
    }
}
