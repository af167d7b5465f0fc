//! The journal of wire traffic: every frame in and out, with what the fault layer did to
//! it. Bounded by entries and by bytes (oldest entries go first); a frame longer than
//! `frame_max` is stored cut, with a marker. Read through the admin API and by scenario
//! expectations.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;

/// One frame as it crossed the transport boundary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// Position in the journal, from 1.
    pub seq: u64,
    /// Milliseconds since the server started.
    pub t_ms: u64,
    /// The connection (0: a refused handshake, which has none).
    pub conn: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
    /// `in` (client to server) or `out`.
    pub dir: &'static str,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rid: Option<Arc<str>>,
    /// The fault rule that acted on the frame, and its action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// How long a `delay` or `throttle` rule held the frame back, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The frame's text; for a refused handshake, what was refused
    /// (`websocket handshake`, `websocket upgrade`, `polling handshake`).
    pub frame: Arc<str>,
}

impl Entry {
    /// Bytes this entry accounts for: its texts plus the entry itself.
    fn weight(&self) -> usize {
        let opt = |s: &Option<Arc<str>>| s.as_ref().map_or(0, |s| s.len());
        std::mem::size_of::<Self>()
            + self.frame.len()
            + opt(&self.user)
            + opt(&self.event)
            + opt(&self.rid)
            + opt(&self.fault)
    }
}

/// Default byte bound of a journal (docs/limits.md).
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Default longest frame text kept in one entry.
pub const DEFAULT_FRAME_MAX: usize = 64 * 1024;

/// A bounded ring of entries.
#[derive(Debug)]
pub struct Journal {
    entries: VecDeque<Entry>,
    next_seq: u64,
    capacity: usize,
    max_bytes: usize,
    frame_max: usize,
    bytes: usize,
    /// New entries for live readers (`GET /__admin/events`): a ring of [`LIVE_BUFFER`]
    /// entries; a reader that falls further behind sees `Lagged` and is dropped.
    live: tokio::sync::broadcast::Sender<Entry>,
}

/// Entries a live reader may fall behind before it is dropped.
pub const LIVE_BUFFER: usize = 1024;

/// `frame` cut to at most `max` bytes (on a character boundary), with a marker.
fn cut(frame: &Arc<str>, max: usize) -> Arc<str> {
    if frame.len() <= max {
        return frame.clone();
    }
    let mut end = max;
    while !frame.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated: {} bytes]", &frame[..end], frame.len()).into()
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            next_seq: 1,
            capacity,
            max_bytes: DEFAULT_MAX_BYTES,
            frame_max: DEFAULT_FRAME_MAX,
            bytes: 0,
            live: tokio::sync::broadcast::channel(LIVE_BUFFER).0,
        }
    }

    /// Sets the byte bound and the longest frame kept; applies to what is stored now.
    pub fn set_bounds(&mut self, max_bytes: usize, frame_max: usize) {
        self.max_bytes = max_bytes;
        self.frame_max = frame_max;
        self.evict();
    }

    pub fn push(&mut self, mut e: Entry) {
        if self.capacity == 0 {
            return;
        }
        e.seq = self.next_seq;
        self.next_seq += 1;
        e.frame = cut(&e.frame, self.frame_max);
        self.bytes += e.weight();
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(e.clone());
        }
        self.entries.push_back(e);
        self.evict();
    }

    /// Drops the oldest entries until both bounds hold.
    fn evict(&mut self) {
        while self.entries.len() > self.capacity || self.bytes > self.max_bytes {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.weight(),
                None => break,
            }
        }
    }

    /// Bytes the journal accounts for now (at most the byte bound).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries with `seq > since`.
    pub fn since(&self, since: u64) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| e.seq > since)
            .cloned()
            .collect()
    }

    /// The entries with `seq > since` and a receiver of every later one, taken together
    /// so that nothing falls between them.
    pub fn subscribe(&self, since: u64) -> (Vec<Entry>, tokio::sync::broadcast::Receiver<Entry>) {
        (self.since(since), self.live.subscribe())
    }

    /// The seq the next entry gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(frame: &str) -> Entry {
        Entry {
            seq: 0,
            t_ms: 0,
            conn: 1,
            user: None,
            dir: "in",
            kind: "request",
            event: None,
            rid: None,
            fault: None,
            action: None,
            delay_ms: None,
            frame: frame.into(),
        }
    }

    #[test]
    fn bounded_by_bytes_and_cuts_long_frames() {
        let mut j = Journal::new(1000);
        j.set_bounds(10_000, 1_000);
        let big = "é".repeat(2_000);
        for _ in 0..100 {
            j.push(entry(&big));
        }
        assert!(j.bytes() <= 10_000, "{}", j.bytes());
        assert!(j.len() >= 5 && j.len() < 100, "{}", j.len());
        let last = j.since(0).pop().unwrap();
        assert!(
            last.frame.ends_with("…[truncated: 4000 bytes]"),
            "{}",
            last.frame
        );
        assert!(last.frame.len() < 1_100);
        assert_eq!(last.seq, 100);
        j.clear();
        assert_eq!(j.bytes(), 0);
    }

    #[test]
    fn bounded_by_entries() {
        let mut j = Journal::new(3);
        for _ in 0..10 {
            j.push(entry("42[]"));
        }
        assert_eq!(j.len(), 3);
        assert_eq!(j.since(0)[0].seq, 8);
    }
}
