//! `iamlet bench`: the open-loop load generator, the no-op server and the latency plot.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::loadgen::{
    self, cerbos::CompareConfig, find_max, grpc, mix::DEFAULT_MIX, plot_svg, BenchError,
    ChurnConfig, Credentials, HttpRunConfig, Mix, Plan, RunConfig, RunReport, SearchConfig,
};

/// `iamlet bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Send requests to a sidecar at a fixed rate (open loop) and report latency percentiles
    /// measured from each request's intended send time.
    Run(Box<RunArgs>),
    /// Replay one HTTP/1.1 request (pre-signed by the caller: a SigV4 signature stays valid
    /// 15 minutes) at a fixed rate (open loop) and report latency percentiles: what a proxy
    /// such as Envoy with ext_authz adds in front of a service.
    Http(Box<HttpArgs>),
    /// Serve the sidecar's Authorizer and AssumeRole with fixed answers and no work: the
    /// floor to compare a sidecar with.
    NoopServer {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:7171")]
        listen: SocketAddr,
    },
    /// Compare iamlet's sidecar with the Cerbos PDP (issue 19, P9): put the same probes to
    /// both and stop unless they decide alike, then send both the same schedule in turn and
    /// report each server's CPU per decision.
    Compare(Box<CompareArgs>),
    /// Draw saved runs (`run --save`) as percentile curves in an SVG file.
    Plot {
        /// The SVG file to write.
        #[arg(long)]
        out: PathBuf,
        /// Runs saved with `iamlet bench run --save`.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
}

/// `iamlet bench compare`.
#[derive(Debug, Args)]
struct CompareArgs {
    /// iamlet's sidecar (its local gRPC API).
    #[arg(long, default_value = "http://127.0.0.1:7071")]
    iamlet: String,
    /// The Cerbos PDP's gRPC listener.
    #[arg(long, default_value = "http://127.0.0.1:3593")]
    cerbos: String,
    /// The sidecar's process id: its CPU time is read from /proc around each run.
    #[arg(long)]
    iamlet_pid: Option<u32>,
    /// Cerbos's process id.
    #[arg(long)]
    cerbos_pid: Option<u32>,
    /// The caller, a user ARN; Cerbos gets its name as the principal id.
    #[arg(long, default_value = "arn:aws:iam::111122223333:user/alice")]
    principal: String,
    /// The caller's IAM groups, which Cerbos gets as roles (comma-separated).
    #[arg(long, default_value = "developers", value_delimiter = ',')]
    roles: Vec<String>,
    /// The action of every timed request.
    #[arg(long, default_value = "s3:GetObject")]
    action: String,
    /// The resource of a hit; each miss appends `.miss-N` to it.
    #[arg(long, default_value = "arn:aws:s3:::demo-data/home/alice/notes.txt")]
    resource: String,
    /// Weights of authorize-hit and authorize-miss (the other kinds have no Cerbos equivalent).
    #[arg(long, default_value = "authorize-hit=1", value_parser = mix)]
    mix: Mix,
    /// Requests per second of each run.
    #[arg(long, default_value = "2000", value_parser = rate)]
    rate: f64,
    /// The measured part of each run.
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
    /// Sent before each measured part and not measured.
    #[arg(long, default_value = "2s", value_parser = duration)]
    warmup: Duration,
    /// Runs of each server, alternating.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    /// A request not answered within this fails.
    #[arg(long, default_value = "5s", value_parser = duration)]
    timeout: Duration,
    /// The generator's runtime threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn compare(args: &CompareArgs, out: &mut dyn Write) -> Result<bool, BenchError> {
    let config = CompareConfig {
        iamlet: args.iamlet.clone(),
        cerbos: args.cerbos.clone(),
        iamlet_pid: args.iamlet_pid,
        cerbos_pid: args.cerbos_pid,
        principal: args.principal.clone(),
        roles: args.roles.clone(),
        action: args.action.clone(),
        resource: args.resource.clone(),
        mix: args.mix.clone(),
        plan: Plan {
            rate: args.rate,
            warmup: args.warmup,
            duration: args.duration,
            concurrency: args.concurrency,
        },
        runs: args.runs,
        timeout: args.timeout,
    };
    let report = runtime(args.threads)?.block_on(loadgen::cerbos::compare(&config))?;
    let _ = if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )
    } else {
        write!(out, "{report}")
    };
    Ok(report.error_count() == 0)
}

/// `iamlet bench run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// The sidecar's local API (or a no-op server's): `http://HOST:PORT`, or `unix:PATH` for
    /// the socket of the sidecar's `--uds`.
    #[arg(long, default_value = "http://127.0.0.1:7071")]
    target: String,
    /// Requests per second (`2000`, `20k`); not with --find-max.
    #[arg(long, value_parser = rate)]
    rate: Option<f64>,
    /// The measured part (`10s`, `500ms`, `2m`); default 10s, or 3s per step with --find-max.
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// Sent before the measured part and not measured; default 2s, or 1s with --find-max.
    #[arg(long, value_parser = duration)]
    warmup: Option<Duration>,
    /// gRPC connections, used in turn.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Requests in flight at most; a request due while the limit is reached waits, and its
    /// wait counts in its latency.
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
    /// Weights of the request kinds: authorize-hit, authorize-miss, batch, assume-role.
    #[arg(long, default_value = DEFAULT_MIX, value_parser = mix)]
    mix: Mix,
    /// Requests in each BatchAuthorize.
    #[arg(long, default_value_t = 10)]
    batch_size: usize,
    /// Authorize this principal (an ARN) instead of the credentials' owner.
    #[arg(long)]
    principal: Option<String>,
    /// The access key id, for Authorize without --principal and for AssumeRole.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key_id: Option<String>,
    /// The secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
    /// The session token of temporary credentials.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    session_token: Option<String>,
    /// The action of every Authorize.
    #[arg(long, default_value = "s3:GetObject")]
    action: String,
    /// The resource of a hit; each miss appends `.miss-N` to it, each batch entry `.batch-N`.
    #[arg(long, default_value = "arn:aws:s3:::demo-data/home/alice/notes.txt")]
    resource: String,
    /// The role AssumeRole asks for.
    #[arg(long, default_value = "arn:aws:iam::111122223333:role/reports-writer")]
    role_arn: String,
    /// The run's name in reports and plots; default: the target.
    #[arg(long)]
    label: Option<String>,
    /// A request not answered within this fails (DeadlineExceeded).
    #[arg(long, default_value = "5s", value_parser = duration)]
    timeout: Duration,
    /// Threads of the generator's runtime (1: everything on one thread, for `taskset -c 1`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as JSON to this file (with --find-max: the best run).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Search the highest rate whose p99 is within --p99-bound-ms, with no error.
    #[arg(long)]
    find_max: bool,
    /// The p99 bound of --find-max, in milliseconds.
    #[arg(long, default_value_t = 0.5)]
    p99_bound_ms: f64,
    /// The first rate --find-max tries; it doubles from there.
    #[arg(long, default_value = "1000", value_parser = rate)]
    min_rate: f64,
    /// The highest rate --find-max tries.
    #[arg(long, default_value = "200k", value_parser = rate)]
    max_rate: f64,
    /// Rates --find-max tries at most.
    #[arg(long, default_value_t = 8)]
    max_steps: usize,
    /// Runs --find-max makes at a rate before it counts as failed (on a shared machine,
    /// another process can stall a run).
    #[arg(long, default_value_t = 1)]
    attempts: usize,
    /// Make one admin write per interval during the run through this control plane, so the
    /// sidecar applies a new snapshot while it is measured.
    #[arg(long)]
    churn_endpoint: Option<String>,
    /// The tenant the churn writes go to.
    #[arg(long, default_value = "111122223333")]
    churn_tenant: String,
    /// The user whose tag each churn write changes.
    #[arg(long, default_value = "bob")]
    churn_user: String,
    /// The profile (shared credentials file) the churn writes are made as; without it, the
    /// `AWS_*` variables or the default profile, as `iamlet admin` finds them.
    #[arg(long)]
    churn_profile: Option<String>,
    /// The interval between churn writes.
    #[arg(long, default_value = "1s", value_parser = duration)]
    churn_every: Duration,
}

/// `iamlet bench http`.
#[derive(Debug, Args)]
struct HttpArgs {
    /// The URL to request, `http://host:port/path?query`.
    #[arg(long)]
    url: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// A header sent with every request, `Name: value` (repeat for more).
    #[arg(long = "header", short = 'H', value_parser = header)]
    headers: Vec<(String, String)>,
    /// Requests per second (`2000`, `20k`).
    #[arg(long, value_parser = rate)]
    rate: f64,
    /// The measured part (`10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
    /// Sent before the measured part and not measured.
    #[arg(long, default_value = "2s", value_parser = duration)]
    warmup: Duration,
    /// Requests in flight at most (and so connections, one request in flight on each); a
    /// request due while the limit is reached waits, and its wait counts in its latency.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// A request not answered within this fails (DeadlineExceeded).
    #[arg(long, default_value = "5s", value_parser = duration)]
    timeout: Duration,
    /// The run's name in reports and plots; default: the URL.
    #[arg(long)]
    label: Option<String>,
    /// Threads of the generator's runtime (1: everything on one thread, for `taskset -c 1`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as JSON to this file (for `iamlet bench plot`).
    #[arg(long)]
    save: Option<PathBuf>,
}

fn header(text: &str) -> Result<(String, String), String> {
    loadgen::http::parse_header(text).map_err(|e| e.to_string())
}

fn rate(text: &str) -> Result<f64, String> {
    loadgen::parse_rate(text).map_err(|e| e.to_string())
}

fn duration(text: &str) -> Result<Duration, String> {
    loadgen::parse_duration(text).map_err(|e| e.to_string())
}

fn mix(text: &str) -> Result<Mix, String> {
    Mix::parse(text).map_err(|e| e.to_string())
}

/// Runs `iamlet bench`; false when `--find-max` found no passing rate.
pub(crate) fn run_bench(args: BenchArgs, out: &mut dyn Write) -> Result<bool, BenchError> {
    match args.command {
        BenchCommand::Run(args) => run(&args, out),
        BenchCommand::Http(args) => run_http(*args, out),
        BenchCommand::NoopServer { listen } => noop_server(listen, out),
        BenchCommand::Compare(args) => compare(&args, out),
        BenchCommand::Plot { out: svg, runs } => {
            let reports = runs
                .iter()
                .map(|p| RunReport::load(p))
                .collect::<Result<Vec<_>, _>>()?;
            std::fs::write(&svg, plot_svg(&reports)).map_err(|source| BenchError::Io {
                path: svg.clone(),
                source,
            })?;
            let _ = writeln!(
                out,
                "wrote {} ({} run{})",
                svg.display(),
                reports.len(),
                if reports.len() == 1 { "" } else { "s" }
            );
            Ok(true)
        }
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, BenchError> {
    super::serve::build_runtime(threads).map_err(BenchError::Runtime)
}

impl RunArgs {
    fn config(&self, find_max: bool) -> Result<RunConfig, BenchError> {
        let (duration, warmup) = if find_max {
            (Duration::from_secs(3), Duration::from_secs(1))
        } else {
            (Duration::from_secs(10), Duration::from_secs(2))
        };
        let rate = match (self.rate, find_max) {
            (Some(_), true) => {
                return Err(BenchError::Usage(
                    "--rate and --find-max exclude each other: the search chooses the rates".into(),
                ))
            }
            (Some(r), false) => r,
            (None, true) => self.min_rate,
            (None, false) => {
                return Err(BenchError::Usage(
                    "give --rate R (requests per second), or --find-max".into(),
                ))
            }
        };
        let credentials = match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => Some(Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: self.session_token.clone().unwrap_or_default(),
            }),
            _ => None,
        };
        let config = RunConfig {
            target: self.target.clone(),
            label: self.label.clone(),
            plan: Plan {
                rate,
                warmup: self.warmup.unwrap_or(warmup),
                duration: self.duration.unwrap_or(duration),
                concurrency: self.concurrency,
            },
            connections: self.connections,
            mix: self.mix.clone(),
            batch_size: self.batch_size,
            principal: self.principal.clone(),
            credentials,
            action: self.action.clone(),
            resource: self.resource.clone(),
            role_arn: self.role_arn.clone(),
            churn: match &self.churn_endpoint {
                Some(endpoint) => Some(ChurnConfig {
                    endpoint: endpoint.clone(),
                    tenant: self.churn_tenant.clone(),
                    user: self.churn_user.clone(),
                    every: self.churn_every,
                    credentials: crate::client::find_credentials(
                        self.churn_profile.as_deref(),
                        &|k| std::env::var(k).ok(),
                    )
                    .map_err(|e| BenchError::Usage(e.to_string()))?,
                }),
                None => None,
            },
            timeout: self.timeout,
        };
        config.validate()?;
        if self.churn_every.is_zero() {
            return Err(BenchError::Usage(
                "invalid --churn-every: expected an interval longer than zero".into(),
            ));
        }
        Ok(config)
    }
}

fn run(args: &RunArgs, out: &mut dyn Write) -> Result<bool, BenchError> {
    let config = args.config(args.find_max)?;
    let runtime = runtime(args.threads)?;
    if !args.find_max {
        let report = runtime.block_on(grpc::run(&config))?;
        if let Some(path) = &args.save {
            report.save(path)?;
        }
        let _ = if args.json {
            writeln!(out, "{}", report.to_json())
        } else {
            writeln!(out, "{report}")
        };
        return Ok(true);
    }
    if !(args.p99_bound_ms.is_finite() && args.p99_bound_ms > 0.0) {
        return Err(BenchError::Usage(format!(
            "invalid --p99-bound-ms {}: expected a positive number of milliseconds",
            args.p99_bound_ms
        )));
    }
    let search = SearchConfig {
        p99_bound: Duration::from_secs_f64(args.p99_bound_ms / 1e3),
        min_rate: args.min_rate,
        max_rate: args.max_rate,
        max_steps: args.max_steps,
        attempts: args.attempts,
    };
    search.validate()?;
    let json = args.json;
    let outcome = runtime.block_on(find_max(
        &search,
        |rate| {
            let mut step = config.clone();
            step.plan.rate = rate;
            step.label = Some(format!(
                "{} at {rate}/s",
                config.label.as_deref().unwrap_or(&config.target)
            ));
            async move { grpc::run(&step).await }
        },
        |step| {
            if !json {
                let r = &step.report;
                let l = &r.latency_us;
                let _ = writeln!(
                    out,
                    "{:>9.0}/s{}  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs  max {:>6} µs  achieved {:>9.1}/s  errors {}  late {}  {}",
                    step.rate,
                    if step.attempt > 1 { format!(" (attempt {})", step.attempt) } else { String::new() },
                    l.p50,
                    l.p99,
                    l.p999,
                    l.max,
                    r.achieved_rate,
                    r.error_count(),
                    r.late_starts,
                    if step.passed { "pass" } else { "FAIL" }
                );
            }
        },
    ))?;
    if let (Some(path), Some(best)) = (&args.save, outcome.best()) {
        best.report.save(path)?;
    }
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        );
    } else {
        match outcome.max_rate {
            Some(rate) => {
                let _ = writeln!(
                    out,
                    "max rate with p99 ≤ {} µs and no errors: {rate}/s",
                    outcome.p99_bound_us
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "no rate from {}/s met p99 ≤ {} µs without errors",
                    search.min_rate, outcome.p99_bound_us
                );
            }
        }
    }
    Ok(outcome.max_rate.is_some())
}

fn run_http(args: HttpArgs, out: &mut dyn Write) -> Result<bool, BenchError> {
    let config = HttpRunConfig {
        url: args.url,
        method: args.method,
        headers: args.headers,
        label: args.label,
        plan: Plan {
            rate: args.rate,
            warmup: args.warmup,
            duration: args.duration,
            concurrency: args.concurrency,
        },
        timeout: args.timeout,
    };
    let report = runtime(args.threads)?.block_on(loadgen::http::run(&config))?;
    if let Some(path) = &args.save {
        report.save(path)?;
    }
    let _ = if args.json {
        writeln!(out, "{}", report.to_json())
    } else {
        writeln!(out, "{report}")
    };
    Ok(true)
}

fn noop_server(listen: SocketAddr, out: &mut dyn Write) -> Result<bool, BenchError> {
    // As many worker threads as a sidecar starts with: the floor is measured on the same
    // stack.
    let runtime = runtime(usize::from(super::serve::SIDECAR_WORKER_THREADS))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| BenchError::Serve(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::Serve(format!("cannot listen on {listen}: {e}")))?;
        let _ = writeln!(
            out,
            "no-op server (Authorizer, SecurityTokenService.AssumeRole) on http://{addr}; Ctrl-C stops"
        );
        let _ = out.flush();
        loadgen::serve_noop(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })?;
    Ok(true)
}
