//! The account password policy: parameters, defaults and validation, and its enforcement by
//! `CreateLoginProfile`, `UpdateLoginProfile` and `ChangePassword`.

use super::*;
use crate::directory::{CreateUserInput, IdGenerator, PasswordHasher};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;

/// Debug builds make the production count slow.
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);

fn tenant_with(user: &str) -> (Tenant, IdGenerator) {
    let mut t = Tenant::new(ACCOUNT, NOW);
    let mut ids = IdGenerator::seeded(7);
    t.create_user(
        &mut ids,
        NOW,
        CreateUserInput {
            name: user.into(),
            ..Default::default()
        },
    )
    .unwrap();
    (t, ids)
}

fn fails<T>(t: &mut Tenant, op: impl FnOnce(&mut Tenant) -> Result<T, DirectoryError>) -> String {
    let before = t.clone();
    let err = op(t).err().expect("the operation should fail");
    assert_eq!(*t, before, "a failed operation changed the tenant ({err})");
    format!("{} {err}", err.code())
}

const VIOLATION: &str =
    "PasswordPolicyViolation Password does not conform to the account password policy.";

#[test]
fn unset_policy_is_no_such_entity_with_aws_text() {
    let (mut t, _) = tenant_with("alice");
    let expected =
        "NoSuchEntity The Password Policy with domain name 111122223333 cannot be found.";
    assert_eq!(
        fails(&mut t, |t| t.get_account_password_policy().map(drop)),
        expected
    );
    assert_eq!(
        fails(&mut t, Tenant::delete_account_password_policy),
        expected
    );
}

#[test]
fn unnamed_parameters_take_aws_defaults() {
    let (mut t, _) = tenant_with("alice");
    let policy = *t
        .update_account_password_policy(PasswordPolicyInput {
            require_numbers: Some(true),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        policy,
        PasswordPolicy {
            minimum_password_length: 6,
            require_symbols: false,
            require_numbers: true,
            require_uppercase_characters: false,
            require_lowercase_characters: false,
            allow_users_to_change_password: false,
            max_password_age: None,
            password_reuse_prevention: None,
            hard_expiry: None,
        }
    );
    assert!(!policy.expire_passwords());
    // A second update replaces the whole policy: what it leaves out reverts to the default.
    t.update_account_password_policy(PasswordPolicyInput {
        max_password_age: Some(90),
        ..Default::default()
    })
    .unwrap();
    let policy = t.get_account_password_policy().unwrap();
    assert!(!policy.require_numbers);
    assert!(policy.expire_passwords());
    t.delete_account_password_policy().unwrap();
    assert!(t.get_account_password_policy().is_err());
}

#[test]
fn out_of_range_parameters_are_validation_errors_naming_them() {
    let (mut t, _) = tenant_with("alice");
    let cases = [
        (
            PasswordPolicyInput {
                minimum_password_length: Some(5),
                ..Default::default()
            },
            "Value '5' at 'minimumPasswordLength' failed to satisfy constraint: Member must have value greater than or equal to 6",
        ),
        (
            PasswordPolicyInput {
                minimum_password_length: Some(129),
                ..Default::default()
            },
            "Value '129' at 'minimumPasswordLength' failed to satisfy constraint: Member must have value less than or equal to 128",
        ),
        (
            PasswordPolicyInput {
                max_password_age: Some(0),
                ..Default::default()
            },
            "at 'maxPasswordAge' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        (
            PasswordPolicyInput {
                max_password_age: Some(1_096),
                ..Default::default()
            },
            "at 'maxPasswordAge' failed to satisfy constraint: Member must have value less than or equal to 1095",
        ),
        (
            PasswordPolicyInput {
                password_reuse_prevention: Some(0),
                ..Default::default()
            },
            "at 'passwordReusePrevention' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        (
            PasswordPolicyInput {
                password_reuse_prevention: Some(25),
                ..Default::default()
            },
            "at 'passwordReusePrevention' failed to satisfy constraint: Member must have value less than or equal to 24",
        ),
    ];
    for (input, expected) in cases {
        let err = fails(&mut t, |t| {
            t.update_account_password_policy(input).map(drop)
        });
        assert!(
            err.starts_with("ValidationError 1 validation error detected: "),
            "{err}"
        );
        assert!(err.contains(expected), "{err}");
    }
    // The bounds themselves are accepted.
    for input in [
        PasswordPolicyInput {
            minimum_password_length: Some(128),
            max_password_age: Some(1_095),
            password_reuse_prevention: Some(24),
            ..Default::default()
        },
        PasswordPolicyInput {
            minimum_password_length: Some(6),
            max_password_age: Some(1),
            password_reuse_prevention: Some(1),
            ..Default::default()
        },
    ] {
        t.update_account_password_policy(input).unwrap();
    }
}

#[test]
fn a_set_policy_replaces_the_default_rules() {
    let (mut t, mut ids) = tenant_with("charles");
    // AWS's default rules refuse a short, single-class password...
    assert_eq!(
        fails(&mut t, |t| t
            .create_login_profile(&mut ids, &HASHER, NOW, "charles", "abcdef", false)
            .map(drop)),
        VIOLATION
    );
    // ...which a lenient policy admits.
    t.update_account_password_policy(PasswordPolicyInput::default())
        .unwrap();
    t.create_login_profile(&mut ids, &HASHER, NOW, "charles", "abcdef", false)
        .unwrap();
    // Never the user's own name, whatever the policy.
    assert_eq!(
        fails(&mut t, |t| t.update_login_profile(
            &mut ids,
            &HASHER,
            NOW,
            "charles",
            Some("CHARLES"),
            None
        )),
        "PasswordPolicyViolation Password does not conform to the account password policy."
    );
    t.update_login_profile(&mut ids, &HASHER, NOW, "charles", Some("charles1"), None)
        .unwrap();
}

#[test]
fn length_and_each_character_class_are_enforced() {
    let (mut t, mut ids) = tenant_with("alice");
    t.update_account_password_policy(PasswordPolicyInput {
        minimum_password_length: Some(10),
        require_symbols: Some(true),
        require_numbers: Some(true),
        require_uppercase_characters: Some(true),
        require_lowercase_characters: Some(true),
        ..Default::default()
    })
    .unwrap();
    for (password, why) in [
        ("Ab1!efgh", "too short"),
        ("abcdefgh1!", "no upper case"),
        ("ABCDEFGH1!", "no lower case"),
        ("Abcdefghi!", "no digit"),
        ("Abcdefghi1", "no symbol"),
        ("Abcdefgh1~", "~ is not one of AWS's symbols"),
    ] {
        assert_eq!(
            fails(&mut t, |t| t
                .create_login_profile(&mut ids, &HASHER, NOW, "alice", password, false)
                .map(drop)),
            VIOLATION,
            "{why}"
        );
    }
    t.create_login_profile(&mut ids, &HASHER, NOW, "alice", "Abcdefgh1!", false)
        .unwrap();
    // The API's own constraints come first, as their own error, without the value.
    let err = fails(&mut t, |t| {
        t.update_login_profile(
            &mut ids,
            &HASHER,
            NOW,
            "alice",
            Some(&"Ab1!".repeat(33)),
            None,
        )
    });
    assert!(err.starts_with("ValidationError"), "{err}");
    assert!(!err.contains("Ab1!"), "{err}");
}

#[test]
fn reuse_prevention_remembers_hashes_only_as_far_as_needed() {
    let (mut t, mut ids) = tenant_with("alice");
    t.update_account_password_policy(PasswordPolicyInput {
        password_reuse_prevention: Some(3),
        ..Default::default()
    })
    .unwrap();
    t.create_login_profile(&mut ids, &HASHER, NOW, "alice", "first-pw", false)
        .unwrap();
    // The current password counts as one of the three.
    assert_eq!(
        fails(&mut t, |t| t.change_password(
            &mut ids, &HASHER, NOW, "alice", "first-pw", "first-pw"
        )),
        VIOLATION
    );
    t.change_password(&mut ids, &HASHER, NOW, "alice", "first-pw", "second-pw")
        .unwrap();
    t.update_login_profile(&mut ids, &HASHER, NOW, "alice", Some("third-pw"), None)
        .unwrap();
    for reused in ["first-pw", "second-pw", "third-pw"] {
        assert_eq!(
            fails(&mut t, |t| t.change_password(
                &mut ids, &HASHER, NOW, "alice", "third-pw", reused
            )),
            VIOLATION,
            "{reused}"
        );
    }
    let profile = t.get_login_profile("alice").unwrap();
    assert_eq!(profile.previous_password_hashes.len(), 2);
    for hash in &profile.previous_password_hashes {
        assert!(
            hash.expose().starts_with("pbkdf2-sha256$"),
            "never plaintext"
        );
    }
    t.change_password(&mut ids, &HASHER, NOW, "alice", "third-pw", "fourth-pw")
        .unwrap();
    // Three passwords back is forgotten; only two earlier hashes are ever kept.
    let profile = t.get_login_profile("alice").unwrap();
    assert_eq!(profile.previous_password_hashes.len(), 2);
    t.change_password(&mut ids, &HASHER, NOW, "alice", "fourth-pw", "first-pw")
        .unwrap();

    // Lowering the number drops the surplus at once; deleting the policy drops it all.
    t.update_account_password_policy(PasswordPolicyInput {
        password_reuse_prevention: Some(2),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        t.get_login_profile("alice")
            .unwrap()
            .previous_password_hashes
            .len(),
        1
    );
    t.delete_account_password_policy().unwrap();
    assert!(t
        .get_login_profile("alice")
        .unwrap()
        .previous_password_hashes
        .is_empty());
}

#[test]
fn maximum_age_expires_passwords_and_hard_expiry_stops_self_service() {
    let (mut t, mut ids) = tenant_with("alice");
    t.create_login_profile(&mut ids, &HASHER, NOW, "alice", "Correct-Horse-1", false)
        .unwrap();
    let day = 86_400;
    t.update_account_password_policy(PasswordPolicyInput {
        max_password_age: Some(30),
        ..Default::default()
    })
    .unwrap();
    let profile = t.get_login_profile("alice").unwrap().clone();
    assert_eq!(t.password_expires_at(&profile), Some(NOW + 30 * day));
    assert!(!t.password_change_required(&profile, NOW + 30 * day - 1));
    assert!(t.password_change_required(&profile, NOW + 30 * day));

    // Without hard expiry the user may still change an expired password, which restarts
    // the clock.
    let later = NOW + 31 * day;
    t.change_password(
        &mut ids,
        &HASHER,
        later,
        "alice",
        "Correct-Horse-1",
        "new-pw-1",
    )
    .unwrap();
    let profile = t.get_login_profile("alice").unwrap().clone();
    assert_eq!(t.password_expires_at(&profile), Some(later + 30 * day));
    assert!(!t.password_change_required(&profile, later));

    // With hard expiry only an administrator can.
    t.update_account_password_policy(PasswordPolicyInput {
        max_password_age: Some(30),
        hard_expiry: Some(true),
        ..Default::default()
    })
    .unwrap();
    let expired = later + 30 * day;
    let err = fails(&mut t, |t| {
        t.change_password(&mut ids, &HASHER, expired, "alice", "new-pw-1", "new-pw-2")
    });
    assert!(
        err.starts_with("AccessDenied Your password has expired"),
        "{err}"
    );
    t.change_password(
        &mut ids,
        &HASHER,
        expired - 1,
        "alice",
        "new-pw-1",
        "new-pw-2",
    )
    .unwrap();
    t.update_login_profile(
        &mut ids,
        &HASHER,
        expired + 30 * day,
        "alice",
        Some("admin-set"),
        None,
    )
    .unwrap();
    let profile = t.get_login_profile("alice").unwrap().clone();
    assert!(!t.password_expired(&profile, expired + 30 * day));

    // Deleting the policy: passwords never expire again.
    t.delete_account_password_policy().unwrap();
    assert_eq!(t.password_expires_at(&profile), None);
}

#[test]
fn profiles_stored_before_the_change_time_was_recorded_age_from_creation() {
    let (mut t, mut ids) = tenant_with("alice");
    t.create_login_profile(&mut ids, &HASHER, NOW, "alice", "Correct-Horse-1", false)
        .unwrap();
    let mut profile = t.get_login_profile("alice").unwrap().clone();
    profile.password_changed_at = None;
    let mut old = serde_json::to_value(&profile).unwrap();
    if let Some(map) = old.as_object_mut() {
        map.remove("password_changed_at");
        map.remove("previous_password_hashes");
    }
    let read: LoginProfile = serde_json::from_value(old).unwrap();
    assert_eq!(read, profile);
    t.update_account_password_policy(PasswordPolicyInput {
        max_password_age: Some(1),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.password_expires_at(&read), Some(NOW + 86_400));
}
