//! IAM actions by name: AWS's API surface over the directory's operations.
//!
//! An action is named as in AWS's IAM API (`CreateUser`, `AttachRolePolicy`, ...) and its
//! parameters are a JSON object with AWS's parameter names (`UserName`, `PolicyArn`, ...);
//! results are JSON shaped like AWS's responses (botocore's output shapes). iamlet adds
//! `PutResourcePolicy`, `GetResourcePolicy`, `DeleteResourcePolicy`, `ListResourcePolicies`,
//! `RevokeSessions`, `UpdateOpenIDConnectProviderJwks`, the `Jwks` parameter of
//! `CreateOpenIDConnectProvider`, and `Put`/`Get`/`Delete`/`ListServiceControlPolicies` (the
//! operator's: AWS sets SCPs from the organization, never from inside the account).
//!
//! | file | actions |
//! |---|---|
//! | `identities.rs` | users, groups, membership, roles, their tags, session revocation |
//! | `policies.rs` | managed policies, versions, attachments, inline policies, boundaries |
//! | `credentials.rs` | access keys, login profiles, virtual MFA devices |
//! | `federation.rs` | OIDC providers, resource policies, the account alias |
//! | `pod_identity.rs` | EKS Pod Identity-style associations (EKS's names and shapes) |
//! | `profiles.rs` | instance profiles, service-linked roles, STS preferences |
//! | `saml.rs` | SAML identity providers and their tags |
//! | `account.rs` | account authorization details and summary, policies granting a service, the password policy |
//!
//! Every listing (`List*`, and `GetGroup`'s users) is paginated as AWS's: `MaxItems` 1..=1000
//! (default 100) and an opaque `Marker` that names the sort key of the last item returned, so a
//! page stays right when items are added or removed between calls; `IsTruncated` and the next
//! `Marker` say when more remain (`render::Page`). An IAM user calling `GetUser` or the access-key actions without `UserName` acts on
//! itself: the admin service fills the parameter in before dispatch.

use serde_json::{Map, Value};

use crate::directory::{IdGenerator, PasswordHasher, Tenant};

use super::api_model::ApiModel;

use super::AdminError;

mod account;
mod analyzer;
#[cfg(test)]
mod coverage;
mod credentials;
mod federation;
mod findings;
mod identities;
mod params;
mod pod_identity;
mod policies;
mod profiles;
mod refused;
mod render;
mod saml;
mod simulate;
mod unused;
mod usage;

pub(crate) use credentials::hashes_passwords;
use params::Params;
pub(crate) use refused::refusal;
#[cfg(test)]
use refused::REFUSED;
pub(crate) use usage::PolicyGenerations;
pub(crate) use usage::{reads_usage, run_with_usage, UsageContext};

/// Every action [`dispatch`] runs; any other is `InvalidAction`.
pub(crate) const ACTIONS: &[&str] = &[
    // users
    "CreateUser",
    "GetUser",
    "ListUsers",
    "UpdateUser",
    "DeleteUser",
    "TagUser",
    "UntagUser",
    "ListUserTags",
    // groups
    "CreateGroup",
    "GetGroup",
    "ListGroups",
    "UpdateGroup",
    "DeleteGroup",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "ListGroupsForUser",
    // roles
    "CreateRole",
    "GetRole",
    "ListRoles",
    "UpdateRole",
    "UpdateRoleDescription",
    "UpdateAssumeRolePolicy",
    "DeleteRole",
    "TagRole",
    "UntagRole",
    "ListRoleTags",
    "RevokeSessions",
    // managed policies
    "CreatePolicy",
    "GetPolicy",
    "ListPolicies",
    "DeletePolicy",
    "ListEntitiesForPolicy",
    "CreatePolicyVersion",
    "GetPolicyVersion",
    "ListPolicyVersions",
    "SetDefaultPolicyVersion",
    "DeletePolicyVersion",
    "TagPolicy",
    "UntagPolicy",
    "ListPolicyTags",
    // attachments
    "AttachUserPolicy",
    "AttachGroupPolicy",
    "AttachRolePolicy",
    "DetachUserPolicy",
    "DetachGroupPolicy",
    "DetachRolePolicy",
    "ListAttachedUserPolicies",
    "ListAttachedGroupPolicies",
    "ListAttachedRolePolicies",
    // inline policies
    "PutUserPolicy",
    "PutGroupPolicy",
    "PutRolePolicy",
    "GetUserPolicy",
    "GetGroupPolicy",
    "GetRolePolicy",
    "DeleteUserPolicy",
    "DeleteGroupPolicy",
    "DeleteRolePolicy",
    "ListUserPolicies",
    "ListGroupPolicies",
    "ListRolePolicies",
    // permissions boundaries
    "PutUserPermissionsBoundary",
    "DeleteUserPermissionsBoundary",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    // access keys
    "CreateAccessKey",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "ListAccessKeys",
    "GetAccessKeyLastUsed",
    // login profiles
    "CreateLoginProfile",
    "UpdateLoginProfile",
    "DeleteLoginProfile",
    "GetLoginProfile",
    "ChangePassword",
    // MFA devices
    "CreateVirtualMFADevice",
    "EnableMFADevice",
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "ListMFADevices",
    "ListVirtualMFADevices",
    // OIDC providers
    "CreateOpenIDConnectProvider",
    "GetOpenIDConnectProvider",
    "ListOpenIDConnectProviders",
    "DeleteOpenIDConnectProvider",
    "AddClientIDToOpenIDConnectProvider",
    "RemoveClientIDFromOpenIDConnectProvider",
    "UpdateOpenIDConnectProviderThumbprint",
    "UpdateOpenIDConnectProviderJwks",
    // resource policies (iamlet)
    "PutResourcePolicy",
    "GetResourcePolicy",
    "DeleteResourcePolicy",
    "ListResourcePolicies",
    // service control policies (iamlet; changed by the operator only)
    "PutServiceControlPolicy",
    "GetServiceControlPolicy",
    "DeleteServiceControlPolicy",
    "ListServiceControlPolicies",
    // the root user's access key (iamlet; the root user or the operator)
    "CreateRootAccessKey",
    "DeleteRootAccessKey",
    // account alias
    "CreateAccountAlias",
    "DeleteAccountAlias",
    "ListAccountAliases",
    // session-token issuer keys (iamlet)
    "RotateIssuerKey",
    "ListIssuerKeys",
    // EKS Pod Identity-style associations (EKS's API, `eks:` actions)
    "CreatePodIdentityAssociation",
    "DescribePodIdentityAssociation",
    "ListPodIdentityAssociations",
    "UpdatePodIdentityAssociation",
    "DeletePodIdentityAssociation",
    // instance profiles
    "CreateInstanceProfile",
    "GetInstanceProfile",
    "ListInstanceProfiles",
    "DeleteInstanceProfile",
    "AddRoleToInstanceProfile",
    "RemoveRoleFromInstanceProfile",
    "ListInstanceProfilesForRole",
    "TagInstanceProfile",
    "UntagInstanceProfile",
    "ListInstanceProfileTags",
    // service-linked roles
    "CreateServiceLinkedRole",
    "DeleteServiceLinkedRole",
    "GetServiceLinkedRoleDeletionStatus",
    // STS preferences
    "SetSecurityTokenServicePreferences",
    // SAML providers, OIDC provider and MFA device tags, MFA device details
    "CreateSAMLProvider",
    "GetSAMLProvider",
    "ListSAMLProviders",
    "UpdateSAMLProvider",
    "DeleteSAMLProvider",
    "TagSAMLProvider",
    "UntagSAMLProvider",
    "ListSAMLProviderTags",
    "TagOpenIDConnectProvider",
    "UntagOpenIDConnectProvider",
    "ListOpenIDConnectProviderTags",
    "UpdateOpenIDConnectProvider",
    "TagMFADevice",
    "UntagMFADevice",
    "ListMFADeviceTags",
    "GetMFADevice",
    "ResyncMFADevice",
    // account-wide views and the account password policy
    "GetAccountAuthorizationDetails",
    "GetAccountSummary",
    "ListPoliciesGrantingServiceAccess",
    "UpdateAccountPasswordPolicy",
    "GetAccountPasswordPolicy",
    "DeleteAccountPasswordPolicy",
    // usage reported by the sidecars: Access Advisor and the credential report
    "GenerateServiceLastAccessedDetails",
    "GetServiceLastAccessedDetails",
    "GetServiceLastAccessedDetailsWithEntities",
    "GenerateCredentialReport",
    "GetCredentialReport",
    // the policy simulator
    "SimulatePrincipalPolicy",
    "SimulateCustomPolicy",
    "GetContextKeysForPrincipalPolicy",
    "GetContextKeysForCustomPolicy",
    // Access Analyzer's policy checks (issue 17 item 5)
    "ValidatePolicy",
    // IAM Access Analyzer's policy generation, from the reported usage
    "StartPolicyGeneration",
    "GetGeneratedPolicy",
    "ListPolicyGenerations",
    "CancelPolicyGeneration",
    // CloudTrail's event history (issue #17, item 7), read by the control plane from the
    // store (`control_plane::trail`).
    "LookupEvents",
    // IAM Access Analyzer's unused access analyzers and findings (`access-analyzer:` actions)
    "CreateAnalyzer",
    "GetAnalyzer",
    "ListAnalyzers",
    "UpdateAnalyzer",
    "DeleteAnalyzer",
    "UpdateFindings",
    "ListFindingsV2",
    "GetFindingV2",
    "GetFindingsStatistics",
];

/// Parameters whose values are secrets: the audit trail records `"<redacted>"` instead.
pub(crate) const SECRET_PARAMETERS: &[&str] = &[
    "Password",
    "NewPassword",
    "OldPassword",
    "AuthenticationCode1",
    "AuthenticationCode2",
    "TokenCode",
    "SecretAccessKey",
    "Base32StringSeed",
    "PrivateKey",
    "AddPrivateKey",
];

/// What a secret parameter's value becomes in the audit trail.
pub(crate) const REDACTED: &str = "<redacted>";

/// The outcome of one action.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    /// The result, shaped like AWS's response.
    pub result: Value,
    /// True when the tenant changed (the call is then recorded and published).
    pub changed: bool,
    /// The parameters as the audit trail records them: secrets replaced by `"<redacted>"`.
    pub audit_parameters: Value,
}

/// Runs `action` with `parameters` against `tenant`.
///
/// `parameters` is a JSON object (`null` counts as `{}`). Unknown actions are
/// `InvalidAction`, the model's operations iamlet does not serve `UnsupportedOperation` with
/// the reason (`dispatch/refused.rs` lists them). Parameters are checked against AWS's model first: absent
/// required ones are `MissingParameter`, unknown ones and values that break their shape's
/// constraints `ValidationError`, values of the wrong JSON type `InvalidParameterValue`; the
/// directory's refusals keep IAM's codes. A failed
/// call leaves the tenant unchanged. `changed` is true exactly for a mutating action that
/// succeeded (every action but `Get*` and `List*`).
pub fn dispatch(
    tenant: &mut Tenant,
    ids: &mut IdGenerator,
    hasher: PasswordHasher,
    now: i64,
    action: &str,
    parameters: &Value,
) -> Result<Dispatched, AdminError> {
    served(action)?;
    let empty = Map::new();
    let map = match parameters {
        Value::Object(map) => map,
        Value::Null => &empty,
        _ => {
            return Err(params::invalid(
                "parameters",
                "must be a JSON object of AWS parameter names to values",
            ))
        }
    };
    let model = ApiModel::embedded().map_err(|e| AdminError::Internal(e.to_owned()))?;
    if action == "ChangePassword" {
        // The admin service names the caller as `UserName` (a password change is always the
        // caller's own); AWS's model has no such member.
        let mut named = map.clone();
        named.remove("UserName");
        model.check_input(action, &named, SECRET_PARAMETERS)?;
    } else if analyzer::ANALYZER_ACTIONS.contains(&action) {
        // Access Analyzer answers any bad parameter with its `ValidationException`.
        model
            .check_input(action, map, SECRET_PARAMETERS)
            .map_err(|e| analyzer::validation(e.to_string()))?;
    } else {
        model.check_input(action, map, SECRET_PARAMETERS)?;
    }
    let p = Params::new(map);
    let result = if let Some(v) = identities::run(tenant, ids, now, action, p)? {
        v
    } else if let Some(v) = policies::run(tenant, ids, now, action, p)? {
        v
    } else if let Some(v) = credentials::run(tenant, ids, hasher, now, action, p)? {
        v
    } else if let Some(v) = federation::run(tenant, ids, now, action, p)? {
        v
    } else if let Some(v) = pod_identity::run(tenant, ids, now, action, p, map)? {
        v
    } else if let Some(v) = profiles::run(tenant, ids, now, action, p)? {
        v
    } else if let Some(v) = saml::run(tenant, ids, now, action, p)? {
        v
    } else if let Some(v) = account::run(tenant, action, p)? {
        v
    } else if let Some(v) = simulate::run(tenant, action, p, map)? {
        v
    } else if let Some(v) = findings::run(action, p)? {
        v
    } else if let Some(v) = analyzer::run(tenant, now, action, p, map)? {
        v
    } else {
        return Err(AdminError::InvalidAction(action.to_owned()));
    };
    let mut result = result;
    let mut audit_parameters = redact(&Value::Object(map.clone()));
    // Policies with security warnings are stored, as in AWS; the warnings are returned and
    // recorded with the change.
    findings::attach(action, map, &mut result, &mut audit_parameters);
    Ok(Dispatched {
        result,
        changed: is_mutating(action),
        audit_parameters,
    })
}

/// Whether `action` is one the control plane runs: `UnsupportedOperation` with the reason for
/// an operation of the model iamlet refuses (`refused::REFUSED`), `InvalidAction` for any other it
/// does not know.
pub(crate) fn served(action: &str) -> Result<(), AdminError> {
    if let Some(reason) = refusal(action) {
        return Err(AdminError::Unsupported {
            action: action.to_owned(),
            reason,
        });
    }
    if ACTIONS.contains(&action) {
        Ok(())
    } else {
        Err(AdminError::InvalidAction(action.to_owned()))
    }
}

/// Whether an action changes the tenant: all but `Get*`, `List*`, (EKS's) `Describe*`, the
/// policy simulator's `Simulate*`, and the reports and Access Advisor jobs (`Generate*`), which
/// are made from the tenant, never changes to it.
pub(crate) fn is_mutating(action: &str) -> bool {
    !(action.starts_with("Get")
        || action.starts_with("List")
        || action.starts_with("Describe")
        || action.starts_with("Simulate")
        || action.starts_with("Lookup")
        || matches!(
            action,
            "GenerateCredentialReport" | "GenerateServiceLastAccessedDetails"
        )
        || action == "ValidatePolicy"
        || matches!(action, "StartPolicyGeneration" | "CancelPolicyGeneration"))
}

/// `value` with the value of every [`SECRET_PARAMETERS`] member, at any depth, replaced by
/// [`REDACTED`].
pub(crate) fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if SECRET_PARAMETERS.contains(&k.as_str()) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
