//! The login storm's client: one task per login over a plain `TcpStream`, with a
//! hand-written websocket handshake and frame codec, so the generator spends far less
//! CPU per login than the general client ([`super::client::Conn`]: tokio-tungstenite,
//! a writer, a reader and a pinger task per connection) and the server's rate shows.
//!
//! The exchange on the wire is the SDK's and the same for every server: the websocket
//! upgrade of `/socket.io/?EIO=3&transport=websocket`, wait for the open packet and
//! `40`, then `c_init`, `login` and `sync_check` one after the other, each waiting for
//! its response (acks are skipped), then a websocket close. Client frames are masked as
//! RFC 6455 requires (with a zero key: the payload bytes are unchanged).

use super::client::{c_init_fields, md5_hex, scan_num, PASSWORD};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for any one step (connect, handshake, a response).
const STEP: Duration = Duration::from_secs(20);
/// Largest frame or HTTP head this client accepts.
const MAX_FRAME: usize = 1 << 20;

/// One websocket connection: the stream and the bytes read but not consumed yet.
pub struct Lean {
    tcp: TcpStream,
    buf: Vec<u8>,
}

async fn step<T>(
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out")),
    }
}

/// A websocket frame header for a masked client frame of `len` bytes (zero mask key).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = Vec::with_capacity(len + 14);
    f.push(0x80 | opcode);
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Splits one whole server frame off the front of `buf`: `(opcode, payload)`, or `None`
/// when more bytes are needed.
fn split_frame(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[0] & 0x80 == 0 || buf[1] & 0x80 != 0 {
        return Err("fragmented or masked server frame".into());
    }
    let (len, head) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if len > MAX_FRAME {
        return Err(format!("server frame of {len} bytes"));
    }
    Ok((buf.len() >= head + len).then_some((buf[0] & 0x0f, head, len)))
}

impl Lean {
    /// Connects and upgrades to a websocket (the accept key is not checked: both
    /// servers are ours to trust).
    pub async fn connect(port: u16) -> Result<Lean, String> {
        let tcp = step("connect", TcpStream::connect(("127.0.0.1", port))).await?;
        let _ = tcp.set_nodelay(true);
        let mut me = Lean {
            tcp,
            buf: Vec::with_capacity(1024),
        };
        let req = format!(
            "GET /socket.io/?EIO=3&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        step("handshake", me.tcp.write_all(req.as_bytes())).await?;
        let end = loop {
            if let Some(i) = me.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            me.fill().await?;
        };
        if !me.buf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&me.buf[..end]).into_owned();
            return Err(format!("upgrade refused: {head}"));
        }
        me.buf.drain(..end);
        Ok(me)
    }

    async fn fill(&mut self) -> Result<(), String> {
        if self.buf.len() > MAX_FRAME + 16 {
            return Err("too much unread input".into());
        }
        let n = step("read", self.tcp.read_buf(&mut self.buf)).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        Ok(())
    }

    /// The next text frame's payload (pings are not answered: a login takes ms).
    async fn next_text(&mut self) -> Result<String, String> {
        loop {
            if let Some((op, head, len)) = split_frame(&self.buf)? {
                let payload = self.buf[head..head + len].to_vec();
                self.buf.drain(..head + len);
                match op {
                    1 => return String::from_utf8(payload).map_err(|e| e.to_string()),
                    8 => return Err("closed by the server".into()),
                    _ => continue,
                }
            }
            self.fill().await?;
        }
    }

    async fn send_text(&mut self, text: &str) -> Result<(), String> {
        step(
            "write",
            self.tcp.write_all(&client_frame(1, text.as_bytes())),
        )
        .await
    }

    /// Waits for the Engine.IO open packet and the Socket.IO connect (`40`).
    async fn opened(&mut self) -> Result<(), String> {
        loop {
            let t = self.next_text().await?;
            if t.starts_with("40") {
                return Ok(());
            }
        }
    }

    /// Sends a request and waits for its response (acks and pushes are skipped); Err
    /// unless its `code` is 0.
    async fn call(&mut self, event: &str, fields: &str) -> Result<(), String> {
        static NEXT: AtomicU64 = AtomicU64::new(1_000_000_000);
        let rid = NEXT.fetch_add(1, Ordering::Relaxed) % 2_147_483_647 + 1;
        self.send_text(&format!("42[\"{event}\",{{{fields},\"rid\":{rid}}}]"))
            .await?;
        loop {
            let t = self.next_text().await?;
            if !t.starts_with("42[") || t.starts_with("42[\"ack\"") {
                continue;
            }
            if scan_num(&t, "\"rid\":") != Some(rid) {
                continue;
            }
            return match scan_num(&t, "\"code\":") {
                Some(0) | None => Ok(()),
                Some(c) => Err(format!("{event}: code {c}: {t}")),
            };
        }
    }

    /// Sends a websocket close (1000) and reads until the server closes the
    /// connection (bounded).
    pub async fn close(mut self) {
        let _ = self
            .tcp
            .write_all(&client_frame(8, &1000u16.to_be_bytes()))
            .await;
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(STEP, async {
            while matches!(self.tcp.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// One login as the SDK does it: connect, wait for `40`, `c_init` with a fresh
/// signature, `login`, `sync_check`. Returns the open connection.
pub async fn login(port: u16, name: &str) -> Result<Lean, String> {
    let mut c = Lean::connect(port).await?;
    c.opened().await?;
    c.call("c_init", &c_init_fields()).await?;
    c.call(
        "login",
        &format!(
            "\"username\":\"{name}\",\"password\":\"{}\",\"version\":\"2.5.0\"",
            md5_hex(PASSWORD)
        ),
    )
    .await?;
    c.call(
        "sync_check",
        "\"sync_key\":0,\"sync_type\":0,\"sync_event_key\":0,\"msg_receipt_key\":0",
    )
    .await?;
    Ok(c)
}
