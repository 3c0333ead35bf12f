//! Characters folded the way the `name` column's collation compares them, so the name index
//! finds exactly what `LIKE` finds.
//!
//! `LIKE` under `utf8mb4_unicode_ci` compares one character with another by their collation
//! weights: `a`, `A` and `á` weigh the same, `ß` does not weigh like `s`, katakana weigh like
//! hiragana, and characters outside the BMP compare by code point. Rather than re-implement
//! UCA 4.0.0, the fold asks the server: a character's code is a hash of its
//! `WEIGHT_STRING`, learned the first time the character is seen and remembered. Equal weights
//! give equal codes, so the index never misses a match; two different weights that collide in
//! the hash only add candidates, which `LIKE` then rejects.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::store_err;
use crate::domain::InventoryError;

/// The collation of `product.name` (the schema's default); a test checks they agree.
pub const NAME_COLLATION: &str = "utf8mb4_unicode_ci";

/// Codes are 21 bits, so three fit one `BIGINT UNSIGNED` gram; 0 is the end-of-name pad.
pub const CODE_BITS: u32 = 21;
const CODE_MASK: u32 = (1 << CODE_BITS) - 1;

/// Characters whose weights one statement asks for.
const LOOKUP_CHUNK: usize = 256;

/// The fold table, filled as characters are met. Cheap to clone.
#[derive(Clone, Default)]
pub struct CollationFold {
    codes: Arc<RwLock<HashMap<char, u32>>>,
}

impl CollationFold {
    /// The code of every character of `text`, in order. Asks `db` for the weights of the
    /// characters not seen before (one statement per 256 of them).
    pub async fn fold(&self, db: &DatabaseConnection, text: &str) -> Result<Vec<u32>, InventoryError> {
        let unknown: Vec<char> = {
            let known = self.codes.read().expect("fold table lock");
            let mut unknown: Vec<char> = text.chars().filter(|c| is_bmp(*c) && !known.contains_key(c)).collect();
            unknown.sort_unstable();
            unknown.dedup();
            unknown
        };
        for chunk in unknown.chunks(LOOKUP_CHUNK) {
            let learned = weights(db, chunk).await?;
            self.codes.write().expect("fold table lock").extend(learned);
        }
        let known = self.codes.read().expect("fold table lock");
        Ok(text.chars().map(|c| if is_bmp(c) { known[&c] } else { code_of_supplementary(c) }).collect())
    }
}

fn is_bmp(c: char) -> bool {
    (c as u32) <= 0xFFFF
}

async fn weights(db: &DatabaseConnection, chars: &[char]) -> Result<Vec<(char, u32)>, InventoryError> {
    let columns = vec![format!("WEIGHT_STRING(CONVERT(? USING utf8mb4) COLLATE {NAME_COLLATION})"); chars.len()];
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        format!("SELECT {}", columns.join(", ")),
        chars.iter().map(|c| c.to_string().into()),
    );
    let row = db
        .query_one_raw(stmt)
        .await
        .map_err(store_err)?
        .ok_or_else(|| InventoryError::Store(anyhow::anyhow!("WEIGHT_STRING returned no row")))?;
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let weight: Option<Vec<u8>> = row.try_get_by_index(i).map_err(store_err)?;
            Ok((c, code_of_weight(&weight.unwrap_or_default())))
        })
        .collect()
}

/// FNV-1a, folded to a non-zero 21-bit code.
fn code_of_weight(weight: &[u8]) -> u32 {
    let hash = weight.iter().fold(0x811c_9dc5_u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    nonzero((hash ^ (hash >> CODE_BITS)) & CODE_MASK)
}

/// Outside the BMP the collation's `LIKE` compares code points (every such character weighs
/// the same, but `LIKE` still tells them apart), so the code point is the fold.
fn code_of_supplementary(c: char) -> u32 {
    nonzero((c as u32).wrapping_mul(0x9e37_79b1) >> (32 - CODE_BITS))
}

fn nonzero(code: u32) -> u32 {
    if code == 0 { 1 } else { code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fit_21_bits_and_are_never_the_pad() {
        for weight in [&b""[..], b"\x0e\x33", b"\xfb\xc1\xac\x00", b"\x0f\xea\x0f\xea"] {
            let code = code_of_weight(weight);
            assert!(code != 0 && code <= CODE_MASK);
        }
        for c in ['😀', '😁', '\u{10000}', '\u{10FFFF}'] {
            let code = code_of_supplementary(c);
            assert!(code != 0 && code <= CODE_MASK);
        }
        assert_ne!(code_of_supplementary('😀'), code_of_supplementary('😁'));
        assert_eq!(code_of_weight(b"\x0e\x33"), code_of_weight(b"\x0e\x33"));
    }
}
