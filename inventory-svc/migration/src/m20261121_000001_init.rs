use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000001_init"
    }
}

const PRODUCT: &str = "CREATE TABLE product (
    id BIGINT NOT NULL AUTO_INCREMENT,
    name VARCHAR(200) NOT NULL,
    price BIGINT NOT NULL,
    stock BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    KEY product_name (name),
    KEY product_price (price, id),
    KEY product_created (created_at, id),
    CONSTRAINT product_stock_never_negative CHECK (stock >= 0),
    CONSTRAINT product_price_never_negative CHECK (price >= 0)
) ENGINE=InnoDB";

// One row per (saga, product): what a saga took, so its compensation gives back exactly that.
const RESERVATION: &str = "CREATE TABLE reservation (
    saga_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    product_id BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price BIGINT NOT NULL,
    created_at DATETIME(3) NOT NULL,
    released_at DATETIME(3) NULL,
    PRIMARY KEY (saga_id, product_id),
    KEY reservation_product (product_id),
    CONSTRAINT reservation_quantity_positive CHECK (quantity > 0)
) ENGINE=InnoDB";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(PRODUCT).await?;
        db.execute_unprepared(RESERVATION).await?;
        db.execute_unprepared(kit::barrier::CREATE_TABLE).await?;
        Ok(())
    }
}
