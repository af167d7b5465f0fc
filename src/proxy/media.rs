//! Media pass-through: `POST /resource` (the SDK's `upload_file`), its preflight, and
//! `GET /media/...` are forwarded to the upstream's HTTP origin on the same port as the
//! socket, streaming both ways (nothing is buffered whole). An upstream that cannot be
//! reached answers 502 with a JSON reason.

use super::upstream::Upstream;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Longest the upstream may take to accept the connection and answer with a head.
pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that belong to one hop and are not forwarded.
const HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "host",
];

pub fn router(upstream: Arc<Upstream>) -> Router {
    Router::new()
        .route("/resource", post(forward).options(forward))
        .route("/resource/", post(forward).options(forward))
        .route("/media/{*id}", get(forward).options(forward))
        .with_state(upstream)
}

/// The TLS client settings: certificates verified against the Mozilla roots.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            // The process's crypto provider: the one rustls is built with (ring only).
            Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// One HTTP/1.1 exchange over `io`.
async fn request<T>(
    io: T,
    out: hyper::Request<Body>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(out).await.map_err(|e| e.to_string())
}

fn bad_gateway(up: &Upstream, reason: String) -> Response {
    tracing::warn!(upstream = %up.url, error = %reason, "media pass-through failed");
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({"error": format!("upstream {}: {reason}", up.url)})),
    )
        .into_response()
}

async fn forward(State(up): State<Arc<Upstream>>, req: Request) -> Response {
    match tokio::time::timeout(MEDIA_TIMEOUT, send(&up, req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => bad_gateway(&up, e),
        Err(_) => bad_gateway(&up, format!("no answer within {MEDIA_TIMEOUT:?}")),
    }
}

async fn send(up: &Upstream, req: Request) -> Result<Response, String> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut builder = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", up.prefix));
    for (name, value) in &parts.headers {
        if !HOP.contains(&name.as_str()) {
            builder = builder.header(name, value);
        }
    }
    let host = HeaderValue::from_str(&up.hostport).map_err(|e| e.to_string())?;
    let out = builder
        .header(header::HOST, host)
        .body(body)
        .map_err(|e| e.to_string())?;
    let stream = TcpStream::connect(&up.hostport)
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    let resp = if up.tls {
        let name = rustls::pki_types::ServerName::try_from(up.host.clone())
            .map_err(|e| format!("TLS: bad server name {:?}: {e}", up.host))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        request(tls, out).await?
    } else {
        request(stream, out).await?
    };
    let (parts, body) = resp.into_parts();
    let mut r = Response::from_parts(parts, Body::new(body));
    for h in HOP {
        r.headers_mut().remove(h);
    }
    Ok(r)
}
