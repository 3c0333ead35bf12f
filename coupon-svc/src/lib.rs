//! coupon-svc: limited coupons issued first come, first served. Exactly N copies, never two
//! to one user, positions 1..=N in admission order, then a clear "sold out" for everyone.
//!
//! Map:
//! - [`domain`]: coupons, discounts (FIXED, PERCENT with floor and cap), issue windows.
//! - [`store`]: MySQL rows (the record, with the limits as constraints), the Redis issue gate,
//!   the batched durable issue, and the barrier-guarded saga use/restore.
//! - [`service`]: the use cases: admit, write in batches, give back on failure, rebuild and
//!   reconcile the gate.
//! - [`sold_out`]: coupons MySQL holds every copy of, answered from memory without Redis.
//! - [`grpc`]: serves `mesh.coupon.v1.CouponService`.
//! - [`config`], [`startup`]: settings from `COUPON_*` and the wiring.

pub mod config;
pub mod domain;
pub mod grpc;
pub mod service;
pub mod sold_out;
pub mod startup;
pub mod store;
