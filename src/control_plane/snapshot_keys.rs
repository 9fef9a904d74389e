//! The control plane's snapshot signing keys (issue #20, item 1): a key ring in a file of its
//! own, `--snapshot-signing-key` (default `DATA_DIR/snapshot-signing.key`), created with mode
//! 0600 on first start, like `--secrets-key-file`.
//!
//! Why a file and not sealed in the store: the sidecars' trust must be written out (and put
//! in a ConfigMap) without reading the database, every replica of one store must sign with the
//! same key (a Kubernetes Secret mounted in each), and a copy of the database alone must not
//! be enough to forge snapshots. Keep it apart from the database, as the secrets key.
//!
//! Each key signs for one store identity. Rotation overlaps: `--rotate-snapshot-key` makes a
//! new current key and keeps the previous one in the trust file (sidecars accept both);
//! `--retire-snapshot-key ID` drops a previous key's private half and lists it as retired, so
//! sidecars given the new trust file refuse what it signed. A key ring found for another store
//! (the database was replaced) rotates by itself: the new store gets its own key, the old one
//! stays accepted until retired, so tenants kept from the old store still load.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::snapshot::sign::{trust_line, SigningKey, SnapshotKeyError};

const FORMAT: u32 = 1;

/// Why the key ring could not be read, changed or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotKeyRingError {
    /// The file cannot be read or written.
    #[error("snapshot signing key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a key ring.
    #[error("snapshot signing key file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key does not decode, or none can be made.
    #[error(transparent)]
    Key(#[from] SnapshotKeyError),
    /// `--retire-snapshot-key` names the current key or no key.
    #[error("cannot retire snapshot key `{0}`: {1}")]
    Retire(String, &'static str),
}

/// A key's place in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Signs.
    Current,
    /// Accepted by sidecars, no longer signs.
    Previous,
    /// Refused by sidecars; its private half is gone.
    Retired,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    id: String,
    store_id: String,
    state: KeyState,
    public_key: String,
    /// PKCS#8, base64; absent once retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkcs8: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct RingFile {
    format: u32,
    keys: Vec<StoredKey>,
}

/// The control plane's snapshot signing keys.
pub struct SnapshotKeyRing {
    keys: Vec<StoredKey>,
}

impl std::fmt::Debug for SnapshotKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<(&str, KeyState)> =
            self.keys.iter().map(|k| (k.id.as_str(), k.state)).collect();
        f.debug_struct("SnapshotKeyRing")
            .field("keys", &ids)
            .finish()
    }
}

// === impl SnapshotKeyRing ===

impl SnapshotKeyRing {
    /// Reads the ring at `path`, or creates it with a key for `store_id`; a ring without a
    /// current key for `store_id` rotates to one. True when the file was written.
    pub fn load_or_create(
        path: &Path,
        store_id: &str,
    ) -> Result<(Self, bool), SnapshotKeyRingError> {
        let mut ring = match std::fs::read(path) {
            Ok(bytes) => Self::parse(path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self { keys: Vec::new() },
            Err(source) => {
                return Err(SnapshotKeyRingError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let fresh = ring.current_entry().is_none_or(|k| k.store_id != store_id);
        if fresh {
            ring.rotate(store_id)?;
            ring.save(path)?;
        }
        Ok((ring, fresh))
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, SnapshotKeyRingError> {
        let invalid = |reason: String| SnapshotKeyRingError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let file: RingFile =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a key ring: {e}")))?;
        if file.format != FORMAT {
            return Err(invalid(format!("unknown format {}", file.format)));
        }
        let current = file
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Current)
            .count();
        if current > 1 {
            return Err(invalid("more than one current key".into()));
        }
        for key in &file.keys {
            match (&key.pkcs8, key.state) {
                (Some(_), _) => {
                    let signer = decode_key(key)?;
                    if signer.id() != key.id {
                        return Err(invalid(format!("key `{}`: the id does not match", key.id)));
                    }
                }
                (None, KeyState::Retired) => {}
                (None, _) => {
                    return Err(invalid(format!("key `{}` has no private key", key.id)));
                }
            }
        }
        Ok(Self { keys: file.keys })
    }

    fn current_entry(&self) -> Option<&StoredKey> {
        self.keys.iter().find(|k| k.state == KeyState::Current)
    }

    /// The key that signs.
    pub fn current(&self) -> Result<SigningKey, SnapshotKeyRingError> {
        let entry = self.current_entry().ok_or(SnapshotKeyRingError::Retire(
            String::new(),
            "the ring has no current key",
        ))?;
        Ok(decode_key(entry)?)
    }

    /// Makes a new current key for `store_id`; the current one becomes previous (still
    /// accepted). Returns the new key's id.
    pub fn rotate(&mut self, store_id: &str) -> Result<String, SnapshotKeyRingError> {
        let (key, pkcs8) = SigningKey::generate(store_id)?;
        for k in &mut self.keys {
            if k.state == KeyState::Current {
                k.state = KeyState::Previous;
            }
        }
        let id = key.id().to_owned();
        self.keys.push(StoredKey {
            id: id.clone(),
            store_id: store_id.to_owned(),
            state: KeyState::Current,
            public_key: base64::engine::general_purpose::STANDARD.encode(key.public_key()),
            pkcs8: Some(base64::engine::general_purpose::STANDARD.encode(pkcs8)),
        });
        Ok(id)
    }

    /// Retires the previous key `id`: sidecars refuse what it signed once their trust file
    /// lists it as retired. The current key cannot be retired (rotate first).
    pub fn retire(&mut self, id: &str) -> Result<(), SnapshotKeyRingError> {
        let key = self
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or(SnapshotKeyRingError::Retire(id.to_owned(), "no such key"))?;
        if key.state == KeyState::Current {
            return Err(SnapshotKeyRingError::Retire(
                id.to_owned(),
                "it is the current key; rotate first",
            ));
        }
        key.state = KeyState::Retired;
        key.pkcs8 = None;
        Ok(())
    }

    /// The ids and states of the keys.
    pub fn keys(&self) -> Vec<(String, KeyState)> {
        self.keys.iter().map(|k| (k.id.clone(), k.state)).collect()
    }

    /// The sidecars' trust file: every current and previous public key with its store, and
    /// every retired key id.
    pub fn trust_file(&self) -> String {
        let mut out = String::from(
            "# iamlet snapshot keys (public): <key-id> <store-id> <base64 Ed25519 public key>, \
             or <key-id> retired\n",
        );
        for key in &self.keys {
            let line = match key.state {
                KeyState::Retired => format!("{} retired", key.id),
                KeyState::Current | KeyState::Previous => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(&key.public_key)
                        .unwrap_or_default();
                    trust_line(&key.id, &key.store_id, &raw)
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Writes the ring to `path` (0600), atomically.
    pub fn save(&self, path: &Path) -> Result<(), SnapshotKeyRingError> {
        let bytes = serde_json::to_vec_pretty(&RingFile {
            format: FORMAT,
            keys: self.keys.clone(),
        })
        .map_err(|e| SnapshotKeyRingError::Invalid {
            path: path.to_owned(),
            reason: format!("cannot encode: {e}"),
        })?;
        write_atomic(path, &bytes, true)
    }

    /// Writes the trust file to `path` (readable: it holds public keys only), atomically.
    pub fn export_trust(&self, path: &Path) -> Result<(), SnapshotKeyRingError> {
        write_atomic(path, self.trust_file().as_bytes(), false)
    }
}

fn decode_key(key: &StoredKey) -> Result<SigningKey, SnapshotKeyError> {
    let pkcs8 = key
        .pkcs8
        .as_deref()
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .ok_or_else(|| SnapshotKeyError::BadPrivateKey(key.id.clone()))?;
    SigningKey::from_pkcs8(&key.store_id, &pkcs8)
        .map_err(|_| SnapshotKeyError::BadPrivateKey(key.id.clone()))
}

fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), SnapshotKeyRingError> {
    let io = |source| SnapshotKeyRingError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{SignatureError, SnapshotVersion, StoreRef, TrustedKeys};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "iamlet-snapshot-keys-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const A: &str = "111122223333";
    const DIGEST: &str = "00";

    fn store(id: &str) -> StoreRef {
        StoreRef {
            id: id.into(),
            epoch: 1,
        }
    }

    #[test]
    fn a_ring_is_created_private_kept_and_rotated_with_overlap() {
        let dir = temp("rotate");
        let path = dir.join("snapshot-signing.key");
        let (ring, created) = SnapshotKeyRing::load_or_create(&path, "s1").unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let first = ring.current().unwrap();
        // Loaded again: the same key, nothing written.
        let (again, created) = SnapshotKeyRing::load_or_create(&path, "s1").unwrap();
        assert!(!created);
        assert_eq!(again.current().unwrap().id(), first.id());
        // The trust file holds no private key.
        let text = std::fs::read_to_string(&path).unwrap();
        let pkcs8 = serde_json::from_str::<serde_json::Value>(&text).unwrap()["keys"][0]["pkcs8"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!again.trust_file().contains(&pkcs8));

        let v = SnapshotVersion::new(1, 1);
        let by_first = first.sign(A, v, &store("s1"), DIGEST);
        let mut ring = again;
        ring.rotate("s1").unwrap();
        let second = ring.current().unwrap();
        assert_ne!(second.id(), first.id());
        let by_second = second.sign(A, v, &store("s1"), DIGEST);
        let overlap = TrustedKeys::parse(&ring.trust_file()).unwrap();
        assert_eq!(overlap.verify(A, v, DIGEST, Some(&by_first)), Ok(()));
        assert_eq!(overlap.verify(A, v, DIGEST, Some(&by_second)), Ok(()));

        assert!(ring.retire(second.id()).is_err(), "the current key stays");
        ring.retire(first.id()).unwrap();
        ring.save(&path).unwrap();
        let (reloaded, _) = SnapshotKeyRing::load_or_create(&path, "s1").unwrap();
        let after = TrustedKeys::parse(&reloaded.trust_file()).unwrap();
        assert_eq!(after.verify(A, v, DIGEST, Some(&by_second)), Ok(()));
        assert_eq!(
            after.verify(A, v, DIGEST, Some(&by_first)),
            Err(SignatureError::RetiredKey(first.id().to_owned()))
        );
        // The retired key's private half is gone from the file.
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&pkcs8));
    }

    #[test]
    fn a_ring_of_another_store_rotates_and_keeps_the_old_key_accepted() {
        let dir = temp("store");
        let path = dir.join("k");
        let (ring, _) = SnapshotKeyRing::load_or_create(&path, "old").unwrap();
        let old = ring.current().unwrap();
        let (ring, rotated) = SnapshotKeyRing::load_or_create(&path, "new").unwrap();
        assert!(rotated);
        let new = ring.current().unwrap();
        assert_eq!(new.store_id(), "new");
        let trust = TrustedKeys::parse(&ring.trust_file()).unwrap();
        let v = SnapshotVersion::new(1, 1);
        let by_old = old.sign(A, v, &store("old"), DIGEST);
        assert_eq!(trust.verify(A, v, DIGEST, Some(&by_old)), Ok(()));
        // The old store's key cannot vouch for the new store.
        let forged = old.sign(A, v, &store("new"), DIGEST);
        assert!(matches!(
            trust.verify(A, v, DIGEST, Some(&forged)),
            Err(SignatureError::ForeignStore { .. })
        ));
    }

    #[test]
    fn a_damaged_ring_is_refused() {
        let dir = temp("damaged");
        let path = dir.join("k");
        for text in [
            "not json",
            r#"{"format":2,"keys":[]}"#,
            r#"{"format":1,"keys":[{"id":"x","store_id":"s","state":"current","public_key":"","pkcs8":"AAAA"}]}"#,
            r#"{"format":1,"keys":[{"id":"x","store_id":"s","state":"previous","public_key":""}]}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(
                SnapshotKeyRing::load_or_create(&path, "s").is_err(),
                "{text}"
            );
        }
    }
}
