//! Recording traffic as a scenario file that `check` accepts and `run` replays: the one
//! writer behind `proxy --record`, `serve --record` and `GET /__admin/record`
//! (docs/proxy.md, docs/console.md).
//!
//! What is kept, fed by connection id so it works from live frames (the proxy) or from
//! the journal (the server):
//! - fixtures: either given whole (the server knows its state at the start of the
//!   recording), or learned: each appkey seen in an `init` (with a placeholder secret: the
//!   real one never crosses the wire) and each user who logged in successfully and was not
//!   registered during the recording (with the `password_md5` the client sent);
//! - steps: per client session a `connect`, an `init`, every other request as a `request`
//!   step with its wire payload (the `rid` left out, sent once even when retried), each
//!   expecting the code that was answered, and a `disconnect` when the client left by
//!   itself. A request never answered is left out;
//! - expectations: one `frame` per (push event, user) that was sent.
//!
//! Bounded: at most [`MAX_RECORDED_STEPS`] steps and [`MAX_RECORDED_BYTES`] of request
//! payloads (JSON text); later requests are counted, not kept. Pushes are kept as distinct
//! (event, user) pairs, at most [`MAX_RECORDED_STEPS`] of them.

use crate::lock::lock;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

/// Most steps one recording keeps.
pub const MAX_RECORDED_STEPS: usize = 10_000;

/// Most bytes of request payloads (as JSON text) one recording keeps. With the admin API on
/// the proxy records all the time (docs/proxy.md, "Console"), and a payload may be as large
/// as the transport's `max_payload`, so the step count alone does not bound the memory.
pub const MAX_RECORDED_BYTES: usize = 32 * 1024 * 1024;

/// The secret written for learned apps (the mock signs `init` with it on replay).
pub const PLACEHOLDER_SECRET: &str = "recorded-by-proxy-placeholder-secret";

/// A recorded step; requests wait for their answer.
enum Step {
    Connect(u64, &'static str),
    Request {
        conn: u64,
        event: String,
        payload: Value,
        code: Option<i64>,
    },
    Disconnect(u64),
}

#[derive(Default)]
struct Log {
    steps: Vec<Step>,
    /// (conn, rid key) → index of its request step.
    open: HashMap<(u64, String), usize>,
    apps: BTreeSet<String>,
    /// (appkey, username, password MD5), for successful logins.
    users: Vec<(String, String, String)>,
    registered: BTreeSet<String>,
    pushes: BTreeSet<(String, String)>,
    dropped: usize,
    /// Bytes of request payloads kept (bounded by [`MAX_RECORDED_BYTES`]).
    bytes: usize,
}

/// One recording in progress.
pub struct Recording {
    /// Who recorded, for the file's header and name (e.g. "`jmessage-mock proxy` in front of URL").
    origin: String,
    log: Mutex<Log>,
}

/// A request's `rid` as a key (string or number).
pub fn rid_key(payload: &Value) -> Option<String> {
    match payload.get("rid")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Recording {
    pub fn new(origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            log: Mutex::new(Log::default()),
        }
    }

    fn push_step(log: &mut Log, step: Step) -> Option<usize> {
        if log.steps.len() >= MAX_RECORDED_STEPS {
            log.dropped += 1;
            return None;
        }
        log.steps.push(step);
        Some(log.steps.len() - 1)
    }

    /// A client connection opened on `transport` (`websocket` or `polling`).
    pub fn connect(&self, conn: u64, transport: &'static str) {
        Self::push_step(&mut lock(&self.log), Step::Connect(conn, transport));
    }

    /// A request the client sent (retries with a known rid are not recorded again).
    pub fn request(&self, conn: u64, event: &str, payload: &Value) {
        let Some(rid) = rid_key(payload) else { return };
        let mut log = lock(&self.log);
        if log.open.contains_key(&(conn, rid.clone())) {
            return;
        }
        let mut payload = payload.clone();
        if let Some(m) = payload.as_object_mut() {
            m.remove("rid");
        }
        let size = serde_json::to_string(&payload).map_or(0, |t| t.len()) + event.len();
        if log.bytes + size > MAX_RECORDED_BYTES {
            log.dropped += 1;
            return;
        }
        let step = Step::Request {
            conn,
            event: event.to_owned(),
            payload,
            code: None,
        };
        if let Some(i) = Self::push_step(&mut log, step) {
            log.bytes += size;
            log.open.insert((conn, rid), i);
        }
    }

    /// A push of `event` sent to `user`.
    pub fn push(&self, event: &str, user: &str) {
        let mut log = lock(&self.log);
        if log.pushes.len() < MAX_RECORDED_STEPS {
            log.pushes.insert((event.to_owned(), user.to_owned()));
        }
    }

    /// The response to request `rid` on `conn`.
    pub fn response(&self, conn: u64, rid: &str, payload: &Value) {
        let mut log = lock(&self.log);
        let Some(&i) = log.open.get(&(conn, rid.to_owned())) else {
            return;
        };
        let code = payload.get("code").and_then(Value::as_i64).unwrap_or(0);
        let learned = match &mut log.steps[i] {
            Step::Request {
                code: c @ None,
                event,
                payload,
                ..
            } => {
                *c = Some(code);
                Some((event.clone(), payload.clone()))
            }
            _ => None,
        };
        if let (Some((event, p)), 0) = (learned, code) {
            learn(&mut log, &event, &p);
        }
    }

    /// The client left by itself.
    pub fn disconnect(&self, conn: u64) {
        Self::push_step(&mut lock(&self.log), Step::Disconnect(conn));
    }

    /// The recording as scenario YAML (each entry a JSON flow mapping), with `fixtures`
    /// (a fixtures document as JSON) or, without, the apps and users learned.
    pub fn render(&self, fixtures: Option<&Value>) -> String {
        let log = lock(&self.log);
        let mut out = format!(
            "# Recorded by {}.\n# Replay against the mock: jmessage-mock run THIS_FILE\n# Holds the MD5 of each password that logged in: keep it private.\n",
            self.origin
        );
        let name = json!(format!("recorded by {}", self.origin.replace('`', "")));
        out.push_str(&format!("name: {name}\nfixtures:\n"));
        match fixtures.and_then(Value::as_object) {
            Some(f) => {
                for (key, items) in f {
                    let items = items.as_array().map(Vec::as_slice).unwrap_or(&[]);
                    list(&mut out, &format!("  {key}"), items, "  ");
                }
            }
            None => learned_fixtures(&log, &mut out),
        }
        let steps: Vec<Value> = log.steps.iter().filter_map(step_json).collect();
        list(&mut out, "steps", &steps, "");
        let expect: Vec<Value> = log
            .pushes
            .iter()
            .map(|(e, u)| json!({"frame": {"dir": "out", "kind": "push", "event": e, "user": u, "fields": {}}}))
            .collect();
        list(&mut out, "expect", &expect, "");
        if log.dropped > 0 {
            out.push_str(&format!(
                "# {} more steps were not recorded (limit {MAX_RECORDED_STEPS} steps, \
                 {MAX_RECORDED_BYTES} bytes of payloads)\n",
                log.dropped
            ));
        }
        out
    }

    /// Writes [`Recording::render`] to `path` ([`write_private`]).
    pub fn write(&self, path: &Path, fixtures: Option<&Value>) -> std::io::Result<()> {
        write_private(path, &self.render(fixtures))
    }
}

/// Writes a recording readable by its owner only: it holds password hashes (and, from
/// `serve`, the apps' secrets).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

/// Apps, users and registrations from successful requests.
fn learn(log: &mut Log, event: &str, p: &Value) {
    let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
    match event {
        "c_init" | "init" => {
            if let Some(appkey) = s("appkey") {
                log.apps.insert(appkey);
            }
        }
        "register" => {
            if let Some(u) = s("username") {
                log.registered.insert(u);
            }
        }
        "login" => {
            let appkey = log.apps.iter().next().cloned().unwrap_or_default();
            if let (Some(u), Some(pw)) = (s("username"), s("password")) {
                if !log.users.iter().any(|(a, n, _)| a == &appkey && n == &u) {
                    log.users.push((appkey, u, pw));
                }
            }
        }
        _ => {}
    }
}

fn learned_fixtures(log: &Log, out: &mut String) {
    let apps: Vec<Value> = log
        .apps
        .iter()
        .map(|a| json!({"appkey": a, "secret": PLACEHOLDER_SECRET}))
        .collect();
    list(out, "  apps", &apps, "  ");
    let users: Vec<Value> = log
        .users
        .iter()
        .filter(|(_, u, _)| !log.registered.contains(u))
        .map(|(a, u, pw)| {
            let mut m = Map::new();
            m.insert("username".into(), json!(u));
            m.insert("password".into(), json!(""));
            m.insert("password_md5".into(), json!(pw));
            if !a.is_empty() {
                m.insert("appkey".into(), json!(a));
            }
            Value::Object(m)
        })
        .collect();
    list(out, "  users", &users, "  ");
}

fn list(out: &mut String, key: &str, items: &[Value], indent: &str) {
    if items.is_empty() {
        out.push_str(&format!("{key}: []\n"));
        return;
    }
    out.push_str(&format!("{key}:\n"));
    for item in items {
        out.push_str(&format!("{indent}  - {item}\n"));
    }
}

fn client(conn: u64) -> String {
    format!("c{conn}")
}

fn step_json(s: &Step) -> Option<Value> {
    Some(match s {
        Step::Connect(conn, t) => {
            json!({"connect": {"client": client(*conn), "transport": t}})
        }
        Step::Request {
            conn, event, code, ..
        } if event == "c_init" || event == "init" => {
            json!({"init": {"client": client(*conn), "expect": {"code": (*code)?}}})
        }
        Step::Request {
            conn,
            event,
            payload,
            code,
        } => json!({"request": {"client": client(*conn), "event": event,
                    "payload": payload, "expect": {"code": (*code)?}}}),
        Step::Disconnect(conn) => json!({"disconnect": {"client": client(*conn)}}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_stop_at_the_byte_bound_and_are_counted() {
        let rec = Recording::new("test");
        let big = "x".repeat(1024 * 1024);
        let n = MAX_RECORDED_BYTES / big.len() + 3;
        for rid in 0..n {
            rec.request(1, "s_single_text", &json!({"rid": rid, "text": big}));
        }
        let log = lock(&rec.log);
        assert!(log.bytes <= MAX_RECORDED_BYTES, "{}", log.bytes);
        assert!(log.steps.len() < n);
        assert_eq!(log.steps.len() + log.dropped, n);
        drop(log);
        assert!(rec.render(None).contains("more steps were not recorded"));
    }
}
