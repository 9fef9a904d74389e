//! The entities of a tenant's IAM directory.
//!
//! Maps are keyed by the lowercased name, since IAM names are unique case-insensitively and
//! case-preserving; each entity keeps its name as written. Times are Unix seconds. Secrets are
//! [`Secret`]s: their `Debug` is redacted so they never reach a log line by accident.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value (a secret access key, an MFA seed, a password hash, a private key). Its
/// `Debug` prints `"..."`; only [`Secret::expose`] reads it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

/// One account: its identity and its IAM directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The 12-digit account id.
    pub account_id: String,
    /// The account alias, if set.
    pub alias: Option<String>,
    /// When the tenant was created.
    pub created_at: i64,
    /// The tenant's quotas.
    pub quotas: TenantQuotas,
    /// Users by lowercased name.
    pub users: BTreeMap<String, User>,
    /// Groups by lowercased name.
    pub groups: BTreeMap<String, Group>,
    /// Roles by lowercased name.
    pub roles: BTreeMap<String, Role>,
    /// Customer managed policies by lowercased name.
    pub policies: BTreeMap<String, ManagedPolicy>,
    /// OIDC providers by their URL without the scheme (the suffix of their ARN).
    pub oidc_providers: BTreeMap<String, OidcProvider>,
    /// Virtual MFA devices by serial number (their ARN).
    pub mfa_devices: BTreeMap<String, VirtualMfaDevice>,
    /// Resource-based policies registered by resource ARN.
    pub resource_policies: BTreeMap<String, ResourcePolicy>,
    /// Session-token issuer keys, newest last.
    pub issuer_keys: Vec<IssuerKey>,
    /// The root user's access key, created with the tenant and shown once (for bootstrap).
    #[serde(default)]
    pub root_access_key: Option<RootAccessKey>,
    /// Service control policies by name: set by the platform's operator, not by the tenant,
    /// they cap what every principal of the tenant may do, the root user included.
    #[serde(default)]
    pub service_control_policies: BTreeMap<String, ServiceControlPolicy>,
    /// EKS Pod Identity-style associations by association id (`a-…`): which role a
    /// Kubernetes service account's pods get credentials of.
    #[serde(default)]
    pub pod_identity_associations: BTreeMap<String, PodIdentityAssociation>,
    /// Instance profiles by lowercased name.
    #[serde(default)]
    pub instance_profiles: BTreeMap<String, InstanceProfile>,
    /// Service-linked role deletion tasks, oldest first; only the newest
    /// `RETAINED_DELETION_TASKS` are kept.
    #[serde(default)]
    pub service_linked_role_deletions: Vec<ServiceLinkedRoleDeletion>,
    /// The version of the session tokens STS's global endpoint issues
    /// (`SetSecurityTokenServicePreferences`).
    #[serde(default)]
    pub global_endpoint_token_version: GlobalEndpointTokenVersion,
    /// SAML identity providers by lowercased name.
    #[serde(default)]
    pub saml_providers: BTreeMap<String, SamlProvider>,
    /// The account password policy (`UpdateAccountPasswordPolicy`); AWS's default rules
    /// apply while it is unset.
    #[serde(default)]
    pub password_policy: Option<super::PasswordPolicy>,
    /// IAM Access Analyzer's unused-access analyzers by name.
    #[serde(default)]
    pub analyzers: BTreeMap<String, super::Analyzer>,
    /// The day and salt of what sidecars receive in place of access-key secrets.
    #[serde(default)]
    pub sidecar_keys: super::SidecarKeys,
}

/// An instance profile: the container that passes one role to an EC2 instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceProfile {
    /// The name as written.
    pub name: String,
    /// The path.
    pub path: String,
    /// The unique id (`AIPA…`).
    pub instance_profile_id: String,
    /// The ARN (`arn:aws:iam::A:instance-profile{path}{name}`).
    pub arn: String,
    /// When the profile was created.
    pub created_at: i64,
    /// The names of its roles, as written: at most one (AWS's
    /// `InstanceSessionsPerInstanceProfile`). A role in a profile cannot be deleted, so each
    /// names a role of the tenant.
    pub roles: Vec<String>,
    /// Tags (keys case-sensitive).
    pub tags: Vec<Tag>,
}

/// A service-linked role deletion task (`DeleteServiceLinkedRole`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLinkedRoleDeletion {
    /// `task/aws-service-role/{service}/{role}/{uuid}`.
    pub task_id: String,
    /// Where the task stands.
    pub status: DeletionTaskStatus,
    /// When it was submitted.
    pub submitted_at: i64,
}

/// The states of a service-linked role deletion task, as AWS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletionTaskStatus {
    /// The role is deleted.
    #[serde(rename = "SUCCEEDED")]
    Succeeded,
    /// The service is removing the role.
    #[serde(rename = "IN_PROGRESS")]
    InProgress,
    /// The service refused: it still uses the role.
    #[serde(rename = "FAILED")]
    Failed,
    /// The task is queued.
    #[serde(rename = "NOT_STARTED")]
    NotStarted,
}

/// The session tokens STS's global endpoint issues: `v1Token` (valid only in the regions
/// enabled by default, AWS's default) or `v2Token` (valid in every region).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GlobalEndpointTokenVersion {
    /// `v1Token`.
    #[default]
    #[serde(rename = "v1Token")]
    V1Token,
    /// `v2Token`.
    #[serde(rename = "v2Token")]
    V2Token,
}

/// A SAML 2.0 identity provider: its metadata (the signing certificates a future
/// `AssumeRoleWithSAML` verifies assertions with) and the private keys that decrypt
/// encrypted assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlProvider {
    /// The name as written.
    pub name: String,
    /// `arn:aws:iam::ACCOUNT:saml-provider/NAME`.
    pub arn: String,
    /// AWS's `SAMLProviderUUID`: 26 characters of `[A-Z2-7]`.
    pub uuid: String,
    /// The metadata document, as submitted (validated SAML 2.0 metadata).
    pub metadata_document: String,
    /// The IdP's `entityID` (the `Issuer` of its assertions).
    pub entity_id: String,
    /// The metadata's `validUntil`, if it has one: assertions are refused after it.
    pub valid_until: Option<i64>,
    /// When the provider was created.
    pub created_at: i64,
    /// Tags (keys case-sensitive).
    pub tags: Vec<Tag>,
    /// `Required` or `Allowed`, once set.
    pub assertion_encryption_mode: Option<String>,
    /// The private keys that decrypt assertions (at most two, for rotation).
    pub private_keys: Vec<SamlPrivateKey>,
}

/// A private key of a SAML provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlPrivateKey {
    /// AWS's `KeyId`: 26 characters of `[A-Z2-7]`.
    pub key_id: String,
    /// When the key was added.
    pub added_at: i64,
    /// The PEM private key, sealed at rest like every [`Secret`].
    pub private_key: Secret,
}

/// A pod identity association, modelled on EKS's: the pods of one service account of one
/// namespace of one cluster get credentials of one role. The cluster stands for its OIDC
/// issuer through a provider registered in the tenant, whose keys verify the pods' tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIdentityAssociation {
    /// `a-` and 17 lowercase alphanumerics, as EKS's.
    pub association_id: String,
    /// `arn:aws:eks:{region}:{account}:podidentityassociation/{cluster}/{id}`.
    pub association_arn: String,
    /// The cluster's name.
    pub cluster_name: String,
    /// The ARN of the tenant's OIDC provider that stands for the cluster's issuer.
    pub oidc_provider_arn: String,
    /// The Kubernetes namespace.
    pub namespace: String,
    /// The Kubernetes service account.
    pub service_account: String,
    /// The role whose credentials the pods get.
    pub role_arn: String,
    /// Tags (EKS's map, kept sorted by key).
    pub tags: BTreeMap<String, String>,
    /// When the association was created.
    pub created_at: i64,
    /// When it was last updated.
    pub modified_at: i64,
}

/// The root user's access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootAccessKey {
    /// The key id (`AKIA…`, encoding the account).
    pub access_key_id: String,
    /// The secret access key, shown once when the tenant is created.
    pub secret: Secret,
    /// When the key was created.
    pub created_at: i64,
}

/// A service control policy attached to the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceControlPolicy {
    /// The name, as written.
    pub name: String,
    /// The document, as submitted.
    pub document: String,
    /// When it was last set.
    pub updated_at: i64,
}

/// The quotas of a tenant (IAM-SEMANTICS §5.4); adjustable ones can be raised per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantQuotas {
    /// Users per account (5,000).
    pub users: usize,
    /// Groups per account (300).
    pub groups: usize,
    /// Roles per account (1,000).
    pub roles: usize,
    /// Customer managed policies per account (1,500).
    pub policies: usize,
    /// Managed policies attached to one user or role (10, at most 20).
    pub attached_per_user_or_role: usize,
    /// Managed policies attached to one group (10).
    pub attached_per_group: usize,
    /// Groups a user belongs to (10).
    pub groups_per_user: usize,
    /// Access keys per user (2).
    pub access_keys_per_user: usize,
    /// Versions per managed policy (5).
    pub versions_per_policy: usize,
    /// MFA devices per user (8).
    pub mfa_per_user: usize,
    /// Tags per entity (50).
    pub tags_per_entity: usize,
    /// OIDC providers per account (100).
    pub oidc_providers: usize,
    /// Trust policy size in non-whitespace characters (2,048, at most 4,096).
    pub trust_policy_size: usize,
    /// Aggregate inline policy size per user (2,048).
    pub user_inline_size: usize,
    /// Aggregate inline policy size per group (5,120).
    pub group_inline_size: usize,
    /// Aggregate inline policy size per role (10,240).
    pub role_inline_size: usize,
    /// Managed policy document size (6,144).
    pub managed_policy_size: usize,
    /// Instance profiles per account (1,000).
    #[serde(default = "default_instance_profiles_quota")]
    pub instance_profiles: usize,
}

/// AWS's default `InstanceProfilesPerAccount`; stored quotas predate the field.
fn default_instance_profiles_quota() -> usize {
    1_000
}

/// A tag on a user, role, policy or provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The key (case-insensitive on users and roles, case-sensitive elsewhere).
    pub key: String,
    /// The value (may be empty).
    pub value: String,
}

/// Inline policies of a user, group or role: name → document text, kept as submitted.
pub type InlinePolicies = BTreeMap<String, String>;

/// An IAM user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name as written.
    pub name: String,
    /// The path (`/` or `/division/`).
    pub path: String,
    /// The unique id (`AIDA…`).
    pub user_id: String,
    /// The ARN.
    pub arn: String,
    /// When the user was created.
    pub created_at: i64,
    /// Tags, in the order set.
    pub tags: Vec<Tag>,
    /// The ARN of the permissions boundary, if set.
    pub permissions_boundary: Option<String>,
    /// Inline policies.
    pub inline_policies: InlinePolicies,
    /// ARNs of attached managed policies, in attachment order.
    pub attached_policies: Vec<String>,
    /// Names of the groups the user belongs to.
    pub groups: Vec<String>,
    /// Access keys (at most the quota).
    pub access_keys: Vec<AccessKey>,
    /// The console password, if set.
    pub login_profile: Option<LoginProfile>,
    /// Serial numbers of the MFA devices enabled for the user.
    pub mfa_devices: Vec<String>,
}

/// An access key of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The key id (`AKIA…`).
    pub access_key_id: String,
    /// The secret access key, shown once when the key is created. Empty in what sidecars
    /// receive, which carries [`Self::derived`] instead.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub secret: Secret,
    /// What a sidecar holds in place of the secret (issue #20): set only on the copy shipped
    /// to sidecars ([`Tenant::derive_sidecar_keys`]), never in the control plane's store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<super::DerivedAccessKey>,
    /// Whether the key may be used.
    pub status: AccessKeyStatus,
    /// When the key was created.
    pub created_at: i64,
    /// When the key was last used, if ever.
    pub last_used_at: Option<i64>,
}

/// An access key's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessKeyStatus {
    /// The key authenticates requests.
    Active,
    /// The key is kept but refused.
    Inactive,
}

/// A user's console password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProfile {
    /// The password hash (`pbkdf2-sha256$ITERATIONS$SALT$HASH`, base64 parts).
    pub password_hash: Secret,
    /// The user must choose a new password at the next sign-in.
    pub password_reset_required: bool,
    /// When the profile was created.
    pub created_at: i64,
    /// When the password was last set; unset on profiles stored before it was recorded,
    /// whose `created_at` stands in.
    #[serde(default)]
    pub password_changed_at: Option<i64>,
    /// Hashes of the passwords before the current one, newest first: as many as the
    /// password policy's `PasswordReusePrevention` needs, never plaintext.
    #[serde(default)]
    pub previous_password_hashes: Vec<Secret>,
}

/// An IAM group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The name as written.
    pub name: String,
    /// The path.
    pub path: String,
    /// The unique id (`AGPA…`).
    pub group_id: String,
    /// The ARN.
    pub arn: String,
    /// When the group was created.
    pub created_at: i64,
    /// Inline policies.
    pub inline_policies: InlinePolicies,
    /// ARNs of attached managed policies.
    pub attached_policies: Vec<String>,
}

/// An IAM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The name as written.
    pub name: String,
    /// The path.
    pub path: String,
    /// The unique id (`AROA…`).
    pub role_id: String,
    /// The ARN.
    pub arn: String,
    /// When the role was created.
    pub created_at: i64,
    /// The description.
    pub description: Option<String>,
    /// The longest session `AssumeRole` may grant, in seconds (3,600–43,200).
    pub max_session_duration: u32,
    /// The trust policy, as submitted.
    pub assume_role_policy: String,
    /// Tags.
    pub tags: Vec<Tag>,
    /// The ARN of the permissions boundary, if set.
    pub permissions_boundary: Option<String>,
    /// Inline policies.
    pub inline_policies: InlinePolicies,
    /// ARNs of attached managed policies.
    pub attached_policies: Vec<String>,
    /// Sessions issued before this time are denied (`RevokeSessions`, AWS's
    /// `AWSRevokeOlderSessions`).
    pub sessions_revoked_before: Option<i64>,
}

/// A customer managed policy with its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedPolicy {
    /// The name as written.
    pub name: String,
    /// The path.
    pub path: String,
    /// The unique id (`ANPA…`).
    pub policy_id: String,
    /// The ARN.
    pub arn: String,
    /// The description (set at creation, immutable).
    pub description: Option<String>,
    /// When the policy was created.
    pub created_at: i64,
    /// When a version was last added or made default.
    pub updated_at: i64,
    /// The id of the default version (`v3`).
    pub default_version_id: String,
    /// The stored versions (at most the quota), oldest first.
    pub versions: Vec<PolicyVersionEntry>,
    /// The number the next version gets.
    pub next_version: u32,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// One version of a managed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersionEntry {
    /// `v1`, `v2`, ...
    pub version_id: String,
    /// The document, as submitted.
    pub document: String,
    /// When the version was created.
    pub created_at: i64,
}

/// An OIDC identity provider, with the keys sidecars verify its tokens with offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProvider {
    /// The issuer URL (`https://oidc.example.com/id/X`).
    pub url: String,
    /// The ARN (`arn:aws:iam::A:oidc-provider/oidc.example.com/id/X`).
    pub arn: String,
    /// Accepted audiences (client ids).
    pub client_ids: Vec<String>,
    /// Certificate thumbprints (40 hex characters each).
    pub thumbprints: Vec<String>,
    /// The provider's signing keys as a JWKS document.
    pub jwks: String,
    /// When the provider was created.
    pub created_at: i64,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// A virtual MFA device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualMfaDevice {
    /// The serial number (`arn:aws:iam::A:mfa/name`).
    pub serial_number: String,
    /// The device name.
    pub name: String,
    /// The path.
    pub path: String,
    /// The TOTP seed, base32 (RFC 3548), shown once at creation.
    pub seed: Secret,
    /// The user the device is enabled for, if any.
    pub user: Option<String>,
    /// When it was enabled.
    pub enabled_at: Option<i64>,
    /// The last accepted TOTP time step, so a code is never accepted twice (open point U12).
    pub last_used_step: Option<u64>,
    /// Tags (keys case-sensitive).
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// How many time steps the device's clock runs ahead of ours (behind when negative), as
    /// `ResyncMFADevice` measured it; codes are expected around the shifted step.
    #[serde(default)]
    pub drift_steps: i64,
}

/// A resource-based policy registered for a resource ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcePolicy {
    /// The resource's ARN.
    pub resource_arn: String,
    /// The document, as submitted.
    pub document: String,
    /// When it was last set.
    pub updated_at: i64,
}

/// A key that signs the tenant's session tokens (and the certificates of sidecars' issuing
/// keys), with the tenant-wide session-secret key that goes with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerKey {
    /// The key id carried in tokens and certificates.
    pub key_id: String,
    /// The Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The Ed25519 private key's 32-byte seed, base64: held by the control plane alone, never
    /// shipped to sidecars (`None` in what they receive; see the trust model in `sts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Secret>,
    /// The symmetric key session secrets are derived from, base64 (32 bytes): sidecars hold it,
    /// because SigV4 is symmetric. `None` for a key stored before it existed: it is then the
    /// HMAC of the seed that derived secrets before ([`IssuerKey::for_sidecars`] fills it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_secret: Option<Secret>,
    /// When the key was created.
    pub created_at: i64,
    /// True while tokens are signed with it; retired keys still verify until removed.
    pub active: bool,
}

// === impl IssuerKey ===

impl IssuerKey {
    /// The key as a sidecar receives it: the public key and the session-secret key (derived
    /// from the seed for a key stored before the two were split), never the private key.
    pub fn for_sidecars(&self) -> Self {
        let session_secret = self.session_secret.clone().or_else(|| {
            self.private_key
                .as_ref()
                .and_then(|seed| crate::jose::session_secret_from_seed(seed.expose()))
                .map(Secret::new)
        });
        Self {
            key_id: self.key_id.clone(),
            public_key: self.public_key.clone(),
            private_key: None,
            session_secret,
            created_at: self.created_at,
            active: self.active,
        }
    }
}

impl crate::jose::IssuerKeySource for IssuerKey {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn private_seed_base64(&self) -> Option<&str> {
        self.private_key.as_ref().map(Secret::expose)
    }

    fn session_secret_base64(&self) -> Option<&str> {
        self.session_secret.as_ref().map(Secret::expose)
    }

    fn active(&self) -> bool {
        self.active
    }
}

// === impl Secret ===

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's value: every read is deliberate and greppable.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces the value (sealing and opening at the store's boundary).
    pub fn replace(&mut self, value: String) {
        self.0 = value;
    }

    /// Whether there is no value (an access key's secret in what sidecars receive).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"...\"")
    }
}

// === impl TenantQuotas ===

impl Default for TenantQuotas {
    fn default() -> Self {
        Self {
            users: 5_000,
            groups: 300,
            roles: 1_000,
            policies: 1_500,
            attached_per_user_or_role: 10,
            attached_per_group: 10,
            groups_per_user: 10,
            access_keys_per_user: 2,
            versions_per_policy: 5,
            mfa_per_user: 8,
            tags_per_entity: 50,
            oidc_providers: 100,
            trust_policy_size: 2_048,
            user_inline_size: 2_048,
            group_inline_size: 5_120,
            role_inline_size: 10_240,
            managed_policy_size: 6_144,
            instance_profiles: default_instance_profiles_quota(),
        }
    }
}

// === impl Tenant ===

impl Tenant {
    /// An empty tenant.
    pub fn new(account_id: impl Into<String>, created_at: i64) -> Self {
        Self {
            account_id: account_id.into(),
            alias: None,
            created_at,
            quotas: TenantQuotas::default(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            policies: BTreeMap::new(),
            oidc_providers: BTreeMap::new(),
            mfa_devices: BTreeMap::new(),
            resource_policies: BTreeMap::new(),
            issuer_keys: Vec::new(),
            root_access_key: None,
            service_control_policies: BTreeMap::new(),
            pod_identity_associations: BTreeMap::new(),
            instance_profiles: BTreeMap::new(),
            service_linked_role_deletions: Vec::new(),
            global_endpoint_token_version: GlobalEndpointTokenVersion::default(),
            saml_providers: BTreeMap::new(),
            password_policy: None,
            analyzers: BTreeMap::new(),
            sidecar_keys: super::SidecarKeys::default(),
        }
    }

    /// Every secret the tenant holds, to seal before it is stored and open after it is read.
    pub fn secrets_mut(&mut self) -> impl Iterator<Item = &mut Secret> {
        let keys = self.users.values_mut().flat_map(|u| {
            let passwords = u.login_profile.as_mut().into_iter().flat_map(|p| {
                std::iter::once(&mut p.password_hash).chain(p.previous_password_hashes.iter_mut())
            });
            u.access_keys
                .iter_mut()
                .map(|k| &mut k.secret)
                .chain(passwords)
        });
        let mfa = self.mfa_devices.values_mut().map(|d| &mut d.seed);
        let issuer = self
            .issuer_keys
            .iter_mut()
            .flat_map(|k| k.private_key.iter_mut().chain(k.session_secret.iter_mut()));
        let root = self.root_access_key.as_mut().map(|k| &mut k.secret);
        let saml = self
            .saml_providers
            .values_mut()
            .flat_map(|p| p.private_keys.iter_mut().map(|k| &mut k.private_key));
        keys.chain(mfa).chain(issuer).chain(root).chain(saml)
    }

    /// The ARN of an entity of this account: `arn:aws:iam::ACCOUNT:{kind}{path}{name}`.
    pub fn arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:{kind}{path}{name}", self.account_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let key = AccessKey {
            access_key_id: "AKIAEXAMPLE".into(),
            secret: Secret::new("CANARY-SECRET-wJalrXUtnFEMI"),
            derived: None,
            status: AccessKeyStatus::Active,
            created_at: 0,
            last_used_at: None,
        };
        let printed = format!("{key:?}");
        assert!(!printed.contains("CANARY"), "{printed}");
        assert!(printed.contains("AKIAEXAMPLE"));
        assert_eq!(key.secret.expose(), "CANARY-SECRET-wJalrXUtnFEMI");
    }

    #[test]
    fn tenants_round_trip_through_json() {
        let mut t = Tenant::new("111122223333", 1_700_000_000);
        t.alias = Some("demo".into());
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Tenant>(&json).unwrap(), t);
    }
}
