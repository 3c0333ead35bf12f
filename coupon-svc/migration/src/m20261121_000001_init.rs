use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000001_init"
    }
}

const COUPON: &str = "CREATE TABLE coupon (
    id BIGINT NOT NULL AUTO_INCREMENT,
    name VARCHAR(200) NOT NULL,
    discount_type VARCHAR(16) CHARACTER SET ascii NOT NULL,
    discount_value BIGINT NOT NULL,
    max_discount BIGINT NULL,
    total_quantity BIGINT NOT NULL,
    issued_quantity BIGINT NOT NULL DEFAULT 0,
    issue_starts_at DATETIME(3) NULL,
    issue_ends_at DATETIME(3) NULL,
    valid_days INT NOT NULL,
    created_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY coupon_id_total (id, total_quantity),
    CONSTRAINT coupon_known_type CHECK (discount_type IN ('FIXED', 'PERCENT')),
    CONSTRAINT coupon_total_positive CHECK (total_quantity >= 1),
    CONSTRAINT coupon_issued_within_total CHECK (issued_quantity BETWEEN 0 AND total_quantity)
) ENGINE=InnoDB";

const USER_COUPON: &str = "CREATE TABLE user_coupon (
    id BIGINT NOT NULL AUTO_INCREMENT,
    coupon_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    sequence BIGINT NOT NULL,
    total_quantity BIGINT NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii NOT NULL,
    issued_at DATETIME(3) NOT NULL,
    expires_at DATETIME(3) NOT NULL,
    used_at DATETIME(3) NULL,
    order_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    PRIMARY KEY (id),
    UNIQUE KEY user_coupon_once_per_user (coupon_id, user_id),
    UNIQUE KEY user_coupon_once_per_position (coupon_id, sequence),
    KEY user_coupon_user (user_id, id),
    CONSTRAINT user_coupon_total_is_the_coupons FOREIGN KEY (coupon_id, total_quantity)
        REFERENCES coupon (id, total_quantity),
    CONSTRAINT user_coupon_sequence_within_total CHECK (sequence BETWEEN 1 AND total_quantity),
    CONSTRAINT user_coupon_known_status CHECK (status IN ('AVAILABLE', 'USED'))
) ENGINE=InnoDB";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for ddl in [COUPON, USER_COUPON, kit::barrier::CREATE_TABLE] {
            db.execute_unprepared(ddl).await?;
        }
        Ok(())
    }
}
