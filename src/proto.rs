//! Generated protobuf and gRPC code for the `ketenpoort.v1` package.

/// The `ketenpoort.v1` wire contract.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("ketenpoort.v1");

    /// Encoded descriptor set of every Ketenpoort proto file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ketenpoort_descriptor.bin"));
}
