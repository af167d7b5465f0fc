//! The protocol oracle: judges what clients send against the protocol as the official
//! Web SDK speaks it (docs/protocol.md, rules in docs/rules.md).
//!
//! It is an [`Observer`] of the fault layer, so it sees every frame that reaches a peer
//! (frames a fault drops are not shown to it) and keeps per-connection state: whether
//! `c_init` and login succeeded, the recent rids with their send count and last send,
//! the messages and sync pushes the client still owes a confirmation for. What a client
//! breaks becomes a [`Finding`]: journaled as kind `violation`, logged at warn level,
//! graded by conformance runs ([`rules::grade`]). Malformed fire-and-forget
//! confirmations (`msg_recv_v2`, the sync acks) are refused on the wire with 880001 /
//! 880004, as the backend would otherwise take them.
//!
//! Memory is bounded: per connection at most [`MAX_RIDS`] rids, [`MAX_PENDING`] pending
//! confirmations; per user (for keys and messages that outlive a reconnect) at most
//! [`MAX_USER_ITEMS`] keys and messages, for at most [`MAX_USERS`] users (the oldest
//! user is forgotten first; a user is remembered from the first key, message or event
//! pushed to it). Timer rules use the scenario's `time_scale`.
//!
//! Every request is judged under one lock with a few lookups: rids and events are small
//! keys (`book.rs`), each recent rid of a connection has one record (what was sent, when,
//! whether it was acknowledged), and responses other than to `c_init`, `login` and
//! `sync_check` are not looked at (they change nothing the rules read).

mod book;
mod echo;
pub mod rules;

use crate::faults::{Finding, Observer};
use crate::protocol::{self, Code, Event, Failure, Needs, Rid};
use crate::transport::{FrameKind, FrameTag};
use book::{Ev, Recent, RidKey, Rids, Sent};
use rules::Ty;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Recent rids remembered per connection (the last this many new ones, see `book.rs`).
pub const MAX_RIDS: usize = 256;
/// Pending confirmations (messages, sync pushes) per connection.
pub const MAX_PENDING: usize = 1024;
/// Sync keys and pushed message ids remembered per user.
pub const MAX_USER_ITEMS: usize = 1024;
/// Users remembered.
pub const MAX_USERS: usize = 4096;
/// Recent requests remembered across connections (retries carried over a reconnect;
/// stored: at most 7/4 of it, see `book.rs`).
pub const MAX_RECENT: usize = 4096;
/// Most transmissions of one request (the SDK's RETRY_TIMES).
pub const MAX_SENDS: u32 = 5;
/// The SDK's ack timeout, unscaled.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// A resend after an unacknowledged send is late (JMP-TIME-002) beyond this many ack
/// timeouts: the SDK resends at one; the response timer, which re-sends even when the ack
/// timer does not, is at six.
pub const RESEND_SLACK: u32 = 3;

#[derive(Default)]
struct Conn {
    user: Option<Arc<str>>,
    init_ok: bool,
    logged_in: bool,
    /// Rids of `c_init` and `login` requests whose response has not gone out yet (at
    /// most [`MAX_RIDS`]: beyond, all are forgotten).
    awaiting: Vec<RidKey>,
    /// The username of the last login request.
    login_name: Option<Arc<str>>,
    /// The recent rids and what was sent under each.
    rids: Rids,
    /// Messages pushed in msg_sync and not confirmed yet: (msg_id, pushed at).
    msgs: VecDeque<(i64, Instant)>,
    /// Sync pushes not acknowledged yet: (ack event, sync_key, pushed at).
    syncs: VecDeque<(&'static str, i64, Instant)>,
    /// `event_notification` pushes of type 1 not echoed yet: (event_id, pushed at).
    echoes: VecDeque<(i64, Instant)>,
    /// A fault dropped an inbound frame: confirmations may come only with the SDK's
    /// resends, so they get the whole resend budget (5 sends, 5 s apart).
    lossy: bool,
}

#[derive(Default)]
struct UserMemory {
    keys: VecDeque<i64>,
    msgs: VecDeque<i64>,
    /// Event ids pushed as event type 1 (echoes name them).
    events: VecDeque<i64>,
}

#[derive(Default)]
struct Users {
    map: FastMap<Arc<str>, UserMemory>,
    order: VecDeque<Arc<str>>,
}

impl Users {
    /// What is remembered of `user`, if anything.
    fn get(&self, user: Option<&Arc<str>>) -> Option<&UserMemory> {
        self.map.get(user?)
    }

    /// The memory of `user`, created (and the oldest user forgotten) as needed.
    fn memory(&mut self, user: &Arc<str>) -> &mut UserMemory {
        if !self.map.contains_key(user) {
            if self.order.len() >= MAX_USERS {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
            self.order.push_back(user.clone());
        }
        self.map.entry(user.clone()).or_default()
    }
}

#[derive(Default)]
struct Inner {
    /// Boxed: the table holds a pointer per connection, not the whole state (a table
    /// has up to twice as many slots as entries; 10,000 connections cost ~140 bytes
    /// less each).
    conns: FastMap<u64, Box<Conn>>,
    users: Users,
    /// Recent (event, rid) on any connection: a request seen again on a new connection
    /// is a retry carried over a reconnect, which the SDK sends before c_init.
    recent: Recent,
}

/// The oracle (see the module docs).
pub struct Oracle {
    inner: Mutex<Inner>,
    /// The scenario's `time_scale`, as the bits of an f64 (read on every request).
    scale: AtomicU64,
}

/// Every request is looked up in these maps, so they hash with foldhash (fast,
/// seeded per process) instead of SipHash.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A payload's field: a scan for the small objects requests are (serde_json's map
/// hashes every key with SipHash), a lookup for larger ones.
fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if m.len() > 16 {
        return m.get(name);
    }
    m.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v)
}

/// A request's fingerprint without its rid: a resend must carry the same request. Key
/// order counts, as it does on the wire.
fn fingerprint(payload: &Map<String, Value>) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = foldhash::fast::FixedState::default().build_hasher();
    for (k, v) in payload.iter().filter(|(k, _)| k.as_str() != "rid") {
        k.hash(&mut h);
        hash_value(v, &mut h);
    }
    h.finish()
}

fn hash_value(v: &Value, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => (2u8, i).hash(h),
            (None, Some(u)) => (3u8, u).hash(h),
            _ => (4u8, n.as_f64().map(f64::to_bits)).hash(h),
        },
        Value::String(s) => (5u8, s).hash(h),
        Value::Array(a) => {
            (6u8, a.len()).hash(h);
            a.iter().for_each(|v| hash_value(v, h));
        }
        Value::Object(m) => {
            (7u8, m.len()).hash(h);
            for (k, v) in m {
                k.hash(h);
                hash_value(v, h);
            }
        }
    }
}

/// Appends `item`, first dropping (and returning) the oldest when `q` holds `max`.
fn push_bounded<T>(q: &mut VecDeque<T>, item: T, max: usize) -> Option<T> {
    let old = if q.len() >= max { q.pop_front() } else { None };
    q.push_back(item);
    old
}

/// The event and payload of a Socket.IO event frame (`42[...]`).
pub fn parse_event(frame: &str) -> Option<(String, Value)> {
    let body = frame.strip_prefix("42")?;
    serde_json::from_str::<(String, Value)>(body).ok()
}

fn int(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| v.as_i64())
}

/// An integer field of a payload.
fn int_field(m: &Map<String, Value>, name: &str) -> Option<i64> {
    int(field(m, name))
}

impl Default for Oracle {
    fn default() -> Self {
        Self::new()
    }
}

impl Oracle {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            scale: AtomicU64::new(1.0f64.to_bits()),
        }
    }

    /// Scales the SDK's timers as the scenario's `time_scale` scales the client's.
    pub fn set_time_scale(&self, scale: f64) {
        self.scale.store(scale.to_bits(), Ordering::Relaxed);
    }

    fn window(&self) -> Duration {
        let scale = f64::from_bits(self.scale.load(Ordering::Relaxed));
        // A NaN (never set by a checked scenario) counts as no scaling.
        let scale = if scale.is_nan() { 1.0 } else { scale };
        ACK_TIMEOUT.mul_f64(scale.clamp(0.0001, 1000.0))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::lock::lock(&self.inner)
    }

    /// Judges an inbound frame at `now`; `Some(code)` when the service refuses it.
    pub fn judge_inbound(
        &self,
        conn: u64,
        user: Option<&Arc<str>>,
        frame: &str,
        now: Instant,
        found: &mut Vec<Finding>,
    ) -> Option<Code> {
        let (event, Value::Object(payload)) = parse_event(frame)? else {
            return None;
        };
        self.judge_event(conn, user, &event, &payload, now, found)
    }

    /// [`Oracle::judge_inbound`] on an event already parsed (the fault layer parses each
    /// inbound frame once and hands the result over).
    pub fn judge_event(
        &self,
        conn: u64,
        user: Option<&Arc<str>>,
        event: &str,
        payload: &Map<String, Value>,
        now: Instant,
        found: &mut Vec<Finding>,
    ) -> Option<Code> {
        let rid = RidKey::of_payload(payload)?;
        let window = self.window();
        let ev = Ev::of(event);
        let mut inner = self.lock();
        let Inner {
            conns,
            users,
            recent,
        } = &mut *inner;
        let c = conns.entry(conn).or_default();
        if let Some(u) = user.filter(|u| c.user.as_ref().is_none_or(|c| !Arc::ptr_eq(c, u))) {
            c.user = Some(u.clone());
        }
        // The user is named once judged (see name_user).
        let start = found.len();
        let mut ctx = Ctx {
            conn,
            user: None,
            found,
        };
        overdue_conn(c, &mut ctx, now, window);
        if !track_rid(c, &ev, &rid, payload, now, window, &mut ctx) {
            name_user(&mut ctx.found[start..], c.user.as_ref());
            // A resend: judged the first time it came, answered the same way.
            let mut scratch = Vec::new();
            let mut quiet = Ctx {
                conn,
                user: None,
                found: &mut scratch,
            };
            let refuse = check_fields(&ev, payload, &mut quiet);
            return refuse.filter(|_| rules::refused_when_malformed(event));
        }
        if !recent.seen(&ev, &rid) {
            check_order(c, &ev, &mut ctx);
        }
        let refuse = check_fields(&ev, payload, &mut ctx);
        check_content(c.login_name.as_deref(), &ev, payload, &mut ctx);
        if matches!(ev, Ev::Known(Event::CInit | Event::Login)) {
            if c.awaiting.len() >= MAX_RIDS {
                c.awaiting.clear();
            }
            c.awaiting.push(rid);
        }
        if ev == Ev::Known(Event::Login) {
            c.login_name = field(payload, "username")
                .and_then(Value::as_str)
                .map(Arc::from);
        }
        let mem = users.get(c.user.as_ref());
        check_confirmation(c, mem, event, payload, &mut ctx);
        name_user(&mut ctx.found[start..], c.user.as_ref());
        refuse.filter(|_| rules::refused_when_malformed(event))
    }

    /// Takes note of an outbound frame the client will receive.
    /// `given`: the frame's payload object when its sender had it (else the frame is
    /// parsed, only for the events whose contents matter).
    pub fn note_outbound(
        &self,
        conn: u64,
        frame: &str,
        tag: &FrameTag,
        given: Option<&Map<String, Value>>,
        now: Instant,
    ) {
        if let (FrameKind::Ack, Some(rid)) = (tag.kind, tag.rid.as_deref()) {
            let rid = RidKey::of_key(rid);
            let mut inner = self.lock();
            if let Some(r) = inner
                .conns
                .get_mut(&conn)
                .and_then(|c| c.rids.get_mut(&rid))
            {
                r.acked = true;
            }
            return;
        }
        let (event, rid) = match (tag.kind, tag.event.as_deref()) {
            // Other answers to a request change nothing the rules read.
            (FrameKind::Response, Some(e)) if tag.rid.is_none() || is_session(e) => {
                (e, tag.rid.as_deref())
            }
            (FrameKind::Response, Some("sync_check")) => ("sync_check", None),
            (
                FrameKind::Push,
                Some(
                    e @ ("msg_sync" | "sync_conversation" | "sync_event" | "sync_receipt"
                    | "event_notification"),
                ),
            ) => (e, None),
            _ => return,
        };
        let parsed;
        let payload = match given {
            Some(p) => p,
            None => {
                parsed = match parse_event(frame) {
                    Some((_, Value::Object(p))) => p,
                    _ => Map::new(),
                };
                &parsed
            }
        };
        let mut inner = self.lock();
        let Inner { conns, users, .. } = &mut *inner;
        let c = conns.entry(conn).or_default();
        if let Some(rid) = rid {
            let ok = field(payload, "code").is_none_or(|c| c.as_i64() == Some(0));
            note_response(c, event, &RidKey::of_key(rid), ok);
        }
        note_pushed(c, users, event, payload, now);
    }
    /// Confirmations overdue at `now` on every connection.
    pub fn overdue_at(&self, now: Instant, found: &mut Vec<Finding>) {
        self.each_conn_overdue(now, found, |_, _| {});
    }

    /// Runs the overdue check on every connection, then `then` with the same context.
    fn each_conn_overdue(
        &self,
        now: Instant,
        found: &mut Vec<Finding>,
        mut then: impl FnMut(&mut Conn, &mut Ctx<'_>),
    ) {
        let window = self.window();
        let mut inner = self.lock();
        for (conn, c) in inner.conns.iter_mut() {
            let mut ctx = Ctx {
                conn: *conn,
                user: c.user.clone(),
                found,
            };
            overdue_conn(c, &mut ctx, now, window);
            then(c, &mut ctx);
        }
    }

    /// The exchange is over at `now`: everything still owed is reported. The runner lets
    /// clients settle after each step, so a confirmation the client meant to send is in;
    /// only a connection that lost inbound frames to a fault (its confirmation may wait for
    /// a resend) or had frames held back by a delay or throttle keeps the timed window.
    pub fn finish_at(&self, now: Instant, found: &mut Vec<Finding>) {
        self.each_conn_overdue(now, found, |c, ctx| {
            if c.lossy {
                return;
            }
            for (id, _) in c.msgs.drain(..) {
                ctx.report(
                    rules::SYNC_OWED,
                    format!(
                        "msg_recv_v2 for msg {id} never sent (msg_sync unconfirmed at the end)"
                    ),
                );
            }
            for (ack, k, _) in c.syncs.drain(..) {
                ctx.report(
                    rules::SYNC_OWED,
                    format!("{ack} with sync_key {k} never sent (push unacknowledged at the end)"),
                );
            }
            echo::owed_at_end(c, ctx);
        });
    }

    /// Forgets a closed connection, reporting what was overdue on it.
    pub fn close(&self, conn: u64, now: Instant, found: &mut Vec<Finding>) {
        let window = self.window();
        let mut inner = self.lock();
        if let Some(mut c) = inner.conns.remove(&conn) {
            let mut ctx = Ctx {
                conn,
                user: c.user.clone(),
                found,
            };
            overdue_conn(&mut c, &mut ctx, now, window);
            if !c.lossy {
                echo::owed_at_close(&mut c, &mut ctx);
            }
        }
    }
}

/// Where findings go, with the connection they are about.
struct Ctx<'a> {
    conn: u64,
    user: Option<Arc<str>>,
    found: &'a mut Vec<Finding>,
}

impl Ctx<'_> {
    fn report(&mut self, rule: &'static str, text: String) {
        self.found.push(Finding {
            conn: self.conn,
            user: self.user.clone(),
            rule,
            text,
        });
    }
}

/// Names the connection's user in findings reported without it: a request's findings
/// get it after the request is judged, so the user is copied only when a rule broke.
fn name_user(found: &mut [Finding], user: Option<&Arc<str>>) {
    for f in found {
        f.user = user.cloned();
    }
}

fn is_session(event: &str) -> bool {
    matches!(event, "c_init" | "login")
}

/// A `c_init` or `login` response: the connection is initialised or logged in.
fn note_response(c: &mut Conn, event: &str, rid: &RidKey, ok: bool) {
    let Some(i) = c.awaiting.iter().position(|r| r == rid) else {
        return;
    };
    c.awaiting.swap_remove(i);
    if c.awaiting.is_empty() {
        c.awaiting = Vec::new();
    }
    match (event, ok) {
        ("c_init", true) => c.init_ok = true,
        ("login", true) => {
            c.logged_in = true;
            c.user = c.user.clone().or_else(|| c.login_name.clone());
        }
        _ => {}
    }
}

/// What an outbound frame gives (sync keys) and what the client owes for it
/// (confirmations of messages and sync pushes, echoes).
fn note_pushed(
    c: &mut Conn,
    users: &mut Users,
    event: &str,
    payload: &Map<String, Value>,
    now: Instant,
) {
    let keys_given = int_field(payload, "sync_key");
    let wanted = keys_given.is_some() || matches!(event, "event_notification" | "msg_sync");
    let user = c.user.as_ref().or(c.login_name.as_ref());
    let mut mem = user.filter(|_| wanted).map(|u| users.memory(u));
    if let (Some(mem), Some(k)) = (mem.as_deref_mut(), keys_given) {
        push_bounded(&mut mem.keys, k, MAX_USER_ITEMS);
    }
    if event == "event_notification" {
        echo::note_push(c, mem, payload, now);
        return;
    }
    if event == "msg_sync" {
        let messages = field(payload, "messages").and_then(Value::as_array);
        let ids = messages
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_object().and_then(|m| int_field(m, "msg_id")));
        for id in ids {
            push_bounded(&mut c.msgs, (id, now), MAX_PENDING);
            if let Some(mem) = mem.as_deref_mut() {
                push_bounded(&mut mem.msgs, id, MAX_USER_ITEMS);
            }
        }
        return;
    }
    if let (Some(ack), Some(k)) = (rules::sync_ack_of(event), keys_given) {
        push_bounded(&mut c.syncs, (ack, k, now), MAX_PENDING);
    }
}

/// Records the rid; false when the frame is a resend of a request already judged.
fn track_rid(
    c: &mut Conn,
    event: &Ev,
    rid: &RidKey,
    payload: &Map<String, Value>,
    now: Instant,
    window: Duration,
    ctx: &mut Ctx<'_>,
) -> bool {
    let body = fingerprint(payload);
    let fresh = || Sent {
        event: event.clone(),
        body,
        last: now,
        sends: 1,
        acked: false,
    };
    let Some(r) = c.rids.get_or_insert(rid.clone(), fresh) else {
        return true;
    };
    if r.event != *event {
        ctx.report(
            rules::RID_REUSED,
            format!("{event} reused rid {rid} of a recent {} request", r.event),
        );
        *r = fresh();
        return true;
    }
    r.sends += 1;
    if r.body != body {
        ctx.report(
            rules::RID_CHANGED,
            format!("{event} rid {rid}: send {} changed the request", r.sends),
        );
        r.body = body;
    }
    if r.sends > MAX_SENDS {
        ctx.report(
            rules::RID_TOO_MANY,
            format!(
                "{event} rid {rid} sent {} times (at most {MAX_SENDS})",
                r.sends
            ),
        );
    }
    let gap = now.saturating_duration_since(r.last);
    if gap < window / 2 {
        ctx.report(
            rules::TIME_RESEND_FAST,
            format!(
                "{event} rid {rid} resent after {} ms (the ack timeout is {} ms)",
                gap.as_millis(),
                window.as_millis()
            ),
        );
    }
    if !r.acked && !c.lossy && gap > window * RESEND_SLACK {
        ctx.report(
            rules::TIME_RESEND_SLOW,
            format!(
                "{event} rid {rid} resent {} ms after an unacknowledged send (the SDK resends at the ack timeout, {} ms)",
                gap.as_millis(),
                window.as_millis()
            ),
        );
    }
    r.last = now;
    r.acked = false;
    false
}

fn check_order(c: &Conn, event: &Ev, ctx: &mut Ctx<'_>) {
    let needs = event.needs();
    if !c.init_ok && needs != Needs::Nothing {
        ctx.report(
            rules::ORDER_INIT,
            format!("{event} sent before c_init succeeded on this connection"),
        );
    } else if c.init_ok && !c.logged_in && needs == Needs::Login {
        ctx.report(
            rules::ORDER_LOGIN,
            format!("{event} sent before login succeeded on this connection"),
        );
    }
}

/// Field rules; `Some(code)` when the request is malformed. One pass over the payload
/// finds every field of the event's table (a payload is small; its map would hash
/// each name looked up).
fn check_fields(event: &Ev, payload: &Map<String, Value>, ctx: &mut Ctx<'_>) -> Option<Code> {
    let Ev::Known(known) = event else {
        return None;
    };
    let table = rules::fields_of(*known);
    let mut given: [Option<&Value>; rules::MAX_FIELDS] = [None; rules::MAX_FIELDS];
    let mut unknown = false;
    for (key, v) in payload.iter().filter(|(k, _)| k.as_str() != "rid") {
        match table.iter().position(|(n, _, _)| n == key) {
            Some(i) if i < rules::MAX_FIELDS => given[i] = Some(v),
            Some(_) => {}
            None => unknown = true,
        }
    }
    let mut code = None;
    for (i, (name, ty, required)) in table.iter().enumerate() {
        let v = match given.get(i) {
            Some(v) => *v,
            None => payload.get(*name),
        };
        match v {
            None if *required => {
                ctx.report(
                    rules::FIELD_MISSING,
                    format!("{event} without {name} ({})", ty.name()),
                );
                code = code.or(Some(Code::Missing));
            }
            Some(v) if !ty.accepts(v) && (*required || !v.is_null()) => {
                ctx.report(
                    rules::FIELD_TYPE,
                    format!("{event}.{name} is {v}, expected {}", ty.name()),
                );
                code = code.or(Some(Code::InvalidType));
            }
            _ => {}
        }
    }
    for key in payload.keys().filter(|_| unknown) {
        if key != "rid" && !table.iter().any(|(n, _, _)| n == key) {
            ctx.report(
                rules::FIELD_UNKNOWN,
                format!("{event} carries {key}, which the official SDK never sends"),
            );
        }
    }
    code
}

/// The message content rule: the sender and the kind a client writes into a message
/// must be the truth (the server overwrites both; a client that gets them wrong has a
/// bug its own UI will show).
fn check_content(login: Option<&str>, event: &Ev, payload: &Map<String, Value>, ctx: &mut Ctx<'_>) {
    let want = match event {
        Ev::Known(Event::SAcrossSingleText) => "single",
        Ev::Known(Event::SendGroupMsg) => "group",
        Ev::Known(Event::SendRoomMsg) => "chatroom",
        _ => return,
    };
    let Some(Value::Object(content)) = field(payload, "content") else {
        return;
    };
    if let Some(t) = field(content, "target_type").and_then(Value::as_str) {
        if t != want {
            ctx.report(
                rules::MSG_CONTENT,
                format!("{event}.content.target_type is {t:?}, expected {want:?}"),
            );
        }
    }
    let from = field(content, "from_id").and_then(Value::as_str);
    if let (Some(from), Some(login)) = (from, login) {
        if from != login {
            ctx.report(
                rules::MSG_CONTENT,
                format!("{event}.content.from_id is {from:?}, but {login:?} is logged in"),
            );
        }
    }
}

/// Confirmation rules: msg_recv_v2 and the sync acks settle what the client owes.
fn check_confirmation(
    c: &mut Conn,
    mem: Option<&UserMemory>,
    event: &str,
    payload: &Map<String, Value>,
    ctx: &mut Ctx<'_>,
) {
    match event {
        "msg_recv_v2" => {
            let Some(id) = int_field(payload, "msg_id") else {
                return;
            };
            // Usually the oldest entries: find the first, then any duplicate after it
            // (a fault may push a message twice), without rebuilding the queue.
            let pending = c.msgs.iter().position(|(m, _)| *m == id);
            if let Some(i) = pending {
                c.msgs.remove(i);
                if c.msgs.iter().skip(i).any(|(m, _)| *m == id) {
                    c.msgs.retain(|(m, _)| *m != id);
                }
            }
            let known = pending.is_some() || mem.is_some_and(|m| m.msgs.contains(&id));
            if !known {
                ctx.report(
                    rules::SYNC_MSG_UNKNOWN,
                    format!("msg_recv_v2 for msg {id}, which was never pushed to this user"),
                );
            }
        }
        "sync_check" | "sync_conversation_ack" | "sync_event_ack" | "sync_receipt_ack" => {
            let key = int_field(payload, "sync_key");
            let given = |k: i64| k == 0 || mem.as_ref().is_some_and(|m| m.keys.contains(&k));
            if let Some(k) = key.filter(|k| !given(*k)) {
                ctx.report(
                    rules::SYNC_KEY,
                    format!("{event} carries sync_key {k}, which the server never gave"),
                );
            }
            if event != "sync_check" {
                c.syncs
                    .retain(|(ack, k, _)| !(*ack == event && Some(*k) == key));
            }
        }
        "event_notification" => echo::check(c, mem, payload, ctx),
        _ => {}
    }
}

/// Reports (and forgets) confirmations older than `window`.
fn overdue_conn(c: &mut Conn, ctx: &mut Ctx<'_>, now: Instant, window: Duration) {
    let window = if c.lossy { window * MAX_SENDS } else { window };
    let late = |t: &Instant| now.saturating_duration_since(*t) > window;
    while let Some((id, t)) = c.msgs.front().copied().filter(|(_, t)| late(t)) {
        c.msgs.pop_front();
        ctx.report(
            rules::SYNC_MSG_RECV,
            format!(
                "msg_recv_v2 for msg {id} not sent within {} ms of msg_sync",
                window.as_millis()
            ),
        );
        let _ = t;
    }
    while let Some((ack, k, _)) = c.syncs.front().copied().filter(|(_, _, t)| late(t)) {
        c.syncs.pop_front();
        ctx.report(
            rules::SYNC_ACK,
            format!(
                "{ack} with sync_key {k} not sent within {} ms of the push",
                window.as_millis()
            ),
        );
    }
    echo::overdue(c, ctx, late, window.as_millis());
}

impl Observer for Oracle {
    fn inbound(
        &self,
        conn: u64,
        user: Option<&Arc<str>>,
        frame: &str,
        event: Option<(&str, &Value)>,
        at: Instant,
        found: &mut Vec<Finding>,
    ) -> Option<Vec<(Arc<str>, FrameTag)>> {
        let parsed;
        let (event, payload) = match event {
            Some((e, Value::Object(p))) => (e, p),
            Some(_) => return None,
            None => {
                parsed = parse_event(frame)?;
                match &parsed {
                    (e, Value::Object(p)) => (e.as_str(), p),
                    _ => return None,
                }
            }
        };
        let code = self.judge_event(conn, user, event, payload, at, found)?;
        let rid = Rid::from_payload(payload)?;
        let body = (event != "event_notification").then(|| Failure::from(code).to_body());
        Some(protocol::answer_frames(event, &rid, body.as_ref()))
    }

    fn outbound(
        &self,
        conn: u64,
        frame: &str,
        tag: &FrameTag,
        payload: Option<&Map<String, Value>>,
        at: Instant,
        _found: &mut Vec<Finding>,
    ) {
        self.note_outbound(conn, frame, tag, payload, at);
    }

    fn lost(&self, conn: u64) {
        self.lock().conns.entry(conn).or_default().lossy = true;
    }

    fn closed(&self, conn: u64, found: &mut Vec<Finding>) {
        self.close(conn, Instant::now(), found);
    }

    fn finish(&self, found: &mut Vec<Finding>) {
        self.finish_at(Instant::now(), found);
    }
}

/// A field type check exposed for docs and tests.
pub fn accepts(ty: Ty, v: &Value) -> bool {
    ty.accepts(v)
}
