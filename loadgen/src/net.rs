//! Where load may go: loopback only, so a mistyped URL can never load-test someone else.

use std::net::{IpAddr, TcpListener};

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
}
