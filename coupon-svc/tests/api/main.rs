//! coupon-svc over real gRPC on loopback, against the local MariaDB and Redis.

mod cluster;
mod helpers;
mod invariants;
mod issue;
mod saga;
mod sold_out;
