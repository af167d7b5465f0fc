//! The stand-in server: glues the transport to the backend, and serves HTTP.
//!
//! [`Hub`] is the transport's [`SocketHandler`]: for each request it sends `ack` at once,
//! runs the backend under a short synchronous lock (never held across `.await`), then
//! sends the response and fans pushes out, each push encoded once and shared by all its
//! recipients.

mod hub;
mod media;

pub use hub::Hub;

use crate::backend::{Backend, BackendConfig, Clock, SystemClock};
use crate::transport::{http as eio_http, Engine, TransportConfig};
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub backend: BackendConfig,
    pub transport: TransportConfig,
}

/// A running server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub engine: Arc<Engine>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT`, the SDK's `address`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The SDK's `upload_file`.
    pub fn upload_url(&self) -> String {
        format!("http://{}/resource", self.addr)
    }

    /// Stops accepting, closes every session, and waits for the server task.
    pub async fn shutdown(self) {
        self.engine.close_all();
        self.stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
    }
}

/// Binds `addr` and serves until shutdown, with the system clock.
pub async fn start(config: ServerConfig, addr: SocketAddr) -> std::io::Result<RunningServer> {
    start_with_clock(config, addr, Arc::new(SystemClock)).await
}

/// Binds `addr` and serves until shutdown, with the given clock.
pub async fn start_with_clock(
    config: ServerConfig,
    addr: SocketAddr,
    clock: Arc<dyn Clock>,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let mut backend = Backend::new(config.backend, clock);
    // get_resource URLs; a wildcard bind is reached on loopback (override with
    // `hub.with_backend(|b| b.set_public_url(..))`).
    let mut public = addr;
    if public.ip().is_unspecified() {
        public.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    backend.set_public_url(&format!("http://{public}"));
    let hub = Arc::new(Hub::new(backend));
    let engine = Engine::new(config.transport, hub.clone());
    hub.attach(&engine);
    let app = eio_http::router(engine.clone())
        .merge(media::router(hub.clone()))
        .fallback(not_found);
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        // Small frames back to back (ack, then response): without TCP_NODELAY the second
        // one waits for the peer's delayed ACK (~40 ms).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let result = axum::serve(listener, service)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "server stopped with an error");
        }
    });
    Ok(RunningServer {
        addr,
        hub,
        engine,
        stop,
        task,
    })
}

async fn not_found() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::NOT_FOUND, "not found\n")
}
