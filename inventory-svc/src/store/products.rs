//! Product rows: create, read, list, and the absolute stock write with its version check.

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ActiveValue, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};

use super::entity::product;
use super::store_err;
use crate::domain::{InventoryError, NewProduct, Page, Product, ProductId, ProductQuery, ProductSort, StockLevel};

pub async fn create(db: &DatabaseConnection, new: NewProduct) -> Result<Product, InventoryError> {
    let now = kit::time::now_millis();
    let row = product::ActiveModel {
        id: ActiveValue::NotSet,
        name: ActiveValue::Set(new.name.as_str().to_owned()),
        price: ActiveValue::Set(new.price.get()),
        stock: ActiveValue::Set(new.stock.get()),
        version: ActiveValue::Set(1),
        created_at: ActiveValue::Set(now.naive_utc()),
        updated_at: ActiveValue::Set(now.naive_utc()),
    };
    let id = product::Entity::insert(row).exec(db).await.map_err(store_err)?.last_insert_id;
    Ok(Product {
        id,
        name: new.name.as_str().to_owned(),
        price: new.price.get(),
        stock: new.stock.get(),
        version: 1,
        created_at: now,
        updated_at: now,
    })
}

pub async fn get(db: &DatabaseConnection, id: ProductId) -> Result<Product, InventoryError> {
    product::Entity::find_by_id(id.get())
        .one(db)
        .await
        .map_err(store_err)?
        .map(Product::from)
        .ok_or(InventoryError::ProductNotFound(id))
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

pub async fn list(db: &DatabaseConnection, query: &ProductQuery) -> Result<Page<Product>, InventoryError> {
    let mut select = product::Entity::find();
    if let Some(needle) = &query.name_contains {
        // The schema's collation (utf8mb4_unicode_ci) makes LIKE case-insensitive.
        select = select.filter(Expr::col(product::Column::Name).like(LikeExpr::new(like_pattern(needle)).escape('\\')));
    }
    let total_items = select.clone().count(db).await.map_err(store_err)?;
    use sea_orm::Order::{Asc, Desc};
    let ordered = match query.sort {
        ProductSort::Id => select.order_by(product::Column::Id, Asc),
        ProductSort::Name => select.order_by(product::Column::Name, Asc).order_by(product::Column::Id, Asc),
        ProductSort::PriceAsc => select.order_by(product::Column::Price, Asc).order_by(product::Column::Id, Asc),
        ProductSort::PriceDesc => select.order_by(product::Column::Price, Desc).order_by(product::Column::Id, Asc),
        ProductSort::Newest => select.order_by(product::Column::CreatedAt, Desc).order_by(product::Column::Id, Desc),
    };
    let items = ordered
        .offset(query.page.offset())
        .limit(query.page.size())
        .all(db)
        .await
        .map_err(store_err)?
        .into_iter()
        .map(Product::from)
        .collect();
    Ok(Page { items, page: query.page.page(), size: query.page.size(), total_items })
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

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::like_pattern("50%_off"), "%50\\%\\_off%");
    }
}
