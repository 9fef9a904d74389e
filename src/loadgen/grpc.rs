//! The requests a run sends to a sidecar over gRPC, and the churn task's admin writes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

use super::engine::{drive, Plan, Reply};
use super::mix::{Mix, RequestKind};
use super::report::{ChurnReport, RunReport, RunSettings};
use super::BenchError;
use crate::proto::v1 as pb;

/// How long connecting may take before the target counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Access keys, for the callers that authenticate with them (and for `AssumeRole`, which always
/// does). `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA…` or `ASIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials (empty for long-term keys).
    pub session_token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    fn to_pb(&self) -> pb::Credentials {
        pb::Credentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
        }
    }
}

/// One admin write per interval during a run, so that the sidecar applies a new snapshot while
/// it is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChurnConfig {
    /// The control plane's URL.
    pub endpoint: String,
    /// The tenant to write to.
    pub tenant: String,
    /// The user whose tag each write changes (`TagUser`).
    pub user: String,
    /// The interval between writes.
    pub every: Duration,
    /// Who the writes are made as (the admin API authorizes them).
    pub credentials: Option<crate::client::Profile>,
}

/// Everything a run against a gRPC target needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The sidecar's (or the no-op server's) URL.
    pub target: String,
    /// The run's name in reports and plots; default: the target.
    pub label: Option<String>,
    /// Rate, warm-up, duration and in-flight limit.
    pub plan: Plan,
    /// gRPC connections (HTTP/2), used in turn by successive requests.
    pub connections: usize,
    /// Which kind each request is.
    pub mix: Mix,
    /// Requests in each `BatchAuthorize`.
    pub batch_size: usize,
    /// `Authorize` by principal ARN; without it, by [`RunConfig::credentials`].
    pub principal: Option<String>,
    /// The caller's keys, for `Authorize` without a principal and for `AssumeRole`.
    pub credentials: Option<Credentials>,
    /// The action of every `Authorize`.
    pub action: String,
    /// The resource of a hit; misses and batch entries derive theirs from it.
    pub resource: String,
    /// The role `AssumeRole` asks for.
    pub role_arn: String,
    /// Admin writes during the run.
    pub churn: Option<ChurnConfig>,
    /// A request not answered within this fails with `DeadlineExceeded`.
    pub timeout: Duration,
}

impl RunConfig {
    /// Refuses settings that cannot make a run: no caller, `assume-role` without keys, no
    /// connection, an empty batch.
    pub fn validate(&self) -> Result<(), BenchError> {
        super::engine::check_rate(self.plan.rate)?;
        let usage = |m: &str| Err(BenchError::Usage(m.to_owned()));
        if self.plan.duration.is_zero() {
            return usage("invalid duration: the measured part must be longer than zero");
        }
        if self.connections == 0 {
            return usage("invalid --connections 0: expected 1 or more");
        }
        if self.plan.concurrency == 0 {
            return usage("invalid --concurrency 0: expected 1 or more");
        }
        if self.mix.includes(RequestKind::Batch) && !(1..=1000).contains(&self.batch_size) {
            return usage("invalid --batch-size: expected 1 to 1000");
        }
        let authorizes = [
            RequestKind::AuthorizeHit,
            RequestKind::AuthorizeMiss,
            RequestKind::Batch,
        ]
        .into_iter()
        .any(|k| self.mix.includes(k));
        if authorizes && self.principal.is_none() && self.credentials.is_none() {
            return usage(
                "no caller: give --principal ARN, or credentials (--access-key-id and --secret-access-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            );
        }
        if self.mix.includes(RequestKind::AssumeRole) && self.credentials.is_none() {
            return usage(
                "assume-role needs credentials: give --access-key-id and --secret-access-key (or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            );
        }
        Ok(())
    }

    /// The settings as reports show them.
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            label: self.label.clone().unwrap_or_else(|| self.target.clone()),
            target: self.target.clone(),
            rate: self.plan.rate,
            duration_s: self.plan.duration.as_secs_f64(),
            warmup_s: self.plan.warmup.as_secs_f64(),
            connections: self.connections,
            concurrency: self.plan.concurrency,
            mix: self.mix.to_string(),
            batch_size: self.batch_size,
        }
    }
}

/// The messages of a run, built once: each request clones one (as a client builds its request)
/// and a miss changes its resource.
#[derive(Debug)]
struct Templates {
    hit: pb::AuthorizeRequest,
    batch: pb::BatchAuthorizeRequest,
    assume_role: pb::AssumeRoleRequest,
}

impl Templates {
    fn new(config: &RunConfig) -> Self {
        let caller = match (&config.principal, &config.credentials) {
            (Some(arn), _) => Some(pb::authorize_request::Caller::PrincipalArn(arn.clone())),
            (None, Some(keys)) => Some(pb::authorize_request::Caller::Credentials(keys.to_pb())),
            (None, None) => None,
        };
        let hit = pb::AuthorizeRequest {
            caller,
            action: config.action.clone(),
            resource: config.resource.clone(),
            ..pb::AuthorizeRequest::default()
        };
        // The same resources in every batch: after the first, a batch is a page of cache hits,
        // as an application checking one page of its objects again and again would send.
        let batch = pb::BatchAuthorizeRequest {
            requests: (0..config.batch_size)
                .map(|n| pb::AuthorizeRequest {
                    resource: format!("{}.batch-{n}", config.resource),
                    ..hit.clone()
                })
                .collect(),
        };
        let assume_role = pb::AssumeRoleRequest {
            caller: config.credentials.as_ref().map(|keys| pb::StsCaller {
                caller: Some(pb::sts_caller::Caller::Credentials(keys.to_pb())),
            }),
            role_arn: config.role_arn.clone(),
            role_session_name: "iamlet-bench".into(),
            ..pb::AssumeRoleRequest::default()
        };
        Self {
            hit,
            batch,
            assume_role,
        }
    }
}

/// The code's name, as reports count failures (`Unavailable`, `DeadlineExceeded`).
fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

fn decision_reply(decision: i32) -> Reply {
    if decision == pb::Decision::Allow as i32 {
        Reply::Ok
    } else {
        Reply::Denied
    }
}

/// Sends request `i` of the mix on `channel`.
async fn send(channel: Channel, templates: Arc<Templates>, kind: RequestKind, i: u64) -> Reply {
    match kind {
        RequestKind::AuthorizeHit | RequestKind::AuthorizeMiss => {
            let mut request = templates.hit.clone();
            if kind == RequestKind::AuthorizeMiss {
                // A resource no earlier request named, still under the hit's prefix: an
                // uncached evaluation with the same outcome as the hit.
                request.resource = format!("{}.miss-{i}", templates.hit.resource);
            }
            match pb::authorizer_client::AuthorizerClient::new(channel)
                .authorize(request)
                .await
            {
                Ok(r) => decision_reply(r.get_ref().decision),
                Err(s) => Reply::Failed(code_name(s.code())),
            }
        }
        RequestKind::Batch => {
            match pb::authorizer_client::AuthorizerClient::new(channel)
                .batch_authorize(templates.batch.clone())
                .await
            {
                Ok(r) => batch_reply(&r.into_inner()),
                Err(s) => Reply::Failed(code_name(s.code())),
            }
        }
        RequestKind::AssumeRole => {
            match pb::security_token_service_client::SecurityTokenServiceClient::new(channel)
                .assume_role(templates.assume_role.clone())
                .await
            {
                Ok(_) => Reply::Ok,
                Err(s) => Reply::Failed(code_name(s.code())),
            }
        }
    }
}

/// A batch fails with its first entry's error, is denied when any entry is, else is ok.
fn batch_reply(response: &pb::BatchAuthorizeResponse) -> Reply {
    let mut reply = Reply::Ok;
    for result in &response.results {
        match &result.result {
            Some(pb::batch_authorize_result::Result::Error(e)) => {
                return Reply::Failed(code_name(tonic::Code::from_i32(e.grpc_code)));
            }
            Some(pb::batch_authorize_result::Result::Response(r)) => {
                if decision_reply(r.decision) == Reply::Denied {
                    reply = Reply::Denied;
                }
            }
            None => return Reply::Failed(code_name(tonic::Code::Internal)),
        }
    }
    reply
}

/// Opens `n` connections to `target` (`http://host:port`, or `unix:PATH` for a sidecar's
/// `--uds` socket); an unreachable target is an error that names it.
pub async fn connect(
    target: &str,
    n: usize,
    timeout: Duration,
) -> Result<Vec<Channel>, BenchError> {
    let socket = target.strip_prefix("unix:").map(std::path::Path::new);
    // Over a Unix socket the URI only names the HTTP/2 authority; the connector ignores it.
    let uri = if socket.is_some() {
        "http://localhost"
    } else {
        target
    };
    let endpoint = Endpoint::from_shared(uri.to_owned())
        .map_err(|e| BenchError::Usage(format!("invalid target `{target}`: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .tcp_nodelay(true)
        // The in-flight limit is the generator's, not the channel's queue.
        .buffer_size(65_536);
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = match socket {
            Some(path) => {
                endpoint
                    .connect_with_connector(UnixConnector(path.into()))
                    .await
            }
            None => endpoint.connect().await,
        };
        channels.push(channel.map_err(|e| BenchError::connect(target, &e))?);
    }
    Ok(channels)
}

/// Dials one Unix domain socket, whatever URI tonic asks for.
#[derive(Debug, Clone)]
struct UnixConnector(Arc<std::path::Path>);

impl tower_service::Service<tonic::codegen::http::Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: tonic::codegen::http::Uri) -> Self::Future {
        let path = Arc::clone(&self.0);
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(&*path).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// Runs `config` against its target: connects, starts the churn task if asked, sends the
/// schedule, and reports.
pub async fn run(config: &RunConfig) -> Result<RunReport, BenchError> {
    config.validate()?;
    let channels = connect(&config.target, config.connections, config.timeout).await?;
    let churn = match &config.churn {
        Some(c) => Some(Churn::start(c).await?),
        None => None,
    };
    let templates = Arc::new(Templates::new(config));
    let started_at = crate::policy::Timestamp::now().to_string();
    let mix = config.mix.clone();
    let count = channels.len() as u64;
    let measurement = drive(&config.plan, |i| {
        let channel = usize::try_from(i % count)
            .ok()
            .and_then(|n| channels.get(n))
            .cloned();
        let templates = Arc::clone(&templates);
        let kind = mix.kind_of(i);
        async move {
            match channel {
                Some(channel) => send(channel, templates, kind, i).await,
                None => Reply::Failed(code_name(tonic::Code::Internal)),
            }
        }
    })
    .await?;
    let churn = churn.map(Churn::stop);
    Ok(RunReport::new(
        config.settings(),
        started_at,
        &measurement,
        churn,
    ))
}

/// The churn task and what it has done so far.
#[derive(Debug)]
struct Churn {
    tally: Arc<Mutex<ChurnReport>>,
    task: tokio::task::JoinHandle<()>,
}

impl Churn {
    /// Connects to the control plane (an unreachable one fails the run before it starts) and
    /// writes once per interval from now on.
    async fn start(config: &ChurnConfig) -> Result<Self, BenchError> {
        let channel = connect(&config.endpoint, 1, Duration::from_secs(10))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| BenchError::Usage("no churn connection".into()))?;
        let tally = Arc::new(Mutex::new(ChurnReport::default()));
        let config = config.clone();
        let writes = Arc::clone(&tally);
        let task = tokio::spawn(async move {
            let mut client = pb::admin_client::AdminClient::new(channel);
            let mut ticks = tokio::time::interval(config.every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 1u64.. {
                ticks.tick().await;
                let request = pb::CallRequest {
                    tenant: config.tenant.clone(),
                    action: "TagUser".into(),
                    parameters_json: json!({
                        "UserName": config.user,
                        "Tags": [{"Key": "iamlet-bench-churn", "Value": n.to_string()}],
                    })
                    .to_string(),
                };
                let result = client
                    .call(crate::grpc::signed_admin_request(
                        request,
                        "Call",
                        config.credentials.as_ref(),
                    ))
                    .await;
                let mut t = writes.lock();
                t.attempted += 1;
                match result {
                    Ok(_) => t.succeeded += 1,
                    Err(s) => *t.errors.entry(code_name(s.code())).or_insert(0) += 1,
                }
            }
        });
        Ok(Self { tally, task })
    }

    fn stop(self) -> ChurnReport {
        self.task.abort();
        let report = self.tally.lock().clone();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunConfig {
        RunConfig {
            target: "http://127.0.0.1:1".into(),
            label: None,
            plan: Plan {
                rate: 100.0,
                warmup: Duration::ZERO,
                duration: Duration::from_secs(1),
                concurrency: 10,
            },
            connections: 1,
            mix: Mix::parse(super::super::mix::DEFAULT_MIX).unwrap(),
            batch_size: 10,
            principal: Some("arn:aws:iam::111122223333:user/alice".into()),
            credentials: Some(Credentials {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: "very-secret".into(),
                session_token: String::new(),
            }),
            action: "s3:GetObject".into(),
            resource: "arn:aws:s3:::b/k".into(),
            role_arn: "arn:aws:iam::111122223333:role/r".into(),
            churn: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn validation_names_what_is_missing() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.credentials = None;
        let e = c.validate().unwrap_err();
        assert!(
            e.to_string().contains("assume-role needs credentials"),
            "{e}"
        );
        c.mix = Mix::only(RequestKind::AuthorizeHit);
        assert!(c.validate().is_ok());
        c.principal = None;
        assert!(c.validate().unwrap_err().to_string().contains("no caller"));
        let mut c = config();
        c.batch_size = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--batch-size"));
        let mut c = config();
        c.connections = 0;
        assert_eq!(c.validate().unwrap_err().exit_code(), 2);
        let mut c = config();
        c.plan.duration = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().exit_code(), 2);
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let text = format!("{:?}", config());
        assert!(text.contains("AKIAEXAMPLE"));
        assert!(!text.contains("very-secret"), "{text}");
    }

    #[test]
    fn batch_replies_fail_on_any_error_and_deny_on_any_deny() {
        let response = |d: pb::Decision| pb::BatchAuthorizeResult {
            result: Some(pb::batch_authorize_result::Result::Response(
                pb::AuthorizeResponse {
                    decision: d as i32,
                    ..pb::AuthorizeResponse::default()
                },
            )),
        };
        let error = pb::BatchAuthorizeResult {
            result: Some(pb::batch_authorize_result::Result::Error(
                pb::AuthorizeError {
                    grpc_code: tonic::Code::NotFound as i32,
                    ..pb::AuthorizeError::default()
                },
            )),
        };
        let batch = |results| pb::BatchAuthorizeResponse { results };
        assert_eq!(
            batch_reply(&batch(vec![response(pb::Decision::Allow)])),
            Reply::Ok
        );
        assert_eq!(
            batch_reply(&batch(vec![
                response(pb::Decision::Allow),
                response(pb::Decision::ImplicitDeny)
            ])),
            Reply::Denied
        );
        assert_eq!(
            batch_reply(&batch(vec![response(pb::Decision::ImplicitDeny), error])),
            Reply::Failed("NotFound".into())
        );
    }

    #[test]
    fn templates_vary_batch_resources_and_carry_the_caller() {
        let t = Templates::new(&config());
        assert_eq!(t.batch.requests.len(), 10);
        assert_eq!(t.batch.requests[3].resource, "arn:aws:s3:::b/k.batch-3");
        assert!(matches!(
            t.hit.caller,
            Some(pb::authorize_request::Caller::PrincipalArn(_))
        ));
        assert!(t.assume_role.caller.is_some());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unreachable_target_is_an_error_that_names_it() {
        let e = connect("http://127.0.0.1:1", 1, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, BenchError::Connect { .. }), "{e:?}");
        assert!(
            e.to_string().contains("cannot reach http://127.0.0.1:1"),
            "{e}"
        );
        let e = connect("not a url", 1, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_unix_target_reaches_a_server_on_that_socket() {
        let path = std::env::temp_dir().join(format!("iamlet-loadgen-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let missing = format!("unix:{}", path.display());
        let e = connect(&missing, 1, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&missing), "{e}");

        let incoming = tokio_stream::wrappers::UnixListenerStream::new(
            tokio::net::UnixListener::bind(&path).unwrap(),
        );
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::authorizer_server::AuthorizerServer::new(
                    super::super::noop::NoopService::new(),
                ))
                .serve_with_incoming(incoming),
        );
        let channels = connect(&missing, 2, Duration::from_secs(5)).await.unwrap();
        assert_eq!(channels.len(), 2);
        for channel in channels {
            let reply = pb::authorizer_client::AuthorizerClient::new(channel)
                .authorize(Templates::new(&config()).hit)
                .await
                .unwrap();
            assert_eq!(reply.get_ref().decision, pb::Decision::Allow as i32);
        }
        server.abort();
        std::fs::remove_file(&path).unwrap();
    }
}
