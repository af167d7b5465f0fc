//! `GET /__admin/events`: the wire journal as server-sent events, live
//! (docs/admin-api.md, "Live journal").
//!
//! Each journal entry is one SSE event (`event: frame`, `id:` its journal seq, `data:` the
//! entry as JSON, as `GET /__admin/journal` shows it, secrets already redacted). Filters:
//! `user`, `event`, `kind`, `dir`, `conn`. Resume: `Last-Event-ID` (or `?since=SEQ`) first
//! replays the stored entries after that seq. The stream opens with a
//! `: journal stream open` comment; a `: keep-alive` comment goes out every [`KEEP_ALIVE`].
//!
//! Bounds: at most [`MAX_SUBSCRIBERS`] streams at once (503 beyond); each reads from the
//! journal's shared ring of `journal::LIVE_BUFFER` entries, so a subscriber costs no memory
//! of its own beyond the replayed backlog; one that falls further behind is sent an
//! `event: lagged` and its stream ends (reconnect with `Last-Event-ID` to resume).

use crate::faults::{Entry, FaultLayer};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{error::RecvError, Receiver};

/// Most live streams at once.
pub const MAX_SUBSCRIBERS: usize = 16;
/// Interval of the keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the stream reads: the fault layer's journal, and the open streams' count.
#[derive(Clone)]
struct EventsState {
    faults: Arc<FaultLayer>,
    subscribers: Arc<Subscribers>,
}

/// `GET /__admin/events` on `faults`' journal. `serve` and `proxy` both serve it.
pub(crate) fn routes<S>(faults: Arc<FaultLayer>, subscribers: Arc<Subscribers>) -> Router<S> {
    Router::new()
        .route("/__admin/events", get(events))
        .with_state(EventsState {
            faults,
            subscribers,
        })
}

/// Counts the open streams.
#[derive(Default)]
pub struct Subscribers {
    open: AtomicUsize,
}

/// One open stream's place; freed on drop (the client went away or the stream ended).
struct Slot(Arc<Subscribers>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Subscribers {
    fn take(self: &Arc<Self>) -> Option<Slot> {
        let taken = self
            .open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_SUBSCRIBERS).then_some(n + 1)
            });
        taken.ok().map(|_| Slot(self.clone()))
    }
}

/// Which entries a stream shows.
#[derive(Default)]
struct Filter(HashMap<String, String>);

impl Filter {
    fn keeps(&self, e: &Entry) -> bool {
        let q = &self.0;
        q.get("conn").is_none_or(|c| c == &e.conn.to_string())
            && q.get("user")
                .is_none_or(|u| e.user.as_deref() == Some(u.as_str()))
            && q.get("event")
                .is_none_or(|v| e.event.as_deref() == Some(v.as_str()))
            && q.get("dir").is_none_or(|v| e.dir == v)
            && q.get("kind").is_none_or(|v| e.kind == v)
    }
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

/// Where to resume: `Last-Event-ID` wins over `?since=`; none: live entries only.
fn resume_point(headers: &HeaderMap, q: &HashMap<String, String>) -> Result<Option<u64>, String> {
    let text = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| "unreadable Last-Event-ID")?
                .to_owned(),
        ),
        None => q.get("since").cloned(),
    };
    text.map(|t| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("{t:?} is not a journal sequence number"))
    })
    .transpose()
}

const FILTERS: &[&str] = &["user", "event", "kind", "dir", "conn", "since"];

/// `GET /__admin/events`.
async fn events(
    State(s): State<EventsState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(k) = q.keys().find(|k| !FILTERS.contains(&k.as_str())) {
        let hint = crate::scenario::suggest(k, FILTERS.iter().copied()).unwrap_or_default();
        return bad(format!("unknown parameter {k:?} {hint}").trim().to_owned());
    }
    let since = match resume_point(&headers, &q) {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    let Some(slot) = s.subscribers.take() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": format!("at most {MAX_SUBSCRIBERS} event streams at once")})),
        )
            .into_response();
    };
    let (backlog, rx) = s.faults.subscribe_journal(since.unwrap_or(u64::MAX));
    let stream = Stream {
        backlog: backlog.into(),
        rx,
        filter: Filter(q),
        _slot: slot,
        done: false,
        opened: false,
    };
    let body = futures_util::stream::unfold(stream, |mut st| async move {
        let ev = st.next().await?;
        Some((Ok::<Event, Infallible>(ev), st))
    });
    Sse::new(body)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

struct Stream {
    backlog: VecDeque<Entry>,
    rx: Receiver<Entry>,
    filter: Filter,
    _slot: Slot,
    done: bool,
    /// Whether the opening comment went out (it sends the headers at once).
    opened: bool,
}

fn frame_event(e: &Entry) -> Event {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    Event::default()
        .event("frame")
        .id(e.seq.to_string())
        .data(data)
}

impl Stream {
    /// The next event to send, or `None` to end the stream.
    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        if !self.opened {
            self.opened = true;
            return Some(Event::default().comment("journal stream open"));
        }
        while let Some(e) = self.backlog.pop_front() {
            if self.filter.keeps(&e) {
                return Some(frame_event(&e));
            }
        }
        loop {
            match self.rx.recv().await {
                Ok(e) if self.filter.keeps(&e) => return Some(frame_event(&e)),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    self.done = true;
                    let why = json!({"error": "subscriber too slow", "missed": n});
                    return Some(Event::default().event("lagged").data(why.to_string()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Journal;

    fn entry(user: &str) -> crate::faults::journal::Draft<'_> {
        crate::faults::journal::Draft {
            t_ms: 0,
            conn: 1,
            user: Some(user),
            dir: "out",
            kind: "push",
            event: Some("msg_sync"),
            rid: None,
            fault: None,
            action: None,
            delay_ms: None,
            frame: "42[]",
        }
    }

    /// `entry(user)` as the journal gives it back.
    fn owned(user: &str) -> Entry {
        let mut j = Journal::new(1);
        j.push(&entry(user));
        j.since(0).remove(0)
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_the_ring_is_told_and_dropped() {
        let subs = Arc::new(Subscribers::default());
        let mut j = Journal::new(10);
        let (backlog, rx) = j.subscribe(0);
        let mut st = Stream {
            backlog: backlog.into(),
            rx,
            filter: Filter::default(),
            _slot: subs.take().expect("slot"),
            done: false,
            opened: false,
        };
        j.push(&entry("alice"));
        assert!(st.next().await.is_some(), "opening comment");
        assert!(st.next().await.is_some(), "first entry");
        for _ in 0..crate::faults::journal::LIVE_BUFFER + 5 {
            j.push(&entry("alice"));
        }
        // The lagged notice, then the end of the stream.
        assert!(st.next().await.is_some());
        assert!(st.done);
        assert!(st.next().await.is_none());
        drop(st);
        assert_eq!(subs.open.load(Ordering::SeqCst), 0, "slot freed");
    }

    #[test]
    fn subscribers_are_capped_and_slots_come_back() {
        let subs = Arc::new(Subscribers::default());
        let slots: Vec<Slot> = (0..MAX_SUBSCRIBERS).filter_map(|_| subs.take()).collect();
        assert_eq!(slots.len(), MAX_SUBSCRIBERS);
        assert!(subs.take().is_none());
        drop(slots);
        assert!(subs.take().is_some());
    }

    #[test]
    fn filters_and_resume_points() {
        let f = Filter([("user".to_owned(), "alice".to_owned())].into());
        assert!(f.keeps(&owned("alice")));
        assert!(!f.keeps(&owned("bobby")));
        let mut h = HeaderMap::new();
        let q: HashMap<String, String> = [("since".to_owned(), "7".to_owned())].into();
        assert_eq!(resume_point(&h, &q), Ok(Some(7)));
        h.insert("last-event-id", "9".parse().expect("header"));
        assert_eq!(resume_point(&h, &q), Ok(Some(9)));
        h.insert("last-event-id", "x".parse().expect("header"));
        assert!(resume_point(&h, &q).is_err());
    }
}
