//! The last known good snapshot of each tenant, on the sidecar's disk (RELIABILITY G5).
//!
//! One file per tenant, `tenant-<account>.json`, written atomically: a temporary file is
//! written and fsynced, renamed over the old one, and the directory fsynced, so a crash at any
//! point leaves either the old file or the new one, never a mix. The file holds the tenant's
//! directory exactly as the control plane sent it, with its version and a SHA-256 digest binding the
//! account, the version, the store and the content: a truncated, bit-flipped or foreign file is
//! refused, never served.
//!
//! # Signed snapshots
//!
//! The digest alone detects corruption, not forgery: whoever can write the state directory
//! could edit `"Effect":"Deny"` into `"Allow"` and recompute it. So the file also keeps the
//! control plane's Ed25519 signature of the update ([`super::sign`]), over the account, the
//! version, the store identity and epoch, and the SHA-256 of the payload as shipped. The
//! sidecar verifies it against its trusted public keys (`--snapshot-keys`) when it loads the
//! file, as it did when the update arrived; an edited file no longer verifies and is refused
//! (the tenant stays unloaded until the control plane sends it again). Only the control plane
//! holds the private key, so a state directory is tamper-evident: an attacker who can write it
//! can delete or roll back to an older signed file of the same store, but not forge one. A
//! rollback is bounded by the stream: the control plane's newer version replaces it on connect.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::directory::Tenant;

use super::sign::SnapshotSignature;
use super::{sha256_hex, SnapshotVersion};

const FORMAT: u32 = 1;

/// A tenant read back from disk, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedTenant {
    /// The directory.
    pub tenant: Tenant,
    /// Its version.
    pub version: SnapshotVersion,
    /// The control plane's store it came from (`None`: written before stores had identities).
    pub store: Option<StoreRef>,
    /// The payload as the control plane shipped it (what the signature covers).
    pub payload: String,
    /// The lowercase hex SHA-256 of `payload`.
    pub payload_sha256: String,
    /// The control plane's signature (`None`: written unsigned, refused by a verifying
    /// sidecar).
    pub signature: Option<SnapshotSignature>,
}

/// A control plane's store, as sidecars know it: its identity (random, made once) and its
/// epoch. A sidecar takes a removal only from the store a tenant came from (issue #13).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoreRef {
    /// The store's identity.
    pub id: String,
    /// The store's epoch.
    pub epoch: u64,
}

impl std::fmt::Display for StoreRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store {} epoch {}", self.id, self.epoch)
    }
}

/// Why a persisted tenant could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid snapshot (truncated, corrupted, wrong format).
    #[error("{path}: refused: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file belongs to another tenant.
    #[error("{path}: holds tenant `{found}`, not `{expected}`")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// The tenant asked for.
        expected: String,
        /// The tenant found.
        found: String,
    },
    /// The account id cannot name a file.
    #[error("invalid account id `{0}`: expected 12 digits")]
    InvalidAccount(String),
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    account_id: String,
    version: SnapshotVersion,
    sha256: String,
    tenant: String,
    /// Absent in files written before stores had identities; bound by the digest when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<StoreRef>,
    /// The control plane's signature; bound by the digest when present (and verified by the
    /// sidecar against its trusted keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<SnapshotSignature>,
}

/// The file that holds `account_id`'s snapshot under `dir`.
fn file_for(dir: &Path, account_id: &str) -> Result<PathBuf, PersistError> {
    if !crate::account::AccountId::is_valid(account_id) {
        return Err(PersistError::InvalidAccount(account_id.to_owned()));
    }
    Ok(dir.join(format!("tenant-{account_id}.json")))
}

fn digest_hex(
    account_id: &str,
    version: SnapshotVersion,
    payload: &str,
    store: Option<&StoreRef>,
    signature: Option<&SnapshotSignature>,
) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(account_id.as_bytes());
    ctx.update(b"\n");
    ctx.update(&version.epoch.to_be_bytes());
    ctx.update(&version.seq.to_be_bytes());
    ctx.update(b"\n");
    ctx.update(payload.as_bytes());
    if let Some(store) = store {
        // After the payload, so a file without a store digests as it always did.
        ctx.update(b"\nstore\n");
        ctx.update(store.id.as_bytes());
        ctx.update(b"\n");
        ctx.update(&store.epoch.to_be_bytes());
    }
    if let Some(signature) = signature {
        ctx.update(b"\nsignature\n");
        ctx.update(signature.key_id.as_bytes());
        ctx.update(b"\n");
        ctx.update(signature.store.id.as_bytes());
        ctx.update(b"\n");
        ctx.update(&signature.store.epoch.to_be_bytes());
        ctx.update(b"\n");
        ctx.update(signature.value.as_bytes());
    }
    data_encoding::HEXLOWER.encode(ctx.finish().as_ref())
}

/// Writes `tenant` at `version`, from `store`, unsigned (re-encoded; for snapshots that came
/// without a signature), as the last known good snapshot, atomically.
pub fn write_last_known_good(
    dir: &Path,
    tenant: &Tenant,
    version: SnapshotVersion,
    store: Option<&StoreRef>,
) -> Result<PathBuf, PersistError> {
    let path = file_for(dir, &tenant.account_id)?;
    let payload = serde_json::to_string(tenant).map_err(|e| PersistError::Corrupt {
        path: path.clone(),
        reason: format!("cannot encode the tenant: {e}"),
    })?;
    write_signed_last_known_good(dir, &tenant.account_id, &payload, version, store, None)
}

/// Writes `payload` (tenant `account_id` as the control plane shipped it) at `version`, from
/// `store`, with the control plane's `signature`, as the last known good snapshot, atomically.
pub fn write_signed_last_known_good(
    dir: &Path,
    account_id: &str,
    payload: &str,
    version: SnapshotVersion,
    store: Option<&StoreRef>,
    signature: Option<&SnapshotSignature>,
) -> Result<PathBuf, PersistError> {
    let path = file_for(dir, account_id)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PersistError::Io { path, source }
    };
    let envelope = Envelope {
        format: FORMAT,
        account_id: account_id.to_owned(),
        version,
        sha256: digest_hex(account_id, version, payload, store, signature),
        tenant: payload.to_owned(),
        store: store.cloned(),
        signature: signature.cloned(),
    };
    let bytes = serde_json::to_vec(&envelope).map_err(|e| PersistError::Corrupt {
        path: path.clone(),
        reason: format!("cannot encode the envelope: {e}"),
    })?;
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".tenant-{account_id}.json.tmp"));
    let mut file = open_private(&tmp).map_err(io(&tmp))?;
    file.write_all(&bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    // Make the rename itself durable.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(path)
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Deletes the persisted snapshot of `account_id` (the tenant was removed): a restarted sidecar
/// must not serve it again. A file that is already gone is not an error.
pub fn remove_last_known_good(dir: &Path, account_id: &str) -> Result<(), PersistError> {
    let path = file_for(dir, account_id)?;
    match fs::remove_file(&path) {
        Ok(()) => File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| PersistError::Io { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PersistError::Io { path, source }),
    }
}

/// Reads and verifies the last known good snapshot of `account_id`.
pub fn read_last_known_good(dir: &Path, account_id: &str) -> Result<PersistedTenant, PersistError> {
    let path = file_for(dir, account_id)?;
    let corrupt = |reason: String| PersistError::Corrupt {
        path: path.clone(),
        reason,
    };
    let bytes = fs::read(&path).map_err(|source| PersistError::Io {
        path: path.clone(),
        source,
    })?;
    let envelope: Envelope =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not a snapshot file: {e}")))?;
    if envelope.format != FORMAT {
        return Err(corrupt(format!("unknown format {}", envelope.format)));
    }
    if envelope.account_id != account_id {
        return Err(PersistError::Foreign {
            path,
            expected: account_id.to_owned(),
            found: envelope.account_id,
        });
    }
    let expected = digest_hex(
        &envelope.account_id,
        envelope.version,
        &envelope.tenant,
        envelope.store.as_ref(),
        envelope.signature.as_ref(),
    );
    // Not a secret: a plain comparison is fine for an integrity digest.
    if expected != envelope.sha256 {
        return Err(corrupt("the digest does not match the content".into()));
    }
    let tenant: Tenant = serde_json::from_str(&envelope.tenant)
        .map_err(|e| corrupt(format!("the tenant does not decode: {e}")))?;
    if tenant.account_id != account_id {
        return Err(PersistError::Foreign {
            path,
            expected: account_id.to_owned(),
            found: tenant.account_id,
        });
    }
    Ok(PersistedTenant {
        tenant,
        version: envelope.version,
        store: envelope.store,
        payload_sha256: sha256_hex(&envelope.tenant),
        payload: envelope.tenant,
        signature: envelope.signature,
    })
}

#[cfg(test)]
mod tests {
    use super::super::compile::tests::demo_tenant;
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("iamlet-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const A: &str = "111122223333";

    #[test]
    fn round_trips_and_is_private() {
        let dir = temp_dir("round-trip");
        let tenant = demo_tenant();
        let path = write_last_known_good(&dir, &tenant, SnapshotVersion::new(2, 7), None).unwrap();
        let read = read_last_known_good(&dir, A).unwrap();
        assert_eq!(read.tenant, tenant);
        assert_eq!(read.version, SnapshotVersion::new(2, 7));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // A newer write replaces it whole.
        let mut newer = demo_tenant();
        newer.alias = Some("renamed".into());
        write_last_known_good(&dir, &newer, SnapshotVersion::new(2, 8), None).unwrap();
        assert_eq!(
            read_last_known_good(&dir, A)
                .unwrap()
                .tenant
                .alias
                .as_deref(),
            Some("renamed")
        );
    }

    #[test]
    fn every_single_bit_flip_and_every_truncation_is_refused() {
        // RELIABILITY T11: a corrupted file is never served.
        let dir = temp_dir("flips");
        let store = StoreRef {
            id: "0123456789abcdef".into(),
            epoch: 7,
        };
        let path = write_last_known_good(
            &dir,
            &demo_tenant(),
            SnapshotVersion::new(0, 3),
            Some(&store),
        )
        .unwrap();
        let good = fs::read(&path).unwrap();
        let mut accepted = Vec::new();
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                fs::write(&path, &bad).unwrap();
                if read_last_known_good(&dir, A).is_ok() {
                    accepted.push((i, bit));
                }
            }
        }
        for len in 0..good.len() {
            fs::write(&path, &good[..len]).unwrap();
            assert!(read_last_known_good(&dir, A).is_err(), "truncated to {len}");
        }
        assert!(accepted.is_empty(), "flips accepted: {accepted:?}");
        fs::write(&path, &good).unwrap();
        assert!(read_last_known_good(&dir, A).is_ok());
    }

    #[test]
    fn a_file_of_another_tenant_is_refused() {
        let dir = temp_dir("foreign");
        let path =
            write_last_known_good(&dir, &demo_tenant(), SnapshotVersion::new(0, 1), None).unwrap();
        fs::copy(&path, dir.join("tenant-444455556666.json")).unwrap();
        assert!(matches!(
            read_last_known_good(&dir, "444455556666"),
            Err(PersistError::Foreign { .. })
        ));
        assert!(matches!(
            read_last_known_good(&dir, "../etc/passwd"),
            Err(PersistError::InvalidAccount(_))
        ));
        assert!(matches!(
            read_last_known_good(&dir, "999988887777"),
            Err(PersistError::Io { .. })
        ));
    }

    #[test]
    fn t12_a_crash_at_any_step_of_persisting_leaves_exactly_old_or_new() {
        // RELIABILITY T12: the states a crash can leave, step by step (the temporary file
        // written up to any byte, written whole but not renamed, renamed): the file read is
        // exactly the old version or the new one, never a mix, and the temporary file is
        // never read.
        let dir = temp_dir("t12");
        let store = StoreRef {
            id: "s".into(),
            epoch: 1,
        };
        let old = demo_tenant();
        write_last_known_good(&dir, &old, SnapshotVersion::new(1, 1), Some(&store)).unwrap();
        let mut new = demo_tenant();
        new.alias = Some("newer".into());
        // The new envelope, as the write would produce it (made in a scratch directory).
        let scratch = temp_dir("t12-scratch");
        let made = write_last_known_good(&scratch, &new, SnapshotVersion::new(1, 2), Some(&store))
            .unwrap();
        let new_bytes = fs::read(&made).unwrap();
        let tmp = dir.join(format!(".tenant-{A}.json.tmp"));
        let step = (new_bytes.len() / 97).max(1);
        for written in (0..=new_bytes.len()).step_by(step).chain([new_bytes.len()]) {
            // Crashed while writing (or before the fsync or the rename): the old file serves.
            fs::write(&tmp, &new_bytes[..written]).unwrap();
            let read = read_last_known_good(&dir, A).unwrap();
            assert_eq!(
                (read.version, read.tenant.alias.as_deref()),
                (SnapshotVersion::new(1, 1), old.alias.as_deref()),
                "tmp written to {written}"
            );
        }
        // Crashed after the rename (before the directory fsync): the new file, whole.
        fs::rename(&tmp, dir.join(format!("tenant-{A}.json"))).unwrap();
        let read = read_last_known_good(&dir, A).unwrap();
        assert_eq!(read.version, SnapshotVersion::new(1, 2));
        assert_eq!(read.tenant, new);
        assert_eq!(read.store, Some(store));
    }

    #[test]
    fn a_leftover_temporary_file_is_never_read() {
        // A crash between write and rename leaves the temporary file; the old file serves.
        let dir = temp_dir("crash");
        write_last_known_good(&dir, &demo_tenant(), SnapshotVersion::new(0, 1), None).unwrap();
        fs::write(
            dir.join(format!(".tenant-{A}.json.tmp")),
            b"{\"format\":1,\"acc",
        )
        .unwrap();
        assert_eq!(
            read_last_known_good(&dir, A).unwrap().version,
            SnapshotVersion::new(0, 1)
        );
        // And the next write replaces the leftover.
        write_last_known_good(&dir, &demo_tenant(), SnapshotVersion::new(0, 2), None).unwrap();
        assert_eq!(
            read_last_known_good(&dir, A).unwrap().version,
            SnapshotVersion::new(0, 2)
        );
    }
}
