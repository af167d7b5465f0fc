//! A websocket session's I/O: a writer task that writes the outbound queue in batches,
//! and the reader (the connection's own task), which also watches the heartbeat of a
//! session that began on the websocket.
//!
//! What an idle connection keeps is mostly these two tasks, so they are kept small:
//! the heartbeat is a timer in the reader instead of a third task; the websocket is split
//! before any of these futures exists and everything is passed by value (a future keeps
//! what it was given for its whole life: a websocket passed whole would stay in the
//! reader as a dead copy of ~400 bytes); a write in progress is boxed, so the idle
//! writer does not carry it. Reading and writing stay two tasks: each gets the
//! scheduler's fair share, so a client that floods requests cannot hold up its own
//! responses, and one that reads slowly cannot hold up its requests.

use super::session::{CloseReason, Engine, Outbound, OutboundRx, Socket, Watch};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;

pub(super) type WsSink = SplitSink<WebSocket, Message>;
pub(super) type WsStream = SplitStream<WebSocket>;

/// Most frames written between two flushes of a websocket.
const WRITE_BATCH: usize = 64;

/// Runs a session's websocket: starts its writer task and reads here until the session
/// ends (at once without its queue, `rx`). With [`Watch::Reader`] the session's
/// heartbeat is watched here too ([`Engine::check_heartbeat`]).
pub(super) async fn serve_websocket(
    engine: Arc<Engine>,
    socket: Arc<Socket>,
    sink: WsSink,
    stream: WsStream,
    rx: Option<OutboundRx>,
    watch: Watch,
) {
    let Some(rx) = rx else {
        return;
    };
    let limit = engine.config.write_timeout;
    tokio::spawn(write_loop(socket.clone(), sink, rx, limit));
    read_loop(&engine, &socket, stream, watch == Watch::Reader).await;
}

/// Reads a websocket's frames until the session ends; with `watch`, also drops the
/// session when its heartbeat stops.
async fn read_loop(engine: &Arc<Engine>, socket: &Arc<Socket>, mut stream: WsStream, watch: bool) {
    let beat = tokio::time::sleep_until(engine.ping_deadline(socket));
    tokio::pin!(beat);
    loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            _ = socket.cancel_token().cancelled() => return,
            _ = beat.as_mut(), if watch => {
                match engine.check_heartbeat(socket) {
                    Some(next) => beat.as_mut().reset(next),
                    None => return,
                }
                continue;
            }
        };
        if !on_read(engine, socket, msg) {
            return;
        }
    }
}

/// The one writer task of a websocket session: it writes every frame queued at its
/// wakeup (up to [`WRITE_BATCH`]) and flushes once. Each batch is bounded by
/// `write_timeout`: a client that stops reading cannot hold the writer (and its queue)
/// forever.
async fn write_loop(socket: Arc<Socket>, mut sink: WsSink, mut rx: OutboundRx, limit: Duration) {
    loop {
        // Queued frames first: a close always follows its `Close` item in the queue, so
        // the frames queued before it (e.g. a response closed `after`) are delivered
        // even when the close is abrupt.
        let item = tokio::select! {
            biased;
            item = rx.recv() => item,
            _ = socket.cancel_token().cancelled() => None,
        };
        let Some(first) = item else { break };
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH && !is_end(&batch[batch.len() - 1]) {
            match rx.try_recv() {
                Some(more) => batch.push(more),
                None => break,
            }
        }
        // Send first: frames queued before an abrupt close still go out when the
        // client reads; an abort only interrupts a write that is stuck. Boxed: the
        // write and its timer live only while a batch is written, not in the idle
        // writer task (hundreds of bytes per connection).
        let sent = tokio::select! {
            biased;
            r = Box::pin(tokio::time::timeout(limit, write_batch(&mut sink, batch))) => r,
            _ = socket.abort_token().cancelled() => break,
        };
        match sent {
            Ok(Ok(true)) => {}
            Ok(_) => break,
            Err(_) => {
                socket.slow_consumer(format!("write timeout {} ms", limit.as_millis()));
                break;
            }
        }
    }
    // Dropping the sink here (abrupt) closes the TCP connection without a close frame.
}

/// Handles what the websocket read; `false` once reading is over (the session ended).
fn on_read(
    engine: &Arc<Engine>,
    socket: &Arc<Socket>,
    msg: Option<Result<Message, axum::Error>>,
) -> bool {
    match msg {
        Some(Ok(Message::Text(t))) => engine.on_frame(socket, t.as_str()),
        Some(Ok(Message::Binary(_))) => {
            tracing::debug!(conn = socket.id, "binary websocket frame ignored");
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
        Some(Ok(Message::Close(_))) | None => {
            engine.close(socket, CloseReason::TransportClose, true);
            return false;
        }
        Some(Err(e)) => {
            let text = e.to_string();
            match close_code(e) {
                Some((code, reason)) => {
                    tracing::warn!(conn = socket.id, code, error = %text, "websocket message refused");
                    socket.close_with_code(code, reason);
                }
                None => engine.close(
                    socket,
                    CloseReason::ProtocolError(format!("websocket: {text}")),
                    true,
                ),
            }
            return false;
        }
    }
    true
}

/// True for an item after which nothing more is written.
fn is_end(item: &Outbound) -> bool {
    !matches!(item, Outbound::Frame(_))
}

/// Writes a batch and flushes once; `Ok(false)` when the batch ended the session.
async fn write_batch(sink: &mut WsSink, batch: Vec<Outbound>) -> Result<bool, axum::Error> {
    for item in batch {
        let msg = match item {
            Outbound::Frame(f) => Message::Text((&*f).into()),
            Outbound::Close { abrupt: false } => Message::Close(None),
            Outbound::CloseCode(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
            Outbound::Close { abrupt: true } => {
                sink.flush().await?;
                return Ok(false);
            }
        };
        let last = matches!(msg, Message::Close(_));
        sink.feed(msg).await?;
        if last {
            sink.flush().await?;
            return Ok(false);
        }
    }
    sink.flush().await?;
    Ok(true)
}

/// The RFC 6455 close code for a websocket read error, when one applies: 1009 for a
/// message over the size limit, 1007 for a text message that is not UTF-8.
fn close_code(e: axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = e.into_inner();
    match inner.downcast_ref::<WsError>()? {
        WsError::Capacity(_) => Some((1009, "message too big")),
        WsError::Utf8(_) => Some((1007, "invalid UTF-8")),
        _ => None,
    }
}
