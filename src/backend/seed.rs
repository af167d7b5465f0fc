//! Initial state beyond apps and users: groups, chat rooms and friendships, as config
//! files and scenario fixtures describe them.

use super::model::{Friend, Group, Member, Role, Room, UserKey};
use super::Backend;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn default_max_members() -> usize {
    500
}

fn default_room_max() -> usize {
    1000
}

/// A group to create at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSeed {
    /// Empty: the first app.
    #[serde(default)]
    pub appkey: String,
    /// Fixed gid; allocated when absent.
    #[serde(default)]
    pub gid: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub desc: String,
    pub owner: String,
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub silenced: Vec<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default = "default_max_members")]
    pub max_members: usize,
}

/// A chat room to create at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomSeed {
    /// Empty: the first app.
    #[serde(default)]
    pub appkey: String,
    #[serde(default)]
    pub id: Option<u64>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_room_max")]
    pub max_member_count: usize,
}

/// A message that exists before the scenario starts (history, offline messages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageSeed {
    /// App of sender and recipient (default: the first app).
    #[serde(default)]
    pub appkey: String,
    pub from: String,
    /// Recipient username (one-to-one).
    #[serde(default)]
    pub to: Option<String>,
    /// Recipient group (by gid).
    #[serde(default)]
    pub group: Option<u64>,
    pub text: String,
}

/// A media file that exists at start (as if the owner had uploaded it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaSeed {
    /// Empty: the first app.
    #[serde(default)]
    pub appkey: String,
    pub owner: String,
    /// `image` or `file`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Fixed media_id (default: generated like an upload's).
    #[serde(default)]
    pub id: Option<String>,
    /// File name (`fname`).
    #[serde(default)]
    pub name: Option<String>,
    /// Content as text.
    #[serde(default)]
    pub text: Option<String>,
    /// Content as base64.
    #[serde(default)]
    pub base64: Option<String>,
    /// Content from a file, relative to the fixture file (read when the scenario loads).
    #[serde(default)]
    pub file: Option<String>,
}

fn default_kind() -> String {
    "file".into()
}

/// Two users who are friends at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FriendSeed {
    /// Empty: the first app.
    #[serde(default)]
    pub appkey: String,
    pub users: [String; 2],
}

/// A user's blacklist at start: `user` has blocked each of `blocks` (same app).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlacklistSeed {
    /// Empty: the first app.
    #[serde(default)]
    pub appkey: String,
    pub user: String,
    pub blocks: Vec<String>,
}

impl Backend {
    fn existing(&self, appkey: &str, username: &str) -> Result<UserKey, String> {
        let k = UserKey::new(appkey, username);
        if self.users.contains_key(&k) {
            Ok(k)
        } else {
            Err(format!("user {username} does not exist in app {appkey}"))
        }
    }

    /// Creates a group; returns its gid.
    pub fn seed_group(&mut self, g: GroupSeed) -> Result<u64, String> {
        let now = self.now_ms();
        let owner = self.existing(&g.appkey, &g.owner)?;
        let gid = match g.gid {
            Some(id) if self.groups.contains_key(&id) => {
                return Err(format!("gid {id} is used twice"))
            }
            Some(id) => {
                self.ids.gid = self.ids.gid.max(id);
                id
            }
            None => self.ids.next_gid(),
        };
        let mut members = std::collections::BTreeMap::new();
        members.insert(
            owner,
            Member {
                role: Role::Owner,
                silenced: false,
                joined_ms: now,
            },
        );
        for (names, role) in [(&g.admins, Role::Admin), (&g.members, Role::Member)] {
            for n in names {
                let k = self.existing(&g.appkey, n)?;
                members.entry(k).or_insert(Member {
                    role,
                    silenced: false,
                    joined_ms: now,
                });
            }
        }
        for n in &g.silenced {
            let k = self.existing(&g.appkey, n)?;
            members
                .get_mut(&k)
                .ok_or_else(|| format!("silenced user {n} is not a member of {}", g.name))?
                .silenced = true;
        }
        self.groups.insert(
            gid,
            Group {
                gid,
                appkey: g.appkey,
                name: g.name,
                desc: g.desc,
                avatar: String::new(),
                flag: if g.public { 2 } else { 1 },
                ctime_ms: now,
                mtime_ms: now,
                max_members: g.max_members,
                members,
            },
        );
        Ok(gid)
    }

    /// Creates a chat room; returns its id.
    pub fn seed_room(&mut self, r: RoomSeed) -> Result<u64, String> {
        let id = match r.id {
            Some(id) if self.rooms.contains_key(&id) => {
                return Err(format!("room id {id} is used twice"))
            }
            Some(id) => {
                self.ids.gid = self.ids.gid.max(id);
                id
            }
            None => self.ids.next_gid(),
        };
        let now = self.now_ms();
        self.rooms.insert(
            id,
            Room {
                id,
                appkey: r.appkey,
                name: r.name,
                description: r.description,
                max_member_count: r.max_member_count,
                members: Default::default(),
                ctime_ms: now,
            },
        );
        Ok(id)
    }

    /// Makes two users friends.
    /// Puts users on a user's blacklist.
    pub fn seed_blacklist(&mut self, b: BlacklistSeed) -> Result<(), String> {
        let owner = self.existing(&b.appkey, &b.user)?;
        let mut blocked = Vec::new();
        for n in &b.blocks {
            if n == &b.user {
                return Err(format!("{} cannot blacklist themselves", b.user));
            }
            blocked.push(self.existing(&b.appkey, n)?);
        }
        self.social
            .entry(owner)
            .or_default()
            .blacklist
            .extend(blocked);
        Ok(())
    }

    pub fn seed_friends(&mut self, f: FriendSeed) -> Result<(), String> {
        let a = self.existing(&f.appkey, &f.users[0])?;
        let b = self.existing(&f.appkey, &f.users[1])?;
        let now_s = self.now_ms() / 1000;
        let friend = Friend {
            mtime_s: now_s,
            ..Friend::default()
        };
        self.social
            .entry(a.clone())
            .or_default()
            .friends
            .insert(b.clone(), friend.clone());
        self.social.entry(b).or_default().friends.insert(a, friend);
        Ok(())
    }
}

impl Backend {
    /// Sends a fixture message through the real send path, as its sender.
    pub fn seed_message(&mut self, m: &MessageSeed) -> Result<(), String> {
        let from = self.existing(&m.appkey, &m.from)?;
        let (event, payload) = match (&m.to, m.group) {
            (Some(to), None) => (
                "s_across_single_text",
                serde_json::json!({"target_id": to, "appkey": m.appkey, "no_offline": false, "no_notification": false,
                    "content": {"version": 1, "target_type": "single", "from_platform": "web", "target_id": to,
                                "from_id": m.from, "create_time": self.now_ms(), "msg_type": "text", "msg_body": {"text": m.text}}}),
            ),
            (None, Some(gid)) => (
                "send_group_msg",
                serde_json::json!({"target_gid": gid.to_string(), "no_offline": false, "no_notification": false,
                    "content": {"version": 1, "target_type": "group", "from_platform": "web", "target_id": gid.to_string(),
                                "from_id": m.from, "create_time": self.now_ms(), "msg_type": "text", "msg_body": {"text": m.text}}}),
            ),
            _ => return Err("a message needs exactly one of `to` and `group`".into()),
        };
        let out = self.act_as(&from, event, payload);
        match out.code() {
            Some(0) => Ok(()),
            _ => Err(format!(
                "fixture message from {} failed: {}",
                m.from,
                out.response
                    .map(|r| serde_json::Value::Object(r).to_string())
                    .unwrap_or_default()
            )),
        }
    }
}

impl Backend {
    /// Stores a fixture media file; returns its media_id.
    pub fn seed_media(&mut self, m: &MediaSeed) -> Result<String, String> {
        use base64::Engine as _;
        let owner = self.existing(&m.appkey, &m.owner)?;
        let kind = super::media::MediaKind::parse(&m.kind)
            .ok_or_else(|| format!("media kind must be image or file, not {:?}", m.kind))?;
        let bytes = match (&m.text, &m.base64) {
            (Some(t), None) => t.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| format!("media {:?}: bad base64: {e}", m.name))?,
            _ => return Err("a media seed needs exactly one of text, base64 or file".into()),
        };
        let stored = self
            .store_upload(owner, kind, bytes, None, m.name.as_deref())
            .map_err(|e| {
                e.body()["error"]["message"]
                    .as_str()
                    .unwrap_or("invalid media")
                    .to_owned()
            })?;
        let generated = stored["media_id"].as_str().unwrap_or_default().to_owned();
        let id = match &m.id {
            Some(id) if id != &generated => {
                if self.media(id).is_some() {
                    return Err(format!("media id {id} is used twice"));
                }
                self.rename_media(&generated, id);
                id.clone()
            }
            _ => generated,
        };
        // Fixture media exist to be fetched: visible app-wide (decisions-media.md).
        self.publish_media(&id);
        Ok(id)
    }
}
