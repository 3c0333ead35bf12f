//! What a scenario prints: a table for people and one JSON line for CI and the docs.

use serde_json::{Map, Value, json};

use crate::driver::LoopResult;

/// A pass/fail property a scenario verified after its run (zero oversell, exact count).
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: String,
    pub run: LoopResult,
    /// How the run was set up (target, channels, stock): printed so a figure can be reproduced.
    pub params: Map<String, Value>,
    /// Scenario-specific figures (final stock, rows touched).
    pub extra: Map<String, Value>,
    pub checks: Vec<Check>,
}

/// Latency summary in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Report {
    pub fn new(scenario: impl Into<String>, run: LoopResult) -> Self {
        Self { scenario: scenario.into(), run, params: Map::new(), extra: Map::new(), checks: Vec::new() }
    }

    pub fn param(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    pub fn extra(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) -> &mut Self {
        self.checks.push(Check { name: name.to_owned(), passed, detail: detail.into() });
        self
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    fn per_second(&self, n: u64) -> f64 {
        let secs = self.run.elapsed.as_secs_f64();
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    }

    /// Every answered request per second, errors included.
    pub fn throughput(&self) -> f64 {
        self.per_second(self.run.tally.total())
    }

    /// Successful requests per second (reservations/s, reads/s).
    pub fn ok_per_second(&self) -> f64 {
        self.per_second(self.run.tally.ok)
    }

    /// Requests that got their business answer per second: successes and expected
    /// rejections (sold out), errors excluded. The rate of a race, where most answers are "no".
    pub fn answered_per_second(&self) -> f64 {
        self.per_second(self.run.tally.ok + self.run.tally.rejected_total())
    }

    /// Cores used during the run, by process: loadgen first, then its peers on the box,
    /// busiest first.
    pub fn cores(&self) -> Vec<(String, f64)> {
        let secs = self.run.elapsed.as_secs_f64().max(1e-9);
        let mut peers: Vec<(String, f64)> =
            self.run.peer_cpu_s.iter().map(|(name, used)| (name.clone(), used / secs)).collect();
        peers.sort_by(|a, b| b.1.total_cmp(&a.1));
        let own = self.run.loadgen_cpu_s.map(|used| ("loadgen".to_owned(), used / secs));
        own.into_iter().chain(peers).collect()
    }

    pub fn latency(&self) -> Latency {
        let h = &self.run.tally.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }

    pub fn to_json(&self) -> Value {
        let t = &self.run.tally;
        let l = self.latency();
        let checks: Map<String, Value> =
            self.checks.iter().map(|c| (c.name.clone(), json!({"passed": c.passed, "detail": c.detail}))).collect();
        json!({
            "scenario": self.scenario,
            "params": self.params,
            "clients": self.run.clients,
            "elapsed_s": round3(self.run.elapsed.as_secs_f64()),
            "requests": t.total(),
            "ok": t.ok,
            "rejected": t.rejected,
            "errors": t.errors,
            "throughput_rps": round3(self.throughput()),
            "ok_rps": round3(self.ok_per_second()),
            "answered_rps": round3(self.answered_per_second()),
            "latency_ms": {"p50": l.p50, "p95": l.p95, "p99": l.p99, "max": l.max},
            "aborted_clients": self.run.aborted_clients,
            "loadgen_cpu_s": self.run.loadgen_cpu_s.map(round3),
            "peer_cpu_s": self.run.peer_cpu_s.iter().map(|(k, v)| (k.clone(), json!(round3(*v)))).collect::<Map<_, _>>(),
            "extra": self.extra,
            "checks": checks,
            "passed": self.passed(),
        })
    }

    /// The human table, then the JSON summary as the last line (so `tail -1` or
    /// `grep '^{'` finds it).
    pub fn print(&self) {
        println!("{}", self.table());
        println!("{}", self.to_json());
    }

    pub fn table(&self) -> String {
        let t = &self.run.tally;
        let l = self.latency();
        let mut out = format!("== {} ==\n", self.scenario);
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect();
        if !params.is_empty() {
            out += &format!("  {:<14}{}\n", "setup", params.join(" "));
        }
        out += &format!(
            "  {:<14}{} clients, {:.2} s{}\n",
            "run",
            self.run.clients,
            self.run.elapsed.as_secs_f64(),
            if self.run.aborted_clients > 0 {
                format!(", {} clients aborted", self.run.aborted_clients)
            } else {
                String::new()
            }
        );
        out += &format!("  {:<14}{}\n", "requests", t.total());
        out += &format!("  {:<14}{} ({:.1}/s)\n", "ok", t.ok, self.ok_per_second());
        for (label, n) in &t.rejected {
            out += &format!("  {}{n}\n", row_name(label));
        }
        let errors = if t.errors.is_empty() {
            "0".to_owned()
        } else {
            t.errors.iter().map(|(code, n)| format!("{code}={n}")).collect::<Vec<_>>().join(" ")
        };
        out += &format!("  {:<14}{errors}\n", "errors");
        out += &format!("  {:<14}{:.1} req/s\n", "throughput", self.throughput());
        out +=
            &format!("  {:<14}p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}\n", "latency ms", l.p50, l.p95, l.p99, l.max);
        if let Some(cpu) = self.run.loadgen_cpu_s {
            let cores = cpu / self.run.elapsed.as_secs_f64().max(1e-9);
            out += &format!("  {:<14}{cpu:.2} s ({cores:.2} cores)\n", "loadgen cpu");
        }
        let cores = self.cores();
        if cores.len() > 1 {
            let each: Vec<String> = cores.iter().map(|(name, n)| format!("{name} {n:.2}")).collect();
            let sum: f64 = cores.iter().map(|(_, n)| n).sum();
            let of = std::thread::available_parallelism().map_or(0, usize::from);
            out += &format!("  {:<14}{} = {sum:.2} of {of}\n", "cores", each.join(" + "));
        }
        for (k, v) in &self.extra {
            out += &format!("  {}{}\n", row_name(k), plain(v));
        }
        for c in &self.checks {
            out += &format!("  {:<14}{} {}: {}\n", "check", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
        }
        out.trim_end().to_owned()
    }
}

/// A row's name padded to the table's first column, and never run into its value
/// (`409 OUT_OF_STOCK` is longer than the column).
fn row_name(name: &str) -> String {
    format!("{name:<13} ")
}

/// A JSON value without quotes around strings, for the table.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::driver::{Outcome, Tally};

    #[test]
    fn summarises_counts_rates_and_percentiles() {
        let mut tally = Tally::new();
        for i in 1..=100u64 {
            let outcome = if i <= 90 { Outcome::Ok } else { Outcome::Rejected("out_of_stock") };
            tally.record(outcome, Duration::from_millis(i));
        }
        tally.record(Outcome::Error("Unavailable".into()), Duration::from_millis(500));
        let peer_cpu_s = [("gateway".to_owned(), 1.0), ("redis-server".to_owned(), 0.5)].into();
        let run = LoopResult {
            clients: 4,
            elapsed: Duration::from_secs(2),
            tally,
            aborted_clients: 0,
            loadgen_cpu_s: Some(0.2),
            peer_cpu_s,
        };
        let mut report = Report::new("unit", run);
        report.check("invariant", true, "ok");
        let json = report.to_json();
        assert_eq!(json["requests"], 101);
        assert_eq!(json["ok"], 90);
        assert_eq!(json["rejected"]["out_of_stock"], 10);
        assert_eq!(json["errors"]["Unavailable"], 1);
        assert_eq!(json["ok_rps"], 45.0);
        assert_eq!(json["answered_rps"], 50.0);
        assert!(report.table().contains("loadgen 0.10 + gateway 0.50 + redis-server 0.25 = 0.85 of"));
        let l = report.latency();
        assert!((49.0..=51.5).contains(&l.p50), "{l:?}");
        assert!((499.0..=501.0).contains(&l.max), "{l:?}");
        assert!(report.passed());
        report.check("exact", false, "no");
        assert!(!report.passed());
        assert!(report.table().contains("FAIL exact"));
    }
}
