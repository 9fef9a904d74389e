//! The checks, one walk over the positioned document.
//!
//! Messages are AWS's text from the policy check reference with the placeholders filled in;
//! each check says in a comment where it is deliberately narrower than AWS's (to never report
//! a finding AWS would not).

use std::collections::HashSet;

use super::spanned::{self, Lines, Member, Node, Value};
use super::{
    Finding, FindingType, Location, PathElement, Span, ValidatePolicyType, ValidateResourceType,
};
use crate::policy::catalog::{catalog, ActionCatalog};
use crate::policy::pattern::{Glob, NoVars, Syntax};

const DATA_TYPE_MISMATCH: &str = "The text does not match the expected JSON data type.";
const STATEMENT_KEYS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];
const PRINCIPAL_KEYS: [&str; 4] = ["AWS", "Service", "Federated", "CanonicalUser"];

use FindingType::{Error, SecurityWarning, Suggestion, Warning};

type Path = Vec<PathElement>;

/// A string of the document with its place.
struct Item<'a> {
    text: &'a str,
    node: &'a Node,
    path: Path,
}

/// What one statement says, for the checks that look at several elements together.
#[derive(Default)]
struct Facts<'a> {
    allow: bool,
    actions: Option<(bool, Vec<Item<'a>>)>,
    resources: Option<(bool, Vec<Item<'a>>)>,
    /// Lowercased condition keys.
    condition_keys: HashSet<String>,
}

struct Checker {
    lines: Lines,
    policy_type: ValidatePolicyType,
    trust: bool,
    catalog: Option<&'static ActionCatalog>,
    findings: Vec<Finding>,
}

pub(super) fn run(
    text: &str,
    policy_type: ValidatePolicyType,
    resource_type: Option<ValidateResourceType>,
) -> Vec<Finding> {
    let chars: Vec<char> = text.chars().collect();
    let mut checker = Checker {
        lines: Lines::new(&chars),
        policy_type,
        trust: resource_type == Some(ValidateResourceType::RoleTrust),
        catalog: catalog().ok(),
        findings: Vec::new(),
    };
    match spanned::parse(&chars) {
        Ok(root) => checker.document(&root),
        Err(e) => {
            let at = checker.lines.position(e.offset);
            let location = Location {
                path: Vec::new(),
                span: Span { start: at, end: at },
            };
            checker.findings.push(Finding::new(
                Error,
                "json-syntax-error",
                format!(
                    "Fix the JSON syntax error at index {} line {} column {}.",
                    at.offset, at.line, at.column
                ),
                vec![location],
            ));
        }
    }
    checker.findings
}

fn with(path: &[PathElement], element: PathElement) -> Path {
    let mut out = path.to_vec();
    out.push(element);
    out
}

fn value(name: &str) -> PathElement {
    PathElement::Value(name.to_owned())
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

/// The node as canonical JSON (object keys sorted), to compare statements.
fn canonical(node: &Node, skip_sid: bool) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) | Value::String(n) => J::String(n.clone()),
        Value::Array(items) => J::Array(items.iter().map(|n| canonical(n, false)).collect()),
        Value::Object(members) => J::Object(
            members
                .iter()
                .filter(|m| !(skip_sid && m.key == "Sid"))
                .map(|m| (m.key.clone(), canonical(&m.value, false)))
                .collect(),
        ),
    }
}

// === impl Checker ===

impl Checker {
    fn location(&self, path: Path, start: usize, end: usize) -> Location {
        Location {
            path,
            span: Span {
                start: self.lines.position(start),
                end: self.lines.position(end),
            },
        }
    }

    fn at(&self, path: Path, node: &Node) -> Location {
        self.location(path, node.start, node.end)
    }

    fn add(&mut self, finding_type: FindingType, slug: &str, details: String, at: Vec<Location>) {
        self.findings
            .push(Finding::new(finding_type, slug, details, at));
    }

    fn mismatch(&mut self, path: Path, node: &Node) {
        let at = self.at(path, node);
        self.add(
            Error,
            "data-type-mismatch",
            DATA_TYPE_MISMATCH.into(),
            vec![at],
        );
    }

    fn document(&mut self, root: &Node) {
        let Value::Object(members) = &root.value else {
            self.mismatch(Vec::new(), root);
            return;
        };
        let mut version = None;
        let mut statement = None;
        for member in members {
            match member.key.as_str() {
                "Version" => version = Some(member),
                "Statement" => statement = Some(member),
                "Id" => {}
                other => self.invalid_element(&[], member, other),
            }
        }
        match version {
            None => {
                let at = self.location(Vec::new(), root.start, root.start);
                self.add(
                    Warning,
                    "missing-version",
                    "We recommend that you specify the Version element to help you with debugging permission issues.".into(),
                    vec![at],
                );
            }
            Some(m) => match &m.value.value {
                Value::String(v) if v == "2012-10-17" || v == "2008-10-17" => {}
                Value::String(v) => {
                    let at = self.at(vec![value("Version")], &m.value);
                    self.add(
                        Error,
                        "invalid-version",
                        format!("The version {v} is not valid. Use one of the following versions: 2012-10-17, 2008-10-17"),
                        vec![at],
                    );
                }
                _ => self.mismatch(vec![value("Version")], &m.value),
            },
        }
        let Some(statement) = statement else {
            let at = self.location(Vec::new(), root.start, root.start);
            self.add(
                Error,
                "missing-statement",
                "Add a statement to the policy".into(),
                vec![at],
            );
            return;
        };
        let base = vec![value("Statement")];
        let statements: Vec<(Path, &Node)> = match &statement.value.value {
            Value::Object(_) => vec![(base, &statement.value)],
            Value::Array(items) if items.is_empty() => {
                let at = self.at(base, &statement.value);
                self.add(
                    Error,
                    "missing-statement",
                    "Add a statement to the policy".into(),
                    vec![at],
                );
                return;
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (with(&base, PathElement::Index(i)), n))
                .collect(),
            _ => {
                self.mismatch(base, &statement.value);
                return;
            }
        };
        let mut sids: Vec<String> = Vec::new();
        let mut seen: Vec<serde_json::Value> = Vec::new();
        for (path, node) in statements {
            let Value::Object(members) = &node.value else {
                self.mismatch(path, node);
                continue;
            };
            self.statement(&path, node, members, &mut sids);
            let shape = canonical(node, true);
            if seen.contains(&shape) {
                let at = self.at(path, node);
                self.add(
                    Suggestion,
                    "redundant-statement",
                    "The statements are redundant because they provide identical permissions. Update the policy to remove the redundant statement.".into(),
                    vec![at],
                );
            } else {
                seen.push(shape);
            }
        }
    }

    fn invalid_element(&mut self, path: &[PathElement], member: &Member, name: &str) {
        let at = self.location(
            with(path, PathElement::Key(name.to_owned())),
            member.key_start,
            member.key_end,
        );
        self.add(
            Error,
            "invalid-policy-element",
            format!("The policy element {name} is not valid."),
            vec![at],
        );
    }

    fn statement(&mut self, path: &Path, node: &Node, members: &[Member], sids: &mut Vec<String>) {
        let get = |name: &str| members.iter().find(|m| m.key == name);
        for member in members {
            if !STATEMENT_KEYS.contains(&member.key.as_str()) {
                self.invalid_element(path, member, &member.key);
            }
        }
        for (a, b) in [
            ("Action", "NotAction"),
            ("Resource", "NotResource"),
            ("Principal", "NotPrincipal"),
        ] {
            if let (Some(_), Some(second)) = (get(a), get(b)) {
                let at = self.at(with(path, value(b)), &second.value);
                self.add(
                    Error,
                    "unsupported-element-combination",
                    format!("The policy elements {a} and {b} can not be used in the same statement. Remove one of these elements."),
                    vec![at],
                );
            }
        }
        let mut facts = Facts::default();
        if let Some(sid) = get("Sid") {
            let sid_path = with(path, value("Sid"));
            match &sid.value.value {
                Value::String(s) if s.is_empty() => {
                    let at = self.at(sid_path, &sid.value);
                    self.add(
                        Suggestion,
                        "empty-sid-value",
                        "Add a value to the empty string in the Sid element.".into(),
                        vec![at],
                    );
                }
                Value::String(s) => {
                    if sids.contains(s) {
                        let at = self.at(sid_path, &sid.value);
                        // IAM refuses duplicate Sids in identity and trust policies.
                        if self.policy_type == ValidatePolicyType::Identity || self.trust {
                            self.add(
                                Error,
                                "unique-sids-required",
                                "Duplicate statement IDs are not supported for this policy type. Update the Sid value.".into(),
                                vec![at],
                            );
                        } else {
                            self.add(
                                Warning,
                                "unique-sids-recommended",
                                "We recommend that you use statement IDs that are unique to your policy. Update the Sid value.".into(),
                                vec![at],
                            );
                        }
                    } else {
                        sids.push(s.clone());
                    }
                }
                _ => self.mismatch(sid_path, &sid.value),
            }
        }
        match get("Effect") {
            None => {
                let at = self.location(path.clone(), node.start, node.start);
                self.add(
                    Error,
                    "missing-effect",
                    "Add an Effect element to the policy statement with a value of Allow or Deny."
                        .into(),
                    vec![at],
                );
            }
            Some(m) => match &m.value.value {
                Value::String(e) if e == "Allow" => facts.allow = true,
                Value::String(e) if e == "Deny" => {}
                Value::String(e) => {
                    let at = self.at(with(path, value("Effect")), &m.value);
                    self.add(
                        Error,
                        "invalid-effect",
                        format!("The effect {e} is not valid. Use Allow or Deny."),
                        vec![at],
                    );
                }
                _ => self.mismatch(with(path, value("Effect")), &m.value),
            },
        }
        self.principal(
            path,
            node,
            get("Principal"),
            get("NotPrincipal"),
            facts.allow,
        );
        // Actions.
        let action = get("Action")
            .map(|m| (false, m))
            .or(get("NotAction").map(|m| (true, m)));
        match action {
            None => {
                let at = self.location(path.clone(), node.start, node.start);
                self.add(
                    Error,
                    "missing-action",
                    "Add an Action or NotAction element to the policy statement.".into(),
                    vec![at],
                );
            }
            Some((negated, m)) => {
                let element = if negated { "NotAction" } else { "Action" };
                if let Some(items) = self.strings(with(path, value(element)), &m.value) {
                    if items.is_empty() {
                        let at = self.at(with(path, value(element)), &m.value);
                        self.add(
                            Suggestion,
                            "empty-array-action",
                            "This statement includes no actions and does not affect the policy. Specify actions.".into(),
                            vec![at],
                        );
                    }
                    for item in &items {
                        self.action(item);
                    }
                    if !negated {
                        self.redundant_actions(&items);
                    }
                    facts.actions = Some((negated, items));
                }
            }
        }
        // Resources.
        let resource = get("Resource")
            .map(|m| (false, m))
            .or(get("NotResource").map(|m| (true, m)));
        match resource {
            None => {
                // Identity policies, resource policies (but not trust policies) and RCPs must
                // name resources; SCPs may leave them out.
                let required = match self.policy_type {
                    ValidatePolicyType::Identity | ValidatePolicyType::ResourceControl => true,
                    ValidatePolicyType::Resource => !self.trust,
                    ValidatePolicyType::ServiceControl => false,
                };
                if required {
                    let at = self.location(path.clone(), node.start, node.start);
                    self.add(
                        Error,
                        "missing-resource",
                        "Add a Resource or NotResource element to the policy statement.".into(),
                        vec![at],
                    );
                }
            }
            Some((negated, m)) => {
                let element = if negated { "NotResource" } else { "Resource" };
                if let Some(items) = self.strings(with(path, value(element)), &m.value) {
                    if items.is_empty() {
                        let at = self.at(with(path, value(element)), &m.value);
                        self.add(
                            Suggestion,
                            "empty-array-resource",
                            "This statement includes no resources and does not affect the policy. Specify resources.".into(),
                            vec![at],
                        );
                    }
                    for item in &items {
                        self.resource(item);
                    }
                    if !negated {
                        self.redundant_resources(&items);
                    }
                    facts.resources = Some((negated, items));
                }
            }
        }
        if let Some(condition) = get("Condition") {
            self.condition(path, condition, &mut facts);
        }
        if facts.allow && self.policy_type == ValidatePolicyType::Identity {
            self.broad_role_grants(&facts);
        }
    }

    /// The strings of an element that takes a string or an array of strings.
    fn strings<'a>(&mut self, path: Path, node: &'a Node) -> Option<Vec<Item<'a>>> {
        match &node.value {
            Value::String(s) => Some(vec![Item {
                text: s,
                node,
                path,
            }]),
            Value::Array(nodes) => {
                let mut out = Vec::new();
                for (i, n) in nodes.iter().enumerate() {
                    let item_path = with(&path, PathElement::Index(i));
                    match &n.value {
                        Value::String(s) => out.push(Item {
                            text: s,
                            node: n,
                            path: item_path,
                        }),
                        _ => {
                            self.mismatch(item_path, n);
                            return None;
                        }
                    }
                }
                Some(out)
            }
            _ => {
                self.mismatch(path, node);
                None
            }
        }
    }

    fn principal(
        &mut self,
        path: &Path,
        node: &Node,
        principal: Option<&Member>,
        not_principal: Option<&Member>,
        allow: bool,
    ) {
        let named = principal
            .map(|m| ("Principal", m))
            .or(not_principal.map(|m| ("NotPrincipal", m)));
        match (self.policy_type, named) {
            (ValidatePolicyType::Identity, Some((element, m))) => {
                let at = self.at(with(path, value(element)), &m.value);
                self.add(
                    Error,
                    "unsupported-principal",
                    "The policy type IDENTITY_POLICY does not support the Principal element. Remove the Principal element.".into(),
                    vec![at],
                );
                return;
            }
            (ValidatePolicyType::ServiceControl, Some((element, m))) => {
                let at = self.at(with(path, value(element)), &m.value);
                self.add(
                    Error,
                    "scp-syntax-error-principal",
                    "SCPs do not support specifying principals. Remove the Principal or NotPrincipal element.".into(),
                    vec![at],
                );
                return;
            }
            (ValidatePolicyType::Resource | ValidatePolicyType::ResourceControl, None) => {
                let at = self.location(path.clone(), node.start, node.start);
                self.add(
                    Error,
                    "missing-principal",
                    "Add a Principal element to the policy statement.".into(),
                    vec![at],
                );
                return;
            }
            _ => {}
        }
        let Some((element, m)) = named else { return };
        let element_path = with(path, value(element));
        if element == "NotPrincipal" && allow {
            let at = self.at(element_path.clone(), &m.value);
            self.add(
                SecurityWarning,
                "allow-with-not-principal",
                "Using Allow with NotPrincipal can be overly permissive. We recommend that you use Principal instead.".into(),
                vec![at],
            );
        }
        match &m.value.value {
            Value::String(_) => {}
            Value::Object(members) if members.is_empty() => {
                let at = self.at(element_path, &m.value);
                self.add(
                    Suggestion,
                    "empty-object-principal",
                    "This statement includes no principals and does not affect the policy. Specify principals.".into(),
                    vec![at],
                );
            }
            Value::Object(members) => {
                for member in members {
                    if !PRINCIPAL_KEYS.contains(&member.key.as_str()) {
                        let at = self.location(
                            with(&element_path, PathElement::Key(member.key.clone())),
                            member.key_start,
                            member.key_end,
                        );
                        self.add(
                            Error,
                            "invalid-principal-key",
                            format!("The principal key {} is not valid.", member.key),
                            vec![at],
                        );
                    } else if matches!(&member.value.value, Value::Array(a) if a.is_empty()) {
                        let at = self.at(with(&element_path, value(&member.key)), &member.value);
                        self.add(
                            Suggestion,
                            "empty-array-principal",
                            "This statement includes no principals and does not affect the policy. Specify principals.".into(),
                            vec![at],
                        );
                    }
                }
            }
            _ => self.mismatch(element_path, &m.value),
        }
    }

    fn action(&mut self, item: &Item<'_>) {
        let text = item.text;
        if text == "*" {
            return;
        }
        let Some((service, _)) = text.split_once(':') else {
            let at = self.at(item.path.clone(), item.node);
            self.add(
                Error,
                "invalid-action",
                format!("The action {text} does not exist."),
                vec![at],
            );
            return;
        };
        if has_wildcard(service) {
            let at = self.at(item.path.clone(), item.node);
            self.add(
                Suggestion,
                "wildcard-in-service-name",
                "Avoid using wildcards (*, ?) in the service name because it might grant unintended access to other AWS services with similar names.".into(),
                vec![at],
            );
            return;
        }
        let Some(catalog) = self.catalog else { return };
        if catalog.is_named_by_managed_policies(text) {
            return;
        }
        if catalog.service(service).is_none() {
            let at = self.at(item.path.clone(), item.node);
            self.add(
                Error,
                "invalid-service-in-action",
                format!("The service {service} specified in the action does not exist."),
                vec![at],
            );
        } else if catalog.matching(text).is_empty() {
            let at = self.at(item.path.clone(), item.node);
            self.add(
                Error,
                "invalid-action",
                format!("The action {text} does not exist."),
                vec![at],
            );
        }
    }

    /// An action is redundant when another action of the statement grants every action it
    /// grants (by the catalogue); of two equal ones, the later is.
    fn redundant_actions(&mut self, items: &[Item<'_>]) {
        let Some(catalog) = self.catalog else { return };
        let sets: Vec<HashSet<(&str, &str)>> = items
            .iter()
            .map(|item| {
                catalog
                    .matching(item.text)
                    .into_iter()
                    .map(|(s, a)| (s.prefix(), a.name()))
                    .collect()
            })
            .collect();
        let mut redundant = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            if set.is_empty() {
                continue;
            }
            let covered = sets.iter().enumerate().any(|(j, other)| {
                j != i && set.is_subset(other) && (set.len() < other.len() || j < i)
            });
            if covered {
                redundant.push(i);
            }
        }
        if let Some(first) = redundant.first().and_then(|i| items.get(*i)) {
            let details = format!(
                "The {} action(s) are redundant because they provide similar permissions. Update the policy to remove the redundant action such as: {}.",
                redundant.len(),
                first.text
            );
            let at = redundant
                .iter()
                .filter_map(|i| items.get(*i))
                .map(|item| self.at(item.path.clone(), item.node))
                .collect();
            self.add(Suggestion, "redundant-action", details, at);
        }
    }

    fn resource(&mut self, item: &Item<'_>) {
        let text = item.text;
        if text == "*" || text.starts_with('*') || text.contains("${") {
            return;
        }
        if !text.starts_with("arn:") {
            if !has_wildcard(text.get(..4).unwrap_or(text)) {
                let at = self.at(item.path.clone(), item.node);
                self.add(
                    Error,
                    "invalid-arn-prefix",
                    "Add the required prefix (arn) to the resource ARN.".into(),
                    vec![at],
                );
            }
            return;
        }
        let fields: Vec<&str> = text.splitn(6, ':').collect();
        if fields.len() < 6 {
            // A `*` may stand for the missing separators.
            if !has_wildcard(text) {
                let at = self.at(item.path.clone(), item.node);
                self.add(
                    Error,
                    "missing-arn-field",
                    "Resource ARNs must include at least 6 fields in the following structure: arn:partition:service:region:account:resource".into(),
                    vec![at],
                );
            }
            return;
        }
        let service = fields.get(2).copied().unwrap_or("");
        let Some(catalog) = self.catalog else { return };
        if service.chars().any(|c| c.is_ascii_uppercase())
            && catalog.service(service).is_some()
            && !has_wildcard(service)
        {
            let at = self.at(item.path.clone(), item.node);
            self.add(
                Error,
                "invalid-arn-service-case",
                "Update the service name in the resource ARN to use all lowercase letters.".into(),
                vec![at],
            );
        }
    }

    /// A resource is redundant when another resource of the statement matches everything it
    /// matches: `*`, a pattern that matches it as literal text, or a `prefix*` that is a prefix
    /// of its own literal start. Of two equal ones, the later is.
    fn redundant_resources(&mut self, items: &[Item<'_>]) {
        // What each resource is, worked out once: a statement of n resources compares n²
        // pairs, and each comparison is then a few comparisons of prepared text.
        struct Facts<'t> {
            text: &'t str,
            glob: Glob,
            variable: bool,
            wildcard: bool,
            /// Its text up to the first wildcard.
            literal_start: &'t str,
            /// For `prefix*` with no other wildcard: the prefix.
            prefix: Option<&'t str>,
        }
        let facts: Vec<Facts<'_>> = items
            .iter()
            .map(|item| Facts {
                text: item.text,
                glob: Glob::new(item.text),
                variable: item.text.contains("${"),
                wildcard: has_wildcard(item.text),
                literal_start: item.text.split(['*', '?']).next().unwrap_or(""),
                prefix: item
                    .text
                    .strip_suffix('*')
                    .filter(|prefix| !has_wildcard(prefix)),
            })
            .collect();
        let covers = |w: usize, n: usize| -> bool {
            let (Some(wide), Some(narrow)) = (facts.get(w), facts.get(n)) else {
                return false;
            };
            if wide.variable || narrow.variable {
                return false;
            }
            if wide.text == "*" {
                return true;
            }
            if !narrow.wildcard {
                return wide.glob.matches(narrow.text);
            }
            wide.prefix
                .is_some_and(|prefix| narrow.literal_start.starts_with(prefix))
        };
        let mut redundant = Vec::new();
        for i in 0..items.len() {
            let covered =
                (0..items.len()).any(|j| j != i && covers(j, i) && (j < i || !covers(i, j)));
            if covered {
                redundant.push(i);
            }
        }
        if !redundant.is_empty() {
            let details = format!(
                "The {} resource ARN(s) are redundant because they reference the same resource. Review the use of wildcards (*)",
                redundant.len()
            );
            let at = redundant
                .iter()
                .filter_map(|i| items.get(*i))
                .map(|item| self.at(item.path.clone(), item.node))
                .collect();
            self.add(Suggestion, "redundant-resource", details, at);
        }
    }

    fn condition(&mut self, path: &Path, member: &Member, facts: &mut Facts<'_>) {
        let condition_path = with(path, value("Condition"));
        let Value::Object(blocks) = &member.value.value else {
            self.mismatch(condition_path, &member.value);
            return;
        };
        if blocks.is_empty() {
            let at = self.at(condition_path, &member.value);
            self.add(
                Suggestion,
                "empty-object-condition",
                "This condition block is empty and it does not affect the policy. Specify conditions.".into(),
                vec![at],
            );
            return;
        }
        for block in blocks {
            let operator = block.key.as_str();
            let block_path = with(&condition_path, value(operator));
            let (qualifier, rest) = match operator.split_once(':') {
                Some((q, rest)) if q == "ForAllValues" || q == "ForAnyValue" => (Some(q), rest),
                _ => (None, operator),
            };
            let (base, if_exists) = match rest.strip_suffix("IfExists") {
                Some(base) => (base, true),
                None => (rest, false),
            };
            if base == "Null" && if_exists {
                let at = self.location(block_path.clone(), block.key_start, block.key_end);
                self.add(
                    Error,
                    "null-with-if-exists",
                    "The Null condition operator cannot be used with the IfExists suffix. Update the operator or the suffix.".into(),
                    vec![at],
                );
            }
            if base == "Null" && qualifier.is_some() {
                let at = self.location(block_path.clone(), block.key_start, block.key_end);
                self.add(
                    Suggestion,
                    "null-with-qualifier",
                    "Avoid using the Null condition operator with the ForAllValues or ForAnyValue qualifiers because they always return a true or false respectively.".into(),
                    vec![at],
                );
            }
            let Value::Object(keys) = &block.value.value else {
                self.mismatch(block_path, &block.value);
                continue;
            };
            let mut seen: Vec<&str> = Vec::new();
            for entry in keys {
                let key = entry.key.as_str();
                let key_path = with(&block_path, PathElement::Key(key.to_owned()));
                let key_at = self.location(key_path.clone(), entry.key_start, entry.key_end);
                if seen
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(key) && *s != key)
                {
                    self.add(
                        Error,
                        "duplicate-keys-with-different-case",
                        format!("The condition key {key} appears more than once with different capitalization in the same condition block. Remove the duplicate condition keys."),
                        vec![key_at.clone()],
                    );
                }
                seen.push(key);
                facts.condition_keys.insert(key.to_ascii_lowercase());
                if matches!(&entry.value.value, Value::Array(a) if a.is_empty()) {
                    let (slug, details) = match (qualifier, if_exists) {
                        (Some("ForAllValues"), _) => ("empty-array-condition-forallvalues", format!("The ForAllValues prefix with an empty condition key matches only if the key {key} is missing from the request context. To determine if the request context is empty, we recommend that you use the Null condition operator with the value of true instead.")),
                        (Some(_), _) => ("empty-array-condition-foranyvalue", format!("The ForAnyValue prefix with an empty condition key {key} never matches the request context and it does not affect the policy. Specify conditions.")),
                        (None, true) => ("empty-array-condition-ifexists", format!("The IfExists suffix with an empty condition key matches only if the key {key} is missing from the request context. To determine if the request context is empty, we recommend that you use the Null condition operator with the value of true instead.")),
                        (None, false) => ("empty-array-condition", format!("There are no values for the condition key {key} and it does not affect the policy. Specify conditions.")),
                    };
                    let at = self.at(with(&block_path, value(key)), &entry.value);
                    self.add(Suggestion, slug, details, vec![at]);
                }
                self.condition_key(key, key_at, qualifier, facts);
            }
        }
    }

    fn condition_key(
        &mut self,
        key: &str,
        at: Location,
        qualifier: Option<&str>,
        facts: &Facts<'_>,
    ) {
        let Some((prefix, _)) = key.split_once(':') else {
            self.add(
                Error,
                "invalid-condition-key-format",
                "The condition key format is not valid. Use the format service:keyname.".into(),
                vec![at],
            );
            return;
        };
        let Some(catalog) = self.catalog else { return };
        let service = catalog.service(prefix);
        let key_type = catalog
            .global_condition_key_type(key)
            .or_else(|| service.and_then(|s| s.condition_key_type(key)));
        if qualifier == Some("ForAllValues") {
            if let Some(t) = key_type {
                if !t.starts_with("ArrayOf") {
                    self.add(
                        SecurityWarning,
                        "forallvalues-with-single-valued-key",
                        format!("Using ForAllValues qualifier with the single-valued condition key {key} can be overly permissive. We recommend that you remove ForAllValues:."),
                        vec![at.clone()],
                    );
                }
            }
        }
        // Service keys the catalogue lists: every literal action of the statement must support
        // the key (AWS does not evaluate actions with wildcards for this check, nor global
        // keys).
        if prefix.eq_ignore_ascii_case("aws") {
            return;
        }
        let Some(service) = service else { return };
        if service.condition_key_type(key).is_none() {
            return;
        }
        let Some((false, actions)) = &facts.actions else {
            return;
        };
        let unsupported: Vec<&str> = actions
            .iter()
            .filter(|a| !has_wildcard(a.text))
            .filter(|a| {
                catalog.action(a.text).is_some_and(|(s, entry)| {
                    !entry.supports_condition_key(s, key)
                        && !catalog.managed_policies_use_key_with(a.text, key)
                })
            })
            .map(|a| a.text)
            .collect();
        if !unsupported.is_empty() {
            self.add(
                Error,
                "unsupported-action-for-condition-key",
                format!(
                    "The following actions: {} are not supported by the condition key {key}. The condition will not be evaluated for these actions. We recommend that you move these actions to a different statement without this condition key.",
                    unsupported.join(", ")
                ),
                vec![at],
            );
        }
    }

    /// `iam:PassRole` and `iam:CreateServiceLinkedRole` granted on every role.
    fn broad_role_grants(&mut self, facts: &Facts<'_>) {
        let (Some((not_action, actions)), Some((not_resource, resources))) =
            (&facts.actions, &facts.resources)
        else {
            return;
        };
        // Only the shapes AWS's reference names as matching every role: `*`, and an IAM ARN
        // whose resource part is `*` or `role/*` (narrower wildcards such as
        // `role/Service*` do not give a finding).
        let star_resource = resources.iter().find(|r| {
            r.text == "*"
                || (r.text.starts_with("arn:") && {
                    let fields: Vec<&str> = r.text.splitn(6, ':').collect();
                    matches!(fields.get(2), Some(&"iam") | Some(&"*"))
                        && matches!(fields.get(5), Some(&"*") | Some(&"role/*"))
                })
        });
        let targets = [
            ("iam:PassRole", "iam:passedtoservice", true),
            ("iam:CreateServiceLinkedRole", "iam:awsservicename", false),
        ];
        for (action, guard, pass_role) in targets {
            if facts.condition_keys.contains(guard) {
                continue;
            }
            // How the statement grants the action: by name, by a wildcard, or by NotAction.
            let (grant, at_item) = if *not_action {
                if actions
                    .iter()
                    .any(|a| lower_glob(a.text).matches_with(action, &NoVars, true))
                {
                    continue;
                }
                ("not-action", actions.first())
            } else if let Some(a) = actions.iter().find(|a| a.text.eq_ignore_ascii_case(action)) {
                ("name", Some(a))
            } else if let Some(a) = actions
                .iter()
                .find(|a| lower_glob(a.text).matches_with(action, &NoVars, true))
            {
                ("star", Some(a))
            } else {
                continue;
            };
            let resource_kind = if *not_resource {
                // NotResource that itself leaves out every role grants nothing here.
                if resources.iter().any(|r| {
                    r.text == "*" || Glob::new(r.text).matches("arn:aws:iam::000000000000:role/r")
                }) {
                    continue;
                }
                "not-resource"
            } else if star_resource.is_some() {
                "star"
            } else {
                continue;
            };
            let (slug, details) = if pass_role {
                match (grant, resource_kind) {
                    ("name", "star") => ("pass-role-with-star-in-resource", "Using the iam:PassRole action with wildcards (*) in the resource can be overly permissive because it allows iam:PassRole permissions on multiple resources. We recommend that you specify resource ARNs or add the iam:PassedToService condition key to your statement."),
                    ("star", "star") => ("pass-role-with-star-in-action-and-resource", "Using wildcards (*) in the action and the resource can be overly permissive because it allows iam:PassRole permissions on all resources. We recommend that you specify resource ARNs or add the iam:PassedToService condition key to your statement."),
                    ("not-action", "star") => ("pass-role-with-star-in-resource-and-not-action", "Using a resource with wildcards (*) and NotAction can be overly permissive because it allows iam:PassRole permissions on all resources. We recommend that you specify resource ARNs or add the iam:PassedToService condition key to your statement."),
                    ("name", _) => ("pass-role-with-not-resource", "Using the iam:PassRole action with NotResource can be overly permissive because it can allow iam:PassRole permissions on multiple resources. We recommend that you specify resource ARNs instead."),
                    ("star", _) => ("pass-role-with-star-in-action-and-not-resource", "Using an action with a wildcard (*) and NotResource can be overly permissive because it can allow iam:PassRole permissions on multiple resources. We recommend that you specify resource ARNs instead."),
                    _ => ("pass-role-with-not-action-and-not-resource", "Using NotAction with NotResource can be overly permissive because it can allow iam:PassRole permissions on multiple resources.. We recommend that you specify resource ARNs instead."),
                }
            } else {
                match (grant, resource_kind) {
                    ("name", "star") => ("create-slr-with-star-in-resource", "Using the iam:CreateServiceLinkedRole action with wildcards (*) in the resource can allow creation of unintended service-linked roles. We recommend that you specify resource ARNs instead."),
                    ("star", "star") => ("create-slr-with-star-in-action-and-resource", "Using wildcards (*) in the action and the resource can allow creation of unintended service-linked roles because it allows iam:CreateServiceLinkedRole permissions on all resources. We recommend that you specify resource ARNs instead."),
                    ("not-action", "star") => ("create-slr-with-star-in-resource-and-not-action", "Using a resource with wildcards (*) and NotAction can allow creation of unintended service-linked roles because it allows iam:CreateServiceLinkedRole permissions on all resources. We recommend that you specify resource ARNs instead."),
                    ("name", _) => ("create-slr-with-not-resource", "Using the iam:CreateServiceLinkedRole action with NotResource can allow creation of unintended service-linked roles for multiple resources. We recommend that you specify resource ARNs instead."),
                    ("star", _) => ("create-slr-with-star-in-action-and-not-resource", "Using an action with a wildcard(*) and NotResource can allow creation of unintended service-linked roles because it can allow iam:CreateServiceLinkedRole permissions on multiple resources. We recommend that you specify resource ARNs instead."),
                    _ => ("create-slr-with-not-action-and-not-resource", "Using NotAction with NotResource can allow creation of unintended service-linked roles because it allows iam:CreateServiceLinkedRole permissions on multiple resources. We recommend that you specify resource ARNs instead."),
                }
            };
            let finding_type = if pass_role { SecurityWarning } else { Warning };
            let mut at = Vec::new();
            if let Some(item) = at_item {
                at.push(self.at(item.path.clone(), item.node));
            }
            if resource_kind == "star" {
                if let Some(r) = star_resource {
                    at.push(self.at(r.path.clone(), r.node));
                }
            }
            self.add(finding_type, slug, details.to_owned(), at);
        }
    }
}
