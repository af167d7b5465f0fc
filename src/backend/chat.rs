//! One-to-one messages: `s_across_single_text`, `msg_recv_v2`, `get_conversations`
//! (protocol.md 5, 7.2).

use super::media_access::Audience;
use super::model::{ConvKey, Message, SyncEntry, Target, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};

pub use super::limits::MAX_CONTENT_BYTES;

const MSG_TYPES: &[&str] = &[
    "text", "image", "file", "location", "custom", "voice", "video",
];

/// Checks a message content envelope (protocol.md 5.1/5.2) and its size: `content` and
/// `custom_notification` together, as JSON, at most [`MAX_CONTENT_BYTES`] (880206).
pub(crate) fn check_content(
    content: &Map<String, Value>,
    custom_notification: Option<&Map<String, Value>>,
) -> Result<(), Failure> {
    let c = Args(content);
    let msg_type = c
        .str("msg_type")
        .map_err(|f| Failure::new(f.code, format!("content.{}", f.message)))?;
    if !MSG_TYPES.contains(&msg_type) {
        return Err(Failure::new(
            Code::InvalidValue,
            format!("unknown content.msg_type {msg_type}"),
        ));
    }
    let body = c
        .obj("msg_body")
        .map_err(|f| Failure::new(f.code, format!("content.{}", f.message)))?;
    let b = Args(body);
    let need: &[&str] = match msg_type {
        "text" => &["text"],
        "image" => &["media_id"],
        "file" => &["media_id"],
        "location" => &["latitude", "longitude"],
        _ => &[],
    };
    for k in need {
        if b.get(k).is_none() {
            return Err(Failure::new(
                Code::Missing,
                format!("content.msg_body.{k} is required for {msg_type}"),
            ));
        }
    }
    if msg_type == "text" && !matches!(b.get("text"), Some(Value::String(_))) {
        return Err(Failure::new(
            Code::InvalidType,
            "content.msg_body.text must be a string",
        ));
    }
    let size = super::limits::map_len(content)
        .saturating_add(custom_notification.map_or(0, super::limits::map_len));
    if size > MAX_CONTENT_BYTES {
        let what = if custom_notification.is_some() {
            "content and custom_notification are"
        } else {
            "content is"
        };
        return Err(Failure::new(
            Code::MsgTooLong,
            format!("{what} {size} bytes; the limit is {MAX_CONTENT_BYTES}"),
        ));
    }
    Ok(())
}

impl Backend {
    /// The content as delivered: the sender's identity and the target filled in from the
    /// authenticated session (never trusted from the client), plus `sui_mtime` (the
    /// sender's profile mtime, seconds). `from_name`, `from_type` and `from_platform` (the
    /// SDK never sends the first two and always `web` for the last) are overwritten with
    /// the true values when present (docs/authorization.md). Returns the sender's uid too.
    pub(super) fn stamp_content(
        &self,
        conn: ConnId,
        me: &UserKey,
        mut content: Map<String, Value>,
        target_id: &str,
        target_type: &str,
    ) -> Result<(u64, Map<String, Value>), Failure> {
        let sender = self
            .users
            .get(me)
            .ok_or_else(|| Failure::from(Code::UserNotExist))?;
        // Values built directly: `json!(x)` goes through serde's serializer (a hot path).
        let text = |s: &str| Value::String(s.to_owned());
        content.insert("from_id".into(), text(&me.username));
        content.insert("from_appkey".into(), text(&me.appkey));
        content.insert("target_id".into(), text(target_id));
        content.insert("target_type".into(), text(target_type));
        content.insert("sui_mtime".into(), Value::from(sender.mtime_s));
        if content.contains_key("from_name") {
            let name = if sender.nickname.is_empty() {
                &me.username
            } else {
                &sender.nickname
            };
            content.insert("from_name".into(), text(name));
        }
        if content.contains_key("from_type") {
            // Only the server's admin API may send as `admin`.
            content.insert("from_type".into(), text("user"));
        }
        if let Some(p) = self.session_platform(conn) {
            if content.contains_key("from_platform") {
                content.insert("from_platform".into(), Value::String(p));
            }
        }
        Ok((sender.uid, content))
    }

    /// The platform a session logged in on, as content's `from_platform` spells it
    /// (`web`, `pc`, `android`, `ios`); `None` for fixture and admin actions.
    fn session_platform(&self, conn: ConnId) -> Option<String> {
        let p = self
            .conns
            .get(&conn)?
            .login
            .as_ref()?
            .platform
            .to_ascii_lowercase();
        ["web", "pc", "android", "ios"]
            .contains(&p.as_str())
            .then_some(p)
    }

    /// Whether `user` has a live 2.4.x session (other than `skip`). Those builds never
    /// confirm with `msg_recv_v2`, so a live push to one counts as delivered.
    pub(super) fn has_legacy_session(&self, user: &UserKey, skip: Option<ConnId>) -> bool {
        self.conns_of(user).iter().any(|c| {
            Some(*c) != skip
                && self
                    .conns
                    .get(c)
                    .and_then(|c| c.login.as_ref())
                    .is_some_and(|l| l.version.starts_with("2.4"))
        })
    }

    /// Whether users of `from` may message users of `to`.
    pub(super) fn cross_app_allowed(&self, from: &str, to: &str) -> bool {
        from == to
            || self.apps.get(from).is_some_and(|a| {
                a.cross_app
                    .as_ref()
                    .is_none_or(|l| l.iter().any(|k| k == to))
            })
    }

    pub(super) fn send_single(
        &mut self,
        conn: ConnId,
        payload: &mut Map<String, Value>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let a = Args(payload);
        let content = a.obj("content")?;
        let target = self.single_target(&me, &a, content)?;
        check_content(content, a.opt_obj("custom_notification")?)?;
        let no_offline = a.opt_bool("no_offline")?.unwrap_or(false);
        let need_receipt = a.opt_bool("need_receipt")?.unwrap_or(false);
        let custom_notification = take_object(payload, "custom_notification");
        let content = take_object(payload, "content").unwrap_or_default();
        let (from_uid, mut content) =
            self.stamp_content(conn, &me, content, &target.username, "single")?;
        self.grant_media(&me, &content, Audience::User(&target));
        content.insert("target_appkey".into(), Value::String(target.appkey.clone()));
        let now = self.now_ms();
        let msg_id = self.ids.next_msg();
        let mut wire = Map::with_capacity(9);
        for (k, v) in [
            ("msg_id", Value::from(msg_id)),
            ("msg_type", Value::from(3)),
            ("from_uid", Value::from(from_uid)),
            ("from_gid", Value::from(0)),
            ("ctime_ms", Value::from(now)),
            (
                "msg_level",
                Value::from(u8::from(me.appkey != target.appkey)),
            ),
            ("need_receipt", Value::Bool(need_receipt)),
            ("content", Value::Object(content)),
        ] {
            wire.insert(k.into(), v);
        }
        if let Some(cn) = custom_notification {
            wire.insert("custom_notification".into(), Value::Object(cn));
        }
        let wire = Value::Object(wire);
        let to = self.single_recipients(conn, &me, &target);
        let delivered_live = self.has_legacy_session(&target, Some(conn));
        if need_receipt && target != me {
            self.receipts.insert(
                msg_id,
                super::model::ReceiptState {
                    sender: Some(me.clone()),
                    unread: [target.clone()].into_iter().collect(),
                    read: Default::default(),
                },
            );
        }
        // Encoded once: the stored text, and the push frame made from it.
        let text = Message::encode(&wire);
        let (push, push_json) = Message::sync_payload(wire, &text);
        if !no_offline {
            self.keep_single(&me, &target, msg_id, now, text, delivered_live);
        }
        let mut answer = Map::with_capacity(4);
        answer.insert("msg_id".into(), Value::from(msg_id));
        answer.insert("ctime_ms".into(), Value::from(now));
        answer.insert("target_username".into(), Value::String(target.username));
        answer.insert("appkey".into(), Value::String(target.appkey));
        let mut out = Outcome::ok(answer);
        out.push_encoded(to, PushEvent::MsgSync, push, Some(push_json));
        Ok(out)
    }

    /// The receiver of a 1:1 message (`target_id` outside or inside `content`, the app from
    /// `appkey` or `content.target_appkey`, else the sender's): it must exist, be in an app
    /// the sender's may message, and not have blacklisted the sender.
    fn single_target(
        &self,
        me: &UserKey,
        a: &Args<'_>,
        content: &Map<String, Value>,
    ) -> Result<UserKey, Failure> {
        let target_name = match a.opt_id("target_id")? {
            Some(t) => t,
            None => Args(content)
                .opt_id("target_id")?
                .ok_or_else(|| Failure::new(Code::Missing, "target_id is required"))?,
        };
        let target_appkey = a
            .opt_str("appkey")?
            .or(Args(content).opt_str("target_appkey")?)
            .filter(|s| !s.is_empty())
            .unwrap_or(&me.appkey)
            .to_owned();
        let target = UserKey::new(target_appkey.clone(), target_name.clone());
        if !self.users.contains_key(&target) {
            return Err(Failure::new(
                Code::TargetUserNotExist,
                format!("user {target_name} does not exist in {target_appkey}"),
            ));
        }
        if !self.cross_app_allowed(&me.appkey, &target.appkey) {
            return Err(Failure::new(
                Code::TargetUserNotExist,
                format!("app {} may not message app {}", me.appkey, target.appkey),
            ));
        }
        if self.is_blacklisted(&target, me) {
            return Err(Failure::new(
                Code::Blacklisted,
                format!("{} has blacklisted you", target.username),
            ));
        }
        Ok(target)
    }

    /// Who gets a 1:1 message's `msg_sync`: every session of the target, and the sender's
    /// other sessions (never the sending connection).
    fn single_recipients(&self, conn: ConnId, me: &UserKey, target: &UserKey) -> Vec<ConnId> {
        let mut to: Vec<ConnId> = self.conns_of(target).to_vec();
        for &c in self.conns_of(me) {
            if c != conn && !to.contains(&c) {
                to.push(c);
            }
        }
        to.retain(|c| *c != conn);
        to
    }

    /// Stores a 1:1 message and records it in both users' conversations.
    fn keep_single(
        &mut self,
        me: &UserKey,
        target: &UserKey,
        msg_id: u64,
        now: i64,
        wire: Box<str>,
        delivered_live: bool,
    ) {
        let (from, to) = (self.intern(me), self.intern(target));
        let message = Message::new(msg_id, from, Target::User(to), now, wire);
        self.store_message(message);
        self.record(
            target,
            ConvKey::Single(me.clone().into()),
            msg_id,
            now,
            delivered_live,
        );
        if target != me {
            self.record(
                me,
                ConvKey::Single(target.clone().into()),
                msg_id,
                now,
                true,
            );
        }
    }

    /// Appends a message to a user's sync log and conversation, and names the user
    /// among the message's holders.
    pub(super) fn record(
        &mut self,
        user: &UserKey,
        conv: ConvKey,
        msg_id: u64,
        now: i64,
        delivered: bool,
    ) {
        if let Some(uid) = self.append_to_mailbox(user, conv, msg_id, now, delivered) {
            self.add_holders(msg_id, [uid]);
        }
    }

    /// [`Backend::record`] without the holder: returns the uid to add (a group message
    /// adds all its holders at once).
    pub(super) fn append_to_mailbox(
        &mut self,
        user: &UserKey,
        conv: ConvKey,
        msg_id: u64,
        now: i64,
        delivered: bool,
    ) -> Option<u64> {
        if !self.mailboxes.contains_key(user) {
            self.mailboxes.insert(user.clone(), Default::default());
        }
        let mb = self.mailboxes.get_mut(user)?;
        mb.head += 1;
        let seq = mb.head;
        // Share the conversation's own key (one allocation per conversation, not entry).
        let conv = match mb.conversations.get_key_value(&conv) {
            Some((k, _)) => k.clone(),
            None => conv,
        };
        mb.log.push_back(SyncEntry {
            seq,
            msg_id,
            conv: conv.clone(),
            delivered,
        });
        let c = mb.conversations.entry(conv).or_default();
        c.mtime_ms = now;
        c.msg_ids.push_back(msg_id);
        self.users.get(user).map(|u| u.uid)
    }

    pub(super) fn msg_recv(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let msg_id = a
            .opt_i64("msg_id")?
            .ok_or_else(|| Failure::new(Code::Missing, "msg_id is required"))?;
        if let Some(mb) = self.mailboxes.get_mut(&me) {
            let at = first_at_or_after(&mb.log, msg_id);
            for e in mb
                .log
                .range_mut(at..)
                .take_while(|e| e.msg_id as i64 == msg_id)
            {
                e.delivered = true;
            }
        }
        Ok(Outcome::ok_empty())
    }

    pub(super) fn get_conversations(&mut self, conn: ConnId) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let mut list: Vec<(i64, Value)> = Vec::new();
        if let Some(mb) = self.mailboxes.get(&me) {
            for (key, conv) in &mb.conversations {
                let peer = match key {
                    ConvKey::Single(peer) => peer,
                    ConvKey::Group(gid) => {
                        // Groups the user has messages in (while the group exists).
                        if let Some(g) = self.groups.get(gid) {
                            list.push((
                                conv.mtime_ms,
                                json!({
                                    "key": g.gid,
                                    "type": 4,
                                    "name": g.name,
                                    "avatar": g.avatar,
                                    "mtime": conv.mtime_ms,
                                }),
                            ));
                        }
                        continue;
                    }
                };
                let Some(u) = self.users.get(peer) else {
                    continue;
                };
                list.push((
                    conv.mtime_ms,
                    json!({
                        "key": u.uid,
                        "type": 3,
                        "appkey": u.key.appkey,
                        "username": u.key.username,
                        "nickname": u.nickname,
                        "name": u.nickname,
                        "avatar": u.avatar,
                        "mtime": conv.mtime_ms,
                        "utime": u.mtime_s * 1000,
                    }),
                ));
            }
        }
        list.sort_by_key(|(mtime, _)| std::cmp::Reverse(*mtime));
        let mut f = Map::new();
        f.insert(
            "conversations".into(),
            Value::Array(list.into_iter().map(|(_, v)| v).collect()),
        );
        Ok(Outcome::ok(f))
    }
}

/// The object under `key`, taken out of a request (checked before: a message send takes
/// its content instead of copying it).
pub(super) fn take_object(
    payload: &mut Map<String, Value>,
    key: &str,
) -> Option<Map<String, Value>> {
    match payload.get_mut(key)? {
        Value::Object(m) => Some(std::mem::take(m)),
        _ => None,
    }
}

/// Where the entries with `msg_id` start in a sync log (in msg_id order). A confirmation
/// is nearly always for one of the newest entries: those are looked at first, before a
/// binary search whose every step reads cold memory.
fn first_at_or_after(log: &std::collections::VecDeque<SyncEntry>, msg_id: i64) -> usize {
    let n = log.len();
    for i in (n.saturating_sub(8)..n).rev() {
        if (log[i].msg_id as i64) < msg_id {
            return i + 1;
        }
    }
    log.partition_point(|e| (e.msg_id as i64) < msg_id)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use rstest::rstest;

    fn send(h: &mut Harness, conn: u64, to: &str, content: Value) -> crate::backend::Outcome {
        h.req(conn, "s_across_single_text", json!({"target_id": to, "content": content, "no_offline": false, "no_notification": false}))
    }

    #[rstest]
    #[case::text(json!({"msg_type": "text", "msg_body": {"text": "hi 你好 😀", "extras": {"a": 1}}}))]
    #[case::image(json!({"msg_type": "image", "msg_body": {"media_id": "qiniu/image/x", "media_crc32": 1, "width": 2, "height": 3, "format": "png", "fsize": 4}}))]
    #[case::file(json!({"msg_type": "file", "msg_body": {"media_id": "qiniu/file/y", "media_crc32": 1, "hash": "h", "fsize": 9, "fname": "a.txt"}}))]
    #[case::location(json!({"msg_type": "location", "msg_body": {"latitude": 1.5, "longitude": 2.5, "scale": 1, "label": "here"}}))]
    #[case::custom(json!({"msg_type": "custom", "msg_body": {"anything": [1, 2]}}))]
    fn every_content_type_is_delivered(#[case] content: Value) {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let o = send(&mut h, 1, "bobby", content.clone());
        assert_eq!(o.code(), Some(0), "{o:?}");
        let r = resp(&o);
        assert_eq!(r["target_username"], json!("bobby"));
        assert_eq!(r["appkey"], json!(APP));
        assert!(r["msg_id"].as_u64().is_some());
        assert_eq!(r["ctime_ms"], json!(T0));
        assert_eq!(o.pushes.len(), 1);
        assert_eq!(o.pushes[0].to, vec![2]);
        let msg = &o.pushes[0].payload["messages"][0];
        assert_eq!(msg["msg_id"], r["msg_id"]);
        assert_eq!(msg["msg_type"], json!(3));
        assert_eq!(msg["content"]["from_appkey"], json!(APP));
        assert_eq!(msg["content"]["from_id"], json!("alice"));
        assert_eq!(msg["content"]["msg_body"], content["msg_body"]);
        // The push's text is its payload, key order included, and the stored message.
        let text = o.pushes[0].json.as_deref().unwrap_or_default();
        assert_eq!(text, serde_json::to_string(&o.pushes[0].payload).unwrap());
        let id = msg["msg_id"].as_u64().unwrap_or_default();
        assert_eq!(h.b.messages.get(&id).unwrap().wire_value(), *msg);
    }

    #[test]
    fn a_log_position_is_found_near_the_end_and_far_from_it() {
        let log: std::collections::VecDeque<SyncEntry> = (1..=40u64)
            .flat_map(|id| [id * 2, id * 2])
            .map(|msg_id| SyncEntry {
                seq: 0,
                msg_id,
                conv: ConvKey::Group(1),
                delivered: false,
            })
            .collect();
        for id in 0..=82 {
            let want = log.partition_point(|e| (e.msg_id as i64) < id);
            assert_eq!(first_at_or_after(&log, id), want, "{id}");
        }
        assert_eq!(first_at_or_after(&Default::default(), 5), 0);
    }

    #[test]
    fn send_failures() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let text = json!({"msg_type": "text", "msg_body": {"text": "x"}});
        assert_eq!(send(&mut h, 1, "nobody", text.clone()).code(), Some(880203));
        h.user(2, "bobby");
        let big = json!({"msg_type": "text", "msg_body": {"text": "x".repeat(7200)}});
        assert_eq!(send(&mut h, 1, "bobby", big).code(), Some(880206));
        assert_eq!(
            send(
                &mut h,
                1,
                "bobby",
                json!({"msg_type": "weird", "msg_body": {}})
            )
            .code(),
            Some(880003)
        );
        assert_eq!(
            send(&mut h, 1, "bobby", json!({"msg_type": "text"})).code(),
            Some(880001)
        );
        assert_eq!(
            h.req(1, "s_across_single_text", json!({"target_id": "bobby"}))
                .code(),
            Some(880001)
        );
        assert_eq!(
            h.req(
                1,
                "s_across_single_text",
                json!({"target_id": "bobby", "content": "x"})
            )
            .code(),
            Some(880004)
        );
    }

    #[test]
    fn cross_app_sends_fill_both_appkeys_and_respect_permissions() {
        let mut h = Harness::new();
        h.user(1, "alice");
        // A user in APP2 (which may message nobody else).
        h.user_in(2, APP2, "s2", "zed1");
        let o = h.req(1, "s_across_single_text", json!({"target_id": "zed1", "appkey": APP2, "content": {"msg_type": "text", "msg_body": {"text": "x"}, "target_appkey": APP2, "from_appkey": APP}}));
        assert_eq!(o.code(), Some(0));
        assert_eq!(resp(&o)["appkey"], json!(APP2));
        let msg = &o.pushes[0].payload["messages"][0];
        assert_eq!(msg["msg_level"], json!(1));
        assert_eq!(msg["content"]["target_appkey"], json!(APP2));
        assert_eq!(msg["content"]["from_appkey"], json!(APP));
        let back = h.req(2, "s_across_single_text", json!({"target_id": "alice", "appkey": APP, "content": {"msg_type": "text", "msg_body": {"text": "x"}}}));
        assert_eq!(back.code(), Some(880203));
    }

    #[test]
    fn sender_other_sessions_get_a_copy_and_no_offline_is_not_stored() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.login_on(3, "alice", "pc");
        h.user(2, "bobby");
        let o = send(
            &mut h,
            1,
            "bobby",
            json!({"msg_type": "text", "msg_body": {"text": "x"}}),
        );
        let mut to = o.pushes[0].to.clone();
        to.sort();
        assert_eq!(to, vec![2, 3]);
        let n = h.b.message_count();
        let o = h.req(1, "s_across_single_text", json!({"target_id": "bobby", "no_offline": true, "content": {"msg_type": "text", "msg_body": {"text": "x"}}}));
        assert_eq!(o.code(), Some(0));
        assert_eq!(h.b.message_count(), n);
    }

    #[test]
    fn conversations_list_peers_newest_first() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        send(
            &mut h,
            1,
            "bobby",
            json!({"msg_type": "text", "msg_body": {"text": "x"}}),
        );
        h.clock.advance_ms(10);
        send(
            &mut h,
            3,
            "alice",
            json!({"msg_type": "text", "msg_body": {"text": "y"}}),
        );
        let o = h.req(1, "get_conversations", json!({}));
        let list = resp(&o)["conversations"].as_array().cloned().unwrap();
        let names: Vec<_> = list.iter().map(|c| c["username"].clone()).collect();
        assert_eq!(names, vec![json!("carol"), json!("bobby")]);
        assert_eq!(list[0]["type"], json!(3));
        assert!(list[0]["key"].as_u64().is_some());
    }

    #[test]
    fn msg_recv_v2_failures_confirm_nothing() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let o = h.req(
            1,
            "s_across_single_text",
            json!({"target_id": "bobby", "content": {"msg_type": "text", "msg_body": {"text": "hi"}}}),
        );
        assert_eq!(o.code(), Some(0));
        assert_eq!(
            h.req(2, "msg_recv_v2", json!({"msg_type": 3})).code(),
            Some(880001)
        );
        assert_eq!(
            h.req(2, "msg_recv_v2", json!({"msg_id": "not-a-number"}))
                .code(),
            Some(880004)
        );
        // Not confirmed: the next sync_check still sends the message.
        let s = h.req(2, "sync_check", json!({"sync_key": 0}));
        assert_eq!(s.code(), Some(0));
        assert_eq!(s.pushes.len(), 1);
        assert_eq!(s.pushes[0].event, "sync_conversation");
    }
}
