//! Connection and memory limits over real sockets (docs/limits.md): header and idle
//! timeouts, the connection limit, slow consumers, websocket close codes, aborted polls,
//! the journal's byte bound, dedupe expiry on the timer, graceful shutdown.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use jmessage_mock::backend::{md5_hex, signature};
use jmessage_mock::client::Transport;
use jmessage_mock::server::{self, Limits, RunningServer, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn start_limited(transport: TransportConfig, limits: Limits) -> RunningServer {
    let config = ServerConfig {
        limits,
        ..ServerConfig::new(backend_config(), transport)
    };
    server::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("server starts")
}

async fn ws(s: &RunningServer) -> Ws {
    let url = format!("ws://{}/socket.io/?EIO=3&transport=websocket", s.addr);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects")
        .0
}

/// The next websocket message (texts, close frames), `None` on end or after `WAIT`.
async fn next_msg(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()?? {
            Ok(m @ (Message::Text(_) | Message::Close(_))) => return Some(m),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// Sends a request on a raw websocket and waits for its response (skipping acks/pushes).
async fn raw_request(ws: &mut Ws, event: &str, rid: u64, mut body: Value) -> Value {
    body["rid"] = json!(rid);
    let frame = format!("42{}", json!([event, body]));
    ws.send(Message::Text(frame.into())).await.expect("send");
    loop {
        let Some(Message::Text(t)) = next_msg(ws).await else {
            panic!("no response to {event}");
        };
        let Some(arr) = t
            .strip_prefix("42")
            .and_then(|j| serde_json::from_str::<Value>(j).ok())
        else {
            continue;
        };
        if arr[0] == event && arr[1]["rid"] == rid {
            return arr[1].clone();
        }
    }
}

/// A raw websocket logged in as `name` (registered first if new, password `pw`).
async fn raw_user(s: &RunningServer, name: &str) -> Ws {
    let mut c = ws(s).await;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
        .to_string();
    let rs = "00000000000000000001";
    let init = json!({"appkey": APPKEY, "random_str": rs, "timestamp": ts,
        "signature": signature(APPKEY, &ts, rs, SECRET), "flag": 0, "fromPlatForm": "j"});
    let r = raw_request(&mut c, "c_init", 1, init).await;
    assert_eq!(r["code"], 0, "{r}");
    let pw = md5_hex("pw");
    raw_request(
        &mut c,
        "register",
        2,
        json!({"username": name, "password": pw}),
    )
    .await;
    let r = raw_request(
        &mut c,
        "login",
        3,
        json!({"username": name, "password": pw, "version": "2.5.0"}),
    )
    .await;
    assert_eq!(r["code"], 0, "{r}");
    c
}

/// Reads until the peer closes the connection; true if it did within `limit`.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.is_ok()
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn short_headers() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    bounded(async {
        let s = start_limited(TransportConfig::default(), short_headers()).await;
        let mut tcp = TcpStream::connect(s.addr).await.expect("tcp");
        assert!(
            closed_within(&mut tcp, WAIT).await,
            "silent connection kept"
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_header_dripper_is_closed() {
    bounded(async {
        let s = start_limited(TransportConfig::default(), short_headers()).await;
        let mut tcp = TcpStream::connect(s.addr).await.expect("tcp");
        let (mut rd, mut wr) = tcp.split();
        let drip = async {
            wr.write_all(b"GET /socket.io/?EIO=3&transport=polling HTTP/1.1\r\n")
                .await?;
            // One header byte every 50 ms: never a complete head, never silent.
            loop {
                wr.write_all(b"X").await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let mut buf = [0u8; 256];
        let closed = async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        let outcome = tokio::time::timeout(WAIT, async {
            tokio::select! {
                _ = closed => "closed",
                r = drip => { let _: std::io::Result<()> = r; "write failed" }
            }
        })
        .await;
        assert!(outcome.is_ok(), "header dripper kept for {WAIT:?}");
        drop(tcp);
        s.shutdown().await;
    })
    .await
}

fn at_most(n: usize) -> Limits {
    Limits {
        max_connections: n,
        header_read_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

/// A kept-alive connection that has completed one request.
async fn busy_connection(s: &RunningServer) -> TcpStream {
    let mut tcp = TcpStream::connect(s.addr).await.expect("tcp");
    tcp.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 404"));
    tcp
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_while_logged_in_clients_keep_working() {
    bounded(async {
        let s = start_limited(TransportConfig::default(), at_most(4)).await;
        let alice = user(&s, Transport::Websocket, "alice").await;
        let mut busy = Vec::new();
        for _ in 0..3 {
            busy.push(busy_connection(&s).await);
        }
        // Every connection has sent a request: the next one is closed at once, unanswered.
        let mut extra = TcpStream::connect(s.addr).await.expect("tcp");
        let _ = extra
            .write_all(b"GET /socket.io/?EIO=3&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(WAIT, extra.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "connection over the limit was kept open");
        assert!(got.is_empty(), "connection over the limit was answered");
        // The logged-in client is still served.
        for _ in 0..3 {
            let r = alice.send_text("alice", "alice", "still here").await;
            assert!(r.is_ok(), "logged-in client lost: {r:?}");
        }
        // Released connections free their slots.
        drop(busy);
        let reopened = async {
            loop {
                let c = jmessage_mock::client::Client::connect(&s.http_url(), fast()).await;
                if c.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        assert!(tokio::time::timeout(WAIT, reopened).await.is_ok());
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn at_the_limit_silent_connections_make_room_for_new_clients() {
    bounded(async {
        let s = start_limited(TransportConfig::default(), at_most(6)).await;
        let alice = user(&s, Transport::Websocket, "alice").await;
        let mut silent = Vec::new();
        for _ in 0..5 {
            silent.push(TcpStream::connect(s.addr).await.expect("tcp"));
        }
        // At the limit: a new client gets in, the oldest silent connection goes.
        let bob = user(&s, Transport::Websocket, "bobby").await;
        assert!(bob.send_text("bobby", "alice", "hi").await.is_ok());
        assert!(alice.expect_push("msg_sync", WAIT).await.is_some());
        assert!(
            closed_within(&mut silent[0], WAIT).await,
            "oldest silent kept"
        );
        s.shutdown().await;
    })
    .await
}

/// Sends 4 KB transparent messages (never stored) to `target` until the server says it
/// has no live session, at most `max`; returns how many were delivered.
async fn flood(from: &jmessage_mock::client::Client, target: &str, max: u32) -> u32 {
    let cmd = "x".repeat(4000);
    let mut delivered = 0;
    while delivered < max {
        let r = from
            .request(
                "trans_msg_single",
                json!({"target_username": target, "cmd": cmd}),
            )
            .await
            .expect("flood request answered");
        if r.code() != 0 {
            break; // the target has no live session any more
        }
        delivered += 1;
    }
    delivered
}

/// Waits (bounded) until no session is labelled `name`.
async fn session_gone(s: &RunningServer, name: &str) -> bool {
    let gone = async {
        while s
            .engine
            .sockets()
            .iter()
            .any(|x| x.label().as_deref() == Some(name))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, gone).await.is_ok()
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_memory_stays_bounded() {
    bounded(async {
        let transport = TransportConfig {
            max_queue_frames: 2_000,
            max_queue_bytes: 1024 * 1024,
            write_timeout: Duration::from_secs(30),
            ..TransportConfig::default()
        };
        let limits = Limits {
            journal_bytes: 1024 * 1024,
            ..Limits::default()
        };
        let s = start_limited(transport, limits).await;
        // Logged in, then never reads again.
        let _slow = raw_user(&s, "slowpoke").await;
        let flooder = user(&s, Transport::Websocket, "flooder").await;
        let before = vm_rss_kib();
        // 20,000 × 4 KB would hold 80 MB in an unbounded queue.
        let delivered = flood(&flooder, "slowpoke", 20_000).await;
        let growth_mib = vm_rss_kib().saturating_sub(before) / 1024;
        println!("delivered {delivered} frames before the disconnect; RSS grew {growth_mib} MiB");
        assert!(delivered < 20_000, "slow consumer never disconnected");
        assert!(session_gone(&s, "slowpoke").await);
        assert!(growth_mib < 48, "RSS grew {growth_mib} MiB");
        // The server still answers.
        assert!(flooder.send_text("flooder", "flooder", "ok").await.is_ok());
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_websocket_write_stuck_longer_than_the_write_timeout_drops_the_session() {
    bounded(async {
        // Queue bounds out of reach: only the write timeout can end the session.
        let transport = TransportConfig {
            max_queue_frames: 1_000_000,
            max_queue_bytes: 1 << 30,
            write_timeout: Duration::from_millis(500),
            ..TransportConfig::default()
        };
        // A small journal: the RSS test in this file runs alongside.
        let limits = Limits {
            journal_bytes: 1024 * 1024,
            ..Limits::default()
        };
        let s = start_limited(transport, limits).await;
        let _stuck = raw_user(&s, "stuck").await;
        let flooder = user(&s, Transport::Websocket, "flooder2").await;
        let delivered = flood(&flooder, "stuck", 50_000).await;
        println!("delivered {delivered} frames before the write timeout");
        assert!(delivered < 50_000, "stuck consumer never disconnected");
        assert!(session_gone(&s, "stuck").await);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_websocket_message_over_max_payload_gets_close_code_1009() {
    bounded(async {
        let transport = TransportConfig {
            max_payload: 1000,
            ..TransportConfig::default()
        };
        let s = start_limited(transport, Limits::default()).await;
        let mut c = ws(&s).await;
        next_msg(&mut c).await.expect("open");
        next_msg(&mut c).await.expect("40");
        let big = format!(r#"42["c_init",{{"rid":1,"x":"{}"}}]"#, "a".repeat(2000));
        let _ = c.send(Message::Text(big.into())).await;
        match next_msg(&mut c).await {
            Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Size),
            other => panic!("expected close 1009, got {other:?}"),
        }
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_websocket_message_just_under_max_payload_is_answered() {
    bounded(async {
        let s = start_limited(TransportConfig::default(), Limits::default()).await;
        let c = user(&s, Transport::Websocket, "bigsender").await;
        // Far larger than the websocket read buffer, under the 1 MB limit.
        let pad = "p".repeat(900_000);
        let r = c.request("nosuch", json!({ "pad": pad })).await;
        assert!(r.is_ok(), "large message not answered: {r:?}");
        assert!(c.send_text("bigsender", "bigsender", "after").await.is_ok());
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn an_invalid_utf8_text_frame_gets_close_code_1007() {
    bounded(async {
        let s = start_limited(TransportConfig::default(), Limits::default()).await;
        let mut c = ws(&s).await;
        next_msg(&mut c).await.expect("open");
        next_msg(&mut c).await.expect("40");
        let bad = vec![b'4', b'2', 0xff, 0xfe, b'x'];
        let frame = Frame::message(bad, OpCode::Data(Data::Text), true);
        let _ = c.send(Message::Frame(frame)).await;
        match next_msg(&mut c).await {
            Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Invalid),
            other => panic!("expected close 1007, got {other:?}"),
        }
        s.shutdown().await;
    })
    .await
}

/// Sends a raw HTTP/1.1 GET and returns (status, body), bounded by `WAIT`.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("tcp");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf))
        .await
        .expect("GET answered")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_owned())
}

#[tokio::test]
async fn an_aborted_polling_get_keeps_the_session() {
    bounded(async {
        let transport = TransportConfig {
            poll_hold: Duration::from_secs(2),
            ..TransportConfig::default()
        };
        let s = start_limited(transport, Limits::default()).await;
        let addr = s.addr.to_string();
        let (status, body) = get(&addr, "/socket.io/?EIO=3&transport=polling").await;
        assert_eq!(status, 200, "{body}");
        let sid = body
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("sid")
            .to_owned();
        let path = format!("/socket.io/?EIO=3&transport=polling&sid={sid}");
        // A GET that is held (nothing queued), then aborted by the client.
        let mut held = TcpStream::connect(&addr).await.expect("tcp");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        held.write_all(req.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(held);
        let (status, body) = get(&addr, &path).await;
        assert_eq!(status, 200, "session lost after an aborted GET: {body}");
        assert!(s.engine.get(&sid).is_some(), "session closed");
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn the_journal_stays_under_its_byte_bound() {
    bounded(async {
        let limits = Limits {
            journal_bytes: 256 * 1024,
            journal_frame_max: 8 * 1024,
            ..Limits::default()
        };
        let s = start_limited(TransportConfig::default(), limits).await;
        let c = user(&s, Transport::Websocket, "journaler").await;
        let pad = "p".repeat(100_000);
        for i in 0..60 {
            c.send_raw(&format!(r#"42["nosuch",{{"rid":"j{i}","pad":"{pad}"}}]"#));
        }
        // Frames are handled in order: once this answer is back, all were journaled.
        assert!(c.send_text("journaler", "journaler", "done").await.is_ok());
        let bytes = s.faults.journal_bytes();
        assert!(bytes <= 256 * 1024, "journal holds {bytes} bytes");
        let entries = s.faults.journal(0);
        let cut = entries
            .iter()
            .filter(|e| e.frame.contains("…[truncated: "))
            .count();
        assert!(
            cut > 0,
            "no truncated frame among {} entries",
            entries.len()
        );
        assert!(entries.iter().all(|e| e.frame.len() < 9 * 1024));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn dedupe_entries_expire_on_the_timer_without_new_requests() {
    bounded(async {
        let limits = Limits {
            dedupe_ttl: Duration::from_millis(300),
            dedupe_sweep: Duration::from_millis(50),
            ..Limits::default()
        };
        let s = start_limited(TransportConfig::default(), limits).await;
        let _c = user(&s, Transport::Websocket, "deduper").await;
        assert!(s.hub.with_backend(|b| b.dedupe_len()) > 0);
        let emptied = async {
            while s.hub.with_backend(|b| b.dedupe_len()) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        assert!(
            tokio::time::timeout(WAIT, emptied).await.is_ok(),
            "dedupe entries never expired"
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn graceful_shutdown_answers_a_request_in_flight_then_sends_a_close_frame() {
    bounded(async {
        let s = start_limited(TransportConfig::default(), Limits::default()).await;
        let mut c = raw_user(&s, "leaving").await;
        let frame = format!(
            "42{}",
            json!(["s_across_single_text", {"rid": 99, "target_id": "leaving"}])
        );
        c.send(Message::Text(frame.into())).await.expect("send");
        let stopping = tokio::spawn(s.shutdown());
        let (mut acked, mut answered, mut close) = (false, false, None);
        while let Some(m) = next_msg(&mut c).await {
            match m {
                Message::Text(t) if t.contains(r#""rid":99"#) => {
                    if t.starts_with(r#"42["ack""#) {
                        acked = true;
                    } else {
                        answered = true;
                    }
                }
                Message::Close(f) => {
                    close = Some(f);
                    break;
                }
                _ => {}
            }
        }
        assert!(acked && answered, "ack {acked}, response {answered}");
        assert!(close.is_some(), "no close frame");
        tokio::time::timeout(WAIT, stopping)
            .await
            .expect("shutdown finishes")
            .expect("shutdown task");
    })
    .await
}

#[tokio::test]
async fn graceful_shutdown_releases_a_pending_polling_get_with_a_close_packet() {
    bounded(async {
        let s = start_limited(TransportConfig::default(), Limits::default()).await;
        let addr = s.addr.to_string();
        let (status, body) = get(&addr, "/socket.io/?EIO=3&transport=polling").await;
        assert_eq!(status, 200, "{body}");
        let sid = body
            .split("\"sid\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("sid")
            .to_owned();
        // Held: nothing is queued and poll_hold is 25 s.
        let path = format!("/socket.io/?EIO=3&transport=polling&sid={sid}");
        let pending = tokio::spawn(async move { get(&addr, &path).await });
        while !s.engine.get(&sid).is_some_and(|x| x.queue_taken()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s.shutdown().await;
        let (status, body) = pending.await.expect("GET task");
        assert_eq!(status, 200, "{body}");
        assert!(body.ends_with("1:1"), "no close packet: {body:?}");
    })
    .await
}

#[tokio::test]
async fn a_new_session_that_never_sends_a_frame_is_dropped_before_the_ping_timeout() {
    bounded(async {
        let transport = TransportConfig {
            ping_interval: Duration::from_millis(200),
            ping_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_millis(300),
            ..TransportConfig::default()
        };
        let s = start_limited(transport, Limits::default()).await;
        let mut silent = ws(&s).await;
        let mut talker = ws(&s).await;
        for c in [&mut silent, &mut talker] {
            next_msg(c).await.expect("open");
            next_msg(c).await.expect("40");
        }
        talker.send(Message::Text("2".into())).await.expect("ping");
        assert!(matches!(next_msg(&mut talker).await, Some(Message::Text(t)) if t.as_str() == "3"));
        // Silent since its open packet: dropped after ping_interval + handshake_timeout,
        // long before ping_interval + ping_timeout (60 s).
        let end = tokio::time::timeout(WAIT, async {
            while let Some(Ok(m)) = silent.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        assert!(end.is_ok(), "silent session kept");
        // The session that pinged keeps the full ping timeout.
        assert_eq!(s.engine.session_count(), 1);
        s.shutdown().await;
    })
    .await
}
