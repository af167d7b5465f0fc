//! jmessage-mock: a fake backend and conformance harness for the JMessage (Jiguang IM)
//! Web SDK V2.
//!
//! Layers, bottom to top:
//! - [`transport`]: Engine.IO 3 / Socket.IO 4 codecs and sessions (websocket, polling).
//! - [`protocol`]: the JMessage request/ack/response envelope, events, error codes.
//! - [`backend`]: the IM service as deterministic state (`handle(conn, request)`).
//! - [`server`]: glue and HTTP serving; [`config`]: defaults and config files.
//! - [`client`]: a reference client with the SDK's retry semantics.

pub mod backend;
pub mod client;
pub mod config;
pub mod conformance;
pub mod faults;
#[doc(hidden)]
pub mod lock;
pub mod oracle;
pub mod protocol;
pub mod proxy;
pub mod scenario;
pub mod server;
pub mod transport;
