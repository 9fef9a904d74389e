//! Tests of the parameter rules.

use super::*;

fn code(result: Result<(), DirectoryError>) -> &'static str {
    result.err().map_or("ok", |e| e.code().as_str())
}

#[test]
fn names_follow_the_aws_pattern() {
    for ok in ["alice", "a", "A.b-c_d+e=f,g@h", &"x".repeat(64)] {
        assert_eq!(code(name(ok, "userName", 64)), "ok", "{ok}");
    }
    for bad in ["", "with space", "slash/", "star*", "é", &"x".repeat(65)] {
        assert_eq!(code(name(bad, "userName", 64)), "ValidationError", "{bad}");
    }
    assert_eq!(code(name(&"x".repeat(128), "groupName", 128)), "ok");
    let err = name("a b", "userName", 64).unwrap_err();
    assert_eq!(
        err.to_string(),
        r"1 validation error detected: Value 'a b' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+"
    );
    let err = name("", "roleName", 64).unwrap_err();
    assert!(err
        .to_string()
        .ends_with("Member must have length greater than or equal to 1"));
}

#[test]
fn paths() {
    for ok in ["/", "/a/", "/division/sub-division/", "/!~*/"] {
        assert_eq!(code(path(ok, "path")), "ok", "{ok}");
    }
    for bad in ["", "a/", "/a", "//x", "/a b/", "/é/"] {
        // `//x` does not end with a slash; `//` alone would be `/` + `/`, which AWS refuses
        // only by its length-3 pattern.
        assert_eq!(code(path(bad, "path")), "ValidationError", "{bad}");
    }
    assert_eq!(code(path("//", "path")), "ValidationError");
    assert_eq!(
        code(path(&format!("/{}/", "a".repeat(511)), "path")),
        "ValidationError"
    );
}

#[test]
fn policy_paths_are_stricter() {
    for ok in ["/", "/a/", "/a/b.c/", "/x@y=z_-+,/"] {
        assert_eq!(code(policy_path(ok, "path")), "ok", "{ok}");
    }
    for bad in ["", "a/", "/a", "//", "/a//b/", "/a*/", "/a b/"] {
        assert_eq!(code(policy_path(bad, "path")), "ValidationError", "{bad}");
    }
}

#[test]
fn descriptions() {
    assert_eq!(code(description("", "description")), "ok");
    assert_eq!(
        code(description("Tab\tLF\nCR\r café ¡ÿ", "description")),
        "ok"
    );
    assert_eq!(code(description(&"d".repeat(1000), "description")), "ok");
    assert_eq!(
        code(description(&"d".repeat(1001), "description")),
        "ValidationError"
    );
    assert_eq!(
        code(description("control \u{7}", "description")),
        "ValidationError"
    );
    assert_eq!(
        code(description("euro €", "description")),
        "ValidationError"
    );
    assert_eq!(
        code(description("nbsp-ish \u{a0}", "description")),
        "ValidationError"
    );
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

#[test]
fn tag_rules() {
    assert_eq!(
        code(tags(
            &[tag("Department", ""), tag("k:/=+-@_.", "v 1")],
            true
        )),
        "ok"
    );
    assert_eq!(code(tags(&[tag("Größe", "日本")], true)), "ok");
    assert_eq!(code(tags(&[tag("", "v")], true)), "ValidationError");
    assert_eq!(
        code(tags(&[tag(&"k".repeat(129), "v")], true)),
        "ValidationError"
    );
    assert_eq!(
        code(tags(&[tag("k", &"v".repeat(257))], true)),
        "ValidationError"
    );
    assert_eq!(code(tags(&[tag("k", &"v".repeat(256))], true)), "ok");
    assert_eq!(code(tags(&[tag("bad*key", "v")], true)), "ValidationError");
    assert_eq!(code(tags(&[tag("k", "tab\t")], true)), "ValidationError");
    assert_eq!(code(tags(&[tag("aws:thing", "v")], true)), "InvalidInput");
    assert_eq!(code(tags(&[tag("AWS:thing", "v")], true)), "InvalidInput");
    assert_eq!(
        code(tags(&[tag("a", "1"), tag("A", "2")], true)),
        "InvalidInput"
    );
    assert_eq!(code(tags(&[tag("a", "1"), tag("A", "2")], false)), "ok");
    let many: Vec<Tag> = (0..51).map(|i| tag(&format!("k{i}"), "")).collect();
    assert_eq!(code(tags(&many, true)), "ValidationError");
    assert_eq!(code(tags(&many[..50], true)), "ok");
    let err = tags(&[tag("ok", ""), tag("bad*", "")], true).unwrap_err();
    assert!(err.to_string().contains("at 'tags.2.member.key'"), "{err}");
    assert_eq!(
        code(tag_keys(&["a".into(), String::new()])),
        "ValidationError"
    );
}

#[test]
fn account_aliases() {
    for ok in [
        "abc",
        "my-company",
        "a1-b2-c3",
        "123456789012a",
        "12345678901",
    ] {
        assert_eq!(code(account_alias(ok)), "ok", "{ok}");
    }
    for bad in ["ab", "-abc", "abc-", "a--b", "ABC", "a_b", &"a".repeat(64)] {
        assert_eq!(code(account_alias(bad)), "ValidationError", "{bad}");
    }
    assert_eq!(code(account_alias("123456789012")), "InvalidInput");
}

#[test]
fn passwords() {
    assert_eq!(code(password_chars("anything goes ÿ")), "ok");
    assert_eq!(code(password_chars("")), "ValidationError");
    assert_eq!(code(password_chars(&"p".repeat(129))), "ValidationError");
    assert_eq!(code(password_chars("snowman ☃")), "ValidationError");
    // The password never appears in the message.
    let err = password_chars("sécret☃").unwrap_err();
    assert!(!err.to_string().contains("sécret"), "{err}");

    let policy = |p: &str| code(default_password_policy(p, "alice", Some("acme-corp")));
    assert_eq!(policy("Passw0rd"), "ok");
    assert_eq!(policy("passw0rd!"), "ok");
    assert_eq!(policy("PASSWORD1!"), "ok");
    assert_eq!(policy("Pa0!"), "PasswordPolicyViolation");
    assert_eq!(policy("password"), "PasswordPolicyViolation");
    assert_eq!(policy("Password"), "PasswordPolicyViolation");
    assert_eq!(policy("password1"), "PasswordPolicyViolation");
    assert_eq!(
        code(default_password_policy("Alice-2024x", "alice-2024X", None)),
        "PasswordPolicyViolation"
    );
    assert_eq!(
        code(default_password_policy(
            "Acme-Corp9",
            "bob",
            Some("acme-corp9")
        )),
        "PasswordPolicyViolation"
    );
    assert_eq!(
        default_password_policy("short", "bob", None)
            .unwrap_err()
            .to_string(),
        "Password does not conform to the account password policy."
    );
}

#[test]
fn codes_versions_durations() {
    assert_eq!(code(mfa_code("012345", "authenticationCode1")), "ok");
    for bad in ["12345", "1234567", "12345a", ""] {
        assert_eq!(
            code(mfa_code(bad, "authenticationCode1")),
            "ValidationError",
            "{bad}"
        );
        if let Err(e) = mfa_code(bad, "authenticationCode1") {
            assert!(bad.is_empty() || !e.to_string().contains(bad), "{e}");
        }
    }
    for ok in ["v1", "v10", "v2.x-1", "v3."] {
        assert_eq!(code(version_id(ok)), "ok", "{ok}");
    }
    for bad in ["", "v", "v0", "1", "V1", "v01", "v1.a_b"] {
        assert_eq!(code(version_id(bad)), "ValidationError", "{bad}");
    }
    assert_eq!(code(max_session_duration(3_600)), "ok");
    assert_eq!(code(max_session_duration(43_200)), "ok");
    assert_eq!(code(max_session_duration(3_599)), "ValidationError");
    assert_eq!(code(max_session_duration(43_201)), "ValidationError");
    assert_eq!(
        max_session_duration(100).unwrap_err().to_string(),
        "1 validation error detected: Value '100' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater than or equal to 3600"
    );
    assert_eq!(code(path_prefix("/a")), "ok");
    assert_eq!(code(path_prefix("a")), "ValidationError");
}
