//! AWS's Query protocol, shared by the STS (sidecar) and IAM (control plane) edges: form
//! parameters decoded once into a [`QueryRequest`], the SigV4-signed parts of the HTTP request
//! ([`signed_request_parts`]), and the XML success envelope ([`xml_response`], [`XmlWriter`]).
//! Errors render through [`super::error::aws_error`].
//!
//! Decoding is strict where AWS's SDKs are exact, so that what the edge accepts is what the
//! caller meant: a repeated parameter, a bad percent-escape, text that is not UTF-8, or a
//! member list with a gap is refused rather than guessed at. `+` is a space (the form
//! encoding), `%2B` a plus. Lists follow botocore's serializer: `Name.member.N` (1-based, any
//! order on the wire), and an empty list as `Name=` with an empty value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::xml_escape;
use crate::error::AwsCode;
use crate::sts::sigv4::SignedRequest;

/// The only body type the Query protocol sends.
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The payload hash a presigned URL signs instead of the body's.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Why a Query request's parameters were refused, with AWS's code ([`QueryError::code`]).
/// Messages echo parameter names (bounded), never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A POST whose body is not form-encoded.
    #[error("The request body's content type {0} is not supported; use application/x-www-form-urlencoded.")]
    UnsupportedContentType(String),
    /// A bad percent-escape, or text that is not UTF-8.
    #[error("The request's parameters are not valid form encoding: {0}.")]
    MalformedEncoding(&'static str),
    /// A parameter given twice.
    #[error("The parameter {0} is given more than once.")]
    Repeated(String),
    /// A required parameter is absent.
    #[error("The request must contain the parameter {0}.")]
    Missing(String),
    /// A member list or structure list that does not follow `Name.member.N[.Field]`.
    #[error("The parameter {name} is malformed: {reason}.")]
    MalformedList {
        /// The parameter as sent (bounded).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

// === impl QueryError ===

impl QueryError {
    /// AWS's error code.
    pub fn code(&self) -> AwsCode {
        match self {
            Self::UnsupportedContentType(_) => AwsCode::UnsupportedMediaType,
            Self::MalformedEncoding(_) => AwsCode::MalformedQueryString,
            Self::Repeated(_) | Self::MalformedList { .. } => AwsCode::InvalidParameterValue,
            Self::Missing(_) => AwsCode::MissingParameter,
        }
    }

    /// The parameter the error is about, if it names one.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            Self::Repeated(name) | Self::Missing(name) | Self::MalformedList { name, .. } => {
                Some(name)
            }
            Self::UnsupportedContentType(_) | Self::MalformedEncoding(_) => None,
        }
    }
}

fn named(name: &str) -> String {
    crate::error::echo(name).into_owned()
}

/// A Query-protocol request: the form parameters of a POST body
/// (`application/x-www-form-urlencoded`) or of a GET query string, decoded once.
#[derive(Clone, Default)]
pub struct QueryRequest {
    params: Vec<(String, String)>,
}

impl std::fmt::Debug for QueryRequest {
    /// Values can be secrets (a web identity token, a session policy), so only names show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRequest")
            .field(
                "names",
                &self
                    .params
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

// === impl QueryRequest ===

impl QueryRequest {
    /// Decodes the parameters: a GET's query string; a POST's query string and its body,
    /// which must be form-encoded (a missing content type is taken as form encoding, as
    /// AWS's endpoints do). A POST with a body of another content type, bad
    /// percent-encoding or a repeated parameter are [`QueryError`]s with AWS's codes.
    pub fn try_from_parts(
        method: &Method,
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, QueryError> {
        let mut params = Vec::new();
        decode_into(query.as_bytes(), &mut params)?;
        if *method == Method::POST && !body.is_empty() {
            if let Some(ct) = content_type {
                let essence = ct.split(';').next().unwrap_or_default().trim();
                if !essence.eq_ignore_ascii_case(FORM_CONTENT_TYPE) {
                    return Err(QueryError::UnsupportedContentType(
                        crate::error::echo(essence).into_owned(),
                    ));
                }
            }
            decode_into(body, &mut params)?;
        }
        let mut names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|w| w.first() == w.get(1)) {
            return Err(QueryError::Repeated(named(
                pair.first().copied().unwrap_or_default(),
            )));
        }
        Ok(Self { params })
    }

    /// `Action`.
    pub fn action(&self) -> Option<&str> {
        self.get("Action")
    }

    /// `Version`.
    pub fn version(&self) -> Option<&str> {
        self.get("Version")
    }

    /// The value of `name`, if given (an empty value is given).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`; `MissingParameter` naming it when absent or empty.
    pub fn require(&self, name: &str) -> Result<&str, QueryError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| QueryError::Missing(named(name)))
    }

    /// `Name.member.1`, `Name.member.2`, … in index order (AWS's list encoding); empty if
    /// none, or when the list is sent empty (`Name=`).
    pub fn list(&self, name: &str) -> Result<Vec<&str>, QueryError> {
        let mut members: Vec<(usize, &str)> = Vec::new();
        for (param, value, rest) in self.under(name)? {
            let (index, field) = member_index(param, rest)?;
            if field.is_some() {
                return Err(malformed(param, "a list member has no fields"));
            }
            members.push((index, value));
        }
        dense(name, members)
    }

    /// `Name.member.N.Field` structures, in index order, each as (field, value) pairs in the
    /// order sent; empty if none, or when the list is sent empty (`Name=`).
    pub fn structs(&self, name: &str) -> Result<Vec<Vec<(&str, &str)>>, QueryError> {
        let mut fields: Vec<(usize, &str, &str)> = Vec::new();
        for (param, value, rest) in self.under(name)? {
            let (index, field) = member_index(param, rest)?;
            let Some(field) = field.filter(|f| !f.is_empty()) else {
                return Err(malformed(param, "a structure member needs a field name"));
            };
            fields.push((index, field, value));
        }
        // Grouped by a stable sort rather than a search per field, so that a body of many
        // thousands of members costs n log n, never n².
        fields.sort_by_key(|(index, _, _)| *index);
        let mut members: Vec<(usize, Vec<(&str, &str)>)> = Vec::new();
        for (index, field, value) in fields {
            match members.last_mut() {
                Some((last, group)) if *last == index => group.push((field, value)),
                _ => members.push((index, vec![(field, value)])),
            }
        }
        dense(name, members)
    }

    /// Every parameter, in the order sent (query string first).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The parameters under `name.` as (parameter, value, text after `name.`); `Name=` with
    /// an empty value is an empty list, with any other value a malformed one.
    fn under(&self, name: &str) -> Result<Vec<(&str, &str, &str)>, QueryError> {
        let mut out = Vec::new();
        for (param, value) in self.iter() {
            if param == name {
                if !value.is_empty() {
                    return Err(malformed(param, "a list is sent as Name.member.N"));
                }
                continue;
            }
            if let Some(rest) = param
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
            {
                out.push((param, value, rest));
            }
        }
        Ok(out)
    }
}

fn malformed(param: &str, reason: &'static str) -> QueryError {
    QueryError::MalformedList {
        name: named(param),
        reason,
    }
}

/// Splits `member.N[.Field]` into the 1-based index and the field.
fn member_index<'a>(param: &str, rest: &'a str) -> Result<(usize, Option<&'a str>), QueryError> {
    let Some(rest) = rest.strip_prefix("member.") else {
        return Err(malformed(param, "list members are Name.member.N"));
    };
    let (digits, field) = match rest.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (rest, None),
    };
    let valid = !digits.is_empty()
        && digits.len() <= 6
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    match digits.parse::<usize>() {
        Ok(index) if valid => Ok((index, field)),
        _ => Err(malformed(param, "a member index is a number from 1")),
    }
}

/// The members sorted by index, refusing gaps: indices must be exactly 1..=n.
fn dense<T>(name: &str, mut members: Vec<(usize, T)>) -> Result<Vec<T>, QueryError> {
    members.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(members.len());
    for (expected, (index, member)) in (1..).zip(members) {
        if index != expected {
            // A repeated index of a scalar list is a repeated parameter, caught when decoding;
            // what remains is a gap.
            return Err(malformed(
                name,
                "member indexes must run 1, 2, 3, … without gaps",
            ));
        }
        out.push(member);
    }
    Ok(out)
}

/// Decodes `a=b&c=d` (form encoding: `+` is a space) into `out`. Empty segments are skipped
/// (`a=b&&c=d`, a trailing `&`); a name without `=` has an empty value.
fn decode_into(raw: &[u8], out: &mut Vec<(String, String)>) -> Result<(), QueryError> {
    for segment in raw.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(at) => (
                segment.get(..at).unwrap_or_default(),
                segment.get(at + 1..).unwrap_or_default(),
            ),
            None => (segment, &b""[..]),
        };
        let name = form_decode(name)?;
        if name.is_empty() {
            return Err(QueryError::MalformedEncoding("a parameter has no name"));
        }
        out.push((name, form_decode(value)?));
    }
    Ok(())
}

fn form_decode(raw: &[u8]) -> Result<String, QueryError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut iter = raw.iter();
    while let Some(&b) = iter.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = iter.next().and_then(|&d| hex_value(d));
                let low = iter.next().and_then(|&d| hex_value(d));
                match (high, low) {
                    (Some(h), Some(l)) => bytes.push(h << 4 | l),
                    _ => {
                        return Err(QueryError::MalformedEncoding(
                            "a percent sign is not followed by two hex digits",
                        ))
                    }
                }
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| QueryError::MalformedEncoding("a value is not UTF-8"))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The parts of an HTTP request SigV4 signed, owned, with the body's SHA-256 computed here
/// (so `x-amz-content-sha256` is checked against the body, not trusted).
#[derive(Clone)]
pub struct SignedParts {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    payload_sha256: String,
}

impl std::fmt::Debug for SignedParts {
    /// Headers and the query can hold the signature and the session token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedParts")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The parts of `parts` and `body` that SigV4 signs. A presigned URL with an empty body signs
/// `UNSIGNED-PAYLOAD` (as AWS's presigners do): nothing of the request is left unsigned then,
/// since its parameters are all in the signed query. Any body is hashed as received.
pub fn signed_request_parts(parts: &axum::http::request::Parts, body: &[u8]) -> SignedParts {
    let query = parts.uri.query().unwrap_or_default();
    let presigned = query
        .split('&')
        .any(|p| p.starts_with("X-Amz-Signature=") || p.starts_with("X-Amz-Credential="));
    let payload_sha256 = if presigned && body.is_empty() {
        UNSIGNED_PAYLOAD.to_owned()
    } else {
        hex_sha256(body)
    };
    SignedParts {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: query.to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        payload_sha256,
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

// === impl SignedParts ===

impl SignedParts {
    /// The request as the verifier reads it.
    pub fn as_signed_request(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            payload_sha256: Some(&self.payload_sha256),
        }
    }
}

/// Refusals an edge answered before its domain API saw the request, by edge and AWS code:
/// few, so a lock is cheaper to read than a table of atomics is to keep.
static REFUSALS: parking_lot::Mutex<BTreeMap<(&'static str, &'static str), u64>> =
    parking_lot::const_mutex(BTreeMap::new());

/// Counts a refusal of `edge` (`"sts"`, `"iam"`, …) with `code` that its domain API did not
/// count (the request did not decode, or its signature could not be read).
pub fn count_refusal(edge: &'static str, code: AwsCode) {
    *REFUSALS.lock().entry((edge, code.as_str())).or_insert(0) += 1;
}

/// How many refusals of `edge` with `code` were counted.
pub fn refusals(edge: &str, code: AwsCode) -> u64 {
    REFUSALS
        .lock()
        .iter()
        .filter(|((e, c), _)| *e == edge && *c == code.as_str())
        .map(|(_, n)| *n)
        .sum()
}

/// Appends `iamlet_http_refused_total{edge,code}` in the exposition format.
pub fn render_refusals(out: &mut String) {
    out.push_str("# HELP iamlet_http_refused_total Requests an HTTP edge refused before its domain API saw them, by edge and AWS error code.\n");
    out.push_str("# TYPE iamlet_http_refused_total counter\n");
    for ((edge, code), n) in REFUSALS.lock().iter() {
        let _ = writeln!(
            out,
            "iamlet_http_refused_total{{edge=\"{edge}\",code=\"{code}\"}} {n}"
        );
    }
}

/// A new request id, in the UUID v4 form AWS's are.
pub fn new_request_id() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // The id only correlates logs; the process's counter keeps it unique without entropy.
        return crate::sidecar::next_request_id();
    }
    if let Some(b) = bytes.get_mut(6) {
        *b = (*b & 0x0f) | 0x40;
    }
    if let Some(b) = bytes.get_mut(8) {
        *b = (*b & 0x3f) | 0x80;
    }
    let hex = data_encoding::HEXLOWER.encode(&bytes);
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// Writes a Query-protocol success: `<{Action}Response xmlns="{namespace}">`, the result
/// element `<{Action}Result>…</{Action}Result>` when `result_xml` is `Some`, and
/// `<ResponseMetadata><RequestId>…</RequestId></ResponseMetadata>`; status 200,
/// `Content-Type: text/xml`, header `x-amzn-RequestId`.
pub fn xml_response(
    action: &str,
    namespace: &str,
    request_id: &str,
    result_xml: Option<&str>,
) -> Response {
    let mut body = String::with_capacity(256 + result_xml.map_or(0, str::len));
    let _ = writeln!(
        body,
        "<{action}Response xmlns=\"{}\">",
        xml_escape(namespace)
    );
    if let Some(result) = result_xml {
        let _ = write!(body, "  <{action}Result>\n{result}  </{action}Result>\n");
    }
    let _ = write!(
        body,
        "  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        xml_escape(request_id)
    );
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// A small XML builder for result elements: text is escaped, element names are the
/// caller's (service-model names, never input), and each element sits on its own line,
/// indented by depth.
#[derive(Debug, Clone)]
pub struct XmlWriter {
    out: String,
    depth: usize,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

// === impl XmlWriter ===

impl XmlWriter {
    /// A writer whose elements sit inside `<…Result>` (depth 2 of [`xml_response`]).
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(512),
            depth: 2,
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    /// `<name>`, and what follows is inside it.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.indent();
        let _ = writeln!(self.out, "<{name}>");
        self.depth += 1;
        self
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
        self
    }

    /// `<name>text</name>`, the text escaped.
    pub fn element(&mut self, name: &str, text: &str) -> &mut Self {
        self.indent();
        let _ = writeln!(self.out, "<{name}>{}</{name}>", xml_escape(text));
        self
    }

    /// [`XmlWriter::element`] when `text` is `Some`; nothing otherwise (an absent optional
    /// member, as AWS leaves it out).
    pub fn optional(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(text) = text {
            self.element(name, text);
        }
        self
    }

    /// The XML written.
    pub fn finish(self) -> String {
        self.out
    }

    /// The XML written so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }
}

#[cfg(test)]
mod tests;
