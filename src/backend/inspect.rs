//! Read-only views of the state, for the admin API and scenario expectations.

use super::Backend;
use serde_json::{json, Value};

impl Backend {
    /// The usernames of one app, sorted (hints in admin errors).
    pub fn usernames(&self, appkey: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .users
            .keys()
            .filter(|k| k.appkey == appkey)
            .map(|k| k.username.clone())
            .collect();
        names.sort();
        names
    }

    /// Users, groups, rooms, sessions and message counts as JSON.
    pub fn snapshot(&self) -> Value {
        let mut users: Vec<&super::model::User> = self.users.values().collect();
        users.sort_by_key(|u| u.uid);
        let sessions: Vec<Value> = self
            .conns
            .iter()
            .map(|(id, c)| {
                json!({
                    "conn": id,
                    "appkey": c.appkey,
                    "user": c.login.as_ref().map(|l| &l.user.username),
                    "platform": c.login.as_ref().map(|l| &l.platform),
                    "version": c.login.as_ref().map(|l| &l.version),
                })
            })
            .collect();
        json!({
            "now_ms": self.now_ms(),
            "apps": self.apps.values().map(|a| json!({"appkey": a.appkey, "name": a.name})).collect::<Vec<_>>(),
            "users": users.iter().map(|u| {
                let mut v = u.info();
                v["online"] = json!(self.conns_of(&u.key).len());
                v
            }).collect::<Vec<_>>(),
            "groups": self.groups.values().map(|g| {
                let mut v = g.brief();
                v["members"] = json!(g.members.iter().map(|(k, m)| json!({"username": k.username, "appkey": k.appkey, "flag": m.role.flag(), "keep_silence": m.silenced})).collect::<Vec<_>>());
                v
            }).collect::<Vec<_>>(),
            "rooms": self.rooms.values().map(|r| r.info()).collect::<Vec<_>>(),
            "sessions": sessions,
            "friends": self.friend_pairs(),
            "messages": self.messages.len(),
        })
    }

    /// Friendships once each: `{"appkey", "users": [a, b]}`, sorted.
    fn friend_pairs(&self) -> Vec<Value> {
        let mut pairs: Vec<(&str, &str, &str)> = Vec::new();
        for (me, s) in &self.social {
            for f in s.friends.keys() {
                if (&me.appkey, &me.username) < (&f.appkey, &f.username) {
                    pairs.push((&me.appkey, &me.username, &f.username));
                }
            }
        }
        pairs.sort();
        pairs
            .into_iter()
            .map(|(a, x, y)| json!({"appkey": a, "users": [x, y]}))
            .collect()
    }

    /// Every stored message object (as pushed), oldest first.
    pub fn messages(&self) -> Vec<Value> {
        self.messages.values().map(|m| m.wire_value()).collect()
    }
}
