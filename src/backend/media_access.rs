//! Who may see a stored media, and the signed, expiring URLs `get_resource` hands out
//! (docs/decisions-media.md, docs/security.md).
//!
//! A media is visible to its owner; to every user a message carrying its `media_id`
//! was delivered to (the single target, the members of the group — current members,
//! checked when asked —, the room members present when it was sent); and, when it is
//! a user's or a group's avatar or a seeded fixture, to every user whose app may reach
//! the owner's app (`cross_app`). Anyone else is told the media does not exist
//! (880005), so ids cannot be probed.
//!
//! `GET /media/<id>` needs `?expires=<unix seconds>&sign=<hex>`, where `sign` is
//! HMAC-SHA256 over `"<id>\n<expires>"` with a key drawn at random when the backend is
//! built. URLs live [`MEDIA_URL_TTL_MS`] on the backend clock.

use super::model::UserKey;
use super::{Backend, ConnId, Outcome};
use crate::protocol::{Args, Code, Failure};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// How long a `get_resource` URL stays valid (backend clock).
pub const MEDIA_URL_TTL_MS: i64 = 60 * 60 * 1000;

/// Who a message carrying media went to.
pub(super) enum Audience<'a> {
    /// One user (single message).
    User(&'a UserKey),
    /// The current members of a group.
    Group(u64),
    /// These users (the members of a chat room when the message was sent).
    Users(&'a [UserKey]),
}

/// Why `GET /media/...` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaUrlError {
    /// 403: no, bad or expired signature.
    Forbidden(String),
    /// 404: signed correctly, but the media is gone (the state was replaced).
    NotFound(String),
}

/// A random signing key: std's `RandomState` is seeded from the OS once per process
/// and differs per instance, so this needs no extra dependency and no I/O here.
pub(super) fn random_key() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut key = [0u8; 32];
    for (i, chunk) in key.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    key
}

/// Percent-encodes a media id for a URL path, keeping `/` and unreserved characters.
fn encode_path(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The media id a message content carries (`msg_body.media_id`), if any.
fn content_media_id(content: &Map<String, Value>) -> Option<&str> {
    content
        .get("msg_body")?
        .get("media_id")?
        .as_str()
        .filter(|s| !s.is_empty())
}

impl Backend {
    /// Hex HMAC-SHA256 of `"<id>\n<expires_s>"` under the backend's random key (64 hex
    /// digits).
    pub(super) fn sign_media(&self, id: &str, expires_s: i64) -> String {
        // A 32-byte key is always a valid HMAC key; the fallback is unreachable.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.media.url_key) {
            Ok(m) => m,
            Err(_) => return "0".repeat(64),
        };
        mac.update(id.as_bytes());
        mac.update(b"\n");
        mac.update(expires_s.to_string().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The signed URL of a media, valid [`MEDIA_URL_TTL_MS`] from now.
    pub fn media_url(&self, id: &str) -> String {
        let expires = (self.now_ms() + MEDIA_URL_TTL_MS) / 1000;
        format!(
            "{}{}{}?expires={expires}&sign={}",
            self.media.base_url,
            super::media::MEDIA_PATH,
            encode_path(id),
            self.sign_media(id, expires)
        )
    }

    /// Checks a `GET /media/<id>` request's `expires` and `sign` (constant-time compare).
    pub fn check_media_url(
        &self,
        id: &str,
        expires: Option<&str>,
        sign: Option<&str>,
    ) -> Result<(), MediaUrlError> {
        let forbidden = |m: &str| Err(MediaUrlError::Forbidden(m.to_owned()));
        let (Some(expires), Some(sign)) = (expires, sign) else {
            return forbidden("a signed URL from get_resource is required (expires, sign)");
        };
        let Ok(exp) = expires.parse::<i64>() else {
            return forbidden("expires must be a number of seconds");
        };
        let Ok(given) = hex::decode(sign) else {
            return forbidden("bad signature");
        };
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.media.url_key) else {
            return forbidden("bad signature");
        };
        mac.update(id.as_bytes());
        mac.update(b"\n");
        mac.update(exp.to_string().as_bytes());
        if mac.verify_slice(&given).is_err() {
            return forbidden("bad signature");
        }
        if exp.saturating_mul(1000) <= self.now_ms() {
            return forbidden("the URL has expired; call get_resource again");
        }
        if self.media(id).is_none() {
            return Err(MediaUrlError::NotFound(format!(
                "media {id} does not exist"
            )));
        }
        Ok(())
    }

    /// Records who may see the media a message carries. A sender who may not see the
    /// media itself grants nothing (forging a message does not open someone's file).
    pub(super) fn grant_media(
        &mut self,
        sender: &UserKey,
        content: &Map<String, Value>,
        to: Audience<'_>,
    ) {
        let Some(id) = content_media_id(content) else {
            return;
        };
        if !self.may_see_media(sender, id) {
            return;
        }
        let Some(m) = self.media.blobs.get_mut(id) else {
            return;
        };
        match to {
            Audience::User(u) => {
                m.readers.insert(u.clone());
            }
            Audience::Group(gid) => {
                m.groups.insert(gid);
            }
            Audience::Users(list) => m.readers.extend(list.iter().cloned()),
        }
    }

    /// Whether `user` may see media `id` (module doc).
    pub fn may_see_media(&self, user: &UserKey, id: &str) -> bool {
        let Some(m) = self.media.blobs.get(id) else {
            return false;
        };
        if m.owner == *user || m.readers.contains(user) {
            return true;
        }
        let member_of = |gid: &u64| {
            self.groups
                .get(gid)
                .is_some_and(|g| g.members.contains_key(user))
        };
        if m.groups.iter().any(member_of) {
            return true;
        }
        let reaches_owner = self.cross_app_allowed(&user.appkey, &m.owner.appkey);
        if m.public && reaches_owner {
            return true;
        }
        let owner_avatar = self.users.get(&m.owner).is_some_and(|u| u.avatar == id);
        if owner_avatar && reaches_owner {
            return true;
        }
        // A group avatar counts only while its uploader is in the group: naming someone
        // else's media as a group's avatar opens nothing.
        self.groups.values().any(|g| {
            g.avatar == id
                && g.members.contains_key(&m.owner)
                && (g.members.contains_key(user) || self.cross_app_allowed(&user.appkey, &g.appkey))
        })
    }

    /// Marks a media visible app-wide (seeded fixtures).
    pub(super) fn publish_media(&mut self, id: &str) {
        if let Some(m) = self.media.blobs.get_mut(id) {
            m.public = true;
        }
    }

    pub(super) fn get_resource(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let media_id = a.str("media_id")?;
        if !self.may_see_media(&me, media_id) {
            // Unknown and not-yours look the same: ids cannot be probed.
            return Err(Failure::new(
                Code::FileNotExist,
                format!("media {media_id} does not exist"),
            ));
        }
        let mut f = Map::new();
        f.insert("url".into(), json!(self.media_url(media_id)));
        Ok(Outcome::ok(f))
    }
}

#[cfg(test)]
mod tests {
    use super::super::media::tests::png;
    use super::super::media::{MediaKind, UploadError, MAX_TOKENS_PER_USER};
    use super::super::test_support::*;
    use super::*;

    fn basic(user: &str, tok: &str) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{tok}"))
        )
    }

    fn token(h: &mut Harness, conn: u64) -> String {
        let o = h.req(conn, "get_upload_token", json!({}));
        resp(&o)["uptoken"].as_str().expect("uptoken").to_owned()
    }

    #[test]
    fn an_upload_spends_its_token_and_a_refused_one_does_not() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let t = token(&mut h, 1);
        let auth = basic("alice", &t);
        let bad = h.b.store_authorised_upload(
            Some(APP),
            Some(&auth),
            (b"text".to_vec(), None, None),
            MediaKind::Image,
        );
        assert!(matches!(bad, Err(UploadError::Invalid(_))));
        let ok = h.b.store_authorised_upload(
            Some(APP),
            Some(&auth),
            (png(2, 2), None, None),
            MediaKind::Image,
        );
        assert!(ok.is_ok(), "{ok:?}");
        let again = h.b.store_authorised_upload(
            Some(APP),
            Some(&auth),
            (png(2, 2), None, None),
            MediaKind::Image,
        );
        assert!(matches!(again, Err(UploadError::Unauthorized(_))));
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_tokens() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let first = token(&mut h, 1);
        for _ in 0..MAX_TOKENS_PER_USER {
            token(&mut h, 1);
        }
        let live = h.b.media_tokens_of(&UserKey::new(APP, "alice"));
        assert_eq!(live, MAX_TOKENS_PER_USER);
        assert!(h
            .b
            .check_upload_auth(Some(APP), Some(&basic("alice", &first)))
            .is_err());
    }

    #[test]
    fn signed_urls_reject_tampering_and_expire() {
        let mut h = Harness::new();
        let id =
            h.b.store_upload(
                UserKey::new(APP, "alice"),
                MediaKind::File,
                b"x".to_vec(),
                None,
                None,
            )
            .expect("stored")["media_id"]
                .as_str()
                .expect("id")
                .to_owned();
        let url = h.b.media_url(&id);
        let q = url.split_once('?').expect("query").1;
        let exp = q
            .split('&')
            .find_map(|p| p.strip_prefix("expires="))
            .expect("expires");
        let sign = q
            .split('&')
            .find_map(|p| p.strip_prefix("sign="))
            .expect("sign");
        let b = &h.b;
        assert_eq!(b.check_media_url(&id, Some(exp), Some(sign)), Ok(()));
        let forbidden =
            |r: Result<(), MediaUrlError>| matches!(r, Err(MediaUrlError::Forbidden(_)));
        assert!(forbidden(b.check_media_url(&id, None, Some(sign))));
        assert!(forbidden(b.check_media_url(&id, Some(exp), None)));
        assert!(forbidden(b.check_media_url(&id, Some("x"), Some(sign))));
        assert!(forbidden(b.check_media_url(&id, Some(exp), Some("zz"))));
        assert!(forbidden(b.check_media_url("other", Some(exp), Some(sign))));
        let later = (exp.parse::<i64>().expect("n") + 1).to_string();
        assert!(forbidden(b.check_media_url(&id, Some(&later), Some(sign))));
        h.clock.advance_ms(MEDIA_URL_TTL_MS);
        assert!(forbidden(h.b.check_media_url(&id, Some(exp), Some(sign))));
    }

    #[test]
    fn ids_are_percent_encoded_in_urls() {
        assert_eq!(encode_path("qiniu/file/j/ab12"), "qiniu/file/j/ab12");
        assert_eq!(encode_path("a b?#é"), "a%20b%3F%23%C3%A9");
    }
}
