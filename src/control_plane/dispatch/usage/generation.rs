//! IAM Access Analyzer's policy generation (`StartPolicyGeneration`, `GetGeneratedPolicy`,
//! `ListPolicyGenerations`, `CancelPolicyGeneration`), from the usage the sidecars report
//! instead of a CloudTrail trail (issue #17, item 8).
//!
//! The usage holds, per principal, service and action, the last time it was allowed; no
//! resources. So the policy is action level, each action on its resource types' ARN formats
//! with AWS's `${...}` placeholders (`includeResourcePlaceholders`; the partition and account
//! filled in) or on `"*"`, as Access Analyzer writes when it cannot see a resource. For the
//! resources themselves, generate from the decision log (`iamlet policy generate`).
//!
//! The window: an action is included when its last use is at or after `startTime`
//! (`cloudTrailDetails.startTime`; without it, the whole tracking period). Last-accessed data
//! cannot tell whether an action last used after `endTime` was also used before it, so
//! `endTime` cannot narrow the result: it is checked (not before `startTime`) and reported,
//! and the window honoured is `[startTime, now]`. `includeServiceLevelTemplate` is accepted
//! and has no effect (every service is tracked at action level).
//!
//! A job is computed when it is started, so it is `SUCCEEDED` at once and cancelling it
//! changes nothing. Jobs live in memory in the replica that started them (as the Access
//! Advisor jobs do), at most [`MAX_JOBS`], and are lost on restart.

use std::collections::{BTreeSet, VecDeque};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::super::params::Params;
use super::super::render;
use crate::authz::generate::{self, principal_matches};
use crate::control_plane::store::UsageBatch;
use crate::control_plane::AdminError;
use crate::directory::{DirectoryError, IdGenerator, Tenant};
use crate::policy::{parse_policy_date, ArnParts};

/// The actions served here.
pub(crate) const GENERATION_ACTIONS: &[&str] = &[
    "StartPolicyGeneration",
    "GetGeneratedPolicy",
    "ListPolicyGenerations",
    "CancelPolicyGeneration",
];

/// The most jobs kept per replica; the oldest are forgotten first.
pub(crate) const MAX_JOBS: usize = 1000;

/// The usage tracking period: without a start time, every action used within it counts.
const TRACKING_PERIOD_SECONDS: i64 = crate::control_plane::usage::TRACKING_PERIOD_SECONDS;

/// One policy generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GenerationJob {
    id: String,
    account_id: String,
    principal_arn: String,
    started_on: i64,
    start_time: i64,
    end_time: i64,
    /// `service:Action`, as the usage names them, used within the window.
    actions: Vec<String>,
}

/// The jobs of this replica.
#[derive(Debug, Default)]
pub(crate) struct PolicyGenerations {
    jobs: Mutex<VecDeque<GenerationJob>>,
}

// === impl PolicyGenerations ===

impl PolicyGenerations {
    fn add(&self, job: GenerationJob) {
        let mut jobs = self.jobs.lock();
        while jobs.len() >= MAX_JOBS {
            jobs.pop_front();
        }
        jobs.push_back(job);
    }

    fn find(&self, account_id: &str, id: &str) -> Result<GenerationJob, AdminError> {
        self.jobs
            .lock()
            .iter()
            .find(|j| j.id == id && j.account_id == account_id)
            .cloned()
            .ok_or_else(|| {
                DirectoryError::ResourceNotFound(format!(
                    "Could not find a policy generation job with the id {}.",
                    crate::error::echo(id)
                ))
                .into()
            })
    }

    /// Forgets a deleted tenant's jobs.
    pub(crate) fn forget(&self, account_id: &str) {
        self.jobs.lock().retain(|j| j.account_id != account_id);
    }
}

/// Runs one of [`GENERATION_ACTIONS`].
pub(crate) fn run(
    tenant: &Tenant,
    usage: &UsageBatch,
    jobs: &PolicyGenerations,
    ids: &mut IdGenerator,
    now: i64,
    action: &str,
    map: &Map<String, Value>,
) -> Result<Value, AdminError> {
    let model = crate::control_plane::api_model::ApiModel::embedded()
        .map_err(|e| AdminError::Internal(e.to_owned()))?;
    model.check_input(action, map, &[])?;
    let p = Params::new(map);
    match action {
        "StartPolicyGeneration" => {
            let principal = map
                .get("policyGenerationDetails")
                .and_then(|d| d.get("principalArn"))
                .and_then(Value::as_str)
                .ok_or_else(|| AdminError::MissingParameter("principalArn".into()))?;
            if ArnParts::split(principal).map(|a| a.account()) != Some(&*tenant.account_id) {
                return Err(validation(format!(
                    "The principal {} is not in the account {}.",
                    crate::error::echo(principal),
                    tenant.account_id
                )));
            }
            let trail = map.get("cloudTrailDetails");
            let start_time = match trail.and_then(|t| t.get("startTime")) {
                Some(v) => time(v, "startTime")?,
                None => now.saturating_sub(TRACKING_PERIOD_SECONDS),
            };
            let end_time = match trail.and_then(|t| t.get("endTime")) {
                Some(v) => time(v, "endTime")?,
                None => now,
            };
            if end_time < start_time {
                return Err(validation(
                    "The endTime must not be before the startTime.".to_owned(),
                ));
            }
            if start_time > now {
                return Err(validation(
                    "The startTime must not be in the future.".to_owned(),
                ));
            }
            let actions: BTreeSet<String> = usage
                .services
                .iter()
                .filter(|s| principal_matches(principal, &s.principal_arn))
                .flat_map(|s| {
                    s.actions
                        .iter()
                        .filter(|a| a.last_accessed >= start_time)
                        .map(move |a| format!("{}:{}", s.service, a.action))
                })
                .collect();
            let id = super::job_id(ids);
            jobs.add(GenerationJob {
                id: id.clone(),
                account_id: tenant.account_id.clone(),
                principal_arn: principal.to_owned(),
                started_on: now,
                start_time,
                end_time,
                actions: actions.into_iter().collect(),
            });
            Ok(json!({ "jobId": id }))
        }
        "GetGeneratedPolicy" => {
            let job = jobs.find(&tenant.account_id, p.str("jobId")?)?;
            let placeholders = p.bool_or("includeResourcePlaceholders", false)?;
            let partition = ArnParts::split(&job.principal_arn).map_or("aws", |a| a.partition());
            let policies = if job.actions.is_empty() {
                Vec::new()
            } else {
                let catalog = crate::policy::catalog::catalog()
                    .map_err(|e| AdminError::Internal(e.to_string()))?;
                let policy = generate::generate_from_actions(
                    job.actions.iter().map(String::as_str),
                    catalog,
                    placeholders,
                    partition,
                    &job.account_id,
                )
                .map_err(|e| AdminError::Internal(e.to_string()))?;
                vec![json!({ "policy": policy.json.to_string() })]
            };
            Ok(json!({
                "jobDetails": job_details(&job),
                "generatedPolicyResult": {
                    "properties": {
                        "isComplete": true,
                        "principalArn": job.principal_arn,
                        "cloudTrailProperties": {
                            "trailProperties": [],
                            "startTime": render::date(job.start_time),
                            "endTime": render::date(job.end_time),
                        },
                    },
                    "generatedPolicies": policies,
                },
            }))
        }
        "ListPolicyGenerations" => {
            let principal = p.opt_str("principalArn")?;
            let max = p.opt_u32("maxResults")?.map_or(usize::MAX, |n| n as usize);
            let from = match p.opt_str("nextToken")? {
                None => 0,
                Some(token) => token.parse::<usize>().map_err(|_| {
                    validation(format!(
                        "The nextToken {} is not valid.",
                        crate::error::echo(token)
                    ))
                })?,
            };
            let all: Vec<Value> = jobs
                .jobs
                .lock()
                .iter()
                .filter(|j| j.account_id == tenant.account_id)
                .filter(|j| principal.is_none_or(|p| p == j.principal_arn))
                .map(|j| {
                    let mut item = job_details(j);
                    if let Value::Object(fields) = &mut item {
                        fields.insert("principalArn".into(), j.principal_arn.clone().into());
                    }
                    item
                })
                .collect();
            let page: Vec<Value> = all.iter().skip(from).take(max).cloned().collect();
            let mut out = Map::new();
            out.insert("policyGenerations".into(), Value::Array(page));
            let next = from.saturating_add(max);
            if next < all.len() {
                out.insert("nextToken".into(), next.to_string().into());
            }
            Ok(Value::Object(out))
        }
        "CancelPolicyGeneration" => {
            // Computed when started: found, it is already complete and stays so.
            jobs.find(&tenant.account_id, p.str("jobId")?)?;
            Ok(json!({}))
        }
        _ => Err(AdminError::InvalidAction(action.to_owned())),
    }
}

fn job_details(job: &GenerationJob) -> Value {
    json!({
        "jobId": job.id,
        "status": "SUCCEEDED",
        "startedOn": render::date(job.started_on),
        "completedOn": render::date(job.started_on),
    })
}

fn validation(message: String) -> AdminError {
    DirectoryError::Validation(message).into()
}

/// A timestamp parameter: ISO 8601 text or epoch seconds.
fn time(value: &Value, name: &str) -> Result<i64, AdminError> {
    let parsed = match value {
        Value::String(text) => parse_policy_date(text).map(|t| t.epoch_seconds()),
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    };
    parsed.ok_or_else(|| AdminError::InvalidParameterValue {
        name: name.to_owned(),
        reason: "must be a timestamp".to_owned(),
    })
}

#[cfg(test)]
mod tests;
