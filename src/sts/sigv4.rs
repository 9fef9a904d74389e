//! AWS Signature Version 4 verification, for callers who sign their requests with a secret
//! access key that never leaves them.
//!
//! [`Signature::parse`] reads the signature from the `Authorization` header or from
//! presigned-URL query parameters, checks its shape as AWS does, and builds the string to sign
//! from the request; [`Signature::verify`] then checks the time window and the HMAC. The key
//! lookup (`InvalidClientTokenId`) happens in between, elsewhere: the caller reads
//! [`Signature::access_key_id`], finds the secret, and verifies. A sidecar holds no secret,
//! only the key's date keys `kDate` of two UTC days (issue #20): it checks the time window
//! ([`Signature::check_time`]), takes the date key of [`Signature::scope_date`], derives the
//! signing key from it ([`SigningKey::from_date_key`]) and verifies with that
//! ([`Signature::verify_with_key`]).
//!
//! Canonicalization follows AWS's "Create a signed AWS API request" and its SigV4 test suite:
//!
//! * the canonical URI is the raw path with `.`/`..` segments removed and empty segments
//!   collapsed, each segment percent-encoded again as it was sent (so `%20` becomes `%2520`);
//!   for service `s3` the path is neither normalized nor double-encoded, as S3 signs it;
//! * the canonical query is every `&`-separated parameter, decoded then encoded with RFC 3986
//!   (`+` is a literal plus), sorted by name then value; presigned URLs leave out
//!   `X-Amz-Signature`;
//! * the canonical headers are the `SignedHeaders`, each value trimmed with inner runs of
//!   whitespace collapsed, repeated headers joined with `,` in the order sent.
//!
//! Errors carry AWS's codes and, where AWS has one, its text, with one deliberate difference:
//! AWS echoes the whole `Authorization` header in some messages, which would put the signature
//! in a log line, so these messages stop before the echo. Time-window failures use the code
//! STS and IAM answer with, `SignatureDoesNotMatch` ("Signature expired: ..."), not the
//! `RequestExpired` of other services.
//!
//! Hand-written, as the core of authentication: the SigV4 crates are signers built for AWS's
//! SDKs (and pull their own crypto provider), while this verifies, with AWS's error codes and
//! order of checks, on *ring* alone. The parts: `canonical` (the canonical request), `signing`
//! (the key derivation), `verify` (reading and checking a signature) and `time`.

mod canonical;
mod signing;
mod time;
mod verify;

use std::fmt;

use crate::error::AwsCode;

pub use signing::SigningKey;
pub use verify::Signature;

/// The only algorithm SigV4 defines for HMAC signatures.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The last element of every SigV4 credential scope.
const TERMINATOR: &str = "aws4_request";
/// Hex SHA-256 of the empty body: the payload hash when the caller gives none.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How far the request's time may be from the verifier's clock, either way.
const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;
/// The longest a presigned URL may live: a signing key is valid for seven days.
const MAX_PRESIGNED_EXPIRES_SECS: u32 = 7 * 24 * 60 * 60;
const NANOS: i128 = 1_000_000_000;
/// Echoed request values are cut to this many characters so messages stay small.
const MAX_ECHO_CHARS: usize = 128;

/// A request as the caller signed it.
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The HTTP method as sent, e.g. `"GET"`.
    pub method: &'a str,
    /// The raw path as sent (still percent-encoded), e.g. `"/"` or `"/a%20b/c"`.
    pub path: &'a str,
    /// The raw query string without `?`; may be empty.
    pub query: &'a str,
    /// The headers as sent: names in any case, a name may repeat.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, when the caller has computed it. Otherwise the
    /// `x-amz-content-sha256` header is used (unchecked against the body: whoever reads the
    /// body must check it), and without that header the hash of the empty body.
    pub payload_sha256: Option<&'a str>,
}

impl fmt::Debug for SignedRequest<'_> {
    /// Header values and the query can hold the signature and the session token, so only
    /// their shape is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query_len", &self.query.len())
            .field("header_names", &names)
            .field("payload_sha256", &self.payload_sha256)
            .finish()
    }
}

/// Why a signed request was refused, with AWS's error code ([`SigV4Error::code`]).
/// Messages never contain the secret, the session token or any signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// `MissingAuthenticationToken` (403): no `Authorization` header and no presigned-URL
    /// parameters, or an `Authorization` header of another scheme.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// `IncompleteSignature` (400): the signature's parts are missing or malformed.
    #[error("{0}")]
    IncompleteSignature(String),
    /// `SignatureDoesNotMatch` (403): the credential scope, the signed header list or the
    /// request's headers contradict the signature before any HMAC is computed.
    #[error("{0}")]
    InconsistentSignature(String),
    /// `SignatureDoesNotMatch` (403): the request's time is outside the accepted window.
    #[error("{0}")]
    SignatureExpired(String),
    /// `SignatureDoesNotMatch` (403): the HMAC differs from the one provided.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service \
         documentation for details."
    )]
    SignatureDoesNotMatch,
}

// === impl SigV4Error ===

impl SigV4Error {
    /// AWS's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::MissingAuthenticationToken => AwsCode::MissingAuthenticationToken,
            Self::IncompleteSignature(_) => AwsCode::IncompleteSignature,
            Self::InconsistentSignature(_)
            | Self::SignatureExpired(_)
            | Self::SignatureDoesNotMatch => AwsCode::SignatureDoesNotMatch,
        }
    }

    fn incomplete(message: impl Into<String>) -> Self {
        Self::IncompleteSignature(message.into())
    }
}

/// The value of header `name` (lowercase), `None` when absent; a repeated header is refused
/// because the parts of a signature must be unambiguous.
fn single_header<'a>(
    headers: &'a [(String, String)],
    name: &str,
    shown: &str,
) -> Result<Option<&'a str>, SigV4Error> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(SigV4Error::incomplete(format!(
            "Found multiple '{shown}' headers."
        )));
    }
    Ok(first)
}

/// At most [`MAX_ECHO_CHARS`] characters of a request value quoted in a message.
fn clip(text: &str) -> &str {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        Some((end, _)) => text.get(..end).unwrap_or_default(),
        None => text,
    }
}

#[cfg(test)]
mod tests;
