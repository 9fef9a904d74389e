//! One suite for every store: each test below takes a [`TestDb`] (a database, and a way to
//! open handles on it) and runs for SQLite in `cargo test`, and for PostgreSQL when
//! `IAMLET_TEST_POSTGRES_URL` is set (`tests/ha/run.sh`; the PostgreSQL variants are ignored
//! otherwise, and fail rather than pass when run without the variable).

use super::*;
use std::sync::Arc;

fn draft(account: &str, action: &str) -> ChangeDraft {
    ChangeDraft {
        account_id: account.into(),
        actor: "operator:test".into(),
        action: action.into(),
        parameters: serde_json::json!({"UserName": "alice", "Password": "<redacted>"}),
        at: 1_700_000_000,
    }
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("iamlet-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("iamlet.db")
}

/// A database under test.
trait TestDb {
    /// A new handle on the database (several may be open at once: replicas).
    fn open(&self, epoch: Option<u64>) -> Arc<dyn TenantStore>;
    /// The same, sealing secrets with `sealer`.
    fn open_sealed(&self, sealer: SecretSealer) -> Arc<dyn TenantStore>;
    /// The tenant's state column as stored.
    fn raw_state(&self, account: &str) -> String;
    /// Overwrites every tenant's state with text that does not decode.
    fn break_states(&self);
    /// Where the database is, for `migrate-store`.
    fn location(&self) -> StoreLocation;
    /// A handle that reads and writes the database whole.
    fn open_copy(&self) -> Box<dyn migrate::StoreCopy>;
    /// Runs SQL on the database, behind the store's back.
    fn execute(&self, sql: &str);
}

/// SQLite: a file in a fresh temporary directory.
struct SqliteDb(std::path::PathBuf);

impl SqliteDb {
    fn new(name: &str) -> Self {
        Self(temp_db(&format!("suite-{name}")))
    }
}

impl TestDb for SqliteDb {
    fn open(&self, epoch: Option<u64>) -> Arc<dyn TenantStore> {
        Arc::new(SqliteStore::open(&self.0, epoch).unwrap())
    }
    fn open_sealed(&self, sealer: SecretSealer) -> Arc<dyn TenantStore> {
        Arc::new(
            SqliteStore::open(&self.0, None)
                .unwrap()
                .with_sealer(sealer),
        )
    }
    fn raw_state(&self, account: &str) -> String {
        Connection::open(&self.0)
            .unwrap()
            .query_row(
                "SELECT state FROM tenants WHERE account_id = ?1",
                [account],
                |r| r.get(0),
            )
            .unwrap()
    }
    fn break_states(&self) {
        Connection::open(&self.0)
            .unwrap()
            .execute("UPDATE tenants SET state = '{broken'", [])
            .unwrap();
    }
    fn location(&self) -> StoreLocation {
        StoreLocation::DataDir(self.0.parent().unwrap().to_owned())
    }
    fn open_copy(&self) -> Box<dyn migrate::StoreCopy> {
        Box::new(SqliteStore::open(&self.0, None).unwrap())
    }
    fn execute(&self, sql: &str) {
        Connection::open(&self.0)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

/// PostgreSQL: a schema of its own (dropped and made again) in the database
/// `IAMLET_TEST_POSTGRES_URL` names.
struct PgDb {
    url: String,
    schema: String,
}

impl PgDb {
    fn new(name: &str) -> Self {
        let url = std::env::var("IAMLET_TEST_POSTGRES_URL").expect(
            "IAMLET_TEST_POSTGRES_URL must name a PostgreSQL database: tests/ha/run.sh sets it",
        );
        let schema = format!("t_{name}");
        let db = Self { url, schema };
        db.client()
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
                db.schema
            ))
            .unwrap();
        db
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: Some(self.schema.clone()),
            pool_size: 2,
            ..PostgresOptions::new(self.url.clone())
        }
    }

    fn client(&self) -> ::postgres::Client {
        let mut client = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("SET search_path = {}", self.schema))
            .unwrap();
        client
    }
}

impl TestDb for PgDb {
    fn open(&self, epoch: Option<u64>) -> Arc<dyn TenantStore> {
        Arc::new(
            PostgresStore::open(&PostgresOptions {
                epoch,
                ..self.options()
            })
            .unwrap(),
        )
    }
    fn open_sealed(&self, sealer: SecretSealer) -> Arc<dyn TenantStore> {
        Arc::new(
            PostgresStore::open(&self.options())
                .unwrap()
                .with_sealer(sealer),
        )
    }
    fn raw_state(&self, account: &str) -> String {
        self.client()
            .query_one(
                "SELECT state FROM tenants WHERE account_id = $1",
                &[&account],
            )
            .unwrap()
            .get(0)
    }
    fn break_states(&self) {
        self.client()
            .execute("UPDATE tenants SET state = '{broken'", &[])
            .unwrap();
    }
    fn location(&self) -> StoreLocation {
        StoreLocation::Postgres(self.options())
    }
    fn open_copy(&self) -> Box<dyn migrate::StoreCopy> {
        Box::new(PostgresStore::open(&self.options()).unwrap())
    }
    fn execute(&self, sql: &str) {
        self.client().batch_execute(sql).unwrap();
    }
}

/// Instantiates each generic test for SQLite and PostgreSQL.
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::SqliteDb::new(stringify!($name))); } )*
        }
        mod postgres {
            $(
                #[test]
                #[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
                fn $name() { super::$name(&super::PgDb::new(stringify!($name))); }
            )*
        }
    };
}

store_suite!(
    changes_are_numbered_per_tenant_and_listed_in_order,
    state_and_versions_survive_a_reopen_and_deleted_tenants_stay_deleted,
    the_epoch_only_rises,
    the_identity_and_epoch_survive_a_reopen_and_a_new_database_gets_new_ones,
    a_stale_prior_is_a_conflict_and_records_nothing,
    a_tenant_made_again_after_its_deletion_goes_on_numbering,
    secrets_are_sealed_at_rest_and_opened_on_load,
    audit_events_are_numbered_and_listed_per_tenant,
    two_control_planes_writing_one_tenant_both_land_in_order,
    a_tenant_that_does_not_decode_is_a_load_failure,
    tenant_seqs_list_every_tenant_live_or_deleted,
    usage_merges_by_the_latest_time_and_a_resend_changes_nothing,
    usage_is_kept_per_tenant_creates_no_version_and_goes_with_the_tenant,
    trail_events_are_kept_once_per_id_and_read_newest_first_in_a_range,
);

fn usage_report(account: &str, at: i64, region: &str) -> UsageBatch {
    UsageBatch {
        account_id: account.into(),
        access_keys: vec![KeyUsage {
            access_key_id: "AKIAEXAMPLEKEY0001".into(),
            last_used: at,
            service: "s3".into(),
            region: region.into(),
        }],
        services: vec![ServiceUsage {
            principal_arn: format!("arn:aws:iam::{account}:user/alice"),
            service: "s3".into(),
            last_authenticated: at,
            region: region.into(),
            actions: vec![ActionUsage {
                action: "GetObject".into(),
                last_accessed: at,
                region: region.into(),
            }],
        }],
        roles: vec![RoleUsage {
            role_arn: format!("arn:aws:iam::{account}:role/app"),
            last_used: at,
            region: region.into(),
        }],
    }
}

fn trail_event(account: &str, id: &str, at_ms: i64) -> TrailRecord {
    TrailRecord {
        account_id: account.into(),
        event_id: id.into(),
        at_ms,
        record: format!(r#"{{"eventID":"{id}"}}"#),
    }
}

fn trail_events_are_kept_once_per_id_and_read_newest_first_in_a_range(db: &dyn TestDb) {
    let store = db.open(None);
    const A: &str = "111122223333";
    assert!(store.trail(A, 0, i64::MAX, 10).unwrap().is_empty());
    let events = [
        trail_event(A, "e-1", 1_000),
        trail_event(A, "e-2", 2_000),
        trail_event(A, "e-3", 3_000),
        trail_event("444455556666", "e-1", 2_000),
    ];
    assert_eq!(store.record_trail(&events).unwrap(), 4);
    // A resend (the same id, whatever else it says) is ignored; a new id in it is not.
    let mut resent = trail_event(A, "e-2", 9_000);
    resent.record = "{}".into();
    assert_eq!(
        store
            .record_trail(&[resent, trail_event(A, "e-4", 4_000)])
            .unwrap(),
        1
    );
    let ids = |records: Vec<TrailRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.event_id).collect()
    };
    // Another handle (a replica) reads the same: newest first, the range inclusive.
    let replica = db.open(None);
    assert_eq!(
        ids(replica.trail(A, 0, i64::MAX, 10).unwrap()),
        ["e-4", "e-3", "e-2", "e-1"]
    );
    assert_eq!(
        ids(replica.trail(A, 2_000, 3_000, 10).unwrap()),
        ["e-3", "e-2"]
    );
    assert_eq!(
        ids(replica.trail(A, 0, i64::MAX, 2).unwrap()),
        ["e-4", "e-3"]
    );
    let kept = replica.trail(A, 2_000, 2_000, 10).unwrap();
    assert_eq!(kept, [trail_event(A, "e-2", 2_000)]);
}

fn usage_merges_by_the_latest_time_and_a_resend_changes_nothing(db: &dyn TestDb) {
    let store = db.open(None);
    assert_eq!(
        store.usage("111122223333").unwrap(),
        UsageBatch {
            account_id: "111122223333".into(),
            ..UsageBatch::default()
        }
    );
    let newer = usage_report("111122223333", 2_000, "eu-west-1");
    store.record_usage(&newer).unwrap();
    assert_eq!(store.usage("111122223333").unwrap(), newer);
    // A resend, and an older report from another sidecar, change nothing.
    store.record_usage(&newer).unwrap();
    store
        .record_usage(&usage_report("111122223333", 1_000, "us-east-1"))
        .unwrap();
    assert_eq!(store.usage("111122223333").unwrap(), newer);
    // A later one wins whole: its time and its region.
    let latest = usage_report("111122223333", 3_000, "ap-south-1");
    store.record_usage(&latest).unwrap();
    // Another handle (a replica) reads the same.
    assert_eq!(db.open(None).usage("111122223333").unwrap(), latest);
    // Rows merge one by one: a report of one action leaves the rest.
    let mut one = UsageBatch {
        account_id: "111122223333".into(),
        ..UsageBatch::default()
    };
    let mut put = usage_report("111122223333", 4_000, "ap-south-1").services;
    if let Some(s) = put.first_mut() {
        s.actions.push(ActionUsage {
            action: "PutObject".into(),
            last_accessed: 4_000,
            region: "ap-south-1".into(),
        });
    }
    one.services = put;
    store.record_usage(&one).unwrap();
    let merged = store.usage("111122223333").unwrap();
    assert_eq!(merged.access_keys, latest.access_keys);
    assert_eq!(merged.services.len(), 1);
    let actions: Vec<(&str, i64)> = merged.services[0]
        .actions
        .iter()
        .map(|a| (a.action.as_str(), a.last_accessed))
        .collect();
    assert_eq!(actions, [("GetObject", 4_000), ("PutObject", 4_000)]);
}

fn usage_is_kept_per_tenant_creates_no_version_and_goes_with_the_tenant(db: &dyn TestDb) {
    let store = db.open(None);
    let tenant = Tenant::new("111122223333", 0);
    let created = commit(
        &*store,
        "111122223333",
        "CreateTenant",
        Prior::Absent,
        Some(&tenant),
    );
    store
        .record_usage(&usage_report("111122223333", 2_000, "eu-west-1"))
        .unwrap();
    store
        .record_usage(&usage_report("444455556666", 2_500, "eu-west-1"))
        .unwrap();
    assert_eq!(
        store.usage("444455556666").unwrap(),
        usage_report("444455556666", 2_500, "eu-west-1")
    );
    // Usage is not a change: no entry in the trail, no new version.
    assert_eq!(store.changes("111122223333", 0, 10).unwrap().len(), 1);
    let seqs = store.tenant_seqs().unwrap();
    assert_eq!(seqs.first().map(|s| s.seq), Some(created));
    // A deleted tenant's usage goes with it; another tenant's stays.
    commit(
        &*store,
        "111122223333",
        "DeleteTenant",
        Prior::At(created),
        None,
    );
    assert!(store.usage("111122223333").unwrap().access_keys.is_empty());
    assert_eq!(store.usage("444455556666").unwrap().roles.len(), 1);
}

fn commit(
    store: &dyn TenantStore,
    account: &str,
    action: &str,
    prior: Prior,
    t: Option<&Tenant>,
) -> u64 {
    store.commit(&draft(account, action), prior, t).unwrap().seq
}

fn changes_are_numbered_per_tenant_and_listed_in_order(db: &dyn TestDb) {
    let store = db.open(None);
    let a = Tenant::new("111122223333", 0);
    let b = Tenant::new("444455556666", 0);
    assert_eq!(
        commit(
            &*store,
            "111122223333",
            "CreateTenant",
            Prior::Absent,
            Some(&a)
        ),
        1
    );
    assert_eq!(
        commit(
            &*store,
            "111122223333",
            "CreateUser",
            Prior::At(1),
            Some(&a)
        ),
        2
    );
    assert_eq!(
        commit(
            &*store,
            "444455556666",
            "CreateTenant",
            Prior::Absent,
            Some(&b)
        ),
        1
    );
    let log = store.changes("111122223333", 0, 10).unwrap();
    assert_eq!(
        log.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(),
        ["CreateTenant", "CreateUser"]
    );
    assert_eq!(log[1].actor, "operator:test");
    assert_eq!(log[1].parameters["Password"], "<redacted>");
    assert_eq!(store.changes("111122223333", 1, 10).unwrap().len(), 1);
    assert_eq!(store.changes("111122223333", 0, 1).unwrap().len(), 1);
    assert!(store.changes("999999999999", 0, 10).unwrap().is_empty());
}

fn state_and_versions_survive_a_reopen_and_deleted_tenants_stay_deleted(db: &dyn TestDb) {
    {
        let store = db.open(None);
        let mut t = Tenant::new("111122223333", 0);
        commit(
            &*store,
            "111122223333",
            "CreateTenant",
            Prior::Absent,
            Some(&t),
        );
        t.alias = Some("demo".into());
        commit(
            &*store,
            "111122223333",
            "CreateAccountAlias",
            Prior::At(1),
            Some(&t),
        );
        let gone = Tenant::new("444455556666", 0);
        commit(
            &*store,
            "444455556666",
            "CreateTenant",
            Prior::Absent,
            Some(&gone),
        );
        commit(&*store, "444455556666", "DeleteTenant", Prior::At(1), None);
    }
    let store = db.open(None);
    let tenants = store.load_tenants().unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].tenant.alias.as_deref(), Some("demo"));
    assert_eq!(tenants[0].version, SnapshotVersion::new(store.epoch(), 2));
    let one = store.load_tenant("111122223333").unwrap().unwrap();
    assert_eq!(one, tenants[0]);
    assert!(store.load_tenant("444455556666").unwrap().is_none());
    assert!(store.load_tenant("999999999999").unwrap().is_none());
    // The audit trail of a deleted tenant is kept.
    assert_eq!(store.changes("444455556666", 0, 10).unwrap().len(), 2);
}

fn the_epoch_only_rises(db: &dyn TestDb) {
    let first = db.open(None).epoch();
    assert_eq!(db.open(None).epoch(), first);
    assert_eq!(db.open(Some(first + 3)).epoch(), first + 3);
    assert_eq!(db.open(Some(first + 2)).epoch(), first + 3);
    assert_eq!(db.open(None).epoch(), first + 3);
}

fn the_identity_and_epoch_survive_a_reopen_and_a_new_database_gets_new_ones(db: &dyn TestDb) {
    let (id, epoch) = {
        let s = db.open(None);
        (s.store_id().to_owned(), s.epoch())
    };
    assert_eq!(id.len(), 32);
    assert!(epoch > 1, "{epoch}");
    let again = db.open(None);
    assert_eq!((again.store_id(), again.epoch()), (id.as_str(), epoch));
    // Two handles at once (two replicas) serve the same identity.
    let other = db.open(None);
    assert_eq!(other.store_id(), again.store_id());
    let fresh = SqliteStore::open_in_memory().unwrap();
    assert_ne!(fresh.store_id(), id);
}

fn a_stale_prior_is_a_conflict_and_records_nothing(db: &dyn TestDb) {
    let (one, two) = (db.open(None), db.open(None));
    let t = Tenant::new("111122223333", 0);
    assert_eq!(
        commit(
            &*one,
            "111122223333",
            "CreateTenant",
            Prior::Absent,
            Some(&t)
        ),
        1
    );
    // The other replica creates it too, unaware: refused.
    let error = two
        .commit(
            &draft("111122223333", "CreateTenant"),
            Prior::Absent,
            Some(&t),
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                expected: Prior::Absent,
                found: Prior::At(1),
                ..
            }
        ),
        "{error}"
    );
    assert!(error.is_retryable());
    assert_eq!(error.code(), AwsCode::ConcurrentModification);
    assert_eq!(
        commit(&*one, "111122223333", "CreateUser", Prior::At(1), Some(&t)),
        2
    );
    // A change built on version 1 while the store holds 2.
    let error = two
        .commit(
            &draft("111122223333", "CreateGroup"),
            Prior::At(1),
            Some(&t),
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                expected: Prior::At(1),
                found: Prior::At(2),
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("111122223333"), "{error}");
    // Nothing of the refused ones was recorded; built on 2, it lands as 3.
    let log = two.changes("111122223333", 0, 10).unwrap();
    assert_eq!(
        log.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(),
        ["CreateTenant", "CreateUser"]
    );
    assert_eq!(
        commit(&*two, "111122223333", "CreateGroup", Prior::At(2), Some(&t)),
        3
    );
    // A change to a tenant that is not there.
    let error = one
        .commit(&draft("444455556666", "CreateUser"), Prior::At(4), Some(&t))
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Conflict {
                found: Prior::Absent,
                ..
            }
        ),
        "{error}"
    );
}

fn a_tenant_made_again_after_its_deletion_goes_on_numbering(db: &dyn TestDb) {
    let store = db.open(None);
    let t = Tenant::new("111122223333", 0);
    commit(
        &*store,
        "111122223333",
        "CreateTenant",
        Prior::Absent,
        Some(&t),
    );
    commit(&*store, "111122223333", "DeleteTenant", Prior::At(1), None);
    // A deleted tenant is absent: a change built on its last version is refused.
    assert!(store
        .commit(&draft("111122223333", "CreateUser"), Prior::At(2), Some(&t))
        .is_err());
    assert_eq!(
        commit(
            &*store,
            "111122223333",
            "CreateTenant",
            Prior::Absent,
            Some(&t)
        ),
        3
    );
    assert_eq!(
        store
            .load_tenant("111122223333")
            .unwrap()
            .unwrap()
            .version
            .seq,
        3
    );
}

fn secrets_are_sealed_at_rest_and_opened_on_load(db: &dyn TestDb) {
    let sealer = || SecretSealer::from_key(&[7; 32]).unwrap();
    let store = db.open_sealed(sealer());
    let mut t = Tenant::new("111122223333", 0);
    let (_, secret) = t
        .create_root_access_key(&mut crate::directory::IdGenerator::seeded(3), 0)
        .unwrap();
    commit(
        &*store,
        "111122223333",
        "CreateTenant",
        Prior::Absent,
        Some(&t),
    );
    let raw = db.raw_state("111122223333");
    assert!(!raw.contains(&secret), "a secret is stored in the clear");
    assert!(raw.contains("sealed:v1:"), "{raw}");
    // Another replica with the same key reads it back whole.
    let loaded = db.open_sealed(sealer()).load_tenants().unwrap();
    assert_eq!(loaded[0].tenant, t);
    // A key that is not the one it was sealed with opens nothing.
    let wrong = db.open_sealed(SecretSealer::from_key(&[8; 32]).unwrap());
    assert!(matches!(wrong.load_tenants(), Err(StoreError::Seal(_))));
}

fn audit_events_are_numbered_and_listed_per_tenant(db: &dyn TestDb) {
    let store = db.open(None);
    let event = |account: &str, outcome: &str| AuditEvent {
        account_id: account.into(),
        id: 0,
        at: 1_700_000_000,
        actor: "arn:aws:iam::111122223333:user/alice".into(),
        action: "CreateUser".into(),
        outcome: outcome.into(),
        root: outcome == "Allowed",
        detail: "AccessDenied: no".into(),
        source: "127.0.0.1".into(),
    };
    let first = store
        .record_event(&event("111122223333", "AccessDenied"))
        .unwrap();
    let other = store
        .record_event(&event("444455556666", "Throttled"))
        .unwrap();
    let second = store
        .record_event(&event("111122223333", "Allowed"))
        .unwrap();
    assert!(first < other && other < second, "{first} {other} {second}");
    let listed = store.events("111122223333", 0, 10).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, first);
    assert_eq!(listed[1].outcome, "Allowed");
    assert!(listed[1].root && !listed[0].root);
    assert_eq!(listed[0].source, "127.0.0.1");
    assert_eq!(store.events("111122223333", first, 10).unwrap().len(), 1);
    assert_eq!(store.events("111122223333", 0, 1).unwrap().len(), 1);
}

fn two_control_planes_writing_one_tenant_both_land_in_order(db: &dyn TestDb) {
    use crate::control_plane::ControlPlane;
    use crate::directory::{IdGenerator, PasswordHasher};
    let replica = |seed| {
        ControlPlane::open(db.open(None), IdGenerator::seeded(seed))
            .unwrap()
            .with_password_hasher(PasswordHasher::with_iterations(1))
    };
    let a = replica(1);
    let (v1, _) = a
        .create_tenant_with_root("111122223333", None, "test")
        .unwrap();
    let b = replica(2);
    let user = |name: &str| serde_json::json!({ "UserName": name });
    let (_, v2) = a
        .call("111122223333", "test", "CreateUser", &user("alice"))
        .unwrap();
    // B's copy is at v1: its write conflicts, it reloads and writes on v2.
    let (_, v3) = b
        .call("111122223333", "test", "CreateUser", &user("bob"))
        .unwrap();
    assert!(v1 < v2 && v2 < v3, "{v1:?} {v2:?} {v3:?}");
    assert_eq!(v3.seq, 3);
    // A's turn to be stale.
    let (_, v4) = a
        .call("111122223333", "test", "CreateUser", &user("carol"))
        .unwrap();
    assert_eq!(v4.seq, 4);
    // Nothing lost: every user is there, on both replicas and in the store.
    b.reload("111122223333").unwrap();
    for cp in [&a, &b] {
        let (tenant, version) = cp.tenant("111122223333").unwrap();
        assert_eq!(version, v4);
        let mut names: Vec<_> = tenant.users.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["alice", "bob", "carol"]);
    }
    // Creating it again on the stale replica: it learns the tenant exists.
    let c = replica(3);
    a.delete_tenant("111122223333", "test").unwrap();
    assert!(matches!(
        c.call("111122223333", "test", "CreateUser", &user("dave")),
        Err(crate::control_plane::AdminError::NoSuchTenant(_))
    ));
    assert!(c.tenant("111122223333").is_none());
    let log = db.open(None).changes("111122223333", 0, 10).unwrap();
    let seqs: Vec<u64> = log.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // A tenant another replica made after this one loaded: found in the store.
    a.create_tenant("444455556666", None, "test").unwrap();
    let (_, v) = c
        .call("444455556666", "test", "CreateUser", &user("erin"))
        .unwrap();
    assert_eq!(v.seq, 2);
    assert!(matches!(
        c.call("999999999999", "test", "CreateUser", &user("x")),
        Err(crate::control_plane::AdminError::NoSuchTenant(_))
    ));
}

fn a_tenant_that_does_not_decode_is_a_load_failure(db: &dyn TestDb) {
    let store = db.open(None);
    commit(
        &*store,
        "111122223333",
        "CreateTenant",
        Prior::Absent,
        Some(&Tenant::new("111122223333", 0)),
    );
    db.break_states();
    let error = crate::control_plane::ControlPlane::open(
        db.open(None),
        crate::directory::IdGenerator::seeded(1),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("stored tenant `111122223333` does not decode"),
        "{text}"
    );
    assert!(!text.contains("could not be stored"), "{text}");
    assert!(matches!(
        db.open(None).load_tenant("111122223333"),
        Err(StoreError::Corrupt { .. })
    ));
}

// === PostgreSQL only: migrations, URLs, an unreachable server ===

#[test]
#[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
fn postgres_migrations_apply_once_and_a_newer_schema_is_refused() {
    let db = PgDb::new("migrations");
    let report = PostgresStore::migrate(&db.options()).unwrap();
    assert_eq!(
        report,
        MigrationReport {
            from: 0,
            to: SCHEMA_VERSION
        }
    );
    // Idempotent: a second run (another replica) finds nothing to do.
    let again = PostgresStore::migrate(&db.options()).unwrap();
    assert_eq!(
        again,
        MigrationReport {
            from: SCHEMA_VERSION,
            to: SCHEMA_VERSION
        }
    );
    let store = PostgresStore::open(&db.options()).unwrap();
    commit(
        &store,
        "111122223333",
        "CreateTenant",
        Prior::Absent,
        Some(&Tenant::new("111122223333", 0)),
    );
    let count: i64 = db
        .client()
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, SCHEMA_VERSION);
    // A later binary migrated the database: this one must not write to it.
    db.client()
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .unwrap();
    for error in [
        PostgresStore::open(&db.options()).unwrap_err(),
        PostgresStore::migrate(&db.options()).unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(matches!(error, StoreError::SchemaTooNew { .. }), "{text}");
        assert!(
            text.contains(&format!("version {}", SCHEMA_VERSION + 1))
                && text.contains(&format!("binary's {SCHEMA_VERSION}")),
            "{text}"
        );
    }
    // The data is untouched.
    assert_eq!(store.load_tenants().unwrap().len(), 1);
}

#[test]
#[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
fn postgres_replicas_writing_one_tenant_concurrently_lose_nothing() {
    use crate::control_plane::ControlPlane;
    use crate::directory::{IdGenerator, PasswordHasher};
    let db = PgDb::new("concurrent");
    let replicas: Vec<Arc<ControlPlane>> = (0..3)
        .map(|seed| {
            Arc::new(
                ControlPlane::open(db.open(None), IdGenerator::seeded(seed))
                    .unwrap()
                    .with_password_hasher(PasswordHasher::with_iterations(1)),
            )
        })
        .collect();
    replicas[0]
        .create_tenant("111122223333", None, "test")
        .unwrap();
    for cp in &replicas[1..] {
        cp.reload("111122223333").unwrap();
    }
    let threads: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(r, cp)| {
            let cp = Arc::clone(cp);
            std::thread::spawn(move || {
                let mut versions = Vec::new();
                for i in 0..10 {
                    let name = format!("user-{r}-{i}");
                    let (_, v) = cp
                        .call(
                            "111122223333",
                            "test",
                            "CreateUser",
                            &serde_json::json!({ "UserName": name }),
                        )
                        .unwrap();
                    versions.push(v.seq);
                }
                versions
            })
        })
        .collect();
    let mut all: Vec<u64> = Vec::new();
    for t in threads {
        let versions = t.join().unwrap();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        all.extend(versions);
    }
    all.sort_unstable();
    // 30 writes, 30 distinct versions after the creation: none lost, none duplicated.
    assert_eq!(all, (2..=31).collect::<Vec<u64>>());
    let stored = db.open(None).load_tenant("111122223333").unwrap().unwrap();
    assert_eq!(stored.tenant.users.len(), 30);
}

fn tenant_seqs_list_every_tenant_live_or_deleted(db: &dyn TestDb) {
    let store = db.open(None);
    assert!(store.tenant_seqs().unwrap().is_empty());
    let a = Tenant::new("111122223333", 0);
    let b = Tenant::new("444455556666", 0);
    commit(
        &*store,
        "111122223333",
        "CreateTenant",
        Prior::Absent,
        Some(&a),
    );
    commit(
        &*store,
        "111122223333",
        "CreateUser",
        Prior::At(1),
        Some(&a),
    );
    commit(
        &*store,
        "444455556666",
        "CreateTenant",
        Prior::Absent,
        Some(&b),
    );
    commit(&*store, "444455556666", "DeleteTenant", Prior::At(1), None);
    let seq = |account: &str, seq: u64, deleted: bool| TenantSeq {
        account_id: account.into(),
        seq,
        deleted,
    };
    assert_eq!(
        store.tenant_seqs().unwrap(),
        vec![seq("111122223333", 2, false), seq("444455556666", 2, true)]
    );
}

/// The next notice on `feed` about `account`, skipping other accounts' (tests running at
/// once share the database's channel); `None` after 10 s.
fn notice_about(feed: &ChangeFeed, account: &str) -> Option<ChangeNotice> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match feed.next_timeout(left) {
            Ok(FeedEvent::Change(notice)) if notice.account_id == account => return Some(notice),
            Ok(_) | Err(FeedIdle::Timeout) => {}
            Err(FeedIdle::Closed) => return None,
        }
    }
    None
}

/// Waits until `feed` listens.
fn listening(feed: &ChangeFeed) {
    assert_eq!(
        feed.next_timeout(std::time::Duration::from_secs(10)),
        Ok(FeedEvent::Listening),
        "the feed did not start listening"
    );
}

#[test]
fn sqlite_has_no_change_feed() {
    assert!(SqliteStore::open_in_memory()
        .unwrap()
        .watch_changes()
        .is_none());
}

#[test]
#[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
fn postgres_a_commit_through_one_handle_is_notified_to_another_and_a_rollback_is_not() {
    let db = PgDb::new("notify");
    let (writer, reader) = (db.open(None), db.open(None));
    let feed = reader
        .watch_changes()
        .expect("PostgreSQL has a change feed");
    listening(&feed);

    // Accounts no other test uses: the channel is the database's, shared by every schema.
    let t = Tenant::new("905550000001", 0);
    commit(
        &*writer,
        "905550000001",
        "CreateTenant",
        Prior::Absent,
        Some(&t),
    );
    commit(
        &*writer,
        "905550000001",
        "CreateUser",
        Prior::At(1),
        Some(&t),
    );
    for seq in [1, 2] {
        assert_eq!(
            notice_about(&feed, "905550000001"),
            Some(ChangeNotice {
                account_id: "905550000001".into(),
                seq
            })
        );
    }

    // A commit whose transaction rolls back after its notice was queued (its change number is
    // taken already, so the insert fails): nothing is delivered.
    let rolled_back = Tenant::new("905550000002", 0);
    db.client()
        .execute(
            "INSERT INTO changes (account_id, seq, at, actor, action, parameters)
             VALUES ('905550000002', 1, 0, 'test', 'Planted', '{}')",
            &[],
        )
        .unwrap();
    let refused = writer
        .commit(
            &draft("905550000002", "CreateTenant"),
            Prior::Absent,
            Some(&rolled_back),
        )
        .unwrap_err();
    assert!(matches!(refused, StoreError::Conflict { .. }), "{refused}");
    // A later commit's notice arrives; none about the rolled-back tenant came before it.
    let t = Tenant::new("905550000003", 0);
    commit(
        &*writer,
        "905550000003",
        "CreateTenant",
        Prior::Absent,
        Some(&t),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = deadline
            .checked_duration_since(std::time::Instant::now())
            .expect("the later commit was not notified");
        if let Ok(FeedEvent::Change(notice)) = feed.next_timeout(left) {
            assert_ne!(
                notice.account_id, "905550000002",
                "a rolled-back commit was notified"
            );
            if notice.account_id == "905550000003" {
                break;
            }
        }
    }
    // A handle's own commits are notified too (the follower skips what it holds).
    let own = writer.watch_changes().unwrap();
    listening(&own);
    commit(
        &*writer,
        "905550000001",
        "CreateUser",
        Prior::At(2),
        Some(&t),
    );
    assert_eq!(notice_about(&own, "905550000001").map(|n| n.seq), Some(3));
}

#[test]
#[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
fn postgres_a_write_through_one_replica_is_seen_by_another_within_a_second() {
    use crate::control_plane::ControlPlane;
    use crate::directory::{IdGenerator, PasswordHasher};
    use std::time::{Duration, Instant};
    let db = PgDb::new("follow");
    let open = |seed| {
        Arc::new(
            ControlPlane::open(db.open(None), IdGenerator::seeded(seed))
                .unwrap()
                .with_password_hasher(PasswordHasher::with_iterations(1)),
        )
    };
    let (a, b) = (open(1), open(2));
    // The poll is far away: only the notice can bring the write within the second.
    let follower = b.follow(Duration::from_secs(600));
    let mut woken = b.subscribe();
    woken.mark_unchanged();
    // The follower listens before the write (its first act is a poll, finding nothing).
    std::thread::sleep(Duration::from_millis(500));
    a.create_tenant("905550000004", None, "test").unwrap();
    let (_, version) = a
        .call(
            "905550000004",
            "test",
            "CreateUser",
            &serde_json::json!({"UserName": "alice"}),
        )
        .unwrap();
    let start = Instant::now();
    let seen = || {
        b.tenant("905550000004")
            .is_some_and(|(t, v)| v == version && t.users.values().any(|u| u.name == "alice"))
    };
    while !seen() && start.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(seen(), "b did not see a's write within 1 s");
    eprintln!(
        "b saw a's write {:?} after it was acknowledged",
        start.elapsed()
    );
    assert!(
        woken.has_changed().unwrap(),
        "b's sync streams were not woken"
    );
    follower.stop();
}

#[test]
fn a_store_url_is_shown_without_its_password() {
    assert_eq!(
        redact_url("postgres://iamlet:s3cret@db:5432/iamlet?sslmode=require"),
        "postgres://iamlet:***@db:5432/iamlet?sslmode=require"
    );
    assert_eq!(
        redact_url("postgresql://db/iamlet?user=a&password=s3cret"),
        "postgresql://db/iamlet?user=a&password=***"
    );
    assert_eq!(redact_url("postgres://a@db/x"), "postgres://a@db/x");
    // Refusals of the URL name it redacted.
    for url in [
        "postgres://iamlet:s3cret@db/iamlet?sslmode=require",
        "postgres://iamlet:s3cret@db/iamlet?sslmode=sometimes",
        "postgres://iamlet:s3cret@db/iamlet?nonsense=1",
        "mysql://iamlet:s3cret@db/iamlet",
    ] {
        let error = PostgresStore::open(&PostgresOptions::new(url)).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StoreError::InvalidUrl { .. }), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("iamlet:***@db"), "{text}");
    }
    let debug = format!(
        "{:?}",
        PostgresOptions {
            password: Some("s3cret".into()),
            ..PostgresOptions::new("postgres://a:s3cret@db/x")
        }
    );
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[test]
fn an_unreachable_database_is_unavailable_and_retryable() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = PostgresStore::open(&PostgresOptions::new(format!(
        "postgres://iamlet:s3cret@127.0.0.1:{port}/iamlet"
    )))
    .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{text}");
    assert!(error.is_retryable());
    assert_eq!(error.code(), AwsCode::ServiceUnavailable);
    assert!(!text.contains("s3cret"), "{text}");
}

fn data_dir(name: &str) -> (std::path::PathBuf, DataDirOptions) {
    let dir = temp_db(name).parent().unwrap().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("secrets.key");
    std::fs::write(&key, b"key").unwrap();
    let options = DataDirOptions {
        initialized_by: vec![key],
        ..DataDirOptions::default()
    };
    (dir, options)
}

fn remove_database(dir: &Path) {
    for name in ["iamlet.db", "iamlet.db-wal", "iamlet.db-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

#[test]
fn item1_an_initialized_data_dir_without_its_database_refuses_to_start() {
    let (dir, options) = data_dir("item1-missing");
    let (id, epoch) = {
        // The first start: nothing there yet but the key made just before.
        let store = SqliteStore::open_data_dir(&dir, &DataDirOptions::default()).unwrap();
        store
            .commit(
                &draft("111122223333", "CreateTenant"),
                Prior::Absent,
                Some(&Tenant::new("111122223333", 0)),
            )
            .unwrap();
        (store.store_id().to_owned(), store.epoch())
    };
    assert_eq!(
        std::fs::read_to_string(dir.join(IDENTITY_FILE))
            .unwrap()
            .trim(),
        id
    );
    // Reopening the same store is fine.
    assert_eq!(
        SqliteStore::open_data_dir(&dir, &options)
            .unwrap()
            .store_id(),
        id
    );

    // Truncated to 0 bytes (and its WAL gone), then missing: refused, with the way out named.
    remove_database(&dir);
    std::fs::write(dir.join("iamlet.db"), b"").unwrap();
    let error = SqliteStore::open_data_dir(&dir, &options).unwrap_err();
    assert!(
        matches!(error, StoreError::MissingDatabase { state: "empty", .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--new-store"), "{error}");
    remove_database(&dir);
    let error = SqliteStore::open_data_dir(&dir, &options).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::MissingDatabase {
                state: "missing",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        !dir.join("iamlet.db").exists(),
        "a refused start creates nothing"
    );
    // The sealing key alone shows the directory was initialized.
    std::fs::remove_file(dir.join(IDENTITY_FILE)).unwrap();
    assert!(SqliteStore::open_data_dir(&dir, &options).is_err());

    // Deliberately: a new store, with a new identity and a new epoch.
    let fresh = SqliteStore::open_data_dir(
        &dir,
        &DataDirOptions {
            new_store: true,
            ..options
        },
    )
    .unwrap();
    assert_ne!(fresh.store_id(), id);
    assert_ne!(fresh.epoch(), epoch);
    assert!(fresh.load_tenants().unwrap().is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.join(IDENTITY_FILE))
            .unwrap()
            .trim(),
        fresh.store_id()
    );
}

#[test]
fn item1_another_stores_database_is_refused() {
    let (dir, options) = data_dir("item1-foreign");
    drop(SqliteStore::open_data_dir(&dir, &DataDirOptions::default()).unwrap());
    let elsewhere = temp_db("item1-foreign-other");
    drop(SqliteStore::open(&elsewhere, None).unwrap());
    remove_database(&dir);
    std::fs::copy(&elsewhere, dir.join("iamlet.db")).unwrap();
    let error = SqliteStore::open_data_dir(&dir, &options).unwrap_err();
    assert!(
        matches!(error, StoreError::ForeignDatabase { .. }),
        "{error}"
    );
}

#[test]
fn a_new_data_dir_starts_without_a_flag() {
    let dir = temp_db("fresh").parent().unwrap().join("new");
    let store = SqliteStore::open_data_dir(&dir, &DataDirOptions::default()).unwrap();
    assert!(dir.join(IDENTITY_FILE).exists());
    drop(store);
}

#[cfg(unix)]
#[test]
fn item10_the_data_dir_and_database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_db("item10-modes").parent().unwrap().join("data");
    let store = SqliteStore::open_data_dir(&dir, &DataDirOptions::default()).unwrap();
    store
        .commit(
            &draft("111122223333", "CreateTenant"),
            Prior::Absent,
            Some(&Tenant::new("111122223333", 0)),
        )
        .unwrap();
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for name in ["iamlet.db", "iamlet.db-wal", IDENTITY_FILE] {
        assert_eq!(mode(name), 0o600, "{name}");
    }
    // A database made 0644 by an older version is narrowed at the next start.
    drop(store);
    std::fs::set_permissions(
        dir.join("iamlet.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    drop(SqliteStore::open_data_dir(&dir, &DataDirOptions::default()).unwrap());
    assert_eq!(mode("iamlet.db"), 0o600);
}

#[test]
fn item10_a_malformed_database_is_a_load_failure_not_a_failed_change() {
    let (dir, options) = data_dir("item10-malformed");
    drop(SqliteStore::open_data_dir(&dir, &DataDirOptions::default()).unwrap());
    remove_database(&dir);
    std::fs::write(dir.join("iamlet.db"), vec![0x5a; 8192]).unwrap();
    let error = SqliteStore::open_data_dir(&dir, &options).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::Unreadable { .. }), "{text}");
    assert!(text.starts_with("cannot load the database"), "{text}");
    assert!(!text.contains("could not be stored"), "{text}");
    // A tenant row that does not decode: a load failure naming the tenant.
    let path = temp_db("item10-row");
    {
        let store = SqliteStore::open(&path, None).unwrap();
        store
            .commit(
                &draft("111122223333", "CreateTenant"),
                Prior::Absent,
                Some(&Tenant::new("111122223333", 0)),
            )
            .unwrap();
        store
            .conn
            .lock()
            .execute("UPDATE tenants SET state = '{broken'", [])
            .unwrap();
    }
    let store = std::sync::Arc::new(SqliteStore::open(&path, None).unwrap());
    let error =
        crate::control_plane::ControlPlane::open(store, crate::directory::IdGenerator::seeded(1))
            .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("stored tenant `111122223333` does not decode"),
        "{text}"
    );
    assert!(!text.contains("could not be stored"), "{text}");
}

// === Failed admin authentications, counted in the database (issue #16, item 4) ===

/// The failure counts, on every store: the same parametrized tests, in a module of their own
/// (the suite's `sqlite` and `postgres` modules are made per module).
mod auth_failures {
    use super::*;

    const T: i64 = 1_790_000_000;
    const WINDOW: i64 = 60;

    /// The rows of `auth_failures`, as stored.
    trait FailureRows {
        fn failure_rows(&self) -> i64;
    }

    impl FailureRows for SqliteDb {
        fn failure_rows(&self) -> i64 {
            Connection::open(&self.0)
                .unwrap()
                .query_row("SELECT count(*) FROM auth_failures", [], |r| r.get(0))
                .unwrap()
        }
    }

    impl FailureRows for PgDb {
        fn failure_rows(&self) -> i64 {
            self.client()
                .query_one("SELECT count(*) FROM auth_failures", &[])
                .unwrap()
                .get(0)
        }
    }

    store_suite!(
        failures_are_counted_per_source_within_a_window_and_a_new_window_starts_over,
        windows_that_ended_are_deleted_when_a_failure_is_recorded,
        two_handles_on_one_database_share_the_failure_counts,
    );

    fn failures_are_counted_per_source_within_a_window_and_a_new_window_starts_over(
        db: &(impl TestDb + FailureRows),
    ) {
        let store = db.open(None);
        let (source, other) = ("10.0.0.7/AKIAEXAMPLE", "10.0.0.8/AKIAEXAMPLE");
        assert_eq!(store.auth_failures(source, T, WINDOW).unwrap(), 0);
        for (i, expected) in [(0, 1), (1, 2), (30, 3)] {
            assert_eq!(
                store.record_auth_failure(source, T + i, WINDOW).unwrap(),
                expected
            );
        }
        // The window started at the first failure: live until its last second.
        assert_eq!(store.auth_failures(source, T + 59, WINDOW).unwrap(), 3);
        assert_eq!(store.auth_failures(other, T + 59, WINDOW).unwrap(), 0);
        // It ended: nothing counts, and the next failure starts a new window, from one.
        assert_eq!(store.auth_failures(source, T + 60, WINDOW).unwrap(), 0);
        assert_eq!(
            store.record_auth_failure(source, T + 70, WINDOW).unwrap(),
            1
        );
        assert_eq!(
            store.record_auth_failure(source, T + 71, WINDOW).unwrap(),
            2
        );
        assert_eq!(store.auth_failures(source, T + 129, WINDOW).unwrap(), 2);
        assert_eq!(store.auth_failures(source, T + 130, WINDOW).unwrap(), 0);
        // The counts survive a reopen: they are in the database, not in the handle.
        drop(store);
        let store = db.open(None);
        assert_eq!(store.auth_failures(source, T + 100, WINDOW).unwrap(), 2);
        assert_eq!(db.failure_rows(), 1);
    }

    fn windows_that_ended_are_deleted_when_a_failure_is_recorded(db: &(impl TestDb + FailureRows)) {
        let store = db.open(None);
        for i in 0..100 {
            store
                .record_auth_failure(&format!("10.0.0.1/AKIA{i:04}"), T, WINDOW)
                .unwrap();
        }
        store
            .record_auth_failure("10.0.0.2/LIVE", T + 30, WINDOW)
            .unwrap();
        assert_eq!(db.failure_rows(), 101);
        // Reading deletes nothing.
        assert_eq!(
            store
                .auth_failures("10.0.0.1/AKIA0000", T + 60, WINDOW)
                .unwrap(),
            0
        );
        assert_eq!(db.failure_rows(), 101);
        // The next failure recorded, of any source, deletes the hundred windows that ended
        // and keeps the live one.
        store
            .record_auth_failure("10.0.0.3/NEW", T + 60, WINDOW)
            .unwrap();
        assert_eq!(db.failure_rows(), 2);
        assert_eq!(
            store
                .auth_failures("10.0.0.2/LIVE", T + 60, WINDOW)
                .unwrap(),
            1
        );
        store
            .record_auth_failure("10.0.0.3/NEW", T + 1000, WINDOW)
            .unwrap();
        assert_eq!(db.failure_rows(), 1);
    }

    fn two_handles_on_one_database_share_the_failure_counts(db: &(impl TestDb + FailureRows)) {
        // Two handles: two opens of one SQLite file, or two PostgreSQL replicas.
        let (a, b) = (db.open(None), db.open(None));
        let source = "10.0.0.7/AKIASHARED";
        assert_eq!(a.record_auth_failure(source, T, WINDOW).unwrap(), 1);
        assert_eq!(b.record_auth_failure(source, T + 1, WINDOW).unwrap(), 2);
        assert_eq!(a.auth_failures(source, T + 2, WINDOW).unwrap(), 2);
        assert_eq!(b.auth_failures(source, T + 2, WINDOW).unwrap(), 2);
        // Both at once: every failure lands (the count is one atomic step), none is lost.
        let threads: Vec<_> = [a, b]
            .into_iter()
            .map(|store| {
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        store.record_auth_failure(source, T + 3, WINDOW).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(
            db.open(None).auth_failures(source, T + 4, WINDOW).unwrap(),
            42
        );
        assert_eq!(db.failure_rows(), 1);
    }

    #[test]
    #[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
    fn postgres_a_version_1_database_migrates_to_count_failures_and_keeps_its_tenants() {
        let db = PgDb::new("failures_migration");
        let store = db.open(None);
        commit(
            &*store,
            "111122223333",
            "CreateTenant",
            Prior::Absent,
            Some(&Tenant::new("111122223333", 0)),
        );
        drop(store);
        // The database as a binary of schema 1 left it.
        db.client()
            .batch_execute(
                "DROP TABLE trail_events; DROP TABLE credential_usage; DROP TABLE auth_failures;
                 DELETE FROM schema_migrations WHERE version > 1",
            )
            .unwrap();
        let report = PostgresStore::migrate(&db.options()).unwrap();
        assert_eq!(report, MigrationReport { from: 1, to: 4 });
        assert_eq!(SCHEMA_VERSION, 4);
        let store = db.open(None);
        assert_eq!(store.load_tenants().unwrap().len(), 1);
        assert_eq!(
            store.record_auth_failure("10.0.0.7/K", T, WINDOW).unwrap(),
            1
        );
        assert_eq!(db.failure_rows(), 1);
        // Migration 3 made the usage store.
        let usage = super::usage_report("111122223333", 2_000, "eu-west-1");
        store.record_usage(&usage).unwrap();
        assert_eq!(store.usage("111122223333").unwrap(), usage);
        // Migration 4 made the trail.
        let event = super::trail_event("111122223333", "e-1", 1_000);
        assert_eq!(store.record_trail(std::slice::from_ref(&event)).unwrap(), 1);
        assert_eq!(
            store.trail("111122223333", 0, i64::MAX, 10).unwrap(),
            [event]
        );
    }
}

// === migrate-store: a whole store copied into an empty one ===

/// Instantiates each copy test for every pair of stores: SQLite to SQLite in `cargo test`,
/// the pairs with PostgreSQL when `IAMLET_TEST_POSTGRES_URL` is set.
macro_rules! copy_suite {
    ($($name:ident),* $(,)?) => {
        mod copy {
            use super::{PgDb, SqliteDb};
            $(
                mod $name {
                    use super::*;
                    fn run(from: &dyn super::super::TestDb, to: &dyn super::super::TestDb, tag: &str) {
                        super::super::$name(from, to, tag);
                    }
                    #[test]
                    fn sqlite_to_sqlite() {
                        let tag = concat!(stringify!($name), "_s2s");
                        run(&SqliteDb::new(&format!("{tag}_from")), &SqliteDb::new(&format!("{tag}_to")), tag);
                    }
                    #[test]
                    #[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
                    fn sqlite_to_postgres() {
                        let tag = concat!(stringify!($name), "_s2p");
                        run(&SqliteDb::new(&format!("{tag}_from")), &PgDb::new(&format!("{tag}_to")), tag);
                    }
                    #[test]
                    #[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
                    fn postgres_to_sqlite() {
                        let tag = concat!(stringify!($name), "_p2s");
                        run(&PgDb::new(&format!("{tag}_from")), &SqliteDb::new(&format!("{tag}_to")), tag);
                    }
                    #[test]
                    #[ignore = "needs PostgreSQL: tests/ha/run.sh runs them"]
                    fn postgres_to_postgres() {
                        let tag = concat!(stringify!($name), "_p2p");
                        run(&PgDb::new(&format!("{tag}_from")), &PgDb::new(&format!("{tag}_to")), tag);
                    }
                }
            )*
        }
    };
}

copy_suite!(copy_whole_and_verified, copy_verification);

const A: &str = "111122223333";
const B: &str = "444455556666";
const C: &str = "777788889999";

fn audit_event(account: &str, outcome: &str) -> AuditEvent {
    AuditEvent {
        account_id: account.into(),
        id: 0,
        at: 1_700_000_000,
        actor: "arn:aws:iam::111122223333:user/alice".into(),
        action: "CreateUser".into(),
        outcome: outcome.into(),
        root: false,
        detail: "AccessDenied: no".into(),
        source: "127.0.0.1".into(),
    }
}

/// A source with a bit of everything: A made with a sealed secret, then changed; B made, then
/// deleted; C made; audit events, one of them for an account that is no tenant. Returns its
/// secrets key file and A's secret.
fn fill_source(from: &dyn TestDb, tag: &str) -> (std::path::PathBuf, String) {
    let key_file = temp_db(&format!("copy-key-{tag}")).with_file_name("secrets.key");
    let source = from.open_sealed(SecretSealer::load_or_create(&key_file).unwrap());
    let mut a = Tenant::new(A, 0);
    let (_, secret) = a
        .create_root_access_key(&mut crate::directory::IdGenerator::seeded(5), 0)
        .unwrap();
    let b = Tenant::new(B, 0);
    commit(&*source, A, "CreateTenant", Prior::Absent, Some(&a));
    commit(&*source, A, "CreateUser", Prior::At(1), Some(&a));
    commit(&*source, B, "CreateTenant", Prior::Absent, Some(&b));
    commit(&*source, B, "DeleteTenant", Prior::At(1), None);
    commit(
        &*source,
        C,
        "CreateTenant",
        Prior::Absent,
        Some(&Tenant::new(C, 0)),
    );
    for (account, outcome) in [
        (A, "AccessDenied"),
        ("999999999999", "AuthFailure"),
        (C, "Allowed"),
    ] {
        source.record_event(&audit_event(account, outcome)).unwrap();
    }
    source
        .record_usage(&usage_report(A, 2_000, "eu-west-1"))
        .unwrap();
    (key_file, secret)
}

fn copy_whole_and_verified(from: &dyn TestDb, to: &dyn TestDb, tag: &str) {
    let (key_file, secret) = fill_source(from, tag);
    let sealer = || SecretSealer::load_or_create(&key_file).unwrap();
    let source = from.open_sealed(sealer());
    let options = |key: &Path| MigrateStoreOptions {
        from: from.location(),
        to: to.location(),
        secrets_key_file: Some(key.to_owned()),
    };

    // Another key than the source's: refused before anything is written.
    let wrong_key = temp_db(&format!("copy-wrong-key-{tag}")).with_file_name("secrets.key");
    SecretSealer::load_or_create(&wrong_key).unwrap();
    let error = migrate_store(&options(&wrong_key)).unwrap_err();
    assert!(matches!(error, MigrateStoreError::SecretsKey(_)), "{error}");
    assert!(error.is_refusal(), "{error}");
    assert!(to.open(None).tenant_seqs().unwrap().is_empty());

    let summary = migrate_store(&options(&key_file)).unwrap();
    assert_eq!(
        (
            summary.tenants,
            summary.deleted_tenants,
            summary.changes,
            summary.events
        ),
        (2, 1, 5, 3),
        "{summary}"
    );
    assert_eq!(summary.store_id, source.store_id());
    assert_eq!(summary.epoch, source.epoch());

    // The same store: identity, epoch, versions, states with their secrets, the whole change
    // log and the audit events with their numbers.
    let copy = to.open_sealed(sealer());
    assert_eq!(copy.store_id(), source.store_id());
    assert_eq!(copy.epoch(), source.epoch());
    assert_eq!(copy.tenant_seqs().unwrap(), source.tenant_seqs().unwrap());
    let live = copy.load_tenants().unwrap();
    assert_eq!(live, source.load_tenants().unwrap());
    assert_eq!(live.len(), 2);
    // The sidecars' usage is copied too.
    assert_eq!(copy.usage(A).unwrap(), usage_report(A, 2_000, "eu-west-1"));
    for account in [A, B, C, "999999999999"] {
        assert_eq!(
            copy.changes(account, 0, 100).unwrap(),
            source.changes(account, 0, 100).unwrap(),
            "{account}"
        );
        assert_eq!(
            copy.events(account, 0, 100).unwrap(),
            source.events(account, 0, 100).unwrap(),
            "{account}"
        );
    }
    assert_eq!(copy.changes(B, 0, 100).unwrap().len(), 2);
    // Secrets stay sealed: the very text the source stored.
    let raw = to.raw_state(A);
    assert_eq!(raw, from.raw_state(A));
    assert!(
        raw.contains("sealed:v1:") && !raw.contains(&secret),
        "{raw}"
    );

    // The copy goes on where the source stopped: change numbers, a deleted tenant made again,
    // and audit event numbers.
    assert_eq!(
        commit(&*copy, A, "CreateUser", Prior::At(2), Some(&live[0].tenant)),
        3
    );
    assert_eq!(
        commit(
            &*copy,
            B,
            "CreateTenant",
            Prior::Absent,
            Some(&Tenant::new(B, 0))
        ),
        3
    );
    let last = source.events(C, 0, 10).unwrap()[0].id;
    assert!(copy.record_event(&audit_event(A, "Throttled")).unwrap() > last);

    // Copying again into the destination, which now holds a store: refused, nothing changed.
    let held = copy.tenant_seqs().unwrap();
    let error = migrate_store(&options(&key_file)).unwrap_err();
    assert!(
        matches!(
            error,
            MigrateStoreError::NotEmpty {
                tenants: 3,
                changes: 7,
                events: 4,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.is_refusal());
    assert!(error.to_string().contains("is not empty"), "{error}");
    assert_eq!(to.open(None).tenant_seqs().unwrap(), held);
    assert_eq!(to.open(None).store_id(), source.store_id());
}

fn copy_verification(from: &dyn TestDb, to: &dyn TestDb, tag: &str) {
    let (key_file, _) = fill_source(from, tag);
    migrate_store(&MigrateStoreOptions {
        from: from.location(),
        to: to.location(),
        secrets_key_file: Some(key_file),
    })
    .unwrap();
    let source = migrate::inventory(&*from.open_copy()).unwrap();
    assert_eq!(
        migrate::compare(&source, &migrate::inventory(&*to.open_copy()).unwrap()),
        Ok(())
    );

    // What the verification after a copy catches: a change missing, a tenant at another
    // version, an audit event missing, another identity.
    to.execute(&format!(
        "DELETE FROM changes WHERE account_id = '{A}' AND seq = 2;
         UPDATE tenants SET seq = 9 WHERE account_id = '{C}';
         DELETE FROM events WHERE account_id = '999999999999';
         UPDATE meta SET value = 'another' WHERE key = 'store_id';"
    ));
    let found = migrate::inventory(&*to.open_copy()).unwrap();
    let differences = migrate::compare(&source, &found).unwrap_err();
    for says in [
        "store another at epoch",
        &format!("tenant {A} has 1 change(s) up to change 1 instead of 2 up to change 2"),
        &format!("tenant {C} is at change 9 instead of at change 1"),
        "2 audit event(s) up to number 3 instead of 3 up to number 3",
    ] {
        assert!(differences.contains(says), "{says}: {differences}");
    }
}

#[test]
fn migrate_store_refuses_another_key_in_the_destination_and_an_empty_source() {
    let from = SqliteDb::new("copy-refusals-from");
    let (key_file, _) = fill_source(&from, "refusals");
    let to = temp_db("copy-refusals-to").with_file_name("data");
    std::fs::create_dir_all(&to).unwrap();
    // The destination's own key, which its control plane would use by default: not the
    // source's, so refused before anything is made there.
    SecretSealer::load_or_create(&to.join("secrets.key")).unwrap();
    let options = MigrateStoreOptions {
        from: from.location(),
        to: StoreLocation::DataDir(to.clone()),
        secrets_key_file: Some(key_file.clone()),
    };
    let error = migrate_store(&options).unwrap_err();
    assert!(
        matches!(error, MigrateStoreError::KeyMismatch { .. }),
        "{error}"
    );
    assert!(error.is_refusal());
    assert!(!to.join(DATABASE_FILE).exists());
    // The same key there is fine.
    std::fs::copy(&key_file, to.join("secrets.key")).unwrap();
    migrate_store(&options).unwrap();

    // A source that holds nothing is rather a mistyped path than a store to copy.
    let empty = SqliteDb::new("copy-refusals-empty");
    drop(empty.open(None));
    let error = migrate_store(&MigrateStoreOptions {
        from: empty.location(),
        to: StoreLocation::DataDir(temp_db("copy-refusals-to2").with_file_name("data")),
        secrets_key_file: Some(key_file),
    })
    .unwrap_err();
    assert!(
        matches!(error, MigrateStoreError::EmptySource(_)),
        "{error}"
    );
    // No key given, and none in the source's data directory.
    let error = migrate_store(&MigrateStoreOptions {
        from: from.location(),
        to: StoreLocation::DataDir(temp_db("copy-refusals-to3").with_file_name("data")),
        secrets_key_file: None,
    })
    .unwrap_err();
    assert!(matches!(error, MigrateStoreError::NoSecretsKey), "{error}");
}
