use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio_stream::wrappers::ReceiverStream;
use tonic::body::Body;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::Layer;
use tower::ServiceExt;
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::Change;
use tower::load::{CompleteOnResponse, PendingRequests};

use super::breaker::{Breaker, BreakerService, BreakerSettings, CallError};
use crate::telemetry;

/// A channel to one upstream service (all its replicas) that stamps every call with the
/// current trace context and a deadline, behind the upstream's circuit breaker.
pub type MeshChannel = InterceptedService<BreakerService<Upstream>, TraceContext>;

/// The connections to one upstream: a power-of-two-choices balancer (least pending calls)
/// over `connections_per_address` lazy HTTP/2 connections per address, behind a buffer so it
/// can be cloned. Built from tower's parts rather than tonic's `balance_channel` because each
/// connection here is a lazy tonic `Channel` that connects when a call needs it: a connect
/// error goes to the call that caused it. tonic's balancer polls its endpoints ahead of any
/// call, so a connect that failed while an upstream was (re)starting was kept and handed to
/// the next caller, even once the upstream was back.
///
/// A struct with a concrete `Service` impl, as tonic's `Channel` is, rather than the bare
/// `Buffer`: with the buffer's generic bounds in the client's type, rustc cannot prove the
/// generated clients' futures `Send` (a higher-ranked lifetime gap).
#[derive(Clone)]
pub struct Upstream {
    calls: Buffer<http::Request<Body>, BalancedCall>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BalancedCall = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send + 'static>>;
pub type UpstreamCall = Pin<Box<dyn Future<Output = Result<http::Response<Body>, CallError>> + Send + 'static>>;

impl tower::Service<http::Request<Body>> for Upstream {
    type Response = http::Response<Body>;
    type Error = CallError;
    type Future = UpstreamCall;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), CallError>> {
        self.calls.poll_ready(cx).map_err(CallError)
    }

    fn call(&mut self, request: http::Request<Body>) -> UpstreamCall {
        let call = self.calls.call(request);
        Box::pin(async move { call.await.map_err(CallError) })
    }
}

type Connection = PendingRequests<Channel>;

#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// Deadline of one call unless the caller set a shorter one; sent as `grpc-timeout`
    /// so the server gives up too.
    pub request_timeout: Duration,
    /// How often host names are resolved again, so pods that come and go behind a
    /// headless Service are picked up.
    pub resolve_interval: Duration,
    /// HTTP/2 connections kept to every address. A server admits a bounded number of streams
    /// per connection (`StreamLimit`, 1,024 by default) and calls past it wait for a free
    /// stream; several connections raise what can run at once (4 x 1,024 matches the
    /// gateway's and payment-svc's in-flight bounds) and spread the framing work of one
    /// upstream over more than one task, hence more than one core.
    pub connections_per_address: usize,
    /// The upstream's name in logs and metrics (its breaker's label).
    pub upstream: String,
    pub breaker: BreakerSettings,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            resolve_interval: Duration::from_secs(5),
            connections_per_address: 4,
            upstream: "upstream".into(),
            breaker: BreakerSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad upstream address {url:?}: {reason}")]
pub struct BadUpstream {
    pub url: String,
    pub reason: String,
}

fn endpoint(uri: Uri, settings: &ClientSettings) -> Endpoint {
    Endpoint::from(uri)
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
}

/// A lazily connected channel over `urls` (comma-separated replicas are allowed).
///
/// Every address gets `connections_per_address` connections, balanced as [`Upstream`] says.
/// Host names are re-resolved every `resolve_interval` and every address they yield gets its
/// connections: gRPC keeps HTTP/2 connections open for long, so without this a client behind
/// a headless Service would stick to whichever pod it reached first.
///
/// Lazy: a service starts even when its upstream is not up yet, and reconnects by itself.
/// Must be called inside a tokio runtime (the resolver is a task).
pub fn channel(urls: &str, settings: &ClientSettings) -> Result<MeshChannel, BadUpstream> {
    let mut targets = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let bad = |reason: String| BadUpstream { url: url.to_owned(), reason };
        let uri: Uri = url.parse().map_err(|e: tonic::codegen::http::uri::InvalidUri| bad(e.to_string()))?;
        let scheme = uri.scheme_str().ok_or_else(|| bad("no scheme (http://...)".into()))?.to_owned();
        let host = uri.host().ok_or_else(|| bad("no host".into()))?.trim_matches(['[', ']']).to_owned();
        let port = uri.port_u16().ok_or_else(|| bad("no port".into()))?;
        targets.push(Target { scheme, host, port });
    }
    if targets.is_empty() {
        return Err(BadUpstream { url: urls.to_owned(), reason: "no address given".into() });
    }
    let interceptor = TraceContext { deadline: settings.request_timeout };
    let breaker = Breaker::new(&settings.upstream, settings.breaker);
    let (changes, discovered) = tokio::sync::mpsc::channel(64);
    let balance = Balance::new(ReceiverStream::new(discovered));
    // Calls waiting for the balancer; past this many they wait in `poll_ready` instead.
    let balance = balance.map_future(|call| -> BalancedCall { Box::pin(call) });
    let upstream = Upstream { calls: Buffer::new(balance, 4_096) };
    tokio::spawn(resolve_forever(targets, changes, settings.clone()));
    Ok(InterceptedService::new(breaker.layer(upstream), interceptor))
}

/// [`channel`] with default settings.
pub fn channel_to(url: &str) -> Result<MeshChannel, BadUpstream> {
    channel(url, &ClientSettings::default())
}

/// One of the `connections_per_address` endpoints of an address.
type EndpointKey = (SocketAddr, usize);

struct Target {
    scheme: String,
    host: String,
    port: u16,
}

/// Keeps the balancer's endpoint set equal to what the targets resolve to. Ends when the
/// channel is dropped (the sender is closed).
async fn resolve_forever(
    targets: Vec<Target>,
    changes: tokio::sync::mpsc::Sender<Result<Change<EndpointKey, Connection>, Infallible>>,
    settings: ClientSettings,
) {
    let mut current: HashSet<SocketAddr> = HashSet::new();
    loop {
        let mut resolved = HashSet::new();
        let mut failed = false;
        for target in &targets {
            match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                Ok(addrs) => resolved.extend(prefer_one_family(addrs.collect())),
                Err(err) => {
                    failed = true;
                    tracing::warn!(host = %target.host, error = %err, "upstream name did not resolve");
                }
            }
        }
        // A resolver hiccup must not empty a working balancer: keep what we have.
        if !(failed && resolved.is_empty()) {
            let per_address = settings.connections_per_address.max(1);
            for gone in current.difference(&resolved) {
                for slot in 0..per_address {
                    if changes.send(Ok(Change::Remove((*gone, slot)))).await.is_err() {
                        return;
                    }
                }
            }
            for new in resolved.difference(&current) {
                let scheme = &targets[0].scheme;
                let Ok(uri) = format!("{scheme}://{new}").parse::<Uri>() else { continue };
                for slot in 0..per_address {
                    let connection = endpoint(uri.clone(), &settings).connect_lazy();
                    let connection = PendingRequests::new(connection, CompleteOnResponse::default());
                    if changes.send(Ok(Change::Insert((*new, slot), connection))).await.is_err() {
                        return;
                    }
                }
            }
            current = resolved;
        }
        if changes.is_closed() {
            return;
        }
        tokio::time::sleep(settings.resolve_interval).await;
    }
}

/// `localhost` yields both 127.0.0.1 and ::1, while services usually listen on one family
/// only; an endpoint that can never connect would only add failed attempts.
fn prefer_one_family(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let v4: Vec<SocketAddr> = addrs.iter().copied().filter(SocketAddr::is_ipv4).collect();
    if v4.is_empty() { addrs } else { v4 }
}

/// Puts the current span's W3C trace context and a default deadline on every call.
#[derive(Clone, Debug)]
pub struct TraceContext {
    deadline: Duration,
}

impl Interceptor for TraceContext {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut headers = http::HeaderMap::new();
        telemetry::inject_trace(&tracing::Span::current(), &mut headers);
        let metadata = request.metadata_mut();
        for (name, value) in &headers {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_bytes()),
            ) {
                metadata.insert(key, value);
            }
        }
        if !metadata.contains_key("grpc-timeout") {
            request.set_timeout(self.deadline);
        }
        Ok(request)
    }
}
