//! Robustness probe: starts the release server as a subprocess on 127.0.0.1 and runs a
//! fixed list of hostile workloads against it, each bounded in count and time. After
//! each one it checks that the server is alive (`/__admin/health` answers and a client
//! that logged in at the start still gets answers) and reads the server's resident
//! memory from `/proc/<pid>/status`. Prints a Markdown table (docs/robustness.md).
//!
//! ```text
//! cargo build --release && cargo run --release --example hostile [-- --quick]
//! ```
//!
//! The server runs with a soft limit of 1,024 file descriptors (a laptop's default), set
//! by `sh -c 'ulimit -n 1024; exec ...'`. `JMM_BIN` overrides the server binary
//! (default `target/release/jmessage-mock`). `--quick` divides every count by 10.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use jmessage_mock::backend::{md5_hex, signature};
use jmessage_mock::client::{Client, ClientConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const APPKEY: &str = "hostileappkey00000000001";
const SECRET: &str = "hostile-secret";
const KB900: usize = 900 * 1024;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One row of the report.
struct Row {
    attack: String,
    tried: String,
    happened: String,
    alive: String,
    rss_before: u64,
    rss_after: u64,
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let bin =
            std::env::var("JMM_BIN").unwrap_or_else(|_| "target/release/jmessage-mock".into());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 1024; exec \"$0\" \"$@\"")
            .arg(&bin)
            .args([
                "serve", "--port", "0", "--appkey", APPKEY, "--secret", SECRET,
            ])
            .env("JMM_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (cargo build --release first)"));
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out);
        let mut first = String::new();
        lines.read_line(&mut first).expect("banner");
        // Keep reading the banner so the server never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
        let port = first
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        Server { child, port }
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ws_url(&self) -> String {
        format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=3&transport=websocket",
            self.port
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET /__admin/health over a raw socket; the status line within `limit`.
async fn health(port: u16, limit: Duration) -> Result<Duration, String> {
    let t = Instant::now();
    let work = async {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let req = format!(
            "GET /__admin/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&buf[..n]).to_string();
        if line.starts_with("HTTP/1.1 200") {
            Ok(t.elapsed())
        } else {
            Err(format!("status {:?}", line.lines().next().unwrap_or("")))
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| "timeout".to_string())?
}

fn quick_config() -> ClientConfig {
    ClientConfig {
        ack_timeout: Duration::from_secs(2),
        response_timeout: Some(Duration::from_secs(5)),
        retry_times: 1,
        connect_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    }
}

/// A logged-in reference client (registers the user if new).
async fn login(s: &Server, name: &str) -> Result<Client, String> {
    let c = Client::connect(&s.http(), quick_config())
        .await
        .map_err(|e| e.to_string())?;
    let r = c.init(APPKEY, SECRET, 0).await.map_err(|e| e.to_string())?;
    if r.code() != 0 {
        return Err(format!("init {}", r.code()));
    }
    let _ = c.register(name, "pw").await;
    let r = c.login(name, "pw").await.map_err(|e| e.to_string())?;
    if r.code() != 0 {
        return Err(format!("login {}", r.code()));
    }
    Ok(c)
}

/// Whether the server answers: health, the long-lived client, and a new login.
async fn alive(s: &mut Server, watcher: &Client) -> String {
    if s.exited() {
        return "**exited**".into();
    }
    let h = match health(s.port, Duration::from_secs(5)).await {
        Ok(d) => format!("health {} ms", d.as_millis()),
        Err(e) => format!("health **{e}**"),
    };
    let t = Instant::now();
    let w = match watcher.request("get_conversations", json!({})).await {
        Ok(r) if r.code() == 0 => format!("client {} ms", t.elapsed().as_millis()),
        Ok(r) => format!("client code {}", r.code()),
        Err(e) => format!("client **{e}**"),
    };
    let n = match tokio::time::timeout(Duration::from_secs(10), login(s, "newcomer")).await {
        Ok(Ok(c)) => {
            c.disconnect();
            "new login ok".to_string()
        }
        Ok(Err(e)) => format!("new login **{e}**"),
        Err(_) => "new login **timeout**".into(),
    };
    format!("{h}; {w}; {n}")
}

/// A raw websocket after the Engine.IO open packet and the Socket.IO connect.
async fn raw(s: &Server) -> Result<(SplitSink<Ws, Message>, SplitStream<Ws>), String> {
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async_with_config(
            s.ws_url(),
            // No size limit on what the server sends: the probe measures it.
            Some(
                WebSocketConfig::default()
                    .max_message_size(None)
                    .max_frame_size(None),
            ),
            false,
        ),
    )
    .await
    .map_err(|_| "connect timeout".to_string())?
    .map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = ws.split();
    let _open = next_text(&mut rx, Duration::from_secs(5)).await;
    tx.send(Message::Text("40".into()))
        .await
        .map_err(|e| e.to_string())?;
    Ok((tx, rx))
}

async fn next_text(rx: &mut SplitStream<Ws>, limit: Duration) -> Option<String> {
    loop {
        match tokio::time::timeout(limit, rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

fn frame(event: &str, body: Value) -> String {
    format!("42{}", json!([event, body]))
}

fn init_body(rid: u64) -> Value {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
        .to_string();
    let rs = "01234567890123456789";
    json!({"rid": rid, "appkey": APPKEY, "random_str": rs, "timestamp": ts,
           "signature": signature(APPKEY, &ts, rs, SECRET), "flag": 0})
}

/// A raw websocket logged in as `name` (registered first).
async fn raw_login(
    s: &Server,
    name: &str,
) -> Result<(SplitSink<Ws, Message>, SplitStream<Ws>), String> {
    let (mut tx, mut rx) = raw(s).await?;
    let pw = md5_hex("pw");
    for f in [
        frame("c_init", init_body(1)),
        frame(
            "register",
            json!({"rid": 2, "username": name, "password": pw}),
        ),
        frame(
            "login",
            json!({"rid": 3, "username": name, "password": pw, "version": "2.5.0"}),
        ),
    ] {
        tx.send(Message::Text(f.into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match next_text(&mut rx, Duration::from_secs(5)).await {
            Some(t) if t.starts_with("42[\"login\"") => {
                return if t.contains("\"code\":0") {
                    Ok((tx, rx))
                } else {
                    Err(t)
                };
            }
            Some(_) => continue,
            None => break,
        }
    }
    Err("no login answer".into())
}

mod attacks;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let mut s = Server::start();
    let watcher = login(&s, "watcher").await.expect("the watcher logs in");
    let mut rows = Vec::new();
    println!(
        "server pid {} port {}, idle RSS {} kB",
        s.child.id(),
        s.port,
        s.rss_kb()
    );
    for attack in attacks::ALL {
        let before = s.rss_kb();
        let t = Instant::now();
        let (name, tried, happened) =
            match tokio::time::timeout(Duration::from_secs(300), attack(&s, scale)).await {
                Ok(r) => r,
                Err(_) => (
                    "(next attack)".into(),
                    "-".into(),
                    "**probe gave up after 300 s**".into(),
                ),
            };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let alive = alive(&mut s, &watcher).await;
        let row = Row {
            attack: name,
            tried,
            happened: format!("{happened} ({} s)", t.elapsed().as_secs()),
            alive,
            rss_before: before,
            rss_after: s.rss_kb(),
        };
        eprintln!("done: {} | {} | {}", row.attack, row.happened, row.alive);
        rows.push(row);
        if s.exited() {
            break;
        }
    }
    println!("\n| attack | tried | what happened | alive after | RSS before | RSS after |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.1} MB | {:.1} MB |",
            r.attack,
            r.tried,
            r.happened,
            r.alive,
            r.rss_before as f64 / 1024.0,
            r.rss_after as f64 / 1024.0
        );
    }
}
