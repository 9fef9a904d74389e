//! EKS Pod Identity-style associations: `CreatePodIdentityAssociation`,
//! `DescribePodIdentityAssociation`, `ListPodIdentityAssociations`,
//! `UpdatePodIdentityAssociation` and `DeletePodIdentityAssociation`, with EKS's REST-JSON
//! parameter and member names (`clusterName`, `namespace`, `serviceAccount`, `roleArn`,
//! `associationId`, `tags` as a map, `maxResults`, `nextToken`) and EKS's shapes: `association`
//! objects and `associations` summaries. Times are epoch seconds, as EKS's JSON has them.
//! iamlet adds `oidcProviderArn`: the tenant's provider that stands for the cluster's issuer.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::params::{invalid, Params};
use crate::control_plane::AdminError;
use crate::directory::{
    IdGenerator, PodIdentityAssociation, PodIdentityAssociationInput, Tenant,
    UpdatePodIdentityAssociation,
};

/// Runs `action` if it belongs to this area (`Ok(None)` otherwise). `map` is the raw
/// parameters object, for EKS's `tags` map.
pub(super) fn run(
    t: &mut Tenant,
    ids: &mut IdGenerator,
    now: i64,
    action: &str,
    p: Params<'_>,
    map: &Map<String, Value>,
) -> Result<Option<Value>, AdminError> {
    let result = match action {
        "CreatePodIdentityAssociation" => {
            let input = PodIdentityAssociationInput {
                cluster_name: p.str("clusterName")?.to_owned(),
                oidc_provider_arn: p.str("oidcProviderArn")?.to_owned(),
                namespace: p.str("namespace")?.to_owned(),
                service_account: p.str("serviceAccount")?.to_owned(),
                role_arn: p.str("roleArn")?.to_owned(),
                tags: tag_map(map)?,
            };
            let created = t.create_pod_identity_association(ids, now, input)?;
            json!({"association": association(created)})
        }
        "DescribePodIdentityAssociation" => {
            let found = t.describe_pod_identity_association(
                p.str("clusterName")?,
                p.str("associationId")?,
            )?;
            json!({"association": association(found)})
        }
        "ListPodIdentityAssociations" => {
            let max = p
                .opt_u32("maxResults")?
                .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
            let (page, next) = t.list_pod_identity_associations(
                p.str("clusterName")?,
                p.opt_str("namespace")?,
                p.opt_str("serviceAccount")?,
                max,
                p.opt_str("nextToken")?,
            )?;
            let summaries: Vec<Value> = page.into_iter().map(summary).collect();
            let mut out = json!({"associations": summaries});
            if let (Some(token), Some(obj)) = (next, out.as_object_mut()) {
                obj.insert("nextToken".into(), Value::String(token));
            }
            out
        }
        "UpdatePodIdentityAssociation" => {
            let update = UpdatePodIdentityAssociation {
                role_arn: p.opt_string("roleArn")?,
            };
            let updated = t.update_pod_identity_association(
                p.str("clusterName")?,
                p.str("associationId")?,
                now,
                update,
            )?;
            json!({"association": association(updated)})
        }
        "DeletePodIdentityAssociation" => {
            let deleted =
                t.delete_pod_identity_association(p.str("clusterName")?, p.str("associationId")?)?;
            json!({"association": association(&deleted)})
        }
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// EKS's `tags`: an object of string values (absent: none).
fn tag_map(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, AdminError> {
    const REASON: &str = "must be an object of string values";
    match map.get("tags") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(tags)) => tags
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|v| (k.clone(), v.to_owned()))
                    .ok_or_else(|| invalid("tags", REASON))
            })
            .collect(),
        Some(_) => Err(invalid("tags", REASON)),
    }
}

/// EKS's `PodIdentityAssociation`.
pub(crate) fn association(a: &PodIdentityAssociation) -> Value {
    json!({
        "clusterName": a.cluster_name,
        "namespace": a.namespace,
        "serviceAccount": a.service_account,
        "roleArn": a.role_arn,
        "associationArn": a.association_arn,
        "associationId": a.association_id,
        "tags": a.tags,
        "createdAt": a.created_at,
        "modifiedAt": a.modified_at,
        "oidcProviderArn": a.oidc_provider_arn,
    })
}

/// EKS's `PodIdentityAssociationSummary`.
fn summary(a: &PodIdentityAssociation) -> Value {
    json!({
        "clusterName": a.cluster_name,
        "namespace": a.namespace,
        "serviceAccount": a.service_account,
        "associationArn": a.association_arn,
        "associationId": a.association_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::control_plane::dispatch::{dispatch, Dispatched};
    use crate::control_plane::AdminError;
    use crate::directory::{IdGenerator, PasswordHasher, Tenant};

    const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"1","n":"AQAB","e":"AQAB"}]}"#;
    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
    const PROVIDER: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/c1";
    const ROLE: &str = "arn:aws:iam::111122223333:role/app";

    struct World {
        t: Tenant,
        ids: IdGenerator,
    }

    impl World {
        fn new() -> Self {
            let mut w = Self {
                t: Tenant::new("111122223333", 0),
                ids: IdGenerator::seeded(2),
            };
            w.ok(
                "CreateOpenIDConnectProvider",
                json!({"Url": "https://oidc.example.com/c1", "Jwks": JWKS}),
            );
            w.ok(
                "CreateRole",
                json!({"RoleName": "app", "AssumeRolePolicyDocument": TRUST}),
            );
            w
        }

        #[expect(clippy::needless_pass_by_value, reason = "callers pass json! literals")]
        fn call(&mut self, action: &str, parameters: Value) -> Result<Dispatched, AdminError> {
            dispatch(
                &mut self.t,
                &mut self.ids,
                PasswordHasher::with_iterations(2),
                1_700_000_000,
                action,
                &parameters,
            )
        }

        fn ok(&mut self, action: &str, parameters: Value) -> Value {
            self.call(action, parameters).unwrap().result
        }

        fn code(&mut self, action: &str, parameters: Value) -> String {
            self.call(action, parameters)
                .unwrap_err()
                .code()
                .to_string()
        }

        fn create(&mut self, sa: &str) -> String {
            let out = self.ok(
                "CreatePodIdentityAssociation",
                json!({"clusterName": "prod", "oidcProviderArn": PROVIDER, "namespace": "web",
                       "serviceAccount": sa, "roleArn": ROLE, "tags": {"team": "data"}}),
            );
            out["association"]["associationId"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    }

    #[test]
    fn associations_have_eks_shapes() {
        let mut w = World::new();
        let created = w
            .call(
                "CreatePodIdentityAssociation",
                json!({"clusterName": "prod", "oidcProviderArn": PROVIDER, "namespace": "web",
                       "serviceAccount": "api", "roleArn": ROLE, "tags": {"team": "data"}}),
            )
            .unwrap();
        assert!(created.changed);
        let a = &created.result["association"];
        let id = a["associationId"].as_str().unwrap();
        assert_eq!(
            *a,
            json!({
                "clusterName": "prod", "namespace": "web", "serviceAccount": "api",
                "roleArn": ROLE,
                "associationArn": format!("arn:aws:eks:us-east-1:111122223333:podidentityassociation/prod/{id}"),
                "associationId": id, "tags": {"team": "data"},
                "createdAt": 1_700_000_000, "modifiedAt": 1_700_000_000,
                "oidcProviderArn": PROVIDER,
            })
        );
        let described = w
            .call(
                "DescribePodIdentityAssociation",
                json!({"clusterName": "prod", "associationId": id}),
            )
            .unwrap();
        assert!(!described.changed, "Describe reads");
        assert_eq!(described.result["association"], *a);
    }

    #[test]
    fn lists_page_with_next_token() {
        let mut w = World::new();
        let mut ids: Vec<String> = ["a", "b", "c"].iter().map(|sa| w.create(sa)).collect();
        ids.sort();
        let first = w.ok(
            "ListPodIdentityAssociations",
            json!({"clusterName": "prod", "maxResults": 2}),
        );
        let page: Vec<&str> = first["associations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["associationId"].as_str().unwrap())
            .collect();
        assert_eq!(page, [ids[0].as_str(), ids[1].as_str()]);
        assert_eq!(first["associations"][0]["namespace"], "web");
        let token = first["nextToken"].as_str().unwrap().to_owned();
        let second = w.ok(
            "ListPodIdentityAssociations",
            json!({"clusterName": "prod", "maxResults": 2, "nextToken": token}),
        );
        assert_eq!(second["associations"][0]["associationId"], ids[2].as_str());
        assert!(second.get("nextToken").is_none());
        let filtered = w.ok(
            "ListPodIdentityAssociations",
            json!({"clusterName": "prod", "serviceAccount": "b"}),
        );
        assert_eq!(filtered["associations"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn update_and_delete() {
        let mut w = World::new();
        w.ok(
            "CreateRole",
            json!({"RoleName": "other", "AssumeRolePolicyDocument": TRUST}),
        );
        let id = w.create("api");
        let updated = w.ok(
            "UpdatePodIdentityAssociation",
            json!({"clusterName": "prod", "associationId": id,
                   "roleArn": "arn:aws:iam::111122223333:role/other"}),
        );
        assert_eq!(
            updated["association"]["roleArn"],
            "arn:aws:iam::111122223333:role/other"
        );
        let deleted = w.ok(
            "DeletePodIdentityAssociation",
            json!({"clusterName": "prod", "associationId": id}),
        );
        assert_eq!(deleted["association"]["associationId"], id.as_str());
        assert_eq!(
            w.code(
                "DescribePodIdentityAssociation",
                json!({"clusterName": "prod", "associationId": id})
            ),
            "ResourceNotFoundException"
        );
    }

    #[test]
    fn errors_are_eks_codes() {
        let mut w = World::new();
        w.create("api");
        let again = json!({"clusterName": "prod", "oidcProviderArn": PROVIDER, "namespace": "web",
                           "serviceAccount": "api", "roleArn": ROLE});
        assert_eq!(
            w.code("CreatePodIdentityAssociation", again),
            "ResourceInUseException"
        );
        let bad = json!({"clusterName": "prod", "oidcProviderArn": PROVIDER, "namespace": "Web!",
                         "serviceAccount": "api", "roleArn": ROLE});
        assert_eq!(
            w.code("CreatePodIdentityAssociation", bad),
            "InvalidParameterException"
        );
        let bad_tags = json!({"clusterName": "prod", "oidcProviderArn": PROVIDER, "namespace": "web",
                              "serviceAccount": "x", "roleArn": ROLE, "tags": ["a"]});
        assert_eq!(
            w.code("CreatePodIdentityAssociation", bad_tags),
            "InvalidParameterValue"
        );
        assert_eq!(
            w.code(
                "CreatePodIdentityAssociation",
                json!({"clusterName": "prod"})
            ),
            "MissingParameter"
        );
    }
}
