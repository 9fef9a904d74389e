use super::*;
use crate::jose::{Es256Signer, BASE64URL, MAX_JWKS_KEYS};
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::RsaPublicKeyComponents;
use ring::signature::{
    RsaEncoding, RsaKeyPair, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512,
};
use serde_json::json;

// A 2048-bit RSA key for these tests only; it protects nothing. Generated once with
// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER`, converted
// to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -inform DER -outform DER`, then base64.
const TEST_ONLY_RSA_PKCS8_B64: &str = "\
    MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCqL9/G1MmTFe8D7ORevldAFYV5655/EV8FAr1i\
    B+dUFIFb+HTH1xR5MifXcTUCLcrpE8cJWYmdpWy19VZRRe6y4h3N5WtR+ruXY1sJvzYBtfcMIhuV/0RosA7mxA3K\
    msIcPkj1GZqo/zBbXh8kouxHKZre7HgsnR0vooVXJWCGZnl7IFTywLi/6EfsH3OH+mG7nf07/Jx16tsaM2nyK+Fa\
    Q5K2zsmIOQBtRNrKLoWa/c2YDwTwo3PvCqUpvrmI1Y4qN8RGFz8ZdVKDlSGN7LarG6V7CMJlX+rhWt2gzoPSMVDk\
    6R6Rqpsddhkj02iPwCyWQJUW55beRsnenE5jVXmfAgMBAAECggEARXtDNNWmMG9ZhHRAbm/uhkLjGjo4nO82KIEM\
    WcwZRUoT4D0pTHeCq9Ju0rYs6qVQfOUusyIDncGuhwFRit/uysinW2rpbHBeCzosrmeLAJrOcH0yXwR3ZPhQNSXg\
    7ZFOY6KIPc0EyC9bikn8lAQSTCFv0cigbbJ9enezUbd4V5Yu+LfD1h+1aYppybCaZOneWKnPBDO5FqpeBSkqgBT/\
    dGdR13X02cwjRQI1ND1cthJph/AAXaw6aFFNA9nP/mmBIISwTwqD5WL+Dl/vah0DqSo6mXXU6E5zRQV3S65mwRJK\
    XomfTAca4dmiOdrg+s1gDlFTyaf3xkbejOdo3q5a7QKBgQDfcS0I8gdp0KUkRM2La4OmzXz7HSlFU//Su54CEtjs\
    E4ujOUDpTbgzzjCUJKPW+PGO0V/Ad+X5weD/YxXOo7qelXFWHwYQiIbGHwCNlc+KRonA/OmB/L5LM1eB2FULtOxu\
    aIF5rZ0JQ7vCNaAcZ9d26G7UgGWPbIyr6H6/gKs3KwKBgQDC/C4aysVSAOR95BmpaJ2tl6ijpe4B+vy9qMZst0/J\
    Oih+QNMhE5Ez3aSfc0z9WjnoCntF96L1nBlWC916xdyXh1zlCOMkdDXgbYkwiSNaAC0lbWOCYwCHzvUdJq1GRXQK\
    Pxg87Q/fI61RLiti8wn2vOscVCELyltOkCNFs1/NXQKBgQDCYxyR1rWaWfkBh5XmP//FwqmDcUgxVzWNaMm69hif\
    sRVfR/TvwzyIXU4n44RiBitoW0BZGjYJxaDvrY0QO6KkSlDSYqUNBylw/RGnG3j1zA4VxjGDc5U9qQntHX5Hc/vo\
    xaQ2blLa94FGIQ8NB04M1YNt/dHdJ8tt1xNFmTPbBwKBgBfihFNL23f8HAE/29Tgt8/37/R78vfTIvqongXbPq7L\
    rQIqNrKqjvLnh67wlNHEJ6vA/PDJMPEdOg1MTsknS6pULpDv0cM5aRAg2tlTMz1nICChkbr7HamFNIlpn3goMdq/\
    d9yevX78A9MZ8L6iPuo2oiZKN/IVy7GH/oofOvERAoGBAKagCKfce3ymXLyXKq1Du2ecGojI3zKPX00OWjOlqYG1\
    2NXldJA5CmcO43tMXumytyGOlaAQltFfEd1yAJmYOJz7namE+CIXfVovKxgwEd4v3/OG+2lmOfesfRSVlsPd1zZC\
    KQLw2RcFUoG77FjN1Mw7x7s88Umqj7bOAIm3ML+H\
";

// Interop vectors from another implementation: PyJWT 2.15.1 on cryptography 48.0.0, run
// once. It generated an RSA-2048 key (e = 65537) and a P-256 key, exported both with
// `RSAAlgorithm.to_jwk` / `ECAlgorithm.to_jwk` (adding kid, use and, for RSA, alg), and
// signed with `jwt.encode(claims, key, algorithm=…, headers={"kid": …})` the claims
// {"iss": "https://interop.example.com/oidc", "aud": ["other-client",
// "sts.amazonaws.com"], "sub": "interop-subject", "iat": 1700000000, "nbf": 1700000000,
// "exp": 4102444800} (RS256, kid py-rsa-1) and the same with aud "sts.amazonaws.com" and
// sub "system:serviceaccount:default:py" (ES256, kid py-ec-1). exp is 2100-01-01.
const INTEROP_JWKS: &str = "\
    {\"keys\":[{\"kty\":\"RSA\",\"key_ops\":[\"verify\"],\"n\":\"27movjZ2P-pT7RSxPgUmDYMM\
    y_PXw8WrNv-H2e8MaUjlj6iMd62EhGTdVbEMvWFNpdOx5psqmHrQRFTzFJgy9zbQvmwBVF_u\
    apeS2VX3vSSfbQpGWF6bbJkG5tSDlOZLUZyWADMiKtrcs5f-4JoJJ6XKuRzwLgqOnNz8flio\
    0hljcRi6z-MIzpTNWqR9wY6y_m2Rvs1JopdZvSsAuGrCGVN2He5Pmd98XJJsZm5WWhEnl8K8\
    Y_m1nW-vGA7B_NjVwYqJecg6zSNT9giXfKyfuGsmbf9RqgcHYekN1CLcEMtnJ7mCp29ywQTh\
    tQl1W27rk8MTv9f_NckJ3hs-fRTEBw\",\"e\":\"AQAB\",\"kid\":\"py-rsa-1\",\"use\":\"sig\",\
    \"alg\":\"RS256\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"ZFw6HQqfvTaeIyzgsWorgfUBQV\
    EABOE8NX0ESCZJ7mo\",\"y\":\"rkDKy7hZGlkyd8yz5MIs6nqyjb2FToEyfjd9dOvKqag\",\"ki\
    d\":\"py-ec-1\",\"use\":\"sig\"}]}\
";
const INTEROP_RS256_TOKEN: &str = "\
    eyJhbGciOiJSUzI1NiIsImtpZCI6InB5LXJzYS0xIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2ludGVy\
    b3AuZXhhbXBsZS5jb20vb2lkYyIsImF1ZCI6WyJvdGhlci1jbGllbnQiLCJzdHMuYW1hem9uYXdzLmNvbSJdLCJz\
    dWIiOiJpbnRlcm9wLXN1YmplY3QiLCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjo0MTAy\
    NDQ0ODAwfQ.YSHhBFaFCyW1qx9f5iroXeCwNVWCBwJXi6fjzAzfP_GhVALt4K5wlrfM7Spkfsrn77j-AjtBseh3m\
    55IcaNNumpg6Xp9B9ua9j0PUInNIF0aKQlzN1lZDtNfmgucwLcv9fdZvRtXoiVhH43-1pT8B2tIAdGqSaNNevcJc\
    aVkPn8mRW2HS0J5m8eiSdXvHbg08Kl6FL6fMAhP9QSV04xoTpJHxrRtc7vNRzlxaJqm89t8E_GzELdcvElirTGRY\
    hPFwsdoK9jK8QNJj--j1u1WI0EaLEkI_eGuaTWLPU2g1B5Gz3CLaFOpaRkzN0fPc6YKqfgOrUNZMhksMLSVH4PEV\
    Q\
";
const INTEROP_ES256_TOKEN: &str = "\
    eyJhbGciOiJFUzI1NiIsImtpZCI6InB5LWVjLTEiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJodHRwczovL2ludGVyb\
    3AuZXhhbXBsZS5jb20vb2lkYyIsImF1ZCI6InN0cy5hbWF6b25hd3MuY29tIiwic3ViIjoic3lzdGVtOnNlcnZpY\
    2VhY2NvdW50OmRlZmF1bHQ6cHkiLCJpYXQiOjE3MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyN\
    DQ0ODAwfQ.UPV8TUlUpFcKJr3iVzpNSZtX5gwme2_6evudEDFJExcC3A66adDjESFVpGn_phoy5ySybEurVJonJm\
    gNAkA7EQ\
";

const INTEROP_ISSUER: &str = "https://interop.example.com/oidc";

/// 2025-06-15T15:06:40Z.
const NOW: i64 = 1_750_000_000;
const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
const CLIENT: &str = "sts.amazonaws.com";
const NO_KEY: &str = "Couldn't retrieve verification key from your identity provider,  \
                      please reference AssumeRoleWithWebIdentity documentation for \
                      requirements";

fn now() -> Timestamp {
    Timestamp::from_epoch_seconds(NOW)
}

fn clients() -> Vec<String> {
    vec![CLIENT.to_owned()]
}

fn irsa_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "system:serviceaccount:default:my-sa",
        "iat": NOW - 10,
        "exp": NOW + 3600,
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn check(token: &str, jwks: &Jwks) -> Result<WebIdentityClaims, JwtError> {
    UnverifiedToken::parse(token)?.verify(jwks, ISSUER, &clients(), now())
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    BASE64URL.encode(bytes)
}

fn unsigned_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

fn signer(kid: &str) -> (Es256Signer, Jwks) {
    let signer = Es256Signer::generate(kid).unwrap();
    let jwks = Jwks::parse(&signer.jwks()).unwrap();
    (signer, jwks)
}

fn rsa_key() -> RsaKeyPair {
    RsaKeyPair::from_pkcs8(&STANDARD.decode(TEST_ONLY_RSA_PKCS8_B64).unwrap()).unwrap()
}

fn rsa_components(key: &RsaKeyPair) -> RsaPublicKeyComponents<Vec<u8>> {
    key.public().into()
}

/// The public JWK of `key`, built from ring's own view of the key.
fn rsa_jwk(key: &RsaKeyPair, kid: Option<&str>) -> Value {
    let components = rsa_components(key);
    let mut jwk = json!({"kty": "RSA", "n": b64(&components.n), "e": b64(&components.e)});
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    jwk
}

fn jwks_of(keys: &[Value]) -> Jwks {
    Jwks::parse(&json!({ "keys": keys }).to_string()).unwrap()
}

fn rsa_sign(
    key: &RsaKeyPair,
    encoding: &'static dyn RsaEncoding,
    header: &Value,
    claims: &Value,
) -> String {
    let input = unsigned_input(header, claims);
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        encoding,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", b64(signature))
}

fn assert_invalid(result: Result<WebIdentityClaims, JwtError>, message: &str) {
    let error = result.unwrap_err();
    assert_eq!(error.code(), "InvalidIdentityToken");
    assert_eq!(error.to_string(), message);
}

fn assert_malformed(result: Result<WebIdentityClaims, JwtError>) {
    let error = result.unwrap_err();
    assert_eq!(error.code(), "InvalidIdentityToken");
    assert!(
        error
            .to_string()
            .starts_with("The web identity token is not a valid JWT: "),
        "{error}"
    );
}

#[test]
fn es256_round_trip() {
    let (signer, jwks) = signer("k1");
    let token = signer.sign(&irsa_claims()).unwrap();
    let parsed = UnverifiedToken::parse(&token).unwrap();
    assert_eq!(parsed.issuer(), ISSUER);
    let claims = parsed.verify(&jwks, ISSUER, &clients(), now()).unwrap();
    assert_eq!(claims.issuer, ISSUER);
    assert_eq!(claims.subject, "system:serviceaccount:default:my-sa");
    assert_eq!(claims.audience, CLIENT);
    assert_eq!(
        claims.issued_at,
        Some(Timestamp::from_epoch_seconds(NOW - 10))
    );
    assert_eq!(claims.expires_at, Timestamp::from_epoch_seconds(NOW + 3600));
    assert_eq!(jwks.len(), 1);
    assert_eq!(jwks.kids().collect::<Vec<_>>(), ["k1"]);
    // The header is the documented one.
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&BASE64URL.decode(header).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}));
}

#[test]
fn rs256_rs384_rs512_round_trip_with_fixed_key() {
    let key = rsa_key();
    let jwks = jwks_of(&[rsa_jwk(&key, Some("rsa-1"))]);
    let encodings: [(&str, &'static dyn RsaEncoding); 3] = [
        ("RS256", &RSA_PKCS1_SHA256),
        ("RS384", &RSA_PKCS1_SHA384),
        ("RS512", &RSA_PKCS1_SHA512),
    ];
    for (alg, encoding) in encodings {
        let header = json!({"alg": alg, "kid": "rsa-1", "typ": "JWT"});
        let token = rsa_sign(&key, encoding, &header, &irsa_claims());
        let claims = check(&token, &jwks).unwrap();
        assert_eq!(
            claims.subject, "system:serviceaccount:default:my-sa",
            "{alg}"
        );
    }
    // A signature made with one hash does not pass as another.
    let header = json!({"alg": "RS384", "kid": "rsa-1"});
    let forged = rsa_sign(&key, &RSA_PKCS1_SHA256, &header, &irsa_claims());
    assert_invalid(
        check(&forged, &jwks),
        "The signature of the web identity token is invalid",
    );
}

#[test]
fn pyjwt_interop_vectors_verify() {
    let jwks = Jwks::parse(INTEROP_JWKS).unwrap();
    assert_eq!(jwks.len(), 2);
    let at = now();
    let clients = clients();

    let rs = UnverifiedToken::parse(INTEROP_RS256_TOKEN).unwrap();
    assert_eq!(rs.issuer(), INTEROP_ISSUER);
    let rs = rs.verify(&jwks, INTEROP_ISSUER, &clients, at).unwrap();
    assert_eq!(rs.subject, "interop-subject");
    assert_eq!(rs.audience, "sts.amazonaws.com");
    assert_eq!(rs.expires_at, Timestamp::from_epoch_seconds(4_102_444_800));
    assert_eq!(
        rs.issued_at,
        Some(Timestamp::from_epoch_seconds(1_700_000_000))
    );
    assert!(rs.claims.contains(&(
        "aud".to_owned(),
        vec!["other-client".to_owned(), "sts.amazonaws.com".to_owned()]
    )));

    let es = UnverifiedToken::parse(INTEROP_ES256_TOKEN).unwrap();
    let es = es.verify(&jwks, INTEROP_ISSUER, &clients, at).unwrap();
    assert_eq!(es.subject, "system:serviceaccount:default:py");
    assert_eq!(es.audience, "sts.amazonaws.com");

    // Each verifies only with its own key.
    let rsa_only = Jwks::parse(&{
        let mut doc: Value = serde_json::from_str(INTEROP_JWKS).unwrap();
        doc["keys"].as_array_mut().unwrap().truncate(1);
        doc.to_string()
    })
    .unwrap();
    let es = UnverifiedToken::parse(INTEROP_ES256_TOKEN).unwrap();
    assert_invalid(es.verify(&rsa_only, INTEROP_ISSUER, &clients, at), NO_KEY);
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let (signer, jwks) = signer("k");
    let issuer = "https://i.example";
    let claims = json!({"iss": issuer, "aud": "a", "sub": "s", "exp": NOW + 100});
    let token = signer.sign(&claims).unwrap();
    let clients = vec!["a".to_owned()];
    let verify = |text: &str| {
        UnverifiedToken::parse(text).and_then(|t| t.verify(&jwks, issuer, &clients, now()))
    };
    assert!(verify(&token).is_ok());
    let signature_segment = token.rsplit('.').next().unwrap().to_owned();
    let mut tried = 0;
    for index in 0..token.len() {
        for bit in 0..8 {
            let mut bytes = token.clone().into_bytes();
            bytes[index] ^= 1 << bit;
            // A flip into a non-ASCII byte is not UTF-8; a caller could only ever hand
            // us its lossy form, so that is what is tried.
            let flipped = String::from_utf8_lossy(&bytes).into_owned();
            assert_ne!(flipped, token);
            let error = verify(&flipped).expect_err("a flipped token verified");
            assert!(!error.to_string().contains(&signature_segment));
            tried += 1;
        }
    }
    assert_eq!(tried, token.len() * 8);
}

#[test]
fn padding_whitespace_and_non_canonical_base64_are_rejected() {
    let (signer, jwks) = signer("k1");
    let token = signer.sign(&irsa_claims()).unwrap();
    assert!(check(&token, &jwks).is_ok());
    let (input, signature) = token.rsplit_once('.').unwrap();
    // 64 signature bytes take 86 characters; padded base64 would add "==".
    assert_eq!(signature.len(), 86);
    for bad in [
        format!("{token}=="),
        format!("{input}.\n{signature}"),
        format!("{input}. {signature}"),
        format!("{token} "),
        format!(" {token}"),
        token.replacen('.', "=.", 1),
        // The standard alphabet's '+' and '/' are not base64url.
        format!("{input}.{}+", &signature[..signature.len() - 1]),
        format!("{input}.{}/", &signature[..signature.len() - 1]),
    ] {
        assert_malformed(check(&bad, &jwks));
    }
    // The last character carries 2 bits of data and 4 zero bits. Setting one of those
    // zero bits gives a string a lenient decoder maps to the same signature.
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = signature.chars().last().unwrap();
    let position = ALPHABET.find(last).unwrap();
    let twin = ALPHABET.chars().nth(position ^ 1).unwrap();
    let twin_signature = format!("{}{twin}", &signature[..signature.len() - 1]);
    let lenient = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    assert_eq!(
        lenient.decode(&twin_signature).unwrap(),
        lenient.decode(signature).unwrap()
    );
    assert_malformed(check(&format!("{input}.{twin_signature}"), &jwks));
}

#[test]
fn unknown_kid_and_foreign_key_are_rejected() {
    let (signer_1, _) = signer("k1");
    let (_, jwks_2) = signer("k2");
    let (_, other_k1) = signer("k1");
    let token = signer_1.sign(&irsa_claims()).unwrap();
    assert_invalid(check(&token, &jwks_2), NO_KEY);
    assert_invalid(
        check(&token, &other_k1),
        "The signature of the web identity token is invalid",
    );
    assert_invalid(check(&token, &Jwks::default()), NO_KEY);
}

#[test]
fn alg_none_is_rejected() {
    let (_, jwks) = signer("k1");
    for alg in ["none", "None", "NONE", ""] {
        let header = json!({"alg": alg, "kid": "k1"});
        let input = unsigned_input(&header, &irsa_claims());
        for signature in ["", "AAAA"] {
            let result = check(&format!("{input}.{signature}"), &jwks);
            assert_invalid(
                result,
                "The web identity token must be signed with RS256, RS384, RS512, ES256 or ES384",
            );
        }
    }
    // Without an alg at all.
    let input = unsigned_input(&json!({"kid": "k1"}), &irsa_claims());
    assert_malformed(check(&format!("{input}.AAAA"), &jwks));
}

#[test]
fn hs256_with_the_rsa_public_key_as_secret_is_rejected() {
    let key = rsa_key();
    let jwk = rsa_jwk(&key, Some("rsa-1"));
    let jwks_text = json!({ "keys": [jwk] }).to_string();
    let jwks = Jwks::parse(&jwks_text).unwrap();
    let components = rsa_components(&key);
    let n_text = jwk["n"].as_str().unwrap().to_owned();
    for (alg, hmac_alg) in [
        ("HS256", ring::hmac::HMAC_SHA256),
        ("HS384", ring::hmac::HMAC_SHA384),
    ] {
        let header = json!({"alg": alg, "kid": "rsa-1"});
        let input = unsigned_input(&header, &irsa_claims());
        for secret in [
            components.n.as_slice(),
            n_text.as_bytes(),
            jwks_text.as_bytes(),
        ] {
            let tag = ring::hmac::sign(&ring::hmac::Key::new(hmac_alg, secret), input.as_bytes());
            let token = format!("{input}.{}", b64(tag.as_ref()));
            assert_invalid(
                check(&token, &jwks),
                "The web identity token must be signed with RS256, RS384, RS512, ES256 or ES384",
            );
        }
    }
}

#[test]
fn algorithm_must_match_the_key() {
    let key = rsa_key();
    let (signer, ec_jwks) = signer("k1");
    let mismatch = "The signing algorithm of the web identity token does not match its \
                    verification key";
    // RS256 naming the EC key, with a genuine RSA signature.
    let token = rsa_sign(
        &key,
        &RSA_PKCS1_SHA256,
        &json!({"alg": "RS256", "kid": "k1"}),
        &irsa_claims(),
    );
    assert_invalid(check(&token, &ec_jwks), mismatch);
    // Without a kid there is no key of the right type at all.
    let token = rsa_sign(
        &key,
        &RSA_PKCS1_SHA256,
        &json!({"alg": "RS256"}),
        &irsa_claims(),
    );
    assert_invalid(check(&token, &ec_jwks), NO_KEY);
    // An RSA key pinned to RS384 refuses RS256.
    let mut jwk = rsa_jwk(&key, Some("rsa-1"));
    jwk["alg"] = json!("RS384");
    let pinned = jwks_of(&[jwk]);
    let token = rsa_sign(
        &key,
        &RSA_PKCS1_SHA256,
        &json!({"alg": "RS256", "kid": "rsa-1"}),
        &irsa_claims(),
    );
    assert_invalid(check(&token, &pinned), mismatch);
    // ES384 against a P-256 key.
    let es = signer.sign(&irsa_claims()).unwrap();
    let (_, payload) = es.split_once('.').unwrap();
    let relabelled = format!(
        "{}.{payload}",
        b64(json!({"alg": "ES384", "kid": "k1"}).to_string())
    );
    assert_invalid(check(&relabelled, &ec_jwks), mismatch);
    // A key whose alg contradicts its type is a broken JWKS.
    let mut doc: Value = serde_json::from_str(&signer.jwks()).unwrap();
    doc["keys"][0]["alg"] = json!("RS256");
    let error = Jwks::parse(&doc.to_string()).unwrap_err();
    assert_eq!(error.code(), "InvalidInput");
}

#[test]
fn token_without_kid_uses_the_only_key_of_its_type() {
    let key = rsa_key();
    let (ec_signer, ec_jwks) = signer("ec");
    let ec_jwk = serde_json::from_str::<Value>(&ec_signer.jwks()).unwrap()["keys"][0].clone();
    // One RSA key (without a kid) next to an EC key.
    let one_rsa = jwks_of(&[rsa_jwk(&key, None), ec_jwk]);
    assert_eq!(one_rsa.len(), 2);
    let token = rsa_sign(
        &key,
        &RSA_PKCS1_SHA256,
        &json!({"alg": "RS256"}),
        &irsa_claims(),
    );
    assert!(check(&token, &one_rsa).is_ok());
    let two_rsa = jwks_of(&[rsa_jwk(&key, None), rsa_jwk(&key, Some("other"))]);
    assert_invalid(check(&token, &two_rsa), NO_KEY);
    assert_invalid(check(&token, &ec_jwks), NO_KEY);
}

#[test]
fn rsa_modulus_with_leading_zero_is_accepted() {
    let key = rsa_key();
    let components = rsa_components(&key);
    let mut n = vec![0u8];
    n.extend_from_slice(&components.n);
    let jwks = jwks_of(&[json!({"kty": "RSA", "kid": "z", "n": b64(&n), "e": b64(&components.e)})]);
    let token = rsa_sign(
        &key,
        &RSA_PKCS1_SHA256,
        &json!({"alg": "RS256", "kid": "z"}),
        &irsa_claims(),
    );
    assert!(check(&token, &jwks).is_ok());
}

#[test]
fn expiry_allows_sixty_seconds_of_skew() {
    let (signer, jwks) = signer("k1");
    let expired = signer
        .sign(&with(irsa_claims(), "exp", json!(NOW - 61)))
        .unwrap();
    let error = check(&expired, &jwks).unwrap_err();
    assert_eq!(error.code(), "ExpiredTokenException");
    assert_eq!(
        error.to_string(),
        "Token expired: current date/time 2025-06-15T15:06:40Z must be before the \
         expiration date/time 2025-06-15T15:05:39Z"
    );
    let late = signer
        .sign(&with(irsa_claims(), "exp", json!(NOW - 59)))
        .unwrap();
    assert!(check(&late, &jwks).is_ok());
    // Exactly at exp + skew the token is expired: "on or after" exp, as RFC 7519 says.
    let boundary = signer
        .sign(&with(irsa_claims(), "exp", json!(NOW - 60)))
        .unwrap();
    assert_eq!(
        check(&boundary, &jwks).unwrap_err().code(),
        "ExpiredTokenException"
    );
    // `now` with a fraction is reported in whole seconds.
    let fraction = Timestamp(now().0 + 500_000_000);
    let error = UnverifiedToken::parse(&expired)
        .unwrap()
        .verify(&jwks, ISSUER, &clients(), fraction)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("current date/time 2025-06-15T15:06:40Z "),
        "{error}"
    );
}

#[test]
fn nbf_and_iat_may_be_at_most_sixty_seconds_ahead() {
    let (signer, jwks) = signer("k1");
    for claim in ["nbf", "iat"] {
        let ahead = signer
            .sign(&with(irsa_claims(), claim, json!(NOW + 90)))
            .unwrap();
        assert_invalid(
            check(&ahead, &jwks),
            &format!("The web identity token is not valid yet: its \"{claim}\" is in the future"),
        );
        let slightly = signer
            .sign(&with(irsa_claims(), claim, json!(NOW + 30)))
            .unwrap();
        assert!(check(&slightly, &jwks).is_ok(), "{claim}");
        // The bounds themselves: 60 s ahead passes, 61 s does not.
        let at_bound = signer
            .sign(&with(irsa_claims(), claim, json!(NOW + 60)))
            .unwrap();
        assert!(check(&at_bound, &jwks).is_ok(), "{claim}");
        let past_bound = signer
            .sign(&with(irsa_claims(), claim, json!(NOW + 61)))
            .unwrap();
        assert!(check(&past_bound, &jwks).is_err(), "{claim}");
    }
}

#[test]
fn issuer_must_match_exactly() {
    let (signer, jwks) = signer("k1");
    let token = signer.sign(&irsa_claims()).unwrap();
    let expected = "No OpenIDConnect provider found in your account for \
                    https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
    for url in [
        "https://other.example",
        "https://OIDC.eks.us-east-1.amazonaws.com/id/EXAMPLE",
        "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE/",
        "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
    ] {
        let result = UnverifiedToken::parse(&token)
            .unwrap()
            .verify(&jwks, url, &clients(), now());
        assert_invalid(result, expected);
    }
    // The echoed issuer is printable and bounded.
    let long = format!("https://x.example/{}\n", "a".repeat(400));
    let error = JwtError::no_provider(&long);
    let message = error.to_string();
    assert!(!message.contains('\n'));
    assert_eq!(
        message.chars().count(),
        "No OpenIDConnect provider found in your account for ".len() + 255
    );
}

#[test]
fn audience_must_hold_a_client_id() {
    let (signer, jwks) = signer("k1");
    let token = signer.sign(&irsa_claims()).unwrap();
    let result =
        UnverifiedToken::parse(&token)
            .unwrap()
            .verify(&jwks, ISSUER, &["other".to_owned()], now());
    assert_invalid(result, "Incorrect token audience");
    let result = UnverifiedToken::parse(&token)
        .unwrap()
        .verify(&jwks, ISSUER, &[], now());
    assert_invalid(result, "Incorrect token audience");

    let listed = signer
        .sign(&with(
            irsa_claims(),
            "aud",
            json!(["first", CLIENT, "last"]),
        ))
        .unwrap();
    let claims = check(&listed, &jwks).unwrap();
    assert_eq!(claims.audience, CLIENT);
    let many = vec!["last".to_owned(), "first".to_owned()];
    let claims = UnverifiedToken::parse(&listed)
        .unwrap()
        .verify(&jwks, ISSUER, &many, now())
        .unwrap();
    assert_eq!(
        claims.audience, "first",
        "the first audience of the token that is a client id"
    );

    let empty = signer.sign(&with(irsa_claims(), "aud", json!([]))).unwrap();
    assert_invalid(check(&empty, &jwks), "Incorrect token audience");
    let numeric = signer
        .sign(&with(irsa_claims(), "aud", json!([CLIENT, 1])))
        .unwrap();
    assert_malformed(check(&numeric, &jwks));
}

#[test]
fn timestamps_must_be_integers() {
    let (signer, jwks) = signer("k1");
    for claim in ["exp", "nbf", "iat"] {
        let base = NOW + if claim == "exp" { 3600 } else { 0 };
        for value in [
            json!(base as f64),
            json!(base.to_string()),
            json!(null),
            json!(true),
        ] {
            let token = signer
                .sign(&with(irsa_claims(), claim, value.clone()))
                .unwrap();
            assert_malformed(check(&token, &jwks));
        }
    }
    // Exponent and fraction spellings, which `Value` would not keep as written.
    for exp in [
        "1.7500036e9",
        "1750003600.0",
        "1750003600.5",
        "18446744073709551615",
    ] {
        let payload = format!(r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"s","exp":{exp}}}"#);
        let token = signer.sign_payload(payload.as_bytes()).unwrap();
        assert_malformed(check(&token, &jwks));
    }
    let payload = format!(r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"s","exp":1750003600}}"#);
    assert!(check(&signer.sign_payload(payload.as_bytes()).unwrap(), &jwks).is_ok());
}

#[test]
fn required_claims_must_be_present() {
    let (signer, jwks) = signer("k1");
    for claim in ["iss", "sub", "aud", "exp"] {
        let token = signer.sign(&without(irsa_claims(), claim)).unwrap();
        let error = UnverifiedToken::parse(&token).unwrap_err();
        assert_eq!(error.code(), "InvalidIdentityToken");
        assert!(
            error.to_string().contains(&format!("\"{claim}\"")),
            "{error}"
        );
    }
    let empty_sub = signer.sign(&with(irsa_claims(), "sub", json!(""))).unwrap();
    assert_malformed(check(&empty_sub, &jwks));
    let numeric_sub = signer.sign(&with(irsa_claims(), "sub", json!(7))).unwrap();
    assert_malformed(check(&numeric_sub, &jwks));
    // iat and nbf are optional.
    let bare = signer.sign(&without(irsa_claims(), "iat")).unwrap();
    assert_eq!(check(&bare, &jwks).unwrap().issued_at, None);
}

#[test]
fn token_length_follows_the_api_constraint() {
    let long = "a".repeat(MAX_TOKEN_CHARS + 1);
    let error = UnverifiedToken::parse(&long).unwrap_err();
    assert_eq!(error.code(), "ValidationError");
    assert!(error.to_string().ends_with("less than or equal to 20000"));
    // Characters, not bytes, are counted.
    let wide = "é".repeat(MAX_TOKEN_CHARS);
    assert_eq!(
        UnverifiedToken::parse(&wide).unwrap_err().code(),
        "InvalidIdentityToken"
    );
    let at_limit = "a".repeat(MAX_TOKEN_CHARS);
    assert_eq!(
        UnverifiedToken::parse(&at_limit).unwrap_err().code(),
        "InvalidIdentityToken"
    );
    for short in ["", "a.b"] {
        assert_eq!(
            UnverifiedToken::parse(short).unwrap_err().code(),
            "ValidationError"
        );
    }
    // A signed token past the limit is refused before anything is decoded.
    let (signer, _) = signer("k1");
    let padded = with(irsa_claims(), "pad", json!("x".repeat(MAX_TOKEN_CHARS)));
    let token = signer.sign(&padded).unwrap();
    assert_eq!(
        UnverifiedToken::parse(&token).unwrap_err().code(),
        "ValidationError"
    );
}

#[test]
fn keys_not_for_signatures_are_ignored() {
    let (signer, _) = signer("k1");
    let token = signer.sign(&irsa_claims()).unwrap();
    let mut doc: Value = serde_json::from_str(&signer.jwks()).unwrap();
    doc["keys"][0]["use"] = json!("enc");
    let enc = Jwks::parse(&doc.to_string()).unwrap();
    assert!(enc.is_empty());
    assert_invalid(check(&token, &enc), NO_KEY);

    let mut doc: Value = serde_json::from_str(&signer.jwks()).unwrap();
    doc["keys"][0]["key_ops"] = json!(["encrypt"]);
    assert!(Jwks::parse(&doc.to_string()).unwrap().is_empty());
    doc["keys"][0]["key_ops"] = json!(["verify"]);
    assert!(check(&token, &Jwks::parse(&doc.to_string()).unwrap()).is_ok());

    // Unknown key types, curves and algorithms are skipped, not fatal.
    let other = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "RSA", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
    ]});
    assert!(Jwks::parse(&other.to_string()).unwrap().is_empty());
}

#[test]
fn broken_jwks_are_refused() {
    let (signer, _) = signer("k1");
    let mut doc: Value = serde_json::from_str(&signer.jwks()).unwrap();
    let mut with_private = doc.clone();
    with_private["keys"][0]["d"] = json!("c2VjcmV0");
    let mut short_x = doc.clone();
    short_x["keys"][0]["x"] = json!("AAAA");
    let mut padded_y = doc.clone();
    padded_y["keys"][0]["y"] = json!(format!("{}=", doc["keys"][0]["y"].as_str().unwrap()));
    doc["keys"][0]["x"] = json!(null);
    let oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
    let too_many = json!({ "keys": vec![json!({"kty": "OKP"}); MAX_JWKS_KEYS + 1] });
    for text in [
        "not json".to_owned(),
        "[]".to_owned(),
        "{}".to_owned(),
        r#"{"keys": {}}"#.to_owned(),
        r#"{"keys": [1]}"#.to_owned(),
        r#"{"keys": [{}]}"#.to_owned(),
        r#"{"keys": [], "keys": []}"#.to_owned(),
        with_private.to_string(),
        short_x.to_string(),
        padded_y.to_string(),
        doc.to_string(),
        oct.to_string(),
        too_many.to_string(),
    ] {
        let error = Jwks::parse(&text).unwrap_err();
        assert_eq!(error.code(), "InvalidInput", "{text}");
        assert!(!error.to_string().contains("c2VjcmV0"));
    }
    assert!(Jwks::parse(r#"{"keys": []}"#).unwrap().is_empty());
}

#[test]
fn json_is_parsed_strictly() {
    let (signer, jwks) = signer("k1");
    // Repeated claim names, also when spelled with an escape.
    for payload in [
        format!(
            r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"a","sub":"b","exp":{}}}"#,
            NOW + 60
        ),
        format!(
            r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"a","\u0073ub":"b","exp":{}}}"#,
            NOW + 60
        ),
        // Something after the object.
        format!(
            r#"{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"a","exp":{}}}x"#,
            NOW + 60
        ),
        format!(r#"[{{"iss":"{ISSUER}"}}]"#),
    ] {
        let token = signer.sign_payload(payload.as_bytes()).unwrap();
        assert_malformed(check(&token, &jwks));
    }
    // Nesting: the payload object plus 15 arrays is allowed, plus 16 is not.
    let nested = |levels: usize| {
        serde_json::from_str::<Value>(&format!("{}{}", "[".repeat(levels), "]".repeat(levels)))
            .unwrap()
    };
    let ok = signer
        .sign(&with(irsa_claims(), "deep", nested(15)))
        .unwrap();
    assert!(check(&ok, &jwks).is_ok());
    let deep = signer
        .sign(&with(irsa_claims(), "deep", nested(16)))
        .unwrap();
    assert_malformed(check(&deep, &jwks));
}

#[test]
fn crit_headers_and_other_shapes_are_rejected() {
    let (signer, jwks) = signer("k1");
    let token = signer.sign(&irsa_claims()).unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    let crit = format!(
        "{}.{rest}",
        b64(json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}).to_string())
    );
    assert_malformed(check(&crit, &jwks));
    let kid_number = format!(
        "{}.{rest}",
        b64(json!({"alg": "ES256", "kid": 1}).to_string())
    );
    assert_malformed(check(&kid_number, &jwks));
    // JWE compact serialization has five segments; two or four are nothing at all.
    assert_malformed(check(&format!("{token}.AAAA.AAAA"), &jwks));
    assert_malformed(check(&format!("{token}.AAAA"), &jwks));
    assert_malformed(check(rest, &jwks));
    assert_malformed(check(&format!("{token}."), &jwks));
}

#[test]
fn irsa_example() {
    let (signer, jwks) = signer("irsa");
    let claims = with(
        irsa_claims(),
        SESSION_TAGS_CLAIM,
        json!({
            "principal_tags": {"Project": ["Automation"], "CostCenter": "987654"},
            "transitive_tag_keys": ["Project"],
        }),
    );
    let claims = with(claims, "amr", json!(["pwd", "mfa"]));
    let claims = with(claims, "kubernetes.io", json!({"namespace": "default"}));
    let token = signer.sign(&claims).unwrap();
    let verified = check(&token, &jwks).unwrap();
    assert!(verified.claims.contains(&(
        "sub".to_owned(),
        vec!["system:serviceaccount:default:my-sa".to_owned()]
    )));
    assert!(verified
        .claims
        .contains(&("aud".to_owned(), vec!["sts.amazonaws.com".to_owned()])));
    assert!(verified
        .claims
        .contains(&("amr".to_owned(), vec!["pwd".to_owned(), "mfa".to_owned()])));
    let names: Vec<&str> = verified
        .claims
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        names,
        ["iss", "aud", "sub", "amr"],
        "numbers and objects are not string claims"
    );
    assert_eq!(
        condition_key_prefix(ISSUER),
        "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
    );
    assert_eq!(
        condition_key_prefix(&verified.issuer),
        "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"
    );
    assert_eq!(
        verified.session_tags,
        [
            ("Project".to_owned(), "Automation".to_owned()),
            ("CostCenter".to_owned(), "987654".to_owned())
        ]
    );
    assert_eq!(verified.transitive_tag_keys, ["Project"]);
}

#[test]
fn malformed_session_tags_are_rejected() {
    let (signer, jwks) = signer("k1");
    for tags in [
        json!({"principal_tags": {"K": ["a", "b"]}}),
        json!({"principal_tags": {"K": []}}),
        json!({"principal_tags": {"K": 1}}),
        json!({"principal_tags": ["K"]}),
        json!({"transitive_tag_keys": "K"}),
        json!({"transitive_tag_keys": [1]}),
        json!([{"principal_tags": {"K": ["v"]}}]),
    ] {
        let token = signer
            .sign(&with(irsa_claims(), SESSION_TAGS_CLAIM, tags.clone()))
            .unwrap();
        assert_malformed(check(&token, &jwks));
    }
}

#[test]
fn debug_output_hides_token_and_key() {
    let (signer, _) = signer("k1");
    let token = signer.sign(&irsa_claims()).unwrap();
    let parsed = UnverifiedToken::parse(&token).unwrap();
    let debug = format!("{parsed:?}");
    for segment in token.split('.') {
        assert!(!debug.contains(segment), "{debug}");
    }
    assert!(!debug.contains("my-sa"));
    assert_eq!(
        format!("{signer:?}"),
        r#"Es256Signer { kid: "k1", key: "<redacted>" }"#
    );
    assert_eq!(signer.kid(), "k1");
    assert!(signer.sign(&json!(["not", "an", "object"])).is_err());
}

#[test]
fn error_codes_and_statuses() {
    assert_eq!(JwtError::Signing("x").code(), "InternalFailure");
    assert_eq!(JwtError::Signing("x").code().http_status(), 500);
    assert_eq!(JwtError::invalid("x").code().http_status(), 400);
    assert_eq!(JwtError::Validation("x".into()).code().http_status(), 400);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(token) = UnverifiedToken::parse(&text) {
            let _ = token.verify(&Jwks::default(), ISSUER, &clients(), now());
        }
        let _ = Jwks::parse(&text);
    }

    #[test]
    fn token_shaped_text_never_verifies(text in "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,100}") {
        let jwks = Jwks::parse(INTEROP_JWKS).unwrap();
        if let Ok(token) = UnverifiedToken::parse(&text) {
            prop_assert!(token.verify(&jwks, INTEROP_ISSUER, &clients(), now()).is_err());
        }
    }

    #[test]
    fn json_shaped_segments_never_panic(header in "\\{[ -~]{0,60}\\}", payload in "\\{[ -~]{0,120}\\}") {
        let text = format!("{}.{}.AAAA", b64(&header), b64(&payload));
        if let Ok(token) = UnverifiedToken::parse(&text) {
            prop_assert!(token.verify(&Jwks::default(), ISSUER, &clients(), now()).is_err());
        }
    }
}
