//! Tests of the STS operations over tenant snapshots (IAM-SEMANTICS §4, gold cases T17 and
//! T19–T24; RELIABILITY T19 and T23). Fixtures are built with the directory's own operations
//! and compiled like the control plane does; what a session may do is decided afterwards with
//! the authorization engine, as the sidecar does.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::directory::{
    AccessKey, CreateOidcProviderInput, CreatePolicyInput, CreateRoleInput, CreateUserInput, Tenant,
};
use crate::jose::Es256Signer;
use crate::snapshot::{AwsManagedLookup, SnapshotVersion};
use crate::sts::{authenticate, credential_tenant, Presented};

const A: &str = "111122223333";
const B: &str = "444455556666";
/// 2025-01-01T00:00:00Z: the revocation instant of gold case T22.
const T0: i64 = 1_735_689_600;

const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
const PROVIDER_ARN: &str =
    "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
const SA: &str = "system:serviceaccount:default:my-sa";

// === fixtures ===

struct NoAwsManaged;

impl AwsManagedLookup for NoAwsManaged {
    fn compiled(&self, _arn: &str) -> Option<Arc<CompiledPolicy>> {
        None
    }
}

/// Remembers the last step accepted per device, like the sidecar's guard.
#[derive(Debug, Default)]
struct Guard(RefCell<HashMap<(String, String), u64>>);

impl MfaReplayGuard for Guard {
    fn accept(&self, tenant: &str, serial: &str, step: u64) -> bool {
        let mut used = self.0.borrow_mut();
        let key = (tenant.to_owned(), serial.to_owned());
        if used.get(&key).is_some_and(|last| step <= *last) {
            return false;
        }
        used.insert(key, step);
        true
    }
}

/// Fresh randomness for every issue, so no two sessions of a test share a key id; per
/// thread, so that each test draws the same ids on every run.
fn fresh_ids() -> IdGenerator {
    thread_local! {
        static NEXT: Cell<u64> = const { Cell::new(1_000) };
    }
    IdGenerator::seeded(NEXT.replace(NEXT.get() + 1))
}

fn ts(at: i64) -> Timestamp {
    Timestamp::from_epoch_seconds(at)
}

/// A tenant under construction, with an issuer key.
struct World {
    tenant: Tenant,
    ids: IdGenerator,
    version: u64,
}

impl World {
    fn new(account: &str, seed: u64) -> Self {
        let mut tenant = Tenant::new(account, 0);
        let mut ids = IdGenerator::seeded(seed);
        tenant.rotate_issuer_key(&mut ids, 0).unwrap();
        Self {
            tenant,
            ids,
            version: 0,
        }
    }

    fn arn(&self, kind: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:{kind}/{name}", self.tenant.account_id)
    }

    fn root(&self) -> String {
        format!("arn:aws:iam::{}:root", self.tenant.account_id)
    }

    /// A user with one access key.
    fn user(&mut self, name: &str) -> AccessKey {
        self.tenant
            .create_user(
                &mut self.ids,
                T0 - 86_400,
                CreateUserInput {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .unwrap();
        self.tenant
            .create_access_key(&mut self.ids, T0 - 86_400, name)
            .unwrap()
    }

    fn user_policy(&mut self, user: &str, document: &str) {
        self.tenant
            .put_user_policy(user, "inline", document)
            .unwrap();
    }

    fn role_with(&mut self, input: CreateRoleInput) -> String {
        self.tenant
            .create_role(&mut self.ids, T0 - 86_400, input)
            .unwrap()
            .arn
            .clone()
    }

    fn role(&mut self, name: &str, trust: &str) -> String {
        self.role_with(CreateRoleInput {
            name: name.into(),
            assume_role_policy: trust.into(),
            ..Default::default()
        })
    }

    fn role_policy(&mut self, role: &str, document: &str) {
        self.tenant
            .put_role_policy(role, "inline", document)
            .unwrap();
    }

    fn role_id(&self, role: &str) -> String {
        self.tenant.get_role(role).unwrap().role_id.clone()
    }

    fn managed(&mut self, name: &str, document: &str) -> String {
        self.tenant
            .create_policy(
                &mut self.ids,
                T0 - 86_400,
                CreatePolicyInput {
                    name: name.into(),
                    document: document.into(),
                    ..Default::default()
                },
            )
            .unwrap()
            .arn
            .clone()
    }

    fn snapshot(&mut self) -> TenantSnapshot {
        self.version += 1;
        TenantSnapshot::compile(
            Arc::new(self.tenant.clone()),
            SnapshotVersion::new(1, self.version),
            &NoAwsManaged,
        )
        .unwrap()
    }
}

fn policy(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

fn allow(action: &str, resource: &str) -> String {
    policy(&allow_statement(action, resource))
}

fn allow_statement(action: &str, resource: &str) -> String {
    format!(r#"{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}"#)
}

/// A trust policy allowing `actions` to the AWS principal `principal`.
fn trusts(principal: &str, actions: &[&str]) -> String {
    policy(&trust_statement("Allow", principal, actions, ""))
}

fn trust_statement(effect: &str, principal: &str, actions: &[&str], condition: &str) -> String {
    let actions = serde_json::to_string(actions).unwrap();
    let condition = if condition.is_empty() {
        String::new()
    } else {
        format!(r#","Condition":{condition}"#)
    };
    format!(
        r#"{{"Effect":"{effect}","Principal":{{"AWS":"{principal}"}},"Action":{actions}{condition}}}"#
    )
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn login(snapshot: &TenantSnapshot, key: &AccessKey, at: i64) -> Caller {
    authenticate(
        snapshot,
        &Presented::Keys {
            access_key_id: &key.access_key_id,
            secret: key.secret.expose(),
            session_token: None,
        },
        ts(at),
    )
    .unwrap()
}

fn login_session(snapshot: &TenantSnapshot, issued: &Issued, at: i64) -> Result<Caller, StsError> {
    authenticate(
        snapshot,
        &Presented::Keys {
            access_key_id: &issued.access_key_id,
            secret: &issued.secret_access_key,
            session_token: Some(&issued.session_token),
        },
        ts(at),
    )
}

fn params(role_arn: &str) -> AssumeRoleParams<'_> {
    AssumeRoleParams {
        role_arn,
        role_session_name: "s1",
        ..AssumeRoleParams::default()
    }
}

fn assume_guarded(
    guard: &Guard,
    caller: &Caller,
    caller_snapshot: &TenantSnapshot,
    role_snapshot: &TenantSnapshot,
    p: &AssumeRoleParams<'_>,
    at: i64,
) -> Result<Issued, StsError> {
    let mut ids = fresh_ids();
    let mut env = IssueEnv {
        now: ts(at),
        ids: &mut ids,
        mfa: guard,
        latest_expiry: None,
        issuing: crate::sts::Issuing::IssuerKey,
    };
    assume_role(caller, caller_snapshot, role_snapshot, p, &mut env)
}

fn assume(
    caller: &Caller,
    snapshot: &TenantSnapshot,
    p: &AssumeRoleParams<'_>,
    at: i64,
) -> Result<Issued, StsError> {
    assume_guarded(&Guard::default(), caller, snapshot, snapshot, p, at)
}

fn session_token(
    guard: &Guard,
    caller: &Caller,
    snapshot: &TenantSnapshot,
    p: &GetSessionTokenParams<'_>,
    at: i64,
) -> Result<Issued, StsError> {
    let mut ids = fresh_ids();
    let mut env = IssueEnv {
        now: ts(at),
        ids: &mut ids,
        mfa: guard,
        latest_expiry: None,
        issuing: crate::sts::Issuing::IssuerKey,
    };
    get_session_token(caller, snapshot, p, &mut env)
}

fn web_identity(
    snapshot: &TenantSnapshot,
    p: &WebIdentityParams<'_>,
    at: i64,
) -> Result<WebIdentityIssued, StsError> {
    let mut ids = fresh_ids();
    let mut env = IssueEnv {
        now: ts(at),
        ids: &mut ids,
        mfa: &Guard::default(),
        latest_expiry: None,
        issuing: crate::sts::Issuing::IssuerKey,
    };
    assume_role_with_web_identity(snapshot, p, &mut env)
}

/// The request context of a request by `caller`, as the sidecar builds it.
fn context_of(snapshot: &TenantSnapshot, caller: &Caller, at: i64) -> Context {
    let resolved = snapshot.resolve(&caller.principal).unwrap();
    let mut ctx = Context::new();
    ctx.insert("aws:CurrentTime", ContextValue::from_timestamp(ts(at)));
    ctx.insert("aws:EpochTime", ContextValue::from_i64(at));
    resolved.fill_context(&caller.principal, &mut ctx);
    fill_session_context(caller.session.as_deref(), ts(at), &mut ctx);
    ctx
}

fn value(ctx: &Context, key: &str) -> Option<String> {
    match ctx.get(key)? {
        crate::policy::KeyValues::Single(v) => Some(v.as_str().to_owned()),
        crate::policy::KeyValues::Multi(vs) => Some(
            vs.iter()
                .map(ContextValue::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

/// What `caller` may do: its principal's current policies and its session policies.
fn allowed(
    snapshot: &TenantSnapshot,
    caller: &Caller,
    action: &str,
    resource: &str,
    at: i64,
) -> Outcome {
    let resolved = snapshot.resolve(&caller.principal).unwrap();
    let policies = resolved.policy_set(None, &caller.session_policies);
    let request = Request::try_new(caller.principal.clone(), action, resource)
        .unwrap()
        .with_context(context_of(snapshot, caller, at));
    evaluate(&policies, &request).outcome
}

fn denied_message(caller: &str, role_arn: &str) -> StsError {
    StsError::AccessDenied(format!(
        "User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    ))
}

// === T19: trust rules ===

/// Tenant A: users alice (identity allows sts:AssumeRole on every role) and bob (no
/// policies), and roles trusting the account, alice herself, someone else, or denying.
struct TrustWorld {
    snapshot: TenantSnapshot,
    alice: Caller,
    bob: Caller,
}

fn trust_world() -> TrustWorld {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    let bob = w.user("bob");
    w.user_policy("alice", &allow("sts:AssumeRole", "*"));
    let root = w.root();
    let alice_arn = w.arn("user", "alice");
    let other_arn = w.arn("user", "other");
    w.user("other");
    w.role("trusts-account", &trusts(&root, &["sts:AssumeRole"]));
    w.role("trusts-alice", &trusts(&alice_arn, &["sts:AssumeRole"]));
    w.role(
        "trusts-bob",
        &trusts(&w.arn("user", "bob"), &["sts:AssumeRole"]),
    );
    w.role("trusts-other", &trusts(&other_arn, &["sts:AssumeRole"]));
    w.role(
        "denies-account",
        &policy(&format!(
            "{},{}",
            trust_statement("Allow", &root, &["sts:AssumeRole"], ""),
            trust_statement("Deny", &root, &["sts:AssumeRole"], "")
        )),
    );
    let snapshot = w.snapshot();
    TrustWorld {
        alice: login(&snapshot, &alice, T0),
        bob: login(&snapshot, &bob, T0),
        snapshot,
    }
}

#[test]
fn trust_naming_the_account_needs_an_identity_allow() {
    let w = trust_world();
    let role = format!("arn:aws:iam::{A}:role/trusts-account");
    assert_eq!(
        assume(&w.bob, &w.snapshot, &params(&role), T0),
        Err(denied_message(&format!("arn:aws:iam::{A}:user/bob"), &role))
    );
    let issued = assume(&w.alice, &w.snapshot, &params(&role), T0).unwrap();
    assert_eq!(
        issued.arn,
        format!("arn:aws:sts::{A}:assumed-role/trusts-account/s1")
    );
}

#[test]
fn trust_naming_the_user_grants_without_identity_policy() {
    let w = trust_world();
    let role = format!("arn:aws:iam::{A}:role/trusts-bob");
    let issued = assume(&w.bob, &w.snapshot, &params(&role), T0).unwrap();
    assert_eq!(
        issued.arn,
        format!("arn:aws:sts::{A}:assumed-role/trusts-bob/s1")
    );
}

#[test]
fn trust_naming_another_user_denies_even_with_identity_allow() {
    let w = trust_world();
    let role = format!("arn:aws:iam::{A}:role/trusts-other");
    assert_eq!(
        assume(&w.alice, &w.snapshot, &params(&role), T0),
        Err(denied_message(
            &format!("arn:aws:iam::{A}:user/alice"),
            &role
        ))
    );
}

#[test]
fn trust_deny_overrides_allows() {
    let w = trust_world();
    let role = format!("arn:aws:iam::{A}:role/denies-account");
    let err = assume(&w.alice, &w.snapshot, &params(&role), T0).unwrap_err();
    assert_eq!(err.code(), "AccessDenied");
    // The same caller is allowed by an Allow-only trust: the Deny is what refuses.
    let ok = format!("arn:aws:iam::{A}:role/trusts-account");
    assert!(assume(&w.alice, &w.snapshot, &params(&ok), T0).is_ok());
}

#[test]
fn cross_account_role_needs_the_trust_and_the_callers_identity_allow() {
    let mut a = World::new(A, 1);
    let alice = a.user("alice");
    let bob = a.user("bob");
    let mut b = World::new(B, 2);
    let role = b.role("xrole", &trusts(&a.root(), &["sts:AssumeRole"]));
    b.role_policy("xrole", &allow("s3:*", "*"));
    b.role("untrusting", &trusts(&b.root(), &["sts:AssumeRole"]));
    a.user_policy("alice", &allow("sts:AssumeRole", &role));
    let (sa, sb) = (a.snapshot(), b.snapshot());
    let (alice, bob) = (login(&sa, &alice, T0), login(&sa, &bob, T0));
    let guard = Guard::default();

    let issued = assume_guarded(&guard, &alice, &sa, &sb, &params(&role), T0).unwrap();
    assert_eq!(
        issued.arn,
        format!("arn:aws:sts::{B}:assumed-role/xrole/s1")
    );
    assert_eq!(issued.tenant, B);
    assert_eq!(
        IdPrefix::account_of_access_key(&issued.access_key_id).as_deref(),
        Some(B)
    );
    // The session belongs to B: it authenticates there, not in A.
    let session = login_session(&sb, &issued, T0 + 1).unwrap();
    assert_eq!(
        allowed(&sb, &session, "s3:GetObject", "arn:aws:s3:::b/k", T0 + 1),
        Outcome::Allow
    );
    assert_eq!(
        login_session(&sa, &issued, T0 + 1).unwrap_err(),
        StsError::InvalidToken
    );

    assert_eq!(
        assume_guarded(&guard, &bob, &sa, &sb, &params(&role), T0),
        Err(denied_message(&format!("arn:aws:iam::{A}:user/bob"), &role))
    );
    // Across accounts, a trust naming bob himself still needs bob's own allow.
    let names_bob = b.role(
        "names-bob",
        &trusts(&a.arn("user", "bob"), &["sts:AssumeRole"]),
    );
    let sb = b.snapshot();
    assert_eq!(
        assume_guarded(&guard, &bob, &sa, &sb, &params(&names_bob), T0),
        Err(denied_message(
            &format!("arn:aws:iam::{A}:user/bob"),
            &names_bob
        ))
    );
    a.user_policy("bob", &allow("sts:AssumeRole", &names_bob));
    let sa = a.snapshot();
    let bob = login(&sa, &a.tenant.users["bob"].access_keys[0], T0);
    assert!(assume_guarded(&guard, &bob, &sa, &sb, &params(&names_bob), T0).is_ok());
    // B's trust names only B: alice's allow on it is not enough.
    let untrusting = format!("arn:aws:iam::{B}:role/untrusting");
    a.user_policy("alice", &allow("sts:AssumeRole", "*"));
    let sa = a.snapshot();
    let alice = login(&sa, &a.tenant.users["alice"].access_keys[0], T0);
    assert_eq!(
        assume_guarded(&guard, &alice, &sa, &sb, &params(&untrusting), T0)
            .unwrap_err()
            .code(),
        "AccessDenied"
    );
}

#[test]
fn unknown_role_and_wrong_path_are_denied_like_forbidden_ones() {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:AssumeRole", "*"));
    let root = w.root();
    let real = w.role_with(CreateRoleInput {
        name: "app".into(),
        path: Some("/team/".into()),
        assume_role_policy: trusts(&root, &["sts:AssumeRole"]),
        ..Default::default()
    });
    assert_eq!(real, format!("arn:aws:iam::{A}:role/team/app"));
    let s = w.snapshot();
    let alice = login(&s, &alice, T0);
    let alice_arn = format!("arn:aws:iam::{A}:user/alice");
    for asked in [
        format!("arn:aws:iam::{A}:role/nope"),
        format!("arn:aws:iam::{A}:role/app"),
        format!("arn:aws:iam::{A}:role/other/app"),
        format!("arn:aws:iam::{B}:role/team/app"),
    ] {
        assert_eq!(
            assume(&alice, &s, &params(&asked), T0),
            Err(denied_message(&alice_arn, &asked)),
            "{asked}"
        );
    }
    let issued = assume(&alice, &s, &params(&real), T0).unwrap();
    // The session ARN omits the role's path.
    assert_eq!(issued.arn, format!("arn:aws:sts::{A}:assumed-role/app/s1"));
}

#[test]
fn root_caller_cannot_assume_a_role() {
    let mut w = World::new(A, 1);
    let root = w.root();
    let role = w.role("app", &trusts(&root, &["sts:AssumeRole"]));
    let s = w.snapshot();
    let caller = Caller {
        principal: Principal::Root { account: A.into() },
        session: None,
        session_policies: Arc::new([]),
    };
    assert_eq!(
        assume(&caller, &s, &params(&role), T0).unwrap_err().code(),
        "AccessDenied"
    );
}

#[test]
fn trust_conditions_see_the_session_name_and_the_callers_tags() {
    let mut w = World::new(A, 1);
    w.tenant
        .create_user(
            &mut w.ids,
            T0,
            CreateUserInput {
                name: "alice".into(),
                tags: vec![tag("team", "blue")],
                ..Default::default()
            },
        )
        .unwrap();
    let alice = w.tenant.create_access_key(&mut w.ids, T0, "alice").unwrap();
    let bob = w.user("bob");
    for user in ["alice", "bob"] {
        w.user_policy(user, &allow("sts:AssumeRole", "*"));
    }
    let root = w.root();
    let role = w.role(
        "app",
        &policy(&trust_statement(
            "Allow",
            &root,
            &["sts:AssumeRole"],
            r#"{"StringEquals":{"sts:RoleSessionName":"${aws:username}","aws:PrincipalTag/team":"blue"}}"#,
        )),
    );
    let s = w.snapshot();
    let (alice, bob) = (login(&s, &alice, T0), login(&s, &bob, T0));
    let named = |name: &'static str| AssumeRoleParams {
        role_session_name: name,
        ..params(&role)
    };
    let issued = assume(&alice, &s, &named("alice"), T0).unwrap();
    assert_eq!(
        issued.arn,
        format!("arn:aws:sts::{A}:assumed-role/app/alice")
    );
    assert_eq!(
        assume(&alice, &s, &named("other"), T0).unwrap_err().code(),
        "AccessDenied"
    );
    // Bob names his session after himself, but has no team tag.
    assert_eq!(
        assume(&bob, &s, &named("bob"), T0).unwrap_err().code(),
        "AccessDenied"
    );
}

// === T20: ExternalId and session tags ===

#[test]
fn external_id_and_session_tags_follow_the_trust_conditions() {
    let mut w = World::new(A, 1);
    let key = w.user("test-session-tags");
    let user = w.arn("user", "test-session-tags");
    let assume_statement = trust_statement(
        "Allow",
        &user,
        &["sts:AssumeRole"],
        r#"{"StringLike":{"aws:RequestTag/Project":"*"},"StringEquals":{"sts:ExternalId":"Example987"}}"#,
    );
    let tag_statement = trust_statement(
        "Allow",
        &user,
        &["sts:TagSession"],
        r#"{"StringLike":{"aws:RequestTag/Project":"*"},"ForAllValues:StringEquals":{"sts:TransitiveTagKeys":["Project","Department"]}}"#,
    );
    let role = w.role(
        "tagged",
        &policy(&format!("{assume_statement},{tag_statement}")),
    );
    let untaggable = w.role("untaggable", &policy(&assume_statement));
    let s = w.snapshot();
    let caller = login(&s, &key, T0);
    let project = [tag("Project", "X")];
    let transitive_ok = ["Project".to_owned()];
    let transitive_bad = ["Project".to_owned(), "CostCenter".to_owned()];

    let issued = assume(
        &caller,
        &s,
        &t20(&role, &project, &[], Some("Example987")),
        T0,
    )
    .unwrap();
    assert!(issued.packed_policy_size > 0);
    for (what, p) in [
        ("no ExternalId", t20(&role, &project, &[], None)),
        (
            "ExternalId compared case-sensitively",
            t20(&role, &project, &[], Some("example987")),
        ),
        (
            "a transitive key outside the trusted set",
            t20(&role, &project, &transitive_bad, Some("Example987")),
        ),
        ("no tags", t20(&role, &[], &[], Some("Example987"))),
        (
            "the trust does not allow sts:TagSession",
            t20(&untaggable, &project, &[], Some("Example987")),
        ),
    ] {
        assert_eq!(
            assume(&caller, &s, &p, T0).unwrap_err().code(),
            "AccessDenied",
            "{what}"
        );
    }
    // A transitive key inside the trusted set is fine: the denial above is CostCenter's.
    assume(
        &caller,
        &s,
        &t20(&role, &project, &transitive_ok, Some("Example987")),
        T0,
    )
    .unwrap();
}

fn t20<'a>(
    role_arn: &'a str,
    tags: &'a [Tag],
    transitive_tag_keys: &'a [String],
    external_id: Option<&'a str>,
) -> AssumeRoleParams<'a> {
    AssumeRoleParams {
        tags,
        transitive_tag_keys,
        external_id,
        ..params(role_arn)
    }
}

// === T21: durations and chaining ===

struct ChainWorld {
    snapshot: TenantSnapshot,
    alice: Caller,
    r1: String,
    r2: String,
    r3: String,
}

fn chain_world() -> ChainWorld {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:*", "*"));
    let root = w.root();
    let trust = trusts(
        &root,
        &["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
    );
    let role = |w: &mut World, name: &str, max: u32| {
        w.role_with(CreateRoleInput {
            name: name.into(),
            assume_role_policy: trust.clone(),
            max_session_duration: Some(max),
            ..Default::default()
        })
    };
    let r1 = role(&mut w, "R1", 43_200);
    let r2 = role(&mut w, "R2", 43_200);
    let r3 = role(&mut w, "R3", 3_600);
    w.role_policy("R1", &allow("sts:AssumeRole", "*"));
    let snapshot = w.snapshot();
    ChainWorld {
        alice: login(&snapshot, &alice, T0),
        snapshot,
        r1,
        r2,
        r3,
    }
}

#[test]
fn duration_up_to_the_roles_maximum() {
    let w = chain_world();
    let p = AssumeRoleParams {
        duration_seconds: Some(43_200),
        ..params(&w.r1)
    };
    let issued = assume(&w.alice, &w.snapshot, &p, T0).unwrap();
    assert_eq!(issued.expiration, ts(T0 + 12 * 3600));
    let default = assume(&w.alice, &w.snapshot, &params(&w.r1), T0).unwrap();
    assert_eq!(default.expiration, ts(T0 + 3600));

    let p = AssumeRoleParams {
        duration_seconds: Some(7_200),
        ..params(&w.r3)
    };
    assert_eq!(
        assume(&w.alice, &w.snapshot, &p, T0).unwrap_err().code(),
        "ValidationError"
    );
    for d in [899, 43_201] {
        let p = AssumeRoleParams {
            duration_seconds: Some(d),
            ..params(&w.r1)
        };
        assert_eq!(
            assume(&w.alice, &w.snapshot, &p, T0).unwrap_err().code(),
            "ValidationError",
            "{d}"
        );
    }
}

#[test]
fn role_chaining_is_capped_at_one_hour() {
    let w = chain_world();
    let first = assume(&w.alice, &w.snapshot, &params(&w.r1), T0).unwrap();
    let r1 = login_session(&w.snapshot, &first, T0 + 10).unwrap();
    let p = AssumeRoleParams {
        duration_seconds: Some(7_200),
        ..params(&w.r2)
    };
    assert_eq!(
        assume(&r1, &w.snapshot, &p, T0 + 10).unwrap_err().code(),
        "ValidationError"
    );
    let chained = assume(&r1, &w.snapshot, &params(&w.r2), T0 + 10).unwrap();
    assert_eq!(chained.expiration, ts(T0 + 10 + 3600));
    assert_eq!(chained.arn, format!("arn:aws:sts::{A}:assumed-role/R2/s1"));
    let p = AssumeRoleParams {
        duration_seconds: Some(3_600),
        ..params(&w.r2)
    };
    assert!(assume(&r1, &w.snapshot, &p, T0 + 10).is_ok());

    // The calling session's own session policy limits what it may assume.
    let only_s3 = allow("s3:*", "*");
    let p = AssumeRoleParams {
        policy: Some(&only_s3),
        ..params(&w.r1)
    };
    let narrowed = assume(&w.alice, &w.snapshot, &p, T0).unwrap();
    let narrowed = login_session(&w.snapshot, &narrowed, T0 + 10).unwrap();
    assert_eq!(
        assume(&narrowed, &w.snapshot, &params(&w.r2), T0 + 10),
        Err(denied_message(
            &format!("arn:aws:sts::{A}:assumed-role/R1/s1"),
            &w.r2
        ))
    );
}

#[test]
fn session_credentials_expire_with_sixty_seconds_of_skew() {
    let w = chain_world();
    let issued = assume(&w.alice, &w.snapshot, &params(&w.r1), T0).unwrap();
    let expiry = T0 + 3600;
    for late in [1, 59, 60] {
        assert!(
            login_session(&w.snapshot, &issued, expiry + late).is_ok(),
            "{late}"
        );
    }
    assert_eq!(
        login_session(&w.snapshot, &issued, expiry + 61).unwrap_err(),
        StsError::ExpiredToken
    );
    // A session issued by a verifier whose clock runs ahead: within the skew it is accepted,
    // beyond it the token is not valid yet.
    let ahead = assume(&w.alice, &w.snapshot, &params(&w.r1), T0 + 30).unwrap();
    assert!(login_session(&w.snapshot, &ahead, T0).is_ok());
    let far_ahead = assume(&w.alice, &w.snapshot, &params(&w.r1), T0 + 90).unwrap();
    assert_eq!(
        login_session(&w.snapshot, &far_ahead, T0).unwrap_err(),
        StsError::InvalidToken
    );
}

#[test]
fn sessions_of_a_deleted_and_recreated_role_end() {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:AssumeRole", "*"));
    let root = w.root();
    let trust = trusts(&root, &["sts:AssumeRole"]);
    let role = w.role("app", &trust);
    let s = w.snapshot();
    let issued = assume(&login(&s, &alice, T0), &s, &params(&role), T0).unwrap();
    w.tenant.delete_role("app").unwrap();
    let gone = w.snapshot();
    assert_eq!(
        login_session(&gone, &issued, T0 + 1).unwrap_err(),
        StsError::InvalidToken
    );
    w.role("app", &trust);
    let again = w.snapshot();
    assert_eq!(
        login_session(&again, &issued, T0 + 1).unwrap_err(),
        StsError::InvalidToken
    );
    let fresh = assume(
        &login(&again, &alice, T0 + 1),
        &again,
        &params(&role),
        T0 + 1,
    )
    .unwrap();
    assert!(login_session(&again, &fresh, T0 + 2).is_ok());
}

#[test]
fn sessions_outlive_a_key_rotation_until_their_key_is_dropped() {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:AssumeRole", "*"));
    let root = w.root();
    let role = w.role("app", &trusts(&root, &["sts:AssumeRole"]));
    let s = w.snapshot();
    let old = assume(&login(&s, &alice, T0), &s, &params(&role), T0).unwrap();

    w.tenant.rotate_issuer_key(&mut w.ids, T0).unwrap();
    let s = w.snapshot();
    assert!(login_session(&s, &old, T0 + 1).is_ok());
    let new = assume(&login(&s, &alice, T0), &s, &params(&role), T0 + 1).unwrap();
    let new_key = &w.tenant.active_issuer_key().unwrap().key_id;
    assert!(new.session_token.contains(&format!(".{new_key}.")));
    assert!(!old.session_token.contains(&format!(".{new_key}.")));

    // RETAINED_ISSUER_KEYS is 3: two more rotations drop the first key.
    for _ in 0..2 {
        w.tenant.rotate_issuer_key(&mut w.ids, T0).unwrap();
    }
    let s = w.snapshot();
    assert_eq!(
        login_session(&s, &old, T0 + 2).unwrap_err(),
        StsError::InvalidToken
    );
    assert!(login_session(&s, &new, T0 + 2).is_ok());
}

#[test]
fn parameters_never_print_the_mfa_code_or_the_token() {
    let code = "493817";
    let p = AssumeRoleParams {
        serial_number: Some("arn:aws:iam::111122223333:mfa/alice"),
        token_code: Some(code),
        ..params("arn:aws:iam::111122223333:role/app")
    };
    let printed = format!("{p:?}");
    assert!(
        printed.contains("role/app") && !printed.contains(code),
        "{printed}"
    );
    let p = GetSessionTokenParams {
        serial_number: Some("arn:aws:iam::111122223333:mfa/alice"),
        token_code: Some(code),
        duration_seconds: None,
    };
    let printed = format!("{p:?}");
    assert!(
        printed.contains("mfa/alice") && !printed.contains(code),
        "{printed}"
    );
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let printed = format!(
        "{:?}",
        web_params("arn:aws:iam::111122223333:role/app", token)
    );
    assert!(
        !printed.contains(token) && !printed.contains("c2lnbmF0dXJl"),
        "{printed}"
    );
}

/// R-src sessions carry a SourceIdentity; the targets' trusts and R-src's permissions vary.
struct SourceWorld {
    snapshot: TenantSnapshot,
    may_set: Caller,
    may_not_set: Caller,
    trust_allows: String,
    trust_forbids: String,
}

fn source_world() -> SourceWorld {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:*", "*"));
    let root = w.root();
    let entry = trusts(&root, &["sts:AssumeRole", "sts:SetSourceIdentity"]);
    w.role("src-may-set", &entry);
    w.role("src-may-not-set", &entry);
    w.role_policy("src-may-set", &allow("sts:*", "*"));
    w.role_policy("src-may-not-set", &allow("sts:AssumeRole", "*"));
    // Naming the source roles directly: the trust alone would grant in the same account.
    let sources = [
        w.arn("role", "src-may-set"),
        w.arn("role", "src-may-not-set"),
    ];
    let statement = |actions: &[&str]| {
        policy(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":{}}},"Action":{}}}"#,
            serde_json::to_string(&sources).unwrap(),
            serde_json::to_string(actions).unwrap()
        ))
    };
    let trust_allows = w.role(
        "tgt-allows",
        &statement(&["sts:AssumeRole", "sts:SetSourceIdentity"]),
    );
    let trust_forbids = w.role("tgt-forbids", &statement(&["sts:AssumeRole"]));
    let s = w.snapshot();
    let alice = login(&s, &alice, T0);
    let session_of = |role: &str| {
        let arn = format!("arn:aws:iam::{A}:role/{role}");
        let p = AssumeRoleParams {
            source_identity: Some("alice-src"),
            ..params(&arn)
        };
        let issued = assume(&alice, &s, &p, T0).unwrap();
        assert_eq!(issued.source_identity.as_deref(), Some("alice-src"));
        login_session(&s, &issued, T0 + 1).unwrap()
    };
    let (may_set, may_not_set) = (session_of("src-may-set"), session_of("src-may-not-set"));
    SourceWorld {
        may_set,
        may_not_set,
        snapshot: s,
        trust_allows,
        trust_forbids,
    }
}

#[test]
fn chaining_with_a_source_identity_needs_permission_and_trust() {
    let w = source_world();
    let fails = |caller: &Caller, role: &str| {
        assume(caller, &w.snapshot, &params(role), T0 + 2).unwrap_err()
    };
    // Only the trust allows it.
    assert_eq!(
        fails(&w.may_not_set, &w.trust_allows),
        StsError::AccessDenied(format!(
            "User: arn:aws:sts::{A}:assumed-role/src-may-not-set/s1 is not authorized to perform: sts:SetSourceIdentity on resource: {}",
            w.trust_allows
        ))
    );
    // Only the caller's permissions allow it.
    assert_eq!(fails(&w.may_set, &w.trust_forbids).code(), "AccessDenied");
    // Both: the source identity passes on.
    let issued = assume(&w.may_set, &w.snapshot, &params(&w.trust_allows), T0 + 2).unwrap();
    assert_eq!(issued.source_identity.as_deref(), Some("alice-src"));
    let next = login_session(&w.snapshot, &issued, T0 + 3).unwrap();
    assert_eq!(
        value(
            &context_of(&w.snapshot, &next, T0 + 3),
            "aws:SourceIdentity"
        )
        .as_deref(),
        Some("alice-src")
    );
}

#[test]
fn source_identity_cannot_be_changed_when_chaining() {
    let w = source_world();
    let p = AssumeRoleParams {
        source_identity: Some("mallory"),
        ..params(&w.trust_allows)
    };
    assert_eq!(
        assume(&w.may_set, &w.snapshot, &p, T0 + 2)
            .unwrap_err()
            .code(),
        "AccessDenied"
    );
    let p = AssumeRoleParams {
        source_identity: Some("alice-src"),
        ..params(&w.trust_allows)
    };
    let issued = assume(&w.may_set, &w.snapshot, &p, T0 + 2).unwrap();
    assert_eq!(issued.source_identity.as_deref(), Some("alice-src"));
}

// === session contents ===

#[test]
fn session_identifiers_and_credentials_resolve_to_the_session() {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:*", "*"));
    let root = w.root();
    let role = w.role_with(CreateRoleInput {
        name: "app".into(),
        path: Some("/team/".into()),
        assume_role_policy: trusts(&root, &["sts:AssumeRole", "sts:TagSession"]),
        tags: vec![tag("team", "blue"), tag("env", "prod")],
        ..Default::default()
    });
    let role_id = w.role_id("app");
    let s = w.snapshot();
    let alice = login(&s, &alice, T0);
    let tags = [tag("Env", "dev"), tag("project", "x")];
    let p = AssumeRoleParams {
        role_session_name: "sess",
        tags: &tags,
        ..params(&role)
    };
    let issued = assume(&alice, &s, &p, T0).unwrap();

    assert_eq!(
        issued.arn,
        format!("arn:aws:sts::{A}:assumed-role/app/sess")
    );
    assert_eq!(issued.assumed_role_id, format!("{role_id}:sess"));
    assert!(role_id.starts_with("AROA"));
    assert!(issued.access_key_id.starts_with("ASIA"));
    assert_eq!(issued.access_key_id.len(), 20);
    assert_eq!(issued.secret_access_key.len(), 40);
    assert_eq!(issued.expiration, ts(T0 + 3600));
    assert_eq!(issued.tenant, A);
    assert_eq!(issued.source_identity, None);
    let debug = format!("{issued:?}");
    assert!(!debug.contains(&issued.secret_access_key) && !debug.contains(&issued.session_token));

    let presented = Presented::Keys {
        access_key_id: &issued.access_key_id,
        secret: &issued.secret_access_key,
        session_token: Some(&issued.session_token),
    };
    assert_eq!(credential_tenant(&presented).as_deref(), Some(A));
    let session = login_session(&s, &issued, T0 + 5).unwrap();
    assert_eq!(
        session.principal,
        Principal::AssumedRole {
            account: A.into(),
            role_name: "app".into(),
            session_name: "sess".into(),
            role_unique_id: Some(role_id.as_str().into()),
        }
    );
    assert_eq!(session.principal.to_string(), issued.arn);
    let ctx = context_of(&s, &session, T0 + 5);
    assert_eq!(value(&ctx, "aws:PrincipalArn").as_deref(), Some(&*role));
    assert_eq!(
        value(&ctx, "aws:userid").as_deref(),
        Some(&*issued.assumed_role_id)
    );
    assert_eq!(
        value(&ctx, "aws:PrincipalType").as_deref(),
        Some("AssumedRole")
    );
    assert_eq!(value(&ctx, "aws:TokenIssueTime"), Some(ts(T0).to_string()));
    // Role tags overlaid by session tags, keys compared case-insensitively.
    assert_eq!(
        value(&ctx, "aws:PrincipalTag/team").as_deref(),
        Some("blue")
    );
    assert_eq!(value(&ctx, "aws:PrincipalTag/env").as_deref(), Some("dev"));
    assert_eq!(
        value(&ctx, "aws:PrincipalTag/project").as_deref(),
        Some("x")
    );

    // Anything else about the credentials fails.
    let other_last = |text: &str| {
        let (head, last) = text.split_at(text.len() - 1);
        format!("{head}{}", if last == "A" { "B" } else { "A" })
    };
    let mut wrong = issued.clone();
    wrong.secret_access_key = other_last(&issued.secret_access_key);
    assert_eq!(
        login_session(&s, &wrong, T0 + 5).unwrap_err(),
        StsError::InvalidToken
    );
    let mut wrong = issued.clone();
    wrong.access_key_id = other_last(&issued.access_key_id);
    assert_eq!(
        login_session(&s, &wrong, T0 + 5).unwrap_err(),
        StsError::InvalidToken
    );
    assert_eq!(
        login_session(&s, &issued, T0 + 3600 + 61).unwrap_err(),
        StsError::ExpiredToken
    );
}

#[test]
fn session_tags_need_tag_session_permission() {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:*", "*"));
    let root = w.root();
    let role = w.role("app", &trusts(&root, &["sts:AssumeRole"]));
    let s = w.snapshot();
    let alice = login(&s, &alice, T0);
    let tags = [tag("team", "red")];
    let p = AssumeRoleParams {
        tags: &tags,
        ..params(&role)
    };
    assert_eq!(
        assume(&alice, &s, &p, T0),
        Err(StsError::AccessDenied(format!(
            "User: arn:aws:iam::{A}:user/alice is not authorized to perform: sts:TagSession on resource: {role}"
        )))
    );
}

#[test]
fn transitive_tags_pass_to_chained_sessions_and_cannot_be_overridden() {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:*", "*"));
    let root = w.root();
    let trust = trusts(&root, &["sts:AssumeRole", "sts:TagSession"]);
    let first = w.role("first", &trust);
    w.role_policy("first", &allow("sts:*", "*"));
    // `second` is tagged Project=Z, but its trust wants Project=X: the caller's transitive
    // tag replaces the role's in aws:ResourceTag (IAM-SEMANTICS §3.7).
    let second = w.role_with(CreateRoleInput {
        name: "second".into(),
        assume_role_policy: policy(&trust_statement(
            "Allow",
            &root,
            &["sts:AssumeRole", "sts:TagSession"],
            r#"{"StringEquals":{"aws:ResourceTag/Project":"X"}}"#,
        )),
        tags: vec![tag("Project", "Z")],
        ..Default::default()
    });
    w.role_policy("second", &allow("sts:*", "*"));
    let third = w.role("third", &trust);
    let s = w.snapshot();
    let alice = login(&s, &alice, T0);

    let tags = [tag("Project", "X"), tag("Cost", "1")];
    let transitive = ["Project".to_owned()];
    let p = AssumeRoleParams {
        tags: &tags,
        transitive_tag_keys: &transitive,
        ..params(&first)
    };
    let issued = assume(&alice, &s, &p, T0).unwrap();
    let first_session = login_session(&s, &issued, T0 + 1).unwrap();

    let issued = assume(&first_session, &s, &params(&second), T0 + 1).unwrap();
    let second_session = login_session(&s, &issued, T0 + 2).unwrap();
    let ctx = context_of(&s, &second_session, T0 + 2);
    assert_eq!(
        value(&ctx, "aws:PrincipalTag/Project").as_deref(),
        Some("X")
    );
    assert_eq!(value(&ctx, "aws:PrincipalTag/Cost"), None);

    // Two hops on, the tag is still there.
    let issued = assume(&second_session, &s, &params(&third), T0 + 2).unwrap();
    let third_session = login_session(&s, &issued, T0 + 3).unwrap();
    let ctx = context_of(&s, &third_session, T0 + 3);
    assert_eq!(
        value(&ctx, "aws:PrincipalTag/Project").as_deref(),
        Some("X")
    );

    for key in ["Project", "PROJECT"] {
        let tags = [tag(key, "Y")];
        let p = AssumeRoleParams {
            tags: &tags,
            ..params(&third)
        };
        assert_eq!(
            assume(&second_session, &s, &p, T0 + 2).unwrap_err().code(),
            "ValidationError",
            "{key}"
        );
    }
    // A non-transitive tag of the caller is not inherited, so it may be set again.
    let tags = [tag("Cost", "2")];
    let p = AssumeRoleParams {
        tags: &tags,
        ..params(&third)
    };
    let issued = assume(&second_session, &s, &p, T0 + 2).unwrap();
    let ctx = context_of(&s, &login_session(&s, &issued, T0 + 3).unwrap(), T0 + 3);
    assert_eq!(value(&ctx, "aws:PrincipalTag/Cost").as_deref(), Some("2"));
    assert_eq!(
        value(&ctx, "aws:PrincipalTag/Project").as_deref(),
        Some("X")
    );
}

// === T17: session policies ===

struct PolicyWorld {
    world: World,
    snapshot: TenantSnapshot,
    alice: Caller,
    role: String,
    read_only: String,
}

fn policy_world() -> PolicyWorld {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy("alice", &allow("sts:AssumeRole", "*"));
    let root = w.root();
    let role = w.role("app", &trusts(&root, &["sts:AssumeRole"]));
    w.role_policy("app", &allow("s3:*", "*"));
    let read_only = w.managed("ReadOnly", &allow("s3:GetObject", "*"));
    let snapshot = w.snapshot();
    PolicyWorld {
        alice: login(&snapshot, &alice, T0),
        snapshot,
        world: w,
        role,
        read_only,
    }
}

impl PolicyWorld {
    fn session(&self, p: &AssumeRoleParams<'_>) -> Result<Caller, StsError> {
        let issued = assume(&self.alice, &self.snapshot, p, T0)?;
        Ok(login_session(&self.snapshot, &issued, T0 + 1).unwrap())
    }

    fn may(&self, session: &Caller, action: &str) -> Outcome {
        allowed(&self.snapshot, session, action, "arn:aws:s3:::b/k", T0 + 1)
    }
}

#[test]
fn session_policy_narrows_the_role() {
    let w = policy_world();
    let full = w.session(&params(&w.role)).unwrap();
    assert_eq!(w.may(&full, "s3:PutObject"), Outcome::Allow);

    let only_get = allow("s3:GetObject", "*");
    let session = w
        .session(&AssumeRoleParams {
            policy: Some(&only_get),
            ..params(&w.role)
        })
        .unwrap();
    assert_eq!(w.may(&session, "s3:GetObject"), Outcome::Allow);
    assert_eq!(w.may(&session, "s3:PutObject"), Outcome::ImplicitDeny);
}

#[test]
fn session_policy_never_grants_what_the_role_lacks() {
    let w = policy_world();
    let everything = allow("*", "*");
    let session = w
        .session(&AssumeRoleParams {
            policy: Some(&everything),
            ..params(&w.role)
        })
        .unwrap();
    assert_eq!(w.may(&session, "s3:PutObject"), Outcome::Allow);
    assert_eq!(
        allowed(&w.snapshot, &session, "ec2:RunInstances", "*", T0 + 1),
        Outcome::ImplicitDeny
    );
}

#[test]
fn managed_session_policies_by_arn() {
    let w = policy_world();
    let arns = [w.read_only.clone()];
    let session = w
        .session(&AssumeRoleParams {
            policy_arns: &arns,
            ..params(&w.role)
        })
        .unwrap();
    assert_eq!(w.may(&session, "s3:GetObject"), Outcome::Allow);
    assert_eq!(w.may(&session, "s3:PutObject"), Outcome::ImplicitDeny);

    let unknown = [format!("arn:aws:iam::{A}:policy/Nope")];
    assert_eq!(
        w.session(&AssumeRoleParams {
            policy_arns: &unknown,
            ..params(&w.role)
        })
        .unwrap_err()
        .code(),
        "ValidationError"
    );
    // A policy of another account is not one of the role's account.
    let foreign = [format!("arn:aws:iam::{B}:policy/ReadOnly")];
    assert_eq!(
        w.session(&AssumeRoleParams {
            policy_arns: &foreign,
            ..params(&w.role)
        })
        .unwrap_err()
        .code(),
        "ValidationError"
    );
    let eleven = vec![w.read_only.clone(); 11];
    assert_eq!(
        w.session(&AssumeRoleParams {
            policy_arns: &eleven,
            ..params(&w.role)
        })
        .unwrap_err()
        .code(),
        "ValidationError"
    );
    let ten = vec![w.read_only.clone(); 10];
    assert!(w
        .session(&AssumeRoleParams {
            policy_arns: &ten,
            ..params(&w.role)
        })
        .is_ok());
}

#[test]
fn managed_session_policy_deleted_later_allows_nothing() {
    let mut w = policy_world();
    let arns = [w.read_only.clone()];
    let issued = assume(
        &w.alice,
        &w.snapshot,
        &AssumeRoleParams {
            policy_arns: &arns,
            ..params(&w.role)
        },
        T0,
    )
    .unwrap();
    w.world.tenant.delete_policy(&w.read_only).unwrap();
    let later = w.world.snapshot();
    let session = login_session(&later, &issued, T0 + 1).unwrap();
    assert_eq!(
        allowed(&later, &session, "s3:GetObject", "arn:aws:s3:::b/k", T0 + 1),
        Outcome::ImplicitDeny
    );
}

#[test]
fn malformed_and_oversized_session_policies_are_refused() {
    let w = policy_world();
    for malformed in [
        "not json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"s3:*","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
    ] {
        assert_eq!(
            w.session(&AssumeRoleParams {
                policy: Some(malformed),
                ..params(&w.role)
            })
            .unwrap_err()
            .code(),
            "MalformedPolicyDocument",
            "{malformed}"
        );
    }
    // Valid, but over the 2,048 characters of plaintext session policy.
    let sized = |n: usize| {
        let actions: Vec<String> = (0..n).map(|i| format!("s3:GetObject{i:04}")).collect();
        policy(&format!(
            r#"{{"Effect":"Allow","Action":{},"Resource":"*"}}"#,
            serde_json::to_string(&actions).unwrap()
        ))
    };
    let fits = (1..200)
        .take_while(|n| non_whitespace_len(&sized(*n)) <= 2048)
        .last()
        .unwrap();
    let big = sized(fits + 1);
    assert!(non_whitespace_len(&big) > 2048);
    assert_eq!(
        w.session(&AssumeRoleParams {
            policy: Some(&big),
            ..params(&w.role)
        })
        .unwrap_err()
        .code(),
        "PackedPolicyTooLarge"
    );
    // Just under the limit it is accepted, and reported near 100 %.
    let document = sized(fits);
    let issued = assume(
        &w.alice,
        &w.snapshot,
        &AssumeRoleParams {
            policy: Some(&document),
            ..params(&w.role)
        },
        T0,
    )
    .unwrap();
    assert!((95..=100).contains(&issued.packed_policy_size));
}

// === T22: revocation ===

#[test]
fn revoked_sessions_are_denied_and_later_ones_are_not() {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user_policy(
        "alice",
        &policy(&format!(
            "{},{}",
            allow_statement("sts:AssumeRole", "*"),
            allow_statement("s3:*", "*")
        )),
    );
    let root = w.root();
    let role = w.role("app", &trusts(&root, &["sts:AssumeRole"]));
    w.role_policy("app", &allow("*", "*"));
    let s = w.snapshot();
    let caller = login(&s, &alice, T0 - 1);
    let before = assume(&caller, &s, &params(&role), T0 - 1).unwrap();

    w.tenant.revoke_sessions("app", T0).unwrap();
    let s = w.snapshot();
    let caller = login(&s, &alice, T0 + 1);
    let after = assume(&caller, &s, &params(&role), T0 + 1).unwrap();

    let old = login_session(&s, &before, T0 + 2).unwrap();
    let new = login_session(&s, &after, T0 + 2).unwrap();
    for action in ["s3:GetObject", "iam:ListUsers"] {
        assert_eq!(
            allowed(&s, &old, action, "*", T0 + 2),
            Outcome::ExplicitDeny,
            "{action}"
        );
    }
    assert_eq!(
        allowed(&s, &new, "s3:GetObject", "arn:aws:s3:::b/k", T0 + 2),
        Outcome::Allow
    );
    // A revoked session cannot escape by chaining either.
    assert_eq!(
        assume(&old, &s, &params(&role), T0 + 2).unwrap_err().code(),
        "AccessDenied"
    );
    // The user's long-term key is untouched.
    let caller = login(&s, &alice, T0 + 2);
    assert_eq!(
        allowed(&s, &caller, "s3:GetObject", "arn:aws:s3:::b/k", T0 + 2),
        Outcome::Allow
    );
}

// === MFA ===

struct MfaWorld {
    snapshot: TenantSnapshot,
    alice: Caller,
    seed: String,
    serial: String,
    bob_serial: String,
    role: String,
}

/// The devices are enabled a day before `T0`, so their enabling codes are long gone.
fn mfa_world() -> MfaWorld {
    let mut w = World::new(A, 1);
    let alice = w.user("alice");
    w.user("bob");
    w.user_policy("alice", &allow("sts:AssumeRole", "*"));
    let root = w.root();
    let role = w.role(
        "admin",
        &policy(&trust_statement(
            "Allow",
            &root,
            &["sts:AssumeRole"],
            r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
        )),
    );
    let enable = |w: &mut World, user: &str| {
        let device = w
            .tenant
            .create_virtual_mfa_device(&mut w.ids, user, None)
            .unwrap();
        let at = T0 - 86_400;
        let step = totp::time_step(at);
        let seed = device.seed.expose().to_owned();
        let c1 = totp::code_at_step(&seed, step - 1).unwrap();
        let c2 = totp::code_at_step(&seed, step).unwrap();
        w.tenant
            .enable_mfa_device(user, &device.serial_number, &c1, &c2, at)
            .unwrap();
        (seed, device.serial_number)
    };
    let (seed, serial) = enable(&mut w, "alice");
    let (_, bob_serial) = enable(&mut w, "bob");
    let snapshot = w.snapshot();
    MfaWorld {
        alice: login(&snapshot, &alice, T0),
        snapshot,
        seed,
        serial,
        bob_serial,
        role,
    }
}

/// A six-digit code that is none of the device's codes around `at`.
fn wrong_code(seed: &str, at: i64) -> String {
    let step = totp::time_step(at);
    let near: Vec<String> = (step - 1..=step + 1)
        .map(|s| totp::code_at_step(seed, s).unwrap())
        .collect();
    (0..)
        .map(|n| format!("{:06}", n * 7919 % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[test]
fn trust_requiring_mfa() {
    let w = mfa_world();
    let guard = Guard::default();
    let run = |p: &AssumeRoleParams<'_>| {
        assume_guarded(&guard, &w.alice, &w.snapshot, &w.snapshot, p, T0)
    };
    assert_eq!(run(&params(&w.role)).unwrap_err().code(), "AccessDenied");

    let wrong = wrong_code(&w.seed, T0);
    let p = AssumeRoleParams {
        serial_number: Some(&w.serial),
        token_code: Some(&wrong),
        ..params(&w.role)
    };
    assert_eq!(run(&p).unwrap_err().code(), "AccessDenied");

    // Another user's device with its right code does not authenticate alice.
    let p = AssumeRoleParams {
        serial_number: Some(&w.bob_serial),
        token_code: Some(&totp::code_at(&w.seed, T0).unwrap()),
        ..params(&w.role)
    };
    assert_eq!(run(&p).unwrap_err().code(), "AccessDenied");

    let code = totp::code_at(&w.seed, T0).unwrap();
    let p = AssumeRoleParams {
        serial_number: Some(&w.serial),
        token_code: Some(&code),
        ..params(&w.role)
    };
    let issued = run(&p).unwrap();
    let session = login_session(&w.snapshot, &issued, T0 + 100).unwrap();
    let ctx = context_of(&w.snapshot, &session, T0 + 100);
    assert_eq!(
        value(&ctx, "aws:MultiFactorAuthPresent").as_deref(),
        Some("true")
    );
    assert_eq!(
        value(&ctx, "aws:MultiFactorAuthAge").as_deref(),
        Some("100")
    );

    // The same code again is a replay.
    assert_eq!(run(&p).unwrap_err().code(), "AccessDenied");
    // The next step's code is fresh.
    let next = totp::code_at(&w.seed, T0 + 30).unwrap();
    let p = AssumeRoleParams {
        serial_number: Some(&w.serial),
        token_code: Some(&next),
        ..params(&w.role)
    };
    assert!(assume_guarded(&guard, &w.alice, &w.snapshot, &w.snapshot, &p, T0 + 30).is_ok());
}

#[test]
fn mfa_serial_and_code_go_together() {
    let w = mfa_world();
    let code = totp::code_at(&w.seed, T0).unwrap();
    for p in [
        AssumeRoleParams {
            serial_number: Some(&w.serial),
            ..params(&w.role)
        },
        AssumeRoleParams {
            token_code: Some(&code),
            ..params(&w.role)
        },
        AssumeRoleParams {
            serial_number: Some(&w.serial),
            token_code: Some("12345"),
            ..params(&w.role)
        },
    ] {
        assert_eq!(
            assume(&w.alice, &w.snapshot, &p, T0).unwrap_err().code(),
            "ValidationError"
        );
    }
}

#[test]
fn session_without_mfa_says_so() {
    let w = mfa_world();
    // A role trusting the account without an MFA condition.
    let mut world = World::new(A, 1);
    let alice = world.user("alice");
    world.user_policy("alice", &allow("sts:AssumeRole", "*"));
    let root = world.root();
    let role = world.role("plain", &trusts(&root, &["sts:AssumeRole"]));
    let s = world.snapshot();
    let issued = assume(&login(&s, &alice, T0), &s, &params(&role), T0).unwrap();
    let session = login_session(&s, &issued, T0 + 1).unwrap();
    let ctx = context_of(&s, &session, T0 + 1);
    assert_eq!(
        value(&ctx, "aws:MultiFactorAuthPresent").as_deref(),
        Some("false")
    );
    assert_eq!(value(&ctx, "aws:MultiFactorAuthAge"), None);
    // Long-term credentials carry no MFA key at all.
    let ctx = context_of(&w.snapshot, &w.alice, T0);
    assert_eq!(value(&ctx, "aws:MultiFactorAuthPresent"), None);
    assert_eq!(value(&ctx, "aws:TokenIssueTime"), None);
}

#[test]
fn mfa_codes_outside_the_window_or_used_to_enable_the_device_are_refused() {
    let w = mfa_world();
    let run = |code: &str, at: i64| {
        let p = AssumeRoleParams {
            serial_number: Some(&w.serial),
            token_code: Some(code),
            ..params(&w.role)
        };
        assume_guarded(
            &Guard::default(),
            &w.alice,
            &w.snapshot,
            &w.snapshot,
            &p,
            at,
        )
    };
    // One step either side is accepted, two steps is not.
    assert!(run(&totp::code_at(&w.seed, T0 - 30).unwrap(), T0).is_ok());
    assert!(run(&totp::code_at(&w.seed, T0 + 30).unwrap(), T0).is_ok());
    let stale = totp::code_at(&w.seed, T0 - 60).unwrap();
    // The fixture's seed is fixed: its stale code is none of the window's.
    assert!((-30..=30)
        .step_by(30)
        .all(|d| totp::code_at(&w.seed, T0 + d).unwrap() != stale));
    assert_eq!(run(&stale, T0).unwrap_err().code(), "AccessDenied");

    // A device enabled just now: the second enabling code is spent, even at a verifier
    // that never saw it (a fresh replay guard).
    let mut world = World::new(A, 1);
    let key = world.user("carol");
    world.user_policy("carol", &allow("sts:AssumeRole", "*"));
    let root = world.root();
    let role = world.role(
        "admin",
        &policy(&trust_statement(
            "Allow",
            &root,
            &["sts:AssumeRole"],
            r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
        )),
    );
    let device = world
        .tenant
        .create_virtual_mfa_device(&mut world.ids, "carol", None)
        .unwrap();
    let seed = device.seed.expose().to_owned();
    let step = totp::time_step(T0);
    let (c1, c2) = (
        totp::code_at_step(&seed, step - 1).unwrap(),
        totp::code_at_step(&seed, step).unwrap(),
    );
    world
        .tenant
        .enable_mfa_device("carol", &device.serial_number, &c1, &c2, T0)
        .unwrap();
    let s = world.snapshot();
    let carol = login(&s, &key, T0 + 5);
    let with_code = |code: &str| {
        let p = AssumeRoleParams {
            serial_number: Some(&device.serial_number),
            token_code: Some(code),
            ..params(&role)
        };
        assume_guarded(&Guard::default(), &carol, &s, &s, &p, T0 + 5)
    };
    for spent in [&c1, &c2] {
        assert_eq!(with_code(spent).unwrap_err().code(), "AccessDenied");
    }
    let next = totp::code_at_step(&seed, step + 1).unwrap();
    assert!(with_code(&next).is_ok());
    let gst = GetSessionTokenParams {
        serial_number: Some(&device.serial_number),
        token_code: Some(&c2),
        ..Default::default()
    };
    assert_eq!(
        session_token(&Guard::default(), &carol, &s, &gst, T0 + 5)
            .unwrap_err()
            .code(),
        "AccessDenied"
    );
}

// === GetSessionToken ===

#[test]
fn get_session_token_durations() {
    let w = mfa_world();
    let guard = Guard::default();
    let gst = |d: Option<i32>| {
        session_token(
            &guard,
            &w.alice,
            &w.snapshot,
            &GetSessionTokenParams {
                duration_seconds: d,
                ..Default::default()
            },
            T0,
        )
    };
    assert_eq!(gst(None).unwrap().expiration, ts(T0 + 43_200));
    assert_eq!(gst(Some(900)).unwrap().expiration, ts(T0 + 900));
    assert_eq!(gst(Some(129_600)).unwrap().expiration, ts(T0 + 129_600));
    for d in [899, 129_601] {
        assert_eq!(gst(Some(d)).unwrap_err().code(), "ValidationError", "{d}");
    }
}

#[test]
fn get_session_token_is_refused_with_session_credentials() {
    let w = mfa_world();
    let guard = Guard::default();
    let gst = |caller: &Caller| {
        session_token(
            &guard,
            caller,
            &w.snapshot,
            &GetSessionTokenParams::default(),
            T0,
        )
    };
    let issued = gst(&w.alice).unwrap();
    let user_session = login_session(&w.snapshot, &issued, T0 + 1).unwrap();
    assert_eq!(gst(&user_session).unwrap_err().code(), "AccessDenied");

    let code = totp::code_at(&w.seed, T0).unwrap();
    let p = AssumeRoleParams {
        serial_number: Some(&w.serial),
        token_code: Some(&code),
        ..params(&w.role)
    };
    let issued = assume(&w.alice, &w.snapshot, &p, T0).unwrap();
    let role_session = login_session(&w.snapshot, &issued, T0 + 1).unwrap();
    assert_eq!(gst(&role_session).unwrap_err().code(), "AccessDenied");
}

#[test]
fn get_session_token_session_is_the_user_with_mfa_recorded() {
    let mut w = World::new(A, 1);
    let key = w.user("alice");
    w.user_policy("alice", &allow("s3:GetObject", "*"));
    let device = w
        .tenant
        .create_virtual_mfa_device(&mut w.ids, "alice", None)
        .unwrap();
    let seed = device.seed.expose().to_owned();
    let at = T0 - 86_400;
    let step = totp::time_step(at);
    w.tenant
        .enable_mfa_device(
            "alice",
            &device.serial_number,
            &totp::code_at_step(&seed, step - 1).unwrap(),
            &totp::code_at_step(&seed, step).unwrap(),
            at,
        )
        .unwrap();
    let user_id = w.tenant.get_user("alice").unwrap().user_id.clone();
    let s = w.snapshot();
    let alice = login(&s, &key, T0);
    let guard = Guard::default();

    let plain = session_token(&guard, &alice, &s, &GetSessionTokenParams::default(), T0).unwrap();
    assert_eq!(plain.arn, format!("arn:aws:iam::{A}:user/alice"));
    assert_eq!(plain.assumed_role_id, user_id);
    assert!(plain.access_key_id.starts_with("ASIA"));
    let session = login_session(&s, &plain, T0 + 10).unwrap();
    assert_eq!(session.principal, alice.principal);
    let ctx = context_of(&s, &session, T0 + 10);
    assert_eq!(value(&ctx, "aws:TokenIssueTime"), Some(ts(T0).to_string()));
    assert_eq!(
        value(&ctx, "aws:MultiFactorAuthPresent").as_deref(),
        Some("false")
    );
    assert_eq!(value(&ctx, "aws:userid").as_deref(), Some(&*user_id));
    assert_eq!(value(&ctx, "aws:username").as_deref(), Some("alice"));
    assert_eq!(
        allowed(&s, &session, "s3:GetObject", "arn:aws:s3:::b/k", T0 + 10),
        Outcome::Allow
    );
    assert_eq!(
        allowed(&s, &session, "s3:PutObject", "arn:aws:s3:::b/k", T0 + 10),
        Outcome::ImplicitDeny
    );

    let code = totp::code_at(&seed, T0).unwrap();
    let p = GetSessionTokenParams {
        serial_number: Some(&device.serial_number),
        token_code: Some(&code),
        ..Default::default()
    };
    let with_mfa = session_token(&guard, &alice, &s, &p, T0).unwrap();
    let session = login_session(&s, &with_mfa, T0 + 10).unwrap();
    let ctx = context_of(&s, &session, T0 + 10);
    assert_eq!(
        value(&ctx, "aws:MultiFactorAuthPresent").as_deref(),
        Some("true")
    );
    assert_eq!(value(&ctx, "aws:MultiFactorAuthAge").as_deref(), Some("10"));
    // Replayed, or a wrong code, or half the pair.
    assert_eq!(
        session_token(&guard, &alice, &s, &p, T0)
            .unwrap_err()
            .code(),
        "AccessDenied"
    );
    let wrong = wrong_code(&seed, T0 + 60);
    let p = GetSessionTokenParams {
        serial_number: Some(&device.serial_number),
        token_code: Some(&wrong),
        ..Default::default()
    };
    assert_eq!(
        session_token(&guard, &alice, &s, &p, T0 + 60)
            .unwrap_err()
            .code(),
        "AccessDenied"
    );
    let p = GetSessionTokenParams {
        serial_number: Some(&device.serial_number),
        ..Default::default()
    };
    assert_eq!(
        session_token(&guard, &alice, &s, &p, T0)
            .unwrap_err()
            .code(),
        "ValidationError"
    );
}

#[test]
fn get_session_token_credentials_assume_roles_without_chaining_limits() {
    let w = chain_world();
    let guard = Guard::default();
    let issued = session_token(
        &guard,
        &w.alice,
        &w.snapshot,
        &GetSessionTokenParams::default(),
        T0,
    )
    .unwrap();
    let session = login_session(&w.snapshot, &issued, T0 + 1).unwrap();
    let p = AssumeRoleParams {
        duration_seconds: Some(43_200),
        ..params(&w.r1)
    };
    let role = assume(&session, &w.snapshot, &p, T0 + 1).unwrap();
    assert_eq!(role.expiration, ts(T0 + 1 + 43_200));
}

#[test]
fn token_issue_time_deny_on_a_user_denies_only_its_sessions() {
    let mut w = World::new(A, 1);
    let key = w.user("alice");
    let s = w.snapshot();
    let alice = login(&s, &key, T0 - 1);
    let guard = Guard::default();
    let issued = session_token(
        &guard,
        &alice,
        &s,
        &GetSessionTokenParams::default(),
        T0 - 1,
    )
    .unwrap();

    w.user_policy(
        "alice",
        &policy(&format!(
            r#"{},{{"Effect":"Deny","Action":"*","Resource":"*","Condition":{{"DateLessThan":{{"aws:TokenIssueTime":"2025-01-01T00:00:00Z"}}}}}}"#,
            allow_statement("s3:*", "*")
        )),
    );
    let s = w.snapshot();
    let old = login_session(&s, &issued, T0 + 1).unwrap();
    assert_eq!(
        allowed(&s, &old, "s3:GetObject", "arn:aws:s3:::b/k", T0 + 1),
        Outcome::ExplicitDeny
    );
    let alice = login(&s, &key, T0 + 1);
    assert_eq!(
        allowed(&s, &alice, "s3:GetObject", "arn:aws:s3:::b/k", T0 + 1),
        Outcome::Allow
    );
    let fresh = session_token(
        &guard,
        &alice,
        &s,
        &GetSessionTokenParams::default(),
        T0 + 1,
    )
    .unwrap();
    let fresh = login_session(&s, &fresh, T0 + 2).unwrap();
    assert_eq!(
        allowed(&s, &fresh, "s3:GetObject", "arn:aws:s3:::b/k", T0 + 2),
        Outcome::Allow
    );
}

// === T23: AssumeRoleWithWebIdentity ===

struct OidcWorld {
    snapshot: TenantSnapshot,
    signer: Es256Signer,
    role: String,
    role_id: String,
    tagging_role: String,
}

fn oidc_world() -> OidcWorld {
    let signer = Es256Signer::generate("key-1").unwrap();
    let mut w = World::new(A, 1);
    w.tenant
        .create_open_id_connect_provider(
            T0 - 86_400,
            CreateOidcProviderInput {
                url: ISSUER.into(),
                client_ids: vec!["sts.amazonaws.com".into()],
                jwks: signer.jwks(),
                ..Default::default()
            },
        )
        .unwrap();
    let prefix = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
    let statement = |actions: &str| {
        format!(
            r#"{{"Effect":"Allow","Principal":{{"Federated":"{PROVIDER_ARN}"}},"Action":{actions},
                "Condition":{{"StringEquals":{{"{prefix}:aud":"sts.amazonaws.com","{prefix}:sub":"{SA}"}}}}}}"#
        )
    };
    let role = w.role_with(CreateRoleInput {
        name: "irsa".into(),
        assume_role_policy: policy(&statement(r#""sts:AssumeRoleWithWebIdentity""#)),
        max_session_duration: Some(7_200),
        tags: vec![tag("team", "blue")],
        ..Default::default()
    });
    let tagging_role = w.role(
        "irsa-tags",
        &policy(&statement(
            r#"["sts:AssumeRoleWithWebIdentity","sts:TagSession"]"#,
        )),
    );
    let role_id = w.role_id("irsa");
    OidcWorld {
        snapshot: w.snapshot(),
        signer,
        role,
        role_id,
        tagging_role,
    }
}

fn id_token(signer: &Es256Signer, claims: &serde_json::Value) -> String {
    let mut base = json!({
        "iss": ISSUER,
        "aud": "sts.amazonaws.com",
        "sub": SA,
        "iat": T0 - 10,
        "exp": T0 + 3600,
    });
    if let (Some(base), Some(extra)) = (base.as_object_mut(), claims.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    signer.sign(&base).unwrap()
}

fn web_params<'a>(role: &'a str, token: &'a str) -> WebIdentityParams<'a> {
    WebIdentityParams {
        role_arn: role,
        role_session_name: "pod1",
        web_identity_token: token,
        ..WebIdentityParams::default()
    }
}

#[test]
fn irsa_web_identity_issues_a_role_session() {
    let w = oidc_world();
    let token = id_token(&w.signer, &json!({}));
    let out = web_identity(&w.snapshot, &web_params(&w.role, &token), T0).unwrap();
    assert_eq!(
        out.issued.arn,
        format!("arn:aws:sts::{A}:assumed-role/irsa/pod1")
    );
    assert_eq!(out.issued.assumed_role_id, format!("{}:pod1", w.role_id));
    assert_eq!(out.subject, SA);
    assert_eq!(out.provider, ISSUER);
    assert_eq!(out.audience, "sts.amazonaws.com");
    assert_eq!(out.issued.expiration, ts(T0 + 3600));
    assert!(out.issued.access_key_id.starts_with("ASIA"));

    let session = login_session(&w.snapshot, &out.issued, T0 + 1).unwrap();
    assert_eq!(session.principal.to_string(), out.issued.arn);
    let ctx = context_of(&w.snapshot, &session, T0 + 1);
    assert_eq!(
        value(&ctx, "aws:FederatedProvider").as_deref(),
        Some(PROVIDER_ARN)
    );
    assert_eq!(
        value(&ctx, "aws:PrincipalTag/team").as_deref(),
        Some("blue")
    );
    assert_eq!(
        value(&ctx, "aws:userid").as_deref(),
        Some(&*out.issued.assumed_role_id)
    );

    let p = WebIdentityParams {
        duration_seconds: Some(7_200),
        ..web_params(&w.role, &token)
    };
    assert_eq!(
        web_identity(&w.snapshot, &p, T0).unwrap().issued.expiration,
        ts(T0 + 7_200)
    );
    let p = WebIdentityParams {
        duration_seconds: Some(7_201),
        ..web_params(&w.role, &token)
    };
    assert_eq!(
        web_identity(&w.snapshot, &p, T0).unwrap_err().code(),
        "ValidationError"
    );
}

#[test]
fn web_identity_with_another_subject_is_denied() {
    let w = oidc_world();
    let token = id_token(
        &w.signer,
        &json!({"sub": "system:serviceaccount:kube-system:other"}),
    );
    assert_eq!(
        web_identity(&w.snapshot, &web_params(&w.role, &token), T0)
            .unwrap_err()
            .code(),
        "AccessDenied"
    );
    // And a valid token for a role that does not exist.
    let token = id_token(&w.signer, &json!({}));
    let missing = format!("arn:aws:iam::{A}:role/nope");
    assert_eq!(
        web_identity(&w.snapshot, &web_params(&missing, &token), T0)
            .unwrap_err()
            .code(),
        "AccessDenied"
    );
}

#[test]
fn web_identity_tokens_that_do_not_verify() {
    let w = oidc_world();
    let role = &w.role;
    let code = |token: &str| {
        web_identity(&w.snapshot, &web_params(role, token), T0)
            .unwrap_err()
            .code()
    };
    assert_eq!(
        code(&id_token(&w.signer, &json!({"aud": "other-client"}))),
        "InvalidIdentityToken"
    );
    assert_eq!(
        code(&id_token(
            &w.signer,
            &json!({"iat": T0 - 7200, "exp": T0 - 3600})
        )),
        "ExpiredTokenException"
    );
    let unknown = id_token(&w.signer, &json!({"iss": "https://unknown.example.com"}));
    assert_eq!(
        web_identity(&w.snapshot, &web_params(role, &unknown), T0),
        Err(StsError::WebIdentity(
            crate::sts::jwt::JwtError::InvalidIdentityToken(
                "No OpenIDConnect provider found in your account for https://unknown.example.com"
                    .into()
            )
        ))
    );
    let impostor = Es256Signer::generate("key-1").unwrap();
    assert_eq!(
        code(&id_token(&impostor, &json!({}))),
        "InvalidIdentityToken"
    );
    let stranger = Es256Signer::generate("key-2").unwrap();
    assert_eq!(
        code(&id_token(&stranger, &json!({}))),
        "InvalidIdentityToken"
    );
    // Tampering with a genuine token breaks its signature.
    let genuine = id_token(&w.signer, &json!({}));
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let forged_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        json!({"iss": ISSUER, "aud": "sts.amazonaws.com", "sub": SA, "exp": T0 + 3600}).to_string(),
    );
    parts[1] = &forged_payload;
    assert_eq!(code(&parts.join(".")), "InvalidIdentityToken");
}

#[test]
fn web_identity_token_times_with_sixty_seconds_of_skew() {
    let w = oidc_world();
    let run = |claims: serde_json::Value| {
        let token = id_token(&w.signer, &claims);
        web_identity(&w.snapshot, &web_params(&w.role, &token), T0).map(|o| o.issued.arn)
    };
    for past in [1, 59] {
        assert!(
            run(json!({"iat": T0 - 3600, "exp": T0 - past})).is_ok(),
            "exp {past} s ago"
        );
    }
    assert_eq!(
        run(json!({"iat": T0 - 3600, "exp": T0 - 61}))
            .unwrap_err()
            .code(),
        "ExpiredTokenException"
    );
    for claim in ["iat", "nbf"] {
        assert!(run(json!({ claim: T0 + 30 })).is_ok(), "{claim} 30 s ahead");
        assert_eq!(
            run(json!({ claim: T0 + 90 })).unwrap_err().code(),
            "InvalidIdentityToken",
            "{claim} 90 s ahead"
        );
    }
}

#[test]
fn web_identity_session_tags_need_tag_session() {
    let w = oidc_world();
    let token = id_token(
        &w.signer,
        &json!({"https://aws.amazon.com/tags": {
            "principal_tags": {"team": ["red"], "app": ["web"]},
            "transitive_tag_keys": ["app"]
        }}),
    );
    assert_eq!(
        web_identity(&w.snapshot, &web_params(&w.role, &token), T0)
            .unwrap_err()
            .code(),
        "AccessDenied"
    );
    let out = web_identity(&w.snapshot, &web_params(&w.tagging_role, &token), T0).unwrap();
    let session = login_session(&w.snapshot, &out.issued, T0 + 1).unwrap();
    let ctx = context_of(&w.snapshot, &session, T0 + 1);
    assert_eq!(value(&ctx, "aws:PrincipalTag/team").as_deref(), Some("red"));
    assert_eq!(value(&ctx, "aws:PrincipalTag/app").as_deref(), Some("web"));
    let claims = &session.session.as_deref().unwrap().claims;
    assert_eq!(claims.transitive_tag_keys, vec!["app".to_owned()]);
}

// === T24: GetCallerIdentity ===

#[test]
fn caller_identity_answers_even_under_an_explicit_deny() {
    let mut w = World::new(A, 1);
    let key = w.user("alice");
    w.user("bob");
    w.user_policy(
        "alice",
        &policy(r#"{"Effect":"Deny","Action":"*","Resource":"*"}"#),
    );
    let bob_key = w.tenant.users["bob"].access_keys[0].clone();
    w.user_policy("bob", &allow("sts:AssumeRole", "*"));
    let root = w.root();
    let role = w.role("app", &trusts(&root, &["sts:AssumeRole"]));
    let role_id = w.role_id("app");
    let user_id = w.tenant.get_user("alice").unwrap().user_id.clone();
    let s = w.snapshot();

    let alice = login(&s, &key, T0);
    // The engine agrees since issue 12: no permission is needed, so the deny does not bind.
    assert_eq!(
        allowed(&s, &alice, "sts:GetCallerIdentity", "*", T0),
        Outcome::Allow
    );
    assert_eq!(
        caller_identity(&alice, &s),
        CallerIdentity {
            user_id,
            account: A.into(),
            arn: format!("arn:aws:iam::{A}:user/alice"),
        }
    );

    let bob = login(&s, &bob_key, T0);
    let p = AssumeRoleParams {
        role_session_name: "Sx",
        ..params(&role)
    };
    let issued = assume(&bob, &s, &p, T0).unwrap();
    let session = login_session(&s, &issued, T0 + 1).unwrap();
    assert_eq!(
        caller_identity(&session, &s),
        CallerIdentity {
            user_id: format!("{role_id}:Sx"),
            account: A.into(),
            arn: format!("arn:aws:sts::{A}:assumed-role/app/Sx"),
        }
    );
}

// === RELIABILITY T23: least privilege and tenant isolation ===

const ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:*",
    "s3:Get*",
    "ec2:RunInstances",
    "ec2:*",
    "iam:GetUser",
    "*",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::b/*",
    "arn:aws:s3:::b/k",
    "arn:aws:s3:::b/secret",
    "arn:aws:s3:::other/k",
];

fn statement_strategy() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.8),
        prop::sample::subsequence(ACTIONS, 1..=3),
        prop::sample::subsequence(RESOURCES, 1..=2),
    )
        .prop_map(|(allow, actions, resources)| {
            format!(
                r#"{{"Effect":"{}","Action":{},"Resource":{}}}"#,
                if allow { "Allow" } else { "Deny" },
                serde_json::to_string(&actions).unwrap(),
                serde_json::to_string(&resources).unwrap()
            )
        })
}

struct Isolation {
    a: TenantSnapshot,
    /// Same role and user names, same issuer key as A.
    twin: TenantSnapshot,
    /// Same names, its own key.
    other: TenantSnapshot,
    alice: Caller,
    role: String,
}

fn isolation_world() -> Isolation {
    let build = |account: &str, seed: u64| {
        let mut w = World::new(account, seed);
        let alice = w.user("alice");
        w.user_policy("alice", &allow("sts:AssumeRole", "*"));
        let root = w.root();
        let role = w.role("app", &trusts(&root, &["sts:AssumeRole"]));
        w.role_policy(
            "app",
            &policy(&format!(
                r#"{},{},{{"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/secret"}}"#,
                allow_statement("s3:*", "arn:aws:s3:::b/*"),
                allow_statement("ec2:RunInstances", "*"),
            )),
        );
        let s = w.snapshot();
        (login(&s, &alice, T0), s, role)
    };
    let (alice, a, role) = build(A, 7);
    let (_, twin, _) = build(B, 7);
    let (_, other, _) = build(B, 8);
    Isolation {
        a,
        twin,
        other,
        alice,
        role,
    }
}

#[test]
fn a_twin_tenant_with_the_same_issuer_key_has_its_own_tokens() {
    let w = isolation_world();
    // The twin's keyring is A's: only the tenant binding tells them apart.
    assert_eq!(
        w.a.tenant().issuer_keys[0].key_id,
        w.twin.tenant().issuer_keys[0].key_id
    );
    let issued = assume(&w.alice, &w.a, &params(&w.role), T0).unwrap();
    assert!(login_session(&w.a, &issued, T0 + 1).is_ok());
    for snapshot in [&w.twin, &w.other] {
        assert_eq!(
            login_session(snapshot, &issued, T0 + 1).unwrap_err(),
            StsError::InvalidToken
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_session_never_exceeds_its_role_nor_its_tenant(
        statements in prop::collection::vec(statement_strategy(), 1..=3),
    ) {
        thread_local! {
            static WORLD: Isolation = isolation_world();
        }
        WORLD.with(|w| {
            let document = policy(&statements.join(","));
            let p = AssumeRoleParams {
                policy: Some(&document),
                ..params(&w.role)
            };
            let issued = assume(&w.alice, &w.a, &p, T0).unwrap();
            let session = login_session(&w.a, &issued, T0 + 1).unwrap();
            let role_only = Caller {
                session_policies: Arc::new([]),
                ..session.clone()
            };
            for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "ec2:RunInstances", "ec2:StopInstances", "iam:GetUser"] {
                for resource in RESOURCES {
                    let by_session = allowed(&w.a, &session, action, resource, T0 + 1);
                    let by_role = allowed(&w.a, &role_only, action, resource, T0 + 1);
                    prop_assert!(
                        by_session != Outcome::Allow || by_role == Outcome::Allow,
                        "{action} on {resource}: session {by_session:?}, role {by_role:?}, policy {document}"
                    );
                }
            }
            for snapshot in [&w.twin, &w.other] {
                prop_assert_eq!(
                    login_session(snapshot, &issued, T0 + 1).unwrap_err(),
                    StsError::InvalidToken
                );
            }
            Ok(())
        })?;
    }
}

/// Issue #11 item 5: a role ARN is split with the policy language's splitter, so tenants of
/// the `aws-cn` and `aws-us-gov` partitions find their roles; the ARN must still be the role's.
#[test]
fn roles_are_found_by_arn_in_every_partition() {
    for partition in ["aws-cn", "aws-us-gov"] {
        let mut w = World::new(A, 1);
        let root = w.root();
        w.role("app", &trusts(&root, &["sts:AssumeRole"]));
        for role in w.tenant.roles.values_mut() {
            role.arn = role
                .arn
                .replacen("arn:aws:", &format!("arn:{partition}:"), 1);
        }
        let s = w.snapshot();
        let arn = format!("arn:{partition}:iam::{A}:role/app");
        assert_eq!(super::find_role(&s, &arn).map(|r| &*r.arn), Some(&*arn));
        for other in [
            format!("arn:aws:iam::{A}:role/app"),
            format!("arn:{partition}:s3::{A}:role/app"),
            format!("arn:{partition}:iam::{A}:user/app"),
            "role/app".to_owned(),
        ] {
            assert!(super::find_role(&s, &other).is_none(), "{other}");
        }
    }
}
