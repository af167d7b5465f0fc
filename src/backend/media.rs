//! Media: `get_upload_token`, the upload that the HTTP layer hands over, and
//! `get_resource` (protocol.md 6).
//!
//! Tokens are stored per user with an expiry; an upload is authorised by
//! `Basic base64(username:token)`. Uploaded bytes live in memory, by `media_id`, and are
//! served back by the HTTP layer at `GET /media/<media_id>`.

use super::model::UserKey;
use super::{md5_hex, Backend, ConnId, Outcome};
use crate::protocol::{Args, Code, Failure};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// How long an upload token stays valid.
pub const UPLOAD_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;
/// Largest accepted image upload (`type=image`), bytes.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// Largest accepted file upload (`type=file`), bytes.
pub const MAX_FILE_BYTES: usize = 100 * 1024 * 1024;
/// The path prefix under which stored media are served.
pub const MEDIA_PATH: &str = "/media/";

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
}

impl UploadError {
    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized(_) => 401,
            Self::TooLarge(_) => 413,
            Self::Invalid(_) => 400,
        }
    }

    /// The JSON body `{"error":{"code","message"}}`.
    pub fn body(&self) -> Value {
        let (code, msg) = match self {
            Self::Unauthorized(m) => (Code::InvalidAuthorization, m),
            Self::TooLarge(m) => (Code::UploadTooLarge, m),
            Self::Invalid(m) => (Code::InvalidValue, m),
        };
        json!({"error": {"code": code.number(), "message": msg}})
    }
}

/// The media part of the backend state.
#[derive(Debug)]
pub struct MediaState {
    /// token → (owner, expiry ms).
    tokens: HashMap<String, (UserKey, i64)>,
    blobs: HashMap<String, StoredMedia>,
    /// `http://host:port` of the server, for `get_resource` URLs; empty = relative URLs.
    base_url: String,
    pub max_image_bytes: usize,
    pub max_file_bytes: usize,
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
        self.media.tokens.retain(|_, (_, exp)| *exp > now);
        let n = self.ids.next_media();
        let token = md5_hex(&format!("uptoken:{me}:{n}:{now}"));
        self.media
            .tokens
            .insert(token.clone(), (me, now + UPLOAD_TOKEN_TTL_MS));
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
            Some((owner, exp)) if *exp > now && owner.username == username => {
                if appkey.is_some_and(|k| !k.is_empty() && k != owner.appkey) {
                    return Err(UploadError::Unauthorized(
                        "X-App-Key does not match the token".into(),
                    ));
                }
                Ok(owner.clone())
            }
            Some((_, exp)) if *exp <= now => {
                Err(UploadError::Unauthorized("upload token expired".into()))
            }
            _ => Err(UploadError::Unauthorized("invalid upload token".into())),
        }
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
        self.media.blobs.insert(
            media_id.clone(),
            StoredMedia {
                bytes: bytes.into(),
                content_type,
                name: fname.clone(),
                owner,
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

    pub(super) fn get_resource(&mut self, conn: ConnId, a: Args<'_>) -> Result<Outcome, Failure> {
        self.me(conn)?;
        let media_id = a.str("media_id")?;
        if !self.media.blobs.contains_key(media_id) {
            return Err(Failure::new(
                Code::FileNotExist,
                format!("media {media_id} does not exist"),
            ));
        }
        let url = format!("{}{MEDIA_PATH}{media_id}", self.media.base_url);
        let mut f = Map::new();
        f.insert("url".into(), json!(url));
        Ok(Outcome::ok(f))
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
        assert_eq!(
            resp(&o)["url"],
            json!(format!("http://127.0.0.1:9/media/{id}"))
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
