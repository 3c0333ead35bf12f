//! `loadgen bench <service>`: the raw backend first, then the service's scenarios, then one
//! summary with our throughput as a ratio of the raw one (DESIGN.md, "Performance targets").
//!
//! What is shared lives here: starting the service (or using a running one), measuring
//! each scenario with the CPU the service burned, and the summary. Each service's module
//! says which scenarios run and which targets apply.

pub mod inventory;
pub mod points;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::procfs;
use crate::report::Report;
use crate::scenarios::{Ledger, Target};
use crate::spawn::{Memory, Service, Spawned};

/// Where the service of a bench is: already running at `target`, or started for the run.
#[derive(Clone, Debug)]
pub struct Deployment {
    /// Where an already running service listens; ignored when `spawn` is set.
    pub target: String,
    /// The binary to start for the run, on free ports with a fresh schema.
    pub spawn: Option<PathBuf>,
    pub mysql_url: String,
    /// Only for a service that uses Redis.
    pub redis_url: Option<String>,
    pub channels: usize,
    pub request_timeout: Duration,
}

/// Runs `scenarios` against the service (started first when asked, and stopped after, its
/// log kept if a check failed). Returns their reports and, when spawned, its memory.
async fn with_service<F, Fut>(
    service: &'static Service,
    d: &Deployment,
    scenarios: F,
) -> anyhow::Result<(Vec<Report>, Option<Memory>)>
where
    F: FnOnce(Target, Option<u32>) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Report>>>,
{
    let spawned = match &d.spawn {
        Some(bin) => {
            let started = Spawned::start(service, bin, &d.mysql_url, d.redis_url.as_deref()).await?;
            println!("spawned {} (pid {}) at {}, schema {}", bin.display(), started.pid(), started.url, started.schema);
            Some(started)
        }
        None => None,
    };
    let target = Target {
        url: spawned.as_ref().map_or_else(|| d.target.clone(), |s| s.url.clone()),
        channels: d.channels,
        request_timeout: d.request_timeout,
        ledger: spawned.as_ref().map(|s| Ledger { mysql_url: d.mysql_url.clone(), schema: s.schema.clone() }),
    };
    let reports = scenarios(target, spawned.as_ref().map(Spawned::pid)).await;
    let memory = spawned.as_ref().map(Spawned::memory);
    if let Some(started) = spawned {
        let keep_log = !reports.as_ref().is_ok_and(|r| r.iter().all(Report::passed));
        let log = started.log_path().to_owned();
        started.stop(keep_log).await?;
        if keep_log {
            println!("{} log kept at {}", service.binary, log.display());
        }
    }
    Ok((reports?, memory))
}

/// Runs a scenario and prints it, with the CPU the spawned service used meanwhile: with the
/// service, MySQL and loadgen on two cores, it shows whether the service or the row lock
/// is the bottleneck.
async fn measured(pid: Option<u32>, scenario: impl Future<Output = anyhow::Result<Report>>) -> anyhow::Result<Report> {
    let before = pid.and_then(procfs::cpu_seconds);
    let mut report = scenario.await?;
    if let Some(used) = pid.and_then(procfs::cpu_seconds).zip(before).map(|(after, before)| after - before) {
        let cores = used / report.run.elapsed.as_secs_f64().max(1e-9);
        report.extra("service_cpu", format!("{used:.2} s ({cores:.2} cores, setup included)"));
    }
    report.print();
    Ok(report)
}

fn find<'a>(reports: &'a [Report], scenario: &str) -> Option<&'a Report> {
    reports.iter().find(|r| r.scenario == scenario)
}

/// A target of DESIGN.md next to the figure this run got. Informational: absolute
/// numbers depend on the machine, which is why the ratio is the headline.
fn target(name: &str, got: f64, limit: f64, at_least: bool) -> Value {
    let met = if at_least { got >= limit } else { got < limit };
    json!({"target": name, "got": (got * 100.0).round() / 100.0, "met": met})
}

/// What a bench's summary leads with: its hot scenario as a ratio of the raw one.
#[derive(Clone, Copy, Debug)]
struct Headline {
    /// `inventory` for `bench inventory`.
    bench: &'static str,
    service: &'static Service,
    raw_scenario: &'static str,
    hot_scenario: &'static str,
    /// The JSON key of the hot rate (`hot_reservations_rps`).
    hot_key: &'static str,
    /// What the hot rate counts, for the ratio line (`hot reservations/s`).
    hot_unit: &'static str,
}

/// Prints the summary table and its JSON line; true when every check passed.
fn finish(h: &Headline, reports: &[Report], memory: Option<Memory>, mut targets: Vec<Value>) -> bool {
    if let Some(m) = memory {
        targets.push(target(
            &format!("{} peak RSS MiB < 64", h.service.binary),
            m.hwm_kib as f64 / 1024.0,
            64.0,
            false,
        ));
    }
    let summary = summarise(h, reports, memory, targets);
    println!("{}", summary_table(h, reports, &summary));
    println!("{summary}");
    summary["passed"] == true
}

fn summarise(h: &Headline, reports: &[Report], memory: Option<Memory>, targets: Vec<Value>) -> Value {
    let raw_rps = find(reports, h.raw_scenario).map_or(0.0, Report::ok_per_second);
    let hot_rps = find(reports, h.hot_scenario).map_or(0.0, Report::ok_per_second);
    let ratio = if raw_rps > 0.0 { (hot_rps / raw_rps * 1000.0).round() / 1000.0 } else { 0.0 };
    let scenarios: Value = reports
        .iter()
        .map(|r| {
            (
                r.scenario.clone(),
                json!({"ok_rps": r.to_json()["ok_rps"], "latency_ms": r.to_json()["latency_ms"], "passed": r.passed()}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let mut summary = json!({
        "scenario": format!("bench-{}", h.bench),
        "raw_update_rps": (raw_rps * 10.0).round() / 10.0,
    });
    summary[h.hot_key] = json!((hot_rps * 10.0).round() / 10.0);
    summary["ratio_hot_to_raw"] = json!(ratio);
    summary["scenarios"] = scenarios;
    summary["memory"] = json!(memory.map(Memory::to_json));
    summary["targets"] = json!(targets);
    summary["passed"] = json!(reports.iter().all(Report::passed));
    summary
}

fn summary_table(h: &Headline, reports: &[Report], summary: &Value) -> String {
    let mut out = format!("== bench {}: summary ==\n", h.bench);
    out += &format!(
        "  {:<22}{:>12}{:>10}{:>10}{:>10}{:>10}  checks\n",
        "scenario", "ok/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for r in reports {
        let l = r.latency();
        out += &format!(
            "  {:<22}{:>12.1}{:>10.2}{:>10.2}{:>10.2}{:>10.2}  {}\n",
            r.scenario,
            r.ok_per_second(),
            l.p50,
            l.p95,
            l.p99,
            l.max,
            if r.passed() { "PASS" } else { "FAIL" }
        );
    }
    out += &format!(
        "  ratio = ours / raw = {} {} / {} raw UPDATEs/s = {}\n",
        summary[h.hot_key], h.hot_unit, summary["raw_update_rps"], summary["ratio_hot_to_raw"]
    );
    if let Some(m) = summary["memory"].as_object() {
        out += &format!(
            "  {} memory: VmRSS {} MiB at end, VmHWM {} MiB, sampled peak {} MiB\n",
            h.service.binary, m["rss_mib"], m["hwm_mib"], m["sampled_peak_mib"]
        );
    }
    for t in summary["targets"].as_array().into_iter().flatten() {
        let met = if t["met"] == true { "met" } else { "missed" };
        out += &format!("  target {:<34} got {:<10} {met}\n", t["target"].as_str().unwrap_or(""), t["got"]);
    }
    out += &format!("  overall {}", if summary["passed"] == true { "PASS" } else { "FAIL" });
    out
}
