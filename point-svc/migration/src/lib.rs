//! Schema of point-svc. The invariants live in the schema: a balance is never negative,
//! ledger amounts are positive, and the ledger is append-only (triggers refuse UPDATE and
//! DELETE), so no code path, present or future, can rewrite history.

use sea_orm_migration::prelude::*;

mod m20261121_000001_init;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261121_000001_init::Migration)]
    }
}
