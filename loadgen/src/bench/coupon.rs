//! `loadgen bench coupon`: raw-redis-gate (coupon-svc's Lua gate straight against Redis),
//! raw-onehop-gate (the same gate behind one HTTP hop, served inside loadgen: what a monolith
//! would do), then the coupon race through the gateway (REST), each as race, sold-out phase
//! and both. The gateway's rate is printed as a ratio of both baselines.

use anyhow::Context;
use serde_json::Value;

use super::{Deployment, Headline, Ratio, find, target, with_services};
use crate::driver::{Limits, Pace};
use crate::raw::{GateRace, ONEHOP_GATE, OneHop};
use crate::report::Report;
use crate::scenarios::coupon::{self, Race};

#[derive(Clone, Debug)]
pub struct CouponBench {
    /// The gateway is the target; spawned, coupon-svc starts first and the gateway routes to it.
    pub deployment: Deployment,
    pub limits: Limits,
    pub race: Race,
    pub raw_clients: usize,
    pub raw_connections: usize,
}

/// Both rates count every business answer: after the first 1,000 the work is saying no.
/// Beside the raw gate's (the ceiling of the gate itself), ours over the one-hop server's
/// is what the mesh costs over a single HTTP service doing the same gate.
const HEADLINE: Headline = Headline {
    bench: "coupon",
    raw_scenario: "raw-redis-gate",
    hot_scenario: "coupon",
    hot_key: "coupon_answers_rps",
    hot_unit: "issue answers/s (201 + 409)",
    raw_key: "raw_gate_rps",
    raw_unit: "raw EVALSHAs/s",
    rate: Report::answered_per_second,
    rate_title: "answers/s",
    also: &[Ratio { ours: "coupon", raw: ONEHOP_GATE, key: "ratio_to_onehop_gate" }],
};

/// Runs the whole coupon bench; `Ok(false)` when a correctness check failed.
pub async fn run(cfg: &CouponBench) -> anyhow::Result<bool> {
    cfg.deployment.check_binaries()?;
    // The one-hop phase holds both ends of its connections: fail now, not after the raw gate.
    let connections = cfg.race.pace.idle_connections(cfg.race.clients);
    crate::fds::ensure_room_for(
        2 * connections,
        &format!("--clients {} (the one-hop phase holds both ends)", cfg.race.clients),
    )?;
    let redis_url = cfg.deployment.redis_url.as_deref().context("bench coupon needs a Redis url")?;
    // The raw gate is the ceiling: always closed loop, whatever pace the HTTP phases run at.
    let raw = Race { clients: cfg.raw_clients, pace: Pace::Closed, ..cfg.race };
    let gate = GateRace { race: raw, connections: cfg.raw_connections };
    let mut reports = crate::raw::redis_gate(redis_url, &gate, cfg.limits).await?;
    reports.iter().for_each(Report::print);
    let d = &cfg.deployment;
    let onehop = OneHop { race: cfg.race, request_timeout: d.request_timeout, source_addresses: d.source_addresses };
    let baseline = crate::raw::onehop_gate(redis_url, &onehop, cfg.limits).await?;
    baseline.iter().for_each(Report::print);
    reports.extend(baseline);
    let (ours, memory) = with_services(&cfg.deployment, |target| async move {
        let reports = coupon::race("coupon", &target, &cfg.race, cfg.limits).await?;
        reports.iter().for_each(Report::print);
        Ok(reports)
    })
    .await?;
    reports.extend(ours);
    let targets = targets(&reports);
    Ok(super::finish(&HEADLINE, &reports, &memory, targets))
}

fn targets(reports: &[Report]) -> Vec<Value> {
    let mut targets = Vec::new();
    let (raw, ours) = (find(reports, HEADLINE.raw_scenario), find(reports, HEADLINE.hot_scenario));
    if let Some(ours) = ours {
        targets.push(target("issue answers/s >= 12000", ours.answered_per_second(), 12_000.0, true));
        targets.push(target("issue p99 ms < 20", ours.latency().p99, 20.0, false));
    }
    if let (Some(raw), Some(ours)) = (raw, ours) {
        let ratio = ours.answered_per_second() / raw.answered_per_second().max(1e-9);
        targets.push(target("ratio to the raw gate >= 0.2", ratio, 0.2, true));
    }
    targets
}
