//! `iamlet bench compare`: iamlet's sidecar and the Cerbos PDP under the same generator
//! (issue 19, P9).
//!
//! Both servers are asked the same questions in the same way: over gRPC on one HTTP/2
//! connection each (iamlet's `Authorize`, Cerbos's `CheckResources`), at the same open-loop
//! rate, with the same mix of repeated requests (a decision-cache hit for iamlet) and requests
//! for a resource never named before (a miss). Before anything is timed, a set of probes is put
//! to both and their decisions compared: a comparison of two engines that decide differently
//! measures nothing, so a disagreement stops the command.
//!
//! The cost compared is the server's CPU per decision, read from `/proc/PID/stat` around each
//! measured run (user plus system time of all the server's threads), so that the generator's
//! own cost and the machine's other load do not count; decisions per core-second is its
//! inverse. The runs alternate between the two servers, so that a slow spell of the machine
//! falls on both.
//!
//! Cerbos's messages are the subset of `cerbos.request.v1.CheckResourcesRequest` and
//! `cerbos.response.v1.CheckResourcesResponse` this needs, written with prost's derive and the
//! field numbers of Cerbos's public API (`api/public/cerbos`), so no Cerbos code or proto file
//! is part of this crate. The translation of the demo tenant's policy for Cerbos is
//! `tests/cerbos/policies/s3.yaml`; an IAM caller's groups become its Cerbos roles and
//! `aws:SourceIp` the principal attribute `sourceIp`.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tonic::transport::Channel;

use super::engine::{drive, Plan, Reply};
use super::grpc::connect;
use super::mix::{Mix, RequestKind};
use super::report::{RunReport, RunSettings};
use super::BenchError;
use crate::proto::v1 as pb;

/// Cerbos's `CheckResources` method.
const CHECK_RESOURCES: &str = "/cerbos.svc.v1.CerbosService/CheckResources";
/// `cerbos.effect.v1.Effect.EFFECT_ALLOW`.
const EFFECT_ALLOW: i32 = 1;
/// The kernel's clock ticks per second in `/proc/PID/stat` (`USER_HZ`): 100 on every Linux
/// architecture this runs on (x86-64, arm64).
const USER_HZ: f64 = 100.0;

/// The messages of Cerbos's API this sends and reads, with Cerbos's field numbers.
pub mod wire {
    use std::collections::HashMap;

    /// `cerbos.request.v1.CheckResourcesRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckResourcesRequest {
        /// `request_id = 1`.
        #[prost(string, tag = "1")]
        pub request_id: String,
        /// `principal = 3`.
        #[prost(message, optional, tag = "3")]
        pub principal: Option<Principal>,
        /// `resources = 4`.
        #[prost(message, repeated, tag = "4")]
        pub resources: Vec<ResourceEntry>,
    }

    /// `cerbos.request.v1.CheckResourcesRequest.ResourceEntry`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceEntry {
        /// `actions = 1`.
        #[prost(string, repeated, tag = "1")]
        pub actions: Vec<String>,
        /// `resource = 2`.
        #[prost(message, optional, tag = "2")]
        pub resource: Option<Resource>,
    }

    /// `cerbos.engine.v1.Principal`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Principal {
        /// `id = 1`.
        #[prost(string, tag = "1")]
        pub id: String,
        /// `roles = 3`.
        #[prost(string, repeated, tag = "3")]
        pub roles: Vec<String>,
        /// `attr = 4`, a map to `google.protobuf.Value`.
        #[prost(map = "string, message", tag = "4")]
        pub attr: HashMap<String, StringValue>,
    }

    /// `cerbos.engine.v1.Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        /// `kind = 1`.
        #[prost(string, tag = "1")]
        pub kind: String,
        /// `id = 3`.
        #[prost(string, tag = "3")]
        pub id: String,
    }

    /// A `google.protobuf.Value` holding a string (`string_value = 3` of its `kind` oneof:
    /// the same bytes on the wire).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringValue {
        /// `string_value = 3`.
        #[prost(string, tag = "3")]
        pub string_value: String,
    }

    /// `cerbos.response.v1.CheckResourcesResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CheckResourcesResponse {
        /// `results = 2`.
        #[prost(message, repeated, tag = "2")]
        pub results: Vec<ResultEntry>,
    }

    /// `cerbos.response.v1.CheckResourcesResponse.ResultEntry`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResultEntry {
        /// `actions = 2`: each action's `cerbos.effect.v1.Effect`.
        #[prost(map = "string, int32", tag = "2")]
        pub actions: HashMap<String, i32>,
    }
}

/// One question put to both servers before the timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The caller's user name (its ARN is the run's principal's, with this name).
    pub user: String,
    /// The IAM action.
    pub action: String,
    /// The resource ARN.
    pub resource: String,
    /// `aws:SourceIp`, when the request carries one.
    pub source_ip: Option<String>,
}

/// What `iamlet bench compare` runs.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// iamlet's sidecar (`http://127.0.0.1:7071`).
    pub iamlet: String,
    /// Cerbos's gRPC listener (`http://127.0.0.1:3593`).
    pub cerbos: String,
    /// The sidecar's process, whose CPU time is read around each run.
    pub iamlet_pid: Option<u32>,
    /// Cerbos's process.
    pub cerbos_pid: Option<u32>,
    /// The caller, a user ARN (`arn:aws:iam::111122223333:user/alice`).
    pub principal: String,
    /// The caller's IAM groups, which Cerbos receives as roles.
    pub roles: Vec<String>,
    /// The action of every timed request.
    pub action: String,
    /// The resource of a hit; a miss appends `.miss-N`.
    pub resource: String,
    /// Hits and misses only: the other kinds have no Cerbos equivalent.
    pub mix: Mix,
    /// Rate, warm-up, duration and in-flight limit of each run.
    pub plan: Plan,
    /// Runs of each server, alternating.
    pub runs: usize,
    /// A request not answered within this fails.
    pub timeout: Duration,
}

/// The two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// iamlet's sidecar.
    Iamlet,
    /// The Cerbos PDP.
    Cerbos,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Iamlet => "iamlet",
            Self::Cerbos => "cerbos",
        })
    }
}

/// A probe and each server's decision.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeOutcome {
    /// The caller's user name.
    pub user: String,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// `aws:SourceIp`, if any.
    pub source_ip: Option<String>,
    /// Whether iamlet allowed it.
    pub iamlet_allows: bool,
    /// Whether Cerbos allowed it.
    pub cerbos_allows: bool,
}

/// One measured run of one server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareRun {
    /// Which server.
    pub server: Server,
    /// The run's number, from 1.
    pub run: usize,
    /// Latency and counts.
    pub report: RunReport,
    /// The server's CPU seconds during the measured part, when its process was given.
    pub cpu_s: Option<f64>,
}

impl CompareRun {
    /// The server's CPU per answered decision, in microseconds.
    pub fn cpu_us_per_decision(&self) -> Option<f64> {
        let cpu = self.cpu_s?;
        (self.report.completed > 0).then(|| cpu * 1e6 / self.report.completed as f64)
    }
}

/// What `iamlet bench compare` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    /// The probes, decided alike by both servers.
    pub agreement: Vec<ProbeOutcome>,
    /// The runs, in the order made.
    pub runs: Vec<CompareRun>,
}

impl CompareReport {
    /// The median CPU per decision of `server`'s runs, in microseconds.
    pub fn median_cpu_us(&self, server: Server) -> Option<f64> {
        let mut values: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.server == server)
            .filter_map(CompareRun::cpu_us_per_decision)
            .collect();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => values.get(n / 2).copied(),
            _ => Some((values.get(n / 2 - 1)? + values.get(n / 2)?) / 2.0),
        }
    }

    /// How many more decisions per core iamlet makes than Cerbos (the ratio of the medians).
    pub fn ratio(&self) -> Option<f64> {
        Some(self.median_cpu_us(Server::Cerbos)? / self.median_cpu_us(Server::Iamlet)?)
    }

    /// Failed requests over every run.
    pub fn error_count(&self) -> u64 {
        self.runs.iter().map(|r| r.report.error_count()).sum()
    }
}

impl fmt::Display for CompareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed = self.agreement.iter().filter(|p| p.iamlet_allows).count();
        writeln!(
            f,
            "agreement: both servers decide the {} probes alike ({allowed} allowed, {} denied)",
            self.agreement.len(),
            self.agreement.len() - allowed
        )?;
        for p in &self.agreement {
            writeln!(
                f,
                "  {:<5}  {:<6} {:<16} {}{}",
                if p.iamlet_allows { "ALLOW" } else { "DENY" },
                p.user,
                p.action,
                p.resource,
                p.source_ip
                    .as_deref()
                    .map(|ip| format!(" from {ip}"))
                    .unwrap_or_default()
            )?;
        }
        writeln!(
            f,
            "\nrun  server  achieved/s  p50 µs  p99 µs  errors  CPU s  CPU µs/decision"
        )?;
        for r in &self.runs {
            let l = &r.report.latency_us;
            writeln!(
                f,
                "{:>3}  {:<6}  {:>10.1}  {:>6}  {:>6}  {:>6}  {:>5}  {:>15}",
                r.run,
                r.server.to_string(),
                r.report.achieved_rate,
                l.p50,
                l.p99,
                r.report.error_count(),
                r.cpu_s.map_or_else(|| "-".into(), |c| format!("{c:.2}")),
                r.cpu_us_per_decision()
                    .map_or_else(|| "-".into(), |c| format!("{c:.1}")),
            )?;
        }
        for server in [Server::Iamlet, Server::Cerbos] {
            if let Some(us) = self.median_cpu_us(server) {
                writeln!(
                    f,
                    "{server}: median {us:.1} µs of CPU per decision ({:.0} decisions per core-second)",
                    1e6 / us
                )?;
            }
        }
        match self.ratio() {
            Some(ratio) => writeln!(
                f,
                "iamlet makes {ratio:.1}× the decisions per core of Cerbos (issue 19's P9: ≥ 10×)"
            ),
            None => writeln!(
                f,
                "CPU per decision not measured: give --iamlet-pid and --cerbos-pid"
            ),
        }
    }
}

/// The probes of a comparison: the timed requests (a hit and misses) and, for the demo
/// tenant's policy, one request per statement and its boundary (another user's prefix, shared
/// data from inside and outside the office network, a delete in the audit logs, another
/// bucket), so that an agreement is not only on the request that is timed.
pub fn probes(config: &CompareConfig) -> Result<Vec<Probe>, BenchError> {
    let user = user_name(&config.principal)?;
    let probe = |user: &str, action: &str, resource: &str, ip: Option<&str>| Probe {
        user: user.to_owned(),
        action: action.to_owned(),
        resource: resource.to_owned(),
        source_ip: ip.map(str::to_owned),
    };
    let mut probes = vec![
        probe(user, &config.action, &config.resource, None),
        probe(
            user,
            &config.action,
            &format!("{}.miss-0", config.resource),
            None,
        ),
        probe(
            user,
            &config.action,
            &format!("{}.miss-1", config.resource),
            None,
        ),
    ];
    let demo = [
        ("s3:GetObject", "home/{u}/notes.txt", None),
        ("s3:PutObject", "home/{u}/drafts/q3.txt", None),
        ("s3:GetObject", "home/someone-else/notes.txt", None),
        ("s3:DeleteObject", "home/{u}/notes.txt", None),
        ("s3:GetObject", "shared/handbook.pdf", Some("10.20.30.40")),
        ("s3:GetObject", "shared/handbook.pdf", Some("192.0.2.10")),
        ("s3:GetObject", "shared/handbook.pdf", None),
    ];
    for (action, key, ip) in demo {
        let resource = format!("arn:aws:s3:::demo-data/{}", key.replace("{u}", user));
        let candidate = probe(user, action, &resource, ip);
        // The default timed request is one of these; it is asked once.
        if !probes.contains(&candidate) {
            probes.push(candidate);
        }
    }
    probes.push(probe(
        user,
        "s3:DeleteObject",
        "arn:aws:s3:::demo-audit-logs/2026/12/01.log",
        None,
    ));
    probes.push(probe(
        user,
        "s3:GetObject",
        &format!("arn:aws:s3:::another-bucket/home/{user}/notes.txt"),
        None,
    ));
    Ok(probes)
}

/// The user name of a user ARN: its last path segment.
fn user_name(arn: &str) -> Result<&str, BenchError> {
    arn.split_once(":user/")
        .and_then(|(_, path)| path.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            BenchError::Usage(format!(
                "invalid --principal `{arn}`: expected a user ARN (arn:aws:iam::ACCOUNT:user/NAME); Cerbos is given the user's name"
            ))
        })
}

/// The ARN of `user` in the principal's account and partition.
fn user_arn(principal: &str, user: &str) -> String {
    match principal.split_once(":user/") {
        Some((prefix, _)) => format!("{prefix}:user/{user}"),
        None => principal.to_owned(),
    }
}

impl CompareConfig {
    /// Checks what can be checked before connecting.
    pub fn validate(&self) -> Result<(), BenchError> {
        user_name(&self.principal)?;
        for kind in RequestKind::ALL {
            if self.mix.includes(kind)
                && !matches!(kind, RequestKind::AuthorizeHit | RequestKind::AuthorizeMiss)
            {
                return Err(BenchError::Usage(format!(
                    "invalid --mix: {} has no Cerbos equivalent; compare with authorize-hit and authorize-miss",
                    kind.name()
                )));
            }
        }
        if self.runs == 0 {
            return Err(BenchError::Usage(
                "invalid --runs 0: expected at least one run of each server".into(),
            ));
        }
        Ok(())
    }

    fn iamlet_request(&self, probe: &Probe) -> pb::AuthorizeRequest {
        let mut context = HashMap::new();
        if let Some(ip) = &probe.source_ip {
            context.insert(
                "aws:SourceIp".to_owned(),
                pb::ContextValue {
                    value: Some(pb::context_value::Value::StringValue(ip.clone())),
                },
            );
        }
        pb::AuthorizeRequest {
            caller: Some(pb::authorize_request::Caller::PrincipalArn(user_arn(
                &self.principal,
                &probe.user,
            ))),
            action: probe.action.clone(),
            resource: probe.resource.clone(),
            context,
            ..pb::AuthorizeRequest::default()
        }
    }

    fn cerbos_request(&self, probe: &Probe) -> wire::CheckResourcesRequest {
        let mut attr = HashMap::new();
        if let Some(ip) = &probe.source_ip {
            attr.insert(
                "sourceIp".to_owned(),
                wire::StringValue {
                    string_value: ip.clone(),
                },
            );
        }
        wire::CheckResourcesRequest {
            request_id: String::new(),
            principal: Some(wire::Principal {
                id: probe.user.clone(),
                roles: self.roles.clone(),
                attr,
            }),
            resources: vec![wire::ResourceEntry {
                actions: vec![probe.action.clone()],
                resource: Some(wire::Resource {
                    kind: service_of(&probe.action).to_owned(),
                    id: probe.resource.clone(),
                }),
            }],
        }
    }

    fn settings(&self, server: Server, run: usize) -> RunSettings {
        RunSettings {
            label: format!("{server} run {run}"),
            target: match server {
                Server::Iamlet => self.iamlet.clone(),
                Server::Cerbos => self.cerbos.clone(),
            },
            rate: self.plan.rate,
            duration_s: self.plan.duration.as_secs_f64(),
            warmup_s: 0.0,
            connections: 1,
            concurrency: self.plan.concurrency,
            mix: self.mix.to_string(),
            batch_size: 0,
        }
    }
}

/// The Cerbos resource kind of an action: its service prefix (`s3`).
fn service_of(action: &str) -> &str {
    action
        .split_once(':')
        .map_or(action, |(service, _)| service)
}

/// Asks iamlet for a decision.
async fn ask_iamlet(channel: Channel, request: pb::AuthorizeRequest) -> Result<bool, String> {
    pb::authorizer_client::AuthorizerClient::new(channel)
        .authorize(request)
        .await
        .map(|r| r.get_ref().decision == pb::Decision::Allow as i32)
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// Asks Cerbos for a decision on the request's one action.
async fn ask_cerbos(
    channel: Channel,
    request: wire::CheckResourcesRequest,
) -> Result<bool, String> {
    let action = request
        .resources
        .first()
        .and_then(|r| r.actions.first())
        .cloned()
        .unwrap_or_default();
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| format!("Unavailable: {e}"))?;
    let response: tonic::Response<wire::CheckResourcesResponse> = client
        .unary(
            tonic::Request::new(request),
            tonic::codegen::http::uri::PathAndQuery::from_static(CHECK_RESOURCES),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    Ok(response
        .get_ref()
        .results
        .first()
        .and_then(|r| r.actions.get(&action))
        .is_some_and(|&effect| effect == EFFECT_ALLOW))
}

/// Puts every probe to both servers; any disagreement (or failure) is an error naming it.
pub async fn check_agreement(
    config: &CompareConfig,
    iamlet: &Channel,
    cerbos: &Channel,
) -> Result<Vec<ProbeOutcome>, BenchError> {
    let mut outcomes = Vec::new();
    for probe in probes(config)? {
        let describe = || {
            format!(
                "{} {} on {}{}",
                probe.user,
                probe.action,
                probe.resource,
                probe
                    .source_ip
                    .as_deref()
                    .map(|ip| format!(" from {ip}"))
                    .unwrap_or_default()
            )
        };
        let iamlet_allows = ask_iamlet(iamlet.clone(), config.iamlet_request(&probe))
            .await
            .map_err(|e| BenchError::Disagreement(format!("iamlet failed {}: {e}", describe())))?;
        let cerbos_allows = ask_cerbos(cerbos.clone(), config.cerbos_request(&probe))
            .await
            .map_err(|e| BenchError::Disagreement(format!("Cerbos failed {}: {e}", describe())))?;
        if iamlet_allows != cerbos_allows {
            return Err(BenchError::Disagreement(format!(
                "{}: iamlet {}, Cerbos {}; nothing was timed",
                describe(),
                if iamlet_allows { "allows" } else { "denies" },
                if cerbos_allows { "allows" } else { "denies" },
            )));
        }
        outcomes.push(ProbeOutcome {
            user: probe.user,
            action: probe.action,
            resource: probe.resource,
            source_ip: probe.source_ip,
            iamlet_allows,
            cerbos_allows,
        });
    }
    // The timed request must be one both allow, and the probes must not all have one answer:
    // an engine that denies everything agrees with another that does.
    if !outcomes.first().is_some_and(|p| p.iamlet_allows) {
        return Err(BenchError::Disagreement(format!(
            "both servers deny the timed request ({} on {}): check the caller, the roles and the policies",
            config.action, config.resource
        )));
    }
    if outcomes.iter().all(|p| p.iamlet_allows) {
        return Err(BenchError::Disagreement(
            "both servers allow every probe: the comparison would not exercise a denial".into(),
        ));
    }
    Ok(outcomes)
}

/// User plus system CPU seconds of process `pid` (all its threads).
pub fn process_cpu_seconds(pid: u32) -> Result<f64, BenchError> {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&path).map_err(|source| BenchError::Io {
        path: path.clone(),
        source,
    })?;
    parse_cpu_seconds(&text).ok_or_else(|| {
        BenchError::Usage(format!(
            "{}: not a process status line this understands",
            path.display()
        ))
    })
}

/// `utime + stime` of a `/proc/PID/stat` line, in seconds. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so fields are counted after the last
/// `)`: the state is field 3, utime field 14 and stime field 15.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Sends `server` the run's schedule: a warm-up that is not measured, then the measured part
/// with the server's CPU time read around it.
async fn measure(
    config: &CompareConfig,
    server: Server,
    run: usize,
    channel: &Channel,
) -> Result<CompareRun, BenchError> {
    let pid = match server {
        Server::Iamlet => config.iamlet_pid,
        Server::Cerbos => config.cerbos_pid,
    };
    let user = user_name(&config.principal)?.to_owned();
    let hit = Probe {
        user,
        action: config.action.clone(),
        resource: config.resource.clone(),
        source_ip: None,
    };
    let iamlet_hit = std::sync::Arc::new(config.iamlet_request(&hit));
    let cerbos_hit = std::sync::Arc::new(config.cerbos_request(&hit));
    let mix = config.mix.clone();
    let call = |i: u64| {
        let channel = channel.clone();
        let iamlet_hit = std::sync::Arc::clone(&iamlet_hit);
        let cerbos_hit = std::sync::Arc::clone(&cerbos_hit);
        let miss = mix.kind_of(i) == RequestKind::AuthorizeMiss;
        async move {
            let answer = match server {
                Server::Iamlet => {
                    let mut request = (*iamlet_hit).clone();
                    if miss {
                        request.resource = format!("{}.miss-{i}", request.resource);
                    }
                    ask_iamlet(channel, request).await
                }
                Server::Cerbos => {
                    let mut request = (*cerbos_hit).clone();
                    if miss {
                        if let Some(r) = request
                            .resources
                            .first_mut()
                            .and_then(|e| e.resource.as_mut())
                        {
                            r.id = format!("{}.miss-{i}", r.id);
                        }
                    }
                    ask_cerbos(channel, request).await
                }
            };
            match answer {
                Ok(true) => Reply::Ok,
                Ok(false) => Reply::Denied,
                Err(e) => Reply::Failed(e.split(':').next().unwrap_or("Unknown").to_owned()),
            }
        }
    };
    if !config.plan.warmup.is_zero() {
        let warmup = Plan {
            duration: config.plan.warmup,
            warmup: Duration::ZERO,
            ..config.plan
        };
        drive(&warmup, &call).await?;
    }
    let measured = Plan {
        warmup: Duration::ZERO,
        ..config.plan
    };
    let started_at = crate::policy::Timestamp::now().to_string();
    let before = pid.map(process_cpu_seconds).transpose()?;
    let measurement = drive(&measured, &call).await?;
    let after = pid.map(process_cpu_seconds).transpose()?;
    Ok(CompareRun {
        server,
        run,
        report: RunReport::new(config.settings(server, run), started_at, &measurement, None),
        cpu_s: before.zip(after).map(|(b, a)| a - b),
    })
}

/// Connects to both servers, checks that they agree, then measures them in turn.
pub async fn compare(config: &CompareConfig) -> Result<CompareReport, BenchError> {
    config.validate()?;
    let iamlet = first_channel(
        connect(&config.iamlet, 1, config.timeout).await?,
        &config.iamlet,
    )?;
    let cerbos = first_channel(
        connect(&config.cerbos, 1, config.timeout).await?,
        &config.cerbos,
    )?;
    let agreement = check_agreement(config, &iamlet, &cerbos).await?;
    let mut runs = Vec::with_capacity(config.runs * 2);
    for run in 1..=config.runs {
        runs.push(measure(config, Server::Iamlet, run, &iamlet).await?);
        runs.push(measure(config, Server::Cerbos, run, &cerbos).await?);
    }
    Ok(CompareReport { agreement, runs })
}

fn first_channel(channels: Vec<Channel>, target: &str) -> Result<Channel, BenchError> {
    channels
        .into_iter()
        .next()
        .ok_or_else(|| BenchError::Connect {
            target: target.to_owned(),
            detail: "no connection was opened".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CompareConfig {
        CompareConfig {
            iamlet: "http://127.0.0.1:1".into(),
            cerbos: "http://127.0.0.1:2".into(),
            iamlet_pid: None,
            cerbos_pid: None,
            principal: "arn:aws:iam::111122223333:user/alice".into(),
            roles: vec!["developers".into()],
            action: "s3:GetObject".into(),
            resource: "arn:aws:s3:::demo-data/home/alice/notes.txt".into(),
            mix: Mix::parse("authorize-hit=7,authorize-miss=2").unwrap(),
            plan: Plan {
                rate: 100.0,
                warmup: Duration::ZERO,
                duration: Duration::from_millis(100),
                concurrency: 8,
            },
            runs: 1,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_cpu_time_is_read_after_the_command_name_whatever_it_holds() {
        // A command name with a space and a parenthesis, then state, ppid ... utime stime.
        let stat = "4242 (iam (let) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.25));
        assert_eq!(parse_cpu_seconds("4242 (short) S 1 2"), None);
        assert_eq!(parse_cpu_seconds("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_spent_cpu_time() {
        let cpu = process_cpu_seconds(std::process::id()).unwrap();
        assert!(cpu >= 0.0);
        assert!(matches!(
            process_cpu_seconds(u32::MAX),
            Err(BenchError::Io { .. })
        ));
    }

    #[test]
    fn kinds_without_a_cerbos_equivalent_are_refused() {
        let mut c = config();
        c.validate().unwrap();
        c.mix = Mix::parse("authorize-hit=1,assume-role=1").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("assume-role has no Cerbos equivalent"),
            "{err}"
        );
        let mut c = config();
        c.principal = "arn:aws:iam::111122223333:role/reports-writer".into();
        assert!(c.validate().unwrap_err().to_string().contains("a user ARN"));
        let mut c = config();
        c.runs = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn both_requests_carry_the_same_question() {
        let c = config();
        let probe = Probe {
            user: "bob".into(),
            action: "s3:GetObject".into(),
            resource: "arn:aws:s3:::demo-data/shared/a".into(),
            source_ip: Some("10.1.2.3".into()),
        };
        let iamlet = c.iamlet_request(&probe);
        assert_eq!(
            iamlet.caller,
            Some(pb::authorize_request::Caller::PrincipalArn(
                "arn:aws:iam::111122223333:user/bob".into()
            ))
        );
        assert_eq!(iamlet.resource, probe.resource);
        assert!(iamlet.context.contains_key("aws:SourceIp"));
        let cerbos = c.cerbos_request(&probe);
        let principal = cerbos.principal.clone().unwrap();
        assert_eq!(principal.id, "bob");
        assert_eq!(principal.roles, vec!["developers".to_owned()]);
        assert_eq!(principal.attr["sourceIp"].string_value, "10.1.2.3");
        let entry = cerbos.resources.first().unwrap();
        assert_eq!(entry.actions, vec!["s3:GetObject".to_owned()]);
        let resource = entry.resource.clone().unwrap();
        assert_eq!(
            (resource.kind.as_str(), resource.id.as_str()),
            ("s3", probe.resource.as_str())
        );
    }

    #[test]
    fn the_cerbos_messages_use_cerbos_field_numbers() {
        use prost::Message as _;
        // principal (3) { id (1) "a", roles (3) "r" }, resources (4) { actions (1) "x" }
        let request = wire::CheckResourcesRequest {
            request_id: String::new(),
            principal: Some(wire::Principal {
                id: "a".into(),
                roles: vec!["r".into()],
                attr: HashMap::new(),
            }),
            resources: vec![wire::ResourceEntry {
                actions: vec!["x".into()],
                resource: None,
            }],
        };
        assert_eq!(
            request.encode_to_vec(),
            vec![0x1a, 6, 0x0a, 1, b'a', 0x1a, 1, b'r', 0x22, 3, 0x0a, 1, b'x']
        );
        // results (2) { actions (2) { key (1) "x", value (2) 1 } }
        let response =
            wire::CheckResourcesResponse::decode(&[0x12, 7, 0x12, 5, 0x0a, 1, b'x', 0x10, 1][..])
                .unwrap();
        assert_eq!(
            response.results.first().unwrap().actions.get("x"),
            Some(&EFFECT_ALLOW)
        );
    }

    #[test]
    fn the_probes_start_with_the_timed_request_and_cover_each_statement() {
        let probes = probes(&config()).unwrap();
        let first = probes.first().unwrap();
        assert_eq!(
            first.resource,
            "arn:aws:s3:::demo-data/home/alice/notes.txt"
        );
        assert!(probes
            .iter()
            .any(|p| p.source_ip.as_deref() == Some("10.20.30.40")));
        assert!(probes
            .iter()
            .any(|p| p.resource.contains("demo-audit-logs")));
        assert!(probes.iter().any(|p| p.resource.contains("someone-else")));
        let distinct: std::collections::HashSet<_> = probes
            .iter()
            .map(|p| (&p.action, &p.resource, &p.source_ip))
            .collect();
        assert_eq!(distinct.len(), probes.len(), "a probe is asked twice");
    }

    #[test]
    fn the_ratio_is_of_the_median_cpu_per_decision() {
        let settings = config().settings(Server::Iamlet, 1);
        let measurement = crate::loadgen::Measurement {
            latency: crate::loadgen::engine::LatencyRecorder::try_new().unwrap(),
            sent: 1000,
            completed: 1000,
            denied: 0,
            errors: Default::default(),
            late_starts: 0,
            elapsed: Duration::from_secs(1),
        };
        let report = RunReport::new(settings, String::new(), &measurement, None);
        let run = |server, cpu| CompareRun {
            server,
            run: 1,
            report: report.clone(),
            cpu_s: Some(cpu),
        };
        let r = CompareReport {
            agreement: Vec::new(),
            runs: vec![
                run(Server::Iamlet, 0.05),
                run(Server::Cerbos, 0.5),
                run(Server::Iamlet, 0.07),
                run(Server::Cerbos, 0.6),
                run(Server::Iamlet, 0.06),
                run(Server::Cerbos, 0.4),
            ],
        };
        assert!((r.median_cpu_us(Server::Iamlet).unwrap() - 60.0).abs() < 1e-9);
        assert!((r.median_cpu_us(Server::Cerbos).unwrap() - 500.0).abs() < 1e-9);
        assert!((r.ratio().unwrap() - 500.0 / 60.0).abs() < 1e-9);
        assert!(r.to_string().contains("8.3× the decisions per core"));
    }
}
