//! Entities as JSON shaped like AWS's responses (botocore's output shapes). Optional members
//! are left out when unset, as AWS does; list forms omit what AWS's `List*` actions omit
//! (tags and permissions boundaries).
//!
//! Listings are paginated as AWS's are: `MaxItems` (1..=1000, default 100) and an opaque
//! `Marker`; a result says `IsTruncated` and carries the next `Marker` while more remain.

use std::collections::HashMap;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{json, Map, Value};

use super::params::Params;
use crate::control_plane::AdminError;

use crate::directory::{
    AccessKeyStatus, AwsManagedPolicy, DirectoryError, Group, ManagedPolicy, OidcProvider,
    PolicyVersionEntry, Role, Tag, Tenant, User,
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

/// The most items one page holds (AWS's bound on `MaxItems`).
pub(super) const MAX_ITEMS: u32 = 1_000;

/// The items a page holds when the caller names no `MaxItems` (AWS's default).
pub(super) const DEFAULT_MAX_ITEMS: u32 = 100;

/// What a marker starts with (before encoding), so that a token from another listing or
/// another program is refused rather than misread.
const MARKER_PREFIX: &str = "iamlet-marker-1";

/// One page's window over a listing: at most `max_items`, after the item whose sort key is
/// `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Page {
    max_items: usize,
    after: Option<String>,
}

// === impl Page ===

impl Page {
    /// Reads `MaxItems` (1..=1000, default 100) and `Marker` for the listing of `member`.
    ///
    /// A marker is the sort key of the last item of the previous page, so that it stays right
    /// when items are added or removed between pages: the next page starts at the first item
    /// whose key is greater, whatever happened to the one it names.
    pub(super) fn read(p: Params<'_>, member: &str) -> Result<Self, AdminError> {
        let max_items = match p.opt_u32("MaxItems")? {
            None => DEFAULT_MAX_ITEMS,
            Some(0) => return Err(max_items_error(0, "greater than or equal to 1")),
            Some(n) if n > MAX_ITEMS => {
                return Err(max_items_error(n, "less than or equal to 1000"))
            }
            Some(n) => n,
        };
        let after = p
            .opt_str("Marker")?
            .map(|marker| decode_marker(member, marker))
            .transpose()?;
        Ok(Self {
            max_items: usize::try_from(max_items).unwrap_or(usize::MAX),
            after,
        })
    }

    /// The page of `items` (sorted here by `key`): `{member: [...], "IsTruncated": bool}` and
    /// `"Marker"` when more remain.
    pub(super) fn render(
        &self,
        member: &str,
        items: Vec<Value>,
        key: impl Fn(&Value) -> String,
    ) -> Value {
        let mut out = Map::new();
        let (items, marker) = self.cut(member, items, key);
        out.insert(member.to_owned(), Value::Array(items));
        finish(&mut out, marker);
        Value::Object(out)
    }

    /// The page of `items` in key order, and the marker of the next page when more remain.
    pub(super) fn cut(
        &self,
        member: &str,
        items: Vec<Value>,
        key: impl Fn(&Value) -> String,
    ) -> (Vec<Value>, Option<String>) {
        let mut keyed: Vec<(String, Value)> = items.into_iter().map(|v| (key(&v), v)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rest = keyed
            .into_iter()
            .filter(|(k, _)| self.after.as_ref().is_none_or(|after| k > after))
            .peekable();
        let mut page = Vec::new();
        let mut last = None;
        while page.len() < self.max_items {
            let Some((k, v)) = rest.next() else { break };
            page.push(v);
            last = Some(k);
        }
        let marker = match (rest.peek(), last) {
            (Some(_), Some(last)) => Some(encode_marker(member, &last)),
            _ => None,
        };
        (page, marker)
    }
}

/// Adds `IsTruncated` and, when more remain, `Marker` to a page's result.
pub(super) fn finish(out: &mut Map<String, Value>, marker: Option<String>) {
    out.insert("IsTruncated".to_owned(), Value::Bool(marker.is_some()));
    if let Some(marker) = marker {
        out.insert("Marker".to_owned(), Value::String(marker));
    }
}

/// A page of `items` as `{member: [...], "IsTruncated": .., "Marker": ..}`, sorted and cut by
/// `key`, after the caller's `Marker`, at most `MaxItems`.
pub(super) fn listing(
    p: Params<'_>,
    member: &str,
    items: Vec<Value>,
    key: impl Fn(&Value) -> String,
) -> Result<Value, AdminError> {
    Ok(Page::read(p, member)?.render(member, items, key))
}

/// The sort key of an item: its string member `field`.
pub(super) fn by(field: &'static str) -> impl Fn(&Value) -> String {
    move |v| {
        v.get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    }
}

/// The sort key of an item that is a string.
pub(super) fn itself(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

/// The sort key of a policy version: `v10` after `v9`.
pub(super) fn version_key(v: &Value) -> String {
    let id = v.get("VersionId").and_then(Value::as_str).unwrap_or("");
    match id.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()) {
        Some(n) => format!("{n:020}"),
        None => id.to_owned(),
    }
}

fn max_items_error(value: u32, bound: &str) -> AdminError {
    DirectoryError::Validation(format!(
        "1 validation error detected: Value '{value}' at 'maxItems' failed to satisfy constraint: Member must have value {bound}"
    ))
    .into()
}

fn encode_marker(member: &str, key: &str) -> String {
    BASE64URL_NOPAD.encode(format!("{MARKER_PREFIX}\n{member}\n{key}").as_bytes())
}

/// The sort key a marker of the listing of `member` names; anything else is refused.
fn decode_marker(member: &str, marker: &str) -> Result<String, AdminError> {
    let refused = || -> AdminError {
        DirectoryError::Validation(
            "Invalid Marker: it is not one that this listing returned.".to_owned(),
        )
        .into()
    };
    let bytes = BASE64URL_NOPAD
        .decode(marker.as_bytes())
        .map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    let mut parts = text.splitn(3, '\n');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(MARKER_PREFIX), Some(m), Some(key)) if m == member => Ok(key.to_owned()),
        _ => Err(refused()),
    }
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
    let counts = (
        tenant.policy_attachment_count(&p.arn),
        tenant.policy_boundary_usage_count(&p.arn),
    );
    policy_counted(p, detail, counts)
}

/// How many entities each managed policy is attached to, and is the boundary of, counted in
/// one pass over the tenant: a listing of N policies reads each entity once, not N times.
#[derive(Debug, Default)]
pub(super) struct PolicyUsage<'a>(HashMap<&'a str, (usize, usize)>);

impl<'a> PolicyUsage<'a> {
    pub(super) fn of(tenant: &'a Tenant) -> Self {
        let mut counts: HashMap<&'a str, (usize, usize)> = HashMap::new();
        let attached = tenant
            .users
            .values()
            .map(|u| &u.attached_policies)
            .chain(tenant.groups.values().map(|g| &g.attached_policies))
            .chain(tenant.roles.values().map(|r| &r.attached_policies));
        for list in attached {
            // An entity counts once per policy, as `policy_attachment_count` counts it.
            let mut seen: Vec<&str> = Vec::with_capacity(list.len());
            for arn in list {
                if !seen.contains(&arn.as_str()) {
                    seen.push(arn);
                    counts.entry(arn).or_default().0 += 1;
                }
            }
        }
        let boundaries = tenant
            .users
            .values()
            .map(|u| &u.permissions_boundary)
            .chain(tenant.roles.values().map(|r| &r.permissions_boundary));
        for arn in boundaries.flatten() {
            counts.entry(arn).or_default().1 += 1;
        }
        Self(counts)
    }

    /// `(AttachmentCount, PermissionsBoundaryUsageCount)` of the policy `arn`.
    pub(super) fn counts(&self, arn: &str) -> (usize, usize) {
        self.0.get(arn).copied().unwrap_or_default()
    }
}

/// A `Policy` whose attachment and boundary counts are given.
pub(super) fn policy_counted(
    p: &ManagedPolicy,
    detail: Detail,
    (attachments, boundaries): (usize, usize),
) -> Value {
    let mut out = object(json!({
        "PolicyName": p.name,
        "PolicyId": p.policy_id,
        "Arn": p.arn,
        "Path": p.path,
        "DefaultVersionId": p.default_version_id,
        "AttachmentCount": attachments,
        "PermissionsBoundaryUsageCount": boundaries,
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
    let counts = (
        tenant.policy_attachment_count(p.arn),
        tenant.policy_boundary_usage_count(p.arn),
    );
    aws_policy_counted(p, counts)
}

/// An AWS-managed `Policy` whose attachment and boundary counts are given.
pub(super) fn aws_policy_counted(
    p: &AwsManagedPolicy,
    (attachments, boundaries): (usize, usize),
) -> Value {
    json!({
        "PolicyName": p.name,
        "Arn": p.arn,
        "Path": p.path,
        "AttachmentCount": attachments,
        "PermissionsBoundaryUsageCount": boundaries,
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
