//! What a `Principal` element names, parsed once when the policy compiles.

/// One principal named in a `Principal` or `NotPrincipal` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalRef {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    Everyone,
    /// An account (`123456789012` or `arn:aws:iam::123456789012:root`): any principal of the
    /// account, which still needs its own identity-based permission (delegation).
    Account {
        /// The 12-digit account id.
        account: Box<str>,
    },
    /// An IAM user.
    User {
        /// The account id.
        account: Box<str>,
        /// The user's ARN, path included.
        arn: Box<str>,
    },
    /// An IAM role: matches every session of the role.
    Role {
        /// The account id.
        account: Box<str>,
        /// The role name (the last path component).
        name: Box<str>,
    },
    /// One role session (`arn:aws:sts::A:assumed-role/R/S`).
    Session {
        /// The account id.
        account: Box<str>,
        /// The role name.
        role: Box<str>,
        /// The session name.
        session: Box<str>,
    },
    /// A federated user session (`arn:aws:sts::A:federated-user/N`).
    FederatedUser {
        /// The account id.
        account: Box<str>,
        /// The federated user name.
        name: Box<str>,
    },
    /// A unique id (`AIDA…` for a user, `AROA…` for a role).
    UniqueId(Box<str>),
    /// A service principal (`ec2.amazonaws.com`).
    Service(Box<str>),
    /// A web identity or SAML provider.
    Federated(Box<str>),
    /// An S3 canonical user id; iamlet has no canonical users, so it never matches.
    CanonicalUser(Box<str>),
}

// === impl PrincipalRef ===

impl PrincipalRef {
    /// Parses a value of the `AWS` principal key; `None` for a value IAM refuses.
    pub fn parse_aws(value: &str) -> Option<Self> {
        if value == "*" {
            return Some(Self::Everyone);
        }
        if is_account_id(value) {
            return Some(Self::Account {
                account: value.into(),
            });
        }
        if let Some(rest) = value.strip_prefix("arn:") {
            let mut parts = rest.splitn(5, ':');
            let partition = parts.next()?;
            let service = parts.next()?;
            let region = parts.next()?;
            let account = parts.next()?;
            let resource = parts.next()?;
            if partition.is_empty() || !region.is_empty() || !is_account_id(account) {
                return None;
            }
            let account: Box<str> = account.into();
            return match service {
                "iam" => {
                    if resource == "root" {
                        return Some(Self::Account { account });
                    }
                    let (kind, path_and_name) = resource.split_once('/')?;
                    let name = path_and_name.rsplit('/').next().filter(|n| valid_name(n))?;
                    match kind {
                        "user" => Some(Self::User {
                            account,
                            arn: value.into(),
                        }),
                        "role" => Some(Self::Role {
                            account,
                            name: name.into(),
                        }),
                        _ => None,
                    }
                }
                "sts" => {
                    let (kind, rest) = resource.split_once('/')?;
                    match kind {
                        "assumed-role" => {
                            let (role, session) = rest.split_once('/')?;
                            (valid_name(role) && valid_name(session)).then(|| Self::Session {
                                account,
                                role: role.into(),
                                session: session.into(),
                            })
                        }
                        "federated-user" => valid_name(rest).then(|| Self::FederatedUser {
                            account,
                            name: rest.into(),
                        }),
                        _ => None,
                    }
                }
                _ => None,
            };
        }
        is_unique_id(value).then(|| Self::UniqueId(value.into()))
    }
}

/// A 12-digit account id.
pub(crate) fn is_account_id(value: &str) -> bool {
    crate::account::AccountId::is_valid(value)
}

/// An IAM unique id such as `AIDAJQABLZS4A3QDU576Q`: `A`, then 15 to 127 upper-case letters
/// or digits.
pub(crate) fn is_unique_id(value: &str) -> bool {
    (16..=128).contains(&value.len())
        && value.starts_with('A')
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['*', '?', '/'])
}

/// True when IAM accepts `value` as an `AWS` principal.
pub(crate) fn aws_principal_ok(value: &str) -> bool {
    PrincipalRef::parse_aws(value).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_aws_form() {
        let acct = |a: &str| PrincipalRef::Account { account: a.into() };
        assert_eq!(PrincipalRef::parse_aws("*"), Some(PrincipalRef::Everyone));
        assert_eq!(
            PrincipalRef::parse_aws("111122223333"),
            Some(acct("111122223333"))
        );
        assert_eq!(
            PrincipalRef::parse_aws("arn:aws:iam::111122223333:root"),
            Some(acct("111122223333"))
        );
        assert_eq!(
            PrincipalRef::parse_aws("arn:aws:iam::111122223333:role/path/R"),
            Some(PrincipalRef::Role {
                account: "111122223333".into(),
                name: "R".into()
            })
        );
        assert!(matches!(
            PrincipalRef::parse_aws("arn:aws:sts::111122223333:assumed-role/R/S"),
            Some(PrincipalRef::Session { .. })
        ));
        assert!(matches!(
            PrincipalRef::parse_aws("arn:aws:iam::111122223333:user/division/JaneDoe"),
            Some(PrincipalRef::User { .. })
        ));
        assert!(matches!(
            PrincipalRef::parse_aws("AIDAJQABLZS4A3QDU576Q"),
            Some(PrincipalRef::UniqueId(_))
        ));
    }

    #[test]
    fn refuses_partial_wildcards_and_junk() {
        for bad in [
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:iam::*:root",
            "arn:aws:iam::1111:root",
            "arn:aws:s3:::bucket",
            "alice",
            "",
            "arn:aws:iam:us-east-1:111122223333:root",
        ] {
            assert_eq!(PrincipalRef::parse_aws(bad), None, "{bad}");
        }
    }
}
