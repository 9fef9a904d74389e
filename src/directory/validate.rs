//! IAM's rules for names, paths, tags and other parameters (IAM-SEMANTICS §5.3).
//!
//! Each check returns IAM's error: API constraints (length, pattern, range) are
//! `ValidationError` in the API's own wording ("1 validation error detected: Value 'x' at
//! 'userName' failed to satisfy constraint: ..."), IAM's semantic rules are `InvalidInput`,
//! and the password policy is `PasswordPolicyViolation`. Only the first problem is reported.

use super::{DirectoryError, Tag};

/// The pattern of user, group, role, policy and MFA device names.
pub(crate) const NAME_PATTERN: &str = r"[\w+=,.@-]+";
const PATH_PATTERN: &str = r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)";
const POLICY_PATH_PATTERN: &str = r"((/[A-Za-z0-9\.,\+@=_-]+)*)/";
const DESCRIPTION_PATTERN: &str = r"[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*";
const TAG_KEY_PATTERN: &str = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+";
const TAG_VALUE_PATTERN: &str = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*";
const PASSWORD_PATTERN: &str = r"[\u0009\u000A\u000D\u0020-\u00FF]+";
const ALIAS_PATTERN: &str = r"^[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]$";
const VERSION_ID_PATTERN: &str = r"v[1-9][0-9]*(\.[A-Za-z0-9-]*)?";
const MFA_CODE_PATTERN: &str = r"[\d]+";

/// The symbols the password policy counts (IAM-SEMANTICS §5.8).
const PASSWORD_SYMBOLS: &str = "!@#$%^&*()_+-=[]{}|'";

/// AWS's text for a password that breaks the password policy.
pub(crate) const MSG_PASSWORD_POLICY: &str =
    "Password does not conform to the account password policy.";

/// The shortest and longest session a role may allow, in seconds.
pub(crate) const MAX_SESSION_DURATION_RANGE: (u32, u32) = (3_600, 43_200);

/// The longest description of a role or policy.
const MAX_DESCRIPTION: usize = 1_000;

/// The number of tags one request may carry (the per-entity quota is checked separately).
const MAX_TAGS_PER_REQUEST: usize = 50;

/// A `ValidationError` in the API's wording.
pub(crate) fn validation_error(value: &str, field: &str, constraint: &str) -> DirectoryError {
    // The value is echoed bounded: an error never grows with the input that caused it.
    let value = crate::error::echo(value);
    DirectoryError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

/// Checks that `value` has `min..=max` characters.
pub(crate) fn length(
    value: &str,
    field: &str,
    min: usize,
    max: usize,
) -> Result<(), DirectoryError> {
    let len = value.chars().count();
    if len < min {
        return Err(validation_error(
            value,
            field,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if len > max {
        return Err(validation_error(
            value,
            field,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn pattern_error(value: &str, field: &str, pattern: &str) -> DirectoryError {
    validation_error(
        value,
        field,
        &format!("Member must satisfy regular expression pattern: {pattern}"),
    )
}

/// `[\w+=,.@-]`: a character of an entity name (`\w` is ASCII here, as in the AWS model).
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// A user, group, role, policy or MFA device name of 1 to `max` characters.
pub(crate) fn name(value: &str, field: &str, max: usize) -> Result<(), DirectoryError> {
    length(value, field, 1, max)?;
    if !value.chars().all(is_name_char) {
        return Err(pattern_error(value, field, NAME_PATTERN));
    }
    Ok(())
}

/// A user, group, role or MFA device path: `/` or `/…/` of printable ASCII, at most 512.
pub(crate) fn path(value: &str, field: &str) -> Result<(), DirectoryError> {
    length(value, field, 1, 512)?;
    let ok = value == "/"
        || (value.len() >= 3
            && value.starts_with('/')
            && value.ends_with('/')
            && value.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c)));
    if !ok {
        return Err(pattern_error(value, field, PATH_PATTERN));
    }
    Ok(())
}

/// A managed policy path: `/` or `/seg/…/` where segments are `[A-Za-z0-9.,+@=_-]+`.
pub(crate) fn policy_path(value: &str, field: &str) -> Result<(), DirectoryError> {
    length(value, field, 1, 512)?;
    let segment_ok = |seg: &str| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".,+@=_-".contains(c))
    };
    // `/`, or `/seg/.../seg/`.
    let ok = value == "/"
        || value
            .strip_prefix('/')
            .and_then(|rest| rest.strip_suffix('/'))
            .is_some_and(|inner| inner.split('/').all(segment_ok));
    if !ok {
        return Err(pattern_error(value, field, POLICY_PATH_PATTERN));
    }
    Ok(())
}

/// A path prefix for listing: the path rules without the trailing slash requirement.
pub(crate) fn path_prefix(value: &str) -> Result<(), DirectoryError> {
    length(value, "pathPrefix", 1, 512)?;
    if !value.starts_with('/') || !value.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c)) {
        return Err(pattern_error(
            value,
            "pathPrefix",
            r"\u002F[\u0021-\u007F]*",
        ));
    }
    Ok(())
}

/// A role or policy description: at most 1,000 characters of tab, newlines, printable ASCII
/// and Latin-1.
pub(crate) fn description(value: &str, field: &str) -> Result<(), DirectoryError> {
    length(value, field, 0, MAX_DESCRIPTION)?;
    let ok = value
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{a1}'..='\u{ff}'));
    if !ok {
        return Err(pattern_error(value, field, DESCRIPTION_PATTERN));
    }
    Ok(())
}

/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. Letters are Unicode `Alphabetic` (a slight superset of
/// `\p{L}`); separators are the non-control white space, which is exactly `\p{Z}`.
fn is_tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || "_.:/=+-@".contains(c)
}

/// A tag key: 1–128 tag characters.
pub(crate) fn tag_key(key: &str, field: &str) -> Result<(), DirectoryError> {
    length(key, field, 1, 128)?;
    if !key.chars().all(is_tag_char) {
        return Err(pattern_error(key, field, TAG_KEY_PATTERN));
    }
    Ok(())
}

/// A tag value: 0–256 tag characters.
pub(crate) fn tag_value(value: &str, field: &str) -> Result<(), DirectoryError> {
    length(value, field, 0, 256)?;
    if !value.chars().all(is_tag_char) {
        return Err(pattern_error(value, field, TAG_VALUE_PATTERN));
    }
    Ok(())
}

/// The tags of one request: at most 50, each valid, none under `aws:`, no key twice (keys
/// compared case-insensitively where `case_insensitive`, as on users and roles).
pub(crate) fn tags(tags: &[Tag], case_insensitive: bool) -> Result<(), DirectoryError> {
    if tags.len() > MAX_TAGS_PER_REQUEST {
        return Err(validation_error(
            &format!("{} tags", tags.len()),
            "tags",
            &format!("Member must have length less than or equal to {MAX_TAGS_PER_REQUEST}"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        let n = i + 1;
        tag_key(&tag.key, &format!("tags.{n}.member.key"))?;
        tag_value(&tag.value, &format!("tags.{n}.member.value"))?;
        reserved_tag_key(&tag.key)?;
    }
    for (i, tag) in tags.iter().enumerate() {
        let duplicate = tags.iter().skip(i + 1).any(|other| {
            if case_insensitive {
                other.key.to_lowercase() == tag.key.to_lowercase()
            } else {
                other.key == tag.key
            }
        });
        if duplicate {
            return Err(DirectoryError::InvalidInput(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.".into(),
            ));
        }
    }
    Ok(())
}

/// The keys of an untag request: 1–50 keys, each a valid key.
pub(crate) fn tag_keys(keys: &[String]) -> Result<(), DirectoryError> {
    if keys.len() > MAX_TAGS_PER_REQUEST {
        return Err(validation_error(
            &format!("{} keys", keys.len()),
            "tagKeys",
            &format!("Member must have length less than or equal to {MAX_TAGS_PER_REQUEST}"),
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        tag_key(key, &format!("tagKeys.{}.member", i + 1))?;
    }
    Ok(())
}

fn reserved_tag_key(key: &str) -> Result<(), DirectoryError> {
    if key
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws:"))
    {
        return Err(DirectoryError::InvalidInput(
            "User-defined tag keys cannot begin with the reserved prefix 'aws:'.".into(),
        ));
    }
    Ok(())
}

/// An account alias: 3–63 of `[a-z0-9-]`, starting and ending alphanumeric, no `--`, and not
/// a 12-digit number (which would read as an account id).
pub(crate) fn account_alias(alias: &str) -> Result<(), DirectoryError> {
    length(alias, "accountAlias", 3, 63)?;
    let bytes = alias.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = bytes.iter().all(|b| alnum(b) || *b == b'-')
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && !alias.contains("--");
    if !ok {
        return Err(pattern_error(alias, "accountAlias", ALIAS_PATTERN));
    }
    if crate::account::AccountId::is_valid(alias) {
        return Err(DirectoryError::InvalidInput(
            "The account alias cannot be a 12-digit number.".into(),
        ));
    }
    Ok(())
}

/// The API constraints on a password: 1–128 characters of tab, newlines and U+0020–U+00FF.
/// The value is never echoed in the message.
pub(crate) fn password_chars(password: &str) -> Result<(), DirectoryError> {
    let len = password.chars().count();
    let masked = "*".repeat(len.min(8));
    if len == 0 {
        return Err(validation_error(
            &masked,
            "password",
            "Member must have length greater than or equal to 1",
        ));
    }
    if len > 128 {
        return Err(validation_error(
            &masked,
            "password",
            "Member must have length less than or equal to 128",
        ));
    }
    if !password
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'))
    {
        return Err(pattern_error(&masked, "password", PASSWORD_PATTERN));
    }
    Ok(())
}

/// AWS's default password policy (IAM-SEMANTICS §5.8): at least 8 characters, at least three
/// of upper case, lower case, digits and symbols, and not the user's name or the account's
/// alias (compared case-insensitively).
pub(crate) fn default_password_policy(
    password: &str,
    user_name: &str,
    alias: Option<&str>,
) -> Result<(), DirectoryError> {
    let violation = || DirectoryError::PasswordPolicyViolation(MSG_PASSWORD_POLICY.into());
    if password.chars().count() < 8 {
        return Err(violation());
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| PASSWORD_SYMBOLS.contains(c)),
    ];
    if classes.iter().filter(|present| **present).count() < 3 {
        return Err(violation());
    }
    let lower = password.to_lowercase();
    if lower == user_name.to_lowercase() || alias.is_some_and(|a| lower == a.to_lowercase()) {
        return Err(violation());
    }
    Ok(())
}

/// An MFA authentication code: exactly six digits.
pub(crate) fn mfa_code(code: &str, field: &str) -> Result<(), DirectoryError> {
    // A code is a credential: errors say what is wrong with it, never what it was.
    let masked = "*".repeat(code.chars().count().min(8));
    if code.chars().count() != 6 {
        return Err(validation_error(
            &masked,
            field,
            "Member must have length 6",
        ));
    }
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(pattern_error(&masked, field, MFA_CODE_PATTERN));
    }
    Ok(())
}

/// A policy version id: `v1`, `v2`, ... (optionally `v2.suffix`).
pub(crate) fn version_id(value: &str) -> Result<(), DirectoryError> {
    let ok = value.strip_prefix('v').is_some_and(|rest| {
        let (number, suffix) = rest.split_once('.').unwrap_or((rest, ""));
        number.starts_with(|c: char| ('1'..='9').contains(&c))
            && number.bytes().all(|b| b.is_ascii_digit())
            && suffix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !ok {
        return Err(pattern_error(value, "versionId", VERSION_ID_PATTERN));
    }
    Ok(())
}

/// A role's maximum session duration: 3,600–43,200 seconds.
pub(crate) fn max_session_duration(seconds: u32) -> Result<(), DirectoryError> {
    let (min, max) = MAX_SESSION_DURATION_RANGE;
    let value = seconds.to_string();
    if seconds < min {
        return Err(validation_error(
            &value,
            "maxSessionDuration",
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if seconds > max {
        return Err(validation_error(
            &value,
            "maxSessionDuration",
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
