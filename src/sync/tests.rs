use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::snapshot::test_support::{demo_tenant, NoAwsManaged};

const A: &str = "111122223333";
const B: &str = "444455556666";

/// The stores these tests sign for, each with a key of its own.
const STORES: [&str; 6] = ["test", "aaaa", "bbbb", "cccc", "store-0", "store-1"];

/// The test control planes' signing keys, one per store of [`STORES`].
fn keys() -> &'static HashMap<&'static str, crate::snapshot::SigningKey> {
    static KEYS: std::sync::OnceLock<HashMap<&'static str, crate::snapshot::SigningKey>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        STORES
            .iter()
            .map(|s| (*s, crate::snapshot::SigningKey::generate(s).unwrap().0))
            .collect()
    })
}

fn trust() -> SnapshotTrust {
    let lines: Vec<String> = keys().values().map(|k| k.trust_line()).collect();
    SnapshotTrust::keys(crate::snapshot::TrustedKeys::parse(&lines.join("\n")).unwrap())
}

fn applier(state_dir: Option<PathBuf>) -> Applier {
    unverified(state_dir).with_trust(trust())
}

/// An applier that does not verify signatures (`--insecure-unsigned-snapshots`).
fn unverified(state_dir: Option<PathBuf>) -> Applier {
    Applier::new(
        Arc::new(SnapshotStore::new()),
        state_dir,
        Arc::new(NoAwsManaged),
    )
    .with_trust(SnapshotTrust::InsecureUnsigned)
}

fn tenant(account: &str) -> Tenant {
    let mut t = demo_tenant();
    if account != A {
        // Rewrite the demo tenant's ARNs for another account.
        let json = serde_json::to_string(&t).unwrap().replace(A, account);
        t = serde_json::from_str(&json).unwrap();
    }
    t
}

/// An update signed by the control plane of the store `test`.
fn update(t: &Tenant, seq: u64) -> TenantUpdate {
    update_from(t, seq, &store_ref("test", 1))
}

/// An update signed by the control plane of `store`.
fn update_from(t: &Tenant, seq: u64, store: &StoreRef) -> TenantUpdate {
    let key = keys().get(store.id.as_str()).unwrap();
    TenantUpdate::signed(t, SnapshotVersion::new(1, seq), key, store).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iamlet-sync-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_malformed_tenant_is_refused_and_others_still_apply() {
    // RELIABILITY T03.
    let applier = applier(None);
    assert_eq!(
        applier.apply(&update(&tenant(A), 1)),
        UpdateResult::Applied(SnapshotVersion::new(1, 1))
    );
    let mut bad = tenant(A);
    bad.roles.get_mut("app").unwrap().assume_role_policy = "{not json".into();
    let result = applier.apply(&update(&bad, 2));
    let UpdateResult::Rejected { error, .. } = result else {
        panic!("expected a NACK, got {result:?}")
    };
    assert!(
        error.contains("tenant `111122223333`") && error.contains("role `app` trust policy"),
        "{error}"
    );
    assert_eq!(
        applier.apply(&update(&tenant(B), 1)),
        UpdateResult::Applied(SnapshotVersion::new(1, 1))
    );
    // The previous version of A keeps serving, and the next good version applies.
    assert_eq!(applier.store().version(A), Some(SnapshotVersion::new(1, 1)));
    assert_eq!(
        applier.apply(&update(&tenant(A), 3)),
        UpdateResult::Applied(SnapshotVersion::new(1, 3))
    );
}

#[test]
fn torn_or_misaddressed_payloads_are_refused() {
    let applier = applier(None);
    let mut torn = update(&tenant(A), 1);
    torn.payload.truncate(torn.payload.len() / 2);
    assert!(matches!(
        applier.apply(&torn),
        UpdateResult::Rejected { .. }
    ));
    let mut other = update(&tenant(B), 1);
    other.account_id = A.into();
    // Signed as addressed (a control plane's mistake, not a forgery): the payload decides.
    other.signature = Some(keys().get("test").unwrap().sign(
        A,
        other.version,
        &store_ref("test", 1),
        &other.sha256,
    ));
    let UpdateResult::Rejected { error, .. } = applier.apply(&other) else {
        panic!("a payload for B must not be applied as A")
    };
    assert!(
        error.contains("the payload is tenant `444455556666`"),
        "{error}"
    );
    assert!(applier.store().load(A).is_none());
}

#[test]
fn versions_regress_never_and_repeat_idempotently() {
    // RELIABILITY T05.
    let applier = applier(None);
    applier.apply(&update(&tenant(A), 5));
    let served = applier.store().load(A).unwrap();
    assert_eq!(
        applier.apply(&update(&tenant(A), 5)),
        UpdateResult::Unchanged(SnapshotVersion::new(1, 5))
    );
    assert!(Arc::ptr_eq(&served, &applier.store().load(A).unwrap()));
    assert!(matches!(
        applier.apply(&update(&tenant(A), 4)),
        UpdateResult::Rejected { .. }
    ));
    let newer_epoch = TenantUpdate::signed(
        &tenant(A),
        SnapshotVersion::new(2, 1),
        keys().get("test").unwrap(),
        &store_ref("test", 1),
    )
    .unwrap();
    assert_eq!(
        applier.apply(&newer_epoch),
        UpdateResult::Applied(SnapshotVersion::new(2, 1))
    );
}

#[test]
fn a_restarted_sidecar_serves_its_last_known_good_snapshot() {
    // RELIABILITY T10: the control plane is unreachable; the sidecar boots from disk.
    let dir = temp_dir("boot");
    let first = applier(Some(dir.clone()));
    first.apply(&update(&tenant(A), 7));
    let restarted = applier(Some(dir));
    let booted = restarted.boot_from_disk(&[A.to_owned(), B.to_owned()]);
    assert_eq!(
        booted[0],
        (
            A.to_owned(),
            UpdateResult::Applied(SnapshotVersion::new(1, 7))
        )
    );
    // B was never persisted: nothing to load, nothing to report.
    assert_eq!(booted.len(), 1);
    let snap = restarted.store().load(A).unwrap();
    assert!(snap.user("alice").is_some());
    let readiness = Readiness::Tenants(vec![A.into(), B.into()]);
    assert!(!readiness.is_ready(restarted.store(), false));
    assert_eq!(readiness.missing(restarted.store()), [B.to_owned()]);
}

#[test]
fn a_corrupted_persisted_file_is_never_served() {
    // RELIABILITY T11.
    let dir = temp_dir("corrupt");
    applier(Some(dir.clone())).apply(&update(&tenant(A), 2));
    let file = dir.join(format!("tenant-{A}.json"));
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&file, bytes).unwrap();
    let restarted = applier(Some(dir));
    let booted = restarted.boot_from_disk(&[A.to_owned()]);
    assert!(
        matches!(&booted[0].1, UpdateResult::Rejected { error, .. } if error.contains("refused")),
        "{booted:?}"
    );
    assert!(restarted.store().load(A).is_none());
    assert!(!Readiness::Tenants(vec![A.into()]).is_ready(restarted.store(), true));
}

#[test]
fn not_ready_until_every_required_tenant_is_loaded() {
    // RELIABILITY T14: the control plane serves two of three required tenants.
    let applier = applier(None);
    let readiness = Readiness::Tenants(vec![A.into(), B.into(), "999988887777".into()]);
    applier.apply(&update(&tenant(A), 1));
    applier.apply(&update(&tenant(B), 1));
    assert!(!readiness.is_ready(applier.store(), true));
    assert_eq!(
        readiness.missing(applier.store()),
        ["999988887777".to_owned()]
    );
    applier.apply(&update(&tenant("999988887777"), 1));
    assert!(readiness.is_ready(applier.store(), true));
    assert!(!Readiness::All.is_ready(applier.store(), false));
    assert!(Readiness::All.is_ready(applier.store(), true));
}

#[test]
fn no_root_key_or_password_hash_reaches_a_sidecar_even_from_an_older_control_plane() {
    let mut t = tenant(A);
    let mut ids = crate::directory::IdGenerator::seeded(5);
    t.create_root_access_key(&mut ids, 0).unwrap();
    let user = t.users.keys().next().cloned().unwrap();
    t.users.get_mut(&user).unwrap().login_profile = Some(crate::directory::LoginProfile {
        password_hash: crate::directory::Secret::new("pbkdf2-sha256$1$c2FsdA$aGFzaA"),
        password_reset_required: false,
        created_at: 0,
        password_changed_at: None,
        previous_password_hashes: Vec::new(),
    });
    // What this control plane sends has neither.
    let shipped = update(&t, 1);
    assert!(!shipped.payload.contains("root_access_key\":{"));
    assert!(!shipped.payload.contains("pbkdf2-sha256"));

    // An older control plane sent both: the sidecar drops them before it compiles or
    // persists anything.
    let payload = serde_json::to_string(&t).unwrap();
    let old = TenantUpdate {
        account_id: A.into(),
        version: SnapshotVersion::new(1, 2),
        sha256: sha256_hex(&payload),
        payload,
        signature: None,
    };
    let dir = temp_dir("strip");
    // Unsigned, so only a sidecar that does not verify takes it.
    assert!(matches!(
        applier(None).apply(&old),
        UpdateResult::Rejected { .. }
    ));
    let applier = unverified(Some(dir.clone()));
    assert!(matches!(applier.apply(&old), UpdateResult::Applied(_)));
    let served = applier.store().load(A).unwrap();
    assert!(served.tenant().root_access_key.is_none());
    assert!(served
        .tenant()
        .users
        .values()
        .all(|u| u.login_profile.is_none()));
    let persisted = std::fs::read_to_string(dir.join(format!("tenant-{A}.json"))).unwrap();
    assert!(!persisted.contains("pbkdf2-sha256"));
    assert!(!persisted.contains(t.root_access_key.as_ref().unwrap().secret.expose()));
    let _ = std::fs::remove_dir_all(&dir);
}

fn store_ref(id: &str, epoch: u64) -> StoreRef {
    StoreRef {
        id: id.into(),
        epoch,
    }
}

#[test]
fn item1_a_removal_from_another_store_or_epoch_never_deletes_a_tenant() {
    // Issue #13, item 1: a control plane that lost its database starts a new store and
    // sends removals of every tenant; the sidecar keeps them (and their files).
    let dir = temp_dir("item1-removal");
    let applier = applier(Some(dir.clone()));
    let followed = store_ref("aaaa", 7);
    assert_eq!(
        applier.apply_from(&update_from(&tenant(A), 4, &followed), Some(&followed)),
        UpdateResult::Applied(SnapshotVersion::new(1, 4))
    );
    let file = dir.join(format!("tenant-{A}.json"));
    assert!(file.exists());
    // Another store, the same store at another epoch, and an unknown store: all refused.
    for stranger in [Some(store_ref("bbbb", 7)), Some(store_ref("aaaa", 8)), None] {
        assert!(!applier.remove_from(A, stranger.as_ref()), "{stranger:?}");
        assert_eq!(applier.store().version(A), Some(SnapshotVersion::new(1, 4)));
        assert!(file.exists());
    }
    // The store it came from removes it, file included.
    assert!(applier.remove_from(A, Some(&followed)));
    assert_eq!(applier.store().version(A), None);
    assert!(!file.exists());
    // A tenant persisted before identities is removed only by a store of its epoch.
    let legacy = self::applier(Some(dir));
    legacy.apply(&update(&tenant(B), 1));
    assert!(!legacy.remove_from(B, Some(&store_ref("cccc", 99))));
    assert!(legacy.remove_from(B, Some(&store_ref("cccc", 1))));
}

#[test]
fn item1_versions_compare_within_one_store_and_a_move_to_another_replaces() {
    let dir = temp_dir("item1-floor");
    let applier = applier(Some(dir.clone()));
    let old = store_ref("aaaa", 1);
    let new = store_ref("bbbb", 1);
    applier.apply_from(&update_from(&tenant(A), 9, &old), Some(&old));
    // Within the same store, never backwards.
    assert!(matches!(
        applier.apply_from(&update_from(&tenant(A), 3, &old), Some(&old)),
        UpdateResult::Rejected { .. }
    ));
    // Another store's versions do not compare: its tenant replaces (with a warning).
    assert_eq!(
        applier.apply_from(&update_from(&tenant(A), 2, &new), Some(&new)),
        UpdateResult::Applied(SnapshotVersion::new(1, 2))
    );
    assert_eq!(applier.origin(A), Some(new.clone()));
    // ... and the floor is now the new store's.
    assert!(matches!(
        applier.apply_from(&update_from(&tenant(A), 1, &new), Some(&new)),
        UpdateResult::Rejected { .. }
    ));
    // A restart remembers the store each tenant came from.
    let restarted = self::applier(Some(dir));
    restarted.boot_from_disk(&[A.to_owned()]);
    assert_eq!(restarted.origin(A), Some(new.clone()));
    assert!(!restarted.remove_from(A, Some(&old)));
    assert!(restarted.remove_from(A, Some(&new)));
}

#[test]
fn item2_the_last_contact_survives_a_restart() {
    // Issue #13, item 2 (RELIABILITY T10): staleness counts from the persisted last contact.
    let dir = temp_dir("item2-contact");
    std::fs::create_dir_all(&dir).unwrap();
    let state = SyncState::restored(&dir);
    assert_eq!(state.staleness_ms(1_000), None);
    let contact = crate::policy::Timestamp::now().epoch_millis() - 60_000;
    state.contact(contact);
    let restarted = SyncState::restored(&dir);
    let now = contact + 60_000;
    assert_eq!(restarted.staleness_ms(now), Some(60_000));
    // A contact within the throttle is not written; the file holds the older one (staler).
    restarted.contact(contact + 10);
    assert_eq!(
        SyncState::restored(&dir).staleness_ms(now),
        Some(60_000),
        "writes are throttled to one a second"
    );
    // A file from the future or that does not decode counts as no contact.
    std::fs::write(
        dir.join(SYNC_STATE_FILE),
        br#"{"last_contact_ms": 99999999999999}"#,
    )
    .unwrap();
    assert_eq!(SyncState::restored(&dir).staleness_ms(now), None);
    std::fs::write(dir.join(SYNC_STATE_FILE), b"{torn").unwrap();
    assert_eq!(SyncState::restored(&dir).staleness_ms(now), None);
}

/// The outcome of `action` on `resource` by `principal` in the tenant's served snapshot.
fn decide(
    applier: &Applier,
    principal: &str,
    action: &str,
    resource: &str,
) -> crate::authz::Outcome {
    use crate::authz::{evaluate, Context, Principal, Request};
    let snapshot = applier.store().load(A).unwrap();
    let principal = Principal::parse(principal).unwrap();
    let resolved = snapshot.resolve(&principal).unwrap();
    let mut context = Context::new();
    resolved.fill_context(&principal, &mut context);
    let request = Request::try_new(principal, action, resource)
        .unwrap()
        .with_context(context);
    evaluate(&resolved.policy_set(None, &[]), &request).outcome
}

#[test]
fn t04_an_unknown_feature_inside_a_deny_is_refused_and_the_old_deny_keeps_denying() {
    // RELIABILITY T04: a newer control plane (or a corrupted one) sends a Deny this sidecar
    // cannot read. Skipping the statement would turn a Deny into an Allow: the whole update is
    // refused, and the served snapshot still denies.
    const ALICE: &str = "arn:aws:iam::111122223333:user/eng/alice";
    let deny = |condition: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"s3:*","Resource":"*"}},
                {{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/secret*"{condition}}}]}}"#
        )
    };
    let with_policy = |policy: String| {
        let mut t = tenant(A);
        t.users
            .get_mut("alice")
            .unwrap()
            .inline_policies
            .insert("Guard".into(), policy);
        t
    };
    let applier = applier(None);
    let v1 = with_policy(deny(""));
    assert_eq!(
        applier.apply(&update(&v1, 1)),
        UpdateResult::Applied(SnapshotVersion::new(1, 1))
    );
    let secret = "arn:aws:s3:::reports/secret.csv";
    assert_eq!(
        decide(&applier, ALICE, "s3:GetObject", secret),
        crate::authz::Outcome::ExplicitDeny
    );
    for unknown in [
        r#","Condition":{"StringEqualsFromTheFuture":{"aws:RequestedRegion":"eu-west-1"}}"#,
        r#","Condition":{"StringEquals":{"aws:RequestedRegion":{"nested":"object"}}}"#,
        r#","Condition":{"ForSomeValues:StringEquals":{"aws:TagKeys":["a"]}}"#,
    ] {
        let result = applier.apply(&update(&with_policy(deny(unknown)), 2));
        let UpdateResult::Rejected { error, .. } = &result else {
            panic!("{unknown}: an unreadable Deny must be refused, got {result:?}")
        };
        assert!(error.contains("tenant `111122223333`"), "{error}");
        assert_eq!(applier.store().version(A), Some(SnapshotVersion::new(1, 1)));
        assert_eq!(
            decide(&applier, ALICE, "s3:GetObject", secret),
            crate::authz::Outcome::ExplicitDeny,
            "{unknown}"
        );
    }
}

#[test]
fn t02_a_torn_or_corrupt_update_is_never_applied_and_others_are_unaffected() {
    // RELIABILITY T02: an update cut at every byte, or with one byte changed, is refused; the
    // version served stays, and another tenant's update still applies.
    let applier = applier(None);
    applier.apply(&update(&tenant(A), 1));
    let good = update(&tenant(A), 2);
    let step = (good.payload.len() / 64).max(1);
    for cut in (0..good.payload.len()).step_by(step) {
        let mut torn = good.clone();
        torn.payload.truncate(cut);
        assert!(
            matches!(applier.apply(&torn), UpdateResult::Rejected { .. }),
            "cut at {cut}"
        );
        let mut flipped = good.clone();
        let mut bytes = flipped.payload.into_bytes();
        bytes[cut] ^= 0x01;
        flipped.payload = String::from_utf8_lossy(&bytes).into_owned();
        assert!(
            matches!(applier.apply(&flipped), UpdateResult::Rejected { .. }),
            "flip at {cut}"
        );
        assert_eq!(applier.store().version(A), Some(SnapshotVersion::new(1, 1)));
    }
    assert_eq!(
        applier.apply(&update(&tenant(B), 1)),
        UpdateResult::Applied(SnapshotVersion::new(1, 1))
    );
    assert_eq!(
        applier.apply(&good),
        UpdateResult::Applied(SnapshotVersion::new(1, 2))
    );
}

mod t27 {
    //! RELIABILITY T27, at the applier: random sequences of responses (new, duplicate and old
    //! versions, corrupt payloads, two control-plane stores), removals and restarts, checked
    //! against a model after every step.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Action {
        Update {
            b: bool,
            seq: u64,
            store: u8,
            corrupt: bool,
        },
        Remove {
            b: bool,
            store: u8,
        },
        Restart,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            6 => (any::<bool>(), 1u64..6, 0u8..2, prop::bool::weighted(0.15)).prop_map(
                |(b, seq, store, corrupt)| Action::Update { b, seq, store, corrupt }
            ),
            2 => (any::<bool>(), 0u8..2).prop_map(|(b, store)| Action::Remove { b, store }),
            1 => Just(Action::Restart),
        ]
    }

    fn store(n: u8) -> StoreRef {
        store_ref(&format!("store-{n}"), 1)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn t27_applied_state_follows_the_model(actions in prop::collection::vec(action(), 1..30)) {
            static CASE: AtomicUsize = AtomicUsize::new(0);
            let dir = temp_dir(&format!("t27-{}", CASE.fetch_add(1, Ordering::Relaxed)));
            let tenants = [tenant(A), tenant(B)];
            let mut applier = self::super::applier(Some(dir.clone()));
            // tenant -> (version, store) as served.
            let mut model: HashMap<&str, (u64, u8)> = HashMap::new();
            for action in actions {
                match action {
                    Action::Update { b, seq, store: s, corrupt } => {
                        let (account, t) = if b { (B, &tenants[1]) } else { (A, &tenants[0]) };
                        let mut u = update_from(t, seq, &store(s));
                        if corrupt {
                            u.sha256 = sha256_hex("something else");
                        }
                        let result = applier.apply_from(&u, Some(&store(s)));
                        let expected = match (corrupt, model.get(account)) {
                            // The version already served, from its store: nothing to apply,
                            // whatever the payload (an idempotent ACK; nothing changes).
                            (true, Some(&(v, held))) if held == s && v == seq => "unchanged",
                            (true, _) => "rejected",
                            (false, None) => "applied",
                            (false, Some(&(_, held))) if held != s => "applied",
                            (false, Some(&(v, _))) if seq > v => "applied",
                            (false, Some(&(v, _))) if seq == v => "unchanged",
                            (false, Some(_)) => "rejected",
                        };
                        let got = match result {
                            UpdateResult::Applied(_) => "applied",
                            UpdateResult::Unchanged(_) => "unchanged",
                            UpdateResult::Rejected { .. } => "rejected",
                        };
                        prop_assert_eq!(got, expected, "{} seq {} store {}", account, seq, s);
                        if got == "applied" {
                            model.insert(account, (seq, s));
                        }
                    }
                    Action::Remove { b, store: s } => {
                        let account = if b { B } else { A };
                        let removed = applier.remove_from(account, Some(&store(s)));
                        let expected = model.get(account).is_none_or(|&(_, held)| held == s);
                        prop_assert_eq!(removed, expected, "remove {} by store {}", account, s);
                        if removed {
                            model.remove(account);
                        }
                    }
                    Action::Restart => {
                        applier = self::super::applier(Some(dir.clone()));
                        applier.boot_from_disk(&[A.to_owned(), B.to_owned()]);
                    }
                }
                for account in [A, B] {
                    let served = applier.store().version(account);
                    let expected = model.get(account).map(|&(v, _)| SnapshotVersion::new(1, v));
                    prop_assert_eq!(served, expected, "{} served", account);
                    prop_assert_eq!(
                        applier.origin(account),
                        model.get(account).map(|&(_, s)| store(s))
                    );
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn issue20_unsigned_foreign_and_mis_stored_updates_are_refused_and_counted() {
    let applier = applier(None);
    let unsigned = TenantUpdate::new(&tenant(A), SnapshotVersion::new(1, 1)).unwrap();
    let UpdateResult::Rejected { error, .. } = applier.apply(&unsigned) else {
        panic!("an unsigned update must be refused")
    };
    assert!(error.contains("not signed"), "{error}");
    let (foreign, _) = crate::snapshot::SigningKey::generate("test").unwrap();
    let by_foreign = TenantUpdate::signed(
        &tenant(A),
        SnapshotVersion::new(1, 1),
        &foreign,
        &store_ref("test", 1),
    )
    .unwrap();
    let UpdateResult::Rejected { error, .. } = applier.apply(&by_foreign) else {
        panic!("a foreign key's update must be refused")
    };
    assert!(
        error.contains(foreign.id()) && error.contains("unknown"),
        "{error}"
    );
    // Signed for one store, arriving on another's stream.
    let UpdateResult::Rejected { error, .. } =
        applier.apply_from(&update(&tenant(A), 1), Some(&store_ref("aaaa", 1)))
    else {
        panic!("an update of another store must be refused")
    };
    assert!(error.contains("signed for"), "{error}");
    // A payload changed after signing (digest recomputed): the signature no longer verifies.
    let mut edited = update(&tenant(A), 1);
    edited.payload = edited.payload.replacen("Allow", "Deny", 1);
    edited.sha256 = sha256_hex(&edited.payload);
    assert!(matches!(
        applier.apply(&edited),
        UpdateResult::Rejected { .. }
    ));
    assert_eq!(applier.store().version(A), None);
    let counts = applier.signature_refusals().snapshot();
    for (reason, n) in [
        ("unsigned", 1),
        ("unknown_key", 1),
        ("foreign_store", 1),
        ("bad_signature", 1),
    ] {
        assert!(counts.contains(&(reason, n)), "{reason}: {counts:?}");
    }
    // The genuine update applies.
    assert!(matches!(
        applier.apply(&update(&tenant(A), 1)),
        UpdateResult::Applied(_)
    ));
}

#[test]
fn issue20_a_state_file_edited_on_disk_is_refused_at_start() {
    let dir = temp_dir("issue20-edited");
    let first = applier(Some(dir.clone()));
    let source = store_ref("aaaa", 1);
    assert!(matches!(
        first.apply_from(&update_from(&tenant(A), 1, &source), Some(&source)),
        UpdateResult::Applied(_)
    ));
    // The file as written verifies at the next start.
    let restarted = applier(Some(dir.clone()));
    assert!(matches!(
        restarted.boot_from_disk(&[A.to_owned()]).as_slice(),
        [(_, UpdateResult::Applied(_))]
    ));
    // An attacker edits a statement's effect and recomputes the envelope's digest (the
    // integration test `signed_snapshots` does it Deny to Allow).
    let path = dir.join(format!("tenant-{A}.json"));
    let read = read_last_known_good(&dir, A).unwrap();
    assert!(
        read.payload.contains("Allow"),
        "the demo tenant has an Allow"
    );
    let mut forged = read.tenant.clone();
    let json = serde_json::to_string(&forged)
        .unwrap()
        .replacen("Allow", "Deny", 1);
    forged = serde_json::from_str(&json).unwrap();
    let payload = serde_json::to_string(&forged).unwrap();
    crate::snapshot::write_signed_last_known_good(
        &dir,
        A,
        &payload,
        read.version,
        read.store.as_ref(),
        read.signature.as_ref(),
    )
    .unwrap();
    assert!(
        read_last_known_good(&dir, A).is_ok(),
        "the digest checks out"
    );
    let restarted = applier(Some(dir.clone()));
    let booted = restarted.boot_from_disk(&[A.to_owned()]);
    let [(_, UpdateResult::Rejected { error, .. })] = booted.as_slice() else {
        panic!("the edited file must be refused: {booted:?}")
    };
    assert!(error.contains("does not verify"), "{error}");
    assert_eq!(restarted.store().version(A), None);
    assert_eq!(restarted.signature_refusals().total(), 1);
    // Stripped of its signature, it is refused too.
    write_last_known_good(&dir, &forged, read.version, read.store.as_ref()).unwrap();
    let restarted = applier(Some(dir.clone()));
    assert!(matches!(
        restarted.boot_from_disk(&[A.to_owned()]).as_slice(),
        [(_, UpdateResult::Rejected { .. })]
    ));
    assert!(path.exists(), "a refused file is kept for inspection");
    let _ = std::fs::remove_dir_all(&dir);
}
