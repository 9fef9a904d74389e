//! Declarative tenants (GitOps): a whole tenant's IAM directory in one JSON or YAML file.
//!
//! A [`TenantSpec`] declares an account's users, groups, roles, customer managed policies,
//! instance profiles, OIDC and SAML providers, resource policies, pod identity associations,
//! password policy and alias. [`export`] reads a tenant into a spec;
//! [`plan`] lists the IAM actions ([`PlannedAction`]) that turn a tenant into what a spec
//! declares, in an order that [`dispatch`](super::dispatch) can run one after another. Running
//! the plan and exporting again gives the spec back (normalized: see
//! [`TenantSpec::normalized`]), and planning against a tenant that already matches gives an
//! empty plan.
//!
//! # The format
//!
//! ```json
//! {
//!   "AccountId": "111122223333",
//!   "AccountAlias": "demo",
//!   "ManagedPolicies": [
//!     {"PolicyName": "ReadReports", "Path": "/app/", "Description": "Reports, read-only",
//!      "PolicyDocument": {"Version": "2012-10-17", "Statement": [
//!        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}}
//!   ],
//!   "Groups": [{"GroupName": "readers",
//!               "ManagedPolicyArns": ["arn:aws:iam::111122223333:policy/app/ReadReports"]}],
//!   "Users": [{"UserName": "alice", "Groups": ["readers"], "Tags": {"team": "data"}}],
//!   "Roles": [{"RoleName": "ci", "AssumeRolePolicyDocument": {"Version": "2012-10-17",
//!              "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
//!                             "Action": "sts:AssumeRole"}]},
//!              "InlinePolicies": {"logs": {"Version": "2012-10-17", "Statement": [
//!                {"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}}}]
//! }
//! ```
//!
//! Field names are AWS's (PascalCase); unknown fields are errors, so a typo never goes
//! unnoticed. Policy documents are JSON values, not escaped strings (a string is accepted too
//! and parsed); documents are compared as parsed JSON (object key order and whitespace do not
//! matter), so reformatting a file plans nothing. Tags are a map of key to value. Empty lists
//! and maps, the root path `/` and the default session duration (3,600 s) may be left out;
//! [`export`] leaves them out and sorts every list by name.
//!
//! # What is not declared
//!
//! Secrets (access keys, login profiles, MFA devices, a SAML provider's private keys and the
//! assertion encryption mode that needs them) are not part of a spec: [`export`] leaves them
//! out and [`plan`] never touches them. A user who holds any of them is never
//! deleted: the plan fails with [`PlanError::UserHoldsCredentials`] instead. Older policy
//! versions are not declared either: a policy's document is its default version's, and a
//! changed document becomes a new default version.
//!
//! # Renames and replacements
//!
//! Entities are matched by name, case-insensitively as IAM does. As with AWS's own
//! declarative tools, a name that changes is a deletion and a creation. A user or group whose
//! path or name case changes is updated in place (`UpdateUser`, `UpdateGroup`). A role whose
//! path or name case changes, a managed policy whose path, name case or description changes
//! (descriptions are immutable), and an OIDC provider whose tags change (there is no action to
//! retag one) are replaced: deleted (after detaching whatever uses them) and created again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::directory::{PasswordPolicy, Tag, Tenant};

mod plan;

pub use plan::plan;

/// The default `MaxSessionDuration` of a role, in seconds.
const DEFAULT_MAX_SESSION_DURATION: u32 = 3_600;

/// AWS's `MinimumPasswordLength` when a password policy does not set it.
const DEFAULT_MINIMUM_PASSWORD_LENGTH: u32 = 6;

/// A whole tenant declared: what [`export`] writes and [`plan`] converges a tenant to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TenantSpec {
    /// The 12-digit account id; it must be the tenant's.
    pub account_id: String,
    /// The account alias; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_alias: Option<String>,
    /// Customer managed policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policies: Vec<ManagedPolicySpec>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupSpec>,
    /// Users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSpec>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleSpec>,
    /// OIDC identity providers.
    #[serde(
        default,
        rename = "OpenIDConnectProviders",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub open_id_connect_providers: Vec<OidcProviderSpec>,
    /// Resource-based policies: resource ARN → document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_policies: BTreeMap<String, Value>,
    /// EKS Pod Identity-style associations, identified by (cluster, namespace, service
    /// account).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_identity_associations: Vec<PodIdentityAssociationSpec>,
    /// Instance profiles and the role each passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_profiles: Vec<InstanceProfileSpec>,
    /// SAML identity providers (their metadata and tags; private keys are secrets, never
    /// declared).
    #[serde(
        default,
        rename = "SAMLProviders",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub saml_providers: Vec<SamlProviderSpec>,
    /// The account password policy; absent means none (AWS's defaults apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_policy: Option<PasswordPolicySpec>,
}

/// A declared instance profile. One whose path or name case changes is replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct InstanceProfileSpec {
    /// The name.
    pub instance_profile_name: String,
    /// The path; `/` when absent.
    #[serde(default = "root_path", skip_serializing_if = "is_root_path")]
    pub path: String,
    /// The names of its roles (declared roles; AWS allows one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Tags: key → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A declared SAML identity provider: its metadata document and tags. The private keys that
/// decrypt encrypted assertions, and the encryption mode that needs them, are left to
/// `UpdateSAMLProvider`, as secrets are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SamlProviderSpec {
    /// The name (the last part of its ARN).
    pub name: String,
    /// The IdP's SAML metadata document (XML).
    #[serde(rename = "SAMLMetadataDocument")]
    pub saml_metadata_document: String,
    /// Tags: key → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// The declared account password policy, with `UpdateAccountPasswordPolicy`'s parameters;
/// one left out takes AWS's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PasswordPolicySpec {
    /// The fewest characters (6..=128; 6 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_password_length: Option<u32>,
    /// At least one symbol.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_symbols: bool,
    /// At least one digit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_numbers: bool,
    /// At least one upper-case letter.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_uppercase_characters: bool,
    /// At least one lower-case letter.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_lowercase_characters: bool,
    /// Users may change their own password.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_users_to_change_password: bool,
    /// Days a password is valid (1..=1095); never expires when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_password_age: Option<u32>,
    /// How many previous passwords a new one may not repeat (1..=24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_reuse_prevention: Option<u32>,
    /// An expired password can only be reset by an administrator.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hard_expiry: bool,
}

// === impl PasswordPolicySpec ===

impl PasswordPolicySpec {
    /// The policy as stored, AWS's defaults filled in (what the directory answers).
    pub(super) fn from_policy(p: &PasswordPolicy) -> Self {
        Self {
            minimum_password_length: Some(p.minimum_password_length)
                .filter(|&n| n != DEFAULT_MINIMUM_PASSWORD_LENGTH),
            require_symbols: p.require_symbols,
            require_numbers: p.require_numbers,
            require_uppercase_characters: p.require_uppercase_characters,
            require_lowercase_characters: p.require_lowercase_characters,
            allow_users_to_change_password: p.allow_users_to_change_password,
            max_password_age: p.max_password_age,
            password_reuse_prevention: p.password_reuse_prevention,
            hard_expiry: p.hard_expiry.unwrap_or(false),
        }
    }

    /// The spec with its defaults written the way [`export`] writes them.
    pub(super) fn normalized(&self) -> Self {
        Self {
            minimum_password_length: self
                .minimum_password_length
                .filter(|&n| n != DEFAULT_MINIMUM_PASSWORD_LENGTH),
            ..self.clone()
        }
    }

    /// `UpdateAccountPasswordPolicy`'s parameters: every one, so the call sets exactly this
    /// policy whatever was there.
    pub(super) fn parameters(&self) -> Value {
        let mut p = serde_json::json!({
            "MinimumPasswordLength": self
                .minimum_password_length
                .unwrap_or(DEFAULT_MINIMUM_PASSWORD_LENGTH),
            "RequireSymbols": self.require_symbols,
            "RequireNumbers": self.require_numbers,
            "RequireUppercaseCharacters": self.require_uppercase_characters,
            "RequireLowercaseCharacters": self.require_lowercase_characters,
            "AllowUsersToChangePassword": self.allow_users_to_change_password,
            "HardExpiry": self.hard_expiry,
        });
        if let Value::Object(map) = &mut p {
            if let Some(days) = self.max_password_age {
                map.insert("MaxPasswordAge".into(), Value::from(days));
            }
            if let Some(n) = self.password_reuse_prevention {
                map.insert("PasswordReusePrevention".into(), Value::from(n));
            }
        }
        p
    }
}

/// A declared pod identity association: the pods of a service account get credentials of
/// a role. Its id is the directory's: an association whose provider or tags change is
/// replaced, one whose role changes is updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PodIdentityAssociationSpec {
    /// The cluster's name.
    pub cluster_name: String,
    /// The ARN of the OIDC provider that stands for the cluster's issuer.
    #[serde(rename = "OpenIDConnectProviderArn")]
    pub open_id_connect_provider_arn: String,
    /// The Kubernetes namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
    /// The role's ARN.
    pub role_arn: String,
    /// Tags: key → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

// === impl PodIdentityAssociationSpec ===

impl PodIdentityAssociationSpec {
    /// What identifies it: (cluster, namespace, service account).
    pub fn identity(&self) -> (&str, &str, &str) {
        (&self.cluster_name, &self.namespace, &self.service_account)
    }
}

/// A declared IAM user. Its access keys, password and MFA devices are not declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserSpec {
    /// The name.
    pub user_name: String,
    /// The path; `/` when absent.
    #[serde(default = "root_path", skip_serializing_if = "is_root_path")]
    pub path: String,
    /// The names of the groups the user belongs to (declared groups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// ARNs of the attached managed policies (declared or AWS managed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policy_arns: Vec<String>,
    /// Inline policies: name → document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inline_policies: BTreeMap<String, Value>,
    /// The ARN of the permissions boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    /// Tags: key → value (keys case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A declared IAM group. Its members are declared on the users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GroupSpec {
    /// The name.
    pub group_name: String,
    /// The path; `/` when absent.
    #[serde(default = "root_path", skip_serializing_if = "is_root_path")]
    pub path: String,
    /// ARNs of the attached managed policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policy_arns: Vec<String>,
    /// Inline policies: name → document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inline_policies: BTreeMap<String, Value>,
}

/// A declared IAM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// The name.
    pub role_name: String,
    /// The path; `/` when absent.
    #[serde(default = "root_path", skip_serializing_if = "is_root_path")]
    pub path: String,
    /// The description; absent (or empty) means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The longest session, in seconds; 3,600 when absent.
    #[serde(
        default = "default_max_session_duration",
        skip_serializing_if = "is_default_max_session_duration"
    )]
    pub max_session_duration: u32,
    /// The trust policy.
    pub assume_role_policy_document: Value,
    /// ARNs of the attached managed policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policy_arns: Vec<String>,
    /// Inline policies: name → document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inline_policies: BTreeMap<String, Value>,
    /// The ARN of the permissions boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    /// Tags: key → value (keys case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A declared customer managed policy: its ARN is
/// `arn:aws:iam::ACCOUNT:policy{Path}{PolicyName}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ManagedPolicySpec {
    /// The name.
    pub policy_name: String,
    /// The path; `/` when absent.
    #[serde(default = "root_path", skip_serializing_if = "is_root_path")]
    pub path: String,
    /// The description (immutable in IAM: changing it replaces the policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The document of the default version.
    pub policy_document: Value,
    /// Tags: key → value (keys case-sensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A declared OIDC identity provider, identified by its URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OidcProviderSpec {
    /// The issuer URL (`https://...`).
    pub url: String,
    /// Accepted audiences.
    #[serde(
        default,
        rename = "ClientIDList",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub client_id_list: Vec<String>,
    /// Certificate thumbprints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thumbprint_list: Vec<String>,
    /// The provider's signing keys, a JWKS document.
    pub jwks: Value,
    /// Tags: key → value (set at creation; changing them replaces the provider).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// One step of a plan: an IAM action by name with AWS's parameters, for
/// [`dispatch`](super::dispatch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PlannedAction {
    /// The action (`CreateUser`, `AttachRolePolicy`, ...).
    pub action: String,
    /// Its parameters, a JSON object with AWS's parameter names.
    pub parameters: Value,
}

/// Why a spec could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text is not a valid spec in JSON (unknown fields included).
    #[error("the tenant spec is not valid JSON for a tenant spec: {0}")]
    Json(String),
    /// The text is not a valid spec in YAML (unknown fields included).
    #[error("the tenant spec is not valid YAML for a tenant spec: {0}")]
    Yaml(String),
}

/// Why a plan could not be made. Nothing is planned when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The spec is for another account.
    #[error("the spec declares account {spec}, but the tenant is account {tenant}")]
    AccountMismatch {
        /// The tenant's account id.
        tenant: String,
        /// The spec's account id.
        spec: String,
    },
    /// Two entities of one kind share a name (IAM names are case-insensitive), or a tag key
    /// repeats.
    #[error("the spec for account {account} declares {what} {name} more than once (names are case-insensitive)")]
    Duplicate {
        /// The account.
        account: String,
        /// What repeats (`user`, `group`, `tag key on role ci`, ...).
        what: String,
        /// The repeated name.
        name: String,
    },
    /// A user is declared in a group the spec does not declare.
    #[error("in the spec for account {account}, user {user} is in group {group}, which the spec does not declare")]
    UnknownGroup {
        /// The account.
        account: String,
        /// The user.
        user: String,
        /// The group.
        group: String,
    },
    /// A policy is attached or used as a boundary that is neither declared nor AWS managed.
    #[error("in the spec for account {account}, {holder} uses policy {arn}, which is neither declared in the spec nor an AWS managed policy")]
    UnknownPolicy {
        /// The account.
        account: String,
        /// Who uses it (`user alice`, `role ci`, ...).
        holder: String,
        /// The policy's ARN.
        arn: String,
    },
    /// An instance profile names a role the spec does not declare.
    #[error("in the spec for account {account}, instance profile {profile} holds role {role}, which the spec does not declare")]
    UnknownRole {
        /// The account.
        account: String,
        /// The instance profile.
        profile: String,
        /// The role.
        role: String,
    },
    /// The spec leaves out a user who holds credentials, which a plan never deletes.
    #[error("user {user} of account {account} is not in the spec but holds {credentials}; a plan never deletes credentials: delete them first, or declare the user")]
    UserHoldsCredentials {
        /// The account.
        account: String,
        /// The user.
        user: String,
        /// What the user holds (`access keys, a login profile`).
        credentials: String,
    },
    /// A policy's document must change but no version can be deleted to make room.
    #[error("policy {arn} of account {account} has {versions} versions (the quota) and none but the default can be deleted to make room for a new one")]
    VersionQuota {
        /// The account.
        account: String,
        /// The policy's ARN.
        arn: String,
        /// Its version count.
        versions: usize,
    },
    /// A step of the plan would be refused (an invalid document or name, a quota, ...); the
    /// plan is checked by running it on a copy of the tenant.
    #[error("step {step} of the plan for account {account} ({action} on {subject}) would be refused: {code}: {message}")]
    Rejected {
        /// The account.
        account: String,
        /// The step, from 1.
        step: usize,
        /// The action.
        action: String,
        /// What it acts on (a user's name, a policy's ARN, ...).
        subject: String,
        /// AWS's error code.
        code: crate::error::AwsCode,
        /// The error's message.
        message: String,
    },
}

// === impl TenantSpec ===

impl TenantSpec {
    /// Reads a spec from JSON (text starting with `{`) or YAML (anything else).
    pub fn from_yaml_or_json(text: &str) -> Result<Self, SpecError> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| SpecError::Json(e.to_string()))
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| SpecError::Yaml(e.to_string()))
        }
    }

    /// The spec as YAML.
    pub fn to_yaml(&self) -> Result<String, SpecError> {
        serde_yaml_ng::to_string(self).map_err(|e| SpecError::Yaml(e.to_string()))
    }

    /// The spec as indented JSON.
    pub fn to_json(&self) -> Result<String, SpecError> {
        serde_json::to_string_pretty(self).map_err(|e| SpecError::Json(e.to_string()))
    }

    /// The spec as [`export`] would write it after applying it: entities and lists sorted by
    /// name (case-insensitively), a user's groups spelled as the groups are declared,
    /// duplicate group names, policy ARNs and client ids dropped, documents given as strings
    /// parsed, empty descriptions dropped. Two specs that plan the same
    /// directory have equal normalized forms.
    pub fn normalized(&self) -> Self {
        let group_names: BTreeMap<String, &str> = self
            .groups
            .iter()
            .map(|g| (key(&g.group_name), g.group_name.as_str()))
            .collect();
        let spelled = |g: &String| {
            group_names
                .get(&key(g))
                .map_or_else(|| g.clone(), |n| (*n).to_owned())
        };
        let mut users: Vec<UserSpec> = self
            .users
            .iter()
            .map(|u| UserSpec {
                user_name: u.user_name.clone(),
                path: u.path.clone(),
                groups: sorted_names(u.groups.iter().map(spelled)),
                managed_policy_arns: sorted_unique(u.managed_policy_arns.iter().cloned()),
                inline_policies: normalized_docs(&u.inline_policies),
                permissions_boundary: u.permissions_boundary.clone(),
                tags: u.tags.clone(),
            })
            .collect();
        users.sort_by_key(|u| key(&u.user_name));
        let mut groups: Vec<GroupSpec> = self
            .groups
            .iter()
            .map(|g| GroupSpec {
                group_name: g.group_name.clone(),
                path: g.path.clone(),
                managed_policy_arns: sorted_unique(g.managed_policy_arns.iter().cloned()),
                inline_policies: normalized_docs(&g.inline_policies),
            })
            .collect();
        groups.sort_by_key(|g| key(&g.group_name));
        let mut roles: Vec<RoleSpec> = self
            .roles
            .iter()
            .map(|r| RoleSpec {
                role_name: r.role_name.clone(),
                path: r.path.clone(),
                description: non_empty(r.description.as_deref()),
                max_session_duration: r.max_session_duration,
                assume_role_policy_document: desired_doc(&r.assume_role_policy_document),
                managed_policy_arns: sorted_unique(r.managed_policy_arns.iter().cloned()),
                inline_policies: normalized_docs(&r.inline_policies),
                permissions_boundary: r.permissions_boundary.clone(),
                tags: r.tags.clone(),
            })
            .collect();
        roles.sort_by_key(|r| key(&r.role_name));
        let mut managed_policies: Vec<ManagedPolicySpec> = self
            .managed_policies
            .iter()
            .map(|p| ManagedPolicySpec {
                policy_name: p.policy_name.clone(),
                path: p.path.clone(),
                description: non_empty(p.description.as_deref()),
                policy_document: desired_doc(&p.policy_document),
                tags: p.tags.clone(),
            })
            .collect();
        managed_policies.sort_by_key(|p| key(&p.policy_name));
        let mut open_id_connect_providers: Vec<OidcProviderSpec> = self
            .open_id_connect_providers
            .iter()
            .map(|o| OidcProviderSpec {
                url: o.url.clone(),
                client_id_list: sorted_unique(o.client_id_list.iter().cloned()),
                thumbprint_list: sorted(o.thumbprint_list.iter().cloned()),
                jwks: desired_doc(&o.jwks),
                tags: o.tags.clone(),
            })
            .collect();
        open_id_connect_providers.sort_by(|a, b| a.url.cmp(&b.url));
        let mut pod_identity_associations = self.pod_identity_associations.clone();
        pod_identity_associations.sort_by(|a, b| a.identity().cmp(&b.identity()));
        let role_names: BTreeMap<String, &str> = self
            .roles
            .iter()
            .map(|r| (key(&r.role_name), r.role_name.as_str()))
            .collect();
        let mut instance_profiles: Vec<InstanceProfileSpec> = self
            .instance_profiles
            .iter()
            .map(|p| InstanceProfileSpec {
                roles: sorted_names(p.roles.iter().map(|r| {
                    role_names
                        .get(&key(r))
                        .map_or_else(|| r.clone(), |n| (*n).to_owned())
                })),
                ..p.clone()
            })
            .collect();
        instance_profiles.sort_by_key(|p| key(&p.instance_profile_name));
        let mut saml_providers = self.saml_providers.clone();
        saml_providers.sort_by_key(|p| key(&p.name));
        Self {
            account_id: self.account_id.clone(),
            account_alias: self.account_alias.clone(),
            managed_policies,
            groups,
            users,
            roles,
            open_id_connect_providers,
            resource_policies: normalized_docs(&self.resource_policies),
            pod_identity_associations,
            instance_profiles,
            saml_providers,
            password_policy: self
                .password_policy
                .as_ref()
                .map(PasswordPolicySpec::normalized),
        }
    }
}

/// The tenant as a spec: everything declarable, lists sorted by name, documents as JSON
/// values; no secrets (access keys, passwords, MFA devices), no older policy versions.
pub fn export(tenant: &Tenant) -> TenantSpec {
    let users = tenant
        .users
        .values()
        .map(|u| UserSpec {
            user_name: u.name.clone(),
            path: u.path.clone(),
            groups: sorted_names(u.groups.iter().cloned()),
            managed_policy_arns: sorted_unique(u.attached_policies.iter().cloned()),
            inline_policies: stored_docs(&u.inline_policies),
            permissions_boundary: u.permissions_boundary.clone(),
            tags: tag_map(&u.tags),
        })
        .collect();
    let groups = tenant
        .groups
        .values()
        .map(|g| GroupSpec {
            group_name: g.name.clone(),
            path: g.path.clone(),
            managed_policy_arns: sorted_unique(g.attached_policies.iter().cloned()),
            inline_policies: stored_docs(&g.inline_policies),
        })
        .collect();
    // Service-linked roles are AWS's (a service's), not the spec's: never exported.
    let roles = tenant
        .roles
        .values()
        .filter(|r| !r.is_service_linked())
        .map(|r| RoleSpec {
            role_name: r.name.clone(),
            path: r.path.clone(),
            description: non_empty(r.description.as_deref()),
            max_session_duration: r.max_session_duration,
            assume_role_policy_document: stored_doc(&r.assume_role_policy),
            managed_policy_arns: sorted_unique(r.attached_policies.iter().cloned()),
            inline_policies: stored_docs(&r.inline_policies),
            permissions_boundary: r.permissions_boundary.clone(),
            tags: tag_map(&r.tags),
        })
        .collect();
    let managed_policies = tenant
        .policies
        .values()
        .map(|p| ManagedPolicySpec {
            policy_name: p.name.clone(),
            path: p.path.clone(),
            description: non_empty(p.description.as_deref()),
            policy_document: tenant
                .managed_policy_document(&p.arn)
                .map_or(Value::Null, stored_doc),
            tags: tag_map(&p.tags),
        })
        .collect();
    let mut open_id_connect_providers: Vec<OidcProviderSpec> = tenant
        .oidc_providers
        .values()
        .map(|o| OidcProviderSpec {
            url: o.url.clone(),
            client_id_list: sorted_unique(o.client_ids.iter().cloned()),
            thumbprint_list: sorted(o.thumbprints.iter().cloned()),
            jwks: stored_doc(&o.jwks),
            tags: tag_map(&o.tags),
        })
        .collect();
    open_id_connect_providers.sort_by(|a, b| a.url.cmp(&b.url));
    let resource_policies = tenant
        .resource_policies
        .values()
        .map(|p| (p.resource_arn.clone(), stored_doc(&p.document)))
        .collect();
    TenantSpec {
        account_id: tenant.account_id.clone(),
        account_alias: tenant.alias.clone(),
        managed_policies,
        groups,
        users,
        roles,
        open_id_connect_providers,
        resource_policies,
        pod_identity_associations: export_pod_identity_associations(tenant),
        instance_profiles: tenant
            .instance_profiles
            .values()
            .map(|p| InstanceProfileSpec {
                instance_profile_name: p.name.clone(),
                path: p.path.clone(),
                roles: sorted_names(p.roles.iter().cloned()),
                tags: tag_map(&p.tags),
            })
            .collect(),
        saml_providers: tenant
            .saml_providers
            .values()
            .map(|p| SamlProviderSpec {
                name: p.name.clone(),
                saml_metadata_document: p.metadata_document.clone(),
                tags: tag_map(&p.tags),
            })
            .collect(),
        password_policy: tenant
            .password_policy
            .as_ref()
            .map(PasswordPolicySpec::from_policy),
    }
}

fn export_pod_identity_associations(tenant: &Tenant) -> Vec<PodIdentityAssociationSpec> {
    let mut out: Vec<PodIdentityAssociationSpec> = tenant
        .pod_identity_associations
        .values()
        .map(|a| PodIdentityAssociationSpec {
            cluster_name: a.cluster_name.clone(),
            open_id_connect_provider_arn: a.oidc_provider_arn.clone(),
            namespace: a.namespace.clone(),
            service_account: a.service_account.clone(),
            role_arn: a.role_arn.clone(),
            tags: a.tags.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.identity().cmp(&b.identity()));
    out
}

// === helpers ===

fn root_path() -> String {
    "/".to_owned()
}

fn is_root_path(path: &str) -> bool {
    path == "/"
}

fn default_max_session_duration() -> u32 {
    DEFAULT_MAX_SESSION_DURATION
}

fn is_false(value: &bool) -> bool {
    !value
}

fn is_default_max_session_duration(seconds: &u32) -> bool {
    *seconds == DEFAULT_MAX_SESSION_DURATION
}

/// The map key of an IAM name: names are unique case-insensitively.
fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A stored document as a JSON value: parsed when it parses, the text itself otherwise.
fn stored_doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A declared document as a JSON value: a string is parsed when it parses.
fn desired_doc(value: &Value) -> Value {
    match value {
        Value::String(text) => stored_doc(text),
        other => other.clone(),
    }
}

/// The text to submit for a declared document: a string as written, anything else as
/// compact JSON (keys in the file's order).
fn doc_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether a stored document and a declared one are the same JSON (formatting and object
/// key order aside).
fn same_doc(stored: &str, desired: &Value) -> bool {
    stored_doc(stored) == desired_doc(desired)
}

fn stored_docs(docs: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    docs.iter()
        .map(|(name, text)| (name.clone(), stored_doc(text)))
        .collect()
}

fn normalized_docs(docs: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    docs.iter()
        .map(|(name, doc)| (name.clone(), desired_doc(doc)))
        .collect()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.filter(|t| !t.is_empty()).map(str::to_owned)
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.collect();
    items.sort();
    items
}

fn sorted_unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut items = sorted(items);
    items.dedup();
    items
}

/// IAM names sorted and deduplicated case-insensitively (the first spelling is kept).
fn sorted_names(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.collect();
    items.sort_by_key(|n| key(n));
    items.dedup_by(|a, b| key(a) == key(b));
    items
}

#[cfg(test)]
mod tests;
