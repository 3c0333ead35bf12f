use clap::{Args, Parser, Subcommand};

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
    /// Server that holds the four schemas.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    pub mysql_url: String,
    /// Repeatable: the first is the cache/coupon store, all of them are the Redlock quorum.
    #[arg(long = "redis-url")]
    pub redis_urls: Vec<String>,
    /// Schemas are <prefix>inventory, <prefix>coupon, <prefix>point, <prefix>payment.
    #[arg(long, default_value = "mesh_")]
    pub db_prefix: String,
    /// Drop and recreate the four schemas (and the prefix's Redis keys) first.
    #[arg(long)]
    pub fresh: bool,
    /// Run N replicas of a service, e.g. `--replicas point=2` (repeatable).
    #[arg(long = "replicas", value_parser = parse_replicas)]
    pub replicas: Vec<(String, u16)>,
    /// Load demo products, coupons and points.
    #[arg(long)]
    pub seed_demo: bool,
}

impl StackArgs {
    pub fn redis_urls(&self) -> Vec<String> {
        if self.redis_urls.is_empty() { vec!["redis://127.0.0.1:6379".into()] } else { self.redis_urls.clone() }
    }

    pub fn replicas_of(&self, service: &str) -> u16 {
        self.replicas.iter().rev().find(|(name, _)| name == service).map_or(1, |(_, n)| *n)
    }
}

fn parse_replicas(raw: &str) -> Result<(String, u16), String> {
    let (name, count) = raw.split_once('=').ok_or("expected SVC=N, e.g. point=2")?;
    if !matches!(name, "inventory" | "coupon" | "point" | "payment") {
        return Err(format!("unknown service {name:?}: one of inventory, coupon, point, payment"));
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
        assert!(parse_replicas("gateway=2").is_err());
        assert!(parse_replicas("point=0").is_err());
        assert!(parse_replicas("point").is_err());
    }
}
