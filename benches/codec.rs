//! Codec micro-benchmarks: our wire encoders/decoders against plain `serde_json`.
//!
//! `cargo bench --bench codec` for the full run (about 20 s); without `--bench` (as
//! `cargo test --all-targets` runs it) every case runs once, briefly.

mod support;

use jmessage_mock::transport::{engineio, socketio};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Duration;

/// A typical `msg_sync` push payload: one text message, as the backend builds it.
fn msg_sync(text: &str) -> Value {
    json!({"messages": [{
        "msg_id": 1_000_123_456u64,
        "msg_type": 3,
        "from_uid": 10_042,
        "ctime_ms": 1_764_150_000_000u64,
        "msg_level": 0,
        "need_receipt": false,
        "content": {
            "version": 1, "target_type": "single", "from_platform": "web",
            "target_id": "bobby", "from_id": "alice", "from_appkey": "itestappkey0000000000001",
            "target_appkey": "itestappkey0000000000001", "target_name": "Bobby",
            "from_name": "Alice", "create_time": 1_764_150_000_000u64, "sui_mtime": 1_764_150_000u64,
            "msg_type": "text", "msg_body": {"text": text, "extras": {}},
        },
    }]})
}

/// The inbound request a client sends for that message.
fn request_frame(text: &str) -> String {
    let body = json!({
        "content": {
            "version": 1, "target_type": "single", "from_platform": "web",
            "target_id": "bobby", "from_id": "alice", "create_time": 1_764_150_000_000u64,
            "msg_type": "text", "msg_body": {"text": text},
        },
        "no_offline": false, "no_notification": false, "target_id": "bobby", "rid": 123_456_789,
    });
    // What a browser sends: real UTF-8, not escaped.
    format!(
        "42{}",
        serde_json::to_string(&json!(["s_across_single_text", body])).expect("json")
    )
}

const ASCII: &str = "Hello there, this is a fairly ordinary chat message of some length.";
const CJK: &str = "你好，这是一条普通的聊天消息，带一点表情😀🎉和标点！今天天气不错。";

/// Baseline encoder: the same frame with plain `serde_json` (UTF-8, no escaping).
fn plain_frame(event: &str, payload: &Value) -> String {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"42[");
    serde_json::to_writer(&mut buf, event).expect("json");
    buf.push(b',');
    serde_json::to_writer(&mut buf, payload).expect("json");
    buf.push(b']');
    String::from_utf8(buf).expect("utf8")
}

/// Our full inbound path up to (event, payload).
fn decode_ours(frame: &str) -> Option<(String, Value)> {
    let p = engineio::decode_packet(frame).ok()?;
    match socketio::decode(p.data).ok()? {
        socketio::SioPacket::Event { data, .. } => socketio::event_parts(data),
        _ => None,
    }
}

/// Baseline decoder: `serde_json::from_str` of the JSON part.
fn decode_plain(frame: &str) -> Option<Value> {
    serde_json::from_str(frame.get(2..)?).ok()
}

/// Baseline polling framing: byte lengths (what a UTF-8-only framing would do).
fn plain_payload(packets: &[String]) -> String {
    let mut out = String::new();
    for p in packets {
        out.push_str(&p.len().to_string());
        out.push(':');
        out.push_str(p);
    }
    out
}

fn plain_unpayload(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(colon) = rest.find(':') {
        let Ok(n) = rest[..colon].parse::<usize>() else {
            break;
        };
        let Some(p) = rest.get(colon + 1..colon + 1 + n) else {
            break;
        };
        out.push(p.to_owned());
        rest = &rest[colon + 1 + n..];
    }
    out
}

fn main() {
    let full = support::full_mode();
    let (rounds, budget) = if full {
        (5, Duration::from_millis(300))
    } else {
        (1, Duration::from_millis(5))
    };
    println!(
        "codec benchmarks ({} mode): ratio = ours / baseline",
        if full { "full" } else { "smoke" }
    );

    for (label, text) in [("ascii", ASCII), ("cjk+emoji", CJK)] {
        let payload = msg_sync(text);
        // Same value both ways.
        let ours = socketio::encode_event_frame("msg_sync", &payload);
        let plain = plain_frame("msg_sync", &payload);
        assert_eq!(decode_plain(&ours), decode_plain(&plain));
        println!(
            "  msg_sync frame ({label}): ours {} bytes, plain {} bytes",
            ours.len(),
            plain.len()
        );
        support::compare(
            &format!("encode msg_sync ({label}) vs serde_json"),
            rounds,
            budget,
            || {
                black_box(plain_frame("msg_sync", black_box(&payload)));
            },
            || {
                black_box(socketio::encode_event_frame(
                    "msg_sync",
                    black_box(&payload),
                ));
            },
        );

        let frame = request_frame(text);
        assert!(decode_ours(&frame).is_some());
        support::compare(
            &format!("decode 42[...] request ({label}) vs serde_json"),
            rounds,
            budget,
            || {
                black_box(decode_plain(black_box(&frame)));
            },
            || {
                black_box(decode_ours(black_box(&frame)));
            },
        );

        // Polling: ten pushes in one GET response, then the same split back.
        let packets: Vec<String> = (0..10).map(|_| ours.clone()).collect();
        let body = engineio::encode_payload(&packets);
        assert_eq!(
            body,
            plain_payload(&packets),
            "ASCII frames: both framings agree"
        );
        assert_eq!(engineio::decode_payload(&body).expect("payload"), packets);
        support::compare(
            &format!("polling encode 10 frames ({label}) vs bytes"),
            rounds,
            budget,
            || {
                black_box(plain_payload(black_box(&packets)));
            },
            || {
                black_box(engineio::encode_payload(black_box(&packets)));
            },
        );
        support::compare(
            &format!("polling decode 10 frames ({label}) vs bytes"),
            rounds,
            budget,
            || {
                black_box(plain_unpayload(black_box(&body)));
            },
            || {
                black_box(engineio::decode_payload(black_box(&body)).ok());
            },
        );
    }
}
