//! Creating, listing and searching products: the catalog's store, its read replicas and its
//! Redis page cache kept in step.
//!
//! A listing is read, on one source (a current replica, else the primary), as: the catalog's
//! counters and generation first, then the page, so what is cached is at least as new as the
//! generation it is filed under. A name query is ranked once per generation (one pass over its
//! matches gives the exact total and the first ids of every sort; `ranked`), concurrent misses
//! sharing that pass (`flights`); its pages are then slices of the ranking, read by id.

use std::sync::Arc;

use futures::FutureExt;
use kit::replicas::ReadRouter;
use sea_orm::DatabaseConnection;

use super::flights::Flights;
use super::ranked::{Ranked, SORTS, page_of};
use crate::domain::{InventoryError, NewProduct, Page, Product, ProductImport, ProductQuery};
use crate::store::{self, CatalogStat, CollationFold, ListCache, NameMatch};

#[derive(Clone)]
pub struct Catalog {
    reads: ReadRouter,
    fold: CollationFold,
    cache: ListCache,
    rankings: Arc<Flights<Ranked>>,
    /// Ranking passes running at once: each reads every match of its query, so a burst of
    /// cold queries queues here instead of thrashing MySQL and this process's memory.
    passes: Arc<tokio::sync::Semaphore>,
}

/// See [`Catalog::passes`].
const CONCURRENT_RANKINGS: usize = 4;

/// A name query folded: its codes, and the key they give it in the cache.
struct FoldedName {
    codes: Vec<u32>,
    key: String,
}

impl Catalog {
    pub fn new(reads: ReadRouter, cache: ListCache) -> Self {
        Self {
            reads,
            fold: CollationFold::default(),
            cache,
            rankings: Arc::default(),
            passes: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_RANKINGS)),
        }
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
        let (hit, known) = self.cache.page(&key).await;
        if let Some(hit) = hit {
            metrics::counter!("inventory_catalog_cache_total", "result" => "hit").increment(1);
            return Ok(hit);
        }
        metrics::counter!("inventory_catalog_cache_total", "result" => "miss").increment(1);
        let ((page, generation), _source) = self.reads.read(|db| self.read_page(db, query, name.as_ref())).await?;
        if known.is_none_or(|known| known < generation) {
            self.cache.advance(generation).await;
        }
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
            (Some(needle), Some(folded)) => self.search_page(&db, &stat, query, needle, folded).await?,
            _ => (store::page(&db, query, None).await?, stat.products),
        };
        let page = Page { items, page: query.page.page(), size: query.page.size(), total_items };
        Ok((page, stat.generation))
    }

    async fn search_page(
        &self,
        db: &DatabaseConnection,
        stat: &CatalogStat,
        query: &ProductQuery,
        needle: &str,
        folded: &FoldedName,
    ) -> Result<(Vec<Product>, u64), InventoryError> {
        let sort = format!("{:?}", query.sort);
        let (total, ids) = match self.cache.ranking(&sort, &folded.key).await {
            Some(hit) => hit,
            None => {
                let ranked = self.rank(db, stat, needle, folded).await?;
                (ranked.total, ranked.list(query.sort).to_vec())
            }
        };
        let items = match page_of(total, &ids, query.page.offset(), query.page.size()) {
            Some(page_ids) => store::by_ids(db, page_ids).await?,
            None => {
                let matcher = NameMatch::new(needle, stat.index_ready.then_some(folded.codes.as_slice()));
                store::page(db, query, Some(&matcher)).await?
            }
        };
        Ok((items, total))
    }

    /// Ranks a name query at `stat`'s generation (one pass, shared by concurrent callers) and
    /// caches the ranking under that generation.
    async fn rank(
        &self,
        db: &DatabaseConnection,
        stat: &CatalogStat,
        needle: &str,
        folded: &FoldedName,
    ) -> Result<Arc<Ranked>, InventoryError> {
        let matcher = NameMatch::new(needle, stat.index_ready.then_some(folded.codes.as_slice()));
        let (db, cache, key, generation) = (db.clone(), self.cache.clone(), folded.key.clone(), stat.generation);
        let passes = self.passes.clone();
        let flight = format!("{generation}:{key}");
        self.rankings
            .join(flight, move || {
                async move {
                    let _pass = passes.acquire_owned().await.map_err(|_| Arc::<str>::from("shutting down"))?;
                    let matches =
                        store::matches(&db, &matcher).await.map_err(|err| Arc::<str>::from(err.to_string()))?;
                    let ranked = Ranked::from_name_order(matches);
                    metrics::counter!("inventory_search_rankings_total").increment(1);
                    let names: Vec<String> = SORTS.iter().map(|sort| format!("{sort:?}")).collect();
                    let lists: Vec<(&str, &[i64])> =
                        SORTS.iter().zip(&names).map(|(sort, name)| (name.as_str(), ranked.list(*sort))).collect();
                    cache.put_rankings(&key, generation, ranked.total, &lists).await;
                    Ok(Arc::new(ranked))
                }
                .boxed()
            })
            .await
            .map_err(|cause| InventoryError::Store(anyhow::anyhow!("ranking a name query failed: {cause}")))
    }
}

/// The normalised query: names that the collation compares equal share a key.
fn page_key(query: &ProductQuery, name: Option<&FoldedName>) -> String {
    let name = name.map_or("", |n| n.key.as_str());
    format!("{:?}:{}:{}:{name}", query.sort, query.page.page(), query.page.size())
}
