use kit::{ErrorCode, ServiceError};

use super::ProductId;

/// Everything an inventory operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{message}")]
    Validation { field: &'static str, message: String },
    #[error("product {0} does not exist")]
    ProductNotFound(ProductId),
    #[error("product {0} does not have enough stock")]
    OutOfStock(ProductId),
    #[error("product {product} is at version {current}, not the expected one")]
    VersionMismatch { product: ProductId, current: i64 },
    #[error("this saga step was already compensated; the late action is refused")]
    StepCompensated,
    /// The database failed; the cause is logged, never shown.
    #[error("the inventory database is unavailable")]
    Store(#[source] anyhow::Error),
}

impl InventoryError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }
}

impl From<InventoryError> for ServiceError {
    fn from(err: InventoryError) -> Self {
        let detail = err.to_string();
        match err {
            InventoryError::Validation { field, .. } => ServiceError::validation(field, detail),
            InventoryError::ProductNotFound(id) => {
                ServiceError::new(ErrorCode::NotFound, detail).with_product(id.get())
            }
            InventoryError::OutOfStock(id) => ServiceError::new(ErrorCode::OutOfStock, detail).with_product(id.get()),
            InventoryError::VersionMismatch { .. } => ServiceError::new(ErrorCode::VersionMismatch, detail),
            InventoryError::StepCompensated => ServiceError::new(ErrorCode::InvalidStateTransition, detail),
            InventoryError::Store(cause) => ServiceError::unavailable("inventory database", &format!("{cause:#}")),
        }
    }
}
