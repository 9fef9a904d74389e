//! The CloudTrail event of an STS call (issue #17, item 7): who called (the caller's own key,
//! never its secret), with which parameters (named ones only: never a token, a secret, a web
//! identity token, an MFA code or a SAML assertion) and what it got (the new key's id and
//! expiry, the assumed role user: never the secret or the session token).

use crate::sync::trail::TrailIdentity;
use serde_json::{json, Map, Value};

use crate::authz::Principal;
use crate::policy::Timestamp;
use crate::snapshot::TenantSnapshot;
use crate::sts::{Caller, Issued};

use super::super::api::CallerId;
use super::{AssumeRoleInput, AssumeRoleWithWebIdentityInput, GetSessionTokenInput};

/// Where a call came from, when the edge knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address.
    pub source_ip: Option<String>,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
}

/// The last segment of an ARN's resource (`user/eng/alice` → `alice`).
fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// CloudTrail's `userIdentity` of an authenticated STS caller.
pub(super) fn identity(
    caller: &Caller,
    presented: &CallerId,
    snapshot: &TenantSnapshot,
) -> TrailIdentity {
    let access_key_id = match presented {
        CallerId::Keys { access_key_id, .. } => access_key_id.clone(),
        CallerId::Signed(s) => s.access_key_id().to_owned(),
        CallerId::PrincipalArn(_) => String::new(),
    };
    let account_id = snapshot.account_id().to_owned();
    let mut identity = TrailIdentity {
        arn: caller.principal.to_string(),
        account_id: account_id.clone(),
        access_key_id,
        ..TrailIdentity::default()
    };
    match &caller.principal {
        Principal::User { arn, unique_id, .. } => {
            identity.kind = "IAMUser".into();
            identity.principal_id = unique_id.as_deref().unwrap_or_default().to_owned();
            identity.user_name = last_segment(arn).to_owned();
        }
        Principal::Root { .. } => {
            identity.kind = "Root".into();
            identity.principal_id = account_id;
        }
        Principal::AssumedRole {
            role_name,
            session_name,
            role_unique_id,
            ..
        } => {
            identity.kind = "AssumedRole".into();
            let role_id = role_unique_id.as_deref().unwrap_or_default();
            identity.principal_id = format!("{role_id}:{session_name}");
            identity.session_issuer_type = "Role".into();
            identity.session_issuer_principal_id = role_id.to_owned();
            identity.session_issuer_user_name = role_name.to_string();
            // A session ARN omits the role's path; the issuer is the role as stored.
            identity.session_issuer_arn = match snapshot.role(role_name) {
                Some(role) => role.arn.to_string(),
                None => format!("arn:aws:iam::{}:role/{role_name}", snapshot.account_id()),
            };
        }
        Principal::FederatedUser { .. } => {
            identity.kind = "FederatedUser".into();
        }
        _ => {}
    }
    if let Some(session) = &caller.session {
        let claims = &session.claims;
        identity.session_creation_time_ms = claims.issued_at.saturating_mul(1_000);
        identity.mfa_authenticated = claims.mfa_authenticated_at.is_some();
        if let Principal::User { arn, unique_id, .. } = &caller.principal {
            // A user's `GetSessionToken` session: issued by the user.
            identity.session_issuer_type = "IAMUser".into();
            identity.session_issuer_arn = arn.to_string();
            identity.session_issuer_principal_id =
                unique_id.as_deref().unwrap_or_default().to_owned();
            identity.session_issuer_user_name = last_segment(arn).to_owned();
        }
    }
    identity
}

/// The identity of an `AssumeRoleWithWebIdentity` caller: the provider, as CloudTrail names
/// a `WebIdentityUser`.
pub(super) fn web_identity(provider: &str, subject: &str, account_id: &str) -> TrailIdentity {
    TrailIdentity {
        kind: "WebIdentityUser".into(),
        principal_id: format!("{provider}:{subject}"),
        user_name: subject.to_owned(),
        account_id: account_id.to_owned(),
        identity_provider: provider.to_owned(),
        ..TrailIdentity::default()
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        map.insert(key.to_owned(), Value::String(v.to_owned()));
    }
}

/// `AssumeRole`'s `requestParameters`: no MFA code.
pub(super) fn assume_role_parameters(input: &AssumeRoleInput) -> Value {
    let mut map = Map::new();
    put(&mut map, "roleArn", Some(&input.role_arn));
    put(&mut map, "roleSessionName", Some(&input.role_session_name));
    if let Some(d) = input.duration_seconds {
        map.insert("durationSeconds".into(), json!(d));
    }
    put(&mut map, "externalId", input.external_id.as_deref());
    put(&mut map, "serialNumber", input.serial_number.as_deref());
    put(&mut map, "sourceIdentity", input.source_identity.as_deref());
    put(&mut map, "policy", input.policy.as_deref());
    if !input.policy_arns.is_empty() {
        let arns: Vec<Value> = input
            .policy_arns
            .iter()
            .map(|arn| json!({ "arn": arn }))
            .collect();
        map.insert("policyArns".into(), Value::Array(arns));
    }
    if !input.tags.is_empty() {
        let tags: Vec<Value> = input
            .tags
            .iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect();
        map.insert("tags".into(), Value::Array(tags));
    }
    if !input.transitive_tag_keys.is_empty() {
        map.insert("transitiveTagKeys".into(), json!(input.transitive_tag_keys));
    }
    Value::Object(map)
}

/// `AssumeRoleWithWebIdentity`'s `requestParameters`: never the token.
pub(super) fn web_identity_parameters(input: &AssumeRoleWithWebIdentityInput) -> Value {
    let mut map = Map::new();
    put(&mut map, "roleArn", Some(&input.role_arn));
    put(&mut map, "roleSessionName", Some(&input.role_session_name));
    if let Some(d) = input.duration_seconds {
        map.insert("durationSeconds".into(), json!(d));
    }
    put(&mut map, "policy", input.policy.as_deref());
    Value::Object(map)
}

/// `GetSessionToken`'s `requestParameters`: no MFA code.
pub(super) fn session_token_parameters(input: &GetSessionTokenInput) -> Value {
    let mut map = Map::new();
    if let Some(d) = input.duration_seconds {
        map.insert("durationSeconds".into(), json!(d));
    }
    put(&mut map, "serialNumber", input.serial_number.as_deref());
    Value::Object(map)
}

/// CloudTrail's time: ISO 8601, UTC, seconds.
fn iso(at: Timestamp) -> String {
    at.to_string()
}

/// The `responseElements` of issued credentials: the key id and expiry, never the secret or
/// the session token; the assumed role user for a role session.
pub(super) fn issued_elements(issued: &Issued, role_session: bool) -> Value {
    let mut map = Map::new();
    map.insert(
        "credentials".into(),
        json!({
            "accessKeyId": issued.access_key_id,
            "expiration": iso(issued.expiration),
        }),
    );
    if role_session {
        map.insert(
            "assumedRoleUser".into(),
            json!({"assumedRoleId": issued.assumed_role_id, "arn": issued.arn}),
        );
        if issued.packed_policy_size > 0 {
            map.insert("packedPolicySize".into(), json!(issued.packed_policy_size));
        }
    }
    if let Some(source_identity) = &issued.source_identity {
        map.insert("sourceIdentity".into(), json!(source_identity));
    }
    Value::Object(map)
}
