//! Group management (protocol.md 4.4, 7.3.1; guide "Group Management"): create, exit,
//! members, info, silence, admins ("keepers"), owner transfer, dissolve, public groups and
//! join requests. Group messages live in `group_chat.rs`.
//!
//! Every change sends the business event the guide lists (types 8-12, 56-58, 65, 80, 82)
//! through [`Backend::notify`], so offline members get it via `sync_event`. Choices the
//! protocol leaves open are listed in `docs/decisions-groups.md`.

use super::model::{Group, Member, Role, UserKey};
use super::{Backend, ConnId, Outcome};
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Group name limit in bytes (880404 / 880803).
pub const MAX_NAME_BYTES: usize = 64;
/// Group description limit in bytes (880405 / 880804).
pub const MAX_DESC_BYTES: usize = 250;
/// Members of a group created by `create_group` (880608 beyond it).
pub const DEFAULT_MAX_MEMBERS: usize = 500;
/// Groups one user may belong to (880403 on create, 880609 on add).
pub const MAX_GROUPS_PER_USER: usize = 500;
/// Groups per `public_group_list` page.
pub const PUBLIC_PAGE_SIZE: usize = 20;

/// A pending join request: an application to a public group (event 56, extra 59) or an
/// invitation by an ordinary member of a public group (event 56, extra 10), waiting for
/// `admin_add_group_member`. Keyed by the event id of the type-56 event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct JoinRequest {
    pub gid: u64,
    /// The applicant (by_self) or the inviter.
    pub from: UserKey,
    /// Users still waiting for a decision.
    pub targets: BTreeSet<UserKey>,
    pub by_self: bool,
}

/// What a group event needs to know about the group (it may be gone by then).
#[derive(Debug, Clone)]
struct GroupRef {
    gid: u64,
    name: String,
    avatar: String,
}

impl GroupRef {
    fn of(g: &Group) -> Self {
        Self {
            gid: g.gid,
            name: g.name.clone(),
            avatar: g.avatar.clone(),
        }
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A required gid (number or numeric string). Non-numeric: 898006.
pub(super) fn gid_arg(a: &Args<'_>, key: &str) -> Result<u64, Failure> {
    let s = a
        .opt_id(key)?
        .ok_or_else(|| Failure::new(Code::Missing, format!("{key} is required")))?;
    s.trim().parse::<u64>().map_err(|_| {
        Failure::new(
            Code::GroupIdInvalid,
            format!("{key} {s} is not a valid group id"),
        )
    })
}

/// `is_limit` (guide: "whether it is a public group") or `flag: 2` → public.
fn public_arg(a: &Args<'_>) -> Result<bool, Failure> {
    let limit = match a.get("is_limit") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|v| v != 0.0),
        Some(Value::String(s)) => matches!(s.trim(), "true" | "1" | "2"),
        Some(_) => {
            return Err(Failure::new(
                Code::InvalidType,
                "is_limit must be a boolean",
            ))
        }
    };
    let flag = a.opt_i64("flag")? == Some(2);
    Ok(limit || flag)
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Owner => "the owner",
        Role::Admin => "an admin",
        Role::Member => "a member",
    }
}

fn no_permission(detail: impl Into<String>) -> Failure {
    Failure::new(Code::AddMemberNoPermission, detail)
}

impl Backend {
    /// Event 56 (a join to decide) about `users` to the group's `managers`, with the
    /// request filed under the event's id for the answer.
    fn ask_managers(
        &mut self,
        gref: &GroupRef,
        managers: &[UserKey],
        users: &[UserKey],
        request: JoinRequest,
        extra: Value,
    ) -> Outcome {
        let ev = self.group_event(56, gref, Some(&request.from), users, extra);
        let event_id = ev["event_id"].as_u64().unwrap_or_default();
        self.join_requests.insert(event_id, request);
        self.ok_notifying(managers, ev)
    }

    /// The caller and the `gid` argument, in that order of checks (login first).
    fn me_and_gid(&self, conn: ConnId, a: &Args<'_>) -> Result<(UserKey, u64), Failure> {
        Ok((self.me(conn)?, gid_arg(a, "gid")?))
    }

    /// [`Self::me_and_gid`] and a non-empty `member_usernames` (`empty` when it is empty).
    fn me_gid_members(
        &self,
        conn: ConnId,
        a: &Args<'_>,
        empty: Code,
    ) -> Result<(UserKey, u64, Vec<UserKey>), Failure> {
        let (me, gid) = self.me_and_gid(conn, a)?;
        let users = Self::member_usernames(a, &me)?;
        if users.is_empty() {
            return Err(Failure::new(empty, "member_usernames is empty"));
        }
        Ok((me, gid, users))
    }

    /// [`Self::me_and_gid`] and the `target_username` / `target_appkey` user.
    fn me_gid_target(
        &self,
        conn: ConnId,
        a: &Args<'_>,
    ) -> Result<(UserKey, u64, UserKey), Failure> {
        let (me, gid) = self.me_and_gid(conn, a)?;
        let target = Self::target_arg(a, &me, "target_username", "target_appkey")?;
        Ok((me, gid, target))
    }

    /// A user's key from `<username>` / `<appkey>` fields (appkey defaults to `me`'s).
    fn target_arg(
        a: &Args<'_>,
        me: &UserKey,
        user_key: &str,
        app_key: &str,
    ) -> Result<UserKey, Failure> {
        let username = a.str(user_key)?;
        let appkey = a
            .opt_str(app_key)?
            .filter(|s| !s.is_empty())
            .unwrap_or(&me.appkey);
        Ok(UserKey::new(appkey, username))
    }

    /// `member_usernames: [{username, appkey?}]` (plain strings accepted), de-duplicated,
    /// in request order. Missing: 880001; not an array or a bad entry: 880004.
    fn member_usernames(a: &Args<'_>, me: &UserKey) -> Result<Vec<UserKey>, Failure> {
        let list = a
            .opt_array("member_usernames")?
            .ok_or_else(|| Failure::new(Code::Missing, "member_usernames is required"))?;
        let mut out: Vec<UserKey> = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let key = match v {
                Value::String(s) if !s.is_empty() => UserKey::new(me.appkey.clone(), s.clone()),
                Value::Object(m) => {
                    Self::target_arg(&Args(m), me, "username", "appkey").map_err(|f| {
                        Failure::new(f.code, format!("member_usernames[{i}].{}", f.message))
                    })?
                }
                _ => {
                    return Err(Failure::new(
                        Code::InvalidType,
                        format!("member_usernames[{i}] must be {{username, appkey?}}"),
                    ))
                }
            };
            if !out.contains(&key) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// An existing group (898006 otherwise).
    pub(super) fn group_by_id(&self, gid: u64) -> Result<&Group, Failure> {
        self.groups.get(&gid).ok_or_else(|| {
            Failure::new(Code::GroupIdInvalid, format!("group {gid} does not exist"))
        })
    }

    fn group_mut(&mut self, gid: u64) -> Result<&mut Group, Failure> {
        self.groups.get_mut(&gid).ok_or_else(|| {
            Failure::new(Code::GroupIdInvalid, format!("group {gid} does not exist"))
        })
    }

    /// How many groups a user belongs to.
    fn group_count(&self, user: &UserKey) -> usize {
        self.groups
            .values()
            .filter(|g| g.members.contains_key(user))
            .count()
    }

    /// Whether users of app `group_app` may have users of `user_app` in their groups (the
    /// app's `cross_app` list, as for single messages).
    fn app_reaches(&self, group_app: &str, user_app: &str) -> bool {
        group_app == user_app
            || self.apps.get(group_app).is_some_and(|a| {
                a.cross_app
                    .as_ref()
                    .is_none_or(|l| l.iter().any(|k| k == user_app))
            })
    }

    /// `{username, appkey, nickname}` as in `to_usernames`.
    pub(super) fn user_ref(&self, k: &UserKey) -> Value {
        json!({
            "username": k.username,
            "appkey": k.appkey,
            "nickname": self.users.get(k).map(|u| u.nickname.as_str()).unwrap_or(""),
        })
    }

    /// A group business event with the fields protocol.md 7.3.1 lists for its type:
    /// types 8-12 carry `gid`, the later ones `from_gid`; all but 12 carry `group_name`
    /// and `media_id` (the group avatar).
    fn group_event(
        &mut self,
        event_type: i64,
        g: &GroupRef,
        from: Option<&UserKey>,
        to: &[UserKey],
        more: Value,
    ) -> Value {
        let mut f = Map::new();
        if (8..=12).contains(&event_type) {
            f.insert("gid".into(), json!(g.gid));
        } else {
            f.insert("from_gid".into(), json!(g.gid));
        }
        if event_type != 12 {
            f.insert("group_name".into(), json!(g.name));
            f.insert("media_id".into(), json!(g.avatar));
        }
        f.insert(
            "from_username".into(),
            json!(from.map(|k| k.username.as_str()).unwrap_or("")),
        );
        f.insert(
            "from_appkey".into(),
            json!(from.map(|k| k.appkey.as_str()).unwrap_or("")),
        );
        f.insert(
            "to_usernames".into(),
            Value::Array(to.iter().map(|k| self.user_ref(k)).collect()),
        );
        f.extend(obj(more));
        self.new_event(event_type, Value::Object(f))
    }

    fn members_of(g: &Group) -> Vec<UserKey> {
        g.members.keys().cloned().collect()
    }

    fn managers_of(g: &Group) -> Vec<UserKey> {
        g.members
            .iter()
            .filter(|(_, m)| matches!(m.role, Role::Owner | Role::Admin))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Checks a batch of users may join `g`: they exist (880606), the group's app reaches
    /// theirs (880604), none is a member (880607), the group has room (880608) and none is
    /// in too many groups (880609).
    fn check_joinable(&self, g: &Group, users: &[UserKey]) -> Result<(), Failure> {
        let unknown: Vec<String> = users
            .iter()
            .filter(|u| !self.users.contains_key(u))
            .map(|u| u.to_string())
            .collect();
        if !unknown.is_empty() {
            return Err(Failure::new(
                Code::AddMemberSomeFailed,
                format!("unknown users: {}", unknown.join(", ")),
            ));
        }
        if let Some(u) = users
            .iter()
            .find(|u| !self.app_reaches(&g.appkey, &u.appkey))
        {
            return Err(no_permission(format!(
                "users of app {} may not join groups of app {}",
                u.appkey, g.appkey
            )));
        }
        if let Some(u) = users.iter().find(|u| g.members.contains_key(u)) {
            return Err(Failure::new(
                Code::AddMemberRepeated,
                format!("{u} is already a member of group {}", g.gid),
            ));
        }
        if g.members.len() + users.len() > g.max_members {
            return Err(Failure::new(
                Code::AddMemberLimit,
                format!("group {} allows at most {} members", g.gid, g.max_members),
            ));
        }
        if let Some(u) = users
            .iter()
            .find(|u| self.group_count(u) >= MAX_GROUPS_PER_USER)
        {
            return Err(Failure::new(
                Code::AddMemberGroupLimit,
                format!("{u} is already in {MAX_GROUPS_PER_USER} groups"),
            ));
        }
        Ok(())
    }

    /// Adds members (role Member) joined now.
    fn add_members(&mut self, gid: u64, users: &[UserKey]) {
        let now = self.now_ms();
        if let Some(g) = self.groups.get_mut(&gid) {
            for u in users {
                g.members.entry(u.clone()).or_insert(Member {
                    role: Role::Member,
                    silenced: false,
                    joined_ms: now,
                });
            }
        }
    }

    /// Removes a group and its pending join requests.
    fn drop_group(&mut self, gid: u64) {
        self.groups.remove(&gid);
        self.join_requests.retain(|_, r| r.gid != gid);
    }

    /// The caller's role, or `not_member` if they are not in the group.
    fn role_in(g: &Group, me: &UserKey, not_member: Code) -> Result<Role, Failure> {
        g.members.get(me).map(|m| m.role).ok_or_else(|| {
            Failure::new(
                not_member,
                format!("{me} is not a member of group {}", g.gid),
            )
        })
    }

    pub(super) fn create_group(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let name = a.str("group_name")?;
        if name.len() > MAX_NAME_BYTES {
            return Err(Failure::new(
                Code::GroupNameTooLong,
                format!(
                    "group_name is {} bytes; the limit is {MAX_NAME_BYTES}",
                    name.len()
                ),
            ));
        }
        let desc = a.opt_str("group_description")?.unwrap_or("");
        if desc.len() > MAX_DESC_BYTES {
            return Err(Failure::new(
                Code::GroupDescTooLong,
                format!(
                    "group_description is {} bytes; the limit is {MAX_DESC_BYTES}",
                    desc.len()
                ),
            ));
        }
        let avatar = a.opt_str("media_id")?.unwrap_or("").to_owned();
        let public = public_arg(&a)?;
        if self.group_count(&me) >= MAX_GROUPS_PER_USER {
            return Err(Failure::new(
                Code::GroupCountLimit,
                format!("{me} is already in {MAX_GROUPS_PER_USER} groups"),
            ));
        }
        let now = self.now_ms();
        let gid = self.ids.next_gid();
        let mut members = std::collections::BTreeMap::new();
        members.insert(
            me.clone(),
            Member {
                role: Role::Owner,
                silenced: false,
                joined_ms: now,
            },
        );
        let g = Group {
            gid,
            appkey: me.appkey.clone(),
            name: name.to_owned(),
            desc: desc.to_owned(),
            avatar,
            flag: if public { 2 } else { 1 },
            ctime_ms: now,
            mtime_ms: now,
            max_members: DEFAULT_MAX_MEMBERS,
            members,
        };
        let gref = GroupRef::of(&g);
        self.groups.insert(gid, g);
        let ev = self.group_event(8, &gref, Some(&me), std::slice::from_ref(&me), json!({}));
        let mut out = Outcome::ok(obj(json!({
            "gid": gid,
            "group_name": name,
            "group_description": desc,
        })));
        self.notify(&mut out, &[me], ev, None);
        Ok(out)
    }

    pub(super) fn exit_group(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let (me, gid) = self.me_and_gid(conn, &a)?;
        let g = self.group_by_id(gid)?;
        let role = Self::role_in(g, &me, Code::ExitNotInGroup)?;
        let before = Self::members_of(g);
        let gref = GroupRef::of(g);
        let g = self.group_mut(gid)?;
        g.members.remove(&me);
        let mut new_owner = None;
        if g.members.is_empty() {
            self.drop_group(gid);
        } else if role == Role::Owner {
            // The earliest-joined remaining member (key order breaks ties).
            let heir = g
                .members
                .iter()
                .min_by_key(|(_, m)| m.joined_ms)
                .map(|(k, _)| k.clone());
            if let Some(h) = heir {
                if let Some(m) = g.members.get_mut(&h) {
                    m.role = Role::Owner;
                }
                new_owner = Some(h);
            }
        }
        let mut more = Map::new();
        if let Some(h) = &new_owner {
            more.insert(
                "new_owner".into(),
                json!({"appkey": h.appkey, "username": h.username}),
            );
        }
        let ev = self.group_event(
            9,
            &gref,
            Some(&me),
            std::slice::from_ref(&me),
            Value::Object(more),
        );
        let mut out = Outcome::ok(obj(json!({"gid": gid, "group_name": gref.name})));
        self.notify(&mut out, &before, ev, None);
        Ok(out)
    }

    pub(super) fn add_group_members(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, gid, users) = self.me_gid_members(conn, &a, Code::AddMemberEmpty)?;
        let g = self.group_by_id(gid)?;
        let role = Self::role_in(g, &me, Code::AddMemberNotInGroup)?;
        self.check_joinable(g, &users)?;
        let gref = GroupRef::of(g);
        let mut out = Outcome::ok_empty();
        if g.is_public() && role == Role::Member {
            // An ordinary member of a public group invites: the owner and admins decide.
            let managers = Self::managers_of(g);
            let request = JoinRequest {
                gid,
                from: me.clone(),
                targets: users.iter().cloned().collect(),
                by_self: false,
            };
            let extra = json!({"extra": 10, "description": ""});
            return Ok(self.ask_managers(&gref, &managers, &users, request, extra));
        }
        self.add_members(gid, &users);
        let all = Self::members_of(self.group_by_id(gid)?);
        let ev = self.group_event(10, &gref, Some(&me), &users, json!({}));
        self.notify(&mut out, &all, ev, None);
        Ok(out)
    }

    pub(super) fn del_group_members(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, gid, users) = self.me_gid_members(conn, &a, Code::Missing)?;
        let g = self.group_by_id(gid)?;
        let role = Self::role_in(g, &me, Code::DelMemberNotInGroup)?;
        if role == Role::Member {
            return Err(Failure::new(
                Code::DelMemberNoPermission,
                "only the owner or an admin may remove members",
            ));
        }
        for u in &users {
            let Some(m) = g.members.get(u) else {
                return Err(Failure::new(
                    Code::DelMemberNotInGroup,
                    format!("{u} is not a member of group {gid}"),
                ));
            };
            match (m.role, role) {
                (Role::Owner, _) => {
                    return Err(Failure::new(
                        Code::DelMemberForbidden,
                        "the owner may not be removed",
                    ))
                }
                (Role::Admin, Role::Admin) => {
                    return Err(Failure::new(
                        Code::DelMemberNoPermission,
                        format!("an admin may not remove {}, who is an admin", u.username),
                    ))
                }
                _ => {}
            }
        }
        let before = Self::members_of(g);
        let gref = GroupRef::of(g);
        let g = self.group_mut(gid)?;
        for u in &users {
            g.members.remove(u);
        }
        let ev = self.group_event(11, &gref, Some(&me), &users, json!({}));
        Ok(self.ok_notifying(&before, ev))
    }

    pub(super) fn get_groups_list(&mut self, conn: ConnId) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let list: Vec<Value> = self
            .groups
            .values()
            .filter(|g| g.members.contains_key(&me))
            .map(Group::brief)
            .collect();
        Ok(Outcome::ok(obj(json!({ "group_list": list }))))
    }

    pub(super) fn get_group_info(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
        let info = self.group_by_id(gid)?.brief();
        Ok(Outcome::ok(obj(json!({ "group_info": info }))))
    }

    pub(super) fn update_group_info(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, gid) = self.me_and_gid(conn, &a)?;
        let name = a.opt_str("group_name")?;
        let desc = a.opt_str("group_description")?;
        let media = a.opt_str("media_id")?.filter(|s| !s.is_empty());
        if name.is_none() && desc.is_none() && media.is_none() {
            return Err(Failure::new(
                Code::Missing,
                "one of group_name, group_description, media_id is required",
            ));
        }
        if name == Some("") {
            return Err(Failure::new(
                Code::InvalidValue,
                "group_name may not be empty",
            ));
        }
        if let Some(n) = name.filter(|n| n.len() > MAX_NAME_BYTES) {
            return Err(Failure::new(
                Code::UpdateGroupNameTooLong,
                format!(
                    "group_name is {} bytes; the limit is {MAX_NAME_BYTES}",
                    n.len()
                ),
            ));
        }
        if let Some(d) = desc.filter(|d| d.len() > MAX_DESC_BYTES) {
            return Err(Failure::new(
                Code::UpdateGroupDescTooLong,
                format!(
                    "group_description is {} bytes; the limit is {MAX_DESC_BYTES}",
                    d.len()
                ),
            ));
        }
        let now = self.now_ms();
        let g = self.group_by_id(gid)?;
        Self::role_in(g, &me, Code::NotInGroup)?;
        let g = self.group_mut(gid)?;
        if let Some(n) = name {
            g.name = n.to_owned();
        }
        if let Some(d) = desc {
            g.desc = d.to_owned();
        }
        if let Some(m) = media {
            g.avatar = m.to_owned();
        }
        g.mtime_ms = now;
        let gref = GroupRef::of(g);
        let all = Self::members_of(g);
        let ev = self.group_event(12, &gref, Some(&me), std::slice::from_ref(&me), json!({}));
        Ok(self.ok_notifying(&all, ev))
    }

    pub(super) fn get_group_members(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, gid) = self.me_and_gid(conn, &a)?;
        let g = self.group_by_id(gid)?;
        if !g.members.contains_key(&me) && !g.is_public() {
            return Err(Failure::new(
                Code::NotInGroup,
                format!("{me} is not a member of private group {gid}"),
            ));
        }
        let mut members: Vec<(&UserKey, &Member)> = g.members.iter().collect();
        // Owner first, then admins, then members; each by join time.
        members.sort_by_key(|(_, m)| {
            let rank = match m.role {
                Role::Owner => 0,
                Role::Admin => 1,
                Role::Member => 2,
            };
            (rank, m.joined_ms)
        });
        let list: Vec<Value> = members
            .into_iter()
            .map(|(k, m)| {
                let u = self.users.get(k);
                json!({
                    "uid": u.map(|u| u.uid).unwrap_or_default(),
                    "mtime": u.map(|u| u.mtime_s * 1000).unwrap_or_default(),
                    "username": k.username,
                    "appkey": k.appkey,
                    "nickname": u.map(|u| u.nickname.as_str()).unwrap_or(""),
                    "avatar": u.map(|u| u.avatar.as_str()).unwrap_or(""),
                    "flag": m.role.flag(),
                    "keep_silence": m.silenced,
                })
            })
            .collect();
        Ok(Outcome::ok(obj(json!({ "member_list": list }))))
    }

    pub(super) fn group_mem_silence(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, gid, target) = self.me_gid_target(conn, &a)?;
        let keep = a
            .opt_bool("keep_silence")?
            .ok_or_else(|| Failure::new(Code::Missing, "keep_silence is required"))?;
        let g = self.group_by_id(gid)?;
        let role = Self::role_in(g, &me, Code::NotInGroup)?;
        if role == Role::Member {
            return Err(no_permission(
                "only the owner or an admin may silence members",
            ));
        }
        let t = g.members.get(&target).ok_or_else(|| {
            Failure::new(
                Code::NotInGroup,
                format!("{target} is not a member of group {gid}"),
            )
        })?;
        if t.role == Role::Owner || (t.role == Role::Admin && role != Role::Owner) {
            return Err(no_permission(format!(
                "{} may not silence {}",
                role_name(role),
                role_name(t.role)
            )));
        }
        if t.silenced == keep {
            return Ok(Outcome::ok_empty());
        }
        let gref = GroupRef::of(g);
        let all = Self::members_of(g);
        if let Some(m) = self.group_mut(gid)?.members.get_mut(&target) {
            m.silenced = keep;
        }
        let ev = self.group_event(
            65,
            &gref,
            Some(&me),
            &[target],
            json!({"extra": if keep { 1 } else { 2 }}),
        );
        Ok(self.ok_notifying(&all, ev))
    }

    /// `add_group_keeper` (`add`) / `del_group_keeper`: owner only; event 80 extra 1 / 2.
    pub(super) fn group_keepers(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
        add: bool,
    ) -> Result<Outcome, Failure> {
        let (me, gid, users) = self.me_gid_members(conn, &a, Code::Missing)?;
        let g = self.group_by_id(gid)?;
        if Self::role_in(g, &me, Code::NotInGroup)? != Role::Owner {
            return Err(no_permission("only the owner may change admins"));
        }
        let mut changed = Vec::new();
        for u in &users {
            let m = g.members.get(u).ok_or_else(|| {
                Failure::new(
                    Code::NotInGroup,
                    format!("{u} is not a member of group {gid}"),
                )
            })?;
            match (m.role, add) {
                (Role::Owner, _) => {
                    return Err(Failure::new(
                        Code::InvalidValue,
                        "the owner cannot be made or unmade an admin",
                    ))
                }
                (Role::Member, true) | (Role::Admin, false) => changed.push(u.clone()),
                _ => {}
            }
        }
        let mut out = Outcome::ok_empty();
        if changed.is_empty() {
            return Ok(out);
        }
        let gref = GroupRef::of(g);
        let all = Self::members_of(g);
        let g = self.group_mut(gid)?;
        for u in &changed {
            if let Some(m) = g.members.get_mut(u) {
                m.role = if add { Role::Admin } else { Role::Member };
            }
        }
        let ev = self.group_event(
            80,
            &gref,
            Some(&me),
            &changed,
            json!({"extra": if add { 1 } else { 2 }}),
        );
        self.notify(&mut out, &all, ev, None);
        Ok(out)
    }

    pub(super) fn change_group_admin(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, gid, target) = self.me_gid_target(conn, &a)?;
        let g = self.group_by_id(gid)?;
        if Self::role_in(g, &me, Code::NotInGroup)? != Role::Owner {
            return Err(no_permission("only the owner may transfer the group"));
        }
        if target == me {
            return Err(Failure::new(
                Code::InvalidValue,
                "you already own this group",
            ));
        }
        if !g.members.contains_key(&target) {
            return Err(Failure::new(
                Code::NotInGroup,
                format!("{target} is not a member of group {gid}"),
            ));
        }
        let gref = GroupRef::of(g);
        let all = Self::members_of(g);
        let g = self.group_mut(gid)?;
        if let Some(m) = g.members.get_mut(&me) {
            m.role = Role::Member;
        }
        if let Some(m) = g.members.get_mut(&target) {
            m.role = Role::Owner;
        }
        let ev = self.group_event(82, &gref, Some(&me), &[target], json!({}));
        Ok(self.ok_notifying(&all, ev))
    }

    pub(super) fn dissolve_group(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let (me, gid) = self.me_and_gid(conn, &a)?;
        let g = self.group_by_id(gid)?;
        if Self::role_in(g, &me, Code::NotInGroup)? != Role::Owner {
            return Err(no_permission("only the owner may dissolve the group"));
        }
        let gref = GroupRef::of(g);
        let all = Self::members_of(g);
        self.drop_group(gid);
        let ev = self.group_event(9, &gref, None, &all, json!({"extra": 69}));
        Ok(self.ok_notifying(&all, ev))
    }

    pub(super) fn apply_join_group(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, gid) = self.me_and_gid(conn, &a)?;
        let reason = a.opt_str("reason")?.unwrap_or("").to_owned();
        let g = self.group_by_id(gid)?;
        if !g.is_public() {
            return Err(no_permission(format!(
                "group {gid} is private: members must add you"
            )));
        }
        self.check_joinable(g, std::slice::from_ref(&me))?;
        let gref = GroupRef::of(g);
        let managers = Self::managers_of(g);
        let request = JoinRequest {
            gid,
            from: me.clone(),
            targets: [me.clone()].into_iter().collect(),
            by_self: true,
        };
        let extra = json!({"extra": 59, "description": reason});
        Ok(self.ask_managers(&gref, &managers, &[me], request, extra))
    }

    pub(super) fn admin_add_group_member(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let (me, gid) = self.me_and_gid(conn, &a)?;
        let event_id = a
            .opt_i64("event_id")?
            .ok_or_else(|| Failure::new(Code::Missing, "event_id is required"))?;
        let from = Self::target_arg(&a, &me, "from_username", "from_appkey")?;
        let target = Self::target_arg(&a, &me, "target_username", "target_appkey")?;
        let result = a
            .opt_i64("result")?
            .ok_or_else(|| Failure::new(Code::Missing, "result is required"))?;
        let reason = a.opt_str("reason")?.unwrap_or("").to_owned();
        let g = self.group_by_id(gid)?;
        if Self::role_in(g, &me, Code::NotInGroup)? == Role::Member {
            return Err(no_permission(
                "only the owner or an admin may answer join requests",
            ));
        }
        let key = u64::try_from(event_id).unwrap_or_default();
        let req = self
            .join_requests
            .get(&key)
            .filter(|r| r.gid == gid && r.from == from && r.targets.contains(&target))
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    Code::InvalidValue,
                    format!(
                        "no pending join request {event_id} from {from} for {target} in group {gid}"
                    ),
                )
            })?;
        let approve = result == 0;
        if approve {
            if let Err(f) = self.check_joinable(g, std::slice::from_ref(&target)) {
                if f.code == Code::AddMemberRepeated {
                    self.settle_request(key, &target);
                }
                return Err(f);
            }
        }
        let gref = GroupRef::of(g);
        let managers = Self::managers_of(g);
        self.settle_request(key, &target);
        let mut out = Outcome::ok_empty();
        if approve {
            self.add_members(gid, std::slice::from_ref(&target));
            let all = Self::members_of(self.group_by_id(gid)?);
            let adder = if req.by_self { &me } else { &req.from };
            let ev = self.group_event(
                10,
                &gref,
                Some(adder),
                std::slice::from_ref(&target),
                json!({}),
            );
            self.notify(&mut out, &all, ev, None);
        } else {
            let ev = self.group_event(
                57,
                &gref,
                Some(&me),
                std::slice::from_ref(&target),
                json!({"description": reason}),
            );
            self.notify(&mut out, std::slice::from_ref(&req.from), ev, None);
        }
        let ev = self.group_event(
            58,
            &gref,
            Some(&me),
            &[target],
            json!({"from_eventid": event_id, "description": if approve { "" } else { reason.as_str() }}),
        );
        self.notify(&mut out, &managers, ev, None);
        Ok(out)
    }

    /// A target of a join request has been decided.
    fn settle_request(&mut self, event_id: u64, target: &UserKey) {
        if let Some(r) = self.join_requests.get_mut(&event_id) {
            r.targets.remove(target);
            if r.targets.is_empty() {
                self.join_requests.remove(&event_id);
            }
        }
    }

    pub(super) fn public_group_list(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let start = a.opt_i64("start")?.unwrap_or(0);
        let start = usize::try_from(start)
            .map_err(|_| Failure::new(Code::InvalidValue, "start must be 0 or more"))?;
        let appkey = a
            .opt_str("appkey")?
            .filter(|s| !s.is_empty())
            .unwrap_or(&me.appkey);
        // Another app's groups only when cross_app lets this user's app reach it.
        let reachable = self.cross_app_allowed(&me.appkey, appkey);
        let public: Vec<&Group> = self
            .groups
            .values()
            .filter(|g| reachable && g.is_public() && g.appkey == appkey)
            .collect();
        let page: Vec<Value> = public
            .iter()
            .skip(start)
            .take(PUBLIC_PAGE_SIZE)
            .map(|g| g.brief())
            .collect();
        Ok(Outcome::ok(obj(json!({
            "result": {"total": public.len(), "start": start, "groups": page}
        }))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::md5_hex;
    use super::super::test_support::*;
    use super::super::{GroupSeed, Outcome, Push};
    use super::*;
    use rstest::rstest;

    /// alice(1), bobby(2), carol(3), dave(4), all in APP.
    fn four() -> Harness {
        let mut h = Harness::new();
        for (c, n) in [(1, "alice"), (2, "bobby"), (3, "carol"), (4, "dave")] {
            h.user(c, n);
        }
        h
    }

    fn seed(h: &mut Harness, owner: &str, admins: &[&str], members: &[&str], public: bool) -> u64 {
        h.b.seed_group(GroupSeed {
            admins: admins.iter().map(|s| s.to_string()).collect(),
            public,
            ..test_group(owner, members)
        })
        .expect("seed")
    }

    fn k(name: &str) -> UserKey {
        UserKey::new(APP, name)
    }

    fn names(list: &[&str]) -> Value {
        Value::Array(list.iter().map(|n| json!({"username": n})).collect())
    }

    /// The single event_notification push of `event_type` in an outcome.
    fn ev(o: &Outcome, event_type: i64) -> &Push {
        let found: Vec<&Push> = o
            .pushes
            .iter()
            .filter(|p| {
                p.event == "event_notification" && p.payload["event_type"] == json!(event_type)
            })
            .collect();
        assert_eq!(found.len(), 1, "one event {event_type} in {o:?}");
        found[0]
    }

    fn sorted(mut v: Vec<u64>) -> Vec<u64> {
        v.sort();
        v
    }

    fn role(h: &Harness, gid: u64, name: &str) -> Option<Role> {
        h.b.groups.get(&gid)?.members.get(&k(name)).map(|m| m.role)
    }

    fn user_names(v: &Value) -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u["username"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn create_group_answers_and_sends_event_8_to_the_creator() {
        let mut h = four();
        let o = h.req(
            1,
            "create_group",
            json!({"group_name": "team", "group_description": "d", "media_id": "qiniu/image/g"}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let r = resp(&o);
        let gid = r["gid"].as_u64().expect("gid");
        assert_eq!(r["group_name"], json!("team"));
        assert_eq!(r["group_description"], json!("d"));
        let p = ev(&o, 8);
        assert_eq!(p.to, vec![1]);
        let e = &p.payload;
        assert_eq!(e["gid"], json!(gid));
        assert_eq!(e["group_name"], json!("team"));
        assert_eq!(e["media_id"], json!("qiniu/image/g"));
        assert_eq!(e["from_username"], json!("alice"));
        assert_eq!(e["from_appkey"], json!(APP));
        assert_eq!(
            e["to_usernames"],
            json!([{"username": "alice", "appkey": APP, "nickname": ""}])
        );
        assert!(e["event_id"].as_u64().is_some());
        assert_eq!(e["ctime_ms"], json!(T0));
        let l = h.req(1, "get_groups_list", json!({}));
        let list = resp(&l)["group_list"].as_array().cloned().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["gid"], json!(gid));
        assert_eq!(list[0]["desc"], json!("d"));
        assert_eq!(list[0]["avatar"], json!("qiniu/image/g"));
        assert_eq!(list[0]["flag"], json!(1));
        assert_eq!(
            resp(&h.req(2, "get_groups_list", json!({})))["group_list"],
            json!([])
        );
        let i = h.req(2, "get_group_info", json!({"gid": gid.to_string()}));
        assert_eq!(resp(&i)["group_info"], list[0]);
    }

    #[rstest]
    #[case::missing_name(json!({}), 880001)]
    #[case::name_not_string(json!({"group_name": 5}), 880004)]
    #[case::name_too_long(json!({"group_name": "n".repeat(65)}), 880404)]
    #[case::multibyte_name_too_long(json!({"group_name": "群".repeat(22)}), 880404)]
    #[case::desc_too_long(json!({"group_name": "n", "group_description": "d".repeat(251)}), 880405)]
    #[case::bad_is_limit(json!({"group_name": "n", "is_limit": [1]}), 880004)]
    #[case::longest_ok(json!({"group_name": "n".repeat(64), "group_description": "d".repeat(250)}), 0)]
    fn create_group_validates(#[case] req: Value, #[case] code: i64) {
        let mut h = four();
        let o = h.req(1, "create_group", req);
        assert_eq!(o.code(), Some(code), "{o:?}");
        if code != 0 {
            assert!(o.pushes.is_empty());
            assert!(h.b.groups.is_empty());
        }
    }

    #[rstest]
    #[case::default(json!({}), 1)]
    #[case::limit_true(json!({"is_limit": true}), 2)]
    #[case::limit_false(json!({"is_limit": false}), 1)]
    #[case::limit_two(json!({"is_limit": 2}), 2)]
    #[case::flag_two(json!({"flag": 2}), 2)]
    fn is_limit_makes_a_public_group(#[case] extra: Value, #[case] flag: i64) {
        let mut h = four();
        let mut req = json!({"group_name": "g"});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap());
        let o = h.req(1, "create_group", req);
        let gid = resp(&o)["gid"].as_u64().unwrap();
        let i = h.req(1, "get_group_info", json!({"gid": gid}));
        assert_eq!(resp(&i)["group_info"]["flag"], json!(flag));
    }

    #[test]
    fn group_count_limit_applies_to_create_and_add() {
        let mut h = four();
        for i in 0..MAX_GROUPS_PER_USER {
            let o = h.req(1, "create_group", json!({"group_name": format!("g{i}")}));
            assert_eq!(o.code(), Some(0));
        }
        let o = h.req(1, "create_group", json!({"group_name": "one more"}));
        assert_eq!(o.code(), Some(880403));
        let gid = resp(&h.req(2, "create_group", json!({"group_name": "b"})))["gid"]
            .as_u64()
            .unwrap();
        let o = h.req(
            2,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": names(&["alice"])}),
        );
        assert_eq!(o.code(), Some(880609));
    }

    #[rstest]
    #[case::missing(json!({}), 880001)]
    #[case::not_numeric(json!({"gid": "abc"}), 898006)]
    #[case::unknown(json!({"gid": 999_999}), 898006)]
    #[case::wrong_type(json!({"gid": [1]}), 880004)]
    fn get_group_info_rejects_bad_gids(#[case] req: Value, #[case] code: i64) {
        let mut h = four();
        assert_eq!(h.req(1, "get_group_info", req).code(), Some(code));
    }

    #[test]
    fn owner_exit_hands_over_to_earliest_member_and_event_9_reaches_everyone() {
        let mut h = four();
        let gid = resp(&h.req(1, "create_group", json!({"group_name": "g"})))["gid"]
            .as_u64()
            .unwrap();
        h.clock.advance_ms(10);
        h.req(
            1,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": names(&["carol"])}),
        );
        h.clock.advance_ms(10);
        h.req(
            1,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": names(&["bobby"])}),
        );
        let o = h.req(1, "exit_group", json!({"gid": gid.to_string()}));
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(resp(&o)["gid"], json!(gid));
        assert_eq!(resp(&o)["group_name"], json!("g"));
        let p = ev(&o, 9);
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3]);
        assert_eq!(p.payload["from_username"], json!("alice"));
        assert_eq!(p.payload["gid"], json!(gid));
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["alice"]);
        assert_eq!(
            p.payload["new_owner"],
            json!({"appkey": APP, "username": "carol"})
        );
        assert_eq!(role(&h, gid, "carol"), Some(Role::Owner));
        assert_eq!(role(&h, gid, "alice"), None);
        // A member leaving: no new owner.
        let o = h.req(2, "exit_group", json!({"gid": gid}));
        let p = ev(&o, 9);
        assert_eq!(sorted(p.to.clone()), vec![2, 3]);
        assert!(p.payload.get("new_owner").is_none());
        // Not a member any more.
        assert_eq!(
            h.req(2, "exit_group", json!({"gid": gid})).code(),
            Some(880502)
        );
        // The last member leaving deletes the group.
        let o = h.req(3, "exit_group", json!({"gid": gid}));
        assert_eq!(ev(&o, 9).to, vec![3]);
        assert!(!h.b.groups.contains_key(&gid));
        assert_eq!(
            h.req(3, "exit_group", json!({"gid": gid})).code(),
            Some(898006)
        );
    }

    #[test]
    fn add_members_sends_event_10_to_all_including_new_ones() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &[], &["bobby"], false);
        // Any member of a private group may add.
        let o = h.req(
            2,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": [{"username": "carol"}, {"username": "dave", "appkey": APP}, {"username": "carol"}]}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 10);
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3, 4]);
        assert_eq!(p.payload["from_username"], json!("bobby"));
        assert_eq!(p.payload["gid"], json!(gid));
        assert_eq!(p.payload["group_name"], json!("g"));
        assert_eq!(p.payload["media_id"], json!(""));
        assert_eq!(
            user_names(&p.payload["to_usernames"]),
            vec!["carol", "dave"]
        );
        assert_eq!(role(&h, gid, "dave"), Some(Role::Member));
    }

    #[rstest]
    #[case::empty(1, json!([]), 880602)]
    #[case::missing_list(1, Value::Null, 880001)]
    #[case::bad_entry(1, json!([7]), 880004)]
    #[case::caller_not_member(3, names(&["dave"]), 880603)]
    #[case::unknown_user(1, names(&["dave", "nobody"]), 880606)]
    #[case::already_member(1, names(&["dave", "bobby"]), 880607)]
    #[case::member_limit(1, names(&["carol", "dave"]), 880608)]
    fn add_members_failures(#[case] conn: u64, #[case] list: Value, #[case] code: i64) {
        let mut h = four();
        let gid =
            h.b.seed_group(GroupSeed {
                max_members: 3,
                ..test_group("alice", &["bobby"])
            })
            .unwrap();
        let o = h.req(
            conn,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": list}),
        );
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert!(o.pushes.is_empty());
        assert_eq!(h.b.groups[&gid].members.len(), 2);
    }

    #[test]
    fn cross_app_members_follow_the_app_cross_app_list() {
        let mut h = four();
        h.user_in(5, APP2, "s2", "zed1");
        let gid = seed(&mut h, "alice", &[], &[], false);
        let o = h.req(
            1,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": [{"username": "zed1", "appkey": APP2}]}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        assert_eq!(sorted(ev(&o, 10).to.clone()), vec![1, 5]);
        let m = h.req(5, "get_group_members", json!({"gid": gid}));
        let list = resp(&m)["member_list"].as_array().cloned().unwrap();
        assert_eq!(list[1]["appkey"], json!(APP2));
        // APP2 may reach no other app: its groups cannot hold APP users.
        let g2 = resp(&h.req(5, "create_group", json!({"group_name": "z"})))["gid"]
            .as_u64()
            .unwrap();
        let o = h.req(
            5,
            "add_across_group_member",
            json!({"gid": g2, "member_usernames": [{"username": "alice", "appkey": APP}]}),
        );
        assert_eq!(o.code(), Some(880604));
    }

    #[test]
    fn del_members_sends_event_11_to_all_including_removed() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &["bobby"], &["carol", "dave"], false);
        let o = h.req(
            2,
            "del_across_group_member",
            json!({"gid": gid, "member_usernames": names(&["carol"])}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 11);
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3, 4]);
        assert_eq!(p.payload["from_username"], json!("bobby"));
        assert_eq!(p.payload["gid"], json!(gid));
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["carol"]);
        assert_eq!(role(&h, gid, "carol"), None);
    }

    #[rstest]
    #[case::caller_not_member(3, &["dave"], 880703)]
    #[case::target_not_member(1, &["carol"], 880703)]
    #[case::ordinary_member(4, &["bobby"], 880704)]
    #[case::admin_removes_admin(2, &["erin"], 880704)]
    #[case::owner_removed(2, &["alice"], 880705)]
    #[case::empty(1, &[], 880001)]
    fn del_members_failures(#[case] conn: u64, #[case] list: &[&str], #[case] code: i64) {
        let mut h = four();
        h.user(5, "erin");
        let gid = seed(&mut h, "alice", &["bobby", "erin"], &["dave"], false);
        let o = h.req(
            conn,
            "del_across_group_member",
            json!({"gid": gid, "member_usernames": names(list)}),
        );
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert_eq!(h.b.groups[&gid].members.len(), 4);
    }

    #[test]
    fn update_group_info_changes_fields_and_sends_event_12() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &[], &["bobby"], false);
        h.clock.advance_ms(5_000);
        let o = h.req(
            2,
            "update_group_info",
            json!({"gid": gid, "group_name": "new", "media_id": "qiniu/image/a"}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 12);
        assert_eq!(sorted(p.to.clone()), vec![1, 2]);
        assert_eq!(p.payload["gid"], json!(gid));
        assert_eq!(p.payload["from_username"], json!("bobby"));
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["bobby"]);
        assert!(p.payload.get("group_name").is_none());
        let i = h.req(1, "get_group_info", json!({"gid": gid}));
        let info = &resp(&i)["group_info"];
        assert_eq!(info["name"], json!("new"));
        assert_eq!(info["desc"], json!(""));
        assert_eq!(info["avatar"], json!("qiniu/image/a"));
        assert_eq!(info["mtime"], json!((T0 + 5_000) / 1000));
    }

    #[rstest]
    #[case::nothing(2, json!({}), 880001)]
    #[case::empty_name(2, json!({"group_name": ""}), 880003)]
    #[case::long_name(2, json!({"group_name": "x".repeat(65)}), 880803)]
    #[case::long_desc(2, json!({"group_description": "x".repeat(251)}), 880804)]
    #[case::not_member(3, json!({"group_name": "x"}), 880205)]
    fn update_group_info_failures(#[case] conn: u64, #[case] extra: Value, #[case] code: i64) {
        let mut h = four();
        let gid = seed(&mut h, "alice", &[], &["bobby"], false);
        let mut req = json!({"gid": gid});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap());
        let o = h.req(conn, "update_group_info", req);
        assert_eq!(o.code(), Some(code), "{o:?}");
        assert_eq!(h.b.groups[&gid].name, "g");
    }

    #[test]
    fn get_group_members_lists_roles_and_silence() {
        let mut h = four();
        h.req(3, "update_user_inf", json!({"nickname": "Caz"}));
        let gid =
            h.b.seed_group(GroupSeed {
                admins: vec!["bobby".into()],
                silenced: vec!["carol".into()],
                ..test_group("alice", &["carol"])
            })
            .unwrap();
        let o = h.req(3, "get_group_members", json!({"gid": gid}));
        assert_eq!(o.code(), Some(0), "{o:?}");
        let list = resp(&o)["member_list"].as_array().cloned().unwrap();
        assert_eq!(
            user_names(&Value::Array(list.clone())),
            vec!["alice", "bobby", "carol"]
        );
        let flags: Vec<_> = list.iter().map(|m| m["flag"].clone()).collect();
        assert_eq!(flags, vec![json!(1), json!(2), json!(0)]);
        assert_eq!(list[2]["keep_silence"], json!(true));
        assert_eq!(list[0]["keep_silence"], json!(false));
        let carol = h.b.user(&k("carol")).unwrap();
        assert_eq!(list[2]["uid"], json!(carol.uid));
        assert_eq!(list[2]["mtime"], json!(carol.mtime_s * 1000));
        assert_eq!(list[2]["appkey"], json!(APP));
        assert_eq!(list[2]["avatar"], json!(""));
        // Private groups: members only. Public groups: anyone.
        assert_eq!(
            h.req(4, "get_group_members", json!({"gid": gid})).code(),
            Some(880205)
        );
        let pub_gid = seed(&mut h, "alice", &[], &[], true);
        assert_eq!(
            h.req(4, "get_group_members", json!({"gid": pub_gid}))
                .code(),
            Some(0)
        );
    }

    #[test]
    fn silence_sends_event_65_and_blocks_group_messages() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &["bobby"], &["carol"], false);
        let text = json!({"target_gid": gid.to_string(), "content": {"msg_type": "text", "msg_body": {"text": "x"}}});
        let o = h.req(
            2,
            "group_mem_silence",
            json!({"gid": gid, "target_username": "carol", "keep_silence": true}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 65);
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3]);
        assert_eq!(p.payload["extra"], json!(1));
        assert_eq!(p.payload["from_gid"], json!(gid));
        assert_eq!(p.payload["from_username"], json!("bobby"));
        assert_eq!(p.payload["group_name"], json!("g"));
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["carol"]);
        assert!(p.payload.get("gid").is_none());
        assert_eq!(
            h.req(3, "send_group_msg", text.clone()).code(),
            Some(880212)
        );
        // Unchanged: no event.
        let again = h.req(1, "group_mem_silence", json!({"gid": gid, "target_username": "carol", "target_appkey": APP, "keep_silence": true}));
        assert_eq!(again.code(), Some(0));
        assert!(again.pushes.is_empty());
        let o = h.req(
            1,
            "group_mem_silence",
            json!({"gid": gid, "target_username": "carol", "keep_silence": false}),
        );
        assert_eq!(ev(&o, 65).payload["extra"], json!(2));
        assert_eq!(h.req(3, "send_group_msg", text).code(), Some(0));
    }

    #[rstest]
    #[case::member_caller(3, json!({"target_username": "dave", "keep_silence": true}), 880604)]
    #[case::non_member_caller(4, json!({"target_username": "carol", "keep_silence": true}), 880205)]
    #[case::target_not_member(1, json!({"target_username": "dave", "keep_silence": true}), 880205)]
    #[case::admin_silences_owner(2, json!({"target_username": "alice", "keep_silence": true}), 880604)]
    #[case::missing_flag(1, json!({"target_username": "carol"}), 880001)]
    #[case::missing_target(1, json!({"keep_silence": true}), 880001)]
    fn silence_failures(#[case] conn: u64, #[case] extra: Value, #[case] code: i64) {
        let mut h = four();
        let gid = seed(&mut h, "alice", &["bobby"], &["carol"], false);
        let mut req = json!({"gid": gid});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap());
        assert_eq!(h.req(conn, "group_mem_silence", req).code(), Some(code));
    }

    #[test]
    fn keepers_are_added_and_removed_by_the_owner_with_event_80() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &[], &["bobby", "carol"], false);
        let o = h.req(
            1,
            "add_group_keeper",
            json!({"gid": gid, "member_usernames": names(&["bobby", "carol"])}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 80);
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3]);
        assert_eq!(p.payload["extra"], json!(1));
        assert_eq!(p.payload["from_gid"], json!(gid));
        assert_eq!(
            user_names(&p.payload["to_usernames"]),
            vec!["bobby", "carol"]
        );
        assert_eq!(role(&h, gid, "carol"), Some(Role::Admin));
        let o = h.req(
            1,
            "del_group_keeper",
            json!({"gid": gid, "member_usernames": names(&["carol"])}),
        );
        let p = ev(&o, 80);
        assert_eq!(p.payload["extra"], json!(2));
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["carol"]);
        assert_eq!(role(&h, gid, "carol"), Some(Role::Member));
        assert_eq!(role(&h, gid, "bobby"), Some(Role::Admin));
    }

    #[rstest]
    #[case::admin_caller(2, "add_group_keeper", &["carol"], 880604)]
    #[case::non_member_caller(4, "add_group_keeper", &["carol"], 880205)]
    #[case::target_not_member(1, "add_group_keeper", &["dave"], 880205)]
    #[case::owner_target(1, "del_group_keeper", &["alice"], 880003)]
    #[case::empty(1, "add_group_keeper", &[], 880001)]
    fn keeper_failures(
        #[case] conn: u64,
        #[case] event: &str,
        #[case] list: &[&str],
        #[case] code: i64,
    ) {
        let mut h = four();
        let gid = seed(&mut h, "alice", &["bobby"], &["carol"], false);
        let o = h.req(
            conn,
            event,
            json!({"gid": gid, "member_usernames": names(list)}),
        );
        assert_eq!(o.code(), Some(code), "{o:?}");
    }

    #[test]
    fn change_group_admin_transfers_ownership_with_event_82() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &[], &["bobby", "carol"], false);
        assert_eq!(
            h.req(
                2,
                "change_group_admin",
                json!({"gid": gid, "target_username": "carol"})
            )
            .code(),
            Some(880604)
        );
        assert_eq!(
            h.req(
                1,
                "change_group_admin",
                json!({"gid": gid, "target_username": "dave"})
            )
            .code(),
            Some(880205)
        );
        assert_eq!(
            h.req(
                1,
                "change_group_admin",
                json!({"gid": gid, "target_username": "alice"})
            )
            .code(),
            Some(880003)
        );
        let o = h.req(
            1,
            "change_group_admin",
            json!({"gid": gid, "target_username": "bobby", "target_appkey": APP}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 82);
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3]);
        assert_eq!(p.payload["from_username"], json!("alice"));
        assert_eq!(p.payload["from_gid"], json!(gid));
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["bobby"]);
        assert_eq!(role(&h, gid, "bobby"), Some(Role::Owner));
        assert_eq!(role(&h, gid, "alice"), Some(Role::Member));
    }

    #[test]
    fn dissolve_group_sends_event_9_extra_69_and_removes_the_group() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &["bobby"], &["carol"], false);
        assert_eq!(
            h.req(2, "dissolve_group", json!({"gid": gid})).code(),
            Some(880604)
        );
        assert_eq!(
            h.req(4, "dissolve_group", json!({"gid": gid})).code(),
            Some(880205)
        );
        let o = h.req(1, "dissolve_group", json!({"gid": gid}));
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 9);
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3]);
        assert_eq!(p.payload["extra"], json!(69));
        assert_eq!(p.payload["from_username"], json!(""));
        assert_eq!(p.payload["from_appkey"], json!(""));
        assert_eq!(p.payload["gid"], json!(gid));
        assert_eq!(user_names(&p.payload["to_usernames"]).len(), 3);
        assert_eq!(
            h.req(1, "get_group_info", json!({"gid": gid})).code(),
            Some(898006)
        );
        assert_eq!(
            resp(&h.req(2, "get_groups_list", json!({})))["group_list"],
            json!([])
        );
    }

    #[test]
    fn apply_join_group_then_approve() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &["bobby"], &["carol"], true);
        let o = h.req(
            4,
            "apply_join_group",
            json!({"gid": gid, "reason": "let me in"}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 56);
        assert_eq!(sorted(p.to.clone()), vec![1, 2], "owner and admins");
        assert_eq!(p.payload["extra"], json!(59));
        assert_eq!(p.payload["from_gid"], json!(gid));
        assert_eq!(p.payload["from_username"], json!("dave"));
        assert_eq!(p.payload["description"], json!("let me in"));
        assert_eq!(p.payload["group_name"], json!("g"));
        let event_id = p.payload["event_id"].as_u64().unwrap();
        let answer = json!({"gid": gid, "event_id": event_id, "from_username": "dave", "target_username": "dave", "result": 0});
        // Ordinary members may not answer.
        assert_eq!(
            h.req(3, "admin_add_group_member", answer.clone()).code(),
            Some(880604)
        );
        let o = h.req(2, "admin_add_group_member", answer.clone());
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 10);
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3, 4]);
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["dave"]);
        assert_eq!(p.payload["from_username"], json!("bobby"));
        let p = ev(&o, 58);
        assert_eq!(sorted(p.to.clone()), vec![1, 2]);
        assert_eq!(p.payload["from_eventid"], json!(event_id));
        assert_eq!(p.payload["from_gid"], json!(gid));
        assert_eq!(role(&h, gid, "dave"), Some(Role::Member));
        // The request is settled.
        assert_eq!(
            h.req(1, "admin_add_group_member", answer).code(),
            Some(880003)
        );
        // Members cannot apply again.
        assert_eq!(
            h.req(4, "apply_join_group", json!({"gid": gid})).code(),
            Some(880607)
        );
    }

    #[test]
    fn refused_application_sends_event_57_to_the_applicant() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &["bobby"], &[], true);
        let o = h.req(4, "apply_join_group", json!({"gid": gid}));
        let event_id = ev(&o, 56).payload["event_id"].as_u64().unwrap();
        let o = h.req(1, "admin_add_group_member", json!({"gid": gid, "event_id": event_id.to_string(), "from_username": "dave", "from_appkey": APP, "target_username": "dave", "target_appkey": APP, "result": 2, "reason": "no"}));
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 57);
        assert_eq!(p.to, vec![4]);
        assert_eq!(p.payload["description"], json!("no"));
        assert_eq!(p.payload["from_username"], json!("alice"));
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["dave"]);
        let p = ev(&o, 58);
        assert_eq!(sorted(p.to.clone()), vec![1, 2]);
        assert_eq!(p.payload["description"], json!("no"));
        assert!(o
            .pushes
            .iter()
            .all(|p| p.payload["event_type"] != json!(10)));
        assert_eq!(role(&h, gid, "dave"), None);
    }

    #[rstest]
    #[case::private_group(false, json!({}), 880604)]
    #[case::unknown_group(true, json!({"gid": 424242}), 898006)]
    #[case::reason_type(true, json!({"reason": 1}), 880004)]
    fn apply_join_group_failures(#[case] public: bool, #[case] extra: Value, #[case] code: i64) {
        let mut h = four();
        let gid = seed(&mut h, "alice", &[], &[], public);
        let mut req = json!({"gid": gid});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap());
        assert_eq!(h.req(4, "apply_join_group", req).code(), Some(code));
    }

    #[test]
    fn member_invitation_into_a_public_group_needs_approval() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &["bobby"], &["carol"], true);
        let o = h.req(
            3,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": names(&["dave"])}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 56);
        assert_eq!(sorted(p.to.clone()), vec![1, 2]);
        assert_eq!(p.payload["extra"], json!(10));
        assert_eq!(p.payload["from_username"], json!("carol"));
        assert_eq!(user_names(&p.payload["to_usernames"]), vec!["dave"]);
        assert_eq!(role(&h, gid, "dave"), None);
        let event_id = p.payload["event_id"].as_u64().unwrap();
        // Wrong inviter: no such request.
        let bad = json!({"gid": gid, "event_id": event_id, "from_username": "alice", "target_username": "dave", "result": 0});
        assert_eq!(h.req(1, "admin_add_group_member", bad).code(), Some(880003));
        let o = h.req(1, "admin_add_group_member", json!({"gid": gid, "event_id": event_id, "from_username": "carol", "target_username": "dave", "result": 0}));
        assert_eq!(o.code(), Some(0), "{o:?}");
        let p = ev(&o, 10);
        assert_eq!(p.payload["from_username"], json!("carol"));
        assert_eq!(sorted(p.to.clone()), vec![1, 2, 3, 4]);
        // The owner adds directly.
        h.user(5, "erin");
        let o = h.req(
            1,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": names(&["erin"])}),
        );
        assert_eq!(ev(&o, 10).payload["from_username"], json!("alice"));
    }

    #[test]
    fn public_group_list_pages_by_twenty() {
        let mut h = four();
        for i in 0..25 {
            let o = h.req(
                1,
                "create_group",
                json!({"group_name": format!("p{i}"), "is_limit": true}),
            );
            assert_eq!(o.code(), Some(0));
        }
        h.req(1, "create_group", json!({"group_name": "private"}));
        let o = h.req(2, "public_group_list", json!({"start": 0}));
        let r = &resp(&o)["result"];
        assert_eq!(r["total"], json!(25));
        assert_eq!(r["start"], json!(0));
        assert_eq!(r["groups"].as_array().unwrap().len(), PUBLIC_PAGE_SIZE);
        assert_eq!(r["groups"][0]["flag"], json!(2));
        assert_eq!(r["groups"][0]["name"], json!("p0"));
        let o = h.req(
            2,
            "public_group_list",
            json!({"start": "20", "appkey": APP}),
        );
        let r = &resp(&o)["result"];
        assert_eq!(r["groups"].as_array().unwrap().len(), 5);
        assert_eq!(r["groups"][0]["name"], json!("p20"));
        let o = h.req(2, "public_group_list", json!({"start": 0, "appkey": APP2}));
        assert_eq!(resp(&o)["result"]["total"], json!(0));
        assert_eq!(
            h.req(2, "public_group_list", json!({"start": -1})).code(),
            Some(880003)
        );
        assert_eq!(
            h.req(2, "public_group_list", json!({"start": "x"})).code(),
            Some(880004)
        );
    }

    #[test]
    fn offline_members_get_group_events_through_sync_event() {
        let mut h = four();
        let gid = seed(&mut h, "alice", &[], &["bobby"], false);
        h.b.disconnect(2);
        let o = h.req(
            1,
            "add_across_group_member",
            json!({"gid": gid, "member_usernames": names(&["carol"])}),
        );
        assert_eq!(sorted(ev(&o, 10).to.clone()), vec![1, 3]);
        h.init(6, APP, SECRET);
        h.req(
            6,
            "login",
            json!({"username": "bobby", "password": md5_hex("pw")}),
        );
        let o = h.req(6, "sync_check", json!({"sync_key": 0, "sync_event_key": 0}));
        let p = o
            .pushes
            .iter()
            .find(|p| p.event == "sync_event")
            .expect("sync_event");
        assert_eq!(p.payload["events"][0]["event_type"], json!(10));
        assert_eq!(p.payload["events"][0]["gid"], json!(gid));
    }
}
