//! The catalog at scale: a bulk load of generated products (`load`), then listing and name
//! search through the gateway (`browse`), the pages a shop's visitors ask for most.

mod browse;
mod load;
pub mod names;

pub use browse::{Browse, BrowseKind, browse};
pub use load::{Loaded, load};
