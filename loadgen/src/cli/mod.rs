//! Command line: one subcommand per scenario, plus `bench <service>` that chains them.
//! Each service's subcommands and their arguments live in its own module.

mod catalog;
mod checkout;
mod coupon;
mod inventory;
mod points;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bench::Deployment;
use crate::driver::{Limits, OpenLoop, Pace};
use crate::raw::{HotRow, POINT_BALANCE, PRODUCT_STOCK};
use crate::report::Report;
use crate::scenarios::{Credentials, Ledger, Target};

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
    InventoryHot(inventory::HotArgs),
    /// GetProduct of random ids among freshly created products (cache hits).
    InventoryRead(inventory::ReadArgs),
    /// One user, many clients alternating Charge and Use of 100; checks the balance and ledger.
    PointsHot(points::HotArgs),
    /// Charges (and uses) spread over many users; checks every user's ledger against its balance.
    PointsSpread(points::SpreadArgs),
    /// Through the gateway (REST): GETs of random products among freshly created ones;
    /// checks every 200 is the product asked for.
    ProductRead(inventory::ProductReadArgs),
    /// Through the gateway (REST): 10,000 users race for 1,000 copies of a coupon, then
    /// sold-out traffic; checks the issued sequences are exactly 1..=1000.
    Coupon(coupon::CouponArgs),
    /// coupon-svc's Lua issue gate straight against Redis, same race, on a throwaway key.
    RawRedisGate(coupon::RawGateArgs),
    /// The same gate behind one HTTP hop (an axum server inside loadgen, one Redis
    /// connection): the coupon race against what a monolith would do.
    RawOnehopGate(coupon::OneHopArgs),
    /// The bare conditional UPDATE on one MySQL product row, in a throwaway schema.
    RawMysqlHotUpdate(RawArgs),
    /// The bare conditional debit on one MySQL point_balance row, in a throwaway schema.
    RawMysqlHotDebit(RawArgs),
    /// Through the gateway (REST): checkouts of distinct users and products, then 1,000
    /// buyers of one product until it sells out; checks stock, points and every order's end.
    Checkout(checkout::CheckoutArgs),
    /// One transaction of a stock UPDATE and a points UPDATE on distinct MySQL rows, in a
    /// throwaway schema: the bare work of a checkout.
    RawMysqlCheckoutTx(RawArgs),
    /// Raw backend, then the service's scenarios, then a summary with ours / raw.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// raw-mysql-hot-update, inventory-hot, the sell-out race, inventory-read.
    Inventory(inventory::BenchInventoryArgs),
    /// raw-mysql-hot-debit, points-hot, points-spread.
    Points(points::BenchPointsArgs),
    /// raw-redis-gate, raw-onehop-gate, then the coupon race through the gateway.
    Coupon(coupon::BenchCouponArgs),
    /// raw-mysql-checkout-tx, raw-mysql-hot-update, then through the gateway the checkout
    /// saga on distinct rows and on one hot product.
    Checkout(checkout::BenchCheckoutArgs),
    /// A bulk load of generated products, raw-mysql-list-page, then listing and name search
    /// through the gateway (search twice: its terms met first, then again).
    Catalog(catalog::BenchCatalogArgs),
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

/// Open loop instead of the closed one, for the scenarios that offer it.
#[derive(Debug, Clone, Args)]
struct PaceArgs {
    /// Open loop at this many requests per second: request i is due at i/N s and latency is
    /// counted from its due time (as k6's constant-arrival-rate). Without it: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: requests in flight at most; one that comes due while this many are
    /// outstanding is dropped (counted, not sent).
    #[arg(long, default_value_t = 2_000)]
    max_inflight: usize,
}

impl PaceArgs {
    /// Closed loop, or open loop at `rate` (a phase's own rate, else `--rate`).
    fn pace(&self, rate: Option<f64>) -> Pace {
        match rate.or(self.rate) {
            None => Pace::Closed,
            Some(rate) => Pace::Open(OpenLoop { rate, max_inflight: self.max_inflight }),
        }
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

impl GrpcArgs {
    /// A bench against `target` (the caller sets `spawn` and, if needed, Redis).
    fn deployment(&self, mysql_url: String) -> Deployment {
        Deployment {
            target: self.target.clone(),
            spawn: Vec::new(),
            mysql_url,
            redis_url: None,
            channels: self.channels,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            source_addresses: 1,
            credentials: None,
            backend: None,
        }
    }
}

/// How the REST clients connect, whatever they connect to.
#[derive(Debug, Clone, Args)]
struct ClientArgs {
    /// Timeout of each request.
    #[arg(long, default_value_t = 5_000)]
    request_timeout_ms: u64,
    /// Loopback addresses the connections come from (127.1.0.1 upward), client i from the
    /// (i mod N)-th, as a crowd arrives: a server that limits per address sees N callers.
    /// Never more than the clients; 1 = all from 127.0.0.1. Only towards 127.0.0.1/localhost.
    #[arg(long, default_value_t = 1_024,
        value_parser = clap::value_parser!(u32).range(1..=crate::net::MAX_SOURCE_ADDRESSES as i64))]
    source_addresses: u32,
}

impl ClientArgs {
    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    fn source_addresses(&self) -> usize {
        self.source_addresses as usize
    }
}

#[derive(Debug, Clone, Args)]
struct HttpArgs {
    /// The gateway's HTTP address (loopback only).
    #[arg(long, visible_alias = "gateway", env = "LOADGEN_GATEWAY", default_value = "http://127.0.0.1:8080")]
    target: String,
    #[command(flatten)]
    client: ClientArgs,
    /// Ed25519 key (PKCS#8 DER) to sign the bearer tokens with, for a gateway with
    /// authentication on [default: .devstack/jwt-signing.pk8 if it exists, else no tokens].
    /// A bench with --spawn makes a key of its own instead.
    #[arg(long, value_name = "PATH")]
    jwt_signing_key: Option<PathBuf>,
}

/// Whether a spawned gateway requires tokens (and loadgen sends them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Auth {
    On,
    Off,
}

impl HttpArgs {
    /// The gateway, with the tokens `--jwt-signing-key` (or the devstack's key) signs.
    fn target(&self, ledger: Option<Ledger>) -> anyhow::Result<Target> {
        Ok(Target { credentials: Credentials::discover(self.jwt_signing_key.as_deref())?, ..self.plain_target(ledger) })
    }

    fn plain_target(&self, ledger: Option<Ledger>) -> Target {
        Target {
            url: self.target.clone(),
            channels: 1,
            request_timeout: self.client.request_timeout(),
            ledger,
            data_platform: None,
            source_addresses: self.client.source_addresses(),
            credentials: None,
            backend: None,
        }
    }

    /// A bench against the gateway at `target` (the caller sets `spawn` and Redis): a spawned
    /// gateway verifies a key made for the run (`--auth on`); a running one, whatever key
    /// [`Self::target`] finds.
    fn deployment(&self, mysql_url: String, spawn: bool, auth: Auth) -> anyhow::Result<Deployment> {
        let credentials = match (auth, spawn) {
            (Auth::Off, _) => None,
            (Auth::On, true) => Some(Arc::new(Credentials::generate()?)),
            (Auth::On, false) => Credentials::discover(self.jwt_signing_key.as_deref())?,
        };
        let t = self.plain_target(None);
        Ok(Deployment {
            target: t.url,
            spawn: Vec::new(),
            mysql_url,
            redis_url: None,
            channels: t.channels,
            request_timeout: t.request_timeout,
            source_addresses: t.source_addresses,
            credentials,
            backend: None,
        })
    }
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

fn target(grpc: &GrpcArgs, ledger: Option<Ledger>) -> Target {
    Target {
        url: grpc.target.clone(),
        channels: grpc.channels,
        request_timeout: Duration::from_millis(grpc.request_timeout_ms),
        ledger,
        data_platform: None,
        source_addresses: 1,
        credentials: None,
        backend: None,
    }
}

fn finish(report: &Report) -> bool {
    report.print();
    report.passed()
}

async fn raw(row: &'static HotRow, a: RawArgs) -> anyhow::Result<bool> {
    Ok(finish(&crate::raw::mysql_hot_update(row, &a.mysql_url, a.clients, a.run.limits()?).await?))
}

async fn dispatch(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::InventoryHot(a) => inventory::hot(a).await,
        Command::InventoryRead(a) => inventory::read(a).await,
        Command::ProductRead(a) => inventory::product_read(a).await,
        Command::PointsHot(a) => points::hot(a).await,
        Command::PointsSpread(a) => points::spread(a).await,
        Command::Coupon(a) => coupon::coupon(a).await,
        Command::RawRedisGate(a) => coupon::raw_gate(a).await,
        Command::RawOnehopGate(a) => coupon::onehop(a).await,
        Command::RawMysqlHotUpdate(a) => raw(&PRODUCT_STOCK, a).await,
        Command::RawMysqlHotDebit(a) => raw(&POINT_BALANCE, a).await,
        Command::Checkout(a) => checkout::checkout(a).await,
        Command::RawMysqlCheckoutTx(a) => checkout::raw_tx(a).await,
        Command::Bench(BenchCommand::Inventory(a)) => inventory::bench(a).await,
        Command::Bench(BenchCommand::Points(a)) => points::bench(a).await,
        Command::Bench(BenchCommand::Coupon(a)) => coupon::bench(a).await,
        Command::Bench(BenchCommand::Checkout(a)) => checkout::bench(a).await,
        Command::Bench(BenchCommand::Catalog(a)) => catalog::bench(a).await,
    }
}

/// Parses the command line, runs it, and maps the result to the exit code.
pub async fn run() -> ExitCode {
    // One TLS provider for the process (DEPENDENCIES.md): sqlx and, later, reqwest share it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    crate::fds::raise_open_files_limit();
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
        let cli = Cli::try_parse_from(["loadgen", "bench", "points", "--spawn", "--users", "100"]).unwrap();
        assert!(
            matches!(cli.command, Command::Bench(BenchCommand::Points(ref a)) if a.spawn && a.run.duration_secs == 10.0)
        );
        assert!(Cli::try_parse_from(["loadgen", "points-hot", "--clients", "500", "--verify-schema", "s"]).is_ok());
        assert!(Cli::try_parse_from(["loadgen", "points-spread", "--users", "10000", "--charge-only"]).is_ok());
        let cli = Cli::try_parse_from(["loadgen", "bench", "coupon", "--spawn", "--duration-secs", "10"]).unwrap();
        assert!(
            matches!(cli.command, Command::Bench(BenchCommand::Coupon(ref a)) if a.spawn && a.run.duration_secs == 10.0)
        );
        assert!(Cli::try_parse_from(["loadgen", "bench", "coupon", "--gateway-bin", "x"]).is_err(), "needs --spawn");
        assert!(
            Cli::try_parse_from(["loadgen", "coupon", "--target", "http://127.0.0.1:8080", "--clients", "64"]).is_ok()
        );
        assert!(Cli::try_parse_from(["loadgen", "raw-redis-gate", "--connections", "4", "--users", "500"]).is_ok());
        let cli = Cli::try_parse_from(["loadgen", "bench", "checkout", "--spawn", "--hot-stock", "100"]).unwrap();
        assert!(
            matches!(cli.command, Command::Bench(BenchCommand::Checkout(ref a)) if a.spawn && a.run.duration_secs == 10.0)
        );
        assert!(Cli::try_parse_from(["loadgen", "bench", "checkout", "--bin-dir", "x"]).is_err(), "needs --spawn");
        let cli = ["loadgen", "bench", "checkout", "--gateway", "http://127.0.0.1:8080", "--users", "5000"];
        assert!(Cli::try_parse_from(cli).is_ok());
        assert!(Cli::try_parse_from(["loadgen", "checkout", "--clients", "32", "--hot-stock", "0"]).is_ok());
        let cli =
            ["loadgen", "bench", "checkout", "--spawn", "--rate", "500", "--hot-rate", "1000", "--max-inflight", "64"];
        let Command::Bench(BenchCommand::Checkout(a)) = Cli::try_parse_from(cli).unwrap().command else { panic!() };
        let cfg = a.phases_for_test();
        assert_eq!(cfg.0.pace, Pace::Open(OpenLoop { rate: 500.0, max_inflight: 64 }));
        assert_eq!(cfg.1.map(|h| h.pace), Some(Pace::Open(OpenLoop { rate: 1_000.0, max_inflight: 64 })));
        let cli = Cli::try_parse_from(["loadgen", "checkout", "--mysql-url", "mysql://root@127.0.0.1:3306"]).unwrap();
        assert!(matches!(cli.command, Command::Checkout(_)));
    }

    #[test]
    fn rest_scenarios_take_source_addresses_and_an_open_loop() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["loadgen"], args].concat());
        let cli = parse(&["product-read", "--clients", "32", "--products", "10", "--rate", "100"]).unwrap();
        let Command::ProductRead(a) = cli.command else { panic!() };
        assert_eq!(a.http_for_test().plain_target(None).source_addresses, 1_024, "the default");
        assert!(parse(&["raw-onehop-gate", "--clients", "64", "--users", "500", "--source-addresses", "1"]).is_ok());
        assert!(parse(&["bench", "coupon", "--rate", "3000", "--max-inflight", "500"]).is_ok());
        let cli = parse(&["bench", "checkout", "--spawn", "--auth", "off"]).unwrap();
        assert!(matches!(cli.command, Command::Bench(BenchCommand::Checkout(ref a)) if a.auth == Auth::Off));
        let cli = parse(&["bench", "coupon", "--spawn"]).unwrap();
        assert!(
            matches!(cli.command, Command::Bench(BenchCommand::Coupon(ref a)) if a.auth == Auth::On),
            "on by default"
        );
        assert!(parse(&["bench", "coupon", "--auth", "maybe"]).is_err());
        assert!(parse(&["coupon", "--jwt-signing-key", ".devstack/jwt-signing.pk8"]).is_ok());
        assert!(parse(&["coupon", "--source-addresses", "0"]).is_err());
        assert!(parse(&["coupon", "--source-addresses", "65025"]).is_err(), "past 127.1.255.254");
        let cli = parse(&["coupon", "--clients", "10000", "--source-addresses", "65024", "--rate", "2000"]).unwrap();
        let Command::Coupon(a) = cli.command else { panic!() };
        let race = a.race_for_test();
        assert_eq!((race.clients, race.users), (10_000, 10_000));
        assert_eq!(race.pace, Pace::Open(OpenLoop { rate: 2_000.0, max_inflight: 2_000 }));
    }
}
