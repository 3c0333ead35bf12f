//! The coupon-svc subcommands: `coupon` (through the gateway), the baselines `raw-redis-gate`
//! and `raw-onehop-gate`, and `bench coupon` that runs all three.

use std::path::PathBuf;

use clap::Args;

use super::{Auth, ClientArgs, DEFAULT_MYSQL, DEFAULT_REDIS, HttpArgs, PaceArgs, RunArgs};
use crate::bench::Deployment;
use crate::bench::coupon::CouponBench;
use crate::raw::{GateRace, OneHop};
use crate::report::Report;
use crate::scenarios::Ledger;
use crate::scenarios::coupon::{self, Race};
use crate::spawn::{COUPON, GATEWAY};

#[derive(Debug, Clone, Args)]
struct RaceArgs {
    /// Concurrent clients, each on its own keep-alive HTTP/1.1 connection (open loop: the
    /// connections opened before the run).
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Distinct users racing, one request each; the users after them make the sold-out traffic.
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Copies of the coupon.
    #[arg(long, default_value_t = 1_000)]
    total: i64,
    // --rate: request n (user n) is due at n/rate s, whatever the answers' pace.
    #[command(flatten)]
    pace: PaceArgs,
}

impl RaceArgs {
    fn race(&self) -> Race {
        Race { clients: self.clients, users: self.users, total: self.total, pace: self.pace.pace(None) }
    }
}

#[derive(Debug, Args)]
pub struct CouponArgs {
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    race: RaceArgs,
    #[command(flatten)]
    run: RunArgs,
    /// coupon-svc's MySQL schema: also checks the user_coupon rows directly.
    #[arg(long)]
    verify_schema: Option<String>,
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
}

#[derive(Debug, Args)]
pub struct RawGateArgs {
    #[arg(long, env = "LOADGEN_REDIS_URL", default_value = DEFAULT_REDIS)]
    redis_url: String,
    #[command(flatten)]
    race: RaceArgs,
    /// Multiplexed connections the clients share round-robin (coupon-svc holds one).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
pub struct OneHopArgs {
    #[arg(long, env = "LOADGEN_REDIS_URL", default_value = DEFAULT_REDIS)]
    redis_url: String,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    race: RaceArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
pub struct BenchCouponArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Start coupon-svc and a gateway routing only to it (free ports, fresh schema and key
    /// prefix), then stop both and remove what they stored.
    #[arg(long)]
    pub(super) spawn: bool,
    /// With --spawn: `on` starts the gateway with GATEWAY_AUTH=on and a key made for the run,
    /// and sends tokens signed with it; `off` starts it with GATEWAY_AUTH=off and sends none.
    /// Without --spawn: `off` sends no tokens, `on` those --jwt-signing-key signs.
    #[arg(long, value_enum, default_value_t = Auth::On)]
    pub(super) auth: Auth,
    /// The coupon-svc --spawn starts [default: coupon-svc next to this executable].
    #[arg(long, requires = "spawn")]
    bin: Option<PathBuf>,
    /// The gateway --spawn starts [default: gateway next to this executable].
    #[arg(long, requires = "spawn")]
    gateway_bin: Option<PathBuf>,
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
    #[arg(long, env = "LOADGEN_REDIS_URL", default_value = DEFAULT_REDIS)]
    redis_url: String,
    #[command(flatten)]
    pub(super) run: RunArgs,
    #[command(flatten)]
    race: RaceArgs,
    /// Client tasks of the raw gate race (always closed loop: it is the ceiling).
    #[arg(long, default_value_t = 256)]
    raw_clients: usize,
    /// Multiplexed Redis connections of the raw gate race.
    #[arg(long, default_value_t = 1)]
    raw_connections: usize,
}

/// Prints every report; true when all passed.
fn finish_all(reports: &[Report]) -> bool {
    reports.iter().for_each(Report::print);
    reports.iter().all(Report::passed)
}

pub async fn coupon(a: CouponArgs) -> anyhow::Result<bool> {
    let ledger = a.verify_schema.map(|schema| Ledger { mysql_url: a.mysql_url.clone(), schema });
    Ok(finish_all(&coupon::race("coupon", &a.http.target(ledger)?, &a.race.race(), a.run.limits()?).await?))
}

pub async fn raw_gate(a: RawGateArgs) -> anyhow::Result<bool> {
    let gate = GateRace { race: a.race.race(), connections: a.connections };
    Ok(finish_all(&crate::raw::redis_gate(&a.redis_url, &gate, a.run.limits()?).await?))
}

pub async fn onehop(a: OneHopArgs) -> anyhow::Result<bool> {
    let cfg = OneHop {
        race: a.race.race(),
        request_timeout: a.client.request_timeout(),
        source_addresses: a.client.source_addresses(),
    };
    Ok(finish_all(&crate::raw::onehop_gate(&a.redis_url, &cfg, a.run.limits()?).await?))
}

pub async fn bench(a: BenchCouponArgs) -> anyhow::Result<bool> {
    let deployment = a.http.deployment(a.mysql_url, a.spawn, a.auth)?;
    let spawn = if a.spawn {
        vec![(&COUPON, COUPON.binary_or_sibling(a.bin)?), (&GATEWAY, GATEWAY.binary_or_sibling(a.gateway_bin)?)]
    } else {
        Vec::new()
    };
    let cfg = CouponBench {
        deployment: Deployment { spawn, redis_url: Some(a.redis_url), ..deployment },
        limits: a.run.limits()?,
        race: a.race.race(),
        raw_clients: a.raw_clients,
        raw_connections: a.raw_connections,
    };
    crate::bench::coupon::run(&cfg).await
}

#[cfg(test)]
impl CouponArgs {
    pub(super) fn race_for_test(&self) -> Race {
        self.race.race()
    }
}
