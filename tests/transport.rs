//! Engine.IO / Socket.IO behaviour on the wire, with raw websockets and raw HTTP.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use jmessage_mock::transport::TransportConfig;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(addr: &str, query: &str) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=3&transport=websocket{query}");
    tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects")
        .0
}

async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// A raw HTTP/1.1 request; returns (status, headers lower-cased, body).
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), s.read_to_end(&mut buf))
        .await
        .expect("http timed out")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn websocket_handshake_sends_open_then_40_and_answers_pings() {
    bounded(async {
        let s = start().await;
        let mut c = ws(&s.addr.to_string(), "").await;
        let open = next_text(&mut c).await.expect("open");
        assert!(open.starts_with('0'), "{open}");
        let v: Value = serde_json::from_str(&open[1..]).expect("json");
        assert_eq!(v["upgrades"], json!([]));
        assert_eq!(v["pingInterval"], json!(25000));
        assert_eq!(v["pingTimeout"], json!(60000));
        assert!(v["sid"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(next_text(&mut c).await.as_deref(), Some("40"));
        c.send(Message::Text("2".into())).await.expect("send");
        assert_eq!(next_text(&mut c).await.as_deref(), Some("3"));
        c.send(Message::Text("2probe".into())).await.expect("send");
        assert_eq!(next_text(&mut c).await.as_deref(), Some("3probe"));
        // A request without init: ack first, then an error response with the same rid.
        c.send(Message::Text(r#"42["get_conversations",{"rid":5}]"#.into()))
            .await
            .expect("send");
        assert_eq!(
            next_text(&mut c).await.as_deref(),
            Some(r#"42["ack",{"rid":5}]"#)
        );
        let resp = next_text(&mut c).await.expect("response");
        assert!(
            resp.starts_with(r#"42["get_conversations",{"code":882004"#),
            "{resp}"
        );
        assert!(resp.ends_with(r#""rid":5}]"#), "{resp}");
        s.shutdown().await;
    })
    .await
}

/// Sends `get_conversations` with `rid` (and `pad` bytes of padding) and checks its ack
/// and response come back in order.
async fn round_trip(c: &mut Ws, rid: u64, pad: usize) {
    let frame = format!(
        r#"42["get_conversations",{{"pad":"{}","rid":{rid}}}]"#,
        "p".repeat(pad)
    );
    c.send(Message::Text(frame.into())).await.expect("send");
    let ack = format!(r#"42["ack",{{"rid":{rid}}}]"#);
    assert_eq!(next_text(c).await, Some(ack));
    let resp = next_text(c).await.expect("response");
    assert!(resp.ends_with(&format!(r#""rid":{rid}}}]"#)), "{resp}");
}

/// The server reads each websocket through a small buffer and keeps an idle session's
/// outbound queue empty (docs/limits.md): messages far larger than the buffer still
/// arrive whole, and a burst of queued frames is delivered in order and the session
/// keeps working after the queue gave its memory back.
#[tokio::test]
async fn large_messages_and_bursts_pass_the_small_buffers() {
    bounded(async {
        let s = start().await;
        let mut c = ws(&s.addr.to_string(), "").await;
        next_text(&mut c).await.expect("open");
        assert_eq!(next_text(&mut c).await.as_deref(), Some("40"));
        round_trip(&mut c, 1, 20).await;
        round_trip(&mut c, 2, 200_000).await;
        // A burst: 100 requests in one write, 200 frames queued back.
        for rid in 100..200u64 {
            let f = format!(r#"42["get_conversations",{{"rid":{rid}}}]"#);
            c.feed(Message::Text(f.into())).await.expect("feed");
        }
        c.flush().await.expect("flush");
        for rid in 100..200u64 {
            let ack = format!(r#"42["ack",{{"rid":{rid}}}]"#);
            assert_eq!(next_text(&mut c).await, Some(ack));
            let resp = next_text(&mut c).await.expect("response");
            assert!(resp.ends_with(&format!(r#""rid":{rid}}}]"#)), "{resp}");
        }
        // Small, then large again after the burst and after the large one.
        round_trip(&mut c, 3, 0).await;
        round_trip(&mut c, 4, 500_000).await;
        c.send(Message::Text("2".into())).await.expect("send");
        assert_eq!(next_text(&mut c).await.as_deref(), Some("3"));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn malformed_frames_never_kill_the_server_or_the_session() {
    bounded(async {
        let s = start().await;
        let mut c = ws(&s.addr.to_string(), "").await;
        next_text(&mut c).await.expect("open");
        next_text(&mut c).await.expect("40");
        for bad in [r#"42["c_init",{"rid":"#, r#"42{"a":1}"#, "42[]", r#"42["c_init",null]"#, r#"42["c_init","str"]"#, "45", "4", r#"43[1]"#, r#"40/other,"#] {
            c.send(Message::Text(bad.into())).await.expect("send");
        }
        // The namespace refusal is the only answer to those.
        assert_eq!(next_text(&mut c).await.as_deref(), Some(r#"44/other,"Invalid namespace""#));
        // A payload without rid gets an error event; the session is still alive.
        c.send(Message::Text(r#"42["c_init",{"appkey":"x"}]"#.into())).await.expect("send");
        let err = next_text(&mut c).await.expect("error");
        assert!(err.starts_with(r#"42["c_init",{"code":880002"#), "{err}");
        c.send(Message::Text(r#"42["c_init",{"rid":9,"appkey":"nope","random_str":"r","timestamp":"1","signature":"s"}]"#.into())).await.expect("send");
        assert_eq!(next_text(&mut c).await.as_deref(), Some(r#"42["ack",{"rid":9}]"#));
        let r = next_text(&mut c).await.expect("response");
        assert!(r.contains("880101"), "{r}");
        // An engine.io frame of unknown type closes that session only.
        c.send(Message::Text("9".into())).await.expect("send");
        assert_eq!(next_text(&mut c).await, None);
        let mut c2 = ws(&s.addr.to_string(), "").await;
        assert!(next_text(&mut c2).await.is_some_and(|o| o.starts_with('0')));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn client_disconnect_ends_the_session() {
    bounded(async {
        let s = start().await;
        let mut c = ws(&s.addr.to_string(), "").await;
        next_text(&mut c).await.expect("open");
        next_text(&mut c).await.expect("40");
        assert_eq!(s.engine.session_count(), 1);
        c.send(Message::Text("41".into())).await.expect("send");
        assert_eq!(next_text(&mut c).await, None, "server closes after 41");
        assert_eq!(s.engine.session_count(), 0);
        s.shutdown().await;
    })
    .await
}

/// A transport whose ping interval and ping timeout are both `ms` milliseconds.
fn heartbeat(ms: u64) -> TransportConfig {
    TransportConfig {
        ping_interval: Duration::from_millis(ms),
        ping_timeout: Duration::from_millis(ms),
        ..TransportConfig::default()
    }
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_ping_interval_plus_timeout() {
    bounded(async {
        let s = start_with(heartbeat(150)).await;
        let mut c = ws(&s.addr.to_string(), "").await;
        let open = next_text(&mut c).await.expect("open");
        assert!(open.contains(r#""pingInterval":150"#));
        next_text(&mut c).await.expect("40");
        let t0 = std::time::Instant::now();
        assert_eq!(next_text(&mut c).await, None);
        assert!(
            t0.elapsed() >= Duration::from_millis(250),
            "closed too early: {:?}",
            t0.elapsed()
        );
        assert_eq!(s.engine.session_count(), 0);
        s.shutdown().await;
    })
    .await
}

/// A websocket session's heartbeat is watched by its reader (no task of its own): pings
/// keep pushing the deadline back, silence ends the session. The grace (1 s) is far
/// longer than the gap between pings (50 ms), and the pings go on for well over it.
#[tokio::test]
async fn pings_keep_a_websocket_session_and_silence_after_them_ends_it() {
    bounded(async {
        let s = start_with(heartbeat(500)).await;
        let mut c = ws(&s.addr.to_string(), "").await;
        next_text(&mut c).await.expect("open");
        next_text(&mut c).await.expect("40");
        let t0 = std::time::Instant::now();
        let mut pings = 0;
        while t0.elapsed() < Duration::from_millis(2500) || pings < 20 {
            c.send(Message::Text("2".into())).await.expect("ping");
            assert_eq!(
                next_text(&mut c).await.as_deref(),
                Some("3"),
                "pong {pings}"
            );
            pings += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(s.engine.session_count(), 1, "kept while it pings");
        // Now silent: the server closes it (a ping timeout).
        assert_eq!(next_text(&mut c).await, None);
        assert_eq!(s.engine.session_count(), 0);
        s.shutdown().await;
    })
    .await
}

/// A polling session keeps its heartbeat task: one that never polls again after its
/// handshake is dropped.
#[tokio::test]
async fn a_polling_session_that_goes_quiet_is_dropped() {
    bounded(async {
        let s = start_with(heartbeat(150)).await;
        let addr = s.addr.to_string();
        let path = "/socket.io/?EIO=3&transport=polling&t=a";
        let (st, _, body) = http(&addr, "GET", path, &[], "").await;
        assert_eq!(st, 200);
        let packets = jmessage_mock::transport::engineio::decode_payload(&body).expect("payload");
        let open: Value = serde_json::from_str(&packets[0][1..]).expect("open json");
        let sid = open["sid"].as_str().expect("sid").to_owned();
        assert_eq!(s.engine.session_count(), 1);
        let gone = tokio::time::timeout(WAIT, async {
            while s.engine.session_count() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "quiet polling session kept");
        let path = format!("/socket.io/?EIO=3&transport=polling&sid={sid}");
        let (st, _, body) = http(&addr, "GET", &path, &[], "").await;
        assert_eq!(st, 400, "{body}");
        assert!(body.contains("Session ID unknown"), "{body}");
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn oversized_websocket_message_closes_the_session() {
    bounded(async {
        let s = start_with(TransportConfig {
            max_payload: 1000,
            ..TransportConfig::default()
        })
        .await;
        let mut c = ws(&s.addr.to_string(), "").await;
        next_text(&mut c).await.expect("open");
        next_text(&mut c).await.expect("40");
        let big = format!(r#"42["c_init",{{"rid":1,"x":"{}"}}]"#, "a".repeat(2000));
        let _ = c.send(Message::Text(big.into())).await;
        assert_eq!(next_text(&mut c).await, None);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn polling_handshake_cors_errors_and_payload_limit() {
    bounded(async {
        let s = start_with(TransportConfig {
            max_payload: 2000,
            poll_hold: Duration::from_millis(300),
            ..TransportConfig::default()
        })
        .await;
        let addr = s.addr.to_string();
        let origin = [("Origin", "http://localhost:3000")];
        let (st, h, body) = http(
            &addr,
            "GET",
            "/socket.io/?EIO=3&transport=polling&t=a",
            &origin,
            "",
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        assert_eq!(header(&h, "access-control-allow-credentials"), Some("true"));
        assert!(header(&h, "content-type").is_some_and(|c| c.starts_with("text/plain")));
        let packets = jmessage_mock::transport::engineio::decode_payload(&body).expect("payload");
        assert_eq!(packets.len(), 2, "{body}");
        assert_eq!(packets[1], "40");
        let open: Value = serde_json::from_str(&packets[0][1..]).expect("open json");
        assert_eq!(open["upgrades"], json!(["websocket"]));
        let sid = open["sid"].as_str().expect("sid").to_owned();
        let path = format!("/socket.io/?EIO=3&transport=polling&sid={sid}");
        // POST a ping and a request in one payload; GET returns pong, ack and response.
        let post = jmessage_mock::transport::engineio::encode_payload(&[
            "2",
            r#"42["sync_check",{"rid":3}]"#,
        ]);
        let (st, h, body) = http(&addr, "POST", &path, &origin, &post).await;
        assert_eq!((st, body.as_str()), (200, "ok"));
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("http://localhost:3000")
        );
        let (_, _, body) = http(&addr, "GET", &path, &[], "").await;
        let got = jmessage_mock::transport::engineio::decode_payload(&body).expect("payload");
        assert_eq!(got[0], "3");
        assert_eq!(got[1], r#"42["ack",{"rid":3}]"#);
        assert!(got[2].starts_with(r#"42["sync_check",{"code":882004"#));
        // Nothing queued: the GET is held, then answered with a noop.
        let (_, _, body) = http(&addr, "GET", &path, &[], "").await;
        assert_eq!(body, "1:6");
        // Preflight.
        let (st, h, _) = http(
            &addr,
            "OPTIONS",
            &path,
            &[
                ("Origin", "http://x"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            "",
        )
        .await;
        assert_eq!(st, 204);
        assert_eq!(
            header(&h, "access-control-allow-headers"),
            Some("content-type")
        );
        // Errors in engine.io's format.
        for (p, code) in [
            ("/socket.io/?EIO=3&transport=polling&sid=nope", 1),
            ("/socket.io/?EIO=4&transport=polling", 5),
            ("/socket.io/?EIO=3&transport=carrier-pigeon", 0),
        ] {
            let (st, _, body) = http(&addr, "GET", p, &[], "").await;
            assert_eq!(st, 400, "{p}");
            let v: Value = serde_json::from_str(&body).expect("json error");
            assert_eq!(v["code"], json!(code), "{p}: {body}");
        }
        // Garbage payload: 400 and the session is closed.
        let (st, _, _) = http(&addr, "POST", &path, &[], "zz").await;
        assert_eq!(st, 400);
        let (st, _, _) = http(&addr, "GET", &path, &[], "").await;
        assert_eq!(st, 400);
        // Payload over the limit on a fresh session: 413.
        let (_, _, body) = http(&addr, "GET", "/socket.io/?EIO=3&transport=polling", &[], "").await;
        let p = jmessage_mock::transport::engineio::decode_payload(&body).expect("payload");
        let sid2 = serde_json::from_str::<Value>(&p[0][1..]).expect("json")["sid"]
            .as_str()
            .expect("sid")
            .to_owned();
        let big = jmessage_mock::transport::engineio::encode_payload(&[format!(
            "42[\"x\",\"{}\"]",
            "a".repeat(3000)
        )]);
        let (st, _, _) = http(
            &addr,
            "POST",
            &format!("/socket.io/?EIO=3&transport=polling&sid={sid2}"),
            &[],
            &big,
        )
        .await;
        assert_eq!(st, 413);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn polling_session_upgrades_to_websocket() {
    bounded(async {
        let s = start().await;
        let addr = s.addr.to_string();
        let (_, _, body) = http(&addr, "GET", "/socket.io/?EIO=3&transport=polling", &[], "").await;
        let p = jmessage_mock::transport::engineio::decode_payload(&body).expect("payload");
        let sid = serde_json::from_str::<Value>(&p[0][1..]).expect("json")["sid"]
            .as_str()
            .expect("sid")
            .to_owned();
        let mut c = ws(&addr, &format!("&sid={sid}")).await;
        c.send(Message::Text("2probe".into())).await.expect("send");
        assert_eq!(next_text(&mut c).await.as_deref(), Some("3probe"));
        // The pending poll would get a noop; here nobody polls. Finish the upgrade.
        c.send(Message::Text("5".into())).await.expect("send");
        c.send(Message::Text(r#"42["sync_check",{"rid":11}]"#.into()))
            .await
            .expect("send");
        // The noop queued for the poll cycle may come first over the websocket.
        let mut got = next_text(&mut c).await.expect("frame");
        if got == "6" {
            got = next_text(&mut c).await.expect("frame");
        }
        assert_eq!(got, r#"42["ack",{"rid":11}]"#);
        // Polling on an upgraded session is refused.
        let (st, _, _) = http(
            &addr,
            "GET",
            &format!("/socket.io/?EIO=3&transport=polling&sid={sid}"),
            &[],
            "",
        )
        .await;
        assert_eq!(st, 400);
        s.shutdown().await;
    })
    .await
}
