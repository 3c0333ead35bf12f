//! Bearer tokens for a gateway with authentication on: loadgen holds an Ed25519 signing key
//! (the devstack's, one given, or one it made for a gateway it spawned) and mints the EdDSA
//! JWTs the gateway verifies (API.md), as `devstack token` does (devstack/src/dev_key.rs).
//! Tokens are minted before the clock starts where the users are known, and cached per user,
//! so a run measures the gateway verifying them, not loadgen signing them.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::HeaderValue;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

/// The devstack's signing key, relative to where loadgen runs (the workspace root).
pub const DEVSTACK_KEY: &str = ".devstack/jwt-signing.pk8";
/// The user the admin token is for (the devstack's default admin).
pub const ADMIN_USER: i64 = 1;
/// What `devstack token` gives too; tokens are not renewed during a run.
const TTL_SECS: i64 = 3600;
/// Tokens minted at once per blocking task when minting ahead of a run.
const MINT_CHUNK: usize = 4_096;

/// The SPKI DER prefix of an Ed25519 public key (RFC 8410); the raw 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A signing key and the `Authorization` values minted with it, one per user.
pub struct Credentials {
    signing: EncodingKey,
    admin: HeaderValue,
    /// Whole header values (`Bearer <jwt>`): a request only clones one (a reference count).
    users: Mutex<HashMap<i64, HeaderValue>>,
    /// The public key PEM written for a spawned gateway; removed with these credentials.
    public_pem: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    // Never the key, nor a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("public_pem", &self.public_pem).finish_non_exhaustive()
    }
}

impl Credentials {
    /// The key at `path` (PKCS#8 DER).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let pkcs8 = std::fs::read(path).with_context(|| format!("cannot read the signing key {}", path.display()))?;
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|_| anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key", path.display()))?;
        Self::from_pkcs8(&pkcs8, None)
    }

    /// `--jwt-signing-key` if given, else the devstack's key if there is one here, else none
    /// (a gateway with authentication off).
    pub fn discover(path: Option<&Path>) -> anyhow::Result<Option<Arc<Self>>> {
        let devstack = Path::new(DEVSTACK_KEY);
        match path {
            Some(path) => Ok(Some(Arc::new(Self::load(path)?))),
            None if devstack.is_file() => Ok(Some(Arc::new(Self::load(devstack)?))),
            None => Ok(None),
        }
    }

    /// A fresh key for a gateway loadgen spawns, its public half written to a temporary PEM
    /// ([`Self::public_pem`]) for `GATEWAY_JWT_PUBLIC_KEY_FILE`.
    pub fn generate() -> anyhow::Result<Self> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("the system random source failed; no signing key was made"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| anyhow::anyhow!("bad generated key"))?;
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(pair.public_key().as_ref());
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der));
        let path = std::env::temp_dir().join(format!("loadgen-{}jwt-public.pem", kit::testing::unique_prefix()));
        let mut file = std::fs::File::create_new(&path).with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(pem.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        Self::from_pkcs8(pkcs8.as_ref(), Some(path))
    }

    fn from_pkcs8(pkcs8: &[u8], public_pem: Option<PathBuf>) -> anyhow::Result<Self> {
        let signing = EncodingKey::from_ed_der(pkcs8);
        let admin = bearer(&signing, ADMIN_USER, true)?;
        Ok(Self { signing, admin, users: Mutex::default(), public_pem })
    }

    /// The PEM of a generated key's public half.
    pub fn public_pem(&self) -> Option<&Path> {
        self.public_pem.as_deref()
    }

    /// `Bearer <token>` of an admin.
    pub fn admin(&self) -> HeaderValue {
        self.admin.clone()
    }

    /// `Bearer <token>` of `user`, minted on its first use (better ahead: [`Self::mint_ahead`]).
    pub fn user(&self, user: i64) -> HeaderValue {
        if let Some(value) = self.users.lock().unwrap_or_else(PoisonError::into_inner).get(&user) {
            return value.clone();
        }
        // Minted outside the lock. Signing cannot fail for a key that signed the admin token;
        // if it did, the gateway's 401s would show it in the run's errors.
        let value = bearer(&self.signing, user, false).unwrap_or(HeaderValue::from_static("Bearer unsigned"));
        self.users.lock().unwrap_or_else(PoisonError::into_inner).entry(user).or_insert(value).clone()
    }

    /// Mints the tokens of `users` now, on every core, so the run finds them cached.
    pub async fn mint_ahead(self: &Arc<Self>, users: impl Iterator<Item = i64>) -> anyhow::Result<()> {
        let users: Vec<i64> = users.collect();
        let tasks = users.chunks(MINT_CHUNK).map(|chunk| {
            let (me, chunk) = (self.clone(), chunk.to_vec());
            tokio::task::spawn_blocking(move || {
                let minted = chunk
                    .iter()
                    .map(|&user| Ok((user, bearer(&me.signing, user, false)?)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                me.users.lock().unwrap_or_else(PoisonError::into_inner).extend(minted);
                anyhow::Ok(())
            })
        });
        for done in futures::future::join_all(tasks).await {
            done.context("a minting task panicked")??;
        }
        Ok(())
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        if let Some(path) = &self.public_pem {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `Bearer <EdDSA JWT>` for `user`: `iat` now, `exp` in [`TTL_SECS`], `roles: ["admin"]` if admin.
fn bearer(signing: &EncodingKey, user: i64, admin: bool) -> anyhow::Result<HeaderValue> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let roles: &[&str] = if admin { &["admin"] } else { &[] };
    let claims = json!({"sub": user.to_string(), "iat": now, "exp": now + TTL_SECS, "roles": roles});
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, signing).context("cannot sign")?;
    let value = HeaderValue::from_str(&format!("Bearer {token}")).context("a token is not a header value")?;
    ensure!(!value.is_empty(), "empty token");
    Ok(value)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::Value;

    use super::*;

    fn claims(value: &HeaderValue, key: &DecodingKey) -> Value {
        let token = value.to_str().unwrap().strip_prefix("Bearer ").unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Value>(token, key, &validation).unwrap().claims
    }

    #[tokio::test]
    async fn tokens_carry_the_user_and_role_and_are_minted_once_per_user() {
        let creds = Arc::new(Credentials::generate().unwrap());
        let pem_path = creds.public_pem().unwrap().to_owned();
        let key = DecodingKey::from_ed_pem(&std::fs::read(&pem_path).unwrap()).unwrap();

        let user = claims(&creds.user(42), &key);
        assert_eq!(user["sub"], "42");
        assert_eq!(user["roles"], json!([]));
        let (iat, exp) = (user["iat"].as_i64().unwrap(), user["exp"].as_i64().unwrap());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((now - 5..=now).contains(&iat), "iat {iat} is now ({now})");
        assert_eq!(exp - iat, TTL_SECS);
        let admin = claims(&creds.admin(), &key);
        assert_eq!((admin["sub"].as_str(), admin["roles"].clone()), (Some("1"), json!(["admin"])));

        // The same bytes, not a new token: cached.
        assert_eq!(creds.user(42).as_bytes().as_ptr(), creds.user(42).as_bytes().as_ptr());
        creds.mint_ahead(100..110).await.unwrap();
        assert_eq!(creds.users.lock().unwrap().len(), 11);
        assert_eq!(claims(&creds.user(105), &key)["sub"], "105");
        assert_eq!(creds.users.lock().unwrap().len(), 11, "minted ahead, not again");

        drop(creds);
        assert!(!pem_path.exists(), "the temporary PEM goes with the key");
    }
}
