//! The events the server pushes (protocol.md 5 and 7): they carry no `rid` and expect no
//! answer but the confirmations some of them call for (`msg_recv_v2`, the sync acks).
//! Request names are [`super::Event`]; these are the other direction.

use std::fmt;

/// A push's event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushEvent {
    /// New 1:1 or group messages (confirmed with `msg_recv_v2`).
    MsgSync,
    /// Offline conversations after `sync_check` (acknowledged with `sync_conversation_ack`).
    SyncConversation,
    /// Offline events after `sync_check` (`sync_event_ack`).
    SyncEvent,
    /// Offline receipt changes after `sync_check` (`sync_receipt_ack`).
    SyncReceipt,
    /// A live business event (kick, group and friend changes…).
    EventNotification,
    /// A live read-receipt change.
    ReceiptChange,
    /// A transparent message.
    TransMsgRec,
    /// A chat room message.
    RoomMsgSync,
}

impl PushEvent {
    /// The name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Self::MsgSync => "msg_sync",
            Self::SyncConversation => "sync_conversation",
            Self::SyncEvent => "sync_event",
            Self::SyncReceipt => "sync_receipt",
            Self::EventNotification => "event_notification",
            Self::ReceiptChange => "receipt_change",
            Self::TransMsgRec => "trans_msg_rec",
            Self::RoomMsgSync => "room_msg_sync",
        }
    }
}

impl fmt::Display for PushEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq<&str> for PushEvent {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::PushEvent;

    #[test]
    fn names_are_the_wire_names() {
        assert_eq!(PushEvent::MsgSync, "msg_sync");
        assert_eq!(PushEvent::SyncConversation.to_string(), "sync_conversation");
        assert!(PushEvent::RoomMsgSync != "msg_sync");
    }
}
