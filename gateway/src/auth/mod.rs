//! Who is calling: bearer JWTs verified at the gateway (API.md, "Authentication and
//! authorization"; DESIGN.md, "Authentication").
//!
//! - [`keys`]: the verification keys, from a PEM public key or a JWKS file (keys picked by
//!   `kid`), re-read when the file changes so keys rotate without a restart.
//! - [`verifier`]: signature (EdDSA, ES256, RS256; never `none` or HMAC), `exp` required,
//!   `nbf`/`iat` honoured with at most 5 s of leeway, `iss`/`aud` when configured; verified
//!   tokens cached by their SHA-256 until they expire, so a client's repeated requests cost
//!   one signature check.
//!
//! - [`actor`]: what the authenticated (or anonymous) caller may do, per route.
//!
//! The services trust the user id the gateway forwards; only the gateway verifies.

pub mod actor;
pub mod keys;
pub mod verifier;

pub use actor::Actor;
pub use keys::{KeyRing, KeySource};
pub use verifier::{Verifier, VerifierSettings};

/// The caller a verified token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: a positive decimal user id.
    pub user_id: i64,
    /// `roles` contains `"admin"`.
    pub admin: bool,
}

/// Why a request is not authenticated. Each becomes `401 UNAUTHENTICATED` with
/// `WWW-Authenticate: Bearer`, and `error="invalid_token"` when a token was presented
/// (RFC 6750, section 3.1).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    AlgorithmRefused,
    #[error("no verification key matches the token")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not for this service (issuer or audience)")]
    WrongAudience,
    #[error("the token's subject is not a user id")]
    BadSubject,
}

impl AuthError {
    /// The `WWW-Authenticate` value of the 401 for this error.
    pub fn challenge(&self) -> &'static str {
        match self {
            Self::Missing => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        }
    }
}

#[cfg(test)]
mod tests;
