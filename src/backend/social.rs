//! Friends and blacklist (protocol.md 4.6, 4.7, 7.3; guide "Friends Related", "Blacklist
//! Management"): `get_friend_list`, `add_friend` (invite / accept / decline), `del_friend`,
//! `update_friend_memo`, `get_black_list`, `add_black_list`, `del_black_list`.
//!
//! Also the helpers the other settings areas (no-disturb, shield, transparent messages)
//! share: target resolution, gid parsing, `to_usernames` entries and the "own settings
//! changed" event pair (legacy 37/38/39 + multi-end 100-103).
//!
//! Choices the protocol leaves open are in docs/decisions-social.md.

use super::model::{Friend, Social, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};

/// Longest `memo_name`, in characters (881304 beyond it).
pub const MAX_MEMO_NAME_CHARS: usize = 64;
/// Longest `memo_others`, in characters (881304 beyond it).
pub const MAX_MEMO_OTHERS_CHARS: usize = 250;
/// `return_code` of a declined invitation in event 5 (`extra: 2`); 0 means accepted.
pub const DECLINED_RETURN_CODE: i64 = 1;

/// A profile as listed in `friend_list` / `black_list` (without the memo fields).
fn profile(b: &Backend, k: &UserKey) -> Option<Map<String, Value>> {
    let u = b.users.get(k)?;
    json!({
        "uid": u.uid,
        "username": u.key.username,
        "appkey": u.key.appkey,
        "nickname": u.nickname,
        "avatar": u.avatar,
        "birthday": u.birthday,
        "gender": u.gender,
        "signature": u.signature,
        "region": u.region,
        "address": u.address,
        // The profile's modification time in seconds (the guide: "user info last modified";
        // the SDK compares it ×1000 with message `sui_mtime`).
        "mtime": u.mtime_s,
    })
    .as_object()
    .cloned()
}

impl Backend {
    /// The user named by `name_key` (+ optional `appkey_key`, default: the caller's app).
    pub(super) fn named_user(
        me: &UserKey,
        a: Args<'_>,
        name_key: &str,
        appkey_key: &str,
    ) -> Result<UserKey, Failure> {
        let name = a
            .opt_id(name_key)?
            .ok_or_else(|| Failure::new(Code::Missing, format!("{name_key} is required")))?;
        let appkey = a
            .opt_str(appkey_key)?
            .filter(|s| !s.is_empty())
            .unwrap_or(&me.appkey);
        Ok(UserKey::new(appkey, name))
    }

    /// A `gid` argument (number or string). A value that is not a gid is reported with
    /// `not_found`, the area's "group does not exist" code.
    pub(super) fn gid_arg(a: Args<'_>, not_found: Code) -> Result<u64, Failure> {
        let raw = a
            .opt_id("gid")?
            .ok_or_else(|| Failure::new(Code::Missing, "gid is required"))?;
        raw.trim()
            .parse::<u64>()
            .map_err(|_| Failure::new(not_found, format!("no group {raw}")))
    }

    /// A user's social settings, created on first write.
    pub(super) fn social_mut(&mut self, k: &UserKey) -> &mut Social {
        self.social.entry(k.clone()).or_default()
    }

    /// A change of the caller's own settings: the legacy event `legacy` (37/38/39, no
    /// fields) and then the multi-end event `multi` (100-103) with `fields`, both to the
    /// caller's other sessions (and their event logs, for devices that are offline).
    pub(super) fn own_change(
        &mut self,
        out: &mut Outcome,
        conn: ConnId,
        me: &UserKey,
        legacy: Option<i64>,
        multi: i64,
        fields: Value,
    ) {
        let users = std::slice::from_ref(me);
        if let Some(t) = legacy {
            let ev = self.new_event(t, json!({}));
            self.notify(out, users, ev, Some(conn));
        }
        let ev = self.new_event(multi, fields);
        self.notify(out, users, ev, Some(conn));
    }

    /// [`Self::own_change`] as the whole answer to a successful request.
    pub(super) fn own_change_ok(
        &mut self,
        conn: ConnId,
        me: &UserKey,
        legacy: Option<i64>,
        multi: i64,
        fields: Value,
    ) -> Outcome {
        let mut out = Outcome::ok_empty();
        self.own_change(&mut out, conn, me, legacy, multi, fields);
        out
    }

    // ----- friends -------------------------------------------------------------------

    pub(super) fn get_friend_list(&mut self, conn: ConnId) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let mut list = Vec::new();
        if let Some(s) = self.social.get(&me) {
            for (k, f) in &s.friends {
                let Some(mut p) = profile(self, k) else {
                    continue;
                };
                p.insert("memo_name".into(), json!(f.memo_name));
                p.insert("memo_others".into(), json!(f.memo_others));
                list.push(Value::Object(p));
            }
        }
        let mut f = Map::new();
        f.insert("friend_list".into(), Value::Array(list));
        Ok(Outcome::ok(f))
    }

    fn are_friends(&self, a: &UserKey, b: &UserKey) -> bool {
        self.social
            .get(a)
            .is_some_and(|s| s.friends.contains_key(b))
    }

    pub(super) fn add_friend(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let target = Self::named_user(&me, a, "target_name", "appkey")?;
        let why = a.opt_str("why")?.unwrap_or("");
        super::limits::check_str("why", why, super::limits::MAX_WHY_BYTES)?;
        let why = why.to_owned();
        let from_type = a
            .opt_i64("from_type")?
            .ok_or_else(|| Failure::new(Code::Missing, "from_type is required"))?;
        if from_type != 1 && from_type != 2 {
            return Err(Failure::new(
                Code::InvalidValue,
                format!("from_type must be 1 (invite) or 2 (answer), not {from_type}"),
            ));
        }
        if !self.users.contains_key(&target) || !self.cross_app_allowed(&me.appkey, &target.appkey)
        {
            return Err(Failure::new(
                Code::FriendUserNotExist,
                format!(
                    "user {} does not exist in {}",
                    target.username, target.appkey
                ),
            ));
        }
        if target == me {
            return Err(Failure::new(
                Code::InvalidValue,
                "you cannot be your own friend",
            ));
        }
        if from_type == 1 {
            self.invite_friend(me, target, why)
        } else {
            self.answer_friend(conn, me, target, why)
        }
    }

    fn invite_friend(
        &mut self,
        me: UserKey,
        target: UserKey,
        why: String,
    ) -> Result<Outcome, Failure> {
        if self.are_friends(&me, &target) {
            return Err(Failure::new(
                Code::FriendAlready,
                format!("{} is already your friend", target.username),
            ));
        }
        let avatar = self
            .users
            .get(&me)
            .map(|u| u.avatar.clone())
            .unwrap_or_default();
        let nickname = self
            .users
            .get(&me)
            .map(|u| u.nickname.clone())
            .unwrap_or_default();
        let ev = self.new_event(
            5,
            json!({
                "extra": 1,
                "from_username": me.username,
                "from_appkey": me.appkey,
                "from_nickname": nickname,
                "media_id": avatar,
                "description": why,
            }),
        );
        let event_id = ev["event_id"].as_u64().unwrap_or(0);
        // A repeated invitation replaces the pending one.
        self.social_mut(&target)
            .invitations
            .insert(me.clone(), (event_id, why));
        Ok(self.ok_notifying(std::slice::from_ref(&target), ev))
    }

    fn answer_friend(
        &mut self,
        conn: ConnId,
        me: UserKey,
        inviter: UserKey,
        why: String,
    ) -> Result<Outcome, Failure> {
        if self
            .social
            .get(&me)
            .is_none_or(|s| !s.invitations.contains_key(&inviter))
        {
            return Err(Failure::new(
                Code::FriendInvitationInvalid,
                format!("no pending invitation from {}", inviter.username),
            ));
        }
        self.social_mut(&me).invitations.remove(&inviter);
        let accepted = why == "yes";
        let (avatar, nickname) = self
            .users
            .get(&me)
            .map(|u| (u.avatar.clone(), u.nickname.clone()))
            .unwrap_or_default();
        let mut out = Outcome::ok_empty();
        if accepted {
            let now_s = self.now_ms() / 1000;
            let friend = Friend {
                mtime_s: now_s,
                ..Friend::default()
            };
            // Already friends (e.g. both invited each other): memos are kept.
            let mine = self.social_mut(&me);
            mine.friends
                .entry(inviter.clone())
                .or_insert(friend.clone());
            let theirs = self.social_mut(&inviter);
            theirs.friends.entry(me.clone()).or_insert(friend);
            // A cross invitation (both invited each other) is settled too.
            theirs.invitations.remove(&me);
        }
        let ev = self.new_event(
            5,
            json!({
                "extra": 2,
                "from_username": me.username,
                "from_appkey": me.appkey,
                "from_nickname": nickname,
                "media_id": avatar,
                "return_code": if accepted { 0 } else { DECLINED_RETURN_CODE },
                "description": why,
            }),
        );
        self.notify(&mut out, std::slice::from_ref(&inviter), ev, None);
        if accepted {
            let media = self
                .users
                .get(&inviter)
                .map(|u| u.avatar.clone())
                .unwrap_or_default();
            let fields = json!({
                "extra": 5,
                "to_usernames": [self.user_ref(&inviter)],
                "media_id": media,
            });
            self.own_change(&mut out, conn, &me, None, 100, fields);
        }
        Ok(out)
    }

    /// The friend named by `target_name`/`appkey`, or 881303.
    fn friend_arg(&self, me: &UserKey, a: Args<'_>) -> Result<UserKey, Failure> {
        let target = Self::named_user(me, a, "target_name", "appkey")?;
        if !self.are_friends(me, &target) {
            return Err(Failure::new(
                Code::FriendNot,
                format!("{} is not your friend", target.username),
            ));
        }
        Ok(target)
    }

    pub(super) fn del_friend(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let target = self.friend_arg(&me, a)?;
        self.social_mut(&me).friends.remove(&target);
        self.social_mut(&target).friends.remove(&me);
        let mut out = Outcome::ok_empty();
        let ev = self.new_event(
            6,
            json!({"from_username": me.username, "from_appkey": me.appkey}),
        );
        self.notify(&mut out, std::slice::from_ref(&target), ev, None);
        let media = self
            .users
            .get(&target)
            .map(|u| u.avatar.clone())
            .unwrap_or_default();
        let fields = json!({
            "extra": 6,
            "to_usernames": [self.user_ref(&target)],
            "media_id": media,
        });
        self.own_change(&mut out, conn, &me, None, 100, fields);
        Ok(out)
    }

    pub(super) fn update_friend_memo(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let memo_name = a
            .opt_str("memo_name")?
            .ok_or_else(|| Failure::new(Code::Missing, "memo_name is required"))?
            .to_owned();
        let memo_others = a.opt_str("memo_others")?.map(str::to_owned);
        let target = self.friend_arg(&me, a)?;
        if memo_name.chars().count() > MAX_MEMO_NAME_CHARS {
            return Err(Failure::new(
                Code::FriendMemoInvalid,
                format!("memo_name is longer than {MAX_MEMO_NAME_CHARS} characters"),
            ));
        }
        if memo_others
            .as_ref()
            .is_some_and(|m| m.chars().count() > MAX_MEMO_OTHERS_CHARS)
        {
            return Err(Failure::new(
                Code::FriendMemoInvalid,
                format!("memo_others is longer than {MAX_MEMO_OTHERS_CHARS} characters"),
            ));
        }
        let now_s = self.now_ms() / 1000;
        let friend = self
            .social_mut(&me)
            .friends
            .entry(target.clone())
            .or_default();
        friend.memo_name = memo_name;
        if let Some(o) = memo_others {
            friend.memo_others = o;
        }
        friend.mtime_s = now_s;
        let description = json!({
            "memo_name": friend.memo_name,
            "memo_others": friend.memo_others,
        })
        .to_string();
        let media = self
            .users
            .get(&target)
            .map(|u| u.avatar.clone())
            .unwrap_or_default();
        let mut out = Outcome::ok_empty();
        let fields = json!({
            "extra": 7,
            "to_usernames": [self.user_ref(&target)],
            "media_id": media,
            // A JSON *string*: the SDK parses it (protocol.md 7.3).
            "description": description,
        });
        self.own_change(&mut out, conn, &me, None, 100, fields);
        Ok(out)
    }

    // ----- blacklist -----------------------------------------------------------------

    /// Whether `owner` has blacklisted `who`.
    pub(super) fn is_blacklisted(&self, owner: &UserKey, who: &UserKey) -> bool {
        self.social
            .get(owner)
            .is_some_and(|s| s.blacklist.contains(who))
    }

    pub(super) fn get_black_list(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        // `version` is sent as 0 by the SDK and has no meaning here; only its type is checked.
        a.opt_i64("version")?;
        let list: Vec<Value> = self
            .social
            .get(&me)
            .map(|s| {
                s.blacklist
                    .iter()
                    .filter_map(|k| profile(self, k).map(Value::Object))
                    .collect()
            })
            .unwrap_or_default();
        let mut f = Map::new();
        f.insert("black_list".into(), Value::Array(list));
        Ok(Outcome::ok(f))
    }

    /// `member_usernames: [{username, appkey?}]`, de-duplicated, in request order.
    fn listed_users(me: &UserKey, a: Args<'_>) -> Result<Vec<UserKey>, Failure> {
        let list = a
            .opt_array("member_usernames")?
            .ok_or_else(|| Failure::new(Code::Missing, "member_usernames is required"))?;
        if list.is_empty() {
            return Err(Failure::new(Code::Missing, "member_usernames is empty"));
        }
        let mut out: Vec<UserKey> = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let Value::Object(m) = v else {
                return Err(Failure::new(
                    Code::InvalidType,
                    format!("member_usernames[{i}] must be an object"),
                ));
            };
            let k = Self::named_user(me, Args(m), "username", "appkey").map_err(|f| {
                Failure::new(f.code, format!("member_usernames[{i}].{}", f.message))
            })?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        Ok(out)
    }

    pub(super) fn add_black_list(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let list = Self::listed_users(&me, a)?;
        // All or nothing: every entry is checked before anything changes.
        for k in &list {
            if !self.users.contains_key(k) {
                return Err(Failure::new(
                    Code::BlacklistUnknownUser,
                    format!("user {} does not exist in {}", k.username, k.appkey),
                ));
            }
            if *k == me {
                return Err(Failure::new(
                    Code::BlacklistCannotAdd,
                    "you cannot blacklist yourself",
                ));
            }
            if self.is_blacklisted(&me, k) {
                return Err(Failure::new(
                    Code::BlacklistRepeated,
                    format!("{} is already in your blacklist", k.username),
                ));
            }
        }
        self.social_mut(&me).blacklist.extend(list.iter().cloned());
        Ok(self.blacklist_changed(conn, &me, &list, 1))
    }

    /// The answer to a blacklist change: event 101 (`extra` 1 added, 2 removed) to the
    /// caller's own sessions.
    fn blacklist_changed(
        &mut self,
        conn: ConnId,
        me: &UserKey,
        list: &[UserKey],
        extra: u8,
    ) -> Outcome {
        let to: Vec<Value> = list.iter().map(|k| self.user_ref(k)).collect();
        let fields = json!({"extra": extra, "to_usernames": to});
        self.own_change_ok(conn, me, Some(38), 101, fields)
    }

    pub(super) fn del_black_list(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let list = Self::listed_users(&me, a)?;
        for k in &list {
            if !self.users.contains_key(k) || !self.is_blacklisted(&me, k) {
                return Err(Failure::new(
                    Code::BlacklistUnknownUser,
                    format!("{} ({}) is not in your blacklist", k.username, k.appkey),
                ));
            }
        }
        let s = self.social_mut(&me);
        for k in &list {
            s.blacklist.remove(k);
        }
        Ok(self.blacklist_changed(conn, &me, &list, 2))
    }
}

#[cfg(test)]
mod tests {
    use super::super::md5_hex;
    use super::super::test_support::*;
    use super::super::{FriendSeed, Outcome, UserKey};
    use super::*;
    use rstest::rstest;

    /// alice on conn 1 (web) and 11 (pc), bobby on 2, carol on 3.
    fn setup() -> Harness {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.login_on(11, "alice", "pc");
        h.user(2, "bobby");
        h.user(3, "carol");
        h
    }

    fn friends(h: &mut Harness, a: &str, b: &str) {
        h.b.seed_friends(FriendSeed {
            appkey: APP.into(),
            users: [a.into(), b.into()],
        })
        .unwrap();
    }

    /// bobby (2) invites alice; alice (1) answers with `why`: the answer's outcome.
    fn invited_then_answered(h: &mut Harness, why: &str) -> Outcome {
        h.req(
            2,
            "add_friend",
            json!({"target_name": "alice", "why": "hello", "from_type": 1}),
        );
        h.req(
            1,
            "add_friend",
            json!({"target_name": "bobby", "why": why, "from_type": 2}),
        )
    }

    fn names(list: &Value) -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|v| v["username"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn invitation_goes_to_the_invitee_with_event_5_extra_1() {
        let mut h = setup();
        h.req(1, "update_user_inf", json!({"avatar": "qiniu/image/a"}));
        let o = h.req(
            1,
            "add_friend",
            json!({"target_name": "bobby", "why": "hi", "from_type": 1}),
        );
        assert_eq!(o.code(), Some(0));
        let ev = events(&o);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, vec![2]);
        let e = &ev[0].1;
        assert_eq!(e["event_type"], json!(5));
        assert_eq!(e["extra"], json!(1));
        assert_eq!(e["from_username"], json!("alice"));
        assert_eq!(e["from_appkey"], json!(APP));
        assert_eq!(e["media_id"], json!("qiniu/image/a"));
        assert_eq!(e["description"], json!("hi"));
        assert!(e["event_id"].as_u64().is_some());
        assert!(e.get("rid").is_none());
    }

    #[test]
    fn accepting_makes_both_friends_and_notifies_inviter_and_own_devices() {
        let mut h = setup();
        // bobby invites alice; alice accepts on conn 1; her pc session (11) gets event 100.
        let o = invited_then_answered(&mut h, "yes");
        assert_eq!(o.code(), Some(0));
        let ev = events(&o);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].0, vec![2]);
        assert_eq!(ev[0].1["event_type"], json!(5));
        assert_eq!(ev[0].1["extra"], json!(2));
        assert_eq!(ev[0].1["return_code"], json!(0));
        assert_eq!(ev[0].1["from_username"], json!("alice"));
        assert_eq!(ev[1].0, vec![11]);
        assert_eq!(ev[1].1["event_type"], json!(100));
        assert_eq!(ev[1].1["extra"], json!(5));
        assert_eq!(
            ev[1].1["to_usernames"],
            json!([{"username": "bobby", "appkey": APP, "nickname": ""}])
        );
        for (conn, peer) in [(1, "bobby"), (2, "alice")] {
            let l = h.req(conn, "get_friend_list", json!({}));
            assert_eq!(names(&resp(&l)["friend_list"]), vec![peer.to_owned()]);
        }
        // The invitation is used up.
        let again = h.req(
            1,
            "add_friend",
            json!({"target_name": "bobby", "why": "yes", "from_type": 2}),
        );
        assert_eq!(again.code(), Some(881305));
    }

    #[test]
    fn cross_invitations_settle_with_one_accept_and_keep_memos() {
        let mut h = setup();
        for (conn, target) in [(1, "bobby"), (2, "alice")] {
            let o = h.req(
                conn,
                "add_friend",
                json!({"target_name": target, "why": "hi", "from_type": 1}),
            );
            assert_eq!(o.code(), Some(0));
        }
        assert_eq!(
            h.req(
                1,
                "add_friend",
                json!({"target_name": "bobby", "why": "yes", "from_type": 2})
            )
            .code(),
            Some(0)
        );
        // bobby's invitation from alice was settled by the same accept.
        assert_eq!(
            h.req(
                2,
                "add_friend",
                json!({"target_name": "alice", "why": "yes", "from_type": 2})
            )
            .code(),
            Some(881305)
        );
        // Re-inviting a friend is 881302.
        assert_eq!(
            h.req(
                2,
                "add_friend",
                json!({"target_name": "alice", "why": "hi", "from_type": 1})
            )
            .code(),
            Some(881302)
        );
    }

    #[test]
    fn declining_tells_the_inviter_with_a_reason() {
        let mut h = setup();
        let o = invited_then_answered(&mut h, "no thanks");
        assert_eq!(o.code(), Some(0));
        let ev = events(&o);
        assert_eq!(ev.len(), 1, "no multi-end event for a decline");
        assert_eq!(ev[0].0, vec![2]);
        assert_eq!(ev[0].1["extra"], json!(2));
        assert_eq!(ev[0].1["return_code"], json!(DECLINED_RETURN_CODE));
        assert_eq!(ev[0].1["description"], json!("no thanks"));
        let l = h.req(1, "get_friend_list", json!({}));
        assert_eq!(resp(&l)["friend_list"], json!([]));
    }

    #[rstest]
    #[case::unknown_user(json!({"target_name": "nobody", "why": "x", "from_type": 1}), 881301)]
    #[case::other_app_unknown(json!({"target_name": "bobby", "appkey": APP2, "why": "x", "from_type": 1}), 881301)]
    #[case::already_friends(json!({"target_name": "carol", "why": "x", "from_type": 1}), 881302)]
    #[case::no_invitation(json!({"target_name": "bobby", "why": "yes", "from_type": 2}), 881305)]
    #[case::self_invite(json!({"target_name": "alice", "why": "x", "from_type": 1}), 880003)]
    #[case::bad_from_type(json!({"target_name": "bobby", "why": "x", "from_type": 3}), 880003)]
    #[case::missing_from_type(json!({"target_name": "bobby", "why": "x"}), 880001)]
    #[case::missing_target(json!({"why": "x", "from_type": 1}), 880001)]
    #[case::why_not_string(json!({"target_name": "bobby", "why": 5, "from_type": 1}), 880004)]
    fn add_friend_failures(#[case] req: Value, #[case] code: i64) {
        let mut h = setup();
        friends(&mut h, "alice", "carol");
        let o = h.req(1, "add_friend", req);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
    }

    #[test]
    fn offline_invitee_gets_the_invitation_through_sync_event() {
        let mut h = setup();
        h.b.disconnect(2);
        let o = h.req(
            1,
            "add_friend",
            json!({"target_name": "bobby", "why": "hi", "from_type": 1}),
        );
        assert!(o.pushes.is_empty());
        h.init(4, APP, SECRET);
        h.req(
            4,
            "login",
            json!({"username": "bobby", "password": md5_hex("pw")}),
        );
        let s = h.req(4, "sync_check", json!({"sync_key": 0, "sync_event_key": 0}));
        let p = s.pushes.iter().find(|p| p.event == "sync_event").unwrap();
        assert_eq!(p.payload["events"][0]["event_type"], json!(5));
        assert_eq!(
            h.req(
                4,
                "add_friend",
                json!({"target_name": "alice", "why": "yes", "from_type": 2})
            )
            .code(),
            Some(0)
        );
    }

    #[test]
    fn del_friend_notifies_the_removed_friend_and_own_devices() {
        let mut h = setup();
        friends(&mut h, "alice", "bobby");
        let o = h.req(1, "del_friend", json!({"target_name": "bobby"}));
        assert_eq!(o.code(), Some(0));
        let ev = events(&o);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].0, vec![2]);
        assert_eq!(ev[0].1["event_type"], json!(6));
        assert_eq!(ev[0].1["from_username"], json!("alice"));
        assert_eq!(ev[0].1["from_appkey"], json!(APP));
        assert_eq!(ev[1].0, vec![11]);
        assert_eq!(ev[1].1["event_type"], json!(100));
        assert_eq!(ev[1].1["extra"], json!(6));
        assert_eq!(names(&ev[1].1["to_usernames"]), vec!["bobby"]);
        let l = h.req(2, "get_friend_list", json!({}));
        assert_eq!(resp(&l)["friend_list"], json!([]));
        assert_eq!(
            h.req(1, "del_friend", json!({"target_name": "bobby"}))
                .code(),
            Some(881303)
        );
        assert_eq!(h.req(1, "del_friend", json!({})).code(), Some(880001));
    }

    #[test]
    fn memo_update_shows_in_the_list_and_multi_end_description_is_a_json_string() {
        let mut h = setup();
        friends(&mut h, "alice", "bobby");
        h.req(
            2,
            "update_user_inf",
            json!({"nickname": "Bob", "gender": 1}),
        );
        h.clock.advance_ms(5_000);
        let o = h.req(
            1,
            "update_friend_memo",
            json!({"target_name": "bobby", "memo_name": "B", "memo_others": "from work"}),
        );
        assert_eq!(o.code(), Some(0));
        let ev = events(&o);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, vec![11]);
        let e = &ev[0].1;
        assert_eq!(e["event_type"], json!(100));
        assert_eq!(e["extra"], json!(7));
        let d: Value = serde_json::from_str(e["description"].as_str().unwrap()).unwrap();
        assert_eq!(d, json!({"memo_name": "B", "memo_others": "from work"}));
        let l = h.req(1, "get_friend_list", json!({}));
        let f = &resp(&l)["friend_list"][0];
        let bobby = h.b.user(&UserKey::new(APP, "bobby")).unwrap().clone();
        assert_eq!(
            *f,
            json!({"uid": bobby.uid, "username": "bobby", "appkey": APP, "nickname": "Bob",
                   "avatar": "", "birthday": "", "gender": 1, "signature": "", "region": "",
                   "address": "", "mtime": bobby.mtime_s, "memo_name": "B",
                   "memo_others": "from work"})
        );
        // memo_others is kept when omitted.
        h.req(
            1,
            "update_friend_memo",
            json!({"target_name": "bobby", "memo_name": "Bo"}),
        );
        let l = h.req(1, "get_friend_list", json!({}));
        assert_eq!(
            resp(&l)["friend_list"][0]["memo_others"],
            json!("from work")
        );
        assert_eq!(resp(&l)["friend_list"][0]["memo_name"], json!("Bo"));
        // bobby's own view is untouched.
        let l = h.req(2, "get_friend_list", json!({}));
        assert_eq!(resp(&l)["friend_list"][0]["memo_name"], json!(""));
    }

    #[rstest]
    #[case::not_friend(json!({"target_name": "carol", "memo_name": "C"}), 881303)]
    #[case::unknown(json!({"target_name": "nobody", "memo_name": "C"}), 881303)]
    #[case::long_name(json!({"target_name": "bobby", "memo_name": "n".repeat(65)}), 881304)]
    #[case::long_others(json!({"target_name": "bobby", "memo_name": "n", "memo_others": "o".repeat(251)}), 881304)]
    #[case::missing_memo(json!({"target_name": "bobby"}), 880001)]
    #[case::memo_type(json!({"target_name": "bobby", "memo_name": 3}), 880004)]
    fn memo_failures(#[case] req: Value, #[case] code: i64) {
        let mut h = setup();
        friends(&mut h, "alice", "bobby");
        let o = h.req(1, "update_friend_memo", req);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
    }

    #[test]
    fn blacklist_add_list_remove_with_events_38_and_101() {
        let mut h = setup();
        let o = h.req(
            1,
            "add_black_list",
            json!({"member_usernames": [{"username": "bobby"}, {"username": "carol", "appkey": APP}]}),
        );
        assert_eq!(o.code(), Some(0));
        let ev = events(&o);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|(to, _)| *to == vec![11]));
        assert_eq!(ev[0].1["event_type"], json!(38));
        assert_eq!(ev[1].1["event_type"], json!(101));
        assert_eq!(ev[1].1["extra"], json!(1));
        assert_eq!(names(&ev[1].1["to_usernames"]), vec!["bobby", "carol"]);
        let l = h.req(1, "get_black_list", json!({"version": 0}));
        let list = &resp(&l)["black_list"];
        assert_eq!(names(list), vec!["bobby", "carol"]);
        for k in [
            "uid",
            "username",
            "appkey",
            "nickname",
            "avatar",
            "birthday",
            "gender",
            "signature",
            "region",
            "address",
            "mtime",
        ] {
            assert!(list[0].get(k).is_some(), "black_list entry lacks {k}");
        }
        let o = h.req(
            1,
            "del_black_list",
            json!({"member_usernames": [{"username": "bobby"}]}),
        );
        assert_eq!(o.code(), Some(0));
        let ev = events(&o);
        assert_eq!(ev[1].1["event_type"], json!(101));
        assert_eq!(ev[1].1["extra"], json!(2));
        assert_eq!(names(&ev[1].1["to_usernames"]), vec!["bobby"]);
        let l = h.req(1, "get_black_list", json!({}));
        assert_eq!(names(&resp(&l)["black_list"]), vec!["carol"]);
    }

    #[rstest]
    #[case::unknown("add_black_list", json!([{"username": "bobby"}, {"username": "nobody"}]), 881002)]
    #[case::myself("add_black_list", json!([{"username": "alice"}]), 880903)]
    #[case::repeated("add_black_list", json!([{"username": "carol"}]), 880904)]
    #[case::empty("add_black_list", json!([]), 880001)]
    #[case::not_objects("add_black_list", json!(["bobby"]), 880004)]
    #[case::no_username("add_black_list", json!([{"appkey": APP}]), 880001)]
    #[case::del_not_listed("del_black_list", json!([{"username": "bobby"}]), 881002)]
    #[case::del_unknown("del_black_list", json!([{"username": "nobody"}]), 881002)]
    fn blacklist_failures_change_nothing(
        #[case] event: &str,
        #[case] list: Value,
        #[case] code: i64,
    ) {
        let mut h = setup();
        h.req(
            1,
            "add_black_list",
            json!({"member_usernames": [{"username": "carol"}]}),
        );
        let o = h.req(1, event, json!({ "member_usernames": list }));
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
        let l = h.req(1, "get_black_list", json!({}));
        assert_eq!(names(&resp(&l)["black_list"]), vec!["carol"]);
        assert_eq!(h.req(1, "add_black_list", json!({})).code(), Some(880001));
    }

    #[test]
    fn blacklisted_sender_cannot_message_the_blacklister() {
        let mut h = setup();
        h.req(
            2,
            "add_black_list",
            json!({"member_usernames": [{"username": "alice"}]}),
        );
        let text = json!({"msg_type": "text", "msg_body": {"text": "x"}});
        let o = h.req(
            1,
            "s_across_single_text",
            json!({"target_id": "bobby", "content": text}),
        );
        assert_eq!(o.code(), Some(880207));
        assert!(o.pushes.is_empty());
        // The other way round still works.
        let o = h.req(
            2,
            "s_across_single_text",
            json!({"target_id": "alice", "content": text}),
        );
        assert_eq!(o.code(), Some(0));
        h.req(
            2,
            "del_black_list",
            json!({"member_usernames": [{"username": "alice"}]}),
        );
        let o = h.req(
            1,
            "s_across_single_text",
            json!({"target_id": "bobby", "content": text}),
        );
        assert_eq!(o.code(), Some(0));
    }
}
