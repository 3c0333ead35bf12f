use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000001_init"
    }
}

const ORDERS: &str = "CREATE TABLE orders (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id BIGINT NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii NOT NULL,
    total_amount BIGINT NOT NULL DEFAULT 0,
    discount_amount BIGINT NOT NULL DEFAULT 0,
    paid_amount BIGINT NOT NULL DEFAULT 0,
    user_coupon_id BIGINT NULL,
    failure_code VARCHAR(64) CHARACTER SET ascii NULL,
    failure_product_id BIGINT NULL,
    failure_detail VARCHAR(512) NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    KEY orders_by_user (user_id, created_at),
    CONSTRAINT orders_known_status CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLING', 'CANCELLED')),
    CONSTRAINT orders_amounts_not_negative CHECK (total_amount >= 0 AND discount_amount >= 0 AND paid_amount >= 0),
    CONSTRAINT orders_discount_within_total CHECK (discount_amount <= total_amount)
) ENGINE=InnoDB";

const ORDER_LINE: &str = "CREATE TABLE order_line (
    order_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    line_no SMALLINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price BIGINT NULL,
    PRIMARY KEY (order_id, line_no),
    UNIQUE KEY order_line_product (order_id, product_id),
    CONSTRAINT order_line_quantity CHECK (quantity BETWEEN 1 AND 1000),
    CONSTRAINT order_line_price CHECK (unit_price IS NULL OR unit_price >= 0),
    CONSTRAINT order_line_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB";

// One row per order: who drives it (owner + lease) and in which direction. `phase` is
// SETTLED once nothing is left to do; recovery scans (phase, lease_until).
const SAGA: &str = "CREATE TABLE saga (
    id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id BIGINT NOT NULL,
    phase VARCHAR(16) CHARACTER SET ascii NOT NULL,
    owner VARCHAR(64) CHARACTER SET ascii NOT NULL,
    lease_until DATETIME(3) NOT NULL,
    fence_epoch BIGINT NOT NULL DEFAULT 0,
    idem_scope VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
    idem_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
    rounds INT NOT NULL DEFAULT 0,
    last_error VARCHAR(512) NULL,
    created_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    KEY saga_drivable (phase, lease_until),
    CONSTRAINT saga_known_phase CHECK (phase IN ('FORWARD', 'COMPENSATING', 'CANCELLING', 'SETTLED')),
    CONSTRAINT saga_order FOREIGN KEY (id) REFERENCES orders (id)
) ENGINE=InnoDB";

const SAGA_STEP: &str = "CREATE TABLE saga_step (
    saga_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq TINYINT NOT NULL,
    name VARCHAR(32) CHARACTER SET ascii NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    last_error VARCHAR(512) NULL,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (saga_id, seq),
    CONSTRAINT saga_step_known_status CHECK (status IN ('PENDING', 'DONE', 'FAILED', 'COMPENSATED')),
    CONSTRAINT saga_step_saga FOREIGN KEY (saga_id) REFERENCES saga (id)
) ENGINE=InnoDB";

// RECORD_PAYMENT: what was taken for an order, and whether it was given back.
const PAYMENT: &str = "CREATE TABLE payment (
    order_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id BIGINT NOT NULL,
    points_amount BIGINT NOT NULL,
    discount_amount BIGINT NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii NOT NULL,
    created_at DATETIME(3) NOT NULL,
    refunded_at DATETIME(3) NULL,
    PRIMARY KEY (order_id),
    CONSTRAINT payment_amounts CHECK (points_amount >= 0 AND discount_amount >= 0),
    CONSTRAINT payment_known_status CHECK (status IN ('PAID', 'REFUNDED')),
    CONSTRAINT payment_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for ddl in
            [ORDERS, ORDER_LINE, SAGA, SAGA_STEP, PAYMENT, kit::redlock::FENCE_TABLE, kit::idempotency::CREATE_TABLE]
        {
            db.execute_unprepared(ddl).await?;
        }
        Ok(())
    }
}
