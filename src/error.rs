//! One error vocabulary: AWS's error codes, with the HTTP status and fault AWS answers them
//! with. Every domain error names its code with [`AwsCode`]; each edge maps a code once (the
//! gRPC edge to a `tonic::Code`, the HTTP edge to AWS's XML or JSON error body), so a code can
//! never fall through to a default by a typo.
//!
//! This module is a leaf: the engine modules use it, and it uses nothing of the crate.

use std::fmt;

/// Who is at fault, as AWS's Query protocol writes it in `<Error><Type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong (4xx).
    Sender,
    /// The service failed (5xx).
    Receiver,
}

impl Fault {
    /// `Sender` or `Receiver`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sender => "Sender",
            Self::Receiver => "Receiver",
        }
    }
}

macro_rules! aws_codes {
    ($( $(#[$doc:meta])* $name:ident = $status:literal ),+ $(,)?) => {
        /// An error code of AWS's IAM and STS APIs (and iamlet's own, where AWS has none).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum AwsCode {
            $( $(#[$doc])* $name, )+
        }

        impl AwsCode {
            /// Every code, for tests and documentation.
            pub const ALL: &'static [AwsCode] = &[$(AwsCode::$name),+];

            /// The code as AWS spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$name => stringify!($name), )+
                }
            }

            /// The HTTP status AWS answers this code with.
            pub fn http_status(self) -> u16 {
                match self {
                    $( Self::$name => $status, )+
                }
            }

            /// The code spelled `s`, if it is one.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $( stringify!($name) => Some(Self::$name), )+
                    _ => None,
                }
            }
        }
    };
}

aws_codes! {
    // IAM
    /// A named entity does not exist.
    NoSuchEntity = 404,
    /// An entity of that name exists already.
    EntityAlreadyExists = 409,
    /// A quota would be exceeded.
    LimitExceeded = 409,
    /// The entity still has subordinate entities.
    DeleteConflict = 409,
    /// A policy document is malformed.
    MalformedPolicyDocument = 400,
    /// A parameter is invalid (IAM's generic refusal).
    InvalidInput = 400,
    /// A parameter breaks its constraint.
    ValidationError = 400,
    /// MFA codes did not verify.
    InvalidAuthenticationCode = 403,
    /// A password breaks the account's password policy.
    PasswordPolicyViolation = 400,
    /// AWS-managed entities cannot be changed.
    UnmodifiableEntity = 400,
    /// The operation is for IAM users only.
    InvalidUserType = 400,
    /// The caller may not do this.
    AccessDenied = 403,
    /// Another request changed the entity at the same time; retry.
    ConcurrentModification = 409,
    /// The service failed.
    ServiceFailure = 500,
    /// No credential report was generated.
    ReportNotPresent = 410,
    /// The credential report is older than 4 hours.
    ReportExpired = 410,
    /// A policy could not be evaluated (the policy simulator's `PolicyEvaluation`).
    PolicyEvaluation = 500,
    // CloudTrail (`LookupEvents`)
    /// Lookup attributes that CloudTrail refuses (more than one, an unknown key, an empty
    /// value).
    InvalidLookupAttributesException = 400,
    /// A start time after the end time.
    InvalidTimeRangeException = 400,
    /// `MaxResults` outside 1..=50.
    InvalidMaxResultsException = 400,
    /// A `NextToken` this service did not give, or given with other parameters.
    InvalidNextTokenException = 400,
    // STS
    /// A packed session policy or tag set is too large.
    PackedPolicyTooLarge = 400,
    /// A web identity token does not verify.
    InvalidIdentityToken = 400,
    /// A web identity token has expired.
    ExpiredTokenException = 400,
    /// Unknown, inactive or forged credentials.
    InvalidClientTokenId = 403,
    /// Expired session credentials.
    ExpiredToken = 403,
    /// A SigV4 signature does not verify.
    SignatureDoesNotMatch = 403,
    /// A SigV4 signature lacks a part.
    IncompleteSignature = 400,
    /// The request carries no credentials.
    MissingAuthenticationToken = 403,
    // Query protocol
    /// The action is not one the endpoint knows.
    InvalidAction = 400,
    /// An operation of the model that iamlet refuses on purpose, with the reason.
    UnsupportedOperation = 400,
    /// A required parameter is absent.
    MissingParameter = 400,
    /// A parameter's value is not acceptable.
    InvalidParameterValue = 400,
    /// Too many requests (or failed authentications) from this caller.
    Throttling = 400,
    /// The service failed unexpectedly.
    InternalFailure = 500,
    /// The service cannot answer now; try again.
    ServiceUnavailable = 503,
    /// Form parameters that are not valid percent-encoded UTF-8.
    MalformedQueryString = 400,
    /// A request body of a content type the protocol does not speak.
    UnsupportedMediaType = 415,
    /// A request body over the edge's limit.
    RequestEntityTooLarge = 413,
    // EKS (pod identity associations)
    /// The association exists already, or its (cluster, namespace, service account) is taken.
    ResourceInUseException = 409,
    /// The association (or the cluster's provider) does not exist.
    ResourceNotFoundException = 404,
    /// A parameter breaks EKS's constraints.
    InvalidParameterException = 400,
    // IAM Access Analyzer (unused access analyzers)
    /// An analyzer of that name exists already.
    ConflictException = 409,
    /// A parameter breaks Access Analyzer's constraints.
    ValidationException = 400,
    // iamlet's own
    /// The tenant is not one this process knows.
    NoSuchTenant = 404,
    /// The tenant's snapshot is older than the version asked for.
    VersionNotReached = 503,
    /// The tenant's data is older than the staleness policy allows.
    StalePolicy = 503,
    /// A declarative tenant file does not parse.
    MalformedTenantSpec = 400,
    /// A declarative tenant file cannot be applied.
    InvalidTenantSpec = 400,
}

impl AwsCode {
    /// Whose fault an error of this code is: the sender's for 4xx, the receiver's for 5xx.
    pub fn fault(self) -> Fault {
        if self.http_status() >= 500 {
            Fault::Receiver
        } else {
            Fault::Sender
        }
    }

    /// True for codes that say the caller's credentials were not accepted.
    pub fn is_authentication(self) -> bool {
        matches!(
            self,
            Self::MissingAuthenticationToken
                | Self::InvalidClientTokenId
                | Self::SignatureDoesNotMatch
                | Self::IncompleteSignature
                | Self::ExpiredToken
        )
    }
}

impl PartialEq<&str> for AwsCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for AwsCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl fmt::Display for AwsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest error message any edge answers, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2048;

/// `message` cut at [`MAX_MESSAGE_CHARS`] with a marker: what every edge answers, so that an
/// answer never grows past a peer's header or body limits.
pub fn bounded_message(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= MAX_MESSAGE_CHARS || message.chars().nth(MAX_MESSAGE_CHARS).is_none() {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    out.push_str("...(truncated)");
    std::borrow::Cow::Owned(out)
}

/// The longest echo of caller input that an error message carries.
pub const MAX_ECHO_CHARS: usize = 256;

/// `value` for an error message: whole when short, otherwise its first [`MAX_ECHO_CHARS`]
/// characters and a marker, with control characters dropped, so an error never grows with
/// the input that caused it.
pub fn echo(value: &str) -> std::borrow::Cow<'_, str> {
    let printable = !value.chars().any(char::is_control);
    if printable && value.chars().nth(MAX_ECHO_CHARS).is_none() {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ECHO_CHARS)
        .collect();
    if value
        .chars()
        .filter(|c| !c.is_control())
        .nth(MAX_ECHO_CHARS)
        .is_some()
    {
        out.push_str("...(truncated)");
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_spelling() {
        for code in AwsCode::ALL {
            assert_eq!(AwsCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(AwsCode::parse("NoSuchThing"), None);
    }

    #[test]
    fn faults_follow_the_status() {
        assert_eq!(AwsCode::ServiceFailure.fault(), Fault::Receiver);
        assert_eq!(AwsCode::NoSuchEntity.fault(), Fault::Sender);
        assert_eq!(AwsCode::SignatureDoesNotMatch.http_status(), 403);
    }

    #[test]
    fn echoes_are_bounded_and_printable() {
        assert_eq!(echo("alice"), "alice");
        let long = "x".repeat(10_000);
        let echoed = echo(&long);
        assert!(echoed.len() < MAX_ECHO_CHARS + 20, "{}", echoed.len());
        assert!(echoed.ends_with("...(truncated)"));
        assert_eq!(echo("a\nb"), "ab");
    }
}
