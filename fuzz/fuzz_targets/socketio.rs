//! Socket.IO: `decode` of the data of an Engine.IO message, then `event_parts` of an
//! event, as the transport does for every frame. Must never panic.
#![no_main]

use jmessage_mock::transport::socketio::{decode, event_parts, SioPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(SioPacket::Event { data, .. }) = decode(text) {
        let parts = event_parts(data);
        assert!(parts.is_some(), "an Event always has a name");
    }
});
