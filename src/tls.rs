//! TLS between sidecars and the control plane (rustls with the *ring* provider, through
//! tonic), and which tenants each client certificate may subscribe to.
//!
//! - The control plane presents `--tls-cert`/`--tls-key`; with `--tls-client-ca` it requires a
//!   client certificate issued by that CA, and with `--tenant-access FILE` it limits each
//!   client identity (a DNS name the certificate is valid for) to the tenants listed for it.
//! - A sidecar pins the control plane's CA (`--control-plane-ca`), not the system roots,
//!   checks the name it expects (`--control-plane-name`, default the URL's host), and
//!   presents `--tls-cert`/`--tls-key` when the control plane asks for one.
//! - Certificates follow their files: a server reads them again when they change (see
//!   [`ReloadingServerTls`]), a sidecar at every reconnection, so rotation needs no restart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("`{}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// A server's certificate files.
#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by this CA (PEM).
    pub client_ca: Option<PathBuf>,
}

/// A client's view of the control plane's TLS.
#[derive(Debug, Clone)]
pub struct ClientTlsFiles {
    /// The CA that issued the control plane's certificate (PEM): the only root trusted.
    pub ca: PathBuf,
    /// The name the control plane's certificate must be valid for; default: the URL's host.
    pub server_name: Option<String>,
    /// This client's certificate chain and key (PEM), for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// Which tenants each client identity may subscribe to.
#[derive(Debug, Clone, Default)]
pub struct TenantAccess {
    rules: Vec<(String, Vec<String>)>,
    /// The identities whose issuing scope is limited (issue #20); the others are unscoped.
    scopes: Vec<(String, crate::jose::IssuingScope)>,
}

/// One identity's entry: its tenants, or its tenants and the scope it may issue sessions in.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum AccessRule {
    Tenants(Vec<String>),
    Scoped(ScopedRule),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopedRule {
    tenants: Vec<String>,
    #[serde(default)]
    scope: Option<crate::jose::IssuingScope>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    let bytes = read(path)?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(TlsError::Invalid {
            path: path.to_owned(),
            message: format!("expected a PEM {what}"),
        });
    }
    Ok(bytes)
}

// === impl ClientTlsFiles ===

impl ClientTlsFiles {
    /// Reads the files into a client configuration for `endpoint`.
    pub fn load(&self, endpoint: &str) -> Result<ClientTlsConfig, TlsError> {
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pem(&self.ca, "CA certificate")?));
        let host = self.server_name.clone().or_else(|| {
            endpoint
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split(['/', ':']).next())
                .map(str::to_owned)
        });
        if let Some(host) = host {
            config = config.domain_name(host);
        }
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(
                pem(cert, "certificate")?,
                pem(key, "private key")?,
            ));
        }
        Ok(config)
    }
}

// === impl TenantAccess ===

impl TenantAccess {
    /// Reads a YAML mapping of client identities (DNS names a client certificate is valid
    /// for, named exactly: a wildcard certificate matches no rule) to the tenants they may
    /// subscribe to (`"*"`: all): either a list of tenants, or `{tenants: [...], scope:
    /// {role_paths: [...], role_arns: [...], session_tokens: bool}}` to limit the sessions the
    /// identity's sidecars may mint (without `scope`: every role and `GetSessionToken`).
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        let text = String::from_utf8(read(path)?).map_err(|_| TlsError::Invalid {
            path: path.to_owned(),
            message: "not UTF-8".into(),
        })?;
        Self::parse(&text).map_err(|message| TlsError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the mapping.
    pub fn parse(text: &str) -> Result<Self, String> {
        let entries: std::collections::BTreeMap<String, AccessRule> =
            serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let mut scopes = Vec::new();
        let mut map = std::collections::BTreeMap::new();
        for (name, rule) in entries {
            let tenants = match rule {
                AccessRule::Tenants(tenants) => tenants,
                AccessRule::Scoped(ScopedRule { tenants, scope }) => {
                    if let Some(scope) = scope {
                        scope.validate().map_err(|m| format!("`{name}`: {m}"))?;
                        scopes.push((name.clone(), scope));
                    }
                    tenants
                }
            };
            map.insert(name, tenants);
        }
        for (name, tenants) in &map {
            rustls::pki_types::ServerName::try_from(name.as_str())
                .map_err(|_| format!("`{name}` is not a DNS name"))?;
            if let Some(bad) = tenants
                .iter()
                .find(|t| *t != "*" && !crate::account::AccountId::is_valid(t))
            {
                return Err(format!(
                    "`{name}`: `{bad}` is not a 12-digit account id or `*`"
                ));
            }
        }
        Ok(Self {
            rules: map.into_iter().collect(),
            scopes,
        })
    }

    /// The identity a client certificate is issued sessions as, and its scope: the names it
    /// matches (joined with `,`) and the union of their scopes (unscoped if any is). `None`
    /// when it matches no identity.
    pub fn issuing_identity(
        &self,
        leaf: Option<&[u8]>,
    ) -> Option<(String, crate::jose::IssuingScope)> {
        let names: Vec<String> = self.rules.iter().map(|(n, _)| n.clone()).collect();
        let matched: Vec<&String> = names
            .iter()
            .filter(|name| {
                leaf.is_some_and(|der| valid_for_any(der, std::slice::from_ref(*name)).is_some())
            })
            .collect();
        if matched.is_empty() {
            return None;
        }
        let mut union = crate::jose::IssuingScope {
            all_roles: false,
            role_paths: Vec::new(),
            role_arns: Vec::new(),
            session_tokens: false,
        };
        for name in &matched {
            match self.scopes.iter().find(|(n, _)| n == *name) {
                None => union = crate::jose::IssuingScope::unscoped(),
                Some((_, scope)) => {
                    union.all_roles |= scope.all_roles;
                    union.session_tokens |= scope.session_tokens;
                    union.role_paths.extend(scope.role_paths.iter().cloned());
                    union.role_arns.extend(scope.role_arns.iter().cloned());
                }
            }
            if union.all_roles && union.session_tokens {
                break;
            }
        }
        let identity = matched
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Some((identity, union))
    }

    /// The tenants a client may subscribe to: `None` for every tenant, `Some(set)` otherwise
    /// (empty when its certificate matches no identity, or when there is no certificate).
    pub fn allowed(&self, leaf: Option<&[u8]>) -> Option<BTreeSet<String>> {
        let mut allowed = BTreeSet::new();
        let Some(der) = leaf else {
            return Some(allowed);
        };
        let der = rustls::pki_types::CertificateDer::from(der);
        let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
            return Some(allowed);
        };
        for (name, tenants) in &self.rules {
            let Ok(server_name) = rustls::pki_types::ServerName::try_from(name.as_str()) else {
                continue;
            };
            // The certificate must name the identity exactly: a wildcard certificate (a whole
            // fleet's) matches no one rule's tenants.
            let named = cert
                .valid_dns_names()
                .any(|san| san.eq_ignore_ascii_case(name));
            if named && cert.verify_is_valid_for_subject_name(&server_name).is_ok() {
                if tenants.iter().any(|t| t == "*") {
                    return None;
                }
                allowed.extend(tenants.iter().cloned());
            }
        }
        Some(allowed)
    }
}

/// The first of `names` that the client certificate `leaf` (DER) names exactly in its
/// subject alternative names. A wildcard certificate (`*.iamlet.svc`, say a fleet of
/// sidecars) matches none: an operator is one named identity. The chain was verified by
/// the TLS handshake.
pub fn valid_for_any(leaf: &[u8], names: &[String]) -> Option<String> {
    let der = rustls::pki_types::CertificateDer::from(leaf);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    names
        .iter()
        .find(|name| {
            let valid = rustls::pki_types::ServerName::try_from(name.as_str())
                .is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok());
            valid
                && cert
                    .valid_dns_names()
                    .any(|san| san.eq_ignore_ascii_case(name))
        })
        .cloned()
}

/// A server's TLS that follows its files: the certificate and key are read again when their
/// modification times change (checked at most once a second, at a handshake), so a rotated
/// certificate is served from the next connection on, without a restart. A file that fails to
/// load leaves the previous certificate in use, with a warning.
#[derive(Debug)]
pub struct ReloadingServerTls {
    config: Arc<rustls::ServerConfig>,
}

#[derive(Debug)]
struct FileResolver {
    cert: PathBuf,
    key: PathBuf,
    current: arc_swap::ArcSwap<Loaded>,
    /// Milliseconds since the epoch of the last look at the files.
    checked_ms: std::sync::atomic::AtomicI64,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<rustls::sign::CertifiedKey>,
    stamp: (Option<SystemTime>, Option<SystemTime>),
}

impl ReloadingServerTls {
    /// Loads the files; with a client CA, clients must present a certificate it issued.
    pub fn try_new(files: &ServerTlsFiles) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(FileResolver {
            current: arc_swap::ArcSwap::from_pointee(load_certified_key(&files.cert, &files.key)?),
            cert: files.cert.clone(),
            key: files.key.clone(),
            checked_ms: std::sync::atomic::AtomicI64::new(now_ms()),
        });
        let invalid = |path: &Path, e: &dyn std::fmt::Display| TlsError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&files.cert, &e))?;
        let builder = match &files.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in pem_certificates(ca)? {
                    roots.add(cert).map_err(|e| invalid(ca, &e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid(ca, &e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(Self {
            config: Arc::new(config),
        }))
    }

    /// Accepts TLS connections from `listener` in the background (within the default
    /// [`crate::net::ConnectionLimits`], each handshake in its own task, bounded in time): the
    /// incoming stream for tonic's `serve_with_incoming*`.
    pub fn incoming(
        &self,
        listener: tokio::net::TcpListener,
    ) -> tokio_stream::wrappers::ReceiverStream<
        std::io::Result<
            tokio_rustls::server::TlsStream<crate::net::Bounded<tokio::net::TcpStream>>,
        >,
    > {
        self.incoming_from(crate::net::accept(
            listener,
            crate::net::ConnectionLimits::default(),
        ))
    }

    /// TLS over the connections `accepted` yields.
    pub fn incoming_from(
        &self,
        mut accepted: tokio_stream::wrappers::ReceiverStream<
            std::io::Result<crate::net::Bounded<tokio::net::TcpStream>>,
        >,
    ) -> tokio_stream::wrappers::ReceiverStream<
        std::io::Result<
            tokio_rustls::server::TlsStream<crate::net::Bounded<tokio::net::TcpStream>>,
        >,
    > {
        use tokio_stream::StreamExt;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    () = tx.closed() => return,
                    accepted = accepted.next() => match accepted {
                        Some(Ok(stream)) => stream,
                        Some(Err(_)) => continue,
                        None => return,
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let peer = stream.get_ref().peer_addr().ok();
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(peer = ?peer, "TLS handshake refused: {e}");
                        }
                        Err(_) => tracing::warn!(peer = ?peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

fn now_ms() -> i64 {
    crate::policy::Timestamp::now().epoch_millis()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn pem_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: path.to_owned(),
            message: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}

fn load_certified_key(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let stamp = (modified(cert), modified(key));
    let chain = pem_certificates(cert)?;
    let private =
        rustls::pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Invalid {
            path: key.to_owned(),
            message: e.to_string(),
        })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private).map_err(|e| {
        TlsError::Invalid {
            path: key.to_owned(),
            message: e.to_string(),
        }
    })?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Invalid {
        path: key.to_owned(),
        message: format!("the key does not belong to the certificate: {e}"),
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        stamp,
    })
}

impl FileResolver {
    fn refresh(&self) {
        use std::sync::atomic::Ordering;
        let now = now_ms();
        let last = self.checked_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1000
            || self
                .checked_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let stamp = (modified(&self.cert), modified(&self.key));
        if stamp == self.current.load().stamp {
            return;
        }
        match load_certified_key(&self.cert, &self.key) {
            Ok(loaded) => {
                tracing::info!("serving the renewed certificate {}", self.cert.display());
                self.current.store(Arc::new(loaded));
            }
            Err(e) => tracing::warn!("keeping the previous certificate: {e}"),
        }
    }
}

impl rustls::server::ResolvesServerCert for FileResolver {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.refresh();
        Some(Arc::clone(&self.current.load().key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_for(names: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn identities_are_named_exactly_and_a_wildcard_certificate_is_no_one() {
        let access = TenantAccess::parse(
            "team-a.demo.svc: ['111122223333']\nteam-b.demo.svc: ['444455556666']\n",
        )
        .unwrap();
        let a = cert_for(&["team-a.demo.svc"]);
        let fleet = cert_for(&["*.demo.svc"]);
        assert_eq!(
            access.allowed(Some(&a)),
            Some(BTreeSet::from(["111122223333".to_owned()]))
        );
        assert_eq!(access.allowed(Some(&fleet)), Some(BTreeSet::new()));
        assert_eq!(access.allowed(None), Some(BTreeSet::new()));

        let operators = vec!["ops.iamlet.svc".to_owned()];
        let ops = cert_for(&["ops.iamlet.svc"]);
        assert_eq!(
            valid_for_any(&ops, &operators).as_deref(),
            Some("ops.iamlet.svc")
        );
        assert_eq!(
            valid_for_any(&cert_for(&["*.iamlet.svc"]), &operators),
            None
        );
        assert_eq!(valid_for_any(&a, &operators), None);
    }

    #[test]
    fn identities_may_carry_an_issuing_scope() {
        let access = TenantAccess::parse(
            "team-a.demo.svc:\n  tenants: ['111122223333']\n  scope:\n    role_paths: ['/team-a/']\nops.demo.svc: ['*']\n",
        )
        .unwrap();
        let a = cert_for(&["team-a.demo.svc"]);
        assert_eq!(
            access.allowed(Some(&a)),
            Some(BTreeSet::from(["111122223333".to_owned()]))
        );
        let (identity, scope) = access.issuing_identity(Some(&a)).unwrap();
        assert_eq!(identity, "team-a.demo.svc");
        assert!(!scope.all_roles && !scope.session_tokens);
        assert_eq!(scope.role_paths, vec!["/team-a/".to_owned()]);
        let ops = cert_for(&["ops.demo.svc"]);
        assert_eq!(
            access.issuing_identity(Some(&ops)).unwrap().1,
            crate::jose::IssuingScope::unscoped()
        );
        assert_eq!(
            access.issuing_identity(Some(&cert_for(&["*.demo.svc"]))),
            None
        );
        assert_eq!(access.issuing_identity(None), None);
        for bad in [
            "a.demo.svc:\n  tenants: ['111122223333']\n  scope:\n    role_paths: ['team-a']\n",
            "a.demo.svc:\n  tenants: ['111122223333']\n  scope:\n    roles: ['x']\n",
            "a.demo.svc:\n  tenants: ['111122223333']\n  scoop: {}\n",
        ] {
            assert!(TenantAccess::parse(bad).is_err(), "{bad}");
        }
    }
}
