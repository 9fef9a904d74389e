use super::fixtures::{
    certificate, metadata, metadata_with, signing_key, valid_certificate, EC_KEY_PEM, RSA_KEY_PEM,
};
use super::*;
use crate::directory::Tag;

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const ARN: &str = "arn:aws:iam::111122223333:saml-provider/Okta";

fn tenant() -> (Tenant, IdGenerator) {
    (Tenant::new(ACCOUNT, 0), IdGenerator::seeded(7))
}

fn input(name: &str) -> CreateSamlProviderInput {
    CreateSamlProviderInput {
        name: name.into(),
        metadata_document: metadata(),
        ..Default::default()
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

/// The refusal of `document` as metadata: its code and message.
fn refusal(document: &str) -> (String, String) {
    let err = parse_metadata(document, NOW).unwrap_err();
    (err.code().to_string(), err.to_string())
}

fn create(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    input: CreateSamlProviderInput,
) -> Result<(), DirectoryError> {
    t.create_saml_provider(ids, NOW, input).map(|_| ())
}

fn apply(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    arn: &str,
    input: UpdateSamlProviderInput,
) -> Result<(), DirectoryError> {
    t.update_saml_provider(ids, NOW, arn, input).map(|_| ())
}

/// Runs an operation that must fail and checks that it left the tenant as it was.
fn fails<T: std::fmt::Debug>(
    t: &mut Tenant,
    op: impl FnOnce(&mut Tenant) -> Result<T, DirectoryError>,
) -> DirectoryError {
    let before = t.clone();
    let err = op(t).unwrap_err();
    assert_eq!(*t, before, "a failed operation changed the tenant");
    err
}

#[test]
fn valid_metadata_yields_its_entity_id_validity_and_certificates() {
    let found = parse_metadata(&metadata(), NOW).unwrap();
    assert_eq!(found.entity_id, "https://idp.example.com/saml");
    assert_eq!(found.valid_until, None);
    // 2100-01-01T00:00:00Z.
    assert_eq!(found.signing_certificates_not_after, vec![4_102_444_800]);

    // `validUntil` on the EntityDescriptor (the earlier of two counts).
    let doc = metadata_with(
        r#" validUntil="2030-01-01T00:00:00Z""#,
        &signing_key(&valid_certificate()),
    );
    assert_eq!(
        parse_metadata(&doc, NOW).unwrap().valid_until,
        Some(1_893_456_000)
    );
    // A KeyDescriptor without `use` signs too; an encryption-only one is skipped.
    let keys = format!(
        "{}\n{}",
        signing_key(&certificate(2000, 2001)).replace(r#"use="signing""#, r#"use="encryption""#),
        signing_key(&valid_certificate()).replace(r#" use="signing""#, "")
    );
    let found = parse_metadata(&metadata_with("", &keys), NOW).unwrap();
    assert_eq!(found.signing_certificates_not_after, vec![4_102_444_800]);
}

#[test]
fn metadata_that_is_not_saml_2_idp_metadata_is_refused_with_the_reason() {
    let cert = valid_certificate();
    let good = metadata_with("", &signing_key(&cert));
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("</md:EntityDescriptor>", ""),
            "not well-formed XML",
        ),
        (
            format!(
                "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">]>{}",
                good.replace(r#"<?xml version="1.0" encoding="UTF-8"?>"#, "")
            ),
            "has a DTD",
        ),
        (
            good.replace("urn:oasis:names:tc:SAML:2.0:metadata", "urn:example:other"),
            "root element is not a SAML 2.0 metadata EntityDescriptor",
        ),
        (
            good.replace(r#"entityID="https://idp.example.com/saml""#, ""),
            "has no entityID",
        ),
        (
            good.replace(
                r#"entityID="https://idp.example.com/saml""#,
                r#"entityID=" ""#,
            ),
            "has no entityID",
        ),
        (
            good.replace(
                r#"protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol""#,
                r#"protocolSupportEnumeration="urn:oasis:names:tc:SAML:1.1:protocol""#,
            ),
            "no IDPSSODescriptor that supports the SAML 2.0 protocol",
        ),
        (
            good.replace("IDPSSODescriptor", "SPSSODescriptor"),
            "no IDPSSODescriptor",
        ),
        (
            good.replace(r#"use="signing""#, r#"use="encryption""#),
            "no signing KeyDescriptor",
        ),
        (metadata_with("", ""), "no signing KeyDescriptor"),
        (
            metadata_with("", &signing_key("not*base64*at*all")),
            "is not base64",
        ),
        (
            metadata_with("", &signing_key("aGVsbG8gd29ybGQ=")),
            "is not a DER X.509 certificate",
        ),
        (
            metadata_with(r#" validUntil="2001-01-01T00:00:00Z""#, &signing_key(&cert)),
            "the metadata expired at 2001-01-01T00:00:00Z (validUntil)",
        ),
        (
            metadata_with(r#" validUntil="soon""#, &signing_key(&cert)),
            "validUntil is not an ISO 8601 date",
        ),
        (
            metadata_with("", &signing_key(&certificate(2000, 2010))),
            "every signing certificate has expired",
        ),
    ];
    for (document, why) in cases {
        let (code, message) = refusal(&document);
        assert_eq!(code, "InvalidInput", "{why}: {message}");
        assert!(
            message.starts_with("Could not parse metadata: "),
            "{why}: {message}"
        );
        assert!(message.contains(why), "{why}: {message}");
    }
    // Shorter than the model's 1,000 characters: the API's own constraint.
    let (code, message) = refusal("<md:EntityDescriptor/>");
    assert_eq!(code, "ValidationError", "{message}");
    assert!(
        message.contains("greater than or equal to 1000"),
        "{message}"
    );
}

#[test]
fn one_expired_certificate_beside_a_valid_one_is_accepted() {
    let keys = format!(
        "{}\n{}",
        signing_key(&certificate(2000, 2010)),
        signing_key(&valid_certificate())
    );
    let found = parse_metadata(&metadata_with("", &keys), NOW).unwrap();
    assert_eq!(found.signing_certificates_not_after.len(), 2);
}

#[test]
fn create_get_list_delete_round_trip() {
    let (mut t, mut ids) = tenant();
    let created = t
        .create_saml_provider(
            &mut ids,
            NOW,
            CreateSamlProviderInput {
                tags: vec![tag("team", "id")],
                ..input("Okta")
            },
        )
        .unwrap()
        .clone();
    assert_eq!(created.arn, ARN);
    assert_eq!(created.entity_id, "https://idp.example.com/saml");
    assert_eq!(created.uuid.len(), 26);
    assert!(created
        .uuid
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    assert_eq!(created.created_at, NOW);
    // Names are unique case-insensitively; the ARN finds the provider whatever its case.
    assert_eq!(
        fails(&mut t, |t| create(t, &mut ids, input("okta")))
            .code()
            .to_string(),
        "EntityAlreadyExists"
    );
    assert_eq!(t.get_saml_provider(ARN).unwrap(), &created);
    assert_eq!(
        t.get_saml_provider("arn:aws:iam::111122223333:saml-provider/OKTA")
            .unwrap()
            .name,
        "Okta"
    );
    assert_eq!(t.list_saml_providers().len(), 1);
    for missing in [
        "arn:aws:iam::111122223333:saml-provider/Nope",
        "arn:aws:iam::999999999999:saml-provider/Okta",
        "arn:aws:iam::111122223333:oidc-provider/Okta",
        "not an arn",
    ] {
        let err = t.get_saml_provider(missing).unwrap_err();
        assert_eq!(err.code().to_string(), "NoSuchEntity", "{missing}");
        assert_eq!(
            err.to_string(),
            format!("SAMLProvider not found for arn {missing}")
        );
    }
    t.delete_saml_provider(ARN).unwrap();
    assert!(t.saml_providers.is_empty());
    assert_eq!(
        fails(&mut t, |t| t.delete_saml_provider(ARN))
            .code()
            .to_string(),
        "NoSuchEntity"
    );
}

#[test]
fn names_follow_the_saml_provider_pattern() {
    let (mut t, mut ids) = tenant();
    for bad in ["", "with space", "plus+sign", "at@sign", &"n".repeat(129)] {
        let err = fails(&mut t, |t| create(t, &mut ids, input(bad)));
        assert_eq!(err.code().to_string(), "ValidationError", "{bad:?}: {err}");
    }
    for good in ["a", "Okta_prod-2.example", &"n".repeat(128)] {
        t.create_saml_provider(&mut ids, NOW, input(good)).unwrap();
    }
}

#[test]
fn an_account_holds_at_most_100_providers() {
    let (mut t, mut ids) = tenant();
    for i in 0..MAX_SAML_PROVIDERS {
        t.create_saml_provider(&mut ids, NOW, input(&format!("p{i}")))
            .unwrap();
    }
    let err = fails(&mut t, |t| create(t, &mut ids, input("one-more")));
    assert_eq!(err.code().to_string(), "LimitExceeded");
    assert_eq!(
        err.to_string(),
        "Cannot exceed quota for SAMLProvidersPerAccount: 100"
    );
}

#[test]
fn private_keys_are_rsa_pem_at_most_two_and_required_mode_needs_one() {
    let (mut t, mut ids) = tenant();
    // Required without a key is refused; with one it is kept as a secret.
    let err = fails(&mut t, |t| {
        create(
            t,
            &mut ids,
            CreateSamlProviderInput {
                assertion_encryption_mode: Some("Required".into()),
                ..input("Okta")
            },
        )
    });
    assert_eq!(err.code().to_string(), "InvalidInput", "{err}");
    let provider = t
        .create_saml_provider(
            &mut ids,
            NOW,
            CreateSamlProviderInput {
                assertion_encryption_mode: Some("Required".into()),
                add_private_key: Some(Secret::new(RSA_KEY_PEM)),
                ..input("Okta")
            },
        )
        .unwrap();
    assert_eq!(provider.private_keys.len(), 1);
    let first = provider.private_keys.first().unwrap().key_id.clone();
    assert!(!format!("{provider:?}").contains("BEGIN PRIVATE KEY"));

    // Keys that are not unencrypted RSA PEM keys, and an unknown mode.
    for bad in [
        EC_KEY_PEM,
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let update = UpdateSamlProviderInput {
            add_private_key: Some(Secret::new(bad)),
            ..Default::default()
        };
        let err = fails(&mut t, |t| apply(t, &mut ids, ARN, update));
        assert_eq!(err.code().to_string(), "InvalidInput", "{err}");
        assert!(!err.to_string().contains(bad), "{err}");
    }
    let update = UpdateSamlProviderInput {
        add_private_key: Some(Secret::new("k".repeat(16_385))),
        ..Default::default()
    };
    let err = fails(&mut t, |t| apply(t, &mut ids, ARN, update));
    assert_eq!(err.code().to_string(), "ValidationError");
    assert!(
        err.to_string().contains("'<redacted>' at 'addPrivateKey'"),
        "{err}"
    );
    let update = UpdateSamlProviderInput {
        assertion_encryption_mode: Some("Sometimes".into()),
        ..Default::default()
    };
    let err = fails(&mut t, |t| apply(t, &mut ids, ARN, update));
    assert_eq!(err.code().to_string(), "ValidationError");

    // A second key for rotation; a third is over the limit.
    let add = || UpdateSamlProviderInput {
        add_private_key: Some(Secret::new(RSA_KEY_PEM)),
        ..Default::default()
    };
    t.update_saml_provider(&mut ids, NOW + 1, ARN, add())
        .unwrap();
    let err = fails(&mut t, |t| apply(t, &mut ids, ARN, add()));
    assert_eq!(err.code().to_string(), "LimitExceeded");

    // Removing an unknown key, then the first; the last key cannot go while Required.
    let remove = |id: &str| UpdateSamlProviderInput {
        remove_private_key: Some(id.into()),
        ..Default::default()
    };
    let err = fails(&mut t, |t| {
        apply(t, &mut ids, ARN, remove("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    });
    assert_eq!(err.code().to_string(), "NoSuchEntity");
    let err = fails(&mut t, |t| apply(t, &mut ids, ARN, remove("short")));
    assert_eq!(err.code().to_string(), "ValidationError");
    let provider = t
        .update_saml_provider(&mut ids, NOW, ARN, remove(&first))
        .unwrap();
    assert_eq!(provider.private_keys.len(), 1);
    let second = provider.private_keys.first().unwrap().key_id.clone();
    assert_ne!(second, first);
    assert_eq!(provider.private_keys.first().unwrap().added_at, NOW + 1);
    let err = fails(&mut t, |t| apply(t, &mut ids, ARN, remove(&second)));
    assert_eq!(err.code().to_string(), "InvalidInput");
    // Allowed, then the last key may go.
    let provider = t
        .update_saml_provider(
            &mut ids,
            NOW,
            ARN,
            UpdateSamlProviderInput {
                assertion_encryption_mode: Some("Allowed".into()),
                remove_private_key: Some(second),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(provider.private_keys.is_empty());
    assert_eq!(
        provider.assertion_encryption_mode.as_deref(),
        Some("Allowed")
    );
}

#[test]
fn private_keys_are_among_the_secrets_sealed_at_rest() {
    let (mut t, mut ids) = tenant();
    t.create_saml_provider(
        &mut ids,
        NOW,
        CreateSamlProviderInput {
            add_private_key: Some(Secret::new(RSA_KEY_PEM)),
            ..input("Okta")
        },
    )
    .unwrap();
    assert!(t.secrets_mut().any(|s| s.expose() == RSA_KEY_PEM));
}

#[test]
fn update_replaces_the_metadata_after_checking_it() {
    let (mut t, mut ids) = tenant();
    t.create_saml_provider(&mut ids, NOW, input("Okta"))
        .unwrap();
    let bad = UpdateSamlProviderInput {
        metadata_document: Some(metadata().replace("IDPSSODescriptor", "SPSSODescriptor")),
        ..Default::default()
    };
    let err = fails(&mut t, |t| apply(t, &mut ids, ARN, bad));
    assert_eq!(err.code().to_string(), "InvalidInput");
    let newer = metadata_with(
        r#" validUntil="2040-01-01T00:00:00Z""#,
        &signing_key(&valid_certificate()),
    )
    .replace(
        "https://idp.example.com/saml\"",
        "https://idp2.example.com/saml\"",
    );
    let provider = t
        .update_saml_provider(
            &mut ids,
            NOW,
            ARN,
            UpdateSamlProviderInput {
                metadata_document: Some(newer.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(provider.metadata_document, newer);
    assert_eq!(provider.entity_id, "https://idp2.example.com/saml");
    assert_eq!(provider.valid_until, Some(2_208_988_800));
    let missing = "arn:aws:iam::111122223333:saml-provider/Nope";
    let err = fails(&mut t, |t| {
        apply(t, &mut ids, missing, UpdateSamlProviderInput::default())
    });
    assert_eq!(err.code().to_string(), "NoSuchEntity");
}

#[test]
fn tags_follow_iams_rules() {
    let (mut t, mut ids) = tenant();
    t.create_saml_provider(&mut ids, NOW, input("Okta"))
        .unwrap();
    t.tag_saml_provider(ARN, &[tag("b", "1"), tag("a", "2")])
        .unwrap();
    // Keys are case-sensitive here: `A` is another tag.
    t.tag_saml_provider(ARN, &[tag("A", "3"), tag("b", "4")])
        .unwrap();
    let keys: Vec<(&str, &str)> = t
        .get_saml_provider(ARN)
        .unwrap()
        .tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    assert_eq!(keys, vec![("b", "4"), ("a", "2"), ("A", "3")]);
    let err = fails(&mut t, |t| t.tag_saml_provider(ARN, &[tag("aws:x", "1")]));
    assert_eq!(err.code().to_string(), "InvalidInput");
    let many: Vec<Tag> = (0..48).map(|i| tag(&format!("k{i}"), "v")).collect();
    let err = fails(&mut t, |t| t.tag_saml_provider(ARN, &many));
    assert_eq!(err.code().to_string(), "LimitExceeded");
    t.untag_saml_provider(ARN, &["a".into(), "absent".into()])
        .unwrap();
    assert_eq!(t.get_saml_provider(ARN).unwrap().tags.len(), 2);
    let err = fails(&mut t, |t| t.untag_saml_provider(ARN, &[String::new()]));
    assert_eq!(err.code().to_string(), "ValidationError");
    let err = fails(&mut t, |t| {
        t.tag_saml_provider(
            "arn:aws:iam::111122223333:saml-provider/Nope",
            &[tag("a", "b")],
        )
    });
    assert_eq!(err.code().to_string(), "NoSuchEntity");
}

#[test]
fn tenants_without_saml_providers_still_load() {
    // A tenant stored before SAML providers existed has no `saml_providers` member.
    let mut json = serde_json::to_value(Tenant::new(ACCOUNT, 0)).unwrap();
    json.as_object_mut().unwrap().remove("saml_providers");
    let t: Tenant = serde_json::from_value(json).unwrap();
    assert!(t.saml_providers.is_empty());
}
