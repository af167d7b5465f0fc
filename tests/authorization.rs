//! The authorization matrix of docs/authorization.md, cell by cell, against the backend
//! directly: each row is one actor trying one event on one target, with the code it
//! must get (0 = allowed). Every cross-app rule is tried both ways: an app whose
//! `cross_app` lists the other app (allowed) and one whose list does not (refused with
//! the code a missing target gets).
//!
//! Apps: `closed` (`cross_app: []`), `opener` (`cross_app: [closed, open]`), `open` (no list:
//! every app); `opener` lists `open` too. Users: alice, amy (closed); bob (opener); cara
//! (open). Groups: public `gclosed` (alice owner, amy), `gopener` (bob owner), `gopen`
//! (cara owner); private `gpriv` (alice only).
//! Rooms: 501 (closed), 502 (opener).

use jmessage_mock::backend::media::MediaKind;
use jmessage_mock::backend::{
    md5_hex, signature, AppConfig, Backend, BackendConfig, GroupSeed, ManualClock, Outcome,
    RoomSeed, Seeds, UserKey, UserSeed,
};
use jmessage_mock::protocol::Rid;
use serde_json::{json, Value};
use std::sync::Arc;

const CLOSED: &str = "closedapp00000000000000a";
const OPENER: &str = "openerapp00000000000000b";
const OPEN: &str = "openapp0000000000000000c";
const T0: i64 = 1_800_000_000_000;
const G_CLOSED: u64 = 70_001;
const G_OPENER: u64 = 70_002;
const G_PRIV: u64 = 70_003;
const G_OPEN: u64 = 70_004;
const R_CLOSED: u64 = 501;
const R_OPENER: u64 = 502;

/// Users and their connection ids.
const USERS: &[(&str, &str, u64)] = &[
    ("alice", CLOSED, 1),
    ("amy", CLOSED, 2),
    ("bob", OPENER, 3),
    ("cara", OPEN, 4),
];

fn app(key: &str, cross: Option<Vec<&str>>) -> AppConfig {
    AppConfig {
        appkey: key.into(),
        secret: format!("secret-{key}"),
        name: key.into(),
        cross_app: cross.map(|l| l.into_iter().map(String::from).collect()),
        max_users: None,
    }
}

fn group(appkey: &str, gid: u64, owner: &str, members: &[&str], public: bool) -> GroupSeed {
    GroupSeed {
        appkey: appkey.into(),
        gid: Some(gid),
        name: format!("g{gid}"),
        desc: String::new(),
        owner: owner.into(),
        admins: vec![],
        members: members.iter().map(|m| m.to_string()).collect(),
        silenced: vec![],
        public,
        max_members: 100,
    }
}

fn room(appkey: &str, id: u64) -> RoomSeed {
    RoomSeed {
        appkey: appkey.into(),
        id: Some(id),
        name: format!("r{id}"),
        description: String::new(),
        max_member_count: 100,
    }
}

struct World {
    b: Backend,
    rid: u64,
}

impl World {
    fn new() -> Self {
        let seeds = Seeds {
            apps: vec![
                app(CLOSED, Some(vec![])),
                app(OPENER, Some(vec![CLOSED, OPEN])),
                app(OPEN, None),
            ],
            users: USERS
                .iter()
                .map(|(u, a, _)| UserSeed::new(a, u, "pw", &u.to_uppercase()))
                .collect(),
            groups: vec![
                group(CLOSED, G_CLOSED, "alice", &["amy"], true),
                group(OPENER, G_OPENER, "bob", &[], true),
                group(CLOSED, G_PRIV, "alice", &[], false),
                group(OPEN, G_OPEN, "cara", &[], true),
            ],
            rooms: vec![room(CLOSED, R_CLOSED), room(OPENER, R_OPENER)],
            ..Default::default()
        };
        let cfg = BackendConfig {
            seeds,
            signature_ttl_ms: 600_000,
            ..Default::default()
        };
        let b = Backend::try_new(cfg, Arc::new(ManualClock::new(T0))).expect("seeds");
        let mut w = World { b, rid: 0 };
        for (user, appkey, conn) in USERS {
            w.login(*conn, appkey, user);
        }
        w
    }

    fn req(&mut self, conn: u64, event: &str, payload: Value) -> Outcome {
        self.rid += 1;
        let mut m = payload.as_object().cloned().unwrap_or_default();
        m.insert("rid".into(), json!(self.rid));
        let rid = Rid::from_payload(&m).expect("rid");
        self.b.handle(conn, event, &rid, &mut m)
    }

    fn login(&mut self, conn: u64, appkey: &str, user: &str) {
        let ts = T0.to_string();
        let rs = "0123456789abcdefghij";
        let sig = signature(appkey, &ts, rs, &format!("secret-{appkey}"));
        let o = self.req(
            conn,
            "c_init",
            json!({"appkey": appkey, "random_str": rs, "timestamp": ts, "signature": sig}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
        let o = self.req(
            conn,
            "login",
            json!({"username": user, "password": md5_hex("pw"), "version": "2.6.0"}),
        );
        assert_eq!(o.code(), Some(0), "{o:?}");
    }

    fn conn(user: &str) -> u64 {
        USERS
            .iter()
            .find(|(u, _, _)| *u == user)
            .map(|(_, _, c)| *c)
            .expect("known user")
    }

    fn upload(&mut self, owner: &str, appkey: &str) -> String {
        let r = self
            .b
            .store_upload(
                UserKey::new(appkey, owner),
                MediaKind::File,
                b"<b>hello</b>".to_vec(),
                Some("text/html"),
                Some("x.html"),
            )
            .expect("stored");
        r["media_id"].as_str().expect("id").to_owned()
    }
}

fn text(target: &str, appkey: &str) -> Value {
    json!({"target_id": target, "appkey": appkey,
           "content": {"version": 1, "target_type": "single", "from_platform": "web",
                       "target_id": target, "from_id": "x", "create_time": 1,
                       "msg_type": "text", "msg_body": {"text": "hi"}}})
}

fn room_text(id: u64) -> Value {
    json!({"target_gid": id.to_string(),
           "content": {"version": 1, "target_type": "chatroom", "from_platform": "web",
                       "target_id": id.to_string(), "from_id": "x", "create_time": 1,
                       "msg_type": "text", "msg_body": {"text": "hi"}}})
}

/// One cell: `actor` sends `event` with `payload` and gets `code`.
struct Cell {
    name: &'static str,
    actor: &'static str,
    event: &'static str,
    payload: Value,
    code: i64,
}

fn cell(
    name: &'static str,
    actor: &'static str,
    event: &'static str,
    payload: Value,
    code: i64,
) -> Cell {
    Cell {
        name,
        actor,
        event,
        payload,
        code,
    }
}

/// The cross-app rows: for every event that names another app's user, group or room,
/// the allowed way (opener → closed, open → anyone, same app) and the refused way
/// (closed → opener).
fn cross_app_cells() -> Vec<Cell> {
    let user = |u: &str, a: &str| json!({"username": u, "appkey": a});
    vec![
        cell(
            "user info, same app",
            "alice",
            "get_across_user_info",
            user("amy", CLOSED),
            0,
        ),
        cell(
            "user info, listed app",
            "bob",
            "get_across_user_info",
            user("alice", CLOSED),
            0,
        ),
        cell(
            "user info, no list",
            "cara",
            "get_across_user_info",
            user("bob", OPENER),
            0,
        ),
        cell(
            "user info, unlisted app",
            "alice",
            "get_across_user_info",
            user("bob", OPENER),
            898002,
        ),
        cell(
            "single msg, listed app",
            "bob",
            "s_across_single_text",
            text("alice", CLOSED),
            0,
        ),
        cell(
            "single msg, unlisted app",
            "alice",
            "s_across_single_text",
            text("bob", OPENER),
            880203,
        ),
        cell(
            "trans msg, listed app",
            "bob",
            "trans_msg_single",
            json!({"target_username": "alice", "target_appkey": CLOSED, "cmd": "x"}),
            0,
        ),
        cell(
            "trans msg, unlisted app",
            "alice",
            "trans_msg_single",
            json!({"target_username": "bob", "target_appkey": OPENER, "cmd": "x"}),
            880203,
        ),
        cell(
            "add friend, listed app",
            "bob",
            "add_friend",
            json!({"target_name": "alice", "appkey": CLOSED, "why": "hi", "from_type": 1}),
            0,
        ),
        cell(
            "add friend, unlisted app",
            "alice",
            "add_friend",
            json!({"target_name": "bob", "appkey": OPENER, "why": "hi", "from_type": 1}),
            881301,
        ),
        cell(
            "blacklist, listed app",
            "bob",
            "add_black_list",
            json!({"member_usernames": [user("alice", CLOSED)]}),
            0,
        ),
        cell(
            "blacklist, unlisted app",
            "alice",
            "add_black_list",
            json!({"member_usernames": [user("bob", OPENER)]}),
            881002,
        ),
        cell(
            "no-disturb user, listed app",
            "bob",
            "add_msg_no_disturb_single",
            json!({"target_name": "alice", "appkey": CLOSED}),
            0,
        ),
        cell(
            "no-disturb user, unlisted app",
            "alice",
            "add_msg_no_disturb_single",
            json!({"target_name": "bob", "appkey": OPENER}),
            880203,
        ),
        cell(
            "unread count, listed app",
            "bob",
            "unread_single_count",
            json!({"type": 3, "username": "alice", "appkey": CLOSED}),
            0,
        ),
        cell(
            "unread count, unlisted app",
            "alice",
            "unread_single_count",
            json!({"type": 3, "username": "bob", "appkey": OPENER}),
            880203,
        ),
        cell(
            "receipt, listed app",
            "bob",
            "receipt_report",
            json!({"sessions": [{"type": 3, "username": "alice", "appkey": CLOSED, "msg_ids": [1]}]}),
            0,
        ),
        cell(
            "receipt, unlisted app",
            "alice",
            "receipt_report",
            json!({"sessions": [{"type": 3, "username": "bob", "appkey": OPENER, "msg_ids": [1]}]}),
            880203,
        ),
        cell(
            "group info, listed app",
            "bob",
            "get_group_info",
            json!({"gid": G_CLOSED}),
            0,
        ),
        cell(
            "group info, unlisted app",
            "alice",
            "get_group_info",
            json!({"gid": G_OPENER}),
            898006,
        ),
        cell(
            "group members, listed app",
            "bob",
            "get_group_members",
            json!({"gid": G_CLOSED}),
            0,
        ),
        cell(
            "group members, unlisted app",
            "alice",
            "get_group_members",
            json!({"gid": G_OPENER}),
            898006,
        ),
        // Joining needs both ways: the joiner's app reaches the group's, and the group's
        // app reaches the joiner's (members of a group must be reachable from its app).
        cell(
            "apply to join, both apps listed",
            "bob",
            "apply_join_group",
            json!({"gid": G_OPEN, "reason": "hi"}),
            0,
        ),
        cell(
            "apply to join, group app does not list joiner",
            "bob",
            "apply_join_group",
            json!({"gid": G_CLOSED, "reason": "hi"}),
            880604,
        ),
        cell(
            "apply to join, unlisted app",
            "alice",
            "apply_join_group",
            json!({"gid": G_OPENER, "reason": "hi"}),
            898006,
        ),
        cell(
            "room info, listed app",
            "bob",
            "room_info",
            json!({"id": R_CLOSED}),
            0,
        ),
        cell(
            "room info, unlisted app",
            "alice",
            "room_info",
            json!({"id": R_OPENER}),
            881503,
        ),
        cell(
            "join room, listed app",
            "bob",
            "join_room",
            json!({"id": R_CLOSED}),
            0,
        ),
        cell(
            "join room, unlisted app",
            "alice",
            "join_room",
            json!({"id": R_OPENER}),
            881503,
        ),
        cell(
            "room msg, listed app (joined above)",
            "bob",
            "send_room_msg",
            room_text(R_CLOSED),
            0,
        ),
        cell(
            "room msg, unlisted app",
            "alice",
            "send_room_msg",
            room_text(R_OPENER),
            881503,
        ),
    ]
}

/// Rows inside one app: what a user may do to another user's group, message. The
/// refusals come first; then the same actions by someone allowed (state carries over).
fn same_app_cells() -> Vec<Cell> {
    let group_text = |gid: u64| {
        json!({"target_gid": gid.to_string(),
               "content": {"msg_type": "text", "msg_body": {"text": "hi"}}})
    };
    let amy = || json!([{"username": "amy"}]);
    vec![
        cell(
            "private group info, non-member same app",
            "amy",
            "get_group_info",
            json!({"gid": G_PRIV}),
            0,
        ),
        cell(
            "add members, not a member",
            "amy",
            "add_across_group_member",
            json!({"gid": G_PRIV, "member_usernames": amy()}),
            880603,
        ),
        cell(
            "remove owner, plain member",
            "amy",
            "del_across_group_member",
            json!({"gid": G_CLOSED, "member_usernames": [{"username": "alice"}]}),
            880704,
        ),
        cell(
            "dissolve, not the owner",
            "amy",
            "dissolve_group",
            json!({"gid": G_CLOSED}),
            880604,
        ),
        cell(
            "send to a group, not a member",
            "amy",
            "send_group_msg",
            group_text(G_PRIV),
            880205,
        ),
        cell(
            "join a private group",
            "amy",
            "apply_join_group",
            json!({"gid": G_PRIV, "reason": "x"}),
            880604,
        ),
        cell(
            "room msg, not in the room",
            "amy",
            "send_room_msg",
            room_text(R_CLOSED),
            881501,
        ),
        // The same actions, allowed.
        cell(
            "add members, owner",
            "alice",
            "add_across_group_member",
            json!({"gid": G_PRIV, "member_usernames": amy()}),
            0,
        ),
        cell(
            "send to a group, member",
            "amy",
            "send_group_msg",
            group_text(G_PRIV),
            0,
        ),
        cell("join room", "amy", "join_room", json!({"id": R_CLOSED}), 0),
        cell(
            "room msg, in the room",
            "amy",
            "send_room_msg",
            room_text(R_CLOSED),
            0,
        ),
        cell(
            "remove a member, owner",
            "alice",
            "del_across_group_member",
            json!({"gid": G_CLOSED, "member_usernames": amy()}),
            0,
        ),
        cell(
            "join a public group",
            "amy",
            "apply_join_group",
            json!({"gid": G_CLOSED, "reason": "x"}),
            0,
        ),
        cell(
            "dissolve, owner",
            "alice",
            "dissolve_group",
            json!({"gid": G_PRIV}),
            0,
        ),
    ]
}

fn run(w: &mut World, cells: Vec<Cell>) -> Vec<String> {
    let mut wrong = Vec::new();
    for c in cells {
        let o = w.req(World::conn(c.actor), c.event, c.payload);
        if o.code() != Some(c.code) {
            wrong.push(format!(
                "{}: {} {} got {:?}, want {}",
                c.name, c.actor, c.event, o.response, c.code
            ));
        }
    }
    wrong
}

#[test]
fn cross_app_cells_allow_listed_apps_and_refuse_others_as_missing() {
    let mut w = World::new();
    let wrong = run(&mut w, cross_app_cells());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn same_app_cells_follow_membership_and_roles() {
    let mut w = World::new();
    let wrong = run(&mut w, same_app_cells());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn listings_of_an_unlisted_app_are_empty() {
    let mut w = World::new();
    for (actor, event, appkey, key, want) in [
        ("bob", "room_list", CLOSED, "rooms", 1),
        ("alice", "room_list", OPENER, "rooms", 0),
        ("bob", "public_group_list", CLOSED, "groups", 1),
        ("alice", "public_group_list", OPENER, "groups", 0),
    ] {
        let o = w.req(World::conn(actor), event, json!({"appkey": appkey}));
        assert_eq!(o.code(), Some(0), "{actor} {event}: {o:?}");
        let r = o.response.expect("response");
        let list = r
            .get("result")
            .and_then(|x| x.get(key))
            .or_else(|| r.get(key))
            .and_then(Value::as_array)
            .map(Vec::len);
        assert_eq!(list, Some(want), "{actor} {event} {appkey}: {r:?}");
    }
}

/// get_resource: owner, receivers (single, group member, room member present), avatar
/// readers, and everyone else (880005, like an unknown id).
#[test]
fn media_is_visible_to_owner_and_receivers_only() {
    let mut w = World::new();
    let private = w.upload("alice", CLOSED);
    let single = w.upload("alice", CLOSED);
    let grouped = w.upload("alice", CLOSED);
    let avatar = w.upload("alice", CLOSED);
    let media = |id: &str, target: Value| {
        let mut p = target;
        p["content"]["msg_type"] = json!("file");
        p["content"]["msg_body"] =
            json!({"media_id": id, "media_crc32": 1, "hash": "h", "fsize": 1, "fname": "x.html"});
        p
    };
    let sent = w.req(
        1,
        "s_across_single_text",
        media(&single, text("amy", CLOSED)),
    );
    assert_eq!(sent.code(), Some(0), "{sent:?}");
    let g = json!({"target_gid": G_CLOSED.to_string(), "content": {"msg_type": "text", "msg_body": {}}});
    let sent = w.req(1, "send_group_msg", media(&grouped, g));
    assert_eq!(sent.code(), Some(0), "{sent:?}");
    assert_eq!(
        w.req(1, "update_user_inf", json!({"avatar": avatar}))
            .code(),
        Some(0)
    );
    // A message carrying someone else's media grants nothing.
    let forged = w.req(
        3,
        "s_across_single_text",
        media(&private, text("alice", CLOSED)),
    );
    assert_eq!(forged.code(), Some(0), "{forged:?}");
    let cells = [
        ("alice", &private, 0),
        ("amy", &private, 880005),
        ("bob", &private, 880005),
        ("amy", &single, 0),
        ("bob", &single, 880005),
        ("amy", &grouped, 0),
        ("cara", &grouped, 880005),
        ("bob", &avatar, 0),
        ("cara", &avatar, 0),
    ];
    let mut wrong = Vec::new();
    for (who, id, want) in cells {
        let o = w.req(World::conn(who), "get_resource", json!({"media_id": id}));
        if o.code() != Some(want) {
            wrong.push(format!("{who} {id}: {:?}, want {want}", o.response));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A member who leaves the group loses its media.
    assert_eq!(
        w.req(2, "exit_group", json!({"gid": G_CLOSED})).code(),
        Some(0)
    );
    let o = w.req(2, "get_resource", json!({"media_id": grouped}));
    assert_eq!(o.code(), Some(880005));
    // Naming someone else's media as one's own avatar or a group's opens nothing.
    assert_eq!(
        w.req(2, "update_user_inf", json!({"avatar": private}))
            .code(),
        Some(0)
    );
    let g = json!({"group_name": "mine", "group_description": "", "media_id": private});
    assert_eq!(w.req(2, "create_group", g).code(), Some(0));
    assert_eq!(
        w.req(2, "get_resource", json!({"media_id": private}))
            .code(),
        Some(880005)
    );
    // Bob's avatar is out of reach for closed-app users.
    let bobs = w.upload("bob", OPENER);
    assert_eq!(
        w.req(3, "update_user_inf", json!({"avatar": bobs})).code(),
        Some(0)
    );
    assert_eq!(
        w.req(1, "get_resource", json!({"media_id": bobs})).code(),
        Some(880005)
    );
    assert_eq!(
        w.req(4, "get_resource", json!({"media_id": bobs})).code(),
        Some(0)
    );
}

/// Server-set fields: whatever the client claims, recipients see the sender's true
/// identity; an honest SDK request (no `from_name`) is delivered unchanged.
#[test]
fn server_set_fields_are_stamped_from_the_session() {
    let mut w = World::new();
    let mut forged = text("amy", CLOSED);
    forged["content"]["from_id"] = json!("amy");
    forged["content"]["from_name"] = json!("Someone Else");
    forged["content"]["from_appkey"] = json!(OPENER);
    forged["content"]["from_platform"] = json!("ios");
    forged["content"]["from_type"] = json!("admin");
    forged["msg_id"] = json!(1);
    forged["ctime_ms"] = json!(5);
    let o = w.req(1, "s_across_single_text", forged);
    assert_eq!(o.code(), Some(0), "{o:?}");
    let msg = &o.pushes[0].payload["messages"][0];
    let c = &msg["content"];
    assert_eq!(c["from_id"], json!("alice"));
    assert_eq!(c["from_name"], json!("ALICE"));
    assert_eq!(c["from_appkey"], json!(CLOSED));
    assert_eq!(c["from_platform"], json!("web"));
    assert_eq!(c["from_type"], json!("user"));
    assert_ne!(msg["msg_id"], json!(1));
    assert_eq!(msg["ctime_ms"], json!(T0));
    // The same in a group and a room.
    let g = json!({"target_gid": G_CLOSED.to_string(),
                   "content": {"msg_type": "text", "from_id": "amy", "from_name": "Amy!", "msg_body": {"text": "x"}}});
    let o = w.req(1, "send_group_msg", g);
    let c = &o.pushes[0].payload["messages"][0]["content"];
    assert_eq!(
        (&c["from_id"], &c["from_name"]),
        (&json!("alice"), &json!("ALICE"))
    );
    assert_eq!(
        w.req(1, "join_room", json!({"id": R_CLOSED})).code(),
        Some(0)
    );
    assert_eq!(
        w.req(2, "join_room", json!({"id": R_CLOSED})).code(),
        Some(0)
    );
    let mut r = room_text(R_CLOSED);
    r["content"]["from_name"] = json!("Amy!");
    let o = w.req(1, "send_room_msg", r);
    let c = &o.pushes[0].payload["content"];
    assert_eq!(
        (&c["from_id"], &c["from_name"]),
        (&json!("alice"), &json!("ALICE"))
    );
    // Honest SDK content has no from_name and gets none.
    let o = w.req(1, "s_across_single_text", text("amy", CLOSED));
    assert!(o.pushes[0].payload["messages"][0]["content"]
        .get("from_name")
        .is_none());
}

/// The event names of a first-column cell: `` `a`, `b` ``, with `add/delete_x` for
/// `add_x` and `delete_x`, and `sync_*_ack` for the three sync acks.
fn row_events(cell: &str) -> Vec<String> {
    let mut out = Vec::new();
    for name in cell.split('`').skip(1).step_by(2) {
        if name == "sync_*_ack" {
            for k in ["conversation", "event", "receipt"] {
                out.push(format!("sync_{k}_ack"));
            }
        } else if let Some((verbs, rest)) = name.split_once('_').filter(|(v, _)| v.contains('/')) {
            out.extend(verbs.split('/').map(|v| format!("{v}_{rest}")));
        } else {
            out.push(name.to_owned());
        }
    }
    out
}

/// docs/authorization.md has a row for every wire event.
#[test]
fn the_matrix_document_covers_every_event() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/authorization.md"
    ))
    .expect("docs/authorization.md");
    let documented: Vec<String> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| row_events(l.split(" | ").next().unwrap_or("")))
        .collect();
    let missing: Vec<&str> = jmessage_mock::protocol::Event::ALL
        .iter()
        .map(|e| e.wire())
        .filter(|w| !documented.iter().any(|d| d == w))
        .collect();
    assert!(missing.is_empty(), "events without a row: {missing:?}");
    assert_eq!(
        row_events("`add/del_msg_shield_group`, `sync_*_ack`"),
        [
            "add_msg_shield_group",
            "del_msg_shield_group",
            "sync_conversation_ack",
            "sync_event_ack",
            "sync_receipt_ack"
        ]
    );
}
