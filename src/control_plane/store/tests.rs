use super::*;

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

#[test]
fn changes_are_numbered_per_tenant_and_listed_in_order() {
    let store = SqliteStore::open_in_memory().unwrap();
    let a = Tenant::new("111122223333", 0);
    let b = Tenant::new("444455556666", 0);
    assert_eq!(
        store
            .commit(&draft("111122223333", "CreateTenant"), Some(&a))
            .unwrap()
            .seq,
        1
    );
    assert_eq!(
        store
            .commit(&draft("111122223333", "CreateUser"), Some(&a))
            .unwrap()
            .seq,
        2
    );
    assert_eq!(
        store
            .commit(&draft("444455556666", "CreateTenant"), Some(&b))
            .unwrap()
            .seq,
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
}

#[test]
fn state_and_versions_survive_a_reopen_and_deleted_tenants_stay_deleted() {
    let path = temp_db("reopen");
    {
        let store = SqliteStore::open(&path, None).unwrap();
        let mut t = Tenant::new("111122223333", 0);
        store
            .commit(&draft("111122223333", "CreateTenant"), Some(&t))
            .unwrap();
        t.alias = Some("demo".into());
        store
            .commit(&draft("111122223333", "CreateAccountAlias"), Some(&t))
            .unwrap();
        let gone = Tenant::new("444455556666", 0);
        store
            .commit(&draft("444455556666", "CreateTenant"), Some(&gone))
            .unwrap();
        store
            .commit(&draft("444455556666", "DeleteTenant"), None)
            .unwrap();
    }
    let store = SqliteStore::open(&path, None).unwrap();
    let tenants = store.load_tenants().unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].tenant.alias.as_deref(), Some("demo"));
    assert_eq!(tenants[0].version, SnapshotVersion::new(store.epoch(), 2));
    // The audit trail of a deleted tenant is kept.
    assert_eq!(store.changes("444455556666", 0, 10).unwrap().len(), 2);
}

#[test]
fn the_epoch_only_rises() {
    let path = temp_db("epoch");
    let first = SqliteStore::open(&path, None).unwrap().epoch();
    assert_eq!(SqliteStore::open(&path, None).unwrap().epoch(), first);
    assert_eq!(
        SqliteStore::open(&path, Some(first + 3)).unwrap().epoch(),
        first + 3
    );
    assert_eq!(
        SqliteStore::open(&path, Some(first + 2)).unwrap().epoch(),
        first + 3
    );
    assert_eq!(SqliteStore::open(&path, None).unwrap().epoch(), first + 3);
}

#[test]
fn item1_a_new_store_gets_a_random_epoch_and_identity_never_a_reused_one() {
    let a = SqliteStore::open_in_memory().unwrap();
    let b = SqliteStore::open_in_memory().unwrap();
    assert_ne!(a.store_id(), b.store_id());
    assert_eq!(a.store_id().len(), 32);
    assert!(
        a.epoch() > 1 && b.epoch() > 1,
        "{} {}",
        a.epoch(),
        b.epoch()
    );
    // A store made later is newer, even to a sidecar that knows nothing of identities.
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(SqliteStore::open_in_memory().unwrap().epoch() > a.epoch());
    // The identity and the epoch survive a reopen.
    let path = temp_db("identity");
    let (id, epoch) = {
        let s = SqliteStore::open(&path, None).unwrap();
        (s.store_id().to_owned(), s.epoch())
    };
    let again = SqliteStore::open(&path, None).unwrap();
    assert_eq!((again.store_id(), again.epoch()), (id.as_str(), epoch));
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
