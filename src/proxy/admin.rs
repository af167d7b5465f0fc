//! The proxy's admin API: the parts of `/__admin/` that make sense without a backend
//! (health, fault rules, the wire journal), behind the same [`Guard`] as `serve`. The
//! routes answer exactly as `serve`'s (docs/admin-api.md).

use crate::faults::FaultLayer;
use crate::server::admin_faults;
use crate::server::guard::Guard;
use crate::transport::Engine;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
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
        .merge(admin_faults::routes(state.faults.clone()))
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
