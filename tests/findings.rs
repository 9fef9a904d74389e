//! `iamlet policy validate`'s Access Analyzer findings, through the binary (issue 17 item 5).

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn validate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args(["policy", "validate"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

const PASS_ROLE: &str = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Effect\": \"Allow\", \"Action\": [\"ec2:RunInstances\", \"iam:PassRole\"], \"Resource\": \"*\"}]\n}\n";

#[test]
fn security_warnings_are_printed_and_keep_the_exit_status_zero() {
    let out = validate(&["-"], PASS_ROLE);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("-: valid identity policy (1 statement)"),
        "{text}"
    );
    assert!(
        text.contains("-: SECURITY_WARNING PASS_ROLE_WITH_STAR_IN_RESOURCE at 3:67 (Statement[0].Action[1]): Using the iam:PassRole action with wildcards (*)"),
        "{text}"
    );
}

#[test]
fn json_output_is_access_analyzers_shape() {
    let out = validate(&["--output", "json", "-"], PASS_ROLE);
    assert_eq!(out.status.code(), Some(0));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["valid"], true);
    let finding = &record["findings"][0];
    assert_eq!(finding["issueCode"], "PASS_ROLE_WITH_STAR_IN_RESOURCE");
    assert_eq!(finding["findingType"], "SECURITY_WARNING");
    assert_eq!(
        finding["locations"][0]["path"],
        serde_json::json!([{"value": "Statement"}, {"index": 0}, {"value": "Action"}, {"index": 1}])
    );
    assert_eq!(
        finding["locations"][0]["span"]["start"],
        serde_json::json!({"line": 3, "column": 67, "offset": 96})
    );
}

#[test]
fn an_error_finding_fails_a_document_iam_accepts() {
    // IAM stores this document; Access Analyzer reports the unknown action as an ERROR.
    let text = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObjectz", "Resource": "*"}]}"#;
    let out = validate(&["-"], text);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("-: valid identity policy (1 statement)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ERROR INVALID_ACTION at 1:70 (Statement[0].Action): The action s3:GetObjectz does not exist."),
        "{stdout}"
    );
}
