//! Socket.IO protocol revision 4 packets, carried inside Engine.IO `message` packets.
//!
//! Text form: `<type>[<nsp>,][<id>][<json>]`, e.g. `2["ack",{"rid":1}]`, `0`, `1/chat,`.
//! Binary events (types 5 and 6) are recognised but not supported: no peer of this server
//! sends binary data (protocol.md 1.5). Pure code, no I/O.

use serde::Serialize;
use serde_json::{Map, Value};

/// A decoded Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub enum SioPacket {
    Connect {
        nsp: String,
    },
    Disconnect {
        nsp: String,
    },
    Event {
        nsp: String,
        id: Option<u64>,
        data: Value,
    },
    Ack {
        nsp: String,
        id: Option<u64>,
        data: Value,
    },
    Error {
        nsp: String,
        data: Value,
    },
    BinaryEvent {
        nsp: String,
    },
    BinaryAck {
        nsp: String,
    },
}

/// Why a Socket.IO packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SioError {
    #[error("empty socket.io packet")]
    Empty,
    #[error("unknown socket.io packet type {0:?}")]
    UnknownType(char),
    #[error("socket.io packet id out of range")]
    BadId,
    #[error("socket.io packet data is not JSON: {0}")]
    BadJson(String),
    #[error("socket.io event data must be an array starting with the event name")]
    BadEvent,
}

/// Decodes the data of an Engine.IO `message` packet.
pub fn decode(text: &str) -> Result<SioPacket, SioError> {
    let mut chars = text.char_indices();
    let (_, t) = chars.next().ok_or(SioError::Empty)?;
    let mut rest = &text[t.len_utf8()..];
    // Binary packets carry an attachment count `<n>-` first.
    if matches!(t, '5' | '6') {
        if let Some(dash) = rest.find('-') {
            rest = &rest[dash + 1..];
        }
    }
    let mut nsp = String::from("/");
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = rest[..end].to_owned();
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        Some(rest[..digits].parse::<u64>().map_err(|_| SioError::BadId)?)
    } else {
        None
    };
    rest = &rest[digits..];
    let data = if rest.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(rest).map_err(|e| SioError::BadJson(e.to_string()))?
    };
    Ok(match t {
        '0' => SioPacket::Connect { nsp },
        '1' => SioPacket::Disconnect { nsp },
        '2' => {
            if !matches!(&data, Value::Array(a) if matches!(a.first(), Some(Value::String(_)))) {
                return Err(SioError::BadEvent);
            }
            SioPacket::Event { nsp, id, data }
        }
        '3' => SioPacket::Ack { nsp, id, data },
        '4' => SioPacket::Error { nsp, data },
        '5' => SioPacket::BinaryEvent { nsp },
        '6' => SioPacket::BinaryAck { nsp },
        c => return Err(SioError::UnknownType(c)),
    })
}

/// Splits an `Event` packet's data into its name and its first argument.
pub fn event_parts(data: Value) -> Option<(String, Value)> {
    let Value::Array(items) = data else {
        return None;
    };
    let mut it = items.into_iter();
    let Some(Value::String(name)) = it.next() else {
        return None;
    };
    Some((name, it.next().unwrap_or(Value::Null)))
}

/// Encodes `["<event>",<payload>]` as the full Engine.IO frame `42[...]`, with every
/// non-ASCII character escaped (see [`super::json`]).
pub fn encode_event_frame(event: &str, payload: &Value) -> String {
    encode_frame(event, payload)
}

/// [`encode_event_frame`] for a payload its sender had already encoded as JSON (compact,
/// as serde_json writes it): the same bytes, without serializing again.
pub fn event_frame_from_json(event: &str, payload_json: &str) -> String {
    let capacity = payload_json.len() + event.len() + 8;
    frame_of(event, capacity, |out| {
        super::json::ascii_from_json(out, payload_json)
    })
}

/// [`encode_event_frame`] for a payload object with one more field set (as `insert`
/// would: replaced where it is, or appended), without copying the object first.
pub fn encode_event_frame_with(
    event: &str,
    payload: &Map<String, Value>,
    key: &str,
    value: &Value,
) -> String {
    encode_frame(
        event,
        &WithField {
            payload,
            key,
            value,
        },
    )
}

/// [`encode_event_frame_with`] for an object its sender had already encoded
/// (`object_json`: compact ASCII JSON of an object without `key`, as
/// [`super::json::write_ascii_bytes`] writes it): `key` is appended, as `insert` would,
/// and nothing is serialized again but `value`.
pub fn event_frame_from_json_with(
    event: &str,
    object_json: &str,
    key: &str,
    value: &Value,
) -> String {
    let capacity = object_json.len() + event.len() + key.len() + 32;
    frame_of(event, capacity, |out| {
        match object_json.strip_suffix('}') {
            Some(open) => {
                out.extend_from_slice(open.as_bytes());
                if open.len() > 1 {
                    out.push(b',');
                }
            }
            // Not an object: never the case for a well-behaved sender; keep it whole.
            None => {
                out.extend_from_slice(object_json.as_bytes());
                return;
            }
        }
        super::json::write_ascii_bytes(out, key);
        out.push(b':');
        super::json::write_ascii_bytes(out, value);
        out.push(b'}');
    })
}

fn encode_frame<T: Serialize + ?Sized>(event: &str, payload: &T) -> String {
    frame_of(event, 64, |out| {
        super::json::write_ascii_bytes(out, payload)
    })
}

/// `42["<event>",<payload>]`, the payload written by `write_payload`.
fn frame_of(event: &str, capacity: usize, write_payload: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(b"42[");
    super::json::write_ascii_bytes(&mut out, event);
    out.push(b',');
    write_payload(&mut out);
    out.push(b']');
    super::json::into_string(out)
}

/// An object with one field set, serialized in the order `Map::insert` would leave it.
struct WithField<'a> {
    payload: &'a Map<String, Value>,
    key: &'a str,
    value: &'a Value,
}

impl Serialize for WithField<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let present = self.payload.contains_key(self.key);
        let len = self.payload.len() + usize::from(!present);
        let mut m = s.serialize_map(Some(len))?;
        for (k, v) in self.payload {
            let v = if k == self.key { self.value } else { v };
            m.serialize_entry(k, v)?;
        }
        if !present {
            m.serialize_entry(self.key, self.value)?;
        }
        m.end()
    }
}

/// The Engine.IO frame for a root-namespace CONNECT (`40`) sent by the server.
pub const CONNECT_FRAME: &str = "40";
/// The Engine.IO frame for a root-namespace DISCONNECT (`41`): a server-side kick.
pub const DISCONNECT_FRAME: &str = "41";

/// The frame refusing a namespace other than `/`.
pub fn namespace_error_frame(nsp: &str) -> String {
    let mut out = String::from("44");
    out.push_str(nsp);
    out.push(',');
    super::json::write_ascii(&mut out, &Value::String("Invalid namespace".into()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_appended_to_encoded_json_is_the_field_inserted_before_encoding() {
        let rids = [json!(7), json!("r-\u{e9}"), json!(u64::MAX)];
        let bodies = [
            json!({}),
            json!({"code": 0, "message": "success"}),
            json!({"text": "\u{4f60}\u{597d} \u{1f600}", "n": [1, {"a": null}]}),
        ];
        for body in &bodies {
            let m = body.as_object().expect("object");
            let mut text = Vec::new();
            super::super::json::write_ascii_bytes(&mut text, m);
            let text = String::from_utf8(text).expect("utf-8");
            for rid in &rids {
                assert_eq!(
                    event_frame_from_json_with("msg_\u{e9}", &text, "rid", rid),
                    encode_event_frame_with("msg_\u{e9}", m, "rid", rid),
                    "{body} {rid}"
                );
            }
        }
    }

    #[test]
    fn decodes_every_packet_type() {
        assert_eq!(decode("0").unwrap(), SioPacket::Connect { nsp: "/".into() });
        assert_eq!(
            decode("0/chat,").unwrap(),
            SioPacket::Connect {
                nsp: "/chat".into()
            }
        );
        assert_eq!(
            decode("1").unwrap(),
            SioPacket::Disconnect { nsp: "/".into() }
        );
        assert_eq!(
            decode(r#"2["c_init",{"rid":7}]"#).unwrap(),
            SioPacket::Event {
                nsp: "/".into(),
                id: None,
                data: json!(["c_init", {"rid": 7}])
            }
        );
        assert_eq!(
            decode(r#"2/x,12["e",1]"#).unwrap(),
            SioPacket::Event {
                nsp: "/x".into(),
                id: Some(12),
                data: json!(["e", 1])
            }
        );
        assert_eq!(
            decode("35[]").unwrap(),
            SioPacket::Ack {
                nsp: "/".into(),
                id: Some(5),
                data: json!([])
            }
        );
        assert_eq!(
            decode(r#"4"boom""#).unwrap(),
            SioPacket::Error {
                nsp: "/".into(),
                data: json!("boom")
            }
        );
        assert_eq!(
            decode(r#"51-["e",{"_placeholder":true,"num":0}]"#).unwrap(),
            SioPacket::BinaryEvent { nsp: "/".into() }
        );
        assert_eq!(
            decode("61-3[]").unwrap(),
            SioPacket::BinaryAck { nsp: "/".into() }
        );
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(decode(""), Err(SioError::Empty));
        assert_eq!(decode("9"), Err(SioError::UnknownType('9')));
        assert!(matches!(decode("2[\"e\""), Err(SioError::BadJson(_))));
        assert_eq!(decode("2{}"), Err(SioError::BadEvent));
        assert_eq!(decode("2[1,2]"), Err(SioError::BadEvent));
        assert_eq!(decode("299999999999999999999999[]"), Err(SioError::BadId));
    }

    #[test]
    fn event_parts_splits_name_and_payload() {
        assert_eq!(
            event_parts(json!(["login", {"rid": 1}])),
            Some(("login".into(), json!({"rid": 1})))
        );
        assert_eq!(event_parts(json!(["x"])), Some(("x".into(), Value::Null)));
        assert_eq!(event_parts(json!({})), None);
    }

    #[test]
    fn event_frames_are_ascii() {
        let f = encode_event_frame("msg_sync", &json!({"text": "你好😀"}));
        assert_eq!(f, r#"42["msg_sync",{"text":"\u4f60\u597d\ud83d\ude00"}]"#);
        assert!(f.is_ascii());
        let back = decode(&f[1..]).unwrap();
        let SioPacket::Event { data, .. } = back else {
            panic!("not an event")
        };
        assert_eq!(data, json!(["msg_sync", {"text": "你好😀"}]));
    }

    #[test]
    fn a_field_is_set_as_insert_would() {
        let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
        for (body, key, value) in [
            (json!({"code": 0, "é": "你"}), "rid", json!(7)),
            (json!({"rid": 1, "code": 0}), "rid", json!("x")),
            (json!({}), "rid", json!(null)),
        ] {
            let body = obj(body);
            let mut inserted = body.clone();
            inserted.insert(key.into(), value.clone());
            assert_eq!(
                encode_event_frame_with("e", &body, key, &value),
                encode_event_frame("e", &Value::Object(inserted)),
            );
        }
        let f = encode_event_frame_with("e", &obj(json!({"rid": 1, "a": 2})), "rid", &json!(3));
        assert_eq!(f, r#"42["e",{"rid":3,"a":2}]"#, "replaced where it was");
    }

    #[test]
    fn namespace_error() {
        assert_eq!(namespace_error_frame("/x"), r#"44/x,"Invalid namespace""#);
    }
}
