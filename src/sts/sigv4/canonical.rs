//! The canonical request: method, URI, query, headers, signed headers and payload hash, with
//! SigV4's percent-encoding.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::{clip, single_header, SigV4Error, SignedRequest, EMPTY_SHA256};

// --- Building the canonical request ---

pub(super) fn canonical_capacity(request: &SignedRequest<'_>, signed_headers: &str) -> usize {
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
pub(super) fn push_canonical_request(
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
                // Encoded segments hold no '/', so the last one starts at the last '/'; with no
                // segment left, `..` at the root stays at the root (offset 0).
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
pub(super) fn push_canonical_query(out: &mut String, query: &str, presigned: bool) {
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
pub(super) fn query_params(query: &str) -> impl Iterator<Item = (&str, &str)> {
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

pub(super) fn is_space(c: char) -> bool {
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
pub(super) fn decoded_eq(raw: &str, expected: &str) -> bool {
    PercentDecoded(raw.as_bytes()).cmp(expected.bytes()) == Ordering::Equal
}

/// A raw query value decoded; bytes that are not UTF-8 become U+FFFD and cannot match.
pub(super) fn percent_decode(raw: &str) -> Cow<'_, str> {
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

/// Percent-encoding's hex digits (uppercase), produced one at a time by [`Encoded`].
fn upper_hex_digit(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + nibble - 10
    }
}
