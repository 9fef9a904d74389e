use super::canonical::*;
use super::*;
use crate::policy::Timestamp;
use proptest::prelude::*;
use ring::digest;

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
    let signed =
        include_str!("testdata/sigv4/presigned/post-sts-header-before/query-signed-request.txt");
    let creq =
        include_str!("testdata/sigv4/presigned/post-sts-header-before/query-canonical-request.txt");
    let sts =
        include_str!("testdata/sigv4/presigned/post-sts-header-before/query-string-to-sign.txt");
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

/// A sidecar's path (issue #20): the signing key from the date key alone is the one from
/// the secret, and a date key of another day gives another key.
#[test]
fn the_signing_key_follows_from_the_date_key_of_its_day_only() {
    let from_secret = SigningKey::derive(SECRET, "20150830", "us-east-1", "iam");
    let k_date = crate::directory::date_key(SECRET, "20150830");
    let from_date = SigningKey::from_date_key(k_date.as_ref(), "us-east-1", "iam");
    assert_eq!(from_date.bytes, from_secret.bytes);
    let next_day = crate::directory::date_key(SECRET, "20150831");
    let other = SigningKey::from_date_key(next_day.as_ref(), "us-east-1", "iam");
    assert_ne!(other.bytes, from_secret.bytes);
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
    let request = RawRequest {
        method: "GET".into(),
        path: "/".into(),
        query: "Action=ListUsers&Version=2010-05-08".into(),
        headers: vec![
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            ),
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
    let signed =
        include_str!("testdata/sigv4/presigned/post-sts-header-before/query-signed-request.txt");
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
        (
            text,
            prop::sample::select(vec!["host", "host;x-amz-date", "host;x-amz-date;x"])
        )
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
