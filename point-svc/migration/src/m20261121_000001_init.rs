use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000001_init"
    }
}

const BALANCE: &str = "CREATE TABLE point_balance (
    user_id BIGINT NOT NULL,
    balance BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (user_id),
    CONSTRAINT point_balance_never_negative CHECK (balance >= 0)
) ENGINE=InnoDB";

const HISTORY: &str = "CREATE TABLE point_history (
    id BIGINT NOT NULL AUTO_INCREMENT,
    user_id BIGINT NOT NULL,
    entry_type VARCHAR(16) CHARACTER SET ascii NOT NULL,
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    order_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    created_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    KEY point_history_user (user_id, id),
    KEY point_history_order (order_id),
    CONSTRAINT point_history_amount_positive CHECK (amount > 0),
    CONSTRAINT point_history_balance_after_never_negative CHECK (balance_after >= 0),
    CONSTRAINT point_history_known_type CHECK (entry_type IN ('CHARGE', 'USE', 'PAYMENT', 'REFUND'))
) ENGINE=InnoDB";

const NO_UPDATE: &str = "CREATE TRIGGER point_history_append_only_update BEFORE UPDATE ON point_history
    FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'point_history is append-only'";

const NO_DELETE: &str = "CREATE TRIGGER point_history_append_only_delete BEFORE DELETE ON point_history
    FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'point_history is append-only'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for ddl in [BALANCE, HISTORY, NO_UPDATE, NO_DELETE, kit::barrier::CREATE_TABLE, kit::idempotency::CREATE_TABLE]
        {
            db.execute_unprepared(ddl).await?;
        }
        Ok(())
    }
}
