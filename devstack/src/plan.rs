//! What devstack runs: every process with its ports and environment, decided up front.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;

use crate::cli::StackArgs;
use crate::logs::Source;

/// A service of the mesh as devstack knows it.
pub struct ServiceDef {
    pub name: &'static str,
    pub env_prefix: &'static str,
    /// The name it logs under (its binary's name in Kubernetes).
    pub program: &'static str,
    /// Port offset from `--grpc-base-port`.
    pub offset: u16,
}

pub const SERVICES: [ServiceDef; 4] = [
    ServiceDef { name: "inventory", env_prefix: "INVENTORY_", program: "inventory-svc", offset: 0 },
    ServiceDef { name: "coupon", env_prefix: "COUPON_", program: "coupon-svc", offset: 1 },
    ServiceDef { name: "point", env_prefix: "POINT_", program: "point-svc", offset: 2 },
    ServiceDef { name: "payment", env_prefix: "PAYMENT_", program: "payment-svc", offset: 3 },
];

/// One child process: `devstack service <name>` with `env`.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// e.g. `inventory[1]`.
    pub label: String,
    pub service: String,
    pub env: Vec<(String, String)>,
    /// Where it listens, for the log line.
    pub addr: String,
    /// Whose output it is, on the terminal and in its log file.
    pub source: Source,
}

#[derive(Debug)]
pub struct Plan {
    pub processes: Vec<ProcessSpec>,
    /// The first gateway's URL (the one READY names).
    pub gateway_url: String,
    /// Every gateway replica's URL, the first included.
    pub gateway_urls: Vec<String>,
}

/// The first port at or above `from` that is free now and not yet given out by this plan.
/// Extra replicas get "the next free ports" after the base ones (API.md), not kernel-chosen
/// ephemeral ports, which other sockets on the machine may take before the child binds.
fn next_free_port(from: u16, given: &mut HashSet<u16>) -> std::io::Result<u16> {
    (from..=u16::MAX)
        .find(|&port| !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok())
        .inspect(|&port| {
            given.insert(port);
        })
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("no free port above {from}")))
}

/// MySQL connections a service gets in all: its replicas share them. A dev machine's MySQL
/// (151 connections by default) serves the whole mesh, and tests run beside it.
const POOL_PER_SERVICE: u16 = 8;

fn pool_per_replica(replicas: u16) -> u16 {
    (POOL_PER_SERVICE / replicas.max(1)).max(2)
}

/// `public_key`: the PEM the gateway verifies tokens with; `None` runs it with auth off.
pub fn build(args: &StackArgs, data_platform_url: Option<String>, public_key: Option<&Path>) -> std::io::Result<Plan> {
    let redis = args.redis_urls();
    let mut processes = Vec::new();
    let mut gateway_env = vec![("GATEWAY_HTTP_ADDR".to_owned(), format!("127.0.0.1:{}", args.gateway_port))];
    // Set explicitly either way: a `GATEWAY_AUTH` inherited from the shell must not
    // contradict `--auth` (the plan's variables override the inherited ones).
    match public_key {
        Some(pem) => {
            gateway_env.push(("GATEWAY_AUTH".to_owned(), "on".to_owned()));
            gateway_env.push(("GATEWAY_JWT_PUBLIC_KEY_FILE".to_owned(), pem.display().to_string()));
        }
        None => gateway_env.push(("GATEWAY_AUTH".to_owned(), "off".to_owned())),
    }
    // Every replica of each service, for the clients of later services (payment calls the others).
    let mut service_urls: Vec<(&str, String)> = Vec::new();
    let base = args.grpc_base_port;
    // The base ports of every service are reserved up front.
    let mut given: HashSet<u16> = (0..4).flat_map(|o| [base + o, base + 1000 + o]).collect();
    for svc in SERVICES.iter() {
        let mut urls = Vec::new();
        let replicas = args.replicas_of(svc.name);
        for replica in 0..replicas {
            let (grpc, metrics) = if replica == 0 {
                (base + svc.offset, base + 1000 + svc.offset)
            } else {
                (next_free_port(base + 4, &mut given)?, next_free_port(base + 1004, &mut given)?)
            };
            let p = svc.env_prefix;
            let mut env = vec![
                (format!("{p}GRPC_ADDR"), format!("127.0.0.1:{grpc}")),
                (format!("{p}METRICS_ADDR"), format!("127.0.0.1:{metrics}")),
                (format!("{p}MYSQL_URL"), args.mysql_url()),
                (format!("{p}DATABASE"), format!("{}{}", args.db_prefix, svc.name)),
                (format!("{p}REDIS_URL"), redis[0].clone()),
                (format!("{p}REDIS_KEY_PREFIX"), args.db_prefix.clone()),
                (format!("{p}DB_MAX_CONNECTIONS"), pool_per_replica(replicas).to_string()),
            ];
            if matches!(svc.name, "inventory" | "coupon") && !args.redis_cluster.is_empty() {
                env.push((format!("{p}REDIS_CLUSTER_NODES"), args.redis_cluster.join(",")));
            }
            if svc.name == "inventory" && !args.mysql_read_urls.is_empty() {
                env.push((format!("{p}MYSQL_READ_URL"), args.mysql_read_urls.join(",")));
            }
            if svc.name == "payment" {
                env.push((format!("{p}REDLOCK_URLS"), redis.join(",")));
                for (name, urls) in &service_urls {
                    env.push((format!("{p}{}_URL", name.to_uppercase()), urls.clone()));
                }
                if let Some(url) = &data_platform_url {
                    env.push((format!("{p}DATA_PLATFORM_URL"), url.clone()));
                }
            }
            urls.push(format!("http://127.0.0.1:{grpc}"));
            processes.push(ProcessSpec {
                label: format!("{}[{replica}]", svc.name),
                service: svc.name.to_owned(),
                env,
                addr: format!("grpc 127.0.0.1:{grpc}, metrics 127.0.0.1:{metrics}"),
                source: Source { service: svc.program, replica: (replicas > 1).then_some(replica + 1) },
            });
        }
        gateway_env.push((format!("GATEWAY_{}_URL", svc.name.to_uppercase()), urls.join(",")));
        service_urls.push((svc.name, urls.join(",")));
    }
    let gateways = args.replicas_of("gateway");
    let mut gateway_urls = Vec::new();
    given.insert(args.gateway_port);
    for replica in 0..gateways {
        let port = if replica == 0 { args.gateway_port } else { next_free_port(args.gateway_port + 1, &mut given)? };
        let mut env = gateway_env.clone();
        env[0] = ("GATEWAY_HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}"));
        processes.push(ProcessSpec {
            label: format!("gateway[{replica}]"),
            service: "gateway".into(),
            env,
            addr: format!("http 127.0.0.1:{port}"),
            source: Source { service: "gateway", replica: (gateways > 1).then_some(replica + 1) },
        });
        gateway_urls.push(format!("http://127.0.0.1:{port}"));
    }
    Ok(Plan { processes, gateway_url: gateway_urls[0].clone(), gateway_urls })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn read_replicas_go_to_inventory_only() {
        let args =
            ["devstack", "--mysql-read-url", "mysql://root@127.0.0.1:3307", "--mysql-read-url", "mysql://r@h:3308"];
        let cli = Cli::try_parse_from(args).unwrap();
        let plan = build(&cli.stack, None, None).unwrap();
        let read_url = |service: &str| {
            let spec = plan.processes.iter().find(|p| p.service == service).unwrap();
            spec.env.iter().find(|(k, _)| k.ends_with("MYSQL_READ_URL")).map(|(_, v)| v.clone())
        };
        assert_eq!(read_url("inventory").as_deref(), Some("mysql://root@127.0.0.1:3307,mysql://r@h:3308"));
        assert_eq!(read_url("payment"), None);
        let plain = build(&Cli::try_parse_from(["devstack"]).unwrap().stack, None, None).unwrap();
        assert!(plain.processes.iter().all(|p| p.env.iter().all(|(k, _)| !k.ends_with("MYSQL_READ_URL"))));
    }

    #[test]
    fn a_redis_cluster_goes_to_the_gate_and_the_caches_only() {
        let cli =
            Cli::try_parse_from(["devstack", "--redis-cluster", "10.0.0.1:7000", "--redis-cluster", "h:7001"]).unwrap();
        let plan = build(&cli.stack, None, None).unwrap();
        let nodes = |service: &str| {
            let spec = plan.processes.iter().find(|p| p.service == service).unwrap();
            spec.env.iter().find(|(k, _)| k.ends_with("REDIS_CLUSTER_NODES")).map(|(_, v)| v.clone())
        };
        assert_eq!(nodes("inventory").as_deref(), Some("10.0.0.1:7000,h:7001"));
        assert_eq!(nodes("coupon").as_deref(), Some("10.0.0.1:7000,h:7001"));
        assert_eq!((nodes("point"), nodes("payment"), nodes("gateway")), (None, None, None));
    }

    #[test]
    fn only_a_service_with_several_replicas_numbers_them() {
        let cli = Cli::try_parse_from(["devstack", "--replicas", "coupon=2"]).unwrap();
        let plan = build(&cli.stack, None, None).unwrap();
        let names: Vec<String> = plan.processes.iter().map(|p| p.source.name()).collect();
        assert_eq!(names, ["inventory-svc", "coupon-svc", "coupon-svc-2", "point-svc", "payment-svc", "gateway"]);
        assert_eq!(plan.processes[1].source.replica, Some(1));
        assert_eq!(plan.processes[0].source.replica, None);
    }

    #[test]
    fn extra_gateways_take_the_next_free_ports_and_the_first_is_readys() {
        let cli = Cli::try_parse_from(["devstack", "--replicas", "gateway=2", "--gateway-port", "18080"]).unwrap();
        let plan = build(&cli.stack, None, None).unwrap();
        let gateways: Vec<&ProcessSpec> = plan.processes.iter().filter(|p| p.service == "gateway").collect();
        assert_eq!(gateways.len(), 2);
        assert_eq!(plan.gateway_url, "http://127.0.0.1:18080");
        assert_eq!(plan.gateway_urls.len(), 2);
        let second: u16 = plan.gateway_urls[1].rsplit(':').next().unwrap().parse().unwrap();
        assert!(second > 18080, "{:?}", plan.gateway_urls);
        let addr = |p: &ProcessSpec| p.env.iter().find(|(k, _)| k == "GATEWAY_HTTP_ADDR").unwrap().1.clone();
        assert_eq!(addr(gateways[1]), format!("127.0.0.1:{second}"));
        assert_eq!(gateways[1].source.name(), "gateway-2");
    }
}
