use super::*;
use crate::jose::{IssuerKeySource, SessionClaims, SessionTokenError};

const A: &str = "111122223333";
const B: &str = "444455556666";
const NOW: i64 = 1_700_000_000;

/// An issuer key as the directory stores it (full) or ships it (no private half).
#[derive(Clone)]
struct Key {
    key_id: String,
    public_key: Vec<u8>,
    seed: Option<String>,
    session_secret: Option<String>,
}

impl IssuerKeySource for Key {
    fn key_id(&self) -> &str {
        &self.key_id
    }
    fn public_key(&self) -> &[u8] {
        &self.public_key
    }
    fn private_seed_base64(&self) -> Option<&str> {
        self.seed.as_deref()
    }
    fn session_secret_base64(&self) -> Option<&str> {
        self.session_secret.as_deref()
    }
    fn active(&self) -> bool {
        true
    }
}

fn key(n: u8) -> Key {
    let seed = [n; 32];
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    Key {
        key_id: format!("k{n}"),
        public_key: pair.public_key().as_ref().to_vec(),
        seed: Some(base64::engine::general_purpose::STANDARD.encode(seed)),
        session_secret: Some(base64::engine::general_purpose::STANDARD.encode([n ^ 0x55; 32])),
    }
}

/// The control plane's keyring (private half) and a sidecar's (public half only).
fn rings(n: u8) -> (IssuerKeyring, IssuerKeyring) {
    let full = key(n);
    let shipped = Key {
        seed: None,
        ..full.clone()
    };
    (
        IssuerKeyring::try_new(&[full]).unwrap(),
        IssuerKeyring::try_new(&[shipped]).unwrap(),
    )
}

fn team_a() -> IssuingScope {
    IssuingScope {
        all_roles: false,
        role_paths: vec!["/team-a/".into()],
        role_arns: vec![],
        session_tokens: false,
    }
}

fn credential(
    ring: &IssuerKeyring,
    tenant: &str,
    scope: IssuingScope,
    now: i64,
) -> IssuingCredential {
    IssuingCredential::generate(ring, tenant, "sidecar-1.demo.svc", scope, [9; 32], now).unwrap()
}

fn role_claims(tenant: &str, at: i64) -> SessionClaims {
    SessionClaims {
        tenant: tenant.into(),
        access_key_id: "ASIAAAAAAAAAAAAAAAAA".into(),
        token_id: "TOKENID".into(),
        subject: SessionSubject::Role {
            role_name: "x".into(),
            role_id: "AROAAAAAAAAAAAAAAAAAA".into(),
            session_name: "s".into(),
            chained: false,
            federated_provider: None,
        },
        issued_at: at,
        expires_at: at + 3600,
        source_identity: None,
        mfa_authenticated_at: None,
        session_policy: None,
        policy_arns: vec![],
        tags: vec![],
        transitive_tag_keys: vec![],
    }
}

const TEAM_A_ROLE: &str = "arn:aws:iam::111122223333:role/team-a/x";
const TEAM_B_ROLE: &str = "arn:aws:iam::111122223333:role/team-b/x";

#[test]
fn scopes_match_role_paths_arns_and_session_tokens() {
    let scope = IssuingScope {
        role_arns: vec!["arn:aws:iam::111122223333:role/ops".into()],
        ..team_a()
    };
    assert!(scope.permits_role(TEAM_A_ROLE));
    assert!(scope.permits_role("arn:aws:iam::111122223333:role/team-a/deep/x"));
    assert!(!scope.permits_role(TEAM_B_ROLE));
    // A prefix is a path prefix, not a name prefix.
    assert!(!scope.permits_role("arn:aws:iam::111122223333:role/team-ab/x"));
    assert!(!scope.permits_role("arn:aws:iam::111122223333:role/team-a"));
    assert!(scope.permits_role("arn:aws:iam::111122223333:role/ops"));
    assert!(!scope.permits_role("arn:aws:iam::111122223333:role/ops2"));
    assert!(!scope.permits(&SessionSubject::Root, None));
    assert!(IssuingScope::unscoped().permits(&SessionSubject::Root, None));
    assert!(IssuingScope::unscoped().permits_role(TEAM_B_ROLE));
    assert!(team_a().validate().is_ok());
    let bad = IssuingScope {
        role_paths: vec!["team-a".into()],
        ..team_a()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn a_sidecar_mints_within_scope_and_another_verifies_with_public_keys_only() {
    let (control_plane, sidecar) = rings(1);
    assert!(
        !sidecar.can_sign(),
        "a sidecar's keyring holds no private issuer key"
    );
    let credential = credential(&control_plane, A, team_a(), NOW);
    // Delivered to the sidecar: the seed and the certificate, checked on receipt.
    let received =
        IssuingCredential::try_new(&sidecar, A, credential.certificate(), &[9; 32]).unwrap();
    let claims = role_claims(A, NOW + 10);
    let (token, secret) = sidecar
        .mint_certified(&received, &claims, Some(TEAM_A_ROLE))
        .unwrap();
    assert!(token.starts_with("iamlet2.111122223333.k1."));
    assert!(token.len() < crate::jose::session::MAX_TOKEN_LEN);
    // Another sidecar of the tenant.
    let (_, other) = rings(1);
    let verified = other.verify(A, &token, NOW + 20).unwrap();
    assert_eq!(verified.claims, claims);
    assert!(verified.within_certificate(Some(TEAM_A_ROLE)));
    assert!(!verified.within_certificate(Some(TEAM_B_ROLE)));
    other.check_secret(&verified, &secret).unwrap();
}

#[test]
fn a_keyring_that_dropped_or_replaced_the_issuer_key_mints_nothing() {
    let (control_plane, sidecar) = rings(1);
    let received = IssuingCredential::try_new(
        &sidecar,
        A,
        credential(&control_plane, A, IssuingScope::unscoped(), NOW).certificate(),
        &[9; 32],
    )
    .unwrap();
    let claims = role_claims(A, NOW + 10);
    // The tenant's keys after a rotation that kept k1: still certified.
    let shipped = |k: Key| Key { seed: None, ..k };
    let rotated = IssuerKeyring::try_new(&[shipped(key(1)), shipped(key(2))]).unwrap();
    let (token, _) = rotated
        .mint_certified(&received, &claims, Some(TEAM_A_ROLE))
        .unwrap();
    assert!(rings(1).1.verify(A, &token, NOW + 20).is_ok());
    // k1 dropped, or another key under the id k1 (the id alone does not certify): the
    // certificate no longer verifies there, so nothing is minted.
    let dropped = IssuerKeyring::try_new(&[shipped(key(2))]).unwrap();
    let replaced = IssuerKeyring::try_new(&[Key {
        key_id: "k1".into(),
        ..shipped(key(3))
    }])
    .unwrap();
    for (what, ring) in [("dropped", dropped), ("replaced", replaced)] {
        assert!(
            ring.verify_certificate(A, received.certificate()).is_err(),
            "{what}"
        );
        assert_eq!(
            ring.mint_certified(&received, &claims, Some(TEAM_A_ROLE)),
            Err(SessionTokenError::NoIssuingCertificate),
            "{what}"
        );
    }
}

#[test]
fn an_out_of_scope_role_is_refused_at_minting() {
    let (control_plane, sidecar) = rings(1);
    let credential = credential(&control_plane, A, team_a(), NOW);
    let claims = role_claims(A, NOW + 10);
    assert_eq!(
        sidecar.mint_certified(&credential, &claims, Some(TEAM_B_ROLE)),
        Err(SessionTokenError::Certificate(CertificateError::OutOfScope))
    );
    let user = SessionClaims {
        subject: SessionSubject::User {
            user_name: "alice".into(),
            user_id: "AIDAAAAAAAAAAAAAAAAA".into(),
        },
        ..claims
    };
    assert_eq!(
        sidecar.mint_certified(&credential, &user, None),
        Err(SessionTokenError::Certificate(CertificateError::OutOfScope))
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let (control_plane, sidecar) = rings(1);
    let credential = credential(&control_plane, A, IssuingScope::unscoped(), NOW);
    let expires = NOW + CERTIFICATE_LIFETIME_SECONDS;
    // Minting after expiry (with the skew) or before the start.
    let late = role_claims(A, expires + 61);
    assert_eq!(
        sidecar.mint_certified(&credential, &late, Some(TEAM_A_ROLE)),
        Err(SessionTokenError::Certificate(CertificateError::Expired))
    );
    let early = role_claims(A, NOW - 61);
    assert_eq!(
        sidecar.mint_certified(&credential, &early, Some(TEAM_A_ROLE)),
        Err(SessionTokenError::Certificate(
            CertificateError::NotYetValid
        ))
    );
    // A session that would outlive its certificate.
    let long = role_claims(A, expires - 60);
    assert_eq!(
        sidecar.mint_certified(&credential, &long, Some(TEAM_A_ROLE)),
        Err(SessionTokenError::Certificate(
            CertificateError::OutlivesCertificate
        ))
    );
    assert!(credential.needs_renewal(expires - RENEW_BELOW_SECONDS + 1));
    assert!(!credential.needs_renewal(NOW));
}

/// A token whose certificate window does not cover its issue time is refused by verifiers
/// even if a (compromised) sidecar signs it with the certified key.
#[test]
fn tokens_issued_outside_the_certificate_window_do_not_verify() {
    let (control_plane, sidecar) = rings(1);
    let credential = credential(&control_plane, A, IssuingScope::unscoped(), NOW);
    let expires = NOW + CERTIFICATE_LIFETIME_SECONDS;
    for claims in [role_claims(A, NOW - 3600), role_claims(A, expires + 120), {
        let mut c = role_claims(A, NOW);
        c.expires_at = expires + 3600;
        c
    }] {
        let token = forge_certified(&credential, &claims);
        assert_eq!(
            sidecar.verify(A, &token, claims.issued_at + 1),
            Err(SessionTokenError::Invalid)
        );
    }
    // The same forgery inside the window does verify: the check above is the window's.
    let ok = forge_certified(&credential, &role_claims(A, NOW + 5));
    assert!(sidecar.verify(A, &ok, NOW + 6).is_ok());
}

/// Signs claims with the certified key without the minting checks (what a compromised
/// sidecar can do).
fn forge_certified(credential: &IssuingCredential, claims: &SessionClaims) -> String {
    let payload = crate::jose::session::tests_support::encode_claims(claims);
    let message = crate::jose::session::tests_support::certified_message(
        &claims.tenant,
        credential.certificate(),
        &payload,
    );
    let signature = credential.sign(&message);
    format!(
        "iamlet2.{}.{}.{payload}.{}",
        claims.tenant,
        credential.certificate(),
        B64.encode(signature)
    )
}

#[test]
fn certificates_of_another_tenant_or_a_foreign_issuer_are_refused() {
    let (control_plane_a, sidecar_a) = rings(1);
    let (control_plane_b, sidecar_b) = rings(2);
    // Tenant B's issuer certifying for tenant A: A's sidecars do not know B's key.
    let foreign = credential(&control_plane_b, A, IssuingScope::unscoped(), NOW);
    assert_eq!(
        sidecar_a
            .verify_certificate(A, foreign.certificate())
            .unwrap_err(),
        CertificateError::UnknownIssuer
    );
    let token = forge_certified(&foreign, &role_claims(A, NOW + 5));
    assert_eq!(
        sidecar_a.verify(A, &token, NOW + 6),
        Err(SessionTokenError::Invalid)
    );
    // A's certificate used for tenant B (B's keyring with A's key id would not hold it either).
    let of_a = credential(&control_plane_a, A, IssuingScope::unscoped(), NOW);
    assert!(sidecar_b.verify_certificate(B, of_a.certificate()).is_err());
    let (token_a, _) = sidecar_a
        .mint_certified(&of_a, &role_claims(A, NOW + 5), Some(TEAM_A_ROLE))
        .unwrap();
    assert_eq!(
        sidecar_b.verify(B, &token_a, NOW + 6),
        Err(SessionTokenError::Invalid)
    );
    // A key with the same id but another key: the signature, not the id, decides.
    let impostor = Key {
        key_id: "k1".into(),
        ..key(3)
    };
    let impostor_ring = IssuerKeyring::try_new(&[impostor]).unwrap();
    let forged = credential(&impostor_ring, A, IssuingScope::unscoped(), NOW);
    assert_eq!(
        sidecar_a
            .verify_certificate(A, forged.certificate())
            .unwrap_err(),
        CertificateError::BadSignature
    );
    let token = forge_certified(&forged, &role_claims(A, NOW + 5));
    assert_eq!(
        sidecar_a.verify(A, &token, NOW + 6),
        Err(SessionTokenError::Invalid)
    );
    // Receiving a foreign certificate fails on receipt too.
    assert!(IssuingCredential::try_new(&sidecar_a, A, forged.certificate(), &[9; 32]).is_err());
}

#[test]
fn a_tampered_certificate_or_a_mismatched_key_is_refused() {
    let (control_plane, sidecar) = rings(1);
    let narrow = credential(&control_plane, A, team_a(), NOW);
    let (token, _) = sidecar
        .mint_certified(&narrow, &role_claims(A, NOW + 5), Some(TEAM_A_ROLE))
        .unwrap();
    // Widen the scope inside the certificate: its signature breaks.
    let (key_id, rest) = narrow.certificate().split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut claims: CertificateClaims =
        serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    claims.scope = IssuingScope::unscoped();
    let widened = format!(
        "{key_id}.{}.{signature}",
        B64.encode(serde_json::to_vec(&claims).unwrap())
    );
    assert_eq!(
        sidecar.verify_certificate(A, &widened).unwrap_err(),
        CertificateError::BadSignature
    );
    let swapped = token.replace(narrow.certificate(), &widened);
    assert_ne!(swapped, token);
    assert_eq!(
        sidecar.verify(A, &swapped, NOW + 6),
        Err(SessionTokenError::Invalid)
    );
    // Every bit flip of a certified token is refused uniformly.
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        for bit in 0..7 {
            let mut flipped = bytes.to_vec();
            flipped[i] ^= 1 << bit;
            let text = String::from_utf8(flipped).unwrap();
            assert!(
                sidecar.verify(A, &text, NOW + 6).is_err(),
                "flip of bit {bit} at {i} was accepted"
            );
        }
    }
    // The certified key is the only one that goes with the certificate.
    assert_eq!(
        IssuingCredential::try_new(&sidecar, A, narrow.certificate(), &[8; 32]).unwrap_err(),
        CertificateError::KeyMismatch
    );
    assert_eq!(
        sidecar
            .verify_certificate(A, "k1.not-base64!.x")
            .unwrap_err(),
        CertificateError::Malformed
    );
}

#[test]
fn a_sidecar_cannot_certify_or_mint_unscoped() {
    let (_, sidecar) = rings(1);
    assert_eq!(
        sidecar
            .certify(A, "me", IssuingScope::unscoped(), &[1; 32], NOW)
            .unwrap_err(),
        CertificateError::NoSigningKey
    );
    assert_eq!(
        sidecar.mint(&role_claims(A, NOW)),
        Err(SessionTokenError::NoActiveKey)
    );
}

#[test]
fn debug_output_shows_no_key() {
    let (control_plane, _) = rings(1);
    let credential = credential(&control_plane, A, team_a(), NOW);
    let debug = format!("{credential:?}");
    assert!(debug.contains("sidecar-1.demo.svc"));
    assert!(!debug.contains(&B64.encode([9u8; 32])));
}

#[test]
fn a_pending_grant_becomes_the_credential_at_the_first_look_and_a_bad_one_never_does() {
    let (control_plane, sidecar) = rings(1);
    let held = IssuingCredentials::new();
    assert!(held.current(A, &sidecar).is_none(), "nothing delivered yet");
    let first = credential(&control_plane, A, team_a(), NOW);
    held.stash(A.into(), first.certificate().to_owned(), vec![9; 32]);
    // A mint that comes before the stream's own check resolves it.
    let current = held.current(A, &sidecar).unwrap();
    assert_eq!(current.certificate(), first.certificate());
    assert!(held.resolve(A, &sidecar).is_none(), "no longer pending");
    // A grant whose seed does not match its certificate is refused; the previous one serves.
    let second = credential(&control_plane, A, team_a(), NOW + 60);
    held.stash(A.into(), second.certificate().to_owned(), vec![8; 32]);
    assert!(matches!(held.resolve(A, &sidecar), Some(Err(_))));
    assert_eq!(
        held.current(A, &sidecar).unwrap().certificate(),
        first.certificate()
    );
    // One certified by a foreign issuer is refused at the first look too.
    let (foreign, _) = rings(2);
    let forged = credential(&foreign, A, team_a(), NOW);
    held.stash(A.into(), forged.certificate().to_owned(), vec![9; 32]);
    assert_eq!(
        held.current(A, &sidecar).unwrap().certificate(),
        first.certificate()
    );
    held.remove(A);
    assert!(held.current(A, &sidecar).is_none());
}
