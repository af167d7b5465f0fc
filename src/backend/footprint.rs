//! An estimate of the heap the message history takes, structure by structure, for
//! `cargo bench --bench history` and docs/performance.md. It counts each structure's
//! allocated capacity (not allocator headers or map node slack), so it splits the cost
//! of a stored message between the store, the retention index and the users' sync logs;
//! the process RSS gives the true total.

use super::model::{ConvKey, Message, SyncEntry, Target, UserKey};
use super::Backend;
use std::mem::size_of;

/// Estimated heap bytes of the history structures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Stored and retracted messages: the map entries, their encoded wire objects,
    /// sender/target keys and holder lists.
    pub messages: usize,
    /// Of `messages`, the encoded wire objects alone.
    pub wire: usize,
    /// The per-conversation retention queues.
    pub threads: usize,
    /// Every user's sync log.
    pub sync_logs: usize,
    /// Every user's per-conversation id lists (and their peer keys).
    pub conversations: usize,
    /// The dedupe cache of answered rids (bounded, fills up and stays).
    pub dedupe: usize,
}

impl Footprint {
    /// The sum of every part.
    pub fn total(&self) -> usize {
        self.messages + self.threads + self.sync_logs + self.conversations + self.dedupe
    }
}

fn key_heap(k: &UserKey) -> usize {
    k.appkey.capacity() + k.username.capacity()
}

fn message_bytes(m: &Message) -> usize {
    let target = match &m.target {
        Target::User(k) => key_heap(k),
        Target::Group(_) => 0,
    };
    size_of::<u64>()
        + size_of::<Message>()
        + m.wire.len()
        + key_heap(&m.from)
        + target
        + usize::from(m.holders.spilled()) * m.holders.capacity() * size_of::<u64>()
}

impl Backend {
    /// Estimates the heap of the message history (see [`Footprint`]).
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint::default();
        for m in self.messages.values().chain(self.retracted.values()) {
            f.messages += message_bytes(m);
            f.wire += m.wire.len();
        }
        for q in self.threads.values() {
            f.threads += q.capacity() * size_of::<u64>();
        }
        for mb in self.mailboxes.values() {
            f.sync_logs += mb.log.capacity() * size_of::<SyncEntry>();
            for (k, c) in &mb.conversations {
                f.conversations += c.msg_ids.capacity() * size_of::<u64>();
                if let ConvKey::Single(peer) = k {
                    f.conversations += size_of::<UserKey>() + key_heap(peer);
                }
            }
        }
        f.dedupe = self.dedupe.bytes();
        f
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use serde_json::json;

    #[test]
    fn the_footprint_grows_with_stored_messages_and_shrinks_with_retention() {
        let mut cfg = Harness::config();
        cfg.history.per_conversation = 10;
        let mut h = Harness::with_config(cfg);
        h.user(1, "alice");
        h.user(2, "bobby");
        let empty = h.b.footprint();
        let send = |h: &mut Harness| {
            let req = json!({"target_id": "bobby",
                "content": {"msg_type": "text", "msg_body": {"text": "x".repeat(64)}}});
            assert_eq!(h.req(1, "s_across_single_text", req).code(), Some(0));
        };
        for _ in 0..10 {
            send(&mut h);
        }
        let ten = h.b.footprint();
        assert!(ten.messages > empty.messages && ten.wire > 10 * 64);
        assert!(ten.sync_logs > empty.sync_logs && ten.threads > empty.threads);
        for _ in 0..10 {
            send(&mut h);
        }
        // Retention keeps ten: the store does not grow.
        assert_eq!(h.b.footprint().messages, ten.messages);
        assert!(h.b.footprint().total() >= ten.messages + ten.sync_logs);
    }
}
