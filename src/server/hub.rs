//! The bridge between sessions and the backend.

use crate::backend::{Backend, ConnId, Outcome};
use crate::protocol::{self, Code, Failure, Rid};
use crate::transport::{CloseReason, Engine, Socket, SocketHandler};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

/// Routes requests to the backend and pushes to sockets.
pub struct Hub {
    backend: Mutex<Backend>,
    sockets: RwLock<HashMap<ConnId, Arc<Socket>>>,
    engine: RwLock<Weak<Engine>>,
}

impl Hub {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend: Mutex::new(backend),
            sockets: RwLock::new(HashMap::new()),
            engine: RwLock::new(Weak::new()),
        }
    }

    pub(crate) fn attach(&self, engine: &Arc<Engine>) {
        *self.engine.write().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(engine);
    }

    /// Runs `f` with the backend locked. Keep `f` short and synchronous.
    pub fn with_backend<R>(&self, f: impl FnOnce(&mut Backend) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Backend> {
        self.backend.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn socket(&self, id: ConnId) -> Option<Arc<Socket>> {
        self.sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Sends an outcome: the response (if any) on `socket`, then every push.
    fn deliver(&self, socket: &Socket, event: &str, rid: &Rid, outcome: Outcome) {
        if let Some(body) = &outcome.response {
            socket.send_frame(protocol::response_frame(event, rid, body).into());
        }
        for push in outcome.pushes {
            // Encoded once, shared by every recipient.
            let frame: Arc<str> =
                crate::transport::socketio::encode_event_frame(push.event, &push.payload).into();
            for id in push.to {
                match self.socket(id) {
                    Some(s) => s.send_frame(frame.clone()),
                    None => tracing::debug!(
                        conn = id,
                        event = push.event,
                        "push to a closed connection dropped"
                    ),
                }
            }
        }
    }
}

impl SocketHandler for Hub {
    fn on_connect(&self, socket: &Arc<Socket>) {
        self.sockets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(socket.id, socket.clone());
        self.lock().connect(socket.id);
    }

    fn on_event(&self, socket: &Arc<Socket>, event: String, payload: Value) {
        let Value::Object(payload) = payload else {
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
            socket.emit(&event, &Value::Object(body));
            return;
        };
        socket.send_frame(protocol::ack_frame(&rid).into());
        // Deliver while the backend is locked: queues are filled in the backend's order,
        // so a push can never overtake the login response it depends on. Sending into a
        // queue never waits.
        let mut backend = self.lock();
        let outcome = backend.handle(socket.id, &event, &rid, &payload);
        tracing::debug!(conn = socket.id, event, rid = rid.key(), code = ?outcome.code(), pushes = outcome.pushes.len(), "request handled");
        self.deliver(socket, &event, &rid, outcome);
        drop(backend);
    }

    fn on_close(&self, socket: &Arc<Socket>, reason: CloseReason) {
        self.sockets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&socket.id);
        self.lock().disconnect(socket.id);
        tracing::debug!(conn = socket.id, ?reason, "connection closed");
    }
}

impl Hub {
    /// The engine this hub serves, while it runs.
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }
}
