//! The request mix: which kind of call request `i` of a run is.

use std::fmt;
use std::str::FromStr;

use super::BenchError;

/// A kind of call the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// `Authorize` with the same request every time: after the first, a decision-cache hit.
    AuthorizeHit,
    /// `Authorize` with a resource no earlier request named: a decision-cache miss.
    AuthorizeMiss,
    /// `BatchAuthorize` of `--batch-size` requests.
    Batch,
    /// `AssumeRole` with the caller's credentials.
    AssumeRole,
}

impl RequestKind {
    /// Every kind, in the order a mix is written.
    pub const ALL: [Self; 4] = [
        Self::AuthorizeHit,
        Self::AuthorizeMiss,
        Self::Batch,
        Self::AssumeRole,
    ];

    /// The name used in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AuthorizeHit => "authorize-hit",
            Self::AuthorizeMiss => "authorize-miss",
            Self::Batch => "batch",
            Self::AssumeRole => "assume-role",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Weights of the request kinds, as `authorize-hit=70,authorize-miss=20,batch=5,assume-role=5`.
///
/// Request `i` gets its kind from a fixed permutation of `i`, so a run is reproducible and
/// the kinds are interleaved evenly instead of arriving in blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// The kinds with a non-zero weight, in the order given.
    weights: Vec<(RequestKind, u32)>,
    total: u64,
}

/// The mix of the default workload.
pub const DEFAULT_MIX: &str = "authorize-hit=70,authorize-miss=20,batch=5,assume-role=5";

impl Mix {
    /// A mix of one kind only.
    pub fn only(kind: RequestKind) -> Self {
        Self {
            weights: vec![(kind, 1)],
            total: 1,
        }
    }

    /// Parses `name=weight,...`; weights are whole numbers, at least one of them positive.
    pub fn parse(text: &str) -> Result<Self, BenchError> {
        let invalid = |why: String| BenchError::Usage(format!("invalid --mix `{text}`: {why}"));
        let mut weights: Vec<(RequestKind, u32)> = Vec::new();
        let mut seen = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, weight)) = part.split_once('=') else {
                return Err(invalid(format!("`{part}` is not NAME=WEIGHT")));
            };
            let kind = RequestKind::from_name(name.trim()).ok_or_else(|| {
                let names: Vec<_> = RequestKind::ALL.iter().map(|k| k.name()).collect();
                invalid(format!(
                    "unknown request kind `{}` (expected one of {})",
                    name.trim(),
                    names.join(", ")
                ))
            })?;
            let weight: u32 = weight.trim().parse().map_err(|_| {
                invalid(format!(
                    "the weight of {} must be a whole number, not `{}`",
                    kind.name(),
                    weight.trim()
                ))
            })?;
            if seen.contains(&kind) {
                return Err(invalid(format!("{} is given twice", kind.name())));
            }
            seen.push(kind);
            if weight > 0 {
                weights.push((kind, weight));
            }
        }
        let total: u64 = weights.iter().map(|&(_, w)| u64::from(w)).sum();
        if total == 0 {
            return Err(invalid("no request kind has a positive weight".into()));
        }
        Ok(Self { weights, total })
    }

    /// The kind of request `i`.
    pub fn kind_of(&self, i: u64) -> RequestKind {
        // A bijection of 0..total (multiplying by a unit modulo `total`) spreads each kind's
        // slots over the cycle: 70/20/5/5 does not send 70 hits and then 20 misses.
        let slot = (i % self.total).wrapping_mul(stride(self.total)) % self.total;
        let mut left = slot;
        for &(kind, weight) in &self.weights {
            if left < u64::from(weight) {
                return kind;
            }
            left -= u64::from(weight);
        }
        // Unreachable: the weights add up to `total`; the last kind is the safe answer.
        self.weights
            .last()
            .map_or(RequestKind::AuthorizeHit, |&(k, _)| k)
    }

    /// Whether the mix sends `kind` at all.
    pub fn includes(&self, kind: RequestKind) -> bool {
        self.weights.iter().any(|&(k, _)| k == kind)
    }
}

/// The largest number below `n * 0.618` coprime with `n` (1 for tiny cycles): multiplying by it
/// permutes `0..n` and scatters neighbours.
fn stride(n: u64) -> u64 {
    let start = (n as f64 * 0.618) as u64;
    (1..=start.max(1))
        .rev()
        .find(|&s| gcd(s, n) == 1)
        .unwrap_or(1)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl FromStr for Mix {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (kind, weight)) in self.weights.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={weight}", kind.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_mix_and_prints_it_back() {
        let mix = Mix::parse(DEFAULT_MIX).unwrap();
        assert_eq!(mix.to_string(), DEFAULT_MIX);
        assert!(mix.includes(RequestKind::AssumeRole));
        let only = Mix::parse("authorize-hit=1").unwrap();
        assert!(!only.includes(RequestKind::Batch));
        assert_eq!(only, Mix::only(RequestKind::AuthorizeHit));
    }

    #[test]
    fn zero_weights_are_dropped_and_spaces_tolerated() {
        let mix = Mix::parse(" authorize-hit = 3 , batch=0 ").unwrap();
        assert_eq!(mix.to_string(), "authorize-hit=3");
        assert!(!mix.includes(RequestKind::Batch));
    }

    #[test]
    fn invalid_mixes_are_usage_errors_that_say_why() {
        for (text, why) in [
            ("authorize-hit", "is not NAME=WEIGHT"),
            ("authorize=5", "unknown request kind `authorize`"),
            ("batch=-1", "must be a whole number, not `-1`"),
            ("batch=1.5", "must be a whole number"),
            ("batch=1,batch=2", "batch is given twice"),
            ("batch=0", "no request kind has a positive weight"),
            ("", "no request kind has a positive weight"),
        ] {
            let e = Mix::parse(text).unwrap_err();
            assert!(matches!(e, BenchError::Usage(_)), "{text}: {e:?}");
            assert!(e.to_string().contains(why), "{text}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn each_cycle_sends_exactly_the_weights_interleaved() {
        let mix = Mix::parse(DEFAULT_MIX).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..100 {
            *counts.entry(mix.kind_of(i)).or_insert(0) += 1;
        }
        assert_eq!(counts[&RequestKind::AuthorizeHit], 70);
        assert_eq!(counts[&RequestKind::AuthorizeMiss], 20);
        assert_eq!(counts[&RequestKind::Batch], 5);
        assert_eq!(counts[&RequestKind::AssumeRole], 5);
        // The next cycle repeats the first.
        assert!((0..100).all(|i| mix.kind_of(i) == mix.kind_of(i + 100)));
        // Interleaved: the first 20 requests are not all hits.
        assert!((0..20).any(|i| mix.kind_of(i) != RequestKind::AuthorizeHit));
    }

    #[test]
    fn stride_permutes_the_cycle() {
        for n in [1u64, 2, 3, 10, 100, 97, 1000] {
            let s = stride(n);
            let mut seen: Vec<u64> = (0..n).map(|i| i * s % n).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }
}
