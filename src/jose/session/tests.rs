use super::*;
use ring::digest;

const A: &str = "111122223333";
const B: &str = "444455556666";

/// How many keys a tenant keeps, as the directory does.
const RETAINED_ISSUER_KEYS: usize = 3;

/// A tenant's issuer keys as the directory keeps them, without the directory (a layer above
/// this module): the same rotation, with a counter for a random source.
#[derive(Clone)]
struct Tenant {
    issuer_keys: Vec<Key>,
}

#[derive(Clone)]
struct Key {
    key_id: String,
    public_key: Vec<u8>,
    private_key: Seed,
    /// False for the key as a sidecar holds it: no private half.
    has_private: bool,
    session_secret: Option<Seed>,
    active: bool,
}

impl Key {
    /// The key as sidecars receive it (the directory's `IssuerKey::for_sidecars`).
    fn for_sidecars(&self) -> Self {
        Self {
            has_private: false,
            session_secret: Some(Seed(
                session_secret_from_seed(self.private_key.expose()).unwrap(),
            )),
            ..self.clone()
        }
    }
}

/// A tenant's keys as its sidecars hold them.
fn shipped(t: &Tenant) -> Vec<Key> {
    t.issuer_keys.iter().map(Key::for_sidecars).collect()
}

#[derive(Clone)]
struct Seed(String);

struct IdGenerator(u64);

impl Seed {
    fn new(text: &str) -> Self {
        Self(text.to_owned())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl IdGenerator {
    fn seeded(seed: u64) -> Self {
        Self(seed)
    }
}

impl IssuerKeySource for Key {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    fn private_seed_base64(&self) -> Option<&str> {
        self.has_private.then(|| self.private_key.expose())
    }

    fn session_secret_base64(&self) -> Option<&str> {
        self.session_secret.as_ref().map(Seed::expose)
    }

    fn active(&self) -> bool {
        self.active
    }
}

impl Tenant {
    fn rotate_issuer_key(&mut self, ids: &mut IdGenerator, _now: i64) -> Result<(), ()> {
        ids.0 += 1;
        let hash = digest::digest(&digest::SHA256, &ids.0.to_be_bytes());
        let seed = &hash.as_ref()[..32];
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| ())?;
        let key_id: String = hash.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for old in &mut self.issuer_keys {
            old.active = false;
        }
        self.issuer_keys.push(Key {
            key_id: format!("k{key_id}"),
            public_key: pair.public_key().as_ref().to_vec(),
            private_key: Seed(base64::engine::general_purpose::STANDARD.encode(seed)),
            has_private: true,
            session_secret: None,
            active: true,
        });
        let excess = self.issuer_keys.len().saturating_sub(RETAINED_ISSUER_KEYS);
        self.issuer_keys.drain(..excess);
        Ok(())
    }
}

fn tenant(_account: &str, seed: u64) -> Tenant {
    let mut t = Tenant {
        issuer_keys: Vec::new(),
    };
    t.rotate_issuer_key(&mut IdGenerator::seeded(seed), 0)
        .unwrap();
    t
}

fn claims(tenant: &str, at: i64) -> SessionClaims {
    SessionClaims {
        tenant: tenant.into(),
        access_key_id: "ASIAAAAAAAAAAAAAAAAA".into(),
        token_id: "TOKENID".into(),
        subject: SessionSubject::Role {
            role_name: "app".into(),
            role_id: "AROAAAAAAAAAAAAAAAAAA".into(),
            session_name: "s".into(),
            chained: false,
            federated_provider: None,
        },
        issued_at: at,
        expires_at: at + 3600,
        source_identity: Some("alice".into()),
        mfa_authenticated_at: None,
        session_policy: Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
        policy_arns: vec![],
        tags: vec![("Project".into(), "x".into())],
        transitive_tag_keys: vec![],
    }
}

fn at(secs: i64) -> i64 {
    secs
}

#[test]
fn a_minted_token_verifies_and_its_secret_checks_out() {
    let ring = IssuerKeyring::try_new(&tenant(A, 1).issuer_keys).unwrap();
    let c = claims(A, 1_000);
    let (token, secret) = ring.mint(&c).unwrap();
    assert_eq!(secret.len(), 40);
    assert!(token.starts_with("iamlet1.111122223333.k"));
    let verified = ring.verify(A, &token, at(1_000)).unwrap();
    assert_eq!(verified.claims, c);
    ring.check_secret(&verified, &secret).unwrap();
    assert_eq!(ring.secret(&verified).unwrap(), secret);
    let mut wrong = secret.clone().into_bytes();
    wrong[0] ^= 1;
    assert_eq!(
        ring.check_secret(&verified, std::str::from_utf8(&wrong).unwrap()),
        Err(SessionTokenError::Invalid)
    );
    assert_eq!(
        ring.check_secret(&verified, &secret[..39]),
        Err(SessionTokenError::Invalid)
    );
}

/// RELIABILITY T17: every single-bit flip of a token, truncation and extension is refused
/// with the one uniform error, never accepted and never a panic.
#[test]
fn every_bit_flip_truncation_and_extension_is_refused_uniformly() {
    let ring = IssuerKeyring::try_new(&tenant(A, 1).issuer_keys).unwrap();
    let (token, _) = ring.mint(&claims(A, 1_000)).unwrap();
    let bytes = token.as_bytes();
    let mut checked = 0;
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.to_vec();
            flipped[i] ^= 1 << bit;
            let Ok(text) = String::from_utf8(flipped) else {
                continue; // not a string a gRPC field can carry
            };
            assert_eq!(
                ring.verify(A, &text, at(1_000)),
                Err(SessionTokenError::Invalid),
                "flip of bit {bit} at {i} was not refused"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        bytes.len() * 7,
        "every flip of the seven low bits of an ASCII token"
    );
    for len in 0..token.len() {
        assert_eq!(
            ring.verify(A, &token[..len], at(1_000)),
            Err(SessionTokenError::Invalid)
        );
    }
    for suffix in ["A", "=", ".", "==", ".x"] {
        assert_eq!(
            ring.verify(A, &format!("{token}{suffix}"), at(1_000)),
            Err(SessionTokenError::Invalid)
        );
    }
    // Padding added to the payload: the same bytes, another encoding.
    let parts: Vec<&str> = token.split('.').collect();
    let padded = format!(
        "{}.{}.{}.{}=.{}",
        parts[0], parts[1], parts[2], parts[3], parts[4]
    );
    assert_eq!(
        ring.verify(A, &padded, at(1_000)),
        Err(SessionTokenError::Invalid)
    );
    let oversized = format!("{token}{}", "A".repeat(MAX_TOKEN_LEN));
    assert_eq!(
        ring.verify(A, &oversized, at(1_000)),
        Err(SessionTokenError::Invalid)
    );
}

/// RELIABILITY T19: expiry with 60 s of skew; issue times more than 60 s ahead are refused.
#[test]
fn expiry_and_issue_time_allow_sixty_seconds_of_skew() {
    let ring = IssuerKeyring::try_new(&tenant(A, 1).issuer_keys).unwrap();
    let (token, _) = ring.mint(&claims(A, 1_000)).unwrap();
    let exp = 1_000 + 3600;
    assert!(ring.verify(A, &token, at(exp + 1)).is_ok(), "1 s past");
    assert!(ring.verify(A, &token, at(exp + 59)).is_ok(), "59 s past");
    assert!(ring.verify(A, &token, at(exp + 60)).is_ok(), "60 s past");
    assert_eq!(
        ring.verify(A, &token, at(exp + 61)),
        Err(SessionTokenError::Expired),
        "61 s past"
    );
    assert!(
        ring.verify(A, &token, at(1_000 - 30)).is_ok(),
        "issued 30 s ahead"
    );
    assert_eq!(
        ring.verify(A, &token, at(1_000 - 90)),
        Err(SessionTokenError::Invalid),
        "issued 90 s ahead"
    );
}

/// RELIABILITY T20: a token of tenant A presented for B, B's key id in an A token, an
/// unknown key id, a retired-and-dropped key: all refused.
#[test]
fn tokens_are_bound_to_their_tenant_and_key() {
    let ta = tenant(A, 1);
    let tb = tenant(B, 2);
    let ring_a = IssuerKeyring::try_new(&ta.issuer_keys).unwrap();
    let ring_b = IssuerKeyring::try_new(&tb.issuer_keys).unwrap();
    let (token, _) = ring_a.mint(&claims(A, 1_000)).unwrap();
    assert_eq!(
        ring_b.verify(B, &token, at(1_000)),
        Err(SessionTokenError::Invalid)
    );
    assert_eq!(
        ring_a.verify(B, &token, at(1_000)),
        Err(SessionTokenError::Invalid)
    );
    // Relabel the token as B's, with B's key id: the signature covers both.
    let parts: Vec<&str> = token.split('.').collect();
    let kid_b = &tb.issuer_keys[0].key_id;
    let relabeled = format!("iamlet1.{B}.{kid_b}.{}.{}", parts[3], parts[4]);
    assert_eq!(
        ring_b.verify(B, &relabeled, at(1_000)),
        Err(SessionTokenError::Invalid)
    );
    // A's claims signed by B's key, presented to A.
    let (forged, _) = ring_b.mint(&claims(A, 1_000)).unwrap();
    assert_eq!(
        ring_a.verify(A, &forged, at(1_000)),
        Err(SessionTokenError::Invalid)
    );
    // An unknown key id fails closed.
    let unknown = format!("iamlet1.{A}.kunknown.{}.{}", parts[3], parts[4]);
    assert_eq!(
        ring_a.verify(A, &unknown, at(1_000)),
        Err(SessionTokenError::Invalid)
    );
    // After rotations drop the signing key, its tokens no longer verify.
    let mut rotated = ta.clone();
    let mut ids = IdGenerator::seeded(7);
    for n in 0..RETAINED_ISSUER_KEYS {
        rotated.rotate_issuer_key(&mut ids, n as i64).unwrap();
    }
    let ring_rotated = IssuerKeyring::try_new(&rotated.issuer_keys).unwrap();
    assert_eq!(
        ring_rotated.verify(A, &token, at(1_000)),
        Err(SessionTokenError::Invalid)
    );
    // One rotation keeps the old key for verification and signs with the new one.
    let mut once = ta.clone();
    once.rotate_issuer_key(&mut ids, 5).unwrap();
    let ring_once = IssuerKeyring::try_new(&once.issuer_keys).unwrap();
    assert!(ring_once.verify(A, &token, at(1_000)).is_ok());
    let (new_token, _) = ring_once.mint(&claims(A, 1_000)).unwrap();
    assert!(!new_token.contains(&format!(".{}.", ta.issuer_keys[0].key_id)));
}

/// RELIABILITY T20: a key whose public half is not its private half's (a substituted or weak
/// key) refuses the keyring, so the snapshot carrying it is not applied.
#[test]
fn mismatched_or_malformed_issuer_keys_are_refused() {
    let mut t = tenant(A, 1);
    let other = tenant(B, 2);
    t.issuer_keys[0].public_key = other.issuer_keys[0].public_key.clone();
    assert!(IssuerKeyring::try_new(&t.issuer_keys).is_err());
    let mut small_order = tenant(A, 1);
    // The identity point: a small-order key that would accept forged signatures elsewhere.
    let mut identity = vec![0u8; 32];
    identity[0] = 1;
    small_order.issuer_keys[0].public_key = identity;
    assert!(IssuerKeyring::try_new(&small_order.issuer_keys).is_err());
    let mut bad_id = tenant(A, 1);
    bad_id.issuer_keys[0].key_id = "K.1".into();
    assert!(IssuerKeyring::try_new(&bad_id.issuer_keys).is_err());
    let mut bad_seed = tenant(A, 1);
    bad_seed.issuer_keys[0].private_key = Seed::new("not base64!");
    assert!(IssuerKeyring::try_new(&bad_seed.issuer_keys).is_err());
    let no_keys = IssuerKeyring::try_new::<Key>(&[]).unwrap();
    assert!(!no_keys.can_sign());
    assert!(matches!(
        no_keys.mint(&claims(A, 1)),
        Err(SessionTokenError::NoActiveKey)
    ));
}

#[test]
fn debug_output_names_keys_but_never_their_secrets() {
    let t = tenant(A, 1);
    let ring = IssuerKeyring::try_new(&t.issuer_keys).unwrap();
    let debug = format!("{ring:?}");
    assert!(debug.contains(&t.issuer_keys[0].key_id));
    assert!(!debug.contains(t.issuer_keys[0].private_key.expose()));
}

#[test]
fn constant_time_eq_compares_bytes_and_lengths() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(constant_time_eq(b"", b""));
    // Every position of a long string counts, in the whole words and in the tail.
    let long: Vec<u8> = (0..1037u32).map(|i| (i % 251) as u8).collect();
    assert!(constant_time_eq(&long, &long.clone()));
    for i in [0, 7, 8, 500, 1031, 1032, 1036] {
        let mut other = long.clone();
        other[i] ^= 0x40;
        assert!(!constant_time_eq(&long, &other), "byte {i}");
    }
}

/// Issue #20: sidecars hold the public keys and the session-secret keys only. Tokens minted
/// before (with the issuer key, `iamlet1`) still verify there, with the same secrets, because
/// a stored key's session-secret key is the HMAC its seed gave; and such a keyring cannot mint.
#[test]
fn keys_shipped_without_their_private_half_verify_old_tokens_and_cannot_mint() {
    let t = tenant(A, 1);
    let full = IssuerKeyring::try_new(&t.issuer_keys).unwrap();
    let sidecar = IssuerKeyring::try_new(&shipped(&t)).unwrap();
    let (token, secret) = full.mint(&claims(A, 1_000)).unwrap();
    let verified = sidecar.verify(A, &token, at(1_000)).unwrap();
    assert_eq!(verified.certificate, None);
    assert!(verified.within_certificate(Some("arn:aws:iam::111122223333:role/any")));
    sidecar.check_secret(&verified, &secret).unwrap();
    assert!(!sidecar.can_sign());
    assert_eq!(
        sidecar.mint(&claims(A, 1_000)),
        Err(SessionTokenError::NoActiveKey)
    );
    // A shipped key still must be a sane public key.
    let mut small = shipped(&t);
    small[0].public_key = vec![0u8; 32];
    assert!(IssuerKeyring::try_new(&small).is_err());
    // And must carry its session-secret key.
    let mut bare = shipped(&t);
    bare[0].session_secret = None;
    assert!(IssuerKeyring::try_new(&bare).is_err());
}

#[test]
fn a_tokens_tenant_field_is_the_tenant_the_whole_token_names() {
    let ring = IssuerKeyring::try_new(&tenant(A, 1).issuer_keys).unwrap();
    let (token, _) = ring.mint(&claims(A, 1_000)).unwrap();
    let certified = format!("iamlet2.{A}.k1.cp.cs.payload.{}", "s".repeat(86));
    for whole in [token.as_str(), certified.as_str()] {
        assert_eq!(token_tenant(whole), Some(A), "{whole}");
        assert_eq!(token_tenant_field(whole), Some(A), "{whole}");
        // Wherever the whole token still names a tenant, the field names the same one.
        for end in 0..whole.len() {
            if let Some(t) = token_tenant(&whole[..end]) {
                assert_eq!(token_tenant_field(&whole[..end]), Some(t));
            }
        }
    }
    // The field alone: a token that is not well formed past it still names its tenant (a
    // lookup finds no verified token equal to it), and nothing else names one.
    assert_eq!(token_tenant_field(&format!("iamlet1.{A}.x")), Some(A));
    for other in [
        String::new(),
        format!("iamlet1.{A}"),
        format!("iamlet3.{A}.x"),
        format!("xiamlet1.{A}.x"),
        "iamlet1.11112222333x.x".to_owned(),
        "iamlet1.1111222233334.x".to_owned(),
        "iamlet2..x".to_owned(),
    ] {
        assert_eq!(token_tenant_field(&other), None, "{other}");
    }
}
