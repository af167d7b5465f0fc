//! Group messages: `send_group_msg` (protocol.md 4.3, 5.3, 5.4, 7.2).
//!
//! The message is relayed with `msg_sync` to every live session of every member and to the
//! sender's other sessions (never to the sending connection), and recorded in each member's
//! sync log under [`ConvKey::Group`] so offline members get it via `sync_conversation`.

use super::chat::check_content;
use super::model::{ConvKey, Message, ReceiptState, Target, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};

/// Checks the `users` at-list: `[{username, appkey?}]` (`[]` = @all).
fn check_at_list(a: &Args<'_>) -> Result<(), Failure> {
    let Some(list) = a.opt_array("users")? else {
        return Ok(());
    };
    for (i, v) in list.iter().enumerate() {
        let ok = match v {
            Value::Object(m) => {
                matches!(m.get("username"), Some(Value::String(s)) if !s.is_empty())
            }
            _ => false,
        };
        if !ok {
            return Err(Failure::new(
                Code::InvalidType,
                format!("users[{i}] must be {{username, appkey?}}"),
            ));
        }
    }
    Ok(())
}

/// The group a message goes to: `target_gid`, or `content.target_id`, as a number.
fn target_gid(a: &Args<'_>, content: &Map<String, Value>) -> Result<u64, Failure> {
    let gid_text = match a.opt_id("target_gid")? {
        Some(t) => t,
        None => Args(content)
            .opt_id("target_id")?
            .ok_or_else(|| Failure::new(Code::Missing, "target_gid is required"))?,
    };
    gid_text.trim().parse().map_err(|_| {
        Failure::new(
            Code::TargetGroupNotExist,
            format!("target_gid {gid_text} is not a group id"),
        )
    })
}

impl Backend {
    pub(super) fn send_group_msg(
        &mut self,
        conn: ConnId,
        payload: &mut Map<String, Value>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let a = Args(payload);
        let content = a.obj("content")?;
        let gid = target_gid(&a, content)?;
        check_content(content, a.opt_obj("custom_notification")?)?;
        check_at_list(&a)?;
        let no_offline = a.opt_bool("no_offline")?.unwrap_or(false);
        let need_receipt = a.opt_bool("need_receipt")?.unwrap_or(false);
        let (group_app, members) = self.group_audience(&me, gid)?;
        let custom_notification = super::chat::take_object(payload, "custom_notification");
        let content = super::chat::take_object(payload, "content").unwrap_or_default();
        let (from_uid, content) =
            self.stamp_content(conn, &me, content, &gid.to_string(), "group")?;
        self.grant_media(&me, &content, super::media_access::Audience::Group(gid));
        let now = self.now_ms();
        let msg_id = self.ids.next_msg();
        let mut wire = json!({
            "msg_id": msg_id,
            "msg_type": 4,
            "from_uid": from_uid,
            "from_gid": gid,
            "ctime_ms": now,
            "msg_level": if me.appkey == group_app { 0 } else { 1 },
            "need_receipt": need_receipt,
            "content": content,
        });
        if let (Some(cn), Some(m)) = (custom_notification, wire.as_object_mut()) {
            m.insert("custom_notification".into(), Value::Object(cn));
        }
        // Every live session of every member (the sender's other sessions included). A
        // connection is logged in as one user, so no connection comes up twice.
        let mut to: Vec<ConnId> = Vec::new();
        for u in &members {
            to.extend(self.conns_of(u).iter().filter(|c| **c != conn));
        }
        let mut unread_count = 0;
        if need_receipt {
            let others: std::collections::BTreeSet<UserKey> =
                members.iter().filter(|u| **u != me).cloned().collect();
            unread_count = others.len();
            if !others.is_empty() {
                self.receipts.insert(
                    msg_id,
                    ReceiptState {
                        sender: Some(me.clone()),
                        unread: others,
                        read: Default::default(),
                    },
                );
            }
        }
        // Encoded once: the stored text, and the push frame made from it.
        let text = Message::encode(&wire);
        let (push, push_json) = Message::sync_payload(wire, &text);
        if !no_offline {
            self.keep_group(&me, gid, &members, msg_id, now, text);
        }
        let mut f = Map::new();
        f.insert("msg_id".into(), json!(msg_id));
        f.insert("ctime_ms".into(), json!(now));
        f.insert("target_gid".into(), json!(gid));
        f.insert("unread_count".into(), json!(unread_count));
        let mut out = Outcome::ok(f);
        out.push_encoded(to, PushEvent::MsgSync, push, Some(push_json));
        Ok(out)
    }

    /// The group's app and the members a message of `me` reaches: the group must exist,
    /// `me` must be an unsilenced member, and members who shield the group get nothing
    /// from it, live or synced.
    fn group_audience(&self, me: &UserKey, gid: u64) -> Result<(String, Vec<UserKey>), Failure> {
        let g = self.target_group(gid)?;
        let member = g.members.get(me).ok_or_else(|| {
            Failure::new(
                Code::NotInGroup,
                format!("{me} is not a member of group {gid}"),
            )
        })?;
        if member.silenced {
            return Err(Failure::new(
                Code::Silenced,
                format!("{me} is silenced in group {gid}"),
            ));
        }
        let members = g
            .members
            .keys()
            .filter(|u| *u == me || !self.is_group_shielded(u, gid))
            .cloned()
            .collect();
        Ok((g.appkey.clone(), members))
    }

    /// Stores a group message and records it in every member's conversation.
    fn keep_group(
        &mut self,
        me: &UserKey,
        gid: u64,
        members: &[UserKey],
        msg_id: u64,
        now: i64,
        wire: Box<str>,
    ) {
        let from = self.intern(me);
        self.store_message(Message::new(msg_id, from, Target::Group(gid), now, wire));
        let mut holders = Vec::with_capacity(members.len());
        for u in members {
            // The sender's copy is delivered; 2.4.0 builds never send msg_recv_v2, so a
            // live push to one counts as delivered (as for single messages).
            let delivered = u == me || self.has_legacy_session(u, None);
            holders.extend(self.append_to_mailbox(u, ConvKey::Group(gid), msg_id, now, delivered));
        }
        self.add_holders(msg_id, holders);
    }
}

#[cfg(test)]
mod tests {
    use super::super::md5_hex;
    use super::super::test_support::*;
    use super::super::{GroupSeed, Outcome};
    use super::*;
    use rstest::rstest;

    /// alice(1) owner, bobby(2), carol(3) members; dave(4) outside.
    fn setup() -> (Harness, u64) {
        let mut h = Harness::new();
        for (c, n) in [(1, "alice"), (2, "bobby"), (3, "carol"), (4, "dave")] {
            h.user(c, n);
        }
        let gid =
            h.b.seed_group(GroupSeed {
                name: "team".into(),
                ..test_group("alice", &["bobby", "carol"])
            })
            .expect("seed");
        (h, gid)
    }

    fn send(h: &mut Harness, conn: u64, gid: Value, extra: Value) -> Outcome {
        let mut req = json!({
            "target_gid": gid,
            "target_name": "team",
            "content": {"version": 1, "target_type": "group", "from_platform": "web", "target_id": "x",
                        "from_id": "x", "create_time": 1, "msg_type": "text", "msg_body": {"text": "hello"}},
            "no_offline": false,
            "no_notification": false,
            "users": [],
        });
        if let (Some(m), Value::Object(e)) = (req.as_object_mut(), extra) {
            m.extend(e);
        }
        h.req(conn, "send_group_msg", req)
    }

    fn sorted(mut v: Vec<u64>) -> Vec<u64> {
        v.sort();
        v
    }

    #[test]
    fn group_message_reaches_every_member_session_but_the_sending_one() {
        let (mut h, gid) = setup();
        // alice's second session.
        h.login_on(5, "alice", "pc");
        let o = send(
            &mut h,
            1,
            json!(gid.to_string()),
            json!({"custom_notification": {"enabled": true, "title": "t"}}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let r = resp(&o);
        assert_eq!(r["target_gid"], json!(gid));
        assert_eq!(r["ctime_ms"], json!(T0));
        assert_eq!(r["unread_count"], json!(0));
        let msg_id = r["msg_id"].as_u64().expect("msg_id");
        assert_eq!(o.pushes.len(), 1);
        let p = &o.pushes[0];
        assert_eq!(p.event, "msg_sync");
        assert_eq!(sorted(p.to.clone()), vec![2, 3, 5]);
        let m = &p.payload["messages"][0];
        assert_eq!(m["msg_id"], json!(msg_id));
        assert_eq!(m["msg_type"], json!(4));
        assert_eq!(m["from_gid"], json!(gid));
        assert_eq!(
            m["from_uid"],
            json!(h.b.user(&UserKey::new(APP, "alice")).unwrap().uid)
        );
        assert_eq!(m["msg_level"], json!(0));
        assert_eq!(m["need_receipt"], json!(false));
        assert_eq!(m["custom_notification"]["title"], json!("t"));
        let c = &m["content"];
        assert_eq!(c["target_type"], json!("group"));
        assert_eq!(c["target_id"], json!(gid.to_string()));
        assert_eq!(c["from_id"], json!("alice"));
        assert_eq!(c["from_appkey"], json!(APP));
        assert_eq!(c["msg_body"]["text"], json!("hello"));
        assert!(c.get("at_list").is_none());
        let text = p.json.as_deref().unwrap_or_default();
        assert_eq!(text, serde_json::to_string(&p.payload).unwrap());
        // Stored in every member's log, not in outsiders'.
        for n in ["alice", "bobby", "carol"] {
            let hist = h.b.history(&UserKey::new(APP, n));
            assert_eq!(hist.len(), 1, "{n}");
            assert_eq!(hist[0].target, Target::Group(gid));
        }
        assert!(h.b.history(&UserKey::new(APP, "dave")).is_empty());
    }

    #[test]
    fn members_who_shield_the_group_receive_nothing() {
        let (mut h, gid) = setup();
        let o = h.req(2, "add_msg_shield_group", json!({"gid": gid}));
        assert_eq!(o.code(), Some(0));
        let o = send(&mut h, 1, json!(gid.to_string()), json!({}));
        assert_eq!(o.code(), Some(0), "{o:?}");
        let to = &o
            .pushes
            .iter()
            .find(|p| p.event == "msg_sync")
            .expect("msg_sync")
            .to;
        assert!(!to.contains(&2), "shielded member got the push: {to:?}");
        assert!(to.contains(&3));
        let sync = h.req(2, "sync_check", json!({"sync_key": 0}));
        assert!(sync.pushes.iter().all(|p| p.event != "sync_conversation"));
    }

    #[test]
    fn need_receipt_counts_the_other_members() {
        let (mut h, gid) = setup();
        let o = send(
            &mut h,
            2,
            json!(gid),
            json!({"need_receipt": true, "users": [{"username": "alice"}]}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(resp(&o)["unread_count"], json!(2));
        let msg_id = resp(&o)["msg_id"].as_u64().unwrap();
        let st = &h.b.receipts[&msg_id];
        assert_eq!(st.sender, Some(UserKey::new(APP, "bobby")));
        let unread: Vec<_> = st.unread.iter().map(|u| u.username.clone()).collect();
        assert_eq!(unread, vec!["alice", "carol"]);
        assert_eq!(
            o.pushes[0].payload["messages"][0]["need_receipt"],
            json!(true)
        );
    }

    #[test]
    fn no_offline_messages_are_pushed_but_not_stored() {
        let (mut h, gid) = setup();
        let o = send(&mut h, 1, json!(gid), json!({"no_offline": true}));
        assert_eq!(o.code(), Some(0));
        assert_eq!(sorted(o.pushes[0].to.clone()), vec![2, 3]);
        assert_eq!(h.b.message_count(), 0);
    }

    #[rstest]
    #[case::unknown_group(1, json!(987_654), json!({}), 880204)]
    #[case::not_numeric(1, json!("abc"), json!({}), 880204)]
    #[case::not_member(4, Value::Null, json!({}), 880205)]
    #[case::too_long(1, Value::Null, json!({"content": {"msg_type": "text", "msg_body": {"text": "x".repeat(7200)}}}), 880206)]
    #[case::bad_content(1, Value::Null, json!({"content": {"msg_type": "weird", "msg_body": {}}}), 880003)]
    #[case::no_content(1, Value::Null, json!({"content": null}), 880001)]
    #[case::bad_at_list(1, Value::Null, json!({"users": ["alice"]}), 880004)]
    #[case::at_list_not_array(1, Value::Null, json!({"users": {}}), 880004)]
    fn send_failures(
        #[case] conn: u64,
        #[case] gid: Value,
        #[case] extra: Value,
        #[case] code: i64,
    ) {
        let (mut h, real) = setup();
        let gid = if gid.is_null() { json!(real) } else { gid };
        let o = send(&mut h, conn, gid, extra);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
        assert_eq!(h.b.message_count(), 0);
    }

    #[test]
    fn missing_target_gid_is_880001() {
        let (mut h, _) = setup();
        let o = h.req(
            1,
            "send_group_msg",
            json!({"content": {"msg_type": "text", "msg_body": {"text": "x"}}}),
        );
        assert_eq!(o.code(), Some(880001));
    }

    #[test]
    fn offline_members_sync_group_conversations_and_list_them() {
        let (mut h, gid) = setup();
        h.b.disconnect(3);
        let o = send(&mut h, 1, json!(gid), json!({}));
        let msg_id = resp(&o)["msg_id"].as_u64().unwrap();
        assert_eq!(sorted(o.pushes[0].to.clone()), vec![2]);
        h.init(6, APP, SECRET);
        h.req(
            6,
            "login",
            json!({"username": "carol", "password": md5_hex("pw")}),
        );
        let o = h.req(6, "sync_check", json!({"sync_key": 0, "sync_event_key": 0}));
        let p = o
            .pushes
            .iter()
            .find(|p| p.event == "sync_conversation")
            .expect("sync_conversation");
        let conv = &p.payload["messages"][0];
        assert_eq!(conv["msg_type"], json!(4));
        assert_eq!(conv["from_gid"], json!(gid));
        assert_eq!(conv["unsync_count"], json!(1));
        assert_eq!(conv["msgs"][0]["msg_id"], json!(msg_id));
        let c = h.req(6, "get_conversations", json!({}));
        let list = resp(&c)["conversations"].as_array().cloned().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            list[0],
            json!({"key": gid, "type": 4, "name": "team", "avatar": "", "mtime": T0})
        );
        // The sender lists it too, next to single conversations, newest first.
        h.clock.advance_ms(10);
        h.req(1, "s_across_single_text", json!({"target_id": "dave", "content": {"msg_type": "text", "msg_body": {"text": "x"}}}));
        let c = h.req(1, "get_conversations", json!({}));
        let types: Vec<_> = resp(&c)["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].clone())
            .collect();
        assert_eq!(types, vec![json!(3), json!(4)]);
    }

    /// sendGroupPic / File / Location / Custom: the same event, other content types.
    #[rstest]
    #[case::image(json!({"msg_type": "image", "msg_body": {"media_id": "qiniu/image/x", "media_crc32": 1, "width": 2, "height": 3, "format": "png", "fsize": 4}}))]
    #[case::file(json!({"msg_type": "file", "msg_body": {"media_id": "qiniu/file/y", "media_crc32": 1, "hash": "h", "fsize": 9, "fname": "a.txt"}}))]
    #[case::location(json!({"msg_type": "location", "msg_body": {"latitude": 1.5, "longitude": 2.5, "scale": 1, "label": "here"}}))]
    #[case::custom(json!({"msg_type": "custom", "msg_body": {"anything": [1, 2]}}))]
    fn every_content_type_reaches_the_group(#[case] content: Value) {
        let (mut h, gid) = setup();
        let o = send(&mut h, 2, json!(gid), json!({ "content": content.clone() }));
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(o.pushes.len(), 1);
        let p = &o.pushes[0];
        assert_eq!(p.event, "msg_sync");
        assert_eq!(
            sorted(p.to.clone()),
            vec![1, 3],
            "members but the sender, not dave"
        );
        let c = &p.payload["messages"][0]["content"];
        assert_eq!(c["msg_type"], content["msg_type"]);
        assert_eq!(c["msg_body"], content["msg_body"]);
        assert_eq!(c["from_id"], json!("bobby"));
        assert_eq!(c["from_appkey"], json!(APP));
    }
}
