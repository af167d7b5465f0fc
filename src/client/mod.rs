//! A Rust reference client with the official SDK's request semantics (protocol.md 2.2):
//! random `rid` in `[1, 2^31-1]`; from the first transmission an ack timer (5 s, stopped by
//! the ack) and a response timer (30 s, stopped by the response) both re-send the identical
//! frame when they run out, sharing one count of at most 5 transmissions in all; whichever
//! runs out at 5 ends the request in `onTimeout`. A response is delivered at once, acked or
//! not; the SDK leaves the ack timer of an unacked request running after it (re-sends
//! included, see [`Client::late_ack_timeouts`]). Tests, the built-in conformance driver and
//! the load generator use it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use jmessage_mock::client::{Client, ClientConfig};
//! let c = Client::connect("http://127.0.0.1:8787", ClientConfig::default()).await?;
//! c.init("appkey", "secret", 0).await?.ok()?;
//! c.login("alice", "123456").await?.ok()?;
//! # Ok(()) }
//! ```

pub mod mutants;
pub mod sdk;
mod transport;

pub use transport::{OpenInfo, Transport, TransportError};

use crate::lock::lock;
use crate::protocol::sign::{md5_hex, signature};
use crate::transport::engineio::{self, PacketType};
use crate::transport::socketio::{self, SioPacket};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use transport::Outgoing;

/// Client settings; defaults are the SDK's constants.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub transport: crate::transport::TransportKind,
    pub ack_timeout: Duration,
    /// `None`: wait for the response forever (the SDK without `onTimeout`).
    pub response_timeout: Option<Duration>,
    /// Transmissions in all, the first one included.
    pub retry_times: u32,
    pub connect_timeout: Duration,
    /// Answer `msg_sync` with `msg_recv_v2` and sync pushes with their acks, as the
    /// 2.5.0+ SDK does.
    pub auto_confirm: bool,
    /// Send Engine.IO pings on the server's interval.
    pub heartbeat: bool,
    /// A deliberate bug to switch on (`None`: the normal client; see [`mutants`]).
    pub mutant: Option<mutants::Mutant>,
    /// Scale of the SDK facade's own waits, which are no protocol timers: the 500 ms before
    /// `login` is emitted, the 1.5 s / 1.7 s before `onSyncMsgReceipt` / `onSyncEvent`, the
    /// 100 ms of a cached `getChatroomInfo`. 1.0 waits as the SDK does; the conformance
    /// runner shortens them (their order against the wire stays the same), which is most
    /// of a catalogue run's wall time otherwise.
    pub sdk_waits: f64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            transport: crate::transport::TransportKind::Websocket,
            ack_timeout: Duration::from_millis(5_000),
            response_timeout: Some(Duration::from_millis(30_000)),
            retry_times: 5,
            connect_timeout: Duration::from_secs(20),
            auto_confirm: true,
            heartbeat: true,
            mutant: None,
            sdk_waits: 1.0,
        }
    }
}

/// A server push (any event that is not a response to a pending request).
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub event: String,
    pub payload: Value,
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The response object, `rid` removed.
    pub body: Map<String, Value>,
    /// How many times the request was transmitted.
    pub sends: u32,
    /// Whether an `ack` arrived.
    pub acked: bool,
}

impl Reply {
    /// The response code (0 when absent, as the SDK reads it).
    pub fn code(&self) -> i64 {
        self.body.get("code").and_then(Value::as_i64).unwrap_or(0)
    }

    /// `Ok(self)` for code 0, otherwise an error carrying the body.
    pub fn ok(self) -> Result<Reply, RequestError> {
        if self.code() == 0 {
            Ok(self)
        } else {
            Err(RequestError::Failed(self.body))
        }
    }

    pub fn get(&self, key: &str) -> &Value {
        self.body.get(key).unwrap_or(&Value::Null)
    }
}

/// Why a request did not produce a reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// Neither ack nor response after `retry_times` transmissions, the last one by the ack
    /// timer (`onTimeout` with `rid`, `response_timeout: false`).
    #[error("no ack after {sends} sends")]
    AckTimeout { sends: u32, rid: u64 },
    /// No response after `retry_times` transmissions, the last one by the response timer
    /// (`onTimeout` with `rid`, `response_timeout: true`).
    #[error("no response after {sends} sends")]
    ResponseTimeout { sends: u32, rid: u64 },
    /// The server answered with a non-zero code.
    #[error("failed: {0:?}")]
    Failed(Map<String, Value>),
    #[error("connection closed")]
    Closed,
}

struct Pending {
    event: String,
    acked: Arc<Notify>,
    ack_seen: bool,
    /// The response came before any ack: the SDK's ack timer still runs (`ack_tail`).
    tail: bool,
    resp: Option<oneshot::Sender<Map<String, Value>>>,
}

struct Inner {
    out: mpsc::UnboundedSender<Outgoing>,
    pending: Mutex<HashMap<u64, Pending>>,
    closed: CancellationToken,
    /// Cancelled when the reader task has handled every frame that arrived before the
    /// close.
    reader_done: CancellationToken,
    rid_state: AtomicU64,
    /// The rid of the last request (for the `reused-rid` mutant).
    last_rid: AtomicU64,
    /// The appkey of the last `init`: the SDK names it in every message it sends.
    appkey: Mutex<Option<String>>,
    config: ClientConfig,
    /// Every frame sent, in order (tests inspect retries).
    sent: Mutex<Vec<String>>,
    /// Rids whose ack timer ran out after their response had been delivered.
    late_timeouts: Mutex<Vec<u64>>,
}

/// The listed fields of an object, in the list's order; a field it lacks is left out (as
/// the SDK copies fields: an undefined one is absent from the JSON it sends).
pub(crate) fn pick(src: &Value, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| Some(((*f).to_owned(), src.get(*f)?.clone())))
        .collect()
}

/// Removes a finished request's rid from the pending ones (unless its ack tail still
/// runs, which removes it itself).
struct Forget<'a> {
    inner: &'a Inner,
    rid: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut pending = lock(&self.inner.pending);
        if !pending.get(&self.rid).is_some_and(|p| p.tail) {
            pending.remove(&self.rid);
        }
    }
}

/// A connected reference client.
pub struct Client {
    inner: Arc<Inner>,
    pushes: tokio::sync::Mutex<mpsc::UnboundedReceiver<Push>>,
    pub open: OpenInfo,
}

impl Inner {
    fn send_frame(&self, frame: String) {
        lock(&self.sent).push(frame.clone());
        let _ = self.out.send(Outgoing::Frame(frame));
    }

    /// Re-sends a request's frame (the identical frame; a new rid in it for the
    /// `renewed-rid` mutant, whose answers then match nothing).
    fn resend(&self, frame: &str, rid: u64) {
        if mutants::is(self.config.mutant, mutants::Mutant::RenewedRid) {
            let new = self.new_rid();
            let renewed = frame.replacen(&format!("\"rid\":{rid}"), &format!("\"rid\":{new}"), 1);
            self.send_frame(renewed);
        } else {
            self.send_frame(frame.to_owned());
        }
    }

    /// A new rid in [1, 2^31-1] not pending (xorshift; the SDK uses Math.random).
    fn new_rid(&self) -> u64 {
        loop {
            let mut x = self.rid_state.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rid_state.store(x, Ordering::Relaxed);
            let rid = (x % 2_147_483_647) + 1;
            if !lock(&self.pending).contains_key(&rid) {
                return rid;
            }
        }
    }

    fn on_frame(&self, frame: &str, pushes: &mpsc::UnboundedSender<Push>, pong: &Notify) {
        let Ok(p) = engineio::decode_packet(frame) else {
            return;
        };
        match p.kind {
            PacketType::Pong => pong.notify_one(),
            PacketType::Message => {
                let Ok(SioPacket::Event { data, .. }) = socketio::decode(p.data) else {
                    return;
                };
                let Some((event, payload)) = socketio::event_parts(data) else {
                    return;
                };
                self.on_event(event, payload, pushes);
            }
            _ => {}
        }
    }

    fn on_event(&self, event: String, payload: Value, pushes: &mpsc::UnboundedSender<Push>) {
        let rid = payload.get("rid").and_then(|r| {
            r.as_u64()
                .or_else(|| r.as_str().and_then(|s| s.parse().ok()))
        });
        if event == "ack" {
            if let Some(p) = rid.and_then(|r| {
                lock(&self.pending).get_mut(&r).map(|p| {
                    p.ack_seen = true;
                    p.acked.clone()
                })
            }) {
                p.notify_one();
            }
            return;
        }
        if let (Some(rid), Value::Object(mut body)) = (rid, payload.clone()) {
            let mut pending = lock(&self.pending);
            if let Some(p) = pending.get_mut(&rid) {
                if p.event == event {
                    body.shift_remove("rid");
                    if let Some(tx) = p.resp.take() {
                        let _ = tx.send(body);
                    }
                    return;
                }
            }
        }
        if self.config.auto_confirm {
            self.confirm(&event, &payload);
        }
        let _ = pushes.send(Push { event, payload });
    }

    /// The SDK's automatic replies to pushes (fire and forget).
    fn confirm(&self, event: &str, payload: &Value) {
        let fire = |ev: &str, mut body: Value| {
            if !mutants::confirmation(self.config.mutant, ev, &mut body) {
                return;
            }
            let rid = self.new_rid();
            if let Some(m) = body.as_object_mut() {
                m.insert("rid".into(), json!(rid));
            }
            self.send_frame(socketio::encode_event_frame(ev, &body));
        };
        match event {
            "msg_sync" => {
                for m in payload
                    .get("messages")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let mut b = json!({"msg_id": m["msg_id"], "msg_type": m["msg_type"], "from_uid": m["from_uid"]});
                    if let Some(g) = m.get("from_gid").filter(|g| !g.is_null()) {
                        b["from_gid"] = g.clone();
                    }
                    fire("msg_recv_v2", b);
                }
            }
            "sync_conversation" | "sync_event" | "sync_receipt" => {
                fire(
                    &format!("{event}_ack"),
                    json!({"sync_key": payload["sync_key"]}),
                );
            }
            "event_notification" if payload["event_type"] == json!(1) => {
                // The SDK copies these four fields; one the push lacks is undefined in
                // its object and so absent from the JSON it sends.
                let echo = pick(payload, &["event_id", "event_type", "from_uid", "gid"]);
                fire("event_notification", Value::Object(echo));
            }
            _ => {}
        }
    }
}

impl Client {
    /// Connects to a server at `http://host:port` and waits for its `40`.
    pub async fn connect(base: &str, config: ClientConfig) -> Result<Client, TransportError> {
        let mut config = config;
        mutants::adjust(&mut config);
        let conn = transport::connect(base, config.transport, config.connect_timeout).await?;
        let transport::Connection {
            open,
            mut inbound,
            outbound,
            closed,
        } = conn;
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(open.sid.as_bytes());
            h.finish() | 1
        };
        let inner = Arc::new(Inner {
            out: outbound,
            pending: Mutex::new(HashMap::new()),
            closed: closed.clone(),
            reader_done: CancellationToken::new(),
            rid_state: AtomicU64::new(seed),
            last_rid: AtomicU64::new(0),
            appkey: Mutex::new(None),
            config: config.clone(),
            sent: Mutex::new(Vec::new()),
            late_timeouts: Mutex::new(Vec::new()),
        });
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let (conn_tx, conn_rx) = oneshot::channel::<()>();
        let pong = Arc::new(Notify::new());
        // Reader task.
        let (r_inner, r_pong) = (inner.clone(), pong.clone());
        tokio::spawn(async move {
            let mut conn_tx = Some(conn_tx);
            loop {
                // Frames that arrived before the close are still handled.
                let frame = tokio::select! {
                    biased;
                    f = inbound.recv() => f,
                    _ = r_inner.closed.cancelled() => None,
                };
                let Some(frame) = frame else { break };
                if frame == "40" {
                    if let Some(tx) = conn_tx.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                if frame == "41" || frame.starts_with('1') {
                    break;
                }
                r_inner.on_frame(&frame, &push_tx, &r_pong);
            }
            r_inner.closed.cancel();
            r_inner.reader_done.cancel();
        });
        // Heartbeat task: ping every interval, give up when a pong does not come.
        if config.heartbeat {
            let (h_inner, mut interval, timeout) =
                (inner.clone(), open.ping_interval, open.ping_timeout);
            if mutants::is(config.mutant, mutants::Mutant::LatePings) {
                interval *= 4;
            }
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = h_inner.closed.cancelled() => return,
                    }
                    let _ = h_inner.out.send(Outgoing::Frame("2".into()));
                    tokio::select! {
                        _ = pong.notified() => {}
                        _ = tokio::time::sleep(timeout) => { h_inner.closed.cancel(); return; }
                        _ = h_inner.closed.cancelled() => return,
                    }
                }
            });
        }
        tokio::time::timeout(config.connect_timeout, conn_rx)
            .await
            .map_err(|_| TransportError::Handshake("no 40 from the server".into()))?
            .map_err(|_| TransportError::Handshake("closed before 40".into()))?;
        Ok(Client {
            inner,
            pushes: tokio::sync::Mutex::new(push_rx),
            open,
        })
    }

    /// Sends a request and waits for its reply with the SDK's ack/response timers.
    pub async fn request(&self, event: &str, payload: Value) -> Result<Reply, RequestError> {
        let inner = &self.inner;
        let cfg = &inner.config;
        let last = inner.last_rid.load(Ordering::Relaxed);
        let rid = match cfg.mutant {
            Some(mutants::Mutant::ReusedRid) if last != 0 => last,
            _ => inner.new_rid(),
        };
        inner.last_rid.store(rid, Ordering::Relaxed);
        let mut body = match payload {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        mutants::request_payload(cfg.mutant, event, &mut body);
        body.insert("rid".into(), json!(rid));
        let frame = socketio::encode_event_frame(event, &Value::Object(body));
        let acked = Arc::new(Notify::new());
        let (tx, mut rx) = oneshot::channel();
        lock(&inner.pending).insert(
            rid,
            Pending {
                event: event.to_owned(),
                acked: acked.clone(),
                ack_seen: false,
                tail: false,
                resp: Some(tx),
            },
        );
        // Forgets the rid when the request ends, also when the caller stops waiting
        // (a dropped future), so no request looks outstanding forever.
        let _forget = Forget { inner, rid };
        self.run(rid, &frame, &acked, &mut rx, cfg).await
    }

    async fn run(
        &self,
        rid: u64,
        frame: &str,
        acked: &Notify,
        rx: &mut oneshot::Receiver<Map<String, Value>>,
        cfg: &ClientConfig,
    ) -> Result<Reply, RequestError> {
        use tokio::time::{sleep_until, Instant};
        let inner = &self.inner;
        let mut sends = 1;
        inner.send_frame(frame.to_owned());
        // Both timers start with the first transmission and share the transmission count
        // (the SDK's `times`): the ack timer stops at the ack, the response timer at the
        // response. A response does not stop the ack timer (see `ack_tail`).
        let start = Instant::now();
        let mut ack_due = Some(start + cfg.ack_timeout);
        let mut resp_due = cfg.response_timeout.map(|d| start + d);
        let far = start + Duration::from_secs(86_400 * 365);
        loop {
            if ack_due.is_some() && lock(&inner.pending).get(&rid).is_some_and(|p| p.ack_seen) {
                ack_due = None;
            }
            // Biased: what already arrived wins over a timer or a close that followed it.
            tokio::select! {
                biased;
                r = &mut *rx => {
                    let body = r.map_err(|_| RequestError::Closed)?;
                    // The reader marks an ack before it hands over a later response.
                    let acked = ack_due.is_none()
                        || lock(&inner.pending).get(&rid).is_some_and(|p| p.ack_seen);
                    if let (false, Some(due)) = (acked, ack_due) {
                        self.ack_tail(rid, frame.to_owned(), sends, due);
                    }
                    return Ok(Reply { body, sends, acked });
                }
                _ = acked.notified(), if ack_due.is_some() => ack_due = None,
                _ = sleep_until(ack_due.unwrap_or(far)), if ack_due.is_some() => {
                    if mutants::is(cfg.mutant, mutants::Mutant::NoResend) {
                        ack_due = None;
                    } else if sends < cfg.retry_times {
                        sends += 1;
                        inner.resend(frame, rid);
                        ack_due = Some(Instant::now() + cfg.ack_timeout);
                    } else {
                        return Err(RequestError::AckTimeout { sends, rid });
                    }
                }
                _ = sleep_until(resp_due.unwrap_or(far)), if resp_due.is_some() => {
                    if sends < cfg.retry_times {
                        sends += 1;
                        inner.resend(frame, rid);
                        resp_due = cfg.response_timeout.map(|d| Instant::now() + d);
                    } else {
                        return Err(RequestError::ResponseTimeout { sends, rid });
                    }
                }
                _ = inner.closed.cancelled() => return self.after_close(rx, sends).await,
            }
        }
    }

    /// The SDK forgets a request when its response arrives but leaves its ack timer running:
    /// without an ack by then, the identical frame is re-sent every ack timeout until
    /// `retry_times` transmissions in all, whatever acks or answers the re-sends get (they
    /// no longer match a pending request and are ignored), and then the SDK would call
    /// `onTimeout` (`response_timeout: false`) after the `onSuccess` it already called; that
    /// late timeout is recorded in [`Client::late_ack_timeouts`].
    fn ack_tail(&self, rid: u64, frame: String, mut sends: u32, first_due: tokio::time::Instant) {
        let inner = self.inner.clone();
        // Keep the rid pending (with no one waiting) so late acks and answers are swallowed.
        if let Some(p) = lock(&inner.pending).get_mut(&rid) {
            p.tail = true;
        }
        tokio::spawn(async move {
            let mut due = first_due;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = inner.closed.cancelled() => break,
                }
                if sends < inner.config.retry_times {
                    sends += 1;
                    inner.resend(&frame, rid);
                    due = tokio::time::Instant::now() + inner.config.ack_timeout;
                } else {
                    lock(&inner.late_timeouts).push(rid);
                    break;
                }
            }
            lock(&inner.pending).remove(&rid);
        });
    }

    /// The connection closed while a request was pending: a response that arrived just
    /// before the close (a server that answers and then hangs up) still counts, once the
    /// reader has handled every frame received before the close.
    async fn after_close(
        &self,
        rx: &mut oneshot::Receiver<Map<String, Value>>,
        sends: u32,
    ) -> Result<Reply, RequestError> {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.inner.reader_done.cancelled()).await;
        match rx.try_recv() {
            Ok(body) => Ok(Reply {
                body,
                sends,
                acked: true,
            }),
            Err(_) => Err(RequestError::Closed),
        }
    }

    /// Sends a raw Engine.IO frame (tests of malformed input).
    pub fn send_raw(&self, frame: &str) {
        self.inner.send_frame(frame.to_owned());
    }

    /// Requests answered before any ack whose ack timer then ran out (`retry_times`
    /// transmissions): the SDK calls `onTimeout` for them after `onSuccess`.
    pub fn late_ack_timeouts(&self) -> Vec<u64> {
        lock(&self.inner.late_timeouts).clone()
    }

    /// Every frame this client sent, in order.
    pub fn sent_frames(&self) -> Vec<String> {
        lock(&self.inner.sent).clone()
    }

    /// Forgets the record of sent frames and late ack timeouts, so a lasting client
    /// (the admin API's device sessions) does not keep every frame it ever sent.
    pub fn clear_records(&self) {
        lock(&self.inner.sent).clear();
        lock(&self.inner.late_timeouts).clear();
    }

    /// The next push, whatever its event, within `limit`.
    pub async fn next_push(&self, limit: Duration) -> Option<Push> {
        first_within(&self.pushes, limit, |_| true).await
    }

    /// The next push named `event` within `limit`; other pushes before it are dropped.
    pub async fn expect_push(&self, event: &str, limit: Duration) -> Option<Value> {
        let p = first_within(&self.pushes, limit, |p: &Push| p.event == event).await?;
        Some(p.payload)
    }

    /// Pushes already received, without waiting.
    pub async fn drain_pushes(&self) -> Vec<Push> {
        let mut rx = self.pushes.lock().await;
        let mut out = Vec::new();
        while let Ok(p) = rx.try_recv() {
            out.push(p);
        }
        out
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Requests sent and still waiting for their response (not those whose response
    /// came and only the ack timer still runs, see `ack_tail`).
    pub fn awaiting_responses(&self) -> usize {
        lock(&self.inner.pending)
            .values()
            .filter(|p| p.resp.is_some())
            .count()
    }

    /// Resolves when the connection is gone.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await
    }

    /// The SDK's `loginOut`: Socket.IO disconnect (`41`), then close.
    pub fn disconnect(&self) {
        let _ = self.inner.out.send(Outgoing::Frame("41".into()));
        let _ = self.inner.out.send(Outgoing::Close { abrupt: false });
    }

    /// Drops the connection without any goodbye (network loss).
    pub fn drop_connection(&self) {
        let _ = self.inner.out.send(Outgoing::Close { abrupt: true });
        self.inner.closed.cancel();
    }

    // ---- SDK-shaped helpers ----

    /// `init` with a freshly computed signature; `flag` 1 turns roaming on.
    pub async fn init(&self, appkey: &str, secret: &str, flag: i64) -> Result<Reply, RequestError> {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
            .to_string();
        let rs = format!("{:020}", self.inner.new_rid());
        *lock(&self.inner.appkey) = Some(appkey.to_owned());
        self.request(
            "c_init",
            json!({"appkey": appkey, "random_str": rs, "timestamp": ts,
                   "signature": signature(appkey, &ts, &rs, secret), "flag": flag, "fromPlatForm": "j"}),
        )
        .await
    }

    /// `register` with a plain-text password (hashed as the SDK does).
    pub async fn register(&self, username: &str, password: &str) -> Result<Reply, RequestError> {
        self.request(
            "register",
            json!({"username": username, "password": md5_hex(password)}),
        )
        .await
    }

    /// `login` with a plain-text password; then `sync_check` like the SDK.
    pub async fn login(&self, username: &str, password: &str) -> Result<Reply, RequestError> {
        let r = self
            .request(
                "login",
                json!({"username": username, "password": md5_hex(password), "version": "2.5.0"}),
            )
            .await?;
        if r.code() == 0 {
            self.request(
                "sync_check",
                json!({"sync_key": 0, "sync_type": 0, "sync_event_key": 0, "msg_receipt_key": 0}),
            )
            .await?;
        }
        Ok(r)
    }

    /// `sendSingleMsg` with a text body, shaped as the SDK builds it.
    pub async fn send_text(&self, me: &str, to: &str, text: &str) -> Result<Reply, RequestError> {
        let mut body = single_msg(me, to, "text", json!({"text": text}));
        if let Some(k) = lock(&self.inner.appkey).clone() {
            body["appkey"] = json!(k);
        }
        self.request("s_across_single_text", body).await
    }
}

/// The SDK's `s_across_single_text` request for a content type (protocol.md 5.3).
pub fn single_msg(me: &str, to: &str, msg_type: &str, msg_body: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    json!({
        "content": {
            "version": 1, "target_type": "single", "from_platform": "web",
            "target_id": to, "from_id": me, "create_time": now,
            "msg_type": msg_type, "msg_body": msg_body,
        },
        "no_offline": false,
        "no_notification": false,
        "target_id": to,
    })
}

impl Drop for Client {
    fn drop(&mut self) {
        self.inner.closed.cancel();
    }
}
/// The first item of `rx` that is `wanted` within `limit`; items before it are dropped.
pub(crate) async fn first_within<T>(
    rx: &tokio::sync::Mutex<mpsc::UnboundedReceiver<T>>,
    limit: Duration,
    wanted: impl Fn(&T) -> bool,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut rx = rx.lock().await;
    loop {
        let item = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .ok()
            .flatten()?;
        if wanted(&item) {
            return Some(item);
        }
    }
}
