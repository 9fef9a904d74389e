//! A Query-protocol form as the JSON parameters the admin API takes: `X.member.N` lists
//! become arrays, `X.member.N.Field` structures (`Tags.member.1.Key`) arrays of objects, and
//! the integers and booleans of IAM's model (botocore `iam/2010-05-08`) JSON numbers and
//! booleans. Everything else stays a string: the dispatcher checks what each action needs.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{echo, AwsCode};

/// Parameters IAM's model types as integers.
const INTEGERS: &[&str] = &["MaxItems", "MaxSessionDuration"];

/// Parameters IAM's model types as booleans.
const BOOLEANS: &[&str] = &["SetAsDefault", "PasswordResetRequired", "OnlyAttached"];

/// Parameters IAM's model types as lists of strings: an empty one is sent as `Name=` (as
/// botocore does), a full one as `Name.member.N`.
const STRING_LISTS: &[&str] = &["ClientIDList", "ThumbprintList", "TagKeys"];

/// Parameters IAM's model types as lists of structures.
const STRUCT_LISTS: &[&str] = &["Tags"];

/// The highest list index accepted: AWS's lists are far shorter, and a bound keeps a hostile
/// form from naming a huge one.
const MAX_INDEX: u32 = 1_000;

/// Names that belong to the protocol, not to the action.
fn is_protocol(name: &str) -> bool {
    matches!(name, "Action" | "Version") || name.starts_with("X-Amz-")
}

/// A form that does not fit IAM's model, with AWS's code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(super) struct FormError {
    /// AWS's code (`ValidationError`).
    pub(super) code: AwsCode,
    /// AWS's message, naming the parameter.
    pub(super) message: String,
}

fn validation(name: &str, value: &str, constraint: &str) -> FormError {
    FormError {
        code: AwsCode::ValidationError,
        message: format!(
            "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: {constraint}",
            echo(value),
            camel(name),
        ),
    }
}

/// AWS's messages name members in camel case (`maxItems`).
fn camel(name: &str) -> String {
    let mut out = name.to_owned();
    if let Some(first) = out.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    out
}

/// One list being collected: its items by index, each a value or a structure's fields.
#[derive(Default)]
struct Items<'a> {
    scalars: BTreeMap<u32, &'a str>,
    structs: BTreeMap<u32, Map<String, Value>>,
}

/// The JSON object of `params` (name, value pairs in request order).
pub(super) fn parameters<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Value, FormError> {
    let mut out = Map::new();
    let mut lists: Vec<(&'a str, Items<'a>)> = Vec::new();
    for (name, value) in params {
        if is_protocol(name) {
            continue;
        }
        if let Some((base, rest)) = name.split_once(".member.") {
            let (index, field) = match rest.split_once('.') {
                Some((index, field)) => (index, Some(field)),
                None => (rest, None),
            };
            let index = index
                .parse::<u32>()
                .ok()
                .filter(|i| (1..=MAX_INDEX).contains(i))
                .ok_or_else(|| {
                    validation(base, name, "Member must be a list index from 1 to 1000")
                })?;
            if INTEGERS.contains(&base) || BOOLEANS.contains(&base) {
                return Err(validation(base, value, "Member must not be a list"));
            }
            if !lists.iter().any(|(b, _)| *b == base) {
                lists.push((base, Items::default()));
            }
            let Some((_, slot)) = lists.iter_mut().find(|(b, _)| *b == base) else {
                continue;
            };
            match field {
                None if STRUCT_LISTS.contains(&base) => {
                    return Err(validation(
                        base,
                        value,
                        "Member must be a list of structures",
                    ))
                }
                None => {
                    slot.scalars.insert(index, value);
                }
                Some(_) if STRING_LISTS.contains(&base) => {
                    return Err(validation(base, name, "Member must be a list of strings"))
                }
                Some(field) => {
                    slot.structs
                        .entry(index)
                        .or_default()
                        .insert(field.to_owned(), Value::String(value.to_owned()));
                }
            }
            if !slot.scalars.is_empty() && !slot.structs.is_empty() {
                return Err(validation(base, name, "Member must be one kind of list"));
            }
            continue;
        }
        let value = if INTEGERS.contains(&name) {
            let n = value
                .parse::<u64>()
                .map_err(|_| validation(name, value, "Member must be an integer"))?;
            Value::from(n)
        } else if BOOLEANS.contains(&name) {
            match value {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(validation(name, value, "Member must be true or false")),
            }
        } else if STRING_LISTS.contains(&name) || STRUCT_LISTS.contains(&name) {
            // botocore's encoding of an empty list.
            if !value.is_empty() {
                return Err(validation(name, value, "Member must be a list"));
            }
            Value::Array(Vec::new())
        } else {
            Value::String(value.to_owned())
        };
        out.insert(name.to_owned(), value);
    }
    for (base, items) in lists {
        let array: Vec<Value> = if items.structs.is_empty() {
            items
                .scalars
                .into_values()
                .map(|v| Value::String(v.to_owned()))
                .collect()
        } else {
            items.structs.into_values().map(Value::Object).collect()
        };
        out.insert(base.to_owned(), Value::Array(array));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(pairs: &[(&str, &str)]) -> Result<Value, FormError> {
        parameters(pairs.iter().copied())
    }

    #[test]
    fn scalars_lists_and_structures() {
        let got = decode(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", "r"),
            ("MaxSessionDuration", "7200"),
            ("Tags.member.2.Key", "b"),
            ("Tags.member.1.Key", "a"),
            ("Tags.member.1.Value", "1"),
            ("Tags.member.2.Value", "2"),
            ("ClientIDList.member.10", "ten"),
            ("ClientIDList.member.2", "two"),
            ("SetAsDefault", "true"),
            ("ThumbprintList", ""),
        ])
        .unwrap();
        assert_eq!(
            got,
            json!({
                "RoleName": "r",
                "MaxSessionDuration": 7200,
                "SetAsDefault": true,
                "ThumbprintList": [],
                "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
                "ClientIDList": ["two", "ten"],
            })
        );
        // Key order follows the request, lists last.
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().map(|k| k.as_str()), Some("RoleName"));
    }

    #[test]
    fn values_of_the_wrong_form_name_their_parameter() {
        for (pairs, member) in [
            (&[("MaxItems", "ten")][..], "'maxItems'"),
            (&[("MaxItems", "-1")][..], "'maxItems'"),
            (&[("SetAsDefault", "yes")][..], "'setAsDefault'"),
            (&[("TagKeys", "k")][..], "'tagKeys'"),
            (&[("Tags.member.1", "k")][..], "'tags'"),
            (&[("TagKeys.member.1.Key", "k")][..], "'tagKeys'"),
            (&[("ClientIDList.member.0", "a")][..], "'clientIDList'"),
            (&[("ClientIDList.member.x", "a")][..], "'clientIDList'"),
            (&[("ClientIDList.member.1001", "a")][..], "'clientIDList'"),
            (&[("MaxItems.member.1", "1")][..], "'maxItems'"),
        ] {
            let err = decode(pairs).unwrap_err();
            assert_eq!(err.code, AwsCode::ValidationError, "{pairs:?}");
            assert!(err.message.contains(member), "{pairs:?}: {}", err.message);
        }
    }

    #[test]
    fn echoed_values_are_bounded() {
        let long = "9".repeat(10_000);
        let err = decode(&[("MaxItems", &format!("x{long}"))]).unwrap_err();
        assert!(err.message.len() < 1_000, "{}", err.message.len());
    }

    #[test]
    fn presigned_query_parameters_are_not_the_actions() {
        let got = decode(&[("X-Amz-Signature", "abc"), ("UserName", "u")]).unwrap();
        assert_eq!(got, json!({"UserName": "u"}));
    }
}
