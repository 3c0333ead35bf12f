//! devstack: `cargo run --release -p devstack` runs the whole mesh locally.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Parser;
use devstack::cli::{AuthSwitch, Cli, Command, DEFAULT_STATE_DIR, StackArgs, TokenArgs};
use devstack::dev_key::{DEFAULT_ADMIN_USER, DevKey, DevKeyError};
use devstack::{data_platform, logs, own_servers, plan, preflight, seed, supervisor};

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
    logs::init(args.log_format);
    if let Err(err) = run_stack(args).await {
        logs::error(format_args!("{err:#}"));
        exit(1);
    }
    logs::finish();
    Ok(())
}

/// Exits once the terminal has the lines still on their way to it.
fn exit(code: i32) -> ! {
    logs::finish();
    std::process::exit(code)
}

async fn run_stack(mut args: StackArgs) -> anyhow::Result<()> {
    // From here a Ctrl-C or SIGTERM stops the stack in order (children, then devstack's own
    // servers) instead of killing devstack alone and orphaning them.
    let shutdown = kit::shutdown::on_signal();
    let own = own_servers::needed(&args).await;
    if let Err(line) = preflight::check_backends(&args, own).await {
        logs::error(line);
        exit(EXIT_UNAVAILABLE);
    }
    let servers = match own_servers::start(&mut args, own).await {
        Ok(servers) => servers,
        Err(line) => {
            logs::error(line);
            exit(EXIT_UNAVAILABLE);
        }
    };
    // No `exit` until the servers are stopped: it would skip their stop and orphan them.
    let ran = if shutdown.is_cancelled() { Ok(()) } else { run_mesh(&args, &shutdown).await };
    if let Err(err) = &ran {
        logs::error(format_args!("{err:#}"));
    }
    servers.stop().await;
    if ran.is_err() {
        exit(1);
    }
    logs::say("stopped");
    Ok(())
}

/// Everything after the backends: children, readiness, `--seed-demo`, until the shutdown.
async fn run_mesh(args: &StackArgs, shutdown: &kit::shutdown::CancellationToken) -> anyhow::Result<()> {
    if args.fresh {
        preflight::wipe(args).await?;
        logs::say(format_args!("dropped schemas and Redis keys of prefix {:?}", args.db_prefix));
    }
    let data_platform_url = if args.data_platform_port == 0 {
        std::env::var("DATA_PLATFORM_URL").ok()
    } else {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.data_platform_port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(data_platform::serve(listener));
        logs::say(format_args!("mock data platform on {url}"));
        Some(url)
    };
    let key = dev_key(args)?;
    let plan = plan::build(args, data_platform_url, key.as_ref().map(DevKey::public_pem))?;
    let log_dir = logs::prepare_dir(&args.state_dir);
    if let Some(dir) = &log_dir {
        logs::say(format_args!("each service's raw output is also appended to {}/<service>.log", dir.display()));
    }
    let mut children = supervisor::start(plan.processes, log_dir, shutdown.clone());

    tokio::select! {
        ready = wait_all_ready(&plan.gateway_urls) => {
            if let Err(err) = ready {
                shutdown.cancel();
                while children.join_next().await.is_some() {}
                return Err(err);
            }
        }
        () = shutdown.cancelled() => {}
    }
    if args.seed_demo
        && !shutdown.is_cancelled()
        && let Err(err) = seed_demo(&plan.gateway_url, key.as_ref()).await
    {
        logs::warn(format_args!("seeding failed: {err:#}"));
    }
    if !shutdown.is_cancelled() {
        println!("READY {}", plan.gateway_url);
        std::io::stdout().flush()?;
    }
    shutdown.cancelled().await;
    while children.join_next().await.is_some() {}
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
fn dev_key(args: &StackArgs) -> anyhow::Result<Option<DevKey>> {
    if args.auth == AuthSwitch::Off {
        logs::say("auth off; the gateway serves every request without a token");
        return Ok(None);
    }
    match DevKey::load_or_create(&args.state_dir) {
        Ok(key) => {
            let dir = if args.state_dir.as_os_str() == DEFAULT_STATE_DIR {
                String::new()
            } else {
                format!(" --state-dir {}", args.state_dir.display())
            };
            logs::say(format_args!("auth on; a token: devstack token --user 7 [--admin]{dir}"));
            Ok(Some(key))
        }
        // Its own words only: the error's source is already in them.
        Err(err) => Err(anyhow::anyhow!("{err}")),
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

/// Every gateway answers `/readyz` (all its upstreams serving), so READY means any of them
/// takes traffic.
async fn wait_all_ready(gateways: &[String]) -> anyhow::Result<()> {
    for gateway in gateways {
        wait_ready(gateway).await?;
    }
    Ok(())
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
