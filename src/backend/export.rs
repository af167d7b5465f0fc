//! The state as a fixtures file (`jmessage-mock export-state`): what a scenario's
//! `include:` can load to start from it. The export is lossy where the fixture format
//! has no words for a thing (docs/state.md lists what is kept); [`Exported::skipped`]
//! counts what was left out.

use super::model::{Group, Message, Role, Target};
use super::seed::{BlacklistSeed, FriendSeed, GroupSeed, MediaSeed, MessageSeed, RoomSeed};
use super::{Backend, Seeds, UserSeed};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A fixtures document (the shape of docs/fixtures.schema.json).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Exported {
    /// The lists, in the file's order (apps, users, groups, rooms, friends, blacklists,
    /// media, messages).
    #[serde(flatten)]
    pub seeds: Seeds,
    /// What the fixture format cannot hold, by kind, with counts (not part of the file).
    #[serde(skip)]
    pub skipped: BTreeMap<&'static str, usize>,
}

impl Exported {
    fn skip(&mut self, what: &'static str) {
        *self.skipped.entry(what).or_default() += 1;
    }
}

impl Backend {
    /// The state as fixtures: apps, users (password as MD5), groups with roles and
    /// silence, rooms, friendships, blacklists, media and text messages, in order.
    /// Every user's `(appkey, username, password MD5)`: what a recording needs to put back
    /// the passwords the journal redacted, without exporting the whole state.
    pub fn password_md5s(&self) -> Vec<(String, String, String)> {
        self.users
            .iter()
            .map(|(k, u)| (k.appkey.clone(), k.username.clone(), u.password_md5.clone()))
            .collect()
    }

    pub fn export_fixtures(&self) -> Exported {
        let mut x = Exported {
            seeds: Seeds {
                apps: self.apps.values().cloned().collect(),
                ..Seeds::default()
            },
            ..Exported::default()
        };
        let mut users: Vec<_> = self.users.values().collect();
        users.sort_by_key(|u| u.uid);
        for u in users {
            x.seeds.users.push(UserSeed {
                appkey: u.key.appkey.clone(),
                username: u.key.username.clone(),
                password: String::new(),
                password_md5: Some(u.password_md5.clone()),
                nickname: u.nickname.clone(),
                signature: u.signature.clone(),
                gender: u.gender,
                region: u.region.clone(),
                address: u.address.clone(),
                birthday: u.birthday.clone(),
                extras: u.extras.clone(),
            });
        }
        for g in self.groups.values() {
            match group_seed(g) {
                Some(s) => x.seeds.groups.push(s),
                None => x.skip("groups without an owner"),
            }
        }
        x.seeds.rooms = self
            .rooms
            .values()
            .map(|r| RoomSeed {
                appkey: r.appkey.clone(),
                id: Some(r.id),
                name: r.name.clone(),
                description: r.description.clone(),
                max_member_count: r.max_member_count,
            })
            .collect();
        self.export_social(&mut x);
        self.export_media(&mut x);
        self.export_messages(&mut x);
        x
    }

    fn export_social(&self, x: &mut Exported) {
        let mut owners: Vec<_> = self.social.iter().collect();
        owners.sort_by(|a, b| a.0.cmp(b.0));
        for (me, s) in owners {
            for f in s.friends.keys() {
                if f.appkey != me.appkey {
                    x.skip("cross-app friendships");
                } else if me.username < f.username {
                    x.seeds.friends.push(FriendSeed {
                        appkey: me.appkey.clone(),
                        users: [me.username.clone(), f.username.clone()],
                    });
                }
            }
            let blocks: Vec<String> = s
                .blacklist
                .iter()
                .filter(|b| b.appkey == me.appkey)
                .map(|b| b.username.clone())
                .collect();
            if blocks.len() < s.blacklist.len() {
                x.skip("cross-app blacklist entries");
            }
            if !blocks.is_empty() {
                x.seeds.blacklists.push(BlacklistSeed {
                    appkey: me.appkey.clone(),
                    user: me.username.clone(),
                    blocks,
                });
            }
            let settings = s.nodisturb_users.len()
                + s.nodisturb_groups.len()
                + s.shield_groups.len()
                + usize::from(s.nodisturb_global);
            if settings > 0 {
                x.skip("no-disturb and shield settings");
            }
        }
    }

    fn export_media(&self, x: &mut Exported) {
        use base64::Engine as _;
        for m in self.saved_media() {
            let image = m.content_type.starts_with("image/");
            x.seeds.media.push(MediaSeed {
                appkey: m.owner.appkey.clone(),
                owner: m.owner.username.clone(),
                kind: if image { "image" } else { "file" }.into(),
                id: Some(m.media_id.clone()),
                name: Some(m.name.clone()),
                text: None,
                base64: Some(base64::engine::general_purpose::STANDARD.encode(&m.bytes)),
                file: None,
            });
        }
    }

    fn export_messages(&self, x: &mut Exported) {
        let mut all: Vec<&Message> = self.messages.values().collect();
        all.sort_by_key(|m| m.msg_id);
        for m in all {
            match self.message_seed(m) {
                Ok(s) => x.seeds.messages.push(s),
                Err(why) => x.skip(why),
            }
        }
        if !self.retracted.is_empty() {
            x.skipped.insert("retracted messages", self.retracted.len());
        }
    }

    /// A text message as a seed that would replay it, or why it cannot be.
    fn message_seed(&self, m: &Message) -> Result<MessageSeed, &'static str> {
        let wire = m.wire_value();
        let content = &wire["content"];
        if content["msg_type"] != "text" {
            return Err("messages other than text");
        }
        let text = content["msg_body"]["text"]
            .as_str()
            .ok_or("messages other than text")?;
        let (to, group) = match &m.target {
            Target::User(u) if u.appkey != m.from.appkey => return Err("cross-app messages"),
            Target::User(u) => {
                let blocked = self
                    .social
                    .get(u)
                    .is_some_and(|s| s.blacklist.contains(&m.from));
                if blocked {
                    return Err("messages to a user who now blocks the sender");
                }
                (Some(u.username.clone()), None)
            }
            Target::Group(gid) => {
                let member = self
                    .groups
                    .get(gid)
                    .is_some_and(|g| g.members.contains_key(&m.from) && g.owner().is_some());
                if !member {
                    return Err("group messages whose sender left the group");
                }
                (None, Some(*gid))
            }
        };
        Ok(MessageSeed {
            appkey: m.from.appkey.clone(),
            from: m.from.username.clone(),
            to,
            group,
            text: text.to_owned(),
        })
    }
}

fn group_seed(g: &Group) -> Option<GroupSeed> {
    let owner = g.owner()?;
    let named = |role: Role| -> Vec<String> {
        g.members
            .iter()
            .filter(|(_, m)| m.role == role)
            .map(|(k, _)| k.username.clone())
            .collect()
    };
    Some(GroupSeed {
        appkey: g.appkey.clone(),
        gid: Some(g.gid),
        name: g.name.clone(),
        desc: g.desc.clone(),
        owner: owner.username.clone(),
        admins: named(Role::Admin),
        members: named(Role::Member),
        silenced: g
            .members
            .iter()
            .filter(|(_, m)| m.silenced)
            .map(|(k, _)| k.username.clone())
            .collect(),
        public: g.is_public(),
        max_members: g.max_members,
    })
}

/// The exported fixtures as JSON text (valid YAML, so `include:` reads it).
pub fn to_json(x: &Exported) -> String {
    let mut v = serde_json::to_value(x).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, v| v.as_array().is_none_or(|a| !a.is_empty()));
    }
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{Backend, ManualClock};
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn exported_users_log_in_with_their_password_and_bad_hashes_are_refused() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h.req(
            1,
            "s_across_single_text",
            json!({"target_id": "bobby", "content": {"msg_type": "text", "msg_body": {"text": "hi"}}}),
        );
        let x = h.b.export_fixtures();
        assert_eq!(x.seeds.messages.len(), 1);
        let mut cfg = Harness::config();
        cfg.seeds.users = x.seeds.users.clone();
        cfg.seeds.messages = x.seeds.messages.clone();
        let clock = Arc::new(ManualClock::new(T0));
        assert!(Backend::try_new(cfg.clone(), clock.clone()).is_ok());
        let mut again = Harness::with_config(cfg.clone());
        assert_eq!(again.init(3, APP, SECRET).code(), Some(0));
        let l = again.req(
            3,
            "login",
            json!({"username": "alice", "password": super::super::md5_hex("pw")}),
        );
        assert_eq!(l.code(), Some(0), "{l:?}");
        cfg.seeds.users[0].password_md5 = Some("not-a-hash".into());
        let e = Backend::try_new(cfg, clock).expect_err("refused");
        assert!(e[0].contains("password_md5"), "{e:?}");
    }
}
