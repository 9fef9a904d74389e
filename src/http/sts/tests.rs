use super::*;
use axum::http::Method;

fn form(body: &str) -> QueryRequest {
    QueryRequest::try_from_parts(&Method::POST, "", None, body.as_bytes()).unwrap()
}

#[test]
fn assume_role_decodes_every_member_list() {
    let request = form(
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fr\
         &RoleSessionName=s&DurationSeconds=900&Policy=%7B%7D\
         &PolicyArns.member.2.arn=arn%3Ab&PolicyArns.member.1.arn=arn%3Aa\
         &Tags.member.1.Key=team&Tags.member.1.Value=data&Tags.member.2.Value=2&Tags.member.2.Key=k\
         &TransitiveTagKeys.member.1=team&ExternalId=x&SourceIdentity=me",
    );
    let input = AssumeRoleInput::try_from(&request).unwrap();
    assert_eq!(input.role_arn, "arn:aws:iam::111122223333:role/r");
    assert_eq!(input.role_session_name, "s");
    assert_eq!(input.duration_seconds, Some(900));
    assert_eq!(input.policy.as_deref(), Some("{}"));
    assert_eq!(input.policy_arns, ["arn:a", "arn:b"]);
    assert_eq!(
        input.tags,
        [
            Tag {
                key: "team".into(),
                value: "data".into()
            },
            Tag {
                key: "k".into(),
                value: "2".into()
            }
        ]
    );
    assert_eq!(input.transitive_tag_keys, ["team"]);
    assert_eq!(input.external_id.as_deref(), Some("x"));
    assert_eq!(input.source_identity.as_deref(), Some("me"));
    assert!(input.caller.is_none());
}

#[test]
fn missing_and_malformed_parameters_are_named() {
    let cases = [
        ("RoleSessionName=s", AwsCode::MissingParameter, "RoleArn"),
        ("RoleArn=a", AwsCode::MissingParameter, "RoleSessionName"),
        (
            "RoleArn=a&RoleSessionName=s&DurationSeconds=abc",
            AwsCode::ValidationError,
            "DurationSeconds",
        ),
        (
            "RoleArn=a&RoleSessionName=s&DurationSeconds=99999999999",
            AwsCode::ValidationError,
            "DurationSeconds",
        ),
        (
            "RoleArn=a&RoleSessionName=s&Tags.member.1.Key=k",
            AwsCode::MissingParameter,
            "Tags.member.N.Value",
        ),
        (
            "RoleArn=a&RoleSessionName=s&Tags.member.1.Kee=k",
            AwsCode::InvalidParameterValue,
            "Tags",
        ),
        (
            "RoleArn=a&RoleSessionName=s&PolicyArns.member.1.Arn=k",
            AwsCode::InvalidParameterValue,
            "PolicyArns",
        ),
        (
            "RoleArn=a&RoleSessionName=s&TransitiveTagKeys.member.2=k",
            AwsCode::InvalidParameterValue,
            "TransitiveTagKeys",
        ),
    ];
    for (body, code, named) in cases {
        let err = AssumeRoleInput::try_from(&form(body)).unwrap_err();
        assert_eq!(err.code(), code, "{body}");
        assert!(err.to_string().contains(named), "{body}: {err}");
    }
}

#[test]
fn web_identity_session_token_and_key_info_decode() {
    let input = AssumeRoleWithWebIdentityInput::try_from(&form(
        "RoleArn=r&RoleSessionName=s&WebIdentityToken=t.t.t&PolicyArns.member.1.arn=p",
    ))
    .unwrap();
    assert_eq!(input.web_identity_token, "t.t.t");
    assert_eq!(input.policy_arns, ["p"]);
    let err =
        AssumeRoleWithWebIdentityInput::try_from(&form("RoleArn=r&RoleSessionName=s")).unwrap_err();
    assert!(err.to_string().contains("WebIdentityToken"), "{err}");
    let err = AssumeRoleWithWebIdentityInput::try_from(&form(
        "RoleArn=r&RoleSessionName=s&WebIdentityToken=t&ProviderId=www.amazon.com",
    ))
    .unwrap_err();
    assert_eq!(err.code(), AwsCode::ValidationError);

    let input = GetSessionTokenInput::try_from(&form(
        "DurationSeconds=3600&SerialNumber=arn%3Amfa&TokenCode=123456",
    ))
    .unwrap();
    assert_eq!(input.duration_seconds, Some(3600));
    assert_eq!(input.serial_number.as_deref(), Some("arn:mfa"));
    assert_eq!(input.token_code.as_deref(), Some("123456"));

    let err = GetAccessKeyInfoInput::try_from(&form("")).unwrap_err();
    assert_eq!(err.code(), AwsCode::MissingParameter);
    assert!(err.to_string().contains("AccessKeyId"));
}

#[test]
fn actions_map_to_operations_by_their_aws_names() {
    for op in [
        StsOperation::AssumeRole,
        StsOperation::AssumeRoleWithWebIdentity,
        StsOperation::GetSessionToken,
        StsOperation::GetCallerIdentity,
        StsOperation::GetAccessKeyInfo,
    ] {
        assert_eq!(operation(op.name()), Some(op));
    }
    assert_eq!(operation("GetFederationToken"), None);
    assert_eq!(operation("assumerole"), None);
}
