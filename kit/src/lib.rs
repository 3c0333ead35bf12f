//! Shared runtime of every mesh binary, written once so the four services look alike.
//!
//! Map of the crate:
//! - [`config`]: typed settings from `<PREFIX>_*` env vars; a bad value exits 64 before anything binds.
//! - [`telemetry`]: JSON logs via `tracing`, W3C trace context, OTLP export when configured, Prometheus.
//! - [`db`]: the MySQL pool of a service; creates its schema and runs its migrations at start.
//!   `pool_waits` (private) turns the pool's acquire events into `db_pool_acquire_wait_seconds`.
//! - [`cache`]: the Redis connection (a gate, cache or lock hint, never the record).
//! - [`grpc`]: server builder (health, reflection, spans, metrics, graceful drain) and client builder
//!   (deadlines, lazy reconnect, trace propagation, balancing over replicas).
//! - [`error`]: the stable error codes and the one table mapping them to gRPC and HTTP.
//! - [`metric_help`]: the `# HELP` text of every metric the mesh exports, in one table.
//! - [`invariants`]: the invariant watcher: named checks of a service's own data, a gauge per
//!   invariant and an ERROR line per violation, every `<P>_INVARIANT_CHECK_EVERY_SECS`.
//! - [`idempotency`]: Idempotency-Key claims, replays and purging, stored in MySQL.
//! - [`replicas`]: read replicas with a measured lag; reads fall back to the primary.
//! - [`redlock`]: Redlock over a Redis quorum, kept alive until released, and the MySQL fencing epoch.
//! - [`barrier`]: the saga barrier that makes every participant call idempotent (DESIGN.md).
//! - [`batch`]: group commit for hot keys (one transaction per batch of concurrent requests).
//! - [`saga`]: the parsed saga coordinates a participant call carries.
//! - [`shutdown`]: SIGTERM / Ctrl-C as a cancellation token.
//! - [`startup`]: the common start of every service (metrics, migrated schema, Redis, bound port).
//! - [`testing`]: isolation helpers for integration tests (random schema and key prefixes).

pub mod barrier;
pub mod batch;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod idempotency;
pub mod invariants;
pub mod metric_help;
mod pool_waits;
pub mod redlock;
pub mod replicas;
pub mod saga;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod testing;
pub mod time;

pub use error::{ErrorCode, ServiceError};
