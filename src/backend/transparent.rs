//! Transparent messages (protocol.md 4.2, 7.8; guide "Transparent Transmission ..."):
//! `trans_msg_single`, `trans_msg_group`, `trans_msg_platform` → `trans_msg_rec` pushes.
//!
//! They are live only: never stored, never synced, never logged as events. The push never
//! carries a `rid` (the 2.6.0 SDK would match it against its pending requests).

use super::model::UserKey;
use super::{Backend, ConnId, Outcome};
use crate::protocol::PushEvent;
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Value};

/// Longest `cmd`, in UTF-8 bytes (881604 beyond it).
pub const MAX_CMD_BYTES: usize = 4096;

/// The platforms `trans_msg_platform` accepts.
const TRANS_PLATFORMS: &[&str] = &["all", "android", "ios", "pc"];

/// The `cmd` argument: a non-empty string of at most [`MAX_CMD_BYTES`].
fn cmd_arg<'a>(a: Args<'a>) -> Result<&'a str, Failure> {
    let cmd = a.str("cmd")?;
    if cmd.len() > MAX_CMD_BYTES {
        return Err(Failure::new(
            Code::TransTooLong,
            format!("cmd is {} bytes; the limit is {MAX_CMD_BYTES}", cmd.len()),
        ));
    }
    Ok(cmd)
}

impl Backend {
    /// Live sessions of `user` other than `skip`.
    fn live_except(&self, user: &UserKey, skip: ConnId) -> Vec<ConnId> {
        self.conns_of(user)
            .iter()
            .copied()
            .filter(|c| *c != skip)
            .collect()
    }

    pub(super) fn trans_msg_single(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        // The SDK sends `target_username`; `target_name` (the other calls' spelling) is
        // accepted too.
        let name_key = if a.get("target_username").is_some() {
            "target_username"
        } else {
            "target_name"
        };
        let target =
            Self::named_user(&me, a, name_key, "target_appkey").map_err(|f| match f.code {
                Code::Missing => Failure::new(Code::Missing, "target_username is required"),
                _ => f,
            })?;
        let cmd = cmd_arg(a)?;
        if !self.users.contains_key(&target) || !self.cross_app_allowed(&me.appkey, &target.appkey)
        {
            return Err(Failure::new(
                Code::TargetUserNotExist,
                format!(
                    "user {} does not exist in {}",
                    target.username, target.appkey
                ),
            ));
        }
        if self.is_blacklisted(&target, &me) {
            return Err(Failure::new(
                Code::Blacklisted,
                format!("{} has blacklisted you", target.username),
            ));
        }
        let to = self.live_except(&target, conn);
        if to.is_empty() {
            return Err(Failure::new(
                Code::TransTargetOffline,
                format!("{} has no live session", target.username),
            ));
        }
        let mut out = Outcome::ok_empty();
        out.push(
            to,
            PushEvent::TransMsgRec,
            json!({
                "type": 3,
                "from_appkey": me.appkey,
                "from_username": me.username,
                "cmd": cmd,
            }),
        );
        Ok(out)
    }

    pub(super) fn trans_msg_group(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let gid = Self::gid_arg(a, Code::TargetGroupNotExist)?;
        let cmd = cmd_arg(a)?;
        let group = self.target_group(gid)?;
        if !group.members.contains_key(&me) {
            return Err(Failure::new(
                Code::NotInGroup,
                format!("you are not a member of group {gid}"),
            ));
        }
        let mut to = Vec::new();
        for m in group.members.keys() {
            if *m == me || self.is_group_shielded(m, gid) {
                continue;
            }
            to.extend(self.live_except(m, conn));
        }
        let mut out = Outcome::ok_empty();
        out.push(
            to,
            PushEvent::TransMsgRec,
            json!({
                "type": 4,
                "gid": gid,
                "from_appkey": me.appkey,
                "from_username": me.username,
                "cmd": cmd,
            }),
        );
        Ok(out)
    }

    pub(super) fn trans_msg_platform(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let platform = a.str("platform")?.to_ascii_lowercase();
        if !TRANS_PLATFORMS.contains(&platform.as_str()) {
            return Err(Failure::new(
                Code::InvalidValue,
                format!("platform must be one of all, android, ios, pc; not {platform}"),
            ));
        }
        let cmd = cmd_arg(a)?;
        let to: Vec<ConnId> = self
            .live_except(&me, conn)
            .into_iter()
            .filter(|c| {
                platform == "all"
                    || self
                        .conns
                        .get(c)
                        .and_then(|c| c.login.as_ref())
                        .is_some_and(|l| l.platform.eq_ignore_ascii_case(&platform))
            })
            .collect();
        if to.is_empty() {
            return Err(Failure::new(
                Code::TransTargetOffline,
                format!("no other session on platform {platform}"),
            ));
        }
        let mut out = Outcome::ok_empty();
        let payload: Value = json!({"type": 5, "platform": platform, "cmd": cmd});
        out.push(to, PushEvent::TransMsgRec, payload);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use rstest::rstest;

    fn login_on(h: &mut Harness, conn: u64, name: &str, platform: &str) {
        h.login_on(conn, name, platform);
    }

    /// alice: 1 (web), 11 (pc), 12 (Android); bobby: 2 (web), 21 (ios); carol: 3;
    /// dave registered but offline. Group g = alice, bobby, carol, dave.
    fn setup() -> (Harness, u64) {
        let mut h = Harness::new();
        h.user(1, "alice");
        login_on(&mut h, 11, "alice", "pc");
        login_on(&mut h, 12, "alice", "Android");
        h.user(2, "bobby");
        login_on(&mut h, 21, "bobby", "ios");
        h.user(3, "carol");
        h.user(4, "david");
        h.b.disconnect(4);
        let g =
            h.b.seed_group(test_group("alice", &["bobby", "carol", "david"]))
                .unwrap();
        (h, g)
    }

    fn sorted(mut v: Vec<u64>) -> Vec<u64> {
        v.sort();
        v
    }

    #[test]
    fn single_goes_to_every_session_of_the_target() {
        let (mut h, _) = setup();
        let o = h.req(
            1,
            "trans_msg_single",
            json!({"target_username": "bobby", "cmd": "{\"typing\":true}"}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(o.pushes.len(), 1);
        let p = &o.pushes[0];
        assert_eq!(p.event, "trans_msg_rec");
        assert_eq!(sorted(p.to.clone()), vec![2, 21]);
        assert_eq!(
            p.payload,
            json!({"type": 3, "from_appkey": APP, "from_username": "alice", "cmd": "{\"typing\":true}"})
        );
        assert!(p.payload.get("rid").is_none());
        // Nothing is stored.
        assert_eq!(h.b.message_count(), 0);
    }

    #[rstest]
    #[case::offline(json!({"target_username": "david", "cmd": "x"}), 881602)]
    #[case::too_long(json!({"target_username": "bobby", "cmd": "x".repeat(MAX_CMD_BYTES + 1)}), 881604)]
    #[case::unknown(json!({"target_username": "nobody", "cmd": "x"}), 880203)]
    #[case::no_target(json!({"cmd": "x"}), 880001)]
    #[case::no_cmd(json!({"target_username": "bobby"}), 880001)]
    #[case::cmd_not_string(json!({"target_username": "bobby", "cmd": {"a": 1}}), 880004)]
    #[case::other_app(json!({"target_username": "bobby", "target_appkey": APP2, "cmd": "x"}), 880203)]
    #[case::blacklisted(json!({"target_username": "carol", "cmd": "x"}), 880207)]
    fn single_failures(#[case] req: Value, #[case] code: i64) {
        let (mut h, _) = setup();
        h.req(
            3,
            "add_black_list",
            json!({"member_usernames": [{"username": "alice"}]}),
        );
        let o = h.req(1, "trans_msg_single", req);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
    }

    #[test]
    fn single_accepts_target_name_and_the_limit_is_inclusive() {
        let (mut h, _) = setup();
        let o = h.req(
            1,
            "trans_msg_single",
            json!({"target_name": "carol", "target_appkey": APP, "cmd": "x".repeat(MAX_CMD_BYTES)}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(o.pushes[0].to, vec![3]);
    }

    #[test]
    fn group_goes_to_other_members_live_sessions_except_shielders() {
        let (mut h, g) = setup();
        let o = h.req(
            1,
            "trans_msg_group",
            json!({"gid": g.to_string(), "cmd": "c"}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = &o.pushes[0];
        assert_eq!(p.event, "trans_msg_rec");
        assert_eq!(sorted(p.to.clone()), vec![2, 3, 21]);
        assert_eq!(
            p.payload,
            json!({"type": 4, "gid": g, "from_appkey": APP, "from_username": "alice", "cmd": "c"})
        );
        // carol shields the group: she no longer gets it.
        assert_eq!(
            h.req(3, "add_msg_shield_group", json!({"gid": g})).code(),
            Some(0)
        );
        let o = h.req(1, "trans_msg_group", json!({"gid": g, "cmd": "c"}));
        assert_eq!(sorted(o.pushes[0].to.clone()), vec![2, 21]);
    }

    #[rstest]
    #[case::unknown_group(json!({"gid": 999_999, "cmd": "x"}), 880204)]
    #[case::bad_gid(json!({"gid": "zz", "cmd": "x"}), 880204)]
    #[case::no_gid(json!({"cmd": "x"}), 880001)]
    #[case::too_long(json!({"gid": "G", "cmd": "é".repeat(MAX_CMD_BYTES / 2 + 1)}), 881604)]
    fn group_failures(#[case] mut req: Value, #[case] code: i64) {
        let (mut h, g) = setup();
        if req["gid"] == json!("G") {
            req["gid"] = json!(g);
        }
        let o = h.req(1, "trans_msg_group", req);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
    }

    #[test]
    fn group_sender_must_be_a_member() {
        let (mut h, g) = setup();
        h.user(5, "erin");
        let o = h.req(5, "trans_msg_group", json!({"gid": g, "cmd": "x"}));
        assert_eq!(o.code(), Some(880205));
    }

    #[rstest]
    #[case::all("all", vec![11, 12])]
    #[case::pc("pc", vec![11])]
    #[case::android("android", vec![12])]
    #[case::android_caps("Android", vec![12])]
    fn platform_goes_to_own_matching_sessions(#[case] platform: &str, #[case] to: Vec<u64>) {
        let (mut h, _) = setup();
        let o = h.req(
            1,
            "trans_msg_platform",
            json!({"platform": platform, "cmd": "sync"}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(o.pushes.len(), 1);
        assert_eq!(sorted(o.pushes[0].to.clone()), to);
        assert_eq!(
            o.pushes[0].payload,
            json!({"type": 5, "platform": platform.to_ascii_lowercase(), "cmd": "sync"})
        );
    }

    #[rstest]
    #[case::no_ios_session(1, json!({"platform": "ios", "cmd": "x"}), 881602)]
    #[case::alone(3, json!({"platform": "all", "cmd": "x"}), 881602)]
    #[case::bad_platform(1, json!({"platform": "web", "cmd": "x"}), 880003)]
    #[case::no_platform(1, json!({"cmd": "x"}), 880001)]
    #[case::too_long(1, json!({"platform": "all", "cmd": "x".repeat(MAX_CMD_BYTES + 1)}), 881604)]
    fn platform_failures(#[case] conn: u64, #[case] req: Value, #[case] code: i64) {
        let (mut h, _) = setup();
        let o = h.req(conn, "trans_msg_platform", req);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
    }
}
