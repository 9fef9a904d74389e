//! Credentials of users: access keys, console passwords (login profiles) and virtual MFA
//! devices.

use super::{merge_tags, path_or_root, quota_exceeded, remove_tags};
use crate::directory::password::PasswordHasher;
use crate::directory::totp::{code_at_step, codes_equal, time_step};
use crate::directory::{
    validate, AccessKey, AccessKeyStatus, DirectoryError, IdGenerator, IdPrefix, LoginProfile,
    Secret, Tag, Tenant, User, VirtualMfaDevice,
};

/// An access key without its secret (`ListAccessKeys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyMetadata {
    /// The user's name.
    pub user_name: String,
    /// The key id.
    pub access_key_id: String,
    /// Active or inactive.
    pub status: AccessKeyStatus,
    /// When the key was created.
    pub created_at: i64,
}

/// An MFA device enabled for a user (`ListMFADevices`), without its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDeviceMetadata {
    /// The user's name.
    pub user_name: String,
    /// The device's serial number (its ARN).
    pub serial_number: String,
    /// When the device was enabled.
    pub enable_date: i64,
}

/// A virtual MFA device as `GetMFADevice` shows it: its user and enable date once enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDeviceInfo {
    /// The device's serial number (its ARN).
    pub serial_number: String,
    /// The user it is enabled for, if any.
    pub user_name: Option<String>,
    /// When it was enabled, if it is.
    pub enable_date: Option<i64>,
}

/// How far `ResyncMFADevice` looks for the device's two codes, in time steps either side of
/// where it expects them (20 steps, ten minutes): a clock that drifted further is better
/// re-enabled than searched for, since every step searched is a guess an attacker gets.
const RESYNC_WINDOW_STEPS: u64 = 20;

/// The text of `InvalidAuthenticationCode`.
const MSG_INVALID_CODE: &str = "Authentication code for device is not valid.";

/// The length of a virtual MFA seed, in base32 characters (160 bits).
const SEED_LEN: usize = 32;

fn invalid_code() -> DirectoryError {
    DirectoryError::InvalidAuthenticationCode(MSG_INVALID_CODE.into())
}

fn no_such_device(serial: &str) -> DirectoryError {
    DirectoryError::NoSuchEntity(format!(
        "MFA device with serial number {serial} cannot be found."
    ))
}

fn no_such_login_profile(user: &str) -> DirectoryError {
    DirectoryError::NoSuchEntity(format!("Login Profile for User {user} cannot be found."))
}

/// The time step `code1` was generated in, if `code1` and `code2` are the codes of two
/// consecutive steps and the pair is at most one step away from the expected (previous,
/// current) pair. Steps at or before `last_used` never count.
fn consecutive_pair(
    seed: &str,
    code1: &str,
    code2: &str,
    now: i64,
    last_used: Option<u64>,
) -> Option<u64> {
    let current = time_step(now);
    consecutive_pair_in(
        seed,
        code1,
        code2,
        current.saturating_sub(2)..=current,
        last_used,
    )
}

/// The first step of `steps` whose code is `code1` and whose next step's code is `code2`,
/// skipping steps at or before `last_used`.
fn consecutive_pair_in(
    seed: &str,
    code1: &str,
    code2: &str,
    steps: std::ops::RangeInclusive<u64>,
    last_used: Option<u64>,
) -> Option<u64> {
    steps
        .filter(|s| last_used.is_none_or(|l| *s > l))
        .find(|&s| {
            let c1 = code_at_step(seed, s);
            let c2 = code_at_step(seed, s.saturating_add(1));
            matches!((c1, c2), (Some(c1), Some(c2)) if codes_equal(&c1, code1) & codes_equal(&c2, code2))
        })
}

// === impl Tenant ===

impl Tenant {
    // --- access keys ---

    /// `CreateAccessKey`: a new active key. The result carries the secret, which is never
    /// shown again.
    pub fn create_access_key(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        user: &str,
    ) -> Result<AccessKey, DirectoryError> {
        let quota = self.quotas.access_keys_per_user;
        let account = self.account_id.clone();
        let user = self.user_mut(user)?;
        if user.access_keys.len() >= quota {
            return Err(quota_exceeded("AccessKeysPerUser", quota));
        }
        let key = AccessKey {
            access_key_id: ids.access_key_id(IdPrefix::AccessKey, &account),
            secret: Secret::new(ids.secret_access_key()),
            derived: None,
            status: AccessKeyStatus::Active,
            created_at: now,
            last_used_at: None,
        };
        user.access_keys.push(key.clone());
        Ok(key)
    }

    fn access_key_mut(
        &mut self,
        user: &str,
        access_key_id: &str,
    ) -> Result<&mut AccessKey, DirectoryError> {
        self.user_mut(user)?
            .access_keys
            .iter_mut()
            .find(|k| k.access_key_id == access_key_id)
            .ok_or_else(|| {
                DirectoryError::NoSuchEntity(format!(
                    "The Access Key with id {access_key_id} cannot be found."
                ))
            })
    }

    /// `UpdateAccessKey`: activates or deactivates a key.
    pub fn update_access_key(
        &mut self,
        user: &str,
        access_key_id: &str,
        status: AccessKeyStatus,
    ) -> Result<(), DirectoryError> {
        self.access_key_mut(user, access_key_id)?.status = status;
        Ok(())
    }

    /// `DeleteAccessKey`.
    pub fn delete_access_key(
        &mut self,
        user: &str,
        access_key_id: &str,
    ) -> Result<(), DirectoryError> {
        self.access_key_mut(user, access_key_id)?;
        self.user_mut(user)?
            .access_keys
            .retain(|k| k.access_key_id != access_key_id);
        Ok(())
    }

    /// `ListAccessKeys`: the user's keys, without secrets.
    pub fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyMetadata>, DirectoryError> {
        let user = self.user_ref(user)?;
        Ok(user
            .access_keys
            .iter()
            .map(|k| AccessKeyMetadata {
                user_name: user.name.clone(),
                access_key_id: k.access_key_id.clone(),
                status: k.status,
                created_at: k.created_at,
            })
            .collect())
    }

    /// The user that owns an access key, and the key (active or not).
    pub fn find_access_key(&self, access_key_id: &str) -> Option<(&User, &AccessKey)> {
        self.users.values().find_map(|u| {
            u.access_keys
                .iter()
                .find(|k| k.access_key_id == access_key_id)
                .map(|k| (u, k))
        })
    }

    // --- login profiles ---

    /// `CreateLoginProfile`: gives the user a console password, stored as a PBKDF2 hash. The
    /// password must meet the account's password rules.
    pub fn create_login_profile(
        &mut self,
        ids: &mut IdGenerator,
        hasher: &PasswordHasher,
        now: i64,
        user: &str,
        password: &str,
        password_reset_required: bool,
    ) -> Result<&LoginProfile, DirectoryError> {
        let u = self.user_ref(user)?;
        if u.login_profile.is_some() {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "Login Profile for user {} already exists.",
                u.name
            )));
        }
        self.check_new_password(&u.name, password)?;
        let profile = LoginProfile {
            password_hash: hasher.hash(password, ids),
            password_reset_required,
            created_at: now,
            password_changed_at: Some(now),
            previous_password_hashes: Vec::new(),
        };
        Ok(self.user_mut(user)?.login_profile.insert(profile))
    }

    /// `UpdateLoginProfile`: a new password and/or reset flag. A new password must meet the
    /// account's password rules, reuse prevention included.
    pub fn update_login_profile(
        &mut self,
        ids: &mut IdGenerator,
        hasher: &PasswordHasher,
        now: i64,
        user: &str,
        password: Option<&str>,
        password_reset_required: Option<bool>,
    ) -> Result<(), DirectoryError> {
        let u = self.user_ref(user)?;
        let profile = u
            .login_profile
            .as_ref()
            .ok_or_else(|| no_such_login_profile(&u.name))?;
        if let Some(p) = password {
            self.check_new_password(&u.name, p)?;
            self.check_password_reuse(hasher, profile, p)?;
        }
        let hash = password.map(|p| hasher.hash(p, ids));
        let mut profile = profile.clone();
        if let Some(hash) = hash {
            self.record_new_password(&mut profile, hash, now);
        }
        if let Some(reset) = password_reset_required {
            profile.password_reset_required = reset;
        }
        self.user_mut(user)?.login_profile = Some(profile);
        Ok(())
    }

    /// `ChangePassword`: the user changes its own console password, proving the old one;
    /// the new one must meet the password rules, and a required reset (or an expired
    /// password) is then done. Under `HardExpiry` an expired password cannot be changed
    /// this way.
    pub fn change_password(
        &mut self,
        ids: &mut IdGenerator,
        hasher: &PasswordHasher,
        now: i64,
        user: &str,
        old_password: &str,
        new_password: &str,
    ) -> Result<(), DirectoryError> {
        let u = self.user_ref(user)?;
        let profile = u
            .login_profile
            .as_ref()
            .ok_or_else(|| no_such_login_profile(&u.name))?;
        if !hasher.verify(&profile.password_hash, old_password) {
            return Err(DirectoryError::AccessDenied(
                "The old password is incorrect.".into(),
            ));
        }
        self.check_not_hard_expired(user, now)?;
        self.update_login_profile(ids, hasher, now, user, Some(new_password), Some(false))
    }

    /// `DeleteLoginProfile`.
    pub fn delete_login_profile(&mut self, user: &str) -> Result<(), DirectoryError> {
        let u = self.user_mut(user)?;
        if u.login_profile.take().is_none() {
            return Err(no_such_login_profile(&u.name));
        }
        Ok(())
    }

    /// `GetLoginProfile`.
    pub fn get_login_profile(&self, user: &str) -> Result<&LoginProfile, DirectoryError> {
        let u = self.user_ref(user)?;
        u.login_profile
            .as_ref()
            .ok_or_else(|| no_such_login_profile(&u.name))
    }

    // --- virtual MFA devices ---

    /// `CreateVirtualMFADevice`: a new, unassigned device. The result carries the base32
    /// seed, which is never shown again.
    pub fn create_virtual_mfa_device(
        &mut self,
        ids: &mut IdGenerator,
        name: &str,
        path: Option<&str>,
    ) -> Result<VirtualMfaDevice, DirectoryError> {
        self.create_tagged_virtual_mfa_device(ids, name, path, &[])
    }

    /// `CreateVirtualMFADevice` with `Tags` (keys case-sensitive).
    pub fn create_tagged_virtual_mfa_device(
        &mut self,
        ids: &mut IdGenerator,
        name: &str,
        path: Option<&str>,
        tags: &[Tag],
    ) -> Result<VirtualMfaDevice, DirectoryError> {
        validate::name(name, "virtualMFADeviceName", 226)?;
        let path = path_or_root(path, validate::path)?;
        let tags = merge_tags(
            &[],
            tags,
            false,
            self.quotas.tags_per_entity,
            "TagsPerMFADevice",
        )?;
        let serial = self.arn("mfa", &path, name);
        validate::length(&serial, "serialNumber", 9, 256)?;
        if self.mfa_devices.contains_key(&serial) {
            return Err(DirectoryError::EntityAlreadyExists(
                "MFADevice entity at the same path and name already exists.".into(),
            ));
        }
        let device = VirtualMfaDevice {
            serial_number: serial.clone(),
            name: name.to_owned(),
            path,
            seed: Secret::new(ids.base32(SEED_LEN)),
            user: None,
            enabled_at: None,
            last_used_step: None,
            tags,
            drift_steps: 0,
        };
        self.mfa_devices.insert(serial, device.clone());
        Ok(device)
    }

    /// `EnableMFADevice`: assigns a device to a user once the user proves possession with
    /// two consecutive codes.
    pub fn enable_mfa_device(
        &mut self,
        user: &str,
        serial: &str,
        code1: &str,
        code2: &str,
        now: i64,
    ) -> Result<(), DirectoryError> {
        validate::mfa_code(code1, "authenticationCode1")?;
        validate::mfa_code(code2, "authenticationCode2")?;
        let u = self.user_ref(user)?;
        let device = self
            .mfa_devices
            .get(serial)
            .ok_or_else(|| no_such_device(serial))?;
        if device.user.is_some() {
            return Err(DirectoryError::EntityAlreadyExists(
                "MFA Device is already in use.".into(),
            ));
        }
        if u.mfa_devices.len() >= self.quotas.mfa_per_user {
            return Err(quota_exceeded(
                "MFADevicesPerUser",
                self.quotas.mfa_per_user,
            ));
        }
        let step = consecutive_pair(
            device.seed.expose(),
            code1,
            code2,
            now,
            device.last_used_step,
        )
        .ok_or_else(invalid_code)?;
        let user_name = u.name.clone();
        if let Some(device) = self.mfa_devices.get_mut(serial) {
            device.user = Some(user_name);
            device.enabled_at = Some(now);
            device.last_used_step = Some(step.saturating_add(1));
            device.drift_steps = 0;
        }
        self.user_mut(user)?.mfa_devices.push(serial.to_owned());
        Ok(())
    }

    /// `DeactivateMFADevice`: unassigns the device from the user; the device remains.
    pub fn deactivate_mfa_device(
        &mut self,
        user: &str,
        serial: &str,
    ) -> Result<(), DirectoryError> {
        let u = self.user_ref(user)?;
        if !u.mfa_devices.iter().any(|s| s == serial) {
            return Err(no_such_device(serial));
        }
        if let Some(device) = self.mfa_devices.get_mut(serial) {
            device.user = None;
            device.enabled_at = None;
            device.drift_steps = 0;
        }
        self.user_mut(user)?.mfa_devices.retain(|s| s != serial);
        Ok(())
    }

    /// `DeleteVirtualMFADevice`: refused while the device is enabled for a user.
    pub fn delete_virtual_mfa_device(&mut self, serial: &str) -> Result<(), DirectoryError> {
        let device = self
            .mfa_devices
            .get(serial)
            .ok_or_else(|| no_such_device(serial))?;
        if device.user.is_some() {
            return Err(DirectoryError::DeleteConflict(
                "MFA Device is still in use.".into(),
            ));
        }
        self.mfa_devices.remove(serial);
        Ok(())
    }

    /// `ListMFADevices`: the devices enabled for a user, without seeds.
    pub fn list_mfa_devices(&self, user: &str) -> Result<Vec<MfaDeviceMetadata>, DirectoryError> {
        let u = self.user_ref(user)?;
        Ok(u.mfa_devices
            .iter()
            .filter_map(|serial| self.mfa_devices.get(serial))
            .map(|d| MfaDeviceMetadata {
                user_name: u.name.clone(),
                serial_number: d.serial_number.clone(),
                enable_date: d.enabled_at.unwrap_or_default(),
            })
            .collect())
    }

    /// Verifies an MFA code for STS (`SerialNumber` + `TokenCode`): the device must be
    /// enabled, and the code must be that of the current step or one step either side and
    /// newer than the last accepted step, which it then becomes (a code is never accepted
    /// twice).
    pub fn verify_mfa_code(
        &mut self,
        serial: &str,
        code: &str,
        now: i64,
    ) -> Result<(), DirectoryError> {
        validate::mfa_code(code, "tokenCode")?;
        let device = self
            .mfa_devices
            .get_mut(serial)
            .ok_or_else(|| no_such_device(serial))?;
        if device.user.is_none() {
            return Err(invalid_code());
        }
        let current = device.expected_step(now);
        let step = (current.saturating_sub(1)..=current.saturating_add(1))
            .filter(|s| device.last_used_step.is_none_or(|l| *s > l))
            .find(|&s| code_at_step(device.seed.expose(), s).is_some_and(|c| codes_equal(&c, code)))
            .ok_or_else(invalid_code)?;
        device.last_used_step = Some(step);
        Ok(())
    }

    // --- MFA device tags, GetMFADevice, ResyncMFADevice ---

    fn mfa_device_mut(&mut self, serial: &str) -> Result<&mut VirtualMfaDevice, DirectoryError> {
        self.mfa_devices
            .get_mut(serial)
            .ok_or_else(|| no_such_device(serial))
    }

    /// `TagMFADevice`: adds or replaces tags (keys case-sensitive).
    pub fn tag_mfa_device(&mut self, serial: &str, tags: &[Tag]) -> Result<(), DirectoryError> {
        let quota = self.quotas.tags_per_entity;
        let device = self.mfa_device_mut(serial)?;
        device.tags = merge_tags(&device.tags, tags, false, quota, "TagsPerMFADevice")?;
        Ok(())
    }

    /// `UntagMFADevice`: absent keys are ignored.
    pub fn untag_mfa_device(
        &mut self,
        serial: &str,
        keys: &[String],
    ) -> Result<(), DirectoryError> {
        validate::tag_keys(keys)?;
        remove_tags(&mut self.mfa_device_mut(serial)?.tags, keys, false);
        Ok(())
    }

    /// `ListMFADeviceTags`.
    pub fn list_mfa_device_tags(&self, serial: &str) -> Result<&[Tag], DirectoryError> {
        self.mfa_devices
            .get(serial)
            .map(|d| d.tags.as_slice())
            .ok_or_else(|| no_such_device(serial))
    }

    /// `GetMFADevice`: with `user`, the device must be enabled for that user; without, any
    /// device of the account (an unassigned one has neither user nor enable date).
    pub fn get_mfa_device(
        &self,
        serial: &str,
        user: Option<&str>,
    ) -> Result<MfaDeviceInfo, DirectoryError> {
        let device = self
            .mfa_devices
            .get(serial)
            .ok_or_else(|| no_such_device(serial))?;
        if let Some(user) = user {
            let u = self.user_ref(user)?;
            if !u.mfa_devices.iter().any(|s| s == serial) {
                return Err(no_such_device(serial));
            }
        }
        Ok(MfaDeviceInfo {
            serial_number: device.serial_number.clone(),
            user_name: device.user.clone(),
            enable_date: device.enabled_at,
        })
    }

    /// `ResyncMFADevice`: the user proves the device with two consecutive codes anywhere
    /// within `RESYNC_WINDOW_STEPS` of where they are expected; the device's clock drift
    /// is then what those codes show, and later codes are expected around it. Codes at or
    /// before the last accepted step never count, so a pair is never accepted twice.
    pub fn resync_mfa_device(
        &mut self,
        user: &str,
        serial: &str,
        code1: &str,
        code2: &str,
        now: i64,
    ) -> Result<(), DirectoryError> {
        validate::mfa_code(code1, "authenticationCode1")?;
        validate::mfa_code(code2, "authenticationCode2")?;
        let u = self.user_ref(user)?;
        if !u.mfa_devices.iter().any(|s| s == serial) {
            return Err(no_such_device(serial));
        }
        let device = self.mfa_device_mut(serial)?;
        let expected = device.expected_step(now);
        let window = expected.saturating_sub(RESYNC_WINDOW_STEPS)
            ..=expected.saturating_add(RESYNC_WINDOW_STEPS);
        let step = consecutive_pair_in(
            device.seed.expose(),
            code1,
            code2,
            window,
            device.last_used_step,
        )
        .ok_or_else(invalid_code)?;
        let device_now = step.saturating_add(1);
        let current = time_step(now);
        // Both are steps since 1970 (below 2^59 until the year 10^10), so they fit an i64.
        let drift = i64::try_from(device_now)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(current).unwrap_or(i64::MAX));
        device.drift_steps = drift;
        device.last_used_step = Some(device_now);
        Ok(())
    }
}

// === impl VirtualMfaDevice ===

impl VirtualMfaDevice {
    /// The time step the device's code is expected in at `now`: ours, shifted by the drift
    /// `ResyncMFADevice` measured.
    pub fn expected_step(&self, now: i64) -> u64 {
        time_step(now).saturating_add_signed(self.drift_steps)
    }
}
