//! The route table: which IAM action and resource an HTTP request stands for, and how its
//! caller is established. Read from YAML (unknown keys are errors) and checked whole at load,
//! so that a table in use never fails at request time: names are unique, templates name only
//! known placeholders, each caller kind has its settings, the account is an account id.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::account::AccountId;

/// The default action: API Gateway's IAM authorization.
pub const DEFAULT_ACTION: &str = "execute-api:Invoke";
/// The default resource: API Gateway's execute-api ARN.
pub const DEFAULT_RESOURCE: &str =
    "arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method}/{path}";
/// Placeholders every template may use; a route's captures add to them.
const BUILTIN_PLACEHOLDERS: [&str; 6] = ["region", "account", "api_id", "stage", "method", "path"];
/// The most routes one table holds: matching is linear.
pub const MAX_ROUTES: usize = 1000;

/// Why a route table was refused.
#[derive(Debug, thiserror::Error)]
pub enum RouteTableError {
    /// The file could not be read.
    #[error("cannot read the route table {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The YAML does not parse or has unknown keys.
    #[error("the route table does not parse: {0}")]
    Parse(String),
    /// A table-wide setting is wrong.
    #[error("the route table is invalid: {0}")]
    Invalid(String),
    /// A route is wrong.
    #[error("route `{route}` is invalid: {reason}")]
    Route {
        /// The route's name.
        route: String,
        /// Why.
        reason: String,
    },
}

/// What happens to a request no route matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// 403 "No route matches this request".
    #[default]
    Deny,
    /// Passed upstream without a caller.
    Allow,
}

/// How a route establishes its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerKind {
    /// A SigV4-signed request, as API Gateway's IAM authorization verifies it.
    Sigv4,
    /// A bearer JWT of a registered OIDC provider, as a web-identity role session.
    Jwt,
    /// The mTLS peer identity Envoy reports, mapped to a role.
    Mtls,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    account: String,
    region: String,
    api_id: String,
    stage: String,
    #[serde(default)]
    unmatched: Unmatched,
    routes: Vec<RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: String,
    host: Option<String>,
    path: String,
    methods: Option<Vec<String>>,
    action: Option<String>,
    resource: Option<String>,
    caller: CallerKind,
    jwt: Option<JwtRoute>,
    mtls: Option<MtlsFile>,
    #[serde(default)]
    with_body: bool,
    #[serde(default)]
    strip_credentials: bool,
    #[serde(default)]
    dry_run: bool,
}

/// A JWT route's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtRoute {
    /// The registered OIDC provider's URL.
    pub issuer: String,
    /// The audience the token must carry.
    pub audience: String,
    /// The web-identity role whose policies decide.
    pub role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MtlsFile {
    principals: BTreeMap<String, String>,
}

/// A route's caller, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerConfig {
    /// SigV4, service `execute-api`, the table's region.
    SigV4,
    /// A bearer JWT.
    Jwt(JwtRoute),
    /// Envoy's `source.principal` → role ARN.
    Mtls(BTreeMap<String, String>),
}

/// Which hosts a route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com`: the suffix `.example.com`, at least one label before it.
    Suffix(String),
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: one segment.
    Capture(String),
    /// `{name+}`: the rest, at least one segment (API Gateway's greedy variable).
    Rest(String),
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

/// One route, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Unique in the table; a metric label and a log field.
    pub name: String,
    host: HostMatch,
    path: PathPattern,
    methods: Option<Vec<String>>,
    action: String,
    resource: String,
    /// How the caller is established.
    pub caller: CallerConfig,
    /// The body is hashed (Envoy sends it).
    pub with_body: bool,
    /// Remove the caller's credentials upstream.
    pub strip_credentials: bool,
    /// Always allow; log the would-be decision.
    pub dry_run: bool,
}

/// A route table, checked whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    /// The tenant whose policies decide.
    pub account: String,
    /// `{region}` and the SigV4 scope's region.
    pub region: String,
    api_id: String,
    stage: String,
    /// What a request no route matches gets.
    pub unmatched: Unmatched,
    routes: Vec<Route>,
}

/// A route that matched a request, with the captures and the rendered action and resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'t> {
    /// The route.
    pub route: &'t Route,
    /// The IAM action.
    pub action: String,
    /// The resource ARN.
    pub resource: String,
}

// === impl PathPattern ===

impl PathPattern {
    /// Compiles `/literal/{name}/{rest+}`.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err(format!("path `{pattern}` must start with `/`"));
        };
        let mut segments = Vec::new();
        let mut names = BTreeSet::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(inner) => {
                    let (name, greedy) = match inner.strip_suffix('+') {
                        Some(n) => (n, true),
                        None => (inner, false),
                    };
                    if name.is_empty()
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(format!(
                            "capture `{{{inner}}}` needs a name of letters, digits and `_`"
                        ));
                    }
                    if BUILTIN_PLACEHOLDERS.contains(&name) {
                        return Err(format!("capture `{name}` shadows a built-in placeholder"));
                    }
                    if !names.insert(name.to_owned()) {
                        return Err(format!("capture `{name}` appears twice"));
                    }
                    if greedy {
                        if i + 1 != parts.len() {
                            return Err(format!("`{{{name}+}}` must be the last segment"));
                        }
                        Segment::Rest(name.to_owned())
                    } else {
                        Segment::Capture(name.to_owned())
                    }
                }
                None if part.contains(['{', '}']) => {
                    return Err(format!("segment `{part}` mixes text and a capture"));
                }
                None if part.is_empty() => {
                    return Err(format!("path `{pattern}` has an empty segment"));
                }
                None => Segment::Literal((*part).to_owned()),
            };
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    /// The capture names.
    fn captures(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Literal(_) => None,
            Segment::Capture(n) | Segment::Rest(n) => Some(n.as_str()),
        })
    }

    /// Matches a request path (without its query): the captures, or `None`.
    pub fn matches<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let rest = path.strip_prefix('/')?;
        let mut captures = Vec::new();
        let mut remaining = if rest.is_empty() { None } else { Some(rest) };
        for segment in &self.segments {
            let current = remaining?;
            match segment {
                Segment::Rest(name) => {
                    captures.push((name.as_str(), current));
                    remaining = None;
                    continue;
                }
                Segment::Literal(_) | Segment::Capture(_) => {}
            }
            let (head, tail) = match current.split_once('/') {
                Some((h, t)) => (h, Some(t)),
                None => (current, None),
            };
            match segment {
                Segment::Literal(l) if l == head => {}
                Segment::Capture(name) if !head.is_empty() => captures.push((name.as_str(), head)),
                _ => return None,
            }
            remaining = tail;
        }
        remaining.is_none().then_some(captures)
    }
}

// === impl HostMatch ===

impl HostMatch {
    fn parse(host: Option<&str>) -> Result<Self, String> {
        let Some(host) = host else {
            return Ok(Self::Any);
        };
        let host = host.to_ascii_lowercase();
        if host == "*" {
            return Ok(Self::Any);
        }
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("host `{host}` must be exact, `*` or `*.domain`"));
            }
            return Ok(Self::Suffix(format!(".{suffix}")));
        }
        if host.is_empty() || host.contains(['*', '/', ' ']) {
            return Err(format!("host `{host}` must be exact, `*` or `*.domain`"));
        }
        Ok(Self::Exact(host))
    }

    /// `host` is lowercase and without its port.
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(h) => h == host,
            Self::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

/// The host without its port, lowercase (`[::1]:80` keeps its brackets).
pub fn bare_host(host: &str) -> String {
    let without_port = match host.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            if h.starts_with('[') || !h.contains(':') {
                h
            } else {
                host
            }
        }
        _ => host,
    };
    without_port.to_ascii_lowercase()
}

/// The placeholders of `template`, or why it is malformed.
fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..).unwrap_or_default();
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{template}` has an unclosed `{{`"))?;
        let name = after.get(..close).unwrap_or_default();
        if name.contains('{') {
            return Err(format!("`{template}` nests `{{`"));
        }
        names.push(name);
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if rest.contains('}') {
        return Err(format!("`{template}` has an unopened `}}`"));
    }
    Ok(names)
}

/// Replaces each `{name}` of a template checked at load.
fn render(template: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open + 1..).unwrap_or_default();
        let close = after.find('}').unwrap_or(after.len());
        out.push_str(&value(after.get(..close).unwrap_or_default()));
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

// === impl RouteTable ===

impl RouteTable {
    /// Parses and checks a table.
    pub fn parse(text: &str) -> Result<Self, RouteTableError> {
        let file: TableFile = serde_yaml_ng::from_str(text).map_err(|e| {
            RouteTableError::Parse(crate::error::bounded_message(&e.to_string()).into_owned())
        })?;
        let account = AccountId::try_new(&file.account)
            .map_err(|e| RouteTableError::Invalid(format!("account: {e}")))?
            .to_string();
        for (field, value) in [
            ("region", &file.region),
            ("api_id", &file.api_id),
            ("stage", &file.stage),
        ] {
            if value.is_empty() || value.contains(['/', ':', '*', '{', '}', ' ']) {
                return Err(RouteTableError::Invalid(format!(
                    "{field} `{}` must be a plain name",
                    crate::error::echo(value)
                )));
            }
        }
        if file.routes.len() > MAX_ROUTES {
            return Err(RouteTableError::Invalid(format!(
                "{} routes; at most {MAX_ROUTES}",
                file.routes.len()
            )));
        }
        let mut names = BTreeSet::new();
        let mut routes = Vec::with_capacity(file.routes.len());
        for r in file.routes {
            let name = r.name.clone();
            if !names.insert(name.clone()) {
                return Err(RouteTableError::Route {
                    route: name,
                    reason: "the name is used by another route".into(),
                });
            }
            let route = compile_route(r, &account).map_err(|reason| RouteTableError::Route {
                route: name,
                reason,
            })?;
            routes.push(route);
        }
        Ok(Self {
            account,
            region: file.region,
            api_id: file.api_id,
            stage: file.stage,
            unmatched: file.unmatched,
            routes,
        })
    }

    /// Reads and checks the table in `path`.
    pub fn load(path: &std::path::Path) -> Result<Self, RouteTableError> {
        let text = std::fs::read_to_string(path).map_err(|source| RouteTableError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route serving `host` (without port, lowercase), `method` and `path` (without
    /// query), with its action and resource rendered.
    pub fn find(&self, host: &str, method: &str, path: &str) -> Option<Matched<'_>> {
        self.routes.iter().find_map(|route| {
            if !route.host.matches(host) {
                return None;
            }
            if let Some(methods) = &route.methods {
                if !methods.iter().any(|m| m == method) {
                    return None;
                }
            }
            let captures = route.path.matches(path)?;
            let value = |name: &str| -> String {
                match name {
                    "region" => self.region.clone(),
                    "account" => self.account.clone(),
                    "api_id" => self.api_id.clone(),
                    "stage" => self.stage.clone(),
                    "method" => method.to_owned(),
                    "path" => path.trim_start_matches('/').to_owned(),
                    other => captures
                        .iter()
                        .find(|(n, _)| *n == other)
                        .map(|(_, v)| (*v).to_owned())
                        .unwrap_or_default(),
                }
            };
            Some(Matched {
                route,
                action: render(&route.action, &value),
                resource: render(&route.resource, &value),
            })
        })
    }
}

fn compile_route(r: RouteFile, account: &str) -> Result<Route, String> {
    if r.name.is_empty()
        || r.name.len() > 64
        || !r
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("the name must be 1-64 letters, digits, `-`, `_` or `.`".into());
    }
    let path = PathPattern::parse(&r.path)?;
    let host = HostMatch::parse(r.host.as_deref())?;
    let methods = match r.methods {
        Some(m) if m.is_empty() => return Err("`methods` is empty; leave it out for any".into()),
        Some(m) => Some(
            m.into_iter()
                .map(|m| {
                    if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphabetic()) {
                        Err(format!(
                            "method `{}` is not an HTTP method",
                            crate::error::echo(&m)
                        ))
                    } else {
                        Ok(m.to_ascii_uppercase())
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let action = r.action.unwrap_or_else(|| DEFAULT_ACTION.to_owned());
    let resource = r.resource.unwrap_or_else(|| DEFAULT_RESOURCE.to_owned());
    let known: BTreeSet<&str> = BUILTIN_PLACEHOLDERS
        .iter()
        .copied()
        .chain(path.captures())
        .collect();
    for (what, template) in [("action", &action), ("resource", &resource)] {
        for name in placeholders(template)? {
            if !known.contains(name) {
                return Err(format!(
                    "{what} uses `{{{name}}}`, which is neither a built-in placeholder nor a capture of the path"
                ));
            }
        }
    }
    if !action.contains(':') {
        return Err(format!(
            "action `{}` must be `service:Action`",
            crate::error::echo(&action)
        ));
    }
    let caller = match (r.caller, r.jwt, r.mtls) {
        (CallerKind::Sigv4, None, None) => CallerConfig::SigV4,
        (CallerKind::Jwt, Some(jwt), None) => {
            if !jwt.issuer.starts_with("https://") {
                return Err("jwt.issuer must be an https:// URL".into());
            }
            if jwt.audience.is_empty() {
                return Err("jwt.audience is empty".into());
            }
            check_role(&jwt.role, account, "jwt.role")?;
            CallerConfig::Jwt(jwt)
        }
        (CallerKind::Mtls, None, Some(mtls)) => {
            if mtls.principals.is_empty() {
                return Err("mtls.principals is empty".into());
            }
            for role in mtls.principals.values() {
                check_role(role, account, "mtls.principals")?;
            }
            CallerConfig::Mtls(mtls.principals)
        }
        (CallerKind::Jwt, None, _) => return Err("caller `jwt` needs a `jwt` section".into()),
        (CallerKind::Mtls, _, None) => return Err("caller `mtls` needs an `mtls` section".into()),
        (kind, _, _) => {
            return Err(format!(
                "caller `{}` takes no `jwt` or `mtls` section but its own",
                match kind {
                    CallerKind::Sigv4 => "sigv4",
                    CallerKind::Jwt => "jwt",
                    CallerKind::Mtls => "mtls",
                }
            ))
        }
    };
    Ok(Route {
        name: r.name,
        host,
        path,
        methods,
        action,
        resource,
        caller,
        with_body: r.with_body,
        strip_credentials: r.strip_credentials,
        dry_run: r.dry_run,
    })
}

/// A role ARN of the table's account.
fn check_role(arn: &str, account: &str, field: &str) -> Result<(), String> {
    let prefix = format!("arn:aws:iam::{account}:role/");
    match arn.strip_prefix(&prefix) {
        Some(name) if !name.is_empty() => Ok(()),
        _ => Err(format!(
            "{field}: `{}` is not a role ARN of account {account}",
            crate::error::echo(arn)
        )),
    }
}
