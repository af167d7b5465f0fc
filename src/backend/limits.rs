//! Size limits on what a client may store: free-form request fields (profile, login,
//! message extras) and the message history (retention and sync page sizes).
//!
//! The message limit (7 KB, 880206) comes from the guide; the others are the mock's
//! choices where the guide gives no number, written down in docs/limits-history.md.
//! Every limit here answers a hostile client that would otherwise grow the server's
//! memory with one request or a flood of them.

use crate::protocol::{Code, Failure};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The message size limit: `content` plus `custom_notification`, as JSON, in bytes.
pub const MAX_CONTENT_BYTES: usize = 7 * 1024;
/// Profile `extras` (register, update_user_inf), as JSON, in bytes.
pub const MAX_EXTRAS_BYTES: usize = 4 * 1024;
/// Profile `birthday`, in bytes.
pub const MAX_BIRTHDAY_BYTES: usize = 64;
/// Login `version` (the SDK sends `"2.4.0"` or `"2.5.0"`), in bytes.
pub const MAX_VERSION_BYTES: usize = 32;
/// A password field as sent (the SDK sends 32 hex digits), in bytes.
pub const MAX_PASSWORD_BYTES: usize = 128;
/// A friend invitation's or answer's `why`, in bytes.
pub const MAX_WHY_BYTES: usize = 250;

/// The length of a JSON value once encoded (`usize::MAX` if it cannot be encoded).
pub fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// The encoded length of a JSON object.
pub fn map_len(m: &Map<String, Value>) -> usize {
    serde_json::to_vec(m).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// 880003 for a string field over `max` bytes.
pub fn check_str(field: &str, s: &str, max: usize) -> Result<(), Failure> {
    if s.len() > max {
        return Err(Failure::new(
            Code::InvalidValue,
            format!("{field} is {} bytes; the limit is {max}", s.len()),
        ));
    }
    Ok(())
}

/// 880003 for an object field whose JSON is over `max` bytes.
pub fn check_obj(field: &str, m: &Map<String, Value>, max: usize) -> Result<(), Failure> {
    let n = map_len(m);
    if n > max {
        return Err(Failure::new(
            Code::InvalidValue,
            format!("{field} is {n} bytes of JSON; the limit is {max}"),
        ));
    }
    Ok(())
}

/// How much message history the backend keeps and how it is sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryLimits {
    /// Most messages kept per conversation (a pair of users, or a group); the oldest
    /// is dropped first.
    pub per_conversation: usize,
    /// Most messages kept in total (retracted ones included); the oldest is dropped first.
    pub total: usize,
    /// Most messages in one `sync_conversation` push.
    pub sync_page_messages: usize,
    /// Most bytes of stored message JSON in one `sync_conversation` push (one message
    /// may take a page past it: a page always holds at least one message).
    pub sync_page_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            per_conversation: 10_000,
            total: 200_000,
            sync_page_messages: 500,
            sync_page_bytes: 256 * 1024,
        }
    }
}

impl HistoryLimits {
    /// The limits with every zero raised to 1 (a zero would drop the message being sent
    /// or never fill a page).
    pub fn sane(self) -> Self {
        Self {
            per_conversation: self.per_conversation.max(1),
            total: self.total.max(1),
            sync_page_messages: self.sync_page_messages.max(1),
            sync_page_bytes: self.sync_page_bytes.max(1),
        }
    }
}
