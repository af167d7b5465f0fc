//! Engine.IO protocol 3 packets and the long-polling payload framing.
//!
//! Written by hand on purpose: faults (issue #4) must be able to reach single frames,
//! and no maintained crate exposes the EIO3 codec on its own. This module is pure:
//! strings in, strings out, no I/O.
//!
//! A packet is one ASCII digit (its type) followed by its data, e.g. `2` (ping),
//! `3probe`, `42["ack",{"rid":1}]`. A polling payload is a sequence of
//! `<length>:<packet>` records (protocol.md 1.6).

use std::fmt;

/// Engine.IO packet types (protocol revision 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Open,
    Close,
    Ping,
    Pong,
    Message,
    Upgrade,
    Noop,
}

impl PacketType {
    pub fn from_digit(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => Self::Open,
            b'1' => Self::Close,
            b'2' => Self::Ping,
            b'3' => Self::Pong,
            b'4' => Self::Message,
            b'5' => Self::Upgrade,
            b'6' => Self::Noop,
            _ => return None,
        })
    }

    pub fn digit(self) -> char {
        match self {
            Self::Open => '0',
            Self::Close => '1',
            Self::Ping => '2',
            Self::Pong => '3',
            Self::Message => '4',
            Self::Upgrade => '5',
            Self::Noop => '6',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Close => "close",
            Self::Ping => "ping",
            Self::Pong => "pong",
            Self::Message => "message",
            Self::Upgrade => "upgrade",
            Self::Noop => "noop",
        }
    }
}

/// A decoded Engine.IO packet borrowing its data from the frame text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub kind: PacketType,
    pub data: &'a str,
}

/// Why a frame or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty engine.io packet")]
    Empty,
    #[error("unknown engine.io packet type {0:?}")]
    UnknownType(char),
    #[error("bad polling payload at byte {at}: {why}")]
    BadPayload { at: usize, why: &'static str },
}

/// Decodes one text frame (a websocket message or one record of a polling payload).
pub fn decode_packet(frame: &str) -> Result<Packet<'_>, CodecError> {
    let first = *frame.as_bytes().first().ok_or(CodecError::Empty)?;
    let kind = PacketType::from_digit(first)
        .ok_or_else(|| CodecError::UnknownType(frame.chars().next().unwrap_or('?')))?;
    Ok(Packet {
        kind,
        data: &frame[1..],
    })
}

/// Encodes a packet as text.
pub fn encode_packet(kind: PacketType, data: &str) -> String {
    let mut s = String::with_capacity(data.len() + 1);
    s.push(kind.digit());
    s.push_str(data);
    s
}

/// The open packet's JSON (handshake data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake<'a> {
    pub sid: &'a str,
    pub upgrades: &'a [&'a str],
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
}

impl fmt::Display for Handshake<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = serde_json::json!({
            "sid": self.sid,
            "upgrades": self.upgrades,
            "pingInterval": self.ping_interval_ms,
            "pingTimeout": self.ping_timeout_ms,
        });
        write!(f, "0{v}")
    }
}

/// Length of a packet as the peers count it: UTF-16 code units (JavaScript's
/// `String.length`). Our own packets are ASCII-only (see [`super::json`]),
/// where this equals the UTF-8 byte length that 1.x-era clients count.
fn js_len(s: &str) -> usize {
    if s.is_ascii() {
        return s.len();
    }
    s.chars().map(char::len_utf16).sum()
}

/// Frames packets as a text polling payload: `<len>:<packet>` repeated.
pub fn encode_payload<S: AsRef<str>>(packets: &[S]) -> String {
    let mut out = String::new();
    for p in packets {
        let p = p.as_ref();
        out.push_str(&js_len(p).to_string());
        out.push(':');
        out.push_str(p);
    }
    out
}

/// Splits a text polling payload (a POST body, already decoded as UTF-8) into packets.
///
/// Two client generations send different things (protocol.md 1.6):
/// * engine.io-client 3.x (`socket.io-client@2`) counts lengths in UTF-16 code units
///   of the real text;
/// * engine.io-client 1.x (the official SDK's bundle) UTF-8-encodes each packet into a
///   "byte string" first, so lengths count bytes and every char is `<= U+00FF`.
///
/// We split by UTF-16 units (identical for both framings, since a byte string has one
/// unit per byte) and then undo the byte-string encoding of a packet when it is made of
/// chars `<= U+00FF`, has some `>= U+0080`, and those bytes are valid UTF-8. A real
/// Latin-1 text that also happens to be valid UTF-8 mojibake (e.g. `"Ã©"`) is the one
/// input this cannot tell apart; it is vanishingly rare in chat traffic.
pub fn decode_payload(body: &str) -> Result<Vec<String>, CodecError> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut at = 0usize;
    if body.is_empty() {
        return Err(CodecError::BadPayload {
            at: 0,
            why: "empty payload",
        });
    }
    while !rest.is_empty() {
        let colon = rest.find(':').ok_or(CodecError::BadPayload {
            at,
            why: "missing ':' after length",
        })?;
        let len_str = &rest[..colon];
        if len_str.is_empty() || len_str.len() > 10 || !len_str.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(CodecError::BadPayload {
                at,
                why: "length is not a decimal number",
            });
        }
        let len: usize = len_str.parse().map_err(|_| CodecError::BadPayload {
            at,
            why: "length out of range",
        })?;
        let data = &rest[colon + 1..];
        // Walk `len` UTF-16 units (one per byte when the text is ASCII: the common case).
        let mut units = 0usize;
        let mut end = 0usize;
        if data.as_bytes().get(..len).is_some_and(<[u8]>::is_ascii) {
            (units, end) = (len, len);
        }
        for (i, c) in data.char_indices() {
            if units >= len {
                break;
            }
            units += c.len_utf16();
            end = i + c.len_utf8();
        }
        if units != len {
            return Err(CodecError::BadPayload {
                at,
                why: "length runs past the end of the payload",
            });
        }
        let packet = &data[..end];
        out.push(undo_byte_string(packet));
        let consumed = colon + 1 + end;
        at += consumed;
        rest = &rest[consumed..];
    }
    Ok(out)
}

/// Reverses engine.io-client 1.x's per-packet UTF-8 "byte string" encoding when the
/// packet evidently is one (see [`decode_payload`]).
fn undo_byte_string(packet: &str) -> String {
    if packet.is_ascii() {
        return packet.to_owned();
    }
    let mut high = false;
    let mut bytes = Vec::with_capacity(packet.len());
    for c in packet.chars() {
        let u = c as u32;
        if u > 0xFF {
            return packet.to_owned();
        }
        high |= u >= 0x80;
        bytes.push(u as u8);
    }
    if !high {
        return packet.to_owned();
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => packet.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_type_round_trips() {
        for (digit, kind) in [
            ('0', PacketType::Open),
            ('1', PacketType::Close),
            ('2', PacketType::Ping),
            ('3', PacketType::Pong),
            ('4', PacketType::Message),
            ('5', PacketType::Upgrade),
            ('6', PacketType::Noop),
        ] {
            let text = format!("{digit}probe");
            let p = decode_packet(&text).expect("decodes");
            assert_eq!(p.kind, kind);
            assert_eq!(p.data, "probe");
            assert_eq!(encode_packet(kind, "probe"), text);
        }
    }

    #[test]
    fn bad_packets_are_errors() {
        assert_eq!(decode_packet(""), Err(CodecError::Empty));
        assert_eq!(decode_packet("7"), Err(CodecError::UnknownType('7')));
        assert_eq!(decode_packet("x"), Err(CodecError::UnknownType('x')));
        assert_eq!(decode_packet("你"), Err(CodecError::UnknownType('你')));
    }

    #[test]
    fn handshake_has_mandatory_upgrades() {
        let h = Handshake {
            sid: "abc",
            upgrades: &[],
            ping_interval_ms: 25000,
            ping_timeout_ms: 60000,
        };
        assert_eq!(
            h.to_string(),
            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":60000}"#
        );
    }

    #[test]
    fn payload_round_trip_ascii() {
        let packets = ["0{\"sid\":\"x\"}", "40", "3"];
        let body = encode_payload(&packets);
        assert_eq!(body, "12:0{\"sid\":\"x\"}2:401:3");
        assert_eq!(decode_payload(&body).unwrap(), packets);
    }

    #[test]
    fn payload_counts_utf16_units_for_modern_clients() {
        // engine.io-client 3.x: lengths in UTF-16 code units; emoji count 2.
        let pkt = "42[\"m\",\"你好😀\"]";
        assert_eq!(js_len(pkt), 14);
        let body = encode_payload(&[pkt, "2"]);
        assert!(body.starts_with("14:"));
        assert_eq!(
            decode_payload(&body).unwrap(),
            vec![pkt.to_owned(), "2".into()]
        );
    }

    #[test]
    fn payload_from_byte_string_clients_is_utf8_decoded() {
        // engine.io-client 1.x: each packet UTF-8-encoded into a byte string first.
        let real = "42[\"m\",\"é你😀\"]";
        let byte_string: String = real.bytes().map(char::from).collect();
        let body = format!("{}:{}1:2", byte_string.chars().count(), byte_string);
        assert_eq!(
            decode_payload(&body).unwrap(),
            vec![real.to_owned(), "2".to_owned()]
        );
    }

    #[test]
    fn latin1_text_that_is_not_utf8_stays_as_is() {
        let pkt = "42[\"m\",\"café\"]"; // é alone is not valid UTF-8 as a byte
        let body = encode_payload(&[pkt]);
        assert_eq!(decode_payload(&body).unwrap(), vec![pkt.to_owned()]);
    }

    #[test]
    fn broken_payloads_are_errors() {
        for bad in ["", "3", "x:2", "5:2", ":2", "2:40abc:"] {
            assert!(decode_payload(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn ascii_fast_path_matches_the_char_walk() {
        // ASCII packets next to non-ASCII ones, and a length whose ASCII prefix is
        // shorter than the claimed length.
        let packets = ["42[\"a\"]", "4\u{e9}t\u{e9}", "4x", "4\u{1f600}"];
        let body = encode_payload(&packets);
        assert_eq!(body, "7:42[\"a\"]4:4\u{e9}t\u{e9}2:4x3:4\u{1f600}");
        assert_eq!(decode_payload(&body).unwrap(), packets);
        assert!(decode_payload("5:4abc").is_err());
        assert!(decode_payload("3:4a\u{e9}").is_ok());
        assert!(decode_payload("4:4a\u{e9}").is_err());
        assert_eq!(js_len("4abc"), 4);
        assert_eq!(js_len("4\u{1f600}"), 3);
    }
}
