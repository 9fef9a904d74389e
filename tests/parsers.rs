//! RELIABILITY T28: the parsers that read untrusted bytes (policy JSON, the sync decoder and
//! what it applies, session tokens, SigV4's `Authorization` header, the sidecar's persisted
//! files) never panic: the committed corpus under `tests/fuzz-corpus/` is replayed, then
//! random mutations of it and of valid inputs are tried.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use iamlet::control_plane::{ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::policy::{PolicyDocument, PolicyKind, Timestamp};
use iamlet::proto::v1 as pb;
use iamlet::snapshot::TenantUpdate;
use iamlet::snapshot::{
    read_last_known_good, write_last_known_good, AwsManagedCatalog, SnapshotStore, TenantSnapshot,
};
use iamlet::sts::sigv4::{Signature, SignedRequest};
use iamlet::sts::{SessionClaims, SessionSubject};
use iamlet::sync::Applier;
use proptest::prelude::*;
use prost::Message;

const A: &str = "111122223333";

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Everything the parsers need: a real tenant, its snapshot (for tokens) and an applier.
struct Targets {
    applier: Applier,
    snapshot: TenantSnapshot,
    dir: PathBuf,
    valid_update: Vec<u8>,
    valid_file: Vec<u8>,
    /// A session token the snapshot's issuer keys minted and accept.
    valid_token: Vec<u8>,
}

fn targets() -> &'static Targets {
    static TARGETS: std::sync::OnceLock<Targets> = std::sync::OnceLock::new();
    TARGETS.get_or_init(|| {
        let dir = super::support::temp_dir("parsers", "state");
        let store = SqliteStore::open_in_memory().unwrap();
        let cp = super::support::signed(
            ControlPlane::open(Arc::new(store), IdGenerator::seeded(7)).unwrap(),
        );
        cp.create_tenant(A, Some("fuzz"), "test").unwrap();
        cp.call(
            A,
            "test",
            "CreateUser",
            &serde_json::json!({"UserName": "alice"}),
        )
        .unwrap();
        let (tenant, version) = cp.tenant(A).unwrap();
        let catalog = Arc::new(AwsManagedCatalog::compile());
        let snapshot = TenantSnapshot::compile(Arc::clone(&tenant), version, &*catalog).unwrap();
        let update =
            TenantUpdate::signed(&tenant, version, cp.snapshot_signer(), &cp.store_identity())
                .unwrap();
        let signature = update.signature.clone().unwrap();
        let valid_update = pb::WatchResponse {
            nonce: "1".into(),
            tenants: vec![pb::TenantSnapshot {
                tenant: update.account_id.clone(),
                version: Some(version.into()),
                sha256: update.sha256.clone(),
                payload: update.payload,
                signature: Some(pb::SnapshotSignature {
                    key_id: signature.key_id,
                    store: Some(pb::StoreIdentity {
                        id: signature.store.id,
                        epoch: signature.store.epoch,
                    }),
                    value: signature.value,
                }),
            }],
            ..pb::WatchResponse::default()
        }
        .encode_to_vec();
        let path = write_last_known_good(&dir, &tenant, version, None).unwrap();
        let valid_file = std::fs::read(path).unwrap();
        // A real session token (alice's `GetSessionToken` session), so mutations start from
        // bytes that pass every check, not only from garbage.
        let now = Timestamp::now().epoch_seconds();
        let alice = snapshot.user("alice").unwrap();
        let claims = SessionClaims {
            tenant: A.into(),
            access_key_id: "ASIAFUZZSESSION00001".into(),
            token_id: "fuzz-seed".into(),
            subject: SessionSubject::User {
                user_name: "alice".into(),
                user_id: alice.user_id.to_string(),
            },
            issued_at: now,
            expires_at: now + 3600,
            source_identity: None,
            mfa_authenticated_at: None,
            session_policy: None,
            policy_arns: Vec::new(),
            tags: vec![("team".into(), "fuzz".into())],
            transitive_tag_keys: Vec::new(),
        };
        let (token, _secret) = snapshot.issuer_keys().mint(&claims).unwrap();
        let verified = snapshot.issuer_keys().verify(A, &token, now);
        assert!(
            verified.is_ok(),
            "the seed token does not verify: {verified:?}"
        );
        Targets {
            applier: Applier::new(Arc::new(SnapshotStore::new()), None, catalog)
                .with_trust(cp.snapshot_trust()),
            snapshot,
            dir,
            valid_update,
            valid_file,
            valid_token: token.into_bytes(),
        }
    })
}

fn policy(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for kind in [
        PolicyKind::Identity,
        PolicyKind::Resource,
        PolicyKind::Trust,
    ] {
        let _ = PolicyDocument::parse(&text, kind);
    }
}

fn snapshot(bytes: &[u8]) {
    let Ok(response) = pb::WatchResponse::decode(bytes) else {
        return;
    };
    let t = targets();
    for s in response.tenants {
        let Some(version) = s.version else { continue };
        let _ = t.applier.apply(&TenantUpdate {
            account_id: s.tenant,
            version: version.into(),
            payload: s.payload,
            sha256: s.sha256,
            signature: s.signature.and_then(|sig| {
                sig.store.map(|store| iamlet::snapshot::SnapshotSignature {
                    key_id: sig.key_id,
                    store: iamlet::snapshot::StoreRef {
                        id: store.id,
                        epoch: store.epoch,
                    },
                    value: sig.value,
                })
            }),
        });
    }
}

fn token(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let t = targets();
    let _ = t
        .snapshot
        .issuer_keys()
        .verify(A, &text, Timestamp::now().epoch_seconds());
}

fn sigv4(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let headers = vec![
        ("host".to_owned(), "sidecar.local".to_owned()),
        ("x-amz-date".to_owned(), "20260101T000000Z".to_owned()),
        ("authorization".to_owned(), text),
    ];
    let request = SignedRequest {
        method: "GET",
        path: "/a%20b/%zz/",
        query: "x=1&y&%ff=",
        headers: &headers,
        payload_sha256: None,
    };
    if let Ok(signature) = Signature::parse(&request) {
        let _ = signature.verify(b"secret", Timestamp::now());
    }
}

fn persisted(bytes: &[u8]) {
    // A directory per call: the tests of this module run at once.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = targets().dir.join(n.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("tenant-{A}.json")), bytes).unwrap();
    let _ = read_last_known_good(&dir, A);
    let _ = std::fs::remove_dir_all(&dir);
}

type Parser = fn(&[u8]);

const PARSERS: &[(&str, Parser)] = &[
    ("policy", policy),
    ("snapshot", snapshot),
    ("token", token),
    ("sigv4", sigv4),
    ("persisted", persisted),
];

#[test]
fn t28_the_committed_corpus_never_makes_a_parser_panic() {
    let t = targets();
    for (target, parse) in PARSERS {
        for (path, bytes) in corpus(target) {
            let outcome = std::panic::catch_unwind(|| parse(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
        }
    }
    // The valid inputs parse as valid (the harness reaches the code it means to).
    snapshot(&t.valid_update);
    assert!(
        t.applier.store().version(A).is_some(),
        "a valid update applies"
    );
    let dir = t.dir.join("valid");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("tenant-{A}.json")), &t.valid_file).unwrap();
    assert!(read_last_known_good(&dir, A).is_ok());
}

/// A mutation of a seed: bytes flipped, a cut, a splice of another seed's bytes.
fn mutate(seed: &[u8], flips: &[(usize, u8)], cut: usize, insert: &[u8], at: usize) -> Vec<u8> {
    let mut out = seed.to_vec();
    for &(i, bit) in flips {
        if !out.is_empty() {
            let i = i % out.len();
            out[i] ^= 1 << (bit % 8);
        }
    }
    if !out.is_empty() {
        out.truncate(out.len() - cut % out.len().max(1) / 2);
    }
    let at = at % (out.len() + 1);
    out.splice(at..at, insert.iter().copied());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn t28_mutations_never_make_a_parser_panic(
        target in 0..PARSERS.len(),
        seed in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in any::<usize>(),
        insert in prop::collection::vec(any::<u8>(), 0..16),
        at in any::<usize>(),
    ) {
        let (name, parse) = PARSERS[target];
        let t = targets();
        let mut seeds: Vec<Vec<u8>> = corpus(name).into_iter().map(|(_, b)| b).collect();
        match name {
            "snapshot" => seeds.push(t.valid_update.clone()),
            "persisted" => seeds.push(t.valid_file.clone()),
            "token" => seeds.push(t.valid_token.clone()),
            _ => {}
        }
        let input = mutate(seeds[seed.index(seeds.len())].as_slice(), &flips, cut, &insert, at);
        let outcome = std::panic::catch_unwind(|| parse(&input));
        prop_assert!(
            outcome.is_ok(),
            "{} panicked; add this input to tests/fuzz-corpus/{}/: {:?}",
            name,
            name,
            String::from_utf8_lossy(&input)
        );
    }
}
