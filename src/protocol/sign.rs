//! Signing shared by both ends of the wire (protocol.md 3.1): the lower-case hex MD5
//! used for passwords and the `c_init` signature, and how long a signature stays
//! valid. The backend checks with these; the client, the CLI and the admin `sign`
//! route compute with them, so none of them has to reach into the backend.

use md5::{Digest, Md5};

/// How long a `c_init` signature stays valid by default: 10 minutes, the guide's rule.
/// `BackendConfig::signature_ttl_ms` starts from this; `serve --signature-ttl` changes it.
pub const SIGNATURE_TTL_MS: i64 = 10 * 60 * 1000;

/// Lower-case hex MD5 of a string.
pub fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// Whether `s` looks like [`md5_hex`] output.
pub fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The c_init signature for an app (protocol.md 3.1).
pub fn signature(appkey: &str, timestamp: &str, random_str: &str, secret: &str) -> String {
    md5_hex(&format!(
        "appkey={appkey}&timestamp={timestamp}&random_str={random_str}&key={secret}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(md5_hex("pw"), "8fe4c11451281c094a6578e6ddbf5eed");
        assert_eq!(
            signature("k", "1", "r", "s"),
            "7bac5dc6279ce1073881fb6d632c0343"
        );
        assert!(is_md5_hex(&md5_hex("anything")));
        assert!(!is_md5_hex("ABC"));
    }
}
