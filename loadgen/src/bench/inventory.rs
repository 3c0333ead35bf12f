//! `loadgen bench inventory`: raw-mysql-hot-update, inventory-hot, the sell-out race,
//! inventory-read.

use serde_json::Value;

use super::{Deployment, Headline, find, printed, target, with_services};
use crate::driver::Limits;
use crate::report::Report;
use crate::scenarios::{Target, inventory};

#[derive(Clone, Debug)]
pub struct InventoryBench {
    pub deployment: Deployment,
    pub limits: Limits,
    pub raw_clients: usize,
    pub hot_clients: usize,
    pub stock: i64,
    /// Stock of the sell-out race (0 skips it).
    pub race_stock: i64,
    pub read_clients: usize,
    pub read_products: usize,
}

const HEADLINE: Headline = Headline {
    bench: "inventory",
    raw_scenario: "raw-mysql-hot-update",
    hot_scenario: "inventory-hot",
    hot_key: "hot_reservations_rps",
    hot_unit: "hot reservations/s",
    raw_key: "raw_update_rps",
    raw_unit: "raw UPDATEs/s",
    rate: Report::ok_per_second,
    rate_title: "ok/s",
    also: &[],
};

/// Runs the whole inventory bench; `Ok(false)` when a correctness check failed.
pub async fn run(cfg: &InventoryBench) -> anyhow::Result<bool> {
    cfg.deployment.check_binaries()?;
    let raw = crate::raw::mysql_hot_update(
        &crate::raw::PRODUCT_STOCK,
        &cfg.deployment.mysql_url,
        cfg.raw_clients,
        cfg.limits,
    )
    .await?;
    raw.print();
    let (mut reports, memory) =
        with_services(&cfg.deployment, |target| async move { scenarios(cfg, &target).await }).await?;
    reports.insert(0, raw);
    let targets = targets(&reports);
    Ok(super::finish(&HEADLINE, &reports, &memory, targets))
}

async fn scenarios(cfg: &InventoryBench, target: &Target) -> anyhow::Result<Vec<Report>> {
    let mut reports = vec![printed(inventory::hot(target, cfg.hot_clients, cfg.stock, cfg.limits)).await?];
    if cfg.race_stock > 0 {
        let race = inventory::hot(target, cfg.hot_clients, cfg.race_stock, cfg.limits);
        let race = async { race.await.map(|r| Report { scenario: "inventory-sellout".into(), ..r }) };
        reports.push(printed(race).await?);
    }
    reports.push(printed(inventory::read(target, cfg.read_clients, cfg.read_products, cfg.limits)).await?);
    Ok(reports)
}

fn targets(reports: &[Report]) -> Vec<Value> {
    let mut targets = Vec::new();
    if let Some(hot) = find(reports, "inventory-hot") {
        targets.push(target("hot reservations/s >= 3000", hot.ok_per_second(), 3000.0, true));
        targets.push(target("hot p95 ms < 100", hot.latency().p95, 100.0, false));
    }
    if let Some(read) = find(reports, "inventory-read") {
        targets.push(target("cached reads/s >= 20000", read.ok_per_second(), 20_000.0, true));
        targets.push(target("read p99 ms < 10", read.latency().p99, 10.0, false));
    }
    targets
}
