//! Read receipts and unread counts (protocol.md 4.2, 7.6, 7.7, 8): `receipt_report`,
//! `msg_unread_list`, `unread_single_count`, `unread_group_count`, `sync_receipt_ack`,
//! the `receipt_change` push, the per-user receipt log behind `sync_receipt`, and
//! events 200 and 201.
//!
//! A message sent with `need_receipt` has a [`ReceiptState`](super::model::ReceiptState)
//! (filled by the send paths). A reader's report moves them from `unread` to `read`; each
//! change is pushed to the sender's live sessions as `receipt_change` and appended to the
//! sender's receipt log, which `sync_check` replays (`sync_receipt`) until acked.

use super::model::{Target, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

/// One entry of a user's receipt log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceiptEntry {
    pub seq: i64,
    /// `{type, gid? | appkey, username, receipt_msgs:[{msg_id, unread_count, mtime}]}`.
    pub receipt: Value,
    /// Pushed live as `receipt_change`, or acked with `sync_receipt_ack`.
    pub delivered: bool,
}

/// A user's receipt log (`msg_receipt_key` space).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceiptLog {
    pub head: i64,
    pub entries: VecDeque<ReceiptEntry>,
}

/// The conversation of one reported session, as the reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ReceiptConv {
    /// Messages from this user to the reader.
    Single(UserKey),
    Group(u64),
}

impl ReceiptConv {
    /// `description` of event 201 / the echo in the response.
    fn describe(&self) -> Value {
        match self {
            ReceiptConv::Single(u) => {
                json!({"type": 3, "appkey": u.appkey, "username": u.username})
            }
            ReceiptConv::Group(gid) => json!({"type": 4, "gid": gid}),
        }
    }
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// `msg_ids`: a non-empty array of integers (or numeric strings); nulls are dropped.
fn msg_ids(s: Args<'_>) -> Result<Vec<u64>, Failure> {
    let list = s
        .opt_array("msg_ids")?
        .ok_or_else(|| Failure::new(Code::Missing, "msg_ids is required"))?;
    let mut ids = Vec::new();
    for v in list {
        let id = match v {
            Value::Null => continue,
            Value::Number(n) => n.as_u64(),
            Value::String(t) => t.trim().parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| Failure::new(Code::MsgIdInvalid, format!("msg_ids: {v} is not a msg_id")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(Failure::new(Code::Missing, "msg_ids must not be empty"));
    }
    Ok(ids)
}

/// A gid from a string or number field.
fn gid(a: Args<'_>) -> Result<u64, Failure> {
    let raw = a
        .opt_id("gid")?
        .ok_or_else(|| Failure::new(Code::Missing, "gid is required"))?;
    raw.trim()
        .parse::<u64>()
        .map_err(|_| Failure::new(Code::InvalidValue, format!("gid {raw} is not a group id")))
}

impl Backend {
    /// The user's other live sessions exist (then own-device events are worth sending;
    /// with none, recording them would echo them back to the acting device at its next
    /// `sync_check`).
    pub(super) fn has_other_sessions(&self, me: &UserKey, conn: ConnId) -> bool {
        self.conns_of(me).iter().any(|c| *c != conn)
    }

    /// Parses one `sessions[]` entry into its conversation and message ids.
    fn receipt_session(
        &self,
        me: &UserKey,
        s: Args<'_>,
    ) -> Result<(ReceiptConv, Vec<u64>), Failure> {
        let ty = s
            .opt_i64("type")?
            .ok_or_else(|| Failure::new(Code::Missing, "sessions[].type is required"))?;
        let session = match ty {
            3 => ReceiptConv::Single(self.user_arg(me, s, Code::TargetUserNotExist)?),
            4 => {
                let gid = gid(s)?;
                self.target_group(gid)?;
                ReceiptConv::Group(gid)
            }
            other => {
                return Err(Failure::new(
                    Code::InvalidValue,
                    format!("sessions[].type must be 3 or 4, not {other}"),
                ))
            }
        };
        Ok((session, msg_ids(s)?))
    }

    /// Appends a receipt change to a sender's log; `delivered` when pushed live.
    fn log_receipt(&mut self, user: &UserKey, mut receipt: Value, now: i64, delivered: bool) {
        if let Some(list) = receipt
            .get_mut("receipt_msgs")
            .and_then(Value::as_array_mut)
        {
            for r in list.iter_mut() {
                if let Some(m) = r.as_object_mut() {
                    m.insert("mtime".into(), json!(now));
                }
            }
        }
        let log = self.receipt_logs.entry(user.clone()).or_default();
        log.head += 1;
        let seq = log.head;
        log.entries.push_back(ReceiptEntry {
            seq,
            receipt,
            delivered,
        });
        // Bounded like the event log: the oldest receipt changes go first.
        while log.entries.len() > self.history.events_per_user {
            log.entries.pop_front();
        }
    }

    pub(super) fn receipt_report(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let list = a
            .opt_array("sessions")?
            .ok_or_else(|| Failure::new(Code::Missing, "sessions is required"))?;
        if list.is_empty() {
            return Err(Failure::new(Code::Missing, "sessions must not be empty"));
        }
        // Validate everything first: a bad session fails the whole request unchanged.
        let mut sessions = Vec::new();
        for s in list {
            let Value::Object(m) = s else {
                return Err(Failure::new(
                    Code::InvalidType,
                    "sessions[] must be objects",
                ));
            };
            sessions.push(self.receipt_session(&me, Args(m))?);
        }
        let now = self.now_ms();
        let mut out = Outcome::ok(fields(
            sessions
                .first()
                .map(|(s, _)| match s {
                    ReceiptConv::Single(u) => json!({"appkey": u.appkey, "username": u.username}),
                    ReceiptConv::Group(gid) => json!({"gid": gid}),
                })
                .unwrap_or_else(|| json!({})),
        ));
        let other_devices = self.has_other_sessions(&me, conn);
        for (session, ids) in sessions {
            // sender → [(msg_id, unread_count)]
            let mut changes: BTreeMap<UserKey, Vec<Value>> = BTreeMap::new();
            let mut read_ids = Vec::new();
            for id in ids {
                let Some(msg) = self.messages.get(&id) else {
                    continue;
                };
                let in_session = match (&session, &msg.target) {
                    (ReceiptConv::Single(peer), Target::User(t)) => *msg.from == *peer && **t == me,
                    (ReceiptConv::Group(g), Target::Group(t)) => g == t && *msg.from != me,
                    _ => false,
                };
                if !in_session {
                    continue;
                }
                read_ids.push(id);
                let sender = (*msg.from).clone();
                let Some(state) = self.receipts.get_mut(&id) else {
                    continue;
                };
                if state.unread.remove(&me) {
                    state.read.insert(me.clone());
                    let sender = state.sender.clone().unwrap_or(sender);
                    changes
                        .entry(sender)
                        .or_default()
                        .push(json!({"msg_id": id, "unread_count": state.unread.len()}));
                }
            }
            for (sender, receipt_msgs) in changes {
                let receipt = match &session {
                    ReceiptConv::Single(_) => json!({
                        "type": 3, "appkey": me.appkey, "username": me.username,
                        "receipt_msgs": receipt_msgs,
                    }),
                    ReceiptConv::Group(gid) => json!({
                        "type": 4, "gid": gid, "receipt_msgs": receipt_msgs,
                    }),
                };
                let live = self.conns_of(&sender).to_vec();
                self.log_receipt(&sender, receipt.clone(), now, !live.is_empty());
                out.push(live, PushEvent::ReceiptChange, receipt);
            }
            if other_devices && !read_ids.is_empty() {
                let ev = self.new_event(
                    201,
                    json!({"msg_ids": read_ids, "description": session.describe()}),
                );
                self.notify(&mut out, std::slice::from_ref(&me), ev, Some(conn));
            }
        }
        Ok(out)
    }

    pub(super) fn sync_receipt_ack(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, key) = self.me_and_sync_key(conn, a)?;
        if let Some(log) = self.receipt_logs.get_mut(&me) {
            for e in log.entries.iter_mut().filter(|e| e.seq <= key) {
                e.delivered = true;
            }
        }
        Ok(Outcome::ok_empty())
    }

    /// Undelivered receipt changes after `key`: `(sync_receipt payload, response key)`.
    pub(super) fn receipt_pending(&self, user: &UserKey, key: i64) -> (Option<Value>, i64) {
        let Some(log) = self.receipt_logs.get(user) else {
            return (None, key);
        };
        let receipts: Vec<Value> = log
            .entries
            .iter()
            .filter(|e| e.seq > key && !e.delivered)
            .map(|e| e.receipt.clone())
            .collect();
        super::events::pending_page(log.head, key, "receipts", receipts)
    }

    /// `receipt_msgs` of a `sync_conversation` entry: the user's own need-receipt
    /// messages among `ids` with their current unread counts.
    pub(super) fn receipt_msgs_of(&self, me: &UserKey, ids: &[u64]) -> Vec<Value> {
        ids.iter()
            .filter_map(|id| {
                let m = self.messages.get(id).filter(|m| *m.from == *me)?;
                let st = self.receipts.get(id)?;
                Some(json!({"msg_id": id, "unread_count": st.unread.len(), "mtime": m.ctime_ms}))
            })
            .collect()
    }

    pub(super) fn msg_unread_list(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let id = a
            .opt_i64("msg_id")?
            .ok_or_else(|| Failure::new(Code::Missing, "msg_id is required"))?;
        let invalid = |why: &str| Failure::new(Code::MsgIdInvalid, format!("msg_id {id}: {why}"));
        let id = u64::try_from(id).map_err(|_| invalid("not a message id"))?;
        let msg = self
            .messages
            .get(&id)
            .ok_or_else(|| invalid("no such message"))?;
        if *msg.from != me {
            return Err(invalid("only the sender may list its readers"));
        }
        let state = self
            .receipts
            .get(&id)
            .ok_or_else(|| invalid("the message was sent without need_receipt"))?;
        let person = |u: &UserKey| {
            json!({
                "appkey": u.appkey,
                "username": u.username,
                "nickname": self.users.get(u).map(|x| x.nickname.clone()).unwrap_or_default(),
            })
        };
        let unread: Vec<Value> = state.unread.iter().map(person).collect();
        let read: Vec<Value> = state.read.iter().map(person).collect();
        Ok(Outcome::ok(fields(json!({
            "msg_unread_list": {"unread_list": unread, "read_list": read}
        }))))
    }

    /// Event 200 ("conversation read up to now") to the user's other sessions.
    fn conversation_read(&mut self, conn: ConnId, me: &UserKey, description: Value) -> Outcome {
        let mut out = Outcome::ok_empty();
        if self.has_other_sessions(me, conn) {
            let ev = self.new_event(200, json!({ "description": description }));
            self.notify(&mut out, std::slice::from_ref(me), ev, Some(conn));
        }
        out
    }

    fn check_type(a: Args<'_>, want: i64) -> Result<(), Failure> {
        match a.opt_i64("type")? {
            Some(t) if t != want => Err(Failure::new(
                Code::InvalidValue,
                format!("type must be {want}, not {t}"),
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn unread_single_count(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        Self::check_type(a, 3)?;
        let peer = self.user_arg(&me, a, Code::TargetUserNotExist)?;
        Ok(self.conversation_read(conn, &me, ReceiptConv::Single(peer).describe()))
    }

    pub(super) fn unread_group_count(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        Self::check_type(a, 4)?;
        let gid = gid(a)?;
        let group = self.target_group(gid)?;
        if !group.members.contains_key(&me) {
            return Err(Failure::new(
                Code::NotInGroup,
                format!("not a member of group {gid}"),
            ));
        }
        Ok(self.conversation_read(conn, &me, ReceiptConv::Group(gid).describe()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::model::{Message, ReceiptState};
    use super::super::test_support::*;
    use super::*;
    use rstest::rstest;

    fn send_receipt(h: &mut Harness, conn: u64, to: &str) -> u64 {
        let o = h.req(
            conn,
            "s_across_single_text",
            json!({"target_id": to, "need_receipt": true,
                   "content": {"msg_type": "text", "msg_body": {"text": "read me"}}}),
        );
        resp(&o)["msg_id"].as_u64().expect("msg_id")
    }

    /// A group and a need-receipt message from `from` in it, built directly (group sends
    /// belong to another area).
    pub fn group_msg(h: &mut Harness, owner: &str, members: &[&str], from: &str) -> (u64, u64) {
        let gid = h.b.seed_group(test_group(owner, members)).expect("group");
        let msg_id = group_message(h, gid, from);
        (gid, msg_id)
    }

    pub fn group_message(h: &mut Harness, gid: u64, from: &str) -> u64 {
        let msg_id = h.b.ids.next_msg();
        let from = UserKey::new(APP, from);
        let now = h.b.now_ms();
        let members: Vec<UserKey> = h.b.groups[&gid].members.keys().cloned().collect();
        h.b.store_message(Message::new(
            msg_id,
            from.clone().into(),
            Target::Group(gid),
            now,
            Message::encode(
                &json!({"msg_id": msg_id, "msg_type": 4, "from_gid": gid, "ctime_ms": now,
                        "content": {"from_id": from.username, "from_appkey": APP,
                                    "msg_type": "text", "msg_body": {"text": "g"}}}),
            ),
        ));
        h.b.receipts.insert(
            msg_id,
            ReceiptState {
                sender: Some(from.clone()),
                unread: members.into_iter().filter(|m| *m != from).collect(),
                read: Default::default(),
            },
        );
        for m in h.b.groups[&gid].members.keys().cloned().collect::<Vec<_>>() {
            h.b.record(
                &m,
                super::super::model::ConvKey::Group(gid),
                msg_id,
                now,
                true,
            );
        }
        msg_id
    }

    fn second_session(h: &mut Harness, conn: u64, name: &str) {
        h.login_on(conn, name, "pc");
    }

    #[test]
    fn single_receipt_reaches_sender_and_other_devices() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        second_session(&mut h, 3, "bobby");
        let m = send_receipt(&mut h, 1, "bobby");
        let o = h.req(
            2,
            "receipt_report",
            json!({"sessions": [{"type": 3, "username": "alice", "msg_ids": [m, m]}]}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(resp(&o)["appkey"], json!(APP));
        assert_eq!(resp(&o)["username"], json!("alice"));
        let rc = o
            .pushes
            .iter()
            .find(|p| p.event == "receipt_change")
            .expect("receipt_change");
        assert_eq!(rc.to, vec![1]);
        assert_eq!(
            rc.payload,
            json!({"type": 3, "appkey": APP, "username": "bobby",
                   "receipt_msgs": [{"msg_id": m, "unread_count": 0}]})
        );
        let ev = o
            .pushes
            .iter()
            .find(|p| p.event == "event_notification")
            .expect("201");
        assert_eq!(ev.to, vec![3], "bobby's other session only");
        assert_eq!(ev.payload["event_type"], json!(201));
        assert_eq!(ev.payload["msg_ids"], json!([m]));
        assert_eq!(
            ev.payload["description"],
            json!({"type": 3, "appkey": APP, "username": "alice"})
        );
        // A second report changes nothing for the sender.
        let again = h.req(
            2,
            "receipt_report",
            json!({"sessions": [{"type": 3, "username": "alice", "msg_ids": [m]}]}),
        );
        assert!(again.pushes.iter().all(|p| p.event != "receipt_change"));
        // The read list.
        let o = h.req(1, "msg_unread_list", json!({"msg_id": m}));
        assert_eq!(
            resp(&o)["msg_unread_list"],
            json!({"unread_list": [], "read_list": [{"appkey": APP, "username": "bobby", "nickname": ""}]})
        );
    }

    #[test]
    fn group_receipts_count_down_and_sync_receipt_replays_for_offline_senders() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        let (gid, m) = group_msg(&mut h, "alice", &["bobby", "carol"], "alice");
        let o = h.req(1, "msg_unread_list", json!({"msg_id": m}));
        assert_eq!(
            resp(&o)["msg_unread_list"]["unread_list"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        let o = h.req(
            2,
            "receipt_report",
            json!({"sessions": [{"type": 4, "gid": gid.to_string(), "msg_ids": [m.to_string()]}]}),
        );
        assert_eq!(resp(&o)["gid"], json!(gid));
        let rc = &o.pushes[0];
        assert_eq!(rc.event, "receipt_change");
        assert_eq!(rc.to, vec![1]);
        assert_eq!(
            rc.payload,
            json!({"type": 4, "gid": gid, "receipt_msgs": [{"msg_id": m, "unread_count": 1}]})
        );
        assert!(
            o.pushes.iter().all(|p| p.event != "event_notification"),
            "no other device"
        );
        // alice goes offline; carol reads.
        h.b.disconnect(1);
        let o = h.req(
            3,
            "receipt_report",
            json!({"sessions": [{"type": 4, "gid": gid, "msg_ids": [m]}]}),
        );
        assert!(o.pushes.is_empty());
        second_session(&mut h, 4, "alice");
        let o = h.req(
            4,
            "sync_check",
            json!({"sync_key": 0, "sync_event_key": 0, "msg_receipt_key": 0}),
        );
        assert_eq!(resp(&o)["msg_receipt_key"], json!(0));
        let sr = o
            .pushes
            .iter()
            .find(|p| p.event == "sync_receipt")
            .expect("sync_receipt");
        assert_eq!(sr.to, vec![4]);
        let receipts = sr.payload["receipts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(receipts.len(), 1, "the live change is not replayed");
        assert_eq!(receipts[0]["gid"], json!(gid));
        assert_eq!(receipts[0]["receipt_msgs"][0]["unread_count"], json!(0));
        assert_eq!(receipts[0]["receipt_msgs"][0]["mtime"], json!(T0));
        let key = sr.payload["sync_key"].as_i64().unwrap();
        h.req(4, "sync_receipt_ack", json!({"sync_key": key}));
        let o = h.req(
            4,
            "sync_check",
            json!({"sync_key": 0, "msg_receipt_key": key}),
        );
        assert!(o.pushes.iter().all(|p| p.event != "sync_receipt"));
        assert_eq!(resp(&o)["msg_receipt_key"], json!(key));
    }

    #[test]
    fn roaming_lists_own_need_receipt_messages_with_unread_counts() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let m = send_receipt(&mut h, 1, "bobby");
        let o = h.req(1, "sync_check", json!({"sync_key": 0, "sync_type": 1}));
        let conv = &o.pushes[0].payload["messages"][0];
        assert_eq!(
            conv["receipt_msgs"],
            json!([{"msg_id": m, "unread_count": 1, "mtime": T0}])
        );
    }

    #[test]
    fn a_2_4_0_batch_holds_several_sessions() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        let m1 = send_receipt(&mut h, 1, "bobby");
        let m3 = send_receipt(&mut h, 3, "bobby");
        let o = h.req(
            2,
            "receipt_report",
            json!({"sessions": [{"type": 3, "username": "alice", "msg_ids": [m1]},
                                {"type": 3, "username": "carol", "appkey": APP, "msg_ids": [m3, m1]}]}),
        );
        assert_eq!(o.code(), Some(0));
        let to: Vec<_> = o
            .pushes
            .iter()
            .filter(|p| p.event == "receipt_change")
            .map(|p| p.to.clone())
            .collect();
        assert_eq!(to, vec![vec![1], vec![3]], "m1 is not carol's message");
    }

    #[rstest]
    #[case::no_sessions(json!({}), 880001)]
    #[case::empty_sessions(json!({"sessions": []}), 880001)]
    #[case::not_objects(json!({"sessions": [1]}), 880004)]
    #[case::bad_type(json!({"sessions": [{"type": 5, "username": "alice", "msg_ids": [1]}]}), 880003)]
    #[case::no_ids(json!({"sessions": [{"type": 3, "username": "alice"}]}), 880001)]
    #[case::empty_ids(json!({"sessions": [{"type": 3, "username": "alice", "msg_ids": [null]}]}), 880001)]
    #[case::bad_id(json!({"sessions": [{"type": 3, "username": "alice", "msg_ids": ["x"]}]}), 880008)]
    #[case::unknown_user(json!({"sessions": [{"type": 3, "username": "nobody", "msg_ids": [1]}]}), 880203)]
    #[case::unknown_group(json!({"sessions": [{"type": 4, "gid": 42, "msg_ids": [1]}]}), 880204)]
    fn receipt_report_failures(#[case] req: Value, #[case] code: i64) {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        assert_eq!(h.req(2, "receipt_report", req).code(), Some(code));
    }

    #[test]
    fn msg_unread_list_failures() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let m = send_receipt(&mut h, 1, "bobby");
        let plain = h.req(
            1,
            "s_across_single_text",
            json!({"target_id": "bobby", "content": {"msg_type": "text", "msg_body": {"text": "x"}}}),
        );
        let plain = resp(&plain)["msg_id"].clone();
        assert_eq!(h.req(1, "msg_unread_list", json!({})).code(), Some(880001));
        assert_eq!(
            h.req(1, "msg_unread_list", json!({"msg_id": 5})).code(),
            Some(880008)
        );
        assert_eq!(
            h.req(2, "msg_unread_list", json!({"msg_id": m})).code(),
            Some(880008)
        );
        assert_eq!(
            h.req(1, "msg_unread_list", json!({"msg_id": plain})).code(),
            Some(880008)
        );
        let o = h.req(1, "msg_unread_list", json!({"msg_id": m}));
        assert_eq!(
            resp(&o)["msg_unread_list"]["unread_list"][0]["username"],
            json!("bobby")
        );
    }

    #[test]
    fn reset_unread_sends_event_200_to_other_sessions() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        second_session(&mut h, 3, "alice");
        h.clock.advance_ms(5);
        let o = h.req(
            1,
            "unread_single_count",
            json!({"username": "bobby", "type": 3}),
        );
        assert_eq!(o.code(), Some(0));
        assert_eq!(o.pushes.len(), 1);
        assert_eq!(o.pushes[0].to, vec![3]);
        let ev = &o.pushes[0].payload;
        assert_eq!(ev["event_type"], json!(200));
        assert_eq!(ev["ctime_ms"], json!(T0 + 5));
        assert_eq!(
            ev["description"],
            json!({"type": 3, "appkey": APP, "username": "bobby"})
        );
        let (gid, _) = group_msg(&mut h, "alice", &["bobby"], "bobby");
        let o = h.req(3, "unread_group_count", json!({"gid": gid, "type": 4}));
        assert_eq!(o.pushes[0].to, vec![1]);
        assert_eq!(
            o.pushes[0].payload["description"],
            json!({"type": 4, "gid": gid})
        );
        // A single session: nothing to tell.
        assert!(h
            .req(2, "unread_group_count", json!({"gid": gid, "type": 4}))
            .pushes
            .is_empty());
    }

    #[rstest]
    #[case::single_missing("unread_single_count", json!({"type": 3}), 880001)]
    #[case::single_unknown("unread_single_count", json!({"username": "zz", "type": 3}), 880203)]
    #[case::single_type("unread_single_count", json!({"username": "bobby", "type": 4}), 880003)]
    #[case::group_missing("unread_group_count", json!({"type": 4}), 880001)]
    #[case::group_bad("unread_group_count", json!({"gid": "g1", "type": 4}), 880003)]
    #[case::group_unknown("unread_group_count", json!({"gid": 77, "type": 4}), 880204)]
    fn reset_unread_failures(#[case] event: &str, #[case] req: Value, #[case] code: i64) {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        assert_eq!(h.req(1, event, req).code(), Some(code));
    }

    #[test]
    fn unread_group_count_needs_membership() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        let (gid, _) = group_msg(&mut h, "alice", &["bobby"], "alice");
        assert_eq!(
            h.req(3, "unread_group_count", json!({"gid": gid, "type": 4}))
                .code(),
            Some(880205)
        );
    }

    #[test]
    fn sync_receipt_ack_with_a_bad_key_confirms_nothing() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let (gid, m) = group_msg(&mut h, "alice", &["bobby"], "alice");
        h.b.disconnect(1);
        let o = h.req(
            2,
            "receipt_report",
            json!({"sessions": [{"type": 4, "gid": gid, "msg_ids": [m]}]}),
        );
        assert_eq!(o.code(), Some(0));
        second_session(&mut h, 3, "alice");
        let pending = |h: &mut Harness| {
            h.req(
                3,
                "sync_check",
                json!({"sync_key": 0, "msg_receipt_key": 0}),
            )
            .pushes
            .into_iter()
            .find(|p| p.event == "sync_receipt")
        };
        let sr = pending(&mut h).expect("sync_receipt");
        let key = sr.payload["sync_key"].as_i64().expect("key");
        for bad in [json!("x"), json!([key]), json!(0.5)] {
            let o = h.req(3, "sync_receipt_ack", json!({ "sync_key": bad }));
            assert_eq!(o.code(), Some(880004), "{bad}");
        }
        let again = pending(&mut h).expect("still pending");
        assert_eq!(again.payload["receipts"], sr.payload["receipts"]);
    }
}
