//! Role sessions for a service principal, as EKS Pod Identity makes them: the service
//! (`pods.eks.amazonaws.com`) assumes the role on a pod's behalf, with the six session tags
//! EKS adds, after the pod's projected service-account token verified offline.
//!
//! - The token is verified with [`UnverifiedToken::verify`] as web identity tokens are (the
//!   same strict parser, algorithms and skew), against the keys of the tenant's OIDC provider
//!   for the cluster's issuer, but its `aud` must hold the audience the sidecar is configured
//!   with (EKS's `pods.eks.amazonaws.com`), not one of the provider's client ids, which are
//!   for `AssumeRoleWithWebIdentity`.
//! - The pod is read from the token's `kubernetes.io` claim (`namespace`, `serviceaccount.name`,
//!   `pod.name`, `pod.uid`), read only after the signature verified. A token without a pod
//!   (one not bound to a pod) is refused: the credentials are per pod.
//! - The role's trust policy must allow the service `sts:AssumeRole` and `sts:TagSession`,
//!   both evaluated with the tags as `aws:RequestTag/…` and `aws:TagKeys`; the session
//!   carries them, so `aws:PrincipalTag/kubernetes-namespace` and the others work in the
//!   role's policies.
//! - The session name is `eks-{cluster}-{pod name}-{pod uid}`, with the cluster and pod part
//!   cut so that the whole fits STS's 64 characters and the pod's uid is always whole. EKS
//!   documents `eks-{cluster}-{pod name}-{random UUID}`; iamlet's UUID is the pod's uid, so
//!   that a session (in CloudTrail-style logs, in `aws:userid`) names the pod it was made for.
//! - The session lasts six hours, as EKS Pod Identity's credentials do, or the role's maximum
//!   session duration when that is shorter.

use serde_json::Value;

use crate::authz::{Context, Principal};
use crate::directory::IdPrefix;
use crate::jose::{CompactJws, Jwks, SessionClaims, SessionSubject};
use crate::policy::{ContextValue, Timestamp};
use crate::snapshot::{PodIdentityEntry, TenantSnapshot};
use crate::sts::jwt::{JwtError, UnverifiedToken, MAX_TOKEN_CHARS};
use crate::sts::StsError;

use super::{
    action_denied, expiry, find_role, insert_role_tags, mint, packed_size, set_clock,
    set_request_tags,
};
use super::{trust_allows, IssueEnv, Issued};

/// How long EKS Pod Identity's credentials last.
const POD_SESSION_SECONDS: i32 = 6 * 3600;
/// STS's longest role session name.
const MAX_SESSION_NAME: usize = 64;

/// A pod, as its verified service-account token names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodToken {
    /// `iss`: the cluster's issuer.
    pub issuer: String,
    /// `sub` (`system:serviceaccount:{namespace}:{name}`).
    pub subject: String,
    /// `exp`.
    pub expires_at: Timestamp,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's service account.
    pub service_account: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's uid.
    pub pod_uid: String,
}

/// Why a pod's token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodTokenError {
    /// The token is malformed, badly signed, not yet valid, of an unknown issuer, or names no
    /// pod.
    #[error("{0}")]
    Invalid(String),
    /// `exp` has passed.
    #[error("{0}")]
    Expired(String),
    /// `aud` does not hold the configured audience.
    #[error("the service account token's audience is not {0}")]
    WrongAudience(String),
}

/// `AssumeRole` by a service principal on behalf of a pod.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRoleParams<'a> {
    /// The service principal (`pods.eks.amazonaws.com`).
    pub service: &'a str,
    /// The association that maps the pod to its role.
    pub association: &'a PodIdentityEntry,
    /// The pod.
    pub pod: &'a PodToken,
}

// === impl PodTokenError ===

impl From<JwtError> for PodTokenError {
    fn from(error: JwtError) -> Self {
        match error {
            JwtError::ExpiredToken { .. } => Self::Expired(error.to_string()),
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// Verifies a pod's projected service-account token against `jwks`, the keys of the provider
/// whose URL is `issuer_url`: signature, times, and that `aud` holds `audience`. Only then is
/// the pod read from its `kubernetes.io` claim.
pub fn verify_pod_token(
    token: &str,
    jwks: &Jwks,
    issuer_url: &str,
    audience: &str,
    now: Timestamp,
) -> Result<PodToken, PodTokenError> {
    let unverified = UnverifiedToken::parse(token)?;
    let claims = unverified
        .verify(jwks, issuer_url, &[audience.to_owned()], now)
        .map_err(|e| match e {
            // `verify` checks the audience last: the signature and the times passed.
            JwtError::InvalidIdentityToken(m) if m == "Incorrect token audience" => {
                PodTokenError::WrongAudience(audience.to_owned())
            }
            other => other.into(),
        })?;
    // The payload again, now that it is known genuine, for the nested claim the verified
    // claims leave out (they keep top-level strings only).
    let (_, payload) = CompactJws::parse(token, MAX_TOKEN_CHARS)
        .map_err(|e| PodTokenError::from(JwtError::from(e)))?;
    let k8s = payload.get("kubernetes.io");
    let field = |path: &[&str]| -> Result<String, PodTokenError> {
        let mut value = k8s;
        for part in path {
            value = value.and_then(|v| v.get(part));
        }
        value
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 253 && !s.contains(['\n', ':']))
            .map(str::to_owned)
            .ok_or_else(|| {
                PodTokenError::Invalid(format!(
                    "the service account token has no \"kubernetes.io\" claim {}",
                    path.join(".")
                ))
            })
    };
    let namespace = field(&["namespace"])?;
    let service_account = field(&["serviceaccount", "name"])?;
    let pod_name = field(&["pod", "name"])?;
    let pod_uid = field(&["pod", "uid"])?;
    if claims.subject != format!("system:serviceaccount:{namespace}:{service_account}") {
        return Err(PodTokenError::Invalid(
            "the service account token's subject does not name its service account".into(),
        ));
    }
    Ok(PodToken {
        issuer: claims.issuer,
        subject: claims.subject,
        expires_at: claims.expires_at,
        namespace,
        service_account,
        pod_name,
        pod_uid,
    })
}

/// The session name EKS Pod Identity gives: `eks-{cluster}-{pod}-{uid}`, within 64 characters
/// of `[\w+=,.@-]`, the uid kept whole.
pub fn pod_session_name(cluster: &str, pod_name: &str, pod_uid: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    // A Kubernetes uid is 36 characters; anything longer is cut, leaving room for the rest.
    let uid: String = clean(pod_uid).chars().take(40).collect();
    let room = MAX_SESSION_NAME - uid.len() - 1;
    let prefix: String = clean(&format!("eks-{cluster}-{pod_name}"))
        .chars()
        .take(room)
        .collect();
    format!("{prefix}-{uid}")
}

/// The six session tags EKS Pod Identity adds, in its order.
pub fn pod_session_tags(association: &PodIdentityEntry, pod: &PodToken) -> Vec<(String, String)> {
    vec![
        (
            "eks-cluster-arn".into(),
            association.cluster_arn.to_string(),
        ),
        (
            "eks-cluster-name".into(),
            association.cluster_name.to_string(),
        ),
        ("kubernetes-namespace".into(), pod.namespace.clone()),
        (
            "kubernetes-service-account".into(),
            pod.service_account.clone(),
        ),
        ("kubernetes-pod-name".into(), pod.pod_name.clone()),
        ("kubernetes-pod-uid".into(), pod.pod_uid.clone()),
    ]
}

/// `AssumeRole` by `p.service` for the pod `p.pod` of the association `p.association`: the
/// role's trust policy alone decides (a service principal has no identity policies), for
/// `sts:AssumeRole` and `sts:TagSession` with the six tags.
pub fn assume_role_for_service(
    snapshot: &TenantSnapshot,
    p: &ServiceRoleParams<'_>,
    env: &mut IssueEnv<'_>,
) -> Result<Issued, StsError> {
    let association = p.association;
    let principal = Principal::Service {
        name: p.service.into(),
    };
    let role = find_role(snapshot, &association.role_arn)
        .ok_or_else(|| action_denied(&principal, "sts:AssumeRole", &association.role_arn))?;
    let session_name = pod_session_name(&association.cluster_name, &p.pod.pod_name, &p.pod.pod_uid);
    let tags = pod_session_tags(association, p.pod);
    let packed = packed_size(None, &[], tags.iter().map(|(k, v)| (&**k, &**v)))?;

    let mut ctx = Context::new();
    set_clock(&mut ctx, env.now);
    ctx.insert(
        "sts:RoleSessionName",
        ContextValue::new(session_name.as_str()),
    );
    let request_tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (&**k, &**v)).collect();
    set_request_tags(&mut ctx, &request_tags, &[]);
    insert_role_tags(&mut ctx, role);
    trust_allows(
        role,
        snapshot,
        &principal,
        &ctx,
        &[("sts:AssumeRole", true), ("sts:TagSession", true)],
    )?;
    let duration =
        POD_SESSION_SECONDS.min(i32::try_from(role.max_session_duration).unwrap_or(i32::MAX));
    let claims = SessionClaims {
        tenant: snapshot.account_id().to_owned(),
        access_key_id: env
            .ids
            .access_key_id(IdPrefix::TemporaryAccessKey, snapshot.account_id()),
        token_id: env.ids.base32(26),
        subject: SessionSubject::Role {
            role_name: role.name.to_string(),
            role_id: role.role_id.to_string(),
            session_name: session_name.clone(),
            chained: false,
            federated_provider: None,
        },
        issued_at: env.now.epoch_seconds(),
        expires_at: expiry(env, duration),
        source_identity: None,
        mfa_authenticated_at: None,
        session_policy: None,
        policy_arns: Vec::new(),
        tags,
        transitive_tag_keys: Vec::new(),
    };
    mint(snapshot, role, &claims, &session_name, packed, env)
}

#[cfg(test)]
mod tests;
