//! AWS account ids (the tenants' ids): twelve ASCII digits, checked once where a value enters.
//!
//! A leaf, below every other module, because the lowest user (the session token format in
//! [`crate::jose`]) already needs the check.

use std::fmt;
use std::ops::Deref;

use crate::error::AwsCode;

/// The number of digits of an account id.
pub const ACCOUNT_ID_DIGITS: usize = 12;

/// A valid AWS account id: exactly twelve ASCII digits (leading zeros allowed, as in AWS).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(Box<str>);

/// Why a text is not an account id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The account id must be 12 digits, not `{shown}`.")]
pub struct AccountIdError {
    /// The refused text, cut to 64 printable characters so a hostile value stays short.
    shown: String,
}

// === impl AccountId ===

impl AccountId {
    /// Checks `text` and keeps it.
    pub fn try_new(text: &str) -> Result<Self, AccountIdError> {
        if Self::is_valid(text) {
            Ok(Self(text.into()))
        } else {
            Err(AccountIdError {
                shown: text.chars().filter(|c| !c.is_control()).take(64).collect(),
            })
        }
    }

    /// True when `text` is twelve ASCII digits: for callers that only test.
    pub fn is_valid(text: &str) -> bool {
        text.len() == ACCOUNT_ID_DIGITS && text.bytes().all(|b| b.is_ascii_digit())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AccountId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Deref for AccountId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for AccountId {
    type Error = AccountIdError;

    fn try_from(text: &str) -> Result<Self, AccountIdError> {
        Self::try_new(text)
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> Self {
        id.0.into()
    }
}

// === impl AccountIdError ===

impl AccountIdError {
    /// AWS's error code: a malformed id is a validation failure.
    pub fn code(&self) -> AwsCode {
        AwsCode::ValidationError
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_ascii_digits_and_nothing_else_are_an_account_id() {
        for good in ["111122223333", "000000000000", "999999999999"] {
            let id = AccountId::try_new(good).unwrap();
            assert_eq!(id.as_str(), good);
            assert_eq!(id.to_string(), good);
            assert_eq!(&*id, good);
        }
        for bad in [
            "",
            "11112222333",
            "1111222233334",
            "11112222333a",
            "١١١١٢٢٢٢٣٣٣٣", // Arabic-Indic digits: digits, but not ASCII
            " 11112222333",
            "111122223333\n",
            "-11122223333",
        ] {
            assert!(!AccountId::is_valid(bad), "{bad:?}");
            let error = AccountId::try_new(bad).unwrap_err();
            assert_eq!(error.code(), AwsCode::ValidationError);
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn a_refused_id_is_echoed_short() {
        let long = "9".repeat(10_000);
        let message = AccountId::try_new(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{}", message.len());
    }
}
