//! The devstack's own signing key: an Ed25519 key made once under `--state-dir` and reused,
//! so tokens minted before a restart still verify after it. The gateway only gets the
//! public half (a PEM file); `devstack token` and `--seed-demo` sign with the private half.
//! A development convenience only: in production the gateway never signs (API.md).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dev_token::{Signer, SignerError};

/// PKCS#8 DER of the private key, mode 0600.
pub const SIGNING_FILE: &str = "jwt-signing.pk8";
/// SubjectPublicKeyInfo PEM of the public key, for `GATEWAY_JWT_PUBLIC_KEY_FILE`.
pub const PUBLIC_FILE: &str = "jwt-public.pem";
/// The user id of `devstack token --admin` without `--user`.
pub const DEFAULT_ADMIN_USER: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    #[error(
        "no devstack signing key in {dir}; start devstack once (with auth on) to create it: devstack --state-dir {dir}"
    )]
    Missing { dir: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not an Ed25519 PKCS#8 key; delete it and start devstack to make a new one")]
    Invalid { path: String },
    #[error("{0}")]
    Signer(#[from] SignerError),
}

/// The key pair in force and where its public half lives.
pub struct DevKey {
    signer: Signer,
    public_pem: PathBuf,
}

impl DevKey {
    /// The key in `dir`, made (with the directory) on the first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, DevKeyError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let signing = dir.join(SIGNING_FILE);
        if !signing.exists() {
            create(&signing)?;
        }
        Self::open(dir)
    }

    /// The key in `dir`, which must exist (`devstack token`).
    pub fn load(dir: &Path) -> Result<Self, DevKeyError> {
        if !dir.join(SIGNING_FILE).exists() {
            return Err(DevKeyError::Missing { dir: dir.display().to_string() });
        }
        Self::open(dir)
    }

    /// Reads the private key and (re)writes the PEM from it: the private key is the one
    /// truth, so a deleted or stale PEM is repaired rather than trusted.
    fn open(dir: &Path) -> Result<Self, DevKeyError> {
        let signing = dir.join(SIGNING_FILE);
        let pkcs8 = std::fs::read(&signing).map_err(io(&signing))?;
        let signer =
            Signer::from_pkcs8(&pkcs8).map_err(|_| DevKeyError::Invalid { path: signing.display().to_string() })?;
        let pem = signer.public_pem();
        let public_pem = std::path::absolute(dir.join(PUBLIC_FILE)).map_err(io(dir))?;
        // Rewritten only when it differs: a new mtime makes the gateway reload its keys.
        if std::fs::read_to_string(&public_pem).ok().as_deref() != Some(pem) {
            write_atomically(&public_pem, pem.as_bytes(), 0o644)?;
        }
        Ok(Self { signer, public_pem })
    }

    /// Absolute path of the public key PEM, for the gateway.
    pub fn public_pem(&self) -> &Path {
        &self.public_pem
    }

    /// An EdDSA JWT for `user`: `iat` now, `exp` now + `ttl_secs`, `roles: ["admin"]` if admin.
    pub fn mint(&self, user: i64, admin: bool, ttl_secs: u64) -> Result<String, DevKeyError> {
        Ok(self.signer.mint(user, admin, ttl_secs)?)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevKeyError + '_ {
    move |source| DevKeyError::Io { path: path.display().to_string(), source }
}

/// A new key at `path`, never a half-written one, and never replacing one that another
/// devstack started in the same state dir made a moment earlier (hard link, not rename).
fn create(path: &Path) -> Result<(), DevKeyError> {
    let signer = Signer::generate()?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    write_file(&tmp, signer.pkcs8(), 0o600)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => Err(io(path)(err)),
        _ => Ok(()),
    }
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DevKeyError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    write_file(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DevKeyError> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(io(path))?;
    // The umask may have narrowed `mode`; the PEM must stay readable, the key private.
    file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io(path))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use gateway::auth::{KeyRing, KeySource, Principal, Verifier, VerifierSettings};

    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("devstack-key-{}", kit::testing::unique_prefix()))
    }

    #[test]
    fn the_key_is_made_once_private_and_its_tokens_verify_at_the_gateway() {
        let dir = temp_dir();
        assert!(matches!(DevKey::load(&dir), Err(DevKeyError::Missing { .. })));
        let key = DevKey::load_or_create(&dir).unwrap();
        let mode = std::fs::metadata(dir.join(SIGNING_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(key.public_pem().is_absolute());
        let first = std::fs::read(dir.join(SIGNING_FILE)).unwrap();

        let again = DevKey::load_or_create(&dir).unwrap();
        assert_eq!(std::fs::read(dir.join(SIGNING_FILE)).unwrap(), first, "reused, not replaced");
        std::fs::remove_file(dir.join(PUBLIC_FILE)).unwrap();
        let reloaded = DevKey::load(&dir).unwrap();
        assert!(reloaded.public_pem().exists(), "a lost PEM is rewritten from the private key");

        let ring = KeyRing::load(KeySource::Pem(key.public_pem().to_owned())).unwrap();
        let verifier = Verifier::new(ring, VerifierSettings::default());
        let user = key.mint(7, false, 60).unwrap();
        assert_eq!(verifier.verify(&user).unwrap(), Principal { user_id: 7, admin: false });
        let admin = again.mint(DEFAULT_ADMIN_USER, true, 60).unwrap();
        assert_eq!(verifier.verify(&admin).unwrap(), Principal { user_id: 1, admin: true });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
