//! point-svc over real gRPC on loopback, against the local MariaDB.

mod helpers;
mod idempotency;
mod invariants;
mod ledger;
mod saga;
