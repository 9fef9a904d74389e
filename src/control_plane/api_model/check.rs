//! An action's parameters checked against the model before the action runs, as AWS's front end
//! checks them: every member the operation takes, at any depth, against its shape's type,
//! length, range, pattern and enumeration; members the operation does not take refused (a
//! misspelt `PermissionsBoundry` must never be dropped silently: the user would get a user
//! without the boundary they meant).
//!
//! Constraint violations are gathered as AWS gathers them, into one `ValidationError` whose
//! message lists each ("2 validation errors detected: Value '…' at 'userName' failed to satisfy
//! constraint: Member must have length less than or equal to 64; …"), naming members by AWS's
//! location (`userName`, `tags.1.member.key`). Values of sensitive members (the model's, and
//! the caller's list of secrets) are never echoed.

use regex::Regex;
use serde_json::{Map, Value};

use super::{closest, ApiModel, Shape, ShapeKind};
use crate::error::echo;

/// Why an action's parameters do not fit the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A required top-level member is absent (IAM's `MissingParameter`).
    #[error("The request must contain the parameter {0}.")]
    Missing(String),
    /// A member the operation (or the structure) does not take.
    #[error("{}", unknown_message(name, operation, suggestion.as_deref()))]
    Unknown {
        /// The member as sent.
        name: String,
        /// The operation.
        operation: String,
        /// The member meant, when the name is a likely typo of one.
        suggestion: Option<String>,
    },
    /// A value of the wrong JSON type (a list where a string belongs).
    #[error("Invalid value for parameter {name}: must be {expected}")]
    WrongType {
        /// The member's location.
        name: String,
        /// What the shape holds.
        expected: &'static str,
    },
    /// Values that break their shapes' constraints: AWS's `ValidationError` list.
    #[error("{}", constraints_message(.0))]
    Constraints(Vec<String>),
}

fn unknown_message(name: &str, operation: &str, suggestion: Option<&str>) -> String {
    match suggestion {
        Some(meant) => {
            format!("{operation} does not take the parameter {name}; did you mean {meant}?")
        }
        None => format!("{operation} does not take the parameter {name}."),
    }
}

fn constraints_message(violations: &[String]) -> String {
    let count = violations.len();
    let noun = if count == 1 { "error" } else { "errors" };
    format!(
        "{count} validation {noun} detected: {}",
        violations.join("; ")
    )
}

/// A compiled pattern of the model.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    regex: Regex,
    /// A substring the value must not contain: the one Java look-ahead of IAM's model
    /// (`-(?!-)`, "no two hyphens in a row") that Rust's regular expressions do not have.
    forbidden: Option<&'static str>,
}

/// Java-only patterns of the model, each with an equivalent Rust pattern and the substring
/// the look-ahead forbids.
const JAVA_ONLY: &[(&str, &str, &str)] = &[(
    "^[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]$",
    "[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
    "--",
)];

// === impl Pattern ===

impl Pattern {
    /// Compiles one of the model's (Java) patterns, matched against the whole value as Java's
    /// `String.matches` does; `\w` and `\d` keep their ASCII meaning.
    pub(super) fn compile(java: &str) -> Result<Self, String> {
        let (source, forbidden) = match JAVA_ONLY.iter().find(|(j, _, _)| *j == java) {
            Some((_, rust, forbidden)) => ((*rust).to_owned(), Some(*forbidden)),
            None => (ascii_classes(java), None),
        };
        let regex = Regex::new(&format!("^(?:{source})$"))
            .map_err(|e| format!("the pattern {java} does not compile: {e}"))?;
        Ok(Self { regex, forbidden })
    }

    fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value) && self.forbidden.is_none_or(|f| !value.contains(f))
    }
}

/// `pattern` with `\w` and `\d` spelt as the ASCII classes Java means by them.
fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                let class = match next {
                    'w' => Some("0-9A-Za-z_"),
                    'd' => Some("0-9"),
                    _ => None,
                };
                match (class, in_class) {
                    (Some(class), true) => out.push_str(class),
                    (Some(class), false) => {
                        out.push('[');
                        out.push_str(class);
                        out.push(']');
                    }
                    (None, _) => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// AWS names members in camel case in its messages (`maxItems`).
pub fn location_name(member: &str) -> String {
    let mut out = member.to_owned();
    if let Some(first) = out.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    out
}

/// What a walk over one request collects.
struct Walk<'m> {
    model: &'m ApiModel,
    secrets: &'m [&'m str],
    violations: Vec<String>,
}

// === impl ApiModel ===

impl ApiModel {
    /// Checks `parameters` of `operation` against the model. An operation the model does not
    /// know passes unchecked (the dispatcher refuses it). Members named in `secrets`, at any
    /// depth, are treated as sensitive.
    ///
    /// # Errors
    /// The first absent required member, unknown member or value of the wrong type (named as
    /// AWS names the parameter, `UserName`, or by its location when nested); otherwise every
    /// constraint violation at once.
    pub fn check_input(
        &self,
        operation: &str,
        parameters: &Map<String, Value>,
        secrets: &[&str],
    ) -> Result<(), InputError> {
        let Some(op) = self.operation(operation) else {
            return Ok(());
        };
        for (name, value) in parameters {
            if value.is_null() {
                continue;
            }
            if !op.members.iter().any(|m| &m.name == name) {
                let suggestion =
                    closest(name, op.members.iter().map(|m| m.name.as_str())).map(str::to_owned);
                return Err(InputError::Unknown {
                    name: name.clone(),
                    operation: operation.to_owned(),
                    suggestion,
                });
            }
        }
        if let Some(member) = op
            .members
            .iter()
            .find(|m| m.required && parameters.get(&m.name).is_none_or(Value::is_null))
        {
            return Err(InputError::Missing(member.name.clone()));
        }
        let mut walk = Walk {
            model: self,
            secrets,
            violations: Vec::new(),
        };
        for member in &op.members {
            let Some(value) = parameters.get(&member.name).filter(|v| !v.is_null()) else {
                continue;
            };
            let Some(shape) = self.shape(&member.shape) else {
                continue;
            };
            let at = location_name(&member.name);
            let sensitive = secrets.contains(&member.name.as_str());
            walk.value(operation, &at, shape, sensitive, value)
                .map_err(|e| match e {
                    InputError::WrongType { name, expected } if name == at => {
                        InputError::WrongType {
                            name: member.name.clone(),
                            expected,
                        }
                    }
                    other => other,
                })?;
        }
        if walk.violations.is_empty() {
            Ok(())
        } else {
            Err(InputError::Constraints(walk.violations))
        }
    }
}

// === impl Walk ===

impl Walk<'_> {
    fn value(
        &mut self,
        operation: &str,
        at: &str,
        shape: &Shape,
        sensitive: bool,
        value: &Value,
    ) -> Result<(), InputError> {
        match shape.kind {
            ShapeKind::String => {
                let text = value.as_str().ok_or_else(|| wrong(at, "a string"))?;
                self.string(at, shape, sensitive, text);
            }
            ShapeKind::Integer | ShapeKind::Long => {
                let number = match value {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| wrong(at, "an integer"))?;
                self.range(at, shape, number);
            }
            ShapeKind::Boolean => {
                let ok = match value {
                    Value::Bool(_) => true,
                    Value::String(s) => {
                        s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
                    }
                    _ => false,
                };
                if !ok {
                    return Err(wrong(at, "a boolean"));
                }
            }
            ShapeKind::Timestamp => {
                if !(value.is_string() || value.is_number()) {
                    return Err(wrong(at, "a date and time"));
                }
            }
            ShapeKind::Blob => {
                if !value.is_string() {
                    return Err(wrong(at, "base64 text"));
                }
            }
            ShapeKind::List => {
                let items = value.as_array().ok_or_else(|| wrong(at, "a list"))?;
                self.size(at, shape, items.len());
                if let Some(member) = shape.member.as_deref().and_then(|m| self.model.shape(m)) {
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("{at}.{}.member", i + 1);
                        if item.is_null() {
                            self.violations.push(not_null(&at));
                        } else {
                            self.value(operation, &at, member, sensitive, item)?;
                        }
                    }
                }
            }
            ShapeKind::Map => {
                let entries = value.as_object().ok_or_else(|| wrong(at, "a map"))?;
                self.size(at, shape, entries.len());
                let key_shape = shape.key.as_deref().and_then(|k| self.model.shape(k));
                let value_shape = shape.value.as_deref().and_then(|v| self.model.shape(v));
                for (i, (key, item)) in entries.iter().enumerate() {
                    let at = format!("{at}.{}", i + 1);
                    if let Some(key_shape) = key_shape {
                        self.string(&format!("{at}.key"), key_shape, sensitive, key);
                    }
                    if let Some(value_shape) = value_shape {
                        let at = format!("{at}.value");
                        self.value(operation, &at, value_shape, sensitive, item)?;
                    }
                }
            }
            ShapeKind::Structure => {
                let fields = value.as_object().ok_or_else(|| wrong(at, "a structure"))?;
                if let Some(name) = fields
                    .keys()
                    .find(|name| !shape.members.iter().any(|f| &f.name == *name))
                {
                    let suggestion = closest(name, shape.members.iter().map(|f| f.name.as_str()))
                        .map(|meant| format!("{at}.{}", location_name(meant)));
                    return Err(InputError::Unknown {
                        name: format!("{at}.{}", location_name(name)),
                        operation: operation.to_owned(),
                        suggestion,
                    });
                }
                for field in &shape.members {
                    let at = format!("{at}.{}", location_name(&field.name));
                    match fields.get(&field.name).filter(|v| !v.is_null()) {
                        None if field.required => self.violations.push(not_null(&at)),
                        None => {}
                        Some(item) => {
                            if let Some(field_shape) = self.model.shape(&field.shape) {
                                let sensitive =
                                    sensitive || self.secrets.contains(&field.name.as_str());
                                self.value(operation, &at, field_shape, sensitive, item)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn string(&mut self, at: &str, shape: &Shape, sensitive: bool, text: &str) {
        let shown = if sensitive || shape.sensitive {
            format!("Value at '{at}'")
        } else {
            format!("Value '{}' at '{at}'", echo(text))
        };
        let length = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
        let mut push = |constraint: String| {
            self.violations.push(format!(
                "{shown} failed to satisfy constraint: {constraint}"
            ));
        };
        if let Some(max) = shape.max.filter(|&max| length > max) {
            push(format!(
                "Member must have length less than or equal to {max}"
            ));
        }
        if let Some(min) = shape.min.filter(|&min| length < min) {
            push(format!(
                "Member must have length greater than or equal to {min}"
            ));
        }
        if let Some(java) = &shape.pattern {
            let matches = self
                .model
                .patterns
                .get(java)
                .is_none_or(|p| p.is_match(text));
            if !matches {
                push(format!(
                    "Member must satisfy regular expression pattern: {java}"
                ));
            }
        }
        if !shape.values.is_empty() && !shape.values.iter().any(|v| v == text) {
            push(format!(
                "Member must satisfy enum value set: [{}]",
                shape.values.join(", ")
            ));
        }
    }

    fn range(&mut self, at: &str, shape: &Shape, number: i64) {
        let shown = format!("Value '{number}' at '{at}'");
        if let Some(max) = shape.max.filter(|&max| number > max) {
            self.violations.push(format!(
                "{shown} failed to satisfy constraint: Member must have value less than or equal to {max}"
            ));
        }
        if let Some(min) = shape.min.filter(|&min| number < min) {
            self.violations.push(format!(
                "{shown} failed to satisfy constraint: Member must have value greater than or equal to {min}"
            ));
        }
    }

    fn size(&mut self, at: &str, shape: &Shape, len: usize) {
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        if let Some(max) = shape.max.filter(|&max| len > max) {
            self.violations.push(format!(
                "Value at '{at}' failed to satisfy constraint: Member must have length less than or equal to {max}"
            ));
        }
        if let Some(min) = shape.min.filter(|&min| len < min) {
            self.violations.push(format!(
                "Value at '{at}' failed to satisfy constraint: Member must have length greater than or equal to {min}"
            ));
        }
    }
}

fn wrong(at: &str, expected: &'static str) -> InputError {
    InputError::WrongType {
        name: at.to_owned(),
        expected,
    }
}

fn not_null(at: &str) -> String {
    format!("Value null at '{at}' failed to satisfy constraint: Member must not be null")
}

#[cfg(test)]
mod tests;
