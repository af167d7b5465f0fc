//! `GET /__admin/record` and `serve --record FILE`: what happened on this server, as a
//! scenario file that `check` accepts and `run` replays (docs/console.md, "Record").
//!
//! The writer is the proxy's ([`crate::scenario::record`]); this module feeds it from the
//! wire journal and gives it the fixtures: the state as it was when the journal started
//! (server start, `reset`, scenario load), taken with the `export-state` exporter. The
//! journal keeps secrets redacted, so a recorded `login`/`register` password is filled
//! back in with the user's stored MD5 from the current state.
//!
//! Requests a fault kept from the server (`error`, `drop`, `corrupt` on the way in) are
//! left out: the replay shows what the server did, and the file holds no fault rules.
//!
//! Limits: only connections whose handshake is still in the journal are recorded (a
//! session kept across a scenario load, or one whose start has rotated out of the
//! bounded journal, is left out); every client replays over websocket; a password change
//! (`updateSelfPwd`) replays with the redacted placeholder and is answered with an error.

use super::Hub;
use crate::faults::{Entry, FaultLayer};
use crate::scenario::record::Recording;
use crate::transport::socketio;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The fixtures at the start of the current journal.
#[derive(Default)]
pub struct Baseline {
    fixtures: Mutex<Value>,
}

impl Baseline {
    /// Takes the backend's state as the new starting point (call when the journal starts).
    pub fn capture(&self, hub: &Hub) {
        let x = hub.with_backend(|b| b.export_fixtures());
        let text = crate::backend::export::to_json(&x);
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        *self.fixtures.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    fn get(&self) -> Value {
        self.fixtures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The recording of `faults`' journal on top of `baseline`, as scenario YAML.
pub fn render(hub: &Hub, faults: &FaultLayer, baseline: &Baseline, origin: &str) -> String {
    let rec = Recording::new(origin);
    let passwords: Passwords = hub.with_backend(|b| {
        b.password_md5s()
            .into_iter()
            .map(|(app, user, md5)| ((app, user), md5))
            .collect()
    });
    let mut conns = Conns::default();
    for e in faults.journal(0) {
        feed(&rec, &e, &mut conns, &passwords);
    }
    rec.render(Some(&baseline.get()))
}

/// The event name and payload of a journalled Socket.IO event frame (`42[...]`).
fn event_of(frame: &str) -> Option<(String, Value)> {
    match socketio::decode(frame.strip_prefix('4')?).ok()? {
        socketio::SioPacket::Event { data, .. } => socketio::event_parts(data),
        _ => None,
    }
}

/// Stored password MD5s by (appkey, username).
type Passwords = HashMap<(String, String), String>;

/// The connections whose start is in the journal, and the app each one `init`ed.
#[derive(Default)]
struct Conns {
    started: HashSet<u64>,
    apps: HashMap<u64, String>,
}

fn feed(rec: &Recording, e: &Entry, conns: &mut Conns, passwords: &Passwords) {
    if e.conn == 0 {
        return;
    }
    if e.kind == "open" && e.dir == "out" {
        conns.started.insert(e.conn);
        rec.connect(e.conn, "websocket");
        return;
    }
    if !conns.started.contains(&e.conn) {
        return;
    }
    match (e.dir, e.kind) {
        ("in", "request") if kept_from_server(e) => {}
        ("in", "request") => {
            if let Some((event, mut payload)) = event_of(&e.frame) {
                if event == "c_init" {
                    if let Some(app) = payload.get("appkey").and_then(Value::as_str) {
                        conns.apps.insert(e.conn, app.to_owned());
                    }
                }
                let app = conns.apps.get(&e.conn).map(String::as_str).unwrap_or("");
                restore_password(&event, &mut payload, app, passwords);
                rec.request(e.conn, &event, &payload);
            }
        }
        ("out", "response") => {
            if let (Some(rid), Some((_, payload))) = (&e.rid, event_of(&e.frame)) {
                rec.response(e.conn, rid, &payload);
            }
        }
        ("out", "push") => {
            if let (Some(event), Some(user)) = (&e.event, &e.user) {
                rec.push(event, user);
            }
        }
        ("in", "disconnect") => rec.disconnect(e.conn),
        _ => {}
    }
}

/// Whether a fault kept this request from the server (answered with an error, dropped
/// or corrupted on the way in): such a request is not the server's doing and is left out.
fn kept_from_server(e: &Entry) -> bool {
    matches!(e.action, Some("error" | "drop" | "corrupt"))
}

/// A `login`/`register` password the journal redacted, back as the stored MD5 of that
/// user of the connection's app.
fn restore_password(event: &str, payload: &mut Value, app: &str, passwords: &Passwords) {
    if !matches!(event, "login" | "register") {
        return;
    }
    let Some(m) = payload.as_object_mut() else {
        return;
    };
    if m.get("password").and_then(Value::as_str) != Some(crate::faults::redact::PLACEHOLDER) {
        return;
    }
    let user = m.get("username").and_then(Value::as_str).unwrap_or("");
    if let Some(md5) = passwords.get(&(app.to_owned(), user.to_owned())) {
        m.insert("password".into(), Value::String(md5.clone()));
    }
}

/// The server's recording state, shared by the admin route and `--record`.
#[derive(Clone)]
pub struct Recorder {
    pub baseline: Arc<Baseline>,
    pub origin: String,
}

impl Recorder {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            baseline: Arc::default(),
            origin: format!("`jmessage-mock serve` at http://{addr}"),
        }
    }

    pub fn render(&self, hub: &Hub, faults: &FaultLayer) -> String {
        render(hub, faults, &self.baseline, &self.origin)
    }
}
