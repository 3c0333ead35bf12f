use std::fmt;

use chrono::{DateTime, Utc};

use super::InventoryError;

const MAX_AMOUNT: i64 = 1_000_000_000;

/// A product id: a positive integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProductId(i64);

impl ProductId {
    pub fn parse(raw: i64, field: &'static str) -> Result<Self, InventoryError> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(InventoryError::validation(field, format!("{field} must be a positive integer")))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// 1..=200 characters, not blank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(raw: String) -> Result<Self, InventoryError> {
        let chars = raw.chars().count();
        if raw.trim().is_empty() || chars > 200 {
            return Err(InventoryError::validation("name", "name must be 1..=200 characters and not blank"));
        }
        if raw.chars().any(char::is_control) {
            return Err(InventoryError::validation("name", "name must not contain control characters"));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Price in whole won, 0..=1,000,000,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price(i64);

impl Price {
    pub fn parse(raw: i64) -> Result<Self, InventoryError> {
        if (0..=MAX_AMOUNT).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(InventoryError::validation("price", "price must be 0..=1000000000"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// Sellable units, 0..=1,000,000,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockLevel(i64);

impl StockLevel {
    pub fn parse(raw: i64) -> Result<Self, InventoryError> {
        if (0..=MAX_AMOUNT).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(InventoryError::validation("stock", "stock must be 0..=1000000000"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Clone, Debug)]
pub struct NewProduct {
    pub name: ProductName,
    pub price: Price,
    pub stock: StockLevel,
}

/// 1..=1,000 products created in one transaction (a bulk load, a catalog import).
#[derive(Clone, Debug)]
pub struct ProductImport(Vec<NewProduct>);

impl ProductImport {
    pub const MAX_PRODUCTS: usize = 1_000;

    pub fn parse(products: Vec<NewProduct>) -> Result<Self, InventoryError> {
        if products.is_empty() || products.len() > Self::MAX_PRODUCTS {
            return Err(InventoryError::validation("products", "products must hold 1..=1000 products"));
        }
        Ok(Self(products))
    }

    pub fn products(&self) -> &[NewProduct] {
        &self.0
    }
}

/// A product as stored. `version` grows by one with every change of the row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price: i64,
    pub stock: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProductSort {
    #[default]
    Id,
    Name,
    PriceAsc,
    PriceDesc,
    Newest,
}

/// A page index and size (1..=100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    page: u64,
    size: u64,
}

impl PageRequest {
    pub const DEFAULT_SIZE: u64 = 20;
    pub const MAX_SIZE: u64 = 100;
    /// Far beyond any real catalogue; keeps `page * size` from overflowing an offset.
    const MAX_PAGE: i64 = 10_000_000;

    pub fn parse(page: i64, size: i64) -> Result<Self, InventoryError> {
        if !(0..=Self::MAX_PAGE).contains(&page) {
            return Err(InventoryError::validation("page", "page must be 0..=10000000"));
        }
        let size = if size == 0 { Self::DEFAULT_SIZE as i64 } else { size };
        if !(1..=Self::MAX_SIZE as i64).contains(&size) {
            return Err(InventoryError::validation("size", "size must be 1..=100"));
        }
        Ok(Self { page: page as u64, size: size as u64 })
    }

    pub fn page(self) -> u64 {
        self.page
    }

    pub fn size(self) -> u64 {
        self.size
    }

    pub fn offset(self) -> u64 {
        self.page * self.size
    }
}

#[derive(Clone, Debug)]
pub struct ProductQuery {
    /// Case-insensitive substring of the name; `None` = every product.
    pub name_contains: Option<String>,
    pub sort: ProductSort,
    pub page: PageRequest,
}

impl ProductQuery {
    pub fn parse(name_contains: String, sort: ProductSort, page: PageRequest) -> Result<Self, InventoryError> {
        if name_contains.chars().count() > 200 {
            return Err(InventoryError::validation("name", "name filter must be at most 200 characters"));
        }
        Ok(Self { name_contains: (!name_contains.is_empty()).then_some(name_contains), sort, page })
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub size: u64,
    pub total_items: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_in_characters_not_bytes() {
        assert!(ProductName::parse("키보드".repeat(66)).is_ok());
        assert!(ProductName::parse("a".repeat(201)).is_err());
        assert!(ProductName::parse("   ".into()).is_err());
        assert!(ProductName::parse(String::new()).is_err());
    }

    #[test]
    fn amounts_are_bounded() {
        assert!(Price::parse(0).is_ok());
        assert!(Price::parse(1_000_000_001).is_err());
        assert!(StockLevel::parse(-1).is_err());
    }

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(PageRequest::parse(0, 0).unwrap().size(), 20);
        assert!(PageRequest::parse(0, 101).is_err());
        assert!(PageRequest::parse(-1, 10).is_err());
        assert_eq!(PageRequest::parse(3, 10).unwrap().offset(), 30);
    }
}
