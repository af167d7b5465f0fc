//! Size limits on what a client may store: free-form request fields (profile, login,
//! message extras) and the message history (retention and sync page sizes).
//!
//! The message limit (7 KB, 880206) comes from the guide; the others are the mock's
//! choices where the guide gives no number, written down in docs/limits-history.md.
//! Every limit here answers a hostile client that would otherwise grow the server's
//! memory with one request or a flood of them.

use crate::protocol::{Code, Failure};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The message size limit: `content` plus `custom_notification`, as JSON, in bytes.
pub const MAX_CONTENT_BYTES: usize = 7 * 1024;
/// Profile `extras` (register, update_user_inf), as JSON, in bytes.
pub const MAX_EXTRAS_BYTES: usize = 4 * 1024;
/// Profile `birthday`, in bytes.
pub const MAX_BIRTHDAY_BYTES: usize = 64;
/// Login `version` (the SDK sends `"2.4.0"` or `"2.5.0"`), in bytes.
pub const MAX_VERSION_BYTES: usize = 32;
/// A password field as sent (the SDK sends 32 hex digits), in bytes.
pub const MAX_PASSWORD_BYTES: usize = 128;
/// A friend invitation's or answer's `why`, in bytes.
pub const MAX_WHY_BYTES: usize = 250;

/// The length of a JSON value once encoded (`usize::MAX` if it cannot be encoded).
pub fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// The encoded length of a JSON object, counted as it is written (nothing is kept).
pub fn map_len(m: &Map<String, Value>) -> usize {
    /// A writer that only counts (std has `io::sink`, which does not count).
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    match serde_json::to_writer(&mut n, m) {
        Ok(()) => n.0,
        Err(_) => usize::MAX,
    }
}

/// 880003 for a string field over `max` bytes.
pub fn check_str(field: &str, s: &str, max: usize) -> Result<(), Failure> {
    if s.len() > max {
        return Err(Failure::new(
            Code::InvalidValue,
            format!("{field} is {} bytes; the limit is {max}", s.len()),
        ));
    }
    Ok(())
}

/// 880003 for an object field whose JSON is over `max` bytes.
pub fn check_obj(field: &str, m: &Map<String, Value>, max: usize) -> Result<(), Failure> {
    let n = map_len(m);
    if n > max {
        return Err(Failure::new(
            Code::InvalidValue,
            format!("{field} is {n} bytes of JSON; the limit is {max}"),
        ));
    }
    Ok(())
}

/// How much message history the backend keeps and how it is sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryLimits {
    /// Most messages kept per conversation (a pair of users, or a group); the oldest
    /// is dropped first.
    pub per_conversation: usize,
    /// Most messages kept in total (retracted ones included); the oldest is dropped first.
    pub total: usize,
    /// Most messages in one `sync_conversation` push.
    pub sync_page_messages: usize,
    /// Most bytes of stored message JSON in one `sync_conversation` push (one message
    /// may take a page past it: a page always holds at least one message).
    pub sync_page_bytes: usize,
    /// Most entries kept in each user's event log (`sync_event`) and receipt-change log
    /// (`sync_receipt`); the oldest is dropped first, so one push stays well under the
    /// frame limit.
    pub events_per_user: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            per_conversation: 10_000,
            total: 200_000,
            sync_page_messages: 500,
            sync_page_bytes: 256 * 1024,
            events_per_user: 1_000,
        }
    }
}

impl HistoryLimits {
    /// The limits with every zero raised to 1 (a zero would drop the message being sent
    /// or never fill a page).
    pub fn sane(self) -> Self {
        Self {
            per_conversation: self.per_conversation.max(1),
            total: self.total.max(1),
            sync_page_messages: self.sync_page_messages.max(1),
            sync_page_bytes: self.sync_page_bytes.max(1),
            events_per_user: self.events_per_user.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::md5_hex;
    use super::super::test_support::*;
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn two_users() -> Harness {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.user(2, "bobby");
        h
    }

    /// A `custom_notification` whose JSON takes the message `extra` bytes past 7 KB.
    fn notification(bytes: usize) -> Value {
        json!({"enabled": true, "title": "t", "alert": "a".repeat(bytes)})
    }

    #[rstest]
    #[case::just_under(7 * 1024 - 200, Some(0))]
    #[case::just_over(7 * 1024, Some(880206))]
    #[case::huge(900 * 1024, Some(880206))]
    fn custom_notification_counts_toward_the_7_kb_limit(
        #[case] bytes: usize,
        #[case] code: Option<i64>,
    ) {
        let mut h = two_users();
        let o = h.req(
            1,
            "s_across_single_text",
            json!({"target_id": "bobby",
            "content": {"msg_type": "text", "msg_body": {"text": "hi"}},
            "custom_notification": notification(bytes)}),
        );
        assert_eq!(o.code(), code, "{o:?}");
        let stored = h.b.message_count();
        assert_eq!(stored, usize::from(code == Some(0)));
    }

    #[test]
    fn group_custom_notification_counts_too() {
        let mut h = two_users();
        let g = h.req(1, "create_group", json!({"group_name": "g"}));
        let gid = resp(&g)["gid"].clone();
        let o = h.req(
            1,
            "send_group_msg",
            json!({"target_gid": gid,
            "content": {"msg_type": "custom", "msg_body": {"k": "v"}},
            "custom_notification": notification(8 * 1024)}),
        );
        assert_eq!(o.code(), Some(880206));
        assert_eq!(h.b.message_count(), 0);
    }

    #[rstest]
    #[case::extras(json!({"extras": {"k": "x".repeat(MAX_EXTRAS_BYTES)}}))]
    #[case::huge_extras(json!({"extras": {"k": "x".repeat(900 * 1024)}}))]
    #[case::nickname(json!({"nickname": "n".repeat(65)}))]
    #[case::signature(json!({"signature": "s".repeat(251)}))]
    #[case::address(json!({"address": "a".repeat(251)}))]
    #[case::region(json!({"region": "r".repeat(251)}))]
    #[case::birthday(json!({"birthday": "1".repeat(MAX_BIRTHDAY_BYTES + 1)}))]
    fn oversize_profile_fields_are_880003_and_change_nothing(#[case] patch: Value) {
        let mut h = two_users();
        let before =
            h.b.user(&crate::backend::UserKey::new(APP, "alice"))
                .cloned();
        assert_eq!(
            h.req(1, "update_user_inf", patch.clone()).code(),
            Some(880003)
        );
        let after =
            h.b.user(&crate::backend::UserKey::new(APP, "alice"))
                .cloned();
        assert_eq!(before, after);
        // register refuses the same fields.
        h.init(3, APP, SECRET);
        let mut reg = json!({"username": "zed01", "password": md5_hex("pw")});
        if let (Some(r), Some(p)) = (reg.as_object_mut(), patch.as_object()) {
            r.extend(p.clone());
        }
        assert_eq!(h.req(3, "register", reg).code(), Some(880003));
        // At the limit is fine.
        let ok = h.req(
            1,
            "update_user_inf",
            json!({"extras": {"k": "x".repeat(MAX_EXTRAS_BYTES - 16)}}),
        );
        assert_eq!(ok.code(), Some(0));
    }

    #[rstest]
    #[case::version(json!({"version": "2".repeat(MAX_VERSION_BYTES + 1)}))]
    #[case::huge_version(json!({"version": "v".repeat(900 * 1024)}))]
    #[case::password(json!({"password": "p".repeat(MAX_PASSWORD_BYTES + 1)}))]
    fn oversize_login_fields_are_880003(#[case] extra: Value) {
        let mut h = two_users();
        h.init(3, APP, SECRET);
        let mut login = json!({"username": "alice", "password": md5_hex("pw")});
        if let (Some(l), Some(x)) = (login.as_object_mut(), extra.as_object()) {
            l.extend(x.clone());
        }
        let o = h.req(3, "login", login);
        assert_eq!(o.code(), Some(880003));
        assert!(h.b.conn_user(3).is_none());
        let ok = h.req(
            3,
            "login",
            json!({"username": "alice", "password": md5_hex("pw"), "version": "2.5.0"}),
        );
        assert_eq!(ok.code(), Some(0));
    }

    #[test]
    fn an_oversize_friend_reason_is_880003() {
        let mut h = two_users();
        let o = h.req(
            1,
            "add_friend",
            json!({"target_name": "bobby", "from_type": 1,
            "why": "w".repeat(MAX_WHY_BYTES + 1)}),
        );
        assert_eq!(o.code(), Some(880003));
        assert!(o.pushes.is_empty());
    }

    #[test]
    fn zero_limits_are_raised_to_one() {
        let z = HistoryLimits {
            per_conversation: 0,
            total: 0,
            sync_page_messages: 0,
            sync_page_bytes: 0,
            events_per_user: 0,
        }
        .sane();
        assert_eq!(
            (
                z.per_conversation,
                z.total,
                z.sync_page_messages,
                z.sync_page_bytes,
                z.events_per_user
            ),
            (1, 1, 1, 1, 1)
        );
    }
}
