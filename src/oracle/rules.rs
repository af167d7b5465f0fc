//! The rule catalogue (docs/rules.md) and the table of fields each inbound event carries,
//! as the official Web SDK builds (2.4.0, 2.5.0, 2.6.0) send them. The table was read off
//! the committed transcripts of those builds (`scenarios/conformance/*/snapshots/
//! jmessage-web-*`); `tests/oracle.rs` replays every one of them through the oracle and
//! asserts that none breaks a rule graded FAIL.

/// How a broken rule grades a conformance case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// No official build breaks it: the case fails.
    Fail,
    /// Some official build breaks it (see [`Rule::official`]): the case is NON-STRICT.
    NonStrict,
    /// Advice: listed, never lowers the verdict.
    Info,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Fail => "fail",
            Severity::NonStrict => "non-strict",
            Severity::Info => "info",
        }
    }
}

/// One protocol rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id, cited by the journal, transcripts and docs/rules.md.
    pub id: &'static str,
    pub severity: Severity,
    /// What the rule asks, in one line.
    pub summary: &'static str,
    /// Whether it measures client time (graded INFO for drivers with fake timers, whose
    /// clock the server cannot see).
    pub timer: bool,
    /// Official builds that break it, with the snapshot that shows it.
    pub official: &'static [(&'static str, &'static str)],
}

pub const FIELD_MISSING: &str = "JMP-FIELD-001";
pub const FIELD_TYPE: &str = "JMP-FIELD-002";
pub const FIELD_UNKNOWN: &str = "JMP-FIELD-003";
pub const ORDER_INIT: &str = "JMP-ORDER-001";
pub const ORDER_LOGIN: &str = "JMP-ORDER-002";
pub const RID_REUSED: &str = "JMP-RID-001";
pub const RID_CHANGED: &str = "JMP-RID-002";
pub const RID_TOO_MANY: &str = "JMP-RID-003";
pub const TIME_RESEND_FAST: &str = "JMP-TIME-001";
pub const TIME_RESEND_SLOW: &str = "JMP-TIME-002";
pub const SYNC_MSG_RECV: &str = "JMP-SYNC-001";
pub const SYNC_MSG_UNKNOWN: &str = "JMP-SYNC-002";
pub const SYNC_ACK: &str = "JMP-SYNC-003";
pub const SYNC_KEY: &str = "JMP-SYNC-004";
pub const SYNC_OWED: &str = "JMP-SYNC-005";
pub const MSG_CONTENT: &str = "JMP-MSG-001";
pub const EVENT_ECHO: &str = "JMP-EVENT-001";
pub const EVENT_ECHO_UNKNOWN: &str = "JMP-EVENT-002";

/// Every rule.
pub const RULES: &[Rule] = &[
    Rule {
        id: FIELD_MISSING,
        severity: Severity::Fail,
        summary: "a request carries every field the official SDK always sends for its event",
        timer: false,
        official: &[],
    },
    Rule {
        id: FIELD_TYPE,
        severity: Severity::Fail,
        summary: "each known field has the JSON type the official SDK sends",
        timer: false,
        official: &[],
    },
    Rule {
        id: FIELD_UNKNOWN,
        severity: Severity::Info,
        summary: "a request carries no field the official SDK never sends for its event",
        timer: false,
        official: &[],
    },
    Rule {
        id: ORDER_INIT,
        severity: Severity::Fail,
        summary: "nothing but c_init is sent before c_init succeeded on the connection",
        timer: false,
        official: &[],
    },
    Rule {
        id: ORDER_LOGIN,
        severity: Severity::Fail,
        summary: "nothing but c_init, register and login is sent before login succeeded",
        timer: false,
        official: &[],
    },
    Rule {
        id: RID_REUSED,
        severity: Severity::Fail,
        summary: "a new request never takes the rid of a recent request of another event",
        timer: false,
        official: &[],
    },
    Rule {
        id: RID_CHANGED,
        severity: Severity::Fail,
        summary: "a resend repeats its request unchanged (same rid, same fields)",
        timer: false,
        official: &[],
    },
    Rule {
        id: RID_TOO_MANY,
        severity: Severity::Fail,
        summary: "one request is transmitted at most 5 times",
        timer: false,
        official: &[],
    },
    Rule {
        id: TIME_RESEND_FAST,
        severity: Severity::Fail,
        summary: "a resend waits for the ack timeout (5 s, scaled) since the previous send",
        timer: true,
        official: &[],
    },
    Rule {
        id: SYNC_MSG_RECV,
        severity: Severity::Fail,
        summary: "every message pushed in msg_sync is confirmed by msg_recv_v2 within 5 s",
        timer: true,
        official: &[(
            "2.4.0",
            "scenarios/conformance/single/snapshots/jmessage-web-2.4.0/4_2-001-getconversation-lists-the-peer-after-an-exchange.snap: msg_sync, then no msg_recv_v2",
        )],
    },
    Rule {
        id: SYNC_MSG_UNKNOWN,
        severity: Severity::Fail,
        summary: "msg_recv_v2 names a message the server pushed to that user",
        timer: false,
        official: &[],
    },
    Rule {
        id: SYNC_ACK,
        severity: Severity::Fail,
        summary: "sync_conversation, sync_event and sync_receipt are acknowledged with their sync_key within 5 s",
        timer: true,
        official: &[],
    },
    Rule {
        id: SYNC_KEY,
        severity: Severity::Fail,
        summary: "sync_check and the sync acks carry 0 or a sync_key the server gave that user",
        timer: false,
        official: &[],
    },
    Rule {
        id: SYNC_OWED,
        severity: Severity::Fail,
        summary: "by the end of a conformance case every msg_sync message is confirmed and every sync push acknowledged",
        timer: false,
        official: &[(
            "2.4.0",
            "scenarios/conformance/single/snapshots/jmessage-web-2.4.0/4_2-001-getconversation-lists-the-peer-after-an-exchange.snap: msg_sync, then no msg_recv_v2",
        )],
    },
    Rule {
        id: MSG_CONTENT,
        severity: Severity::Fail,
        summary: "a message's content names its sender (from_id = the user logged in on the connection) and its kind (target_type single, group or chatroom, as the event says)",
        timer: false,
        official: &[],
    },
    Rule {
        id: TIME_RESEND_SLOW,
        severity: Severity::Fail,
        summary: "a request whose send got no ack is resent at the ack timeout (5 s, scaled), not later than 3 ack timeouts",
        timer: true,
        official: &[],
    },
    Rule {
        id: EVENT_ECHO,
        severity: Severity::Fail,
        summary: "an event_notification push of event type 1 is echoed with an event_notification naming its event_id",
        timer: false,
        official: &[],
    },
    Rule {
        id: EVENT_ECHO_UNKNOWN,
        severity: Severity::Fail,
        summary: "an event_notification echo names an event the server pushed to the user as event type 1",
        timer: false,
        official: &[],
    },
];

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// The grade of a broken rule for a client whose version is `version` (the driver's
/// `hello`; empty for the builtin client). A rule an official build breaks is NON-STRICT
/// for that build only; timer rules are advice for drivers on fake timers
/// (`fake_timers`), whose clock the server cannot see.
pub fn grade(id: &str, version: &str, fake_timers: bool) -> Severity {
    match rule(id) {
        Some(r) if r.timer && fake_timers => Severity::Info,
        Some(r)
            if r.official
                .iter()
                .any(|(b, _)| !version.is_empty() && version.contains(b)) =>
        {
            Severity::NonStrict
        }
        Some(r) => r.severity,
        None => Severity::Info,
    }
}

/// A JSON type a field may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    /// An integer JSON number.
    Int,
    /// A string or an integer (`c_init.timestamp`, `sync_check.sync_event_key`).
    StrOrInt,
    Bool,
    List,
    Obj,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Int => "an integer",
            Ty::StrOrInt => "a string or an integer",
            Ty::Bool => "a boolean",
            Ty::List => "a list",
            Ty::Obj => "an object",
        }
    }

    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        let int = |v: &V| v.as_i64().is_some() || v.as_u64().is_some();
        match self {
            Ty::Str => v.is_string(),
            Ty::Int => int(v),
            Ty::StrOrInt => v.is_string() || int(v),
            Ty::Bool => v.is_boolean(),
            Ty::List => v.is_array(),
            Ty::Obj => v.is_object(),
        }
    }
}

/// A field of an inbound event: name, type, whether the SDK always sends it.
pub type Field = (&'static str, Ty, bool);

use crate::protocol::{Event, Needs};
use Ty::*;

const MSG_SEND: &[Field] = &[
    ("content", Obj, true),
    ("no_offline", Bool, false),
    ("no_notification", Bool, false),
    // Every official message request names the sender's app (all three builds, every
    // transcript): the SDK fills it in when the app gives none.
    ("appkey", Str, true),
    ("need_receipt", Bool, false),
    ("custom_notification", Obj, false),
    ("target_id", Str, false),
    ("target_gid", StrOrInt, false),
    ("target_name", Str, false),
    ("users", List, false),
];

const GID: &[Field] = &[("gid", Int, true)];
const GID_MEMBERS: &[Field] = &[("gid", Int, true), ("member_usernames", List, true)];
const VERSION: &[Field] = &[("version", Int, false)];

/// Fields per inbound event. Events not listed are checked for a rid only.
pub const FIELDS: &[(&str, &[Field])] = &[
    (
        "c_init",
        &[
            ("appkey", Str, true),
            ("random_str", Str, true),
            ("timestamp", StrOrInt, true),
            ("signature", Str, true),
            ("flag", Int, false),
            ("fromPlatForm", Str, false),
        ],
    ),
    (
        "login",
        &[
            ("username", Str, true),
            ("password", Str, true),
            ("is_md5", Bool, false),
            ("version", Str, false),
        ],
    ),
    (
        "sync_check",
        &[
            ("sync_key", Int, false),
            ("sync_type", Int, false),
            ("sync_event_key", StrOrInt, false),
            ("msg_receipt_key", Int, false),
        ],
    ),
    (
        "msg_recv_v2",
        &[
            ("msg_id", Int, true),
            ("msg_type", Int, true),
            ("from_uid", Int, true),
            ("from_gid", Int, false),
        ],
    ),
    ("sync_conversation_ack", &[("sync_key", Int, true)]),
    ("sync_event_ack", &[("sync_key", Int, true)]),
    ("sync_receipt_ack", &[("sync_key", Int, true)]),
    (
        "event_notification",
        &[
            ("event_id", Int, true),
            ("event_type", Int, true),
            ("from_uid", Int, false),
            ("gid", Int, false),
        ],
    ),
    ("s_across_single_text", MSG_SEND),
    ("send_group_msg", MSG_SEND),
    ("send_room_msg", MSG_SEND),
    ("receipt_report", &[("sessions", List, true)]),
    (
        "register",
        &[
            ("username", Str, true),
            ("password", Str, true),
            ("nickname", Str, false),
        ],
    ),
    (
        "get_across_user_info",
        &[("username", Str, true), ("appkey", Str, false)],
    ),
    (
        "update_user_inf",
        &[
            ("nickname", Str, false),
            ("avatar", Str, false),
            ("signature", Str, false),
            ("gender", Int, false),
            ("birthday", StrOrInt, false),
            ("region", Str, false),
            ("address", Str, false),
            ("extras", Obj, false),
        ],
    ),
    (
        "update_user_pwd",
        &[
            ("old_pwd", Str, true),
            ("new_pwd", Str, true),
            ("is_md5", Bool, false),
        ],
    ),
    ("get_conversations", &[]),
    (
        "unread_single_count",
        &[
            ("username", Str, true),
            ("appkey", Str, false),
            ("type", Int, false),
        ],
    ),
    (
        "unread_group_count",
        &[("gid", Int, true), ("type", Int, false)],
    ),
    ("get_resource", &[("media_id", Str, true)]),
    ("get_upload_token", &[]),
    (
        "trans_msg_single",
        &[
            ("target_username", Str, true),
            ("cmd", Str, true),
            ("target_appkey", Str, false),
        ],
    ),
    ("trans_msg_group", &[("gid", Int, true), ("cmd", Str, true)]),
    (
        "trans_msg_platform",
        &[("platform", Str, true), ("cmd", Str, true)],
    ),
    (
        "create_group",
        &[
            ("group_name", Str, true),
            ("group_description", Str, false),
            ("media_id", Str, false),
        ],
    ),
    ("exit_group", GID),
    ("dissolve_group", GID),
    ("get_group_info", GID),
    ("get_group_members", GID),
    ("get_groups_list", &[]),
    (
        "update_group_info",
        &[
            ("gid", Int, true),
            ("group_name", Str, false),
            ("group_description", Str, false),
            ("media_id", Str, false),
        ],
    ),
    ("add_across_group_member", GID_MEMBERS),
    ("del_across_group_member", GID_MEMBERS),
    ("add_group_keeper", GID_MEMBERS),
    ("del_group_keeper", GID_MEMBERS),
    (
        "apply_join_group",
        &[("gid", Int, true), ("reason", Str, false)],
    ),
    (
        "admin_add_group_member",
        &[
            ("gid", Int, true),
            ("event_id", Int, true),
            ("from_username", Str, true),
            ("target_username", Str, true),
            ("result", Int, true),
            ("reason", Str, false),
            ("from_appkey", Str, false),
            ("target_appkey", Str, false),
        ],
    ),
    (
        "group_mem_silence",
        &[
            ("gid", Int, true),
            ("target_username", Str, true),
            ("keep_silence", Bool, true),
            ("target_appkey", Str, false),
        ],
    ),
    (
        "change_group_admin",
        &[
            ("gid", Int, true),
            ("target_username", Str, true),
            ("target_appkey", Str, false),
        ],
    ),
    (
        "public_group_list",
        &[("start", Int, false), ("appkey", Str, false)],
    ),
    ("room_list", &[("start", Int, false)]),
    ("room_list_self", &[]),
    // The SDK itself sends room_info without id (after room_msg_sync_his): optional.
    ("room_info", &[("id", Int, false)]),
    ("join_room", &[("id", Int, true)]),
    ("exit_room", &[("id", Int, true)]),
    ("no_disturb", VERSION),
    (
        "add_msg_no_disturb_single",
        &[
            ("target_name", Str, true),
            ("appkey", Str, false),
            ("version", Int, false),
        ],
    ),
    (
        "delete_msg_no_disturb_single",
        &[
            ("target_name", Str, true),
            ("appkey", Str, false),
            ("version", Int, false),
        ],
    ),
    (
        "add_msg_no_disturb_group",
        &[("gid", Int, true), ("version", Int, false)],
    ),
    (
        "delete_msg_no_disturb_group",
        &[("gid", Int, true), ("version", Int, false)],
    ),
    ("add_msg_no_disturb_global", VERSION),
    ("delete_msg_no_disturb_global", VERSION),
    ("list_shield_group", &[]),
    ("add_msg_shield_group", GID),
    ("del_msg_shield_group", GID),
    ("get_black_list", VERSION),
    ("add_black_list", &[("member_usernames", List, true)]),
    ("del_black_list", &[("member_usernames", List, true)]),
    ("get_friend_list", &[]),
    (
        "add_friend",
        &[
            ("target_name", Str, true),
            ("target_appkey", Str, false),
            ("why", Str, false),
            ("from_type", Int, false),
        ],
    ),
    (
        "del_friend",
        &[("target_name", Str, true), ("target_appkey", Str, false)],
    ),
    (
        "update_friend_memo",
        &[
            ("target_name", Str, true),
            ("target_appkey", Str, false),
            ("memo_name", Str, false),
            ("memo_others", Str, false),
        ],
    ),
    ("msg_retract", &[("msg_id", Int, true)]),
    ("msg_unread_list", &[("msg_id", Int, true)]),
];

/// The field table of `event`, if it has one.
pub fn fields(event: &str) -> Option<&'static [Field]> {
    FIELDS.iter().find(|(e, _)| *e == event).map(|(_, f)| *f)
}

/// Most fields an event's table has (the oracle keeps one slot per row as it checks).
pub const MAX_FIELDS: usize = 16;

/// The field table of a known event, looked up by the event instead of its name.
pub fn fields_of(event: Event) -> &'static [Field] {
    static TABLE: std::sync::OnceLock<Vec<&'static [Field]>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        Event::ALL
            .iter()
            .map(|e| fields(e.wire()).unwrap_or(&[]))
            .collect()
    });
    table.get(event as usize).copied().unwrap_or(&[])
}

/// Events whose malformed request the service refuses itself (the backend would take
/// them as they come): the fire-and-forget confirmations. `event_notification` is
/// answered by an ack only (a response of that name would look like a new event).
pub fn refused_when_malformed(event: &str) -> bool {
    matches!(
        event,
        "msg_recv_v2"
            | "sync_conversation_ack"
            | "sync_event_ack"
            | "sync_receipt_ack"
            | "event_notification"
    )
}

/// What an event needs the connection to have done first (the protocol's event list;
/// an unknown event needs a login).
fn needs(event: &str) -> Needs {
    Event::from_wire(event).map_or(Needs::Login, Event::needs)
}

/// Events allowed before `c_init` succeeded.
pub fn before_init(event: &str) -> bool {
    needs(event) == Needs::Nothing
}

/// Events allowed before login succeeded.
pub fn before_login(event: &str) -> bool {
    needs(event) != Needs::Login
}

/// The acknowledgement event of a sync push.
pub fn sync_ack_of(push: &str) -> Option<&'static str> {
    match push {
        "sync_conversation" => Some("sync_conversation_ack"),
        "sync_event" => Some("sync_event_ack"),
        "sync_receipt" => Some("sync_receipt_ack"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_one_field_row_and_every_row_an_event() {
        for e in Event::ALL {
            let rows = FIELDS.iter().filter(|(n, _)| *n == e.wire()).count();
            assert_eq!(rows, 1, "{}", e.wire());
        }
        for (n, _) in FIELDS {
            assert!(Event::from_wire(n).is_some(), "{n}");
        }
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "Event::ALL is in declaration order");
            assert_eq!(fields_of(*e), fields(e.wire()).unwrap_or(&[]));
        }
        assert!(FIELDS.iter().all(|(_, f)| f.len() <= MAX_FIELDS));
        assert!(before_init("c_init") && !before_init("login"));
        assert!(before_login("register") && !before_login("get_groups_list"));
    }

    #[test]
    fn every_rule_id_is_unique() {
        for r in RULES {
            assert_eq!(RULES.iter().filter(|x| x.id == r.id).count(), 1, "{}", r.id);
        }
    }
}
