//! `bench catalog`: the catalog at scale (bulk load, listing, name search).

use std::path::PathBuf;

use clap::Args;

use super::{Auth, DEFAULT_MYSQL, DEFAULT_REDIS, HttpArgs, PaceArgs, RunArgs};
use crate::bench::Deployment;
use crate::bench::catalog::CatalogBench;
use crate::spawn::{GATEWAY, INVENTORY};

#[derive(Debug, Args)]
pub struct BenchCatalogArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Start inventory-svc (fresh schema and key prefix) and a gateway in front of it on free
    /// ports; stop them after and remove what they stored.
    #[arg(long)]
    pub(super) spawn: bool,
    /// inventory-svc's gRPC address, for the bulk load into a running mesh (a spawned one's
    /// is known).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    inventory: String,
    /// The inventory-svc binary --spawn starts [default: next to this executable].
    #[arg(long, requires = "spawn")]
    bin: Option<PathBuf>,
    /// The gateway binary --spawn starts [default: next to this executable].
    #[arg(long, requires = "spawn")]
    gateway_bin: Option<PathBuf>,
    /// Products loaded (ImportProducts, 1,000 per call) before the runs; 0 uses the catalog
    /// as it is.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    products: u64,
    /// Concurrent clients, each on its own keep-alive HTTP/1.1 connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Listing visits pages 0..=this of every sort.
    #[arg(long, default_value_t = 100)]
    list_pages: u64,
    /// Search visits pages 0..=this of every sort.
    #[arg(long, default_value_t = 4)]
    search_pages: u64,
    /// Connections of the raw listing query.
    #[arg(long, default_value_t = 64)]
    raw_clients: usize,
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
    #[arg(long, env = "LOADGEN_REDIS_URL", default_value = DEFAULT_REDIS)]
    redis_url: String,
    #[command(flatten)]
    pace: PaceArgs,
    /// The listing phase's own open-loop rate, requests/s [default: --rate].
    #[arg(long)]
    list_rate: Option<f64>,
    /// The search phase's own open-loop rate, requests/s [default: --rate].
    #[arg(long)]
    search_rate: Option<f64>,
    #[command(flatten)]
    pub(super) run: RunArgs,
}

pub async fn bench(a: BenchCatalogArgs) -> anyhow::Result<bool> {
    // Listing and search are public routes: no tokens needed, whatever the gateway's mode.
    let deployment = a.http.deployment(a.mysql_url, a.spawn, Auth::On)?;
    let spawn = if a.spawn {
        vec![(&INVENTORY, INVENTORY.binary_or_sibling(a.bin)?), (&GATEWAY, GATEWAY.binary_or_sibling(a.gateway_bin)?)]
    } else {
        Vec::new()
    };
    let cfg = CatalogBench {
        deployment: Deployment { spawn, redis_url: Some(a.redis_url), backend: Some(a.inventory), ..deployment },
        limits: a.run.limits()?,
        products: a.products,
        clients: a.clients,
        list_pace: a.pace.pace(a.list_rate),
        search_pace: a.pace.pace(a.search_rate),
        raw_clients: a.raw_clients,
        list_pages: a.list_pages,
        search_pages: a.search_pages,
    };
    crate::bench::catalog::run(&cfg).await
}
