//! `iamlet authorize`, `iamlet assume-role` and `iamlet status`: clients of a running sidecar.
//!
//! Credentials are found as the AWS CLI finds them: `--access-key-id`/`--secret-access-key`
//! (`--session-token`) when given, else [`crate::client::find_credentials`]'s chain
//! (`--profile`, the `AWS_*` variables, `AWS_PROFILE` or `default` from the shared credentials
//! file, a `credential_process` or the config file), the same chain as `iamlet admin`'s; so
//! `eval "$(iamlet assume-role ... --output env)"` switches to a role session.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::proto::v1 as pb;

use crate::client::find_credentials;

use super::admin::{service_error, AdminCliError};

/// The caller's credentials: these flags, else the AWS CLI's chain.
#[derive(Debug, Args)]
pub(crate) struct CredentialArgs {
    /// The access key id (`AKIA…` or `ASIA…`); without it, credentials come from `--profile`,
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, or `AWS_PROFILE`/`default`.
    #[arg(long)]
    access_key_id: Option<String>,
    /// The secret access key (with `--access-key-id`).
    #[arg(long)]
    secret_access_key: Option<String>,
    /// The session token of temporary credentials (with `--access-key-id`).
    #[arg(long)]
    session_token: Option<String>,
    /// A profile of the shared credentials or config file (before the environment's keys).
    #[arg(long)]
    profile: Option<String>,
}

/// `iamlet authorize`.
#[derive(Debug, Args)]
pub(crate) struct AuthorizeArgs {
    /// The sidecar's local API.
    #[arg(long, env = "IAMLET_SIDECAR", default_value = "http://127.0.0.1:7071")]
    sidecar: String,
    /// The caller's ARN, when the application authenticated it
    /// (`arn:aws:iam::A:user/alice`, `arn:aws:sts::A:assumed-role/R/S`); without it the
    /// caller is whoever the credentials belong to.
    #[arg(long)]
    principal: Option<String>,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// The action (`s3:GetObject`).
    #[arg(long)]
    action: String,
    /// The resource ARN, or `*`.
    #[arg(long, default_value = "*")]
    resource: String,
    /// A context key, `key=value`; repeat for more (`aws:SourceIp=10.0.0.1`).
    #[arg(long = "context", value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// List every statement that applied.
    #[arg(long)]
    explain: bool,
}

/// How `assume-role` prints the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CredentialOutput {
    /// The response as JSON, shaped like `aws sts assume-role`'s.
    Json,
    /// `export AWS_…=…` lines for a shell's `eval`.
    Env,
    /// The JSON of the SDKs' `credential_process` (`Version: 1`), so that a profile's
    /// `credential_process = iamlet assume-role … --output credential-process` works with
    /// every AWS SDK and the AWS CLI.
    CredentialProcess,
}

/// What a `credential_process` prints, as the AWS SDKs document it: version 1, the keys, the
/// session token and the expiry in RFC 3339 (so the SDK refreshes before it).
fn credential_process_json(credentials: &pb::IssuedCredentials) -> Value {
    json!({
        "Version": 1,
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.session_token,
        "Expiration": credentials.expiration,
    })
}

/// `iamlet assume-role`.
#[derive(Debug, Args)]
pub(crate) struct AssumeRoleArgs {
    /// The sidecar's local API.
    #[arg(long, env = "IAMLET_SIDECAR", default_value = "http://127.0.0.1:7071")]
    sidecar: String,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// The role's ARN.
    #[arg(long)]
    role_arn: String,
    /// The session's name.
    #[arg(long, default_value = "iamlet-cli")]
    role_session_name: String,
    /// A web identity (OIDC) token file: calls `AssumeRoleWithWebIdentity` instead, without
    /// credentials (as SDKs do with `AWS_WEB_IDENTITY_TOKEN_FILE`).
    #[arg(long, env = "AWS_WEB_IDENTITY_TOKEN_FILE")]
    web_identity_token_file: Option<PathBuf>,
    /// The session's lifetime in seconds (900 to the role's maximum).
    #[arg(long)]
    duration_seconds: Option<i32>,
    /// An inline session policy, or `file://PATH`.
    #[arg(long)]
    policy: Option<String>,
    /// Managed session policies by ARN.
    #[arg(long = "policy-arn", value_name = "ARN")]
    policy_arns: Vec<String>,
    /// A session tag, `key=value`; repeat for more.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    /// Keys of the session tags that pass on to chained sessions.
    #[arg(long = "transitive-tag-key", value_name = "KEY")]
    transitive_tag_keys: Vec<String>,
    /// The external id the role's trust policy asks for.
    #[arg(long)]
    external_id: Option<String>,
    /// The MFA device's serial number (with `--token-code`).
    #[arg(long)]
    serial_number: Option<String>,
    /// The MFA device's current code.
    #[arg(long)]
    token_code: Option<String>,
    /// The source identity to set on the session.
    #[arg(long)]
    source_identity: Option<String>,
    /// How to print the credentials.
    #[arg(long, value_enum, default_value_t = CredentialOutput::Json)]
    output: CredentialOutput,
}

fn runtime() -> Result<tokio::runtime::Runtime, AdminCliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdminCliError::Runtime)
}

fn connect_error(endpoint: &str) -> impl FnOnce(tonic::transport::Error) -> AdminCliError + '_ {
    move |source| AdminCliError::Connect {
        endpoint: endpoint.to_owned(),
        source,
    }
}

fn pretty(out: &mut dyn Write, value: &Value) {
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

// === impl CredentialArgs ===

impl CredentialArgs {
    fn to_pb(&self) -> Result<pb::Credentials, AdminCliError> {
        self.resolve(&|k| std::env::var(k).ok())
    }

    /// The flags' keys, else the chain's over `env`.
    fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<pb::Credentials, AdminCliError> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => {
                return Ok(pb::Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: self.session_token.clone().unwrap_or_default(),
                })
            }
            (Some(_), None) => {
                return Err(AdminCliError::Usage(
                    "--access-key-id needs --secret-access-key".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(AdminCliError::Usage(
                    "--secret-access-key needs --access-key-id".into(),
                ))
            }
            (None, None) if self.session_token.is_some() => {
                return Err(AdminCliError::Usage(
                    "--session-token needs --access-key-id and --secret-access-key".into(),
                ))
            }
            (None, None) => {}
        }
        match find_credentials(self.profile.as_deref(), env) {
            Ok(Some(found)) => Ok(pb::Credentials {
                access_key_id: found.access_key_id,
                secret_access_key: found.secret_access_key.expose().to_owned(),
                session_token: found.session_token.unwrap_or_default(),
            }),
            Ok(None) => Err(AdminCliError::Usage(
                "no credentials: give --profile or --access-key-id and --secret-access-key, \
                 set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or add a \
                 default profile to ~/.aws/credentials or ~/.aws/config"
                    .into(),
            )),
            Err(e) => Err(AdminCliError::Usage(e.to_string())),
        }
    }
}

/// The sidecar's address as a URL: `HOST:PORT` means `http://HOST:PORT`, as the sidecar
/// listens on plain HTTP/2 by default; anything else is refused with what is wrong with it,
/// before a connection is tried.
pub(crate) fn sidecar_endpoint(raw: &str) -> Result<String, AdminCliError> {
    let bad = |why: &str| AdminCliError::Usage(format!("--sidecar `{raw}`: {why}"));
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(bad("is empty; expected HOST:PORT or http://HOST:PORT"));
    }
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_owned(), trimmed),
    };
    if scheme != "http" && scheme != "https" {
        return Err(bad(&format!("the scheme `{scheme}` is not http or https")));
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if !path.is_empty() && path != "/" {
        return Err(bad(&format!(
            "has a path `{path}`; the sidecar's API is at the root"
        )));
    }
    if authority.contains('@') {
        return Err(bad("has user information; give HOST:PORT only"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => return Err(bad("has an IPv6 address without its closing `]`")),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if host.contains(':') && !authority.starts_with('[') {
        return Err(bad(
            "has an IPv6 address without brackets; write [ADDRESS]:PORT",
        ));
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(bad(&format!(
                "the port `{port}` is not a number from 1 to 65535"
            )));
        }
    }
    let url = format!("{scheme}://{authority}");
    tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| bad(&format!("is not a valid URL: {e}")))?;
    Ok(url)
}

fn key_value(flag: &str, pair: &str) -> Result<(String, String), AdminCliError> {
    pair.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| AdminCliError::Usage(format!("--{flag} {pair}: expected KEY=VALUE")))
}

/// `iamlet authorize`: prints the decision as JSON; true when allowed (exit status 0), false
/// for a deny (exit status 1).
pub(crate) fn run_authorize(
    args: AuthorizeArgs,
    out: &mut dyn Write,
) -> Result<bool, AdminCliError> {
    // The address first: a bad one is reported before a credential_process runs.
    let sidecar = sidecar_endpoint(&args.sidecar)?;
    let mut context = HashMap::new();
    for pair in &args.context {
        let (key, value) = key_value("context", pair)?;
        context.insert(
            key,
            pb::ContextValue {
                value: Some(pb::context_value::Value::StringValue(value)),
            },
        );
    }
    let caller = match args.principal {
        Some(arn) => pb::authorize_request::Caller::PrincipalArn(arn),
        None => pb::authorize_request::Caller::Credentials(args.credentials.to_pb()?),
    };
    let request = pb::AuthorizeRequest {
        caller: Some(caller),
        action: args.action,
        resource: args.resource,
        context,
        explain: args.explain,
        ..pb::AuthorizeRequest::default()
    };
    let response = runtime()?.block_on(async {
        let mut client = pb::authorizer_client::AuthorizerClient::connect(sidecar.clone())
            .await
            .map_err(connect_error(&sidecar))?;
        client
            .authorize(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| service_error("Authorize", &s))
    })?;
    let decision = pb::Decision::try_from(response.decision).map_or("UNKNOWN", |d| d.as_str_name());
    let statement =
        |s: &pb::StatementRef| json!({"Policy": s.policy, "Index": s.index, "Sid": s.sid});
    let mut value = json!({
        "Decision": decision,
        "Principal": response.principal_arn,
        "Message": response.message,
        "Statement": response.statement.as_ref().map(statement),
        "Version": response.version.map(|v| format!("{}.{}", v.epoch, v.seq)),
        "Cached": response.cached,
        "Rule": Some(response.rule.as_str()).filter(|r| !r.is_empty()),
    });
    if args.explain {
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "Trace".into(),
                response
                    .trace
                    .iter()
                    .map(|t| json!({"Effect": t.effect, "Statement": t.statement.as_ref().map(statement)}))
                    .collect(),
            );
        }
    }
    pretty(out, &value);
    Ok(response.decision == pb::Decision::Allow as i32)
}

/// `iamlet assume-role`: prints the session's credentials.
pub(crate) fn run_assume_role(
    args: &AssumeRoleArgs,
    out: &mut dyn Write,
) -> Result<(), AdminCliError> {
    let sidecar = sidecar_endpoint(&args.sidecar)?;
    let policy = match args.policy.as_deref() {
        Some(p) => match p.strip_prefix("file://") {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| AdminCliError::Usage(format!("--policy {p}: {e}")))?,
            None => p.to_owned(),
        },
        None => String::new(),
    };
    let (credentials, user, extra) = runtime()?.block_on(async {
        let mut client =
            pb::security_token_service_client::SecurityTokenServiceClient::connect(sidecar.clone())
                .await
                .map_err(connect_error(&sidecar))?;
        if let Some(path) = &args.web_identity_token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                AdminCliError::Usage(format!("--web-identity-token-file {}: {e}", path.display()))
            })?;
            let r = client
                .assume_role_with_web_identity(pb::AssumeRoleWithWebIdentityRequest {
                    role_arn: args.role_arn.clone(),
                    role_session_name: args.role_session_name.clone(),
                    web_identity_token: token.trim().to_owned(),
                    duration_seconds: args.duration_seconds,
                    policy,
                    policy_arns: args.policy_arns.clone(),
                    request_id: String::new(),
                })
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| service_error("AssumeRoleWithWebIdentity", &s))?;
            let extra = json!({
                "SubjectFromWebIdentityToken": r.subject_from_web_identity_token,
                "Provider": r.provider,
                "Audience": r.audience,
            });
            return Ok((r.credentials, r.assumed_role_user, extra));
        }
        let tags = args
            .tags
            .iter()
            .map(|t| key_value("tag", t).map(|(key, value)| pb::SessionTag { key, value }))
            .collect::<Result<Vec<_>, _>>()?;
        let r = client
            .assume_role(pb::AssumeRoleRequest {
                caller: Some(pb::StsCaller {
                    caller: Some(pb::sts_caller::Caller::Credentials(
                        args.credentials.to_pb()?,
                    )),
                }),
                role_arn: args.role_arn.clone(),
                role_session_name: args.role_session_name.clone(),
                duration_seconds: args.duration_seconds,
                policy,
                policy_arns: args.policy_arns.clone(),
                tags,
                transitive_tag_keys: args.transitive_tag_keys.clone(),
                external_id: args.external_id.clone().unwrap_or_default(),
                serial_number: args.serial_number.clone().unwrap_or_default(),
                token_code: args.token_code.clone().unwrap_or_default(),
                source_identity: args.source_identity.clone().unwrap_or_default(),
                request_id: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| service_error("AssumeRole", &s))?;
        let extra = json!({"PackedPolicySize": r.packed_policy_size});
        Ok::<_, AdminCliError>((r.credentials, r.assumed_role_user, extra))
    })?;
    let credentials = credentials.unwrap_or_default();
    match args.output {
        CredentialOutput::CredentialProcess => pretty(out, &credential_process_json(&credentials)),
        CredentialOutput::Env => {
            let _ = writeln!(
                out,
                "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nexport AWS_SESSION_TOKEN={}",
                credentials.access_key_id, credentials.secret_access_key, credentials.session_token
            );
        }
        CredentialOutput::Json => {
            let user = user.unwrap_or_default();
            let mut value = json!({
                "Credentials": {
                    "AccessKeyId": credentials.access_key_id,
                    "SecretAccessKey": credentials.secret_access_key,
                    "SessionToken": credentials.session_token,
                    "Expiration": credentials.expiration,
                },
                "AssumedRoleUser": {"AssumedRoleId": user.assumed_role_id, "Arn": user.arn},
            });
            if let (Some(map), Value::Object(extra)) = (value.as_object_mut(), extra) {
                map.extend(extra);
            }
            pretty(out, &value);
        }
    }
    Ok(())
}

/// `iamlet status`: prints the sidecar's status as JSON; true when it is ready.
pub(crate) fn run_status(sidecar: &str, out: &mut dyn Write) -> Result<bool, AdminCliError> {
    let sidecar = sidecar_endpoint(sidecar)?;
    let status = runtime()?.block_on(async {
        let mut client = pb::sidecar_status_client::SidecarStatusClient::connect(sidecar.clone())
            .await
            .map_err(connect_error(&sidecar))?;
        client
            .status(pb::StatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| service_error("Status", &s))
    })?;
    let version = |v: Option<pb::Version>| v.map(|v| format!("{}.{}", v.epoch, v.seq));
    let cache = |c: pb::CacheStats| {
        let total = c.hits + c.misses;
        let ratio = (total > 0).then(|| format!("{:.3}", c.hits as f64 / total as f64));
        json!({"Hits": c.hits, "Misses": c.misses, "Entries": c.entries, "HitRatio": ratio})
    };
    pretty(
        out,
        &json!({
            "Ready": status.ready,
            "Connected": status.connected,
            "Endpoint": (!status.endpoint.is_empty()).then_some(&status.endpoint),
            "Failovers": status.failovers,
            "StalenessMs": (status.staleness_ms >= 0).then_some(status.staleness_ms),
            "Tenants": status.tenants.iter().map(|t| json!({"Tenant": t.tenant, "Version": version(t.version)})).collect::<Vec<_>>(),
            "Missing": status.missing,
            "LastNacks": status.last_nacks.iter().map(|n| json!({"Tenant": n.tenant, "Version": version(n.version), "Error": n.error})).collect::<Vec<_>>(),
            "DecisionCache": cache(status.decision_cache.unwrap_or_default()),
            "CredentialCache": cache(status.credential_cache.unwrap_or_default()),
            "DecisionLog": {"Written": status.decision_log_written, "Dropped": status.decision_log_dropped, "WriteErrors": status.decision_log_write_errors},
        }),
    );
    Ok(status.ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_process_output_is_the_documented_version_1_json() {
        let issued = pb::IssuedCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: "token".into(),
            expiration: "2026-12-02T18:00:00Z".into(),
        };
        let value = credential_process_json(&issued);
        assert_eq!(
            value,
            json!({
                "Version": 1,
                "AccessKeyId": "ASIAEXAMPLE",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": "2026-12-02T18:00:00Z",
            })
        );
        // The SDKs read Version as a number: the string "1" is refused by botocore.
        assert!(value["Version"].is_u64());
        assert_eq!(
            CredentialOutput::from_str("credential-process", false),
            Ok(CredentialOutput::CredentialProcess)
        );
    }
    #[test]
    fn sidecar_addresses_without_a_scheme_are_http_and_bad_ones_say_why() {
        for (raw, url) in [
            ("127.0.0.1:7071", "http://127.0.0.1:7071"),
            ("http://127.0.0.1:7071", "http://127.0.0.1:7071"),
            ("https://sidecar.local:7071/", "https://sidecar.local:7071"),
            ("localhost", "http://localhost"),
            ("[::1]:7071", "http://[::1]:7071"),
        ] {
            assert_eq!(sidecar_endpoint(raw).ok().as_deref(), Some(url), "{raw}");
        }
        for (raw, why) in [
            ("", "is empty"),
            (
                "ftp://127.0.0.1:7071",
                "the scheme `ftp` is not http or https",
            ),
            (
                "127.0.0.1:70710",
                "the port `70710` is not a number from 1 to 65535",
            ),
            ("127.0.0.1:", "the port `` is not"),
            ("127.0.0.1:0", "the port `0` is not"),
            ("http://:7071", "has no host"),
            ("127.0.0.1:7071/v1", "has a path `/v1`"),
            ("::1", "without brackets"),
            ("[::1:7071", "without its closing `]`"),
            ("user@127.0.0.1:7071", "user information"),
        ] {
            let err = sidecar_endpoint(raw).unwrap_err();
            assert!(matches!(err, AdminCliError::Usage(_)), "{raw}: {err:?}");
            assert!(err.to_string().contains(why), "{raw}: {err}");
            assert!(
                err.to_string().starts_with(&format!("--sidecar `{raw}`")),
                "{err}"
            );
        }
    }

    fn credentials(flags: &[&str]) -> CredentialArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            credentials: CredentialArgs,
        }
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("iamlet").chain(flags.iter().copied()))
            .unwrap()
            .credentials
    }

    #[test]
    fn flags_come_before_the_chain_and_the_chain_before_nothing() {
        let dir = std::env::temp_dir().join(format!("iamlet-cli-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = o\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let env = |k: &str| match k {
            "AWS_SHARED_CREDENTIALS_FILE" => Some(path.clone()),
            "AWS_ACCESS_KEY_ID" => Some("AKIAENV".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("e".into()),
            _ => None,
        };
        let flags = ["--access-key-id", "AKIAFLAG", "--secret-access-key", "f"];
        let with_profile = [&flags[..], &["--profile", "ops"]].concat();
        assert_eq!(
            credentials(&with_profile)
                .resolve(&env)
                .unwrap()
                .access_key_id,
            "AKIAFLAG"
        );
        assert_eq!(
            credentials(&["--profile", "ops"])
                .resolve(&env)
                .unwrap()
                .access_key_id,
            "AKIAOPS"
        );
        assert_eq!(
            credentials(&[]).resolve(&env).unwrap().access_key_id,
            "AKIAENV"
        );
        let err = credentials(&["--profile", "nope"])
            .resolve(&env)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The config profile (nope) could not be found"
        );
        for (flags, why) in [
            (
                &["--access-key-id", "A"][..],
                "--access-key-id needs --secret-access-key",
            ),
            (
                &["--secret-access-key", "S"][..],
                "--secret-access-key needs --access-key-id",
            ),
            (&["--session-token", "T"][..], "--session-token needs"),
        ] {
            let err = credentials(flags).resolve(&env).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
        let nothing = |k: &str| (k == "AWS_SHARED_CREDENTIALS_FILE").then(|| path.clone());
        let err = credentials(&[]).resolve(&nothing).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no credentials: give --profile"),
            "{err}"
        );
    }
}
