//! The `iamlet` command line.
//!
//! Every subcommand writes its results to a writer it is given, so tests drive them without
//! spawning processes; [`main`] binds them to stdout and stderr and maps results to exit codes.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod bench;
mod client;
mod config;
mod generate;
mod paginate;
mod render;
mod serve;
mod up;

use crate::policy::{ParseOptions, PolicyDocument, PolicyKind};
use crate::simulate::Vector;

/// iamlet: an IAM-compatible authorization and credentials sidecar.
#[derive(Debug, Parser)]
#[command(name = "iamlet", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a control plane and a sidecar on loopback with a demo tenant, and print how to
    /// call them.
    Up(up::UpArgs),
    /// Work with IAM policy documents.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run the control plane: tenants' IAM directories, the admin API and the snapshot stream.
    ControlPlane(Box<serve::ControlPlaneArgs>),
    /// Run a sidecar that follows the control plane and serves its tenants locally.
    Sidecar(Box<serve::SidecarArgs>),
    /// Manage tenants with the verbs and flags of `aws iam` (`create-user --tenant T
    /// --user-name alice`).
    Admin(admin::AdminArgs),
    /// Ask a sidecar whether a caller may perform an action on a resource.
    Authorize(client::AuthorizeArgs),
    /// Get a role session's credentials from a sidecar (`AssumeRole`, or
    /// `AssumeRoleWithWebIdentity` with a token file).
    AssumeRole(client::AssumeRoleArgs),
    /// Measure a running sidecar with an open-loop load generator (`bench run`), against the
    /// floor of a no-op server (`bench noop-server`), and plot the results (`bench plot`).
    Bench(bench::BenchArgs),
    /// Show a sidecar's readiness, applied tenant versions and stream state.
    Status {
        /// The sidecar's local API.
        #[arg(long, env = "IAMLET_SIDECAR", default_value = "http://127.0.0.1:7071")]
        sidecar: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate policy documents with IAM's rules; exit status 1 if any is invalid.
    Validate {
        /// The kind of policy: identity, resource, trust, boundary, session, scp, rcp or
        /// vpc-endpoint. Identity, boundary, SCP and RCP documents must be version 2012-10-17.
        #[arg(long, default_value = "identity", value_parser = parse_kind)]
        kind: PolicyKind,
        /// The files to validate; `-` reads standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `text` (one line per document and finding) or `json` (one JSON object per document,
        /// with Access Analyzer's `findings`).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
    /// Evaluate decision vectors (JSON lines) and compare with their expected decisions;
    /// exit status 1 if any fails.
    Simulate {
        /// The vectors file; `-` reads standard input.
        #[arg(long)]
        vectors: PathBuf,
    },
    /// Generate a least-privilege identity policy from what a principal was allowed to do,
    /// read from sidecar decision logs; exit status 1 if the window holds no allowed decision
    /// or `--verify` fails.
    Generate(generate::GenerateArgs),
}

fn parse_kind(text: &str) -> Result<PolicyKind, String> {
    text.parse()
        .map_err(|e: crate::policy::UnknownPolicyKindError| e.to_string())
}

/// Parses the process arguments and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = match config::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(e.report()),
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    let result = match cli.command {
        Command::ControlPlane(mut args) => {
            if let Some(action) = args.action.take() {
                return serve_exit(serve::run_control_plane_action(action));
            }
            return serve_exit(
                serve::ControlPlaneSettings::try_from(*args).and_then(serve::run_control_plane),
            );
        }
        Command::Sidecar(args) => {
            return serve_exit(serve::SidecarSettings::try_from(*args).and_then(serve::run_sidecar))
        }
        Command::Admin(args) => {
            return match admin::run_admin(args, &mut stdout.lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let _ = writeln!(stderr.lock(), "{e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Status { sidecar } => {
            return match client::run_status(&sidecar, &mut stdout.lock()) {
                Ok(ready) if ready => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    let _ = writeln!(stderr.lock(), "{e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Authorize(args) => {
            return match client::run_authorize(args, &mut stdout.lock()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    let _ = writeln!(stderr.lock(), "{e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::AssumeRole(args) => {
            return match client::run_assume_role(&args, &mut stdout.lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let _ = writeln!(stderr.lock(), "{e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Up(args) => return exit_on(up::run_up(&args, &mut stdout.lock()), 1),
        Command::Bench(args) => {
            return match bench::run_bench(args, &mut stdout.lock()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    let _ = writeln!(stderr.lock(), "iamlet: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Policy {
            command:
                PolicyCommand::Validate {
                    kind,
                    files,
                    output,
                },
        } => run_validate_with(
            kind,
            &files,
            output == "json",
            &mut stdout.lock(),
            &mut stderr.lock(),
        ),
        Command::Policy {
            command: PolicyCommand::Generate(args),
        } => generate::run_generate(&args, &mut stdout.lock(), &mut stderr.lock()),
        Command::Policy {
            command: PolicyCommand::Simulate { vectors },
        } => match open_input(&vectors) {
            Ok(input) => run_simulate(input, &mut stdout.lock()),
            Err(e) => {
                let _ = writeln!(
                    stderr.lock(),
                    "iamlet: cannot read `{}`: {e}",
                    vectors.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // A closed stdout (`| head`) is not an error worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(stderr.lock(), "iamlet: {e}");
            ExitCode::from(2)
        }
    }
}

/// Exit status 0; 64 for invalid configuration; 1 for a failure while serving.
fn serve_exit(result: Result<(), serve::ServeError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr().lock(), "iamlet: {e}");
            ExitCode::from(if e.is_configuration() {
                config::EXIT_CONFIG
            } else {
                1
            })
        }
    }
}

/// Exit status 0, or `code` after printing the error.
fn exit_on<E: std::fmt::Display>(result: Result<(), E>, code: u8) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr().lock(), "iamlet: {e}");
            ExitCode::from(code)
        }
    }
}

fn open_input(path: &PathBuf) -> io::Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(io::BufReader::new(io::stdin())))
    } else {
        Ok(Box::new(io::BufReader::new(std::fs::File::open(path)?)))
    }
}

/// `iamlet policy validate`: one line per document, then one per finding; true when every
/// document is valid and has no `ERROR` finding.
pub fn run_validate(
    kind: PolicyKind,
    files: &[PathBuf],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    run_validate_with(kind, files, false, out, err)
}

/// [`run_validate`], or with `json` one JSON object per document: `file`, `valid`, `error`
/// (AWS's `code`, `message`, `location`) when invalid, and Access Analyzer's `findings`.
pub fn run_validate_with(
    kind: PolicyKind,
    files: &[PathBuf],
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    let mut all_valid = true;
    for file in files {
        let name = file.display();
        let text = if file.as_os_str() == "-" {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text).map(|_| text)
        } else {
            std::fs::read_to_string(file)
        };
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                writeln!(err, "{name}: cannot read: {e}")?;
                all_valid = false;
                continue;
            }
        };
        let parsed = PolicyDocument::parse_with(&text, ParseOptions::for_kind(kind));
        let findings = crate::policy::findings::validate_kind(&text, kind);
        if parsed.is_err() || crate::policy::findings::has_error(&findings) {
            all_valid = false;
        }
        if json {
            let mut record = serde_json::json!({
                "file": name.to_string(),
                "valid": parsed.is_ok(),
                "findings": findings.iter().map(|f| f.to_json()).collect::<Vec<_>>(),
            });
            if let (Err(e), Some(fields)) = (&parsed, record.as_object_mut()) {
                fields.insert(
                    "error".into(),
                    serde_json::json!({
                        "code": e.code().to_string(),
                        "message": e.message(),
                        "location": e.location(),
                    }),
                );
            }
            write_json(out, &record)?;
            continue;
        }
        match parsed {
            Ok(doc) => writeln!(
                out,
                "{name}: valid {kind} policy ({} statement{})",
                doc.statements.len(),
                if doc.statements.len() == 1 { "" } else { "s" }
            )?,
            Err(e) => match e.location() {
                Some(at) => writeln!(out, "{name}: {}: {} (at {at})", e.code(), e.message())?,
                None => writeln!(out, "{name}: {}: {}", e.code(), e.message())?,
            },
        }
        for finding in &findings {
            writeln!(out, "{name}: {finding}")?;
        }
    }
    Ok(all_valid)
}

/// `iamlet policy simulate`: one JSON object per vector, then `N passed, M failed`; true when
/// nothing failed. A line that cannot be read is reported with its number and counts as failed.
pub fn run_simulate(input: Box<dyn BufRead>, out: &mut dyn Write) -> io::Result<bool> {
    let (mut passed, mut failed) = (0usize, 0usize);
    for (number, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match Vector::parse(&line) {
            Ok(vector) => {
                let result = vector.run();
                match result.pass {
                    Some(true) => passed += 1,
                    Some(false) => failed += 1,
                    None => {}
                }
                write_json(out, &result)?;
            }
            Err(e) => {
                failed += 1;
                write_json(
                    out,
                    &serde_json::json!({ "line": number + 1, "error": e.to_string(), "pass": false }),
                )?;
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(failed == 0)
}

fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}
