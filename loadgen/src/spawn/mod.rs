//! Runs a service binary for the length of a benchmark: free ports, a fresh schema (and
//! Redis key prefix, for a service that uses Redis), so a bench never touches a developer's
//! data, and memory sampled while it serves (the < 64 MiB target is about the process under
//! load, not at idle).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use kit::grpc::MeshChannel;
use mesh_proto::inventory::v1 as inventory_pb;
use mesh_proto::point::v1 as point_pb;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// What loadgen must know to run one service binary: everything else is shared.
#[derive(Debug)]
pub struct Service {
    /// The binary, which is also its cargo package.
    pub binary: &'static str,
    /// Prefix of its env vars (`INVENTORY_`).
    pub env_prefix: &'static str,
    /// Its schema is `<run prefix><schema_suffix>`.
    pub schema_suffix: &'static str,
    /// Whether it takes `<PREFIX>REDIS_URL` and a key prefix.
    pub redis: bool,
    /// One cheap call: serving means any gRPC answer, NOT_FOUND included (migrations are
    /// done, the port is open).
    pub probe: fn(MeshChannel) -> BoxFuture<'static, Result<(), tonic::Status>>,
}

pub static INVENTORY: Service = Service {
    binary: "inventory-svc",
    env_prefix: "INVENTORY_",
    schema_suffix: "loadgen_inventory",
    redis: true,
    probe: |channel| {
        Box::pin(async move {
            let mut client = inventory_pb::inventory_service_client::InventoryServiceClient::new(channel);
            match client.get_product(inventory_pb::GetProductRequest { id: 1 }).await {
                Err(status) if status.code() != tonic::Code::NotFound => Err(status),
                _ => Ok(()),
            }
        })
    },
};

pub static POINT: Service = Service {
    binary: "point-svc",
    env_prefix: "POINT_",
    schema_suffix: "loadgen_point",
    redis: false,
    probe: |channel| {
        Box::pin(async move {
            let mut client = point_pb::point_service_client::PointServiceClient::new(channel);
            client.get_balance(point_pb::GetBalanceRequest { user_id: 1 }).await.map(drop)
        })
    },
};

impl Service {
    /// Fails early, before a bench spends minutes on its first phases, if `bin` is missing.
    pub fn check_binary(&self, bin: &Path) -> anyhow::Result<()> {
        if !bin.is_file() {
            bail!(
                "{} not found; build it with `cargo build --release -p {}` or pass --bin",
                bin.display(),
                self.binary
            );
        }
        Ok(())
    }

    /// `--bin` if given, else the service's binary next to this executable.
    pub fn binary_or_sibling(&self, bin: Option<PathBuf>) -> anyhow::Result<PathBuf> {
        bin.map_or_else(|| sibling_binary(self.binary), Ok)
    }
}

/// Where a sibling binary of the running executable is (both live in `target/release`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the loadgen executable")?;
    Ok(exe.parent().unwrap_or(Path::new(".")).join(name))
}

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    /// The kernel's high-water mark of the resident set over the process's life.
    pub hwm_kib: u64,
    /// Largest resident set seen by loadgen's own sampling.
    pub sampled_peak_kib: u64,
}

impl Memory {
    pub fn to_json(self) -> Value {
        let mib = |kib: u64| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
        json!({"rss_mib": mib(self.rss_kib), "hwm_mib": mib(self.hwm_kib), "sampled_peak_mib": mib(self.sampled_peak_kib)})
    }
}

pub struct Spawned {
    service: &'static Service,
    child: Child,
    pid: u32,
    pub url: String,
    pub schema: String,
    pub key_prefix: String,
    mysql_url: String,
    redis_url: Option<String>,
    log: PathBuf,
    peak_kib: Arc<AtomicU64>,
    sampler: JoinHandle<()>,
}

impl Spawned {
    /// Starts `bin` on free loopback ports and waits until it answers gRPC. `redis_url` is
    /// needed only by a service that uses Redis.
    pub async fn start(
        service: &'static Service,
        bin: &Path,
        mysql_url: &str,
        redis_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        crate::net::ensure_loopback("mysql url", mysql_url)?;
        let redis_url = match (service.redis, redis_url) {
            (true, Some(url)) => Some(url.to_owned()),
            (true, None) => bail!("{} needs a Redis url", service.binary),
            (false, _) => None,
        };
        if let Some(url) = &redis_url {
            crate::net::ensure_loopback("redis url", url)?;
        }
        service.check_binary(bin)?;
        let (grpc_port, metrics_port) = (crate::net::free_port()?, crate::net::free_port()?);
        let key_prefix = kit::testing::unique_prefix();
        let schema = format!("{key_prefix}{}", service.schema_suffix);
        let log = std::env::temp_dir().join(format!("loadgen-{schema}.log"));
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let env = |name: &str| format!("{}{name}", service.env_prefix);
        let mut command = Command::new(bin);
        command
            .env(env("GRPC_ADDR"), format!("127.0.0.1:{grpc_port}"))
            .env(env("METRICS_ADDR"), format!("127.0.0.1:{metrics_port}"))
            .env(env("DATABASE"), &schema)
            .env(env("MYSQL_URL"), mysql_url)
            .env(env("LOG_FORMAT"), "json")
            .env("RUST_LOG", "warn");
        if let Some(url) = &redis_url {
            command.env(env("REDIS_URL"), url).env(env("REDIS_KEY_PREFIX"), &key_prefix);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            // A loadgen that dies early must not leave a service running.
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the service exited at once")?;
        let peak_kib = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn({
            let peak = peak_kib.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    tick.tick().await;
                    if let Some((rss, _)) = crate::procfs::memory_kib(pid) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                }
            }
        });
        let mut spawned = Self {
            service,
            child,
            pid,
            url: format!("http://127.0.0.1:{grpc_port}"),
            schema,
            key_prefix,
            mysql_url: mysql_url.to_owned(),
            redis_url,
            log,
            peak_kib,
            sampler,
        };
        if let Err(err) = spawned.wait_ready(Duration::from_secs(60)).await {
            let tail = spawned.log_tail();
            let _ = spawned.stop(true).await;
            return Err(err.context(format!("{} did not come up; its log ends with:\n{tail}", service.binary)));
        }
        Ok(spawned)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let settings = kit::grpc::ClientSettings {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            ..kit::grpc::ClientSettings::default()
        };
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status}", self.service.binary);
            }
            let channel = kit::grpc::channel(&self.url, &settings)?;
            match (self.service.probe)(channel).await {
                Ok(()) => return Ok(()),
                Err(_) if started.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(status) => bail!("not serving after {timeout:?}: {status}"),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn memory(&self) -> Memory {
        let (rss_kib, hwm_kib) = crate::procfs::memory_kib(self.pid).unwrap_or_default();
        let sampled_peak_kib = self.peak_kib.load(Ordering::Relaxed).max(rss_kib);
        Memory { rss_kib, hwm_kib, sampled_peak_kib }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM (the service drains), SIGKILL if it lingers, then removes its schema (and keys).
    /// The log is kept when asked, for a run that failed.
    pub async fn stop(mut self, keep_log: bool) -> anyhow::Result<()> {
        self.sampler.abort();
        if self.child.try_wait()?.is_none() {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
                self.child.kill().await?;
            }
        }
        kit::db::drop_schema(&self.mysql_url, &self.schema).await.context("cannot drop the service schema")?;
        if let Some(url) = &self.redis_url {
            kit::testing::delete_redis_keys(url, &self.key_prefix)
                .await
                .context("cannot delete the service's Redis keys")?;
        }
        if !keep_log {
            let _ = std::fs::remove_file(&self.log);
        }
        Ok(())
    }
}
