//! The integration test binary: one `mod` per area.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking, with the value that made it fail"
)]

// Fresh directories and bounded waits, for every area below.
mod support;
// The corpus of other people's policies and decision vectors, copied under tests/corpus/.
mod corpus;
// The `iamlet` command line, driven as a user would.
mod cli;
// The control plane, the snapshot stream and sidecars over real gRPC on loopback.
mod distribution;
// Sidecars failing over between control-plane replicas, and a reconnect storm of 1,000.
mod failover;
// Health, readiness, metrics, reflection, draining and the staleness policy.
mod operations;
// Mutual TLS between sidecars and the control plane, with a test PKI made in the test.
mod tls;
// OpenTelemetry traces to an in-process OTLP collector.
mod telemetry;
// `iamlet bench`: the load generator against the no-op server, churn, bad input.
mod loadgen;
// A deliberately simple second evaluator, and property tests comparing it with the engine.
mod reference;
// The sidecar's Authorizer and STS with real credentials over gRPC: keys, sessions, revocation.
mod credentials;
// The admin API secured with IAM: root keys, users, role sessions, the operator, denials.
mod admin;
// Oversized and pathological requests at the edges: refused, bounded, never stalling others.
mod hardening;
// Issue 12's rules of AWS's, through `policy simulate` and a sidecar's Authorize.
mod exactness;
// A lost database, staleness across restarts, dead connections, and principal keys a caller
// may not supply.
mod resilience;
// Parsers of untrusted bytes against a committed crash corpus and random mutations (T28).
mod parsers;
// AWS's IAM Query API on the control plane's HTTP edge: signed forms, XML, paging, refusals.
mod iam_query;
// AWS's own protocols on the HTTP edges: the STS Query API with hand-signed SigV4 requests.
mod aws_protocols;
// Container credentials, EKS Pod Identity style: the HTTP endpoint, its caches and errors.
mod pod_identity;
// OpenID AuthZEN on the sidecar's HTTP edge: evaluations, batches, metadata, refusals.
mod authzen;
// The PostgreSQL store's command line without a database (tests/ha/run.sh has one).
mod ha;
// Envoy's ext_authz on a sidecar, asked as Envoy asks, with SigV4 requests signed here.
mod ext_authz;
// Issue 17: usage reports on the sync stream, last used and the credential report.
mod usage;
// The admin API's policy simulator against the engine, over the decision-vector corpus.
mod simulator;
// Access Analyzer-style policy findings through `iamlet policy validate` (issue 17 item 5).
mod findings;
// Issue 17: the sidecars' STS calls on the sync stream, LookupEvents and the trail export.
mod trail;

// Issue #17, item 6: unused access findings over the real processes.
mod unused;
// Issue #20: signed snapshots; an edited state file and a foreign key's snapshot are refused.
mod signed_snapshots;
// Issue #20, item 2: no access-key secret in a sidecar's state directory or on the stream.
mod sidecar_secrets;
// Issue #20, item 3: scoped issuing keys.
mod scoped_issuing;
// The console: sign-in, sessions, CSRF, XSS and the wizards over real HTTP (issue 21).
mod console;
