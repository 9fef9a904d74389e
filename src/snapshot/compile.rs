//! Compiling a tenant into a snapshot, and resolving principals against it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ring::digest;

use crate::account::AccountId;
use crate::authz::{Context, OrgLevel, PolicySet, Principal};
use crate::directory::{DerivedAccessKey, HeldAccessKey, Secret, SidecarKeys, Tag, Tenant};
use crate::jose::{IssuerKeyError, IssuerKeyring, Jwks};
use crate::policy::{
    CompiledPolicy, ContextValue, ParseOptions, PolicyDocument, PolicyError, PolicyKind, Timestamp,
};

use super::SnapshotVersion;

/// Where AWS-managed policies (`arn:aws:iam::aws:policy/...`) come from: compiled once per
/// process and shared by every tenant.
pub trait AwsManagedLookup {
    /// The compiled default version of an AWS-managed policy.
    fn compiled(&self, arn: &str) -> Option<Arc<CompiledPolicy>>;
}

/// The next [`TenantSnapshot::serial`]: at a million snapshots a second, 2^64 lasts 584,000 years.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// A tenant, validated and compiled. Immutable: a change is a new snapshot.
#[derive(Debug)]
pub struct TenantSnapshot {
    version: SnapshotVersion,
    /// This snapshot's number among all built in this process: see [`Self::serial`].
    serial: u64,
    tenant: Arc<Tenant>,
    users: HashMap<Box<str>, UserEntry>,
    roles: HashMap<Box<str>, RoleEntry>,
    access_keys: HashMap<Box<str>, AccessKeyEntry>,
    managed: HashMap<Box<str>, Arc<CompiledPolicy>>,
    resource_policies: HashMap<Box<str>, Arc<CompiledPolicy>>,
    context_keys: Box<[Box<str>]>,
    /// Whether one of `context_keys` follows from the clock: found once here, since the
    /// decision cache asks it of every request.
    reads_clock: bool,
    issuer_keys: IssuerKeyring,
    oidc_providers: Vec<OidcEntry>,
    /// Pod identity associations by [`pod_identity_key`] (issuer, namespace, service
    /// account), so that a container-credentials request finds its association without a scan.
    pod_identities: HashMap<Box<str>, PodIdentityEntry>,
    /// The tenant's SCPs as one organization level (empty: none attached, nothing capped).
    scp: Box<[OrgLevel]>,
    /// The root user's implicit permission over its own account: allow everything, which
    /// SCPs and explicit denies still cap.
    root_identity: [Arc<CompiledPolicy>; 1],
    /// Every document compiled from the tenant's text, by kind and id, with the digest of
    /// that text: the next version of the tenant reuses what did not change.
    documents: Documents,
}

/// The compiled documents of a snapshot, by kind and id.
type Documents = HashMap<(PolicyKind, Box<str>), CompiledDocument>;

/// A document compiled from text, and the SHA-256 digest of that text.
///
/// INVARIANT: `policy` is what parsing the text with `ParseOptions::stored(kind)` and compiling
/// it under `id` gives. Both steps are deterministic, so a document of the same kind, id and
/// digest in a later version is this very policy, validated already: it is shared, not
/// recompiled (issue #19 P5). SHA-256 rather than a fast hash because tenants write the texts:
/// a collision would serve the old policy for a new text.
#[derive(Debug)]
struct CompiledDocument {
    digest: digest::Digest,
    policy: Arc<CompiledPolicy>,
}

/// An OIDC provider, its keys parsed once.
#[derive(Debug)]
pub struct OidcEntry {
    /// The issuer URL (`https://…`).
    pub url: String,
    /// The provider's ARN.
    pub arn: String,
    /// The accepted audiences.
    pub client_ids: Vec<String>,
    /// The verification keys. A JWKS that does not parse verifies nothing, and the tenant
    /// is still served: one broken provider must not take down every decision.
    pub jwks: Jwks,
}

/// A pod identity association, resolved for the sidecar: the cluster's issuer and the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentityEntry {
    /// The association id (`a-…`).
    pub association_id: Box<str>,
    /// The association's ARN.
    pub association_arn: Box<str>,
    /// The cluster's name.
    pub cluster_name: Box<str>,
    /// The cluster's ARN (`arn:aws:eks:{region}:{account}:cluster/{name}`), the
    /// `eks-cluster-arn` session tag.
    pub cluster_arn: Box<str>,
    /// The issuer URL of the cluster's OIDC provider.
    pub issuer: Box<str>,
    /// The namespace.
    pub namespace: Box<str>,
    /// The service account.
    pub service_account: Box<str>,
    /// The role's ARN.
    pub role_arn: Box<str>,
}

/// A user with everything a decision needs.
#[derive(Debug)]
pub struct UserEntry {
    /// The user as a request principal (ARN and unique id).
    pub principal: Principal,
    /// The name as written.
    pub name: Box<str>,
    /// The path.
    pub path: Box<str>,
    /// The unique id.
    pub user_id: Box<str>,
    /// Identity policies: the user's inline and attached ones, then each group's.
    pub identity: Vec<Arc<CompiledPolicy>>,
    /// The permissions boundary (zero or one policy).
    pub boundary: Vec<Arc<CompiledPolicy>>,
    /// Tags, the values of `aws:PrincipalTag/*`.
    pub tags: Vec<Tag>,
    /// The context keys that follow from the user, built once.
    pub context: Context,
}

/// A role with everything `AssumeRole` and its sessions' decisions need.
#[derive(Debug)]
pub struct RoleEntry {
    /// The role's name.
    pub name: Box<str>,
    /// The role's ARN, path included (the value of `aws:PrincipalArn` for its sessions).
    pub arn: Box<str>,
    /// The unique id (`AROA…`).
    pub role_id: Box<str>,
    /// Identity policies: inline, attached, and `AWSRevokeOlderSessions` when sessions were
    /// revoked.
    pub identity: Vec<Arc<CompiledPolicy>>,
    /// The permissions boundary (zero or one policy).
    pub boundary: Vec<Arc<CompiledPolicy>>,
    /// The trust policy.
    pub trust: Arc<CompiledPolicy>,
    /// The longest session `AssumeRole` may grant, in seconds.
    pub max_session_duration: u32,
    /// Tags.
    pub tags: Vec<Tag>,
    /// The context keys that follow from the role (its sessions add `aws:userid`), built once.
    pub context: Context,
}

/// An access key, for authenticating callers.
#[derive(Debug)]
pub struct AccessKeyEntry {
    /// The owning user's lowercased name (empty for the root user's key).
    pub user: Box<str>,
    /// True for the root user's key.
    pub root: bool,
    /// What proves a presentation of the key.
    pub material: KeyMaterial,
    /// Whether the key may be used.
    pub active: bool,
}

/// What proves a presentation of a long-term access key (issue #20, item 2): the secret at
/// the control plane, which authenticates its admin API with it; at a sidecar only what
/// [`Tenant::derive_sidecar_keys`] left of it, which cannot sign and expires with its last
/// date key.
#[derive(Debug, Clone)]
pub enum KeyMaterial {
    /// The secret access key.
    Secret(Secret),
    /// The verifier and date keys of the key under the tenant's salt, decoded.
    Derived(Arc<HeldAccessKey>),
    /// Neither (a payload that lost both): nothing verifies.
    Missing,
}

/// A principal resolved against a snapshot: the policies that apply to it.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// Identity policies.
    pub identity: &'a [Arc<CompiledPolicy>],
    /// The permissions boundary.
    pub boundary: &'a [Arc<CompiledPolicy>],
    /// The principal's tags.
    pub tags: &'a [Tag],
    /// The entity's ARN (`aws:PrincipalArn`), when it is an IAM entity.
    pub entity_arn: Option<&'a str>,
    /// The entity's unique id.
    pub unique_id: Option<&'a str>,
    /// The context keys that follow from the entity, built when the snapshot was.
    pub base_context: Option<&'a Context>,
    /// The tenant's SCPs.
    pub scp: &'a [OrgLevel],
}

/// Why a tenant could not be compiled. The message names the tenant and the entity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// A stored document does not parse for its kind.
    #[error("tenant `{tenant}`: {entity}: invalid policy: {code}: {message}")]
    InvalidPolicy {
        /// The tenant.
        tenant: String,
        /// The entity and policy (`user alice, inline policy S3`).
        entity: String,
        /// AWS's error code.
        code: crate::error::AwsCode,
        /// AWS's message.
        message: String,
    },
    /// An entity names a policy that does not exist.
    #[error("tenant `{tenant}`: {entity}: policy `{arn}` does not exist")]
    DanglingPolicy {
        /// The tenant.
        tenant: String,
        /// The entity.
        entity: String,
        /// The missing policy's ARN.
        arn: String,
    },
    /// A user is a member of a group that does not exist.
    #[error("tenant `{tenant}`: user `{user}` is in group `{group}`, which does not exist")]
    DanglingGroup {
        /// The tenant.
        tenant: String,
        /// The user.
        user: String,
        /// The missing group.
        group: String,
    },
    /// The tenant's account id is not 12 digits.
    #[error("tenant `{0}`: the account id must be 12 digits")]
    InvalidAccountId(String),
    /// An issuer key is unusable (its halves do not match, or its id is malformed).
    #[error("tenant `{tenant}`: {source}")]
    InvalidIssuerKey {
        /// The tenant.
        tenant: String,
        /// Why.
        source: IssuerKeyError,
    },
    /// A managed policy's default version is missing.
    #[error("tenant `{tenant}`: policy `{arn}` has no version `{version}`")]
    MissingDefaultVersion {
        /// The tenant.
        tenant: String,
        /// The policy.
        arn: String,
        /// The missing version.
        version: String,
    },
}

/// Compiles documents of one tenant, naming the entity in every error.
struct Compiler<'t> {
    tenant: &'t Tenant,
    managed: HashMap<Box<str>, Arc<CompiledPolicy>>,
    aws: &'t dyn AwsManagedLookup,
    /// The documents of the version this one replaces, if any, for reuse.
    previous: Option<&'t Documents>,
    /// The documents compiled (or reused) so far.
    documents: RefCell<Documents>,
}

// === impl TenantSnapshot ===

impl TenantSnapshot {
    /// Validates and compiles `tenant` at `version`. Every document is parsed with the rules of
    /// its kind and every reference resolved; one failure refuses the whole tenant.
    pub fn compile(
        tenant: Arc<Tenant>,
        version: SnapshotVersion,
        aws: &dyn AwsManagedLookup,
    ) -> Result<Self, SnapshotError> {
        Self::compile_reusing(tenant, version, aws, None)
    }

    /// [`Self::compile`], sharing with `previous` (the snapshot this one replaces) every
    /// document whose kind, id and text are unchanged: a change to one policy of a tenant
    /// parses and compiles that policy only. The result is the snapshot `compile` gives.
    pub fn compile_reusing(
        tenant: Arc<Tenant>,
        version: SnapshotVersion,
        aws: &dyn AwsManagedLookup,
        previous: Option<&TenantSnapshot>,
    ) -> Result<Self, SnapshotError> {
        let t = &*tenant;
        if !AccountId::is_valid(&t.account_id) {
            return Err(SnapshotError::InvalidAccountId(t.account_id.clone()));
        }
        let mut compiler = Compiler {
            tenant: t,
            managed: HashMap::new(),
            aws,
            previous: previous.map(|p| &p.documents),
            documents: RefCell::default(),
        };
        // Managed policies first: users, groups and roles attach them.
        compiler.managed_policies()?;
        let users = compiler.users()?;
        let roles = compiler.roles()?;
        let resource_policies = compiler.resource_policies()?;
        let scps = compiler.scps()?;
        let context_keys =
            context_keys(&compiler.managed, &users, &roles, &resource_policies, &scps);
        let issuer_keys = issuer_keyring(t)?;
        let documents = compiler.documents.take();
        Ok(Self {
            documents,
            version,
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            users,
            roles,
            access_keys: access_keys(t),
            managed: compiler.managed,
            resource_policies,
            reads_clock: crate::policy::reads_clock(&context_keys),
            context_keys,
            issuer_keys,
            oidc_providers: oidc_providers(t),
            pod_identities: pod_identities(t),
            scp: if scps.is_empty() {
                Box::default()
            } else {
                Box::new([OrgLevel {
                    name: t.account_id.as_str().into(),
                    policies: scps,
                }])
            },
            root_identity: [root_allow_all()],
            tenant,
        })
    }

    /// The tenant's SCPs as organization levels (empty when none is attached).
    pub fn scp(&self) -> &[OrgLevel] {
        &self.scp
    }

    /// The tenant's account id.
    pub fn account_id(&self) -> &str {
        &self.tenant.account_id
    }

    /// The version this snapshot was built from.
    pub fn version(&self) -> SnapshotVersion {
        self.version
    }

    /// A number no other snapshot built in this process has: it names this snapshot's
    /// tenant and version together in eight bytes, so that a key which must change when
    /// either does (the decision cache's) carries it in place of both.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The directory the snapshot was compiled from.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// A user by name (any case).
    pub fn user(&self, name: &str) -> Option<&UserEntry> {
        self.users.get(name.to_lowercase().as_str())
    }

    /// A role by name (any case).
    pub fn role(&self, name: &str) -> Option<&RoleEntry> {
        self.roles.get(name.to_lowercase().as_str())
    }

    /// An access key by id.
    pub fn access_key(&self, access_key_id: &str) -> Option<&AccessKeyEntry> {
        self.access_keys.get(access_key_id)
    }

    /// A customer managed policy (its default version) by ARN.
    pub fn managed_policy(&self, arn: &str) -> Option<&Arc<CompiledPolicy>> {
        self.managed.get(arn)
    }

    /// The resource policy registered for `arn`.
    pub fn resource_policy(&self, arn: &str) -> Option<&Arc<CompiledPolicy>> {
        self.resource_policies.get(arn)
    }

    /// The tenant's session-token issuer keys.
    pub fn issuer_keys(&self) -> &IssuerKeyring {
        &self.issuer_keys
    }

    /// The OIDC provider whose URL is `issuer` (exact, as AWS compares it).
    pub fn oidc_provider(&self, issuer: &str) -> Option<&OidcEntry> {
        self.oidc_providers.iter().find(|p| p.url == issuer)
    }

    /// The pod identity association of `service_account` in `namespace` of the cluster whose
    /// OIDC issuer is `issuer`: one hash lookup.
    pub fn pod_identity(
        &self,
        issuer: &str,
        namespace: &str,
        service_account: &str,
    ) -> Option<&PodIdentityEntry> {
        self.pod_identities
            .get(pod_identity_key(issuer, namespace, service_account).as_str())
    }

    /// Every request context key some policy of the tenant reads (lowercased, sorted). A
    /// decision cache keys on these and no others.
    pub fn context_keys(&self) -> &[Box<str>] {
        &self.context_keys
    }

    /// True when one of [`Self::context_keys`] follows from the clock
    /// ([`CLOCK_KEYS`](crate::policy::CLOCK_KEYS)): a decision may then hold for one second only.
    pub fn reads_clock(&self) -> bool {
        self.reads_clock
    }

    /// The policies that apply to `principal`, or `None` when it names an entity this tenant
    /// does not have (or a principal of another account). The root user, services and
    /// anonymous callers have no identity policies.
    pub fn resolve(&self, principal: &Principal) -> Option<Resolved<'_>> {
        let none = Resolved {
            identity: &[],
            boundary: &[],
            tags: &[],
            entity_arn: None,
            unique_id: None,
            base_context: None,
            // Callers from outside the account (services, the anonymous) are not capped by
            // its SCPs.
            scp: &[],
        };
        if principal
            .account()
            .is_some_and(|a| a != self.tenant.account_id)
        {
            return None;
        }
        match principal {
            Principal::User { arn, .. } => {
                let user = self.user(arn.rsplit('/').next()?)?;
                (principal_arn_of(&user.principal) == Some(&**arn)).then_some(Resolved {
                    identity: &user.identity,
                    boundary: &user.boundary,
                    tags: &user.tags,
                    entity_arn: principal_arn_of(&user.principal),
                    unique_id: Some(&user.user_id),
                    base_context: Some(&user.context),
                    scp: &self.scp,
                })
            }
            Principal::AssumedRole { role_name, .. }
            | Principal::Role {
                name: role_name, ..
            } => {
                let role = self.role(role_name)?;
                Some(Resolved {
                    identity: &role.identity,
                    boundary: &role.boundary,
                    tags: &role.tags,
                    entity_arn: Some(&role.arn),
                    unique_id: Some(&role.role_id),
                    base_context: Some(&role.context),
                    scp: &self.scp,
                })
            }
            Principal::Root { .. } => Some(Resolved {
                identity: &self.root_identity,
                scp: &self.scp,
                ..none
            }),
            Principal::Service { .. } | Principal::Anonymous | Principal::WebIdentity { .. } => {
                Some(none)
            }
            Principal::FederatedUser { .. } => None,
        }
    }
}

// === impl Resolved ===

impl<'a> Resolved<'a> {
    /// The policy set of a request by this principal, with the target's resource policy and
    /// the session's policies.
    pub fn policy_set(
        &self,
        resource: Option<&'a CompiledPolicy>,
        session: &'a [Arc<CompiledPolicy>],
    ) -> PolicySet<'a> {
        PolicySet {
            identity: self.identity,
            boundary: self.boundary,
            session,
            resource,
            scp: self.scp,
            ..PolicySet::default()
        }
    }

    /// Sets the request context keys that follow from the principal (IAM-SEMANTICS §3.7):
    /// `aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:userid`,
    /// `aws:username` and `aws:PrincipalTag/*`. They replace any value the caller sent.
    /// Users' and roles' keys were built with the snapshot; a session adds its `aws:userid`.
    pub fn fill_context(&self, principal: &Principal, ctx: &mut Context) {
        let Some(base) = self.base_context else {
            return self.fill_context_from_parts(principal, ctx);
        };
        ctx.merge(base);
        if let (Principal::AssumedRole { session_name, .. }, Some(id)) = (principal, self.unique_id)
        {
            ctx.insert(
                "aws:userid",
                ContextValue::new(format!("{id}:{session_name}")),
            );
        }
    }

    fn fill_context_from_parts(&self, principal: &Principal, ctx: &mut Context) {
        let mut set = |key: &str, value: &str| ctx.insert(key, ContextValue::new(value));
        let account = principal.account().unwrap_or("anonymous");
        set("aws:PrincipalAccount", account);
        match principal {
            Principal::User { arn, .. } => {
                set("aws:PrincipalArn", arn);
                set("aws:PrincipalType", "User");
                set("aws:username", arn.rsplit('/').next().unwrap_or(""));
                if let Some(id) = self.unique_id {
                    set("aws:userid", id);
                }
            }
            Principal::AssumedRole { session_name, .. } => {
                set("aws:PrincipalType", "AssumedRole");
                if let Some(arn) = self.entity_arn {
                    set("aws:PrincipalArn", arn);
                }
                if let Some(id) = self.unique_id {
                    set("aws:userid", &format!("{id}:{session_name}"));
                }
            }
            Principal::Role { arn, .. } => {
                set("aws:PrincipalType", "AssumedRole");
                set("aws:PrincipalArn", arn);
            }
            Principal::Root { account } => {
                set("aws:PrincipalType", "Account");
                set("aws:PrincipalArn", &format!("arn:aws:iam::{account}:root"));
                set("aws:userid", account);
            }
            Principal::FederatedUser { account, name } => {
                set("aws:PrincipalType", "FederatedUser");
                set(
                    "aws:PrincipalArn",
                    &format!("arn:aws:sts::{account}:federated-user/{name}"),
                );
                set("aws:userid", &format!("{account}:{name}"));
            }
            Principal::Anonymous | Principal::WebIdentity { .. } | Principal::Service { .. } => {
                set("aws:PrincipalType", "Anonymous");
                set("aws:userid", "anonymous");
            }
        }
        for tag in self.tags {
            set(&format!("aws:PrincipalTag/{}", tag.key), &tag.value);
        }
    }
}

/// The context keys an entity's requests carry, computed once per snapshot with the same
/// code that fills them for principals built at request time.
fn base_context(principal: &Principal, arn: &str, unique_id: &str, tags: &[Tag]) -> Context {
    let mut ctx = Context::new();
    Resolved {
        identity: &[],
        boundary: &[],
        tags,
        entity_arn: Some(arn),
        unique_id: Some(unique_id),
        base_context: None,
        scp: &[],
    }
    .fill_context_from_parts(principal, &mut ctx);
    ctx
}

fn principal_arn_of(principal: &Principal) -> Option<&str> {
    match principal {
        Principal::User { arn, .. } | Principal::Role { arn, .. } => Some(arn),
        _ => None,
    }
}

// === impl Compiler ===

// === compile's steps ===

impl Compiler<'_> {
    /// Every customer managed policy at its default version.
    fn managed_policies(&mut self) -> Result<(), SnapshotError> {
        let t = self.tenant;
        for policy in t.policies.values() {
            let default = policy
                .versions
                .iter()
                .find(|v| v.version_id == policy.default_version_id)
                .ok_or_else(|| SnapshotError::MissingDefaultVersion {
                    tenant: t.account_id.clone(),
                    arn: policy.arn.clone(),
                    version: policy.default_version_id.clone(),
                })?;
            let compiled =
                self.document(&policy.arn, PolicyKind::Identity, &default.document, || {
                    format!("managed policy `{}`", policy.arn)
                })?;
            self.managed.insert(policy.arn.as_str().into(), compiled);
        }
        Ok(())
    }

    /// Every user with its identity policies (its own, its groups'), boundary and context.
    fn users(&self) -> Result<HashMap<Box<str>, UserEntry>, SnapshotError> {
        let t = self.tenant;
        let mut users = HashMap::with_capacity(t.users.len());
        for (key, user) in &t.users {
            let entity = || format!("user `{}`", user.name);
            let mut identity = self.inline(&user.arn, &user.inline_policies, &entity)?;
            identity.extend(self.attached(&user.attached_policies, &entity)?);
            for group_name in &user.groups {
                let group = t.groups.get(&group_name.to_lowercase()).ok_or_else(|| {
                    SnapshotError::DanglingGroup {
                        tenant: t.account_id.clone(),
                        user: user.name.clone(),
                        group: group_name.clone(),
                    }
                })?;
                let group_entity = || format!("group `{}`", group.name);
                identity.extend(self.inline(&group.arn, &group.inline_policies, &group_entity)?);
                identity.extend(self.attached(&group.attached_policies, &group_entity)?);
            }
            dedup_shared(&mut identity);
            let boundary = self.boundary(user.permissions_boundary.as_deref(), &entity)?;
            let principal = Principal::User {
                account: t.account_id.as_str().into(),
                arn: user.arn.as_str().into(),
                unique_id: Some(user.user_id.as_str().into()),
            };
            let context = base_context(&principal, &user.arn, &user.user_id, &user.tags);
            users.insert(
                key.as_str().into(),
                UserEntry {
                    principal,
                    context,
                    name: user.name.as_str().into(),
                    path: user.path.as_str().into(),
                    user_id: user.user_id.as_str().into(),
                    identity,
                    boundary,
                    tags: user.tags.clone(),
                },
            );
        }
        Ok(users)
    }

    /// Every role with its identity policies, boundary, trust policy and context; a role
    /// whose older sessions were revoked gets the denying policy that does it.
    fn roles(&self) -> Result<HashMap<Box<str>, RoleEntry>, SnapshotError> {
        let t = self.tenant;
        let mut roles = HashMap::with_capacity(t.roles.len());
        for (key, role) in &t.roles {
            let entity = || format!("role `{}`", role.name);
            let mut identity = self.inline(&role.arn, &role.inline_policies, &entity)?;
            identity.extend(self.attached(&role.attached_policies, &entity)?);
            dedup_shared(&mut identity);
            if let Some(before) = role.sessions_revoked_before {
                identity.push(revoke_older_sessions(&role.arn, before));
            }
            let trust = self.document(
                &format!("{}#trust", role.arn),
                PolicyKind::Trust,
                &role.assume_role_policy,
                || format!("role `{}` trust policy", role.name),
            )?;
            roles.insert(
                key.as_str().into(),
                RoleEntry {
                    name: role.name.as_str().into(),
                    arn: role.arn.as_str().into(),
                    role_id: role.role_id.as_str().into(),
                    boundary: self.boundary(role.permissions_boundary.as_deref(), &entity)?,
                    identity,
                    trust,
                    max_session_duration: role.max_session_duration,
                    tags: role.tags.clone(),
                    context: base_context(
                        &Principal::Role {
                            account: t.account_id.as_str().into(),
                            arn: role.arn.as_str().into(),
                            name: role.name.as_str().into(),
                            unique_id: Some(role.role_id.as_str().into()),
                        },
                        &role.arn,
                        &role.role_id,
                        &role.tags,
                    ),
                },
            );
        }
        Ok(roles)
    }

    /// The resource policies registered with the tenant, by resource ARN.
    fn resource_policies(&self) -> Result<HashMap<Box<str>, Arc<CompiledPolicy>>, SnapshotError> {
        let t = self.tenant;
        let mut resource_policies = HashMap::with_capacity(t.resource_policies.len());
        for (arn, policy) in &t.resource_policies {
            let compiled = self.document(
                &format!("{arn}#resource-policy"),
                PolicyKind::Resource,
                &policy.document,
                || format!("resource policy of `{arn}`"),
            )?;
            resource_policies.insert(arn.as_str().into(), compiled);
        }
        Ok(resource_policies)
    }

    /// The service control policies attached to the tenant.
    fn scps(&self) -> Result<Vec<Arc<CompiledPolicy>>, SnapshotError> {
        let t = self.tenant;
        let mut scps = Vec::with_capacity(t.service_control_policies.len());
        for scp in t.service_control_policies.values() {
            scps.push(self.document(
                &format!("scp/{}", scp.name),
                PolicyKind::Scp,
                &scp.document,
                || format!("service control policy `{}`", scp.name),
            )?);
        }
        Ok(scps)
    }
}

/// Every access key by id: the users' and the root user's.
fn access_keys(t: &Tenant) -> HashMap<Box<str>, AccessKeyEntry> {
    let root_key = t.root_access_key.iter().map(|k| {
        (
            Box::<str>::from(k.access_key_id.as_str()),
            AccessKeyEntry {
                user: "".into(),
                root: true,
                material: key_material(&k.secret, None, None),
                active: true,
            },
        )
    });
    let tenant_keys = &t.sidecar_keys;
    t.users
        .iter()
        .flat_map(|(key, user)| {
            user.access_keys.iter().map(move |k| {
                (
                    Box::<str>::from(k.access_key_id.as_str()),
                    AccessKeyEntry {
                        user: key.as_str().into(),
                        root: false,
                        material: key_material(&k.secret, k.derived.as_ref(), Some(tenant_keys)),
                        active: k.status == crate::directory::AccessKeyStatus::Active,
                    },
                )
            })
        })
        .chain(root_key)
        .collect()
}

/// The derived keys where a key has them (a sidecar's snapshot), else the secret (the
/// control plane's); an empty secret is no secret, so it never matches an empty presentation.
fn key_material(
    secret: &Secret,
    derived: Option<&DerivedAccessKey>,
    tenant: Option<&SidecarKeys>,
) -> KeyMaterial {
    match (derived, tenant) {
        (Some(key), Some(tenant)) => KeyMaterial::Derived(Arc::new(key.held(tenant))),
        _ if !secret.is_empty() => KeyMaterial::Secret(secret.clone()),
        _ => KeyMaterial::Missing,
    }
}

/// The condition keys any of the tenant's policies reads, sorted and without repeats.
fn context_keys(
    managed: &HashMap<Box<str>, Arc<CompiledPolicy>>,
    users: &HashMap<Box<str>, UserEntry>,
    roles: &HashMap<Box<str>, RoleEntry>,
    resource_policies: &HashMap<Box<str>, Arc<CompiledPolicy>>,
    scps: &[Arc<CompiledPolicy>],
) -> Box<[Box<str>]> {
    let mut context_keys: Vec<Box<str>> = managed
        .values()
        .chain(
            users
                .values()
                .flat_map(|u: &UserEntry| u.identity.iter().chain(&u.boundary)),
        )
        .chain(roles.values().flat_map(|r: &RoleEntry| {
            r.identity
                .iter()
                .chain(&r.boundary)
                .chain(std::iter::once(&r.trust))
        }))
        .chain(resource_policies.values())
        .chain(scps)
        .flat_map(|p| p.context_keys().iter().cloned())
        .collect();
    context_keys.sort_unstable();
    context_keys.dedup();
    context_keys.into_boxed_slice()
}

/// The tenant's issuer keys, ready to mint and verify: a malformed key refuses the tenant.
fn issuer_keyring(t: &Tenant) -> Result<IssuerKeyring, SnapshotError> {
    IssuerKeyring::try_new(&t.issuer_keys).map_err(|source| SnapshotError::InvalidIssuerKey {
        tenant: t.account_id.clone(),
        source,
    })
}

/// The OIDC providers with their keys parsed once.
fn oidc_providers(t: &Tenant) -> Vec<OidcEntry> {
    t.oidc_providers
        .values()
        .map(|p| OidcEntry {
            url: p.url.clone(),
            arn: p.arn.clone(),
            client_ids: p.client_ids.clone(),
            // INVARIANT: a JWKS that does not parse verifies nothing (no keys), and the
            // tenant is still served: one broken provider must not take down every decision.
            // Keys are checked when registered, so this only meets JWKS stored before a
            // stricter parser.
            jwks: Jwks::parse(&p.jwks).unwrap_or_default(),
        })
        .collect()
}

/// The index key of a pod identity association. A newline separates the parts: none of an
/// issuer URL, a namespace or a service account name can hold one.
fn pod_identity_key(issuer: &str, namespace: &str, service_account: &str) -> String {
    format!("{issuer}\n{namespace}\n{service_account}")
}

/// The pod identity associations, indexed. An association whose provider was deleted since is
/// left out: its pods' tokens have no keys to verify with, so they get no credentials, and the
/// rest of the tenant is still served.
fn pod_identities(t: &Tenant) -> HashMap<Box<str>, PodIdentityEntry> {
    t.pod_identity_associations
        .values()
        .filter_map(|a| {
            let provider = t
                .oidc_providers
                .values()
                .find(|p| p.arn == a.oidc_provider_arn)?;
            let key = pod_identity_key(&provider.url, &a.namespace, &a.service_account);
            let entry = PodIdentityEntry {
                association_id: a.association_id.as_str().into(),
                association_arn: a.association_arn.as_str().into(),
                cluster_arn: a
                    .association_arn
                    .split_once(":podidentityassociation/")
                    .map(|(prefix, _)| format!("{prefix}:cluster/{}", a.cluster_name))
                    .unwrap_or_default()
                    .into(),
                cluster_name: a.cluster_name.as_str().into(),
                issuer: provider.url.as_str().into(),
                namespace: a.namespace.as_str().into(),
                service_account: a.service_account.as_str().into(),
                role_arn: a.role_arn.as_str().into(),
            };
            Some((key.into(), entry))
        })
        .collect()
}

impl Compiler<'_> {
    fn document(
        &self,
        id: &str,
        kind: PolicyKind,
        text: &str,
        entity: impl Fn() -> String,
    ) -> Result<Arc<CompiledPolicy>, SnapshotError> {
        let digest = text_digest(text);
        let key = (kind, Box::<str>::from(id));
        let same_text = |known: &&CompiledDocument| known.digest.as_ref() == digest.as_ref();
        // A group's inline policy comes up once per member: compiled for the first only.
        if let Some(known) = self.documents.borrow().get(&key).filter(same_text) {
            return Ok(Arc::clone(&known.policy));
        }
        if let Some(known) = self
            .previous
            .and_then(|previous| previous.get(&key))
            .filter(same_text)
        {
            let policy = Arc::clone(&known.policy);
            self.documents.borrow_mut().insert(
                key,
                CompiledDocument {
                    digest,
                    policy: Arc::clone(&policy),
                },
            );
            return Ok(policy);
        }
        // Stored documents passed the write-time rules of the control plane; a sidecar
        // re-checks the grammar of the kind (a newer control plane may know more) but not the
        // write-time quotas.
        let document = PolicyDocument::parse_with(text, ParseOptions::stored(kind)).map_err(
            |e: PolicyError| SnapshotError::InvalidPolicy {
                tenant: self.tenant.account_id.clone(),
                entity: entity(),
                code: e.code(),
                message: e.message().to_owned(),
            },
        )?;
        let policy = Arc::new(CompiledPolicy::compile(id, kind, &document));
        self.documents.borrow_mut().insert(
            key,
            CompiledDocument {
                digest,
                policy: Arc::clone(&policy),
            },
        );
        Ok(policy)
    }

    fn inline(
        &self,
        entity_arn: &str,
        policies: &crate::directory::InlinePolicies,
        entity: &dyn Fn() -> String,
    ) -> Result<Vec<Arc<CompiledPolicy>>, SnapshotError> {
        policies
            .iter()
            .map(|(name, text)| {
                self.document(
                    &format!("{entity_arn}#inline/{name}"),
                    PolicyKind::Identity,
                    text,
                    || format!("{}, inline policy `{name}`", entity()),
                )
            })
            .collect()
    }

    fn lookup(&self, arn: &str) -> Option<Arc<CompiledPolicy>> {
        self.managed
            .get(arn)
            .cloned()
            .or_else(|| self.aws.compiled(arn))
    }

    fn attached(
        &self,
        arns: &[String],
        entity: &dyn Fn() -> String,
    ) -> Result<Vec<Arc<CompiledPolicy>>, SnapshotError> {
        arns.iter()
            .map(|arn| {
                self.lookup(arn)
                    .ok_or_else(|| SnapshotError::DanglingPolicy {
                        tenant: self.tenant.account_id.clone(),
                        entity: entity(),
                        arn: arn.clone(),
                    })
            })
            .collect()
    }

    fn boundary(
        &self,
        arn: Option<&str>,
        entity: &dyn Fn() -> String,
    ) -> Result<Vec<Arc<CompiledPolicy>>, SnapshotError> {
        let Some(arn) = arn else {
            return Ok(Vec::new());
        };
        let policy = self
            .lookup(arn)
            .ok_or_else(|| SnapshotError::DanglingPolicy {
                tenant: self.tenant.account_id.clone(),
                entity: format!("{} permissions boundary", entity()),
                arn: arn.to_owned(),
            })?;
        // The same document, evaluated as a boundary: its decisions report the boundary type.
        Ok(vec![Arc::new(recompile_as(&policy, PolicyKind::Boundary))])
    }
}

/// The SHA-256 digest of a document's text.
fn text_digest(text: &str) -> digest::Digest {
    digest::digest(&digest::SHA256, text.as_bytes())
}

/// A compiled policy's statements under another kind (for reporting: a managed policy used as
/// a boundary denies "in a permissions boundary policy").
fn recompile_as(policy: &CompiledPolicy, kind: PolicyKind) -> CompiledPolicy {
    policy.with_kind(kind)
}

/// Drops repeated attachments of the same managed policy (a user and its group may both
/// attach it): a second copy changes no decision and costs a scan.
fn dedup_shared(policies: &mut Vec<Arc<CompiledPolicy>>) {
    let mut seen: Vec<*const CompiledPolicy> = Vec::with_capacity(policies.len());
    policies.retain(|p| {
        let ptr = Arc::as_ptr(p);
        let new = !seen.contains(&ptr);
        seen.push(ptr);
        new
    });
}

/// The root user's implicit permissions: everything in its own account.
fn root_allow_all() -> Arc<CompiledPolicy> {
    on_everything(
        "root-user".into(),
        "RootUser",
        crate::policy::Effect::Allow,
        Vec::new(),
    )
}

/// AWS's `AWSRevokeOlderSessions` inline policy: deny everything to sessions issued before
/// `before` (IAM-SEMANTICS §4.8). Long-term credentials carry no `aws:TokenIssueTime`, so
/// `DateLessThan` is false for them and the deny does not apply.
fn revoke_older_sessions(role_arn: &str, before: i64) -> Arc<CompiledPolicy> {
    let when = Timestamp::from_epoch_seconds(before).to_string();
    on_everything(
        format!("{role_arn}#inline/AWSRevokeOlderSessions"),
        "AWSRevokeOlderSessions",
        crate::policy::Effect::Deny,
        vec![crate::policy::ConditionEntry {
            operator: crate::policy::ConditionOperator {
                qualifier: None,
                base: crate::policy::BaseOperator::DateLessThan,
                if_exists: false,
            },
            key: "aws:TokenIssueTime".into(),
            values: vec![when],
        }],
    )
}

/// An identity policy of one statement on every action and resource, built without text.
fn on_everything(
    name: String,
    sid: &str,
    effect: crate::policy::Effect,
    conditions: Vec<crate::policy::ConditionEntry>,
) -> Arc<CompiledPolicy> {
    let document = PolicyDocument {
        version: crate::policy::PolicyVersion::Current,
        id: None,
        statements: vec![crate::policy::Statement {
            sid: Some(sid.into()),
            effect,
            principal: None,
            action: crate::policy::ActionBlock {
                negated: false,
                patterns: vec!["*".into()],
            },
            resource: Some(crate::policy::ResourceBlock {
                negated: false,
                patterns: vec!["*".into()],
            }),
            conditions,
        }],
    };
    Arc::new(CompiledPolicy::compile(
        name,
        PolicyKind::Identity,
        &document,
    ))
}

#[cfg(test)]
pub(crate) mod tests;

/// The AWS-managed policies tenants may attach (`directory::aws_managed_policies`), compiled
/// once per process.
#[derive(Debug)]
pub struct AwsManagedCatalog {
    compiled: HashMap<&'static str, Arc<CompiledPolicy>>,
}

// === impl AwsManagedCatalog ===

impl AwsManagedCatalog {
    /// Compiles the catalog. Its documents ship with the binary and are tested, so one that
    /// does not parse is left out rather than taking the process down.
    pub fn compile() -> Self {
        let compiled = crate::directory::aws_managed_policies()
            .iter()
            .filter_map(|p| {
                let options = ParseOptions::aws_managed(PolicyKind::Identity);
                let document = PolicyDocument::parse_with(p.document, options).ok()?;
                Some((
                    p.arn,
                    Arc::new(CompiledPolicy::compile(
                        p.arn,
                        PolicyKind::Identity,
                        &document,
                    )),
                ))
            })
            .collect();
        Self { compiled }
    }

    /// The number of policies compiled.
    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    /// True when nothing compiled.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }
}

impl AwsManagedLookup for AwsManagedCatalog {
    fn compiled(&self, arn: &str) -> Option<Arc<CompiledPolicy>> {
        self.compiled.get(arn).cloned()
    }
}
