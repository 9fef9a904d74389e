//! `iamlet policy generate`: a least-privilege identity policy from a principal's allowed
//! decisions in sidecar decision logs (the source with resources, as CloudTrail is for IAM
//! Access Analyzer).
//!
//! A line that is not a decision record (not JSON, a field missing, a time that does not
//! parse, a field the log truncated) is reported on standard error with its file and line
//! number and skipped: a decision log legitimately holds such a line after a crash tore a
//! write, and refusing the whole log for it would make the command useless exactly when the
//! log is older than the crash. The summary counts what was skipped, so nothing is silent.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::authz::generate::{self, GenerateOptions, DEFAULT_GENERALISE_AT};
use crate::authz::Outcome;
use crate::policy::{parse_policy_date, PolicyDocument, PolicyKind, SizeQuota, Timestamp};
use crate::sidecar::decision_log::TRUNCATED_MARK;

/// `iamlet policy generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// The principal whose activity is read: a user's or role's ARN (a role's ARN also takes
    /// its sessions, `arn:aws:sts::ACCOUNT:assumed-role/ROLE/*`).
    #[arg(long)]
    principal: String,
    /// The window's start, inclusive: ISO 8601 (`2026-12-03T15:00:00Z`) or epoch seconds;
    /// default: the oldest record.
    #[arg(long, value_parser = parse_time)]
    start_time: Option<Timestamp>,
    /// The window's end, exclusive; default: after the newest record.
    #[arg(long, value_parser = parse_time)]
    end_time: Option<Timestamp>,
    /// Replay every allowed decision of the window against the generated policy and check
    /// the policy with `iamlet policy validate`'s rules; exit status 1, naming each decision,
    /// if any is not allowed or the policy is invalid.
    #[arg(long)]
    verify: bool,
    /// Generalise a variable of a resource type's ARN format (the object of `bucket/object`)
    /// to `*` once this many distinct values of it were seen with all else equal; 0 never
    /// generalises.
    #[arg(long, default_value_t = DEFAULT_GENERALISE_AT)]
    generalise_at: usize,
    /// The decision log files (rotated ones too, in any order); `-` reads standard input.
    #[arg(required = true)]
    logs: Vec<PathBuf>,
}

/// The fields of a decision record this command reads.
#[derive(Debug, serde::Deserialize)]
struct LoggedDecision {
    time: String,
    operation: String,
    principal: String,
    action: String,
    resource: String,
    decision: String,
}

/// Where a decision was read, for messages.
#[derive(Debug, Clone)]
struct Place {
    file: Arc<str>,
    line: usize,
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    parse_policy_date(text)
        .ok_or_else(|| format!("`{text}` is not an ISO 8601 time or a number of epoch seconds"))
}

/// Runs the command; `Ok(false)` (exit status 1) when the window holds no allowed decision or
/// verification fails.
pub(crate) fn run_generate(
    args: &GenerateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    if let (Some(start), Some(end)) = (args.start_time, args.end_time) {
        if start >= end {
            writeln!(
                err,
                "iamlet: the window is empty: --start-time {start} is not before --end-time {end}"
            )?;
            return Ok(false);
        }
    }
    // Distinct (principal, action, resource) → where it was first seen.
    let mut allowed: BTreeMap<(String, String, String), Place> = BTreeMap::new();
    let (mut read, mut skipped) = (0usize, 0usize);
    for path in &args.logs {
        let file: Arc<str> = path.display().to_string().into();
        let input = super::open_input(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read `{file}`: {e}")))?;
        for (number, line) in input.lines().enumerate() {
            let line =
                line.map_err(|e| io::Error::new(e.kind(), format!("cannot read `{file}`: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            read += 1;
            let place = Place {
                file: Arc::clone(&file),
                line: number + 1,
            };
            let record = match read_record(&line) {
                Ok(record) => record,
                Err(reason) => {
                    skipped += 1;
                    writeln!(err, "{}:{}: skipped: {reason}", place.file, place.line)?;
                    continue;
                }
            };
            let (time, record) = record;
            if record.decision != "Allow"
                || !generate::principal_matches(&args.principal, &record.principal)
                || args.start_time.is_some_and(|start| time < start)
                || args.end_time.is_some_and(|end| time >= end)
                // Needs no permission: nothing to grant.
                || record.action.eq_ignore_ascii_case("sts:GetCallerIdentity")
                || record.operation == "GetCallerIdentity"
            {
                continue;
            }
            allowed
                .entry((record.principal, record.action, record.resource))
                .or_insert(place);
        }
    }
    let window = describe_window(args.start_time, args.end_time);
    if allowed.is_empty() {
        writeln!(
            err,
            "iamlet: no allowed decision of `{}` {window} in {read} record{} read; nothing to generate a policy from",
            args.principal,
            plural(read)
        )?;
        return Ok(false);
    }

    let describe: &dyn generate::DescribeAction = match crate::policy::catalog::catalog() {
        Ok(catalog) => catalog,
        Err(e) => {
            writeln!(
                err,
                "iamlet: the action catalogue is unavailable ({e}); actions and resources are kept as seen"
            )?;
            &generate::WithoutCatalogue
        }
    };
    let options = GenerateOptions {
        generalise_at: args.generalise_at,
    };
    let policy = match generate::generate(
        allowed
            .keys()
            .map(|(_, action, resource)| (action.as_str(), resource.as_str())),
        describe,
        options,
    ) {
        Ok(policy) => policy,
        Err(e) => {
            writeln!(err, "iamlet: {e}")?;
            return Ok(false);
        }
    };
    let text = policy.to_pretty();
    writeln!(out, "{text}")?;
    writeln!(
        err,
        "generated {} statement{} from {} allowed action and resource pair{} of `{}` {window} ({read} record{} read, {skipped} skipped)",
        policy.document.statements.len(),
        plural(policy.document.statements.len()),
        policy.pairs,
        plural(policy.pairs),
        args.principal,
        plural(read),
    )?;
    let valid = PolicyDocument::parse(&text, PolicyKind::Identity);
    if let Err(e) = &valid {
        // Too much activity for one managed policy, most likely: say so rather than leave it
        // to the attach call.
        writeln!(
            err,
            "iamlet: the generated policy is not a valid managed policy: {}: {} (a managed policy holds {} characters without whitespace)",
            e.code(),
            e.message(),
            SizeQuota::MANAGED_POLICY.limit
        )?;
    }
    if !args.verify {
        return Ok(true);
    }
    let compiled = Arc::new(policy.compile("generated"));
    let mut failed = usize::from(valid.is_err());
    for ((principal, action, resource), place) in &allowed {
        let outcome = generate::replay(&compiled, principal, action, resource);
        let problem = match outcome {
            Ok(Outcome::Allow) => continue,
            Ok(outcome) => outcome.as_str().to_owned(),
            Err(e) => e.to_string(),
        };
        failed += 1;
        writeln!(
            err,
            "{}:{}: not allowed by the generated policy ({problem}): `{action}` on `{resource}` by `{principal}`",
            place.file, place.line
        )?;
    }
    if failed == 0 {
        writeln!(
            err,
            "verified: the policy is valid and allows all {} allowed decision{} of the window",
            allowed.len(),
            plural(allowed.len())
        )?;
    }
    Ok(failed == 0)
}

/// The record and its time, or why the line is not one.
fn read_record(line: &str) -> Result<(Timestamp, LoggedDecision), String> {
    let record: LoggedDecision =
        serde_json::from_str(line).map_err(|e| format!("not a decision record: {e}"))?;
    let time = parse_policy_date(&record.time)
        .ok_or_else(|| format!("the time `{}` does not parse", record.time))?;
    for (name, value) in [
        ("principal", &record.principal),
        ("action", &record.action),
        ("resource", &record.resource),
    ] {
        if value.ends_with(TRUNCATED_MARK) {
            return Err(format!("the {name} was truncated by the log"));
        }
    }
    Ok((time, record))
}

fn describe_window(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    match (start, end) {
        (None, None) => "in the whole log".to_owned(),
        (Some(start), None) => format!("from {start}"),
        (None, Some(end)) => format!("before {end}"),
        (Some(start), Some(end)) => format!("from {start} to {end}"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests;
