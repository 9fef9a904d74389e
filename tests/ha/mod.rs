//! `iamlet control-plane --store postgres://…` and `control-plane migrate` on the command
//! line, without a database: refusals name what is wrong and never the password, and an
//! unreachable server is reported as such. (`tests/ha/run.sh` runs the store against a real
//! PostgreSQL.)

use std::process::{Command, Output};

fn iamlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iamlet"))
        .args(args)
        .env_remove("IAMLET_STORE")
        .env_remove("IAMLET_STORE_PASSWORD_FILE")
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLROOTCERT")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_store_url_that_cannot_be_used_is_a_configuration_error_without_the_password() {
    for (url, says) in [
        (
            "postgres://iamlet:s3cret@127.0.0.1:1/iamlet?sslmode=verify-full",
            "needs sslrootcert",
        ),
        (
            "postgres://iamlet:s3cret@127.0.0.1:1/iamlet?sslmode=sometimes",
            "sslmode `sometimes`",
        ),
        (
            "mysql://iamlet:s3cret@127.0.0.1/iamlet",
            "expected postgres://",
        ),
    ] {
        let output = iamlet(&["control-plane", "migrate", "--store", url]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(64), "{url}: {text}");
        assert!(text.contains(says), "{url}: {text}");
        assert!(text.contains("iamlet:***@"), "{url}: {text}");
        assert!(!text.contains("s3cret"), "{url}: {text}");
    }
    let output = iamlet(&["control-plane", "migrate"]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(stderr(&output).contains("--store"), "{}", stderr(&output));
}

#[test]
fn migrate_against_an_unreachable_server_fails_and_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://iamlet:s3cret@127.0.0.1:{port}/iamlet");
    let output = iamlet(&["control-plane", "migrate", "--store", &url]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("the database is unavailable"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
