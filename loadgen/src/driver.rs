//! The driver every scenario runs on. By default a closed loop: N client tasks, each sending
//! its next request only when the previous one answered, until a deadline or a request budget.
//! It measures what the system sustains at a fixed concurrency (1,000 buyers), so throughput
//! and latency come from the same run and never from a queue the generator itself built up.
//!
//! [`Pace::Open`] runs the same op as an open loop instead ([`open_loop`]): requests at a fixed
//! arrival rate, latency counted from when each was due. That measures what users arriving at
//! that rate see, including the wait a closed loop hides (coordinated omission).

mod open_loop;
mod tally;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use self::open_loop::{LATE, OpenLoop, OpenLoopStats};
pub use self::tally::{HttpStatus, Outcome, Sample, Tally};

/// How a loop paces its requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Pace {
    /// Each client sends its next request when its previous one answered.
    #[default]
    Closed,
    /// Requests at a fixed arrival rate, whatever the answers' pace.
    Open(OpenLoop),
}

impl Pace {
    pub fn validate(&self) -> anyhow::Result<()> {
        match self {
            Pace::Closed => Ok(()),
            Pace::Open(open) => open.validate(),
        }
    }

    /// Connections a REST scenario should keep open between requests: one per client in a
    /// closed loop; an open loop may have up to its in-flight bound outstanding, each on a
    /// connection of its own, which should not be closed and reopened every time.
    pub fn idle_connections(&self, clients: usize) -> usize {
        match self {
            Pace::Closed => clients,
            Pace::Open(open) => open.max_inflight.max(clients),
        }
    }
}

/// When the loop stops: whichever of the two comes first.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub duration: Duration,
    pub max_requests: Option<u64>,
    /// How long in-flight requests may run past the deadline before their tasks are
    /// aborted; keeps the loop bounded even if a peer stops answering.
    pub grace: Duration,
}

impl Limits {
    pub fn new(duration: Duration, max_requests: Option<u64>) -> Self {
        Self { duration, max_requests, grace: Duration::from_secs(15) }
    }
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct LoopResult {
    /// Client tasks of a closed loop; in an open loop, how many client indexes the op saw.
    pub clients: usize,
    /// From the first request to the last answer (or the abort).
    pub elapsed: Duration,
    pub tally: Tally,
    /// Client tasks (closed loop) or requests (open loop) still waiting on an answer when
    /// the grace period ran out.
    pub aborted_clients: usize,
    /// CPU seconds the load generator itself burned during the run.
    pub loadgen_cpu_s: Option<f64>,
    /// CPU seconds the mesh and its backends on this box burned during the run, by process
    /// name ([`crate::procfs::PEERS`]).
    pub peer_cpu_s: BTreeMap<String, f64>,
    /// The schedule's own figures, for an open loop.
    pub open: Option<OpenLoopStats>,
}

impl LoopResult {
    /// Requests of the budget this run used: every answered one, and in an open loop every
    /// one that came due, dropped or not.
    pub fn budget_used(&self) -> u64 {
        self.open.as_ref().map_or(self.tally.total(), |o| o.due)
    }

    /// `self` followed by `next` on the same clients, as one run: counts and latencies
    /// merged, times and CPU added.
    pub fn then(&self, next: &LoopResult) -> LoopResult {
        let mut tally = self.tally.clone();
        tally.merge(&next.tally);
        let mut peer_cpu_s = self.peer_cpu_s.clone();
        for (name, used) in &next.peer_cpu_s {
            *peer_cpu_s.entry(name.clone()).or_default() += used;
        }
        LoopResult {
            clients: self.clients.max(next.clients),
            elapsed: self.elapsed + next.elapsed,
            tally,
            aborted_clients: self.aborted_clients + next.aborted_clients,
            loadgen_cpu_s: self.loadgen_cpu_s.zip(next.loadgen_cpu_s).map(|(a, b)| a + b),
            peer_cpu_s,
            open: self.open.as_ref().zip(next.open.as_ref()).map(|(a, b)| a.then(b)),
        }
    }
}

/// CPU seconds of loadgen and of its peers over a run, from its start to [`Self::finish`].
struct CpuWindow {
    own: Option<f64>,
    peers: crate::procfs::PeerCpu,
}

impl CpuWindow {
    fn start() -> Self {
        Self { own: crate::procfs::own_cpu_seconds(), peers: crate::procfs::PeerCpu::take() }
    }

    /// `(loadgen_cpu_s, peer_cpu_s)` since the start.
    fn finish(self) -> (Option<f64>, BTreeMap<String, f64>) {
        let own = crate::procfs::own_cpu_seconds().zip(self.own).map(|(after, before)| after - before);
        (own, crate::procfs::PeerCpu::take().since(&self.peers))
    }
}

// Client tasks record into a few shards rather than one histogram each: 1,000 full
// histograms would cost hundreds of MB, and one shared lock would serialise the clients.
const SHARDS: usize = 16;

type Shards = Arc<Vec<Mutex<Tally>>>;

fn shards() -> Shards {
    Arc::new((0..SHARDS).map(|_| Mutex::new(Tally::new())).collect())
}

fn record(shards: &Shards, key: usize, sample: impl Into<Sample>, latency: Duration) {
    shards[key % SHARDS].lock().unwrap_or_else(PoisonError::into_inner).record(sample, latency);
}

fn merged(shards: &Shards) -> Tally {
    let mut tally = Tally::new();
    for shard in shards.iter() {
        tally.merge(&shard.lock().unwrap_or_else(PoisonError::into_inner));
    }
    tally
}

/// Runs `op` closed loop on `clients` tasks, or open loop at the pace's rate (where request
/// `seq` is sent as client `seq % clients`, so an op that gives each client a user of its own
/// spreads its users the same way).
pub async fn run_loop<F, Fut>(clients: usize, pace: Pace, limits: Limits, op: F) -> LoopResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Into<Sample>> + Send + 'static,
{
    match pace {
        Pace::Closed => run_closed_loop(clients, limits, op).await,
        Pace::Open(open) => open_loop::run_open_loop(clients, open, limits, op).await,
    }
}

/// Runs `clients` tasks, each calling `op(client_idx, seq)` back to back until `limits`
/// stop it. `seq` is unique across the whole run (use it for idempotency keys).
pub async fn run_closed_loop<F, Fut>(clients: usize, limits: Limits, op: F) -> LoopResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Into<Sample>> + Send + 'static,
{
    let op = Arc::new(op);
    let shards = shards();
    let issued = Arc::new(AtomicU64::new(0));
    let budget = limits.max_requests.unwrap_or(u64::MAX);
    let cpu = CpuWindow::start();
    let started = Instant::now();
    let deadline = started + limits.duration;

    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let (op, shards, issued) = (op.clone(), shards.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let seq = issued.fetch_add(1, Ordering::Relaxed);
                if seq >= budget {
                    break;
                }
                let sent = Instant::now();
                let outcome = op(client, seq).await;
                let latency = sent.elapsed();
                record(&shards, client, outcome, latency);
            }
        }));
    }

    let hard_stop = tokio::time::Instant::from_std(deadline + limits.grace);
    let mut aborted_clients = 0;
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(hard_stop, task).await {
            Ok(_) => {}
            Err(_) => {
                abort.abort();
                aborted_clients += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let (loadgen_cpu_s, peer_cpu_s) = cpu.finish();
    let tally = merged(&shards);
    LoopResult { clients, elapsed, tally, aborted_clients, loadgen_cpu_s, peer_cpu_s, open: None }
}

/// Two loops back to back on the same `clients` and pace, as two phases of one run: the
/// first `first` requests (a race), then whatever is left of the duration and the budget.
/// `op` sees one `seq` numbering: the second phase starts at `first`, so a `seq` that keys a
/// user or an idempotency key stays unique across both. In between, the requests in flight
/// drain for as long as the slowest request of the first phase takes.
pub async fn run_phased<F, Fut>(
    clients: usize,
    pace: Pace,
    limits: Limits,
    first: u64,
    op: F,
) -> (LoopResult, LoopResult)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Into<Sample>> + Send + 'static,
{
    let op = Arc::new(op);
    let budget = limits.max_requests.unwrap_or(u64::MAX);
    let race = Limits { max_requests: Some(first.min(budget)), ..limits };
    let racing = op.clone();
    let head = run_loop(clients, pace, race, move |client, seq| racing(client, seq)).await;
    let rest = Limits {
        duration: limits.duration.saturating_sub(head.elapsed),
        max_requests: limits.max_requests.map(|n| n.saturating_sub(head.budget_used())),
        ..limits
    };
    let tail = run_loop(clients, pace, rest, move |client, seq| op(client, first + seq)).await;
    (head, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stops_at_the_request_budget_and_counts_every_outcome() {
        let limits = Limits::new(Duration::from_secs(30), Some(1_000));
        let result = run_closed_loop(8, limits, |_, seq| async move {
            match seq % 4 {
                0 => Outcome::Rejected("out_of_stock"),
                1 => Outcome::Error("Unavailable".into()),
                _ => Outcome::Ok,
            }
        })
        .await;
        assert_eq!(result.tally.total(), 1_000);
        assert_eq!(result.tally.ok, 500);
        assert_eq!(result.tally.rejected_total(), 250);
        assert_eq!(result.tally.errors["Unavailable"], 250);
        assert_eq!(result.aborted_clients, 0);
    }

    #[tokio::test]
    async fn stops_at_the_deadline_and_aborts_what_hangs() {
        let limits =
            Limits { duration: Duration::from_millis(50), max_requests: None, grace: Duration::from_millis(50) };
        let result = run_closed_loop(4, limits, |client, _| async move {
            if client == 0 {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            Outcome::Ok
        })
        .await;
        assert_eq!(result.aborted_clients, 1);
        assert!(result.tally.ok > 0);
        assert!(result.elapsed < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn phases_split_the_budget_and_number_requests_across_both() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let limits = Limits::new(Duration::from_secs(30), Some(250));
        let (head, tail) = run_phased(4, Pace::Closed, limits, 100, move |_, seq| {
            log.lock().unwrap().push(seq);
            async move { if seq < 100 { Outcome::Ok } else { Outcome::Rejected("sold_out") } }
        })
        .await;
        assert_eq!((head.tally.ok, head.tally.total()), (100, 100));
        assert_eq!((tail.tally.rejected_total(), tail.tally.total()), (150, 150));
        let mut seqs = seen.lock().unwrap().clone();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..250).collect::<Vec<_>>());
        let both = head.then(&tail);
        assert_eq!((both.tally.ok, both.tally.rejected_total()), (100, 150));
        assert_eq!(both.elapsed, head.elapsed + tail.elapsed);
    }
}
