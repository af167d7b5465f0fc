//! `get_across_user_info`, `update_user_inf`, `update_user_pwd` (protocol.md 4.1).

use super::session::{password_field, ProfilePatch};
use super::{Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map};

impl Backend {
    pub(super) fn get_user_info(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let key = self.user_arg(&me, a, Code::NoSuchUser)?;
        let user = self.users.get(&key).ok_or(Code::NoSuchUser)?;
        let mut f = Map::new();
        f.insert("user_info".into(), user.info());
        // The guide reads `data.extras`; keep it at the top level too (protocol.md 4.1).
        f.insert("extras".into(), json!(user.extras));
        Ok(Outcome::ok(f))
    }

    pub(super) fn update_user_info(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let patch = ProfilePatch::parse(a, "avatar")?;
        let now_s = self.now_ms() / 1000;
        let user = self
            .users
            .get_mut(&me)
            .ok_or_else(|| Failure::from(Code::UserNotExist))?;
        patch.apply(user);
        // Keep mtime strictly increasing so `sui_mtime` comparisons see every change.
        user.mtime_s = now_s.max(user.mtime_s + 1);
        let mtime = user.mtime_s;
        // Event 40 to the user's other sessions (and their event log for later devices).
        let mut out = Outcome::ok_empty();
        let ev = self.new_event(
            40,
            json!({"from_username": me.username, "from_appkey": me.appkey, "mtime": mtime}),
        );
        self.notify(&mut out, std::slice::from_ref(&me), ev, Some(conn));
        Ok(out)
    }

    pub(super) fn update_user_pwd(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let old = password_field(a, "old_pwd")?;
        let new = password_field(a, "new_pwd")?;
        let user = self
            .users
            .get_mut(&me)
            .ok_or_else(|| Failure::from(Code::UserNotExist))?;
        if user.password_md5 != old {
            return Err(Failure::new(Code::InvalidPassword, "old password is wrong"));
        }
        user.password_md5 = new;
        let others: Vec<ConnId> = self
            .conns_of(&me)
            .iter()
            .copied()
            .filter(|c| *c != conn)
            .collect();
        let mut out = Outcome::ok_empty();
        if !others.is_empty() {
            let ev = self.new_event(
                2,
                json!({"from_username": me.username, "from_appkey": me.appkey}),
            );
            out.push(others.clone(), PushEvent::EventNotification, ev);
            // The SDK logs out on event 2; the server ends those logins too.
            for c in others {
                self.set_login(c, None);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::md5_hex;
    use super::super::test_support::*;
    use serde_json::json;

    #[test]
    fn user_info_round_trip_and_errors() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let upd = h.req(
            1,
            "update_user_inf",
            json!({"nickname": "Al", "extras": {"x": 1}, "avatar": "media-1"}),
        );
        assert_eq!(upd.code(), Some(0));
        let o = h.req(2, "get_across_user_info", json!({"username": "alice"}));
        let info = &resp(&o)["user_info"];
        assert_eq!(info["nickname"], json!("Al"));
        assert_eq!(info["avatar"], json!("media-1"));
        assert_eq!(info["appkey"], json!(APP));
        assert!(info["uid"].as_u64().is_some());
        assert_eq!(resp(&o)["extras"], json!({"x": 1}));
        assert_eq!(
            h.req(2, "get_across_user_info", json!({"username": "nobody"}))
                .code(),
            Some(898002)
        );
        assert_eq!(
            h.req(2, "get_across_user_info", json!({})).code(),
            Some(880001)
        );
        assert_eq!(
            h.req(1, "update_user_inf", json!({"gender": "x"})).code(),
            Some(880004)
        );
    }

    #[test]
    fn password_change_notifies_other_sessions_with_event_2() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.login_on(2, "alice", "pc");
        let bad = h.req(
            1,
            "update_user_pwd",
            json!({"old_pwd": md5_hex("nope"), "new_pwd": md5_hex("new")}),
        );
        assert_eq!(bad.code(), Some(880104));
        let o = h.req(
            1,
            "update_user_pwd",
            json!({"old_pwd": md5_hex("pw"), "new_pwd": md5_hex("new")}),
        );
        assert_eq!(o.code(), Some(0));
        assert_eq!(o.pushes.len(), 1);
        assert_eq!(o.pushes[0].to, vec![2]);
        assert_eq!(o.pushes[0].payload["event_type"], json!(2));
        assert!(h.b.conn_user(2).is_none());
        h.init(3, APP, SECRET);
        assert_eq!(
            h.req(
                3,
                "login",
                json!({"username": "alice", "password": md5_hex("pw")})
            )
            .code(),
            Some(880104)
        );
        assert_eq!(
            h.req(
                3,
                "login",
                json!({"username": "alice", "password": md5_hex("new")})
            )
            .code(),
            Some(0)
        );
    }

    #[test]
    fn profile_update_sends_event_40_to_own_other_sessions_only() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(3, "carol");
        h.login_on(2, "alice", "pc");
        h.clock.advance_ms(5_000);
        let o = h.req(1, "update_user_inf", json!({"nickname": "Al"}));
        assert_eq!(o.code(), Some(0));
        assert_eq!(o.pushes.len(), 1);
        let p = &o.pushes[0];
        assert_eq!(p.event, "event_notification");
        assert_eq!(p.to, vec![2], "not the changing session, not carol");
        assert_eq!(p.payload["event_type"], json!(40));
        assert_eq!(p.payload["from_username"], json!("alice"));
        assert_eq!(p.payload["from_appkey"], json!(APP));
        assert_eq!(p.payload["ctime_ms"], json!(T0 + 5_000));
        assert!(p.payload["event_id"].as_u64().is_some());
        let mtime =
            h.b.user(&crate::backend::UserKey::new(APP, "alice"))
                .map(|u| u.mtime_s)
                .expect("alice");
        assert_eq!(p.payload["mtime"], json!(mtime));
        // A single session gets no live event.
        h.b.disconnect(2);
        let o = h.req(1, "update_user_inf", json!({"signature": "s"}));
        assert!(o.pushes.is_empty());
    }
}
