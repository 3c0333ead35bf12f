//! Where load may go: loopback only, so a mistyped URL can never load-test someone else.

use std::net::{IpAddr, Ipv4Addr, TcpListener};

use anyhow::{Context, bail};

/// The host part of `scheme://[user@]host[:port][/path]`.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    host_port.split(':').next().unwrap_or(host_port)
}

pub fn is_loopback(url: &str) -> bool {
    let host = host_of(url);
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses anything but 127.0.0.0/8, ::1 or localhost.
pub fn ensure_loopback(what: &str, url: &str) -> anyhow::Result<()> {
    if !is_loopback(url) {
        bail!("{what} {:?} is not a loopback address; loadgen only sends traffic to 127.0.0.1", kit::db::redact(url));
    }
    Ok(())
}

/// Loopback source addresses a REST pool may spread its connections over, at most: 256
/// third octets of 254 hosts each under 127.1, far more than any run's clients.
pub const MAX_SOURCE_ADDRESSES: usize = 254 * 256;

/// The `index`-th source address: 127.1.0.1 upward, skipping .0 and .255 in the last
/// octet (network and broadcast addresses look odd in logs and to some filters).
pub fn source_address(index: usize) -> Ipv4Addr {
    let index = index % MAX_SOURCE_ADDRESSES;
    Ipv4Addr::new(127, 1, (index / 254) as u8, (1 + index % 254) as u8)
}

/// The source addresses `clients` connections to `target` come from, as a crowd of users
/// would arrive: `wanted` of them (never more than there are clients), so that a server
/// keying anything by the caller's address (a rate limiter) sees many callers, not one.
/// Empty (the kernel picks 127.0.0.1) for one address, or when the target is not
/// 127.0.0.1 or localhost: a socket bound to 127.1.x.y cannot reach ::1, and another
/// loopback target is someone's deliberate choice.
pub fn source_addresses(target: &str, wanted: usize, clients: usize) -> Vec<Ipv4Addr> {
    let host = host_of(target);
    let spreadable = host == "127.0.0.1" || host.eq_ignore_ascii_case("localhost");
    let count = wanted.min(clients).min(MAX_SOURCE_ADDRESSES);
    if !spreadable || count <= 1 {
        return Vec::new();
    }
    (0..count).map(source_address).collect()
}

/// A port nothing listens on right now. The kernel may hand it out again before the
/// service binds it, but on a loopback test box that race is rare and fails loudly.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a probe socket on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_pass() {
        assert!(is_loopback("http://127.0.0.1:50051"));
        assert!(is_loopback("mysql://root:pw@127.0.0.1:3306/db"));
        assert!(is_loopback("http://localhost:8080/api"));
        assert!(is_loopback("http://[::1]:50051"));
        assert!(is_loopback("redis://127.0.0.2:6379"));
        assert!(!is_loopback("http://10.0.0.5:50051"));
        assert!(!is_loopback("mysql://root@db.example.com:3306"));
        assert!(!is_loopback("http://127.0.0.1.example.com:80"));
    }

    #[test]
    fn source_addresses_skip_network_and_broadcast_octets() {
        assert_eq!(source_address(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(source_address(253), Ipv4Addr::new(127, 1, 0, 254));
        assert_eq!(source_address(254), Ipv4Addr::new(127, 1, 1, 1));
        assert_eq!(source_address(1_023), Ipv4Addr::new(127, 1, 4, 8));
        assert_eq!(source_address(MAX_SOURCE_ADDRESSES - 1), Ipv4Addr::new(127, 1, 255, 254));
        let all: std::collections::HashSet<_> = (0..MAX_SOURCE_ADDRESSES).map(source_address).collect();
        assert_eq!(all.len(), MAX_SOURCE_ADDRESSES);
        assert!(all.iter().all(|a| a.is_loopback() && !matches!(a.octets()[3], 0 | 255)));
    }

    #[test]
    fn sources_are_spread_only_towards_127_0_0_1_and_never_past_the_clients() {
        let gateway = "http://127.0.0.1:8080";
        assert_eq!(source_addresses(gateway, 1_024, 10_000).len(), 1_024);
        assert_eq!(source_addresses(gateway, 1_024, 256).len(), 256, "one address per client at most");
        assert_eq!(source_addresses("http://localhost:8080", 8, 64).len(), 8);
        assert!(source_addresses(gateway, 1, 10_000).is_empty(), "1: all from 127.0.0.1");
        assert!(source_addresses(gateway, 1_024, 1).is_empty());
        assert!(source_addresses("http://[::1]:8080", 1_024, 64).is_empty());
        assert!(source_addresses("http://127.0.0.2:8080", 1_024, 64).is_empty());
    }
}
