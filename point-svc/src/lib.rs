//! point-svc: point balances and their append-only ledger. No lost update (every movement
//! is a conditional UPDATE), never negative (`WHERE balance >= ?` and a CHECK), and the
//! ledger always sums to the balance (each movement appends its line in the same transaction).
//!
//! Map:
//! - [`domain`]: amounts, users, ledger entries and rules (no tonic, no SQL).
//! - [`store`]: balances, ledger, and the barrier-guarded saga payment and refund.
//! - [`service`]: the use cases, with Idempotency-Key handling (kit::idempotency).
//! - [`grpc`]: serves `mesh.point.v1.PointService`.
//! - [`config`], [`startup`]: settings from `POINT_*` and the wiring.

pub mod config;
pub mod domain;
pub mod grpc;
pub mod service;
pub mod startup;
pub mod store;
