//! The IAM operations on a tenant, as methods of [`Tenant`].
//!
//! Every mutating operation validates everything first (parameters, existence, uniqueness,
//! quotas, policy documents) and mutates only once nothing can fail, so a failed call leaves
//! the tenant exactly as it was. Errors carry IAM's code and, where known, IAM's text.
//!
//! | file | operations |
//! |---|---|
//! | `users.rs` | users, user tags |
//! | `groups.rs` | groups and membership |
//! | `roles.rs` | roles, trust policies, role tags, session revocation |
//! | `policies.rs` | managed policies and versions, attachments, inline policies, boundaries |
//! | `credentials.rs` | access keys, login profiles, virtual MFA devices |
//! | `federation.rs` | OIDC providers, resource policies, the account alias |
//! | `pod_identity.rs` | EKS Pod Identity-style associations |
//! | `instance_profiles.rs` | instance profiles, their role and tags |
//! | `service_linked.rs` | service-linked roles and their deletion tasks, STS preferences |
//! | `saml.rs` | SAML identity providers: metadata, tags, private keys |
//! | `password_policy.rs` | the account password policy and its rules for passwords |

use super::aws_managed::{aws_managed_policy, is_aws_managed_arn};
use super::{validate, DirectoryError, Group, ManagedPolicy, Role, Tag, Tenant, User};

mod credentials;
mod federation;
mod groups;
mod instance_profiles;
mod issuer;
mod password_policy;
mod pod_identity;
mod policies;
mod roles;
mod saml;
mod service_linked;
mod users;

pub use credentials::{AccessKeyMetadata, MfaDeviceInfo, MfaDeviceMetadata};
pub use federation::CreateOidcProviderInput;
pub use instance_profiles::CreateInstanceProfileInput;
pub use issuer::RETAINED_ISSUER_KEYS;
pub use password_policy::{PasswordPolicy, PasswordPolicyInput};
pub use pod_identity::{
    PodIdentityAssociationInput, UpdatePodIdentityAssociation, EKS_REGION, POD_IDENTITY_SERVICE,
};
pub use policies::{AttachedPolicy, CreatePolicyInput};
pub use roles::CreateRoleInput;
#[cfg(test)]
pub(crate) use saml::fixtures as saml_fixtures;
pub use saml::{
    parse_metadata, CreateSamlProviderInput, SamlMetadata, UpdateSamlProviderInput,
    MAX_SAML_PROVIDERS,
};
pub use service_linked::{
    CreateServiceLinkedRoleInput, ServiceLinkedRoleSpec, RETAINED_DELETION_TASKS,
    SERVICE_LINKED_ROLES, SERVICE_ROLE_PATH_PREFIX,
};
pub use users::CreateUserInput;

/// The map key of a name: IAM names are unique case-insensitively (and ASCII).
fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// The path to use: the given one, validated, or `/`.
fn path_or_root(
    path: Option<&str>,
    validate: fn(&str, &str) -> Result<(), DirectoryError>,
) -> Result<String, DirectoryError> {
    match path {
        Some(p) => {
            validate(p, "path")?;
            Ok(p.to_owned())
        }
        None => Ok("/".to_owned()),
    }
}

/// Whether `path` starts with the optional listing prefix.
fn under_prefix(path: &str, prefix: Option<&str>) -> bool {
    prefix.is_none_or(|p| path.starts_with(p))
}

fn validate_prefix(prefix: Option<&str>) -> Result<(), DirectoryError> {
    prefix.map_or(Ok(()), validate::path_prefix)
}

fn no_such_user(name: &str) -> DirectoryError {
    DirectoryError::NoSuchEntity(format!("The user with name {name} cannot be found."))
}

fn no_such_group(name: &str) -> DirectoryError {
    DirectoryError::NoSuchEntity(format!("The group with name {name} cannot be found."))
}

fn no_such_role(name: &str) -> DirectoryError {
    DirectoryError::NoSuchEntity(format!("The role with name {name} cannot be found."))
}

fn quota_exceeded(quota: &str, limit: usize) -> DirectoryError {
    DirectoryError::LimitExceeded(format!("Cannot exceed quota for {quota}: {limit}"))
}

/// Merges `new` tags into `tags`: a tag whose key is already there replaces it (keys compared
/// case-insensitively where `case_insensitive`), others are appended. Fails with
/// `LimitExceeded` if the result would have more than `quota` tags; `tags` is untouched then.
fn merge_tags(
    tags: &[Tag],
    new: &[Tag],
    case_insensitive: bool,
    quota: usize,
    quota_name: &str,
) -> Result<Vec<Tag>, DirectoryError> {
    validate::tags(new, case_insensitive)?;
    let same = |a: &str, b: &str| {
        if case_insensitive {
            a.to_lowercase() == b.to_lowercase()
        } else {
            a == b
        }
    };
    let mut merged = tags.to_vec();
    for tag in new {
        match merged.iter_mut().find(|t| same(&t.key, &tag.key)) {
            Some(existing) => *existing = tag.clone(),
            None => merged.push(tag.clone()),
        }
    }
    if merged.len() > quota {
        return Err(quota_exceeded(quota_name, quota));
    }
    Ok(merged)
}

/// Removes the tags with these keys (absent keys are ignored, as IAM does).
fn remove_tags(tags: &mut Vec<Tag>, keys: &[String], case_insensitive: bool) {
    tags.retain(|t| {
        !keys.iter().any(|k| {
            if case_insensitive {
                k.to_lowercase() == t.key.to_lowercase()
            } else {
                *k == t.key
            }
        })
    });
}

// === impl Tenant ===

impl Tenant {
    fn user_ref(&self, name: &str) -> Result<&User, DirectoryError> {
        self.users.get(&key(name)).ok_or_else(|| no_such_user(name))
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User, DirectoryError> {
        self.users
            .get_mut(&key(name))
            .ok_or_else(|| no_such_user(name))
    }

    fn group_ref(&self, name: &str) -> Result<&Group, DirectoryError> {
        self.groups
            .get(&key(name))
            .ok_or_else(|| no_such_group(name))
    }

    fn group_mut(&mut self, name: &str) -> Result<&mut Group, DirectoryError> {
        self.groups
            .get_mut(&key(name))
            .ok_or_else(|| no_such_group(name))
    }

    fn role_ref(&self, name: &str) -> Result<&Role, DirectoryError> {
        self.roles.get(&key(name)).ok_or_else(|| no_such_role(name))
    }

    fn role_mut(&mut self, name: &str) -> Result<&mut Role, DirectoryError> {
        self.roles
            .get_mut(&key(name))
            .ok_or_else(|| no_such_role(name))
    }

    /// The map key of the customer managed policy with this ARN, if the tenant has one.
    fn customer_policy_key(&self, arn: &str) -> Option<String> {
        let name = arn.rsplit('/').next()?;
        let k = key(name);
        self.policies.get(&k).filter(|p| p.arn == arn).map(|_| k)
    }

    /// The customer managed policy with this ARN; AWS-managed ARNs are `UnmodifiableEntity`
    /// when `mutating` and the catalog has them.
    fn customer_policy(&self, arn: &str, mutating: bool) -> Result<&ManagedPolicy, DirectoryError> {
        if let Some(policy) = self
            .customer_policy_key(arn)
            .and_then(|k| self.policies.get(&k))
        {
            return Ok(policy);
        }
        if mutating && is_aws_managed_arn(arn) && aws_managed_policy(arn).is_some() {
            return Err(DirectoryError::UnmodifiableEntity(format!(
                "Policy {arn} is an AWS managed policy and cannot be modified."
            )));
        }
        Err(DirectoryError::NoSuchEntity(format!(
            "Policy {arn} was not found."
        )))
    }

    /// Checks that `arn` names a policy that can be attached or used as a boundary: one of
    /// the tenant's customer managed policies or a catalog AWS-managed policy.
    fn check_attachable(&self, arn: &str) -> Result<(), DirectoryError> {
        if self.customer_policy_key(arn).is_some() || aws_managed_policy(arn).is_some() {
            return Ok(());
        }
        Err(DirectoryError::NoSuchEntity(format!(
            "Policy {arn} does not exist or is not attachable."
        )))
    }

    /// Checks that `arn` names a policy that can be a permissions boundary.
    fn check_boundary(&self, arn: &str) -> Result<(), DirectoryError> {
        if self.customer_policy_key(arn).is_some() || aws_managed_policy(arn).is_some() {
            return Ok(());
        }
        Err(DirectoryError::NoSuchEntity(format!(
            "Scope ARN: {arn} does not exist or is not attachable."
        )))
    }

    /// The document of the default version of an attachable policy (customer managed or
    /// AWS-managed), for building snapshots.
    pub fn managed_policy_document(&self, arn: &str) -> Option<&str> {
        if let Some(policy) = self
            .customer_policy_key(arn)
            .and_then(|k| self.policies.get(&k))
        {
            return policy
                .versions
                .iter()
                .find(|v| v.version_id == policy.default_version_id)
                .map(|v| v.document.as_str());
        }
        aws_managed_policy(arn).map(|p| p.document)
    }
}

#[cfg(test)]
mod tests;
