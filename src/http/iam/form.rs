//! A Query-protocol form as the JSON parameters the admin API takes, read through the
//! action's model (botocore's `iam/2010-05-08`, the admin API's model): `X.member.N` lists
//! become arrays, structures (`Tags.member.1.Key`, `ContextEntries.member.1.ContextKeyValues.member.2`)
//! objects at any depth, `X.entry.N.key`/`.value` maps objects, and integers and booleans JSON
//! numbers and booleans. A member the action does not take stays a string under its name, so
//! the dispatcher's check of the model refuses it by name.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::control_plane::api_model::{location_name, ApiModel, Shape, ShapeKind};
use crate::error::{echo, AwsCode};

/// The highest list index accepted: AWS's lists are far shorter, and a bound keeps a hostile
/// form from naming a huge one.
const MAX_INDEX: u32 = 1_000;

/// How deep a form may nest (IAM's deepest is a list of structures of lists).
const MAX_DEPTH: usize = 8;

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
            location_name(name),
        ),
    }
}

/// A value being assembled from the form's pairs.
enum Node {
    Leaf(Value),
    /// A list's items by index.
    Items(BTreeMap<u32, Node>),
    /// A structure's fields, in the order first named.
    Fields(Vec<(String, Node)>),
    /// A map's entries by index: key and value.
    Entries(BTreeMap<u32, (Option<String>, Option<Node>)>),
}

/// One pair being placed: the member it belongs to (for messages), its full name and value.
struct Pair<'a> {
    member: &'a str,
    name: &'a str,
    value: &'a str,
}

// === impl Pair ===

impl Pair<'_> {
    fn refuse(&self, constraint: &str) -> FormError {
        validation(self.member, self.name, constraint)
    }

    fn refuse_value(&self, constraint: &str) -> FormError {
        validation(self.member, self.value, constraint)
    }
}

/// The JSON object of `params` (name, value pairs in request order) for `action`.
pub(super) fn parameters<'a>(
    action: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Value, FormError> {
    let model = ApiModel::embedded().ok();
    let operation = model.and_then(|m| m.operation(action));
    let mut top: Vec<(String, Node)> = Vec::new();
    for (name, value) in params {
        if is_protocol(name) {
            continue;
        }
        let mut segments = name.split('.');
        let head = segments.next().unwrap_or(name);
        let rest: Vec<&str> = segments.collect();
        let member = operation.and_then(|op| op.members.iter().find(|m| m.name == head));
        let (Some(model), Some(member)) = (model, member) else {
            // Not a member of the action: kept whole, for the dispatcher to refuse by name.
            top.push((name.to_owned(), Node::Leaf(Value::String(value.to_owned()))));
            continue;
        };
        let Some(shape) = model.shape(&member.shape) else {
            continue;
        };
        if rest.len() > MAX_DEPTH * 2 {
            return Err(validation(head, name, "Member must not nest this deep"));
        }
        let pair = Pair {
            member: head,
            name,
            value,
        };
        let slot = match top.iter().position(|(n, _)| n == head) {
            Some(i) => top.get_mut(i).map(|(_, node)| node),
            None => {
                top.push((head.to_owned(), empty(shape)));
                top.last_mut().map(|(_, node)| node)
            }
        };
        if let Some(slot) = slot {
            place(model, slot, shape, &rest, &pair)?;
        }
    }
    Ok(Value::Object(
        top.into_iter()
            .map(|(name, node)| (name, into_json(node)))
            .collect(),
    ))
}

/// The empty node of a shape.
fn empty(shape: &Shape) -> Node {
    match shape.kind {
        ShapeKind::List => Node::Items(BTreeMap::new()),
        ShapeKind::Structure => Node::Fields(Vec::new()),
        ShapeKind::Map => Node::Entries(BTreeMap::new()),
        _ => Node::Leaf(Value::Null),
    }
}

/// Places `pair`'s value at `rest` under `node`, a value of `shape`.
fn place(
    model: &ApiModel,
    node: &mut Node,
    shape: &Shape,
    rest: &[&str],
    pair: &Pair<'_>,
) -> Result<(), FormError> {
    let Some((&first, after)) = rest.split_first() else {
        return leaf(node, shape, pair);
    };
    match (shape.kind, node) {
        (ShapeKind::List, Node::Items(items)) => {
            if first != "member" {
                return Err(pair.refuse("Member must be a list of member.N items"));
            }
            let (index, after) = index_of(after, pair)?;
            let member = shape
                .member
                .as_deref()
                .and_then(|m| model.shape(m))
                .ok_or_else(|| pair.refuse("Member must be a list"))?;
            let item = items.entry(index).or_insert_with(|| empty(member));
            place(model, item, member, after, pair)
        }
        (ShapeKind::Map, Node::Entries(entries)) => {
            if first != "entry" {
                return Err(pair.refuse("Member must be a map of entry.N items"));
            }
            let (index, after) = index_of(after, pair)?;
            let entry = entries.entry(index).or_insert((None, None));
            match after {
                ["key"] => {
                    entry.0 = Some(pair.value.to_owned());
                    Ok(())
                }
                ["value", deeper @ ..] => {
                    let value_shape = shape
                        .value
                        .as_deref()
                        .and_then(|v| model.shape(v))
                        .ok_or_else(|| pair.refuse("Member must be a map"))?;
                    let value = entry.1.get_or_insert_with(|| empty(value_shape));
                    place(model, value, value_shape, deeper, pair)
                }
                _ => Err(pair.refuse("Member must be a map of key and value entries")),
            }
        }
        (ShapeKind::Structure, Node::Fields(fields)) => {
            let Some(field) = shape.members.iter().find(|f| f.name == first) else {
                // Unknown to the structure: kept as text for the dispatcher's check to name.
                fields.push((
                    first.to_owned(),
                    Node::Leaf(Value::String(pair.value.to_owned())),
                ));
                return Ok(());
            };
            let field_shape = model
                .shape(&field.shape)
                .ok_or_else(|| pair.refuse("Member must be a structure"))?;
            let slot = match fields.iter().position(|(n, _)| n == first) {
                Some(i) => fields.get_mut(i).map(|(_, node)| node),
                None => {
                    fields.push((first.to_owned(), empty(field_shape)));
                    fields.last_mut().map(|(_, node)| node)
                }
            };
            match slot {
                Some(slot) => place(model, slot, field_shape, after, pair),
                None => Ok(()),
            }
        }
        _ => Err(pair.refuse("Member must not be a list")),
    }
}

/// `N` of `member.N`, and what follows it.
fn index_of<'r, 's>(
    rest: &'r [&'s str],
    pair: &Pair<'_>,
) -> Result<(u32, &'r [&'s str]), FormError> {
    let (index, after) = rest
        .split_first()
        .ok_or_else(|| pair.refuse("Member must be a list index from 1 to 1000"))?;
    let index = index
        .parse::<u32>()
        .ok()
        .filter(|i| (1..=MAX_INDEX).contains(i))
        .ok_or_else(|| pair.refuse("Member must be a list index from 1 to 1000"))?;
    Ok((index, after))
}

/// The pair's value as a value of `shape`, at `node`.
fn leaf(node: &mut Node, shape: &Shape, pair: &Pair<'_>) -> Result<(), FormError> {
    let value = match shape.kind {
        ShapeKind::String | ShapeKind::Timestamp | ShapeKind::Blob => {
            Value::String(pair.value.to_owned())
        }
        ShapeKind::Integer | ShapeKind::Long => pair
            .value
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| pair.refuse_value("Member must be an integer"))?,
        ShapeKind::Boolean => match pair.value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(pair.refuse_value("Member must be true or false")),
        },
        // botocore's encoding of an empty list or map.
        ShapeKind::List | ShapeKind::Map if pair.value.is_empty() => return Ok(()),
        ShapeKind::List => return Err(pair.refuse_value("Member must be a list")),
        ShapeKind::Map => return Err(pair.refuse_value("Member must be a map")),
        ShapeKind::Structure => return Err(pair.refuse_value("Member must be a structure")),
    };
    *node = Node::Leaf(value);
    Ok(())
}

fn into_json(node: Node) -> Value {
    match node {
        Node::Leaf(value) => value,
        Node::Items(items) => Value::Array(items.into_values().map(into_json).collect()),
        Node::Fields(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, node)| (name, into_json(node)))
                .collect::<Map<String, Value>>(),
        ),
        Node::Entries(entries) => Value::Object(
            entries
                .into_values()
                .filter_map(|(key, value)| key.map(|k| (k, value.map_or(Value::Null, into_json))))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decode(action: &str, pairs: &[(&str, &str)]) -> Result<Value, FormError> {
        parameters(action, pairs.iter().copied())
    }

    #[test]
    fn scalars_lists_and_structures() {
        let got = decode(
            "CreateRole",
            &[
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", "r"),
                ("MaxSessionDuration", "7200"),
                ("Tags.member.2.Key", "b"),
                ("Tags.member.1.Key", "a"),
                ("Tags.member.1.Value", "1"),
                ("Tags.member.2.Value", "2"),
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            json!({
                "RoleName": "r",
                "MaxSessionDuration": 7200,
                "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
            })
        );
        // Key order follows the request.
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["RoleName", "MaxSessionDuration", "Tags"]);
        let got = decode(
            "CreateOpenIDConnectProvider",
            &[
                ("Url", "https://example.com"),
                ("ClientIDList.member.10", "ten"),
                ("ClientIDList.member.2", "two"),
                ("ThumbprintList", ""),
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"Url": "https://example.com", "ClientIDList": ["two", "ten"], "ThumbprintList": []})
        );
        let got = decode(
            "CreatePolicyVersion",
            &[
                ("PolicyArn", "arn:aws:iam::111122223333:policy/p"),
                ("SetAsDefault", "true"),
            ],
        )
        .unwrap();
        assert_eq!(got["SetAsDefault"], json!(true));
    }

    #[test]
    fn structures_nest_lists_as_the_model_says() {
        // SimulateCustomPolicy's context entries: a list of structures holding a list.
        let got = decode(
            "SimulateCustomPolicy",
            &[
                ("PolicyInputList.member.1", "{}"),
                ("ActionNames.member.1", "s3:GetObject"),
                ("ContextEntries.member.1.ContextKeyName", "aws:SourceIp"),
                ("ContextEntries.member.1.ContextKeyType", "ip"),
                (
                    "ContextEntries.member.1.ContextKeyValues.member.2",
                    "10.0.0.2",
                ),
                (
                    "ContextEntries.member.1.ContextKeyValues.member.1",
                    "10.0.0.1",
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            json!({
                "PolicyInputList": ["{}"],
                "ActionNames": ["s3:GetObject"],
                "ContextEntries": [{
                    "ContextKeyName": "aws:SourceIp",
                    "ContextKeyType": "ip",
                    "ContextKeyValues": ["10.0.0.1", "10.0.0.2"],
                }],
            })
        );
    }

    #[test]
    fn members_the_action_does_not_take_are_kept_for_the_dispatcher_to_name() {
        let got = decode(
            "CreateUser",
            &[
                ("UserName", "erin"),
                ("PermissionsBoundry", "arn"),
                ("Tags.member.1.Colour", "red"),
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"UserName": "erin", "PermissionsBoundry": "arn", "Tags": [{"Colour": "red"}]})
        );
        // An action the model does not know: every pair stays text.
        let got = decode("NoSuchAction", &[("A.member.1", "x")]).unwrap();
        assert_eq!(got, json!({"A.member.1": "x"}));
    }

    #[test]
    fn values_of_the_wrong_form_name_their_parameter() {
        for (action, pairs, member) in [
            ("ListUsers", &[("MaxItems", "ten")][..], "'maxItems'"),
            ("ListUsers", &[("MaxItems", "1.5")][..], "'maxItems'"),
            (
                "CreatePolicyVersion",
                &[("SetAsDefault", "yes")][..],
                "'setAsDefault'",
            ),
            ("UntagUser", &[("TagKeys", "k")][..], "'tagKeys'"),
            ("TagUser", &[("Tags.member.1", "k")][..], "'tags'"),
            (
                "UntagUser",
                &[("TagKeys.member.1.Key", "k")][..],
                "'tagKeys'",
            ),
            ("UntagUser", &[("TagKeys.1", "k")][..], "'tagKeys'"),
            (
                "CreateOpenIDConnectProvider",
                &[("ClientIDList.member.0", "a")][..],
                "'clientIDList'",
            ),
            (
                "CreateOpenIDConnectProvider",
                &[("ClientIDList.member.x", "a")][..],
                "'clientIDList'",
            ),
            (
                "CreateOpenIDConnectProvider",
                &[("ClientIDList.member.1001", "a")][..],
                "'clientIDList'",
            ),
            ("ListUsers", &[("MaxItems.member.1", "1")][..], "'maxItems'"),
        ] {
            let err = decode(action, pairs).unwrap_err();
            assert_eq!(err.code, AwsCode::ValidationError, "{pairs:?}");
            assert!(err.message.contains(member), "{pairs:?}: {}", err.message);
        }
    }

    #[test]
    fn echoed_values_are_bounded() {
        let long = "9".repeat(10_000);
        let err = decode("ListUsers", &[("MaxItems", &format!("x{long}"))]).unwrap_err();
        assert!(err.message.len() < 1_000, "{}", err.message.len());
    }

    #[test]
    fn presigned_query_parameters_are_not_the_actions() {
        let got = decode("GetUser", &[("X-Amz-Signature", "abc"), ("UserName", "u")]).unwrap();
        assert_eq!(got, json!({"UserName": "u"}));
    }
}
