//! The client-facing [`SocketHandler`]: every client session gets one upstream session;
//! Socket.IO messages go up untouched, frames from the upstream come down through the
//! client socket's [`Socket::send_tagged`], so the fault layer sees them labelled as
//! acks, responses and pushes exactly as the mock server's own frames.

use super::record::Recorder;
use super::upstream::{self, UpLink, Upstream, MAX_PENDING_FRAMES};
use crate::lock::lock;
use crate::protocol::Rid;
use crate::transport::socketio::{self, SioPacket};
use crate::transport::{CloseReason, Engine, FrameKind, FrameTag, Socket, SocketHandler};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Requests whose acks and responses are still expected, per session (the oldest is
/// forgotten beyond this; its answer is then tagged with no event).
const MAX_OPEN_REQUESTS: usize = 1024;

/// One client session's way up, and what it has asked.
struct Link {
    up: mpsc::Sender<String>,
    /// rid key → request event, to tag the acks and responses coming back.
    open: HashMap<Arc<str>, Arc<str>>,
    order: std::collections::VecDeque<Arc<str>>,
    /// The username of the last `login` sent, until its answer arrives.
    login: Option<String>,
}

/// Forwards client sessions to the upstream.
pub struct Forwarder {
    upstream: Upstream,
    connect_timeout: Duration,
    engine: OnceLock<Weak<Engine>>,
    links: Mutex<HashMap<u64, Link>>,
    me: Weak<Forwarder>,
    recorder: Option<Arc<Recorder>>,
    media: MediaUrls,
}

/// Rewrites the media URLs the upstream hands out (`get_resource`) so that they point at
/// the proxy, whose `/media/` route forwards them: a client that reaches only the proxy
/// can still download, and the download crosses the proxy like the upload did. URLs on
/// any other origin (a real service's CDN) are left as they are.
struct MediaUrls {
    /// The upstream's HTTP origins + prefix + `/media/`, with and without a default port.
    upstream: Vec<String>,
    /// `http://host:port/media/` of the proxy.
    proxy: String,
}

impl MediaUrls {
    fn new(up: &Upstream, proxy_origin: &str) -> Self {
        let scheme = if up.tls { "https" } else { "http" };
        let default_port = if up.tls { ":443" } else { ":80" };
        let mut upstream = vec![format!("{scheme}://{}{}/media/", up.hostport, up.prefix)];
        if let Some(bare) = up.hostport.strip_suffix(default_port) {
            upstream.push(format!("{scheme}://{bare}{}/media/", up.prefix));
        }
        Self {
            upstream,
            proxy: format!("{}/media/", proxy_origin.trim_end_matches('/')),
        }
    }

    /// The proxy's URL for `url`, when `url` is on the upstream's media route.
    fn rewrite(&self, url: &str) -> Option<String> {
        let rest = self
            .upstream
            .iter()
            .find_map(|o| url.strip_prefix(o.as_str()))?;
        Some(format!("{}{rest}", self.proxy))
    }

    /// Rewrites the `url` of a successful `get_resource` answer in place; true if it did.
    fn apply(&self, tag: &FrameTag, payload: &mut Value) -> bool {
        if tag.kind != FrameKind::Response || tag.event.as_deref() != Some("get_resource") {
            return false;
        }
        let Some(url) = payload.get("url").and_then(Value::as_str) else {
            return false;
        };
        match self.rewrite(url) {
            Some(new) => {
                payload["url"] = Value::String(new);
                true
            }
            None => false,
        }
    }
}

impl Forwarder {
    /// `proxy_origin` is the proxy's own `http://host:port`, for media URLs.
    pub fn new(
        upstream: Upstream,
        proxy_origin: &str,
        connect_timeout: Duration,
        recorder: Option<Arc<Recorder>>,
    ) -> Arc<Self> {
        let media = MediaUrls::new(&upstream, proxy_origin);
        Arc::new_cyclic(|me| Self {
            media,
            recorder,
            upstream,
            connect_timeout,
            engine: OnceLock::new(),
            links: Mutex::new(HashMap::new()),
            me: me.clone(),
        })
    }

    /// Sends one frame up; a session whose upstream falls behind by
    /// [`MAX_PENDING_FRAMES`] is closed.
    fn up(&self, socket: &Arc<Socket>, frame: String) {
        let sent = match lock(&self.links).get(&socket.id) {
            Some(l) => l.up.try_send(frame).is_ok(),
            None => return,
        };
        if !sent {
            tracing::warn!(conn = socket.id, upstream = %self.upstream.url, "upstream is not keeping up; closing the client's session");
            self.close_client(socket, false);
        }
    }

    /// The client-facing engine, for closing sessions from upstream events.
    pub fn attach(&self, engine: &Arc<Engine>) {
        let _ = self.engine.set(Arc::downgrade(engine));
    }

    fn close_client(&self, socket: &Arc<Socket>, kick: bool) {
        if let Some(engine) = self.engine.get().and_then(Weak::upgrade) {
            if kick {
                socket.send_frame(socketio::DISCONNECT_FRAME.into());
            }
            engine.close(socket, CloseReason::ServerClose, false);
        }
    }

    /// Remembers a request's rid → event, and the username of a `login` (the session is
    /// that user once the upstream answers it with success).
    fn note_request(&self, socket: &Arc<Socket>, event: &str, payload: &Value) {
        let mut links = lock(&self.links);
        let Some(link) = links.get_mut(&socket.id) else {
            return;
        };
        if event == "login" {
            link.login = payload
                .get("username")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        let Some(rid) = payload.as_object().and_then(Rid::from_payload) else {
            return;
        };
        let key: Arc<str> = rid.key().into();
        if link.open.insert(key.clone(), event.into()).is_none() {
            link.order.push_back(key);
        }
        while link.order.len() > MAX_OPEN_REQUESTS {
            if let Some(old) = link.order.pop_front() {
                link.open.remove(&old);
            }
        }
    }

    /// Tags a frame from the upstream: ack (with its request's event), response, push.
    fn tag_down(&self, socket: &Socket, frame: &str) -> Option<(FrameTag, Value)> {
        let data = frame.strip_prefix('4')?;
        let SioPacket::Event { nsp, data, .. } = socketio::decode(data).ok()? else {
            return None;
        };
        if nsp != "/" {
            return None;
        }
        let (event, payload) = socketio::event_parts(data)?;
        let rid = payload.as_object().and_then(Rid::from_payload);
        let Some(rid) = rid else {
            return Some((FrameTag::event(FrameKind::Push, &event, None), payload));
        };
        let key = rid.key();
        let mut links = lock(&self.links);
        let link = links.get_mut(&socket.id);
        let asked = link.as_ref().and_then(|l| l.open.get(key)).cloned();
        let ok = payload.get("code").and_then(Value::as_i64).unwrap_or(0) == 0;
        let user = match link {
            Some(l) if event == "login" && ok => l.login.take(),
            _ => None,
        };
        drop(links);
        if let Some(user) = user {
            socket.set_label(Some(&user));
        }
        let tag = match (event.as_str(), asked) {
            ("ack", Some(req)) => FrameTag::event(FrameKind::Ack, &req, Some(key)),
            ("ack", None) => FrameTag::event(FrameKind::Ack, "ack", Some(key)),
            (_, _) => FrameTag::event(FrameKind::Response, &event, Some(key)),
        };
        Some((tag, payload))
    }

    /// Passes one upstream frame to the client; false when the session should end.
    fn down(&self, socket: &Arc<Socket>, frame: String) -> bool {
        match frame.as_bytes() {
            b"40" => return true, // the client got its `40` from our engine
            b"41" | [b'1', ..] => {
                tracing::info!(conn = socket.id, upstream = %self.upstream.url, "upstream disconnected the session");
                self.close_client(socket, frame == "41");
                return false;
            }
            [b'2', ..] => {
                // An upstream speaking Engine.IO 4 pings from its side.
                return true;
            }
            _ => {}
        }
        match self.tag_down(socket, &frame) {
            Some((tag, mut payload)) => {
                if let Some(r) = &self.recorder {
                    r.answer(socket, &tag, &payload);
                }
                let frame = if self.media.apply(&tag, &mut payload) {
                    let event = tag.event.as_deref().unwrap_or("get_resource");
                    socketio::encode_event_frame(event, &payload)
                } else {
                    frame
                };
                socket.send_tagged(frame.into(), &tag);
            }
            None => {
                tracing::warn!(conn = socket.id, frame = %cut(&frame), "upstream frame not understood; forwarded untouched");
                socket.send_tagged(frame.into(), &FrameTag::of(FrameKind::Other));
            }
        }
        true
    }

    /// Runs one session: connects upstream, then pumps frames both ways until either
    /// side ends.
    async fn run(self: Arc<Self>, socket: Arc<Socket>, mut pending: mpsc::Receiver<String>) {
        let link = upstream::connect(&self.upstream, self.connect_timeout).await;
        let UpLink {
            mut inbound,
            outbound,
            closed,
        } = match link {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(conn = socket.id, upstream = %self.upstream.url, error = %e, "cannot open the upstream session; closing the client's");
                self.close_client(&socket, false);
                return;
            }
        };
        loop {
            tokio::select! {
                f = pending.recv() => match f {
                    Some(f) => { let _ = outbound.send(f); }
                    None => break, // the client session ended
                },
                f = inbound.recv() => match f {
                    Some(f) => if !self.down(&socket, f) { break },
                    None => {
                        tracing::info!(conn = socket.id, upstream = %self.upstream.url, "upstream closed the connection; closing the client's session");
                        self.close_client(&socket, false);
                        break;
                    }
                },
                _ = socket.closed() => break,
            }
        }
        // Graceful: the writer sends a close frame once the queue is empty.
        let _ = outbound.send("41".to_owned());
        drop(outbound);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            closed.cancel();
        });
    }
}

fn cut(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl SocketHandler for Forwarder {
    fn on_connect(&self, socket: &Arc<Socket>) {
        let (tx, rx) = mpsc::channel(MAX_PENDING_FRAMES);
        lock(&self.links).insert(
            socket.id,
            Link {
                up: tx,
                open: HashMap::new(),
                order: Default::default(),
                login: None,
            },
        );
        if let Some(r) = &self.recorder {
            r.connect(socket);
        }
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(me.run(socket.clone(), rx));
        }
    }

    fn on_event(&self, socket: &Arc<Socket>, event: String, payload: Value) {
        // Not reached: on_raw_message takes every message; kept for completeness.
        let frame = socketio::encode_event_frame(&event, &payload);
        self.up(socket, frame);
    }

    fn on_close(&self, socket: &Arc<Socket>, reason: CloseReason) {
        lock(&self.links).remove(&socket.id);
        if let Some(r) = &self.recorder {
            r.closed(socket, &reason);
        }
    }

    fn on_raw_message(&self, socket: &Arc<Socket>, data: &str) -> bool {
        match socketio::decode(data) {
            Ok(SioPacket::Event { nsp, data: d, .. }) if nsp == "/" => {
                if let Some((event, payload)) = socketio::event_parts(d) {
                    self.note_request(socket, &event, &payload);
                    if let Some(r) = &self.recorder {
                        r.request(socket, &event, &payload);
                    }
                }
            }
            Ok(SioPacket::Connect { .. } | SioPacket::Disconnect { .. }) => return false,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(conn = socket.id, error = %e, frame = %cut(data), "client frame not understood; forwarded untouched");
            }
        }
        self.up(socket, format!("4{data}"));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_urls_on_the_upstream_move_to_the_proxy_and_others_stay() {
        let up = Upstream::parse("https://im.example.com/jm").expect("url");
        let m = MediaUrls::new(&up, "http://127.0.0.1:8788");
        let moved = "http://127.0.0.1:8788/media/qiniu/image/j/1?e=1&s=x";
        for url in [
            "https://im.example.com/jm/media/qiniu/image/j/1?e=1&s=x",
            "https://im.example.com:443/jm/media/qiniu/image/j/1?e=1&s=x",
        ] {
            assert_eq!(m.rewrite(url).as_deref(), Some(moved), "{url}");
        }
        for url in [
            "https://cdn.example.com/jm/media/qiniu/image/j/1",
            "http://im.example.com/jm/media/x",
            "https://im.example.com/media/x",
            "https://im.example.com.evil/jm/media/x",
        ] {
            assert_eq!(m.rewrite(url), None, "{url}");
        }
    }
}
