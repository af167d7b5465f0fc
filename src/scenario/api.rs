//! The public API of the JMessage Web SDK V2 guide as scenario steps may name it:
//! every method with the argument names its guide section lists (the keys of the
//! first argument object), and every listener.
//!
//! This table is the one place the names live for `check`: `call`, `listen` and
//! `expect_listener` steps naming anything else are errors (with "did you mean"), not
//! UNIMPL at run time. A unit test below keeps the table and the method column of
//! `docs/api-coverage.md` equal, name for name.

use super::model::{Step, SETTLE_MAX_MS};
use serde_json::Value;

/// Every method of the guide and the argument names it documents.
// Deliberately repeated: a flat table read against the guide line by line; the message
// senders share argument lists, and naming those lists would hide what the guide says.
pub const METHODS: &[(&str, &[&str])] = &[
    (
        "init",
        &["appkey", "random_str", "timestamp", "signature", "flag"],
    ),
    (
        "register",
        &[
            "username",
            "password",
            "is_md5",
            "nickname",
            "birthday",
            "signature",
            "gender",
            "region",
            "address",
            "extras",
            "media_id",
        ],
    ),
    ("isConnect", &[]),
    ("isInit", &[]),
    ("isLogin", &[]),
    ("login", &["username", "password", "is_md5"]),
    ("loginOut", &[]),
    ("getUserInfo", &["username", "appkey"]),
    (
        "updateSelfInfo",
        &[
            "nickname",
            "birthday",
            "signature",
            "gender",
            "region",
            "address",
            "extras",
        ],
    ),
    ("updateSelfAvatar", &["avatar"]),
    ("updateSelfPwd", &["old_pwd", "new_pwd", "is_md5"]),
    ("getConversation", &[]),
    (
        "updateConversation",
        &["gid", "username", "appkey", "extras"],
    ),
    ("getUnreadMsgCnt", &["gid", "username", "appkey"]),
    ("resetUnreadCount", &["gid", "username", "appkey"]),
    ("msgUnreadList", &["msg_id"]),
    ("addSingleReceiptReport", &["username", "msg_ids", "appkey"]),
    ("addGroupReceiptReport", &["gid", "msg_ids"]),
    ("getResource", &["media_id"]),
    ("msgRetract", &["msg_id"]),
    (
        "sendSingleMsg",
        &[
            "target_username",
            "content",
            "msg_body",
            "target_nickname",
            "extras",
            "appkey",
            "no_offline",
            "no_notification",
            "custom_notification",
            "need_receipt",
        ],
    ),
    (
        "sendSinglePic",
        &[
            "target_username",
            "image",
            "msg_body",
            "target_nickname",
            "extras",
            "appkey",
            "no_offline",
            "no_notification",
            "custom_notification",
            "need_receipt",
        ],
    ),
    (
        "sendSingleFile",
        &[
            "target_username",
            "file",
            "msg_body",
            "target_nickname",
            "extras",
            "appkey",
            "no_offline",
            "no_notification",
            "custom_notification",
            "need_receipt",
        ],
    ),
    (
        "sendSingleLocation",
        &[
            "target_username",
            "latitude",
            "longitude",
            "scale",
            "label",
            "msg_body",
            "target_nickname",
            "extras",
            "appkey",
            "no_offline",
            "no_notification",
            "custom_notification",
            "need_receipt",
        ],
    ),
    (
        "sendSingleCustom",
        &[
            "target_username",
            "custom",
            "msg_body",
            "target_nickname",
            "appkey",
            "no_offline",
            "no_notification",
            "custom_notification",
            "need_receipt",
        ],
    ),
    (
        "sendGroupMsg",
        &[
            "target_gid",
            "content",
            "msg_body",
            "target_gname",
            "extras",
            "at_list",
            "no_offline",
            "no_notification",
            "custom_notification",
            "need_receipt",
        ],
    ),
    (
        "sendGroupPic",
        &[
            "target_gid",
            "image",
            "msg_body",
            "target_gname",
            "extras",
            "no_offline",
            "no_notification",
            "need_receipt",
        ],
    ),
    (
        "sendGroupFile",
        &[
            "target_gid",
            "file",
            "msg_body",
            "target_gname",
            "extras",
            "no_offline",
            "no_notification",
            "need_receipt",
        ],
    ),
    (
        "sendGroupLocation",
        &[
            "target_gid",
            "latitude",
            "longitude",
            "scale",
            "label",
            "msg_body",
            "target_gname",
            "extras",
            "no_offline",
            "no_notification",
            "need_receipt",
        ],
    ),
    (
        "sendGroupCustom",
        &[
            "target_gid",
            "custom",
            "msg_body",
            "target_gname",
            "no_offline",
            "no_notification",
            "need_receipt",
        ],
    ),
    (
        "transSingleMsg",
        &["target_username", "cmd", "target_appkey"],
    ),
    ("transGroupMsg", &["gid", "cmd"]),
    ("transPlatMsg", &["platform", "cmd"]),
    (
        "createGroup",
        &["group_name", "group_description", "avatar", "is_limit"],
    ),
    ("exitGroup", &["gid"]),
    ("addGroupMembers", &["gid", "member_usernames"]),
    ("delGroupMembers", &["gid", "member_usernames"]),
    ("getGroups", &[]),
    ("getGroupInfo", &["gid"]),
    (
        "updateGroupInfo",
        &["gid", "group_name", "group_description", "avatar"],
    ),
    ("getGroupMembers", &["gid"]),
    ("joinGroup", &["gid", "reason"]),
    (
        "addGroupMemberResp",
        &[
            "gid",
            "event_id",
            "from_username",
            "target_username",
            "result",
            "reason",
            "from_appkey",
            "target_appkey",
        ],
    ),
    (
        "addGroupMemSilence",
        &["gid", "target_username", "target_appkey"],
    ),
    (
        "delGroupMemSilence",
        &["gid", "target_username", "target_appkey"],
    ),
    ("addGroupKeeper", &["gid", "member_usernames"]),
    ("delGroupKeeper", &["gid", "member_usernames"]),
    (
        "changeGroupAdmin",
        &["gid", "target_username", "target_appkey"],
    ),
    ("dissolveGroup", &["gid"]),
    ("getAppkeyPublicGroups", &["start", "appkey"]),
    ("getAppkeyChatrooms", &["start", "appkey"]),
    ("getSelfChatrooms", &[]),
    ("getChatroomInfo", &["id"]),
    ("enterChatroom", &["id"]),
    ("exitChatroom", &["id"]),
    (
        "sendChatroomMsg",
        &[
            "target_rid",
            "content",
            "msg_body",
            "target_rname",
            "extras",
        ],
    ),
    (
        "sendChatroomPic",
        &["target_rid", "image", "msg_body", "target_rname", "extras"],
    ),
    (
        "sendChatroomFile",
        &["target_rid", "file", "msg_body", "target_rname", "extras"],
    ),
    (
        "sendChatroomLocation",
        &[
            "target_rid",
            "latitude",
            "longitude",
            "scale",
            "label",
            "msg_body",
            "target_rname",
            "extras",
        ],
    ),
    (
        "sendChatroomCustom",
        &["target_rid", "custom", "msg_body", "target_rname", "extras"],
    ),
    ("getNoDisturb", &[]),
    ("addSingleNoDisturb", &["target_name", "appkey"]),
    ("delSingleNoDisturb", &["target_name", "appkey"]),
    ("addGroupNoDisturb", &["gid"]),
    ("delGroupNoDisturb", &["gid"]),
    ("groupShieldList", &[]),
    ("addGroupShield", &["gid"]),
    ("delGroupShield", &["gid"]),
    ("addGlobalNoDisturb", &[]),
    ("delGlobalNoDisturb", &[]),
    ("getBlacks", &[]),
    ("addSingleBlacks", &["member_usernames"]),
    ("delSingleBlacks", &["member_usernames"]),
    ("getFriendList", &[]),
    ("addFriend", &["target_name", "why", "appkey"]),
    ("acceptFriend", &["target_name", "appkey"]),
    ("declineFriend", &["target_name", "why", "appkey"]),
    ("delFriend", &["target_name", "appkey"]),
    (
        "updateFriendMemo",
        &["target_name", "memo_name", "memo_others", "appkey"],
    ),
];

/// Every listener of the guide (each takes one callback).
pub const LISTENERS: &[&str] = &[
    "onDisconnect",
    "onMsgReceive",
    "onSyncConversation",
    "onUserInfUpdate",
    "onEventNotification",
    "onSyncEvent",
    "onMsgReceiptChange",
    "onSyncMsgReceipt",
    "onMutiUnreadMsgUpdate",
    "onTransMsgRec",
    "onRoomMsg",
];

/// The runner's placeholder for a signed `init` payload (see `resolve_auth`).
const AUTH: &str = "$auth";

/// The argument names of a guide method, `None` for a name the guide does not have.
pub fn method_args(method: &str) -> Option<&'static [&'static str]> {
    METHODS.iter().find(|(m, _)| *m == method).map(|(_, a)| *a)
}

/// Whether the guide has this listener.
pub fn is_listener(name: &str) -> bool {
    LISTENERS.contains(&name)
}

/// One wrong name in a step: the offending word (to locate it), the message, a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub word: String,
    pub message: String,
    pub hint: Option<String>,
}

/// The wrong API names (method, listener, argument) of one portable step, and a `settle`
/// longer than [`SETTLE_MAX_MS`].
pub fn check_step(step: &Step) -> Vec<Problem> {
    match step {
        Step::Call { method, args, .. } => check_call(method, args),
        Step::Listen { listener, .. } | Step::ExpectListener { listener, .. } => {
            check_listener(listener)
        }
        Step::Settle(st) if st.ms > SETTLE_MAX_MS => vec![Problem {
            word: "ms".into(),
            message: format!("settle: ms must be at most {SETTLE_MAX_MS}, not {}", st.ms),
            hint: Some("settle lets client timers run; split a longer wait".into()),
        }],
        _ => Vec::new(),
    }
}

fn check_listener(listener: &str) -> Vec<Problem> {
    if is_listener(listener) {
        return Vec::new();
    }
    let hint = if method_args(listener).is_some() {
        Some(format!("{listener} is a method: use a `call` step"))
    } else {
        super::suggest(listener, LISTENERS.iter().copied())
    };
    vec![Problem {
        word: listener.to_owned(),
        message: format!(
            "unknown listener {listener:?}: the Web SDK V2 guide has no such listener"
        ),
        hint,
    }]
}

fn check_call(method: &str, args: &[Value]) -> Vec<Problem> {
    let Some(known) = method_args(method) else {
        let hint = if is_listener(method) {
            Some(format!("{method} is a listener: use a `listen` step"))
        } else {
            super::suggest(method, METHODS.iter().map(|(m, _)| *m))
        };
        return vec![Problem {
            word: method.to_owned(),
            message: format!("unknown method {method:?}: the Web SDK V2 guide has no such method"),
            hint,
        }];
    };
    let Some(Value::Object(first)) = args.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in first {
        if key == AUTH && method == "init" {
            if let Value::Object(inner) = value {
                out.extend(inner.keys().filter_map(|k| check_arg(method, known, k)));
            }
        } else if let Some(p) = check_arg(method, known, key) {
            out.push(p);
        }
    }
    out
}

fn check_arg(method: &str, known: &[&str], key: &str) -> Option<Problem> {
    if known.contains(&key) {
        return None;
    }
    let hint = if known.is_empty() {
        Some(format!("{method} takes no arguments"))
    } else {
        super::suggest(key, known.iter().copied())
            .or_else(|| Some(format!("known: {}", known.join(", "))))
    };
    Some(Problem {
        word: key.to_owned(),
        message: format!("{method} has no argument {key:?} in the Web SDK V2 guide"),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The names in the first column of the Methods table of docs/api-coverage.md.
    fn documented() -> BTreeSet<String> {
        let doc = include_str!("../../docs/api-coverage.md");
        let table = doc
            .split("## Methods")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .unwrap_or_default();
        let mut names = BTreeSet::new();
        for row in table.lines().filter(|l| l.starts_with("| ")) {
            let cell = row.split('|').nth(1).unwrap_or_default();
            if cell.contains("(internal)") {
                continue;
            }
            for part in cell.split('`').skip(1).step_by(2) {
                names.insert(part.to_owned());
            }
        }
        names
    }

    #[test]
    fn the_table_and_the_coverage_document_name_the_same_api() {
        let ours: BTreeSet<String> = METHODS
            .iter()
            .map(|(m, _)| m.to_string())
            .chain(LISTENERS.iter().map(|l| l.to_string()))
            .collect();
        let doc = documented();
        assert!(doc.len() > 80, "{doc:?}");
        let missing: Vec<_> = doc.difference(&ours).collect();
        let extra: Vec<_> = ours.difference(&doc).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "in docs/api-coverage.md only: {missing:?}; in src/scenario/api.rs only: {extra:?}"
        );
    }

    fn call(method: &str, args: Value) -> Vec<Problem> {
        check_call(method, args.as_array().map(Vec::as_slice).unwrap_or(&[]))
    }

    #[test]
    fn misspelt_methods_listeners_and_arguments_get_suggestions() {
        let p = call("sendGroupMessage", serde_json::json!([]));
        assert_eq!(p[0].hint.as_deref(), Some("did you mean \"sendGroupMsg\"?"));
        let p = check_listener("onMsgRecieve");
        assert_eq!(p[0].hint.as_deref(), Some("did you mean \"onMsgReceive\"?"));
        let p = call(
            "sendSingleMsg",
            serde_json::json!([{"target_usrname": "b", "content": "x", "need_reciept": true}]),
        );
        let words: Vec<_> = p.iter().map(|p| p.word.as_str()).collect();
        assert_eq!(words, ["target_usrname", "need_reciept"]);
        assert_eq!(
            p[0].hint.as_deref(),
            Some("did you mean \"target_username\"?")
        );
        let p = call("init", serde_json::json!([{"$auth": {"flga": 0}}]));
        assert_eq!(p[0].hint.as_deref(), Some("did you mean \"flag\"?"));
        assert!(check_listener("sendSingleMsg")[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("is a method")));
        assert!(call("onMsgReceive", serde_json::json!([]))[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("is a listener")));
    }

    #[test]
    fn documented_names_pass() {
        assert!(call(
            "sendSingleMsg",
            serde_json::json!([{"target_username": "b", "content": "x"}])
        )
        .is_empty());
        assert!(call("init", serde_json::json!([{"$auth": {"flag": 0}}])).is_empty());
        assert!(call("getConversation", serde_json::json!([])).is_empty());
        assert!(check_listener("onMsgReceive").is_empty());
    }
}
