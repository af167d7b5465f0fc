//! Settle points: after every step the runner waits until the wire of all connections has
//! been quiet for a short window (bounded), so what a step set off (the SDK's `sync_check`
//! right after `login`, the automatic `msg_recv_v2` after a push, a peer's notification)
//! lands before the next step starts. Without it, the next step races those frames and
//! one run's transcript has `msg_sync` where another has `sync_conversation`.
//!
//! Only application frames (requests, acks, responses, pushes) count: pings, pongs and
//! polling no-ops come on their own schedule and say nothing about a step's effects.
//! Waiting is cheap when nothing happened: a step that sent nothing (`create`, `listen`,
//! an already delivered `expect_listener`) returns at once when the window since the last
//! frame has already passed.
//!
//! The watch follows the journal's live feed (`FaultLayer::subscribe_journal`) while it
//! settles: it wakes on each new entry and at the moment the window runs out, so a settle
//! lasts the window after the last frame and no longer (no polling interval on top).

use crate::faults::Entry;
use crate::server::RunningServer;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// The quiet window before a case's clients close, so that fire-and-forget confirmations,
/// late pushes and the re-sends of scaled timers land in the transcript: a driver's SDK
/// may confirm a push on its next timer turn, under `time_scale` the builtin client's
/// re-sends come every scaled ack timeout (100 ms at 0.02), and a fault rule may hold a
/// frame back. Otherwise (the builtin client at full time, no fault rules) nothing comes
/// late: the client answers within microseconds and has no timer due within seconds, so
/// the step window (`step`) is enough, and the last step's settle has already waited it.
pub fn final_window(driver: bool, time_scale: f64, faults: bool, step: Duration) -> Duration {
    if driver || time_scale < 1.0 {
        Duration::from_millis(150)
    } else if faults {
        Duration::from_millis(50)
    } else {
        step
    }
}

/// Watches the journal of one run for application frames.
#[derive(Debug)]
pub struct WireWatch {
    /// The last journal sequence number taken.
    seq: u64,
    /// When an application frame was last seen (a window before the watch started when
    /// none was).
    last_frame: Instant,
    /// How long the wire must be quiet.
    pub window: Duration,
    /// The longest one settle waits.
    pub limit: Duration,
}

impl WireWatch {
    /// A watch that has seen no frame yet: a settle before the first application frame
    /// (after `create`, whose handshake is no application frame) returns at once.
    pub fn new(window: Duration, limit: Duration) -> Self {
        let now = Instant::now();
        Self {
            seq: 0,
            last_frame: now.checked_sub(window).unwrap_or(now),
            window,
            limit,
        }
    }

    /// The window for a client: the builtin client answers a push within microseconds; a
    /// driver (a Node process running the SDK) needs a few milliseconds more, and more
    /// still on a loaded machine.
    pub fn for_client(driver: bool) -> Self {
        let window = if driver { 40 } else { 15 };
        Self::new(Duration::from_millis(window), Duration::from_secs(2))
    }

    /// Takes entries seen on the wire; `true` when one was an application frame.
    fn take(&mut self, entries: impl IntoIterator<Item = Entry>) -> bool {
        let mut moved = false;
        for e in entries {
            if e.seq <= self.seq {
                continue;
            }
            self.seq = e.seq;
            moved |= matches!(e.kind, "request" | "ack" | "response" | "push");
        }
        if moved {
            self.last_frame = Instant::now();
        }
        moved
    }

    /// Waits until no application frame has crossed the wire for `window` (at most
    /// `limit`). Returns whether the wire went quiet.
    pub async fn settle(&mut self, server: &RunningServer) -> bool {
        let deadline = Instant::now() + self.limit;
        let (backlog, mut live) = server.faults.subscribe_journal(self.seq);
        self.take(backlog);
        loop {
            let quiet_at = self.last_frame + self.window;
            let now = Instant::now();
            if now >= quiet_at {
                return true;
            }
            if now >= deadline {
                return false;
            }
            match tokio::time::timeout_at(quiet_at.min(deadline), live.recv()).await {
                Ok(Ok(e)) => {
                    self.take([e]);
                }
                // Fell behind the live feed: read what was missed from the journal.
                Ok(Err(RecvError::Lagged(_))) => {
                    self.take(server.faults.journal(self.seq));
                }
                // No live feed (never while the server runs): look at the journal when
                // the window would end.
                Ok(Err(RecvError::Closed)) => {
                    tokio::time::sleep_until(quiet_at.min(deadline)).await;
                    self.take(server.faults.journal(self.seq));
                }
                Err(_elapsed) => {}
            }
        }
    }
}
