//! The gateway over real HTTP, in front of a real inventory-svc (gRPC) on MariaDB and Redis.

mod coupons;
mod helpers;
mod malformed;
mod ops;
mod orders;
mod points;
mod products;
