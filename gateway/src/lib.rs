//! gateway: the only public door. REST/JSON in (axum), gRPC out (tonic), and the one place
//! that knows HTTP: status codes, problem documents, ETags, request ids, OpenAPI.
//!
//! Map:
//! - [`config`], [`startup`]: settings from `GATEWAY_*` and the wiring (binds port 0 in tests).
//! - [`auth`]: bearer JWT verification (keys, claims, the verified-token cache).
//! - [`serve`]: the HTTP/1.1 accept loop (cheap idle connections, keep-alive and header limits).
//! - [`context`]: the per-request middleware: `X-Request-Id`, W3C trace context, metrics.
//! - [`front`]: the one layer around the router: request context, then for `/v1` the guards,
//!   [`rate_limit`] (a token bucket per caller, `429`) and [`admission`] (a bound on the
//!   requests worked on at once, `503`), each policy in its own module.
//! - [`problem`]: RFC 9457 problem documents, built from kit's error table.
//! - [`extract`]: JSON, path, query and header extractors whose every rejection is a 400 problem.
//! - [`upstream`]: the gRPC clients of the services.
//! - [`routes`]: one module per resource, plus the operational routes.
//! - [`openapi`]: the OpenAPI 3.1 document served at `/openapi.json` and `/docs`.

pub mod admission;
pub mod auth;
pub mod config;
pub mod context;
pub mod extract;
pub mod front;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod serve;
pub mod startup;
pub mod upstream;
