//! `msg_retract` and event 55 (protocol.md 4.2, 7.3).
//!
//! Only the sender may retract, within [`RETRACT_LIMIT_MS`] of sending (backend clock).
//! A retracted message leaves the message store, so `sync_conversation` and roaming never
//! replay it; it is kept aside to answer 881404 on a second attempt.

use super::model::{Target, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::{Args, Code, Failure};
use serde_json::json;

/// How long after sending a message may be retracted.
pub const RETRACT_LIMIT_MS: i64 = 3 * 60 * 1000;

impl Backend {
    pub(super) fn msg_retract(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let raw = a
            .opt_i64("msg_id")?
            .ok_or_else(|| Failure::new(Code::Missing, "msg_id is required"))?;
        let not_exist = || {
            Failure::new(
                Code::RetractNotExist,
                format!("message {raw} does not exist"),
            )
        };
        let msg_id = u64::try_from(raw).map_err(|_| not_exist())?;
        if self.retracted.contains_key(&msg_id) {
            return Err(Failure::new(
                Code::RetractAlready,
                format!("message {msg_id} is already retracted"),
            ));
        }
        let msg = self.messages.get(&msg_id).ok_or_else(not_exist)?;
        if *msg.from != me {
            return Err(Failure::new(
                Code::RetractNotSender,
                "only the sender may retract a message",
            ));
        }
        let now = self.now_ms();
        if now - msg.ctime_ms > RETRACT_LIMIT_MS {
            return Err(Failure::new(
                Code::RetractTimeLimit,
                format!(
                    "message {msg_id} is older than {} s",
                    RETRACT_LIMIT_MS / 1000
                ),
            ));
        }
        let target = msg.target.clone();
        let (mut users, extra) = match &target {
            Target::User(peer) => {
                let nickname = self
                    .users
                    .get(peer)
                    .map(|u| u.nickname.clone())
                    .unwrap_or_default();
                (
                    vec![(**peer).clone()],
                    json!({
                        "from_gid": 0,
                        "to_usernames": [{"username": peer.username, "appkey": peer.appkey, "nickname": nickname}],
                    }),
                )
            }
            Target::Group(gid) => (
                self.groups
                    .get(gid)
                    .map(|g| g.members.keys().cloned().collect::<Vec<UserKey>>())
                    .unwrap_or_default(),
                json!({"from_gid": gid}),
            ),
        };
        users.retain(|u| *u != me);
        if self.has_other_sessions(&me, conn) {
            users.push(me.clone());
        }
        if let Some(m) = self.messages.remove(&msg_id) {
            self.retracted.insert(msg_id, m);
        }
        let mut fields = json!({
            "from_username": me.username,
            "from_appkey": me.appkey,
            "msgid_list": [msg_id],
        });
        if let (Some(f), Some(e)) = (fields.as_object_mut(), extra.as_object()) {
            f.extend(e.clone());
        }
        let ev = self.new_event(55, fields);
        let mut out = Outcome::ok_empty();
        self.notify(&mut out, &users, ev, Some(conn));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::receipts::tests::group_msg;
    use super::super::test_support::*;
    use super::*;
    use rstest::rstest;
    use serde_json::Value;

    fn text(h: &mut Harness, conn: u64, to: &str) -> u64 {
        let o = h.req(
            conn,
            "s_across_single_text",
            json!({"target_id": to, "content": {"msg_type": "text", "msg_body": {"text": "oops"}}}),
        );
        resp(&o)["msg_id"].as_u64().expect("msg_id")
    }

    #[test]
    fn single_retract_notifies_the_other_party_and_own_devices() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.login_on(3, "alice", "pc");
        let m = text(&mut h, 1, "bobby");
        h.clock.advance_ms(RETRACT_LIMIT_MS);
        let o = h.req(1, "msg_retract", json!({"msg_id": m}));
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(o.pushes.len(), 1);
        let mut to = o.pushes[0].to.clone();
        to.sort();
        assert_eq!(to, vec![2, 3]);
        let ev = &o.pushes[0].payload;
        assert_eq!(ev["event_type"], json!(55));
        assert_eq!(ev["from_gid"], json!(0));
        assert_eq!(ev["from_username"], json!("alice"));
        assert_eq!(ev["from_appkey"], json!(APP));
        assert_eq!(ev["msgid_list"], json!([m]));
        assert_eq!(
            ev["to_usernames"],
            json!([{"username": "bobby", "appkey": APP, "nickname": ""}])
        );
        assert_eq!(
            h.req(1, "msg_retract", json!({"msg_id": m})).code(),
            Some(881404)
        );
        // Not replayed by roaming.
        assert!(h.b.history(&UserKey::new(APP, "bobby")).is_empty());
    }

    #[test]
    fn group_retract_notifies_every_other_member() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.user(3, "carol");
        let (gid, m) = group_msg(&mut h, "alice", &["bobby", "carol"], "bobby");
        let o = h.req(2, "msg_retract", json!({"msg_id": m.to_string()}));
        assert_eq!(o.code(), Some(0));
        let mut to = o.pushes[0].to.clone();
        to.sort();
        assert_eq!(to, vec![1, 3]);
        assert_eq!(o.pushes[0].payload["from_gid"], json!(gid));
        assert_eq!(o.pushes[0].payload["msgid_list"], json!([m]));
        assert!(o.pushes[0].payload.get("to_usernames").is_none());
    }

    #[rstest]
    #[case::missing(None, 0, 880001)]
    #[case::unknown(Some(json!(12345)), 0, 881403)]
    #[case::not_sender(Some(json!("bobby")), 0, 881402)]
    #[case::too_old(Some(json!("alice")), RETRACT_LIMIT_MS + 1, 881401)]
    fn retract_failures(#[case] which: Option<Value>, #[case] wait: i64, #[case] code: i64) {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let from_alice = text(&mut h, 1, "bobby");
        let from_bobby = text(&mut h, 2, "alice");
        h.clock.advance_ms(wait);
        let req = match which {
            None => json!({}),
            Some(v) if v == json!("alice") => json!({"msg_id": from_alice}),
            Some(v) if v == json!("bobby") => json!({"msg_id": from_bobby}),
            Some(v) => json!({"msg_id": v}),
        };
        assert_eq!(h.req(1, "msg_retract", req).code(), Some(code));
    }
}
