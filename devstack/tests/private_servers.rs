//! devstack's own servers, as a newcomer meets them: no `--mysql-url` / `--redis-url` and
//! nothing answering at the defaults. The defaults are moved to ports where nothing listens
//! (`DEVSTACK_DEFAULT_*_URL`), so the machine's servers keep serving the other tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A free loopback port below the kernel's ephemeral range, as devstack's other tests pick.
fn free_port(from: u16, span: u16, run: u16) -> u16 {
    loop {
        let base = from + rand::random::<u16>() % span;
        if (0..run).chain(1000..1000 + run).all(|o| std::net::TcpListener::bind(("127.0.0.1", base + o)).is_ok()) {
            return base;
        }
    }
}

/// The `--state-dir`, kept across both starts; on drop (a failed test too) any server still
/// recorded in it is killed and it is removed.
struct StateDir(PathBuf);

impl StateDir {
    fn recorded(&self, kind: &str) -> Option<(i32, String)> {
        let text = std::fs::read_to_string(self.0.join("run").join(format!("{kind}.server"))).ok()?;
        let mut lines = text.lines();
        Some((lines.next()?.parse().ok()?, lines.next()?.to_owned()))
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        for kind in ["mysql", "redis"] {
            if let Some((pid, _)) = self.recorded(kind) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Devstack {
    child: Child,
    gateway: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Devstack {
    /// devstack with neither URL given and the defaults where nothing answers; READY.
    async fn start(state: &Path, defaults: &(String, String)) -> Self {
        let gateway_port = free_port(10_000, 9_000, 1);
        let mut child = Command::new(env!("CARGO_BIN_EXE_devstack"))
            .args(["--auth", "off", "--data-platform-port", "0", "--db-prefix", "own_"])
            .arg("--state-dir")
            .arg(state)
            .args(["--gateway-port", &gateway_port.to_string()])
            .args(["--grpc-base-port", &free_port(20_000, 11_000, 4).to_string()])
            .env("DEVSTACK_DEFAULT_MYSQL_URL", &defaults.0)
            .env("DEVSTACK_DEFAULT_REDIS_URL", &defaults.1)
            .env("GATEWAY_RATE_LIMIT_PER_SEC", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("devstack starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(150), stdout.next_line()).await;
        let line = ready.unwrap_or_else(|_| panic!("READY within 150 s: {:?}", stderr.lock().unwrap())).unwrap();
        assert_eq!(line.as_deref(), Some(&*format!("READY http://127.0.0.1:{gateway_port}")), "{stderr:?}");
        Self { child, gateway: format!("http://127.0.0.1:{gateway_port}"), stderr }
    }

    /// devstack's line about the servers it started.
    fn started_line(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        let found = lines.iter().find(|line| line.contains("started private servers"));
        found.unwrap_or_else(|| panic!("{lines:?}")).clone()
    }

    async fn stop(mut self) -> Vec<String> {
        kill(Pid::from_raw(self.child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(90), self.child.wait()).await.expect("stops").unwrap();
        assert!(status.success(), "devstack exits 0 on SIGTERM: {status}");
        // The reader has the last lines once the pipe closed with the exit.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.stderr.lock().unwrap().clone()
    }
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

fn accepts(url: &str) -> bool {
    let address = url.rsplit_once('@').map_or(url, |(_, rest)| rest).trim_start_matches("redis://");
    std::net::TcpStream::connect(address).is_ok()
}

/// Both servers of this run: (pid, url) each, and that they answer what the mesh needs.
fn running(state: &StateDir) -> [(i32, String); 2] {
    let servers = ["mysql", "redis"].map(|kind| state.recorded(kind).unwrap_or_else(|| panic!("{kind} recorded")));
    for (pid, url) in &servers {
        assert!(alive(*pid) && accepts(url), "{pid} {url}");
    }
    servers
}

fn assert_gone(servers: &[(i32, String); 2], state: &StateDir) {
    for (pid, url) in servers {
        assert!(!alive(*pid), "{url} (pid {pid}) stopped with devstack");
        assert!(!accepts(url), "nothing listens at {url} any more");
    }
    assert!(state.recorded("mysql").is_none() && state.recorded("redis").is_none(), "records removed");
}

#[tokio::test]
async fn with_nothing_at_the_defaults_devstack_runs_its_own_servers_and_reuses_their_data() {
    kit::testing::install_crypto_provider();
    let state = StateDir(std::env::temp_dir().join(format!("devstack-own-{}", kit::testing::unique_prefix())));
    let nothing = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let defaults = (format!("mysql://root@127.0.0.1:{}", nothing()), format!("redis://127.0.0.1:{}", nothing()));

    let first = Devstack::start(&state.0, &defaults).await;
    let line = first.started_line();
    assert!(line.contains(&defaults.0) && line.contains(&defaults.1), "{line}");
    assert!(line.contains("MariaDB at mysql://root@127.0.0.1:") || line.contains("MySQL at mysql://"), "{line}");
    assert!(line.contains("Redis at redis://127.0.0.1:") && line.contains("(new)"), "{line}");
    let servers = running(&state);
    assert!(line.contains(&servers[0].1) && line.contains(&servers[1].1), "{line}");
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v1/products", first.gateway))
        .json(&json!({"name": "Own-server keyboard", "price": 39_000, "stock": 7}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let product = format!("{}/v1/products/{}", first.gateway, created["id"]);
    let read: Value = http.get(&product).send().await.unwrap().error_for_status().unwrap().json().await.unwrap();
    assert_eq!((&read["name"], &read["stock"]), (&json!("Own-server keyboard"), &json!(7)));
    let lines = first.stop().await;
    assert!(
        lines.iter().any(|l| l.starts_with("devstack: stopped private ") && l.ends_with(" and Redis")),
        "{lines:?}"
    );
    assert_gone(&servers, &state);

    // The next start reuses the data directory: no install, and the product is still there.
    let second = Devstack::start(&state.0, &defaults).await;
    let line = second.started_line();
    assert!(line.contains("(reused)"), "{line}");
    let again = running(&state);
    let product = format!("{}/v1/products/{}", second.gateway, created["id"]);
    let read: Value = http.get(&product).send().await.unwrap().error_for_status().unwrap().json().await.unwrap();
    assert_eq!(read["name"], "Own-server keyboard");
    second.stop().await;
    assert_gone(&again, &state);
}
