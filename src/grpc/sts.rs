//! `iamlet.v1.SecurityTokenService` over gRPC: decodes each message once, calls the domain
//! [`SecurityTokenService`], renders its answer.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::directory::Tag;
use crate::proto::v1 as pb;
use crate::sidecar::{
    Api, ApiError, AssumeRoleInput, AssumeRoleWithWebIdentityInput, CallerId,
    GetCallerIdentityInput, GetSessionTokenInput, SecurityTokenService, StsOperation,
};
use crate::sts::Issued;

use super::status::api_status;

/// `iamlet.v1.SecurityTokenService`.
#[derive(Debug, Clone)]
pub struct StsService {
    sts: SecurityTokenService,
}

impl StsService {
    /// Issues with `api`'s snapshots.
    pub fn new(api: Arc<Api>) -> Self {
        Self {
            sts: SecurityTokenService::new(api),
        }
    }

    /// The tonic server.
    pub fn into_server(
        self,
    ) -> pb::security_token_service_server::SecurityTokenServiceServer<Self> {
        pb::security_token_service_server::SecurityTokenServiceServer::new(self)
    }
}

/// The caller of an STS message. A missing caller is left for the domain to refuse, so every
/// refusal is logged the same way.
fn caller(caller: Option<pb::StsCaller>) -> Result<Option<CallerId>, ApiError> {
    match caller.and_then(|c| c.caller) {
        Some(pb::sts_caller::Caller::Credentials(c)) => CallerId::try_from(c).map(Some),
        Some(pb::sts_caller::Caller::SignedRequest(r)) => CallerId::try_from(&r).map(Some),
        None => Ok(None),
    }
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

impl TryFrom<pb::AssumeRoleRequest> for AssumeRoleInput {
    type Error = ApiError;

    fn try_from(r: pb::AssumeRoleRequest) -> Result<Self, ApiError> {
        let pb::AssumeRoleRequest {
            caller: c,
            role_arn,
            role_session_name,
            duration_seconds,
            policy,
            policy_arns,
            tags,
            transitive_tag_keys,
            external_id,
            serial_number,
            token_code,
            source_identity,
            request_id,
        } = r;
        Ok(Self {
            caller: caller(c)?,
            role_arn,
            role_session_name,
            duration_seconds,
            policy: non_empty(policy),
            policy_arns,
            tags: tags
                .into_iter()
                .map(|t| Tag {
                    key: t.key,
                    value: t.value,
                })
                .collect(),
            transitive_tag_keys,
            external_id: non_empty(external_id),
            serial_number: non_empty(serial_number),
            token_code: non_empty(token_code),
            source_identity: non_empty(source_identity),
            request_id: non_empty(request_id),
        })
    }
}

impl From<pb::AssumeRoleWithWebIdentityRequest> for AssumeRoleWithWebIdentityInput {
    fn from(r: pb::AssumeRoleWithWebIdentityRequest) -> Self {
        let pb::AssumeRoleWithWebIdentityRequest {
            role_arn,
            role_session_name,
            web_identity_token,
            duration_seconds,
            policy,
            policy_arns,
            request_id,
        } = r;
        Self {
            role_arn,
            role_session_name,
            web_identity_token,
            duration_seconds,
            policy: non_empty(policy),
            policy_arns,
            request_id: non_empty(request_id),
        }
    }
}

impl TryFrom<pb::GetSessionTokenRequest> for GetSessionTokenInput {
    type Error = ApiError;

    fn try_from(r: pb::GetSessionTokenRequest) -> Result<Self, ApiError> {
        let pb::GetSessionTokenRequest {
            caller: c,
            duration_seconds,
            serial_number,
            token_code,
            request_id,
        } = r;
        Ok(Self {
            caller: caller(c)?,
            duration_seconds,
            serial_number: non_empty(serial_number),
            token_code: non_empty(token_code),
            request_id: non_empty(request_id),
        })
    }
}

impl TryFrom<pb::GetCallerIdentityRequest> for GetCallerIdentityInput {
    type Error = ApiError;

    fn try_from(r: pb::GetCallerIdentityRequest) -> Result<Self, ApiError> {
        Ok(Self {
            caller: caller(r.caller)?,
            request_id: None,
        })
    }
}

fn assumed_role_user(issued: &Issued) -> pb::AssumedRoleUser {
    pb::AssumedRoleUser {
        assumed_role_id: issued.assumed_role_id.clone(),
        arn: issued.arn.clone(),
    }
}

fn credentials(issued: Issued) -> pb::IssuedCredentials {
    pb::IssuedCredentials {
        expiration: issued.expiration.to_string(),
        access_key_id: issued.access_key_id,
        secret_access_key: issued.secret_access_key,
        session_token: issued.session_token,
    }
}

fn answer<T>(result: Result<T, ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|e| api_status(&e))
}

impl StsService {
    /// Decodes a message; one that does not decode is counted and logged as a failed call.
    fn decode<M, I: TryFrom<M, Error = ApiError>>(
        &self,
        message: M,
        operation: StsOperation,
        request_id: Option<&str>,
        resource: &str,
    ) -> Result<I, ApiError> {
        I::try_from(message).inspect_err(|e| self.sts.refused(operation, request_id, resource, e))
    }
}

#[tonic::async_trait]
impl pb::security_token_service_server::SecurityTokenService for StsService {
    async fn assume_role(
        &self,
        request: Request<pb::AssumeRoleRequest>,
    ) -> Result<Response<pb::AssumeRoleResponse>, Status> {
        let message = request.into_inner();
        let (id, role) = (
            non_empty(message.request_id.clone()),
            message.role_arn.clone(),
        );
        answer(
            self.decode::<_, AssumeRoleInput>(
                message,
                StsOperation::AssumeRole,
                id.as_deref(),
                &role,
            )
            .and_then(|input| self.sts.assume_role(&input))
            .map(|issued| pb::AssumeRoleResponse {
                packed_policy_size: issued.packed_policy_size,
                source_identity: issued.source_identity.clone().unwrap_or_default(),
                assumed_role_user: Some(assumed_role_user(&issued)),
                credentials: Some(credentials(issued)),
            }),
        )
    }

    async fn assume_role_with_web_identity(
        &self,
        request: Request<pb::AssumeRoleWithWebIdentityRequest>,
    ) -> Result<Response<pb::AssumeRoleWithWebIdentityResponse>, Status> {
        let input = AssumeRoleWithWebIdentityInput::from(request.into_inner());
        answer(
            self.sts
                .assume_role_with_web_identity(&input)
                .map(|issued| pb::AssumeRoleWithWebIdentityResponse {
                    assumed_role_user: Some(assumed_role_user(&issued.issued)),
                    subject_from_web_identity_token: issued.subject,
                    provider: issued.provider,
                    audience: issued.audience,
                    packed_policy_size: issued.issued.packed_policy_size,
                    source_identity: issued.issued.source_identity.clone().unwrap_or_default(),
                    credentials: Some(credentials(issued.issued)),
                }),
        )
    }

    async fn get_session_token(
        &self,
        request: Request<pb::GetSessionTokenRequest>,
    ) -> Result<Response<pb::GetSessionTokenResponse>, Status> {
        let message = request.into_inner();
        let id = non_empty(message.request_id.clone());
        answer(
            self.decode::<_, GetSessionTokenInput>(
                message,
                StsOperation::GetSessionToken,
                id.as_deref(),
                "*",
            )
            .and_then(|input| self.sts.get_session_token(&input))
            .map(|issued| pb::GetSessionTokenResponse {
                credentials: Some(credentials(issued)),
            }),
        )
    }

    async fn get_caller_identity(
        &self,
        request: Request<pb::GetCallerIdentityRequest>,
    ) -> Result<Response<pb::GetCallerIdentityResponse>, Status> {
        answer(
            self.decode::<_, GetCallerIdentityInput>(
                request.into_inner(),
                StsOperation::GetCallerIdentity,
                None,
                "*",
            )
            .and_then(|input| self.sts.get_caller_identity(&input))
            .map(|identity| pb::GetCallerIdentityResponse {
                user_id: identity.user_id,
                account: identity.account,
                arn: identity.arn,
            }),
        )
    }
}
