//! Entities as JSON shaped like AWS's responses (botocore's output shapes). Optional members
//! are left out when unset, as AWS does; list forms omit what AWS's `List*` actions omit
//! (tags and permissions boundaries).

use serde_json::{json, Map, Value};

use crate::directory::{
    AccessKeyStatus, AwsManagedPolicy, Group, ManagedPolicy, OidcProvider, PolicyVersionEntry,
    Role, Tag, Tenant, User,
};
use crate::policy::Timestamp;

/// Whether to render every member (`Get*`, `Create*`) or the subset `List*` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Detail {
    /// Everything, tags and boundary included.
    Full,
    /// What AWS's listing actions return.
    Listing,
}

/// An ISO 8601 UTC date.
pub(super) fn date(secs: i64) -> Value {
    Value::String(Timestamp::from_epoch_seconds(secs).to_string())
}

/// `[{"Key": .., "Value": ..}]`.
pub(super) fn tags(tags: &[Tag]) -> Value {
    tags.iter()
        .map(|t| json!({"Key": t.key, "Value": t.value}))
        .collect()
}

/// A list result with `IsTruncated: false` (iamlet does not paginate).
pub(super) fn listing(member: &str, items: Vec<Value>) -> Value {
    let mut out = Map::new();
    out.insert(member.to_owned(), Value::Array(items));
    out.insert("IsTruncated".to_owned(), Value::Bool(false));
    Value::Object(out)
}

/// `{member: value}`.
pub(super) fn wrap(member: &str, value: Value) -> Value {
    let mut out = Map::new();
    out.insert(member.to_owned(), value);
    Value::Object(out)
}

fn add_tags_and_boundary(
    out: &mut Map<String, Value>,
    detail: Detail,
    boundary: Option<&str>,
    entity_tags: &[Tag],
) {
    if detail == Detail::Listing {
        return;
    }
    if let Some(arn) = boundary {
        out.insert(
            "PermissionsBoundary".into(),
            json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": arn}),
        );
    }
    if !entity_tags.is_empty() {
        out.insert("Tags".into(), tags(entity_tags));
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A `User`.
pub(super) fn user(u: &User, detail: Detail) -> Value {
    let mut out = object(json!({
        "Path": u.path,
        "UserName": u.name,
        "UserId": u.user_id,
        "Arn": u.arn,
        "CreateDate": date(u.created_at),
    }));
    add_tags_and_boundary(&mut out, detail, u.permissions_boundary.as_deref(), &u.tags);
    Value::Object(out)
}

/// A `Group`.
pub(super) fn group(g: &Group) -> Value {
    json!({
        "Path": g.path,
        "GroupName": g.name,
        "GroupId": g.group_id,
        "Arn": g.arn,
        "CreateDate": date(g.created_at),
    })
}

/// A `Role`; the trust policy is the document as submitted.
pub(super) fn role(r: &Role, detail: Detail) -> Value {
    let mut out = object(json!({
        "Path": r.path,
        "RoleName": r.name,
        "RoleId": r.role_id,
        "Arn": r.arn,
        "CreateDate": date(r.created_at),
        "AssumeRolePolicyDocument": r.assume_role_policy,
    }));
    if let Some(d) = &r.description {
        out.insert("Description".into(), Value::String(d.clone()));
    }
    out.insert("MaxSessionDuration".into(), r.max_session_duration.into());
    add_tags_and_boundary(&mut out, detail, r.permissions_boundary.as_deref(), &r.tags);
    Value::Object(out)
}

/// A customer managed `Policy`, with its attachment counts.
pub(super) fn policy(tenant: &Tenant, p: &ManagedPolicy, detail: Detail) -> Value {
    let mut out = object(json!({
        "PolicyName": p.name,
        "PolicyId": p.policy_id,
        "Arn": p.arn,
        "Path": p.path,
        "DefaultVersionId": p.default_version_id,
        "AttachmentCount": tenant.policy_attachment_count(&p.arn),
        "PermissionsBoundaryUsageCount": tenant.policy_boundary_usage_count(&p.arn),
        "IsAttachable": true,
    }));
    if let Some(d) = &p.description {
        out.insert("Description".into(), Value::String(d.clone()));
    }
    out.insert("CreateDate".into(), date(p.created_at));
    out.insert("UpdateDate".into(), date(p.updated_at));
    if detail == Detail::Full && !p.tags.is_empty() {
        out.insert("Tags".into(), tags(&p.tags));
    }
    Value::Object(out)
}

/// An AWS-managed `Policy` from the catalog. The catalog keeps neither ids, dates nor
/// version ids, so those members are left out.
pub(super) fn aws_policy(tenant: &Tenant, p: &AwsManagedPolicy) -> Value {
    json!({
        "PolicyName": p.name,
        "Arn": p.arn,
        "Path": p.path,
        "AttachmentCount": tenant.policy_attachment_count(p.arn),
        "PermissionsBoundaryUsageCount": tenant.policy_boundary_usage_count(p.arn),
        "IsAttachable": true,
    })
}

/// A `PolicyVersion`, with its document when `with_document`.
pub(super) fn policy_version(v: &PolicyVersionEntry, default: &str, with_document: bool) -> Value {
    let mut out = Map::new();
    if with_document {
        out.insert("Document".into(), Value::String(v.document.clone()));
    }
    out.insert("VersionId".into(), Value::String(v.version_id.clone()));
    out.insert(
        "IsDefaultVersion".into(),
        Value::Bool(v.version_id == default),
    );
    out.insert("CreateDate".into(), date(v.created_at));
    Value::Object(out)
}

/// An access key's status as AWS spells it.
pub(super) fn status(s: AccessKeyStatus) -> &'static str {
    match s {
        AccessKeyStatus::Active => "Active",
        AccessKeyStatus::Inactive => "Inactive",
    }
}

/// The result of `GetOpenIDConnectProvider`. AWS returns the URL without its scheme; the
/// JWKS document (public keys) is iamlet's addition.
pub(super) fn oidc_provider(p: &OidcProvider) -> Value {
    let mut out = object(json!({
        "Url": p.url.strip_prefix("https://").unwrap_or(&p.url),
        "ClientIDList": p.client_ids,
        "ThumbprintList": p.thumbprints,
        "CreateDate": date(p.created_at),
        "Tags": tags(&p.tags),
    }));
    out.insert("Jwks".into(), Value::String(p.jwks.clone()));
    Value::Object(out)
}
