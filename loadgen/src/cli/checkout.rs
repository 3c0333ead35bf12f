//! The checkout subcommands, through the gateway: `checkout`, `raw-mysql-checkout-tx`,
//! `bench checkout`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Auth, DEFAULT_MYSQL, DEFAULT_REDIS, HttpArgs, PaceArgs, RawArgs, RunArgs, finish};
use crate::bench::Deployment;
use crate::bench::checkout::CheckoutBench;
use crate::driver::Limits;
use crate::mysql_counters::MysqlCounters;
use crate::report::Report;
use crate::scenarios::checkout::{self, Distinct, Hot};
use crate::spawn::{COUPON, GATEWAY, INVENTORY, PAYMENT, POINT, Service, sibling_binary};

#[derive(Debug, Clone, Args)]
struct PhaseArgs {
    /// Concurrent clients of the distinct phase, each on its own keep-alive HTTP/1.1 connection
    /// (open loop: the connections opened before the run).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Fresh users of the distinct phase (10,000,000 points each); request n is user n % users.
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Products of the distinct phase (1,000,000 units each); request n buys product n % products.
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    /// Buyers of the hot product, each a fresh user of its own: concurrent in a closed loop;
    /// in an open loop, order n is buyer n % this.
    #[arg(long, default_value_t = 1_000)]
    hot_clients: usize,
    /// Stock of the hot product: the first this many orders are the race; 0 skips the hot phase.
    #[arg(long, default_value_t = 3_000)]
    hot_stock: i64,
    /// Orders of the hot phase in all; the ones after the stock meet a sold-out product.
    #[arg(long, default_value_t = 5_000)]
    hot_attempts: u64,
    /// Longest the hot phase may run (it normally ends when its attempts are spent).
    #[arg(long, default_value_t = 120.0)]
    hot_duration_secs: f64,
    // --rate puts both phases in open loop (the hot one at --hot-rate, when given).
    #[command(flatten)]
    pace: PaceArgs,
    /// The hot phase's own open-loop rate, orders/s [default: --rate].
    #[arg(long)]
    hot_rate: Option<f64>,
}

impl PhaseArgs {
    fn distinct(&self) -> Distinct {
        Distinct { clients: self.clients, users: self.users, products: self.products, pace: self.pace.pace(None) }
    }

    fn hot(&self) -> Option<Hot> {
        (self.hot_stock > 0).then_some(Hot {
            clients: self.hot_clients,
            stock: self.hot_stock,
            attempts: self.hot_attempts,
            pace: self.pace.pace(self.hot_rate),
        })
    }

    /// `--requests` bounds the hot phase too, if smaller than its attempts.
    fn hot_limits(&self, run: &RunArgs) -> anyhow::Result<Limits> {
        anyhow::ensure!(
            self.hot_duration_secs > 0.0 && self.hot_duration_secs <= 3600.0,
            "--hot-duration-secs must be in (0, 3600]"
        );
        Ok(Limits::new(Duration::from_secs_f64(self.hot_duration_secs), run.requests))
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.distinct().validate()?;
        self.hot().map_or(Ok(()), |hot| hot.validate())
    }
}

#[derive(Debug, Args)]
pub struct CheckoutArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The MySQL server the mesh uses, for its statement and transaction counters (loadgen
    /// reads `SHOW GLOBAL STATUS` only); unreachable: the reports go without them.
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
    #[command(flatten)]
    phases: PhaseArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
pub struct BenchCheckoutArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Start inventory-svc, coupon-svc, point-svc, payment-svc (with loadgen's own mock data
    /// platform) and a gateway routing to them, on free ports with fresh schemas and key
    /// prefixes; stop them all after and remove what they stored.
    #[arg(long)]
    pub(super) spawn: bool,
    /// With --spawn: `on` starts the gateway with GATEWAY_AUTH=on and a key made for the run,
    /// and sends tokens signed with it; `off` starts it with GATEWAY_AUTH=off and sends none.
    /// Without --spawn: `off` sends no tokens, `on` those --jwt-signing-key signs.
    #[arg(long, value_enum, default_value_t = Auth::On)]
    pub(super) auth: Auth,
    /// The directory --spawn takes the five binaries from [default: next to this executable].
    #[arg(long, requires = "spawn")]
    bin_dir: Option<PathBuf>,
    /// The MySQL server of the raw scenarios and of the mesh, whose statement and transaction
    /// counters are read around each phase.
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
    #[arg(long, env = "LOADGEN_REDIS_URL", default_value = DEFAULT_REDIS)]
    redis_url: String,
    #[command(flatten)]
    pub(super) run: RunArgs,
    #[command(flatten)]
    phases: PhaseArgs,
    /// Connections of the raw MySQL scenarios.
    #[arg(long, default_value_t = 64)]
    raw_clients: usize,
}

fn finish_all(reports: &[Report]) -> bool {
    reports.iter().for_each(Report::print);
    reports.iter().all(Report::passed)
}

pub async fn checkout(a: CheckoutArgs) -> anyhow::Result<bool> {
    a.phases.validate()?;
    let target = a.http.target(None)?;
    let counters = MysqlCounters::connect_or_warn(&a.mysql_url).await;
    let limits = a.run.limits()?;
    let mut reports = vec![checkout::distinct(&target, &a.phases.distinct(), limits, counters.as_ref()).await?];
    if let Some(hot) = a.phases.hot() {
        reports.extend(checkout::hot(&target, &hot, a.phases.hot_limits(&a.run)?, counters.as_ref()).await?);
    }
    Ok(finish_all(&reports))
}

pub async fn raw_tx(a: RawArgs) -> anyhow::Result<bool> {
    Ok(finish(&crate::raw::mysql_checkout_tx(&a.mysql_url, a.clients, a.run.limits()?).await?))
}

pub async fn bench(a: BenchCheckoutArgs) -> anyhow::Result<bool> {
    a.phases.validate()?;
    let spawn = if a.spawn {
        // payment-svc calls the three before it; the gateway routes to all four.
        let binary = |service: &'static Service| -> anyhow::Result<_> {
            let path = match &a.bin_dir {
                Some(dir) => dir.join(service.binary),
                None => sibling_binary(service.binary)?,
            };
            Ok((service, path))
        };
        [&INVENTORY, &COUPON, &POINT, &PAYMENT, &GATEWAY].into_iter().map(binary).collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let cfg = CheckoutBench {
        deployment: Deployment {
            spawn,
            redis_url: Some(a.redis_url.clone()),
            ..a.http.deployment(a.mysql_url.clone(), a.spawn, a.auth)?
        },
        limits: a.run.limits()?,
        hot_limits: a.phases.hot_limits(&a.run)?,
        raw_clients: a.raw_clients,
        distinct: a.phases.distinct(),
        hot: a.phases.hot(),
    };
    crate::bench::checkout::run(&cfg).await
}

#[cfg(test)]
impl BenchCheckoutArgs {
    pub(super) fn phases_for_test(&self) -> (Distinct, Option<Hot>) {
        (self.phases.distinct(), self.phases.hot())
    }
}
