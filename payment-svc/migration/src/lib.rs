//! Schema of payment-svc: orders with their lines, the saga log (one `saga` row per order,
//! with the checkout's stored answer and the trace it belongs to; a `saga_step` row per step that left the happy path), the payment records, the fencing epochs of the per-user
//! lock, and Idempotency-Keys. Invariants that can live in the schema do: amounts are never
//! negative, a discount never exceeds the total, statuses are from a closed set.

use sea_orm_migration::prelude::*;

mod m20261121_000001_init;
mod m20261121_000002_saga_request_hash;
mod m20261202_000003_saga_answer;
mod m20261203_000004_saga_trace;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_init::Migration),
            Box::new(m20261121_000002_saga_request_hash::Migration),
            Box::new(m20261202_000003_saga_answer::Migration),
            Box::new(m20261203_000004_saga_trace::Migration),
        ]
    }
}
