//! The fake IM service as plain, deterministic state: `handle(conn, request) ->
//! (response, pushes)`. No I/O; time and ids are injected. Most behaviour tests run
//! against this module directly.
//!
//! Every request goes through [`Backend::handle`], which applies the envelope rules
//! (dedupe of retried rids, session preconditions, unknown events) before the handler
//! of the event runs. Handlers live in one file per area.

pub(crate) mod adopt;
mod chat;
pub(crate) mod clock;
pub(crate) mod dedupe;
mod events;
pub(crate) mod export;
pub(crate) mod footprint;
mod group_chat;
mod groups;
mod history;
mod inspect;
pub mod limits;
pub mod media;
pub mod media_access;
pub mod messages;
pub(crate) mod model;
mod nodisturb;
pub(crate) mod reach;
mod receipts;
mod retract;
mod rooms;
pub(crate) mod saved;
pub(crate) mod seed;
mod session;
mod social;
mod sync;
mod transparent;
mod users;

pub use clock::{Clock, Ids, ManualClock, OffsetClock, SystemClock};
pub use model::{AppConfig, ConnId, UserKey};
pub use seed::{BlacklistSeed, FriendSeed, GroupSeed, MediaSeed, MessageSeed, RoomSeed};

use crate::protocol::Needs;
use crate::protocol::{success, Args, Code, Event, Failure, PushEvent, Rid};
use dedupe::{Dedupe, Scope};
use model::{Conn, Group, Mailbox, Message, ReceiptState, Room, Social, User};
use nodisturb::Op;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A push to deliver: one payload, encoded once, sent to every listed connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub to: Vec<ConnId>,
    pub event: PushEvent,
    pub payload: Value,
    /// `payload` already encoded as JSON (serde_json's compact text) when the backend
    /// wrote it anyway (a new message is stored as text): the frame is made from it.
    pub json: Option<String>,
}

/// What handling one request produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The response body without `rid`; `None` = ack only.
    pub response: Option<Map<String, Value>>,
    /// The response's [`crate::protocol::body_json`], when [`Backend::handle`] encoded it (once,
    /// for its dedupe cache and the frame).
    pub response_json: Option<Arc<str>>,
    /// Pushes, sent after the response, in order.
    pub pushes: Vec<Push>,
}

impl Outcome {
    pub fn ok(fields: Map<String, Value>) -> Self {
        Self {
            response: Some(success(fields)),
            response_json: None,
            pushes: Vec::new(),
        }
    }

    pub fn ok_empty() -> Self {
        Self::ok(Map::new())
    }

    pub fn fail(f: &Failure) -> Self {
        Self {
            response: Some(f.to_body()),
            response_json: None,
            pushes: Vec::new(),
        }
    }

    pub fn push(&mut self, to: Vec<ConnId>, event: PushEvent, payload: Value) {
        self.push_encoded(to, event, payload, None);
    }

    /// [`Outcome::push`] with the payload's JSON text (see [`Push::json`]).
    pub fn push_encoded(
        &mut self,
        to: Vec<ConnId>,
        event: PushEvent,
        payload: Value,
        json: Option<String>,
    ) {
        if !to.is_empty() {
            self.pushes.push(Push {
                to,
                event,
                payload,
                json,
            });
        }
    }

    /// The response code (0 for success), if there is a response.
    pub fn code(&self) -> Option<i64> {
        self.response
            .as_ref()
            .and_then(|r| r.get("code"))
            .and_then(Value::as_i64)
    }
}

/// A user to create at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    /// App of the user (empty: the first app).
    #[serde(default)]
    pub appkey: String,
    pub username: String,
    /// Plain-text password (hashed on load).
    pub password: String,
    /// The password as its lower-case hex MD5; when given, `password` is ignored (write
    /// `""`). Exported state uses it: the plain text is not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_md5: Option<String>,
    #[serde(default)]
    pub nickname: String,
    #[serde(default)]
    pub signature: String,
    #[serde(default)]
    pub gender: i64,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub birthday: String,
    #[serde(default)]
    pub extras: Map<String, Value>,
}

impl UserSeed {
    /// A user with a nickname and an empty profile otherwise.
    pub fn new(appkey: &str, username: &str, password: &str, nickname: &str) -> Self {
        Self {
            appkey: appkey.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            password_md5: None,
            nickname: nickname.to_owned(),
            signature: String::new(),
            gender: 0,
            region: String::new(),
            address: String::new(),
            birthday: String::new(),
            extras: Map::new(),
        }
    }
}

/// The seed lists: apps, users and the state between them. One type for the backend's
/// start ([`BackendConfig`]), a loaded scenario and an exported fixtures file; the
/// scenario file itself keeps its own copy of the lists (`scenario::model::Fixtures`)
/// because it wraps each entry in a source span for error positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Seeds {
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    #[serde(default)]
    pub users: Vec<UserSeed>,
    #[serde(default)]
    pub groups: Vec<GroupSeed>,
    #[serde(default)]
    pub rooms: Vec<RoomSeed>,
    #[serde(default)]
    pub friends: Vec<FriendSeed>,
    /// Blacklists at start.
    #[serde(default)]
    pub blacklists: Vec<BlacklistSeed>,
    /// Media files stored at start.
    #[serde(default)]
    pub media: Vec<MediaSeed>,
    /// History sent through the real send path at start.
    #[serde(default)]
    pub messages: Vec<MessageSeed>,
}

/// The initial state of a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BackendConfig {
    /// Apps, users, groups, rooms, friends, blacklists, media and messages.
    #[serde(flatten)]
    pub seeds: Seeds,
    /// How long a `c_init` signature stays valid (default 10 minutes, the guide's rule).
    #[serde(default = "default_signature_ttl")]
    pub signature_ttl_ms: i64,
    /// Message retention and sync page sizes (docs/limits-history.md).
    #[serde(default)]
    pub history: limits::HistoryLimits,
}

fn default_signature_ttl() -> i64 {
    crate::protocol::sign::SIGNATURE_TTL_MS
}

/// Signing lives in the protocol layer (both ends compute it); re-exported here for
/// callers that took it from the backend before.
pub use crate::protocol::sign::{is_md5_hex, md5_hex, signature};

/// The maps every request reads: foldhash (fast, seeded per process) instead of
/// SipHash, which hashed user keys several times per delivered message.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// The service state.
#[derive(Debug)]
pub struct Backend {
    clock: Arc<dyn Clock>,
    ids: Ids,
    signature_ttl_ms: i64,
    apps: BTreeMap<String, AppConfig>,
    users: FastMap<UserKey, User>,
    uids: FastMap<u64, UserKey>,
    conns: BTreeMap<ConnId, Conn>,
    /// The connections logged in as each user, ascending (the order pushes go out in).
    /// Kept beside `conns` by `insert_conn`, `remove_conn` and `set_login` only, so
    /// finding a user's sessions does not scan every connection.
    online: FastMap<UserKey, Vec<ConnId>>,
    /// Stored messages by msg_id (oldest first), bounded by `history`.
    messages: messages::Messages,
    mailboxes: FastMap<UserKey, Mailbox>,
    groups: BTreeMap<u64, Group>,
    rooms: BTreeMap<u64, Room>,
    social: FastMap<UserKey, Social>,
    /// Messages sent with `need_receipt`, by msg_id.
    receipts: FastMap<u64, ReceiptState>,
    /// Pending group join requests (event 56), by event id.
    join_requests: BTreeMap<u64, groups::JoinRequest>,
    dedupe: Dedupe,
    /// Upload tokens and stored media.
    media: media::MediaState,
    /// Receipt changes per sender, for `sync_receipt`.
    receipt_logs: FastMap<UserKey, receipts::ReceiptLog>,
    /// Retracted messages, out of `messages`, by msg_id (counted by retention too).
    retracted: BTreeMap<u64, Message>,
    /// Each conversation's stored (or retracted) msg_ids, oldest first, for retention.
    threads: FastMap<model::Thread, std::collections::VecDeque<u64>>,
    /// One shared copy of each user key that stored messages name (see
    /// [`Backend::intern`]); bounded by the users plus those recently removed.
    keys: FastSet<Arc<UserKey>>,
    history: limits::HistoryLimits,
}

impl Backend {
    /// A backend with the given state and clock. Seeds that name unknown users are
    /// skipped with a warning; [`Backend::try_new`] reports them instead.
    pub fn new(config: BackendConfig, clock: Arc<dyn Clock>) -> Self {
        let (b, errors) = Self::build(config, clock);
        for e in errors {
            tracing::warn!(error = %e, "seed skipped");
        }
        b
    }

    /// A backend with the given state and clock, or every seeding error.
    pub fn try_new(config: BackendConfig, clock: Arc<dyn Clock>) -> Result<Self, Vec<String>> {
        let (b, errors) = Self::build(config, clock);
        if errors.is_empty() {
            Ok(b)
        } else {
            Err(errors)
        }
    }

    fn build(config: BackendConfig, clock: Arc<dyn Clock>) -> (Self, Vec<String>) {
        let mut b = Self {
            clock,
            ids: Ids::default(),
            signature_ttl_ms: config.signature_ttl_ms,
            apps: BTreeMap::new(),
            users: FastMap::default(),
            uids: FastMap::default(),
            conns: BTreeMap::new(),
            online: FastMap::default(),
            messages: messages::Messages::default(),
            mailboxes: FastMap::default(),
            groups: BTreeMap::new(),
            rooms: BTreeMap::new(),
            social: FastMap::default(),
            receipts: FastMap::default(),
            join_requests: BTreeMap::new(),
            dedupe: Dedupe::default(),
            media: media::MediaState::default(),
            receipt_logs: FastMap::default(),
            retracted: BTreeMap::new(),
            threads: FastMap::default(),
            keys: Default::default(),
            history: config.history.sane(),
        };
        // Seeds document an empty appkey as "the first app"; resolve it here so every
        // way of building a backend (config file, scenario, tests) agrees.
        let first = config
            .seeds
            .apps
            .first()
            .map(|a| a.appkey.clone())
            .unwrap_or_default();
        let or_first = |k: String| if k.is_empty() { first.clone() } else { k };
        for app in config.seeds.apps {
            b.apps.insert(app.appkey.clone(), app);
        }
        let mut errors = Vec::new();
        for mut u in config.seeds.users {
            u.appkey = or_first(u.appkey);
            if let Some(bad) = u.password_md5.as_ref().filter(|h| !is_md5_hex(h)) {
                errors.push(format!(
                    "user {}: password_md5 {bad:?} is not 32 lower-case hex digits",
                    u.username
                ));
                continue;
            }
            b.seed_user(u);
        }
        for mut g in config.seeds.groups {
            g.appkey = or_first(g.appkey);
            errors.extend(b.seed_group(g).err());
        }
        for mut r in config.seeds.rooms {
            r.appkey = or_first(r.appkey);
            errors.extend(b.seed_room(r).err());
        }
        for mut f in config.seeds.friends {
            f.appkey = or_first(f.appkey);
            errors.extend(b.seed_friends(f).err());
        }
        for mut x in config.seeds.blacklists {
            x.appkey = or_first(x.appkey);
            errors.extend(b.seed_blacklist(x).err());
        }
        for mut m in config.seeds.media {
            m.appkey = or_first(m.appkey);
            errors.extend(b.seed_media(&m).err());
        }
        for mut m in config.seeds.messages {
            m.appkey = or_first(m.appkey);
            errors.extend(b.seed_message(&m).err());
        }
        (b, errors)
    }

    fn seed_user(&mut self, u: UserSeed) {
        let key = UserKey::new(u.appkey, u.username);
        let now = self.now_ms();
        let uid = self.ids.next_uid();
        let user = User {
            uid,
            key: key.clone(),
            password_md5: u.password_md5.unwrap_or_else(|| md5_hex(&u.password)),
            nickname: u.nickname,
            avatar: String::new(),
            birthday: u.birthday,
            gender: u.gender,
            signature: u.signature,
            region: u.region,
            address: u.address,
            extras: u.extras,
            mtime_s: now / 1000,
            ctime_ms: now,
            disabled: false,
        };
        self.uids.insert(uid, key.clone());
        self.users.insert(key, user);
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The apps, by appkey.
    pub fn apps(&self) -> impl Iterator<Item = &AppConfig> {
        self.apps.values()
    }

    /// A user's profile.
    pub fn user(&self, key: &UserKey) -> Option<&User> {
        self.users.get(key)
    }

    /// Number of stored messages.
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// Bounds the dedupe cache: entries, bytes of stored answers, and their lifetime.
    pub fn set_dedupe_limits(&mut self, max_entries: usize, max_bytes: usize, ttl_ms: i64) {
        self.dedupe.max_entries = max_entries;
        self.dedupe.max_bytes = max_bytes;
        self.dedupe.ttl_ms = ttl_ms;
        let now = self.now_ms();
        self.dedupe.expire(now);
    }

    /// Drops what has expired at `now_ms` (the server calls this periodically, so an
    /// idle server does not keep old answers). Returns the dedupe entries left.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        self.dedupe.expire(now_ms);
        self.dedupe.len()
    }

    /// Answers the dedupe cache holds now.
    pub fn dedupe_len(&self) -> usize {
        self.dedupe.len()
    }

    /// The logged-in user of a connection.
    pub fn conn_user(&self, conn: ConnId) -> Option<&UserKey> {
        self.conns.get(&conn)?.login.as_ref().map(|l| &l.user)
    }

    /// A transport connection opened.
    pub fn connect(&mut self, conn: ConnId) {
        self.insert_conn(conn, Conn::default());
    }

    /// A transport connection closed: its login ends.
    pub fn disconnect(&mut self, conn: ConnId) {
        let user = self.remove_conn(conn).and_then(|c| c.login).map(|l| l.user);
        if let Some(u) = user {
            self.leave_rooms_if_offline(&u);
        }
    }

    /// Live connections logged in as `user`, ascending.
    fn conns_of(&self, user: &UserKey) -> &[ConnId] {
        self.online.get(user).map_or(&[], Vec::as_slice)
    }

    /// Adds (or replaces) a connection's state, indexing its login.
    fn insert_conn(&mut self, conn: ConnId, state: Conn) {
        self.remove_conn(conn);
        if let Some(l) = &state.login {
            self.index_login(l.user.clone(), conn);
        }
        self.conns.insert(conn, state);
    }

    /// Removes a connection's state and its login from the index.
    fn remove_conn(&mut self, conn: ConnId) -> Option<Conn> {
        let state = self.conns.remove(&conn)?;
        if let Some(l) = &state.login {
            self.unindex_login(&l.user, conn);
        }
        Some(state)
    }

    /// Sets (or ends, with `None`) the login of a live connection.
    fn set_login(&mut self, conn: ConnId, login: Option<model::LoginState>) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let new_user = login.as_ref().map(|l| l.user.clone());
        if let Some(old) = std::mem::replace(&mut state.login, login) {
            self.unindex_login(&old.user, conn);
        }
        if let Some(user) = new_user {
            self.index_login(user, conn);
        }
    }

    fn index_login(&mut self, user: UserKey, conn: ConnId) {
        let conns = self.online.entry(user).or_default();
        if let Err(at) = conns.binary_search(&conn) {
            conns.insert(at, conn);
        }
    }

    fn unindex_login(&mut self, user: &UserKey, conn: ConnId) {
        if let Some(conns) = self.online.get_mut(user) {
            if let Ok(at) = conns.binary_search(&conn) {
                conns.remove(at);
            }
            if conns.is_empty() {
                self.online.remove(user);
            }
        }
    }

    /// Whether the login index says what a scan of every connection says (tests).
    #[cfg(test)]
    pub(crate) fn online_index_holds(&self) -> bool {
        let mut scanned: FastMap<UserKey, Vec<ConnId>> = FastMap::default();
        for (id, c) in &self.conns {
            if let Some(l) = &c.login {
                scanned.entry(l.user.clone()).or_default().push(*id);
            }
        }
        scanned == self.online
    }

    /// The scopes a request's answer is looked up under: its connection, and its user
    /// once logged in.
    fn scopes(&mut self, conn: ConnId) -> Scopes {
        let mut s = Scopes::new();
        s.push(Scope::Conn(conn));
        if let Some(l) = self.conns.get(&conn).and_then(|c| c.login.as_ref()) {
            s.push(Scope::User(l.uid));
        }
        s
    }

    /// Handles one request. `payload` is the request object (its `rid` is ignored here);
    /// a message send takes its content out of it instead of copying it.
    pub fn handle(
        &mut self,
        conn: ConnId,
        event: &str,
        rid: &Rid,
        payload: &mut Map<String, Value>,
    ) -> Outcome {
        let now = self.now_ms();
        self.dedupe.expire(now);
        if !self.conns.contains_key(&conn) {
            self.connect(conn);
        }
        let known = Event::from_wire(event);
        let ack_only = known.is_some_and(Event::ack_only);
        let before = self.scopes(conn);
        let rid_key = rid.key();
        let cached = known.and_then(|e| self.dedupe.get(now, &before, e, rid_key));
        if let Some(answer) = cached {
            tracing::debug!(
                conn,
                event,
                rid = rid.key(),
                "retried rid answered from cache"
            );
            let json = answer.filter(|_| !ack_only);
            return Outcome {
                response: json.as_deref().and_then(dedupe::parse_answer),
                response_json: json,
                pushes: Vec::new(),
            };
        }
        let logged_in = self.conn_user(conn).is_some();
        if !logged_in
            && known.is_some_and(|e| {
                e.needs() == Needs::Login && self.dedupe.seen_anywhere(now, e, rid_key)
            })
        {
            // An old retry replayed on a fresh connection (protocol.md 1.7): ack only, so
            // the original call is neither failed nor executed twice.
            tracing::debug!(
                conn,
                event,
                rid = rid.key(),
                "retry on an unauthenticated connection: ack only"
            );
            return Outcome::default();
        }
        let result = match known {
            None => Err(Failure::new(
                Code::InvalidParameter,
                format!("unknown event {event}"),
            )),
            Some(e) => self
                .check_needs(conn, e)
                .and_then(|()| self.check_reach(conn, e, payload))
                .and_then(|()| self.dispatch(conn, e, payload)),
        };
        let mut outcome = match result {
            Ok(o) => o,
            Err(f) => Outcome::fail(&f),
        };
        if ack_only {
            outcome.response = None;
        }
        outcome.response_json = outcome.response.as_ref().map(crate::protocol::body_json);
        // An unknown event executed nothing: its retry gets the same error again.
        if let Some(e) = known {
            let scopes = store_scopes(before, self.scopes(conn));
            self.dedupe
                .put(now, &scopes, e, rid_key, outcome.response_json.clone());
        }
        outcome
    }

    fn check_needs(&self, conn: ConnId, e: Event) -> Result<(), Failure> {
        let c = self.conns.get(&conn);
        match e.needs() {
            Needs::Nothing => Ok(()),
            Needs::Init if c.and_then(|c| c.appkey.as_ref()).is_some() => Ok(()),
            Needs::Login if c.and_then(|c| c.login.as_ref()).is_some() => Ok(()),
            Needs::Init => Err(Failure::new(
                Code::InvalidAuthorization,
                "call init (c_init) first",
            )),
            Needs::Login => Err(Failure::new(Code::InvalidAuthorization, "not logged in")),
        }
    }

    fn dispatch(
        &mut self,
        conn: ConnId,
        e: Event,
        payload: &mut Map<String, Value>,
    ) -> Result<Outcome, Failure> {
        let a = Args(payload);
        match e {
            Event::CInit => self.c_init(conn, a),
            Event::Register => self.register(conn, a),
            Event::Login => self.login(conn, a),
            Event::GetAcrossUserInfo => self.get_user_info(conn, a),
            Event::UpdateUserInf => self.update_user_info(conn, a),
            Event::UpdateUserPwd => self.update_user_pwd(conn, a),
            Event::SAcrossSingleText => self.send_single(conn, payload),
            Event::MsgRecvV2 => self.msg_recv(conn, a),
            Event::GetConversations => self.get_conversations(conn),
            Event::SyncCheck => self.sync_check(conn, a),
            Event::SyncConversationAck => self.sync_conversation_ack(conn, a),
            Event::SyncEventAck => self.sync_event_ack(conn, a),
            Event::SyncReceiptAck => self.sync_receipt_ack(conn, a),
            Event::GetUploadToken => self.get_upload_token(conn, a),
            Event::GetResource => self.get_resource(conn, a),
            Event::RoomList => self.room_list(conn, a),
            Event::RoomListSelf => self.room_list_self(conn),
            Event::RoomInfo => self.room_info(conn, a),
            Event::JoinRoom => self.join_room(conn, a),
            Event::ExitRoom => self.exit_room(conn, a),
            Event::SendRoomMsg => self.send_room_msg(conn, a),
            Event::ReceiptReport => self.receipt_report(conn, a),
            Event::MsgUnreadList => self.msg_unread_list(conn, a),
            Event::UnreadSingleCount => self.unread_single_count(conn, a),
            Event::UnreadGroupCount => self.unread_group_count(conn, a),
            Event::MsgRetract => self.msg_retract(conn, a),
            Event::EventNotification => Ok(Outcome::default()),
            Event::SendGroupMsg => self.send_group_msg(conn, payload),
            Event::CreateGroup => self.create_group(conn, a),
            Event::ExitGroup => self.exit_group(conn, a),
            Event::GetGroupsList => self.get_groups_list(conn),
            Event::GetGroupInfo => self.get_group_info(conn, a),
            Event::UpdateGroupInfo => self.update_group_info(conn, a),
            Event::GetGroupMembers => self.get_group_members(conn, a),
            Event::AddAcrossGroupMember => self.add_group_members(conn, a),
            Event::DelAcrossGroupMember => self.del_group_members(conn, a),
            Event::ApplyJoinGroup => self.apply_join_group(conn, a),
            Event::AdminAddGroupMember => self.admin_add_group_member(conn, a),
            Event::GroupMemSilence => self.group_mem_silence(conn, a),
            Event::DissolveGroup => self.dissolve_group(conn, a),
            Event::AddGroupKeeper => self.group_keepers(conn, a, true),
            Event::DelGroupKeeper => self.group_keepers(conn, a, false),
            Event::ChangeGroupAdmin => self.change_group_admin(conn, a),
            Event::PublicGroupList => self.public_group_list(conn, a),
            Event::GetFriendList => self.get_friend_list(conn),
            Event::AddFriend => self.add_friend(conn, a),
            Event::DelFriend => self.del_friend(conn, a),
            Event::UpdateFriendMemo => self.update_friend_memo(conn, a),
            Event::GetBlackList => self.get_black_list(conn, a),
            Event::AddBlackList => self.add_black_list(conn, a),
            Event::DelBlackList => self.del_black_list(conn, a),
            Event::NoDisturb => self.no_disturb(conn, a),
            Event::AddMsgNoDisturbSingle => self.nodisturb_single(conn, a, Op::Add),
            Event::DeleteMsgNoDisturbSingle => self.nodisturb_single(conn, a, Op::Del),
            Event::AddMsgNoDisturbGroup => self.nodisturb_group(conn, a, Op::Add),
            Event::DeleteMsgNoDisturbGroup => self.nodisturb_group(conn, a, Op::Del),
            Event::AddMsgNoDisturbGlobal => self.nodisturb_global(conn, a, Op::Add),
            Event::DeleteMsgNoDisturbGlobal => self.nodisturb_global(conn, a, Op::Del),
            Event::ListShieldGroup => self.list_shield_group(conn),
            Event::AddMsgShieldGroup => self.shield(conn, a, Op::Add),
            Event::DelMsgShieldGroup => self.shield(conn, a, Op::Del),
            Event::TransMsgSingle => self.trans_msg_single(conn, a),
            Event::TransMsgGroup => self.trans_msg_group(conn, a),
            Event::TransMsgPlatform => self.trans_msg_platform(conn, a),
        }
    }

    /// Runs a request as `user` on a temporary connection that no client holds
    /// (fixtures, admin actions). Pushes to live sessions are returned as usual.
    pub fn act_as(&mut self, user: &UserKey, event: &str, payload: Value) -> Outcome {
        self.act_as_on(user, "fixture", event, payload)
    }

    /// [`Backend::act_as`] on a session logged in on `platform`: the user acting on
    /// another device (scenario step `as_device`).
    pub fn act_as_on(
        &mut self,
        user: &UserKey,
        platform: &str,
        event: &str,
        payload: Value,
    ) -> Outcome {
        let conn = u64::MAX - self.ids.next_event();
        let now = self.now_ms();
        self.insert_conn(
            conn,
            Conn {
                appkey: Some(user.appkey.clone()),
                sync_type: 0,
                login: Some(model::LoginState {
                    // A user not on the server acts under uid 0 (its session is
                    // temporary; nothing else logs in as uid 0).
                    uid: self.user(user).map_or(0, |u| u.uid),
                    user: user.clone(),
                    platform: platform.to_owned(),
                    version: String::new(),
                    since_ms: now,
                }),
                sync_cursor: None,
            },
        );
        let mut m = payload.as_object().cloned().unwrap_or_default();
        m.insert("rid".into(), json!(conn));
        let out = match Rid::from_payload(&m) {
            Some(rid) => self.handle(conn, event, &rid, &mut m),
            None => Outcome::fail(&Failure::from(Code::Internal)),
        };
        self.remove_conn(conn);
        out
    }

    /// The user a request names by `username` and `appkey` (empty or absent: `me`'s
    /// app); `missing` when there is no such user.
    fn user_arg(&self, me: &UserKey, a: Args<'_>, missing: Code) -> Result<UserKey, Failure> {
        let username = a.str("username")?;
        let appkey = a
            .opt_str("appkey")?
            .filter(|k| !k.is_empty())
            .unwrap_or(&me.appkey);
        let key = UserKey::new(appkey, username);
        if !self.users.contains_key(&key) {
            return Err(Failure::new(
                missing,
                format!("user {username} does not exist in {appkey}"),
            ));
        }
        Ok(key)
    }

    /// The group `gid` as a message target (`TargetGroupNotExist` when there is none).
    fn target_group(&self, gid: u64) -> Result<&Group, Failure> {
        self.groups.get(&gid).ok_or_else(|| {
            Failure::new(
                Code::TargetGroupNotExist,
                format!("group {gid} does not exist"),
            )
        })
    }

    /// The logged-in user of `conn` (handlers run only after `check_needs`).
    fn me(&self, conn: ConnId) -> Result<UserKey, Failure> {
        self.conn_user(conn)
            .cloned()
            .ok_or_else(|| Failure::new(Code::InvalidAuthorization, "not logged in"))
    }

    /// A new `event_notification` object with id and times filled in.
    fn new_event(&mut self, event_type: i64, fields: Value) -> Value {
        let now = self.now_ms();
        let mut ev = json!({
            "event_id": self.ids.next_event(),
            "event_type": event_type,
            "ctime": now / 1000,
            "ctime_ms": now,
        });
        if let (Some(m), Value::Object(f)) = (ev.as_object_mut(), fields) {
            m.extend(f);
        }
        ev
    }
}

/// A request's dedupe scopes: its connection and, once logged in, its user (inline).
type Scopes = smallvec::SmallVec<[Scope; 2]>;

/// Where an answer is stored. A request that neither logged in nor out is stored under
/// its user alone: every later lookup from this connection while so logged in asks the
/// user scope too, and a retry after the login is gone is caught by
/// `Dedupe::seen_anywhere`. One entry instead of two halves the cache's inserts and
/// evictions (at its bound, every request evicts). Otherwise (login, register before
/// login, any request before login) every scope before and after.
fn store_scopes(before: Scopes, after: Scopes) -> Scopes {
    if before == after {
        if let Some(user) = after.iter().find(|s| matches!(s, Scope::User(_))) {
            return smallvec::smallvec![*user];
        }
        return after;
    }
    let mut scopes = before;
    for s in after {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    scopes
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use serde_json::json;

    pub const APP: &str = "testappkey0000000000000a";
    pub const SECRET: &str = "testsecret00000000000000";
    pub const APP2: &str = "otherappkey000000000000b";
    pub const T0: i64 = 1_800_000_000_000;

    pub struct Harness {
        pub b: Backend,
        pub clock: ManualClock,
        next_rid: u64,
    }

    impl Harness {
        pub fn new() -> Self {
            Self::with_config(Self::config())
        }

        /// The two test apps (APP first), no users or seeds.
        pub fn config() -> BackendConfig {
            let seeds = Seeds {
                apps: vec![
                    AppConfig {
                        appkey: APP.into(),
                        secret: SECRET.into(),
                        name: "t".into(),
                        cross_app: None,
                        max_users: None,
                    },
                    AppConfig {
                        appkey: APP2.into(),
                        secret: "s2".into(),
                        name: "t2".into(),
                        cross_app: Some(vec![]),
                        max_users: Some(1),
                    },
                ],
                ..Seeds::default()
            };
            BackendConfig {
                seeds,
                signature_ttl_ms: default_signature_ttl(),
                history: Default::default(),
            }
        }

        pub fn with_config(cfg: BackendConfig) -> Self {
            let clock = ManualClock::new(T0);
            Self {
                b: Backend::new(cfg, Arc::new(clock.clone())),
                clock,
                next_rid: 0,
            }
        }

        pub fn req(&mut self, conn: ConnId, event: &str, payload: Value) -> Outcome {
            self.next_rid += 1;
            let rid = self.next_rid;
            self.req_rid(conn, event, rid, payload)
        }

        pub fn req_rid(&mut self, conn: ConnId, event: &str, rid: u64, payload: Value) -> Outcome {
            let mut m = payload.as_object().cloned().unwrap_or_default();
            m.insert("rid".into(), json!(rid));
            let rid = Rid::from_payload(&m).expect("rid");
            let out = self.b.handle(conn, event, &rid, &mut m);
            assert!(self.b.online_index_holds(), "login index after {event}");
            out
        }

        pub fn init(&mut self, conn: ConnId, appkey: &str, secret: &str) -> Outcome {
            let ts = self.clock.now_ms().to_string();
            let rs = "0123456789abcdefghij";
            self.req(
                conn,
                "c_init",
                json!({"appkey": appkey, "random_str": rs, "timestamp": ts,
                "signature": signature(appkey, &ts, rs, secret), "flag": 0, "fromPlatForm": "j"}),
            )
        }

        /// init + login as the registered `name` on `conn` from `platform` (a second
        /// session beside the web one).
        pub fn login_on(&mut self, conn: ConnId, name: &str, platform: &str) {
            let body = json!({"username": name, "password": md5_hex("pw"), "platform": platform});
            self.init_then(conn, "login", body);
        }

        /// init + login as the registered `name` on `conn` with no platform (web).
        pub fn login_web(&mut self, conn: ConnId, name: &str) {
            let body = json!({"username": name, "password": md5_hex("pw")});
            self.init_then(conn, "login", body);
        }

        /// init + register `name` (password "pw") on `conn`, not logged in.
        pub fn register(&mut self, conn: ConnId, name: &str) {
            let body = json!({"username": name, "password": md5_hex("pw")});
            self.init_then(conn, "register", body);
        }

        /// init in APP, then `event` with `body`, which must succeed.
        fn init_then(&mut self, conn: ConnId, event: &str, body: Value) {
            self.init(conn, APP, SECRET);
            let o = self.req(conn, event, body);
            assert_eq!(o.code(), Some(0), "{o:?}");
        }

        /// init + register + login as `name` on `conn` (app APP).
        pub fn user(&mut self, conn: ConnId, name: &str) {
            self.user_in(conn, APP, SECRET, name);
        }

        /// init + register + login as `name` on `conn` in the app `appkey`.
        pub fn user_in(&mut self, conn: ConnId, appkey: &str, secret: &str, name: &str) {
            assert_eq!(self.init(conn, appkey, secret).code(), Some(0));
            let r = self.req(
                conn,
                "register",
                json!({"username": name, "password": md5_hex("pw")}),
            );
            assert!(matches!(r.code(), Some(0) | Some(898001)), "{r:?}");
            let l = self.req(
                conn,
                "login",
                json!({"username": name, "password": md5_hex("pw"), "version": "2.5.0"}),
            );
            assert_eq!(l.code(), Some(0), "{l:?}");
        }
    }

    /// The event_notification pushes of an outcome: (recipients, payload).
    pub fn events(o: &Outcome) -> Vec<(Vec<u64>, Value)> {
        o.pushes
            .iter()
            .filter(|p| p.event == "event_notification")
            .map(|p| (p.to.clone(), p.payload.clone()))
            .collect()
    }

    pub fn resp(o: &Outcome) -> &Map<String, Value> {
        o.response.as_ref().expect("a response")
    }

    /// A private group "g" in APP owned by `owner` with plain `members`; tests change
    /// the rest with struct update syntax.
    pub fn test_group(owner: &str, members: &[&str]) -> GroupSeed {
        GroupSeed {
            appkey: APP.into(),
            gid: None,
            name: "g".into(),
            desc: String::new(),
            owner: owner.into(),
            admins: vec![],
            members: members.iter().map(|m| m.to_string()).collect(),
            silenced: vec![],
            public: false,
            max_members: 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn seed_user(name: &str) -> UserSeed {
        UserSeed {
            appkey: APP.into(),
            username: name.into(),
            password: "pw".into(),
            password_md5: None,
            nickname: String::new(),
            signature: String::new(),
            gender: 0,
            region: String::new(),
            address: String::new(),
            birthday: String::new(),
            extras: Default::default(),
        }
    }

    #[test]
    fn seeds_with_an_empty_appkey_belong_to_the_first_app() {
        let mut cfg = Harness::config();
        cfg.seeds.users = vec![seed_user("sam"), seed_user("tina")];
        cfg.seeds.rooms = vec![RoomSeed {
            appkey: String::new(),
            id: Some(30_000_001),
            name: "seeded room".into(),
            description: String::new(),
            max_member_count: 10,
        }];
        cfg.seeds.groups = vec![GroupSeed {
            appkey: String::new(),
            gid: None,
            name: "seeded group".into(),
            desc: String::new(),
            owner: "sam".into(),
            admins: vec![],
            members: vec!["tina".into()],
            silenced: vec![],
            public: false,
            max_members: 10,
        }];
        cfg.seeds.friends = vec![FriendSeed {
            appkey: String::new(),
            users: ["sam".into(), "tina".into()],
        }];
        cfg.seeds.messages = vec![MessageSeed {
            appkey: String::new(),
            from: "sam".into(),
            to: Some("tina".into()),
            group: None,
            text: "hi".into(),
        }];
        let clock = ManualClock::new(T0);
        let built = Backend::try_new(cfg.clone(), Arc::new(clock));
        assert!(built.is_ok(), "{:?}", built.err());

        // The room is listed for users of the first app, by room_list and room_info.
        let mut h = Harness::with_config(cfg);
        h.user(1, "alice");
        let o = h.req(1, "room_list", json!({}));
        let r = &resp(&o)["result"];
        assert_eq!(r["total"], json!(1), "{r}");
        assert_eq!(r["rooms"][0]["id"], json!(30_000_001));
        assert_eq!(r["rooms"][0]["appkey"], json!(APP));
    }

    #[test]
    fn unknown_event_is_an_error_not_a_panic() {
        let mut h = Harness::new();
        let o = h.req(1, "no_such_event", json!({}));
        assert_eq!(o.code(), Some(880002));
    }

    #[test]
    fn requests_before_init_or_login_are_rejected() {
        let mut h = Harness::new();
        assert_eq!(
            h.req(1, "login", json!({"username": "a", "password": "x"}))
                .code(),
            Some(882004)
        );
        assert_eq!(
            h.req(1, "register", json!({"username": "a", "password": "x"}))
                .code(),
            Some(882004)
        );
        assert_eq!(
            h.req(1, "get_conversations", json!({})).code(),
            Some(882004)
        );
        h.init(1, APP, SECRET);
        assert_eq!(
            h.req(1, "get_conversations", json!({})).code(),
            Some(882004)
        );
    }

    #[test]
    fn event_notification_echo_is_ack_only() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let o = h.req(
            1,
            "event_notification",
            json!({"event_id": 1, "event_type": 1}),
        );
        assert_eq!(o, Outcome::default());
    }

    #[test]
    fn retried_rid_is_answered_from_cache_without_side_effects() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        let send = json!({"target_id": "bobby", "content": {"msg_type": "text", "msg_body": {"text": "hi"}, "target_id": "bobby", "from_id": "alice"}});
        let first = h.req_rid(1, "s_across_single_text", 77, send.clone());
        assert_eq!(first.code(), Some(0));
        assert_eq!(first.pushes.len(), 1);
        for _ in 0..4 {
            let again = h.req_rid(1, "s_across_single_text", 77, send.clone());
            assert_eq!(again.response, first.response);
            assert!(again.pushes.is_empty());
        }
        assert_eq!(h.b.message_count(), 1);
        // The same rid from alice's new connection after a reconnect + login hits too.
        h.b.disconnect(1);
        h.init(3, APP, SECRET);
        // Before login: an old retry is acked only.
        assert_eq!(
            h.req_rid(3, "s_across_single_text", 77, send.clone()),
            Outcome::default()
        );
        h.req(
            3,
            "login",
            json!({"username": "alice", "password": md5_hex("pw")}),
        );
        let after = h.req_rid(3, "s_across_single_text", 77, send);
        assert_eq!(after.response, first.response);
        assert_eq!(h.b.message_count(), 1);
    }

    #[test]
    fn login_retry_on_same_connection_is_not_already_logged_in() {
        let mut h = Harness::new();
        h.register(1, "alice");
        let l1 = h.req_rid(
            1,
            "login",
            500,
            json!({"username": "alice", "password": md5_hex("pw")}),
        );
        let l2 = h.req_rid(
            1,
            "login",
            500,
            json!({"username": "alice", "password": md5_hex("pw")}),
        );
        assert_eq!(l1.code(), Some(0));
        assert_eq!(l1.response, l2.response);
        // A new rid is a second login on the same connection.
        let l3 = h.req(
            1,
            "login",
            json!({"username": "alice", "password": md5_hex("pw")}),
        );
        assert_eq!(l3.code(), Some(880107));
    }

    #[test]
    fn dedupe_expires_after_five_minutes() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let o1 = h.req_rid(1, "get_conversations", 9, json!({}));
        h.clock.advance_ms(5 * 60 * 1000);
        let o2 = h.req_rid(1, "get_conversations", 9, json!({}));
        assert_eq!(o1.code(), Some(0));
        assert_eq!(o2.code(), Some(0));
        assert_eq!(h.b.dedupe.len(), 1); // re-executed and re-stored (under the user)
    }

    #[test]
    fn a_logged_in_request_is_stored_once_and_a_kicked_retry_is_ack_only() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let before = h.b.dedupe.len();
        let o = h.req_rid(1, "get_conversations", 9, json!({}));
        assert_eq!(o.code(), Some(0));
        assert_eq!(h.b.dedupe.len(), before + 1);
        // The same connection, then a new one of the same user, both hit.
        assert_eq!(h.req_rid(1, "get_conversations", 9, json!({})), o);
        h.login_web(2, "alice");
        assert_eq!(h.req_rid(2, "get_conversations", 9, json!({})), o);
        // Connection 1 was kicked by the second web login: its retry is acked, neither
        // failed nor executed.
        assert!(h.b.conn_user(1).is_none());
        let kicked = h.req_rid(1, "get_conversations", 9, json!({}));
        assert_eq!(kicked, Outcome::default());
    }

    #[test]
    fn every_login_event_is_refused_before_login_without_side_effects() {
        let mut h = Harness::new();
        h.user(1, "alice");
        assert_eq!(h.init(2, APP, SECRET).code(), Some(0));
        let payload = json!({"target_id": "alice", "target_name": "alice", "target_username": "alice",
            "gid": 1, "id": 1, "msg_id": 1, "sync_key": 1, "cmd": "x", "platform": "all",
            "member_usernames": [{"username": "alice"}], "group_name": "g",
            "content": {"msg_type": "text", "msg_body": {"text": "hi"}}});
        let mut checked = 0;
        for e in Event::ALL.iter().filter(|e| e.needs() == Needs::Login) {
            let o = h.req(2, e.wire(), payload.clone());
            if e.ack_only() {
                assert_eq!(o, Outcome::default(), "{} is ack-only", e.wire());
            } else {
                assert_eq!(o.code(), Some(882004), "{} before login", e.wire());
                assert!(o.pushes.is_empty(), "{} pushed before login", e.wire());
            }
            checked += 1;
        }
        assert!(checked > 50, "only {checked} events need a login");
        assert_eq!(h.b.message_count(), 0);
        assert!(h.b.groups.is_empty());
        assert!(h.b.conn_user(2).is_none());
    }

    #[test]
    fn event_notification_echo_is_acked_even_before_login_or_malformed() {
        let mut h = Harness::new();
        assert_eq!(h.init(1, APP, SECRET).code(), Some(0));
        // Before login the echo (a retry after a kick, protocol.md 1.7) is acked only.
        let o = h.req(
            1,
            "event_notification",
            json!({"event_id": 9, "event_type": 1}),
        );
        assert_eq!(o, Outcome::default());
        h.user(2, "alice");
        for bad in [
            json!({}),
            json!({"event_id": "x", "event_type": [1]}),
            json!({"event_id": 1, "event_type": 1, "from_uid": {"a": 1}, "gid": "no"}),
        ] {
            let o = h.req(2, "event_notification", bad.clone());
            assert_eq!(o, Outcome::default(), "{bad}");
        }
        // The session is still usable.
        assert_eq!(h.req(2, "get_conversations", json!({})).code(), Some(0));
    }
}
