//! The inventory's types and rules. No tonic, no SQL: values here are already valid
//! (parse, don't validate), so the layers below never re-check them.

mod error;
mod product;
mod reservation;

pub use error::InventoryError;
pub use product::{
    NewProduct, Page, PageRequest, Price, Product, ProductId, ProductImport, ProductName, ProductQuery, ProductSort,
    StockLevel,
};
pub use reservation::{MAX_LINES, Quantity, ReservationRequest, ReservedLine, StockLine};
