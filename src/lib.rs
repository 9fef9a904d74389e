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
//! | 0 | [`observe`] | Prometheus metrics: lock-free counters and histograms, the exposition format |
//! | 1 | [`jose`] | JWK and JWKS parsing, compact JWS verification, issuer keyrings and the signed session token format |
//! | 2 | [`policy`] | the IAM policy language: parsing with AWS's errors, per-kind validation, compiled matchers, ARNs |
//! | 3 | [`authz`] | the decision procedure across identity, boundary, session, resource, SCP, RCP and VPC endpoint policies |
//! | 4 | [`directory`] | tenants and their IAM entities, with IAM's validation, quotas and error codes |
//! | 5 | [`snapshot`] | tenants compiled into immutable snapshots, the atomic store, last-known-good files, the tenant update wire format |
//! | 6 | [`sts`] | credentials: access keys, SigV4, web identity, `AssumeRole*`, `GetSessionToken` |
//! | 7 | [`net`] | accepted connections, bounded: caps, first-byte and idle timeouts, paced accept errors |
//! | 7 | [`tls`] | TLS and mutual TLS between sidecars and the control plane; tenants per client identity |
//! | 7 | [`telemetry`] | logs (plain or JSON) and OpenTelemetry traces over OTLP |
//! | 8 | [`control_plane`] | durable tenant storage with an append-only change log (the audit trail), the admin domain API ([`control_plane::Admin`]), the watch service's domain |
//! | 8 | [`sync`] | the sidecar's end of the snapshot stream: apply or refuse updates, boot from disk, readiness |
//! | 8 | [`sidecar`] | the sidecar's domain API ([`sidecar::Authorizer`], [`sidecar::SecurityTokenService`]), caches, decision log, boot |
//! | 8 | [`client`] | the admin API's client side: credentials files and profiles, SigV4 over an admin call |
//! | 9 | [`grpc`] | the gRPC edge: decodes once (`TryFrom`), calls the domain API, renders; errors as `tonic::Status` in one place |
//! | 9 | [`http`] | the HTTP edge (axum): probes and metrics, with limits and spans, where HTTP protocols are added |
//! | 10 | [`cli`] | the `iamlet` command line |
//! | 10 | [`simulate`] | the decision-vector format and its runner (`iamlet policy simulate`) |
//! | 10 | [`loadgen`] | `iamlet bench`: the open-loop load generator, the no-op server, latency plots |
//! | 10 | [`proto`] | generated protobuf types, used only by the edges, `sync`, `control_plane`, `cli` and `loadgen` |
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
pub mod http;
pub mod jose;
#[cfg(test)]
mod layers;
pub mod loadgen;
pub mod net;
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
