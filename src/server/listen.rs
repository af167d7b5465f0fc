//! The accept loop: one HTTP/1.1 connection per task, with connection-level limits, and
//! the graceful shutdown sequence.
//!
//! `axum::serve` exposes neither hyper's header read timeout nor a connection limit, so
//! connections are served here with hyper's `http1::Builder` directly (the same engine
//! `axum::serve` uses underneath):
//! - `header_read_timeout` closes a connection that has not sent a complete request head
//!   in time: silent connections, header drippers, and idle keep-alive connections (hyper
//!   restarts the timer whenever it waits for the next request);
//! - a connection limit: each accepted connection holds a permit for its whole life,
//!   through a websocket upgrade, so established sessions keep working at the limit.
//!   At the limit, the oldest connection that has not sent a complete request yet is
//!   dropped to make room (a flood of silent connections cannot lock clients out);
//!   when every connection has sent a request, the new one is closed at once, with a
//!   rate-limited log line;
//! - `TCP_NODELAY`, `ConnectInfo` and upgrades (`with_upgrades`) as before.
//!
//! Shutdown: stop accepting; let requests already received be answered (bounded by
//! `shutdown_grace`); finish in-flight HTTP exchanges; close every session with a close
//! frame (or close packet); wait (bounded) for the connections to end.

use super::limits::Limits;
use crate::transport::Engine;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Logs at most one line per interval, with how many events it stands for.
struct RateLimitedLog {
    last_ms: AtomicU64,
    pending: AtomicU64,
    start: std::time::Instant,
}

impl RateLimitedLog {
    const EVERY_MS: u64 = 5_000;

    fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            start: std::time::Instant::now(),
        }
    }

    /// Counts one event; returns how many to report when a line is due.
    fn hit(&self) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let now = self.start.elapsed().as_millis() as u64 + Self::EVERY_MS;
        let last = self.last_ms.load(Ordering::Acquire);
        if now < last + Self::EVERY_MS {
            return None;
        }
        if self
            .last_ms
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        Some(self.pending.swap(0, Ordering::AcqRel).max(1))
    }
}

/// Connections that have not sent a complete request yet, oldest first: the ones
/// dropped to make room at the connection limit.
#[derive(Default)]
struct Unproven {
    next: AtomicU64,
    open: std::sync::Mutex<std::collections::BTreeMap<u64, CancellationToken>>,
}

impl Unproven {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, CancellationToken>> {
        crate::lock::lock(&self.open)
    }

    /// Registers a new connection; its token is cancelled if it is evicted.
    fn register(self: &Arc<Self>) -> Probation {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evict = CancellationToken::new();
        self.lock().insert(id, evict.clone());
        Probation {
            id,
            evict,
            all: self.clone(),
        }
    }

    /// Evicts the oldest connection still on probation; false if there is none.
    fn evict_oldest(&self) -> bool {
        match self.lock().pop_first() {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// A connection's place among the unproven ones, left when it sends a request or ends.
struct Probation {
    id: u64,
    evict: CancellationToken,
    all: Arc<Unproven>,
}

impl Probation {
    fn passed(&self) {
        self.all.lock().remove(&self.id);
    }
}

impl Drop for Probation {
    fn drop(&mut self) {
        self.passed();
    }
}

/// A TCP stream that holds a connection permit until it is dropped (after a websocket
/// upgrade, hyper hands this same stream to the websocket).
struct Counted {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then shuts down gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    engine: Arc<Engine>,
    stop: CancellationToken,
) {
    let mut limits = limits;
    limits.max_connections = limits.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = CancellationToken::new();
    accept_loop(&listener, &app, &limits, &permits, &graceful, &stop).await;
    drop(listener);
    shutdown(&engine, &limits, &permits, &graceful).await;
}

async fn accept_loop(
    listener: &TcpListener,
    app: &Router,
    limits: &Limits,
    permits: &Arc<Semaphore>,
    graceful: &CancellationToken,
    stop: &CancellationToken,
) {
    let refused = RateLimitedLog::new();
    let failed = RateLimitedLog::new();
    let unproven = Arc::new(Unproven::default());
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.cancelled() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                if let Some(n) = failed.hit() {
                    tracing::warn!(error = %e, failures = n, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = admit(permits, &unproven).await else {
            if let Some(n) = refused.hit() {
                tracing::warn!(
                    limit = limits.max_connections,
                    refused = n,
                    "connection limit reached: new connections are closed at once (limits.max_connections)"
                );
            }
            drop(tcp);
            continue;
        };
        // Small frames back to back (ack, then response): without TCP_NODELAY the second
        // one waits for the peer's delayed ACK (~40 ms).
        let _ = tcp.set_nodelay(true);
        let io = Counted {
            tcp,
            _permit: permit,
        };
        tokio::spawn(serve_conn(
            io,
            remote,
            app.clone(),
            limits.header_read_timeout,
            graceful.clone(),
            unproven.register(),
        ));
    }
}

/// A permit for a new connection: a free one, or the one of the oldest connection that
/// has not sent a request yet (evicted here). `None` when every connection has.
async fn admit(permits: &Arc<Semaphore>, unproven: &Unproven) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = permits.clone().try_acquire_owned() {
        return Some(p);
    }
    if !unproven.evict_oldest() {
        return None;
    }
    // The evicted connection's task drops it (and its permit) as soon as it runs.
    tokio::time::timeout(Duration::from_millis(500), permits.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// One HTTP/1.1 connection, upgrades included.
async fn serve_conn(
    io: Counted,
    remote: SocketAddr,
    app: Router,
    header_timeout: Duration,
    graceful: CancellationToken,
    probation: Probation,
) {
    let probation = Arc::new(probation);
    let evict = probation.evict.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        probation.passed();
        req.extensions_mut().insert(ConnectInfo(remote));
        let mut app = app.clone();
        async move { tower_service::Service::call(&mut app, req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = evict.cancelled() => {
            tracing::debug!(%remote, "connection without a request dropped to make room");
            return;
        }
        _ = graceful.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// Answers what was received, closes every session, waits for connections to end.
async fn shutdown(
    engine: &Arc<Engine>,
    limits: &Limits,
    permits: &Arc<Semaphore>,
    graceful: &CancellationToken,
) {
    let grace = limits.shutdown_grace;
    engine.drain(grace).await;
    graceful.cancel();
    engine.close_all();
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        let open = limits
            .max_connections
            .saturating_sub(permits.available_permits());
        tracing::info!(
            open,
            "shutdown: connections still open after the grace period"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_unproven_connection_is_evicted_first() {
        let all = Arc::new(Unproven::default());
        let (a, b, c) = (all.register(), all.register(), all.register());
        b.passed();
        assert!(all.evict_oldest());
        assert!(a.evict.is_cancelled() && !c.evict.is_cancelled());
        assert!(all.evict_oldest());
        assert!(c.evict.is_cancelled() && !b.evict.is_cancelled());
        assert!(!all.evict_oldest());
        drop((a, b, c));
        assert!(all.lock().is_empty());
    }

    #[test]
    fn rate_limited_log_reports_the_first_event() {
        let log = RateLimitedLog::new();
        assert_eq!(log.hit(), Some(1));
        assert_eq!(log.hit(), None);
        assert_eq!(log.hit(), None);
    }
}
