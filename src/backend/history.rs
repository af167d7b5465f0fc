//! Message retention: the store keeps at most `history.per_conversation` messages per
//! conversation (a pair of users or a group) and `history.total` in all, retracted
//! messages included. The oldest message goes first, and with it every reference to it:
//! the sync logs and conversation lists of the users who hold it and its receipt state,
//! so no sync, roaming or receipt path ever meets a dangling id.

use super::model::{Message, SyncEntry};
use super::Backend;

impl Backend {
    /// Stores a new message (its holders are added by `record`), then drops the oldest
    /// messages beyond the retention limits.
    pub(super) fn store_message(&mut self, m: Message) {
        let id = m.msg_id;
        let thread = m.thread();
        self.messages.insert(id, m);
        let q = self.threads.entry(thread.clone()).or_default();
        q.push_back(id);
        let mut excess: Vec<u64> = Vec::new();
        while q.len() > self.history.per_conversation {
            match q.pop_front() {
                Some(old) => excess.push(old),
                None => break,
            }
        }
        for old in excess {
            self.drop_message(old);
        }
        while self.messages.len() + self.retracted.len() > self.history.total {
            let oldest = match (self.messages.keys().next(), self.retracted.keys().next()) {
                (Some(a), Some(b)) => *a.min(b),
                (Some(a), None) => *a,
                (None, Some(b)) => *b,
                (None, None) => break,
            };
            self.drop_message(oldest);
        }
    }

    /// Removes a stored or retracted message and every reference to it.
    fn drop_message(&mut self, id: u64) {
        let Some(m) = self
            .messages
            .remove(&id)
            .or_else(|| self.retracted.remove(&id))
        else {
            return;
        };
        let thread = m.thread();
        if let Some(q) = self.threads.get_mut(&thread) {
            if let Some(i) = find_sorted(q.len(), id, |i| q[i]) {
                q.remove(i);
            }
            if q.is_empty() {
                self.threads.remove(&thread);
            }
        }
        self.receipts.remove(&id);
        for uid in &m.holders {
            let Some(user) = self.uids.get(uid) else {
                continue;
            };
            let Some(mb) = self.mailboxes.get_mut(user) else {
                continue;
            };
            let log = &mut mb.log;
            let Some(i) = find_sorted(log.len(), id, |i| log[i].msg_id) else {
                continue;
            };
            let Some(SyncEntry { conv, .. }) = log.remove(i) else {
                continue;
            };
            if let Some(c) = mb.conversations.get_mut(&conv) {
                let ids = &c.msg_ids;
                if let Some(j) = find_sorted(ids.len(), id, |j| ids[j]) {
                    c.msg_ids.remove(j);
                }
            }
        }
    }

    /// Records that `uid`'s mailbox lists message `id` (see [`Message::holders`]).
    pub(super) fn add_holder(&mut self, id: u64, uid: u64) {
        if let Some(m) = self.messages.get_mut(&id) {
            if !m.holders.contains(&uid) {
                m.holders.push(uid);
            }
        }
    }

    /// Messages stored plus retracted ones kept (what `history.total` bounds).
    pub fn retained_count(&self) -> usize {
        self.messages.len() + self.retracted.len()
    }
}

/// The index of `id` in an ascending sequence of `len` ids read by `at` (every list
/// here is in msg_id order: ids are issued in increasing order and appended).
fn find_sorted(len: usize, id: u64, at: impl Fn(usize) -> u64) -> Option<usize> {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match at(mid).cmp(&id) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid),
        }
    }
    None
}
