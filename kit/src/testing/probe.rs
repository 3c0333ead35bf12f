//! Is a server there? Plain-socket checks with short timeouts and no client library, so
//! they work in sync test helpers and before any runtime exists.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::server::ServerKind;

/// How long one check may wait for a connection or an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The first payload byte of a MySQL server's greeting (protocol version 10); an error
/// packet (`0xff`: too many connections, a host blocked) is not a server ready for us.
const MYSQL_PROTOCOL_V10: u8 = 10;

/// `(host, port)` of a `mysql://` or `redis://` URL: user info, path and query ignored,
/// `default_port` when it names none. `None` for a URL with no host.
pub fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

fn connect(kind: ServerKind, url: &str) -> Option<TcpStream> {
    let (host, port) = host_port(url, kind.default_port())?;
    let addrs = (host.as_str(), port).to_socket_addrs().ok()?;
    let stream = addrs.into_iter().find_map(|addr| TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok())?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    Some(stream)
}

/// Whether anything accepts TCP connections where `url` points: the one cheap question
/// asked of a default address before deciding to run a server of our own.
pub fn accepts(kind: ServerKind, url: &str) -> bool {
    connect(kind, url).is_some()
}

/// Whether a server of `kind` is ready where `url` points: a MySQL greeting, a Redis
/// `PONG` (not `-LOADING`). A port that merely accepts could be anything, or a server
/// still starting.
pub fn answers(kind: ServerKind, url: &str) -> bool {
    let Some(mut stream) = connect(kind, url) else { return false };
    match kind {
        ServerKind::Mysql => {
            // 3-byte length, sequence id, then the payload's first byte.
            let mut head = [0u8; 5];
            stream.read_exact(&mut head).is_ok() && head[4] == MYSQL_PROTOCOL_V10
        }
        ServerKind::Redis => {
            let mut reply = [0u8; 5];
            stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_come_from_any_url_shape() {
        let hp = |url| host_port(url, 3306);
        assert_eq!(hp("mysql://root@127.0.0.1:3307"), Some(("127.0.0.1".into(), 3307)));
        assert_eq!(hp("mysql://root:pw@db.local/schema?ssl=off"), Some(("db.local".into(), 3306)));
        assert_eq!(hp("redis://127.0.0.1:6380/0"), Some(("127.0.0.1".into(), 6380)));
        assert_eq!(hp("mysql://u@[::1]:3310"), Some(("::1".into(), 3310)));
        assert_eq!(hp("mysql://[::1]"), Some(("::1".into(), 3306)));
        assert_eq!(hp("127.0.0.1:9"), Some(("127.0.0.1".into(), 9)));
        assert_eq!(hp("mysql://root@:3306"), None);
        assert_eq!(hp("mysql://host:port"), None);
    }

    #[test]
    fn nothing_listening_neither_accepts_nor_answers() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("redis://127.0.0.1:{port}");
        assert!(!accepts(ServerKind::Redis, &url));
        assert!(!answers(ServerKind::Redis, &url));
    }

    #[test]
    fn a_listener_that_says_nothing_accepts_but_does_not_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("mysql://root@{}", listener.local_addr().unwrap());
        assert!(accepts(ServerKind::Mysql, &url));
        assert!(!answers(ServerKind::Mysql, &url), "no greeting within the timeout");
    }
}
