//! The proxy's admin API: the parts of `/__admin/` that make sense without a backend
//! (health, fault rules, network presets, the wire journal and its live stream, the
//! recording, the console's table), behind the same [`Guard`] as `serve`. The routes
//! answer exactly as `serve`'s (docs/admin-api.md); `GET /__admin/api` says
//! `"mode": "proxy"` so the console offers only the views that apply (docs/console.md).

use super::record::Recorder;
use crate::faults::FaultLayer;
use crate::server::console::{self, Site};
use crate::server::guard::Guard;
use crate::server::{admin_faults, events};
use crate::transport::Engine;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct ProxyAdmin {
    pub faults: Arc<FaultLayer>,
    pub engine: Arc<Engine>,
    pub upstream: Arc<str>,
    /// What `GET /__admin/record` renders (kept whenever the admin API is on).
    pub recorder: Arc<Recorder>,
}

pub(crate) fn router(guard: Guard, state: ProxyAdmin) -> Router {
    let routes = Router::new()
        .route("/__admin/health", get(health))
        .route("/__admin/api", get(api))
        .route("/__admin/record", get(record))
        .merge(admin_faults::routes(state.faults.clone()))
        .merge(events::routes(state.faults.clone(), Default::default()))
        .with_state(state);
    guard.protect(routes)
}

async fn health(State(s): State<ProxyAdmin>) -> Json<Value> {
    Json(json!({
        "ok": true,
        "sessions": s.engine.session_count(),
        "proxy": {"upstream": &*s.upstream},
    }))
}

async fn api(State(s): State<ProxyAdmin>) -> Json<Value> {
    Json(console::table(&Site::Proxy {
        upstream: &s.upstream,
    }))
}

/// What went through the proxy so far, as scenario YAML (docs/proxy.md, "Recording").
async fn record(State(s): State<ProxyAdmin>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/yaml; charset=utf-8",
        )],
        s.recorder.render(),
    )
        .into_response()
}
