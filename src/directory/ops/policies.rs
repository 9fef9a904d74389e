//! Customer managed policies and their versions and tags; attachments of managed policies to
//! users, groups and roles; inline policies; permissions boundaries.

use super::{
    key, merge_tags, path_or_root, quota_exceeded, remove_tags, under_prefix, validate_prefix,
};
use crate::directory::{
    validate, DirectoryError, IdGenerator, IdPrefix, InlinePolicies, ManagedPolicy,
    PolicyVersionEntry, Tag, Tenant,
};
use crate::policy::{non_whitespace_len, ParseOptions, PolicyDocument, PolicyKind, SizeQuota};

/// The parameters of `CreatePolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatePolicyInput {
    /// The name: 1–128 of `[\w+=,.@-]`, unique case-insensitively.
    pub name: String,
    /// The path (`/` or `/seg/.../`); `/` when absent.
    pub path: Option<String>,
    /// The document of `v1`.
    pub document: String,
    /// The description (≤ 1,000 characters, immutable).
    pub description: Option<String>,
    /// Tags (keys case-sensitive).
    pub tags: Vec<Tag>,
}

/// A managed policy attached to a user, group or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    /// The policy's name.
    pub policy_name: String,
    /// The policy's ARN.
    pub policy_arn: String,
}

/// The principals that hold attached and inline policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    User,
    Group,
    Role,
}

const MSG_POLICY_ATTACHED: &str = "Cannot delete a policy attached to entities.";
const MSG_POLICY_VERSIONS: &str = "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.";

// === impl Holder ===

impl Holder {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Role => "role",
        }
    }

    fn attached_quota_name(self) -> &'static str {
        match self {
            Self::User => "PoliciesPerUser",
            Self::Group => "PoliciesPerGroup",
            Self::Role => "PoliciesPerRole",
        }
    }
}

// === impl AttachedPolicy ===

impl AttachedPolicy {
    fn from_arn(arn: &str) -> Self {
        Self {
            policy_name: arn.rsplit('/').next().unwrap_or(arn).to_owned(),
            policy_arn: arn.to_owned(),
        }
    }
}

// === impl Tenant ===

impl Tenant {
    /// Parses a managed policy document with the tenant's managed-policy size quota.
    fn check_managed_document(&self, document: &str) -> Result<(), DirectoryError> {
        PolicyDocument::parse_with(
            document,
            ParseOptions {
                size_quota: Some(SizeQuota {
                    limit: self.quotas.managed_policy_size,
                    ..SizeQuota::MANAGED_POLICY
                }),
                ..ParseOptions::for_kind(PolicyKind::Identity)
            },
        )?;
        Ok(())
    }

    /// `CreatePolicy`: creates the policy with its document as `v1`, the default version.
    pub fn create_policy(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        input: CreatePolicyInput,
    ) -> Result<&ManagedPolicy, DirectoryError> {
        let CreatePolicyInput {
            name,
            path,
            document,
            description,
            tags,
        } = input;
        validate::name(&name, "policyName", 128)?;
        let path = path_or_root(path.as_deref(), validate::policy_path)?;
        if let Some(d) = &description {
            validate::description(d, "description")?;
        }
        merge_tags(
            &[],
            &tags,
            false,
            self.quotas.tags_per_entity,
            "TagsPerPolicy",
        )?;
        self.check_managed_document(&document)?;
        let k = key(&name);
        if self.policies.contains_key(&k) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "A policy called {name} already exists. Duplicate names are not allowed."
            )));
        }
        if self.policies.len() >= self.quotas.policies {
            return Err(quota_exceeded("PoliciesPerAccount", self.quotas.policies));
        }
        let policy = ManagedPolicy {
            arn: self.arn("policy", &path, &name),
            name,
            path,
            policy_id: ids.unique_id(IdPrefix::Policy),
            description,
            created_at: now,
            updated_at: now,
            default_version_id: "v1".into(),
            versions: vec![PolicyVersionEntry {
                version_id: "v1".into(),
                document,
                created_at: now,
            }],
            next_version: 2,
            tags,
        };
        Ok(self.policies.entry(k).or_insert(policy))
    }

    /// `GetPolicy` for a customer managed policy (AWS-managed policies are read from
    /// [`crate::directory::aws_managed_policy`]).
    pub fn get_policy(&self, arn: &str) -> Result<&ManagedPolicy, DirectoryError> {
        self.customer_policy(arn, false)
    }

    /// `ListPolicies` (scope `Local`), optionally under a path prefix.
    pub fn list_policies(
        &self,
        path_prefix: Option<&str>,
    ) -> Result<Vec<&ManagedPolicy>, DirectoryError> {
        validate_prefix(path_prefix)?;
        Ok(self
            .policies
            .values()
            .filter(|p| under_prefix(&p.path, path_prefix))
            .collect())
    }

    /// How many users, groups and roles have the policy attached (`AttachmentCount`).
    pub fn policy_attachment_count(&self, arn: &str) -> usize {
        let users = self.users.values().map(|u| &u.attached_policies);
        let groups = self.groups.values().map(|g| &g.attached_policies);
        let roles = self.roles.values().map(|r| &r.attached_policies);
        users
            .chain(groups)
            .chain(roles)
            .filter(|list| list.iter().any(|a| a == arn))
            .count()
    }

    /// How many users and roles use the policy as their permissions boundary
    /// (`PermissionsBoundaryUsageCount`).
    pub fn policy_boundary_usage_count(&self, arn: &str) -> usize {
        let users = self.users.values().map(|u| &u.permissions_boundary);
        let roles = self.roles.values().map(|r| &r.permissions_boundary);
        users
            .chain(roles)
            .filter(|b| b.as_deref() == Some(arn))
            .count()
    }

    /// `DeletePolicy`: refused while the policy is attached or used as a boundary, or while
    /// versions other than the default remain.
    pub fn delete_policy(&mut self, arn: &str) -> Result<(), DirectoryError> {
        let policy = self.customer_policy(arn, true)?;
        if self.policy_attachment_count(arn) > 0 || self.policy_boundary_usage_count(arn) > 0 {
            return Err(DirectoryError::DeleteConflict(MSG_POLICY_ATTACHED.into()));
        }
        if policy.versions.len() > 1 {
            return Err(DirectoryError::DeleteConflict(MSG_POLICY_VERSIONS.into()));
        }
        self.policies.remove(&key(&policy.name.clone()));
        Ok(())
    }

    fn customer_policy_mut(&mut self, arn: &str) -> Result<&mut ManagedPolicy, DirectoryError> {
        let name = self.customer_policy(arn, true)?.name.clone();
        self.policies
            .get_mut(&key(&name))
            .ok_or_else(|| DirectoryError::NoSuchEntity(format!("Policy {arn} was not found.")))
    }

    /// `CreatePolicyVersion`: adds a version, the new default when `set_as_default`.
    pub fn create_policy_version(
        &mut self,
        arn: &str,
        document: &str,
        set_as_default: bool,
        now: i64,
    ) -> Result<PolicyVersionEntry, DirectoryError> {
        let policy = self.customer_policy(arn, true)?;
        self.check_managed_document(document)?;
        if policy.versions.len() >= self.quotas.versions_per_policy {
            return Err(DirectoryError::LimitExceeded(format!(
                "A managed policy can have up to {} versions. Before you create a new version, you must delete an existing version.",
                self.quotas.versions_per_policy
            )));
        }
        let policy = self.customer_policy_mut(arn)?;
        let entry = PolicyVersionEntry {
            version_id: format!("v{}", policy.next_version),
            document: document.to_owned(),
            created_at: now,
        };
        policy.next_version = policy.next_version.saturating_add(1);
        if set_as_default {
            policy.default_version_id.clone_from(&entry.version_id);
        }
        policy.updated_at = now;
        policy.versions.push(entry.clone());
        Ok(entry)
    }

    fn no_such_version(arn: &str, version_id: &str) -> DirectoryError {
        DirectoryError::NoSuchEntity(format!(
            "Policy {arn} version {version_id} does not exist or is not attachable."
        ))
    }

    /// `GetPolicyVersion`.
    pub fn get_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<&PolicyVersionEntry, DirectoryError> {
        validate::version_id(version_id)?;
        self.customer_policy(arn, false)?
            .versions
            .iter()
            .find(|v| v.version_id == version_id)
            .ok_or_else(|| Self::no_such_version(arn, version_id))
    }

    /// `ListPolicyVersions`, oldest first.
    pub fn list_policy_versions(&self, arn: &str) -> Result<&[PolicyVersionEntry], DirectoryError> {
        Ok(&self.customer_policy(arn, false)?.versions)
    }

    /// `SetDefaultPolicyVersion`.
    pub fn set_default_policy_version(
        &mut self,
        arn: &str,
        version_id: &str,
        now: i64,
    ) -> Result<(), DirectoryError> {
        validate::version_id(version_id)?;
        let policy = self.customer_policy_mut(arn)?;
        if !policy.versions.iter().any(|v| v.version_id == version_id) {
            return Err(Self::no_such_version(arn, version_id));
        }
        policy.default_version_id = version_id.to_owned();
        policy.updated_at = now;
        Ok(())
    }

    /// `DeletePolicyVersion`: any version but the default.
    pub fn delete_policy_version(
        &mut self,
        arn: &str,
        version_id: &str,
    ) -> Result<(), DirectoryError> {
        validate::version_id(version_id)?;
        let policy = self.customer_policy_mut(arn)?;
        let Some(position) = policy
            .versions
            .iter()
            .position(|v| v.version_id == version_id)
        else {
            return Err(Self::no_such_version(arn, version_id));
        };
        if policy.default_version_id == version_id {
            return Err(DirectoryError::DeleteConflict(
                "Cannot delete the default version of the policy.".into(),
            ));
        }
        policy.versions.remove(position);
        Ok(())
    }

    /// `TagPolicy` (keys case-sensitive).
    pub fn tag_policy(&mut self, arn: &str, tags: &[Tag]) -> Result<(), DirectoryError> {
        let quota = self.quotas.tags_per_entity;
        let policy = self.customer_policy_mut(arn)?;
        policy.tags = merge_tags(&policy.tags, tags, false, quota, "TagsPerPolicy")?;
        Ok(())
    }

    /// `UntagPolicy`.
    pub fn untag_policy(&mut self, arn: &str, keys: &[String]) -> Result<(), DirectoryError> {
        validate::tag_keys(keys)?;
        let policy = self.customer_policy_mut(arn)?;
        remove_tags(&mut policy.tags, keys, false);
        Ok(())
    }

    /// `ListPolicyTags`.
    pub fn list_policy_tags(&self, arn: &str) -> Result<&[Tag], DirectoryError> {
        Ok(&self.customer_policy(arn, false)?.tags)
    }

    // --- attachments ---

    /// Refuses changes to a service-linked role's policies (users and groups pass).
    fn check_modifiable(&self, holder: Holder, name: &str) -> Result<(), DirectoryError> {
        match holder {
            Holder::Role => self.check_modifiable_role(name),
            Holder::User | Holder::Group => Ok(()),
        }
    }

    /// The attached-policy list of a user, group or role, with its quota.
    fn attached_mut(
        &mut self,
        holder: Holder,
        name: &str,
    ) -> Result<(&mut Vec<String>, usize), DirectoryError> {
        let quotas = self.quotas;
        Ok(match holder {
            Holder::User => (
                &mut self.user_mut(name)?.attached_policies,
                quotas.attached_per_user_or_role,
            ),
            Holder::Group => (
                &mut self.group_mut(name)?.attached_policies,
                quotas.attached_per_group,
            ),
            Holder::Role => (
                &mut self.role_mut(name)?.attached_policies,
                quotas.attached_per_user_or_role,
            ),
        })
    }

    fn attached(&self, holder: Holder, name: &str) -> Result<&[String], DirectoryError> {
        Ok(match holder {
            Holder::User => &self.user_ref(name)?.attached_policies,
            Holder::Group => &self.group_ref(name)?.attached_policies,
            Holder::Role => &self.role_ref(name)?.attached_policies,
        })
    }

    fn attach(&mut self, holder: Holder, name: &str, arn: &str) -> Result<(), DirectoryError> {
        self.attached(holder, name)?;
        self.check_modifiable(holder, name)?;
        self.check_attachable(arn)?;
        let (list, quota) = self.attached_mut(holder, name)?;
        if list.iter().any(|a| a == arn) {
            return Ok(());
        }
        if list.len() >= quota {
            return Err(quota_exceeded(holder.attached_quota_name(), quota));
        }
        list.push(arn.to_owned());
        Ok(())
    }

    fn detach(&mut self, holder: Holder, name: &str, arn: &str) -> Result<(), DirectoryError> {
        self.check_modifiable(holder, name)?;
        let (list, _) = self.attached_mut(holder, name)?;
        let Some(position) = list.iter().position(|a| a == arn) else {
            return Err(DirectoryError::NoSuchEntity(format!(
                "Policy {arn} was not found."
            )));
        };
        list.remove(position);
        Ok(())
    }

    fn list_attached(
        &self,
        holder: Holder,
        name: &str,
    ) -> Result<Vec<AttachedPolicy>, DirectoryError> {
        Ok(self
            .attached(holder, name)?
            .iter()
            .map(|arn| AttachedPolicy::from_arn(arn))
            .collect())
    }

    /// `AttachUserPolicy`; attaching an attached policy again changes nothing.
    pub fn attach_user_policy(&mut self, user: &str, arn: &str) -> Result<(), DirectoryError> {
        self.attach(Holder::User, user, arn)
    }

    /// `AttachGroupPolicy`; attaching an attached policy again changes nothing.
    pub fn attach_group_policy(&mut self, group: &str, arn: &str) -> Result<(), DirectoryError> {
        self.attach(Holder::Group, group, arn)
    }

    /// `AttachRolePolicy`; attaching an attached policy again changes nothing.
    pub fn attach_role_policy(&mut self, role: &str, arn: &str) -> Result<(), DirectoryError> {
        self.attach(Holder::Role, role, arn)
    }

    /// `DetachUserPolicy`.
    pub fn detach_user_policy(&mut self, user: &str, arn: &str) -> Result<(), DirectoryError> {
        self.detach(Holder::User, user, arn)
    }

    /// `DetachGroupPolicy`.
    pub fn detach_group_policy(&mut self, group: &str, arn: &str) -> Result<(), DirectoryError> {
        self.detach(Holder::Group, group, arn)
    }

    /// `DetachRolePolicy`.
    pub fn detach_role_policy(&mut self, role: &str, arn: &str) -> Result<(), DirectoryError> {
        self.detach(Holder::Role, role, arn)
    }

    /// `ListAttachedUserPolicies`, in attachment order.
    pub fn list_attached_user_policies(
        &self,
        user: &str,
    ) -> Result<Vec<AttachedPolicy>, DirectoryError> {
        self.list_attached(Holder::User, user)
    }

    /// `ListAttachedGroupPolicies`, in attachment order.
    pub fn list_attached_group_policies(
        &self,
        group: &str,
    ) -> Result<Vec<AttachedPolicy>, DirectoryError> {
        self.list_attached(Holder::Group, group)
    }

    /// `ListAttachedRolePolicies`, in attachment order.
    pub fn list_attached_role_policies(
        &self,
        role: &str,
    ) -> Result<Vec<AttachedPolicy>, DirectoryError> {
        self.list_attached(Holder::Role, role)
    }

    // --- inline policies ---

    /// The inline policies of a user, group or role, with the name as written, and the
    /// aggregate size quota.
    fn inline(
        &self,
        holder: Holder,
        name: &str,
    ) -> Result<(&InlinePolicies, &str, usize), DirectoryError> {
        let q = &self.quotas;
        Ok(match holder {
            Holder::User => {
                let u = self.user_ref(name)?;
                (&u.inline_policies, u.name.as_str(), q.user_inline_size)
            }
            Holder::Group => {
                let g = self.group_ref(name)?;
                (&g.inline_policies, g.name.as_str(), q.group_inline_size)
            }
            Holder::Role => {
                let r = self.role_ref(name)?;
                (&r.inline_policies, r.name.as_str(), q.role_inline_size)
            }
        })
    }

    fn inline_mut(
        &mut self,
        holder: Holder,
        name: &str,
    ) -> Result<&mut InlinePolicies, DirectoryError> {
        Ok(match holder {
            Holder::User => &mut self.user_mut(name)?.inline_policies,
            Holder::Group => &mut self.group_mut(name)?.inline_policies,
            Holder::Role => &mut self.role_mut(name)?.inline_policies,
        })
    }

    fn put_inline(
        &mut self,
        holder: Holder,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), DirectoryError> {
        validate::name(policy_name, "policyName", 128)?;
        let (policies, entity_name, limit) = self.inline(holder, name)?;
        self.check_modifiable(holder, name)?;
        PolicyDocument::parse_with(document, ParseOptions::lenient(PolicyKind::Identity))?;
        let others: usize = policies
            .iter()
            .filter(|(n, _)| n.as_str() != policy_name)
            .map(|(_, d)| non_whitespace_len(d))
            .sum();
        if others + non_whitespace_len(document) > limit {
            return Err(DirectoryError::LimitExceeded(format!(
                "Maximum policy size of {limit} bytes exceeded for {} {entity_name}",
                holder.as_str()
            )));
        }
        self.inline_mut(holder, name)?
            .insert(policy_name.to_owned(), document.to_owned());
        Ok(())
    }

    fn no_such_inline(holder: Holder, policy_name: &str) -> DirectoryError {
        DirectoryError::NoSuchEntity(format!(
            "The {} policy with name {policy_name} cannot be found.",
            holder.as_str()
        ))
    }

    fn get_inline(
        &self,
        holder: Holder,
        name: &str,
        policy_name: &str,
    ) -> Result<&str, DirectoryError> {
        let (policies, _, _) = self.inline(holder, name)?;
        policies
            .get(policy_name)
            .map(String::as_str)
            .ok_or_else(|| Self::no_such_inline(holder, policy_name))
    }

    fn delete_inline(
        &mut self,
        holder: Holder,
        name: &str,
        policy_name: &str,
    ) -> Result<(), DirectoryError> {
        self.check_modifiable(holder, name)?;
        self.inline_mut(holder, name)?
            .remove(policy_name)
            .map(|_| ())
            .ok_or_else(|| Self::no_such_inline(holder, policy_name))
    }

    fn list_inline(&self, holder: Holder, name: &str) -> Result<Vec<&str>, DirectoryError> {
        let (policies, _, _) = self.inline(holder, name)?;
        Ok(policies.keys().map(String::as_str).collect())
    }

    /// `PutUserPolicy`: adds or replaces an inline policy; the user's inline policies
    /// together must stay within `quotas.user_inline_size` non-whitespace characters.
    pub fn put_user_policy(
        &mut self,
        user: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), DirectoryError> {
        self.put_inline(Holder::User, user, policy_name, document)
    }

    /// `PutGroupPolicy` (aggregate quota `quotas.group_inline_size`).
    pub fn put_group_policy(
        &mut self,
        group: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), DirectoryError> {
        self.put_inline(Holder::Group, group, policy_name, document)
    }

    /// `PutRolePolicy` (aggregate quota `quotas.role_inline_size`).
    pub fn put_role_policy(
        &mut self,
        role: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), DirectoryError> {
        self.put_inline(Holder::Role, role, policy_name, document)
    }

    /// `GetUserPolicy`: the document as submitted.
    pub fn get_user_policy(&self, user: &str, policy_name: &str) -> Result<&str, DirectoryError> {
        self.get_inline(Holder::User, user, policy_name)
    }

    /// `GetGroupPolicy`.
    pub fn get_group_policy(&self, group: &str, policy_name: &str) -> Result<&str, DirectoryError> {
        self.get_inline(Holder::Group, group, policy_name)
    }

    /// `GetRolePolicy`.
    pub fn get_role_policy(&self, role: &str, policy_name: &str) -> Result<&str, DirectoryError> {
        self.get_inline(Holder::Role, role, policy_name)
    }

    /// `DeleteUserPolicy`.
    pub fn delete_user_policy(
        &mut self,
        user: &str,
        policy_name: &str,
    ) -> Result<(), DirectoryError> {
        self.delete_inline(Holder::User, user, policy_name)
    }

    /// `DeleteGroupPolicy`.
    pub fn delete_group_policy(
        &mut self,
        group: &str,
        policy_name: &str,
    ) -> Result<(), DirectoryError> {
        self.delete_inline(Holder::Group, group, policy_name)
    }

    /// `DeleteRolePolicy`.
    pub fn delete_role_policy(
        &mut self,
        role: &str,
        policy_name: &str,
    ) -> Result<(), DirectoryError> {
        self.delete_inline(Holder::Role, role, policy_name)
    }

    /// `ListUserPolicies`: the names of the user's inline policies, ordered.
    pub fn list_user_policies(&self, user: &str) -> Result<Vec<&str>, DirectoryError> {
        self.list_inline(Holder::User, user)
    }

    /// `ListGroupPolicies`.
    pub fn list_group_policies(&self, group: &str) -> Result<Vec<&str>, DirectoryError> {
        self.list_inline(Holder::Group, group)
    }

    /// `ListRolePolicies`.
    pub fn list_role_policies(&self, role: &str) -> Result<Vec<&str>, DirectoryError> {
        self.list_inline(Holder::Role, role)
    }

    // --- permissions boundaries ---

    /// `PutUserPermissionsBoundary`: `arn` must name a customer managed policy of the tenant
    /// or a catalog AWS-managed policy.
    pub fn put_user_permissions_boundary(
        &mut self,
        user: &str,
        arn: &str,
    ) -> Result<(), DirectoryError> {
        self.user_ref(user)?;
        self.check_boundary(arn)?;
        self.user_mut(user)?.permissions_boundary = Some(arn.to_owned());
        Ok(())
    }

    /// `DeleteUserPermissionsBoundary`; a user without one is left as it is.
    pub fn delete_user_permissions_boundary(&mut self, user: &str) -> Result<(), DirectoryError> {
        self.user_mut(user)?.permissions_boundary = None;
        Ok(())
    }

    /// `PutRolePermissionsBoundary`.
    pub fn put_role_permissions_boundary(
        &mut self,
        role: &str,
        arn: &str,
    ) -> Result<(), DirectoryError> {
        self.check_modifiable_role(role)?;
        self.check_boundary(arn)?;
        self.role_mut(role)?.permissions_boundary = Some(arn.to_owned());
        Ok(())
    }

    /// `DeleteRolePermissionsBoundary`; a role without one is left as it is.
    pub fn delete_role_permissions_boundary(&mut self, role: &str) -> Result<(), DirectoryError> {
        self.check_modifiable_role(role)?;
        self.role_mut(role)?.permissions_boundary = None;
        Ok(())
    }
}
