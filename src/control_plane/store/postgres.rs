//! [`TenantStore`] on PostgreSQL, which several control-plane replicas share (issue #16).
//!
//! The same semantics as the SQLite store: a change is one transaction that appends its
//! numbered entry to `changes` and writes the tenant's new state to `tenants`; secrets are
//! sealed before they are written; audit events go to `events`; failed admin authentications
//! are counted per source in `auth_failures` ([`AuthFailureLog`]), shared by the replicas. The epoch and the store's
//! identity live in the database's `meta` table, so every replica serves the same ones and a
//! sidecar moving between replicas resumes from its versions.
//!
//! Several writers: a commit locks the tenant's row (`SELECT … FOR UPDATE`) and refuses with
//! [`StoreError::Conflict`] when the stored change number is not the one the caller's state was
//! built on; a tenant made by two writers at once meets the `changes` primary key, which is
//! the same conflict. Nothing is half applied: the transaction commits whole or not at all.
//!
//! The schema is versioned ([`MIGRATIONS`], recorded in `schema_migrations`); opening a store
//! applies the steps it lacks, each in one transaction under an advisory lock (so replicas
//! starting together migrate once), and refuses a schema newer than this binary knows.
//!
//! The client is the synchronous `postgres` crate: every call blocks, so the store is called
//! from blocking threads (`spawn_blocking`, or before the async runtime starts), never from
//! an async worker. Connections come from a small bounded pool; TLS is rustls with the *ring*
//! provider. The connection's password never reaches a log or an error: URLs are shown through
//! [`redact_url`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::{Client, NoTls};
use parking_lot::{Condvar, Mutex};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    decode_tenant, describe, encode_tenant, new_epoch, new_store_id, to_count, to_i64, to_u64,
    AuditEvent, AuthFailureLog, ChangeDraft, ChangeFeed, ChangeNotice, ChangeRecord, FeedEvent,
    FeedSender, Prior, StoreError, StoredTenant, TenantSeq, TenantStore, TrailLog, TrailRecord,
    UsageBatch, UsageLog, CHANGES_CHANNEL,
};
use crate::control_plane::seal::SecretSealer;
use crate::directory::Tenant;
use crate::snapshot::StoreRef;

/// The schema's migrations: version, name, SQL. Append only; a step never changes once
/// released, since databases recorded it as applied.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "tenants, change log, audit events, meta",
        "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tenants (
    account_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    state TEXT,
    deleted BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE changes (
    account_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    parameters TEXT NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    root BOOLEAN NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX events_by_tenant ON events (account_id, id);
",
    ),
    (
        2,
        "failed admin authentications per source, shared by the replicas",
        "
CREATE TABLE auth_failures (
    source TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures BIGINT NOT NULL
);
CREATE INDEX auth_failures_by_window ON auth_failures (window_start);
",
    ),
    (
        3,
        "usage reported by the sidecars, apart from the audit trail",
        "
CREATE TABLE credential_usage (
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    item TEXT NOT NULL,
    last_used BIGINT NOT NULL,
    service TEXT NOT NULL,
    region TEXT NOT NULL,
    PRIMARY KEY (account_id, kind, subject, item)
);
",
    ),
    (
        4,
        "STS events shipped by the sidecars, CloudTrail's records",
        "
CREATE TABLE trail_events (
    account_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (account_id, event_id)
);
CREATE INDEX trail_events_by_time ON trail_events (account_id, at_ms);
",
    ),
];

/// The newest schema version this binary knows.
pub const SCHEMA_VERSION: i64 = 4;

/// The advisory lock that serializes migrations and the `meta` set-up across replicas
/// (an arbitrary constant: `iamlet` in ASCII).
const MIGRATION_LOCK: i64 = 0x0000_6961_6d6c_6574;

/// How long a caller waits for a pooled connection when all are busy.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// How a [`PostgresStore`] connects.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=FILE]`.
    pub url: String,
    /// The password, when not in the URL (`--store-password-file`); else `PGPASSWORD`.
    pub password: Option<String>,
    /// Raise the epoch to at least this (after a restore from a backup).
    pub epoch: Option<u64>,
    /// The most connections open at once.
    pub pool_size: usize,
    /// The schema the tables live in (`search_path`); `None`: the database's default.
    pub schema: Option<String>,
    /// How long to wait for a connection to the server.
    pub connect_timeout: Duration,
}

impl PostgresOptions {
    /// Options for `url`, with defaults: 8 connections, a 5-second connect timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            epoch: None,
            pool_size: 8,
            schema: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("epoch", &self.epoch)
            .field("pool_size", &self.pool_size)
            .field("schema", &self.schema)
            .finish()
    }
}

/// What [`PostgresStore::migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema version before.
    pub from: i64,
    /// The schema version after (this binary's [`SCHEMA_VERSION`]).
    pub to: i64,
}

/// `url` with its password (in the user part or a `password=` parameter) replaced by `***`:
/// the only form a store URL is ever shown in.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((user, host)) => match user.split_once(':') {
                    Some((name, _)) => format!("{name}:***@{host}"),
                    None => format!("{user}@{host}"),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// How connections are made: plain, or TLS verified against a CA.
#[derive(Clone)]
enum Connector {
    Plain,
    Tls(MakeRustlsConnect),
}

/// The connection settings, parsed once.
#[derive(Clone)]
struct Settings {
    config: ::postgres::Config,
    connector: Connector,
}

/// Parses the URL. Parameters the client does not know (`sslrootcert`) and libpq's verifying
/// modes are taken out first: `verify-ca` and `verify-full` (and `require`) need TLS verified
/// against `sslrootcert` (or `PGSSLROOTCERT`), always including the host name; `prefer` uses TLS
/// when a CA is given, plain otherwise; `disable` is plain.
fn parse(options: &PostgresOptions) -> Result<Settings, StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: redact_url(&options.url),
        reason,
    };
    if !(options.url.starts_with("postgres://") || options.url.starts_with("postgresql://")) {
        return Err(invalid(
            "expected postgres://user@host[:port]/database".into(),
        ));
    }
    let (base, query) = match options.url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (options.url.as_str(), ""),
    };
    let mut kept = Vec::new();
    let mut mode = "prefer".to_owned();
    let mut root = std::env::var("PGSSLROOTCERT")
        .ok()
        .filter(|r| !r.is_empty());
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("sslmode", value)) => value.clone_into(&mut mode),
            Some(("sslrootcert", value)) => root = Some(value.to_owned()),
            _ => kept.push(param),
        }
    }
    let (wire_mode, tls) = match (mode.as_str(), &root) {
        ("disable", _) => ("disable", false),
        ("prefer" | "allow", None) => ("disable", false),
        ("prefer" | "allow", Some(_)) => ("prefer", true),
        ("require" | "verify-ca" | "verify-full", Some(_)) => ("require", true),
        ("require" | "verify-ca" | "verify-full", None) => {
            return Err(invalid(format!(
                "sslmode={mode} needs sslrootcert=FILE (or PGSSLROOTCERT): the CA that \
                 signed the server's certificate, which is always verified"
            )))
        }
        (other, _) => {
            return Err(invalid(format!(
                "sslmode `{}` is not one of disable, prefer, require, verify-ca, verify-full",
                crate::error::echo(other)
            )))
        }
    };
    kept.push(if wire_mode == "disable" {
        "sslmode=disable"
    } else if wire_mode == "prefer" {
        "sslmode=prefer"
    } else {
        "sslmode=require"
    });
    let url = format!("{base}?{}", kept.join("&"));
    // The client's parse errors name the option, never its value.
    let mut config = ::postgres::Config::from_str(&url).map_err(|e| invalid(e.to_string()))?;
    if let Some(password) = &options.password {
        config.password(password);
    } else if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    config.application_name("iamlet");
    // A server that vanished without closing the connection (a partition, a lost node) is
    // noticed within about half a minute: the call fails as unavailable instead of hanging.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30));
    if let Some(schema) = &options.schema {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(format!(
                "schema `{}` must be letters, digits and underscores",
                crate::error::echo(schema)
            )));
        }
        config.options(&format!("-c search_path={schema}"));
    }
    let connector = match (tls, root) {
        (true, Some(root)) => Connector::Tls(MakeRustlsConnect::new(
            tls_config(&root)
                .map_err(|reason| invalid(format!("cannot use sslrootcert {root}: {reason}")))?,
        )),
        _ => Connector::Plain,
    };
    Ok(Settings { config, connector })
}

/// A rustls client configuration (the *ring* provider) trusting the CAs in the PEM file `root`.
fn tls_config(root: &str) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("it holds no certificate".into());
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Maps a client error: the server unreachable, restarting or out of connections is
/// [`StoreError::Unavailable`] (retryable: nothing was recorded, or the transaction's outcome
/// will show in the tenant's next version); anything else is the database's refusal.
pub(super) fn classify(error: ::postgres::Error) -> StoreError {
    let unavailable = match error.code() {
        Some(code) => {
            let code = code.code();
            // 08: connection exception; 53: insufficient resources; 57P0x: shutting down.
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0")
        }
        None => {
            // The client's own kinds, by their fixed messages: connecting, I/O, a closed
            // connection, a TLS handshake, a timeout. (Not an authentication failure.)
            let text = error.to_string();
            error.is_closed()
                || [
                    "error connecting",
                    "error communicating",
                    "connection closed",
                    "error performing TLS",
                    "timeout",
                ]
                .iter()
                .any(|prefix| text.starts_with(prefix))
        }
    };
    if unavailable {
        StoreError::Unavailable {
            reason: describe(&error),
        }
    } else {
        StoreError::Postgres(error)
    }
}

/// A bounded pool of connections: at most `size` open, idle ones reused, a closed one
/// dropped. Callers wait (at most [`POOL_WAIT`]) when all are busy.
pub(super) struct Pool {
    settings: Settings,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Client>,
    open: usize,
}

impl Pool {
    fn new(settings: Settings, size: usize) -> Self {
        Self {
            settings,
            size: size.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// Runs `work` on a connection, then returns the connection to the pool (unless it
    /// closed: a server restart or a lost network shows there).
    pub(super) fn with<T>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.checkout()?;
        let result = work(&mut client);
        let mut state = self.state.lock();
        if client.is_closed() {
            state.open = state.open.saturating_sub(1);
        } else {
            state.idle.push(client);
        }
        drop(state);
        self.freed.notify_one();
        result
    }

    fn checkout(&self) -> Result<Client, StoreError> {
        let mut state = self.state.lock();
        loop {
            if let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open = state.open.saturating_sub(1);
                    continue;
                }
                return Ok(client);
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                let connected = self.connect();
                if connected.is_err() {
                    let mut state = self.state.lock();
                    state.open = state.open.saturating_sub(1);
                    drop(state);
                    self.freed.notify_one();
                }
                return connected;
            }
            if self.freed.wait_for(&mut state, POOL_WAIT).timed_out() {
                return Err(StoreError::Unavailable {
                    reason: format!(
                        "all {} connections stayed busy for {}s",
                        self.size,
                        POOL_WAIT.as_secs()
                    ),
                });
            }
        }
    }

    fn connect(&self) -> Result<Client, StoreError> {
        self.settings.connect()
    }
}

impl Drop for Pool {
    /// Closes the idle connections on a thread of their own: a client closes by blocking on
    /// a runtime of its own, which panics on a thread that drives async tasks, and the last
    /// reference to a control plane's store may go on any thread.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.state.get_mut().idle);
        if idle.is_empty() {
            return;
        }
        let (send, receive) = std::sync::mpsc::channel::<Vec<Client>>();
        let closing = std::thread::Builder::new()
            .name("iamlet-pg-close".into())
            .spawn(move || receive.into_iter().for_each(drop));
        let unclosed = match closing {
            Ok(_) => send.send(idle).err().map(|e| e.0),
            Err(error) => {
                tracing::warn!(%error, "cannot start a thread to close the store's connections");
                Some(idle)
            }
        };
        // Left open rather than closed here: the server ends them when the process exits.
        if let Some(idle) = unclosed {
            std::mem::forget(idle);
        }
    }
}

impl Settings {
    fn connect(&self) -> Result<Client, StoreError> {
        match &self.connector {
            Connector::Plain => self.config.connect(NoTls),
            Connector::Tls(tls) => self.config.connect(tls.clone()),
        }
        .map_err(classify)
    }
}

/// How long a listening connection waits for a notice before it looks whether its feed was
/// dropped: the most a dropped feed keeps its connection open.
const LISTEN_TICK: Duration = Duration::from_millis(250);
/// The first wait before connecting again after the listening connection failed; it doubles
/// up to [`LISTEN_BACKOFF_MAX`].
const LISTEN_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between attempts to listen again.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Holds one dedicated connection listening on [`CHANGES_CHANNEL`] and forwards its notices,
/// until the feed is dropped. A lost connection is made again with backoff; each time it
/// listens (again) it says so ([`FeedEvent::Listening`]), so that the reader polls for what
/// was committed while nothing listened.
fn listen(settings: &Settings, feed: &FeedSender) {
    let mut backoff = LISTEN_BACKOFF;
    while !feed.is_closed() {
        let listening = settings.connect().and_then(|mut client| {
            client
                .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
                .map_err(classify)?;
            Ok(client)
        });
        let mut client = match listening {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64,
                    "cannot listen for other replicas' changes");
                sleep_unless_closed(feed, backoff);
                backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                continue;
            }
        };
        backoff = LISTEN_BACKOFF;
        if !feed.send(FeedEvent::Listening) {
            return;
        }
        loop {
            let next = client.notifications().timeout_iter(LISTEN_TICK).next();
            match next {
                Ok(Some(notification)) => {
                    let Some(notice) = ChangeNotice::parse(notification.payload()) else {
                        tracing::debug!("ignored a change notice that is not <account>:<seq>");
                        continue;
                    };
                    if !feed.send(FeedEvent::Change(notice)) {
                        return;
                    }
                }
                Ok(None) if feed.is_closed() => return,
                Ok(None) if client.is_closed() => break,
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(error = %describe(&error),
                        "lost the connection listening for other replicas' changes; reconnecting");
                    break;
                }
            }
        }
    }
}

/// Sleeps `wait`, in ticks, returning early once the feed is dropped.
fn sleep_unless_closed(feed: &FeedSender, wait: Duration) {
    let mut left = wait;
    while !left.is_zero() && !feed.is_closed() {
        let tick = left.min(LISTEN_TICK);
        std::thread::sleep(tick);
        left = left.saturating_sub(tick);
    }
}

/// [`TenantStore`] on PostgreSQL.
pub struct PostgresStore {
    pub(super) pool: Pool,
    epoch: u64,
    id: String,
    sealer: Option<SecretSealer>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("epoch", &self.epoch)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

// === impl PostgresStore ===

impl PostgresStore {
    /// Connects, brings the schema up to this binary's version (refusing a newer one), and
    /// reads (or, in a new database, makes) the store's identity and epoch; `options.epoch`
    /// raises the epoch for every replica. A server that cannot be reached is
    /// [`StoreError::Unavailable`]: the caller retries.
    pub fn open(options: &PostgresOptions) -> Result<Self, StoreError> {
        let pool = Pool::new(parse(options)?, options.pool_size);
        let (epoch, id) = pool.with(|client| {
            migrate_client(client)?;
            settle_meta(client, options.epoch)
        })?;
        Ok(Self {
            pool,
            epoch,
            id,
            sealer: None,
        })
    }

    /// Applies the schema's missing migrations and reports the versions before and after
    /// (`iamlet control-plane migrate`); refuses a schema newer than this binary knows.
    pub fn migrate(options: &PostgresOptions) -> Result<MigrationReport, StoreError> {
        Pool::new(parse(options)?, 1).with(migrate_client)
    }

    /// Seals every secret before it is written and opens it when read (see
    /// [`crate::control_plane::SecretSealer`]); every replica needs the same key.
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

/// Applies the missing migration steps, each in its own transaction under the migration
/// lock, re-reading the version each time (another replica may be migrating too).
fn migrate_client(client: &mut Client) -> Result<MigrationReport, StoreError> {
    let mut from = None;
    loop {
        let mut tx = client.transaction().map_err(classify)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(classify)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .map_err(classify)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                &[],
            )
            .map_err(classify)?
            .get(0);
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current,
                known: SCHEMA_VERSION,
            });
        }
        let from = *from.get_or_insert(current);
        let Some((version, name, sql)) = MIGRATIONS.iter().find(|m| m.0 == current + 1) else {
            tx.commit().map_err(classify)?;
            return Ok(MigrationReport { from, to: current });
        };
        tx.batch_execute(sql).map_err(classify)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .map_err(classify)?;
        tx.commit().map_err(classify)?;
        tracing::info!(version, name, "applied a schema migration");
    }
}

/// Reads the store's epoch and identity from `meta`, making them in a new database and
/// raising the epoch to `wanted` (the same rules as SQLite's), under the migration lock.
fn settle_meta(client: &mut Client, wanted: Option<u64>) -> Result<(u64, String), StoreError> {
    let mut tx = client.transaction().map_err(classify)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(classify)?;
    let mut meta = |key: &str| -> Result<Option<String>, StoreError> {
        Ok(tx
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .map_err(classify)?
            .map(|row| row.get(0)))
    };
    let stored: Option<u64> = meta("epoch")?.and_then(|v| v.parse().ok());
    let id = meta("store_id")?.unwrap_or_else(new_store_id);
    let epoch = match (stored, wanted) {
        (Some(s), Some(wanted)) => s.max(wanted),
        (Some(s), None) => s,
        (None, wanted) => wanted.unwrap_or(0).max(new_epoch()),
    };
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('epoch', $1), ('store_id', $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&epoch.to_string(), &id],
    )
    .map_err(classify)?;
    tx.commit().map_err(classify)?;
    Ok((epoch, id))
}

/// A failed statement of a commit: a unique violation (two writers made the tenant's next
/// change at once), a serialization failure or a deadlock is a conflict; the rest as
/// [`classify`].
fn commit_error(
    error: ::postgres::Error,
    change: &ChangeDraft,
    prior: Prior,
    seq: i64,
) -> StoreError {
    let conflict = [
        SqlState::UNIQUE_VIOLATION,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ];
    if error.code().is_some_and(|code| conflict.contains(code)) {
        StoreError::Conflict {
            account: change.account_id.clone(),
            expected: prior,
            found: Prior::At(to_u64(seq)),
        }
    } else {
        classify(error)
    }
}

/// One commit's transaction: checks `prior` under the tenant's row lock, appends the change
/// and writes the state; returns the change's number.
fn commit_in(
    client: &mut Client,
    change: &ChangeDraft,
    prior: Prior,
    state: &Option<String>,
    parameters: &str,
) -> Result<i64, StoreError> {
    let mut tx = client.transaction().map_err(classify)?;
    let previous = tx
        .query_opt(
            "SELECT seq, deleted FROM tenants WHERE account_id = $1 FOR UPDATE",
            &[&change.account_id],
        )
        .map_err(classify)?
        .map(|row| (row.get::<_, i64>(0), row.get::<_, bool>(1)));
    // On a conflict, dropping the transaction rolls it back and releases the row lock.
    let seq = super::next_seq(&change.account_id, previous, prior)?;
    // The other replicas hear of the change when, and only when, the transaction commits
    // (PostgreSQL delivers a transaction's notices at its commit and drops them on rollback).
    let notice = ChangeNotice {
        account_id: change.account_id.clone(),
        seq: to_u64(seq),
    };
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANGES_CHANNEL, &notice.payload()],
    )
    .map_err(classify)?;
    tx.execute(
        "INSERT INTO changes (account_id, seq, at, actor, action, parameters)
             VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &change.account_id,
            &seq,
            &change.at,
            &change.actor,
            &change.action,
            &parameters,
        ],
    )
    .map_err(|e| commit_error(e, change, prior, seq))?;
    tx.execute(
        "INSERT INTO tenants (account_id, seq, state, deleted) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state,
             deleted = EXCLUDED.deleted",
        &[&change.account_id, &seq, state, &state.is_none()],
    )
    .map_err(|e| commit_error(e, change, prior, seq))?;
    if state.is_none() {
        // A tenant made again under the same id starts with no usage.
        tx.execute(
            "DELETE FROM credential_usage WHERE account_id = $1",
            &[&change.account_id],
        )
        .map_err(classify)?;
    }
    tx.commit()
        .map_err(|e| commit_error(e, change, prior, seq))?;
    Ok(seq)
}

// As SQLite's: `cutoff` is `now - window`, a window is live while its start is after it, and
// the windows that ended are deleted with each failure recorded. The upsert is atomic on the
// source's row, so replicas counting one source at once each add their failure.
impl AuthFailureLog for PostgresStore {
    fn record_auth_failure(
        &self,
        source: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<u32, StoreError> {
        let cutoff = now.saturating_sub(window_seconds);
        let failures: i64 = self.pool.with(|client| {
            let mut tx = client.transaction().map_err(classify)?;
            tx.execute(
                "DELETE FROM auth_failures WHERE window_start <= $1",
                &[&cutoff],
            )
            .map_err(classify)?;
            let row = tx
                .query_one(
                    "INSERT INTO auth_failures (source, window_start, failures) VALUES ($1, $2, 1)
                     ON CONFLICT (source) DO UPDATE SET
                         failures = CASE WHEN auth_failures.window_start <= $3 THEN 1
                                         ELSE auth_failures.failures + 1 END,
                         window_start = CASE WHEN auth_failures.window_start <= $3 THEN $2
                                             ELSE auth_failures.window_start END
                     RETURNING failures",
                    &[&source, &now, &cutoff],
                )
                .map_err(classify)?;
            tx.commit().map_err(classify)?;
            Ok(row.get(0))
        })?;
        Ok(to_count(failures))
    }

    fn auth_failures(
        &self,
        source: &str,
        now: i64,
        window_seconds: i64,
    ) -> Result<u32, StoreError> {
        let cutoff = now.saturating_sub(window_seconds);
        let row = self.pool.with(|client| {
            client
                .query_opt(
                    "SELECT failures FROM auth_failures WHERE source = $1 AND window_start > $2",
                    &[&source, &cutoff],
                )
                .map_err(classify)
        })?;
        Ok(row.map_or(0, |row| to_count(row.get(0))))
    }
}

// As SQLite's: a row changes only for a later time. The rows are written in key order, so
// two replicas merging overlapping reports at once lock them in one order (no deadlock).
impl UsageLog for PostgresStore {
    fn record_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        let rows = super::usage_rows(batch);
        if rows.is_empty() {
            return Ok(());
        }
        self.pool.with(|client| {
            let mut tx = client.transaction().map_err(classify)?;
            let stmt = tx
                .prepare(
                    "INSERT INTO credential_usage (account_id, kind, subject, item, last_used, service, region)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (account_id, kind, subject, item) DO UPDATE SET
                         last_used = EXCLUDED.last_used, service = EXCLUDED.service,
                         region = EXCLUDED.region
                     WHERE EXCLUDED.last_used > credential_usage.last_used",
                )
                .map_err(classify)?;
            for (kind, subject, item, last_used, service, region) in &rows {
                tx.execute(
                    &stmt,
                    &[
                        &batch.account_id,
                        kind,
                        subject,
                        item,
                        last_used,
                        service,
                        region,
                    ],
                )
                .map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })
    }

    fn usage(&self, account_id: &str) -> Result<UsageBatch, StoreError> {
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT kind, subject, item, last_used, service, region FROM credential_usage
                     WHERE account_id = $1 ORDER BY kind, subject, item",
                    &[&account_id],
                )
                .map_err(classify)
        })?;
        Ok(super::usage_batch(
            account_id,
            rows.iter().map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, i64>(3),
                    r.get::<_, String>(4),
                    r.get::<_, String>(5),
                )
            }),
        ))
    }
}

// As SQLite's: an id already stored is ignored.
impl TrailLog for PostgresStore {
    fn record_trail(&self, events: &[TrailRecord]) -> Result<usize, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        self.pool.with(|client| {
            let mut tx = client.transaction().map_err(classify)?;
            let stmt = tx
                .prepare(
                    "INSERT INTO trail_events (account_id, event_id, at_ms, record)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, event_id) DO NOTHING",
                )
                .map_err(classify)?;
            let mut new = 0;
            for e in events {
                let n = tx
                    .execute(&stmt, &[&e.account_id, &e.event_id, &e.at_ms, &e.record])
                    .map_err(classify)?;
                new += usize::try_from(n).unwrap_or(usize::MAX);
            }
            tx.commit().map_err(classify)?;
            Ok(new)
        })
    }

    fn trail(
        &self,
        account_id: &str,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<TrailRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT event_id, at_ms, record FROM trail_events
                     WHERE account_id = $1 AND at_ms >= $2 AND at_ms <= $3
                     ORDER BY at_ms DESC, event_id DESC LIMIT $4",
                    &[&account_id, &start_ms, &end_ms, &limit],
                )
                .map_err(classify)
        })?;
        Ok(rows
            .iter()
            .map(|r| TrailRecord {
                account_id: account_id.to_owned(),
                event_id: r.get(0),
                at_ms: r.get(1),
                record: r.get(2),
            })
            .collect())
    }
}

impl TenantStore for PostgresStore {
    fn load_tenants(&self) -> Result<Vec<StoredTenant>, StoreError> {
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT account_id, seq, state FROM tenants WHERE NOT deleted \
                     ORDER BY account_id",
                    &[],
                )
                .map_err(classify)
        })?;
        rows.iter()
            .map(|row| {
                let account: String = row.get(0);
                let seq: i64 = row.get(1);
                let state: Option<String> = row.get(2);
                decode_tenant(
                    &account,
                    self.epoch,
                    to_u64(seq),
                    state.as_deref(),
                    self.sealer.as_ref(),
                )
            })
            .collect()
    }

    fn load_tenant(&self, account_id: &str) -> Result<Option<StoredTenant>, StoreError> {
        let row = self.pool.with(|client| {
            client
                .query_opt(
                    "SELECT seq, state FROM tenants WHERE account_id = $1 AND NOT deleted",
                    &[&account_id],
                )
                .map_err(classify)
        })?;
        row.map(|row| {
            let seq: i64 = row.get(0);
            let state: Option<String> = row.get(1);
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
        self.pool
            .with(|client| commit_in(client, change, prior, &state, &parameters))
            .map(|seq| ChangeRecord {
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
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT seq, at, actor, action, parameters FROM changes
                     WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    &[&account_id, &to_i64(after_seq), &to_i64(limit as u64)],
                )
                .map_err(classify)
        })?;
        Ok(rows
            .iter()
            .map(|row| ChangeRecord {
                account_id: account_id.to_owned(),
                seq: to_u64(row.get(0)),
                at: row.get(1),
                actor: row.get(2),
                action: row.get(3),
                // As in SQLite: an entry whose parameters no longer parse lists them as null.
                parameters: serde_json::from_str(row.get::<_, &str>(4))
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn store_id(&self) -> &str {
        &self.id
    }

    fn record_event(&self, event: &AuditEvent) -> Result<u64, StoreError> {
        let row = self.pool.with(|client| {
            client.query_one(
                "INSERT INTO events (account_id, at, actor, action, outcome, root, detail, source)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &event.account_id,
                    &event.at,
                    &event.actor,
                    &event.action,
                    &event.outcome,
                    &event.root,
                    &event.detail,
                    &event.source,
                ],
            )
            .map_err(classify)
        })?;
        Ok(to_u64(row.get(0)))
    }

    fn events(
        &self,
        account_id: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT id, at, actor, action, outcome, root, detail, source FROM events
                     WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                    &[&account_id, &to_i64(after_id), &to_i64(limit as u64)],
                )
                .map_err(classify)
        })?;
        Ok(rows
            .iter()
            .map(|row| AuditEvent {
                account_id: account_id.to_owned(),
                id: to_u64(row.get(0)),
                at: row.get(1),
                actor: row.get(2),
                action: row.get(3),
                outcome: row.get(4),
                root: row.get(5),
                detail: row.get(6),
                source: row.get(7),
            })
            .collect())
    }

    fn tenant_seqs(&self) -> Result<Vec<TenantSeq>, StoreError> {
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT account_id, seq, deleted FROM tenants ORDER BY account_id",
                    &[],
                )
                .map_err(classify)
        })?;
        Ok(rows
            .iter()
            .map(|row| TenantSeq {
                account_id: row.get(0),
                seq: to_u64(row.get(1)),
                deleted: row.get(2),
            })
            .collect())
    }

    /// A feed from a connection of its own (outside the pool), listening on a thread until
    /// the feed is dropped. `None` only when the thread cannot be started.
    fn watch_changes(&self) -> Option<ChangeFeed> {
        let (sender, feed) = ChangeFeed::channel();
        let settings = self.pool.settings.clone();
        std::thread::Builder::new()
            .name("iamlet-pg-listen".into())
            .spawn(move || listen(&settings, &sender))
            .map_err(|error| {
                tracing::error!(%error, "cannot start listening for other replicas' changes");
            })
            .ok()?;
        Some(feed)
    }
}
