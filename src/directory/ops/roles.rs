//! Roles, their trust policies and tags, and session revocation.

use super::{
    key, merge_tags, path_or_root, quota_exceeded, remove_tags, under_prefix, validate_prefix,
};
use crate::directory::validate::MAX_SESSION_DURATION_RANGE;
use crate::directory::{
    validate, DirectoryError, IdGenerator, IdPrefix, Role, Tag, Tenant, SERVICE_ROLE_PATH_PREFIX,
};
use crate::policy::{ParseOptions, PolicyDocument, PolicyKind, SizeQuota};

/// The parameters of `CreateRole`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateRoleInput {
    /// The name: 1–64 of `[\w+=,.@-]`, unique case-insensitively.
    pub name: String,
    /// The path; `/` when absent.
    pub path: Option<String>,
    /// The trust policy.
    pub assume_role_policy: String,
    /// The description (≤ 1,000 characters).
    pub description: Option<String>,
    /// The longest session, 3,600–43,200 seconds; 3,600 when absent.
    pub max_session_duration: Option<u32>,
    /// The ARN of a managed policy to use as the permissions boundary.
    pub permissions_boundary: Option<String>,
    /// Tags.
    pub tags: Vec<Tag>,
}

// === impl Tenant ===

impl Tenant {
    /// Parses a trust policy with the tenant's trust-policy size quota.
    fn check_trust_policy(&self, document: &str) -> Result<(), DirectoryError> {
        PolicyDocument::parse_with(
            document,
            ParseOptions {
                size_quota: Some(SizeQuota {
                    limit: self.quotas.trust_policy_size,
                    ..SizeQuota::TRUST_POLICY
                }),
                ..ParseOptions::for_kind(PolicyKind::Trust)
            },
        )?;
        Ok(())
    }

    /// `CreateRole`.
    pub fn create_role(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        input: CreateRoleInput,
    ) -> Result<&Role, DirectoryError> {
        let CreateRoleInput {
            name,
            path,
            assume_role_policy,
            description,
            max_session_duration,
            permissions_boundary,
            tags,
        } = input;
        validate::name(&name, "roleName", 64)?;
        let path = path_or_root(path.as_deref(), validate::path)?;
        if path.starts_with(SERVICE_ROLE_PATH_PREFIX) {
            return Err(DirectoryError::InvalidInput(format!(
                "Path prefix '{SERVICE_ROLE_PATH_PREFIX}' can only be used for AWS Service linked Roles"
            )));
        }
        if let Some(d) = &description {
            validate::description(d, "description")?;
        }
        let max_session_duration = max_session_duration.unwrap_or(MAX_SESSION_DURATION_RANGE.0);
        validate::max_session_duration(max_session_duration)?;
        merge_tags(&[], &tags, true, self.quotas.tags_per_entity, "TagsPerRole")?;
        self.check_trust_policy(&assume_role_policy)?;
        if let Some(arn) = &permissions_boundary {
            self.check_boundary(arn)?;
        }
        let k = key(&name);
        if self.roles.contains_key(&k) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "Role with name {name} already exists."
            )));
        }
        if self.roles.len() >= self.quotas.roles {
            return Err(quota_exceeded("RolesPerAccount", self.quotas.roles));
        }
        let role = Role {
            arn: self.arn("role", &path, &name),
            name,
            path,
            role_id: ids.unique_id(IdPrefix::Role),
            created_at: now,
            description,
            max_session_duration,
            assume_role_policy,
            tags,
            permissions_boundary,
            inline_policies: Default::default(),
            attached_policies: Vec::new(),
            sessions_revoked_before: None,
        };
        Ok(self.roles.entry(k).or_insert(role))
    }

    /// `GetRole`.
    pub fn get_role(&self, name: &str) -> Result<&Role, DirectoryError> {
        self.role_ref(name)
    }

    /// `ListRoles`, optionally under a path prefix.
    pub fn list_roles(&self, path_prefix: Option<&str>) -> Result<Vec<&Role>, DirectoryError> {
        validate_prefix(path_prefix)?;
        Ok(self
            .roles
            .values()
            .filter(|r| under_prefix(&r.path, path_prefix))
            .collect())
    }

    /// `UpdateRole`: sets the description and/or the maximum session duration.
    pub fn update_role(
        &mut self,
        name: &str,
        description: Option<&str>,
        max_session_duration: Option<u32>,
    ) -> Result<(), DirectoryError> {
        if let Some(d) = description {
            validate::description(d, "description")?;
        }
        if let Some(s) = max_session_duration {
            validate::max_session_duration(s)?;
            // A service-linked role's description is editable; the rest is the service's.
            self.check_modifiable_role(name)?;
        }
        let role = self.role_mut(name)?;
        if let Some(d) = description {
            role.description = Some(d.to_owned());
        }
        if let Some(s) = max_session_duration {
            role.max_session_duration = s;
        }
        Ok(())
    }

    /// `UpdateAssumeRolePolicy`.
    pub fn update_assume_role_policy(
        &mut self,
        name: &str,
        document: &str,
    ) -> Result<(), DirectoryError> {
        self.check_modifiable_role(name)?;
        self.check_trust_policy(document)?;
        self.role_mut(name)?.assume_role_policy = document.to_owned();
        Ok(())
    }

    /// `DeleteRole`: refused while the role has inline or attached policies or is in an
    /// instance profile, and for service-linked roles (`DeleteServiceLinkedRole` deletes those).
    pub fn delete_role(&mut self, name: &str) -> Result<(), DirectoryError> {
        self.check_modifiable_role(name)?;
        let role = self.role_ref(name)?;
        if !role.inline_policies.is_empty() {
            return Err(DirectoryError::DeleteConflict(
                "Cannot delete entity, must delete policies first.".into(),
            ));
        }
        if !role.attached_policies.is_empty() {
            return Err(DirectoryError::DeleteConflict(
                "Cannot delete entity, must detach all policies first.".into(),
            ));
        }
        if self.role_in_instance_profile(name) {
            return Err(DirectoryError::DeleteConflict(
                super::instance_profiles::MSG_REMOVE_ROLES_FIRST.into(),
            ));
        }
        self.roles.remove(&key(name));
        Ok(())
    }

    /// Revokes every session of the role issued before `now` (the console's "Revoke active
    /// sessions", AWS's `AWSRevokeOlderSessions` policy). Snapshots turn it into a deny on
    /// `aws:TokenIssueTime`.
    pub fn revoke_sessions(&mut self, name: &str, now: i64) -> Result<(), DirectoryError> {
        self.role_mut(name)?.sessions_revoked_before = Some(now);
        Ok(())
    }

    /// `TagRole`: adds or replaces tags (keys case-insensitive and case-preserving).
    pub fn tag_role(&mut self, name: &str, tags: &[Tag]) -> Result<(), DirectoryError> {
        let quota = self.quotas.tags_per_entity;
        let role = self.role_mut(name)?;
        role.tags = merge_tags(&role.tags, tags, true, quota, "TagsPerRole")?;
        Ok(())
    }

    /// `UntagRole`: removes the tags with these keys; absent keys are ignored.
    pub fn untag_role(&mut self, name: &str, keys: &[String]) -> Result<(), DirectoryError> {
        validate::tag_keys(keys)?;
        let role = self.role_mut(name)?;
        remove_tags(&mut role.tags, keys, true);
        Ok(())
    }

    /// `ListRoleTags`.
    pub fn list_role_tags(&self, name: &str) -> Result<&[Tag], DirectoryError> {
        Ok(&self.role_ref(name)?.tags)
    }
}
