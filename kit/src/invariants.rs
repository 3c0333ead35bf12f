//! The invariant watcher: a background task per service that checks, every period, what the
//! service's own data must satisfy (no negative stock, the ledger sums to the balance, ...).
//!
//! Each invariant is a named query that returns what breaks it (ids, expected, actual). The
//! watcher exports `mesh_invariant_violations{invariant}` (0 when healthy; one series per
//! invariant from the first pass on, so an alert can tell "healthy" from "never checked"),
//! `mesh_invariant_last_run_timestamp_seconds` after each pass, and logs every violation at
//! ERROR. A check that cannot run (the database is down) keeps its last value and says so
//! at WARN: the watcher reports what it saw, never a guess.
//!
//! The checks must stay cheap at a million rows: each service's queries use an index, or read
//! only rows changed since the previous pass, and say so where they are defined.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What a check found wrong: one line a person can act on.
pub type Violation = String;

/// At most this many violations of one invariant are logged and kept per pass; the gauge
/// still counts them all.
const KEPT_PER_PASS: usize = 20;

type CheckFn = dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Violation>>> + Send>> + Send + Sync;

struct Invariant {
    name: &'static str,
    check: Box<CheckFn>,
}

/// What the last passes found, per invariant: for tests and for `/metrics`-free inspection.
#[derive(Clone, Default)]
pub struct Findings(Arc<Mutex<FindingsInner>>);

#[derive(Default)]
struct FindingsInner {
    passes: u64,
    last: BTreeMap<&'static str, (u64, Vec<Violation>)>,
}

impl Findings {
    /// Completed passes so far.
    pub fn passes(&self) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).passes
    }

    /// How many violations of `invariant` the last pass that could check it found, and the
    /// first of them; `None` before any such pass.
    pub fn of(&self, invariant: &str) -> Option<(u64, Vec<Violation>)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).last.get(invariant).cloned()
    }

    /// Every invariant with its count from the last pass.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inner.last.iter().map(|(name, (count, _))| (*name, *count)).collect()
    }
}

/// A service's invariants and how often they are checked.
pub struct Watcher {
    service: &'static str,
    every: Duration,
    invariants: Vec<Invariant>,
    findings: Findings,
}

impl Watcher {
    pub fn new(service: &'static str, every: Duration) -> Self {
        Self {
            service,
            every: every.max(Duration::from_millis(100)),
            invariants: Vec::new(),
            findings: Findings::default(),
        }
    }

    /// Adds the invariant `name`, checked by `check` (which returns the violations it found).
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Violation>>> + Send + 'static,
    {
        self.invariants.push(Invariant { name, check: Box::new(move || Box::pin(check())) });
        self
    }

    pub fn findings(&self) -> Findings {
        self.findings.clone()
    }

    /// Checks every invariant once.
    pub async fn pass(&self) {
        for invariant in &self.invariants {
            match (invariant.check)().await {
                Ok(found) => self.record(invariant.name, found),
                Err(err) => tracing::warn!(
                    service = self.service,
                    invariant = invariant.name,
                    error = %format!("{err:#}"),
                    "invariant check could not run; its gauge keeps the last result"
                ),
            }
        }
        metrics::gauge!("mesh_invariant_last_run_timestamp_seconds").set(crate::time::now_millis().timestamp() as f64);
        self.findings.0.lock().unwrap_or_else(PoisonError::into_inner).passes += 1;
    }

    fn record(&self, name: &'static str, mut found: Vec<Violation>) {
        let count = found.len() as u64;
        metrics::gauge!("mesh_invariant_violations", "invariant" => name).set(count as f64);
        found.truncate(KEPT_PER_PASS);
        for violation in &found {
            tracing::error!(service = self.service, invariant = name, %violation, "invariant violated");
        }
        if count as usize > found.len() {
            tracing::error!(
                service = self.service,
                invariant = name,
                count,
                "invariant violated more times than logged"
            );
        }
        self.findings.0.lock().unwrap_or_else(PoisonError::into_inner).last.insert(name, (count, found));
    }

    /// Checks every period until `stop` fires; the first pass runs at once.
    pub fn spawn(self, stop: CancellationToken) -> Findings {
        let findings = self.findings();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => self.pass().await,
                }
            }
        });
        findings
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn each_pass_records_what_each_check_found_and_a_failed_check_keeps_the_last() {
        let broken = Arc::new(AtomicU64::new(0));
        let seen = broken.clone();
        let watcher = Watcher::new("test", Duration::from_secs(1))
            .check("always_fine", || async { Ok(Vec::new()) })
            .check("counted", move || {
                let n = seen.load(Ordering::Relaxed);
                async move {
                    if n == 99 {
                        anyhow::bail!("database down");
                    }
                    Ok((0..n).map(|i| format!("row {i} broken")).collect())
                }
            });
        let findings = watcher.findings();
        assert_eq!(findings.of("counted"), None, "nothing before the first pass");
        watcher.pass().await;
        assert_eq!(findings.of("counted"), Some((0, vec![])));
        broken.store(30, Ordering::Relaxed);
        watcher.pass().await;
        let (count, kept) = findings.of("counted").unwrap();
        assert_eq!((count, kept.len(), kept[0].as_str()), (30, KEPT_PER_PASS, "row 0 broken"));
        broken.store(99, Ordering::Relaxed);
        watcher.pass().await;
        assert_eq!(findings.of("counted").unwrap().0, 30, "a check that could not run keeps its last result");
        assert_eq!(findings.counts().get("always_fine"), Some(&0));
        assert_eq!(findings.passes(), 3);
    }
}
