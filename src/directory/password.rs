//! Console password hashes: PBKDF2-HMAC-SHA256 with a random 16-byte salt, stored as
//! `pbkdf2-sha256$ITERATIONS$SALT$HASH` (standard base64 without padding).
//!
//! Verification is constant-time (`ring::pbkdf2::verify`) and reads the iteration count from
//! the stored hash, so raising the production count later keeps old hashes verifiable.
//!
//! PBKDF2 at the production count takes a large fraction of a second, and a password change
//! under reuse prevention verifies up to 25 hashes: too long to hold the control plane's write
//! lock for. A [`PasswordWork`] lets that work be done ahead: the control plane runs a
//! password-bearing action once on a copy of the tenant, outside the lock, with a hasher that
//! records every derivation and verification, then runs it for real under the lock with the
//! same record, where each one is found rather than computed. Whatever changed in between
//! (another password set meanwhile) is simply computed then, so the outcome is always the
//! one the tenant under the lock gives.

use std::num::NonZeroU32;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use ring::pbkdf2;

use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::{IdGenerator, Secret};

/// The scheme tag of a stored hash.
const SCHEME: &str = "pbkdf2-sha256";
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
static ALGORITHM: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;

/// How passwords are hashed: the PBKDF2 iteration count, and the work done ahead, if any.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    iterations: NonZeroU32,
    work: Option<Arc<PasswordWork>>,
}

/// PBKDF2 results of one action, recorded by a run ahead and found by the run that counts
/// (see the module's docs). Held only for the length of one call; the passwords it keeps are
/// the call's own parameters.
#[derive(Debug, Default)]
pub struct PasswordWork {
    /// (stored hash, password, whether they match).
    verified: Mutex<Vec<(Secret, Secret, bool)>>,
    /// (password, its new hash): each is handed out once, so two hashes of one password
    /// still get two salts.
    hashed: Mutex<Vec<(Secret, Secret)>>,
}

// === impl PasswordWork ===

impl PasswordWork {
    /// How many results it holds (derivations not yet handed out, and verifications).
    pub fn len(&self) -> usize {
        self.verified.lock().len() + self.hashed.lock().len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Two secrets compare equal, in time that does not depend on where they differ.
fn same(a: &Secret, b: &str) -> bool {
    a.expose().as_bytes().ct_eq(b.as_bytes()).into()
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
            work: None,
        }
    }

    /// This hasher, recording into and reading from `work`.
    #[must_use]
    pub fn with_work(&self, work: Arc<PasswordWork>) -> Self {
        Self {
            iterations: self.iterations,
            work: Some(work),
        }
    }

    /// The iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }

    /// Whether `password` matches the stored hash, in constant time; a result recorded in
    /// this hasher's work is used rather than computed again.
    pub fn verify(&self, stored: &Secret, password: &str) -> bool {
        let Some(work) = &self.work else {
            return verify_password(stored, password);
        };
        let known = work
            .verified
            .lock()
            .iter()
            .find(|(s, p, _)| same(s, stored.expose()) && same(p, password))
            .map(|(_, _, matched)| *matched);
        if let Some(matched) = known {
            return matched;
        }
        let matched = verify_password(stored, password);
        work.verified
            .lock()
            .push((stored.clone(), Secret::new(password.to_owned()), matched));
        matched
    }

    /// Hashes `password` with a fresh salt drawn from `ids`; a hash of the same password
    /// recorded in this hasher's work is taken instead (once).
    pub fn hash(&self, password: &str, ids: &mut IdGenerator) -> Secret {
        let Some(work) = &self.work else {
            return self.derive(password, ids);
        };
        let mut hashed = work.hashed.lock();
        if let Some(i) = hashed.iter().position(|(p, _)| same(p, password)) {
            return hashed.swap_remove(i).1;
        }
        drop(hashed);
        let hash = self.derive(password, ids);
        work.hashed
            .lock()
            .push((Secret::new(password.to_owned()), hash.clone()));
        hash
    }

    fn derive(&self, password: &str, ids: &mut IdGenerator) -> Secret {
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
    fn work_recorded_ahead_is_found_by_the_run_that_counts() {
        let hasher = PasswordHasher::with_iterations(10);
        let mut ids = IdGenerator::seeded(7);
        let stored = hasher.hash("Old-Horse-1", &mut ids);
        let work = Arc::new(PasswordWork::default());
        let ahead = hasher.with_work(Arc::clone(&work));
        // The run ahead computes and records.
        assert!(ahead.verify(&stored, "Old-Horse-1"));
        assert!(!ahead.verify(&stored, "Other-Horse-1"));
        let new = ahead.hash("New-Horse-2", &mut ids);
        assert_eq!(work.len(), 3);
        // The run that counts finds each result: the verifications, and the hash (once).
        let counting = hasher.with_work(Arc::clone(&work));
        assert!(counting.verify(&stored, "Old-Horse-1"));
        assert!(!counting.verify(&stored, "Other-Horse-1"));
        assert_eq!(counting.hash("New-Horse-2", &mut ids), new);
        assert_eq!(work.len(), 2, "a recorded hash is handed out once");
        // A second hash of the same password gets a salt of its own.
        let again = counting.hash("New-Horse-2", &mut ids);
        assert_ne!(again, new);
        assert!(verify_password(&again, "New-Horse-2"));
        // A recorded result never stands for another stored hash or password.
        let other = hasher.hash("Old-Horse-1", &mut ids);
        assert!(counting.verify(&other, "Old-Horse-1"));
        assert!(!counting.verify(&other, "old-horse-1"));
    }

    #[test]
    fn production_settings() {
        assert_eq!(PasswordHasher::PRODUCTION.iterations(), 600_000);
        assert_eq!(
            PasswordHasher::default().iterations(),
            PasswordHasher::PRODUCTION.iterations()
        );
        assert_eq!(PasswordHasher::with_iterations(0).iterations(), 1);
    }
}
