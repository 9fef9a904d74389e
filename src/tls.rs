//! TLS between sidecars and the control plane (rustls with the *ring* provider, through
//! tonic), and which tenants each client certificate may subscribe to.
//!
//! - The control plane presents `--tls-cert`/`--tls-key`; with `--tls-client-ca` it requires a
//!   client certificate issued by that CA, and with `--tenant-access FILE` it limits each
//!   client identity (a DNS name the certificate is valid for) to the tenants listed for it.
//! - A sidecar pins the control plane's CA (`--control-plane-ca`), not the system roots,
//!   checks the name it expects (`--control-plane-name`, default the URL's host), and
//!   presents `--tls-cert`/`--tls-key` when the control plane asks for one.
//! - Files are read when a server starts and, for a sidecar, at every reconnection, so a
//!   rotated client certificate is used from the next connection on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

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

// === impl ServerTlsFiles ===

impl ServerTlsFiles {
    /// Reads the files into a server configuration.
    pub fn load(&self) -> Result<ServerTlsConfig, TlsError> {
        let identity = Identity::from_pem(
            pem(&self.cert, "certificate")?,
            pem(&self.key, "private key")?,
        );
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(pem(ca, "CA certificate")?));
        }
        Ok(config)
    }
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
    /// for, wildcards as in certificates) to the tenants they may subscribe to (`"*"`: all).
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
        let map: std::collections::BTreeMap<String, Vec<String>> =
            serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        for (name, tenants) in &map {
            rustls::pki_types::ServerName::try_from(name.as_str())
                .map_err(|_| format!("`{name}` is not a DNS name"))?;
            if let Some(bad) = tenants
                .iter()
                .find(|t| *t != "*" && (t.len() != 12 || !t.bytes().all(|b| b.is_ascii_digit())))
            {
                return Err(format!(
                    "`{name}`: `{bad}` is not a 12-digit account id or `*`"
                ));
            }
        }
        Ok(Self {
            rules: map.into_iter().collect(),
        })
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
            if cert.verify_is_valid_for_subject_name(&server_name).is_ok() {
                if tenants.iter().any(|t| t == "*") {
                    return None;
                }
                allowed.extend(tenants.iter().cloned());
            }
        }
        Some(allowed)
    }
}
