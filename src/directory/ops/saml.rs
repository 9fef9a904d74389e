//! SAML 2.0 identity providers: their metadata, tags and assertion-decrypting private keys.
//!
//! A provider's metadata is checked as IAM checks it before anything is stored: well-formed
//! XML (no DTD, so no entity expansion), an `EntityDescriptor` of the SAML 2.0 metadata
//! namespace with an `entityID`, an `IDPSSODescriptor` that supports the SAML 2.0 protocol,
//! and at least one signing `KeyDescriptor` whose `X509Certificate` is base64 DER that
//! parses as X.509. Metadata past its `validUntil`, or whose signing certificates have all
//! expired, could never verify an assertion and is refused. Refusals are `InvalidInput`
//! "Could not parse metadata", as IAM's, with the reason after a colon.
//!
//! Private keys (`AddPrivateKey`) decrypt encrypted assertions; they are [`Secret`]s (sealed
//! at rest, redacted in `Debug`) and never appear in a result, an error or the audit trail:
//! results show only their `KeyId` and when they were added, as AWS does.

use std::time::Duration;

use ring::signature::RsaKeyPair;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::PrivateKeyDer;
use x509_cert::der::Decode as _;

use super::{key, merge_tags, quota_exceeded, remove_tags};
use crate::directory::{
    validate, DirectoryError, IdGenerator, SamlPrivateKey, SamlProvider, Secret, Tag, Tenant,
};
use crate::policy::{parse_policy_date, ArnParts};

/// SAML providers one account may have (AWS's quota).
pub const MAX_SAML_PROVIDERS: usize = 100;

/// Private keys one provider holds: the current one and its successor during a rotation.
const MAX_PRIVATE_KEYS: usize = 2;

/// The length of AWS's `SAMLProviderUUID` and `KeyId` here (`[A-Z0-9]{22,64}` in the model).
const ID_LEN: usize = 26;

/// The most XML nodes a metadata document may have: real metadata has hundreds; the bound
/// keeps a 10 MB document of empty elements from costing more than it is worth.
const MAX_NODES: u32 = 200_000;

const MD_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const SAML2_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

/// The parameters of `CreateSAMLProvider`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateSamlProviderInput {
    /// The name: 1–128 of `[\w._-]`.
    pub name: String,
    /// The IdP's SAML 2.0 metadata document.
    pub metadata_document: String,
    /// Tags (keys case-sensitive).
    pub tags: Vec<Tag>,
    /// `Required` or `Allowed`.
    pub assertion_encryption_mode: Option<String>,
    /// A PEM RSA private key that decrypts assertions.
    pub add_private_key: Option<Secret>,
}

/// The parameters of `UpdateSAMLProvider`; what is absent stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSamlProviderInput {
    /// A new metadata document.
    pub metadata_document: Option<String>,
    /// `Required` or `Allowed`.
    pub assertion_encryption_mode: Option<String>,
    /// A private key to add.
    pub add_private_key: Option<Secret>,
    /// The `KeyId` of a private key to remove.
    pub remove_private_key: Option<String>,
}

/// What a valid metadata document says that IAM keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlMetadata {
    /// The IdP's `entityID`.
    pub entity_id: String,
    /// The document's `validUntil`, Unix seconds.
    pub valid_until: Option<i64>,
    /// The signing certificates' expiry times (`notAfter`), Unix seconds.
    pub signing_certificates_not_after: Vec<i64>,
}

fn could_not_parse(why: &str) -> DirectoryError {
    DirectoryError::InvalidInput(format!("Could not parse metadata: {why}."))
}

fn no_such_provider(arn: &str) -> DirectoryError {
    DirectoryError::NoSuchEntity(format!("SAMLProvider not found for arn {arn}"))
}

/// Checks a metadata document as IAM does and returns what it says. `now` decides whether
/// it (or its signing certificates) expired.
pub fn parse_metadata(document: &str, now: i64) -> Result<SamlMetadata, DirectoryError> {
    validate::length(document, "sAMLMetadataDocument", 1_000, 10_000_000)?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(document, options)
        .map_err(|_| could_not_parse("the document is not well-formed XML (or has a DTD)"))?;
    let root = doc.root_element();
    if !root.has_tag_name((MD_NS, "EntityDescriptor")) {
        return Err(could_not_parse(
            "the root element is not a SAML 2.0 metadata EntityDescriptor",
        ));
    }
    let entity_id = root
        .attribute("entityID")
        .filter(|id| !id.trim().is_empty() && id.chars().count() <= 1_024)
        .ok_or_else(|| could_not_parse("the EntityDescriptor has no entityID"))?;
    let idp = root
        .children()
        .find(|n| {
            n.has_tag_name((MD_NS, "IDPSSODescriptor"))
                && n.attribute("protocolSupportEnumeration")
                    .is_some_and(|p| p.split_ascii_whitespace().any(|p| p == SAML2_PROTOCOL))
        })
        .ok_or_else(|| {
            could_not_parse("there is no IDPSSODescriptor that supports the SAML 2.0 protocol")
        })?;

    let mut valid_until = None;
    for node in [root, idp] {
        if let Some(text) = node.attribute("validUntil") {
            let at = parse_policy_date(text)
                .ok_or_else(|| could_not_parse("validUntil is not an ISO 8601 date"))?
                .epoch_seconds();
            valid_until = Some(valid_until.map_or(at, |v: i64| v.min(at)));
        }
    }
    if let Some(at) = valid_until.filter(|at| *at <= now) {
        let date = crate::policy::Timestamp::from_epoch_seconds(at);
        return Err(could_not_parse(&format!(
            "the metadata expired at {date} (validUntil)"
        )));
    }

    let mut not_after = Vec::new();
    let signing = idp.children().filter(|n| {
        n.has_tag_name((MD_NS, "KeyDescriptor"))
            && n.attribute("use").is_none_or(|u| u == "signing")
    });
    for descriptor in signing {
        let certificates = descriptor
            .descendants()
            .filter(|n| n.has_tag_name((DS_NS, "X509Certificate")));
        for certificate in certificates {
            not_after.push(certificate_not_after(
                certificate.text().unwrap_or_default(),
            )?);
        }
    }
    if not_after.is_empty() {
        return Err(could_not_parse(
            "the IDPSSODescriptor has no signing KeyDescriptor with an X509Certificate",
        ));
    }
    if not_after.iter().all(|at| *at <= now) {
        return Err(could_not_parse("every signing certificate has expired"));
    }
    Ok(SamlMetadata {
        entity_id: entity_id.to_owned(),
        valid_until,
        signing_certificates_not_after: not_after,
    })
}

/// The `notAfter` of a base64 DER X.509 certificate, as metadata carries it (line breaks and
/// indentation allowed).
fn certificate_not_after(base64_text: &str) -> Result<i64, DirectoryError> {
    use base64::Engine as _;
    let compact: String = base64_text
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| could_not_parse("an X509Certificate is not base64"))?;
    let certificate = x509_cert::Certificate::from_der(&der)
        .map_err(|_| could_not_parse("an X509Certificate is not a DER X.509 certificate"))?;
    let not_after: Duration = certificate
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration();
    Ok(i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX))
}

/// Checks the SAML provider name: 1–128 of `[\w._-]` (narrower than other IAM names).
fn provider_name(name: &str) -> Result<(), DirectoryError> {
    validate::length(name, "name", 1, 128)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(validate::validation_error(
            name,
            "name",
            r"Member must satisfy regular expression pattern: [\w._-]+",
        ));
    }
    Ok(())
}

fn encryption_mode(mode: &str) -> Result<(), DirectoryError> {
    if matches!(mode, "Required" | "Allowed") {
        return Ok(());
    }
    Err(validate::validation_error(
        mode,
        "assertionEncryptionMode",
        "Member must satisfy enum value set: [Required, Allowed]",
    ))
}

/// Checks a private key as IAM's model bounds it and as a decrypter needs it: an unencrypted
/// PEM RSA key (PKCS #8 or PKCS #1) of 2,048 to 8,192 bits. Errors never quote the key.
fn private_key(pem: &Secret) -> Result<(), DirectoryError> {
    let text = pem.expose();
    let constraint = |c: &str| {
        DirectoryError::Validation(format!(
            "1 validation error detected: Value '<redacted>' at 'addPrivateKey' failed to satisfy constraint: {c}"
        ))
    };
    let len = text.chars().count();
    if len == 0 {
        return Err(constraint(
            "Member must have length greater than or equal to 1",
        ));
    }
    if len > 16_384 {
        return Err(constraint(
            "Member must have length less than or equal to 16384",
        ));
    }
    if !text
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'))
    {
        return Err(constraint(
            r"Member must satisfy regular expression pattern: [\u0009\u000A\u000D\u0020-\u00FF]+",
        ));
    }
    let invalid = || {
        DirectoryError::InvalidInput(
            "The private key is not valid: it must be an unencrypted RSA private key in PEM (PKCS #8 or PKCS #1) of 2048 to 8192 bits."
                .into(),
        )
    };
    let key = PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|_| invalid())?;
    let parsed = match &key {
        PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).is_ok(),
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()).is_ok(),
        _ => false,
    };
    if !parsed {
        return Err(invalid());
    }
    Ok(())
}

fn key_id(id: &str) -> Result<(), DirectoryError> {
    validate::length(id, "removePrivateKey", 22, 64)?;
    if !id
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(validate::validation_error(
            id,
            "removePrivateKey",
            "Member must satisfy regular expression pattern: [A-Z0-9]+",
        ));
    }
    Ok(())
}

fn requires_key() -> DirectoryError {
    DirectoryError::InvalidInput(
        "AssertionEncryptionMode Required needs a private key to decrypt assertions.".into(),
    )
}

// === impl Tenant ===

impl Tenant {
    /// `CreateSAMLProvider`.
    pub fn create_saml_provider(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        input: CreateSamlProviderInput,
    ) -> Result<&SamlProvider, DirectoryError> {
        let CreateSamlProviderInput {
            name,
            metadata_document,
            tags,
            assertion_encryption_mode,
            add_private_key,
        } = input;
        provider_name(&name)?;
        if let Some(mode) = &assertion_encryption_mode {
            encryption_mode(mode)?;
        }
        if let Some(pem) = &add_private_key {
            private_key(pem)?;
        }
        let metadata = parse_metadata(&metadata_document, now)?;
        merge_tags(
            &[],
            &tags,
            false,
            self.quotas.tags_per_entity,
            "TagsPerSamlProvider",
        )?;
        if assertion_encryption_mode.as_deref() == Some("Required") && add_private_key.is_none() {
            return Err(requires_key());
        }
        let k = key(&name);
        if self.saml_providers.contains_key(&k) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "SAMLProvider {name} already exists."
            )));
        }
        if self.saml_providers.len() >= MAX_SAML_PROVIDERS {
            return Err(quota_exceeded(
                "SAMLProvidersPerAccount",
                MAX_SAML_PROVIDERS,
            ));
        }
        let private_keys = add_private_key
            .map(|pem| SamlPrivateKey {
                key_id: ids.base32(ID_LEN),
                added_at: now,
                private_key: pem,
            })
            .into_iter()
            .collect();
        let provider = SamlProvider {
            arn: self.arn("saml-provider/", "", &name),
            name,
            uuid: ids.base32(ID_LEN),
            metadata_document,
            entity_id: metadata.entity_id,
            valid_until: metadata.valid_until,
            created_at: now,
            tags,
            assertion_encryption_mode,
            private_keys,
        };
        Ok(self.saml_providers.entry(k).or_insert(provider))
    }

    /// The map key of the provider an ARN names (the name matched case-insensitively, as
    /// IAM names are).
    fn saml_key(&self, arn: &str) -> Result<String, DirectoryError> {
        ArnParts::split(arn)
            .filter(|p| p.service() == "iam" && p.account() == self.account_id)
            .and_then(|p| p.resource().strip_prefix("saml-provider/").map(key))
            .filter(|k| self.saml_providers.contains_key(k))
            .ok_or_else(|| no_such_provider(arn))
    }

    fn saml_mut(&mut self, arn: &str) -> Result<&mut SamlProvider, DirectoryError> {
        let k = self.saml_key(arn)?;
        self.saml_providers
            .get_mut(&k)
            .ok_or_else(|| no_such_provider(arn))
    }

    /// `GetSAMLProvider`.
    pub fn get_saml_provider(&self, arn: &str) -> Result<&SamlProvider, DirectoryError> {
        let k = self.saml_key(arn)?;
        self.saml_providers
            .get(&k)
            .ok_or_else(|| no_such_provider(arn))
    }

    /// `ListSAMLProviders`, by lowercased name.
    pub fn list_saml_providers(&self) -> Vec<&SamlProvider> {
        self.saml_providers.values().collect()
    }

    /// `UpdateSAMLProvider`: a new metadata document, encryption mode, or private key set.
    /// The key set after the change must hold at most two keys, and at least one when
    /// assertions must be encrypted.
    pub fn update_saml_provider(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        arn: &str,
        input: UpdateSamlProviderInput,
    ) -> Result<&SamlProvider, DirectoryError> {
        let UpdateSamlProviderInput {
            metadata_document,
            assertion_encryption_mode,
            add_private_key,
            remove_private_key,
        } = input;
        if let Some(mode) = &assertion_encryption_mode {
            encryption_mode(mode)?;
        }
        if let Some(pem) = &add_private_key {
            private_key(pem)?;
        }
        if let Some(id) = &remove_private_key {
            key_id(id)?;
        }
        let metadata = metadata_document
            .as_deref()
            .map(|d| parse_metadata(d, now))
            .transpose()?;
        let current = self.get_saml_provider(arn)?;
        let mut keys = current.private_keys.clone();
        if let Some(id) = &remove_private_key {
            let before = keys.len();
            keys.retain(|k| k.key_id != *id);
            if keys.len() == before {
                return Err(DirectoryError::NoSuchEntity(format!(
                    "The private key with KeyId {id} cannot be found."
                )));
            }
        }
        if let Some(pem) = add_private_key {
            if keys.len() >= MAX_PRIVATE_KEYS {
                return Err(quota_exceeded(
                    "PrivateKeysPerSamlProvider",
                    MAX_PRIVATE_KEYS,
                ));
            }
            keys.push(SamlPrivateKey {
                key_id: ids.base32(ID_LEN),
                added_at: now,
                private_key: pem,
            });
        }
        let mode = assertion_encryption_mode.or_else(|| current.assertion_encryption_mode.clone());
        if mode.as_deref() == Some("Required") && keys.is_empty() {
            return Err(requires_key());
        }
        let provider = self.saml_mut(arn)?;
        if let (Some(document), Some(metadata)) = (metadata_document, metadata) {
            provider.metadata_document = document;
            provider.entity_id = metadata.entity_id;
            provider.valid_until = metadata.valid_until;
        }
        provider.assertion_encryption_mode = mode;
        provider.private_keys = keys;
        Ok(provider)
    }

    /// `DeleteSAMLProvider`.
    pub fn delete_saml_provider(&mut self, arn: &str) -> Result<(), DirectoryError> {
        let k = self.saml_key(arn)?;
        self.saml_providers.remove(&k);
        Ok(())
    }

    /// `TagSAMLProvider`: adds or replaces tags (keys case-sensitive).
    pub fn tag_saml_provider(&mut self, arn: &str, tags: &[Tag]) -> Result<(), DirectoryError> {
        let quota = self.quotas.tags_per_entity;
        let provider = self.saml_mut(arn)?;
        provider.tags = merge_tags(&provider.tags, tags, false, quota, "TagsPerSamlProvider")?;
        Ok(())
    }

    /// `UntagSAMLProvider`: absent keys are ignored.
    pub fn untag_saml_provider(
        &mut self,
        arn: &str,
        keys: &[String],
    ) -> Result<(), DirectoryError> {
        validate::tag_keys(keys)?;
        remove_tags(&mut self.saml_mut(arn)?.tags, keys, false);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
