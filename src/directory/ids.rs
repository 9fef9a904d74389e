//! Unique ids, access key ids and secrets in AWS's formats.
//!
//! Unique ids are a four-letter prefix naming the kind of entity and 17 characters of the
//! base32 alphabet (`A`–`Z`, `2`–`7`), 21 characters in all like `AIDAJQABLZS4A3QDU576Q`;
//! access key ids are `AKIA` and 16 more (20 characters); secret access keys are 40 characters
//! of the base64 alphabet. Production draws from the operating system's CSPRNG; tests may use
//! a seeded generator so that ids are reproducible.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

use crate::account::AccountId;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The kind of id, which decides its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPrefix {
    /// `AIDA`: an IAM user.
    User,
    /// `AGPA`: a group.
    Group,
    /// `AROA`: a role.
    Role,
    /// `ANPA`: a managed policy.
    Policy,
    /// `AKIA`: a long-term access key.
    AccessKey,
    /// `ASIA`: a temporary (STS) access key.
    TemporaryAccessKey,
    /// `AIPA`: an instance profile.
    InstanceProfile,
}

/// Draws ids and secrets.
pub struct IdGenerator {
    source: Source,
}

enum Source {
    System(SystemRandom),
    /// A splitmix64 stream: reproducible, for tests only.
    Seeded(u64),
}

// === impl IdPrefix ===

impl IdPrefix {
    /// The four-letter prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "AIDA",
            Self::Group => "AGPA",
            Self::Role => "AROA",
            Self::Policy => "ANPA",
            Self::AccessKey => "AKIA",
            Self::TemporaryAccessKey => "ASIA",
            Self::InstanceProfile => "AIPA",
        }
    }
}

impl IdPrefix {
    /// The account an access key id (`AKIA…`/`ASIA…` of 20 characters) encodes, if it is one
    /// of ours.
    pub fn account_of_access_key(access_key_id: &str) -> Option<String> {
        let prefix_ok = access_key_id.starts_with(Self::AccessKey.as_str())
            || access_key_id.starts_with(Self::TemporaryAccessKey.as_str());
        let encoded = access_key_id
            .get(4..12)
            .filter(|_| prefix_ok && access_key_id.len() == 20)?;
        let mut number = 0u64;
        for b in encoded.bytes() {
            let digit = BASE32.iter().position(|&c| c == b)?;
            number = (number << 5) | u64::try_from(digit).ok()?;
        }
        (number <= 999_999_999_999).then(|| format!("{number:012}"))
    }
}

// === impl IdGenerator ===

impl IdGenerator {
    /// Ids from the operating system's CSPRNG.
    pub fn system() -> Self {
        Self {
            source: Source::System(SystemRandom::new()),
        }
    }

    /// Reproducible ids for tests. Never use for secrets that protect anything.
    pub fn seeded(seed: u64) -> Self {
        Self {
            source: Source::Seeded(seed),
        }
    }

    /// A generator of its own, as strong as this one: the operating system's for a system
    /// generator, a stream seeded from this one's for a seeded one (tests stay reproducible).
    pub fn fork(&mut self) -> Self {
        match &self.source {
            Source::System(_) => Self::system(),
            Source::Seeded(_) => {
                let mut seed = [0u8; 8];
                self.fill(&mut seed);
                Self::seeded(u64::from_le_bytes(seed))
            }
        }
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        match &mut self.source {
            Source::System(rng) => {
                // The OS generator fails only when the kernel cannot provide randomness at
                // all. Zeroed or time-derived bytes would be predictable secrets, so retry:
                // an id is never issued from anything weaker.
                while rng.fill(out).is_err() {
                    std::thread::yield_now();
                }
            }
            Source::Seeded(state) => {
                for chunk in out.chunks_mut(8) {
                    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = *state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^= z >> 31;
                    for (dst, src) in chunk.iter_mut().zip(z.to_le_bytes()) {
                        *dst = src;
                    }
                }
            }
        }
    }

    fn alphabet_string(&mut self, alphabet: &[u8], len: usize) -> String {
        let mut bytes = vec![0u8; len];
        self.fill(&mut bytes);
        // The alphabets have 32 and 64 letters, which divide 256: no modulo bias.
        bytes
            .iter()
            .map(|b| {
                char::from(
                    alphabet
                        .get(usize::from(*b) % alphabet.len())
                        .copied()
                        .unwrap_or(b'A'),
                )
            })
            .collect()
    }

    /// A unique id: the prefix and 17 base32 characters.
    pub fn unique_id(&mut self, prefix: IdPrefix) -> String {
        format!("{}{}", prefix.as_str(), self.alphabet_string(BASE32, 17))
    }

    /// An access key id of `account`: `AKIA` (or `ASIA`), 8 base32 characters encoding the
    /// account id (as AWS's own key ids do, which `GetAccessKeyInfo` reads), and 8 random
    /// ones: a sidecar finds a key's tenant without an index.
    pub fn access_key_id(&mut self, prefix: IdPrefix, account: &str) -> String {
        // A tenant's account id is twelve digits (checked when the tenant is created), so it
        // parses; anything else encodes as account 0, which names no tenant.
        let number: u64 = if AccountId::is_valid(account) {
            account.parse().unwrap_or_default()
        } else {
            0
        };
        let encoded: String = (0..8)
            .rev()
            .map(|i| {
                // INVARIANT: masked to five bits, the value always fits a usize.
                let digit = usize::try_from((number >> (5 * i)) & 31).unwrap_or_default();
                char::from(BASE32.get(digit).copied().unwrap_or(b'A'))
            })
            .collect();
        format!(
            "{}{encoded}{}",
            prefix.as_str(),
            self.alphabet_string(BASE32, 8)
        )
    }

    /// A secret access key: 40 characters of the base64 alphabet.
    pub fn secret_access_key(&mut self) -> String {
        self.alphabet_string(BASE64, 40)
    }

    /// A base32 string of `len` characters (TOTP seeds).
    pub fn base32(&mut self, len: usize) -> String {
        self.alphabet_string(BASE32, len)
    }
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Source::System(_) => "system",
            Source::Seeded(_) => "seeded",
        };
        f.debug_struct("IdGenerator")
            .field("source", &kind)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_ids_encode_their_account() {
        let mut ids = IdGenerator::seeded(9);
        for account in [
            "000000000000",
            "111122223333",
            "999999999999",
            "123456789012",
        ] {
            for prefix in [IdPrefix::AccessKey, IdPrefix::TemporaryAccessKey] {
                let key = ids.access_key_id(prefix, account);
                assert_eq!(key.len(), 20);
                assert!(key.starts_with(prefix.as_str()));
                assert_eq!(
                    IdPrefix::account_of_access_key(&key).as_deref(),
                    Some(account)
                );
            }
        }
        assert_eq!(
            IdPrefix::account_of_access_key("AKIA99999999EXAMPLE1"),
            None,
            "not base32"
        );
        assert_eq!(
            IdPrefix::account_of_access_key("AKIA77777777EXAMPLE1"),
            None,
            "beyond twelve digits"
        );
        assert_eq!(
            IdPrefix::account_of_access_key("AIDAAAAAAAAAAAAAAAAA"),
            None
        );
        assert_eq!(IdPrefix::account_of_access_key("AKIA1"), None);
    }

    #[test]
    fn formats_match_aws() {
        let mut ids = IdGenerator::system();
        let user = ids.unique_id(IdPrefix::User);
        assert_eq!(user.len(), 21);
        assert!(user.starts_with("AIDA"));
        assert!(user.bytes().all(|b| BASE32.contains(&b)));
        let key = ids.access_key_id(IdPrefix::AccessKey, "111122223333");
        assert_eq!(key.len(), 20);
        assert!(key.starts_with("AKIA"));
        let secret = ids.secret_access_key();
        assert_eq!(secret.len(), 40);
        assert!(secret.bytes().all(|b| BASE64.contains(&b)));
        assert_ne!(ids.secret_access_key(), secret);
    }

    #[test]
    fn seeded_ids_are_reproducible() {
        let a = IdGenerator::seeded(7).unique_id(IdPrefix::Role);
        let b = IdGenerator::seeded(7).unique_id(IdPrefix::Role);
        assert_eq!(a, b);
        assert_ne!(a, IdGenerator::seeded(8).unique_id(IdPrefix::Role));
    }
}
