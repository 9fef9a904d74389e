//! OIDC identity providers, resource-based policies (iamlet's own actions) and the account
//! alias.

use serde_json::{json, Value};

use super::params::Params;
use super::render::{self, by, itself, listing};
use crate::control_plane::AdminError;
use crate::directory::{
    CreateOidcProviderInput, IdGenerator, ResourcePolicy, ServiceControlPolicy, Tenant,
};

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise).
pub(super) fn run(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    now: i64,
    action: &str,
    p: Params<'_>,
) -> Result<Option<Value>, AdminError> {
    let empty = json!({});
    let result = match action {
        // --- OIDC providers ---
        "CreateOpenIDConnectProvider" => {
            let input = CreateOidcProviderInput {
                url: p.str("Url")?.to_owned(),
                client_ids: p.str_list("ClientIDList")?,
                thumbprints: p.str_list("ThumbprintList")?,
                jwks: p.str("Jwks")?.to_owned(),
                tags: p.tags("Tags")?,
            };
            let provider = t.create_open_id_connect_provider(now, input)?;
            let mut out = json!({"OpenIDConnectProviderArn": provider.arn});
            if let (false, Some(map)) = (provider.tags.is_empty(), out.as_object_mut()) {
                map.insert("Tags".into(), render::tags(&provider.tags));
            }
            out
        }
        "GetOpenIDConnectProvider" => {
            let arn = p.str("OpenIDConnectProviderArn")?;
            render::oidc_provider(t.get_open_id_connect_provider(arn)?)
        }
        "ListOpenIDConnectProviders" => {
            let list: Vec<Value> = t
                .list_open_id_connect_providers()
                .into_iter()
                .map(|o| json!({"Arn": o.arn}))
                .collect();
            json!({"OpenIDConnectProviderList": list})
        }
        "DeleteOpenIDConnectProvider" => {
            t.delete_open_id_connect_provider(p.str("OpenIDConnectProviderArn")?)?;
            empty
        }
        "AddClientIDToOpenIDConnectProvider" => {
            let arn = p.str("OpenIDConnectProviderArn")?;
            t.add_client_id_to_open_id_connect_provider(arn, p.str("ClientID")?)?;
            empty
        }
        "RemoveClientIDFromOpenIDConnectProvider" => {
            let arn = p.str("OpenIDConnectProviderArn")?;
            t.remove_client_id_from_open_id_connect_provider(arn, p.str("ClientID")?)?;
            empty
        }
        "UpdateOpenIDConnectProviderThumbprint" => {
            let arn = p.str("OpenIDConnectProviderArn")?;
            let list = p.req_str_list("ThumbprintList")?;
            t.update_open_id_connect_provider_thumbprint(arn, &list)?;
            empty
        }
        "TagOpenIDConnectProvider" => {
            let arn = p.str("OpenIDConnectProviderArn")?;
            t.tag_open_id_connect_provider(arn, &p.req_tags("Tags")?)?;
            empty
        }
        "UntagOpenIDConnectProvider" => {
            let arn = p.str("OpenIDConnectProviderArn")?;
            t.untag_open_id_connect_provider(arn, &p.req_str_list("TagKeys")?)?;
            empty
        }
        "ListOpenIDConnectProviderTags" => {
            let tags = t.list_open_id_connect_provider_tags(p.str("OpenIDConnectProviderArn")?)?;
            listing(p, "Tags", super::saml::tag_items(tags), by("Key"))?
        }
        "UpdateOpenIDConnectProvider" => {
            // The operation only sets or removes IAM Identity Center's trusted identity
            // propagation, which iamlet refuses to set; removing it, never set, changes
            // nothing once the provider is found.
            super::saml::refuse_identity_center(p)?;
            let arn = p.str("OpenIDConnectProviderArn")?;
            p.opt_bool("RemoveContextProvider")?;
            p.opt_bool("RemoveIdentityCenterInstance")?;
            t.get_open_id_connect_provider(arn)?;
            empty
        }
        "UpdateOpenIDConnectProviderJwks" => {
            let arn = p.str("OpenIDConnectProviderArn")?;
            t.update_open_id_connect_provider_jwks(arn, p.str("Jwks")?)?;
            empty
        }

        // --- resource policies ---
        "PutResourcePolicy" => {
            let arn = p.str("ResourceArn")?;
            t.put_resource_policy(arn, p.str("PolicyDocument")?, now)?;
            empty
        }
        "GetResourcePolicy" => {
            let policy = t.get_resource_policy(p.str("ResourceArn")?)?;
            json!({"ResourcePolicy": resource_policy(policy)})
        }
        "DeleteResourcePolicy" => {
            t.delete_resource_policy(p.str("ResourceArn")?)?;
            empty
        }
        "ListResourcePolicies" => {
            let policies = t.list_resource_policies();
            let items = policies.into_iter().map(resource_policy).collect();
            listing(p, "ResourcePolicies", items, by("ResourceArn"))?
        }

        // --- service control policies (operator only; see `admin_auth`) ---
        "PutServiceControlPolicy" => {
            t.put_service_control_policy(p.str("PolicyName")?, p.str("PolicyDocument")?, now)?;
            empty
        }
        "GetServiceControlPolicy" => {
            let policy = t.get_service_control_policy(p.str("PolicyName")?)?;
            json!({"Policy": scp(policy)})
        }
        "DeleteServiceControlPolicy" => {
            t.delete_service_control_policy(p.str("PolicyName")?)?;
            empty
        }
        "ListServiceControlPolicies" => {
            let policies = t.list_service_control_policies();
            let items = policies.into_iter().map(scp).collect();
            listing(p, "Policies", items, by("PolicyName"))?
        }

        // --- the root user's access key (the root user's or the operator's) ---
        "CreateRootAccessKey" => {
            let (id, secret) = t.create_root_access_key(ids, now)?;
            json!({"AccessKey": {"AccessKeyId": id, "SecretAccessKey": secret, "Status": "Active"}})
        }
        "DeleteRootAccessKey" => {
            t.delete_root_access_key()?;
            empty
        }

        // --- account alias ---
        "CreateAccountAlias" => {
            t.set_account_alias(p.str("AccountAlias")?)?;
            empty
        }
        "DeleteAccountAlias" => {
            t.delete_account_alias(p.str("AccountAlias")?)?;
            empty
        }
        "ListAccountAliases" => {
            let items = t.alias.iter().map(|a| Value::from(a.as_str())).collect();
            listing(p, "AccountAliases", items, itself)?
        }

        // --- session-token issuer keys: public parts only ---
        "RotateIssuerKey" => {
            let key = t.rotate_issuer_key(ids, now)?;
            json!({ "IssuerKey": issuer_key(key) })
        }
        "ListIssuerKeys" => {
            let items = t.issuer_keys.iter().map(issuer_key).collect();
            listing(p, "IssuerKeys", items, by("KeyId"))?
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

fn issuer_key(k: &crate::directory::IssuerKey) -> Value {
    use base64::Engine as _;
    json!({
        "KeyId": k.key_id,
        "Algorithm": "Ed25519",
        "PublicKey": base64::engine::general_purpose::STANDARD.encode(&k.public_key),
        "CreateDate": render::date(k.created_at),
        "Active": k.active,
    })
}

fn scp(p: &ServiceControlPolicy) -> Value {
    json!({
        "PolicyName": p.name,
        "PolicyDocument": p.document,
        "UpdateDate": render::date(p.updated_at),
    })
}

fn resource_policy(p: &ResourcePolicy) -> Value {
    json!({
        "ResourceArn": p.resource_arn,
        "PolicyDocument": p.document,
        "UpdateDate": render::date(p.updated_at),
    })
}
