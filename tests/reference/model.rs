//! The reference evaluator: obviously correct rather than fast.
//!
//! It supports the subset of the language the generators produce: identity policies, an
//! optional permissions boundary and an optional same- or cross-account resource policy naming
//! `AWS` principals; callers that are IAM users or role sessions; and the condition operators
//! `String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,Like,NotLike}`,
//! `NumericLessThan`, `NumericGreaterThanEquals`, `Bool` and `Null`, with `ForAllValues:`,
//! `ForAnyValue:` and `IfExists`. Anything else panics, so the subset cannot widen silently.
//!
//! Issue 12's rules, written out again from their sources: `ForAllValues:Null` is always true
//! and `ForAnyValue:Null` always false (Access Analyzer, "Null with qualifier"); a condition
//! with a policy value that does not read as its operator's type never holds; `Bool` values
//! substitute policy variables; a KMS action on a key ARN needs a key policy that grants
//! (KMS Developer Guide, key-policies).

use std::collections::BTreeMap;

use iamlet::policy::{
    BaseOperator, ConditionEntry, Effect, PolicyDocument, PrincipalSpec, PrincipalType,
    SetQualifier, Statement,
};

/// The three outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Verdict {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// The caller, read from its ARN by plain string splitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// `arn:aws:iam::ACCOUNT:user/path/name`.
    User { account: String, arn: String },
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    RoleSession {
        account: String,
        role: String,
        session: String,
    },
}

/// The values of one request key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CtxEntry {
    /// A multi-valued key (`aws:TagKeys`); a single-valued key has exactly one value.
    pub(crate) multi: bool,
    pub(crate) values: Vec<String>,
}

/// A request.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) caller: Caller,
    pub(crate) action: String,
    pub(crate) resource: String,
    /// Set explicitly; otherwise the ARN's account, otherwise the caller's.
    pub(crate) resource_account: Option<String>,
    /// Keys as given (looked up case-insensitively).
    pub(crate) context: BTreeMap<String, CtxEntry>,
}

/// The policies that apply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policies<'a> {
    pub(crate) identity: &'a [PolicyDocument],
    pub(crate) boundary: Option<&'a PolicyDocument>,
    pub(crate) resource: Option<&'a PolicyDocument>,
}

/// How a resource policy's `Principal` names the caller (weakest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    /// The caller's account: delegation only.
    Account,
    /// The caller's role: bypasses the identity policies but not the boundary.
    Role,
    /// The caller itself or `*`.
    Direct,
}

// === wildcard matching ===

/// One pattern element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    /// `*`: any run of characters.
    Any,
    /// `?`: exactly one character.
    One,
}

/// Naive recursive matcher; exponential in the number of `*`, which is fine for tiny inputs.
pub(crate) fn naive_match(pattern: &[Tok], text: &[char], fold: bool) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((Tok::Any, rest)) => (0..=text.len()).any(|i| naive_match(rest, &text[i..], fold)),
        Some((Tok::One, rest)) => !text.is_empty() && naive_match(rest, &text[1..], fold),
        Some((Tok::Lit(c), rest)) => {
            !text.is_empty() && same_char(*c, text[0], fold) && naive_match(rest, &text[1..], fold)
        }
    }
}

fn same_char(a: char, b: char, fold: bool) -> bool {
    a == b || (fold && a.to_lowercase().eq(b.to_lowercase()))
}

/// Every character of `pattern`, `*` and `?` as wildcards.
pub(crate) fn wildcard_tokens(pattern: &str) -> Vec<Tok> {
    pattern
        .chars()
        .map(|c| match c {
            '*' => Tok::Any,
            '?' => Tok::One,
            c => Tok::Lit(c),
        })
        .collect()
}

/// Reads `pattern` into tokens, substituting `${...}` policy variables from `vars` (only given
/// for `2012-10-17` documents). A substituted value is literal text. `None` when a variable has
/// no value and no default: such a pattern matches nothing (IAM-SEMANTICS §1.7).
fn tokens(pattern: &str, wildcards: bool, vars: Option<&Input>) -> Option<Vec<Tok>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(input) = vars {
            if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
                let close = chars[i + 2..].iter().position(|c| *c == '}');
                if let Some(close) = close {
                    let inner: String = chars[i + 2..i + 2 + close].iter().collect();
                    if let Some(value) = variable(&inner, input) {
                        out.extend(value?.chars().map(Tok::Lit));
                        i += close + 3;
                        continue;
                    }
                }
            }
        }
        out.push(match chars[i] {
            '*' if wildcards => Tok::Any,
            '?' if wildcards => Tok::One,
            c => Tok::Lit(c),
        });
        i += 1;
    }
    Some(out)
}

/// The text of `${inner}`: `None` when `inner` is not a variable at all (the text then stays
/// literal), `Some(None)` when it is one without a value.
fn variable(inner: &str, input: &Input) -> Option<Option<String>> {
    if matches!(inner, "*" | "?" | "$") {
        return Some(Some(inner.to_owned()));
    }
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let quoted = default.strip_prefix('\'')?.strip_suffix('\'')?;
            (key.trim(), Some(quoted.to_owned()))
        }
        None => (inner.trim(), None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    // Only single-valued keys can be variables.
    let value = match input.lookup(key) {
        Some(CtxEntry {
            multi: false,
            values,
        }) => values.first().cloned(),
        _ => None,
    };
    Some(value.or(default))
}

fn pattern_matches(
    pattern: &str,
    text: &str,
    wildcards: bool,
    fold: bool,
    vars: Option<&Input>,
) -> bool {
    let text: Vec<char> = text.chars().collect();
    tokens(pattern, wildcards, vars).is_some_and(|p| naive_match(&p, &text, fold))
}

// === the request ===

impl Caller {
    /// Reads a user or role-session ARN.
    pub(crate) fn parse(arn: &str) -> Self {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        assert_eq!(parts.len(), 6, "{arn}");
        let account = parts[4].to_owned();
        let resource: Vec<&str> = parts[5].split('/').collect();
        match (parts[2], resource[0]) {
            ("iam", "user") => Self::User {
                account,
                arn: arn.to_owned(),
            },
            ("sts", "assumed-role") => Self::RoleSession {
                account,
                role: resource[1].to_owned(),
                session: resource[2].to_owned(),
            },
            _ => panic!("caller outside the reference subset: {arn}"),
        }
    }

    fn account(&self) -> &str {
        match self {
            Self::User { account, .. } | Self::RoleSession { account, .. } => account,
        }
    }

    /// How one `AWS` principal value names this caller.
    fn named_by(&self, value: &str) -> Option<Strength> {
        if value == "*" {
            return Some(Strength::Direct);
        }
        if value.len() == 12 && value.chars().all(|c| c.is_ascii_digit()) {
            return (value == self.account()).then_some(Strength::Account);
        }
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        assert_eq!(
            parts.len(),
            6,
            "principal outside the reference subset: {value}"
        );
        let (service, account, resource) = (parts[2], parts[4], parts[5]);
        let path: Vec<&str> = resource.split('/').collect();
        match (service, path[0], self) {
            ("iam", "root", _) => (account == self.account()).then_some(Strength::Account),
            ("iam", "user", Self::User { arn, .. }) => (arn == value).then_some(Strength::Direct),
            ("iam", "role", Self::RoleSession { role, .. }) => {
                // A role ARN names every session of the role; the session ARN drops the path.
                let name = *path.last().unwrap();
                (account == self.account() && name == role).then_some(Strength::Role)
            }
            ("sts", "assumed-role", Self::RoleSession { role, session, .. }) => {
                (account == self.account() && path[1] == role && path[2] == session)
                    .then_some(Strength::Direct)
            }
            ("iam", "user" | "role", _) | ("sts", "assumed-role", _) => None,
            _ => panic!("principal outside the reference subset: {value}"),
        }
    }
}

impl Input {
    /// The entry of `key`, compared case-insensitively.
    fn lookup(&self, key: &str) -> Option<&CtxEntry> {
        self.context
            .iter()
            .find(|(k, _)| k.to_lowercase() == key.to_lowercase())
            .map(|(_, v)| v)
    }

    /// The account owning the resource.
    fn resource_account(&self) -> String {
        if let Some(account) = &self.resource_account {
            return account.clone();
        }
        let parts: Vec<&str> = self.resource.splitn(6, ':').collect();
        if parts.len() == 6 && parts[0].eq_ignore_ascii_case("arn") && !parts[4].is_empty() {
            return parts[4].to_owned();
        }
        self.caller.account().to_owned()
    }
}

// === statements ===

fn action_matches(pattern: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (p_service, p_name) = pattern.split_once(':').unwrap();
    let (service, name) = action.split_once(':').unwrap();
    // Service and name are both case-insensitive; wildcards only in the name.
    p_service.eq_ignore_ascii_case(service) && pattern_matches(p_name, name, true, true, None)
}

fn resource_matches(pattern: &str, resource: &str, vars: Option<&Input>) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    assert!(
        p[0].eq_ignore_ascii_case("arn"),
        "resource pattern outside the reference subset: {pattern}"
    );
    let r: Vec<&str> = resource.splitn(6, ':').collect();
    if r.len() < 6 || !r[0].eq_ignore_ascii_case("arn") {
        return false;
    }
    // U5: missing trailing segments are `*`. U6: the head is case-insensitive, the resource
    // part is not.
    (0..6).all(|i| {
        let segment = p.get(i).copied().unwrap_or("*");
        pattern_matches(segment, r[i], true, i < 5, vars)
    })
}

fn is_negated(op: BaseOperator) -> bool {
    match op {
        BaseOperator::StringNotEquals
        | BaseOperator::StringNotEqualsIgnoreCase
        | BaseOperator::StringNotLike => true,
        BaseOperator::StringEquals
        | BaseOperator::StringEqualsIgnoreCase
        | BaseOperator::StringLike
        | BaseOperator::NumericLessThan
        | BaseOperator::NumericGreaterThanEquals
        | BaseOperator::Bool
        | BaseOperator::Null => false,
        other => panic!("operator outside the reference subset: {other:?}"),
    }
}

/// `[+-]digits[.digits]`, read as a float (every value the generators use is exact).
fn number(text: &str) -> Option<f64> {
    let digits = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !(whole.is_empty() && fraction.is_empty())
        && fraction.len() <= 18
        && whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit());
    ok.then(|| text.parse().unwrap())
}

fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A `Bool` policy value after substitution (`vars` only for `2012-10-17` documents).
fn bool_value(policy: &str, vars: Option<&Input>) -> Option<bool> {
    let text: String = tokens(policy, false, vars)?
        .into_iter()
        .map(|t| match t {
            Tok::Lit(c) => c,
            // No wildcards were asked for.
            Tok::Any | Tok::One => unreachable!(),
        })
        .collect();
    boolean(&text)
}

/// Does the policy value read as its operator's type?
pub(crate) fn readable(op: BaseOperator, policy: &str, vars: Option<&Input>) -> bool {
    match op {
        BaseOperator::NumericLessThan | BaseOperator::NumericGreaterThanEquals => {
            number(policy).is_some()
        }
        BaseOperator::Bool => bool_value(policy, vars).is_some(),
        BaseOperator::Null => boolean(policy).is_some(),
        _ => true,
    }
}

/// Does the policy value pass the validator when a document is written? As
/// [`readable`], except that any `${…}` variable is accepted in a `2012-10-17` `Bool` value
/// (its value is only known at evaluation).
pub(crate) fn valid_at_write(op: BaseOperator, policy: &str, current_version: bool) -> bool {
    match op {
        BaseOperator::Bool => {
            boolean(policy).is_some()
                || (current_version
                    && policy.contains("${")
                    && !matches!(policy, "${*}" | "${?}" | "${$}"))
        }
        _ => readable(op, policy, None),
    }
}

/// Is the resource a KMS key (`arn:…:kms:REGION:ACCOUNT:key/ID`), asked for in a KMS action?
fn is_kms_key_request(input: &Input) -> bool {
    let parts: Vec<&str> = input.resource.splitn(6, ':').collect();
    let service = input.action.split(':').next().unwrap();
    service.eq_ignore_ascii_case("kms")
        && parts.len() == 6
        && parts[0].eq_ignore_ascii_case("arn")
        && parts[2].eq_ignore_ascii_case("kms")
        && parts[5].starts_with("key/")
}

/// Does one request value match one policy value under the (un-negated) operator?
fn compare(op: BaseOperator, policy: &str, request: &str, vars: Option<&Input>) -> bool {
    use BaseOperator as B;
    match op {
        B::StringEquals | B::StringNotEquals => {
            pattern_matches(policy, request, false, false, vars)
        }
        B::StringEqualsIgnoreCase | B::StringNotEqualsIgnoreCase => {
            pattern_matches(policy, request, false, true, vars)
        }
        B::StringLike | B::StringNotLike => pattern_matches(policy, request, true, false, vars),
        B::NumericLessThan => {
            matches!((number(request), number(policy)), (Some(r), Some(p)) if r < p)
        }
        B::NumericGreaterThanEquals => {
            matches!((number(request), number(policy)), (Some(r), Some(p)) if r >= p)
        }
        B::Bool => {
            matches!((boolean(request), bool_value(policy, vars)), (Some(r), Some(p)) if r == p)
        }
        other => panic!("operator outside the reference subset: {other:?}"),
    }
}

/// IAM-SEMANTICS §2 and the table in `policy/condition.rs`.
fn condition_holds(entry: &ConditionEntry, input: &Input, vars: Option<&Input>) -> bool {
    let op = entry.operator;
    // A value nobody can read never makes the condition hold, whatever the operator.
    if !entry.values.iter().all(|v| readable(op.base, v, vars)) {
        return false;
    }
    // "Null with qualifier": the qualifier alone decides.
    if op.base == BaseOperator::Null {
        match op.qualifier {
            Some(SetQualifier::ForAllValues) => return true,
            Some(SetQualifier::ForAnyValue) => return false,
            None => {}
        }
    }
    let found = input.lookup(&entry.key);
    let absent = match found {
        None => true,
        Some(e) => e.values.is_empty(),
    };
    if op.base == BaseOperator::Null {
        // `true` asks for absence, `false` for presence.
        return entry.values.iter().any(|v| boolean(v) == Some(absent));
    }
    let negated = is_negated(op.base);
    if absent {
        if op.if_exists {
            return true;
        }
        return match op.qualifier {
            Some(SetQualifier::ForAllValues) => true,
            Some(SetQualifier::ForAnyValue) => false,
            // Missing key: positive operators are false, negated ones true.
            None => negated,
        };
    }
    // Positive operators: the value matches some policy value (OR); negated: none (NOR).
    let value_ok = |request: &String| {
        let any = entry
            .values
            .iter()
            .any(|policy| compare(op.base, policy, request, vars));
        any != negated
    };
    let entry = found.unwrap();
    match (entry.multi, op.qualifier) {
        (false, _) => value_ok(&entry.values[0]),
        // U3: a plain operator on a multi-valued key does not match.
        (true, None) => false,
        (true, Some(SetQualifier::ForAllValues)) => entry.values.iter().all(value_ok),
        (true, Some(SetQualifier::ForAnyValue)) => entry.values.iter().any(value_ok),
    }
}

/// Does the statement apply, and (for a resource policy) how does it name the caller?
fn applies(
    statement: &Statement,
    input: &Input,
    vars: Option<&Input>,
    has_boundary: bool,
) -> Option<Strength> {
    let action = &statement.action;
    let any_action = action
        .patterns
        .iter()
        .any(|p| action_matches(p, &input.action));
    if any_action == action.negated {
        return None;
    }
    let resource = statement.resource.as_ref().unwrap();
    let any_resource = resource
        .patterns
        .iter()
        .any(|p| resource_matches(p, &input.resource, vars));
    if any_resource == resource.negated {
        return None;
    }
    let strength = match &statement.principal {
        None => Strength::Direct,
        Some(block) => {
            let best = match &block.principals {
                PrincipalSpec::Everyone => Some(Strength::Direct),
                PrincipalSpec::Map(map) => map
                    .iter()
                    .flat_map(|(kind, values)| {
                        assert_eq!(*kind, PrincipalType::Aws, "outside the reference subset");
                        values.iter().filter_map(|v| input.caller.named_by(v))
                    })
                    .max(),
            };
            if block.negated {
                // NotPrincipal: everyone not listed; and (documented quirk) always an IAM
                // principal that has a permissions boundary.
                if best.is_some() && !has_boundary {
                    return None;
                }
                Strength::Account
            } else {
                best?
            }
        }
    };
    statement
        .conditions
        .iter()
        .all(|c| condition_holds(c, input, vars))
        .then_some(strength)
}

/// Decides `input` (IAM-SEMANTICS §3.2–§3.4).
pub(crate) fn decide(policies: &Policies<'_>, input: &Input) -> Verdict {
    let has_boundary = policies.boundary.is_some();
    let mut explicit_deny = false;
    // Every applicable statement of a document, as (effect, strength).
    let mut scan = |doc: &PolicyDocument| -> Vec<Strength> {
        let vars = doc.version.supports_variables().then_some(input);
        let mut allows = Vec::new();
        for statement in &doc.statements {
            if let Some(strength) = applies(statement, input, vars, has_boundary) {
                match statement.effect {
                    Effect::Deny => explicit_deny = true,
                    Effect::Allow => allows.push(strength),
                }
            }
        }
        allows
    };
    // Collected before asking `any`, so every policy is scanned for denies.
    let identity: Vec<Vec<Strength>> = policies.identity.iter().map(&mut scan).collect();
    let identity_allows = identity.iter().any(|a| !a.is_empty());
    let boundary_ok = policies.boundary.is_none_or(|b| !scan(b).is_empty());
    let resource_grant = policies.resource.and_then(|r| scan(r).into_iter().max());
    if explicit_deny {
        return Verdict::ExplicitDeny;
    }
    // The caller's own account must allow: identity ∩ boundary (no session policies here;
    // a role session without session policies is not limited by one).
    let identity_side = identity_allows && boundary_ok;
    let cross_account = input.resource_account() != input.caller.account();
    let allowed = if is_kms_key_request(input) && resource_grant.is_none() {
        // A KMS key's key policy must allow; none given allows nobody.
        false
    } else if cross_account {
        // Both accounts must allow.
        resource_grant.is_some() && identity_side
    } else {
        match resource_grant {
            None | Some(Strength::Account) => identity_side,
            Some(Strength::Role) => boundary_ok,
            Some(Strength::Direct) => true,
        }
    };
    if allowed {
        Verdict::Allow
    } else {
        Verdict::ImplicitDeny
    }
}
