//! Schema of coupon-svc. The first-come limits are the schema's own: one coupon per user
//! (`UNIQUE(coupon_id, user_id)`), one holder per position (`UNIQUE(coupon_id, sequence)`),
//! and `1 <= sequence <= total_quantity`, where the row's `total_quantity` is pinned to its
//! coupon's by a composite foreign key. So even a Redis that lost its state, or a bug, cannot
//! make MySQL hold more than N copies or a second copy for one user.

use sea_orm_migration::prelude::*;

mod m20261121_000001_init;
mod m20261203_000002_order_index;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261121_000001_init::Migration), Box::new(m20261203_000002_order_index::Migration)]
    }
}
