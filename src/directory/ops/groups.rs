//! Groups and group membership. Membership is stored on the user (`User::groups`, group
//! names as written); a group's members are found by scanning the users.

use super::{key, no_such_group, path_or_root, quota_exceeded, under_prefix, validate_prefix};
use crate::directory::{validate, DirectoryError, Group, IdGenerator, IdPrefix, Tenant, User};

// === impl Tenant ===

impl Tenant {
    /// `CreateGroup`.
    pub fn create_group(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        name: &str,
        path: Option<&str>,
    ) -> Result<&Group, DirectoryError> {
        validate::name(name, "groupName", 128)?;
        let path = path_or_root(path, validate::path)?;
        let k = key(name);
        if self.groups.contains_key(&k) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "Group with name {name} already exists."
            )));
        }
        if self.groups.len() >= self.quotas.groups {
            return Err(quota_exceeded("GroupsPerAccount", self.quotas.groups));
        }
        let group = Group {
            arn: self.arn("group", &path, name),
            name: name.to_owned(),
            path,
            group_id: ids.unique_id(IdPrefix::Group),
            created_at: now,
            inline_policies: Default::default(),
            attached_policies: Vec::new(),
        };
        Ok(self.groups.entry(k).or_insert(group))
    }

    /// `GetGroup`: the group and its members, ordered by name.
    pub fn get_group(&self, name: &str) -> Result<(&Group, Vec<&User>), DirectoryError> {
        let group = self.group_ref(name)?;
        Ok((group, self.group_members(&group.name)))
    }

    /// The users that belong to the group named `name` (any case).
    fn group_members(&self, name: &str) -> Vec<&User> {
        let k = key(name);
        self.users
            .values()
            .filter(|u| u.groups.iter().any(|g| key(g) == k))
            .collect()
    }

    /// `ListGroups`, optionally under a path prefix.
    pub fn list_groups(&self, path_prefix: Option<&str>) -> Result<Vec<&Group>, DirectoryError> {
        validate_prefix(path_prefix)?;
        Ok(self
            .groups
            .values()
            .filter(|g| under_prefix(&g.path, path_prefix))
            .collect())
    }

    /// `UpdateGroup`: renames and/or moves a group; members follow the new name.
    pub fn update_group(
        &mut self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<(), DirectoryError> {
        if let Some(n) = new_name {
            validate::name(n, "newGroupName", 128)?;
        }
        if let Some(p) = new_path {
            validate::path(p, "newPath")?;
        }
        let old_key = key(name);
        let group = self.group_ref(name)?;
        let new_name = new_name.unwrap_or(&group.name).to_owned();
        let new_path = new_path.unwrap_or(&group.path).to_owned();
        let new_key = key(&new_name);
        if new_key != old_key && self.groups.contains_key(&new_key) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "Group with name {new_name} already exists."
            )));
        }
        let arn = self.arn("group", &new_path, &new_name);
        let Some(mut group) = self.groups.remove(&old_key) else {
            return Err(no_such_group(name));
        };
        for user in self.users.values_mut() {
            for g in user.groups.iter_mut().filter(|g| key(g) == old_key) {
                g.clone_from(&new_name);
            }
        }
        group.name = new_name;
        group.path = new_path;
        group.arn = arn;
        self.groups.insert(new_key, group);
        Ok(())
    }

    /// `DeleteGroup`: refused while the group has members, inline or attached policies.
    pub fn delete_group(&mut self, name: &str) -> Result<(), DirectoryError> {
        let group = self.group_ref(name)?;
        let conflict = if !self.group_members(name).is_empty() {
            Some("Cannot delete entity, must remove users from group first.")
        } else if !group.inline_policies.is_empty() {
            Some("Cannot delete entity, must delete policies first.")
        } else if !group.attached_policies.is_empty() {
            Some("Cannot delete entity, must detach all policies first.")
        } else {
            None
        };
        if let Some(message) = conflict {
            return Err(DirectoryError::DeleteConflict(message.into()));
        }
        self.groups.remove(&key(name));
        Ok(())
    }

    /// `AddUserToGroup`; adding a member again changes nothing.
    pub fn add_user_to_group(&mut self, group: &str, user: &str) -> Result<(), DirectoryError> {
        let group_name = self.group_ref(group)?.name.clone();
        let quota = self.quotas.groups_per_user;
        let member = self.user_mut(user)?;
        let k = key(&group_name);
        if member.groups.iter().any(|g| key(g) == k) {
            return Ok(());
        }
        if member.groups.len() >= quota {
            return Err(quota_exceeded("GroupsPerUser", quota));
        }
        member.groups.push(group_name);
        Ok(())
    }

    /// `RemoveUserFromGroup`.
    pub fn remove_user_from_group(
        &mut self,
        group: &str,
        user: &str,
    ) -> Result<(), DirectoryError> {
        let group_name = self.group_ref(group)?.name.clone();
        let member = self.user_mut(user)?;
        let k = key(&group_name);
        let Some(position) = member.groups.iter().position(|g| key(g) == k) else {
            return Err(DirectoryError::NoSuchEntity(format!(
                "User {} is not in group {group_name}.",
                member.name
            )));
        };
        member.groups.remove(position);
        Ok(())
    }

    /// `ListGroupsForUser`, in the order the user joined them.
    pub fn list_groups_for_user(&self, user: &str) -> Result<Vec<&Group>, DirectoryError> {
        let user = self.user_ref(user)?;
        Ok(user
            .groups
            .iter()
            .filter_map(|g| self.groups.get(&key(g)))
            .collect())
    }
}
