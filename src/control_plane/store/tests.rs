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
    assert_eq!(tenants[0].version, SnapshotVersion::new(1, 2));
    // The audit trail of a deleted tenant is kept.
    assert_eq!(store.changes("444455556666", 0, 10).unwrap().len(), 2);
}

#[test]
fn the_epoch_only_rises() {
    let path = temp_db("epoch");
    assert_eq!(SqliteStore::open(&path, None).unwrap().epoch(), 1);
    assert_eq!(SqliteStore::open(&path, Some(3)).unwrap().epoch(), 3);
    assert_eq!(SqliteStore::open(&path, Some(2)).unwrap().epoch(), 3);
    assert_eq!(SqliteStore::open(&path, None).unwrap().epoch(), 3);
}
