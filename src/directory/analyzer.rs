//! IAM Access Analyzer's unused-access analyzers of a tenant (issue #17, item 6): their
//! configuration and the statuses set on their findings. The findings themselves are computed
//! from the usage the sidecars report whenever they are read (the control plane's
//! `dispatch/unused.rs`); what is stored here is what the account's administrators chose:
//! which analyzers exist, their window, their exclusions, and which findings they archived.
//!
//! Errors are Access Analyzer's: `ConflictException` for a name that is taken,
//! `ResourceNotFoundException` for an analyzer that does not exist, `ValidationException` for
//! the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DirectoryError, Tag, Tenant};

/// The region analyzer ARNs name (the tenant's single region, as EKS's ARNs).
pub const ANALYZER_REGION: &str = "us-east-1";

/// The only analyzer type iamlet serves.
pub const UNUSED_ACCESS_TYPE: &str = "ACCOUNT_UNUSED_ACCESS";

/// Access Analyzer's default window, in days.
pub const DEFAULT_UNUSED_ACCESS_AGE: u32 = 90;

/// Access Analyzer's bounds on the window, in days.
pub const UNUSED_ACCESS_AGE_RANGE: std::ops::RangeInclusive<u32> = 1..=365;

/// An unused-access analyzer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analyzer {
    /// The name, as written (unique in the tenant).
    pub name: String,
    /// `arn:aws:access-analyzer:{region}:{account}:analyzer/{name}`.
    pub arn: String,
    /// When it was created.
    pub created_at: i64,
    /// The window in days: access unused for this long is a finding.
    pub unused_access_age: u32,
    /// Principals left out of the analysis.
    #[serde(default)]
    pub exclusions: Vec<AnalyzerExclusion>,
    /// The analyzer's tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Statuses set by `UpdateFindings` with `ids`: finding id to the update.
    #[serde(default)]
    pub statuses_by_id: BTreeMap<String, StatusUpdate>,
    /// Statuses set by `UpdateFindings` with `resourceArn`: resource ARN to the update.
    #[serde(default)]
    pub statuses_by_resource: BTreeMap<String, StatusUpdate>,
}

/// One exclusion rule: a principal matching any of its criteria is not analyzed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzerExclusion {
    /// Accounts left out (the tenant's own id leaves everything out).
    #[serde(default)]
    pub account_ids: Vec<String>,
    /// Tag sets: a principal carrying every tag of one set is left out.
    #[serde(default)]
    pub resource_tags: Vec<BTreeMap<String, String>>,
}

/// A status an administrator set on findings, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// Archived (true) or active again (false).
    pub archived: bool,
    /// When.
    pub at: i64,
}

/// An analyzer's settings as `CreateAnalyzer` and `UpdateAnalyzer` give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyzerSettings {
    /// The window in days; `None` keeps the current one (or the default on creation).
    pub unused_access_age: Option<u32>,
    /// The exclusions; `None` keeps the current ones.
    pub exclusions: Option<Vec<AnalyzerExclusion>>,
}

impl AnalyzerExclusion {
    /// Whether a principal of the tenant `account_id` with `tags` is left out by this rule.
    pub fn excludes(&self, account_id: &str, tags: &[Tag]) -> bool {
        self.account_ids.iter().any(|a| a == account_id)
            || self.resource_tags.iter().any(|set| {
                !set.is_empty()
                    && set
                        .iter()
                        .all(|(k, v)| tags.iter().any(|t| &t.key == k && &t.value == v))
            })
    }
}

impl Analyzer {
    /// Whether a principal with `tags` in the tenant `account_id` is left out of the analysis.
    pub fn excludes(&self, account_id: &str, tags: &[Tag]) -> bool {
        self.exclusions.iter().any(|e| e.excludes(account_id, tags))
    }

    /// The latest status update that names the finding `id` about `resource`, if any: an
    /// update by id and one by resource both apply, and the later one decides.
    pub fn status_of(&self, id: &str, resource: &str) -> Option<StatusUpdate> {
        let by_id = self.statuses_by_id.get(id).copied();
        let by_resource = self.statuses_by_resource.get(resource).copied();
        match (by_id, by_resource) {
            (Some(a), Some(b)) => Some(if b.at > a.at { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

fn not_found(name: &str) -> DirectoryError {
    DirectoryError::ResourceNotFound(format!("Analyzer {} not found.", crate::error::echo(name)))
}

fn check_age(age: u32) -> Result<(), DirectoryError> {
    if UNUSED_ACCESS_AGE_RANGE.contains(&age) {
        Ok(())
    } else {
        Err(DirectoryError::RequestValidation(format!(
            "Invalid value for configuration.unusedAccess.unusedAccessAge: {age}. The unused \
             access age must be between {} and {} days.",
            UNUSED_ACCESS_AGE_RANGE.start(),
            UNUSED_ACCESS_AGE_RANGE.end()
        )))
    }
}

fn check_exclusions(exclusions: &[AnalyzerExclusion]) -> Result<(), DirectoryError> {
    for e in exclusions {
        if e.account_ids.is_empty() && e.resource_tags.is_empty() {
            return Err(DirectoryError::RequestValidation(
                "Invalid value for configuration.unusedAccess.analysisRule.exclusions: each \
                 exclusion must name accountIds or resourceTags."
                    .into(),
            ));
        }
        if let Some(bad) = e
            .account_ids
            .iter()
            .find(|a| !crate::account::AccountId::is_valid(a))
        {
            return Err(DirectoryError::RequestValidation(format!(
                "Invalid value for configuration.unusedAccess.analysisRule.exclusions.accountIds: \
                 {} is not a 12-digit account id.",
                crate::error::echo(bad)
            )));
        }
    }
    Ok(())
}

// === impl Tenant ===

impl Tenant {
    /// Creates the unused-access analyzer `name` (`CreateAnalyzer`).
    ///
    /// # Errors
    /// `ConflictException` when the name is taken; `ValidationException` for a window outside
    /// 1..=365 days or an empty exclusion.
    pub fn create_analyzer(
        &mut self,
        now: i64,
        name: &str,
        settings: AnalyzerSettings,
        tags: BTreeMap<String, String>,
    ) -> Result<&Analyzer, DirectoryError> {
        let key = name.to_owned();
        if self.analyzers.contains_key(&key) {
            return Err(DirectoryError::Conflict(format!(
                "Analyzer {} already exists.",
                crate::error::echo(name)
            )));
        }
        let age = settings
            .unused_access_age
            .unwrap_or(DEFAULT_UNUSED_ACCESS_AGE);
        check_age(age)?;
        let exclusions = settings.exclusions.unwrap_or_default();
        check_exclusions(&exclusions)?;
        let analyzer = Analyzer {
            name: name.to_owned(),
            arn: format!(
                "arn:aws:access-analyzer:{ANALYZER_REGION}:{}:analyzer/{name}",
                self.account_id
            ),
            created_at: now,
            unused_access_age: age,
            exclusions,
            tags,
            statuses_by_id: BTreeMap::new(),
            statuses_by_resource: BTreeMap::new(),
        };
        Ok(self.analyzers.entry(key).or_insert(analyzer))
    }

    /// The analyzer `name` (`GetAnalyzer`).
    ///
    /// # Errors
    /// `ResourceNotFoundException` when there is none.
    pub fn get_analyzer(&self, name: &str) -> Result<&Analyzer, DirectoryError> {
        self.analyzers.get(name).ok_or_else(|| not_found(name))
    }

    /// The analyzer whose ARN is `arn` (the findings' actions name analyzers by ARN).
    ///
    /// # Errors
    /// `ResourceNotFoundException` when there is none.
    pub fn analyzer_by_arn(&self, arn: &str) -> Result<&Analyzer, DirectoryError> {
        self.analyzers
            .values()
            .find(|a| a.arn == arn)
            .ok_or_else(|| not_found(arn))
    }

    /// Changes an analyzer's window or exclusions (`UpdateAnalyzer`).
    ///
    /// # Errors
    /// `ResourceNotFoundException` when there is none; `ValidationException` as on creation.
    pub fn update_analyzer(
        &mut self,
        name: &str,
        settings: AnalyzerSettings,
    ) -> Result<&Analyzer, DirectoryError> {
        if let Some(age) = settings.unused_access_age {
            check_age(age)?;
        }
        if let Some(exclusions) = &settings.exclusions {
            check_exclusions(exclusions)?;
        }
        let analyzer = self
            .analyzers
            .get_mut(name)
            .ok_or_else(|| not_found(name))?;
        if let Some(age) = settings.unused_access_age {
            analyzer.unused_access_age = age;
        }
        if let Some(exclusions) = settings.exclusions {
            analyzer.exclusions = exclusions;
        }
        Ok(analyzer)
    }

    /// Deletes an analyzer and the statuses set on its findings (`DeleteAnalyzer`).
    ///
    /// # Errors
    /// `ResourceNotFoundException` when there is none.
    pub fn delete_analyzer(&mut self, name: &str) -> Result<(), DirectoryError> {
        self.analyzers
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| not_found(name))
    }

    /// Archives (or makes active again) the findings `ids`, or every finding about
    /// `resource_arn`, of the analyzer `arn` (`UpdateFindings`).
    ///
    /// # Errors
    /// `ResourceNotFoundException` for an unknown analyzer; `ValidationException` unless
    /// exactly one of `ids` and `resource_arn` is given.
    pub fn update_findings(
        &mut self,
        now: i64,
        arn: &str,
        archived: bool,
        ids: Option<Vec<String>>,
        resource_arn: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let name = self.analyzer_by_arn(arn)?.name.clone();
        let update = StatusUpdate { archived, at: now };
        let analyzer = self
            .analyzers
            .get_mut(&name)
            .ok_or_else(|| not_found(arn))?;
        match (ids, resource_arn) {
            (Some(ids), None) if !ids.is_empty() => {
                for id in ids {
                    analyzer.statuses_by_id.insert(id, update);
                }
            }
            (None, Some(resource)) => {
                analyzer
                    .statuses_by_resource
                    .insert(resource.to_owned(), update);
            }
            _ => {
                return Err(DirectoryError::RequestValidation(
                    "Exactly one of ids or resourceArn must be given.".into(),
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:access-analyzer:us-east-1:111122223333:analyzer/unused";

    fn settings(age: Option<u32>) -> AnalyzerSettings {
        AnalyzerSettings {
            unused_access_age: age,
            exclusions: None,
        }
    }

    #[test]
    fn an_analyzer_has_aws_arn_and_the_default_window() {
        let mut t = Tenant::new("111122223333", 0);
        let a = t
            .create_analyzer(5, "unused", settings(None), BTreeMap::new())
            .unwrap();
        assert_eq!(a.arn, ARN);
        assert_eq!(a.unused_access_age, 90);
        assert_eq!(t.analyzer_by_arn(ARN).unwrap().name, "unused");
    }

    #[test]
    fn a_second_analyzer_of_the_same_name_conflicts() {
        let mut t = Tenant::new("111122223333", 0);
        t.create_analyzer(5, "unused", settings(None), BTreeMap::new())
            .unwrap();
        let e = t
            .create_analyzer(6, "unused", settings(Some(30)), BTreeMap::new())
            .unwrap_err();
        assert_eq!(e.code(), crate::error::AwsCode::ConflictException);
        assert_eq!(t.get_analyzer("unused").unwrap().unused_access_age, 90);
    }

    #[test]
    fn the_window_is_bounded_as_aws_bounds_it() {
        let mut t = Tenant::new("111122223333", 0);
        for bad in [0, 366] {
            let e = t
                .create_analyzer(5, "a", settings(Some(bad)), BTreeMap::new())
                .unwrap_err();
            assert_eq!(e.code(), crate::error::AwsCode::ValidationException);
        }
        t.create_analyzer(5, "a", settings(Some(365)), BTreeMap::new())
            .unwrap();
        let e = t.update_analyzer("a", settings(Some(0))).unwrap_err();
        assert_eq!(e.code(), crate::error::AwsCode::ValidationException);
        assert_eq!(
            t.update_analyzer("a", settings(Some(1)))
                .unwrap()
                .unused_access_age,
            1
        );
    }

    #[test]
    fn unknown_analyzers_are_not_found() {
        let mut t = Tenant::new("111122223333", 0);
        let code = crate::error::AwsCode::ResourceNotFoundException;
        assert_eq!(t.get_analyzer("x").unwrap_err().code(), code);
        assert_eq!(t.delete_analyzer("x").unwrap_err().code(), code);
        assert_eq!(
            t.update_analyzer("x", settings(None)).unwrap_err().code(),
            code
        );
        assert_eq!(
            t.update_findings(1, ARN, true, Some(vec!["f".into()]), None)
                .unwrap_err()
                .code(),
            code
        );
    }

    #[test]
    fn the_later_status_update_decides() {
        let mut t = Tenant::new("111122223333", 0);
        t.create_analyzer(5, "unused", settings(None), BTreeMap::new())
            .unwrap();
        let role = "arn:aws:iam::111122223333:role/r";
        t.update_findings(10, ARN, true, None, Some(role)).unwrap();
        let a = t.get_analyzer("unused").unwrap();
        assert_eq!(a.status_of("f1", role).map(|s| s.archived), Some(true));
        assert_eq!(a.status_of("f1", "other"), None);
        t.update_findings(11, ARN, false, Some(vec!["f1".into()]), None)
            .unwrap();
        let a = t.get_analyzer("unused").unwrap();
        assert_eq!(a.status_of("f1", role).map(|s| s.archived), Some(false));
        assert_eq!(a.status_of("f2", role).map(|s| s.archived), Some(true));
        let e = t.update_findings(12, ARN, true, None, None).unwrap_err();
        assert_eq!(e.code(), crate::error::AwsCode::ValidationException);
    }

    #[test]
    fn exclusions_match_the_account_or_every_tag_of_a_set() {
        let rule = AnalyzerExclusion {
            account_ids: vec!["444455556666".into()],
            resource_tags: vec![BTreeMap::from([
                ("team".to_owned(), "ops".to_owned()),
                ("env".to_owned(), "dev".to_owned()),
            ])],
        };
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        assert!(rule.excludes("444455556666", &[]));
        assert!(!rule.excludes("111122223333", &[tag("team", "ops")]));
        assert!(rule.excludes("111122223333", &[tag("team", "ops"), tag("env", "dev")]));
    }
}
