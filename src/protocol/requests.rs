//! Every request (client→server event) name of the Web SDK V2 (protocol.md 4), with what
//! it needs from the connection before the server acts on it. Notifications the backend
//! builds are in `backend/events.rs`; push names are `PUSH_EVENTS` in `scenario`.

macro_rules! events {
    ($($name:ident = $wire:literal, $needs:ident;)*) => {
        /// A request event the SDK can emit.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Event { $($name,)* }

        impl Event {
            /// Every known event.
            pub const ALL: &'static [Event] = &[$(Self::$name,)*];

            /// Looks a wire name up.
            pub fn from_wire(name: &str) -> Option<Event> {
                match name { $($wire => Some(Self::$name),)* _ => None }
            }

            /// The wire name.
            pub fn wire(self) -> &'static str {
                match self { $(Self::$name => $wire,)* }
            }

            /// What the connection must have done first.
            pub fn needs(self) -> Needs {
                match self { $(Self::$name => Needs::$needs,)* }
            }
        }
    };
}

/// Session precondition of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    Init,
    Login,
}

events! {
    CInit = "c_init", Nothing;
    Login = "login", Init;
    Register = "register", Init;
    GetAcrossUserInfo = "get_across_user_info", Login;
    UpdateUserInf = "update_user_inf", Login;
    UpdateUserPwd = "update_user_pwd", Login;
    GetConversations = "get_conversations", Login;
    UnreadSingleCount = "unread_single_count", Login;
    UnreadGroupCount = "unread_group_count", Login;
    MsgUnreadList = "msg_unread_list", Login;
    ReceiptReport = "receipt_report", Login;
    GetResource = "get_resource", Login;
    MsgRetract = "msg_retract", Login;
    TransMsgSingle = "trans_msg_single", Login;
    TransMsgGroup = "trans_msg_group", Login;
    TransMsgPlatform = "trans_msg_platform", Login;
    GetUploadToken = "get_upload_token", Login;
    SyncCheck = "sync_check", Login;
    SyncConversationAck = "sync_conversation_ack", Login;
    SyncEventAck = "sync_event_ack", Login;
    SyncReceiptAck = "sync_receipt_ack", Login;
    MsgRecvV2 = "msg_recv_v2", Login;
    EventNotification = "event_notification", Login;
    SAcrossSingleText = "s_across_single_text", Login;
    SendGroupMsg = "send_group_msg", Login;
    SendRoomMsg = "send_room_msg", Login;
    CreateGroup = "create_group", Login;
    ExitGroup = "exit_group", Login;
    GetGroupsList = "get_groups_list", Login;
    GetGroupInfo = "get_group_info", Login;
    UpdateGroupInfo = "update_group_info", Login;
    GetGroupMembers = "get_group_members", Login;
    AddAcrossGroupMember = "add_across_group_member", Login;
    DelAcrossGroupMember = "del_across_group_member", Login;
    ApplyJoinGroup = "apply_join_group", Login;
    AdminAddGroupMember = "admin_add_group_member", Login;
    GroupMemSilence = "group_mem_silence", Login;
    DissolveGroup = "dissolve_group", Login;
    AddGroupKeeper = "add_group_keeper", Login;
    DelGroupKeeper = "del_group_keeper", Login;
    ChangeGroupAdmin = "change_group_admin", Login;
    PublicGroupList = "public_group_list", Login;
    RoomList = "room_list", Login;
    RoomListSelf = "room_list_self", Login;
    RoomInfo = "room_info", Login;
    JoinRoom = "join_room", Login;
    ExitRoom = "exit_room", Login;
    NoDisturb = "no_disturb", Login;
    AddMsgNoDisturbSingle = "add_msg_no_disturb_single", Login;
    DeleteMsgNoDisturbSingle = "delete_msg_no_disturb_single", Login;
    AddMsgNoDisturbGroup = "add_msg_no_disturb_group", Login;
    DeleteMsgNoDisturbGroup = "delete_msg_no_disturb_group", Login;
    AddMsgNoDisturbGlobal = "add_msg_no_disturb_global", Login;
    DeleteMsgNoDisturbGlobal = "delete_msg_no_disturb_global", Login;
    ListShieldGroup = "list_shield_group", Login;
    AddMsgShieldGroup = "add_msg_shield_group", Login;
    DelMsgShieldGroup = "del_msg_shield_group", Login;
    GetBlackList = "get_black_list", Login;
    AddBlackList = "add_black_list", Login;
    DelBlackList = "del_black_list", Login;
    GetFriendList = "get_friend_list", Login;
    AddFriend = "add_friend", Login;
    DelFriend = "del_friend", Login;
    UpdateFriendMemo = "update_friend_memo", Login;
}

impl Event {
    /// `event_notification` is a push name too: answering it would look like a new
    /// business event to the SDK, so it is acked only.
    pub fn ack_only(self) -> bool {
        self == Event::EventNotification
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in Event::ALL {
            assert_eq!(Event::from_wire(e.wire()), Some(*e));
        }
        assert_eq!(Event::from_wire("s_single_text"), None);
        assert_eq!(Event::CInit.needs(), Needs::Nothing);
        assert_eq!(Event::Register.needs(), Needs::Init);
        assert!(Event::EventNotification.ack_only());
    }
}
