use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000002_saga_request_hash"
    }
}

// The fingerprint of the checkout request that started the saga: a later request with the
// same key (hence the same saga id) but another body is refused instead of joined.
const ADD_HASH: &str = "ALTER TABLE saga ADD COLUMN idem_hash BINARY(32) NULL AFTER idem_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(ADD_HASH).await?;
        Ok(())
    }
}
