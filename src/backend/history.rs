//! Message retention: the store keeps at most `history.per_conversation` messages per
//! conversation (a pair of users or a group) and `history.total` in all, retracted
//! messages included. The oldest message goes first, and with it every reference to it:
//! the sync logs and conversation lists of the users who hold it and its receipt state,
//! so no sync, roaming or receipt path ever meets a dangling id.

use super::model::{Message, SyncEntry, Target, UserKey};
use super::Backend;
use std::sync::Arc;

impl Backend {
    /// Stores a new message (its holders are added by `record`), then drops the oldest
    /// messages beyond the retention limits.
    pub(super) fn store_message(&mut self, m: Message) {
        let id = m.msg_id;
        let thread = m.thread();
        self.messages.insert(id, m);
        let q = self.threads.entry(thread.clone()).or_default();
        q.push_back(id);
        let over = q.len().saturating_sub(self.history.per_conversation);
        let excess: smallvec::SmallVec<[u64; 2]> = q.drain(..over).collect();
        for old in excess {
            // Already off its conversation's queue: searching the queue for it again
            // would be a binary search that finds nothing.
            if let Some(m) = self.take_message(old) {
                self.unlist(old, &m);
            }
        }
        while self.messages.len() + self.retracted.len() > self.history.total {
            let oldest = match (self.messages.first_id(), self.retracted.keys().next()) {
                (Some(a), Some(b)) => a.min(*b),
                (Some(a), None) => a,
                (None, Some(b)) => *b,
                (None, None) => break,
            };
            self.drop_message(oldest);
        }
    }

    /// Sets the retention and page limits (a restored state takes the configured ones;
    /// a store above them shrinks with the next message of each conversation).
    pub fn set_history_limits(&mut self, limits: super::limits::HistoryLimits) {
        self.history = limits.sane();
    }

    /// The shared copy of `key`: stored messages point at one copy per user instead of
    /// carrying their own strings. Copies no message uses any more are let go when the
    /// set outgrows the users.
    pub(super) fn intern(&mut self, key: &UserKey) -> Arc<UserKey> {
        if let Some(k) = self.keys.get(key) {
            return k.clone();
        }
        if self.keys.len() > 2 * self.users.len() + 64 {
            self.keys.retain(|k| Arc::strong_count(k) > 1);
        }
        let k = Arc::new(key.clone());
        self.keys.insert(k.clone());
        k
    }

    /// Rebuilds the per-conversation retention queues from the stored and retracted
    /// messages (after a restore from a state file), sharing their user keys again.
    pub(super) fn rebuild_threads(&mut self) {
        self.threads.clear();
        let mut keys = std::mem::take(&mut self.keys);
        let mut share = |k: &mut Arc<UserKey>| match keys.get(&**k) {
            Some(s) => *k = s.clone(),
            None => {
                keys.insert(k.clone());
            }
        };
        for m in self
            .messages
            .values_mut()
            .chain(self.retracted.values_mut())
        {
            share(&mut m.from);
            if let Target::User(t) = &mut m.target {
                share(t);
            }
        }
        self.keys = keys;
        let mut all: Vec<&Message> = self
            .messages
            .values()
            .chain(self.retracted.values())
            .collect();
        all.sort_by_key(|m| m.msg_id);
        for m in all {
            self.threads
                .entry(m.thread())
                .or_default()
                .push_back(m.msg_id);
        }
    }

    /// Removes a stored or retracted message and every reference to it.
    fn drop_message(&mut self, id: u64) {
        let Some(m) = self.take_message(id) else {
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
        self.unlist(id, &m);
    }

    /// Takes a stored or retracted message out of the store.
    fn take_message(&mut self, id: u64) -> Option<Message> {
        self.messages
            .remove(&id)
            .or_else(|| self.retracted.remove(&id))
    }

    /// Removes every reference to message `m` but its conversation's retention queue:
    /// its receipt state and its entries in the holders' mailboxes.
    fn unlist(&mut self, id: u64, m: &Message) {
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

    /// Records that the `uids`' mailboxes list message `id` (see [`Message::holders`]).
    /// A mailbox gets a message once, so no duplicate check is needed (and a duplicate
    /// would only make `drop_message` search twice).
    pub(super) fn add_holders(&mut self, id: u64, uids: impl IntoIterator<Item = u64>) {
        if let Some(m) = self.messages.get_mut(&id) {
            let uids = uids.into_iter();
            // A group message's holders come at once: no spare capacity.
            m.holders.reserve_exact(uids.size_hint().0);
            m.holders.extend(uids);
        }
    }

    /// Messages stored plus retracted ones kept (what `history.total` bounds).
    pub fn retained_count(&self) -> usize {
        self.messages.len() + self.retracted.len()
    }
}

/// The index of `id` in an ascending sequence of `len` ids read by `at` (every list
/// here is in msg_id order: ids are issued in increasing order and appended). Retention
/// drops the oldest message, which is almost always the first: that one is checked
/// before searching (a search reads cold memory at every step).
fn find_sorted(len: usize, id: u64, at: impl Fn(usize) -> u64) -> Option<usize> {
    if len > 0 && at(0) == id {
        return Some(0);
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::super::md5_hex;
    use super::super::test_support::*;
    use super::super::{Backend, UserKey};
    use serde_json::{json, Value};

    #[test]
    fn find_sorted_finds_first_middle_last_and_nothing_else() {
        let ids = [3u64, 5, 8, 13, 21];
        let find = |id| super::find_sorted(ids.len(), id, |i| ids[i]);
        let found: Vec<_> = ids.iter().map(|id| find(*id)).collect();
        assert_eq!(found, (0..5).map(Some).collect::<Vec<_>>());
        for absent in [0, 4, 9, 22] {
            assert_eq!(find(absent), None);
        }
        assert_eq!(super::find_sorted(0, 3, |_| unreachable!()), None);
    }

    /// Every id a mailbox, conversation, thread or receipt refers to is stored (or
    /// retracted), and every stored message is listed by each of its holders.
    pub fn assert_consistent(b: &Backend) {
        let known = |id: &u64| b.messages.contains_key(id) || b.retracted.contains_key(id);
        for (user, mb) in &b.mailboxes {
            for e in &mb.log {
                assert!(known(&e.msg_id), "{user}: log entry {} dangles", e.msg_id);
            }
            for (ck, c) in &mb.conversations {
                for id in &c.msg_ids {
                    assert!(known(id), "{user}: {ck:?} lists dropped {id}");
                }
            }
        }
        for q in b.threads.values() {
            assert!(q.iter().all(known), "thread index dangles");
        }
        assert!(b.receipts.keys().all(known), "receipt state dangles");
        for m in b.messages.values() {
            for uid in &m.holders {
                let user = &b.uids[uid];
                assert!(b.mailboxes[user].log.iter().any(|e| e.msg_id == m.msg_id));
            }
        }
    }

    fn limited(per_conversation: usize, total: usize) -> Harness {
        let mut cfg = Harness::config();
        cfg.history.per_conversation = per_conversation;
        cfg.history.total = total;
        Harness::with_config(cfg)
    }

    fn text(h: &mut Harness, conn: u64, to: &str, extra: Value) -> u64 {
        let mut req =
            json!({"target_id": to, "content": {"msg_type": "text", "msg_body": {"text": "t"}}});
        if let (Some(r), Some(x)) = (req.as_object_mut(), extra.as_object()) {
            r.extend(x.clone());
        }
        let o = h.req(conn, "s_across_single_text", req);
        resp(&o)["msg_id"].as_u64().expect("msg_id")
    }

    fn synced_ids(h: &mut Harness, conn: u64, sync_type: i64) -> Vec<u64> {
        let o = h.req(
            conn,
            "sync_check",
            json!({"sync_key": 0, "sync_type": sync_type}),
        );
        let mut ids = Vec::new();
        for p in &o.pushes {
            if p.event != "sync_conversation" {
                continue;
            }
            for c in p.payload["messages"].as_array().expect("messages") {
                for m in c["msgs"].as_array().expect("msgs") {
                    ids.push(m["msg_id"].as_u64().expect("id"));
                }
            }
        }
        ids
    }

    fn relogin(h: &mut Harness, old: u64, new: u64, name: &str) {
        h.b.disconnect(old);
        h.init(new, APP, SECRET);
        let l = h.req(
            new,
            "login",
            json!({"username": name, "password": md5_hex("pw")}),
        );
        assert_eq!(l.code(), Some(0));
    }

    #[test]
    fn retention_drops_the_oldest_of_a_conversation_and_syncs_stay_consistent() {
        let mut h = limited(3, 1000);
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        h.b.disconnect(2);
        // Both directions of alice/bobby are one conversation.
        let mut ab = vec![text(&mut h, 1, "bobby", json!({}))];
        ab.extend((0..4).map(|_| text(&mut h, 1, "bobby", json!({}))));
        let ac = text(&mut h, 1, "carol", json!({}));
        assert_eq!(h.b.message_count(), 4);
        assert_consistent(&h.b);
        // bobby's offline sync holds exactly the newest three.
        relogin(&mut h, 2, 4, "bobby");
        assert_eq!(synced_ids(&mut h, 4, 0), ab[2..].to_vec());
        let back = text(&mut h, 4, "alice", json!({}));
        assert_consistent(&h.b);
        // alice roams on a new device: the last three of each conversation.
        relogin(&mut h, 1, 5, "alice");
        let mut got = synced_ids(&mut h, 5, 1);
        got.sort();
        let mut want = vec![ab[3], ab[4], back, ac];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(h.b.history(&UserKey::new(APP, "alice")).len(), 4);
    }

    #[test]
    fn total_retention_drops_the_oldest_anywhere_retracted_ones_included() {
        let mut h = limited(100, 3);
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        let first = text(&mut h, 1, "bobby", json!({}));
        let second = text(&mut h, 1, "carol", json!({}));
        assert_eq!(
            h.req(1, "msg_retract", json!({"msg_id": second})).code(),
            Some(0)
        );
        let third = text(&mut h, 3, "bobby", json!({}));
        assert_eq!(h.b.retained_count(), 3);
        let fourth = text(&mut h, 2, "carol", json!({}));
        // `first` went; the retracted `second` still counts and is next.
        assert_eq!(h.b.retained_count(), 3);
        assert!(!h.b.messages.contains_key(&first));
        assert!(h.b.retracted.contains_key(&second));
        text(&mut h, 2, "alice", json!({}));
        assert!(!h.b.retracted.contains_key(&second));
        assert!(h.b.messages.contains_key(&third) && h.b.messages.contains_key(&fourth));
        assert_consistent(&h.b);
        // A dropped message is simply unknown afterwards.
        assert_eq!(
            h.req(1, "msg_retract", json!({"msg_id": first})).code(),
            Some(881403)
        );
    }

    #[test]
    fn a_dropped_need_receipt_message_loses_its_receipt_state() {
        let mut h = limited(1, 100);
        h.user(1, "alice");
        h.user(2, "bobby");
        let m = text(&mut h, 1, "bobby", json!({"need_receipt": true}));
        assert_eq!(
            h.req(1, "msg_unread_list", json!({"msg_id": m})).code(),
            Some(0)
        );
        text(&mut h, 2, "alice", json!({}));
        assert_eq!(
            h.req(1, "msg_unread_list", json!({"msg_id": m})).code(),
            Some(880008)
        );
        assert_consistent(&h.b);
    }

    #[test]
    fn group_retention_cleans_every_member_mailbox() {
        let mut h = limited(2, 100);
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        let (gid, _) =
            super::super::receipts::tests::group_msg(&mut h, "alice", &["bobby", "carol"], "alice");
        let mut sent = Vec::new();
        for _ in 0..4 {
            let o = h.req(1, "send_group_msg", json!({"target_gid": gid.to_string(), "content": {"msg_type": "text", "msg_body": {"text": "g"}}}));
            sent.push(resp(&o)["msg_id"].as_u64().expect("id"));
        }
        assert_eq!(h.b.message_count(), 2);
        assert_consistent(&h.b);
        for name in ["alice", "bobby", "carol"] {
            let ids: Vec<u64> =
                h.b.history(&UserKey::new(APP, name))
                    .iter()
                    .map(|m| m.msg_id)
                    .collect();
            assert_eq!(ids, sent[2..].to_vec(), "{name}");
        }
    }
}
