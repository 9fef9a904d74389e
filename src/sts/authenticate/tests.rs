//! Access keys at a sidecar (issue #20, item 2): derived date keys and verifiers, across a
//! UTC midnight and past the last day held, with fixed times.

use super::*;
use crate::directory::{AccessKey, CreateUserInput, IdGenerator, Tenant, DAY_SECONDS};
use crate::snapshot::{for_sidecars, AwsManagedLookup, SnapshotVersion};
use crate::sts::sigv4::SignedRequest;

struct NoAwsManaged;

impl AwsManagedLookup for NoAwsManaged {
    fn compiled(&self, _arn: &str) -> Option<Arc<CompiledPolicy>> {
        None
    }
}

/// 2026-12-03T12:00:00Z: the control plane commits then.
const NOON: i64 = 20_790 * DAY_SECONDS + 12 * 3_600;
/// The next UTC midnight.
const MIDNIGHT: i64 = 20_791 * DAY_SECONDS;

/// The tenant with alice's key, as the control plane holds it (rolled at `NOON`), and the key.
fn tenant() -> (Tenant, AccessKey) {
    let mut t = Tenant::new("111122223333", 0);
    let mut ids = IdGenerator::seeded(7);
    t.create_user(
        &mut ids,
        0,
        CreateUserInput {
            name: "alice".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let key = t.create_access_key(&mut ids, 0, "alice").unwrap();
    assert!(t.roll_sidecar_keys(&mut ids, NOON));
    (t, key)
}

fn compile(t: Tenant) -> TenantSnapshot {
    TenantSnapshot::compile(Arc::new(t), SnapshotVersion::new(1, 1), &NoAwsManaged).unwrap()
}

/// What a sidecar serves: the tenant as shipped to it.
fn sidecar_snapshot() -> (TenantSnapshot, AccessKey) {
    let (t, key) = tenant();
    let shipped: Tenant =
        serde_json::from_str(&serde_json::to_string(&for_sidecars(t)).unwrap()).unwrap();
    (compile(shipped), key)
}

/// A `GET /` to STS signed at `at` with `k_signing` (or, without, with the key's secret) for
/// the scope date of `at`.
fn signed_at(key: &AccessKey, at: i64, k_signing: Option<&SigningKey>) -> Signature {
    let ts = Timestamp::from_epoch_seconds(at);
    let digits: String = ts
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let amz_date = format!("{}T{}Z", &digits[..8], &digits[8..14]);
    let date = &amz_date[..8];
    let headers_for = |signature: &str| {
        vec![
            ("host".to_owned(), "sts.amazonaws.com".to_owned()),
            ("x-amz-date".to_owned(), amz_date.clone()),
            (
                "authorization".to_owned(),
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{date}/us-east-1/sts/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature={signature}",
                    key.access_key_id
                ),
            ),
        ]
    };
    let request = |headers: &[(String, String)]| {
        Signature::parse(&SignedRequest {
            method: "GET",
            path: "/",
            query: "Action=GetCallerIdentity&Version=2011-06-15",
            headers,
            payload_sha256: None,
        })
        .unwrap()
    };
    let to_sign = request(&headers_for(&"0".repeat(64)))
        .string_to_sign()
        .to_owned();
    let derived;
    let k_signing = match k_signing {
        Some(k) => k,
        None => {
            derived = SigningKey::derive(key.secret.expose().as_bytes(), date, "us-east-1", "sts");
            &derived
        }
    };
    request(&headers_for(&k_signing.sign_hex(&to_sign)))
}

fn sigv4(snapshot: &TenantSnapshot, signature: &Signature, at: i64) -> Result<Caller, StsError> {
    authenticate(
        snapshot,
        &Presented::Signed(signature),
        Timestamp::from_epoch_seconds(at),
    )
}

fn keys(snapshot: &TenantSnapshot, id: &str, secret: &str, at: i64) -> Result<Caller, StsError> {
    authenticate(
        snapshot,
        &Presented::Keys {
            access_key_id: id,
            secret,
            session_token: None,
        },
        Timestamp::from_epoch_seconds(at),
    )
}

fn refusals(reason: &str) -> u64 {
    key_day_refusals()
        .into_iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| n)
}

#[test]
fn sigv4_verifies_across_a_utc_midnight_with_date_keys_alone() {
    let (snapshot, key) = sidecar_snapshot();
    let held = snapshot.access_key(&key.access_key_id).unwrap();
    assert!(matches!(held.material, KeyMaterial::Derived(_)));
    // Signed with the day's key at 23:59:50, and with the next day's at 00:00:10.
    for at in [MIDNIGHT - 10, MIDNIGHT + 10] {
        let signature = signed_at(&key, at, None);
        let caller = sigv4(&snapshot, &signature, at).unwrap();
        assert_eq!(
            caller.principal.to_string(),
            "arn:aws:iam::111122223333:user/alice"
        );
        // A wrong signature of the same day is still refused.
        let wrong = SigningKey::derive(
            b"not the secret",
            signature.scope_date(),
            "us-east-1",
            "sts",
        );
        let forged = signed_at(&key, at, Some(&wrong));
        assert!(matches!(
            sigv4(&snapshot, &forged, at),
            Err(StsError::Signature(SigV4Error::SignatureDoesNotMatch))
        ));
    }
    // The key + secret form, through the verifier.
    keys(
        &snapshot,
        &key.access_key_id,
        key.secret.expose(),
        MIDNIGHT + 10,
    )
    .unwrap();
    assert!(matches!(
        keys(&snapshot, &key.access_key_id, "wrong", MIDNIGHT + 10),
        Err(StsError::InvalidToken)
    ));
    assert!(matches!(
        keys(&snapshot, &key.access_key_id, "", MIDNIGHT + 10),
        Err(StsError::InvalidToken)
    ));
}

#[test]
fn a_sidecar_two_days_without_the_control_plane_fails_closed() {
    let (snapshot, key) = sidecar_snapshot();
    let day_after = MIDNIGHT + DAY_SECONDS + 10;
    let expired_before = refusals("expired");
    // Genuinely signed with the secret, for a day past the keys held: refused uniformly.
    let signature = signed_at(&key, day_after, None);
    assert!(matches!(
        sigv4(&snapshot, &signature, day_after),
        Err(StsError::Signature(SigV4Error::SignatureDoesNotMatch))
    ));
    assert!(matches!(
        keys(
            &snapshot,
            &key.access_key_id,
            key.secret.expose(),
            day_after
        ),
        Err(StsError::InvalidToken)
    ));
    assert!(refusals("expired") >= expired_before + 2);
    // The control plane, which holds the secret, still verifies both.
    let (full, _) = tenant();
    let control_plane = compile(full);
    sigv4(&control_plane, &signature, day_after).unwrap();
    keys(
        &control_plane,
        &key.access_key_id,
        key.secret.expose(),
        day_after,
    )
    .unwrap();
}

#[test]
fn a_date_key_never_verifies_another_day() {
    let (snapshot, key) = sidecar_snapshot();
    let held = snapshot.access_key(&key.access_key_id).unwrap();
    let KeyMaterial::Derived(derived) = &held.material else {
        panic!("a sidecar's snapshot holds derived keys");
    };
    let days: Vec<&str> = derived.days().collect();
    assert_eq!(days, ["20261203", "20261204"]);
    // Tomorrow's signing key, used for a request scoped to today: refused.
    let tomorrow = derived.date_key("20261204").unwrap();
    let signing = SigningKey::from_date_key(tomorrow, "us-east-1", "sts");
    let at = MIDNIGHT - 10;
    let forged = signed_at(&key, at, Some(&signing));
    assert!(matches!(
        sigv4(&snapshot, &forged, at),
        Err(StsError::Signature(SigV4Error::SignatureDoesNotMatch))
    ));
    // A day before the held ones (a sidecar clock behind, an old presigned URL): refused and
    // counted apart from expiry.
    let before = refusals("day_not_held");
    let yesterday = MIDNIGHT - DAY_SECONDS - 10;
    let signature = signed_at(&key, yesterday, None);
    assert!(matches!(
        sigv4(&snapshot, &signature, yesterday),
        Err(StsError::Signature(SigV4Error::SignatureDoesNotMatch))
    ));
    assert!(refusals("day_not_held") > before);
    // An expired request says so before any key is looked at, as AWS orders the checks.
    let late = signed_at(&key, MIDNIGHT - 10, None);
    assert!(matches!(
        sigv4(&snapshot, &late, MIDNIGHT + 3_600),
        Err(StsError::Signature(SigV4Error::SignatureExpired(_)))
    ));
}

#[test]
fn a_key_without_secret_or_derived_keys_verifies_nothing() {
    let (mut t, key) = tenant();
    for user in t.users.values_mut() {
        for k in &mut user.access_keys {
            k.secret = Secret::default();
        }
    }
    let snapshot = compile(t);
    assert!(matches!(
        keys(&snapshot, &key.access_key_id, "", NOON),
        Err(StsError::InvalidToken)
    ));
    let signature = signed_at(
        &key,
        NOON,
        Some(&SigningKey::derive(b"", "20261203", "us-east-1", "sts")),
    );
    assert!(sigv4(&snapshot, &signature, NOON).is_err());
}
