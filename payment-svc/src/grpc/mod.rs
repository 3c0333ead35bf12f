//! The only tonic of payment-svc: the PaymentService it serves ([`server`]) and the
//! participants it calls ([`clients`]).

pub mod clients;
pub mod server;

pub use server::{PaymentGrpc, PaymentServiceServer};
