//! Console password hashes: PBKDF2-HMAC-SHA256 with a random 16-byte salt, stored as
//! `pbkdf2-sha256$ITERATIONS$SALT$HASH` (standard base64 without padding).
//!
//! Verification is constant-time (`ring::pbkdf2::verify`) and reads the iteration count from
//! the stored hash, so raising the production count later keeps old hashes verifiable.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use ring::pbkdf2;

use super::{IdGenerator, Secret};

/// The scheme tag of a stored hash.
const SCHEME: &str = "pbkdf2-sha256";
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
static ALGORITHM: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;

/// How passwords are hashed: the PBKDF2 iteration count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHasher {
    iterations: NonZeroU32,
}

// === impl PasswordHasher ===

impl PasswordHasher {
    /// The production setting: 600,000 iterations (OWASP's figure for PBKDF2-HMAC-SHA256).
    pub const PRODUCTION: Self = Self::with_iterations(600_000);

    /// A hasher with `iterations` rounds (at least one). Lower counts are for tests, where
    /// unoptimized builds make the production count slow.
    pub const fn with_iterations(iterations: u32) -> Self {
        Self {
            iterations: match NonZeroU32::new(iterations) {
                Some(n) => n,
                None => NonZeroU32::MIN,
            },
        }
    }

    /// The iteration count.
    pub fn iterations(self) -> u32 {
        self.iterations.get()
    }

    /// Hashes `password` with a fresh salt drawn from `ids`.
    pub fn hash(self, password: &str, ids: &mut IdGenerator) -> Secret {
        let mut salt = [0u8; SALT_LEN];
        ids.fill(&mut salt);
        let mut hash = [0u8; HASH_LEN];
        pbkdf2::derive(
            ALGORITHM,
            self.iterations,
            &salt,
            password.as_bytes(),
            &mut hash,
        );
        Secret::new(format!(
            "{SCHEME}${}${}${}",
            self.iterations,
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(hash)
        ))
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::PRODUCTION
    }
}

/// Whether `password` matches the stored hash, in constant time. A malformed stored hash
/// matches nothing.
pub fn verify_password(stored: &Secret, password: &str) -> bool {
    let mut parts = stored.expose().split('$');
    let (Some(SCHEME), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let Some(iterations) = iterations.parse::<u32>().ok().and_then(NonZeroU32::new) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD_NO_PAD.decode(salt), STANDARD_NO_PAD.decode(hash)) else {
        return false;
    };
    pbkdf2::verify(ALGORITHM, iterations, &salt, password.as_bytes(), &hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_refuse_other_passwords() {
        let mut ids = IdGenerator::seeded(1);
        let hasher = PasswordHasher::with_iterations(10);
        let stored = hasher.hash("Correct-Horse-1", &mut ids);
        let text = stored.expose();
        assert!(text.starts_with("pbkdf2-sha256$10$"), "{text}");
        assert_eq!(text.split('$').count(), 4);
        assert!(!text.contains("Correct-Horse-1"));
        assert!(verify_password(&stored, "Correct-Horse-1"));
        assert!(!verify_password(&stored, "Correct-Horse-2"));
        assert!(!verify_password(&stored, ""));
        // A fresh salt each time: the same password never hashes the same.
        assert_ne!(hasher.hash("Correct-Horse-1", &mut ids), stored);
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        for bad in [
            "",
            "pbkdf2-sha256$10$AAAA",
            "pbkdf2-sha256$0$AAAA$AAAA",
            "pbkdf2-sha256$x$AAAA$AAAA",
            "pbkdf2-sha1$10$AAAA$AAAA",
            "pbkdf2-sha256$10$!!$AAAA",
            "pbkdf2-sha256$10$AAAA$AAAA$extra",
        ] {
            assert!(!verify_password(&Secret::new(bad), "x"), "{bad}");
        }
    }

    #[test]
    fn production_settings() {
        assert_eq!(PasswordHasher::PRODUCTION.iterations(), 600_000);
        assert_eq!(PasswordHasher::default(), PasswordHasher::PRODUCTION);
        assert_eq!(PasswordHasher::with_iterations(0).iterations(), 1);
    }
}
