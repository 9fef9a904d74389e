//! OIDC identity providers, resource-based policies and the account alias.

use super::{merge_tags, quota_exceeded, remove_tags};
use crate::directory::{
    validate, DirectoryError, IdGenerator, IdPrefix, OidcProvider, ResourcePolicy, RootAccessKey,
    Secret, ServiceControlPolicy, Tag, Tenant,
};
use crate::policy::{ArnParts, PolicyDocument, PolicyKind};

/// Service control policies one account may have attached (AWS: five per target).
const MAX_SCPS: usize = 5;

/// The parameters of `CreateOpenIDConnectProvider`, plus the provider's signing keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOidcProviderInput {
    /// The issuer URL: `https://host[/path]`, no port, query or fragment, ≤ 255 characters.
    pub url: String,
    /// Accepted audiences: at most 100, each ≤ 255 characters.
    pub client_ids: Vec<String>,
    /// Certificate thumbprints: at most 5, each 40 hex digits.
    pub thumbprints: Vec<String>,
    /// The provider's signing keys, a JWKS document (`{"keys":[{"kty":...},...]}`).
    pub jwks: String,
    /// Tags (keys case-sensitive).
    pub tags: Vec<Tag>,
}

const MAX_CLIENT_IDS: usize = 100;
const MAX_THUMBPRINTS: usize = 5;

fn no_such_provider(arn: &str) -> DirectoryError {
    DirectoryError::NoSuchEntity(format!("OpenIDConnect Provider not found for arn {arn}"))
}

/// Checks an issuer URL and returns it without its scheme (the suffix of the provider ARN).
fn oidc_url(url: &str) -> Result<&str, DirectoryError> {
    validate::length(url, "url", 1, 255)?;
    let invalid = || DirectoryError::InvalidInput("Invalid Open ID Connect Provider URL".into());
    let rest = url.strip_prefix("https://").ok_or_else(invalid)?;
    let host = rest.split('/').next().unwrap_or_default();
    let ok = !host.is_empty()
        && !host.contains([':', '@'])
        && !rest.contains(['?', '#'])
        && rest.chars().all(|c| c.is_ascii_graphic());
    if !ok {
        return Err(invalid());
    }
    Ok(rest)
}

fn client_id(id: &str) -> Result<(), DirectoryError> {
    validate::length(id, "clientID", 1, 255)
}

fn thumbprints(list: &[String]) -> Result<(), DirectoryError> {
    if list.len() > MAX_THUMBPRINTS {
        return Err(DirectoryError::InvalidInput(
            "Thumbprint list must contain fewer than 5 entries.".into(),
        ));
    }
    for t in list {
        validate::length(t, "thumbprintList.member", 40, 40)?;
        if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DirectoryError::InvalidInput(format!(
                "Thumbprint {t} is not 40 hexadecimal digits."
            )));
        }
    }
    Ok(())
}

/// Checks that `jwks` is a JWKS document: an object whose `keys` is an array of objects that
/// each have a string `kty`.
fn jwks(text: &str) -> Result<(), DirectoryError> {
    let invalid =
        |why: &str| DirectoryError::InvalidInput(format!("The JWKS document is not valid: {why}."));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| invalid("it is not JSON"))?;
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| invalid("it has no `keys` array"))?;
    if !keys
        .iter()
        .all(|k| k.get("kty").is_some_and(serde_json::Value::is_string))
    {
        return Err(invalid("every key needs a `kty`"));
    }
    // The same parser sidecars verify tokens with: a key set it refuses (a private key
    // member, a malformed coordinate) is refused here, when the operator can fix it.
    crate::jose::Jwks::parse(text).map_err(|e| DirectoryError::InvalidInput(e.to_string()))?;
    Ok(())
}

// === impl Tenant ===

impl Tenant {
    /// `CreateOpenIDConnectProvider`.
    pub fn create_open_id_connect_provider(
        &mut self,
        now: i64,
        input: CreateOidcProviderInput,
    ) -> Result<&OidcProvider, DirectoryError> {
        let CreateOidcProviderInput {
            url,
            client_ids,
            thumbprints: prints,
            jwks: keys,
            tags,
        } = input;
        let suffix = oidc_url(&url)?.to_owned();
        if client_ids.len() > MAX_CLIENT_IDS {
            return Err(quota_exceeded(
                "ClientIdsPerOpenIdConnectProvider",
                MAX_CLIENT_IDS,
            ));
        }
        client_ids.iter().try_for_each(|c| client_id(c))?;
        thumbprints(&prints)?;
        jwks(&keys)?;
        merge_tags(
            &[],
            &tags,
            false,
            self.quotas.tags_per_entity,
            "TagsPerOpenIdConnectProvider",
        )?;
        if self.oidc_providers.contains_key(&suffix) {
            return Err(DirectoryError::EntityAlreadyExists(format!(
                "Provider with url {url} already exists."
            )));
        }
        if self.oidc_providers.len() >= self.quotas.oidc_providers {
            return Err(quota_exceeded(
                "OpenIdConnectProvidersPerAccount",
                self.quotas.oidc_providers,
            ));
        }
        let mut unique_ids: Vec<String> = Vec::with_capacity(client_ids.len());
        for id in client_ids {
            if !unique_ids.contains(&id) {
                unique_ids.push(id);
            }
        }
        let provider = OidcProvider {
            arn: format!("arn:aws:iam::{}:oidc-provider/{suffix}", self.account_id),
            url,
            client_ids: unique_ids,
            thumbprints: prints,
            jwks: keys,
            created_at: now,
            tags,
        };
        Ok(self.oidc_providers.entry(suffix).or_insert(provider))
    }

    fn provider_key(&self, arn: &str) -> Result<String, DirectoryError> {
        // Split with the policy language's splitter, so that every partition's ARN works.
        ArnParts::split(arn)
            .filter(|p| p.service() == "iam" && p.account() == self.account_id)
            .and_then(|p| p.resource().strip_prefix("oidc-provider/"))
            .filter(|suffix| self.oidc_providers.contains_key(*suffix))
            .map(str::to_owned)
            .ok_or_else(|| no_such_provider(arn))
    }

    fn provider_mut(&mut self, arn: &str) -> Result<&mut OidcProvider, DirectoryError> {
        let k = self.provider_key(arn)?;
        self.oidc_providers
            .get_mut(&k)
            .ok_or_else(|| no_such_provider(arn))
    }

    /// `GetOpenIDConnectProvider`.
    pub fn get_open_id_connect_provider(&self, arn: &str) -> Result<&OidcProvider, DirectoryError> {
        let k = self.provider_key(arn)?;
        self.oidc_providers
            .get(&k)
            .ok_or_else(|| no_such_provider(arn))
    }

    /// `ListOpenIDConnectProviders`.
    pub fn list_open_id_connect_providers(&self) -> Vec<&OidcProvider> {
        self.oidc_providers.values().collect()
    }

    /// `DeleteOpenIDConnectProvider`.
    pub fn delete_open_id_connect_provider(&mut self, arn: &str) -> Result<(), DirectoryError> {
        let k = self.provider_key(arn)?;
        self.oidc_providers.remove(&k);
        Ok(())
    }

    /// `AddClientIDToOpenIDConnectProvider`; adding a present id changes nothing.
    pub fn add_client_id_to_open_id_connect_provider(
        &mut self,
        arn: &str,
        id: &str,
    ) -> Result<(), DirectoryError> {
        client_id(id)?;
        let provider = self.provider_mut(arn)?;
        if provider.client_ids.iter().any(|c| c == id) {
            return Ok(());
        }
        if provider.client_ids.len() >= MAX_CLIENT_IDS {
            return Err(quota_exceeded(
                "ClientIdsPerOpenIdConnectProvider",
                MAX_CLIENT_IDS,
            ));
        }
        provider.client_ids.push(id.to_owned());
        Ok(())
    }

    /// `RemoveClientIDFromOpenIDConnectProvider`; removing an absent id changes nothing.
    pub fn remove_client_id_from_open_id_connect_provider(
        &mut self,
        arn: &str,
        id: &str,
    ) -> Result<(), DirectoryError> {
        client_id(id)?;
        self.provider_mut(arn)?.client_ids.retain(|c| c != id);
        Ok(())
    }

    /// `UpdateOpenIDConnectProviderThumbprint`: replaces the thumbprint list.
    pub fn update_open_id_connect_provider_thumbprint(
        &mut self,
        arn: &str,
        list: &[String],
    ) -> Result<(), DirectoryError> {
        thumbprints(list)?;
        self.provider_mut(arn)?.thumbprints = list.to_vec();
        Ok(())
    }

    /// Replaces the provider's signing keys (a JWKS document), which sidecars use to verify
    /// web identity tokens offline.
    pub fn update_open_id_connect_provider_jwks(
        &mut self,
        arn: &str,
        document: &str,
    ) -> Result<(), DirectoryError> {
        jwks(document)?;
        self.provider_mut(arn)?.jwks = document.to_owned();
        Ok(())
    }

    /// `TagOpenIDConnectProvider`: adds or replaces tags (keys case-sensitive).
    pub fn tag_open_id_connect_provider(
        &mut self,
        arn: &str,
        tags: &[Tag],
    ) -> Result<(), DirectoryError> {
        let quota = self.quotas.tags_per_entity;
        let provider = self.provider_mut(arn)?;
        provider.tags = merge_tags(
            &provider.tags,
            tags,
            false,
            quota,
            "TagsPerOpenIdConnectProvider",
        )?;
        Ok(())
    }

    /// `UntagOpenIDConnectProvider`: absent keys are ignored.
    pub fn untag_open_id_connect_provider(
        &mut self,
        arn: &str,
        keys: &[String],
    ) -> Result<(), DirectoryError> {
        validate::tag_keys(keys)?;
        remove_tags(&mut self.provider_mut(arn)?.tags, keys, false);
        Ok(())
    }

    /// `ListOpenIDConnectProviderTags`.
    pub fn list_open_id_connect_provider_tags(&self, arn: &str) -> Result<&[Tag], DirectoryError> {
        Ok(&self.get_open_id_connect_provider(arn)?.tags)
    }

    // --- resource policies ---

    /// Registers (or replaces) the resource-based policy of `resource_arn`.
    pub fn put_resource_policy(
        &mut self,
        resource_arn: &str,
        document: &str,
        now: i64,
    ) -> Result<(), DirectoryError> {
        if ArnParts::split(resource_arn).is_none() {
            return Err(DirectoryError::InvalidInput(format!(
                "ARN {resource_arn} is not valid."
            )));
        }
        validate::length(resource_arn, "resourceArn", 1, 2048)?;
        PolicyDocument::parse(document, PolicyKind::Resource)?;
        self.resource_policies.insert(
            resource_arn.to_owned(),
            ResourcePolicy {
                resource_arn: resource_arn.to_owned(),
                document: document.to_owned(),
                updated_at: now,
            },
        );
        Ok(())
    }

    fn no_such_resource_policy(resource_arn: &str) -> DirectoryError {
        DirectoryError::NoSuchEntity(format!(
            "The resource policy for {resource_arn} cannot be found."
        ))
    }

    /// The resource-based policy of `resource_arn`.
    pub fn get_resource_policy(
        &self,
        resource_arn: &str,
    ) -> Result<&ResourcePolicy, DirectoryError> {
        self.resource_policies
            .get(resource_arn)
            .ok_or_else(|| Self::no_such_resource_policy(resource_arn))
    }

    /// Removes the resource-based policy of `resource_arn`.
    pub fn delete_resource_policy(&mut self, resource_arn: &str) -> Result<(), DirectoryError> {
        self.resource_policies
            .remove(resource_arn)
            .map(|_| ())
            .ok_or_else(|| Self::no_such_resource_policy(resource_arn))
    }

    /// Every service control policy, ordered by lowercased name.
    pub fn list_service_control_policies(&self) -> Vec<&ServiceControlPolicy> {
        self.service_control_policies.values().collect()
    }

    /// Every registered resource-based policy, ordered by resource ARN.
    pub fn list_resource_policies(&self) -> Vec<&ResourcePolicy> {
        self.resource_policies.values().collect()
    }

    // --- service control policies (set by the platform's operator) ---

    /// Sets (or replaces) the service control policy `name`. AWS caps an SCP at 5,120
    /// characters and five per target.
    pub fn put_service_control_policy(
        &mut self,
        name: &str,
        document: &str,
        now: i64,
    ) -> Result<(), DirectoryError> {
        validate::name(name, "policyName", 128)?;
        validate::length(document, "policyDocument", 1, 5_120)?;
        PolicyDocument::parse(document, PolicyKind::Scp)?;
        let key = name.to_lowercase();
        if !self.service_control_policies.contains_key(&key)
            && self.service_control_policies.len() >= MAX_SCPS
        {
            return Err(quota_exceeded(
                "service control policies per account",
                MAX_SCPS,
            ));
        }
        self.service_control_policies.insert(
            key,
            ServiceControlPolicy {
                name: name.to_owned(),
                document: document.to_owned(),
                updated_at: now,
            },
        );
        Ok(())
    }

    /// The service control policy `name`.
    pub fn get_service_control_policy(
        &self,
        name: &str,
    ) -> Result<&ServiceControlPolicy, DirectoryError> {
        self.service_control_policies
            .get(&name.to_lowercase())
            .ok_or_else(|| Self::no_such_scp(name))
    }

    /// Detaches and forgets the service control policy `name`.
    pub fn delete_service_control_policy(&mut self, name: &str) -> Result<(), DirectoryError> {
        self.service_control_policies
            .remove(&name.to_lowercase())
            .map(|_| ())
            .ok_or_else(|| Self::no_such_scp(name))
    }

    fn no_such_scp(name: &str) -> DirectoryError {
        DirectoryError::NoSuchEntity(format!(
            "The service control policy with name {name} cannot be found."
        ))
    }

    // --- root credentials ---

    /// Creates the root user's access key, once: the result is the only time the secret is
    /// shown. A tenant that has one keeps it (`EntityAlreadyExists`).
    pub fn create_root_access_key(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
    ) -> Result<(String, String), DirectoryError> {
        if self.root_access_key.is_some() {
            return Err(DirectoryError::EntityAlreadyExists(
                "The root user already has an access key.".into(),
            ));
        }
        let access_key_id = ids.access_key_id(IdPrefix::AccessKey, &self.account_id);
        let secret = ids.secret_access_key();
        self.root_access_key = Some(RootAccessKey {
            access_key_id: access_key_id.clone(),
            secret: Secret::new(secret.clone()),
            created_at: now,
        });
        Ok((access_key_id, secret))
    }

    /// Deletes the root user's access key (a leaked one, or before creating a new one).
    pub fn delete_root_access_key(&mut self) -> Result<(), DirectoryError> {
        self.root_access_key
            .take()
            .map(|_| ())
            .ok_or_else(|| DirectoryError::NoSuchEntity("The root user has no access key.".into()))
    }

    // --- account alias ---

    /// `CreateAccountAlias`: sets (or replaces) the account's alias.
    pub fn set_account_alias(&mut self, alias: &str) -> Result<(), DirectoryError> {
        validate::account_alias(alias)?;
        self.alias = Some(alias.to_owned());
        Ok(())
    }

    /// `DeleteAccountAlias`.
    pub fn delete_account_alias(&mut self, alias: &str) -> Result<(), DirectoryError> {
        if self.alias.as_deref() != Some(alias) {
            return Err(DirectoryError::NoSuchEntity(format!(
                "The account alias {alias} cannot be found."
            )));
        }
        self.alias = None;
        Ok(())
    }
}
