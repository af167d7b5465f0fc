//! A websocket session's I/O, on one task: it reads inbound frames, writes the outbound
//! queue in batches, and (for a session that began on the websocket) watches the
//! heartbeat.
//!
//! One task instead of a reader, a writer and a heartbeat task: every task is a
//! separate allocation of a few hundred bytes that an idle connection keeps for its whole
//! life. The two directions still go on independently: the task waits on whichever is
//! ready (picked at random when both are, so neither starves the other), a write in
//! progress is a boxed future kept across waits, and the write side ends on its own
//! terms (a close written, a failed or stuck write, an abort), as before.

use super::session::{CloseReason, Engine, Outbound, OutboundRx, Socket, Watch};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub(super) type WsSink = SplitSink<WebSocket, Message>;
pub(super) type WsStream = SplitStream<WebSocket>;

/// Most frames written between two flushes of a websocket.
const WRITE_BATCH: usize = 64;

/// The write side of a websocket session.
enum Writer {
    /// Waiting for queued frames.
    Idle(WsSink),
    /// Writing a batch. Boxed: the write and its timer exist only while a batch is
    /// written, not in every idle session.
    Writing(Pin<Box<dyn Future<Output = Written> + Send>>),
    /// Nothing more is written: the close went out, a write failed or took too long,
    /// the session was aborted, or it ended with nothing queued.
    Done,
}

/// How a batch write ended.
enum Written {
    /// Written and flushed; the session goes on.
    More(WsSink),
    /// The batch ended the session, a write failed, or an abort interrupted it.
    End,
    /// The batch took longer than the write timeout.
    TimedOut,
}

impl Writer {
    /// Starts writing `first` and what is queued behind it (up to [`WRITE_BATCH`]);
    /// `None` (the queue is gone or empty at the close) ends the write side.
    fn start(
        self,
        socket: &Arc<Socket>,
        first: Option<Outbound>,
        rx: &mut OutboundRx,
        limit: Duration,
    ) -> Writer {
        let (Writer::Idle(mut sink), Some(first)) = (self, first) else {
            return Writer::Done;
        };
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH && !is_end(&batch[batch.len() - 1]) {
            match rx.try_recv() {
                Some(more) => batch.push(more),
                None => break,
            }
        }
        let socket = socket.clone();
        Writer::Writing(Box::pin(async move {
            // Send first: frames queued before an abrupt close still go out when the
            // client reads; an abort only interrupts a write that is stuck.
            tokio::select! {
                biased;
                r = tokio::time::timeout(limit, write_batch(&mut sink, batch)) => match r {
                    Ok(Ok(true)) => Written::More(sink),
                    Ok(_) => Written::End,
                    Err(_) => Written::TimedOut,
                },
                _ = socket.abort_token().cancelled() => Written::End,
            }
        }))
    }

    /// Resolves when the batch in progress is written (never, when none is).
    async fn written(&mut self) -> Written {
        match self {
            Writer::Writing(w) => w.as_mut().await,
            _ => std::future::pending().await,
        }
    }
}

/// Runs a session's websocket until both directions end (at once without its queue,
/// `rx`). With [`Watch::Reader`] the session's heartbeat is watched here
/// ([`Engine::check_heartbeat`]). Everything is passed by value: this future is most of
/// an idle connection's task.
pub(super) async fn serve_websocket(
    engine: Arc<Engine>,
    socket: Arc<Socket>,
    sink: WsSink,
    mut stream: WsStream,
    rx: Option<OutboundRx>,
    watch: Watch,
) {
    let Some(mut rx) = rx else {
        return;
    };
    let (engine, socket) = (&engine, &socket);
    let limit = engine.config.write_timeout;
    let watch = watch == Watch::Reader;
    let beat = tokio::time::sleep_until(engine.ping_deadline(socket));
    tokio::pin!(beat);
    let mut writer = Writer::Idle(sink);
    let mut reading = true;
    while reading || !matches!(writer, Writer::Done) {
        let idle = matches!(writer, Writer::Idle(_));
        let writing = matches!(writer, Writer::Writing(_));
        tokio::select! {
            msg = stream.next(), if reading => reading = on_read(engine, socket, msg),
            _ = beat.as_mut(), if reading && watch => match engine.check_heartbeat(socket) {
                Some(next) => beat.as_mut().reset(next),
                None => reading = false,
            },
            item = rx.recv(), if idle => {
                writer = std::mem::replace(&mut writer, Writer::Done).start(socket, item, &mut rx, limit);
            }
            done = writer.written(), if writing => {
                writer = match done {
                    Written::More(sink) => Writer::Idle(sink),
                    Written::End => Writer::Done,
                    Written::TimedOut => {
                        socket.slow_consumer(format!("write timeout {} ms", limit.as_millis()));
                        Writer::Done
                    }
                };
            }
            _ = socket.cancel_token().cancelled(), if reading || idle => {
                reading = false;
                if idle {
                    // Queued frames first: a close always follows its `Close` item in the
                    // queue, so the frames queued before it (e.g. a response closed
                    // `after`) are delivered even when the close is abrupt.
                    let next = rx.try_recv();
                    writer = std::mem::replace(&mut writer, Writer::Done).start(socket, next, &mut rx, limit);
                }
            }
        }
    }
    // Dropping the websocket here (abrupt) closes the TCP connection without a close
    // frame.
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
