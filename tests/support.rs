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
