//! The SecurityTokenService: short-lived credentials, minted beside the workload.
//!
//! This is the domain API the gRPC `iamlet.v1.SecurityTokenService` and the HTTP edge's STS
//! protocols call: one implementation, any number of edges. Every call is counted and written
//! to the decision log, success or failure, without a secret.

use std::sync::Arc;

use crate::directory::{IdGenerator, Tag};
use crate::policy::{ArnParts, Timestamp};
use crate::snapshot::TenantSnapshot;
use crate::sts::{
    self, AssumeRoleParams, Caller, CallerIdentity, GetSessionTokenParams, IssueEnv, Issued,
    StsError, WebIdentityIssued, WebIdentityParams,
};

use super::api::{Api, ApiError, CallerId};
use super::authorize::next_request_id;
use super::clock::{Instant, Reading};
use super::decision_log::{rfc3339_millis, sample_key, DecisionRecord};
use crate::observe::{Answer, Method};
use crate::sync::trail::{TrailEvent, TrailIdentity};
use crate::sync::usage::{Subject, Use};

mod trail;

pub use trail::Origin;

/// `AssumeRole`'s parameters, decoded.
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleInput {
    /// The caller's credentials (a signature alone proves nothing here).
    pub caller: Option<CallerId>,
    /// The role to assume.
    pub role_arn: String,
    /// The session's name.
    pub role_session_name: String,
    /// The session's length.
    pub duration_seconds: Option<i32>,
    /// An inline session policy.
    pub policy: Option<String>,
    /// Managed session policies.
    pub policy_arns: Vec<String>,
    /// Session tags.
    pub tags: Vec<Tag>,
    /// Tag keys that carry over to chained sessions.
    pub transitive_tag_keys: Vec<String>,
    /// The external id the trust policy may require.
    pub external_id: Option<String>,
    /// The caller's MFA device.
    pub serial_number: Option<String>,
    /// Its current code.
    pub token_code: Option<String>,
    /// The source identity to set.
    pub source_identity: Option<String>,
    /// The caller's id for this request (the decision log's); one is made up when absent.
    pub request_id: Option<String>,
}

/// `AssumeRoleWithWebIdentity`'s parameters, decoded. The token is the credential.
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleWithWebIdentityInput {
    /// The role to assume.
    pub role_arn: String,
    /// The session's name.
    pub role_session_name: String,
    /// The OIDC token.
    pub web_identity_token: String,
    /// The session's length.
    pub duration_seconds: Option<i32>,
    /// An inline session policy.
    pub policy: Option<String>,
    /// Managed session policies.
    pub policy_arns: Vec<String>,
    /// The caller's id for this request; one is made up when absent.
    pub request_id: Option<String>,
}

/// `GetSessionToken`'s parameters, decoded.
#[derive(Debug, Clone, Default)]
pub struct GetSessionTokenInput {
    /// The caller's long-term credentials.
    pub caller: Option<CallerId>,
    /// The session's length.
    pub duration_seconds: Option<i32>,
    /// The caller's MFA device.
    pub serial_number: Option<String>,
    /// Its current code.
    pub token_code: Option<String>,
    /// The caller's id for this request; one is made up when absent.
    pub request_id: Option<String>,
}

/// `GetCallerIdentity`'s parameters, decoded.
#[derive(Debug, Clone, Default)]
pub struct GetCallerIdentityInput {
    /// Credentials, or a request signed for `sts`.
    pub caller: Option<CallerId>,
    /// The caller's id for this request; one is made up when absent.
    pub request_id: Option<String>,
}

/// `GetAccessKeyInfo`'s parameters, decoded.
#[derive(Debug, Clone, Default)]
pub struct GetAccessKeyInfoInput {
    /// The caller's credentials or signed request.
    pub caller: Option<CallerId>,
    /// The access key id asked about (any key, not only the caller's).
    pub access_key_id: String,
    /// The caller's id for this request; one is made up when absent.
    pub request_id: Option<String>,
}

/// The STS operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsOperation {
    /// `AssumeRole`.
    AssumeRole,
    /// `AssumeRoleWithWebIdentity`.
    AssumeRoleWithWebIdentity,
    /// `GetSessionToken`.
    GetSessionToken,
    /// `GetCallerIdentity`.
    GetCallerIdentity,
    /// `GetAccessKeyInfo`.
    GetAccessKeyInfo,
}

impl StsOperation {
    /// The operation's name, as AWS's `Action` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::AssumeRole => "AssumeRole",
            Self::AssumeRoleWithWebIdentity => "AssumeRoleWithWebIdentity",
            Self::GetSessionToken => "GetSessionToken",
            Self::GetCallerIdentity => "GetCallerIdentity",
            Self::GetAccessKeyInfo => "GetAccessKeyInfo",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::AssumeRole => "sts:AssumeRole",
            Self::AssumeRoleWithWebIdentity => "sts:AssumeRoleWithWebIdentity",
            Self::GetSessionToken => "sts:GetSessionToken",
            Self::GetCallerIdentity => "sts:GetCallerIdentity",
            Self::GetAccessKeyInfo => "sts:GetAccessKeyInfo",
        }
    }

    fn method(self) -> Method {
        match self {
            Self::AssumeRole => Method::AssumeRole,
            Self::AssumeRoleWithWebIdentity => Method::AssumeRoleWithWebIdentity,
            Self::GetSessionToken => Method::GetSessionToken,
            Self::GetCallerIdentity => Method::GetCallerIdentity,
            Self::GetAccessKeyInfo => Method::GetAccessKeyInfo,
        }
    }
}

/// What an operation reports to the decision log and the trail, completed as the call learns
/// who calls.
struct Logged {
    operation: StsOperation,
    request_id: String,
    tenant: String,
    principal: String,
    resource: String,
    /// The trail's: the caller as CloudTrail names it, the request's region, the call's
    /// parameters and its answer (both without secrets).
    identity: Option<TrailIdentity>,
    region: String,
    request: serde_json::Value,
    response: serde_json::Value,
}

impl Logged {
    fn new(operation: StsOperation, request_id: Option<&str>, resource: &str) -> Self {
        Self {
            operation,
            request_id: request_id.map_or_else(next_request_id, str::to_owned),
            tenant: String::new(),
            principal: String::new(),
            resource: resource.to_owned(),
            identity: None,
            region: String::new(),
            request: serde_json::Value::Null,
            response: serde_json::Value::Null,
        }
    }
}

/// The SecurityTokenService over an [`Api`]'s snapshots.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use iamlet::sidecar::{Api, AssumeRoleInput, CacheConfig, CallerId, SecurityTokenService};
/// # use iamlet::sidecar::decision_log::DecisionLog;
/// # use iamlet::snapshot::SnapshotStore;
/// # let api = Arc::new(Api::new(Arc::new(SnapshotStore::new()), &CacheConfig::default(), DecisionLog::off()));
/// let sts = SecurityTokenService::new(api);
/// let issued = sts.assume_role(&AssumeRoleInput {
///     caller: Some(CallerId::Keys {
///         access_key_id: "AKIA...".into(),
///         secret: "...".into(),
///         session_token: None,
///     }),
///     role_arn: "arn:aws:iam::111122223333:role/reports-writer".into(),
///     role_session_name: "demo".into(),
///     ..AssumeRoleInput::default()
/// });
/// match issued {
///     Ok(i) => println!("{} until {}", i.access_key_id, i.expiration),
///     Err(e) => println!("{}: {e}", e.code()),
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SecurityTokenService {
    api: Arc<Api>,
    /// Whether a signed caller's signature was verified over the very request that carries
    /// the operation's parameters (see [`SecurityTokenService::over_signed_requests`]).
    signatures_cover_requests: bool,
    /// Where the calls come from, for the trail (see [`SecurityTokenService::with_origin`]).
    origin: Option<Arc<Origin>>,
}

// === impl SecurityTokenService ===

impl SecurityTokenService {
    /// Issues with `api`'s snapshots.
    pub fn new(api: Arc<Api>) -> Self {
        Self {
            api,
            signatures_cover_requests: false,
            origin: None,
        }
    }

    /// The same service for calls from `origin` (an edge that knows its client's address or
    /// user agent says so per call; the trail records them).
    #[must_use]
    pub fn with_origin(&self, origin: Origin) -> Self {
        Self {
            origin: Some(Arc::new(origin)),
            ..self.clone()
        }
    }

    /// Issues with `api`'s snapshots, for an edge whose signed callers are the SigV4
    /// signatures of the very HTTP requests that carry the operations' parameters (AWS's STS
    /// Query API, where the signature covers the query and the body's hash). Such a signature
    /// proves the call, as in AWS, so any signed operation accepts it; [`Self::new`]'s edges
    /// carry a signature of some other request, which proves only an identity.
    pub fn over_signed_requests(api: Arc<Api>) -> Self {
        Self {
            api,
            signatures_cover_requests: true,
            origin: None,
        }
    }

    /// `AssumeRole`: credentials of a role session, for a caller its trust policy and the
    /// caller's own policies allow.
    pub fn assume_role(&self, input: &AssumeRoleInput) -> Result<Issued, ApiError> {
        self.run(
            StsOperation::AssumeRole,
            input.request_id.as_deref(),
            &input.role_arn,
            |now, logged| {
                if self.api.trail.is_some() {
                    logged.request = trail::assume_role_parameters(input);
                }
                let issued = self.assume_role_now(input, now, logged)?;
                if self.api.trail.is_some() {
                    logged.response = trail::issued_elements(&issued, true);
                }
                Ok(issued)
            },
        )
    }

    /// `AssumeRoleWithWebIdentity`: credentials of a role session for the holder of an OIDC
    /// token the role trusts.
    pub fn assume_role_with_web_identity(
        &self,
        input: &AssumeRoleWithWebIdentityInput,
    ) -> Result<WebIdentityIssued, ApiError> {
        self.run(
            StsOperation::AssumeRoleWithWebIdentity,
            input.request_id.as_deref(),
            &input.role_arn,
            |now, logged| {
                if self.api.trail.is_some() {
                    logged.request = trail::web_identity_parameters(input);
                }
                let issued = self.web_identity_now(input, now, logged)?;
                if self.api.trail.is_some() {
                    logged.response = trail::issued_elements(&issued.issued, true);
                }
                if let Some(map) = logged.response.as_object_mut() {
                    map.insert(
                        "subjectFromWebIdentityToken".into(),
                        serde_json::json!(issued.subject),
                    );
                    map.insert("provider".into(), serde_json::json!(issued.provider));
                    map.insert("audience".into(), serde_json::json!(issued.audience));
                }
                Ok(issued)
            },
        )
    }

    /// `GetSessionToken`: temporary credentials of the calling user.
    pub fn get_session_token(&self, input: &GetSessionTokenInput) -> Result<Issued, ApiError> {
        self.run(
            StsOperation::GetSessionToken,
            input.request_id.as_deref(),
            "*",
            |now, logged| {
                if self.api.trail.is_some() {
                    logged.request = trail::session_token_parameters(input);
                }
                let (caller, snapshot) = self.caller(
                    input.caller.as_ref(),
                    now,
                    StsOperation::GetSessionToken,
                    logged,
                )?;
                logged.principal = caller.principal.to_string();
                logged.tenant = snapshot.account_id().to_owned();
                let latest_expiry = self.api.check_issue(snapshot.account_id(), now)?;
                let mut ids = IdGenerator::system();
                let mut env = IssueEnv {
                    now,
                    ids: &mut ids,
                    mfa: &self.api.mfa,
                    latest_expiry,
                    issuing: crate::sts::Issuing::Certified(self.api.store.issuing()),
                };
                let params = GetSessionTokenParams {
                    duration_seconds: input.duration_seconds,
                    serial_number: non_empty(input.serial_number.as_deref()),
                    token_code: non_empty(input.token_code.as_deref()),
                };
                let issued = sts::get_session_token(&caller, &snapshot, &params, &mut env)?;
                if self.api.trail.is_some() {
                    logged.response = trail::issued_elements(&issued, false);
                }
                Ok(issued)
            },
        )
    }

    /// `GetCallerIdentity`: who the credentials (or a request signed for `sts`) belong to.
    /// It needs no permission, as in AWS.
    pub fn get_caller_identity(
        &self,
        input: &GetCallerIdentityInput,
    ) -> Result<CallerIdentity, ApiError> {
        self.run(
            StsOperation::GetCallerIdentity,
            input.request_id.as_deref(),
            "*",
            |now, logged| {
                let (caller, snapshot) = self.caller(
                    input.caller.as_ref(),
                    now,
                    StsOperation::GetCallerIdentity,
                    logged,
                )?;
                let identity = sts::caller_identity(&caller, &snapshot);
                logged.principal = identity.arn.clone();
                logged.tenant = identity.account.clone();
                Ok(identity)
            },
        )
    }

    /// `GetAccessKeyInfo`: the account that owns an access key (long-term or temporary),
    /// read from the key id as AWS does, so it answers for deleted keys too. The caller must
    /// authenticate; the key asked about need not be theirs.
    pub fn get_access_key_info(&self, input: &GetAccessKeyInfoInput) -> Result<String, ApiError> {
        self.run(
            StsOperation::GetAccessKeyInfo,
            input.request_id.as_deref(),
            "*",
            |now, logged| {
                logged.request = serde_json::json!({"accessKeyId": input.access_key_id});
                let (caller, snapshot) = self.caller(
                    input.caller.as_ref(),
                    now,
                    StsOperation::GetAccessKeyInfo,
                    logged,
                )?;
                logged.principal = caller.principal.to_string();
                logged.tenant = snapshot.account_id().to_owned();
                crate::directory::IdPrefix::account_of_access_key(&input.access_key_id)
                    .ok_or_else(|| {
                        ApiError::Sts(StsError::Validation(format!(
                            "1 validation error detected: Value '{}' at 'accessKeyId' failed to satisfy constraint: Member must be an access key id (AKIA or ASIA and 16 more characters)",
                            crate::error::echo(&input.access_key_id)
                        )))
                    })
            },
        )
    }

    /// Counts and logs a call an edge could not decode, as a failed call is.
    pub fn refused(
        &self,
        operation: StsOperation,
        request_id: Option<&str>,
        resource: &str,
        error: &ApiError,
    ) {
        let Reading { started, now } = Reading::take();
        let logged = Logged::new(operation, request_id, &crate::error::echo(resource));
        self.log(started, now, logged, Err(error));
    }

    /// Runs one operation: times it, counts it and logs it.
    fn run<T>(
        &self,
        operation: StsOperation,
        request_id: Option<&str>,
        resource: &str,
        call: impl FnOnce(Timestamp, &mut Logged) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let Reading { started, now } = Reading::take();
        let mut logged = Logged::new(operation, request_id, resource);
        let result = call(now, &mut logged);
        self.trail(now, &mut logged, result.as_ref().err());
        self.log(started, now, logged, result.as_ref().map(|_| ()));
        result
    }

    /// Queues the call's CloudTrail event, when events are shipped: every STS call of a known
    /// tenant but `GetCallerIdentity`, which AWS does not record. Never waits.
    fn trail(&self, now: Timestamp, logged: &mut Logged, error: Option<&ApiError>) {
        let Some(trail) = &self.api.trail else {
            return;
        };
        if logged.operation == StsOperation::GetCallerIdentity || logged.tenant.is_empty() {
            return;
        }
        let json = |value: &mut serde_json::Value| match std::mem::take(value) {
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let origin = self.origin.as_deref();
        trail.record(TrailEvent {
            tenant: logged.tenant.clone(),
            event_id: crate::sync::trail::new_event_id(),
            event_time_ms: now.epoch_millis(),
            event_name: logged.operation.name().to_owned(),
            user_identity: logged.identity.take(),
            source_ip_address: origin.and_then(|o| o.source_ip.clone()).unwrap_or_default(),
            user_agent: origin
                .and_then(|o| o.user_agent.clone())
                .unwrap_or_default(),
            request_parameters_json: json(&mut logged.request),
            response_elements_json: if error.is_some() {
                String::new()
            } else {
                json(&mut logged.response)
            },
            error_code: error
                .map(|e| e.code().as_str().to_owned())
                .unwrap_or_default(),
            error_message: error.map(ToString::to_string).unwrap_or_default(),
            request_id: logged.request_id.clone(),
            aws_region: std::mem::take(&mut logged.region),
        });
    }

    /// Authenticates an STS caller. A SigV4 signature proves only the request it signs, so a
    /// signed request is taken as proof of identity for `GetCallerIdentity` alone, and only
    /// when it was signed for STS (as Vault's and EKS's identity proofs are); operations that
    /// mint credentials need the credentials themselves.
    fn caller(
        &self,
        caller: Option<&CallerId>,
        now: Timestamp,
        operation: StsOperation,
        logged: &mut Logged,
    ) -> Result<(Caller, Arc<TenantSnapshot>), ApiError> {
        let id = match caller {
            Some(CallerId::Signed(signature)) => {
                if operation != StsOperation::GetCallerIdentity && !self.signatures_cover_requests {
                    return Err(ApiError::invalid(
                        "caller.signed_request",
                        format!("a signature proves only the request it signs: {} needs credentials (access key id, secret and, for temporary credentials, the session token)", operation.name()),
                    ));
                }
                if signature.service() != "sts" {
                    return Err(ApiError::invalid(
                        "caller.signed_request",
                        format!(
                            "the request is signed for `{}`, not for `sts`",
                            crate::error::echo(signature.service())
                        ),
                    ));
                }
                caller.ok_or_else(|| ApiError::invalid("caller", "missing"))?
            }
            Some(CallerId::PrincipalArn(_)) => {
                return Err(ApiError::invalid(
                    "caller",
                    "STS needs credentials or a signed request, not a principal ARN",
                ))
            }
            Some(id) => id,
            None => {
                return Err(ApiError::invalid(
                    "caller",
                    "missing: give credentials or signed_request",
                ))
            }
        };
        let (verified, snapshot) = self.api.authenticate(id, now)?;
        if self.api.trail.is_some() {
            logged.identity = Some(trail::identity(&verified.caller, id, &snapshot));
            if let CallerId::Signed(s) = id {
                s.region().clone_into(&mut logged.region);
            }
        }
        if let Some(usage) = &self.api.usage {
            // An STS call is a use of the caller's key (AssumeRole by a user's key, service
            // `sts`), and of its role when the caller is a session.
            let (presented, region) = match id {
                CallerId::Keys { access_key_id, .. } => (access_key_id.as_str(), ""),
                CallerId::Signed(s) => (s.access_key_id(), s.region()),
                CallerId::PrincipalArn(arn) => (arn.as_str(), ""),
            };
            let at = Use {
                tenant: snapshot.account_id(),
                caller: presented,
                action: operation.action(),
                region,
            };
            usage.record(at, now.epoch_seconds(), || {
                Subject::of(&verified.caller.principal, &snapshot)
            });
        }
        Ok((verified.caller.clone(), snapshot))
    }

    /// The snapshot of the tenant a role ARN names.
    fn role_snapshot(&self, role_arn: &str) -> Result<Arc<TenantSnapshot>, ApiError> {
        let account = ArnParts::split(role_arn)
            .filter(|arn| arn.service() == "iam")
            .map(|arn| arn.account())
            .filter(|a| crate::account::AccountId::is_valid(a))
            .ok_or_else(|| {
                ApiError::Sts(StsError::Validation(format!(
                    "{} is invalid: a role ARN is arn:aws:iam::<account>:role/<name>",
                    crate::error::echo(role_arn)
                )))
            })?;
        self.api.load(account)
    }

    fn log(&self, started: Instant, now: Timestamp, logged: Logged, result: Result<(), &ApiError>) {
        let answer = if result.is_ok() {
            Answer::Allow
        } else {
            Answer::Error
        };
        // One reading for the metric and the log line, so that both say the same.
        let elapsed = started.elapsed();
        self.api
            .metrics
            .record(logged.operation.method(), answer, elapsed);
        let log = &self.api.log;
        if !log.wants(result.is_err(), sample_key(&logged.request_id)) {
            return;
        }
        log.record(DecisionRecord {
            time: rfc3339_millis(now),
            request_id: logged.request_id,
            operation: logged.operation.name(),
            tenant: logged.tenant,
            principal: logged.principal,
            action: logged.operation.action().to_owned(),
            resource: logged.resource,
            decision: if result.is_ok() { "Allow" } else { "Error" },
            error_code: result.err().map(|e| e.code().as_str()),
            policy_type: None,
            statement: None,
            snapshot_version: String::new(),
            latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            cached: false,
        });
    }

    fn assume_role_now(
        &self,
        input: &AssumeRoleInput,
        now: Timestamp,
        logged: &mut Logged,
    ) -> Result<Issued, ApiError> {
        let (caller, caller_snapshot) =
            self.caller(input.caller.as_ref(), now, StsOperation::AssumeRole, logged)?;
        logged.principal = caller.principal.to_string();
        logged.tenant = caller_snapshot.account_id().to_owned();
        let same_tenant = ArnParts::split(&input.role_arn)
            .is_some_and(|arn| arn.account() == caller_snapshot.account_id());
        let role_snapshot = if same_tenant {
            Arc::clone(&caller_snapshot)
        } else {
            self.role_snapshot(&input.role_arn)?
        };
        let params = AssumeRoleParams {
            role_arn: &input.role_arn,
            role_session_name: &input.role_session_name,
            duration_seconds: input.duration_seconds,
            policy: non_empty(input.policy.as_deref()),
            policy_arns: &input.policy_arns,
            tags: &input.tags,
            transitive_tag_keys: &input.transitive_tag_keys,
            external_id: non_empty(input.external_id.as_deref()),
            serial_number: non_empty(input.serial_number.as_deref()),
            token_code: non_empty(input.token_code.as_deref()),
            source_identity: non_empty(input.source_identity.as_deref()),
        };
        let latest_expiry = self.api.check_issue(role_snapshot.account_id(), now)?;
        let mut ids = IdGenerator::system();
        let mut env = IssueEnv {
            now,
            ids: &mut ids,
            mfa: &self.api.mfa,
            latest_expiry,
            issuing: crate::sts::Issuing::Certified(self.api.store.issuing()),
        };
        Ok(sts::assume_role(
            &caller,
            &caller_snapshot,
            &role_snapshot,
            &params,
            &mut env,
        )?)
    }

    fn web_identity_now(
        &self,
        input: &AssumeRoleWithWebIdentityInput,
        now: Timestamp,
        logged: &mut Logged,
    ) -> Result<WebIdentityIssued, ApiError> {
        let snapshot = self.role_snapshot(&input.role_arn)?;
        logged.tenant = snapshot.account_id().to_owned();
        let params = WebIdentityParams {
            role_arn: &input.role_arn,
            role_session_name: &input.role_session_name,
            web_identity_token: &input.web_identity_token,
            duration_seconds: input.duration_seconds,
            policy: non_empty(input.policy.as_deref()),
            policy_arns: &input.policy_arns,
        };
        let latest_expiry = self.api.check_issue(snapshot.account_id(), now)?;
        let mut ids = IdGenerator::system();
        let mut env = IssueEnv {
            now,
            ids: &mut ids,
            mfa: &self.api.mfa,
            latest_expiry,
            issuing: crate::sts::Issuing::Certified(self.api.store.issuing()),
        };
        let issued = sts::assume_role_with_web_identity(&snapshot, &params, &mut env)?;
        logged.principal = format!("{} (web identity, sub {})", issued.provider, issued.subject);
        logged.identity = Some(trail::web_identity(
            &issued.provider,
            &issued.subject,
            snapshot.account_id(),
        ));
        Ok(issued)
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}
