//! coupon-svc: limited coupon campaigns issued first come, first served (exactly N, one per user, in arrival order).
//!
//! Not built yet: this crate only names its gRPC contract ([`mesh_proto::coupon::v1`]) so the
//! workspace has the customer's layout. It has no binary and devstack does not start it;
//! it gains the shape of inventory-svc (domain, store, grpc, migration, tests) in its own issue.

pub use mesh_proto::coupon::v1 as proto;
