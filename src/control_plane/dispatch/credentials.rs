//! Access keys, login profiles (console passwords) and virtual MFA devices.
//!
//! `CreateAccessKey` and `CreateVirtualMFADevice` are the only results that carry secrets
//! (the secret access key and the MFA seed, shown once as AWS does).

use serde_json::{json, Value};

use super::params::{invalid, Params};
use super::render::{self, by, listing, wrap, Detail};
use crate::control_plane::AdminError;
use crate::directory::{
    AccessKeyStatus, DirectoryError, IdGenerator, LoginProfile, PasswordHasher, Tenant,
};

/// Whether `action` derives or verifies console password hashes (PBKDF2, slow on purpose):
/// the control plane does that work ahead, outside its write lock.
pub(crate) fn hashes_passwords(action: &str) -> bool {
    matches!(
        action,
        "CreateLoginProfile" | "UpdateLoginProfile" | "ChangePassword"
    )
}

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise).
#[expect(
    clippy::needless_pass_by_value,
    reason = "dispatch hands its hasher over whole, as every caller of dispatch does; it is an \
              iteration count and at most an Arc"
)]
pub(super) fn run(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    hasher: PasswordHasher,
    now: i64,
    action: &str,
    p: Params<'_>,
) -> Result<Option<Value>, AdminError> {
    let empty = json!({});
    let result = match action {
        // --- access keys ---
        "CreateAccessKey" => {
            let user = p.str("UserName")?;
            let key = t.create_access_key(ids, now, user)?;
            let user = &t.get_user(user)?.name;
            wrap(
                "AccessKey",
                json!({
                    "UserName": user,
                    "AccessKeyId": key.access_key_id,
                    "Status": render::status(key.status),
                    "SecretAccessKey": key.secret.expose(),
                    "CreateDate": render::date(key.created_at),
                }),
            )
        }
        "UpdateAccessKey" => {
            let status = match p.str("Status")? {
                "Active" => AccessKeyStatus::Active,
                "Inactive" => AccessKeyStatus::Inactive,
                _ => return Err(invalid("Status", "must be Active or Inactive")),
            };
            t.update_access_key(p.str("UserName")?, p.str("AccessKeyId")?, status)?;
            empty
        }
        "DeleteAccessKey" => {
            t.delete_access_key(p.str("UserName")?, p.str("AccessKeyId")?)?;
            empty
        }
        "ListAccessKeys" => {
            let keys = t.list_access_keys(p.str("UserName")?)?;
            let items = keys.into_iter().map(|k| {
                json!({
                    "UserName": k.user_name,
                    "AccessKeyId": k.access_key_id,
                    "Status": render::status(k.status),
                    "CreateDate": render::date(k.created_at),
                })
            });
            listing(p, "AccessKeyMetadata", items.collect(), by("AccessKeyId"))?
        }
        "GetAccessKeyLastUsed" => {
            let id = p.str("AccessKeyId")?;
            let (user, key) = t.find_access_key(id).ok_or_else(|| {
                DirectoryError::NoSuchEntity(format!(
                    "The Access Key with id {id} cannot be found."
                ))
            })?;
            // In the model's order: LastUsedDate (when used), ServiceName, Region.
            let mut last_used = serde_json::Map::new();
            if let Some(at) = key.last_used_at {
                last_used.insert("LastUsedDate".into(), render::date(at));
            }
            last_used.insert("ServiceName".into(), "N/A".into());
            last_used.insert("Region".into(), "N/A".into());
            json!({"UserName": user.name, "AccessKeyLastUsed": last_used})
        }

        // --- login profiles ---
        "CreateLoginProfile" => {
            let user = p.str("UserName")?;
            let password = p.str("Password")?;
            let reset = p.bool_or("PasswordResetRequired", false)?;
            t.create_login_profile(ids, &hasher, now, user, password, reset)?;
            login_profile(t, user, now)?
        }
        "UpdateLoginProfile" => {
            let user = p.str("UserName")?;
            let password = p.opt_str("Password")?;
            let reset = p.opt_bool("PasswordResetRequired")?;
            t.update_login_profile(ids, &hasher, now, user, password, reset)?;
            empty
        }
        "ChangePassword" => {
            t.change_password(
                ids,
                &hasher,
                now,
                p.str("UserName")?,
                p.str("OldPassword")?,
                p.str("NewPassword")?,
            )?;
            empty
        }
        "DeleteLoginProfile" => {
            t.delete_login_profile(p.str("UserName")?)?;
            empty
        }
        "GetLoginProfile" => login_profile(t, p.str("UserName")?, now)?,

        // --- MFA devices ---
        "CreateVirtualMFADevice" => {
            let name = p.str("VirtualMFADeviceName")?;
            let tags = p.tags("Tags")?;
            let device =
                t.create_tagged_virtual_mfa_device(ids, name, p.opt_str("Path")?, &tags)?;
            let mut out = serde_json::Map::new();
            out.insert("SerialNumber".into(), device.serial_number.clone().into());
            out.insert("Base32StringSeed".into(), device.seed.expose().into());
            if !device.tags.is_empty() {
                out.insert("Tags".into(), render::tags(&device.tags));
            }
            wrap("VirtualMFADevice", Value::Object(out))
        }
        "GetMFADevice" => {
            let info = t.get_mfa_device(p.str("SerialNumber")?, p.opt_str("UserName")?)?;
            // In the model's order: UserName, SerialNumber, EnableDate (once enabled).
            let mut out = serde_json::Map::new();
            if let Some(user) = info.user_name {
                out.insert("UserName".into(), user.into());
            }
            out.insert("SerialNumber".into(), info.serial_number.into());
            if let Some(at) = info.enable_date {
                out.insert("EnableDate".into(), render::date(at));
            }
            Value::Object(out)
        }
        "ResyncMFADevice" => {
            let user = p.str("UserName")?;
            let serial = p.str("SerialNumber")?;
            let code1 = mfa_code(p, "AuthenticationCode1")?;
            let code2 = mfa_code(p, "AuthenticationCode2")?;
            t.resync_mfa_device(user, serial, code1, code2, now)?;
            empty
        }
        "TagMFADevice" => {
            t.tag_mfa_device(p.str("SerialNumber")?, &p.req_tags("Tags")?)?;
            empty
        }
        "UntagMFADevice" => {
            t.untag_mfa_device(p.str("SerialNumber")?, &p.req_str_list("TagKeys")?)?;
            empty
        }
        "ListMFADeviceTags" => {
            let tags = t.list_mfa_device_tags(p.str("SerialNumber")?)?;
            let items = tags
                .iter()
                .map(|t| json!({"Key": t.key, "Value": t.value}))
                .collect();
            listing(p, "Tags", items, by("Key"))?
        }
        "EnableMFADevice" => {
            let user = p.str("UserName")?;
            let serial = p.str("SerialNumber")?;
            let code1 = mfa_code(p, "AuthenticationCode1")?;
            let code2 = mfa_code(p, "AuthenticationCode2")?;
            t.enable_mfa_device(user, serial, code1, code2, now)?;
            empty
        }
        "DeactivateMFADevice" => {
            t.deactivate_mfa_device(p.str("UserName")?, p.str("SerialNumber")?)?;
            empty
        }
        "DeleteVirtualMFADevice" => {
            t.delete_virtual_mfa_device(p.str("SerialNumber")?)?;
            empty
        }
        "ListMFADevices" => {
            let devices = t.list_mfa_devices(p.str("UserName")?)?;
            let items = devices.into_iter().map(|d| {
                json!({
                    "UserName": d.user_name,
                    "SerialNumber": d.serial_number,
                    "EnableDate": render::date(d.enable_date),
                })
            });
            listing(p, "MFADevices", items.collect(), by("SerialNumber"))?
        }
        "ListVirtualMFADevices" => list_virtual_mfa_devices(t, p)?,
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// `{"LoginProfile": {...}}`: never the hash. `PasswordResetRequired` is also true once the
/// password is past the password policy's maximum age (the user must then change it).
fn login_profile(t: &Tenant, user: &str, now: i64) -> Result<Value, AdminError> {
    let profile = t.get_login_profile(user)?;
    let password_reset_required = t.password_change_required(profile, now);
    let LoginProfile { created_at, .. } = profile;
    let name = &t.get_user(user)?.name;
    Ok(wrap(
        "LoginProfile",
        json!({
            "UserName": name,
            "CreateDate": render::date(*created_at),
            "PasswordResetRequired": password_reset_required,
        }),
    ))
}

/// An MFA code, checked here so that a malformed code is refused without being echoed (the
/// directory's validation message would quote it).
fn mfa_code<'a>(p: Params<'a>, name: &str) -> Result<&'a str, AdminError> {
    let code = p.str(name)?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        let mut field = name.to_owned();
        if let Some(first) = field.get_mut(..1) {
            first.make_ascii_lowercase();
        }
        return Err(DirectoryError::Validation(format!(
            "1 validation error detected: Value '<redacted>' at '{field}' failed to satisfy constraint: Member must be six digits"
        ))
        .into());
    }
    Ok(code)
}

/// `ListVirtualMFADevices` with `AssignmentStatus` (`Assigned`, `Unassigned`, `Any`).
fn list_virtual_mfa_devices(t: &Tenant, p: Params<'_>) -> Result<Value, AdminError> {
    let status = p.opt_str("AssignmentStatus")?.unwrap_or("Any");
    let wanted = |assigned: bool| match status {
        "Assigned" => Ok(assigned),
        "Unassigned" => Ok(!assigned),
        "Any" => Ok(true),
        _ => Err(invalid(
            "AssignmentStatus",
            "must be Assigned, Unassigned or Any",
        )),
    };
    wanted(true)?;
    let mut items = Vec::new();
    for device in t.mfa_devices.values() {
        if !wanted(device.user.is_some())? {
            continue;
        }
        let mut item = serde_json::Map::new();
        item.insert("SerialNumber".into(), device.serial_number.clone().into());
        if let Some(user) = device.user.as_deref().and_then(|u| t.get_user(u).ok()) {
            item.insert("User".into(), render::user(user, Detail::Listing));
        }
        if let Some(at) = device.enabled_at {
            item.insert("EnableDate".into(), render::date(at));
        }
        items.push(Value::Object(item));
    }
    listing(p, "VirtualMFADevices", items, by("SerialNumber"))
}
