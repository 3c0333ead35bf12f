//! An Ed25519 signing key and the tokens it mints: what an identity provider does for the
//! gateway in production (API.md: the gateway only verifies), done here for the devstack
//! (`devstack token`), loadgen and the tests. One implementation, so the claims every tool
//! mints are the ones the gateway checks (`sub`, `iat`, `exp`, `roles`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

/// The SPKI DER prefix of an Ed25519 public key (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (32 bytes) }; the raw key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("not an Ed25519 PKCS#8 key")]
    NotEd25519,
    #[error("the system random source failed; no key was made")]
    Random,
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A private key able to mint tokens, with the PEM of its public half.
pub struct Signer {
    pkcs8: Vec<u8>,
    signing: EncodingKey,
    public_pem: String,
}

impl std::fmt::Debug for Signer {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("public_pem", &self.public_pem).finish_non_exhaustive()
    }
}

impl Signer {
    /// A new random key.
    pub fn generate() -> Result<Self, SignerError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).map_err(|_| SignerError::Random)?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// The key in `pkcs8` (DER), which must be Ed25519.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, SignerError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| SignerError::NotEd25519)?;
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(pair.public_key().as_ref());
        let public_pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der));
        Ok(Self { pkcs8: pkcs8.to_vec(), signing: EncodingKey::from_ed_der(pkcs8), public_pem })
    }

    /// The private key as PKCS#8 DER, to be stored (mode 0600).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a SubjectPublicKeyInfo PEM, for `GATEWAY_JWT_PUBLIC_KEY_FILE`.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// An EdDSA JWT for `user`: `iat` now, `exp` now + `ttl_secs`, `roles: ["admin"]` if admin.
    pub fn mint(&self, user: i64, admin: bool, ttl_secs: u64) -> Result<String, SignerError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.mint_claims(&json!({
            "sub": user.to_string(),
            "iat": now,
            "exp": now.saturating_add(ttl_secs),
            "roles": if admin { vec!["admin"] } else { vec![] },
        }))
    }

    /// An EdDSA JWT of any claims (for tests of what the gateway refuses).
    pub fn mint_claims(&self, claims: &serde_json::Value) -> Result<String, SignerError> {
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.signing)?)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::Value;

    use super::*;

    #[test]
    fn a_minted_token_verifies_against_the_public_pem_with_its_claims() {
        let signer = Signer::generate().unwrap();
        let again = Signer::from_pkcs8(signer.pkcs8()).unwrap();
        assert_eq!(again.public_pem(), signer.public_pem(), "the PEM derives from the private key");
        let key = DecodingKey::from_ed_pem(signer.public_pem().as_bytes()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "sub"]);

        let token = signer.mint(42, true, 60).unwrap();
        let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap().claims;
        assert_eq!(claims["sub"], "42");
        assert_eq!(claims["roles"], json!(["admin"]));
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 60);
        let user = jsonwebtoken::decode::<Value>(&again.mint(7, false, 1).unwrap(), &key, &validation).unwrap();
        assert_eq!(user.claims["roles"], json!([]));

        let other = Signer::generate().unwrap();
        assert!(jsonwebtoken::decode::<Value>(&other.mint(42, true, 60).unwrap(), &key, &validation).is_err());
        assert!(matches!(Signer::from_pkcs8(b"not a key"), Err(SignerError::NotEd25519)));
    }
}
