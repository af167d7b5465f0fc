//! The bridge between sessions and the backend.

use crate::backend::{Backend, ConnId, Outcome};
use crate::protocol::{self, Code, Failure, Rid};
use crate::transport::{socketio, CloseReason, Engine, FrameKind, FrameTag, Socket, SocketHandler};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

/// Routes requests to the backend and pushes to sockets.
pub struct Hub {
    backend: Mutex<Backend>,
    sockets: RwLock<HashMap<ConnId, Arc<Socket>>>,
    engine: RwLock<Weak<Engine>>,
    /// Bumped (under the backend lock) by every access that may change the backend:
    /// the state file is rewritten only when it moved (`persist.rs`).
    generation: AtomicU64,
    /// Bumped when the whole backend is replaced (ids start over: caches of the saver
    /// keyed by msg_id are void).
    epoch: AtomicU64,
    /// Dedupe bounds (entries, bytes, ttl ms), re-applied to every replacement backend.
    dedupe_limits: Mutex<Option<(usize, usize, i64)>>,
}

impl Hub {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend: Mutex::new(backend),
            sockets: RwLock::new(HashMap::new()),
            engine: RwLock::new(Weak::new()),
            generation: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            dedupe_limits: Mutex::new(None),
        }
    }

    /// Bounds the dedupe cache of this backend and of every backend that replaces it.
    pub fn set_dedupe_limits(&self, max_entries: usize, max_bytes: usize, ttl_ms: i64) {
        *crate::lock::lock(&self.dedupe_limits) = Some((max_entries, max_bytes, ttl_ms));
        self.lock()
            .set_dedupe_limits(max_entries, max_bytes, ttl_ms);
    }

    pub(crate) fn attach(&self, engine: &Arc<Engine>) {
        *crate::lock::write(&self.engine) = Arc::downgrade(engine);
    }

    /// Runs `f` with the backend locked. Keep `f` short and synchronous.
    pub fn with_backend<R>(&self, f: impl FnOnce(&mut Backend) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Backend> {
        let guard = crate::lock::lock(&self.backend);
        self.generation.fetch_add(1, Ordering::Relaxed);
        guard
    }

    /// Runs `f` on the backend without marking it changed, with the generation and
    /// epoch read under the same lock (saving the state). Keep `f` short.
    pub(crate) fn read_backend<R>(&self, f: impl FnOnce(&Backend, u64, u64) -> R) -> R {
        let guard = crate::lock::lock(&self.backend);
        let generation = self.generation.load(Ordering::Relaxed);
        f(&guard, generation, self.epoch.load(Ordering::Relaxed))
    }

    /// The change counter (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn socket(&self, id: ConnId) -> Option<Arc<Socket>> {
        crate::lock::read(&self.sockets).get(&id).cloned()
    }

    /// Sends an outcome: the response (if any) on `socket`, then every push. `tag`: the
    /// request's ack tag, which the response's tag copies.
    fn deliver(
        &self,
        socket: &Arc<Socket>,
        event: &str,
        rid: &Rid,
        tag: FrameTag,
        outcome: Outcome,
    ) {
        if let Some(body) = &outcome.response {
            let tag = FrameTag {
                kind: FrameKind::Response,
                ..tag
            };
            let frame = match &outcome.response_json {
                Some(json) if !body.contains_key("rid") => {
                    protocol::response_frame_from_json(event, rid, json)
                }
                _ => protocol::response_frame(event, rid, body),
            };
            socket.send_event(frame.into(), &tag, body);
        }
        self.deliver_pushes(outcome.pushes);
    }

    /// `user` acts on another device (logged in on `platform`, held by no client): the
    /// request runs on a temporary session and the pushes it causes are delivered.
    /// Returns the response body (`None`: ack only).
    pub fn act_as_device(
        &self,
        user: &crate::backend::UserKey,
        platform: &str,
        event: &str,
        payload: Value,
    ) -> Option<serde_json::Map<String, Value>> {
        let mut backend = self.lock();
        let outcome = backend.act_as_on(user, platform, event, payload);
        // Delivered while the backend is locked, as for requests from sockets.
        self.deliver_pushes(outcome.pushes);
        outcome.response
    }

    fn deliver_pushes(&self, pushes: Vec<crate::backend::Push>) {
        for push in pushes {
            // Encoded once, shared by every recipient.
            let name = push.event.name();
            let frame: Arc<str> = match &push.json {
                Some(json) => socketio::event_frame_from_json(name, json),
                None => socketio::encode_event_frame(name, &push.payload),
            }
            .into();
            let tag = FrameTag::event(FrameKind::Push, name, None);
            let object = push.payload.as_object();
            // One read of the socket table for all the recipients. Sending never closes
            // a session on the spot (`Socket::send_with`), so no write waits on it here.
            let sockets = crate::lock::read(&self.sockets);
            for id in push.to {
                match sockets.get(&id) {
                    Some(s) => match object {
                        Some(o) => s.send_event(frame.clone(), &tag, o),
                        None => s.send_tagged(frame.clone(), &tag),
                    },
                    None => tracing::debug!(
                        conn = id,
                        event = name,
                        "push to a closed connection dropped"
                    ),
                }
            }
        }
    }
}

impl SocketHandler for Hub {
    fn on_connect(&self, socket: &Arc<Socket>) {
        crate::lock::write(&self.sockets).insert(socket.id, socket.clone());
        self.lock().connect(socket.id);
    }

    fn on_event(&self, socket: &Arc<Socket>, event: String, payload: Value) {
        let Value::Object(mut payload) = payload else {
            // protocol.md 5.5: the SDK may emit `null` before an upload finishes.
            tracing::debug!(conn = socket.id, event, "non-object payload ignored");
            return;
        };
        let Some(rid) = Rid::from_payload(&payload) else {
            tracing::warn!(conn = socket.id, event, "request without a valid rid");
            let body = Failure::new(
                Code::InvalidParameter,
                "rid must be an integer or a non-empty string",
            )
            .to_body();
            let tag = FrameTag::event(FrameKind::Response, &event, None);
            socket.emit_tagged(&event, &Value::Object(body), &tag);
            return;
        };
        let tag = FrameTag {
            kind: FrameKind::Ack,
            event: Some(event.as_str().into()),
            rid: Some(rid.tag_key()),
        };
        socket.send_tagged(protocol::ack_frame(&rid).into(), &tag);
        // Deliver while the backend is locked: queues are filled in the backend's order,
        // so a push can never overtake the login response it depends on. Sending into a
        // queue never waits.
        let mut backend = self.lock();
        let outcome = backend.handle(socket.id, &event, &rid, &mut payload);
        tracing::debug!(conn = socket.id, event, rid = rid.key(), code = ?outcome.code(), pushes = outcome.pushes.len(), "request handled");
        self.deliver(socket, &event, &rid, tag, outcome);
        let user = backend.conn_user(socket.id).map(|u| u.username.as_str());
        if !socket.label_is(user) {
            socket.set_label(user);
        }
        drop(backend);
    }

    fn on_close(&self, socket: &Arc<Socket>, reason: CloseReason) {
        crate::lock::write(&self.sockets).remove(&socket.id);
        self.lock().disconnect(socket.id);
        tracing::debug!(conn = socket.id, ?reason, "connection closed");
    }
}

impl Hub {
    /// Replaces the whole backend state (admin reset, scenario load). Every session is
    /// dropped first: their logins belong to the old state.
    pub fn replace_backend(&self, backend: Backend) {
        if let Some(engine) = self.engine() {
            for s in engine.sockets() {
                engine.close(&s, CloseReason::ServerClose, true);
            }
        }
        let mut backend = backend;
        let limits = *crate::lock::lock(&self.dedupe_limits);
        if let Some((entries, bytes, ttl)) = limits {
            backend.set_dedupe_limits(entries, bytes, ttl);
        }
        let mut guard = self.lock();
        *guard = backend;
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The engine this hub serves, while it runs.
    pub fn engine(&self) -> Option<Arc<Engine>> {
        crate::lock::read(&self.engine).upgrade()
    }
}

/// What a scenario load did to one live connection ([`Hub::replace_backend_keeping`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CarriedSession {
    pub conn: ConnId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Why it was closed (absent: kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Hub {
    /// Replaces the whole backend (scenario load), carrying each live connection over
    /// when the new state allows it (`backend::adopt`); the others are closed. Returns
    /// every connection with what became of it.
    pub fn replace_backend_keeping(&self, backend: Backend) -> Vec<CarriedSession> {
        use crate::backend::adopt::Adoption;
        let mut backend = backend;
        let limits = *crate::lock::lock(&self.dedupe_limits);
        if let Some((entries, bytes, ttl)) = limits {
            backend.set_dedupe_limits(entries, bytes, ttl);
        }
        let ids: Vec<ConnId> = {
            let sockets = crate::lock::read(&self.sockets);
            let mut ids: Vec<ConnId> = sockets.keys().copied().collect();
            ids.sort_unstable();
            ids
        };
        let mut report = Vec::new();
        let mut guard = self.lock();
        for id in ids {
            let Some(d) = guard.departing(id) else {
                continue;
            };
            let user = d.username().map(str::to_owned);
            let reason = match backend.adopt(id, d) {
                Adoption::Kept => None,
                Adoption::Closed(why) => Some(why),
            };
            report.push(CarriedSession {
                conn: id,
                user,
                reason,
            });
        }
        *guard = backend;
        self.epoch.fetch_add(1, Ordering::Relaxed);
        drop(guard);
        // Closed outside the lock: closing runs `on_close`, which takes it.
        if let Some(engine) = self.engine() {
            for r in report.iter().filter(|r| r.reason.is_some()) {
                if let Some(s) = self.socket(r.conn) {
                    engine.close(&s, CloseReason::ServerClose, true);
                }
            }
        }
        report
    }
}
