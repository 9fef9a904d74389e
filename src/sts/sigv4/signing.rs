//! Deriving the SigV4 signing key and signing a string to sign.

use std::fmt;

use data_encoding::HEXLOWER;
use ring::hmac;

use super::TERMINATOR;

/// The derived key `kSigning` for one (secret, date, region, service), so callers can cache
/// the four-HMAC derivation. Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct SigningKey {
    pub(super) key: hmac::Key,
    /// The raw key bytes, kept only so tests can compare them with AWS's published value.
    #[cfg(test)]
    pub(super) bytes: [u8; 32],
}

// === impl SigningKey ===

impl SigningKey {
    /// Derives `kSigning` = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
    /// "aws4_request"), `date` being the scope's `yyyymmdd`.
    pub fn derive(secret: &[u8], date: &str, region: &str, service: &str) -> Self {
        let k_date = with_aws4_prefix(secret, |k_secret| {
            hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, k_secret),
                date.as_bytes(),
            )
        });
        Self::from_date_key(k_date.as_ref(), region, service)
    }

    /// Derives `kSigning` from `kDate` (`HMAC("AWS4" + secret, date)`), as a sidecar does: it
    /// holds date keys, never the secret (issue #20). The key is valid only for the date
    /// `k_date` was made for: a request scoped to another day fails as a wrong secret does.
    pub fn from_date_key(k_date: &[u8], region: &str, service: &str) -> Self {
        let k_region = hmac_tag(k_date, region.as_bytes());
        let k_service = hmac_tag(k_region.as_ref(), service.as_bytes());
        let k_signing = hmac_tag(k_service.as_ref(), TERMINATOR.as_bytes());
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref()),
            #[cfg(test)]
            bytes: k_signing.as_ref().try_into().unwrap_or([0; 32]),
        }
    }

    /// The signature of `string_to_sign`, as 64 lowercase hex digits: what a client puts in
    /// its `Authorization` header (for clients, tests and benchmarks; verification compares
    /// in constant time instead).
    pub fn sign_hex(&self, string_to_sign: &str) -> String {
        HEXLOWER.encode(hmac::sign(&self.key, string_to_sign.as_bytes()).as_ref())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

fn hmac_tag(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// Runs `f` on `"AWS4" + secret`, built on the stack for usual secrets (AWS's are 40
/// characters), and wipes the copy afterwards.
fn with_aws4_prefix<T>(secret: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    const PREFIX: &[u8; 4] = b"AWS4";
    let mut stack = [0u8; 128];
    let len = secret.len().saturating_add(PREFIX.len());
    let result = match stack
        .get_mut(..len)
        .and_then(|s| s.split_first_chunk_mut::<4>())
    {
        Some((head, tail)) => {
            *head = *PREFIX;
            tail.copy_from_slice(secret);
            f(stack.get(..len).unwrap_or_default())
        }
        None => {
            let mut heap = Vec::with_capacity(len);
            heap.extend_from_slice(PREFIX);
            heap.extend_from_slice(secret);
            let result = f(&heap);
            heap.fill(0);
            result
        }
    };
    stack.fill(0);
    result
}
