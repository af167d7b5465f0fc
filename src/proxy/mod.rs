//! `jmessage-mock proxy`: a fault-injecting pass-through in front of any server that
//! speaks the JMessage wire protocol (docs/proxy.md).
//!
//! Clients connect to the proxy exactly as to `serve` (websocket, polling, the upgrade):
//! the same transport [`Engine`] accepts them, with the same [`FaultLayer`] as its
//! interceptor, and a [`forward::Forwarder`] as its handler. For each client session the
//! proxy opens one upstream websocket session and forwards Socket.IO messages both ways;
//! Engine.IO pings are answered per side. Frames from the upstream reach the client
//! through the fault layer tagged as acks, responses and pushes, so every rule works as
//! in `serve`. Media uploads and downloads pass through on the same port.
//!
//! Layering: above transport and faults, beside server; never imports the backend.

mod admin;
pub mod cli;
pub(crate) mod forward;
mod media;
pub mod record;
pub mod upstream;

pub use upstream::{Upstream, UpstreamError};

use crate::faults::{FaultLayer, FaultSpec};
use crate::server::guard::Guard;
use crate::server::{AdminAccess, Limits};
use crate::transport::{http as eio_http, Engine, Interceptor, TransportConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything the proxy needs to start.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The server forwarded to (`ws[s]://host[:port]` or `http[s]://host[:port]`, optional
    /// path).
    pub upstream: String,
    /// The client-facing transport (ping interval and timeout, limits).
    pub transport: TransportConfig,
    /// Fault rules active from the start.
    pub faults: Vec<FaultSpec>,
    /// Journal entries kept (0: no journal).
    pub journal_capacity: usize,
    /// Serve the admin API (`/__admin/health`, `/faults`, `/network`, `/journal`,
    /// `/events`, `/record`, `/api`) and the console at `/__console/`; also keeps the
    /// recording that `GET /__admin/record` renders.
    pub admin: bool,
    pub admin_access: AdminAccess,
    /// Connection, shutdown and journal limits, as for `serve`.
    pub limits: Limits,
    /// Longest the upstream may take to open a session.
    pub connect_timeout: Duration,
    /// Write what went through as a scenario file here on shutdown (`--record`).
    pub record: Option<std::path::PathBuf>,
}

impl ProxyConfig {
    pub fn new(upstream: impl Into<String>) -> Self {
        Self {
            upstream: upstream.into(),
            transport: TransportConfig::default(),
            faults: Vec::new(),
            journal_capacity: 10_000,
            admin: true,
            admin_access: AdminAccess::default(),
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(10),
            record: None,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad fault rule: {0}")]
    Fault(#[from] crate::faults::RuleError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// A running proxy. Call [`RunningProxy::shutdown`] to stop it.
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub faults: Arc<FaultLayer>,
    /// The recording, when `record` was set or the admin API is on.
    pub recorder: Option<Arc<record::Recorder>>,
    record: Option<std::path::PathBuf>,
    stop: CancellationToken,
    grace: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl RunningProxy {
    /// `http://127.0.0.1:PORT`, the SDK's `address`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, closes every session, waits for the server task (bounded), and
    /// writes the recording (`record`); a recording that cannot be written is an error.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.stop.cancel();
        let _ = tokio::time::timeout(self.grace * 2 + Duration::from_secs(1), self.task).await;
        match (&self.recorder, &self.record) {
            (Some(r), Some(path)) => r.write(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("--record {}: {e}", path.display()))
            }),
            _ => Ok(()),
        }
    }
}

/// Binds `addr` and forwards to the configured upstream until shutdown.
pub async fn start(config: ProxyConfig, addr: SocketAddr) -> Result<RunningProxy, ProxyError> {
    let upstream = Upstream::parse(&config.upstream)?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let faults = FaultLayer::new(config.journal_capacity);
    let limits = config.limits.clone();
    faults.set_journal_bounds(limits.journal_bytes, limits.journal_frame_max);
    faults.replace(config.faults.clone())?;
    // Kept whenever something reads it: `GET /__admin/record` or `--record`.
    let recorder = (config.admin || config.record.is_some())
        .then(|| Arc::new(record::Recorder::new(&upstream.url)));
    let forwarder = forward::Forwarder::new(
        upstream.clone(),
        &format!("http://{}", reachable(addr)),
        config.connect_timeout,
        recorder.clone(),
    );
    let interceptor: Arc<dyn Interceptor> = faults.clone();
    let engine = Engine::with_interceptor(
        config.transport.clone(),
        forwarder.clone(),
        Some(interceptor),
    );
    forwarder.attach(&engine);
    faults.attach(&engine);
    let mut app = eio_http::router(engine.clone()).merge(media::router(Arc::new(upstream.clone())));
    if let (true, Some(recorder)) = (config.admin, &recorder) {
        let guard = Guard::new(addr, &config.admin_access);
        app = app.merge(admin::router(
            guard,
            admin::ProxyAdmin {
                faults: faults.clone(),
                engine: engine.clone(),
                upstream: upstream.url.as_str().into(),
                recorder: recorder.clone(),
            },
        ));
        let pages = Guard::new(addr, &config.admin_access);
        app = app.merge(crate::server::console::router(pages));
    }
    let app = app.fallback(not_found);
    let stop = CancellationToken::new();
    let grace = limits.shutdown_grace;
    let task = tokio::spawn(crate::server::listen::serve(
        listener,
        app,
        limits,
        engine.clone(),
        stop.clone(),
    ));
    tracing::info!(%addr, upstream = %upstream.url, "proxy listening");
    Ok(RunningProxy {
        addr,
        engine,
        faults,
        recorder,
        record: config.record.clone(),
        stop,
        grace,
        task,
    })
}

/// Where a client can reach `addr`: an unspecified bind address (`0.0.0.0`, `::`) is
/// named as loopback, as `serve` does for its own URLs.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

async fn not_found() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::NOT_FOUND, "not found\n")
}
