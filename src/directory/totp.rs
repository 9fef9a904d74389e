//! RFC 6238 time-based one-time passwords, as virtual MFA devices compute them: HMAC-SHA1,
//! 30-second steps, six digits (IAM-SEMANTICS §5.9, open point U12).
//!
//! SHA-1 is what authenticator apps implement for `otpauth://totp` seeds; HMAC-SHA1 remains
//! sound as a PRF, which is all TOTP needs.
//!
//! Hand-written on purpose: RFC 6238 is a few lines over *ring*'s HMAC, while the TOTP crates
//! bring their own SHA-1 and HMAC implementations; base32 seeds are read with `data-encoding`.

use ring::hmac;

/// The length of a time step, in seconds.
pub const STEP_SECONDS: i64 = 30;

/// The number of digits of an MFA code.
pub const DIGITS: u32 = 6;

/// The time step that `now` (Unix seconds) falls in; times before the epoch are step 0.
pub fn time_step(now: i64) -> u64 {
    // A clock before 1970 is clamped to the first step, where no real device's code lies.
    now.div_euclid(STEP_SECONDS).max(0).unsigned_abs()
}

/// RFC 4226 HOTP: the `digits`-digit code for `counter` under `key`.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // Dynamic truncation: the low nibble of the last byte picks four bytes. INVARIANT: an
    // HMAC-SHA1 tag has 20 bytes, so there is a last byte and offset + 4 <= 19 + 1.
    let Some(last) = mac.last() else {
        return 0;
    };
    let offset = usize::from(last & 0x0f);
    let mut word = [0u8; 4];
    for (dst, src) in word.iter_mut().zip(mac.iter().skip(offset)) {
        *dst = *src;
    }
    let binary = u32::from_be_bytes(word) & 0x7fff_ffff;
    binary % 10u32.pow(digits.min(9))
}

/// Decodes an RFC 4648 base32 string (upper or lower case, padding and spaces ignored, as
/// authenticator apps show seeds in groups), with `data-encoding`. A length no encoding can
/// have, or non-zero trailing bits, is not a seed.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .chars()
        .filter(|c| *c != '=' && *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    data_encoding::BASE32_NOPAD
        .decode(normalized.as_bytes())
        .ok()
}

/// The six-digit code of a base32 seed at time step `step`, zero-padded; `None` when the seed
/// is not base32.
pub fn code_at_step(seed_base32: &str, step: u64) -> Option<String> {
    let key = decode_base32(seed_base32)?;
    Some(format!("{:06}", hotp(&key, step, DIGITS)))
}

/// The six-digit code of a base32 seed at `now` (Unix seconds).
pub fn code_at(seed_base32: &str, now: i64) -> Option<String> {
    code_at_step(seed_base32, time_step(now))
}

/// Compares two codes in time independent of where they differ.
pub(crate) fn codes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SEED: &[u8] = b"12345678901234567890";

    /// RFC 6238 appendix B, SHA-1 column (eight digits).
    #[test]
    fn rfc6238_sha1_vectors() {
        let cases: &[(i64, u32)] = &[
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ];
        for &(time, expected) in cases {
            assert_eq!(hotp(RFC_SEED, time_step(time), 8), expected, "T = {time}");
        }
    }

    /// RFC 4226 appendix D: HOTP with six digits.
    #[test]
    fn rfc4226_vectors() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SEED, counter as u64, 6), *code);
        }
    }

    #[test]
    fn base32_round_trips_the_rfc_seed() {
        // "12345678901234567890" in base32.
        let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(decode_base32(seed).unwrap(), RFC_SEED);
        assert_eq!(decode_base32(&seed.to_lowercase()).unwrap(), RFC_SEED);
        assert_eq!(decode_base32("MZXW6==="), Some(b"foo".to_vec()));
        assert_eq!(decode_base32("not base32!"), None);
        // Grouped as authenticator apps show it.
        assert_eq!(
            decode_base32("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ").unwrap(),
            RFC_SEED
        );
        // No encoding has one, three or six symbols in its last group.
        assert_eq!(decode_base32("MZXW6A"), None);
        assert_eq!(time_step(-1), 0);
        assert_eq!(time_step(59), 1);
        assert_eq!(code_at(seed, 59).unwrap(), "287082");
        assert_eq!(code_at(seed, 1_111_111_109).unwrap(), "081804");
    }

    #[test]
    fn steps_and_comparison() {
        assert_eq!(time_step(0), 0);
        assert_eq!(time_step(29), 0);
        assert_eq!(time_step(30), 1);
        assert_eq!(time_step(-5), 0);
        assert!(codes_equal("123456", "123456"));
        assert!(!codes_equal("123456", "123457"));
        assert!(!codes_equal("12345", "123456"));
    }
}
