//! A one-shot signal kept inside the struct that owns it: set once, never reset, and
//! every task waiting for it wakes up.
//!
//! A session had two `tokio_util` cancellation tokens (closed, aborted). Each token is a
//! separate shared allocation with room for a tree of child tokens (about 120 bytes), and
//! a session has no child tokens: a flag and a [`Notify`] in the session do the same job
//! with no allocation of their own. Waiters hold a reference to the owner (an
//! `Arc<Socket>` for spawned tasks) instead of a clone of the token.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Set once by [`Signal::cancel`]; [`Signal::cancelled`] resolves from then on.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    notify: Notify,
}

impl Signal {
    /// Sets the signal and wakes every waiter; later calls do nothing.
    pub(crate) fn cancel(&self) {
        if !self.set.swap(true, Ordering::SeqCst) {
            self.notify.notify_waiters();
        }
    }

    /// True once [`Signal::cancel`] was called.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Resolves once the signal is set (at once if it is already).
    pub(crate) async fn cancelled(&self) {
        // Registered before the check: a `cancel` after the check wakes this waiter
        // (`notify_waiters` reaches every `Notified` created before it, polled or not).
        let notified = self.notify.notified();
        if self.is_cancelled() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn every_waiter_wakes_and_later_waiters_return_at_once() {
        let signal = Arc::new(Signal::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = signal.clone();
                tokio::spawn(async move { s.cancelled().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!signal.is_cancelled());
        assert!(waiters.iter().all(|w| !w.is_finished()));
        signal.cancel();
        signal.cancel();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("woken")
                .expect("no panic");
        }
        assert!(signal.is_cancelled());
        tokio::time::timeout(Duration::from_secs(5), signal.cancelled())
            .await
            .expect("an already set signal resolves at once");
    }

    #[tokio::test]
    async fn a_waiter_that_was_polled_before_cancel_wakes() {
        use futures_util::FutureExt;
        let signal = Signal::default();
        let wait = signal.cancelled();
        tokio::pin!(wait);
        assert!(
            (&mut wait).now_or_never().is_none(),
            "pending before cancel"
        );
        signal.cancel();
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("resolves");
    }
}
