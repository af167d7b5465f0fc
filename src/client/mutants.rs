//! Deliberate bugs of the builtin client (mutants), switched on at run time.
//!
//! A [`Mutant`] is one protocol mistake a real client could make: a field renamed, an
//! acknowledgement skipped, a timer changed, a rid reused. `jmessage-mock mutants` runs the
//! conformance catalogue once per mutant; a mutant the catalogue does not fail *survives*,
//! which shows a missing case or a missing server rule. The switch lives in
//! [`ClientConfig::mutant`](super::ClientConfig) (default `None`: the normal client); the
//! conformance runner takes it from [`active`], a task-local value set by [`scope`], so
//! parallel runs with different mutants do not interfere.
//!
//! Nothing here is compiled out: the mutants cost a branch per frame when off.

use serde_json::{json, Map, Value};
use std::future::Future;

macro_rules! mutants {
    ($( $v:ident, $name:literal, $area:literal, $desc:literal; )*) => {
        /// A deliberate client bug (see the module docs).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Mutant { $( $v, )* }

        impl Mutant {
            /// Every mutant, in catalogue order.
            pub const ALL: &'static [Mutant] = &[ $( Mutant::$v, )* ];

            /// The stable name (`--mutant NAME`).
            pub fn name(self) -> &'static str {
                match self { $( Mutant::$v => $name, )* }
            }

            /// The protocol area it breaks (envelope, messages, sync, ...).
            pub fn area(self) -> &'static str {
                match self { $( Mutant::$v => $area, )* }
            }

            /// One line: what the mutant does wrong.
            pub fn description(self) -> &'static str {
                match self { $( Mutant::$v => $desc, )* }
            }
        }
    };
}

mutants! {
    ReusedRid, "reused-rid", "envelope", "a new request reuses the rid of the previous one";
    RenewedRid, "renewed-rid", "envelope", "a resend carries a new rid instead of the original one";
    NoResend, "no-resend", "envelope", "no resend when the ack does not come (the ack timer only stops)";
    ThreeSends, "three-sends", "envelope", "gives up after 3 transmissions instead of 5";
    SixSends, "six-sends", "envelope", "transmits a request 6 times instead of 5";
    AckTimer1s, "ack-timer-1s", "envelope", "the ack timer is 1 s instead of 5 s";
    ResponseTimer10s, "response-timer-10s", "envelope", "the response timer is 10 s instead of 30 s";
    TargetNameCamel, "target-name-camel", "messages", "messages send `targetName` instead of `target_name`";
    MsgBodyTextDropped, "msg-body-text-dropped", "messages", "text messages lose `msg_body.text`";
    WrongMsgType, "wrong-msg-type", "messages", "text messages are sent with `msg_type` \"custom\"";
    WrongTargetType, "wrong-target-type", "messages", "single messages say `target_type` \"group\" and group messages \"single\"";
    AppkeyOmitted, "appkey-omitted", "messages", "requests after c_init drop their top-level `appkey`";
    FromIdWrong, "from-id-wrong", "messages", "messages carry a wrong `from_id` (\"x\" appended)";
    NoMsgRecv, "no-msg-recv", "sync", "never answers msg_sync with msg_recv_v2";
    MsgRecvFromUidCamel, "msg-recv-fromuid", "sync", "msg_recv_v2 sends `fromUid` instead of `from_uid`";
    MsgRecvWrongIds, "msg-recv-wrong-ids", "sync", "msg_recv_v2 names msg_id + 1";
    NoSyncConversationAck, "no-sync-conversation-ack", "sync", "never sends sync_conversation_ack";
    NoSyncEventAck, "no-sync-event-ack", "sync", "never sends sync_event_ack";
    NoSyncReceiptAck, "no-sync-receipt-ack", "sync", "never sends sync_receipt_ack";
    MadeUpSyncKey, "made-up-sync-key", "sync", "sync_check sends a made-up `sync_key` (the real one + 7777)";
    NoPeriodicSyncCheck, "no-periodic-sync-check", "sync", "no periodic sync_check after login";
    NoLoginSyncCheck, "no-login-sync-check", "sync", "no sync_check right after login";
    ReceiptWrongMsg, "receipt-wrong-msg", "receipts", "receipt_report names msg_id + 1";
    NeverReportsReceipt, "never-reports-receipt", "receipts", "receipt reports never reach the wire (success is faked)";
    GidAsString, "gid-as-string", "groups", "a numeric `gid` is sent as a string";
    MemberListRenamed, "member-list-renamed", "groups", "member lists send `memberUsernames` instead of `member_usernames`";
    NoEventEcho, "no-event-echo", "events", "never echoes event_notification (kick, event 1)";
    EventEchoWrongId, "event-echo-wrong-id", "events", "the event_notification echo names event_id + 1";
    NoPings, "no-pings", "timers", "never sends Engine.IO pings";
    LatePings, "late-pings", "timers", "pings at 4 times the server's interval";
    DropsFirstMessage, "drops-first-message", "listeners", "the first message pushed is not delivered to onMsgReceive";
    DuplicateDeliveries, "duplicate-deliveries", "listeners", "every listener delivery is made twice";
    SwappedCallbacks, "swapped-callbacks", "listeners", "onSuccess and onFail are swapped";
    DropsEvents, "drops-events", "listeners", "onEventNotification is never called";
}

impl Mutant {
    /// The mutant called `name`.
    pub fn from_name(name: &str) -> Option<Mutant> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The closest names to an unknown one (for "did you mean").
    pub fn suggest(name: &str) -> Vec<&'static str> {
        let mut close: Vec<(usize, &'static str)> = Self::ALL
            .iter()
            .map(|m| (strsim_distance(name, m.name()), m.name()))
            .filter(|(d, _)| *d <= 4)
            .collect();
        close.sort();
        close.into_iter().take(3).map(|(_, n)| n).collect()
    }
}

/// Levenshtein distance (small inputs only: mutant names).
fn strsim_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

tokio::task_local! {
    static ACTIVE: Option<Mutant>;
}

/// The mutant of the current task (set by [`scope`]); `None` outside one.
pub fn active() -> Option<Mutant> {
    ACTIVE.try_with(|m| *m).ok().flatten()
}

/// Runs `f` with `m` as the [`active`] mutant.
pub async fn scope<F: Future>(m: Option<Mutant>, f: F) -> F::Output {
    ACTIVE.scope(m, f).await
}

/// Whether `m` is `which`.
pub fn is(m: Option<Mutant>, which: Mutant) -> bool {
    m == Some(which)
}

/// The client settings a mutant changes (timers, transmissions, pings).
pub fn adjust(config: &mut super::ClientConfig) {
    match config.mutant {
        Some(Mutant::ThreeSends) => config.retry_times = 3,
        Some(Mutant::SixSends) => config.retry_times = 6,
        Some(Mutant::AckTimer1s) => config.ack_timeout /= 5,
        Some(Mutant::ResponseTimer10s) => {
            config.response_timeout = config.response_timeout.map(|d| d / 3)
        }
        Some(Mutant::NoPings) => config.heartbeat = false,
        _ => {}
    }
}

const MESSAGE_EVENTS: &[&str] = &["s_across_single_text", "send_group_msg", "send_room_msg"];

/// Rewrites an outgoing request's payload (before its rid is added) as the mutant would.
pub fn request_payload(m: Option<Mutant>, event: &str, body: &mut Map<String, Value>) {
    let Some(m) = m else { return };
    match m {
        Mutant::AppkeyOmitted if event != "c_init" => {
            body.shift_remove("appkey");
        }
        Mutant::GidAsString => {
            if let Some(g) = body.get_mut("gid").filter(|g| g.is_number()) {
                *g = json!(g.to_string());
            }
        }
        Mutant::MemberListRenamed => rename(body, "member_usernames", "memberUsernames"),
        Mutant::ReceiptWrongMsg if event == "receipt_report" => {
            for s in array_mut(body.get_mut("sessions")) {
                for id in array_mut(s.get_mut("msg_ids")) {
                    bump(id);
                }
            }
        }
        Mutant::MadeUpSyncKey if event == "sync_check" => {
            let key = body.get("sync_key").and_then(Value::as_i64).unwrap_or(0);
            body.insert("sync_key".into(), json!(key + 7777));
        }
        _ if MESSAGE_EVENTS.contains(&event) => message(m, body),
        _ => {}
    }
}

/// Message mutants: the outer request and its `content`.
fn message(m: Mutant, body: &mut Map<String, Value>) {
    if m == Mutant::TargetNameCamel {
        rename(body, "target_name", "targetName");
    }
    let Some(content) = body.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    let text = content.get("msg_type") == Some(&json!("text"));
    match m {
        Mutant::TargetNameCamel => rename(content, "target_name", "targetName"),
        Mutant::MsgBodyTextDropped if text => {
            if let Some(b) = content.get_mut("msg_body").and_then(Value::as_object_mut) {
                b.shift_remove("text");
            }
        }
        Mutant::WrongMsgType if text => {
            content.insert("msg_type".into(), json!("custom"));
        }
        Mutant::WrongTargetType => {
            let swapped = match content.get("target_type").and_then(Value::as_str) {
                Some("single") => "group",
                Some("group") => "single",
                _ => return,
            };
            content.insert("target_type".into(), json!(swapped));
        }
        Mutant::FromIdWrong => {
            if let Some(Value::String(s)) = content.get_mut("from_id") {
                s.push('x');
            }
        }
        _ => {}
    }
}

/// Rewrites an automatic reply to a push (`msg_recv_v2`, `sync_*_ack`, the event echo);
/// `false`: the mutant does not send it.
pub fn confirmation(m: Option<Mutant>, event: &str, body: &mut Value) -> bool {
    let Some(m) = m else { return true };
    match (m, event) {
        (Mutant::NoMsgRecv, "msg_recv_v2")
        | (Mutant::NoSyncConversationAck, "sync_conversation_ack")
        | (Mutant::NoSyncEventAck, "sync_event_ack")
        | (Mutant::NoSyncReceiptAck, "sync_receipt_ack")
        | (Mutant::NoEventEcho, "event_notification") => return false,
        (Mutant::MsgRecvFromUidCamel, "msg_recv_v2") => {
            if let Some(o) = body.as_object_mut() {
                rename(o, "from_uid", "fromUid");
            }
        }
        (Mutant::MsgRecvWrongIds, "msg_recv_v2") => {
            if let Some(id) = body.get_mut("msg_id") {
                bump(id);
            }
        }
        (Mutant::EventEchoWrongId, "event_notification") => {
            if let Some(id) = body.get_mut("event_id") {
                bump(id);
            }
        }
        _ => {}
    }
    true
}

/// Renames a key in place (keeping its position).
fn rename(o: &mut Map<String, Value>, from: &str, to: &str) {
    if !o.contains_key(from) {
        return;
    }
    let old = std::mem::take(o);
    *o = old
        .into_iter()
        .map(|(k, v)| {
            if k == from {
                (to.to_owned(), v)
            } else {
                (k, v)
            }
        })
        .collect();
}

fn array_mut(v: Option<&mut Value>) -> impl Iterator<Item = &mut Value> {
    v.and_then(Value::as_array_mut).into_iter().flatten()
}

/// A number plus one (a string of digits too).
fn bump(v: &mut Value) {
    if let Some(n) = v.as_i64() {
        *v = json!(n + 1);
    } else if let Some(n) = v.as_str().and_then(|s| s.parse::<i64>().ok()) {
        *v = json!((n + 1).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_there_are_at_least_30() {
        let names: std::collections::BTreeSet<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Mutant::ALL.len());
        assert!(Mutant::ALL.len() >= 30);
        for m in Mutant::ALL {
            assert_eq!(Mutant::from_name(m.name()), Some(*m));
            assert!(!m.description().is_empty() && !m.area().is_empty());
        }
        assert_eq!(Mutant::suggest("no-msg-rcv"), vec!["no-msg-recv"]);
    }

    fn text_msg() -> Map<String, Value> {
        let v = super::super::single_msg("alice", "bobby", "text", json!({"text": "hi"}));
        let mut o = v.as_object().cloned().unwrap_or_default();
        o.insert("target_name".into(), json!("Bobby"));
        if let Some(c) = o.get_mut("content").and_then(Value::as_object_mut) {
            c.insert("target_name".into(), json!("Bobby"));
        }
        o
    }

    fn mutated(m: Mutant, event: &str, mut body: Map<String, Value>) -> Value {
        request_payload(Some(m), event, &mut body);
        Value::Object(body)
    }

    #[test]
    fn message_mutants_change_the_request() {
        let ev = "s_across_single_text";
        let v = mutated(Mutant::TargetNameCamel, ev, text_msg());
        assert!(v.get("target_name").is_none() && v["targetName"] == "Bobby");
        assert_eq!(v["content"]["targetName"], "Bobby");
        let v = mutated(Mutant::MsgBodyTextDropped, ev, text_msg());
        assert_eq!(v["content"]["msg_body"], json!({}));
        let v = mutated(Mutant::WrongMsgType, ev, text_msg());
        assert_eq!(v["content"]["msg_type"], "custom");
        let v = mutated(Mutant::WrongTargetType, ev, text_msg());
        assert_eq!(v["content"]["target_type"], "group");
        let v = mutated(Mutant::FromIdWrong, ev, text_msg());
        assert_eq!(v["content"]["from_id"], "alicex");
        // Off: unchanged.
        let mut same = text_msg();
        request_payload(None, ev, &mut same);
        assert_eq!(same, text_msg());
    }

    #[test]
    fn field_mutants_change_the_request() {
        let o = |v: Value| v.as_object().cloned().unwrap_or_default();
        let v = mutated(
            Mutant::AppkeyOmitted,
            "get_across_user_info",
            o(json!({"username": "bobby", "appkey": "k"})),
        );
        assert_eq!(v, json!({"username": "bobby"}));
        let v = mutated(Mutant::AppkeyOmitted, "c_init", o(json!({"appkey": "k"})));
        assert_eq!(v, json!({"appkey": "k"}));
        let v = mutated(Mutant::GidAsString, "exit_group", o(json!({"gid": 10001})));
        assert_eq!(v, json!({"gid": "10001"}));
        let v = mutated(
            Mutant::MemberListRenamed,
            "add_across_group_member",
            o(json!({"gid": 1, "member_usernames": [{"username": "erin"}]})),
        );
        assert_eq!(
            v,
            json!({"gid": 1, "memberUsernames": [{"username": "erin"}]})
        );
        let v = mutated(
            Mutant::ReceiptWrongMsg,
            "receipt_report",
            o(json!({"sessions": [{"msg_ids": [100000001], "type": 3}]})),
        );
        assert_eq!(v["sessions"][0]["msg_ids"], json!([100000002]));
        let v = mutated(
            Mutant::MadeUpSyncKey,
            "sync_check",
            o(json!({"sync_key": 3, "sync_type": 0})),
        );
        assert_eq!(v["sync_key"], 7780);
    }

    #[test]
    fn confirmation_mutants() {
        let recv = json!({"msg_id": 5, "msg_type": 3, "from_uid": 9});
        for (m, ev) in [
            (Mutant::NoMsgRecv, "msg_recv_v2"),
            (Mutant::NoSyncConversationAck, "sync_conversation_ack"),
            (Mutant::NoSyncEventAck, "sync_event_ack"),
            (Mutant::NoSyncReceiptAck, "sync_receipt_ack"),
            (Mutant::NoEventEcho, "event_notification"),
        ] {
            assert!(!confirmation(Some(m), ev, &mut json!({})), "{m:?}");
            assert!(confirmation(None, ev, &mut json!({})));
        }
        let mut b = recv.clone();
        assert!(confirmation(
            Some(Mutant::MsgRecvFromUidCamel),
            "msg_recv_v2",
            &mut b
        ));
        assert_eq!(b, json!({"msg_id": 5, "msg_type": 3, "fromUid": 9}));
        let mut b = recv.clone();
        confirmation(Some(Mutant::MsgRecvWrongIds), "msg_recv_v2", &mut b);
        assert_eq!(b["msg_id"], 6);
        let mut b = json!({"event_id": "41", "event_type": 1});
        confirmation(Some(Mutant::EventEchoWrongId), "event_notification", &mut b);
        assert_eq!(b["event_id"], "42");
    }

    #[test]
    fn timer_mutants_adjust_the_config() {
        let base = super::super::ClientConfig::default();
        let with = |m| {
            let mut c = super::super::ClientConfig {
                mutant: Some(m),
                ..base.clone()
            };
            adjust(&mut c);
            c
        };
        assert_eq!(with(Mutant::ThreeSends).retry_times, 3);
        assert_eq!(with(Mutant::SixSends).retry_times, 6);
        assert_eq!(
            with(Mutant::AckTimer1s).ack_timeout,
            std::time::Duration::from_secs(1)
        );
        assert_eq!(
            with(Mutant::ResponseTimer10s).response_timeout,
            Some(std::time::Duration::from_secs(10))
        );
        assert!(!with(Mutant::NoPings).heartbeat);
    }
}
