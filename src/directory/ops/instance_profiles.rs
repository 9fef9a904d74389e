//! Instance profiles: their lifecycle, their one role, and their tags.
//!
//! A profile holds role names; a role in a profile cannot be deleted (`DeleteRole` is a
//! `DeleteConflict` then), so every name resolves to a role of the tenant.

use super::{
    key, merge_tags, no_such_role, path_or_root, quota_exceeded, remove_tags, under_prefix,
    validate_prefix,
};
use crate::directory::{
    validate, DirectoryError, IdGenerator, IdPrefix, InstanceProfile, Role, Tag, Tenant,
};

/// The parameters of `CreateInstanceProfile`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateInstanceProfileInput {
    /// The name: 1–128 of `[\w+=,.@-]`, unique case-insensitively.
    pub name: String,
    /// The path; `/` when absent.
    pub path: Option<String>,
    /// Tags (keys case-sensitive).
    pub tags: Vec<Tag>,
}

/// AWS's quota on the roles of one instance profile: it cannot be raised.
const ROLES_PER_INSTANCE_PROFILE: usize = 1;

/// AWS's text when a role or profile still holds the other.
pub(super) const MSG_REMOVE_ROLES_FIRST: &str =
    "Cannot delete entity, must remove roles from instance profile first.";

fn no_such_profile(name: &str) -> DirectoryError {
    DirectoryError::NoSuchEntity(format!("Instance Profile {name} cannot be found."))
}

// === impl Tenant ===

impl Tenant {
    fn instance_profile_ref(&self, name: &str) -> Result<&InstanceProfile, DirectoryError> {
        self.instance_profiles
            .get(&key(name))
            .ok_or_else(|| no_such_profile(name))
    }

    fn instance_profile_mut(&mut self, name: &str) -> Result<&mut InstanceProfile, DirectoryError> {
        self.instance_profiles
            .get_mut(&key(name))
            .ok_or_else(|| no_such_profile(name))
    }

    /// `CreateInstanceProfile`.
    pub fn create_instance_profile(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        input: CreateInstanceProfileInput,
    ) -> Result<&InstanceProfile, DirectoryError> {
        let CreateInstanceProfileInput { name, path, tags } = input;
        validate::name(&name, "instanceProfileName", 128)?;
        let path = path_or_root(path.as_deref(), validate::path)?;
        merge_tags(
            &[],
            &tags,
            false,
            self.quotas.tags_per_entity,
            "TagsPerInstanceProfile",
        )?;
        let k = key(&name);
        if self.instance_profiles.contains_key(&k) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "Instance Profile {name} already exists."
            )));
        }
        if self.instance_profiles.len() >= self.quotas.instance_profiles {
            return Err(quota_exceeded(
                "InstanceProfilesPerAccount",
                self.quotas.instance_profiles,
            ));
        }
        let profile = InstanceProfile {
            arn: self.arn("instance-profile", &path, &name),
            name,
            path,
            instance_profile_id: ids.unique_id(IdPrefix::InstanceProfile),
            created_at: now,
            roles: Vec::new(),
            tags,
        };
        Ok(self.instance_profiles.entry(k).or_insert(profile))
    }

    /// `GetInstanceProfile`.
    pub fn get_instance_profile(&self, name: &str) -> Result<&InstanceProfile, DirectoryError> {
        self.instance_profile_ref(name)
    }

    /// `ListInstanceProfiles`, optionally under a path prefix.
    pub fn list_instance_profiles(
        &self,
        path_prefix: Option<&str>,
    ) -> Result<Vec<&InstanceProfile>, DirectoryError> {
        validate_prefix(path_prefix)?;
        Ok(self
            .instance_profiles
            .values()
            .filter(|p| under_prefix(&p.path, path_prefix))
            .collect())
    }

    /// The roles of a profile, for rendering it (AWS embeds each role's full shape).
    pub fn instance_profile_roles(&self, profile: &InstanceProfile) -> Vec<&Role> {
        profile
            .roles
            .iter()
            .filter_map(|name| self.roles.get(&key(name)))
            .collect()
    }

    /// Whether the role is in some instance profile (which blocks `DeleteRole`).
    pub(super) fn role_in_instance_profile(&self, role: &str) -> bool {
        let k = key(role);
        self.instance_profiles
            .values()
            .any(|p| p.roles.iter().any(|r| key(r) == k))
    }

    /// `DeleteInstanceProfile`: refused while the profile holds a role.
    pub fn delete_instance_profile(&mut self, name: &str) -> Result<(), DirectoryError> {
        if !self.instance_profile_ref(name)?.roles.is_empty() {
            return Err(DirectoryError::DeleteConflict(
                MSG_REMOVE_ROLES_FIRST.into(),
            ));
        }
        self.instance_profiles.remove(&key(name));
        Ok(())
    }

    /// `AddRoleToInstanceProfile`: a profile holds at most one role, and adding the role it
    /// holds again is the same `LimitExceeded` (as in AWS). Service-linked roles are
    /// AWS's to place.
    pub fn add_role_to_instance_profile(
        &mut self,
        profile: &str,
        role: &str,
    ) -> Result<(), DirectoryError> {
        let held = self.instance_profile_ref(profile)?.roles.len();
        let role_name = self.role_ref(role)?.name.clone();
        self.check_modifiable_role(role)?;
        if held >= ROLES_PER_INSTANCE_PROFILE {
            return Err(quota_exceeded(
                "InstanceSessionsPerInstanceProfile",
                ROLES_PER_INSTANCE_PROFILE,
            ));
        }
        self.instance_profile_mut(profile)?.roles.push(role_name);
        Ok(())
    }

    /// `RemoveRoleFromInstanceProfile`.
    pub fn remove_role_from_instance_profile(
        &mut self,
        profile: &str,
        role: &str,
    ) -> Result<(), DirectoryError> {
        self.instance_profile_ref(profile)?;
        self.role_ref(role)?;
        let k = key(role);
        let p = self.instance_profile_mut(profile)?;
        let Some(position) = p.roles.iter().position(|r| key(r) == k) else {
            return Err(no_such_role(role));
        };
        p.roles.remove(position);
        Ok(())
    }

    /// `ListInstanceProfilesForRole`.
    pub fn list_instance_profiles_for_role(
        &self,
        role: &str,
    ) -> Result<Vec<&InstanceProfile>, DirectoryError> {
        self.role_ref(role)?;
        let k = key(role);
        Ok(self
            .instance_profiles
            .values()
            .filter(|p| p.roles.iter().any(|r| key(r) == k))
            .collect())
    }

    /// `TagInstanceProfile` (keys case-sensitive).
    pub fn tag_instance_profile(&mut self, name: &str, tags: &[Tag]) -> Result<(), DirectoryError> {
        let quota = self.quotas.tags_per_entity;
        let profile = self.instance_profile_mut(name)?;
        profile.tags = merge_tags(&profile.tags, tags, false, quota, "TagsPerInstanceProfile")?;
        Ok(())
    }

    /// `UntagInstanceProfile`: absent keys are ignored.
    pub fn untag_instance_profile(
        &mut self,
        name: &str,
        keys: &[String],
    ) -> Result<(), DirectoryError> {
        validate::tag_keys(keys)?;
        let profile = self.instance_profile_mut(name)?;
        remove_tags(&mut profile.tags, keys, false);
        Ok(())
    }

    /// `ListInstanceProfileTags`.
    pub fn list_instance_profile_tags(&self, name: &str) -> Result<&[Tag], DirectoryError> {
        Ok(&self.instance_profile_ref(name)?.tags)
    }
}

#[cfg(test)]
mod tests;
