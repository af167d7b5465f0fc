//! Secrets never stored: the journal keeps frames with passwords (`password`, `old_pwd`,
//! `new_pwd`), upload tokens (`uptoken`) and the `c_init` auth `signature` replaced by
//! `"<redacted>"`, so the admin API, a console and logs never show them; the admin
//! API's state goes through [`redact_value`] too.
//!
//! Frames are rewritten in place, byte for byte except the secret values, so everything
//! else (key order, spacing, numbers) stays as it crossed the wire. The placeholder is
//! the one conformance transcripts use (`src/conformance/redact.rs`), so transcripts built
//! from the journal do not change. `null` stays `null`, as there.

use memchr::memmem::Finder;
use serde_json::Value;
use std::sync::LazyLock;

/// Keys whose values are secret in every frame.
pub const SECRET_KEYS: &[&str] = &["password", "old_pwd", "new_pwd", "uptoken"];
/// `signature` is the auth signature in `c_init`, and a harmless profile field elsewhere.
const INIT_SECRET_KEYS: &[&str] = &["password", "old_pwd", "new_pwd", "uptoken", "signature"];
/// Every secret key contains one of these (`old_pwd` and `new_pwd` share `_pwd`).
/// Every frame is journaled, so the common answer, "none here", is made fast: searchers
/// built once (building one per call cost as much as the search), three scans not four.
static HINTS: LazyLock<[Finder<'static>; 3]> =
    LazyLock::new(|| ["password", "_pwd", "uptoken"].map(Finder::new));
/// The `c_init` secret.
static SIGNATURE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("signature"));

/// False when `frame` cannot hold a secret key (true does not say it does).
fn may_hold_secret(frame: &str, init: bool) -> bool {
    let b = frame.as_bytes();
    HINTS.iter().any(|f| f.find(b).is_some()) || (init && SIGNATURE.find(b).is_some())
}

/// What a secret becomes.
pub const PLACEHOLDER: &str = "<redacted>";

/// The frame with secret values replaced, or `None` when it holds none. A frame that
/// cannot be scanned to its end after naming a secret key is cut there.
pub fn frame(frame: &str, event: Option<&str>) -> Option<String> {
    let init = event == Some("c_init");
    let keys = if init { INIT_SECRET_KEYS } else { SECRET_KEYS };
    if !may_hold_secret(frame, init) {
        return None;
    }
    let b = frame.as_bytes();
    let mut out = String::with_capacity(frame.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let Some(end) = string_end(b, i) else {
            return cut(frame, copied, i, out, keys);
        };
        let after = skip_ws(b, end);
        let is_secret = b.get(after) == Some(&b':') && keys.contains(&&frame[i + 1..end - 1]);
        if !is_secret {
            i = end;
            continue;
        }
        let start = skip_ws(b, after + 1);
        let Some(vend) = value_end(b, start) else {
            // The secret value itself is cut short: keep nothing of it.
            out.push_str(&frame[copied..start]);
            out.push_str(PLACEHOLDER);
            return Some(out);
        };
        if &frame[start..vend] != "null" {
            out.push_str(&frame[copied..start]);
            out.push('"');
            out.push_str(PLACEHOLDER);
            out.push('"');
            copied = vend;
        }
        i = vend;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&frame[copied..]);
    Some(out)
}

/// A frame that stops parsing at `at`: kept up to there when the rest names no secret.
fn cut(frame: &str, copied: usize, at: usize, mut out: String, keys: &[&str]) -> Option<String> {
    let rest = &frame[at..];
    if !keys.iter().any(|k| rest.contains(k)) {
        if copied == 0 {
            return None;
        }
        out.push_str(&frame[copied..]);
        return Some(out);
    }
    out.push_str(&frame[copied..at]);
    out.push_str(PLACEHOLDER);
    Some(out)
}

/// Index just past the string starting with the quote at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Index just past the JSON value starting at `start`.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    match b.get(start)? {
        b'"' => string_end(b, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = start;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace()
            {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

/// Replaces the non-null values of secret keys anywhere in `v` (the admin API's state).
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && !x.is_null() {
                    *x = Value::String(PLACEHOLDER.into());
                } else {
                    redact_value(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_quick_check_finds_every_secret_key() {
        for k in SECRET_KEYS {
            assert!(may_hold_secret(&format!(r#"{{"{k}":1}}"#), false), "{k}");
        }
        for k in INIT_SECRET_KEYS {
            assert!(may_hold_secret(&format!(r#"{{"{k}":1}}"#), true), "{k}");
        }
        assert!(!may_hold_secret(r#"42["c_init",{"signature":"x"}]"#, false));
        assert!(!may_hold_secret(r#"42["msg_sync",{"messages":[]}]"#, true));
    }

    #[test]
    fn secrets_are_replaced_and_the_rest_kept_byte_for_byte() {
        let login = r#"42["login",{"rid":7,"data":{"username":"alice","password":"e10adc3949ba59abbe56e057f20f883e","is_md5":true}}]"#;
        assert_eq!(
            frame(login, Some("login")).as_deref(),
            Some(
                r#"42["login",{"rid":7,"data":{"username":"alice","password":"<redacted>","is_md5":true}}]"#
            )
        );
        let pwd = r#"42["update_user_pwd",{"data":{ "old_pwd" : "a\"b", "new_pwd":12,"x":null}}]"#;
        assert_eq!(
            frame(pwd, None).as_deref(),
            Some(
                r#"42["update_user_pwd",{"data":{ "old_pwd" : "<redacted>", "new_pwd":"<redacted>","x":null}}]"#
            )
        );
        let init = r#"42["c_init",{"data":{"appkey":"k","signature":"ABC","random_str":"r"}}]"#;
        assert_eq!(
            frame(init, Some("c_init")).as_deref(),
            Some(
                r#"42["c_init",{"data":{"appkey":"k","signature":"<redacted>","random_str":"r"}}]"#
            )
        );
        // A profile signature is not a secret; a password as text is not a key.
        let profile = r#"42["update_user_inf",{"data":{"signature":"away","note":"password"}}]"#;
        assert_eq!(frame(profile, Some("update_user_inf")), None);
        let nested = r#"42["x",{"password":{"a":["}",1]},"password":null,"uptoken":"t"}]"#;
        assert_eq!(
            frame(nested, None).as_deref(),
            Some(r#"42["x",{"password":"<redacted>","password":null,"uptoken":"<redacted>"}]"#)
        );
    }

    #[test]
    fn a_broken_frame_is_cut_before_its_secret() {
        let broken = r#"42["login",{"username":"alice","password":"abc"#;
        let out = frame(broken, Some("login")).expect("cut");
        assert!(!out.contains("abc"), "{out}");
        assert!(
            out.starts_with(r#"42["login",{"username":"alice","password":"#),
            "{out}"
        );
        assert_eq!(frame(r#"42["x",{"a":"unterminated"#, None), None);
    }

    #[test]
    fn state_values_are_redacted_at_any_depth() {
        let mut v = json!({"users": [{"username": "a", "password": "h", "extras": {"uptoken": "t"}}], "signature": "s"});
        redact_value(&mut v);
        assert_eq!(
            v,
            json!({"users": [{"username": "a", "password": "<redacted>", "extras": {"uptoken": "<redacted>"}}], "signature": "s"})
        );
    }
}
