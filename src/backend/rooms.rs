//! Chat rooms: `room_list`, `room_list_self`, `room_info`, `join_room`, `exit_room`,
//! `send_room_msg` and the `room_msg_sync` push (protocol.md 4.5, 5.4, 7.9).
//!
//! Rooms are seeded (config / fixtures). Membership belongs to the user, not to a
//! connection, and ends when the user's last live session closes (chat rooms keep no
//! offline messages, so an offline member would only inflate the member count).

use super::model::UserKey;
use super::{Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};

/// Rooms per `room_list` page.
pub const ROOM_PAGE_SIZE: usize = 20;

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A room id from a request field (number or numeric string); anything unusable is an
/// unknown room (881503), as a missing `id` is (protocol.md 7.9).
fn room_id(a: Args<'_>, key: &str) -> Result<u64, Failure> {
    let not_exist = |what: String| Failure::new(Code::RoomNotExist, what);
    let raw = a
        .opt_id(key)
        .map_err(|_| not_exist(format!("{key} is not a room id")))?
        .ok_or_else(|| not_exist(format!("{key} is required")))?;
    raw.trim()
        .parse::<u64>()
        .map_err(|_| not_exist(format!("chat room {raw} does not exist")))
}

impl Backend {
    fn room_exists(&self, id: u64) -> Result<(), Failure> {
        if self.rooms.contains_key(&id) {
            Ok(())
        } else {
            Err(Failure::new(
                Code::RoomNotExist,
                format!("chat room {id} does not exist"),
            ))
        }
    }

    pub(super) fn room_list(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        self.me(conn)?;
        let start = a.opt_i64("start")?.unwrap_or(0);
        if start < 0 {
            return Err(Failure::new(Code::InvalidValue, "start must be >= 0"));
        }
        let own = self
            .conns
            .get(&conn)
            .and_then(|c| c.appkey.clone())
            .unwrap_or_default();
        let appkey = a
            .opt_str("appkey")?
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .unwrap_or(own);
        // Another app's rooms only when cross_app lets this user's app reach it.
        let reachable = self
            .conn_user(conn)
            .is_some_and(|me| self.cross_app_allowed(&me.appkey, &appkey));
        let all: Vec<Value> = self
            .rooms
            .values()
            .filter(|r| reachable && r.appkey == appkey)
            .map(|r| r.info())
            .collect();
        let total = all.len();
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let page: Vec<Value> = all.into_iter().skip(start).take(ROOM_PAGE_SIZE).collect();
        Ok(Outcome::ok(fields(json!({
            "result": {
                "total": total,
                "start": start.min(total),
                "count": page.len(),
                "rooms": page,
            }
        }))))
    }

    pub(super) fn room_list_self(&mut self, conn: ConnId) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let rooms: Vec<Value> = self
            .rooms
            .values()
            .filter(|r| r.members.contains(&me))
            .map(|r| r.info())
            .collect();
        Ok(Outcome::ok(fields(json!({ "chat_rooms": rooms }))))
    }

    pub(super) fn room_info(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        self.me(conn)?;
        let id = room_id(a, "id")?;
        let info = self.rooms.get(&id).map(|r| r.info()).ok_or_else(|| {
            Failure::new(Code::RoomNotExist, format!("chat room {id} does not exist"))
        })?;
        Ok(Outcome::ok(fields(json!({ "info": info }))))
    }

    pub(super) fn join_room(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let id = room_id(a, "id")?;
        self.room_exists(id)?;
        let room = self
            .rooms
            .get_mut(&id)
            .ok_or_else(|| Failure::from(Code::RoomNotExist))?;
        if room.members.contains(&me) {
            return Err(Failure::new(
                Code::RoomAlreadyIn,
                format!("already in chat room {id}"),
            ));
        }
        if room.members.len() >= room.max_member_count {
            return Err(Failure::new(
                Code::RoomFull,
                format!("chat room {id} is full ({})", room.max_member_count),
            ));
        }
        room.members.insert(me);
        Ok(Outcome::ok(fields(json!({ "id": id }))))
    }

    pub(super) fn exit_room(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let id = room_id(a, "id")?;
        self.room_exists(id)?;
        let removed = self
            .rooms
            .get_mut(&id)
            .is_some_and(|r| r.members.remove(&me));
        if !removed {
            return Err(Failure::new(
                Code::RoomNotIn,
                format!("not in chat room {id}"),
            ));
        }
        Ok(Outcome::ok(fields(json!({ "id": id }))))
    }

    pub(super) fn send_room_msg(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let content = a.obj("content")?;
        let id = if a.get("target_gid").is_some() {
            room_id(a, "target_gid")?
        } else {
            room_id(Args(content), "target_id")?
        };
        self.room_exists(id)?;
        let members: Vec<UserKey> = self
            .rooms
            .get(&id)
            .map(|r| r.members.iter().cloned().collect())
            .unwrap_or_default();
        if !members.contains(&me) {
            return Err(Failure::new(
                Code::RoomNotIn,
                format!("not in chat room {id}"),
            ));
        }
        super::chat::check_content(content, None).map_err(|f| {
            if f.code == Code::MsgTooLong {
                Failure::new(Code::RoomMsgTooLong, f.message)
            } else {
                f
            }
        })?;
        let (_, content) =
            self.stamp_content(conn, &me, content.clone(), &id.to_string(), "chatroom")?;
        self.grant_media(
            &me,
            &content,
            super::media_access::Audience::Users(&members),
        );
        let now = self.now_ms();
        let msg_id = self.ids.next_msg();
        let push = json!({
            "room_id": id,
            "msg_id": msg_id,
            "ctime_ms": now,
            "content": content,
        });
        let mut to: Vec<ConnId> = Vec::new();
        for m in &members {
            to.extend(self.conns_of(m).iter().filter(|c| **c != conn));
        }
        let mut out = Outcome::ok(fields(json!({
            "room_id": id,
            "msg_id": msg_id,
            "ctime_ms": now,
        })));
        out.push(to, PushEvent::RoomMsgSync, push);
        Ok(out)
    }

    /// A connection closed: a user with no live session left leaves every room.
    pub(super) fn leave_rooms_if_offline(&mut self, user: &UserKey) {
        if !self.conns_of(user).is_empty() {
            return;
        }
        for r in self.rooms.values_mut() {
            r.members.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::RoomSeed;
    use super::*;
    use rstest::rstest;

    fn room(h: &mut Harness, appkey: &str, name: &str, max: usize) -> u64 {
        h.b.seed_room(RoomSeed {
            appkey: appkey.into(),
            id: None,
            name: name.into(),
            description: format!("{name} room"),
            max_member_count: max,
        })
        .expect("room")
    }

    fn text(room: u64, t: &str) -> Value {
        json!({"target_gid": room.to_string(), "no_offline": false, "no_notification": false,
               "content": {"version": 1, "target_type": "chatroom", "from_platform": "web",
                           "target_id": room.to_string(), "from_id": "x", "create_time": 1,
                           "msg_type": "text", "msg_body": {"text": t}}})
    }

    #[test]
    fn room_list_pages_the_rooms_of_an_app() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let ids: Vec<u64> = (0..25)
            .map(|i| room(&mut h, APP, &format!("r{i}"), 10))
            .collect();
        room(&mut h, APP2, "other", 10);
        let o = h.req(1, "room_list", json!({"start": 0}));
        let r = &resp(&o)["result"];
        assert_eq!(r["total"], json!(25));
        assert_eq!(r["count"], json!(ROOM_PAGE_SIZE));
        assert_eq!(r["start"], json!(0));
        assert_eq!(r["rooms"][0]["id"], json!(ids[0]));
        for k in [
            "id",
            "name",
            "description",
            "appkey",
            "total_member_count",
            "max_member_count",
        ] {
            assert!(r["rooms"][0].get(k).is_some(), "{k}");
        }
        let o = h.req(1, "room_list", json!({"start": 20}));
        assert_eq!(resp(&o)["result"]["count"], json!(5));
        // No argument at all (the SDK sends `{}`), and another app's rooms.
        assert_eq!(
            resp(&h.req(1, "room_list", json!({})))["result"]["count"],
            json!(20)
        );
        let o = h.req(1, "room_list", json!({"start": 0, "appkey": APP2}));
        assert_eq!(resp(&o)["result"]["total"], json!(1));
        assert_eq!(
            h.req(1, "room_list", json!({"start": -1})).code(),
            Some(880003)
        );
        assert_eq!(
            h.req(1, "room_list", json!({"start": "x"})).code(),
            Some(880004)
        );
    }

    #[rstest]
    #[case::unknown(json!({"id": 999}), 881503)]
    #[case::missing(json!({}), 881503)]
    #[case::garbage(json!({"id": "abc"}), 881503)]
    fn room_info_failures(#[case] req: Value, #[case] code: i64) {
        let mut h = Harness::new();
        h.user(1, "alice");
        assert_eq!(h.req(1, "room_info", req).code(), Some(code));
    }

    #[test]
    fn join_info_self_list_and_exit() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        let r = room(&mut h, APP, "lobby", 2);
        let o = h.req(1, "join_room", json!({"id": r.to_string()}));
        assert_eq!(o.code(), Some(0));
        assert_eq!(resp(&o)["id"], json!(r));
        assert_eq!(h.req(1, "join_room", json!({"id": r})).code(), Some(881507));
        assert_eq!(h.req(2, "join_room", json!({"id": r})).code(), Some(0));
        assert_eq!(h.req(3, "join_room", json!({"id": r})).code(), Some(881508));
        assert_eq!(h.req(3, "join_room", json!({"id": 1})).code(), Some(881503));
        let o = h.req(3, "room_info", json!({"id": r}));
        assert_eq!(resp(&o)["info"]["total_member_count"], json!(2));
        assert_eq!(resp(&o)["info"]["name"], json!("lobby"));
        let o = h.req(1, "room_list_self", json!({}));
        assert_eq!(resp(&o)["chat_rooms"][0]["id"], json!(r));
        let o = h.req(3, "room_list_self", json!({}));
        assert_eq!(resp(&o)["chat_rooms"], json!([]));
        assert_eq!(h.req(3, "exit_room", json!({"id": r})).code(), Some(881501));
        assert_eq!(h.req(3, "exit_room", json!({"id": 5})).code(), Some(881503));
        let o = h.req(1, "exit_room", json!({"id": r}));
        assert_eq!(o.code(), Some(0));
        assert_eq!(resp(&o)["id"], json!(r));
        assert_eq!(h.req(3, "join_room", json!({"id": r})).code(), Some(0));
    }

    #[test]
    fn room_messages_reach_present_members_but_not_the_sending_connection() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        // alice's second session.
        h.login_on(4, "alice", "pc");
        let r = room(&mut h, APP, "lobby", 10);
        h.req(1, "join_room", json!({"id": r}));
        h.req(2, "join_room", json!({"id": r}));
        let o = h.req(1, "send_room_msg", text(r, "hi all"));
        assert_eq!(o.code(), Some(0), "{o:?}");
        let body = resp(&o);
        assert_eq!(body["room_id"], json!(r));
        assert_eq!(body["ctime_ms"], json!(T0));
        assert_eq!(o.pushes.len(), 1);
        let p = &o.pushes[0];
        assert_eq!(p.event, "room_msg_sync");
        let mut to = p.to.clone();
        to.sort();
        assert_eq!(to, vec![2, 4], "bobby and alice's other session, not carol");
        assert_eq!(p.payload["room_id"], json!(r));
        assert_eq!(p.payload["msg_id"], body["msg_id"]);
        assert_eq!(p.payload["content"]["from_id"], json!("alice"));
        assert_eq!(p.payload["content"]["from_appkey"], json!(APP));
        assert_eq!(p.payload["content"]["msg_body"]["text"], json!("hi all"));
        assert!(p.payload.get("rid").is_none());
    }

    #[test]
    fn send_room_msg_failures() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let r = room(&mut h, APP, "lobby", 10);
        assert_eq!(h.req(1, "send_room_msg", text(r, "x")).code(), Some(881501));
        assert_eq!(
            h.req(1, "send_room_msg", text(77, "x")).code(),
            Some(881503)
        );
        h.req(1, "join_room", json!({"id": r}));
        let big = "x".repeat(7200);
        assert_eq!(
            h.req(1, "send_room_msg", text(r, &big)).code(),
            Some(881504)
        );
        assert_eq!(
            h.req(1, "send_room_msg", json!({"target_gid": r.to_string()}))
                .code(),
            Some(880001)
        );
        assert_eq!(
            h.req(
                1,
                "send_room_msg",
                json!({"target_gid": r, "content": {"msg_type": "text", "msg_body": {}}})
            )
            .code(),
            Some(880001)
        );
    }

    #[test]
    fn membership_ends_when_the_last_session_closes() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.login_on(2, "alice", "pc");
        let r = room(&mut h, APP, "lobby", 10);
        h.req(1, "join_room", json!({"id": r}));
        h.b.disconnect(1);
        let o = h.req(2, "room_list_self", json!({}));
        assert_eq!(resp(&o)["chat_rooms"].as_array().map(Vec::len), Some(1));
        h.b.disconnect(2);
        assert!(h.b.rooms.get(&r).is_some_and(|x| x.members.is_empty()));
    }

    /// sendChatroomPic / File / Location / Custom: the same event, other content types.
    #[rstest::rstest]
    #[case::image(json!({"msg_type": "image", "msg_body": {"media_id": "qiniu/image/x", "media_crc32": 1, "width": 2, "height": 3, "format": "png", "fsize": 4}}))]
    #[case::file(json!({"msg_type": "file", "msg_body": {"media_id": "qiniu/file/y", "media_crc32": 1, "hash": "h", "fsize": 9, "fname": "a.txt"}}))]
    #[case::location(json!({"msg_type": "location", "msg_body": {"latitude": 1.5, "longitude": 2.5, "scale": 1, "label": "here"}}))]
    #[case::custom(json!({"msg_type": "custom", "msg_body": {"anything": [1, 2]}}))]
    fn every_content_type_reaches_the_room(#[case] content: Value) {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        let r = room(&mut h, APP, "lobby", 10);
        h.req(1, "join_room", json!({"id": r}));
        h.req(2, "join_room", json!({"id": r}));
        let mut req = text(r, "unused");
        req["content"]["msg_type"] = content["msg_type"].clone();
        req["content"]["msg_body"] = content["msg_body"].clone();
        let o = h.req(2, "send_room_msg", req);
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(o.pushes.len(), 1);
        let p = &o.pushes[0];
        assert_eq!(p.event, "room_msg_sync");
        assert_eq!(p.to, vec![1], "alice is in the room, carol is not");
        assert_eq!(p.payload["room_id"], json!(r));
        assert_eq!(p.payload["content"]["msg_type"], content["msg_type"]);
        assert_eq!(p.payload["content"]["msg_body"], content["msg_body"]);
        assert_eq!(p.payload["content"]["from_id"], json!("bobby"));
    }
}
