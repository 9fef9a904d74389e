//! Usage reported by the sidecars (issue #17): what the control plane accepts from a sync
//! stream, and the in-memory state of the reading actions built on it (Access Advisor jobs
//! and credential reports).
//!
//! A sidecar sends, on its sync stream, the latest time each access key, principal and
//! service, action and role was used. A report is refused whole, and counted, when the
//! stream is not admitted to its tenant, the tenant is unknown, or it is malformed or
//! oversized ([`validate`]); the stream and its snapshot traffic go on either way. Accepted
//! reports are merged into the store's [`UsageLog`](super::UsageLog), one transaction per
//! report, never as a tenant change.
//!
//! Jobs and reports are kept in memory, bounded ([`MAX_JOBS`], one report per tenant): they
//! are cheap to make again, and a replica that never saw a job answers `NoSuchEntity` for it
//! as AWS does for an unknown id.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::store::UsageBatch;

/// The most entries (keys, services, actions and roles together) one report may hold.
pub const MAX_USAGE_ENTRIES: usize = 10_000;

/// How far past the control plane's clock a reported time may be: sidecars' clocks drift a
/// little, never by hours.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// AWS's tracking period: activity older than this is not reported.
pub const TRACKING_PERIOD_SECONDS: i64 = 400 * 86_400;

/// How long a credential report is reused, and served, after it was generated (AWS's rule).
pub const REPORT_REUSE_SECONDS: i64 = 4 * 3_600;

/// The Access Advisor jobs kept at most; the oldest is forgotten first.
pub(crate) const MAX_JOBS: usize = 1_000;

/// The longest text a report's identifiers, names and regions may be.
const MAX_TEXT: usize = 2_048;

/// Why a usage report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageReportError {
    /// The stream may not see this tenant.
    #[error("the stream is not admitted to tenant `{0}`")]
    NotAdmitted(String),
    /// The control plane holds no such tenant.
    #[error("tenant `{0}` does not exist")]
    UnknownTenant(String),
    /// More entries than [`MAX_USAGE_ENTRIES`].
    #[error("the report holds {count} entries, more than the {max} allowed")]
    TooLarge {
        /// The entries in the report.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An entry is malformed.
    #[error("{0}")]
    Malformed(String),
}

/// Counts of the usage reports a control plane received.
#[derive(Debug, Default)]
pub struct UsageCounters {
    /// Reports merged into the store.
    pub accepted: AtomicU64,
    /// Reports for tenants the stream is not admitted to (or that do not exist).
    pub refused_not_admitted: AtomicU64,
    /// Malformed or oversized reports.
    pub refused_malformed: AtomicU64,
    /// Valid reports the store failed to record.
    pub failed: AtomicU64,
}

impl UsageCounters {
    /// Counts `outcome` of one report.
    pub(crate) fn count(&self, outcome: &Result<(), UsageReportError>) {
        let counter = match outcome {
            Ok(()) => &self.accepted,
            Err(UsageReportError::NotAdmitted(_) | UsageReportError::UnknownTenant(_)) => {
                &self.refused_not_admitted
            }
            Err(UsageReportError::TooLarge { .. } | UsageReportError::Malformed(_)) => {
                &self.refused_malformed
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks a report before it is merged: at most [`MAX_USAGE_ENTRIES`] entries; every id,
/// name and region well formed; every principal and role ARN an IAM user or role of the
/// report's own tenant; every time after the epoch and at most [`MAX_CLOCK_SKEW_SECONDS`]
/// past `now`.
pub(crate) fn validate(batch: &UsageBatch, now: i64) -> Result<(), UsageReportError> {
    let count = batch.access_keys.len()
        + batch.roles.len()
        + batch
            .services
            .iter()
            .map(|s| 1 + s.actions.len())
            .sum::<usize>();
    if count > MAX_USAGE_ENTRIES {
        return Err(UsageReportError::TooLarge {
            count,
            max: MAX_USAGE_ENTRIES,
        });
    }
    let account = batch.account_id.as_str();
    for k in &batch.access_keys {
        word("access key id", &k.access_key_id, 16, 128, |c| {
            c.is_ascii_alphanumeric()
        })?;
        time("access key", k.last_used, now)?;
        service("access key", &k.service)?;
        region(&k.region)?;
    }
    for s in &batch.services {
        principal(account, &s.principal_arn, &["user/", "role/"])?;
        service("principal", &s.service)?;
        time("service", s.last_authenticated, now)?;
        region(&s.region)?;
        for a in &s.actions {
            word("action", &a.action, 1, 128, |c| c.is_ascii_alphanumeric())?;
            time("action", a.last_accessed, now)?;
            region(&a.region)?;
        }
    }
    for r in &batch.roles {
        principal(account, &r.role_arn, &["role/"])?;
        time("role", r.last_used, now)?;
        region(&r.region)?;
    }
    Ok(())
}

fn malformed(text: String) -> UsageReportError {
    UsageReportError::Malformed(text)
}

/// A non-empty word of `min..=max` characters that all satisfy `allowed`; shown escaped.
fn word(
    what: &str,
    value: &str,
    min: usize,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), UsageReportError> {
    let len = value.chars().count();
    if len < min || len > max || !value.chars().all(allowed) {
        return Err(malformed(format!(
            "the {what} `{}` is not well formed",
            crate::error::echo(value)
        )));
    }
    Ok(())
}

fn time(what: &str, at: i64, now: i64) -> Result<(), UsageReportError> {
    if at <= 0 {
        return Err(malformed(format!("a {what} time is not after 1970")));
    }
    if at > now.saturating_add(MAX_CLOCK_SKEW_SECONDS) {
        return Err(malformed(format!(
            "a {what} time is {} seconds in the future",
            at.saturating_sub(now)
        )));
    }
    Ok(())
}

/// A service namespace (`s3`, `execute-api`): required for services, may be empty for an
/// access key whose last request named none.
fn service(what: &str, value: &str) -> Result<(), UsageReportError> {
    if value.is_empty() && what == "access key" {
        return Ok(());
    }
    word("service namespace", value, 1, 64, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
}

/// A region (`eu-west-1`), or empty when the request named none.
fn region(value: &str) -> Result<(), UsageReportError> {
    if value.is_empty() {
        return Ok(());
    }
    word("region", value, 1, 64, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
}

/// An IAM ARN of `account` whose resource starts with one of `kinds` (`user/`, `role/`).
fn principal(account: &str, arn: &str, kinds: &[&str]) -> Result<(), UsageReportError> {
    let bad = || {
        malformed(format!(
            "`{}` is not the ARN of a {} of tenant {}",
            crate::error::echo(arn),
            kinds
                .iter()
                .map(|k| k.trim_end_matches('/'))
                .collect::<Vec<_>>()
                .join(" or "),
            crate::error::echo(account)
        ))
    };
    if arn.len() > MAX_TEXT || arn.chars().any(char::is_control) {
        return Err(bad());
    }
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(owner), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    let named = kinds.iter().any(|k| {
        resource
            .strip_prefix(k)
            .is_some_and(|rest| !rest.is_empty())
    });
    if partition.is_empty() || owner != account || !named {
        return Err(bad());
    }
    Ok(())
}

/// Access Advisor's granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Granularity {
    /// Services only.
    ServiceLevel,
    /// Services, and actions of the services tracked at action level.
    ActionLevel,
}

impl Granularity {
    /// AWS's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ServiceLevel => "SERVICE_LEVEL",
            Self::ActionLevel => "ACTION_LEVEL",
        }
    }
}

/// The latest access of something: when, by which entity (its ARN), in which region (empty:
/// none named).
pub(crate) type LastAccess = (i64, String, String);

/// An action tracked at action level, and its latest access if any.
pub(crate) type TrackedAction = (String, Option<LastAccess>);

/// One service of a finished Access Advisor job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceAccess {
    /// The namespace (`s3`).
    pub(crate) namespace: String,
    /// AWS's name (`Amazon S3`).
    pub(crate) name: String,
    /// The latest authentication of any of the job's entities, within the tracking period:
    /// (when, which entity's ARN, region).
    pub(crate) last: Option<LastAccess>,
    /// How many of the job's entities authenticated for the service in the period.
    pub(crate) entities: usize,
    /// At action level, for a service tracked there: each allowed action, with its latest
    /// access (when, entity, region) if any.
    pub(crate) actions: Option<Vec<TrackedAction>>,
    /// Each of the job's entities and its latest authentication for the service.
    pub(crate) per_entity: Vec<(EntityRef, Option<i64>)>,
}

/// An entity as `EntityInfo` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntityRef {
    /// Its ARN.
    pub(crate) arn: String,
    /// Its name.
    pub(crate) name: String,
    /// `USER` or `ROLE`.
    pub(crate) kind: &'static str,
    /// Its unique id.
    pub(crate) id: String,
    /// Its path.
    pub(crate) path: String,
}

/// A finished Access Advisor job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdvisorJob {
    /// The job's id (36 characters).
    pub(crate) id: String,
    /// The tenant it belongs to.
    pub(crate) account_id: String,
    /// Its granularity.
    pub(crate) granularity: Granularity,
    /// When it was created (and completed: jobs are computed at once).
    pub(crate) created_at: i64,
    /// The services the entity's policies allow, by namespace.
    pub(crate) services: Vec<ServiceAccess>,
}

/// A generated credential report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialReport {
    /// When it was generated.
    pub(crate) generated_at: i64,
    /// The CSV.
    pub(crate) csv: String,
}

/// The reading actions' in-memory state: Access Advisor jobs (at most [`MAX_JOBS`]) and the
/// latest credential report of each tenant.
#[derive(Debug, Default)]
pub(crate) struct UsageState {
    jobs: Mutex<VecDeque<AdvisorJob>>,
    reports: Mutex<HashMap<String, CredentialReport>>,
    /// Access Analyzer's policy generations.
    pub(crate) generations: super::dispatch::PolicyGenerations,
}

impl UsageState {
    /// Keeps `job`, forgetting the oldest beyond [`MAX_JOBS`].
    pub(crate) fn add_job(&self, job: AdvisorJob) {
        let mut jobs = self.jobs.lock();
        while jobs.len() >= MAX_JOBS {
            jobs.pop_front();
        }
        jobs.push_back(job);
    }

    /// The job `id` of tenant `account_id` (another tenant's job is not found).
    pub(crate) fn job(&self, account_id: &str, id: &str) -> Option<AdvisorJob> {
        self.jobs
            .lock()
            .iter()
            .find(|j| j.id == id && j.account_id == account_id)
            .cloned()
    }

    /// The tenant's latest credential report.
    pub(crate) fn report(&self, account_id: &str) -> Option<CredentialReport> {
        self.reports.lock().get(account_id).cloned()
    }

    /// Keeps `report` as the tenant's latest.
    pub(crate) fn set_report(&self, account_id: &str, report: CredentialReport) {
        self.reports.lock().insert(account_id.to_owned(), report);
    }

    /// Forgets a deleted tenant's report and jobs.
    pub(crate) fn forget(&self, account_id: &str) {
        self.reports.lock().remove(account_id);
        self.jobs.lock().retain(|j| j.account_id != account_id);
        self.generations.forget(account_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control_plane::store::{ActionUsage, KeyUsage, RoleUsage, ServiceUsage};

    const NOW: i64 = 1_800_000_000;

    fn report() -> UsageBatch {
        UsageBatch {
            account_id: "111122223333".into(),
            access_keys: vec![KeyUsage {
                access_key_id: "AKIAEXAMPLEKEY0001".into(),
                last_used: NOW - 10,
                service: "s3".into(),
                region: "eu-west-1".into(),
            }],
            services: vec![ServiceUsage {
                principal_arn: "arn:aws:iam::111122223333:user/alice".into(),
                service: "s3".into(),
                last_authenticated: NOW - 10,
                region: "eu-west-1".into(),
                actions: vec![ActionUsage {
                    action: "GetObject".into(),
                    last_accessed: NOW - 10,
                    region: "eu-west-1".into(),
                }],
            }],
            roles: vec![RoleUsage {
                role_arn: "arn:aws:iam::111122223333:role/app".into(),
                last_used: NOW,
                region: String::new(),
            }],
        }
    }

    #[test]
    fn a_well_formed_report_passes() {
        assert_eq!(validate(&report(), NOW), Ok(()));
        assert_eq!(validate(&UsageBatch::default(), NOW), Ok(()));
    }

    #[test]
    fn malformed_entries_are_refused() {
        type Change = Box<dyn Fn(&mut UsageBatch)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "empty key id",
                Box::new(|b| b.access_keys[0].access_key_id.clear()),
            ),
            (
                "short key id",
                Box::new(|b| b.access_keys[0].access_key_id = "AKIA".into()),
            ),
            (
                "key id with a slash",
                Box::new(|b| b.access_keys[0].access_key_id = "AKIA/EXAMPLEKEY0001".into()),
            ),
            (
                "far future",
                Box::new(|b| b.access_keys[0].last_used = NOW + 86_400),
            ),
            ("zero time", Box::new(|b| b.roles[0].last_used = 0)),
            (
                "bad region",
                Box::new(|b| b.services[0].region = "EU WEST".into()),
            ),
            ("empty service", Box::new(|b| b.services[0].service.clear())),
            (
                "empty action",
                Box::new(|b| b.services[0].actions[0].action.clear()),
            ),
            (
                "another tenant's user",
                Box::new(|b| {
                    b.services[0].principal_arn = "arn:aws:iam::999999999999:user/alice".into()
                }),
            ),
            (
                "not an ARN",
                Box::new(|b| b.services[0].principal_arn = "alice".into()),
            ),
            (
                "a user as a role",
                Box::new(|b| b.roles[0].role_arn = "arn:aws:iam::111122223333:user/alice".into()),
            ),
            (
                "a role without a name",
                Box::new(|b| b.roles[0].role_arn = "arn:aws:iam::111122223333:role/".into()),
            ),
            (
                "an S3 ARN",
                Box::new(|b| b.roles[0].role_arn = "arn:aws:s3:::111122223333:role/x".into()),
            ),
        ];
        for (name, change) in cases {
            let mut batch = report();
            change(&mut batch);
            assert!(
                matches!(validate(&batch, NOW), Err(UsageReportError::Malformed(_))),
                "{name}"
            );
        }
        // A little clock skew is tolerated.
        let mut batch = report();
        batch.access_keys[0].last_used = NOW + MAX_CLOCK_SKEW_SECONDS;
        assert_eq!(validate(&batch, NOW), Ok(()));
    }

    #[test]
    fn an_oversized_report_is_refused() {
        let mut batch = report();
        let key = batch.access_keys[0].clone();
        batch.access_keys = vec![key; MAX_USAGE_ENTRIES];
        assert_eq!(
            validate(&batch, NOW),
            Err(UsageReportError::TooLarge {
                count: MAX_USAGE_ENTRIES + 3,
                max: MAX_USAGE_ENTRIES
            })
        );
    }

    #[test]
    fn jobs_are_bounded_and_per_tenant() {
        let state = UsageState::default();
        for i in 0..=MAX_JOBS {
            state.add_job(AdvisorJob {
                id: format!("{i:036}"),
                account_id: "111122223333".into(),
                granularity: Granularity::ServiceLevel,
                created_at: NOW,
                services: Vec::new(),
            });
        }
        assert!(state.job("111122223333", &format!("{:036}", 0)).is_none());
        let last = format!("{MAX_JOBS:036}");
        assert!(state.job("111122223333", &last).is_some());
        assert!(state.job("999999999999", &last).is_none());
        state.forget("111122223333");
        assert!(state.job("111122223333", &last).is_none());
    }
}
