//! The tests' fallback servers (`kit::testing::mysql_url()` / `redis_url()`): with nothing
//! at the defaults, one private server per kind is started and every later test process
//! reuses it; with a server at the defaults, nothing is started.
//!
//! Each case runs the real functions in child processes (this same test binary, running
//! `print_resolved_urls`), because that is how tests meet under nextest (one process each)
//! and because the answer is decided once per process. The defaults are moved with
//! `TEST_DEFAULT_*_URL` and the shared directory with `TEST_SERVERS_DIR`, so the machine's
//! servers and its real shared directory are left alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sea_orm::{ConnectionTrait, Database};

/// Run by the tests below in processes of their own: what the harness resolves there.
#[test]
#[ignore = "a helper: the tests below run it in a child process with the defaults moved"]
fn print_resolved_urls() {
    println!("URLS {} {}", kit::testing::mysql_url(), kit::testing::redis_url());
}

/// A temporary `TEST_SERVERS_DIR`; on drop, its servers are stopped and it is removed.
struct ServersDir(PathBuf);

impl ServersDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("kit-test-servers-{}", kit::testing::unique_prefix())))
    }

    /// The pid recorded for `kind` (`run/<kind>.server`: pid, then URL).
    fn pid(&self, kind: &str) -> Option<i32> {
        std::fs::read_to_string(self.0.join("run").join(format!("{kind}.server"))).ok()?.lines().next()?.parse().ok()
    }
}

impl Drop for ServersDir {
    fn drop(&mut self) {
        for kind in ["mysql", "redis"] {
            if let Some(pid) = self.pid(kind) {
                stop(pid);
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn helper(dir: &Path, default_mysql: &str, default_redis: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "print_resolved_urls", "--ignored", "--nocapture", "--test-threads=1"])
        .env_remove("TEST_MYSQL_URL")
        .env_remove("TEST_REDIS_URL")
        .env("TEST_DEFAULT_MYSQL_URL", default_mysql)
        .env("TEST_DEFAULT_REDIS_URL", default_redis)
        .env("TEST_SERVERS_DIR", dir);
    command
}

/// The (MySQL, Redis) URLs a helper process printed.
fn urls(out: Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let line =
        stdout.lines().find_map(|l| l.split_once("URLS ").map(|(_, urls)| urls)).unwrap_or_else(|| panic!("{stdout}"));
    let (mysql, redis) = line.split_once(' ').unwrap();
    (mysql.to_owned(), redis.to_owned())
}

async fn query_strings(url: &str, sql: &str) -> Vec<String> {
    let db = Database::connect(url).await.unwrap();
    let rows = db.query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
}

async fn execute(url: &str, sql: &str) {
    Database::connect(url).await.unwrap().execute_unprepared(sql).await.unwrap();
}

async fn mysql_answers(url: &str) -> String {
    query_strings(url, "SELECT VERSION()").await.concat()
}

async fn redis_answers(url: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PING").query_async::<String>(&mut conn).await.unwrap()
}

/// Runs `helpers` at once and waits for all of them.
fn run_together(helpers: Vec<Command>) -> Vec<(String, String)> {
    let children: Vec<_> = helpers
        .into_iter()
        .map(|mut command| command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    children.into_iter().map(|child| urls(child.wait_with_output().unwrap())).collect()
}

#[tokio::test]
async fn with_nothing_at_the_defaults_one_private_server_per_kind_is_started_and_shared() {
    let dir = ServersDir::new();
    let (dead_mysql, dead_redis) =
        (format!("mysql://root@127.0.0.1:{}", dead_port()), format!("redis://127.0.0.1:{}", dead_port()));
    let helpers = || helper(&dir.0, &dead_mysql, &dead_redis);
    // Two test processes at once, both finding nothing: the directory's lock makes them
    // agree on one server per kind.
    let first = tokio::task::spawn_blocking({
        let helpers = vec![helpers(), helpers()];
        move || run_together(helpers)
    })
    .await
    .unwrap();
    assert_eq!(first[0], first[1], "both processes use the same servers");
    let (mysql, redis) = first[0].clone();
    assert!(mysql != dead_mysql && redis != dead_redis, "{mysql} {redis}");
    assert!(mysql.starts_with("mysql://root@127.0.0.1:") && redis.starts_with("redis://127.0.0.1:"));
    assert!(!mysql_answers(&mysql).await.is_empty());
    assert_eq!(redis_answers(&redis).await, "PONG");
    let pids = (dir.pid("mysql").expect("recorded"), dir.pid("redis").expect("recorded"));
    assert!(dir.0.join("mysql").join("mysql").is_dir(), "the data directory is installed");

    // A later test process finds them answering and reuses them: same URLs, same processes.
    let later = tokio::task::spawn_blocking({
        let helpers = vec![helpers()];
        move || run_together(helpers)
    })
    .await
    .unwrap();
    assert_eq!(later[0], (mysql.clone(), redis.clone()));
    assert_eq!((dir.pid("mysql").unwrap(), dir.pid("redis").unwrap()), pids);

    // Once stopped, the next process starts the server again, on the data already there.
    let kept = format!("{}kept", kit::testing::unique_prefix());
    execute(&mysql, &format!("CREATE DATABASE `{kept}`")).await;
    kill_and_wait(pids.0);
    let again = tokio::task::spawn_blocking({
        let helpers = vec![helpers()];
        move || run_together(helpers)
    })
    .await
    .unwrap();
    assert_eq!(again[0].1, redis, "Redis still answers: kept");
    assert_ne!(dir.pid("mysql").unwrap(), pids.0, "a new MySQL process");
    let databases = query_strings(&again[0].0, &format!("SHOW DATABASES LIKE '{kept}'")).await;
    assert_eq!(databases, [kept], "the data directory was reused, not installed again");
}

#[tokio::test]
async fn with_servers_at_the_defaults_nothing_is_started() {
    let dir = ServersDir::new();
    // Whatever the tests use here (the machine's servers, or the shared ones) answers:
    // made "the defaults" of a child process, they are used as they are.
    let (mysql, redis) = (kit::testing::mysql_url(), kit::testing::redis_url());
    let resolved = tokio::task::spawn_blocking({
        let helpers = vec![helper(&dir.0, &mysql, &redis)];
        move || run_together(helpers)
    })
    .await
    .unwrap();
    assert_eq!(resolved[0], (mysql, redis));
    assert!(!dir.0.join("run").exists(), "no server of our own, not even its directory");
}

/// SIGTERM, then whether it is gone within a minute.
fn stop(pid: i32) -> bool {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..1200 {
        if nix::sys::signal::kill(pid, None).is_err() || zombie(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

fn kill_and_wait(pid: i32) {
    assert!(stop(pid), "{pid} did not stop");
}

/// Dead but not reaped: the helper that started it is gone, and its new parent may not reap.
fn zombie(pid: nix::unistd::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
}

/// Run by the test below in a process of its own: owns a MySQL server under
/// `OWNED_SERVER_DIR` and exits without stopping it, as an owner killed with SIGKILL would.
#[test]
#[ignore = "a helper: the test below runs it in a child process"]
fn start_an_owned_server_and_vanish() {
    let dir = PathBuf::from(std::env::var_os("OWNED_SERVER_DIR").expect("OWNED_SERVER_DIR"));
    let server = kit::testing::LocalServer::start(kit::testing::ServerKind::Mysql, &dir).unwrap();
    println!("PID {}", server.pid().unwrap());
    // No destructor runs: the server is orphaned, the directory's lock released.
    std::process::exit(0);
}

#[tokio::test]
async fn an_owned_server_left_behind_is_stopped_by_the_next_owner_and_a_directory_has_one_owner() {
    use kit::testing::{LocalServer, ServerError, ServerKind};
    let dir = ServersDir::new();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "start_an_owned_server_and_vanish", "--ignored", "--nocapture", "--test-threads=1"])
        .env("OWNED_SERVER_DIR", &dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let orphan: i32 =
        stdout.split_once("PID ").and_then(|(_, rest)| rest.split_whitespace().next()).unwrap().parse().unwrap();
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(orphan), None).is_ok(), "the orphan still runs");

    // The next owner stops it (its data directory is locked while it runs) and starts anew.
    let owner = tokio::task::spawn_blocking({
        let dir = dir.0.clone();
        move || LocalServer::start(ServerKind::Mysql, &dir)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(orphan), None).is_err()
            || zombie(nix::unistd::Pid::from_raw(orphan))
    );
    assert!(!owner.installed(), "the data directory of the first owner is reused");
    assert!(!mysql_answers(owner.url()).await.is_empty());

    // While it runs, nobody else may start (or stop) a server in its directory.
    let second = LocalServer::start(ServerKind::Mysql, &dir.0);
    assert!(matches!(second, Err(ServerError::InUse { .. })), "{:?}", second.err());

    let (pid, url) = (owner.pid().unwrap() as i32, owner.url().to_owned());
    tokio::task::spawn_blocking(move || owner.stop()).await.unwrap();
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(), "stopped and reaped");
    assert!(std::net::TcpStream::connect(url.trim_start_matches("mysql://root@")).is_err());
    assert!(dir.pid("mysql").is_none(), "its record is removed");
}
