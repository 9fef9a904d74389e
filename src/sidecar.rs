//! The sidecar: it loads its tenants from disk, follows the control plane's stream, and
//! answers applications through its domain API, which the gRPC and HTTP edges serve.
//! Decisions read the snapshot store only; the stream and the disk only ever replace
//! snapshots.
//!
//! # In process
//!
//! The domain API needs no server: a process that embeds iamlet decides and issues with it
//! directly. Here the demo tenant is compiled into a snapshot, alice's request is decided, and
//! alice assumes a role:
//!
//! ```
//! use std::sync::Arc;
//! use iamlet::authz::{Context, Outcome};
//! use iamlet::control_plane::{ControlPlane, SqliteStore, TenantSpec};
//! use iamlet::directory::IdGenerator;
//! use iamlet::sidecar::decision_log::DecisionLog;
//! use iamlet::sidecar::{
//!     Api, AssumeRoleInput, AuthorizeInput, Authorizer, CacheConfig, CallerId,
//!     SecurityTokenService,
//! };
//! use iamlet::snapshot::{AwsManagedCatalog, SnapshotStore, TenantSnapshot};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A control plane holding the demo tenant, and a key for alice.
//! let dir = std::env::temp_dir().join(format!("iamlet-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let store = SqliteStore::open(&dir.join("iamlet.db"), None)?;
//! let cp = ControlPlane::open(Arc::new(store), IdGenerator::system())?;
//! let spec = TenantSpec::from_yaml_or_json(include_str!("../deploy/examples/demo-tenant.yaml"))?;
//! cp.apply_spec(&spec, "doc", false)?;
//! let (key, _) = cp.call("111122223333", "doc", "CreateAccessKey",
//!     &serde_json::json!({"UserName": "alice"}))?;
//!
//! // What a sidecar holds: the tenant compiled into a snapshot.
//! let (tenant, version) = cp.tenant("111122223333").ok_or("no tenant")?;
//! let snapshots = Arc::new(SnapshotStore::new());
//! snapshots.apply(TenantSnapshot::compile(tenant, version, &AwsManagedCatalog::compile())?)?;
//! let api = Arc::new(Api::new(snapshots, &CacheConfig::default(), DecisionLog::off()));
//!
//! // Authorize: the application names its caller.
//! let decision = Authorizer::new(Arc::clone(&api)).authorize(&AuthorizeInput {
//!     caller: CallerId::PrincipalArn("arn:aws:iam::111122223333:user/alice".into()),
//!     action: "s3:PutObject".into(),
//!     resource: "arn:aws:s3:::demo-data/home/alice/notes.txt".into(),
//!     context: Context::new(),
//!     resource_tenant: None,
//!     resource_policy: None,
//!     explain: false,
//!     min_version: None,
//!     request_id: None,
//! })?;
//! assert_eq!(decision.outcome, Outcome::Allow);
//!
//! // AssumeRole with alice's own credentials.
//! let issued = SecurityTokenService::new(api).assume_role(&AssumeRoleInput {
//!     caller: Some(CallerId::Keys {
//!         access_key_id: key["AccessKey"]["AccessKeyId"].as_str().ok_or("id")?.into(),
//!         secret: key["AccessKey"]["SecretAccessKey"].as_str().ok_or("secret")?.into(),
//!         session_token: None,
//!     }),
//!     role_arn: "arn:aws:iam::111122223333:role/reports-writer".into(),
//!     role_session_name: "doc".into(),
//!     tags: vec![iamlet::directory::Tag { key: "project".into(), value: "q4".into() }],
//!     ..AssumeRoleInput::default()
//! })?;
//! assert!(issued.access_key_id.starts_with("ASIA"));
//! assert_eq!(issued.arn, "arn:aws:sts::111122223333:assumed-role/reports-writer/doc");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod api;
mod authorize;
mod clock;
pub mod decision_log;
pub mod ext_authz;
mod fingerprint_cache;
mod pod_identity;
mod sts;

pub use crate::sync::trail::{Trail, TrailConfig, TrailStats};
pub use crate::sync::usage::{Usage, UsageConfig, UsageStats};
pub use api::{Api, ApiError, CacheConfig, CacheStats, CallerId, Freshness, StalenessPolicy};
pub use authorize::{
    check_context, is_blank_policy, limits, next_request_id, value_chars, AuthorizeError,
    AuthorizeInput, Authorizer, Decided, Decision, MAX_BATCH,
};
pub use pod_identity::{
    ContainerCredentials, ContainerCredentialsConfig, ContainerCredentialsError,
    ContainerCredentialsStats, PodCredentials, DEFAULT_CONTAINER_CREDENTIALS_PATH,
    DEFAULT_POD_IDENTITY_AUDIENCE,
};
pub use sts::{
    AssumeRoleInput, AssumeRoleWithWebIdentityInput, GetAccessKeyInfoInput, GetCallerIdentityInput,
    GetSessionTokenInput, Origin, SecurityTokenService, StsOperation,
};

use decision_log::DecisionLog;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::observe::{self, Gauges, Probes};
use crate::snapshot::SnapshotVersion;
use crate::snapshot::{AwsManagedCatalog, SnapshotStore};
use crate::sync::{
    report, run_sync_shipping, Applier, Backoff, Readiness, Shipping, SyncConfig, SyncState,
};

/// How a sidecar runs.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// The control plane's URLs, comma-separated (the sidecar fails over between them).
    pub control_plane: String,
    /// The tenants to serve.
    pub readiness: Readiness,
    /// Where the last known good snapshots live.
    pub state_dir: PathBuf,
    /// This sidecar's name in the control plane's logs.
    pub sidecar_id: String,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Decision and credential cache sizes.
    pub caches: CacheConfig,
    /// Where decisions are logged.
    pub decision_log: Arc<DecisionLog>,
    /// How long stale snapshots may be used.
    pub staleness: StalenessPolicy,
    /// TLS to the control plane.
    pub tls: Option<crate::tls::ClientTlsFiles>,
    /// The sync key presented to the control plane, if any.
    pub sync_credentials: Option<crate::client::Profile>,
    /// Keepalive and idle bound of the stream to the control plane.
    pub liveness: crate::sync::Liveness,
    /// How decisions are aggregated into usage for the control plane; `None` ships none.
    pub usage: Option<UsageConfig>,
    /// How STS calls are queued and shipped to the control plane as CloudTrail events;
    /// `None` ships none.
    pub trail: Option<TrailConfig>,
    /// Whose snapshot signatures are accepted (default: none, so nothing loads until keys
    /// are given; fail closed).
    pub snapshot_trust: crate::snapshot::SnapshotTrust,
}

impl Default for SidecarConfig {
    /// A sidecar of every tenant of a control plane on `127.0.0.1:7070`, without a decision
    /// log.
    fn default() -> Self {
        Self {
            control_plane: "http://127.0.0.1:7070".into(),
            readiness: Readiness::All,
            state_dir: PathBuf::from("iamlet-sidecar"),
            sidecar_id: "sidecar".into(),
            backoff: Backoff::default(),
            caches: CacheConfig::default(),
            decision_log: DecisionLog::off(),
            staleness: StalenessPolicy::default(),
            tls: None,
            sync_credentials: None,
            liveness: crate::sync::Liveness::default(),
            usage: Some(UsageConfig::default()),
            trail: Some(TrailConfig::default()),
            snapshot_trust: crate::snapshot::SnapshotTrust::default(),
        }
    }
}

/// A running sidecar's shared state.
#[derive(Debug, Clone)]
pub struct SidecarHandle {
    /// The published snapshots.
    pub store: Arc<SnapshotStore>,
    /// The stream's state.
    pub sync: Arc<SyncState>,
    /// The tenants it must serve.
    pub readiness: Readiness,
    /// The local API's shared state: caches and decision log.
    pub api: Arc<Api>,
    /// Whether the sidecar should receive traffic now: health services and `/readyz` follow
    /// it.
    serving: Arc<watch::Sender<bool>>,
    /// Set on SIGTERM: the sidecar reports not ready while it drains.
    pub draining: Arc<AtomicBool>,
    /// What the start found in the state directory.
    boot: Arc<Boot>,
    /// Updates and state files refused for their signature.
    pub signature_refusals: Arc<crate::snapshot::SignatureRefusals>,
}

/// What a sidecar loaded from its state directory when it started.
#[derive(Debug, Default)]
struct Boot {
    /// Tenants loaded from their files.
    loaded: usize,
    /// Tenants whose files were refused (corrupt, tampered, unreadable).
    refused: Vec<String>,
}

// === impl SidecarHandle ===

impl SidecarHandle {
    /// True once every required tenant is served. A sidecar of every tenant (`*`) cannot know
    /// every tenant until the control plane tells it, so it is ready once the control plane's
    /// first full answer arrived, or once it started from state files holding at least one
    /// tenant: it then answers for those, as a sidecar of named tenants does, while it
    /// reconnects.
    pub fn is_ready(&self) -> bool {
        let booted = matches!(self.readiness, Readiness::All) && self.boot.loaded > 0;
        booted
            || self
                .readiness
                .is_ready(&self.store, self.sync.full_response_seen())
    }

    /// Required tenants not served yet, and tenants whose state files were refused at start
    /// and are not served since.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = self.readiness.missing(&self.store);
        for tenant in &self.boot.refused {
            if self.store.version(tenant).is_none() && !missing.contains(tenant) {
                missing.push(tenant.clone());
            }
        }
        missing
    }

    /// True while the sidecar should receive traffic: ready, and not draining.
    pub fn is_serving(&self) -> bool {
        self.is_ready() && !self.draining.load(Ordering::Relaxed)
    }

    /// Follows [`Self::is_serving`]: every health service and probe reads this channel.
    pub fn serving(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// Publishes a change of [`Self::is_serving`], if any.
    pub fn refresh_serving(&self) {
        let serving = self.is_serving();
        self.serving.send_if_modified(|current| {
            let changed = *current != serving;
            *current = serving;
            changed
        });
    }

    /// Stops reporting ready (health NOT_SERVING, `/readyz` 503) ahead of shutdown, so that
    /// traffic moves away while in-flight calls finish. Health answers change before this
    /// returns.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.refresh_serving();
    }
}

/// Keeps [`SidecarHandle::serving`] in step with readiness, which changes only when the
/// stream applies a response (a required tenant arrives or leaves, the first full response
/// lands) and when draining starts ([`SidecarHandle::start_draining`] publishes that itself).
async fn follow_readiness(handle: SidecarHandle, mut shutdown: watch::Receiver<bool>) {
    loop {
        handle.refresh_serving();
        tokio::select! {
            _ = shutdown.changed() => {
                handle.serving.send_replace(false);
                return;
            }
            () = handle.sync.applied() => {}
        }
    }
}

/// `/healthz`, `/readyz` and `/metrics` for a sidecar.
#[derive(Debug, Clone)]
pub struct SidecarProbes(pub SidecarHandle);

impl Probes for SidecarProbes {
    fn ready(&self) -> bool {
        self.0.is_serving()
    }

    fn metrics(&self) -> String {
        self.0.api.metrics().render(self)
    }
}

impl Gauges for SidecarProbes {
    fn render(&self, out: &mut String) {
        let h = &self.0;
        let now = crate::policy::Timestamp::now();
        let versions = h.store.versions();
        let per_tenant = |f: &dyn Fn(SnapshotVersion) -> f64| -> Vec<(String, f64)> {
            versions
                .iter()
                .map(|(t, v)| (format!("tenant=\"{}\"", observe::label(t)), f(*v)))
                .collect()
        };
        observe::gauge(
            out,
            "iamlet_tenant_snapshot_epoch",
            "The epoch of each served tenant's snapshot.",
            &per_tenant(&|v| v.epoch as f64),
        );
        observe::gauge(
            out,
            "iamlet_tenant_snapshot_seq",
            "The sequence number of each served tenant's snapshot.",
            &per_tenant(&|v| v.seq as f64),
        );
        let stale = h.api.staleness_ms(now) as f64 / 1000.0;
        observe::gauge(
            out,
            "iamlet_tenant_staleness_seconds",
            "Seconds since each tenant's data was last confirmed by the control plane.",
            &per_tenant(&|_| stale),
        );
        observe::gauge(
            out,
            "iamlet_control_plane_connected",
            "1 while the snapshot stream is open.",
            &[(String::new(), if h.sync.connected() { 1.0 } else { 0.0 })],
        );
        observe::gauge(
            out,
            "iamlet_ready",
            "1 while the sidecar is ready and not draining.",
            &[(String::new(), if h.is_serving() { 1.0 } else { 0.0 })],
        );
        let (acks, nacks) = h.sync.ack_counts();
        observe::counter(
            out,
            "iamlet_sync_acks_total",
            "Tenant updates applied and ACKed.",
            acks,
        );
        observe::counter(
            out,
            "iamlet_sync_nacks_total",
            "Tenant updates refused and NACKed.",
            nacks,
        );
        {
            let name = "iamlet_snapshot_signature_refusals_total";
            use std::fmt::Write as _;
            let _ = writeln!(
                out,
                "# HELP {name} Tenant updates and state files refused for their signature, by \
                 reason.\n# TYPE {name} counter"
            );
            for (reason, count) in h.signature_refusals.snapshot() {
                let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {count}");
            }
        }
        {
            // Issue #20: presentations of access keys for a day the sidecar holds no derived
            // key of; `expired` ones mean the sidecar has been cut off past its keys.
            let name = "iamlet_access_key_day_refusals_total";
            use std::fmt::Write as _;
            let _ = writeln!(
                out,
                "# HELP {name} Access-key presentations refused for a day the sidecar holds no \
                 derived key of, by reason.\n# TYPE {name} counter"
            );
            for (reason, count) in crate::sts::key_day_refusals() {
                let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {count}");
            }
        }
        observe::counter(
            out,
            "iamlet_sts_out_of_scope_refusals_total",
            "Sessions refused because they are outside this sidecar's issuing certificate.",
            h.store.issuing().out_of_scope_refusals(),
        );
        observe::counter(
            out,
            "iamlet_sync_failovers_total",
            "Streams opened on another control-plane endpoint than the previous stream's.",
            h.sync.failovers(),
        );
        let d = h.api.decision_cache_stats();
        let c = h.api.credential_cache_stats();
        observe::counter(
            out,
            "iamlet_decision_cache_hits_total",
            "Decisions served from the cache.",
            d.hits,
        );
        observe::counter(
            out,
            "iamlet_decision_cache_misses_total",
            "Decisions evaluated and cached.",
            d.misses,
        );
        observe::gauge(
            out,
            "iamlet_decision_cache_entries",
            "Decisions in the cache.",
            &[(String::new(), d.entries as f64)],
        );
        observe::counter(
            out,
            "iamlet_credential_cache_hits_total",
            "Credential checks served from the cache.",
            c.hits,
        );
        observe::counter(
            out,
            "iamlet_credential_cache_misses_total",
            "Credentials verified in full.",
            c.misses,
        );
        let log = h.api.decision_log();
        observe::counter(
            out,
            "iamlet_decision_log_written_total",
            "Decision-log records written.",
            log.written(),
        );
        observe::counter(
            out,
            "iamlet_decision_log_dropped_total",
            "Decision-log records dropped because the queue was full.",
            log.dropped(),
        );
        observe::counter(
            out,
            "iamlet_decision_log_write_errors_total",
            "Decision-log records lost to write errors.",
            log.write_errors(),
        );
        if let Some(usage) = h.api.usage() {
            let u = usage.stats();
            observe::counter(
                out,
                "iamlet_usage_recorded_total",
                "Decisions and STS calls recorded as uses for the control plane.",
                u.recorded,
            );
            observe::counter(
                out,
                "iamlet_usage_entries_created_total",
                "Usage entries created (a new tenant, caller, action and region).",
                u.entries_created,
            );
            observe::gauge(
                out,
                "iamlet_usage_entries",
                "Usage entries held.",
                &[(String::new(), u.entries as f64)],
            );
            observe::counter(
                out,
                "iamlet_usage_dropped_total",
                "Usage entries dropped because the per-tenant or overall bound was reached.",
                u.dropped,
            );
            observe::counter(
                out,
                "iamlet_usage_reports_sent_total",
                "Usage messages sent to the control plane.",
                u.messages_sent,
            );
            observe::counter(
                out,
                "iamlet_usage_bytes_sent_total",
                "Bytes of usage messages sent to the control plane.",
                u.bytes_sent,
            );
        }
        if let Some(trail) = h.api.trail() {
            let t = trail.stats();
            observe::counter(
                out,
                "iamlet_trail_events_recorded_total",
                "STS calls queued as events for the control plane.",
                t.recorded,
            );
            observe::gauge(
                out,
                "iamlet_trail_events_queued",
                "STS events waiting to be shipped.",
                &[(String::new(), t.queued as f64)],
            );
            observe::counter(
                out,
                "iamlet_trail_events_dropped_total",
                "STS events dropped because the per-tenant or overall bound was reached.",
                t.dropped,
            );
            observe::counter(
                out,
                "iamlet_trail_messages_sent_total",
                "Messages of STS events sent to the control plane.",
                t.messages_sent,
            );
            observe::counter(
                out,
                "iamlet_trail_bytes_sent_total",
                "Bytes of STS event messages sent to the control plane.",
                t.bytes_sent,
            );
        }
    }
}

/// Loads persisted tenants and starts the stream; returns the handle and the stream task.
pub fn spawn_sidecar(
    config: &SidecarConfig,
    shutdown: watch::Receiver<bool>,
) -> (SidecarHandle, tokio::task::JoinHandle<()>) {
    let store = Arc::new(SnapshotStore::new());
    let applier = Arc::new(
        Applier::new(
            Arc::clone(&store),
            Some(config.state_dir.clone()),
            Arc::new(AwsManagedCatalog::compile()),
        )
        .with_trust(config.snapshot_trust.clone()),
    );
    let signature_refusals = Arc::clone(applier.signature_refusals());
    let persisted = match &config.readiness {
        Readiness::Tenants(t) => t.clone(),
        Readiness::All => persisted_tenants(&config.state_dir),
    };
    let mut boot = Boot::default();
    for (tenant, result) in applier.boot_from_disk(&persisted) {
        match result {
            crate::sync::UpdateResult::Rejected { error, .. } => {
                report(&format!("not loading tenant {tenant} from disk: {error}"));
                boot.refused.push(tenant);
            }
            _ => boot.loaded += 1,
        }
    }
    let state = Arc::new(SyncState::restored(&config.state_dir));
    let shutdown_copy = shutdown.clone();
    let subscribe = match &config.readiness {
        Readiness::Tenants(t) => t.clone(),
        Readiness::All => vec!["*".to_owned()],
    };
    let usage = config.usage.map(|c| Arc::new(Usage::new(c)));
    let trail = config.trail.map(|c| Arc::new(Trail::new(c)));
    let sync = tokio::spawn(run_sync_shipping(
        applier,
        SyncConfig {
            endpoint: config.control_plane.clone(),
            subscribe,
            sidecar_id: config.sidecar_id.clone(),
            backoff: config.backoff,
            tls: config.tls.clone(),
            credentials: config.sync_credentials.clone(),
            liveness: config.liveness,
        },
        Shipping {
            usage: usage.clone(),
            trail: trail.clone(),
        },
        Arc::clone(&state),
        shutdown,
    ));
    let mut api = Api::new(
        Arc::clone(&store),
        &config.caches,
        Arc::clone(&config.decision_log),
    )
    .with_freshness(Freshness {
        sync: Arc::clone(&state),
        readiness: config.readiness.clone(),
        policy: config.staleness.clone(),
        started_ms: crate::policy::Timestamp::now().epoch_millis(),
    });
    if let Some(usage) = usage {
        api = api.with_usage(usage);
    }
    if let Some(trail) = trail {
        api = api.with_trail(trail);
    }
    let api = Arc::new(api);
    let handle = SidecarHandle {
        store,
        sync: state,
        readiness: config.readiness.clone(),
        api,
        serving: Arc::new(watch::channel(false).0),
        draining: Arc::new(AtomicBool::new(false)),
        boot: Arc::new(boot),
        signature_refusals,
    };
    tokio::spawn(follow_readiness(handle.clone(), shutdown_copy));
    (handle, sync)
}

/// The tenants with a persisted snapshot under `dir`.
fn persisted_tenants(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut tenants: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let account = name.strip_prefix("tenant-")?.strip_suffix(".json")?;
            crate::account::AccountId::is_valid(account).then(|| account.to_owned())
        })
        .collect();
    tenants.sort();
    tenants
}
