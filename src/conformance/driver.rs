//! The runner's side of the driver protocol (`docs/driver-protocol.md`): a client
//! implementation's driver runs as a subprocess speaking JSON lines. Every command is
//! bounded by a time limit; a misbehaving driver (bad JSON, unknown seq, crash, hang)
//! becomes a [`DriverError`], never a hang of the runner.

use crate::lock::lock;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

/// The protocol version this runner speaks.
pub const PROTOCOL: u64 = 1;
/// Default limit for one command.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(10);
const STDERR_TAIL: usize = 40;

/// How a driver misbehaved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    #[error("driver did not start: {0}")]
    DidNotStart(String),
    #[error("bad line from driver: {0}")]
    BadLine(String),
    #[error("driver replied to unknown seq {0}")]
    UnknownSeq(u64),
    #[error("driver hung on {cmd} (no reply within {limit:?})")]
    Hung { cmd: String, limit: Duration },
    #[error("driver crashed ({status}){stderr}")]
    Crashed { status: String, stderr: String },
    #[error("driver speaks protocol {0}, this runner speaks {PROTOCOL}")]
    Protocol(u64),
    /// The driver answered `ok: false`.
    #[error("driver refused {cmd}: {error}")]
    Refused { cmd: String, error: String },
}

/// An asynchronous event from the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    /// A callback registered by the `call` with this seq fired.
    Callback {
        call: u64,
        name: String,
        args: Value,
    },
    Listener {
        instance: String,
        listener: String,
        args: Value,
    },
    /// An exception escaped the client library.
    Error {
        instance: Option<String>,
        message: String,
    },
}

/// The `hello` reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub driver: String,
    pub version: String,
    pub capabilities: Vec<String>,
    /// Methods and listeners of the guide the client declares it lacks (optional
    /// `unsupported` of `hello`): steps naming them are graded UNIMPL, not run.
    pub unsupported: Vec<String>,
    /// Optional `build` of `hello` (a commit or build hash), for reports.
    pub build: Option<String>,
}

/// A `call` reply: the return value, or the synchronous exception.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReply {
    pub seq: u64,
    pub returned: Value,
    pub thrown: Option<String>,
}

type Pending = HashMap<u64, oneshot::Sender<Value>>;

struct Shared {
    pending: Mutex<Pending>,
    failure: Mutex<Option<DriverError>>,
    stderr: Mutex<VecDeque<String>>,
}

impl Shared {
    fn fail(&self, e: DriverError) {
        let mut f = lock(&self.failure);
        if f.is_none() {
            *f = Some(e);
        }
        // Dropping the senders wakes every waiting command.
        lock(&self.pending).clear();
    }

    fn stderr_tail(&self) -> String {
        let lines = lock(&self.stderr);
        if lines.is_empty() {
            String::new()
        } else {
            format!(
                "; stderr:\n{}",
                lines.iter().cloned().collect::<Vec<_>>().join("\n")
            )
        }
    }
}

/// A running driver subprocess.
pub struct SubprocessDriver {
    child: Child,
    stdin: ChildStdin,
    shared: Arc<Shared>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<DriverEvent>>,
    seq: AtomicU64,
    pub hello: Hello,
    /// Time limit of each command after `hello`.
    pub limit: Duration,
}

/// Keeps the last lines of the driver's stderr (for crash reports).
async fn keep_stderr_tail(s: Arc<Shared>, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut tail = lock(&s.stderr);
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Routes the driver's stdout lines (replies and events) until it closes.
async fn read_stdout(
    s: Arc<Shared>,
    stdout: tokio::process::ChildStdout,
    ev_tx: mpsc::UnboundedSender<DriverEvent>,
) {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim().is_empty() => continue,
            Ok(Some(line)) => route(&s, &ev_tx, &line),
            Ok(None) | Err(_) => break,
        }
    }
    // stdout closed: the process is gone or going.
    let pending = !lock(&s.pending).is_empty();
    if pending {
        s.fail(DriverError::Crashed {
            status: "stdout closed".into(),
            stderr: s.stderr_tail(),
        });
    } else {
        let mut f = lock(&s.failure);
        if f.is_none() {
            *f = Some(DriverError::Crashed {
                status: "exited".into(),
                stderr: String::new(),
            });
        }
    }
}

/// The driver's identity and capabilities from its `hello` reply.
fn hello_from(reply: &Value) -> Hello {
    Hello {
        driver: reply
            .get("driver")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        version: reply
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        capabilities: strings(reply, "capabilities"),
        unsupported: strings(reply, "unsupported"),
        build: reply
            .get("build")
            .and_then(Value::as_str)
            .map(|b| b.chars().take(80).collect()),
    }
}

impl SubprocessDriver {
    /// Starts `program args...` and performs the `hello` handshake.
    pub async fn spawn(
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<Self, DriverError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| DriverError::DidNotStart(format!("{program}: {e}")))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(DriverError::DidNotStart("no stdio pipes".into()));
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            failure: Mutex::new(None),
            stderr: Mutex::new(VecDeque::new()),
        });
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(keep_stderr_tail(shared.clone(), stderr));
        tokio::spawn(read_stdout(shared.clone(), stdout, ev_tx));
        let mut driver = Self {
            child,
            stdin,
            shared,
            events: tokio::sync::Mutex::new(ev_rx),
            seq: AtomicU64::new(0),
            hello: Hello {
                driver: String::new(),
                version: String::new(),
                capabilities: Vec::new(),
                unsupported: Vec::new(),
                build: None,
            },
            limit: COMMAND_LIMIT,
        };
        let reply = match driver
            .command(
                json!({"cmd": "hello", "protocol": PROTOCOL, "api": guide_names()}),
                COMMAND_LIMIT,
            )
            .await
        {
            Ok(r) => r,
            Err(DriverError::Crashed { status, stderr }) => {
                return Err(DriverError::DidNotStart(format!(
                    "exited before hello ({status}){stderr}"
                )))
            }
            Err(e) => return Err(e),
        };
        let protocol = reply
            .get("protocol")
            .and_then(Value::as_u64)
            .unwrap_or(PROTOCOL);
        if protocol != PROTOCOL {
            return Err(DriverError::Protocol(protocol));
        }
        driver.hello = hello_from(&reply);
        Ok(driver)
    }

    /// Whether `hello` declared the client lacks this method or listener.
    pub fn lacks(&self, name: &str) -> bool {
        self.hello.unsupported.iter().any(|u| u == name)
    }

    /// Whether `hello` listed a capability.
    pub fn can(&self, capability: &str) -> bool {
        self.hello.capabilities.iter().any(|c| c == capability)
    }

    /// Sends a command and waits (bounded) for its reply; `ok: false` is an error.
    pub async fn command(&mut self, mut cmd: Value, limit: Duration) -> Result<Value, DriverError> {
        let reply = self.command_raw(&mut cmd, limit).await?;
        // A synchronous exception is a result of the call, not a driver failure.
        if reply.get("ok") == Some(&Value::Bool(true)) || reply.get("thrown").is_some() {
            Ok(reply)
        } else {
            Err(DriverError::Refused {
                cmd: cmd
                    .get("cmd")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                error: reply
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no error message")
                    .to_owned(),
            })
        }
    }

    async fn command_raw(
        &mut self,
        cmd: &mut Value,
        limit: Duration,
    ) -> Result<Value, DriverError> {
        if let Some(e) = lock(&self.shared.failure).clone() {
            return Err(e);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(m) = cmd.as_object_mut() {
            m.insert("seq".into(), json!(seq));
        }
        let name = cmd
            .get("cmd")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(seq, tx);
        let mut line = cmd.to_string();
        line.push('\n');
        if self.stdin.write_all(line.as_bytes()).await.is_err() || self.stdin.flush().await.is_err()
        {
            lock(&self.shared.pending).remove(&seq);
            let status = self.exit_status().await;
            return Err(DriverError::Crashed {
                status,
                stderr: self.shared.stderr_tail(),
            });
        }
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => {
                let failure = lock(&self.shared.failure).clone();
                match failure {
                    Some(DriverError::Crashed { .. }) | None => {
                        let status = self.exit_status().await;
                        Err(DriverError::Crashed {
                            status,
                            stderr: self.shared.stderr_tail(),
                        })
                    }
                    Some(e) => Err(e),
                }
            }
            Err(_) => {
                lock(&self.shared.pending).remove(&seq);
                let e = DriverError::Hung { cmd: name, limit };
                self.shared.fail(e.clone());
                let _ = self.child.start_kill();
                Err(e)
            }
        }
    }

    async fn exit_status(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(s)) => s.to_string(),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => "still running".into(),
        }
    }

    /// `create` an instance with the server's address and upload URL.
    pub async fn create(
        &mut self,
        instance: &str,
        address: &str,
        upload_file: &str,
    ) -> Result<(), DriverError> {
        self.command(
            json!({"cmd": "create", "instance": instance, "options": {"address": address, "upload_file": upload_file}}),
            self.limit,
        )
        .await
        .map(|_| ())
    }

    /// `call` a public API method; callbacks arrive later as events.
    pub async fn call(
        &mut self,
        instance: &str,
        method: &str,
        args: Value,
        callbacks: &[&str],
    ) -> Result<CallReply, DriverError> {
        let reply = self
            .command(
                json!({"cmd": "call", "instance": instance, "method": method, "args": args, "callbacks": callbacks}),
                self.limit,
            )
            .await?;
        Ok(CallReply {
            seq: reply.get("seq").and_then(Value::as_u64).unwrap_or(0),
            returned: reply.get("returned").cloned().unwrap_or(Value::Null),
            thrown: reply
                .get("thrown")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    pub async fn listen(&mut self, instance: &str, listener: &str) -> Result<(), DriverError> {
        let limit = self.limit;
        self.command(
            json!({"cmd": "listen", "instance": instance, "listener": listener}),
            limit,
        )
        .await
        .map(|_| ())
    }

    pub async fn advance(&mut self, ms: u64) -> Result<(), DriverError> {
        let limit = self.limit;
        self.command(json!({"cmd": "advance", "ms": ms}), limit)
            .await
            .map(|_| ())
    }

    pub async fn destroy(&mut self, instance: &str) -> Result<(), DriverError> {
        let limit = self.limit;
        self.command(json!({"cmd": "destroy", "instance": instance}), limit)
            .await
            .map(|_| ())
    }

    /// The next event within `limit`.
    pub async fn next_event(&self, limit: Duration) -> Option<DriverEvent> {
        let mut rx = self.events.lock().await;
        tokio::time::timeout(limit, rx.recv()).await.ok().flatten()
    }

    /// The failure the reader detected, if any.
    pub fn failure(&self) -> Option<DriverError> {
        lock(&self.shared.failure).clone()
    }

    /// `shutdown`, then make sure the process is gone.
    pub async fn shutdown(mut self) -> Result<(), DriverError> {
        let r = self
            .command(json!({"cmd": "shutdown"}), Duration::from_secs(5))
            .await
            .map(|_| ());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
        r
    }
}

/// Routes one stdout line: a reply to its waiter, an event to the queue.
fn route(s: &Shared, events: &mpsc::UnboundedSender<DriverEvent>, line: &str) {
    let v: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => return s.fail(DriverError::BadLine(truncate(line))),
    };
    if let Some(seq) = v.get("seq").and_then(Value::as_u64) {
        let waiter = lock(&s.pending).remove(&seq);
        match waiter {
            Some(tx) => {
                let _ = tx.send(v);
            }
            None => s.fail(DriverError::UnknownSeq(seq)),
        }
        return;
    }
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let event = match v.get("event").and_then(Value::as_str) {
        Some("callback") => match (v.get("call").and_then(Value::as_u64), text("name")) {
            (Some(call), Some(name)) => DriverEvent::Callback {
                call,
                name,
                args: v.get("args").cloned().unwrap_or(json!([])),
            },
            _ => return s.fail(DriverError::BadLine(truncate(line))),
        },
        Some("listener") => match (text("instance"), text("listener")) {
            (Some(instance), Some(listener)) => DriverEvent::Listener {
                instance,
                listener,
                args: v.get("args").cloned().unwrap_or(json!([])),
            },
            _ => return s.fail(DriverError::BadLine(truncate(line))),
        },
        Some("error") => DriverEvent::Error {
            instance: text("instance"),
            message: text("message").unwrap_or_default(),
        },
        Some("log") => {
            let mut tail = lock(&s.stderr);
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(text("message").unwrap_or_default());
            return;
        }
        _ => return s.fail(DriverError::BadLine(truncate(line))),
    };
    let _ = events.send(event);
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A list of strings of a `hello` reply (at most 200 entries; non-strings are ignored).
fn strings(reply: &Value, key: &str) -> Vec<String> {
    reply
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .take(200)
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The guide's method and listener names, sent with `hello` so a driver can answer
/// which of them its client lacks.
fn guide_names() -> Vec<&'static str> {
    use crate::scenario::api::{LISTENERS, METHODS};
    METHODS
        .iter()
        .map(|(m, _)| *m)
        .chain(LISTENERS.iter().copied())
        .collect()
}
