//! What a sidecar holds of an access key instead of its secret (issue #20, item 2).
//!
//! The control plane keeps each user access key's secret (sealed in its store) and ships
//! sidecars two things derived from it, made by [`Tenant::derive_sidecar_keys`] on the copy
//! that leaves for them:
//!
//! * the SigV4 date keys `kDate = HMAC-SHA256("AWS4" + secret, yyyymmdd)` for two UTC days,
//!   the tenant's key day ([`SidecarKeys::day`]) and the next one. The region, service and
//!   signing keys follow from `kDate`, so a sidecar verifies any SigV4 request signed on those
//!   days and nothing else: a date key does not give the secret, nor another day's key.
//! * a verifier for the "key + secret" form: `HMAC-SHA256(salt, secret)` under the tenant's
//!   salt ([`SidecarKeys::salt`], 32 random bytes, shipped too). A secret is 40 random
//!   characters of a 64-letter alphabet (240 bits), so no dictionary or brute force reaches it
//!   from the verifier: a fast keyed hash suffices where a password would need PBKDF2. The
//!   salt keeps one tenant's verifiers from matching another's and precomputed tables useless.
//!
//! The day roll: every commit of a tenant sets its key day to the commit's UTC day, and the
//! control plane commits a roll for each tenant with access keys at every UTC midnight
//! (`ControlPlane::roll_sidecar_keys`), which sidecars receive as any other update. A sidecar
//! then always holds today's key and tomorrow's, so a request signed just after midnight
//! verifies before the roll arrives; one cut off from the control plane keeps working until
//! the end of the next day and then fails closed for every access key of the tenant.

use std::fmt;

use data_encoding::HEXLOWER;
use ring::hmac;
use serde::{Deserialize, Serialize};

use super::{IdGenerator, Secret, Tenant};

/// Seconds in a UTC day.
pub const DAY_SECONDS: i64 = 86_400;

/// How many UTC days of date keys a sidecar receives: the key day and the next.
pub const SHIPPED_DAYS: i64 = 2;

/// How long after a UTC midnight the key day moves to the new day: SigV4's clock skew. A
/// request signed just before midnight by a caller, or checked by a sidecar, whose clock is
/// up to that much behind the control plane's still finds the day it is scoped to.
pub const ROLL_GRACE_SECONDS: i64 = 5 * 60;

/// A tenant's state of what its sidecars receive in place of access-key secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarKeys {
    /// The first UTC day (days since the Unix epoch) of the shipped date keys.
    pub day: i64,
    /// The verifier key, 32 random bytes as lowercase hex (not secret: sidecars hold it).
    pub salt: String,
}

/// One access key as a sidecar holds it: a verifier and the date keys of the shipped days.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedAccessKey {
    /// Lowercase hex `HMAC-SHA256(salt, secret)`.
    pub verifier: String,
    /// The date keys, oldest first.
    pub date_keys: Vec<DateKey>,
}

/// `kDate` for one UTC day.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateKey {
    /// The day as SigV4 scopes it, `yyyymmdd`.
    pub date: String,
    /// Lowercase hex `HMAC-SHA256("AWS4" + secret, date)`.
    pub key: String,
}

// === impl SidecarKeys ===

impl SidecarKeys {
    /// The UTC day (days since the epoch) of `epoch_seconds`.
    pub fn day_of(epoch_seconds: i64) -> i64 {
        epoch_seconds.div_euclid(DAY_SECONDS)
    }

    /// The key day a commit at `now` ships: the UTC day of `now` less [`ROLL_GRACE_SECONDS`].
    pub fn key_day(now: i64) -> i64 {
        Self::day_of(now.saturating_sub(ROLL_GRACE_SECONDS))
    }

    /// Whether a commit at `now` would change this state (no salt yet, or an older day).
    pub fn due(&self, now: i64) -> bool {
        self.salt.is_empty() || self.day < Self::key_day(now)
    }

    /// The salt's bytes (empty when unset or not hex: verifiers then use the empty key, so
    /// they still never match another secret than their own).
    fn salt_bytes(&self) -> Vec<u8> {
        HEXLOWER.decode(self.salt.as_bytes()).unwrap_or_default()
    }
}

// === impl DerivedAccessKey ===

impl DerivedAccessKey {
    /// What a sidecar receives for `secret`: its verifier under `salt` and its date keys for
    /// `days` consecutive UTC days from `first_day`.
    pub fn derive(secret: &Secret, keys: &SidecarKeys, days: i64) -> Self {
        let secret = secret.expose().as_bytes();
        let date_keys = (0..days)
            .map(|i| {
                let date = scope_date(keys.day.saturating_add(i));
                let key = HEXLOWER.encode(date_key(secret, &date).as_ref());
                DateKey { date, key }
            })
            .collect();
        Self {
            verifier: verifier(&keys.salt_bytes(), secret),
            date_keys,
        }
    }

    /// The key decoded for checking presentations, under the tenant's `keys`: done once when
    /// a snapshot is built, so that a check decodes nothing.
    pub fn held(&self, keys: &SidecarKeys) -> HeldAccessKey {
        let days = self
            .date_keys
            .iter()
            .filter_map(|k| {
                let key: [u8; 32] = HEXLOWER.decode(k.key.as_bytes()).ok()?.try_into().ok()?;
                Some(HeldDay {
                    day: day_of_scope_date(&k.date),
                    date: k.date.as_str().into(),
                    key,
                })
            })
            .collect();
        HeldAccessKey {
            salt: hmac::Key::new(hmac::HMAC_SHA256, &keys.salt_bytes()),
            verifier: HEXLOWER
                .decode(self.verifier.as_bytes())
                .unwrap_or_default(),
            days,
        }
    }

    /// The days held, `yyyymmdd`, oldest first.
    pub fn days(&self) -> impl Iterator<Item = &str> {
        self.date_keys.iter().map(|k| k.date.as_str())
    }
}

/// An access key as a sidecar checks it: a [`DerivedAccessKey`] decoded once, with the
/// tenant's salt as an HMAC key.
pub struct HeldAccessKey {
    salt: hmac::Key,
    verifier: Vec<u8>,
    days: Vec<HeldDay>,
}

/// One held day: its number (days since the epoch; `None` if its date does not read as one,
/// so no clock is ever in it), its `yyyymmdd` and `kDate`.
struct HeldDay {
    day: Option<i64>,
    date: Box<str>,
    key: [u8; 32],
}

// === impl HeldAccessKey ===

impl HeldAccessKey {
    /// Whether `secret` is the key's secret, compared in constant time.
    pub fn verifies(&self, secret: &str) -> bool {
        hmac::verify(&self.salt, secret.as_bytes(), &self.verifier).is_ok()
    }

    /// Whether the key holds the UTC day `day` (days since the epoch).
    pub fn holds_day(&self, day: i64) -> bool {
        self.days.iter().any(|d| d.day == Some(day))
    }

    /// `kDate` for `date` (`yyyymmdd`), if the key holds that day.
    pub fn date_key(&self, date: &str) -> Option<&[u8; 32]> {
        self.days.iter().find(|d| &*d.date == date).map(|d| &d.key)
    }

    /// The days held, `yyyymmdd`, oldest first.
    pub fn days(&self) -> impl Iterator<Item = &str> {
        self.days.iter().map(|d| &*d.date)
    }

    /// The last day held (`yyyymmdd`), if any.
    pub fn last_day(&self) -> Option<&str> {
        self.days().max()
    }
}

impl fmt::Debug for HeldAccessKey {
    /// The days only: the verifier and the keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldAccessKey")
            .field("days", &self.days().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DerivedAccessKey {
    /// The days only: the verifier and the keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedAccessKey")
            .field("days", &self.days().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DateKey")
            .field("date", &self.date)
            .finish_non_exhaustive()
    }
}

// === impl Tenant ===

impl Tenant {
    /// Brings the tenant's sidecar key state to the UTC day of `now` (and gives it a salt if it
    /// has none); true when it changed. Every commit calls it, and the daily roll commits
    /// what it changes.
    pub fn roll_sidecar_keys(&mut self, ids: &mut IdGenerator, now: i64) -> bool {
        let day = SidecarKeys::key_day(now);
        let mut changed = false;
        if self.sidecar_keys.salt.is_empty() {
            let mut salt = [0u8; 32];
            ids.fill(&mut salt);
            self.sidecar_keys.salt = HEXLOWER.encode(&salt);
            changed = true;
        }
        // Never backwards: a replica with a slow clock does not take tomorrow's key away.
        if self.sidecar_keys.day < day {
            self.sidecar_keys.day = day;
            changed = true;
        }
        changed
    }

    /// Whether a user of the tenant has an access key (the daily roll skips tenants without).
    pub fn has_user_access_keys(&self) -> bool {
        self.users.values().any(|u| !u.access_keys.is_empty())
    }

    /// Replaces every user access key's secret with its [`DerivedAccessKey`] for the tenant's
    /// key day and the next: what sidecars receive. Keys already derived stay as they are.
    pub fn derive_sidecar_keys(&mut self) {
        let keys = self.sidecar_keys.clone();
        for user in self.users.values_mut() {
            for key in &mut user.access_keys {
                if key.secret.expose().is_empty() {
                    continue;
                }
                key.derived = Some(DerivedAccessKey::derive(&key.secret, &keys, SHIPPED_DAYS));
                key.secret = Secret::default();
            }
        }
    }
}

/// `day` (days since the epoch) as SigV4 scopes it, `yyyymmdd`.
pub fn scope_date(day: i64) -> String {
    let midnight = crate::policy::Timestamp::from_epoch_seconds(day.saturating_mul(DAY_SECONDS));
    // RFC 3339 starts `yyyy-mm-dd`.
    midnight
        .to_string()
        .chars()
        .take(10)
        .filter(|c| *c != '-')
        .collect()
}

/// `kDate = HMAC-SHA256("AWS4" + secret, date)`, as SigV4 derives it.
pub fn date_key(secret: &[u8], date: &str) -> hmac::Tag {
    let mut prefixed = Vec::with_capacity(secret.len().saturating_add(4));
    prefixed.extend_from_slice(b"AWS4");
    prefixed.extend_from_slice(secret);
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &prefixed),
        date.as_bytes(),
    );
    prefixed.fill(0);
    tag
}

/// The day number of a `yyyymmdd` scope date ([`scope_date`]'s inverse).
fn day_of_scope_date(date: &str) -> Option<i64> {
    let (year, rest) = date.split_at_checked(4)?;
    let (month, day) = rest.split_at_checked(2)?;
    let midnight = crate::policy::parse_policy_date(&format!("{year}-{month}-{day}"))?;
    let seconds = midnight.epoch_seconds();
    (seconds.rem_euclid(DAY_SECONDS) == 0).then(|| SidecarKeys::day_of(seconds))
}

fn verifier(salt: &[u8], secret: &[u8]) -> String {
    HEXLOWER.encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), secret).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{AccessKey, AccessKeyStatus, IdGenerator};

    #[test]
    fn scope_dates_are_utc_days() {
        assert_eq!(scope_date(0), "19700101");
        // 2015-08-30, the day of AWS's SigV4 examples.
        assert_eq!(scope_date(SidecarKeys::day_of(1_440_938_160)), "20150830");
        assert_eq!(SidecarKeys::day_of(-1), -1);
        for day in [0, 1, 16_770, 20_790] {
            assert_eq!(day_of_scope_date(&scope_date(day)), Some(day));
        }
        assert_eq!(day_of_scope_date("2026120"), None);
        assert_eq!(day_of_scope_date("20261332"), None);
    }

    #[test]
    fn date_keys_match_aws_derivation_and_verifiers_only_their_secret() {
        // AWS's documented example: kDate of this secret on 20120215.
        let k = date_key(b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215");
        assert_eq!(
            HEXLOWER.encode(k.as_ref()),
            "969fbb94feb542b71ede6f87fe4d5fa29c789342b0f407474670f0c2489e0a0d"
        );
        let keys = SidecarKeys {
            day: SidecarKeys::day_of(1_329_264_000), // 2012-02-15
            salt: HEXLOWER.encode(&[7u8; 32]),
        };
        let derived = DerivedAccessKey::derive(
            &Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            &keys,
            SHIPPED_DAYS,
        );
        assert_eq!(derived.days().collect::<Vec<_>>(), ["20120215", "20120216"]);
        let held = derived.held(&keys);
        assert_eq!(
            held.date_key("20120215"),
            Some(k.as_ref().try_into().unwrap())
        );
        assert_eq!(held.date_key("20120217"), None);
        assert!(held.holds_day(keys.day) && held.holds_day(keys.day + 1));
        assert!(!held.holds_day(keys.day - 1) && !held.holds_day(keys.day + 2));
        assert_eq!(held.last_day(), Some("20120216"));
        assert!(held.verifies("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"));
        assert!(!held.verifies("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz"));
        assert!(!held.verifies(""));
        // Under another tenant's salt the same secret does not verify.
        let other = SidecarKeys {
            salt: HEXLOWER.encode(&[8u8; 32]),
            ..keys
        };
        assert!(!derived
            .held(&other)
            .verifies("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"));
        let printed = format!("{derived:?} {held:?}");
        assert!(!printed.contains(&derived.verifier) && printed.contains("20120216"));
    }

    #[test]
    fn the_projection_drops_every_secret_and_the_roll_never_goes_back() {
        let mut t = Tenant::new("111122223333", 0);
        let mut ids = IdGenerator::seeded(1);
        t.create_user(
            &mut ids,
            0,
            crate::directory::CreateUserInput {
                name: "alice".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let key: AccessKey = t.create_access_key(&mut ids, 0, "alice").unwrap();
        assert!(t.has_user_access_keys());
        // Within the grace after midnight the key day is still the day before.
        assert!(t.roll_sidecar_keys(&mut ids, 5 * DAY_SECONDS + 10));
        assert_eq!(t.sidecar_keys.day, 4);
        assert!(!t.sidecar_keys.due(5 * DAY_SECONDS + ROLL_GRACE_SECONDS - 1));
        assert!(t.sidecar_keys.due(5 * DAY_SECONDS + ROLL_GRACE_SECONDS));
        assert!(t.roll_sidecar_keys(&mut ids, 5 * DAY_SECONDS + ROLL_GRACE_SECONDS));
        assert!(!t.roll_sidecar_keys(&mut ids, 5 * DAY_SECONDS + 7_200));
        assert!(!t.roll_sidecar_keys(&mut ids, 4 * DAY_SECONDS));
        assert_eq!(t.sidecar_keys.day, 5);
        let mut shipped = t.clone();
        shipped.derive_sidecar_keys();
        let json = serde_json::to_string(&shipped).unwrap();
        assert!(!json.contains(key.secret.expose()), "{json}");
        let back: Tenant = serde_json::from_str(&json).unwrap();
        let held = &back.users["alice"].access_keys[0];
        assert_eq!(held.status, AccessKeyStatus::Active);
        assert!(held.secret.expose().is_empty());
        let derived = held.derived.as_ref().unwrap();
        assert_eq!(derived.days().collect::<Vec<_>>(), ["19700106", "19700107"]);
        assert!(derived
            .held(&back.sidecar_keys)
            .verifies(key.secret.expose()));
    }
}
