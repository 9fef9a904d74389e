//! The gRPC edge: decodes each protobuf message once into domain types, calls the domain API,
//! and renders its answer. Errors become `tonic::Status` here and nowhere else.

mod status;

pub use status::{aws_error_code, grpc_code, to_status, ErrorDomain};
