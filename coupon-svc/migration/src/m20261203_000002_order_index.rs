use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000002_order_index"
    }
}

// payment-svc's reconciliation asks which orders hold a used coupon: by order id, without
// scanning every holder of every coupon.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE user_coupon ADD KEY user_coupon_order (order_id)")
            .await?;
        Ok(())
    }
}
