//! Per-caller rate limiting: a token bucket per caller (governor's GCRA over a sharded map).
//!
//! The caller is the authenticated user when a later layer has put one on the request
//! ([`Caller`]), else the client's address (an IPv6 client by its /64, since one host
//! holds a whole /64). Over the rate: `429 RATE_LIMITED` with `Retry-After` (whole seconds,
//! at least 1) and the IETF draft's `RateLimit-Policy` / `RateLimit` fields, which every
//! limited response also carries so a client can pace itself before it is refused.
//!
//! Memory: a caller's bucket is dropped once it has refilled (nothing distinguishes it from
//! a fresh one), by a sweep every [`SWEEP_EVERY`]; so the map holds the callers of the last
//! few seconds, not every address ever seen.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use kit::ErrorCode;

use crate::problem::Problem;

const SWEEP_EVERY: Duration = Duration::from_secs(1);
const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const STATE: HeaderName = HeaderName::from_static("ratelimit");
/// The policy's name in the structured fields.
const POLICY_NAME: &str = "caller";

/// Who is asking, as far as the rate limiter is concerned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The `sub` of a verified token.
    User(i64),
    Address(IpAddr),
}

impl Caller {
    /// The address as a key: IPv4 as is, IPv6 by its /64 prefix.
    pub fn address(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Address(ip),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Self::Address(IpAddr::V6(bits.into()))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RateLimitSettings {
    /// Sustained requests per second per caller.
    pub per_second: NonZeroU32,
    /// Requests a caller may send at once after being quiet.
    pub burst: NonZeroU32,
}

type Limiter = RateLimiter<Caller, DashMapStateStore<Caller>, DefaultClock, StateInformationMiddleware>;

#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<Limiter>,
    clock: DefaultClock,
    policy: HeaderValue,
    /// Seconds for an empty bucket to fill again: the draft's window.
    window_secs: u64,
}

impl RateLimit {
    /// Must run inside a tokio runtime: the sweep is a task, which ends with the limiter.
    pub fn new(settings: RateLimitSettings) -> Self {
        let quota = Quota::per_second(settings.per_second).allow_burst(settings.burst);
        let limiter = Arc::new(RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>());
        let window_secs = u64::from(settings.burst.get()).div_ceil(u64::from(settings.per_second.get())).max(1);
        let policy = format!("\"{POLICY_NAME}\";q={};w={window_secs}", settings.burst);
        tokio::spawn(sweep(Arc::downgrade(&limiter)));
        Self {
            limiter,
            clock: DefaultClock::default(),
            policy: HeaderValue::from_str(&policy).expect("digits and quotes are a valid header"),
            window_secs,
        }
    }

    /// `Ok(remaining)` or `Err(seconds to wait)`.
    fn check(&self, caller: &Caller) -> Result<u32, u64> {
        match self.limiter.check_key(caller) {
            Ok(snapshot) => Ok(snapshot.remaining_burst_capacity()),
            Err(refused) => {
                let wait = refused.wait_time_from(self.clock.now());
                // Whole seconds, rounded up, never 0: a client told 0 retries at once.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(secs.max(1))
            }
        }
    }
}

async fn sweep(limiter: Weak<Limiter>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(limiter) = limiter.upgrade() else { return };
        limiter.retain_recent();
        limiter.shrink_to_fit();
        metrics::gauge!("gateway_rate_limit_callers").set(limiter.len() as f64);
    }
}

/// The caller of a request: the user a previous layer verified, else the peer address.
fn caller_of<B>(request: &Request<B>) -> Option<Caller> {
    if let Some(caller) = request.extensions().get::<Caller>() {
        return Some(caller.clone());
    }
    crate::serve::peer_of(request).map(|peer| Caller::address(peer.ip()))
}

/// What a caller may still send, to be stamped on the response.
pub struct Allowance {
    policy: HeaderValue,
    state: Option<HeaderValue>,
}

impl Allowance {
    pub fn stamp(self, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(POLICY, self.policy);
        if let Some(state) = self.state {
            headers.insert(STATE, state);
        }
    }
}

/// A request over its caller's rate: how many whole seconds until it may ask again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverRate {
    pub retry_after_secs: u64,
}

impl RateLimit {
    /// Takes a token from the request's caller: `Ok` with the headers for its response. A
    /// request with no peer (a router called directly in a unit test) has no one to limit.
    pub fn admit<B>(&self, request: &Request<B>) -> Result<Option<Allowance>, OverRate> {
        let Some(caller) = caller_of(request) else { return Ok(None) };
        let remaining = self.check(&caller).map_err(|retry_after_secs| OverRate { retry_after_secs })?;
        let state = HeaderValue::from_str(&format!("\"{POLICY_NAME}\";r={remaining};t={}", self.window_secs)).ok();
        Ok(Some(Allowance { policy: self.policy.clone(), state }))
    }

    /// The `429` for a request over its rate, with `Retry-After` and the draft's fields.
    pub fn refusal(&self, over: OverRate) -> Response {
        metrics::counter!("gateway_requests_rate_limited_total").increment(1);
        let retry_after = over.retry_after_secs;
        let mut response = Problem::new(ErrorCode::RateLimited, "too many requests from this caller; slow down")
            .retry_after(retry_after)
            .into_response();
        let state = HeaderValue::from_str(&format!("\"{POLICY_NAME}\";r=0;t={retry_after}")).ok();
        Allowance { policy: self.policy.clone(), state }.stamp(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_callers_are_keyed_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Caller::address(a), Caller::address(b));
        assert_ne!(Caller::address(a), Caller::address(c));
        let v4: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(Caller::address(v4), Caller::Address(v4));
    }
}
