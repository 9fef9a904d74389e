//! Reading an action's parameters from its JSON object, with AWS's parameter names.
//!
//! A parameter that is absent or `null` is missing. Strings must be JSON strings; numbers may
//! be JSON numbers or numeric strings; booleans JSON booleans or `"true"`/`"false"`; lists
//! JSON arrays; tags `[{"Key": .., "Value": ..}]`. Errors name the parameter but never echo
//! its value, so a secret sent with the wrong type never reaches a message.

use serde_json::{Map, Value};

use crate::control_plane::AdminError;
use crate::directory::Tag;

/// The parameters of one call.
#[derive(Debug, Clone, Copy)]
pub(super) struct Params<'a> {
    map: &'a Map<String, Value>,
}

/// An `InvalidParameterValue` error.
pub(super) fn invalid(name: &str, reason: &str) -> AdminError {
    AdminError::InvalidParameterValue {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

fn missing(name: &str) -> AdminError {
    AdminError::MissingParameter(name.to_owned())
}

// === impl Params ===

impl<'a> Params<'a> {
    /// Wraps the parameters object.
    pub(super) fn new(map: &'a Map<String, Value>) -> Self {
        Self { map }
    }

    /// The value of `name`, unless absent or `null`.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// Whether `name` is given (not absent, not `null`), whatever its type.
    pub(super) fn is_present(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A required string.
    pub(super) fn str(&self, name: &str) -> Result<&'a str, AdminError> {
        self.opt_str(name)?.ok_or_else(|| missing(name))
    }

    /// An optional string.
    pub(super) fn opt_str(&self, name: &str) -> Result<Option<&'a str>, AdminError> {
        self.get(name)
            .map(|v| v.as_str().ok_or_else(|| invalid(name, "must be a string")))
            .transpose()
    }

    /// An optional string, owned.
    pub(super) fn opt_string(&self, name: &str) -> Result<Option<String>, AdminError> {
        Ok(self.opt_str(name)?.map(str::to_owned))
    }

    /// An optional non-negative integer that fits in a `u32`.
    pub(super) fn opt_u32(&self, name: &str) -> Result<Option<u32>, AdminError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let number = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let number = number.ok_or_else(|| invalid(name, "must be a non-negative integer"))?;
        u32::try_from(number)
            .map(Some)
            .map_err(|_| invalid(name, "is too large"))
    }

    /// An optional boolean.
    pub(super) fn opt_bool(&self, name: &str) -> Result<Option<bool>, AdminError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value {
            Value::Bool(b) => Ok(Some(*b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            _ => Err(invalid(name, "must be a boolean")),
        }
    }

    /// A boolean, `default` when absent.
    pub(super) fn bool_or(&self, name: &str, default: bool) -> Result<bool, AdminError> {
        Ok(self.opt_bool(name)?.unwrap_or(default))
    }

    /// An optional list of strings (empty when absent).
    pub(super) fn str_list(&self, name: &str) -> Result<Vec<String>, AdminError> {
        Ok(self.opt_str_list(name)?.unwrap_or_default())
    }

    /// A required list of strings.
    pub(super) fn req_str_list(&self, name: &str) -> Result<Vec<String>, AdminError> {
        self.opt_str_list(name)?.ok_or_else(|| missing(name))
    }

    fn opt_str_list(&self, name: &str) -> Result<Option<Vec<String>>, AdminError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let items = value
            .as_array()
            .ok_or_else(|| invalid(name, "must be a list of strings"))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(name, "must be a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Optional tags, `[{"Key": .., "Value": ..}]` (empty when absent).
    pub(super) fn tags(&self, name: &str) -> Result<Vec<Tag>, AdminError> {
        Ok(self.opt_tags(name)?.unwrap_or_default())
    }

    /// Required tags.
    pub(super) fn req_tags(&self, name: &str) -> Result<Vec<Tag>, AdminError> {
        self.opt_tags(name)?.ok_or_else(|| missing(name))
    }

    fn opt_tags(&self, name: &str) -> Result<Option<Vec<Tag>>, AdminError> {
        const REASON: &str = "must be a list of {\"Key\": string, \"Value\": string} objects";
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let items = value.as_array().ok_or_else(|| invalid(name, REASON))?;
        items
            .iter()
            .map(|item| {
                let field = |f: &str| item.get(f).and_then(Value::as_str).map(str::to_owned);
                match (field("Key"), field("Value")) {
                    (Some(key), Some(value)) => Ok(Tag { key, value }),
                    _ => Err(invalid(name, REASON)),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}
