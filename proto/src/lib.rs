//! The gRPC contract of the mesh: one module per `mesh.<svc>.v1` package.
//!
//! Every participant call of the checkout saga carries a [`saga::v1::SagaStep`]
//! (saga id, step, action or compensation); see `kit::barrier` for what a
//! participant does with it.

#![allow(clippy::all, missing_docs)]

pub mod codec;

pub mod saga {
    pub mod v1 {
        tonic::include_proto!("mesh.saga.v1");
    }
}

pub mod inventory {
    pub mod v1 {
        tonic::include_proto!("mesh.inventory.v1");
    }
}

pub mod coupon {
    pub mod v1 {
        tonic::include_proto!("mesh.coupon.v1");
    }
}

pub mod point {
    pub mod v1 {
        tonic::include_proto!("mesh.point.v1");
    }
}

pub mod payment {
    pub mod v1 {
        tonic::include_proto!("mesh.payment.v1");
    }
}

/// Encoded `FileDescriptorSet` of every package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mesh_descriptor.bin"));

pub use prost_types::Timestamp;
