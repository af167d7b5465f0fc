//! `sync_check` and the `sync_*_ack` confirmations (protocol.md 3.4, 7.4).
//!
//! Each user has a sync log: every stored message gets the next sync key. A device
//! confirms messages with `msg_recv_v2` (live pushes) or `sync_conversation_ack` (sync
//! pushes); confirmed entries are never pushed again. `sync_check` answers first and then
//! pushes what the device is missing; with roaming (`flag: 1` at init) and a zero key,
//! the whole history of every conversation is replayed.

use super::model::{ConvKey, Mailbox, SyncCursor, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Failure};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Most messages per conversation replayed by roaming.
pub const ROAMING_LIMIT: usize = 100;

/// What a page charges per message beyond its stored JSON: a comma and a
/// `receipt_msgs` entry (`{"msg_id":…,"unread_count":…,"mtime":…}`).
const MSG_OVERHEAD: usize = 80;
/// What a page charges per conversation: its header fields, brackets and commas
/// (`from_username` up to 128 bytes, an appkey, counts).
const CONV_OVERHEAD: usize = 400;

/// conversation -> (msg_ids to send, how many of the last ones are new)
type PageConvs = BTreeMap<ConvKey, (Vec<u64>, usize)>;

/// One `sync_conversation` push being filled: its messages, and where the next page
/// starts if this one is full.
struct Page {
    convs: PageConvs,
    msgs: usize,
    bytes: usize,
    max_msgs: usize,
    max_bytes: usize,
    next: Option<SyncCursor>,
}

impl Page {
    fn new(limits: super::limits::HistoryLimits) -> Self {
        Self {
            convs: BTreeMap::new(),
            msgs: 0,
            bytes: 0,
            max_msgs: limits.sync_page_messages,
            max_bytes: limits.sync_page_bytes,
            next: None,
        }
    }

    /// Whether a message of `len` stored bytes still fits, in a conversation already
    /// on the page or not (a page always takes one message). Each message is charged
    /// its JSON plus a possible `receipt_msgs` entry, each conversation its header, so
    /// a page's JSON stays under `sync_page_bytes` plus one message.
    fn fits(&mut self, len: usize, new_conv: bool) -> bool {
        let cost = len + MSG_OVERHEAD + if new_conv { CONV_OVERHEAD } else { 0 };
        if self.msgs > 0 && (self.msgs >= self.max_msgs || self.bytes + cost > self.max_bytes) {
            return false;
        }
        self.msgs += 1;
        self.bytes += cost;
        true
    }
}

/// Whether `mb`'s log holds `id` in conversation `ck`, not yet confirmed.
fn undelivered(mb: &Mailbox, id: u64, ck: &ConvKey) -> bool {
    let at = mb.log.partition_point(|e| e.msg_id < id);
    mb.log
        .range(at..)
        .take_while(|e| e.msg_id == id)
        .any(|e| &e.conv == ck && !e.delivered)
}

impl Backend {
    /// The caller and the `sync_key` an ack confirms (0 when absent).
    pub(super) fn me_and_sync_key(
        &self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<(UserKey, i64), Failure> {
        Ok((self.me(conn)?, a.opt_i64("sync_key")?.unwrap_or(0)))
    }

    pub(super) fn sync_check(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let key = a.opt_i64("sync_key")?.unwrap_or(0);
        let sync_type = a.opt_i64("sync_type")?.unwrap_or(0);
        let event_key = a.opt_i64("sync_event_key")?.unwrap_or(0);
        let receipt_key = a.opt_i64("msg_receipt_key")?.unwrap_or(0);
        let roaming = sync_type == 1 && key == 0;
        let head = self.mailboxes.get(&me).map_or(0, |mb| mb.head);
        let cursor = if roaming {
            SyncCursor::Roam {
                conv: None,
                skip: 0,
                upto: head,
            }
        } else {
            SyncCursor::Log {
                after: key,
                upto: head,
            }
        };
        let page = self.sync_page(conn, &me, cursor);
        let (events, event_key) = self.pending_events(&me, event_key);
        let (receipts, receipt_key) = self.pending_receipts(&me, receipt_key);
        let mut f = Map::new();
        f.insert(
            "sync_key".into(),
            json!(if page.is_some() { key } else { head.max(key) }),
        );
        f.insert("sync_type".into(), json!(sync_type));
        f.insert("sync_event_key".into(), json!(event_key));
        f.insert("msg_receipt_key".into(), json!(receipt_key));
        let mut out = Outcome::ok(f);
        if let Some(p) = page {
            out.push(vec![conn], PushEvent::SyncConversation, p);
        }
        if let Some(ev) = events {
            out.push(vec![conn], PushEvent::SyncEvent, ev);
        }
        if let Some(r) = receipts {
            out.push(vec![conn], PushEvent::SyncReceipt, r);
        }
        Ok(out)
    }

    /// The `sync_conversation` page starting at `cursor` (`None`: nothing to send), and
    /// the connection's cursor set to where the next page starts.
    fn sync_page(
        &mut self,
        conn: ConnId,
        me: &super::UserKey,
        cursor: SyncCursor,
    ) -> Option<Value> {
        let mut page = Page::new(self.history);
        let empty = Mailbox::default();
        let mb = self.mailboxes.get(me).unwrap_or(&empty);
        let upto = match &cursor {
            SyncCursor::Log { after, upto } => {
                self.log_page(mb, *after, *upto, &mut page);
                *upto
            }
            SyncCursor::Roam { conv, skip, upto } => {
                self.roam_page(mb, conv.as_ref(), *skip, *upto, &mut page);
                *upto
            }
        };
        let key = match &page.next {
            // A full non-roaming page confirms up to its last entry; a full roaming page
            // confirms nothing (its unread counts must hold until the last page).
            Some(SyncCursor::Log { after, .. }) => *after,
            Some(SyncCursor::Roam { .. }) => 0,
            None => upto,
        };
        let messages = self.page_messages(me, page.convs);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.sync_cursor = page.next;
        }
        if messages.is_empty() {
            return None;
        }
        Some(json!({"sync_key": key, "messages": messages}))
    }

    /// Unconfirmed log entries with `after < seq <= upto`, in log order.
    fn log_page(&self, mb: &Mailbox, after: i64, upto: i64, page: &mut Page) {
        let start = mb.log.partition_point(|e| e.seq <= after);
        let mut last = after;
        for e in mb.log.range(start..) {
            if e.seq > upto {
                break;
            }
            if e.delivered {
                continue;
            }
            // Retracted messages are gone from the store: never send or count them.
            let Some(m) = self.messages.get(&e.msg_id) else {
                continue;
            };
            let new_conv = !page.convs.contains_key(&e.conv);
            if !page.fits(m.wire.len(), new_conv) {
                page.next = Some(SyncCursor::Log { after: last, upto });
                return;
            }
            last = e.seq;
            let entry = page.convs.entry(e.conv.clone()).or_default();
            entry.0.push(e.msg_id);
            entry.1 += 1;
        }
    }

    /// Roaming: the last [`ROAMING_LIMIT`] messages of every conversation, in
    /// conversation order, from `from` (skipping `skip` of its window) on.
    fn roam_page(
        &self,
        mb: &Mailbox,
        from: Option<&ConvKey>,
        skip: usize,
        upto: i64,
        page: &mut Page,
    ) {
        let convs: Box<dyn Iterator<Item = _>> = match from {
            Some(c) => Box::new(mb.conversations.range(c.clone()..)),
            None => Box::new(mb.conversations.iter()),
        };
        for (ck, conv) in convs {
            let skip = if from == Some(ck) { skip } else { 0 };
            let start = conv.msg_ids.len().saturating_sub(ROAMING_LIMIT);
            let window: Vec<u64> = conv.msg_ids.range(start..).copied().collect();
            let mut taken = Vec::new();
            let mut end = window.len();
            for (i, id) in window.iter().enumerate().skip(skip) {
                let Some(m) = self.messages.get(id) else {
                    continue;
                };
                if !page.fits(m.wire.len(), taken.is_empty()) {
                    page.next = Some(SyncCursor::Roam {
                        conv: Some(ck.clone()),
                        skip: i,
                        upto,
                    });
                    end = i;
                    break;
                }
                taken.push(*id);
            }
            if !taken.is_empty() {
                let span = &window[skip.min(end)..end];
                let unread = span.iter().filter(|id| undelivered(mb, **id, ck)).count();
                page.convs.insert(ck.clone(), (taken, unread));
            }
            if page.next.is_some() {
                return;
            }
        }
    }

    /// The `messages` array of a page: one entry per conversation, messages decoded
    /// from their stored JSON.
    fn page_messages(&self, me: &super::UserKey, convs: PageConvs) -> Vec<Value> {
        let mut messages = Vec::new();
        for (ck, (ids, unsync)) in convs {
            let msgs: Vec<Value> = ids
                .iter()
                .filter_map(|id| self.messages.get(id))
                .map(|m| m.wire_value())
                .collect();
            if msgs.is_empty() {
                continue;
            }
            let unsync = unsync.min(msgs.len());
            let (msg_type, from_appkey, from_username, from_gid) = match &ck {
                ConvKey::Single(peer) => (3, peer.appkey.clone(), peer.username.clone(), 0),
                ConvKey::Group(gid) => (4, String::new(), String::new(), *gid),
            };
            messages.push(json!({
                "msg_type": msg_type,
                "from_appkey": from_appkey,
                "from_username": from_username,
                "from_gid": from_gid,
                "unsync_count": unsync,
                "receipt_msgs": self.receipt_msgs_of(me, &ids),
                "msgs": msgs,
            }));
        }
        messages
    }

    pub(super) fn sync_conversation_ack(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, key) = self.me_and_sync_key(conn, a)?;
        if let Some(mb) = self.mailboxes.get_mut(&me) {
            for e in mb.log.iter_mut().take_while(|e| e.seq <= key) {
                e.delivered = true;
            }
        }
        let mut out = Outcome::ok_empty();
        // A sync sent in pages: this ack asks for the next one.
        let cursor = self.conns.get_mut(&conn).and_then(|c| c.sync_cursor.take());
        if let Some(cursor) = cursor {
            if let Some(p) = self.sync_page(conn, &me, cursor) {
                out.push(vec![conn], PushEvent::SyncConversation, p);
            }
        }
        Ok(out)
    }

    /// Receipt changes after `key` for `sync_check` (`sync_receipt`): `(push, response key)`.
    pub(super) fn pending_receipts(&self, user: &super::UserKey, key: i64) -> (Option<Value>, i64) {
        self.receipt_pending(user, key)
    }

    /// Every message in a user's sync log, oldest first (tests, admin views).
    pub fn history(&self, user: &super::UserKey) -> Vec<&super::model::Message> {
        let Some(mb) = self.mailboxes.get(user) else {
            return Vec::new();
        };
        mb.log
            .iter()
            .filter_map(|e| self.messages.get(&e.msg_id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use serde_json::json;
    use serde_json::Value;

    fn text(h: &mut Harness, conn: u64, to: &str, t: &str) -> u64 {
        let o = h.req(
            conn,
            "s_across_single_text",
            json!({"target_id": to, "content": {"msg_type": "text", "msg_body": {"text": t}}}),
        );
        resp(&o)["msg_id"].as_u64().expect("msg_id")
    }

    /// The msg_ids of a synced conversation, in order.
    fn msg_ids(conv: &Value) -> Vec<u64> {
        conv["msgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["msg_id"].as_u64().unwrap())
            .collect()
    }

    fn check(h: &mut Harness, conn: u64, key: i64, sync_type: i64) -> crate::backend::Outcome {
        h.req(conn, "sync_check", json!({"sync_key": key, "sync_type": sync_type, "sync_event_key": "17", "msg_receipt_key": 0}))
    }

    #[test]
    fn offline_messages_arrive_once_via_sync_conversation() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.b.disconnect(2);
        let m1 = text(&mut h, 1, "bobby", "one");
        let m2 = text(&mut h, 1, "bobby", "two");
        h.login_web(3, "bobby");
        let o = check(&mut h, 3, 0, 0);
        let r = resp(&o);
        assert_eq!(r["sync_key"], json!(0));
        assert_eq!(r["sync_event_key"], json!(17));
        assert_eq!(o.pushes.len(), 1);
        let p = &o.pushes[0];
        assert_eq!(p.event, "sync_conversation");
        assert_eq!(p.to, vec![3]);
        let conv = &p.payload["messages"][0];
        assert_eq!(conv["from_username"], json!("alice"));
        assert_eq!(conv["from_appkey"], json!(APP));
        assert_eq!(conv["unsync_count"], json!(2));
        let ids = msg_ids(conv);
        assert_eq!(ids, vec![m1, m2]);
        let key = p.payload["sync_key"].as_i64().unwrap();
        // Not acked yet: a re-check sends them again.
        assert_eq!(check(&mut h, 3, 0, 0).pushes.len(), 1);
        h.req(3, "sync_conversation_ack", json!({"sync_key": key}));
        let o = check(&mut h, 3, key, 0);
        assert!(o.pushes.is_empty());
        assert_eq!(resp(&o)["sync_key"], json!(key));
    }

    #[test]
    fn live_messages_confirmed_by_msg_recv_are_not_synced_again() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let m = text(&mut h, 1, "bobby", "live");
        let unconfirmed = check(&mut h, 2, 0, 0);
        assert_eq!(unconfirmed.pushes.len(), 1);
        h.req(
            2,
            "msg_recv_v2",
            json!({"msg_id": m, "msg_type": 3, "from_uid": 1}),
        );
        assert!(check(&mut h, 2, 0, 0).pushes.is_empty());
    }

    #[test]
    fn roaming_replays_history_including_own_messages() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let a = text(&mut h, 1, "bobby", "a");
        let b = text(&mut h, 2, "alice", "b");
        h.req(2, "msg_recv_v2", json!({"msg_id": a}));
        // bobby on a new device with roaming on.
        h.b.disconnect(2);
        h.login_web(4, "bobby");
        let o = check(&mut h, 4, 0, 1);
        let conv = &o.pushes[0].payload["messages"][0];
        let ids = msg_ids(conv);
        assert_eq!(ids, vec![a, b]);
        assert_eq!(conv["unsync_count"], json!(0));
        assert_eq!(resp(&o)["sync_type"], json!(1));
    }

    #[rstest::rstest]
    #[case::sync_key(json!({"sync_key": "abc"}))]
    #[case::sync_type(json!({"sync_key": 0, "sync_type": [1]}))]
    #[case::sync_event_key(json!({"sync_key": 0, "sync_event_key": {"k": 1}}))]
    #[case::msg_receipt_key(json!({"sync_key": 0, "msg_receipt_key": 1.5}))]
    fn sync_check_rejects_keys_that_are_not_integers(#[case] req: serde_json::Value) {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        text(&mut h, 1, "bobby", "pending");
        let o = h.req(2, "sync_check", req);
        assert_eq!(o.code(), Some(880004));
        assert!(o.pushes.is_empty());
    }

    #[test]
    fn sync_conversation_ack_with_a_bad_key_confirms_nothing() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        text(&mut h, 1, "bobby", "pending");
        let o = check(&mut h, 2, 0, 0);
        let key = o.pushes[0].payload["sync_key"].as_i64().expect("key");
        assert_eq!(
            h.req(2, "sync_conversation_ack", json!({"sync_key": "soon"}))
                .code(),
            Some(880004)
        );
        assert_eq!(
            h.req(2, "sync_conversation_ack", json!({"sync_key": [key]}))
                .code(),
            Some(880004)
        );
        // A key below the message's confirms nothing either.
        assert_eq!(
            h.req(2, "sync_conversation_ack", json!({"sync_key": key - 1}))
                .code(),
            Some(0)
        );
        assert_eq!(check(&mut h, 2, 0, 0).pushes.len(), 1);
    }

    /// (peer, msg_id) in arrival order, (peer, unsync_count) per entry, push sizes.
    type Followed = (Vec<(String, u64)>, Vec<(String, i64)>, Vec<usize>);

    /// Follows a paged sync: every `sync_conversation` push of `o` and of the acks it
    /// leads to. Returns (conversation, msg_id, unsync_count of its entry) in arrival
    /// order and each push's JSON length.
    fn follow_pages(h: &mut Harness, conn: u64, mut o: crate::backend::Outcome) -> Followed {
        let (mut ids, mut unsync, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(p) = o.pushes.iter().find(|p| p.event == "sync_conversation") {
            sizes.push(p.payload.to_string().len());
            for c in p.payload["messages"].as_array().expect("messages") {
                let who = c["from_username"].as_str().unwrap_or_default().to_owned();
                unsync.push((who.clone(), c["unsync_count"].as_i64().expect("unsync")));
                for m in c["msgs"].as_array().expect("msgs") {
                    ids.push((who.clone(), m["msg_id"].as_u64().expect("id")));
                }
            }
            let key = p.payload["sync_key"].clone();
            o = h.req(conn, "sync_conversation_ack", json!({ "sync_key": key }));
            assert_eq!(o.code(), Some(0));
            assert!(sizes.len() < 10_000, "paging does not end");
        }
        (ids, unsync, sizes)
    }

    #[test]
    fn a_large_backlog_arrives_in_pages_each_within_the_limit() {
        let mut cfg = Harness::config();
        cfg.history.per_conversation = 200_000;
        let limits = cfg.history;
        let mut h = Harness::with_config(cfg);
        h.user(1, "alice");
        h.user(2, "bobby");
        h.b.disconnect(2);
        let sent: Vec<u64> = (0..100_000)
            .map(|i| text(&mut h, 1, "bobby", &format!("{i:064}")))
            .collect();
        h.login_web(3, "bobby");
        let first = check(&mut h, 3, 0, 0);
        // The response keeps the requested key until the pages are confirmed.
        assert_eq!(resp(&first)["sync_key"], json!(0));
        let (ids, _, sizes) = follow_pages(&mut h, 3, first);
        let got: Vec<u64> = ids.iter().map(|(_, id)| *id).collect();
        assert_eq!(got.len(), sent.len());
        assert_eq!(got, sent, "every message once, oldest first");
        assert!(sizes.len() >= 100_000 / limits.sync_page_messages);
        let bound = limits.sync_page_bytes + 8 * 1024;
        assert!(
            sizes.iter().all(|n| *n <= bound),
            "a page over {bound}: {:?}",
            sizes.iter().max()
        );
        // Everything is confirmed: nothing more to sync.
        let head = h.b.mailboxes[&crate::backend::UserKey::new(APP, "bobby")].head;
        let again = check(&mut h, 3, head, 0);
        assert!(again.pushes.is_empty());
        assert_eq!(resp(&again)["sync_key"], json!(head));
    }

    #[test]
    fn roaming_in_pages_keeps_the_unread_counts_of_later_pages() {
        let mut cfg = Harness::config();
        cfg.history.sync_page_messages = 7;
        let mut h = Harness::with_config(cfg);
        h.user(1, "bobby");
        let peers = ["alice", "carol", "david"];
        for (i, p) in peers.iter().enumerate() {
            h.user(10 + i as u64, p);
            for n in 0..5 {
                text(&mut h, 10 + i as u64, "bobby", &format!("{p} {n}"));
            }
        }
        // bobby read alice's five on his first device.
        for e in
            h.b.mailboxes
                .get_mut(&crate::backend::UserKey::new(APP, "bobby"))
                .expect("mb")
                .log
                .iter_mut()
                .take(5)
        {
            e.delivered = true;
        }
        h.b.disconnect(1);
        h.login_web(2, "bobby");
        let o = check(&mut h, 2, 0, 1);
        let (ids, unsync, sizes) = follow_pages(&mut h, 2, o);
        assert_eq!(sizes.len(), 3, "15 messages in pages of 7");
        assert_eq!(ids.len(), 15);
        let mut per_peer = std::collections::BTreeMap::new();
        for (who, n) in unsync {
            *per_peer.entry(who).or_insert(0) += n;
        }
        assert_eq!(per_peer["alice"], 0);
        assert_eq!(per_peer["carol"], 5);
        assert_eq!(per_peer["david"], 5);
        // The last page's key confirmed everything.
        let head = h.b.mailboxes[&crate::backend::UserKey::new(APP, "bobby")].head;
        assert!(check(&mut h, 2, head, 0).pushes.is_empty());
    }

    #[test]
    fn a_page_ack_retried_or_without_paging_sends_nothing_more() {
        let mut cfg = Harness::config();
        cfg.history.sync_page_messages = 2;
        let mut h = Harness::with_config(cfg);
        h.user(1, "alice");
        h.user(2, "bobby");
        h.b.disconnect(2);
        let sent: Vec<u64> = (0..3)
            .map(|i| text(&mut h, 1, "bobby", &i.to_string()))
            .collect();
        h.login_web(3, "bobby");
        let o = check(&mut h, 3, 0, 0);
        let key = o.pushes[0].payload["sync_key"].clone();
        let next = h.req_rid(3, "sync_conversation_ack", 900, json!({"sync_key": key}));
        assert_eq!(next.pushes.len(), 1);
        assert_eq!(
            next.pushes[0].payload["messages"][0]["msgs"][0]["msg_id"],
            json!(sent[2])
        );
        // The same rid again: answered from the cache, no second page.
        assert!(h
            .req_rid(3, "sync_conversation_ack", 900, json!({"sync_key": key}))
            .pushes
            .is_empty());
        // An ack with nothing paged sends nothing.
        assert!(h
            .req(3, "sync_conversation_ack", json!({"sync_key": 1}))
            .pushes
            .is_empty());
    }
}
