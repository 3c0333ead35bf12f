//! devstack's own MySQL and Redis, so a newcomer needs no database set-up: with no
//! `--mysql-url` / `--redis-url` given and nothing answering at the default address,
//! devstack runs the installed server programs itself, the way the tests run theirs
//! (`kit::testing::LocalServer`): data under `--state-dir` (MySQL's kept for the next
//! start), free ports, stopped after the mesh's children.

use std::fmt::Write as _;

use kit::testing::{LocalServer, ServerKind, probe};

use crate::cli::{StackArgs, default_mysql_url, default_redis_url};
use crate::logs;

/// Which backends devstack runs itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needed {
    pub mysql: bool,
    pub redis: bool,
}

/// A backend devstack runs itself when none was named and nothing accepts connections at
/// the default. Something that accepts but fails later (a wrong password) is the user's
/// server: the preflight reports it rather than devstack hiding it behind one of its own.
pub async fn needed(args: &StackArgs) -> Needed {
    let mysql = args.mysql_url.is_none().then(default_mysql_url);
    let redis = args.redis_urls.is_empty().then(default_redis_url);
    let probe = move || Needed {
        mysql: mysql.is_some_and(|url| !probe::accepts(ServerKind::Mysql, &url)),
        redis: redis.is_some_and(|url| !probe::accepts(ServerKind::Redis, &url)),
    };
    // Blocking connects (a second at most each), off the runtime's threads.
    tokio::task::spawn_blocking(probe).await.unwrap_or_default()
}

/// The servers devstack started; [`OwnServers::stop`] them after the mesh.
#[derive(Default)]
pub struct OwnServers(Vec<LocalServer>);

/// Starts the `needed` servers, points `args` at them (so the children get their URLs) and
/// says in one line what runs where. `Err`: the one line saying why not (a missing program
/// names its Debian package); any server already started is stopped again.
pub async fn start(args: &mut StackArgs, needed: Needed) -> Result<OwnServers, String> {
    let mut servers = OwnServers::default();
    let mut defaults = Vec::new();
    for (kind, wanted, default) in
        [(ServerKind::Mysql, needed.mysql, default_mysql_url()), (ServerKind::Redis, needed.redis, default_redis_url())]
    {
        if !wanted {
            continue;
        }
        let default = kit::db::redact(&default);
        let dir = args.state_dir.clone();
        let started = tokio::task::spawn_blocking(move || LocalServer::start(kind, &dir)).await;
        let why = match started {
            Ok(Ok(server)) => {
                match kind {
                    ServerKind::Mysql => args.mysql_url = Some(server.url().to_owned()),
                    ServerKind::Redis => args.redis_urls = vec![server.url().to_owned()],
                }
                servers.0.push(server);
                defaults.push(default);
                continue;
            }
            Ok(Err(err)) => err.to_string(),
            Err(panicked) => panicked.to_string(),
        };
        servers.stop().await;
        return Err(format!("nothing answers at {default} and devstack cannot run its own: {why}"));
    }
    if !servers.0.is_empty() {
        logs::say(started_line(&defaults, &servers.0));
    }
    Ok(servers)
}

/// `nothing answered at <defaults>; started private servers: MariaDB at <url> (pid ..,
/// data in .. (new|reused)), Redis at <url> (pid ..); their logs in ..; they stop with devstack`.
fn started_line(defaults: &[String], servers: &[LocalServer]) -> String {
    let mut line = format!("nothing answered at {}; started private servers: ", defaults.join(" and "));
    for (i, server) in servers.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(line, "{sep}{} at {} (pid {}", server.what(), server.url(), server.pid().unwrap_or_default());
        if server.what() != "Redis" {
            let fresh = if server.installed() { "new" } else { "reused" };
            let _ = write!(line, ", data in {} ({fresh})", server.data_dir().display());
        }
        line.push(')');
    }
    if let Some(dir) = servers.first().and_then(|server| server.log().parent()) {
        let _ = write!(line, "; their logs in {}", dir.display());
    }
    line.push_str("; they stop with devstack");
    line
}

impl OwnServers {
    /// Stops every server (blocking until each is gone) and says so.
    pub async fn stop(self) {
        let names: Vec<&str> = self.0.iter().map(LocalServer::what).collect();
        if names.is_empty() {
            return;
        }
        let names = names.join(" and ");
        let servers = self.0;
        let _ = tokio::task::spawn_blocking(move || servers.into_iter().for_each(LocalServer::stop)).await;
        logs::say(format_args!("stopped private {names}"));
    }
}
