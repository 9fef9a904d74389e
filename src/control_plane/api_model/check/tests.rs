use serde_json::{json, Value};

use super::*;

fn check(operation: &str, parameters: &Value) -> Result<(), InputError> {
    let model = ApiModel::embedded().unwrap();
    model.check_input(
        operation,
        parameters.as_object().unwrap(),
        &["AuthenticationCode1"],
    )
}

fn violations(operation: &str, parameters: &Value) -> Vec<String> {
    match check(operation, parameters) {
        Err(InputError::Constraints(v)) => v,
        other => panic!("expected constraint violations, got {other:?}"),
    }
}

#[test]
fn a_misspelt_member_is_refused_with_the_member_meant() {
    let err = check("CreateUser", &json!({"UserName": "erin", "PermissionsBoundry": "arn:aws:iam::aws:policy/ViewOnlyAccess"}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        InputError::Unknown {
            name: "PermissionsBoundry".into(),
            operation: "CreateUser".into(),
            suggestion: Some("PermissionsBoundary".into()),
        }
    );
    assert_eq!(
        err.to_string(),
        "CreateUser does not take the parameter PermissionsBoundry; did you mean PermissionsBoundary?"
    );
    let far = check("CreateUser", &json!({"UserName": "erin", "Colour": "red"})).unwrap_err();
    assert_eq!(
        far.to_string(),
        "CreateUser does not take the parameter Colour."
    );
}

#[test]
fn valid_parameters_pass_and_nulls_count_as_absent() {
    check(
        "CreateUser",
        &json!({"UserName": "erin", "Path": "/ops/", "Tags": [{"Key": "team", "Value": ""}],
               "PermissionsBoundary": null}),
    )
    .unwrap();
    check("ListUsers", &json!({"MaxItems": "10"})).unwrap();
    check("CreateAccountAlias", &json!({"AccountAlias": "my-team-1"})).unwrap();
    // An operation the model does not know is the dispatcher's to refuse.
    check("NoSuchOperation", &json!({"X": 1})).unwrap();
}

#[test]
fn a_missing_required_member_is_missing_parameter() {
    assert_eq!(
        check("CreateUser", &json!({"Path": "/"})).unwrap_err(),
        InputError::Missing("UserName".into())
    );
    assert_eq!(
        check("CreateUser", &json!({"UserName": null})).unwrap_err(),
        InputError::Missing("UserName".into())
    );
}

#[test]
fn every_violation_is_listed_in_aws_words() {
    let long = "u".repeat(65);
    let got = violations("CreateUser", &json!({"UserName": long, "Path": "ops"}));
    assert_eq!(
        got,
        vec![
            "Value 'ops' at 'path' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)".to_owned(),
            format!("Value '{long}' at 'userName' failed to satisfy constraint: Member must have length less than or equal to 64"),
        ]
    );
    let err = check("CreateUser", &json!({"UserName": "a b", "Path": "ops"})).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("2 validation errors detected: Value 'ops' at 'path'"),
        "{err}"
    );
    let one = check("CreateUser", &json!({"UserName": "a b"})).unwrap_err();
    assert_eq!(
        one.to_string(),
        "1 validation error detected: Value 'a b' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
    );
}

#[test]
fn ranges_enumerations_and_list_sizes() {
    assert_eq!(
        violations("ListUsers", &json!({"MaxItems": 0})),
        vec!["Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"]
    );
    assert_eq!(
        violations("ListUsers", &json!({"MaxItems": "1001"})),
        vec!["Value '1001' at 'maxItems' failed to satisfy constraint: Member must have value less than or equal to 1000"]
    );
    assert_eq!(
        violations("ListPolicies", &json!({"Scope": "Everything"})),
        vec!["Value 'Everything' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"]
    );
    let tags: Vec<Value> = (0..51)
        .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
        .collect();
    assert_eq!(
        violations("TagUser", &json!({"UserName": "erin", "Tags": tags})),
        vec!["Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"]
    );
}

#[test]
fn nested_members_are_named_by_their_location() {
    assert_eq!(
        violations("TagUser", &json!({"UserName": "erin", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b"}]})
        ),
        vec!["Value null at 'tags.2.member.value' failed to satisfy constraint: Member must not be null"]
    );
    let err = check(
        "TagUser",
        &json!({"UserName": "erin", "Tags": [{"Key": "a", "Valeu": "1"}]}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        InputError::Unknown {
            name: "tags.1.member.valeu".into(),
            operation: "TagUser".into(),
            suggestion: Some("tags.1.member.value".into()),
        }
    );
}

#[test]
fn values_of_the_wrong_type_name_their_member() {
    assert_eq!(
        check("CreateUser", &json!({"UserName": ["erin"]})).unwrap_err(),
        InputError::WrongType {
            name: "UserName".into(),
            expected: "a string"
        }
    );
    assert_eq!(
        check("ListUsers", &json!({"MaxItems": "ten"})).unwrap_err(),
        InputError::WrongType {
            name: "MaxItems".into(),
            expected: "an integer"
        }
    );
    assert_eq!(
        check(
            "TagUser",
            &json!({"UserName": "erin", "Tags": {"Key": "a"}})
        )
        .unwrap_err(),
        InputError::WrongType {
            name: "Tags".into(),
            expected: "a list"
        }
    );
}

#[test]
fn sensitive_values_are_never_echoed() {
    let secret = "s3cr3t-".repeat(30);
    let err = check(
        "ChangePassword",
        &json!({"OldPassword": "old-password", "NewPassword": secret}),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("Value at 'newPassword' failed to satisfy constraint: Member must have length less than or equal to 128"),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"), "{message}");
    // A member the caller names as a secret, although the model does not mark it.
    let err = check(
        "EnableMFADevice",
        &json!({"UserName": "u", "SerialNumber": "arn:aws:iam::111122223333:mfa/u",
               "AuthenticationCode1": "9876543", "AuthenticationCode2": "123456"}),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("9876543"), "{err}");
    assert!(
        err.to_string().contains("Value at 'authenticationCode1'"),
        "{err}"
    );
}

#[test]
fn java_word_classes_stay_ascii_and_the_look_ahead_is_kept() {
    assert!(matches!(
        check("CreateUser", &json!({"UserName": "ren\u{e9}"})),
        Err(InputError::Constraints(_))
    ));
    assert!(matches!(
        check("CreateAccountAlias", &json!({"AccountAlias": "my--team"})),
        Err(InputError::Constraints(_))
    ));
    assert!(matches!(
        check("CreateAccountAlias", &json!({"AccountAlias": "-team"})),
        Err(InputError::Constraints(_))
    ));
    assert_eq!(ascii_classes(r"[\w+=]+\d{12}"), "[0-9A-Za-z_+=]+[0-9]{12}");
    assert_eq!(ascii_classes(r"\\w"), r"\\w");
}
