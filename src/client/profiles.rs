//! The AWS shared credentials file (`~/.aws/credentials`): INI sections of
//! `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token`. The control plane
//! reads its operator keys from one; `iamlet admin` reads a profile from one, as the AWS CLI
//! does.

use std::collections::BTreeMap;

use crate::directory::Secret;

/// One profile's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    /// `aws_access_key_id`.
    pub access_key_id: String,
    /// `aws_secret_access_key`.
    pub secret_access_key: Secret,
    /// `aws_session_token`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a credentials file could not be read. Messages name lines, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsFileError {
    /// A line is neither a `[section]`, a `key = value`, a comment nor blank.
    #[error("line {0}: expected `[profile]` or `key = value`")]
    Syntax(usize),
    /// A key appears outside any section.
    #[error("line {0}: a setting before any `[profile]`")]
    NoSection(usize),
    /// A profile lacks its key id or secret.
    #[error("profile `{0}` needs aws_access_key_id and aws_secret_access_key")]
    Incomplete(String),
}

/// Every complete profile of a credentials file, by name. Keys other than the three
/// credentials (`region`, ...) are ignored; a profile with only some credentials is an error,
/// since using it would fail later with a less helpful message.
pub fn parse_credentials_file(
    text: &str,
) -> Result<BTreeMap<String, Profile>, CredentialsFileError> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let number = index + 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            // `[profile x]` is the config file's spelling; accept it here too.
            let name = name.strip_prefix("profile ").unwrap_or(name).trim();
            sections.entry(name.to_owned()).or_default();
            current = Some(name.to_owned());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or(CredentialsFileError::Syntax(number))?;
        let section = current
            .as_ref()
            .ok_or(CredentialsFileError::NoSection(number))?;
        sections
            .entry(section.clone())
            .or_default()
            .insert(key.trim().to_lowercase(), value.trim().to_owned());
    }
    let mut profiles = BTreeMap::new();
    for (name, mut keys) in sections {
        let id = keys.remove("aws_access_key_id");
        let secret = keys.remove("aws_secret_access_key");
        match (id, secret) {
            (Some(access_key_id), Some(secret))
                if !access_key_id.is_empty() && !secret.is_empty() =>
            {
                profiles.insert(
                    name,
                    Profile {
                        access_key_id,
                        secret_access_key: Secret::new(secret),
                        session_token: keys.remove("aws_session_token"),
                    },
                );
            }
            (None, None) => {}
            _ => return Err(CredentialsFileError::Incomplete(name)),
        }
    }
    Ok(profiles)
}

/// Credentials found as the AWS CLI finds them (see the module docs); `None` when there are
/// none (the control plane then answers `MissingAuthenticationToken`).
pub fn find_credentials(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Profile>, String> {
    let from_file = |name: &str, required: bool| -> Result<Option<Profile>, String> {
        let path = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")));
        let text = match path.as_ref().map(std::fs::read_to_string) {
            Some(Ok(text)) => text,
            Some(Err(_)) | None if !required => return Ok(None),
            Some(Err(e)) => {
                return Err(format!(
                    "cannot read the credentials file{}: {e}",
                    path.map(|p| format!(" `{}`", p.display()))
                        .unwrap_or_default()
                ))
            }
            None => {
                return Err("no credentials file: set AWS_SHARED_CREDENTIALS_FILE or HOME".into())
            }
        };
        let mut profiles =
            parse_credentials_file(&text).map_err(|e| format!("the credentials file: {e}"))?;
        match profiles.remove(name) {
            Some(p) => Ok(Some(p)),
            None if !required => Ok(None),
            None => Err(format!("The config profile ({name}) could not be found")),
        }
    };
    if let Some(name) = profile {
        return from_file(name, true);
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Some(Profile {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()),
        }));
    }
    match env("AWS_PROFILE") {
        Some(name) => from_file(&name, true),
        None => from_file("default", false),
    }
}

/// A credentials file holding one profile (`iamlet up` and the control plane write them).
pub fn render_profile(name: &str, access_key_id: &str, secret: &str) -> String {
    format!("[{name}]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_read_as_the_aws_cli_reads_them() {
        let text = "# keys\n[default]\naws_access_key_id = AKIAEXAMPLE\n\
                    aws_secret_access_key=wJalr/EXAMPLE=\nregion = us-east-1\n\n\
                    [profile ops]\nAWS_ACCESS_KEY_ID = ASIAX\naws_secret_access_key = s\n\
                    aws_session_token = tok=en\n[empty]\n";
        let profiles = parse_credentials_file(text).unwrap();
        assert_eq!(profiles.len(), 2);
        let default = &profiles["default"];
        assert_eq!(default.access_key_id, "AKIAEXAMPLE");
        assert_eq!(default.secret_access_key.expose(), "wJalr/EXAMPLE=");
        assert_eq!(default.session_token, None);
        assert_eq!(profiles["ops"].session_token.as_deref(), Some("tok=en"));
        let rendered = render_profile("p", "AKIA1", "s3cr3t");
        assert_eq!(
            parse_credentials_file(&rendered).unwrap()["p"]
                .secret_access_key
                .expose(),
            "s3cr3t"
        );
    }

    #[test]
    fn broken_files_name_the_line_and_never_a_value() {
        assert_eq!(
            parse_credentials_file("aws_access_key_id = A\n"),
            Err(CredentialsFileError::NoSection(1))
        );
        assert_eq!(
            parse_credentials_file("[a]\nnot a setting\n"),
            Err(CredentialsFileError::Syntax(2))
        );
        let err = parse_credentials_file("[a]\naws_secret_access_key = TOPSECRET\n").unwrap_err();
        assert_eq!(err, CredentialsFileError::Incomplete("a".into()));
        assert!(!err.to_string().contains("TOPSECRET"));
    }
}
