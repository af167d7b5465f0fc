//! No-disturb and group shield (protocol.md 4.6; guide "Do-Not-Disturb Management"):
//! `no_disturb`, `add/delete_msg_no_disturb_single`, `add/delete_msg_no_disturb_group`,
//! `add/delete_msg_no_disturb_global`, `list_shield_group`, `add/del_msg_shield_group`.
//!
//! Every change sends the legacy event (37 no-disturb, 39 shield) and the multi-end event
//! (102, 103) to the caller's other sessions. No-disturb does not change delivery (it only
//! mutes notifications on devices); a shielded group's messages are not delivered to the
//! user, which the group send path applies through [`Backend::is_group_shielded`].

use super::model::{Social, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Which no-disturb list a call changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Del,
}

/// One of a user's group lists (no-disturb, shield): where it lives, the failures when
/// there is nothing to change, and the events a change sends.
struct GroupList {
    list: fn(&mut Social) -> &mut BTreeSet<u64>,
    /// (code, wording) when adding a group already listed.
    already: (Code, &'static str),
    /// (code, wording) when removing a group not listed.
    not: (Code, &'static str),
    legacy: i64,
    multi: i64,
    /// The multi-end event's `extra` for (add, remove).
    extra: (i64, i64),
}

// Deliberately alike: the two rows of the `GroupList` table.
const NODISTURB_GROUPS: GroupList = GroupList {
    list: |s| &mut s.nodisturb_groups,
    already: (Code::NoDisturbGroupAlready, "is already in no-disturb"),
    not: (Code::NoDisturbGroupNot, "is not in no-disturb"),
    legacy: 37,
    multi: 102,
    extra: (33, 34),
};

const SHIELD_GROUPS: GroupList = GroupList {
    list: |s| &mut s.shield_groups,
    already: (Code::ShieldAlready, "is already shielded"),
    not: (Code::ShieldNot, "is not shielded"),
    legacy: 39,
    multi: 103,
    extra: (1, 2),
};

impl Backend {
    /// Whether `user` has shielded group `gid`: the group send path must not push that
    /// group's messages (nor group transparent messages) to the user.
    pub(super) fn is_group_shielded(&self, user: &UserKey, gid: u64) -> bool {
        self.social
            .get(user)
            .is_some_and(|s| s.shield_groups.contains(&gid))
    }

    /// `{gid, name}` for `to_groups`.
    fn group_ref(&self, gid: u64) -> Value {
        json!({
            "gid": gid,
            "name": self.groups.get(&gid).map(|g| g.name.as_str()).unwrap_or(""),
        })
    }

    /// Briefs of the listed groups that still exist and still have `me` as a member.
    fn group_briefs<'a>(&self, me: &UserKey, gids: impl Iterator<Item = &'a u64>) -> Vec<Value> {
        gids.filter_map(|gid| self.groups.get(gid))
            .filter(|g| g.members.contains_key(me))
            .map(|g| g.brief())
            .collect()
    }

    /// The group of a `gid` argument, checked to exist and to have `me` as a member.
    fn member_group(
        &self,
        me: &UserKey,
        a: Args<'_>,
        missing: Code,
        not_member: Code,
    ) -> Result<u64, Failure> {
        let gid = Self::gid_arg(a, missing)?;
        let g = self
            .groups
            .get(&gid)
            .ok_or_else(|| Failure::new(missing, format!("group {gid} does not exist")))?;
        if !g.members.contains_key(me) {
            return Err(Failure::new(
                not_member,
                format!("you are not a member of group {gid}"),
            ));
        }
        Ok(gid)
    }

    // ----- no-disturb ----------------------------------------------------------------

    pub(super) fn no_disturb(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me_versioned(conn, a)?;
        let (global, users, groups) = match self.social.get(&me) {
            None => (false, Vec::new(), Vec::new()),
            Some(s) => (
                s.nodisturb_global,
                s.nodisturb_users
                    .iter()
                    .filter(|k| self.users.contains_key(k))
                    .map(|k| self.user_ref(k))
                    .collect(),
                self.group_briefs(&me, s.nodisturb_groups.iter()),
            ),
        };
        let mut f = Map::new();
        f.insert(
            "no_disturb".into(),
            json!({
                "global": i64::from(global),
                "users": users,
                // Always present: the SDK's hook walks it.
                "groups": groups,
            }),
        );
        Ok(Outcome::ok(f))
    }

    /// The caller of a no-disturb change, after checking the optional `version`.
    fn me_versioned(&self, conn: ConnId, a: Args<'_>) -> Result<UserKey, Failure> {
        let me = self.me(conn)?;
        a.opt_i64("version")?;
        Ok(me)
    }

    pub(super) fn nodisturb_single(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
        op: Op,
    ) -> Result<Outcome, Failure> {
        let me = self.me_versioned(conn, a)?;
        let target = Self::named_user(&me, a, "target_name", "appkey")?;
        if !self.users.contains_key(&target) {
            return Err(Failure::new(
                Code::TargetUserNotExist,
                format!(
                    "user {} does not exist in {}",
                    target.username, target.appkey
                ),
            ));
        }
        let s = self.social_mut(&me);
        match op {
            Op::Add if !s.nodisturb_users.insert(target.clone()) => {
                return Err(Failure::new(
                    Code::NoDisturbUserAlready,
                    format!("{} is already in no-disturb", target.username),
                ))
            }
            Op::Del if !s.nodisturb_users.remove(&target) => {
                return Err(Failure::new(
                    Code::NoDisturbUserNot,
                    format!("{} is not in no-disturb", target.username),
                ))
            }
            _ => {}
        }
        let extra = if op == Op::Add { 31 } else { 32 };
        let fields = json!({"extra": extra, "to_usernames": [self.user_ref(&target)]});
        Ok(self.own_change_ok(conn, &me, Some(37), 102, fields))
    }

    pub(super) fn nodisturb_group(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
        op: Op,
    ) -> Result<Outcome, Failure> {
        let me = self.me_versioned(conn, a)?;
        let gid = self.member_group(
            &me,
            a,
            Code::NoDisturbGroupNotExist,
            Code::NoDisturbNotInGroup,
        )?;
        self.change_group_list(conn, &me, gid, op, &NODISTURB_GROUPS)
    }

    /// Adds `gid` to (or removes it from) the caller's group list `l` and tells the
    /// caller's other sessions (events `l.legacy` and `l.multi`).
    fn change_group_list(
        &mut self,
        conn: ConnId,
        me: &UserKey,
        gid: u64,
        op: Op,
        l: &GroupList,
    ) -> Result<Outcome, Failure> {
        let set = (l.list)(self.social_mut(me));
        let (changed, (code, what), extra) = match op {
            Op::Add => (set.insert(gid), l.already, l.extra.0),
            Op::Del => (set.remove(&gid), l.not, l.extra.1),
        };
        if !changed {
            return Err(Failure::new(code, format!("group {gid} {what}")));
        }
        let fields = json!({"extra": extra, "to_groups": [self.group_ref(gid)]});
        Ok(self.own_change_ok(conn, me, Some(l.legacy), l.multi, fields))
    }

    pub(super) fn nodisturb_global(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
        op: Op,
    ) -> Result<Outcome, Failure> {
        let me = self.me_versioned(conn, a)?;
        let s = self.social_mut(&me);
        let on = op == Op::Add;
        if s.nodisturb_global == on {
            return Err(if on {
                Failure::new(
                    Code::NoDisturbGlobalAlready,
                    "global no-disturb is already on",
                )
            } else {
                Failure::new(Code::NoDisturbGlobalNot, "global no-disturb is not on")
            });
        }
        s.nodisturb_global = on;
        let fields = json!({"extra": if on { 35 } else { 36 }});
        Ok(self.own_change_ok(conn, &me, Some(37), 102, fields))
    }

    // ----- shield --------------------------------------------------------------------

    pub(super) fn list_shield_group(&mut self, conn: ConnId) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let groups = self
            .social
            .get(&me)
            .map(|s| self.group_briefs(&me, s.shield_groups.iter()))
            .unwrap_or_default();
        let mut f = Map::new();
        // The SDK reads `groups`; the guide documents `group_list`.
        f.insert("groups".into(), Value::Array(groups.clone()));
        f.insert("group_list".into(), Value::Array(groups));
        Ok(Outcome::ok(f))
    }

    pub(super) fn shield(&mut self, conn: ConnId, a: Args<'_>, op: Op) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let gid = self.member_group(&me, a, Code::ShieldGroupNotExist, Code::ShieldNotInGroup)?;
        self.change_group_list(conn, &me, gid, op, &SHIELD_GROUPS)
    }
}

#[cfg(test)]
mod tests {
    use super::super::md5_hex;
    use super::super::test_support::*;
    use super::super::{GroupSeed, Outcome, UserKey};
    use super::*;
    use rstest::rstest;

    /// alice on conns 1 (web) and 11 (pc), bobby on 2, carol on 3; group "g" (alice,
    /// bobby) and group "h" (carol only). Returns (gid g, gid h).
    fn setup() -> (Harness, u64, u64) {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.login_on(11, "alice", "pc");
        h.user(2, "bobby");
        h.user(3, "carol");
        let g =
            h.b.seed_group(GroupSeed {
                desc: "d".into(),
                ..test_group("alice", &["bobby"])
            })
            .unwrap();
        let hg =
            h.b.seed_group(GroupSeed {
                name: "h".into(),
                public: true,
                ..test_group("carol", &[])
            })
            .unwrap();
        (h, g, hg)
    }

    /// The pair (37|39, 10x) to alice's other session only; returns the 10x event.
    fn own_pair(o: &Outcome, legacy: i64, multi: i64) -> Value {
        assert_eq!(o.code(), Some(0), "{o:?}");
        let ev = events(o);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0].0, vec![11]);
        assert_eq!(ev[0].1["event_type"], json!(legacy));
        assert_eq!(ev[1].0, vec![11]);
        assert_eq!(ev[1].1["event_type"], json!(multi));
        ev[1].1.clone()
    }

    #[test]
    fn empty_no_disturb_has_all_fields() {
        let (mut h, _, _) = setup();
        let o = h.req(1, "no_disturb", json!({"version": 0}));
        assert_eq!(
            resp(&o)["no_disturb"],
            json!({"global": 0, "users": [], "groups": []})
        );
    }

    #[test]
    fn single_no_disturb_round_trip() {
        let (mut h, _, _) = setup();
        h.req(2, "update_user_inf", json!({"nickname": "Bob"}));
        let o = h.req(
            1,
            "add_msg_no_disturb_single",
            json!({"target_name": "bobby", "version": 0}),
        );
        let e = own_pair(&o, 37, 102);
        assert_eq!(e["extra"], json!(31));
        assert_eq!(
            e["to_usernames"],
            json!([{"username": "bobby", "appkey": APP, "nickname": "Bob"}])
        );
        let l = h.req(1, "no_disturb", json!({"version": 0}));
        assert_eq!(
            resp(&l)["no_disturb"]["users"],
            json!([{"username": "bobby", "appkey": APP, "nickname": "Bob"}])
        );
        let o = h.req(
            1,
            "delete_msg_no_disturb_single",
            json!({"target_name": "bobby", "appkey": APP}),
        );
        assert_eq!(own_pair(&o, 37, 102)["extra"], json!(32));
        let l = h.req(1, "no_disturb", json!({}));
        assert_eq!(resp(&l)["no_disturb"]["users"], json!([]));
    }

    #[rstest]
    #[case::already("add_msg_no_disturb_single", json!({"target_name": "carol"}), 881101)]
    #[case::not_in("delete_msg_no_disturb_single", json!({"target_name": "bobby"}), 881102)]
    #[case::unknown("add_msg_no_disturb_single", json!({"target_name": "nobody"}), 880203)]
    #[case::missing("add_msg_no_disturb_single", json!({}), 880001)]
    #[case::group_missing("add_msg_no_disturb_group", json!({"gid": 999_999}), 881103)]
    #[case::group_bad_gid("add_msg_no_disturb_group", json!({"gid": "abc"}), 881103)]
    #[case::group_no_gid("add_msg_no_disturb_group", json!({}), 880001)]
    #[case::group_not_member("add_msg_no_disturb_group", json!({"gid": "H"}), 881104)]
    #[case::group_already("add_msg_no_disturb_group", json!({"gid": "G"}), 881105)]
    #[case::group_not_in("delete_msg_no_disturb_group", json!({"gid": "G"}), 881106)]
    #[case::global_already("add_msg_no_disturb_global", json!({}), 881107)]
    #[case::global_not("delete_msg_no_disturb_global", json!({}), 881108)]
    #[case::version_type("no_disturb", json!({"version": {}}), 880004)]
    fn no_disturb_failures(#[case] event: &str, #[case] mut req: Value, #[case] code: i64) {
        let (mut h, g, hg) = setup();
        // Set the state the "already" cases need; the "not" cases use a fresh user.
        let conn = if event.starts_with("delete") { 2 } else { 1 };
        for (ev, body) in [
            ("add_msg_no_disturb_single", json!({"target_name": "carol"})),
            ("add_msg_no_disturb_group", json!({"gid": g})),
            ("add_msg_no_disturb_global", json!({})),
        ] {
            assert_eq!(h.req(1, ev, body).code(), Some(0));
        }
        if req["gid"] == json!("G") {
            req["gid"] = json!(g.to_string());
        }
        if req["gid"] == json!("H") {
            req["gid"] = json!(hg);
        }
        let o = h.req(conn, event, req);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
    }

    #[test]
    fn group_no_disturb_round_trip_with_to_groups() {
        let (mut h, g, _) = setup();
        // gid as a string, as apps often pass it.
        let o = h.req(
            1,
            "add_msg_no_disturb_group",
            json!({"gid": g.to_string(), "version": 0}),
        );
        let e = own_pair(&o, 37, 102);
        assert_eq!(e["extra"], json!(33));
        assert_eq!(e["to_groups"], json!([{"gid": g, "name": "g"}]));
        let l = h.req(1, "no_disturb", json!({"version": 0}));
        let groups = &resp(&l)["no_disturb"]["groups"];
        assert_eq!(groups.as_array().unwrap().len(), 1);
        for k in [
            "gid", "name", "desc", "appkey", "ctime", "mtime", "avatar", "flag",
        ] {
            assert!(groups[0].get(k).is_some(), "group brief lacks {k}");
        }
        assert!(h
            .b
            .social
            .get(&UserKey::new(APP, "alice"))
            .is_some_and(|s| s.nodisturb_groups.contains(&g)));
        let o = h.req(1, "delete_msg_no_disturb_group", json!({"gid": g}));
        let e = own_pair(&o, 37, 102);
        assert_eq!(e["extra"], json!(34));
        assert_eq!(e["to_groups"], json!([{"gid": g, "name": "g"}]));
        let l = h.req(1, "no_disturb", json!({}));
        assert_eq!(resp(&l)["no_disturb"]["groups"], json!([]));
    }

    #[test]
    fn global_no_disturb_round_trip() {
        let (mut h, _, _) = setup();
        let o = h.req(1, "add_msg_no_disturb_global", json!({"version": 0}));
        let e = own_pair(&o, 37, 102);
        assert_eq!(e["extra"], json!(35));
        assert!(e.get("to_usernames").is_none());
        let l = h.req(1, "no_disturb", json!({}));
        assert_eq!(resp(&l)["no_disturb"]["global"], json!(1));
        let o = h.req(1, "delete_msg_no_disturb_global", json!({}));
        assert_eq!(own_pair(&o, 37, 102)["extra"], json!(36));
        let l = h.req(1, "no_disturb", json!({}));
        assert_eq!(resp(&l)["no_disturb"]["global"], json!(0));
    }

    #[test]
    fn single_session_user_gets_no_live_event_but_other_devices_sync_it_later() {
        let (mut h, _, _) = setup();
        let o = h.req(2, "add_msg_no_disturb_global", json!({}));
        assert_eq!(o.code(), Some(0));
        assert!(
            o.pushes.is_empty(),
            "the calling session gets only the response"
        );
        h.init(4, APP, SECRET);
        h.req(
            4,
            "login",
            json!({"username": "bobby", "password": md5_hex("pw"), "platform": "ios"}),
        );
        let s = h.req(4, "sync_check", json!({"sync_key": 0, "sync_event_key": 0}));
        let p = s.pushes.iter().find(|p| p.event == "sync_event").unwrap();
        let types: Vec<_> = p.payload["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].clone())
            .collect();
        assert_eq!(types, vec![json!(37), json!(102)]);
    }

    #[test]
    fn shield_round_trip_with_events_39_and_103() {
        let (mut h, g, _) = setup();
        let alice = UserKey::new(APP, "alice");
        let o = h.req(1, "add_msg_shield_group", json!({"gid": g}));
        let e = own_pair(&o, 39, 103);
        assert_eq!(e["extra"], json!(1));
        assert_eq!(e["to_groups"], json!([{"gid": g, "name": "g"}]));
        assert!(h.b.is_group_shielded(&alice, g));
        let l = h.req(1, "list_shield_group", json!({}));
        let r = resp(&l);
        assert_eq!(r["groups"].as_array().unwrap().len(), 1);
        assert_eq!(r["groups"][0]["gid"], json!(g));
        assert_eq!(r["groups"][0]["flag"], json!(1));
        assert_eq!(r["group_list"], r["groups"]);
        let o = h.req(1, "del_msg_shield_group", json!({"gid": g.to_string()}));
        assert_eq!(own_pair(&o, 39, 103)["extra"], json!(2));
        assert!(!h.b.is_group_shielded(&alice, g));
        let l = h.req(1, "list_shield_group", json!({}));
        assert_eq!(resp(&l)["groups"], json!([]));
        assert_eq!(resp(&l)["group_list"], json!([]));
    }

    #[rstest]
    #[case::missing("add_msg_shield_group", Some(999_999), 881201)]
    #[case::no_gid("add_msg_shield_group", None, 880001)]
    #[case::not_member("add_msg_shield_group", Some(0), 881202)]
    #[case::already("add_msg_shield_group", Some(1), 881203)]
    #[case::not_shielded("del_msg_shield_group", Some(1), 881204)]
    fn shield_failures(#[case] event: &str, #[case] which: Option<u64>, #[case] code: i64) {
        let (mut h, g, hg) = setup();
        h.req(2, "add_msg_shield_group", json!({"gid": g}));
        // 0 → a group bobby is not in, 1 → his group; others are literal gids.
        let body = match which {
            None => json!({}),
            Some(0) => json!({"gid": hg}),
            Some(1) => json!({"gid": g}),
            Some(x) => json!({"gid": x}),
        };
        let conn = if event.starts_with("del") { 1 } else { 2 };
        let o = h.req(conn, event, body);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
    }
}
