use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000001_catalog"
    }
}

// One row of catalog-wide facts, changed in the same transaction as the products it counts:
// `products` answers an unfiltered listing's `totalItems` without a COUNT over the table, and
// `generation` grows with every product created, so a cached page or count can say which
// catalog it describes. Products that existed before the name index are indexed by a
// backfill at start: `backfill_cursor` reaches `backfill_through` once they all are, and until
// then a name search scans instead of trusting an incomplete index.
const CATALOG_STAT: &str = "CREATE TABLE catalog_stat (
    id TINYINT NOT NULL,
    products BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    backfill_through BIGINT NOT NULL,
    backfill_cursor BIGINT NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT catalog_stat_one_row CHECK (id = 1)
) ENGINE=InnoDB";

const CATALOG_STAT_ROW: &str = "INSERT INTO catalog_stat (id, products, generation, backfill_through, backfill_cursor)
    SELECT 1, COUNT(*), 1, COALESCE(MAX(id), 0), 0 FROM product";

// The name search index: every product name folded by the column's collation, one row per
// distinct trigram (codes of three consecutive characters, the last ones padded) and
// product. A query's trigrams narrow the candidates; `name LIKE` still decides.
const PRODUCT_GRAM: &str = "CREATE TABLE product_gram (
    gram BIGINT UNSIGNED NOT NULL,
    product_id BIGINT NOT NULL,
    PRIMARY KEY (gram, product_id)
) ENGINE=InnoDB";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(CATALOG_STAT).await?;
        db.execute_unprepared(CATALOG_STAT_ROW).await?;
        db.execute_unprepared(PRODUCT_GRAM).await?;
        db.execute_unprepared(kit::replicas::CREATE_HEARTBEAT_TABLE).await?;
        Ok(())
    }
}
