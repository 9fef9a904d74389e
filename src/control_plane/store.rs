//! Durable storage of tenants and their change log.
//!
//! [`TenantStore`] is what the control plane needs from a database: load every tenant, commit
//! one change (append the log entry and write the tenant's new state in one transaction), and
//! read the log back. [`SqliteStore`] implements it on one SQLite file in WAL mode with
//! `synchronous=FULL`, so a change acknowledged to a caller survives a crash or power loss;
//! [`PostgresStore`] implements it on PostgreSQL, which several control-plane replicas share.
//!
//! Several writers (issue #16): every commit names the state it was built on ([`Prior`]); the
//! store refuses with the retryable [`StoreError::Conflict`] when the tenant moved on since,
//! and the control plane reloads the tenant ([`TenantStore::load_tenant`]) and runs the action
//! again. Writes to one tenant are serialized by the database, never by a leader.
//!
//! Throttling (issue #16): failed admin authentications are counted per source in the store
//! ([`AuthFailureLog`]), so that every replica on one database shares one budget per source.
//!
//! Versions: a tenant's version is `(epoch, seq)` where `seq` is the number of its latest
//! change. The epoch is the store's: a store restored from a backup must be given a higher
//! epoch, so sidecars that saw later changes accept the restored history as newer.
//!
//! Identity (issue #13, item 1): a store is made once, with a random identity and a new,
//! random epoch, both kept in its `meta` table; the data directory keeps the identity in a
//! marker file beside the database. Sidecars remember which store each tenant came from and
//! never take a removal from another store, so a lost database cannot empty the fleet; and
//! [`SqliteStore::open_data_dir`] refuses to make a new store silently where one existed.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::directory::Tenant;
use crate::error::AwsCode;
use crate::snapshot::{SnapshotVersion, StoreRef};

use super::seal::{SealError, SecretSealer};

mod feed;
mod migrate;
mod postgres;

pub use self::feed::{ChangeFeed, ChangeNotice, FeedEvent, FeedIdle, FeedSender, CHANGES_CHANNEL};
pub use self::migrate::{
    migrate_store, MigrateStoreError, MigrateStoreOptions, MigrateStoreSummary, StoreLocation,
};
pub use self::postgres::{
    redact_url, MigrationReport, PostgresOptions, PostgresStore, SCHEMA_VERSION,
};

/// A tenant as stored, with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTenant {
    /// The directory.
    pub tenant: Tenant,
    /// Its version: the store's epoch and the number of its latest change.
    pub version: SnapshotVersion,
}

/// A change to record: who did what to which tenant, with secrets already redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeDraft {
    /// The tenant.
    pub account_id: String,
    /// Who made the change (an ARN, `operator:NAME`, or `root`).
    pub actor: String,
    /// The IAM action (`CreateUser`).
    pub action: String,
    /// The parameters, secrets redacted.
    pub parameters: serde_json::Value,
    /// When, in Unix seconds.
    pub at: i64,
}

/// A recorded change: one entry of a tenant's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The tenant.
    pub account_id: String,
    /// The change's number in the tenant's history, from 1.
    pub seq: u64,
    /// When, in Unix seconds.
    pub at: i64,
    /// Who made it.
    pub actor: String,
    /// The IAM action.
    pub action: String,
    /// The parameters, secrets redacted.
    pub parameters: serde_json::Value,
}

/// An admin call that changed nothing but belongs in the audit trail: a refused one (denied,
/// failed authentication, throttled) or any use of the root user's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The tenant.
    pub account_id: String,
    /// The event's number (store-wide, increasing).
    pub id: u64,
    /// When, in Unix seconds.
    pub at: i64,
    /// Who: the caller's ARN, or the access key id that failed to authenticate.
    pub actor: String,
    /// The action attempted (`CreateUser`, `CreateTenant`, ...).
    pub action: String,
    /// `Allowed`, `AccessDenied`, `AuthFailure` or `Throttled`.
    pub outcome: String,
    /// True when the root user's credentials were used.
    pub root: bool,
    /// The error code and message, or the resource acted on.
    pub detail: String,
    /// Where the call came from.
    pub source: String,
}

/// A tenant's latest change number as stored, live or deleted: what a replica's catch-up
/// poll compares with what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSeq {
    /// The tenant.
    pub account_id: String,
    /// The number of its latest change.
    pub seq: u64,
    /// True when that change deleted it.
    pub deleted: bool,
}

/// The state of a tenant a change was built on: the store commits the change only if the
/// tenant is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// No live tenant: never created, or deleted.
    Absent,
    /// The tenant at this change number.
    At(u64),
}

impl std::fmt::Display for Prior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Absent => f.write_str("no tenant"),
            Self::At(seq) => write!(f, "change {seq}"),
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed (its message never holds the connection's password).
    #[error("database: {}", describe(.0))]
    Postgres(#[from] ::postgres::Error),
    /// Another writer changed the tenant first: nothing was recorded, and the change can be
    /// made again on the tenant's current state.
    #[error(
        "tenant `{account}` changed concurrently: the change was built on {expected}, the \
         store holds {found}; nothing was recorded, retry on the current state"
    )]
    Conflict {
        /// The tenant.
        account: String,
        /// The state the change was built on.
        expected: Prior,
        /// The state the store holds.
        found: Prior,
    },
    /// The database cannot be reached now; nothing was recorded, and a retry may succeed.
    #[error("the database is unavailable: {reason}")]
    Unavailable {
        /// Why (never the connection's password).
        reason: String,
    },
    /// The database's schema is newer than this binary knows: an older binary must not write
    /// to it.
    #[error(
        "the database's schema is version {found}, newer than this binary's {known}: run a \
         binary that knows schema {found}"
    )]
    SchemaTooNew {
        /// The version the database holds.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },
    /// The store's URL does not parse or asks for something unsupported.
    #[error("invalid store URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, its password replaced.
        url: String,
        /// Why.
        reason: String,
    },
    /// A stored value does not decode.
    #[error("stored tenant `{account}` does not decode: {reason}")]
    Corrupt {
        /// The tenant.
        account: String,
        /// Why.
        reason: String,
    },
    /// A stored secret does not open, or one could not be sealed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A value does not encode.
    #[error("cannot encode tenant `{account}`: {reason}")]
    Encode {
        /// The tenant.
        account: String,
        /// Why.
        reason: String,
    },
    /// The database file cannot be read as a store (damaged, or not a database at all).
    #[error(
        "cannot load the database {path}: {reason}; the file is damaged or is not an iamlet \
         database: restore it from a backup (with --epoch above the last one served)"
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// The data directory held a store, but its database is gone or empty: starting would
    /// make a new, empty store and remove every tenant from every sidecar.
    #[error(
        "the data directory {dir} was initialized ({evidence}) but its database {database} is \
         {state}: refusing to start an empty store, which would remove every tenant from the \
         sidecars that follow it. Restore the database from a backup (with --epoch above the \
         last one served), or pass --new-store to start a new, empty store deliberately"
    )]
    MissingDatabase {
        /// The data directory.
        dir: PathBuf,
        /// The database file.
        database: PathBuf,
        /// `missing`, `empty` or `not an iamlet store`.
        state: &'static str,
        /// What shows the directory was initialized.
        evidence: String,
    },
    /// The database belongs to another store than the one the data directory recorded.
    #[error(
        "the database {database} is store {found}, but the data directory recorded store \
         {expected} ({marker}): refusing to serve another store's tenants under this one's \
         name. Put the right database back, or pass --new-store to adopt this one"
    )]
    ForeignDatabase {
        /// The database file.
        database: PathBuf,
        /// The marker file.
        marker: PathBuf,
        /// The identity the marker holds.
        expected: String,
        /// The identity the database holds.
        found: String,
    },
    /// The data directory or a file in it could not be created or protected.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// AWS's code: a concurrent change or an unreachable database is worth a retry; anything
    /// else is the service's failure (the caller can do nothing about it).
    pub fn code(&self) -> AwsCode {
        match self {
            Self::Conflict { .. } => AwsCode::ConcurrentModification,
            Self::Unavailable { .. } => AwsCode::ServiceUnavailable,
            _ => AwsCode::ServiceFailure,
        }
    }

    /// True when the same call may succeed if made again: nothing was recorded.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::Unavailable { .. })
    }
}

/// How [`SqliteStore::open_data_dir`] opens a control plane's data directory.
#[derive(Debug, Clone, Default)]
pub struct DataDirOptions {
    /// Raise the epoch to at least this (after a restore from a backup).
    pub epoch: Option<u64>,
    /// Start a new, empty store even though the directory was initialized (`--new-store`).
    pub new_store: bool,
    /// Files whose presence shows the directory was initialized before (the sealing key).
    pub initialized_by: Vec<PathBuf>,
}

/// The database's file name in a data directory.
pub const DATABASE_FILE: &str = "iamlet.db";
/// The marker file that records the store's identity in a data directory.
pub const IDENTITY_FILE: &str = "store-identity";

/// Failed admin authentications counted per source in the database, so that every
/// control-plane replica on one store shares the counts: running more replicas does not
/// multiply a guesser's budget (issue #16).
///
/// A source's window starts at its first failure and lasts `window_seconds`; a failure after
/// it ended starts a new window. Both calls are one atomic step in the database, and every
/// recording deletes the windows that ended, so the table holds only windows still live (at
/// most one row per source that failed within the last window).
pub trait AuthFailureLog: Send + Sync {
    /// Counts one failure of `source` at `now` (Unix seconds) and returns the source's
    /// failures in its current window, this one included.
    fn record_auth_failure(
        &self,
        source: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<u32, StoreError>;

    /// The failures of `source` in its window live at `now`: 0 when it has none, or its
    /// window ended.
    fn auth_failures(&self, source: &str, now: i64, window_seconds: i64)
        -> Result<u32, StoreError>;
}

/// One tenant's usage aggregates, as a sidecar reports them and as the store returns them:
/// the latest time each access key, principal and service, action and role was used. Times
/// are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// The tenant.
    pub account_id: String,
    /// Long-term access keys.
    pub access_keys: Vec<KeyUsage>,
    /// Principals and the services they were authenticated for.
    pub services: Vec<ServiceUsage>,
    /// Roles whose sessions were used.
    pub roles: Vec<RoleUsage>,
}

/// The last use of an access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    /// `AKIA…`.
    pub access_key_id: String,
    /// When.
    pub last_used: i64,
    /// The service namespace of the request (`s3`).
    pub service: String,
    /// The request's region.
    pub region: String,
}

/// The last time a principal was authenticated for a service, and per action where tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUsage {
    /// The user's or role's ARN.
    pub principal_arn: String,
    /// The service namespace (`s3`).
    pub service: String,
    /// When.
    pub last_authenticated: i64,
    /// The request's region.
    pub region: String,
    /// The actions, without the service prefix (`GetObject`).
    pub actions: Vec<ActionUsage>,
}

/// The last time a principal was authenticated for one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionUsage {
    /// The action without the service prefix.
    pub action: String,
    /// When.
    pub last_accessed: i64,
    /// The request's region.
    pub region: String,
}

/// The last use of a role's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleUsage {
    /// The role's ARN.
    pub role_arn: String,
    /// When.
    pub last_used: i64,
    /// The request's region.
    pub region: String,
}

/// What the sidecars report of their use of credentials, kept apart from the audit trail
/// (issue #17): never a tenant change, so recording it creates no version and pushes no
/// snapshot. Reports arrive at least once, from several sidecars, in any order: merging keeps,
/// for each key, principal and service, action and role, the latest time (with the service
/// and region of that use), so a resend or a late, older report changes nothing.
pub trait UsageLog: Send + Sync {
    /// Merges `batch` into its tenant's usage, in one transaction.
    fn record_usage(&self, batch: &UsageBatch) -> Result<(), StoreError>;

    /// A tenant's usage as merged so far (empty when none was reported).
    fn usage(&self, account_id: &str) -> Result<UsageBatch, StoreError>;
}

/// One usage row as both stores keep it: `(kind, subject, item, last_used, service, region)`.
/// `kind` is `key` (subject the key id), `service` (subject the principal, item the service),
/// `action` (item `service:Action`) or `role` (subject the role ARN).
pub(super) type UsageRow = (&'static str, String, String, i64, String, String);

/// A batch as rows.
pub(super) fn usage_rows(batch: &UsageBatch) -> Vec<UsageRow> {
    let mut rows = Vec::new();
    for k in &batch.access_keys {
        rows.push((
            "key",
            k.access_key_id.clone(),
            String::new(),
            k.last_used,
            k.service.clone(),
            k.region.clone(),
        ));
    }
    for s in &batch.services {
        rows.push((
            "service",
            s.principal_arn.clone(),
            s.service.clone(),
            s.last_authenticated,
            String::new(),
            s.region.clone(),
        ));
        for a in &s.actions {
            rows.push((
                "action",
                s.principal_arn.clone(),
                format!("{}:{}", s.service, a.action),
                a.last_accessed,
                String::new(),
                a.region.clone(),
            ));
        }
    }
    for r in &batch.roles {
        rows.push((
            "role",
            r.role_arn.clone(),
            String::new(),
            r.last_used,
            String::new(),
            r.region.clone(),
        ));
    }
    // In key order: concurrent writers lock rows in one order.
    rows.sort();
    rows
}

/// Rows read back (`kind` as stored) as a batch, in the rows' order. An action whose service
/// has no row of its own (never written so) still gets one, at the action's time.
pub(super) fn usage_batch(
    account_id: &str,
    rows: impl IntoIterator<Item = (String, String, String, i64, String, String)>,
) -> UsageBatch {
    let mut batch = UsageBatch {
        account_id: account_id.to_owned(),
        ..UsageBatch::default()
    };
    let mut actions = Vec::new();
    for (kind, subject, item, last_used, service, region) in rows {
        match kind.as_str() {
            "key" => batch.access_keys.push(KeyUsage {
                access_key_id: subject,
                last_used,
                service,
                region,
            }),
            "service" => batch.services.push(ServiceUsage {
                principal_arn: subject,
                service: item,
                last_authenticated: last_used,
                region,
                actions: Vec::new(),
            }),
            "action" => actions.push((subject, item, last_used, region)),
            "role" => batch.roles.push(RoleUsage {
                role_arn: subject,
                last_used,
                region,
            }),
            // A kind this binary does not know (written by a newer one) is left out.
            _ => {}
        }
    }
    for (principal, item, last_accessed, region) in actions {
        let Some((service, action)) = item.split_once(':') else {
            continue;
        };
        let position = batch
            .services
            .iter()
            .position(|s| s.principal_arn == principal && s.service == service);
        let index = position.unwrap_or_else(|| {
            batch.services.push(ServiceUsage {
                principal_arn: principal.clone(),
                service: service.to_owned(),
                last_authenticated: last_accessed,
                region: region.clone(),
                actions: Vec::new(),
            });
            batch.services.len() - 1
        });
        if let Some(entry) = batch.services.get_mut(index) {
            entry.actions.push(ActionUsage {
                action: action.to_owned(),
                last_accessed,
                region,
            });
        }
    }
    batch
}

/// One STS event a sidecar shipped, as stored: its CloudTrail record (JSON) with the keys it
/// is found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailRecord {
    /// The tenant.
    pub account_id: String,
    /// The event's id, unique in the tenant.
    pub event_id: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// The CloudTrail record, JSON.
    pub record: String,
}

/// The STS events the sidecars ship (issue #17, item 7), kept beside the admin changes and
/// audit events. Events arrive at least once, from any sidecar, in any order: an event id
/// already stored is ignored, so a resend changes nothing.
pub trait TrailLog: Send + Sync {
    /// Stores `events` (one transaction), ignoring ids already stored; returns how many were
    /// new.
    fn record_trail(&self, events: &[TrailRecord]) -> Result<usize, StoreError>;

    /// A tenant's events at `start_ms..=end_ms`, newest first, at most `limit`.
    fn trail(
        &self,
        account_id: &str,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError>;
}

/// What the control plane needs from durable storage; it also counts failed admin
/// authentications ([`AuthFailureLog`]), shared by every replica on the store, keeps what
/// the sidecars report of their use of credentials ([`UsageLog`]) and the STS events they ship
/// ([`TrailLog`]).
pub trait TenantStore: AuthFailureLog + UsageLog + TrailLog + Send + Sync {
    /// Every live tenant with its version.
    fn load_tenants(&self) -> Result<Vec<StoredTenant>, StoreError>;

    /// One tenant as stored now (`None`: never created, or deleted): what the control plane
    /// reloads after a [`StoreError::Conflict`].
    fn load_tenant(&self, account_id: &str) -> Result<Option<StoredTenant>, StoreError>;

    /// Records `change` and the tenant's state after it (`None`: the tenant was deleted) in
    /// one transaction, and returns the recorded change with its number, provided the
    /// tenant is still as `prior` says; otherwise [`StoreError::Conflict`]. On error nothing
    /// is recorded.
    fn commit(
        &self,
        change: &ChangeDraft,
        prior: Prior,
        after: Option<&Tenant>,
    ) -> Result<ChangeRecord, StoreError>;

    /// A tenant's changes after `after_seq`, oldest first, at most `limit`.
    fn changes(
        &self,
        account_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, StoreError>;

    /// The store's epoch.
    fn epoch(&self) -> u64;

    /// The store's identity: random, made once when the store was created.
    fn store_id(&self) -> &str;

    /// Records an audit event (its `id` is assigned) and returns its number.
    fn record_event(&self, event: &AuditEvent) -> Result<u64, StoreError>;

    /// A tenant's audit events after `after_id`, oldest first, at most `limit`.
    fn events(
        &self,
        account_id: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Every tenant's latest change number, deleted tenants included, without their states:
    /// the cheap read of a catch-up poll.
    fn tenant_seqs(&self) -> Result<Vec<TenantSeq>, StoreError>;

    /// Notices of the changes every writer of this store commits, its own included (`None`:
    /// the store has no other writers to hear from, as SQLite). Each call opens a new feed.
    fn watch_changes(&self) -> Option<ChangeFeed> {
        None
    }
}

/// [`TenantStore`] on one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    epoch: u64,
    id: String,
    sealer: Option<SecretSealer>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (
    account_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state TEXT,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS changes (
    account_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    parameters TEXT NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    root INTEGER NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_tenant ON events (account_id, id);
CREATE TABLE IF NOT EXISTS auth_failures (
    source TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    failures INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_failures_by_window ON auth_failures (window_start);
CREATE TABLE IF NOT EXISTS credential_usage (
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    item TEXT NOT NULL,
    last_used INTEGER NOT NULL,
    service TEXT NOT NULL,
    region TEXT NOT NULL,
    PRIMARY KEY (account_id, kind, subject, item)
);
CREATE TABLE IF NOT EXISTS trail_events (
    account_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (account_id, event_id)
);
CREATE INDEX IF NOT EXISTS trail_events_by_time ON trail_events (account_id, at_ms);
";

// === impl SqliteStore ===

impl SqliteStore {
    /// Opens (or creates) the store at `path`. A new store gets a random identity and a new,
    /// random epoch; `epoch` raises it (after a restore from backup). No check of the data
    /// directory: the control plane uses [`Self::open_data_dir`].
    pub fn open(path: &Path, epoch: Option<u64>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(|e| unreadable(path, &e))?;
        Self::init(conn, epoch).map_err(|e| match e {
            StoreError::Database(e) => unreadable(path, &e),
            other => other,
        })
    }

    /// A store in memory, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    /// Opens the store of a control plane's data directory `dir` (`iamlet.db`), made
    /// owner-only (the directory 0700, the database and its WAL 0600).
    ///
    /// Refuses, unless `options.new_store`: a directory that was initialized (its identity
    /// marker or one of `options.initialized_by` exists) whose database is missing, empty or
    /// holds no store; and a database whose identity is not the one the marker recorded.
    pub fn open_data_dir(dir: &Path, options: &DataDirOptions) -> Result<Self, StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        restrict(dir, 0o700);
        let database = dir.join(DATABASE_FILE);
        let marker = dir.join(IDENTITY_FILE);
        let recorded = match std::fs::read_to_string(&marker) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(StoreError::Io {
                    path: marker,
                    source,
                })
            }
        };
        let mut evidence: Vec<String> = recorded
            .iter()
            .map(|_| format!("it holds {}", marker.display()))
            .collect();
        evidence.extend(
            options
                .initialized_by
                .iter()
                .filter(|p| p.exists())
                .map(|p| format!("it holds {}", p.display())),
        );
        let size = match std::fs::metadata(&database) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(StoreError::Io {
                    path: database,
                    source,
                })
            }
        };
        let refuse = |state: &'static str| StoreError::MissingDatabase {
            dir: dir.to_owned(),
            database: database.clone(),
            state,
            evidence: evidence.join(", "),
        };
        let initialized = !evidence.is_empty() && !options.new_store;
        match size {
            None if initialized => return Err(refuse("missing")),
            Some(0) if initialized => return Err(refuse("empty")),
            None => {
                // Created here, owner-only, before SQLite opens it: SQLite gives the WAL and
                // shared-memory files the database's mode.
                create_private(&database).map_err(io(&database))?;
            }
            Some(_) => {}
        }
        restrict(&database, 0o600);
        let conn = Connection::open(&database).map_err(|e| unreadable(&database, &e))?;
        // Read before anything is written: a file that holds no store is reported, not
        // turned into an empty one.
        let has_store = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| unreadable(&database, &e))?
            > 0;
        if !has_store && initialized {
            return Err(refuse(if size == Some(0) {
                "empty"
            } else {
                "not an iamlet store"
            }));
        }
        let store = Self::init(conn, options.epoch).map_err(|e| match e {
            StoreError::Database(e) => unreadable(&database, &e),
            other => other,
        })?;
        for suffix in ["-wal", "-shm"] {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            restrict(Path::new(&name), 0o600);
        }
        match recorded {
            Some(expected) if expected == store.id => {}
            Some(expected) if !options.new_store => {
                return Err(StoreError::ForeignDatabase {
                    database,
                    marker,
                    expected,
                    found: store.id,
                })
            }
            _ => write_marker(&marker, &store.id).map_err(io(&marker))?,
        }
        Ok(store)
    }

    fn init(conn: Connection, epoch: Option<u64>) -> Result<Self, StoreError> {
        // WAL lets readers proceed during a write; FULL syncs the log at every commit, which is
        // what makes an acknowledged change durable.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        let meta = |key: &str| -> Result<Option<String>, rusqlite::Error> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                r.get::<_, String>(0)
            })
            .optional()
        };
        let stored: Option<u64> = meta("epoch")?.and_then(|v| v.parse().ok());
        let epoch = match (stored, epoch) {
            (Some(s), Some(wanted)) => s.max(wanted),
            (Some(s), None) => s,
            // A new store: the epoch asked for, but never below a fresh one, so a store made
            // again never repeats an epoch its sidecars followed.
            (None, wanted) => wanted.unwrap_or(0).max(new_epoch()),
        };
        // A store made before identities existed gets one now, keeping its epoch.
        let id = match meta("store_id")? {
            Some(id) => id,
            None => new_store_id(),
        };
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('epoch', ?1), ('store_id', ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![epoch.to_string(), id],
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            epoch,
            id,
            sealer: None,
        })
    }

    /// Seals every secret before it is written and opens it when read ([`SecretSealer`]: AES-256-GCM
    /// under the key of `--secrets-key-file`).
    #[must_use]
    pub fn with_sealer(mut self, sealer: SecretSealer) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// The store's identity and epoch, as sidecars receive them.
    pub fn identity(&self) -> StoreRef {
        StoreRef {
            id: self.id.clone(),
            epoch: self.epoch,
        }
    }
}

/// A stored tenant's state, decoded and its secrets opened. A missing state (a NULL column)
/// reads as empty text, which does not parse: reported as corrupt, naming the tenant.
fn decode_tenant(
    account: &str,
    epoch: u64,
    seq: u64,
    state: Option<&str>,
    sealer: Option<&SecretSealer>,
) -> Result<StoredTenant, StoreError> {
    let mut tenant: Tenant =
        serde_json::from_str(state.unwrap_or_default()).map_err(|e| StoreError::Corrupt {
            account: account.to_owned(),
            reason: e.to_string(),
        })?;
    if let Some(sealer) = sealer {
        sealer.open_tenant(&mut tenant)?;
    }
    Ok(StoredTenant {
        tenant,
        version: SnapshotVersion::new(epoch, seq),
    })
}

/// A tenant's state as stored: its secrets sealed, in JSON (`None`: deleted).
fn encode_tenant(
    account: &str,
    after: Option<&Tenant>,
    sealer: Option<&SecretSealer>,
) -> Result<Option<String>, StoreError> {
    let sealed = match (after, sealer) {
        (Some(tenant), Some(sealer)) => Some(sealer.seal_tenant(tenant)?),
        _ => None,
    };
    sealed
        .as_ref()
        .or(after)
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Encode {
            account: account.to_owned(),
            reason: e.to_string(),
        })
}

/// A client error with its causes: the client's own message is only its kind (`db error`,
/// `error performing TLS handshake`); the server's message or the TLS failure is its source.
/// Of a server's error, its severity, code and message only: its detail may quote a row's
/// values, which are never shown.
fn describe(error: &::postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unreadable(path: &Path, error: &rusqlite::Error) -> StoreError {
    StoreError::Unreadable {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// A new store's epoch: the time in milliseconds, times 4096, plus 12 random bits. Random, so
/// two stores never share an epoch by construction (never a reused `1`); rising with time, so
/// a store made later is newer even to a sidecar that knows nothing of identities.
fn new_epoch() -> u64 {
    let mut bytes = [0u8; 2];
    crate::directory::IdGenerator::system().fill(&mut bytes);
    // A clock before 1970 counts as 0: the random low bits still keep epochs apart.
    let millis = u64::try_from(crate::policy::Timestamp::now().epoch_millis()).unwrap_or(0);
    millis
        .saturating_mul(4096)
        .saturating_add(u64::from(u16::from_le_bytes(bytes) & 0x0fff))
}

/// A new store identity: 128 random bits, in hex.
fn new_store_id() -> String {
    let mut bytes = [0u8; 16];
    crate::directory::IdGenerator::system().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Narrows `path`'s mode to `mode` when it is wider. Best effort: a directory the process
/// does not own (a volume's mount point) keeps its mode, with a warning.
fn restrict(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.permissions().mode() & 0o777 & !mode == 0 {
            return;
        }
        if let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(path = %path.display(), %error, "cannot make this owner-only");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Writes the identity marker atomically (a temporary file renamed over it).
fn write_marker(path: &Path, id: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(format!("{id}\n").as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// SQLite integers are signed; the counters stored never come near `i64::MAX`, and saturating
/// keeps an impossible one ordered last rather than wrapping negative.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The number of a tenant's next change, given its row (last number, deleted) as the
/// transaction locked it; a [`StoreError::Conflict`] when it is not what the writer read
/// (`prior`). A tenant's first change is number 1; a tenant made again after its deletion
/// goes on from its last number, so its versions never repeat. Both stores decide here.
pub(super) fn next_seq(
    account: &str,
    previous: Option<(i64, bool)>,
    prior: Prior,
) -> Result<i64, StoreError> {
    let found = match previous {
        Some((seq, false)) => Prior::At(to_u64(seq)),
        _ => Prior::Absent,
    };
    if found != prior {
        return Err(StoreError::Conflict {
            account: account.to_owned(),
            expected: prior,
            found,
        });
    }
    Ok(previous.map_or(0, |(seq, _)| seq) + 1)
}

/// The reverse of [`to_i64`]: only a damaged row holds a negative counter, read as 0 (the
/// lowest version, so it can never win over a real one).
fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A failure count as the database holds it, as a `u32` (saturating; a damaged negative
/// count reads as 0).
fn to_count(v: i64) -> u32 {
    u32::try_from(to_u64(v)).unwrap_or(u32::MAX)
}

// `cutoff` is `now - window`: a window is live while its start is after the cutoff (no
// arithmetic in the database that could overflow). The windows that ended are deleted with
// each failure recorded, in the same transaction.
impl AuthFailureLog for SqliteStore {
    fn record_auth_failure(
        &self,
        source: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<u32, StoreError> {
        let cutoff = now.saturating_sub(window_seconds);
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM auth_failures WHERE window_start <= ?1",
            params![cutoff],
        )?;
        let failures: i64 = tx.query_row(
            "INSERT INTO auth_failures (source, window_start, failures) VALUES (?1, ?2, 1)
             ON CONFLICT (source) DO UPDATE SET
                 failures = CASE WHEN window_start <= ?3 THEN 1 ELSE failures + 1 END,
                 window_start = CASE WHEN window_start <= ?3 THEN ?2 ELSE window_start END
             RETURNING failures",
            params![source, now, cutoff],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(to_count(failures))
    }

    fn auth_failures(
        &self,
        source: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<u32, StoreError> {
        let cutoff = now.saturating_sub(window_seconds);
        let conn = self.conn.lock();
        let failures: Option<i64> = conn
            .query_row(
                "SELECT failures FROM auth_failures WHERE source = ?1 AND window_start > ?2",
                params![source, cutoff],
                |r| r.get(0),
            )
            .optional()?;
        Ok(failures.map_or(0, to_count))
    }
}

// A row changes only when the report's time is later than the stored one: a resend or an
// older report from another sidecar leaves it as it is (with the service and region of the
// latest use).
impl UsageLog for SqliteStore {
    fn record_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        let rows = usage_rows(batch);
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO credential_usage (account_id, kind, subject, item, last_used, service, region)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (account_id, kind, subject, item) DO UPDATE SET
                     last_used = excluded.last_used, service = excluded.service,
                     region = excluded.region
                 WHERE excluded.last_used > credential_usage.last_used",
            )?;
            for (kind, subject, item, last_used, service, region) in &rows {
                stmt.execute(params![
                    batch.account_id,
                    kind,
                    subject,
                    item,
                    last_used,
                    service,
                    region
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn usage(&self, account_id: &str) -> Result<UsageBatch, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT kind, subject, item, last_used, service, region FROM credential_usage
             WHERE account_id = ?1 ORDER BY kind, subject, item",
        )?;
        let rows = stmt
            .query_map(params![account_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(usage_batch(account_id, rows))
    }
}

impl TrailLog for SqliteStore {
    fn record_trail(&self, events: &[TrailRecord]) -> Result<usize, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut new = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO trail_events (account_id, event_id, at_ms, record)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id, event_id) DO NOTHING",
            )?;
            for e in events {
                new += stmt.execute(params![e.account_id, e.event_id, e.at_ms, e.record])?;
            }
        }
        tx.commit()?;
        Ok(new)
    }

    fn trail(
        &self,
        account_id: &str,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT event_id, at_ms, record FROM trail_events
             WHERE account_id = ?1 AND at_ms >= ?2 AND at_ms <= ?3
             ORDER BY at_ms DESC, event_id DESC LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(
                params![
                    account_id,
                    start_ms,
                    end_ms,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(TrailRecord {
                        account_id: account_id.to_owned(),
                        event_id: r.get(0)?,
                        at_ms: r.get(1)?,
                        record: r.get(2)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl TenantStore for SqliteStore {
    fn load_tenants(&self) -> Result<Vec<StoredTenant>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT account_id, seq, state FROM tenants WHERE deleted = 0 ORDER BY account_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (account, seq, state) = row?;
            out.push(decode_tenant(
                &account,
                self.epoch,
                to_u64(seq),
                state.as_deref(),
                self.sealer.as_ref(),
            )?);
        }
        Ok(out)
    }

    fn load_tenant(&self, account_id: &str) -> Result<Option<StoredTenant>, StoreError> {
        let conn = self.conn.lock();
        let row = conn
            .query_row(
                "SELECT seq, state FROM tenants WHERE account_id = ?1 AND deleted = 0",
                params![account_id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()?;
        row.map(|(seq, state)| {
            decode_tenant(
                account_id,
                self.epoch,
                to_u64(seq),
                state.as_deref(),
                self.sealer.as_ref(),
            )
        })
        .transpose()
    }

    fn commit(
        &self,
        change: &ChangeDraft,
        prior: Prior,
        after: Option<&Tenant>,
    ) -> Result<ChangeRecord, StoreError> {
        let state = encode_tenant(&change.account_id, after, self.sealer.as_ref())?;
        let parameters = change.parameters.to_string();
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let previous: Option<(i64, i64)> = tx
            .query_row(
                "SELECT seq, deleted FROM tenants WHERE account_id = ?1",
                params![change.account_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let seq = next_seq(
            &change.account_id,
            previous.map(|(seq, deleted)| (seq, deleted != 0)),
            prior,
        )?;
        tx.execute(
            "INSERT INTO changes (account_id, seq, at, actor, action, parameters)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                change.account_id,
                seq,
                change.at,
                change.actor,
                change.action,
                parameters
            ],
        )?;
        tx.execute(
            "INSERT INTO tenants (account_id, seq, state, deleted) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account_id) DO UPDATE SET seq = excluded.seq, state = excluded.state,
             deleted = excluded.deleted",
            params![change.account_id, seq, state, i64::from(after.is_none())],
        )?;
        if after.is_none() {
            // A tenant made again under the same id starts with no usage.
            tx.execute(
                "DELETE FROM credential_usage WHERE account_id = ?1",
                params![change.account_id],
            )?;
        }
        tx.commit()?;
        Ok(ChangeRecord {
            account_id: change.account_id.clone(),
            seq: to_u64(seq),
            at: change.at,
            actor: change.actor.clone(),
            action: change.action.clone(),
            parameters: change.parameters.clone(),
        })
    }

    fn changes(
        &self,
        account_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, action, parameters FROM changes
             WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![account_id, to_i64(after_seq), to_i64(limit as u64)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, actor, action, parameters) = row?;
            out.push(ChangeRecord {
                account_id: account_id.to_owned(),
                seq: to_u64(seq),
                at,
                actor,
                action,
                // The trail is listed even when one entry's parameters no longer parse: the
                // who, what and when stay readable, the parameters show as null.
                parameters: serde_json::from_str(&parameters).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn store_id(&self) -> &str {
        &self.id
    }

    fn record_event(&self, event: &AuditEvent) -> Result<u64, StoreError> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO events (account_id, at, actor, action, outcome, root, detail, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                event.account_id,
                event.at,
                event.actor,
                event.action,
                event.outcome,
                i64::from(event.root),
                event.detail,
                event.source
            ],
        )?;
        Ok(to_u64(conn.last_insert_rowid()))
    }

    fn events(
        &self,
        account_id: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT id, at, actor, action, outcome, root, detail, source FROM events
             WHERE account_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![account_id, to_i64(after_id), to_i64(limit as u64)],
            |r| {
                Ok(AuditEvent {
                    account_id: account_id.to_owned(),
                    id: to_u64(r.get(0)?),
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    outcome: r.get(4)?,
                    root: r.get::<_, i64>(5)? != 0,
                    detail: r.get(6)?,
                    source: r.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn tenant_seqs(&self) -> Result<Vec<TenantSeq>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare("SELECT account_id, seq, deleted FROM tenants ORDER BY account_id")?;
        let rows = stmt.query_map([], |r| {
            Ok(TenantSeq {
                account_id: r.get(0)?,
                seq: to_u64(r.get(1)?),
                deleted: r.get::<_, i64>(2)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests;
