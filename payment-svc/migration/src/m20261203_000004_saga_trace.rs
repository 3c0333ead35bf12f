use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000004_saga_trace"
    }
}

// The W3C traceparent of the drive that started the saga, so a replica that recovers it after
// a crash continues the checkout's trace instead of starting one of its own (55 characters in
// version 00; room for a later version's longer form).
const ADD_TRACE: &str = "ALTER TABLE saga ADD COLUMN trace_parent VARCHAR(128) NULL AFTER answer";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(ADD_TRACE).await?;
        Ok(())
    }
}
