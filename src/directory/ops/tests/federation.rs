//! OIDC providers, resource policies and the account alias.

use super::*;
use crate::directory::CreateOidcProviderInput;
use crate::error::AwsCode;

const URL: &str = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC";
const ARN: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC";
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"1","n":"AQAB","e":"AQAB"}]}"#;

fn provider(url: &str) -> CreateOidcProviderInput {
    CreateOidcProviderInput {
        url: url.into(),
        client_ids: vec!["sts.amazonaws.com".into(), "sts.amazonaws.com".into()],
        thumbprints: vec!["9e99a48a9960b14926bb7f3b02e22da2b0ab7280".into()],
        jwks: JWKS.into(),
        tags: vec![],
    }
}

#[test]
fn oidc_providers() {
    let (mut t, _) = tenant();
    let p = t
        .create_open_id_connect_provider(NOW, provider(URL))
        .unwrap();
    assert_eq!(p.arn, ARN);
    assert_eq!(p.client_ids, ["sts.amazonaws.com"]);
    assert_eq!(t.get_open_id_connect_provider(ARN).unwrap().url, URL);
    assert_eq!(t.list_open_id_connect_providers().len(), 1);
    assert_eq!(
        fails(&mut t, |t| t
            .create_open_id_connect_provider(NOW, provider(URL))
            .map(drop))
        .to_string(),
        format!("Provider with url {URL} already exists.")
    );
    let long = format!("https://example.com/{}", "a".repeat(240));
    let bad_urls = [
        "http://example.com",
        "https://example.com:8443/x",
        "https://example.com/?q=1",
        "https://example.com/#f",
        "https://",
        "https:///path",
        &long,
    ];
    for url in bad_urls {
        let err = fails(&mut t, |t| {
            t.create_open_id_connect_provider(NOW, provider(url))
                .map(drop)
        });
        assert!(
            matches!(err.code(), AwsCode::InvalidInput | AwsCode::ValidationError),
            "{url}: {err}"
        );
    }
    let other = "https://example.com";
    let cases = [
        (
            CreateOidcProviderInput {
                thumbprints: vec!["ab".into()],
                ..provider(other)
            },
            "ValidationError",
        ),
        (
            CreateOidcProviderInput {
                thumbprints: vec!["z".repeat(40)],
                ..provider(other)
            },
            "InvalidInput",
        ),
        (
            CreateOidcProviderInput {
                thumbprints: vec!["a".repeat(40); 6],
                ..provider(other)
            },
            "InvalidInput",
        ),
        (
            CreateOidcProviderInput {
                client_ids: vec!["c".repeat(256)],
                ..provider(other)
            },
            "ValidationError",
        ),
        (
            CreateOidcProviderInput {
                client_ids: (0..101).map(|i| i.to_string()).collect(),
                ..provider(other)
            },
            "LimitExceeded",
        ),
        (
            CreateOidcProviderInput {
                jwks: "[]".into(),
                ..provider(other)
            },
            "InvalidInput",
        ),
        (
            CreateOidcProviderInput {
                jwks: r#"{"keys":[{"kid":"1"}]}"#.into(),
                ..provider(other)
            },
            "InvalidInput",
        ),
        (
            CreateOidcProviderInput {
                jwks: "not json".into(),
                ..provider(other)
            },
            "InvalidInput",
        ),
    ];
    for (input, expected) in cases {
        let err = fails(&mut t, |t| {
            t.create_open_id_connect_provider(NOW, input).map(drop)
        });
        assert_eq!(err.code(), expected, "{err}");
    }
    t.quotas.oidc_providers = 1;
    assert_eq!(
        fails(&mut t, |t| t
            .create_open_id_connect_provider(NOW, provider(other))
            .map(drop))
        .code(),
        "LimitExceeded"
    );

    t.add_client_id_to_open_id_connect_provider(ARN, "my-app")
        .unwrap();
    t.add_client_id_to_open_id_connect_provider(ARN, "my-app")
        .unwrap();
    assert_eq!(
        t.get_open_id_connect_provider(ARN).unwrap().client_ids,
        ["sts.amazonaws.com", "my-app"]
    );
    t.remove_client_id_from_open_id_connect_provider(ARN, "sts.amazonaws.com")
        .unwrap();
    t.remove_client_id_from_open_id_connect_provider(ARN, "absent")
        .unwrap();
    assert_eq!(
        t.get_open_id_connect_provider(ARN).unwrap().client_ids,
        ["my-app"]
    );
    let jwks2 = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    t.update_open_id_connect_provider_jwks(ARN, jwks2).unwrap();
    assert_eq!(t.get_open_id_connect_provider(ARN).unwrap().jwks, jwks2);
    assert_eq!(
        fails(&mut t, |t| t
            .update_open_id_connect_provider_jwks(ARN, "{}"))
        .code(),
        "InvalidInput"
    );
    t.update_open_id_connect_provider_thumbprint(ARN, &[])
        .unwrap();
    assert_eq!(
        fails(&mut t, |t| t.update_open_id_connect_provider_thumbprint(
            ARN,
            &["x".into()]
        ))
        .code(),
        "ValidationError"
    );

    let missing = "arn:aws:iam::111122223333:oidc-provider/none";
    assert_eq!(
        fails(&mut t, |t| t.delete_open_id_connect_provider(missing)).to_string(),
        format!("OpenIDConnect Provider not found for arn {missing}")
    );
    assert_eq!(
        fails(&mut t, |t| t
            .add_client_id_to_open_id_connect_provider(missing, "x"))
        .code(),
        "NoSuchEntity"
    );
    t.delete_open_id_connect_provider(ARN).unwrap();
    assert!(t.oidc_providers.is_empty());
}

#[test]
fn resource_policies() {
    let (mut t, _) = tenant();
    let bucket = "arn:aws:s3:::my-bucket";
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::my-bucket/*"}]}"#;
    t.put_resource_policy(bucket, doc, NOW).unwrap();
    assert_eq!(t.get_resource_policy(bucket).unwrap().document, doc);
    assert_eq!(t.list_resource_policies().len(), 1);
    assert_eq!(
        fails(&mut t, |t| t.put_resource_policy(bucket, IDENTITY_DOC, NOW)).code(),
        "MalformedPolicyDocument"
    );
    assert_eq!(
        fails(&mut t, |t| t.put_resource_policy("my-bucket", doc, NOW)).code(),
        "InvalidInput"
    );
    t.delete_resource_policy(bucket).unwrap();
    assert_eq!(
        fails(&mut t, |t| t.delete_resource_policy(bucket)).code(),
        "NoSuchEntity"
    );
    assert_eq!(
        t.get_resource_policy(bucket).unwrap_err().code(),
        "NoSuchEntity"
    );
}

#[test]
fn account_alias() {
    let (mut t, _) = tenant();
    t.set_account_alias("acme").unwrap();
    assert_eq!(t.alias.as_deref(), Some("acme"));
    assert_eq!(
        fails(&mut t, |t| t.set_account_alias("Acme")).code(),
        "ValidationError"
    );
    assert_eq!(
        fails(&mut t, |t| t.set_account_alias("123456789012")).code(),
        "InvalidInput"
    );
    assert_eq!(
        fails(&mut t, |t| t.delete_account_alias("other")).code(),
        "NoSuchEntity"
    );
    t.delete_account_alias("acme").unwrap();
    assert_eq!(t.alias, None);
}

/// Issue #11 item 5: a provider ARN is read with the policy language's ARN splitter, so the
/// `aws-cn` and `aws-us-gov` partitions name the account's providers too; another account,
/// another service or another resource type does not.
#[test]
fn provider_arns_are_read_in_every_partition() {
    let (mut t, _) = tenant();
    t.create_open_id_connect_provider(NOW, provider(URL))
        .unwrap();
    for partition in ["aws", "aws-cn", "aws-us-gov"] {
        let arn = ARN.replacen("arn:aws:", &format!("arn:{partition}:"), 1);
        assert_eq!(
            t.get_open_id_connect_provider(&arn).unwrap().url,
            URL,
            "{arn}"
        );
    }
    for other in [
        ARN.replace("111122223333", "444455556666"),
        ARN.replace(":iam:", ":sts:"),
        ARN.replace("oidc-provider/", "saml-provider/"),
        "oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC".to_owned(),
    ] {
        assert!(t.get_open_id_connect_provider(&other).is_err(), "{other}");
    }
}
