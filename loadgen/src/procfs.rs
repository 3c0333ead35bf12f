//! CPU time and resident memory of a process, from `/proc`. On a 2-core box the load
//! generator, the service and MySQL share the CPUs, so who burned how much is part of
//! reading any throughput figure.

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
}
