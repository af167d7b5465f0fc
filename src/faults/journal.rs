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

/// An entry as the fault layer hands it over: texts borrowed, copied into the
/// journal's chunks (no allocation per frame).
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    pub t_ms: u64,
    pub conn: u64,
    pub user: Option<&'a str>,
    pub dir: &'static str,
    pub kind: &'static str,
    pub event: Option<&'a str>,
    pub rid: Option<&'a str>,
    pub fault: Option<&'a str>,
    pub action: Option<&'static str>,
    pub delay_ms: Option<u64>,
    pub frame: &'a str,
}

impl Draft<'_> {
    /// Its texts in their stored order: user, event, rid, fault, frame.
    fn texts(&self) -> [Option<&str>; 5] {
        [
            self.user,
            self.event,
            self.rid,
            self.fault,
            Some(self.frame),
        ]
    }
}

/// A stored entry: fixed fields, and where its texts lie in the chunks. One cache line
/// (64 bytes; a test checks): the ring is written at a new place for every frame, and a
/// slot of two lines made that write the journal's largest cost.
#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    t_ms: u64,
    conn: u64,
    /// Absolute index of the chunk holding the texts, and their start in it.
    chunk: u64,
    start: u32,
    /// Length of each text ([`Draft::texts`] order); `ABSENT` for none.
    lens: [u32; 5],
    /// `ABSENT` for none; a longer delay (49 days) is kept as the longest that fits.
    delay_ms: u32,
    /// Indexes into [`Names`]: direction, kind, action (`NO_NAME` for none).
    dir: u8,
    kind: u8,
    action: u8,
}

const ABSENT: u32 = u32::MAX;
const NO_NAME: u8 = u8::MAX;

/// The few static names entries carry (directions, kinds, actions), each stored once:
/// a slot keeps a one-byte index. They come from the code, so there are a few dozen
/// at most; past 254 (never) a name is kept as `other`, which is always index 0.
#[derive(Debug)]
struct Names(Vec<&'static str>);

impl Default for Names {
    fn default() -> Self {
        Self(vec!["other"])
    }
}

impl Names {
    fn index(&mut self, name: &'static str) -> u8 {
        if let Some(i) = self.0.iter().position(|n| *n == name) {
            return i as u8;
        }
        if self.0.len() >= usize::from(NO_NAME) {
            return 0;
        }
        self.0.push(name);
        (self.0.len() - 1) as u8
    }

    fn get(&self, i: u8) -> Option<&'static str> {
        self.0.get(usize::from(i)).copied()
    }
}

impl Slot {
    /// Bytes this entry accounts for: its texts plus the slot itself.
    fn weight(&self) -> usize {
        let texts: usize = self
            .lens
            .iter()
            .filter(|&&l| l != ABSENT)
            .map(|&l| l as usize)
            .sum();
        std::mem::size_of::<Self>() + texts
    }

    fn entry(&self, chunk: &[u8], names: &Names) -> Entry {
        let mut at = self.start as usize;
        let mut texts = self.lens.map(|len| {
            if len == ABSENT {
                return None;
            }
            let bytes = chunk.get(at..at + len as usize).unwrap_or_default();
            at += len as usize;
            // Written from `&str`s on character boundaries, so this always succeeds.
            Some(Arc::<str>::from(
                std::str::from_utf8(bytes).unwrap_or_default(),
            ))
        });
        Entry {
            seq: self.seq,
            t_ms: self.t_ms,
            conn: self.conn,
            user: texts[0].take(),
            dir: names.get(self.dir).unwrap_or("other"),
            kind: names.get(self.kind).unwrap_or("other"),
            event: texts[1].take(),
            rid: texts[2].take(),
            fault: texts[3].take(),
            action: names.get(self.action),
            delay_ms: (self.delay_ms != ABSENT).then_some(u64::from(self.delay_ms)),
            frame: texts[4].take().unwrap_or_else(|| "".into()),
        }
    }
}

/// Default byte bound of a journal (docs/limits.md).
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Default longest frame text kept in one entry.
pub const DEFAULT_FRAME_MAX: usize = 64 * 1024;
/// Texts are appended to chunks of this size (a longer entry gets a chunk of its own):
/// dropping old entries frees whole chunks instead of one allocation per text. The tail a
/// chunk is left with when the next entry does not fit counts against the byte bound
/// until the chunk is freed. Beyond the bound are at most three chunks: the dropped
/// entries at the head of the oldest, the newest one's unused tail, and a spare.
const CHUNK: usize = 256 * 1024;
/// Longest user, event, rid or rule id kept in an entry (the frame has `frame_max`).
const LABEL_MAX: usize = 1024;
/// Highest `frame_max` taken, so every text length fits the slots' `u32`.
const FRAME_MAX_CAP: usize = 1 << 30;

/// A bounded ring of entries.
#[derive(Debug)]
pub struct Journal {
    slots: VecDeque<Slot>,
    /// Each chunk with the unused tail it was left with (counted in `bytes`).
    chunks: VecDeque<(Vec<u8>, usize)>,
    /// Absolute index of `chunks[0]`.
    first_chunk: u64,
    /// A retired chunk kept for reuse.
    spare: Option<Vec<u8>>,
    next_seq: u64,
    capacity: usize,
    max_bytes: usize,
    frame_max: usize,
    bytes: usize,
    /// New entries for live readers (`GET /__admin/events`): a ring of [`LIVE_BUFFER`]
    /// entries; a reader that falls further behind sees `Lagged` and is dropped.
    live: tokio::sync::broadcast::Sender<Entry>,
    /// Whether `live` may have a reader: set by `subscribe`, cleared when a send finds
    /// none. A plain flag because asking the channel takes its lock, and a locked
    /// instruction right after copying a frame waits for those stores (about 3 % of
    /// the server's CPU under load).
    listening: bool,
    names: Names,
}

/// Entries a live reader may fall behind before it is dropped.
pub const LIVE_BUFFER: usize = 1024;

/// A user, event, rid or rule id, cut to [`LABEL_MAX`] (no marker).
fn label(t: Option<&str>) -> Option<&str> {
    t.map(|t| cut(t, LABEL_MAX).0)
}

/// `frame` cut to at most `max` bytes (on a character boundary) and the marker to add.
fn cut(frame: &str, max: usize) -> (&str, Option<String>) {
    if frame.len() <= max {
        return (frame, None);
    }
    let mut end = max;
    while !frame.is_char_boundary(end) {
        end -= 1;
    }
    let marker = format!("…[truncated: {} bytes]", frame.len());
    (&frame[..end], Some(marker))
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: VecDeque::new(),
            chunks: VecDeque::new(),
            first_chunk: 0,
            spare: None,
            next_seq: 1,
            capacity,
            max_bytes: DEFAULT_MAX_BYTES,
            frame_max: DEFAULT_FRAME_MAX,
            bytes: 0,
            live: tokio::sync::broadcast::channel(LIVE_BUFFER).0,
            listening: false,
            names: Names::default(),
        }
    }

    /// Sets the byte bound and the longest frame kept; applies to what is stored now.
    pub fn set_bounds(&mut self, max_bytes: usize, frame_max: usize) {
        self.max_bytes = max_bytes;
        self.frame_max = frame_max.min(FRAME_MAX_CAP);
        self.evict();
    }

    pub fn push(&mut self, d: &Draft<'_>) {
        if self.capacity == 0 {
            return;
        }
        let (frame, marker) = cut(d.frame, self.frame_max);
        let d = &Draft {
            user: label(d.user),
            event: label(d.event),
            rid: label(d.rid),
            fault: label(d.fault),
            ..*d
        };
        let texts = d.texts();
        let total: usize = texts.iter().flatten().map(|t| t.len()).sum::<usize>() - d.frame.len()
            + frame.len()
            + marker.as_ref().map_or(0, String::len);
        let (chunk, start) = self.room(total);
        let mut lens = [ABSENT; 5];
        let buf = &mut self.chunks[(chunk - self.first_chunk) as usize].0;
        for (i, t) in texts.iter().enumerate().take(4) {
            if let Some(t) = t {
                buf.extend_from_slice(t.as_bytes());
                lens[i] = t.len() as u32;
            }
        }
        buf.extend_from_slice(frame.as_bytes());
        if let Some(m) = &marker {
            buf.extend_from_slice(m.as_bytes());
        }
        lens[4] = (frame.len() + marker.as_ref().map_or(0, String::len)) as u32;
        let slot = Slot {
            seq: self.next_seq,
            t_ms: d.t_ms,
            conn: d.conn,
            dir: self.names.index(d.dir),
            kind: self.names.index(d.kind),
            action: d.action.map_or(NO_NAME, |a| self.names.index(a)),
            delay_ms: d
                .delay_ms
                .map_or(ABSENT, |ms| ms.min(u64::from(ABSENT - 1)) as u32),
            chunk,
            start,
            lens,
        };
        self.next_seq += 1;
        self.bytes += slot.weight();
        if self.listening && self.live.send(slot.entry(buf, &self.names)).is_err() {
            self.listening = false;
        }
        self.slots.push_back(slot);
        self.evict();
    }

    /// The chunk (absolute index) and offset where `len` bytes of text go.
    fn room(&mut self, len: usize) -> (u64, u32) {
        let fits = self
            .chunks
            .back()
            .is_some_and(|(c, _)| c.capacity() - c.len() >= len);
        if !fits {
            if let Some((c, tail)) = self.chunks.back_mut() {
                *tail = c.capacity() - c.len();
                self.bytes += *tail;
            }
            let mut fresh = match self.spare.take() {
                Some(c) if c.capacity() >= len => c,
                _ => Vec::with_capacity(CHUNK.max(len)),
            };
            fresh.clear();
            self.chunks.push_back((fresh, 0));
        }
        let index = self.first_chunk + self.chunks.len() as u64 - 1;
        let start = self.chunks.back().map_or(0, |(c, _)| c.len());
        (index, start as u32)
    }

    /// Drops the oldest entries until both bounds hold, and the chunks no entry uses.
    fn evict(&mut self) {
        while self.slots.len() > self.capacity || self.bytes > self.max_bytes {
            match self.slots.pop_front() {
                Some(old) => self.bytes -= old.weight(),
                None => break,
            }
            self.free_chunks();
        }
        self.free_chunks();
    }

    /// Frees the chunks older than the oldest entry's; the newest one always stays (the
    /// next entry is appended to it).
    fn free_chunks(&mut self) {
        let Some(newest) = (self.first_chunk + self.chunks.len() as u64).checked_sub(1) else {
            return;
        };
        let oldest_used = self.slots.front().map_or(newest, |s| s.chunk);
        while self.first_chunk < oldest_used {
            if let Some((c, tail)) = self.chunks.pop_front() {
                self.bytes -= tail;
                if c.capacity() >= CHUNK {
                    self.spare = Some(c);
                }
            }
            self.first_chunk += 1;
        }
    }

    /// Bytes the journal accounts for now (at most the byte bound).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries with `seq > since`.
    pub fn since(&self, since: u64) -> Vec<Entry> {
        let skip = self.slots.partition_point(|s| s.seq <= since);
        self.slots
            .iter()
            .skip(skip)
            .filter_map(|s| {
                let (chunk, _) = self.chunks.get((s.chunk - self.first_chunk) as usize)?;
                Some(s.entry(chunk, &self.names))
            })
            .collect()
    }

    /// The entries with `seq > since` and a receiver of every later one, taken together
    /// so that nothing falls between them.
    pub fn subscribe(
        &mut self,
        since: u64,
    ) -> (Vec<Entry>, tokio::sync::broadcast::Receiver<Entry>) {
        self.listening = true;
        (self.since(since), self.live.subscribe())
    }

    /// The seq the next entry gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.first_chunk += self.chunks.len() as u64;
        self.chunks.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(frame: &str) -> Draft<'_> {
        Draft {
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
            frame,
        }
    }

    #[test]
    fn bounded_by_bytes_and_cuts_long_frames() {
        let mut j = Journal::new(1000);
        j.set_bounds(10_000, 1_000);
        let big = "é".repeat(2_000);
        for _ in 0..100 {
            j.push(&entry(&big));
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
    fn live_readers_get_new_entries_and_a_later_reader_after_all_left() {
        let mut j = Journal::new(100);
        j.push(&entry("42[\"before\"]"));
        let (past, mut rx) = j.subscribe(0);
        assert_eq!(past.len(), 1);
        j.push(&entry("42[\"a\"]"));
        assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(2));
        drop(rx);
        j.push(&entry("42[\"nobody\"]"));
        assert!(!j.listening, "a send to no reader turns the feed off");
        let (past, mut rx) = j.subscribe(3);
        assert!(past.is_empty());
        j.push(&entry("42[\"b\"]"));
        assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(4));
    }

    #[test]
    fn a_slot_is_one_cache_line_and_keeps_names_and_delays() {
        assert!(std::mem::size_of::<Slot>() <= 64);
        let mut j = Journal::new(10);
        let mut d = entry("42[]");
        j.push(&d);
        d.dir = "out";
        d.kind = "push";
        d.action = Some("delay");
        d.delay_ms = Some(1500);
        j.push(&d);
        d.delay_ms = Some(u64::MAX);
        j.push(&d);
        let e = j.since(0);
        let got: Vec<_> = e
            .iter()
            .map(|e| (e.dir, e.kind, e.action, e.delay_ms))
            .collect();
        let mut names = Names::default();
        for i in 0..300 {
            // Names are static in the code; leaked here to get 300 of them.
            let n: &'static str = Box::leak(format!("n{i}").into_boxed_str());
            assert!(names.index(n) < NO_NAME);
        }
        let (late, early) = (names.index("n299"), names.index("n0"));
        assert_eq!(
            (names.get(late), names.get(early)),
            (Some("other"), Some("n0"))
        );
        assert_eq!(
            got,
            [
                ("in", "request", None, None),
                ("out", "push", Some("delay"), Some(1500)),
                ("out", "push", Some("delay"), Some(u64::from(u32::MAX - 1))),
            ]
        );
    }

    #[test]
    fn bounded_by_entries() {
        let mut j = Journal::new(3);
        for _ in 0..10 {
            j.push(&entry("42[]"));
        }
        assert_eq!(j.len(), 3);
        assert_eq!(j.since(0)[0].seq, 8);
    }

    #[test]
    fn texts_survive_chunk_turnover_and_old_chunks_are_freed() {
        let mut j = Journal::new(1_000_000);
        j.set_bounds(3 * CHUNK, 1_000);
        let frames: Vec<String> = (0..20_000)
            .map(|i| format!("42[\"e\",{{\"i\":{i}}}]"))
            .collect();
        for (i, f) in frames.iter().enumerate() {
            let rid = i.to_string();
            j.push(&Draft {
                rid: Some(&rid),
                user: i.is_multiple_of(2).then_some("alice"),
                ..entry(f)
            });
        }
        assert!(j.chunks.len() <= 5, "{} chunks", j.chunks.len());
        let kept = j.since(0);
        assert!(kept.len() > 1_000 && kept.len() < 20_000, "{}", kept.len());
        for e in &kept {
            let i = (e.seq - 1) as usize;
            assert_eq!(&*e.frame, frames[i]);
            assert_eq!(e.rid.as_deref(), Some(i.to_string().as_str()));
            assert_eq!(e.user.as_deref(), i.is_multiple_of(2).then_some("alice"));
        }
        let tail = j.since(19_990);
        assert_eq!(tail.len(), 10);
        assert_eq!(tail[0].seq, 19_991);
    }

    #[test]
    fn long_labels_are_cut_and_chunk_tails_count_against_the_bound() {
        let mut j = Journal::new(1_000_000);
        j.set_bounds(8 * CHUNK, 64 * 1024);
        let event = "e".repeat(70_000);
        let frame = "f".repeat(100_000);
        for _ in 0..200 {
            j.push(&Draft {
                event: Some(&event),
                ..entry(&frame)
            });
        }
        let held: usize = j.chunks.iter().map(|(c, _)| c.capacity()).sum();
        assert!(j.bytes() <= 8 * CHUNK, "{}", j.bytes());
        assert!(
            held <= 11 * CHUNK,
            "{held} bytes held in {} chunks",
            j.chunks.len()
        );
        let last = j.since(0).pop().expect("an entry");
        assert_eq!(last.event.as_deref().map(str::len), Some(LABEL_MAX));
    }
}
