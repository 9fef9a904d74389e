use super::*;

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const ROLE: &str = "arn:aws:iam::111122223333:role/team/app";

fn record(time: &str, principal: &str, action: &str, resource: &str, decision: &str) -> String {
    serde_json::json!({
        "time": time,
        "request_id": "r",
        "operation": "Authorize",
        "tenant": "111122223333",
        "principal": principal,
        "action": action,
        "resource": resource,
        "decision": decision,
        "error_code": null,
        "policy_type": null,
        "statement": null,
        "snapshot_version": "1.1",
        "latency_us": 3,
        "cached": false,
    })
    .to_string()
}

fn write_log(name: &str, lines: &[String]) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("iamlet-generate-{name}-{}.log", std::process::id()));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn args(principal: &str, logs: Vec<PathBuf>) -> GenerateArgs {
    GenerateArgs {
        principal: principal.to_owned(),
        start_time: None,
        end_time: None,
        verify: true,
        generalise_at: DEFAULT_GENERALISE_AT,
        logs,
    }
}

fn run(args: &GenerateArgs) -> (bool, serde_json::Value, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let ok = run_generate(args, &mut out, &mut err).unwrap();
    let out = String::from_utf8(out).unwrap();
    let policy = if out.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&out).unwrap()
    };
    (ok, policy, String::from_utf8(err).unwrap())
}

fn log() -> Vec<String> {
    vec![
        record(
            "2026-12-01T10:00:00.000Z",
            ALICE,
            "s3:GetObject",
            "arn:aws:s3:::b/1",
            "Allow",
        ),
        record(
            "2026-12-01T11:00:00.000Z",
            ALICE,
            "s3:GetObject",
            "arn:aws:s3:::b/1",
            "Allow",
        ),
        record(
            "2026-12-01T12:00:00.000Z",
            ALICE,
            "s3:PutObject",
            "arn:aws:s3:::b/2",
            "Allow",
        ),
        // Denied: not granted.
        record(
            "2026-12-01T12:30:00.000Z",
            ALICE,
            "s3:DeleteObject",
            "arn:aws:s3:::b/1",
            "ImplicitDeny",
        ),
        // Someone else.
        record(
            "2026-12-01T12:40:00.000Z",
            "arn:aws:iam::111122223333:user/bob",
            "iam:ListUsers",
            "*",
            "Allow",
        ),
        "{\"time\": \"2026-12-01T13:00:00.000Z\", \"principal\": \"torn".to_owned(),
        record(
            "2026-12-01T13:10:00.000Z",
            ALICE,
            "s3:GetObject",
            &format!(
                "arn:aws:s3:::b/{}",
                crate::sidecar::decision_log::TRUNCATED_MARK
            ),
            "Allow",
        ),
        record(
            "2026-12-02T09:00:00.000Z",
            ALICE,
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:111122223333:q",
            "Allow",
        ),
        record(
            "2026-12-02T09:30:00.000Z",
            ALICE,
            "sts:GetCallerIdentity",
            "*",
            "Allow",
        ),
        record(
            "2026-12-02T10:00:00.000Z",
            "arn:aws:sts::111122223333:assumed-role/app/s1",
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:111122223333:table/t",
            "Allow",
        ),
    ]
}

#[test]
fn generates_alices_policy_reporting_malformed_lines_by_number() {
    let path = write_log("alice", &log());
    let (ok, policy, err) = run(&args(ALICE, vec![path.clone()]));
    assert!(ok, "{err}");
    assert_eq!(
        policy,
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/1"},
                {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/2"},
                {"Effect": "Allow", "Action": "sqs:SendMessage",
                 "Resource": "arn:aws:sqs:us-east-1:111122223333:q"},
            ]
        })
    );
    let name = path.display();
    assert!(
        err.contains(&format!("{name}:6: skipped: not a decision record")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:7: skipped: the resource was truncated by the log"
        )),
        "{err}"
    );
    assert!(err.contains("(10 records read, 2 skipped)"), "{err}");
    assert!(
        err.contains("verified: the policy is valid and allows all 3 allowed decisions"),
        "{err}"
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_role_takes_its_sessions_and_the_window_is_start_inclusive_end_exclusive() {
    let path = write_log("window", &log());
    let (ok, policy, err) = run(&args(ROLE, vec![path.clone()]));
    assert!(ok, "{err}");
    assert_eq!(policy["Statement"][0]["Action"], "dynamodb:GetItem");

    let mut windowed = args(ALICE, vec![path.clone()]);
    windowed.start_time = parse_policy_date("2026-12-01T11:00:00Z");
    windowed.end_time = parse_policy_date("2026-12-02T09:00:00Z");
    let (ok, policy, err) = run(&windowed);
    assert!(ok, "{err}");
    assert_eq!(
        policy["Statement"],
        serde_json::json!([
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/1"},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/2"},
        ])
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn an_empty_window_is_an_error_not_an_empty_policy() {
    let path = write_log("empty", &log());
    let mut later = args(ALICE, vec![path.clone()]);
    later.start_time = parse_policy_date("2027-01-01T00:00:00Z");
    let (ok, policy, err) = run(&later);
    assert!(!ok);
    assert_eq!(policy, serde_json::Value::Null);
    assert!(
        err.contains(&format!(
            "no allowed decision of `{ALICE}` from 2027-01-01T00:00:00Z in 10 records read"
        )),
        "{err}"
    );

    let mut backwards = args(ALICE, vec![path.clone()]);
    backwards.start_time = parse_policy_date("2026-12-02T00:00:00Z");
    backwards.end_time = parse_policy_date("2026-12-01T00:00:00Z");
    let (ok, _, err) = run(&backwards);
    assert!(!ok);
    assert!(err.contains("the window is empty"), "{err}");

    let (ok, _, err) = run(&args(
        "arn:aws:iam::111122223333:user/nobody",
        vec![path.clone()],
    ));
    assert!(!ok);
    assert!(err.contains("nothing to generate a policy from"), "{err}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_missing_log_is_an_io_error_naming_it() {
    let missing = std::env::temp_dir().join("iamlet-generate-no-such.log");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let e = run_generate(&args(ALICE, vec![missing.clone()]), &mut out, &mut err).unwrap_err();
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );
}

#[test]
fn rotated_logs_are_read_together() {
    let lines = log();
    let (older, newer) = lines.split_at(3);
    let a = write_log("rotated-1", older);
    let b = write_log("rotated-0", newer);
    let (ok, both, err) = run(&args(ALICE, vec![b.clone(), a.clone()]));
    assert!(ok, "{err}");
    let whole = write_log("whole", &lines);
    let (_, single, _) = run(&args(ALICE, vec![whole.clone()]));
    assert_eq!(both, single);
    for path in [a, b, whole] {
        std::fs::remove_file(path).unwrap();
    }
}
