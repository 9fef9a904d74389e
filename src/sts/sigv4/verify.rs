//! Reading a signature from a request and verifying it: the parts, in AWS's order of checks,
//! then the time window and the HMAC.

use std::borrow::Cow;
use std::fmt;

use data_encoding::HEXLOWER;
use ring::{digest, hmac};

use crate::policy::Timestamp;

use super::canonical::{
    canonical_capacity, decoded_eq, is_space, percent_decode, push_canonical_request, query_params,
};
use super::signing::SigningKey;
use super::time::{basic_format, parse_basic, parse_http_date};
use super::{
    clip, single_header, SigV4Error, SignedRequest, ALGORITHM, MAX_CLOCK_SKEW_SECS,
    MAX_PRESIGNED_EXPIRES_SECS, NANOS, TERMINATOR,
};

/// A parsed signature with the string to sign built from its request, not yet verified.
/// Its `Debug` shows neither the signature nor the session token.
#[derive(Clone)]
pub struct Signature {
    /// `AKID/yyyymmdd/region/service/aws4_request`, decoded.
    credential: String,
    /// Where the access key id, date, region and service end in `credential`. INVARIANT:
    /// ascending offsets of `/` in `credential` (from [`credential_ends`]), so every slice
    /// between them exists and the empty fallbacks of the accessors below are unreachable.
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
        HEXLOWER.encode_append(canonical_digest.as_ref(), &mut text);

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

    /// Checks the time window alone (the first step of [`Signature::verify`]), for a caller
    /// that must refuse before it has a key.
    pub fn check_time(&self, now: Timestamp) -> Result<(), SigV4Error> {
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
    // HEXLOWER refuses uppercase digits, as SigV4 signatures are lowercase.
    (hex.len() == 64 && HEXLOWER.decode_mut(hex.as_bytes(), &mut out).is_ok()).then_some(out)
}
