//! The demo tenant of `iamlet up` (`deploy/examples/demo-tenant.yaml`) as the benches use it:
//! compiled, published in a snapshot store, with a fresh access key for alice. Shared by the
//! bench binaries through `#[path]`, as each bench is a crate of its own.

use std::sync::Arc;

use iamlet::control_plane::{ControlPlane, SqliteStore, TenantSpec};
use iamlet::directory::IdGenerator;
use iamlet::snapshot::{AwsManagedCatalog, SnapshotStore, TenantSnapshot};

/// The demo tenant's account.
pub(crate) const ACCOUNT: &str = "111122223333";

/// The demo tenant, compiled and published.
pub(crate) struct Demo {
    /// Its snapshot.
    pub(crate) snapshot: Arc<TenantSnapshot>,
    /// A store serving that snapshot.
    pub(crate) store: Arc<SnapshotStore>,
    /// Alice's access key id.
    pub(crate) access_key_id: String,
    /// Its secret.
    pub(crate) secret: String,
}

/// Applies the demo tenant to a control plane in a temporary directory named after `bench`,
/// gives alice an access key, and compiles the result.
pub(crate) fn demo(bench: &str) -> Demo {
    let dir = std::env::temp_dir().join(format!("iamlet-bench-{bench}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteStore::open(&dir.join("iamlet.db"), None).expect("store");
    let cp = ControlPlane::open(Arc::new(store), IdGenerator::system()).expect("control plane");
    let spec: TenantSpec =
        serde_yaml_ng::from_str(include_str!("../../deploy/examples/demo-tenant.yaml"))
            .expect("demo tenant");
    cp.apply_spec(&spec, "bench", false).expect("apply");
    let (key, _) = cp
        .call(
            ACCOUNT,
            "bench",
            "CreateAccessKey",
            &serde_json::json!({"UserName": "alice"}),
        )
        .expect("access key");
    let field = |n: &str| key["AccessKey"][n].as_str().expect("field").to_owned();
    let (tenant, version) = cp.tenant(ACCOUNT).expect("tenant");
    let catalog = AwsManagedCatalog::compile();
    // Compiled twice: one for the store, one for the benches that call the engine directly
    // (a snapshot is not `Clone`; the store takes it by value).
    let compile =
        || TenantSnapshot::compile(Arc::clone(&tenant), version, &catalog).expect("compile");
    let snapshot = Arc::new(compile());
    let store = Arc::new(SnapshotStore::new());
    store.apply(compile()).expect("publish");
    let _ = std::fs::remove_dir_all(&dir);
    Demo {
        snapshot,
        store,
        access_key_id: field("AccessKeyId"),
        secret: field("SecretAccessKey"),
    }
}
