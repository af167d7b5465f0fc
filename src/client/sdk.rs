//! The official Web SDK V2's public API on top of the reference [`Client`].
//!
//! [`SdkInstance::call`] takes a public method name (`"sendSingleMsg"`, `"getGroupInfo"`…) and
//! its JSON arguments, builds the wire payload exactly as protocol.md sections 4 and 5 describe
//! the SDK doing it, sends it with the SDK's rid/ack/retry semantics, applies the SDK's response
//! post-processing and reports what the app would see ([`SdkCall`]).
//!
//! Implemented payload building:
//! * `init` adds `fromPlatForm:"j"`; `login`/`register`/`updateSelfPwd` MD5 passwords unless
//!   `is_md5`; `login` adds `version:"2.5.0"`, waits 500 ms before emitting, then sends
//!   `sync_check` (and again every 150 s, scaled like the ack timer: 30 ack timeouts) and
//!   keeps the returned keys. The last `sync_event_key` (from a `sync_check` answer or a
//!   `sync_event` push's `sync_key`) is kept per appkey and user as the SDK's localStorage
//!   keeps it, as a string, and the `sync_check` of a later login on the same instance sends
//!   that string (`"0"`, not `0`).
//! * Client-side throws with the SDK's messages: `"must init first"` (`login`, `register`
//!   before a successful `init`), `"must login first"` (methods that need a user).
//! * Defaults: `appkey` (own) on `getUserInfo`, `resetUnreadCount`, receipt reports; `from_type`
//!   and `why` on friend calls; `version:0` on no-disturb and black-list reads; `{sessions:[…]}`
//!   for receipt reports (sent at once, one request per call: the 2 s batching is not emulated).
//! * Message sends: content envelope of 5.1 (`from_platform:"web"`, `target_id` as string,
//!   `create_time`, `target_name` when known, appkeys only when the app passed `appkey`), outer
//!   request of 5.3 (`no_offline`/`no_notification` booleans, `target_gid` as string, `users`
//!   from `at_list`, `appkey`), client-side body checks (failure → [`SdkCall::Ignored`]).
//! * Uploads: an argument `{"$file":{"name","type","base64"}}` (fields `image`, `file`,
//!   `avatar`) → `get_upload_token` → multipart POST to the upload URL with `X-App-Key`,
//!   `jm-channel: w`, `Authorization: Basic base64(username:token)`; the upload answer becomes
//!   the `msg_body` (or `media_id`/`avatar`). Upload error mapping of protocol.md 6.4. Image
//!   and file bodies, from the upload answer or a forwarded `msg_body`, are rebuilt from the
//!   SDK's field lists (`media_id, media_crc32, width, height, format, fsize` /
//!   `media_id, media_crc32, hash, fsize, fname`, then `extras` when set); fields the source
//!   lacks are left out.
//!
//! Callbacks: `onSuccess` as soon as the response arrives, acked or not; `onTimeout` with
//! `{rid, data, response_timeout}` when the ack timer (`false`) or the response timer
//! (`true`) runs out at the fifth transmission (the reference client's timers). The late
//! `onTimeout` the SDK fires after `onSuccess` when an answered request never got an ack is
//! not reported (the reference client records it, [`Client::late_ack_timeouts`]).
//!
//! Implemented response post-processing (a deleted field leaves the other keys in wire
//! order, as JavaScript's `delete` does): `rid` deleted; `uid` removed from `user_info`,
//! `member_list` (and `mtime`), `friend_list`, `black_list`; `flag→group_type` on `group_list`,
//! `group_info`, `no_disturb.groups`, shield `groups`, `result.groups`; conversations (`utime`
//! removed, `gid` added for groups, local `extras` and `unread_msg_count`); rooms cached by id
//! and `getChatroomInfo` answered from the cache after 100 ms; group/room sends succeed with
//! `(data, msg)`, single sends with `(data)`; receipt reports with `(data, msg_ids)`; a missing
//! dereferenced field (`user_info`, `group_list`…) yields neither onSuccess nor onFail.
//!
//! Listeners ([`SdkInstance::listen`], deliveries via [`SdkInstance::next_delivery`]):
//! `onMsgReceive` (key/from_username/from_appkey, `msg_level` → `"normal"`/`"across"`),
//! `onUserInfUpdate` (from `sui_mtime` when the sender's mtime is known),
//! `onEventNotification` (field filter of 7.3, type 55 `type`, type 56 `by_self` added last
//! and `extra` deleted, type 100/7 description parsed, type 200 swallowed, types 1/2 log out
//! after the callback; type 1 is echoed with the push's `event_id`, `event_type`,
//! `from_uid`, `gid`, each only when the push has it),
//! `onSyncConversation` (`unsync_count` → `unread_msg_count`), `onSyncEvent` (after 1.7 s, no
//! `by_self` conversion as in the SDK), `onSyncMsgReceipt` (merged, after 1.5 s),
//! `onMsgReceiptChange`, `onTransMsgRec`, `onRoomMsg` (room_msg_sync and each message of
//! room_msg_sync_his), `onDisconnect` (connection closed after login).
//! `onMutiUnreadMsgUpdate` (event 200: messages newer than its `ctime_ms` stay unread).
//! Listeners can also be registered with `call("onMsgReceive", [])`.
//! Connections as 2.6.0 handles them (protocol.md 1.7): a refused or failed handshake is
//! retried on the Manager's schedule (1 s doubled up to 5 s, scaled like the ack timer); after
//! a disconnect following a login the instance clears user and appkey, calls `onDisconnect`
//! and opens a new connection at once, where the app's next `init`/`login` go (calls made
//! while it connects wait for it).
//! Not emulated: the `room_info` request without `id` that `room_msg_sync_his` triggers for
//! unknown rooms, localStorage persistence, re-sending pending requests on the new connection
//! (a request pending at a close fails with [`SdkError::Closed`]).
//! Pushes are processed in a background task; pushes processed while no user is logged in are
//! dropped, as the SDK drops pushes before the login response.

use super::mutants::Mutant;
use super::{Client, ClientConfig, RequestError, TransportError};
use crate::lock::lock;
use crate::protocol::sign::md5_hex;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

mod groups;
mod messages;
mod rooms;
mod session;
mod social;
mod users;

/// What every call may need besides its argument: who is logged in and the connection's
/// state when the call started.
struct CallContext {
    me: String,
    own_appkey: String,
    inited: bool,
    logged_in: bool,
    connected: bool,
}

/// Fills `appkey` with the own app's when the caller left it out (as the SDK does).
fn default_appkey(o: &mut Map<String, Value>, own_appkey: &str) {
    if !truthy(o.get("appkey")) {
        o.insert("appkey".into(), json!(own_appkey));
    }
}

/// The callbacks the SDK would invoke for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Callbacks {
    /// `onSuccess` arguments, e.g. `[data]` or `[data, msg]`.
    pub success: Option<Vec<Value>>,
    pub fail: Option<Value>,
    /// `onTimeout` payload `{rid, data, response_timeout}`.
    pub timeout: Option<Value>,
    /// Whether `onAck` fired.
    pub ack: bool,
}

/// What a public method call produced.
#[derive(Debug, Clone, PartialEq)]
pub enum SdkCall {
    Callbacks(Callbacks),
    /// A synchronous return value of a local method.
    Returned(Value),
    /// The SDK throws client-side.
    Thrown(String),
    /// Nothing is sent and no callback fires (client-side checks of message bodies).
    Ignored(String),
}

impl SdkCall {
    /// The `onSuccess` arguments, if any.
    pub fn success(&self) -> Option<&[Value]> {
        match self {
            SdkCall::Callbacks(c) => c.success.as_deref(),
            _ => None,
        }
    }

    /// The first `onSuccess` argument (`data`), if any.
    pub fn data(&self) -> Option<&Value> {
        self.success().and_then(|s| s.first())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("unknown SDK method {0}")]
    UnknownMethod(String),
    #[error("connection closed")]
    Closed,
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    #[error("upload: {0}")]
    Upload(String),
}

/// One listener invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub listener: String,
    pub arg: Value,
}

#[derive(Default)]
struct State {
    appkey: Option<String>,
    username: Option<String>,
    connected: bool,
    sync: Map<String, Value>,
    rooms: HashMap<String, Value>,
    conv_extras: HashMap<String, Value>,
    /// `ctime_ms` of each unread message per conversation.
    unread: HashMap<String, Vec<i64>>,
    /// Known profile mtimes (ms) per uid.
    mtimes: HashMap<i64, i64>,
    listeners: HashSet<String>,
    /// The SDK's localStorage entry of the last sync event key, per `appkey-username`; like
    /// every localStorage value it is a string.
    event_keys: HashMap<String, String>,
}

impl State {
    /// The localStorage key of the current user's sync event key (`appkey-username`).
    fn event_key_slot(&self) -> Option<String> {
        Some(format!(
            "{}-{}",
            self.appkey.as_ref()?,
            self.username.as_ref()?
        ))
    }

    fn store_event_key(&mut self, key: Option<&Value>) {
        let Some(slot) = self.event_key_slot() else {
            return;
        };
        let text = match key {
            None => "undefined".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        };
        self.event_keys.insert(slot, text);
    }

    /// The sync event key stored for the current user, if any.
    fn stored_event_key(&self) -> Option<String> {
        self.event_keys.get(&self.event_key_slot()?).cloned()
    }
}

struct Shared {
    /// The current connection; replaced by a new one after a disconnect (2.6.0 builds a
    /// new Socket.IO client at once, protocol.md 1.7).
    client: Mutex<Arc<Client>>,
    /// Where to reconnect, and how.
    base: String,
    config: ClientConfig,
    /// Cancelled when the instance is dropped: no more reconnecting.
    stop: tokio_util::sync::CancellationToken,
    state: Mutex<State>,
    upload_url: String,
    deliver: mpsc::UnboundedSender<Delivery>,
    /// The `drops-first-message` mutant has dropped its message.
    dropped_first: std::sync::atomic::AtomicBool,
}

/// A `JMessage` instance of the Web SDK V2, backed by a reference client.
pub struct SdkInstance {
    shared: Arc<Shared>,
    deliveries: tokio::sync::Mutex<mpsc::UnboundedReceiver<Delivery>>,
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

fn id_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn flag_to_group_type(v: Option<&mut Value>) {
    let groups: Vec<&mut Value> = match v {
        Some(Value::Array(a)) => a.iter_mut().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => vec![],
    };
    for g in groups {
        if let Some(m) = g.as_object_mut() {
            let f = m.shift_remove("flag").unwrap_or(Value::Null);
            m.insert("group_type".into(), f);
        }
    }
}

fn remove_in_list(v: Option<&mut Value>, fields: &[&str]) {
    if let Some(Value::Array(a)) = v {
        for m in a.iter_mut().filter_map(Value::as_object_mut) {
            for f in fields {
                m.shift_remove(*f);
            }
        }
    }
}

const EVENT_FIELDS: &[&str] = &[
    "event_id",
    "event_type",
    "from_username",
    "gid",
    "to_usernames",
    "ctime",
    "extra",
    "return_code",
    "from_appkey",
    "msg_ids",
    "from_gid",
    "msgid_list",
    "to_groups",
    "new_owner",
    "group_name",
    "ctime_ms",
    "media_id",
    "from_nickname",
    "from_eventid",
    "description",
];

/// The SDK's field filter on events (7.3); `convert` applies the type 55/56 conversions of the
/// live path.
fn filter_event(ev: &Value, convert: bool) -> Value {
    let mut out = super::pick(ev, EVENT_FIELDS);
    let ty = ev.get("event_type").and_then(Value::as_i64).unwrap_or(-1);
    if ty == 55 {
        let single = ev.get("from_gid").and_then(Value::as_i64) == Some(0);
        out.insert("type".into(), json!(if single { 0 } else { 1 }));
    }
    if convert && ty == 56 {
        match ev.get("extra").and_then(Value::as_i64) {
            Some(10) => {
                out.insert("by_self".into(), json!(false));
            }
            Some(59) => {
                out.insert("by_self".into(), json!(true));
            }
            _ => {}
        }
        out.shift_remove("extra");
    }
    if ty == 100 && ev.get("extra").and_then(Value::as_i64) == Some(7) {
        if let Some(parsed) = ev
            .get("description")
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            out.insert("description".into(), parsed);
        }
    }
    Value::Object(out)
}

fn conv_key_single(appkey: &str, username: &str) -> String {
    format!("3:{appkey}:{username}")
}

fn conv_key_group(gid: &Value) -> String {
    format!("4:{}", id_string(gid))
}

/// Methods that need only a connection (or nothing): no login check.
const NO_LOGIN: &[&str] = &[
    "onMsgReceive",
    "onEventNotification",
    "onSyncConversation",
    "onSyncEvent",
    "onSyncMsgReceipt",
    "onMsgReceiptChange",
    "onTransMsgRec",
    "onRoomMsg",
    "onDisconnect",
    "onUserInfUpdate",
    "onMutiUnreadMsgUpdate",
    "init",
    "isInit",
    "isLogin",
    "isConnect",
    "loginOut",
    "login",
    "register",
];

impl SdkInstance {
    /// Connects to the server at `base` (the SDK's `address`); `upload_url` is its `upload_file`.
    pub async fn connect(
        base: &str,
        upload_url: &str,
        config: ClientConfig,
    ) -> Result<SdkInstance, SdkError> {
        let stop = tokio_util::sync::CancellationToken::new();
        let client = connect_retrying(base, &config, &stop).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client: Mutex::new(Arc::new(client)),
            base: base.to_owned(),
            config,
            stop,
            state: Mutex::new(State {
                connected: true,
                ..State::default()
            }),
            upload_url: upload_url.to_owned(),
            deliver: tx,
            dropped_first: std::sync::atomic::AtomicBool::new(false),
        });
        let pump = shared.clone();
        tokio::spawn(async move { pump.pump().await });
        Ok(SdkInstance {
            shared,
            deliveries: tokio::sync::Mutex::new(rx),
        })
    }

    /// The underlying reference client of the current connection (raw frames; pushes are
    /// consumed by the facade).
    pub fn client(&self) -> Arc<Client> {
        self.shared.client()
    }

    /// Registers the app callback `listener` (`"onMsgReceive"`, `"onEventNotification"`…).
    pub fn listen(&self, listener: &str) {
        lock(&self.shared.state)
            .listeners
            .insert(listener.to_owned());
    }

    /// The next listener invocation within `limit`.
    pub async fn next_delivery(&self, limit: Duration) -> Option<Delivery> {
        super::first_within(&self.deliveries, limit, |_| true).await
    }

    /// The next invocation of `listener` within `limit`; other deliveries before it are dropped.
    pub async fn expect_delivery(&self, listener: &str, limit: Duration) -> Option<Value> {
        let wanted = |d: &Delivery| d.listener == listener;
        let d = super::first_within(&self.deliveries, limit, wanted).await?;
        Some(d.arg)
    }

    /// Requests of the current connection still waiting for their response (the app's
    /// calls and the facade's own, e.g. `sync_check`).
    pub fn awaiting_responses(&self) -> usize {
        self.shared.client().awaiting_responses()
    }

    /// Whether a user is logged in on the current, open connection.
    pub fn is_logged_in(&self) -> bool {
        let st = lock(&self.shared.state);
        st.username.is_some() && st.connected && !self.shared.client().is_closed()
    }

    /// Forgets what the instance accumulates while it lives (unread counters, the client's
    /// record of sent frames), for lasting instances that no app reads (admin devices).
    pub fn trim_records(&self) {
        lock(&self.shared.state).unread.clear();
        self.shared.client().clear_records();
    }

    /// Calls the public method `method` with `args`.
    pub async fn call(&self, method: &str, args: &[Value]) -> Result<SdkCall, SdkError> {
        let r = self.shared.call(method, args).await;
        match (self.shared.config.mutant, r) {
            (Some(Mutant::SwappedCallbacks), Ok(SdkCall::Callbacks(mut cb))) => {
                let success = cb.fail.take().map(|f| vec![f]);
                cb.fail = cb.success.take().and_then(|s| s.into_iter().next());
                cb.success = success;
                Ok(SdkCall::Callbacks(cb))
            }
            (_, r) => r,
        }
    }
}

impl Drop for SdkInstance {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.shared.client().inner.closed.cancel();
    }
}

enum Post {
    /// `(data)`.
    Data,
    /// `(data, msg)` with msg = the request plus `msg_id`.
    WithMsg(Value),
    /// `(data, extra)`.
    WithArg(Value),
}

/// The SDK's periodic `sync_check` interval (150 s), scaled like the ack timer (30 ack
/// timeouts).
fn sync_interval(config: &ClientConfig) -> Duration {
    (config.ack_timeout * 30).max(Duration::from_millis(100))
}

/// The Manager's reconnection schedule (protocol.md 1.7): 1 s doubled per attempt, at
/// most 5 s, here scaled like the ack timer (`ack_timeout / 5`) and without jitter.
fn reconnect_delay(config: &ClientConfig, attempt: u32) -> Duration {
    let first = (config.ack_timeout / 5).max(Duration::from_millis(20));
    (first * 2u32.saturating_pow(attempt.min(8))).min(first * 5)
}

/// Connects, retrying refused or failed handshakes on the reconnection schedule until
/// `connect_timeout` has passed (the SDK's `io()` never gives up; a bound keeps runs finite).
async fn connect_retrying(
    base: &str,
    config: &ClientConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Client, SdkError> {
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    let mut attempt = 0;
    loop {
        match Client::connect(base, config.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                let wait = reconnect_delay(config, attempt);
                if stop.is_cancelled() || tokio::time::Instant::now() + wait > deadline {
                    return Err(e.into());
                }
                attempt += 1;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return Err(SdkError::Closed),
                }
            }
        }
    }
}

impl Shared {
    fn client(&self) -> Arc<Client> {
        lock(&self.client).clone()
    }

    /// Waits (bounded) while a reconnection is under way, as the SDK buffers emits until
    /// its new socket is connected.
    async fn connection(&self) -> Arc<Client> {
        let deadline = tokio::time::Instant::now() + self.config.connect_timeout;
        while !lock(&self.state).connected
            && !self.stop.is_cancelled()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.client()
    }

    fn emit(&self, listener: &str, arg: Value) {
        let times = match self.config.mutant {
            Some(Mutant::DropsEvents) if listener == "onEventNotification" => 0,
            Some(Mutant::DropsFirstMessage)
                if listener == "onMsgReceive"
                    && !self
                        .dropped_first
                        .swap(true, std::sync::atomic::Ordering::Relaxed) =>
            {
                0
            }
            Some(Mutant::DuplicateDeliveries) => 2,
            _ => 1,
        };
        if times == 2 && lock(&self.state).listeners.contains(listener) {
            let _ = self.deliver.send(Delivery {
                listener: listener.to_owned(),
                arg: arg.clone(),
            });
        }
        if times > 0 && lock(&self.state).listeners.contains(listener) {
            let _ = self.deliver.send(Delivery {
                listener: listener.to_owned(),
                arg,
            });
        }
    }

    /// One of the SDK's own waits of `ms`, scaled by [`ClientConfig::sdk_waits`].
    fn sdk_wait(&self, ms: u64) -> Duration {
        Duration::from_secs_f64(ms as f64 * self.config.sdk_waits.clamp(0.0, 1.0) / 1000.0)
    }

    fn emit_later(self: &Arc<Self>, listener: &'static str, arg: Value, after: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            me.emit(listener, arg);
        });
    }

    async fn pump(self: Arc<Self>) {
        loop {
            let client = self.client();
            let push = tokio::select! {
                p = client.next_push(Duration::from_secs(3600)) => p,
                _ = client.closed() => None,
            };
            let Some(push) = push else {
                if client.is_closed() {
                    // Drain what arrived before the close.
                    for p in client.drain_pushes().await {
                        self.on_push(&p.event, p.payload);
                    }
                    // 2.6.0 (protocol.md 1.7): after a login, a disconnect not caused by
                    // loginOut clears appkey and user and calls onDisconnect.
                    let was_logged_in = {
                        let mut st = lock(&self.state);
                        st.connected = false;
                        let was = st.username.take().is_some();
                        if was {
                            st.appkey = None;
                        }
                        was
                    };
                    if was_logged_in {
                        self.emit("onDisconnect", Value::Null);
                    }
                    // Then a new connection at once; the app must init and login again.
                    if self.stop.is_cancelled() {
                        return;
                    }
                    match connect_retrying(&self.base, &self.config, &self.stop).await {
                        Ok(c) => {
                            *lock(&self.client) = Arc::new(c);
                            lock(&self.state).connected = true;
                        }
                        Err(e) => {
                            tracing::debug!("sdk facade: reconnecting failed: {e}");
                            return;
                        }
                    }
                }
                continue;
            };
            self.on_push(&push.event, push.payload);
        }
    }

    fn on_push(self: &Arc<Self>, event: &str, payload: Value) {
        let (me, my_appkey) = {
            let st = lock(&self.state);
            match &st.username {
                Some(u) => (u.clone(), st.appkey.clone().unwrap_or_default()),
                None => return,
            }
        };
        match event {
            "msg_sync" => {
                let mut payload = payload;
                if let Some(msgs) = payload.get_mut("messages").and_then(Value::as_array_mut) {
                    for m in msgs.iter_mut() {
                        self.enrich_message(m, &me, &my_appkey);
                    }
                }
                self.emit("onMsgReceive", payload);
            }
            "event_notification" => {
                let ty = payload
                    .get("event_type")
                    .and_then(Value::as_i64)
                    .unwrap_or(-1);
                if ty == 200 {
                    self.conversation_read_elsewhere(&payload, &my_appkey);
                    return;
                }
                self.emit("onEventNotification", filter_event(&payload, true));
                if ty == 1 || ty == 2 {
                    lock(&self.state).username = None;
                    self.client().disconnect();
                }
            }
            "sync_conversation" => self.on_sync_conversation(payload),
            "sync_event" => {
                // The SDK takes the push's sync_key as its event key (and stores it).
                {
                    let mut st = lock(&self.state);
                    if let Some(k) = payload.get("sync_key").cloned() {
                        st.sync.insert("sync_event_key".into(), k);
                    }
                    st.store_event_key(payload.get("sync_key"));
                }
                let events: Vec<Value> = payload
                    .get("events")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|e| e.get("event_type").and_then(Value::as_i64) != Some(200))
                    .map(|e| filter_event(e, false))
                    .collect();
                if !events.is_empty() {
                    self.emit_later("onSyncEvent", Value::Array(events), self.sdk_wait(1700));
                }
            }
            "sync_receipt" => self.on_sync_receipt(payload),
            "receipt_change" => self.emit("onMsgReceiptChange", payload),
            "trans_msg_rec" => self.emit("onTransMsgRec", payload),
            "room_msg_sync" => self.emit("onRoomMsg", payload),
            "room_msg_sync_his" => {
                for room in payload
                    .get("messages")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for m in room
                        .get("msgs")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        self.emit("onRoomMsg", m.clone());
                    }
                }
            }
            _ => {}
        }
    }

    /// `sync_conversation`: each conversation's unsynced messages become its unread
    /// count, then `onSyncConversation`.
    fn on_sync_conversation(self: &Arc<Self>, payload: Value) {
        let mut msgs = payload.get("messages").cloned().unwrap_or(json!([]));
        if let Some(a) = msgs.as_array_mut() {
            for c in a.iter_mut().filter_map(Value::as_object_mut) {
                let n = c.shift_remove("unsync_count").unwrap_or(json!(0));
                let key = if c.get("msg_type").and_then(Value::as_i64) == Some(4) {
                    conv_key_group(c.get("from_gid").unwrap_or(&Value::Null))
                } else {
                    conv_key_single(
                        c.get("from_appkey").and_then(Value::as_str).unwrap_or(""),
                        c.get("from_username").and_then(Value::as_str).unwrap_or(""),
                    )
                };
                let count = n.as_i64().unwrap_or(0).max(0) as usize;
                let times: Vec<i64> = c
                    .get("msgs")
                    .and_then(Value::as_array)
                    .map(|m| {
                        let skip = m.len().saturating_sub(count);
                        m[skip..]
                            .iter()
                            .map(|x| x.get("ctime_ms").and_then(Value::as_i64).unwrap_or(0))
                            .collect()
                    })
                    .unwrap_or_default();
                lock(&self.state).unread.insert(key, times);
                c.insert("unread_msg_count".into(), n);
            }
            if !a.is_empty() {
                self.emit("onSyncConversation", msgs);
            }
        }
    }

    /// `sync_receipt`: the receipts of one conversation merged, then `onSyncMsgReceipt`
    /// after the SDK's wait.
    fn on_sync_receipt(self: &Arc<Self>, payload: Value) {
        let mut merged: Vec<Value> = Vec::new();
        for r in payload
            .get("receipts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let msgs = r.get("receipt_msgs").and_then(Value::as_array);
            if msgs.is_none_or(|m| m.is_empty()) {
                continue;
            }
            let same = |a: &Value| {
                a.get("type") == r.get("type")
                    && a.get("gid") == r.get("gid")
                    && a.get("appkey") == r.get("appkey")
                    && a.get("username") == r.get("username")
            };
            match merged.iter_mut().find(|a| same(a)) {
                Some(a) => {
                    if let Some(list) = a.get_mut("receipt_msgs").and_then(Value::as_array_mut) {
                        list.extend(msgs.into_iter().flatten().cloned());
                    }
                }
                None => merged.push(r.clone()),
            }
        }
        if !merged.is_empty() {
            self.emit_later(
                "onSyncMsgReceipt",
                Value::Array(merged),
                self.sdk_wait(1500),
            );
        }
    }

    /// Event 200 (7.3.2): messages newer than `ctime_ms` stay unread; a drop in the count
    /// fires `onMutiUnreadMsgUpdate`.
    fn conversation_read_elsewhere(&self, ev: &Value, my_appkey: &str) {
        let d = ev.get("description").cloned().unwrap_or(Value::Null);
        let read_at = ev.get("ctime_ms").and_then(Value::as_i64).unwrap_or(0);
        let group = d.get("type").and_then(Value::as_i64) == Some(4);
        let appkey = d
            .get("appkey")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .unwrap_or(my_appkey)
            .to_owned();
        let username = d.get("username").and_then(Value::as_str).unwrap_or("");
        let key = if group {
            conv_key_group(d.get("gid").unwrap_or(&Value::Null))
        } else {
            conv_key_single(&appkey, username)
        };
        let (before, after) = {
            let mut st = lock(&self.state);
            let list = st.unread.entry(key).or_default();
            let before = list.len();
            list.retain(|t| *t > read_at);
            (before, list.len())
        };
        if after < before {
            let arg = if group {
                json!({"type": 4, "gid": d.get("gid").cloned().unwrap_or(Value::Null), "unreadCount": after})
            } else {
                json!({"type": 3, "username": username, "appkey": appkey, "unreadCount": after})
            };
            self.emit("onMutiUnreadMsgUpdate", arg);
        }
    }

    fn enrich_message(&self, m: &mut Value, me: &str, my_appkey: &str) {
        let Some(obj) = m.as_object_mut() else {
            return;
        };
        let group = obj.get("msg_type").and_then(Value::as_i64) == Some(4);
        let content = obj.get("content").cloned().unwrap_or(Value::Null);
        let from_id = content.get("from_id").cloned().unwrap_or(Value::Null);
        let from_appkey = content.get("from_appkey").cloned().unwrap_or(Value::Null);
        let ctime = obj.get("ctime_ms").and_then(Value::as_i64).unwrap_or(0);
        if group {
            let gid = obj.get("from_gid").cloned().unwrap_or(Value::Null);
            obj.insert("key".into(), gid.clone());
            if from_id.as_str() != Some(me) {
                lock(&self.state)
                    .unread
                    .entry(conv_key_group(&gid))
                    .or_default()
                    .push(ctime);
            }
        } else {
            obj.insert(
                "key".into(),
                obj.get("from_uid").cloned().unwrap_or(Value::Null),
            );
            obj.insert("from_username".into(), from_id.clone());
            obj.insert("from_appkey".into(), from_appkey.clone());
            if from_id.as_str() != Some(me) {
                let ak = from_appkey.as_str().unwrap_or(my_appkey);
                lock(&self.state)
                    .unread
                    .entry(conv_key_single(ak, from_id.as_str().unwrap_or("")))
                    .or_default()
                    .push(ctime);
            }
        }
        if let Some(level) = obj.get("msg_level").and_then(Value::as_i64) {
            let l = if level == 1 { "across" } else { "normal" };
            obj.insert("msg_level".into(), json!(l));
        }
        // sui_mtime → onUserInfUpdate when the sender's mtime is known.
        let uid = obj.get("from_uid").and_then(Value::as_i64);
        let sui = obj
            .get_mut("content")
            .and_then(Value::as_object_mut)
            .and_then(|c| c.get("sui_mtime").and_then(Value::as_i64).map(|s| (c, s)));
        if let (Some(uid), Some((c, sui))) = (uid, sui) {
            let newer = {
                let mut st = lock(&self.state);
                match st.mtimes.get(&uid) {
                    Some(&known) if sui * 1000 > known => {
                        st.mtimes.insert(uid, sui * 1000);
                        true
                    }
                    _ => false,
                }
            };
            if newer {
                c.shift_remove("sui_mtime");
                self.emit(
                    "onUserInfUpdate",
                    json!({"from_username": from_id, "from_appkey": from_appkey, "mtime": sui}),
                );
            }
        }
    }

    /// Sends `event` and maps the outcome onto callbacks; `hook` post-processes a code-0 body
    /// and returns false when the SDK's handler would throw (no callback).
    async fn send(
        &self,
        event: &str,
        payload: Value,
        post: Post,
        hook: impl FnOnce(&Shared, &mut Map<String, Value>) -> bool,
    ) -> Result<SdkCall, SdkError> {
        let res = self
            .connection()
            .await
            .request(event, payload.clone())
            .await;
        let mut cb = Callbacks::default();
        let (body, acked) = match res {
            Ok(r) => (r.body, r.acked),
            Err(RequestError::Failed(b)) => (b, true),
            Err(RequestError::AckTimeout { rid, .. }) => {
                cb.timeout = Some(json!({"rid": rid, "data": payload, "response_timeout": false}));
                return Ok(SdkCall::Callbacks(cb));
            }
            Err(RequestError::ResponseTimeout { rid, .. }) => {
                cb.ack = true;
                cb.timeout = Some(json!({"rid": rid, "data": payload, "response_timeout": true}));
                return Ok(SdkCall::Callbacks(cb));
            }
            Err(RequestError::Closed) => return Err(SdkError::Closed),
        };
        cb.ack = acked;
        let mut body = body;
        body.shift_remove("rid");
        let code = body.get("code").and_then(Value::as_i64).unwrap_or(0);
        if code != 0 {
            cb.fail = Some(Value::Object(body));
            return Ok(SdkCall::Callbacks(cb));
        }
        if !hook(self, &mut body) {
            return Ok(SdkCall::Callbacks(cb));
        }
        let data = Value::Object(body);
        cb.success = Some(match post {
            Post::Data => vec![data],
            Post::WithMsg(mut msg) => {
                if let Some(m) = msg.as_object_mut() {
                    m.insert(
                        "msg_id".into(),
                        data.get("msg_id").cloned().unwrap_or(Value::Null),
                    );
                }
                vec![data, msg]
            }
            Post::WithArg(a) => vec![data, a],
        });
        Ok(SdkCall::Callbacks(cb))
    }

    /// Sends the call's argument as it is (the map is taken) and reports the answer.
    async fn forward(&self, event: &str, o: &mut Map<String, Value>) -> Result<SdkCall, SdkError> {
        self.plain(event, Value::Object(std::mem::take(o))).await
    }

    async fn plain(&self, event: &str, payload: Value) -> Result<SdkCall, SdkError> {
        self.send(event, payload, Post::Data, |_, _| true).await
    }

    fn own(&self) -> (String, String) {
        let st = lock(&self.state);
        (
            st.username.clone().unwrap_or_default(),
            st.appkey.clone().unwrap_or_default(),
        )
    }

    async fn call(self: &Arc<Self>, method: &str, args: &[Value]) -> Result<SdkCall, SdkError> {
        let mut o: Map<String, Value> = args
            .first()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let (logged_in, inited, connected) = {
            let st = lock(&self.state);
            (st.username.is_some(), st.appkey.is_some(), st.connected)
        };
        if !NO_LOGIN.contains(&method) && !logged_in {
            // The SDK's own message (`__checkLogin`).
            return Ok(SdkCall::Thrown("must login first".into()));
        }
        if (method == "login" || method == "register") && !inited {
            // The SDK's own message (`__checkInit`).
            return Ok(SdkCall::Thrown("must init first".into()));
        }
        let (me, own_appkey) = self.own();
        let cx = CallContext {
            me,
            own_appkey,
            inited,
            logged_in,
            connected,
        };
        let o = &mut o;
        // By area, as backend/ is split; the first area that knows the method answers.
        if let Some(c) = self.call_session(method, o, &cx).await? {
            return Ok(c);
        }
        if let Some(c) = self.call_users(method, o, &cx).await? {
            return Ok(c);
        }
        if let Some(c) = self.call_messages(method, o, &cx).await? {
            return Ok(c);
        }
        if let Some(c) = self.call_groups(method, o).await? {
            return Ok(c);
        }
        if let Some(c) = self.call_rooms(method, o).await? {
            return Ok(c);
        }
        if let Some(c) = self.call_social(method, o).await? {
            return Ok(c);
        }
        Err(SdkError::UnknownMethod(method.to_owned()))
    }

    fn cache_rooms(&self, rooms: &[Value]) {
        let mut st = lock(&self.state);
        for r in rooms {
            if let Some(id) = r.get("id") {
                st.rooms.insert(id_string(id), r.clone());
            }
        }
    }

    fn conv_key(&self, o: &Map<String, Value>, own_appkey: &str) -> String {
        match o.get("gid") {
            Some(g) => conv_key_group(g),
            None => conv_key_single(
                o.get("appkey")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or(own_appkey),
                o.get("username").and_then(Value::as_str).unwrap_or(""),
            ),
        }
    }

    async fn sync_check(&self) {
        let payload = Value::Object(lock(&self.state).sync.clone());
        if let Ok(r) = self.client().request("sync_check", payload).await {
            if r.code() == 0 {
                let mut st = lock(&self.state);
                for k in ["sync_key", "sync_type", "sync_event_key", "msg_receipt_key"] {
                    match r.body.get(k) {
                        Some(v) => st.sync.insert(k.into(), v.clone()),
                        None => st.sync.shift_remove(k),
                    };
                }
                let key = r.body.get("sync_event_key").cloned();
                st.store_event_key(key.as_ref());
            }
        }
    }

    /// Builds and sends one of the fifteen message methods.
    async fn send_msg(
        &self,
        method: &str,
        o: Map<String, Value>,
        me: &str,
        own_appkey: &str,
    ) -> Result<SdkCall, SdkError> {
        let (target_type, event, target_key, name_key) = if method.starts_with("sendSingle") {
            (
                "single",
                "s_across_single_text",
                "target_username",
                "target_nickname",
            )
        } else if method.starts_with("sendGroup") {
            ("group", "send_group_msg", "target_gid", "target_gname")
        } else {
            ("chatroom", "send_room_msg", "target_rid", "target_rname")
        };
        let kind = method
            .trim_start_matches("sendSingle")
            .trim_start_matches("sendGroup")
            .trim_start_matches("sendChatroom");
        let (msg_type, msg_body) = match self.msg_body(method, kind, target_type, &o).await? {
            Ok(built) => built,
            Err(call) => return Ok(call),
        };
        let target = o.get(target_key).map(id_string).unwrap_or_default();
        let mut target_name = o.get(name_key).cloned().filter(|v| !v.is_null());
        if target_type == "chatroom" && target_name.is_none() {
            let cached = lock(&self.state)
                .rooms
                .get(&target)
                .and_then(|r| r.get("name").cloned());
            target_name = Some(cached.unwrap_or(json!("")));
        }
        let mut content = Map::new();
        content.insert("version".into(), json!(1));
        content.insert("target_type".into(), json!(target_type));
        content.insert("from_platform".into(), json!("web"));
        content.insert("target_id".into(), json!(target));
        if let Some(n) = &target_name {
            content.insert("target_name".into(), n.clone());
        }
        content.insert("from_id".into(), json!(me));
        content.insert("create_time".into(), json!(now_ms()));
        content.insert("msg_type".into(), json!(msg_type));
        content.insert("msg_body".into(), msg_body);
        let app_appkey = o.get("appkey").filter(|a| truthy(Some(a))).cloned();
        if target_type == "single" {
            if let Some(a) = &app_appkey {
                content.insert("target_appkey".into(), a.clone());
                content.insert("from_appkey".into(), json!(own_appkey));
            }
        }
        let req = msg_request(
            &o,
            content,
            target_type,
            &target,
            target_name,
            app_appkey,
            own_appkey,
        );
        let post = if target_type == "single" {
            Post::Data
        } else {
            Post::WithMsg(req.clone())
        };
        self.send(event, req, post, |_, _| true).await
    }

    /// The message type and body a `send*` call builds (`Err`: what the app sees when the
    /// SDK refuses the call before sending).
    async fn msg_body(
        &self,
        method: &str,
        kind: &str,
        target_type: &str,
        o: &Map<String, Value>,
    ) -> Result<Result<(&'static str, Value), SdkCall>, SdkError> {
        let extras = o.get("extras").cloned();
        let with_extras = |mut body: Value| {
            if let (Some(e), Some(m)) = (&extras, body.as_object_mut()) {
                m.insert("extras".into(), e.clone());
            }
            body
        };
        let forwarded = o.get("msg_body").filter(|b| b.is_object()).cloned();
        let built = match kind {
            "Msg" => {
                let body = match forwarded {
                    Some(b) => b,
                    None => {
                        let mut text = o.get("content").cloned().unwrap_or(Value::Null);
                        if !truthy(Some(&text)) {
                            if target_type != "single" && o.contains_key("at_list") {
                                text = json!(" ");
                            } else {
                                return Ok(Err(SdkCall::Ignored("text content is empty".into())));
                            }
                        }
                        with_extras(json!({"text": text}))
                    }
                };
                ("text", body)
            }
            "Pic" | "File" => match self.media_body(kind, o, forwarded, extras).await? {
                Ok(body) => (if kind == "Pic" { "image" } else { "file" }, body),
                Err(call) => return Ok(Err(call)),
            },
            "Location" => {
                let body = match forwarded {
                    Some(b) => b,
                    None => {
                        let mut b = Map::new();
                        for f in ["latitude", "longitude", "scale", "label"] {
                            b.insert(f.into(), o.get(f).cloned().unwrap_or(Value::Null));
                        }
                        with_extras(Value::Object(b))
                    }
                };
                for f in ["latitude", "longitude", "scale", "label"] {
                    if !truthy(body.get(f)) {
                        return Ok(Err(SdkCall::Ignored(format!("{f} is empty"))));
                    }
                }
                ("location", body)
            }
            "Custom" => {
                let body = match forwarded.or_else(|| o.get("custom").cloned()) {
                    Some(b @ Value::Object(_)) => with_extras(b),
                    _ => return Ok(Err(SdkCall::Ignored("custom is not an object".into()))),
                };
                ("custom", body)
            }
            _ => return Err(SdkError::UnknownMethod(method.to_owned())),
        };
        Ok(Ok(built))
    }

    /// A picture's or file's body: uploaded from the call's file, or rebuilt from the
    /// forwarded `msg_body`.
    async fn media_body(
        &self,
        kind: &str,
        o: &Map<String, Value>,
        forwarded: Option<Value>,
        extras: Option<Value>,
    ) -> Result<Result<Value, SdkCall>, SdkError> {
        let (field, utype, required): (&str, &str, &[&str]) = if kind == "Pic" {
            (
                "image",
                "image",
                &["media_id", "media_crc32", "width", "height"],
            )
        } else {
            (
                "file",
                "file",
                &["media_id", "media_crc32", "fsize", "fname"],
            )
        };
        // The SDK rebuilds the body from a fixed field list, whether it comes from
        // the upload answer (extras from the call) or from `msg_body` (its own
        // extras); fields the source lacks are left out.
        let (source, extras) = match forwarded {
            Some(b) => {
                let e = b.get("extras").cloned();
                (b, e)
            }
            None => {
                let file = o.get(field).cloned().unwrap_or(Value::Null);
                match self.upload(&file, utype).await? {
                    Ok(up) => (up, extras),
                    Err(call) => return Ok(Err(call)),
                }
            }
        };
        let fields: &[&str] = if kind == "Pic" {
            &[
                "media_id",
                "media_crc32",
                "width",
                "height",
                "format",
                "fsize",
            ]
        } else {
            &["media_id", "media_crc32", "hash", "fsize", "fname"]
        };
        let mut b = super::pick(&source, fields);
        if let Some(e) = extras.filter(|e| truthy(Some(e))) {
            b.insert("extras".into(), e);
        }
        let body = Value::Object(b);
        if let Some(missing) = required.iter().find(|f| !truthy(body.get(**f))) {
            return Ok(Err(SdkCall::Ignored(format!(
                "msg_body.{missing} is empty"
            ))));
        }
        Ok(Ok(body))
    }

    /// `get_upload_token` then the HTTP upload; `Err(call)` is what the app sees on failure.
    async fn upload(&self, file: &Value, kind: &str) -> Result<Result<Value, SdkCall>, SdkError> {
        let Some(f) = file.get("$file") else {
            return Ok(Err(SdkCall::Ignored(
                "no {\"$file\": …} upload argument".into(),
            )));
        };
        let name = f.get("name").and_then(Value::as_str).unwrap_or("upload");
        let ctype = f
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream");
        let data = base64::engine::general_purpose::STANDARD
            .decode(f.get("base64").and_then(Value::as_str).unwrap_or(""))
            .map_err(|e| SdkError::Upload(format!("bad base64: {e}")))?;
        let token = match self.plain("get_upload_token", json!({})).await? {
            SdkCall::Callbacks(Callbacks {
                success: Some(s), ..
            }) => s
                .first()
                .and_then(|d| d.get("uptoken"))
                .map(id_string)
                .unwrap_or_default(),
            other => return Ok(Err(other)),
        };
        let (me, appkey) = self.own();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{me}:{token}"));
        let boundary = format!("----jmsdkfacade{:x}", now_ms());
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let (status, text) = http_post(
            &format!("{}?type={kind}", self.upload_url),
            &[
                ("X-App-Key", appkey.as_str()),
                ("jm-channel", "w"),
                ("Authorization", &format!("Basic {auth}")),
                (
                    "Content-Type",
                    &format!("multipart/form-data; boundary={boundary}"),
                ),
            ],
            body,
        )
        .await?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status == 200 {
            return Ok(match parsed {
                Some(v @ Value::Object(_)) => Ok(v),
                _ => Err(SdkCall::Ignored(format!(
                    "unparsable upload answer: {text}"
                ))),
            });
        }
        let fail = match parsed {
            Some(v) if v.pointer("/error/code").and_then(Value::as_i64) == Some(898061) => {
                json!({"code": 880210, "message": "file size exceed limit"})
            }
            Some(v @ Value::Object(_)) if v.get("error").is_some() => v,
            _ => json!({"code": 880210, "message": "file size exceed the limit"}),
        };
        Ok(Err(SdkCall::Callbacks(Callbacks {
            fail: Some(fail),
            ..Callbacks::default()
        })))
    }
}

/// The request of a `send*` call around its `content` (the SDK's key order).
fn msg_request(
    o: &Map<String, Value>,
    content: Map<String, Value>,
    target_type: &str,
    target: &str,
    target_name: Option<Value>,
    app_appkey: Option<Value>,
    own_appkey: &str,
) -> Value {
    let mut req = Map::new();
    req.insert("content".into(), Value::Object(content));
    let exactly_true = |k: &str| json!(o.get(k) == Some(&Value::Bool(true)));
    req.insert("no_offline".into(), exactly_true("no_offline"));
    req.insert("no_notification".into(), exactly_true("no_notification"));
    if target_type != "chatroom" {
        if let Some(c) = o.get("custom_notification") {
            req.insert("custom_notification".into(), c.clone());
        }
    }
    if let Some(n) = &target_name {
        req.insert("target_name".into(), n.clone());
    }
    if target_type != "chatroom" {
        if let Some(r) = o.get("need_receipt") {
            req.insert("need_receipt".into(), r.clone());
        }
    }
    match target_type {
        "single" => {
            req.insert("target_id".into(), json!(target));
            req.insert(
                "appkey".into(),
                app_appkey.unwrap_or_else(|| json!(own_appkey)),
            );
        }
        "group" => {
            req.insert("target_gid".into(), json!(target));
            if let Some(at) = o.get("at_list") {
                req.insert("users".into(), at.clone());
            }
            req.insert("appkey".into(), json!(own_appkey));
        }
        _ => {
            req.insert("target_gid".into(), json!(target));
            req.insert("appkey".into(), json!(own_appkey));
        }
    }
    Value::Object(req)
}

fn hash_password(o: &mut Map<String, Value>, field: &str) {
    if truthy(o.get("is_md5")) {
        return;
    }
    if let Some(p) = o.get(field).map(id_string) {
        o.insert(field.into(), json!(md5_hex(&p)));
    }
}

/// A POST to an `http://host:port/path?query` URL on a fresh connection.
async fn http_post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, String), SdkError> {
    use http_body_util::{BodyExt, Full};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| SdkError::Upload(format!("only http:// upload URLs: {url}")))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let err = |e: String| SdkError::Upload(e);
    let stream = tokio::net::TcpStream::connect(hostport)
        .await
        .map_err(|e| err(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| err(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", hostport);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| err(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| err(e.to_string()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filter_drops_unknown_fields_and_converts_55_56_100() {
        let ev = json!({"event_id": 1, "event_type": 55, "from_gid": 0, "msgid_list": [3],
                        "secret": "x", "target_appkey": "k"});
        let f = filter_event(&ev, true);
        assert_eq!(
            f,
            json!({"event_id": 1, "event_type": 55, "from_gid": 0, "msgid_list": [3], "type": 0})
        );
        let f = filter_event(&json!({"event_type": 55, "from_gid": 7}), true);
        assert_eq!(f["type"], json!(1));
        let f = filter_event(&json!({"event_type": 55}), true);
        assert_eq!(f["type"], json!(1), "absent from_gid yields 1");
        let f = filter_event(&json!({"event_type": 56, "extra": 59}), true);
        assert_eq!(f, json!({"event_type": 56, "by_self": true}));
        let f = filter_event(&json!({"event_type": 56, "extra": 10}), true);
        assert_eq!(f, json!({"event_type": 56, "by_self": false}));
        // The sync_event path keeps extra and adds no by_self.
        let f = filter_event(&json!({"event_type": 56, "extra": 10}), false);
        assert_eq!(f, json!({"event_type": 56, "extra": 10}));
        let f = filter_event(
            &json!({"event_type": 100, "extra": 7, "description": "{\"memo_name\":\"m\"}"}),
            true,
        );
        assert_eq!(f["description"], json!({"memo_name": "m"}));
    }

    #[test]
    fn flag_becomes_group_type_on_lists_and_objects() {
        let mut v = json!([{"gid": 1, "flag": 2}, {"gid": 2, "flag": 0}]);
        flag_to_group_type(Some(&mut v));
        assert_eq!(
            v,
            json!([{"gid": 1, "group_type": 2}, {"gid": 2, "group_type": 0}])
        );
        let mut o = json!({"gid": 1, "flag": 1});
        flag_to_group_type(Some(&mut o));
        assert_eq!(o, json!({"gid": 1, "group_type": 1}));
    }

    #[test]
    fn passwords_are_md5_unless_is_md5_and_truthiness_is_javascript_like() {
        let mut o = Map::new();
        o.insert("password".into(), json!("pw"));
        hash_password(&mut o, "password");
        assert_eq!(o["password"], json!(md5_hex("pw")));
        let mut o = Map::new();
        o.insert("password".into(), json!("ABC"));
        o.insert("is_md5".into(), json!(true));
        hash_password(&mut o, "password");
        assert_eq!(o["password"], json!("ABC"));
        assert!(!truthy(Some(&json!(0))) && !truthy(Some(&json!(""))) && !truthy(None));
        assert!(truthy(Some(&json!("0"))) && truthy(Some(&json!({}))));
        assert_eq!(id_string(&json!(12)), "12");
    }
}
