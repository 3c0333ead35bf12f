//! REST clients of the gateway: keep-alive HTTP/1.1 connections, one per client task, as a
//! crowd of browsers would hold them (plain http: loopback only), arriving from many loopback
//! source addresses as a crowd would, so a server that keys anything by the caller's address
//! (the gateway's per-IP rate limiter) sees many callers rather than one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::Target;
use super::tokens::Credentials;
use crate::driver::{HttpStatus, Outcome, Pace, Sample};

/// Connections opened at once while warming up: thousands of simultaneous handshakes would
/// overflow the server's accept queue, and a dropped SYN costs a whole second of retry.
const WARM_UP_CONNECTIONS: usize = 512;

/// The client tasks' connections to one target. One `reqwest::Client` (one connection pool)
/// per source address; client task `i` always uses address `i % addresses`, so a closed loop
/// holds exactly one connection per client and never opens a spare.
#[derive(Clone)]
pub struct RestPool {
    callers: Arc<[reqwest::Client]>,
    /// The address of each caller; empty when the kernel picks (127.0.0.1).
    sources: Arc<[Ipv4Addr]>,
    base: Arc<str>,
    size: usize,
    /// Where the next call that belongs to no client task (setup, checks) goes, so that
    /// traffic too is spread over the addresses.
    next: Arc<AtomicUsize>,
    /// The tokens to send, `None` for a gateway with authentication off.
    credentials: Option<Arc<Credentials>>,
}

/// An HTTP answer with the header that says when to ask again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    /// `Retry-After`, in whole seconds (the only form the gateway sends).
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl RestPool {
    /// `clients` connections to `target`, from up to `target.source_addresses` addresses,
    /// keeping open as many as `pace` may have in flight.
    pub fn new(target: &Target, clients: usize, pace: Pace) -> anyhow::Result<Self> {
        let sources = crate::net::source_addresses(&target.url, target.source_addresses, clients);
        let pool = Self::build(&target.url, clients, pace.idle_connections(clients), target.request_timeout, sources)?;
        Ok(Self { credentials: target.credentials.clone(), ..pool })
    }

    /// One connection from 127.0.0.1, for a helper that is not under test (the mock data platform).
    pub fn single(url: &str, request_timeout: Duration) -> anyhow::Result<Self> {
        Self::build(url, 1, 1, request_timeout, Vec::new())
    }

    fn build(
        target: &str,
        clients: usize,
        idle: usize,
        request_timeout: Duration,
        sources: Vec<Ipv4Addr>,
    ) -> anyhow::Result<Self> {
        crate::net::ensure_loopback("target", target)?;
        let size = clients.max(1);
        let idle = idle.max(size);
        crate::fds::ensure_room_for(idle, &format!("{size} clients"))?;
        // Each caller serves every `sources.len()`-th client, so it needs that share of the
        // connections kept open.
        let share = idle.div_ceil(sources.len().max(1));
        let tls = plain_http_tls()?;
        let build = |source: Option<Ipv4Addr>| {
            let mut builder = reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(share)
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(2))
                .timeout(request_timeout)
                .tls_backend_preconfigured(tls.clone());
            if let Some(source) = source {
                // localhost may resolve to ::1 first, which a socket bound to 127.1.x.y
                // cannot reach: the connection would leave from ::1 as one caller.
                builder = builder
                    .local_address(IpAddr::V4(source))
                    .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)));
            }
            builder.build().context("cannot build the HTTP client")
        };
        let callers = match sources.is_empty() {
            true => vec![build(None)?],
            false => sources.iter().map(|&source| build(Some(source))).collect::<anyhow::Result<_>>()?,
        };
        Ok(Self {
            callers: callers.into(),
            sources: sources.into(),
            base: target.trim_end_matches('/').into(),
            size,
            next: Arc::default(),
            credentials: None,
        })
    }

    /// The connections of client task `client`, anonymous until [`Caller::acting_for`].
    pub fn caller(&self, client: usize) -> Caller<'_> {
        let http = &self.callers[client % self.callers.len()];
        Caller { http, base: &self.base, credentials: self.credentials.as_deref(), bearer: None }
    }

    /// For a call that belongs to no client task (setup, checks): the next caller,
    /// round-robin, as an admin, who may create products and coupons and read anyone's data.
    pub fn any(&self) -> Caller<'_> {
        let caller = self.caller(self.next.fetch_add(1, Ordering::Relaxed));
        Caller { bearer: self.credentials.as_deref().map(Credentials::admin), ..caller }
    }

    /// The tokens sent, if any (to mint the users' ahead of a run).
    pub fn credentials(&self) -> Option<&Arc<Credentials>> {
        self.credentials.as_ref()
    }

    /// Whether the requests carry tokens, for a report: `on` or `off`.
    pub fn auth(&self) -> &'static str {
        if self.credentials.is_some() { "on" } else { "off" }
    }

    /// Opens every connection before the clock starts (`GET /healthz` on each), so no measured
    /// request pays for a TCP handshake. The clients of one caller ask at once, so it opens one
    /// connection each; callers take turns, [`WARM_UP_CONNECTIONS`] connections at a time.
    pub async fn warm_up(&self) -> anyhow::Result<()> {
        let callers = self.callers.len();
        let groups = (0..callers.min(self.size)).map(|first| {
            let calls = (first..self.size).step_by(callers).map(|client| async move {
                let (status, body) = self.caller(client).get("/healthz").await?;
                anyhow::ensure!(status.is_success(), "answered {status}: {}", String::from_utf8_lossy(&body));
                Ok(())
            });
            futures::future::try_join_all(calls)
        });
        let at_once = (WARM_UP_CONNECTIONS / self.size.div_ceil(callers)).max(1);
        let mut warming = futures::stream::iter(groups).buffer_unordered(at_once);
        while let Some(done) = warming.next().await {
            done.with_context(|| format!("{}/healthz failed", self.base))?;
        }
        Ok(())
    }

    /// Client tasks, each with a connection of its own.
    pub fn len(&self) -> usize {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The source addresses, for a report: `1024 (127.1.0.1..=127.1.4.8)`.
    pub fn sources(&self) -> String {
        match (self.sources.first(), self.sources.last()) {
            (Some(first), Some(last)) => format!("{} ({first}..={last})", self.sources.len()),
            _ => "1 (127.0.0.1)".to_owned(),
        }
    }
}

/// reqwest builds a TLS configuration into every client, loading the platform's root
/// certificates each time: 1,024 clients took 2.3 s and 110 MB that way (5 ms and 4 MB with
/// this), for nothing, since these speak plain http to loopback only. One configuration that
/// trusts no one is shared instead.
fn plain_http_tls() -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS protocol version")?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// One client task's connections (or, from [`RestPool::any`], whichever caller's turn it is),
/// and who it asks as.
#[derive(Clone)]
pub struct Caller<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    credentials: Option<&'a Credentials>,
    /// The `Authorization` value sent, `None` for none.
    bearer: Option<HeaderValue>,
}

impl Caller<'_> {
    /// Asks as `user` (with its token, when the gateway wants tokens), since a user may act
    /// only for itself and the gateway limits each user's rate.
    #[must_use]
    pub fn acting_for(self, user: i64) -> Self {
        let bearer = self.credentials.map(|c| c.user(user));
        Self { bearer, ..self }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.bearer {
            Some(bearer) => request.header(AUTHORIZATION, bearer.clone()),
            None => request,
        }
    }

    /// `POST <target><path>` with a JSON body; the status and the whole body.
    pub async fn post(&self, path: &str, json: String) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
        self.post_keyed(path, None, json).await
    }

    /// [`Self::post`] with an `Idempotency-Key` header, when given.
    pub async fn post_keyed(
        &self,
        path: &str,
        idempotency_key: Option<&str>,
        json: String,
    ) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
        let reply = self.send_keyed(path, idempotency_key, json).await?;
        Ok((reply.status, reply.body))
    }

    /// [`Self::post_keyed`], with the answer's `Retry-After`.
    pub async fn send_keyed(
        &self,
        path: &str,
        idempotency_key: Option<&str>,
        json: String,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self
            .authorized(self.http.post(format!("{}{path}", self.base)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let resp = request.send().await?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok(Reply { status, retry_after, body: resp.bytes().await?.into() })
    }

    /// `GET <target><path>`; the status and the whole body.
    pub async fn get(&self, path: &str) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
        let resp = self.authorized(self.http.get(format!("{}{path}", self.base))).send().await?;
        let status = resp.status();
        Ok((status, resp.bytes().await?.into()))
    }
}

/// What kind of failure an HTTP exchange without an answer was, for the errors map.
pub fn transport_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "Timeout"
    } else if err.is_connect() {
        "Connect"
    } else if err.is_body() || err.is_decode() {
        "Body"
    } else {
        "Request"
    }
}

/// What a failed HTTP exchange is counted as.
pub fn transport_error(err: &reqwest::Error) -> Sample {
    Outcome::Error(transport_kind(err).to_owned()).over_http(HttpStatus::Transport)
}

/// The status of an answer, as the driver counts it.
pub fn status_of(status: StatusCode) -> HttpStatus {
    HttpStatus::Code(status.as_u16())
}

/// The `code` of a problem+json answer (API.md, "Error codes").
pub fn problem_code(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(doc.get("code")?.as_str()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(source_addresses: usize) -> Target {
        Target {
            url: "http://127.0.0.1:9".into(),
            channels: 1,
            request_timeout: Duration::from_secs(1),
            ledger: None,
            data_platform: None,
            source_addresses,
            credentials: None,
            backend: None,
        }
    }

    #[test]
    fn client_tasks_take_the_source_addresses_round_robin() {
        let pool = RestPool::new(&target(4), 10, Pace::Closed).unwrap();
        assert_eq!((pool.callers.len(), pool.len()), (4, 10));
        assert_eq!(pool.sources(), "4 (127.1.0.1..=127.1.0.4)");
        let caller = |client| std::ptr::from_ref(pool.caller(client).http);
        assert_eq!(caller(0), caller(4));
        assert_eq!(caller(3), caller(7));
        assert_ne!(caller(0), caller(1));
        let rotating: std::collections::HashSet<_> = (0..4).map(|_| std::ptr::from_ref(pool.any().http)).collect();
        assert_eq!(rotating.len(), 4, "calls of no client are spread too");
        let alone = RestPool::new(&target(1), 10, Pace::Closed).unwrap();
        assert_eq!((alone.callers.len(), alone.sources()), (1, "1 (127.0.0.1)".to_owned()));
    }

    #[test]
    fn problem_codes_are_read_from_problem_json() {
        let body = br#"{"type":"/problems/coupon-sold-out","status":409,"code":"COUPON_SOLD_OUT"}"#;
        assert_eq!(problem_code(body).as_deref(), Some("COUPON_SOLD_OUT"));
        assert_eq!(problem_code(b"<html>bad gateway</html>"), None);
    }
}
