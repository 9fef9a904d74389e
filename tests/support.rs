//! What every area of the integration tests needs: fresh directories and bounded waits.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a wait may last before the test fails: a bound on a hang, not a timing claim
/// (a loaded 2-core CI box may be slow).
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// A new, empty directory `iamlet-<area>-<name>-<pid>` under the system's temporary one.
pub(crate) fn temp_dir(area: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iamlet-{area}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `condition` holds, polling every 2 ms; fails the test after `bound`. Returns
/// how long it took.
pub(crate) async fn eventually_within(
    bound: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < bound, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

/// [`eventually_within`] [`HANG`].
pub(crate) async fn eventually(what: &str, condition: impl FnMut() -> bool) -> Duration {
    eventually_within(HANG, what, condition).await
}

/// A running `iamlet up` and the banner it printed, up to `Ctrl-C stops`.
pub(crate) struct Up {
    pub(crate) child: std::process::Child,
    pub(crate) banner: String,
}

impl Up {
    /// `iamlet up --data-dir data_dir` with every port chosen by the system; the test fails,
    /// with what up wrote to stderr, when it does not start. Its stderr goes to a file beside
    /// the data directory, so a chatty process never blocks on a full pipe.
    pub(crate) fn spawn(data_dir: &std::path::Path) -> Self {
        Self::spawn_with(data_dir, &[])
    }

    /// [`Self::spawn`] with more of `up`'s options.
    pub(crate) fn spawn_with(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        use std::io::{BufRead, BufReader};
        let stderr_path = data_dir.with_extension("stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_iamlet"))
            .args(["up", "--data-dir", data_dir.to_str().unwrap()])
            .args(["--control-plane-listen", "127.0.0.1:0"])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--control-plane-http-listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("IAMLET_EXT_AUTHZ_ROUTES")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut printed = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let done = line.starts_with("Ctrl-C stops");
            printed.push(line);
            if done {
                break;
            }
        }
        let banner = printed.join("\n");
        if !banner.contains("Ctrl-C stops") {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "up did not start:\n{banner}\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        Self { child, banner }
    }

    /// The value the banner prints after `prefix` on a line of its own.
    pub(crate) fn field(&self, prefix: &str) -> String {
        banner_field(&self.banner, prefix)
    }
}

/// The value `banner` prints after `prefix` on a line of its own.
pub(crate) fn banner_field(banner: &str, prefix: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in {banner}"))
        .trim()
        .to_owned()
}

/// The snapshot signing keys of the control planes these tests start, one per store identity
/// (PKCS#8), so that a control plane restarted on its store signs with the same key, as one
/// started with its `--snapshot-signing-key` does.
fn snapshot_keys() -> &'static std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>> {
    static KEYS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(Default::default)
}

/// The signing key of `store_id` (made on first use).
fn snapshot_signer(store_id: &str) -> iamlet::snapshot::SigningKey {
    let mut keys = snapshot_keys().lock().unwrap();
    let pkcs8 = keys
        .entry(store_id.to_owned())
        .or_insert_with(|| iamlet::snapshot::SigningKey::generate(store_id).unwrap().1);
    iamlet::snapshot::SigningKey::from_pkcs8(store_id, pkcs8).unwrap()
}

/// `control_plane`, signing with its store's test key.
pub(crate) fn signed(
    control_plane: iamlet::control_plane::ControlPlane,
) -> iamlet::control_plane::ControlPlane {
    let store_id = control_plane.store_identity().id;
    control_plane.with_snapshot_signer(snapshot_signer(&store_id))
}

/// What a sidecar of these tests trusts: the key of every control plane [`signed`] so far.
pub(crate) fn snapshot_trust() -> iamlet::snapshot::SnapshotTrust {
    let stores: Vec<String> = snapshot_keys().lock().unwrap().keys().cloned().collect();
    let lines: Vec<String> = stores
        .iter()
        .map(|s| snapshot_signer(s).trust_line())
        .collect();
    iamlet::snapshot::SnapshotTrust::keys(
        iamlet::snapshot::TrustedKeys::parse(&lines.join("\n")).unwrap(),
    )
}
