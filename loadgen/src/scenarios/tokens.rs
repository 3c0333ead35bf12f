//! Bearer tokens for a gateway with authentication on: loadgen holds an Ed25519 signing key
//! (the devstack's, one given, or one it made for a gateway it spawned) and mints the EdDSA
//! JWTs the gateway verifies (API.md), as `devstack token` does (devstack/src/dev_key.rs).
//! Tokens are minted before the clock starts where the users are known, and cached per user,
//! so a run measures the gateway verifying them, not loadgen signing them.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, ensure};
use dev_token::Signer;
use reqwest::header::HeaderValue;

/// The devstack's signing key, relative to where loadgen runs (the workspace root).
pub const DEVSTACK_KEY: &str = ".devstack/jwt-signing.pk8";
/// The user the admin token is for (the devstack's default admin).
pub const ADMIN_USER: i64 = 1;
/// What `devstack token` gives too; tokens are not renewed during a run.
const TTL_SECS: u64 = 3600;
/// Tokens minted at once per blocking task when minting ahead of a run.
const MINT_CHUNK: usize = 4_096;

/// A signing key and the `Authorization` values minted with it, one per user.
pub struct Credentials {
    signer: Signer,
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
        let signer = Signer::from_pkcs8(&pkcs8).with_context(|| path.display().to_string())?;
        Self::new(signer, None)
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
        let signer = Signer::generate()?;
        let path = std::env::temp_dir().join(format!("loadgen-{}jwt-public.pem", kit::testing::unique_prefix()));
        let mut file = std::fs::File::create_new(&path).with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(signer.public_pem().as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        Self::new(signer, Some(path))
    }

    fn new(signer: Signer, public_pem: Option<PathBuf>) -> anyhow::Result<Self> {
        let admin = bearer(&signer, ADMIN_USER, true)?;
        Ok(Self { signer, admin, users: Mutex::default(), public_pem })
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
        let value = bearer(&self.signer, user, false).unwrap_or(HeaderValue::from_static("Bearer unsigned"));
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
                    .map(|&user| Ok((user, bearer(&me.signer, user, false)?)))
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
fn bearer(signer: &Signer, user: i64, admin: bool) -> anyhow::Result<HeaderValue> {
    let token = signer.mint(user, admin, TTL_SECS)?;
    let value = HeaderValue::from_str(&format!("Bearer {token}")).context("a token is not a header value")?;
    ensure!(!value.is_empty(), "empty token");
    Ok(value)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::{Value, json};

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
        assert_eq!(user["exp"].as_u64().unwrap() - user["iat"].as_u64().unwrap(), TTL_SECS);
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
