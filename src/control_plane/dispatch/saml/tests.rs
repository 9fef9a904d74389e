//! SAML providers, OIDC provider and MFA device tags, `GetMFADevice`, `ResyncMFADevice` and
//! `UpdateOpenIDConnectProvider` through the admin API's JSON.

use serde_json::{json, Value};

use crate::control_plane::dispatch::{dispatch, is_mutating, Dispatched, REDACTED};
use crate::control_plane::AdminError;
use crate::directory::saml_fixtures::{metadata, RSA_KEY_PEM};
use crate::directory::totp::{code_at_step, time_step};
use crate::directory::{IdGenerator, PasswordHasher, Tenant};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const NOW_ISO: &str = "2023-11-14T22:13:20Z";
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);
const ARN: &str = "arn:aws:iam::111122223333:saml-provider/Okta";
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXch","e":"AQAB"}]}"#;
const OIDC_ARN: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/1";
const SERIAL: &str = "arn:aws:iam::111122223333:mfa/phone";

struct Fixture {
    tenant: Tenant,
    ids: IdGenerator,
    now: i64,
}

impl Fixture {
    fn new() -> Self {
        Self {
            tenant: Tenant::new(ACCOUNT, 0),
            ids: IdGenerator::seeded(3),
            now: NOW,
        }
    }

    #[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
    fn call(&mut self, action: &str, parameters: Value) -> Result<Dispatched, AdminError> {
        dispatch(
            &mut self.tenant,
            &mut self.ids,
            HASHER,
            self.now,
            action,
            &parameters,
        )
    }

    fn ok(&mut self, action: &str, parameters: Value) -> Value {
        let out = self
            .call(action, parameters)
            .unwrap_or_else(|e| panic!("{action} failed: {} {e}", e.code()));
        assert_eq!(out.changed, is_mutating(action), "{action}");
        out.result
    }

    /// A call that must fail without changing the tenant: its code and message.
    fn fails(&mut self, action: &str, parameters: Value) -> (String, String) {
        let before = self.tenant.clone();
        let err = self.call(action, parameters).unwrap_err();
        assert_eq!(
            self.tenant, before,
            "{action} changed the tenant and failed"
        );
        (err.code().to_string(), err.to_string())
    }

    fn saml(&mut self) {
        self.ok(
            "CreateSAMLProvider",
            json!({"Name": "Okta", "SAMLMetadataDocument": metadata()}),
        );
    }

    fn oidc(&mut self) {
        self.ok(
            "CreateOpenIDConnectProvider",
            json!({"Url": "https://oidc.example.com/id/1", "Jwks": JWKS}),
        );
    }

    /// A virtual MFA device enabled for user `alice`; returns its seed.
    fn enabled_mfa(&mut self) -> String {
        self.ok("CreateUser", json!({"UserName": "alice"}));
        let created = self.ok(
            "CreateVirtualMFADevice",
            json!({"VirtualMFADeviceName": "phone"}),
        );
        let seed = created["VirtualMFADevice"]["Base32StringSeed"]
            .as_str()
            .unwrap()
            .to_owned();
        let step = time_step(self.now);
        self.ok(
            "EnableMFADevice",
            json!({"UserName": "alice", "SerialNumber": SERIAL,
                "AuthenticationCode1": code_at_step(&seed, step - 1).unwrap(),
                "AuthenticationCode2": code_at_step(&seed, step).unwrap()}),
        );
        seed
    }
}

#[test]
fn saml_providers_have_aws_shapes() {
    let mut f = Fixture::new();
    let created = f.ok(
        "CreateSAMLProvider",
        json!({"Name": "Okta", "SAMLMetadataDocument": metadata(),
            "Tags": [{"Key": "team", "Value": "id"}]}),
    );
    assert_eq!(
        created,
        json!({"SAMLProviderArn": ARN, "Tags": [{"Key": "team", "Value": "id"}]})
    );
    let got = f.ok("GetSAMLProvider", json!({"SAMLProviderArn": ARN}));
    let members: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        [
            "SAMLProviderUUID",
            "SAMLMetadataDocument",
            "CreateDate",
            "Tags"
        ]
    );
    assert_eq!(got["SAMLMetadataDocument"], metadata_of(&f));
    assert_eq!(got["CreateDate"], NOW_ISO);
    let uuid = got["SAMLProviderUUID"].as_str().unwrap();
    assert!(
        uuid.len() >= 22
            && uuid
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );

    // ListSAMLProviders is not paged; ValidUntil appears when the metadata has one.
    let doc = metadata().replace(
        r#"entityID="https://idp.example.com/saml""#,
        r#"entityID="https://idp.example.com/saml" validUntil="2030-01-01T00:00:00Z""#,
    );
    f.ok(
        "CreateSAMLProvider",
        json!({"Name": "Azure", "SAMLMetadataDocument": doc}),
    );
    let list = f.ok("ListSAMLProviders", json!({}));
    assert_eq!(
        list,
        json!({"SAMLProviderList": [
            {"Arn": "arn:aws:iam::111122223333:saml-provider/Azure",
             "ValidUntil": "2030-01-01T00:00:00Z", "CreateDate": NOW_ISO},
            {"Arn": ARN, "CreateDate": NOW_ISO},
        ]})
    );

    let updated = f.ok(
        "UpdateSAMLProvider",
        json!({"SAMLProviderArn": ARN, "AssertionEncryptionMode": "Allowed"}),
    );
    assert_eq!(updated, json!({"SAMLProviderArn": ARN}));
    assert_eq!(
        f.ok("GetSAMLProvider", json!({"SAMLProviderArn": ARN}))["AssertionEncryptionMode"],
        "Allowed"
    );
    f.ok("DeleteSAMLProvider", json!({"SAMLProviderArn": ARN}));
    let (code, message) = f.fails("GetSAMLProvider", json!({"SAMLProviderArn": ARN}));
    assert_eq!(code, "NoSuchEntity");
    assert_eq!(message, format!("SAMLProvider not found for arn {ARN}"));
}

fn metadata_of(f: &Fixture) -> String {
    f.tenant
        .saml_providers
        .get("okta")
        .unwrap()
        .metadata_document
        .clone()
}

#[test]
fn private_keys_never_leave_the_directory() {
    let mut f = Fixture::new();
    let out = f
        .call(
            "CreateSAMLProvider",
            json!({"Name": "Okta", "SAMLMetadataDocument": metadata(),
                "AssertionEncryptionMode": "Required", "AddPrivateKey": RSA_KEY_PEM}),
        )
        .unwrap();
    assert_eq!(out.audit_parameters["AddPrivateKey"], REDACTED);
    assert!(!out.result.to_string().contains("PRIVATE KEY"));
    let got = f.ok("GetSAMLProvider", json!({"SAMLProviderArn": ARN}));
    assert!(!got.to_string().contains("PRIVATE KEY"), "{got}");
    let keys = got["PrivateKeyList"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys.first().unwrap();
    assert_eq!(
        key.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["KeyId", "Timestamp"]
    );
    assert_eq!(key["Timestamp"], NOW_ISO);
    let key_id = key["KeyId"].as_str().unwrap().to_owned();

    // A refused key is not echoed, nor is one of the wrong type.
    let (code, message) = f.fails(
        "UpdateSAMLProvider",
        json!({"SAMLProviderArn": ARN, "AddPrivateKey": "CANARY-not-a-key"}),
    );
    assert_eq!(code, "InvalidInput");
    assert!(!message.contains("CANARY"), "{message}");
    let (code, message) = f.fails(
        "UpdateSAMLProvider",
        json!({"SAMLProviderArn": ARN, "AddPrivateKey": {"CANARY": 1}}),
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(!message.contains("CANARY"), "{message}");

    // Rotation: add a second key, remove the first.
    f.ok(
        "UpdateSAMLProvider",
        json!({"SAMLProviderArn": ARN, "AddPrivateKey": RSA_KEY_PEM}),
    );
    f.ok(
        "UpdateSAMLProvider",
        json!({"SAMLProviderArn": ARN, "RemovePrivateKey": key_id}),
    );
    let got = f.ok("GetSAMLProvider", json!({"SAMLProviderArn": ARN}));
    let keys = got["PrivateKeyList"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_ne!(keys.first().unwrap()["KeyId"], json!(key_id));
}

#[test]
fn identity_center_propagation_is_refused_by_name() {
    let mut f = Fixture::new();
    let (code, message) = f.fails(
        "CreateSAMLProvider",
        json!({"Name": "Okta", "SAMLMetadataDocument": metadata(),
            "ContextProvider": {"SubjectSourceKey": "sub"}}),
    );
    assert_eq!(code, "InvalidInput");
    assert!(
        message.starts_with("ContextProvider is not supported"),
        "{message}"
    );
    f.saml();
    let (code, message) = f.fails(
        "UpdateSAMLProvider",
        json!({"SAMLProviderArn": ARN, "IdentityCenterInstanceArn": "arn:aws:sso:::instance/ssoins-1"}),
    );
    assert_eq!(code, "InvalidInput");
    assert!(
        message.starts_with("IdentityCenterInstanceArn is not supported"),
        "{message}"
    );

    // UpdateOpenIDConnectProvider: removing what was never set succeeds on a provider that
    // exists; setting is refused; an unknown provider is NoSuchEntity.
    f.oidc();
    let removed = f.ok(
        "UpdateOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": OIDC_ARN, "RemoveContextProvider": true,
            "RemoveIdentityCenterInstance": true}),
    );
    assert_eq!(removed, json!({}));
    let (code, _) = f.fails(
        "UpdateOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": OIDC_ARN, "ContextProvider": {"SubjectSourceKey": "sub"}}),
    );
    assert_eq!(code, "InvalidInput");
    let (code, _) = f.fails(
        "UpdateOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": OIDC_ARN, "RemoveContextProvider": "maybe"}),
    );
    assert_eq!(code, "InvalidParameterValue");
    let (code, _) = f.fails(
        "UpdateOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": "arn:aws:iam::111122223333:oidc-provider/nope"}),
    );
    assert_eq!(code, "NoSuchEntity");
}

#[test]
fn bad_metadata_is_invalid_input() {
    let mut f = Fixture::new();
    let (code, message) = f.fails(
        "CreateSAMLProvider",
        json!({"Name": "Okta",
            "SAMLMetadataDocument": metadata().replace("IDPSSODescriptor", "SPSSODescriptor")}),
    );
    assert_eq!(code, "InvalidInput");
    assert!(message.starts_with("Could not parse metadata"), "{message}");
    let (code, _) = f.fails("CreateSAMLProvider", json!({"Name": "Okta"}));
    assert_eq!(code, "MissingParameter");
}

/// Each tag listing, through its three actions: tag, list (paged), untag.
#[test]
fn saml_oidc_and_mfa_tags_are_tagged_listed_in_pages_and_untagged() {
    let mut f = Fixture::new();
    f.saml();
    f.oidc();
    f.ok(
        "CreateVirtualMFADevice",
        json!({"VirtualMFADeviceName": "phone"}),
    );
    let entities = [
        ("SAMLProvider", "SAMLProviderArn", ARN),
        (
            "OpenIDConnectProvider",
            "OpenIDConnectProviderArn",
            OIDC_ARN,
        ),
        ("MFADevice", "SerialNumber", SERIAL),
    ];
    for (kind, param, id) in entities {
        let tags = json!([{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}, {"Key": "c", "Value": ""}]);
        f.ok(&format!("Tag{kind}"), json!({param: id, "Tags": tags}));
        let list = format!("List{kind}Tags");
        let first = f.ok(&list, json!({param: id, "MaxItems": 2}));
        assert_eq!(
            first["Tags"],
            json!([{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]),
            "{kind}"
        );
        assert_eq!(first["IsTruncated"], true, "{kind}");
        let rest = f.ok(&list, json!({param: id, "Marker": first["Marker"]}));
        assert_eq!(rest["Tags"], json!([{"Key": "c", "Value": ""}]), "{kind}");
        assert_eq!(rest["IsTruncated"], false, "{kind}");
        let (code, _) = f.fails(&list, json!({param: id, "MaxItems": 0}));
        assert_eq!(code, "ValidationError", "{kind}");

        // AWS's tag rules: reserved prefix, the per-entity quota, untag by key.
        let (code, message) = f.fails(
            &format!("Tag{kind}"),
            json!({param: id, "Tags": [{"Key": "aws:team", "Value": "x"}]}),
        );
        assert_eq!(code, "InvalidInput", "{kind}");
        assert!(message.contains("reserved prefix 'aws:'"), "{message}");
        let many: Vec<Value> = (0..48)
            .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
            .collect();
        let (code, _) = f.fails(&format!("Tag{kind}"), json!({param: id, "Tags": many}));
        assert_eq!(code, "LimitExceeded", "{kind}");
        f.ok(
            &format!("Untag{kind}"),
            json!({param: id, "TagKeys": ["a", "c"]}),
        );
        assert_eq!(
            f.ok(&list, json!({param: id}))["Tags"],
            json!([{"Key": "b", "Value": "2"}]),
            "{kind}"
        );
        let (code, _) = f.fails(&list, json!({param: format!("{id}-missing")}));
        assert_eq!(code, "NoSuchEntity", "{kind}");
    }
    // GetOpenIDConnectProvider shows the provider's tags.
    let got = f.ok(
        "GetOpenIDConnectProvider",
        json!({"OpenIDConnectProviderArn": OIDC_ARN}),
    );
    assert_eq!(got["Tags"], json!([{"Key": "b", "Value": "2"}]));
}

#[test]
fn virtual_mfa_devices_take_tags_at_creation() {
    let mut f = Fixture::new();
    let created = f.ok(
        "CreateVirtualMFADevice",
        json!({"VirtualMFADeviceName": "phone", "Tags": [{"Key": "owner", "Value": "alice"}]}),
    );
    assert_eq!(
        created["VirtualMFADevice"]["Tags"],
        json!([{"Key": "owner", "Value": "alice"}])
    );
    assert_eq!(
        f.ok("ListMFADeviceTags", json!({"SerialNumber": SERIAL}))["Tags"],
        json!([{"Key": "owner", "Value": "alice"}])
    );
    // A refused tag creates no device.
    let (code, _) = f.fails(
        "CreateVirtualMFADevice",
        json!({"VirtualMFADeviceName": "tablet", "Tags": [{"Key": "aws:x", "Value": "1"}]}),
    );
    assert_eq!(code, "InvalidInput");
}

#[test]
fn get_mfa_device_shows_the_user_and_enable_date() {
    let mut f = Fixture::new();
    f.ok(
        "CreateVirtualMFADevice",
        json!({"VirtualMFADeviceName": "phone"}),
    );
    // Unassigned: only its serial number.
    assert_eq!(
        f.ok("GetMFADevice", json!({"SerialNumber": SERIAL})),
        json!({"SerialNumber": SERIAL})
    );
    f.ok("DeleteVirtualMFADevice", json!({"SerialNumber": SERIAL}));
    f.enabled_mfa();
    let expected = json!({"UserName": "alice", "SerialNumber": SERIAL, "EnableDate": NOW_ISO});
    assert_eq!(
        f.ok("GetMFADevice", json!({"SerialNumber": SERIAL})),
        expected
    );
    assert_eq!(
        f.ok(
            "GetMFADevice",
            json!({"SerialNumber": SERIAL, "UserName": "alice"})
        ),
        expected
    );
    f.ok("CreateUser", json!({"UserName": "bob"}));
    let (code, _) = f.fails(
        "GetMFADevice",
        json!({"SerialNumber": SERIAL, "UserName": "bob"}),
    );
    assert_eq!(code, "NoSuchEntity");
    let (code, _) = f.fails(
        "GetMFADevice",
        json!({"SerialNumber": SERIAL, "UserName": "carol"}),
    );
    assert_eq!(code, "NoSuchEntity");
    let (code, _) = f.fails(
        "GetMFADevice",
        json!({"SerialNumber": format!("{SERIAL}2")}),
    );
    assert_eq!(code, "NoSuchEntity");
}

#[test]
fn resync_accepts_a_drifted_pair_once_and_later_codes_follow_the_drift() {
    let mut f = Fixture::new();
    let seed = f.enabled_mfa();
    f.now = NOW + 60;
    let current = time_step(f.now);
    // The device's clock runs ten steps (five minutes) ahead.
    let ahead = current + 10;
    let code = |step: u64| code_at_step(&seed, step).unwrap();
    let resync = |c1: String, c2: String| {
        json!({"UserName": "alice", "SerialNumber": SERIAL,
            "AuthenticationCode1": c1, "AuthenticationCode2": c2})
    };
    // Codes that are not consecutive do not resync.
    let (code_name, message) = f.fails("ResyncMFADevice", resync(code(ahead - 1), code(ahead + 1)));
    assert_eq!(code_name, "InvalidAuthenticationCode");
    assert_eq!(message, "Authentication code for device is not valid.");
    // Before the resync, the drifted device's current code does not verify.
    let mut check = f.tenant.clone();
    assert!(check
        .verify_mfa_code(SERIAL, &code(ahead + 1), f.now)
        .is_err());

    let out = f.ok("ResyncMFADevice", resync(code(ahead - 1), code(ahead)));
    assert_eq!(out, json!({}));
    // The same pair is never accepted twice.
    let (code_name, _) = f.fails("ResyncMFADevice", resync(code(ahead - 1), code(ahead)));
    assert_eq!(code_name, "InvalidAuthenticationCode");
    // A minute later, the device's code then verifies where our clock alone would not.
    let later = f.now + 60;
    f.tenant
        .verify_mfa_code(SERIAL, &code(ahead + 2), later)
        .unwrap();

    // Far out of the window, or for a device the user does not have, or malformed codes.
    let (code_name, _) = f.fails(
        "ResyncMFADevice",
        resync(code(current + 200), code(current + 201)),
    );
    assert_eq!(code_name, "InvalidAuthenticationCode");
    f.ok("CreateUser", json!({"UserName": "bob"}));
    let (code_name, _) = f.fails(
        "ResyncMFADevice",
        json!({"UserName": "bob", "SerialNumber": SERIAL,
            "AuthenticationCode1": code(ahead + 3), "AuthenticationCode2": code(ahead + 4)}),
    );
    assert_eq!(code_name, "NoSuchEntity");
    let (code_name, message) = f.fails("ResyncMFADevice", resync("12a456".into(), code(ahead + 4)));
    assert_eq!(code_name, "ValidationError");
    assert!(!message.contains("12a456"), "{message}");
}
