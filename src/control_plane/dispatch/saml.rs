//! SAML identity providers: `Create`/`Get`/`List`/`Update`/`DeleteSAMLProvider` and their
//! tags, shaped as botocore's output shapes.
//!
//! Results never carry a private key: `PrivateKeyList` shows each key's `KeyId` and when it
//! was added (`Timestamp`), as AWS's does, and `AddPrivateKey` is redacted from the audit
//! trail (`SECRET_PARAMETERS`). IAM Identity Center's trusted identity propagation
//! (`ContextProvider`, `IdentityCenterInstanceArn`) is refused: iamlet hosts no Identity
//! Center to propagate identities to.

use serde_json::{json, Map, Value};

use super::params::Params;
use super::render::{self, by, listing};
use crate::control_plane::AdminError;
use crate::directory::{
    CreateSamlProviderInput, DirectoryError, IdGenerator, SamlProvider, Secret, Tenant,
    UpdateSamlProviderInput,
};

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise).
pub(super) fn run(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    now: i64,
    action: &str,
    p: Params<'_>,
) -> Result<Option<Value>, AdminError> {
    let result = match action {
        "CreateSAMLProvider" => {
            refuse_identity_center(p)?;
            let input = CreateSamlProviderInput {
                name: p.str("Name")?.to_owned(),
                metadata_document: p.str("SAMLMetadataDocument")?.to_owned(),
                tags: p.tags("Tags")?,
                assertion_encryption_mode: p.opt_string("AssertionEncryptionMode")?,
                add_private_key: p.opt_str("AddPrivateKey")?.map(Secret::new),
            };
            let provider = t.create_saml_provider(ids, now, input)?;
            let mut out = Map::new();
            out.insert("SAMLProviderArn".into(), provider.arn.clone().into());
            if !provider.tags.is_empty() {
                out.insert("Tags".into(), render::tags(&provider.tags));
            }
            Value::Object(out)
        }
        "GetSAMLProvider" => saml_provider(t.get_saml_provider(p.str("SAMLProviderArn")?)?),
        "ListSAMLProviders" => {
            // AWS does not page this listing (its model has no `Marker`/`MaxItems`).
            let list: Vec<Value> = t
                .list_saml_providers()
                .into_iter()
                .map(|s| {
                    let mut entry = Map::new();
                    entry.insert("Arn".into(), s.arn.clone().into());
                    if let Some(at) = s.valid_until {
                        entry.insert("ValidUntil".into(), render::date(at));
                    }
                    entry.insert("CreateDate".into(), render::date(s.created_at));
                    Value::Object(entry)
                })
                .collect();
            json!({ "SAMLProviderList": list })
        }
        "UpdateSAMLProvider" => {
            refuse_identity_center(p)?;
            let arn = p.str("SAMLProviderArn")?;
            // Removing what cannot be set leaves nothing to do, but the flags must be booleans.
            p.opt_bool("RemoveContextProvider")?;
            p.opt_bool("RemoveIdentityCenterInstance")?;
            let input = UpdateSamlProviderInput {
                metadata_document: p.opt_string("SAMLMetadataDocument")?,
                assertion_encryption_mode: p.opt_string("AssertionEncryptionMode")?,
                add_private_key: p.opt_str("AddPrivateKey")?.map(Secret::new),
                remove_private_key: p.opt_string("RemovePrivateKey")?,
            };
            let provider = t.update_saml_provider(ids, now, arn, input)?;
            json!({ "SAMLProviderArn": provider.arn })
        }
        "DeleteSAMLProvider" => {
            t.delete_saml_provider(p.str("SAMLProviderArn")?)?;
            json!({})
        }
        "TagSAMLProvider" => {
            t.tag_saml_provider(p.str("SAMLProviderArn")?, &p.req_tags("Tags")?)?;
            json!({})
        }
        "UntagSAMLProvider" => {
            t.untag_saml_provider(p.str("SAMLProviderArn")?, &p.req_str_list("TagKeys")?)?;
            json!({})
        }
        "ListSAMLProviderTags" => {
            let provider = t.get_saml_provider(p.str("SAMLProviderArn")?)?;
            listing(p, "Tags", tag_items(&provider.tags), by("Key"))?
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// Refuses the members of IAM Identity Center's trusted identity propagation, which iamlet
/// does not host (`CreateSAMLProvider`, `UpdateSAMLProvider`, `UpdateOpenIDConnectProvider`).
pub(super) fn refuse_identity_center(p: Params<'_>) -> Result<(), AdminError> {
    for name in ["ContextProvider", "IdentityCenterInstanceArn"] {
        if p.is_present(name) {
            return Err(DirectoryError::InvalidInput(format!(
                "{name} is not supported: iamlet hosts no IAM Identity Center, so a provider cannot take part in trusted identity propagation."
            ))
            .into());
        }
    }
    Ok(())
}

/// Tags as listing items (`ListSAMLProviderTags`, `ListOpenIDConnectProviderTags`,
/// `ListMFADeviceTags`).
pub(super) fn tag_items(tags: &[crate::directory::Tag]) -> Vec<Value> {
    tags.iter()
        .map(|t| json!({"Key": t.key, "Value": t.value}))
        .collect()
}

/// `GetSAMLProvider`'s result, in the model's member order; tags sorted by key, as AWS
/// returns them.
fn saml_provider(s: &SamlProvider) -> Value {
    let mut out = Map::new();
    out.insert("SAMLProviderUUID".into(), s.uuid.clone().into());
    out.insert(
        "SAMLMetadataDocument".into(),
        s.metadata_document.clone().into(),
    );
    out.insert("CreateDate".into(), render::date(s.created_at));
    if let Some(at) = s.valid_until {
        out.insert("ValidUntil".into(), render::date(at));
    }
    if !s.tags.is_empty() {
        let mut tags = s.tags.clone();
        tags.sort_by(|a, b| a.key.cmp(&b.key));
        out.insert("Tags".into(), render::tags(&tags));
    }
    if let Some(mode) = &s.assertion_encryption_mode {
        out.insert("AssertionEncryptionMode".into(), mode.clone().into());
    }
    if !s.private_keys.is_empty() {
        let keys: Vec<Value> = s
            .private_keys
            .iter()
            .map(|k| json!({"KeyId": k.key_id, "Timestamp": render::date(k.added_at)}))
            .collect();
        out.insert("PrivateKeyList".into(), Value::Array(keys));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
