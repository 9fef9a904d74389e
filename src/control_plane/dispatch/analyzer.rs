//! IAM Access Analyzer's analyzer actions (issue #17, item 6): `CreateAnalyzer`,
//! `GetAnalyzer`, `ListAnalyzers`, `UpdateAnalyzer`, `DeleteAnalyzer` and `UpdateFindings`,
//! with Access Analyzer's REST-JSON member names (`analyzerName`, `configuration`,
//! `unusedAccess`, `unusedAccessAge`, `nextToken`, ...) and shapes. iamlet serves analyzers of
//! type `ACCOUNT_UNUSED_ACCESS`; their findings are computed from usage (`unused.rs`).
//!
//! Access Analyzer's errors: `ValidationException` for a bad parameter (AWS's bounds on the
//! window, 1..=365 days), `ConflictException` for a name that is taken,
//! `ResourceNotFoundException` for an unknown analyzer.

use std::collections::BTreeMap;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{json, Map, Value};

use super::params::Params;
use super::render;
use crate::control_plane::AdminError;
use crate::directory::{
    Analyzer, AnalyzerExclusion, AnalyzerSettings, DirectoryError, Tenant, UNUSED_ACCESS_TYPE,
};

/// The analyzer actions run on the tenant alone.
pub(super) const ANALYZER_ACTIONS: &[&str] = &[
    "CreateAnalyzer",
    "GetAnalyzer",
    "ListAnalyzers",
    "UpdateAnalyzer",
    "DeleteAnalyzer",
    "UpdateFindings",
];

/// A `ValidationException`.
pub(super) fn validation(message: impl Into<String>) -> AdminError {
    DirectoryError::RequestValidation(message.into()).into()
}

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise).
pub(super) fn run(
    t: &mut Tenant,
    now: i64,
    action: &str,
    p: Params<'_>,
    map: &Map<String, Value>,
) -> Result<Option<Value>, AdminError> {
    let result = match action {
        "CreateAnalyzer" => {
            let kind = p.str("type")?;
            check_type(kind)?;
            let settings = settings(map.get("configuration"))?;
            let tags = tag_map(map.get("tags"))?;
            let created = t.create_analyzer(now, p.str("analyzerName")?, settings, tags)?;
            json!({ "arn": created.arn })
        }
        "GetAnalyzer" => {
            json!({ "analyzer": analyzer_json(t.get_analyzer(p.str("analyzerName")?)?) })
        }
        "ListAnalyzers" => {
            if let Some(kind) = p.opt_str("type")? {
                check_type(kind)?;
            }
            let (max, after) = page(p)?;
            let mut analyzers = t
                .analyzers
                .values()
                .filter(|a| after.as_deref().is_none_or(|after| a.name.as_str() > after));
            let items: Vec<&Analyzer> = analyzers.by_ref().take(max).collect();
            let mut out = Map::new();
            out.insert(
                "analyzers".into(),
                items.iter().map(|a| analyzer_json(a)).collect(),
            );
            if let (Some(last), Some(_)) = (items.last(), analyzers.next()) {
                out.insert("nextToken".into(), token(&last.name).into());
            }
            Value::Object(out)
        }
        "UpdateAnalyzer" => {
            let settings = settings(map.get("configuration"))?;
            let updated = t.update_analyzer(p.str("analyzerName")?, settings)?;
            json!({ "configuration": configuration_json(updated) })
        }
        "DeleteAnalyzer" => {
            t.delete_analyzer(p.str("analyzerName")?)?;
            json!({})
        }
        "UpdateFindings" => {
            let archived = match p.str("status")? {
                "ARCHIVED" => true,
                "ACTIVE" => false,
                other => {
                    return Err(validation(format!(
                        "Invalid value for status: {}. Valid values: ACTIVE, ARCHIVED.",
                        crate::error::echo(other)
                    )))
                }
            };
            let ids = p.is_present("ids").then(|| p.str_list("ids")).transpose()?;
            t.update_findings(
                now,
                p.str("analyzerArn")?,
                archived,
                ids,
                p.opt_str("resourceArn")?,
            )?;
            json!({})
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

fn check_type(kind: &str) -> Result<(), AdminError> {
    if kind == UNUSED_ACCESS_TYPE {
        Ok(())
    } else {
        Err(validation(format!(
            "Invalid value for type: {}. iamlet serves analyzers of type {UNUSED_ACCESS_TYPE} \
             only.",
            crate::error::echo(kind)
        )))
    }
}

/// `configuration: {unusedAccess: {unusedAccessAge, analysisRule: {exclusions: [...]}}}`.
fn settings(configuration: Option<&Value>) -> Result<AnalyzerSettings, AdminError> {
    let Some(configuration) = configuration.filter(|v| !v.is_null()) else {
        return Ok(AnalyzerSettings::default());
    };
    if configuration.get("internalAccess").is_some() {
        return Err(validation(
            "Invalid value for configuration: iamlet serves unusedAccess configurations only.",
        ));
    }
    let Some(unused) = configuration.get("unusedAccess") else {
        return Ok(AnalyzerSettings::default());
    };
    let unused_access_age = match unused.get("unusedAccessAge") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    validation(
                        "Invalid value for configuration.unusedAccess.unusedAccessAge: the \
                         unused access age must be between 1 and 365 days.",
                    )
                })?,
        ),
    };
    let exclusions = unused
        .get("analysisRule")
        .and_then(|r| r.get("exclusions"))
        .map(exclusions)
        .transpose()?;
    Ok(AnalyzerSettings {
        unused_access_age,
        exclusions,
    })
}

fn exclusions(value: &Value) -> Result<Vec<AnalyzerExclusion>, AdminError> {
    let bad = || {
        validation(
            "Invalid value for configuration.unusedAccess.analysisRule.exclusions: expected a \
             list of {accountIds: [..], resourceTags: [{key: value}]}.",
        )
    };
    let items = value.as_array().ok_or_else(bad)?;
    items
        .iter()
        .map(|item| {
            let account_ids = match item.get("accountIds") {
                None => Vec::new(),
                Some(ids) => ids
                    .as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|id| id.as_str().map(str::to_owned).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            };
            let resource_tags = match item.get("resourceTags") {
                None => Vec::new(),
                Some(sets) => sets
                    .as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|set| tag_map(Some(set)))
                    .collect::<Result<_, _>>()?,
            };
            Ok(AnalyzerExclusion {
                account_ids,
                resource_tags,
            })
        })
        .collect()
}

/// A `{key: value}` map of strings (Access Analyzer's tags).
fn tag_map(value: Option<&Value>) -> Result<BTreeMap<String, String>, AdminError> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|v| (k.clone(), v.to_owned()))
                    .ok_or_else(|| validation("Invalid value for tags: values must be strings."))
            })
            .collect(),
        Some(_) => Err(validation(
            "Invalid value for tags: expected a map of strings.",
        )),
    }
}

fn configuration_json(a: &Analyzer) -> Value {
    let mut unused = Map::new();
    unused.insert("unusedAccessAge".into(), a.unused_access_age.into());
    if !a.exclusions.is_empty() {
        let exclusions: Vec<Value> = a
            .exclusions
            .iter()
            .map(|e| {
                let mut out = Map::new();
                if !e.account_ids.is_empty() {
                    out.insert("accountIds".into(), json!(e.account_ids));
                }
                if !e.resource_tags.is_empty() {
                    out.insert("resourceTags".into(), json!(e.resource_tags));
                }
                Value::Object(out)
            })
            .collect();
        unused.insert("analysisRule".into(), json!({ "exclusions": exclusions }));
    }
    json!({ "unusedAccess": unused })
}

/// An `AnalyzerSummary`.
fn analyzer_json(a: &Analyzer) -> Value {
    let mut out = Map::new();
    out.insert("arn".into(), a.arn.clone().into());
    out.insert("name".into(), a.name.clone().into());
    out.insert("type".into(), UNUSED_ACCESS_TYPE.into());
    out.insert("createdAt".into(), render::date(a.created_at));
    out.insert("tags".into(), json!(a.tags));
    // Findings are computed when read: the analyzer is ready as soon as it exists.
    out.insert("status".into(), "ACTIVE".into());
    out.insert("configuration".into(), configuration_json(a));
    Value::Object(out)
}

const TOKEN_PREFIX: &str = "iamlet-analyzers-1:";

fn token(last: &str) -> String {
    BASE64URL_NOPAD.encode(format!("{TOKEN_PREFIX}{last}").as_bytes())
}

/// `maxResults` (1..=1000, default 100) and the name after which the page starts.
fn page(p: Params<'_>) -> Result<(usize, Option<String>), AdminError> {
    let max = match p.opt_u32("maxResults")? {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(n) => {
            return Err(validation(format!(
                "Invalid value for maxResults: {n}. It must be between 1 and 1000."
            )))
        }
    };
    let after = p
        .opt_str("nextToken")?
        .map(|t| {
            BASE64URL_NOPAD
                .decode(t.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix(TOKEN_PREFIX).map(str::to_owned))
                .ok_or_else(|| {
                    validation("Invalid value for nextToken: not a token this listing returned.")
                })
        })
        .transpose()?;
    Ok((usize::try_from(max).unwrap_or(100), after))
}
