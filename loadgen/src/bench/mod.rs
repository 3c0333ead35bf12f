//! `loadgen bench <service>`: the raw backend first, then the service's scenarios, then one
//! summary with our throughput as a ratio of the raw one (DESIGN.md, "Performance targets").
//!
//! What is shared lives here: starting the services (or using running ones), printing
//! each scenario, and the summary. Each service's module says which scenarios run and
//! which targets apply.

pub mod catalog;
pub mod checkout;
pub mod coupon;
pub mod inventory;
pub mod points;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::report::Report;
use crate::scenarios::{Credentials, Ledger, Target};
use crate::spawn::{Backing, Memory, MockPlatform, Service, Spawned};

/// Where the services of a bench are: already running at `target`, or started for the run.
#[derive(Clone, Debug)]
pub struct Deployment {
    /// Where the running entry point (a service, or the gateway) listens; ignored when
    /// `spawn` is not empty.
    pub target: String,
    /// The binaries to start for the run, in order, on free ports with fresh schemas: the
    /// last one is what the scenarios talk to; a gateway routes to those before it.
    pub spawn: Vec<(&'static Service, PathBuf)>,
    pub mysql_url: String,
    /// Only for a service that uses Redis.
    pub redis_url: Option<String>,
    pub channels: usize,
    pub request_timeout: Duration,
    /// REST only: the loopback source addresses the connections come from, at most.
    pub source_addresses: usize,
    /// REST only: the tokens sent; a spawned gateway gets `GATEWAY_AUTH=on` with their
    /// public key, or `off` when this is `None`.
    pub credentials: Option<Arc<Credentials>>,
    /// REST only: the gRPC address of the running service behind the gateway (a spawned
    /// one's is known), for setup without a REST route.
    pub backend: Option<String>,
}

impl Deployment {
    /// Fails early, before a bench spends minutes on its first phases, if a binary is missing.
    pub fn check_binaries(&self) -> anyhow::Result<()> {
        self.spawn.iter().try_for_each(|(service, bin)| service.check_binary(bin))
    }
}

/// Starts `d.spawn` in order, stopping what already runs if one fails to come up.
async fn start_all(d: &Deployment, data_platform_url: Option<&str>) -> anyhow::Result<Vec<Spawned>> {
    let jwt_public_key = d.credentials.as_deref().and_then(Credentials::public_pem);
    let backing =
        Backing { mysql_url: &d.mysql_url, redis_url: d.redis_url.as_deref(), data_platform_url, jwt_public_key };
    let mut started: Vec<Spawned> = Vec::new();
    for (service, bin) in &d.spawn {
        match Spawned::start(service, bin, backing, &started).await {
            Ok(s) => {
                let schema = s.schema.as_deref().map_or(String::new(), |schema| format!(", schema {schema}"));
                println!("spawned {} (pid {}) at {}{schema}", bin.display(), s.pid(), s.url);
                started.push(s);
            }
            Err(err) => {
                for s in started.into_iter().rev() {
                    let _ = s.stop(false).await;
                }
                return Err(err);
            }
        }
    }
    Ok(started)
}

/// Runs `scenarios` against the services (started first when asked, and stopped after,
/// last first, their logs kept if a check failed). Returns their reports and, per spawned
/// binary, its memory.
async fn with_services<F, Fut>(
    d: &Deployment,
    scenarios: F,
) -> anyhow::Result<(Vec<Report>, Vec<(&'static str, Memory)>)>
where
    F: FnOnce(Target) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Report>>>,
{
    // Served before the services that send to it start, and dropped (stopped) after they stop.
    let platform = match d.spawn.iter().any(|(service, _)| service.needs_data_platform()) {
        true => Some(MockPlatform::start().await?),
        false => None,
    };
    let spawned = start_all(d, platform.as_ref().map(|p| p.url.as_str())).await?;
    let ledger =
        spawned.iter().find_map(|s| s.schema.clone()).map(|schema| Ledger { mysql_url: d.mysql_url.clone(), schema });
    let target = Target {
        url: spawned.last().map_or_else(|| d.target.clone(), |s| s.url.clone()),
        channels: d.channels,
        request_timeout: d.request_timeout,
        ledger,
        data_platform: platform.as_ref().map(|p| p.url.clone()),
        source_addresses: d.source_addresses,
        credentials: d.credentials.clone(),
        backend: spawned.iter().find(|s| s.schema.is_some()).map(|s| s.url.clone()).or_else(|| d.backend.clone()),
    };
    let reports = scenarios(target).await;
    let memory = spawned.iter().map(|s| (s.binary(), s.memory())).collect();
    let keep_log = !reports.as_ref().is_ok_and(|r| r.iter().all(Report::passed));
    // Every process is stopped and cleaned up even if another one's cleanup failed.
    let mut stopped = Ok(());
    for started in spawned.into_iter().rev() {
        let (binary, log) = (started.binary(), started.log_path().to_owned());
        let result = started.stop(keep_log).await;
        if keep_log {
            println!("{binary} log kept at {}", log.display());
        }
        stopped = stopped.and(result);
    }
    stopped?;
    Ok((reports?, memory))
}

/// Runs a scenario and prints it. Every report carries the CPU each process on the box
/// used during its run: with the services, MySQL, Redis and loadgen on two cores, it shows
/// whether a service or a backend is the bottleneck.
async fn printed(scenario: impl Future<Output = anyhow::Result<Report>>) -> anyhow::Result<Report> {
    let report = scenario.await?;
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
    raw_scenario: &'static str,
    hot_scenario: &'static str,
    /// The JSON key of the hot rate (`hot_reservations_rps`).
    hot_key: &'static str,
    /// What the hot rate counts, for the ratio line (`hot reservations/s`).
    hot_unit: &'static str,
    /// The JSON key and the unit of the raw rate (`raw_update_rps`, `raw UPDATEs/s`).
    raw_key: &'static str,
    raw_unit: &'static str,
    /// The rate a scenario is compared by (successes, or every business answer of a race),
    /// and its column title in the summary.
    rate: fn(&Report) -> f64,
    rate_title: &'static str,
    /// Further ours / raw ratios, printed under the headline's.
    also: &'static [Ratio],
}

/// One more `ours / raw` line of a summary, both rates by [`Headline::rate`].
#[derive(Clone, Copy, Debug)]
struct Ratio {
    ours: &'static str,
    raw: &'static str,
    /// Its JSON key (`ratio_hot_to_raw_update`).
    key: &'static str,
}

fn ratio(ours: f64, raw: f64) -> f64 {
    if raw > 0.0 { (ours / raw * 1000.0).round() / 1000.0 } else { 0.0 }
}

/// Prints the summary table and its JSON line; true when every check passed.
fn finish(h: &Headline, reports: &[Report], memory: &[(&str, Memory)], mut targets: Vec<Value>) -> bool {
    for (binary, m) in memory {
        targets.push(target(&format!("{binary} peak RSS MiB < 64"), m.hwm_kib as f64 / 1024.0, 64.0, false));
    }
    let summary = summarise(h, reports, memory, targets);
    println!("{}", summary_table(h, reports, &summary));
    println!("{summary}");
    summary["passed"] == true
}

fn summarise(h: &Headline, reports: &[Report], memory: &[(&str, Memory)], targets: Vec<Value>) -> Value {
    let raw_rps = find(reports, h.raw_scenario).map_or(0.0, h.rate);
    let hot_rps = find(reports, h.hot_scenario).map_or(0.0, h.rate);
    let scenarios: Value = reports
        .iter()
        .map(|r| {
            let full = r.to_json();
            let mut line = json!({
                "ok_rps": full["ok_rps"],
                "answered_rps": full["answered_rps"],
                "latency_ms": full["latency_ms"],
                "passed": r.passed(),
            });
            if let Some(per_op) = full["mysql"].get("per_op") {
                line["mysql_per_op"] = per_op.clone();
            }
            (r.scenario.clone(), line)
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let mut summary = json!({"scenario": format!("bench-{}", h.bench)});
    summary[h.raw_key] = json!((raw_rps * 10.0).round() / 10.0);
    summary[h.hot_key] = json!((hot_rps * 10.0).round() / 10.0);
    summary["ratio_hot_to_raw"] = json!(ratio(hot_rps, raw_rps));
    for r in h.also {
        let rate = |scenario| find(reports, scenario).map_or(0.0, h.rate);
        summary[r.key] = json!(ratio(rate(r.ours), rate(r.raw)));
    }
    summary["scenarios"] = scenarios;
    summary["memory"] = memory.iter().map(|(binary, m)| ((*binary).to_owned(), m.to_json())).collect();
    summary["targets"] = json!(targets);
    summary["passed"] = json!(reports.iter().all(Report::passed));
    summary
}

fn summary_table(h: &Headline, reports: &[Report], summary: &Value) -> String {
    let mut out = format!("== bench {}: summary ==\n", h.bench);
    out += &format!(
        "  {:<22}{:>12}{:>10}{:>10}{:>10}{:>10}  checks\n",
        "scenario", h.rate_title, "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for r in reports {
        let l = r.latency();
        out += &format!(
            "  {:<22}{:>12.1}{:>10.2}{:>10.2}{:>10.2}{:>10.2}  {}\n",
            r.scenario,
            (h.rate)(r),
            l.p50,
            l.p95,
            l.p99,
            l.max,
            if r.passed() { "PASS" } else { "FAIL" }
        );
    }
    out += &format!(
        "  ratio = ours / raw = {} {} / {} {} = {}\n",
        summary[h.hot_key], h.hot_unit, summary[h.raw_key], h.raw_unit, summary["ratio_hot_to_raw"]
    );
    for r in h.also {
        out += &format!("  ratio = {} / {} = {}\n", r.ours, r.raw, summary[r.key]);
    }
    for (binary, m) in summary["memory"].as_object().into_iter().flatten() {
        out += &format!(
            "  {binary} memory: VmRSS {} MiB at end, VmHWM {} MiB, sampled peak {} MiB\n",
            m["rss_mib"], m["hwm_mib"], m["sampled_peak_mib"]
        );
    }
    for t in summary["targets"].as_array().into_iter().flatten() {
        let met = if t["met"] == true { "met" } else { "missed" };
        out += &format!("  target {:<34} got {:<10} {met}\n", t["target"].as_str().unwrap_or(""), t["got"]);
    }
    out += &format!("  overall {}", if summary["passed"] == true { "PASS" } else { "FAIL" });
    out
}
