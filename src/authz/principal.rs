//! Who is asking: the request principal, and how a policy's `Principal` element matches it.

use std::fmt;

use crate::policy::{PrincipalMatcher, PrincipalRef};

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An account's root user.
    Root {
        /// The account id.
        account: Box<str>,
    },
    /// An IAM user with long-term credentials (or `GetSessionToken` credentials).
    User {
        /// The account id.
        account: Box<str>,
        /// The user ARN, path included.
        arn: Box<str>,
        /// The unique id (`AIDA…`), when known.
        unique_id: Option<Box<str>>,
    },
    /// A role acting without a named session (used when a tool asks "what may this role do").
    Role {
        /// The account id.
        account: Box<str>,
        /// The role ARN, path included.
        arn: Box<str>,
        /// The role name.
        name: Box<str>,
        /// The unique id (`AROA…`), when known.
        unique_id: Option<Box<str>>,
    },
    /// A role session from `AssumeRole*`.
    AssumedRole {
        /// The account id.
        account: Box<str>,
        /// The role name (a session ARN omits the role's path).
        role_name: Box<str>,
        /// The session name.
        session_name: Box<str>,
        /// The role's unique id (`AROA…`), when known.
        role_unique_id: Option<Box<str>>,
    },
    /// A federated user session from `GetFederationToken`.
    FederatedUser {
        /// The account id.
        account: Box<str>,
        /// The federated user name.
        name: Box<str>,
    },
    /// A caller presenting a web identity (OIDC) token, before it becomes a role session.
    WebIdentity {
        /// The provider as trust policies name it (`arn:aws:iam::A:oidc-provider/...`).
        provider: Box<str>,
    },
    /// An AWS service principal such as `ec2.amazonaws.com`.
    Service {
        /// The service principal name.
        name: Box<str>,
    },
    /// An unauthenticated caller.
    Anonymous,
}

/// How a resource policy's `Principal` matched the caller, which decides what the grant
/// bypasses in the same account (IAM-SEMANTICS §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalMatch {
    /// The account: delegation, the caller still needs an identity-based allow.
    ViaAccount,
    /// The caller's role: replaces the identity-policy requirement, not the boundary or
    /// session policy.
    ViaRole,
    /// The caller itself (user, session, federated user, service, provider) or `*`.
    Direct,
}

/// A principal that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid principal `{0}`: expected an IAM user, role, root, assumed-role or federated-user ARN, a service principal, or `anonymous`")]
pub struct PrincipalError(String);

// === impl Principal ===

impl Principal {
    /// Reads a principal from its ARN (`arn:aws:iam::A:user/alice`,
    /// `arn:aws:sts::A:assumed-role/R/S`, `arn:aws:iam::A:root`, ...), a service principal
    /// (`ec2.amazonaws.com`), or `anonymous`.
    pub fn parse(text: &str) -> Result<Self, PrincipalError> {
        let err = || PrincipalError(text.to_owned());
        if text.eq_ignore_ascii_case("anonymous") || text == "*" {
            return Ok(Self::Anonymous);
        }
        if !text.starts_with("arn:") {
            if text.contains('.') && !text.contains(['/', ':', '*']) {
                return Ok(Self::Service { name: text.into() });
            }
            return Err(err());
        }
        let parsed = PrincipalRef::parse_aws(text).ok_or_else(err)?;
        Ok(match parsed {
            PrincipalRef::Account { account } => Self::Root { account },
            PrincipalRef::User { account, arn } => Self::User {
                account,
                arn,
                unique_id: None,
            },
            PrincipalRef::Role { account, name } => Self::Role {
                account,
                arn: text.into(),
                name,
                unique_id: None,
            },
            PrincipalRef::Session {
                account,
                role,
                session,
            } => Self::AssumedRole {
                account,
                role_name: role,
                session_name: session,
                role_unique_id: None,
            },
            PrincipalRef::FederatedUser { account, name } => Self::FederatedUser { account, name },
            _ => return Err(err()),
        })
    }

    /// The principal's account, when it has one.
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::Root { account }
            | Self::User { account, .. }
            | Self::Role { account, .. }
            | Self::AssumedRole { account, .. }
            | Self::FederatedUser { account, .. } => Some(account),
            Self::WebIdentity { .. } | Self::Service { .. } | Self::Anonymous => None,
        }
    }

    /// True for temporary-credential principals (role and federated sessions), which carry a
    /// session policy.
    pub fn is_session(&self) -> bool {
        matches!(self, Self::AssumedRole { .. } | Self::FederatedUser { .. })
    }

    /// Does a compiled `Principal` / `NotPrincipal` element apply to this caller?
    ///
    /// `has_boundary` implements AWS's documented quirk: `NotPrincipal` always applies to a
    /// principal with a permissions boundary, whatever it lists.
    pub fn matches(
        &self,
        matcher: &PrincipalMatcher,
        has_boundary: bool,
    ) -> Option<PrincipalMatch> {
        let best = matcher.refs.iter().filter_map(|r| self.match_ref(r)).max();
        if matcher.negated {
            let caller_is_iam = self.account().is_some();
            (best.is_none() || (has_boundary && caller_is_iam))
                .then_some(PrincipalMatch::ViaAccount)
        } else {
            best
        }
    }

    fn match_ref(&self, r: &PrincipalRef) -> Option<PrincipalMatch> {
        use PrincipalMatch::{Direct, ViaAccount, ViaRole};
        match (r, self) {
            (PrincipalRef::Everyone, _) => Some(Direct),
            (PrincipalRef::Account { account }, _) => {
                (self.account() == Some(&**account)).then_some(ViaAccount)
            }
            (PrincipalRef::User { arn, .. }, Self::User { arn: mine, .. }) => {
                (arn == mine).then_some(Direct)
            }
            (
                PrincipalRef::Role { account, name },
                Self::AssumedRole {
                    account: a,
                    role_name,
                    ..
                },
            )
            | (
                PrincipalRef::Role { account, name },
                Self::Role {
                    account: a,
                    name: role_name,
                    ..
                },
            ) => (account == a && name == role_name).then_some(ViaRole),
            (
                PrincipalRef::Session {
                    account,
                    role,
                    session,
                },
                Self::AssumedRole {
                    account: a,
                    role_name,
                    session_name,
                    ..
                },
            ) => (account == a && role == role_name && session == session_name).then_some(Direct),
            (
                PrincipalRef::FederatedUser { account, name },
                Self::FederatedUser {
                    account: a,
                    name: n,
                },
            ) => (account == a && name == n).then_some(Direct),
            (
                PrincipalRef::UniqueId(id),
                Self::User {
                    unique_id: Some(mine),
                    ..
                },
            ) => (id == mine).then_some(Direct),
            (
                PrincipalRef::UniqueId(id),
                Self::AssumedRole {
                    role_unique_id: Some(mine),
                    ..
                },
            )
            | (
                PrincipalRef::UniqueId(id),
                Self::Role {
                    unique_id: Some(mine),
                    ..
                },
            ) => (id == mine).then_some(ViaRole),
            (PrincipalRef::Service(s), Self::Service { name }) => {
                s.eq_ignore_ascii_case(name).then_some(Direct)
            }
            (PrincipalRef::Federated(f), Self::WebIdentity { provider }) => {
                (f == provider).then_some(Direct)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Principal {
    /// The principal as AWS names it in messages: its ARN, the service name, or `anonymous`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root { account } => write!(f, "arn:aws:iam::{account}:root"),
            Self::User { arn, .. } | Self::Role { arn, .. } => f.write_str(arn),
            Self::AssumedRole {
                account,
                role_name,
                session_name,
                ..
            } => write!(
                f,
                "arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"
            ),
            Self::FederatedUser { account, name } => {
                write!(f, "arn:aws:sts::{account}:federated-user/{name}")
            }
            Self::WebIdentity { provider } => f.write_str(provider),
            Self::Service { name } => f.write_str(name),
            Self::Anonymous => f.write_str("anonymous"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_kind() {
        for text in [
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/div/alice",
            "arn:aws:iam::111122223333:role/R",
            "arn:aws:sts::111122223333:assumed-role/R/S",
            "arn:aws:sts::111122223333:federated-user/bob",
            "ec2.amazonaws.com",
            "anonymous",
        ] {
            assert_eq!(Principal::parse(text).unwrap().to_string(), text);
        }
        assert!(Principal::parse("alice").is_err());
        assert!(Principal::parse("arn:aws:s3:::bucket").is_err());
    }

    #[test]
    fn role_arn_matches_its_sessions_not_other_roles() {
        let session = Principal::parse("arn:aws:sts::111122223333:assumed-role/R/S").unwrap();
        let by_role = PrincipalMatcher {
            negated: false,
            refs: vec![PrincipalRef::parse_aws("arn:aws:iam::111122223333:role/path/R").unwrap()]
                .into(),
        };
        assert_eq!(
            session.matches(&by_role, false),
            Some(PrincipalMatch::ViaRole)
        );
        let other = Principal::parse("arn:aws:sts::111122223333:assumed-role/R2/S").unwrap();
        assert_eq!(other.matches(&by_role, false), None);
    }

    #[test]
    fn not_principal_always_applies_under_a_boundary() {
        let session = Principal::parse("arn:aws:sts::111122223333:assumed-role/R/S").unwrap();
        let not_role = PrincipalMatcher {
            negated: true,
            refs: vec![PrincipalRef::parse_aws("arn:aws:iam::111122223333:role/R").unwrap()].into(),
        };
        assert_eq!(session.matches(&not_role, false), None);
        assert!(session.matches(&not_role, true).is_some());
    }
}
