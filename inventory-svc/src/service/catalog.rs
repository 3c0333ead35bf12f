//! Creating, listing and searching products: the catalog's store, its read replicas and its
//! Redis page cache kept in step.
//!
//! A listing is read, on one source (a current replica, else the primary), as: the catalog's
//! counters and generation first, then the page (and, for a name query, the count), so what
//! is cached is at least as new as the generation it is filed under.

use kit::replicas::ReadRouter;
use sea_orm::DatabaseConnection;

use crate::domain::{InventoryError, NewProduct, Page, Product, ProductImport, ProductQuery};
use crate::store::{self, CollationFold, ListCache, NameMatch};

#[derive(Clone)]
pub struct Catalog {
    reads: ReadRouter,
    fold: CollationFold,
    cache: ListCache,
}

/// A name query folded: its codes, and the key they give it in the cache.
struct FoldedName {
    codes: Vec<u32>,
    key: String,
}

impl Catalog {
    pub fn new(reads: ReadRouter, cache: ListCache) -> Self {
        Self { reads, fold: CollationFold::default(), cache }
    }

    fn primary(&self) -> &DatabaseConnection {
        self.reads.primary()
    }

    pub async fn create(&self, new: NewProduct) -> Result<Product, InventoryError> {
        let created = store::create(self.primary(), &self.fold, std::slice::from_ref(&new)).await?;
        self.cache.advance(created.generation).await;
        created.products.into_iter().next().ok_or_else(|| InventoryError::Store(anyhow::anyhow!("no product created")))
    }

    pub async fn import(&self, import: &ProductImport) -> Result<Vec<i64>, InventoryError> {
        let created = store::create(self.primary(), &self.fold, import.products()).await?;
        self.cache.advance(created.generation).await;
        metrics::counter!("inventory_products_imported_total").increment(created.products.len() as u64);
        Ok(created.products.iter().map(|p| p.id).collect())
    }

    /// Indexes the products that predate the name index (a no-op once done).
    pub async fn backfill(&self) -> Result<u64, InventoryError> {
        store::backfill(self.primary(), &self.fold).await
    }

    pub async fn list(&self, query: &ProductQuery) -> Result<Page<Product>, InventoryError> {
        let name = match &query.name_contains {
            Some(needle) => Some(self.folded(needle).await?),
            None => None,
        };
        let key = page_key(query, name.as_ref());
        if let Some(hit) = self.cache.page(&key).await {
            metrics::counter!("inventory_catalog_cache_total", "result" => "hit").increment(1);
            return Ok(hit);
        }
        metrics::counter!("inventory_catalog_cache_total", "result" => "miss").increment(1);
        let ((page, generation), _source) = self.reads.read(|db| self.read_page(db, query, name.as_ref())).await?;
        self.cache.advance(generation).await;
        self.cache.put_page(&key, generation, &page).await;
        Ok(page)
    }

    async fn folded(&self, needle: &str) -> Result<FoldedName, InventoryError> {
        let codes = self.fold.fold(self.primary(), needle).await?;
        let key = codes.iter().map(|c| format!("{c:x}")).collect::<Vec<_>>().join(".");
        Ok(FoldedName { codes, key })
    }

    async fn read_page(
        &self,
        db: DatabaseConnection,
        query: &ProductQuery,
        name: Option<&FoldedName>,
    ) -> Result<(Page<Product>, u64), InventoryError> {
        let stat = store::stat(&db).await?;
        let (items, total_items) = match (&query.name_contains, name) {
            (Some(needle), Some(folded)) => {
                let matcher = NameMatch::new(needle, stat.index_ready.then_some(folded.codes.as_slice()));
                let total = match self.cache.count(&folded.key).await {
                    Some(total) => total,
                    None => {
                        let total = store::count(&db, &matcher).await?;
                        self.cache.put_count(&folded.key, stat.generation, total).await;
                        total
                    }
                };
                (store::page(&db, query, Some(&matcher)).await?, total)
            }
            _ => (store::page(&db, query, None).await?, stat.products),
        };
        let page = Page { items, page: query.page.page(), size: query.page.size(), total_items };
        Ok((page, stat.generation))
    }
}

/// The normalised query: names that the collation compares equal share a key.
fn page_key(query: &ProductQuery, name: Option<&FoldedName>) -> String {
    let name = name.map_or("", |n| n.key.as_str());
    format!("{:?}:{}:{}:{name}", query.sort, query.page.page(), query.page.size())
}
