//! Media: `get_upload_token`, the upload that the HTTP layer hands over, and
//! `get_resource` (protocol.md 6).
//!
//! Tokens are stored per user with an expiry; an upload is authorised by
//! `Basic base64(username:token)`. Uploaded bytes live in memory, by `media_id`, and are
//! served back by the HTTP layer at `GET /media/<media_id>`.

use super::model::UserKey;
use super::{Backend, ConnId, Outcome};
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How long an upload token stays valid.
pub const UPLOAD_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;
/// Largest accepted image upload (`type=image`), bytes.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// Largest accepted file upload (`type=file`), bytes.
pub const MAX_FILE_BYTES: usize = 100 * 1024 * 1024;
/// The path prefix under which stored media are served.
pub const MEDIA_PATH: &str = "/media/";
/// Bytes of stored media one app may hold (all its users' uploads and seeds together).
pub const MEDIA_QUOTA_BYTES: usize = 256 * 1024 * 1024;
/// Live upload tokens one user may hold; a new one drops the oldest.
pub const MAX_TOKENS_PER_USER: usize = 16;

/// What kind of upload (`?type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    File,
}

impl MediaKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(Self::Image),
            "file" => Some(Self::File),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::File => "file",
        }
    }
}

/// One stored upload.
#[derive(Debug, Clone)]
pub struct StoredMedia {
    pub bytes: Arc<[u8]>,
    pub content_type: String,
    pub name: String,
    pub owner: UserKey,
    /// Visible app-wide (seeded fixtures).
    pub public: bool,
    /// Users a message carrying this media was delivered to.
    pub readers: HashSet<UserKey>,
    /// Groups a message carrying this media was sent to (their current members see it).
    pub groups: HashSet<u64>,
}

/// Why an upload was refused; the HTTP layer maps it to a status and
/// `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// 401: missing or bad `Authorization`.
    Unauthorized(String),
    /// 413: over the size limit (code 898061, which the SDK maps to 880210).
    TooLarge(String),
    /// 400: bad request (unknown `type`, not an image, empty body).
    Invalid(String),
    /// 413: the app's media quota is used up (code 880210, passed to the app as is).
    QuotaExceeded(String),
}

impl UploadError {
    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized(_) => 401,
            Self::TooLarge(_) | Self::QuotaExceeded(_) => 413,
            Self::Invalid(_) => 400,
        }
    }

    /// The JSON body `{"error":{"code","message"}}`.
    pub fn body(&self) -> Value {
        let (code, msg) = match self {
            Self::Unauthorized(m) => (Code::InvalidAuthorization, m),
            Self::TooLarge(m) => (Code::UploadTooLarge, m),
            Self::Invalid(m) => (Code::InvalidValue, m),
            Self::QuotaExceeded(m) => (Code::FileTooLarge, m),
        };
        json!({"error": {"code": code.number(), "message": msg}})
    }
}

/// The media part of the backend state.
#[derive(Debug)]
pub struct MediaState {
    /// token → (owner, expiry ms, issue number).
    tokens: HashMap<String, (UserKey, i64, u64)>,
    pub(super) blobs: HashMap<String, StoredMedia>,
    /// `http://host:port` of the server, for `get_resource` URLs; empty = relative URLs.
    pub(super) base_url: String,
    pub max_image_bytes: usize,
    pub max_file_bytes: usize,
    /// Bytes of media per app ([`MEDIA_QUOTA_BYTES`] by default).
    pub quota_bytes: usize,
    /// Stored bytes per appkey.
    used_bytes: HashMap<String, usize>,
    /// Key of the `get_resource` URL signatures (random per backend).
    pub(super) url_key: [u8; 32],
}

impl MediaState {
    /// The stored media by media_id (saving the state: `backend/saved.rs`).
    pub(super) fn blobs(&self) -> &HashMap<String, StoredMedia> {
        &self.blobs
    }

    /// Puts back one saved media file (restoring the state).
    pub(super) fn restore_blob(&mut self, media_id: String, m: StoredMedia) {
        self.blobs.insert(media_id, m);
    }
}

impl Default for MediaState {
    fn default() -> Self {
        Self {
            tokens: HashMap::new(),
            blobs: HashMap::new(),
            base_url: String::new(),
            max_image_bytes: MAX_IMAGE_BYTES,
            max_file_bytes: MAX_FILE_BYTES,
            quota_bytes: MEDIA_QUOTA_BYTES,
            used_bytes: HashMap::new(),
            url_key: super::media_access::random_key(),
        }
    }
}

/// The upload's file name as the SDK's file messages need it (`fname`): the multipart
/// file name, else `upload` plus the detected extension.
fn default_name(format: &str) -> String {
    if format.is_empty() {
        "upload".to_owned()
    } else {
        format!("upload.{format}")
    }
}

/// `(format, mime)` of a supported image, from its header bytes.
fn image_format(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    use imagesize::ImageType as T;
    match imagesize::image_type(bytes).ok()? {
        T::Png => Some(("png", "image/png")),
        T::Jpeg => Some(("jpg", "image/jpeg")),
        T::Gif => Some(("gif", "image/gif")),
        T::Webp => Some(("webp", "image/webp")),
        T::Bmp => Some(("bmp", "image/bmp")),
        _ => None,
    }
}

/// Decodes `Basic base64(username:token)` (browser `btoa`, i.e. Latin-1).
pub fn parse_basic_auth(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let rest = header.trim();
    let (scheme, cred) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cred.trim())
        .ok()?;
    let text: String = match String::from_utf8(raw.clone()) {
        Ok(s) => s,
        Err(_) => raw.iter().map(|b| char::from(*b)).collect(),
    };
    let (user, token) = text.split_once(':')?;
    Some((user.to_owned(), token.to_owned()))
}

impl Backend {
    /// Sets the server's public base URL (`http://host:port`) used in `get_resource`.
    pub fn set_public_url(&mut self, url: &str) {
        self.media.base_url = url.trim_end_matches('/').to_owned();
    }

    /// Overrides the upload size limits (tests, small deployments).
    pub fn set_media_limits(&mut self, max_image_bytes: usize, max_file_bytes: usize) {
        self.media.max_image_bytes = max_image_bytes;
        self.media.max_file_bytes = max_file_bytes;
    }

    /// The size limit of an upload kind.
    pub fn media_limit(&self, kind: MediaKind) -> usize {
        match kind {
            MediaKind::Image => self.media.max_image_bytes,
            MediaKind::File => self.media.max_file_bytes,
        }
    }

    /// A stored upload.
    pub fn media(&self, media_id: &str) -> Option<&StoredMedia> {
        self.media.blobs.get(media_id)
    }

    pub(super) fn get_upload_token(
        &mut self,
        conn: ConnId,
        _a: Args<'_>,
    ) -> Result<Outcome, Failure> {
        let me = self.me(conn)?;
        let now = self.now_ms();
        self.media.tokens.retain(|_, (_, exp, _)| *exp > now);
        self.drop_oldest_tokens(&me);
        let n = self.ids.next_media();
        // Keyed with the backend's random key: tokens cannot be predicted from the
        // (observable) counter and clock.
        let token = self.sign_media(&format!("uptoken:{me}:{n}"), now)[..32].to_owned();
        self.media
            .tokens
            .insert(token.clone(), (me, now + UPLOAD_TOKEN_TTL_MS, n));
        let mut f = Map::new();
        f.insert("uptoken".into(), json!(token));
        Ok(Outcome::ok(f))
    }

    /// Checks an upload's credentials: `appkey` from `X-App-Key` (if sent) and the
    /// decoded `Authorization` header.
    pub fn check_upload_auth(
        &self,
        appkey: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<UserKey, UploadError> {
        let header = authorization
            .ok_or_else(|| UploadError::Unauthorized("Authorization header is required".into()))?;
        let (username, token) = parse_basic_auth(header).ok_or_else(|| {
            UploadError::Unauthorized("Authorization must be Basic base64(username:token)".into())
        })?;
        let now = self.now_ms();
        match self.media.tokens.get(&token) {
            Some((owner, exp, _)) if *exp > now && owner.username == username => {
                if appkey.is_some_and(|k| !k.is_empty() && k != owner.appkey) {
                    return Err(UploadError::Unauthorized(
                        "X-App-Key does not match the token".into(),
                    ));
                }
                Ok(owner.clone())
            }
            Some((_, exp, _)) if *exp <= now => {
                Err(UploadError::Unauthorized("upload token expired".into()))
            }
            _ => Err(UploadError::Unauthorized("invalid upload token".into())),
        }
    }

    /// Keeps a user below [`MAX_TOKENS_PER_USER`] live tokens before a new one is added.
    fn drop_oldest_tokens(&mut self, me: &UserKey) {
        let mut mine: Vec<(u64, String)> = self
            .media
            .tokens
            .iter()
            .filter(|(_, (owner, _, _))| owner == me)
            .map(|(t, (_, _, n))| (*n, t.clone()))
            .collect();
        if mine.len() < MAX_TOKENS_PER_USER {
            return;
        }
        mine.sort();
        let excess = mine.len() + 1 - MAX_TOKENS_PER_USER;
        for (_, t) in mine.into_iter().take(excess) {
            self.media.tokens.remove(&t);
        }
    }

    /// How many live upload tokens a user holds.
    pub fn media_tokens_of(&self, user: &UserKey) -> usize {
        self.media
            .tokens
            .values()
            .filter(|(o, _, _)| o == user)
            .count()
    }

    /// Sets the per-app media quota in bytes.
    pub fn set_media_quota(&mut self, bytes: usize) {
        self.media.quota_bytes = bytes;
    }

    /// Bytes of media an app stores.
    pub fn media_used(&self, appkey: &str) -> usize {
        self.media.used_bytes.get(appkey).copied().unwrap_or(0)
    }

    /// An upload over HTTP: checks the credentials again (under the same lock as the
    /// store), stores, and spends the token. Tokens are single-use: a failed upload
    /// (too large, not an image, over quota) leaves the token usable.
    pub fn store_authorised_upload(
        &mut self,
        appkey: Option<&str>,
        authorization: Option<&str>,
        upload: (Vec<u8>, Option<&str>, Option<&str>),
        kind: MediaKind,
    ) -> Result<Value, UploadError> {
        let owner = self.check_upload_auth(appkey, authorization)?;
        let (bytes, content_type, name) = upload;
        let stored = self.store_upload(owner, kind, bytes, content_type, name)?;
        if let Some((_, token)) = authorization.and_then(parse_basic_auth) {
            self.media.tokens.remove(&token);
        }
        Ok(stored)
    }

    /// Gives a stored media a fixed id (fixtures that reference it by name).
    pub(super) fn rename_media(&mut self, from: &str, to: &str) -> bool {
        match self.media.blobs.remove(from) {
            Some(m) => {
                self.media.blobs.insert(to.to_owned(), m);
                true
            }
            None => false,
        }
    }

    /// Stores an authorised upload and returns the upload response JSON: always the eight
    /// fields `{media_id, media_crc32, width, height, format, fsize, hash, fname}`.
    pub fn store_upload(
        &mut self,
        owner: UserKey,
        kind: MediaKind,
        bytes: Vec<u8>,
        content_type: Option<&str>,
        name: Option<&str>,
    ) -> Result<Value, UploadError> {
        let limit = self.media_limit(kind);
        if bytes.len() > limit {
            return Err(UploadError::TooLarge(format!(
                "{} bytes exceed the {} limit of {limit} bytes",
                bytes.len(),
                kind.as_str()
            )));
        }
        if bytes.is_empty() {
            return Err(UploadError::Invalid("the upload is empty".into()));
        }
        let used = self.media_used(&owner.appkey);
        if used.saturating_add(bytes.len()) > self.media.quota_bytes {
            return Err(UploadError::QuotaExceeded(format!(
                "app {} stores {used} bytes of media; {} more would pass its quota of {} bytes",
                owner.appkey,
                bytes.len(),
                self.media.quota_bytes
            )));
        }
        let detected = image_format(&bytes);
        let (width, height) = match imagesize::blob_size(&bytes) {
            Ok(s) if detected.is_some() => (s.width, s.height),
            _ => (0, 0),
        };
        if kind == MediaKind::Image && (detected.is_none() || width == 0 || height == 0) {
            return Err(UploadError::Invalid(
                "not a PNG, JPEG, GIF, WebP or BMP image".into(),
            ));
        }
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let format = match detected {
            Some((f, _)) => f.to_owned(),
            None => name
                .and_then(|n| n.rsplit_once('.'))
                .map(|(_, ext)| ext.to_ascii_lowercase())
                .unwrap_or_default(),
        };
        let fname = name
            .map(str::to_owned)
            .unwrap_or_else(|| default_name(&format));
        let content_type = match detected {
            Some((_, mime)) => mime.to_owned(),
            None => content_type
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.starts_with("multipart/"))
                .unwrap_or("application/octet-stream")
                .to_owned(),
        };
        let crc = crc32fast::hash(&bytes);
        let hash = {
            use md5::{Digest, Md5};
            hex::encode(Md5::digest(&bytes))
        };
        let n = self.ids.next_media();
        let media_id = format!("qiniu/{}/j/{}{:06}", kind.as_str(), &hash[..16], n);
        let fsize = bytes.len();
        *self
            .media
            .used_bytes
            .entry(owner.appkey.clone())
            .or_default() += fsize;
        self.media.blobs.insert(
            media_id.clone(),
            StoredMedia {
                bytes: bytes.into(),
                content_type,
                name: fname.clone(),
                owner,
                public: false,
                readers: HashSet::new(),
                groups: HashSet::new(),
            },
        );
        Ok(json!({
            "media_id": media_id,
            "media_crc32": crc,
            "width": width,
            "height": height,
            "format": format,
            "fsize": fsize,
            "hash": hash,
            "fname": fname,
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::md5_hex;
    use super::super::test_support::*;
    use super::super::UserKey;
    use super::*;
    use rstest::rstest;

    /// A minimal valid 3x2 PNG header (IHDR only is enough for the size).
    pub fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0]);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    pub fn gif(w: u16, h: u16) -> Vec<u8> {
        let mut v = b"GIF89a".to_vec();
        v.extend_from_slice(&w.to_le_bytes());
        v.extend_from_slice(&h.to_le_bytes());
        v.extend_from_slice(&[0, 0, 0, 0x3B]);
        v
    }

    pub fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        v.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);
        v
    }

    pub fn bmp(w: i32, h: i32) -> Vec<u8> {
        let mut v = b"BM".to_vec();
        v.extend_from_slice(&[0; 12]);
        v.extend_from_slice(&40u32.to_le_bytes());
        v.extend_from_slice(&w.to_le_bytes());
        v.extend_from_slice(&h.to_le_bytes());
        v.extend_from_slice(&[1, 0, 24, 0]);
        v.extend_from_slice(&[0; 24]);
        v
    }

    pub fn webp(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&30u32.to_le_bytes());
        v.extend_from_slice(b"WEBPVP8X");
        v.extend_from_slice(&10u32.to_le_bytes());
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
        v.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
        v
    }

    fn token(h: &mut Harness, conn: u64) -> String {
        let o = h.req(conn, "get_upload_token", json!({}));
        assert_eq!(o.code(), Some(0), "{o:?}");
        resp(&o)["uptoken"].as_str().expect("uptoken").to_owned()
    }

    fn basic(user: &str, tok: &str) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{tok}"))
        )
    }

    #[test]
    fn upload_token_authorises_its_user_until_it_expires() {
        let mut h = Harness::new();
        h.user(1, "alice");
        let t = token(&mut h, 1);
        let alice = UserKey::new(APP, "alice");
        assert_eq!(
            h.b.check_upload_auth(Some(APP), Some(&basic("alice", &t))),
            Ok(alice)
        );
        let bad = [
            (Some(APP), None),
            (Some(APP), Some("Bearer x".to_owned())),
            (Some(APP), Some(basic("bobby", &t))),
            (Some(APP), Some(basic("alice", "nope"))),
            (Some(APP2), Some(basic("alice", &t))),
        ];
        for (k, auth) in bad {
            let e = h.b.check_upload_auth(k, auth.as_deref()).unwrap_err();
            assert_eq!(e.status(), 401);
            assert_eq!(e.body()["error"]["code"], json!(882004));
        }
        h.clock.advance_ms(UPLOAD_TOKEN_TTL_MS);
        assert!(matches!(
            h.b.check_upload_auth(Some(APP), Some(&basic("alice", &t))),
            Err(UploadError::Unauthorized(_))
        ));
    }

    #[test]
    fn get_upload_token_needs_login() {
        let mut h = Harness::new();
        h.init(1, APP, SECRET);
        assert_eq!(h.req(1, "get_upload_token", json!({})).code(), Some(882004));
    }

    #[rstest]
    #[case::png(png(3, 2), 3, 2, "png", "image/png")]
    #[case::gif(gif(17, 9), 17, 9, "gif", "image/gif")]
    #[case::jpeg(jpeg(640, 480), 640, 480, "jpg", "image/jpeg")]
    #[case::bmp(bmp(31, 7), 31, 7, "bmp", "image/bmp")]
    #[case::webp(webp(300, 200), 300, 200, "webp", "image/webp")]
    fn image_uploads_report_real_dimensions_and_crc(
        #[case] bytes: Vec<u8>,
        #[case] w: u64,
        #[case] hgt: u64,
        #[case] fmt: &str,
        #[case] mime: &str,
    ) {
        let mut h = Harness::new();
        h.user(1, "alice");
        let owner = UserKey::new(APP, "alice");
        let r =
            h.b.store_upload(owner, MediaKind::Image, bytes.clone(), None, Some("pic"))
                .expect("stored");
        assert_eq!(r["width"], json!(w));
        assert_eq!(r["height"], json!(hgt));
        assert_eq!(r["format"], json!(fmt));
        assert_eq!(r["fsize"], json!(bytes.len()));
        assert_eq!(r["media_crc32"], json!(crc32fast::hash(&bytes)));
        // Deliberately repeated (the SDK facade lists the same fields): the test states
        // the wire format on its own rather than trust the client's list.
        for k in [
            "media_id",
            "media_crc32",
            "width",
            "height",
            "format",
            "fsize",
            "hash",
            "fname",
        ] {
            assert!(r.get(k).is_some(), "{k} missing");
        }
        let id = r["media_id"].as_str().unwrap();
        let m = h.b.media(id).expect("stored");
        assert_eq!(m.content_type, mime);
        assert_eq!(&*m.bytes, &bytes[..]);
    }

    #[test]
    fn file_uploads_keep_name_and_type() {
        let mut h = Harness::new();
        let owner = UserKey::new(APP, "alice");
        let r =
            h.b.store_upload(
                owner,
                MediaKind::File,
                b"hello".to_vec(),
                Some("text/plain"),
                Some("notes.TXT"),
            )
            .expect("stored");
        assert_eq!(r["fname"], json!("notes.TXT"));
        assert_eq!(r["format"], json!("txt"));
        assert_eq!(r["width"], json!(0));
        assert_eq!(r["hash"], json!(md5_hex("hello")));
        let m = h.b.media(r["media_id"].as_str().unwrap()).unwrap();
        assert_eq!(m.content_type, "text/plain");
    }

    #[test]
    fn upload_failures() {
        let mut h = Harness::new();
        h.b.set_media_limits(8, 4);
        let o = || UserKey::new(APP, "alice");
        let e =
            h.b.store_upload(o(), MediaKind::File, vec![1; 5], None, None)
                .unwrap_err();
        assert_eq!(e.status(), 413);
        assert_eq!(e.body()["error"]["code"], json!(898061));
        let e =
            h.b.store_upload(o(), MediaKind::Image, png(1, 1), None, None)
                .unwrap_err();
        assert_eq!(e.status(), 413);
        h.b.set_media_limits(MAX_IMAGE_BYTES, MAX_FILE_BYTES);
        let e =
            h.b.store_upload(o(), MediaKind::Image, b"not an image".to_vec(), None, None)
                .unwrap_err();
        assert_eq!(e.status(), 400);
        let e =
            h.b.store_upload(o(), MediaKind::File, vec![], None, None)
                .unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn get_resource_points_at_the_media_route() {
        let mut h = Harness::new();
        h.user(1, "alice");
        h.b.set_public_url("http://127.0.0.1:9/");
        let r =
            h.b.store_upload(
                UserKey::new(APP, "alice"),
                MediaKind::Image,
                png(2, 2),
                None,
                None,
            )
            .unwrap();
        let id = r["media_id"].as_str().unwrap().to_owned();
        let o = h.req(1, "get_resource", json!({"media_id": id}));
        assert_eq!(o.code(), Some(0));
        let url = resp(&o)["url"].as_str().expect("url").to_owned();
        let expires = (T0 + crate::backend::media_access::MEDIA_URL_TTL_MS) / 1000;
        let prefix = format!("http://127.0.0.1:9/media/{id}?expires={expires}&sign=");
        assert!(url.starts_with(&prefix), "{url}");
        let sign = &url[prefix.len()..];
        assert_eq!(sign.len(), 64, "{sign}");
        assert_eq!(
            h.b.check_media_url(&id, Some(&expires.to_string()), Some(sign)),
            Ok(())
        );
        assert_eq!(
            h.req(1, "get_resource", json!({"media_id": "qiniu/x"}))
                .code(),
            Some(880005)
        );
        assert_eq!(h.req(1, "get_resource", json!({})).code(), Some(880001));
    }

    #[test]
    fn basic_auth_parsing() {
        assert_eq!(
            parse_basic_auth(&basic("a", "b:c")),
            Some(("a".into(), "b:c".into()))
        );
        assert_eq!(parse_basic_auth("Basic !!!"), None);
        assert_eq!(parse_basic_auth("Basic"), None);
    }
}
