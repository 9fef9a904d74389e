//! AWS STS's Query API on the sidecar's HTTP edge: the endpoint `AWS_ENDPOINT_URL_STS` points
//! at, so AWS's SDKs and CLI get credentials from iamlet unchanged.
//!
//! `POST /` (form body) and `GET /` (query string) with `Version=2011-06-15` and an `Action`
//! of `AssumeRole`, `AssumeRoleWithWebIdentity`, `GetSessionToken`, `GetCallerIdentity` or
//! `GetAccessKeyInfo`. Each request is decoded once into the domain's input
//! ([`crate::sidecar::AssumeRoleInput`], …), handed to the one
//! [`SecurityTokenService`] the gRPC edge calls too, and its answer rendered in the shapes of
//! AWS's STS service model (botocore's `sts/2011-06-15/service-2.json`: member names and
//! order). Errors are AWS's `ErrorResponse` with AWS's codes and statuses.
//!
//! Signed operations are authenticated by the SigV4 signature of this very HTTP request
//! (header or presigned query, service `sts`, any region), with the body hashed here, so the
//! signature covers the parameters; `AssumeRoleWithWebIdentity` is unsigned, as in AWS (the
//! token is the credential). Refusals the domain never sees (a body that does not decode, an
//! unknown action, a signature that cannot be read) are counted in
//! `iamlet_http_refused_total{edge="sts"}` and, when the action is known, in the domain's own
//! per-operation counters and decision log; the domain counts and logs the rest.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::query::{self, QueryError, QueryRequest, XmlWriter};
use super::{aws_error, ErrorFormat, MAX_BODY_BYTES, STS_NAMESPACE};
use crate::directory::Tag;
use crate::error::AwsCode;
use crate::sidecar::{
    Api, ApiError, AssumeRoleInput, AssumeRoleWithWebIdentityInput, CallerId,
    GetAccessKeyInfoInput, GetCallerIdentityInput, GetSessionTokenInput, Origin,
    SecurityTokenService, SidecarHandle, SidecarProbes, StsOperation,
};
use crate::sts::Issued;

/// The only API version STS has.
pub const STS_VERSION: &str = "2011-06-15";

/// The edge label of this edge's refusals.
const EDGE: &str = "sts";

/// The sidecar's HTTP router: the probes, the STS Query API and AuthZEN (`tls`: the edge
/// serves TLS itself, so AuthZEN's metadata names `https` URLs).
pub fn sidecar_routes(handle: &SidecarHandle, tls: bool) -> Router {
    super::probe_routes(Arc::new(SidecarProbes(handle.clone())))
        .merge(sts_routes(Arc::clone(&handle.api)))
        .merge(super::authzen::authzen_routes(
            Arc::clone(&handle.api),
            super::authzen::PdpBase::FromRequest { tls },
        ))
}

/// `POST /` and `GET /`: the STS Query API over `api`'s snapshots.
pub fn sts_routes(api: Arc<Api>) -> Router {
    Router::new()
        .route("/", get(handle).post(handle))
        .with_state(Arc::new(StsQuery::new(api)))
}

/// The STS Query API: decodes, calls the domain, renders.
#[derive(Debug, Clone)]
pub struct StsQuery {
    sts: SecurityTokenService,
}

async fn handle(State(edge): State<Arc<StsQuery>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // The bounded layer refuses a declared length over the limit unread; this cuts a body
    // without one (chunked) at the limit.
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        query::count_refusal(EDGE, AwsCode::RequestEntityTooLarge);
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds {MAX_BODY_BYTES} bytes\n"),
        )
            .into_response();
    };
    edge.answer(&parts, &body)
}

/// Why the edge refused a request, each with AWS's code ([`StsQueryError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum StsQueryError {
    /// The parameters do not decode, or one is missing or malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// An action STS does not have (or iamlet does not implement).
    #[error("Could not find operation {0} for version 2011-06-15")]
    InvalidAction(String),
    /// A `Version` other than STS's one.
    #[error("Could not find operation {action} for version {version}")]
    UnsupportedVersion {
        /// The action asked for.
        action: String,
        /// The version given.
        version: String,
    },
    /// A parameter's value breaks its type or constraint.
    #[error("1 validation error detected: Value '{value}' at '{parameter}' failed to satisfy constraint: {constraint}")]
    Invalid {
        /// The parameter.
        parameter: String,
        /// Its value, bounded.
        value: String,
        /// What it must be.
        constraint: &'static str,
    },
    /// The request is signed for another service.
    #[error("Credential should be scoped to correct service: 'sts'. ")]
    WrongService,
    /// The signature cannot be read, or the domain refused the call.
    #[error(transparent)]
    Api(#[from] ApiError),
}

// === impl StsQueryError ===

impl StsQueryError {
    /// AWS's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::Query(e) => e.code(),
            Self::InvalidAction(_) | Self::UnsupportedVersion { .. } => AwsCode::InvalidAction,
            Self::Invalid { .. } => AwsCode::ValidationError,
            Self::WrongService => AwsCode::SignatureDoesNotMatch,
            Self::Api(e) => e.code(),
        }
    }
}

fn invalid(parameter: &str, value: &str, constraint: &'static str) -> StsQueryError {
    StsQueryError::Invalid {
        parameter: crate::error::echo(parameter).into_owned(),
        value: crate::error::echo(value).into_owned(),
        constraint,
    }
}

/// `DurationSeconds`, when given.
fn duration(request: &QueryRequest) -> Result<Option<i32>, StsQueryError> {
    request
        .get("DurationSeconds")
        .map(|v| {
            v.parse::<i32>()
                .map_err(|_| invalid("DurationSeconds", v, "Member must be an integer"))
        })
        .transpose()
}

fn optional(request: &QueryRequest, name: &str) -> Option<String> {
    request
        .get(name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `PolicyArns.member.N.arn`.
fn policy_arns(request: &QueryRequest) -> Result<Vec<String>, StsQueryError> {
    request
        .structs("PolicyArns")?
        .into_iter()
        .map(|fields| match fields.as_slice() {
            [("arn", arn)] => Ok((*arn).to_owned()),
            _ => Err(QueryError::MalformedList {
                name: "PolicyArns".into(),
                reason: "each member has exactly one field, arn",
            }
            .into()),
        })
        .collect()
}

/// `Tags.member.N.Key` and `.Value`.
fn tags(request: &QueryRequest) -> Result<Vec<Tag>, StsQueryError> {
    request
        .structs("Tags")?
        .into_iter()
        .map(|fields| {
            let (mut key, mut value) = (None, None);
            for (field, text) in fields {
                match field {
                    "Key" if key.is_none() => key = Some(text),
                    "Value" if value.is_none() => value = Some(text),
                    _ => {
                        return Err(QueryError::MalformedList {
                            name: "Tags".into(),
                            reason: "each member has the fields Key and Value",
                        }
                        .into())
                    }
                }
            }
            match (key, value) {
                (Some(key), Some(value)) => Ok(Tag {
                    key: key.to_owned(),
                    value: value.to_owned(),
                }),
                (None, _) => Err(QueryError::Missing("Tags.member.N.Key".into()).into()),
                (_, None) => Err(QueryError::Missing("Tags.member.N.Value".into()).into()),
            }
        })
        .collect()
}

impl TryFrom<&QueryRequest> for AssumeRoleInput {
    type Error = StsQueryError;

    /// The parameters of `AssumeRole`; the caller is the request's signature, set apart.
    fn try_from(request: &QueryRequest) -> Result<Self, StsQueryError> {
        Ok(Self {
            caller: None,
            role_arn: request.require("RoleArn")?.to_owned(),
            role_session_name: request.require("RoleSessionName")?.to_owned(),
            duration_seconds: duration(request)?,
            policy: optional(request, "Policy"),
            policy_arns: policy_arns(request)?,
            tags: tags(request)?,
            transitive_tag_keys: request
                .list("TransitiveTagKeys")?
                .into_iter()
                .map(str::to_owned)
                .collect(),
            external_id: optional(request, "ExternalId"),
            serial_number: optional(request, "SerialNumber"),
            token_code: optional(request, "TokenCode"),
            source_identity: optional(request, "SourceIdentity"),
            request_id: None,
        })
    }
}

impl TryFrom<&QueryRequest> for AssumeRoleWithWebIdentityInput {
    type Error = StsQueryError;

    fn try_from(request: &QueryRequest) -> Result<Self, StsQueryError> {
        if let Some(provider) = request.get("ProviderId").filter(|p| !p.is_empty()) {
            // Only OAuth 2.0 providers (Amazon, Facebook) use it; iamlet trusts OIDC ones.
            return Err(invalid(
                "ProviderId",
                provider,
                "Member must be absent: iamlet trusts OpenID Connect providers only",
            ));
        }
        Ok(Self {
            role_arn: request.require("RoleArn")?.to_owned(),
            role_session_name: request.require("RoleSessionName")?.to_owned(),
            web_identity_token: request.require("WebIdentityToken")?.to_owned(),
            duration_seconds: duration(request)?,
            policy: optional(request, "Policy"),
            policy_arns: policy_arns(request)?,
            request_id: None,
        })
    }
}

impl TryFrom<&QueryRequest> for GetSessionTokenInput {
    type Error = StsQueryError;

    fn try_from(request: &QueryRequest) -> Result<Self, StsQueryError> {
        Ok(Self {
            caller: None,
            duration_seconds: duration(request)?,
            serial_number: optional(request, "SerialNumber"),
            token_code: optional(request, "TokenCode"),
            request_id: None,
        })
    }
}

impl TryFrom<&QueryRequest> for GetAccessKeyInfoInput {
    type Error = StsQueryError;

    fn try_from(request: &QueryRequest) -> Result<Self, StsQueryError> {
        Ok(Self {
            caller: None,
            access_key_id: request.require("AccessKeyId")?.to_owned(),
            request_id: None,
        })
    }
}

/// The operation `Action` names.
/// Where a request came from, for the trail: the peer's address (when the server records
/// it) and the `User-Agent` header, bounded.
fn origin(parts: &Parts) -> Origin {
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| crate::error::echo(ua).into_owned());
    let source_ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    Origin {
        source_ip,
        user_agent,
    }
}

fn operation(action: &str) -> Option<StsOperation> {
    Some(match action {
        "AssumeRole" => StsOperation::AssumeRole,
        "AssumeRoleWithWebIdentity" => StsOperation::AssumeRoleWithWebIdentity,
        "GetSessionToken" => StsOperation::GetSessionToken,
        "GetCallerIdentity" => StsOperation::GetCallerIdentity,
        "GetAccessKeyInfo" => StsOperation::GetAccessKeyInfo,
        _ => return None,
    })
}

/// `Credentials` of the model's `Credentials` shape.
fn write_credentials(xml: &mut XmlWriter, issued: &Issued) {
    xml.open("Credentials")
        .element("AccessKeyId", &issued.access_key_id)
        .element("SecretAccessKey", &issued.secret_access_key)
        .element("SessionToken", &issued.session_token)
        .element("Expiration", &issued.expiration.to_string())
        .close("Credentials");
}

fn write_assumed_role_user(xml: &mut XmlWriter, issued: &Issued) {
    xml.open("AssumedRoleUser")
        .element("AssumedRoleId", &issued.assumed_role_id)
        .element("Arn", &issued.arn)
        .close("AssumedRoleUser");
}

/// Whether the request passed session policies or tags: AWS reports `PackedPolicySize`
/// only then.
fn packs(policy: Option<&String>, policy_arns: &[String], tags: &[Tag]) -> bool {
    policy.is_some() || !policy_arns.is_empty() || !tags.is_empty()
}

// === impl StsQuery ===

impl StsQuery {
    /// The edge over `api`'s snapshots.
    pub fn new(api: Arc<Api>) -> Self {
        Self {
            sts: SecurityTokenService::over_signed_requests(api),
        }
    }

    /// Answers one request: a Query success or an `ErrorResponse`, with `x-amzn-RequestId`.
    pub fn answer(&self, parts: &Parts, body: &[u8]) -> Response {
        let request_id = query::new_request_id();
        match self.dispatch(parts, body, &request_id) {
            Ok(response) => response,
            Err(error) => {
                let code = error.code();
                tracing::info!(
                    edge = EDGE,
                    request_id = %request_id,
                    code = %code,
                    message = %crate::error::bounded_message(&error.to_string()),
                    "sts: refused"
                );
                aws_error(
                    code,
                    &error.to_string(),
                    &request_id,
                    ErrorFormat::Query {
                        namespace: STS_NAMESPACE,
                    },
                )
            }
        }
    }

    /// Counts a refusal the domain did not see: at the edge, and in the domain's counters and
    /// decision log when the operation is known.
    fn refuse(
        &self,
        operation: Option<StsOperation>,
        request_id: &str,
        error: StsQueryError,
    ) -> StsQueryError {
        query::count_refusal(EDGE, error.code());
        if let Some(operation) = operation {
            // The decision log records a decoding failure as the domain's own kind of
            // refusal (a ValidationError); the edge's counter keeps AWS's exact code.
            match &error {
                StsQueryError::Api(e) => self.sts.refused(operation, Some(request_id), "*", e),
                other => self.sts.refused(
                    operation,
                    Some(request_id),
                    "*",
                    &ApiError::invalid("request", other),
                ),
            }
        }
        error
    }

    fn dispatch(
        &self,
        parts: &Parts,
        body: &[u8],
        request_id: &str,
    ) -> Result<Response, StsQueryError> {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let request = QueryRequest::try_from_parts(
            &parts.method,
            parts.uri.query().unwrap_or_default(),
            content_type,
            body,
        )
        .map_err(|e| self.refuse(None, request_id, e.into()))?;
        let action = request
            .require("Action")
            .map_err(|e| self.refuse(None, request_id, e.into()))?;
        let Some(operation) = operation(action) else {
            return Err(self.refuse(
                None,
                request_id,
                StsQueryError::InvalidAction(crate::error::echo(action).into_owned()),
            ));
        };
        let decoded = self.check_version(&request, action).and_then(|()| {
            if operation == StsOperation::AssumeRoleWithWebIdentity {
                return Ok(None);
            }
            self.signed_caller(parts, body).map(Some)
        });
        let caller = decoded.map_err(|e| self.refuse(Some(operation), request_id, e))?;
        let rid = Some(request_id.to_owned());
        let sts = self.sts.with_origin(origin(parts));
        let mut xml = XmlWriter::new();
        match operation {
            StsOperation::AssumeRole => {
                let mut input = AssumeRoleInput::try_from(&request)
                    .map_err(|e| self.refuse(Some(operation), request_id, e))?;
                input.caller = caller;
                input.request_id = rid;
                let issued = sts.assume_role(&input)?;
                write_credentials(&mut xml, &issued);
                write_assumed_role_user(&mut xml, &issued);
                if packs(input.policy.as_ref(), &input.policy_arns, &input.tags) {
                    xml.element("PackedPolicySize", &issued.packed_policy_size.to_string());
                }
                xml.optional("SourceIdentity", issued.source_identity.as_deref());
            }
            StsOperation::AssumeRoleWithWebIdentity => {
                let mut input = AssumeRoleWithWebIdentityInput::try_from(&request)
                    .map_err(|e| self.refuse(Some(operation), request_id, e))?;
                input.request_id = rid;
                let issued = sts.assume_role_with_web_identity(&input)?;
                write_credentials(&mut xml, &issued.issued);
                xml.element("SubjectFromWebIdentityToken", &issued.subject);
                write_assumed_role_user(&mut xml, &issued.issued);
                if packs(input.policy.as_ref(), &input.policy_arns, &[]) {
                    xml.element(
                        "PackedPolicySize",
                        &issued.issued.packed_policy_size.to_string(),
                    );
                }
                xml.element("Provider", &issued.provider)
                    .element("Audience", &issued.audience)
                    .optional("SourceIdentity", issued.issued.source_identity.as_deref());
            }
            StsOperation::GetSessionToken => {
                let mut input = GetSessionTokenInput::try_from(&request)
                    .map_err(|e| self.refuse(Some(operation), request_id, e))?;
                input.caller = caller;
                input.request_id = rid;
                let issued = sts.get_session_token(&input)?;
                write_credentials(&mut xml, &issued);
            }
            StsOperation::GetCallerIdentity => {
                let identity = sts.get_caller_identity(&GetCallerIdentityInput {
                    caller,
                    request_id: rid,
                })?;
                xml.element("UserId", &identity.user_id)
                    .element("Account", &identity.account)
                    .element("Arn", &identity.arn);
            }
            StsOperation::GetAccessKeyInfo => {
                let mut input = GetAccessKeyInfoInput::try_from(&request)
                    .map_err(|e| self.refuse(Some(operation), request_id, e))?;
                input.caller = caller;
                input.request_id = rid;
                let account = sts.get_access_key_info(&input)?;
                xml.element("Account", &account);
            }
        }
        Ok(query::xml_response(
            operation.name(),
            STS_NAMESPACE,
            request_id,
            Some(xml.as_str()),
        ))
    }

    fn check_version(&self, request: &QueryRequest, action: &str) -> Result<(), StsQueryError> {
        let version = request.require("Version")?;
        if version == STS_VERSION {
            Ok(())
        } else {
            Err(StsQueryError::UnsupportedVersion {
                action: crate::error::echo(action).into_owned(),
                version: crate::error::echo(version).into_owned(),
            })
        }
    }

    /// The caller proven by this request's signature, which must be for `sts`.
    fn signed_caller(&self, parts: &Parts, body: &[u8]) -> Result<CallerId, StsQueryError> {
        let signed = query::signed_request_parts(parts, body);
        let caller = CallerId::signed(&signed.as_signed_request())?;
        match &caller {
            CallerId::Signed(signature) if signature.service() != EDGE => {
                Err(StsQueryError::WrongService)
            }
            _ => Ok(caller),
        }
    }
}

#[cfg(test)]
mod tests;
