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
use std::task::{Context, Poll};
use std::time::Instant;

use axum::response::Response;
use tower::{Layer, Service, ServiceExt};

use crate::admission::Admission;
use crate::context;
use crate::rate_limit::RateLimit;

/// The layers only `/v1` requests meet.
#[derive(Clone)]
pub struct Guards {
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
        let (inner, guards) = (self.inner.clone(), self.guards.clone());
        Box::pin(async move {
            let started = Instant::now();
            let id = context::request_id(&request);
            let span = context::span_for(&request, &id);
            let guarded = request.uri().path().starts_with("/v1/");
            let work = async move {
                if guarded { through_guards(&guards, inner, request).await } else { serve(inner, request).await }
            };
            let mut response = context::scoped(id.clone(), span.clone(), work).await;
            context::finish(&mut response, &id, &span, started);
            Ok(response)
        })
    }
}

async fn through_guards<S, B>(guards: &Guards, inner: S, request: http::Request<B>) -> Response
where
    S: Service<http::Request<B>, Response = Response, Error = Infallible>,
{
    let allowance = match &guards.rate_limit {
        None => None,
        Some(limit) => match limit.admit(&request) {
            Ok(allowance) => allowance,
            Err(over) => return limit.refusal(over),
        },
    };
    let permit = match guards.admission.enter().await {
        Ok(permit) => permit,
        Err(shed) => return shed,
    };
    let mut response = serve(inner, request).await;
    drop(permit);
    if let Some(allowance) = allowance {
        allowance.stamp(&mut response);
    }
    response
}

async fn serve<S, B>(inner: S, request: http::Request<B>) -> Response
where
    S: Service<http::Request<B>, Response = Response, Error = Infallible>,
{
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
