//! The inventory-svc subcommands: `inventory-hot`, `inventory-read`, `bench inventory`, and
//! its reads through the gateway, `product-read`.

use std::path::PathBuf;

use clap::Args;

use super::{DEFAULT_MYSQL, DEFAULT_REDIS, GrpcArgs, HttpArgs, PaceArgs, RunArgs, finish, target};
use crate::bench::Deployment;
use crate::bench::inventory::InventoryBench;
use crate::scenarios::Ledger;
use crate::scenarios::inventory::{self, MAX_STOCK};
use crate::scenarios::products::{self, ProductRead};
use crate::spawn::INVENTORY;

#[derive(Debug, Args)]
pub struct HotArgs {
    #[command(flatten)]
    grpc: GrpcArgs,
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Initial stock; the default never sells out, a small one (100) runs the sell-out race.
    #[arg(long, default_value_t = MAX_STOCK)]
    stock: i64,
    #[command(flatten)]
    run: RunArgs,
    /// The service's MySQL schema: also checks stock and reservation rows directly.
    #[arg(long)]
    verify_schema: Option<String>,
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    grpc: GrpcArgs,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 100)]
    products: usize,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
pub struct ProductReadArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Concurrent clients, each on its own keep-alive HTTP/1.1 connection (open loop: the
    /// connections opened before the run).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Products created through the gateway before the run; each read is of a random one.
    #[arg(long, default_value_t = 100)]
    products: usize,
    #[command(flatten)]
    pace: PaceArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
pub struct BenchInventoryArgs {
    #[command(flatten)]
    grpc: GrpcArgs,
    /// Start inventory-svc for the run (free ports, fresh schema and key prefix), then stop it.
    #[arg(long)]
    pub(super) spawn: bool,
    /// The binary --spawn starts [default: inventory-svc next to this executable].
    #[arg(long, requires = "spawn")]
    bin: Option<PathBuf>,
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
    #[arg(long, env = "LOADGEN_REDIS_URL", default_value = DEFAULT_REDIS)]
    redis_url: String,
    #[command(flatten)]
    pub(super) run: RunArgs,
    #[arg(long, default_value_t = 64)]
    raw_clients: usize,
    #[arg(long, default_value_t = 1_000)]
    hot_clients: usize,
    #[arg(long, default_value_t = MAX_STOCK)]
    stock: i64,
    /// Stock of the sell-out race; 0 skips it.
    #[arg(long, default_value_t = 100)]
    race_stock: i64,
    #[arg(long, default_value_t = 64)]
    read_clients: usize,
    #[arg(long, default_value_t = 100)]
    read_products: usize,
}

pub async fn hot(a: HotArgs) -> anyhow::Result<bool> {
    let ledger = a.verify_schema.map(|schema| Ledger { mysql_url: a.mysql_url.clone(), schema });
    Ok(finish(&inventory::hot(&target(&a.grpc, ledger), a.clients, a.stock, a.run.limits()?).await?))
}

pub async fn read(a: ReadArgs) -> anyhow::Result<bool> {
    Ok(finish(&inventory::read(&target(&a.grpc, None), a.clients, a.products, a.run.limits()?).await?))
}

pub async fn product_read(a: ProductReadArgs) -> anyhow::Result<bool> {
    let cfg = ProductRead { clients: a.clients, products: a.products, pace: a.pace.pace(None) };
    Ok(finish(&products::product_read(&a.http.target(None)?, &cfg, a.run.limits()?).await?))
}

pub async fn bench(a: BenchInventoryArgs) -> anyhow::Result<bool> {
    let spawn = if a.spawn { vec![(&INVENTORY, INVENTORY.binary_or_sibling(a.bin)?)] } else { Vec::new() };
    let cfg = InventoryBench {
        deployment: Deployment { spawn, redis_url: Some(a.redis_url), ..a.grpc.deployment(a.mysql_url) },
        limits: a.run.limits()?,
        raw_clients: a.raw_clients,
        hot_clients: a.hot_clients,
        stock: a.stock,
        race_stock: a.race_stock,
        read_clients: a.read_clients,
        read_products: a.read_products,
    };
    crate::bench::inventory::run(&cfg).await
}

#[cfg(test)]
impl ProductReadArgs {
    pub(super) fn http_for_test(&self) -> &HttpArgs {
        &self.http
    }
}
