//! HTTP side of media (protocol.md 6): `POST /resource?type=image|file` (the SDK's
//! `upload_file`), its CORS preflight, and `GET /media/<media_id>` serving stored bytes.
//!
//! The body is `multipart/form-data` (any field name; the first part that carries a file
//! name wins, else the first part) or the raw bytes. Errors are JSON
//! `{"error":{"code","message"}}`: 401 bad credentials, 413 too large (898061) or over
//! the app's quota (880210), 400 bad request, 403 a `GET /media` URL that is not a
//! valid, unexpired `get_resource` URL (882004), 404 unknown media.
//!
//! Served media carry `X-Content-Type-Options: nosniff`, `Content-Security-Policy:
//! sandbox`, and `Content-Disposition: attachment` unless the type is a passive image,
//! audio, video or octet stream ([`serves_inline`]; docs/security.md).

use super::Hub;
use crate::backend::media::{MediaKind, UploadError};
use crate::backend::media_access::MediaUrlError;
use crate::protocol::Code;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Room for multipart framing on top of the size limit when reading the body.
const MULTIPART_SLACK: usize = 64 * 1024;

/// `/resource` and `/media/{*id}`.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/resource", post(upload).options(preflight))
        .route("/resource/", post(upload).options(preflight))
        .route("/media/{*id}", get(serve).options(preflight))
        .with_state(hub)
}

fn with_cors(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    with_cors(
        (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response(),
    )
}

fn error_response(e: &UploadError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, &e.body())
}

async fn preflight() -> Response {
    let mut resp = with_cors(StatusCode::NO_CONTENT.into_response());
    super::guard::preflight_headers(
        resp.headers_mut(),
        "POST, GET, OPTIONS",
        "X-App-Key, jm-channel, Authorization, Content-Type",
        "86400",
    );
    resp
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The uploaded file: `(bytes, content type, file name)`.
pub type Upload = (Vec<u8>, Option<String>, Option<String>);

async fn read_multipart(body: bytes::Bytes, boundary: String) -> Result<Upload, UploadError> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut first: Option<Upload> = None;
    loop {
        let field = mp
            .next_field()
            .await
            .map_err(|e| UploadError::Invalid(format!("bad multipart body: {e}")))?;
        let Some(field) = field else { break };
        let name = field.file_name().map(str::to_owned);
        let ctype = field.content_type().map(|m| m.to_string());
        let has_file = name.is_some();
        let data = field
            .bytes()
            .await
            .map_err(|e| UploadError::Invalid(format!("bad multipart body: {e}")))?;
        let part = (data.to_vec(), ctype, name);
        if has_file {
            return Ok(part);
        }
        if first.is_none() {
            first = Some(part);
        }
    }
    first.ok_or_else(|| UploadError::Invalid("the multipart body has no part".into()))
}

async fn upload(
    State(hub): State<Arc<Hub>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match do_upload(&hub, &q, &headers, body).await {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => {
            tracing::debug!(error = ?e, "upload refused");
            error_response(&e)
        }
    }
}

/// Whether a body error is the read limit (anywhere in its source chain).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

async fn do_upload(
    hub: &Hub,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, UploadError> {
    let kind_str = q.get("type").map(String::as_str).unwrap_or("file");
    let kind = MediaKind::parse(kind_str).ok_or_else(|| {
        UploadError::Invalid(format!("type must be image or file, not {kind_str}"))
    })?;
    let appkey = header_str(headers, "x-app-key");
    let auth = header_str(headers, "authorization");
    // Checked before the body is read (fail fast), and again when it is stored.
    let limit = hub.with_backend(|b| {
        b.check_upload_auth(appkey, auth)
            .map(|_| b.media_limit(kind))
    })?;
    let too_large = |n: String| {
        UploadError::TooLarge(format!(
            "{n} bytes exceed the {kind_str} limit of {limit} bytes"
        ))
    };
    let content_type = header_str(headers, "content-type").map(str::to_owned);
    let boundary = content_type
        .as_deref()
        .filter(|c| {
            c.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        })
        .map(|c| {
            multer::parse_boundary(c)
                .map_err(|e| UploadError::Invalid(format!("bad multipart Content-Type: {e}")))
        })
        .transpose()?;
    let read_limit = if boundary.is_some() {
        limit.saturating_add(MULTIPART_SLACK)
    } else {
        limit
    };
    if let Some(len) = header_str(headers, "content-length").and_then(|l| l.parse::<usize>().ok()) {
        if len > read_limit {
            return Err(too_large(len.to_string()));
        }
    }
    let bytes = axum::body::to_bytes(body, read_limit).await.map_err(|e| {
        if is_length_limit(&e) {
            too_large(format!("more than {read_limit}"))
        } else {
            UploadError::Invalid(format!("could not read the body: {e}"))
        }
    })?;
    let (data, ctype, name) = match boundary {
        Some(b) => read_multipart(bytes, b).await?,
        None => (
            bytes.to_vec(),
            content_type,
            q.get("name").cloned().or_else(|| q.get("fname").cloned()),
        ),
    };
    hub.with_backend(|b| {
        b.store_authorised_upload(
            appkey,
            auth,
            (data, ctype.as_deref(), name.as_deref()),
            kind,
        )
    })
}

/// The query of a `get_resource` URL.
#[derive(Debug, Default, serde::Deserialize)]
struct Signed {
    expires: Option<String>,
    sign: Option<String>,
}

async fn serve(
    State(hub): State<Arc<Hub>>,
    method: Method,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let signed = Signed {
        expires: q.get("expires").cloned(),
        sign: q.get("sign").cloned(),
    };
    let found = hub.with_backend(|b| {
        b.check_media_url(&id, signed.expires.as_deref(), signed.sign.as_deref())
            .map(|()| {
                b.media(&id)
                    .map(|m| (m.bytes.clone(), m.content_type.clone(), m.name.clone()))
            })
    });
    let (bytes, ctype, name) = match found {
        Ok(Some(m)) => m,
        Ok(None) => return not_found(&id),
        Err(MediaUrlError::NotFound(_)) => return not_found(&id),
        Err(MediaUrlError::Forbidden(why)) => {
            return json_response(
                StatusCode::FORBIDDEN,
                &json!({"error": {"code": Code::InvalidAuthorization.number(), "message": why}}),
            )
        }
    };
    let len = bytes.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes::Bytes::from_owner(bytes))
    };
    let mut resp = with_cors(body.into_response());
    let h = resp.headers_mut();
    for (k, v) in serve_headers(&ctype, &name) {
        h.insert(k, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

fn not_found(id: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": {"code": Code::FileNotExist.number(), "message": format!("media {id} does not exist")}}),
    )
}

/// Types a browser only ever renders passively: served inline. Everything else
/// (html, xhtml, svg, xml, javascript, css, pdf, text, unknown) is an attachment.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "application/octet-stream",
];

/// Whether a stored content type may be shown inline (module rule, docs/security.md).
pub fn serves_inline(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    INLINE_TYPES.contains(&essence.as_str())
        || essence.starts_with("audio/")
        || essence.starts_with("video/")
}

/// The headers of a served media: its type (or `application/octet-stream` when the
/// stored one is not a valid header value), `nosniff`, `Content-Security-Policy:
/// sandbox`, and `Content-Disposition: attachment` with the file name for active types.
fn serve_headers(content_type: &str, name: &str) -> Vec<(header::HeaderName, HeaderValue)> {
    let ctype = HeaderValue::from_str(content_type)
        .ok()
        .filter(|_| content_type.contains('/'))
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition = if serves_inline(content_type) {
        HeaderValue::from_static("inline")
    } else {
        HeaderValue::from_str(&attachment(name)).unwrap_or(HeaderValue::from_static("attachment"))
    };
    vec![
        (header::CONTENT_TYPE, ctype),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        ),
        (header::CONTENT_DISPOSITION, disposition),
    ]
}

/// `attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Parses an upload body as `POST /resource` does when its `Content-Type` is multipart:
/// the boundary from `content_type`, then the part [`read_multipart`] picks. The entry
/// point of the upload fuzz target (fuzz/); not part of the server's API.
#[doc(hidden)]
pub async fn parse_multipart_upload(
    content_type: &str,
    body: bytes::Bytes,
) -> Result<Upload, UploadError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| UploadError::Invalid(format!("bad multipart Content-Type: {e}")))?;
    read_multipart(body, boundary).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passive_types_are_served_inline() {
        for t in [
            "image/png",
            "IMAGE/JPEG",
            "image/gif; x=1",
            "audio/mpeg",
            "video/mp4",
            "application/octet-stream",
        ] {
            assert!(serves_inline(t), "{t}");
        }
        for t in [
            "text/html",
            "application/xhtml+xml",
            "image/svg+xml",
            "text/xml",
            "application/xml",
            "application/javascript",
            "text/javascript",
            "text/css",
            "text/plain",
            "application/pdf",
            "",
            "nonsense",
        ] {
            assert!(!serves_inline(t), "{t}");
        }
    }

    #[test]
    fn attachment_names_cannot_break_the_header() {
        let v = attachment("a\"b\r\nSet-Cookie: x;é.html");
        assert_eq!(
            v,
            "attachment; filename=\"a_b__Set-Cookie: x;_.html\"; \
             filename*=UTF-8''a%22b%0D%0ASet-Cookie%3A%20x%3B%C3%A9.html"
        );
        assert!(HeaderValue::from_str(&v).is_ok());
        let h = serve_headers("text/html", "p.html");
        let get = |n: &header::HeaderName| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get(&header::X_CONTENT_TYPE_OPTIONS),
            Some(HeaderValue::from_static("nosniff"))
        );
        assert_eq!(
            get(&header::CONTENT_SECURITY_POLICY),
            Some(HeaderValue::from_static("sandbox"))
        );
        let bad = serve_headers("bad\nvalue", "x");
        assert_eq!(
            get_of(&bad, &header::CONTENT_TYPE),
            "application/octet-stream"
        );
    }

    fn get_of(h: &[(header::HeaderName, HeaderValue)], n: &header::HeaderName) -> String {
        h.iter()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    #[tokio::test]
    async fn an_over_limit_body_is_recognised_as_such() {
        let e = axum::body::to_bytes(Body::from(vec![0u8; 10]), 5)
            .await
            .expect_err("over the limit");
        assert!(is_length_limit(&e));
    }

    #[tokio::test]
    async fn multipart_prefers_the_part_with_a_file_name() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nplain\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\
                    Content-Type: application/x-thing\r\n\r\nDATA\r\n--b--\r\n";
        let (data, ctype, name) = read_multipart(bytes::Bytes::from(body), "b".into())
            .await
            .expect("parsed");
        assert_eq!(data, b"DATA");
        assert_eq!(ctype.as_deref(), Some("application/x-thing"));
        assert_eq!(name.as_deref(), Some("a.bin"));
        let bad = read_multipart(bytes::Bytes::from("garbage"), "b".into()).await;
        assert!(matches!(bad, Err(UploadError::Invalid(_))));
    }
}
