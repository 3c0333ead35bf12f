//! The HTTP/1.1 accept loop, written against hyper directly rather than `axum::serve`.
//!
//! A flash sale holds tens of thousands of idle keep-alive connections, so what one costs is
//! what matters here. `axum::serve` runs every connection through hyper-util's
//! auto-detecting builder, whose per-connection future carries an HTTP/2 state machine too;
//! the public door only speaks HTTP/1.1 (ingresses and browsers do), so a plain HTTP/1
//! connection is what each task holds. It also gives the knobs `axum::serve` hides: the
//! idle keep-alive timeout, the header limits, and the peer address for the rate limiter.

use std::net::SocketAddr;
use std::time::Duration;

use std::convert::Infallible;

use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kit::shutdown::CancellationToken;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Per-connection limits of the HTTP/1.1 server.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// A keep-alive connection with no request for this long is closed. hyper arms the
    /// header-read timer whenever it waits for a request head, so the same timer covers
    /// an idle connection and a client that sends its headers too slowly.
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers) read into memory.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
}

/// Accepts until `shutdown`, then closes the listener, lets in-flight requests finish for up
/// to `grace` and closes idle connections at once.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    grace: Duration,
) where
    S: tower::Service<axum::http::Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.idle_timeout)
        // hyper's floor is 8 KiB; the read buffer starts there and grows only up to this.
        .max_buf_size(limits.max_header_bytes.max(8 * 1024))
        .max_headers(limits.max_headers)
        // While a request is being worked on, hyper otherwise keeps reading the socket to see
        // whether the client hung up, and that read reserves a second 8 KiB buffer per
        // connection (the first is still held by the request's headers): 130 MiB of a
        // 10,000-connection surge in heaptrack. The price is that a client that goes away
        // mid-request no longer cancels its handler; every upstream call has a deadline
        // anyway, and a checkout's saga goes on without its client by design.
        .half_close(true);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before accept: neither
                    // is a reason to stop serving the others.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

/// The peer of the connection a request came on (set by [`serve`]; absent in unit tests that
/// call the router directly).
pub fn peer_of<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr)
}
