//! `iamlet bench`: an open-loop load generator for a running sidecar, a no-op server to
//! measure the floor with, and a plot of the results.
//!
//! Requests go out on a fixed schedule (request `i` at `start + i / rate`) whatever the
//! server does, and each latency counts from the intended send time into an HDR histogram,
//! so a stalled server cannot hide its tail behind a generator that waited for it
//! (coordinated omission; see [`engine`]). This is the method of `PERFORMANCE.md` for P3, P4,
//! P5 (latency during updates) and P7.
//!
//! | module | owns |
//! |---|---|
//! | [`engine`] | the schedule, the in-flight limit, the latency histogram |
//! | [`mix`] | which kind of request (hit, miss, batch, `AssumeRole`) request `i` is |
//! | [`grpc`] | the requests over tonic, the connections, the churn task's admin writes |
//! | [`http`] | one pre-signed HTTP/1.1 request replayed (a proxy in front of a service) |
//! | [`search`] | `--find-max`: the highest rate within a p99 bound |
//! | [`report`] | a run's results as text and JSON |
//! | [`plot`] | percentile curves as SVG |
//! | [`noop`] | the no-op server |
//! | [`cerbos`] | `compare`: iamlet beside the Cerbos PDP, agreement first, then CPU per decision |

use std::path::PathBuf;

pub mod cerbos;
pub mod engine;
pub mod grpc;
pub mod http;
pub mod mix;
pub mod noop;
pub mod plot;
pub mod report;
pub mod search;

pub use engine::{drive, Measurement, Plan, Reply, Schedule};
pub use grpc::{run, ChurnConfig, Credentials, RunConfig};
pub use http::HttpRunConfig;
pub use mix::{Mix, RequestKind};
pub use noop::serve_noop;
pub use plot::plot_svg;
pub use report::RunReport;
pub use search::{find_max, SearchConfig, SearchOutcome};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The command line asks for something that cannot run (a rate of zero, an unknown
    /// request kind, no caller).
    #[error("{0}")]
    Usage(String),
    /// A target or the control plane cannot be reached.
    #[error("cannot reach {target}: {detail}")]
    Connect {
        /// Its URL.
        target: String,
        /// The transport's error, with its causes.
        detail: String,
    },
    /// The no-op server cannot listen or failed.
    #[error("the server failed: {0}")]
    Serve(String),
    /// A file cannot be read or written.
    #[error("cannot access `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A saved run is not a report `iamlet bench run --save` wrote.
    #[error("`{path}` is not a saved run: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Where the JSON went wrong.
        source: serde_json::Error,
    },
    /// The latency histogram cannot be made (never with the fixed bounds used here).
    #[error("cannot make the histogram: {0}")]
    Histogram(String),
    /// iamlet and the peer it is compared with decide a probe differently (or one of them
    /// fails it), so timing them would compare different work.
    #[error("the servers do not agree: {0}")]
    Disagreement(String),
    /// The async runtime cannot start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl BenchError {
    /// The exit status: 2 for a usage error, 1 for a run that could not be made.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            _ => 1,
        }
    }

    fn connect(target: &str, error: &tonic::transport::Error) -> Self {
        Self::Connect {
            target: target.to_owned(),
            detail: error_chain(error),
        }
    }
}

/// An error and its causes, `outer: inner: root` (tonic's own message is only "transport
/// error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let message = e.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = e.source();
    }
    text
}

/// Parses a duration as `10s`, `500ms`, `1.5s`, `2m` or `100us`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, BenchError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let invalid = || {
        BenchError::Usage(format!(
            "invalid duration `{text}`: expected a number with a unit, as 10s, 500ms or 2m"
        ))
    };
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(invalid()),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

/// Parses a rate in requests per second (`2000`, `1.5k` or `20k`), which must be positive.
pub fn parse_rate(text: &str) -> Result<f64, BenchError> {
    let t = text.trim().trim_end_matches("/s");
    let (number, scale) = match t.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => (t, 1.0),
    };
    let rate = number.parse::<f64>().map(|r| r * scale).map_err(|_| {
        BenchError::Usage(format!(
            "invalid rate `{text}`: expected requests per second, as 2000 or 20k"
        ))
    })?;
    engine::check_rate(rate)?;
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        for bad in ["", "s", "ten", "10 parsecs", "-1s", "1e400s"] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains("invalid duration"), "{e}");
        }
    }

    #[test]
    fn rates_take_a_k_suffix_and_must_be_positive() {
        assert_eq!(parse_rate("2000").unwrap(), 2000.0);
        assert_eq!(parse_rate("20k").unwrap(), 20_000.0);
        assert_eq!(parse_rate("1.5k/s").unwrap(), 1500.0);
        for bad in ["0", "-5", "fast", "", "inf", "NaN"] {
            let e = parse_rate(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().contains("invalid rate"), "{e}");
        }
    }

    #[test]
    fn error_chains_keep_the_cause() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = BenchError::Io {
            path: "x".into(),
            source: inner,
        };
        assert_eq!(error_chain(&outer), "cannot access `x`: refused");
        let wrapped = std::io::Error::other(outer);
        assert_eq!(error_chain(&wrapped), "cannot access `x`: refused");
    }
}
