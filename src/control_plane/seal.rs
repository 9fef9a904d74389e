//! Secrets at rest: every [`Secret`] of a tenant is sealed with AES-256-GCM before the store
//! writes it, so a copy of the database alone reveals no secret access key, MFA seed or
//! issuer key.
//!
//! The key is 32 random bytes in a file of its own (`--secrets-key-file`), created with mode
//! 0600 on first start; keep it apart from the database (a Kubernetes Secret beside a volume).
//! A sealed value is `sealed:v1:<base64(nonce || ciphertext || tag)>`, with the tenant's
//! account id as associated data: a value moved to another tenant does not open. A value
//! without the prefix is a plaintext secret stored before sealing existed; it is read as is
//! and sealed at the tenant's next change.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::directory::{Secret, Tenant};

const PREFIX: &str = "sealed:v1:";
const KEY_LEN: usize = 32;

/// Seals and opens a tenant's secrets.
pub struct SecretSealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

/// Why secrets could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file cannot be read or created.
    #[error("secrets key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-byte base64 key.
    #[error("secrets key file {0}: expected 32 bytes in base64")]
    BadKey(PathBuf),
    /// A sealed secret does not open with this key (another key, or tampering).
    #[error("a secret of tenant `{0}` does not open with this secrets key")]
    Open(String),
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSealer(<key redacted>)")
    }
}

// === impl SecretSealer ===

impl SecretSealer {
    /// Reads the key at `path`, or creates it (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let io = |source| SealError::KeyFile {
            path: path.to_owned(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = SystemRandom::new();
                let mut key = [0u8; KEY_LEN];
                rng.fill(&mut key).map_err(|_| SealError::Random)?;
                let text = base64::engine::general_purpose::STANDARD.encode(key);
                write_new_private(path, &text).map_err(io)?;
                text
            }
            Err(e) => return Err(io(e)),
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey(path.to_owned()))?;
        let key: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| SealError::BadKey(path.to_owned()))?;
        Self::from_key(&key).ok_or_else(|| SealError::BadKey(path.to_owned()))
    }

    /// A sealer with `key` (tests).
    pub fn from_key(key: &[u8; KEY_LEN]) -> Option<Self> {
        let unbound = UnboundKey::new(&AES_256_GCM, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// `tenant` with every secret sealed (already sealed ones stay as they are).
    pub fn seal_tenant(&self, tenant: &Tenant) -> Result<Tenant, SealError> {
        let mut sealed = tenant.clone();
        let aad = sealed.account_id.clone();
        for secret in sealed.secrets_mut() {
            if !secret.expose().starts_with(PREFIX) {
                let value = self.seal(secret, &aad)?;
                secret.replace(value);
            }
        }
        Ok(sealed)
    }

    /// Opens every sealed secret of `tenant` in place.
    pub fn open_tenant(&self, tenant: &mut Tenant) -> Result<(), SealError> {
        let aad = tenant.account_id.clone();
        for secret in tenant.secrets_mut() {
            if let Some(sealed) = secret.expose().strip_prefix(PREFIX) {
                let value = self
                    .open(sealed, &aad)
                    .ok_or_else(|| SealError::Open(aad.clone()))?;
                secret.replace(value);
            }
        }
        Ok(())
    }

    fn seal(&self, secret: &Secret, aad: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut buffer = secret.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    fn open(&self, sealed: &str, aad: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buffer)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// Writes `text` to a new file readable by its owner only (its directory created if needed);
/// an existing file is an error, so that two processes starting at once never each write
/// their own.
pub(crate) fn write_new_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{IdGenerator, Tenant};

    fn tenant_with_secrets() -> (Tenant, String) {
        let mut tenant = Tenant::new("111122223333", 0);
        let mut ids = IdGenerator::seeded(7);
        let (_, secret) = tenant.create_root_access_key(&mut ids, 0).unwrap();
        tenant.rotate_issuer_key(&mut ids, 0).unwrap();
        (tenant, secret)
    }

    #[test]
    fn sealed_tenants_hold_no_plaintext_secret_and_open_to_the_original() {
        let sealer = SecretSealer::from_key(&[7; 32]).unwrap();
        let (tenant, root_secret) = tenant_with_secrets();
        let sealed = sealer.seal_tenant(&tenant).unwrap();
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains(&root_secret));
        let issuer = tenant.issuer_keys[0].private_key.as_ref().unwrap().expose();
        assert!(!stored.contains(issuer));
        let session_secret = tenant.issuer_keys[0]
            .session_secret
            .as_ref()
            .unwrap()
            .expose();
        assert!(!stored.contains(session_secret));
        // The root key's secret, the issuer's private key and its session-secret key.
        assert_eq!(stored.matches(PREFIX).count(), 3);

        let mut read: Tenant = serde_json::from_str(&stored).unwrap();
        sealer.open_tenant(&mut read).unwrap();
        assert_eq!(read, tenant);
    }

    #[test]
    fn another_key_or_another_tenant_does_not_open() {
        let sealer = SecretSealer::from_key(&[7; 32]).unwrap();
        let (tenant, _) = tenant_with_secrets();
        let sealed = sealer.seal_tenant(&tenant).unwrap();

        let other = SecretSealer::from_key(&[8; 32]).unwrap();
        let mut copy = sealed.clone();
        assert!(matches!(
            other.open_tenant(&mut copy),
            Err(SealError::Open(_))
        ));

        // The same ciphertext moved to another account fails its associated data.
        let mut moved = sealed;
        moved.account_id = "444455556666".into();
        assert!(sealer.open_tenant(&mut moved).is_err());
    }

    #[test]
    fn plaintext_from_before_sealing_is_read_as_is() {
        let sealer = SecretSealer::from_key(&[7; 32]).unwrap();
        let (tenant, _) = tenant_with_secrets();
        let mut read = tenant.clone();
        sealer.open_tenant(&mut read).unwrap();
        assert_eq!(read, tenant);
    }

    #[test]
    fn the_key_file_is_created_private_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("iamlet-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("secrets.key");
        let (tenant, _) = tenant_with_secrets();
        let sealed = SecretSealer::load_or_create(&path)
            .unwrap()
            .seal_tenant(&tenant)
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second start reads the same key.
        let mut read = sealed;
        SecretSealer::load_or_create(&path)
            .unwrap()
            .open_tenant(&mut read)
            .unwrap();
        assert_eq!(read, tenant);

        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            SecretSealer::load_or_create(&path),
            Err(SealError::BadKey(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
