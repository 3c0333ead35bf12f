//! Real keys, real signatures: every way a token can be wrong is refused, a right one names
//! its user, keys rotate by file, and the cache spares repeated signature checks.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

use super::*;

/// An Ed25519 key pair: the signing key (PKCS#8) and the raw public key.
struct TestKey {
    signing: EncodingKey,
    public: Vec<u8>,
}

impl TestKey {
    fn new() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self { signing: EncodingKey::from_ed_der(pkcs8.as_ref()), public: pair.public_key().as_ref().to_vec() }
    }

    /// SubjectPublicKeyInfo PEM: the fixed Ed25519 prefix, then the key.
    fn pem(&self) -> String {
        let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der.extend_from_slice(&self.public);
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
    }

    fn jwk(&self, kid: &str) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&self.public), "kid": kid, "alg": "EdDSA", "use": "sig"})
    }

    fn sign(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.signing).unwrap()
    }
}

fn now() -> i64 {
    kit::time::now_millis().timestamp()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(kit::testing::unique_prefix());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn verifier(source: KeySource, settings: VerifierSettings) -> Verifier {
    Verifier::new(KeyRing::load(source).unwrap(), settings)
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 600, "iat": now()})
}

#[test]
fn a_good_token_names_its_user_and_admins_are_told_apart() {
    let key = TestKey::new();
    let v = verifier(KeySource::Pem(temp_file("k.pem", &key.pem())), VerifierSettings::default());
    assert_eq!(v.verify(&key.sign(&claims("7"), None)), Ok(Principal { user_id: 7, admin: false }));
    let admin = json!({"sub": "1", "exp": now() + 60, "roles": ["admin"]});
    assert_eq!(v.verify(&key.sign(&admin, None)), Ok(Principal { user_id: 1, admin: true }));
}

#[test]
fn every_bad_token_is_refused() {
    let (key, other) = (TestKey::new(), TestKey::new());
    let pem = key.pem();
    let v = verifier(KeySource::Pem(temp_file("k.pem", &pem)), VerifierSettings::default());
    let t = now();
    assert_eq!(v.verify("garbage"), Err(AuthError::Malformed));
    assert_eq!(v.verify(&other.sign(&claims("7"), None)), Err(AuthError::BadSignature), "another key's signature");
    assert_eq!(v.verify(&key.sign(&json!({"sub": "7", "exp": t - 60}), None)), Err(AuthError::Expired));
    assert!(v.verify(&key.sign(&json!({"sub": "7", "exp": t - 2}), None)).is_ok(), "within the 5 s leeway");
    assert_eq!(v.verify(&key.sign(&json!({"sub": "7"}), None)), Err(AuthError::Malformed), "exp is required");
    let early = json!({"sub": "7", "exp": t + 600, "nbf": t + 60});
    assert_eq!(v.verify(&key.sign(&early, None)), Err(AuthError::NotYetValid));
    let future = json!({"sub": "7", "exp": t + 600, "iat": t + 60});
    assert_eq!(v.verify(&key.sign(&future, None)), Err(AuthError::NotYetValid));
    for sub in ["0", "-3", "abc", "+7", ""] {
        assert_eq!(v.verify(&key.sign(&claims(sub), None)), Err(AuthError::BadSubject), "sub {sub:?}");
    }
    // alg none: a token with an empty signature.
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims("7").to_string())
    );
    assert!(matches!(v.verify(&unsigned), Err(AuthError::Malformed | AuthError::AlgorithmRefused)));
    // HMAC keyed with the public key itself (algorithm confusion).
    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("7"),
        &EncodingKey::from_secret(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(v.verify(&hmac), Err(AuthError::AlgorithmRefused));
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let key = TestKey::new();
    let settings =
        VerifierSettings { issuer: Some("mesh".into()), audience: Some("gateway".into()), ..Default::default() };
    let v = verifier(KeySource::Pem(temp_file("k.pem", &key.pem())), settings);
    let t = now() + 600;
    let good = json!({"sub": "7", "exp": t, "iss": "mesh", "aud": "gateway"});
    assert!(v.verify(&key.sign(&good, None)).is_ok());
    for bad in [
        json!({"sub": "7", "exp": t, "iss": "other", "aud": "gateway"}),
        json!({"sub": "7", "exp": t, "iss": "mesh", "aud": "other"}),
    ] {
        assert_eq!(v.verify(&key.sign(&bad, None)), Err(AuthError::WrongAudience));
    }
    assert!(v.verify(&key.sign(&json!({"sub": "7", "exp": t, "aud": "gateway"}), None)).is_err(), "iss missing");
    assert!(v.verify(&key.sign(&json!({"sub": "7", "exp": t, "iss": "mesh"}), None)).is_err(), "aud missing");
}

#[test]
fn jwks_keys_are_picked_by_kid_and_rotate_when_the_file_changes() {
    let (old, new) = (TestKey::new(), TestKey::new());
    let path = temp_file("keys.json", &json!({"keys": [old.jwk("old")]}).to_string());
    let v = verifier(KeySource::Jwks(path.clone()), VerifierSettings::default());
    let by_old = old.sign(&claims("7"), Some("old"));
    assert!(v.verify(&by_old).is_ok());
    assert_eq!(v.verify(&new.sign(&claims("7"), Some("new"))), Err(AuthError::UnknownKey));

    // Rotation: the new key is added, then the old one is withdrawn.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, json!({"keys": [new.jwk("new")]}).to_string()).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(1)).unwrap();
    assert!(v.keys().refresh(), "a changed file is read again");
    assert!(v.verify(&new.sign(&claims("8"), Some("new"))).is_ok());
    assert_eq!(
        v.verify(&old.sign(&claims("9"), Some("old"))),
        Err(AuthError::UnknownKey),
        "a withdrawn key verifies nothing new"
    );

    // A file that stops parsing keeps the last good keys.
    std::fs::write(&path, "not json").unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(2)).unwrap();
    assert!(!v.keys().refresh());
    assert!(v.verify(&new.sign(&claims("10"), Some("new"))).is_ok());
}

#[test]
fn symmetric_and_missing_keys_are_configuration_errors() {
    let oct = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}).to_string();
    assert!(KeyRing::load(KeySource::Jwks(temp_file("oct.json", &oct))).is_err());
    assert!(KeyRing::load(KeySource::Jwks(temp_file("empty.json", r#"{"keys": []}"#))).is_err());
    assert!(KeyRing::load(KeySource::Pem(temp_file("bad.pem", "not a key"))).is_err());
    assert!(KeyRing::load(KeySource::Pem(PathBuf::from("/nonexistent/key.pem"))).is_err());
}

#[test]
fn a_repeated_token_costs_one_signature_check_until_it_expires() {
    let key = TestKey::new();
    let v = verifier(KeySource::Pem(temp_file("k.pem", &key.pem())), VerifierSettings::default());
    let token = key.sign(&claims("7"), None);
    for _ in 0..100 {
        assert!(v.verify(&token).is_ok());
    }
    assert_eq!(v.signature_checks(), 1);
    let other = key.sign(&claims("8"), None);
    assert_eq!(
        v.verify(&other),
        Ok(Principal { user_id: 8, admin: false }),
        "another token is not served from the cache"
    );
    assert_eq!(v.signature_checks(), 2);
    let no_cache = verifier(
        KeySource::Pem(temp_file("k.pem", &key.pem())),
        VerifierSettings { cache_capacity: 0, ..Default::default() },
    );
    for _ in 0..10 {
        assert!(no_cache.verify(&token).is_ok());
    }
    assert_eq!(no_cache.signature_checks(), 10);
}

#[test]
fn es256_tokens_verify_against_a_p256_pem_key() {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // SubjectPublicKeyInfo of an uncompressed P-256 point.
    let mut der = hex_prefix("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    der.extend_from_slice(pair.public_key().as_ref());
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der));
    let v = verifier(KeySource::Pem(temp_file("p256.pem", &pem)), VerifierSettings::default());
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims("42"), &EncodingKey::from_ec_der(pkcs8.as_ref()))
            .unwrap();
    assert_eq!(v.verify(&token), Ok(Principal { user_id: 42, admin: false }));
    let ed = TestKey::new().sign(&claims("42"), None);
    assert_eq!(v.verify(&ed), Err(AuthError::UnknownKey), "an EdDSA token against a P-256 key");
}

fn hex_prefix(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// A throwaway RSA key made for this test with `openssl genrsa 2048` (ring cannot generate
/// RSA keys); it protects nothing.
const RSA_PRIVATE: &str = include_str!("testdata/rsa-test-private.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa-test-public.pem");

#[test]
fn rs256_tokens_verify_against_an_rsa_pem_key() {
    let v = verifier(KeySource::Pem(temp_file("rsa.pem", RSA_PUBLIC)), VerifierSettings::default());
    let signing = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims("5"), &signing).unwrap();
    assert_eq!(v.verify(&token), Ok(Principal { user_id: 5, admin: false }));
    let other_alg = jsonwebtoken::encode(&Header::new(Algorithm::RS512), &claims("5"), &signing).unwrap();
    assert_eq!(v.verify(&other_alg), Err(AuthError::AlgorithmRefused), "only RS256 of the RSA family");
}
