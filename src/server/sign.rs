//! `GET /__admin/sign`: a fresh `c_init` auth payload for a page that has no backend to
//! sign for it (docs/admin-api.md, "Signing"). The app's secret never leaves the server:
//! only `{appkey, random_str, timestamp, signature}` does, valid for the server's
//! signature TTL (`serve --signature-ttl`).

use super::admin::AdminState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A random-looking string, different on every call.
fn random_str(now_ms: i64) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    crate::protocol::sign::md5_hex(&format!("{now_ms}:{n}:{nanos}:{}", std::process::id()))[..16]
        .to_owned()
}

/// `GET /__admin/sign[?appkey=APPKEY]`.
pub(crate) async fn sign(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(k) = q.keys().find(|k| k.as_str() != "appkey") {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown parameter {k:?}; only appkey"),
        );
    }
    let appkey = match q.get("appkey") {
        Some(k) => k.clone(),
        None => match super::act::default_appkey(&s) {
            Some(k) => k,
            None => return error(StatusCode::NOT_FOUND, "the server has no app"),
        },
    };
    let secret = s.hub.read_backend(|b, _, _| {
        b.apps()
            .find(|a| a.appkey == appkey)
            .map(|a| a.secret.clone())
    });
    let Some(secret) = secret else {
        return error(StatusCode::NOT_FOUND, format!("unknown appkey {appkey:?}"));
    };
    let now = s.shared_clock.now_ms();
    let timestamp = now.to_string();
    let random = random_str(now);
    let signature = crate::protocol::sign::signature(&appkey, &timestamp, &random, &secret);
    Json(json!({
        "appkey": appkey,
        "random_str": random,
        "timestamp": timestamp,
        "signature": signature,
    }))
    .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}
