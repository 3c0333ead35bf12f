use super::CouponError;

/// A page of the coupon list: index and size (1..=100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    page: i64,
    size: i64,
}

impl PageRequest {
    pub const DEFAULT_SIZE: i64 = 20;
    pub const MAX_SIZE: i64 = 100;
    /// Ten million coupons deep at the largest size: beyond any real campaign list, and it
    /// keeps `page * size` from overflowing or asking MySQL to skip an absurd OFFSET.
    pub const MAX_PAGE: i64 = 100_000;

    /// A `size` of 0 is the wire's "not given": the default.
    pub fn parse(page: i64, size: i64) -> Result<Self, CouponError> {
        if !(0..=Self::MAX_PAGE).contains(&page) {
            return Err(CouponError::validation("page", format!("page must be 0..={}", Self::MAX_PAGE)));
        }
        let size = if size == 0 { Self::DEFAULT_SIZE } else { size };
        if !(1..=Self::MAX_SIZE).contains(&size) {
            return Err(CouponError::validation("size", format!("size must be 1..={}", Self::MAX_SIZE)));
        }
        Ok(Self { page, size })
    }

    pub fn size(self) -> i64 {
        self.size
    }

    pub fn offset(self) -> i64 {
        self.page * self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded() {
        assert_eq!(PageRequest::parse(0, 0).unwrap().size(), 20);
        assert_eq!(PageRequest::parse(3, 10).unwrap().offset(), 30);
        assert_eq!(PageRequest::parse(PageRequest::MAX_PAGE, 100).unwrap().offset(), 10_000_000);
        for (page, size, field) in [(-1, 20, "page"), (100_001, 20, "page"), (0, 101, "size"), (0, -1, "size")] {
            match PageRequest::parse(page, size) {
                Err(CouponError::Validation { field: f, .. }) => assert_eq!(f, field, "{page} {size}"),
                other => panic!("{page} {size}: {other:?}"),
            }
        }
    }
}
