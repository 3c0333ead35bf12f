//! inventory-svc over real gRPC on loopback, against the local MariaDB and Redis.

mod catalog;
mod cluster;
mod config;
mod helpers;
mod invariants;
mod products;
mod replicas;
mod reservations;
mod shutdown;
