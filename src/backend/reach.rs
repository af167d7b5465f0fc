//! Cross-app reach: which other apps' users, groups and rooms a user may touch
//! (docs/authorization.md).
//!
//! An app's `cross_app` lists the apps its users may reach (`None`: every app). Every
//! event that names another app — an `appkey`/`target_appkey` field, a list of
//! `{username, appkey}`, a group by `gid`, a room by id — is checked here before its
//! handler runs, and an unreachable target is reported exactly as a target that does
//! not exist, with the code the handler uses for that (so other apps cannot be probed).
//! Listing calls (`room_list`, `public_group_list`) answer an unreachable app with an
//! empty list, as for an unknown app.

use super::{Backend, ConnId};
use crate::protocol::{Code, Event, Failure};
use serde_json::{Map, Value};

/// What an event names that may belong to another app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Users by appkey fields (`appkey`, `target_appkey`, `content.target_appkey`, and
    /// `appkey` inside `member_usernames[]` and `sessions[]`).
    Users(Code),
    /// A group by `gid`: reachable when its app is, or when the caller is a member.
    Group(Code),
    /// A room by `id`: reachable when its app is.
    Room(Code),
}

/// The cross-app check each event gets; `None`: the event names no other app's object
/// (own data, own sessions), or its handler checks membership or the group's app itself.
pub fn reach_of(e: Event) -> Option<Reach> {
    use Event as E;
    Some(match e {
        E::GetAcrossUserInfo => Reach::Users(Code::NoSuchUser),
        E::SAcrossSingleText
        | E::TransMsgSingle
        | E::ReceiptReport
        | E::UnreadSingleCount
        | E::AddMsgNoDisturbSingle
        | E::DeleteMsgNoDisturbSingle => Reach::Users(Code::TargetUserNotExist),
        E::AddFriend | E::DelFriend | E::UpdateFriendMemo => Reach::Users(Code::FriendUserNotExist),
        E::AddBlackList | E::DelBlackList => Reach::Users(Code::BlacklistUnknownUser),
        E::GetGroupInfo | E::GetGroupMembers | E::ApplyJoinGroup => {
            Reach::Group(Code::GroupIdInvalid)
        }
        E::RoomInfo | E::JoinRoom | E::SendRoomMsg => Reach::Room(Code::RoomNotExist),
        _ => return None,
    })
}

/// Every string appkey a request names for its targets.
fn named_appkeys(p: &Map<String, Value>) -> Vec<&str> {
    fn take<'a>(out: &mut Vec<&'a str>, m: &'a Map<String, Value>, k: &str) {
        if let Some(Value::String(s)) = m.get(k) {
            out.push(s.as_str());
        }
    }
    let mut out = Vec::new();
    take(&mut out, p, "appkey");
    take(&mut out, p, "target_appkey");
    if let Some(Value::Object(c)) = p.get("content") {
        take(&mut out, c, "target_appkey");
    }
    for list in ["member_usernames", "sessions"] {
        if let Some(Value::Array(items)) = p.get(list) {
            for item in items {
                if let Value::Object(m) = item {
                    take(&mut out, m, "appkey");
                }
            }
        }
    }
    out
}

/// A numeric id field (number or numeric string).
fn id_field(p: &Map<String, Value>, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| match p.get(*k)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

impl Backend {
    /// The cross-app check of one request (module doc). Runs after the session checks.
    pub(super) fn check_reach(
        &self,
        conn: ConnId,
        e: Event,
        p: &Map<String, Value>,
    ) -> Result<(), Failure> {
        let (Some(rule), Some(me)) = (reach_of(e), self.conn_user(conn)) else {
            return Ok(());
        };
        let mine = me.appkey.as_str();
        let far = |app: &str| {
            Failure::new(
                rule_code(rule),
                format!("app {app} is not reachable from {mine} (cross_app)"),
            )
        };
        match rule {
            Reach::Users(_) => {
                for app in named_appkeys(p) {
                    if !app.is_empty() && !self.cross_app_allowed(mine, app) {
                        return Err(far(app));
                    }
                }
            }
            Reach::Group(_) => {
                let g = id_field(p, &["gid"]).and_then(|gid| self.groups.get(&gid));
                if let Some(g) = g {
                    if !g.members.contains_key(me) && !self.cross_app_allowed(mine, &g.appkey) {
                        return Err(far(&g.appkey));
                    }
                }
            }
            Reach::Room(_) => {
                let content = match p.get("content") {
                    Some(Value::Object(c)) => id_field(c, &["target_id"]),
                    _ => None,
                };
                let id = id_field(p, &["id", "target_gid"]).or(content);
                if let Some(r) = id.and_then(|id| self.rooms.get(&id)) {
                    if !self.cross_app_allowed(mine, &r.appkey) {
                        return Err(far(&r.appkey));
                    }
                }
            }
        }
        Ok(())
    }
}

fn rule_code(r: Reach) -> Code {
    match r {
        Reach::Users(c) | Reach::Group(c) | Reach::Room(c) => c,
    }
}
