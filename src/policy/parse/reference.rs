//! The syntax phase as it was before issue #19 P5: the whole document parsed into a JSON tree
//! first, then walked. Kept for the tests only, as the reference the streaming reader in
//! `syntax.rs` must agree with on every document and every error.

use super::{at, syntax, Draft, SyntaxOutput, MSG_SYNTAX};
use crate::policy::document::{
    ActionBlock, ConditionEntry, ConditionOperator, PolicyVersion, PrincipalBlock, PrincipalSpec,
    PrincipalType, ResourceBlock,
};
use crate::policy::json::Json;
use crate::policy::PolicyError;

/// The tree-walking syntax phase.
pub(super) fn syntax_phase_via_tree(text: &str) -> Result<SyntaxOutput, PolicyError> {
    let json = Json::parse(text).map_err(|e| {
        PolicyError::malformed(
            MSG_SYNTAX,
            Some(format!("line {} column {}", e.line(), e.column())),
        )
    })?;
    syntax_phase(&json)
}

fn syntax_phase(json: &Json) -> Result<SyntaxOutput, PolicyError> {
    let Json::Object(top) = json else {
        return Err(syntax("(document)"));
    };
    let mut version = PolicyVersion::Unspecified;
    let mut id = None;
    let mut statement = None;
    for (key, value) in top {
        match key.as_str() {
            "Version" => {
                version = match value {
                    Json::String(v) if v == "2012-10-17" => PolicyVersion::Current,
                    Json::String(v) if v == "2008-10-17" => PolicyVersion::Legacy,
                    _ => return Err(syntax("Version")),
                }
            }
            "Id" => match value {
                Json::String(v) => id = Some(v.clone()),
                _ => return Err(syntax("Id")),
            },
            "Statement" => statement = Some(value),
            other => return Err(syntax(other)),
        }
    }
    let drafts = match statement {
        Some(single @ Json::Object(_)) => vec![draft_statement(single, "Statement")?],
        Some(Json::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, s)| draft_statement(s, &format!("Statement[{i}]")))
            .collect::<Result<_, _>>()?,
        _ => return Err(syntax("Statement")),
    };
    Ok((version, id, drafts))
}

fn draft_statement(json: &Json, location: &str) -> Result<Draft, PolicyError> {
    let Json::Object(fields) = json else {
        return Err(syntax(location));
    };
    let mut draft = Draft {
        location: location.to_owned(),
        sid: None,
        effect: String::new(),
        principal: None,
        action: None,
        resource: None,
        conditions: Vec::new(),
    };
    let mut effect = None;
    for (key, value) in fields {
        let here = at(location, key);
        match key.as_str() {
            "Sid" => match value {
                Json::String(s) => draft.sid = Some(s.clone()),
                _ => return Err(syntax(here)),
            },
            "Effect" => match value {
                Json::String(s)
                    if s.eq_ignore_ascii_case("allow") || s.eq_ignore_ascii_case("deny") =>
                {
                    effect = Some(s.clone());
                }
                _ => return Err(syntax(here)),
            },
            "Action" | "NotAction" => {
                if draft.action.is_some() {
                    return Err(syntax(here));
                }
                draft.action = Some(ActionBlock {
                    negated: key == "NotAction",
                    patterns: string_list(value).ok_or_else(|| syntax(here))?,
                });
            }
            "Resource" | "NotResource" => {
                if draft.resource.is_some() {
                    return Err(syntax(here));
                }
                draft.resource = Some(ResourceBlock {
                    negated: key == "NotResource",
                    patterns: string_list(value).ok_or_else(|| syntax(here))?,
                });
            }
            "Principal" | "NotPrincipal" => {
                if draft.principal.is_some() {
                    return Err(syntax(here));
                }
                draft.principal = Some(PrincipalBlock {
                    negated: key == "NotPrincipal",
                    principals: principal_spec(value).ok_or_else(|| syntax(here))?,
                });
            }
            "Condition" => draft.conditions = conditions(value, &here)?,
            _ => return Err(syntax(here)),
        }
    }
    draft.effect = effect.ok_or_else(|| syntax(at(location, "Effect")))?;
    Ok(draft)
}

/// A string or a list of strings. `null` entries in a list are accepted and skipped, as IAM
/// does; anything else is a syntax error.
fn string_list(value: &Json) -> Option<Vec<String>> {
    match value {
        Json::String(s) => Some(vec![s.clone()]),
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Json::String(s) => out.push(s.clone()),
                    Json::Null => {}
                    _ => return None,
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn principal_spec(value: &Json) -> Option<PrincipalSpec> {
    match value {
        Json::String(s) if s == "*" => Some(PrincipalSpec::Everyone),
        Json::Object(entries) if !entries.is_empty() => {
            let mut map = Vec::with_capacity(entries.len());
            for (key, v) in entries {
                let kind = PrincipalType::from_name(key)?;
                let values = match v {
                    Json::String(s) => vec![s.clone()],
                    Json::Array(items) => items
                        .iter()
                        .map(|i| match i {
                            Json::String(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()?,
                    _ => return None,
                };
                map.push((kind, values));
            }
            Some(PrincipalSpec::Map(map))
        }
        _ => None,
    }
}

/// A condition value: a string, or a number or boolean written without quotes.
fn scalar_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) | Json::Number(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn conditions(value: &Json, location: &str) -> Result<Vec<ConditionEntry>, PolicyError> {
    let Json::Object(blocks) = value else {
        return Err(syntax(location));
    };
    let mut out = Vec::new();
    for (name, block) in blocks {
        let here = at(location, name);
        let Json::Object(keys) = block else {
            return Err(syntax(here));
        };
        let mut values_by_key = Vec::with_capacity(keys.len());
        for (key, v) in keys {
            let values = match v {
                Json::Array(items) => items
                    .iter()
                    .map(scalar_text)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| syntax(at(&here, key)))?,
                other => vec![scalar_text(other).ok_or_else(|| syntax(at(&here, key)))?],
            };
            values_by_key.push((key.clone(), values));
        }
        match ConditionOperator::parse(name) {
            Some(operator) => {
                out.extend(
                    values_by_key
                        .into_iter()
                        .map(|(key, values)| ConditionEntry {
                            operator,
                            key,
                            values,
                        }),
                )
            }
            // IAM accepts an unknown operator whose block is empty, and ignores it.
            None if values_by_key.is_empty() => {}
            None => return Err(syntax(here)),
        }
    }
    Ok(out)
}
