//! The hostile workloads of the probe, in the order they run. Each returns
//! `(name, what was tried, what happened)`; the caller measures memory and liveness.

use super::{frame, init_body, login, next_text, raw, raw_login, Server, KB900};
use futures_util::{SinkExt, StreamExt};
use jmessage_mock::client::{single_msg, Client};
use jmessage_mock::protocol::Event;
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

pub type Report = (String, String, String);
pub type Attack = for<'a> fn(&'a Server, usize) -> Pin<Box<dyn Future<Output = Report> + 'a>>;

pub const ALL: &[Attack] = &[
    |s, k| Box::pin(bad_frames(s, k)),
    |s, k| Box::pin(oversized(s, k)),
    |s, k| Box::pin(silent_connections(s, k)),
    |s, k| Box::pin(slow_consumer(s, k)),
    |s, k| Box::pin(stored_then_sync(s, k)),
    |s, k| Box::pin(big_unauthenticated(s, k)),
];

/// Values of the wrong type (or absurd value) for any field.
fn wrong_values() -> Vec<Value> {
    vec![
        json!(null),
        json!([]),
        json!({"nested": {"deeper": [1, 2, 3]}}),
        json!(-1),
        json!(1e308),
        json!("x"),
        json!(true),
        json!(u64::MAX),
    ]
}

/// The malformed frames: Engine.IO, Socket.IO, JSON, unknown events, and for every
/// known event its payload with every usual field set to each wrong value.
fn bad_frame_list() -> Vec<Message> {
    let mut out: Vec<Message> = [
        "",
        "9",
        "x",
        "7abc",
        "\u{0}",
        "4",
        "6",
        "5",
        "49",
        "42",
        "42[",
        "42{}",
        "42[]",
        "42[1]",
        "42[null]",
        "42[\"x\"",
        "43[",
        "40/other,",
        "41/x,",
        "451-[",
        "4-1",
        "42999999999999999999999[\"a\"]",
        "4\u{feff}2[\"c_init\",{}]",
        "42[\"c_init\",{\"rid\":",
    ]
    .iter()
    .map(|s| Message::Text((*s).into()))
    .collect();
    let deep = format!(
        "42[\"c_init\",{}{}]",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    out.push(Message::Text(deep.into()));
    out.push(Message::Binary(vec![0xff, 0xfe, 0x00, 0x42].into()));
    out.push(Message::Binary(b"42[\"c_init\",{}]".to_vec().into()));
    for name in [
        "no_such_event",
        "__proto__",
        "constructor",
        "ack",
        "msg_sync",
        "",
    ] {
        out.push(Message::Text(frame(name, json!({"rid": 9})).into()));
    }
    out.push(Message::Text(
        frame(&"e".repeat(10_000), json!({"rid": 9})).into(),
    ));
    let fields = [
        "username",
        "password",
        "target_id",
        "target_name",
        "gid",
        "msg_id",
        "content",
        "sync_key",
        "extras",
        "member_usernames",
        "room_id",
        "appkey",
        "version",
        "media_id",
    ];
    for e in Event::ALL {
        for (n, v) in wrong_values().into_iter().enumerate() {
            let mut body = serde_json::Map::new();
            for f in fields {
                body.insert(f.into(), v.clone());
            }
            body.insert("rid".into(), json!(1000 + n));
            out.push(Message::Text(frame(e.wire(), Value::Object(body)).into()));
        }
        out.push(Message::Text(
            format!("42[\"{}\",\"not an object\"]", e.wire()).into(),
        ));
        out.push(Message::Text(
            format!("42[\"{}\",{{\"rid\":[1]}}]", e.wire()).into(),
        ));
    }
    out
}

/// What the server said to one frame within a short window.
#[derive(Default)]
struct Tally {
    error_code: usize,
    success: usize,
    ack_only: usize,
    silent: usize,
    closed: usize,
    codes: std::collections::BTreeMap<i64, usize>,
}

async fn bad_frames(s: &Server, _scale: usize) -> Report {
    let frames = bad_frame_list();
    let mut t = Tally::default();
    let mut conn = raw_login(s, "prankster").await.ok();
    for f in &frames {
        let Some((tx, rx)) = conn.as_mut() else {
            conn = raw_login(s, "prankster").await.ok();
            t.silent += 1;
            continue;
        };
        if tx.send(f.clone()).await.is_err() {
            t.closed += 1;
            conn = raw_login(s, "prankster").await.ok();
            continue;
        }
        let mut acked = false;
        loop {
            match tokio::time::timeout(Duration::from_millis(150), rx.next()).await {
                Ok(Some(Ok(Message::Text(m)))) => {
                    if m.starts_with("42[\"ack\"") {
                        acked = true;
                        continue;
                    }
                    if let Some(code) = code_of(&m) {
                        *t.codes.entry(code).or_default() += 1;
                        if code == 0 {
                            t.success += 1;
                        } else {
                            t.error_code += 1;
                        }
                        break;
                    }
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => {
                    t.closed += 1;
                    conn = raw_login(s, "prankster").await.ok();
                    break;
                }
                Err(_) => {
                    if acked {
                        t.ack_only += 1;
                    } else {
                        t.silent += 1;
                    }
                    break;
                }
            }
        }
    }
    let codes: Vec<String> = t.codes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
    (
        "bad frames".into(),
        format!(
            "{} malformed frames on a logged-in websocket (Engine.IO, Socket.IO, JSON, \
             unknown events, every event with wrong-typed fields)",
            frames.len()
        ),
        format!(
            "{} error responses, {} success, {} ack only, {} no answer, {} connections \
             closed by the server; codes {}",
            t.error_code,
            t.success,
            t.ack_only,
            t.silent,
            t.closed,
            codes.join(" ")
        ),
    )
}

/// The `code` of a response frame.
fn code_of(frame: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(frame.strip_prefix("42")?).ok()?;
    v.get(1)?.get("code")?.as_i64()
}

async fn oversized(s: &Server, scale: usize) -> Report {
    let n = (10 / scale).max(1);
    let big = "x".repeat(KB900);
    let Ok(c) = login(s, "bigmouth").await else {
        return (
            "oversized inputs".into(),
            "-".into(),
            "bigmouth could not log in".into(),
        );
    };
    let _ = login(s, "listener").await.map(|l| l.disconnect());
    let mut kinds: Vec<(&str, &str, Value)> = vec![
        (
            "text",
            "s_across_single_text",
            single_msg("bigmouth", "listener", "text", json!({"text": big})),
        ),
        ("extras", "update_user_inf", json!({"extras": {"k": big}})),
        ("nickname", "update_user_inf", json!({"nickname": big})),
    ];
    let mut cn = single_msg("bigmouth", "listener", "text", json!({"text": "hi"}));
    cn["custom_notification"] = json!({"enabled": true, "title": big});
    kinds.push(("custom_notification", "s_across_single_text", cn));
    let mut parts = Vec::new();
    for (label, event, body) in &kinds {
        let (mut ok, mut refused, mut failed) = (0, 0, 0);
        for _ in 0..n {
            match c.request(event, body.clone()).await {
                Ok(r) if r.code() == 0 => ok += 1,
                Ok(_) | Err(jmessage_mock::client::RequestError::Failed(_)) => refused += 1,
                Err(_) => failed += 1,
            }
        }
        parts.push(format!(
            "{label}: {ok} accepted, {refused} refused, {failed} no answer"
        ));
    }
    let (mut ok, mut refused) = (0, 0);
    for i in 0..n {
        match raw(s).await {
            Ok((mut tx, mut rx)) => {
                let mut b = json!({"rid": 2, "username": "bigmouth", "password": super::md5_hex("pw"), "version": big});
                let _ = tx
                    .send(Message::Text(frame("c_init", init_body(1)).into()))
                    .await;
                b["rid"] = json!(2 + i);
                let _ = tx.send(Message::Text(frame("login", b).into())).await;
                let mut got = None;
                while let Some(m) = next_text(&mut rx, Duration::from_secs(5)).await {
                    if m.starts_with("42[\"login\"") {
                        got = code_of(&m);
                        break;
                    }
                }
                if got == Some(0) {
                    ok += 1;
                } else {
                    refused += 1;
                }
            }
            Err(_) => refused += 1,
        }
    }
    parts.push(format!("login version: {ok} accepted, {refused} refused"));
    c.disconnect();
    (
        "oversized inputs".into(),
        format!(
            "{} requests with a 900 KB field ({n} per kind, {} kinds)",
            n * (kinds.len() + 1),
            kinds.len() + 1
        ),
        parts.join("; "),
    )
}

/// A socket operation with a 500 ms limit (`None`: it did not finish).
async fn short<T>(f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(Duration::from_millis(500), f)
        .await
        .ok()
}

async fn silent_connections(s: &Server, scale: usize) -> Report {
    let (silent_n, drip_n) = (2000 / scale, 100 / scale);
    let hold = Duration::from_secs(if scale > 1 { 5 } else { 20 });
    let mut silent = Vec::new();
    let mut refused = 0;
    // A server out of descriptors leaves connections in the listen backlog, where a
    // connect can wait long: each try is short and the whole phase has a budget.
    let budget = Instant::now() + Duration::from_secs(20);
    for _ in 0..silent_n {
        if Instant::now() > budget {
            refused += 1;
            continue;
        }
        match short(TcpStream::connect(("127.0.0.1", s.port))).await {
            Some(Ok(c)) => silent.push(c),
            _ => refused += 1,
        }
    }
    let port = s.port;
    let drip = tokio::spawn(async move {
        let mut conns = Vec::new();
        let mut tried = 0;
        for _ in 0..drip_n {
            tried += 1;
            if let Some(Ok(mut c)) = short(TcpStream::connect(("127.0.0.1", port))).await {
                let line =
                    b"GET /socket.io/?EIO=3&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n";
                let _ = short(c.write_all(line)).await;
                conns.push(c);
            }
        }
        let start = Instant::now();
        let mut open = conns.len();
        while start.elapsed() < hold {
            open = 0;
            for c in conns.iter_mut() {
                if matches!(short(c.write_all(b"X")).await, Some(Ok(()))) {
                    open += 1;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        (open, conns.len(), tried)
    });
    tokio::time::sleep(hold / 2).await;
    let during_health = match super::health(s.port, Duration::from_secs(5)).await {
        Ok(d) => format!("health {} ms", d.as_millis()),
        Err(e) => format!("health **{e}**"),
    };
    let during_login =
        match tokio::time::timeout(Duration::from_secs(10), login(s, "crowded")).await {
            Ok(Ok(c)) => {
                c.disconnect();
                "new login ok".to_string()
            }
            Ok(Err(e)) => format!("new login **{e}**"),
            Err(_) => "new login **timeout**".into(),
        };
    let (drip_open, drip_connected, _) = drip.await.unwrap_or((0, 0, 0));
    let mut closed = 0;
    let mut buf = [0u8; 16];
    for c in silent.iter_mut() {
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), c.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    (
        "silent connections".into(),
        format!(
            "{silent_n} TCP connections that send nothing + {drip_n} sending one header byte a \
             second, held {} s (server soft limit 1,024 fds)",
            hold.as_secs()
        ),
        format!(
            "{} connected ({refused} not within 500 ms or the 20 s budget); after {} s {closed} silent closed by the server, \
             {drip_connected} drippers connected, {drip_open} still open at the end; while held: {during_health}, {during_login}",
            silent.len(),
            hold.as_secs()
        ),
    )
}

async fn flood(c: &Client, from: &str, to: &str, n: usize, size: usize) -> (usize, usize) {
    let text = "m".repeat(size);
    let results: Vec<bool> = futures_util::stream::iter(0..n)
        .map(|_| {
            let body = single_msg(from, to, "text", json!({"text": text}));
            async move {
                matches!(c.request("s_across_single_text", body).await, Ok(r) if r.code() == 0)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let ok = results.iter().filter(|b| **b).count();
    (ok, n - ok)
}

async fn slow_consumer(s: &Server, scale: usize) -> Report {
    let n = 20_000 / scale;
    let Ok((mut tx, rx)) = raw_login(s, "slowpoke").await else {
        return (
            "slow consumer".into(),
            "-".into(),
            "slowpoke could not log in".into(),
        );
    };
    let Ok(f) = login(s, "firehose").await else {
        return (
            "slow consumer".into(),
            "-".into(),
            "firehose could not log in".into(),
        );
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let pinger_stop = stop.clone();
    let pinger = tokio::spawn(async move {
        let mut pings = 0;
        loop {
            tokio::select! {
                _ = pinger_stop.cancelled() => return (pings, false),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if tx.send(Message::Text("2".into())).await.is_err() {
                return (pings, true);
            }
            pings += 1;
        }
    });
    let t = Instant::now();
    let (ok, failed) = flood(&f, "firehose", "slowpoke", n, 64).await;
    let secs = t.elapsed().as_secs_f64();
    // The server drops a consumer whose queue passes its bound, or whose socket write
    // stays blocked for the write timeout (10 s): keep pinging a while to see which.
    let mut pinger = pinger;
    let (pings, cut) = match tokio::time::timeout(Duration::from_secs(15), &mut pinger).await {
        Ok(r) => r.unwrap_or((0, false)),
        Err(_) => {
            stop.cancel();
            pinger.await.unwrap_or((0, false))
        }
    };
    let waited = t.elapsed().as_secs_f64() - secs;
    drop(rx);
    f.disconnect();
    (
        "slow consumer".into(),
        format!(
            "slowpoke logged in, pings every second, never reads; firehose sends {n} texts to it"
        ),
        format!(
            "{ok} accepted, {failed} not, in {secs:.1} s; slowpoke sent {pings} pings, {}",
            if cut {
                format!("its connection was closed by the server {waited:.1} s after the flood")
            } else {
                "its session was never dropped (watched 15 s)".to_string()
            }
        ),
    )
}

async fn stored_then_sync(s: &Server, scale: usize) -> Report {
    let n = 100_000 / scale;
    let (Ok(w), Ok(sleeper)) = (login(s, "hoarder").await, login(s, "sleeper").await) else {
        return (
            "stored messages".into(),
            "-".into(),
            "could not log in".into(),
        );
    };
    sleeper.disconnect();
    let rss0 = s.rss_kb();
    let t = Instant::now();
    let (ok, failed) = flood(&w, "hoarder", "sleeper", n, 64).await;
    let store_s = t.elapsed().as_secs_f64();
    let per_msg = (s.rss_kb().saturating_sub(rss0) as f64 * 1024.0) / ok.max(1) as f64;
    let Ok((mut tx, mut rx)) = raw_login(s, "sleeper").await else {
        return (
            "stored messages".into(),
            "-".into(),
            "sleeper could not log in again".into(),
        );
    };
    // Another client's request latency while the sync is built and sent.
    let probe_stop = tokio_util::sync::CancellationToken::new();
    let ps = probe_stop.clone();
    let probe = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        while !ps.is_cancelled() {
            let t = Instant::now();
            let _ = w.request("get_conversations", json!({})).await;
            worst = worst.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worst
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let _ = tx
        .send(Message::Text(frame("sync_check", json!({"rid": 50, "sync_key": 0, "sync_type": 0, "sync_event_key": 0, "msg_receipt_key": 0})).into()))
        .await;
    let (mut biggest, mut frames, mut sync_at) = (0usize, 0usize, None);
    while let Some(m) = next_text(&mut rx, Duration::from_secs(20)).await {
        frames += 1;
        biggest = biggest.max(m.len());
        if m.starts_with("42[\"sync_conversation\"") {
            sync_at = Some(t.elapsed());
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    probe_stop.cancel();
    let worst = probe.await.unwrap_or_default();
    (
        "stored messages".into(),
        format!("{n} texts of 64 bytes stored for an offline user, then its one sync_check"),
        format!(
            "{ok} stored ({failed} not) in {store_s:.0} s, {:.1} KB RSS per message; sync: \
             {frames} frames, largest {:.1} MB, sync_conversation after {}; another client's \
             slowest request meanwhile {} ms",
            per_msg / 1024.0,
            biggest as f64 / 1e6,
            sync_at.map_or("**never**".to_string(), |d| format!("{} ms", d.as_millis())),
            worst.as_millis()
        ),
    )
}

async fn big_unauthenticated(s: &Server, scale: usize) -> Report {
    let n = 300 / scale;
    let big = "y".repeat(KB900);
    let (mut sent, mut answered, mut reconnects) = (0, 0, 0);
    let mut conn = raw(s).await.ok();
    for i in 0..n {
        let Some((tx, rx)) = conn.as_mut() else { break };
        let f = frame("c_init", json!({"rid": i + 1, "appkey": "nope", "x": big}));
        if tx.send(Message::Text(f.into())).await.is_err() {
            reconnects += 1;
            conn = raw(s).await.ok();
            continue;
        }
        sent += 1;
        // Read what came back so far without waiting.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(1), rx.next()).await
        {
            answered += 1;
        }
    }
    if let Some((mut tx, _)) = conn {
        let _ = tx.close().await;
    }
    (
        "900 KB frames, unauthenticated".into(),
        format!("{n} frames of 900 KB (`c_init` with a big field) on one websocket, then disconnect"),
        format!("{sent} sent, {answered} frames back, the connection closed by the server {reconnects} times"),
    )
}
