use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::Layer;

use super::breaker::{Breaker, BreakerService, BreakerSettings};
use crate::telemetry;

/// A channel to one upstream service (all its replicas) that stamps every call with the
/// current trace context and a deadline, behind the upstream's circuit breaker.
pub type MeshChannel = InterceptedService<BreakerService<Channel>, TraceContext>;

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
/// - one address with an IP literal and one connection per address: a plain lazy channel;
/// - otherwise: a balanced channel (power of two choices over the least pending calls) with
///   `connections_per_address` endpoints per address; host names are re-resolved every
///   `resolve_interval` and every address they yield gets its endpoints. gRPC keeps HTTP/2
///   connections open for long, so without this a client behind a headless Service would
///   stick to whichever pod it reached first.
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
        targets.push(Target { uri, scheme, host, port });
    }
    let interceptor = TraceContext { deadline: settings.request_timeout };
    let breaker = Breaker::new(&settings.upstream, settings.breaker);
    let channel = match targets.as_slice() {
        [] => return Err(BadUpstream { url: urls.to_owned(), reason: "no address given".into() }),
        [one] if one.host.parse::<IpAddr>().is_ok() && settings.connections_per_address <= 1 => {
            endpoint(one.uri.clone(), settings).connect_lazy()
        }
        _ => {
            let (channel, changes) = Channel::balance_channel::<EndpointKey>(64);
            tokio::spawn(resolve_forever(targets, changes, settings.clone()));
            channel
        }
    };
    Ok(InterceptedService::new(breaker.layer(channel), interceptor))
}

/// [`channel`] with default settings.
pub fn channel_to(url: &str) -> Result<MeshChannel, BadUpstream> {
    channel(url, &ClientSettings::default())
}

/// One of the `connections_per_address` endpoints of an address.
type EndpointKey = (SocketAddr, usize);

struct Target {
    uri: Uri,
    scheme: String,
    host: String,
    port: u16,
}

/// Keeps the balancer's endpoint set equal to what the targets resolve to. Ends when the
/// channel is dropped (the sender is closed).
async fn resolve_forever(
    targets: Vec<Target>,
    changes: tokio::sync::mpsc::Sender<Change<EndpointKey, Endpoint>>,
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
                    if changes.send(Change::Remove((*gone, slot))).await.is_err() {
                        return;
                    }
                }
            }
            for new in resolved.difference(&current) {
                let scheme = &targets[0].scheme;
                let Ok(uri) = format!("{scheme}://{new}").parse::<Uri>() else { continue };
                for slot in 0..per_address {
                    if changes.send(Change::Insert((*new, slot), endpoint(uri.clone(), &settings))).await.is_err() {
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
