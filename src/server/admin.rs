//! The admin HTTP API at `/__admin/` (see `docs/admin-api.md`): fault rules, the wire
//! journal, state, virtual time, reset and scenario loading.

use super::admin_faults::{error, rule_error};
use super::guard::Guard;
use super::{Hub, ServerConfig};
use crate::backend::{Backend, Clock, OffsetClock};
use crate::faults::FaultLayer;
use crate::scenario::FileAccess;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
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
    /// `GET /__admin/record`: the journal's start state and the writer.
    pub recorder: super::record::Recorder,
}

/// The admin routes, behind `guard` (Host, Origin, token and content-type checks).
pub(crate) fn router(guard: Guard, state: AdminState) -> Router {
    let routes = Router::new()
        .route("/__admin/health", get(health))
        .route("/__admin/state", get(snapshot))
        .route("/__admin/messages", get(messages))
        .route("/__admin/clock", get(clock).post(advance_clock))
        .route("/__admin/reset", post(reset))
        .route("/__admin/scenario", post(load_scenario))
        .route("/__admin/act", post(super::act::act))
        .route(super::guard::SIGN_PATH, get(super::sign::sign))
        .route("/__admin/record", get(record))
        .route("/__admin/api", get(super::console::api))
        .merge(super::admin_faults::routes(state.faults.clone()))
        .merge(super::events::routes(
            state.faults.clone(),
            state.subscribers.clone(),
        ))
        .with_state(state);
    guard.accept_yaml_at("/__admin/scenario").protect(routes)
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

/// The session since the journal started, as scenario YAML (docs/console.md).
async fn record(State(s): State<AdminState>) -> Response {
    let text = s.recorder.render(&s.hub, &s.faults);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/yaml; charset=utf-8",
        )],
        text,
    )
        .into_response()
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
/// journal (and with it a new recording baseline).
fn install(s: &AdminState, mut backend: Backend) {
    backend.set_public_url(&s.public_url);
    backend.set_media_quota(s.initial.media_quota_bytes);
    s.hub.replace_backend(backend);
    // Also retakes the recording baseline (the hook set in `server::start`).
    s.faults.clear_journal();
}

/// [`install`] for a scenario load: live sessions are kept where the new state allows
/// (docs/admin-api.md); the answer lists what was kept and what was closed, and why.
fn install_keeping(s: &AdminState, mut backend: Backend) -> Value {
    backend.set_public_url(&s.public_url);
    backend.set_media_quota(s.initial.media_quota_bytes);
    let report = s.hub.replace_backend_keeping(backend);
    // Also retakes the recording baseline (the hook set in `server::start`).
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
    // Parsing may read files under the files root: off the runtime thread, which `serve`
    // shares with every connection.
    let parsed = tokio::task::spawn_blocking(move || {
        crate::scenario::parse_with(&body, "<request body>", &access)
    })
    .await;
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let scenario = match parsed {
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
