//! The browser console at `/__console/` (docs/console.md): static HTML, CSS and JS built
//! into the binary (no build step, no framework, no CDN), served behind the guard's page
//! checks with a strict Content-Security-Policy. Everything the console shows or does goes
//! through the admin API, under the full guard (token included).
//!
//! Also `GET /__admin/api`: the table the console builds its forms from (where it runs,
//! `serve` or `proxy`, and so which views and controls it offers; the methods `act`
//! performs with the guide's argument names, the fault actions, the frame kinds). `proxy`
//! serves the same files and router with its own table ([`Site::Proxy`]).

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

/// Where the console runs, which decides the views and controls it offers.
pub(crate) enum Site<'a> {
    /// `serve`: every view and control.
    Serve,
    /// `proxy`: no backend (no People, no `act`), no virtual clock, reset or scenario load.
    Proxy { upstream: &'a str },
}

/// `GET /__admin/api` on `serve`.
pub(crate) async fn api() -> Json<Value> {
    Json(table(&Site::Serve))
}

/// The console's table: `{"mode": "serve"|"proxy", "upstream"? , "views": [...],
/// "controls": [...], "methods": [{"name", "args"}], "fault_actions": [{"name",
/// "example"}], "kinds": [...]}`. The methods are those `act` performs (none on a proxy);
/// the page shows only the listed views and controls.
pub(crate) fn table(site: &Site) -> Value {
    let actions: Vec<Value> = FAULT_ACTIONS
        .iter()
        .map(|(n, ex)| {
            let example: Value = serde_json::from_str(ex).unwrap_or(Value::Null);
            json!({"name": n, "example": example})
        })
        .collect();
    let mut t = json!({"fault_actions": actions, "kinds": KINDS});
    let fields = match site {
        Site::Serve => {
            let methods: Vec<Value> = crate::scenario::api::METHODS
                .iter()
                .filter(|(m, _)| super::act::METHODS.contains(m))
                .map(|(m, args)| json!({"name": m, "args": args}))
                .collect();
            json!({"mode": "serve", "methods": methods,
                   "views": ["wire", "people", "network", "record"],
                   "controls": ["presets", "faults", "clock", "reset", "scenario"]})
        }
        Site::Proxy { upstream } => json!({"mode": "proxy", "upstream": upstream,
                   "methods": [], "views": ["wire", "network", "record"],
                   "controls": ["presets", "faults"]}),
    };
    if let (Some(t), Value::Object(f)) = (t.as_object_mut(), fields) {
        t.extend(f);
    }
    t
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
