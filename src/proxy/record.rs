//! `proxy --record FILE`: what went through the proxy, written as a scenario that
//! `check` accepts and `run` replays against the mock (docs/proxy.md).
//!
//! - fixtures: each appkey seen in an `init` (with a placeholder secret: the real one
//!   never crosses the wire), and each user who logged in successfully and was not
//!   registered during the recording (with the `password_md5` the SDK sent);
//! - steps: per client session a `connect` (its first transport), an `init`, every other
//!   request as a `request` step with its wire payload (the `rid` left out, sent once even
//!   when retried), each expecting the code the upstream answered, and a `disconnect`
//!   when the client left by itself. A request the upstream never answered is left out;
//! - expectations: one `frame` per (push event, user) the upstream sent.
//!
//! Bounded: at most [`MAX_RECORDED_STEPS`] steps; later requests are counted, not kept.

use crate::lock::lock;
use crate::transport::{CloseReason, FrameKind, FrameTag, Socket, TransportKind};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

/// Most steps one recording keeps.
pub const MAX_RECORDED_STEPS: usize = 10_000;

/// The secret written for recorded apps (the mock signs `init` with it on replay).
pub const PLACEHOLDER_SECRET: &str = "recorded-by-proxy-placeholder-secret";

/// A recorded step; requests wait for their answer.
enum Step {
    Connect(u64, TransportKind),
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
    /// (appkey, username) → password MD5, for successful logins.
    users: Vec<(String, String, String)>,
    registered: BTreeSet<String>,
    pushes: BTreeSet<(String, String)>,
    dropped: usize,
}

/// Collects one proxy's traffic.
pub struct Recorder {
    upstream: String,
    log: Mutex<Log>,
}

fn rid_key(payload: &Value) -> Option<String> {
    match payload.get("rid")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Recorder {
    pub fn new(upstream: &str) -> Self {
        Self {
            upstream: upstream.to_owned(),
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

    pub fn connect(&self, socket: &Socket) {
        let mut log = lock(&self.log);
        Self::push_step(&mut log, Step::Connect(socket.id, socket.transport()));
    }

    /// A request the client sent (retries with a known rid are not recorded again).
    pub fn request(&self, socket: &Socket, event: &str, payload: &Value) {
        let Some(rid) = rid_key(payload) else { return };
        let mut log = lock(&self.log);
        if log.open.contains_key(&(socket.id, rid.clone())) {
            return;
        }
        let mut payload = payload.clone();
        if let Some(m) = payload.as_object_mut() {
            m.remove("rid");
        }
        let step = Step::Request {
            conn: socket.id,
            event: event.to_owned(),
            payload,
            code: None,
        };
        if let Some(i) = Self::push_step(&mut log, step) {
            log.open.insert((socket.id, rid), i);
        }
    }

    /// A frame the upstream sent to this client.
    pub fn answer(&self, socket: &Socket, tag: &FrameTag, payload: &Value) {
        let mut log = lock(&self.log);
        match tag.kind {
            FrameKind::Push => {
                let (Some(event), Some(user)) = (&tag.event, socket.label()) else {
                    return;
                };
                log.pushes.insert((event.to_string(), user.to_string()));
            }
            FrameKind::Response => {
                let Some(rid) = &tag.rid else { return };
                let Some(&i) = log.open.get(&(socket.id, rid.to_string())) else {
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
                    Self::learn(&mut log, &event, &p);
                }
            }
            _ => {}
        }
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

    pub fn closed(&self, socket: &Socket, reason: &CloseReason) {
        if *reason == CloseReason::ClientDisconnect {
            let mut log = lock(&self.log);
            Self::push_step(&mut log, Step::Disconnect(socket.id));
        }
    }

    /// The recording as scenario YAML (each entry a JSON flow mapping).
    pub fn render(&self) -> String {
        let log = lock(&self.log);
        let client = |conn: u64| format!("c{conn}");
        let mut out = String::new();
        out.push_str(&format!(
            "# Recorded by `jmessage-mock proxy` in front of {}.\n# Replay against the mock: jmessage-mock run THIS_FILE\n# Holds the MD5 of each password that logged in: keep it private.\n",
            self.upstream
        ));
        let name = json!(format!("recorded through the proxy from {}", self.upstream));
        out.push_str(&format!("name: {name}\nfixtures:\n"));
        let apps: Vec<Value> = log
            .apps
            .iter()
            .map(|a| json!({"appkey": a, "secret": PLACEHOLDER_SECRET}))
            .collect();
        list(&mut out, "  apps", &apps, "  ");
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
        list(&mut out, "  users", &users, "  ");
        let steps: Vec<Value> = log
            .steps
            .iter()
            .filter_map(|s| step_json(s, &client))
            .collect();
        list(&mut out, "steps", &steps, "");
        let expect: Vec<Value> = log
            .pushes
            .iter()
            .map(|(e, u)| json!({"frame": {"dir": "out", "kind": "push", "event": e, "user": u, "fields": {}}}))
            .collect();
        list(&mut out, "expect", &expect, "");
        if log.dropped > 0 {
            out.push_str(&format!(
                "# {} more steps were not recorded (limit {MAX_RECORDED_STEPS})\n",
                log.dropped
            ));
        }
        out
    }

    /// Writes the recording to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.render())
    }
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

fn step_json(s: &Step, client: &dyn Fn(u64) -> String) -> Option<Value> {
    Some(match s {
        Step::Connect(conn, t) => {
            json!({"connect": {"client": client(*conn), "transport": t.name()}})
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
