//! Ed25519 signatures over tenant updates (issue #20, item 1).
//!
//! The control plane signs every tenant update with the current key of its key ring; a sidecar
//! verifies it against the public keys it was given out of band (`--snapshot-keys`) when the
//! update arrives on the stream and again when it loads its state file. What is signed binds
//! the account, the version, the store (identity and epoch) and the SHA-256 of the payload:
//!
//! ```text
//! "iamlet snapshot v1\n" account "\n" epoch(be64) seq(be64) "\n" store-id "\n" store-epoch(be64) "\n" sha256-hex
//! ```
//!
//! A key signs for one store identity only: the trust file names the store each key belongs
//! to, so a key of one control plane cannot vouch for another's data. A trust file lists the
//! keys a sidecar accepts, one per line, `<key-id> <store-id> <base64 public key>`, and the
//! keys it no longer accepts, `<key-id> retired` (so a refusal says "retired", not "unknown").
//! Rotation overlaps: a new key signs while the previous one stays in the trust file until it
//! is retired.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

use super::{SnapshotVersion, StoreRef};

/// Separates snapshot signatures from anything else a key could sign.
const CONTEXT: &[u8] = b"iamlet snapshot v1\n";

/// A tenant update's signature, as shipped and as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSignature {
    /// The signing key's id.
    pub key_id: String,
    /// The store the update was signed for.
    pub store: StoreRef,
    /// The Ed25519 signature, base64.
    pub value: String,
}

/// Why an update's signature was refused. The messages name the key id and the reason, never
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The update carries no signature.
    #[error("the update is not signed")]
    Unsigned,
    /// The sidecar has no trusted keys at all (`--snapshot-keys` not given).
    #[error("no snapshot keys are trusted (--snapshot-keys), so no signature can verify")]
    NoTrustedKeys,
    /// The key is not in the trust file.
    #[error("key `{0}` is unknown (not in the trust file)")]
    UnknownKey(String),
    /// The key was retired.
    #[error("key `{0}` is retired")]
    RetiredKey(String),
    /// The key belongs to another store than the one the update claims.
    #[error("key `{key_id}` signs for store {trusted}, not for store {claimed}")]
    ForeignStore {
        /// The key.
        key_id: String,
        /// The store the trust file binds it to.
        trusted: String,
        /// The store the update names.
        claimed: String,
    },
    /// The update names another store than the stream it came on.
    #[error("the update is signed for {signed}, but came from {source_store}")]
    StoreMismatch {
        /// The store in the signature.
        signed: StoreRef,
        /// The stream's store.
        source_store: StoreRef,
    },
    /// The signature does not verify: the content, version, account or store was changed, or
    /// another key signed.
    #[error("the signature of key `{0}` does not verify")]
    BadSignature(String),
}

impl SignatureError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::NoTrustedKeys => "no_trusted_keys",
            Self::UnknownKey(_) => "unknown_key",
            Self::RetiredKey(_) => "retired_key",
            Self::ForeignStore { .. } | Self::StoreMismatch { .. } => "foreign_store",
            Self::BadSignature(_) => "bad_signature",
        }
    }
}

/// Why a key or a trust file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotKeyError {
    /// A line of a trust file does not parse.
    #[error("snapshot keys line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A private key does not decode.
    #[error("snapshot signing key `{0}` is not a valid Ed25519 key")]
    BadPrivateKey(String),
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// The bytes an update's signature covers.
pub fn signed_message(
    account_id: &str,
    version: SnapshotVersion,
    store: &StoreRef,
    sha256: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONTEXT.len() + account_id.len() + store.id.len() + 112);
    out.extend_from_slice(CONTEXT);
    out.extend_from_slice(account_id.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&version.epoch.to_be_bytes());
    out.extend_from_slice(&version.seq.to_be_bytes());
    out.push(b'\n');
    out.extend_from_slice(store.id.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&store.epoch.to_be_bytes());
    out.push(b'\n');
    out.extend_from_slice(sha256.as_bytes());
    out
}

/// An Ed25519 signing key with its id and the store it signs for.
pub struct SigningKey {
    id: String,
    store_id: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

// === impl SigningKey ===

impl SigningKey {
    /// A new random key for `store_id`, and its PKCS#8 encoding (to keep it).
    pub fn generate(store_id: &str) -> Result<(Self, Vec<u8>), SnapshotKeyError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| SnapshotKeyError::Random)?;
        let key = Self::from_pkcs8(store_id, pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    /// The key of PKCS#8 `pkcs8`, signing for `store_id`; its id derives from its public key.
    pub fn from_pkcs8(store_id: &str, pkcs8: &[u8]) -> Result<Self, SnapshotKeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| SnapshotKeyError::BadPrivateKey(store_id.to_owned()))?;
        Ok(Self {
            id: key_id(pair.public_key().as_ref()),
            store_id: store_id.to_owned(),
            pair,
        })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store it signs for.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The public key, raw (32 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The trust file line of this key.
    pub fn trust_line(&self) -> String {
        trust_line(&self.id, &self.store_id, self.public_key())
    }

    /// Signs an update of `account_id` at `version` with payload digest `sha256`, shipped by
    /// `store`.
    pub fn sign(
        &self,
        account_id: &str,
        version: SnapshotVersion,
        store: &StoreRef,
        sha256: &str,
    ) -> SnapshotSignature {
        let signature = self
            .pair
            .sign(&signed_message(account_id, version, store, sha256));
        SnapshotSignature {
            key_id: self.id.clone(),
            store: store.clone(),
            value: base64::engine::general_purpose::STANDARD.encode(signature.as_ref()),
        }
    }
}

/// A key's id: `ed25519-` and the first 16 hex digits of its public key's SHA-256, so the same
/// key has the same id wherever it is listed.
pub fn key_id(public_key: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    let hex = data_encoding::HEXLOWER.encode(digest.as_ref());
    format!("ed25519-{}", hex.get(..16).unwrap_or(&hex))
}

/// A trust file line: `<key-id> <store-id> <base64 public key>`.
pub fn trust_line(id: &str, store_id: &str, public_key: &[u8]) -> String {
    format!(
        "{id} {store_id} {}",
        base64::engine::general_purpose::STANDARD.encode(public_key)
    )
}

#[derive(Debug, Clone)]
enum Trusted {
    Active {
        store_id: String,
        key: UnparsedPublicKey<Vec<u8>>,
    },
    Retired,
}

/// The public keys a sidecar accepts snapshots from.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: HashMap<String, Trusted>,
}

// === impl TrustedKeys ===

impl TrustedKeys {
    /// Parses a trust file: `<key-id> <store-id> <base64 public key>` or `<key-id> retired`
    /// per line; blank lines and `#` comments are skipped. A key id must match its key.
    pub fn parse(text: &str) -> Result<Self, SnapshotKeyError> {
        let mut keys = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |reason: String| SnapshotKeyError::BadLine {
                line: i + 1,
                reason,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (id, trusted) = match fields.as_slice() {
                [id, "retired"] => ((*id).to_owned(), Trusted::Retired),
                [id, store_id, public] => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(public)
                        .map_err(|_| bad(format!("key `{id}`: the public key is not base64")))?;
                    if raw.len() != 32 {
                        return Err(bad(format!(
                            "key `{id}`: an Ed25519 public key is 32 bytes, not {}",
                            raw.len()
                        )));
                    }
                    if key_id(&raw) != *id {
                        return Err(bad(format!("key `{id}`: the id does not match the key")));
                    }
                    (
                        (*id).to_owned(),
                        Trusted::Active {
                            store_id: (*store_id).to_owned(),
                            key: UnparsedPublicKey::new(&ED25519, raw),
                        },
                    )
                }
                _ => {
                    return Err(bad(
                        "expected `<key-id> <store-id> <base64 public key>` or `<key-id> retired`"
                            .into(),
                    ))
                }
            };
            // A retirement wins over an earlier listing of the same key.
            match keys.get(&id) {
                Some(Trusted::Retired) => {}
                _ => {
                    keys.insert(id, trusted);
                }
            }
        }
        Ok(Self { keys })
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        !self
            .keys
            .values()
            .any(|t| matches!(t, Trusted::Active { .. }))
    }

    /// The ids of the keys accepted.
    pub fn active_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .keys
            .iter()
            .filter(|(_, t)| matches!(t, Trusted::Active { .. }))
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Verifies `signature` over an update of `account_id` at `version` with payload digest
    /// `sha256`.
    pub fn verify(
        &self,
        account_id: &str,
        version: SnapshotVersion,
        sha256: &str,
        signature: Option<&SnapshotSignature>,
    ) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::Unsigned)?;
        let key_id = &signature.key_id;
        let (store_id, key) = match self.keys.get(key_id) {
            None if self.is_empty() => return Err(SignatureError::NoTrustedKeys),
            None => return Err(SignatureError::UnknownKey(key_id.clone())),
            Some(Trusted::Retired) => return Err(SignatureError::RetiredKey(key_id.clone())),
            Some(Trusted::Active { store_id, key }) => (store_id, key),
        };
        if *store_id != signature.store.id {
            return Err(SignatureError::ForeignStore {
                key_id: key_id.clone(),
                trusted: store_id.clone(),
                claimed: signature.store.id.clone(),
            });
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&signature.value)
            .map_err(|_| SignatureError::BadSignature(key_id.clone()))?;
        key.verify(
            &signed_message(account_id, version, &signature.store, sha256),
            &raw,
        )
        .map_err(|_| SignatureError::BadSignature(key_id.clone()))
    }
}

/// How a sidecar treats the signatures of the snapshots it receives and loads.
#[derive(Debug, Clone)]
pub enum SnapshotTrust {
    /// Verify every update and state file against these keys; with no keys, refuse all
    /// (fail closed).
    Verify(std::sync::Arc<TrustedKeys>),
    /// Accept unsigned and unverified snapshots (`--insecure-unsigned-snapshots`): for old
    /// control planes only; a state file edited on disk is then served.
    InsecureUnsigned,
}

impl Default for SnapshotTrust {
    /// Verify, with no keys: nothing is accepted until keys are given.
    fn default() -> Self {
        Self::Verify(std::sync::Arc::default())
    }
}

// === impl SnapshotTrust ===

impl SnapshotTrust {
    /// Trusts exactly `keys`.
    pub fn keys(keys: TrustedKeys) -> Self {
        Self::Verify(std::sync::Arc::new(keys))
    }

    /// Checks an update (`source`: the stream's store, if known). `Ok` when it verifies, or
    /// when verification is switched off.
    pub fn check(
        &self,
        account_id: &str,
        version: SnapshotVersion,
        sha256: &str,
        signature: Option<&SnapshotSignature>,
        source: Option<&StoreRef>,
    ) -> Result<(), SignatureError> {
        let Self::Verify(keys) = self else {
            return Ok(());
        };
        if let (Some(signature), Some(source)) = (signature, source) {
            if signature.store != *source {
                return Err(SignatureError::StoreMismatch {
                    signed: signature.store.clone(),
                    source_store: source.clone(),
                });
            }
        }
        keys.verify(account_id, version, sha256, signature)
    }
}

/// Refused signatures by reason, for `/metrics`.
#[derive(Debug, Default)]
pub struct SignatureRefusals {
    counts: [AtomicU64; REASONS.len()],
}

/// Every [`SignatureError::reason`], in the order [`SignatureRefusals`] counts them.
pub const REASONS: [&str; 6] = [
    "unsigned",
    "no_trusted_keys",
    "unknown_key",
    "retired_key",
    "foreign_store",
    "bad_signature",
];

// === impl SignatureRefusals ===

impl SignatureRefusals {
    /// Counts one refusal.
    pub fn count(&self, error: &SignatureError) {
        let reason = error.reason();
        if let Some(counter) = REASONS
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.counts.get(i))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Each reason with its count.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        REASONS
            .iter()
            .zip(&self.counts)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(id: &str) -> StoreRef {
        StoreRef {
            id: id.into(),
            epoch: 3,
        }
    }

    const A: &str = "111122223333";
    const DIGEST: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn trust(lines: &[String]) -> TrustedKeys {
        TrustedKeys::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn a_signature_verifies_and_binds_account_version_store_and_content() {
        let (key, _) = SigningKey::generate("s1").unwrap();
        let keys = trust(&[key.trust_line()]);
        let v = SnapshotVersion::new(1, 2);
        let sig = key.sign(A, v, &store("s1"), DIGEST);
        assert_eq!(keys.verify(A, v, DIGEST, Some(&sig)), Ok(()));
        let bad = |r: Result<(), SignatureError>| {
            assert!(matches!(r, Err(SignatureError::BadSignature(_))), "{r:?}");
        };
        bad(keys.verify("444455556666", v, DIGEST, Some(&sig)));
        bad(keys.verify(A, SnapshotVersion::new(1, 3), DIGEST, Some(&sig)));
        bad(keys.verify(A, v, &DIGEST.replace('b', "c"), Some(&sig)));
        let mut other_epoch = sig.clone();
        other_epoch.store.epoch = 4;
        bad(keys.verify(A, v, DIGEST, Some(&other_epoch)));
        // One bit of the signature itself flipped: decoded, so the change cannot fall on
        // base64 padding or miss because a letter happens not to occur.
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut raw = b64.decode(&sig.value).unwrap();
        raw[17] ^= 0x04;
        let mut flipped = sig;
        flipped.value = b64.encode(&raw);
        bad(keys.verify(A, v, DIGEST, Some(&flipped)));
    }

    #[test]
    fn unsigned_unknown_foreign_and_retired_are_refused() {
        let (key, _) = SigningKey::generate("s1").unwrap();
        let (foreign, _) = SigningKey::generate("s1").unwrap();
        let keys = trust(&[key.trust_line()]);
        let v = SnapshotVersion::new(1, 2);
        assert_eq!(
            keys.verify(A, v, DIGEST, None),
            Err(SignatureError::Unsigned)
        );
        let by_foreign = foreign.sign(A, v, &store("s1"), DIGEST);
        assert_eq!(
            keys.verify(A, v, DIGEST, Some(&by_foreign)),
            Err(SignatureError::UnknownKey(foreign.id().to_owned()))
        );
        // A foreign key presenting a trusted key's id does not verify either.
        let mut impostor = by_foreign;
        impostor.key_id = key.id().to_owned();
        assert_eq!(
            keys.verify(A, v, DIGEST, Some(&impostor)),
            Err(SignatureError::BadSignature(key.id().to_owned()))
        );
        // The key signs for store s1 only.
        let for_s2 = key.sign(A, v, &store("s2"), DIGEST);
        assert!(matches!(
            keys.verify(A, v, DIGEST, Some(&for_s2)),
            Err(SignatureError::ForeignStore { .. })
        ));
        let retired = trust(&[key.trust_line(), format!("{} retired", key.id())]);
        let sig = key.sign(A, v, &store("s1"), DIGEST);
        assert_eq!(
            retired.verify(A, v, DIGEST, Some(&sig)),
            Err(SignatureError::RetiredKey(key.id().to_owned()))
        );
        assert_eq!(
            TrustedKeys::default().verify(A, v, DIGEST, Some(&sig)),
            Err(SignatureError::NoTrustedKeys)
        );
        // No key material in any message.
        let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
        for e in [
            SignatureError::BadSignature(key.id().to_owned()),
            SignatureError::UnknownKey(key.id().to_owned()),
        ] {
            assert!(!e.to_string().contains(&public));
        }
    }

    #[test]
    fn rotation_overlaps_until_the_previous_key_is_retired() {
        let (old, _) = SigningKey::generate("s1").unwrap();
        let (new, _) = SigningKey::generate("s1").unwrap();
        let v = SnapshotVersion::new(1, 2);
        let by_old = old.sign(A, v, &store("s1"), DIGEST);
        let by_new = new.sign(A, v, &store("s1"), DIGEST);
        let overlap = trust(&[new.trust_line(), old.trust_line()]);
        assert_eq!(overlap.verify(A, v, DIGEST, Some(&by_old)), Ok(()));
        assert_eq!(overlap.verify(A, v, DIGEST, Some(&by_new)), Ok(()));
        let after = trust(&[new.trust_line(), format!("{} retired", old.id())]);
        assert_eq!(after.verify(A, v, DIGEST, Some(&by_new)), Ok(()));
        assert_eq!(
            after.verify(A, v, DIGEST, Some(&by_old)),
            Err(SignatureError::RetiredKey(old.id().to_owned()))
        );
        // A key listed after its retirement stays retired.
        let relisted = trust(&[format!("{} retired", old.id()), old.trust_line()]);
        assert!(relisted.is_empty());
    }

    #[test]
    fn a_bad_trust_file_is_refused_with_its_line() {
        let (key, _) = SigningKey::generate("s1").unwrap();
        let line = key.trust_line();
        for (text, needle) in [
            ("onlyone".to_owned(), "expected"),
            (format!("{} s1 !!notbase64", key.id()), "not base64"),
            (format!("{} s1 AAAA", key.id()), "32 bytes"),
            (line.replacen("ed25519-", "ed25519-0", 1), "does not match"),
        ] {
            let err = TrustedKeys::parse(&format!("# header\n\n{text}")).unwrap_err();
            assert!(err.to_string().contains("line 3"), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
        assert_eq!(
            TrustedKeys::parse(&format!("# keys\n{line}\n"))
                .unwrap()
                .active_ids(),
            vec![key.id()]
        );
    }

    #[test]
    fn trust_checks_the_stream_store_and_the_opt_out_accepts_anything() {
        let (key, _) = SigningKey::generate("s1").unwrap();
        let v = SnapshotVersion::new(1, 2);
        let sig = key.sign(A, v, &store("s1"), DIGEST);
        let trust_ = SnapshotTrust::keys(trust(&[key.trust_line()]));
        assert_eq!(
            trust_.check(A, v, DIGEST, Some(&sig), Some(&store("s1"))),
            Ok(())
        );
        assert!(matches!(
            trust_.check(A, v, DIGEST, Some(&sig), Some(&store("s2"))),
            Err(SignatureError::StoreMismatch { .. })
        ));
        assert_eq!(
            SnapshotTrust::default().check(A, v, DIGEST, Some(&sig), None),
            Err(SignatureError::NoTrustedKeys)
        );
        assert_eq!(
            SnapshotTrust::InsecureUnsigned.check(A, v, DIGEST, None, None),
            Ok(())
        );
        let counts = SignatureRefusals::default();
        counts.count(&SignatureError::Unsigned);
        counts.count(&SignatureError::RetiredKey("k".into()));
        counts.count(&SignatureError::RetiredKey("k".into()));
        assert_eq!(counts.total(), 3);
        assert!(counts.snapshot().contains(&("retired_key", 2)));
    }
}
