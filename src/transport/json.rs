//! ASCII-only JSON encoding for everything the server writes on the wire.
//!
//! Every non-ASCII character is written as a `\uXXXX` escape (UTF-16 surrogate pairs
//! above the BMP). The JSON value is unchanged, but the frame becomes pure ASCII, so its
//! byte length, its UTF-16 length and its "byte string" length are all equal. That makes
//! one encoding correct for websocket frames and for both polling framings
//! (protocol.md 1.6), so a push is encoded once and shared by all its recipients
//! whatever their transport.

use serde_json::ser::{CharEscape, Formatter, Serializer};
use serde_json::Value;
use std::io;

struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        escape_non_ascii(writer, fragment)
    }

    fn write_char_escape<W>(&mut self, writer: &mut W, escape: CharEscape) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        serde_json::ser::CompactFormatter.write_char_escape(writer, escape)
    }
}

/// Appends `value` to `out` as compact, ASCII-only JSON.
pub fn write_ascii(out: &mut String, value: &Value) {
    let mut buf = std::mem::take(out).into_bytes();
    write_ascii_bytes(&mut buf, value);
    *out = into_string(buf);
}

/// Appends `value` to `out` as compact, ASCII-only JSON, with no copy in between.
pub fn write_ascii_bytes<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut ser = Serializer::with_formatter(out, AsciiFormatter);
    // Serializing JSON values into a Vec cannot fail.
    let _ = value.serialize(&mut ser);
}

/// Appends JSON text (compact, as serde_json writes it, any UTF-8) to `out` as
/// [`write_ascii_bytes`] would have written the value: outside strings JSON is ASCII,
/// and inside one an escape stands for the same character.
pub fn ascii_from_json(out: &mut Vec<u8>, json: &str) {
    // Writing into a Vec cannot fail.
    let _ = escape_non_ascii(out, json);
}

/// Writes `text` with every non-ASCII character as a `\uXXXX` escape (UTF-16 units).
fn escape_non_ascii<W: ?Sized + io::Write>(writer: &mut W, text: &str) -> io::Result<()> {
    if text.is_ascii() {
        return writer.write_all(text.as_bytes());
    }
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii() {
            continue;
        }
        writer.write_all(&text.as_bytes()[start..i])?;
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            write!(writer, "\\u{:04x}", u)?;
        }
        start = i + c.len_utf8();
    }
    writer.write_all(&text.as_bytes()[start..])
}

/// The text of a buffer this module wrote (ASCII: the conversion never copies).
pub fn into_string(buf: Vec<u8>) -> String {
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn to_ascii_string(value: &Value) -> String {
        let mut s = String::new();
        write_ascii(&mut s, value);
        s
    }

    #[test]
    fn escapes_non_ascii_and_round_trips() {
        let v = json!({"k": "a\"b\\c\n é 你 😀", "n": 1, "é": [true, null]});
        let s = to_ascii_string(&v);
        assert!(s.is_ascii(), "{s}");
        assert!(s.contains(r"\ud83d\ude00"));
        assert!(s.contains(r#"a\"b\\c\n"#));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn json_text_becomes_what_the_value_would_have() {
        let v =
            json!({"k": "a\"b\\c\n\u{1} é 你 😀 \u{2028}", "n": -1.5e300, "é": [true, null, ""]});
        let mut from_text = Vec::new();
        ascii_from_json(&mut from_text, &serde_json::to_string(&v).unwrap());
        let mut from_value = Vec::new();
        write_ascii_bytes(&mut from_value, &v);
        assert_eq!(into_string(from_text), into_string(from_value));
    }
}
