//! Injected time and id sources, so the backend is deterministic under test and under
//! scenarios with virtual time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests, virtual time in scenarios).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The real clock plus an offset that only grows: virtual time for a live server (the
/// admin API and scenarios jump forward without waiting).
#[derive(Debug, Clone, Default)]
pub struct OffsetClock(Arc<AtomicI64>);

impl OffsetClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `ms` (negative values are ignored).
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    pub fn offset_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Back to real time. Only for a fresh start (admin reset, scenario load): state
    /// built under the old offset must be discarded with it.
    pub fn rewind(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms()
    }
}

/// Deterministic id counters. Bases make ids of different kinds easy to tell apart in
/// transcripts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ids {
    pub uid: u64,
    pub msg: u64,
    pub event: u64,
    pub gid: u64,
    pub media: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Self {
            uid: 10_000,
            msg: 100_000_000,
            event: 500_000,
            gid: 20_000_000,
            media: 1,
        }
    }
}

impl Ids {
    pub fn next_uid(&mut self) -> u64 {
        self.uid += 1;
        self.uid
    }
    pub fn next_msg(&mut self) -> u64 {
        self.msg += 1;
        self.msg
    }
    pub fn next_event(&mut self) -> u64 {
        self.event += 1;
        self.event
    }
    pub fn next_gid(&mut self) -> u64 {
        self.gid += 1;
        self.gid
    }
    pub fn next_media(&mut self) -> u64 {
        self.media += 1;
        self.media
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1000);
        assert_eq!(c.now_ms(), 1000);
        c.advance_ms(600_000);
        assert_eq!(c.now_ms(), 601_000);
        c.set_ms(5);
        assert_eq!(c.now_ms(), 5);
    }

    #[test]
    fn ids_are_sequential() {
        let mut ids = Ids::default();
        assert_eq!(ids.next_uid(), 10_001);
        assert_eq!(ids.next_uid(), 10_002);
        assert_eq!(ids.next_msg(), 100_000_001);
    }
}
