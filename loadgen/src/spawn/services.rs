//! The binaries `--spawn` knows how to run, and how each tells it is serving.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{Backend, Kind, Service};

pub static INVENTORY: Service = Service {
    binary: "inventory-svc",
    env_prefix: "INVENTORY_",
    kind: Kind::Backend(Backend {
        schema_suffix: "loadgen_inventory",
        redis: true,
        route: "INVENTORY",
        upstreams: &[],
        data_platform: false,
    }),
};

pub static POINT: Service = Service {
    binary: "point-svc",
    env_prefix: "POINT_",
    kind: Kind::Backend(Backend {
        schema_suffix: "loadgen_point",
        redis: false,
        route: "POINT",
        upstreams: &[],
        data_platform: false,
    }),
};

pub static COUPON: Service = Service {
    binary: "coupon-svc",
    env_prefix: "COUPON_",
    kind: Kind::Backend(Backend {
        schema_suffix: "loadgen_coupon",
        redis: true,
        route: "COUPON",
        upstreams: &[],
        data_platform: false,
    }),
};

/// The checkout saga's orchestrator: calls the three participants (started before it) and
/// sends every completed order to the data platform (loadgen's in-process mock). Its Redis
/// is the Redlock quorum too (`PAYMENT_REDLOCK_URLS` defaults to `PAYMENT_REDIS_URL`).
pub static PAYMENT: Service = Service {
    binary: "payment-svc",
    env_prefix: "PAYMENT_",
    kind: Kind::Backend(Backend {
        schema_suffix: "loadgen_payment",
        redis: true,
        route: "PAYMENT",
        upstreams: &["INVENTORY", "COUPON", "POINT"],
        data_platform: true,
    }),
};

/// Routes only to the backends started before it in the same run; every other route is
/// left empty (not routed), so it never reaches a developer's services.
pub static GATEWAY: Service = Service { binary: "gateway", env_prefix: "GATEWAY_", kind: Kind::Gateway };

/// Every upstream the gateway has a `GATEWAY_<route>_URL` for.
pub const GATEWAY_ROUTES: &[&str] = &["INVENTORY", "COUPON", "POINT", "PAYMENT"];

impl Service {
    /// Fails early, before a bench spends minutes on its first phases, if `bin` is missing.
    pub fn check_binary(&self, bin: &Path) -> anyhow::Result<()> {
        if !bin.is_file() {
            bail!(
                "{} not found; build it with `cargo build --release -p {}` or pass --bin",
                bin.display(),
                self.binary
            );
        }
        Ok(())
    }

    /// `--bin` if given, else the service's binary next to this executable.
    pub fn binary_or_sibling(&self, bin: Option<PathBuf>) -> anyhow::Result<PathBuf> {
        bin.map_or_else(|| sibling_binary(self.binary), Ok)
    }
}

/// Where a sibling binary of the running executable is (both live in `target/release`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the loadgen executable")?;
    Ok(exe.parent().unwrap_or(Path::new(".")).join(name))
}
