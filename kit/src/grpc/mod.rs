//! gRPC plumbing shared by every service: a server with health, reflection, per-request
//! spans and metrics, graceful drain; clients with deadlines and trace propagation.

mod breaker;
mod client;
mod deadline;
mod idempotent;
mod metrics_layer;
mod server;

pub use breaker::{Breaker, BreakerService, BreakerSettings, BreakerState, CallError};
pub use client::{ClientSettings, MeshChannel, TraceContext, channel, channel_to};
pub use deadline::caller_timeout;
pub use idempotent::{idempotency_key, respond};
pub use metrics_layer::GrpcMetricsLayer;
pub use server::{BindError, GrpcServer, ServeError, ShutdownTiming, StreamLimit};
