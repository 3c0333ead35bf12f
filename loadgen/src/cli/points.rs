//! The point-svc subcommands: `points-hot`, `points-spread`, `bench points`.

use std::path::PathBuf;

use clap::Args;

use super::{DEFAULT_MYSQL, GrpcArgs, RunArgs, finish, target};
use crate::bench::Deployment;
use crate::bench::points::PointsBench;
use crate::scenarios::Ledger;
use crate::scenarios::points::{self, Hot, Spread};
use crate::spawn::POINT;

const DEFAULT_INITIAL_BALANCE: i64 = 1_000_000;
const DEFAULT_SEED_BALANCE: i64 = 1_000;

/// How the movements are sent, shared by both scenarios.
#[derive(Debug, Clone, Args)]
struct MoveArgs {
    /// Send a fresh `idempotency-key` with every Charge and Use (the service stores each answer).
    #[arg(long)]
    idempotency_keys: bool,
}

#[derive(Debug, Clone, Args)]
struct LedgerArgs {
    /// point-svc's MySQL schema: also audits point_balance against point_history directly.
    #[arg(long)]
    verify_schema: Option<String>,
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
}

impl LedgerArgs {
    fn ledger(self) -> Option<Ledger> {
        self.verify_schema.map(|schema| Ledger { mysql_url: self.mysql_url, schema })
    }
}

#[derive(Debug, Args)]
pub struct HotArgs {
    #[command(flatten)]
    grpc: GrpcArgs,
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Charged to the user before the run, so uses are not refused for a lack of points.
    #[arg(long, default_value_t = DEFAULT_INITIAL_BALANCE)]
    initial_balance: i64,
    #[command(flatten)]
    moves: MoveArgs,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct SpreadArgs {
    #[command(flatten)]
    grpc: GrpcArgs,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Charged to every user before the run (setup, 4 at a time); 0 leaves first charges in the run.
    #[arg(long, default_value_t = DEFAULT_SEED_BALANCE)]
    seed_balance: i64,
    /// Only charges (by default every other request uses 50 points of the user just charged).
    #[arg(long)]
    charge_only: bool,
    #[command(flatten)]
    moves: MoveArgs,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    ledger: LedgerArgs,
}

#[derive(Debug, Args)]
pub struct BenchPointsArgs {
    #[command(flatten)]
    grpc: GrpcArgs,
    /// Start point-svc for the run (free ports, fresh schema), then stop it and drop the schema.
    #[arg(long)]
    pub(super) spawn: bool,
    /// The binary --spawn starts [default: point-svc next to this executable].
    #[arg(long, requires = "spawn")]
    bin: Option<PathBuf>,
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
    #[command(flatten)]
    pub(super) run: RunArgs,
    #[arg(long, default_value_t = 64)]
    raw_clients: usize,
    #[arg(long, default_value_t = 500)]
    hot_clients: usize,
    #[arg(long, default_value_t = DEFAULT_INITIAL_BALANCE)]
    initial_balance: i64,
    #[arg(long, default_value_t = 64)]
    spread_clients: usize,
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    #[arg(long, default_value_t = DEFAULT_SEED_BALANCE)]
    seed_balance: i64,
    #[arg(long)]
    charge_only: bool,
    #[command(flatten)]
    moves: MoveArgs,
}

pub async fn hot(a: HotArgs) -> anyhow::Result<bool> {
    let cfg =
        Hot { clients: a.clients, initial_balance: a.initial_balance, idempotency_keys: a.moves.idempotency_keys };
    Ok(finish(&points::hot(&target(&a.grpc, a.ledger.ledger()), &cfg, a.run.limits()?).await?))
}

pub async fn spread(a: SpreadArgs) -> anyhow::Result<bool> {
    let cfg = Spread {
        clients: a.clients,
        users: a.users,
        seed_balance: a.seed_balance,
        uses: !a.charge_only,
        idempotency_keys: a.moves.idempotency_keys,
    };
    Ok(finish(&points::spread(&target(&a.grpc, a.ledger.ledger()), &cfg, a.run.limits()?).await?))
}

pub async fn bench(a: BenchPointsArgs) -> anyhow::Result<bool> {
    let spawn = if a.spawn { vec![(&POINT, POINT.binary_or_sibling(a.bin)?)] } else { Vec::new() };
    let idempotency_keys = a.moves.idempotency_keys;
    let cfg = PointsBench {
        deployment: Deployment { spawn, ..a.grpc.deployment(a.mysql_url) },
        limits: a.run.limits()?,
        raw_clients: a.raw_clients,
        hot: Hot { clients: a.hot_clients, initial_balance: a.initial_balance, idempotency_keys },
        spread: Spread {
            clients: a.spread_clients,
            users: a.users,
            seed_balance: a.seed_balance,
            uses: !a.charge_only,
            idempotency_keys,
        },
    };
    crate::bench::points::run(&cfg).await
}
