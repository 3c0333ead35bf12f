//! Verification keys from configuration: one PEM public key, or a JWKS file whose keys are
//! picked by `kid`. The file is re-read when its modification time changes, so keys rotate
//! without a restart; a file that stops parsing keeps the last good keys (and says so).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Where the keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// One public key, PEM (Ed25519, P-256 or RSA).
    Pem(PathBuf),
    /// A JWKS document; tokens name their key with `kid`.
    Jwks(PathBuf),
}

impl KeySource {
    fn path(&self) -> &PathBuf {
        match self {
            Self::Pem(path) | Self::Jwks(path) => path,
        }
    }
}

/// One verification key and the algorithm it verifies.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: String, source: std::io::Error },
    #[error("{path} holds no usable public key: {reason}")]
    Unusable { path: String, reason: String },
}

/// The keys in force, shared by every request, swapped whole when the file changes.
#[derive(Clone)]
pub struct KeyRing {
    source: KeySource,
    current: Arc<RwLock<Loaded>>,
}

struct Loaded {
    keys: Arc<[Key]>,
    modified: Option<SystemTime>,
}

impl KeyRing {
    /// Loads the keys now: a configuration that names no usable key is an error at start.
    pub fn load(source: KeySource) -> Result<Self, KeyError> {
        let (keys, modified) = read(&source)?;
        Ok(Self { source, current: Arc::new(RwLock::new(Loaded { keys, modified })) })
    }

    pub fn keys(&self) -> Arc<[Key]> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).keys.clone()
    }

    /// Re-reads the file if it changed since it was loaded. Returns whether keys changed.
    pub fn refresh(&self) -> bool {
        let modified = std::fs::metadata(self.source.path()).and_then(|m| m.modified()).ok();
        let known = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).modified;
        if modified.is_none() || modified == known {
            return false;
        }
        match read(&self.source) {
            Ok((keys, modified)) => {
                tracing::info!(path = %self.source.path().display(), keys = keys.len(), "verification keys reloaded");
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Loaded { keys, modified };
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "verification keys not reloaded; keeping the previous ones");
                false
            }
        }
    }

    /// Checks the file for changes every `every` until the ring is dropped.
    pub fn watch(&self, every: Duration) {
        let ring = Arc::downgrade(&self.current);
        let source = self.source.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(current) = ring.upgrade() else { return };
                KeyRing { source: source.clone(), current }.refresh();
            }
        });
    }
}

fn read(source: &KeySource) -> Result<(Arc<[Key]>, Option<SystemTime>), KeyError> {
    let path = source.path();
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| KeyError::Unreadable { path: shown.clone(), source })?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let unusable = |reason: String| KeyError::Unusable { path: shown.clone(), reason };
    let keys = match source {
        KeySource::Pem(_) => vec![from_pem(&bytes).map_err(unusable)?],
        KeySource::Jwks(_) => from_jwks(&bytes).map_err(unusable)?,
    };
    Ok((keys.into(), modified))
}

/// Ed25519 first (the mesh's own), then P-256, then RSA.
fn from_pem(pem: &[u8]) -> Result<Key, String> {
    let tried = [
        (Algorithm::EdDSA, DecodingKey::from_ed_pem(pem)),
        (Algorithm::ES256, DecodingKey::from_ec_pem(pem)),
        (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
    ];
    tried
        .into_iter()
        .find_map(|(algorithm, key)| key.ok().map(|key| Key { kid: None, algorithm, key }))
        .ok_or_else(|| "not an Ed25519, P-256 or RSA public key in PEM".to_owned())
}

/// Every asymmetric key of the set; symmetric (`oct`) keys are refused outright, since
/// anyone holding a verification key could then sign.
fn from_jwks(json: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::OctetKey(_) => return Err("symmetric (oct) keys are not accepted".into()),
            AlgorithmParameters::EllipticCurve(_) => return Err("only the P-256 curve is accepted".into()),
            _ => return Err(format!("key {:?}: an unknown key type", jwk.common.key_id)),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {:?}: {e}", jwk.common.key_id))?;
        keys.push(Key { kid: jwk.common.key_id.clone(), algorithm, key });
    }
    if keys.is_empty() {
        return Err("the set has no keys".into());
    }
    Ok(keys)
}
