//! The tenant update wire format: what the control plane ships and a sidecar applies, one
//! tenant's directory as JSON with its version, digest and the control plane's signature
//! ([`super::sign`]). It lives with the snapshots it
//! becomes, below both the control plane (which builds updates) and `sync` (which applies them).

use data_encoding::HEXLOWER;
use ring::digest;

use crate::directory::Tenant;

use super::sign::{SigningKey, SnapshotSignature};
use super::{SnapshotVersion, StoreRef};

/// One tenant's update as the control plane sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUpdate {
    /// The tenant.
    pub account_id: String,
    /// The version.
    pub version: SnapshotVersion,
    /// The tenant's directory as JSON.
    pub payload: String,
    /// Lowercase hex SHA-256 of `payload`.
    pub sha256: String,
    /// The control plane's signature over the account, version, store and digest (`None`
    /// from a control plane that does not sign; a verifying sidecar refuses it).
    pub signature: Option<SnapshotSignature>,
}

// === impl TenantUpdate ===

impl TenantUpdate {
    /// An update for `tenant` at `version`, with its digest.
    pub fn new(tenant: &Tenant, version: SnapshotVersion) -> Result<Self, serde_json::Error> {
        let payload = serde_json::to_string(&for_sidecars(tenant.clone()))?;
        Ok(Self {
            account_id: tenant.account_id.clone(),
            version,
            sha256: sha256_hex(&payload),
            payload,
            signature: None,
        })
    }

    /// [`Self::new`], signed by `key` for `store`.
    pub fn signed(
        tenant: &Tenant,
        version: SnapshotVersion,
        key: &SigningKey,
        store: &StoreRef,
    ) -> Result<Self, serde_json::Error> {
        let mut update = Self::new(tenant, version)?;
        update.signature = Some(key.sign(&update.account_id, version, store, &update.sha256));
        Ok(update)
    }
}

/// `tenant` without what sidecars never use and must not hold: the root user's key (for the
/// admin API alone), console password hashes (nobody signs in at a sidecar), the issuer's
/// private keys (the control plane certifies sidecars' issuing keys instead) and access-key
/// secrets, replaced by their verifiers and date keys for the tenant's key day and the next
/// ([`Tenant::derive_sidecar_keys`]; the daily roll keeps that day current). A sidecar's
/// stream or state directory then reveals none of them.
pub fn for_sidecars(mut tenant: Tenant) -> Tenant {
    tenant.root_access_key = None;
    // The issuer's private keys stay at the control plane: sidecars mint with issuing keys
    // it certifies for them (issue #20), and verify with the public keys.
    tenant.issuer_keys = tenant
        .issuer_keys
        .iter()
        .map(crate::directory::IssuerKey::for_sidecars)
        .collect();
    for user in tenant.users.values_mut() {
        user.login_profile = None;
    }
    tenant.derive_sidecar_keys();
    tenant
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    HEXLOWER.encode(digest::digest(&digest::SHA256, text.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_lowercase_hex_sha256() {
        // FIPS 180-2's test vector for "abc".
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn an_update_carries_the_digest_of_its_payload_without_root_keys() {
        let mut tenant = Tenant::new("111122223333", 0);
        tenant.root_access_key = Some(crate::directory::RootAccessKey {
            access_key_id: "AKIAAAAAAAAAAAAAAAAA".into(),
            secret: crate::directory::Secret::new("root-secret"),
            created_at: 0,
        });
        let update = TenantUpdate::new(&tenant, SnapshotVersion::new(1, 2)).unwrap();
        assert_eq!(update.sha256, sha256_hex(&update.payload));
        let shipped: Tenant = serde_json::from_str(&update.payload).unwrap();
        assert!(shipped.root_access_key.is_none());
        assert!(!update.payload.contains("root-secret"));
    }

    #[test]
    fn an_update_carries_date_keys_and_verifiers_never_secrets() {
        let mut tenant = Tenant::new("111122223333", 0);
        let mut ids = crate::directory::IdGenerator::seeded(3);
        tenant
            .create_user(
                &mut ids,
                0,
                crate::directory::CreateUserInput {
                    name: "alice".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let key = tenant.create_access_key(&mut ids, 0, "alice").unwrap();
        tenant.roll_sidecar_keys(&mut ids, 20_000 * 86_400 + 3_600);
        let update = TenantUpdate::new(&tenant, SnapshotVersion::new(1, 2)).unwrap();
        assert!(!update.payload.contains(key.secret.expose()));
        let shipped: Tenant = serde_json::from_str(&update.payload).unwrap();
        let held = &shipped.users["alice"].access_keys[0];
        assert!(held.secret.is_empty());
        let derived = held.derived.as_ref().unwrap();
        assert_eq!(derived.days().collect::<Vec<_>>(), ["20241004", "20241005"]);
        // Projecting again (the sidecar does, for older control planes) changes nothing.
        assert_eq!(for_sidecars(shipped.clone()), shipped);
    }
}
