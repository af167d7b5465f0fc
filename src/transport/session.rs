//! Engine.IO sessions: one [`Socket`] per `sid`, whatever carries it (a websocket, or
//! polling requests, or polling upgraded to a websocket).
//!
//! Outbound frames go into one queue per session, bounded by frames and bytes
//! (`TransportConfig::max_queue_frames` / `max_queue_bytes`): a session whose client does
//! not read fast enough to stay under the bound is dropped (a slow consumer), never
//! allowed to grow memory. Exactly one consumer holds the queue's receiver at a time: the
//! websocket writer task, or the polling GET that is in flight. Nothing here holds a lock
//! across an `.await`.

use super::engineio::{self, Handshake, PacketType};
use super::intercept::{Action, FrameKind, FrameTag, InboundFrame, Interceptor, Object};
use super::signal::Signal;
use super::socketio::{self, SioPacket};
use super::{SocketHandler, TransportConfig};
use crate::lock::lock;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// Websocket or long-polling (a client on polling is never upgraded): which transport
/// carries a session. The one name for this choice: the server's sessions, the reference
/// client (`ClientConfig::transport`) and scenario files (`connect: {transport: polling}`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    #[default]
    Websocket,
    Polling,
}

impl TransportKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Polling => "polling",
            Self::Websocket => "websocket",
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a Socket.IO DISCONNECT (`41`) or an Engine.IO close (`1`).
    ClientDisconnect,
    /// The websocket closed or failed, or a polling request broke.
    TransportClose,
    /// No ping within `ping_interval + ping_timeout`.
    PingTimeout,
    /// The server closed it (shutdown, kick, fault).
    ServerClose,
    /// A frame could not be decoded or broke a limit.
    ProtocolError(String),
    /// The client did not read its frames fast enough: the outbound queue hit its bound,
    /// or one websocket write took longer than the write timeout.
    SlowConsumer(String),
}

/// An item of a session's outbound queue.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// A whole Engine.IO packet, e.g. `3` or `42[...]`. Shared between recipients.
    Frame(Arc<str>),
    /// Close the transport; `abrupt` drops the connection without a close frame.
    Close { abrupt: bool },
    /// Close a websocket with this RFC 6455 status code and reason (polling: a close
    /// packet).
    CloseCode(u16, &'static str),
}

impl Outbound {
    fn bytes(&self) -> usize {
        match self {
            Self::Frame(f) => f.len(),
            _ => 0,
        }
    }
}

/// A session's outbound queue: the items, what they weigh, and the consumer's wakeup.
/// A plain deque behind a mutex (held only to push or pop one item) instead of a tokio
/// channel: an idle session's queue allocates nothing, where a channel keeps a block of
/// 32 slots and its shared state (~1.3 KiB) for the session's whole life.
#[derive(Debug, Default)]
struct OutboundQueue {
    frames: std::sync::atomic::AtomicUsize,
    bytes: std::sync::atomic::AtomicUsize,
    items: Mutex<std::collections::VecDeque<Outbound>>,
    /// Woken (with a stored permit when nobody waits) after every push.
    ready: Notify,
    /// The consumer ([`OutboundRx`]) was dropped: nothing is queued any more.
    receiver_gone: AtomicBool,
    /// The session was dropped: the consumer gets `None` once the queue is empty.
    sender_gone: AtomicBool,
}

/// The receiving end of a session's outbound queue; keeps the queue's load up to date.
pub(crate) struct OutboundRx {
    queue: Arc<OutboundQueue>,
}

impl OutboundRx {
    /// The next item; `None` once the session is gone and the queue is empty.
    /// Cancel-safe: an item is only taken by a call that returns it.
    pub(crate) async fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if self.queue.sender_gone.load(Ordering::Acquire) {
                return self.try_recv();
            }
            self.release_if_empty();
            // A push between the check above and this wait left a permit: no lost wakeup.
            self.queue.ready.notified().await;
        }
    }

    /// Gives the queue's memory back while it is empty: the consumer is about to wait,
    /// and an idle session keeps no buffer (one allocation per burst instead).
    fn release_if_empty(&self) {
        let mut items = lock(&self.queue.items);
        if items.is_empty() && items.capacity() > 0 {
            *items = std::collections::VecDeque::new();
        }
    }

    /// The next item if one is queued now.
    pub(crate) fn try_recv(&mut self) -> Option<Outbound> {
        // An emptied queue gives its memory back in `recv`, before the consumer waits.
        let item = lock(&self.queue.items).pop_front()?;
        self.queue.frames.fetch_sub(1, Ordering::AcqRel);
        self.queue.bytes.fetch_sub(item.bytes(), Ordering::AcqRel);
        Some(item)
    }
}

impl Drop for OutboundRx {
    /// Like a dropped channel receiver: what is queued is dropped, later pushes too.
    fn drop(&mut self) {
        let mut items = lock(&self.queue.items);
        self.queue.receiver_gone.store(true, Ordering::Release);
        items.clear();
        *items = std::collections::VecDeque::new();
        self.queue.frames.store(0, Ordering::Release);
        self.queue.bytes.store(0, Ordering::Release);
    }
}

/// Who watches a session's heartbeat ([`Engine::ping_deadline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// A task of its own, for the session's life (polling, whose requests come and go).
    Task,
    /// The transport's reader, which lives as long as the session (a websocket): one
    /// task less per connection.
    Reader,
}

struct State {
    transport: TransportKind,
    last_ping: Instant,
    upgrading: bool,
}

/// One Engine.IO session.
pub struct Socket {
    /// Process-unique numeric id, used by the layers above as the connection id.
    pub id: u64,
    /// The Engine.IO session id sent in the open packet.
    pub sid: Arc<str>,
    /// Peer address, when known.
    pub remote: Option<SocketAddr>,
    rx: Mutex<Option<OutboundRx>>,
    rx_returned: Notify,
    queue: Arc<OutboundQueue>,
    /// Set by the first queue overflow.
    overflowed: AtomicBool,
    /// Set by the first inbound frame.
    heard: AtomicBool,
    /// Cancelled at once by an abrupt close: the writer stops even in the middle of a
    /// write (`closed` follows a clean close only after the close frame had its chance).
    aborted: Signal,
    state: Mutex<State>,
    closed: Signal,
    close_once: AtomicBool,
    engine: Weak<Engine>,
    interceptor: Option<Arc<dyn Interceptor>>,
    /// Set by the layer above (the logged-in username), for matching and journals.
    label: Mutex<Option<Arc<str>>>,
    /// What delay and reorder faults keep, made by the first such fault.
    faulted: OnceLock<Box<Faulted>>,
}

/// What delay and reorder faults keep for a session. Allocated by the first fault that
/// needs it: a session without one carries a pointer instead (most sessions).
struct Faulted {
    /// Outbound frames held back by delay faults, with their release times.
    link: Mutex<Link>,
    /// A frame held back by a reorder fault.
    held: Mutex<Option<Arc<str>>>,
    /// Inbound frames delayed by faults are processed in order, not before this.
    in_delay_until: Mutex<Instant>,
    /// Delayed inbound frames, processed in order by one task.
    delayed_in: OnceLock<DelayLine<String>>,
    /// An inbound frame held back by a reorder fault.
    held_in: Mutex<Option<String>>,
}

impl Faulted {
    fn new() -> Self {
        Self {
            link: Mutex::new(Link::default()),
            held: Mutex::new(None),
            in_delay_until: Mutex::new(Instant::now()),
            delayed_in: OnceLock::new(),
            held_in: Mutex::new(None),
        }
    }
}

/// The sending side of a per-session delay line: frames with their release times, which
/// never decrease, so frames leave in the order they entered.
type DelayLine<T> = mpsc::UnboundedSender<(Instant, T)>;

/// The release time of a frame delayed by `d`: not before any frame delayed earlier.
fn next_slot(until: &Mutex<Instant>, d: Duration) -> Instant {
    let mut until = lock(until);
    let at = (Instant::now() + d).max(*until);
    *until = at;
    at
}

/// Starts the task behind a delay line; it ends with the session.
fn spawn_delay_line<T: Send + 'static>(
    socket: Arc<Socket>,
    mut deliver: impl FnMut(T) + Send + 'static,
) -> DelayLine<T> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, T)>();
    tokio::spawn(async move {
        loop {
            let item = tokio::select! {
                item = rx.recv() => item,
                _ = socket.closed.cancelled() => None,
            };
            let Some((at, frame)) = item else { return };
            tokio::select! {
                _ = tokio::time::sleep_until(at) => deliver(frame),
                _ = socket.closed.cancelled() => return,
            }
        }
    });
    tx
}

/// Frames held back by delay faults.
#[derive(Default)]
struct Link {
    queue: std::collections::VecDeque<(Instant, Arc<str>)>,
    draining: bool,
}

impl Socket {
    /// Sends a transport-level frame (`3`, `40`, `6`, ...), tagged by its type.
    pub fn send_frame(self: &Arc<Self>, frame: Arc<str>) {
        let tag = FrameTag::of(FrameKind::of_frame(&frame));
        self.send_tagged(frame, &tag);
    }

    /// Sends a whole Engine.IO frame (`42[...]`) with its tag, through the interceptor.
    pub fn send_tagged(self: &Arc<Self>, frame: Arc<str>, tag: &FrameTag) {
        self.send_with(frame, tag, None);
    }

    /// Sends an event frame the caller encoded from `payload` (for a response: its body
    /// without the rid); the interceptor gets the payload as it is and never parses the
    /// frame's text back.
    pub fn send_event(self: &Arc<Self>, frame: Arc<str>, tag: &FrameTag, payload: &Object) {
        self.send_with(frame, tag, Some(payload));
    }

    fn send_with(self: &Arc<Self>, frame: Arc<str>, tag: &FrameTag, payload: Option<&Object>) {
        let action = match &self.interceptor {
            None => Action::Pass,
            Some(i) => i.outbound(self, &frame, tag, payload),
        };
        match action {
            Action::Pass => self.enqueue(frame),
            Action::Drop => {}
            Action::Replace(text) => self.enqueue(text),
            Action::Duplicate(n) => {
                for _ in 0..=n {
                    self.enqueue(frame.clone());
                }
            }
            Action::Delay(d) => self.delay(frame, d),
            Action::Hold => {
                let previous = lock(&self.faults().held).replace(frame);
                if let Some(p) = previous {
                    self.enqueue_raw(p);
                }
                // Never lose a held frame when nothing follows it.
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let held = lock(&me.faults().held).take();
                    if let Some(h) = held {
                        me.enqueue_raw(h);
                    }
                });
            }
            // The sender may hold locks (the hub delivers under the backend lock) and
            // closing reports to the handler: close on a task of its own.
            Action::Close { abrupt, after } => {
                if after {
                    self.enqueue(frame);
                }
                self.close_soon(abrupt);
            }
            Action::Kick => {
                self.enqueue(socketio::DISCONNECT_FRAME.into());
                self.close_soon(false);
            }
            Action::Respond(_) => self.enqueue(frame),
        }
    }

    /// Closes the session from inside a send. The transport stops at once (nothing
    /// queued after this point is delivered), but the session's end is reported from a
    /// task: the sender may hold locks that the close handler takes (the hub sends
    /// responses and pushes with the backend locked).
    fn close_soon(self: &Arc<Self>, abrupt: bool) {
        self.push(Outbound::Close { abrupt });
        let me = self.clone();
        tokio::spawn(async move { me.close(abrupt) });
    }

    /// Queues a frame for the client, behind any frame a delay fault holds back: a
    /// delayed frame delays everything after it, like a slow link (only `reorder`
    /// changes the order).
    fn enqueue(self: &Arc<Self>, frame: Arc<str>) {
        if let Some(faulted) = self.faulted.get() {
            let mut link = lock(&faulted.link);
            if !link.queue.is_empty() {
                let at = link
                    .queue
                    .back()
                    .map(|(t, _)| *t)
                    .unwrap_or_else(Instant::now);
                link.queue.push_back((at, frame));
                return;
            }
        }
        self.enqueue_now(frame);
    }

    fn enqueue_now(&self, frame: Arc<str>) {
        self.enqueue_raw(frame);
        let Some(faulted) = self.faulted.get() else {
            return;
        };
        let held = lock(&faulted.held).take();
        if let Some(h) = held {
            self.enqueue_raw(h);
        }
    }

    /// The session's fault state, made on first use.
    fn faults(&self) -> &Faulted {
        self.faulted.get_or_init(|| Box::new(Faulted::new()))
    }

    /// Holds a frame back for `d` (and everything queued after it).
    fn delay(self: &Arc<Self>, frame: Arc<str>, d: Duration) {
        let start = {
            let mut link = lock(&self.faults().link);
            let at = (Instant::now() + d).max(
                link.queue
                    .back()
                    .map(|(t, _)| *t)
                    .unwrap_or_else(Instant::now),
            );
            link.queue.push_back((at, frame));
            !std::mem::replace(&mut link.draining, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move { me.drain_link().await });
        }
    }

    /// Releases held-back frames when they are due; ends when the queue is empty.
    async fn drain_link(self: Arc<Self>) {
        enum Next {
            Done,
            Send(Arc<str>),
            Wait(Instant),
        }
        loop {
            let next = {
                let mut link = lock(&self.faults().link);
                match link.queue.front().map(|(t, _)| *t) {
                    None => {
                        link.draining = false;
                        Next::Done
                    }
                    Some(t) if t <= Instant::now() => match link.queue.pop_front() {
                        Some((_, f)) => Next::Send(f),
                        None => Next::Done,
                    },
                    Some(t) => Next::Wait(t),
                }
            };
            match next {
                Next::Done => return,
                Next::Send(f) => self.enqueue_now(f),
                Next::Wait(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => {}
                        _ = self.closed.cancelled() => return,
                    }
                }
            }
        }
    }

    fn enqueue_raw(&self, frame: Arc<str>) {
        let bytes = frame.len();
        let frames = self.queue.frames.load(Ordering::Acquire);
        let queued = self.queue.bytes.load(Ordering::Acquire);
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let config = &engine.config;
        // A frame alone is always accepted into an empty queue: the byte bound limits a
        // backlog, not the size of one frame (max_payload and the backend bound those).
        let over = if frames + 1 > config.max_queue_frames {
            Some(format!("{} frames", config.max_queue_frames))
        } else if queued > 0 && queued + bytes > config.max_queue_bytes {
            Some(format!("{} bytes", config.max_queue_bytes))
        } else {
            None
        };
        if let Some(bound) = over {
            // Only the first overflow reports (senders may race here).
            if !self.is_closing() && !self.overflowed.swap(true, Ordering::AcqRel) {
                self.overflow(&engine, bound, frames, queued);
            }
            return;
        }
        self.push(Outbound::Frame(frame));
    }

    /// The queue hit its bound: drop the session at once (no close frame can get past a
    /// full queue), with one log line.
    fn overflow(&self, engine: &Arc<Engine>, bound: String, frames: usize, bytes: usize) {
        tracing::warn!(
            conn = self.id,
            user = self.label().as_deref().unwrap_or("-"),
            bound = %bound,
            queued_frames = frames,
            queued_bytes = bytes,
            "slow consumer: outbound queue full, closing the session"
        );
        self.aborted.cancel();
        // Reported from a task: the sender may hold the backend lock.
        if let Some(me) = engine.get(&self.sid) {
            let engine = Arc::downgrade(engine);
            tokio::spawn(async move {
                if let Some(engine) = engine.upgrade() {
                    engine.close(&me, CloseReason::SlowConsumer(bound), true);
                }
            });
        }
    }

    /// Queues an item, counting it in the queue's load.
    fn push(&self, item: Outbound) {
        let q = &self.queue;
        {
            let mut items = lock(&q.items);
            if q.receiver_gone.load(Ordering::Acquire) {
                // The transport ended: nothing is queued.
                return;
            }
            q.frames.fetch_add(1, Ordering::AcqRel);
            q.bytes.fetch_add(item.bytes(), Ordering::AcqRel);
            items.push_back(item);
        }
        q.ready.notify_one();
    }

    /// True once a close has begun (reported or not).
    fn is_closing(&self) -> bool {
        self.close_once.load(Ordering::Acquire) || self.aborted.is_cancelled()
    }

    /// Sends a Socket.IO event with a tag.
    pub fn emit_tagged(self: &Arc<Self>, event: &str, payload: &serde_json::Value, tag: &FrameTag) {
        self.send_tagged(socketio::encode_event_frame(event, payload).into(), tag);
    }

    /// Closes the session (cleanly, or dropping the connection without a close frame).
    pub fn close(self: &Arc<Self>, abrupt: bool) {
        if let Some(engine) = self.engine.upgrade() {
            engine.close(self, CloseReason::ServerClose, abrupt);
        }
    }

    /// Labels the session (the layer above sets the logged-in username).
    pub fn set_label(&self, label: Option<&str>) {
        *lock(&self.label) = label.map(Into::into);
    }

    /// The session's label.
    pub fn label(&self) -> Option<Arc<str>> {
        lock(&self.label).clone()
    }

    /// Whether the session's label is `label` (compared in place: no copy).
    pub fn label_is(&self, label: Option<&str>) -> bool {
        lock(&self.label).as_deref() == label
    }

    /// The transport carrying the session now.
    pub fn transport(&self) -> TransportKind {
        lock(&self.state).transport
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves when the session ends.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Whether a consumer holds the outbound queue now: the websocket writer, or a
    /// polling GET in flight.
    pub fn queue_taken(&self) -> bool {
        lock(&self.rx).is_none()
    }

    pub(crate) fn take_rx(&self) -> Option<OutboundRx> {
        lock(&self.rx).take()
    }

    pub(crate) fn put_rx(&self, rx: OutboundRx) {
        *lock(&self.rx) = Some(rx);
        self.rx_returned.notify_waiters();
    }

    /// Waits (bounded) until no polling GET holds the queue, then takes it.
    pub(crate) async fn take_rx_wait(&self, limit: Duration) -> Option<OutboundRx> {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.rx_returned.notified();
            if let Some(rx) = self.take_rx() {
                return Some(rx);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.take_rx();
            }
        }
    }

    pub(crate) fn cancel_token(&self) -> &Signal {
        &self.closed
    }

    /// Drops a session whose client does not read (a write took too long), with one log
    /// line.
    pub(crate) fn slow_consumer(self: &Arc<Self>, why: String) {
        if self.is_closing() {
            return;
        }
        tracing::warn!(
            conn = self.id,
            user = self.label().as_deref().unwrap_or("-"),
            bound = %why,
            "slow consumer: closing the session"
        );
        if let Some(engine) = self.engine.upgrade() {
            engine.close(self, CloseReason::SlowConsumer(why), true);
        }
    }

    /// Cancelled by an abrupt close (or a slow consumer): writers stop at once.
    pub(crate) fn abort_token(&self) -> &Signal {
        &self.aborted
    }

    /// Closes the session with an RFC 6455 status code on its websocket (a close packet
    /// on polling), after the frames already queued.
    pub(crate) fn close_with_code(self: &Arc<Self>, code: u16, reason: &'static str) {
        self.push(Outbound::CloseCode(code, reason));
        if let Some(engine) = self.engine.upgrade() {
            engine.close(
                self,
                CloseReason::ProtocolError(format!("{code} {reason}")),
                false,
            );
        }
    }

    pub(crate) fn begin_upgrade(&self) -> bool {
        let mut s = lock(&self.state);
        if s.transport != TransportKind::Polling || s.upgrading {
            return false;
        }
        s.upgrading = true;
        true
    }

    pub(crate) fn finish_upgrade(&self, ok: bool) {
        let mut s = lock(&self.state);
        s.upgrading = false;
        if ok {
            s.transport = TransportKind::Websocket;
        }
    }

    fn touch_ping(&self) {
        lock(&self.state).last_ping = Instant::now();
    }

    fn last_ping(&self) -> Instant {
        lock(&self.state).last_ping
    }
}

impl Drop for Socket {
    /// Like dropping a channel's last sender: the consumer drains the queue, then ends.
    fn drop(&mut self) {
        self.queue.sender_gone.store(true, Ordering::Release);
        self.queue.ready.notify_one();
    }
}

/// All live sessions plus the handler they report to.
pub struct Engine {
    pub config: TransportConfig,
    sessions: Mutex<HashMap<Arc<str>, Arc<Socket>>>,
    handler: Arc<dyn SocketHandler>,
    interceptor: Option<Arc<dyn Interceptor>>,
    next_id: AtomicU64,
    sid_seed: u64,
    /// When the last inbound frame arrived, ms after `epoch` (graceful shutdown waits
    /// for a quiet moment).
    last_inbound_ms: AtomicU64,
    epoch: Instant,
}

impl Engine {
    pub fn new(config: TransportConfig, handler: Arc<dyn SocketHandler>) -> Arc<Self> {
        Self::with_interceptor(config, handler, None)
    }

    /// An engine whose frames all pass through `interceptor`.
    pub fn with_interceptor(
        config: TransportConfig,
        handler: Arc<dyn SocketHandler>,
        interceptor: Option<Arc<dyn Interceptor>>,
    ) -> Arc<Self> {
        let sid_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
        Arc::new(Self {
            config,
            sessions: Mutex::new(HashMap::new()),
            handler,
            interceptor,
            next_id: AtomicU64::new(1),
            sid_seed,
            last_inbound_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn get(&self, sid: &str) -> Option<Arc<Socket>> {
        lock(&self.sessions).get(sid).cloned()
    }

    /// Every live session.
    pub fn sockets(&self) -> Vec<Arc<Socket>> {
        lock(&self.sessions).values().cloned().collect()
    }

    fn make_sid(&self, id: u64) -> Arc<str> {
        // splitmix64 of (seed, id): unique per process, unguessable enough for a mock.
        let mut z = self
            .sid_seed
            .wrapping_add(id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        format!("{z:016x}{id:04x}").into()
    }

    /// Creates a session, queues its open packet and `40`, and reports it. Its
    /// heartbeat is watched by a task of its own.
    pub(crate) fn open(
        self: &Arc<Self>,
        transport: TransportKind,
        remote: Option<SocketAddr>,
    ) -> Arc<Socket> {
        self.open_watched(transport, remote, Watch::Task)
    }

    /// [`Engine::open`], with the heartbeat watched as `watch` says.
    pub(crate) fn open_watched(
        self: &Arc<Self>,
        transport: TransportKind,
        remote: Option<SocketAddr>,
        watch: Watch,
    ) -> Arc<Socket> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sid = self.make_sid(id);
        let queue = Arc::new(OutboundQueue::default());
        let rx = OutboundRx {
            queue: queue.clone(),
        };
        let socket = Arc::new(Socket {
            id,
            sid: sid.clone(),
            remote,
            rx: Mutex::new(Some(rx)),
            rx_returned: Notify::new(),
            queue,
            overflowed: AtomicBool::new(false),
            heard: AtomicBool::new(false),
            aborted: Signal::default(),
            state: Mutex::new(State {
                transport,
                last_ping: Instant::now(),
                upgrading: false,
            }),
            closed: Signal::default(),
            close_once: AtomicBool::new(false),
            engine: Arc::downgrade(self),
            interceptor: self.interceptor.clone(),
            label: Mutex::new(None),
            faulted: OnceLock::new(),
        });
        let upgrades: &[&str] = if transport == TransportKind::Polling && self.config.allow_upgrades
        {
            &["websocket"]
        } else {
            &[]
        };
        let open = Handshake {
            sid: &sid,
            upgrades,
            ping_interval_ms: self.config.ping_interval.as_millis() as u64,
            ping_timeout_ms: self.config.ping_timeout.as_millis() as u64,
        }
        .to_string();
        socket.send_frame(open.into());
        socket.send_frame(socketio::CONNECT_FRAME.into());
        lock(&self.sessions).insert(sid, socket.clone());
        tracing::debug!(conn = id, transport = transport.name(), "session opened");
        self.handler.on_connect(&socket);
        if watch == Watch::Task {
            self.spawn_heartbeat(socket.clone());
        }
        socket
    }

    /// When the session is dropped for silence, unless a ping comes first: no ping
    /// within `ping_interval + ping_timeout`, or, for a session that has sent nothing at
    /// all yet, within `ping_interval + min(handshake_timeout, ping_timeout)` (a
    /// compliant client pings by `ping_interval` at the latest, so a silent new session
    /// is dropped sooner).
    pub(crate) fn ping_deadline(&self, socket: &Socket) -> Instant {
        let c = &self.config;
        let wait = if socket.heard.load(Ordering::Acquire) {
            c.ping_interval + c.ping_timeout
        } else {
            c.ping_interval + c.handshake_timeout.min(c.ping_timeout)
        };
        socket.last_ping() + wait
    }

    /// Checks the heartbeat when its timer fires: closes the session
    /// ([`CloseReason::PingTimeout`]) and returns `None` when the deadline has passed,
    /// else returns the deadline to wait for next (a ping moved it).
    pub(crate) fn check_heartbeat(&self, socket: &Arc<Socket>) -> Option<Instant> {
        let due = self.ping_deadline(socket);
        if Instant::now() < due {
            return Some(due);
        }
        self.close(socket, CloseReason::PingTimeout, true);
        None
    }

    /// Watches a session's heartbeat ([`Engine::ping_deadline`]) on a task of its own.
    fn spawn_heartbeat(self: &Arc<Self>, socket: Arc<Socket>) {
        let engine = Arc::downgrade(self);
        let mut due = self.ping_deadline(&socket);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = socket.closed.cancelled() => return,
                    _ = tokio::time::sleep_until(due) => {}
                }
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                match engine.check_heartbeat(&socket) {
                    Some(next) => due = next,
                    None => return,
                }
            }
        });
    }

    /// Ends a session: reports it once, and tells its writer to close the transport.
    pub fn close(&self, socket: &Arc<Socket>, reason: CloseReason, abrupt: bool) {
        if socket.close_once.swap(true, Ordering::AcqRel) {
            return;
        }
        lock(&self.sessions).remove(&socket.sid);
        socket.push(Outbound::Close { abrupt });
        tracing::debug!(conn = socket.id, ?reason, "session closed");
        if let Some(i) = &self.interceptor {
            i.closed(socket);
        }
        self.handler.on_close(socket, reason);
        // Give a writer the chance to flush the close before tasks stop.
        if abrupt {
            socket.aborted.cancel();
            socket.closed.cancel();
        } else {
            let socket = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                socket.closed.cancel();
            });
        }
    }

    /// Waits until no inbound frame has arrived for a short quiet period (counted from
    /// the call at the earliest), at most `limit`, or until no session is left: frames
    /// already sent by clients are read and answered before shutdown closes the
    /// sessions.
    pub async fn drain(&self, limit: Duration) {
        const QUIET: Duration = Duration::from_millis(100);
        let start = Instant::now();
        let deadline = start + limit;
        loop {
            if self.session_count() == 0 {
                return;
            }
            let last =
                self.epoch + Duration::from_millis(self.last_inbound_ms.load(Ordering::Acquire));
            let quiet_at = last.max(start) + QUIET;
            let now = Instant::now();
            if now >= quiet_at || now >= deadline {
                return;
            }
            tokio::time::sleep_until(quiet_at.min(deadline)).await;
        }
    }

    /// Closes every session (server shutdown).
    pub fn close_all(&self) {
        for s in self.sockets() {
            self.close(&s, CloseReason::ServerClose, false);
        }
    }

    /// Whether the interceptor lets a new session (or an upgrade) in.
    pub(crate) fn accepts(&self, transport: TransportKind, upgrade: bool) -> bool {
        self.interceptor
            .as_ref()
            .is_none_or(|i| i.accept(transport, upgrade))
    }

    /// Handles one inbound Engine.IO frame from any transport, through the interceptor.
    pub(crate) fn on_frame(self: &Arc<Self>, socket: &Arc<Socket>, frame: &str) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_inbound_ms.fetch_max(now, Ordering::AcqRel);
        socket.heard.store(true, Ordering::Release);
        let inbound = InboundFrame::new(frame);
        let action = match &self.interceptor {
            None => Action::Pass,
            Some(i) => i.inbound(socket, &inbound),
        };
        if action == Action::Hold {
            self.hold_inbound(socket, frame);
            return;
        }
        match action {
            Action::Pass | Action::Hold => self.process_frame(socket, inbound),
            Action::Drop => {}
            Action::Replace(text) => self.process(socket, &text),
            Action::Duplicate(n) => {
                for _ in 0..=n {
                    self.process(socket, frame);
                }
            }
            Action::Delay(d) => {
                let faulted = socket.faults();
                let at = next_slot(&faulted.in_delay_until, d);
                let tx = faulted.delayed_in.get_or_init(|| {
                    let (engine, me) = (Arc::downgrade(self), socket.clone());
                    spawn_delay_line(socket.clone(), move |f: String| {
                        if let Some(engine) = engine.upgrade() {
                            engine.process(&me, &f);
                        }
                    })
                });
                let _ = tx.send((at, frame.to_owned()));
            }
            Action::Close { abrupt, after } => {
                if after {
                    self.process(socket, frame);
                }
                self.close(socket, CloseReason::ServerClose, abrupt);
            }
            Action::Kick => {
                socket.enqueue(socketio::DISCONNECT_FRAME.into());
                self.close(socket, CloseReason::ServerClose, false);
            }
            Action::Respond(frames) => {
                for (text, tag) in frames {
                    socket.send_tagged(text, &tag);
                }
            }
        }
        // A frame held by a reorder fault goes right after the one that followed it.
        let held = socket.faulted.get().and_then(|f| lock(&f.held_in).take());
        if let Some(h) = held {
            self.process(socket, &h);
        }
    }

    /// Holds an inbound frame until the next one has been handled (reordering); a held
    /// frame with nothing after it is processed after a short while anyway.
    fn hold_inbound(self: &Arc<Self>, socket: &Arc<Socket>, frame: &str) {
        let previous = lock(&socket.faults().held_in).replace(frame.to_owned());
        if let Some(p) = previous {
            self.process(socket, &p);
        }
        let (engine, socket) = (Arc::downgrade(self), socket.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = socket.closed.cancelled() => return,
            }
            let held = lock(&socket.faults().held_in).take();
            if let (Some(h), Some(engine)) = (held, engine.upgrade()) {
                engine.process(&socket, &h);
            }
        });
    }

    /// Processes one inbound frame (after interception).
    fn process(&self, socket: &Arc<Socket>, frame: &str) {
        self.process_frame(socket, InboundFrame::new(frame));
    }

    /// Processes one inbound frame, using what the interceptor already decoded of it.
    fn process_frame(&self, socket: &Arc<Socket>, inbound: InboundFrame<'_>) {
        let frame = inbound.text();
        let packet = match engineio::decode_packet(frame) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(conn = socket.id, error = %e, "bad engine.io frame");
                self.close(socket, CloseReason::ProtocolError(e.to_string()), false);
                return;
            }
        };
        match packet.kind {
            PacketType::Ping => {
                socket.touch_ping();
                socket.send_frame(engineio::encode_packet(PacketType::Pong, packet.data).into());
            }
            PacketType::Message => self.on_message(socket, inbound),
            PacketType::Close => self.close(socket, CloseReason::ClientDisconnect, false),
            PacketType::Open | PacketType::Pong | PacketType::Upgrade | PacketType::Noop => {}
        }
    }

    fn on_message(&self, socket: &Arc<Socket>, inbound: InboundFrame<'_>) {
        let data = &inbound.text()[1..];
        if self.handler.on_raw_message(socket, data) {
            return;
        }
        let packet = match inbound.into_packet() {
            Some(Ok(p)) => p,
            None => return,
            Some(Err(e)) => {
                // A socket.io decode error carries no rid to answer; drop the frame and
                // keep the session (one bad frame must not cost the client its login).
                tracing::warn!(conn = socket.id, error = %e, frame = %truncate(data), "bad socket.io packet ignored");
                return;
            }
        };
        match packet {
            SioPacket::Event { nsp, data, .. } if nsp == "/" => {
                if let Some((event, payload)) = socketio::event_parts(data) {
                    self.handler.on_event(socket, event, payload);
                }
            }
            SioPacket::Connect { nsp } if nsp == "/" => {
                socket.send_frame(socketio::CONNECT_FRAME.into());
            }
            SioPacket::Connect { nsp } => {
                socket.send_frame(socketio::namespace_error_frame(&nsp).into());
            }
            SioPacket::Disconnect { nsp } if nsp == "/" => {
                self.close(socket, CloseReason::ClientDisconnect, false);
            }
            other => {
                tracing::debug!(conn = socket.id, packet = ?other, "socket.io packet ignored");
            }
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
