//! Planning: the IAM actions that converge a tenant to a spec.
//!
//! The plan runs in phases, so each action finds what it needs and nothing blocks it:
//!
//! 1. detach managed policies and remove permissions boundaries that go away (or whose
//!    policy is replaced);
//! 2. remove users from groups they leave;
//! 3. delete inline policies that go away;
//! 4. take roles out of instance profiles that lose them (or whose role is replaced) and
//!    delete instance profiles that go away (or are replaced); then delete users, groups and
//!    roles that go away (or are replaced);
//! 5. delete OIDC providers, SAML providers and resource policies that go away;
//! 6. managed policies: delete (versions first), create, update documents (a new default
//!    version, deleting the oldest other version at the quota; or making an existing version
//!    with the document the default) and tags;
//! 7. groups, then users, then roles: create, update, tag, set boundaries; then instance
//!    profiles: create, tag, add their roles;
//! 8. add users to groups; put inline policies; attach managed policies;
//! 9. OIDC providers, SAML providers, resource policies, the account alias, the password
//!    policy.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::{
    doc_text, key, non_empty, same_doc, GroupSpec, InstanceProfileSpec, ManagedPolicySpec,
    OidcProviderSpec, PasswordPolicySpec, PlanError, PlannedAction, RoleSpec, SamlProviderSpec,
    TenantSpec, UserSpec,
};
use crate::control_plane::dispatch;
use crate::directory::{
    aws_managed_policy, IdGenerator, InlinePolicies, InstanceProfile, ManagedPolicy, OidcProvider,
    PasswordHasher, Role, SamlProvider, Tag, Tenant, User,
};

/// The IAM actions that turn `current` into what `desired` declares, in an order
/// [`dispatch`] can run one after another; empty when `current` already matches.
///
/// The spec must be for the tenant's account, name each entity once, put users only in
/// declared groups and use only declared or AWS managed policies. Entities the spec leaves
/// out are deleted (after detaching and removing what blocks the deletion), except that a
/// user holding access keys, a login profile or MFA devices is never deleted: the plan fails
/// naming the user. Credentials are never touched. The plan is checked by running it on a
/// copy of `current`: a step that would be refused (an invalid document, a quota) fails the
/// plan with [`PlanError::Rejected`], naming the step.
pub fn plan(current: &Tenant, desired: &TenantSpec) -> Result<Vec<PlannedAction>, PlanError> {
    if current.account_id != desired.account_id {
        return Err(PlanError::AccountMismatch {
            tenant: current.account_id.clone(),
            spec: desired.account_id.clone(),
        });
    }
    let planner = Planner::new(current, desired)?;
    let actions = planner.plan()?;
    dry_run(current, &actions)?;
    Ok(actions)
}

/// Runs the plan on a copy of `current`; the first refused step fails the plan.
fn dry_run(current: &Tenant, actions: &[PlannedAction]) -> Result<(), PlanError> {
    let mut tenant = current.clone();
    let mut ids = IdGenerator::seeded(0);
    let hasher = PasswordHasher::with_iterations(1);
    for (i, step) in actions.iter().enumerate() {
        let outcome = dispatch(
            &mut tenant,
            &mut ids,
            hasher.clone(),
            current.created_at,
            &step.action,
            &step.parameters,
        );
        if let Err(e) = outcome {
            return Err(PlanError::Rejected {
                account: current.account_id.clone(),
                step: i.saturating_add(1),
                action: step.action.clone(),
                subject: subject(&step.parameters),
                code: e.code(),
                message: e.to_string(),
            });
        }
    }
    Ok(())
}

/// What an action acts on, for error messages.
fn subject(parameters: &Value) -> String {
    const NAMES: &[&str] = &[
        "UserName",
        "GroupName",
        "RoleName",
        "PolicyName",
        "PolicyArn",
        "OpenIDConnectProviderArn",
        "Url",
        "ResourceArn",
        "AccountAlias",
        "clusterName",
        "serviceAccount",
    ];
    let parts: Vec<String> = NAMES
        .iter()
        .filter_map(|n| {
            parameters
                .get(*n)
                .and_then(Value::as_str)
                .map(|v| format!("{n} {v}"))
        })
        .collect();
    if parts.is_empty() {
        "the account".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The spec indexed by key, checked, and the plan being built.
struct Planner<'a> {
    t: &'a Tenant,
    d: &'a TenantSpec,
    users: BTreeMap<String, &'a UserSpec>,
    groups: BTreeMap<String, &'a GroupSpec>,
    roles: BTreeMap<String, &'a RoleSpec>,
    policies: BTreeMap<String, &'a ManagedPolicySpec>,
    providers: BTreeMap<String, &'a OidcProviderSpec>,
    instance_profiles: BTreeMap<String, &'a InstanceProfileSpec>,
    saml_providers: BTreeMap<String, &'a SamlProviderSpec>,
    /// ARNs of the current customer policies that are deleted (gone from the spec, or
    /// replaced).
    deleted_policies: BTreeSet<String>,
    actions: Vec<PlannedAction>,
}

/// Whom an attachment, inline policy or boundary belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    User,
    Group,
    Role,
}

// === impl Holder ===

impl Holder {
    fn kind(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
            Self::Role => "Role",
        }
    }

    /// The name parameter (`UserName`, ...).
    fn param(self) -> &'static str {
        match self {
            Self::User => "UserName",
            Self::Group => "GroupName",
            Self::Role => "RoleName",
        }
    }

    fn call(self, verb: &str, name: &str, mut rest: Map<String, Value>) -> PlannedAction {
        rest.insert(self.param().to_owned(), Value::from(name));
        let action = match verb {
            "Attach" | "Detach" => format!("{verb}{}Policy", self.kind()),
            "PutBoundary" => format!("Put{}PermissionsBoundary", self.kind()),
            "DeleteBoundary" => format!("Delete{}PermissionsBoundary", self.kind()),
            "PutInline" => format!("Put{}Policy", self.kind()),
            "DeleteInline" => format!("Delete{}Policy", self.kind()),
            other => format!("{other}{}", self.kind()),
        };
        PlannedAction {
            action,
            parameters: Value::Object(rest),
        }
    }
}

/// The declarable state of a principal, current or desired, for diffing.
#[derive(Debug, Clone, Copy)]
struct Holds<'a> {
    attached: &'a [String],
    boundary: Option<&'a str>,
    inline_stored: Option<&'a InlinePolicies>,
    inline_desired: Option<&'a BTreeMap<String, Value>>,
}

fn act(action: &str, parameters: Value) -> PlannedAction {
    PlannedAction {
        action: action.to_owned(),
        parameters,
    }
}

fn params(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn tags_json(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// The keys to untag and the tags to set so `current` becomes `desired`.
fn tag_changes(
    current: &[Tag],
    desired: &BTreeMap<String, String>,
    case_insensitive: bool,
) -> (Vec<String>, BTreeMap<String, String>) {
    let same = |a: &str, b: &str| {
        if case_insensitive {
            a.to_lowercase() == b.to_lowercase()
        } else {
            a == b
        }
    };
    let untag = current
        .iter()
        .filter(|t| !desired.keys().any(|k| same(k, &t.key)))
        .map(|t| t.key.clone())
        .collect();
    let tag = desired
        .iter()
        .filter(|(k, v)| !current.iter().any(|t| t.key == **k && t.value == **v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (untag, tag)
}

/// The credentials a user holds, if any (`access keys, a login profile`).
fn credentials(user: &User) -> Option<String> {
    let mut held = Vec::new();
    if !user.access_keys.is_empty() {
        held.push("access keys");
    }
    if user.login_profile.is_some() {
        held.push("a login profile");
    }
    if !user.mfa_devices.is_empty() {
        held.push("MFA devices");
    }
    (!held.is_empty()).then(|| held.join(", "))
}

/// The key of an OIDC provider: its URL without the scheme.
fn provider_key(url: &str) -> String {
    url.strip_prefix("https://").unwrap_or(url).to_owned()
}

// === impl Planner ===

impl<'a> Planner<'a> {
    /// Indexes and checks the spec.
    fn new(t: &'a Tenant, d: &'a TenantSpec) -> Result<Self, PlanError> {
        let account = &t.account_id;
        let dup = |what: &str, name: &str| PlanError::Duplicate {
            account: account.clone(),
            what: what.to_owned(),
            name: name.to_owned(),
        };
        let mut users = BTreeMap::new();
        for u in &d.users {
            if users.insert(key(&u.user_name), u).is_some() {
                return Err(dup("user", &u.user_name));
            }
            check_tag_keys(&u.tags, &format!("tag key on user {}", u.user_name), &dup)?;
        }
        let mut groups = BTreeMap::new();
        for g in &d.groups {
            if groups.insert(key(&g.group_name), g).is_some() {
                return Err(dup("group", &g.group_name));
            }
        }
        let mut roles = BTreeMap::new();
        for r in &d.roles {
            if roles.insert(key(&r.role_name), r).is_some() {
                return Err(dup("role", &r.role_name));
            }
            check_tag_keys(&r.tags, &format!("tag key on role {}", r.role_name), &dup)?;
        }
        let mut policies = BTreeMap::new();
        for p in &d.managed_policies {
            if policies.insert(key(&p.policy_name), p).is_some() {
                return Err(dup("managed policy", &p.policy_name));
            }
        }
        let mut associations = BTreeSet::new();
        for a in &d.pod_identity_associations {
            if !associations.insert(a.identity()) {
                let (cluster, namespace, service_account) = a.identity();
                return Err(dup(
                    "pod identity association",
                    &format!("{cluster}/{namespace}/{service_account}"),
                ));
            }
        }
        let mut providers = BTreeMap::new();
        for o in &d.open_id_connect_providers {
            if providers.insert(provider_key(&o.url), o).is_some() {
                return Err(dup("OIDC provider", &o.url));
            }
        }

        let mut instance_profiles = BTreeMap::new();
        for p in &d.instance_profiles {
            if instance_profiles
                .insert(key(&p.instance_profile_name), p)
                .is_some()
            {
                return Err(dup("instance profile", &p.instance_profile_name));
            }
            for r in &p.roles {
                if !roles.contains_key(&key(r)) {
                    return Err(PlanError::UnknownRole {
                        account: account.clone(),
                        profile: p.instance_profile_name.clone(),
                        role: r.clone(),
                    });
                }
            }
        }
        let mut saml_providers = BTreeMap::new();
        for p in &d.saml_providers {
            if saml_providers.insert(key(&p.name), p).is_some() {
                return Err(dup("SAML provider", &p.name));
            }
        }

        // References: groups and policies must be declared (or AWS managed).
        let declared: BTreeSet<String> = d
            .managed_policies
            .iter()
            .map(|p| t.arn("policy", &p.path, &p.policy_name))
            .collect();
        let check_arn = |holder: String, arn: &str| {
            if declared.contains(arn) || aws_managed_policy(arn).is_some() {
                Ok(())
            } else {
                Err(PlanError::UnknownPolicy {
                    account: account.clone(),
                    holder,
                    arn: arn.to_owned(),
                })
            }
        };
        for u in &d.users {
            for g in &u.groups {
                if !groups.contains_key(&key(g)) {
                    return Err(PlanError::UnknownGroup {
                        account: account.clone(),
                        user: u.user_name.clone(),
                        group: g.clone(),
                    });
                }
            }
            let arns = u.managed_policy_arns.iter();
            for arn in arns.chain(u.permissions_boundary.as_ref()) {
                check_arn(format!("user {}", u.user_name), arn)?;
            }
        }
        for g in &d.groups {
            for arn in &g.managed_policy_arns {
                check_arn(format!("group {}", g.group_name), arn)?;
            }
        }
        for r in &d.roles {
            let arns = r.managed_policy_arns.iter();
            for arn in arns.chain(r.permissions_boundary.as_ref()) {
                check_arn(format!("role {}", r.role_name), arn)?;
            }
        }

        // Users the spec leaves out must hold no credentials.
        for (k, u) in &t.users {
            if users.contains_key(k) {
                continue;
            }
            if let Some(held) = credentials(u) {
                return Err(PlanError::UserHoldsCredentials {
                    account: account.clone(),
                    user: u.name.clone(),
                    credentials: held,
                });
            }
        }

        let mut planner = Self {
            t,
            d,
            users,
            groups,
            roles,
            policies,
            providers,
            instance_profiles,
            saml_providers,
            deleted_policies: BTreeSet::new(),
            actions: Vec::new(),
        };
        planner.deleted_policies = t
            .policies
            .iter()
            .filter(|(k, p)| planner.kept_policy(k, p).is_none())
            .map(|(_, p)| p.arn.clone())
            .collect();
        Ok(planner)
    }

    /// The declared policy a current one stays as, unless it is deleted or replaced.
    fn kept_policy(&self, k: &str, p: &ManagedPolicy) -> Option<&'a ManagedPolicySpec> {
        self.policies.get(k).copied().filter(|s| {
            self.t.arn("policy", &s.path, &s.policy_name) == p.arn
                && non_empty(s.description.as_deref()) == non_empty(p.description.as_deref())
        })
    }

    /// The declared user a current one stays as (renames of case and moves are updates).
    fn kept_user(&self, k: &str) -> Option<&'a UserSpec> {
        self.users.get(k).copied()
    }

    fn kept_group(&self, k: &str) -> Option<&'a GroupSpec> {
        self.groups.get(k).copied()
    }

    /// The declared role a current one stays as, unless replaced (a new path or name case).
    fn kept_role(&self, k: &str, r: &Role) -> Option<&'a RoleSpec> {
        self.roles
            .get(k)
            .copied()
            .filter(|s| s.role_name == r.name && s.path == r.path)
    }

    /// The declared provider a current one stays as, unless replaced (new tags).
    fn kept_provider(&self, k: &str, o: &OidcProvider) -> Option<&'a OidcProviderSpec> {
        self.providers
            .get(k)
            .copied()
            .filter(|s| super::tag_map(&o.tags) == s.tags)
    }

    /// The declared instance profile a current one stays as, unless replaced (a new path or
    /// name case).
    fn kept_instance_profile(&self, p: &InstanceProfile) -> Option<&'a InstanceProfileSpec> {
        self.instance_profiles
            .get(&key(&p.name))
            .copied()
            .filter(|s| s.instance_profile_name == p.name && s.path == p.path)
    }

    /// The declared SAML provider a current one stays as, unless replaced (a new name case,
    /// which is a new ARN).
    fn kept_saml_provider(&self, p: &SamlProvider) -> Option<&'a SamlProviderSpec> {
        self.saml_providers
            .get(&key(&p.name))
            .copied()
            .filter(|s| s.name == p.name)
    }

    /// Whether the role named `name` stays as it is (neither deleted nor replaced).
    fn role_stays(&self, name: &str) -> bool {
        let k = key(name);
        self.t
            .roles
            .get(&k)
            .is_some_and(|r| self.kept_role(&k, r).is_some())
    }

    fn push(&mut self, action: PlannedAction) {
        self.actions.push(action);
    }

    fn plan(mut self) -> Result<Vec<PlannedAction>, PlanError> {
        // Associations go first and come last: they name roles and providers.
        self.delete_pod_identity_phase();
        self.detach_phase();
        self.leave_groups_phase();
        self.delete_inline_phase();
        self.unlink_instance_profiles_phase();
        self.delete_principals_phase();
        self.delete_federation_phase();
        self.policies_phase()?;
        self.groups_phase();
        self.users_phase();
        self.roles_phase();
        self.instance_profiles_phase();
        self.join_groups_phase();
        self.put_inline_phase();
        self.attach_phase();
        self.federation_phase();
        self.alias_phase();
        self.password_policy_phase();
        self.pod_identity_phase();
        Ok(self.actions)
    }

    /// Every current principal with its declared counterpart, if it stays.
    fn principals(&self) -> Vec<(Holder, String, Holds<'a>, Option<Holds<'a>>)> {
        let mut out = Vec::new();
        for (k, u) in &self.t.users {
            let desired = self.kept_user(k).map(|s| Holds {
                attached: &s.managed_policy_arns,
                boundary: s.permissions_boundary.as_deref(),
                inline_stored: None,
                inline_desired: Some(&s.inline_policies),
            });
            let current = Holds {
                attached: &u.attached_policies,
                boundary: u.permissions_boundary.as_deref(),
                inline_stored: Some(&u.inline_policies),
                inline_desired: None,
            };
            out.push((Holder::User, u.name.clone(), current, desired));
        }
        for (k, g) in &self.t.groups {
            let desired = self.kept_group(k).map(|s| Holds {
                attached: &s.managed_policy_arns,
                boundary: None,
                inline_stored: None,
                inline_desired: Some(&s.inline_policies),
            });
            let current = Holds {
                attached: &g.attached_policies,
                boundary: None,
                inline_stored: Some(&g.inline_policies),
                inline_desired: None,
            };
            out.push((Holder::Group, g.name.clone(), current, desired));
        }
        // Service-linked roles are left alone: only their service changes them.
        for (k, r) in self.t.roles.iter().filter(|(_, r)| !r.is_service_linked()) {
            let desired = self.kept_role(k, r).map(|s| Holds {
                attached: &s.managed_policy_arns,
                boundary: s.permissions_boundary.as_deref(),
                inline_stored: None,
                inline_desired: Some(&s.inline_policies),
            });
            let current = Holds {
                attached: &r.attached_policies,
                boundary: r.permissions_boundary.as_deref(),
                inline_stored: Some(&r.inline_policies),
                inline_desired: None,
            };
            out.push((Holder::Role, r.name.clone(), current, desired));
        }
        out
    }

    /// Whether a current boundary is removed in the detach phase: it goes away, or its
    /// policy is deleted.
    fn boundary_removed(&self, current: Option<&str>, desired: Option<&str>) -> bool {
        current.is_some_and(|b| desired.is_none() || self.deleted_policies.contains(b))
    }

    /// Phase 1: detach policies and remove boundaries that go away or whose policy is
    /// deleted. Principals that are deleted lose all their attachments.
    fn detach_phase(&mut self) {
        for (holder, name, current, desired) in self.principals() {
            for arn in current.attached {
                let keep = desired.is_some_and(|d| d.attached.contains(arn))
                    && !self.deleted_policies.contains(arn);
                if !keep {
                    let rest = params(&[("PolicyArn", Value::from(arn.as_str()))]);
                    self.push(holder.call("Detach", &name, rest));
                }
            }
            if let Some(d) = desired {
                if self.boundary_removed(current.boundary, d.boundary) {
                    self.push(holder.call("DeleteBoundary", &name, Map::new()));
                }
            }
        }
    }

    /// Phase 2: remove users from the groups they leave (or all, when deleted).
    fn leave_groups_phase(&mut self) {
        for (k, u) in &self.t.users {
            let desired: BTreeSet<String> = self
                .kept_user(k)
                .map(|s| s.groups.iter().map(|g| key(g)).collect())
                .unwrap_or_default();
            for g in &u.groups {
                if !desired.contains(&key(g)) {
                    let p = json!({"GroupName": g, "UserName": u.name});
                    self.actions.push(act("RemoveUserFromGroup", p));
                }
            }
        }
    }

    /// Phase 3: delete inline policies that go away (or all, when the principal is deleted).
    fn delete_inline_phase(&mut self) {
        for (holder, name, current, desired) in self.principals() {
            let Some(stored) = current.inline_stored else {
                continue;
            };
            for policy in stored.keys() {
                let keep = desired
                    .and_then(|d| d.inline_desired)
                    .is_some_and(|d| d.contains_key(policy));
                if !keep {
                    let rest = params(&[("PolicyName", Value::from(policy.as_str()))]);
                    self.push(holder.call("DeleteInline", &name, rest));
                }
            }
        }
    }

    /// Phase 4: delete users, groups and roles that go away or are replaced.
    fn delete_principals_phase(&mut self) {
        for (k, u) in &self.t.users {
            if self.kept_user(k).is_none() {
                self.actions
                    .push(act("DeleteUser", json!({"UserName": u.name})));
            }
        }
        for (k, g) in &self.t.groups {
            if self.kept_group(k).is_none() {
                self.actions
                    .push(act("DeleteGroup", json!({"GroupName": g.name})));
            }
        }
        for (k, r) in &self.t.roles {
            if self.kept_role(k, r).is_none() && !r.is_service_linked() {
                self.actions
                    .push(act("DeleteRole", json!({"RoleName": r.name})));
            }
        }
    }

    /// Phase 5: delete OIDC providers that go away or are replaced, and resource policies
    /// that go away.
    fn delete_federation_phase(&mut self) {
        for (k, o) in &self.t.oidc_providers {
            if self.kept_provider(k, o).is_none() {
                let p = json!({"OpenIDConnectProviderArn": o.arn});
                self.actions.push(act("DeleteOpenIDConnectProvider", p));
            }
        }
        for p in self.t.saml_providers.values() {
            if self.kept_saml_provider(p).is_none() {
                let params = json!({"SAMLProviderArn": p.arn});
                self.actions.push(act("DeleteSAMLProvider", params));
            }
        }
        for arn in self.t.resource_policies.keys() {
            if !self.d.resource_policies.contains_key(arn) {
                let p = json!({"ResourceArn": arn});
                self.actions.push(act("DeleteResourcePolicy", p));
            }
        }
    }

    /// Phase 6: managed policies.
    fn policies_phase(&mut self) -> Result<(), PlanError> {
        // Deletions: the versions other than the default first.
        for p in self.t.policies.values() {
            if !self.deleted_policies.contains(&p.arn) {
                continue;
            }
            for v in &p.versions {
                if v.version_id != p.default_version_id {
                    let params = json!({"PolicyArn": p.arn, "VersionId": v.version_id});
                    self.actions.push(act("DeletePolicyVersion", params));
                }
            }
            self.actions
                .push(act("DeletePolicy", json!({"PolicyArn": p.arn})));
        }
        for spec in &self.d.managed_policies {
            let k = key(&spec.policy_name);
            let current = self
                .t
                .policies
                .get(&k)
                .filter(|p| self.kept_policy(&k, p).is_some());
            match current {
                None => {
                    let mut p = params(&[
                        ("PolicyName", Value::from(spec.policy_name.as_str())),
                        ("Path", Value::from(spec.path.as_str())),
                        (
                            "PolicyDocument",
                            Value::from(doc_text(&spec.policy_document)),
                        ),
                    ]);
                    if let Some(d) = non_empty(spec.description.as_deref()) {
                        p.insert("Description".into(), Value::from(d));
                    }
                    if !spec.tags.is_empty() {
                        p.insert("Tags".into(), tags_json(&spec.tags));
                    }
                    self.push(act("CreatePolicy", Value::Object(p)));
                }
                Some(current) => {
                    self.update_policy_document(current, spec)?;
                    let (untag, tag) = tag_changes(&current.tags, &spec.tags, false);
                    if !untag.is_empty() {
                        let p = json!({"PolicyArn": current.arn, "TagKeys": untag});
                        self.push(act("UntagPolicy", p));
                    }
                    if !tag.is_empty() {
                        let p = json!({"PolicyArn": current.arn, "Tags": tags_json(&tag)});
                        self.push(act("TagPolicy", p));
                    }
                }
            }
        }
        Ok(())
    }

    /// Makes the declared document the default version: an existing version with it becomes
    /// the default, or a new version is created (deleting the oldest other version first when
    /// the policy is at the version quota).
    fn update_policy_document(
        &mut self,
        current: &ManagedPolicy,
        spec: &ManagedPolicySpec,
    ) -> Result<(), PlanError> {
        let arn = &current.arn;
        let default = current
            .versions
            .iter()
            .find(|v| v.version_id == current.default_version_id);
        if default.is_some_and(|v| same_doc(&v.document, &spec.policy_document)) {
            return Ok(());
        }
        if let Some(v) = current
            .versions
            .iter()
            .rev()
            .find(|v| same_doc(&v.document, &spec.policy_document))
        {
            let p = json!({"PolicyArn": arn, "VersionId": v.version_id});
            self.push(act("SetDefaultPolicyVersion", p));
            return Ok(());
        }
        if current.versions.len() >= self.t.quotas.versions_per_policy {
            let oldest = current
                .versions
                .iter()
                .find(|v| v.version_id != current.default_version_id)
                .ok_or_else(|| PlanError::VersionQuota {
                    account: self.t.account_id.clone(),
                    arn: arn.clone(),
                    versions: current.versions.len(),
                })?;
            let p = json!({"PolicyArn": arn, "VersionId": oldest.version_id});
            self.push(act("DeletePolicyVersion", p));
        }
        let p = json!({
            "PolicyArn": arn,
            "PolicyDocument": doc_text(&spec.policy_document),
            "SetAsDefault": true,
        });
        self.push(act("CreatePolicyVersion", p));
        Ok(())
    }

    /// Phase 7a: create groups; move or re-case the ones that stay.
    fn groups_phase(&mut self) {
        for spec in &self.d.groups {
            match self.t.groups.get(&key(&spec.group_name)) {
                None => {
                    let p = json!({"GroupName": spec.group_name, "Path": spec.path});
                    self.push(act("CreateGroup", p));
                }
                Some(g) if g.name != spec.group_name || g.path != spec.path => {
                    let mut p = params(&[("GroupName", Value::from(g.name.as_str()))]);
                    if g.name != spec.group_name {
                        p.insert("NewGroupName".into(), Value::from(spec.group_name.as_str()));
                    }
                    if g.path != spec.path {
                        p.insert("NewPath".into(), Value::from(spec.path.as_str()));
                    }
                    self.push(act("UpdateGroup", Value::Object(p)));
                }
                Some(_) => {}
            }
        }
    }

    /// Phase 7b: create users; move, re-case, tag and bound the ones that stay.
    fn users_phase(&mut self) {
        for spec in &self.d.users {
            let name = spec.user_name.as_str();
            let Some(u) = self.t.users.get(&key(name)) else {
                let mut p = params(&[
                    ("UserName", Value::from(name)),
                    ("Path", Value::from(spec.path.as_str())),
                ]);
                if let Some(b) = &spec.permissions_boundary {
                    p.insert("PermissionsBoundary".into(), Value::from(b.as_str()));
                }
                if !spec.tags.is_empty() {
                    p.insert("Tags".into(), tags_json(&spec.tags));
                }
                self.push(act("CreateUser", Value::Object(p)));
                continue;
            };
            if u.name != spec.user_name || u.path != spec.path {
                let mut p = params(&[("UserName", Value::from(u.name.as_str()))]);
                if u.name != spec.user_name {
                    p.insert("NewUserName".into(), Value::from(name));
                }
                if u.path != spec.path {
                    p.insert("NewPath".into(), Value::from(spec.path.as_str()));
                }
                self.push(act("UpdateUser", Value::Object(p)));
            }
            self.retag(Holder::User, name, &u.tags, &spec.tags);
            self.rebound(
                Holder::User,
                name,
                u.permissions_boundary.as_deref(),
                spec.permissions_boundary.as_deref(),
            );
        }
    }

    /// Phase 7c: create roles; update the trust policy, description, session duration, tags
    /// and boundary of the ones that stay.
    fn roles_phase(&mut self) {
        for spec in &self.d.roles {
            let k = key(&spec.role_name);
            let name = spec.role_name.as_str();
            let Some(r) = self
                .t
                .roles
                .get(&k)
                .filter(|r| self.kept_role(&k, r).is_some())
            else {
                let mut p = params(&[
                    ("RoleName", Value::from(name)),
                    ("Path", Value::from(spec.path.as_str())),
                    (
                        "AssumeRolePolicyDocument",
                        Value::from(doc_text(&spec.assume_role_policy_document)),
                    ),
                    ("MaxSessionDuration", Value::from(spec.max_session_duration)),
                ]);
                if let Some(d) = non_empty(spec.description.as_deref()) {
                    p.insert("Description".into(), Value::from(d));
                }
                if let Some(b) = &spec.permissions_boundary {
                    p.insert("PermissionsBoundary".into(), Value::from(b.as_str()));
                }
                if !spec.tags.is_empty() {
                    p.insert("Tags".into(), tags_json(&spec.tags));
                }
                self.push(act("CreateRole", Value::Object(p)));
                continue;
            };
            if !same_doc(&r.assume_role_policy, &spec.assume_role_policy_document) {
                let p = json!({
                    "RoleName": name,
                    "PolicyDocument": doc_text(&spec.assume_role_policy_document),
                });
                self.push(act("UpdateAssumeRolePolicy", p));
            }
            let description = non_empty(spec.description.as_deref());
            let mut p = Map::new();
            if description != non_empty(r.description.as_deref()) {
                p.insert(
                    "Description".into(),
                    Value::from(description.unwrap_or_default()),
                );
            }
            if r.max_session_duration != spec.max_session_duration {
                p.insert(
                    "MaxSessionDuration".into(),
                    Value::from(spec.max_session_duration),
                );
            }
            if !p.is_empty() {
                p.insert("RoleName".into(), Value::from(name));
                self.push(act("UpdateRole", Value::Object(p)));
            }
            self.retag(Holder::Role, name, &r.tags, &spec.tags);
            self.rebound(
                Holder::Role,
                name,
                r.permissions_boundary.as_deref(),
                spec.permissions_boundary.as_deref(),
            );
        }
    }

    /// Untags and tags a user or role (keys case-insensitive).
    fn retag(
        &mut self,
        holder: Holder,
        name: &str,
        current: &[Tag],
        desired: &BTreeMap<String, String>,
    ) {
        let (untag, tag) = tag_changes(current, desired, true);
        if !untag.is_empty() {
            let rest = params(&[("TagKeys", json!(untag))]);
            self.push(holder.call("Untag", name, rest));
        }
        if !tag.is_empty() {
            let rest = params(&[("Tags", tags_json(&tag))]);
            self.push(holder.call("Tag", name, rest));
        }
    }

    /// Sets a boundary that is new, changed, or was removed in the detach phase because its
    /// policy was replaced.
    fn rebound(
        &mut self,
        holder: Holder,
        name: &str,
        current: Option<&str>,
        desired: Option<&str>,
    ) {
        let Some(wanted) = desired else {
            return;
        };
        let effective = if self.boundary_removed(current, desired) {
            None
        } else {
            current
        };
        if effective != Some(wanted) {
            let rest = params(&[("PermissionsBoundary", Value::from(wanted))]);
            self.push(holder.call("PutBoundary", name, rest));
        }
    }

    /// Phase 8a: add users to the groups they join.
    fn join_groups_phase(&mut self) {
        for spec in &self.d.users {
            let current: BTreeSet<String> = self
                .t
                .users
                .get(&key(&spec.user_name))
                .map(|u| u.groups.iter().map(|g| key(g)).collect())
                .unwrap_or_default();
            let mut seen = BTreeSet::new();
            for g in &spec.groups {
                let k = key(g);
                if !current.contains(&k) && seen.insert(k.clone()) {
                    let name = self
                        .groups
                        .get(&k)
                        .map_or(g.as_str(), |s| s.group_name.as_str());
                    let p = json!({"GroupName": name, "UserName": spec.user_name});
                    self.actions.push(act("AddUserToGroup", p));
                }
            }
        }
    }

    /// The declared principals with their current state, if they stay (created ones have
    /// none).
    fn declared(&self) -> Vec<(Holder, String, Option<Holds<'a>>, Holds<'a>)> {
        let mut out = Vec::new();
        for s in &self.d.users {
            let current = self.t.users.get(&key(&s.user_name)).map(|u| Holds {
                attached: &u.attached_policies,
                boundary: None,
                inline_stored: Some(&u.inline_policies),
                inline_desired: None,
            });
            let desired = Holds {
                attached: &s.managed_policy_arns,
                boundary: None,
                inline_stored: None,
                inline_desired: Some(&s.inline_policies),
            };
            out.push((Holder::User, s.user_name.clone(), current, desired));
        }
        for s in &self.d.groups {
            let current = self.t.groups.get(&key(&s.group_name)).map(|g| Holds {
                attached: &g.attached_policies,
                boundary: None,
                inline_stored: Some(&g.inline_policies),
                inline_desired: None,
            });
            let desired = Holds {
                attached: &s.managed_policy_arns,
                boundary: None,
                inline_stored: None,
                inline_desired: Some(&s.inline_policies),
            };
            out.push((Holder::Group, s.group_name.clone(), current, desired));
        }
        for s in &self.d.roles {
            let k = key(&s.role_name);
            let current = self
                .t
                .roles
                .get(&k)
                .filter(|r| self.kept_role(&k, r).is_some())
                .map(|r| Holds {
                    attached: &r.attached_policies,
                    boundary: None,
                    inline_stored: Some(&r.inline_policies),
                    inline_desired: None,
                });
            let desired = Holds {
                attached: &s.managed_policy_arns,
                boundary: None,
                inline_stored: None,
                inline_desired: Some(&s.inline_policies),
            };
            out.push((Holder::Role, s.role_name.clone(), current, desired));
        }
        out
    }

    /// Phase 8b: put inline policies that are new or changed.
    fn put_inline_phase(&mut self) {
        for (holder, name, current, desired) in self.declared() {
            let stored = current.and_then(|c| c.inline_stored);
            for (policy, doc) in desired.inline_desired.into_iter().flatten() {
                let same = stored
                    .and_then(|s| s.get(policy))
                    .is_some_and(|text| same_doc(text, doc));
                if !same {
                    let rest = params(&[
                        ("PolicyName", Value::from(policy.as_str())),
                        ("PolicyDocument", Value::from(doc_text(doc))),
                    ]);
                    self.push(holder.call("PutInline", &name, rest));
                }
            }
        }
    }

    /// Phase 8c: attach managed policies that are new, or were detached because their policy
    /// was replaced.
    fn attach_phase(&mut self) {
        for (holder, name, current, desired) in self.declared() {
            let mut seen = BTreeSet::new();
            for arn in desired.attached {
                let attached = current.is_some_and(|c| c.attached.contains(arn))
                    && !self.deleted_policies.contains(arn);
                if !attached && seen.insert(arn.clone()) {
                    let rest = params(&[("PolicyArn", Value::from(arn.as_str()))]);
                    self.push(holder.call("Attach", &name, rest));
                }
            }
        }
    }

    /// Phase 9a: create OIDC providers; update the client ids, thumbprints and keys of the
    /// ones that stay.
    fn federation_phase(&mut self) {
        for spec in &self.d.open_id_connect_providers {
            let k = provider_key(&spec.url);
            let current = self
                .t
                .oidc_providers
                .get(&k)
                .filter(|o| self.kept_provider(&k, o).is_some());
            let Some(o) = current else {
                let mut p = params(&[
                    ("Url", Value::from(spec.url.as_str())),
                    ("ClientIDList", json!(spec.client_id_list)),
                    ("ThumbprintList", json!(spec.thumbprint_list)),
                    ("Jwks", Value::from(doc_text(&spec.jwks))),
                ]);
                if !spec.tags.is_empty() {
                    p.insert("Tags".into(), tags_json(&spec.tags));
                }
                self.push(act("CreateOpenIDConnectProvider", Value::Object(p)));
                continue;
            };
            let arn = o.arn.as_str();
            for id in &o.client_ids {
                if !spec.client_id_list.contains(id) {
                    let p = json!({"OpenIDConnectProviderArn": arn, "ClientID": id});
                    self.actions
                        .push(act("RemoveClientIDFromOpenIDConnectProvider", p));
                }
            }
            let mut seen = BTreeSet::new();
            for id in &spec.client_id_list {
                if !o.client_ids.contains(id) && seen.insert(id) {
                    let p = json!({"OpenIDConnectProviderArn": arn, "ClientID": id});
                    self.actions
                        .push(act("AddClientIDToOpenIDConnectProvider", p));
                }
            }
            let mut have = o.thumbprints.clone();
            have.sort();
            let mut want = spec.thumbprint_list.clone();
            want.sort();
            if have != want {
                let p = json!({"OpenIDConnectProviderArn": arn, "ThumbprintList": want});
                self.actions
                    .push(act("UpdateOpenIDConnectProviderThumbprint", p));
            }
            if !same_doc(&o.jwks, &spec.jwks) {
                let p = json!({"OpenIDConnectProviderArn": arn, "Jwks": doc_text(&spec.jwks)});
                self.actions.push(act("UpdateOpenIDConnectProviderJwks", p));
            }
        }
        self.saml_phase();
        for (arn, doc) in &self.d.resource_policies {
            let same = self
                .t
                .resource_policies
                .get(arn)
                .is_some_and(|p| same_doc(&p.document, doc));
            if !same {
                let p = json!({"ResourceArn": arn, "PolicyDocument": doc_text(doc)});
                self.actions.push(act("PutResourcePolicy", p));
            }
        }
    }

    /// The declared association of the current one `a`, when it stays as it is or only its
    /// role changes; `None` when it goes away or is replaced (another provider, other tags).
    fn kept_association(
        &self,
        a: &crate::directory::PodIdentityAssociation,
    ) -> Option<&'a super::PodIdentityAssociationSpec> {
        self.d
            .pod_identity_associations
            .iter()
            .find(|s| s.identity() == (&*a.cluster_name, &*a.namespace, &*a.service_account))
            .filter(|s| s.open_id_connect_provider_arn == a.oidc_provider_arn && s.tags == a.tags)
    }

    /// Phase 0: delete the associations that go away or are replaced.
    fn delete_pod_identity_phase(&mut self) {
        for a in self.t.pod_identity_associations.values() {
            if self.kept_association(a).is_none() {
                let p = json!({"clusterName": a.cluster_name, "associationId": a.association_id});
                self.actions.push(act("DeletePodIdentityAssociation", p));
            }
        }
    }

    /// Phase 10: create the associations that are new or replaced; update the role of those
    /// that stay.
    fn pod_identity_phase(&mut self) {
        for spec in &self.d.pod_identity_associations {
            let current = self.t.pod_identity_associations.values().find(|a| {
                spec.identity() == (&*a.cluster_name, &*a.namespace, &*a.service_account)
                    && self.kept_association(a).is_some()
            });
            match current {
                Some(a) if a.role_arn == spec.role_arn => {}
                Some(a) => {
                    let p = json!({"clusterName": a.cluster_name, "associationId": a.association_id, "roleArn": spec.role_arn});
                    self.actions.push(act("UpdatePodIdentityAssociation", p));
                }
                None => {
                    let p = json!({
                        "clusterName": spec.cluster_name,
                        "oidcProviderArn": spec.open_id_connect_provider_arn,
                        "namespace": spec.namespace,
                        "serviceAccount": spec.service_account,
                        "roleArn": spec.role_arn,
                        "tags": spec.tags,
                    });
                    self.actions.push(act("CreatePodIdentityAssociation", p));
                }
            }
        }
    }

    /// Phase 4a: take roles out of the instance profiles that lose them, or whose role is
    /// deleted or replaced (a role in a profile cannot be deleted); delete the profiles that
    /// go away or are replaced, emptied first.
    fn unlink_instance_profiles_phase(&mut self) {
        for p in self.t.instance_profiles.values() {
            let kept = self.kept_instance_profile(p);
            for role in &p.roles {
                let stays = kept.is_some_and(|s| s.roles.iter().any(|r| key(r) == key(role)))
                    && self.role_stays(role);
                if !stays {
                    let params = json!({"InstanceProfileName": p.name, "RoleName": role});
                    self.actions
                        .push(act("RemoveRoleFromInstanceProfile", params));
                }
            }
            if kept.is_none() {
                let params = json!({"InstanceProfileName": p.name});
                self.actions.push(act("DeleteInstanceProfile", params));
            }
        }
    }

    /// Phase 7d: create instance profiles that are new or replaced; retag the ones that stay;
    /// add the roles each lacks (new ones, and replaced roles taken out in phase 4a).
    fn instance_profiles_phase(&mut self) {
        for spec in &self.d.instance_profiles {
            let name = spec.instance_profile_name.as_str();
            let current = self
                .t
                .instance_profiles
                .get(&key(name))
                .filter(|p| self.kept_instance_profile(p).is_some());
            match current {
                None => {
                    let mut p = params(&[
                        ("InstanceProfileName", Value::from(name)),
                        ("Path", Value::from(spec.path.as_str())),
                    ]);
                    if !spec.tags.is_empty() {
                        p.insert("Tags".into(), tags_json(&spec.tags));
                    }
                    self.push(act("CreateInstanceProfile", Value::Object(p)));
                }
                Some(current) => {
                    let (untag, tag) = tag_changes(&current.tags, &spec.tags, false);
                    if !untag.is_empty() {
                        let p = json!({"InstanceProfileName": name, "TagKeys": untag});
                        self.push(act("UntagInstanceProfile", p));
                    }
                    if !tag.is_empty() {
                        let p = json!({"InstanceProfileName": name, "Tags": tags_json(&tag)});
                        self.push(act("TagInstanceProfile", p));
                    }
                }
            }
            let mut seen = BTreeSet::new();
            for role in &spec.roles {
                let k = key(role);
                let linked = current.is_some_and(|p| p.roles.iter().any(|r| key(r) == k))
                    && self.role_stays(role);
                if !linked && seen.insert(k.clone()) {
                    let declared = self
                        .roles
                        .get(&k)
                        .map_or(role.as_str(), |r| r.role_name.as_str());
                    let p = json!({"InstanceProfileName": name, "RoleName": declared});
                    self.actions.push(act("AddRoleToInstanceProfile", p));
                }
            }
        }
    }

    /// Phase 9a (continued): create SAML providers that are new or replaced; update the
    /// metadata and tags of the ones that stay.
    fn saml_phase(&mut self) {
        for spec in &self.d.saml_providers {
            let current = self
                .t
                .saml_providers
                .get(&key(&spec.name))
                .filter(|p| self.kept_saml_provider(p).is_some());
            let Some(current) = current else {
                let mut p = params(&[
                    ("Name", Value::from(spec.name.as_str())),
                    (
                        "SAMLMetadataDocument",
                        Value::from(spec.saml_metadata_document.as_str()),
                    ),
                ]);
                if !spec.tags.is_empty() {
                    p.insert("Tags".into(), tags_json(&spec.tags));
                }
                self.push(act("CreateSAMLProvider", Value::Object(p)));
                continue;
            };
            let arn = current.arn.as_str();
            if current.metadata_document != spec.saml_metadata_document {
                let p = json!({
                    "SAMLProviderArn": arn,
                    "SAMLMetadataDocument": spec.saml_metadata_document,
                });
                self.push(act("UpdateSAMLProvider", p));
            }
            let (untag, tag) = tag_changes(&current.tags, &spec.tags, false);
            if !untag.is_empty() {
                let p = json!({"SAMLProviderArn": arn, "TagKeys": untag});
                self.push(act("UntagSAMLProvider", p));
            }
            if !tag.is_empty() {
                let p = json!({"SAMLProviderArn": arn, "Tags": tags_json(&tag)});
                self.push(act("TagSAMLProvider", p));
            }
        }
    }

    /// Phase 9c: the account password policy, set whole when it differs, deleted when the
    /// spec has none.
    fn password_policy_phase(&mut self) {
        let current = self
            .t
            .password_policy
            .as_ref()
            .map(PasswordPolicySpec::from_policy);
        match (current, &self.d.password_policy) {
            (current, Some(wanted)) if current.as_ref() != Some(&wanted.normalized()) => {
                self.push(act("UpdateAccountPasswordPolicy", wanted.parameters()));
            }
            (Some(_), None) => {
                self.push(act("DeleteAccountPasswordPolicy", json!({})));
            }
            _ => {}
        }
    }

    /// Phase 9b: the account alias.
    fn alias_phase(&mut self) {
        match (&self.t.alias, &self.d.account_alias) {
            (current, Some(wanted)) if current.as_ref() != Some(wanted) => {
                let p = json!({"AccountAlias": wanted});
                self.actions.push(act("CreateAccountAlias", p));
            }
            (Some(current), None) => {
                let p = json!({"AccountAlias": current});
                self.actions.push(act("DeleteAccountAlias", p));
            }
            _ => {}
        }
    }
}

/// Fails when two tag keys of one user or role differ only in case.
fn check_tag_keys(
    tags: &BTreeMap<String, String>,
    what: &str,
    dup: &impl Fn(&str, &str) -> PlanError,
) -> Result<(), PlanError> {
    let mut seen = BTreeSet::new();
    for k in tags.keys() {
        if !seen.insert(k.to_lowercase()) {
            return Err(dup(what, k));
        }
    }
    Ok(())
}
