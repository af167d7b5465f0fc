//! JMessage error codes (protocol.md 9) and their messages.
//!
//! The SDK never interprets a code; apps show `message`. Codes are sent as JSON numbers.

use serde_json::{json, Map, Value};

macro_rules! codes {
    ($($name:ident = $num:literal, $msg:literal;)*) => {
        /// A documented JMessage error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($name,)* }

        impl Code {
            /// The numeric code.
            pub fn number(self) -> u32 { match self { $(Self::$name => $num,)* } }
            /// The default message.
            pub fn message(self) -> &'static str { match self { $(Self::$name => $msg,)* } }
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Self::$name,)*];
            /// Looks a numeric code up.
            pub fn from_number(n: u32) -> Option<Self> {
                match n { $($num => Some(Self::$name),)* _ => None }
            }
        }
    };
}

codes! {
    Missing = 880001, "missing parameter";
    InvalidParameter = 880002, "invalid parameter";
    InvalidValue = 880003, "invalid parameter value";
    InvalidType = 880004, "invalid parameter type";
    FileNotExist = 880005, "file does not exist";
    LogoutBeforeRegister = 880006, "log out before register";
    RegisterLimit = 880007, "register limit reached";
    MsgIdInvalid = 880008, "msg_id invalid";
    AppkeyNotExist = 880101, "appkey does not exist";
    SignatureFail = 880102, "signature verification failed";
    UserNotExist = 880103, "user does not exist";
    InvalidPassword = 880104, "invalid password";
    SignatureExpired = 880106, "signature expired";
    AlreadyLogin = 880107, "user already logged in";
    RepetitiveOperation = 880109, "repetitive operation";
    MultiChannel = 880110, "multi channel online error";
    UserDisabled = 880111, "user disabled";
    TargetUserNotExist = 880203, "target user does not exist";
    TargetGroupNotExist = 880204, "target group does not exist";
    NotInGroup = 880205, "user is not in the group";
    MsgTooLong = 880206, "message exceeds 7 KB";
    Blacklisted = 880207, "you are in the target's blacklist";
    Sensitive = 880208, "message contains sensitive words";
    TooFrequent = 880209, "message sending too frequently";
    FileTooLarge = 880210, "file size exceeds the limit";
    Silenced = 880212, "you are silenced in this group";
    GroupNotPermitted = 880402, "not permitted to create a group";
    GroupCountLimit = 880403, "group count limit reached";
    GroupNameTooLong = 880404, "group name is too long";
    GroupDescTooLong = 880405, "group description is too long";
    ExitNotInGroup = 880502, "user is not in the group";
    AddMemberEmpty = 880602, "member list is empty";
    AddMemberNotInGroup = 880603, "you are not in the group";
    AddMemberNoPermission = 880604, "no permission to add members";
    AddMemberSomeFailed = 880606, "some members were not added";
    AddMemberRepeated = 880607, "user is already a member";
    AddMemberLimit = 880608, "group member limit reached";
    AddMemberGroupLimit = 880609, "the user's group count limit reached";
    DelMemberNotInGroup = 880703, "user is not in the group";
    DelMemberNoPermission = 880704, "no permission to remove members";
    DelMemberForbidden = 880705, "this member may not be removed";
    UpdateGroupNameTooLong = 880803, "group name is too long";
    UpdateGroupDescTooLong = 880804, "group description is too long";
    BlacklistCannotAdd = 880903, "user cannot be added to the blacklist";
    BlacklistRepeated = 880904, "user is already in the blacklist";
    BlacklistUnknownUser = 881002, "the list contains an unknown user";
    NoDisturbUserAlready = 881101, "user is already in no-disturb";
    NoDisturbUserNot = 881102, "user is not in no-disturb";
    NoDisturbGroupNotExist = 881103, "group does not exist";
    NoDisturbNotInGroup = 881104, "user is not in the group";
    NoDisturbGroupAlready = 881105, "group is already in no-disturb";
    NoDisturbGroupNot = 881106, "group is not in no-disturb";
    NoDisturbGlobalAlready = 881107, "global no-disturb is already on";
    NoDisturbGlobalNot = 881108, "global no-disturb is not on";
    ShieldGroupNotExist = 881201, "group does not exist";
    ShieldNotInGroup = 881202, "user is not in the group";
    ShieldAlready = 881203, "group is already shielded";
    ShieldNot = 881204, "group is not shielded";
    FriendUserNotExist = 881301, "user does not exist";
    FriendAlready = 881302, "already friends";
    FriendNot = 881303, "not friends";
    FriendMemoInvalid = 881304, "invalid memo";
    FriendInvitationInvalid = 881305, "invitation event is invalid";
    RetractTimeLimit = 881401, "retract time limit exceeded";
    RetractNotSender = 881402, "only the sender may retract a message";
    RetractNotExist = 881403, "message does not exist";
    RetractAlready = 881404, "message already retracted";
    RoomNotIn = 881501, "you are not in the chat room";
    RoomForbidden = 881502, "forbidden to speak in the chat room";
    RoomNotExist = 881503, "chat room does not exist";
    RoomMsgTooLong = 881504, "chat room message is too long";
    RoomAlreadyIn = 881507, "already in the chat room";
    RoomFull = 881508, "chat room is full";
    TransTargetOffline = 881602, "target is not logged in";
    TransTooLong = 881604, "transparent message is too long";
    Internal = 882001, "internal error";
    SystemInvalidParameter = 882003, "invalid parameter";
    InvalidAuthorization = 882004, "invalid authorization";
    Busy = 882005, "server busy";
    ServerInternal = 898000, "server internal error";
    UserExists = 898001, "user already exists";
    NoSuchUser = 898002, "user does not exist";
    ParameterInvalid = 898003, "parameter invalid";
    GroupIdInvalid = 898006, "group id invalid";
    UploadTooLarge = 898061, "upload too large";
}

/// An error answer: a code plus a message specific to the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

/// Longest failure message, in bytes: messages quote client input (a username, an id),
/// so a huge field is cut here rather than echoed back whole.
pub const MAX_MESSAGE_BYTES: usize = 512;

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl Failure {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            message: clip(detail.into(), MAX_MESSAGE_BYTES),
        }
    }

    /// The response body `{code, message}` (without rid).
    pub fn to_body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("code".into(), json!(self.code.number()));
        m.insert("message".into(), json!(self.message));
        m
    }
}

impl From<Code> for Failure {
    fn from(code: Code) -> Self {
        Self {
            code,
            message: code.message().to_owned(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code.number(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_look_up() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.number()), "duplicate {}", c.number());
            assert_eq!(Code::from_number(c.number()), Some(*c));
            assert!(!c.message().is_empty());
        }
        assert_eq!(Code::from_number(1), None);
    }

    #[test]
    fn failure_messages_quoting_huge_input_are_clipped() {
        let f = Failure::new(
            Code::NoSuchUser,
            format!("user {} does not exist", "é".repeat(5000)),
        );
        assert!(f.message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(f.message.starts_with("user éé") && f.message.ends_with('…'));
        let short = Failure::new(Code::NoSuchUser, "user bob does not exist");
        assert_eq!(short.message, "user bob does not exist");
    }

    #[test]
    fn failure_body_has_numeric_code() {
        let b = Failure::new(Code::UserExists, "user alice exists").to_body();
        assert_eq!(b["code"], json!(898001));
        assert_eq!(b["message"], json!("user alice exists"));
    }
}
