use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::CouponError;

const MAX_WON: i64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CouponId(i64);

impl CouponId {
    pub fn parse(raw: i64, field: &'static str) -> Result<Self, CouponError> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(CouponError::validation(field, format!("{field} must be a positive integer")))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserId(i64);

impl UserId {
    pub fn parse(raw: i64) -> Result<Self, CouponError> {
        if raw > 0 {
            Ok(Self(raw))
        } else {
            Err(CouponError::validation("userId", "userId must be a positive integer"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// How much a coupon takes off an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Discount {
    /// A fixed number of won, 1..=1,000,000,000.
    Fixed(i64),
    /// 1..=100 percent, optionally capped at `cap` won.
    Percent { percent: i64, cap: Option<i64> },
}

impl Discount {
    pub fn parse(kind: &str, value: i64, max_discount: Option<i64>) -> Result<Self, CouponError> {
        match kind {
            "FIXED" => {
                if !(1..=MAX_WON).contains(&value) {
                    return Err(CouponError::validation("discountValue", "a FIXED discount is 1..=1000000000 won"));
                }
                if max_discount.is_some() {
                    return Err(CouponError::validation("maxDiscount", "maxDiscount applies to PERCENT coupons only"));
                }
                Ok(Discount::Fixed(value))
            }
            "PERCENT" => {
                if !(1..=100).contains(&value) {
                    return Err(CouponError::validation("discountValue", "a PERCENT discount is 1..=100"));
                }
                if max_discount.is_some_and(|cap| !(1..=MAX_WON).contains(&cap)) {
                    return Err(CouponError::validation("maxDiscount", "maxDiscount is 1..=1000000000 won"));
                }
                Ok(Discount::Percent { percent: value, cap: max_discount })
            }
            _ => Err(CouponError::validation("discountType", "discountType must be FIXED or PERCENT")),
        }
    }

    /// The discount on an order of `total` won: FIXED takes at most the total; PERCENT
    /// rounds down (floor) and stops at its cap.
    pub fn apply(self, total: i64) -> i64 {
        let total = total.max(0);
        match self {
            Discount::Fixed(value) => value.min(total),
            Discount::Percent { percent, cap } => {
                let raw = ((i128::from(total) * i128::from(percent)) / 100) as i64;
                cap.map_or(raw, |cap| raw.min(cap))
            }
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Discount::Fixed(_) => "FIXED",
            Discount::Percent { .. } => "PERCENT",
        }
    }

    pub fn value(self) -> i64 {
        match self {
            Discount::Fixed(value) => value,
            Discount::Percent { percent, .. } => percent,
        }
    }

    pub fn cap(self) -> Option<i64> {
        match self {
            Discount::Fixed(_) => None,
            Discount::Percent { cap, .. } => cap,
        }
    }
}

/// When a coupon may be issued; an open end is unbounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueWindow {
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

impl IssueWindow {
    pub fn parse(starts_at: Option<DateTime<Utc>>, ends_at: Option<DateTime<Utc>>) -> Result<Self, CouponError> {
        if let (Some(s), Some(e)) = (starts_at, ends_at)
            && s >= e
        {
            return Err(CouponError::validation("issueEndsAt", "issueEndsAt must be after issueStartsAt"));
        }
        Ok(Self { starts_at, ends_at })
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.starts_at.is_none_or(|s| at >= s) && self.ends_at.is_none_or(|e| at < e)
    }
}

#[derive(Clone, Debug)]
pub struct NewCoupon {
    pub name: String,
    pub discount: Discount,
    pub total_quantity: i64,
    pub window: IssueWindow,
    pub valid_days: i32,
}

impl NewCoupon {
    pub fn parse(
        name: String,
        discount: Discount,
        total_quantity: i64,
        window: IssueWindow,
        valid_days: i32,
    ) -> Result<Self, CouponError> {
        if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(CouponError::validation("name", "name must be 1..=200 characters and not blank"));
        }
        if !(1..=10_000_000).contains(&total_quantity) {
            return Err(CouponError::validation("totalQuantity", "totalQuantity must be 1..=10000000"));
        }
        let valid_days = if valid_days == 0 { 30 } else { valid_days };
        if !(1..=3650).contains(&valid_days) {
            return Err(CouponError::validation("validDays", "validDays must be 1..=3650"));
        }
        Ok(Self { name, discount, total_quantity, window, valid_days })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    pub id: i64,
    pub name: String,
    pub discount: Discount,
    pub total_quantity: i64,
    pub issued_quantity: i64,
    pub window: IssueWindow,
    pub valid_days: i32,
    pub created_at: DateTime<Utc>,
}

impl Coupon {
    pub fn expires_at(&self, issued_at: DateTime<Utc>) -> DateTime<Utc> {
        issued_at + Duration::days(i64::from(self.valid_days))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserCouponStatus {
    Available,
    Used,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCoupon {
    pub id: i64,
    pub coupon_id: i64,
    pub user_id: i64,
    pub sequence: i64,
    pub status: UserCouponStatus,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub order_id: Option<String>,
    pub name: String,
    pub discount: Discount,
}

impl UserCoupon {
    /// AVAILABLE past its expiry reads as EXPIRED; the stored row is not rewritten for it.
    pub fn status_at(stored_used: bool, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> UserCouponStatus {
        match (stored_used, expires_at <= now) {
            (true, _) => UserCouponStatus::Used,
            (false, true) => UserCouponStatus::Expired,
            (false, false) => UserCouponStatus::Available,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_down_and_stops_at_the_cap() {
        let ten = Discount::parse("PERCENT", 10, None).unwrap();
        assert_eq!(ten.apply(78_999), 7_899);
        let capped = Discount::parse("PERCENT", 15, Some(5_000)).unwrap();
        assert_eq!(capped.apply(100_000), 5_000);
        assert_eq!(capped.apply(10_001), 1_500);
        let all = Discount::parse("PERCENT", 100, None).unwrap();
        assert_eq!(all.apply(1_000_000_000), 1_000_000_000);
    }

    #[test]
    fn fixed_never_exceeds_the_total() {
        let fixed = Discount::parse("FIXED", 3_000, None).unwrap();
        assert_eq!(fixed.apply(78_000), 3_000);
        assert_eq!(fixed.apply(2_000), 2_000);
    }

    #[test]
    fn discount_rules() {
        assert!(Discount::parse("FIXED", 0, None).is_err());
        assert!(Discount::parse("FIXED", 10, Some(5)).is_err());
        assert!(Discount::parse("PERCENT", 101, None).is_err());
        assert!(Discount::parse("PERCENT", 10, Some(0)).is_err());
        assert!(Discount::parse("BOGO", 1, None).is_err());
    }

    #[test]
    fn windows_are_half_open() {
        let now = Utc::now();
        let w = IssueWindow::parse(Some(now), Some(now + Duration::hours(1))).unwrap();
        assert!(w.contains(now));
        assert!(!w.contains(now + Duration::hours(1)));
        assert!(IssueWindow::parse(Some(now), Some(now)).is_err());
        assert!(IssueWindow::parse(None, None).unwrap().contains(now));
    }
}
