//! The admin routes that need only the fault layer: fault rules, network presets (which
//! are fault rules) and the wire journal.
//! `serve` and `proxy` both serve them (docs/admin-api.md), so they are written once.

use crate::faults::{FaultLayer, FaultSpec, RuleError};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// `/__admin/faults...`, `/__admin/network` and `/__admin/journal`, on `faults`.
pub(crate) fn routes<S>(faults: Arc<FaultLayer>) -> Router<S> {
    Router::new()
        .route(
            "/__admin/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/__admin/faults/{id}", delete(remove_fault))
        .route("/__admin/faults/{id}/enable", post(enable_fault))
        .route("/__admin/faults/{id}/disable", post(disable_fault))
        .route("/__admin/journal", get(journal).delete(clear_journal))
        .route("/__admin/network", get(list_network).post(set_network))
        .with_state(faults)
}

/// `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// A rule error as its status: 404 unknown id, 409 id taken, 400 invalid rule.
pub(crate) fn rule_error(e: RuleError) -> Response {
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

async fn list_faults(State(f): State<Arc<FaultLayer>>) -> Json<Value> {
    Json(json!(f.rules()))
}

async fn add_fault(State(f): State<Arc<FaultLayer>>, body: axum::body::Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad fault rule: {e}")),
    };
    match f.add(spec) {
        Ok(()) => (StatusCode::CREATED, Json(json!(f.rules()))).into_response(),
        Err(e) => rule_error(e),
    }
}

async fn clear_faults(State(f): State<Arc<FaultLayer>>) -> StatusCode {
    f.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(f): State<Arc<FaultLayer>>, Path(id): Path<String>) -> Response {
    done(f.remove(&id))
}

async fn enable_fault(State(f): State<Arc<FaultLayer>>, Path(id): Path<String>) -> Response {
    done(f.set_enabled(&id, true))
}

async fn disable_fault(State(f): State<Arc<FaultLayer>>, Path(id): Path<String>) -> Response {
    done(f.set_enabled(&id, false))
}

async fn journal(
    State(f): State<Arc<FaultLayer>>,
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
    let entries: Vec<_> = f
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

async fn clear_journal(State(f): State<Arc<FaultLayer>>) -> StatusCode {
    f.clear_journal();
    StatusCode::NO_CONTENT
}

async fn list_network(State(f): State<Arc<FaultLayer>>) -> Json<Value> {
    Json(super::network::listing(&f))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkChoice {
    preset: String,
}

async fn set_network(State(f): State<Arc<FaultLayer>>, body: axum::body::Bytes) -> Response {
    let c: NetworkChoice = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"preset\": NAME}}: {e}"),
            )
        }
    };
    match super::network::apply(&f, &c.preset) {
        Ok(()) => Json(super::network::listing(&f)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}
