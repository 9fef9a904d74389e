//! The admin API's client side: profiles from AWS shared credentials files, and the SigV4
//! signature over one admin call. Used by `iamlet admin`, `iamlet bench`, the sidecar's sync
//! stream and tests; the control plane only verifies (see `control_plane`'s `admin_auth`).

mod profiles;

use data_encoding::HEXLOWER;

use crate::policy::Timestamp;

pub use profiles::{
    find_credentials, parse_credentials_file, render_profile, CredentialsError,
    CredentialsFileError, Profile,
};

/// The `host` a SigV4 signature over an admin call signs: gRPC carries the authority as a
/// pseudo-header the service does not see, so the signature binds the service's name.
pub const ADMIN_SIGNING_HOST: &str = "iamlet.v1.Admin";

/// The metadata that signs one admin call with SigV4 (service `iam`, region `us-east-1`):
/// `POST /iamlet.v1.Admin/<method>` over the protobuf-encoded `payload`, at `now`. The secret
/// never leaves the caller; the control plane verifies with its copy.
pub fn sign_admin_call(
    method: &str,
    payload: &[u8],
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    now: Timestamp,
) -> Vec<(&'static str, String)> {
    let sha256 =
        |bytes: &[u8]| HEXLOWER.encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    let amz_date: String = Timestamp::from_epoch_seconds(now.epoch_seconds())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    // INVARIANT: a whole-second RFC 3339 time without '-' and ':' is `yyyymmddThhmmssZ`, so
    // its first eight characters exist and are the scope's date.
    let date = amz_date.get(..8).unwrap_or_default().to_owned();
    let payload_hash = sha256(payload);
    let mut headers = vec![
        ("host", ADMIN_SIGNING_HOST.to_owned()),
        ("x-amz-content-sha256", payload_hash.clone()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(token) = session_token {
        headers.push(("x-amz-security-token", token.to_owned()));
    }
    let signed_headers = headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{}\n", value.trim()))
        .collect();
    let canonical = format!(
        "POST\n/iamlet.v1.Admin/{method}\n\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    );
    let scope = format!("{date}/us-east-1/iam/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256(canonical.as_bytes())
    );
    let signature =
        crate::sts::sigv4::SigningKey::derive(secret.as_bytes(), &date, "us-east-1", "iam")
            .sign_hex(&string_to_sign);
    headers.retain(|(name, _)| *name != "host");
    headers.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, \
             Signature={signature}"
        ),
    ));
    headers
}
