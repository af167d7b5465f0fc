//! Engine.IO: one frame (`decode_packet`) and a polling payload (`decode_payload`) from
//! the same input. Neither may panic; whatever decodes must re-encode to something that
//! decodes to the same packets.
#![no_main]

use jmessage_mock::transport::engineio::{decode_packet, decode_payload, encode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = decode_packet(text) {
        assert_eq!(p.data.len() + 1, text.len());
    }
    if let Ok(packets) = decode_payload(text) {
        let again = decode_payload(&encode_payload(&packets)).expect("re-encoded payload decodes");
        assert_eq!(again, packets);
    }
});
