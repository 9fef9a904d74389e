//! `iamlet.v1.SecurityTokenService`: short-lived credentials, minted beside the workload.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::directory::{IdGenerator, Tag};
use crate::policy::Timestamp;
use crate::proto::v1 as pb;
use crate::snapshot::TenantSnapshot;
use crate::sts::{
    self, AssumeRoleParams, Caller, GetSessionTokenParams, IssueEnv, Issued, StsError,
    WebIdentityParams,
};

use super::api::{status, Api, ApiError, CallerId};
use super::authorize::next_request_id;
use super::decision_log::{rfc3339_millis, sample_key, DecisionRecord};
use crate::observe::{Answer, Method};

/// `iamlet.v1.SecurityTokenService`.
#[derive(Debug, Clone)]
pub struct StsService {
    api: Arc<Api>,
}

/// What an operation reports to the decision log.
struct Logged {
    operation: &'static str,
    request_id: String,
    tenant: String,
    principal: String,
    action: &'static str,
    resource: String,
}

impl Logged {
    /// A record of `operation` (`action` on `resource`), to be completed as the call learns
    /// who is calling.
    fn new(
        operation: &'static str,
        action: &'static str,
        request_id: String,
        resource: String,
    ) -> Self {
        Self {
            operation,
            request_id,
            tenant: String::new(),
            principal: String::new(),
            action,
            resource,
        }
    }
}

// === impl StsService ===

impl StsService {
    /// Issues with `api`'s snapshots.
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    /// The tonic server.
    pub fn into_server(
        self,
    ) -> pb::security_token_service_server::SecurityTokenServiceServer<Self> {
        pb::security_token_service_server::SecurityTokenServiceServer::new(self)
    }

    /// Authenticates an STS caller. A SigV4 signature proves only the request it signs, so a
    /// signed request is taken as proof of identity for `GetCallerIdentity` alone, and only
    /// when it was signed for STS (as Vault's and EKS's identity proofs are); operations that
    /// mint credentials need the credentials themselves.
    fn caller(
        &self,
        caller: Option<pb::StsCaller>,
        now: Timestamp,
        operation: &str,
    ) -> Result<(Caller, Arc<TenantSnapshot>), ApiError> {
        let id = match caller.and_then(|c| c.caller) {
            Some(pb::sts_caller::Caller::Credentials(c)) => CallerId::from_credentials(c)?,
            Some(pb::sts_caller::Caller::SignedRequest(r)) => {
                if operation != "GetCallerIdentity" {
                    return Err(ApiError::invalid(
                        "caller.signed_request",
                        format!("a signature proves only the request it signs: {operation} needs credentials (access key id, secret and, for temporary credentials, the session token)"),
                    ));
                }
                let id = CallerId::from_signed(&r)?;
                if let CallerId::Signed(signature) = &id {
                    if signature.service() != "sts" {
                        return Err(ApiError::invalid(
                            "caller.signed_request",
                            format!(
                                "the request is signed for `{}`, not for `sts`",
                                signature.service()
                            ),
                        ));
                    }
                }
                id
            }
            None => {
                return Err(ApiError::invalid(
                    "caller",
                    "missing: give credentials or signed_request",
                ))
            }
        };
        self.api
            .authenticate(&id, now)
            .map(|(verified, snapshot)| (verified.caller.clone(), snapshot))
    }

    /// The snapshot of the tenant a role ARN names.
    fn role_snapshot(&self, role_arn: &str) -> Result<Arc<TenantSnapshot>, ApiError> {
        let account = role_arn
            .strip_prefix("arn:aws:iam::")
            .and_then(|rest| rest.split_once(':'))
            .map(|(account, _)| account)
            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ApiError::Sts(StsError::Validation(format!(
                    "{role_arn} is invalid: a role ARN is arn:aws:iam::<account>:role/<name>"
                )))
            })?;
        self.api.load(account)
    }

    /// Logs a call's outcome and turns it into the gRPC answer.
    fn finish<T>(
        &self,
        started: Instant,
        now: Timestamp,
        logged: Logged,
        result: Result<T, ApiError>,
    ) -> Result<Response<T>, Status> {
        self.log(started, now, logged, result.as_ref().map(|_| ()));
        result.map(Response::new).map_err(|e| status(&e))
    }

    fn log(&self, started: Instant, now: Timestamp, logged: Logged, result: Result<(), &ApiError>) {
        let method = match logged.operation {
            "AssumeRole" => Method::AssumeRole,
            "AssumeRoleWithWebIdentity" => Method::AssumeRoleWithWebIdentity,
            "GetSessionToken" => Method::GetSessionToken,
            _ => Method::GetCallerIdentity,
        };
        let answer = if result.is_ok() {
            Answer::Allow
        } else {
            Answer::Error
        };
        self.api.metrics.record(method, answer, started.elapsed());
        let log = &self.api.log;
        if !log.wants(result.is_err(), sample_key(&logged.request_id)) {
            return;
        }
        log.record(DecisionRecord {
            time: rfc3339_millis(now),
            request_id: logged.request_id,
            operation: logged.operation,
            tenant: logged.tenant,
            principal: logged.principal,
            action: logged.action.to_owned(),
            resource: logged.resource,
            decision: if result.is_ok() { "Allow" } else { "Error" },
            error_code: result.err().map(|e| e.code().as_str()),
            policy_type: None,
            statement: None,
            snapshot_version: String::new(),
            latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            cached: false,
        });
    }

    fn assume_role_inner(
        &self,
        r: pb::AssumeRoleRequest,
        now: Timestamp,
        logged: &mut Logged,
    ) -> Result<pb::AssumeRoleResponse, ApiError> {
        let pb::AssumeRoleRequest {
            caller,
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
            request_id: _,
        } = r;
        let (caller, caller_snapshot) = self.caller(caller, now, "AssumeRole")?;
        logged.principal = caller.principal.to_string();
        logged.tenant = caller_snapshot.account_id().to_owned();
        let role_snapshot =
            if role_arn.starts_with(&format!("arn:aws:iam::{}:", caller_snapshot.account_id())) {
                Arc::clone(&caller_snapshot)
            } else {
                self.role_snapshot(&role_arn)?
            };
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|t| Tag {
                key: t.key,
                value: t.value,
            })
            .collect();
        let params = AssumeRoleParams {
            role_arn: &role_arn,
            role_session_name: &role_session_name,
            duration_seconds,
            policy: non_empty(&policy),
            policy_arns: &policy_arns,
            tags: &tags,
            transitive_tag_keys: &transitive_tag_keys,
            external_id: non_empty(&external_id),
            serial_number: non_empty(&serial_number),
            token_code: non_empty(&token_code),
            source_identity: non_empty(&source_identity),
        };
        let latest_expiry = self.api.check_issue(role_snapshot.account_id(), now)?;
        let mut ids = IdGenerator::system();
        let mut env = IssueEnv {
            now,
            ids: &mut ids,
            mfa: &self.api.mfa,
            latest_expiry,
        };
        let issued =
            sts::assume_role(&caller, &caller_snapshot, &role_snapshot, &params, &mut env)?;
        Ok(pb::AssumeRoleResponse {
            packed_policy_size: issued.packed_policy_size,
            source_identity: issued.source_identity.clone().unwrap_or_default(),
            assumed_role_user: Some(assumed_role_user(&issued)),
            credentials: Some(credentials(issued)),
        })
    }

    fn web_identity_inner(
        &self,
        r: pb::AssumeRoleWithWebIdentityRequest,
        now: Timestamp,
        logged: &mut Logged,
    ) -> Result<pb::AssumeRoleWithWebIdentityResponse, ApiError> {
        let pb::AssumeRoleWithWebIdentityRequest {
            role_arn,
            role_session_name,
            web_identity_token,
            duration_seconds,
            policy,
            policy_arns,
            request_id: _,
        } = r;
        let snapshot = self.role_snapshot(&role_arn)?;
        logged.tenant = snapshot.account_id().to_owned();
        let params = WebIdentityParams {
            role_arn: &role_arn,
            role_session_name: &role_session_name,
            web_identity_token: &web_identity_token,
            duration_seconds,
            policy: non_empty(&policy),
            policy_arns: &policy_arns,
        };
        let latest_expiry = self.api.check_issue(snapshot.account_id(), now)?;
        let mut ids = IdGenerator::system();
        let mut env = IssueEnv {
            now,
            ids: &mut ids,
            mfa: &self.api.mfa,
            latest_expiry,
        };
        let issued = sts::assume_role_with_web_identity(&snapshot, &params, &mut env)?;
        logged.principal = format!("{} (web identity, sub {})", issued.provider, issued.subject);
        Ok(pb::AssumeRoleWithWebIdentityResponse {
            assumed_role_user: Some(assumed_role_user(&issued.issued)),
            subject_from_web_identity_token: issued.subject,
            provider: issued.provider,
            audience: issued.audience,
            packed_policy_size: issued.issued.packed_policy_size,
            source_identity: issued.issued.source_identity.clone().unwrap_or_default(),
            credentials: Some(credentials(issued.issued)),
        })
    }
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
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

fn request_id(given: &str) -> String {
    if given.is_empty() {
        next_request_id()
    } else {
        given.to_owned()
    }
}

#[tonic::async_trait]
impl pb::security_token_service_server::SecurityTokenService for StsService {
    async fn assume_role(
        &self,
        request: Request<pb::AssumeRoleRequest>,
    ) -> Result<Response<pb::AssumeRoleResponse>, Status> {
        let (started, now) = (Instant::now(), Timestamp::now());
        let r = request.into_inner();
        let mut logged = Logged::new(
            "AssumeRole",
            "sts:AssumeRole",
            request_id(&r.request_id),
            r.role_arn.clone(),
        );
        let result = self.assume_role_inner(r, now, &mut logged);
        self.finish(started, now, logged, result)
    }

    async fn assume_role_with_web_identity(
        &self,
        request: Request<pb::AssumeRoleWithWebIdentityRequest>,
    ) -> Result<Response<pb::AssumeRoleWithWebIdentityResponse>, Status> {
        let (started, now) = (Instant::now(), Timestamp::now());
        let r = request.into_inner();
        let mut logged = Logged::new(
            "AssumeRoleWithWebIdentity",
            "sts:AssumeRoleWithWebIdentity",
            request_id(&r.request_id),
            r.role_arn.clone(),
        );
        let result = self.web_identity_inner(r, now, &mut logged);
        self.finish(started, now, logged, result)
    }

    async fn get_session_token(
        &self,
        request: Request<pb::GetSessionTokenRequest>,
    ) -> Result<Response<pb::GetSessionTokenResponse>, Status> {
        let (started, now) = (Instant::now(), Timestamp::now());
        let pb::GetSessionTokenRequest {
            caller,
            duration_seconds,
            serial_number,
            token_code,
            request_id: id,
        } = request.into_inner();
        let mut logged = Logged::new(
            "GetSessionToken",
            "sts:GetSessionToken",
            request_id(&id),
            "*".into(),
        );
        let result = self
            .caller(caller, now, "GetSessionToken")
            .and_then(|(caller, snapshot)| {
                logged.principal = caller.principal.to_string();
                logged.tenant = snapshot.account_id().to_owned();
                let latest_expiry = self.api.check_issue(snapshot.account_id(), now)?;
                let mut ids = IdGenerator::system();
                let mut env = IssueEnv {
                    now,
                    ids: &mut ids,
                    mfa: &self.api.mfa,
                    latest_expiry,
                };
                let params = GetSessionTokenParams {
                    duration_seconds,
                    serial_number: non_empty(&serial_number),
                    token_code: non_empty(&token_code),
                };
                let issued = sts::get_session_token(&caller, &snapshot, &params, &mut env)?;
                Ok(pb::GetSessionTokenResponse {
                    credentials: Some(credentials(issued)),
                })
            });
        self.finish(started, now, logged, result)
    }

    async fn get_caller_identity(
        &self,
        request: Request<pb::GetCallerIdentityRequest>,
    ) -> Result<Response<pb::GetCallerIdentityResponse>, Status> {
        let (started, now) = (Instant::now(), Timestamp::now());
        let mut logged = Logged::new(
            "GetCallerIdentity",
            "sts:GetCallerIdentity",
            next_request_id(),
            "*".into(),
        );
        let result = self
            .caller(request.into_inner().caller, now, "GetCallerIdentity")
            .map(|(caller, snapshot)| {
                let identity = sts::caller_identity(&caller, &snapshot);
                logged.principal = identity.arn.clone();
                logged.tenant = identity.account.clone();
                pb::GetCallerIdentityResponse {
                    user_id: identity.user_id,
                    account: identity.account,
                    arn: identity.arn,
                }
            });
        self.finish(started, now, logged, result)
    }
}
