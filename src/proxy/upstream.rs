//! The proxy's side towards the real server: the upstream address, and one Engine.IO 3
//! websocket session per client session (over TLS with verified certificates for
//! `wss://`), which the proxy keeps alive with its own pings (so a fault on the client's
//! side never starves the upstream's heartbeat).

use crate::transport::engineio::{self, PacketType};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Most frames waiting to go upstream for one session (a client sending faster than
/// the upstream reads loses its session rather than growing memory).
pub const MAX_PENDING_FRAMES: usize = 4096;

/// Largest websocket message accepted from the upstream (a larger one ends the upstream
/// session, and with it the client's).
pub const MAX_UPSTREAM_MESSAGE: usize = 16 * 1024 * 1024;

/// Where the proxy forwards to, parsed from `--upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `wss://` / `https://`: TLS, certificates verified against the Mozilla roots.
    pub tls: bool,
    /// The host name (for TLS: the name the certificate must carry).
    pub host: String,
    /// `host:port` (port 80, or 443 with TLS, when the URL names none).
    pub hostport: String,
    /// Path prefix before `/socket.io/` and `/resource` (empty or starting with `/`,
    /// without a trailing `/`).
    pub prefix: String,
    /// The URL as given, for log lines and errors.
    pub url: String,
}

/// Why an upstream URL or session failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {0:?}: expected ws[s]://host[:port][/path] or http[s]://host[:port][/path]")]
    BadUrl(String),
    #[error("upstream {url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("upstream {url} handshake failed: {reason}")]
    Handshake { url: String, reason: String },
}

impl Upstream {
    /// Parses `ws://`, `http://` (the same server), `wss://` and `https://` (TLS).
    pub fn parse(url: &str) -> Result<Self, UpstreamError> {
        let bad = || UpstreamError::BadUrl(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => return Err(bad()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(bad());
        }
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let (host, hostport) = if has_port {
            let i = authority.rfind(':').unwrap_or(authority.len());
            (authority[..i].to_owned(), authority.to_owned())
        } else {
            let port = if tls { 443 } else { 80 };
            (authority.to_owned(), format!("{authority}:{port}"))
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let prefix = path.trim_end_matches('/').to_owned();
        Ok(Self {
            tls,
            host,
            hostport,
            prefix,
            url: url.to_owned(),
        })
    }

    fn socket_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}/socket.io/?EIO=3&transport=websocket",
            self.hostport, self.prefix
        )
    }
}

/// One open upstream session: frames from the upstream on `inbound` (the open packet
/// and the pongs to the proxy's own pings already consumed), frames to it on
/// `outbound`.
pub struct UpLink {
    pub inbound: mpsc::UnboundedReceiver<String>,
    pub outbound: mpsc::UnboundedSender<String>,
    /// Cancelled when the upstream connection is gone (or to close it).
    pub closed: CancellationToken,
}

/// Opens an upstream session within `limit`.
pub async fn connect(up: &Upstream, limit: Duration) -> Result<UpLink, UpstreamError> {
    let unreachable = |reason: String| UpstreamError::Unreachable {
        url: up.url.clone(),
        reason,
    };
    let handshake = |reason: String| UpstreamError::Handshake {
        url: up.url.clone(),
        reason,
    };
    let ws_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_UPSTREAM_MESSAGE))
        .max_frame_size(Some(MAX_UPSTREAM_MESSAGE));
    let fut = tokio_tungstenite::connect_async_with_config(up.socket_url(), Some(ws_config), true);
    let (ws, _) = tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| unreachable(format!("no connection within {limit:?}")))?
        .map_err(|e| {
            use tokio_tungstenite::tungstenite::Error;
            match e {
                Error::Tls(e) => unreachable(format!("TLS: {e}")),
                // rustls reports handshake and certificate failures as invalid data.
                Error::Io(e) if up.tls && e.kind() == std::io::ErrorKind::InvalidData => {
                    unreachable(format!("TLS: {e}"))
                }
                e => unreachable(e.to_string()),
            }
        })?;
    let (sink, mut stream) = ws.split();
    let first = tokio::time::timeout(limit, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("closed before the open packet".to_owned()),
            }
        }
    })
    .await
    .map_err(|_| handshake(format!("no open packet within {limit:?}")))?
    .map_err(handshake)?;
    let ping_interval = open_ping_interval(&first).map_err(handshake)?;
    let (in_tx, inbound) = mpsc::unbounded_channel();
    let (outbound, out_rx) = mpsc::unbounded_channel::<String>();
    let closed = CancellationToken::new();
    tokio::spawn(write_loop(sink, out_rx, closed.clone()));
    tokio::spawn(read_loop(stream, in_tx, closed.clone()));
    tokio::spawn(ping_loop(outbound.clone(), ping_interval, closed.clone()));
    Ok(UpLink {
        inbound,
        outbound,
        closed,
    })
}

/// The `pingInterval` of an Engine.IO open packet.
fn open_ping_interval(frame: &str) -> Result<Duration, String> {
    let p = engineio::decode_packet(frame).map_err(|e| e.to_string())?;
    if p.kind != PacketType::Open {
        return Err(format!("expected an open packet, got {frame:?}"));
    }
    let v: Value = serde_json::from_str(p.data).map_err(|e| e.to_string())?;
    let ms = v
        .get("pingInterval")
        .and_then(Value::as_u64)
        .unwrap_or(25_000);
    Ok(Duration::from_millis(ms.clamp(100, 600_000)))
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;
type Stream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

async fn write_loop(
    mut sink: Sink,
    mut rx: mpsc::UnboundedReceiver<String>,
    closed: CancellationToken,
) {
    loop {
        let item = tokio::select! {
            item = rx.recv() => item,
            _ = closed.cancelled() => None,
        };
        let Some(frame) = item else { break };
        let send = sink.send(Message::Text(frame.into()));
        match tokio::time::timeout(Duration::from_secs(10), send).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
    closed.cancel();
}

async fn read_loop(
    mut stream: Stream,
    tx: mpsc::UnboundedSender<String>,
    closed: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = closed.cancelled() => break,
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                // Our own pings' answers stay on this side.
                if t.as_str() == "3" {
                    continue;
                }
                if tx.send(t.to_string()).is_err() {
                    break;
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    closed.cancel();
}

async fn ping_loop(tx: mpsc::UnboundedSender<String>, every: Duration, closed: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = closed.cancelled() => return,
        }
        if tx.send("2".to_owned()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_tls() {
        let u = Upstream::parse("ws://127.0.0.1:9000").expect("ok");
        assert_eq!(
            (u.hostport.as_str(), u.prefix.as_str()),
            ("127.0.0.1:9000", "")
        );
        let u = Upstream::parse("http://im.example/base/").expect("ok");
        assert_eq!(
            (u.hostport.as_str(), u.prefix.as_str()),
            ("im.example:80", "/base")
        );
        let u = Upstream::parse("ws://[::1]").expect("ok");
        assert_eq!((u.hostport.as_str(), u.host.as_str()), ("[::1]:80", "::1"));
        let u = Upstream::parse("wss://im.example/").expect("ok");
        assert!(u.tls);
        assert_eq!(
            (u.hostport.as_str(), u.host.as_str()),
            ("im.example:443", "im.example")
        );
        assert_eq!(
            u.socket_url(),
            "wss://im.example:443/socket.io/?EIO=3&transport=websocket"
        );
        for bad in ["im.example", "ftp://x", "ws://", "ws://u@h", "ws://h/?q"] {
            assert!(
                matches!(Upstream::parse(bad), Err(UpstreamError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
