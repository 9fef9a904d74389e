//! The watch service's domain: who may stream which tenants, what a stream sends next, and
//! which tenants' usage it may report ([`WatchState::admits_usage`]).
//! The gRPC edge (`crate::grpc::sync`) reads the request, asks here, and writes the answer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;

use crate::directory::{IdGenerator, Secret};
use crate::jose::certificate::RENEW_BELOW_SECONDS;
use crate::jose::{IssuerKeyring, IssuingCredential, IssuingScope};
use crate::snapshot::SnapshotVersion;
use crate::snapshot::TenantUpdate;
use crate::tls::TenantAccess;

use super::core::ShippedTenant;
use super::OperatorKey;

/// The payload bytes one response carries at most (unless one tenant alone is larger): well
/// under gRPC's customary 4 MiB message limit, so a large state arrives in chunks.
pub const MAX_RESPONSE_PAYLOAD: usize = 1 << 20;

/// How long a quiet stream waits before the control plane sends a heartbeat.
pub const DEFAULT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// The largest message on the sync stream, either way: room for one very large tenant.
pub const MAX_SYNC_MESSAGE: usize = 64 << 20;

/// Who may stream tenants (and with them every secret a sidecar needs) besides clients
/// whose certificates `TenantAccess` maps.
#[derive(Debug)]
pub struct SyncAdmission {
    /// Sync keys (`--sync-credentials`): a sidecar presenting one may stream every tenant.
    pub keys: Vec<OperatorKey>,
    /// Any peer may stream every tenant (`--insecure-open-sync`): only where the network
    /// alone decides who reaches the port.
    pub open: bool,
    /// Loopback peers may stream every tenant. `iamlet control-plane` allows them only when
    /// it listens on loopback, or with `--sync-allow-loopback`: behind a proxy in the pod (a
    /// service mesh, `kubectl port-forward`) every peer is loopback.
    pub loopback: bool,
}

impl Default for SyncAdmission {
    /// Certificates and loopback peers, no keys (in-process use and `iamlet up`).
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            open: false,
            loopback: true,
        }
    }
}

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefusal {
    /// The client did not prove who it is.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The client may not see what it asked for.
    #[error("{0}")]
    PermissionDenied(String),
    /// The stream did not start with a subscription.
    #[error("the stream must start with a subscription")]
    NoSubscription,
}

/// What a client presented when it opened a stream.
#[derive(Debug, Clone, Copy)]
pub struct SyncClient<'a> {
    /// A sync key (id, secret), if presented.
    pub key: Option<(&'a str, &'a str)>,
    /// The verified client certificate (DER), if any.
    pub certificate: Option<&'a [u8]>,
    /// The peer's address.
    pub peer: Option<std::net::SocketAddr>,
    /// Whether the connection is TLS.
    pub secure_transport: bool,
}

/// The tenants a stream follows.
#[derive(Debug)]
pub struct Subscription {
    /// `None`: every tenant.
    tenants: Option<Vec<String>>,
}

/// Why a stream was refused, before anything was read.
const SYNC_UNAUTHENTICATED: &str = "the sync API needs a client certificate (mutual TLS), sync \
     credentials (--sync-credentials) or a loopback peer";

// === impl SyncAdmission ===

impl SyncAdmission {
    /// Whether a stream may start: a presented sync key must be one of [`Self::keys`]; else
    /// a verified client certificate, a loopback peer or an open admission lets it in.
    pub fn admit(
        &self,
        presented: Option<(&str, &str)>,
        has_certificate: bool,
        peer: Option<std::net::SocketAddr>,
        secure_transport: bool,
    ) -> Result<(), SyncRefusal> {
        let loopback = peer.is_some_and(|p| p.ip().to_canonical().is_loopback());
        if let Some((id, secret)) = presented {
            // A key in the clear travels only where nobody can read it.
            if !secure_transport && !loopback {
                return Err(SyncRefusal::Unauthenticated(
                    "sync credentials are accepted only over TLS or from loopback",
                ));
            }
            let valid = self
                .keys
                .iter()
                .any(|k| k.access_key_id == id && k.secret_matches(secret));
            return if valid {
                Ok(())
            } else {
                Err(SyncRefusal::Unauthenticated(
                    "the sync credentials are not valid",
                ))
            };
        }
        if has_certificate || self.open || (self.loopback && loopback) {
            Ok(())
        } else {
            Err(SyncRefusal::Unauthenticated(SYNC_UNAUTHENTICATED))
        }
    }

    /// Admits `client` before anything of its stream is read, and returns the tenants it may
    /// see: `None` for every tenant. A presented sync key decides (every tenant, or refused),
    /// with or without a certificate map; otherwise the map limits certificates, and without
    /// one the admission policy decides.
    pub fn admit_client(
        &self,
        access: Option<&TenantAccess>,
        client: SyncClient<'_>,
    ) -> Result<Option<BTreeSet<String>>, SyncRefusal> {
        match (access, client.key) {
            (Some(access), None) => Ok(access.allowed(client.certificate)),
            (_, presented) => self
                .admit(
                    presented,
                    client.certificate.is_some(),
                    client.peer,
                    client.secure_transport,
                )
                .map(|()| None),
        }
    }
}

impl Subscription {
    /// What an admitted client that may see `allowed` (`None`: every tenant) follows when it
    /// subscribes to `subscribe` (`*` for every tenant it may see).
    pub fn try_new(
        allowed: Option<BTreeSet<String>>,
        subscribe: Vec<String>,
    ) -> Result<Self, SyncRefusal> {
        let all = subscribe.iter().any(|t| t == "*");
        let tenants = match (all, allowed) {
            (true, None) => None,
            (false, None) => Some(subscribe),
            (true, Some(allowed)) if allowed.is_empty() => {
                return Err(SyncRefusal::PermissionDenied(
                    "this client's certificate may not subscribe to any tenant".into(),
                ))
            }
            // `*` for a limited identity means every tenant it may see.
            (true, Some(allowed)) => Some(allowed.into_iter().collect()),
            (false, Some(allowed)) => {
                if let Some(denied) = subscribe.iter().find(|t| !allowed.contains(*t)) {
                    return Err(SyncRefusal::PermissionDenied(format!(
                        "this client's certificate may not subscribe to tenant `{}`",
                        crate::error::echo(denied)
                    )));
                }
                Some(subscribe)
            }
        };
        Ok(Self { tenants })
    }

    fn wants(&self, account: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == account))
    }
}

/// One response's worth of a stream's delta.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Tenant updates, at most [`MAX_RESPONSE_PAYLOAD`] bytes of payload together (unless one
    /// alone is larger).
    pub tenants: Vec<Arc<TenantUpdate>>,
    /// Tenants deleted since the sidecar had them (only in the last chunk).
    pub removed: Vec<String>,
    /// True for every chunk but the last.
    pub more: bool,
}

/// What one stream has sent, and what it sends next.
#[derive(Debug)]
pub struct WatchState {
    subscription: Subscription,
    /// What the sidecar has (its resume point, then what was sent to it).
    known: HashMap<String, SnapshotVersion>,
    /// Who the sidecar is, for its issuing certificates.
    identity: IssuingIdentity,
    /// The issuing certificates sent on this stream: tenant → (expiry, issuer key id).
    issued: HashMap<String, (i64, String)>,
}

/// The sidecar identity a stream's issuing certificates name, and their scope: from
/// `--tenant-access` for a client certificate it maps; otherwise (sync keys, loopback peers,
/// an open port: `iamlet up`) the one anonymous identity, unscoped, as every such sidecar
/// may stream every tenant anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingIdentity {
    /// The name certificates carry.
    pub sidecar: String,
    /// What its sidecars may mint.
    pub scope: IssuingScope,
}

/// A sidecar's issuing key for one tenant, with its certificate: for its own stream only.
pub struct IssuingGrant {
    /// The tenant.
    pub tenant: String,
    /// The certificate, as tokens carry it.
    pub certificate: String,
    /// The issuing key's 32-byte seed, base64.
    pub private_key: Secret,
}

impl std::fmt::Debug for IssuingGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingGrant")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

// === impl IssuingIdentity ===

impl IssuingIdentity {
    /// The identity of a sidecar without a mapped client certificate.
    pub fn anonymous() -> Self {
        Self {
            sidecar: "anonymous".into(),
            scope: IssuingScope::unscoped(),
        }
    }

    /// The identity of `client`: the identities its certificate matches in `access`, with
    /// their scope; anonymous and unscoped otherwise (a sync key streams every tenant).
    pub fn of(access: Option<&TenantAccess>, client: &SyncClient<'_>) -> Self {
        match (access, client.key) {
            (Some(access), None) => access
                .issuing_identity(client.certificate)
                .map_or_else(Self::anonymous, |(sidecar, scope)| Self { sidecar, scope }),
            _ => Self::anonymous(),
        }
    }
}

impl WatchState {
    /// A stream of `subscription`, from a sidecar that has `known`.
    pub fn new(subscription: Subscription, known: HashMap<String, SnapshotVersion>) -> Self {
        Self {
            subscription,
            known,
            identity: IssuingIdentity::anonymous(),
            issued: HashMap::new(),
        }
    }

    /// The identity the stream's issuing certificates name.
    #[must_use]
    pub fn with_identity(mut self, identity: IssuingIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// The issuing keys the sidecar needs at `now` (epoch seconds, injected so that tests
    /// drive renewal): one for each tenant it has been sent that has an active issuer key,
    /// when it has none yet, when the one sent is to be renewed (less than
    /// [`RENEW_BELOW_SECONDS`] left), or when the tenant's active issuer key changed. A
    /// tenant whose keys cannot certify is logged and skipped: the sidecar's previous
    /// certificate serves until it expires.
    pub fn grants(&mut self, current: &[ShippedTenant], now: i64) -> Vec<IssuingGrant> {
        self.issued
            .retain(|tenant, _| self.known.contains_key(tenant));
        let mut grants = Vec::new();
        for shipped in current {
            let account = shipped.account_id();
            if !self.known.contains_key(account) {
                continue;
            }
            let Some(active) = shipped.issuer_keys().iter().rev().find(|k| k.active) else {
                continue;
            };
            let due = self.issued.get(account).is_none_or(|(expires, key_id)| {
                expires.saturating_sub(now) < RENEW_BELOW_SECONDS || *key_id != active.key_id
            });
            if !due {
                continue;
            }
            match self.certify(shipped, now) {
                Ok((grant, expires)) => {
                    self.issued
                        .insert(account.to_owned(), (expires, active.key_id.clone()));
                    grants.push(grant);
                }
                Err(error) => tracing::error!(
                    tenant = account,
                    sidecar = %self.identity.sidecar,
                    %error,
                    "cannot certify an issuing key"
                ),
            }
        }
        grants
    }

    fn certify(&self, shipped: &ShippedTenant, now: i64) -> Result<(IssuingGrant, i64), String> {
        let keyring = IssuerKeyring::try_new(shipped.issuer_keys()).map_err(|e| e.to_string())?;
        let mut seed = [0u8; 32];
        IdGenerator::system().fill(&mut seed);
        let credential = IssuingCredential::generate(
            &keyring,
            shipped.account_id(),
            &self.identity.sidecar,
            self.identity.scope.clone(),
            seed,
            now,
        )
        .map_err(|e| e.to_string())?;
        let grant = IssuingGrant {
            tenant: shipped.account_id().to_owned(),
            certificate: credential.certificate().to_owned(),
            private_key: Secret::new(base64::engine::general_purpose::STANDARD.encode(seed)),
        };
        Ok((grant, credential.claims().expires_at))
    }

    /// Whether the stream may report usage for `tenant`: only for a tenant it follows (which
    /// its admission allowed), never for another one.
    pub fn admits_usage(&self, tenant: &str) -> bool {
        self.subscription.wants(tenant)
    }

    /// Every subscribed tenant of `current` the sidecar does not have at its current version,
    /// and every tenant it has that was deleted, in chunks. Empty when there is nothing to
    /// send, unless `always` (the first response always goes out, even empty: it tells the
    /// sidecar it is current).
    pub fn delta(&mut self, current: &[ShippedTenant], always: bool) -> Vec<Chunk> {
        let mut tenants = Vec::new();
        for shipped in current {
            let (account, version) = (shipped.account_id(), shipped.version);
            if !self.subscription.wants(account) || self.known.get(account) == Some(&version) {
                continue;
            }
            // Encoded once per version for every stream.
            let Some(update) = shipped.update() else {
                continue;
            };
            tenants.push(update);
            self.known.insert(account.to_owned(), version);
        }
        let live: HashSet<&str> = current.iter().map(ShippedTenant::account_id).collect();
        let removed: Vec<String> = self
            .known
            .keys()
            .filter(|k| !live.contains(k.as_str()))
            .cloned()
            .collect();
        for r in &removed {
            self.known.remove(r);
        }
        if tenants.is_empty() && removed.is_empty() && !always {
            return Vec::new();
        }
        // Removals ride with the last chunk, which alone says `more: false`.
        let mut chunks = vec![Chunk::default()];
        let mut size = 0;
        for tenant in tenants {
            let len = tenant.payload.len();
            if size + len > MAX_RESPONSE_PAYLOAD
                && chunks.last().is_some_and(|c| !c.tenants.is_empty())
            {
                chunks.push(Chunk::default());
                size = 0;
            }
            size += len;
            if let Some(chunk) = chunks.last_mut() {
                chunk.tenants.push(tenant);
            }
        }
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter_mut().enumerate() {
            chunk.more = i != last;
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.removed = removed;
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(open: bool) -> SyncAdmission {
        SyncAdmission {
            keys: vec![OperatorKey {
                name: "sidecars".into(),
                access_key_id: "IOPRSYNC".into(),
                secret: Secret::new("sync-secret"),
            }],
            open,
            loopback: true,
        }
    }

    #[test]
    fn only_keys_certificates_and_loopback_peers_may_stream() {
        let remote: std::net::SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mapped: std::net::SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let key = Some(("IOPRSYNC", "sync-secret"));
        let closed = admission(false);
        assert!(closed.admit(None, false, Some(local), false).is_ok());
        assert!(closed.admit(None, false, Some(mapped), false).is_ok());
        assert!(closed.admit(None, true, Some(remote), false).is_ok());
        assert!(closed.admit(key, false, Some(remote), true).is_ok());
        assert!(closed.admit(key, false, Some(local), false).is_ok());
        // A key in the clear from elsewhere is refused, right as it is.
        assert!(closed.admit(key, false, Some(remote), false).is_err());
        let refused = closed.admit(None, false, Some(remote), false).unwrap_err();
        assert!(matches!(refused, SyncRefusal::Unauthenticated(_)));
        assert!(closed.admit(None, false, None, false).is_err());
        // A presented key must be right, wherever it comes from.
        for presented in [
            ("IOPRSYNC", "wrong"),
            ("OTHER", "sync-secret"),
            ("IOPRSYNC", ""),
        ] {
            assert!(closed
                .admit(Some(presented), true, Some(local), true)
                .is_err());
        }
        assert!(admission(true)
            .admit(None, false, Some(remote), false)
            .is_ok());
        // Behind a proxy in the pod every peer is loopback: then loopback is not trusted.
        let proxied = SyncAdmission {
            loopback: false,
            ..admission(false)
        };
        assert!(proxied.admit(None, false, Some(local), false).is_err());
        assert!(proxied.admit(key, false, Some(local), false).is_ok());
    }
}

#[cfg(test)]
mod issuing_tests {
    use super::*;
    use crate::control_plane::{ControlPlane, SqliteStore};
    use crate::jose::certificate::CERTIFICATE_LIFETIME_SECONDS;

    const A: &str = "111122223333";
    const T0: i64 = 1_800_000_000;

    fn control_plane() -> ControlPlane {
        let store = SqliteStore::open_in_memory().unwrap();
        let cp = ControlPlane::open(Arc::new(store), IdGenerator::system()).unwrap();
        cp.create_tenant(A, None, "test").unwrap();
        cp.call(A, "test", "RotateIssuerKey", &serde_json::json!({}))
            .unwrap();
        cp
    }

    fn stream(identity: IssuingIdentity) -> WatchState {
        let subscription = Subscription::try_new(None, vec!["*".into()]).unwrap();
        WatchState::new(subscription, HashMap::new()).with_identity(identity)
    }

    /// Certificates go to a sidecar once it has the tenant, carry its identity and scope, are
    /// renewed once less than the renewal margin is left (an injected clock), and again when
    /// the tenant's issuer key rotates; never otherwise.
    #[test]
    fn grants_follow_the_tenant_and_renew_before_expiry() {
        let cp = control_plane();
        let scope = IssuingScope {
            all_roles: false,
            role_paths: vec!["/team-a/".into()],
            role_arns: Vec::new(),
            session_tokens: false,
        };
        let mut state = stream(IssuingIdentity {
            sidecar: "team-a.demo.svc".into(),
            scope: scope.clone(),
        });
        let current = cp.shipped_tenants();
        assert!(
            state.grants(&current, T0).is_empty(),
            "not sent the tenant yet"
        );
        state.delta(&current, true);
        let grants = state.grants(&current, T0);
        assert_eq!(grants.len(), 1);
        assert!(format!("{:?}", grants[0]).contains(A));
        // The sidecar checks what it receives against the public keys it was shipped.
        let shipped: Vec<_> = current[0]
            .issuer_keys()
            .iter()
            .map(crate::directory::IssuerKey::for_sidecars)
            .collect();
        let keyring = IssuerKeyring::try_new(&shipped).unwrap();
        let seed = base64::engine::general_purpose::STANDARD
            .decode(grants[0].private_key.expose())
            .unwrap();
        let credential =
            IssuingCredential::try_new(&keyring, A, &grants[0].certificate, &seed).unwrap();
        assert_eq!(credential.claims().sidecar, "team-a.demo.svc");
        assert_eq!(credential.claims().scope, scope);
        assert_eq!(
            credential.claims().expires_at,
            T0 + CERTIFICATE_LIFETIME_SECONDS
        );
        // Not due again until less than the margin is left.
        let renew_at = T0 + CERTIFICATE_LIFETIME_SECONDS - RENEW_BELOW_SECONDS;
        assert!(state.grants(&current, T0 + 60).is_empty());
        assert!(state.grants(&current, renew_at).is_empty());
        assert_eq!(state.grants(&current, renew_at + 1).len(), 1);
        assert!(state.grants(&current, renew_at + 2).is_empty());
        // A rotated issuer key certifies anew at once.
        cp.call(A, "test", "RotateIssuerKey", &serde_json::json!({}))
            .unwrap();
        let rotated = cp.shipped_tenants();
        state.delta(&rotated, false);
        assert_eq!(state.grants(&rotated, renew_at + 3).len(), 1);
    }

    #[test]
    fn a_sidecar_without_a_mapped_identity_is_anonymous_and_unscoped() {
        let client = SyncClient {
            key: None,
            certificate: None,
            peer: None,
            secure_transport: false,
        };
        assert_eq!(
            IssuingIdentity::of(None, &client),
            IssuingIdentity::anonymous()
        );
        assert_eq!(IssuingIdentity::anonymous().scope, IssuingScope::unscoped());
    }
}
