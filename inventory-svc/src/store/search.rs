//! The name index: trigrams of folded names in `product_gram`, and the filter a name query
//! becomes.
//!
//! A name of n characters is indexed by n grams, one starting at each character: the codes of
//! it and the next two, padded with 0 past the end. So a product whose name contains the query
//! has, at the match, every trigram of the query (query of 3+ characters), or a gram that
//! starts with the query's codes (1 or 2 characters: a range of grams, because the gram key
//! keeps the first character in its top bits). The index only narrows: the rows it leaves are
//! checked with the same `LIKE` a scan would use, so the answer is the scan's answer.

use sea_orm::Value;

use super::fold::CODE_BITS;

/// Most query trigrams checked: more narrow little further and cost a probe each.
const MAX_QUERY_GRAMS: usize = 6;

fn gram(a: u32, b: u32, c: u32) -> u64 {
    (u64::from(a) << (2 * CODE_BITS)) | (u64::from(b) << CODE_BITS) | u64::from(c)
}

/// The distinct grams a name of these codes is indexed under.
pub fn name_grams(codes: &[u32]) -> Vec<u64> {
    let at = |i: usize| codes.get(i).copied().unwrap_or(0);
    let mut grams: Vec<u64> = (0..codes.len()).map(|i| gram(at(i), at(i + 1), at(i + 2))).collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// How a name query narrows the products before `LIKE` decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GramFilter {
    /// Products with every one of these grams.
    All(Vec<u64>),
    /// Products with a gram in this inclusive range.
    Range(u64, u64),
}

impl GramFilter {
    /// `None` for an empty query (no filter).
    pub fn for_query(codes: &[u32]) -> Option<Self> {
        let one_bits = (1u64 << CODE_BITS) - 1;
        match *codes {
            [] => None,
            [a] => Some(Self::Range(gram(a, 0, 0), gram(a, 0, 0) | (one_bits << CODE_BITS) | one_bits)),
            [a, b] => Some(Self::Range(gram(a, b, 0), gram(a, b, 0) | one_bits)),
            _ => {
                let mut all: Vec<u64> = codes.windows(3).map(|w| gram(w[0], w[1], w[2])).collect();
                all.sort_unstable();
                all.dedup();
                Some(Self::All(spread(all, MAX_QUERY_GRAMS)))
            }
        }
    }

    /// A derived table `c(product_id)` of the candidates, and its values. It is kept whole (a
    /// `DISTINCT`, or a `LIMIT` MySQL cannot merge away), so the grams narrow the candidates
    /// before a single product row is read: left to itself, the optimizer would read the row of
    /// every posting of the first gram and probe the other grams only afterwards.
    pub fn candidates(&self) -> (String, Vec<Value>) {
        match self {
            Self::Range(lo, hi) => (
                "(SELECT DISTINCT product_id FROM product_gram WHERE gram BETWEEN ? AND ?) c".into(),
                vec![(*lo).into(), (*hi).into()],
            ),
            Self::All(grams) => {
                let joins: String = (1..grams.len())
                    .map(|i| format!(" JOIN product_gram g{i} ON g{i}.product_id = g0.product_id AND g{i}.gram = ?"))
                    .collect();
                let sql = format!(
                    "(SELECT g0.product_id FROM product_gram g0{joins} WHERE g0.gram = ? LIMIT {}) c",
                    u64::MAX
                );
                let mut values: Vec<Value> = grams[1..].iter().map(|&g| g.into()).collect();
                values.push(grams[0].into());
                (sql, values)
            }
        }
    }
}

/// At most `n` of `items`, taken evenly from first to last.
fn spread(items: Vec<u64>, n: usize) -> Vec<u64> {
    if items.len() <= n {
        return items;
    }
    (0..n).map(|i| items[i * (items.len() - 1) / (n - 1)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_has_a_gram_starting_at_each_character() {
        let grams = name_grams(&[1, 2, 3, 4]);
        assert_eq!(grams, vec![gram(1, 2, 3), gram(2, 3, 4), gram(3, 4, 0), gram(4, 0, 0)]);
        assert_eq!(name_grams(&[5, 5, 5, 5]), vec![gram(5, 0, 0), gram(5, 5, 0), gram(5, 5, 5)]);
    }

    #[test]
    fn short_queries_are_ranges_that_hold_every_gram_they_start() {
        let Some(GramFilter::Range(lo, hi)) = GramFilter::for_query(&[2, 3]) else { panic!() };
        for g in name_grams(&[9, 2, 3]).into_iter().chain(name_grams(&[2, 3, 7, 1])) {
            if g >> CODE_BITS == gram(2, 3, 0) >> CODE_BITS {
                assert!((lo..=hi).contains(&g));
            }
        }
        assert!((lo..=hi).contains(&gram(2, 3, (1 << CODE_BITS) - 1)));
        assert!(!(lo..=hi).contains(&gram(2, 4, 0)));
        let Some(GramFilter::Range(lo, hi)) = GramFilter::for_query(&[2]) else { panic!() };
        assert!((lo..=hi).contains(&gram(2, 0, 0)) && (lo..=hi).contains(&gram(2, 99, 7)));
        assert!(!(lo..=hi).contains(&gram(3, 0, 0)) && !(lo..=hi).contains(&gram(1, 99, 7)));
        assert_eq!(GramFilter::for_query(&[]), None);
    }

    #[test]
    fn every_gram_of_a_long_query_is_in_a_name_that_contains_it() {
        let name = [7, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12];
        let query = &name[1..11];
        let indexed = name_grams(&name);
        let Some(GramFilter::All(wanted)) = GramFilter::for_query(query) else { panic!() };
        assert_eq!(wanted.len(), MAX_QUERY_GRAMS);
        assert!(wanted.iter().all(|g| indexed.contains(g)));
    }
}
