//! The decision cache's memory (issue 19, P8): fills a sidecar's decision cache to its default
//! 100,000 decisions with a mixed load on the demo tenant (`deploy/examples/demo-tenant.yaml`)
//! and reports the process's resident memory before and after, and the bytes per cached
//! decision.
//!
//! Run with `cargo bench --bench cache_memory`; results and method are in `benches/README.md`.
//! The load: callers by ARN (alice, bob, the reports-writer role), allowed and denied, four
//! actions, a region named in the context on a quarter of the requests, each request on a
//! resource of its own, so that every one is a miss and stays cached; usage is recorded as a
//! sidecar shipping it does, so each cached decision holds its usage entry.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark whose fixture does not load has nothing to measure"
)]
#![expect(clippy::print_stdout, reason = "the results are the program's output")]

use std::collections::HashMap;
use std::sync::Arc;

use iamlet::grpc::AuthorizerService;
use iamlet::proto::v1 as pb;
use iamlet::sidecar::decision_log::DecisionLog;
use iamlet::sidecar::{Api, CacheConfig, Usage, UsageConfig};

#[path = "support/demo.rs"]
#[expect(dead_code, reason = "this bench uses the store only")]
mod support;

/// Decisions the cache holds by default.
const ENTRIES: u64 = 100_000;

/// Resident bytes of this process, from `/proc/self/statm` (its second field, in pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm's resident field");
    // Every Linux this runs on has 4 KiB pages (x86_64, and aarch64's default).
    pages * 4096
}

fn request(n: u64) -> pb::AuthorizeRequest {
    let caller = match n % 3 {
        0 => "arn:aws:iam::111122223333:user/alice",
        1 => "arn:aws:iam::111122223333:user/bob",
        _ => "arn:aws:iam::111122223333:role/reports-writer",
    };
    let (action, resource) = match n % 4 {
        0 => (
            "s3:GetObject",
            format!("arn:aws:s3:::demo-data/home/alice/{n}.txt"),
        ),
        1 => (
            "s3:PutObject",
            format!("arn:aws:s3:::demo-data/home/bob/{n}.txt"),
        ),
        2 => (
            "s3:DeleteObject",
            format!("arn:aws:s3:::demo-audit-logs/{n}.log"),
        ),
        _ => (
            "s3:GetObject",
            format!("arn:aws:s3:::demo-data/reports/q4/{n}.csv"),
        ),
    };
    let mut context = HashMap::new();
    if n % 4 == 3 {
        context.insert(
            "aws:RequestedRegion".to_owned(),
            pb::ContextValue {
                value: Some(pb::context_value::Value::StringValue("us-east-1".into())),
            },
        );
    }
    pb::AuthorizeRequest {
        caller: Some(pb::authorize_request::Caller::PrincipalArn(caller.into())),
        action: action.into(),
        resource,
        context,
        ..pb::AuthorizeRequest::default()
    }
}

fn main() {
    let demo = support::demo("cache-memory");
    let usage = Arc::new(Usage::new(UsageConfig::default()));
    let api = Arc::new(
        Api::new(
            Arc::clone(&demo.store),
            &CacheConfig {
                decisions: ENTRIES,
                ..CacheConfig::default()
            },
            DecisionLog::off(),
        )
        .with_usage(usage),
    );
    let service = AuthorizerService::new(Arc::clone(&api));
    // The first decisions build what every later one shares (the clock's values, the usage
    // table's first entries, the allocator's arenas): measured from after them.
    let mut allowed = 0u64;
    for n in 0..1_000 {
        let answer = service.decide(&mut request(n)).expect("decided");
        allowed += u64::from(answer.decision == pb::Decision::Allow as i32);
    }
    let before_entries = api.decision_cache_stats().entries;
    let before = rss_bytes();
    let mut n = 1_000;
    while api.decision_cache_stats().entries < ENTRIES && n < 10 * ENTRIES {
        let answer = service.decide(&mut request(n)).expect("decided");
        assert!(!answer.cached, "request {n} is new: a miss");
        allowed += u64::from(answer.decision == pb::Decision::Allow as i32);
        n += 1;
    }
    let after = rss_bytes();
    let stats = api.decision_cache_stats();
    assert_eq!(stats.entries, ENTRIES, "the cache filled: {stats:?}");
    // Every cached decision still answers: a hit on one decided early and one decided last.
    for m in [1_000, n - 1] {
        let again = service.decide(&mut request(m)).expect("decided");
        assert!(again.cached, "request {m} answers from the cache");
    }
    let added = stats.entries - before_entries;
    let grown = after.saturating_sub(before);
    println!(
        "decisions: {n} ({allowed} allowed); cache entries: {} (+{added} measured)",
        stats.entries
    );
    println!(
        "rss: {:.1} MiB before, {:.1} MiB full; {:.0} bytes per cached decision",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        grown as f64 / added as f64,
    );
}
