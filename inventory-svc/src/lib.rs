//! inventory-svc: products and their sellable stock. It never oversells: every unit leaves
//! through a conditional `UPDATE ... WHERE stock >= ?`, and the schema forbids negative stock.
//!
//! Map:
//! - [`domain`]: product, stock and reservation types and rules (no tonic, no SQL).
//! - [`store`]: MySQL rows, the barrier-guarded reservation transactions, the Redis cache.
//! - [`service`]: the use cases, keeping store and cache consistent.
//! - [`grpc`]: `mesh.inventory.v1.InventoryService` over the use cases.
//! - [`config`], [`startup`]: settings from `INVENTORY_*` and the wiring.

pub mod config;
pub mod domain;
pub mod grpc;
pub mod service;
pub mod startup;
pub mod store;
