//! The control plane's state: every tenant's current directory and version, changed only
//! through durable commits.
//!
//! Replicas (issue #16, item 2): several control planes may share one store. Each follows the
//! others' commits ([`ControlPlane::follow`]): a std thread reads the store's change notices
//! and reloads a tenant named at a newer change, and polls every tenant's change number at an
//! interval (and whenever the notices resume), so a lost notice only delays an update.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;

use crate::directory::{IdGenerator, PasswordHasher, PasswordWork, Tenant};
use crate::snapshot::SnapshotVersion;
use crate::snapshot::{SigningKey, SnapshotTrust, TenantUpdate, TrustedKeys};

use super::declare::{export, plan, PlannedAction, TenantSpec};
use super::dispatch::dispatch;
use super::store::{
    AuditEvent, ChangeDraft, ChangeFeed, ChangeNotice, ChangeRecord, FeedEvent, FeedIdle, Prior,
    StoreError, TenantStore, UsageBatch,
};
use super::trail::{TrailCounters, TrailEvent, TrailEventError};
use super::usage::{UsageCounters, UsageReportError, UsageState};
use super::AdminError;

/// How many times an action runs when other writers (control-plane replicas on one
/// database) keep changing its tenant first: each conflict waits a random moment, reloads the tenant and runs the
/// action again on its current state; after the last, the retryable conflict is the answer.
pub const CONFLICT_ATTEMPTS: usize = 12;

/// How often a replica polls the store for changes it was not notified of, by default.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(5);

/// The longest a follower thread waits before it looks whether it should stop.
const FOLLOW_TICK: Duration = Duration::from_millis(200);

/// How often [`ControlPlane::roll_sidecar_keys_daily`] looks whether a day roll is due, by
/// default: a check costs a day comparison per tenant.
pub const DEFAULT_KEY_ROLL_CHECK: Duration = Duration::from_secs(30);

/// Who commits the day roll of sidecar keys, in the audit trail.
const ROLL_ACTOR: &str = "iamlet:key-roll";

/// The audit trail's action of the day roll.
const ROLL_ACTION: &str = "RollSidecarKeys";

/// The control plane's tenants.
///
/// INVARIANT: a change is visible (to admin reads and to sidecars) only after the store has
/// committed it; a failed commit leaves the tenant as it was. Writes are serialized, so the
/// versions a tenant goes through are exactly the numbers of its changes. Several control
/// planes may share one store: each commit names the version its change was built on, and a
/// change another one made first is a conflict, after which the tenant is reloaded and the
/// action runs again ([`CONFLICT_ATTEMPTS`]).
pub struct ControlPlane {
    store: Arc<dyn TenantStore>,
    tenants: Mutex<BTreeMap<String, Current>>,
    ids: Mutex<IdGenerator>,
    hasher: PasswordHasher,
    changed: watch::Sender<u64>,
    clock: fn() -> i64,
    /// Signs every tenant update sidecars receive (issue #20).
    signer: Arc<SigningKey>,
    /// Access Advisor jobs and credential reports (issue #17).
    usage: UsageState,
    /// What became of the usage reports the sidecars sent.
    usage_counters: UsageCounters,
    /// What became of the STS events the sidecars sent.
    trail_counters: TrailCounters,
}

/// A tenant's current state.
#[derive(Debug, Clone)]
struct Current {
    tenant: Arc<Tenant>,
    version: SnapshotVersion,
    /// The tenant as sidecars receive it, encoded by the first stream that needs this
    /// version and shared by every other one.
    shipped: Arc<OnceLock<Shipped>>,
}

/// A tenant's encoding for sidecars (`None`: it does not encode, which a valid tenant never
/// does).
type Shipped = Option<Arc<TenantUpdate>>;

/// A tenant as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    /// The account id.
    pub account_id: String,
    /// The alias, if any.
    pub alias: Option<String>,
    /// The current version.
    pub version: SnapshotVersion,
}

/// A tenant at its current version, on its way to sidecars.
#[derive(Debug)]
pub struct ShippedTenant {
    tenant: Arc<Tenant>,
    /// The version.
    pub version: SnapshotVersion,
    shipped: Arc<OnceLock<Shipped>>,
    signer: Arc<SigningKey>,
    store: crate::snapshot::StoreRef,
}

impl ShippedTenant {
    /// The account id.
    pub fn account_id(&self) -> &str {
        &self.tenant.account_id
    }

    /// The tenant's issuer keys, private halves included: the control plane certifies
    /// sidecars' issuing keys with them (issue #20), never ships them.
    pub fn issuer_keys(&self) -> &[crate::directory::IssuerKey] {
        &self.tenant.issuer_keys
    }

    /// The update sidecars receive (what they must not hold left out), encoded and signed on
    /// first use.
    pub fn update(&self) -> Option<Arc<TenantUpdate>> {
        self.shipped
            .get_or_init(|| {
                TenantUpdate::signed(&self.tenant, self.version, &self.signer, &self.store)
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }
}

/// Unix seconds from the system clock.
pub fn system_clock() -> i64 {
    crate::policy::Timestamp::now().epoch_seconds()
}

// === impl ControlPlane ===

impl ControlPlane {
    /// Loads every tenant from `store`. A tenant that does not load is a load failure (the
    /// store's error names it), never "the change could not be stored".
    pub fn open(store: Arc<dyn TenantStore>, ids: IdGenerator) -> Result<Self, StoreError> {
        let tenants = store
            .load_tenants()?
            .into_iter()
            .map(|stored| {
                (
                    stored.tenant.account_id.clone(),
                    Current {
                        tenant: Arc::new(stored.tenant),
                        version: stored.version,
                        shipped: Arc::default(),
                    },
                )
            })
            .collect();
        let (changed, _) = watch::channel(0);
        // An ephemeral key until `with_snapshot_signer` gives the kept one: every update is
        // signed, whoever embeds the control plane.
        let (signer, _) =
            SigningKey::generate(store.store_id()).map_err(|e| StoreError::Unavailable {
                reason: format!("cannot make a snapshot signing key: {e}"),
            })?;
        Ok(Self {
            signer: Arc::new(signer),
            store,
            tenants: Mutex::new(tenants),
            ids: Mutex::new(ids),
            hasher: PasswordHasher::PRODUCTION,
            changed,
            clock: system_clock,
            usage: UsageState::default(),
            usage_counters: UsageCounters::default(),
            trail_counters: TrailCounters::default(),
        })
    }

    /// Hashes console passwords with `hasher` (tests use a cheap one; the stored hash records
    /// its cost, so verification works across settings).
    #[must_use]
    pub fn with_password_hasher(mut self, hasher: PasswordHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Signs updates with `key` (the current key of the control plane's key ring).
    #[must_use]
    pub fn with_snapshot_signer(mut self, key: SigningKey) -> Self {
        self.signer = Arc::new(key);
        self
    }

    /// The key that signs updates.
    pub fn snapshot_signer(&self) -> &SigningKey {
        &self.signer
    }

    /// What a sidecar of this control plane alone trusts: its current key (in-process use and
    /// tests; deployments distribute the key ring's trust file).
    pub fn snapshot_trust(&self) -> SnapshotTrust {
        SnapshotTrust::keys(TrustedKeys::parse(&self.signer.trust_line()).unwrap_or_default())
    }

    /// Uses `clock` for change times (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// Wakes whenever a change is committed; sync streams wait on it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Runs an IAM action on a tenant. A mutating action is committed (with `actor` and the
    /// redacted parameters in the audit trail) before its result is returned or published.
    /// Unchecked: for callers inside the process (`iamlet up`, tests); the admin service
    /// uses [`Self::call_checked`].
    pub fn call(
        &self,
        account_id: &str,
        actor: &str,
        action: &str,
        parameters: &Value,
    ) -> Result<(Value, SnapshotVersion), AdminError> {
        self.call_checked(account_id, actor, action, parameters, &|_, _, _| Ok(()))
    }

    /// [`Self::call`] once `check` allows the action on the tenant as it is when the action
    /// runs (under the write lock, so the target checked is the target changed).
    pub fn call_checked(
        &self,
        account_id: &str,
        actor: &str,
        action: &str,
        parameters: &Value,
        check: &dyn Fn(&Tenant, &str, &Value) -> Result<(), AdminError>,
    ) -> Result<(Value, SnapshotVersion), AdminError> {
        self.retrying(account_id, || {
            self.call_once(account_id, actor, action, parameters, check)
        })
    }

    fn call_once(
        &self,
        account_id: &str,
        actor: &str,
        action: &str,
        parameters: &Value,
        check: &dyn Fn(&Tenant, &str, &Value) -> Result<(), AdminError>,
    ) -> Result<(Value, SnapshotVersion), AdminError> {
        let hasher = self.password_work_ahead(account_id, action, parameters, check);
        let mut tenants = self.tenants.lock();
        let current = tenants
            .get(account_id)
            .ok_or_else(|| AdminError::NoSuchTenant(account_id.to_owned()))?;
        super::dispatch::served(action)?;
        check(&current.tenant, action, parameters)?;
        let now = (self.clock)();
        if super::trail::reads_trail(action) {
            let version = current.version;
            // The store is read without holding every tenant's lock.
            drop(tenants);
            return Ok((self.lookup_events(account_id, now, parameters)?, version));
        }
        if super::dispatch::reads_usage(action) {
            let (tenant, version) = (Arc::clone(&current.tenant), current.version);
            // The store is read without holding every tenant's lock.
            drop(tenants);
            let result = self.with_usage(&tenant, now, action, parameters)?;
            return Ok((result, version));
        }
        let mut next = Tenant::clone(&current.tenant);
        let outcome = dispatch(
            &mut next,
            &mut self.ids.lock(),
            hasher,
            now,
            action,
            parameters,
        )?;
        if !outcome.changed {
            return Ok((outcome.result, current.version));
        }
        let draft = ChangeDraft {
            account_id: account_id.to_owned(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            parameters: outcome.audit_parameters,
            at: now,
        };
        let prior = Prior::At(current.version.seq);
        let version = self.commit(&mut tenants, &draft, prior, Some(next))?;
        Ok((outcome.result, version))
    }

    /// The hasher for `action`: for one that derives or verifies password hashes, one holding
    /// that work, done now on a copy of the tenant without holding the write lock, so that
    /// the run under the lock finds it rather than computing it (PBKDF2 at the production
    /// count takes a good part of a second, and a change under reuse prevention verifies up
    /// to 25 hashes). The run ahead only computes: its result, errors included, is dropped,
    /// and anything it did not foresee is computed under the lock as before.
    fn password_work_ahead(
        &self,
        account_id: &str,
        action: &str,
        parameters: &Value,
        check: &dyn Fn(&Tenant, &str, &Value) -> Result<(), AdminError>,
    ) -> PasswordHasher {
        if !super::dispatch::hashes_passwords(action) {
            return self.hasher.clone();
        }
        let Some(tenant) = self
            .tenants
            .lock()
            .get(account_id)
            .map(|c| Arc::clone(&c.tenant))
        else {
            return self.hasher.clone();
        };
        // A caller the action is denied to gets no PBKDF2 work done on its behalf.
        if check(&tenant, action, parameters).is_err() {
            return self.hasher.clone();
        }
        let work = Arc::new(PasswordWork::default());
        let hasher = self.hasher.with_work(Arc::clone(&work));
        let mut ids = self.ids.lock().fork();
        let mut scratch = Tenant::clone(&tenant);
        let now = (self.clock)();
        let _ahead = dispatch(
            &mut scratch,
            &mut ids,
            hasher.clone(),
            now,
            action,
            parameters,
        );
        hasher
    }

    /// Creates a tenant.
    pub fn create_tenant(
        &self,
        account_id: &str,
        alias: Option<&str>,
        actor: &str,
    ) -> Result<SnapshotVersion, AdminError> {
        self.create_tenant_with_root(account_id, alias, actor)
            .map(|(version, _)| version)
    }

    /// Creates a tenant with its root user's access key, and returns the key: the only time
    /// its secret is shown.
    pub fn create_tenant_with_root(
        &self,
        account_id: &str,
        alias: Option<&str>,
        actor: &str,
    ) -> Result<(SnapshotVersion, (String, crate::directory::Secret)), AdminError> {
        if !crate::account::AccountId::is_valid(account_id) {
            return Err(AdminError::InvalidParameterValue {
                name: "AccountId".into(),
                reason: format!("`{account_id}` is not a 12-digit account id"),
            });
        }
        self.retrying(account_id, || {
            self.create_tenant_once(account_id, alias, actor)
        })
    }

    fn create_tenant_once(
        &self,
        account_id: &str,
        alias: Option<&str>,
        actor: &str,
    ) -> Result<(SnapshotVersion, (String, crate::directory::Secret)), AdminError> {
        let mut tenants = self.tenants.lock();
        if tenants.contains_key(account_id) {
            return Err(AdminError::TenantExists(account_id.to_owned()));
        }
        let now = (self.clock)();
        let mut tenant = Tenant::new(account_id, now);
        if let Some(alias) = alias.filter(|a| !a.is_empty()) {
            tenant.set_account_alias(alias)?;
        }
        // Every tenant can issue session tokens from its first version on.
        tenant.rotate_issuer_key(&mut self.ids.lock(), now)?;
        let (root_key_id, root_secret) =
            tenant.create_root_access_key(&mut self.ids.lock(), now)?;
        let draft = ChangeDraft {
            account_id: account_id.to_owned(),
            actor: actor.to_owned(),
            action: "CreateTenant".into(),
            parameters: serde_json::json!({
                "AccountId": account_id,
                "Alias": alias,
                "RootAccessKeyId": root_key_id,
            }),
            at: now,
        };
        let version = self.commit(&mut tenants, &draft, Prior::Absent, Some(tenant))?;
        Ok((
            version,
            (root_key_id, crate::directory::Secret::new(root_secret)),
        ))
    }

    /// Deletes a tenant; its audit trail stays.
    pub fn delete_tenant(&self, account_id: &str, actor: &str) -> Result<(), AdminError> {
        self.retrying(account_id, || self.delete_tenant_once(account_id, actor))
    }

    fn delete_tenant_once(&self, account_id: &str, actor: &str) -> Result<(), AdminError> {
        let mut tenants = self.tenants.lock();
        let Some(current) = tenants.get(account_id) else {
            return Err(AdminError::NoSuchTenant(account_id.to_owned()));
        };
        let prior = Prior::At(current.version.seq);
        let draft = ChangeDraft {
            account_id: account_id.to_owned(),
            actor: actor.to_owned(),
            action: "DeleteTenant".into(),
            parameters: serde_json::json!({ "AccountId": account_id }),
            at: (self.clock)(),
        };
        self.commit(&mut tenants, &draft, prior, None)?;
        self.usage.forget(account_id);
        Ok(())
    }

    /// Runs an action that answers from the tenant's usage (`GetAccessKeyLastUsed`,
    /// `GetRole`, Access Advisor, the credential report). The plain reads (`GetRole`,
    /// `GetAccessKeyLastUsed`) still answer when the usage cannot be read, without it; the
    /// others need it.
    fn with_usage(
        &self,
        tenant: &Tenant,
        now: i64,
        action: &str,
        parameters: &Value,
    ) -> Result<Value, AdminError> {
        let usage = match self.store.usage(&tenant.account_id) {
            Ok(usage) => usage,
            Err(error) if matches!(action, "GetRole" | "GetAccessKeyLastUsed") => {
                tracing::warn!(%error, action, "usage could not be read; answering without it");
                UsageBatch::default()
            }
            Err(error) => return Err(error.into()),
        };
        let cx = super::dispatch::UsageContext {
            state: &self.usage,
            ids: &mut self.ids.lock(),
            hasher: self.hasher.clone(),
            now,
            max_password_age_days: tenant.password_policy.and_then(|p| p.max_password_age),
        };
        super::dispatch::run_with_usage(tenant, &usage, cx, action, parameters)
    }

    /// Merges the usage reports a sync stream sent, each in its own transaction, after
    /// checking it (`admits` says whether the stream may see a tenant; see
    /// `usage::validate`). A refused report is logged and counted, never an error
    /// of the stream. Blocking: call it off the async workers.
    pub fn record_usage(&self, reports: &[UsageBatch], admits: &dyn Fn(&str) -> bool) {
        let now = (self.clock)();
        for report in reports {
            let checked = if !admits(&report.account_id) {
                Err(UsageReportError::NotAdmitted(report.account_id.clone()))
            } else if !self.tenants.lock().contains_key(&report.account_id) {
                Err(UsageReportError::UnknownTenant(report.account_id.clone()))
            } else {
                super::usage::validate(report, now)
            };
            self.usage_counters.count(&checked);
            if let Err(refusal) = checked {
                tracing::warn!(
                    tenant = %crate::error::echo(&report.account_id),
                    "a usage report was refused: {refusal}"
                );
                continue;
            }
            if let Err(error) = self.store.record_usage(report) {
                self.usage_counters
                    .failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    %error,
                    tenant = %crate::error::echo(&report.account_id),
                    "a usage report could not be stored; it is dropped (and counted)"
                );
            }
        }
    }

    /// What became of the usage reports received so far.
    pub fn usage_counters(&self) -> &UsageCounters {
        &self.usage_counters
    }

    /// Stores the STS events a sync stream sent, after checking them (`admits` says whether
    /// the stream may see a tenant; see `trail::validate`): a message of more than
    /// `MAX_TRAIL_EVENTS` is refused whole, any other event on its own. A refusal is logged
    /// and counted, never an error of the stream. Blocking: call it off the async workers.
    pub fn record_trail(&self, events: &[TrailEvent], admits: &dyn Fn(&str) -> bool) {
        if events.len() > super::trail::MAX_TRAIL_EVENTS {
            let refusal = TrailEventError::TooLarge {
                count: events.len(),
                max: super::trail::MAX_TRAIL_EVENTS,
            };
            self.trail_counters.refused(&refusal, events.len());
            tracing::warn!("STS events were refused: {refusal}");
            return;
        }
        let now_ms = (self.clock)().saturating_mul(1_000).saturating_add(999);
        let mut records = Vec::with_capacity(events.len());
        for event in events {
            let checked = if !admits(&event.account_id) {
                Err(TrailEventError::NotAdmitted(event.account_id.clone()))
            } else if !self.tenants.lock().contains_key(&event.account_id) {
                Err(TrailEventError::UnknownTenant(event.account_id.clone()))
            } else {
                super::trail::validate(event, now_ms)
            };
            match checked {
                Ok(()) => records.push(super::trail::sts_record(event)),
                Err(refusal) => {
                    self.trail_counters.refused(&refusal, 1);
                    tracing::warn!(
                        tenant = %crate::error::echo(&event.account_id),
                        "an STS event was refused: {refusal}"
                    );
                }
            }
        }
        match self.store.record_trail(&records) {
            Ok(new) => {
                TrailCounters::add(&self.trail_counters.accepted, new);
                TrailCounters::add(&self.trail_counters.duplicates, records.len() - new);
            }
            Err(error) => {
                TrailCounters::add(&self.trail_counters.failed, records.len());
                tracing::warn!(
                    %error,
                    "STS events could not be stored; they are dropped (and counted)"
                );
            }
        }
    }

    /// What became of the STS events received so far.
    pub fn trail_counters(&self) -> &TrailCounters {
        &self.trail_counters
    }

    /// `LookupEvents` on a tenant at `now` (Unix seconds): its admin changes, its admin calls
    /// refused by authorization and the sidecars' STS events, as CloudTrail's events.
    fn lookup_events(
        &self,
        account_id: &str,
        now: i64,
        parameters: &serde_json::Value,
    ) -> Result<serde_json::Value, AdminError> {
        let empty = serde_json::Map::new();
        let map = match parameters {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => &empty,
            _ => {
                return Err(AdminError::InvalidParameterValue {
                    name: "parameters".into(),
                    reason: "must be a JSON object of AWS parameter names to values".into(),
                })
            }
        };
        let model = super::api_model::ApiModel::embedded()
            .map_err(|e| AdminError::Internal(e.to_owned()))?;
        model.check_input("LookupEvents", map, &[])?;
        let lookup = super::trail::read_lookup(map, now.saturating_mul(1_000).saturating_add(999))?;
        if map.get("EventCategory").and_then(serde_json::Value::as_str) == Some("insight") {
            // iamlet records no Insights events.
            return Ok(serde_json::json!({ "Events": [] }));
        }
        let in_range = |at_ms: i64| (lookup.start_ms..=lookup.end_ms).contains(&at_ms);
        let mut records = self.store.trail(
            account_id,
            lookup.start_ms,
            lookup.end_ms,
            super::trail::MAX_LOOKUP_SCAN,
        )?;
        let mut after = 0;
        loop {
            let page = self.store.changes(account_id, after, 1_000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            records.extend(
                page.iter()
                    .map(super::trail::change_record)
                    .filter(|r| in_range(r.at_ms)),
            );
        }
        let mut after = 0;
        loop {
            let page = self.store.events(account_id, after, 1_000)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            records.extend(
                page.iter()
                    .filter_map(super::trail::denied_record)
                    .filter(|r| in_range(r.at_ms)),
            );
        }
        Ok(super::trail::lookup(records, &lookup))
    }

    /// The tenant in the declarative format (`iamlet admin export`); secrets are left out.
    pub fn export(&self, account_id: &str) -> Result<TenantSpec, AdminError> {
        let (tenant, _) = self
            .tenant(account_id)
            .ok_or_else(|| AdminError::NoSuchTenant(account_id.to_owned()))?;
        Ok(export(&tenant))
    }

    /// Converges a tenant to `spec` (`iamlet admin apply -f`), creating the tenant first if it
    /// does not exist. The whole plan runs on a copy and is committed as ONE change, with the
    /// planned actions in the audit trail: it applies completely or not at all. With `dry_run`
    /// the plan is returned and nothing changes.
    pub fn apply_spec(
        &self,
        spec: &TenantSpec,
        actor: &str,
        dry_run: bool,
    ) -> Result<(Vec<PlannedAction>, Option<SnapshotVersion>), AdminError> {
        self.apply_spec_checked(spec, actor, dry_run, &|_, _, _| Ok(()))
    }

    /// [`Self::apply_spec`] once `check` allows every planned action, each on the tenant as
    /// the plan's earlier actions leave it. A refused action refuses the whole apply (and a
    /// dry run, which then shows nothing the caller may not do).
    pub fn apply_spec_checked(
        &self,
        spec: &TenantSpec,
        actor: &str,
        dry_run: bool,
        check: &dyn Fn(&Tenant, &str, &Value) -> Result<(), AdminError>,
    ) -> Result<(Vec<PlannedAction>, Option<SnapshotVersion>), AdminError> {
        self.retrying(&spec.account_id, || {
            self.apply_spec_once(spec, actor, dry_run, check)
        })
    }

    fn apply_spec_once(
        &self,
        spec: &TenantSpec,
        actor: &str,
        dry_run: bool,
        check: &dyn Fn(&Tenant, &str, &Value) -> Result<(), AdminError>,
    ) -> Result<(Vec<PlannedAction>, Option<SnapshotVersion>), AdminError> {
        let account_id = spec.account_id.as_str();
        if self.tenant(account_id).is_none() && !dry_run {
            // A new tenant is created only when its whole plan applies: the plan is tried on
            // a scratch tenant first, so that a refused spec leaves no empty tenant behind.
            let mut scratch = Tenant::new(account_id, (self.clock)());
            let mut ids = IdGenerator::seeded(0);
            for step in &plan(&scratch, spec)? {
                check(&scratch, &step.action, &step.parameters)?;
                dispatch(
                    &mut scratch,
                    &mut ids,
                    PasswordHasher::with_iterations(1),
                    (self.clock)(),
                    &step.action,
                    &step.parameters,
                )?;
            }
            self.create_tenant(account_id, None, actor)?;
        }
        let mut tenants = self.tenants.lock();
        let (current, prior) = match tenants.get(account_id) {
            Some(c) => (Arc::clone(&c.tenant), Prior::At(c.version.seq)),
            None => (
                Arc::new(Tenant::new(account_id, (self.clock)())),
                Prior::Absent,
            ),
        };
        let actions = plan(&current, spec)?;
        if dry_run {
            // Each action is checked against the tenant as the plan's earlier ones leave it;
            // a dry run needs a scratch copy for that, with a throwaway id source.
            let mut scratch = Tenant::clone(&current);
            let mut ids = IdGenerator::seeded(0);
            for step in &actions {
                check(&scratch, &step.action, &step.parameters)?;
                let _ = dispatch(
                    &mut scratch,
                    &mut ids,
                    PasswordHasher::with_iterations(1),
                    (self.clock)(),
                    &step.action,
                    &step.parameters,
                );
            }
        }
        if dry_run || actions.is_empty() {
            let version = tenants.get(account_id).map(|c| c.version);
            return Ok((actions, version));
        }
        let now = (self.clock)();
        let mut next = Tenant::clone(&current);
        {
            let mut ids = self.ids.lock();
            for step in &actions {
                check(&next, &step.action, &step.parameters)?;
                dispatch(
                    &mut next,
                    &mut ids,
                    self.hasher.clone(),
                    now,
                    &step.action,
                    &step.parameters,
                )?;
            }
        }
        let summary: Vec<Value> = actions
            .iter()
            .map(|a| serde_json::json!({ "Action": a.action, "Parameters": super::dispatch::redact(&a.parameters) }))
            .collect();
        let draft = ChangeDraft {
            account_id: account_id.to_owned(),
            actor: actor.to_owned(),
            action: "ApplyTenant".into(),
            parameters: serde_json::json!({ "Actions": summary }),
            at: now,
        };
        let version = self.commit(&mut tenants, &draft, prior, Some(next))?;
        Ok((actions, Some(version)))
    }

    /// Runs `attempt` until it does not meet a conflict, reloading the tenant from the store
    /// after each one, at most [`CONFLICT_ATTEMPTS`] times; a tenant not found is looked up in
    /// the store once.
    fn retrying<T>(
        &self,
        account_id: &str,
        mut attempt: impl FnMut() -> Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        let mut tries = 1;
        let mut looked_up = false;
        loop {
            match attempt() {
                // Another control plane on the same store may have made the tenant since this
                // one loaded: looked up once before the caller is told it does not exist.
                Err(AdminError::NoSuchTenant(_)) if !looked_up => {
                    looked_up = true;
                    self.reload(account_id)?;
                    if self.tenant(account_id).is_none() {
                        return Err(AdminError::NoSuchTenant(account_id.to_owned()));
                    }
                }
                Err(AdminError::Store(StoreError::Conflict { .. }))
                    if tries < CONFLICT_ATTEMPTS =>
                {
                    // Writers that met at once would meet again: each waits a random part of
                    // a doubling window (2 ms, 4 ms, ... 64 ms) so that one of them goes first.
                    let window_micros = 1_000u64 << tries.min(6);
                    let mut bytes = [0u8; 8];
                    IdGenerator::system().fill(&mut bytes);
                    let wait = u64::from_le_bytes(bytes) % window_micros;
                    std::thread::sleep(std::time::Duration::from_micros(wait));
                    tries += 1;
                    self.reload(account_id)?;
                }
                other => return other,
            }
        }
    }

    /// Follows the changes other control planes commit to the shared store, on a std thread
    /// of its own until the returned [`Follower`] is stopped or dropped (or the control plane
    /// is): each notice naming a tenant at a change newer than this one holds reloads that
    /// tenant; every `catch_up` (and whenever the store's notices resume after a gap) every
    /// tenant's change number is compared with what is held ([`Self::catch_up`]). A store
    /// without notices (SQLite) is polled only.
    pub fn follow(self: &Arc<Self>, catch_up: Duration) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let feed = self.store.watch_changes();
        let weak = Arc::downgrade(self);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("iamlet-follow".into())
            .spawn(move || follow_loop(&weak, feed, catch_up, &flag));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!(%error, "cannot start following other replicas' changes");
                None
            }
        };
        Follower { stop, thread }
    }

    /// Reloads the tenant a notice names unless this replica already holds that change or a
    /// later one; true when it was reloaded.
    pub fn take_notice(&self, notice: &ChangeNotice) -> Result<bool, AdminError> {
        let held = self
            .tenants
            .lock()
            .get(&notice.account_id)
            .map(|c| c.version.seq);
        if held.is_some_and(|seq| seq >= notice.seq) {
            return Ok(false);
        }
        self.reload(&notice.account_id)?;
        Ok(true)
    }

    /// Compares every tenant's change number in the store with what this replica holds and
    /// reloads each one that moved on (made, changed or deleted by another writer); returns
    /// how many were reloaded.
    pub fn catch_up(&self) -> Result<usize, AdminError> {
        let stored = self.store.tenant_seqs()?;
        let behind: Vec<String> = {
            let tenants = self.tenants.lock();
            let mut behind: Vec<String> = stored
                .iter()
                .filter(|s| match tenants.get(&s.account_id) {
                    Some(current) => s.deleted || current.version.seq < s.seq,
                    None => !s.deleted,
                })
                .map(|s| s.account_id.clone())
                .collect();
            // A held tenant the store no longer lists at all (a store emptied by hand).
            let listed: std::collections::BTreeSet<&str> =
                stored.iter().map(|s| s.account_id.as_str()).collect();
            behind.extend(
                tenants
                    .keys()
                    .filter(|account| !listed.contains(account.as_str()))
                    .cloned(),
            );
            behind
        };
        for account in &behind {
            self.reload(account)?;
        }
        Ok(behind.len())
    }

    /// Makes the tenant as the store holds it now what admin reads and sidecars see (after a
    /// conflict: another writer changed it). Under the lock, so no local change interleaves.
    pub fn reload(&self, account_id: &str) -> Result<(), AdminError> {
        let mut tenants = self.tenants.lock();
        match self.store.load_tenant(account_id)? {
            Some(stored) => {
                // Never backwards: a version this process already shows stays.
                if tenants
                    .get(account_id)
                    .is_some_and(|c| c.version >= stored.version)
                {
                    return Ok(());
                }
                tenants.insert(
                    account_id.to_owned(),
                    Current {
                        tenant: Arc::new(stored.tenant),
                        version: stored.version,
                        shipped: Arc::default(),
                    },
                );
            }
            None => {
                if tenants.remove(account_id).is_none() {
                    return Ok(());
                }
            }
        }
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Commits a change durably, then makes the tenant's new state (`None`: deleted) what
    /// admin reads and sidecars see. The only way state changes; the caller holds the lock,
    /// so changes of a tenant are numbered in the order they happen.
    fn commit(
        &self,
        tenants: &mut BTreeMap<String, Current>,
        draft: &ChangeDraft,
        prior: Prior,
        mut next: Option<Tenant>,
    ) -> Result<SnapshotVersion, AdminError> {
        // Every state that sidecars receive carries date keys from the commit's day on.
        if let Some(tenant) = next.as_mut() {
            tenant.roll_sidecar_keys(&mut self.ids.lock(), draft.at);
        }
        let record = self.store.commit(draft, prior, next.as_ref())?;
        let version = SnapshotVersion::new(self.store.epoch(), record.seq);
        match next {
            Some(tenant) => {
                let tenant = Arc::new(tenant);
                tenants.insert(
                    draft.account_id.clone(),
                    Current {
                        tenant,
                        version,
                        shipped: Arc::default(),
                    },
                );
            }
            None => {
                tenants.remove(&draft.account_id);
            }
        }
        self.changed.send_modify(|n| *n += 1);
        Ok(version)
    }

    /// Commits the day roll of sidecar keys (issue #20, item 2) for every tenant with user
    /// access keys whose key day is behind the clock's ([`crate::directory::SidecarKeys`]):
    /// sidecars then receive date keys for the new day and the next before the day they hold
    /// last ends. Idempotent across replicas of one store: a replica that meets another's roll
    /// reloads the tenant and finds nothing due. Returns the tenants rolled; a tenant that
    /// cannot be rolled now is logged and left to the next call.
    pub fn roll_sidecar_keys(&self) -> usize {
        let due: Vec<String> = {
            let now = (self.clock)();
            self.tenants
                .lock()
                .values()
                .filter(|c| c.tenant.sidecar_keys.due(now) && c.tenant.has_user_access_keys())
                .map(|c| c.tenant.account_id.clone())
                .collect()
        };
        let mut rolled = 0;
        for account_id in due {
            match self.retrying(&account_id, || self.roll_once(&account_id)) {
                Ok(true) => rolled += 1,
                Ok(false) => {}
                Err(error) => tracing::error!(
                    tenant = %account_id,
                    %error,
                    "the sidecar keys of tenant {account_id} could not be rolled; retried at \
                     the next check"
                ),
            }
        }
        rolled
    }

    fn roll_once(&self, account_id: &str) -> Result<bool, AdminError> {
        let mut tenants = self.tenants.lock();
        let Some(current) = tenants.get(account_id) else {
            return Ok(false);
        };
        let now = (self.clock)();
        if !current.tenant.sidecar_keys.due(now) {
            return Ok(false);
        }
        let prior = Prior::At(current.version.seq);
        let next = Tenant::clone(&current.tenant);
        let draft = ChangeDraft {
            account_id: account_id.to_owned(),
            actor: ROLL_ACTOR.to_owned(),
            action: ROLL_ACTION.to_owned(),
            parameters: serde_json::json!({}),
            at: now,
        };
        // `commit` rolls the copy to the clock's day.
        self.commit(&mut tenants, &draft, prior, Some(next))?;
        Ok(true)
    }

    /// Rolls sidecar keys ([`Self::roll_sidecar_keys`]) now and then every `interval`, on a
    /// thread of its own, until the returned handle is stopped or dropped. The clock is the
    /// control plane's ([`Self::with_clock`]), so a roll happens within `interval` after
    /// [`crate::directory::ROLL_GRACE_SECONDS`] past each UTC midnight.
    pub fn roll_sidecar_keys_daily(self: &Arc<Self>, interval: Duration) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = Arc::downgrade(self);
        let flag = Arc::clone(&stop);
        let interval = interval.max(Duration::from_millis(10));
        let thread = std::thread::Builder::new()
            .name("iamlet-key-roll".into())
            .spawn(move || {
                let mut next = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        let Some(cp) = weak.upgrade() else { return };
                        cp.roll_sidecar_keys();
                        next = Instant::now() + interval;
                    }
                    std::thread::sleep(FOLLOW_TICK.min(interval));
                }
            });
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!(%error, "cannot start rolling sidecar keys daily");
                None
            }
        };
        Follower { stop, thread }
    }

    /// Every tenant, sorted by account id.
    pub fn list_tenants(&self) -> Vec<TenantSummary> {
        self.tenants
            .lock()
            .values()
            .map(|c| TenantSummary {
                account_id: c.tenant.account_id.clone(),
                alias: c.tenant.alias.clone(),
                version: c.version,
            })
            .collect()
    }

    /// A tenant's current directory and version.
    pub fn tenant(&self, account_id: &str) -> Option<(Arc<Tenant>, SnapshotVersion)> {
        self.tenants
            .lock()
            .get(account_id)
            .map(|c| (Arc::clone(&c.tenant), c.version))
    }

    /// Every tenant's current directory and version.
    pub fn tenants(&self) -> Vec<(Arc<Tenant>, SnapshotVersion)> {
        self.tenants
            .lock()
            .values()
            .map(|c| (Arc::clone(&c.tenant), c.version))
            .collect()
    }

    /// Every tenant's account id and current version, with a handle that gives its encoding
    /// for sidecars ([`ShippedTenant::update`]): encoded once per version, whatever the
    /// number of streams.
    pub fn shipped_tenants(&self) -> Vec<ShippedTenant> {
        let store = self.store_identity();
        self.tenants
            .lock()
            .values()
            .map(|c| ShippedTenant {
                tenant: Arc::clone(&c.tenant),
                version: c.version,
                shipped: Arc::clone(&c.shipped),
                signer: Arc::clone(&self.signer),
                store: store.clone(),
            })
            .collect()
    }

    /// A tenant's audit trail after `after_seq`, oldest first.
    pub fn changes(
        &self,
        account_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, AdminError> {
        Ok(self.store.changes(account_id, after_seq, limit)?)
    }

    /// Records an audit event; a failure to record is logged, and never fails the call it
    /// describes (which has already been refused or done).
    pub fn record_event(&self, mut event: AuditEvent) {
        event.at = (self.clock)();
        if let Err(error) = self.store.record_event(&event) {
            tracing::error!(%error, action = %event.action, "an audit event could not be stored");
        }
    }

    /// A tenant's audit events after `after_id`, oldest first.
    pub fn events(
        &self,
        account_id: &str,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, AdminError> {
        Ok(self.store.events(account_id, after_id, limit)?)
    }

    /// The store's epoch.
    pub fn epoch(&self) -> u64 {
        self.store.epoch()
    }

    /// The store's identity and epoch: every sync response carries them, so a sidecar takes
    /// a removal only from the store the tenant came from.
    pub fn store_identity(&self) -> crate::snapshot::StoreRef {
        crate::snapshot::StoreRef {
            id: self.store.store_id().to_owned(),
            epoch: self.store.epoch(),
        }
    }
}

/// A running [`ControlPlane::follow`]: stops following when stopped or dropped.
#[derive(Debug)]
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    /// Stops following and waits for the thread to end (within a moment: it looks at least
    /// every 200 ms, after the store call it may be in).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The follower thread: notices as they come, a poll when due. A store call that fails (the
/// database unreachable) is logged and left to the next poll, which finds whatever it missed.
fn follow_loop(
    control_plane: &Weak<ControlPlane>,
    mut feed: Option<ChangeFeed>,
    catch_up: Duration,
    stop: &AtomicBool,
) {
    let catch_up = catch_up.max(Duration::from_millis(10));
    let mut next_poll = Instant::now() + catch_up;
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let wait = next_poll
            .saturating_duration_since(Instant::now())
            .min(FOLLOW_TICK);
        let event = match &feed {
            Some(f) => match f.next_timeout(wait) {
                Ok(event) => Some(event),
                Err(FeedIdle::Timeout) => None,
                Err(FeedIdle::Closed) => {
                    // The store's listener ended for good: polling alone from now on.
                    tracing::warn!("the store's change notices ended; polling only");
                    feed = None;
                    None
                }
            },
            None => {
                std::thread::sleep(wait);
                None
            }
        };
        let Some(cp) = control_plane.upgrade() else {
            return;
        };
        let outcome = match event {
            Some(FeedEvent::Change(notice)) => cp.take_notice(&notice).map(drop),
            Some(FeedEvent::Listening) => {
                next_poll = Instant::now() + catch_up;
                cp.catch_up().map(drop)
            }
            None if Instant::now() >= next_poll => {
                next_poll = Instant::now() + catch_up;
                cp.catch_up().map(drop)
            }
            None => Ok(()),
        };
        match outcome {
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "cannot read other replicas' changes; retrying at the next poll");
            }
            Err(_) => {}
            Ok(()) => {
                if failing {
                    tracing::info!("reading other replicas' changes again");
                }
                failing = false;
            }
        }
    }
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("tenants", &self.tenants.lock().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control_plane::SqliteStore;

    #[test]
    fn every_stream_shares_one_encoding_per_version() {
        let store = SqliteStore::open_in_memory().unwrap();
        let cp = ControlPlane::open(Arc::new(store), IdGenerator::seeded(1)).unwrap();
        cp.create_tenant("111122223333", None, "test").unwrap();
        let first = cp.shipped_tenants()[0].update().unwrap();
        let again = cp.shipped_tenants()[0].update().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // What sidecars receive has no root key.
        assert!(cp
            .tenant("111122223333")
            .unwrap()
            .0
            .root_access_key
            .is_some());
        assert!(!first.payload.contains("\"root_access_key\":{"));

        cp.call(
            "111122223333",
            "test",
            "CreateUser",
            &serde_json::json!({"UserName": "a"}),
        )
        .unwrap();
        let next = cp.shipped_tenants()[0].update().unwrap();
        assert!(!Arc::ptr_eq(&first, &next));
        assert!(next.version > first.version);
    }

    /// The injected clock of `the_day_roll_reaches_streams_once_a_day`.
    static ROLL_CLOCK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

    fn roll_clock() -> i64 {
        ROLL_CLOCK.load(Ordering::Relaxed)
    }

    /// The days of alice's date keys in what sidecars receive now.
    fn shipped_days(cp: &ControlPlane, account: &str) -> (SnapshotVersion, Vec<String>) {
        let shipped = cp.shipped_tenants();
        let update = shipped
            .iter()
            .find(|s| s.account_id() == account)
            .unwrap()
            .update()
            .unwrap();
        assert!(update.signature.is_some(), "every update is signed");
        let tenant: Tenant = serde_json::from_str(&update.payload).unwrap();
        let key = &tenant.users["alice"].access_keys[0];
        assert!(key.secret.is_empty());
        let days = key
            .derived
            .as_ref()
            .unwrap()
            .days()
            .map(str::to_owned)
            .collect();
        (update.version, days)
    }

    #[test]
    fn the_day_roll_reaches_streams_once_a_day() {
        // 2026-12-03T12:00:00Z.
        let noon = 20_790 * 86_400 + 12 * 3_600;
        let midnight = 20_791 * 86_400;
        ROLL_CLOCK.store(noon, Ordering::Relaxed);
        let store = SqliteStore::open_in_memory().unwrap();
        let cp = ControlPlane::open(Arc::new(store), IdGenerator::seeded(1))
            .unwrap()
            .with_clock(roll_clock);
        let (a, b) = ("111122223333", "444455556666");
        for account in [a, b] {
            cp.create_tenant(account, None, "test").unwrap();
            cp.call(
                account,
                "test",
                "CreateUser",
                &serde_json::json!({"UserName": "alice"}),
            )
            .unwrap();
        }
        // Only tenant A's user has an access key.
        cp.call(
            a,
            "test",
            "CreateAccessKey",
            &serde_json::json!({"UserName": "alice"}),
        )
        .unwrap();
        let (before, days) = shipped_days(&cp, a);
        assert_eq!(days, ["20261203", "20261204"]);
        let subscription = super::super::watch::Subscription::try_new(None, vec!["*".into()]);
        let mut stream = super::super::watch::WatchState::new(
            subscription.unwrap(),
            cp.tenants()
                .iter()
                .map(|(t, v)| (t.account_id.clone(), *v))
                .collect(),
        );
        // Nothing is due the same day, nor within the grace after midnight.
        for at in [noon + 3_600, midnight + 60] {
            ROLL_CLOCK.store(at, Ordering::Relaxed);
            assert_eq!(cp.roll_sidecar_keys(), 0);
        }
        assert!(stream.delta(&cp.shipped_tenants(), false).is_empty());
        // After it, tenant A rolls once (tenant B has no access key and stays).
        ROLL_CLOCK.store(midnight + 600, Ordering::Relaxed);
        let b_version = cp.tenant(b).unwrap().1;
        assert_eq!(cp.roll_sidecar_keys(), 1);
        assert_eq!(cp.roll_sidecar_keys(), 0);
        assert_eq!(cp.tenant(b).unwrap().1, b_version);
        let (after, days) = shipped_days(&cp, a);
        assert!(after > before);
        assert_eq!(days, ["20261204", "20261205"]);
        // The stream sends the rolled tenant, as a change.
        let chunks = stream.delta(&cp.shipped_tenants(), false);
        let sent: Vec<&str> = chunks
            .iter()
            .flat_map(|c| &c.tenants)
            .map(|t| t.account_id.as_str())
            .collect();
        assert_eq!(sent, [a]);
        let trail = cp.changes(a, before.seq, 10).unwrap();
        assert_eq!(trail.len(), 1);
        assert_eq!(trail[0].action, ROLL_ACTION);
    }

    #[test]
    fn a_refused_spec_of_a_new_tenant_leaves_no_tenant_behind() {
        let store = SqliteStore::open_in_memory().unwrap();
        let cp = ControlPlane::open(Arc::new(store), IdGenerator::seeded(1)).unwrap();
        // A policy over the 6,144-character quota: the plan's first step is refused.
        let statements: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket-{i}/*"}}"#))
            .collect();
        let spec: TenantSpec = serde_json::from_value(serde_json::json!({
            "AccountId": "111122223333",
            "ManagedPolicies": [{"PolicyName": "big", "PolicyDocument":
                format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(","))}],
            "Users": [{"UserName": "alice"}],
        }))
        .unwrap();
        let refused = cp.apply_spec(&spec, "test", false).unwrap_err();
        assert_eq!(
            refused.code(),
            crate::error::AwsCode::InvalidTenantSpec,
            "{refused}"
        );
        assert!(refused.to_string().contains("LimitExceeded"), "{refused}");
        assert!(
            cp.tenant("111122223333").is_none(),
            "an empty tenant was left"
        );
        assert!(cp.list_tenants().is_empty());
    }

    #[test]
    fn password_work_is_done_without_the_write_lock() {
        let store = SqliteStore::open_in_memory().unwrap();
        let cp = Arc::new(
            ControlPlane::open(Arc::new(store), IdGenerator::seeded(1))
                .unwrap()
                .with_password_hasher(PasswordHasher::with_iterations(10)),
        );
        for account in ["111122223333", "444455556666"] {
            cp.create_tenant(account, None, "test").unwrap();
        }
        let call =
            |action: &str, params: Value| cp.call("111122223333", "test", action, &params).unwrap();
        call("CreateUser", serde_json::json!({"UserName": "alice"}));
        call(
            "UpdateAccountPasswordPolicy",
            serde_json::json!({"PasswordReusePrevention": 24}),
        );
        call(
            "CreateLoginProfile",
            serde_json::json!({"UserName": "alice", "Password": "Correct-Horse-1"}),
        );
        // The first check is the run ahead's: another tenant's write must get through while
        // it runs, which it could not if the run held the lock (the lock is not re-entrant,
        // so a held lock shows as a write that never finishes).
        let checks = std::sync::atomic::AtomicUsize::new(0);
        let check = |_: &Tenant, _: &str, _: &Value| {
            if checks.fetch_add(1, Ordering::SeqCst) == 0 {
                let (done, finished) = std::sync::mpsc::channel();
                let other = Arc::clone(&cp);
                std::thread::spawn(move || {
                    let created = other.call(
                        "444455556666",
                        "test",
                        "CreateUser",
                        &serde_json::json!({"UserName": "bob"}),
                    );
                    let _ = done.send(created.is_ok());
                });
                let created = finished.recv_timeout(Duration::from_secs(30));
                assert_eq!(
                    created,
                    Ok(true),
                    "the write lock was held during the run ahead"
                );
            }
            Ok(())
        };
        let params = serde_json::json!({"UserName": "alice", "Password": "Battery-Staple-2"});
        cp.call_checked(
            "111122223333",
            "test",
            "UpdateLoginProfile",
            &params,
            &check,
        )
        .unwrap();
        assert_eq!(
            checks.load(Ordering::SeqCst),
            2,
            "ahead, then under the lock"
        );
        assert!(cp
            .tenant("444455556666")
            .unwrap()
            .0
            .users
            .contains_key("bob"));
        // The outcome is the lock's: reuse prevention still refuses an earlier password.
        let reused = cp
            .call(
                "111122223333",
                "test",
                "UpdateLoginProfile",
                &serde_json::json!({"UserName": "alice", "Password": "Correct-Horse-1"}),
            )
            .unwrap_err();
        assert_eq!(
            reused.code(),
            crate::error::AwsCode::PasswordPolicyViolation
        );
    }

    /// Two replicas on one SQLite file (the store's other writer is another handle).
    fn replicas(
        name: &str,
        wrap: impl Fn(SqliteStore) -> Arc<dyn TenantStore>,
    ) -> (Arc<ControlPlane>, Arc<ControlPlane>) {
        let dir = std::env::temp_dir().join(format!("iamlet-follow-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("iamlet.db");
        let a = SqliteStore::open(&path, None).unwrap();
        let b = SqliteStore::open(&path, None).unwrap();
        let hasher = PasswordHasher::with_iterations(1);
        let a = ControlPlane::open(Arc::new(a), IdGenerator::seeded(1)).unwrap();
        let b = ControlPlane::open(wrap(b), IdGenerator::seeded(2)).unwrap();
        (
            Arc::new(a.with_password_hasher(hasher.clone())),
            Arc::new(b.with_password_hasher(hasher)),
        )
    }

    /// Waits up to `within` for `check`; the time it took.
    fn within(within: Duration, check: impl Fn() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            if check() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn has_user(cp: &ControlPlane, user: &str) -> bool {
        cp.tenant("111122223333")
            .is_some_and(|(t, _)| t.users.values().any(|u| u.name == user))
    }

    /// A store whose change notices the test sends (or never sends).
    struct Notified {
        inner: SqliteStore,
        feed: Mutex<Option<ChangeFeed>>,
    }

    impl crate::control_plane::AuthFailureLog for Notified {
        fn record_auth_failure(&self, s: &str, n: i64, w: i64) -> Result<u32, StoreError> {
            self.inner.record_auth_failure(s, n, w)
        }
        fn auth_failures(&self, s: &str, n: i64, w: i64) -> Result<u32, StoreError> {
            self.inner.auth_failures(s, n, w)
        }
    }

    impl crate::control_plane::UsageLog for Notified {
        fn record_usage(&self, b: &crate::control_plane::UsageBatch) -> Result<(), StoreError> {
            self.inner.record_usage(b)
        }
        fn usage(&self, a: &str) -> Result<crate::control_plane::UsageBatch, StoreError> {
            self.inner.usage(a)
        }
    }

    impl crate::control_plane::TrailLog for Notified {
        fn record_trail(
            &self,
            e: &[crate::control_plane::TrailRecord],
        ) -> Result<usize, StoreError> {
            self.inner.record_trail(e)
        }
        fn trail(
            &self,
            a: &str,
            s: i64,
            e: i64,
            l: usize,
        ) -> Result<Vec<crate::control_plane::TrailRecord>, StoreError> {
            self.inner.trail(a, s, e, l)
        }
    }

    impl TenantStore for Notified {
        fn load_tenants(&self) -> Result<Vec<crate::control_plane::StoredTenant>, StoreError> {
            self.inner.load_tenants()
        }
        fn load_tenant(
            &self,
            account_id: &str,
        ) -> Result<Option<crate::control_plane::StoredTenant>, StoreError> {
            self.inner.load_tenant(account_id)
        }
        fn commit(
            &self,
            change: &ChangeDraft,
            prior: Prior,
            after: Option<&Tenant>,
        ) -> Result<ChangeRecord, StoreError> {
            self.inner.commit(change, prior, after)
        }
        fn changes(&self, a: &str, s: u64, l: usize) -> Result<Vec<ChangeRecord>, StoreError> {
            self.inner.changes(a, s, l)
        }
        fn epoch(&self) -> u64 {
            self.inner.epoch()
        }
        fn store_id(&self) -> &str {
            self.inner.store_id()
        }
        fn record_event(&self, event: &AuditEvent) -> Result<u64, StoreError> {
            self.inner.record_event(event)
        }
        fn events(&self, a: &str, i: u64, l: usize) -> Result<Vec<AuditEvent>, StoreError> {
            self.inner.events(a, i, l)
        }
        fn tenant_seqs(&self) -> Result<Vec<crate::control_plane::TenantSeq>, StoreError> {
            self.inner.tenant_seqs()
        }
        fn watch_changes(&self) -> Option<ChangeFeed> {
            self.feed.lock().take()
        }
    }

    #[test]
    fn a_write_through_one_replica_reaches_the_other_by_notice_without_a_write_there() {
        let (sender, feed) = ChangeFeed::channel();
        let feed = Mutex::new(Some(feed));
        let (a, b) = replicas("notice", move |inner| {
            Arc::new(Notified {
                inner,
                feed: Mutex::new(feed.lock().take()),
            })
        });
        // A poll far away: only the notice can bring the change in time.
        let follower = b.follow(Duration::from_secs(600));
        let mut woken = b.subscribe();
        woken.mark_unchanged();

        let version = a.create_tenant("111122223333", None, "test").unwrap();
        a.call(
            "111122223333",
            "test",
            "CreateUser",
            &serde_json::json!({"UserName": "alice"}),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            b.tenant("111122223333").is_none(),
            "seen without a notice or poll"
        );
        assert!(!woken.has_changed().unwrap());

        assert!(sender.send(FeedEvent::Change(ChangeNotice {
            account_id: "111122223333".into(),
            seq: version.seq + 1,
        })));
        let took = within(Duration::from_secs(1), || has_user(&b, "alice"));
        assert!(
            took.is_some(),
            "the notice did not bring the change within 1 s"
        );
        assert!(
            woken.has_changed().unwrap(),
            "b's sync streams were not woken"
        );
        assert_eq!(
            b.tenant("111122223333").unwrap().1,
            a.tenant("111122223333").unwrap().1
        );

        // A notice of a change b already holds reloads nothing.
        assert!(!b
            .take_notice(&ChangeNotice {
                account_id: "111122223333".into(),
                seq: version.seq,
            })
            .unwrap());

        // A deletion through a removes the tenant from b.
        a.delete_tenant("111122223333", "test").unwrap();
        assert!(sender.send(FeedEvent::Change(ChangeNotice {
            account_id: "111122223333".into(),
            seq: version.seq + 2,
        })));
        assert!(within(Duration::from_secs(1), || b
            .tenant("111122223333")
            .is_none())
        .is_some());
        follower.stop();
    }

    #[test]
    fn with_notices_lost_the_catch_up_poll_brings_the_change_within_its_interval() {
        // A feed that never yields: its sender is kept but never used.
        let (_silent, feed) = ChangeFeed::channel();
        let feed = Mutex::new(Some(feed));
        let (a, b) = replicas("poll", move |inner| {
            Arc::new(Notified {
                inner,
                feed: Mutex::new(feed.lock().take()),
            })
        });
        let interval = Duration::from_millis(300);
        let follower = b.follow(interval);
        a.create_tenant("111122223333", None, "test").unwrap();
        a.call(
            "111122223333",
            "test",
            "CreateUser",
            &serde_json::json!({"UserName": "bob"}),
        )
        .unwrap();
        let took = within(Duration::from_secs(2), || has_user(&b, "bob"))
            .expect("the poll did not bring the change");
        // One interval, and the time of one poll.
        assert!(
            took <= interval + Duration::from_millis(250),
            "took {took:?}"
        );
        a.delete_tenant("111122223333", "test").unwrap();
        assert!(within(Duration::from_secs(2), || b
            .tenant("111122223333")
            .is_none())
        .is_some());
        follower.stop();
    }

    #[test]
    fn a_store_without_notices_is_polled_and_a_reconnected_feed_polls_at_once() {
        // SQLite has no notices: following polls.
        let (a, b) = replicas("sqlite", |inner| {
            assert!(inner.watch_changes().is_none());
            Arc::new(inner)
        });
        let follower = b.follow(Duration::from_millis(100));
        a.create_tenant("111122223333", None, "test").unwrap();
        assert!(within(Duration::from_secs(1), || b
            .tenant("111122223333")
            .is_some())
        .is_some());
        follower.stop();

        // A feed that says it listens again makes the follower poll right away.
        let (sender, feed) = ChangeFeed::channel();
        let feed = Mutex::new(Some(feed));
        let (a, b) = replicas("relisten", move |inner| {
            Arc::new(Notified {
                inner,
                feed: Mutex::new(feed.lock().take()),
            })
        });
        let follower = b.follow(Duration::from_secs(600));
        a.create_tenant("111122223333", None, "test").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(b.tenant("111122223333").is_none());
        assert!(sender.send(FeedEvent::Listening));
        assert!(within(Duration::from_secs(1), || b
            .tenant("111122223333")
            .is_some())
        .is_some());
        follower.stop();
    }

    #[test]
    fn published_versions_never_go_backwards() {
        let (a, b) = replicas("backwards", |inner| Arc::new(inner));
        a.create_tenant("111122223333", None, "test").unwrap();
        assert_eq!(b.catch_up().unwrap(), 1);
        let held = b.tenant("111122223333").unwrap().1;
        // Nothing moved: nothing reloads, and a notice of an older change changes nothing.
        assert_eq!(b.catch_up().unwrap(), 0);
        let mut woken = b.subscribe();
        woken.mark_unchanged();
        assert!(!b
            .take_notice(&ChangeNotice {
                account_id: "111122223333".into(),
                seq: 0,
            })
            .unwrap());
        assert_eq!(b.tenant("111122223333").unwrap().1, held);
        assert!(!woken.has_changed().unwrap());
        // A notice ahead of the store (a reader that raced the commit) leaves b as it is.
        b.take_notice(&ChangeNotice {
            account_id: "111122223333".into(),
            seq: 99,
        })
        .unwrap();
        assert_eq!(b.tenant("111122223333").unwrap().1, held);
    }
}
