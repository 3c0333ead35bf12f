//! A name query's matches ranked once in every sort order, so any of its pages is a slice.
//!
//! Nothing a listing orders by changes after a product is created (name, price, creation time
//! and id are fixed; only stock and version move), so within one catalog generation the order
//! of a query's matches is fixed too: computed once, it stays right until a product is created.

use crate::domain::ProductSort;
use crate::store::Match;

/// Ids kept per sort: deeper pages are read from MySQL directly.
pub const LIST_LIMIT: usize = 1_000;

pub const SORTS: [ProductSort; 5] =
    [ProductSort::Id, ProductSort::Name, ProductSort::PriceAsc, ProductSort::PriceDesc, ProductSort::Newest];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranked {
    pub total: u64,
    /// The first [`LIST_LIMIT`] ids in each order of [`SORTS`].
    lists: Vec<Vec<i64>>,
}

fn slot(sort: ProductSort) -> usize {
    SORTS.iter().position(|s| *s == sort).expect("every sort has a slot")
}

impl Ranked {
    /// `by_name`: every match, in the name sort's order (the collation's, which only MySQL
    /// knows); the other orders are sorted here.
    pub fn from_name_order(mut by_name: Vec<Match>) -> Self {
        let total = by_name.len() as u64;
        let mut lists = vec![Vec::new(); SORTS.len()];
        lists[slot(ProductSort::Name)] = by_name.iter().take(LIST_LIMIT).map(|m| m.id).collect();
        // The other orders reuse the one buffer: each only moves its first ids to the front.
        let mut top = |key: &dyn Fn(&Match) -> (i64, i64)| {
            if by_name.len() > LIST_LIMIT {
                by_name.select_nth_unstable_by_key(LIST_LIMIT - 1, |m| key(m));
            }
            let mut first = by_name[..by_name.len().min(LIST_LIMIT)].to_vec();
            first.sort_unstable_by_key(|m| key(m));
            first.iter().map(|m| m.id).collect::<Vec<_>>()
        };
        let created = |m: &Match| m.created_at.and_utc().timestamp_micros();
        lists[slot(ProductSort::Id)] = top(&|m| (m.id, 0));
        lists[slot(ProductSort::PriceAsc)] = top(&|m| (m.price, m.id));
        lists[slot(ProductSort::PriceDesc)] = top(&|m| (-m.price, -m.id));
        lists[slot(ProductSort::Newest)] = top(&|m| (-created(m), -m.id));
        Self { total, lists }
    }

    pub fn list(&self, sort: ProductSort) -> &[i64] {
        &self.lists[slot(sort)]
    }
}

/// The ids of the page at `offset` of a ranking kept as its first ids (`list`) of `total`,
/// or `None` when the page lies past the kept ids.
pub fn page_of(total: u64, list: &[i64], offset: u64, size: u64) -> Option<&[i64]> {
    let complete = list.len() as u64 == total;
    let end = offset.saturating_add(size);
    if end <= list.len() as u64 || complete {
        let start = (offset as usize).min(list.len());
        Some(&list[start..(end as usize).min(list.len())])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: i64, price: i64, second: i64) -> Match {
        Match { id, price, created_at: chrono::DateTime::from_timestamp(second, 0).unwrap().naive_utc() }
    }

    #[test]
    fn every_order_breaks_ties_the_way_the_sql_does() {
        // In name order: 3, 1, 2, 4.
        let ranked = Ranked::from_name_order(vec![at(3, 50, 10), at(1, 50, 30), at(2, 10, 30), at(4, 90, 20)]);
        assert_eq!(ranked.total, 4);
        assert_eq!(ranked.list(ProductSort::Name), [3, 1, 2, 4]);
        assert_eq!(ranked.list(ProductSort::Id), [1, 2, 3, 4]);
        assert_eq!(ranked.list(ProductSort::PriceAsc), [2, 1, 3, 4]);
        assert_eq!(ranked.list(ProductSort::PriceDesc), [4, 3, 1, 2]);
        assert_eq!(ranked.list(ProductSort::Newest), [2, 1, 4, 3]);
        assert_eq!(page_of(4, ranked.list(ProductSort::Id), 2, 20), Some(&[3, 4][..]));
        assert_eq!(page_of(4, ranked.list(ProductSort::Id), 40, 20), Some(&[][..]));
    }

    #[test]
    fn only_the_first_ids_are_kept_and_deeper_pages_say_so() {
        let matches: Vec<Match> = (1..=2_500).rev().map(|id| at(id, id % 7, id)).collect();
        let ranked = Ranked::from_name_order(matches);
        assert_eq!(ranked.total, 2_500);
        assert_eq!(ranked.list(ProductSort::Id).len(), LIST_LIMIT);
        assert_eq!(ranked.list(ProductSort::Id)[..3], [1, 2, 3]);
        assert_eq!(ranked.list(ProductSort::Newest)[..2], [2_500, 2_499]);
        assert!(page_of(2_500, ranked.list(ProductSort::Id), 980, 20).is_some());
        assert_eq!(page_of(2_500, ranked.list(ProductSort::Id), 990, 20), None);
        let cheap: Vec<i64> = ranked.list(ProductSort::PriceAsc).iter().take(3).copied().collect();
        assert_eq!(cheap, [7, 14, 21]);
    }
}
