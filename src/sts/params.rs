//! STS parameter constraints, in the API's own wording (botocore's STS model).

use crate::directory::validate::{length, validation_error};
use crate::directory::DirectoryError;

/// `RoleSessionName`, `SourceIdentity`: `[\w+=,.@-]*`.
const SESSION_NAME_PATTERN: &str = r"[\w+=,.@-]*";
/// `ExternalId`: `[\w+=,.@:\/-]*`.
const EXTERNAL_ID_PATTERN: &str = r"[\w+=,.@:\/-]*";
/// `SerialNumber`: `[\w+=/:,.@-]*`.
const SERIAL_NUMBER_PATTERN: &str = r"[\w+=/:,.@-]*";
/// `Policy`: `[\u0009\u000A\u000D\u0020-\u00FF]+`.
const POLICY_PATTERN: &str = r"[\u0009\u000A\u000D\u0020-\u00FF]+";

fn pattern(
    value: &str,
    field: &str,
    pattern: &str,
    ok: impl Fn(char) -> bool,
) -> Result<(), DirectoryError> {
    if value.chars().all(ok) {
        Ok(())
    } else {
        Err(validation_error(
            value,
            field,
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        ))
    }
}

fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `RoleArn`: 20–2048 characters.
pub(super) fn role_arn(value: &str) -> Result<(), DirectoryError> {
    length(value, "roleArn", 20, 2048)
}

/// `RoleSessionName`: 2–64 of `[\w+=,.@-]`.
pub(super) fn role_session_name(value: &str) -> Result<(), DirectoryError> {
    length(value, "roleSessionName", 2, 64)?;
    pattern(value, "roleSessionName", SESSION_NAME_PATTERN, |c| {
        word(c) || "+=,.@-".contains(c)
    })
}

/// `SourceIdentity`: 2–64 of `[\w+=,.@-]`, not starting with `aws:`.
pub(super) fn source_identity(value: &str) -> Result<(), DirectoryError> {
    length(value, "sourceIdentity", 2, 64)?;
    pattern(value, "sourceIdentity", SESSION_NAME_PATTERN, |c| {
        word(c) || "+=,.@-".contains(c)
    })?;
    if value
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
    {
        return Err(DirectoryError::Validation(
            "SourceIdentity cannot begin with the reserved prefix 'aws:'.".into(),
        ));
    }
    Ok(())
}

/// `ExternalId`: 2–1224 of `[\w+=,.@:/-]`.
pub(super) fn external_id(value: &str) -> Result<(), DirectoryError> {
    length(value, "externalId", 2, 1224)?;
    pattern(value, "externalId", EXTERNAL_ID_PATTERN, |c| {
        word(c) || "+=,.@:/-".contains(c)
    })
}

/// `SerialNumber`: 9–256 of `[\w+=/:,.@-]`.
pub(super) fn serial_number(value: &str) -> Result<(), DirectoryError> {
    length(value, "serialNumber", 9, 256)?;
    pattern(value, "serialNumber", SERIAL_NUMBER_PATTERN, |c| {
        word(c) || "+=/:,.@-".contains(c)
    })
}

/// `TokenCode`: exactly six digits. The value is never echoed: it is a credential.
pub(super) fn token_code(value: &str) -> Result<(), DirectoryError> {
    if value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(validation_error(
            "<redacted>",
            "tokenCode",
            "Member must have length 6 and satisfy regular expression pattern: [\\d]*",
        ))
    }
}

/// `Policy`: at least one character of `[\t\n\r\u0020-\u00FF]`.
pub(super) fn policy(value: &str) -> Result<(), DirectoryError> {
    length(value, "policy", 1, usize::MAX)?;
    pattern(value, "policy", POLICY_PATTERN, |c| {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}')
    })
}

/// `WebIdentityToken`: 4–20000 characters. The value is never echoed.
pub(super) fn web_identity_token(value: &str) -> Result<(), DirectoryError> {
    let len = value.chars().count();
    if (4..=20_000).contains(&len) {
        Ok(())
    } else {
        Err(validation_error(
            "<redacted>",
            "webIdentityToken",
            "Member must have length between 4 and 20000",
        ))
    }
}

/// `DurationSeconds` within `min..=max` of the operation's model.
pub(super) fn duration(value: i32, min: i32, max: i32) -> Result<(), DirectoryError> {
    if value < min {
        return Err(validation_error(
            &value.to_string(),
            "durationSeconds",
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(validation_error(
            &value.to_string(),
            "durationSeconds",
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}
