use std::time::Duration;

use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::telemetry;

/// A channel to one upstream service (all its replicas) that stamps every call with the
/// current trace context and a deadline.
pub type MeshChannel = InterceptedService<Channel, TraceContext>;

#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// Deadline of one call unless the caller set a shorter one; sent as `grpc-timeout`
    /// so the server gives up too.
    pub request_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(2), request_timeout: Duration::from_secs(5) }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad upstream address {url:?}: {reason}")]
pub struct BadUpstream {
    pub url: String,
    pub reason: String,
}

/// A lazily connected channel balanced over `urls` (comma-separated replicas are allowed).
/// Lazy: a service starts even when its upstream is not up yet, and reconnects by itself.
pub fn channel(urls: &str, settings: &ClientSettings) -> Result<MeshChannel, BadUpstream> {
    let mut endpoints = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| BadUpstream { url: url.to_owned(), reason: e.to_string() })?
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        endpoints.push(endpoint);
    }
    let channel = match endpoints.len() {
        0 => return Err(BadUpstream { url: urls.to_owned(), reason: "no address given".into() }),
        1 => endpoints[0].connect_lazy(),
        _ => Channel::balance_list(endpoints.into_iter()),
    };
    Ok(InterceptedService::new(channel, TraceContext { deadline: settings.request_timeout }))
}

/// [`channel`] with default settings, for one address.
pub fn channel_to(url: &str) -> Result<MeshChannel, BadUpstream> {
    channel(url, &ClientSettings::default())
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
            if let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes()) {
                if let Ok(key) = tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()) {
                    metadata.insert(key, value);
                }
            }
        }
        if !metadata.contains_key("grpc-timeout") {
            request.set_timeout(self.deadline);
        }
        Ok(request)
    }
}
