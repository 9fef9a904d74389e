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
    InvalidScope(String),
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
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationToken",
            Self::IncompleteSignature(_) => "IncompleteSignature",
            Self::InvalidScope(_) | Self::SignatureExpired(_) | Self::SignatureDoesNotMatch => {
                "SignatureDoesNotMatch"
            }
        }
    }

    /// The HTTP status AWS answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::IncompleteSignature(_) => 400,
            Self::MissingAuthenticationToken
            | Self::InvalidScope(_)
            | Self::SignatureExpired(_)
            | Self::SignatureDoesNotMatch => 403,
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

    /// The string to sign: algorithm, time, scope and hash of the canonical request.
    pub(crate) fn string_to_sign(&self) -> &str {
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
        let (window, label) = match self.expires_secs {
            Some(secs) => (i128::from(secs) * NANOS, format!("{secs} sec.")),
            None => (skew, "5 min.".to_owned()),
        };
        if now.0.saturating_sub(signed) > window {
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
        return Err(SigV4Error::InvalidScope(
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
        Err(SigV4Error::InvalidScope(problems.join(" ")))
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
        let [hi, lo] = *pair else { return None };
        *byte = lower_hex_value(hi)? << 4 | lower_hex_value(lo)?;
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
            return Err(SigV4Error::InvalidScope(format!(
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

fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            out.push(char::from(upper_hex_digit(nibble)).to_ascii_lowercase());
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
