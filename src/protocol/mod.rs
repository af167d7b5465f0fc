//! The JMessage envelope on top of Socket.IO events (protocol.md 2): requests carry a
//! `rid`; the server answers `ack {rid}` first and then an event of the same name with
//! the same `rid`, `code` and `message`. Pushes never carry a `rid`.

pub(crate) mod args;
pub(crate) mod codes;
pub(crate) mod pushes;
pub(crate) mod requests;
pub mod sign;

pub use args::Args;
pub use codes::{Code, Failure};
pub use pushes::PushEvent;
pub use requests::{Event, Needs};

use crate::transport::{FrameKind, FrameTag};
use serde_json::{Map, Value};
use smol_str::SmolStr;
use std::sync::Arc;

/// A request id as the client sent it. Echoed back verbatim; compared by its canonical
/// text so that `7` and `"7"` are the same request (the SDK matches both).
#[derive(Debug, Clone, PartialEq)]
pub struct Rid {
    raw: Value,
    /// Inline up to 23 bytes (every integer rid): reading a rid allocates nothing.
    key: SmolStr,
}

impl Rid {
    /// Reads `rid` from a payload: an integer or a non-empty string of at most 64 chars.
    pub fn from_payload(payload: &Map<String, Value>) -> Option<Rid> {
        let raw = payload.get("rid")?;
        let key = match raw {
            // itoa: the formatter machinery costs more than the rest of reading a rid.
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => SmolStr::new(itoa::Buffer::new().format(u)),
                (None, Some(i)) => SmolStr::new(itoa::Buffer::new().format(i)),
                _ => return None,
            },
            Value::String(s) if !s.is_empty() && s.len() <= 64 => SmolStr::new(s.trim()),
            _ => return None,
        };
        Some(Rid {
            raw: raw.clone(),
            key,
        })
    }

    /// The value to echo.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The canonical text, used for dedupe keys.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// [`Rid::key`] as a frame tag holds it (a copy, inline for integer rids).
    pub fn tag_key(&self) -> SmolStr {
        self.key.clone()
    }
}

/// A rid as a small key (dedupe, oracle): two rids are one when their canonical text
/// ([`Rid::key`]) is. The SDK's rids are integers, kept inline; "007" and "-7" are text,
/// distinct from 7.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RidKey {
    /// A canonical decimal (no sign, no leading zero) that fits in a u64.
    Num(u64),
    /// Any other rid text.
    Text(Arc<str>),
}

impl RidKey {
    /// The key of a canonical rid text ([`Rid::key`], a frame tag's rid).
    pub fn of_key(key: &str) -> Self {
        let canonical = !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_digit())
            && (key == "0" || !key.starts_with('0'));
        match key.parse() {
            Ok(n) if canonical => Self::Num(n),
            _ => Self::Text(key.into()),
        }
    }
}

impl std::fmt::Display for RidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RidKey::Num(n) => write!(f, "{n}"),
            RidKey::Text(t) => f.write_str(t),
        }
    }
}

/// The `ack` frame for a request: `42["ack",{"rid":<rid>}]`.
pub fn ack_frame(rid: &Rid) -> String {
    crate::transport::socketio::event_frame_from_json_with("ack", "{}", "rid", rid.raw())
}

/// A success body `{code:0, message:"success", ...fields}` (rid is added when sent).
pub fn success(fields: Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::with_capacity(fields.len() + 2);
    m.insert("code".into(), Value::from(0));
    m.insert("message".into(), Value::String("success".to_owned()));
    m.extend(fields);
    m
}

/// The response frame: `body` plus `rid`, under the request's event name.
pub fn response_frame(event: &str, rid: &Rid, body: &Map<String, Value>) -> String {
    crate::transport::socketio::encode_event_frame_with(event, body, "rid", rid.raw())
}

/// The frames that answer a request in the service's stead (an injected error, the
/// oracle's refusal): its ack and, when `body` is given, its response, each tagged.
pub fn answer_frames(
    event: &str,
    rid: &Rid,
    body: Option<&Map<String, Value>>,
) -> Vec<(Arc<str>, FrameTag)> {
    let tag = |kind| FrameTag {
        kind,
        event: Some(event.into()),
        rid: Some(rid.tag_key()),
    };
    let mut frames = vec![(ack_frame(rid).into(), tag(FrameKind::Ack))];
    if let Some(body) = body {
        let frame = response_frame(event, rid, body);
        frames.push((frame.into(), tag(FrameKind::Response)));
    }
    frames
}

/// A response body as the wire carries it (compact, ASCII-only JSON, without `rid`):
/// encoded once, kept by the dedupe cache and made into the frame by
/// [`response_frame_from_json`].
pub fn body_json(body: &Map<String, Value>) -> Arc<str> {
    let mut out = Vec::with_capacity(64);
    crate::transport::json::write_ascii_bytes(&mut out, body);
    crate::transport::json::into_string(out).into()
}

/// [`response_frame`] from the body's [`body_json`]: the same bytes, when the body has
/// no `rid` of its own (which [`response_frame`] would replace in place).
pub fn response_frame_from_json(event: &str, rid: &Rid, body_json: &str) -> String {
    crate::transport::socketio::event_frame_from_json_with(event, body_json, "rid", rid.raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn rid_accepts_numbers_and_strings() {
        let r = Rid::from_payload(&map(json!({"rid": 2147483647}))).unwrap();
        assert_eq!(r.key(), "2147483647");
        let s = Rid::from_payload(&map(json!({"rid": "2147483647"}))).unwrap();
        assert_eq!(s.key(), r.key());
        assert_eq!(s.raw(), &json!("2147483647"));
        for (n, key) in [(json!(-5), "-5"), (json!(u64::MAX), "18446744073709551615")] {
            let r = Rid::from_payload(&map(json!({ "rid": n }))).unwrap();
            assert_eq!(r.key(), key);
            assert_eq!(r.tag_key(), key);
        }
        for bad in [
            json!({}),
            json!({"rid": null}),
            json!({"rid": 1.5}),
            json!({"rid": ""}),
            json!({"rid": [1]}),
        ] {
            assert!(Rid::from_payload(&map(bad.clone())).is_none(), "{bad}");
        }
    }

    #[test]
    fn frames() {
        let rid = Rid::from_payload(&map(json!({"rid": 42}))).unwrap();
        assert_eq!(ack_frame(&rid), r#"42["ack",{"rid":42}]"#);
        let body = success(map(json!({"msg_id": 9})));
        assert_eq!(
            response_frame("login", &rid, &body),
            r#"42["login",{"code":0,"message":"success","msg_id":9,"rid":42}]"#
        );
        assert_eq!(
            response_frame_from_json("login", &rid, &body_json(&body)),
            response_frame("login", &rid, &body)
        );
        let text = Rid::from_payload(&map(json!({"rid": "r\u{e9}7"}))).unwrap();
        assert_eq!(ack_frame(&text), r#"42["ack",{"rid":"r\u00e97"}]"#);
    }
}
