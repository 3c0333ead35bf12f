use super::{InventoryError, ProductId};

/// Most lines one order may have (API.md).
pub const MAX_LINES: usize = 50;

/// Units of one order line, 1..=1,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, InventoryError> {
        if (1..=1_000).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(InventoryError::validation("quantity", "quantity must be 1..=1000"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// The lines of one reservation: 1..=50, no product twice, sorted by product id so that
/// every transaction locks rows in the same order and two orders cannot deadlock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationRequest {
    lines: Vec<StockLine>,
}

impl ReservationRequest {
    pub fn parse(mut lines: Vec<StockLine>) -> Result<Self, InventoryError> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(InventoryError::validation("items", "an order has 1..=50 lines"));
        }
        lines.sort_by_key(|line| line.product_id);
        if lines.windows(2).any(|pair| pair[0].product_id == pair[1].product_id) {
            return Err(InventoryError::validation("items", "a product may appear in one line only"));
        }
        Ok(Self { lines })
    }

    pub fn lines(&self) -> &[StockLine] {
        &self.lines
    }
}

/// What was reserved for one line, priced at reservation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReservedLine {
    pub product_id: i64,
    pub quantity: i64,
    pub unit_price: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: i64, qty: i64) -> StockLine {
        StockLine { product_id: ProductId::parse(id, "productId").unwrap(), quantity: Quantity::parse(qty).unwrap() }
    }

    #[test]
    fn lines_are_sorted_and_unique() {
        let req = ReservationRequest::parse(vec![line(3, 1), line(1, 2)]).unwrap();
        assert_eq!(req.lines()[0].product_id.get(), 1);
        assert!(ReservationRequest::parse(vec![line(1, 1), line(1, 2)]).is_err());
        assert!(ReservationRequest::parse(vec![]).is_err());
        assert!(ReservationRequest::parse((1..=51).map(|i| line(i, 1)).collect()).is_err());
    }
}
