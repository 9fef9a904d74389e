//! Envoy external authorization, the domain half: a proxy asks whether an HTTP request may
//! pass, and the answer comes from the tenant's IAM policies, as API Gateway's IAM
//! authorization answers for an API.
//!
//! A [`RouteTable`] maps the request (host, path pattern with captures, method) to an action
//! and a resource (by default `execute-api:Invoke` on
//! `arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method}/{path}`) and names how the
//! caller is established:
//!
//! - `sigv4`: the request's SigV4 signature (service `execute-api`, the table's region),
//!   verified by [`crate::sts::sigv4`] over the method, path, query, host and headers Envoy
//!   forwards; the payload hash is `x-amz-content-sha256`, checked against the body when the
//!   route has Envoy send it, else the body's hash;
//! - `jwt`: a bearer token of a registered OIDC provider, exchanged as
//!   `AssumeRoleWithWebIdentity` would be (the role's trust policy must allow it), so the
//!   caller is a web-identity role session;
//! - `mtls`: the peer identity Envoy reports (`source.principal`, a SPIFFE id), mapped to a
//!   role of the tenant.
//!
//! The request's attributes become condition keys: `aws:SourceIp`, `aws:SecureTransport`,
//! `aws:UserAgent`, `aws:Referer`, `aws:CurrentTime`/`aws:EpochTime` (set by the Authorizer),
//! and each header as `iamlet:Header/<lowercase-name>` but the credentials (`authorization`,
//! `proxy-authorization`, `cookie`, `x-amz-security-token`) and the headers that differ at
//! every request (ids, dates, payload hashes, trace context, `x-envoy-*`: a context that
//! changes at every request would defeat the decision cache). The decision is the
//! [`Authorizer`]'s: the same evaluation, decision cache and decision log as `Authorize`.
//!
//! Inputs arrive decoded ([`CheckInput`]); answers leave as a [`CheckAnswer`], which the gRPC
//! edge renders as Envoy's `CheckResponse`. The table is swapped whole on reload
//! ([`spawn_route_table_reload`]); a table that does not check out is refused and the previous
//! one kept.

mod table;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use moka::sync::Cache;

use crate::authz::Context;
use crate::directory::IdGenerator;
use crate::policy::{ContextValue, Timestamp};
use crate::snapshot::SnapshotVersion;
use crate::sts::sigv4::{SigV4Error, Signature, SignedRequest};
use crate::sts::{self, IssueEnv, Issued, StsError, WebIdentityParams};

use super::api::{Api, ApiError, CallerId};
use super::authorize::{limits, AuthorizeInput, Authorizer};

pub use table::{
    bare_host, CallerConfig, CallerKind, JwtRoute, Matched, PathPattern, Route, RouteTable,
    RouteTableError, Unmatched, DEFAULT_ACTION, DEFAULT_RESOURCE, MAX_ROUTES,
};

/// The header naming the caller upstream.
pub const PRINCIPAL_HEADER: &str = "x-iamlet-principal-arn";
/// The header carrying the deciding snapshot's version upstream.
pub const VERSION_HEADER: &str = "x-iamlet-snapshot-version";
/// The header a dry-run route adds when the decision would have been a deny.
pub const WOULD_DENY_HEADER: &str = "x-iamlet-would-deny";
/// The prefix of header condition keys.
pub const HEADER_KEY_PREFIX: &str = "iamlet:Header/";
/// Headers removed upstream by a route with `strip_credentials`.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-amz-security-token", "x-amz-date"];
/// API Gateway's answer to a request without credentials.
pub const MISSING_TOKEN: &str = "Missing Authentication Token";
/// The answer to a request no route matches, with `unmatched: deny`.
pub const NO_ROUTE: &str = "No route matches this request";
/// The metric label of a request no route matched (never a route name: those have no
/// parentheses).
pub const NO_ROUTE_LABEL: &str = "(none)";
/// The most headers turned into condition keys: the Authorizer takes at most
/// [`limits::MAX_CONTEXT_KEYS`] keys, and the `aws:` keys need room.
const MAX_HEADER_KEYS: usize = limits::MAX_CONTEXT_KEYS - 16;
/// Headers never turned into condition keys: they carry credentials, and the context can reach
/// the decision cache's keys.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-amz-security-token",
];
/// Headers that differ at every request and that no policy has reason to read: left out of
/// the condition keys so that the decision cache (whose key covers the context) can answer a
/// repeated request. Names ending in `*` are prefixes.
const PER_REQUEST_HEADERS: [&str; 12] = [
    "x-request-id",
    "x-amz-date",
    "x-amz-content-sha256",
    "date",
    "content-length",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-*",
    "x-amzn-trace-id",
    "x-envoy-*",
    "x-forwarded-client-cert",
];

fn per_request(name: &str) -> bool {
    PER_REQUEST_HEADERS
        .iter()
        .any(|h| match h.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *h,
        })
}

/// How long an exchanged JWT's role session is reused for the same token, role and snapshot
/// (never past the token's expiry).
const JWT_SESSION_TTL: Duration = Duration::from_secs(60);
/// The session name of the role sessions JWT routes make.
const JWT_SESSION_NAME: &str = "iamlet-ext-authz";

/// One checked request, as the edge decoded it from Envoy's `AttributeContext`.
#[derive(Clone, Default)]
pub struct CheckInput {
    /// The HTTP method.
    pub method: String,
    /// The raw path with its query string, as Envoy reports it.
    pub path: String,
    /// The host (`:authority`), with its port if sent.
    pub host: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The request's headers: names lowercase (pseudo-headers included, they are skipped).
    pub headers: Vec<(String, String)>,
    /// The body, when Envoy sends it (`with_request_body`).
    pub body: Option<Vec<u8>>,
    /// The downstream peer's address.
    pub source_ip: Option<IpAddr>,
    /// The downstream peer's mTLS identity (`source.principal`), when Envoy reports one.
    pub source_principal: Option<String>,
    /// Envoy's request id, echoed to the decision log.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for CheckInput {
    /// Header values can hold credentials: only the names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("CheckInput")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("host", &self.host)
            .field("header_names", &names)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .field("source_ip", &self.source_ip)
            .field("source_principal", &self.source_principal)
            .finish_non_exhaustive()
    }
}

/// The answer to one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckAnswer {
    /// Pass upstream. `principal` and `version` are absent for a request no route matched
    /// (with `unmatched: allow`).
    Allow {
        /// The caller's ARN.
        principal: Option<String>,
        /// The version of the snapshot that decided.
        version: Option<SnapshotVersion>,
        /// Remove [`CREDENTIAL_HEADERS`] upstream.
        strip: bool,
    },
    /// A dry-run route passes a request that would have been refused with `status`.
    DryRunDeny {
        /// The caller's ARN, when it was established.
        principal: Option<String>,
        /// The version of the snapshot that decided, when it was reached.
        version: Option<SnapshotVersion>,
        /// Remove [`CREDENTIAL_HEADERS`] upstream.
        strip: bool,
        /// The status the request would have had (401, 403, 503).
        status: u16,
        /// The would-be message.
        message: String,
    },
    /// Refused: 403 for a policy deny or no route, 503 while the tenant's data cannot be
    /// used.
    Deny {
        /// The HTTP status.
        status: u16,
        /// AWS's message.
        message: String,
    },
    /// No caller could be established: 401.
    Unauthenticated {
        /// AWS's message.
        message: String,
    },
}

/// The decision labels of `iamlet_ext_authz_checks_total`.
pub const DECISIONS: [&str; 5] = [
    "allow",
    "deny",
    "unauthenticated",
    "dry_run_deny",
    "unavailable",
];

// === impl CheckAnswer ===

impl CheckAnswer {
    /// The metric label: one of [`DECISIONS`].
    pub fn label(&self) -> &'static str {
        match self {
            Self::Allow { .. } => "allow",
            Self::DryRunDeny { .. } => "dry_run_deny",
            Self::Deny { status, .. } if *status >= 500 => "unavailable",
            Self::Deny { .. } => "deny",
            Self::Unauthenticated { .. } => "unauthenticated",
        }
    }
}

/// What a check that did not allow says, before dry-run turns it into a pass.
struct Refusal {
    status: u16,
    message: String,
    principal: Option<String>,
    version: Option<SnapshotVersion>,
}

impl Refusal {
    fn unauthenticated(message: impl Into<String>) -> Self {
        Self {
            status: 401,
            message: message.into(),
            principal: None,
            version: None,
        }
    }

    /// An error of the Authorizer or of STS: credentials are 401, the tenant's data being
    /// unusable is 503, anything else a refusal.
    fn from_api(error: &ApiError) -> Self {
        let status = match error {
            ApiError::Sts(e) if e.is_authentication() => 401,
            ApiError::Sts(StsError::WebIdentity(_)) => 401,
            e if e.code().http_status() == 503 => 503,
            _ => 403,
        };
        Self {
            status,
            message: crate::error::bounded_message(&error.to_string()).into_owned(),
            principal: None,
            version: None,
        }
    }
}

/// Envoy's ext_authz over an [`Authorizer`] and a hot-swapped [`RouteTable`].
#[derive(Debug)]
pub struct ExtAuthz {
    authorizer: Authorizer,
    table: ArcSwap<RouteTable>,
    /// Role sessions of JWT routes, by token, role, audience and snapshot version.
    sessions: Cache<[u8; 32], Arc<JwtSession>>,
}

// === impl ExtAuthz ===

impl ExtAuthz {
    /// Checks requests against `table` with `api`'s snapshots, caches and decision log.
    pub fn new(api: Arc<Api>, table: RouteTable) -> Self {
        Self {
            authorizer: Authorizer::new(api),
            table: ArcSwap::from_pointee(table),
            sessions: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(JWT_SESSION_TTL)
                .build(),
        }
    }

    /// The table in use.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Replaces the table.
    pub fn replace(&self, table: RouteTable) {
        self.table.store(Arc::new(table));
    }

    fn api(&self) -> &Api {
        self.authorizer.api()
    }

    /// Answers one request, counts it by route and decision, and logs a dry-run's would-be
    /// refusal.
    pub fn check(&self, input: &CheckInput) -> CheckAnswer {
        let table = self.table.load();
        let host = bare_host(&input.host);
        let path_only = input
            .path
            .split_once('?')
            .map_or(input.path.as_str(), |(p, _)| p);
        let Some(matched) = table.find(&host, &input.method, path_only) else {
            let answer = match table.unmatched {
                Unmatched::Deny => {
                    // A decision-log line like any refusal: the resource is the request.
                    self.authorizer.refused(
                        "",
                        &format!("{} {host}{}", input.method, crate::error::echo(path_only)),
                        input.request_id.as_deref(),
                        &ApiError::invalid("route", NO_ROUTE),
                        false,
                    );
                    CheckAnswer::Deny {
                        status: 403,
                        message: NO_ROUTE.into(),
                    }
                }
                Unmatched::Allow => CheckAnswer::Allow {
                    principal: None,
                    version: None,
                    strip: false,
                },
            };
            self.api()
                .metrics()
                .ext_authz
                .check(NO_ROUTE_LABEL, answer.label());
            return answer;
        };
        let route = matched.route;
        let answer = match self.decide(&table, &matched, input) {
            Ok((principal, version)) => CheckAnswer::Allow {
                principal: Some(principal),
                version: Some(version),
                strip: route.strip_credentials,
            },
            Err(refusal) if route.dry_run => {
                tracing::info!(
                    route = %route.name,
                    status = refusal.status,
                    principal = refusal.principal.as_deref().unwrap_or(""),
                    action = %matched.action,
                    resource = %matched.resource,
                    "ext_authz dry run: passing a request that would be refused: {}",
                    refusal.message
                );
                CheckAnswer::DryRunDeny {
                    principal: refusal.principal,
                    version: refusal.version,
                    strip: route.strip_credentials,
                    status: refusal.status,
                    message: refusal.message,
                }
            }
            Err(refusal) if refusal.status == 401 => CheckAnswer::Unauthenticated {
                message: refusal.message,
            },
            Err(refusal) => CheckAnswer::Deny {
                status: refusal.status,
                message: refusal.message,
            },
        };
        self.api()
            .metrics()
            .ext_authz
            .check(&route.name, answer.label());
        answer
    }

    /// Establishes the caller and decides: the caller's ARN and the deciding version, or
    /// the refusal.
    fn decide(
        &self,
        table: &RouteTable,
        matched: &Matched<'_>,
        input: &CheckInput,
    ) -> Result<(String, SnapshotVersion), Refusal> {
        let request_id = input
            .request_id
            .as_deref()
            .filter(|id| !id.is_empty() && id.chars().count() <= limits::MAX_ID_CHARS)
            .map(str::to_owned);
        let mut context = request_context(input);
        let caller = match &matched.route.caller {
            CallerConfig::SigV4 => self.sigv4_caller(table, matched, input),
            CallerConfig::Jwt(jwt) => self.jwt_caller(table, jwt, input, &mut context),
            CallerConfig::Mtls(principals) => mtls_caller(principals, input),
        };
        let caller = match caller {
            Ok(c) => c,
            Err(failed) => {
                let (refusal, error) = *failed;
                // Logged and counted as an Authorize the edge could not decide.
                self.authorizer.refused(
                    &matched.action,
                    &matched.resource,
                    request_id.as_deref(),
                    &error,
                    false,
                );
                return Err(refusal);
            }
        };
        let decision = self
            .authorizer
            .authorize(&AuthorizeInput {
                caller,
                action: matched.action.clone(),
                resource: matched.resource.clone(),
                context,
                resource_tenant: Some(table.account.clone()),
                resource_policy: None,
                explain: false,
                min_version: None,
                request_id,
            })
            .map_err(|e| Refusal::from_api(&e))?;
        if decision.is_allowed() {
            return Ok((decision.principal.to_string(), decision.version));
        }
        // API Gateway's words, the same for an explicit and an implicit deny.
        Err(Refusal {
            status: 403,
            message: format!(
                "User: {} is not authorized to perform: {} on resource: {}",
                decision.principal, matched.action, matched.resource
            ),
            principal: Some(decision.principal.to_string()),
            version: Some(decision.version),
        })
    }

    /// The caller of a SigV4-signed request.
    fn sigv4_caller(
        &self,
        table: &RouteTable,
        matched: &Matched<'_>,
        input: &CheckInput,
    ) -> Result<CallerId, Failed> {
        let fail = |e: SigV4Error| {
            let error = ApiError::Sts(StsError::Signature(e));
            Box::new((Refusal::from_api(&error), error))
        };
        let (path, query) = input.path.split_once('?').unwrap_or((&input.path, ""));
        let mut headers: Vec<(String, String)> = input
            .headers
            .iter()
            .filter(|(name, _)| !name.starts_with(':'))
            .cloned()
            .collect();
        // Envoy reports the host as `:authority` (HTTP/2 has no `host` header); the caller
        // signed it as `host`.
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) && !input.host.is_empty() {
            headers.push(("host".into(), input.host.clone()));
        }
        let declared = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-content-sha256"))
            .map(|(_, v)| v.clone());
        let computed = match (&input.body, matched.route.with_body) {
            (Some(body), true) => Some(hex_sha256(body)),
            (None, true) => Some(hex_sha256(&[])),
            (_, false) => None,
        };
        if let (Some(declared), Some(computed)) = (&declared, &computed) {
            if !declared.eq_ignore_ascii_case(computed) {
                let error = ApiError::Sts(StsError::Signature(SigV4Error::InconsistentSignature(
                    BODY_HASH_MISMATCH.into(),
                )));
                return Err(Box::new((
                    Refusal::unauthenticated(BODY_HASH_MISMATCH),
                    error,
                )));
            }
        }
        let request = SignedRequest {
            method: &input.method,
            path,
            query,
            headers: &headers,
            payload_sha256: computed.as_deref(),
        };
        let signature = match Signature::parse(&request) {
            Ok(s) => s,
            Err(SigV4Error::MissingAuthenticationToken) => {
                let error =
                    ApiError::Sts(StsError::Signature(SigV4Error::MissingAuthenticationToken));
                return Err(Box::new((Refusal::unauthenticated(MISSING_TOKEN), error)));
            }
            Err(e) => return Err(fail(e)),
        };
        // API Gateway's checks of the scope, in its words.
        if signature.region() != table.region {
            return Err(fail(SigV4Error::InconsistentSignature(
                "Credential should be scoped to a valid region. ".into(),
            )));
        }
        if signature.service() != "execute-api" {
            return Err(fail(SigV4Error::InconsistentSignature(
                "Credential should be scoped to correct service: 'execute-api'. ".into(),
            )));
        }
        Ok(CallerId::Signed(Box::new(signature)))
    }

    /// The caller of a bearer JWT: a session of the route's role, made as
    /// `AssumeRoleWithWebIdentity` makes one (the provider verifies the token, the role's
    /// trust policy allows it), reused for the same token while the snapshot stays.
    fn jwt_caller(
        &self,
        table: &RouteTable,
        jwt: &JwtRoute,
        input: &CheckInput,
        context: &mut Context,
    ) -> Result<CallerId, Failed> {
        let missing = || {
            let error = ApiError::Sts(StsError::Signature(SigV4Error::MissingAuthenticationToken));
            Box::new((Refusal::unauthenticated(MISSING_TOKEN), error))
        };
        let token = input
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(missing)?;
        let fail = |e: ApiError| Box::new((Refusal::from_api(&e), e));
        let unverified = sts::jwt::UnverifiedToken::parse(token)
            .map_err(|e| fail(ApiError::Sts(StsError::WebIdentity(e))))?;
        if unverified.issuer() != jwt.issuer {
            let e = ApiError::Sts(StsError::WebIdentity(sts::jwt::JwtError::no_provider(
                unverified.issuer(),
            )));
            return Err(fail(e));
        }
        let snapshot = self.api().load(&table.account).map_err(fail)?;
        let key = session_key(token, jwt, snapshot.version());
        // A cached session stands for its token only while the token is valid.
        let cached = self
            .sessions
            .get(&key)
            .filter(|s| Timestamp::now().epoch_seconds() <= s.token_expires_at);
        let issued = match cached {
            Some(issued) => issued,
            None => {
                let now = Timestamp::now();
                let latest_expiry = self.api().check_issue(&table.account, now).map_err(fail)?;
                let mut ids = IdGenerator::system();
                let mut env = IssueEnv {
                    now,
                    ids: &mut ids,
                    mfa: &self.api().mfa,
                    latest_expiry,
                    issuing: crate::sts::Issuing::Certified(self.api().store.issuing()),
                };
                let params = WebIdentityParams {
                    role_arn: &jwt.role,
                    role_session_name: JWT_SESSION_NAME,
                    web_identity_token: token,
                    duration_seconds: None,
                    policy: None,
                    policy_arns: &[],
                };
                let made = sts::assume_role_with_web_identity(&snapshot, &params, &mut env)
                    .map_err(|e| match e {
                        // Only the token can be malformed here (the rest is the table's, checked
                        // at load): a bad token, 401.
                        StsError::Validation(message) => Box::new((
                            Refusal::unauthenticated(message.clone()),
                            ApiError::Sts(StsError::Validation(message)),
                        )),
                        e => fail(ApiError::Sts(e)),
                    })?;
                if made.audience != jwt.audience {
                    let e = ApiError::Sts(StsError::WebIdentity(sts::jwt::JwtError::no_provider(
                        &jwt.issuer,
                    )));
                    return Err(Box::new((
                        Refusal::unauthenticated("Incorrect token audience"),
                        e,
                    )));
                }
                // The token's claims, as condition keys of the provider.
                let prefix = sts::jwt::condition_key_prefix(&jwt.issuer);
                let issued = Arc::new(JwtSession {
                    token_expires_at: token_expiry(token),
                    claims: vec![
                        (format!("{prefix}:sub"), made.subject.clone()),
                        (format!("{prefix}:aud"), made.audience.clone()),
                    ],
                    issued: made.issued,
                });
                self.sessions.insert(key, Arc::clone(&issued));
                issued
            }
        };
        for (name, value) in &issued.claims {
            context.insert(name, ContextValue::new(value.as_str()));
        }
        Ok(CallerId::Keys {
            access_key_id: issued.issued.access_key_id.clone(),
            secret: issued.issued.secret_access_key.clone(),
            session_token: Some(issued.issued.session_token.clone()),
        })
    }
}

/// A caller that could not be established: the answer, and the error the decision log
/// records.
type Failed = Box<(Refusal, ApiError)>;

/// The message of a body whose hash is not the one signed (S3's words).
pub const BODY_HASH_MISMATCH: &str =
    "The provided 'x-amz-content-sha256' header does not match what was computed.";

/// A JWT route's role session, with the token's claims as condition keys.
struct JwtSession {
    issued: Issued,
    /// The token's `exp` (it verified, so its claims are the issuer's).
    token_expires_at: i64,
    claims: Vec<(String, String)>,
}

impl std::fmt::Debug for JwtSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSession")
            .field("arn", &self.issued.arn)
            .finish_non_exhaustive()
    }
}

/// The `exp` of a token that verified; 0 (expired: never reused) when it cannot be read.
fn token_expiry(token: &str) -> i64 {
    token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            data_encoding::BASE64URL_NOPAD
                .decode(payload.as_bytes())
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|claims| claims.get("exp").and_then(serde_json::Value::as_i64))
        .unwrap_or(0)
}

/// Hex SHA-256.
fn hex_sha256(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The session cache's key: the token, the role and audience it is exchanged for, and the
/// snapshot (a new snapshot may change the trust policy or retire the provider's key).
fn session_key(token: &str, jwt: &JwtRoute, version: SnapshotVersion) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [token, jwt.role.as_str(), jwt.audience.as_str()] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    ctx.update(&version.epoch.to_le_bytes());
    ctx.update(&version.seq.to_le_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// The caller of an mTLS route: the role Envoy's peer identity maps to.
fn mtls_caller(
    principals: &std::collections::BTreeMap<String, String>,
    input: &CheckInput,
) -> Result<CallerId, Failed> {
    let Some(peer) = input.source_principal.as_deref().filter(|p| !p.is_empty()) else {
        let error = ApiError::Sts(StsError::Signature(SigV4Error::MissingAuthenticationToken));
        return Err(Box::new((Refusal::unauthenticated(MISSING_TOKEN), error)));
    };
    match principals.get(peer) {
        Some(role) => Ok(CallerId::PrincipalArn(role.clone())),
        None => {
            let error = ApiError::Sts(StsError::InvalidToken);
            Err(Box::new((
                Refusal::unauthenticated(format!(
                    "The client identity {} is not mapped to a role",
                    crate::error::echo(peer)
                )),
                error,
            )))
        }
    }
}

/// The condition keys a request's attributes give.
fn request_context(input: &CheckInput) -> Context {
    let mut context = Context::new();
    if let Some(ip) = input.source_ip {
        context.insert("aws:SourceIp", ContextValue::new(ip.to_string()));
    }
    context.insert(
        "aws:SecureTransport",
        ContextValue::from_bool(input.scheme.eq_ignore_ascii_case("https")),
    );
    let mut added = 0;
    for (name, value) in &input.headers {
        if name.starts_with(':') || value.chars().count() > limits::MAX_CONTEXT_VALUE_CHARS {
            continue;
        }
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "user-agent" => context.insert("aws:UserAgent", ContextValue::new(value.as_str())),
            "referer" => context.insert("aws:Referer", ContextValue::new(value.as_str())),
            _ => {}
        }
        if SECRET_HEADERS.contains(&name.as_str())
            || per_request(&name)
            || added >= MAX_HEADER_KEYS
            || HEADER_KEY_PREFIX.len() + name.len() > limits::MAX_CONTEXT_KEY_CHARS
        {
            continue;
        }
        context.insert(
            &format!("{HEADER_KEY_PREFIX}{name}"),
            ContextValue::new(value.as_str()),
        );
        added += 1;
    }
    context
}

/// How often the route table file is looked at.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Re-reads the route table at `path` every `interval` while its contents change, until
/// `shutdown`: a table that checks out replaces the one in use; one that does not is refused
/// (a warn line, `iamlet_ext_authz_route_table_reload_failures_total`) and the previous one
/// kept. A file that cannot be read is a refusal too.
pub fn spawn_route_table_reload(
    ext_authz: Arc<ExtAuthz>,
    path: PathBuf,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The contents the table in use (or the last refusal) came from: a refused file is
        // reported once, not at every poll.
        let mut seen = tokio::fs::read(&path).await.ok();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ticker.tick() => {}
            }
            let read = tokio::fs::read(&path).await;
            let text = match read {
                Ok(bytes) if seen.as_deref() == Some(bytes.as_slice()) => continue,
                Ok(bytes) => {
                    seen = Some(bytes.clone());
                    String::from_utf8(bytes)
                        .map_err(|_| RouteTableError::Parse("the file is not UTF-8".into()))
                }
                Err(source) => {
                    if seen.is_none() {
                        continue;
                    }
                    seen = None;
                    Err(RouteTableError::Read {
                        path: path.display().to_string(),
                        source,
                    })
                }
            };
            match text.and_then(|t| RouteTable::parse(&t)) {
                Ok(table) => {
                    let routes = table.routes().len();
                    ext_authz.replace(table);
                    tracing::info!(
                        "ext_authz: serving the new route table {} ({routes} routes)",
                        path.display()
                    );
                }
                Err(e) => {
                    ext_authz
                        .api()
                        .metrics()
                        .ext_authz
                        .reload_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!("ext_authz: keeping the previous route table: {e}");
                }
            }
        }
    })
}
