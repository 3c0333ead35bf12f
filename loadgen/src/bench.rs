//! `loadgen bench <service>`: the raw backend first, then the service's scenarios, then one
//! summary with our throughput as a ratio of the raw one (DESIGN.md, "Performance targets").

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::driver::Limits;
use crate::procfs;
use crate::report::Report;
use crate::scenarios::inventory::{self, Ledger, Target};
use crate::spawn::{Memory, SpawnedInventory};

#[derive(Clone, Debug)]
pub struct InventoryBench {
    /// Where an already running inventory-svc listens; ignored when `spawn` is set.
    pub target: String,
    /// The inventory-svc binary to start for the run, on free ports with a fresh schema.
    pub spawn: Option<PathBuf>,
    pub mysql_url: String,
    pub redis_url: String,
    pub limits: Limits,
    pub channels: usize,
    pub request_timeout: Duration,
    pub raw_clients: usize,
    pub hot_clients: usize,
    pub stock: i64,
    /// Stock of the sell-out race (0 skips it).
    pub race_stock: i64,
    pub read_clients: usize,
    pub read_products: usize,
}

/// Runs the whole inventory bench; `Ok(false)` when a correctness check failed.
pub async fn inventory(cfg: &InventoryBench) -> anyhow::Result<bool> {
    if let Some(bin) = &cfg.spawn {
        crate::spawn::check_binary(bin)?;
    }
    let raw = crate::raw::mysql_hot_update(&cfg.mysql_url, cfg.raw_clients, cfg.limits).await?;
    raw.print();

    let spawned = match &cfg.spawn {
        Some(bin) => {
            let service = SpawnedInventory::start(bin, &cfg.mysql_url, &cfg.redis_url).await?;
            println!("spawned {} (pid {}) at {}, schema {}", bin.display(), service.pid(), service.url, service.schema);
            Some(service)
        }
        None => None,
    };
    let target = Target {
        url: spawned.as_ref().map_or_else(|| cfg.target.clone(), |s| s.url.clone()),
        channels: cfg.channels,
        request_timeout: cfg.request_timeout,
        ledger: spawned.as_ref().map(|s| Ledger { mysql_url: cfg.mysql_url.clone(), schema: s.schema.clone() }),
    };
    let reports = service_scenarios(cfg, &target, spawned.as_ref().map(SpawnedInventory::pid)).await;
    let memory = spawned.as_ref().map(SpawnedInventory::memory);
    if let Some(service) = spawned {
        let keep_log = !reports.as_ref().is_ok_and(|r| r.iter().all(Report::passed));
        let log = service.log_path().to_owned();
        service.stop(keep_log).await?;
        if keep_log {
            println!("inventory-svc log kept at {}", log.display());
        }
    }
    let mut reports = reports?;
    reports.insert(0, raw);
    let summary = summarise(&reports, memory);
    println!("{}", summary_table(&reports, &summary));
    println!("{summary}");
    Ok(summary["passed"] == true)
}

async fn service_scenarios(cfg: &InventoryBench, target: &Target, pid: Option<u32>) -> anyhow::Result<Vec<Report>> {
    let mut reports = vec![measured(pid, inventory::hot(target, cfg.hot_clients, cfg.stock, cfg.limits)).await?];
    if cfg.race_stock > 0 {
        let race = inventory::hot(target, cfg.hot_clients, cfg.race_stock, cfg.limits);
        let race = async { race.await.map(|r| Report { scenario: "inventory-sellout".into(), ..r }) };
        reports.push(measured(pid, race).await?);
    }
    reports.push(measured(pid, inventory::read(target, cfg.read_clients, cfg.read_products, cfg.limits)).await?);
    Ok(reports)
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

fn summarise(reports: &[Report], memory: Option<Memory>) -> Value {
    let raw_rps = find(reports, "raw-mysql-hot-update").map_or(0.0, Report::ok_per_second);
    let hot = find(reports, "inventory-hot");
    let hot_rps = hot.map_or(0.0, Report::ok_per_second);
    let ratio = if raw_rps > 0.0 { (hot_rps / raw_rps * 1000.0).round() / 1000.0 } else { 0.0 };
    let mut targets = Vec::new();
    if let Some(hot) = hot {
        targets.push(target("hot reservations/s >= 3000", hot_rps, 3000.0, true));
        targets.push(target("hot p95 ms < 100", hot.latency().p95, 100.0, false));
    }
    if let Some(read) = find(reports, "inventory-read") {
        targets.push(target("cached reads/s >= 20000", read.ok_per_second(), 20_000.0, true));
        targets.push(target("read p99 ms < 10", read.latency().p99, 10.0, false));
    }
    if let Some(m) = memory {
        targets.push(target("inventory-svc peak RSS MiB < 64", m.hwm_kib as f64 / 1024.0, 64.0, false));
    }
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
    json!({
        "scenario": "bench-inventory",
        "raw_update_rps": (raw_rps * 10.0).round() / 10.0,
        "hot_reservations_rps": (hot_rps * 10.0).round() / 10.0,
        "ratio_hot_to_raw": ratio,
        "scenarios": scenarios,
        "memory": memory.map(Memory::to_json),
        "targets": targets,
        "passed": reports.iter().all(Report::passed),
    })
}

fn summary_table(reports: &[Report], summary: &Value) -> String {
    let mut out = String::from("== bench inventory: summary ==\n");
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
        "  ratio = ours / raw = {} hot reservations/s / {} raw UPDATEs/s = {}\n",
        summary["hot_reservations_rps"], summary["raw_update_rps"], summary["ratio_hot_to_raw"]
    );
    if let Some(m) = summary["memory"].as_object() {
        out += &format!(
            "  inventory-svc memory: VmRSS {} MiB at end, VmHWM {} MiB, sampled peak {} MiB\n",
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
