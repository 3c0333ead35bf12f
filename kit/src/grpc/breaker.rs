//! A consecutive-failures circuit breaker for one upstream (all its replicas), as a tower
//! layer under the tonic client (the design of linkerd2-proxy's breaker).
//!
//! - Closed: calls pass; `failures_to_open` failures in a row open it.
//! - Open: calls fail at once with `UNAVAILABLE`, for `open_for`.
//! - Half-open: the next call is a probe, every other call still fails fast; the probe's
//!   success closes the breaker, its failure opens it again.
//!
//! A failure is what says the upstream cannot serve: a transport error, a missed deadline,
//! or an answer whose status is `UNAVAILABLE` or `DEADLINE_EXCEEDED`. Business answers
//! (not found, out of stock, ...) are the upstream working and count as successes. The
//! status is read from the response head, where gRPC puts it for every error without a
//! message (trailers-only); a call that returns data is a success.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::Code;
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream call that failed without an answer. The cause is the error's `source`, where
/// tonic finds a `Status` (an open circuit's) or a transport error and maps it to its code.
#[derive(Debug, thiserror::Error)]
#[error("upstream call failed")]
pub struct CallError(#[source] pub BoxError);

#[derive(Clone, Copy, Debug)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker; 0 = never open.
    pub failures_to_open: u32,
    /// How long an open breaker fails calls before it lets a probe through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { failures_to_open: 5, open_for: Duration::from_secs(2) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
struct Circuit {
    state: BreakerState,
    failures: u32,
    opened_at: Instant,
    probing: bool,
}

/// The shared state of one upstream's breaker.
#[derive(Clone, Debug)]
pub struct Breaker {
    upstream: Arc<str>,
    settings: BreakerSettings,
    circuit: Arc<Mutex<Circuit>>,
}

/// What [`Breaker::admit`] decided for one call.
enum Admit {
    Pass,
    Probe,
    Refuse,
}

impl Breaker {
    pub fn new(upstream: &str, settings: BreakerSettings) -> Self {
        let circuit = Circuit { state: BreakerState::Closed, failures: 0, opened_at: Instant::now(), probing: false };
        metrics::gauge!("grpc_client_circuit_state", "upstream" => upstream.to_owned()).set(0.0);
        Self { upstream: upstream.into(), settings, circuit: Arc::new(Mutex::new(circuit)) }
    }

    pub fn state(&self) -> BreakerState {
        self.circuit.lock().unwrap_or_else(PoisonError::into_inner).state
    }

    fn admit(&self) -> Admit {
        let mut c = self.circuit.lock().unwrap_or_else(PoisonError::into_inner);
        match c.state {
            BreakerState::Closed => Admit::Pass,
            BreakerState::Open if c.opened_at.elapsed() < self.settings.open_for => Admit::Refuse,
            BreakerState::Open => {
                self.set(&mut c, BreakerState::HalfOpen);
                c.probing = true;
                Admit::Probe
            }
            BreakerState::HalfOpen if c.probing => Admit::Refuse,
            BreakerState::HalfOpen => {
                c.probing = true;
                Admit::Probe
            }
        }
    }

    fn record(&self, failed: bool, probe: bool) {
        let mut c = self.circuit.lock().unwrap_or_else(PoisonError::into_inner);
        if probe {
            c.probing = false;
        }
        if !failed {
            c.failures = 0;
            if c.state != BreakerState::Closed && (probe || c.state == BreakerState::HalfOpen) {
                self.set(&mut c, BreakerState::Closed);
            }
            return;
        }
        c.failures = c.failures.saturating_add(1);
        let trips = self.settings.failures_to_open > 0 && c.failures >= self.settings.failures_to_open;
        if probe || (c.state == BreakerState::Closed && trips) {
            c.opened_at = Instant::now();
            self.set(&mut c, BreakerState::Open);
        }
    }

    /// A probe that never finished (its caller gave up) proves nothing: let the next call probe.
    fn abandon_probe(&self) {
        let mut c = self.circuit.lock().unwrap_or_else(PoisonError::into_inner);
        c.probing = false;
    }

    fn set(&self, c: &mut Circuit, state: BreakerState) {
        if c.state == state {
            return;
        }
        let upstream = &*self.upstream;
        match state {
            BreakerState::Open => {
                tracing::warn!(upstream, failures = c.failures, open_for = ?self.settings.open_for, "circuit opened: failing calls fast");
            }
            BreakerState::HalfOpen => tracing::info!(upstream, "circuit half-open: probing"),
            BreakerState::Closed => tracing::info!(upstream, "circuit closed: upstream is serving again"),
        }
        c.state = state;
        metrics::gauge!("grpc_client_circuit_state", "upstream" => upstream.to_owned()).set(state.gauge());
        metrics::counter!("grpc_client_circuit_transitions_total", "upstream" => upstream.to_owned(), "to" => format!("{state:?}").to_lowercase()).increment(1);
    }
}

impl<S> Layer<S> for Breaker {
    type Service = BreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService { inner, breaker: self.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct BreakerService<S> {
    inner: S,
    breaker: Breaker,
}

/// Clears a probe's claim if the call is dropped before it records anything.
struct ProbeGuard {
    breaker: Option<Breaker>,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if let Some(breaker) = self.breaker.take() {
            breaker.abandon_probe();
        }
    }
}

/// A status that says the upstream is failing: unavailable or past its deadline, unless the
/// upstream refused on purpose (`OVERLOADED`), which is a healthy service's answer.
fn failed_status(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) && !crate::error::refused_on_purpose(status)
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for BreakerService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>, Error = CallError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, CallError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let probe = match self.breaker.admit() {
            Admit::Refuse => {
                metrics::counter!("grpc_client_circuit_refused_total", "upstream" => self.breaker.upstream.to_string())
                    .increment(1);
                let status =
                    tonic::Status::unavailable(format!("{} is failing; its circuit is open", self.breaker.upstream));
                return Box::pin(async move { Err(CallError(Box::new(status))) });
            }
            Admit::Probe => true,
            Admit::Pass => false,
        };
        let breaker = self.breaker.clone();
        let call = self.inner.call(request);
        Box::pin(async move {
            let mut guard = ProbeGuard { breaker: probe.then(|| breaker.clone()) };
            let result = call.await;
            let failed = match &result {
                Err(_) => true,
                Ok(response) => tonic::Status::from_header_map(response.headers()).is_some_and(|s| failed_status(&s)),
            };
            guard.breaker = None;
            breaker.record(failed, probe);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new("test", BreakerSettings { failures_to_open: 3, open_for: Duration::from_millis(50) })
    }

    #[test]
    fn a_deliberate_refusal_is_not_a_failure_but_unavailability_is() {
        let refusal = tonic::Status::from(crate::ServiceError::new(crate::ErrorCode::Overloaded, "busy"));
        let down = tonic::Status::from(crate::ServiceError::new(crate::ErrorCode::Unavailable, "database down"));
        assert_eq!(refusal.code(), Code::Unavailable, "an OVERLOADED refusal travels as UNAVAILABLE");
        assert!(!failed_status(&refusal));
        assert!(failed_status(&down));
        assert!(failed_status(&tonic::Status::deadline_exceeded("late")));
        assert!(!failed_status(&tonic::Status::not_found("no such order")));
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        b.record(true, false);
        b.record(true, false);
        b.record(false, false);
        b.record(true, false);
        b.record(true, false);
        assert_eq!(b.state(), BreakerState::Closed, "a success in between resets the count");
        b.record(true, false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(b.admit(), Admit::Refuse));
    }

    #[test]
    fn one_probe_at_a_time_then_closes_or_reopens() {
        let b = breaker();
        (0..3).for_each(|_| b.record(true, false));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(b.admit(), Admit::Probe));
        assert!(matches!(b.admit(), Admit::Refuse), "only one probe in flight");
        b.record(true, true);
        assert_eq!(b.state(), BreakerState::Open, "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(b.admit(), Admit::Probe));
        b.record(false, true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(matches!(b.admit(), Admit::Pass));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let b = breaker();
        (0..3).for_each(|_| b.record(true, false));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(b.admit(), Admit::Probe));
        b.abandon_probe();
        assert!(matches!(b.admit(), Admit::Probe));
    }
}
