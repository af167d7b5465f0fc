//! The proxy's admin API: the parts of `/__admin/` that make sense without a backend
//! (health, fault rules, the wire journal), behind the same [`Guard`] as `serve`. The
//! routes answer exactly as `serve`'s (docs/admin-api.md).

use crate::faults::{FaultLayer, FaultSpec, RuleError};
use crate::server::guard::Guard;
use crate::transport::Engine;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct ProxyAdmin {
    pub faults: Arc<FaultLayer>,
    pub engine: Arc<Engine>,
    pub upstream: Arc<str>,
}

pub(crate) fn router(guard: Guard, state: ProxyAdmin) -> Router {
    let routes = Router::new()
        .route("/__admin/health", get(health))
        .route(
            "/__admin/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/__admin/faults/{id}", delete(remove_fault))
        .route("/__admin/faults/{id}/enable", post(enable_fault))
        .route("/__admin/faults/{id}/disable", post(disable_fault))
        .route("/__admin/journal", get(journal).delete(clear_journal))
        .with_state(state);
    guard.protect(routes)
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

fn done(r: Result<(), RuleError>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => rule_error(e),
    }
}

async fn health(State(s): State<ProxyAdmin>) -> Json<Value> {
    Json(json!({
        "ok": true,
        "sessions": s.engine.session_count(),
        "proxy": {"upstream": &*s.upstream},
    }))
}

async fn list_faults(State(s): State<ProxyAdmin>) -> Json<Value> {
    Json(json!(s.faults.rules()))
}

async fn add_fault(State(s): State<ProxyAdmin>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad fault rule: {e}")),
    };
    match s.faults.add(spec) {
        Ok(()) => (StatusCode::CREATED, Json(json!(s.faults.rules()))).into_response(),
        Err(e) => rule_error(e),
    }
}

async fn clear_faults(State(s): State<ProxyAdmin>) -> StatusCode {
    s.faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(s): State<ProxyAdmin>, Path(id): Path<String>) -> Response {
    done(s.faults.remove(&id))
}

async fn enable_fault(State(s): State<ProxyAdmin>, Path(id): Path<String>) -> Response {
    done(s.faults.set_enabled(&id, true))
}

async fn disable_fault(State(s): State<ProxyAdmin>, Path(id): Path<String>) -> Response {
    done(s.faults.set_enabled(&id, false))
}

async fn journal(
    State(s): State<ProxyAdmin>,
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
    let keep =
        |want: Option<&String>, have: Option<&str>| want.is_none_or(|w| Some(w.as_str()) == have);
    let entries: Vec<_> = s
        .faults
        .journal(since)
        .into_iter()
        .filter(|e| keep(q.get("conn"), Some(e.conn.to_string().as_str())))
        .filter(|e| keep(q.get("user"), e.user.as_deref()))
        .filter(|e| keep(q.get("event"), e.event.as_deref()))
        .filter(|e| keep(q.get("dir"), Some(e.dir)))
        .filter(|e| keep(q.get("kind"), Some(e.kind)))
        .collect();
    Json(json!(entries)).into_response()
}

async fn clear_journal(State(s): State<ProxyAdmin>) -> StatusCode {
    s.faults.clear_journal();
    StatusCode::NO_CONTENT
}
