//! The catalog's bulk load: products through inventory-svc's `ImportProducts` (1,000 per call,
//! one transaction each, with their name index), not a million REST calls.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::StreamExt;
use mesh_proto::inventory::v1 as pb;
use pb::inventory_service_client::InventoryServiceClient;

use super::names::{product_name, product_price};
use crate::scenarios::ChannelPool;

/// Products per `ImportProducts` call: inventory-svc's own bound.
pub const BATCH: u64 = 1_000;
/// Calls in flight: one per core keeps MySQL busy without queueing on its row locks.
const CONCURRENT_BATCHES: usize = 2;

/// What a load took.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    pub products: u64,
    pub elapsed: Duration,
}

impl Loaded {
    pub fn per_second(&self) -> f64 {
        self.products as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Loads products `0..count` of the generated catalog into inventory-svc at `grpc_url`.
pub async fn load(grpc_url: &str, count: u64) -> anyhow::Result<Loaded> {
    let pool = ChannelPool::new(grpc_url, CONCURRENT_BATCHES, Duration::from_secs(120))?;
    let started = Instant::now();
    let batches = (0..count.div_ceil(BATCH)).map(|b| {
        let mut client = InventoryServiceClient::new(pool.channel(b as usize));
        async move {
            let products = (b * BATCH..((b + 1) * BATCH).min(count))
                .map(|i| pb::CreateProductRequest {
                    name: product_name(i),
                    price: product_price(i),
                    stock: 1_000 + (i % 1_000) as i64,
                })
                .collect::<Vec<_>>();
            let wanted = products.len();
            let ids = client
                .import_products(pb::ImportProductsRequest { products })
                .await
                .with_context(|| format!("ImportProducts of batch {b} failed"))?
                .into_inner()
                .ids;
            ensure!(ids.len() == wanted, "batch {b}: {} ids for {wanted} products", ids.len());
            Ok(ids.len() as u64)
        }
    });
    let mut loaded = 0;
    let mut done = futures::stream::iter(batches).buffer_unordered(CONCURRENT_BATCHES);
    while let Some(batch) = done.next().await {
        loaded += batch?;
        if loaded % 100_000 == 0 {
            println!("  loaded {loaded} of {count} products ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    Ok(Loaded { products: loaded, elapsed: started.elapsed() })
}
