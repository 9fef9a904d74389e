//! Test fixtures: SAML 2.0 metadata around certificates made at test time, and an RSA key.

use base64::Engine as _;

/// A 2048-bit RSA private key (PKCS #8 PEM) made for these tests only.
pub(crate) const RSA_KEY_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCaEQs/iC6/d+uz
l3nA3Zut6PDGFPkKSYTELDehADEJeN2vL2dL2T7r7PaMPt3bRbRvIwKTeKenP7X/
tCZDwW3LXh6mr5n+TKX+XqOvTfdtThbAO5exKvJJ8Qdgr/TOH7xLzGoCQK5OKKjm
zsyeECZLemQPmDdY8A5fZQdiotL2ZLEO7YTERqqiHelK1VR7d/wd1dZFCLXVv1bF
DXiB3+wPXzTpoMWVUub0LW2G4wKp8la6wry04ZTFHYS6zUarU7UpRRRxSO8A5jmN
kum+aOqQ5e4JTz/3DjxwjQ/oSQjEvl1wXiIpSzhnExnLPTrWp7jiW3uAl66LfNi0
WBXvOxLnAgMBAAECggEAK/gERUfoy4T+c/0dZsD4DoxltqpCnsB3jwLth1nGJOVl
Ivt81+Uys2Mnw8OnTk5Y3cTYldy/wBgLKWQw7XJVEs6UIc8IvE4Eq5E31q6CGCRK
kucO9iWDCz4p9FqTG4ZsFxfKA0WRWUX6WhCXzd5fB3hw+RBgb1XnTCtJjclZOq71
ceXE3fTm5mNIwj86j0CICsO9aOPYF8halR7D/u05VR9EI+j7ownw7L1uHLVYFv0v
sCAh4kzt4/err2mdE7tf26ROjHA6gzEuZ9tNQpp8tca2aSb1petir7Afkn3K/OeI
W+PMTI64EuIaNPtkjfnDgHLRZHAPH6nGyQPFL9P6/QKBgQDPJunCUtlfnZDKy6fX
H7QgBQgYXKalfo/j0OfHV2od7S+vpJ/mbBqdhm2FdOnNjylfyyt8+iihvpAOT6/X
vtPMw4fsGsmYzLj8ZRp1cuG1ss2kUskC53cOkzdOhHPTLpwO7YA1KdxOWo557xYu
Ocknw9TDBhyjDsG8O9H5V8iA6wKBgQC+ZYmsGHL355fh1ZetoHzW24IYwVmuPDqe
pNMfOP45BsTG2Yd6hmbbuQLYn0nSSOaIlbV76AsoymcrmkU47DvAMpnZP9rX/Nfe
uOHUvmUut+bOTbH+HWFIt9BczPP3BOsmcxjVTp0paaoXlplprmRANfmbYfQmKSMg
3gVoTuqW9QKBgAPhqselXcVY4nmqTz7MrUdcUMaEFetL785I/87QaICfDSGxZ/2d
UPJarnqtsiPT5uaQnAP/e/tr4q8h9x2HydgwYb+e0OA4Fc9E5bYFrQ0GiKvnkTSo
uaZgQ80I1lLCsNHmyVw1qJcfQ0QtorDDDG3eUYJF/wtfH2ozhL+zUWJ5AoGBALO7
Uk0c/1q6Swwq/3Yt6+s/Z/5Kd4gc3xFncs0klgfrNdKpAlVNjseYTPGE3MEfhFAn
UxzWncIx31av2Oy1RGpY2hbVSpdd3cIoMTcNTKLfg4f4nC/QOEfXDWCtMRhckkbH
nAewoHe5gZGm3sd+krByw2BFBZ8IclrSe7RN2vIJAoGBAIG+u70CGpDsfbqtvBuC
xSGeT4NdGE0vJNmyHf0NXmJtgkmLC3wWbcQZa+pUitohaQEQUuGkxDa5hJXfREkL
M1R39Je+HFcdWaH5zht1YhpWg+BvvynOx7tot1gbbhgjSpt0aXhQZu7v8gTqSqSF
dDwH2J5ge4zMKCnmof4CIFGl
-----END PRIVATE KEY-----
";

/// A P-256 private key (PKCS #8 PEM): a valid key, but not one that decrypts SAML assertions.
pub(crate) const EC_KEY_PEM: &str = r"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVKEWJ+ZN6/wqa3O1
VtRBqLm2x9NRMIiyLu6rNZLQAXWhRANCAARnNKgeXSIwSp75ZDCDRluUGU20hM/G
KNnoZ0KslcjHexTpdElaTkMT3Eiqb6eNYKEZjNzHMbnlRGaMRvqmz12a
-----END PRIVATE KEY-----
";

/// A self-signed certificate valid from `not_before` to `not_after` (years), base64 DER.
pub(crate) fn certificate(not_before: i32, not_after: i32) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["idp.example.com".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(not_before, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(cert.der())
}

/// A certificate valid from 2000 to 2100.
pub(crate) fn valid_certificate() -> String {
    certificate(2000, 2100)
}

/// IdP metadata: `root_attrs` are added to the `EntityDescriptor`, `key_descriptors` is the
/// `IDPSSODescriptor`'s key part; long enough for IAM's 1,000-character minimum.
pub(crate) fn metadata_with(root_attrs: &str, key_descriptors: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com/saml"{root_attrs}>
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
{key_descriptors}
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/saml/sso/redirect"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.com/saml/sso/post"/>
  </md:IDPSSODescriptor>
  <md:Organization>
    <md:OrganizationName xml:lang="en">Example Identity Provider for iamlet tests</md:OrganizationName>
    <md:OrganizationDisplayName xml:lang="en">Example IdP</md:OrganizationDisplayName>
    <md:OrganizationURL xml:lang="en">https://idp.example.com/</md:OrganizationURL>
  </md:Organization>
</md:EntityDescriptor>
"#
    )
}

/// A signing `KeyDescriptor` holding `certificate` (base64 DER), split over lines as IdPs
/// write it.
pub(crate) fn signing_key(certificate: &str) -> String {
    let lines: Vec<String> = certificate
        .as_bytes()
        .chunks(64)
        .map(|c| format!("          {}", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "    <md:KeyDescriptor use=\"signing\">\n      <ds:KeyInfo>\n        <ds:X509Data>\n          <ds:X509Certificate>\n{}\n          </ds:X509Certificate>\n        </ds:X509Data>\n      </ds:KeyInfo>\n    </md:KeyDescriptor>",
        lines.join("\n")
    )
}

/// Valid metadata with one signing certificate, valid 2000–2100.
pub(crate) fn metadata() -> String {
    metadata_with("", &signing_key(&valid_certificate()))
}
