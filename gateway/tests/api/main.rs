//! The gateway over real HTTP, in front of the real services (gRPC) on MariaDB and Redis.

mod auth;
mod breaker;
mod checkout;
mod coupons;
mod helpers;
mod malformed;
mod ops;
mod orders;
mod points;
mod products;
mod surge;
