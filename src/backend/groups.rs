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
#[derive(Debug, Clone, PartialEq)]
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
                Value::Object(m) => Self::target_arg(&Args(m), me, "username", "appkey")
                    .map_err(|f| {
                        Failure::new(f.code, format!("member_usernames[{i}].{}", f.message))
                    })?,
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
        if let Some(u) = users.iter().find(|u| !self.app_reaches(&g.appkey, &u.appkey)) {
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
            Failure::new(not_member, format!("{me} is not a member of group {}", g.gid))
        })
    }

    pub(super) fn create_group(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let name = a.str("group_name")?;
        if name.len() > MAX_NAME_BYTES {
            return Err(Failure::new(
                Code::GroupNameTooLong,
                format!("group_name is {} bytes; the limit is {MAX_NAME_BYTES}", name.len()),
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
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
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
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
        let users = Self::member_usernames(&a, &me)?;
        if users.is_empty() {
            return Err(Failure::new(
                Code::AddMemberEmpty,
                "member_usernames is empty",
            ));
        }
        let g = self.group_by_id(gid)?;
        let role = Self::role_in(g, &me, Code::AddMemberNotInGroup)?;
        self.check_joinable(g, &users)?;
        let gref = GroupRef::of(g);
        let mut out = Outcome::ok_empty();
        if g.is_public() && role == Role::Member {
            // An ordinary member of a public group invites: the owner and admins decide.
            let managers = Self::managers_of(g);
            let ev = self.group_event(
                56,
                &gref,
                Some(&me),
                &users,
                json!({"extra": 10, "description": ""}),
            );
            let event_id = ev["event_id"].as_u64().unwrap_or_default();
            self.join_requests.insert(
                event_id,
                JoinRequest {
                    gid,
                    from: me.clone(),
                    targets: users.iter().cloned().collect(),
                    by_self: false,
                },
            );
            self.notify(&mut out, &managers, ev, None);
            return Ok(out);
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
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
        let users = Self::member_usernames(&a, &me)?;
        if users.is_empty() {
            return Err(Failure::new(Code::Missing, "member_usernames is empty"));
        }
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
        let mut out = Outcome::ok_empty();
        self.notify(&mut out, &before, ev, None);
        Ok(out)
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
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
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
            return Err(Failure::new(Code::InvalidValue, "group_name may not be empty"));
        }
        if let Some(n) = name.filter(|n| n.len() > MAX_NAME_BYTES) {
            return Err(Failure::new(
                Code::UpdateGroupNameTooLong,
                format!("group_name is {} bytes; the limit is {MAX_NAME_BYTES}", n.len()),
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
        let mut out = Outcome::ok_empty();
        self.notify(&mut out, &all, ev, None);
        Ok(out)
    }

    pub(super) fn get_group_members(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
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
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
        let target = Self::target_arg(&a, &me, "target_username", "target_appkey")?;
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
        let mut out = Outcome::ok_empty();
        self.notify(&mut out, &all, ev, None);
        Ok(out)
    }

    /// `add_group_keeper` (`add`) / `del_group_keeper`: owner only; event 80 extra 1 / 2.
    pub(super) fn group_keepers(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
        add: bool,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
        let users = Self::member_usernames(&a, &me)?;
        if users.is_empty() {
            return Err(Failure::new(Code::Missing, "member_usernames is empty"));
        }
        let g = self.group_by_id(gid)?;
        if Self::role_in(g, &me, Code::NotInGroup)? != Role::Owner {
            return Err(no_permission("only the owner may change admins"));
        }
        let mut changed = Vec::new();
        for u in &users {
            let m = g.members.get(u).ok_or_else(|| {
                Failure::new(Code::NotInGroup, format!("{u} is not a member of group {gid}"))
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
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
        let target = Self::target_arg(&a, &me, "target_username", "target_appkey")?;
        let g = self.group_by_id(gid)?;
        if Self::role_in(g, &me, Code::NotInGroup)? != Role::Owner {
            return Err(no_permission("only the owner may transfer the group"));
        }
        if target == me {
            return Err(Failure::new(Code::InvalidValue, "you already own this group"));
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
        let mut out = Outcome::ok_empty();
        self.notify(&mut out, &all, ev, None);
        Ok(out)
    }

    pub(super) fn dissolve_group(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
        let g = self.group_by_id(gid)?;
        if Self::role_in(g, &me, Code::NotInGroup)? != Role::Owner {
            return Err(no_permission("only the owner may dissolve the group"));
        }
        let gref = GroupRef::of(g);
        let all = Self::members_of(g);
        self.drop_group(gid);
        let ev = self.group_event(9, &gref, None, &all, json!({"extra": 69}));
        let mut out = Outcome::ok_empty();
        self.notify(&mut out, &all, ev, None);
        Ok(out)
    }

    pub(super) fn apply_join_group(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
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
        let ev = self.group_event(
            56,
            &gref,
            Some(&me),
            std::slice::from_ref(&me),
            json!({"extra": 59, "description": reason}),
        );
        let event_id = ev["event_id"].as_u64().unwrap_or_default();
        self.join_requests.insert(
            event_id,
            JoinRequest {
                gid,
                from: me.clone(),
                targets: [me].into_iter().collect(),
                by_self: true,
            },
        );
        let mut out = Outcome::ok_empty();
        self.notify(&mut out, &managers, ev, None);
        Ok(out)
    }

    pub(super) fn admin_add_group_member(
        &mut self,
        conn: ConnId,
        a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let gid = gid_arg(&a, "gid")?;
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
            let ev = self.group_event(10, &gref, Some(adder), std::slice::from_ref(&target), json!({}));
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
        let public: Vec<&Group> = self
            .groups
            .values()
            .filter(|g| g.is_public() && g.appkey == appkey)
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
