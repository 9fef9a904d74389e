//! Issue #17, item 6, over the real processes: unused access findings from the usage a real
//! sidecar ships.
//!
//! `iamlet up` starts first with its control plane's clock 91 days behind the system's
//! (`--clock-offset`, the hook for tests), so the demo tenant and a role `idle` made then are
//! 91 days old once `up` starts again, on the same store, with the real clock. The demo's
//! printed commands then use alice's key and the role `reports-writer` through the sidecar,
//! whose usage reaches the control plane on the sync stream. The analyzer's findings list
//! `idle` as an unused role while `reports-writer`, used, is not one, and alice's used key
//! is not an unused key.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{banner_field as field, temp_dir, Up};

const ACCOUNT: &str = "111122223333";
const DAYS_91: &str = "-7862400";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
/// The sidecar ships usage every second here (`--usage-interval 1s`): a bound on a hang, not
/// a timing claim.
const SHIPPED: Duration = Duration::from_secs(60);

fn admin(dir: &std::path::Path, banner: &str, args: &[&str]) -> Output {
    let endpoint = format!(
        "http://{}",
        field(banner, "control plane (Admin, Sync)").trim_start_matches("http://")
    );
    Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args(["admin", "--endpoint", &endpoint, "--profile", "demo-admin"])
        .args(args)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials"))
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stop(mut up: Up) {
    let killed = Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(up.child.wait().unwrap().code(), Some(0));
}

/// Runs the demo's printed commands in order, as a user pasting them would (the exports of
/// the banner, then of each `--output env`).
fn run_demo_commands(banner: &str) {
    let mut env: Vec<(String, String)> = Vec::new();
    let set_exports = |env: &mut Vec<(String, String)>, text: &str| {
        for export in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export "))
        {
            if let Some((k, v)) = export.split_once('=') {
                env.retain(|(key, _)| key != k);
                env.push((k.to_owned(), v.to_owned()));
            }
        }
    };
    set_exports(&mut env, banner);
    for line in banner.lines().map(str::trim) {
        let command = match line.strip_prefix("eval \"$(") {
            Some(inner) => inner.strip_suffix(")\"").unwrap_or(inner),
            None if line.starts_with("iamlet ") => line,
            None => continue,
        };
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_iamlet"))
            .args(&args)
            .env_remove("AWS_SESSION_TOKEN")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        if command.contains("--output env") {
            set_exports(&mut env, &String::from_utf8_lossy(&out.stdout));
        }
    }
}

fn findings_of(json: &str, kind: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(json).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["findingType"] == kind)
        .map(|f| f["resource"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_unused_role_is_found_after_the_window_and_a_used_one_is_not() {
    let dir = temp_dir("unused", "roles");
    let role = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");

    // 91 days ago (by the control plane's clock): the demo tenant, and `idle`.
    let before = Up::spawn_with(&dir, &["--clock-offset", DAYS_91]);
    ok(&admin(
        &dir,
        &before.banner,
        &[
            "create-role",
            "--tenant",
            ACCOUNT,
            "--role-name",
            "idle",
            "--assume-role-policy-document",
            TRUST,
        ],
    ));
    stop(before);

    // Now: the demo's commands use alice's key and `reports-writer` through the sidecar.
    let up = Up::spawn_with(&dir, &["--usage-interval", "1s"]);
    let banner = up.banner.clone();
    run_demo_commands(&banner);
    let created = ok(&admin(
        &dir,
        &banner,
        &[
            "create-analyzer",
            "--tenant",
            ACCOUNT,
            "--analyzer-name",
            "unused",
            "--type",
            "ACCOUNT_UNUSED_ACCESS",
        ],
    ));
    let arn = serde_json::from_str::<Value>(&created).unwrap()["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        arn,
        format!("arn:aws:access-analyzer:us-east-1:{ACCOUNT}:analyzer/unused")
    );
    let list = |extra: &[&str]| {
        let mut args = vec![
            "list-findings-v2",
            "--tenant",
            ACCOUNT,
            "--analyzer-arn",
            &arn,
        ];
        args.extend_from_slice(extra);
        ok(&admin(&dir, &banner, &args))
    };
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/alice");
    let started = Instant::now();
    let listed = loop {
        let listed = list(&[]);
        let roles = findings_of(&listed, "UnusedIAMRole");
        let keys = findings_of(&listed, "UnusedIAMUserAccessKey");
        if !roles.contains(&role("reports-writer")) && !keys.contains(&alice) {
            break listed;
        }
        assert!(
            started.elapsed() < SHIPPED,
            "the sidecar's usage never reached the findings: {listed}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The role nobody used is an unused role, 91 days old with no last use.
    let roles = findings_of(&listed, "UnusedIAMRole");
    assert!(roles.contains(&role("idle")), "{listed}");
    // `reports-writer` is as old and analyzed: in use, its findings are about the permissions
    // it did not use.
    assert!(
        findings_of(&listed, "UnusedPermission").contains(&role("reports-writer")),
        "{listed}"
    );

    // The readable table.
    let table = list(&["--output", "table"]);
    assert!(table.contains("UnusedIAMRole"), "{table}");
    assert!(table.contains(&role("idle")), "{table}");
    assert!(!table.contains('{'), "the table shows no raw JSON: {table}");
    stop(up);
    let _ = std::fs::remove_dir_all(&dir);
}
