//! Runs a service binary for the length of a benchmark: free ports, a fresh schema and
//! Redis key prefix, so a bench never touches a developer's data, and memory sampled while
//! it serves (the < 64 MiB target is about the process under load, not at idle).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mesh_proto::inventory::v1 as pb;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Where a sibling binary of the running executable is (both live in `target/release`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the loadgen executable")?;
    Ok(exe.parent().unwrap_or(Path::new(".")).join(name))
}

/// Fails early, before a bench spends minutes on its first phases, if `bin` is missing.
pub fn check_binary(bin: &Path) -> anyhow::Result<()> {
    if !bin.is_file() {
        bail!("{} not found; build it with `cargo build --release -p inventory-svc` or pass --bin", bin.display());
    }
    Ok(())
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

pub struct SpawnedInventory {
    child: Child,
    pid: u32,
    pub url: String,
    pub schema: String,
    pub key_prefix: String,
    mysql_url: String,
    redis_url: String,
    log: PathBuf,
    peak_kib: Arc<AtomicU64>,
    sampler: JoinHandle<()>,
}

impl SpawnedInventory {
    /// Starts `bin` on free loopback ports and waits until it answers gRPC.
    pub async fn start(bin: &Path, mysql_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        crate::net::ensure_loopback("mysql url", mysql_url)?;
        crate::net::ensure_loopback("redis url", redis_url)?;
        check_binary(bin)?;
        let (grpc_port, metrics_port) = (crate::net::free_port()?, crate::net::free_port()?);
        let key_prefix = kit::testing::unique_prefix();
        let schema = format!("{key_prefix}loadgen_inventory");
        let log = std::env::temp_dir().join(format!("loadgen-{schema}.log"));
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(bin)
            .env("INVENTORY_GRPC_ADDR", format!("127.0.0.1:{grpc_port}"))
            .env("INVENTORY_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("INVENTORY_DATABASE", &schema)
            .env("INVENTORY_MYSQL_URL", mysql_url)
            .env("INVENTORY_REDIS_URL", redis_url)
            .env("INVENTORY_REDIS_KEY_PREFIX", &key_prefix)
            .env("INVENTORY_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
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
            child,
            pid,
            url: format!("http://127.0.0.1:{grpc_port}"),
            schema,
            key_prefix,
            mysql_url: mysql_url.to_owned(),
            redis_url: redis_url.to_owned(),
            log,
            peak_kib,
            sampler,
        };
        if let Err(err) = spawned.wait_ready(Duration::from_secs(60)).await {
            let tail = spawned.log_tail();
            let _ = spawned.stop(true).await;
            return Err(err.context(format!("inventory-svc did not come up; its log ends with:\n{tail}")));
        }
        Ok(spawned)
    }

    /// Serving means any gRPC answer, NOT_FOUND included: migrations are done, port is open.
    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let settings = kit::grpc::ClientSettings {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            ..kit::grpc::ClientSettings::default()
        };
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("inventory-svc exited with {status}");
            }
            let channel = kit::grpc::channel(&self.url, &settings)?;
            let mut client = pb::inventory_service_client::InventoryServiceClient::new(channel);
            match client.get_product(pb::GetProductRequest { id: 1 }).await {
                Ok(_) => return Ok(()),
                Err(status) if status.code() == tonic::Code::NotFound => return Ok(()),
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

    /// SIGTERM (the service drains), SIGKILL if it lingers, then removes its schema and keys.
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
        kit::testing::delete_redis_keys(&self.redis_url, &self.key_prefix)
            .await
            .context("cannot delete the service's Redis keys")?;
        if !keep_log {
            let _ = std::fs::remove_file(&self.log);
        }
        Ok(())
    }
}
