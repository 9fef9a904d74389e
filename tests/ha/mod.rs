//! `iamlet control-plane --store postgres://…` and `control-plane migrate` on the command
//! line, without a database: refusals name what is wrong and never the password, and an
//! unreachable server is reported as such. (`tests/ha/run.sh` runs the store against a real
//! PostgreSQL.) And `control-plane migrate-store` between two data directories, with its
//! refusals.

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

/// A store in a data directory, as a control plane leaves it: one tenant, its key beside it.
fn data_dir_with_a_tenant(dir: &std::path::Path) -> String {
    use iamlet::control_plane::{
        ChangeDraft, DataDirOptions, Prior, SecretSealer, SqliteStore, TenantStore,
    };
    let sealer = SecretSealer::load_or_create(&dir.join("secrets.key")).unwrap();
    let store = SqliteStore::open_data_dir(dir, &DataDirOptions::default())
        .unwrap()
        .with_sealer(sealer);
    let draft = ChangeDraft {
        account_id: "111122223333".into(),
        actor: "operator:test".into(),
        action: "CreateTenant".into(),
        parameters: serde_json::json!({}),
        at: 1_700_000_000,
    };
    let tenant = iamlet::directory::Tenant::new("111122223333", 0);
    store.commit(&draft, Prior::Absent, Some(&tenant)).unwrap();
    store.store_id().to_owned()
}

#[test]
fn migrate_store_copies_a_data_dir_and_refuses_with_status_64() {
    let root = crate::support::temp_dir("ha", "migrate-store");
    let (from, to) = (root.join("from"), root.join("to"));
    let id = data_dir_with_a_tenant(&from);
    let (from, to) = (from.to_str().unwrap(), to.to_str().unwrap());

    let output = iamlet(&["control-plane", "migrate-store", "--from", from, "--to", to]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(
        text.contains("copied 1 tenant(s) (0 of them deleted), 1 change(s)"),
        "{text}"
    );
    assert!(text.contains("verified"), "{text}");
    assert!(text.contains(&format!("store {id}")), "{text}");

    // Into a destination that holds a store now.
    let output = iamlet(&["control-plane", "migrate-store", "--from", from, "--to", to]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not empty"),
        "{}",
        stderr(&output)
    );
    // From a directory that holds no store.
    let nothing = root.join("nothing");
    let output = iamlet(&[
        "control-plane",
        "migrate-store",
        "--from",
        nothing.to_str().unwrap(),
        "--to",
        root.join("other").to_str().unwrap(),
        "--secrets-key-file",
        &format!("{from}/secrets.key"),
    ]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("holds no store"),
        "{}",
        stderr(&output)
    );
    // From a database, without the key its secrets are sealed with.
    let output = iamlet(&[
        "control-plane",
        "migrate-store",
        "--from",
        "postgres://iamlet:s3cret@127.0.0.1:1/iamlet",
        "--to",
        root.join("other").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--secrets-key-file"),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("s3cret"), "{}", stderr(&output));
    // An unreachable database: a failure (status 1), its password never shown.
    let output = iamlet(&[
        "control-plane",
        "migrate-store",
        "--from",
        "postgres://iamlet:s3cret@127.0.0.1:1/iamlet",
        "--to",
        root.join("other").to_str().unwrap(),
        "--secrets-key-file",
        &format!("{from}/secrets.key"),
    ]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the source postgres://iamlet:***@127.0.0.1:1/iamlet"),
        "{text}"
    );
    assert!(text.contains("the database is unavailable"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
