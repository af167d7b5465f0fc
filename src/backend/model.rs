//! The backend's data: apps, users, connections, messages, conversations, sync logs.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

/// A transport connection id (one Engine.IO session).
pub type ConnId = u64;

/// A user is identified by app and username.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserKey {
    pub appkey: String,
    pub username: String,
}

impl UserKey {
    pub fn new(appkey: impl Into<String>, username: impl Into<String>) -> Self {
        Self {
            appkey: appkey.into(),
            username: username.into(),
        }
    }
}

impl std::fmt::Display for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.appkey, self.username)
    }
}

/// An application (appkey + master secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub appkey: String,
    pub secret: String,
    #[serde(default)]
    pub name: String,
    /// Apps whose users this app's users may message. `None`: every app on the server.
    #[serde(default)]
    pub cross_app: Option<Vec<String>>,
    /// Most users `register` may create (880007 beyond it). `None`: unlimited.
    #[serde(default)]
    pub max_users: Option<usize>,
}

/// A user's profile and credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub uid: u64,
    pub key: UserKey,
    /// Lower-case hex MD5 of the password, as the SDK sends it.
    pub password_md5: String,
    pub nickname: String,
    pub avatar: String,
    pub birthday: String,
    pub gender: i64,
    pub signature: String,
    pub region: String,
    pub address: String,
    pub extras: Map<String, Value>,
    /// Profile modification time, seconds.
    pub mtime_s: i64,
    pub ctime_ms: i64,
    pub disabled: bool,
}

impl User {
    /// The public profile (`user_info` of get_across_user_info).
    pub fn info(&self) -> Value {
        json!({
            "uid": self.uid,
            "username": self.key.username,
            "appkey": self.key.appkey,
            "nickname": self.nickname,
            "avatar": self.avatar,
            "birthday": self.birthday,
            "gender": self.gender,
            "signature": self.signature,
            "region": self.region,
            "address": self.address,
            "mtime": self.mtime_s,
            "extras": self.extras,
        })
    }
}

/// A logged-in connection's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginState {
    pub user: UserKey,
    /// The user's uid (the dedupe cache's user scope).
    pub uid: u64,
    /// `web` for the SDK; reference clients may declare `pc`, `Android`, `ios`.
    pub platform: String,
    /// `login.version` as sent (2.4.0 builds send no `msg_recv_v2`).
    pub version: String,
    pub since_ms: i64,
}

/// One transport connection as the backend sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conn {
    /// Set by a successful `c_init`.
    pub appkey: Option<String>,
    /// The init `flag`: 1 = roaming.
    pub sync_type: i64,
    pub login: Option<LoginState>,
    /// A `sync_conversation` sent in pages: where the next page starts. Set by
    /// `sync_check` when one page did not hold everything; the page's
    /// `sync_conversation_ack` sends the next one.
    pub sync_cursor: Option<SyncCursor>,
}

/// Where the next `sync_conversation` page of a connection starts.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncCursor {
    /// Unconfirmed sync log entries with `after < seq <= upto`.
    Log { after: i64, upto: i64 },
    /// Roaming: conversations from `conv` on, skipping the first `skip` messages of
    /// `conv`'s roaming window; the last page carries `upto` as its sync key.
    Roam {
        conv: Option<ConvKey>,
        skip: usize,
        upto: i64,
    },
}

/// Who a message was sent to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    User(std::sync::Arc<UserKey>),
    Group(u64),
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub msg_id: u64,
    /// Shared with every other message of the sender ([`super::Backend::intern`]).
    pub from: std::sync::Arc<UserKey>,
    pub target: Target,
    pub ctime_ms: i64,
    /// The message object exactly as pushed in `msg_sync` (protocol.md 7.2), encoded
    /// once: a few hundred bytes instead of a tree of maps and strings.
    pub wire: Box<str>,
    /// uids of the users whose mailbox (sync log, conversation) lists this message, so
    /// dropping it by retention can remove every reference. The two of a 1:1 message
    /// are kept inline: no allocation of its own to free, cold, when it is dropped.
    pub holders: smallvec::SmallVec<[u64; 2]>,
}

impl Message {
    /// A message with no holders yet; `wire` is its [`Message::encode`]d object.
    pub fn new(
        msg_id: u64,
        from: std::sync::Arc<UserKey>,
        target: Target,
        ctime_ms: i64,
        wire: Box<str>,
    ) -> Self {
        Self {
            msg_id,
            from,
            target,
            ctime_ms,
            wire,
            holders: smallvec::SmallVec::new(),
        }
    }

    /// A message object as stored. `to_string` (not `Display`, which writes through
    /// `fmt` piece by piece).
    pub fn encode(wire: &Value) -> Box<str> {
        serde_json::to_string(wire)
            .unwrap_or_default()
            .into_boxed_str()
    }

    /// The `msg_sync` payload of one new message `wire`, and the same payload as JSON
    /// made from the message's stored text (`Message::encode(&wire)`), not encoded again.
    pub fn sync_payload(wire: Value, text: &str) -> (Value, String) {
        let mut json = String::with_capacity(text.len() + 16);
        json.push_str(r#"{"messages":["#);
        json.push_str(text);
        json.push_str("]}");
        let mut payload = serde_json::Map::with_capacity(1);
        payload.insert("messages".into(), Value::Array(vec![wire]));
        (Value::Object(payload), json)
    }

    /// The message object as pushed (decoded from the stored JSON).
    pub fn wire_value(&self) -> Value {
        serde_json::from_str(&self.wire).unwrap_or(Value::Null)
    }

    /// The conversation the message belongs to for retention: the pair of users
    /// (either direction) or the group.
    pub fn thread(&self) -> Thread {
        match &self.target {
            Target::Group(gid) => Thread::Group(*gid),
            Target::User(to) if *to < self.from => Thread::Pair(to.clone(), self.from.clone()),
            Target::User(to) => Thread::Pair(self.from.clone(), to.clone()),
        }
    }
}

/// A conversation as retention counts it: both directions of a pair of users share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Thread {
    /// The two users, smaller key first.
    Pair(std::sync::Arc<UserKey>, std::sync::Arc<UserKey>),
    Group(u64),
}

/// A conversation as one user sees it. The peer is shared (`Arc`): every sync log
/// entry of a conversation points at the key its mailbox holds, so an entry costs no
/// string copies (and saving the state copies no strings). Serialized as a plain key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConvKey {
    Single(std::sync::Arc<UserKey>),
    Group(u64),
}

/// Per-user conversation state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub mtime_ms: i64,
    /// Stored messages of the conversation, oldest first.
    pub msg_ids: VecDeque<u64>,
}

/// One entry of a user's sync log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncEntry {
    pub seq: i64,
    pub msg_id: u64,
    pub conv: ConvKey,
    /// Confirmed by a device (`msg_recv_v2`, `sync_conversation_ack`).
    pub delivered: bool,
}

/// A user's mailbox: the sync log and conversations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mailbox {
    /// Highest sync key issued.
    pub head: i64,
    pub log: VecDeque<SyncEntry>,
    pub conversations: BTreeMap<ConvKey, Conversation>,
    /// Highest event sync key issued.
    pub event_head: i64,
    /// Events for `sync_event`, oldest first.
    pub events: VecDeque<EventEntry>,
}

/// A group member's role (`flag` in `member_list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Owner,
    Admin,
}

impl Role {
    /// The wire `flag`: 0 member, 1 owner, 2 admin.
    pub fn flag(self) -> i64 {
        match self {
            Role::Member => 0,
            Role::Owner => 1,
            Role::Admin => 2,
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    pub silenced: bool,
    /// When the member joined, ms.
    pub joined_ms: i64,
}

/// A group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub gid: u64,
    pub appkey: String,
    pub name: String,
    pub desc: String,
    pub avatar: String,
    /// The wire `flag` (→ `group_type`): 2 public, 0/1 private.
    pub flag: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
    pub max_members: usize,
    pub members: BTreeMap<UserKey, Member>,
}

impl Group {
    pub fn owner(&self) -> Option<&UserKey> {
        self.members
            .iter()
            .find(|(_, m)| m.role == Role::Owner)
            .map(|(k, _)| k)
    }

    pub fn is_public(&self) -> bool {
        self.flag == 2
    }

    /// `{gid, name, desc, appkey, ctime, mtime, avatar, flag}` as in group lists.
    pub fn brief(&self) -> Value {
        json!({
            "gid": self.gid,
            "name": self.name,
            "desc": self.desc,
            "appkey": self.appkey,
            "ctime": self.ctime_ms / 1000,
            "mtime": self.mtime_ms / 1000,
            "avatar": self.avatar,
            "flag": self.flag,
        })
    }
}

/// A chat room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub id: u64,
    pub appkey: String,
    pub name: String,
    pub description: String,
    pub max_member_count: usize,
    pub members: std::collections::BTreeSet<UserKey>,
    pub ctime_ms: i64,
}

impl Room {
    /// `{id, name, description, appkey, total_member_count, max_member_count}`.
    pub fn info(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "appkey": self.appkey,
            "total_member_count": self.members.len(),
            "max_member_count": self.max_member_count,
            "ctime": self.ctime_ms / 1000,
        })
    }
}

/// One friend of a user.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Friend {
    pub memo_name: String,
    pub memo_others: String,
    /// When the friendship started or last changed, seconds.
    pub mtime_s: i64,
}

/// A user's social settings: friends, blacklist, no-disturb, shields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Social {
    pub friends: BTreeMap<UserKey, Friend>,
    /// Invitations received and not yet answered: inviter → (event id, reason).
    pub invitations: BTreeMap<UserKey, (u64, String)>,
    pub blacklist: std::collections::BTreeSet<UserKey>,
    pub nodisturb_users: std::collections::BTreeSet<UserKey>,
    pub nodisturb_groups: std::collections::BTreeSet<u64>,
    pub nodisturb_global: bool,
    pub shield_groups: std::collections::BTreeSet<u64>,
}

/// One entry of a user's event log (for `sync_event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEntry {
    pub seq: i64,
    pub event: Value,
    pub delivered: bool,
}

/// Read-receipt state of a message sent with `need_receipt` (protocol.md 8).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReceiptState {
    pub sender: Option<UserKey>,
    /// Recipients who have not read it yet.
    pub unread: std::collections::BTreeSet<UserKey>,
    /// Recipients who have read it.
    pub read: std::collections::BTreeSet<UserKey>,
}
