//! `loadgen bench points`: raw-mysql-hot-debit, points-hot, points-spread.

use super::{Deployment, Headline, printed, with_services};
use crate::driver::Limits;
use crate::report::Report;
use crate::scenarios::{Target, points};

#[derive(Clone, Debug)]
pub struct PointsBench {
    pub deployment: Deployment,
    pub limits: Limits,
    pub raw_clients: usize,
    pub hot: points::Hot,
    pub spread: points::Spread,
}

const HEADLINE: Headline = Headline {
    bench: "points",
    raw_scenario: "raw-mysql-hot-debit",
    hot_scenario: "points-hot",
    hot_key: "hot_movements_rps",
    hot_unit: "hot charges+uses/s",
    raw_key: "raw_update_rps",
    raw_unit: "raw UPDATEs/s",
    rate: Report::ok_per_second,
    rate_title: "ok/s",
    also: &[],
};

/// Runs the whole points bench; `Ok(false)` when a correctness check failed.
pub async fn run(cfg: &PointsBench) -> anyhow::Result<bool> {
    cfg.deployment.check_binaries()?;
    let raw = crate::raw::mysql_hot_update(
        &crate::raw::POINT_BALANCE,
        &cfg.deployment.mysql_url,
        cfg.raw_clients,
        cfg.limits,
    )
    .await?;
    raw.print();
    let (mut reports, memory) =
        with_services(&cfg.deployment, |target| async move { scenarios(cfg, &target).await }).await?;
    reports.insert(0, raw);
    // DESIGN.md sets no throughput target for points: the ratio and the memory bound apply.
    Ok(super::finish(&HEADLINE, &reports, &memory, Vec::new()))
}

async fn scenarios(cfg: &PointsBench, target: &Target) -> anyhow::Result<Vec<Report>> {
    Ok(vec![
        printed(points::hot(target, &cfg.hot, cfg.limits)).await?,
        printed(points::spread(target, &cfg.spread, cfg.limits)).await?,
    ])
}
