//! Who a request acts as, and what that may do: the per-route authorization of API.md.
//!
//! The front authenticates (a valid token, none, or authentication turned off) and puts the
//! [`Actor`] on the request; a handler states its route's rule in one call: `act_for(user)`
//! for a user's resources, `require_admin()` for the catalogue and campaigns, `sees(owner)`
//! for an order looked up by id (someone else's order is a 404, so nothing leaks).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kit::ErrorCode;

use super::{AuthError, Principal};
use crate::problem::Problem;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// Authentication is turned off (`GATEWAY_AUTH=off`): every request may do anything.
    Anyone,
    /// No token was sent.
    Anonymous,
    User(Principal),
}

impl Actor {
    /// The request may act for `user_id`: it is that user, or an admin.
    pub fn act_for(&self, user_id: i64) -> Result<(), Problem> {
        match self {
            Self::Anyone => Ok(()),
            Self::Anonymous => Err(unauthenticated()),
            Self::User(p) if p.admin || p.user_id == user_id => Ok(()),
            Self::User(_) => Err(Problem::new(ErrorCode::Forbidden, "this token may not act for that user")),
        }
    }

    pub fn require_admin(&self) -> Result<(), Problem> {
        match self {
            Self::Anyone => Ok(()),
            Self::Anonymous => Err(unauthenticated()),
            Self::User(p) if p.admin => Ok(()),
            Self::User(_) => Err(Problem::new(ErrorCode::Forbidden, "this route is for admins")),
        }
    }

    /// Whether a resource of `owner` exists for this request (else it answers 404).
    pub fn sees(&self, owner: i64) -> bool {
        match self {
            Self::Anyone => true,
            Self::Anonymous => false,
            Self::User(p) => p.admin || p.user_id == owner,
        }
    }

    /// A 401 for an anonymous request, before anything is looked up.
    pub fn require_user(&self) -> Result<(), Problem> {
        match self {
            Self::Anonymous => Err(unauthenticated()),
            Self::Anyone | Self::User(_) => Ok(()),
        }
    }

    /// (user id, admin) to forward to the services.
    pub fn user(&self) -> Option<(i64, bool)> {
        match self {
            Self::User(p) => Some((p.user_id, p.admin)),
            Self::Anyone | Self::Anonymous => None,
        }
    }
}

/// The routes anyone may call without a token (API.md): reading the catalogue and the
/// campaigns. Every other `/v1` route acts for someone.
pub fn public_read(method: &http::Method, path: &str) -> bool {
    if method != http::Method::GET {
        return false;
    }
    let path = path.trim_end_matches('/');
    ["/v1/products", "/v1/coupons"].iter().any(|collection| match path.strip_prefix(collection) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|id| !id.is_empty() && !id.contains('/')),
        None => false,
    })
}

fn unauthenticated() -> Problem {
    refused(&AuthError::Missing)
}

/// The 401 for an authentication failure.
pub fn refused(err: &AuthError) -> Problem {
    Problem::new(ErrorCode::Unauthenticated, err.to_string()).challenge(err.challenge())
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    /// A router called without the front (a unit test) acts as [`Actor::Anyone`].
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Actor>().cloned().unwrap_or(Actor::Anyone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_catalogue_and_campaign_reads_are_public() {
        let get = http::Method::GET;
        for path in ["/v1/products", "/v1/products/7", "/v1/coupons", "/v1/coupons/3", "/v1/products/abc"] {
            assert!(public_read(&get, path), "{path}");
        }
        for path in ["/v1/points/7", "/v1/orders/x", "/v1/users/7/coupons", "/v1/products/7/stock", "/v1/productsx"] {
            assert!(!public_read(&get, path), "{path}");
        }
        assert!(!public_read(&http::Method::POST, "/v1/products"));
        assert!(!public_read(&http::Method::POST, "/v1/coupons/3/issue"));
    }

    #[test]
    fn users_act_for_themselves_and_admins_for_anyone() {
        let user = Actor::User(Principal { user_id: 7, admin: false });
        let admin = Actor::User(Principal { user_id: 1, admin: true });
        assert!(user.act_for(7).is_ok());
        assert_eq!(user.act_for(8).unwrap_err().document().status, 403);
        assert!(admin.act_for(8).is_ok());
        assert_eq!(user.require_admin().unwrap_err().document().status, 403);
        assert!(admin.require_admin().is_ok());
        assert_eq!(Actor::Anonymous.act_for(7).unwrap_err().document().status, 401);
        assert!(Actor::Anyone.act_for(7).is_ok() && Actor::Anyone.require_admin().is_ok());
        assert!(user.sees(7) && !user.sees(8) && admin.sees(8) && !Actor::Anonymous.sees(7));
    }
}
