//! The stand-in server: glues the transport to the backend, and serves HTTP.
//!
//! [`Hub`] is the transport's [`SocketHandler`]: for each request it sends `ack` at once,
//! runs the backend under a short synchronous lock (never held across `.await`), then
//! sends the response and fans pushes out, each push encoded once and shared by all its
//! recipients. Every frame passes through the [`FaultLayer`].

mod admin;
mod hub;
mod media;

pub use hub::Hub;
#[doc(hidden)]
pub use media::parse_multipart_upload;

use crate::backend::{Backend, BackendConfig, Clock, OffsetClock};
use crate::faults::{FaultLayer, FaultSpec};
use crate::transport::{http as eio_http, Engine, Interceptor, TransportConfig};
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
    /// Fault rules active from the start.
    pub faults: Vec<FaultSpec>,
    /// Journal entries kept (0: no journal).
    pub journal_capacity: usize,
    /// Serve the admin API at `/__admin/`.
    pub admin: bool,
}

impl ServerConfig {
    pub fn new(backend: BackendConfig, transport: TransportConfig) -> Self {
        Self {
            backend,
            transport,
            faults: Vec::new(),
            journal_capacity: 10_000,
            admin: true,
        }
    }
}

/// A running server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub engine: Arc<Engine>,
    pub faults: Arc<FaultLayer>,
    pub clock: OffsetClock,
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

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad fault rule: {0}")]
    Fault(#[from] crate::faults::RuleError),
    #[error("bad initial state: {0}")]
    Seed(String),
}

/// Binds `addr` and serves until shutdown. Time is the system clock plus an offset that
/// the admin API and scenarios can advance.
pub async fn start(config: ServerConfig, addr: SocketAddr) -> Result<RunningServer, StartError> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let clock = OffsetClock::new();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let mut backend = Backend::try_new(config.backend.clone(), shared.clone())
        .map_err(|e| StartError::Seed(e.join("; ")))?;
    // get_resource URLs; a wildcard bind is reached on loopback.
    let mut public = addr;
    if public.ip().is_unspecified() {
        public.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let public_url = format!("http://{public}");
    backend.set_public_url(&public_url);
    let hub = Arc::new(Hub::new(backend));
    let faults = FaultLayer::new(config.journal_capacity);
    faults.replace(config.faults.clone())?;
    let interceptor: Arc<dyn Interceptor> = faults.clone();
    let engine = Engine::with_interceptor(config.transport.clone(), hub.clone(), Some(interceptor));
    hub.attach(&engine);
    faults.attach(&engine);
    let mut app = eio_http::router(engine.clone()).merge(media::router(hub.clone()));
    if config.admin {
        app = app.merge(admin::router(admin::AdminState {
            hub: hub.clone(),
            faults: faults.clone(),
            clock: clock.clone(),
            shared_clock: shared,
            initial: Arc::new(config.clone()),
            public_url,
        }));
    }
    let app = app.fallback(not_found);
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
        faults,
        clock,
        stop,
        task,
    })
}

async fn not_found() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::NOT_FOUND, "not found\n")
}
