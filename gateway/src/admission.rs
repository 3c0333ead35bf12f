//! Admission control: a bound on the requests the gateway works on at once.
//!
//! Past the bound a request waits, first come first served, for at most a short queueing
//! budget; if no slot frees in time it is answered `503 OVERLOADED` with `Retry-After`
//! before any upstream call, so nothing changed. The wait is a tokio `Semaphore` (fair, FIFO);
//! what is written here is only the policy: how long a request may wait and how many may.
//!
//! Why wait at all rather than shed at once (tower's `load_shed`): a surge of 10,000 users on
//! keep-alive connections arrives as bursts far above the bound that drain within a second;
//! a short queue turns those bursts into latency instead of errors, while a long stall of the
//! upstreams still ends in a fast, explicit refusal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use kit::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::problem::Problem;

#[derive(Clone, Copy, Debug)]
pub struct AdmissionSettings {
    /// Requests worked on at once.
    pub max_in_flight: usize,
    /// Longest a request waits for a slot before it is shed.
    pub queue_budget: Duration,
    /// Requests waiting at once; one more is shed without waiting (bounds the memory a
    /// runaway surge can pin in the queue).
    pub max_queued: usize,
}

#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    settings: AdmissionSettings,
}

impl Admission {
    pub fn new(settings: AdmissionSettings) -> Self {
        metrics::gauge!("gateway_admission_limit").set(settings.max_in_flight as f64);
        Self { slots: Arc::new(Semaphore::new(settings.max_in_flight)), waiting: Arc::default(), settings }
    }

    /// Requests being worked on right now.
    pub fn in_flight(&self) -> usize {
        self.settings.max_in_flight - self.slots.available_permits()
    }
}

/// Decrements the waiting count however the wait ends (granted, timed out, or the client gone).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    /// A slot to work on one request, waited for at most the queueing budget; else the
    /// `503 OVERLOADED` answer to send instead. Dropping the permit frees the slot.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Response> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.settings.max_queued {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    return Err(shed("queue_full"));
                }
                let _waiting = Waiting(&self.waiting);
                match tokio::time::timeout(self.settings.queue_budget, self.slots.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    // The semaphore is never closed; a timeout is the only real outcome here.
                    Ok(Err(_)) | Err(_) => return Err(shed("queue_budget")),
                }
            }
        };
        metrics::gauge!("gateway_requests_in_flight").set(self.in_flight() as f64);
        Ok(permit)
    }
}

/// Why a request is shed: its queue was full, or it waited its whole queueing budget.
const SHED_REASONS: [&str; 2] = ["queue_full", "queue_budget"];

/// The shed counters, at 0 from the start.
pub fn declare_metrics() {
    kit::telemetry::declare_counters("gateway_requests_shed_total", "reason", &SHED_REASONS);
}

fn shed(reason: &'static str) -> Response {
    debug_assert!(SHED_REASONS.contains(&reason));
    metrics::counter!("gateway_requests_shed_total", "reason" => reason).increment(1);
    Problem::new(ErrorCode::Overloaded, "the gateway is at capacity; try again shortly").retry_after(1).into_response()
}
