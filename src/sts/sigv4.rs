//! AWS Signature Version 4 verification, for callers who sign their requests with a secret
//! access key that never leaves them.
//!
//! [`Signature::parse`] reads the signature from the `Authorization` header or from
//! presigned-URL query parameters, checks its shape as AWS does, and builds the string to sign
//! from the request; [`Signature::verify`] then checks the time window and the HMAC. The key
//! lookup (`InvalidClientTokenId`) happens in between, elsewhere: the caller reads
//! [`Signature::access_key_id`], finds the secret, and verifies.
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

use crate::error::AwsCode;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use ring::{digest, hmac};

use crate::policy::Timestamp;

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

/// The derived key `kSigning` for one (secret, date, region, service), so callers can cache
/// the four-HMAC derivation. Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct SigningKey {
    key: hmac::Key,
    /// The raw key bytes, kept only so tests can compare them with AWS's published value.
    #[cfg(test)]
    bytes: [u8; 32],
}

// === impl SigningKey ===

impl SigningKey {
    /// Derives `kSigning` = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
    /// "aws4_request"), `date` being the scope's `yyyymmdd`.
    pub fn derive(secret: &[u8], date: &str, region: &str, service: &str) -> Self {
        let k_date = with_aws4_prefix(secret, |k_secret| {
            hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, k_secret),
                date.as_bytes(),
            )
        });
        let k_region = hmac_tag(k_date.as_ref(), region.as_bytes());
        let k_service = hmac_tag(k_region.as_ref(), service.as_bytes());
        let k_signing = hmac_tag(k_service.as_ref(), TERMINATOR.as_bytes());
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref()),
            #[cfg(test)]
            bytes: k_signing.as_ref().try_into().unwrap_or([0; 32]),
        }
    }

    /// The signature of `string_to_sign`, as 64 lowercase hex digits: what a client puts in
    /// its `Authorization` header (for clients, tests and benchmarks; verification compares
    /// in constant time instead).
    pub fn sign_hex(&self, string_to_sign: &str) -> String {
        hmac::sign(&self.key, string_to_sign.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

fn hmac_tag(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// Runs `f` on `"AWS4" + secret`, built on the stack for usual secrets (AWS's are 40
/// characters), and wipes the copy afterwards.
fn with_aws4_prefix<T>(secret: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    const PREFIX: &[u8; 4] = b"AWS4";
    let mut stack = [0u8; 128];
    let len = secret.len().saturating_add(PREFIX.len());
    let result = match stack
        .get_mut(..len)
        .and_then(|s| s.split_first_chunk_mut::<4>())
    {
        Some((head, tail)) => {
            *head = *PREFIX;
            tail.copy_from_slice(secret);
            f(stack.get(..len).unwrap_or_default())
        }
        None => {
            let mut heap = Vec::with_capacity(len);
            heap.extend_from_slice(PREFIX);
            heap.extend_from_slice(secret);
            let result = f(&heap);
            heap.fill(0);
            result
        }
    };
    stack.fill(0);
    result
}

/// A parsed signature with the string to sign built from its request, not yet verified.
/// Its `Debug` shows neither the signature nor the session token.
#[derive(Clone)]
pub struct Signature {
    /// `AKID/yyyymmdd/region/service/aws4_request`, decoded.
    credential: String,
    /// Where the access key id, date, region and service end in `credential`.
    ends: [usize; 4],
    security_token: Option<String>,
    request_time: Timestamp,
    /// `X-Amz-Expires` of a presigned URL; `None` for the `Authorization` header.
    expires_secs: Option<u32>,
    presigned: bool,
    /// `None` when the provided signature is not 64 lowercase hex digits: it then cannot
    /// match, and fails as a mismatch would.
    signature: Option<[u8; 32]>,
    string_to_sign: String,
    #[cfg(test)]
    canonical_request: String,
}

/// The signature's parts as read from the header or the query, before validation.
struct RawParts<'a> {
    algorithm: Cow<'a, str>,
    credential: Cow<'a, str>,
    signed_headers: Cow<'a, str>,
    signature: Cow<'a, str>,
    /// The ISO 8601 basic-format time for the string to sign, and the instant it names.
    amz_date: String,
    request_time: Timestamp,
    expires_secs: Option<u32>,
    security_token: Option<Cow<'a, str>>,
}

// === impl Signature ===

impl Signature {
    /// Parses the `Authorization` header (`AWS4-HMAC-SHA256 Credential=AKID/yyyymmdd/region/
    /// service/aws4_request, SignedHeaders=a;b, Signature=hex64`) or, when it is absent, the
    /// presigned-URL query parameters (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
    /// `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`, `X-Amz-Security-Token`),
    /// and builds the string to sign.
    ///
    /// Checks, in AWS's order: the parts are present, the date is ISO 8601 basic format (or
    /// an HTTP `Date` header), `SignedHeaders` is a sorted lowercase list containing `host`,
    /// the algorithm is `AWS4-HMAC-SHA256`, the credential has five elements ending with
    /// `aws4_request` and its date is the request's, and every signed header is present. The
    /// region and service are the caller's to check against its own.
    pub fn parse(request: &SignedRequest<'_>) -> Result<Self, SigV4Error> {
        let authorization = single_header(request.headers, "authorization", "Authorization")?;
        let presigned =
            query_params(request.query).any(|(name, _)| decoded_eq(name, "X-Amz-Algorithm"));
        let parts = match (authorization, presigned) {
            (Some(_), true) => {
                return Err(SigV4Error::incomplete(
                    "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' \
                     as HTTP header.",
                ))
            }
            (Some(value), false) => header_parts(request, value)?,
            (None, true) => query_parts(request)?,
            (None, false) => return Err(SigV4Error::MissingAuthenticationToken),
        };
        Self::from_parts(request, parts, presigned)
    }

    fn from_parts(
        request: &SignedRequest<'_>,
        parts: RawParts<'_>,
        presigned: bool,
    ) -> Result<Self, SigV4Error> {
        check_signed_headers(&parts.signed_headers)?;
        if parts.algorithm != ALGORITHM {
            let shown = clip(&parts.algorithm);
            return Err(SigV4Error::incomplete(format!(
                "Unsupported AWS 'algorithm': '{shown}' (only AWS4-HMAC-SHA256 for now)."
            )));
        }
        let credential = parts.credential.trim_end_matches('/');
        let ends = credential_ends(credential)?;
        check_scope(credential, ends, &parts.amz_date)?;

        let scope = credential.get(ends[0] + 1..).unwrap_or_default();
        let service = credential.get(ends[2] + 1..ends[3]).unwrap_or_default();
        let mut text = String::with_capacity(canonical_capacity(request, &parts.signed_headers));
        push_canonical_request(
            &mut text,
            request,
            &parts.signed_headers,
            presigned,
            service,
        )?;
        let canonical_digest = digest::digest(&digest::SHA256, text.as_bytes());
        #[cfg(test)]
        let canonical_request = text.clone();

        // The canonical request is only needed for its hash: its buffer is reused.
        text.clear();
        for piece in [ALGORITHM, "\n", &parts.amz_date, "\n", scope, "\n"] {
            text.push_str(piece);
        }
        push_hex(&mut text, canonical_digest.as_ref());

        Ok(Self {
            credential: credential.to_owned(),
            ends,
            security_token: parts.security_token.map(Cow::into_owned),
            request_time: parts.request_time,
            expires_secs: parts.expires_secs,
            presigned,
            signature: decode_signature(&parts.signature),
            string_to_sign: text,
            #[cfg(test)]
            canonical_request,
        })
    }

    /// The access key id the request claims; the caller looks its secret up.
    pub fn access_key_id(&self) -> &str {
        self.credential.get(..self.ends[0]).unwrap_or_default()
    }

    /// The session token: the `x-amz-security-token` header or, for presigned URLs, the
    /// `X-Amz-Security-Token` parameter. It need not be a signed header (AWS's test suite
    /// adds it after signing), so the caller must validate it on its own.
    pub fn security_token(&self) -> Option<&str> {
        self.security_token.as_deref()
    }

    /// The region of the credential scope.
    pub fn region(&self) -> &str {
        self.credential
            .get(self.ends[1] + 1..self.ends[2])
            .unwrap_or_default()
    }

    /// The service of the credential scope.
    pub fn service(&self) -> &str {
        self.credential
            .get(self.ends[2] + 1..self.ends[3])
            .unwrap_or_default()
    }

    /// The date of the credential scope, `yyyymmdd` (the request's UTC date).
    pub fn scope_date(&self) -> &str {
        self.credential
            .get(self.ends[0] + 1..self.ends[1])
            .unwrap_or_default()
    }

    /// When the request was signed: `X-Amz-Date`, or the `Date` header without it.
    pub fn request_time(&self) -> Timestamp {
        self.request_time
    }

    /// Whether the signature came from presigned-URL query parameters.
    pub fn is_presigned(&self) -> bool {
        self.presigned
    }

    /// Checks the time window and the HMAC keyed with `secret` (the secret access key), in
    /// constant time. The window is ±5 minutes around `now`; a presigned URL is valid from 5
    /// minutes before its `X-Amz-Date` until `X-Amz-Expires` seconds after it.
    pub fn verify(&self, secret: &[u8], now: Timestamp) -> Result<(), SigV4Error> {
        self.check_time(now)?;
        let key = SigningKey::derive(secret, self.scope_date(), self.region(), self.service());
        self.check_hmac(&key)
    }

    /// [`Signature::verify`] with a precomputed `kSigning` for this signature's access key,
    /// date, region and service; a key for another scope fails as a wrong secret does.
    pub fn verify_with_key(
        &self,
        signing_key: &SigningKey,
        now: Timestamp,
    ) -> Result<(), SigV4Error> {
        self.check_time(now)?;
        self.check_hmac(signing_key)
    }

    /// The string to sign: algorithm, time, scope and hash of the canonical request (no
    /// secret in it; AWS shows it when a signature does not match).
    pub fn string_to_sign(&self) -> &str {
        &self.string_to_sign
    }

    #[cfg(test)]
    pub(crate) fn canonical_request(&self) -> &str {
        &self.canonical_request
    }

    fn check_time(&self, now: Timestamp) -> Result<(), SigV4Error> {
        let signed = self.request_time.0;
        let skew = i128::from(MAX_CLOCK_SKEW_SECS) * NANOS;
        if signed.saturating_sub(now.0) > skew {
            return Err(SigV4Error::SignatureExpired(format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                basic_format(signed),
                basic_format(now.0.saturating_add(skew)),
                basic_format(now.0),
            )));
        }
        let window = self
            .expires_secs
            .map_or(skew, |secs| i128::from(secs) * NANOS);
        if now.0.saturating_sub(signed) > window {
            let label = match self.expires_secs {
                Some(secs) => format!("{secs} sec."),
                None => "5 min.".to_owned(),
            };
            return Err(SigV4Error::SignatureExpired(format!(
                "Signature expired: {} is now earlier than {} ({} - {label})",
                basic_format(signed),
                basic_format(now.0.saturating_sub(window)),
                basic_format(now.0),
            )));
        }
        Ok(())
    }

    fn check_hmac(&self, key: &SigningKey) -> Result<(), SigV4Error> {
        let provided = self
            .signature
            .as_ref()
            .ok_or(SigV4Error::SignatureDoesNotMatch)?;
        hmac::verify(&key.key, self.string_to_sign.as_bytes(), provided)
            .map_err(|_| SigV4Error::SignatureDoesNotMatch)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("access_key_id", &self.access_key_id())
            .field("scope_date", &self.scope_date())
            .field("region", &self.region())
            .field("service", &self.service())
            .field("request_time", &self.request_time)
            .field("presigned", &self.presigned)
            .field("expires_secs", &self.expires_secs)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

// --- Reading the signature ---

/// The parts of an `Authorization: AWS4-...` header.
fn header_parts<'a>(
    request: &SignedRequest<'a>,
    value: &'a str,
) -> Result<RawParts<'a>, SigV4Error> {
    let value = value.trim_matches(is_space);
    if !value.starts_with("AWS4-") {
        return Err(SigV4Error::MissingAuthenticationToken);
    }
    let (algorithm, rest) = value.split_once(is_space).unwrap_or((value, ""));
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for item in rest.split([',', ' ', '\t']).filter(|item| !item.is_empty()) {
        let Some((key, val)) = item.split_once('=') else {
            // AWS quotes the element and the whole header here; both may hold the signature.
            return Err(SigV4Error::incomplete(
                "An element is not a valid key=value pair (missing equal-sign) in \
                 Authorization header.",
            ));
        };
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(val).is_some() {
            return Err(SigV4Error::incomplete(format!(
                "Authorization header has more than one '{key}' parameter."
            )));
        }
    }

    let amz_date = single_header(request.headers, "x-amz-date", "X-Amz-Date")?;
    let date = match amz_date {
        Some(_) => None,
        None => single_header(request.headers, "date", "Date")?,
    };
    let mut missing = String::new();
    for (name, part) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed_headers),
    ] {
        if part.is_none_or(str::is_empty) {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if amz_date.is_none() && date.is_none() {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        );
    }
    if !missing.is_empty() {
        return Err(SigV4Error::incomplete(missing.trim_end()));
    }

    let (amz_date, request_time) = match (amz_date, date) {
        (Some(text), _) => parse_basic(text).map(|t| (text.to_owned(), t)),
        (None, Some(text)) => parse_basic(text)
            .or_else(|| parse_http_date(text))
            .map(|t| (basic_format(t.0), t)),
        (None, None) => None,
    }
    .ok_or_else(|| bad_date(amz_date.or(date).unwrap_or_default()))?;

    Ok(RawParts {
        algorithm: Cow::Borrowed(algorithm),
        credential: Cow::Borrowed(credential.unwrap_or_default()),
        signed_headers: Cow::Borrowed(signed_headers.unwrap_or_default()),
        signature: Cow::Borrowed(signature.unwrap_or_default()),
        amz_date,
        request_time,
        expires_secs: None,
        security_token: single_header(
            request.headers,
            "x-amz-security-token",
            "X-Amz-Security-Token",
        )?
        .map(Cow::Borrowed),
    })
}

/// The parts of a presigned URL's query parameters.
fn query_parts<'a>(request: &SignedRequest<'a>) -> Result<RawParts<'a>, SigV4Error> {
    const NAMES: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-Security-Token",
    ];
    let mut found: [Option<Cow<'a, str>>; 7] = Default::default();
    for (name, value) in query_params(request.query) {
        let Some((slot, known)) = found
            .iter_mut()
            .zip(NAMES)
            .find(|(_, known)| decoded_eq(name, known))
        else {
            continue;
        };
        if slot.replace(percent_decode(value)).is_some() {
            return Err(SigV4Error::incomplete(format!(
                "AWS query-string parameters must include '{known}' only once."
            )));
        }
    }
    let [algorithm, credential, signature, signed_headers, date, expires, token] = found;

    let mut missing = String::new();
    for (name, part) in
        NAMES
            .iter()
            .zip([&algorithm, &credential, &signature, &signed_headers, &date])
    {
        if part.as_deref().is_none_or(str::is_empty) {
            missing.push_str(&format!(
                "AWS query-string parameters must include '{name}'. "
            ));
        }
    }
    if !missing.is_empty() {
        missing.push_str("Re-examine the query-string parameters.");
        return Err(SigV4Error::IncompleteSignature(missing));
    }

    let date = date.unwrap_or_default();
    let request_time = parse_basic(&date).ok_or_else(|| bad_date(&date))?;
    let expires_secs = match expires {
        None => None,
        Some(text) => Some(parse_expires(&text)?),
    };
    let token = match token {
        Some(token) => Some(token),
        None => single_header(
            request.headers,
            "x-amz-security-token",
            "X-Amz-Security-Token",
        )?
        .map(Cow::Borrowed),
    };
    Ok(RawParts {
        algorithm: algorithm.unwrap_or_default(),
        credential: credential.unwrap_or_default(),
        signed_headers: signed_headers.unwrap_or_default(),
        signature: signature.unwrap_or_default(),
        amz_date: date.into_owned(),
        request_time,
        expires_secs,
        security_token: token,
    })
}

/// `X-Amz-Expires`, with S3's messages (the one service that documents the parameter).
fn parse_expires(text: &str) -> Result<u32, SigV4Error> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::incomplete("X-Amz-Expires should be a number"));
    }
    match text.parse::<u32>() {
        Ok(secs) if secs <= MAX_PRESIGNED_EXPIRES_SECS => Ok(secs),
        _ => Err(SigV4Error::incomplete(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )),
    }
}

fn bad_date(text: &str) -> SigV4Error {
    SigV4Error::IncompleteSignature(format!(
        "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
        clip(text)
    ))
}

/// `SignedHeaders` must be what a conforming signer writes: lowercase names, sorted, each
/// once, and it must cover `host`.
fn check_signed_headers(list: &str) -> Result<(), SigV4Error> {
    let mut previous: Option<&str> = None;
    for name in list.split(';') {
        let well_formed = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase() && b != b':');
        if !well_formed || previous.is_some_and(|p| p >= name) {
            return Err(SigV4Error::incomplete(
                "SignedHeaders must be lowercase header names separated by ';', sorted and each \
                 listed once.",
            ));
        }
        previous = Some(name);
    }
    if !list.split(';').any(|name| name == "host") {
        return Err(SigV4Error::InconsistentSignature(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    Ok(())
}

/// Where the access key id, date, region and service end in a five-element credential.
fn credential_ends(credential: &str) -> Result<[usize; 4], SigV4Error> {
    let mut ends = [0usize; 4];
    let mut slashes = credential.match_indices('/').map(|(i, _)| i);
    for end in &mut ends {
        match slashes.next() {
            Some(i) => *end = i,
            None => return Err(bad_credential(credential)),
        }
    }
    if slashes.next().is_some() {
        return Err(bad_credential(credential));
    }
    Ok(ends)
}

fn bad_credential(credential: &str) -> SigV4Error {
    SigV4Error::IncompleteSignature(format!(
        "Credential must have exactly 5 slash-delimited elements, e.g. \
         keyid/date/region/service/term, got '{}'",
        clip(credential)
    ))
}

/// The terminator and the scope date, which AWS reports together.
fn check_scope(credential: &str, ends: [usize; 4], amz_date: &str) -> Result<(), SigV4Error> {
    let mut problems = Vec::new();
    let terminator = credential.get(ends[3] + 1..).unwrap_or_default();
    if terminator != TERMINATOR {
        problems.push(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            clip(terminator)
        ));
    }
    let scope_date = credential.get(ends[0] + 1..ends[1]).unwrap_or_default();
    let request_date = amz_date.get(..8).unwrap_or_default();
    if scope_date != request_date {
        problems.push(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{request_date}', from '{amz_date}'.",
            clip(scope_date)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SigV4Error::InconsistentSignature(problems.join(" ")))
    }
}

/// 64 lowercase hex digits, as SigV4 writes signatures; anything else cannot match.
fn decode_signature(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *byte = lower_hex_value(*hi)? << 4 | lower_hex_value(*lo)?;
    }
    Some(out)
}

fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
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

// --- Building the canonical request ---

fn canonical_capacity(request: &SignedRequest<'_>, signed_headers: &str) -> usize {
    let headers: usize = request
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    // Encoding can triple the path and query; 64 for the payload hash, some for newlines.
    request.method.len()
        + 3 * (request.path.len() + request.query.len())
        + headers
        + signed_headers.len()
        + 80
}

/// Writes method, canonical URI, canonical query, canonical headers, signed headers and
/// payload hash, one line each, into `out`.
fn push_canonical_request(
    out: &mut String,
    request: &SignedRequest<'_>,
    signed_headers: &str,
    presigned: bool,
    service: &str,
) -> Result<(), SigV4Error> {
    out.push_str(request.method);
    out.push('\n');
    if service == "s3" {
        push_s3_uri(out, request.path);
    } else {
        push_canonical_uri(out, request.path);
    }
    out.push('\n');
    push_canonical_query(out, request.query, presigned);
    out.push('\n');
    for name in signed_headers.split(';') {
        out.push_str(name);
        out.push(':');
        let mut values = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let Some(first) = values.next() else {
            return Err(SigV4Error::InconsistentSignature(format!(
                "Signed header '{}' is not present in the request.",
                clip(name)
            )));
        };
        push_header_value(out, first);
        for value in values {
            out.push(',');
            push_header_value(out, value);
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    let payload = match request.payload_sha256 {
        Some(hash) => hash,
        None => single_header(
            request.headers,
            "x-amz-content-sha256",
            "X-Amz-Content-Sha256",
        )?
        .unwrap_or(EMPTY_SHA256),
    };
    out.push_str(payload);
    Ok(())
}

/// The path with dot segments removed and empty segments collapsed (as AWS's SDKs do: a
/// trailing slash survives, a trailing `..` leaves none), each segment encoded as sent.
fn push_canonical_uri(out: &mut String, path: &str) {
    let start = out.len();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                // Encoded segments hold no '/', so the last one starts at the last '/'.
                let last = out.get(start..).and_then(|uri| uri.rfind('/')).unwrap_or(0);
                out.truncate(start + last);
            }
            _ => {
                out.push('/');
                push_encoded(out, segment.bytes());
            }
        }
    }
    if out.len() == start || path.ends_with('/') {
        out.push('/');
    }
}

/// S3 signs the path as it is, each segment encoded once.
fn push_s3_uri(out: &mut String, path: &str) {
    if !path.starts_with('/') {
        out.push('/');
    }
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        push_encoded(out, PercentDecoded(segment.as_bytes()));
    }
}

/// The parameters decoded, re-encoded and sorted by name then value; presigned URLs leave
/// their own signature out. Sorting compares the encoded forms without building them.
fn push_canonical_query(out: &mut String, query: &str, presigned: bool) {
    let mut params: Vec<(&str, &str)> = query_params(query)
        .filter(|(name, _)| !(presigned && decoded_eq(name, "X-Amz-Signature")))
        .collect();
    params.sort_unstable_by(|a, b| {
        let by_name = encoded(a.0).cmp(encoded(b.0));
        by_name.then_with(|| encoded(a.1).cmp(encoded(b.1)))
    });
    for (i, (name, value)) in params.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_encoded(out, PercentDecoded(name.as_bytes()));
        out.push('=');
        push_encoded(out, PercentDecoded(value.as_bytes()));
    }
}

/// The query's non-empty `name=value` parameters, raw; a parameter without `=` has an empty
/// value.
fn query_params(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|param| !param.is_empty())
        .map(|param| param.split_once('=').unwrap_or((param, "")))
}

/// The value trimmed, inner runs of spaces and tabs collapsed to one space.
fn push_header_value(out: &mut String, value: &str) {
    for (i, word) in value.split(is_space).filter(|w| !w.is_empty()).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

// --- Percent-encoding ---

/// Bytes of a raw query component or path segment with valid `%XX` escapes decoded; a `%`
/// not followed by two hex digits stays a literal `%`.
#[derive(Clone)]
struct PercentDecoded<'a>(&'a [u8]);

impl Iterator for PercentDecoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        if first == b'%' {
            if let [hi, lo, tail @ ..] = rest {
                if let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) {
                    self.0 = tail;
                    return Some(hi << 4 | lo);
                }
            }
        }
        self.0 = rest;
        Some(first)
    }
}

/// The RFC 3986 encoding of `bytes`: unreserved characters as they are, every other byte as
/// `%XX` with uppercase hex.
struct Encoded<I> {
    bytes: I,
    pending: [u8; 2],
    pending_len: usize,
}

impl<I: Iterator<Item = u8>> Iterator for Encoded<I> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.pending_len > 0 {
            self.pending_len -= 1;
            return self.pending.get(1 - self.pending_len).copied();
        }
        let byte = self.bytes.next()?;
        if is_unreserved(byte) {
            return Some(byte);
        }
        self.pending = [upper_hex_digit(byte >> 4), upper_hex_digit(byte & 0x0f)];
        self.pending_len = 2;
        Some(b'%')
    }
}

fn encoded(raw: &str) -> Encoded<PercentDecoded<'_>> {
    Encoded {
        bytes: PercentDecoded(raw.as_bytes()),
        pending: [0; 2],
        pending_len: 0,
    }
}

fn push_encoded(out: &mut String, bytes: impl Iterator<Item = u8>) {
    let encoded = Encoded {
        bytes,
        pending: [0; 2],
        pending_len: 0,
    };
    // Every encoded byte is ASCII.
    out.extend(encoded.map(char::from));
}

/// Whether the raw query component decodes to exactly `expected`.
fn decoded_eq(raw: &str, expected: &str) -> bool {
    PercentDecoded(raw.as_bytes()).cmp(expected.bytes()) == Ordering::Equal
}

/// A raw query value decoded; bytes that are not UTF-8 become U+FFFD and cannot match.
fn percent_decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let bytes: Vec<u8> = PercentDecoded(raw.as_bytes()).collect();
    Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn upper_hex_digit(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + nibble - 10
    }
}

/// Lowercase hex, as the string to sign writes the canonical request's hash.
fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            out.push(char::from(upper_hex_digit(nibble).to_ascii_lowercase()));
        }
    }
}

// --- Time ---

/// `yyyymmddThhmmssZ`, the only form SigV4 signs.
fn parse_basic(text: &str) -> Option<Timestamp> {
    let bytes: [u8; 16] = text.as_bytes().try_into().ok()?;
    let [y0, y1, y2, y3, mo0, mo1, d0, d1, b'T', h0, h1, mi0, mi1, s0, s1, b'Z'] = bytes else {
        return None;
    };
    civil_timestamp(
        digits(&[y0, y1, y2, y3])?,
        digits(&[mo0, mo1])?,
        digits(&[d0, d1])?,
        [digits(&[h0, h1])?, digits(&[mi0, mi1])?, digits(&[s0, s1])?],
    )
}

/// An HTTP `Date` header in IMF-fixdate form, `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(text: &str) -> Option<Timestamp> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut fields = text.split(' ');
    let (_weekday, day, month, year, time, zone) = (
        fields.next()?.strip_suffix(',')?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if zone != "GMT" || fields.next().is_some() || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)?;
    let mut clock = time.split(':');
    let mut next_two = || {
        clock
            .next()
            .filter(|f| f.len() == 2)
            .and_then(|f| digits(f.as_bytes()))
    };
    let hms = [next_two()?, next_two()?, next_two()?];
    if clock.next().is_some() {
        return None;
    }
    civil_timestamp(
        digits(year.as_bytes())?,
        i64::try_from(month).ok()? + 1,
        digits(day.as_bytes())?,
        hms,
    )
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// The UTC instant of a proleptic Gregorian date and time, `None` when a field is out of
/// range.
fn civil_timestamp(year: i64, month: i64, day: i64, [h, m, s]: [i64; 3]) -> Option<Timestamp> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || h > 23 || m > 59 || s > 59 {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(Timestamp::from_epoch_seconds(
        days * 86_400 + h * 3600 + m * 60 + s,
    ))
}

/// `yyyymmddThhmmssZ` for an instant in nanoseconds (rounded down to the second).
fn basic_format(nanos: i128) -> String {
    let secs = Timestamp(nanos).epoch_seconds();
    let rfc3339 = Timestamp::from_epoch_seconds(secs).to_string();
    rfc3339
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

/// At most [`MAX_ECHO_CHARS`] characters of a request value quoted in a message.
fn clip(text: &str) -> &str {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        Some((end, _)) => text.get(..end).unwrap_or_default(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The test suite's secret access key.
    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2015-08-30T12:36:00Z, when the suite's requests were signed.
    const SUITE_TIME: i64 = 1_440_938_160;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_epoch_seconds(secs)
    }

    /// One case of AWS's SigV4 test suite (see `testdata/sigv4/ATTRIBUTION.md`).
    struct Case {
        name: &'static str,
        req: &'static str,
        creq: &'static str,
        sts: &'static str,
        authz: &'static str,
    }

    macro_rules! case {
        ($dir:literal, $name:literal) => {
            Case {
                name: $name,
                req: include_str!(concat!("testdata/sigv4/", $dir, $name, "/", $name, ".req")),
                creq: include_str!(concat!("testdata/sigv4/", $dir, $name, "/", $name, ".creq")),
                sts: include_str!(concat!("testdata/sigv4/", $dir, $name, "/", $name, ".sts")),
                authz: include_str!(concat!(
                    "testdata/sigv4/",
                    $dir,
                    $name,
                    "/",
                    $name,
                    ".authz"
                )),
            }
        };
    }

    fn suite() -> Vec<Case> {
        vec![
            case!("", "get-vanilla"),
            case!("", "get-vanilla-query-order-key-case"),
            case!("", "get-vanilla-query-order-key"),
            case!("", "get-vanilla-query-unreserved"),
            case!("", "get-vanilla-utf8-query"),
            case!("", "get-header-value-trim"),
            case!("", "get-header-key-duplicate"),
            case!("", "get-header-value-order"),
            case!("", "get-utf8"),
            case!("", "get-unreserved"),
            case!("", "post-vanilla"),
            case!("", "post-vanilla-query"),
            case!("", "post-header-value-case"),
            case!("", "post-x-www-form-urlencoded"),
            case!("normalize-path/", "get-relative"),
            case!("normalize-path/", "get-relative-relative"),
            case!("normalize-path/", "get-slash"),
            case!("normalize-path/", "get-slash-dot-slash"),
            case!("normalize-path/", "get-slash-pointless-dot"),
            case!("normalize-path/", "get-slashes"),
            case!("normalize-path/", "get-space"),
            case!("post-sts-token/", "post-sts-header-before"),
        ]
    }

    fn find_case(name: &str) -> Case {
        suite().into_iter().find(|c| c.name == name).unwrap()
    }

    /// A request read from the suite's HTTP text: request line, `Name:value` header lines, a
    /// blank line, the body.
    #[derive(Clone, Debug)]
    struct RawRequest {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        payload: Option<String>,
    }

    impl RawRequest {
        fn parse(text: &str) -> Self {
            let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
            let mut lines = head.lines();
            let (method, rest) = lines.next().unwrap().split_once(' ').unwrap();
            let target = rest.strip_suffix(" HTTP/1.1").unwrap();
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let headers = lines
                .map(|line| {
                    let (name, value) = line.split_once(':').unwrap();
                    (name.to_owned(), value.to_owned())
                })
                .collect();
            let payload = (!body.is_empty()).then(|| {
                let digest = digest::digest(&digest::SHA256, body.as_bytes());
                digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
            });
            Self {
                method: method.to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                headers,
                payload,
            }
        }

        /// The suite's request with its `Authorization` header.
        fn of(case: &Case) -> Self {
            Self::parse(case.req).with_header("Authorization", case.authz)
        }

        fn with_header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.to_owned(), value.to_owned()));
            self
        }

        fn without_header(mut self, name: &str) -> Self {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            self
        }

        fn signed(&self) -> SignedRequest<'_> {
            SignedRequest {
                method: &self.method,
                path: &self.path,
                query: &self.query,
                headers: &self.headers,
                payload_sha256: self.payload.as_deref(),
            }
        }

        fn parse_signature(&self) -> Result<Signature, SigV4Error> {
            Signature::parse(&self.signed())
        }

        /// Parses and verifies at the suite's time.
        fn check(&self) -> Result<(), SigV4Error> {
            self.parse_signature()?.verify(SECRET, at(SUITE_TIME))
        }
    }

    fn signature_hex(authz: &str) -> &str {
        authz.rsplit_once("Signature=").unwrap().1
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `text` with the character at `index` replaced by each of `replacements` that differs
    /// from it.
    fn mutations(text: &str, replacements: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for (i, &original) in chars.iter().enumerate() {
            for r in replacements.chars().filter(|&r| r != original) {
                let mut mutated = chars.clone();
                mutated[i] = r;
                out.push(mutated.into_iter().collect());
            }
        }
        out
    }

    // --- AWS's test vectors ---

    #[test]
    fn suite_canonical_requests_strings_to_sign_and_signatures() {
        for case in suite() {
            let request = RawRequest::of(&case);
            let sig = request
                .parse_signature()
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(sig.canonical_request(), case.creq, "{}", case.name);
            assert_eq!(sig.string_to_sign(), case.sts, "{}", case.name);
            assert_eq!(sig.verify(SECRET, at(SUITE_TIME)), Ok(()), "{}", case.name);
            assert_eq!(sig.access_key_id(), "AKIDEXAMPLE");
            assert_eq!(sig.scope_date(), "20150830");
            assert_eq!(sig.region(), "us-east-1");
            assert_eq!(sig.service(), "service");
            assert_eq!(sig.request_time(), at(SUITE_TIME));
            assert!(!sig.is_presigned());
            let key = SigningKey::derive(SECRET, "20150830", "us-east-1", "service");
            assert_eq!(
                sig.verify_with_key(&key, at(SUITE_TIME)),
                Ok(()),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn session_token_signed_before_signing() {
        let case = find_case("post-sts-header-before");
        let token = RawRequest::parse(case.req)
            .headers
            .into_iter()
            .find(|(n, _)| n == "X-Amz-Security-Token")
            .unwrap()
            .1;
        let sig = RawRequest::of(&case).parse_signature().unwrap();
        assert_eq!(sig.security_token(), Some(token.as_str()));
        assert!(sig
            .canonical_request()
            .contains(&format!("x-amz-security-token:{token}\n")));
    }

    #[test]
    fn session_token_added_after_signing_is_unsigned_but_reported() {
        let sreq = include_str!(
            "testdata/sigv4/post-sts-token/post-sts-header-after/post-sts-header-after.sreq"
        );
        let creq = include_str!(
            "testdata/sigv4/post-sts-token/post-sts-header-after/post-sts-header-after.creq"
        );
        let sts = include_str!(
            "testdata/sigv4/post-sts-token/post-sts-header-after/post-sts-header-after.sts"
        );
        let request = RawRequest::parse(sreq);
        let sig = request.parse_signature().unwrap();
        assert_eq!(sig.canonical_request(), creq);
        assert_eq!(sig.string_to_sign(), sts);
        assert_eq!(sig.verify(SECRET, at(SUITE_TIME)), Ok(()));
        assert!(sig
            .security_token()
            .is_some_and(|t| t.starts_with("AQoDYXdzEPT//")));
        // The token is not covered by the signature: another one verifies too.
        let swapped = request
            .without_header("X-Amz-Security-Token")
            .with_header("X-Amz-Security-Token", "other");
        let sig = swapped.parse_signature().unwrap();
        assert_eq!(sig.security_token(), Some("other"));
        assert_eq!(sig.verify(SECRET, at(SUITE_TIME)), Ok(()));
    }

    #[test]
    fn presigned_suite_vector() {
        let signed = include_str!(
            "testdata/sigv4/presigned/post-sts-header-before/query-signed-request.txt"
        );
        let creq = include_str!(
            "testdata/sigv4/presigned/post-sts-header-before/query-canonical-request.txt"
        );
        let sts = include_str!(
            "testdata/sigv4/presigned/post-sts-header-before/query-string-to-sign.txt"
        );
        let request = RawRequest::parse(signed);
        let sig = request.parse_signature().unwrap();
        assert!(sig.is_presigned());
        assert_eq!(sig.canonical_request(), creq);
        assert_eq!(sig.string_to_sign(), sts);
        assert!(sig
            .security_token()
            .is_some_and(|t| t.starts_with("AQoDYXdzEPT//")));
        // X-Amz-Expires=3600: valid from 5 minutes early until an hour after signing.
        for ok in [SUITE_TIME - 300, SUITE_TIME, SUITE_TIME + 3600] {
            assert_eq!(sig.verify(SECRET, at(ok)), Ok(()), "{ok}");
        }
        let late = sig.verify(SECRET, at(SUITE_TIME + 3601)).unwrap_err();
        assert_eq!(late.code(), "SignatureDoesNotMatch");
        assert_eq!(
            late.to_string(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z \
             (20150830T133601Z - 3600 sec.)"
        );
        let early = sig.verify(SECRET, at(SUITE_TIME - 301)).unwrap_err();
        assert!(matches!(early, SigV4Error::SignatureExpired(_)), "{early}");
        // The signature parameter is the one thing the canonical query leaves out.
        let mutated = RawRequest {
            query: request
                .query
                .replace("X-Amz-Expires=3600", "X-Amz-Expires=3601"),
            ..request.clone()
        };
        assert_eq!(
            mutated.check().unwrap_err(),
            SigV4Error::SignatureDoesNotMatch
        );
    }

    /// AWS docs, "Examples of the complete Signature Version 4 signing process" (IAM
    /// ListUsers), and the signing-key example for the same scope.
    #[test]
    fn iam_list_users_docs_example() {
        let key = SigningKey::derive(SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex(&key.bytes),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let request =
            RawRequest {
                method: "GET".into(),
                path: "/".into(),
                query: "Action=ListUsers&Version=2010-05-08".into(),
                headers: vec![
                ("Content-Type".into(), "application/x-www-form-urlencoded; charset=utf-8".into()),
                ("Host".into(), "iam.amazonaws.com".into()),
                ("X-Amz-Date".into(), "20150830T123600Z".into()),
                (
                    "Authorization".into(),
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date, \
                     Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                        .into(),
                ),
            ],
                payload: None,
            };
        let sig = request.parse_signature().unwrap();
        assert_eq!(
            sig.canonical_request(),
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sig.string_to_sign(),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
             f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(sig.verify_with_key(&key, at(SUITE_TIME)), Ok(()));
        assert_eq!(sig.verify(SECRET, at(SUITE_TIME)), Ok(()));
        let other_scope = SigningKey::derive(SECRET, "20150830", "us-east-1", "service");
        assert_eq!(
            sig.verify_with_key(&other_scope, at(SUITE_TIME)),
            Err(SigV4Error::SignatureDoesNotMatch)
        );
    }

    /// The S3 secret of AWS's S3 documentation examples.
    const S3_SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    /// 2013-05-24T00:00:00Z.
    const S3_TIME: i64 = 1_369_353_600;

    /// AWS S3 docs, "Authenticating Requests: Using Query Parameters": the presigned GET.
    #[test]
    fn s3_presigned_docs_example() {
        let request = RawRequest {
            method: "GET".into(),
            path: "/test.txt".into(),
            query: "X-Amz-Algorithm=AWS4-HMAC-SHA256\
                    &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
                    &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
                    &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
                .into(),
            headers: vec![("Host".into(), "examplebucket.s3.amazonaws.com".into())],
            payload: Some("UNSIGNED-PAYLOAD".into()),
        };
        let sig = request.parse_signature().unwrap();
        assert_eq!(
            sig.canonical_request(),
            "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n\
             host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
        );
        assert!(sig
            .string_to_sign()
            .ends_with("3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"));
        assert_eq!(sig.access_key_id(), "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(sig.service(), "s3");
        assert_eq!(sig.security_token(), None);
        assert_eq!(sig.verify(S3_SECRET, at(S3_TIME + 86_400)), Ok(()));
        assert_eq!(
            sig.verify(S3_SECRET, at(S3_TIME + 86_401))
                .unwrap_err()
                .code(),
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            sig.verify(SECRET, at(S3_TIME)),
            Err(SigV4Error::SignatureDoesNotMatch)
        );
    }

    /// AWS S3 docs, "Examples: Signature Calculations" (GET Object with a Range header): the
    /// payload hash comes from `x-amz-content-sha256`, and the header's parts are separated
    /// by bare commas.
    #[test]
    fn s3_get_object_docs_example() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let request = RawRequest {
            method: "GET".into(),
            path: "/test.txt".into(),
            query: String::new(),
            headers: vec![
                ("Host".into(), "examplebucket.s3.amazonaws.com".into()),
                (
                    "Authorization".into(),
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                     SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
                     Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
                        .into(),
                ),
                ("Range".into(), "bytes=0-9".into()),
                ("x-amz-content-sha256".into(), empty.into()),
                ("x-amz-date".into(), "20130524T000000Z".into()),
            ],
            payload: None,
        };
        let sig = request.parse_signature().unwrap();
        assert_eq!(
            sig.canonical_request(),
            format!(
                "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
                 x-amz-content-sha256:{empty}\nx-amz-date:20130524T000000Z\n\n\
                 host;range;x-amz-content-sha256;x-amz-date\n{empty}"
            )
        );
        assert!(sig
            .string_to_sign()
            .ends_with("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"));
        assert_eq!(sig.verify(S3_SECRET, at(S3_TIME)), Ok(()));
    }

    #[test]
    fn signing_keys_for_long_secrets() {
        // Expected values from an independent HMAC-SHA256 implementation (Python's hmac),
        // either side of the stack buffer's size.
        for (len, expected) in [
            (
                124,
                "b652808d36fcd01f67d525e1a6a8b1af8f7f4995df2ba0fbae6bfd0fe0b2b255",
            ),
            (
                125,
                "99520767785d6beb302e6da2f573958d27254372a3ee4ca20a626bb03137db90",
            ),
            (
                300,
                "c14f5d3727ea1f3370445747d5571199e8af1d0b3fa5bf01f9c0b5ba3de4a786",
            ),
        ] {
            let key = SigningKey::derive(&vec![b's'; len], "20150830", "us-east-1", "service");
            assert_eq!(hex(&key.bytes), expected, "{len}");
        }
    }

    // --- What the signature covers ---

    fn assert_mismatch(request: &RawRequest, what: &str) {
        let result = request.check();
        assert_eq!(
            result.as_ref().map_err(SigV4Error::code),
            Err(AwsCode::SignatureDoesNotMatch),
            "{what}: {result:?}"
        );
    }

    #[test]
    fn every_signature_mutation_fails() {
        let case = find_case("get-vanilla");
        let original = signature_hex(case.authz);
        for mutated in mutations(original, "0af9AFgz-") {
            let authz = case.authz.replace(original, &mutated);
            let request = RawRequest::parse(case.req).with_header("Authorization", &authz);
            assert_mismatch(&request, &mutated);
        }
    }

    #[test]
    fn every_signed_header_value_mutation_fails() {
        let case = find_case("get-header-value-trim");
        let base = RawRequest::of(&case);
        assert_eq!(base.check(), Ok(()));
        for name in ["Host", "My-Header1", "My-Header2"] {
            let (index, value) = base
                .headers
                .iter()
                .enumerate()
                .find(|(_, (n, _))| n == name)
                .unwrap();
            for mutated in mutations(&value.1, "xZ0-\"") {
                let mut request = base.clone();
                request.headers[index].1 = mutated.clone();
                assert_mismatch(&request, &format!("{name}: {mutated}"));
            }
        }
    }

    #[test]
    fn every_path_mutation_fails() {
        // Paths without dot segments: "/./example" and "../example" normalize alike, as
        // they name the same resource.
        for name in ["get-space", "get-utf8", "get-unreserved"] {
            let base = RawRequest::of(&find_case(name));
            assert_eq!(base.check(), Ok(()), "{name}");
            for mutated in mutations(&base.path, "x/.%~A ") {
                let request = RawRequest {
                    path: mutated.clone(),
                    ..base.clone()
                };
                assert_mismatch(&request, &format!("{name}: {mutated:?}"));
            }
        }
    }

    #[test]
    fn every_query_mutation_fails() {
        for name in [
            "get-vanilla-query-order-key-case",
            "get-vanilla-query-order-key",
        ] {
            let base = RawRequest::of(&find_case(name));
            for mutated in mutations(&base.query, "xZ9=&%-+") {
                let request = RawRequest {
                    query: mutated.clone(),
                    ..base.clone()
                };
                assert_mismatch(&request, &format!("{name}: {mutated:?}"));
            }
        }
        // Adding a parameter, even an empty one, changes the signature too.
        let base = RawRequest::of(&find_case("get-vanilla"));
        assert_mismatch(
            &RawRequest {
                query: "a".into(),
                ..base
            },
            "added parameter",
        );
    }

    #[test]
    fn every_method_mutation_fails() {
        let base = RawRequest::of(&find_case("get-vanilla"));
        for mutated in mutations(&base.method, "XgP") {
            let request = RawRequest {
                method: mutated.clone(),
                ..base.clone()
            };
            assert_mismatch(&request, &mutated);
        }
    }

    #[test]
    fn every_payload_hash_mutation_fails() {
        let base = RawRequest::of(&find_case("post-x-www-form-urlencoded"));
        assert_eq!(base.check(), Ok(()));
        let hash = base.payload.clone().unwrap();
        for mutated in mutations(&hash, "0fx") {
            let request = RawRequest {
                payload: Some(mutated.clone()),
                ..base.clone()
            };
            assert_mismatch(&request, &mutated);
        }
        // Without the caller's hash, the empty body's is assumed.
        assert_mismatch(
            &RawRequest {
                payload: None,
                ..base
            },
            "no payload hash",
        );
    }

    #[test]
    fn payload_hash_header_is_used_when_the_caller_gives_none() {
        let case = find_case("post-x-www-form-urlencoded");
        let base = RawRequest::of(&case);
        let hash = base.payload.clone().unwrap();
        let from_header = RawRequest {
            payload: None,
            ..base.clone()
        }
        .with_header("X-Amz-Content-Sha256", &hash);
        assert_eq!(from_header.check(), Ok(()));
        // The caller's hash wins over the header.
        let lying_header = base.with_header("X-Amz-Content-Sha256", EMPTY_SHA256);
        assert_eq!(lying_header.check(), Ok(()));
    }

    #[test]
    fn unsigned_headers_do_not_matter() {
        let base = RawRequest::of(&find_case("get-header-value-trim"));
        let request = base
            .with_header("User-Agent", "curl/8.0")
            .with_header("X-Forwarded-For", "10.0.0.1")
            .with_header("X-Forwarded-For", "10.0.0.2")
            .with_header("my-header3", "unsigned");
        assert_eq!(request.check(), Ok(()));
        // Header names are matched without regard to case.
        let mut shouting = request;
        for (name, _) in &mut shouting.headers {
            *name = name.to_uppercase();
        }
        assert_eq!(shouting.check(), Ok(()));
    }

    // --- Time ---

    #[test]
    fn five_minutes_either_way() {
        let sig = RawRequest::of(&find_case("get-vanilla"))
            .parse_signature()
            .unwrap();
        for offset in [-300, -240, 0, 240, 300] {
            assert_eq!(
                sig.verify(SECRET, at(SUITE_TIME + offset)),
                Ok(()),
                "{offset}"
            );
        }
        let late = sig.verify(SECRET, at(SUITE_TIME + 360)).unwrap_err();
        assert_eq!(late.code(), "SignatureDoesNotMatch");
        assert_eq!(
            late.to_string(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z \
             (20150830T124200Z - 5 min.)"
        );
        let early = sig.verify(SECRET, at(SUITE_TIME - 360)).unwrap_err();
        assert_eq!(early.code(), "SignatureDoesNotMatch");
        assert_eq!(
            early.to_string(),
            "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z \
             (20150830T123000Z + 5 min.)"
        );
        // The window is checked before the key: an expired request fails the same way with
        // the right or the wrong secret.
        assert_eq!(
            sig.verify(b"wrong", at(SUITE_TIME + 360)).unwrap_err(),
            late
        );
        let key = SigningKey::derive(SECRET, "20150830", "us-east-1", "service");
        assert_eq!(
            sig.verify_with_key(&key, at(SUITE_TIME + 360)).unwrap_err(),
            late
        );
    }

    #[test]
    fn date_header_without_x_amz_date() {
        let request = RawRequest {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![
                ("Host".into(), "example.amazonaws.com".into()),
                ("Date".into(), "Sun, 30 Aug 2015 12:36:00 GMT".into()),
                (
                    "Authorization".into(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                         SignedHeaders=date;host, Signature={}",
                        "0".repeat(64)
                    ),
                ),
            ],
            payload: None,
        };
        let sig = request.parse_signature().unwrap();
        assert_eq!(sig.request_time(), at(SUITE_TIME));
        assert_eq!(
            sig.canonical_request(),
            "GET\n/\n\ndate:Sun, 30 Aug 2015 12:36:00 GMT\nhost:example.amazonaws.com\n\n\
             date;host\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(sig
            .string_to_sign()
            .starts_with("AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/"));
        // X-Amz-Date wins over Date.
        let both = request.with_header("X-Amz-Date", "20150830T123700Z");
        assert_eq!(
            both.parse_signature().unwrap().request_time(),
            at(SUITE_TIME + 60)
        );
    }

    // --- Malformed signatures ---

    /// get-vanilla with its `Authorization` header replaced by `authz`.
    fn vanilla_with(authz: &str) -> RawRequest {
        RawRequest::parse(find_case("get-vanilla").req).with_header("Authorization", authz)
    }

    const VANILLA_SIG: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    fn parse_error(request: &RawRequest) -> SigV4Error {
        let error = request.parse_signature().unwrap_err();
        assert!(!error.to_string().contains(VANILLA_SIG), "{error}");
        error
    }

    #[test]
    fn malformed_authorization_headers() {
        let cred = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
        let sh = "SignedHeaders=host;x-amz-date";
        let sig = format!("Signature={VANILLA_SIG}");
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("AWS4-HMAC-SHA256 {sh}, {sig}"),
                "IncompleteSignature",
                "Authorization header requires 'Credential' parameter.",
            ),
            (
                "AWS4-HMAC-SHA256 ".to_owned(),
                "IncompleteSignature",
                "Authorization header requires 'Credential' parameter. Authorization header \
                 requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
                 parameter.",
            ),
            (
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, {sh}, {sig}"),
                "IncompleteSignature",
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got 'AKIDEXAMPLE/20150830/us-east-1/service'",
            ),
            (
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request/x, {sh}, {sig}"),
                "IncompleteSignature",
                "Credential must have exactly 5 slash-delimited elements",
            ),
            (
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5_request, {sh}, {sig}"),
                "SignatureDoesNotMatch",
                "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'.",
            ),
            (
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/service/aws4_request, {sh}, {sig}"),
                "SignatureDoesNotMatch",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '20150831' != '20150830', from '20150830T123600Z'.",
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=Host;X-Amz-Date, {sig}"),
                "IncompleteSignature",
                "SignedHeaders must be lowercase",
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=x-amz-date;host, {sig}"),
                "IncompleteSignature",
                "SignedHeaders must be lowercase",
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;;x-amz-date, {sig}"),
                "IncompleteSignature",
                "SignedHeaders must be lowercase",
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=x-amz-date, {sig}"),
                "SignatureDoesNotMatch",
                "'Host' must be a 'SignedHeader' in the AWS Authorization.",
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;my-header1;x-amz-date, {sig}"),
                "SignatureDoesNotMatch",
                "Signed header 'my-header1' is not present in the request.",
            ),
            (
                format!("AWS4-HMAC-SHA512 {cred}, {sh}, {sig}"),
                "IncompleteSignature",
                "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now).",
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, {sh}, Signature {VANILLA_SIG}"),
                "IncompleteSignature",
                "not a valid key=value pair (missing equal-sign)",
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, {sh}, {sig}, {sig}"),
                "IncompleteSignature",
                "more than one 'Signature' parameter",
            ),
            (format!("Bearer {VANILLA_SIG}"), "MissingAuthenticationToken", "Request is missing Authentication Token"),
            ("AWS AKIDEXAMPLE:abc".to_owned(), "MissingAuthenticationToken", "Request is missing Authentication Token"),
        ];
        for (authz, code, message) in cases {
            let error = parse_error(&vanilla_with(&authz));
            assert_eq!(error.code(), code, "{authz}: {error}");
            assert!(error.to_string().contains(message), "{authz}: {error}");
        }
    }

    #[test]
    fn malformed_signature_values_fail_as_a_mismatch() {
        let case = find_case("get-vanilla");
        for bad in [
            VANILLA_SIG.to_uppercase(),
            VANILLA_SIG[..63].to_owned(),
            format!("{VANILLA_SIG}0"),
            VANILLA_SIG.replacen('5', "g", 1),
            "%".repeat(64),
        ] {
            let request = vanilla_with(&case.authz.replace(VANILLA_SIG, &bad));
            let sig = request.parse_signature().unwrap();
            assert_eq!(
                sig.verify(SECRET, at(SUITE_TIME)),
                Err(SigV4Error::SignatureDoesNotMatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn missing_or_conflicting_authentication() {
        let base = RawRequest::parse(find_case("get-vanilla").req);
        let error = parse_error(&base);
        assert_eq!(error, SigV4Error::MissingAuthenticationToken);
        assert_eq!(error.code().http_status(), 403);

        let both = RawRequest {
            query: "X-Amz-Algorithm=AWS4-HMAC-SHA256".into(),
            ..RawRequest::of(&find_case("get-vanilla"))
        };
        let error = parse_error(&both);
        assert_eq!(error.code(), "IncompleteSignature");
        assert!(
            error
                .to_string()
                .starts_with("Found both 'X-Amz-Algorithm'"),
            "{error}"
        );
        assert_eq!(error.code().http_status(), 400);

        let twice = RawRequest::of(&find_case("get-vanilla"))
            .with_header("authorization", "AWS4-HMAC-SHA256 x=y");
        assert_eq!(
            parse_error(&twice).to_string(),
            "Found multiple 'Authorization' headers."
        );
    }

    #[test]
    fn bad_or_missing_dates() {
        let case = find_case("get-vanilla");
        let no_date = RawRequest::of(&case).without_header("X-Amz-Date");
        let error = parse_error(&no_date);
        assert_eq!(
            error.to_string(),
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        );
        for bad in [
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20150230T123600Z",
            "20150830T243600Z",
            "x",
        ] {
            let request = RawRequest::of(&case)
                .without_header("X-Amz-Date")
                .with_header("X-Amz-Date", bad);
            let error = parse_error(&request);
            assert_eq!(error.code(), "IncompleteSignature", "{bad}");
            assert_eq!(
                error.to_string(),
                format!("Date must be in ISO-8601 'basic format'. Got '{bad}'. See http://en.wikipedia.org/wiki/ISO_8601")
            );
        }
    }

    #[test]
    fn malformed_presigned_urls() {
        let signed = include_str!(
            "testdata/sigv4/presigned/post-sts-header-before/query-signed-request.txt"
        );
        let base = RawRequest::parse(signed);
        let without = |param: &str| RawRequest {
            query: base
                .query
                .split('&')
                .filter(|p| !p.starts_with(param))
                .collect::<Vec<_>>()
                .join("&"),
            ..base.clone()
        };
        let error = parse_error(&without("X-Amz-Signature="));
        assert_eq!(
            error.to_string(),
            "AWS query-string parameters must include 'X-Amz-Signature'. Re-examine the query-string parameters."
        );
        let error = parse_error(&without("X-Amz-Credential="));
        assert!(error
            .to_string()
            .starts_with("AWS query-string parameters must include 'X-Amz-Credential'."));

        for (expires, message) in [
            (
                "604801",
                "X-Amz-Expires must be less than a week (in seconds) that is 604800",
            ),
            ("-1", "X-Amz-Expires should be a number"),
            ("1e3", "X-Amz-Expires should be a number"),
        ] {
            let request = RawRequest {
                query: base
                    .query
                    .replace("X-Amz-Expires=3600", &format!("X-Amz-Expires={expires}")),
                ..base.clone()
            };
            let error = parse_error(&request);
            assert_eq!(
                (error.code(), error.to_string().as_str()),
                (AwsCode::IncompleteSignature, message)
            );
        }
        // Seven days exactly is allowed (the signature then no longer matches, which is the
        // next check).
        let week = RawRequest {
            query: base
                .query
                .replace("X-Amz-Expires=3600", "X-Amz-Expires=604800"),
            ..base.clone()
        };
        assert_eq!(week.check(), Err(SigV4Error::SignatureDoesNotMatch));

        let algorithm = RawRequest {
            query: base
                .query
                .replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
            ..base.clone()
        };
        assert_eq!(parse_error(&algorithm).code(), "IncompleteSignature");

        let repeated = RawRequest {
            query: format!("{}&X-Amz-Date=20150830T123600Z", base.query),
            ..base.clone()
        };
        assert_eq!(parse_error(&repeated).code(), "IncompleteSignature");
    }

    // --- Canonical URI rules beyond the suite ---

    fn canonical_uri(path: &str, service: &str) -> String {
        let request = RawRequest {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            headers: vec![
                ("Host".into(), "example.amazonaws.com".into()),
                ("X-Amz-Date".into(), "20150830T123600Z".into()),
                (
                    "Authorization".into(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/{service}/aws4_request, \
                         SignedHeaders=host;x-amz-date, Signature={VANILLA_SIG}"
                    ),
                ),
            ],
            payload: None,
        };
        let sig = request.parse_signature().unwrap();
        sig.canonical_request().lines().nth(1).unwrap().to_owned()
    }

    #[test]
    fn canonical_uri_normalizes_and_encodes_again_except_for_s3() {
        // "Normalize URI paths according to RFC 3986 ... Each path segment must be URI-encoded
        // twice (except for Amazon S3 which only gets URI-encoded once)."
        for (path, expected) in [
            ("/a%20b//c/./d", "/a%2520b/c/d"),
            ("/a/b/..", "/a"),
            ("/a/b/../", "/a/"),
            ("/../..", "/"),
            ("", "/"),
            ("/%2E%2E/x", "/%252E%252E/x"),
            ("/a+b=c", "/a%2Bb%3Dc"),
        ] {
            assert_eq!(canonical_uri(path, "sts"), expected, "{path}");
        }
        for (path, expected) in [
            ("/a%20b//c/./d", "/a%20b//c/./d"),
            ("/photos/a+b%2fc", "/photos/a%2Bb%2Fc"),
            ("", "/"),
        ] {
            assert_eq!(canonical_uri(path, "s3"), expected, "{path}");
        }
    }

    #[test]
    fn canonical_query_decodes_then_encodes() {
        let mut out = String::new();
        push_canonical_query(&mut out, "b=%7e&a=x+y&&c&a=%2f&%41=1&d=%zz", false);
        // '~' unescaped, '+' literal, bare names get '=', escapes uppercased, invalid '%' kept
        // and encoded, sorted on the encoded forms ('%' sorts before letters).
        assert_eq!(out, "A=1&a=%2F&a=x%2By&b=~&c=&d=%25zz");
        let mut presigned = String::new();
        push_canonical_query(
            &mut presigned,
            "X-Amz-Signature=abc&X%2DAmz-Signature=def&z=1",
            true,
        );
        assert_eq!(presigned, "z=1");
    }

    // --- Secrets stay out of Debug and messages ---

    #[test]
    fn debug_output_is_redacted() {
        let case = find_case("post-sts-header-before");
        let request = RawRequest::of(&case);
        let token = "AQoDYXdzEPT//";
        let signature = signature_hex(case.authz);
        let sig = request.parse_signature().unwrap();
        let shown = format!("{sig:?} {:?}", request.signed());
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains(signature), "{shown}");
        assert!(!shown.contains(token), "{shown}");
        let key = SigningKey::derive(SECRET, "20150830", "us-east-1", "iam");
        let shown = format!("{key:?}");
        assert!(!shown.contains("c4afb1cc"), "{shown}");
        assert_eq!(shown, "SigningKey(<redacted>)");
    }

    // --- Robustness ---

    fn any_request() -> impl Strategy<Value = RawRequest> {
        let text = "[a-zA-Z0-9/.%&=;,: \t~+ሴ\u{0}-]{0,40}";
        let authorization = prop_oneof![
            any::<String>(),
            (text, text, text).prop_map(|(cred, sh, sig)| {
                format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={sh}, Signature={sig}")
            }),
            (text, prop::sample::select(vec!["host", "host;x-amz-date", "host;x-amz-date;x"]))
                .prop_map(|(sig, sh)| format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                     SignedHeaders={sh}, Signature={sig}"
                )),
        ];
        let query = prop_oneof![
            any::<String>(),
            text.prop_map(String::from),
            text.prop_map(|q| format!(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request\
                 &X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature={q}&X-Amz-Expires={q}"
            )),
        ];
        (
            "[A-Za-z]{0,8}|\\PC{0,8}",
            prop_oneof![any::<String>(), text.prop_map(String::from)],
            query,
            prop::option::of(authorization),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "Host",
                        "X-Amz-Date",
                        "Date",
                        "x",
                        "X-Amz-Security-Token",
                    ]),
                    text,
                ),
                0..5,
            ),
            prop::option::of(prop_oneof![any::<String>(), Just(EMPTY_SHA256.to_owned())]),
        )
            .prop_map(|(method, path, query, authorization, headers, payload)| {
                let mut headers: Vec<(String, String)> = headers
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect();
                headers.push(("X-Amz-Date".into(), "20150830T123600Z".into()));
                if let Some(a) = authorization {
                    headers.push(("Authorization".into(), a));
                }
                RawRequest {
                    method,
                    path,
                    query,
                    headers,
                    payload,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn parse_and_verify_never_panic(request in any_request(), now in any::<i64>(), secret in any::<Vec<u8>>()) {
            if let Ok(sig) = request.parse_signature() {
                let _ = sig.verify(&secret, at(now));
                let _ = sig.verify(&secret, at(SUITE_TIME));
                let _ = format!("{sig:?}");
            }
        }

        #[test]
        fn arbitrary_paths_and_queries_keep_the_canonical_shape(path in any::<String>(), query in any::<String>()) {
            let base = RawRequest::of(&find_case("get-vanilla"));
            let request = RawRequest { path, query, ..base };
            let sig = request.parse_signature().unwrap();
            // Everything variable is percent-encoded: the canonical request keeps its lines.
            prop_assert_eq!(sig.canonical_request().lines().count(), 8);
            prop_assert!(sig.canonical_request().lines().nth(1).is_some_and(|uri| uri.starts_with('/')));
        }
    }
}
