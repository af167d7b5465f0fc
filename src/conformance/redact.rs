//! Transcripts: what a client saw and what crossed the wire, with volatile values
//! (rids, ids, timestamps, signatures, ports) replaced by stable placeholders, so equal
//! behaviour gives equal text.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// Keys whose values are timestamps.
const TIME_KEYS: &[&str] = &[
    "ctime",
    "ctime_ms",
    "mtime",
    "utime",
    "create_time",
    "timestamp",
    "sui_mtime",
    "now_ms",
    "since_ms",
];
/// Keys whose values are secrets or per-run randomness.
const SECRET_KEYS: &[&str] = &[
    "signature",
    "random_str",
    "uptoken",
    "sid",
    "password",
    "old_pwd",
    "new_pwd",
];
/// Keys whose values are ids, numbered by first appearance (per kind).
const ID_KEYS: &[(&str, &str)] = &[
    ("rid", "rid"),
    ("msg_id", "msg"),
    ("msgid_list", "msg"),
    ("msg_ids", "msg"),
    ("event_id", "event"),
    ("from_eventid", "event"),
    ("uid", "uid"),
    ("from_uid", "uid"),
];

/// Numbers volatile values consistently across one transcript.
#[derive(Debug, Default)]
pub struct Redactor {
    seen: HashMap<(String, String), usize>,
    next: HashMap<String, usize>,
}

impl Redactor {
    fn placeholder(&mut self, kind: &str, value: &Value) -> Value {
        if value.is_null() || value == &Value::from(0) {
            return value.clone();
        }
        let key = (kind.to_owned(), value.to_string());
        let n = match self.seen.get(&key) {
            Some(n) => *n,
            None => {
                let n = self.next.entry(kind.to_owned()).or_insert(0);
                *n += 1;
                self.seen.insert(key, *n);
                *n
            }
        };
        Value::String(format!("<{kind}:{n}>"))
    }

    fn walk(&mut self, key: Option<&str>, v: &Value) -> Value {
        if let Some(k) = key {
            if TIME_KEYS.contains(&k) && !v.is_null() {
                return Value::String("<time>".into());
            }
            if SECRET_KEYS.contains(&k) && !v.is_null() {
                return Value::String("<redacted>".into());
            }
            if let Some((_, kind)) = ID_KEYS.iter().find(|(name, _)| *name == k) {
                return match v {
                    Value::Array(a) => {
                        Value::Array(a.iter().map(|x| self.placeholder(kind, x)).collect())
                    }
                    other => self.placeholder(kind, other),
                };
            }
        }
        match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    out.insert(k.clone(), self.walk(Some(k), x));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.walk(None, x)).collect()),
            Value::String(s) => Value::String(redact_ports(s)),
            other => other.clone(),
        }
    }
}

/// `127.0.0.1:54321` → `127.0.0.1:<port>` (ephemeral ports differ per run).
fn redact_ports(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..i + 10]);
        let after = &rest[i + 10..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<port>");
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// A value as compact JSON with volatile parts replaced.
pub fn redact(v: &Value, r: &mut Redactor) -> String {
    r.walk(None, v).to_string()
}

/// A wire frame (`42["event",{...}]` or a transport frame) with volatile parts replaced.
pub fn redact_frame(frame: &str, r: &mut Redactor) -> String {
    match frame
        .strip_prefix("42")
        .and_then(|rest| serde_json::from_str::<Value>(rest).ok())
    {
        Some(v) => format!("42{}", redact(&v, r)),
        None => redact_ports(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volatile_values_become_stable_placeholders() {
        let mut r = Redactor::default();
        let a = redact(
            &json!({"rid": 1234567, "msg_id": 99, "ctime_ms": 1_764_000_000_000_i64, "signature": "ABC", "code": 0, "url": "http://127.0.0.1:40123/media/x", "from_gid": 0}),
            &mut r,
        );
        assert_eq!(
            a,
            r#"{"rid":"<rid:1>","msg_id":"<msg:1>","ctime_ms":"<time>","signature":"<redacted>","code":0,"url":"http://127.0.0.1:<port>/media/x","from_gid":0}"#
        );
        // The same msg_id later gets the same placeholder; a new one the next number.
        let b = redact(
            &json!({"messages": [{"msg_id": 99}, {"msg_id": 100}], "msg_ids": [100]}),
            &mut r,
        );
        assert_eq!(
            b,
            r#"{"messages":[{"msg_id":"<msg:1>"},{"msg_id":"<msg:2>"}],"msg_ids":["<msg:2>"]}"#
        );
        assert_eq!(
            redact_frame(r#"42["ack",{"rid":1234567}]"#, &mut r),
            r#"42["ack",{"rid":"<rid:1>"}]"#
        );
        assert_eq!(redact_frame("3", &mut r), "3");
    }
}
