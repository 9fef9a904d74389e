//! `iamlet bench http`: one HTTP/1.1 request, built once, replayed at a fixed rate.
//!
//! This measures what a proxy in front of a service adds (Envoy with or without its ext_authz
//! filter): the request is pre-signed once by the caller (a SigV4 signature has no nonce and
//! stays valid 15 minutes), so every replay costs the server the same work and the generator
//! none. The client is a few lines over a TCP stream rather than a general HTTP client: it
//! writes the same bytes each time and reads one response (`Content-Length` or chunked),
//! keeping connections alive in a pool. HTTP/1.1 allows one request in flight per
//! connection, so a request that finds no idle connection opens one; the run reports how many
//! it opened.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::engine::{drive, Plan, Reply};
use super::report::{RunReport, RunSettings};
use super::BenchError;

/// A response head longer than this is refused (Envoy's default header limit is 60 KiB).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A response body longer than this is refused: the generator reads and drops it.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// What `iamlet bench http` runs.
#[derive(Debug, Clone)]
pub struct HttpRunConfig {
    /// `http://host:port/path?query` (plain HTTP only: the proxy under test is on loopback).
    pub url: String,
    /// The request method (`GET`).
    pub method: String,
    /// Headers sent with every request, as given (`Authorization`, `X-Amz-Date`, ...); a
    /// `Host` header here replaces the URL's authority.
    pub headers: Vec<(String, String)>,
    /// The run's name in reports and plots; default: the URL.
    pub label: Option<String>,
    /// Rate, warm-up, duration and in-flight limit.
    pub plan: Plan,
    /// A request not answered within this fails (`DeadlineExceeded`).
    pub timeout: Duration,
}

/// The connection target and the request's bytes, built once.
#[derive(Debug)]
struct Prepared {
    /// `host:port` to connect to.
    address: String,
    /// The whole request, head and (empty) body.
    request: Vec<u8>,
}

impl HttpRunConfig {
    fn prepare(&self) -> Result<Prepared, BenchError> {
        let usage = |why: &str| {
            Err(BenchError::Usage(format!(
                "invalid --url `{}`: {why}",
                self.url
            )))
        };
        let Some(rest) = self.url.strip_prefix("http://") else {
            return usage("expected http://host:port/path");
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return usage("expected http://host:port/path");
        }
        let address = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(BenchError::Usage(format!(
                "invalid --method `{}`: expected an upper-case HTTP method, as GET",
                self.method
            )));
        }
        let clean = |s: &str| !s.bytes().any(|b| b == b'\r' || b == b'\n');
        let mut head = format!("{} {path} HTTP/1.1\r\n", self.method);
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            head.push_str(&format!("host: {authority}\r\n"));
        }
        for (name, value) in &self.headers {
            if name.is_empty() || !clean(name) || name.contains(':') || !clean(value) {
                return Err(BenchError::Usage(format!(
                    "invalid --header `{name}`: expected `Name: value` on one line"
                )));
            }
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        Ok(Prepared {
            address,
            request: head.into_bytes(),
        })
    }

    /// The settings as reports show them (`connections` is filled in after the run).
    fn settings(&self, connections: usize) -> RunSettings {
        RunSettings {
            label: self.label.clone().unwrap_or_else(|| self.url.clone()),
            target: self.url.clone(),
            rate: self.plan.rate,
            duration_s: self.plan.duration.as_secs_f64(),
            warmup_s: self.plan.warmup.as_secs_f64(),
            connections,
            concurrency: self.plan.concurrency,
            mix: format!("http {} (one request replayed)", self.method),
            batch_size: 0,
        }
    }
}

/// Parses `Name: value` as `--header` takes it.
pub fn parse_header(text: &str) -> Result<(String, String), BenchError> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(BenchError::Usage(format!(
            "invalid --header `{}`: expected `Name: value`",
            crate::error::echo(text)
        ))),
    }
}

/// Idle keep-alive connections and the count of connections opened.
#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<Vec<BufReader<TcpStream>>>,
    opened: AtomicUsize,
}

impl Pool {
    async fn open(&self, address: &str) -> std::io::Result<BufReader<TcpStream>> {
        let stream = TcpStream::connect(address).await?;
        // One small write per request: Nagle would hold it for the previous ACK.
        stream.set_nodelay(true)?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(BufReader::new(stream))
    }
}

/// How one exchange ended, before classification.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    /// The connection may carry the next request.
    reusable: bool,
}

/// Runs `config`: checks the target answers once, then sends the schedule and reports.
pub async fn run(config: &HttpRunConfig) -> Result<RunReport, BenchError> {
    let prepared = Arc::new(config.prepare()?);
    let pool = Arc::new(Pool::default());
    // One request before the schedule, so an unreachable target is an error, not a run of
    // failures.
    let mut first = pool
        .open(&prepared.address)
        .await
        .map_err(|e| BenchError::Connect {
            target: config.url.clone(),
            detail: e.to_string(),
        })?;
    match exchange(&mut first, &prepared.request).await {
        Ok(r) if r.reusable => pool.idle.lock().push(first),
        Ok(_) => {}
        Err(e) => {
            return Err(BenchError::Connect {
                target: config.url.clone(),
                detail: e.to_string(),
            })
        }
    }
    let started_at = crate::policy::Timestamp::now().to_string();
    let timeout = config.timeout;
    let measurement = drive(&config.plan, |_| {
        let pool = Arc::clone(&pool);
        let prepared = Arc::clone(&prepared);
        async move {
            match tokio::time::timeout(timeout, send(&pool, &prepared)).await {
                Ok(reply) => reply,
                Err(_) => Reply::Failed("DeadlineExceeded".into()),
            }
        }
    })
    .await?;
    let opened = pool.opened.load(Ordering::Relaxed);
    Ok(RunReport::new(
        config.settings(opened),
        started_at,
        &measurement,
        None,
    ))
}

/// One request on an idle connection (or a new one) and its classification: 2xx allowed,
/// 403 denied, any other status a failure named `HTTP <status>`.
async fn send(pool: &Pool, prepared: &Prepared) -> Reply {
    let idle = pool.idle.lock().pop();
    let result = match idle {
        Some(mut conn) => match exchange(&mut conn, &prepared.request).await {
            Ok(r) => Ok((conn, r)),
            // The server may have closed an idle connection meanwhile: once more, on a new one.
            Err(_) => fresh(pool, prepared).await,
        },
        None => fresh(pool, prepared).await,
    };
    match result {
        Ok((conn, response)) => {
            if response.reusable {
                pool.idle.lock().push(conn);
            }
            classify(response.status)
        }
        Err(_) => Reply::Failed("Unavailable".into()),
    }
}

async fn fresh(
    pool: &Pool,
    prepared: &Prepared,
) -> std::io::Result<(BufReader<TcpStream>, Response)> {
    let mut conn = pool.open(&prepared.address).await?;
    let response = exchange(&mut conn, &prepared.request).await?;
    Ok((conn, response))
}

fn classify(status: u16) -> Reply {
    match status {
        200..=299 => Reply::Ok,
        403 => Reply::Denied,
        other => Reply::Failed(format!("HTTP {other}")),
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Writes `request` and reads one whole response from `conn`.
async fn exchange<S>(conn: &mut BufReader<S>, request: &[u8]) -> std::io::Result<Response>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    conn.get_mut().write_all(request).await?;
    let mut line = String::new();
    let mut head_bytes = 0usize;
    head_bytes += read_line(conn, &mut line).await?;
    // "HTTP/1.1 200 OK"
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| invalid("not an HTTP/1.x status line"))?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut reusable = version == "HTTP/1.1";
    loop {
        head_bytes += read_line(conn, &mut line).await?;
        if head_bytes > MAX_HEAD_BYTES {
            return Err(invalid("response head too long"));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("malformed response header"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            reusable = !value.eq_ignore_ascii_case("close");
        }
    }
    // 1xx, 204 and 304 have no body whatever their headers say.
    let bodiless = status < 200 || status == 204 || status == 304;
    if bodiless {
        return Ok(Response { status, reusable });
    }
    if chunked {
        loop {
            read_line(conn, &mut line).await?;
            let size = line.trim_end_matches(['\r', '\n']);
            let size = size.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size > MAX_BODY_BYTES {
                return Err(invalid("response body too long"));
            }
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    read_line(conn, &mut line).await?;
                    if line.trim_end_matches(['\r', '\n']).is_empty() {
                        return Ok(Response { status, reusable });
                    }
                }
            }
            discard(conn, size + 2).await?;
        }
    }
    match length {
        Some(n) if n > MAX_BODY_BYTES => Err(invalid("response body too long")),
        Some(n) => {
            discard(conn, n).await?;
            Ok(Response { status, reusable })
        }
        // Framed by the end of the connection: read it out; the connection is done.
        None => {
            let mut sink = tokio::io::sink();
            tokio::io::copy(&mut (&mut *conn).take(MAX_BODY_BYTES), &mut sink).await?;
            Ok(Response {
                status,
                reusable: false,
            })
        }
    }
}

/// Reads one line into `line` (cleared first); the end of the stream is an error here.
async fn read_line<S>(conn: &mut BufReader<S>, line: &mut String) -> std::io::Result<usize>
where
    S: tokio::io::AsyncRead + Unpin,
{
    line.clear();
    let n = (&mut *conn)
        .take(MAX_HEAD_BYTES as u64)
        .read_line(line)
        .await?;
    if n == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
    }
    Ok(n)
}

async fn discard<S>(conn: &mut BufReader<S>, n: u64) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut sink = tokio::io::sink();
    let copied = tokio::io::copy(&mut (&mut *conn).take(n), &mut sink).await?;
    if copied == n {
        Ok(())
    } else {
        Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
    }
}

#[cfg(test)]
mod tests;
