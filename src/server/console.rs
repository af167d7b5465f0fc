//! The browser console at `/__console/` (docs/console.md): static HTML, CSS and JS built
//! into the binary (no build step, no framework, no CDN), served behind the guard's page
//! checks with a strict Content-Security-Policy. Everything the console shows or does goes
//! through the admin API, under the full guard (token included).
//!
//! Also `GET /__admin/api`: the table the console builds its forms from (the methods
//! `act` performs with the guide's argument names, the fault actions, the frame kinds).

use super::guard::Guard;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The console's files: name, media type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    ),
    (
        "util.js",
        "text/javascript; charset=utf-8",
        include_str!("console/util.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("console/app.js"),
    ),
    (
        "wire.js",
        "text/javascript; charset=utf-8",
        include_str!("console/wire.js"),
    ),
    (
        "people.js",
        "text/javascript; charset=utf-8",
        include_str!("console/people.js"),
    ),
    (
        "network.js",
        "text/javascript; charset=utf-8",
        include_str!("console/network.js"),
    ),
    (
        "record.js",
        "text/javascript; charset=utf-8",
        include_str!("console/record.js"),
    ),
];

/// The console's Content-Security-Policy: its own scripts and styles only, calls to its
/// own origin only, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `/__console/` and its files, behind `guard`'s page checks.
pub(crate) fn router(guard: Guard) -> Router {
    let routes = Router::new()
        .route(
            "/__console",
            get(|| async { Redirect::permanent("/__console/") }),
        )
        .route("/__console/", get(|| async { file("index.html") }))
        .route(
            "/__console/{name}",
            get(|Path(name): Path<String>| async move { file(&name) }),
        );
    guard.protect_pages(routes)
}

/// One file with the console's security headers, or 404.
fn file(name: &str) -> Response {
    let Some((_, kind, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such console file"})),
        )
            .into_response();
    };
    let mut resp = (*body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// Fault actions as the console offers them: name and an example value.
const FAULT_ACTIONS: &[(&str, &str)] = &[
    ("drop", "\"drop\""),
    ("duplicate", "\"duplicate\""),
    ("reorder", "\"reorder\""),
    ("kick", "\"kick\""),
    ("corrupt", "\"corrupt\""),
    ("stop_pings", "\"stop_pings\""),
    ("never_answer", "\"never_answer\""),
    ("refuse_websocket", "\"refuse_websocket\""),
    ("refuse_upgrade", "\"refuse_upgrade\""),
    ("refuse_polling", "\"refuse_polling\""),
    ("delay", "{\"delay\": 1500}"),
    ("error", "{\"error\": 880209}"),
    (
        "close",
        "{\"close\": {\"abrupt\": false, \"after\": false}}",
    ),
    ("throttle", "{\"throttle\": 2000}"),
    ("restart", "{\"restart\": {\"down_ms\": 3000}}"),
];

/// Frame kinds a rule may match.
const KINDS: &[&str] = &[
    "handshake",
    "connect",
    "disconnect",
    "ping",
    "pong",
    "noop",
    "request",
    "ack",
    "response",
    "push",
];

/// `GET /__admin/api`: `{"methods": [{"name", "args"}], "fault_actions": [{"name",
/// "example"}], "kinds": [...]}`; the methods are those `act` performs.
pub(crate) async fn api() -> Json<Value> {
    let methods: Vec<Value> = crate::scenario::api::METHODS
        .iter()
        .filter(|(m, _)| super::act::METHODS.contains(m))
        .map(|(m, args)| json!({"name": m, "args": args}))
        .collect();
    let actions: Vec<Value> = FAULT_ACTIONS
        .iter()
        .map(|(n, ex)| {
            let example: Value = serde_json::from_str(ex).unwrap_or(Value::Null);
            json!({"name": n, "example": example})
        })
        .collect();
    Json(json!({"methods": methods, "fault_actions": actions, "kinds": KINDS}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_action_example_is_a_valid_rule() {
        for (name, ex) in FAULT_ACTIONS {
            let rule = format!("{{\"id\": \"x\", \"action\": {ex}}}");
            let spec: crate::faults::FaultSpec =
                serde_json::from_str(&rule).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(spec.action.name(), *name);
            crate::faults::validate(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn every_act_method_is_in_the_table() {
        for m in super::super::act::METHODS {
            assert!(
                crate::scenario::api::method_args(m).is_some(),
                "{m} is not in the guide's table"
            );
        }
    }
}
