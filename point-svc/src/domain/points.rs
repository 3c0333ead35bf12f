use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::PointError;

/// No charge may take a balance above this (API.md). Refunds may: a compensation must not fail.
pub const MAX_BALANCE: i64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserId(i64);

impl UserId {
    pub fn parse(raw: i64) -> Result<Self, PointError> {
        if raw > 0 { Ok(Self(raw)) } else { Err(PointError::validation("userId", "userId must be a positive integer")) }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A charge, 1..=10,000,000 won.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChargeAmount(i64);

impl ChargeAmount {
    pub fn parse(raw: i64) -> Result<Self, PointError> {
        if (1..=10_000_000).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(PointError::validation("amount", "amount must be 1..=10000000"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A use of points, 1..=1,000,000,000 won.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebitAmount(i64);

impl DebitAmount {
    pub fn parse(raw: i64) -> Result<Self, PointError> {
        if (1..=MAX_BALANCE).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(PointError::validation("amount", "amount must be 1..=1000000000"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// What an order pays with points, 0..=1,000,000,000 (0 when a coupon covers it all: the
/// step is recorded but nothing moves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayAmount(i64);

impl PayAmount {
    pub fn parse(raw: i64) -> Result<Self, PointError> {
        if (0..=MAX_BALANCE).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(PointError::validation("amount", "amount must be 0..=1000000000"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// The order a payment or refund belongs to: 1..=64 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRef(String);

impl OrderRef {
    pub fn parse(raw: String) -> Result<Self, PointError> {
        if (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw))
        } else {
            Err(PointError::validation("orderId", "orderId must be 1..=64 printable ASCII characters"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many ledger entries to list, 1..=200 (default 50).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimit(u64);

impl HistoryLimit {
    pub fn parse(raw: i64) -> Result<Self, PointError> {
        match raw {
            0 => Ok(Self(50)),
            1..=200 => Ok(Self(raw as u64)),
            _ => Err(PointError::validation("limit", "limit must be 1..=200")),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub user_id: i64,
    pub balance: i64,
    /// `None` for a user who never had points.
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryType {
    Charge,
    Use,
    Payment,
    Refund,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Charge => "CHARGE",
            EntryType::Use => "USE",
            EntryType::Payment => "PAYMENT",
            EntryType::Refund => "REFUND",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "CHARGE" => EntryType::Charge,
            "USE" => EntryType::Use,
            "PAYMENT" => EntryType::Payment,
            "REFUND" => EntryType::Refund,
            _ => return None,
        })
    }

    /// Credits raise the balance; debits lower it.
    pub fn is_credit(self) -> bool {
        matches!(self, EntryType::Charge | EntryType::Refund)
    }
}

/// One append-only ledger line. For every user, balance = credits - debits, and the newest
/// entry's `balance_after` equals the balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub id: i64,
    pub entry_type: EntryType,
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_bounded_per_operation() {
        assert!(ChargeAmount::parse(0).is_err());
        assert!(ChargeAmount::parse(10_000_001).is_err());
        assert!(ChargeAmount::parse(10_000_000).is_ok());
        assert!(DebitAmount::parse(-5).is_err());
        assert!(DebitAmount::parse(1_000_000_000).is_ok());
        assert!(PayAmount::parse(0).is_ok());
        assert!(UserId::parse(0).is_err());
        assert_eq!(HistoryLimit::parse(0).unwrap().get(), 50);
        assert!(HistoryLimit::parse(201).is_err());
    }
}
