//! The HTTP side of the transport: `GET`/`POST`/`OPTIONS /socket.io/` for long-polling,
//! the websocket upgrade (fresh or from polling), CORS, and Engine.IO's HTTP errors.

use super::engineio::{self, PacketType};
use super::session::{CloseReason, Engine, Outbound, OutboundRx, Socket, TransportKind, Watch};
use super::websocket::{serve_websocket, WsSink, WsStream};
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::future::Either;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Engine.IO's HTTP error codes (sent as `{"code":N,"message":...}` with status 400).
#[derive(Debug, Clone, Copy)]
pub enum EioHttpError {
    UnknownTransport = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    UnsupportedProtocolVersion = 5,
}

impl EioHttpError {
    fn message(self) -> &'static str {
        match self {
            Self::UnknownTransport => "Transport unknown",
            Self::UnknownSid => "Session ID unknown",
            Self::BadHandshakeMethod => "Bad handshake method",
            Self::BadRequest => "Bad request",
            Self::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }
}

/// Routes for `/socket.io/` (with and without the trailing slash).
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route(
            "/socket.io/",
            get(handle_get).post(handle_post).options(handle_options),
        )
        .route(
            "/socket.io",
            get(handle_get).post(handle_post).options(handle_options),
        )
        .with_state(engine)
}

fn cors(headers: &HeaderMap, resp: &mut Response) {
    let h = resp.headers_mut();
    match headers.get(header::ORIGIN) {
        Some(origin) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
}

fn eio_error(headers: &HeaderMap, err: EioHttpError) -> Response {
    let body = serde_json::json!({"code": err as u8, "message": err.message()}).to_string();
    let mut resp = (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    cors(headers, &mut resp);
    resp
}

fn text_response(headers: &HeaderMap, status: StatusCode, body: String) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body,
    )
        .into_response();
    cors(headers, &mut resp);
    resp
}

async fn handle_options(headers: HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    cors(&headers, &mut resp);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let allow = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Content-Type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
    resp
}

/// Checks `EIO` and `transport`; returns the transport or the error to send.
fn check_query(q: &HashMap<String, String>) -> Result<TransportKind, EioHttpError> {
    match q.get("EIO").map(String::as_str) {
        Some("3") => {}
        _ => return Err(EioHttpError::UnsupportedProtocolVersion),
    }
    if q.contains_key("j") {
        // JSONP polling: no client of this server uses it (protocol.md 1.6).
        return Err(EioHttpError::BadRequest);
    }
    match q.get("transport").map(String::as_str) {
        Some("polling") => Ok(TransportKind::Polling),
        Some("websocket") => Ok(TransportKind::Websocket),
        _ => Err(EioHttpError::UnknownTransport),
    }
}

async fn handle_get(
    State(engine): State<Arc<Engine>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let transport = match check_query(&q) {
        Ok(t) => t,
        Err(e) => return eio_error(&headers, e),
    };
    let sid = q.get("sid").cloned();
    if !engine.accepts(transport, sid.is_some()) {
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, "refused by a fault rule").into_response();
        cors(&headers, &mut resp);
        return resp;
    }
    match transport {
        TransportKind::Websocket => {
            let Ok(ws) = ws else {
                return eio_error(&headers, EioHttpError::BadRequest);
            };
            let upgrade_of = match sid {
                Some(sid) => match engine.get(&sid) {
                    Some(s) if s.transport() == TransportKind::Polling => Some(s),
                    _ => return eio_error(&headers, EioHttpError::UnknownSid),
                },
                None => None,
            };
            let max = engine.config.max_payload;
            // A 512-byte read buffer instead of tungstenite's 128 KiB: an idle websocket
            // costs a fraction of the memory, and larger messages still arrive (the
            // buffer grows to hold one, up to max_message_size; reads take at most
            // 512 bytes, about one SDK request, per call: 1 KiB cost 0.4 KiB more per
            // idle connection for no measurable CPU per text, docs/performance.md).
            ws.max_message_size(max)
                .max_frame_size(max)
                .read_buffer_size(WS_READ_BUFFER)
                .on_upgrade(move |ws| {
                    // Split before any future of ours exists: a future keeps what it
                    // was given for its whole life, and the websocket itself (~400
                    // bytes) lives on in the halves' shared state.
                    let (sink, stream) = ws.split();
                    match upgrade_of {
                        None => Either::Left(run_websocket(engine, sink, stream, remote)),
                        // Boxed: the probe exchange's state (its timers and the
                        // handshake) would otherwise size every websocket's task.
                        Some(s) => Either::Right(Box::pin(run_upgrade(engine, s, sink, stream))),
                    }
                })
        }
        TransportKind::Polling => {
            let socket = match sid {
                None => engine.open(TransportKind::Polling, Some(remote)),
                Some(sid) => match engine.get(&sid) {
                    Some(s) => s,
                    None => return eio_error(&headers, EioHttpError::UnknownSid),
                },
            };
            poll(&engine, &socket, &headers).await
        }
    }
}

/// Read buffer of a websocket connection.
const WS_READ_BUFFER: usize = 512;

/// How long a polling GET waits for an earlier GET to give the queue back.
const OVERLAP_GRACE: Duration = Duration::from_millis(500);

/// A long-polling GET: waits for queued frames (or holds, then answers `noop`).
async fn poll(engine: &Arc<Engine>, socket: &Arc<Socket>, headers: &HeaderMap) -> Response {
    if socket.transport() != TransportKind::Polling {
        return eio_error(headers, EioHttpError::BadRequest);
    }
    // A GET the client aborted may not have been noticed yet: give it a moment to
    // return the queue before calling this an overlap.
    let Some(rx) = socket.take_rx_wait(OVERLAP_GRACE).await else {
        // Two GETs at once: engine.io treats this as a broken client.
        engine.close(
            socket,
            CloseReason::ProtocolError("overlapping GET".into()),
            true,
        );
        return eio_error(headers, EioHttpError::BadRequest);
    };
    // A client that aborts the GET drops this future: the guard gives the queue back so
    // the session survives for the next GET (receiving is cancel-safe: nothing is lost).
    let mut guard = RxGuard {
        socket,
        rx: Some(rx),
    };
    let Some(rx) = guard.rx.as_mut() else {
        return eio_error(headers, EioHttpError::BadRequest);
    };
    let mut frames: Vec<Arc<str>> = Vec::new();
    let mut closing = false;
    let first = tokio::select! {
        item = rx.recv() => item,
        _ = socket.cancel_token().cancelled() => None,
        _ = tokio::time::sleep(engine.config.poll_hold) => Some(Outbound::Frame("6".into())),
    };
    let mut next = first;
    loop {
        match next {
            Some(Outbound::Frame(f)) => frames.push(f),
            Some(Outbound::Close { .. } | Outbound::CloseCode(..)) | None => {
                closing = true;
                break;
            }
        }
        match rx.try_recv() {
            Some(item) => next = Some(item),
            None => break,
        }
    }
    drop(guard);
    if closing {
        frames.push(engineio::encode_packet(PacketType::Close, "").into());
    }
    text_response(headers, StatusCode::OK, engineio::encode_payload(&frames))
}

/// Returns a session's outbound queue when the polling GET holding it ends, however it
/// ends.
struct RxGuard<'a> {
    socket: &'a Arc<Socket>,
    rx: Option<OutboundRx>,
}

impl Drop for RxGuard<'_> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            self.socket.put_rx(rx);
        }
    }
}

/// Reads a POST body: at most `max_payload + 1` bytes within `body_timeout` (a client
/// that drips its body is cut off). `Err` is the response to send.
async fn read_body(engine: &Engine, body: Body) -> Result<Bytes, StatusCode> {
    let limit = engine.config.max_payload.saturating_add(1);
    match tokio::time::timeout(
        engine.config.body_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
        Ok(Err(_)) => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Ok(Ok(b)) => Ok(b),
    }
}

async fn handle_post(
    State(engine): State<Arc<Engine>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    method: Method,
    body: Body,
) -> Response {
    match check_query(&q) {
        Ok(TransportKind::Polling) => {}
        Ok(TransportKind::Websocket) => return eio_error(&headers, EioHttpError::BadRequest),
        Err(e) => return eio_error(&headers, e),
    }
    let Some(sid) = q.get("sid") else {
        return eio_error(&headers, EioHttpError::BadHandshakeMethod);
    };
    let Some(socket) = engine.get(sid) else {
        return eio_error(&headers, EioHttpError::UnknownSid);
    };
    debug_assert_eq!(method, Method::POST);
    let body = match read_body(&engine, body).await {
        Ok(b) if b.len() <= engine.config.max_payload => b,
        other => {
            let status = other.err().unwrap_or(StatusCode::PAYLOAD_TOO_LARGE);
            let why = status.canonical_reason().unwrap_or("bad body");
            tracing::warn!(
                conn = socket.id,
                status = status.as_u16(),
                "polling POST refused: {why}"
            );
            engine.close(&socket, CloseReason::ProtocolError(why.into()), false);
            let mut resp = (status, Body::empty()).into_response();
            cors(&headers, &mut resp);
            return resp;
        }
    };
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => return eio_error(&headers, EioHttpError::BadRequest),
    };
    match engineio::decode_payload(text) {
        Ok(packets) => {
            for p in packets {
                engine.on_frame(&socket, &p);
            }
        }
        Err(e) => {
            tracing::warn!(conn = socket.id, error = %e, "bad polling payload");
            engine.close(&socket, CloseReason::ProtocolError(e.to_string()), false);
            return eio_error(&headers, EioHttpError::BadRequest);
        }
    }
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html")],
        "ok".to_string(),
    )
        .into_response();
    cors(&headers, &mut resp);
    resp
}

/// A session that starts on a websocket. Its reader watches the heartbeat: the
/// session needs no heartbeat task.
/// Opens it now; the future returned serves it.
fn run_websocket(
    engine: Arc<Engine>,
    sink: WsSink,
    stream: WsStream,
    remote: SocketAddr,
) -> impl Future<Output = ()> + Send {
    let socket = engine.open_watched(TransportKind::Websocket, Some(remote), Watch::Reader);
    let rx = socket.take_rx();
    serve_websocket(engine, socket, sink, stream, rx, Watch::Reader)
}

/// A websocket that upgrades an existing polling session (`2probe`/`3probe`/`5`).
async fn run_upgrade(
    engine: Arc<Engine>,
    socket: Arc<Socket>,
    mut sink: WsSink,
    mut stream: WsStream,
) {
    if !socket.begin_upgrade() {
        return;
    }
    // The whole probe exchange is bounded: a client that never finishes it is dropped.
    let probe = async {
        loop {
            let Message::Text(text) = stream.next().await?.ok()? else {
                continue;
            };
            match text.as_str() {
                "2probe" => {
                    sink.send(Message::Text("3probe".into())).await.ok()?;
                    // Release the pending GET so the client can pause polling.
                    socket.send_frame(engineio::encode_packet(PacketType::Noop, "").into());
                }
                "5" => return Some(()),
                _ => return None,
            }
        }
    };
    let upgraded = matches!(
        tokio::time::timeout(engine.config.handshake_timeout, probe).await,
        Ok(Some(()))
    );
    if !upgraded {
        socket.finish_upgrade(false);
        return;
    }
    socket.finish_upgrade(true);
    let Some(rx) = socket.take_rx_wait(Duration::from_secs(5)).await else {
        engine.close(
            &socket,
            CloseReason::ProtocolError("upgrade stalled".into()),
            true,
        );
        return;
    };
    // The session began on polling: its heartbeat task goes on watching it.
    serve_websocket(engine, socket, sink, stream, Some(rx), Watch::Task).await;
}
