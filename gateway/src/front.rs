//! The front of every request: one tower service around the router that gives the request
//! its id and span, and for `/v1` applies the guards in the order a request meets them:
//! the per-caller rate limit ([`crate::rate_limit`]), then admission control
//! ([`crate::admission`]). The operational routes skip the guards, so probes and scrapes
//! keep working in a surge.
//!
//! Why one hand-written service rather than an axum `from_fn` middleware per concern: axum
//! boxes every middleware's future and every layered route's future, per request. In a
//! 10,000-connection surge, with a request on every connection, those boxes were ~67 MiB of
//! the gateway's peak (heaptrack); here the whole front is one box per request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use tower::{Layer, Service, ServiceExt};

use crate::admission::Admission;
use crate::auth::{self, Actor, AuthError, Verifier};
use crate::context;
use crate::rate_limit::Caller;
use crate::rate_limit::RateLimit;

/// The layers only `/v1` requests meet.
#[derive(Clone)]
pub struct Guards {
    /// `None` when authentication is turned off: every request acts as [`Actor::Anyone`].
    pub auth: Option<Arc<Verifier>>,
    /// `None` when rate limiting is turned off.
    pub rate_limit: Option<RateLimit>,
    pub admission: Admission,
}

#[derive(Clone)]
pub struct FrontLayer {
    guards: Guards,
}

impl FrontLayer {
    pub fn new(guards: Guards) -> Self {
        Self { guards }
    }
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front { inner, guards: self.guards.clone() }
    }
}

#[derive(Clone)]
pub struct Front<S> {
    inner: S,
    guards: Guards,
}

impl<S, B> Service<http::Request<B>> for Front<S>
where
    S: Service<http::Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready; readiness is decided per request by the guards.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The future is built from parts that each hold a value once: an async fn or block
        // keeps its arguments and captures for its whole life beside the futures it awaits,
        // so wrapping one async fn in another stored the request's whole state twice (a
        // 4 KiB box per request; 41 MiB of a 10,000-connection surge in heaptrack).
        let started = Instant::now();
        let id = context::request_id(&request);
        let span = context::span_for(&request, &id);
        let guards = request.uri().path().starts_with("/v1/").then(|| self.guards.clone());
        let work = context::scope(id.clone(), span.clone(), answer(guards, self.inner.clone(), request));
        Box::pin(work.map(move |mut response| {
            context::finish(&mut response, &id, &span, started);
            Ok(response)
        }))
    }
}

/// The response to one request: for `/v1` (`guards` given) the rate limit, then a slot
/// from admission control, then the router; else straight to the router.
async fn answer<S, B>(guards: Option<Guards>, inner: S, mut request: http::Request<B>) -> Response
where
    S: Service<http::Request<B>, Response = Response, Error = Infallible>,
{
    let (mut allowance, mut permit, mut user) = (None, None, None);
    if let Some(guards) = &guards {
        let actor = match authenticate(guards.auth.as_deref(), &request) {
            Ok(Actor::Anonymous) if !auth::actor::public_read(request.method(), request.uri().path()) => {
                return auth::actor::refused(&AuthError::Missing).into_response();
            }
            Ok(actor) => actor,
            Err(refused) => return auth::actor::refused(&refused).into_response(),
        };
        user = actor.user();
        if let Some((id, _)) = user {
            // The rate limit counts per user once the user is known, not per address.
            request.extensions_mut().insert(Caller::User(id));
        }
        request.extensions_mut().insert(actor);
        if let Some(limit) = &guards.rate_limit {
            match limit.admit(&request) {
                Ok(given) => allowance = given,
                Err(over) => return limit.refusal(over),
            }
        }
        match guards.admission.enter().await {
            Ok(slot) => permit = Some(slot),
            Err(shed) => return shed,
        }
    }
    let mut response = match context::as_user(user, inner.oneshot(request)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    drop(permit);
    if let Some(allowance) = allowance {
        allowance.stamp(&mut response);
    }
    response
}

/// The actor of a request: anyone when authentication is off, anonymous without a token,
/// else the user its bearer token names (or the reason it is refused).
fn authenticate<B>(verifier: Option<&Verifier>, request: &http::Request<B>) -> Result<Actor, AuthError> {
    let Some(verifier) = verifier else { return Ok(Actor::Anyone) };
    let Some(value) = request.headers().get(http::header::AUTHORIZATION) else { return Ok(Actor::Anonymous) };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(AuthError::Malformed)?;
    verifier.verify(token).map(Actor::User)
}
