//! `proxy --record FILE`: what went through the proxy, written as a scenario that
//! `check` accepts and `run` replays against the mock (docs/proxy.md). The writer is
//! shared with `serve --record` ([`crate::scenario::record`]); this adapter feeds it the
//! proxy's live frames. Fixtures are learned from the traffic (the upstream's state is
//! unknown): the apps seen in `init` and the users who logged in.

use crate::scenario::record::Recording;
pub use crate::scenario::record::{MAX_RECORDED_STEPS, PLACEHOLDER_SECRET};
use crate::transport::{CloseReason, FrameKind, FrameTag, Socket};
use serde_json::Value;
use std::path::Path;

/// Collects one proxy's traffic.
pub struct Recorder {
    rec: Recording,
}

impl Recorder {
    pub fn new(upstream: &str) -> Self {
        Self {
            rec: Recording::new(&format!("`jmessage-mock proxy` in front of {upstream}")),
        }
    }

    pub fn connect(&self, socket: &Socket) {
        self.rec.connect(socket.id, socket.transport().name());
    }

    /// A request the client sent (retries with a known rid are not recorded again).
    pub fn request(&self, socket: &Socket, event: &str, payload: &Value) {
        self.rec.request(socket.id, event, payload);
    }

    /// A frame the upstream sent to this client.
    pub fn answer(&self, socket: &Socket, tag: &FrameTag, payload: &Value) {
        match tag.kind {
            FrameKind::Push => {
                if let (Some(event), Some(user)) = (&tag.event, socket.label()) {
                    self.rec.push(event, &user);
                }
            }
            FrameKind::Response => {
                if let Some(rid) = &tag.rid {
                    self.rec.response(socket.id, rid, payload);
                }
            }
            _ => {}
        }
    }

    pub fn closed(&self, socket: &Socket, reason: &CloseReason) {
        if *reason == CloseReason::ClientDisconnect {
            self.rec.disconnect(socket.id);
        }
    }

    /// The recording as scenario YAML.
    pub fn render(&self) -> String {
        self.rec.render(None)
    }

    /// Writes the recording to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        self.rec.write(path, None)
    }
}
