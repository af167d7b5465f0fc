//! Fault rules as users write them (in scenario files and through the admin API).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to server.
    In,
    /// Server to client.
    Out,
}

/// Packet kinds a rule can match (see [`crate::transport::FrameKind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindSpec {
    Handshake,
    Connect,
    Disconnect,
    Ping,
    Pong,
    Noop,
    Request,
    Ack,
    Response,
    Push,
}

/// Which frames a rule applies to; every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KindSpec>,
    /// Event name(s). For an ack: the event of the request it acknowledges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event: Vec<String>,
    /// The logged-in username of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A delay: fixed milliseconds, or a distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DelaySpec {
    Fixed(u64),
    Dist(DelayDist),
}

/// Delay distributions (as WireMock offers them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum DelayDist {
    Fixed(u64),
    /// Uniform between two bounds, ms.
    Uniform([u64; 2]),
    /// Log-normal with the given median (ms) and sigma.
    Lognormal {
        median: u64,
        sigma: f64,
    },
}

/// How to close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseSpec {
    /// Drop the TCP connection without a close frame.
    #[serde(default)]
    pub abrupt: bool,
    /// Close after delivering the frame (default: before, the frame is lost).
    #[serde(default)]
    pub after: bool,
}

/// What to do with a matching frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionSpec {
    Drop,
    /// Deliver twice.
    Duplicate,
    /// Deliver after the next frame.
    Reorder,
    /// Socket.IO disconnect (`41`) then close.
    Kick,
    /// Deliver a truncated, unparsable frame instead.
    Corrupt,
    /// Shorthand: drop the server's pongs (the client sees a ping timeout).
    StopPings,
    /// Shorthand: drop responses (requests are processed and acked, never answered).
    NeverAnswer,
    /// Refuse websocket handshakes (HTTP 503).
    RefuseWebsocket,
    /// Refuse the polling→websocket upgrade (clients stay on polling).
    RefuseUpgrade,
    /// Refuse polling handshakes.
    RefusePolling,
    Delay(DelaySpec),
    /// Answer a request with this error code instead of processing it.
    Error(u32),
    Close(CloseSpec),
    /// Limit matching outbound frames to this many bytes per second.
    Throttle(u64),
    /// Drop every connection and refuse new ones for `down_ms`, keeping all state.
    Restart {
        down_ms: u64,
    },
}

impl ActionSpec {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Duplicate => "duplicate",
            Self::Reorder => "reorder",
            Self::Kick => "kick",
            Self::Corrupt => "corrupt",
            Self::StopPings => "stop_pings",
            Self::NeverAnswer => "never_answer",
            Self::RefuseWebsocket => "refuse_websocket",
            Self::RefuseUpgrade => "refuse_upgrade",
            Self::RefusePolling => "refuse_polling",
            Self::Delay(_) => "delay",
            Self::Error(_) => "error",
            Self::Close(_) => "close",
            Self::Throttle(_) => "throttle",
            Self::Restart { .. } => "restart",
        }
    }

    /// Whether this action is about handshakes rather than frames.
    pub fn is_handshake_refusal(&self) -> bool {
        matches!(
            self,
            Self::RefuseWebsocket | Self::RefuseUpgrade | Self::RefusePolling
        )
    }
}

fn yes() -> bool {
    true
}

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Unique name, used to switch the rule and in the journal.
    pub id: String,
    #[serde(default)]
    pub when: MatchSpec,
    pub action: ActionSpec,
    /// Act only on these occurrences of matching frames (1-based).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nth: Vec<u32>,
    /// Let this many matching frames pass first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u32>,
    /// Act on at most this many frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Act with this probability (seeded, so runs repeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Seed of this rule's random choices (delays, probability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Whether the rule starts switched on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Scenarios only: the rule is on exactly during steps `[from, to]` (1-based,
    /// inclusive); the runner switches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<[u32; 2]>,
}
