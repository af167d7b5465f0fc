//! Business events (`event_notification`, protocol.md 7.3) and their offline log
//! (`sync_event`, 7.5).
//!
//! [`Backend::notify`] pushes one event object to every live session of the given users
//! (encoded once by the hub) and records it in each user's event log. A user with no live
//! session gets it later through `sync_event` at the next `sync_check`; `sync_event_ack`
//! confirms it.

use super::model::{EventEntry, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Failure};
use serde_json::{json, Value};

/// What a sync check answers for one log: nothing new means no push and the response
/// key moves to the log's head; otherwise a push `{sync_key: head, <field>: items}` and
/// the caller's key stays until it acks.
pub(super) fn pending_page(
    head: i64,
    key: i64,
    field: &str,
    items: Vec<Value>,
) -> (Option<Value>, i64) {
    if items.is_empty() {
        (None, head.max(key))
    } else {
        (Some(json!({"sync_key": head, field: items})), key)
    }
}

impl Backend {
    /// Sends `event` to `users` (each once), skipping the connection `skip` (the sender's
    /// own session for multi-end events).
    pub(crate) fn notify(
        &mut self,
        out: &mut Outcome,
        users: &[UserKey],
        event: Value,
        skip: Option<ConnId>,
    ) {
        let mut to = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for u in users {
            if !seen.insert(u.clone()) || !self.users.contains_key(u) {
                continue;
            }
            let live: Vec<ConnId> = self
                .conns_of(u)
                .iter()
                .copied()
                .filter(|c| Some(*c) != skip)
                .collect();
            let mb = self.mailboxes.entry(u.clone()).or_default();
            mb.event_head += 1;
            let seq = mb.event_head;
            mb.events.push_back(EventEntry {
                seq,
                event: event.clone(),
                delivered: !live.is_empty(),
            });
            while mb.events.len() > self.history.events_per_user {
                mb.events.pop_front();
            }
            to.extend(live);
        }
        out.push(to, PushEvent::EventNotification, event);
    }

    /// A success response that sends `event` to `users` (the common tail of handlers
    /// whose change everyone concerned hears about).
    pub(crate) fn ok_notifying(&mut self, users: &[UserKey], event: Value) -> Outcome {
        let mut out = Outcome::ok_empty();
        self.notify(&mut out, users, event, None);
        out
    }

    /// Undelivered events after `key` for `sync_check`: `(push payload, response key)`.
    pub(super) fn pending_events(&self, user: &UserKey, key: i64) -> (Option<Value>, i64) {
        let Some(mb) = self.mailboxes.get(user) else {
            return (None, key);
        };
        let events: Vec<Value> = mb
            .events
            .iter()
            .filter(|e| e.seq > key && !e.delivered)
            .map(|e| e.event.clone())
            .collect();
        pending_page(mb.event_head, key, "events", events)
    }

    pub(super) fn sync_event_ack(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let (me, key) = self.me_and_sync_key(conn, a)?;
        if let Some(mb) = self.mailboxes.get_mut(&me) {
            for e in mb.events.iter_mut().filter(|e| e.seq <= key) {
                e.delivered = true;
            }
        }
        Ok(Outcome::ok_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::UserKey;
    use super::*;

    #[test]
    fn the_event_log_keeps_the_newest_events_per_user() {
        let mut cfg = Harness::config();
        cfg.history.events_per_user = 3;
        let mut h = Harness::with_config(cfg);
        h.user(1, "alice");
        h.user(2, "bobby");
        h.b.disconnect(2);
        let bobby = [UserKey::new(APP, "bobby")];
        let mut sent = Vec::new();
        for i in 0..10 {
            let ev = h.b.new_event(6, json!({"n": i}));
            h.b.notify(&mut Outcome::default(), &bobby, ev.clone(), None);
            sent.push(ev);
        }
        assert_eq!(h.b.mailboxes[&bobby[0]].events.len(), 3);
        h.login_web(3, "bobby");
        let o = h.req(3, "sync_check", json!({"sync_key": 0, "sync_event_key": 0}));
        let p = o
            .pushes
            .iter()
            .find(|p| p.event == "sync_event")
            .expect("sync_event");
        assert_eq!(p.payload["events"], json!(sent[7..]));
        assert_eq!(p.payload["sync_key"], json!(10));
    }

    #[test]
    fn offline_users_get_events_through_sync_event_once() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.b.disconnect(2);
        let mut out = Outcome::default();
        let ev = h.b.new_event(6, json!({"from_username": "alice"}));
        let users = [
            UserKey::new(APP, "alice"),
            UserKey::new(APP, "bobby"),
            UserKey::new(APP, "bobby"),
        ];
        h.b.notify(&mut out, &users, ev.clone(), None);
        assert_eq!(out.pushes.len(), 1);
        assert_eq!(out.pushes[0].to, vec![1], "only alice is online");
        // bobby logs in and checks.
        h.login_web(3, "bobby");
        let o = h.req(3, "sync_check", json!({"sync_key": 0, "sync_event_key": 0}));
        assert_eq!(resp(&o)["sync_event_key"], json!(0));
        let p = o
            .pushes
            .iter()
            .find(|p| p.event == "sync_event")
            .expect("sync_event");
        assert_eq!(p.payload["events"], json!([ev]));
        let key = p.payload["sync_key"].as_i64().unwrap();
        h.req(3, "sync_event_ack", json!({"sync_key": key}));
        let o = h.req(
            3,
            "sync_check",
            json!({"sync_key": 0, "sync_event_key": key}),
        );
        assert!(o.pushes.iter().all(|p| p.event != "sync_event"));
        assert_eq!(resp(&o)["sync_event_key"], json!(key));
    }

    #[test]
    fn sync_event_ack_with_a_bad_key_confirms_nothing() {
        let mut h = Harness::new();
        h.user(1, "bobby");
        h.b.disconnect(1);
        let mut out = Outcome::default();
        let ev = h.b.new_event(6, json!({"from_username": "alice"}));
        h.b.notify(&mut out, &[UserKey::new(APP, "bobby")], ev.clone(), None);
        assert!(out.pushes.is_empty(), "bobby is offline");
        h.login_web(2, "bobby");
        let check = |h: &mut Harness| {
            h.req(2, "sync_check", json!({"sync_key": 0, "sync_event_key": 0}))
                .pushes
                .into_iter()
                .find(|p| p.event == "sync_event")
        };
        let p = check(&mut h).expect("sync_event");
        let key = p.payload["sync_key"].as_i64().expect("key");
        for bad in [json!("later"), json!(true), json!({"k": key})] {
            let o = h.req(2, "sync_event_ack", json!({ "sync_key": bad }));
            assert_eq!(o.code(), Some(880004), "{bad}");
        }
        let again = check(&mut h).expect("still pending");
        assert_eq!(again.payload["events"], json!([ev]));
    }
}
