//! Schema of inventory-svc. Constraints that protect invariants live in the schema itself
//! (stock never negative, one reservation per saga and product), so no code path can
//! break them.

use sea_orm_migration::prelude::*;

mod m20261121_000001_init;
mod m20261203_000001_catalog;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261121_000001_init::Migration), Box::new(m20261203_000001_catalog::Migration)]
    }
}
