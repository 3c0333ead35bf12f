//! Runs a service binary (and the gateway in front of it, for a REST bench; payment-svc after
//! the services it calls, with loadgen's own mock data platform) for the length of a
//! benchmark: free ports, a fresh schema (and Redis key prefix, for a service that uses
//! Redis), so a bench never touches a developer's data, and memory sampled while it serves
//! (the < 64 MiB target is about the process under load, not at idle).

mod data_platform;
mod services;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub use self::data_platform::MockPlatform;
pub use self::services::{COUPON, GATEWAY, GATEWAY_ROUTES, INVENTORY, PAYMENT, POINT, sibling_binary};

/// What loadgen must know to run one binary: everything else is shared.
#[derive(Debug)]
pub struct Service {
    /// The binary, which is also its cargo package.
    pub binary: &'static str,
    /// Prefix of its env vars (`INVENTORY_`).
    pub env_prefix: &'static str,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    /// A gRPC service with its own schema (and Redis key prefix).
    Backend(Backend),
    /// The REST gateway: routes to the backends started before it; serving when
    /// `GET /readyz` answers 200 (every routed backend answers its health check).
    Gateway,
}

#[derive(Debug)]
pub struct Backend {
    /// Its schema is `<run prefix><schema_suffix>`.
    pub schema_suffix: &'static str,
    /// Whether it takes `<PREFIX>REDIS_URL` and a key prefix.
    pub redis: bool,
    /// The gateway's name for it: `GATEWAY_<route>_URL`.
    pub route: &'static str,
    /// The backends it calls, by route: it gets `<PREFIX><route>_URL` of each, which must
    /// have been started before it.
    pub upstreams: &'static [&'static str],
    /// Whether it sends to the external data platform (`<PREFIX>DATA_PLATFORM_URL`).
    pub data_platform: bool,
}

/// What every process of a run stores in or sends to, besides the other processes.
#[derive(Clone, Copy, Debug)]
pub struct Backing<'a> {
    pub mysql_url: &'a str,
    /// Needed only by a service that uses Redis.
    pub redis_url: Option<&'a str>,
    /// The mock data platform, needed only by a service that sends to it.
    pub data_platform_url: Option<&'a str>,
    /// The public key a spawned gateway verifies tokens with; `None`: authentication off.
    pub jwt_public_key: Option<&'a Path>,
}

impl Service {
    pub fn needs_data_platform(&self) -> bool {
        matches!(&self.kind, Kind::Backend(backend) if backend.data_platform)
    }
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
    /// gRPC address of a backend, HTTP address of the gateway.
    pub url: String,
    /// A backend's schema; the gateway has none.
    pub schema: Option<String>,
    mysql_url: String,
    /// Set when the process keeps keys under its prefix in Redis.
    redis: Option<(String, String)>,
    log: PathBuf,
    peak_kib: Arc<AtomicU64>,
    sampler: JoinHandle<()>,
}

impl Spawned {
    /// Starts `bin` on free loopback ports and waits until it serves. A backend gets a
    /// fresh schema (and key prefix, if it uses Redis) and the URLs of the backends it calls;
    /// the gateway routes to the `upstreams` started before it, and nowhere else.
    pub async fn start(
        service: &'static Service,
        bin: &Path,
        backing: Backing<'_>,
        upstreams: &[Spawned],
    ) -> anyhow::Result<Self> {
        let mysql_url = backing.mysql_url;
        service.check_binary(bin)?;
        let prefix = kit::testing::unique_prefix();
        let env = |name: &str| format!("{}{name}", service.env_prefix);
        let mut command = Command::new(bin);
        let (url, schema, redis) = match &service.kind {
            Kind::Backend(backend) => {
                crate::net::ensure_loopback("mysql url", mysql_url)?;
                let redis = match (backend.redis, backing.redis_url) {
                    (true, Some(url)) => Some((url.to_owned(), prefix.clone())),
                    (true, None) => bail!("{} needs a Redis url", service.binary),
                    (false, _) => None,
                };
                let (grpc_port, metrics_port) = (crate::net::free_port()?, crate::net::free_port()?);
                let schema = format!("{prefix}{}", backend.schema_suffix);
                command
                    .env(env("GRPC_ADDR"), format!("127.0.0.1:{grpc_port}"))
                    .env(env("METRICS_ADDR"), format!("127.0.0.1:{metrics_port}"))
                    .env(env("DATABASE"), &schema)
                    .env(env("MYSQL_URL"), mysql_url);
                if let Some((url, key_prefix)) = &redis {
                    crate::net::ensure_loopback("redis url", url)?;
                    command.env(env("REDIS_URL"), url).env(env("REDIS_KEY_PREFIX"), key_prefix);
                }
                for route in backend.upstreams {
                    let upstream = upstreams.iter().find(|u| u.route() == Some(*route)).with_context(|| {
                        format!("{} calls {route}, which must be started before it", service.binary)
                    })?;
                    command.env(env(&format!("{route}_URL")), &upstream.url);
                }
                if backend.data_platform {
                    let url = backing
                        .data_platform_url
                        .with_context(|| format!("{} needs a data platform", service.binary))?;
                    crate::net::ensure_loopback("data platform url", url)?;
                    command.env(env("DATA_PLATFORM_URL"), url);
                }
                (format!("http://127.0.0.1:{grpc_port}"), Some(schema), redis)
            }
            Kind::Gateway => {
                let http_port = crate::net::free_port()?;
                command.env(env("HTTP_ADDR"), format!("127.0.0.1:{http_port}"));
                // Set either way, so nothing inherited from the shell decides it.
                command.env_remove(env("JWKS_FILE"));
                match backing.jwt_public_key {
                    Some(pem) => command.env(env("AUTH"), "on").env(env("JWT_PUBLIC_KEY_FILE"), pem),
                    None => command.env(env("AUTH"), "off").env_remove(env("JWT_PUBLIC_KEY_FILE")),
                };
                for route in GATEWAY_ROUTES {
                    let upstream = upstreams.iter().find(|u| u.route() == Some(*route));
                    command.env(env(&format!("{route}_URL")), upstream.map_or("", |u| u.url.as_str()));
                }
                (format!("http://127.0.0.1:{http_port}"), None, None)
            }
        };
        command.env(env("LOG_FORMAT"), "json").env("RUST_LOG", "warn");
        let log = std::env::temp_dir().join(format!("loadgen-{prefix}{}.log", service.binary));
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
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
        let mut spawned =
            Self { service, child, pid, url, schema, mysql_url: mysql_url.to_owned(), redis, log, peak_kib, sampler };
        if let Err(err) = spawned.wait_ready(Duration::from_secs(60)).await {
            let tail = spawned.log_tail();
            let _ = spawned.stop(true).await;
            return Err(err.context(format!("{} did not come up; its log ends with:\n{tail}", service.binary)));
        }
        Ok(spawned)
    }

    /// The gateway's name for this backend.
    fn route(&self) -> Option<&'static str> {
        match &self.service.kind {
            Kind::Backend(backend) => Some(backend.route),
            Kind::Gateway => None,
        }
    }

    /// One readiness probe: a backend's `grpc.health.v1` check (SERVING once migrated and
    /// bound, as every kit server reports), or the gateway's `/readyz`.
    async fn probe(&self, http: &reqwest::Client) -> Result<(), String> {
        match &self.service.kind {
            Kind::Backend(_) => {
                let settings = kit::grpc::ClientSettings {
                    connect_timeout: Duration::from_millis(500),
                    request_timeout: Duration::from_secs(2),
                    ..kit::grpc::ClientSettings::default()
                };
                let channel = kit::grpc::channel(&self.url, &settings).map_err(|e| e.to_string())?;
                let check = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
                match check.map(|r| r.into_inner().status) {
                    Ok(status) if status == ServingStatus::Serving as i32 => Ok(()),
                    Ok(status) => Err(format!("health status {status}")),
                    Err(status) => Err(status.to_string()),
                }
            }
            Kind::Gateway => match http.get(format!("{}/readyz", self.url)).send().await {
                Ok(resp) if resp.status() == reqwest::StatusCode::OK => Ok(()),
                Ok(resp) => Err(format!("/readyz answered {}", resp.status())),
                Err(err) => Err(err.to_string()),
            },
        }
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build()?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status}", self.service.binary);
            }
            match self.probe(&http).await {
                Ok(()) => return Ok(()),
                Err(_) if started.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(why) => bail!("not serving after {timeout:?}: {why}"),
            }
        }
    }

    pub fn binary(&self) -> &'static str {
        self.service.binary
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
        if let Some(schema) = &self.schema {
            kit::db::drop_schema(&self.mysql_url, schema).await.context("cannot drop the service schema")?;
        }
        if let Some((url, key_prefix)) = &self.redis {
            kit::testing::delete_redis_keys(url, key_prefix).await.context("cannot delete the service's Redis keys")?;
        }
        if !keep_log {
            let _ = std::fs::remove_file(&self.log);
        }
        Ok(())
    }
}
