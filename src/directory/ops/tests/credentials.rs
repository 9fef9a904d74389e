//! Access keys, login profiles and MFA devices.

use super::*;
use crate::directory::totp::{code_at_step, time_step};
use crate::directory::{verify_password, AccessKeyStatus, PasswordHasher};

/// Debug builds make the production count slow; the stored format records the count used.
fn fast() -> PasswordHasher {
    PasswordHasher::with_iterations(2)
}

#[test]
fn access_keys() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    let k1 = t.create_access_key(&mut ids, NOW, "ALICE").unwrap();
    assert!(k1.access_key_id.starts_with("AKIA") && k1.access_key_id.len() == 20);
    assert_eq!(k1.secret.expose().len(), 40);
    assert_eq!(k1.status, AccessKeyStatus::Active);
    let k2 = t.create_access_key(&mut ids, NOW, "alice").unwrap();
    assert_eq!(
        fails(&mut t, |t| t
            .create_access_key(&mut IdGenerator::seeded(4), NOW, "alice")
            .map(drop)),
        DirectoryError::LimitExceeded("Cannot exceed quota for AccessKeysPerUser: 2".into())
    );
    assert_eq!(
        fails(&mut t, |t| t
            .create_access_key(&mut IdGenerator::seeded(4), NOW, "bob")
            .map(drop))
        .code(),
        "NoSuchEntity"
    );

    let listed = t.list_access_keys("alice").unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].access_key_id, k1.access_key_id);
    assert_eq!(listed[0].user_name, "alice");
    assert!(!format!("{listed:?}").contains(k1.secret.expose()));

    let (user, key) = t.find_access_key(&k2.access_key_id).unwrap();
    assert_eq!(
        (user.name.as_str(), key.secret.expose()),
        ("alice", k2.secret.expose())
    );
    assert!(t.find_access_key("AKIANOPE").is_none());

    t.update_access_key("alice", &k1.access_key_id, AccessKeyStatus::Inactive)
        .unwrap();
    assert_eq!(
        t.list_access_keys("alice").unwrap()[0].status,
        AccessKeyStatus::Inactive
    );
    assert_eq!(
        fails(&mut t, |t| t.update_access_key(
            "alice",
            "AKIANOPE",
            AccessKeyStatus::Active
        ))
        .to_string(),
        "The Access Key with id AKIANOPE cannot be found."
    );
    t.delete_access_key("alice", &k1.access_key_id).unwrap();
    assert_eq!(
        fails(&mut t, |t| t.delete_access_key("alice", &k1.access_key_id)).code(),
        "NoSuchEntity"
    );
    assert_eq!(t.list_access_keys("alice").unwrap().len(), 1);
    t.create_access_key(&mut ids, NOW, "alice").unwrap();
}

#[test]
fn login_profiles() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    t.set_account_alias("acme-corp").unwrap();
    for (password, expected) in [
        ("short1A", "PasswordPolicyViolation"),
        ("alllowercase", "PasswordPolicyViolation"),
        ("Alice", "PasswordPolicyViolation"),
        ("aLiCe", "PasswordPolicyViolation"),
        ("", "ValidationError"),
        ("Snowman☃-1", "ValidationError"),
    ] {
        let err = fails(&mut t, |t| {
            t.create_login_profile(
                &mut IdGenerator::seeded(2),
                &fast(),
                NOW,
                "alice",
                password,
                false,
            )
            .map(drop)
        });
        assert_eq!(err.code(), expected, "{password}");
    }
    // Equal to the user name or the alias, though otherwise strong enough.
    add_user(&mut t, &mut ids, "Strong-Name1");
    assert_eq!(
        fails(&mut t, |t| t
            .create_login_profile(
                &mut ids,
                &fast(),
                NOW,
                "strong-name1",
                "Strong-Name1",
                false
            )
            .map(drop))
        .code(),
        "PasswordPolicyViolation"
    );
    t.set_account_alias("acme-corp9").unwrap();
    assert_eq!(
        fails(&mut t, |t| t
            .create_login_profile(&mut ids, &fast(), NOW, "alice", "ACME-corp9", false)
            .map(drop))
        .code(),
        "PasswordPolicyViolation"
    );

    let profile = t
        .create_login_profile(&mut ids, &fast(), NOW, "alice", "Correct-Horse-1", true)
        .unwrap();
    assert!(profile.password_reset_required);
    assert!(verify_password(&profile.password_hash, "Correct-Horse-1"));
    assert!(!verify_password(&profile.password_hash, "correct-horse-1"));
    assert_eq!(
        fails(&mut t, |t| t
            .create_login_profile(&mut ids, &fast(), NOW, "alice", "Correct-Horse-1", true)
            .map(drop))
        .to_string(),
        "Login Profile for user alice already exists."
    );

    t.update_login_profile(
        &mut ids,
        &fast(),
        NOW,
        "alice",
        Some("Battery-Staple-2"),
        Some(false),
    )
    .unwrap();
    let profile = t.get_login_profile("alice").unwrap();
    assert!(!profile.password_reset_required);
    assert!(verify_password(&profile.password_hash, "Battery-Staple-2"));
    assert!(!verify_password(&profile.password_hash, "Correct-Horse-1"));
    assert_eq!(
        fails(&mut t, |t| t.update_login_profile(
            &mut ids,
            &fast(),
            NOW,
            "alice",
            Some("weak"),
            None
        ))
        .code(),
        "PasswordPolicyViolation"
    );
    t.update_login_profile(&mut ids, &fast(), NOW, "alice", None, Some(true))
        .unwrap();
    assert!(
        t.get_login_profile("alice")
            .unwrap()
            .password_reset_required
    );

    t.delete_login_profile("alice").unwrap();
    assert_eq!(
        t.get_login_profile("alice").unwrap_err().to_string(),
        "Login Profile for User alice cannot be found."
    );
    assert_eq!(
        fails(&mut t, |t| t.delete_login_profile("alice")).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.update_login_profile(
            &mut ids,
            &fast(),
            NOW,
            "alice",
            None,
            Some(true)
        ))
        .code(),
        "NoSuchEntity"
    );
}

fn device(t: &mut Tenant, ids: &mut IdGenerator, name: &str) -> (String, String) {
    let d = t.create_virtual_mfa_device(ids, name, None).unwrap();
    (d.serial_number, d.seed.expose().to_owned())
}

#[test]
fn virtual_mfa_devices() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    let d = t
        .create_virtual_mfa_device(&mut ids, "phone", Some("/eng/"))
        .unwrap();
    assert_eq!(d.serial_number, "arn:aws:iam::111122223333:mfa/eng/phone");
    assert_eq!(d.seed.expose().len(), 32);
    assert!(crate::directory::totp::decode_base32(d.seed.expose()).is_some());
    assert_eq!(
        fails(&mut t, |t| t
            .create_virtual_mfa_device(&mut IdGenerator::seeded(3), "phone", Some("/eng/"))
            .map(drop))
        .code(),
        "EntityAlreadyExists"
    );
    assert_eq!(
        fails(&mut t, |t| t
            .create_virtual_mfa_device(&mut IdGenerator::seeded(3), "my phone", None)
            .map(drop))
        .code(),
        "ValidationError"
    );

    let serial = d.serial_number.clone();
    let seed = d.seed.expose().to_owned();
    let step = time_step(NOW);
    let code = |s: u64| code_at_step(&seed, s).unwrap();
    // Wrong, non-consecutive, reversed and stale pairs are refused.
    for (c1, c2) in [
        ("000000".to_owned(), "000000".to_owned()),
        (code(step - 1), code(step - 1)),
        (code(step), code(step - 1)),
        (code(step - 5), code(step - 4)),
        (code(step - 1), code(step + 1)),
    ] {
        if c1 == code(step - 1) && c2 == code(step) {
            continue;
        }
        let err = fails(&mut t, |t| {
            t.enable_mfa_device("alice", &serial, &c1, &c2, NOW)
        });
        assert_eq!(
            err,
            DirectoryError::InvalidAuthenticationCode(
                "Authentication code for device is not valid.".into()
            )
        );
    }
    assert_eq!(
        fails(&mut t, |t| t
            .enable_mfa_device("alice", &serial, "12345", "123456", NOW))
        .code(),
        "ValidationError"
    );
    assert_eq!(
        fails(&mut t, |t| t.enable_mfa_device(
            "bob",
            &serial,
            &code(step - 1),
            &code(step),
            NOW
        ))
        .code(),
        "NoSuchEntity"
    );
    assert_eq!(
        fails(&mut t, |t| t.enable_mfa_device(
            "alice",
            "arn:aws:iam::111122223333:mfa/none",
            &code(step - 1),
            &code(step),
            NOW
        ))
        .code(),
        "NoSuchEntity"
    );

    // The pair may be one step early or late.
    t.enable_mfa_device("alice", &serial, &code(step), &code(step + 1), NOW)
        .unwrap();
    let listed = t.list_mfa_devices("alice").unwrap();
    assert_eq!(
        (listed[0].serial_number.as_str(), listed[0].enable_date),
        (serial.as_str(), NOW)
    );
    assert_eq!(
        fails(&mut t, |t| t.enable_mfa_device(
            "alice",
            &serial,
            &code(step),
            &code(step + 1),
            NOW
        ))
        .to_string(),
        "MFA Device is already in use."
    );
    assert_eq!(
        fails(&mut t, |t| t.delete_virtual_mfa_device(&serial)).code(),
        "DeleteConflict"
    );

    t.deactivate_mfa_device("alice", &serial).unwrap();
    assert!(t.list_mfa_devices("alice").unwrap().is_empty());
    assert_eq!(t.mfa_devices[&serial].user, None);
    assert_eq!(
        fails(&mut t, |t| t.deactivate_mfa_device("alice", &serial)).code(),
        "NoSuchEntity"
    );
    t.delete_virtual_mfa_device(&serial).unwrap();
    assert_eq!(
        fails(&mut t, |t| t.delete_virtual_mfa_device(&serial)).code(),
        "NoSuchEntity"
    );
}

#[test]
fn mfa_quota_per_user() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    t.quotas.mfa_per_user = 1;
    let step = time_step(NOW);
    let (s1, seed1) = device(&mut t, &mut ids, "one");
    let (s2, seed2) = device(&mut t, &mut ids, "two");
    let c = |seed: &str, s| code_at_step(seed, s).unwrap();
    t.enable_mfa_device("alice", &s1, &c(&seed1, step - 1), &c(&seed1, step), NOW)
        .unwrap();
    assert_eq!(
        fails(&mut t, |t| t.enable_mfa_device(
            "alice",
            &s2,
            &c(&seed2, step - 1),
            &c(&seed2, step),
            NOW
        ))
        .to_string(),
        "Cannot exceed quota for MFADevicesPerUser: 1"
    );
}

#[test]
fn sts_codes_are_never_accepted_twice() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    let (serial, seed) = device(&mut t, &mut ids, "phone");
    let step = time_step(NOW);
    let code = |s: u64| code_at_step(&seed, s).unwrap();
    // Not enabled yet.
    assert_eq!(
        fails(&mut t, |t| t.verify_mfa_code(&serial, &code(step), NOW)).code(),
        "InvalidAuthenticationCode"
    );
    t.enable_mfa_device("alice", &serial, &code(step - 1), &code(step), NOW)
        .unwrap();
    // The enabling codes are used up.
    assert_eq!(
        fails(&mut t, |t| t.verify_mfa_code(&serial, &code(step), NOW)).code(),
        "InvalidAuthenticationCode"
    );
    let later = NOW + 60;
    let now_step = time_step(later);
    t.verify_mfa_code(&serial, &code(now_step), later).unwrap();
    assert_eq!(t.mfa_devices[&serial].last_used_step, Some(now_step));
    assert_eq!(
        fails(&mut t, |t| t.verify_mfa_code(
            &serial,
            &code(now_step),
            later
        ))
        .code(),
        "InvalidAuthenticationCode"
    );
    // One step ahead is accepted once; two steps ahead never.
    assert_eq!(
        fails(&mut t, |t| t.verify_mfa_code(
            &serial,
            &code(now_step + 2),
            later
        ))
        .code(),
        "InvalidAuthenticationCode"
    );
    t.verify_mfa_code(&serial, &code(now_step + 1), later)
        .unwrap();
    assert_eq!(
        fails(&mut t, |t| t.verify_mfa_code(&serial, "abcdef", later)).code(),
        "ValidationError"
    );
    assert_eq!(
        fails(&mut t, |t| t.verify_mfa_code(
            "arn:aws:iam::111122223333:mfa/x",
            "123456",
            later
        ))
        .code(),
        "NoSuchEntity"
    );
}
