//! `iamlet admin`: the control plane's management API with the verbs and flags of `aws iam`.
//!
//! `iamlet admin create-user --tenant 111122223333 --user-name alice` calls the IAM action
//! `CreateUser` with `{"UserName": "alice"}`. Verbs and flags are AWS's, in kebab case; a value
//! `file://PATH` is read from the file (as the AWS CLI does for policy documents); a JSON array
//! or object is passed as JSON (`--tags '[{"Key":"team","Value":"blue"}]'`); several values after
//! one flag make a list (`--client-id-list a b`); a flag without a value is `true`. Results print
//! as JSON; errors as the AWS CLI prints them, with exit status 254.
//!
//! Credentials are found as the AWS CLI finds them: `--profile NAME` from the shared
//! credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`); else
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; else the profile
//! `AWS_PROFILE` or `default` from the file. Each call is signed with SigV4, so the secret
//! never leaves the machine. Without `--tenant`, an IAM action acts on the account the
//! access key belongs to.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use crate::client::{find_credentials, Profile};
use crate::grpc::{aws_error_code, signed_admin_request as signed};
use crate::proto::v1 as pb;

/// `iamlet admin`.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The control plane's URL (`https://…` with `--ca-bundle`).
    #[arg(long, env = "IAMLET_ENDPOINT", default_value = "http://127.0.0.1:7070")]
    endpoint: String,
    /// The CA that issued the control plane's certificate (PEM), as the AWS CLI's
    /// `--ca-bundle`.
    #[arg(long, env = "IAMLET_CA_BUNDLE")]
    ca_bundle: Option<std::path::PathBuf>,
    /// A client certificate (PEM) for a control plane that requires one, with `--tls-key`.
    #[arg(long, env = "IAMLET_TLS_CERT", requires_all = ["tls_key", "ca_bundle"])]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "IAMLET_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// A profile of the shared credentials file (before `AWS_*` variables, as in the AWS
    /// CLI).
    #[arg(long)]
    profile: Option<String>,
    #[command(subcommand)]
    verb: AdminVerb,
}

#[derive(Debug, Subcommand)]
enum AdminVerb {
    /// Create a tenant (an account).
    CreateTenant {
        /// The 12-digit account id.
        #[arg(long)]
        account_id: String,
        /// An alias for the account.
        #[arg(long, default_value = "")]
        alias: String,
    },
    /// Delete a tenant; its audit trail is kept.
    DeleteTenant {
        /// The account id.
        #[arg(long)]
        account_id: String,
    },
    /// List the tenants and their versions.
    ListTenants,
    /// Show a tenant's security events: denied calls, failed authentications, uses of the
    /// root user's credentials.
    ListEvents {
        /// The account id (default: the credentials' account).
        #[arg(long)]
        tenant: Option<String>,
        /// Only events after this id.
        #[arg(long, default_value_t = 0)]
        after_id: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show a tenant's audit trail.
    ListChanges {
        /// The account id (default: the credentials' account).
        #[arg(long)]
        tenant: Option<String>,
        /// Only changes after this number.
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Create or update a whole tenant declared in a JSON or YAML file (idempotent): the
    /// changes run as one, recorded as one entry of the audit trail.
    Apply {
        /// The tenant spec (`-` reads standard input).
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write a tenant in the declarative format of `apply` (secrets are left out).
    Export {
        /// The account id (default: the credentials' account).
        #[arg(long)]
        tenant: Option<String>,
        /// `yaml` or `json`.
        #[arg(long, default_value = "yaml")]
        format: String,
    },
    /// Any IAM action: `create-user --tenant T --user-name alice`, `attach-role-policy ...`.
    #[command(external_subcommand)]
    Iam(Vec<String>),
}

/// What went wrong with an admin command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminCliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("An error occurred ({code}) when calling the {action} operation: {message}")]
    Service {
        code: String,
        action: String,
        message: String,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl AdminCliError {
    /// The exit status: 254 for an error the service returned, as the AWS CLI, 2 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Service { .. } => 254,
            _ => 2,
        }
    }
}

/// `create-open-id-connect-provider` → `CreateOpenIDConnectProvider`; `client-id-list` →
/// `ClientIDList`: AWS's names, including its capitalised acronyms.
pub(crate) fn pascal_case(kebab: &str) -> String {
    let joined: String = kebab
        .split('-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    joined
        .replace("OpenIdConnect", "OpenIDConnect")
        .replace("ClientId", "ClientID")
        .replace("Mfa", "MFA")
}

/// EKS's actions (the pod identity associations) name their parameters in camel case, as
/// `aws eks` sends them: `--cluster-name` is `clusterName`.
fn eks_parameters(action: &str, parameters: Map<String, Value>) -> Map<String, Value> {
    if !action.contains("PodIdentityAssociation") {
        return parameters;
    }
    parameters
        .into_iter()
        .map(|(name, value)| {
            let mut chars = name.chars();
            let camel = chars
                .next()
                .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
                .unwrap_or_default();
            (camel, value)
        })
        .collect()
}

/// Reads `--flag value...` pairs into a parameters object; `--tenant` is taken out.
pub(crate) fn parse_parameters(
    args: &[String],
) -> Result<(Option<String>, Map<String, Value>), AdminCliError> {
    let mut tenant = None;
    let mut params = Map::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(AdminCliError::Usage(format!(
                "unexpected argument `{arg}`: expected --flag value"
            )));
        };
        let mut values = Vec::new();
        i += 1;
        while let Some(v) = args.get(i).filter(|v| !v.starts_with("--")) {
            values.push(v.clone());
            i += 1;
        }
        if flag == "tenant" {
            tenant = values.into_iter().next();
            continue;
        }
        let (name, negated) = match flag.strip_prefix("no-") {
            Some(rest) if values.is_empty() => (pascal_case(rest), true),
            _ => (pascal_case(flag), false),
        };
        let value = match values.as_slice() {
            [] => Value::Bool(!negated),
            // A list parameter given one plain value is a list of one, as with the AWS CLI.
            [one] if is_list_parameter(&name) && !one.trim_start().starts_with('[') => {
                Value::Array(vec![single_value(&name, one)?])
            }
            [one] => single_value(&name, one)?,
            many => Value::Array(
                many.iter()
                    .map(|v| single_value(&name, v))
                    .collect::<Result<_, _>>()?,
            ),
        };
        params.insert(name, value);
    }
    Ok((tenant, params))
}

/// Parameters whose AWS shape is a list of strings.
fn is_list_parameter(name: &str) -> bool {
    name.ends_with("List") || matches!(name, "TagKeys" | "PolicyArns")
}

fn single_value(name: &str, raw: &str) -> Result<Value, AdminCliError> {
    let text = match raw.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| AdminCliError::Usage(format!("cannot read `{path}` for --{name}: {e}")))?,
        None => raw.to_owned(),
    };
    // Documents stay text; other JSON arrays and objects (tags, lists) are passed as JSON.
    let is_document = name.ends_with("Document") || name == "Jwks";
    if !is_document && (text.starts_with('[') || text.starts_with('{')) {
        return serde_json::from_str(&text)
            .map_err(|e| AdminCliError::Usage(format!("--{name}: not valid JSON: {e}")));
    }
    Ok(Value::String(text))
}

/// The tenant to act on: the one named, else the credentials' own account.
fn tenant_or_own(
    tenant: Option<String>,
    credentials: Option<&Profile>,
    verb: &str,
) -> Result<String, AdminCliError> {
    tenant
        .or_else(|| std::env::var("IAMLET_TENANT").ok())
        .or_else(|| {
            credentials.and_then(|c| {
                crate::sts::credential_tenant(&crate::sts::Presented::Keys {
                    access_key_id: &c.access_key_id,
                    secret: "",
                    session_token: c.session_token.as_deref(),
                })
            })
        })
        .ok_or_else(|| {
            AdminCliError::Usage(format!(
                "{verb}: --tenant is required (or IAMLET_TENANT, or a tenant's credentials)"
            ))
        })
}

/// Adds the lists of a later `page` to `all`, and its `IsTruncated` and `Marker`.
fn join_page(all: &mut Value, page: Value) {
    let (Some(all), Value::Object(page)) = (all.as_object_mut(), page) else {
        return;
    };
    all.remove("Marker");
    for (name, value) in page {
        match (all.get_mut(&name), value) {
            (Some(Value::Array(items)), Value::Array(more)) => items.extend(more),
            (Some(_), _) if name != "IsTruncated" && name != "Marker" => {}
            (_, value) => {
                all.insert(name, value);
            }
        }
    }
}

pub(crate) fn service_error(action: &str, status: &tonic::Status) -> AdminCliError {
    AdminCliError::Service {
        code: aws_error_code(status).unwrap_or_else(|| format!("{:?}", status.code())),
        action: action.to_owned(),
        message: status.message().to_owned(),
    }
}

/// Runs an admin command and prints its JSON result.
pub(crate) fn run_admin(args: AdminArgs, out: &mut dyn Write) -> Result<(), AdminCliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdminCliError::Runtime)?;
    match runtime.block_on(call(args))? {
        Output::Json(value) => {
            let pretty = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
            let _ = writeln!(out, "{pretty}");
        }
        Output::Text(text) => {
            let _ = write!(out, "{text}");
        }
    }
    Ok(())
}

/// What a command prints.
enum Output {
    /// Pretty-printed JSON.
    Json(Value),
    /// Text as is (YAML exports).
    Text(String),
}

async fn call(args: AdminArgs) -> Result<Output, AdminCliError> {
    let endpoint = args.endpoint.clone();
    let connect_error = |source| AdminCliError::Connect {
        endpoint: endpoint.clone(),
        source,
    };
    let mut channel =
        tonic::transport::Endpoint::from_shared(args.endpoint.clone()).map_err(connect_error)?;
    if let Some(ca) = &args.ca_bundle {
        let tls = crate::tls::ClientTlsFiles {
            ca: ca.clone(),
            server_name: None,
            identity: args.tls_cert.clone().zip(args.tls_key.clone()),
        }
        .load(&args.endpoint)
        .map_err(|e| AdminCliError::Usage(e.to_string()))?;
        channel = channel.tls_config(tls).map_err(connect_error)?;
    }
    let mut client =
        pb::admin_client::AdminClient::new(channel.connect().await.map_err(connect_error)?)
            .max_decoding_message_size(crate::grpc::MAX_ADMIN_MESSAGE)
            .max_encoding_message_size(crate::grpc::MAX_ADMIN_MESSAGE);
    let version =
        |v: Option<pb::Version>| v.map(|v| serde_json::json!({"Epoch": v.epoch, "Seq": v.seq}));
    let credentials = find_credentials(args.profile.as_deref(), &|k| std::env::var(k).ok())
        .map_err(AdminCliError::Usage)?;
    let creds = credentials.as_ref();
    match args.verb {
        AdminVerb::CreateTenant { account_id, alias } => {
            let response = client
                .create_tenant(signed(
                    pb::CreateTenantRequest {
                        account_id: account_id.clone(),
                        alias,
                    },
                    "CreateTenant",
                    creds,
                ))
                .await
                .map_err(|s| service_error("CreateTenant", &s))?
                .into_inner();
            // The root key is shown this once, as AWS shows a new access key's secret.
            Ok(Output::Json(serde_json::json!({
                "Tenant": {"AccountId": account_id},
                "Version": version(response.version),
                "RootAccessKey": {
                    "AccessKeyId": response.root_access_key_id,
                    "SecretAccessKey": response.root_secret_access_key,
                },
            })))
        }
        AdminVerb::DeleteTenant { account_id } => {
            client
                .delete_tenant(signed(
                    pb::DeleteTenantRequest { account_id },
                    "DeleteTenant",
                    creds,
                ))
                .await
                .map_err(|s| service_error("DeleteTenant", &s))?;
            Ok(Output::Json(serde_json::json!({})))
        }
        AdminVerb::ListTenants => {
            let response = client
                .list_tenants(signed(pb::ListTenantsRequest {}, "ListTenants", creds))
                .await
                .map_err(|s| service_error("ListTenants", &s))?
                .into_inner();
            let tenants: Vec<Value> = response
                .tenants
                .into_iter()
                .map(|t| serde_json::json!({"AccountId": t.account_id, "Alias": t.alias, "Version": version(t.version)}))
                .collect();
            Ok(Output::Json(serde_json::json!({ "Tenants": tenants })))
        }
        AdminVerb::ListEvents {
            tenant,
            after_id,
            limit,
        } => {
            let tenant = tenant_or_own(tenant, creds, "list-events")?;
            let response = client
                .list_events(signed(
                    pb::ListEventsRequest {
                        tenant,
                        after_id,
                        limit,
                    },
                    "ListEvents",
                    creds,
                ))
                .await
                .map_err(|s| service_error("ListEvents", &s))?
                .into_inner();
            let events: Vec<Value> = response
                .events
                .into_iter()
                .map(|e| {
                    serde_json::json!({
                        "Id": e.id,
                        "Time": crate::policy::Timestamp::from_epoch_seconds(e.at).to_string(),
                        "Actor": e.actor,
                        "Action": e.action,
                        "Outcome": e.outcome,
                        "Root": e.root,
                        "Detail": e.detail,
                        "Source": e.source,
                    })
                })
                .collect();
            Ok(Output::Json(serde_json::json!({ "Events": events })))
        }
        AdminVerb::ListChanges {
            tenant,
            after_seq,
            limit,
        } => {
            let tenant = tenant_or_own(tenant, creds, "list-changes")?;
            let response = client
                .list_changes(signed(
                    pb::ListChangesRequest {
                        tenant,
                        after_seq,
                        limit,
                    },
                    "ListChanges",
                    creds,
                ))
                .await
                .map_err(|s| service_error("ListChanges", &s))?
                .into_inner();
            let changes: Vec<Value> = response
                .changes
                .into_iter()
                .map(|c| {
                    let parameters: Value =
                        serde_json::from_str(&c.parameters_json).unwrap_or(Value::Null);
                    serde_json::json!({
                        "Seq": c.seq,
                        "Time": crate::policy::Timestamp::from_epoch_seconds(c.at).to_string(),
                        "Actor": c.actor,
                        "Action": c.action,
                        "Parameters": parameters,
                    })
                })
                .collect();
            Ok(Output::Json(serde_json::json!({ "Changes": changes })))
        }
        AdminVerb::Apply { file, dry_run } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| AdminCliError::Usage(format!("cannot read `{}`: {e}", file.display())))?;
            let spec = crate::control_plane::TenantSpec::from_yaml_or_json(&text)
                .map_err(|e| AdminCliError::Usage(format!("`{}`: {e}", file.display())))?;
            let spec_json = spec
                .to_json()
                .map_err(|e| AdminCliError::Usage(e.to_string()))?;
            let response = client
                .apply_tenant(signed(
                    pb::ApplyTenantRequest { spec_json, dry_run },
                    "ApplyTenant",
                    creds,
                ))
                .await
                .map_err(|s| service_error("ApplyTenant", &s))?
                .into_inner();
            let actions: Value =
                serde_json::from_str(&response.actions_json).unwrap_or(Value::Null);
            Ok(Output::Json(
                serde_json::json!({"DryRun": dry_run, "Actions": actions, "Version": version(response.version)}),
            ))
        }
        AdminVerb::Export { tenant, format } => {
            let tenant = tenant_or_own(tenant, creds, "export")?;
            let response = client
                .export_tenant(signed(
                    pb::ExportTenantRequest { tenant },
                    "ExportTenant",
                    creds,
                ))
                .await
                .map_err(|s| service_error("ExportTenant", &s))?
                .into_inner();
            let spec = crate::control_plane::TenantSpec::from_yaml_or_json(&response.spec_json)
                .map_err(|e| AdminCliError::Usage(e.to_string()))?;
            match format.as_str() {
                "json" => Ok(Output::Json(
                    serde_json::from_str(&response.spec_json).unwrap_or(Value::Null),
                )),
                "yaml" => Ok(Output::Text(
                    spec.to_yaml()
                        .map_err(|e| AdminCliError::Usage(e.to_string()))?,
                )),
                other => Err(AdminCliError::Usage(format!(
                    "--format {other}: expected yaml or json"
                ))),
            }
        }
        AdminVerb::Iam(words) => {
            let (verb, rest) = words.split_first().ok_or_else(|| {
                AdminCliError::Usage("missing the IAM verb (e.g. create-user)".into())
            })?;
            let action = pascal_case(verb);
            let (tenant, parameters) = parse_parameters(rest)?;
            let parameters = eks_parameters(&action, parameters);
            let tenant = tenant_or_own(tenant, creds, verb)?;
            // As the AWS CLI: without `--marker` or `--max-items`, every page is fetched and
            // the lists joined.
            let follow = !parameters.contains_key("Marker") && !parameters.contains_key("MaxItems");
            let mut parameters = parameters;
            let mut joined: Option<Value> = None;
            loop {
                let response = client
                    .call(signed(
                        pb::CallRequest {
                            tenant: tenant.clone(),
                            action: action.clone(),
                            parameters_json: Value::Object(parameters.clone()).to_string(),
                        },
                        "Call",
                        creds,
                    ))
                    .await
                    .map_err(|s| service_error(&action, &s))?
                    .into_inner();
                let page: Value =
                    serde_json::from_str(&response.result_json).unwrap_or(Value::Null);
                let marker = page
                    .get("Marker")
                    .and_then(Value::as_str)
                    .filter(|_| follow && page.get("IsTruncated") == Some(&Value::Bool(true)))
                    .map(str::to_owned);
                joined = Some(match joined {
                    None => page,
                    Some(mut all) => {
                        join_page(&mut all, page);
                        all
                    }
                });
                match marker {
                    Some(marker) => {
                        parameters.insert("Marker".into(), Value::String(marker));
                    }
                    None => break,
                }
            }
            Ok(Output::Json(joined.unwrap_or(Value::Null)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_join_their_lists() {
        let mut all = serde_json::json!({"Group": {"GroupName": "g"}, "Users": [1, 2], "IsTruncated": true, "Marker": "m1"});
        join_page(
            &mut all,
            serde_json::json!({"Group": {"GroupName": "g"}, "Users": [3], "IsTruncated": false}),
        );
        assert_eq!(
            all,
            serde_json::json!({"Group": {"GroupName": "g"}, "Users": [1, 2, 3], "IsTruncated": false})
        );
    }

    #[test]
    fn verbs_and_flags_become_aws_names() {
        assert_eq!(pascal_case("create-user"), "CreateUser");
        assert_eq!(
            pascal_case("create-open-id-connect-provider"),
            "CreateOpenIDConnectProvider"
        );
        assert_eq!(
            pascal_case("add-client-id-to-open-id-connect-provider"),
            "AddClientIDToOpenIDConnectProvider"
        );
        assert_eq!(pascal_case("enable-mfa-device"), "EnableMFADevice");
        let (_, params) = parse_parameters(&[
            "--cluster-name".into(),
            "demo".into(),
            "--oidc-provider-arn".into(),
            "arn:x".into(),
            "--tags".into(),
            r#"{"team":"data"}"#.into(),
        ])
        .unwrap();
        let params = eks_parameters("CreatePodIdentityAssociation", params);
        assert_eq!(params["clusterName"], "demo");
        assert_eq!(params["oidcProviderArn"], "arn:x");
        assert_eq!(params["tags"]["team"], "data");
        let (_, params) = parse_parameters(&["--user-name".into(), "a".into()]).unwrap();
        assert_eq!(eks_parameters("CreateUser", params)["UserName"], "a");
        assert_eq!(
            pascal_case("virtual-mfa-device-name"),
            "VirtualMFADeviceName"
        );
        assert_eq!(pascal_case("access-key-id"), "AccessKeyId");
        assert_eq!(pascal_case("client-id-list"), "ClientIDList");
    }

    #[test]
    fn flags_become_parameters() {
        let args: Vec<String> = [
            "--tenant",
            "111122223333",
            "--user-name",
            "alice",
            "--tags",
            r#"[{"Key":"team","Value":"blue"}]"#,
            "--client-id-list",
            "a",
            "b",
            "--set-as-default",
            "--no-password-reset-required",
            "--policy-document",
            r#"{"Version":"2012-10-17"}"#,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let (tenant, params) = parse_parameters(&args).unwrap();
        assert_eq!(tenant.as_deref(), Some("111122223333"));
        assert_eq!(params["UserName"], "alice");
        assert_eq!(params["Tags"][0]["Key"], "team");
        assert_eq!(params["ClientIDList"], serde_json::json!(["a", "b"]));
        let one: Vec<String> = [
            "--client-id-list",
            "sts.amazonaws.com",
            "--tag-keys",
            "team",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        let (_, single) = parse_parameters(&one).unwrap();
        assert_eq!(
            single["ClientIDList"],
            serde_json::json!(["sts.amazonaws.com"]),
            "one value of a list parameter is a list of one"
        );
        assert_eq!(single["TagKeys"], serde_json::json!(["team"]));
        assert_eq!(params["SetAsDefault"], true);
        assert_eq!(params["PasswordResetRequired"], false);
        assert_eq!(params["PolicyDocument"], r#"{"Version":"2012-10-17"}"#);
        assert!(parse_parameters(&["alice".to_owned()]).is_err());
    }
}
