use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A free port below the kernel's ephemeral range (32768+), where no other socket on the
/// machine is handed a port by the kernel between this probe and devstack's bind.
fn free_port() -> u16 {
    loop {
        let port = 10_000 + (rand_u16() % 9_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Free ports for the four services' gRPC and metrics listeners and their extra replicas,
/// all below the ephemeral range.
fn free_base() -> u16 {
    loop {
        let base = 20_000 + (rand_u16() % 11_000);
        let all_free = (0..12).chain(1000..1012).all(|o| std::net::TcpListener::bind(("127.0.0.1", base + o)).is_ok());
        if all_free {
            return base;
        }
    }
}

fn rand_u16() -> u16 {
    rand::random()
}

/// A private `--state-dir` (so no test touches `.devstack/` or another test's key),
/// removed when dropped.
pub struct StateDir(PathBuf);

impl StateDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("devstack-state-{}", kit::testing::unique_prefix()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Stack {
    child: Child,
    pub gateway: String,
    /// Every line devstack wrote to stderr so far: its own and its children's.
    log: Arc<Mutex<Vec<String>>>,
    prefix: String,
    state_dir: PathBuf,
    auth: bool,
    /// The state dir the helper made, when the test did not bring its own.
    _state: Option<StateDir>,
}

#[derive(Default)]
pub struct StackOptions<'a> {
    pub extra: &'a [&'a str],
    /// Reaches every child too (the supervisor passes its environment on); may override
    /// the helper's `RUST_LOG` and `GATEWAY_RATE_LIMIT_PER_SEC`.
    pub env: &'a [(&'a str, &'a str)],
    /// The `--state-dir` (where the dev key lives), which the test keeps across restarts;
    /// `None`: a fresh one, removed with the stack.
    pub state_dir: Option<&'a Path>,
    /// `--auth off`; otherwise auth is on (devstack's default) and the tests carry tokens.
    pub auth_off: bool,
}

pub async fn start_stack(extra: &[&str]) -> Stack {
    start_stack_with_env(extra, &[]).await
}

pub async fn start_stack_with_env(extra: &[&str], env: &[(&str, &str)]) -> Stack {
    start_stack_with(StackOptions { extra, env, ..StackOptions::default() }).await
}

pub async fn start_stack_with(options: StackOptions<'_>) -> Stack {
    let StackOptions { extra, env, state_dir, auth_off } = options;
    let own_state = state_dir.is_none().then(StateDir::new);
    let state_dir = state_dir.or(own_state.as_ref().map(StateDir::path)).expect("one of the two").to_owned();
    let prefix = kit::testing::unique_prefix();
    let gateway_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["--auth", if auth_off { "off" } else { "on" }])
        .arg("--state-dir")
        .arg(&state_dir)
        .args(["--gateway-port", &gateway_port.to_string()])
        .args(["--grpc-base-port", &free_base().to_string()])
        .args(["--data-platform-port", &free_port().to_string()])
        .args(["--db-prefix", &prefix, "--fresh"])
        .args(["--mysql-url", &kit::testing::mysql_url(), "--redis-url", &kit::testing::redis_url()])
        .args(extra)
        // Every test client sends from 127.0.0.1: a crowd of test users would look like one
        // caller to the per-address rate limit. A test may set it back through `env`.
        .env("GATEWAY_RATE_LIMIT_PER_SEC", "0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("devstack starts");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = stderr.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(120), stdout.next_line()).await;
    let line = ready.expect("READY within 120 s").unwrap().expect("a line");
    assert_eq!(line, format!("READY http://127.0.0.1:{gateway_port}"));
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    Stack { child, gateway, log, prefix, state_dir, auth: !auth_off, _state: own_state }
}

impl Stack {
    /// The `--db-prefix`, which is also the prefix of every Redis key of the stack.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// A token signed with this stack's dev key (as `devstack token` mints them).
    pub fn token(&self, user: i64, admin: bool) -> String {
        let key = devstack::dev_key::DevKey::load(&self.state_dir).expect("the stack made its key");
        key.mint(user, admin, 3600).expect("a token")
    }

    /// A client that acts as an admin (an admin may act for every user); with auth off,
    /// a client without a token.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if self.auth {
            let value = format!("Bearer {}", self.token(1, true)).parse().expect("a header value");
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        reqwest::Client::builder().default_headers(headers).build().expect("a client")
    }

    pub fn pid_of(&self, label: &str) -> i32 {
        let log = self.log.lock().unwrap();
        let line =
            log.iter().rev().find(|l| l.starts_with(&format!("devstack: started {label} pid="))).expect("started line");
        line.split("pid=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap()
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub async fn stop(mut self) -> std::process::ExitStatus {
        kill(Pid::from_raw(self.child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.expect("stops").unwrap()
    }
}

impl Drop for Stack {
    /// Also after a failed assertion: the child is killed (`kill_on_drop`) and the
    /// stack's schemas and keys are dropped, so a failing test leaves nothing behind.
    fn drop(&mut self) {
        // SIGTERM, so devstack stops its children too; SIGKILL only if it does not.
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            for _ in 0..100 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.start_kill();
        }
        let schemas = devstack::preflight::schemas(&self.prefix).into_iter().collect();
        kit::testing::cleanup_blocking(schemas, Some(self.prefix.clone()));
    }
}

/// Creates a coupon of `total` copies and has `users` ask for it all at once through the
/// gateway at `gateway`: the coupon's id and the winners' sequences, sorted.
pub async fn coupon_race(
    http: &reqwest::Client,
    gateway: &str,
    total: i64,
    users: std::ops::RangeInclusive<i64>,
) -> (i64, Vec<i64>) {
    let coupon: Value = http
        .post(format!("{gateway}/v1/coupons"))
        .json(&json!({"name": "race", "discountType": "FIXED", "discountValue": 100, "totalQuantity": total}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = coupon["id"].as_i64().expect("a coupon id");
    let issues = users.map(|user| {
        let (http, url) = (http.clone(), format!("{gateway}/v1/coupons/{id}/issue"));
        async move {
            let resp = http.post(url).json(&json!({"userId": user})).send().await.unwrap();
            if resp.status() == 201 { resp.json::<Value>().await.unwrap()["sequence"].as_i64() } else { None }
        }
    });
    let mut sequences: Vec<i64> = futures::future::join_all(issues).await.into_iter().flatten().collect();
    sequences.sort_unstable();
    (id, sequences)
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

#[tokio::test]
async fn the_stack_serves_survives_a_kill_9_and_stops_cleanly() {
    kit::testing::install_crypto_provider();
    let stack = start_stack(&["--replicas", "inventory=2", "--replicas", "point=2", "--seed-demo"]).await;
    let http = stack.client();
    let seeded: Value = http.get(format!("{}/v1/products", stack.gateway)).send().await.unwrap().json().await.unwrap();
    assert_eq!(seeded["totalItems"], 5, "demo data loaded");
    let points: Value = http.get(format!("{}/v1/points/1", stack.gateway)).send().await.unwrap().json().await.unwrap();
    assert_eq!(points["balance"], 1_000_000, "demo points loaded");

    let victim = stack.pid_of("inventory[0]");
    kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    // The other replica keeps serving while the victim is restarted.
    for i in 0..20 {
        let resp = http
            .post(format!("{}/v1/products", stack.gateway))
            .json(&json!({"name": format!("after kill {i}"), "price": 1, "stock": 1}))
            .send()
            .await
            .unwrap();
        assert!(resp.status() == 201 || resp.status() == 503, "{}", resp.status());
    }
    let mut restarted = false;
    for _ in 0..100 {
        if stack.pid_of("inventory[0]") != victim {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(restarted, "the killed replica is restarted: {:?}", stack.log.lock().unwrap());
    // devstack alone writes its stderr, a whole line at a time: no child's line cuts into this one.
    assert!(stack.logged("devstack: inventory[0] exited (signal: 9 (SIGKILL)); restarting in"), "{:?}", stack.lines());
    let new_pid = stack.pid_of("inventory[0]");
    let gateway_pid = stack.pid_of("gateway[0]");
    let status = stack.stop().await;
    assert!(status.success(), "devstack exits 0 on SIGTERM: {status}");
    assert!(!alive(new_pid) && !alive(gateway_pid), "no child outlives devstack");
}

#[tokio::test]
async fn an_unreachable_mysql_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["--mysql-url", "mysql://root@127.0.0.1:1", "--gateway-port", &free_port().to_string()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MySQL is not reachable") && stderr.contains("start-stop-daemon"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_redis_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["--redis-url", "redis://127.0.0.1:1", "--gateway-port", &free_port().to_string()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Redis is not reachable") && stderr.contains("redis-server"), "{stderr}");
}

#[tokio::test]
async fn two_replicas_of_point_and_coupon_keep_the_invariants_with_auth_off() {
    kit::testing::install_crypto_provider();
    let extra = ["--replicas", "point=2", "--replicas", "coupon=2"];
    let stack = start_stack_with(StackOptions { extra: &extra, auth_off: true, ..StackOptions::default() }).await;
    assert!(stack.logged("devstack: auth off; the gateway serves every request without a token"));
    // Auth off: every route without a token, as anyone.
    let http = reqwest::Client::new();
    let post = |path: &'static str, body: Value, key: Option<String>| {
        let (http, url) = (http.clone(), format!("{}{path}", stack.gateway));
        async move {
            let mut req = http.post(url).json(&body);
            if let Some(key) = key {
                req = req.header("idempotency-key", key);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(post("/v1/points/charge", json!({"userId": 77, "amount": 10_000}), None).await, 200);
    // 300 uses of 100 on 10,000, spread over both replicas: exactly 100 succeed.
    let uses =
        futures::future::join_all((0..300).map(|_| post("/v1/points/use", json!({"userId": 77, "amount": 100}), None)))
            .await;
    assert_eq!(uses.iter().filter(|s| **s == 200).count(), 100, "{uses:?}");
    assert!(uses.iter().all(|s| *s == 200 || *s == 409));
    // One key, twenty times, across both replicas: one effect.
    let keyed =
        (0..20).map(|_| post("/v1/points/charge", json!({"userId": 78, "amount": 500}), Some("cross-replica".into())));
    let statuses = futures::future::join_all(keyed).await;
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    let balance = |user: i64| {
        let (http, url) = (http.clone(), format!("{}/v1/points/{user}", stack.gateway));
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap()["balance"].clone() }
    };
    assert_eq!(balance(77).await, 0);
    assert_eq!(balance(78).await, 500);
    let history: Value = http
        .get(format!("{}/v1/points/77/history?limit=200", stack.gateway))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 101);
    assert_eq!(items[0]["balanceAfter"], 0);

    // 400 users race for 40 copies through both coupon replicas: exactly 1..=40.
    let (_, sequences) = coupon_race(&http, &stack.gateway, 40, 1..=400).await;
    assert_eq!(sequences, (1..=40).collect::<Vec<_>>());
    assert!(stack.stop().await.success());
}
