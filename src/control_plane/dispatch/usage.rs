//! The actions that answer from the usage the sidecars report (issue #17): last used
//! (`GetAccessKeyLastUsed`, `GetRole`'s `RoleLastUsed`), Access Advisor
//! (`GenerateServiceLastAccessedDetails`, `GetServiceLastAccessedDetails`,
//! `GetServiceLastAccessedDetailsWithEntities`) and the credential report
//! (`GenerateCredentialReport`, `GetCredentialReport`).
//!
//! [`dispatch`](super::dispatch) stays a pure function of the tenant: the control plane reads
//! the tenant's usage from the store and calls [`run_with_usage`] for the actions
//! [`reads_usage`] names, which runs `dispatch` for the plain ones and lays the usage over its
//! result.
//!
//! Semantics as AWS's: activity older than the tracking period (400 days) is not reported;
//! an access key never used reads `N/A`; a user's `PasswordLastUsed` is left out, since the
//! control plane records no console sign-ins (AWS leaves it out when it has none). Jobs and
//! reports are computed when generated, so a job is `COMPLETED` and a report `COMPLETE` at
//! once; a report younger than 4 hours is reused, and served until it is 4 hours old.

use std::collections::{BTreeMap, BTreeSet};

mod generation;

pub(crate) use generation::PolicyGenerations;

use data_encoding::{BASE64, BASE64URL_NOPAD};
use serde_json::{json, Map, Value};

use super::params::{invalid, Params};
use super::render::{self, finish};
use crate::control_plane::store::UsageBatch;
use crate::control_plane::usage::{
    AdvisorJob, CredentialReport, EntityRef, Granularity, ServiceAccess, TrackedAction, UsageState,
    REPORT_REUSE_SECONDS, TRACKING_PERIOD_SECONDS,
};
use crate::control_plane::AdminError;
use crate::directory::{
    aws_managed_policy, AccessKeyStatus, DirectoryError, IdGenerator, PasswordHasher, Tenant,
};
use crate::error::AwsCode;
use crate::policy::Timestamp;

/// The actions that answer from usage: the control plane routes them to [`run_with_usage`].
pub(crate) const USAGE_ACTIONS: &[&str] = &[
    "GetAccessKeyLastUsed",
    "GetRole",
    "GenerateServiceLastAccessedDetails",
    "GetServiceLastAccessedDetails",
    "GetServiceLastAccessedDetailsWithEntities",
    "GenerateCredentialReport",
    "GetCredentialReport",
];

/// Whether `action` answers from the tenant's usage.
pub(crate) fn reads_usage(action: &str) -> bool {
    USAGE_ACTIONS.contains(&action)
        || generation::GENERATION_ACTIONS.contains(&action)
        || super::unused::FINDINGS_ACTIONS.contains(&action)
}

/// AWS's names of the service namespaces Access Advisor lists; any other namespace is named
/// by itself.
const SERVICE_NAMES: &[(&str, &str)] = &[
    ("apigateway", "Amazon API Gateway"),
    ("cloudformation", "AWS CloudFormation"),
    ("cloudwatch", "Amazon CloudWatch"),
    ("dynamodb", "Amazon DynamoDB"),
    ("ec2", "Amazon EC2"),
    ("ecr", "Amazon Elastic Container Registry"),
    ("eks", "Amazon Elastic Container Service for Kubernetes"),
    ("iam", "AWS Identity and Access Management"),
    ("kms", "AWS Key Management Service"),
    ("lambda", "AWS Lambda"),
    ("logs", "Amazon CloudWatch Logs"),
    ("rds", "Amazon RDS"),
    ("s3", "Amazon S3"),
    ("secretsmanager", "AWS Secrets Manager"),
    ("sns", "Amazon SNS"),
    ("sqs", "Amazon SQS"),
    ("ssm", "AWS Systems Manager"),
    ("sts", "AWS Security Token Service"),
];

/// The services AWS tracks at action level.
const ACTION_LEVEL_SERVICES: &[&str] = &["ec2", "iam", "lambda", "s3"];

/// The credential report's columns, in AWS's order.
pub(crate) const REPORT_COLUMNS: &[&str] = &[
    "user",
    "arn",
    "user_creation_time",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "password_next_rotation",
    "mfa_active",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
];

/// What answering from usage needs besides the tenant and its usage.
pub(crate) struct UsageContext<'a> {
    /// Jobs and reports.
    pub(crate) state: &'a UsageState,
    /// Job ids.
    pub(crate) ids: &'a mut IdGenerator,
    /// For the plain actions run through `dispatch`.
    pub(crate) hasher: PasswordHasher,
    /// Unix seconds.
    pub(crate) now: i64,
    /// The account password policy's maximum password age in days, when the tenant has one
    /// that sets it: the credential report's `password_next_rotation`. `None` writes `N/A`.
    pub(crate) max_password_age_days: Option<u32>,
}

impl std::fmt::Debug for UsageContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageContext")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Runs one of [`USAGE_ACTIONS`] on `tenant` with its `usage`.
pub(crate) fn run_with_usage(
    tenant: &Tenant,
    usage: &UsageBatch,
    cx: UsageContext<'_>,
    action: &str,
    parameters: &Value,
) -> Result<Value, AdminError> {
    let empty = Map::new();
    let map = match parameters {
        Value::Object(map) => map,
        Value::Null => &empty,
        _ => {
            return Err(invalid(
                "parameters",
                "must be a JSON object of AWS parameter names to values",
            ))
        }
    };
    let p = Params::new(map);
    let UsageContext {
        state,
        ids,
        hasher,
        now,
        max_password_age_days,
    } = cx;
    match action {
        "GetAccessKeyLastUsed" | "GetRole" => {
            let mut scratch = tenant.clone();
            let mut result =
                super::dispatch(&mut scratch, ids, hasher, now, action, parameters)?.result;
            if action == "GetAccessKeyLastUsed" {
                key_last_used(usage, p.str("AccessKeyId")?, &mut result);
            } else {
                role_last_used(usage, now, &mut result);
            }
            Ok(result)
        }
        "GenerateServiceLastAccessedDetails" => {
            let granularity = match p.opt_str("Granularity")? {
                None | Some("SERVICE_LEVEL") => Granularity::ServiceLevel,
                Some("ACTION_LEVEL") => Granularity::ActionLevel,
                Some(other) => {
                    return Err(DirectoryError::Validation(format!(
                        "1 validation error detected: Value '{}' at 'granularity' failed to \
                         satisfy constraint: Member must satisfy enum value set: \
                         [SERVICE_LEVEL, ACTION_LEVEL]",
                        crate::error::echo(other)
                    ))
                    .into())
                }
            };
            let arn = p.str("Arn")?;
            let services = advisor(tenant, usage, now, arn, granularity)?;
            let id = job_id(ids);
            state.add_job(AdvisorJob {
                id: id.clone(),
                account_id: tenant.account_id.clone(),
                granularity,
                created_at: now,
                services,
            });
            Ok(json!({ "JobId": id }))
        }
        "GetServiceLastAccessedDetails" => {
            let job = find_job(state, tenant, p.str("JobId")?)?;
            let page = Window::read(p)?;
            let items: Vec<(String, Value)> = job
                .services
                .iter()
                .map(|s| (s.namespace.clone(), service_json(s, job.granularity)))
                .collect();
            let (items, marker) = page.cut(items)?;
            // In the model's order, which differs from the entities' result.
            let mut out = Map::new();
            out.insert("JobStatus".into(), "COMPLETED".into());
            out.insert("JobType".into(), job.granularity.as_str().into());
            out.insert("JobCreationDate".into(), render::date(job.created_at));
            out.insert("ServicesLastAccessed".into(), Value::Array(items));
            out.insert("JobCompletionDate".into(), render::date(job.created_at));
            finish(&mut out, marker);
            Ok(Value::Object(out))
        }
        "GetServiceLastAccessedDetailsWithEntities" => {
            let job = find_job(state, tenant, p.str("JobId")?)?;
            let namespace = p.str("ServiceNamespace")?;
            let page = Window::read(p)?;
            let items: Vec<(String, Value)> = job
                .services
                .iter()
                .find(|s| s.namespace == namespace)
                .map(|s| {
                    s.per_entity
                        .iter()
                        .map(|(entity, last)| (entity.arn.clone(), entity_json(entity, *last)))
                        .collect()
                })
                .unwrap_or_default();
            let (items, marker) = page.cut(items)?;
            let mut out = Map::new();
            out.insert("JobStatus".into(), "COMPLETED".into());
            out.insert("JobCreationDate".into(), render::date(job.created_at));
            out.insert("JobCompletionDate".into(), render::date(job.created_at));
            out.insert("EntityDetailsList".into(), Value::Array(items));
            finish(&mut out, marker);
            Ok(Value::Object(out))
        }
        "GenerateCredentialReport" => {
            let fresh = state
                .report(&tenant.account_id)
                .is_some_and(|r| now.saturating_sub(r.generated_at) < REPORT_REUSE_SECONDS);
            if fresh {
                return Ok(json!({ "State": "COMPLETE" }));
            }
            let csv = credential_report(tenant, usage, max_password_age_days);
            state.set_report(
                &tenant.account_id,
                CredentialReport {
                    generated_at: now,
                    csv,
                },
            );
            Ok(json!({
                "State": "STARTED",
                "Description": "No report exists. Starting a new report generation task",
            }))
        }
        "GetCredentialReport" => {
            let report = state
                .report(&tenant.account_id)
                .ok_or_else(|| AdminError::Report {
                    code: AwsCode::ReportNotPresent,
                    message: "Credential report not present. To generate a credential report, \
                              use GenerateCredentialReport."
                        .into(),
                })?;
            if now.saturating_sub(report.generated_at) >= REPORT_REUSE_SECONDS {
                return Err(AdminError::Report {
                    code: AwsCode::ReportExpired,
                    message: "Credential report expired. To generate a new credential report, \
                              use GenerateCredentialReport."
                        .into(),
                });
            }
            Ok(json!({
                "Content": BASE64.encode(report.csv.as_bytes()),
                "ReportFormat": "text/csv",
                "GeneratedTime": render::date(report.generated_at),
            }))
        }
        a if generation::GENERATION_ACTIONS.contains(&a) => {
            generation::run(tenant, usage, &state.generations, ids, now, a, map)
        }
        _ if super::unused::FINDINGS_ACTIONS.contains(&action) => {
            super::unused::run(tenant, usage, now, action, map)
        }
        _ => Err(AdminError::InvalidAction(action.to_owned())),
    }
}

/// `AccessKeyLastUsed` from the reported usage (the dispatch result says `N/A` for both).
fn key_last_used(usage: &UsageBatch, key_id: &str, result: &mut Value) {
    let Some(used) = usage.access_keys.iter().find(|k| k.access_key_id == key_id) else {
        return;
    };
    let mut last = Map::new();
    last.insert("LastUsedDate".into(), render::date(used.last_used));
    last.insert("ServiceName".into(), or_na(&used.service).into());
    last.insert("Region".into(), or_na(&used.region).into());
    if let Some(out) = result.as_object_mut() {
        out.insert("AccessKeyLastUsed".into(), Value::Object(last));
    }
}

/// `Role.RoleLastUsed`: the last use within the tracking period, `{}` when none (as AWS).
fn role_last_used(usage: &UsageBatch, now: i64, result: &mut Value) {
    let Some(role) = result.get_mut("Role").and_then(Value::as_object_mut) else {
        return;
    };
    let arn = role.get("Arn").and_then(Value::as_str).unwrap_or_default();
    let mut last = Map::new();
    if let Some(used) = usage
        .roles
        .iter()
        .find(|r| r.role_arn == arn && tracked(r.last_used, now))
    {
        last.insert("LastUsedDate".into(), render::date(used.last_used));
        if !used.region.is_empty() {
            last.insert("Region".into(), used.region.clone().into());
        }
    }
    role.insert("RoleLastUsed".into(), Value::Object(last));
}

fn or_na(value: &str) -> &str {
    if value.is_empty() {
        "N/A"
    } else {
        value
    }
}

/// Whether `at` is within the tracking period before `now`.
pub(super) fn tracked(at: i64, now: i64) -> bool {
    at > now.saturating_sub(TRACKING_PERIOD_SECONDS)
}

/// A job id: 36 characters, as AWS's (a random UUID).
fn job_id(ids: &mut IdGenerator) -> String {
    let mut bytes = [0u8; 16];
    ids.fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default().to_owned();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

fn find_job(state: &UsageState, tenant: &Tenant, id: &str) -> Result<AdvisorJob, AdminError> {
    state.job(&tenant.account_id, id).ok_or_else(|| {
        DirectoryError::NoSuchEntity(format!(
            "No such job exists with the JobId {}.",
            crate::error::echo(id)
        ))
        .into()
    })
}

fn service_json(s: &ServiceAccess, granularity: Granularity) -> Value {
    let mut out = Map::new();
    out.insert("ServiceName".into(), s.name.clone().into());
    if let Some((at, _, _)) = &s.last {
        out.insert("LastAuthenticated".into(), render::date(*at));
    }
    out.insert("ServiceNamespace".into(), s.namespace.clone().into());
    if let Some((_, entity, region)) = &s.last {
        out.insert("LastAuthenticatedEntity".into(), entity.clone().into());
        if !region.is_empty() {
            out.insert("LastAuthenticatedRegion".into(), region.clone().into());
        }
    }
    out.insert("TotalAuthenticatedEntities".into(), s.entities.into());
    if let (Granularity::ActionLevel, Some(actions)) = (granularity, &s.actions) {
        let tracked: Vec<Value> = actions
            .iter()
            .map(|(name, last)| {
                let mut a = Map::new();
                a.insert("ActionName".into(), name.clone().into());
                if let Some((at, entity, region)) = last {
                    a.insert("LastAccessedEntity".into(), entity.clone().into());
                    a.insert("LastAccessedTime".into(), render::date(*at));
                    if !region.is_empty() {
                        a.insert("LastAccessedRegion".into(), region.clone().into());
                    }
                }
                Value::Object(a)
            })
            .collect();
        out.insert("TrackedActionsLastAccessed".into(), Value::Array(tracked));
    }
    Value::Object(out)
}

fn entity_json(e: &EntityRef, last: Option<i64>) -> Value {
    let mut info = Map::new();
    info.insert("Arn".into(), e.arn.clone().into());
    info.insert("Name".into(), e.name.clone().into());
    info.insert("Type".into(), e.kind.into());
    info.insert("Id".into(), e.id.clone().into());
    info.insert("Path".into(), e.path.clone().into());
    let mut out = Map::new();
    out.insert("EntityInfo".into(), Value::Object(info));
    if let Some(at) = last {
        out.insert("LastAuthenticated".into(), render::date(at));
    }
    Value::Object(out)
}

/// One page over items sorted by key: `MaxItems` 1..=1000 (default 100) and a `Marker` that
/// names the last key returned, as every other listing's.
struct Window {
    max_items: usize,
    after: Option<String>,
}

const MARKER_PREFIX: &str = "iamlet-usage-marker-1:";

impl Window {
    fn read(p: Params<'_>) -> Result<Self, AdminError> {
        let max_items = match p.opt_u32("MaxItems")? {
            None => 100,
            Some(n @ 1..=1000) => n,
            Some(n) => {
                return Err(DirectoryError::Validation(format!(
                    "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy \
                     constraint: Member must have value between 1 and 1000"
                ))
                .into())
            }
        };
        let after = p
            .opt_str("Marker")?
            .map(|m| {
                BASE64URL_NOPAD
                    .decode(m.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.strip_prefix(MARKER_PREFIX).map(str::to_owned))
                    .ok_or_else(|| invalid("Marker", "is not a marker this listing returned"))
            })
            .transpose()?;
        Ok(Self {
            max_items: usize::try_from(max_items).unwrap_or(100),
            after,
        })
    }

    fn cut(
        &self,
        mut items: Vec<(String, Value)>,
    ) -> Result<(Vec<Value>, Option<String>), AdminError> {
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rest = items
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
            (Some(_), Some(last)) => {
                Some(BASE64URL_NOPAD.encode(format!("{MARKER_PREFIX}{last}").as_bytes()))
            }
            _ => None,
        };
        Ok((page, marker))
    }
}

/// The entity an Access Advisor job is about: the policy documents whose Allow statements
/// name the services, and the users and roles whose usage counts.
struct Subject {
    documents: Vec<String>,
    entities: Vec<EntityRef>,
}

fn user_ref(u: &crate::directory::User) -> EntityRef {
    EntityRef {
        arn: u.arn.clone(),
        name: u.name.clone(),
        kind: "USER",
        id: u.user_id.clone(),
        path: u.path.clone(),
    }
}

fn role_ref(r: &crate::directory::Role) -> EntityRef {
    EntityRef {
        arn: r.arn.clone(),
        name: r.name.clone(),
        kind: "ROLE",
        id: r.role_id.clone(),
        path: r.path.clone(),
    }
}

/// The default version's document of the managed policy `arn` (customer or AWS-managed).
fn managed_document(t: &Tenant, arn: &str) -> Option<String> {
    if let Some(p) = aws_managed_policy(arn) {
        return Some(p.document.to_owned());
    }
    let p = t.get_policy(arn).ok()?;
    p.versions
        .iter()
        .find(|v| v.version_id == p.default_version_id)
        .map(|v| v.document.clone())
}

fn group_documents(t: &Tenant, name: &str) -> Vec<String> {
    let Ok((g, _)) = t.get_group(name) else {
        return Vec::new();
    };
    let mut docs: Vec<String> = g.inline_policies.values().cloned().collect();
    docs.extend(
        g.attached_policies
            .iter()
            .filter_map(|a| managed_document(t, a)),
    );
    docs
}

fn subject(t: &Tenant, arn: &str) -> Result<Subject, AdminError> {
    if let Some(u) = t.users.values().find(|u| u.arn == arn) {
        let mut documents: Vec<String> = u.inline_policies.values().cloned().collect();
        documents.extend(
            u.attached_policies
                .iter()
                .filter_map(|a| managed_document(t, a)),
        );
        for g in &u.groups {
            documents.extend(group_documents(t, g));
        }
        return Ok(Subject {
            documents,
            entities: vec![user_ref(u)],
        });
    }
    if let Some(r) = t.roles.values().find(|r| r.arn == arn) {
        let mut documents: Vec<String> = r.inline_policies.values().cloned().collect();
        documents.extend(
            r.attached_policies
                .iter()
                .filter_map(|a| managed_document(t, a)),
        );
        return Ok(Subject {
            documents,
            entities: vec![role_ref(r)],
        });
    }
    if let Some(g) = t.groups.values().find(|g| g.arn == arn) {
        let (_, members) = t.get_group(&g.name)?;
        return Ok(Subject {
            documents: group_documents(t, &g.name),
            entities: members.into_iter().map(user_ref).collect(),
        });
    }
    if let Some(document) = managed_document(t, arn) {
        // Whoever the policy is attached to: users and roles directly, users through groups.
        let groups: BTreeSet<&str> = t
            .groups
            .values()
            .filter(|g| g.attached_policies.iter().any(|a| a == arn))
            .map(|g| g.name.as_str())
            .collect();
        let mut entities: Vec<EntityRef> = t
            .users
            .values()
            .filter(|u| {
                u.attached_policies.iter().any(|a| a == arn)
                    || u.groups.iter().any(|g| groups.contains(g.as_str()))
            })
            .map(user_ref)
            .collect();
        entities.extend(
            t.roles
                .values()
                .filter(|r| r.attached_policies.iter().any(|a| a == arn))
                .map(role_ref),
        );
        return Ok(Subject {
            documents: vec![document],
            entities,
        });
    }
    if !arn.starts_with("arn:") {
        return Err(DirectoryError::InvalidInput(format!(
            "ARN {} is not valid.",
            crate::error::echo(arn)
        ))
        .into());
    }
    Err(DirectoryError::NoSuchEntity(format!(
        "The entity with ARN {} cannot be found.",
        crate::error::echo(arn)
    ))
    .into())
}

/// The `Action` patterns of the Allow statements of `documents`, as written.
fn allowed_patterns(documents: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for doc in documents {
        let Ok(value) = serde_json::from_str::<Value>(doc) else {
            continue;
        };
        let statements = match value.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        for s in statements {
            if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
                continue;
            }
            match s.get("Action") {
                Some(Value::String(a)) => out.push(a.clone()),
                Some(Value::Array(items)) => {
                    out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
                }
                _ => {}
            }
        }
    }
    out
}

/// IAM's wildcard match, ASCII case-insensitive: `*` any run, `?` one character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some(b'*'), _) => {
                star = Some((p, t));
                p += 1;
            }
            (Some(pc), Some(tc)) if *pc == b'?' || pc.eq_ignore_ascii_case(tc) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

fn allows(patterns: &[String], action: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob(p.as_bytes(), action.as_bytes()))
}

fn service_name(namespace: &str) -> String {
    SERVICE_NAMES
        .iter()
        .find(|(ns, _)| *ns == namespace)
        .map_or_else(|| namespace.to_owned(), |(_, name)| (*name).to_owned())
}

/// An Access Advisor job's result for the entity `arn`: every service its policies allow
/// (a wildcard service matched against the known namespaces and those used), with the
/// latest use of each by the job's entities within the tracking period.
pub(super) fn advisor(
    t: &Tenant,
    usage: &UsageBatch,
    now: i64,
    arn: &str,
    granularity: Granularity,
) -> Result<Vec<ServiceAccess>, AdminError> {
    let subject = subject(t, arn)?;
    let patterns = allowed_patterns(&subject.documents);
    let members: BTreeSet<&str> = subject.entities.iter().map(|e| e.arn.as_str()).collect();
    let uses: Vec<_> = usage
        .services
        .iter()
        .filter(|s| members.contains(s.principal_arn.as_str()))
        .collect();
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    for p in &patterns {
        match p.split_once(':') {
            Some((ns, _)) if !ns.contains(['*', '?']) => {
                namespaces.insert(ns.to_ascii_lowercase());
            }
            _ => {
                // A wildcard service: every namespace it matches that iamlet can name.
                let service = p.split_once(':').map_or(p.as_str(), |(ns, _)| ns);
                let known = SERVICE_NAMES
                    .iter()
                    .map(|(ns, _)| (*ns).to_owned())
                    .chain(uses.iter().map(|u| u.service.clone()));
                for ns in known {
                    if glob(service.as_bytes(), ns.as_bytes()) {
                        namespaces.insert(ns);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for ns in namespaces {
        let in_service: Vec<_> = uses
            .iter()
            .filter(|u| u.service == ns && tracked(u.last_authenticated, now))
            .collect();
        let last = in_service
            .iter()
            .max_by_key(|u| u.last_authenticated)
            .map(|u| {
                (
                    u.last_authenticated,
                    u.principal_arn.clone(),
                    u.region.clone(),
                )
            });
        let per_entity = subject
            .entities
            .iter()
            .map(|e| {
                let at = in_service
                    .iter()
                    .filter(|u| u.principal_arn == e.arn)
                    .map(|u| u.last_authenticated)
                    .max();
                (e.clone(), at)
            })
            .collect();
        let entities = in_service
            .iter()
            .map(|u| u.principal_arn.as_str())
            .collect::<BTreeSet<_>>()
            .len();
        let actions = (granularity == Granularity::ActionLevel
            && ACTION_LEVEL_SERVICES.contains(&ns.as_str()))
        .then(|| tracked_actions(&patterns, &ns, &in_service, now));
        out.push(ServiceAccess {
            name: service_name(&ns),
            namespace: ns,
            last,
            entities,
            actions,
            per_entity,
        });
    }
    Ok(out)
}

/// The actions of a service tracked at action level: those the policies name outright and
/// those used (and still allowed), each with its latest access. Actions meet whatever their
/// case; a reported name is shown as reported, else as the policy writes it.
fn tracked_actions(
    patterns: &[String],
    ns: &str,
    in_service: &[&&crate::control_plane::store::ServiceUsage],
    now: i64,
) -> Vec<TrackedAction> {
    let mut actions: BTreeMap<String, TrackedAction> = BTreeMap::new();
    for p in patterns {
        if let Some((pns, name)) = p.split_once(':') {
            if pns.eq_ignore_ascii_case(ns) && !name.contains(['*', '?']) {
                actions
                    .entry(name.to_ascii_lowercase())
                    .or_insert_with(|| (name.to_owned(), None));
            }
        }
    }
    for u in in_service {
        for a in &u.actions {
            if !tracked(a.last_accessed, now) || !allows(patterns, &format!("{ns}:{}", a.action)) {
                continue;
            }
            let entry = actions
                .entry(a.action.to_ascii_lowercase())
                .or_insert_with(|| (a.action.clone(), None));
            entry.0.clone_from(&a.action);
            if entry
                .1
                .as_ref()
                .is_none_or(|(at, _, _)| a.last_accessed > *at)
            {
                entry.1 = Some((a.last_accessed, u.principal_arn.clone(), a.region.clone()));
            }
        }
    }
    actions.into_values().collect()
}

/// A time as the credential report writes it (`2026-01-02T03:04:05+00:00`).
fn report_time(secs: i64) -> String {
    let text = Timestamp::from_epoch_seconds(secs).to_string();
    match text.strip_suffix('Z') {
        Some(base) => format!("{base}+00:00"),
        None => text,
    }
}

/// One access key's five columns: active, last rotated, last used date, region, service.
fn key_columns(key: Option<(&str, bool, i64)>, usage: &UsageBatch) -> [String; 5] {
    let na = || "N/A".to_owned();
    let Some((id, active, created)) = key else {
        return ["false".into(), na(), na(), na(), na()];
    };
    let used = usage.access_keys.iter().find(|k| k.access_key_id == id);
    [
        active.to_string(),
        report_time(created),
        used.map_or_else(na, |u| report_time(u.last_used)),
        used.map_or_else(na, |u| or_na(&u.region).to_owned()),
        used.map_or_else(na, |u| or_na(&u.service).to_owned()),
    ]
}

/// The credential report's CSV: the header, the `<root_account>` row, then each user by
/// name. `max_password_age_days` (the account password policy's) gives
/// `password_next_rotation`; without it the column is `N/A`.
pub(crate) fn credential_report(
    t: &Tenant,
    usage: &UsageBatch,
    max_password_age_days: Option<u32>,
) -> String {
    let mut out = REPORT_COLUMNS.join(",");
    out.push('\n');
    let mut row = |cells: Vec<String>| {
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    };
    let root_key = t
        .root_access_key
        .as_ref()
        .map(|k| (k.access_key_id.as_str(), true, k.created_at));
    let mut root = vec![
        "<root_account>".to_owned(),
        format!("arn:aws:iam::{}:root", t.account_id),
        report_time(t.created_at),
        "not_supported".into(),
        // The root user signs in with its access key only; no sign-in is recorded.
        "no_information".into(),
        "not_supported".into(),
        "not_supported".into(),
        "false".into(),
    ];
    root.extend(key_columns(root_key, usage));
    root.extend(key_columns(None, usage));
    root.extend(["false", "N/A", "false", "N/A"].map(str::to_owned));
    row(root);
    let mut users: Vec<_> = t.users.values().collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    for u in users {
        let password = u.login_profile.as_ref();
        let changed = password.map(|p| p.password_changed_at.unwrap_or(p.created_at));
        let next_rotation = match (changed, max_password_age_days) {
            (Some(at), Some(days)) => {
                report_time(at.saturating_add(i64::from(days).saturating_mul(86_400)))
            }
            _ => "N/A".into(),
        };
        let mut keys: Vec<_> = u.access_keys.iter().collect();
        keys.sort_by_key(|k| k.created_at);
        let key = |i: usize| {
            keys.get(i).map(|k| {
                (
                    k.access_key_id.as_str(),
                    k.status == AccessKeyStatus::Active,
                    k.created_at,
                )
            })
        };
        let mut cells = vec![
            u.name.clone(),
            u.arn.clone(),
            report_time(u.created_at),
            password.is_some().to_string(),
            // No console sign-in is recorded: `no_information` for a password, as AWS
            // writes for one never used.
            if password.is_some() {
                "no_information".into()
            } else {
                "N/A".into()
            },
            changed.map_or_else(|| "N/A".into(), report_time),
            next_rotation,
            (!u.mfa_devices.is_empty()).to_string(),
        ];
        cells.extend(key_columns(key(0), usage));
        cells.extend(key_columns(key(1), usage));
        // iamlet has no signing certificates.
        cells.extend(["false", "N/A", "false", "N/A"].map(str::to_owned));
        row(cells);
    }
    out
}

/// A CSV cell, quoted when it holds a comma, quote or line break (user names and ARNs never
/// do; a path may hold a comma).
fn csv_cell(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests;
