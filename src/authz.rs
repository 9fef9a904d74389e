//! Evaluation: given the policies that apply and a request, decide as AWS IAM does.
//!
//! [`evaluate`] is a pure, synchronous function. It returns a [`Decision`] (`Allow`,
//! `ExplicitDeny` or `ImplicitDeny`) with the policy type and statement that decided, and
//! [`Decision::message`] renders AWS's access-denied text. [`evaluate_explained`] also returns
//! every statement that applied.
//!
//! The procedure (IAM-SEMANTICS §3):
//!
//! 1. an applicable `Deny` in any policy → `ExplicitDeny` (reported in the order RCP, SCP,
//!    resource-based, identity-based, permissions boundary, session, VPC endpoint);
//! 2. RCPs and SCPs must allow at every level of the organization path → else deny;
//! 3. VPC endpoint policies, when the request came through one, must allow;
//! 4. cross-account: the resource policy must allow the caller *and* the caller's own
//!    account must allow (identity ∩ boundary ∩ session);
//! 5. same account: a resource-policy `Allow` that names the caller directly (user, session,
//!    federated user, `*`) grants on its own; one that names the caller's role replaces the
//!    identity-policy requirement but not the boundary or session policy; one that names the
//!    account is delegation and grants nothing by itself;
//! 6. otherwise identity ∩ boundary ∩ session must allow.
//!
//! Role trust policies and KMS key policies must allow the caller themselves: an identity
//! policy alone never suffices for `sts:AssumeRole*`, nor for a KMS action on a key
//! (`arn:…:kms:REGION:ACCOUNT:key/ID`), and a key with no key policy given allows nobody
//! ([`Rule::KeyPolicyRequired`]). `sts:GetCallerIdentity` needs no permission at all and is
//! allowed whatever the policies say ([`Rule::NoPermissionRequired`]).

mod context;
mod decision;
mod evaluate;
pub mod generate;
mod principal;
mod request;

pub use context::{Context, DuplicateKeyError};
pub use decision::{decision_message, Decision, Outcome, Rule, StatementRef, Trace, TraceEntry};
pub use evaluate::{evaluate, evaluate_explained, OrgLevel, PolicySet};
pub use principal::{Principal, PrincipalError, PrincipalMatch};
pub use request::{Environment, Request, RequestError};
