//! What a scenario prints: a table for people and one JSON line for CI and the docs.

mod open_loop;

use serde_json::{Map, Value, json};

use self::open_loop::{open_loop_json, open_loop_rows};
use crate::driver::{HttpStatus, LoopResult};
use crate::mysql_counters::MysqlWork;

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
    /// MySQL's own counters over the run, when the scenario read them.
    pub mysql: Option<MysqlWork>,
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
    /// A report of `run`; one whose requests went over HTTP starts with the "no 5xx" check.
    pub fn new(scenario: impl Into<String>, run: LoopResult) -> Self {
        let mut report = Self {
            scenario: scenario.into(),
            run,
            params: Map::new(),
            extra: Map::new(),
            checks: Vec::new(),
            mysql: None,
        };
        report.check_http();
        report
    }

    /// A 5xx or a request without an answer fails the run whatever the scenario's own checks
    /// say: under load a server must answer, and answer with what went wrong on the client's
    /// side (409, 429) when it says no.
    fn check_http(&mut self) {
        let t = &self.run.tally;
        if t.statuses.is_empty() {
            return;
        }
        let failures = t.http_failures();
        let transport = t.statuses.get(&HttpStatus::Transport).copied().unwrap_or(0);
        let detail = format!("{} of {} requests got a 5xx ({transport} no answer at all)", failures, t.total());
        self.check("no 5xx", failures == 0, detail);
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

    /// Requests the system took and answered without an error: successes, expected rejections
    /// and accepted-but-pending ones. What the per-operation costs (CPU, SQL) are divided by.
    pub fn ops(&self) -> u64 {
        let t = &self.run.tally;
        t.ok + t.rejected_total() + t.pending_total()
    }

    /// CPU seconds used during the run, by process: loadgen first, then its peers on the box,
    /// busiest first.
    fn cpu_seconds(&self) -> Vec<(String, f64)> {
        let mut peers: Vec<(String, f64)> = self.run.peer_cpu_s.iter().map(|(n, s)| (n.clone(), *s)).collect();
        peers.sort_by(|a, b| b.1.total_cmp(&a.1));
        let own = self.run.loadgen_cpu_s.map(|used| ("loadgen".to_owned(), used));
        own.into_iter().chain(peers).collect()
    }

    /// CPU microseconds per operation ([`Self::ops`]), by process in the order of [`Self::cores`]:
    /// unlike cores, comparable between runs of different rates.
    pub fn cpu_us_per_op(&self) -> Vec<(String, f64)> {
        let ops = self.ops().max(1) as f64;
        self.cpu_seconds().into_iter().map(|(name, used)| (name, used * 1e6 / ops)).collect()
    }

    /// Cores used during the run, by process: loadgen first, then its peers on the box,
    /// busiest first.
    pub fn cores(&self) -> Vec<(String, f64)> {
        let secs = self.run.elapsed.as_secs_f64().max(1e-9);
        self.cpu_seconds().into_iter().map(|(name, used)| (name, used / secs)).collect()
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
            "pending": t.pending,
            "errors": t.errors,
            "statuses": t.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<Map<_, _>>(),
            "throughput_rps": round3(self.throughput()),
            "ok_rps": round3(self.ok_per_second()),
            "answered_rps": round3(self.answered_per_second()),
            "latency_ms": {"p50": l.p50, "p95": l.p95, "p99": l.p99, "max": l.max},
            "aborted_clients": self.run.aborted_clients,
            "loadgen_cpu_s": self.run.loadgen_cpu_s.map(round3),
            "peer_cpu_s": self.run.peer_cpu_s.iter().map(|(k, v)| (k.clone(), json!(round3(*v)))).collect::<Map<_, _>>(),
            "ops": self.ops(),
            "cpu_us_per_op": self.cpu_us_per_op().into_iter().map(|(k, v)| (k, json!(v.round()))).collect::<Map<_, _>>(),
            "open_loop": self.run.open.as_ref().map(|o| open_loop_json(o, self.throughput())),
            "mysql": self.mysql.as_ref().map(|m| m.to_json(self.ops())),
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
        let (pace, aborted) = match &self.run.open {
            None => (format!("{} clients", self.run.clients), "clients"),
            Some(o) => (format!("open loop {:.1}/s, at most {} in flight", o.rate, o.max_inflight), "requests"),
        };
        let aborted = match self.run.aborted_clients {
            0 => String::new(),
            n => format!(", {n} {aborted} aborted"),
        };
        out += &format!("  {:<14}{pace}, {:.2} s{aborted}\n", "run", self.run.elapsed.as_secs_f64());
        if let Some(o) = &self.run.open {
            out += &open_loop_rows(o, self.throughput());
        }
        out += &format!("  {:<14}{}\n", "requests", t.total());
        out += &format!("  {:<14}{} ({:.1}/s)\n", "ok", t.ok, self.ok_per_second());
        for (label, n) in t.rejected.iter().chain(&t.pending) {
            out += &format!("  {}{n}\n", row_name(label));
        }
        let errors = if t.errors.is_empty() {
            "0".to_owned()
        } else {
            t.errors.iter().map(|(code, n)| format!("{code}={n}")).collect::<Vec<_>>().join(" ")
        };
        out += &format!("  {:<14}{errors}\n", "errors");
        if !t.statuses.is_empty() {
            let statuses: Vec<String> = t.statuses.iter().map(|(status, n)| format!("{status}={n}")).collect();
            out += &format!("  {:<14}{}\n", "statuses", statuses.join(" "));
        }
        out += &format!("  {:<14}{:.1} req/s\n", "throughput", self.throughput());
        let latency = if self.run.open.is_some() { "latency* ms" } else { "latency ms" };
        out += &format!("  {latency:<14}p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}\n", l.p50, l.p95, l.p99, l.max);
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
        let per_op = self.cpu_us_per_op();
        if !per_op.is_empty() {
            let each: Vec<String> = per_op.iter().map(|(name, us)| format!("{name} {us:.0}")).collect();
            let sum: f64 = per_op.iter().map(|(_, us)| us).sum();
            out += &format!("  {:<14}{} = {sum:.0} per op ({} ops)\n", "cpu us/op", each.join(" + "), self.ops());
        }
        if let Some(mysql) = &self.mysql {
            out += &format!("  {:<14}{}\n", "mysql per op", mysql.summary(self.ops()));
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
            open: None,
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
        assert_eq!(report.ops(), 100);
        assert_eq!(json["cpu_us_per_op"], json!({"loadgen": 2000.0, "gateway": 10000.0, "redis-server": 5000.0}));
        assert!(report.table().contains("loadgen 2000 + gateway 10000 + redis-server 5000 = 17000 per op"));
        assert_eq!(json["open_loop"], Value::Null);
        let l = report.latency();
        assert!((49.0..=51.5).contains(&l.p50), "{l:?}");
        assert!((499.0..=501.0).contains(&l.max), "{l:?}");
        assert!(report.passed());
        report.check("exact", false, "no");
        assert!(!report.passed());
        assert!(report.table().contains("FAIL exact"));
    }

    fn run_of(tally: Tally) -> LoopResult {
        LoopResult {
            clients: 2,
            elapsed: Duration::from_secs(1),
            tally,
            aborted_clients: 0,
            loadgen_cpu_s: None,
            peer_cpu_s: Default::default(),
            open: None,
        }
    }

    #[test]
    fn an_http_run_counts_statuses_and_fails_on_a_5xx_or_a_lost_answer() {
        let ms = Duration::from_millis(1);
        let mut tally = Tally::new();
        tally.record(Outcome::Ok.over_http(HttpStatus::Code(201)), ms);
        for _ in 0..3 {
            tally.record(Outcome::Rejected("sold_out").over_http(HttpStatus::Code(409)), ms);
        }
        tally.record(Outcome::Error("429 RATE_LIMITED".into()).over_http(HttpStatus::Code(429)), ms);
        let clean = Report::new("coupon", run_of(tally.clone()));
        assert!(clean.passed(), "a 429 is an error of the run, not of the server");
        assert!(clean.table().contains("statuses      201=1 409=3 429=1"), "{}", clean.table());
        assert_eq!(clean.to_json()["statuses"], json!({"201": 1, "409": 3, "429": 1}));
        assert_eq!(clean.to_json()["errors"], json!({"429 RATE_LIMITED": 1}), "the errors map stays");

        tally.record(Outcome::Error("503 UNAVAILABLE".into()).over_http(HttpStatus::Code(503)), ms);
        assert!(!Report::new("coupon", run_of(tally.clone())).passed());
        let mut lost = Tally::new();
        lost.record(Outcome::Error("Timeout".into()).over_http(HttpStatus::Transport), ms);
        let lost = Report::new("coupon", run_of(lost));
        assert!(!lost.passed());
        assert!(
            lost.table().contains("FAIL no 5xx: 1 of 1 requests got a 5xx (1 no answer at all)"),
            "{}",
            lost.table()
        );

        let mut grpc = Tally::new();
        grpc.record(Outcome::Error("Unavailable".into()), ms);
        let grpc = Report::new("inventory-hot", run_of(grpc));
        assert!(grpc.checks.is_empty() && !grpc.table().contains("statuses"));
        assert_eq!(grpc.to_json()["statuses"], json!({}));
    }
}
