use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where the dev signing key lives unless `--state-dir` says otherwise (relative to the
/// current directory, like `target/`).
pub const DEFAULT_STATE_DIR: &str = ".devstack";
/// Users one `devstack token --count` mints for (a load test's crowd, not a user table).
pub const MAX_TOKEN_COUNT: i64 = 1_000_000;
/// A year: longer-lived dev tokens are a mistake, not a convenience.
pub const MAX_TOKEN_TTL_SECS: u64 = 31_536_000;
/// Where MySQL and Redis are looked for when no `--mysql-url` / `--redis-url` names them;
/// when nothing answers there, devstack runs servers of its own (`own_servers`).
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// For tests only: move "the defaults" to where nothing answers, so devstack's own servers
/// can be tested without stopping the machine's.
pub const DEFAULT_MYSQL_URL_VAR: &str = "DEVSTACK_DEFAULT_MYSQL_URL";
pub const DEFAULT_REDIS_URL_VAR: &str = "DEVSTACK_DEFAULT_REDIS_URL";

/// Runs the whole commerce mesh locally; prints `READY http://127.0.0.1:<port>` when ready.
#[derive(Debug, Parser)]
#[command(name = "devstack", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub stack: StackArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one service in this process (how devstack starts its children).
    #[command(hide = true)]
    Service { name: String },
    /// Prints a JWT signed with the devstack's dev key (made by the first start with auth on);
    /// with `--count N`, one a line for users `--user` .. `--user`+N-1 (load tests).
    Token(TokenArgs),
}

#[derive(Clone, Debug, Args)]
pub struct TokenArgs {
    /// The token's subject (`sub`), a user id >= 1. Without it, `--admin` is user 1.
    #[arg(long, required_unless_present = "admin", value_parser = clap::value_parser!(i64).range(1..))]
    pub user: Option<i64>,
    /// Adds `roles: ["admin"]`: may act for any user and use the admin-only routes.
    #[arg(long)]
    pub admin: bool,
    /// Tokens for this many consecutive users from `--user`, one a line (k6 `TOKENS`).
    #[arg(long, default_value_t = 1, requires = "user", value_parser = clap::value_parser!(u32).range(1..=MAX_TOKEN_COUNT))]
    pub count: u32,
    /// Lifetime in seconds, 1..=31536000.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_TTL_SECS))]
    pub ttl_secs: u64,
    /// The state dir of the devstack whose key signs.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthSwitch {
    On,
    Off,
}

impl AuthSwitch {
    /// The value of `GATEWAY_AUTH`.
    pub fn as_env(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

/// How the children's log lines reach devstack's stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event: service, level, message, then the fields as key=value.
    Pretty,
    /// Pure JSON lines: each child's line unchanged but for a `"service"` (and `"replica"`)
    /// field added, no text prefix; devstack's own messages are JSON too.
    Json,
}

#[derive(Clone, Debug, Args)]
pub struct StackArgs {
    /// REST port of the gateway.
    #[arg(long, default_value_t = 8080)]
    pub gateway_port: u16,
    /// inventory, coupon, point, payment listen on base+0..3 (extra replicas on free ports).
    #[arg(long, default_value_t = 50051)]
    pub grpc_base_port: u16,
    /// The mock external data platform; 0 = none, use DATA_PLATFORM_URL.
    #[arg(long, default_value_t = 8090)]
    pub data_platform_port: u16,
    /// Server that holds the four schemas [default: mysql://root@127.0.0.1:3306; when nothing
    /// answers there, devstack runs its own MariaDB (or MySQL) with its data in
    /// <state-dir>/mysql, and stops it when it stops].
    #[arg(long, value_name = "URL")]
    pub mysql_url: Option<String>,
    /// Repeatable: read replicas of that server, for catalog listing and search
    /// (inventory-svc's `INVENTORY_MYSQL_READ_URL`).
    #[arg(long = "mysql-read-url")]
    pub mysql_read_urls: Vec<String>,
    /// Repeatable: the first is the cache/coupon store, all of them are the Redlock quorum
    /// [default: redis://127.0.0.1:6379; when nothing answers there, devstack runs its own
    /// redis-server, nothing persisted, and stops it when it stops].
    #[arg(long = "redis-url", value_name = "URL")]
    pub redis_urls: Vec<String>,
    /// Repeatable: a node (`host:port`) of a Redis Cluster that then holds coupon-svc's gate
    /// and inventory-svc's caches; the Redlock quorum stays on `--redis-url`.
    #[arg(long = "redis-cluster", value_name = "HOST:PORT")]
    pub redis_cluster: Vec<String>,
    /// Schemas are <prefix>inventory, <prefix>coupon, <prefix>point, <prefix>payment.
    #[arg(long, default_value = "mesh_")]
    pub db_prefix: String,
    /// Drop and recreate the four schemas (and the prefix's Redis keys) first.
    #[arg(long)]
    pub fresh: bool,
    /// Run N replicas of a service, e.g. `--replicas point=2` (repeatable). Extra gateways
    /// listen on the next free ports after `--gateway-port` (each is named in its `started`
    /// line); READY names the first.
    #[arg(long = "replicas", value_parser = parse_replicas)]
    pub replicas: Vec<(String, u16)>,
    /// Load demo products, coupons and points.
    #[arg(long)]
    pub seed_demo: bool,
    /// `off` runs the gateway without authentication (demos, load tests).
    #[arg(long, value_enum, default_value_t = AuthSwitch::On)]
    pub auth: AuthSwitch,
    /// Where devstack keeps its dev signing key (created once, then reused), every
    /// child's raw log lines (`logs/<service>.log`, appended) and, when it runs its own
    /// MySQL, that server's data (`mysql/`, kept for the next start).
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// `pretty`: one readable line per event, prefixed with the service (and replica,
    /// e.g. `coupon-svc-2`). `json`: the children's JSON lines unchanged, one per line, with
    /// a `"service"` field (and `"replica"`, when a service has several) added instead of a
    /// text prefix; a line that is not JSON becomes `{"service":..,"message":"<line>"}`.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl StackArgs {
    /// `--mysql-url`, else the default.
    pub fn mysql_url(&self) -> String {
        self.mysql_url.clone().unwrap_or_else(default_mysql_url)
    }

    /// `--redis-url`s, else the default.
    pub fn redis_urls(&self) -> Vec<String> {
        if self.redis_urls.is_empty() { vec![default_redis_url()] } else { self.redis_urls.clone() }
    }

    /// The `redis+cluster://` URL of `--redis-cluster`, if any node was given.
    pub fn redis_cluster_url(&self) -> Option<String> {
        (!self.redis_cluster.is_empty())
            .then(|| format!("{}{}", kit::cache::CLUSTER_SCHEME, self.redis_cluster.join(",")))
    }

    pub fn replicas_of(&self, service: &str) -> u16 {
        self.replicas.iter().rev().find(|(name, _)| name == service).map_or(1, |(_, n)| *n)
    }
}

/// [`DEFAULT_MYSQL_URL`] unless a test moved it ([`DEFAULT_MYSQL_URL_VAR`]).
pub fn default_mysql_url() -> String {
    std::env::var(DEFAULT_MYSQL_URL_VAR).unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned())
}

/// [`DEFAULT_REDIS_URL`] unless a test moved it ([`DEFAULT_REDIS_URL_VAR`]).
pub fn default_redis_url() -> String {
    std::env::var(DEFAULT_REDIS_URL_VAR).unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

fn parse_replicas(raw: &str) -> Result<(String, u16), String> {
    let (name, count) = raw.split_once('=').ok_or("expected SVC=N, e.g. point=2")?;
    if !matches!(name, "gateway" | "inventory" | "coupon" | "point" | "payment") {
        return Err(format!("unknown service {name:?}: one of gateway, inventory, coupon, point, payment"));
    }
    let count: u16 = count.parse().map_err(|_| format!("replica count {count:?} is not a number"))?;
    if !(1..=8).contains(&count) {
        return Err("replica count must be 1..=8".into());
    }
    Ok((name.to_owned(), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_flags_parse() {
        assert_eq!(parse_replicas("point=2").unwrap(), ("point".into(), 2));
        assert_eq!(parse_replicas("gateway=2").unwrap(), ("gateway".into(), 2));
        assert!(parse_replicas("billing=2").is_err());
        assert!(parse_replicas("point=0").is_err());
        assert!(parse_replicas("point").is_err());
    }

    #[test]
    fn auth_is_on_by_default_and_token_flags_are_validated() {
        let cli = Cli::try_parse_from(["devstack"]).unwrap();
        assert_eq!(cli.stack.auth, AuthSwitch::On);
        assert_eq!(cli.stack.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(cli.stack.log_format, LogFormat::Pretty);
        // Absent, not defaulted: devstack tells "not given" from "given as the default".
        assert_eq!((cli.stack.mysql_url, cli.stack.redis_urls.len()), (None, 0));
        assert_eq!(
            Cli::try_parse_from(["devstack", "--log-format", "json"]).unwrap().stack.log_format,
            LogFormat::Json
        );
        assert_eq!(Cli::try_parse_from(["devstack", "--auth", "off"]).unwrap().stack.auth, AuthSwitch::Off);
        let token = |args: &[&str]| {
            Cli::try_parse_from(["devstack", "token"].iter().chain(args)).map(|cli| match cli.command {
                Some(Command::Token(t)) => t,
                other => panic!("{other:?}"),
            })
        };
        let admin = token(&["--admin"]).unwrap();
        assert_eq!((admin.user, admin.admin, admin.ttl_secs), (None, true, 3600));
        let user = token(&["--user", "7", "--ttl-secs", "60", "--state-dir", "/tmp/x"]).unwrap();
        assert_eq!((user.user, user.ttl_secs, user.state_dir), (Some(7), 60, PathBuf::from("/tmp/x")));
        for bad in
            [&[][..], &["--user", "0"], &["--user", "7", "--ttl-secs", "0"], &["--admin", "--ttl-secs", "31536001"]]
        {
            assert!(token(bad).is_err(), "{bad:?}");
        }
    }
}
