//! Verifying one bearer token, and remembering the tokens already verified.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{AuthError, KeyRing, Principal};

/// API.md allows at most 5 s of clock leeway.
pub const MAX_LEEWAY_SECS: u64 = 5;

#[derive(Clone, Debug)]
pub struct VerifierSettings {
    /// `iss` every token must carry, when set.
    pub issuer: Option<String>,
    /// An `aud` every token must include, when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`; capped at [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
    /// Verified tokens remembered at most (each ~100 bytes).
    pub cache_capacity: usize,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self { issuer: None, audience: None, leeway_secs: MAX_LEEWAY_SECS, cache_capacity: 100_000 }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    iat: Option<i64>,
    exp: i64,
    #[serde(default)]
    roles: Vec<String>,
}

pub struct Verifier {
    keys: KeyRing,
    settings: VerifierSettings,
    cache: TokenCache,
    /// Signature checks done, for the cost measurement and the cache's tests.
    signature_checks: AtomicU64,
}

impl Verifier {
    pub fn new(keys: KeyRing, mut settings: VerifierSettings) -> Self {
        settings.leeway_secs = settings.leeway_secs.min(MAX_LEEWAY_SECS);
        let cache = TokenCache::new(settings.cache_capacity);
        Self { keys, settings, cache, signature_checks: AtomicU64::new(0) }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
    }

    /// The principal of `token`, from the cache while it is unexpired, else verified.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = kit::time::now_millis().timestamp();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(principal) = self.cache.get(&digest, now) {
            return Ok(principal);
        }
        let (principal, exp) = self.verify_signed(token, now)?;
        self.cache.put(digest, principal.clone(), exp, now);
        Ok(principal)
    }

    fn verify_signed(&self, token: &str, now: i64) -> Result<(Principal, i64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        // Only asymmetric algorithms: with HMAC, a verification key would also sign, and a
        // public key sent as an HMAC secret is the classic confusion attack.
        if !matches!(header.alg, Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256) {
            return Err(AuthError::AlgorithmRefused);
        }
        let keys = self.keys.keys();
        let candidates: Vec<_> = keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey);
        }
        let validation = self.validation(header.alg);
        let mut last = AuthError::BadSignature;
        for key in candidates {
            self.signature_checks.fetch_add(1, Ordering::Relaxed);
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return self.principal(data.claims, now),
                Err(err) => {
                    last = refusal(err.kind());
                    if last != AuthError::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.required_spec_claims = HashSet::from(["exp".to_owned(), "sub".to_owned()]);
        // jsonwebtoken checks `iss` and `aud` only when the token carries them: a configured
        // one must also be required, or a token without it would pass.
        match &self.settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        validation
    }

    fn principal(&self, claims: Claims, now: i64) -> Result<(Principal, i64), AuthError> {
        // A token issued in the future comes from a clock too far ahead, or was forged to
        // outlive its key: refused like an early `nbf`.
        if claims.iat.is_some_and(|iat| iat > now + self.settings.leeway_secs as i64) {
            return Err(AuthError::NotYetValid);
        }
        let user_id = claims
            .sub
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0 && claims.sub.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(AuthError::BadSubject)?;
        let admin = claims.roles.iter().any(|r| r == "admin");
        Ok((Principal { user_id, admin }, claims.exp))
    }
}

fn refusal(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_) => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            AuthError::AlgorithmRefused
        }
        _ => AuthError::Malformed,
    }
}

/// Verified tokens by their SHA-256 (a token's principal is never served for another token),
/// each until its `exp`. Bounded: when full, expired entries go first, and if none had
/// expired the map is emptied (verification is only repeated, never skipped).
struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (Principal, i64)>>,
    capacity: usize,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity }
    }

    fn get(&self, digest: &[u8; 32], now: i64) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(digest).filter(|(_, exp)| *exp > now).map(|(principal, _)| principal.clone())
    }

    fn put(&self, digest: [u8; 32], principal: Principal, exp: i64, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, exp)| *exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(digest, (principal, exp));
    }
}
