//! `iamlet admin`: the control plane's management API with the commands and options of
//! `aws iam` (and of `aws eks` for pod identity associations).
//!
//! `iamlet admin create-user --tenant 111122223333 --user-name alice` calls the IAM action
//! `CreateUser` with `{"UserName": "alice"}`. Commands and options come from the API model
//! (`control_plane::api_model`, AWS's IAM service model as the pinned botocore has it), and are
//! read as the AWS CLI reads them: an option the operation does not take is refused before any
//! call, with the option meant (`--permissions-boundry` → `--permissions-boundary`), as are a
//! missing required option and a value that does not fit its shape (exit status 252); values
//! take their shapes (integers, booleans as `--flag`/`--no-flag`, lists as several values,
//! structures and maps as JSON or the shorthand `Key=team,Value=data`); `file://PATH` and
//! `fileb://PATH` read a file. `iamlet admin help` lists the commands and `iamlet admin
//! <command> help` (or `--help`) describes one, offline. Results print as JSON; errors the
//! service returns as the AWS CLI prints them, with exit status 254.
//!
//! Credentials are found as the AWS CLI finds them ([`crate::client::find_credentials`]):
//! `--profile NAME`; else `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`; else the profile `AWS_PROFILE` or `default`, from the shared
//! credentials file, a `credential_process` or the config file. Each call is signed with SigV4, so the secret
//! never leaves the machine. Without `--tenant`, an IAM action acts on the account the
//! access key belongs to.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

mod trail;

use super::paginate::{Paged, Pager, PagingArgs, PagingError};
use super::render::Rendering;
use crate::client::{find_credentials, Profile};
use crate::control_plane::api_model::{
    closest, ApiModel, Member, Operation, Service, Shape, ShapeKind,
};
use crate::grpc::{aws_error_code, signed_admin_request as signed};
use crate::proto::v1 as pb;

/// `iamlet admin`.
#[derive(Debug, Args)]
#[command(disable_help_subcommand = true)]
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
    /// `json` (default), `text`, `table` or `yaml`, as the AWS CLI's `--output` (also after
    /// the command).
    #[arg(long, env = "AWS_DEFAULT_OUTPUT")]
    output: Option<String>,
    /// A JMESPath expression that picks what to print, as the AWS CLI's `--query` (also after
    /// the command).
    #[arg(long)]
    query: Option<String>,
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
    /// Write a tenant's management events (admin changes, refused admin calls, the sidecars'
    /// STS calls) in CloudTrail's record format, one JSON record a line, oldest first.
    ExportTrail {
        /// The account id (default: the credentials' account).
        #[arg(long)]
        tenant: Option<String>,
        /// Only events at or after this time (ISO 8601, or epoch seconds; default: 90 days
        /// ago).
        #[arg(long)]
        start_time: Option<String>,
        /// Only events at or before this time (default: now).
        #[arg(long)]
        end_time: Option<String>,
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
    /// The command line does not fit the operation (the AWS CLI's exit status 252).
    #[error("iamlet admin: error: {0}")]
    Arguments(String),
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
    /// The listing cannot be paged as asked (the AWS CLI's exit status 255).
    #[error(transparent)]
    Paging(#[from] PagingError),
}

impl AdminCliError {
    /// The exit status, as the AWS CLI's: 254 for an error the service returned, 252 for a
    /// command line that does not fit the operation; 2 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Service { .. } => 254,
            Self::Arguments(_) => 252,
            Self::Paging(_) => 255,
            _ => 2,
        }
    }
}

/// An IAM command as typed, checked against the API model before any call.
#[derive(Debug, PartialEq)]
pub(crate) enum IamCommand {
    /// `help`, `--help` or `-h`: the text to print, offline.
    Help(String),
    /// A call to make.
    Call {
        /// The action (`CreateUser`).
        action: String,
        /// `--tenant`, if given.
        tenant: Option<String>,
        /// The parameters, converted to their shapes.
        parameters: Map<String, Value>,
        /// `--output` and `--query` given after the command.
        output: Option<String>,
        /// See `output`.
        query: Option<String>,
        /// How to page through a listing; `None` for one call (an operation that is not a
        /// listing, `--no-paginate`, or a marker given by hand).
        paging: Option<Box<PagingArgs>>,
    },
}

/// An argument error: AWS's CLI exits 252 for these, before any call.
fn arguments(message: String) -> AdminCliError {
    AdminCliError::Arguments(message)
}

/// The options every IAM command takes besides its members.
const COMMON_OPTIONS: &[&str] = &["tenant", "output", "query", "no-paginate"];

/// The AWS CLI's options of a listing, which take the place of its paging members.
const PAGING_OPTIONS: &[&str] = &["starting-token", "page-size", "max-items"];

/// The paging options' help, the first sentences of the AWS CLI's.
const PAGING_HELP: &[(&str, &str, &str)] = &[
    (
        "starting-token",
        "string",
        "A token to specify where to start paginating. This is the NextToken from a \
         previously truncated response.",
    ),
    (
        "page-size",
        "integer",
        "The size of each page to get in the AWS service call. This does not affect the \
         number of items returned in the command's output.",
    ),
    (
        "max-items",
        "integer",
        "The total number of items to return in the command's output. If the total number \
         of items available is more than the value specified, a NextToken is provided in the \
         command's output.",
    ),
];

/// Reads an IAM command (`create-user --user-name alice`) as the AWS CLI does: the verb must
/// be an operation of the model, every option a member of it (a typo is refused, with the
/// option meant), required members present, values converted to their shapes.
pub(crate) fn parse_iam_command(
    model: &ApiModel,
    words: &[String],
) -> Result<IamCommand, AdminCliError> {
    let Some((verb, rest)) = words.split_first() else {
        return Ok(IamCommand::Help(overview(model)));
    };
    if matches!(verb.as_str(), "help" | "--help" | "-h") {
        return Ok(IamCommand::Help(overview(model)));
    }
    let Some(op) = model.command(verb) else {
        let meant = closest(verb, model.operations().iter().map(|o| o.cli.as_str()))
            .map(|m| format!(", maybe you meant: {m}"))
            .unwrap_or_default();
        return Err(arguments(format!(
            "argument operation: Invalid choice: '{}'{meant} (`iamlet admin help` lists them)",
            crate::error::echo(verb)
        )));
    };
    if rest
        .iter()
        .any(|w| matches!(w.as_str(), "help" | "--help" | "-h"))
    {
        return Ok(IamCommand::Help(help(model, op)));
    }
    let mut tenant = None;
    let mut output = None;
    let mut query = None;
    let mut paginate = true;
    let mut parameters = Map::new();
    let mut paging_options: Vec<(&str, &str)> = Vec::new();
    let mut unknown = Vec::new();
    let mut i = 0;
    while let Some(word) = rest.get(i) {
        i += 1;
        let mut values = Vec::new();
        while let Some(v) = rest.get(i).filter(|v| !v.starts_with("--")) {
            values.push(v.as_str());
            i += 1;
        }
        let Some(flag) = word.strip_prefix("--") else {
            unknown.push(crate::error::echo(word));
            continue;
        };
        if flag == "no-paginate" && values.is_empty() {
            paginate = false;
            continue;
        }
        if let Some(slot) = match flag {
            "tenant" => Some(&mut tenant),
            "output" => Some(&mut output),
            "query" => Some(&mut query),
            _ => None,
        } {
            let [value] = values.as_slice() else {
                return Err(arguments(format!(
                    "argument --{flag}: expected one argument"
                )));
            };
            *slot = Some((*value).to_owned());
            continue;
        }
        if op.paginator.is_some() && PAGING_OPTIONS.contains(&flag) {
            let [value] = values.as_slice() else {
                return Err(arguments(format!(
                    "argument --{flag}: expected one argument"
                )));
            };
            if paging_options.iter().any(|(f, _)| *f == flag) {
                return Err(arguments(format!("argument --{flag}: given twice")));
            }
            paging_options.push((flag, value));
            continue;
        }
        let (member, negated) = match op.member_by_cli(flag) {
            Some(member) => (member, false),
            None => match flag.strip_prefix("no-").and_then(|f| op.member_by_cli(f)) {
                Some(member) if is_boolean(model, member) && values.is_empty() => (member, true),
                _ => {
                    let paging = op.paginator.iter().flat_map(|_| PAGING_OPTIONS);
                    let options = op
                        .members
                        .iter()
                        .map(|m| m.cli.as_str())
                        .chain(COMMON_OPTIONS.iter().copied())
                        .chain(paging.copied());
                    let meant = closest(flag, options)
                        .map(|m| format!(" (did you mean --{m}?)"))
                        .unwrap_or_default();
                    unknown.push(format!("--{}{meant}", crate::error::echo(flag)).into());
                    continue;
                }
            },
        };
        if parameters.contains_key(&member.name) {
            return Err(arguments(format!("argument --{flag}: given twice")));
        }
        let value = member_value(model, member, negated, &values)?;
        parameters.insert(member.name.clone(), value);
    }
    if !unknown.is_empty() {
        return Err(arguments(format!(
            "Unknown options: {}",
            unknown.join(", ")
        )));
    }
    let paging = paging_args(model, op, paginate, paging_options, &mut parameters)?;
    let missing: Vec<String> = op
        .members
        .iter()
        .filter(|m| m.required && !parameters.contains_key(&m.name))
        .map(|m| format!("--{}", m.cli))
        .collect();
    if !missing.is_empty() {
        return Err(arguments(format!(
            "the following arguments are required: {}",
            missing.join(", ")
        )));
    }
    Ok(IamCommand::Call {
        action: op.name.clone(),
        tenant,
        parameters,
        output,
        query,
        paging,
    })
}

/// A listing's paging, as the AWS CLI decides it: on unless `--no-paginate` or a marker
/// given by hand turns it off, and then `--max-items` is the operation's own member again.
fn paging_args(
    model: &ApiModel,
    op: &Operation,
    paginate: bool,
    options: Vec<(&str, &str)>,
    parameters: &mut Map<String, Value>,
) -> Result<Option<Box<PagingArgs>>, AdminCliError> {
    let Some(paginator) = &op.paginator else {
        return Ok(None);
    };
    // A marker (or, for EKS, `--max-results`) typed as a member means paging by hand.
    let by_hand = paginator
        .input_token
        .iter()
        .chain(&paginator.limit_key)
        .any(|t| parameters.contains_key(t));
    if !paginate || by_hand {
        let mut refused = Vec::new();
        for (flag, value) in options {
            match op.member_by_cli(flag) {
                Some(member) => {
                    let value = member_value(model, member, false, &[value])?;
                    parameters.insert(member.name.clone(), value);
                }
                None => refused.push(format!("--{flag}")),
            }
        }
        if !refused.is_empty() {
            return Err(PagingError::NotPaging(refused.join(", ")).into());
        }
        return Ok(None);
    }
    let limit = paginator
        .limit_key
        .as_deref()
        .and_then(|key| op.members.iter().find(|m| m.name == key));
    let mut args = PagingArgs::default();
    for (flag, value) in options {
        let integer = || {
            value.trim().parse::<i64>().map_err(|_| {
                arguments(format!(
                    "argument --{flag}: invalid int value: '{}'",
                    crate::error::echo(value)
                ))
            })
        };
        match flag {
            "starting-token" => args.starting_token = Some(value.to_owned()),
            "max-items" => args.max_items = Some(integer()?),
            _ => match limit {
                Some(member) if !is_string(model, member) => {
                    args.page_size = Some(Value::from(integer()?));
                }
                Some(_) => args.page_size = Some(Value::String(value.to_owned())),
                None => {
                    return Err(arguments(format!(
                        "argument --{flag}: {} takes no page size",
                        op.cli
                    )))
                }
            },
        }
    }
    Ok(Some(Box::new(args)))
}

fn shape_of<'m>(model: &'m ApiModel, member: &Member) -> Result<&'m Shape, AdminCliError> {
    model.shape(&member.shape).ok_or_else(|| {
        arguments(format!(
            "--{}: the model has no shape {}",
            member.cli, member.shape
        ))
    })
}

fn is_string(model: &ApiModel, member: &Member) -> bool {
    model
        .shape(&member.shape)
        .is_some_and(|s| s.kind == ShapeKind::String)
}

fn is_boolean(model: &ApiModel, member: &Member) -> bool {
    model
        .shape(&member.shape)
        .is_some_and(|s| s.kind == ShapeKind::Boolean)
}

/// The value of `--member` from the words after it, converted to the member's shape.
fn member_value(
    model: &ApiModel,
    member: &Member,
    negated: bool,
    values: &[&str],
) -> Result<Value, AdminCliError> {
    let flag = &member.cli;
    let shape = shape_of(model, member)?;
    match shape.kind {
        ShapeKind::Boolean => match values {
            [] => Ok(Value::Bool(!negated)),
            [one] => match one.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(arguments(format!(
                    "argument --{flag}: expected true or false, or no value"
                ))),
            },
            _ => Err(arguments(format!(
                "argument --{flag}: expected at most one argument"
            ))),
        },
        ShapeKind::List => {
            let item = shape
                .member
                .as_deref()
                .and_then(|m| model.shape(m))
                .ok_or_else(|| arguments(format!("--{flag}: the model has no member shape")))?;
            match values {
                [] => Err(arguments(format!(
                    "argument --{flag}: expected one or more arguments"
                ))),
                // A JSON list, as the AWS CLI also takes.
                [one] if one.trim_start().starts_with('[') => {
                    let text = read_value(flag, one)?;
                    serde_json::from_str(&text)
                        .map_err(|e| arguments(format!("argument --{flag}: not a JSON list: {e}")))
                }
                many => many
                    .iter()
                    .map(|v| scalar_or_structure(model, flag, item, v))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
            }
        }
        _ => match values {
            [one] => scalar_or_structure(model, flag, shape, one),
            [] => Err(arguments(format!(
                "argument --{flag}: expected one argument"
            ))),
            _ => Err(arguments(format!(
                "argument --{flag}: expected one argument, got {}",
                values.len()
            ))),
        },
    }
}

/// One value of `shape`: text (from `file://` or `fileb://` too), a number, or a structure or
/// map as JSON or the AWS CLI's shorthand (`Key=team,Value=data`).
fn scalar_or_structure(
    model: &ApiModel,
    flag: &str,
    shape: &Shape,
    raw: &str,
) -> Result<Value, AdminCliError> {
    match shape.kind {
        ShapeKind::String | ShapeKind::Timestamp => Ok(Value::String(read_value(flag, raw)?)),
        ShapeKind::Blob => {
            let bytes = match raw.strip_prefix("fileb://") {
                Some(path) => std::fs::read(path).map_err(|e| unreadable(flag, path, &e))?,
                None => read_value(flag, raw)?.into_bytes(),
            };
            Ok(Value::String(data_encoding::BASE64.encode(&bytes)))
        }
        ShapeKind::Integer | ShapeKind::Long => {
            let text = read_value(flag, raw)?;
            text.trim().parse::<i64>().map(Value::from).map_err(|_| {
                arguments(format!(
                    "argument --{flag}: invalid integer value: '{}'",
                    crate::error::echo(&text)
                ))
            })
        }
        ShapeKind::Boolean => match read_value(flag, raw)?.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(arguments(format!(
                "argument --{flag}: expected true or false"
            ))),
        },
        ShapeKind::Structure | ShapeKind::Map | ShapeKind::List => {
            let text = read_value(flag, raw)?;
            let trimmed = text.trim_start();
            if trimmed.starts_with('{') || trimmed.starts_with('[') {
                return serde_json::from_str(&text)
                    .map_err(|e| arguments(format!("argument --{flag}: not valid JSON: {e}")));
            }
            shorthand(model, flag, shape, &text)
        }
    }
}

/// The AWS CLI's shorthand for a structure or map: `Key=team,Value=data`. A structure's
/// fields must be its members; values take the member's scalar type.
fn shorthand(
    model: &ApiModel,
    flag: &str,
    shape: &Shape,
    text: &str,
) -> Result<Value, AdminCliError> {
    let mut object = Map::new();
    for pair in split_shorthand(text) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(arguments(format!(
                "Error parsing parameter '--{flag}': Expected: '=', received: end of input in \
                 '{}'",
                crate::error::echo(&pair)
            )));
        };
        let key = key.trim();
        let value = unquote(value.trim());
        let typed = match shape.kind {
            ShapeKind::Structure => {
                let Some(field) = shape.members.iter().find(|f| f.name == key) else {
                    let fields: Vec<&str> = shape.members.iter().map(|f| f.name.as_str()).collect();
                    return Err(arguments(format!(
                        "Error parsing parameter '--{flag}': unknown key '{}', expected one of: {}",
                        crate::error::echo(key),
                        fields.join(", ")
                    )));
                };
                match model.shape(&field.shape).map(|s| s.kind) {
                    Some(ShapeKind::Integer | ShapeKind::Long) => {
                        value.parse::<i64>().map(Value::from).map_err(|_| {
                            arguments(format!("argument --{flag}: {key} must be an integer"))
                        })?
                    }
                    Some(ShapeKind::Boolean) => Value::Bool(value.eq_ignore_ascii_case("true")),
                    _ => Value::String(value.to_owned()),
                }
            }
            _ => Value::String(value.to_owned()),
        };
        object.insert(key.to_owned(), typed);
    }
    Ok(Value::Object(object))
}

/// Splits `a=1,b="x,y"` at the commas outside quotes.
fn split_shorthand(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), _) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, ',') => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if !current.is_empty() || !parts.is_empty() {
        parts.push(current);
    }
    parts
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

fn unreadable(flag: &str, path: &str, e: &std::io::Error) -> AdminCliError {
    arguments(format!(
        "Error parsing parameter '--{flag}': Unable to load paramfile {path}: {e}"
    ))
}

/// A value as typed, or the text of `file://PATH` (or `fileb://PATH`, which must be UTF-8
/// where text is expected).
fn read_value(flag: &str, raw: &str) -> Result<String, AdminCliError> {
    if let Some(path) = raw.strip_prefix("file://") {
        return std::fs::read_to_string(path).map_err(|e| unreadable(flag, path, &e));
    }
    if let Some(path) = raw.strip_prefix("fileb://") {
        let bytes = std::fs::read(path).map_err(|e| unreadable(flag, path, &e))?;
        return String::from_utf8(bytes).map_err(|_| {
            arguments(format!(
                "Error parsing parameter '--{flag}': {path} is not UTF-8 text"
            ))
        });
    }
    Ok(raw.to_owned())
}

/// `iamlet admin help`: the tenant commands, then every operation with its summary; those the
/// control plane does not serve are marked.
fn overview(model: &ApiModel) -> String {
    let mut out = String::from(
        "usage: iamlet admin [--endpoint URL] [--profile NAME] <command> [--tenant ACCOUNT] \
         [parameters]\n\nTenants and the control plane:\n",
    );
    for (name, about) in TENANT_COMMANDS {
        out.push_str(&format!("  {name:<44} {about}\n"));
    }
    for (title, service) in [
        ("IAM", Service::Iam),
        ("EKS pod identity associations", Service::Eks),
        ("IAM Access Analyzer", Service::AccessAnalyzer),
        ("CloudTrail", Service::CloudTrail),
        ("iamlet's own", Service::Iamlet),
    ] {
        out.push_str(&format!("\n{title}:\n"));
        for op in model.operations().iter().filter(|o| o.service == service) {
            let served = if crate::control_plane::ACTIONS.contains(&op.name.as_str()) {
                ""
            } else if crate::control_plane::refusal(&op.name).is_some() {
                "(refused) "
            } else {
                "(not served) "
            };
            out.push_str(&format!("  {:<44} {served}{}\n", op.cli, op.doc));
        }
    }
    out.push_str("\n`iamlet admin <command> help` describes a command's options.\n");
    out
}

/// The commands clap parses (not IAM operations), for the overview.
const TENANT_COMMANDS: &[(&str, &str)] = &[
    ("create-tenant", "Create a tenant (an account)."),
    ("delete-tenant", "Delete a tenant; its audit trail is kept."),
    ("list-tenants", "List the tenants and their versions."),
    ("list-events", "Show a tenant's security events."),
    ("list-changes", "Show a tenant's audit trail."),
    (
        "export-trail",
        "Write a tenant's events in CloudTrail's format, as JSON lines.",
    ),
    (
        "apply",
        "Create or update a whole tenant from a JSON or YAML file.",
    ),
    (
        "export",
        "Write a tenant in the declarative format of apply.",
    ),
];

/// `iamlet admin <command> help`: the operation, its synopsis and every option.
fn help(model: &ApiModel, op: &Operation) -> String {
    let mut out = format!("{}\n\n  {}\n", op.cli, op.doc);
    if let Some(reason) = crate::control_plane::refusal(&op.name) {
        out.push_str(&format!(
            "\n  iamlet refuses this operation on purpose: {reason}.\n"
        ));
    } else if !crate::control_plane::ACTIONS.contains(&op.name.as_str()) {
        out.push_str(
            "\n  This control plane does not serve this operation: it answers InvalidAction.\n",
        );
    }
    // A listing's markers and page bound give way to the paging options (they still work,
    // undocumented, as in the AWS CLI).
    let paged_away = |member: &&Member| {
        op.paginator.as_ref().is_some_and(|p| {
            p.input_token.contains(&member.name) || p.limit_key.as_ref() == Some(&member.name)
        })
    };
    let paging: &[(&str, &str, &str)] = if op.paginator.is_some() {
        PAGING_HELP
    } else {
        &[]
    };
    let mut synopsis = format!("\nSYNOPSIS\n  iamlet admin {}", op.cli);
    for member in op.members.iter().filter(|m| !paged_away(m)) {
        let value = match model.shape(&member.shape).map(|s| s.kind) {
            Some(ShapeKind::Boolean) => String::new(),
            Some(ShapeKind::List) => " <value> ...".to_owned(),
            _ => " <value>".to_owned(),
        };
        let option = format!("--{}{value}", member.cli);
        if member.required {
            synopsis.push_str(&format!("\n    {option}"));
        } else {
            synopsis.push_str(&format!("\n    [{option}]"));
        }
    }
    for (option, _, _) in paging {
        synopsis.push_str(&format!("\n    [--{option} <value>]"));
    }
    synopsis.push_str("\n    [--tenant <value>]\n");
    out.push_str(&synopsis);
    out.push_str("\nOPTIONS\n");
    for member in op.members.iter().filter(|m| !paged_away(m)) {
        out.push_str(&format!(
            "  --{} ({}){}\n",
            member.cli,
            describe_shape(model, &member.shape),
            if member.required { " required" } else { "" }
        ));
        if !member.doc.is_empty() {
            out.push_str(&format!("      {}\n", member.doc));
        }
    }
    for (option, kind, doc) in paging {
        out.push_str(&format!("  --{option} ({kind})\n      {doc}\n"));
    }
    out.push_str(
        "  --tenant (string)\n      The account to act on (default: IAMLET_TENANT, else the \
         credentials' account).\n",
    );
    out
}

/// `string, 1-64 chars, pattern [\w+=,.@-]+` and the like.
fn describe_shape(model: &ApiModel, name: &str) -> String {
    let Some(shape) = model.shape(name) else {
        return name.to_owned();
    };
    let kind = match shape.kind {
        ShapeKind::String => "string",
        ShapeKind::Integer | ShapeKind::Long => "integer",
        ShapeKind::Boolean => "boolean",
        ShapeKind::Timestamp => "timestamp",
        ShapeKind::Blob => "blob",
        ShapeKind::List => "list",
        ShapeKind::Structure => "structure",
        ShapeKind::Map => "map",
    };
    let mut parts = vec![kind.to_owned()];
    let unit = match shape.kind {
        ShapeKind::String => " chars",
        ShapeKind::List | ShapeKind::Map => " items",
        _ => "",
    };
    match (shape.min, shape.max) {
        (Some(min), Some(max)) => parts.push(format!("{min}-{max}{unit}")),
        (Some(min), None) => parts.push(format!("at least {min}{unit}")),
        (None, Some(max)) => parts.push(format!("at most {max}{unit}")),
        (None, None) => {}
    }
    if !shape.values.is_empty() {
        parts.push(format!("one of {}", shape.values.join(", ")));
    }
    if let Some(member) = &shape.member {
        parts.push(format!("of {}", describe_shape(model, member)));
    }
    if shape.kind == ShapeKind::Structure {
        let fields: Vec<&str> = shape.members.iter().map(|f| f.name.as_str()).collect();
        parts.push(format!(
            "{} (JSON, or shorthand {}=...)",
            fields.join(", "),
            fields.first().copied().unwrap_or("Key")
        ));
    }
    parts.join(", ")
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

pub(crate) fn service_error(action: &str, status: &tonic::Status) -> AdminCliError {
    AdminCliError::Service {
        code: aws_error_code(status).unwrap_or_else(|| format!("{:?}", status.code())),
        action: action.to_owned(),
        message: status.message().to_owned(),
    }
}

/// Runs an admin command and prints its JSON result.
pub(crate) fn run_admin(args: AdminArgs, out: &mut dyn Write) -> Result<(), AdminCliError> {
    // An IAM command is checked against the API model first: a typo never reaches the
    // control plane, and help needs none.
    let iam = match &args.verb {
        AdminVerb::Iam(words) => {
            let model = ApiModel::embedded().map_err(|e| AdminCliError::Usage(e.to_owned()))?;
            match parse_iam_command(model, words)? {
                IamCommand::Help(text) => {
                    let _ = write!(out, "{text}");
                    return Ok(());
                }
                call => Some(call),
            }
        }
        _ => None,
    };
    // Options after the command win over those before it, as with the AWS CLI.
    let (output, query) = match &iam {
        Some(IamCommand::Call { output, query, .. }) => (
            output.as_deref().or(args.output.as_deref()),
            query.as_deref().or(args.query.as_deref()),
        ),
        _ => (args.output.as_deref(), args.query.as_deref()),
    };
    let rendering = Rendering::try_new(output, query).map_err(AdminCliError::Arguments)?;
    // A table is titled with the operation, as the AWS CLI titles it.
    let title = match (&iam, &args.verb) {
        (Some(IamCommand::Call { action, .. }), _) => action.clone(),
        (_, AdminVerb::CreateTenant { .. }) => "CreateTenant".to_owned(),
        (_, AdminVerb::DeleteTenant { .. }) => "DeleteTenant".to_owned(),
        (_, AdminVerb::ListTenants) => "ListTenants".to_owned(),
        (_, AdminVerb::ListEvents { .. }) => "ListEvents".to_owned(),
        (_, AdminVerb::ListChanges { .. }) => "ListChanges".to_owned(),
        (_, AdminVerb::ExportTrail { .. }) => "ExportTrail".to_owned(),
        (_, AdminVerb::Apply { .. }) => "ApplyTenant".to_owned(),
        (_, AdminVerb::Export { .. } | AdminVerb::Iam(_)) => "ExportTenant".to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdminCliError::Runtime)?;
    match runtime.block_on(call(args, iam))? {
        Output::Json(value) => {
            let text = rendering
                .render(&title, value)
                .map_err(AdminCliError::Usage)?;
            let _ = write!(out, "{text}");
        }
        Output::Paged(paged) => {
            let text = rendering
                .render_paged(&title, paged)
                .map_err(AdminCliError::Usage)?;
            let _ = write!(out, "{text}");
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
    /// A listing's pages.
    Paged(Paged),
    /// Text as is (YAML exports).
    Text(String),
}

async fn call(args: AdminArgs, iam: Option<IamCommand>) -> Result<Output, AdminCliError> {
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
        .map_err(|e| AdminCliError::Usage(e.to_string()))?;
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
        AdminVerb::ExportTrail {
            tenant,
            start_time,
            end_time,
        } => {
            let tenant = tenant_or_own(tenant, creds, "export-trail")?;
            let text =
                trail::export_trail(&mut client, creds, tenant, start_time, end_time).await?;
            Ok(Output::Text(text))
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
        AdminVerb::Iam(_) => {
            // `run_admin` parsed it before connecting; help never gets here.
            let Some(IamCommand::Call {
                action,
                tenant,
                parameters,
                paging,
                ..
            }) = iam
            else {
                return Err(AdminCliError::Usage("missing the IAM command".into()));
            };
            let tenant = tenant_or_own(tenant, creds, &action)?;
            let paginator = ApiModel::embedded()
                .ok()
                .and_then(|model| model.operation(&action))
                .and_then(|op| op.paginator.as_ref());
            let mut parameters = parameters;
            // A listing is paged as the AWS CLI pages it; anything else is one call.
            let mut pager = match (paging, paginator) {
                (Some(args), Some(paginator)) => {
                    Some(Pager::try_new(paginator, &args, &mut parameters)?)
                }
                _ => None,
            };
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
                let Some(pager) = pager.as_mut() else {
                    return Ok(Output::Json(page));
                };
                if !pager.take(page, &mut parameters)? {
                    break;
                }
            }
            match pager {
                Some(pager) => Ok(Output::Paged(pager.finish())),
                None => Ok(Output::Json(Value::Null)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &[&str]) -> Vec<String> {
        text.iter().map(ToString::to_string).collect()
    }

    fn parse(text: &[&str]) -> Result<IamCommand, AdminCliError> {
        parse_iam_command(ApiModel::embedded().unwrap(), &words(text))
    }

    fn call(text: &[&str]) -> (String, Option<String>, Map<String, Value>) {
        match parse(text).unwrap() {
            IamCommand::Call {
                action,
                tenant,
                parameters,
                ..
            } => (action, tenant, parameters),
            IamCommand::Help(h) => panic!("help instead of a call: {h}"),
        }
    }

    fn refusal(text: &[&str]) -> String {
        let e = parse(text).unwrap_err();
        assert_eq!(e.exit_code(), 252, "{e}");
        e.to_string()
    }

    #[test]
    fn commands_and_options_are_the_models() {
        let (action, _, params) = call(&[
            "add-client-id-to-open-id-connect-provider",
            "--open-id-connect-provider-arn",
            "arn:x",
            "--client-id",
            "a",
        ]);
        assert_eq!(action, "AddClientIDToOpenIDConnectProvider");
        assert_eq!(params["OpenIDConnectProviderArn"], "arn:x");
        let (action, _, params) = call(&[
            "create-pod-identity-association",
            "--cluster-name",
            "demo",
            "--namespace",
            "ns",
            "--service-account",
            "sa",
            "--role-arn",
            "arn:r",
            "--oidc-provider-arn",
            "arn:o",
            "--tags",
            "team=data,env=prod",
        ]);
        assert_eq!(action, "CreatePodIdentityAssociation");
        assert_eq!(params["clusterName"], "demo", "EKS's own member names");
        assert_eq!(
            params["tags"],
            serde_json::json!({"team": "data", "env": "prod"})
        );
        let (action, _, _) = call(&[
            "enable-mfa-device",
            "--user-name",
            "u",
            "--serial-number",
            "s",
            "--authentication-code1",
            "1",
            "--authentication-code2",
            "2",
        ]);
        assert_eq!(action, "EnableMFADevice");
    }

    #[test]
    fn values_take_their_shapes() {
        let (_, tenant, params) = call(&[
            "create-user",
            "--tenant",
            "111122223333",
            "--user-name",
            "alice",
            "--tags",
            "Key=team,Value=blue",
            "Key=env,Value=\"a,b\"",
        ]);
        assert_eq!(tenant.as_deref(), Some("111122223333"));
        assert_eq!(params["UserName"], "alice");
        assert_eq!(
            params["Tags"],
            serde_json::json!([{"Key": "team", "Value": "blue"}, {"Key": "env", "Value": "a,b"}])
        );
        let (_, _, json_tags) = call(&[
            "tag-user",
            "--user-name",
            "a",
            "--tags",
            r#"[{"Key":"team","Value":"blue"}]"#,
        ]);
        assert_eq!(json_tags["Tags"][0]["Key"], "team");
        let (_, _, params) = call(&[
            "create-open-id-connect-provider",
            "--url",
            "https://issuer",
            "--client-id-list",
            "sts.amazonaws.com",
            "--jwks",
            r#"{"keys":[]}"#,
        ]);
        assert_eq!(
            params["ClientIDList"],
            serde_json::json!(["sts.amazonaws.com"]),
            "one value of a list parameter is a list of one"
        );
        assert_eq!(params["Jwks"], r#"{"keys":[]}"#, "documents stay text");
        let (_, _, params) = call(&[
            "create-policy-version",
            "--policy-arn",
            "arn:p",
            "--policy-document",
            r#"{"Version":"2012-10-17"}"#,
            "--set-as-default",
        ]);
        assert_eq!(params["SetAsDefault"], true);
        assert_eq!(params["PolicyDocument"], r#"{"Version":"2012-10-17"}"#);
        let (_, _, params) = call(&[
            "create-login-profile",
            "--user-name",
            "a",
            "--password",
            "p",
            "--no-password-reset-required",
        ]);
        assert_eq!(params["PasswordResetRequired"], false);
        let (_, _, params) = call(&["list-users", "--no-paginate", "--max-items", "5"]);
        assert_eq!(params["MaxItems"], 5);
        assert!(
            refusal(&["list-users", "--no-paginate", "--max-items", "five"])
                .contains("invalid integer value: 'five'")
        );
    }

    fn paging(text: &[&str]) -> (Option<Box<PagingArgs>>, Map<String, Value>) {
        match parse(text).unwrap() {
            IamCommand::Call {
                paging, parameters, ..
            } => (paging, parameters),
            help => panic!("{help:?}"),
        }
    }

    #[test]
    fn a_listing_takes_the_aws_clis_paging_options_in_place_of_its_members() {
        let (args, params) = paging(&[
            "list-users",
            "--max-items",
            "5",
            "--page-size",
            "2",
            "--starting-token",
            "t",
        ]);
        assert_eq!(
            args,
            Some(Box::new(PagingArgs {
                starting_token: Some("t".into()),
                page_size: Some(serde_json::json!(2)),
                max_items: Some(5),
            }))
        );
        assert!(params.is_empty(), "{params:?}");
        assert!(refusal(&["list-users", "--max-items", "five"])
            .contains("argument --max-items: invalid int value: 'five'"));
        // Not a listing: --max-items is nobody's option.
        assert!(refusal(&["get-user", "--max-items", "5"]).contains("Unknown options"));
    }

    #[test]
    fn a_marker_by_hand_or_no_paginate_turns_paging_off() {
        let (args, params) = paging(&["list-users", "--marker", "m", "--max-items", "5"]);
        assert_eq!(args, None);
        assert_eq!(
            (params["Marker"].clone(), params["MaxItems"].clone()),
            (serde_json::json!("m"), serde_json::json!(5))
        );
        // EKS's page bound typed as a member is paging by hand too.
        let (args, params) = paging(&[
            "list-pod-identity-associations",
            "--cluster-name",
            "c",
            "--max-results",
            "3",
        ]);
        assert_eq!(
            (args, params["maxResults"].clone()),
            (None, serde_json::json!(3))
        );
        let e = parse(&["list-users", "--no-paginate", "--page-size", "2"]).unwrap_err();
        assert_eq!(e.exit_code(), 255);
        assert_eq!(
            e.to_string(),
            "Error during pagination: Cannot specify --no-paginate along with pagination \
             arguments: --page-size"
        );
    }

    #[test]
    fn output_query_and_paging_options_follow_the_command() {
        match parse(&[
            "list-users",
            "--output",
            "text",
            "--query",
            "Users[].UserName",
            "--no-paginate",
        ])
        .unwrap()
        {
            IamCommand::Call {
                output,
                query,
                paging,
                parameters,
                ..
            } => {
                assert_eq!(output.as_deref(), Some("text"));
                assert_eq!(query.as_deref(), Some("Users[].UserName"));
                assert_eq!(paging, None);
                assert!(parameters.is_empty(), "{parameters:?}");
            }
            help => panic!("{help:?}"),
        }
        let e = refusal(&["list-users", "--outptu", "text"]);
        assert!(e.contains("--outptu (did you mean --output?)"), "{e}");
    }

    #[test]
    fn file_values_are_read_as_the_aws_cli_reads_them() {
        let document =
            std::env::temp_dir().join(format!("iamlet-admin-file-{}.json", std::process::id()));
        std::fs::write(&document, r#"{"Version":"2012-10-17","Statement":[]}"#).unwrap();
        let uri = format!("file://{}", document.display());
        let (_, _, params) = call(&[
            "create-policy",
            "--policy-name",
            "p",
            "--policy-document",
            &uri,
        ]);
        assert_eq!(
            params["PolicyDocument"],
            r#"{"Version":"2012-10-17","Statement":[]}"#
        );
        let missing = refusal(&[
            "create-policy",
            "--policy-name",
            "p",
            "--policy-document",
            "file:///no/such/file",
        ]);
        assert!(
            missing.contains("Unable to load paramfile /no/such/file"),
            "{missing}"
        );
    }

    #[test]
    fn typos_are_refused_before_any_call_with_the_option_meant() {
        let e = refusal(&[
            "create-user",
            "--user-name",
            "erin",
            "--permissions-boundry",
            "arn:aws:iam::aws:policy/ViewOnlyAccess",
        ]);
        assert!(
            e.contains(
                "Unknown options: --permissions-boundry (did you mean --permissions-boundary?)"
            ),
            "{e}"
        );
        let e = refusal(&["create-user", "--user-name", "erin", "--pathh", "/ops/"]);
        assert!(e.contains("--pathh (did you mean --path?)"), "{e}");
        let e = refusal(&["creat-user", "--user-name", "erin"]);
        assert!(
            e.contains("Invalid choice: 'creat-user', maybe you meant: create-user"),
            "{e}"
        );
        let e = refusal(&["create-user"]);
        assert!(
            e.contains("the following arguments are required: --user-name"),
            "{e}"
        );
        let e = refusal(&["create-user", "alice"]);
        assert!(e.contains("Unknown options: alice"), "{e}");
        let e = refusal(&["create-user", "--user-name", "a", "--user-name", "b"]);
        assert!(e.contains("given twice"), "{e}");
        let e = refusal(&["create-user", "--user-name"]);
        assert!(e.contains("--user-name: expected one argument"), "{e}");
        let e = refusal(&["tag-user", "--user-name", "a", "--tags", "Key=a,Valeu=b"]);
        assert!(e.contains("unknown key 'Valeu'"), "{e}");
    }

    /// The `iamlet admin` commands a document shows (in code blocks or inline code), as words,
    /// each with the refusal the document shows on the next line, if any; `file://` values
    /// become inline text, since the files are the reader's.
    fn documented_commands(text: &str) -> Vec<(Vec<String>, Option<String>)> {
        let mut commands = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("iamlet admin ") {
            let inline = rest[..at].ends_with('`');
            let tail = &rest[at + "iamlet admin ".len()..];
            let end = if inline {
                tail.find('`').unwrap_or(tail.len())
            } else {
                // A code line, with its `\` continuations, up to a comment.
                let mut end = 0;
                for line in tail.split_inclusive('\n') {
                    end += line.len();
                    if !line.trim_end().ends_with('\\') {
                        break;
                    }
                }
                end
            };
            let command = tail[..end].replace("\\\n", " ");
            let command = command.split(" #").next().unwrap_or_default();
            rest = &tail[end..];
            let refusal = rest
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("iamlet admin: error: "))
                .filter(|_| !inline)
                .map(str::to_owned);
            // Prose naming a command (inline, without options) is not a command line.
            let mention = inline && !command.contains("--");
            if mention || command.contains("...") || command.contains('…') || command.contains('>')
            {
                continue;
            }
            let mut words = Vec::new();
            let mut word = String::new();
            let mut quote = None;
            for c in command.chars() {
                match (quote, c) {
                    (None, '\'' | '"') => quote = Some(c),
                    (Some(q), _) if c == q => quote = None,
                    (None, c) if c.is_whitespace() => {
                        if !word.is_empty() {
                            words.push(std::mem::take(&mut word));
                        }
                    }
                    _ => word.push(c),
                }
            }
            if !word.is_empty() {
                words.push(word);
            }
            for w in &mut words {
                if w.starts_with("file://") {
                    *w = "{}".to_owned();
                }
            }
            commands.push((words, refusal));
        }
        commands
    }

    #[test]
    fn every_iam_command_the_docs_show_parses() {
        let mut seen = 0;
        for (doc, text) in [
            ("README.md", include_str!("../../README.md")),
            ("deploy/README.md", include_str!("../../deploy/README.md")),
        ] {
            for (mut words, refusal) in documented_commands(text) {
                // `iamlet admin`'s own options (`--profile NAME`) come before the command.
                while words.first().is_some_and(|w| w.starts_with("--")) {
                    words.drain(..2.min(words.len()));
                }
                let verb = words.first().map(String::as_str).unwrap_or_default();
                if TENANT_COMMANDS.iter().any(|(name, _)| *name == verb) {
                    continue;
                }
                let parsed = parse_iam_command(ApiModel::embedded().unwrap(), &words);
                match (parsed, &refusal) {
                    (Ok(IamCommand::Call { .. }), None) => seen += 1,
                    (Err(AdminCliError::Arguments(said)), Some(shown)) if said == *shown => {
                        seen += 1;
                    }
                    (other, _) => panic!(
                        "{doc}: `iamlet admin {}`: {other:?}, the document shows {refusal:?}",
                        words.join(" ")
                    ),
                }
            }
        }
        assert!(seen >= 10, "only {seen} commands found in the docs");
    }

    #[test]
    fn help_is_offline_and_from_the_model() {
        for form in [
            &["create-user", "help"][..],
            &["create-user", "--help"],
            &["create-user", "--user-name", "x", "-h"],
        ] {
            let IamCommand::Help(text) = parse(form).unwrap() else {
                panic!("{form:?} is not help");
            };
            assert!(
                text.starts_with("create-user\n\n  Creates a new IAM user"),
                "{text}"
            );
            assert!(text.contains("--user-name (string, 1-64 chars"), "{text}");
            assert!(text.contains(") required\n"), "{text}");
            assert!(text.contains("[--permissions-boundary <value>]"), "{text}");
            assert!(text.contains("[--tags <value> ...]"), "{text}");
        }
        let IamCommand::Help(listing) = parse(&["list-users", "help"]).unwrap() else {
            panic!("no help");
        };
        assert!(
            listing.contains(
                "[--path-prefix <value>]\n    [--starting-token <value>]\n    \
                 [--page-size <value>]\n    [--max-items <value>]\n"
            ),
            "{listing}"
        );
        assert!(!listing.contains("--marker"), "{listing}");
        assert!(listing.contains("  --max-items (integer)\n"), "{listing}");
        let IamCommand::Help(overview) = parse(&["help"]).unwrap() else {
            panic!("no overview");
        };
        assert!(overview.contains("\n  create-tenant "), "{overview}");
        assert!(overview.contains("\n  attach-role-policy "), "{overview}");
        assert!(
            overview.contains("\n  create-pod-identity-association "),
            "{overview}"
        );
        assert!(overview.contains("\n  revoke-sessions "), "{overview}");
        let refused = overview
            .lines()
            .find(|l| l.trim_start().starts_with("upload-server-certificate "))
            .unwrap();
        assert!(refused.contains("(refused)"), "{refused}");
        let IamCommand::Help(why) = parse(&["upload-server-certificate", "help"]).unwrap() else {
            panic!("no help");
        };
        assert!(
            why.contains("iamlet refuses this operation on purpose: server certificates serve"),
            "{why}"
        );
        assert_eq!(parse(&[]).unwrap(), IamCommand::Help(overview));
    }
}
