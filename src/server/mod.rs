//! The stand-in server: glues the transport to the backend, and serves HTTP.
//!
//! [`Hub`] is the transport's [`SocketHandler`]: for each request it sends `ack` at once,
//! runs the backend under a short synchronous lock (never held across `.await`), then
//! sends the response and fans pushes out, each push encoded once and shared by all its
//! recipients. Every frame passes through the [`FaultLayer`].

mod act;
mod admin;
pub(crate) mod admin_faults;
pub(crate) mod console;
pub(crate) mod events;
pub(crate) mod guard;
mod hub;
mod limits;
pub(crate) mod listen;
mod media;
pub mod network;
pub mod persist;
pub(crate) mod record;
mod sign;

pub use guard::AdminAccess;
pub use hub::Hub;
pub use limits::{default_max_connections, Limits, LimitsFile};
#[doc(hidden)]
pub use media::parse_multipart_upload;

use crate::backend::{Backend, BackendConfig, Clock, OffsetClock};
use crate::faults::{FaultLayer, FaultSpec};
use crate::transport::{http as eio_http, Engine, Interceptor, TransportConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
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
    /// The admin API's token, files root and accepted host names.
    pub admin_access: AdminAccess,
    /// Bytes of uploaded media per app (`MEDIA_QUOTA_BYTES` by default).
    pub media_quota_bytes: usize,
    /// Keep the state in this file across restarts (`serve --state`, docs/state.md).
    pub state: Option<std::path::PathBuf>,
    /// Connection, shutdown, journal and dedupe limits (docs/limits.md).
    pub limits: Limits,
    /// Write what happened as a scenario file here on shutdown (`serve --record`).
    pub record: Option<std::path::PathBuf>,
}

impl ServerConfig {
    pub fn new(backend: BackendConfig, transport: TransportConfig) -> Self {
        Self {
            backend,
            transport,
            faults: Vec::new(),
            journal_capacity: 10_000,
            admin: true,
            admin_access: AdminAccess::default(),
            media_quota_bytes: crate::backend::media::MEDIA_QUOTA_BYTES,
            state: None,
            limits: Limits::default(),
            record: None,
        }
    }
}

/// A running server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub engine: Arc<Engine>,
    pub faults: Arc<FaultLayer>,
    /// Judges what clients send (src/oracle/); sees frames through `faults`.
    pub oracle: Arc<crate::oracle::Oracle>,
    pub clock: OffsetClock,
    /// What `GET /__admin/record` and `--record` write (docs/console.md).
    pub recorder: record::Recorder,
    record: Option<std::path::PathBuf>,
    stop: CancellationToken,
    grace: Duration,
    task: tokio::task::JoinHandle<()>,
    persister: Option<persist::Persister>,
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

    /// Graceful shutdown, as on SIGTERM: stops accepting, lets requests already received
    /// be answered, closes every session with a close frame, and waits (bounded by
    /// twice `limits.shutdown_grace`, plus a margin) for the server task.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(self.grace * 2 + Duration::from_secs(1), self.task).await;
        if let Some(p) = self.persister {
            p.finish().await;
        }
        if let Some(path) = &self.record {
            let text = self.recorder.render(&self.hub, &self.faults);
            match crate::scenario::record::write_private(path, &text) {
                Ok(()) => tracing::info!(path = %path.display(), "recording written"),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "--record: cannot write")
                }
            }
        }
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
    #[error("{0}")]
    State(#[from] persist::StateError),
}

/// Takes the recording baseline now and again on every new journal (`DELETE
/// /__admin/journal`, reset, scenario load): a recording is the journal on top of the
/// state it started from. Weak: the fault layer must not keep the hub alive.
fn follow_journal(recorder: &record::Recorder, hub: &Arc<Hub>, faults: &FaultLayer) {
    recorder.baseline.capture(hub);
    let (weak_hub, baseline) = (Arc::downgrade(hub), recorder.baseline.clone());
    faults.on_journal_clear(move || {
        if let Some(hub) = weak_hub.upgrade() {
            baseline.capture(&hub);
        }
    });
}

/// Binds `addr` and serves until shutdown. Time is the system clock plus an offset that
/// the admin API and scenarios can advance.
pub async fn start(config: ServerConfig, addr: SocketAddr) -> Result<RunningServer, StartError> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let clock = OffsetClock::new();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let (mut backend, cache) = match &config.state {
        Some(path) => {
            let o = persist::open(path, &config.backend, shared.clone())?;
            tracing::info!(path = %path.display(), restored = o.restored, "state file");
            (o.backend, Some(o.cache))
        }
        None => (
            Backend::try_new(config.backend.clone(), shared.clone())
                .map_err(|e| StartError::Seed(e.join("; ")))?,
            None,
        ),
    };
    // get_resource URLs; a wildcard bind is reached on loopback.
    let mut public = addr;
    if public.ip().is_unspecified() {
        public.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let public_url = format!("http://{public}");
    backend.set_public_url(&public_url);
    backend.set_media_quota(config.media_quota_bytes);
    let limits = config.limits.clone();
    let hub = Arc::new(Hub::new(backend));
    hub.set_dedupe_limits(
        limits.dedupe_max_entries,
        limits.dedupe_max_bytes,
        limits.dedupe_ttl.as_millis() as i64,
    );
    let faults = FaultLayer::new(config.journal_capacity);
    faults.set_journal_bounds(limits.journal_bytes, limits.journal_frame_max);
    faults.replace(config.faults.clone())?;
    let oracle = Arc::new(crate::oracle::Oracle::new());
    faults.set_observer(oracle.clone());
    let interceptor: Arc<dyn Interceptor> = faults.clone();
    let engine = Engine::with_interceptor(config.transport.clone(), hub.clone(), Some(interceptor));
    hub.attach(&engine);
    faults.attach(&engine);
    let recorder = record::Recorder::new(public);
    if config.admin || config.record.is_some() {
        // Only a recording reads the baseline (GET /__admin/record, --record).
        follow_journal(&recorder, &hub, &faults);
    }
    let mut app = eio_http::router(engine.clone()).merge(media::router(hub.clone()));
    if config.admin {
        let guard = guard::Guard::new(addr, &config.admin_access);
        app = app.merge(admin::router(
            guard,
            admin::AdminState {
                hub: hub.clone(),
                faults: faults.clone(),
                clock: clock.clone(),
                shared_clock: shared,
                initial: Arc::new(config.clone()),
                public_url,
                files_root: config.admin_access.files_root.clone(),
                devices: act::Devices::new(),
                subscribers: Default::default(),
                recorder: recorder.clone(),
            },
        ));
        app = app.merge(console::router(guard::Guard::new(
            addr,
            &config.admin_access,
        )));
    }
    let app = app.fallback(not_found);
    let persister = config.state.clone().zip(cache).map(|(path, cache)| {
        persist::Persister::spawn(hub.clone(), path, persist::SAVE_INTERVAL, cache)
    });
    let stop = CancellationToken::new();
    let grace = limits.shutdown_grace;
    spawn_dedupe_sweep(&hub, limits.dedupe_sweep, stop.clone());
    let task = tokio::spawn(listen::serve(
        listener,
        app,
        limits,
        engine.clone(),
        stop.clone(),
    ));
    Ok(RunningServer {
        addr,
        hub,
        engine,
        faults,
        oracle,
        clock,
        recorder,
        record: config.record.clone(),
        stop,
        grace,
        task,
        persister,
    })
}

/// Expires dedupe answers every `every`, so an idle server frees them too (the backend
/// does no I/O and has no timers of its own).
fn spawn_dedupe_sweep(hub: &Arc<Hub>, every: Duration, stop: CancellationToken) {
    let hub = Arc::downgrade(hub);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let Some(hub) = hub.upgrade() else { return };
            hub.with_backend(|b| b.expire(b.now_ms()));
        }
    });
}

async fn not_found() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::NOT_FOUND, "not found\n")
}
