//! The journal of wire traffic: every frame in and out, with what the fault layer did to
//! it. Bounded; read through the admin API and by scenario expectations.

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

/// A bounded ring of entries.
#[derive(Debug)]
pub struct Journal {
    entries: VecDeque<Entry>,
    next_seq: u64,
    capacity: usize,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            next_seq: 1,
            capacity,
        }
    }

    pub fn push(&mut self, mut e: Entry) {
        if self.capacity == 0 {
            return;
        }
        e.seq = self.next_seq;
        self.next_seq += 1;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(e);
    }

    /// Entries with `seq > since`.
    pub fn since(&self, since: u64) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| e.seq > since)
            .cloned()
            .collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
