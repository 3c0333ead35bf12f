//! What a scenario prints: a table for people and one JSON line for CI and the docs.

use serde_json::{Map, Value, json};

use crate::driver::{LATE, LoopResult, OpenLoopStats};
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
    pub fn new(scenario: impl Into<String>, run: LoopResult) -> Self {
        Self { scenario: scenario.into(), run, params: Map::new(), extra: Map::new(), checks: Vec::new(), mysql: None }
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

/// The open loop's schedule: what was offered, what was achieved, and what the generator
/// itself could not keep to (late or dropped requests).
fn open_loop_rows(o: &OpenLoopStats, achieved: f64) -> String {
    let late =
        format!("{} sent > {} ms after due (max {:.2} ms)", o.late, LATE.as_millis(), o.max_late.as_secs_f64() * 1e3);
    format!(
        "  {:<14}offered {:.1}/s, achieved {achieved:.1}/s; {} due, {} sent, {} dropped (pool full), peak {} in \
         flight\n  {:<14}{late}; *latency from each request's due time\n",
        "open loop", o.rate, o.due, o.sent, o.dropped, o.peak_inflight, "late"
    )
}

fn open_loop_json(o: &OpenLoopStats, achieved: f64) -> Value {
    json!({
        "offered_rps": o.rate,
        "achieved_rps": round3(achieved),
        "max_inflight": o.max_inflight,
        "due": o.due,
        "sent": o.sent,
        "dropped": o.dropped,
        "late": o.late,
        "late_threshold_ms": LATE.as_secs_f64() * 1e3,
        "max_late_ms": round3(o.max_late.as_secs_f64() * 1e3),
        "peak_inflight": o.peak_inflight,
        "latency_from": "due time",
    })
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

    #[test]
    fn an_open_loop_reports_its_schedule_pending_answers_and_mysql_work() {
        let mut tally = Tally::new();
        tally.record(Outcome::Ok, Duration::from_millis(3));
        tally.record(Outcome::Pending("202 PENDING"), Duration::from_millis(5_000));
        let open = OpenLoopStats {
            rate: 1_000.0,
            max_inflight: 2_000,
            due: 4,
            sent: 2,
            dropped: 2,
            late: 1,
            max_late: Duration::from_micros(1_500),
            peak_inflight: 2,
        };
        let run = LoopResult {
            clients: 1,
            elapsed: Duration::from_secs(1),
            tally,
            aborted_clients: 0,
            loadgen_cpu_s: None,
            peer_cpu_s: Default::default(),
            open: Some(open),
        };
        let mut report = Report::new("open", run);
        let idle = crate::mysql_counters::Counts::default();
        let phase = crate::mysql_counters::Counts { statements: 24.0, transactions: 8.0, questions: 40.0 };
        report.mysql = Some(MysqlWork { net: phase, idle_per_s: idle, window: Duration::from_secs(1) });
        let json = report.to_json();
        assert_eq!(json["pending"]["202 PENDING"], 1);
        assert_eq!(json["ops"], 2);
        assert_eq!((json["open_loop"]["dropped"].clone(), json["open_loop"]["late"].clone()), (json!(2), json!(1)));
        assert_eq!(json["open_loop"]["max_late_ms"], 1.5);
        assert_eq!(json["mysql"]["per_op"], json!({"statements": 12.0, "transactions": 4.0, "questions": 20.0}));
        let table = report.table();
        for row in ["open loop 1000.0/s", "2 dropped", "202 PENDING   1", "12.00 statements, 4.00 transactions"] {
            assert!(table.contains(row), "{row:?} not in\n{table}");
        }
    }
}
