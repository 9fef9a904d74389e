//! A minimal HTTP/1.1 keep-alive client and an open-loop rate meter, shared by the benches
//! of the HTTP edges (`authzen`, `sts_query`) through `#[path]`, as each bench is a crate of
//! its own.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Requests in flight at once, per edge, for the rate: enough to keep the one core busy.
pub(crate) const CONCURRENCY: usize = 16;

/// A minimal HTTP/1.1 keep-alive client: one request at a time on one connection.
pub(crate) struct Http {
    stream: BufReader<TcpStream>,
}

impl Http {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// Sends `request`; the status and body of the answer.
    pub(crate) async fn call(&mut self, request: &[u8]) -> (u16, String) {
        self.stream
            .get_mut()
            .write_all(request)
            .await
            .expect("write");
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status");
        let status = line[9..12].parse().expect("status code");
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("length");
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.expect("body");
        (status, String::from_utf8(body).expect("utf-8"))
    }
}

/// Runs `CONCURRENCY` client loops, each returning how many calls it completed; completed
/// calls per second.
pub(crate) async fn rate<F, Fut>(one: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = u64> + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| tokio::task::spawn_local(one(i)))
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("task");
    }
    done as f64 / started.elapsed().as_secs_f64()
}
