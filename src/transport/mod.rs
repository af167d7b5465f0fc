//! Engine.IO 3 + Socket.IO 4 transport: packet codecs, websocket and long-polling
//! sessions, and the HTTP endpoint at `/socket.io/`.
//!
//! Framing knows nothing about JMessage: it hands decoded Socket.IO events to a
//! [`SocketHandler`] and sends whatever frames the layer above gives it. Every frame in
//! and out passes through [`Socket::send_frame`] and [`Engine::on_frame`], the single
//! points where faults are applied later.

pub mod engineio;
pub(crate) mod http;
pub(crate) mod intercept;
pub(crate) mod json;
mod session;
mod signal;
pub mod socketio;
mod websocket;

pub use intercept::{Action, FrameKind, FrameTag, InboundFrame, Interceptor, Object};
pub use session::{CloseReason, Engine, Socket, TransportKind};

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Transport settings (protocol.md 1.3, 1.4).
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Sent in the open packet; the client pings this long after each pong.
    pub ping_interval: Duration,
    /// Sent in the open packet; the server closes a session that has not pinged within
    /// `ping_interval + ping_timeout`.
    pub ping_timeout: Duration,
    /// Largest accepted websocket message or polling POST body, in bytes.
    pub max_payload: usize,
    /// Advertise `"upgrades":["websocket"]` to polling clients.
    pub allow_upgrades: bool,
    /// How long a polling GET is held open with nothing to send before a `noop`.
    pub poll_hold: Duration,
    /// Most frames a session's outbound queue holds; one more drops the session (a slow
    /// consumer).
    pub max_queue_frames: usize,
    /// Most bytes a session's outbound queue holds (a frame alone in an empty queue is
    /// always accepted); more drops the session.
    pub max_queue_bytes: usize,
    /// Longest one websocket write may take before the session is dropped.
    pub write_timeout: Duration,
    /// Longest a polling-to-websocket upgrade (`2probe` ... `5`) may take; also, a new
    /// session that has sent no frame is closed `ping_interval` + this (at most
    /// `ping_timeout`) after it opened.
    pub handshake_timeout: Duration,
    /// Longest a polling POST body may take to arrive.
    pub body_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(60_000),
            max_payload: 1_000_000,
            allow_upgrades: true,
            poll_hold: Duration::from_millis(25_000),
            max_queue_frames: 10_000,
            max_queue_bytes: 16 * 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// What the layer above the transport implements.
pub trait SocketHandler: Send + Sync + 'static {
    /// A session completed its handshake (the open packet and `40` are queued).
    fn on_connect(&self, socket: &Arc<Socket>);
    /// A Socket.IO EVENT on the root namespace: its name and first argument.
    fn on_event(&self, socket: &Arc<Socket>, event: String, payload: Value);
    /// The session ended; called exactly once per connected session.
    fn on_close(&self, socket: &Arc<Socket>, reason: CloseReason);
    /// Sees the text of every Engine.IO `message` packet (after interception, before it
    /// is decoded); returning true means the handler took it and the engine does nothing
    /// more with it (a forwarding proxy passes frames on untouched, even undecodable
    /// ones). The default takes nothing.
    fn on_raw_message(&self, _socket: &Arc<Socket>, _data: &str) -> bool {
        false
    }
}
