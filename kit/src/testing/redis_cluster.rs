//! A real Redis Cluster of the test's own: `redis-server --cluster-enabled yes` on free ports,
//! joined by `redis-cli --cluster create`, killed and removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisCluster {
    nodes: Vec<(u16, Child)>,
    dir: PathBuf,
    /// `redis+cluster://127.0.0.1:<port>,...`: what a service is configured with.
    pub url: String,
}

impl RedisCluster {
    /// `masters` masters (3 at least: redis-cli's minimum) sharing the 16,384 slots, no
    /// replicas, every node agreeing the cluster is ok.
    pub fn start(masters: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-redis-cluster-{}", super::unique_prefix()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut nodes = Vec::new();
        for _ in 0..masters {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server runs (Debian package redis-server)");
            nodes.push((port, child));
        }
        let addresses: Vec<String> = nodes.iter().map(|(port, _)| format!("127.0.0.1:{port}")).collect();
        let url = format!("{}{}", crate::cache::CLUSTER_SCHEME, addresses.join(","));
        let cluster = Self { nodes, dir, url };
        for address in &addresses {
            wait_until(Duration::from_secs(10), || redis_cli(address, &["PING"]).filter(|o| o.contains("PONG")))
                .unwrap_or_else(|| panic!("redis-server at {address} never answered"));
        }
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs (Debian package redis-tools)");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok();
        cluster
    }

    /// The node addresses, `127.0.0.1:<port>`.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|(port, _)| format!("127.0.0.1:{port}")).collect()
    }

    /// Blocks until every node reports `cluster_state:ok` and agrees on the slots.
    pub fn wait_until_ok(&self) {
        let ok = wait_until(Duration::from_secs(30), || {
            let addresses = self.addresses();
            let states = addresses
                .iter()
                .all(|a| redis_cli(a, &["CLUSTER", "INFO"]).is_some_and(|info| info.contains("cluster_state:ok")));
            let check = Command::new("redis-cli")
                .args(["--cluster", "check", &addresses[0]])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("[OK] All 16384 slots covered."));
            (states && check).then_some(())
        });
        assert!(ok.is_some(), "the cluster never became ok");
    }

    /// The address of the master that serves `key`'s slot now.
    pub fn master_of(&self, key: &str) -> String {
        let slot: u16 = redis_cli(&self.addresses()[0], &["CLUSTER", "KEYSLOT", key])
            .and_then(|s| s.trim().parse().ok())
            .expect("CLUSTER KEYSLOT answers");
        let nodes = redis_cli(&self.addresses()[0], &["CLUSTER", "NODES"]).expect("CLUSTER NODES answers");
        for line in nodes.lines() {
            if slot_ranges(line).any(|(first, last)| (first..=last).contains(&slot)) {
                let address = line.split_whitespace().nth(1).expect("a node's address");
                return address.split('@').next().unwrap().to_owned();
            }
        }
        panic!("no master serves slot {slot}: {nodes}");
    }

    /// The node id of the master at `address`.
    pub fn node_id(&self, address: &str) -> String {
        redis_cli(address, &["CLUSTER", "MYID"]).expect("CLUSTER MYID answers").trim().to_owned()
    }

    /// Moves every slot of the master at `from` to the master at `to` with `redis-cli --cluster
    /// reshard` (slot by slot: importing, migrating, MIGRATE of its keys, the new owner), while
    /// clients keep going. Blocks until done.
    pub fn move_all_slots(&self, from: &str, to: &str) {
        let nodes = redis_cli(from, &["CLUSTER", "NODES"]).expect("CLUSTER NODES answers");
        let me = nodes.lines().find(|line| line.contains("myself")).expect("the node itself is listed");
        let slots: u32 = slot_ranges(me).map(|(first, last)| u32::from(last - first) + 1).sum();
        let status = Command::new("redis-cli")
            .args(["--cluster", "reshard", from])
            .args(["--cluster-from", &self.node_id(from), "--cluster-to", &self.node_id(to)])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success(), "redis-cli --cluster reshard failed");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The slot ranges a `CLUSTER NODES` line says the node serves (fields 9 on: `0-5460`, `42`).
fn slot_ranges(line: &str) -> impl Iterator<Item = (u16, u16)> + '_ {
    line.split_whitespace().skip(8).filter_map(|range| match range.split_once('-') {
        Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
        None => range.parse().ok().map(|slot| (slot, slot)),
    })
}

fn free_port() -> u16 {
    // A cluster node also listens on port + 10,000 (its bus): keep both free and valid.
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn redis_cli(address: &str, args: &[&str]) -> Option<String> {
    let (host, port) = address.split_once(':')?;
    let output = Command::new("redis-cli").args(["-h", host, "-p", port]).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn wait_until<T>(within: Duration, mut done: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + within;
    loop {
        if let Some(value) = done() {
            return Some(value);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
