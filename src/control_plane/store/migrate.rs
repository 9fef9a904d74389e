//! Copying a whole store into an empty one: `iamlet control-plane migrate-store` (issue #16,
//! item 5), from SQLite to PostgreSQL, back, or between two stores of one kind.
//!
//! What is copied is what the store holds, as it holds it: every tenant's row (deleted ones
//! too, so that numbering goes on), its whole change log, every audit event with its number,
//! and the store's identity and epoch. Secrets stay sealed: states are copied as stored, never
//! opened and sealed again, so the destination's control planes need the source's secrets key.
//! Keeping the identity and the epoch keeps every tenant's version: a sidecar that followed
//! the source resumes from its versions on the destination, without a full resend, and never
//! takes the destination for another store (which it would not let remove a tenant).
//!
//! The copy is one transaction on the destination, which must hold no tenant, change or audit
//! event: it lands whole or not at all, and never mixes two stores' histories. The source is
//! read in pages against a first listing of its tenants; a change committed after that listing
//! is left out, so the copy is consistent, and reported as the source having changed: two
//! stores written apart under one identity would give sidecars two different histories under
//! the same versions. Before anything is written, every live tenant of the source is decoded
//! with its secrets opened by the key, so that a wrong key is refused, not copied; after the
//! commit the destination is read back through a new handle and compared with what was copied:
//! the identity, every tenant's version, its change count and last change number, the audit
//! events, and every live tenant decoded with its secrets opened.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ::postgres::Client;
use rusqlite::{params, Connection, TransactionBehavior};

use super::postgres::classify;
use super::{
    decode_tenant, to_i64, to_u64, write_marker, AuditEvent, DataDirOptions, PostgresOptions,
    PostgresStore, SqliteStore, StoreError, TenantStore, DATABASE_FILE, IDENTITY_FILE,
};
use crate::control_plane::seal::{SealError, SecretSealer};
use crate::snapshot::StoreRef;

/// The rows read or written at once.
const PAGE: usize = 1000;

/// STS events copied a page at a time.
const TRAIL_PAGE: usize = 1000;
/// The key file a control plane uses when `--secrets-key-file` is not given.
const DEFAULT_KEY_FILE: &str = "secrets.key";

/// Where a store lives.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// A control plane's data directory, holding the SQLite database [`DATABASE_FILE`].
    DataDir(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresOptions),
}

/// What [`migrate_store`] copies where.
#[derive(Debug, Clone)]
pub struct MigrateStoreOptions {
    /// The store copied from; it is only read (a PostgreSQL schema is brought up to date).
    pub from: StoreLocation,
    /// The store copied into: new, or holding no tenant, change or audit event.
    pub to: StoreLocation,
    /// The key the source's secrets are sealed with; `None`: `secrets.key` in the source's
    /// data directory. Never created: a missing file is refused.
    pub secrets_key_file: Option<PathBuf>,
}

/// What [`migrate_store`] copied, all of it verified in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateStoreSummary {
    /// The source, as shown (a URL without its password).
    pub from: String,
    /// The destination, as shown.
    pub to: String,
    /// Live tenants copied.
    pub tenants: usize,
    /// Deleted tenants copied (their numbering goes on in the destination).
    pub deleted_tenants: usize,
    /// Change-log entries copied.
    pub changes: u64,
    /// Audit events copied.
    pub events: u64,
    /// The store's identity, the source's and now the destination's.
    pub store_id: String,
    /// The store's epoch, the source's and now the destination's.
    pub epoch: u64,
    /// The key that opens the copied secrets: the destination's control planes need it.
    pub secrets_key_file: PathBuf,
}

impl std::fmt::Display for MigrateStoreSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "copied {} tenant(s) ({} of them deleted), {} change(s) and {} audit event(s) from \
             {} to {}",
            self.tenants + self.deleted_tenants,
            self.deleted_tenants,
            self.changes,
            self.events,
            self.from,
            self.to
        )?;
        writeln!(
            f,
            "verified: every tenant's version, change count and last change, and the audit \
             events are the source's; every live tenant opens with {}",
            self.secrets_key_file.display()
        )?;
        write!(
            f,
            "the destination is store {} at epoch {}, as the source was: sidecars resume from \
             their versions. Start its control planes with that secrets key, and never start \
             the source again",
            self.store_id, self.epoch
        )
    }
}

/// Why a store was not copied, or not verified.
#[derive(Debug, thiserror::Error)]
pub enum MigrateStoreError {
    /// The source failed or refused.
    #[error("the source {location}: {source}")]
    Source {
        /// The source, as shown.
        location: String,
        /// What failed.
        source: StoreError,
    },
    /// The destination failed or refused; nothing was copied.
    #[error("the destination {location}: {source}; nothing was copied")]
    Destination {
        /// The destination, as shown.
        location: String,
        /// What failed.
        source: StoreError,
    },
    /// The source data directory holds no database.
    #[error("the source {0} holds no store: it has no {DATABASE_FILE}")]
    NoSourceDatabase(PathBuf),
    /// The source holds nothing, which is rather a mistyped source than a store to copy.
    #[error(
        "the source {0} holds no tenant and no audit event: nothing to copy (is it the right \
         store?)"
    )]
    EmptySource(String),
    /// The destination holds a store's data already.
    #[error(
        "the destination {location} is not empty: it holds {tenants} tenant(s), {changes} \
         change(s) and {events} audit event(s). migrate-store copies only into an empty store, \
         so that no two stores' histories are mixed: point --to at a new database or data \
         directory"
    )]
    NotEmpty {
        /// The destination, as shown.
        location: String,
        /// Tenants it holds, live or deleted.
        tenants: u64,
        /// Change-log entries it holds.
        changes: u64,
        /// Audit events it holds.
        events: u64,
    },
    /// No key was given and the source's data directory has none.
    #[error(
        "no secrets key: pass --secrets-key-file, the key the source's control planes seal \
         secrets with (the copy keeps them sealed and checks that they open with it)"
    )]
    NoSecretsKey,
    /// The key file given does not exist (it is never created here).
    #[error(
        "the secrets key file {0} does not exist: pass the key the source's control planes use"
    )]
    MissingSecretsKey(PathBuf),
    /// The key file does not hold a key, or the source's secrets do not open with it.
    #[error("{0}: pass the key the source's control planes use; nothing was copied")]
    SecretsKey(SealError),
    /// The destination data directory has a key of its own, which its control plane would
    /// use by default, and which does not open the copied secrets.
    #[error(
        "the destination's secrets key {found} is not {key}: a control plane on the destination \
         would not open the copied secrets. Remove it, or put the same key there; nothing was \
         copied"
    )]
    KeyMismatch {
        /// The destination's key file.
        found: PathBuf,
        /// The key of the source.
        key: PathBuf,
    },
    /// A file of the destination data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The destination does not hold what was copied.
    #[error(
        "the copy does not verify: {0}. The destination holds the copy as it was written: empty \
         it before copying again"
    )]
    Verify(String),
    /// The source was written while it was copied.
    #[error(
        "the source changed during the copy ({0}): the destination holds the source as it was \
         before, under the source's identity. Stop every control plane on the source, empty the \
         destination and copy again"
    )]
    SourceChanged(String),
}

impl MigrateStoreError {
    /// True when the copy was refused for what it was given (the command line's fault, exit
    /// status 64), as opposed to a failure while copying.
    pub fn is_refusal(&self) -> bool {
        let refused = |e: &StoreError| {
            matches!(
                e,
                StoreError::InvalidUrl { .. }
                    | StoreError::SchemaTooNew { .. }
                    | StoreError::MissingDatabase { .. }
                    | StoreError::ForeignDatabase { .. }
            )
        };
        match self {
            Self::Source { source, .. } | Self::Destination { source, .. } => refused(source),
            Self::NoSourceDatabase(_)
            | Self::EmptySource(_)
            | Self::NotEmpty { .. }
            | Self::NoSecretsKey
            | Self::MissingSecretsKey(_)
            | Self::SecretsKey(_)
            | Self::KeyMismatch { .. } => true,
            Self::Io { .. } | Self::Verify(_) | Self::SourceChanged(_) => false,
        }
    }
}

// === impl StoreLocation ===

impl StoreLocation {
    /// `postgres://…` or `postgresql://…` names a database (`password`: its password, when
    /// not in the URL); anything else is a data directory.
    pub fn parse(text: &str, password: Option<String>) -> Self {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let mut options = PostgresOptions::new(text);
            options.password = password;
            Self::Postgres(options)
        } else {
            Self::DataDir(PathBuf::from(text))
        }
    }

    /// The location as shown: a path, or a URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Self::DataDir(dir) => dir.display().to_string(),
            Self::Postgres(options) => super::redact_url(&options.url),
        }
    }

    /// Opens the store copied from: a data directory must hold a database (it is opened as a
    /// control plane opens it, its identity marker checked).
    fn open_source(&self) -> Result<Box<dyn StoreCopy>, MigrateStoreError> {
        let failed = |source| MigrateStoreError::Source {
            location: self.describe(),
            source,
        };
        match self {
            Self::DataDir(dir) => {
                if !dir.join(DATABASE_FILE).is_file() {
                    return Err(MigrateStoreError::NoSourceDatabase(dir.clone()));
                }
                Ok(Box::new(
                    SqliteStore::open_data_dir(dir, &DataDirOptions::default()).map_err(failed)?,
                ))
            }
            Self::Postgres(options) => Ok(Box::new(PostgresStore::open(options).map_err(failed)?)),
        }
    }

    /// Opens (or makes) the store copied into.
    fn open_destination(&self) -> Result<Box<dyn StoreCopy>, StoreError> {
        match self {
            Self::DataDir(dir) => Ok(Box::new(SqliteStore::open_data_dir(
                dir,
                &DataDirOptions::default(),
            )?)),
            Self::Postgres(options) => Ok(Box::new(PostgresStore::open(options)?)),
        }
    }

    /// Opens the store here, sealing with `sealer`.
    fn open_sealed(&self, sealer: SecretSealer) -> Result<Box<dyn StoreCopy>, StoreError> {
        match self {
            Self::DataDir(dir) => Ok(Box::new(
                SqliteStore::open_data_dir(dir, &DataDirOptions::default())?.with_sealer(sealer),
            )),
            Self::Postgres(options) => {
                Ok(Box::new(PostgresStore::open(options)?.with_sealer(sealer)))
            }
        }
    }
}

/// Copies the store at `options.from` whole into the empty store at `options.to`, keeping its
/// identity and epoch, then verifies the destination (see the module's documentation).
pub fn migrate_store(
    options: &MigrateStoreOptions,
) -> Result<MigrateStoreSummary, MigrateStoreError> {
    let from = options.from.describe();
    let to = options.to.describe();
    let source_error = |source| MigrateStoreError::Source {
        location: from.clone(),
        source,
    };
    let destination_error = |source| MigrateStoreError::Destination {
        location: to.clone(),
        source,
    };
    let key_file = secrets_key_file(options)?;
    let sealer = SecretSealer::load_or_create(&key_file).map_err(MigrateStoreError::SecretsKey)?;
    if let StoreLocation::DataDir(dir) = &options.to {
        check_destination_key(&dir.join(DEFAULT_KEY_FILE), &key_file)?;
    }

    let source = options.from.open_source()?;
    let identity = StoreRef {
        id: source.store_id().to_owned(),
        epoch: source.epoch(),
    };
    let tenants = source.tenant_rows().map_err(source_error)?;
    let no_events = source.event_rows(0, 1).map_err(source_error)?.is_empty();
    if tenants.is_empty() && no_events {
        return Err(MigrateStoreError::EmptySource(from));
    }
    // A wrong key is refused before anything is written, rather than found out by the
    // destination's control planes.
    for row in tenants.iter().filter(|t| !t.deleted) {
        decode_tenant(
            &row.account_id,
            identity.epoch,
            row.seq,
            row.state.as_deref(),
            Some(&sealer),
        )
        .map_err(|e| match e {
            StoreError::Seal(e) => MigrateStoreError::SecretsKey(e),
            other => source_error(other),
        })?;
    }

    // Made when new; a data directory whose identity marker names another store than its
    // database, or that lost its database, is refused as a control plane would refuse it.
    let destination = options.to.open_destination().map_err(destination_error)?;
    let held = destination.contents().map_err(destination_error)?;
    if !held.is_empty() {
        return Err(held.refusal(&to));
    }
    let mut pages = SourcePages::new(&*source, &tenants);
    let imported = destination.import(&identity, &tenants, &mut || pages.next());
    match imported {
        Ok(()) => {}
        Err(CopyFailure::Destination(e)) => return Err(destination_error(e)),
        Err(CopyFailure::NotEmpty(held)) => return Err(held.refusal(&to)),
        Err(CopyFailure::Source(e)) => return Err(source_error(e)),
    }
    // The sidecars' usage is no part of the verified inventory (it is not history, and the
    // sidecars' reports keep moving it): copied as it is, each live tenant's in one write.
    for row in tenants.iter().filter(|t| !t.deleted) {
        let usage = source.usage(&row.account_id).map_err(source_error)?;
        destination
            .record_usage(&usage)
            .map_err(destination_error)?;
    }
    // The sidecars' STS events go along as they are, every tenant's (deleted ones' too: the
    // trail outlives a tenant, as its changes do), a page at a time, kept once per id.
    for row in &tenants {
        let mut end = i64::MAX;
        loop {
            let page = source
                .trail(&row.account_id, i64::MIN, end, TRAIL_PAGE)
                .map_err(source_error)?;
            destination.record_trail(&page).map_err(destination_error)?;
            let (Some(newest), Some(oldest)) = (page.first(), page.last()) else {
                break;
            };
            if page.len() < TRAIL_PAGE {
                break;
            }
            if newest.at_ms == oldest.at_ms {
                // One millisecond fills the page: read that millisecond whole.
                let whole = source
                    .trail(&row.account_id, oldest.at_ms, oldest.at_ms, usize::MAX)
                    .map_err(source_error)?;
                destination
                    .record_trail(&whole)
                    .map_err(destination_error)?;
                if oldest.at_ms == i64::MIN {
                    break;
                }
                end = oldest.at_ms - 1;
            } else {
                // The next page starts at the oldest millisecond again (what it repeats is
                // ignored), so events of one millisecond never fall between two pages.
                end = oldest.at_ms;
            }
        }
    }
    let copied = pages.into_inventory(identity.clone(), &tenants);
    drop(destination);
    if let StoreLocation::DataDir(dir) = &options.to {
        // The marker names the store the directory holds: now the source's.
        let marker = dir.join(IDENTITY_FILE);
        write_marker(&marker, &identity.id).map_err(|source| MigrateStoreError::Io {
            path: marker,
            source,
        })?;
    }

    // Read back through a new handle, as a control plane starting on it would.
    let reopened = options
        .to
        .open_sealed(sealer)
        .map_err(|e| MigrateStoreError::Verify(format!("the destination does not open: {e}")))?;
    let found = inventory(&*reopened)
        .map_err(|e| MigrateStoreError::Verify(format!("the destination does not read: {e}")))?;
    compare(&copied, &found).map_err(MigrateStoreError::Verify)?;
    let live = reopened
        .load_tenants()
        .map_err(|e| MigrateStoreError::Verify(format!("a tenant does not load: {e}")))?;
    let expected_live = tenants.iter().filter(|t| !t.deleted).count();
    if live.len() != expected_live {
        return Err(MigrateStoreError::Verify(format!(
            "{} live tenant(s) load, {expected_live} were copied",
            live.len()
        )));
    }

    let now = inventory(&*source).map_err(source_error)?;
    compare(&copied, &now).map_err(MigrateStoreError::SourceChanged)?;
    Ok(MigrateStoreSummary {
        from,
        to,
        tenants: expected_live,
        deleted_tenants: tenants.len() - expected_live,
        changes: copied.changes.values().map(|t| t.count).sum(),
        events: copied.events.count,
        store_id: identity.id,
        epoch: identity.epoch,
        secrets_key_file: key_file,
    })
}

/// The key file to use: the one given, else the source data directory's; it must exist.
fn secrets_key_file(options: &MigrateStoreOptions) -> Result<PathBuf, MigrateStoreError> {
    let path = match (&options.secrets_key_file, &options.from) {
        (Some(path), _) => path.clone(),
        (None, StoreLocation::DataDir(dir)) if dir.join(DEFAULT_KEY_FILE).is_file() => {
            dir.join(DEFAULT_KEY_FILE)
        }
        (None, _) => return Err(MigrateStoreError::NoSecretsKey),
    };
    if !path.is_file() {
        return Err(MigrateStoreError::MissingSecretsKey(path));
    }
    Ok(path)
}

/// Refuses a destination data directory whose own key (which its control plane would use by
/// default) is not `key`.
fn check_destination_key(theirs: &Path, key: &Path) -> Result<(), MigrateStoreError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| MigrateStoreError::Io {
            path: path.to_owned(),
            source,
        })
    };
    if !theirs.exists() {
        return Ok(());
    }
    if read(theirs)?.trim() != read(key)?.trim() {
        return Err(MigrateStoreError::KeyMismatch {
            found: theirs.to_owned(),
            key: key.to_owned(),
        });
    }
    Ok(())
}

// === the stores, raw ===

/// A tenant's row as stored: its state still sealed, in JSON (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantRow {
    pub(crate) account_id: String,
    pub(crate) seq: u64,
    pub(crate) state: Option<String>,
    pub(crate) deleted: bool,
}

/// A change-log entry as stored (its parameters as the text stored, parsed or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangeRow {
    pub(crate) account_id: String,
    pub(crate) seq: u64,
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) parameters: String,
}

/// What a store holds, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Contents {
    tenants: u64,
    changes: u64,
    events: u64,
}

impl Contents {
    fn is_empty(&self) -> bool {
        self.tenants == 0 && self.changes == 0 && self.events == 0
    }

    fn refusal(&self, location: &str) -> MigrateStoreError {
        MigrateStoreError::NotEmpty {
            location: location.to_owned(),
            tenants: self.tenants,
            changes: self.changes,
            events: self.events,
        }
    }
}

/// One page of what is copied after the tenants.
#[derive(Debug)]
pub(crate) enum Page {
    Changes(Vec<ChangeRow>),
    Events(Vec<AuditEvent>),
}

/// Why an import did not happen; nothing was written.
#[derive(Debug)]
pub(crate) enum CopyFailure {
    /// The destination failed.
    Destination(StoreError),
    /// The destination is not empty.
    NotEmpty(Contents),
    /// Reading the next page from the source failed.
    Source(StoreError),
}

impl From<StoreError> for CopyFailure {
    fn from(error: StoreError) -> Self {
        Self::Destination(error)
    }
}

impl From<rusqlite::Error> for CopyFailure {
    fn from(error: rusqlite::Error) -> Self {
        Self::Destination(error.into())
    }
}

impl From<::postgres::Error> for CopyFailure {
    fn from(error: ::postgres::Error) -> Self {
        Self::Destination(classify(error))
    }
}

/// The source of the pages an import writes: the next page, `None` at the end.
pub(crate) type Pages<'a> = dyn FnMut() -> Result<Option<Page>, StoreError> + 'a;

/// A store read and written whole, raw: secrets stay sealed, numbers stay as they are.
pub(crate) trait StoreCopy: TenantStore {
    /// How many tenants (live or deleted), changes and audit events the store holds.
    fn contents(&self) -> Result<Contents, StoreError>;

    /// Every tenant's row, deleted ones included, by account id.
    fn tenant_rows(&self) -> Result<Vec<TenantRow>, StoreError>;

    /// Change-log entries after `(account, seq)`, in that order, at most `limit`.
    fn change_rows(&self, after: (&str, u64), limit: usize) -> Result<Vec<ChangeRow>, StoreError>;

    /// Audit events of every tenant after `after_id`, in order, at most `limit`.
    fn event_rows(&self, after_id: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;

    /// In one transaction, provided the store is empty: takes `identity` as its own, writes
    /// `tenants`, then every page `pages` yields. On error nothing is written.
    fn import(
        &self,
        identity: &StoreRef,
        tenants: &[TenantRow],
        pages: &mut Pages<'_>,
    ) -> Result<(), CopyFailure>;
}

/// Reads the source's change log then its audit events, page by page, keeping to the tenants
/// listed first: an entry past a tenant's listed change (committed since) is left out. Tallies
/// what it hands over.
struct SourcePages<'a> {
    source: &'a dyn StoreCopy,
    listed: HashMap<&'a str, u64>,
    cursor: Cursor,
    changes: BTreeMap<String, Tally>,
    events: Tally,
}

enum Cursor {
    Changes(String, u64),
    Events(u64),
    Done,
}

/// A count, and the number of the last one counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    count: u64,
    last: u64,
}

impl Tally {
    fn add(&mut self, number: u64) {
        self.count += 1;
        self.last = self.last.max(number);
    }
}

impl<'a> SourcePages<'a> {
    fn new(source: &'a dyn StoreCopy, tenants: &'a [TenantRow]) -> Self {
        Self {
            source,
            listed: tenants
                .iter()
                .map(|t| (t.account_id.as_str(), t.seq))
                .collect(),
            cursor: Cursor::Changes(String::new(), 0),
            changes: BTreeMap::new(),
            events: Tally::default(),
        }
    }

    fn next(&mut self) -> Result<Option<Page>, StoreError> {
        loop {
            match &self.cursor {
                Cursor::Changes(account, seq) => {
                    let rows = self.source.change_rows((account, *seq), PAGE)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Events(0);
                        continue;
                    };
                    self.cursor = Cursor::Changes(last.account_id.clone(), last.seq);
                    let kept: Vec<ChangeRow> = rows
                        .into_iter()
                        .filter(|c| {
                            self.listed
                                .get(c.account_id.as_str())
                                .is_some_and(|&listed| c.seq <= listed)
                        })
                        .collect();
                    for c in &kept {
                        self.changes
                            .entry(c.account_id.clone())
                            .or_default()
                            .add(c.seq);
                    }
                    return Ok(Some(Page::Changes(kept)));
                }
                Cursor::Events(after) => {
                    let rows = self.source.event_rows(*after, PAGE)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Done;
                        continue;
                    };
                    self.cursor = Cursor::Events(last.id);
                    for e in &rows {
                        self.events.add(e.id);
                    }
                    return Ok(Some(Page::Events(rows)));
                }
                Cursor::Done => return Ok(None),
            }
        }
    }

    fn into_inventory(self, identity: StoreRef, tenants: &[TenantRow]) -> Inventory {
        Inventory {
            identity,
            tenants: tenants
                .iter()
                .map(|t| (t.account_id.clone(), (t.seq, t.deleted)))
                .collect(),
            changes: self.changes,
            events: self.events,
        }
    }
}

/// What a store holds, in numbers: what a copy is verified by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inventory {
    identity: StoreRef,
    /// Every tenant's change number and whether it is deleted.
    tenants: BTreeMap<String, (u64, bool)>,
    /// Every tenant's change-log entries.
    changes: BTreeMap<String, Tally>,
    /// The audit events.
    events: Tally,
}

/// Reads `store`'s inventory.
pub(crate) fn inventory(store: &dyn StoreCopy) -> Result<Inventory, StoreError> {
    let tenants = store
        .tenant_seqs()?
        .into_iter()
        .map(|t| (t.account_id, (t.seq, t.deleted)))
        .collect();
    let mut changes: BTreeMap<String, Tally> = BTreeMap::new();
    let mut after = (String::new(), 0);
    loop {
        let rows = store.change_rows((&after.0, after.1), PAGE)?;
        let Some(last) = rows.last() else { break };
        after = (last.account_id.clone(), last.seq);
        for c in rows {
            changes.entry(c.account_id).or_default().add(c.seq);
        }
    }
    let mut events = Tally::default();
    loop {
        let rows = store.event_rows(events.last, PAGE)?;
        if rows.is_empty() {
            break;
        }
        for e in rows {
            events.add(e.id);
        }
    }
    Ok(Inventory {
        identity: StoreRef {
            id: store.store_id().to_owned(),
            epoch: store.epoch(),
        },
        tenants,
        changes,
        events,
    })
}

/// The differences between what was expected and what was found, at most a few named, or
/// `Ok` when there are none.
pub(crate) fn compare(expected: &Inventory, found: &Inventory) -> Result<(), String> {
    let mut differences = Vec::new();
    if expected.identity != found.identity {
        differences.push(format!(
            "store {} at epoch {} instead of store {} at epoch {}",
            found.identity.id, found.identity.epoch, expected.identity.id, expected.identity.epoch
        ));
    }
    let accounts: std::collections::BTreeSet<&String> = expected
        .tenants
        .keys()
        .chain(found.tenants.keys())
        .chain(expected.changes.keys())
        .chain(found.changes.keys())
        .collect();
    let version = |v: Option<&(u64, bool)>| match v {
        None => "absent".to_owned(),
        Some((seq, true)) => format!("deleted at change {seq}"),
        Some((seq, false)) => format!("at change {seq}"),
    };
    for account in accounts {
        let (e, f) = (expected.tenants.get(account), found.tenants.get(account));
        if e != f {
            differences.push(format!(
                "tenant {account} is {} instead of {}",
                version(f),
                version(e)
            ));
        }
        let (e, f) = (
            expected.changes.get(account).copied().unwrap_or_default(),
            found.changes.get(account).copied().unwrap_or_default(),
        );
        if e != f {
            differences.push(format!(
                "tenant {account} has {} change(s) up to change {} instead of {} up to change {}",
                f.count, f.last, e.count, e.last
            ));
        }
    }
    if expected.events != found.events {
        differences.push(format!(
            "{} audit event(s) up to number {} instead of {} up to number {}",
            found.events.count, found.events.last, expected.events.count, expected.events.last
        ));
    }
    if differences.is_empty() {
        return Ok(());
    }
    let more = differences.len().saturating_sub(5);
    differences.truncate(5);
    if more > 0 {
        differences.push(format!("and {more} more"));
    }
    Err(differences.join("; "))
}

// === impl StoreCopy for SqliteStore ===

fn sqlite_contents(conn: &Connection) -> Result<Contents, rusqlite::Error> {
    conn.query_row(
        "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM changes),
                (SELECT count(*) FROM events)",
        [],
        |r| {
            Ok(Contents {
                tenants: to_u64(r.get(0)?),
                changes: to_u64(r.get(1)?),
                events: to_u64(r.get(2)?),
            })
        },
    )
}

impl StoreCopy for SqliteStore {
    fn contents(&self) -> Result<Contents, StoreError> {
        Ok(sqlite_contents(&self.conn.lock())?)
    }

    fn tenant_rows(&self) -> Result<Vec<TenantRow>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare("SELECT account_id, seq, state, deleted FROM tenants ORDER BY account_id")?;
        let rows = stmt.query_map([], |r| {
            Ok(TenantRow {
                account_id: r.get(0)?,
                seq: to_u64(r.get(1)?),
                state: r.get(2)?,
                deleted: r.get::<_, i64>(3)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn change_rows(&self, after: (&str, u64), limit: usize) -> Result<Vec<ChangeRow>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT account_id, seq, at, actor, action, parameters FROM changes
             WHERE (account_id, seq) > (?1, ?2) ORDER BY account_id, seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![after.0, to_i64(after.1), to_i64(limit as u64)],
            |r| {
                Ok(ChangeRow {
                    account_id: r.get(0)?,
                    seq: to_u64(r.get(1)?),
                    at: r.get(2)?,
                    actor: r.get(3)?,
                    action: r.get(4)?,
                    parameters: r.get(5)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn event_rows(&self, after_id: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT id, account_id, at, actor, action, outcome, root, detail, source FROM events
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![to_i64(after_id), to_i64(limit as u64)], |r| {
            Ok(AuditEvent {
                id: to_u64(r.get(0)?),
                account_id: r.get(1)?,
                at: r.get(2)?,
                actor: r.get(3)?,
                action: r.get(4)?,
                outcome: r.get(5)?,
                root: r.get::<_, i64>(6)? != 0,
                detail: r.get(7)?,
                source: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn import(
        &self,
        identity: &StoreRef,
        tenants: &[TenantRow],
        pages: &mut Pages<'_>,
    ) -> Result<(), CopyFailure> {
        let mut conn = self.conn.lock();
        // IMMEDIATE: the write lock is taken now, so the emptiness read below still holds at
        // the commit.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held = sqlite_contents(&tx)?;
        if !held.is_empty() {
            return Err(CopyFailure::NotEmpty(held));
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('epoch', ?1), ('store_id', ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![identity.epoch.to_string(), identity.id],
        )?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO tenants (account_id, seq, state, deleted) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for t in tenants {
                insert.execute(params![
                    t.account_id,
                    to_i64(t.seq),
                    t.state,
                    i64::from(t.deleted)
                ])?;
            }
        }
        while let Some(page) = pages().map_err(CopyFailure::Source)? {
            match page {
                Page::Changes(rows) => {
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO changes (account_id, seq, at, actor, action, parameters)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    for c in rows {
                        insert.execute(params![
                            c.account_id,
                            to_i64(c.seq),
                            c.at,
                            c.actor,
                            c.action,
                            c.parameters
                        ])?;
                    }
                }
                Page::Events(rows) => {
                    // An explicit id moves AUTOINCREMENT's counter past it: the next event
                    // recorded is numbered after the copied ones.
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO events
                             (id, account_id, at, actor, action, outcome, root, detail, source)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?;
                    for e in rows {
                        insert.execute(params![
                            to_i64(e.id),
                            e.account_id,
                            e.at,
                            e.actor,
                            e.action,
                            e.outcome,
                            i64::from(e.root),
                            e.detail,
                            e.source
                        ])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

// === impl StoreCopy for PostgresStore ===

fn postgres_contents(
    client: &mut impl ::postgres::GenericClient,
) -> Result<Contents, ::postgres::Error> {
    let row = client.query_one(
        "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM changes),
                (SELECT count(*) FROM events)",
        &[],
    )?;
    Ok(Contents {
        tenants: to_u64(row.get(0)),
        changes: to_u64(row.get(1)),
        events: to_u64(row.get(2)),
    })
}

/// One import's transaction on a pooled connection.
fn postgres_import(
    client: &mut Client,
    identity: &StoreRef,
    tenants: &[TenantRow],
    pages: &mut Pages<'_>,
) -> Result<(), CopyFailure> {
    let mut tx = client.transaction()?;
    // A control plane starting on the destination meanwhile waits for the commit, and then
    // reads the copied identity; one already running holds locks it gives up within seconds,
    // or the copy fails rather than waiting on it.
    tx.batch_execute(
        "SET LOCAL lock_timeout = '10s';
         LOCK TABLE meta, tenants, changes, events IN ACCESS EXCLUSIVE MODE",
    )?;
    let held = postgres_contents(&mut tx)?;
    if !held.is_empty() {
        return Err(CopyFailure::NotEmpty(held));
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('epoch', $1), ('store_id', $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&identity.epoch.to_string(), &identity.id],
    )?;
    // A page is one statement: its columns as arrays, unnested into rows.
    for chunk in tenants.chunks(PAGE) {
        let ids: Vec<&str> = chunk.iter().map(|t| t.account_id.as_str()).collect();
        let seqs: Vec<i64> = chunk.iter().map(|t| to_i64(t.seq)).collect();
        let states: Vec<Option<&str>> = chunk.iter().map(|t| t.state.as_deref()).collect();
        let deleted: Vec<bool> = chunk.iter().map(|t| t.deleted).collect();
        tx.execute(
            "INSERT INTO tenants (account_id, seq, state, deleted)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::boolean[])",
            &[&ids, &seqs, &states, &deleted],
        )?;
    }
    let mut last_event = 0;
    while let Some(page) = pages().map_err(CopyFailure::Source)? {
        match page {
            Page::Changes(rows) => {
                let ids: Vec<&str> = rows.iter().map(|c| c.account_id.as_str()).collect();
                let seqs: Vec<i64> = rows.iter().map(|c| to_i64(c.seq)).collect();
                let ats: Vec<i64> = rows.iter().map(|c| c.at).collect();
                let actors: Vec<&str> = rows.iter().map(|c| c.actor.as_str()).collect();
                let actions: Vec<&str> = rows.iter().map(|c| c.action.as_str()).collect();
                let parameters: Vec<&str> = rows.iter().map(|c| c.parameters.as_str()).collect();
                tx.execute(
                    "INSERT INTO changes (account_id, seq, at, actor, action, parameters)
                     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[],
                                          $5::text[], $6::text[])",
                    &[&ids, &seqs, &ats, &actors, &actions, &parameters],
                )?;
            }
            Page::Events(rows) => {
                let ids: Vec<i64> = rows.iter().map(|e| to_i64(e.id)).collect();
                let accounts: Vec<&str> = rows.iter().map(|e| e.account_id.as_str()).collect();
                let ats: Vec<i64> = rows.iter().map(|e| e.at).collect();
                let actors: Vec<&str> = rows.iter().map(|e| e.actor.as_str()).collect();
                let actions: Vec<&str> = rows.iter().map(|e| e.action.as_str()).collect();
                let outcomes: Vec<&str> = rows.iter().map(|e| e.outcome.as_str()).collect();
                let roots: Vec<bool> = rows.iter().map(|e| e.root).collect();
                let details: Vec<&str> = rows.iter().map(|e| e.detail.as_str()).collect();
                let sources: Vec<&str> = rows.iter().map(|e| e.source.as_str()).collect();
                tx.execute(
                    "INSERT INTO events
                         (id, account_id, at, actor, action, outcome, root, detail, source)
                     OVERRIDING SYSTEM VALUE
                     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[],
                                          $5::text[], $6::text[], $7::boolean[], $8::text[],
                                          $9::text[])",
                    &[
                        &ids, &accounts, &ats, &actors, &actions, &outcomes, &roots, &details,
                        &sources,
                    ],
                )?;
                last_event = ids.iter().copied().fold(last_event, i64::max);
            }
        }
    }
    if last_event > 0 {
        // Explicit ids leave the identity's sequence where it was: the next event recorded
        // must be numbered after the copied ones.
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'id'), $1)",
            &[&last_event],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl StoreCopy for PostgresStore {
    fn contents(&self) -> Result<Contents, StoreError> {
        self.pool
            .with(|client| postgres_contents(client).map_err(classify))
    }

    fn tenant_rows(&self) -> Result<Vec<TenantRow>, StoreError> {
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT account_id, seq, state, deleted FROM tenants ORDER BY account_id",
                    &[],
                )
                .map_err(classify)
        })?;
        Ok(rows
            .iter()
            .map(|r| TenantRow {
                account_id: r.get(0),
                seq: to_u64(r.get(1)),
                state: r.get(2),
                deleted: r.get(3),
            })
            .collect())
    }

    fn change_rows(&self, after: (&str, u64), limit: usize) -> Result<Vec<ChangeRow>, StoreError> {
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT account_id, seq, at, actor, action, parameters FROM changes
                     WHERE (account_id, seq) > ($1, $2) ORDER BY account_id, seq LIMIT $3",
                    &[&after.0, &to_i64(after.1), &to_i64(limit as u64)],
                )
                .map_err(classify)
        })?;
        Ok(rows
            .iter()
            .map(|r| ChangeRow {
                account_id: r.get(0),
                seq: to_u64(r.get(1)),
                at: r.get(2),
                actor: r.get(3),
                action: r.get(4),
                parameters: r.get(5),
            })
            .collect())
    }

    fn event_rows(&self, after_id: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = self.pool.with(|client| {
            client
                .query(
                    "SELECT id, account_id, at, actor, action, outcome, root, detail, source
                     FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&to_i64(after_id), &to_i64(limit as u64)],
                )
                .map_err(classify)
        })?;
        Ok(rows
            .iter()
            .map(|r| AuditEvent {
                id: to_u64(r.get(0)),
                account_id: r.get(1),
                at: r.get(2),
                actor: r.get(3),
                action: r.get(4),
                outcome: r.get(5),
                root: r.get(6),
                detail: r.get(7),
                source: r.get(8),
            })
            .collect())
    }

    fn import(
        &self,
        identity: &StoreRef,
        tenants: &[TenantRow],
        pages: &mut Pages<'_>,
    ) -> Result<(), CopyFailure> {
        self.pool
            .with(|client| Ok(postgres_import(client, identity, tenants, pages)))?
    }
}
