//! The client side of Engine.IO 3: a websocket or long-polling connection that yields
//! inbound Engine.IO frames and accepts outbound ones. Used by [`super::Client`].

use crate::transport::engineio::{self, PacketType};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Which transport the client uses: the transport layer's [`TransportKind`], under the
/// name the client's API has always used.
pub use crate::transport::TransportKind as Transport;

/// Failure to connect or talk.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("http {0}: {1}")]
    Http(u16, String),
}

/// Handshake data from the open packet.
#[derive(Debug, Clone)]
pub struct OpenInfo {
    pub sid: String,
    pub upgrades: Vec<String>,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
}

fn parse_open(frame: &str) -> Result<OpenInfo, TransportError> {
    let p = engineio::decode_packet(frame).map_err(|e| TransportError::Handshake(e.to_string()))?;
    if p.kind != PacketType::Open {
        return Err(TransportError::Handshake(format!(
            "expected open packet, got {frame:?}"
        )));
    }
    let v: Value =
        serde_json::from_str(p.data).map_err(|e| TransportError::Handshake(e.to_string()))?;
    let ms = |k: &str| Duration::from_millis(v.get(k).and_then(Value::as_u64).unwrap_or(25_000));
    Ok(OpenInfo {
        sid: v
            .get("sid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        upgrades: v
            .get("upgrades")
            .and_then(Value::as_array)
            .ok_or_else(|| TransportError::Handshake("open packet has no upgrades array".into()))?
            .iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect(),
        ping_interval: ms("pingInterval"),
        ping_timeout: ms("pingTimeout"),
    })
}

/// A live connection: frames in via `inbound`, frames out via `outbound`.
pub struct Connection {
    pub open: OpenInfo,
    pub inbound: mpsc::UnboundedReceiver<String>,
    pub outbound: mpsc::UnboundedSender<Outgoing>,
    pub closed: CancellationToken,
}

/// What the client asks its transport to do.
#[derive(Debug)]
pub enum Outgoing {
    Frame(String),
    /// Close: cleanly (websocket close frame) or abruptly (drop the TCP connection).
    Close {
        abrupt: bool,
    },
}

/// Connects to `http://host:port` (the path is ignored; Engine.IO lives at `/socket.io/`).
pub async fn connect(
    base: &str,
    transport: Transport,
    limit: Duration,
) -> Result<Connection, TransportError> {
    let hostport = base
        .trim_start_matches("http://")
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let fut = async {
        match transport {
            Transport::Websocket => connect_ws(&hostport).await,
            Transport::Polling => connect_polling(&hostport).await,
        }
    };
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| TransportError::Connect("timed out".into()))?
}

async fn connect_ws(hostport: &str) -> Result<Connection, TransportError> {
    let url = format!("ws://{hostport}/socket.io/?EIO=3&transport=websocket");
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .map_err(|e| TransportError::Connect(e.to_string()))?;
    let (mut sink, mut stream) = ws.split();
    let first = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => break t.to_string(),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(TransportError::Handshake(e.to_string())),
            None => {
                return Err(TransportError::Handshake(
                    "closed before open packet".into(),
                ))
            }
        }
    };
    let open = parse_open(&first)?;
    let (in_tx, inbound) = mpsc::unbounded_channel();
    let (outbound, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
    let closed = CancellationToken::new();
    let c1 = closed.clone();
    tokio::spawn(async move {
        loop {
            let item = tokio::select! {
                item = out_rx.recv() => item,
                _ = c1.cancelled() => None,
            };
            match item {
                Some(Outgoing::Frame(f)) => {
                    if sink.send(Message::Text(f.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close { abrupt: false }) => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                Some(Outgoing::Close { abrupt: true }) | None => break,
            }
        }
        c1.cancel();
    });
    let c2 = closed.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                _ = c2.cancelled() => break,
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    if in_tx.send(t.to_string()).is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        c2.cancel();
    });
    Ok(Connection {
        open,
        inbound,
        outbound,
        closed,
    })
}

/// One HTTP/1.1 request on a fresh loopback connection.
async fn http(
    hostport: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), TransportError> {
    let stream = TcpStream::connect(hostport)
        .await
        .map_err(|e| TransportError::Connect(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| TransportError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", hostport);
    if body.is_some() {
        req = req.header("content-type", "text/plain;charset=UTF-8");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| TransportError::Connect(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| TransportError::Connect(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| TransportError::Connect(e.to_string()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

async fn connect_polling(hostport: &str) -> Result<Connection, TransportError> {
    let (status, body) = http(
        hostport,
        "GET",
        "/socket.io/?EIO=3&transport=polling&t=h",
        None,
    )
    .await?;
    if status != 200 {
        return Err(TransportError::Http(status, body));
    }
    let packets =
        engineio::decode_payload(&body).map_err(|e| TransportError::Handshake(e.to_string()))?;
    let first = packets
        .first()
        .ok_or_else(|| TransportError::Handshake("empty handshake payload".into()))?;
    let open = parse_open(first)?;
    let (in_tx, inbound) = mpsc::unbounded_channel();
    for p in packets.into_iter().skip(1) {
        let _ = in_tx.send(p);
    }
    let (outbound, out_rx) = mpsc::unbounded_channel::<Outgoing>();
    let closed = CancellationToken::new();
    let path = format!("/socket.io/?EIO=3&transport=polling&sid={}", open.sid);
    // Reader: one GET at a time; writer: batches whatever is queued into one POST.
    tokio::spawn(poll_reader(
        hostport.to_owned(),
        path.clone(),
        in_tx,
        closed.clone(),
    ));
    tokio::spawn(poll_writer(
        hostport.to_owned(),
        path,
        out_rx,
        closed.clone(),
    ));
    Ok(Connection {
        open,
        inbound,
        outbound,
        closed,
    })
}

/// The polling reader: one GET at a time, each packet to `in_tx`, until a close packet,
/// an error or `closed`.
async fn poll_reader(
    hostport: String,
    path: String,
    in_tx: mpsc::UnboundedSender<String>,
    closed: CancellationToken,
) {
    let hostport = hostport.as_str();
    let mut n = 0u64;
    loop {
        n += 1;
        let url = format!("{path}&t=g{n}");
        let get = http(hostport, "GET", &url, None);
        let result = tokio::select! {
            r = get => r,
            _ = closed.cancelled() => break,
        };
        let Ok((200, body)) = result else { break };
        let Ok(packets) = engineio::decode_payload(&body) else {
            break;
        };
        let mut done = false;
        for p in packets {
            if p.starts_with('1') {
                done = true;
            }
            let _ = in_tx.send(p);
        }
        if done {
            break;
        }
    }
    closed.cancel();
}

/// The polling writer: batches whatever is queued into one POST, until a close or an error.
async fn poll_writer(
    hostport: String,
    path: String,
    mut out_rx: mpsc::UnboundedReceiver<Outgoing>,
    closed: CancellationToken,
) {
    let hostport = hostport.as_str();
    let mut n = 0u64;
    loop {
        let first = tokio::select! {
            item = out_rx.recv() => item,
            _ = closed.cancelled() => None,
        };
        let mut frames = Vec::new();
        let mut close = None;
        let mut next = first;
        loop {
            match next {
                Some(Outgoing::Frame(f)) => frames.push(f),
                Some(Outgoing::Close { abrupt }) => {
                    close = Some(abrupt);
                    break;
                }
                None => {
                    close = Some(true);
                    break;
                }
            }
            match out_rx.try_recv() {
                Ok(item) => next = Some(item),
                Err(_) => break,
            }
        }
        if close == Some(false) {
            frames.push("1".into());
        }
        if !frames.is_empty() {
            n += 1;
            let body = engineio::encode_payload(&frames);
            if http(hostport, "POST", &format!("{path}&t=p{n}"), Some(body))
                .await
                .is_err()
            {
                break;
            }
        }
        if close.is_some() {
            break;
        }
    }
    closed.cancel();
}
