//! devstack: `cargo run --release -p devstack` runs the whole mesh locally.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Parser;
use devstack::cli::{Cli, Command};
use devstack::{data_platform, plan, preflight, seed, supervisor};

/// `EX_UNAVAILABLE`: a backend the stack needs is not there.
const EXIT_UNAVAILABLE: i32 = 69;
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kit::startup::install_crypto_provider();
    if let Some(Command::Service { name }) = cli.command {
        return run_service(&name).await;
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
    let plan = plan::build(&args, data_platform_url)?;
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
        && let Err(err) = seed::load(&plan.gateway_url).await
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
