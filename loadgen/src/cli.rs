//! Command line: one subcommand per scenario, plus `bench <service>` that chains them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::{self, InventoryBench};
use crate::driver::Limits;
use crate::report::Report;
use crate::scenarios::inventory::{self, Ledger, MAX_STOCK, Target};

const DEFAULT_MYSQL: &str = "mysql://root@127.0.0.1:3306";
const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// Exit codes: 0 all checks passed, 1 a correctness check failed, 2 the run could not be done.
const EXIT_FAILED_CHECK: u8 = 1;
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about = "Closed-loop load generator for the mesh (loopback targets only)")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One product, many buyers reserving 1 unit each; checks initial - successes == final stock.
    InventoryHot(HotArgs),
    /// GetProduct of random ids among freshly created products (cache hits).
    InventoryRead(ReadArgs),
    /// The bare conditional UPDATE on one MySQL row, in a throwaway schema.
    RawMysqlHotUpdate(RawArgs),
    /// Raw backend, then the service's scenarios, then a summary with ours / raw.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// raw-mysql-hot-update, inventory-hot, the sell-out race, inventory-read.
    Inventory(BenchInventoryArgs),
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// How long each scenario runs.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Stop a scenario after this many requests, if that comes before the duration.
    #[arg(long)]
    requests: Option<u64>,
}

impl RunArgs {
    fn limits(&self) -> anyhow::Result<Limits> {
        anyhow::ensure!(
            self.duration_secs > 0.0 && self.duration_secs <= 3600.0,
            "--duration-secs must be in (0, 3600]"
        );
        Ok(Limits::new(Duration::from_secs_f64(self.duration_secs), self.requests))
    }
}

#[derive(Debug, Clone, Args)]
struct GrpcArgs {
    /// The service's gRPC address (loopback only).
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// HTTP/2 connections the clients share round-robin.
    #[arg(long, default_value_t = 8)]
    channels: usize,
    /// Deadline of each call.
    #[arg(long, default_value_t = 5_000)]
    request_timeout_ms: u64,
}

#[derive(Debug, Args)]
struct HotArgs {
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
struct ReadArgs {
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
struct RawArgs {
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
    /// Concurrent connections (the pool holds exactly this many).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct BenchInventoryArgs {
    #[command(flatten)]
    grpc: GrpcArgs,
    /// Start inventory-svc for the run (free ports, fresh schema and key prefix), then stop it.
    #[arg(long)]
    spawn: bool,
    /// The binary --spawn starts [default: inventory-svc next to this executable].
    #[arg(long, requires = "spawn")]
    bin: Option<PathBuf>,
    #[arg(long, env = "LOADGEN_MYSQL_URL", default_value = DEFAULT_MYSQL)]
    mysql_url: String,
    #[arg(long, env = "LOADGEN_REDIS_URL", default_value = DEFAULT_REDIS)]
    redis_url: String,
    #[command(flatten)]
    run: RunArgs,
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

fn target(grpc: &GrpcArgs, ledger: Option<Ledger>) -> Target {
    Target {
        url: grpc.target.clone(),
        channels: grpc.channels,
        request_timeout: Duration::from_millis(grpc.request_timeout_ms),
        ledger,
    }
}

fn finish(report: &Report) -> bool {
    report.print();
    report.passed()
}

async fn dispatch(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::InventoryHot(a) => {
            let ledger = a.verify_schema.map(|schema| Ledger { mysql_url: a.mysql_url.clone(), schema });
            Ok(finish(&inventory::hot(&target(&a.grpc, ledger), a.clients, a.stock, a.run.limits()?).await?))
        }
        Command::InventoryRead(a) => {
            Ok(finish(&inventory::read(&target(&a.grpc, None), a.clients, a.products, a.run.limits()?).await?))
        }
        Command::RawMysqlHotUpdate(a) => {
            Ok(finish(&crate::raw::mysql_hot_update(&a.mysql_url, a.clients, a.run.limits()?).await?))
        }
        Command::Bench(BenchCommand::Inventory(a)) => {
            let spawn = match (a.spawn, a.bin) {
                (true, Some(bin)) => Some(bin),
                (true, None) => Some(crate::spawn::sibling_binary("inventory-svc")?),
                (false, _) => None,
            };
            let cfg = InventoryBench {
                target: a.grpc.target.clone(),
                spawn,
                mysql_url: a.mysql_url,
                redis_url: a.redis_url,
                limits: a.run.limits()?,
                channels: a.grpc.channels,
                request_timeout: Duration::from_millis(a.grpc.request_timeout_ms),
                raw_clients: a.raw_clients,
                hot_clients: a.hot_clients,
                stock: a.stock,
                race_stock: a.race_stock,
                read_clients: a.read_clients,
                read_products: a.read_products,
            };
            bench::inventory(&cfg).await
        }
    }
}

/// Parses the command line, runs it, and maps the result to the exit code.
pub async fn run() -> ExitCode {
    // One TLS provider for the process (DEPENDENCIES.md): sqlx and, later, reqwest share it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: a correctness check FAILED (see the report above)");
            ExitCode::from(EXIT_FAILED_CHECK)
        }
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["loadgen", "bench", "inventory", "--spawn", "--duration-secs", "5"]).unwrap();
        assert!(
            matches!(cli.command, Command::Bench(BenchCommand::Inventory(ref a)) if a.spawn && a.run.duration_secs == 5.0)
        );
        assert!(Cli::try_parse_from(["loadgen", "bench", "inventory", "--bin", "x"]).is_err(), "--bin needs --spawn");
    }
}
