//! What an admin action is authorized on: the resource ARN and the condition keys AWS's
//! Service Authorization Reference lists for IAM's actions.
//!
//! The resource is the entity the action names, with its path as stored (a user created
//! under `/eng/` is `arn:aws:iam::A:user/eng/alice`); an entity that does not exist yet
//! (or no longer) is named with the path the request gives, `/` otherwise, so that the
//! authorization is decided before `NoSuchEntity` is, as AWS does. Listings and account-wide
//! actions are on `*`.

use serde_json::Value;

use crate::authz::Context;
use crate::directory::{Tag, Tenant};
use crate::policy::ContextValue;

/// The resource and action-specific condition keys of one admin action.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The resource ARN (or `*`).
    pub resource: String,
    /// `iam:PolicyARN`, `iam:PermissionsBoundary`, `aws:ResourceTag/*`, `aws:RequestTag/*`,
    /// `aws:TagKeys`, as the action defines them.
    pub context: Context,
}

/// The entity kinds admin actions act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
    Role,
    Policy,
    Mfa,
    OidcProvider,
    SamlProvider,
    Resource,
    Account,
    /// EKS's pod identity associations: `eks:` actions on the cluster or the association.
    PodIdentity,
    /// Instance profiles, by `InstanceProfileName`.
    InstanceProfile,
    /// A service-linked role named by its service (`CreateServiceLinkedRole`) or by a
    /// deletion task (`GetServiceLinkedRoleDeletionStatus`).
    ServiceLinkedRole,
    /// The user, group or role the `Arn` parameter names (`ListPoliciesGrantingServiceAccess`).
    ByArn,
    /// The user, group or role whose policies the simulator reads (`PolicySourceArn`).
    PolicySource,
    /// IAM Access Analyzer's analyzers: `access-analyzer:` actions on the analyzer, named by
    /// `analyzerName` or `analyzerArn` (`ListAnalyzers` on `*`).
    Analyzer,
}

/// The Access Analyzer actions, authorized as `access-analyzer:<Action>`.
const ANALYZER_ACTIONS: &[&str] = &[
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

/// The kind of entity `action` acts on, and the parameter naming it.
fn kind_of(action: &str) -> Kind {
    match action {
        a if ANALYZER_ACTIONS.contains(&a) => Kind::Analyzer,
        "SimulatePrincipalPolicy" | "GetContextKeysForPrincipalPolicy" => Kind::PolicySource,
        a if a.contains("PodIdentityAssociation") => Kind::PodIdentity,
        "ListInstanceProfiles" => Kind::Account,
        "ListInstanceProfilesForRole" => Kind::Role,
        a if a.contains("InstanceProfile") => Kind::InstanceProfile,
        "CreateServiceLinkedRole" | "GetServiceLinkedRoleDeletionStatus" => Kind::ServiceLinkedRole,
        "ListPoliciesGrantingServiceAccess" => Kind::ByArn,
        "CreateRootAccessKey" | "DeleteRootAccessKey" => Kind::Account,
        // CloudTrail's event history is the account's (`cloudtrail:LookupEvents` on `*`).
        "LookupEvents" => Kind::Account,
        "GetAccessKeyLastUsed" | "ChangePassword" => Kind::User,
        "CreateVirtualMFADevice" | "DeleteVirtualMFADevice" => Kind::Mfa,
        "TagMFADevice" | "UntagMFADevice" | "ListMFADeviceTags" => Kind::Mfa,
        "PutResourcePolicy" | "GetResourcePolicy" | "DeleteResourcePolicy" => Kind::Resource,
        a if a.starts_with("List")
            && matches!(
                a,
                "ListUsers"
                    | "ListGroups"
                    | "ListRoles"
                    | "ListPolicies"
                    | "ListVirtualMFADevices"
                    | "ListOpenIDConnectProviders"
                    | "ListResourcePolicies"
                    | "ListAccountAliases"
                    | "ListIssuerKeys"
                    | "ListServiceControlPolicies"
                    | "ListSAMLProviders"
            ) =>
        {
            Kind::Account
        }
        a if a.contains("OpenIDConnectProvider") => Kind::OidcProvider,
        a if a.contains("SAMLProvider") => Kind::SamlProvider,
        // Membership is authorized on the group, as in AWS.
        "AddUserToGroup" | "RemoveUserFromGroup" => Kind::Group,
        a if a.ends_with("GroupPolicy") || a.ends_with("GroupPolicies") || a.ends_with("Group") => {
            Kind::Group
        }
        a if a.contains("Role") || a == "RevokeSessions" => Kind::Role,
        a if a.contains("PolicyVersion")
            || matches!(
                a,
                "CreatePolicy"
                    | "GetPolicy"
                    | "DeletePolicy"
                    | "ListEntitiesForPolicy"
                    | "TagPolicy"
                    | "UntagPolicy"
                    | "ListPolicyTags"
            ) =>
        {
            Kind::Policy
        }
        a if a.contains("User")
            || a.contains("AccessKey")
            || a.contains("LoginProfile")
            || a.contains("MFADevice")
            || a == "ListGroupsForUser" =>
        {
            Kind::User
        }
        _ => Kind::Account,
    }
}

/// The ARN of the service-linked role `CreateServiceLinkedRole` creates (the service's role
/// name and path, with the custom suffix), or whose deletion task
/// `GetServiceLinkedRoleDeletionStatus` names (`task/aws-service-role/{service}/{role}/{uuid}`);
/// `None` for an unknown service or a malformed task id.
fn service_linked_role_arn(tenant: &Tenant, action: &str, params: &Value) -> Option<String> {
    let s = |name: &str| params.get(name).and_then(Value::as_str);
    if action == "CreateServiceLinkedRole" {
        let spec = crate::directory::ServiceLinkedRoleSpec::find(s("AWSServiceName")?)?;
        let name = spec.role_name_with(s("CustomSuffix").filter(|x| !x.is_empty()));
        return Some(tenant.arn("role", &spec.path(), &name));
    }
    let rest = s("DeletionTaskId")?.strip_prefix("task/aws-service-role/")?;
    let mut parts = rest.split('/');
    let (service, role) = (parts.next()?, parts.next()?);
    let path = format!("/aws-service-role/{service}/");
    (!service.is_empty() && !role.is_empty()).then(|| tenant.arn("role", &path, role))
}

/// Actions whose request carries `iam:PolicyARN` (the policy attached or detached).
const POLICY_ARN_ACTIONS: &[&str] = &[
    "AttachUserPolicy",
    "AttachGroupPolicy",
    "AttachRolePolicy",
    "DetachUserPolicy",
    "DetachGroupPolicy",
    "DetachRolePolicy",
];

/// Actions whose request carries `iam:PermissionsBoundary`: the boundary being set, or the
/// target's current one.
const BOUNDARY_ACTIONS: &[&str] = &[
    "CreateUser",
    "CreateRole",
    "PutUserPermissionsBoundary",
    "PutRolePermissionsBoundary",
    "DeleteUserPermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "AttachUserPolicy",
    "AttachRolePolicy",
    "DetachUserPolicy",
    "DetachRolePolicy",
    "PutUserPolicy",
    "PutRolePolicy",
    "DeleteUserPolicy",
    "DeleteRolePolicy",
];

/// The actions whose `PermissionsBoundary` parameter is the boundary being set.
const SETS_BOUNDARY: &[&str] = &[
    "CreateUser",
    "CreateRole",
    "PutUserPermissionsBoundary",
    "PutRolePermissionsBoundary",
];

/// The second resource a rename or move is authorized on: AWS requires permission on both
/// the entity's current ARN and the ARN it will have (`UpdateUser` with `NewUserName` or
/// `NewPath`, `UpdateGroup` likewise).
pub(super) fn renamed_target(tenant: &Tenant, action: &str, params: &Value) -> Option<String> {
    let s = |name: &str| {
        params
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let (kind, entity) = match action {
        "UpdateUser" => {
            let user = tenant.users.get(&s("UserName")?.to_lowercase());
            ("user", user.map(|u| (u.name.as_str(), u.path.as_str())))
        }
        "UpdateGroup" => {
            let group = tenant.groups.get(&s("GroupName")?.to_lowercase());
            ("group", group.map(|g| (g.name.as_str(), g.path.as_str())))
        }
        _ => return None,
    };
    let (name, path) = entity.unwrap_or_default();
    let new_name = s(if kind == "user" {
        "NewUserName"
    } else {
        "NewGroupName"
    });
    let new_path = s("NewPath");
    if new_name.is_none() && new_path.is_none() {
        return None;
    }
    Some(tenant.arn(
        kind,
        new_path.unwrap_or(if path.is_empty() { "/" } else { path }),
        new_name.unwrap_or(name),
    ))
}

/// The target of `action` with `params` in `tenant`.
pub fn target(tenant: &Tenant, action: &str, params: &Value) -> Target {
    let s = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or_default();
    let path = || {
        let p = s("Path");
        if p.is_empty() {
            "/".to_owned()
        } else {
            p.to_owned()
        }
    };
    let mut context = Context::new();
    let mut boundary: Option<String> = None;
    let mut resource_tags: &[Tag] = &[];
    let resource = match kind_of(action) {
        Kind::User => {
            let name = if action == "GetAccessKeyLastUsed" {
                tenant
                    .find_access_key(s("AccessKeyId"))
                    .map(|(u, _)| u.name.clone())
                    .unwrap_or_default()
            } else if action == "GetMFADevice" && s("UserName").is_empty() {
                // Without a user (the operator's or the root user's call), the device's own.
                tenant
                    .mfa_devices
                    .get(s("SerialNumber"))
                    .and_then(|d| d.user.clone())
                    .unwrap_or_default()
            } else {
                s("UserName").to_owned()
            };
            match tenant.users.get(&name.to_lowercase()) {
                Some(user) => {
                    boundary.clone_from(&user.permissions_boundary);
                    resource_tags = &user.tags;
                    user.arn.clone()
                }
                None => tenant.arn("user", &path(), &name),
            }
        }
        Kind::Group => {
            let name = s("GroupName");
            match tenant.groups.get(&name.to_lowercase()) {
                Some(group) => group.arn.clone(),
                None => tenant.arn("group", &path(), name),
            }
        }
        Kind::Role => {
            let name = s("RoleName");
            match tenant.roles.get(&name.to_lowercase()) {
                Some(role) => {
                    boundary.clone_from(&role.permissions_boundary);
                    resource_tags = &role.tags;
                    role.arn.clone()
                }
                None => tenant.arn("role", &path(), name),
            }
        }
        Kind::Policy => {
            if action == "CreatePolicy" {
                tenant.arn("policy", &path(), s("PolicyName"))
            } else {
                let arn = s("PolicyArn");
                if let Some(policy) = tenant.policies.values().find(|p| p.arn == arn) {
                    resource_tags = &policy.tags;
                }
                arn.to_owned()
            }
        }
        Kind::Mfa => {
            if action == "CreateVirtualMFADevice" {
                tenant.arn("mfa", &path(), s("VirtualMFADeviceName"))
            } else {
                if let Some(device) = tenant.mfa_devices.get(s("SerialNumber")) {
                    resource_tags = &device.tags;
                }
                s("SerialNumber").to_owned()
            }
        }
        Kind::OidcProvider => {
            if action == "CreateOpenIDConnectProvider" {
                let url = s("Url");
                let host = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"))
                    .unwrap_or(url);
                format!(
                    "arn:aws:iam::{}:oidc-provider/{}",
                    tenant.account_id,
                    host.trim_end_matches('/')
                )
            } else {
                let arn = s("OpenIDConnectProviderArn");
                if let Some(provider) = tenant.oidc_providers.values().find(|p| p.arn == arn) {
                    resource_tags = &provider.tags;
                }
                arn.to_owned()
            }
        }
        Kind::InstanceProfile => {
            let name = s("InstanceProfileName");
            match tenant.instance_profiles.get(&name.to_lowercase()) {
                Some(profile) => {
                    resource_tags = &profile.tags;
                    profile.arn.clone()
                }
                None => tenant.arn("instance-profile", &path(), name),
            }
        }
        Kind::ServiceLinkedRole => {
            let service = s("AWSServiceName");
            if action == "CreateServiceLinkedRole" && !service.is_empty() {
                context.insert("iam:AWSServiceName", ContextValue::new(service));
            }
            service_linked_role_arn(tenant, action, params).unwrap_or_default()
        }
        Kind::SamlProvider => {
            if action == "CreateSAMLProvider" {
                tenant.arn("saml-provider/", "", s("Name"))
            } else {
                let arn = s("SAMLProviderArn");
                // The provider's own ARN (names match case-insensitively, as the directory
                // finds them), so a policy is matched against the entity acted on.
                let name = arn.split_once(":saml-provider/").map(|(_, n)| n);
                match name.and_then(|n| tenant.saml_providers.get(&n.to_lowercase())) {
                    Some(provider) if arn.starts_with(&tenant.arn("", "", "")) => {
                        resource_tags = &provider.tags;
                        provider.arn.clone()
                    }
                    _ => arn.to_owned(),
                }
            }
        }
        Kind::Resource => s("ResourceArn").to_owned(),
        // Access Advisor's job is authorized on the user, group, role or policy it reports on.
        Kind::Account if action == "GenerateServiceLastAccessedDetails" => s("Arn").to_owned(),
        Kind::PolicySource => s("PolicySourceArn").to_owned(),
        Kind::Analyzer if action == "ListAnalyzers" => "*".to_owned(),
        Kind::Analyzer => match params.get("analyzerArn").and_then(Value::as_str) {
            Some(arn) => arn.to_owned(),
            None => format!(
                "arn:aws:access-analyzer:{}:{}:analyzer/{}",
                crate::directory::ANALYZER_REGION,
                tenant.account_id,
                s("analyzerName")
            ),
        },
        Kind::Account => "*".to_owned(),
        Kind::ByArn => s("Arn").to_owned(),
        Kind::PodIdentity => {
            let (cluster, id) = (s("clusterName"), s("associationId"));
            let region = crate::directory::EKS_REGION;
            let account = &tenant.account_id;
            match action {
                "CreatePodIdentityAssociation" | "ListPodIdentityAssociations" => {
                    format!("arn:aws:eks:{region}:{account}:cluster/{cluster}")
                }
                _ => match tenant
                    .pod_identity_associations
                    .get(id)
                    .filter(|a| a.cluster_name == cluster)
                {
                    Some(a) => {
                        for (key, value) in &a.tags {
                            context.insert(
                                &format!("aws:ResourceTag/{key}"),
                                ContextValue::new(value.as_str()),
                            );
                        }
                        a.association_arn.clone()
                    }
                    None => format!(
                        "arn:aws:eks:{region}:{account}:podidentityassociation/{cluster}/{id}"
                    ),
                },
            }
        }
    };
    let resource = if resource.is_empty() {
        "*".to_owned()
    } else {
        resource
    };

    if POLICY_ARN_ACTIONS.contains(&action) {
        context.insert("iam:PolicyARN", ContextValue::new(s("PolicyArn")));
    }
    if BOUNDARY_ACTIONS.contains(&action) {
        // The boundary the request sets (creating an entity or putting a boundary), else
        // the one the target has. Only those actions read the parameter: on any other, a
        // caller could name the boundary its policy asks for and be believed.
        let value = if SETS_BOUNDARY.contains(&action) {
            Some(s("PermissionsBoundary").to_owned()).filter(|b| !b.is_empty())
        } else {
            boundary
        };
        if let Some(value) = value {
            context.insert("iam:PermissionsBoundary", ContextValue::new(value));
        }
    }
    let iam_tagged = matches!(kind_of(action), Kind::User | Kind::Role);
    for tag in resource_tags {
        let value = ContextValue::new(tag.value.as_str());
        if iam_tagged {
            context.insert(&format!("iam:ResourceTag/{}", tag.key), value.clone());
        }
        context.insert(&format!("aws:ResourceTag/{}", tag.key), value);
    }
    if !(action.starts_with("Create") || action.starts_with("Tag") || action.starts_with("Untag")) {
        return Target { resource, context };
    }
    let mut tag_keys = Vec::new();
    // EKS's tags are a map.
    if let Some(tags) = params.get("tags").and_then(Value::as_object) {
        for (key, value) in tags {
            let value = value.as_str().unwrap_or_default();
            context.insert(&format!("aws:RequestTag/{key}"), ContextValue::new(value));
            tag_keys.push(ContextValue::new(key.as_str()));
        }
    }
    if let Some(tags) = params.get("Tags").and_then(Value::as_array) {
        for tag in tags {
            let key = tag.get("Key").and_then(Value::as_str).unwrap_or_default();
            let value = tag.get("Value").and_then(Value::as_str).unwrap_or_default();
            context.insert(&format!("aws:RequestTag/{key}"), ContextValue::new(value));
            tag_keys.push(ContextValue::new(key));
        }
    }
    if let Some(keys) = params.get("TagKeys").and_then(Value::as_array) {
        tag_keys.extend(keys.iter().filter_map(Value::as_str).map(ContextValue::new));
    }
    if !tag_keys.is_empty() {
        context.insert_multi("aws:TagKeys", tag_keys);
    }
    Target { resource, context }
}

/// The service prefix of an admin action's IAM action: `eks` for the pod identity
/// associations (`eks:CreatePodIdentityAssociation`), `access-analyzer` for Access Analyzer's
/// operations (`access-analyzer:ValidatePolicy`), `cloudtrail` for the event history
/// (`cloudtrail:LookupEvents`), `iam` for the rest.
pub(super) fn service_prefix(action: &str) -> &'static str {
    match kind_of(action) {
        Kind::PodIdentity => "eks",
        Kind::Analyzer => "access-analyzer",
        _ if matches!(
            action,
            "ValidatePolicy"
                | "StartPolicyGeneration"
                | "GetGeneratedPolicy"
                | "ListPolicyGenerations"
                | "CancelPolicyGeneration"
        ) =>
        {
            "access-analyzer"
        }
        _ if action == "LookupEvents" => "cloudtrail",
        _ => "iam",
    }
}

/// The role an action passes to a service, which needs `iam:PassRole` on it as in AWS
/// (EKS's `CreatePodIdentityAssociation` and `UpdatePodIdentityAssociation`).
pub(super) fn passed_role<'a>(action: &str, params: &'a Value) -> Option<&'a str> {
    matches!(
        action,
        "CreatePodIdentityAssociation" | "UpdatePodIdentityAssociation"
    )
    .then(|| params.get("roleArn").and_then(Value::as_str))
    .flatten()
    .filter(|r| !r.is_empty())
}

/// The role `AddRoleToInstanceProfile` places in a profile: AWS requires `iam:PassRole` on
/// it from the caller, since whoever launches an instance with the profile gets the role's
/// credentials. Named by its stored ARN (path included), or at `/` if it does not exist.
pub(super) fn instance_profile_passed_role(
    tenant: &Tenant,
    action: &str,
    params: &Value,
) -> Option<String> {
    if action != "AddRoleToInstanceProfile" {
        return None;
    }
    let name = params
        .get("RoleName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())?;
    Some(match tenant.roles.get(&name.to_lowercase()) {
        Some(role) => role.arn.clone(),
        None => tenant.arn("role", "/", name),
    })
}

/// Whether the account password policy gives `user` (the calling IAM user) `action` without
/// a policy: with `AllowUsersToChangePassword`, AWS lets every IAM user change its own
/// password and view the password policy.
pub(super) fn granted_by_password_policy(
    tenant: &Tenant,
    user: Option<&str>,
    action: &str,
    params: &Value,
) -> bool {
    let Some(user) = user else { return false };
    let allowed = tenant
        .password_policy
        .is_some_and(|p| p.allow_users_to_change_password);
    let own = || {
        params
            .get("UserName")
            .and_then(Value::as_str)
            .is_some_and(|named| named.eq_ignore_ascii_case(user))
    };
    allowed
        && match action {
            "ChangePassword" => own(),
            "GetAccountPasswordPolicy" => true,
            _ => false,
        }
}

/// Actions a tenant's own principals may never run, whatever their policies say: only the
/// platform's operator sets a tenant's SCPs, as only an organization's management account
/// does in AWS.
pub fn is_operator_only(action: &str) -> bool {
    matches!(
        action,
        "PutServiceControlPolicy" | "DeleteServiceControlPolicy"
    )
}

/// Actions where an IAM user who leaves out `UserName` acts on itself (AWS: "if you do not
/// specify a user name, IAM determines the user name implicitly based on the AWS access key
/// ID signing the request").
pub fn defaults_to_caller(action: &str) -> bool {
    matches!(
        action,
        "GetUser"
            | "CreateAccessKey"
            | "UpdateAccessKey"
            | "DeleteAccessKey"
            | "ListAccessKeys"
            | "ListMFADevices"
            | "GetLoginProfile"
            | "GetMFADevice"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{CreatePolicyInput, CreateRoleInput, CreateUserInput, IdGenerator};
    use crate::policy::KeyValues;
    use serde_json::json;

    const BOUNDARY: &str = "arn:aws:iam::111122223333:policy/DevBoundary";

    fn tenant() -> Tenant {
        let mut t = Tenant::new("111122223333", 0);
        let mut ids = IdGenerator::seeded(1);
        t.create_user(
            &mut ids,
            0,
            CreateUserInput {
                name: "Alice".into(),
                path: Some("/eng/".into()),
                permissions_boundary: None,
                tags: vec![Tag {
                    key: "team".into(),
                    value: "blue".into(),
                }],
            },
        )
        .unwrap();
        t.create_role(
            &mut ids,
            0,
            CreateRoleInput {
                name: "app".into(),
                path: Some("/svc/".into()),
                assume_role_policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}]}"#.into(),
                ..CreateRoleInput::default()
            },
        )
        .unwrap();
        t
    }

    fn value(ctx: &Context, key: &str) -> Option<String> {
        match ctx.get(key)? {
            KeyValues::Single(v) => Some(v.as_str().to_owned()),
            KeyValues::Multi(vs) => vs.first().map(|v| v.as_str().to_owned()),
        }
    }

    fn resource(action: &str, params: &Value) -> String {
        target(&tenant(), action, params).resource
    }

    #[test]
    fn existing_entities_are_named_with_their_stored_path() {
        assert_eq!(
            resource("DeleteUser", &json!({"UserName": "alice"})),
            "arn:aws:iam::111122223333:user/eng/Alice"
        );
        assert_eq!(
            resource("PutRolePolicy", &json!({"RoleName": "APP"})),
            "arn:aws:iam::111122223333:role/svc/app"
        );
    }

    #[test]
    fn new_entities_are_named_with_the_requested_path() {
        assert_eq!(
            resource("CreateUser", &json!({"UserName": "bob", "Path": "/ops/"})),
            "arn:aws:iam::111122223333:user/ops/bob"
        );
        assert_eq!(
            resource("CreateGroup", &json!({"GroupName": "admins"})),
            "arn:aws:iam::111122223333:group/admins"
        );
        assert_eq!(
            resource("CreatePolicy", &json!({"PolicyName": "P", "Path": "/x/"})),
            "arn:aws:iam::111122223333:policy/x/P"
        );
        assert_eq!(
            resource(
                "CreateOpenIDConnectProvider",
                &json!({"Url": "https://oidc.example.com/id/"})
            ),
            "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id"
        );
        assert_eq!(
            resource(
                "CreateVirtualMFADevice",
                &json!({"VirtualMFADeviceName": "m"})
            ),
            "arn:aws:iam::111122223333:mfa/m"
        );
    }

    #[test]
    fn membership_is_on_the_group_and_listings_on_everything() {
        assert_eq!(
            resource(
                "AddUserToGroup",
                &json!({"GroupName": "admins", "UserName": "alice"})
            ),
            "arn:aws:iam::111122223333:group/admins"
        );
        assert_eq!(
            resource("ListGroupsForUser", &json!({"UserName": "alice"})),
            "arn:aws:iam::111122223333:user/eng/Alice"
        );
        for action in [
            "ListUsers",
            "ListRoles",
            "ListPolicies",
            "CreateAccountAlias",
        ] {
            assert_eq!(resource(action, &json!({})), "*", "{action}");
        }
        assert_eq!(
            resource(
                "AttachRolePolicy",
                &json!({"RoleName": "app", "PolicyArn": BOUNDARY})
            ),
            "arn:aws:iam::111122223333:role/svc/app"
        );
        assert_eq!(
            resource("CreatePolicyVersion", &json!({"PolicyArn": BOUNDARY})),
            BOUNDARY
        );
    }

    #[test]
    fn condition_keys_follow_the_action() {
        let t = tenant();
        let created = target(
            &t,
            "CreateUser",
            &json!({"UserName": "bob", "PermissionsBoundary": BOUNDARY,
                    "Tags": [{"Key": "cost", "Value": "42"}]}),
        );
        let first = |key: &str| value(&created.context, key);
        assert_eq!(first("iam:PermissionsBoundary").as_deref(), Some(BOUNDARY));
        assert_eq!(first("aws:RequestTag/cost").as_deref(), Some("42"));
        assert_eq!(first("aws:TagKeys").as_deref(), Some("cost"));
        assert_eq!(first("iam:PolicyARN"), None);

        let attach = target(
            &t,
            "AttachUserPolicy",
            &json!({"UserName": "alice", "PolicyArn": "arn:aws:iam::aws:policy/IAMReadOnlyAccess"}),
        );
        let first = |key: &str| value(&attach.context, key);
        assert_eq!(
            first("iam:PolicyARN").as_deref(),
            Some("arn:aws:iam::aws:policy/IAMReadOnlyAccess")
        );
        // Alice has no boundary: the key is absent, so `StringEquals` on it fails.
        assert_eq!(first("iam:PermissionsBoundary"), None);
        assert_eq!(first("aws:ResourceTag/team").as_deref(), Some("blue"));
    }

    #[test]
    fn a_boundary_named_in_the_request_counts_only_where_it_is_being_set() {
        // The delegated-admin escape: naming the expected boundary on an attachment to a
        // user who has none must not satisfy `iam:PermissionsBoundary`.
        let t = tenant();
        let forged = target(
            &t,
            "AttachUserPolicy",
            &json!({"UserName": "alice", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
                    "PermissionsBoundary": BOUNDARY, "Tags": [{"Key": "k", "Value": "v"}]}),
        );
        assert_eq!(value(&forged.context, "iam:PermissionsBoundary"), None);
        assert_eq!(value(&forged.context, "aws:RequestTag/k"), None);
        assert_eq!(
            value(&forged.context, "iam:ResourceTag/team").as_deref(),
            Some("blue")
        );
    }

    #[test]
    fn a_rename_or_move_is_also_authorized_on_the_new_arn() {
        let t = tenant();
        let moved = renamed_target(
            &t,
            "UpdateUser",
            &json!({"UserName": "alice", "NewPath": "/admins/"}),
        );
        assert_eq!(
            moved.as_deref(),
            Some("arn:aws:iam::111122223333:user/admins/Alice")
        );
        let renamed = renamed_target(
            &t,
            "UpdateUser",
            &json!({"UserName": "alice", "NewUserName": "root2"}),
        );
        assert_eq!(
            renamed.as_deref(),
            Some("arn:aws:iam::111122223333:user/eng/root2")
        );
        assert_eq!(
            renamed_target(&t, "UpdateUser", &json!({"UserName": "alice"})),
            None
        );
        assert_eq!(
            renamed_target(&t, "GetUser", &json!({"UserName": "alice"})),
            None
        );
    }

    #[test]
    fn a_targets_current_boundary_is_the_key_for_actions_on_it() {
        let mut t = tenant();
        t.create_policy(
            &mut IdGenerator::seeded(2),
            0,
            CreatePolicyInput {
                name: "DevBoundary".into(),
                document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#.into(),
                ..CreatePolicyInput::default()
            },
        )
        .unwrap();
        t.put_user_permissions_boundary("alice", BOUNDARY).unwrap();
        for (action, params) in [
            ("PutUserPolicy", json!({"UserName": "alice"})),
            (
                "DeleteUserPermissionsBoundary",
                json!({"UserName": "alice"}),
            ),
            // Putting another boundary names the new one.
            (
                "PutUserPermissionsBoundary",
                json!({"UserName": "alice", "PermissionsBoundary": "arn:aws:iam::111122223333:policy/Other"}),
            ),
        ] {
            let got = target(&t, action, &params);
            let got = value(&got.context, "iam:PermissionsBoundary");
            let expected = if action == "PutUserPermissionsBoundary" {
                "arn:aws:iam::111122223333:policy/Other"
            } else {
                BOUNDARY
            };
            assert_eq!(got.as_deref(), Some(expected), "{action}");
        }
    }

    #[test]
    fn analyzer_actions_are_access_analyzer_actions_on_the_analyzer() {
        let t = tenant();
        let arn = "arn:aws:access-analyzer:us-east-1:111122223333:analyzer/unused";
        for action in [
            "CreateAnalyzer",
            "ListFindingsV2",
            "UpdateFindings",
            "ListAnalyzers",
        ] {
            assert_eq!(service_prefix(action), "access-analyzer", "{action}");
        }
        let by_name = json!({"analyzerName": "unused", "tags": {"team": "sec"}});
        assert_eq!(resource("GetAnalyzer", &by_name), arn);
        assert_eq!(
            resource("ListFindingsV2", &json!({"analyzerArn": arn})),
            arn
        );
        assert_eq!(resource("ListAnalyzers", &json!({})), "*");
        let ctx = target(&t, "CreateAnalyzer", &by_name).context;
        assert_eq!(value(&ctx, "aws:RequestTag/team").as_deref(), Some("sec"));
    }

    #[test]
    fn pod_identity_actions_are_eks_actions_that_pass_the_role() {
        let t = tenant();
        assert_eq!(service_prefix("CreatePodIdentityAssociation"), "eks");
        assert_eq!(service_prefix("DescribePodIdentityAssociation"), "eks");
        assert_eq!(service_prefix("CreateRole"), "iam");
        assert_eq!(service_prefix("ValidatePolicy"), "access-analyzer");
        assert_eq!(service_prefix("StartPolicyGeneration"), "access-analyzer");
        assert_eq!(service_prefix("GetGeneratedPolicy"), "access-analyzer");
        assert_eq!(service_prefix("LookupEvents"), "cloudtrail");
        let params = json!({
            "clusterName": "prod", "roleArn": "arn:aws:iam::111122223333:role/app",
            "tags": {"team": "data"}
        });
        assert_eq!(
            passed_role("CreatePodIdentityAssociation", &params),
            Some("arn:aws:iam::111122223333:role/app")
        );
        assert_eq!(passed_role("DeletePodIdentityAssociation", &params), None);
        let ctx = target(&t, "CreatePodIdentityAssociation", &params).context;
        assert_eq!(value(&ctx, "aws:RequestTag/team").as_deref(), Some("data"));
        assert_eq!(value(&ctx, "aws:TagKeys").as_deref(), Some("team"));
    }

    #[test]
    fn instance_profiles_carry_their_tags_and_service_linked_roles_their_service() {
        let mut t = tenant();
        t.create_instance_profile(
            &mut IdGenerator::seeded(4),
            0,
            crate::directory::CreateInstanceProfileInput {
                name: "Web".into(),
                path: Some("/ec2/".into()),
                tags: vec![Tag {
                    key: "env".into(),
                    value: "prod".into(),
                }],
            },
        )
        .unwrap();
        let target = super::target(
            &t,
            "AddRoleToInstanceProfile",
            &json!({"InstanceProfileName": "web", "RoleName": "app"}),
        );
        assert_eq!(
            target.resource,
            "arn:aws:iam::111122223333:instance-profile/ec2/Web"
        );
        assert_eq!(
            value(&target.context, "aws:ResourceTag/env").as_deref(),
            Some("prod")
        );
        assert_eq!(value(&target.context, "iam:ResourceTag/env"), None);

        let params = json!({"AWSServiceName": "autoscaling.amazonaws.com", "CustomSuffix": "blue"});
        let target = super::target(&t, "CreateServiceLinkedRole", &params);
        assert_eq!(
            target.resource,
            "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_blue"
        );
        assert_eq!(
            value(&target.context, "iam:AWSServiceName").as_deref(),
            Some("autoscaling.amazonaws.com")
        );
        assert_eq!(
            instance_profile_passed_role(
                &t,
                "AddRoleToInstanceProfile",
                &json!({"InstanceProfileName": "web", "RoleName": "APP"})
            )
            .as_deref(),
            Some("arn:aws:iam::111122223333:role/svc/app")
        );
        assert_eq!(
            instance_profile_passed_role(
                &t,
                "RemoveRoleFromInstanceProfile",
                &json!({"InstanceProfileName": "web", "RoleName": "app"})
            ),
            None
        );
        // An unknown service or a malformed task names no role: authorized on `*`.
        for (action, params) in [
            (
                "CreateServiceLinkedRole",
                json!({"AWSServiceName": "nope.example.com"}),
            ),
            (
                "GetServiceLinkedRoleDeletionStatus",
                json!({"DeletionTaskId": "task/other"}),
            ),
        ] {
            assert_eq!(super::target(&t, action, &params).resource, "*", "{action}");
        }
    }

    #[test]
    fn every_dispatched_action_is_on_its_entity_or_else_on_everything() {
        // The actions AWS authorizes on `*` (no resource type); every other action names the
        // entity its parameters name, so a new action that fell through to `*` fails here.
        const ACCOUNT_WIDE: &[&str] = &[
            "ListUsers",
            "ListGroups",
            "ListRoles",
            "ListPolicies",
            "ListVirtualMFADevices",
            "ListOpenIDConnectProviders",
            "ListResourcePolicies",
            "ListAccountAliases",
            "CreateAccountAlias",
            "DeleteAccountAlias",
            "RotateIssuerKey",
            "ListIssuerKeys",
            "PutServiceControlPolicy",
            "GetServiceControlPolicy",
            "DeleteServiceControlPolicy",
            "ListServiceControlPolicies",
            "CreateRootAccessKey",
            "DeleteRootAccessKey",
            "ListInstanceProfiles",
            "SetSecurityTokenServicePreferences",
            "ListSAMLProviders",
            "GetAccountAuthorizationDetails",
            "GetAccountSummary",
            "UpdateAccountPasswordPolicy",
            "GetAccountPasswordPolicy",
            "DeleteAccountPasswordPolicy",
            "GetServiceLastAccessedDetails",
            "GetServiceLastAccessedDetailsWithEntities",
            "GenerateCredentialReport",
            "GetCredentialReport",
            "SimulateCustomPolicy",
            "GetContextKeysForCustomPolicy",
            "ValidatePolicy",
            "StartPolicyGeneration",
            "GetGeneratedPolicy",
            "ListPolicyGenerations",
            "CancelPolicyGeneration",
            "LookupEvents",
            "ListAnalyzers",
        ];
        let mut t = tenant();
        let alice_key = t
            .create_access_key(&mut IdGenerator::seeded(3), 0, "alice")
            .unwrap()
            .access_key_id;
        for action in crate::control_plane::dispatch::ACTIONS {
            let params = json!({
                "UserName": "alice", "GroupName": "g", "RoleName": "app",
                "PolicyArn": BOUNDARY, "PolicyName": "P", "SerialNumber": "arn:aws:iam::111122223333:mfa/m",
                "VirtualMFADeviceName": "m", "OpenIDConnectProviderArn": "arn:aws:iam::111122223333:oidc-provider/o",
                "Url": "https://o", "ResourceArn": "arn:aws:s3:::b", "AccessKeyId": alice_key,
                "clusterName": "prod", "associationId": "a-1",
                "InstanceProfileName": "ip", "AWSServiceName": "autoscaling.amazonaws.com",
                "DeletionTaskId": "task/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling/u",
                "Name": "s", "SAMLProviderArn": "arn:aws:iam::111122223333:saml-provider/s",
                "Arn": "arn:aws:iam::111122223333:user/eng/Alice",
            "PolicySourceArn": "arn:aws:iam::111122223333:user/eng/Alice",
                "analyzerName": "unused"
            });
            let r = target(&t, action, &params).resource;
            if ACCOUNT_WIDE.contains(action) {
                assert_eq!(r, "*", "{action}");
            } else {
                // An entity of the tenant, named (not an empty name after its kind).
                assert!(
                    (r.starts_with("arn:aws:iam::111122223333:")
                        || r.starts_with("arn:aws:eks:us-east-1:111122223333:")
                        || r.starts_with("arn:aws:access-analyzer:us-east-1:111122223333:"))
                        && !r.ends_with('/')
                        || r == "arn:aws:s3:::b",
                    "{action}: {r}"
                );
            }
        }
    }

    #[test]
    fn every_dispatched_action_names_exactly_the_arn_aws_authorizes_it_on() {
        // Issue #13, item 12: each action's resource, exactly, by the resource type AWS's
        // Service Authorization Reference gives it (iamlet's own actions by the entity they
        // change). A new action must be listed here; a wrong ARN for any action fails.
        const A: &str = "arn:aws:iam::111122223333";
        let user = format!("{A}:user/eng/Alice");
        let group = format!("{A}:group/g");
        let role = format!("{A}:role/svc/app");
        let boundary = BOUNDARY.to_owned();
        let new_policy = format!("{A}:policy/P");
        let mfa = format!("{A}:mfa/m");
        let oidc = format!("{A}:oidc-provider/o");
        let bucket = "arn:aws:s3:::b".to_owned();
        let everything = "*".to_owned();
        let cluster = "arn:aws:eks:us-east-1:111122223333:cluster/prod".to_owned();
        let association =
            "arn:aws:eks:us-east-1:111122223333:podidentityassociation/prod/a-1".to_owned();
        let saml = format!("{A}:saml-provider/s");
        let instance_profile = format!("{A}:instance-profile/ip");
        let service_linked = format!(
            "{A}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
        );
        let analyzer = "arn:aws:access-analyzer:us-east-1:111122223333:analyzer/unused".to_owned();
        let table: [(&String, &[&str]); 15] = [
            (
                &analyzer,
                &[
                    "CreateAnalyzer",
                    "GetAnalyzer",
                    "UpdateAnalyzer",
                    "DeleteAnalyzer",
                    "UpdateFindings",
                    "ListFindingsV2",
                    "GetFindingV2",
                    "GetFindingsStatistics",
                ],
            ),
            (
                &instance_profile,
                &[
                    "AddRoleToInstanceProfile",
                    "CreateInstanceProfile",
                    "DeleteInstanceProfile",
                    "GetInstanceProfile",
                    "ListInstanceProfileTags",
                    "RemoveRoleFromInstanceProfile",
                    "TagInstanceProfile",
                    "UntagInstanceProfile",
                ],
            ),
            (
                &service_linked,
                &[
                    "CreateServiceLinkedRole",
                    "GetServiceLinkedRoleDeletionStatus",
                ],
            ),
            (
                &cluster,
                &[
                    "CreatePodIdentityAssociation",
                    "ListPodIdentityAssociations",
                ],
            ),
            (
                &association,
                &[
                    "DescribePodIdentityAssociation",
                    "UpdatePodIdentityAssociation",
                    "DeletePodIdentityAssociation",
                ],
            ),
            (
                &user,
                &[
                    "AttachUserPolicy",
                    "ChangePassword",
                    "CreateAccessKey",
                    "CreateLoginProfile",
                    "CreateUser",
                    "DeactivateMFADevice",
                    "DeleteAccessKey",
                    "DeleteLoginProfile",
                    "DeleteUser",
                    "DeleteUserPermissionsBoundary",
                    "DeleteUserPolicy",
                    "DetachUserPolicy",
                    "EnableMFADevice",
                    "GetMFADevice",
                    "ResyncMFADevice",
                    "GetAccessKeyLastUsed",
                    "GetLoginProfile",
                    "GetUser",
                    "GetUserPolicy",
                    "ListAccessKeys",
                    "ListAttachedUserPolicies",
                    "ListGroupsForUser",
                    "ListMFADevices",
                    "ListUserPolicies",
                    "ListUserTags",
                    "PutUserPermissionsBoundary",
                    "PutUserPolicy",
                    "TagUser",
                    "UntagUser",
                    "UpdateAccessKey",
                    "UpdateLoginProfile",
                    "UpdateUser",
                    "ListPoliciesGrantingServiceAccess",
                    "GenerateServiceLastAccessedDetails",
                    "SimulatePrincipalPolicy",
                    "GetContextKeysForPrincipalPolicy",
                ],
            ),
            (
                &group,
                &[
                    "AddUserToGroup",
                    "AttachGroupPolicy",
                    "CreateGroup",
                    "DeleteGroup",
                    "DeleteGroupPolicy",
                    "DetachGroupPolicy",
                    "GetGroup",
                    "GetGroupPolicy",
                    "ListAttachedGroupPolicies",
                    "ListGroupPolicies",
                    "PutGroupPolicy",
                    "RemoveUserFromGroup",
                    "UpdateGroup",
                ],
            ),
            (
                &role,
                &[
                    "AttachRolePolicy",
                    "CreateRole",
                    "DeleteRole",
                    "DeleteRolePermissionsBoundary",
                    "DeleteRolePolicy",
                    "DetachRolePolicy",
                    "GetRole",
                    "GetRolePolicy",
                    "ListAttachedRolePolicies",
                    "ListRolePolicies",
                    "ListRoleTags",
                    "PutRolePermissionsBoundary",
                    "PutRolePolicy",
                    "RevokeSessions",
                    "TagRole",
                    "UntagRole",
                    "UpdateAssumeRolePolicy",
                    "UpdateRole",
                    "UpdateRoleDescription",
                    "ListInstanceProfilesForRole",
                    "DeleteServiceLinkedRole",
                ],
            ),
            (
                &boundary,
                &[
                    "CreatePolicyVersion",
                    "DeletePolicy",
                    "DeletePolicyVersion",
                    "GetPolicy",
                    "GetPolicyVersion",
                    "ListEntitiesForPolicy",
                    "ListPolicyTags",
                    "ListPolicyVersions",
                    "SetDefaultPolicyVersion",
                    "TagPolicy",
                    "UntagPolicy",
                ],
            ),
            (&new_policy, &["CreatePolicy"]),
            (
                &mfa,
                &[
                    "CreateVirtualMFADevice",
                    "DeleteVirtualMFADevice",
                    "TagMFADevice",
                    "UntagMFADevice",
                    "ListMFADeviceTags",
                ],
            ),
            (
                &saml,
                &[
                    "CreateSAMLProvider",
                    "GetSAMLProvider",
                    "UpdateSAMLProvider",
                    "DeleteSAMLProvider",
                    "TagSAMLProvider",
                    "UntagSAMLProvider",
                    "ListSAMLProviderTags",
                ],
            ),
            (
                &oidc,
                &[
                    "AddClientIDToOpenIDConnectProvider",
                    "CreateOpenIDConnectProvider",
                    "DeleteOpenIDConnectProvider",
                    "GetOpenIDConnectProvider",
                    "RemoveClientIDFromOpenIDConnectProvider",
                    "UpdateOpenIDConnectProviderJwks",
                    "UpdateOpenIDConnectProviderThumbprint",
                    "TagOpenIDConnectProvider",
                    "UntagOpenIDConnectProvider",
                    "ListOpenIDConnectProviderTags",
                    "UpdateOpenIDConnectProvider",
                ],
            ),
            (
                &bucket,
                &[
                    "DeleteResourcePolicy",
                    "GetResourcePolicy",
                    "PutResourcePolicy",
                ],
            ),
            (
                &everything,
                &[
                    "CreateAccountAlias",
                    "CreateRootAccessKey",
                    "DeleteAccountAlias",
                    "DeleteRootAccessKey",
                    "DeleteServiceControlPolicy",
                    "GetServiceControlPolicy",
                    "ListAccountAliases",
                    "ListGroups",
                    "ListIssuerKeys",
                    "ListOpenIDConnectProviders",
                    "ListPolicies",
                    "ListResourcePolicies",
                    "ListRoles",
                    "ListServiceControlPolicies",
                    "ListUsers",
                    "ListVirtualMFADevices",
                    "ListSAMLProviders",
                    "PutServiceControlPolicy",
                    "RotateIssuerKey",
                    "ListInstanceProfiles",
                    "SetSecurityTokenServicePreferences",
                    "GetAccountAuthorizationDetails",
                    "GetAccountSummary",
                    "UpdateAccountPasswordPolicy",
                    "GetAccountPasswordPolicy",
                    "DeleteAccountPasswordPolicy",
                    "GetServiceLastAccessedDetails",
                    "GetServiceLastAccessedDetailsWithEntities",
                    "GenerateCredentialReport",
                    "GetCredentialReport",
                    "SimulateCustomPolicy",
                    "GetContextKeysForCustomPolicy",
                    "ValidatePolicy",
                    "StartPolicyGeneration",
                    "GetGeneratedPolicy",
                    "ListPolicyGenerations",
                    "CancelPolicyGeneration",
                    "LookupEvents",
                    "ListAnalyzers",
                ],
            ),
        ];
        let mut t = tenant();
        let alice_key = t
            .create_access_key(&mut IdGenerator::seeded(3), 0, "alice")
            .unwrap()
            .access_key_id;
        let params = json!({
            "UserName": "alice", "GroupName": "g", "RoleName": "app",
            "PolicyArn": BOUNDARY, "PolicyName": "P", "SerialNumber": "arn:aws:iam::111122223333:mfa/m",
            "VirtualMFADeviceName": "m", "OpenIDConnectProviderArn": "arn:aws:iam::111122223333:oidc-provider/o",
            "Url": "https://o", "ResourceArn": "arn:aws:s3:::b", "AccessKeyId": alice_key,
            "clusterName": "prod", "associationId": "a-1",
            "InstanceProfileName": "ip", "AWSServiceName": "autoscaling.amazonaws.com",
            "DeletionTaskId": "task/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling/u",
            "Name": "s", "SAMLProviderArn": "arn:aws:iam::111122223333:saml-provider/s",
            "Arn": "arn:aws:iam::111122223333:user/eng/Alice",
            "PolicySourceArn": "arn:aws:iam::111122223333:user/eng/Alice",
            "analyzerName": "unused", "analyzerArn": analyzer
        });
        for action in crate::control_plane::dispatch::ACTIONS {
            let listed: Vec<&String> = table
                .iter()
                .filter(|(_, actions)| actions.contains(action))
                .map(|(arn, _)| *arn)
                .collect();
            assert_eq!(listed.len(), 1, "{action} must be listed exactly once");
            assert_eq!(&target(&t, action, &params).resource, listed[0], "{action}");
        }
        let listed: usize = table.iter().map(|(_, actions)| actions.len()).sum();
        assert_eq!(
            listed,
            crate::control_plane::dispatch::ACTIONS.len(),
            "no stale entries"
        );
    }

    #[test]
    fn saml_providers_and_mfa_devices_are_named_by_their_stored_arn_with_their_tags() {
        let mut t = tenant();
        let mut ids = IdGenerator::seeded(5);
        t.create_saml_provider(
            &mut ids,
            0,
            crate::directory::CreateSamlProviderInput {
                name: "Okta".into(),
                metadata_document: crate::directory::saml_fixtures::metadata(),
                tags: vec![Tag {
                    key: "team".into(),
                    value: "id".into(),
                }],
                ..Default::default()
            },
        )
        .unwrap();
        // Another case in the request still names the provider as stored.
        let asked = json!({"SAMLProviderArn": "arn:aws:iam::111122223333:saml-provider/OKTA"});
        let got = target(&t, "GetSAMLProvider", &asked);
        assert_eq!(got.resource, "arn:aws:iam::111122223333:saml-provider/Okta");
        assert_eq!(
            value(&got.context, "aws:ResourceTag/team").as_deref(),
            Some("id")
        );

        let serial = "arn:aws:iam::111122223333:mfa/phone";
        t.create_tagged_virtual_mfa_device(
            &mut ids,
            "phone",
            None,
            &[Tag {
                key: "owner".into(),
                value: "alice".into(),
            }],
        )
        .unwrap();
        let got = target(&t, "UntagMFADevice", &json!({"SerialNumber": serial}));
        assert_eq!(got.resource, serial);
        assert_eq!(
            value(&got.context, "aws:ResourceTag/owner").as_deref(),
            Some("alice")
        );
        // GetMFADevice without a user is on the device's user.
        if let Some(device) = t.mfa_devices.get_mut(serial) {
            device.user = Some("Alice".into());
        }
        let got = target(&t, "GetMFADevice", &json!({"SerialNumber": serial}));
        assert_eq!(got.resource, "arn:aws:iam::111122223333:user/eng/Alice");
        assert!(defaults_to_caller("GetMFADevice"));
    }
}
