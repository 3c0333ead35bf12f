//! Product rows: read one, and the absolute stock write with its version check.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement};

use super::entity::product;
use super::store_err;
use crate::domain::{InventoryError, Product, ProductId, StockLevel};

pub async fn get(db: &DatabaseConnection, id: ProductId) -> Result<Product, InventoryError> {
    product::Entity::find_by_id(id.get())
        .one(db)
        .await
        .map_err(store_err)?
        .map(Product::from)
        .ok_or(InventoryError::ProductNotFound(id))
}

/// Sets the stock absolutely. With `expected_version`, only if that version is current:
/// the check and the write are one conditional UPDATE, so two writers holding the same
/// version cannot both win.
pub async fn set_stock(
    db: &DatabaseConnection,
    id: ProductId,
    stock: StockLevel,
    expected_version: Option<i64>,
) -> Result<Product, InventoryError> {
    let now = kit::time::now_millis().naive_utc();
    let stmt = match expected_version {
        Some(version) => Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE product SET stock = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
            [stock.get().into(), now.into(), id.get().into(), version.into()],
        ),
        None => Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE product SET stock = ?, version = version + 1, updated_at = ? WHERE id = ?",
            [stock.get().into(), now.into(), id.get().into()],
        ),
    };
    let updated = db.execute_raw(stmt).await.map_err(store_err)?.rows_affected();
    let current = get(db, id).await?;
    if updated == 0 {
        return Err(InventoryError::VersionMismatch { product: id, current: current.version });
    }
    Ok(current)
}

/// `(id, version)` of `ids`, read inside the caller's transaction.
pub(super) async fn versions<C: ConnectionTrait>(txn: &C, ids: &[i64]) -> Result<Vec<(i64, i64, i64)>, InventoryError> {
    let placeholders = vec!["?"; ids.len()].join(", ");
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        format!("SELECT id, price, version FROM product WHERE id IN ({placeholders})"),
        ids.iter().map(|&id| id.into()),
    );
    txn.query_all_raw(stmt)
        .await
        .map_err(store_err)?
        .iter()
        .map(|row| {
            Ok((
                row.try_get_by_index::<i64>(0).map_err(store_err)?,
                row.try_get_by_index::<i64>(1).map_err(store_err)?,
                row.try_get_by_index::<i64>(2).map_err(store_err)?,
            ))
        })
        .collect()
}
