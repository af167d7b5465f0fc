//! jmessage-mock: a fake backend and conformance harness for the JMessage (Jiguang IM)
//! Web SDK V2.
//!
//! # The map
//!
//! The crate is cut into layers; each uses only the layers under it (the rules and a
//! picture are in `docs/architecture.md`, and `tests/layering.rs` fails on an arrow
//! that points up). Bottom to top:
//!
//! | module | what it is |
//! |---|---|
//! | [`transport`] | Engine.IO 3 / Socket.IO 4: packet codecs, websocket and long-polling sessions, the `/socket.io/` endpoint, the ASCII JSON writer. Knows nothing of JMessage. |
//! | [`protocol`] | The JMessage envelope on Socket.IO events: `rid`, ack, response, request names ([`protocol::Event`]) and push names ([`protocol::PushEvent`]), error codes, signing. |
//! | [`backend`] | The IM service as plain deterministic state: `Backend::handle(conn, event, rid, payload)` returns the response and the pushes. No I/O; its own clock. |
//! | [`client`] | A reference client with the SDK's retry semantics (ack timeout, resend with the same `rid`), over websocket or polling. |
//! | [`faults`] | Fault rules that drop, delay, duplicate, corrupt or answer frames, and the journal of every frame. |
//! | [`config`] | Config files and the defaults (default app, demo users) turned into backend settings. |
//! | [`oracle`] | Judges what clients send against the protocol's rules (ids in `docs/rules.md`). |
//! | [`scenario`] | Scenario files: fixtures, steps, fault rules and expectations, checked with line and column. |
//! | [`server`] | The glue: binds a port, joins transport and backend through the hub, admin API, media. |
//! | [`proxy`] | Pass-through to a real server with frame faults. |
//! | [`conformance`] | The runner: drives clients (builtin or driver subprocesses) through scenarios and grades them; reports. |
//!
//! # How a frame travels
//!
//! A websocket text frame reaches `transport` (`Engine::on_frame`), passes the fault
//! layer (an [`transport::Interceptor`]), is decoded into a Socket.IO event and handed to
//! the server's hub ([`server::Hub`], a [`transport::SocketHandler`]). The hub reads the
//! `rid`, acks at once, runs [`backend::Backend::handle`] under the backend's lock and
//! queues the response on the sender's socket and each push on its recipients' sockets;
//! every outbound frame passes the fault layer again before a socket's writer task sends
//! it. `docs/architecture.md` follows one `s_across_single_text` through the files.
//!
//! # Stable API and internals
//!
//! What an embedding test needs is re-exported at the root: [`start`], [`ServerConfig`]
//! and [`RunningServer`] for a mock server, [`Client`] and [`ClientConfig`] for a client,
//! [`FaultSpec`] for scripting faults, and [`run_scenario`] with [`load_scenario`] for the
//! runner. Those, and the modules' items they name, are the stable API. The top-level
//! modules stay public because the binary, the integration tests, benches and fuzz
//! targets reach inside them; submodules nothing outside reaches are `pub(crate)`
//! (`docs/architecture.md` lists which). Anything not reached through the re-exports is
//! internal and may change.
//!
//! # A mock server in a test
//!
//! Start a server on an ephemeral port, connect the reference client, and talk:
//!
//! ```
//! use jmessage_mock::{config, start, Client, ClientConfig, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let backend = config::backend_config(None, None, None); // default app, demo users
//! let server = start(ServerConfig::new(backend, Default::default()), "127.0.0.1:0".parse().unwrap())
//!     .await
//!     .expect("the server starts");
//!
//! let alice = Client::connect(&server.http_url(), ClientConfig::default()).await.unwrap();
//! alice.init(config::DEFAULT_APPKEY, config::DEFAULT_SECRET, 0).await.unwrap().ok().unwrap();
//! let name = config::DEMO_USERS[0].0;
//! let reply = alice.login(name, config::DEMO_PASSWORD).await.unwrap();
//! assert_eq!(reply.code(), 0);
//! server.shutdown().await;
//! # }
//! ```
//!
//! # Scripting a fault
//!
//! Fault rules are the same YAML or JSON that scenarios and the admin API take. Here
//! the first message a client sends is answered with error 880209 instead of being
//! delivered, and the journal shows which rule acted:
//!
//! ```
//! use jmessage_mock::{config, start, Client, ClientConfig, FaultSpec, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let backend = config::backend_config(None, None, None);
//! let server = start(ServerConfig::new(backend, Default::default()), "127.0.0.1:0".parse().unwrap())
//!     .await
//!     .unwrap();
//! let rule: FaultSpec = serde_json::from_value(serde_json::json!({
//!     "id": "busy",
//!     "when": {"event": ["s_across_single_text"]},
//!     "action": {"error": 880209},
//!     "times": 1,
//! }))
//! .unwrap();
//! server.faults.add(rule).expect("a valid rule");
//!
//! let (me, peer) = (config::DEMO_USERS[0].0, config::DEMO_USERS[1].0);
//! let c = Client::connect(&server.http_url(), ClientConfig::default()).await.unwrap();
//! c.init(config::DEFAULT_APPKEY, config::DEFAULT_SECRET, 0).await.unwrap();
//! c.login(me, config::DEMO_PASSWORD).await.unwrap();
//! assert_eq!(c.send_text(me, peer, "hi").await.unwrap().code(), 880209);
//! assert_eq!(c.send_text(me, peer, "hi again").await.unwrap().code(), 0);
//! assert!(server.faults.journal(0).iter().any(|e| e.fault.as_deref() == Some("busy")));
//! server.shutdown().await;
//! # }
//! ```
//!
//! # Running a scenario
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let yaml = "
//! name: login works
//! demo_data: true
//! steps:
//!   - connect: {client: a}
//!   - init: {client: a}
//!   - login: {client: a, username: alice, password: '123456'}
//!   - send_text: {client: a, to: bobby, text: hi}
//! ";
//! let scenario = jmessage_mock::scenario::parse(yaml, "inline.yaml").expect("valid");
//! let report = jmessage_mock::run_scenario(&scenario).await;
//! assert!(report.passed(), "{:?}", report.failure());
//! # }
//! ```

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

pub use client::{Client, ClientConfig};
pub use conformance::run as run_scenario;
pub use faults::FaultSpec;
pub use scenario::load as load_scenario;
pub use server::{start, RunningServer, ServerConfig};
