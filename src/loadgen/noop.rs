//! A server with the sidecar's API that does no work: the physical floor of a call.
//!
//! It answers `Authorize` and `BatchAuthorize` with a fixed allow shaped like the sidecar's
//! (a deciding statement, AWS's message, a version, the principal) and `AssumeRole` with fixed
//! credentials of a real session's sizes, served by the same tonic stack as the sidecar
//! (`serve_with_incoming_shutdown` on a listener). Measured with the same generator and
//! requests, the difference to the sidecar is what iamlet itself costs.
//!
//! Accepted connections get `TCP_NODELAY`: without it a response's last frames wait in the
//! kernel (Nagle) for the client's delayed ACK, which comes with the client's next request,
//! so every latency grows to the interval between requests (up to 40 ms): that is no floor.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::BenchError;
use crate::proto::v1 as pb;

/// The demo tenant's alice, whom the fixed answers are about.
const PRINCIPAL: &str = "arn:aws:iam::111122223333:user/alice";
/// The length of the session token the sidecar mints for a session of the demo tenant's
/// `reports-writer` role (measured with `iamlet assume-role` against `iamlet up`: an `iamlet2`
/// token, which carries the sidecar's issuing certificate).
const SESSION_TOKEN_LEN: usize = 856;

/// The fixed answers.
#[derive(Debug, Clone)]
pub struct NoopService {
    allow: Arc<pb::AuthorizeResponse>,
    assume_role: Arc<pb::AssumeRoleResponse>,
}

impl Default for NoopService {
    fn default() -> Self {
        Self::new()
    }
}

impl NoopService {
    /// The service with its fixed answers.
    pub fn new() -> Self {
        let allow = pb::AuthorizeResponse {
            decision: pb::Decision::Allow as i32,
            policy_type: pb::PolicyKind::Identity as i32,
            statement: Some(pb::StatementRef {
                policy: "arn:aws:iam::111122223333:policy/DeveloperDataAccess".into(),
                index: 0,
                sid: "OwnPrefix".into(),
            }),
            message: format!(
                "{PRINCIPAL} is authorized to perform: s3:GetObject on resource: arn:aws:s3:::demo-data/home/alice/notes.txt"
            ),
            version: Some(pb::Version { epoch: 1, seq: 12 }),
            trace: Vec::new(),
            principal_arn: PRINCIPAL.into(),
            cached: true,
            rule: String::new(),
        };
        // Base64url-like filler of a real token's length: the bytes cost the same to move.
        let token: String = "IQoJb3JpZ2luX2VjEJr"
            .chars()
            .cycle()
            .take(SESSION_TOKEN_LEN)
            .collect();
        let assume_role = pb::AssumeRoleResponse {
            credentials: Some(pb::IssuedCredentials {
                access_key_id: "ASIAQNOOPNOOPNOOPNOP".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNOOPNOOPNO".into(),
                session_token: token,
                expiration: "2026-11-28T13:00:00Z".into(),
            }),
            assumed_role_user: Some(pb::AssumedRoleUser {
                assumed_role_id: "AROAQNOOPNOOPNOOPNOOP:iamlet-bench".into(),
                arn: "arn:aws:sts::111122223333:assumed-role/reports-writer/iamlet-bench".into(),
            }),
            packed_policy_size: 0,
            source_identity: String::new(),
        };
        Self {
            allow: Arc::new(allow),
            assume_role: Arc::new(assume_role),
        }
    }
}

#[tonic::async_trait]
impl pb::authorizer_server::Authorizer for NoopService {
    async fn authorize(
        &self,
        _request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        Ok(Response::new((*self.allow).clone()))
    }

    async fn batch_authorize(
        &self,
        request: Request<pb::BatchAuthorizeRequest>,
    ) -> Result<Response<pb::BatchAuthorizeResponse>, Status> {
        let results = request
            .get_ref()
            .requests
            .iter()
            .map(|_| pb::BatchAuthorizeResult {
                result: Some(pb::batch_authorize_result::Result::Response(
                    (*self.allow).clone(),
                )),
            })
            .collect();
        Ok(Response::new(pb::BatchAuthorizeResponse { results }))
    }
}

#[tonic::async_trait]
impl pb::security_token_service_server::SecurityTokenService for NoopService {
    async fn assume_role(
        &self,
        _request: Request<pb::AssumeRoleRequest>,
    ) -> Result<Response<pb::AssumeRoleResponse>, Status> {
        Ok(Response::new((*self.assume_role).clone()))
    }

    async fn assume_role_with_web_identity(
        &self,
        _request: Request<pb::AssumeRoleWithWebIdentityRequest>,
    ) -> Result<Response<pb::AssumeRoleWithWebIdentityResponse>, Status> {
        Err(Status::unimplemented(
            "the no-op server answers AssumeRole only",
        ))
    }

    async fn get_session_token(
        &self,
        _request: Request<pb::GetSessionTokenRequest>,
    ) -> Result<Response<pb::GetSessionTokenResponse>, Status> {
        Err(Status::unimplemented(
            "the no-op server answers AssumeRole only",
        ))
    }

    async fn get_caller_identity(
        &self,
        _request: Request<pb::GetCallerIdentityRequest>,
    ) -> Result<Response<pb::GetCallerIdentityResponse>, Status> {
        Err(Status::unimplemented(
            "the no-op server answers AssumeRole only",
        ))
    }
}

/// Serves the no-op `Authorizer` and `SecurityTokenService` on `listener` until `shutdown`
/// completes.
pub async fn serve_noop(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BenchError> {
    let service = NoopService::new();
    tonic::transport::Server::builder()
        .add_service(pb::authorizer_server::AuthorizerServer::new(
            service.clone(),
        ))
        .add_service(pb::security_token_service_server::SecurityTokenServiceServer::new(service))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| BenchError::Serve(super::error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn the_fixed_allow_is_the_size_of_a_real_one() {
        let s = NoopService::new();
        // The demo sidecar's allow for alice's s3:GetObject on her notes encodes to 252 bytes
        // from the decision cache (250 uncached: `cached` false is not encoded); the no-op's
        // must be within a few bytes of it.
        let len = s.allow.encoded_len();
        assert!((247..=257).contains(&len), "{len}");
        assert_eq!(s.allow.decision, pb::Decision::Allow as i32);
        let token = &s.assume_role.credentials.as_ref().unwrap().session_token;
        assert_eq!(token.len(), SESSION_TOKEN_LEN);
    }
}
