//! Session-token issuer keys.
//!
//! Each tenant signs its session tokens with Ed25519 keys of its own, named by a key id that
//! every token carries. Trust model (the whole of it in the `sts` crate docs): the control
//! plane generates the keys and keeps their private halves; sidecars receive the public halves
//! and the session-secret keys, and mint with short-lived issuing keys the issuer key certifies
//! for them. A sidecar never receives another tenant's keys, so a token of tenant A can
//! neither be minted nor verified as tenant B's. Rotation makes a new key active for
//! signing and keeps the previous ones for verification until they age out, so tokens issued
//! just before a rotation stay valid for their lifetime.

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::super::model::Secret;
use super::super::{DirectoryError, IdGenerator, IssuerKey, Tenant};

/// How many keys a tenant keeps: the active one and two retired ones still verifying.
pub const RETAINED_ISSUER_KEYS: usize = 3;

// === impl Tenant ===

impl Tenant {
    /// Creates a new active issuer key; the previous keys are retired (they still verify) and
    /// the oldest beyond [`RETAINED_ISSUER_KEYS`] are dropped.
    pub fn rotate_issuer_key(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
    ) -> Result<&IssuerKey, DirectoryError> {
        let mut seed = [0u8; 32];
        ids.fill(&mut seed);
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| DirectoryError::InvalidInput("Cannot generate an issuer key.".into()))?;
        // Independent of the signing key: sidecars hold this one (SigV4 is symmetric), never
        // the signing key.
        let mut session_secret = [0u8; 32];
        ids.fill(&mut session_secret);
        let key = IssuerKey {
            key_id: format!("k{}", ids.base32(16).to_ascii_lowercase()),
            public_key: pair.public_key().as_ref().to_vec(),
            private_key: Some(Secret::new(
                base64::engine::general_purpose::STANDARD.encode(seed),
            )),
            session_secret: Some(Secret::new(
                base64::engine::general_purpose::STANDARD.encode(session_secret),
            )),
            created_at: now,
            active: true,
        };
        for old in &mut self.issuer_keys {
            old.active = false;
        }
        self.issuer_keys.push(key);
        let excess = self.issuer_keys.len().saturating_sub(RETAINED_ISSUER_KEYS);
        self.issuer_keys.drain(..excess);
        self.issuer_keys
            .last()
            .ok_or_else(|| DirectoryError::InvalidInput("Cannot generate an issuer key.".into()))
    }

    /// The key that signs new tokens.
    pub fn active_issuer_key(&self) -> Option<&IssuerKey> {
        self.issuer_keys.iter().rev().find(|k| k.active)
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{UnparsedPublicKey, ED25519};

    use super::*;

    #[test]
    fn rotation_keeps_retired_keys_for_verification_and_signs_with_the_new_one() {
        let mut t = Tenant::new("111122223333", 0);
        let mut ids = IdGenerator::seeded(3);
        let first = t.rotate_issuer_key(&mut ids, 10).unwrap().key_id.clone();
        for n in 0..4 {
            t.rotate_issuer_key(&mut ids, 20 + n).unwrap();
        }
        assert_eq!(t.issuer_keys.len(), RETAINED_ISSUER_KEYS);
        assert!(
            t.issuer_keys.iter().all(|k| k.key_id != first),
            "the oldest key aged out"
        );
        assert_eq!(t.issuer_keys.iter().filter(|k| k.active).count(), 1);
        let active = t.active_issuer_key().unwrap();
        assert_eq!(active.key_id, t.issuer_keys.last().unwrap().key_id);

        // The stored seed signs, and the stored public key verifies.
        let seed = base64::engine::general_purpose::STANDARD
            .decode(active.private_key.as_ref().unwrap().expose())
            .unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let signature = pair.sign(b"token");
        UnparsedPublicKey::new(&ED25519, &active.public_key)
            .verify(b"token", signature.as_ref())
            .unwrap();
        assert!(!format!("{active:?}").contains(active.private_key.as_ref().unwrap().expose()));
    }
}
