//! The sidecar's Authorizer and SecurityTokenService over real gRPC on loopback: callers with
//! access keys, role sessions, MFA sessions, web identities and SigV4 signatures, checked
//! against a control plane whose changes (revocations, removed permissions) reach the sidecar
//! through its snapshot stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iamlet::control_plane::{
    AdminAuth, ControlPlane, FailureLimit, OperatorKey, SecretSealer, SqliteStore,
};
use iamlet::directory::totp::code_at;
use iamlet::directory::IdGenerator;
use iamlet::directory::{PasswordHasher, Secret};
use iamlet::grpc::{aws_error_code, serve_control_plane_with, serve_sidecar, ServeOptions};
use iamlet::jose::Es256Signer;
use iamlet::policy::{parse_policy_date, Timestamp};
use iamlet::proto::v1 as pb;
use iamlet::sidecar::decision_log::{DecisionLog, DecisionLogConfig, LogSink};
use iamlet::sidecar::{spawn_sidecar, SidecarConfig, SidecarHandle};
use iamlet::snapshot::SnapshotVersion;
use iamlet::sync::{Backoff, Readiness};
use ring::{digest, hmac};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

pub(crate) const A: &str = "111122223333";
pub(crate) const B: &str = "444455556666";
/// AWS's message for every way an access key or session token can be wrong.
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";
/// The operator key the fixture's control plane is configured with.
pub(crate) const OPERATOR_KEY_ID: &str = "IOPRCREDENTIALSTEST1";
pub(crate) const OPERATOR_SECRET: &str = "operator-secret-of-the-credentials-tests";
/// The bound on every wait and every RPC: a hung test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

type AuthorizerClient = pb::authorizer_client::AuthorizerClient<Channel>;
type StsClient = pb::security_token_service_client::SecurityTokenServiceClient<Channel>;
type StatusClient = pb::sidecar_status_client::SidecarStatusClient<Channel>;

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    super::support::temp_dir("e2e-cred", name)
}

async fn eventually(what: &str, condition: impl FnMut() -> bool) {
    super::support::eventually_within(PATIENCE, what, condition).await;
}

/// A control plane with tenants A and B, and a sidecar serving both on its own listener.
pub(crate) struct Fixture {
    pub(crate) cp: Arc<ControlPlane>,
    /// The control plane's address (Admin and Sync).
    pub(crate) cp_addr: std::net::SocketAddr,
    /// The database file (secrets in it are sealed).
    pub(crate) db: PathBuf,
    /// The root keys of tenants A and B, as `CreateTenant` showed them.
    pub(crate) roots: [(String, String); 2],
    pub(crate) handle: SidecarHandle,
    config: SidecarConfig,
    authorizer: AuthorizerClient,
    sts: StsClient,
    status: StatusClient,
    _stop: watch::Sender<bool>,
}

impl Fixture {
    pub(crate) async fn start(name: &str) -> Self {
        Self::start_with(name, DecisionLog::off(), &[A, B]).await
    }

    /// `serve` empty: every tenant of the control plane, those created later included.
    async fn start_with(name: &str, decision_log: Arc<DecisionLog>, serve: &[&str]) -> Self {
        let data = temp_dir(&format!("{name}-cp"));
        let db = data.join("iamlet.db");
        let sealer = SecretSealer::load_or_create(&data.join("secrets.key")).unwrap();
        let store = SqliteStore::open(&db, None).unwrap().with_sealer(sealer);
        // Console passwords hashed cheaply: the tests' debug build would spend seconds on the
        // production cost.
        let cp = Arc::new(
            super::support::signed(
                ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
            )
            .with_password_hasher(PasswordHasher::with_iterations(1_000)),
        );
        let roots = [A, B].map(|tenant| {
            let (_, (id, secret)) = cp.create_tenant_with_root(tenant, None, "test").unwrap();
            (id, secret.expose().to_owned())
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cp_addr = listener.local_addr().unwrap();
        tokio::spawn(serve_control_plane_with(
            Arc::clone(&cp),
            listener,
            Duration::from_millis(200),
            ServeOptions {
                admin_auth: Some(Arc::new(
                    AdminAuth::new(
                        vec![OperatorKey {
                            name: "test".into(),
                            access_key_id: OPERATOR_KEY_ID.into(),
                            secret: Secret::new(OPERATOR_SECRET),
                        }],
                        Vec::new(),
                    )
                    // Tests fail authentication on purpose; the throttling test has its own.
                    .with_failure_limit(FailureLimit {
                        max_failures: 1_000,
                        window_seconds: 60,
                    }),
                )),
                ..ServeOptions::default()
            },
            std::future::pending(),
        ));

        let config = SidecarConfig {
            control_plane: format!("http://{cp_addr}"),
            readiness: if serve.is_empty() {
                Readiness::All
            } else {
                Readiness::Tenants(serve.iter().map(|t| (*t).to_owned()).collect())
            },
            state_dir: temp_dir(&format!("{name}-sidecar")),
            sidecar_id: format!("{name}-sidecar"),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(200),
                multiplier: 1.6,
                jitter: 0.2,
            },
            decision_log,
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        };
        let (stop, shutdown) = watch::channel(false);
        let (handle, _sync) = spawn_sidecar(&config, shutdown);
        eventually("the sidecar to be ready", || {
            handle.is_ready() && [A, B].iter().all(|t| handle.store.version(t).is_some())
        })
        .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        tokio::spawn(serve_sidecar(
            handle.clone(),
            listener,
            std::future::pending(),
        ));
        let channel = Endpoint::from_shared(format!("http://{local}"))
            .unwrap()
            .connect_timeout(PATIENCE)
            .timeout(PATIENCE)
            .connect()
            .await
            .unwrap();
        Self {
            cp,
            cp_addr,
            db,
            roots,
            handle,
            config,
            authorizer: AuthorizerClient::new(channel.clone()),
            sts: StsClient::new(channel.clone()),
            status: StatusClient::new(channel),
            _stop: stop,
        }
    }

    /// An IAM action on the control plane, which must succeed.
    pub(crate) fn call(
        &self,
        tenant: &str,
        action: &str,
        params: &Value,
    ) -> (Value, SnapshotVersion) {
        self.cp
            .call(tenant, "test", action, params)
            .unwrap_or_else(|e| panic!("{action} {params}: {e}"))
    }

    /// Waits until the sidecar's Status API reports `tenant` at `version` or later.
    async fn applied(&self, tenant: &str, version: SnapshotVersion) {
        let mut status = self.status.clone();
        let started = Instant::now();
        loop {
            let answer = status.status(pb::StatusRequest {}).await.unwrap();
            let served = answer
                .into_inner()
                .tenants
                .into_iter()
                .find(|t| t.tenant == tenant)
                .and_then(|t| t.version)
                .map(SnapshotVersion::from);
            if served.is_some_and(|v| v >= version) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the sidecar never reported {tenant} at {version} (it has {served:?})"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until the sidecar serves the control plane's latest version of both tenants.
    pub(crate) async fn synced(&self) {
        for tenant in [A, B] {
            let (_, version) = self.cp.tenant(tenant).unwrap();
            self.applied(tenant, version).await;
        }
    }

    /// A user with an access key and, optionally, an inline policy.
    pub(crate) fn user_with_key(&self, tenant: &str, name: &str, policy: Option<&str>) -> Creds {
        self.call(tenant, "CreateUser", &json!({"UserName": name}));
        if let Some(policy) = policy {
            self.call(
                tenant,
                "PutUserPolicy",
                &json!({"UserName": name, "PolicyName": "inline", "PolicyDocument": policy}),
            );
        }
        let (key, _) = self.call(tenant, "CreateAccessKey", &json!({"UserName": name}));
        Creds {
            id: key["AccessKey"]["AccessKeyId"].as_str().unwrap().into(),
            secret: key["AccessKey"]["SecretAccessKey"].as_str().unwrap().into(),
            token: String::new(),
        }
    }

    /// A role with a trust policy and an inline policy (one hour at most); its ARN and id.
    pub(crate) fn role(
        &self,
        tenant: &str,
        name: &str,
        trust: &str,
        policy: &str,
    ) -> (String, String) {
        let (role, _) = self.call(
            tenant,
            "CreateRole",
            &json!({"RoleName": name, "AssumeRolePolicyDocument": trust, "MaxSessionDuration": 3600}),
        );
        self.call(
            tenant,
            "PutRolePolicy",
            &json!({"RoleName": name, "PolicyName": "inline", "PolicyDocument": policy}),
        );
        (
            role["Role"]["Arn"].as_str().unwrap().into(),
            role["Role"]["RoleId"].as_str().unwrap().into(),
        )
    }

    async fn authorize(
        &self,
        request: pb::AuthorizeRequest,
    ) -> Result<pb::AuthorizeResponse, Status> {
        let mut client = self.authorizer.clone();
        client
            .authorize(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Authorize with `min_version`, retrying while the sidecar is behind.
    async fn authorize_at(
        &self,
        mut request: pb::AuthorizeRequest,
        version: SnapshotVersion,
    ) -> Result<pb::AuthorizeResponse, Status> {
        request.min_version = Some(version.into());
        let started = Instant::now();
        loop {
            match self.authorize(request.clone()).await {
                Err(s) if s.code() == Code::Unavailable && started.elapsed() < PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn assume_role(
        &self,
        request: pb::AssumeRoleRequest,
    ) -> Result<pb::AssumeRoleResponse, Status> {
        let mut client = self.sts.clone();
        client
            .assume_role(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// A role session of `caller`, which must be granted.
    pub(crate) async fn session(&self, caller: &Creds, role_arn: &str, name: &str) -> Creds {
        let issued = self
            .assume_role(pb::AssumeRoleRequest {
                caller: caller.sts(),
                role_arn: role_arn.into(),
                role_session_name: name.into(),
                ..pb::AssumeRoleRequest::default()
            })
            .await
            .unwrap();
        Creds::issued(issued.credentials.as_ref().unwrap())
    }

    async fn get_session_token(
        &self,
        request: pb::GetSessionTokenRequest,
    ) -> Result<Creds, Status> {
        let mut client = self.sts.clone();
        let answer = client.get_session_token(request).await?.into_inner();
        Ok(Creds::issued(answer.credentials.as_ref().unwrap()))
    }

    async fn caller_identity(
        &self,
        caller: Option<pb::StsCaller>,
    ) -> Result<pb::GetCallerIdentityResponse, Status> {
        let mut client = self.sts.clone();
        client
            .get_caller_identity(pb::GetCallerIdentityRequest { caller })
            .await
            .map(tonic::Response::into_inner)
    }
}

/// An access key id, its secret, and the session token of temporary credentials (else empty).
#[derive(Debug, Clone)]
pub(crate) struct Creds {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) token: String,
}

impl Creds {
    fn issued(c: &pb::IssuedCredentials) -> Self {
        Self {
            id: c.access_key_id.clone(),
            secret: c.secret_access_key.clone(),
            token: c.session_token.clone(),
        }
    }

    pub(crate) fn with_secret(&self, secret: &str) -> Self {
        Self {
            secret: secret.into(),
            ..self.clone()
        }
    }

    fn with_token(&self, token: &str) -> Self {
        Self {
            token: token.into(),
            ..self.clone()
        }
    }

    fn pb(&self) -> pb::Credentials {
        pb::Credentials {
            access_key_id: self.id.clone(),
            secret_access_key: self.secret.clone(),
            session_token: self.token.clone(),
        }
    }

    fn caller(&self) -> pb::authorize_request::Caller {
        pb::authorize_request::Caller::Credentials(self.pb())
    }

    pub(crate) fn sts(&self) -> Option<pb::StsCaller> {
        Some(pb::StsCaller {
            caller: Some(pb::sts_caller::Caller::Credentials(self.pb())),
        })
    }
}

fn ask(
    caller: pb::authorize_request::Caller,
    action: &str,
    resource: &str,
) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: Some(caller),
        action: action.into(),
        resource: resource.into(),
        ..pb::AuthorizeRequest::default()
    }
}

fn by_arn(arn: &str) -> pb::authorize_request::Caller {
    pb::authorize_request::Caller::PrincipalArn(arn.into())
}

fn decision(r: &pb::AuthorizeResponse) -> pb::Decision {
    pb::Decision::try_from(r.decision).unwrap()
}

fn policy(statements: &Value) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn allow(action: &str, resource: &str) -> String {
    policy(&json!([{"Effect": "Allow", "Action": action, "Resource": resource}]))
}

/// A trust policy naming one principal by ARN for `sts:AssumeRole`.
fn trust(principal_arn: &str) -> String {
    policy(&json!([{
        "Effect": "Allow",
        "Principal": {"AWS": principal_arn},
        "Action": "sts:AssumeRole"
    }]))
}

fn user_arn(tenant: &str, name: &str) -> String {
    format!("arn:aws:iam::{tenant}:user/{name}")
}

/// Asserts an `UNAUTHENTICATED` status with AWS's `InvalidClientTokenId` and its one message.
#[track_caller]
fn assert_invalid_token<T: std::fmt::Debug>(result: Result<T, Status>, what: &str) -> Status {
    let status = match result {
        Ok(answer) => panic!("{what}: answered {answer:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    assert_eq!(
        aws_error_code(&status).as_deref(),
        Some("InvalidClientTokenId"),
        "{what}: {status:?}"
    );
    assert_eq!(status.message(), INVALID_TOKEN, "{what}");
    status
}

/// Asserts an error status with this gRPC code and AWS error code.
#[track_caller]
fn assert_error<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    aws_code: &str,
    what: &str,
) -> Status {
    let status = match result {
        Ok(answer) => panic!("{what}: answered {answer:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert_eq!(
        aws_error_code(&status).as_deref(),
        Some(aws_code),
        "{what}: {status:?}"
    );
    status
}

/// Waits until the wall clock is past `second`: `aws:TokenIssueTime` and revocation times have
/// whole seconds, so a revocation must fall in a later second than the sessions it ends.
async fn after_second(second: i64) {
    loop {
        let now = Timestamp::now();
        if now.epoch_seconds() > second {
            return;
        }
        let rest = 1000 - now.epoch_millis().rem_euclid(1000);
        tokio::time::sleep(Duration::from_millis(u64::try_from(rest).unwrap() + 1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_authorize_as_their_user_and_bad_keys_are_unauthenticated() {
    let f = Fixture::start("long-term").await;
    let alice = f.user_with_key(
        A,
        "alice",
        Some(&allow("s3:GetObject", "arn:aws:s3:::reports/*")),
    );
    f.synced().await;

    let allowed = f
        .authorize(ask(
            alice.caller(),
            "s3:GetObject",
            "arn:aws:s3:::reports/q3.csv",
        ))
        .await
        .unwrap();
    assert_eq!(decision(&allowed), pb::Decision::Allow);
    assert_eq!(allowed.principal_arn, user_arn(A, "alice"));
    let denied = f
        .authorize(ask(
            alice.caller(),
            "s3:PutObject",
            "arn:aws:s3:::reports/q3.csv",
        ))
        .await
        .unwrap();
    assert_eq!(decision(&denied), pb::Decision::ImplicitDeny);
    assert_eq!(denied.principal_arn, user_arn(A, "alice"));
    assert!(
        denied
            .message
            .starts_with(&format!("User: {}", user_arn(A, "alice"))),
        "{}",
        denied.message
    );

    let get = |c: &Creds| ask(c.caller(), "s3:GetObject", "arn:aws:s3:::reports/q3.csv");
    let wrong_secret = alice.with_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    assert_invalid_token(f.authorize(get(&wrong_secret)).await, "a wrong secret");
    // A key id of the right tenant that was never issued, and one of no tenant served here.
    let mut unknown_id = alice.id.clone();
    let last = if unknown_id.ends_with('A') { "B" } else { "A" };
    unknown_id.replace_range(unknown_id.len() - 1.., last);
    let unknown = Creds {
        id: unknown_id,
        ..alice.clone()
    };
    assert_invalid_token(f.authorize(get(&unknown)).await, "an unknown key id");
    let foreign = Creds {
        id: "AKIAIOSFODNN7EXAMPLE".into(),
        ..alice.clone()
    };
    assert_invalid_token(
        f.authorize(get(&foreign)).await,
        "a key id of no served tenant",
    );
    // The STS service answers the same.
    assert_invalid_token(
        f.caller_identity(wrong_secret.sts()).await,
        "GetCallerIdentity",
    );

    // Temporary credentials need their token, and long-term keys take none.
    let temporary = f
        .get_session_token(pb::GetSessionTokenRequest {
            caller: alice.sts(),
            ..pb::GetSessionTokenRequest::default()
        })
        .await
        .unwrap();
    assert!(temporary.id.starts_with("ASIA"), "{}", temporary.id);
    let with_token = f.authorize(get(&temporary)).await.unwrap();
    assert_eq!(decision(&with_token), pb::Decision::Allow);
    assert_eq!(with_token.principal_arn, user_arn(A, "alice"));
    assert_invalid_token(
        f.authorize(get(&temporary.with_token(""))).await,
        "a temporary key id without its token",
    );
    assert_invalid_token(
        f.authorize(get(&alice.with_token(&temporary.token))).await,
        "a long-term key with a session token",
    );

    // A deactivated key stops working as soon as the sidecar has the change.
    let (_, deactivated) = f.call(
        A,
        "UpdateAccessKey",
        &json!({"UserName": "alice", "AccessKeyId": alice.id, "Status": "Inactive"}),
    );
    assert_invalid_token(
        f.authorize_at(get(&alice), deactivated).await,
        "a deactivated key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_sessions_authorize_with_the_role_narrowed_by_the_session_policy() {
    let f = Fixture::start("role-session").await;
    let alice = f.user_with_key(A, "alice", None);
    let (role_arn, role_id) = f.role(A, "app", &trust(&user_arn(A, "alice")), &allow("s3:*", "*"));
    let locked = f.user_with_key(
        A,
        "locked",
        Some(&policy(
            &json!([{"Effect": "Deny", "Action": "*", "Resource": "*"}]),
        )),
    );
    f.synced().await;

    // IAM-SEMANTICS T17: the role allows s3:*, the session policy only s3:GetObject.
    let narrowed = f
        .assume_role(pb::AssumeRoleRequest {
            caller: alice.sts(),
            role_arn: role_arn.clone(),
            role_session_name: "narrow".into(),
            policy: allow("s3:GetObject", "*"),
            ..pb::AssumeRoleRequest::default()
        })
        .await
        .unwrap();
    let session_arn = format!("arn:aws:sts::{A}:assumed-role/app/narrow");
    let user = narrowed.assumed_role_user.as_ref().unwrap();
    assert_eq!(user.arn, session_arn);
    assert_eq!(user.assumed_role_id, format!("{role_id}:narrow"));
    let narrow = Creds::issued(narrowed.credentials.as_ref().unwrap());
    assert!(narrow.id.starts_with("ASIA"), "{}", narrow.id);
    assert!(!narrow.token.is_empty());

    let get = f
        .authorize(ask(narrow.caller(), "s3:GetObject", "arn:aws:s3:::data/x"))
        .await
        .unwrap();
    assert_eq!(decision(&get), pb::Decision::Allow);
    assert_eq!(get.principal_arn, session_arn);
    let put = f
        .authorize(ask(narrow.caller(), "s3:PutObject", "arn:aws:s3:::data/x"))
        .await
        .unwrap();
    assert_eq!(decision(&put), pb::Decision::ImplicitDeny);
    assert_eq!(put.policy_type, pb::PolicyKind::Session as i32);
    assert_eq!(put.principal_arn, session_arn);
    // The session policy never grants what the role lacks.
    let ec2 = f
        .authorize(ask(narrow.caller(), "ec2:RunInstances", "*"))
        .await
        .unwrap();
    assert_eq!(decision(&ec2), pb::Decision::ImplicitDeny);

    // Without a session policy the same role may put: the narrowing came from the session.
    let full = f.session(&alice, &role_arn, "full").await;
    let put = f
        .authorize(ask(full.caller(), "s3:PutObject", "arn:aws:s3:::data/x"))
        .await
        .unwrap();
    assert_eq!(decision(&put), pb::Decision::Allow);
    assert_eq!(
        put.principal_arn,
        format!("arn:aws:sts::{A}:assumed-role/app/full")
    );

    // GetCallerIdentity names the session, the user, and (T24) answers despite a Deny on *.
    let identity = f.caller_identity(narrow.sts()).await.unwrap();
    assert_eq!(identity.user_id, format!("{role_id}:narrow"));
    assert!(identity.user_id.starts_with("AROA"), "{}", identity.user_id);
    assert_eq!(identity.account, A);
    assert_eq!(identity.arn, session_arn);
    let identity = f.caller_identity(alice.sts()).await.unwrap();
    assert_eq!(identity.arn, user_arn(A, "alice"));
    assert!(identity.user_id.starts_with("AIDA"), "{}", identity.user_id);
    assert_eq!(identity.account, A);
    let identity = f.caller_identity(locked.sts()).await.unwrap();
    assert_eq!(identity.arn, user_arn(A, "locked"));
    assert_eq!(identity.account, A);
    // Authorize agrees since issue 12: the action needs no permission, so the deny does not bind.
    let answered = f
        .authorize(ask(locked.caller(), "sts:GetCallerIdentity", "*"))
        .await
        .unwrap();
    assert_eq!(
        decision(&answered),
        pb::Decision::Allow,
        "{}",
        answered.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_conditions_tell_bool_if_exists_from_plain_bool() {
    // IAM-SEMANTICS T12.
    let f = Fixture::start("mfa").await;
    let require_mfa = |operator: &str| {
        policy(&json!([
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*",
             "Condition": {operator: {"aws:MultiFactorAuthPresent": "false"}}}
        ]))
    };
    let careful = f.user_with_key(A, "careful", Some(&require_mfa("BoolIfExists")));
    let plain = f.user_with_key(A, "plain", Some(&require_mfa("Bool")));
    let (device, _) = f.call(
        A,
        "CreateVirtualMFADevice",
        &json!({"VirtualMFADeviceName": "careful"}),
    );
    let serial = device["VirtualMFADevice"]["SerialNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    let seed = device["VirtualMFADevice"]["Base32StringSeed"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = Timestamp::now().epoch_seconds();
    f.call(
        A,
        "EnableMFADevice",
        &json!({
            "UserName": "careful",
            "SerialNumber": serial,
            "AuthenticationCode1": code_at(&seed, now - 30).unwrap(),
            "AuthenticationCode2": code_at(&seed, now).unwrap(),
        }),
    );
    f.synced().await;

    let session = |caller: &Creds, mfa: Option<String>| pb::GetSessionTokenRequest {
        caller: caller.sts(),
        serial_number: mfa.as_ref().map(|_| serial.clone()).unwrap_or_default(),
        token_code: mfa.unwrap_or_default(),
        ..pb::GetSessionTokenRequest::default()
    };
    // The codes that enabled the device are spent (as in AWS): the next step's code is the
    // first one STS takes.
    let code = code_at(&seed, now + 30).unwrap();
    let with_mfa = f
        .get_session_token(session(&careful, Some(code.clone())))
        .await
        .unwrap();
    // A code is good once.
    assert_error(
        f.get_session_token(session(&careful, Some(code.clone())))
            .await,
        Code::PermissionDenied,
        "AccessDenied",
        "a replayed MFA code",
    );
    let now = Timestamp::now().epoch_seconds();
    let near: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| code_at(&seed, *t).unwrap())
        .collect();
    let wrong = (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !near.contains(c))
        .unwrap();
    assert_error(
        f.get_session_token(session(&careful, Some(wrong))).await,
        Code::PermissionDenied,
        "AccessDenied",
        "a wrong MFA code",
    );
    let without_mfa = f.get_session_token(session(&careful, None)).await.unwrap();
    let plain_without_mfa = f.get_session_token(session(&plain, None)).await.unwrap();

    let cases = [
        // BoolIfExists: a long-term key has no MFA key, so only iam:* is left.
        (
            "careful",
            "long-term key",
            &careful,
            "s3:GetObject",
            pb::Decision::ExplicitDeny,
        ),
        (
            "careful",
            "long-term key",
            &careful,
            "iam:ListUsers",
            pb::Decision::Allow,
        ),
        (
            "careful",
            "with MFA",
            &with_mfa,
            "s3:GetObject",
            pb::Decision::Allow,
        ),
        (
            "careful",
            "without MFA",
            &without_mfa,
            "s3:GetObject",
            pb::Decision::ExplicitDeny,
        ),
        // Bool: an absent key does not match, so the long-term key is not denied.
        (
            "plain",
            "long-term key",
            &plain,
            "s3:GetObject",
            pb::Decision::Allow,
        ),
        (
            "plain",
            "without MFA",
            &plain_without_mfa,
            "s3:GetObject",
            pb::Decision::ExplicitDeny,
        ),
    ];
    for (user, what, creds, action, expected) in cases {
        let answer = f
            .authorize(ask(creds.caller(), action, "arn:aws:s3:::data/x"))
            .await
            .unwrap();
        assert_eq!(decision(&answer), expected, "{user}, {what}: {action}");
        assert_eq!(answer.principal_arn, user_arn(A, user));
    }

    // A caller with credentials cannot claim MFA in the request context.
    let mut claimed = ask(careful.caller(), "s3:GetObject", "arn:aws:s3:::data/x");
    claimed.context.insert(
        "aws:MultiFactorAuthPresent".into(),
        pb::ContextValue {
            value: Some(pb::context_value::Value::BoolValue(true)),
        },
    );
    let answer = f.authorize(claimed).await.unwrap();
    assert_eq!(decision(&answer), pb::Decision::ExplicitDeny);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_sessions_are_denied_at_the_next_snapshot_even_when_cached() {
    // IAM-SEMANTICS T22, RELIABILITY T18.
    let f = Fixture::start("revoke").await;
    let alice = f.user_with_key(A, "alice", None);
    let (role_arn, _) = f.role(A, "app", &trust(&user_arn(A, "alice")), &allow("s3:*", "*"));
    let (next_arn, _) = f.role(A, "next", &trust(&role_arn), &allow("s3:*", "*"));
    f.synced().await;
    let chain = |caller: &Creds| pb::AssumeRoleRequest {
        caller: caller.sts(),
        role_arn: next_arn.clone(),
        role_session_name: "chained".into(),
        ..pb::AssumeRoleRequest::default()
    };

    let before = f.session(&alice, &role_arn, "before").await;
    let issued_by = Timestamp::now().epoch_seconds();
    let get = ask(before.caller(), "s3:GetObject", "arn:aws:s3:::data/x");
    let first = f.authorize(get.clone()).await.unwrap();
    assert_eq!(decision(&first), pb::Decision::Allow);
    assert!(!first.cached);
    let second = f.authorize(get.clone()).await.unwrap();
    assert_eq!(decision(&second), pb::Decision::Allow);
    assert!(second.cached, "the second identical request is a cache hit");
    f.assume_role(chain(&before)).await.unwrap();

    after_second(issued_by).await;
    let started = Instant::now();
    let (_, revoked) = f.call(A, "RevokeSessions", &json!({"RoleName": "app"}));
    let mut older_answers = 0;
    let denied = loop {
        let answer = f.authorize(get.clone()).await.unwrap();
        let version = SnapshotVersion::from(answer.version.unwrap());
        match decision(&answer) {
            pb::Decision::Allow => {
                assert!(
                    version < revoked,
                    "an Allow decided at {version}, at or after the revocation ({revoked})"
                );
                older_answers += 1;
            }
            pb::Decision::ExplicitDeny => {
                assert!(
                    version >= revoked,
                    "a deny before the revocation, at {version}"
                );
                break answer;
            }
            other => panic!("{other:?} at {version}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the revocation took more than 5 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let latency = started.elapsed();
    eprintln!(
        "revocation latency, control plane write to first deny: {latency:?} \
         ({older_answers} answers from the older snapshot before it)"
    );
    assert!(
        !denied.cached,
        "the deny must not come from the entry cached before"
    );
    assert_eq!(
        denied.principal_arn,
        format!("arn:aws:sts::{A}:assumed-role/app/before")
    );
    // Every action of the older session is denied, and it cannot claim a later issue time.
    let put = f
        .authorize(ask(before.caller(), "s3:PutObject", "arn:aws:s3:::data/x"))
        .await
        .unwrap();
    assert_eq!(decision(&put), pb::Decision::ExplicitDeny);
    let mut claimed = get.clone();
    claimed.context.insert(
        "aws:TokenIssueTime".into(),
        pb::ContextValue {
            value: Some(pb::context_value::Value::DateValue(
                "2099-01-01T00:00:00Z".into(),
            )),
        },
    );
    let answer = f.authorize(claimed).await.unwrap();
    assert_eq!(decision(&answer), pb::Decision::ExplicitDeny);
    // Nor can it escape into another role.
    assert_error(
        f.assume_role(chain(&before)).await,
        Code::PermissionDenied,
        "AccessDenied",
        "role chaining from a revoked session",
    );

    // A session issued after the revocation is unaffected.
    let after = f.session(&alice, &role_arn, "after").await;
    let answer = f
        .authorize(ask(after.caller(), "s3:GetObject", "arn:aws:s3:::data/x"))
        .await
        .unwrap();
    assert_eq!(decision(&answer), pb::Decision::Allow);
    assert_eq!(
        answer.principal_arn,
        format!("arn:aws:sts::{A}:assumed-role/app/after")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_snapshot_is_never_answered_from_decisions_cached_before_it() {
    // RELIABILITY T16.
    let f = Fixture::start("coherence").await;
    let bob = f.user_with_key(A, "bob", Some(&allow("s3:GetObject", "*")));
    f.synced().await;
    let get = ask(bob.caller(), "s3:GetObject", "arn:aws:s3:::data/x");

    let first = f.authorize(get.clone()).await.unwrap();
    let cached = f.authorize(get.clone()).await.unwrap();
    assert_eq!(decision(&first), pb::Decision::Allow);
    assert_eq!(decision(&cached), pb::Decision::Allow);
    assert!(!first.cached);
    assert!(cached.cached);
    assert_eq!(cached.version, first.version);
    let n = SnapshotVersion::from(first.version.unwrap());

    let (_, removed) = f.call(
        A,
        "DeleteUserPolicy",
        &json!({"UserName": "bob", "PolicyName": "inline"}),
    );
    assert!(removed > n);
    f.applied(A, removed).await;
    let after = f.authorize(get.clone()).await.unwrap();
    assert_eq!(decision(&after), pb::Decision::ImplicitDeny);
    assert!(!after.cached);
    assert_eq!(SnapshotVersion::from(after.version.unwrap()), removed);
    let again = f.authorize(get.clone()).await.unwrap();
    assert!(again.cached);

    // Any new version, even one that changes nothing for bob, starts from an empty cache.
    let (_, unrelated) = f.call(A, "CreateUser", &json!({"UserName": "unrelated"}));
    f.applied(A, unrelated).await;
    let fresh = f.authorize(get.clone()).await.unwrap();
    assert_eq!(decision(&fresh), pb::Decision::ImplicitDeny);
    assert!(!fresh.cached);
    assert_eq!(SnapshotVersion::from(fresh.version.unwrap()), unrelated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_tenant_that_appears_is_never_answered_from_decisions_cached_before_it() {
    // RELIABILITY T16 across tenants: a decision about a resource of a tenant the sidecar did
    // not have yet must not outlive that tenant's arrival.
    const C: &str = "777788889999";
    let f = Fixture::start_with("appearing", DecisionLog::off(), &[]).await;
    let alice = f.user_with_key(
        A,
        "alice",
        Some(&allow("s3:GetObject", "arn:aws:s3:::c-bucket/*")),
    );
    f.synced().await;
    let get = pb::AuthorizeRequest {
        resource_tenant: C.into(),
        ..ask(alice.caller(), "s3:GetObject", "arn:aws:s3:::c-bucket/k")
    };
    let first = f.authorize(get.clone()).await.unwrap();
    assert_eq!(decision(&first), pb::Decision::ImplicitDeny);
    let cached = f.authorize(get.clone()).await.unwrap();
    assert!(cached.cached);

    let created = f.cp.create_tenant(C, None, "test").unwrap();
    f.applied(C, created).await;
    let (_, granted) = f.call(
        C,
        "PutResourcePolicy",
        &json!({
            // Registered policies are looked up by the exact resource ARN.
            "ResourceArn": "arn:aws:s3:::c-bucket/k",
            "PolicyDocument": policy(&json!([{
                "Effect": "Allow",
                "Principal": {"AWS": user_arn(A, "alice")},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::c-bucket/*"
            }])),
        }),
    );
    f.applied(C, granted).await;
    let after = f.authorize(get.clone()).await.unwrap();
    assert!(
        !after.cached,
        "answered from an entry cached before tenant {C} was served"
    );
    assert_eq!(decision(&after), pb::Decision::Allow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_truncated_or_foreign_session_tokens_are_unauthenticated() {
    // RELIABILITY T17 and T20.
    let f = Fixture::start("tamper").await;
    let alice = f.user_with_key(A, "alice", None);
    let (role_a, _) = f.role(A, "app", &trust(&user_arn(A, "alice")), &allow("s3:*", "*"));
    let bob = f.user_with_key(B, "bob", None);
    let (role_b, _) = f.role(B, "app", &trust(&user_arn(B, "bob")), &allow("s3:*", "*"));
    f.synced().await;
    let session = f.session(&alice, &role_a, "s1").await;
    let other = f.session(&bob, &role_b, "s1").await;
    let get = |c: &Creds| ask(c.caller(), "s3:GetObject", "arn:aws:s3:::data/x");
    // The genuine token works, so every failure below is the tampering's.
    let genuine = f.authorize(get(&session)).await.unwrap();
    assert_eq!(decision(&genuine), pb::Decision::Allow);

    let token = session.token.clone();
    let len = token.len();
    let mut positions: Vec<usize> = (0..len).step_by((len / 200).max(1)).collect();
    positions.extend(token.match_indices('.').map(|(i, _)| i));
    positions.push(len - 1);
    positions.sort_unstable();
    positions.dedup();
    let mut variants: Vec<(String, String)> = positions
        .into_iter()
        .map(|i| {
            let replacement = if token.as_bytes()[i] == b'A' {
                "B"
            } else {
                "A"
            };
            let mut t = token.clone();
            t.replace_range(i..=i, replacement);
            (format!("character {i} of {len} changed"), t)
        })
        .collect();
    for cut in [1, 2, 3, 10, 64, len / 2, len - 1] {
        variants.push((
            format!("{cut} characters cut"),
            token[..len - cut].to_owned(),
        ));
    }
    variants.push(("a character added".into(), format!("{token}A")));
    variants.push(("a segment added".into(), format!("{token}.AAAA")));
    variants.push((
        "17,000 characters added".into(),
        format!("{token}{}", "A".repeat(17_000)),
    ));
    // T20: the token of A with B's tenant spliced in, and B's genuine token with A's key.
    let segments: Vec<&str> = token.split('.').collect();
    assert!(
        segments.contains(&A),
        "the token names its tenant: {}",
        segments[..2].join(".")
    );
    let spliced: Vec<&str> = segments
        .iter()
        .map(|s| if *s == A { B } else { s })
        .collect();
    variants.push(("A's token naming tenant B".into(), spliced.join(".")));
    variants.push(("B's token with A's key".into(), other.token.clone()));
    assert!(variants.len() > 200, "only {} variants", variants.len());

    let started = Instant::now();
    for (what, tampered) in &variants {
        assert_ne!(tampered, &token, "{what}");
        assert_invalid_token(f.authorize(get(&session.with_token(tampered))).await, what);
    }
    eprintln!(
        "{} tampered tokens refused in {:?}",
        variants.len(),
        started.elapsed()
    );
    // B's session with its own key authenticates in B only: against A's resources it is a
    // cross-account request that A does not grant.
    let cross = f
        .authorize(pb::AuthorizeRequest {
            resource_tenant: A.into(),
            ..get(&other)
        })
        .await
        .unwrap();
    assert_eq!(decision(&cross), pb::Decision::ImplicitDeny);
    assert_eq!(
        cross.principal_arn,
        format!("arn:aws:sts::{B}:assumed-role/app/s1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_account_sessions_need_both_sides_and_belong_to_the_role_tenant() {
    // IAM-SEMANTICS T19 (cross-account rows), RELIABILITY T23.
    let f = Fixture::start("cross-account").await;
    let shared_arn = format!("arn:aws:iam::{B}:role/shared");
    let alice = f.user_with_key(A, "alice", Some(&allow("sts:AssumeRole", &shared_arn)));
    let mallory = f.user_with_key(A, "mallory", None);
    let (role_arn, role_id) = f.role(
        B,
        "shared",
        &trust(&format!("arn:aws:iam::{A}:root")),
        &allow("s3:GetObject", "arn:aws:s3:::b-bucket/*"),
    );
    assert_eq!(role_arn, shared_arn);
    f.synced().await;

    let session = f.session(&alice, &role_arn, "visitor").await;
    let session_arn = format!("arn:aws:sts::{B}:assumed-role/shared/visitor");
    let get = ask(session.caller(), "s3:GetObject", "arn:aws:s3:::b-bucket/k");
    let answer = f.authorize(get.clone()).await.unwrap();
    assert_eq!(decision(&answer), pb::Decision::Allow);
    assert_eq!(answer.principal_arn, session_arn);
    let identity = f.caller_identity(session.sts()).await.unwrap();
    assert_eq!(identity.account, B);
    assert_eq!(identity.user_id, format!("{role_id}:visitor"));
    // The account's trust alone is not enough: the caller's own policy must allow it too.
    assert_error(
        f.assume_role(pb::AssumeRoleRequest {
            caller: mallory.sts(),
            role_arn: role_arn.clone(),
            role_session_name: "visitor".into(),
            ..pb::AssumeRoleRequest::default()
        })
        .await,
        Code::PermissionDenied,
        "AccessDenied",
        "a caller whose policies do not allow sts:AssumeRole",
    );
    // The session is B's: naming A in its token makes it nobody's.
    let spliced: Vec<&str> = session
        .token
        .split('.')
        .map(|s| if s == B { A } else { s })
        .collect();
    assert_ne!(spliced.join("."), session.token);
    assert_invalid_token(
        f.authorize(ask(
            session.with_token(&spliced.join(".")).caller(),
            "s3:GetObject",
            "arn:aws:s3:::b-bucket/k",
        ))
        .await,
        "B's token naming tenant A",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_durations_outside_900_to_the_role_maximum_are_refused() {
    // RELIABILITY T19, IAM-SEMANTICS T21.
    let f = Fixture::start("durations").await;
    let alice = f.user_with_key(A, "alice", None);
    let (role_arn, _) = f.role(A, "app", &trust(&user_arn(A, "alice")), &allow("s3:*", "*"));
    let (long, _) = f.call(
        A,
        "CreateRole",
        &json!({
            "RoleName": "long",
            "AssumeRolePolicyDocument": trust(&role_arn),
            "MaxSessionDuration": 43200,
        }),
    );
    let long_arn = long["Role"]["Arn"].as_str().unwrap().to_owned();
    f.synced().await;
    let ask_for = |caller: &Creds, role: &str, duration: Option<i32>| pb::AssumeRoleRequest {
        caller: caller.sts(),
        role_arn: role.into(),
        role_session_name: "timed".into(),
        duration_seconds: duration,
        ..pb::AssumeRoleRequest::default()
    };

    for (duration, why) in [
        (899, "below 900"),
        (3601, "above the role's 3600"),
        (43201, "above 43200"),
    ] {
        assert_error(
            f.assume_role(ask_for(&alice, &role_arn, Some(duration)))
                .await,
            Code::InvalidArgument,
            "ValidationError",
            why,
        );
    }
    for duration in [900, 3600] {
        let before = Timestamp::now().epoch_seconds();
        let issued = f
            .assume_role(ask_for(&alice, &role_arn, Some(duration)))
            .await
            .unwrap();
        let expiration = &issued.credentials.as_ref().unwrap().expiration;
        let expires = parse_policy_date(expiration).unwrap().epoch_seconds();
        let after = Timestamp::now().epoch_seconds();
        assert!(
            (before + i64::from(duration)..=after + i64::from(duration)).contains(&expires),
            "{duration} s gave {expiration}"
        );
    }

    // Role chaining is capped at one hour whatever the target role allows.
    let session = f.session(&alice, &role_arn, "first").await;
    assert_error(
        f.assume_role(ask_for(&session, &long_arn, Some(7200)))
            .await,
        Code::InvalidArgument,
        "ValidationError",
        "a chained session over an hour",
    );
    let chained = f
        .assume_role(ask_for(&session, &long_arn, None))
        .await
        .unwrap();
    assert_eq!(
        chained.assumed_role_user.unwrap().arn,
        format!("arn:aws:sts::{A}:assumed-role/long/timed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_tokens_assume_roles_that_trust_their_subject() {
    // IAM-SEMANTICS T23 (IRSA).
    let f = Fixture::start("irsa").await;
    let signer = Es256Signer::generate("k1").unwrap();
    let host = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
    let issuer = format!("https://{host}");
    let (provider, _) = f.call(
        A,
        "CreateOpenIDConnectProvider",
        &json!({
            "Url": issuer,
            "ClientIDList": ["sts.amazonaws.com"],
            "ThumbprintList": ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
            "Jwks": signer.jwks(),
        }),
    );
    let provider_arn = provider["OpenIDConnectProviderArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        provider_arn,
        format!("arn:aws:iam::{A}:oidc-provider/{host}")
    );
    let subject = "system:serviceaccount:default:my-sa";
    let trust = policy(&json!([{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{host}:aud"): "sts.amazonaws.com",
            format!("{host}:sub"): subject,
        }}
    }]));
    let (role_arn, role_id) = f.role(
        A,
        "irsa",
        &trust,
        &allow("s3:GetObject", "arn:aws:s3:::models/*"),
    );
    f.synced().await;

    let now = Timestamp::now().epoch_seconds();
    let token = |signer: &Es256Signer, iss: &str, sub: &str, aud: &str, exp: i64| {
        signer
            .sign(&json!({"iss": iss, "sub": sub, "aud": aud, "iat": now - 5, "exp": exp}))
            .unwrap()
    };
    let assume = |web_identity_token: String| {
        let mut client = f.sts.clone();
        let role_arn = role_arn.clone();
        async move {
            client
                .assume_role_with_web_identity(pb::AssumeRoleWithWebIdentityRequest {
                    role_arn,
                    role_session_name: "pod1".into(),
                    web_identity_token,
                    ..pb::AssumeRoleWithWebIdentityRequest::default()
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };

    let granted = assume(token(
        &signer,
        &issuer,
        subject,
        "sts.amazonaws.com",
        now + 600,
    ))
    .await
    .unwrap();
    let session_arn = format!("arn:aws:sts::{A}:assumed-role/irsa/pod1");
    let user = granted.assumed_role_user.as_ref().unwrap();
    assert_eq!(user.arn, session_arn);
    assert_eq!(user.assumed_role_id, format!("{role_id}:pod1"));
    assert_eq!(granted.subject_from_web_identity_token, subject);
    assert_eq!(granted.provider, issuer);
    assert_eq!(granted.audience, "sts.amazonaws.com");
    let creds = Creds::issued(granted.credentials.as_ref().unwrap());
    let get = f
        .authorize(ask(
            creds.caller(),
            "s3:GetObject",
            "arn:aws:s3:::models/m1",
        ))
        .await
        .unwrap();
    assert_eq!(decision(&get), pb::Decision::Allow);
    assert_eq!(get.principal_arn, session_arn);
    let put = f
        .authorize(ask(
            creds.caller(),
            "s3:PutObject",
            "arn:aws:s3:::models/m1",
        ))
        .await
        .unwrap();
    assert_eq!(decision(&put), pb::Decision::ImplicitDeny);
    let identity = f.caller_identity(creds.sts()).await.unwrap();
    assert_eq!(identity.arn, session_arn);

    assert_error(
        assume(token(
            &signer,
            &issuer,
            "system:serviceaccount:kube-system:other",
            "sts.amazonaws.com",
            now + 600,
        ))
        .await,
        Code::PermissionDenied,
        "AccessDenied",
        "another service account",
    );
    let expired = assume(token(
        &signer,
        &issuer,
        subject,
        "sts.amazonaws.com",
        now - 3600,
    ))
    .await
    .unwrap_err();
    assert_eq!(
        aws_error_code(&expired).as_deref(),
        Some("ExpiredTokenException"),
        "{expired:?}"
    );
    for (what, bad) in [
        (
            "an unknown issuer",
            token(
                &signer,
                "https://oidc.example.com/id/OTHER",
                subject,
                "sts.amazonaws.com",
                now + 600,
            ),
        ),
        (
            "another client id",
            token(&signer, &issuer, subject, "other-client", now + 600),
        ),
        (
            "another signing key",
            token(
                &Es256Signer::generate("k1").unwrap(),
                &issuer,
                subject,
                "sts.amazonaws.com",
                now + 600,
            ),
        ),
    ] {
        let refused = assume(bad).await.unwrap_err();
        assert_eq!(
            aws_error_code(&refused).as_deref(),
            Some("InvalidIdentityToken"),
            "{what}: {refused:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_statuses_the_decision_log_or_debug_output() {
    // RELIABILITY T22.
    let log_dir = temp_dir("canary-log");
    let log_path = log_dir.join("decisions.jsonl");
    let (log, log_task) = DecisionLog::spawn(DecisionLogConfig {
        sink: LogSink::File(log_path.clone()),
        ..DecisionLogConfig::default()
    })
    .unwrap();
    let f = Fixture::start_with("canary", log, &[A, B]).await;
    let carol = f.user_with_key(A, "carol", Some(&allow("s3:GetObject", "*")));
    let (role_arn, _) = f.role(A, "app", &trust(&user_arn(A, "carol")), &allow("s3:*", "*"));
    let signer = Es256Signer::generate("k1").unwrap();
    let issuer = "https://oidc.example.com/id/CANARY";
    let (provider, _) = f.call(
        A,
        "CreateOpenIDConnectProvider",
        &json!({"Url": issuer, "ClientIDList": ["sts.amazonaws.com"], "Jwks": signer.jwks()}),
    );
    let web_trust = policy(&json!([{
        "Effect": "Allow",
        "Principal": {"Federated": provider["OpenIDConnectProviderArn"]},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"oidc.example.com/id/CANARY:sub": "pod"}}
    }]));
    let (web_role, _) = f.role(A, "web", &web_trust, &allow("s3:*", "*"));
    f.synced().await;

    let canary_secret = "CANARYwJalrXUtnFEMIK7MDENGbPxRfiCY0secret";
    let mut decisions = 0;
    let mut statuses: Vec<Status> = Vec::new();
    let session = f.session(&carol, &role_arn, "canary").await;
    decisions += 1;
    let gst = f
        .get_session_token(pb::GetSessionTokenRequest {
            caller: carol.sts(),
            ..pb::GetSessionTokenRequest::default()
        })
        .await
        .unwrap();
    decisions += 1;
    let mut tampered_token = session.token.clone();
    tampered_token.replace_range(
        30..31,
        if &session.token[30..31] == "A" {
            "B"
        } else {
            "A"
        },
    );
    let mut signatures = Vec::new();
    for (creds, should_work) in [
        (carol.clone(), true),
        (carol.with_secret(canary_secret), false),
        (session.clone(), true),
        (session.with_secret(canary_secret), false),
        (session.with_token(&tampered_token), false),
        (gst.clone(), true),
        (gst.with_secret(canary_secret), false),
    ] {
        let answer = f
            .authorize(ask(creds.caller(), "s3:GetObject", "arn:aws:s3:::data/x"))
            .await;
        decisions += 1;
        assert_eq!(answer.is_ok(), should_work, "{answer:?}");
        statuses.extend(answer.err());
        let identity = f.caller_identity(creds.sts()).await;
        decisions += 1;
        assert_eq!(identity.is_ok(), should_work, "{identity:?}");
        statuses.extend(identity.err());
        let assumed = f
            .assume_role(pb::AssumeRoleRequest {
                caller: creds.sts(),
                role_arn: role_arn.clone(),
                role_session_name: "again".into(),
                ..pb::AssumeRoleRequest::default()
            })
            .await;
        decisions += 1;
        statuses.extend(assumed.err());
        // The same credentials as a SigV4 signature, right and wrong.
        let (signed, sig) = sign_post(
            &creds,
            &amz_date(Timestamp::now()),
            "Action=GetCallerIdentity",
        );
        signatures.push(sig);
        let answer = f
            .authorize(ask(
                pb::authorize_request::Caller::SignedRequest(signed),
                "s3:GetObject",
                "arn:aws:s3:::data/x",
            ))
            .await;
        decisions += 1;
        assert_eq!(answer.is_ok(), should_work, "{answer:?}");
        statuses.extend(answer.err());
    }
    // Web identity tokens are bearer credentials too.
    let now = Timestamp::now().epoch_seconds();
    let jwt = |sub: &str, exp: i64| {
        signer
            .sign(&json!({"iss": issuer, "sub": sub, "aud": "sts.amazonaws.com", "iat": now, "exp": exp}))
            .unwrap()
    };
    let jwts = [
        (jwt("pod", now + 600), true),
        (jwt("pod", now - 3600), false),
        (jwt("other", now + 600), false),
    ];
    let mut web_session = None;
    for (token, should_work) in &jwts {
        let mut client = f.sts.clone();
        let answer = client
            .assume_role_with_web_identity(pb::AssumeRoleWithWebIdentityRequest {
                role_arn: web_role.clone(),
                role_session_name: "pod".into(),
                web_identity_token: token.clone(),
                ..pb::AssumeRoleWithWebIdentityRequest::default()
            })
            .await;
        decisions += 1;
        assert_eq!(answer.is_ok(), *should_work, "{answer:?}");
        match answer {
            Ok(a) => {
                web_session = Some(Creds::issued(a.into_inner().credentials.as_ref().unwrap()))
            }
            Err(s) => statuses.push(s),
        }
    }
    let web_session = web_session.unwrap();
    assert!(statuses.len() >= 14, "{} failures", statuses.len());
    let status_text: String = statuses
        .iter()
        .map(|s| format!("{}\n{s:?}\n", s.message()))
        .collect();

    log_task.shutdown().await;
    let log_text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), decisions, "one line per decision:\n{log_text}");
    for line in &lines {
        for field in ["tenant", "principal", "action", "decision"] {
            assert!(line[field].is_string(), "no {field} in {line}");
        }
        let decided = line["decision"].as_str().unwrap();
        assert!(
            ["Allow", "ExplicitDeny", "ImplicitDeny", "Error"].contains(&decided),
            "{line}"
        );
        if decided != "Error" {
            assert_eq!(line["tenant"], A, "{line}");
            assert!(!line["principal"].as_str().unwrap().is_empty(), "{line}");
        }
    }
    assert!(lines.iter().any(|l| l["decision"] == "Error"));
    assert!(lines.iter().any(|l| l["decision"] == "Allow"));

    let debug_text = format!("{:?}\n{:?}", f.handle, f.config);
    let token_signature = session.token.rsplit('.').next().unwrap();
    let secrets = [
        ("the long-term secret", carol.secret.as_str()),
        ("the session secret", session.secret.as_str()),
        ("the session token", session.token.as_str()),
        ("the session token's signature", token_signature),
        ("the GetSessionToken secret", gst.secret.as_str()),
        ("the GetSessionToken token", gst.token.as_str()),
        ("a presented wrong secret", canary_secret),
    ];
    let signatures = signatures.iter().map(|s| ("a SigV4 signature", s.as_str()));
    let web = jwts.iter().flat_map(|(t, _)| {
        [
            ("a web identity token", t.as_str()),
            (
                "a web identity token's signature",
                t.rsplit('.').next().unwrap(),
            ),
        ]
    });
    let web_secrets = [
        (
            "the web identity session's secret",
            web_session.secret.as_str(),
        ),
        (
            "the web identity session's token",
            web_session.token.as_str(),
        ),
    ];
    for (what, secret) in secrets
        .into_iter()
        .chain(signatures)
        .chain(web)
        .chain(web_secrets)
    {
        assert!(secret.len() >= 16, "{what} is too short to search for");
        for (place, text) in [
            ("a status", &status_text),
            ("the decision log", &log_text),
            ("Debug output", &debug_text),
        ] {
            assert!(!text.contains(secret), "{what} appears in {place}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_authorize_answers_each_request_in_order() {
    let f = Fixture::start("batch").await;
    let alice = f.user_with_key(A, "alice", Some(&allow("s3:GetObject", "*")));
    f.synced().await;
    let resource = "arn:aws:s3:::data/x";
    let requests = vec![
        ask(alice.caller(), "s3:GetObject", resource),
        ask(alice.caller(), "", resource),
        ask(by_arn(&user_arn(A, "nobody")), "s3:GetObject", resource),
        ask(
            alice.with_secret("not-the-secret-0123456789").caller(),
            "s3:GetObject",
            resource,
        ),
        ask(alice.caller(), "s3:PutObject", resource),
    ];
    let mut client = f.authorizer.clone();
    let results = client
        .batch_authorize(pb::BatchAuthorizeRequest { requests })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 5);
    let response = |i: usize| match &results[i].result {
        Some(pb::batch_authorize_result::Result::Response(r)) => r.clone(),
        other => panic!("result {i}: {other:?}"),
    };
    let error = |i: usize| match &results[i].result {
        Some(pb::batch_authorize_result::Result::Error(e)) => e.clone(),
        other => panic!("result {i}: {other:?}"),
    };
    assert_eq!(decision(&response(0)), pb::Decision::Allow);
    assert_eq!(response(0).principal_arn, user_arn(A, "alice"));
    let malformed = error(1);
    assert_eq!(malformed.grpc_code, Code::InvalidArgument as i32);
    assert_eq!(malformed.aws_code, "ValidationError");
    assert!(
        malformed.message.starts_with("action:"),
        "{}",
        malformed.message
    );
    let unknown = error(2);
    assert_eq!(unknown.grpc_code, Code::NotFound as i32);
    assert_eq!(unknown.aws_code, "NoSuchEntity");
    let forged = error(3);
    assert_eq!(forged.grpc_code, Code::Unauthenticated as i32);
    assert_eq!(forged.aws_code, "InvalidClientTokenId");
    assert_eq!(forged.message, INVALID_TOKEN);
    assert_eq!(decision(&response(4)), pb::Decision::ImplicitDeny);

    // 1000 requests is the most one batch carries.
    let many = |n: usize| pb::BatchAuthorizeRequest {
        requests: (0..n)
            .map(|i| {
                ask(
                    by_arn(&user_arn(A, "alice")),
                    "s3:GetObject",
                    &format!("arn:aws:s3:::data/{i}"),
                )
            })
            .collect(),
    };
    let full = client
        .batch_authorize(many(1000))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.results.len(), 1000);
    let too_many = assert_error(
        client.batch_authorize(many(1001)).await,
        Code::InvalidArgument,
        "ValidationError",
        "1001 requests",
    );
    assert!(
        too_many.message().starts_with("requests:"),
        "{}",
        too_many.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_name_the_field_and_unknown_tenants_are_not_found() {
    let f = Fixture::start("malformed").await;
    let alice = f.user_with_key(A, "alice", Some(&allow("s3:GetObject", "*")));
    f.synced().await;
    let valid = ask(alice.caller(), "s3:GetObject", "arn:aws:s3:::data/x");
    let value = |v: Option<pb::context_value::Value>| pb::ContextValue { value: v };
    let with_context = |key: &str, v: pb::ContextValue| {
        let mut r = valid.clone();
        r.context.insert(key.into(), v);
        r
    };
    let cases = [
        (
            "caller:",
            pb::AuthorizeRequest {
                caller: None,
                ..valid.clone()
            },
        ),
        (
            "action:",
            pb::AuthorizeRequest {
                action: String::new(),
                ..valid.clone()
            },
        ),
        (
            "action:",
            pb::AuthorizeRequest {
                action: "GetObject".into(),
                ..valid.clone()
            },
        ),
        (
            "resource:",
            pb::AuthorizeRequest {
                resource: String::new(),
                ..valid.clone()
            },
        ),
        (
            "context[aws:SourceIp]:",
            with_context("aws:SourceIp", value(None)),
        ),
        (
            "context:",
            with_context(
                "",
                value(Some(pb::context_value::Value::StringValue("x".into()))),
            ),
        ),
        (
            "credentials.access_key_id:",
            ask(
                Creds {
                    id: String::new(),
                    ..alice.clone()
                }
                .caller(),
                "s3:GetObject",
                "*",
            ),
        ),
        (
            "credentials.secret_access_key:",
            ask(alice.with_secret("").caller(), "s3:GetObject", "*"),
        ),
        ("principal_arn:", ask(by_arn("alice"), "s3:GetObject", "*")),
    ];
    for (field, request) in cases {
        let refused = assert_error(
            f.authorize(request).await,
            Code::InvalidArgument,
            "ValidationError",
            field,
        );
        assert!(
            refused.message().starts_with(field),
            "{field}: {}",
            refused.message()
        );
    }
    // The valid request really is valid.
    assert_eq!(
        decision(&f.authorize(valid.clone()).await.unwrap()),
        pb::Decision::Allow
    );

    // STS requests without a caller.
    let refused = assert_error(
        f.assume_role(pb::AssumeRoleRequest {
            role_arn: format!("arn:aws:iam::{A}:role/app"),
            role_session_name: "s".into(),
            ..pb::AssumeRoleRequest::default()
        })
        .await,
        Code::InvalidArgument,
        "ValidationError",
        "AssumeRole without a caller",
    );
    assert!(
        refused.message().starts_with("caller:"),
        "{}",
        refused.message()
    );

    // A tenant this sidecar does not serve.
    let unknown = assert_error(
        f.authorize(ask(
            by_arn("arn:aws:iam::999988887777:user/x"),
            "s3:GetObject",
            "*",
        ))
        .await,
        Code::NotFound,
        "NoSuchTenant",
        "an unknown tenant",
    );
    assert!(
        unknown.message().contains("999988887777"),
        "{}",
        unknown.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_typed_context_values_are_refused_naming_the_key() {
    // The proto types its values ("an integer or decimal", "ISO 8601 or epoch seconds"): a
    // value that is not one cannot be decided, and must not quietly fail the condition.
    let f = Fixture::start("typed-context").await;
    f.user_with_key(
        A,
        "alice",
        Some(&policy(&json!([
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:ListBucket", "Resource": "*",
             "Condition": {"NumericGreaterThan": {"s3:max-keys": "100"}}},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"DateLessThan": {"aws:CurrentTime": "2100-01-01T00:00:00Z"}}}
        ]))),
    );
    f.synced().await;
    // By ARN, so that the application may give aws:CurrentTime itself.
    let with = |key: &str, v: pb::context_value::Value| {
        let action = if key == "s3:max-keys" {
            "s3:ListBucket"
        } else {
            "s3:GetObject"
        };
        let mut r = ask(by_arn(&user_arn(A, "alice")), action, "arn:aws:s3:::data");
        r.context
            .insert(key.into(), pb::ContextValue { value: Some(v) });
        r
    };
    use pb::context_value::Value::{DateValue, NumberValue};
    // Well-typed values meet the denies.
    for (key, good) in [
        ("s3:max-keys", NumberValue("1000".into())),
        ("aws:CurrentTime", DateValue("2024-01-01T00:00:00Z".into())),
    ] {
        let answer = f.authorize(with(key, good)).await.unwrap();
        assert_eq!(decision(&answer), pb::Decision::ExplicitDeny, "{key}");
    }
    for (key, bad) in [
        ("s3:max-keys", NumberValue("a thousand".into())),
        ("aws:CurrentTime", DateValue("yesterday".into())),
    ] {
        let refused = assert_error(
            f.authorize(with(key, bad)).await,
            Code::InvalidArgument,
            "ValidationError",
            key,
        );
        let field = format!("context[{key}]");
        assert!(
            refused.message().starts_with(&field),
            "{}",
            refused.message()
        );
    }
}

/// `yyyymmddThhmmssZ`, SigV4's request time.
fn amz_date(at: Timestamp) -> String {
    Timestamp::from_epoch_seconds(at.epoch_seconds())
        .to_string()
        .replace(['-', ':'], "")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

/// What SigV4 signs: `headers` are lowercase, sorted, trimmed and all signed; `query` is
/// already canonical.
struct ToSign<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, &'a str)],
    payload_sha256: &'a str,
    /// `yyyymmdd`, region and service.
    scope: (&'a str, &'a str, &'a str),
    amz_date: &'a str,
}

/// SigV4 by hand (AWS's "Create a signed AWS API request"), with ring's HMAC and SHA-256 only:
/// the canonical request's hash and the signature.
fn sigv4(secret: &str, r: &ToSign<'_>) -> (String, String) {
    let (date, region, service) = r.scope;
    let canonical_headers: String = r
        .headers
        .iter()
        .map(|(n, v)| format!("{n}:{v}\n"))
        .collect();
    let signed_headers = r
        .headers
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        r.method, r.path, r.query, r.payload_sha256
    );
    let canonical_hash = sha256_hex(canonical.as_bytes());
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{date}/{region}/{service}/aws4_request\n{canonical_hash}",
        r.amz_date
    );
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date);
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    (canonical_hash, hex(&hmac_sha256(&key, &string_to_sign)))
}

/// A POST to `/` of `sts.amazonaws.com` with `body`, signed with `creds` (and its session
/// token, as a signed `x-amz-security-token` header); returns it and its signature.
fn sign_post(creds: &Creds, amz_date: &str, body: &str) -> (pb::SignedRequest, String) {
    let payload = sha256_hex(body.as_bytes());
    let mut headers = vec![("host", "sts.amazonaws.com"), ("x-amz-date", amz_date)];
    if !creds.token.is_empty() {
        headers.push(("x-amz-security-token", creds.token.as_str()));
    }
    let date = &amz_date[..8];
    let (_, signature) = sigv4(
        &creds.secret,
        &ToSign {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_sha256: &payload,
            scope: (date, "us-east-1", "sts"),
            amz_date,
        },
    );
    let signed_headers = headers
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(";");
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{date}/us-east-1/sts/aws4_request, \
         SignedHeaders={signed_headers}, Signature={signature}",
        creds.id
    );
    let mut sent: Vec<pb::Header> = headers
        .iter()
        .map(|(n, v)| pb::Header {
            name: (*n).into(),
            value: (*v).into(),
        })
        .collect();
    sent.push(pb::Header {
        name: "Authorization".into(),
        value: authorization,
    });
    let request = pb::SignedRequest {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: sent,
        payload_sha256: payload,
    };
    (request, signature)
}

#[test]
fn the_test_sigv4_signer_matches_aws_documented_example() {
    // AWS's worked example (IAM ListUsers, 2015-08-30) from "Signature Version 4 signing
    // process": the canonical request's hash and the signature it publishes.
    let (canonical_hash, signature) = sigv4(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        &ToSign {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[
                (
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("host", "iam.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            payload_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            scope: ("20150830", "us-east-1", "iam"),
            amz_date: "20150830T123600Z",
        },
    );
    assert_eq!(
        canonical_hash,
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    assert_eq!(
        signature,
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_signed_requests_authenticate_and_tampered_ones_do_not() {
    let f = Fixture::start("sigv4").await;
    let dave = f.user_with_key(A, "dave", Some(&allow("s3:GetObject", "*")));
    f.synced().await;
    let resource = "arn:aws:s3:::data/x";
    let signed = |r: pb::SignedRequest| {
        ask(
            pb::authorize_request::Caller::SignedRequest(r),
            "s3:GetObject",
            resource,
        )
    };
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let now = amz_date(Timestamp::now());

    let (request, _) = sign_post(&dave, &now, body);
    let answer = f.authorize(signed(request.clone())).await.unwrap();
    assert_eq!(decision(&answer), pb::Decision::Allow);
    assert_eq!(answer.principal_arn, user_arn(A, "dave"));
    let mut client = f.sts.clone();
    let identity = client
        .get_caller_identity(pb::GetCallerIdentityRequest {
            caller: Some(pb::StsCaller {
                caller: Some(pb::sts_caller::Caller::SignedRequest(request.clone())),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(identity.arn, user_arn(A, "dave"));

    // A header changed after signing.
    let mut tampered = request.clone();
    tampered.headers[0].value = "sts.evil.example.com".into();
    assert_error(
        f.authorize(signed(tampered)).await,
        Code::Unauthenticated,
        "SignatureDoesNotMatch",
        "a tampered host header",
    );
    // A body other than the one signed.
    let other_body = pb::SignedRequest {
        payload_sha256: sha256_hex(b"Action=AssumeRole"),
        ..request.clone()
    };
    assert_error(
        f.authorize(signed(other_body)).await,
        Code::Unauthenticated,
        "SignatureDoesNotMatch",
        "another body",
    );
    let (wrong_secret, _) = sign_post(
        &dave.with_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        &now,
        body,
    );
    assert_error(
        f.authorize(signed(wrong_secret)).await,
        Code::Unauthenticated,
        "SignatureDoesNotMatch",
        "a wrong secret",
    );
    let stale = amz_date(Timestamp::from_epoch_seconds(
        Timestamp::now().epoch_seconds() - 600,
    ));
    let (old, _) = sign_post(&dave, &stale, body);
    assert_error(
        f.authorize(signed(old)).await,
        Code::Unauthenticated,
        "SignatureDoesNotMatch",
        "a signature ten minutes old",
    );
    let mut unknown_id = dave.id.clone();
    let last = if unknown_id.ends_with('A') { "B" } else { "A" };
    unknown_id.replace_range(unknown_id.len() - 1.., last);
    let (unknown, _) = sign_post(
        &Creds {
            id: unknown_id,
            ..dave.clone()
        },
        &now,
        body,
    );
    assert_invalid_token(f.authorize(signed(unknown)).await, "an unknown key id");

    // Temporary credentials sign with their token in x-amz-security-token.
    let temporary = f
        .get_session_token(pb::GetSessionTokenRequest {
            caller: dave.sts(),
            ..pb::GetSessionTokenRequest::default()
        })
        .await
        .unwrap();
    let (request, _) = sign_post(&temporary, &now, body);
    let answer = f.authorize(signed(request)).await.unwrap();
    assert_eq!(decision(&answer), pb::Decision::Allow);
    assert_eq!(answer.principal_arn, user_arn(A, "dave"));
    let (forged, _) = sign_post(
        &temporary.with_token(&format!("{}A", temporary.token)),
        &now,
        body,
    );
    assert_invalid_token(
        f.authorize(signed(forged)).await,
        "a forged token in a signed request",
    );
    // The token need not be signed (AWS's own suite adds it after signing), so the sidecar
    // checks it on its own.
    let add_token = |mut r: pb::SignedRequest, token: &str| {
        r.headers.push(pb::Header {
            name: "X-Amz-Security-Token".into(),
            value: token.into(),
        });
        r
    };
    let (unsigned, _) = sign_post(&temporary.with_token(""), &now, body);
    let answer = f
        .authorize(signed(add_token(unsigned.clone(), &temporary.token)))
        .await
        .unwrap();
    assert_eq!(decision(&answer), pb::Decision::Allow);
    let mut tampered = temporary.token.clone();
    let at = tampered.len() / 2;
    let replacement = if tampered.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..=at, replacement);
    assert_invalid_token(
        f.authorize(signed(add_token(unsigned.clone(), &tampered)))
            .await,
        "a tampered unsigned token",
    );
    assert_invalid_token(
        f.authorize(signed(unsigned)).await,
        "a temporary key's signature without its token",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_of_another_request_does_not_authenticate_sts_calls() {
    // A signature proves its request, not its holder: STS signs the operation itself
    // (Action=AssumeRole&RoleArn=...), so a signed request for something else, handed to the
    // sidecar by whoever saw it (the application it was sent to, a proxy, a log), must not
    // buy a session.
    let f = Fixture::start("sigv4-replay").await;
    let dave = f.user_with_key(A, "dave", Some(&allow("s3:GetObject", "*")));
    let (role_arn, _) = f.role(A, "app", &trust(&user_arn(A, "dave")), &allow("s3:*", "*"));
    f.synced().await;
    let amz = amz_date(Timestamp::now());
    let payload = sha256_hex(b"");
    let headers = [
        ("host", "data.s3.amazonaws.com"),
        ("x-amz-date", amz.as_str()),
    ];
    let date = &amz[..8];
    let (_, signature) = sigv4(
        &dave.secret,
        &ToSign {
            method: "GET",
            path: "/report.csv",
            query: "",
            headers: &headers,
            payload_sha256: &payload,
            scope: (date, "us-east-1", "s3"),
            amz_date: &amz,
        },
    );
    let mut sent: Vec<pb::Header> = headers
        .iter()
        .map(|(n, v)| pb::Header {
            name: (*n).into(),
            value: (*v).into(),
        })
        .collect();
    sent.push(pb::Header {
        name: "Authorization".into(),
        value: format!(
            "AWS4-HMAC-SHA256 Credential={}/{date}/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={signature}",
            dave.id
        ),
    });
    let s3_get = pb::SignedRequest {
        method: "GET".into(),
        path: "/report.csv".into(),
        query: String::new(),
        headers: sent,
        payload_sha256: payload,
    };
    // It is what Authorize decides: dave may read the object.
    let answer = f
        .authorize(ask(
            pb::authorize_request::Caller::SignedRequest(s3_get.clone()),
            "s3:GetObject",
            "arn:aws:s3:::data/report.csv",
        ))
        .await
        .unwrap();
    assert_eq!(decision(&answer), pb::Decision::Allow);

    let caller = Some(pb::StsCaller {
        caller: Some(pb::sts_caller::Caller::SignedRequest(s3_get)),
    });
    let assumed = f
        .assume_role(pb::AssumeRoleRequest {
            caller: caller.clone(),
            role_arn,
            role_session_name: "replayed".into(),
            ..pb::AssumeRoleRequest::default()
        })
        .await;
    let refused = assumed.expect_err("an S3 GET's signature assumed a role");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("caller.signed_request:"),
        "{}",
        refused.message()
    );
    let session = f
        .get_session_token(pb::GetSessionTokenRequest {
            caller: caller.clone(),
            ..pb::GetSessionTokenRequest::default()
        })
        .await;
    assert_eq!(
        session
            .expect_err("an S3 GET's signature got a session token")
            .code(),
        Code::InvalidArgument
    );
    // Not even GetCallerIdentity takes a signature made for another service.
    let identity = f.caller_identity(caller).await;
    assert_eq!(
        identity
            .expect_err("an S3 signature proved an identity to STS")
            .code(),
        Code::InvalidArgument
    );
}
