use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000003_saga_answer"
    }
}

// The checkout's answer as it was when the saga settled, written by the statement that
// settles it: the Idempotency-Key's stored answer, replayed as it was even after a cancel.
// `saga_step` rows are written only off the happy path from now on (a failed call, a
// failure, a compensation); a step without a row shows what the order's state implies.
const ADD_ANSWER: &str = "ALTER TABLE saga ADD COLUMN answer MEDIUMBLOB NULL AFTER idem_hash";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(ADD_ANSWER).await?;
        Ok(())
    }
}
