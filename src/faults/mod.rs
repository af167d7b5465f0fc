//! Weak-network faults applied at the transport boundary, and the wire journal.
//!
//! [`FaultLayer`] is the transport's [`Interceptor`]: it classifies each frame (kind,
//! event, rid, user), checks the rules in order, and returns what the transport must do
//! (drop, delay, duplicate, reorder, replace, close, kick, answer with an error). Delays
//! are timers, never a blocked worker. Random choices use a per-rule seeded generator, so
//! a scenario run repeats.

pub(crate) mod journal;
pub(crate) mod redact;
pub(crate) mod spec;

pub use journal::{Entry, Journal};
pub use spec::{
    ActionSpec, CloseSpec, DelayDist, DelaySpec, Direction, FaultSpec, KindSpec, MatchSpec,
};

use crate::lock::lock;
use crate::protocol::{self, Code, Failure, Rid};
use crate::transport::{
    Action, Engine, FrameKind, FrameTag, InboundFrame, Interceptor, Object, Socket, TransportKind,
};
use serde::Serialize;
use smol_str::SmolStr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A rule and its counters.
#[derive(Debug, Clone)]
struct RuleState {
    spec: FaultSpec,
    id: Arc<str>,
    matched: u32,
    fired: u32,
    rng: Rng,
}

/// A rule's public view (admin API).
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    #[serde(flatten)]
    pub spec: FaultSpec,
    pub matched: u32,
    pub fired: u32,
}

/// Why a rule could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a fault with id {0:?} exists already")]
    Duplicate(String),
    #[error("no fault with id {0:?}")]
    Unknown(String),
    #[error("fault {0:?}: {1}")]
    Invalid(String, String),
}

/// Checks a rule for values serde cannot reject.
pub fn validate(spec: &FaultSpec) -> Result<(), String> {
    if spec.id.trim().is_empty() {
        return Err("id must not be empty".into());
    }
    if let Some(p) = spec.probability {
        if !(0.0..=1.0).contains(&p) {
            return Err(format!("probability must be within 0..=1, not {p}"));
        }
    }
    if spec.nth.contains(&0) {
        return Err("nth counts from 1".into());
    }
    if let Some([from, to]) = spec.steps {
        if from == 0 || from > to {
            return Err(format!(
                "steps window [{from}, {to}] must count from 1 and ascend"
            ));
        }
    }
    match &spec.action {
        ActionSpec::Delay(DelaySpec::Dist(DelayDist::Uniform([a, b]))) if a > b => Err(format!(
            "uniform delay bounds must be ascending, got [{a}, {b}]"
        )),
        ActionSpec::Delay(DelaySpec::Dist(DelayDist::Lognormal { sigma, .. }))
            if sigma.is_nan() || *sigma < 0.0 =>
        {
            Err("lognormal sigma must be >= 0".into())
        }
        ActionSpec::Throttle(0) => Err("throttle needs a rate above 0 bytes/s".into()),
        ActionSpec::Error(code) if *code == 0 => Err("error code must not be 0".into()),
        _ => Ok(()),
    }
}

/// A protocol rule a client broke, as an [`Observer`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub conn: u64,
    pub user: Option<Arc<str>>,
    /// The rule's stable id (`JMP-FIELD-001`).
    pub rule: &'static str,
    /// One line with the specifics.
    pub text: String,
}

/// Watches the frames this layer lets through (the protocol oracle, `src/oracle/`).
/// Frames a fault drops are not shown to it: the peer never saw them.
pub trait Observer: Send + Sync + 'static {
    /// An inbound frame about to be processed. `Some(frames)` answers it instead
    /// (the service refuses it); what was broken goes into `found`.
    /// `event` is the frame's Socket.IO event and payload when the layer has parsed it
    /// already (each inbound frame is parsed once); `None` leaves parsing to the observer.
    fn inbound(
        &self,
        conn: u64,
        user: Option<&Arc<str>>,
        frame: &str,
        event: Option<(&str, &serde_json::Value)>,
        at: Instant,
        found: &mut Vec<Finding>,
    ) -> Option<Vec<(Arc<str>, FrameTag)>>;
    /// An outbound frame that will reach the client.
    /// `payload`: the event's payload object when the sender had it (otherwise the
    /// observer parses `frame` if it needs to look inside).
    fn outbound(
        &self,
        conn: u64,
        frame: &str,
        tag: &FrameTag,
        payload: Option<&serde_json::Map<String, serde_json::Value>>,
        at: Instant,
        found: &mut Vec<Finding>,
    );
    /// A fault kept an inbound frame of this connection from the server (the client
    /// will have to resend it), or held a frame back either way (a delay or throttle: the
    /// exchange it belongs to may finish late).
    fn lost(&self, conn: u64);
    /// The connection closed.
    fn closed(&self, conn: u64, found: &mut Vec<Finding>);
    /// The exchange is over (a conformance case ended, its clients settled): report what
    /// is still owed, on every connection.
    fn finish(&self, found: &mut Vec<Finding>);
}

/// What the layer knows about a frame.
struct Seen<'a> {
    /// When the layer saw it: one clock read for the journal and the observer.
    at: Instant,
    dir: Direction,
    /// Kind, event and rid: the sender's tag for an outbound frame (borrowed, so the
    /// observer gets it as is), the classification of an inbound one.
    tag: &'a FrameTag,
    user: Option<Arc<str>>,
    frame: &'a str,
    /// An inbound event's payload, parsed once by [`classify_inbound`].
    payload: Option<&'a serde_json::Value>,
    /// An outbound event's payload object, when its sender gave it.
    object: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

fn kind_matches(spec: KindSpec, kind: FrameKind) -> bool {
    matches!(
        (spec, kind),
        (KindSpec::Handshake, FrameKind::Open)
            | (KindSpec::Connect, FrameKind::Connect)
            | (
                KindSpec::Disconnect,
                FrameKind::Disconnect | FrameKind::Close
            )
            | (KindSpec::Ping, FrameKind::Ping)
            | (KindSpec::Pong, FrameKind::Pong)
            | (KindSpec::Noop, FrameKind::Noop)
            | (KindSpec::Request, FrameKind::Request)
            | (KindSpec::Ack, FrameKind::Ack)
            | (KindSpec::Response, FrameKind::Response)
            | (KindSpec::Push, FrameKind::Push)
    )
}

impl RuleState {
    fn matches(&self, s: &Seen<'_>) -> bool {
        let w = &self.spec.when;
        // Shorthands imply their own match.
        let (dir, kind) = match self.spec.action {
            ActionSpec::StopPings => (Some(Direction::Out), Some(KindSpec::Pong)),
            ActionSpec::NeverAnswer => (Some(Direction::Out), Some(KindSpec::Response)),
            ActionSpec::Error(_) => (Some(Direction::In), Some(KindSpec::Request)),
            _ => (w.direction, w.kind),
        };
        dir.is_none_or(|d| d == s.dir)
            && kind.is_none_or(|k| kind_matches(k, s.tag.kind))
            && (w.event.is_empty()
                || s.tag
                    .event
                    .as_deref()
                    .is_some_and(|e| w.event.iter().any(|x| x == e)))
            && w.user
                .as_deref()
                .is_none_or(|u| s.user.as_deref() == Some(u))
    }

    /// Counts a match and decides whether the rule acts on it.
    fn fires(&mut self) -> bool {
        self.matched += 1;
        let n = self.matched;
        let spec = &self.spec;
        if !spec.nth.is_empty() && !spec.nth.contains(&n) {
            return false;
        }
        if spec.after.is_some_and(|a| n <= a) {
            return false;
        }
        if spec.times.is_some_and(|t| self.fired >= t) {
            return false;
        }
        if let Some(p) = spec.probability {
            if self.rng.unit() >= p {
                return false;
            }
        }
        self.fired += 1;
        true
    }

    fn delay(&mut self, d: &DelaySpec) -> Duration {
        let ms = match d {
            DelaySpec::Fixed(ms) | DelaySpec::Dist(DelayDist::Fixed(ms)) => *ms as f64,
            DelaySpec::Dist(DelayDist::Uniform([a, b])) => {
                *a as f64 + self.rng.unit() * (*b - *a) as f64
            }
            DelaySpec::Dist(DelayDist::Lognormal { median, sigma }) => {
                (*median as f64) * (sigma * self.rng.normal()).exp()
            }
        };
        Duration::from_millis(ms.clamp(0.0, 3_600_000.0) as u64)
    }
}

/// Per-connection throttle state: when its link is free again.
type Links = HashMap<u64, Instant>;

/// The fault layer: rules, journal, and the handshake gate.
pub struct FaultLayer {
    /// False while there are no rules and no journal: frames pass untouched, unparsed.
    active: std::sync::atomic::AtomicBool,
    journal_on: bool,
    /// Whether `rules` holds any rule (set under its lock by `refresh`): a frame with no
    /// rule to match does not take the lock.
    has_rules: std::sync::atomic::AtomicBool,
    rules: Mutex<Vec<RuleState>>,
    journal: Mutex<Journal>,
    observer: OnceLock<Arc<dyn Observer>>,
    /// Runs after every journal clear (the server retakes its recording baseline).
    on_clear: OnceLock<Box<dyn Fn() + Send + Sync>>,
    links: Mutex<Links>,
    started: Instant,
    /// While a `restart` rule keeps the server down: until when, and the rule's id.
    down_until: Mutex<Option<(Instant, Arc<str>)>>,
    engine: OnceLock<Weak<Engine>>,
}

impl FaultLayer {
    /// A layer keeping at most `journal_capacity` journal entries (0: no journal).
    pub fn new(journal_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            active: std::sync::atomic::AtomicBool::new(journal_capacity > 0),
            journal_on: journal_capacity > 0,
            has_rules: std::sync::atomic::AtomicBool::new(false),
            rules: Mutex::new(Vec::new()),
            journal: Mutex::new(Journal::new(journal_capacity)),
            observer: OnceLock::new(),
            on_clear: OnceLock::new(),
            links: Mutex::new(HashMap::new()),
            started: Instant::now(),
            down_until: Mutex::new(None),
            engine: OnceLock::new(),
        })
    }

    /// Bounds the journal by bytes, and the frame text kept per entry (docs/limits.md).
    pub fn set_journal_bounds(&self, max_bytes: usize, frame_max: usize) {
        lock(&self.journal).set_bounds(max_bytes, frame_max);
    }

    /// Bytes the journal accounts for now.
    pub fn journal_bytes(&self) -> usize {
        lock(&self.journal).bytes()
    }

    /// Lets `restart` faults reach the engine.
    pub fn attach(&self, engine: &Arc<Engine>) {
        let _ = self.engine.set(Arc::downgrade(engine));
    }

    /// Adds a rule at the end.
    pub fn add(&self, spec: FaultSpec) -> Result<(), RuleError> {
        validate(&spec).map_err(|e| RuleError::Invalid(spec.id.clone(), e))?;
        let mut rules = lock(&self.rules);
        if rules.iter().any(|r| r.spec.id == spec.id) {
            return Err(RuleError::Duplicate(spec.id));
        }
        let seed = spec.seed.unwrap_or_else(|| {
            spec.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            })
        });
        rules.push(RuleState {
            id: spec.id.as_str().into(),
            spec,
            matched: 0,
            fired: 0,
            rng: Rng(seed),
        });
        self.refresh(&rules);
        Ok(())
    }

    /// Replaces every rule.
    pub fn replace(&self, specs: Vec<FaultSpec>) -> Result<(), RuleError> {
        for s in &specs {
            validate(s).map_err(|e| RuleError::Invalid(s.id.clone(), e))?;
        }
        self.clear();
        for s in specs {
            self.add(s)?;
        }
        Ok(())
    }

    /// Switches a rule on or off.
    pub fn set_enabled(&self, id: &str, on: bool) -> Result<(), RuleError> {
        let mut rules = lock(&self.rules);
        let r = rules
            .iter_mut()
            .find(|r| r.spec.id == id)
            .ok_or_else(|| RuleError::Unknown(id.to_owned()))?;
        r.spec.enabled = on;
        Ok(())
    }

    pub fn remove(&self, id: &str) -> Result<(), RuleError> {
        let mut rules = lock(&self.rules);
        let before = rules.len();
        rules.retain(|r| r.spec.id != id);
        self.refresh(&rules);
        if rules.len() == before {
            return Err(RuleError::Unknown(id.to_owned()));
        }
        Ok(())
    }

    pub fn clear(&self) {
        let mut rules = lock(&self.rules);
        rules.clear();
        self.refresh(&rules);
    }

    /// Shows every frame that gets through to `observer` (set once; later calls are
    /// ignored). Frames are then parsed even without a journal.
    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        let _ = self.observer.set(observer);
        self.refresh(&lock(&self.rules));
    }

    /// Journals (kind `violation`, `event` the rule id) and logs what the observer found.
    pub fn record_findings(&self, found: Vec<Finding>) {
        for f in found {
            tracing::warn!(
                conn = f.conn,
                user = f.user.as_deref(),
                rule = f.rule,
                "client broke the protocol: {}",
                f.text
            );
            if !self.journal_on {
                continue;
            }
            let t_ms = self.started.elapsed().as_millis() as u64;
            lock(&self.journal).push(&journal::Draft {
                t_ms,
                conn: f.conn,
                user: f.user.as_deref(),
                dir: "in",
                kind: "violation",
                event: Some(f.rule),
                rid: None,
                fault: None,
                action: None,
                delay_ms: None,
                frame: &f.text,
            });
        }
    }

    /// Tells the observer the exchange is over and records what it reports.
    pub fn finish_observation(&self) {
        if let Some(o) = self.observer.get() {
            let mut found = Vec::new();
            o.finish(&mut found);
            self.record_findings(found);
        }
    }

    /// What the observer sees of a frame the rules decided `action` for; may turn an
    /// inbound pass into the observer's answer.
    fn observe(&self, socket: &Socket, s: &Seen<'_>, action: Action) -> Action {
        let Some(o) = self.observer.get() else {
            return action;
        };
        let delivered = matches!(
            action,
            Action::Pass | Action::Delay(_) | Action::Duplicate(_) | Action::Hold
        ) || matches!(action, Action::Close { after: true, .. });
        if !delivered {
            if s.dir == Direction::In {
                o.lost(socket.id);
            }
            return action;
        }
        if matches!(action, Action::Delay(_) | Action::Hold) {
            // A held-back frame (either way) may reach its peer after the case ends: the
            // confirmation it calls for is judged by its timed window only.
            o.lost(socket.id);
        }
        let mut found = Vec::new();
        let mut action = action;
        match s.dir {
            Direction::In => {
                let event = s.tag.event.as_deref().zip(s.payload);
                let answer =
                    o.inbound(socket.id, s.user.as_ref(), s.frame, event, s.at, &mut found);
                if let (Some(frames), Action::Pass) = (answer, &action) {
                    action = Action::Respond(frames);
                }
            }
            Direction::Out => o.outbound(socket.id, s.frame, s.tag, s.object, s.at, &mut found),
        }
        self.record_findings(found);
        action
    }

    fn refresh(&self, rules: &[RuleState]) {
        self.has_rules
            .store(!rules.is_empty(), std::sync::atomic::Ordering::Release);
        self.active.store(
            self.journal_on || !rules.is_empty() || self.observer.get().is_some(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn rules(&self) -> Vec<RuleView> {
        lock(&self.rules)
            .iter()
            .map(|r| RuleView {
                spec: r.spec.clone(),
                matched: r.matched,
                fired: r.fired,
            })
            .collect()
    }

    /// Journal entries after `since`.
    pub fn journal(&self, since: u64) -> Vec<Entry> {
        lock(&self.journal).since(since)
    }

    /// The journal entries after `since` and a receiver of every later entry
    /// (`GET /__admin/events`; see [`Journal::subscribe`]).
    pub fn subscribe_journal(
        &self,
        since: u64,
    ) -> (Vec<Entry>, tokio::sync::broadcast::Receiver<Entry>) {
        lock(&self.journal).subscribe(since)
    }

    /// Empties the journal, then runs the [`FaultLayer::on_journal_clear`] hook.
    pub fn clear_journal(&self) {
        lock(&self.journal).clear();
        if let Some(f) = self.on_clear.get() {
            f();
        }
    }

    /// Sets what runs after every journal clear (once; later calls are ignored).
    pub fn on_journal_clear(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_clear.set(Box::new(f));
    }

    fn record(
        &self,
        s: &Seen<'_>,
        conn: u64,
        fault: Option<(&Arc<str>, &'static str)>,
        delay: Option<Duration>,
    ) {
        // Secrets are never stored (redacted outside the lock).
        let redacted = redact::frame(s.frame, s.tag.event.as_deref());
        let t_ms = s.at.saturating_duration_since(self.started).as_millis() as u64;
        lock(&self.journal).push(&journal::Draft {
            t_ms,
            conn,
            user: s.user.as_deref(),
            dir: match s.dir {
                Direction::In => "in",
                Direction::Out => "out",
            },
            kind: s.tag.kind.name(),
            event: s.tag.event.as_deref(),
            rid: s.tag.rid.as_deref(),
            fault: fault.map(|f| &**f.0),
            action: fault.map(|f| f.1),
            delay_ms: delay.map(|d| d.as_millis() as u64),
            frame: redacted.as_deref().unwrap_or(s.frame),
        });
    }

    /// Journals a refused handshake (it has no connection yet: `conn` 0).
    fn record_refusal(
        &self,
        transport: TransportKind,
        upgrade: bool,
        id: &Arc<str>,
        name: &'static str,
    ) {
        let what = match (transport, upgrade) {
            (TransportKind::Websocket, false) => "websocket handshake",
            (TransportKind::Websocket, true) => "websocket upgrade",
            (TransportKind::Polling, false) => "polling handshake",
            (TransportKind::Polling, true) => "polling request",
        };
        let s = Seen {
            at: Instant::now(),
            dir: Direction::In,
            tag: &FrameTag::of(FrameKind::Open),
            user: None,
            frame: what,
            payload: None,
            object: None,
        };
        self.record(&s, 0, Some((id, name)), None);
    }

    /// The first enabled, firing rule's decision for a frame.
    fn decide(&self, socket: &Socket, s: &Seen<'_>) -> Action {
        let mut chosen = None;
        let mut rules = self
            .has_rules
            .load(std::sync::atomic::Ordering::Acquire)
            .then(|| lock(&self.rules));
        for r in rules.iter_mut().flat_map(|r| r.iter_mut()) {
            if !r.spec.enabled || r.spec.action.is_handshake_refusal() || !r.matches(s) {
                continue;
            }
            if r.fires() {
                chosen = Some(self.act(r, socket, s));
                break;
            }
        }
        drop(rules);
        match chosen {
            Some((action, id, name)) => {
                let delay = match &action {
                    Action::Delay(d) => Some(*d),
                    _ => None,
                };
                self.record(s, socket.id, Some((&id, name)), delay);
                self.observe(socket, s, action)
            }
            None => {
                self.record(s, socket.id, None, None);
                self.observe(socket, s, Action::Pass)
            }
        }
    }

    fn act(
        &self,
        r: &mut RuleState,
        socket: &Socket,
        s: &Seen<'_>,
    ) -> (Action, Arc<str>, &'static str) {
        let name = r.spec.action.name();
        let action = match r.spec.action.clone() {
            ActionSpec::Drop | ActionSpec::StopPings | ActionSpec::NeverAnswer => Action::Drop,
            ActionSpec::Duplicate => Action::Duplicate(1),
            ActionSpec::Reorder => Action::Hold,
            ActionSpec::Kick => Action::Kick,
            ActionSpec::Corrupt => Action::Replace(corrupt(s.frame).into()),
            ActionSpec::Delay(d) => Action::Delay(r.delay(&d)),
            ActionSpec::Close(c) => Action::Close {
                abrupt: c.abrupt,
                after: c.after,
            },
            ActionSpec::Throttle(rate) => {
                let mut links = lock(&self.links);
                let now = Instant::now();
                let free = links.get(&socket.id).copied().unwrap_or(now).max(now);
                let cost = Duration::from_secs_f64(s.frame.len() as f64 / rate as f64);
                let done = free + cost;
                links.insert(socket.id, done);
                Action::Delay(done - now)
            }
            ActionSpec::Error(code) => match (&s.tag.event, &s.tag.rid) {
                (Some(event), Some(rid)) if s.dir == Direction::In => {
                    let failure = match Code::from_number(code) {
                        Some(c) => Failure::from(c),
                        None => Failure {
                            code: Code::Internal,
                            message: format!("injected error {code}"),
                        },
                    };
                    let mut body = failure.to_body();
                    body.insert("code".into(), serde_json::json!(code));
                    let rid_value = serde_json::from_str(rid)
                        .unwrap_or_else(|_| serde_json::json!(rid.to_string()));
                    let mut m = serde_json::Map::new();
                    m.insert("rid".into(), rid_value);
                    match Rid::from_payload(&m) {
                        Some(rp) => {
                            Action::Respond(protocol::answer_frames(event, &rp, Some(&body)))
                        }
                        None => Action::Pass,
                    }
                }
                _ => Action::Pass,
            },
            ActionSpec::Restart { down_ms } => {
                *lock(&self.down_until) = Some((
                    Instant::now() + Duration::from_millis(down_ms),
                    r.id.clone(),
                ));
                if let Some(engine) = self.engine.get().and_then(Weak::upgrade) {
                    // Outside the rules lock's caller: close every session on a task.
                    tokio::spawn(async move {
                        for s in engine.sockets() {
                            engine.close(&s, crate::transport::CloseReason::ServerClose, true);
                        }
                    });
                }
                Action::Drop
            }
            ActionSpec::RefuseWebsocket | ActionSpec::RefuseUpgrade | ActionSpec::RefusePolling => {
                Action::Pass
            }
        };
        (action, r.id.clone(), name)
    }
}

/// A frame cut in the middle of its JSON (or an unknown packet type if it has none).
fn corrupt(frame: &str) -> String {
    match frame.find('[') {
        Some(i) => {
            let cut = i + (frame.len() - i) / 2;
            let mut end = cut.max(i + 1);
            while !frame.is_char_boundary(end) {
                end += 1;
            }
            frame[..end].to_owned()
        }
        None => format!("9{frame}"),
    }
}

/// What [`classify_inbound`] learns of a frame: its tag (kind, event, rid) and the
/// event's payload (borrowed from the frame's one decode, which the engine reuses).
type Inbound<'a> = (FrameTag, Option<&'a serde_json::Value>);

/// Classifies an inbound frame: kind, event, rid, and the payload it parsed for them.
fn classify_inbound<'a>(frame: &'a InboundFrame<'_>) -> Inbound<'a> {
    if frame.text().starts_with("42") {
        return classify_event(frame);
    }
    (FrameTag::of(FrameKind::of_frame(frame.text())), None)
}

/// An event is a request when its payload carries a valid rid.
fn classify_event<'a>(frame: &'a InboundFrame<'_>) -> Inbound<'a> {
    let Some((event, payload)) = frame.event() else {
        return (FrameTag::of(FrameKind::Other), None);
    };
    let rid = payload
        .as_object()
        .and_then(Rid::from_payload)
        .map(|r| r.tag_key());
    let kind = if rid.is_some() {
        FrameKind::Request
    } else {
        FrameKind::Other
    };
    let tag = FrameTag {
        kind,
        event: Some(SmolStr::new(event)),
        rid,
    };
    (tag, Some(payload))
}

impl Interceptor for FaultLayer {
    fn outbound(
        &self,
        socket: &Socket,
        frame: &Arc<str>,
        tag: &FrameTag,
        payload: Option<&Object>,
    ) -> Action {
        if !self.is_active() {
            return Action::Pass;
        }
        let s = Seen {
            at: Instant::now(),
            dir: Direction::Out,
            tag,
            user: socket.label(),
            frame,
            payload: None,
            object: payload,
        };
        self.decide(socket, &s)
    }

    fn inbound(&self, socket: &Socket, frame: &InboundFrame<'_>) -> Action {
        if !self.is_active() {
            return Action::Pass;
        }
        let (tag, payload) = classify_inbound(frame);
        let s = Seen {
            at: Instant::now(),
            dir: Direction::In,
            tag: &tag,
            user: socket.label(),
            frame: frame.text(),
            payload,
            object: None,
        };
        self.decide(socket, &s)
    }

    fn accept(&self, transport: TransportKind, upgrade: bool) -> bool {
        let down = lock(&self.down_until)
            .as_ref()
            .filter(|(t, _)| Instant::now() < *t)
            .map(|(_, id)| id.clone());
        if let Some(id) = down {
            if self.journal_on {
                self.record_refusal(transport, upgrade, &id, "restart");
            }
            return false;
        }
        let mut rules = lock(&self.rules);
        for r in rules.iter_mut().filter(|r| r.spec.enabled) {
            let applies = match r.spec.action {
                ActionSpec::RefuseWebsocket => transport == TransportKind::Websocket && !upgrade,
                ActionSpec::RefuseUpgrade => transport == TransportKind::Websocket && upgrade,
                ActionSpec::RefusePolling => transport == TransportKind::Polling && !upgrade,
                _ => false,
            };
            if applies && r.fires() {
                let (id, name) = (r.id.clone(), r.spec.action.name());
                drop(rules);
                if self.journal_on {
                    self.record_refusal(transport, upgrade, &id, name);
                }
                return false;
            }
        }
        true
    }

    fn closed(&self, socket: &Socket) {
        lock(&self.links).remove(&socket.id);
        if let Some(o) = self.observer.get() {
            let mut found = Vec::new();
            o.closed(socket.id, &mut found);
            self.record_findings(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> FaultSpec {
        serde_saphyr::from_str(yaml).expect("valid spec")
    }

    #[test]
    fn specs_parse_from_yaml() {
        let s = spec("id: a\nwhen: {direction: out, kind: ack, event: [s_across_single_text], user: alice}\naction: drop\nnth: [1, 2]\n");
        assert_eq!(s.action, ActionSpec::Drop);
        assert_eq!(s.nth, vec![1, 2]);
        assert_eq!(s.when.kind, Some(KindSpec::Ack));
        let s = spec("id: b\naction: {delay: {lognormal: {median: 200, sigma: 0.4}}}\n");
        assert!(matches!(
            s.action,
            ActionSpec::Delay(DelaySpec::Dist(DelayDist::Lognormal { .. }))
        ));
        let s = spec("id: c\naction: {delay: 150}\n");
        assert_eq!(s.action, ActionSpec::Delay(DelaySpec::Fixed(150)));
        let s = spec("id: d\naction: {close: {abrupt: true}}\n");
        assert_eq!(
            s.action,
            ActionSpec::Close(CloseSpec {
                abrupt: true,
                after: false
            })
        );
        let s = spec("id: e\naction: {error: 880209}\ntimes: 1\n");
        assert_eq!(s.action, ActionSpec::Error(880209));
        let s = spec("id: f\naction: {restart: {down_ms: 500}}\n");
        assert_eq!(s.action, ActionSpec::Restart { down_ms: 500 });
        assert!(serde_saphyr::from_str::<FaultSpec>("id: g\naction: explode\n").is_err());
        assert!(
            serde_saphyr::from_str::<FaultSpec>("id: g\naction: drop\nwhen: {dir: in}\n").is_err()
        );
    }

    #[test]
    fn counters_nth_after_times_and_probability() {
        let mut r = RuleState {
            spec: spec("id: a\naction: drop\nnth: [2, 4]\n"),
            id: "a".into(),
            matched: 0,
            fired: 0,
            rng: Rng(1),
        };
        let fired: Vec<bool> = (0..5).map(|_| r.fires()).collect();
        assert_eq!(fired, vec![false, true, false, true, false]);
        let mut r = RuleState {
            spec: spec("id: a\naction: drop\nafter: 1\ntimes: 2\n"),
            id: "a".into(),
            matched: 0,
            fired: 0,
            rng: Rng(1),
        };
        let fired: Vec<bool> = (0..5).map(|_| r.fires()).collect();
        assert_eq!(fired, vec![false, true, true, false, false]);
        let mut r = RuleState {
            spec: spec("id: a\naction: drop\nprobability: 0.3\n"),
            id: "a".into(),
            matched: 0,
            fired: 0,
            rng: Rng(42),
        };
        let n = (0..10_000).filter(|_| r.fires()).count();
        assert!((2_700..3_300).contains(&n), "{n}");
    }

    #[test]
    fn validation_catches_values_serde_cannot() {
        assert!(validate(&spec("id: a\naction: drop\nprobability: 1.5\n")).is_err());
        assert!(validate(&spec("id: a\naction: drop\nnth: [0]\n")).is_err());
        assert!(validate(&spec("id: a\naction: {delay: {uniform: [5, 1]}}\n")).is_err());
        assert!(validate(&spec("id: a\naction: {throttle: 0}\n")).is_err());
        assert!(validate(&spec("id: ' '\naction: drop\n")).is_err());
        assert!(validate(&spec("id: a\naction: {delay: {uniform: [1, 5]}}\n")).is_ok());
    }

    #[test]
    fn delays_follow_their_distribution() {
        let mut r = RuleState {
            spec: spec("id: a\naction: drop\n"),
            id: "a".into(),
            matched: 0,
            fired: 0,
            rng: Rng(7),
        };
        for _ in 0..100 {
            let d = r.delay(&DelaySpec::Dist(DelayDist::Uniform([10, 20])));
            assert!((10..=20).contains(&(d.as_millis() as u64)));
        }
        let mut v: Vec<u128> = (0..1001)
            .map(|_| {
                r.delay(&DelaySpec::Dist(DelayDist::Lognormal {
                    median: 100,
                    sigma: 0.5,
                }))
                .as_millis()
            })
            .collect();
        v.sort();
        assert!((85..=115).contains(&v[500]), "median {}", v[500]);
    }

    #[test]
    fn inbound_classification_and_corruption() {
        let kind = |text: &str| classify_inbound(&InboundFrame::new(text)).0.kind;
        let login = InboundFrame::new(r#"42["login",{"rid":5}]"#);
        let (tag, p) = classify_inbound(&login);
        assert_eq!(
            (tag.kind, tag.event.as_deref(), tag.rid.as_deref()),
            (FrameKind::Request, Some("login"), Some("5"))
        );
        assert_eq!(
            p,
            Some(&serde_json::json!({"rid": 5})),
            "the parsed payload"
        );
        assert_eq!(kind("2"), FrameKind::Ping);
        assert_eq!(kind("41"), FrameKind::Disconnect);
        assert_eq!(kind("5"), FrameKind::Upgrade);
        assert_eq!(
            kind("3"),
            FrameKind::Pong,
            "the digit's meaning, either way"
        );
        assert_eq!(kind(r#"42["x",null]"#), FrameKind::Other);
        assert_eq!(kind(r#"42["x"]"#), FrameKind::Other, "no payload: no rid");
        assert_eq!(
            kind(r#"42/chat,["x",{"rid":1}]"#),
            FrameKind::Other,
            "not the root namespace"
        );
        assert_eq!(kind(r#"42["x",{"rid":1}"#), FrameKind::Other, "broken JSON");
        let c = corrupt(r#"42["msg_sync",{"messages":[]}]"#);
        assert!(serde_json::from_str::<serde_json::Value>(&c[2..]).is_err());
        assert_eq!(corrupt("3"), "93");
    }
}
