//! CPU time and resident memory of a process, from `/proc`. On a 2-core box the load
//! generator, the service and MySQL share the CPUs, so who burned how much is part of
//! reading any throughput figure.

use std::collections::BTreeMap;

/// Clock ticks per second of `/proc/<pid>/stat`. `USER_HZ` is 100 on every Linux ABI
/// that matters here, and reading it via sysconf would need a nix feature for one number.
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU seconds of this process.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id())
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// `(VmRSS, VmHWM)` of `pid` in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((status_field(&status, "VmRSS:")?, status_field(&status, "VmHWM:")?))
}

/// The processes a run on this box competes with for CPU, by `/proc/<pid>/comm`: the mesh's
/// binaries and its backends. Found by name, so a service loadgen did not start (devstack)
/// is counted too, and so is a second copy someone else runs meanwhile.
pub const PEERS: &[&str] =
    &["gateway", "inventory-svc", "point-svc", "coupon-svc", "payment-svc", "redis-server", "mysqld", "mariadbd"];

/// CPU seconds of every running [`PEERS`] process at one instant, by pid.
#[derive(Clone, Debug, Default)]
pub struct PeerCpu(BTreeMap<u32, (String, f64)>);

impl PeerCpu {
    pub fn take() -> Self {
        let Ok(dir) = std::fs::read_dir("/proc") else { return Self::default() };
        let peers = dir
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                let name = PEERS.iter().find(|&&p| p == comm.trim_end())?;
                Some((pid, ((*name).to_owned(), cpu_seconds(pid)?)))
            })
            .collect();
        Self(peers)
    }

    /// CPU seconds each peer used since `before`, by name (`name xN` when N copies ran),
    /// counting processes alive at both instants.
    pub fn since(&self, before: &PeerCpu) -> BTreeMap<String, f64> {
        let mut by_name: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for (pid, (name, after)) in &self.0 {
            if let Some((_, earlier)) = before.0.get(pid) {
                let slot = by_name.entry(name).or_default();
                *slot = (slot.0 + 1, slot.1 + (after - earlier).max(0.0));
            }
        }
        by_name
            .into_iter()
            .map(|(name, (n, used))| (if n > 1 { format!("{name} x{n}") } else { name.to_owned() }, used))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_memory_and_cpu_of_a_process() {
        let status = "Name:\tinventory-svc\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(30_720));
        assert_eq!(status_field(status, "VmHWM:"), Some(40_960));
        let (rss, hwm) = memory_kib(std::process::id()).expect("own /proc status");
        assert!(rss > 0 && hwm >= rss);
        let before = own_cpu_seconds().expect("own /proc stat");
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(own_cpu_seconds().unwrap() >= before);
    }

    #[test]
    fn peers_are_counted_by_name_over_the_pids_alive_twice() {
        let at = |rows: &[(u32, &str, f64)]| {
            PeerCpu(rows.iter().map(|&(pid, name, cpu)| (pid, (name.to_owned(), cpu))).collect())
        };
        let before = at(&[(1, "gateway", 1.0), (2, "redis-server", 5.0), (3, "redis-server", 1.0), (4, "mysqld", 9.0)]);
        let after = at(&[(1, "gateway", 3.5), (2, "redis-server", 6.0), (3, "redis-server", 1.5), (5, "mysqld", 1.0)]);
        let used = after.since(&before);
        assert_eq!(used.len(), 2, "{used:?}");
        assert!((used["gateway"] - 2.5).abs() < 1e-9);
        assert!((used["redis-server x2"] - 1.5).abs() < 1e-9);
        PeerCpu::take();
    }
}
