#![doc = include_str!("../README.md")]
//!
//! # Crate layout
//!
//! Modules form layers, listed here from the bottom up: a module uses only modules of its own
//! layer or below, never one above (`layers.rs` checks every `crate::` path in `src/`).
//!
//! | layer | module | owns |
//! |---|---|---|
//! | 0 | [`error`] | AWS's error codes ([`error::AwsCode`]) with their HTTP status and fault: the one vocabulary every error uses |
//! | 0 | [`account`] | AWS account ids ([`account::AccountId`]), checked once |
//! | 1 | [`jose`] | JWK and JWKS parsing, compact JWS verification, issuer keyrings and the signed session token format |
//! | 2 | [`policy`] | the IAM policy language: parsing with AWS's errors, per-kind validation, compiled matchers, ARNs |
//! | 3 | [`authz`] | the decision procedure across identity, boundary, session, resource, SCP, RCP and VPC endpoint policies |
//! | 4 | [`directory`] | tenants and their IAM entities, with IAM's validation, quotas and error codes |
//! | 5 | [`snapshot`] | tenants compiled into immutable snapshots, the atomic store, last-known-good files, the tenant update wire format |
//! | 6 | [`sts`] | credentials: access keys, SigV4, web identity, `AssumeRole*`, `GetSessionToken` |
//! | 7 | [`control_plane`] | durable tenant storage with an append-only change log (the audit trail), the admin API's checks |
//! | 7 | [`sync`] | the sidecar's end of the snapshot stream: apply or refuse updates, boot from disk, readiness |
//! | 7 | [`sidecar`] | the sidecar process: boot, stream, local API |
//! | 7 | [`client`] | the admin API's client side: credentials files and profiles, SigV4 over an admin call |
//! | 8 | [`grpc`] | the gRPC edge: errors as `tonic::Status` |
//! | 9 | [`cli`] | the `iamlet` command line |
//! | 9 | [`observe`] | Prometheus metrics and HTTP probes on a port of their own |
//! | 9 | [`telemetry`] | logs (plain or JSON) and OpenTelemetry traces over OTLP |
//! | 9 | [`tls`] | TLS and mutual TLS between sidecars and the control plane; tenants per client identity |
//! | 9 | [`simulate`] | the decision-vector format and its runner (`iamlet policy simulate`) |
//! | 9 | [`loadgen`] | `iamlet bench`: the open-loop load generator, the no-op server, latency plots |
//! | 9 | [`proto`] | generated protobuf types, used only by the edges, `sync`, `control_plane`, `cli` and `loadgen` |
//!
//! The engine modules (`error`, `account`, `jose`, `policy`, `authz`, `directory`, `snapshot`,
//! `sts`) are synchronous and free of any async runtime and of protobuf (tokio, tonic, axum,
//! moka and prost are never named there), so they can be embedded anywhere and benchmarked in
//! isolation.

pub mod account;
pub mod authz;
pub mod cli;
pub mod client;
pub mod control_plane;
pub mod directory;
pub mod error;
pub mod grpc;
pub mod jose;
#[cfg(test)]
mod layers;
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
