//! The open loop: requests released at a fixed arrival rate, request `i` due at
//! `t0 + i / rate`, whatever pace the answers come at (k6's `constant-arrival-rate`).
//! Latency is counted from each request's due time, so a request that waited for a free
//! slot or a late pacer is charged for the wait: no coordinated omission.
//!
//! In-flight requests are bounded: a request that comes due while `max_inflight` are
//! outstanding is dropped (counted, never sent), as k6 drops an iteration when its VUs are
//! all busy; the generator never builds an unbounded queue of its own.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{CpuWindow, Limits, LoopResult, Sample, merged, record, shards};

/// A request that starts more than this after its due time counts as late: past it, the
/// generator (or the box's CPU) and not the system under test shaped the arrival times.
pub const LATE: Duration = Duration::from_millis(1);

/// The arrival rate and the bound on requests in flight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenLoop {
    /// Requests per second.
    pub rate: f64,
    pub max_inflight: usize,
}

impl OpenLoop {
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.rate > 0.0 && self.rate <= 1_000_000.0, "--rate must be in (0, 1000000] requests/s");
        ensure!((1..=100_000).contains(&self.max_inflight), "--max-inflight must be 1..=100000");
        Ok(())
    }
}

/// What the schedule itself came to, next to the latencies and outcomes of the [`LoopResult`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpenLoopStats {
    /// The offered rate, requests per second.
    pub rate: f64,
    pub max_inflight: usize,
    /// Requests that came due before the deadline or the budget ran out.
    pub due: u64,
    pub sent: u64,
    /// Came due while `max_inflight` requests were outstanding: not sent.
    pub dropped: u64,
    /// Sent more than [`LATE`] after their due time.
    pub late: u64,
    pub max_late: Duration,
    pub peak_inflight: usize,
}

impl OpenLoopStats {
    /// `self` followed by `next`, as one run (the phases of [`super::run_phased`]).
    pub fn then(&self, next: &OpenLoopStats) -> OpenLoopStats {
        OpenLoopStats {
            rate: self.rate,
            max_inflight: self.max_inflight.max(next.max_inflight),
            due: self.due + next.due,
            sent: self.sent + next.sent,
            dropped: self.dropped + next.dropped,
            late: self.late + next.late,
            max_late: self.max_late.max(next.max_late),
            peak_inflight: self.peak_inflight.max(next.peak_inflight),
        }
    }
}

/// Lateness of the requests sent, shared by their tasks.
#[derive(Debug, Default)]
struct Lateness {
    late: AtomicU64,
    max_us: AtomicU64,
}

impl Lateness {
    fn note(&self, lateness: Duration) {
        if lateness > LATE {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        self.max_us.fetch_max(u64::try_from(lateness.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// What the pacer hands back: the requests still running, and its counts.
struct Paced {
    inflight: JoinSet<()>,
    due: u64,
    dropped: u64,
    peak_inflight: usize,
}

/// Sends `op(seq % clients, seq)` at `open.rate` until `limits` stop the schedule, then
/// waits for the requests in flight (up to the grace period, then aborts them).
pub(super) async fn run_open_loop<F, Fut>(clients: usize, open: OpenLoop, limits: Limits, op: F) -> LoopResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Into<Sample>> + Send + 'static,
{
    let (op, shards) = (Arc::new(op), shards());
    let lateness = Arc::new(Lateness::default());
    let slots = Arc::new(Semaphore::new(open.max_inflight));
    let budget = limits.max_requests.unwrap_or(u64::MAX);
    let clients = clients.max(1);
    let cpu = CpuWindow::start();
    let started = Instant::now();
    let deadline = started + limits.duration;
    let runtime = tokio::runtime::Handle::current();

    // The pacer sleeps on a thread of its own: tokio's timer wheel ticks in whole
    // milliseconds, so at 1,000 requests/s and more it would release them in bursts up to a
    // millisecond late, while a thread's nanosleep wakes within a few tens of microseconds.
    let (task_shards, task_lateness) = (shards.clone(), lateness.clone());
    let pacer = tokio::task::spawn_blocking(move || {
        let mut paced = Paced { inflight: JoinSet::new(), due: 0, dropped: 0, peak_inflight: 0 };
        for seq in 0..budget {
            let due = started + Duration::from_secs_f64(seq as f64 / open.rate);
            if due >= deadline {
                break;
            }
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            paced.due += 1;
            while paced.inflight.try_join_next().is_some() {}
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                paced.dropped += 1;
                continue;
            };
            paced.peak_inflight = paced.peak_inflight.max(open.max_inflight - slots.available_permits());
            let (op, shards, lateness) = (op.clone(), task_shards.clone(), task_lateness.clone());
            let request = async move {
                lateness.note(Instant::now().saturating_duration_since(due));
                let outcome = op((seq % clients as u64) as usize, seq).await;
                record(&shards, seq as usize, outcome, due.elapsed());
                drop(slot);
            };
            paced.inflight.spawn_on(request, &runtime);
        }
        paced
    });
    let Paced { mut inflight, due, dropped, peak_inflight } = pacer.await.expect("the pacer never panics");

    let hard_stop = tokio::time::Instant::now() + limits.grace;
    let mut aborted_clients = 0;
    loop {
        match tokio::time::timeout_at(hard_stop, inflight.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                aborted_clients = inflight.len();
                inflight.shutdown().await;
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let (loadgen_cpu_s, peer_cpu_s) = cpu.finish();
    let stats = OpenLoopStats {
        rate: open.rate,
        max_inflight: open.max_inflight,
        due,
        sent: due - dropped,
        dropped,
        late: lateness.late.load(Ordering::Relaxed),
        max_late: Duration::from_micros(lateness.max_us.load(Ordering::Relaxed)),
        peak_inflight,
    };
    let tally = merged(&shards);
    LoopResult { clients, elapsed, tally, aborted_clients, loadgen_cpu_s, peer_cpu_s, open: Some(stats) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Outcome, Pace, run_loop, run_phased};

    fn open(rate: f64, max_inflight: usize) -> Pace {
        Pace::Open(OpenLoop { rate, max_inflight })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_at_the_rate_and_counts_latency_from_the_due_time() {
        let limits = Limits::new(Duration::from_millis(500), None);
        let result = run_loop(4, open(200.0, 100), limits, |_, _| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Outcome::Ok
        })
        .await;
        let stats = result.open.expect("open-loop figures");
        assert_eq!((stats.due, stats.dropped), (100, 0), "{stats:?}");
        assert_eq!(result.tally.ok, 100);
        assert!(stats.peak_inflight >= 3 && stats.peak_inflight <= 100, "{stats:?}");
        assert!(result.tally.latency_us.min() >= 20_000, "latency includes the 20 ms wait");
        assert!(result.elapsed >= Duration::from_millis(515), "the last request is due at 495 ms");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drops_what_comes_due_while_the_pool_is_full_and_charges_the_wait() {
        // One slot, a request every 10 ms, each taking 35 ms: about three of four are dropped.
        let limits = Limits::new(Duration::from_millis(400), None);
        let result = run_loop(1, open(100.0, 1), limits, |_, _| async {
            tokio::time::sleep(Duration::from_millis(35)).await;
            Outcome::Rejected("slow")
        })
        .await;
        let stats = result.open.expect("open-loop figures");
        assert_eq!(stats.due, 40);
        assert_eq!(stats.sent + stats.dropped, stats.due);
        assert_eq!(result.tally.total(), stats.sent);
        assert!((8..=14).contains(&stats.sent), "{stats:?}");
        assert_eq!(stats.peak_inflight, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn phases_share_the_budget_by_requests_due() {
        let limits = Limits::new(Duration::from_secs(10), Some(60));
        // As many clients as requests: none is dropped for a full pool however the machine
        // schedules the loop, so the counts below are the phases' split alone.
        let (head, tail) = run_phased(60, open(1_000.0, 10), limits, 20, |_, seq| async move {
            Outcome::Pending(["a", "b"][(seq % 2) as usize])
        })
        .await;
        assert_eq!(head.open.map(|o| o.due), Some(20));
        assert_eq!(tail.open.map(|o| o.due), Some(40));
        let both = head.then(&tail);
        assert_eq!(both.tally.pending_total(), 60);
        assert_eq!(both.open.map(|o| o.sent), Some(60));
    }
}
