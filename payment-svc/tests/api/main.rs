//! payment-svc against the real mesh: real MariaDB, Redis, gRPC on loopback; the data
//! platform is the mock HTTP server.

mod cancel;
mod checkout;
mod group_commit;
mod helpers;
mod idempotency;
mod invariants;
mod journal;
mod reconciliation;
mod recovery;
mod traces;
