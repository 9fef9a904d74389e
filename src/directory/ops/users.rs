//! Users and their tags.

use super::{
    key, merge_tags, no_such_user, path_or_root, quota_exceeded, remove_tags, under_prefix,
    validate_prefix,
};
use crate::directory::{validate, DirectoryError, IdGenerator, IdPrefix, Tag, Tenant, User};

/// The parameters of `CreateUser`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateUserInput {
    /// The name: 1–64 of `[\w+=,.@-]`, unique case-insensitively.
    pub name: String,
    /// The path; `/` when absent.
    pub path: Option<String>,
    /// The ARN of a managed policy to use as the permissions boundary.
    pub permissions_boundary: Option<String>,
    /// Tags.
    pub tags: Vec<Tag>,
}

// === impl Tenant ===

impl Tenant {
    /// `CreateUser`.
    pub fn create_user(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        input: CreateUserInput,
    ) -> Result<&User, DirectoryError> {
        let CreateUserInput {
            name,
            path,
            permissions_boundary,
            tags,
        } = input;
        validate::name(&name, "userName", 64)?;
        let path = path_or_root(path.as_deref(), validate::path)?;
        merge_tags(&[], &tags, true, self.quotas.tags_per_entity, "TagsPerUser")?;
        if let Some(arn) = &permissions_boundary {
            self.check_boundary(arn)?;
        }
        let k = key(&name);
        if self.users.contains_key(&k) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "User with name {name} already exists."
            )));
        }
        if self.users.len() >= self.quotas.users {
            return Err(quota_exceeded("UsersPerAccount", self.quotas.users));
        }
        let user = User {
            arn: self.arn("user", &path, &name),
            name,
            path,
            user_id: ids.unique_id(IdPrefix::User),
            created_at: now,
            tags,
            permissions_boundary,
            inline_policies: Default::default(),
            attached_policies: Vec::new(),
            groups: Vec::new(),
            access_keys: Vec::new(),
            login_profile: None,
            mfa_devices: Vec::new(),
        };
        Ok(self.users.entry(k).or_insert(user))
    }

    /// `GetUser`.
    pub fn get_user(&self, name: &str) -> Result<&User, DirectoryError> {
        self.user_ref(name)
    }

    /// `ListUsers`, ordered by name case-insensitively, optionally under a path prefix.
    pub fn list_users(&self, path_prefix: Option<&str>) -> Result<Vec<&User>, DirectoryError> {
        validate_prefix(path_prefix)?;
        Ok(self
            .users
            .values()
            .filter(|u| under_prefix(&u.path, path_prefix))
            .collect())
    }

    /// `UpdateUser`: renames and/or moves a user. The user keeps its id, access keys,
    /// policies, group memberships and MFA devices; its ARN follows the new name and path.
    pub fn update_user(
        &mut self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<(), DirectoryError> {
        if let Some(n) = new_name {
            validate::name(n, "newUserName", 64)?;
        }
        if let Some(p) = new_path {
            validate::path(p, "newPath")?;
        }
        let old_key = key(name);
        let user = self.user_ref(name)?;
        let new_name = new_name.unwrap_or(&user.name).to_owned();
        let new_path = new_path.unwrap_or(&user.path).to_owned();
        let new_key = key(&new_name);
        if new_key != old_key && self.users.contains_key(&new_key) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "User with name {new_name} already exists."
            )));
        }
        let arn = self.arn("user", &new_path, &new_name);
        let Some(mut user) = self.users.remove(&old_key) else {
            return Err(no_such_user(name));
        };
        for serial in &user.mfa_devices {
            if let Some(device) = self.mfa_devices.get_mut(serial) {
                device.user = Some(new_name.clone());
            }
        }
        user.name = new_name;
        user.path = new_path;
        user.arn = arn;
        self.users.insert(new_key, user);
        Ok(())
    }

    /// `DeleteUser`. Like IAM, refuses while the user still has a login profile, access keys,
    /// MFA devices, inline or attached policies, or group memberships.
    pub fn delete_user(&mut self, name: &str) -> Result<(), DirectoryError> {
        let user = self.user_ref(name)?;
        let conflict = if user.login_profile.is_some() {
            Some("Cannot delete entity, must delete login profile first.")
        } else if !user.access_keys.is_empty() {
            Some("Cannot delete entity, must delete access keys first.")
        } else if !user.mfa_devices.is_empty() {
            Some("Cannot delete entity, must delete MFA device first.")
        } else if !user.inline_policies.is_empty() {
            Some("Cannot delete entity, must delete policies first.")
        } else if !user.attached_policies.is_empty() {
            Some("Cannot delete entity, must detach all policies first.")
        } else if !user.groups.is_empty() {
            Some("Cannot delete entity, must remove user from all groups first.")
        } else {
            None
        };
        if let Some(message) = conflict {
            return Err(DirectoryError::DeleteConflict(message.into()));
        }
        self.users.remove(&key(name));
        Ok(())
    }

    /// `TagUser`: adds or replaces tags (keys are case-insensitive and case-preserving: a
    /// new `department` replaces `Department`).
    pub fn tag_user(&mut self, name: &str, tags: &[Tag]) -> Result<(), DirectoryError> {
        let quota = self.quotas.tags_per_entity;
        let user = self.user_mut(name)?;
        user.tags = merge_tags(&user.tags, tags, true, quota, "TagsPerUser")?;
        Ok(())
    }

    /// `UntagUser`: removes the tags with these keys (case-insensitively); absent keys are
    /// ignored.
    pub fn untag_user(&mut self, name: &str, keys: &[String]) -> Result<(), DirectoryError> {
        validate::tag_keys(keys)?;
        let user = self.user_mut(name)?;
        remove_tags(&mut user.tags, keys, true);
        Ok(())
    }

    /// `ListUserTags`.
    pub fn list_user_tags(&self, name: &str) -> Result<&[Tag], DirectoryError> {
        Ok(&self.user_ref(name)?.tags)
    }
}
