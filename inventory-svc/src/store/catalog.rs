//! The catalog: products created (one or a thousand at once) together with their name index
//! and the catalog's counters, and listing and name search that walk indexes instead of the
//! table.
//!
//! Listing without a name is a walk of the sort's index: the page's ids come from the index
//! alone (a covering walk of `offset + size` entries), then only those rows are read.
//! `totalItems` is `catalog_stat.products`, kept in the transaction that creates products.
//! A name query narrows by the trigram index (`search`) and is decided by `LIKE`, so its
//! answers are a scan's answers.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement, TransactionTrait, Value};

use super::entity::product;
use super::fold::CollationFold;
use super::search::{GramFilter, name_grams};
use super::{finish, store_err};
use crate::domain::{InventoryError, NewProduct, Product, ProductQuery, ProductSort};

/// Grams written per statement (two values each, well under MySQL's 65,535 placeholders).
const GRAMS_PER_INSERT: usize = 4_000;
/// Products indexed per transaction by the backfill.
const BACKFILL_BATCH: u64 = 1_000;

const COLUMNS: &str = "p.id, p.name, p.price, p.stock, p.version, p.created_at, p.updated_at";

/// What `catalog_stat` says, read before the rows it describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogStat {
    pub products: u64,
    /// Grows with every product created: a cached page of generation g holds every product
    /// created up to g.
    pub generation: u64,
    /// Every product is in the name index (the start-up backfill has finished).
    pub index_ready: bool,
}

/// Products just created, and the catalog generation they made.
#[derive(Clone, Debug)]
pub struct Created {
    pub products: Vec<Product>,
    pub generation: u64,
}

/// A name query, ready to run: the `LIKE` pattern that decides and the grams that narrow.
#[derive(Clone, Debug)]
pub struct NameMatch {
    pattern: String,
    /// `None` while the index is still being backfilled: the query scans.
    grams: Option<GramFilter>,
}

impl NameMatch {
    /// `codes`: the needle folded ([`CollationFold`]), or `None` to scan (the index is not
    /// complete yet).
    pub fn new(needle: &str, codes: Option<&[u32]>) -> Self {
        Self { pattern: like_pattern(needle), grams: codes.and_then(GramFilter::for_query) }
    }

    /// `FROM ... WHERE ...` of the products matching: the index's candidates (or every
    /// product, while the index is incomplete), each decided by `LIKE`.
    fn matching(&self) -> (String, Vec<Value>) {
        let (mut sql, mut values) = match &self.grams {
            Some(grams) => {
                let (candidates, values) = grams.candidates();
                (format!("FROM {candidates} JOIN product p ON p.id = c.product_id"), values)
            }
            None => ("FROM product p".to_owned(), Vec::new()),
        };
        sql.push_str(" WHERE p.name LIKE ? ESCAPE '\\\\'");
        values.push(self.pattern.clone().into());
        (sql, values)
    }
}

/// `LIKE` treats `%` and `_` as wildcards; a user searching for them means them literally.
fn like_pattern(needle: &str) -> String {
    let mut escaped = String::with_capacity(needle.len() + 2);
    escaped.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// Each sort is an index walk: `(name)`, `(price, id)` and `(created_at, id)` carry the id,
/// and a descending sort walks its index backwards, so ties break by id the same way.
fn order_by(sort: ProductSort) -> &'static str {
    match sort {
        ProductSort::Id => "p.id",
        ProductSort::Name => "p.name, p.id",
        ProductSort::PriceAsc => "p.price, p.id",
        ProductSort::PriceDesc => "p.price DESC, p.id DESC",
        ProductSort::Newest => "p.created_at DESC, p.id DESC",
    }
}

pub async fn stat<C: ConnectionTrait>(db: &C) -> Result<CatalogStat, InventoryError> {
    let stmt = Statement::from_string(
        DbBackend::MySql,
        "SELECT products, generation, backfill_cursor >= backfill_through FROM catalog_stat WHERE id = 1",
    );
    let row = db
        .query_one_raw(stmt)
        .await
        .map_err(store_err)?
        .ok_or_else(|| InventoryError::Store(anyhow::anyhow!("catalog_stat has no row")))?;
    let products: i64 = row.try_get_by_index(0).map_err(store_err)?;
    let generation: i64 = row.try_get_by_index(1).map_err(store_err)?;
    let ready: i64 = row.try_get_by_index(2).map_err(store_err)?;
    Ok(CatalogStat { products: products as u64, generation: generation as u64, index_ready: ready != 0 })
}

/// The products of one page of `query`, in its order.
pub async fn page(
    db: &DatabaseConnection,
    query: &ProductQuery,
    name: Option<&NameMatch>,
) -> Result<Vec<Product>, InventoryError> {
    let order = order_by(query.sort);
    let (limit, offset) = (query.page.size(), query.page.offset());
    let stmt = match name {
        None => Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "SELECT {COLUMNS} FROM (SELECT p.id FROM product p ORDER BY {order} LIMIT ? OFFSET ?) page \
                 JOIN product p ON p.id = page.id ORDER BY {order}"
            ),
            [limit.into(), offset.into()],
        ),
        Some(name) => {
            let (matching, mut values) = name.matching();
            values.extend([limit.into(), offset.into()]);
            Statement::from_sql_and_values(
                DbBackend::MySql,
                format!("SELECT {COLUMNS} {matching} ORDER BY {order} LIMIT ? OFFSET ?"),
                values,
            )
        }
    };
    let rows = product::Entity::find().from_raw_sql(stmt).all(db).await.map_err(store_err)?;
    Ok(rows.into_iter().map(Product::from).collect())
}

/// One product matching a name query, with the keys every sort orders by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    pub id: i64,
    pub price: i64,
    pub created_at: chrono::NaiveDateTime,
}

/// Every product matching `name`, in the `name` sort's order (the collation's, as MySQL sorts
/// it): one pass that gives the count and, re-sorted by the caller, every other order.
pub async fn matches(db: &DatabaseConnection, name: &NameMatch) -> Result<Vec<Match>, InventoryError> {
    let (matching, values) = name.matching();
    let order = order_by(ProductSort::Name);
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        format!("SELECT p.id, p.price, p.created_at {matching} ORDER BY {order}"),
        values,
    );
    let rows = db.query_all_raw(stmt).await.map_err(store_err)?;
    rows.iter()
        .map(|row| {
            Ok(Match {
                id: row.try_get_by_index(0).map_err(store_err)?,
                price: row.try_get_by_index(1).map_err(store_err)?,
                created_at: row.try_get_by_index(2).map_err(store_err)?,
            })
        })
        .collect()
}

/// The products of `ids`, in that order (ids that no longer exist are left out).
pub async fn by_ids(db: &DatabaseConnection, ids: &[i64]) -> Result<Vec<Product>, InventoryError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        format!("SELECT {COLUMNS} FROM product p WHERE p.id IN ({})", vec!["?"; ids.len()].join(", ")),
        ids.iter().map(|&id| id.into()),
    );
    let mut rows: std::collections::HashMap<i64, Product> = product::Entity::find()
        .from_raw_sql(stmt)
        .all(db)
        .await
        .map_err(store_err)?
        .into_iter()
        .map(|row| (row.id, Product::from(row)))
        .collect();
    Ok(ids.iter().filter_map(|id| rows.remove(id)).collect())
}

/// Creates `new` products in one transaction with their index entries and the catalog's new
/// count and generation.
pub async fn create(
    db: &DatabaseConnection,
    fold: &CollationFold,
    new: &[NewProduct],
) -> Result<Created, InventoryError> {
    let mut codes = Vec::with_capacity(new.len());
    for product in new {
        codes.push(fold.fold(db, product.name.as_str()).await?);
    }
    let now = kit::time::now_millis();
    let txn = db.begin().await.map_err(store_err)?;
    let outcome = async {
        let ids = insert_products(&txn, new, now.naive_utc()).await?;
        let grams: Vec<(u64, i64)> = ids
            .iter()
            .zip(&codes)
            .flat_map(|(&id, codes)| name_grams(codes).into_iter().map(move |g| (g, id)))
            .collect();
        insert_grams(&txn, &grams, false).await?;
        let bump = Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE catalog_stat SET products = products + ?, generation = LAST_INSERT_ID(generation + 1) WHERE id = 1",
            [(new.len() as u64).into()],
        );
        let generation = txn.execute_raw(bump).await.map_err(store_err)?.last_insert_id();
        let products = ids
            .iter()
            .zip(new)
            .map(|(&id, p)| Product {
                id,
                name: p.name.as_str().to_owned(),
                price: p.price.get(),
                stock: p.stock.get(),
                version: 1,
                created_at: now,
                updated_at: now,
            })
            .collect();
        Ok(Created { products, generation })
    }
    .await;
    finish(txn, outcome).await
}

/// The new rows' ids. One multi-row INSERT when the server hands out its ids consecutively
/// (`innodb_autoinc_lock_mode` 0 or 1, MariaDB's default); else one INSERT per row.
async fn insert_products<C: ConnectionTrait>(
    txn: &C,
    new: &[NewProduct],
    now: chrono::NaiveDateTime,
) -> Result<Vec<i64>, InventoryError> {
    let row = |p: &NewProduct| -> [Value; 5] {
        [p.name.as_str().into(), p.price.get().into(), p.stock.get().into(), now.into(), now.into()]
    };
    const INSERT: &str = "INSERT INTO product (name, price, stock, version, created_at, updated_at) VALUES ";
    const ROW: &str = "(?, ?, ?, 1, ?, ?)";
    if new.len() > 1 && consecutive_ids(txn).await? {
        let stmt = Statement::from_sql_and_values(
            DbBackend::MySql,
            format!("{INSERT}{}", vec![ROW; new.len()].join(", ")),
            new.iter().flat_map(row),
        );
        let first = txn.execute_raw(stmt).await.map_err(store_err)?.last_insert_id() as i64;
        return Ok((first..first + new.len() as i64).collect());
    }
    let mut ids = Vec::with_capacity(new.len());
    for p in new {
        let stmt = Statement::from_sql_and_values(DbBackend::MySql, format!("{INSERT}{ROW}"), row(p));
        ids.push(txn.execute_raw(stmt).await.map_err(store_err)?.last_insert_id() as i64);
    }
    Ok(ids)
}

async fn consecutive_ids<C: ConnectionTrait>(txn: &C) -> Result<bool, InventoryError> {
    let stmt = Statement::from_string(DbBackend::MySql, "SELECT @@innodb_autoinc_lock_mode");
    let row = txn.query_one_raw(stmt).await.map_err(store_err)?;
    let mode: Option<i64> = match row {
        Some(row) => row.try_get_by_index(0).map_err(store_err)?,
        None => None,
    };
    Ok(matches!(mode, Some(0 | 1)))
}

async fn insert_grams<C: ConnectionTrait>(txn: &C, grams: &[(u64, i64)], ignore: bool) -> Result<(), InventoryError> {
    let verb = if ignore { "INSERT IGNORE" } else { "INSERT" };
    for chunk in grams.chunks(GRAMS_PER_INSERT) {
        let stmt = Statement::from_sql_and_values(
            DbBackend::MySql,
            format!("{verb} INTO product_gram (gram, product_id) VALUES {}", vec!["(?, ?)"; chunk.len()].join(", ")),
            chunk.iter().flat_map(|&(g, id)| [Value::from(g), Value::from(id)]),
        );
        txn.execute_raw(stmt).await.map_err(store_err)?;
    }
    Ok(())
}

/// Indexes the products that existed before the name index, a batch per transaction, until
/// the cursor reaches them all. Safe to run on several replicas at once.
pub async fn backfill(db: &DatabaseConnection, fold: &CollationFold) -> Result<u64, InventoryError> {
    let mut indexed = 0;
    loop {
        let stmt = Statement::from_string(
            DbBackend::MySql,
            "SELECT backfill_cursor, backfill_through FROM catalog_stat WHERE id = 1",
        );
        let Some(row) = db.query_one_raw(stmt).await.map_err(store_err)? else { return Ok(indexed) };
        let cursor: i64 = row.try_get_by_index(0).map_err(store_err)?;
        let through: i64 = row.try_get_by_index(1).map_err(store_err)?;
        if cursor >= through {
            return Ok(indexed);
        }
        let stmt = Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT id, name FROM product WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            [cursor.into(), through.into(), BACKFILL_BATCH.into()],
        );
        let rows = db.query_all_raw(stmt).await.map_err(store_err)?;
        let mut grams = Vec::new();
        let mut last = through;
        for row in &rows {
            let id: i64 = row.try_get_by_index(0).map_err(store_err)?;
            let name: String = row.try_get_by_index(1).map_err(store_err)?;
            grams.extend(name_grams(&fold.fold(db, &name).await?).into_iter().map(|g| (g, id)));
            last = id;
        }
        if (rows.len() as u64) < BACKFILL_BATCH {
            last = through;
        }
        let txn = db.begin().await.map_err(store_err)?;
        let outcome = async {
            insert_grams(&txn, &grams, true).await?;
            let advance = Statement::from_sql_and_values(
                DbBackend::MySql,
                "UPDATE catalog_stat SET backfill_cursor = GREATEST(backfill_cursor, ?) WHERE id = 1",
                [last.into()],
            );
            txn.execute_raw(advance).await.map_err(store_err)?;
            Ok(())
        }
        .await;
        finish(txn, outcome).await?;
        indexed += rows.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::like_pattern("50%_off"), "%50\\%\\_off%");
    }
}
