//! devstack: `cargo run --release -p devstack` runs the whole mesh locally.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Parser;
use devstack::cli::{AuthSwitch, Cli, Command, DEFAULT_STATE_DIR, StackArgs, TokenArgs};
use devstack::dev_key::{DEFAULT_ADMIN_USER, DevKey, DevKeyError};
use devstack::{data_platform, plan, preflight, seed, supervisor};

/// `EX_UNAVAILABLE`: a backend the stack needs is not there.
const EXIT_UNAVAILABLE: i32 = 69;
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The `--seed-demo` admin token only has to outlive the seeding.
const SEED_TOKEN_TTL_SECS: u64 = 300;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kit::startup::install_crypto_provider();
    match cli.command {
        Some(Command::Service { name }) => return run_service(&name).await,
        Some(Command::Token(args)) => print_token(&args),
        None => {}
    }
    let args = cli.stack;
    if let Err(line) = preflight::check_backends(&args).await {
        eprintln!("devstack: {line}");
        std::process::exit(EXIT_UNAVAILABLE);
    }
    if args.fresh {
        preflight::wipe(&args).await?;
        eprintln!("devstack: dropped schemas and Redis keys of prefix {:?}", args.db_prefix);
    }
    let data_platform_url = if args.data_platform_port == 0 {
        std::env::var("DATA_PLATFORM_URL").ok()
    } else {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.data_platform_port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(data_platform::serve(listener));
        eprintln!("devstack: mock data platform on {url}");
        Some(url)
    };
    let key = dev_key(&args);
    let plan = plan::build(&args, data_platform_url, key.as_ref().map(DevKey::public_pem))?;
    let shutdown = kit::shutdown::on_signal();
    let mut children = supervisor::start(plan.processes, shutdown.clone());

    tokio::select! {
        ready = wait_ready(&plan.gateway_url) => {
            if let Err(err) = ready {
                eprintln!("devstack: {err}");
                shutdown.cancel();
                while children.join_next().await.is_some() {}
                std::process::exit(1);
            }
        }
        () = shutdown.cancelled() => {}
    }
    if args.seed_demo
        && !shutdown.is_cancelled()
        && let Err(err) = seed_demo(&plan.gateway_url, key.as_ref()).await
    {
        eprintln!("devstack: seeding failed: {err:#}");
    }
    if !shutdown.is_cancelled() {
        println!("READY {}", plan.gateway_url);
        std::io::stdout().flush()?;
    }
    shutdown.cancelled().await;
    while children.join_next().await.is_some() {}
    eprintln!("devstack: stopped");
    Ok(())
}

/// `devstack token`: a JWT a line on stdout, or one line on stderr and exit 1.
fn print_token(args: &TokenArgs) -> ! {
    let first = args.user.unwrap_or(DEFAULT_ADMIN_USER);
    let printed = DevKey::load(&args.state_dir).and_then(|key| {
        let stdout_failed = |source| DevKeyError::Io { path: "stdout".into(), source };
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for user in (first..).take(args.count as usize) {
            writeln!(out, "{}", key.mint(user, args.admin, args.ttl_secs)?).map_err(stdout_failed)?;
        }
        out.flush().map_err(stdout_failed)
    });
    match printed {
        Ok(()) => std::process::exit(0),
        Err(err) => {
            eprintln!("devstack: {err}");
            std::process::exit(1);
        }
    }
}

/// With auth on, the dev key (made on the first start) and one line on how to get a token.
fn dev_key(args: &StackArgs) -> Option<DevKey> {
    if args.auth == AuthSwitch::Off {
        eprintln!("devstack: auth off; the gateway serves every request without a token");
        return None;
    }
    match DevKey::load_or_create(&args.state_dir) {
        Ok(key) => {
            let dir = if args.state_dir.as_os_str() == DEFAULT_STATE_DIR {
                String::new()
            } else {
                format!(" --state-dir {}", args.state_dir.display())
            };
            eprintln!("devstack: auth on; a token: devstack token --user 7 [--admin]{dir}");
            Some(key)
        }
        Err(err) => {
            eprintln!("devstack: {err}");
            std::process::exit(1);
        }
    }
}

async fn seed_demo(gateway: &str, key: Option<&DevKey>) -> anyhow::Result<()> {
    let token = key.map(|key| key.mint(DEFAULT_ADMIN_USER, true, SEED_TOKEN_TTL_SECS)).transpose()?;
    seed::load(gateway, token.as_deref()).await
}

async fn run_service(name: &str) -> anyhow::Result<()> {
    supervisor::die_with_parent();
    match name {
        "inventory" => inventory_svc::startup::run_from_env().await,
        "point" => point_svc::startup::run_from_env().await,
        "coupon" => coupon_svc::startup::run_from_env().await,
        "payment" => payment_svc::startup::run_from_env().await,
        "gateway" => gateway::startup::run_from_env().await,
        other => anyhow::bail!("unknown service {other:?}"),
    }
}

async fn wait_ready(gateway: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let started = Instant::now();
    loop {
        if let Ok(resp) = http.get(format!("{gateway}/readyz")).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            anyhow::bail!("the mesh was not ready after {}s (see the logs above)", READY_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
