//! Compiles `protos/` with protox (pure Rust, so no system `protoc` is needed) and
//! writes the encoded descriptor set next to the generated code for gRPC reflection.

use std::path::PathBuf;

use protox::prost::Message;

const PROTOS: &[&str] = &[
    "mesh/saga/v1/saga.proto",
    "mesh/inventory/v1/inventory.proto",
    "mesh/coupon/v1/coupon.proto",
    "mesh/point/v1/point.proto",
    "mesh/payment/v1/payment.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=protos");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTOS, ["protos"])?;
    std::fs::write(out_dir.join("mesh_descriptor.bin"), descriptors.encode_to_vec())?;
    // Small starting buffers per call: see src/codec.rs.
    tonic_prost_build::configure().codec_path("crate::codec::SmallBufferCodec").compile_fds(descriptors)?;
    Ok(())
}
