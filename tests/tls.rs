//! Mutual TLS between sidecars and the control plane, with a test PKI made here: accepted,
//! each bad certificate refused, per-identity tenant limits, and a refused sidecar still
//! serving its last good snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use iamlet::control_plane::{AdminAuth, ControlPlane, SqliteStore};
use iamlet::directory::IdGenerator;
use iamlet::grpc::{aws_error_code, serve_control_plane_with, ServeOptions};
use iamlet::sidecar::{spawn_sidecar, SidecarConfig, SidecarHandle};
use iamlet::sync::{Backoff, Readiness};
use iamlet::tls::{ClientTlsFiles, ReloadingServerTls, ServerTlsFiles, TenantAccess};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;

const A: &str = "111122223333";
const B: &str = "444455556666";
/// The client-certificate identity the control plane takes for its operator.
const OPERATOR_IDENTITY: &str = "operator.iamlet.test";

pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
}

pub(crate) struct Authority {
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            dir: super::support::temp_dir("tls", name),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn authority(&self, name: &str) -> (Authority, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = self.write(&format!("{name}.crt"), &cert.pem());
        (
            Authority {
                issuer: Issuer::new(params, key),
            },
            path,
        )
    }

    /// A certificate for `names`, issued by `ca`; `expired` sets its validity in the past.
    pub(crate) fn leaf(
        &self,
        ca: &Authority,
        file: &str,
        names: &[&str],
        expired: bool,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        (
            self.write(&format!("{file}.crt"), &cert.pem()),
            self.write(&format!("{file}.key"), &key.serialize_pem()),
        )
    }
}

pub(crate) async fn control_plane(
    pki: &Pki,
    tls: ServerTlsFiles,
    access: Option<&str>,
) -> (Arc<ControlPlane>, std::net::SocketAddr) {
    let store = SqliteStore::open(&pki.dir.join("iamlet.db"), None).unwrap();
    let cp = Arc::new(super::support::signed(
        ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap(),
    ));
    for tenant in [A, B] {
        cp.create_tenant(tenant, None, "test").unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServeOptions {
        tls: Some(ReloadingServerTls::try_new(&tls).unwrap()),
        access: access.map(|text| Arc::new(TenantAccess::parse(text).unwrap())),
        admin_auth: Some(Arc::new(AdminAuth::new(
            Vec::new(),
            vec![OPERATOR_IDENTITY.into()],
        ))),
        sync_admission: Arc::default(),
    };
    tokio::spawn(serve_control_plane_with(
        Arc::clone(&cp),
        listener,
        Duration::from_millis(100),
        options,
        std::future::pending(),
    ));
    (cp, addr)
}

pub(crate) fn sidecar(
    addr: std::net::SocketAddr,
    state: &Path,
    tenants: &[&str],
    tls: ClientTlsFiles,
) -> SidecarHandle {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    spawn_sidecar(
        &SidecarConfig {
            control_plane: format!("https://localhost:{}", addr.port()),
            readiness: Readiness::Tenants(tenants.iter().map(|t| (*t).to_owned()).collect()),
            state_dir: state.to_owned(),
            sidecar_id: "tls-test".into(),
            backoff: Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(100),
                multiplier: 1.5,
                jitter: 0.1,
            },
            tls: Some(tls),
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown,
    )
    .0
}

use super::support::eventually;

/// A refused sidecar never gets a stream: waits (bounded only by the test's hang bound) until
/// two attempts have failed, then checks that none was accepted and prints why.
async fn refused(handle: &SidecarHandle) -> iamlet::sync::SyncFailure {
    eventually("two refused attempts", || handle.sync.failures().0 >= 2).await;
    assert_eq!(
        handle.sync.streams_opened(),
        0,
        "the stream must be refused"
    );
    assert!(!handle.sync.connected());
    handle.sync.failures().1.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_the_right_certificates_and_refuses_each_wrong_one() {
    let pki = Pki::new("mtls");
    let (ca, ca_path) = pki.authority("good");
    let (other_ca, other_ca_path) = pki.authority("other");
    let (server_cert, server_key) = pki.leaf(&ca, "server", &["localhost", "127.0.0.1"], false);
    let (a_cert, a_key) = pki.leaf(&ca, "sidecar-a", &["sidecar-a.iamlet.test"], false);
    let (b_cert, b_key) = pki.leaf(&ca, "sidecar-b", &["sidecar-b.iamlet.test"], false);
    let (old_cert, old_key) = pki.leaf(&ca, "expired", &["sidecar-a.iamlet.test"], true);
    let (rogue_cert, rogue_key) = pki.leaf(&other_ca, "rogue", &["sidecar-a.iamlet.test"], false);
    let (cp, addr) = control_plane(
        &pki,
        ServerTlsFiles {
            cert: server_cert,
            key: server_key,
            client_ca: Some(ca_path.clone()),
        },
        Some("sidecar-a.iamlet.test: ['111122223333']\nsidecar-b.iamlet.test: ['444455556666']\n"),
    )
    .await;
    let client =
        |identity: Option<(&PathBuf, &PathBuf)>, ca: &PathBuf, name: Option<&str>| ClientTlsFiles {
            ca: ca.clone(),
            server_name: name.map(str::to_owned),
            identity: identity.map(|(c, k)| (c.clone(), k.clone())),
        };

    // Accepted: the right CA, name and client certificate, for a tenant it may see.
    let good_state = pki.dir.join("good");
    let good = sidecar(
        addr,
        &good_state,
        &[A],
        client(Some((&a_cert, &a_key)), &ca_path, None),
    );
    eventually("the mTLS sidecar to be ready", || good.is_ready()).await;
    let (_, version) = cp
        .call(
            A,
            "test",
            "CreateUser",
            &serde_json::json!({"UserName": "alice"}),
        )
        .unwrap();
    eventually("the change over mTLS", || {
        good.store.version(A).is_some_and(|v| v >= version)
    })
    .await;

    // Refused, one case each, each for its own reason: the refusal itself is asserted (the
    // TLS error the sidecar met, or the control plane's gRPC code), never a quiet wait.
    let by_text = |texts: &'static [&'static str]| {
        move |why: &iamlet::sync::SyncFailure| texts.iter().any(|t| why.message.contains(t))
    };
    type Expect = Box<dyn Fn(&iamlet::sync::SyncFailure) -> bool>;
    let cases: Vec<(&str, ClientTlsFiles, [&str; 1], Expect)> = vec![
        (
            "a server certificate from a CA the sidecar does not pin",
            client(Some((&a_cert, &a_key)), &other_ca_path, None),
            [A],
            Box::new(by_text(&["UnknownIssuer"])),
        ),
        (
            "a server name the certificate is not valid for",
            client(
                Some((&a_cert, &a_key)),
                &ca_path,
                Some("control-plane.elsewhere"),
            ),
            [A],
            Box::new(by_text(&["not valid for name"])),
        ),
        (
            "no client certificate",
            client(None, &ca_path, None),
            [A],
            // The server's alert races its close of the connection: either may reach the
            // client first, and the close shows as a closed connection or a broken pipe (the
            // same for the two cases below).
            Box::new(by_text(&[
                "CertificateRequired",
                "connection closed",
                "broken pipe",
            ])),
        ),
        (
            "an expired client certificate",
            client(Some((&old_cert, &old_key)), &ca_path, None),
            [A],
            Box::new(by_text(&["Expired", "connection closed", "broken pipe"])),
        ),
        (
            "a client certificate from another CA",
            client(Some((&rogue_cert, &rogue_key)), &ca_path, None),
            [A],
            Box::new(by_text(&["UnknownCA", "connection closed", "broken pipe"])),
        ),
        (
            "an identity asking for a tenant it may not see",
            client(Some((&b_cert, &b_key)), &ca_path, None),
            [A],
            Box::new(|why: &iamlet::sync::SyncFailure| {
                why.code == Some(tonic::Code::PermissionDenied)
                    && why
                        .message
                        .contains("may not subscribe to tenant `111122223333`")
            }),
        ),
    ];
    for (case, files, tenants, expected) in cases {
        let state = pki.dir.join(case.replace(' ', "-"));
        let handle = sidecar(addr, &state, &tenants, files);
        let why = refused(&handle).await;
        assert!(
            expected(&why),
            "{case}: refused for another reason: {why:?}"
        );
        assert!(!handle.is_ready(), "{case}: must not become ready");
        assert!(
            handle.store.versions().is_empty(),
            "{case}: nothing received"
        );
    }
    // Identity B sees its own tenant.
    let b = sidecar(
        addr,
        &pki.dir.join("b-own"),
        &[B],
        client(Some((&b_cert, &b_key)), &ca_path, None),
    );
    eventually("identity B's own tenant", || b.is_ready()).await;

    // A sidecar whose TLS is now wrong keeps serving its last good snapshot from disk.
    let restarted = sidecar(
        addr,
        &good_state,
        &[A],
        client(Some((&a_cert, &a_key)), &other_ca_path, None),
    );
    assert!(restarted.is_ready(), "served from the last known good file");
    assert!(restarted.store.version(A).is_some_and(|v| v >= version));
    let why = refused(&restarted).await;
    assert!(why.message.contains("UnknownIssuer"), "{why:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_server_certificate_is_served_without_a_restart() {
    let pki = Pki::new("reload");
    let (ca, ca_path) = pki.authority("reload");
    let (cert, key) = pki.leaf(&ca, "server", &["localhost"], false);
    let (_cp, addr) = control_plane(
        &pki,
        ServerTlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        },
        None,
    )
    .await;
    let wants_new_name = ClientTlsFiles {
        ca: ca_path,
        server_name: Some("control-plane.iamlet.test".into()),
        identity: None,
    };
    let handle = sidecar(addr, &pki.dir.join("sidecar"), &[A], wants_new_name);
    let why = refused(&handle).await;
    assert!(why.message.contains("not valid for name"), "{why:?}");
    // The renewal (as cert-manager writes it): the same files, a certificate for new names.
    let (renewed_cert, renewed_key) = pki.leaf(
        &ca,
        "renewed",
        &["control-plane.iamlet.test", "localhost"],
        false,
    );
    std::fs::copy(&renewed_key, &key).unwrap();
    std::fs::copy(&renewed_cert, &cert).unwrap();
    eventually("the renewed certificate to be served", || handle.is_ready()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_can_be_served_with_tls() {
    use iamlet::proto::v1 as pb;
    let pki = Pki::new("local");
    let (ca, ca_path) = pki.authority("local");
    let (cert, key) = pki.leaf(&ca, "sidecar", &["localhost"], false);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    let (handle, _) = spawn_sidecar(
        &SidecarConfig {
            control_plane: "http://127.0.0.1:9".into(),
            state_dir: pki.dir.join("state"),
            snapshot_trust: super::support::snapshot_trust(),
            ..SidecarConfig::default()
        },
        shutdown,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = ReloadingServerTls::try_new(&ServerTlsFiles {
        cert,
        key,
        client_ca: None,
    })
    .unwrap();
    tokio::spawn(iamlet::grpc::serve_local_api(
        handle,
        tls.incoming(listener),
        std::future::pending(),
    ));
    let endpoint = format!("https://localhost:{port}");
    let client_tls = ClientTlsFiles {
        ca: ca_path,
        server_name: None,
        identity: None,
    }
    .load(&endpoint)
    .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .tls_config(client_tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = pb::sidecar_status_client::SidecarStatusClient::new(channel)
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.connected);
    // Plaintext is refused.
    let plain =
        pb::sidecar_status_client::SidecarStatusClient::connect(format!("http://127.0.0.1:{port}"))
            .await;
    let refused = match plain {
        Err(_) => true,
        Ok(mut client) => client.status(pb::StatusRequest {}).await.is_err(),
    };
    assert!(refused, "a plaintext client must not get an answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_is_known_by_its_client_certificate_and_no_other_is() {
    use iamlet::proto::v1 as pb;
    let pki = Pki::new("operator");
    let (ca, ca_path) = pki.authority("ops");
    let (server_cert, server_key) = pki.leaf(&ca, "server", &["localhost"], false);
    let (ops_cert, ops_key) = pki.leaf(&ca, "operator", &[OPERATOR_IDENTITY], false);
    let (a_cert, a_key) = pki.leaf(&ca, "sidecar-a", &["sidecar-a.iamlet.test"], false);
    let (cp, addr) = control_plane(
        &pki,
        ServerTlsFiles {
            cert: server_cert,
            key: server_key,
            client_ca: Some(ca_path.clone()),
        },
        None,
    )
    .await;
    let admin = |cert: &PathBuf, key: &PathBuf| {
        let endpoint = format!("https://localhost:{}", addr.port());
        let tls = ClientTlsFiles {
            ca: ca_path.clone(),
            server_name: None,
            identity: Some((cert.clone(), key.clone())),
        }
        .load(&endpoint)
        .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(endpoint)
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_lazy();
        pb::admin_client::AdminClient::new(channel)
    };

    let created = admin(&ops_cert, &ops_key)
        .create_tenant(pb::CreateTenantRequest {
            account_id: "999988887777".into(),
            alias: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.root_access_key_id.starts_with("AKIA"));
    assert_eq!(created.root_secret_access_key.len(), 40);
    let changes = cp.changes("999988887777", 0, 10).unwrap();
    assert_eq!(changes[0].actor, format!("operator:{OPERATOR_IDENTITY}"));

    // A sidecar's certificate, valid as it is, is nobody at the admin API.
    let refused = admin(&a_cert, &a_key)
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        aws_error_code(&refused).as_deref(),
        Some("MissingAuthenticationToken")
    );
}
