//! A lean Socket.IO/JMessage client for the load generator: one websocket, a writer task
//! and a reader task, frames scanned by hand (no JSON tree) so the generator spends as
//! little of the shared CPU as it can. It speaks exactly what the SDK sends for the
//! workload (docs/protocol.md 2, 3, 5, 7): c_init, login, sync_check, the three message
//! sends, join_room, and msg_recv_v2 after every msg_sync.

use futures_util::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_tungstenite::tungstenite::Message;

pub const APPKEY: &str = "6b4c1fe2d0a8e5f3a9c7b1d2";
pub const SECRET: &str = "load-secret";
pub const PASSWORD: &str = "123456";
/// Told to the writer task: close the websocket.
const CLOSE: &str = "\u{0}close";

/// Microseconds since the generator started (sender and receivers share the clock).
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

pub fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// What receivers saw: end-to-end latencies (send → push) in µs.
#[derive(Default)]
pub struct Recorder {
    pub delivered: AtomicU64,
    pub latencies: Mutex<Vec<u32>>,
}

impl Recorder {
    fn record(&self, sent_us: u64) {
        let lat = now_us().saturating_sub(sent_us).min(u32::MAX as u64) as u32;
        if let Ok(mut v) = self.latencies.lock() {
            v.push(lat);
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

enum Waiter {
    Once(oneshot::Sender<String>),
    /// A windowed send: dropping the permit frees a slot of the sender's window.
    Window(#[allow(dead_code)] OwnedSemaphorePermit),
}

/// One logged-in (or connecting) client connection.
pub struct Conn {
    out: mpsc::UnboundedSender<String>,
    pending: Arc<Mutex<HashMap<u64, Waiter>>>,
    pub name: String,
}

/// Finds `"key":` in `s` and returns the number after it.
pub fn scan_num(s: &str, key: &str) -> Option<u64> {
    let at = s.find(key)? + key.len();
    let digits: &str = &s[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

impl Conn {
    /// Connects a websocket to `/socket.io/?EIO=3&transport=websocket` and starts the
    /// reader (which records pushes into `rec` and answers msg_sync with msg_recv_v2).
    pub async fn connect(port: u16, name: &str, rec: Arc<Recorder>) -> Result<Arc<Conn>, String> {
        let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=3&transport=websocket");
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                if first == CLOSE {
                    let _ = sink.close().await;
                    return;
                }
                if sink.feed(Message::text(first)).await.is_err() {
                    return;
                }
                while let Ok(more) = rx.try_recv() {
                    if sink.feed(Message::text(more)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
        // Engine.IO 3: the client pings (the server closes a silent session after
        // pingInterval + pingTimeout, 85 s by default).
        let pinger = tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                if pinger.send("2".into()).is_err() {
                    return;
                }
            }
        });
        let conn = Arc::new(Conn {
            out: tx,
            pending: Arc::default(),
            name: name.to_owned(),
        });
        let reader = conn.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m {
                    reader.on_frame(t.as_str(), &rec);
                }
            }
            if let Ok(mut p) = reader.pending.lock() {
                p.clear();
            }
        });
        Ok(conn)
    }

    fn on_frame(&self, t: &str, rec: &Recorder) {
        if t.starts_with("42[\"ack\"") || !t.starts_with("42") {
            return;
        }
        if t.starts_with("42[\"msg_sync\"") {
            if let Some(sent) = scan_num(t, "t=") {
                rec.record(sent);
            }
            let msg_id = scan_num(t, "\"msg_id\":").unwrap_or(0);
            let msg_type = scan_num(t, "\"msg_type\":").unwrap_or(3);
            let from_uid = scan_num(t, "\"from_uid\":").unwrap_or(0);
            let from_gid = scan_num(t, "\"from_gid\":").unwrap_or(0);
            self.fire(
                "msg_recv_v2",
                &format!(
                    "\"msg_id\":{msg_id},\"msg_type\":{msg_type},\"from_uid\":{from_uid},\"from_gid\":{from_gid}"
                ),
            );
            return;
        }
        if t.starts_with("42[\"room_msg_sync\"") {
            if let Some(sent) = scan_num(t, "t=") {
                rec.record(sent);
            }
            return;
        }
        let Some(rid) = scan_num(t, "\"rid\":") else {
            return;
        };
        let w = self.pending.lock().ok().and_then(|mut p| p.remove(&rid));
        if let Some(Waiter::Once(tx)) = w {
            let _ = tx.send(t.to_owned());
        }
    }

    fn frame(&self, event: &str, fields: &str) -> (u64, String) {
        // Random-looking in [1, 2^31 - 1] like the SDK's (protocol.md 2.1), so nothing on
        // the server gains from rids that count up; and unique across every connection of
        // the run, as the SDK's random rids are in practice (the server and its oracle
        // take a rid seen on two connections for a retry carried over a reconnect): a
        // counter times an odd number is a permutation modulo 2^31.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let rid = (n.wrapping_mul(0x9E37_79B9) & 0x7FFF_FFFF).max(1);
        let sep = if fields.is_empty() { "" } else { "," };
        (
            rid,
            format!("42[\"{event}\",{{{fields}{sep}\"rid\":{rid}}}]"),
        )
    }

    /// Sends a request whose answer nobody waits for.
    pub fn fire(&self, event: &str, fields: &str) {
        let (_, f) = self.frame(event, fields);
        let _ = self.out.send(f);
    }

    /// Sends a request holding `permit` until its response arrives.
    pub fn send_windowed(&self, event: &str, fields: &str, permit: OwnedSemaphorePermit) {
        let (rid, f) = self.frame(event, fields);
        if let Ok(mut p) = self.pending.lock() {
            p.insert(rid, Waiter::Window(permit));
        }
        let _ = self.out.send(f);
    }

    /// Sends a request and waits (bounded) for its response; Err unless `code` is 0.
    pub async fn call(&self, event: &str, fields: &str) -> Result<String, String> {
        let (rid, f) = self.frame(event, fields);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(rid, Waiter::Once(tx));
        }
        let _ = self.out.send(f);
        let r = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .map_err(|_| format!("{event}: no response in 30 s"))?
            .map_err(|_| format!("{event}: connection closed"))?;
        match scan_num(&r, "\"code\":") {
            Some(0) | None => Ok(r),
            Some(c) => Err(format!("{event}: code {c}: {r}")),
        }
    }

    /// c_init with a fresh signature, login, sync_check: what the SDK does.
    pub async fn login(&self) -> Result<(), String> {
        self.call("c_init", &c_init_fields()).await?;
        self.call(
            "login",
            &format!(
                "\"username\":\"{}\",\"password\":\"{}\",\"version\":\"2.5.0\"",
                self.name,
                md5_hex(PASSWORD)
            ),
        )
        .await?;
        self.call(
            "sync_check",
            "\"sync_key\":0,\"sync_type\":0,\"sync_event_key\":0,\"msg_receipt_key\":0",
        )
        .await?;
        Ok(())
    }

    /// Closes the websocket.
    pub fn close(&self) {
        let _ = self.out.send(CLOSE.into());
    }
}

/// A 64-byte text carrying its send time (`t=<µs>`), read back by the receiver.
pub fn stamped_text() -> String {
    let mut s = format!("t={:016} ", now_us());
    while s.len() < 64 {
        s.push('x');
    }
    s
}

/// The `content` envelope of a text message (docs/protocol.md 5).
pub fn content(target_type: &str, target: &str, from: &str) -> String {
    let ts = now_us() / 1000;
    format!(
        "\"content\":{{\"version\":1,\"target_type\":\"{target_type}\",\"from_platform\":\"web\",\"target_id\":\"{target}\",\"from_id\":\"{from}\",\"create_time\":{ts},\"msg_type\":\"text\",\"msg_body\":{{\"text\":\"{}\"}}}},\"no_offline\":false,\"no_notification\":false",
        stamped_text()
    )
}

/// The fields of a `c_init` request with a fresh signature (every client of the bench).
pub fn c_init_fields() -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let random = format!("{:032x}", now_us() as u128 * 2_654_435_761);
    let sig = md5_hex(&format!(
        "appkey={APPKEY}&timestamp={ts}&random_str={random}&key={SECRET}"
    ));
    format!("\"appkey\":\"{APPKEY}\",\"random_str\":\"{random}\",\"timestamp\":{ts},\"signature\":\"{sig}\",\"flag\":0,\"fromPlatForm\":\"j\"")
}
