//! What the driver counts: each request's [`Outcome`], its latency and, over HTTP, the status
//! it was answered with ([`Sample`]), merged into one [`Tally`] per run.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// What one request came to. Business rejections (sold out, out of stock) are correct
/// answers a scenario expects under contention, so they are counted apart from errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Rejected(&'static str),
    /// Accepted but not final yet (a `202`): the work goes on after the answer. Neither a
    /// success nor an error; the scenario settles it afterwards.
    Pending(&'static str),
    Error(String),
}

impl Outcome {
    /// This outcome of a request HTTP answered as `http` says.
    pub fn over_http(self, http: HttpStatus) -> Sample {
        Sample { outcome: self, http: Some(http) }
    }
}

/// How an HTTP exchange ended: its answer's status, or no answer at all (refused or lost
/// connection, timeout). Counted apart from the outcome, so a report shows what the server
/// actually said next to what the scenario made of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpStatus {
    Code(u16),
    Transport,
}

impl HttpStatus {
    /// A failure of the server or of the way to it: a 5xx, or no answer.
    pub fn is_failure(self) -> bool {
        match self {
            HttpStatus::Code(code) => (500..=599).contains(&code),
            HttpStatus::Transport => true,
        }
    }
}

impl fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpStatus::Code(code) => write!(f, "{code}"),
            HttpStatus::Transport => f.write_str("transport"),
        }
    }
}

/// What a scenario's op hands the driver: the outcome, and the HTTP status when the request
/// went over HTTP (a gRPC op returns a bare [`Outcome`], which converts into a sample).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub outcome: Outcome,
    pub http: Option<HttpStatus>,
}

impl From<Outcome> for Sample {
    fn from(outcome: Outcome) -> Self {
        Self { outcome, http: None }
    }
}

/// Latencies and outcome counts of a run (or of one shard of it).
#[derive(Clone, Debug)]
pub struct Tally {
    /// Latency of every completed request, in microseconds.
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub pending: BTreeMap<&'static str, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Requests by the HTTP status they got; empty for a scenario that does not speak HTTP.
    pub statuses: BTreeMap<HttpStatus, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    pub fn new() -> Self {
        // 1 µs to 1 min at 3 significant digits: exact enough for p99.9 and bounded in size.
        let latency_us = Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid");
        Self {
            latency_us,
            ok: 0,
            rejected: BTreeMap::new(),
            pending: BTreeMap::new(),
            errors: BTreeMap::new(),
            statuses: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, sample: impl Into<Sample>, latency: Duration) {
        let Sample { outcome, http } = sample.into();
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_us.saturating_record(micros);
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Rejected(label) => *self.rejected.entry(label).or_default() += 1,
            Outcome::Pending(label) => *self.pending.entry(label).or_default() += 1,
            Outcome::Error(label) => *self.errors.entry(label).or_default() += 1,
        }
        if let Some(status) = http {
            *self.statuses.entry(status).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.latency_us.add(&other.latency_us).expect("histograms share the same bounds");
        self.ok += other.ok;
        for (label, n) in &other.rejected {
            *self.rejected.entry(label).or_default() += n;
        }
        for (label, n) in &other.pending {
            *self.pending.entry(label).or_default() += n;
        }
        for (label, n) in &other.errors {
            *self.errors.entry(label.clone()).or_default() += n;
        }
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.latency_us.len()
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn pending_total(&self) -> u64 {
        self.pending.values().sum()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// HTTP requests that got a 5xx or no answer at all.
    pub fn http_failures(&self) -> u64 {
        self.statuses.iter().filter(|(status, _)| status.is_failure()).map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_counted_beside_outcomes_and_merged() {
        let ms = Duration::from_millis(1);
        let mut a = Tally::new();
        a.record(Outcome::Ok.over_http(HttpStatus::Code(201)), ms);
        a.record(Outcome::Rejected("sold_out").over_http(HttpStatus::Code(409)), ms);
        a.record(Outcome::Error("503 UNAVAILABLE".into()).over_http(HttpStatus::Code(503)), ms);
        let mut b = Tally::new();
        b.record(Outcome::Rejected("sold_out").over_http(HttpStatus::Code(409)), ms);
        b.record(Outcome::Error("Timeout".into()).over_http(HttpStatus::Transport), ms);
        b.record(Outcome::Error("429 RATE_LIMITED".into()).over_http(HttpStatus::Code(429)), ms);
        a.merge(&b);
        let counted: Vec<(String, u64)> = a.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        let want = [("201", 1), ("409", 2), ("429", 1), ("503", 1), ("transport", 1)];
        assert_eq!(counted, want.map(|(s, n)| (s.to_owned(), n)));
        assert_eq!(a.http_failures(), 2, "the 503 and the lost answer; a 429 is the client's");
        assert_eq!((a.ok, a.rejected_total(), a.errors_total()), (1, 2, 3));
    }

    #[test]
    fn a_grpc_outcome_has_no_status() {
        let mut t = Tally::new();
        t.record(Outcome::Ok, Duration::from_millis(1));
        assert!(t.statuses.is_empty());
        assert_eq!(t.http_failures(), 0);
    }
}
