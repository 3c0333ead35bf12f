//! inventory-svc over real gRPC on loopback, against the local MariaDB and Redis.

mod config;
mod helpers;
mod products;
mod reservations;
mod shutdown;
