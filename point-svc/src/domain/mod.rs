//! Points: balances and their append-only ledger. No tonic, no SQL: values here are valid
//! by construction, so the store below never re-checks them.

mod error;
mod points;

pub use error::PointError;
pub use points::{
    Balance, ChargeAmount, DebitAmount, EntryType, HistoryLimit, LedgerEntry, MAX_BALANCE, OrderRef, PayAmount, UserId,
};
