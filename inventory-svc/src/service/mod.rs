//! The inventory's use cases: domain values in, domain values out, with the store and
//! the product cache kept consistent (every write invalidates after it commits).
//! `catalog`: creating, listing and searching products (`ranked`: a name query's matches in
//! every order; `flights`: concurrent misses share one read).

mod catalog;
mod flights;
mod ranked;

pub use catalog::Catalog;

use kit::batch::Combiner;
use kit::saga::SagaRef;
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use crate::domain::{
    InventoryError, NewProduct, Page, Product, ProductId, ProductImport, ProductQuery, ReservationRequest, StockLevel,
};
use crate::store::{self, HotReservation, ProductCache, Released, Reserved};

type HotRows = Combiner<usize, HotReservation, Result<Reserved, InventoryError>>;

/// Reservation batches committing at once. A product always falls in the same lane, so its
/// reservations are decided one batch at a time, in arrival order.
const RESERVE_LANES: u64 = 8;

#[derive(Clone)]
pub struct Inventory {
    db: DatabaseConnection,
    cache: ProductCache,
    catalog: Catalog,
    /// Coalesces concurrent single-line reservations per product; `None` = one transaction each.
    hot_rows: Option<HotRows>,
}

impl Inventory {
    /// `hot_batch_max`: most single-line reservations (of one hot product or of many)
    /// decided in one transaction; 0 turns coalescing off.
    pub fn new(db: DatabaseConnection, cache: ProductCache, catalog: Catalog, hot_batch_max: usize) -> Self {
        let hot_rows = (hot_batch_max > 0).then(|| {
            let db = db.clone();
            Combiner::new(hot_batch_max, move |_lane, items: Vec<HotReservation>| {
                let db = db.clone();
                async move { store::reserve_batch(&db, &items).await }
            })
        });
        Self { db, cache, catalog, hot_rows }
    }

    pub async fn create(&self, new: NewProduct) -> Result<Product, InventoryError> {
        let product = self.catalog.create(new).await?;
        self.cache.put(&product).await;
        Ok(product)
    }

    /// Creates every product of `import` in one transaction; their ids, in order.
    pub async fn import(&self, import: &ProductImport) -> Result<Vec<i64>, InventoryError> {
        self.catalog.import(import).await
    }

    pub async fn get(&self, id: ProductId) -> Result<Product, InventoryError> {
        if let Some(hit) = self.cache.get(id.get()).await {
            metrics::counter!("inventory_product_cache_total", "result" => "hit").increment(1);
            return Ok(hit);
        }
        metrics::counter!("inventory_product_cache_total", "result" => "miss").increment(1);
        let product = store::get(&self.db, id).await?;
        self.cache.put(&product).await;
        Ok(product)
    }

    pub async fn list(&self, query: &ProductQuery) -> Result<Page<Product>, InventoryError> {
        self.catalog.list(query).await
    }

    pub async fn set_stock(
        &self,
        id: ProductId,
        stock: StockLevel,
        expected_version: Option<i64>,
    ) -> Result<Product, InventoryError> {
        let result = store::set_stock(&self.db, id, stock, expected_version).await;
        match &result {
            Ok(product) => self.cache.put(product).await,
            Err(InventoryError::VersionMismatch { current, .. }) => self.cache.invalidate(id.get(), *current).await,
            Err(_) => {}
        }
        result
    }

    pub async fn reserve(&self, saga: &SagaRef, request: &ReservationRequest) -> Result<Reserved, InventoryError> {
        let result = match (request.lines(), &self.hot_rows) {
            ([line], Some(hot_rows)) => {
                let item = HotReservation { saga: saga.clone(), product: line.product_id, quantity: line.quantity };
                let lane = (line.product_id.get().unsigned_abs() % RESERVE_LANES) as usize;
                hot_rows
                    .submit(lane, item)
                    .instrument(tracing::info_span!("sql.reserve_stock", saga_id = saga.saga_id(), batched = true))
                    .await
                    .unwrap_or_else(|lost| Err(InventoryError::Store(lost.into())))
            }
            _ => {
                store::reserve(&self.db, saga, request)
                    .instrument(tracing::info_span!("sql.reserve_stock", saga_id = saga.saga_id(), batched = false))
                    .await
            }
        };
        let outcome = match &result {
            Ok(reserved) if reserved.replayed => "replayed",
            Ok(_) => "reserved",
            Err(InventoryError::OutOfStock(_)) => "out_of_stock",
            Err(_) => "failed",
        };
        metrics::counter!("inventory_reservations_total", "outcome" => outcome).increment(1);
        if let Ok(reserved) = &result {
            for &(id, version) in &reserved.changed {
                self.cache.invalidate(id, version).await;
            }
        }
        result
    }

    pub async fn release(&self, saga: &SagaRef) -> Result<Released, InventoryError> {
        let released = store::release(&self.db, saga)
            .instrument(tracing::info_span!("sql.release_stock", saga_id = saga.saga_id()))
            .await?;
        metrics::counter!("inventory_releases_total").increment(1);
        for &(id, version) in &released.changed {
            self.cache.invalidate(id, version).await;
        }
        Ok(released)
    }

    /// Of `saga_ids`, those holding reserved stock now.
    pub async fn reserved_by(&self, saga_ids: &[String]) -> Result<Vec<String>, InventoryError> {
        store::held_by(&self.db, saga_ids).await
    }
}
