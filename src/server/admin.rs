//! The admin HTTP API at `/__admin/` (see `docs/admin-api.md`): fault rules, the wire
//! journal, state, virtual time, reset and scenario loading.

use super::guard::Guard;
use super::{Hub, ServerConfig};
use crate::backend::{Backend, Clock, OffsetClock};
use crate::faults::{FaultLayer, FaultSpec, RuleError};
use crate::scenario::FileAccess;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub hub: Arc<Hub>,
    pub faults: Arc<FaultLayer>,
    pub clock: OffsetClock,
    pub shared_clock: Arc<dyn Clock>,
    pub initial: Arc<ServerConfig>,
    /// Base URL for `get_resource`, set on every backend this API builds.
    pub public_url: String,
    /// Where posted scenarios may read files (`--admin-files-root`); none: nowhere.
    pub files_root: Option<std::path::PathBuf>,
    /// Device sessions of `POST /__admin/act`.
    pub devices: Arc<super::act::Devices>,
    /// Open `GET /__admin/events` streams.
    pub subscribers: Arc<super::events::Subscribers>,
}

/// The admin routes, behind `guard` (Host, Origin, token and content-type checks).
pub(crate) fn router(guard: Guard, state: AdminState) -> Router {
    let routes = Router::new()
        .route("/__admin/health", get(health))
        .route("/__admin/state", get(snapshot))
        .route("/__admin/messages", get(messages))
        .route(
            "/__admin/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/__admin/faults/{id}", axum::routing::delete(remove_fault))
        .route("/__admin/faults/{id}/enable", post(enable_fault))
        .route("/__admin/faults/{id}/disable", post(disable_fault))
        .route("/__admin/journal", get(journal).delete(clear_journal))
        .route("/__admin/clock", get(clock).post(advance_clock))
        .route("/__admin/reset", post(reset))
        .route("/__admin/scenario", post(load_scenario))
        .route("/__admin/act", post(super::act::act))
        .route("/__admin/events", get(super::events::events))
        .route(super::guard::SIGN_PATH, get(super::sign::sign))
        .route("/__admin/network", get(list_network).post(set_network))
        .with_state(state);
    guard.accept_yaml_at("/__admin/scenario").protect(routes)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn rule_error(e: RuleError) -> Response {
    let status = match e {
        RuleError::Unknown(_) => StatusCode::NOT_FOUND,
        RuleError::Duplicate(_) => StatusCode::CONFLICT,
        RuleError::Invalid(..) => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

async fn health(State(s): State<AdminState>) -> Json<Value> {
    let sessions = s.hub.engine().map(|e| e.session_count()).unwrap_or(0);
    Json(json!({"ok": true, "sessions": sessions, "devices": s.devices.count()}))
}

async fn snapshot(State(s): State<AdminState>) -> Json<Value> {
    let mut state = s.hub.with_backend(|b| b.snapshot());
    crate::faults::redact::redact_value(&mut state);
    Json(state)
}

async fn messages(State(s): State<AdminState>) -> Json<Value> {
    Json(Value::Array(s.hub.with_backend(|b| b.messages())))
}

async fn list_faults(State(s): State<AdminState>) -> Json<Value> {
    Json(json!(s.faults.rules()))
}

async fn add_fault(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad fault rule: {e}")),
    };
    match s.faults.add(spec) {
        Ok(()) => (StatusCode::CREATED, Json(json!(s.faults.rules()))).into_response(),
        Err(e) => rule_error(e),
    }
}

async fn clear_faults(State(s): State<AdminState>) -> StatusCode {
    s.faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match s.faults.remove(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => rule_error(e),
    }
}

async fn enable_fault(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match s.faults.set_enabled(&id, true) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => rule_error(e),
    }
}

async fn disable_fault(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    match s.faults.set_enabled(&id, false) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => rule_error(e),
    }
}

async fn journal(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since = match q.get("since").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "since must be a journal sequence number",
            )
        }
    };
    let entries = s.faults.journal(since);
    let filtered: Vec<_> = entries
        .into_iter()
        .filter(|e| q.get("conn").is_none_or(|c| c == &e.conn.to_string()))
        .filter(|e| {
            q.get("user")
                .is_none_or(|u| e.user.as_deref() == Some(u.as_str()))
        })
        .filter(|e| {
            q.get("event")
                .is_none_or(|v| e.event.as_deref() == Some(v.as_str()))
        })
        .filter(|e| q.get("dir").is_none_or(|v| e.dir == v))
        .filter(|e| q.get("kind").is_none_or(|v| e.kind == v))
        .collect();
    Json(json!(filtered)).into_response()
}

async fn list_network(State(s): State<AdminState>) -> Json<Value> {
    Json(super::network::listing(&s.faults))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkChoice {
    preset: String,
}

async fn set_network(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let c: NetworkChoice = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"preset\": NAME}}: {e}"),
            )
        }
    };
    match super::network::apply(&s.faults, &c.preset) {
        Ok(()) => Json(super::network::listing(&s.faults)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn clear_journal(State(s): State<AdminState>) -> StatusCode {
    s.faults.clear_journal();
    StatusCode::NO_CONTENT
}

async fn clock(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({"now_ms": s.shared_clock.now_ms(), "offset_ms": s.clock.offset_ms()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    advance_ms: i64,
}

async fn advance_clock(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let a: Advance = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"advance_ms\": N}}: {e}"),
            )
        }
    };
    if a.advance_ms < 0 {
        return error(StatusCode::BAD_REQUEST, "time only moves forward");
    }
    s.clock.advance_ms(a.advance_ms);
    Json(json!({"now_ms": s.shared_clock.now_ms(), "offset_ms": s.clock.offset_ms()}))
        .into_response()
}

async fn reset(State(s): State<AdminState>) -> Response {
    // The new state starts at real time (the old offset would expire every signature).
    s.clock.rewind();
    let backend = match Backend::try_new(s.initial.backend.clone(), s.shared_clock.clone()) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.join("; ")),
    };
    if let Err(e) = s.faults.replace(s.initial.faults.clone()) {
        return rule_error(e);
    }
    install(&s, backend);
    StatusCode::NO_CONTENT.into_response()
}

/// Puts a freshly built backend in place with the server's settings, and starts a new
/// journal.
fn install(s: &AdminState, mut backend: Backend) {
    backend.set_public_url(&s.public_url);
    backend.set_media_quota(s.initial.media_quota_bytes);
    s.hub.replace_backend(backend);
    s.faults.clear_journal();
}

/// [`install`] for a scenario load: live sessions are kept where the new state allows
/// (docs/admin-api.md); the answer lists what was kept and what was closed, and why.
fn install_keeping(s: &AdminState, mut backend: Backend) -> Value {
    backend.set_public_url(&s.public_url);
    backend.set_media_quota(s.initial.media_quota_bytes);
    let report = s.hub.replace_backend_keeping(backend);
    s.faults.clear_journal();
    let (closed, kept): (Vec<_>, Vec<_>) = report.into_iter().partition(|r| r.reason.is_some());
    json!({"kept": kept, "closed": closed})
}

/// What a posted scenario may read: nothing, or files under `--admin-files-root`.
fn file_access(s: &AdminState) -> Result<FileAccess, String> {
    match &s.files_root {
        None => Ok(FileAccess::Denied),
        Some(root) => FileAccess::under(root)
            .map_err(|e| format!("the files root {} is unusable: {e}", root.display())),
    }
}

async fn load_scenario(State(s): State<AdminState>, body: String) -> Response {
    let access = match file_access(&s) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let scenario = match crate::scenario::parse_with(&body, "<request body>", &access) {
        Ok(sc) => sc,
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid scenario", "errors": list})),
            )
                .into_response();
        }
    };
    s.clock.rewind();
    let backend = match Backend::try_new(scenario.backend_config(), s.shared_clock.clone()) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.join("; ")),
    };
    if let Err(e) = s.faults.replace(scenario.faults()) {
        return rule_error(e);
    }
    let sessions = install_keeping(&s, backend);
    Json(json!({"loaded": scenario.name, "sessions": sessions})).into_response()
}
