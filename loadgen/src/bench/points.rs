//! `loadgen bench points`: raw-mysql-hot-debit, points-hot, points-spread.

use super::{Deployment, Headline, measured, with_service};
use crate::driver::Limits;
use crate::report::Report;
use crate::scenarios::{Target, points};
use crate::spawn::POINT;

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
    service: &POINT,
    raw_scenario: "raw-mysql-hot-debit",
    hot_scenario: "points-hot",
    hot_key: "hot_movements_rps",
    hot_unit: "hot charges+uses/s",
};

/// Runs the whole points bench; `Ok(false)` when a correctness check failed.
pub async fn run(cfg: &PointsBench) -> anyhow::Result<bool> {
    if let Some(bin) = &cfg.deployment.spawn {
        POINT.check_binary(bin)?;
    }
    let raw = crate::raw::mysql_hot_update(
        &crate::raw::POINT_BALANCE,
        &cfg.deployment.mysql_url,
        cfg.raw_clients,
        cfg.limits,
    )
    .await?;
    raw.print();
    let (mut reports, memory) =
        with_service(&POINT, &cfg.deployment, |target, pid| async move { scenarios(cfg, &target, pid).await }).await?;
    reports.insert(0, raw);
    // DESIGN.md sets no throughput target for points: the ratio and the memory bound apply.
    Ok(super::finish(&HEADLINE, &reports, memory, Vec::new()))
}

async fn scenarios(cfg: &PointsBench, target: &Target, pid: Option<u32>) -> anyhow::Result<Vec<Report>> {
    Ok(vec![
        measured(pid, points::hot(target, &cfg.hot, cfg.limits)).await?,
        measured(pid, points::spread(target, &cfg.spread, cfg.limits)).await?,
    ])
}
