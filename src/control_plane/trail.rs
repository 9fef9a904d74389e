//! The tenant's activity shaped like CloudTrail (issue #17, item 7): the STS events the
//! sidecars ship, checked and stored ([`validate`], [`sts_record`]); and `LookupEvents`
//! ([`lookup`]) over every management event of the tenant: the admin changes (`readOnly`
//! false), the admin calls refused by authorization (from the audit events, `errorCode`
//! `AccessDenied`) and the STS events (`eventSource` `sts.amazonaws.com`). Each event is a
//! CloudTrail record (`eventVersion` 1.08), which `iamlet admin export-trail` writes as JSON
//! lines.
//!
//! No record holds a secret: admin parameters are stored redacted, and an STS event's
//! parameters are rebuilt here from named, non-secret members only (whatever a sidecar sent).

use std::sync::atomic::{AtomicU64, Ordering};

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use serde_json::{json, Map, Value};

use super::api_model::{ApiModel, Service};
use super::store::{AuditEvent, ChangeRecord, TrailRecord};
use super::AdminError;
use crate::error::AwsCode;
use crate::policy::Timestamp;

/// The most events one message of a sidecar may carry.
pub const MAX_TRAIL_EVENTS: usize = 5_000;

/// The longest text an event's fields may be: what a sidecar keeps of them.
const MAX_TEXT: usize = crate::sync::trail::MAX_FIELD_BYTES;

/// The longest JSON an event's parameters or answer may be: what a sidecar keeps of them.
const MAX_JSON: usize = crate::sync::trail::MAX_JSON_BYTES;

/// How far past the control plane's clock an event may be, milliseconds.
const MAX_SKEW_MS: i64 = 300_000;

/// `LookupEvents`' largest and default page.
pub const MAX_LOOKUP_RESULTS: i64 = 50;

/// The most STS events one lookup reads (the newest in its time range); the admin changes
/// and refusals in the range are read whole.
pub(crate) const MAX_LOOKUP_SCAN: usize = 100_000;

/// The STS operations whose events a sidecar may ship (`GetCallerIdentity` is not recorded,
/// as in AWS).
const STS_EVENTS: &[&str] = &[
    "AssumeRole",
    "AssumeRoleWithWebIdentity",
    "AssumeRoleWithSAML",
    "GetSessionToken",
    "GetFederationToken",
    "GetAccessKeyInfo",
];

/// The request members an STS event may carry; anything else a sidecar sends (a token, a
/// secret, an MFA code, an assertion) is left out.
const STS_REQUEST_MEMBERS: &[&str] = &[
    "roleArn",
    "roleSessionName",
    "durationSeconds",
    "externalId",
    "serialNumber",
    "sourceIdentity",
    "policy",
    "policyArns",
    "tags",
    "transitiveTagKeys",
    "principalArn",
    "name",
    "accessKeyId",
];

/// The CloudTrail identity types an STS event may name.
const IDENTITY_TYPES: &[&str] = &[
    "",
    "IAMUser",
    "AssumedRole",
    "Root",
    "FederatedUser",
    "WebIdentityUser",
    "SAMLUser",
];

/// One STS event as a sidecar shipped it (the domain's copy of `iamlet.v1.TrailEvent`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailEvent {
    /// The tenant.
    pub account_id: String,
    /// Random and unique.
    pub event_id: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `AssumeRole`, ...
    pub event_name: String,
    /// Who called.
    pub identity: TrailIdentity,
    /// The client's address, if known.
    pub source_ip: String,
    /// The client's user agent, if known.
    pub user_agent: String,
    /// A JSON object, or empty.
    pub request_parameters: String,
    /// A JSON object, or empty.
    pub response_elements: String,
    /// For a failed call.
    pub error_code: String,
    /// For a failed call.
    pub error_message: String,
    /// The sidecar's request id.
    pub request_id: String,
    /// The request's region.
    pub region: String,
}

/// Who made an STS call (CloudTrail's `userIdentity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrailIdentity {
    /// `IAMUser`, `AssumedRole`, ...
    pub kind: String,
    /// The principal id.
    pub principal_id: String,
    /// The caller's ARN.
    pub arn: String,
    /// The caller's account.
    pub account_id: String,
    /// The caller's own access key id.
    pub access_key_id: String,
    /// The user's name.
    pub user_name: String,
    /// The session's issuer: type, ARN, principal id, name.
    pub issuer_type: String,
    /// The issuer's ARN.
    pub issuer_arn: String,
    /// The issuer's principal id.
    pub issuer_principal_id: String,
    /// The issuer's name.
    pub issuer_user_name: String,
    /// When the session began, Unix milliseconds (0: not a session).
    pub session_created_ms: i64,
    /// Whether the session was MFA-authenticated.
    pub mfa_authenticated: bool,
    /// The web identity provider.
    pub identity_provider: String,
}

/// Why a message's events were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailEventError {
    /// The stream may not see this tenant.
    #[error("the stream is not admitted to tenant `{0}`")]
    NotAdmitted(String),
    /// The control plane holds no such tenant.
    #[error("tenant `{0}` does not exist")]
    UnknownTenant(String),
    /// More events than [`MAX_TRAIL_EVENTS`] in one message.
    #[error("the message holds {count} events, more than the {max} allowed")]
    TooLarge {
        /// The events in the message.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An event is malformed.
    #[error("{0}")]
    Malformed(String),
}

/// Counts of the STS events the control plane received.
#[derive(Debug, Default)]
pub struct TrailCounters {
    /// Events stored.
    pub accepted: AtomicU64,
    /// Events whose id was stored already (a resend).
    pub duplicates: AtomicU64,
    /// Events for tenants the stream is not admitted to (or that do not exist).
    pub refused_not_admitted: AtomicU64,
    /// Malformed events, and every event of an oversized message.
    pub refused_malformed: AtomicU64,
    /// Valid events the store failed to record.
    pub failed: AtomicU64,
}

impl TrailCounters {
    /// Counts `n` events refused for `error`.
    pub(crate) fn refused(&self, error: &TrailEventError, n: usize) {
        let counter = match error {
            TrailEventError::NotAdmitted(_) | TrailEventError::UnknownTenant(_) => {
                &self.refused_not_admitted
            }
            TrailEventError::TooLarge { .. } | TrailEventError::Malformed(_) => {
                &self.refused_malformed
            }
        };
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts `n` events stored by `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

fn malformed(text: String) -> TrailEventError {
    TrailEventError::Malformed(text)
}

fn text(what: &str, value: &str) -> Result<(), TrailEventError> {
    if value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(malformed(format!(
            "the event's {what} is longer than {MAX_TEXT} bytes or holds control characters"
        )));
    }
    Ok(())
}

fn object(what: &str, value: &str) -> Result<Option<Map<String, Value>>, TrailEventError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_JSON {
        return Err(malformed(format!(
            "the event's {what} is longer than {MAX_JSON} bytes"
        )));
    }
    match serde_json::from_str(value) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        _ => Err(malformed(format!(
            "the event's {what} is not a JSON object"
        ))),
    }
}

/// Checks one event of tenant `account_id` before it is stored: a known STS event name; an
/// id of 1..=64 letters, digits and dashes; a time after the epoch and at most 5 minutes past
/// `now_ms`; bounded text; JSON objects; a caller of the event's own tenant.
pub(crate) fn validate(event: &TrailEvent, now_ms: i64) -> Result<(), TrailEventError> {
    if !STS_EVENTS.contains(&event.event_name.as_str()) {
        return Err(malformed(format!(
            "`{}` is not an STS event iamlet records",
            crate::error::echo(&event.event_name)
        )));
    }
    if event.event_id.is_empty()
        || event.event_id.len() > 64
        || !event
            .event_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(malformed(format!(
            "`{}` is not an event id (1 to 64 letters, digits and dashes)",
            crate::error::echo(&event.event_id)
        )));
    }
    if event.at_ms <= 0 || event.at_ms > now_ms.saturating_add(MAX_SKEW_MS) {
        return Err(malformed(format!(
            "the event's time {} is before the epoch or in the future",
            event.at_ms
        )));
    }
    let i = &event.identity;
    for (what, value) in [
        ("source address", &event.source_ip),
        ("user agent", &event.user_agent),
        ("error code", &event.error_code),
        ("error message", &event.error_message),
        ("request id", &event.request_id),
        ("region", &event.region),
        ("identity's ARN", &i.arn),
        ("identity's principal id", &i.principal_id),
        ("identity's access key id", &i.access_key_id),
        ("identity's user name", &i.user_name),
        ("issuer's ARN", &i.issuer_arn),
        ("issuer's principal id", &i.issuer_principal_id),
        ("issuer's name", &i.issuer_user_name),
        ("identity provider", &i.identity_provider),
    ] {
        text(what, value)?;
    }
    if !IDENTITY_TYPES.contains(&i.kind.as_str())
        || !matches!(i.issuer_type.as_str(), "" | "Role" | "IAMUser")
    {
        return Err(malformed(format!(
            "`{}` is not a CloudTrail identity type",
            crate::error::echo(&i.kind)
        )));
    }
    if !i.account_id.is_empty() && i.account_id != event.account_id {
        return Err(malformed(format!(
            "the event's caller is of account `{}`, not of tenant `{}`",
            crate::error::echo(&i.account_id),
            crate::error::echo(&event.account_id)
        )));
    }
    object("request parameters", &event.request_parameters)?;
    object("response elements", &event.response_elements)?;
    Ok(())
}

/// CloudTrail's time: ISO 8601 in UTC, whole seconds, as CloudTrail writes it.
fn event_time(at_ms: i64) -> String {
    Timestamp::from_epoch_seconds(at_ms.div_euclid(1_000)).to_string()
}

fn non_empty(value: &str) -> Option<Value> {
    (!value.is_empty()).then(|| Value::String(value.to_owned()))
}

/// Inserts the members of `pairs` that have a value.
fn insert_all(map: &mut Map<String, Value>, pairs: Vec<(&str, Option<Value>)>) {
    for (key, value) in pairs {
        if let Some(value) = value {
            map.insert(key.to_owned(), value);
        }
    }
}

fn user_identity(i: &TrailIdentity, account_id: &str) -> Value {
    let mut map = Map::new();
    insert_all(
        &mut map,
        vec![
            (
                "type",
                Some(Value::String(if i.kind.is_empty() {
                    "Unknown".to_owned()
                } else {
                    i.kind.clone()
                })),
            ),
            ("principalId", non_empty(&i.principal_id)),
            ("arn", non_empty(&i.arn)),
            (
                "accountId",
                Some(Value::String(if i.account_id.is_empty() {
                    account_id.to_owned()
                } else {
                    i.account_id.clone()
                })),
            ),
            ("accessKeyId", non_empty(&i.access_key_id)),
            ("userName", non_empty(&i.user_name)),
            ("identityProvider", non_empty(&i.identity_provider)),
        ],
    );
    if i.session_created_ms > 0 || !i.issuer_type.is_empty() {
        let mut context = Map::new();
        if !i.issuer_type.is_empty() {
            context.insert(
                "sessionIssuer".into(),
                json!({
                    "type": i.issuer_type,
                    "principalId": i.issuer_principal_id,
                    "arn": i.issuer_arn,
                    "accountId": account_id,
                    "userName": i.issuer_user_name,
                }),
            );
        }
        let mut attributes = Map::new();
        if i.session_created_ms > 0 {
            attributes.insert(
                "creationDate".into(),
                Value::String(event_time(i.session_created_ms)),
            );
        }
        attributes.insert(
            "mfaAuthenticated".into(),
            Value::String(i.mfa_authenticated.to_string()),
        );
        context.insert("attributes".into(), Value::Object(attributes));
        map.insert("sessionContext".into(), Value::Object(context));
    }
    Value::Object(map)
}

/// The request parameters of an STS event, its named members only.
fn sts_request(raw: &str) -> Value {
    match object("request parameters", raw) {
        Ok(Some(map)) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| STS_REQUEST_MEMBERS.contains(&k.as_str()))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// The answer of an STS event: the new key's id and expiry, the assumed role user, and the
/// web identity's names; never the secret or the token.
fn sts_response(raw: &str) -> Value {
    let Ok(Some(map)) = object("response elements", raw) else {
        return Value::Null;
    };
    let mut out = Map::new();
    if let Some(c) = map.get("credentials").and_then(Value::as_object) {
        let mut credentials = Map::new();
        for key in ["accessKeyId", "expiration"] {
            if let Some(v) = c.get(key).filter(|v| v.is_string()) {
                credentials.insert(key.to_owned(), v.clone());
            }
        }
        out.insert("credentials".into(), Value::Object(credentials));
    }
    if let Some(user) = map.get("assumedRoleUser").and_then(Value::as_object) {
        let mut kept = Map::new();
        for key in ["assumedRoleId", "arn"] {
            if let Some(v) = user.get(key).filter(|v| v.is_string()) {
                kept.insert(key.to_owned(), v.clone());
            }
        }
        out.insert("assumedRoleUser".into(), Value::Object(kept));
    }
    for key in [
        "packedPolicySize",
        "sourceIdentity",
        "subjectFromWebIdentityToken",
        "provider",
        "audience",
        "account",
    ] {
        if let Some(v) = map.get(key).filter(|v| v.is_string() || v.is_number()) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

/// The resources an STS event names: the role assumed and the key issued.
fn sts_resources(request: &Value, response: &Value, account_id: &str) -> Value {
    let mut resources = Vec::new();
    if let Some(arn) = request.get("roleArn").and_then(Value::as_str) {
        resources.push(json!({"ARN": arn, "accountId": account_id, "type": "AWS::IAM::Role"}));
    }
    if let Some(key) = response
        .pointer("/credentials/accessKeyId")
        .and_then(Value::as_str)
    {
        resources.push(json!({
            "ARN": format!("arn:aws:iam::{account_id}:accesskey/{key}"),
            "accountId": account_id,
            "type": "AWS::IAM::AccessKey",
        }));
    }
    Value::Array(resources)
}

/// The stored form of a checked STS event: its CloudTrail record.
pub(crate) fn sts_record(event: &TrailEvent) -> TrailRecord {
    let account_id = event.account_id.as_str();
    let request = sts_request(&event.request_parameters);
    let response = if event.error_code.is_empty() {
        sts_response(&event.response_elements)
    } else {
        Value::Null
    };
    let mut record = Map::new();
    insert_all(
        &mut record,
        vec![
            ("eventVersion", Some(json!("1.08"))),
            (
                "userIdentity",
                Some(user_identity(&event.identity, account_id)),
            ),
            ("eventTime", Some(Value::String(event_time(event.at_ms)))),
            ("eventSource", Some(json!("sts.amazonaws.com"))),
            ("eventName", Some(Value::String(event.event_name.clone()))),
            (
                "awsRegion",
                Some(Value::String(if event.region.is_empty() {
                    crate::directory::EKS_REGION.to_owned()
                } else {
                    event.region.clone()
                })),
            ),
            ("sourceIPAddress", non_empty(&event.source_ip)),
            ("userAgent", non_empty(&event.user_agent)),
            ("errorCode", non_empty(&event.error_code)),
            ("errorMessage", non_empty(&event.error_message)),
            ("requestParameters", Some(request.clone())),
            ("responseElements", Some(response.clone())),
            ("requestID", non_empty(&event.request_id)),
            ("eventID", Some(Value::String(event.event_id.clone()))),
            ("readOnly", Some(Value::Bool(true))),
            (
                "resources",
                Some(sts_resources(&request, &response, account_id)),
            ),
            ("eventType", Some(json!("AwsApiCall"))),
            ("managementEvent", Some(Value::Bool(true))),
            (
                "recipientAccountId",
                Some(Value::String(account_id.to_owned())),
            ),
            ("eventCategory", Some(json!("Management"))),
        ],
    );
    TrailRecord {
        account_id: account_id.to_owned(),
        event_id: event.event_id.clone(),
        at_ms: event.at_ms,
        record: Value::Object(record).to_string(),
    }
}

/// A stable event id for an admin record (`change` or `denied`, and its number): the same
/// event has the same id at every lookup and every replica.
fn derived_id(kind: &str, account_id: &str, n: u64) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{kind}\n{account_id}\n{n}").as_bytes(),
    );
    let hex = HEXLOWER.encode(digest.as_ref());
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// The service an admin action belongs to, as CloudTrail names its source.
fn event_source(action: &str) -> &'static str {
    let service = ApiModel::embedded()
        .ok()
        .and_then(|m| m.operation(action))
        .map(|o| o.service);
    match service {
        Some(Service::Eks) => "eks.amazonaws.com",
        Some(Service::AccessAnalyzer) => "access-analyzer.amazonaws.com",
        Some(Service::CloudTrail) => "cloudtrail.amazonaws.com",
        Some(Service::Iam) => "iam.amazonaws.com",
        // The tenant's own lifecycle (`CreateTenant`, `ApplyTenant`, ...) is iamlet's.
        Some(Service::Iamlet) | None => "iamlet.amazonaws.com",
    }
}

/// The identity of an admin actor: an ARN, `root`, or `operator:NAME`.
fn actor_identity(actor: &str, account_id: &str) -> Value {
    let parts: Vec<&str> = actor.splitn(6, ':').collect();
    let resource = parts.get(5).copied().unwrap_or_default();
    let name = resource.rsplit('/').next().unwrap_or_default();
    let (kind, user_name) = match (parts.first(), parts.get(2)) {
        (Some(&"arn"), Some(&"iam")) if resource == "root" => ("Root", None),
        (Some(&"arn"), Some(&"iam")) if resource.starts_with("user/") => ("IAMUser", Some(name)),
        (Some(&"arn"), Some(&"sts")) if resource.starts_with("assumed-role/") => {
            ("AssumedRole", None)
        }
        (Some(&"arn"), Some(&"sts")) if resource.starts_with("federated-user/") => {
            ("FederatedUser", None)
        }
        _ if actor == "root" => ("Root", None),
        _ => ("Unknown", actor.strip_prefix("operator:").or(Some(actor))),
    };
    let mut map = Map::new();
    map.insert("type".into(), json!(kind));
    map.insert("principalId".into(), json!(actor));
    if actor.starts_with("arn:") {
        map.insert("arn".into(), json!(actor));
        map.insert(
            "accountId".into(),
            json!(parts.get(4).copied().unwrap_or(account_id)),
        );
    } else {
        map.insert("accountId".into(), json!(account_id));
    }
    if let Some(user_name) = user_name {
        map.insert("userName".into(), json!(user_name));
    }
    Value::Object(map)
}

/// AWS's parameter names as CloudTrail writes them: the first letter lowercased.
fn camel(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let mut chars = k.chars();
                    let key = match chars.next() {
                        Some(first) => first.to_lowercase().chain(chars).collect(),
                        None => String::new(),
                    };
                    (key, camel(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(camel).collect()),
        other => other.clone(),
    }
}

/// The resources an admin call names, by its parameters.
fn admin_resources(parameters: &Value, account_id: &str) -> Value {
    let mut resources = Vec::new();
    for (member, kind) in [
        ("UserName", "AWS::IAM::User"),
        ("GroupName", "AWS::IAM::Group"),
        ("RoleName", "AWS::IAM::Role"),
        ("PolicyArn", "AWS::IAM::Policy"),
        ("AccessKeyId", "AWS::IAM::AccessKey"),
        ("InstanceProfileName", "AWS::IAM::InstanceProfile"),
        ("OpenIDConnectProviderArn", "AWS::IAM::OIDCProvider"),
        ("SAMLProviderArn", "AWS::IAM::SAMLProvider"),
        ("SerialNumber", "AWS::IAM::MFADevice"),
    ] {
        if let Some(name) = parameters.get(member).and_then(Value::as_str) {
            resources.push(json!({"ARN": name, "accountId": account_id, "type": kind}));
        }
    }
    Value::Array(resources)
}

/// An admin call as the trail sees it.
struct AdminCall<'a> {
    id: String,
    /// Unix seconds.
    at: i64,
    actor: &'a str,
    action: &'a str,
    parameters: &'a Value,
    account_id: &'a str,
    /// The code and message of a refusal.
    error: Option<(&'a str, &'a str)>,
    /// The caller's address, if known.
    source: &'a str,
}

fn admin_record(call: AdminCall<'_>) -> Value {
    let AdminCall {
        id,
        at,
        actor,
        action,
        parameters,
        account_id,
        error,
        source,
    } = call;
    let mut record = Map::new();
    insert_all(
        &mut record,
        vec![
            ("eventVersion", Some(json!("1.08"))),
            ("userIdentity", Some(actor_identity(actor, account_id))),
            (
                "eventTime",
                Some(Value::String(event_time(at.saturating_mul(1_000)))),
            ),
            ("eventSource", Some(json!(event_source(action)))),
            ("eventName", Some(json!(action))),
            ("awsRegion", Some(json!(crate::directory::EKS_REGION))),
            ("sourceIPAddress", non_empty(source)),
            ("errorCode", error.map(|(code, _)| json!(code))),
            ("errorMessage", error.map(|(_, message)| json!(message))),
            ("requestParameters", Some(camel(parameters))),
            ("responseElements", Some(Value::Null)),
            ("requestID", Some(Value::String(id.clone()))),
            ("eventID", Some(Value::String(id))),
            (
                "readOnly",
                Some(Value::Bool(!super::dispatch::is_mutating(action))),
            ),
            ("resources", Some(admin_resources(parameters, account_id))),
            ("eventType", Some(json!("AwsApiCall"))),
            ("managementEvent", Some(Value::Bool(true))),
            ("recipientAccountId", Some(json!(account_id))),
            ("eventCategory", Some(json!("Management"))),
        ],
    );
    Value::Object(record)
}

/// An admin change as a CloudTrail record (its parameters were stored redacted).
pub(crate) fn change_record(change: &ChangeRecord) -> TrailRecord {
    let id = derived_id("change", &change.account_id, change.seq);
    let record = admin_record(AdminCall {
        id: id.clone(),
        at: change.at,
        actor: &change.actor,
        action: &change.action,
        parameters: &change.parameters,
        account_id: &change.account_id,
        error: None,
        source: "",
    });
    TrailRecord {
        account_id: change.account_id.clone(),
        event_id: id,
        at_ms: change.at.saturating_mul(1_000),
        record: record.to_string(),
    }
}

/// An admin call refused by authorization as a CloudTrail record (`errorCode`
/// `AccessDenied`); `None` for any other audit event.
pub(crate) fn denied_record(event: &AuditEvent) -> Option<TrailRecord> {
    if event.outcome != "AccessDenied" {
        return None;
    }
    let id = derived_id("denied", &event.account_id, event.id);
    let record = admin_record(AdminCall {
        id: id.clone(),
        at: event.at,
        actor: &event.actor,
        action: &event.action,
        parameters: &Value::Null,
        account_id: &event.account_id,
        error: Some(("AccessDenied", &event.detail)),
        source: &event.source,
    });
    Some(TrailRecord {
        account_id: event.account_id.clone(),
        event_id: id,
        at_ms: event.at.saturating_mul(1_000),
        record: record.to_string(),
    })
}

fn refuse(code: AwsCode, message: impl Into<String>) -> AdminError {
    AdminError::Trail {
        code,
        message: message.into(),
    }
}

/// Whether `action` answers from the tenant's event history (`LookupEvents`), which the
/// control plane reads from the store.
pub(crate) fn reads_trail(action: &str) -> bool {
    action == "LookupEvents"
}

/// The lookup attributes CloudTrail knows.
const ATTRIBUTE_KEYS: &[&str] = &[
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
];

/// `LookupEvents`' parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lookup {
    /// The one attribute, if any: key and value.
    pub attribute: Option<(String, String)>,
    /// Unix milliseconds, inclusive.
    pub start_ms: i64,
    /// Unix milliseconds, inclusive.
    pub end_ms: i64,
    /// The page's size.
    pub max_results: usize,
    /// Where the page starts: after this (time, id), newest first.
    pub after: Option<(i64, String)>,
}

fn time_ms(name: &str, value: &Value) -> Result<i64, AdminError> {
    let parsed = match value {
        Value::Number(n) => n.as_f64().and_then(|secs| {
            (0.0..1e15)
                .contains(&secs)
                .then(|| Timestamp::from_epoch_seconds(secs.floor() as i64))
        }),
        Value::String(s) => crate::policy::parse_policy_date(s.trim()),
        _ => None,
    };
    parsed
        .map(Timestamp::epoch_millis)
        .ok_or_else(|| AdminError::InvalidParameterValue {
            name: name.to_owned(),
            reason: "must be a date and time (ISO 8601, or epoch seconds)".into(),
        })
}

fn token(after: &(i64, String)) -> String {
    BASE64URL_NOPAD.encode(format!("{}\n{}", after.0, after.1).as_bytes())
}

fn read_token(text: &str) -> Option<(i64, String)> {
    let bytes = BASE64URL_NOPAD.decode(text.as_bytes()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('\n')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// Reads `LookupEvents`' parameters at `now_ms` as CloudTrail does: at most one lookup
/// attribute of a known key with a non-empty value; a start no later than the end (by
/// default the last 90 days); `MaxResults` 1..=50 (default 50); a `NextToken` of this
/// service.
pub(crate) fn read_lookup(
    parameters: &Map<String, Value>,
    now_ms: i64,
) -> Result<Lookup, AdminError> {
    let attributes = match parameters.get("LookupAttributes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(refuse(
                AwsCode::InvalidLookupAttributesException,
                "LookupAttributes must be a list of AttributeKey and AttributeValue",
            ))
        }
    };
    if attributes.len() > 1 {
        return Err(refuse(
            AwsCode::InvalidLookupAttributesException,
            "You cannot specify more than one lookup attribute.",
        ));
    }
    let attribute = match attributes.first() {
        None => None,
        Some(item) => {
            let key = item
                .get("AttributeKey")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let value = item
                .get("AttributeValue")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !ATTRIBUTE_KEYS.contains(&key) {
                return Err(refuse(
                    AwsCode::InvalidLookupAttributesException,
                    format!(
                        "`{}` is not a lookup attribute: use one of {}.",
                        crate::error::echo(key),
                        ATTRIBUTE_KEYS.join(", ")
                    ),
                ));
            }
            if value.is_empty() || value.len() > MAX_TEXT {
                return Err(refuse(
                    AwsCode::InvalidLookupAttributesException,
                    format!(
                        "The value of lookup attribute {key} must be 1 to {MAX_TEXT} characters."
                    ),
                ));
            }
            Some((key.to_owned(), value.to_owned()))
        }
    };
    let end_ms = match parameters.get("EndTime") {
        None | Some(Value::Null) => now_ms,
        Some(v) => time_ms("EndTime", v)?,
    };
    let start_ms = match parameters.get("StartTime") {
        None | Some(Value::Null) => now_ms.saturating_sub(90 * 86_400_000),
        Some(v) => time_ms("StartTime", v)?,
    };
    if start_ms > end_ms {
        return Err(refuse(
            AwsCode::InvalidTimeRangeException,
            "Start time must be before end time.",
        ));
    }
    let max_results = match parameters.get("MaxResults") {
        None | Some(Value::Null) => MAX_LOOKUP_RESULTS,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=MAX_LOOKUP_RESULTS).contains(&n) => n,
            _ => {
                return Err(refuse(
                    AwsCode::InvalidMaxResultsException,
                    format!("MaxResults must be from 1 to {MAX_LOOKUP_RESULTS}."),
                ))
            }
        },
    };
    let after = match parameters.get("NextToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(read_token(t).ok_or_else(|| {
            refuse(
                AwsCode::InvalidNextTokenException,
                "The NextToken is not one this service gave.",
            )
        })?),
        Some(_) => {
            return Err(refuse(
                AwsCode::InvalidNextTokenException,
                "The NextToken is not one this service gave.",
            ))
        }
    };
    Ok(Lookup {
        attribute,
        start_ms,
        end_ms,
        max_results: usize::try_from(max_results).unwrap_or(50),
        after,
    })
}

/// What `LookupEvents` shows of a record, and what its attributes match.
struct Summary {
    at_ms: i64,
    event_id: String,
    event_name: String,
    read_only: bool,
    username: String,
    access_key_id: String,
    event_source: String,
    resources: Vec<(String, String)>,
    record: String,
}

fn summarize(stored: TrailRecord) -> Option<Summary> {
    let record: Value = serde_json::from_str(&stored.record).ok()?;
    let s = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let identity_type = s("/userIdentity/type");
    // CloudTrail's user name: a user's name, a session's name, `root`.
    let username = match identity_type.as_str() {
        "IAMUser" | "WebIdentityUser" | "Unknown" => s("/userIdentity/userName"),
        "AssumedRole" | "FederatedUser" => s("/userIdentity/arn")
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
        "Root" => "root".to_owned(),
        _ => String::new(),
    };
    let resources = record
        .get("resources")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|r| {
                    let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
                    (field("type").to_owned(), field("ARN").to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Summary {
        at_ms: stored.at_ms,
        event_id: stored.event_id,
        event_name: s("/eventName"),
        read_only: record.get("readOnly").and_then(Value::as_bool) == Some(true),
        username,
        access_key_id: s("/userIdentity/accessKeyId"),
        event_source: s("/eventSource"),
        resources,
        record: stored.record,
    })
}

impl Summary {
    fn matches(&self, attribute: Option<&(String, String)>) -> bool {
        let Some((key, value)) = attribute else {
            return true;
        };
        match key.as_str() {
            "EventId" => self.event_id == *value,
            "EventName" => self.event_name == *value,
            "ReadOnly" => self.read_only.to_string() == *value,
            "Username" => self.username == *value,
            "AccessKeyId" => self.access_key_id == *value,
            "EventSource" => self.event_source == *value,
            "ResourceType" => self.resources.iter().any(|(t, _)| t == value),
            "ResourceName" => self.resources.iter().any(|(_, n)| n == value),
            _ => false,
        }
    }

    fn render(self) -> Value {
        let mut event = Map::new();
        insert_all(
            &mut event,
            vec![
                ("EventId", Some(json!(self.event_id))),
                ("EventName", Some(json!(self.event_name))),
                ("ReadOnly", Some(json!(self.read_only.to_string()))),
                ("AccessKeyId", non_empty(&self.access_key_id)),
                ("EventTime", Some(json!(event_time(self.at_ms)))),
                ("EventSource", Some(json!(self.event_source))),
                ("Username", non_empty(&self.username)),
                (
                    "Resources",
                    Some(Value::Array(
                        self.resources
                            .into_iter()
                            .map(|(t, n)| json!({"ResourceType": t, "ResourceName": n}))
                            .collect(),
                    )),
                ),
                ("CloudTrailEvent", Some(json!(self.record))),
            ],
        );
        Value::Object(event)
    }
}

/// One page of `LookupEvents` over `records` (every management event in the lookup's time
/// range, any order): the matching ones, newest first (then by id), after the token's
/// event, with `NextToken` when more remain.
pub(crate) fn lookup(records: Vec<TrailRecord>, lookup: &Lookup) -> Value {
    let mut matching: Vec<Summary> = records
        .into_iter()
        .filter(|r| (lookup.start_ms..=lookup.end_ms).contains(&r.at_ms))
        .filter_map(summarize)
        .filter(|s| s.matches(lookup.attribute.as_ref()))
        .filter(|s| match &lookup.after {
            Some((at, id)) => (s.at_ms, &s.event_id) < (*at, id),
            None => true,
        })
        .collect();
    matching.sort_by(|a, b| (b.at_ms, &b.event_id).cmp(&(a.at_ms, &a.event_id)));
    let more = matching.len() > lookup.max_results;
    matching.truncate(lookup.max_results);
    let next = more
        .then(|| {
            matching
                .last()
                .map(|s| token(&(s.at_ms, s.event_id.clone())))
        })
        .flatten();
    let events: Vec<Value> = matching.into_iter().map(Summary::render).collect();
    let mut out = Map::new();
    out.insert("Events".into(), Value::Array(events));
    if let Some(next) = next {
        out.insert("NextToken".into(), Value::String(next));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
