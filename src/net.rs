//! Accepted connections, bounded: what every listener of iamlet (gRPC and HTTP, plain and
//! TLS) accepts through.
//!
//! - At most [`ConnectionLimits::max_connections`] connections are served at once; at the cap
//!   the listener stops accepting (new connections wait in the kernel's backlog), says so once
//!   in the log and counts it, and resumes when one closes.
//! - A connection that sends nothing within [`ConnectionLimits::first_byte`] (it never sends
//!   the HTTP/2 preface or a request line) is closed, and so is one that sends nothing for
//!   [`ConnectionLimits::idle`].
//! - An accept that fails (`EMFILE` when the process is out of descriptors) is logged, counted
//!   and retried after a pause, never in a busy loop.
//! - Nagle's algorithm is off: tonic sets `TCP_NODELAY` only on listeners it binds itself, and
//!   without it a small response waits for the peer's delayed ACK.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;

/// The bounds on a listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a new connection may stay silent.
    pub first_byte: Duration,
    /// How long an established connection may go without sending anything.
    pub idle: Duration,
}

impl Default for ConnectionLimits {
    /// 4,096 connections; 10 s to the first byte; 15 minutes idle (HTTP/2 keepalive pings,
    /// which every long-lived client sends, count as traffic).
    fn default() -> Self {
        Self {
            max_connections: 4096,
            first_byte: Duration::from_secs(10),
            idle: Duration::from_secs(15 * 60),
        }
    }
}

/// What a listener's connections did, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Times the listener reached its connection cap and stopped accepting.
    pub at_capacity: AtomicU64,
    /// Accepts that failed (out of descriptors, ...).
    pub accept_errors: AtomicU64,
    /// Connections closed for silence (no first byte, or idle).
    pub timed_out: AtomicU64,
}

/// The process's connection counters, shared by all its listeners.
pub fn stats() -> &'static Arc<ConnectionStats> {
    static STATS: std::sync::OnceLock<Arc<ConnectionStats>> = std::sync::OnceLock::new();
    STATS.get_or_init(Arc::default)
}

/// Appends the connection counters to a metrics page.
pub fn render_metrics(out: &mut String) {
    let s = stats();
    let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
    crate::observe::gauge(
        out,
        "iamlet_connections_open",
        "Connections open now, on every listener.",
        &[(String::new(), read(&s.open) as f64)],
    );
    crate::observe::counter(
        out,
        "iamlet_connections_accepted_total",
        "Connections accepted.",
        read(&s.accepted),
    );
    crate::observe::counter(
        out,
        "iamlet_connections_at_capacity_total",
        "Times a listener reached its connection cap and stopped accepting.",
        read(&s.at_capacity),
    );
    crate::observe::counter(
        out,
        "iamlet_connection_accept_errors_total",
        "Accepts that failed (out of file descriptors, ...).",
        read(&s.accept_errors),
    );
    crate::observe::counter(
        out,
        "iamlet_connections_timed_out_total",
        "Connections closed because the peer sent nothing for too long.",
        read(&s.timed_out),
    );
}

/// How long a failed accept waits before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often a repeated accept failure is logged.
const LOG_PERIOD: Duration = Duration::from_secs(10);

/// The connections `listener` accepts, within `limits`, counted in [`stats`].
pub fn accept(
    listener: TcpListener,
    limits: ConnectionLimits,
) -> ReceiverStream<io::Result<Bounded<TcpStream>>> {
    let (tx, rx) = mpsc::channel(16);
    let stats = Arc::clone(stats());
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        // Failed accepts repeat while the cause lasts: logged once per period, all counted.
        let mut last_logged: Option<Instant> = None;
        loop {
            let permit = match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    stats.at_capacity.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        max = limits.max_connections,
                        "the connection cap is reached: new connections wait until one closes"
                    );
                    tokio::select! {
                        () = tx.closed() => return,
                        permit = Arc::clone(&slots).acquire_owned() => match permit {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    }
                }
            };
            let accepted = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let bounded = Bounded::new(stream, permit, limits, Arc::clone(&stats));
                    if tx.send(Ok(bounded)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // Out of descriptors, most often: retrying at once would spin.
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if last_logged.is_none_or(|at| at.elapsed() >= LOG_PERIOD) {
                        last_logged = Some(Instant::now());
                        tracing::warn!(
                            error = %e,
                            "accepting a connection failed; retrying every {ACCEPT_BACKOFF:?}"
                        );
                    }
                    drop(permit);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// A connection that holds a slot of its listener and closes itself when silent too long.
#[derive(Debug)]
pub struct Bounded<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
    /// When the connection is closed unless it has read since: the first byte's deadline,
    /// then `idle` after a read. Moved forward only when it fires (see `poll_read`).
    deadline: Pin<Box<Sleep>>,
    /// The waker `deadline` holds, while it holds one: a read that finds nothing, from the
    /// task the deadline will wake, need not poll it again (see `poll_read`).
    armed: Option<Waker>,
    /// When the connection last read something, if it has.
    last_read: Option<Instant>,
    idle: Duration,
    stats: Arc<ConnectionStats>,
}

impl<S> Bounded<S> {
    fn new(
        inner: S,
        slot: OwnedSemaphorePermit,
        limits: ConnectionLimits,
        stats: Arc<ConnectionStats>,
    ) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        Self {
            inner,
            _slot: slot,
            deadline: Box::pin(tokio::time::sleep(limits.first_byte)),
            armed: None,
            last_read: None,
            idle: limits.idle,
            stats,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> Drop for Bounded<S> {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // A read notes the time only: resetting the timer on every read cost each
                // request a timer-wheel update. The deadline moves when it fires.
                if buf.filled().len() > before {
                    self.last_read = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => loop {
                // Polling the timer registers the waker again: ~120 instructions and two
                // atomic writes on every read that finds nothing, which is every request's
                // last. Once it holds this task's waker, it will wake this task when it fires,
                // so until then there is nothing to poll.
                if self.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
                    && !self.deadline.is_elapsed()
                {
                    return Poll::Pending;
                }
                // A task whose budget is spent gets `Pending` from the timer without its
                // waker registered (it is woken at once to yield instead): not armed then.
                let registers = tokio::task::coop::has_budget_remaining();
                if self.deadline.as_mut().poll(cx).is_pending() {
                    self.armed = registers.then(|| cx.waker().clone());
                    return Poll::Pending;
                }
                self.armed = None;
                match self.last_read.map(|at| at + self.idle) {
                    Some(next) if next > Instant::now() => self.deadline.as_mut().reset(next),
                    _ => {
                        self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the peer sent nothing for too long",
                        )));
                    }
                }
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Bounded<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn at_the_cap_new_connections_wait_until_one_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = accept(
            listener,
            ConnectionLimits {
                max_connections: 2,
                ..ConnectionLimits::default()
            },
        );
        let before = stats().at_capacity.load(Ordering::Relaxed);
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let first = incoming.next().await.unwrap().unwrap();
        let _second = incoming.next().await.unwrap().unwrap();
        let _c = TcpStream::connect(addr).await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(300), incoming.next()).await;
        assert!(
            third.is_err(),
            "a third connection was served beyond the cap"
        );
        assert!(stats().at_capacity.load(Ordering::Relaxed) > before);
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), incoming.next()).await;
        assert!(
            matches!(third, Ok(Some(Ok(_)))),
            "a freed slot admits the next"
        );
    }

    /// A listener whose connections must send a first byte within 10 s and then go no more
    /// than 60 s silent, and its address.
    async fn bounded_listener() -> (
        ReceiverStream<io::Result<Bounded<TcpStream>>>,
        std::net::SocketAddr,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnectionLimits {
            max_connections: 8,
            first_byte: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        (accept(listener, limits), addr)
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connections_are_closed() {
        let (mut incoming, addr) = bounded_listener().await;
        // Never a byte: closed after the first-byte bound.
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut server = incoming.next().await.unwrap().unwrap();
        let mut buf = [0u8; 16];
        // Each wait bounded, so that a deadline that never wakes the reader fails here
        // rather than hangs.
        let read = tokio::time::timeout(Duration::from_secs(20), server.read(&mut buf)).await;
        assert_eq!(read.unwrap().unwrap_err().kind(), io::ErrorKind::TimedOut);
        // Traffic keeps a connection open past the first-byte bound; silence then ends it.
        let mut talker = TcpStream::connect(addr).await.unwrap();
        let mut server = incoming.next().await.unwrap().unwrap();
        talker.write_all(b"hello").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 5);
        tokio::time::sleep(Duration::from_secs(30)).await;
        talker.write_all(b"again").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 5);
        let quiet_since = Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(120), server.read(&mut buf)).await;
        assert_eq!(read.unwrap().unwrap_err().kind(), io::ErrorKind::TimedOut);
        // Exactly `idle` after the last read: not at the first-byte deadline that was
        // pending when it read, nor later.
        let quiet = quiet_since.elapsed();
        assert!(
            quiet >= Duration::from_secs(60) && quiet < Duration::from_secs(61),
            "{quiet:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_wakes_whichever_task_reads_last() {
        let (mut incoming, addr) = bounded_listener().await;
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut server = incoming.next().await.unwrap().unwrap();
        let started = Instant::now();
        // This task reads once and gives up: the deadline holds its waker.
        let mut buf = [0u8; 16];
        let given_up = tokio::time::timeout(Duration::from_secs(1), server.read(&mut buf)).await;
        assert!(given_up.is_err(), "a silent connection read something");
        // Another task reads: the deadline must wake it, not the one that read before.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            server.read(&mut buf).await
        });
        let read = tokio::time::timeout(Duration::from_secs(120), reader).await;
        let read = read.expect("the deadline woke the reader").unwrap();
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "{waited:?}"
        );
    }
}
