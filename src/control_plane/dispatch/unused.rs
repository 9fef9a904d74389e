//! IAM Access Analyzer's unused access findings (issue #17, item 6): `ListFindingsV2`,
//! `GetFindingV2` and `GetFindingsStatistics` for an `ACCOUNT_UNUSED_ACCESS` analyzer,
//! computed from the usage the sidecars report each time they are read (the control plane
//! routes them through `run_with_usage`), so they follow the usage without a background job.
//!
//! For a window of N days (the analyzer's `unusedAccessAge`), as Access Analyzer reports them:
//! - `UnusedIAMRole`: a role with no use within the window. Service-linked roles are not
//!   analyzed, nor roles younger than the window (AWS analyzes entities that existed for the
//!   whole window).
//! - `UnusedIAMUserAccessKey`: a user's active keys, older than the window, not used within it
//!   (one finding per user, one detail per key with its last use).
//! - `UnusedIAMUserPassword`: a console password older than the window. The control plane
//!   records no console sign-ins, so a password is never seen used (`lastAccessed` absent).
//! - `UnusedPermission`: for each user and each role in use, the services its policies allow
//!   (Access Advisor's list, `usage.rs`) not used within the window, and for the services
//!   tracked at action level (ec2, iam, lambda, s3) the allowed actions not used within it.
//!
//! A finding's id is derived from the analyzer, the type and the resource, so it is the same
//! on every call; `createdAt` is when the access became unused (the later of the entity's
//! creation and its last use, plus the window); `updatedAt` the later of that and the latest
//! `UpdateFindings` naming it. `RESOLVED` findings are not kept: access that is used again, or
//! removed, simply no longer has a finding.

use std::cmp::Ordering;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{json, Map, Value};

use super::analyzer::validation;
use super::params::Params;
use super::render;
use super::usage::{advisor, tracked};
use crate::control_plane::api_model::ApiModel;
use crate::control_plane::store::UsageBatch;
use crate::control_plane::usage::Granularity;
use crate::control_plane::AdminError;
use crate::directory::{Analyzer, DirectoryError, Tag, Tenant, SERVICE_ROLE_PATH_PREFIX};

/// The actions that compute findings from usage.
pub(crate) const FINDINGS_ACTIONS: &[&str] =
    &["ListFindingsV2", "GetFindingV2", "GetFindingsStatistics"];

const DAY: i64 = 86_400;

/// One finding, before it is rendered.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Finding {
    pub(super) id: String,
    pub(super) finding_type: &'static str,
    pub(super) resource: String,
    pub(super) resource_type: &'static str,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) archived: bool,
    /// `FindingDetails` unions.
    pub(super) details: Vec<Value>,
}

impl Finding {
    fn status(&self) -> &'static str {
        if self.archived {
            "ARCHIVED"
        } else {
            "ACTIVE"
        }
    }

    /// The attribute a filter or sort names, as text (times as epoch seconds, zero-padded so
    /// they sort as numbers).
    fn attribute(&self, name: &str, account: &str, now: i64) -> Option<String> {
        let time = |t: i64| format!("{t:020}");
        Some(match name {
            "id" => self.id.clone(),
            "status" => self.status().to_owned(),
            "findingType" => self.finding_type.to_owned(),
            "resource" => self.resource.clone(),
            "resourceType" => self.resource_type.to_owned(),
            "resourceOwnerAccount" => account.to_owned(),
            "createdAt" => time(self.created_at),
            "updatedAt" => time(self.updated_at),
            "analyzedAt" => time(now),
            _ => return None,
        })
    }

    /// The `FindingSummaryV2` (and `GetFindingV2`'s members but the details).
    fn summary(&self, account: &str, now: i64) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("analyzedAt".into(), render::date(now));
        out.insert("createdAt".into(), render::date(self.created_at));
        out.insert("id".into(), self.id.clone().into());
        out.insert("resource".into(), self.resource.clone().into());
        out.insert("resourceType".into(), self.resource_type.into());
        out.insert("resourceOwnerAccount".into(), account.into());
        out.insert("status".into(), self.status().into());
        out.insert("updatedAt".into(), render::date(self.updated_at));
        out.insert("findingType".into(), self.finding_type.into());
        out
    }
}

/// The attributes `filter` and `sort` may name.
const ATTRIBUTES: &[&str] = &[
    "id",
    "status",
    "findingType",
    "resource",
    "resourceType",
    "resourceOwnerAccount",
    "createdAt",
    "updatedAt",
    "analyzedAt",
];

/// A finding's id: a UUID-shaped digest of the analyzer, the type and the resource.
fn finding_id(analyzer: &str, finding_type: &str, resource: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{analyzer}\n{finding_type}\n{resource}").as_bytes(),
    );
    let hex: String = digest
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
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

fn with_last(mut out: Map<String, Value>, last: Option<i64>) -> Map<String, Value> {
    if let Some(at) = last {
        out.insert("lastAccessed".into(), render::date(at));
    }
    out
}

/// Every finding of `analyzer` on `t` at `now`, sorted by resource then type.
pub(super) fn findings(
    t: &Tenant,
    analyzer: &Analyzer,
    usage: &UsageBatch,
    now: i64,
) -> Vec<Finding> {
    let window = i64::from(analyzer.unused_access_age).saturating_mul(DAY);
    let cutoff = now.saturating_sub(window);
    let unused = |last: Option<i64>| last.is_none_or(|at| at <= cutoff);
    let mut out = Vec::new();
    let mut push = |finding_type: &'static str,
                    resource: &str,
                    resource_type: &'static str,
                    since: i64,
                    details: Vec<Value>| {
        let id = finding_id(&analyzer.arn, finding_type, resource);
        let created_at = since.saturating_add(window);
        let status = analyzer.status_of(&id, resource);
        out.push(Finding {
            archived: status.is_some_and(|s| s.archived),
            updated_at: status.map_or(created_at, |s| s.at.max(created_at)),
            id,
            finding_type,
            resource: resource.to_owned(),
            resource_type,
            created_at,
            details,
        });
    };
    let analyzed = |created_at: i64, tags: &[Tag]| {
        created_at <= cutoff && !analyzer.excludes(&t.account_id, tags)
    };

    for r in t.roles.values() {
        if r.path.starts_with(SERVICE_ROLE_PATH_PREFIX) || !analyzed(r.created_at, &r.tags) {
            continue;
        }
        let last = usage
            .roles
            .iter()
            .filter(|u| u.role_arn == r.arn)
            .map(|u| u.last_used)
            .chain(
                usage
                    .services
                    .iter()
                    .filter(|s| s.principal_arn == r.arn)
                    .map(|s| s.last_authenticated),
            )
            .filter(|at| tracked(*at, now))
            .max();
        if unused(last) {
            let details = with_last(Map::new(), last);
            push(
                "UnusedIAMRole",
                &r.arn,
                "AWS::IAM::Role",
                last.unwrap_or(r.created_at).max(r.created_at),
                vec![json!({ "unusedIamRoleDetails": details })],
            );
        } else if let Some((since, details)) = permissions(t, usage, now, &r.arn, cutoff) {
            push(
                "UnusedPermission",
                &r.arn,
                "AWS::IAM::Role",
                since.max(r.created_at),
                details,
            );
        }
    }

    for u in t.users.values() {
        if !analyzed(u.created_at, &u.tags) {
            continue;
        }
        let mut keys: Vec<_> = u
            .access_keys
            .iter()
            .filter(|k| k.status == crate::directory::AccessKeyStatus::Active)
            .filter(|k| k.created_at <= cutoff)
            .map(|k| {
                let last = usage
                    .access_keys
                    .iter()
                    .filter(|used| used.access_key_id == k.access_key_id)
                    .map(|used| used.last_used)
                    .filter(|at| tracked(*at, now))
                    .max();
                (k, last)
            })
            .filter(|(_, last)| unused(*last))
            .collect();
        keys.sort_by_key(|(k, _)| k.created_at);
        if let Some(since) = keys
            .iter()
            .map(|(k, last)| last.unwrap_or(k.created_at).max(k.created_at))
            .max()
        {
            let details = keys
                .iter()
                .map(|(k, last)| {
                    let mut d = Map::new();
                    d.insert("accessKeyId".into(), k.access_key_id.clone().into());
                    json!({ "unusedIamUserAccessKeyDetails": with_last(d, *last) })
                })
                .collect();
            push(
                "UnusedIAMUserAccessKey",
                &u.arn,
                "AWS::IAM::User",
                since,
                details,
            );
        }
        if let Some(profile) = u.login_profile.as_ref().filter(|p| p.created_at <= cutoff) {
            // No console sign-in is recorded: the password has no last use.
            push(
                "UnusedIAMUserPassword",
                &u.arn,
                "AWS::IAM::User",
                profile.created_at,
                vec![json!({ "unusedIamUserPasswordDetails": {} })],
            );
        }
        if let Some((since, details)) = permissions(t, usage, now, &u.arn, cutoff) {
            push(
                "UnusedPermission",
                &u.arn,
                "AWS::IAM::User",
                since.max(u.created_at),
                details,
            );
        }
    }
    out.sort_by(|a, b| {
        (a.resource.as_str(), a.finding_type).cmp(&(b.resource.as_str(), b.finding_type))
    });
    out
}

/// The `unusedPermissionDetails` of the principal `arn`: the services its policies allow that
/// it did not use after `cutoff`, and for the services tracked at action level, the allowed
/// actions it did not use after `cutoff`; with the latest use among them (`None` when nothing
/// is unused).
fn permissions(
    t: &Tenant,
    usage: &UsageBatch,
    now: i64,
    arn: &str,
    cutoff: i64,
) -> Option<(i64, Vec<Value>)> {
    let services = advisor(t, usage, now, arn, Granularity::ActionLevel).ok()?;
    let unused = |last: Option<i64>| last.is_none_or(|at| at <= cutoff);
    let mut since = i64::MIN;
    let mut details = Vec::new();
    for s in services {
        let last = s.last.as_ref().map(|(at, _, _)| *at);
        let actions: Vec<(String, Option<i64>)> = s
            .actions
            .unwrap_or_default()
            .into_iter()
            .map(|(name, last)| (name, last.map(|(at, _, _)| at)))
            .filter(|(_, last)| unused(*last))
            .collect();
        if !unused(last) && actions.is_empty() {
            continue;
        }
        for at in last
            .into_iter()
            .chain(actions.iter().filter_map(|(_, l)| *l))
        {
            if at <= cutoff {
                since = since.max(at);
            }
        }
        let mut d = Map::new();
        if !actions.is_empty() {
            let listed: Vec<Value> = actions
                .iter()
                .map(|(name, last)| {
                    let mut a = Map::new();
                    a.insert("action".into(), name.clone().into());
                    Value::Object(with_last(a, *last))
                })
                .collect();
            d.insert("actions".into(), Value::Array(listed));
        }
        d.insert("serviceNamespace".into(), s.namespace.into());
        details.push(json!({ "unusedPermissionDetails": with_last(d, last) }));
    }
    (!details.is_empty()).then_some((since, details))
}

/// Runs one of [`FINDINGS_ACTIONS`].
pub(super) fn run(
    t: &Tenant,
    usage: &UsageBatch,
    now: i64,
    action: &str,
    map: &Map<String, Value>,
) -> Result<Value, AdminError> {
    let model = ApiModel::embedded().map_err(|e| AdminError::Internal(e.to_owned()))?;
    model
        .check_input(action, map, &[])
        .map_err(|e| validation(e.to_string()))?;
    let p = Params::new(map);
    let analyzer = t.analyzer_by_arn(p.str("analyzerArn")?)?;
    let all = findings(t, analyzer, usage, now);
    let account = t.account_id.as_str();
    match action {
        "ListFindingsV2" => {
            let mut selected = filter(all, map.get("filter"), account, now)?;
            sort(&mut selected, map.get("sort"), account, now)?;
            let items: Vec<Value> = selected
                .iter()
                .map(|f| Value::Object(f.summary(account, now)))
                .collect();
            let (items, next) = page(p, items)?;
            let mut out = Map::new();
            out.insert("findings".into(), Value::Array(items));
            if let Some(next) = next {
                out.insert("nextToken".into(), next.into());
            }
            Ok(Value::Object(out))
        }
        "GetFindingV2" => {
            let id = p.str("id")?;
            let finding = all.into_iter().find(|f| f.id == id).ok_or_else(|| {
                AdminError::from(DirectoryError::ResourceNotFound(format!(
                    "Finding {} not found.",
                    crate::error::echo(id)
                )))
            })?;
            let mut out = finding.summary(account, now);
            let (details, next) = page(p, finding.details)?;
            out.insert("findingDetails".into(), Value::Array(details));
            if let Some(next) = next {
                out.insert("nextToken".into(), next.into());
            }
            Ok(Value::Object(out))
        }
        "GetFindingsStatistics" => {
            let count = |archived: bool| all.iter().filter(|f| f.archived == archived).count();
            let mut by_type: Vec<(&str, usize)> = Vec::new();
            for f in all.iter().filter(|f| !f.archived) {
                match by_type.iter_mut().find(|(t, _)| *t == f.finding_type) {
                    Some((_, n)) => *n += 1,
                    None => by_type.push((f.finding_type, 1)),
                }
            }
            by_type.sort_unstable();
            let types: Vec<Value> = by_type
                .iter()
                .map(|(t, n)| json!({ "unusedAccessType": t, "total": n }))
                .collect();
            let details: Map<String, Value> = by_type
                .iter()
                .map(|(t, n)| ((*t).to_owned(), (*n).into()))
                .collect();
            Ok(json!({
                "findingsStatistics": [{
                    "unusedAccessFindingsStatistics": {
                        "unusedAccessTypeStatistics": types,
                        "topAccounts": [{
                            "account": account,
                            "numberOfActiveFindings": count(false),
                            "details": details,
                        }],
                        "totalActiveFindings": count(false),
                        "totalArchivedFindings": count(true),
                        "totalResolvedFindings": 0,
                    }
                }],
                "lastUpdatedAt": render::date(now),
            }))
        }
        _ => Err(AdminError::InvalidAction(action.to_owned())),
    }
}

/// Keeps the findings every criterion of `filter` matches: `eq` (any of the values), `neq`
/// (none of them), `contains` (any as a substring), `exists`.
fn filter(
    findings: Vec<Finding>,
    filter: Option<&Value>,
    account: &str,
    now: i64,
) -> Result<Vec<Finding>, AdminError> {
    let Some(filter) = filter.and_then(Value::as_object) else {
        return Ok(findings);
    };
    struct Criterion {
        key: String,
        eq: Option<Vec<String>>,
        neq: Option<Vec<String>>,
        contains: Option<Vec<String>>,
        exists: Option<bool>,
    }
    let mut criteria = Vec::new();
    for (key, value) in filter {
        if !ATTRIBUTES.contains(&key.as_str()) {
            return Err(validation(format!(
                "Invalid filter key: {}. Valid keys: {}.",
                crate::error::echo(key),
                ATTRIBUTES.join(", ")
            )));
        }
        let list = |name: &str| -> Result<Option<Vec<String>>, AdminError> {
            let Some(v) = value.get(name).filter(|v| !v.is_null()) else {
                return Ok(None);
            };
            let items = v
                .as_array()
                .filter(|a| (1..=20).contains(&a.len()))
                .ok_or_else(|| {
                    validation(format!(
                    "Invalid value for filter.{key}.{name}: expected a list of 1 to 20 strings."
                ))
                })?;
            items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_owned).ok_or_else(|| {
                        validation(format!(
                            "Invalid value for filter.{key}.{name}: expected strings."
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        };
        let criterion = Criterion {
            key: key.clone(),
            eq: list("eq")?,
            neq: list("neq")?,
            contains: list("contains")?,
            exists: value.get("exists").and_then(Value::as_bool),
        };
        if criterion.eq.is_none()
            && criterion.neq.is_none()
            && criterion.contains.is_none()
            && criterion.exists.is_none()
        {
            return Err(validation(format!(
                "Invalid value for filter.{key}: a criterion needs eq, neq, contains or exists."
            )));
        }
        criteria.push(criterion);
    }
    Ok(findings
        .into_iter()
        .filter(|f| {
            criteria.iter().all(|c| {
                let value = f.attribute(&c.key, account, now);
                let text = value.as_deref().unwrap_or_default();
                c.eq.as_ref().is_none_or(|vs| vs.iter().any(|v| v == text))
                    && c.neq.as_ref().is_none_or(|vs| vs.iter().all(|v| v != text))
                    && c.contains
                        .as_ref()
                        .is_none_or(|vs| vs.iter().any(|v| text.contains(v.as_str())))
                    && c.exists.is_none_or(|e| e == value.is_some())
            })
        })
        .collect())
}

/// Sorts by `sort.attributeName` (`orderBy` `ASC`, the default, or `DESC`); without `sort`
/// the findings stay by resource, then type.
fn sort(
    findings: &mut [Finding],
    sort: Option<&Value>,
    account: &str,
    now: i64,
) -> Result<(), AdminError> {
    let Some(sort) = sort.filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let Some(name) = sort.get("attributeName").and_then(Value::as_str) else {
        return Ok(());
    };
    if !ATTRIBUTES.contains(&name) {
        return Err(validation(format!(
            "Invalid value for sort.attributeName: {}. Valid values: {}.",
            crate::error::echo(name),
            ATTRIBUTES.join(", ")
        )));
    }
    let descending = match sort.get("orderBy").and_then(Value::as_str) {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(other) => {
            return Err(validation(format!(
                "Invalid value for sort.orderBy: {}. Valid values: ASC, DESC.",
                crate::error::echo(other)
            )))
        }
    };
    findings.sort_by(|a, b| {
        let order: Ordering = a
            .attribute(name, account, now)
            .cmp(&b.attribute(name, account, now))
            .then_with(|| a.id.cmp(&b.id));
        if descending {
            order.reverse()
        } else {
            order
        }
    });
    Ok(())
}

const TOKEN_PREFIX: &str = "iamlet-findings-1:";

/// One page of `items`: `maxResults` 1..=1000 (default 100) from the position `nextToken`
/// names.
fn page(p: Params<'_>, items: Vec<Value>) -> Result<(Vec<Value>, Option<String>), AdminError> {
    let max = match p.opt_u32("maxResults")? {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(n) => {
            return Err(validation(format!(
                "Invalid value for maxResults: {n}. It must be between 1 and 1000."
            )))
        }
    };
    let max = usize::try_from(max).unwrap_or(100);
    let start: usize = match p.opt_str("nextToken")? {
        None => 0,
        Some(token) => BASE64URL_NOPAD
            .decode(token.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix(TOKEN_PREFIX).and_then(|n| n.parse().ok()))
            .ok_or_else(|| {
                validation("Invalid value for nextToken: not a token this listing returned.")
            })?,
    };
    let end = start.saturating_add(max);
    let next = (end < items.len())
        .then(|| BASE64URL_NOPAD.encode(format!("{TOKEN_PREFIX}{end}").as_bytes()));
    Ok((items.into_iter().skip(start).take(max).collect(), next))
}

#[cfg(test)]
mod tests;
