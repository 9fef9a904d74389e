//! The account password policy (`UpdateAccountPasswordPolicy`, `GetAccountPasswordPolicy`,
//! `DeleteAccountPasswordPolicy`) and the rules it sets for console passwords.
//!
//! While no policy is set, AWS's default rules hold (at least 8 characters and three of the
//! four character classes). A set policy replaces them entirely: `UpdateAccountPasswordPolicy`
//! reverts every parameter it does not name to AWS's default, as AWS does. Either way a
//! password may not be the user's name or the account alias.
//!
//! Reuse prevention keeps the hashes of the last `PasswordReusePrevention - 1` passwords on
//! the login profile beside the current one (never plaintext), and no more: lowering the
//! number or deleting the policy drops the surplus at once.

use serde::{Deserialize, Serialize};

use super::no_such_user;
use crate::directory::validate::{self, MSG_PASSWORD_POLICY};
use crate::directory::{DirectoryError, LoginProfile, PasswordHasher, Secret, Tenant};

/// Seconds in a day: `MaxPasswordAge` is in days.
const DAY: i64 = 86_400;

/// The symbols `RequireSymbols` counts (AWS's list).
const SYMBOLS: &str = "!@#$%^&*()_+-=[]{}|'";

/// The range of `MinimumPasswordLength` (default 6).
const MIN_LENGTH_RANGE: (u32, u32) = (6, 128);
/// The range of `MaxPasswordAge` in days.
const MAX_AGE_RANGE: (u32, u32) = (1, 1_095);
/// The range of `PasswordReusePrevention`.
const REUSE_RANGE: (u32, u32) = (1, 24);
/// AWS's default `MinimumPasswordLength` for a policy that does not name one.
const DEFAULT_MIN_LENGTH: u32 = 6;

/// The account password policy, as `GetAccountPasswordPolicy` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    /// The fewest characters a password may have (6..=128).
    pub minimum_password_length: u32,
    /// At least one of `!@#$%^&*()_+-=[]{}|'`.
    pub require_symbols: bool,
    /// At least one digit.
    pub require_numbers: bool,
    /// At least one ASCII upper-case letter.
    pub require_uppercase_characters: bool,
    /// At least one ASCII lower-case letter.
    pub require_lowercase_characters: bool,
    /// Every IAM user may change its own password (an implicit `iam:ChangePassword` on
    /// itself).
    pub allow_users_to_change_password: bool,
    /// Days a password is valid (1..=1095); passwords never expire when unset.
    pub max_password_age: Option<u32>,
    /// How many of the user's latest passwords (the current one included) a new one may not
    /// repeat (1..=24).
    pub password_reuse_prevention: Option<u32>,
    /// After a password expires the user may not set a new one; an administrator must. Kept
    /// as given (`None` when the request left it out), as AWS echoes it.
    pub hard_expiry: Option<bool>,
}

/// The parameters of `UpdateAccountPasswordPolicy`; unset ones take AWS's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordPolicyInput {
    /// `MinimumPasswordLength` (default 6).
    pub minimum_password_length: Option<u32>,
    /// `RequireSymbols` (default false).
    pub require_symbols: Option<bool>,
    /// `RequireNumbers` (default false).
    pub require_numbers: Option<bool>,
    /// `RequireUppercaseCharacters` (default false).
    pub require_uppercase_characters: Option<bool>,
    /// `RequireLowercaseCharacters` (default false).
    pub require_lowercase_characters: Option<bool>,
    /// `AllowUsersToChangePassword` (default false).
    pub allow_users_to_change_password: Option<bool>,
    /// `MaxPasswordAge` in days (default: never expire).
    pub max_password_age: Option<u32>,
    /// `PasswordReusePrevention` (default: no prevention).
    pub password_reuse_prevention: Option<u32>,
    /// `HardExpiry` (default false).
    pub hard_expiry: Option<bool>,
}

fn in_range(value: u32, field: &str, (min, max): (u32, u32)) -> Result<(), DirectoryError> {
    if value < min {
        return Err(validate::validation_error(
            &value.to_string(),
            field,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(validate::validation_error(
            &value.to_string(),
            field,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn violation() -> DirectoryError {
    DirectoryError::PasswordPolicyViolation(MSG_PASSWORD_POLICY.into())
}

// === impl PasswordPolicy ===

impl PasswordPolicy {
    /// The policy `UpdateAccountPasswordPolicy` sets from `input`, validated with AWS's
    /// ranges (`ValidationError` naming the parameter).
    pub fn from_input(input: PasswordPolicyInput) -> Result<Self, DirectoryError> {
        let minimum_password_length = input.minimum_password_length.unwrap_or(DEFAULT_MIN_LENGTH);
        in_range(
            minimum_password_length,
            "minimumPasswordLength",
            MIN_LENGTH_RANGE,
        )?;
        if let Some(age) = input.max_password_age {
            in_range(age, "maxPasswordAge", MAX_AGE_RANGE)?;
        }
        if let Some(reuse) = input.password_reuse_prevention {
            in_range(reuse, "passwordReusePrevention", REUSE_RANGE)?;
        }
        Ok(Self {
            minimum_password_length,
            require_symbols: input.require_symbols.unwrap_or(false),
            require_numbers: input.require_numbers.unwrap_or(false),
            require_uppercase_characters: input.require_uppercase_characters.unwrap_or(false),
            require_lowercase_characters: input.require_lowercase_characters.unwrap_or(false),
            allow_users_to_change_password: input.allow_users_to_change_password.unwrap_or(false),
            max_password_age: input.max_password_age,
            password_reuse_prevention: input.password_reuse_prevention,
            hard_expiry: input.hard_expiry,
        })
    }

    /// `ExpirePasswords`: whether passwords have a maximum age.
    pub fn expire_passwords(&self) -> bool {
        self.max_password_age.is_some()
    }

    /// Whether `password` meets the length and character-class rules.
    fn admits(&self, password: &str) -> bool {
        let length = u32::try_from(password.chars().count()).unwrap_or(u32::MAX);
        let has = |f: fn(char) -> bool| password.chars().any(f);
        length >= self.minimum_password_length
            && (!self.require_symbols || has(|c| SYMBOLS.contains(c)))
            && (!self.require_numbers || has(|c| c.is_ascii_digit()))
            && (!self.require_uppercase_characters || has(|c| c.is_ascii_uppercase()))
            && (!self.require_lowercase_characters || has(|c| c.is_ascii_lowercase()))
    }

    /// How many earlier passwords (besides the current one) a login profile must keep.
    fn history_len(&self) -> usize {
        self.password_reuse_prevention
            .and_then(|n| usize::try_from(n).ok())
            .map_or(0, |n| n.saturating_sub(1))
    }
}

/// How many earlier password hashes a login profile keeps under `policy`.
fn history_len(policy: Option<&PasswordPolicy>) -> usize {
    policy.map_or(0, PasswordPolicy::history_len)
}

// === impl Tenant ===

impl Tenant {
    /// The "cannot be found" error of the account password policy.
    fn no_password_policy(&self) -> DirectoryError {
        DirectoryError::NoSuchEntity(format!(
            "The Password Policy with domain name {} cannot be found.",
            self.account_id
        ))
    }

    /// `UpdateAccountPasswordPolicy`: replaces the policy (unnamed parameters revert to
    /// AWS's defaults). Stored password histories are cut to what the new policy needs.
    pub fn update_account_password_policy(
        &mut self,
        input: PasswordPolicyInput,
    ) -> Result<&PasswordPolicy, DirectoryError> {
        let policy = PasswordPolicy::from_input(input)?;
        self.trim_password_histories(history_len(Some(&policy)));
        Ok(self.password_policy.insert(policy))
    }

    /// `GetAccountPasswordPolicy`.
    pub fn get_account_password_policy(&self) -> Result<&PasswordPolicy, DirectoryError> {
        self.password_policy
            .as_ref()
            .ok_or_else(|| self.no_password_policy())
    }

    /// `DeleteAccountPasswordPolicy`: AWS's default rules hold again, and no password
    /// history is kept.
    pub fn delete_account_password_policy(&mut self) -> Result<(), DirectoryError> {
        if self.password_policy.take().is_none() {
            return Err(self.no_password_policy());
        }
        self.trim_password_histories(0);
        Ok(())
    }

    fn trim_password_histories(&mut self, keep: usize) {
        for profile in self
            .users
            .values_mut()
            .filter_map(|u| u.login_profile.as_mut())
        {
            profile.previous_password_hashes.truncate(keep);
        }
    }

    /// Checks a new password for `user_name` against the API's constraints and the
    /// account's password rules (the policy if set, AWS's defaults otherwise).
    pub(super) fn check_new_password(
        &self,
        user_name: &str,
        password: &str,
    ) -> Result<(), DirectoryError> {
        validate::password_chars(password)?;
        match &self.password_policy {
            None => validate::default_password_policy(password, user_name, self.alias.as_deref()),
            Some(policy) => {
                if !policy.admits(password) {
                    return Err(violation());
                }
                let lower = password.to_lowercase();
                let alias = self.alias.as_deref().map(str::to_lowercase);
                if lower == user_name.to_lowercase() || alias.is_some_and(|a| a == lower) {
                    return Err(violation());
                }
                Ok(())
            }
        }
    }

    /// Checks that `password` repeats none of the passwords reuse prevention remembers for
    /// `profile` (the current one and the kept earlier ones).
    pub(super) fn check_password_reuse(
        &self,
        hasher: &PasswordHasher,
        profile: &LoginProfile,
        password: &str,
    ) -> Result<(), DirectoryError> {
        if self
            .password_policy
            .and_then(|p| p.password_reuse_prevention)
            .is_none()
        {
            return Ok(());
        }
        let keep = history_len(self.password_policy.as_ref());
        let remembered = std::iter::once(&profile.password_hash)
            .chain(profile.previous_password_hashes.iter().take(keep));
        // Every hash is checked, so the time taken does not say which one matched.
        let reused = remembered.fold(false, |hit, hash| hasher.verify(hash, password) | hit);
        if reused {
            return Err(violation());
        }
        Ok(())
    }

    /// Sets a login profile's password to `hash` at `now`, remembering the previous one as
    /// far as reuse prevention needs.
    pub(super) fn record_new_password(&self, profile: &mut LoginProfile, hash: Secret, now: i64) {
        let keep = history_len(self.password_policy.as_ref());
        let previous = std::mem::replace(&mut profile.password_hash, hash);
        if keep > 0 {
            profile.previous_password_hashes.insert(0, previous);
        }
        profile.previous_password_hashes.truncate(keep);
        profile.password_changed_at = Some(now);
    }

    /// When the password of `profile` expires under the policy's `MaxPasswordAge`, if it
    /// does.
    pub fn password_expires_at(&self, profile: &LoginProfile) -> Option<i64> {
        let days = self.password_policy.as_ref()?.max_password_age?;
        let changed = profile.password_changed_at.unwrap_or(profile.created_at);
        Some(changed.saturating_add(i64::from(days).saturating_mul(DAY)))
    }

    /// Whether the user of `profile` must set a new password before signing in: an
    /// administrator asked for it, or the password has expired.
    pub fn password_change_required(&self, profile: &LoginProfile, now: i64) -> bool {
        profile.password_reset_required || self.password_expired(profile, now)
    }

    /// Whether the password of `profile` is past its maximum age at `now`.
    pub fn password_expired(&self, profile: &LoginProfile, now: i64) -> bool {
        self.password_expires_at(profile)
            .is_some_and(|at| now >= at)
    }

    /// Refuses `ChangePassword` for a user whose password expired under a policy with
    /// `HardExpiry`: only an administrator may then set a new one (`UpdateLoginProfile`).
    pub fn check_not_hard_expired(&self, user: &str, now: i64) -> Result<(), DirectoryError> {
        let profile = self
            .users
            .get(&user.to_ascii_lowercase())
            .ok_or_else(|| no_such_user(user))?
            .login_profile
            .as_ref();
        let hard = self
            .password_policy
            .is_some_and(|p| p.hard_expiry == Some(true));
        if hard && profile.is_some_and(|p| self.password_expired(p, now)) {
            return Err(DirectoryError::AccessDenied(
                "Your password has expired and the account password policy does not allow you to change it; an administrator must reset it."
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
