//! point-svc: point balances and their append-only ledger (no lost update, never negative).
//!
//! Not built yet: this crate only names its gRPC contract ([`mesh_proto::point::v1`]) so the
//! workspace has the customer's layout. It has no binary and devstack does not start it;
//! it gains the shape of inventory-svc (domain, store, grpc, migration, tests) in its own issue.

pub use mesh_proto::point::v1 as proto;
