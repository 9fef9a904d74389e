//! The `iamlet` binary, run as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn iamlet(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn corpus(name: &str) -> String {
    format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("iamlet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
const BAD: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringLike":[]}}]}"#;

#[test]
fn validate_reports_each_file_and_fails_on_any_invalid_one() {
    let good = temp_file("good.json", GOOD);
    let bad = temp_file("bad.json", BAD);
    let out = iamlet(
        &[
            "policy",
            "validate",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("good.json: valid identity policy (1 statement)"),
        "{text}"
    );
    assert!(
        text.contains("bad.json: MalformedPolicyDocument: Syntax errors in policy. (at Statement[1].Condition.StringLike)"),
        "{text}"
    );
    let out = iamlet(&["policy", "validate", good.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn validate_reads_stdin_and_applies_the_kind() {
    let trust_with_resource = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}"#;
    let out = iamlet(
        &["policy", "validate", "--kind", "trust", "-"],
        Some(trust_with_resource),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("-: MalformedPolicyDocument: Has prohibited field Resource."),
        "{}",
        stdout(&out)
    );
    let out = iamlet(
        &["policy", "validate", "--kind", "resource", "-"],
        Some(GOOD),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("Missing required field Principal."));
}

#[test]
fn validate_refuses_unknown_kinds_and_missing_files() {
    let out = iamlet(&["policy", "validate", "--kind", "bucket", "x.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown policy kind `bucket`"));
    let out = iamlet(&["policy", "validate", "/nonexistent/policy.json"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/policy.json: cannot read"));
}

#[test]
fn simulate_runs_the_corpus_vectors() {
    let out = iamlet(
        &["policy", "simulate", "--vectors", &corpus("vectors.jsonl")],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"85 passed, 0 failed"));
    assert_eq!(lines.len(), 86);
    for line in &lines[..85] {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["id"].is_string() && v["reason"].is_string(), "{line}");
        assert!(
            ["Allow", "ExplicitDeny", "ImplicitDeny"].contains(&v["decision"].as_str().unwrap())
        );
        assert_eq!(v["pass"], true);
    }
}

#[test]
fn simulate_reports_bad_lines_failures_and_vectors_without_expectation() {
    let vector = |id: &str, expected: Option<&str>| {
        let mut v = serde_json::json!({
            "id": id,
            "policies": {"identity": [serde_json::from_str::<serde_json::Value>(GOOD).unwrap()]},
            "request": {"principal": "arn:aws:iam::111122223333:user/alice", "action": "s3:GetObject",
                        "resource": "arn:aws:s3:::b/k", "resource_account": "111122223333", "context": {}}
        });
        if let Some(e) = expected {
            v["expected"] = e.into();
        }
        v.to_string()
    };
    let input = [
        vector("ok", Some("Allow")),
        "this is not json".to_owned(),
        vector("wrong", Some("ExplicitDeny")),
        vector("open", None),
    ]
    .join("\n");
    let out = iamlet(&["policy", "simulate", "--vectors", "-"], Some(&input));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .take(4)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["pass"], true);
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[1]["pass"], false);
    assert_eq!(lines[2]["decision"], "Allow");
    assert_eq!(lines[2]["pass"], false);
    assert_eq!(lines[3]["decision"], "Allow");
    assert!(lines[3].get("pass").is_none_or(serde_json::Value::is_null));
    assert_eq!(text.lines().last(), Some("1 passed, 2 failed"));
}

/// The README's quickstart, as a newcomer runs it: `iamlet up`, then the commands it prints,
/// each with the decision the demo tenant's policies give; SIGTERM stops it cleanly.
#[test]
fn up_serves_the_demo_tenant_and_its_printed_commands_work() {
    use std::io::{BufRead, BufReader};
    let mut up = Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args([
            "up",
            "--control-plane-listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--control-plane-http-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C stops");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    assert!(text.contains("Tenant 111122223333 is loaded"), "{text}");
    // Both HTTP edges answer at the addresses printed.
    for edge in ["control plane HTTP", "sidecar HTTP"] {
        let addr = text
            .lines()
            .find(|l| l.trim_start().starts_with(edge))
            .and_then(|l| l.split("http://").nth(1))
            .unwrap_or_else(|| panic!("no {edge} address in {text}"));
        let ready = http_get(addr.trim(), "/readyz");
        assert!(ready.starts_with("HTTP/1.1 200"), "{edge}: {ready}");
        let metrics = http_get(addr.trim(), "/metrics");
        assert!(metrics.contains("# TYPE"), "{edge}: {metrics}");
    }
    let mut env: Vec<(String, String)> = Vec::new();
    let set_exports = |env: &mut Vec<(String, String)>, text: &str| {
        for export in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export "))
        {
            let (k, v) = export.split_once('=').unwrap();
            env.retain(|(key, _)| key != k);
            env.push((k.to_owned(), v.to_owned()));
        }
    };
    set_exports(&mut env, &text);
    assert!(env
        .iter()
        .any(|(k, v)| k == "AWS_ACCESS_KEY_ID" && v.starts_with("AKIA")));
    let run = |env: &[(String, String)], command: &str| {
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_iamlet"))
            .args(&args)
            .env_remove("AWS_SESSION_TOKEN")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        (
            out.status.code(),
            stdout(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let commands: Vec<&str> = printed
        .iter()
        .filter(|l| l.starts_with("  iamlet ") || l.starts_with("  eval "))
        .map(|l| l.trim())
        .collect();
    assert_eq!(commands.len(), 8, "{text}");
    let expect = [
        (Some(0), "\"Decision\": \"ALLOW\""),
        (Some(1), "\"Decision\": \"EXPLICIT_DENY\""),
        (Some(0), "\"Decision\": \"ALLOW\""),
        (Some(0), "export AWS_SESSION_TOKEN=iamlet2.111122223333."),
        (Some(0), "assumed-role/reports-writer/demo"),
        (
            Some(0),
            "\"SubjectFromWebIdentityToken\": \"system:serviceaccount:demo:reports-reader\"",
        ),
        (Some(0), "\"UserName\": \"admin\""),
        (Some(0), "\"Action\": \"CreateAccessKey\""),
    ];
    for (command, (code, needle)) in commands.iter().zip(expect) {
        let command = match command.strip_prefix("eval \"$(") {
            Some(inner) => inner.strip_suffix(")\"").unwrap(),
            None => command,
        };
        let (status, out, err) = run(&env, command);
        assert_eq!(status, code, "{command}\n{out}{err}");
        assert!(
            out.contains(needle),
            "{command}: expected {needle}\n{out}{err}"
        );
        if command.contains("--output env") {
            set_exports(&mut env, &out);
        }
    }
    // The same admin call with the role session the environment now holds: the session's
    // role has no IAM permissions, so the admin API refuses it, as AWS's message says.
    let admin = commands.iter().find(|c| c.contains("list-users")).unwrap();
    let as_session = admin.replace(" --profile demo-admin", "");
    let (status, out, err) = run(&env, &as_session);
    assert_eq!(status, Some(254), "{as_session}\n{out}{err}");
    assert!(
        err.contains(
            "An error occurred (AccessDenied) when calling the ListUsers operation: \
                      User: arn:aws:sts::111122223333:assumed-role/reports-writer/demo is not \
                      authorized to perform: iam:ListUsers on resource: *"
        ),
        "{err}"
    );
    let dir = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("decision log"))
        .map(|p| {
            std::path::PathBuf::from(p.trim())
                .parent()
                .unwrap()
                .to_owned()
        })
        .unwrap();
    let log = std::fs::read_to_string(dir.join("decisions.log")).unwrap();
    assert!(log.lines().count() >= 5, "{log}");
    for secret in env
        .iter()
        .filter(|(k, _)| k != "AWS_ACCESS_KEY_ID")
        .map(|(_, v)| v)
    {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the decision log"
        );
    }
    let killed = Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!dir.exists(), "the temporary data directory is removed");
}

/// Invalid configuration never starts a half-configured process: exit status 64 and a message
/// that names the problem.
#[test]
fn invalid_sidecar_configuration_exits_64() {
    // Without trust keys (or the loud opt-out) a sidecar does not start.
    let out = iamlet(&["sidecar"], None);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--snapshot-keys"));
    let empty = temp_file("no-keys.pub", "# no keys\n");
    let out = iamlet(
        &["sidecar", "--snapshot-keys", empty.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key is accepted"));
    let out = iamlet(
        &[
            "sidecar",
            "--insecure-unsigned-snapshots",
            "--max-serve-stale",
            "soon",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
    let config = temp_file("bad-config.yaml", "max-stale: 1h\n");
    let out = iamlet(
        &[
            "sidecar",
            "--insecure-unsigned-snapshots",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key `max-stale`"));
    let out = iamlet(
        &[
            "sidecar",
            "--insecure-unsigned-snapshots",
            "--max-serve-stale",
            "1m",
            "--max-issue-stale",
            "1h",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-issue-stale"));
    let out = iamlet(
        &[
            "sidecar",
            "--insecure-unsigned-snapshots",
            "--tenants",
            "12",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(64));
}

/// SIGTERM: the sidecar reports not ready, drains, and exits 0 even with its control plane
/// unreachable and a stream retrying; on two runtime threads (the multi-thread scheduler) and
/// on one (the current-thread scheduler, a sidecar's default).
#[test]
fn a_sidecar_stops_cleanly_on_sigterm() {
    for threads in ["2", "1"] {
        sidecar_stops_cleanly_on_sigterm(threads);
    }
}

fn sidecar_stops_cleanly_on_sigterm(threads: &str) {
    let state = std::env::temp_dir().join(format!(
        "iamlet-cli-sigterm-{threads}-{}",
        std::process::id()
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args([
            "sidecar",
            // No control plane to sign anything: this test is about the drain.
            "--insecure-unsigned-snapshots",
            "--control-plane",
            "http://127.0.0.1:9",
            "--tenants",
            "111122223333",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--drain-delay",
            "100ms",
            "--state-dir",
            state.to_str().unwrap(),
            "--worker-threads",
            threads,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the sidecar did not exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned();
    assert_eq!(status.code(), Some(0), "{threads} threads: {stderr}");
    assert!(stderr.contains("draining"), "{threads} threads: {stderr}");
    // Plain logs to a pipe, as a log collector reads them: no terminal colour codes.
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escapes in a piped log: {stderr:?}"
    );
}

/// A control plane process on first start: it makes its operator key and sealing key (owner
/// only), the operator creates a tenant with `iamlet admin` and sees its root key once, and a
/// client that keeps failing to authenticate is throttled and counted in `/metrics`.
#[test]
fn a_control_plane_secures_its_admin_api_from_the_first_start() {
    let data = std::env::temp_dir().join(format!("iamlet-cli-secure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (listen, metrics) = (free(), free());
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args(["control-plane", "--listen", &listen.to_string()])
        .args(["--http-listen", &metrics.to_string(), "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let credentials = data.join("operator-credentials");
    let admin = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_iamlet"))
            .args(["admin", "--endpoint", &format!("http://{listen}")])
            .args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let created = loop {
        let out = admin(
            &[
                "--profile",
                "iamlet-operator",
                "create-tenant",
                "--account-id",
                "123456789012",
            ],
            &[],
        );
        if out.status.success() || started.elapsed() > std::time::Duration::from_secs(20) {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let root_id = created["RootAccessKey"]["AccessKeyId"].as_str().unwrap();
    let root_secret = created["RootAccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap();
    #[cfg(unix)]
    for file in ["operator-credentials", "secrets.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // The root key works from the environment, as the AWS CLI's would; the tenant is the
    // key's own account.
    let root_env = [
        ("AWS_ACCESS_KEY_ID", root_id),
        ("AWS_SECRET_ACCESS_KEY", root_secret),
    ];
    let users = admin(&["list-users"], &root_env);
    assert!(users.status.success(), "{users:?}");

    // Ten failures from one source, then even the right key is refused for a while.
    let wrong = [
        ("AWS_ACCESS_KEY_ID", root_id),
        (
            "AWS_SECRET_ACCESS_KEY",
            "0000000000000000000000000000000000000000",
        ),
    ];
    for _ in 0..10 {
        let out = admin(&["list-users"], &wrong);
        assert_eq!(out.status.code(), Some(254));
        assert!(String::from_utf8_lossy(&out.stderr).contains("(SignatureDoesNotMatch)"));
    }
    let throttled = admin(&["list-users"], &root_env);
    assert_eq!(throttled.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&throttled.stderr).contains("(Throttling)"),
        "{throttled:?}"
    );
    let body = http_get(&metrics.to_string(), "/metrics");
    assert!(
        body.contains("iamlet_admin_auth_failures_total 10\n"),
        "{body}"
    );
    assert!(
        body.contains("iamlet_admin_auth_throttled_total 1\n"),
        "{body}"
    );

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("operators iamlet-operator"), "{log}");
    assert!(!log.contains(root_secret), "a secret reached the log");
    let _ = std::fs::remove_dir_all(&data);
}

/// The whole HTTP/1.1 response to `GET path` on `addr`.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// `iamlet up --data-dir D` starts again on the directory of an earlier run: the tenant is kept
/// as it was left (a user added since is still there), and the credentials it prints work.
#[test]
fn up_starts_again_on_its_data_directory() {
    use super::support::banner_field as field;
    let dir = super::support::temp_dir("cli", "up-again");
    let start = || {
        let up = super::support::Up::spawn(&dir);
        (up.child, up.banner)
    };
    let admin = |text: &str, args: &[&str]| {
        let endpoint = format!(
            "http://{}",
            field(text, "control plane (Admin, Sync)").trim_start_matches("http://")
        );
        Command::new(env!("CARGO_BIN_EXE_iamlet"))
            .args(["admin", "--endpoint", &endpoint, "--profile", "demo-admin"])
            .args(args)
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials"))
            .output()
            .unwrap()
    };
    let (mut first, text) = start();
    let made = admin(
        &text,
        &[
            "create-user",
            "--tenant",
            "111122223333",
            "--user-name",
            "carol",
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // A misspelled option is refused before any call, as the AWS CLI refuses it (exit 252),
    // and help is printed offline: neither creates the user.
    let typo = admin(
        &text,
        &[
            "create-user",
            "--tenant",
            "111122223333",
            "--user-name",
            "erin",
            "--permissions-boundry",
            "arn:aws:iam::aws:policy/ViewOnlyAccess",
        ],
    );
    assert_eq!(typo.status.code(), Some(252), "{typo:?}");
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains(
            "Unknown options: --permissions-boundry (did you mean --permissions-boundary?)"
        ),
        "{typo:?}"
    );
    let help = admin(&text, &["create-user", "--user-name", "erin", "--help"]);
    assert!(help.status.success(), "{help:?}");
    assert!(
        stdout(&help).contains("--permissions-boundary (string"),
        "{}",
        stdout(&help)
    );
    let erin = admin(
        &text,
        &[
            "get-user",
            "--tenant",
            "111122223333",
            "--user-name",
            "erin",
        ],
    );
    assert_eq!(erin.status.code(), Some(254), "{erin:?}");
    assert!(
        String::from_utf8_lossy(&erin.stderr).contains("(NoSuchEntity)"),
        "{erin:?}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    for _ in 0..2 {
        let (mut again, text) = start();
        let listed = admin(&text, &["list-users", "--tenant", "111122223333"]);
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        assert!(stdout(&listed).contains("\"carol\""), "{}", stdout(&listed));
        // Alice's printed key is the one that works now.
        let sidecar = field(&text, "sidecar (Authorizer, SecurityTokenService, Status)");
        let decided = Command::new(env!("CARGO_BIN_EXE_iamlet"))
            .args([
                "authorize",
                "--sidecar",
                &sidecar,
                "--action",
                "s3:PutObject",
            ])
            .args(["--resource", "arn:aws:s3:::demo-data/home/alice/notes.txt"])
            .env(
                "AWS_ACCESS_KEY_ID",
                field(&text, "export AWS_ACCESS_KEY_ID="),
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                field(&text, "export AWS_SECRET_ACCESS_KEY="),
            )
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .unwrap();
        assert!(
            stdout(&decided).contains("\"Decision\": \"ALLOW\""),
            "{}{}",
            stdout(&decided),
            String::from_utf8_lossy(&decided.stderr)
        );
        again.kill().unwrap();
        again.wait().unwrap();
    }
}

/// `iamlet authorize` finds credentials as the AWS CLI does, against a running `iamlet up`:
/// `--profile` from the shared credentials file before the environment's keys, `AWS_PROFILE`
/// naming a config profile whose `credential_process` is `iamlet assume-role --output
/// credential-process` (the round trip), a failing helper's stderr passed through, and a
/// sidecar address without a scheme.
#[test]
fn authorize_reads_profiles_config_and_credential_process() {
    let dir = super::support::temp_dir("cli", "credential-chain");
    let mut up = super::support::Up::spawn(&dir.join("up"));
    let field = |prefix: &str| up.field(prefix);
    // HOST:PORT, without the scheme `up` prints.
    let sidecar = field("sidecar (Authorizer, SecurityTokenService, Status)")
        .trim_start_matches("http://")
        .to_owned();
    let credentials = dir.join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[alice]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            field("export AWS_ACCESS_KEY_ID="),
            field("export AWS_SECRET_ACCESS_KEY=")
        ),
    )
    .unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile writer]\ncredential_process = \"{}\" assume-role --sidecar {sidecar} \
             --profile alice --role-arn arn:aws:iam::111122223333:role/reports-writer \
             --role-session-name proc --tag project=q4 --output credential-process\n\
             [profile broken]\ncredential_process = sh -c 'echo helper-said-no >&2; exit 7'\n",
            env!("CARGO_BIN_EXE_iamlet")
        ),
    )
    .unwrap();
    let authorize = |env: &[(&str, &str)], args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_iamlet"))
            .arg("authorize")
            .args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("IAMLET_SIDECAR")
            .env("HOME", &dir)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_CONFIG_FILE", &config)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), all)
    };
    let wrong_keys = [
        ("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1"),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
    ];
    let notes = [
        "--sidecar",
        sidecar.as_str(),
        "--action",
        "s3:PutObject",
        "--resource",
        "arn:aws:s3:::demo-data/home/alice/notes.txt",
    ];
    // --profile beats the environment's keys.
    let (code, out) = authorize(&wrong_keys, &[&["--profile", "alice"][..], &notes].concat());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"Decision\": \"ALLOW\""), "{out}");
    assert!(out.contains("user/alice"), "{out}");
    // Without --profile the environment's keys are used (and are unknown to the sidecar).
    let (code, out) = authorize(&wrong_keys, &notes);
    assert_ne!(code, Some(0), "{out}");
    assert!(!out.contains("user/alice"), "{out}");
    // AWS_PROFILE names a config profile whose credential_process is iamlet itself.
    let (code, out) = authorize(
        &[("AWS_PROFILE", "writer")],
        &[
            "--sidecar",
            &sidecar,
            "--action",
            "s3:PutObject",
            "--resource",
            "arn:aws:s3:::demo-data/reports/q4/summary.csv",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("assumed-role/reports-writer/proc"), "{out}");
    // A failing helper: its stderr passes through, the error names the profile.
    let (code, out) = authorize(&[], &[&["--profile", "broken"][..], &notes].concat());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("helper-said-no"), "{out}");
    assert!(
        out.contains("profile `broken`: credential_process failed"),
        "{out}"
    );
    // A principal ARN needs no credentials at all.
    let (code, out) = authorize(
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
        ],
        &[
            "--sidecar",
            &sidecar,
            "--principal",
            "arn:aws:iam::111122223333:user/alice",
            "--action",
            "s3:PutObject",
            "--resource",
            "arn:aws:s3:::demo-data/home/alice/notes.txt",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    // A sidecar URL that cannot be one says why, before any connection.
    let (code, out) = authorize(
        &[],
        &["--sidecar", "ftp://127.0.0.1:1", "--action", "s3:GetObject"],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("--sidecar `ftp://127.0.0.1:1`: the scheme `ftp` is not http or https"),
        "{out}"
    );
    up.child.kill().unwrap();
    up.child.wait().unwrap();
}
