//! EKS Pod Identity-style associations: the pods of one Kubernetes service account get
//! credentials of one role.
//!
//! Modelled on EKS's `CreatePodIdentityAssociation`, `DescribePodIdentityAssociation`,
//! `ListPodIdentityAssociations`, `UpdatePodIdentityAssociation` and
//! `DeletePodIdentityAssociation`, with EKS's constraints and error codes: one association per
//! (cluster, namespace, service account) (`ResourceInUseException`), unknown associations
//! `ResourceNotFoundException`, bad parameters `InvalidParameterException`. iamlet has no
//! clusters: a cluster is its name and the tenant's OIDC provider that stands for its issuer
//! (whose keys verify the pods' service-account tokens), and every association of one cluster
//! names the same provider.

use std::collections::BTreeMap;

use crate::directory::{DirectoryError, IdGenerator, PodIdentityAssociation, Tenant};
use crate::policy::ArnParts;

/// The service principal EKS Pod Identity assumes roles as; a role's trust policy must allow
/// it `sts:AssumeRole` and `sts:TagSession`.
pub const POD_IDENTITY_SERVICE: &str = "pods.eks.amazonaws.com";

/// The region written into association and cluster ARNs: iamlet has no regions, and a fixed
/// one keeps the ARNs, and the `eks-cluster-arn` session tag, stable.
pub const EKS_REGION: &str = "us-east-1";

/// Associations one cluster may have (EKS's quota).
const MAX_PER_CLUSTER: usize = 5_000;
/// Tags per association (EKS's limit).
const MAX_TAGS: usize = 50;
/// The largest page `ListPodIdentityAssociations` answers.
const MAX_RESULTS: usize = 100;

/// `CreatePodIdentityAssociation`'s parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentityAssociationInput {
    /// The cluster's name.
    pub cluster_name: String,
    /// The ARN of the tenant's OIDC provider for the cluster's issuer.
    pub oidc_provider_arn: String,
    /// The Kubernetes namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
    /// The role's ARN (a role of this tenant).
    pub role_arn: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// `UpdatePodIdentityAssociation`'s changes: only the role can change, as in EKS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdatePodIdentityAssociation {
    /// The new role's ARN, when it changes.
    pub role_arn: Option<String>,
}

fn invalid(message: impl Into<String>) -> DirectoryError {
    DirectoryError::InvalidParameter(message.into())
}

fn not_found(cluster: &str, id: &str) -> DirectoryError {
    DirectoryError::ResourceNotFound(format!(
        "No Pod Identity Association found for cluster {cluster} with id {id}"
    ))
}

/// EKS's cluster name: 1 to 100 characters, a letter or digit then letters, digits, `-`, `_`.
fn cluster_name(name: &str) -> Result<(), DirectoryError> {
    let mut chars = name.chars();
    let ok = name.len() <= 100
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "clusterName {} is invalid: 1 to 100 letters, digits, hyphens and underscores, starting with a letter or digit",
            crate::error::echo(name)
        )))
    }
}

/// A Kubernetes DNS label (namespaces) or subdomain (service accounts): lowercase letters,
/// digits and `-` (and `.` in a subdomain), starting and ending with a letter or digit.
fn dns_name(value: &str, field: &str, max: usize, dots: bool) -> Result<(), DirectoryError> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = !value.is_empty()
        && value.len() <= max
        && edge(value.chars().next())
        && edge(value.chars().last())
        && value.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} {} is not a valid Kubernetes name",
            crate::error::echo(value)
        )))
    }
}

fn tags(tags: &BTreeMap<String, String>) -> Result<(), DirectoryError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(format!(
            "tags: an association has at most {MAX_TAGS} tags"
        )));
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(invalid("tags: a key has 1 to 128 characters"));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid("tags: keys starting with aws: are reserved"));
        }
        if value.chars().count() > 256 {
            return Err(invalid("tags: a value has at most 256 characters"));
        }
    }
    Ok(())
}

/// A new association id: `a-` and 17 lowercase letters and digits, as EKS's.
fn new_association_id(ids: &mut IdGenerator) -> String {
    format!("a-{}", ids.base32(17).to_ascii_lowercase())
}

// === impl Tenant ===

impl Tenant {
    /// The role `arn` names, which must be a role of this tenant.
    fn association_role(&self, arn: &str) -> Result<(), DirectoryError> {
        let role = ArnParts::split(arn)
            .filter(|p| p.service() == "iam" && p.account() == self.account_id)
            .and_then(|p| p.resource().strip_prefix("role/"))
            .and_then(|r| r.rsplit('/').next())
            .and_then(|name| self.roles.get(&name.to_ascii_lowercase()))
            .filter(|role| role.arn == arn);
        match role {
            Some(_) => Ok(()),
            None => Err(invalid(format!(
                "roleArn {} is not a role of account {}",
                crate::error::echo(arn),
                self.account_id
            ))),
        }
    }

    /// The association `id` of `cluster`.
    fn association_mut(
        &mut self,
        cluster: &str,
        id: &str,
    ) -> Result<&mut PodIdentityAssociation, DirectoryError> {
        self.pod_identity_associations
            .get_mut(id)
            .filter(|a| a.cluster_name == cluster)
            .ok_or_else(|| not_found(cluster, id))
    }

    /// `CreatePodIdentityAssociation`.
    pub fn create_pod_identity_association(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        input: PodIdentityAssociationInput,
    ) -> Result<&PodIdentityAssociation, DirectoryError> {
        let PodIdentityAssociationInput {
            cluster_name: cluster,
            oidc_provider_arn,
            namespace,
            service_account,
            role_arn,
            tags: new_tags,
        } = input;
        cluster_name(&cluster)?;
        dns_name(&namespace, "namespace", 63, false)?;
        dns_name(&service_account, "serviceAccount", 253, true)?;
        tags(&new_tags)?;
        self.association_role(&role_arn)?;
        if self
            .get_open_id_connect_provider(&oidc_provider_arn)
            .is_err()
        {
            return Err(DirectoryError::ResourceNotFound(format!(
                "No OpenID Connect provider found for {}",
                crate::error::echo(&oidc_provider_arn)
            )));
        }
        let mut in_cluster = 0;
        for existing in self.pod_identity_associations.values() {
            if existing.cluster_name != cluster {
                continue;
            }
            in_cluster += 1;
            if existing.oidc_provider_arn != oidc_provider_arn {
                return Err(invalid(format!(
                    "cluster {cluster} is bound to the OIDC provider {}",
                    existing.oidc_provider_arn
                )));
            }
            if existing.namespace == namespace && existing.service_account == service_account {
                return Err(DirectoryError::ResourceInUse(format!(
                    "Association already exists: {}",
                    existing.association_id
                )));
            }
        }
        if in_cluster >= MAX_PER_CLUSTER {
            return Err(DirectoryError::LimitExceeded(format!(
                "Cannot exceed quota for PodIdentityAssociationsPerCluster: {MAX_PER_CLUSTER}"
            )));
        }
        let mut id = new_association_id(ids);
        while self.pod_identity_associations.contains_key(&id) {
            id = new_association_id(ids);
        }
        let association = PodIdentityAssociation {
            association_arn: format!(
                "arn:aws:eks:{EKS_REGION}:{}:podidentityassociation/{cluster}/{id}",
                self.account_id
            ),
            association_id: id.clone(),
            cluster_name: cluster,
            oidc_provider_arn,
            namespace,
            service_account,
            role_arn,
            tags: new_tags,
            created_at: now,
            modified_at: now,
        };
        Ok(self
            .pod_identity_associations
            .entry(id)
            .or_insert(association))
    }

    /// `DescribePodIdentityAssociation`.
    pub fn describe_pod_identity_association(
        &self,
        cluster: &str,
        id: &str,
    ) -> Result<&PodIdentityAssociation, DirectoryError> {
        self.pod_identity_associations
            .get(id)
            .filter(|a| a.cluster_name == cluster)
            .ok_or_else(|| not_found(cluster, id))
    }

    /// `ListPodIdentityAssociations`: the cluster's associations in id order, filtered by
    /// namespace and service account, a page of `max_results` (1 to 100, default 100) from
    /// `next_token` (the id a previous page ended before). Returns the page and the next token.
    pub fn list_pod_identity_associations(
        &self,
        cluster: &str,
        namespace: Option<&str>,
        service_account: Option<&str>,
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<(Vec<&PodIdentityAssociation>, Option<String>), DirectoryError> {
        cluster_name(cluster)?;
        let max = max_results.unwrap_or(MAX_RESULTS);
        if !(1..=MAX_RESULTS).contains(&max) {
            return Err(invalid(format!(
                "maxResults must be between 1 and {MAX_RESULTS}"
            )));
        }
        if let Some(token) = next_token {
            let known = token.len() == 19
                && token.starts_with("a-")
                && token
                    .bytes()
                    .skip(2)
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !known {
                return Err(invalid("The nextToken is not valid"));
            }
        }
        let mut matching = self
            .pod_identity_associations
            .range(next_token.unwrap_or("").to_owned()..)
            .map(|(_, a)| a)
            .filter(|a| a.cluster_name == cluster)
            .filter(|a| namespace.is_none_or(|n| a.namespace == n))
            .filter(|a| service_account.is_none_or(|s| a.service_account == s));
        let page: Vec<&PodIdentityAssociation> = matching.by_ref().take(max).collect();
        let next = matching.next().map(|a| a.association_id.clone());
        Ok((page, next))
    }

    /// `UpdatePodIdentityAssociation`: changes the role.
    pub fn update_pod_identity_association(
        &mut self,
        cluster: &str,
        id: &str,
        now: i64,
        update: UpdatePodIdentityAssociation,
    ) -> Result<&PodIdentityAssociation, DirectoryError> {
        if let Some(arn) = &update.role_arn {
            self.association_role(arn)?;
        }
        let association = self.association_mut(cluster, id)?;
        if let Some(arn) = update.role_arn {
            association.role_arn = arn;
        }
        association.modified_at = now;
        Ok(association)
    }

    /// `DeletePodIdentityAssociation`: returns the deleted association.
    pub fn delete_pod_identity_association(
        &mut self,
        cluster: &str,
        id: &str,
    ) -> Result<PodIdentityAssociation, DirectoryError> {
        self.association_mut(cluster, id)?;
        self.pod_identity_associations
            .remove(id)
            .ok_or_else(|| not_found(cluster, id))
    }
}

#[cfg(test)]
mod tests;
