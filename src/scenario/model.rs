//! The scenario and fixture file formats (documented in `docs/scenarios.md`).

use crate::backend::BlacklistSeed;
use crate::backend::{
    AppConfig, FriendSeed, GroupSeed, MediaSeed, MessageSeed, RoomSeed, UserSeed,
};
use crate::faults::FaultSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_saphyr::Spanned;

/// Reusable state: apps, users, groups, rooms, friendships, messages.
// Deliberately repeated (the lists of `backend::Seeds`): each entry is wrapped in a
// source span for error positions, which `Seeds` has no place for.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    #[serde(default)]
    #[schemars(with = "Vec<UserSeed>")]
    pub users: Vec<Spanned<UserSeed>>,
    #[serde(default)]
    #[schemars(with = "Vec<GroupSeed>")]
    pub groups: Vec<Spanned<GroupSeed>>,
    #[serde(default)]
    pub rooms: Vec<RoomSeed>,
    #[serde(default)]
    #[schemars(with = "Vec<FriendSeed>")]
    pub friends: Vec<Spanned<FriendSeed>>,
    #[serde(default)]
    #[schemars(with = "Vec<MessageSeed>")]
    pub messages: Vec<Spanned<MessageSeed>>,
    #[serde(default)]
    #[schemars(with = "Vec<MediaSeed>")]
    pub media: Vec<Spanned<MediaSeed>>,
    #[serde(default)]
    #[schemars(with = "Vec<BlacklistSeed>")]
    pub blacklists: Vec<Spanned<BlacklistSeed>>,
}

/// Which transport a scripted client uses: the transport layer's
/// [`TransportKind`](crate::transport::TransportKind).
pub use crate::transport::TransportKind as TransportSpec;

/// What a request step expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedReply {
    /// A response with this code (0 = success).
    Code(i64),
    /// No ack after all sends (`onTimeout`, `response_timeout: false`).
    AckTimeout,
    /// Acked, never answered (`onTimeout`, `response_timeout: true`).
    ResponseTimeout,
    /// The connection closed before an answer.
    Closed,
}

/// One step of a scenario, run by the conformance runner (the builtin driver is the
/// Rust reference client).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Open a client connection named `client`.
    Connect {
        client: String,
        #[serde(default)]
        transport: crate::transport::TransportKind,
        /// Expect the connection to be refused (a handshake fault).
        #[serde(default)]
        refused: bool,
    },
    /// `init` with a valid signature for `appkey` (default: the first app).
    Init {
        client: String,
        #[serde(default)]
        appkey: Option<String>,
        #[serde(default)]
        flag: Option<i64>,
        #[serde(default)]
        expect: Option<ExpectedReply>,
    },
    Register {
        client: String,
        username: String,
        password: String,
        #[serde(default)]
        expect: Option<ExpectedReply>,
    },
    Login {
        client: String,
        username: String,
        password: String,
        #[serde(default)]
        expect: Option<ExpectedReply>,
    },
    /// `sendSingleMsg` with a text body.
    SendText {
        client: String,
        to: String,
        text: String,
        #[serde(default)]
        expect: Option<ExpectedReply>,
    },
    /// Any request event with a payload.
    Request {
        client: String,
        event: String,
        #[serde(default)]
        payload: Value,
        #[serde(default)]
        expect: Option<ExpectedReply>,
    },
    /// Wait for a push.
    ExpectPush {
        client: String,
        event: String,
        #[serde(default = "default_within")]
        within_ms: u64,
        /// Fields the push must contain (a JSON subset match).
        #[serde(default)]
        fields: Option<Value>,
    },
    /// Assert that no push of this event arrives within the window.
    NoPush {
        client: String,
        event: String,
        #[serde(default = "default_quiet")]
        within_ms: u64,
    },
    /// Close a client: `41` + close, or drop the TCP connection.
    Disconnect {
        client: String,
        #[serde(default)]
        abrupt: bool,
    },
    /// Wait until the client's connection is gone (e.g. after a ping stall).
    ExpectClosed {
        client: String,
        #[serde(default = "default_within")]
        within_ms: u64,
    },
    /// Move the server's virtual clock forward.
    AdvanceClock(u64),
    /// Real time passes (scaled like the client timers).
    WaitMs(u64),
    FaultOn(String),
    FaultOff(String),
    /// Portable steps (any driver): create a client instance, i.e. the SDK's
    /// `new JMessage({address, upload_file})` pointed at the server.
    Create {
        client: String,
    },
    /// Call a public API method of the Web SDK V2 guide. In `args`, `{"$auth": {...}}`
    /// becomes a signed init payload (`appkey`, `random_str`, `timestamp`, `signature`)
    /// merged with the given fields.
    Call {
        client: String,
        method: String,
        #[serde(default)]
        args: Vec<Value>,
        #[serde(default)]
        expect: Option<CallExpect>,
        /// How long to wait for the first callback (scaled).
        #[serde(default = "default_call_within")]
        within_ms: u64,
        /// `false`: when `expect` does not hold the run goes on and the verdict is
        /// NON-STRICT (the client works, but differs from the reference in a tolerated way).
        #[serde(default = "yes")]
        strict: bool,
    },
    /// Register a listener (`onMsgReceive`, `onEventNotification`, ...).
    Listen {
        client: String,
        listener: String,
    },
    /// Wait for a listener delivery whose first argument contains `fields`.
    ExpectListener {
        client: String,
        listener: String,
        #[serde(default)]
        fields: Option<Value>,
        #[serde(default = "default_within")]
        within_ms: u64,
        /// `false`: a missing delivery only makes the verdict NON-STRICT.
        #[serde(default = "yes")]
        strict: bool,
        /// Exactly this many deliveries containing `fields` (e.g. `1`: "once, never
        /// twice"): the step waits for them within `within_ms`, then fails when one more
        /// arrives within a quiet window (docs/scenarios.md). Default: at least one.
        #[serde(default)]
        count: Option<std::num::NonZeroU32>,
    },
    /// Move the driver's fake timers forward (drivers with `fake_timers`).
    AdvanceTimers(u64),
    /// Let every client's background timers run for `ms` (retries, resends, sync checks):
    /// the builtin client sleeps `ms` on its scaled clock, a driver with `fake_timers`
    /// advances its fake clock by `ms`, any other driver sleeps `ms` of real time.
    Settle(Settle),
    /// Server side, for every client kind: `user` acts on another device. The runner
    /// sends the wire request `event` with `payload` on a temporary session of that user
    /// (logged in on `platform`, held by no client) and delivers the pushes it causes,
    /// e.g. the events 2, 40, 100-103, 200, 201 and `trans_msg_rec` type 5 that go to
    /// the user's other sessions. `expect` is the response code (default `{code: 0}`).
    AsDevice {
        user: String,
        /// App of the user (default: the first app).
        #[serde(default)]
        appkey: Option<String>,
        /// `android` (default), `ios`, `pc` or `web`.
        #[serde(default = "default_platform")]
        platform: String,
        event: String,
        #[serde(default)]
        payload: Value,
        #[serde(default)]
        expect: Option<ExpectedReply>,
    },
}

/// The argument of a `settle` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settle {
    /// Client time to let pass, ms (at most 600000).
    pub ms: u64,
}

/// The longest `settle` step (ten minutes of client time).
pub const SETTLE_MAX_MS: u64 = 600_000;

fn default_platform() -> String {
    "android".into()
}

/// What a `call` step expects.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallExpect {
    /// `onSuccess` fires (default). With fields: its first argument contains them.
    Success(Option<Value>),
    /// `onFail` fires with this code.
    Fail(i64),
    /// `onTimeout` fires.
    Timeout,
    /// The method throws synchronously.
    Thrown,
    /// The method returns this value.
    Returned(Value),
    /// The connection closed before any callback fired (a fault closed it mid-request).
    /// Builtin: the pending request ends with the close. Drivers: no `onSuccess`,
    /// `onFail` or `onTimeout` fires within `within_ms`.
    Closed,
}

fn default_call_within() -> u64 {
    40_000
}

fn yes() -> bool {
    true
}

fn default_within() -> u64 {
    5_000
}

fn default_quiet() -> u64 {
    300
}

/// A check on the journal at the end of a run.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
// Deliberately repeated: `count` and `frame` list the frame-filter keys themselves
// rather than flatten `FrameFilter`, because serde's flatten does not work with
// deny_unknown_fields (a typo in a scenario must stay an error at its line).
pub enum Expectation {
    /// How many frames match (the filter keys of [`FrameFilter`], plus `equals`).
    Count {
        #[serde(default)]
        dir: Option<crate::faults::Direction>,
        #[serde(default)]
        kind: Option<crate::faults::KindSpec>,
        #[serde(default)]
        event: Option<String>,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        fault: Option<String>,
        equals: usize,
        /// `false`: a mismatch only makes the verdict NON-STRICT (tolerated behaviour).
        #[serde(default = "yes")]
        strict: bool,
    },
    /// All matching frames carry one and the same rid (retries).
    SameRid(FrameFilter),
    /// How many messages the server stored.
    MessagesStored(usize),
    /// Some matching frame's JSON payload contains these fields (volatile values such as
    /// rids and timestamps are simply left out).
    Frame {
        #[serde(default)]
        dir: Option<crate::faults::Direction>,
        #[serde(default)]
        kind: Option<crate::faults::KindSpec>,
        #[serde(default)]
        event: Option<String>,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        fault: Option<String>,
        fields: Value,
        /// `false`: a mismatch only makes the verdict NON-STRICT (tolerated behaviour).
        #[serde(default = "yes")]
        strict: bool,
    },
}

impl Expectation {
    /// Whether a mismatch fails the scenario (`false`: it is tolerated, NON-STRICT).
    pub fn strict(&self) -> bool {
        match self {
            Expectation::Count { strict, .. } | Expectation::Frame { strict, .. } => *strict,
            Expectation::SameRid(_) | Expectation::MessagesStored(_) => true,
        }
    }

    /// The frames an expectation is about (`None` for `messages_stored`).
    pub fn filter(&self) -> Option<FrameFilter> {
        match self {
            Expectation::Count {
                dir,
                kind,
                event,
                user,
                fault,
                ..
            }
            | Expectation::Frame {
                dir,
                kind,
                event,
                user,
                fault,
                ..
            } => Some(FrameFilter {
                dir: *dir,
                kind: *kind,
                event: event.clone(),
                user: user.clone(),
                fault: fault.clone(),
            }),
            Expectation::SameRid(f) => Some(f.clone()),
            Expectation::MessagesStored(_) => None,
        }
    }
}

/// Selects journal entries.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrameFilter {
    #[serde(default)]
    pub dir: Option<crate::faults::Direction>,
    #[serde(default)]
    pub kind: Option<crate::faults::KindSpec>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// Only frames this fault rule acted on.
    #[serde(default)]
    pub fault: Option<String>,
}

/// A scenario file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Stable id, e.g. `JMC-2.2-001`.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The section of the guide or protocol.md this case is about.
    #[serde(default)]
    pub spec: Option<String>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub include: Vec<Spanned<String>>,
    #[serde(default)]
    pub fixtures: Fixtures,
    /// Seed the embedded demo users, group, friendship and rooms.
    #[serde(default)]
    pub demo_data: bool,
    #[serde(default)]
    #[schemars(with = "Vec<FaultSpec>")]
    pub faults: Vec<Spanned<FaultSpec>>,
    /// The scenario documents behaviour without requiring it: a failure is graded
    /// informational and does not fail the run.
    #[serde(default)]
    pub informational: bool,
    /// Client timers and waits are multiplied by this (0.01 runs the SDK's 5 s ack
    /// timeout in 50 ms).
    #[serde(default)]
    pub time_scale: Option<f64>,
    /// Protocol rules (docs/rules.md) the scenario's clients break on purpose: each must
    /// be reported, and none of them grades the case.
    #[serde(default)]
    pub breaks: Vec<String>,
    #[serde(default)]
    #[schemars(with = "Vec<Step>")]
    pub steps: Vec<Spanned<Step>>,
    #[serde(default)]
    #[schemars(with = "Vec<Expectation>")]
    pub expect: Vec<Spanned<Expectation>>,
}
