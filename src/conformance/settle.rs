//! Settle points: after every step the runner waits until the wire of all connections has
//! been quiet for a short window (bounded), so what a step set off (the SDK's `sync_check`
//! right after `login`, the automatic `msg_recv_v2` after a push, a peer's notification)
//! lands before the next step starts. Without it, the next step races those frames and
//! one run's transcript has `msg_sync` where another has `sync_conversation`.
//!
//! A settle also does not end while an in-process client (the builtin client, the
//! reference clients of `connect` steps) still waits for a response, so a slow answer on
//! a loaded machine lands before the next step as a fast one does; a driver's requests
//! are out of sight and its settles rely on the window alone.
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

    /// Waits until no application frame has crossed the wire for `window` and `busy`
    /// (an in-process client still waits for a response) is false, at most `limit`.
    /// Returns whether it settled.
    pub async fn settle(&mut self, server: &RunningServer, busy: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + self.limit;
        let (backlog, mut live) = server.faults.subscribe_journal(self.seq);
        self.take(backlog);
        loop {
            let now = Instant::now();
            let mut wake = self.last_frame + self.window;
            if now >= wake {
                if !busy() {
                    return true;
                }
                // Quiet, but an answer is still due: its frame (or a re-send) wakes the
                // watch; otherwise look again a window later.
                wake = now + self.window;
            }
            if now >= deadline {
                return false;
            }
            match tokio::time::timeout_at(wake.min(deadline), live.recv()).await {
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
                    tokio::time::sleep_until(wake.min(deadline)).await;
                    self.take(server.faults.journal(self.seq));
                }
                Err(_elapsed) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{AppConfig, BackendConfig, Seeds};
    use crate::client::{Client, ClientConfig};
    use crate::server::ServerConfig;
    use crate::transport::TransportConfig;

    const APPKEY: &str = "settleappkey000000000001";
    const SECRET: &str = "settle-secret";

    /// A server with a journal and the fault rules of `faults` (YAML specs).
    async fn server(faults: &[&str]) -> RunningServer {
        let seeds = Seeds {
            apps: vec![AppConfig {
                appkey: APPKEY.into(),
                secret: SECRET.into(),
                name: "settle".into(),
                cross_app: None,
                max_users: None,
            }],
            ..Seeds::default()
        };
        let backend = BackendConfig {
            seeds,
            signature_ttl_ms: 600_000,
            history: Default::default(),
        };
        let config = ServerConfig {
            faults: faults
                .iter()
                .map(|f| serde_saphyr::from_str(f).expect("valid fault"))
                .collect(),
            ..ServerConfig::new(backend, TransportConfig::default())
        };
        crate::server::start(config, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("server starts")
    }

    /// A client that never re-sends within a test and waits for answers forever.
    async fn client(s: &RunningServer) -> std::sync::Arc<Client> {
        let config = ClientConfig {
            ack_timeout: Duration::from_secs(600),
            response_timeout: None,
            connect_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        let c = Client::connect(&s.http_url(), config)
            .await
            .expect("client connects");
        std::sync::Arc::new(c)
    }

    /// Starts an `init` (`c_init` on the wire) in the background and returns once it is outstanding.
    async fn init_in_background(
        c: &std::sync::Arc<Client>,
    ) -> tokio::task::JoinHandle<Result<crate::client::Reply, crate::client::RequestError>> {
        let task = {
            let c = c.clone();
            tokio::spawn(async move { c.init(APPKEY, SECRET, 0).await })
        };
        let registered = async {
            while c.awaiting_responses() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), registered)
            .await
            .expect("the request is sent and not answered yet");
        task
    }

    #[tokio::test]
    async fn a_settle_before_any_frame_returns_at_once() {
        let s = server(&[]).await;
        let _c = client(&s).await;
        // The handshake is no application frame: an hour-long window is not waited.
        let hour = Duration::from_secs(3600);
        let mut watch = WireWatch::new(hour, hour);
        let settled = tokio::time::timeout(Duration::from_secs(10), watch.settle(&s, || false))
            .await
            .expect("returns at once");
        assert!(settled);
        s.shutdown().await;
    }

    #[tokio::test]
    async fn a_settle_does_not_end_while_a_response_is_due() {
        let s = server(&["id: silence\nwhen: {event: [c_init]}\naction: never_answer\n"]).await;
        let c = client(&s).await;
        let task = init_in_background(&c).await;
        let mut watch = WireWatch::new(Duration::from_millis(20), Duration::from_millis(300));
        // Acked, never answered: the wire goes quiet, the request stays outstanding.
        assert!(!watch.settle(&s, || c.awaiting_responses() > 0).await);
        assert_eq!(c.awaiting_responses(), 1);
        // The same quiet wire with nothing outstanding is settled.
        assert!(watch.settle(&s, || false).await);
        task.abort();
        s.shutdown().await;
    }

    #[tokio::test]
    async fn a_settle_ends_once_a_delayed_response_has_landed() {
        let held = "id: slow\nwhen: {direction: out, kind: response, event: [c_init]}\naction: {delay: 150}\n";
        let s = server(&[held]).await;
        let c = client(&s).await;
        let task = init_in_background(&c).await;
        let mut watch = WireWatch::new(Duration::from_millis(20), Duration::from_secs(30));
        assert!(watch.settle(&s, || c.awaiting_responses() > 0).await);
        // Settled only after the client had its answer.
        assert_eq!(c.awaiting_responses(), 0);
        let reply = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("init ends")
            .expect("task runs");
        assert_eq!(reply.expect("answered").code(), 0);
        s.shutdown().await;
    }

    #[tokio::test]
    async fn a_settle_lasts_while_frames_keep_coming() {
        let s = server(&[]).await;
        let c = client(&s).await;
        let sender = {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    let _ = c.init(APPKEY, SECRET, 0).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        // Wait for the first frame, then settle with gaps far shorter than the window.
        let first = async {
            while s.faults.journal(0).iter().all(|e| e.kind != "request") {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("a request is sent");
        let mut watch = WireWatch::new(Duration::from_secs(1), Duration::from_secs(60));
        assert!(watch.settle(&s, || false).await);
        assert!(sender.is_finished(), "settled before the last request");
        let requests = s
            .faults
            .journal(0)
            .iter()
            .filter(|e| e.kind == "request")
            .count();
        assert_eq!(requests, 5);
        // Without frames the window cannot pass within a shorter limit.
        let _ = c.init(APPKEY, SECRET, 0).await;
        let mut strict = WireWatch::new(Duration::from_secs(3600), Duration::from_millis(50));
        assert!(!strict.settle(&s, || false).await);
        s.shutdown().await;
    }
}
