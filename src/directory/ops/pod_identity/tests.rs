//! Pod identity associations: creation, EKS's constraints and codes, listing, update, delete.

use std::collections::BTreeMap;

use crate::directory::{
    CreateOidcProviderInput, CreateRoleInput, DirectoryError, IdGenerator,
    PodIdentityAssociationInput, Tenant, UpdatePodIdentityAssociation,
};
use crate::error::AwsCode;

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"1","n":"AQAB","e":"AQAB"}]}"#;
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
const PROVIDER: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/C1";
const ROLE: &str = "arn:aws:iam::111122223333:role/app";

fn tenant() -> (Tenant, IdGenerator) {
    let mut t = Tenant::new(ACCOUNT, NOW);
    let mut ids = IdGenerator::seeded(7);
    t.create_open_id_connect_provider(
        NOW,
        CreateOidcProviderInput {
            url: "https://oidc.example.com/id/C1".into(),
            jwks: JWKS.into(),
            ..Default::default()
        },
    )
    .unwrap();
    for name in ["app", "other"] {
        t.create_role(
            &mut ids,
            NOW,
            CreateRoleInput {
                name: name.into(),
                assume_role_policy: TRUST.into(),
                ..Default::default()
            },
        )
        .unwrap();
    }
    (t, ids)
}

fn input(namespace: &str, service_account: &str) -> PodIdentityAssociationInput {
    PodIdentityAssociationInput {
        cluster_name: "prod".into(),
        oidc_provider_arn: PROVIDER.into(),
        namespace: namespace.into(),
        service_account: service_account.into(),
        role_arn: ROLE.into(),
        tags: BTreeMap::from([("team".to_owned(), "data".to_owned())]),
    }
}

fn create(t: &mut Tenant, ids: &mut IdGenerator, i: PodIdentityAssociationInput) -> String {
    t.create_pod_identity_association(ids, NOW, i)
        .unwrap()
        .association_id
        .clone()
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "callers pass the error they got"
)]
fn code(e: DirectoryError) -> AwsCode {
    e.code()
}

#[test]
fn creates_with_eks_shaped_id_and_arn() {
    let (mut t, mut ids) = tenant();
    let a = t
        .create_pod_identity_association(&mut ids, NOW, input("web", "api"))
        .unwrap()
        .clone();
    assert_eq!(a.association_id.len(), 19);
    assert!(a.association_id.starts_with("a-"));
    assert!(a.association_id[2..]
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(
        a.association_arn,
        format!(
            "arn:aws:eks:us-east-1:111122223333:podidentityassociation/prod/{}",
            a.association_id
        )
    );
    assert_eq!((a.created_at, a.modified_at), (NOW, NOW));
    assert_eq!(
        t.describe_pod_identity_association("prod", &a.association_id)
            .unwrap(),
        &a
    );
}

#[test]
fn one_association_per_service_account() {
    let (mut t, mut ids) = tenant();
    create(&mut t, &mut ids, input("web", "api"));
    let before = t.clone();
    let e = t
        .create_pod_identity_association(&mut ids, NOW, input("web", "api"))
        .unwrap_err();
    assert_eq!(code(e), AwsCode::ResourceInUseException);
    assert_eq!(t, before);
    // Another namespace or another cluster is another association.
    create(&mut t, &mut ids, input("jobs", "api"));
    let mut other = input("web", "api");
    other.cluster_name = "staging".into();
    create(&mut t, &mut ids, other);
    assert_eq!(t.pod_identity_associations.len(), 3);
}

#[test]
fn bad_parameters_are_invalid_parameter() {
    let (mut t, mut ids) = tenant();
    let cases: Vec<(PodIdentityAssociationInput, AwsCode)> = vec![
        (
            PodIdentityAssociationInput {
                cluster_name: "-bad".into(),
                ..input("web", "api")
            },
            AwsCode::InvalidParameterException,
        ),
        (input("Web", "api"), AwsCode::InvalidParameterException),
        (input("web-", "api"), AwsCode::InvalidParameterException),
        (input("web", "api_x"), AwsCode::InvalidParameterException),
        (input("web", ""), AwsCode::InvalidParameterException),
        (
            PodIdentityAssociationInput {
                role_arn: "arn:aws:iam::111122223333:role/missing".into(),
                ..input("web", "api")
            },
            AwsCode::InvalidParameterException,
        ),
        (
            PodIdentityAssociationInput {
                role_arn: "arn:aws:iam::444455556666:role/app".into(),
                ..input("web", "api")
            },
            AwsCode::InvalidParameterException,
        ),
        (
            PodIdentityAssociationInput {
                tags: BTreeMap::from([("aws:x".to_owned(), "y".to_owned())]),
                ..input("web", "api")
            },
            AwsCode::InvalidParameterException,
        ),
        (
            PodIdentityAssociationInput {
                oidc_provider_arn: "arn:aws:iam::111122223333:oidc-provider/nope".into(),
                ..input("web", "api")
            },
            AwsCode::ResourceNotFoundException,
        ),
    ];
    for (i, want) in cases {
        let before = t.clone();
        let e = t
            .create_pod_identity_association(&mut ids, NOW, i.clone())
            .unwrap_err();
        assert_eq!(code(e), want, "{i:?}");
        assert_eq!(t, before);
    }
}

#[test]
fn a_cluster_keeps_one_provider() {
    let (mut t, mut ids) = tenant();
    t.create_open_id_connect_provider(
        NOW,
        CreateOidcProviderInput {
            url: "https://oidc.example.com/id/C2".into(),
            jwks: JWKS.into(),
            ..Default::default()
        },
    )
    .unwrap();
    create(&mut t, &mut ids, input("web", "api"));
    let e = t
        .create_pod_identity_association(
            &mut ids,
            NOW,
            PodIdentityAssociationInput {
                oidc_provider_arn: "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/C2"
                    .into(),
                ..input("web", "worker")
            },
        )
        .unwrap_err();
    assert_eq!(code(e), AwsCode::InvalidParameterException);
}

#[test]
fn unknown_or_other_cluster_is_not_found() {
    let (mut t, mut ids) = tenant();
    let id = create(&mut t, &mut ids, input("web", "api"));
    for (cluster, id) in [("staging", id.as_str()), ("prod", "a-00000000000000000")] {
        assert_eq!(
            code(
                t.describe_pod_identity_association(cluster, id)
                    .unwrap_err()
            ),
            AwsCode::ResourceNotFoundException
        );
        assert_eq!(
            code(t.delete_pod_identity_association(cluster, id).unwrap_err()),
            AwsCode::ResourceNotFoundException
        );
    }
}

#[test]
fn update_changes_the_role_and_the_time() {
    let (mut t, mut ids) = tenant();
    let id = create(&mut t, &mut ids, input("web", "api"));
    let other = "arn:aws:iam::111122223333:role/other";
    let a = t
        .update_pod_identity_association(
            "prod",
            &id,
            NOW + 5,
            UpdatePodIdentityAssociation {
                role_arn: Some(other.into()),
            },
        )
        .unwrap();
    assert_eq!((a.role_arn.as_str(), a.modified_at), (other, NOW + 5));
    let before = t.clone();
    let e = t
        .update_pod_identity_association(
            "prod",
            &id,
            NOW + 6,
            UpdatePodIdentityAssociation {
                role_arn: Some("arn:aws:iam::111122223333:role/none".into()),
            },
        )
        .unwrap_err();
    assert_eq!(code(e), AwsCode::InvalidParameterException);
    assert_eq!(t, before);
}

#[test]
fn delete_frees_the_service_account() {
    let (mut t, mut ids) = tenant();
    let id = create(&mut t, &mut ids, input("web", "api"));
    assert_eq!(
        t.delete_pod_identity_association("prod", &id)
            .unwrap()
            .association_id,
        id
    );
    assert!(t.pod_identity_associations.is_empty());
    create(&mut t, &mut ids, input("web", "api"));
}

#[test]
fn lists_filter_and_page() {
    let (mut t, mut ids) = tenant();
    for sa in ["a", "b", "c"] {
        create(&mut t, &mut ids, input("web", sa));
    }
    create(&mut t, &mut ids, input("jobs", "a"));
    let (all, next) = t
        .list_pod_identity_associations("prod", None, None, None, None)
        .unwrap();
    assert_eq!((all.len(), next), (4, None));
    let (web, _) = t
        .list_pod_identity_associations("prod", Some("web"), None, None, None)
        .unwrap();
    assert_eq!(web.len(), 3);
    let (one, _) = t
        .list_pod_identity_associations("prod", Some("jobs"), Some("a"), None, None)
        .unwrap();
    assert_eq!(one.len(), 1);
    // Pages of 3 then 1, in id order, with nothing seen twice.
    let (first, next) = t
        .list_pod_identity_associations("prod", None, None, Some(3), None)
        .unwrap();
    let token = next.unwrap();
    let (second, last) = t
        .list_pod_identity_associations("prod", None, None, Some(3), Some(&token))
        .unwrap();
    assert_eq!((first.len(), second.len(), last), (3, 1, None));
    assert!(first.iter().all(|a| a.association_id < token));
    assert_eq!(second[0].association_id, token);
    for bad in [Some(0), Some(101)] {
        let e = t
            .list_pod_identity_associations("prod", None, None, bad, None)
            .unwrap_err();
        assert_eq!(code(e), AwsCode::InvalidParameterException);
    }
    let e = t
        .list_pod_identity_associations("prod", None, None, None, Some("zzz"))
        .unwrap_err();
    assert_eq!(code(e), AwsCode::InvalidParameterException);
    let (none, _) = t
        .list_pod_identity_associations("staging", None, None, None, None)
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn tenants_without_associations_still_load() {
    let (t, _) = tenant();
    let mut json: serde_json::Value = serde_json::to_value(&t).unwrap();
    json.as_object_mut()
        .unwrap()
        .remove("pod_identity_associations");
    let back: Tenant = serde_json::from_value(json).unwrap();
    assert_eq!(back, t);
}
