#![doc = include_str!("../README.md")]
//!
//! # Crate layout
//!
//! | module | owns |
//! |---|---|
//! | [`error`] | AWS's error codes ([`error::AwsCode`]) with their HTTP status and fault: the one vocabulary every error uses |
//! | [`policy`] | the IAM policy language: parsing with AWS's errors, per-kind validation, compiled matchers |
//! | [`authz`] | the decision procedure across identity, boundary, session, resource, SCP, RCP and VPC endpoint policies |
//! | [`directory`] | tenants and their IAM entities, with IAM's validation, quotas and error codes |
//! | [`snapshot`] | tenants compiled into immutable snapshots, the atomic store, last-known-good files |
//! | [`sts`] | credentials: access keys, SigV4, signed session tokens, `AssumeRole*`, `GetSessionToken` |
//! | [`control_plane`] | durable tenant storage with an append-only change log (the audit trail) |
//! | [`sync`] | the sidecar's end of the snapshot stream: apply or refuse updates, boot from disk, readiness |
//! | [`sidecar`] | the sidecar process: boot, stream, local API |
//! | [`observe`] | Prometheus metrics and HTTP probes on a port of their own |
//! | [`telemetry`] | logs (plain or JSON) and OpenTelemetry traces over OTLP |
//! | [`tls`] | TLS and mutual TLS between sidecars and the control plane; tenants per client identity |
//! | [`simulate`] | the decision-vector format and its runner (`iamlet policy simulate`) |
//! | [`loadgen`] | `iamlet bench`: the open-loop load generator, the no-op server, latency plots |
//! | [`cli`] | the `iamlet` command line |
//! | [`proto`] | generated protobuf types, used only at the gRPC edge |
//!
//! The engine modules (`policy`, `authz`, `directory`, `snapshot`, `sts`) are synchronous and free of any async runtime, so
//! they can be embedded anywhere and benchmarked in isolation.

pub mod account;
pub mod authz;
pub mod cli;
pub mod client;
pub mod control_plane;
pub mod directory;
pub mod error;
pub mod grpc;
pub mod jose;
pub mod loadgen;
pub mod observe;
pub mod policy;
pub mod proto;
pub mod sidecar;
pub mod simulate;
pub mod snapshot;
pub mod sts;
pub mod sync;
pub mod telemetry;
pub mod tls;
