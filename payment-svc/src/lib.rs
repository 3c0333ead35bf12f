//! payment-svc: orders and payment, run as a saga (DESIGN.md, "The saga orchestrator"):
//! RESERVE_STOCK -> USE_COUPON -> PAY_POINTS -> RECORD_PAYMENT -> TRANSMIT_DATA. A failing
//! step undoes the ones before it; the saga log is durable, so a crash in the middle is
//! recovered by any replica; a per-user Redlock plus a fencing epoch keeps two drivers from
//! writing one user's sagas; an Idempotency-Key makes a retried checkout the same saga.
//!
//! Map:
//! - [`domain`]: orders, lines, statuses, steps, errors (no tonic, no SQL).
//! - [`store`]: the only SQL: orders, the saga log and its fenced writes, payments.
//! - [`saga`]: the driver (forward and backward), crash recovery, retry policy, user locks.
//! - [`platform`]: the HTTP client of the external data platform.
//! - [`service`]: the use cases, with Idempotency-Key handling.
//! - [`grpc`]: serves `mesh.payment.v1.PaymentService`; the participants' clients.
//! - [`config`], [`startup`]: settings from `PAYMENT_*` and the wiring.

pub mod config;
pub mod domain;
pub mod grpc;
pub mod platform;
pub mod saga;
pub mod service;
pub mod startup;
pub mod store;
