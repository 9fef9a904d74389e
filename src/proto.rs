//! Generated protobuf types of `proto/iamlet/v1`. Nothing outside the gRPC edge uses them:
//! each is converted once into a domain type.

#![expect(
    missing_docs,
    reason = "generated code: the proto comments are its documentation"
)]

/// The `iamlet.v1` package.
#[expect(
    clippy::allow_attributes,
    clippy::allow_attributes_without_reason,
    reason = "tonic's generated services carry their own `#[allow]`s, which we do not edit"
)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/iamlet.v1.rs"));
}

impl From<crate::snapshot::SnapshotVersion> for v1::Version {
    fn from(v: crate::snapshot::SnapshotVersion) -> Self {
        Self {
            epoch: v.epoch,
            seq: v.seq,
        }
    }
}

impl From<v1::Version> for crate::snapshot::SnapshotVersion {
    fn from(v: v1::Version) -> Self {
        let v1::Version { epoch, seq } = v;
        Self::new(epoch, seq)
    }
}

/// The encoded file descriptor set of every proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/iamlet_descriptor.bin"));
