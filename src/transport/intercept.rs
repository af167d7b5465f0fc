//! The hook where faults reach single frames. An [`Interceptor`] sees every frame in and
//! out of every session, labelled with a [`FrameTag`], and decides what happens to it.
//! The transport only executes the decision; it never knows why.

use super::session::{Socket, TransportKind};
use super::socketio::{self, SioError, SioPacket};
use serde_json::Value;
use smol_str::SmolStr;
use std::cell::OnceCell;
use std::sync::Arc;
use std::time::Duration;

/// What a frame is. Transport frames are tagged by the engine; application frames by the
/// layer that sends them (inbound ones are classified by the interceptor itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Open,
    Connect,
    Disconnect,
    Ping,
    Pong,
    Noop,
    Close,
    Upgrade,
    /// A client event carrying a `rid`.
    Request,
    Ack,
    Response,
    /// A server event without `rid`.
    Push,
    Other,
}

impl FrameKind {
    /// The kind an Engine.IO frame's leading digits say, either way (`2` ping, `3` pong,
    /// `40` connect, ...); a `42` event is `Other` here: only the layer that reads its
    /// payload knows whether it is a request, a response or a push.
    pub fn of_frame(frame: &str) -> Self {
        match frame.as_bytes() {
            [b'0', ..] => Self::Open,
            [b'1', ..] => Self::Close,
            [b'2', ..] => Self::Ping,
            [b'3', ..] => Self::Pong,
            [b'5', ..] => Self::Upgrade,
            [b'6', ..] => Self::Noop,
            [b'4', b'0', ..] => Self::Connect,
            [b'4', b'1', ..] => Self::Disconnect,
            _ => Self::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
            Self::Ping => "ping",
            Self::Pong => "pong",
            Self::Noop => "noop",
            Self::Close => "close",
            Self::Upgrade => "upgrade",
            Self::Request => "request",
            Self::Ack => "ack",
            Self::Response => "response",
            Self::Push => "push",
            Self::Other => "other",
        }
    }
}

/// A frame's label: kind, event name (for an ack: the acked request's event) and rid.
/// Names and rids are [`SmolStr`]s, inline up to 23 bytes (every integer rid, most event
/// names and all the frequent ones): tagging those frames allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTag {
    pub kind: FrameKind,
    pub event: Option<SmolStr>,
    pub rid: Option<SmolStr>,
}

impl FrameTag {
    pub fn of(kind: FrameKind) -> Self {
        Self {
            kind,
            event: None,
            rid: None,
        }
    }

    pub fn event(kind: FrameKind, event: &str, rid: Option<&str>) -> Self {
        Self {
            kind,
            event: Some(SmolStr::new(event)),
            rid: rid.map(SmolStr::new),
        }
    }
}

/// A JSON object: an event's payload.
pub type Object = serde_json::Map<String, Value>;

/// The fate of one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Pass,
    Drop,
    /// Deliver later (outbound frames delayed this way stay in order among themselves).
    Delay(Duration),
    /// Deliver `1 + n` times.
    Duplicate(u32),
    /// Deliver this text instead.
    Replace(Arc<str>),
    /// Close the session, before or after delivering the frame.
    Close {
        abrupt: bool,
        after: bool,
    },
    /// Send a Socket.IO disconnect (`41`) and close (a server kick).
    Kick,
    /// Hold the frame and deliver it after the next one (reordering).
    Hold,
    /// Inbound only: do not process the frame; send these frames back instead.
    Respond(Vec<(Arc<str>, FrameTag)>),
}

/// Receives every frame and every new session.
pub trait Interceptor: Send + Sync + 'static {
    /// A frame the server is about to send (shared: a push is one `Arc` for all its
    /// recipients, so keeping it costs no copy).
    /// `payload`: the event's payload object, when the sender encoded the frame from one
    /// ([`Socket::send_event`]).
    fn outbound(
        &self,
        socket: &Socket,
        frame: &Arc<str>,
        tag: &FrameTag,
        payload: Option<&Object>,
    ) -> Action;
    /// A frame the server received, before it is processed.
    fn inbound(&self, socket: &Socket, frame: &InboundFrame<'_>) -> Action;
    /// Whether to accept a new session (`upgrade`: a polling session's websocket).
    fn accept(&self, _transport: TransportKind, _upgrade: bool) -> bool {
        true
    }
    /// A session ended.
    fn closed(&self, _socket: &Socket) {}
}

/// An inbound Engine.IO frame, its Socket.IO packet decoded at most once: when the
/// interceptor looks into an event, the engine hands that same decoded event to the
/// handler instead of parsing the text again.
pub struct InboundFrame<'a> {
    text: &'a str,
    /// The Socket.IO packet of a `message` frame (`4...`), once someone asked for it.
    packet: OnceCell<Option<Result<SioPacket, SioError>>>,
}

impl<'a> InboundFrame<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            packet: OnceCell::new(),
        }
    }

    /// The frame as received.
    pub fn text(&self) -> &'a str {
        self.text
    }

    fn packet(&self) -> Option<&Result<SioPacket, SioError>> {
        self.packet.get_or_init(|| decode(self.text)).as_ref()
    }

    /// A root-namespace Socket.IO EVENT's name and first argument (`Null` when it has
    /// none); `None` for every other frame.
    pub fn event(&self) -> Option<(&str, &Value)> {
        const NONE: &Value = &Value::Null;
        match self.packet()? {
            Ok(SioPacket::Event { nsp, data, .. }) if nsp == "/" => {
                let items = data.as_array()?;
                Some((items.first()?.as_str()?, items.get(1).unwrap_or(NONE)))
            }
            _ => None,
        }
    }

    /// The decoded Socket.IO packet of a `message` frame (decoding it now if nobody did).
    pub(crate) fn into_packet(self) -> Option<Result<SioPacket, SioError>> {
        let text = self.text;
        self.packet.into_inner().unwrap_or_else(|| decode(text))
    }
}

/// The Socket.IO packet of an Engine.IO `message` frame; `None` for other frames.
fn decode(text: &str) -> Option<Result<SioPacket, SioError>> {
    text.strip_prefix('4').map(socketio::decode)
}
