//! The AWS shared credentials file (`~/.aws/credentials`) and config file (`~/.aws/config`):
//! INI sections of `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` and
//! `credential_process`. The control plane reads its operator keys from a credentials file;
//! `iamlet admin`, `iamlet authorize` and `iamlet assume-role` find credentials through one
//! chain, [`find_credentials`], as the AWS CLI does.

use std::collections::BTreeMap;

use crate::directory::Secret;
use crate::policy::{parse_policy_date, Timestamp};

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

/// Settings by section name.
type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// Every complete profile of a credentials file, by name. Keys other than the three
/// credentials (`region`, ...) are ignored; a profile with only some credentials is an error,
/// since using it would fail later with a less helpful message.
pub fn parse_credentials_file(
    text: &str,
) -> Result<BTreeMap<String, Profile>, CredentialsFileError> {
    let mut profiles = BTreeMap::new();
    for (name, keys) in parse_sections(text, false)? {
        if let Some(profile) = static_keys(&name, &keys)? {
            profiles.insert(name, profile);
        }
    }
    Ok(profiles)
}

/// The INI sections of a credentials file or, with `config`, of a config file, where a
/// profile is `[profile NAME]` or `[default]` and other sections (`[sso-session x]`,
/// `[services x]`, a bare `[NAME]`) are not profiles and are skipped, as the AWS CLI skips
/// them. Keys are lower-cased; values are trimmed.
fn parse_sections(text: &str, config: bool) -> Result<Sections, CredentialsFileError> {
    let mut sections = Sections::new();
    // `Some(None)`: inside a section that is not a profile.
    let mut current: Option<Option<String>> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let number = index + 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let profile = match name.strip_prefix("profile ") {
                Some(named) => Some(named.trim()),
                // The credentials file names profiles bare; accept `[profile x]` there too.
                None if !config || name == "default" => Some(name),
                None => None,
            };
            if let Some(profile) = profile {
                sections.entry(profile.to_owned()).or_default();
            }
            current = Some(profile.map(str::to_owned));
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or(CredentialsFileError::Syntax(number))?;
        let section = current
            .as_ref()
            .ok_or(CredentialsFileError::NoSection(number))?;
        if let Some(section) = section {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_lowercase(), value.trim().to_owned());
        }
    }
    Ok(sections)
}

/// Why no credentials could be found. Messages name profiles, files and what went wrong,
/// never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// A profile named by `--profile` or `AWS_PROFILE` is in neither file (the AWS CLI's words).
    #[error("The config profile ({0}) could not be found")]
    ProfileNotFound(String),
    /// A credentials or config file exists but cannot be read.
    #[error("cannot read `{path}`: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// The operating system's reason.
        message: String,
    },
    /// A credentials or config file does not parse.
    #[error("`{path}`: {source}")]
    File {
        /// The file.
        path: String,
        /// What is wrong on which line.
        source: CredentialsFileError,
    },
    /// A profile's `credential_process` failed; the process's stderr has passed through.
    #[error("profile `{profile}`: credential_process {reason}")]
    Process {
        /// The profile whose `credential_process` it is.
        profile: String,
        /// What went wrong, without the output (which holds the secret).
        reason: String,
    },
}

/// How long a `credential_process` may run: the AWS CLI sets no limit, but a hung helper
/// must not hang every command that needs credentials.
const CREDENTIAL_PROCESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The most a `credential_process` may print: version 1 JSON is a few kilobytes at most.
const CREDENTIAL_PROCESS_MAX_OUTPUT: u64 = 64 * 1024;

/// Credentials found as the AWS CLI finds them: `--profile` (when given, the environment's
/// keys are not consulted), then `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
/// (`AWS_SESSION_TOKEN`), then the profile `AWS_PROFILE` names, or `default`. A profile is
/// read as botocore reads it: static keys from the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/credentials`), then `credential_process`, then
/// static keys from the config file (`AWS_CONFIG_FILE`, `~/.aws/config`, sections
/// `[profile NAME]` and `[default]`). `None` when there are none (the control plane then
/// answers `MissingAuthenticationToken`).
pub fn find_credentials(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Profile>, CredentialsError> {
    find_credentials_within(profile, env, CREDENTIAL_PROCESS_TIMEOUT)
}

fn find_credentials_within(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    timeout: std::time::Duration,
) -> Result<Option<Profile>, CredentialsError> {
    if let Some(name) = profile {
        return from_profile(name, true, env, timeout);
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        if !id.is_empty() && !secret.is_empty() {
            return Ok(Some(Profile {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()),
            }));
        }
    }
    match env("AWS_PROFILE").filter(|p| !p.is_empty()) {
        Some(name) => from_profile(&name, true, env, timeout),
        None => from_profile("default", false, env, timeout),
    }
}

/// `AWS_*_FILE`, else `~/.aws/NAME`; a leading `~/` expands as the AWS CLI expands it.
fn file_path(
    env: &dyn Fn(&str) -> Option<String>,
    variable: &str,
    name: &str,
) -> Option<std::path::PathBuf> {
    let home = env("HOME");
    match env(variable).filter(|p| !p.is_empty()) {
        Some(path) => match (path.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => Some(std::path::Path::new(&home).join(rest)),
            _ => Some(path.into()),
        },
        None => home.map(|h| std::path::Path::new(&h).join(".aws").join(name)),
    }
}

/// The sections of one file by profile name; a missing file has none, as for the AWS CLI.
fn read_sections(
    path: Option<std::path::PathBuf>,
    config: bool,
) -> Result<Sections, CredentialsError> {
    let Some(path) = path else {
        return Ok(Sections::new());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Sections::new()),
        Err(e) => {
            return Err(CredentialsError::Unreadable {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        }
    };
    parse_sections(&text, config).map_err(|source| CredentialsError::File {
        path: path.display().to_string(),
        source,
    })
}

fn from_profile(
    name: &str,
    required: bool,
    env: &dyn Fn(&str) -> Option<String>,
    timeout: std::time::Duration,
) -> Result<Option<Profile>, CredentialsError> {
    let credentials_path = file_path(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_path = file_path(env, "AWS_CONFIG_FILE", "config");
    let shown = |path: &Option<std::path::PathBuf>| {
        path.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut credentials = read_sections(credentials_path.clone(), false)?;
    let mut config = read_sections(config_path.clone(), true)?;
    let from_credentials = credentials.remove(name);
    let from_config = config.remove(name);
    if from_credentials.is_none() && from_config.is_none() {
        return if required {
            Err(CredentialsError::ProfileNotFound(name.to_owned()))
        } else {
            Ok(None)
        };
    }
    let file_error = |path: &Option<std::path::PathBuf>, source| CredentialsError::File {
        path: shown(path),
        source,
    };
    if let Some(keys) = &from_credentials {
        if let Some(p) = static_keys(name, keys).map_err(|e| file_error(&credentials_path, e))? {
            return Ok(Some(p));
        }
    }
    // botocore merges the credentials file's profile over the config file's: a
    // credential_process may be in either, the credentials file's winning.
    let process = from_credentials
        .as_ref()
        .and_then(|k| k.get("credential_process"))
        .or_else(|| {
            from_config
                .as_ref()
                .and_then(|k| k.get("credential_process"))
        })
        .filter(|c| !c.is_empty());
    if let Some(command) = process {
        return run_credential_process(name, command, timeout).map(Some);
    }
    match &from_config {
        Some(keys) => static_keys(name, keys).map_err(|e| file_error(&config_path, e)),
        None => Ok(None),
    }
}

/// A section's `aws_access_key_id`/`aws_secret_access_key`(`/aws_session_token`); an error
/// when only one of the pair is there.
fn static_keys(
    name: &str,
    keys: &BTreeMap<String, String>,
) -> Result<Option<Profile>, CredentialsFileError> {
    let id = keys.get("aws_access_key_id").filter(|v| !v.is_empty());
    let secret = keys.get("aws_secret_access_key").filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(Profile {
            access_key_id: id.clone(),
            secret_access_key: Secret::new(secret.clone()),
            session_token: keys
                .get("aws_session_token")
                .filter(|t| !t.is_empty())
                .cloned(),
        })),
        (None, None) => Ok(None),
        _ => Err(CredentialsFileError::Incomplete(name.to_owned())),
    }
}

/// Splits a `credential_process` command line into words as the AWS CLI does on POSIX
/// (Python's `shlex.split`): whitespace separates words, `'…'` is literal, `"…"` keeps
/// whitespace and honours `\` before `\`, `"`, `$` and `` ` ``, and `\` outside quotes escapes
/// the next character. No shell runs the result.
fn split_command(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("has an unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('\\' | '"' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("has an unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("has an unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("ends with a lone backslash".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// What a `credential_process` prints (version 1, as the AWS SDKs document it).
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput {
    version: serde_json::Value,
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

/// Runs a profile's `credential_process` (no shell; stdin closed; stderr passes through),
/// waits at most `timeout`, reads at most 64 KiB, and checks the version 1 JSON it prints.
fn run_credential_process(
    profile: &str,
    command: &str,
    timeout: std::time::Duration,
) -> Result<Profile, CredentialsError> {
    let fail = |reason: String| CredentialsError::Process {
        profile: profile.to_owned(),
        reason,
    };
    let words = split_command(command).map_err(fail)?;
    let Some((program, args)) = words.split_first() else {
        return Err(fail("is empty".into()));
    };
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("`{program}` cannot start: {e}")))?;
    let deadline = std::time::Instant::now() + timeout;
    let (sender, receiver) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        // A thread reads, so that a process that never closes its stdout cannot outlast the
        // deadline; reading stops one byte past the limit.
        std::thread::spawn(move || {
            use std::io::Read;
            let mut output = Vec::new();
            let read = stdout
                .take(CREDENTIAL_PROCESS_MAX_OUTPUT + 1)
                .read_to_end(&mut output);
            let _ = sender.send(read.map(|_| output));
        });
    }
    let kill = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    let timed_out = || fail(format!("did not finish within {} s", timeout.as_secs_f64()));
    let remaining = deadline.saturating_duration_since(std::time::Instant::now());
    let output = match receiver.recv_timeout(remaining) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            kill(&mut child);
            return Err(fail(format!("output cannot be read: {e}")));
        }
        Err(_) => {
            kill(&mut child);
            return Err(timed_out());
        }
    };
    if output.len() as u64 > CREDENTIAL_PROCESS_MAX_OUTPUT {
        kill(&mut child);
        return Err(fail(format!(
            "printed more than {} KiB",
            CREDENTIAL_PROCESS_MAX_OUTPUT / 1024
        )));
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Ok(None) => {
                kill(&mut child);
                return Err(timed_out());
            }
            Err(e) => return Err(fail(format!("cannot be waited for: {e}"))),
        }
    };
    if !status.success() {
        return Err(fail(format!("failed ({status})")));
    }
    parse_process_output(&output, Timestamp::now()).map_err(fail)
}

/// Checks a `credential_process`'s output as of `now`; errors never quote the output, which
/// holds the secret.
fn parse_process_output(output: &[u8], now: Timestamp) -> Result<Profile, String> {
    let parsed: ProcessOutput = serde_json::from_slice(output)
        .map_err(|e| format!("printed no valid version 1 credentials JSON: {e}"))?;
    if parsed.version != serde_json::json!(1) {
        return Err(format!(
            "printed Version {}; only Version 1 is supported",
            parsed.version
        ));
    }
    if parsed.access_key_id.is_empty() || parsed.secret_access_key.is_empty() {
        return Err("printed an empty AccessKeyId or SecretAccessKey".into());
    }
    if let Some(expiration) = parsed.expiration.as_deref().filter(|e| !e.is_empty()) {
        let at = parse_policy_date(expiration)
            .filter(|_| expiration.contains('T') || expiration.contains('t'))
            .ok_or_else(|| format!("printed an Expiration that is not RFC 3339: {expiration}"))?;
        if at <= now {
            return Err(format!("printed credentials that expired at {at}"));
        }
    }
    Ok(Profile {
        access_key_id: parsed.access_key_id,
        secret_access_key: Secret::new(parsed.secret_access_key),
        session_token: parsed.session_token.filter(|t| !t.is_empty()),
    })
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
    /// A directory of its own for one test's files.
    fn dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("iamlet-profiles-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn key_of(found: Result<Option<Profile>, CredentialsError>) -> Option<String> {
        found.unwrap().map(|p| p.access_key_id)
    }

    #[test]
    fn the_chain_takes_profile_then_environment_then_aws_profile_then_default() {
        let dir = dir("chain");
        let credentials = dir.join("credentials");
        let config = dir.join("config");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\
             [ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = o\n\
             [both]\naws_access_key_id = AKIABOTHCREDS\naws_secret_access_key = b\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\n\
             [profile cfg]\naws_access_key_id = ASIACFG\naws_secret_access_key = c\n\
             aws_session_token = tok\n\
             [profile both]\naws_access_key_id = AKIABOTHCONFIG\naws_secret_access_key = b\n\
             [bare]\naws_access_key_id = AKIABARE\naws_secret_access_key = x\n\
             [sso-session s]\nsso_region = us-east-1\n",
        )
        .unwrap();
        let files = [
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
            ("AWS_CONFIG_FILE", config.display().to_string()),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = files.to_vec();
            pairs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
            env_of(&pairs)
        };
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "e"),
        ];
        // --profile wins over the environment's keys.
        assert_eq!(
            key_of(find_credentials(Some("ops"), &with(&keys))).as_deref(),
            Some("AKIAOPS")
        );
        // The environment's keys win over AWS_PROFILE and default.
        let env_and_profile = with(&[keys[0], keys[1], ("AWS_PROFILE", "ops")]);
        assert_eq!(
            key_of(find_credentials(None, &env_and_profile)).as_deref(),
            Some("AKIAENV")
        );
        // AWS_PROFILE names a profile of the config file; its session token comes along.
        let cfg = find_credentials(None, &with(&[("AWS_PROFILE", "cfg")]))
            .unwrap()
            .unwrap();
        assert_eq!(cfg.access_key_id, "ASIACFG");
        assert_eq!(cfg.session_token.as_deref(), Some("tok"));
        // Neither: the default profile.
        assert_eq!(
            key_of(find_credentials(None, &with(&[]))).as_deref(),
            Some("AKIADEFAULT")
        );
        // A profile in both files: the credentials file's keys win, as botocore's.
        assert_eq!(
            key_of(find_credentials(Some("both"), &with(&[]))).as_deref(),
            Some("AKIABOTHCREDS")
        );
        // A bare `[bare]` in the config file is not a profile; a named profile that is
        // nowhere is an error, from --profile or AWS_PROFILE alike.
        for found in [
            find_credentials(Some("bare"), &with(&[])),
            find_credentials(None, &with(&[("AWS_PROFILE", "bare")])),
        ] {
            assert_eq!(found, Err(CredentialsError::ProfileNotFound("bare".into())));
        }
        // No files and no variables: no credentials, not an error.
        let nowhere = [
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("none").display().to_string(),
            ),
            ("AWS_CONFIG_FILE", dir.join("none2").display().to_string()),
        ];
        assert_eq!(find_credentials(None, &env_of(&nowhere)), Ok(None));
        // `~/` in a file variable is the home directory.
        let home = [
            ("HOME", dir.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "~/credentials".to_owned()),
            ("AWS_CONFIG_FILE", "~/none".to_owned()),
        ];
        assert_eq!(
            key_of(find_credentials(Some("ops"), &env_of(&home))).as_deref(),
            Some("AKIAOPS")
        );
        // A config profile with half a key pair names the file and the profile, not a value.
        std::fs::write(
            &config,
            "[profile half]\naws_secret_access_key = TOPSECRET\n",
        )
        .unwrap();
        let err = find_credentials(Some("half"), &with(&[])).unwrap_err();
        assert!(err.to_string().contains("profile `half`"), "{err}");
        assert!(err.to_string().contains("config"), "{err}");
        assert!(!err.to_string().contains("TOPSECRET"), "{err}");
    }

    /// A config file whose one profile is `[profile NAME]` with `credential_process`.
    fn process_env(dir: &std::path::Path, command: &str) -> impl Fn(&str) -> Option<String> {
        let config = dir.join("config");
        std::fs::write(
            &config,
            format!("[profile p]\ncredential_process = {command}\n"),
        )
        .unwrap();
        env_of(&[
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("none").display().to_string(),
            ),
            ("AWS_CONFIG_FILE", config.display().to_string()),
        ])
    }

    #[test]
    fn credential_process_output_becomes_the_profile() {
        // A path with a space, quoted: the command is split into words as shlex splits it.
        let dir = dir("process").join("with space");
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("out.json");
        std::fs::write(
            &json,
            r#"{"Version": 1, "AccessKeyId": "ASIAPROC", "SecretAccessKey": "s3cr3t",
                "SessionToken": "tok", "Expiration": "2999-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let env = process_env(&dir, &format!("cat \"{}\"", json.display()));
        let found = find_credentials(Some("p"), &env).unwrap().unwrap();
        assert_eq!(found.access_key_id, "ASIAPROC");
        assert_eq!(found.secret_access_key.expose(), "s3cr3t");
        assert_eq!(found.session_token.as_deref(), Some("tok"));
        // Without an Expiration the credentials do not expire.
        std::fs::write(
            &json,
            r#"{"Version": 1, "AccessKeyId": "AKIAPROC", "SecretAccessKey": "s"}"#,
        )
        .unwrap();
        let found = find_credentials(Some("p"), &env).unwrap().unwrap();
        assert_eq!(
            (found.access_key_id.as_str(), found.session_token),
            ("AKIAPROC", None)
        );
    }

    #[test]
    fn failing_processes_name_the_profile_and_what_went_wrong() {
        let dir = dir("process-fails");
        let reason = |command: &str, timeout_ms: u64| {
            let env = process_env(&dir, command);
            match find_credentials_within(
                None,
                &|k| {
                    if k == "AWS_PROFILE" {
                        Some("p".into())
                    } else {
                        env(k)
                    }
                },
                std::time::Duration::from_millis(timeout_ms),
            ) {
                Err(CredentialsError::Process { profile, reason }) => {
                    assert_eq!(profile, "p");
                    reason
                }
                other => panic!("{command}: {other:?}"),
            }
        };
        let failed = reason("sh -c 'echo from the helper >&2; exit 3'", 60_000);
        assert!(
            failed.contains("failed") && failed.contains('3'),
            "{failed}"
        );
        let missing = reason("/nonexistent/iamlet-helper --flag", 60_000);
        assert!(
            missing.contains("`/nonexistent/iamlet-helper` cannot start"),
            "{missing}"
        );
        let hung = reason("sleep 30", 100);
        assert!(hung.contains("did not finish within 0.1 s"), "{hung}");
        let bad = reason("echo not json", 60_000);
        assert!(bad.contains("no valid version 1 credentials JSON"), "{bad}");
        let unterminated = reason("sh -c 'exit 0", 60_000);
        assert!(
            unterminated.contains("unterminated single quote"),
            "{unterminated}"
        );
        let empty_words = reason("''", 60_000);
        assert!(empty_words.contains("cannot start"), "{empty_words}");
        let large = reason("head -c 100000 /dev/zero", 60_000);
        assert!(large.contains("more than 64 KiB"), "{large}");
    }

    #[test]
    fn process_output_is_checked_without_quoting_the_secret() {
        let now = parse_policy_date("2026-12-03T00:00:00Z").unwrap();
        let check = |json: &str| parse_process_output(json.as_bytes(), now);
        let good = check(
            r#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2026-12-03T01:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(good.access_key_id, "A");
        for (json, expected) in [
            (
                r#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"TOPSECRET","Expiration":"2026-12-02T23:59:59Z"}"#,
                "expired at 2026-12-02T23:59:59Z",
            ),
            (
                r#"{"Version":2,"AccessKeyId":"A","SecretAccessKey":"TOPSECRET"}"#,
                "Version 2; only Version 1",
            ),
            (
                r#"{"Version":"1","AccessKeyId":"A","SecretAccessKey":"TOPSECRET"}"#,
                "only Version 1",
            ),
            (
                r#"{"Version":1,"AccessKeyId":"A"}"#,
                "missing field `SecretAccessKey`",
            ),
            (
                r#"{"Version":1,"AccessKeyId":"","SecretAccessKey":"TOPSECRET"}"#,
                "empty AccessKeyId",
            ),
            (
                r#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"TOPSECRET","Expiration":"soon"}"#,
                "not RFC 3339: soon",
            ),
            ("TOPSECRET", "no valid version 1 credentials JSON"),
        ] {
            let err = check(json).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
            assert!(!err.contains("TOPSECRET"), "{err}");
        }
    }

    #[test]
    fn commands_split_as_shlex_splits_them() {
        assert_eq!(
            split_command(
                r#"iamlet assume-role --role-arn 'arn:aws:iam::1:role/a b'  "x \"y\" \z" a\ b"#
            ),
            Ok(vec![
                "iamlet".to_owned(),
                "assume-role".into(),
                "--role-arn".into(),
                "arn:aws:iam::1:role/a b".into(),
                r#"x "y" \z"#.into(),
                "a b".into(),
            ])
        );
        assert_eq!(split_command("  "), Ok(vec![]));
        assert_eq!(
            split_command("a ''"),
            Ok(vec!["a".to_owned(), String::new()])
        );
        assert!(split_command("a \"b").is_err());
        assert!(split_command("a \\").is_err());
    }
}
