//! Coupons and their first-come issuance. No tonic, no SQL, no Redis.

mod coupon;
mod error;
mod page;

pub use coupon::{Coupon, CouponId, Discount, IssueWindow, NewCoupon, UserCoupon, UserCouponStatus, UserId};
pub use error::CouponError;
pub use page::PageRequest;
