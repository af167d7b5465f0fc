//! The access guard in front of the admin API (and any later browser-facing control
//! surface such as a `/__console/`): it keeps a hostile web page in the developer's
//! browser, or a DNS-rebound name, from driving the server. See `docs/security.md`.
//!
//! Every request passes four checks, in this order:
//! 1. `Host` (or the HTTP/2 authority) names this server: `localhost`, `127.0.0.1`,
//!    `[::1]`, the bound IP, a `--host` name given on the command line (and, on a
//!    wildcard bind, any IP literal: an IP cannot be rebound) with the bound port.
//!    Anything else is 403 (DNS rebinding).
//! 2. An `Origin`, when present, is `http://` plus such a host; `Sec-Fetch-Site`, when
//!    present, is `same-origin` or `none`. Anything else is 403 (cross-site requests).
//! 3. With a token configured, `Authorization: Bearer TOKEN` (compared in constant
//!    time), else 401.
//! 4. A request that may change state (not GET/HEAD/OPTIONS) carrying a body declares
//!    `application/json` (or, at the paths allowed to, a YAML type), else 415: the
//!    types a browser may send cross-site without a preflight (`text/plain`, forms) never
//!    reach a handler.
//!
//! Refusals are JSON `{"error": reason}`. The guard adds `Access-Control-Allow-*` headers
//! only at `/__admin/sign` and only for the origins listed with `--allow-origin` (which
//! skip check 2 there, and check 3 on a preflight); to any other origin, or at any other
//! route, a cross-origin page can neither read an answer nor pass a preflight.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// How the admin API is protected: the command line's `--admin-token`,
/// `--admin-files-root` and `--host` name.
#[derive(Clone, Default)]
pub struct AdminAccess {
    /// Every admin request must carry `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// Scenarios posted to the API may read files under this directory (and nowhere
    /// else); without it they may read no file at all.
    pub files_root: Option<PathBuf>,
    /// Host names accepted in `Host`/`Origin` besides the loopback names and the bound
    /// IP (the name given to `--host`).
    pub host_names: Vec<String>,
    /// Origins (`--allow-origin`, e.g. `http://localhost:5173`) allowed to call
    /// [`SIGN_PATH`] cross-origin, with CORS; no other route.
    pub sign_origins: Vec<String>,
}

/// The one route that `sign_origins` may call cross-origin.
pub const SIGN_PATH: &str = "/__admin/sign";

/// Never prints the token.
impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("files_root", &self.files_root)
            .field("host_names", &self.host_names)
            .field("sign_origins", &self.sign_origins)
            .finish()
    }
}

/// Media types accepted for a request body.
const JSON_TYPES: &[&str] = &["application/json"];
/// Media types also accepted where YAML bodies are allowed.
const YAML_TYPES: &[&str] = &["application/yaml", "application/x-yaml", "text/yaml"];

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({"error": self.reason}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"jmessage-mock admin\""),
            );
        }
        resp
    }
}

/// The checks for one server; cheap to clone.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    /// Accepted host names (lower case; IPv6 in brackets), without port.
    names: Vec<String>,
    port: u16,
    /// Wildcard bind: any IP literal is accepted as a host too.
    any_ip: bool,
    token: Option<String>,
    /// Path prefixes whose bodies may be YAML.
    yaml_paths: Vec<String>,
    /// Origins allowed at [`SIGN_PATH`] (lower case, no trailing slash).
    sign_origins: Vec<String>,
}

impl Guard {
    /// The guard of a server bound at `bound`, with `access`'s token and host names.
    pub fn new(bound: SocketAddr, access: &AdminAccess) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(String::from)
            .collect();
        let ip = ip_host(bound.ip());
        if !bound.ip().is_unspecified() && !names.contains(&ip) {
            names.push(ip);
        }
        for n in access.host_names.iter().map(|n| n.to_ascii_lowercase()) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        Self {
            inner: Arc::new(Inner {
                names,
                port: bound.port(),
                any_ip: bound.ip().is_unspecified(),
                token: access.token.clone().filter(|t| !t.is_empty()),
                yaml_paths: Vec::new(),
                sign_origins: access
                    .sign_origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                    .collect(),
            }),
        }
    }

    /// Also accepts YAML bodies on paths starting with `prefix`.
    pub fn accept_yaml_at(mut self, prefix: &str) -> Self {
        Arc::make_mut(&mut self.inner)
            .yaml_paths
            .push(prefix.to_owned());
        self
    }

    /// Puts the guard in front of every route of `router`.
    pub fn protect<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(axum::middleware::from_fn_with_state(self, enforce))
    }

    /// Puts the page checks in front of `router`: the static files of the browser console
    /// (`/__console/`). Host and same-origin checks as for the API, GET/HEAD only, and no
    /// token check: a browser navigation cannot carry `Authorization`, and the files hold
    /// no data; every call they make goes to the API, under the full checks.
    pub fn protect_pages<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(axum::middleware::from_fn_with_state(self, enforce_page))
    }

    /// The checks of [`Guard::protect_pages`].
    pub fn check_page(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_host(headers)?;
        check_site(self, headers)?;
        if !matches!(*method, Method::GET | Method::HEAD) {
            return Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "the console's files are read-only (GET)",
            ));
        }
        Ok(())
    }

    /// Whether `authority` (`host[:port]`, as in `Host`) names this server.
    pub fn host_ok(&self, authority: &str) -> bool {
        let Some((name, port)) = split_authority(authority) else {
            return false;
        };
        port == self.inner.port
            && (self.inner.names.contains(&name) || (self.inner.any_ip && is_ip_literal(&name)))
    }

    /// Whether an `Origin` header value is this server's own origin.
    pub fn origin_ok(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|rest| !rest.contains('/') && self.host_ok(rest))
    }

    /// The `Origin` of a cross-origin call to [`SIGN_PATH`] from an allowed origin.
    pub fn sign_origin(&self, path: &str, headers: &HeaderMap) -> Option<String> {
        if path != SIGN_PATH {
            return None;
        }
        let origin = headers
            .get(header::ORIGIN)?
            .to_str()
            .ok()?
            .to_ascii_lowercase();
        self.inner.sign_origins.contains(&origin).then_some(origin)
    }

    /// Every check for a request line and headers.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_host(headers)?;
        let cors = self.sign_origin(path, headers).is_some();
        if !cors {
            check_site(self, headers)?;
        }
        if cors && *method == Method::OPTIONS {
            // A preflight carries no credentials; it reveals nothing.
            return Ok(());
        }
        self.check_token(headers)?;
        self.check_body_type(method, path, headers)
    }

    fn check_host(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = match headers.get(header::HOST).map(|h| h.to_str()) {
            None => return Err(Refusal::new(StatusCode::FORBIDDEN, "missing Host header")),
            Some(Err(_)) => {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "unreadable Host header",
                ))
            }
            Some(Ok(h)) => h,
        };
        if self.host_ok(host) {
            return Ok(());
        }
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "Host {host:?} does not name this server (accepted: {} on port {}); \
                 the admin API refuses other names to defeat DNS rebinding",
                self.inner.names.join(", "),
                self.inner.port
            ),
        ))
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(want) = &self.inner.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        match given {
            Some(t) if same_secret(t.as_bytes(), want.as_bytes()) => Ok(()),
            Some(_) => Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong admin token")),
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "the admin API needs Authorization: Bearer <token> (the --admin-token value)",
            )),
        }
    }

    fn check_body_type(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let yaml = self.inner.yaml_paths.iter().any(|p| path.starts_with(p));
        let wanted = if yaml {
            "application/json or application/yaml"
        } else {
            "application/json"
        };
        let Some(ct) = headers.get(header::CONTENT_TYPE) else {
            if has_body(headers) {
                return Err(Refusal::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("a request body needs Content-Type: {wanted}"),
                ));
            }
            return Ok(());
        };
        let essence = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let ok = JSON_TYPES.contains(&essence.as_str())
            || (yaml && YAML_TYPES.contains(&essence.as_str()));
        if ok {
            return Ok(());
        }
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {essence:?} is not accepted here; send {wanted}"),
        ))
    }
}

/// `Origin` and `Sec-Fetch-Site`: only same-origin requests (or ones typed by the user).
fn check_site(guard: &Guard, headers: &HeaderMap) -> Result<(), Refusal> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let text = origin.to_str().unwrap_or("");
        if !guard.origin_ok(text) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin request from {text:?} refused: the admin API is same-origin only"
                ),
            ));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if !matches!(site, "same-origin" | "none") {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("Sec-Fetch-Site {site:?} refused: the admin API is same-origin only"),
            ));
        }
    }
    Ok(())
}

/// The middleware: refuses, or passes the request on.
async fn enforce(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if let Err(r) = guard.check(req.method(), req.uri().path(), req.headers()) {
        tracing::warn!(
            method = %req.method(),
            path = req.uri().path(),
            status = r.status.as_u16(),
            reason = %r.reason,
            "admin request refused"
        );
        return r.into_response();
    }
    let cors = guard.sign_origin(req.uri().path(), req.headers());
    let preflight = cors.is_some() && req.method() == Method::OPTIONS;
    let mut resp = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    if let Some(origin) = cors.and_then(|o| HeaderValue::from_str(&o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if preflight {
            preflight_headers(h, "GET", "Authorization", "600");
        }
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The middleware of [`Guard::protect_pages`].
/// A CORS preflight answer's headers: the allowed methods and request headers, and how
/// many seconds a browser may keep the answer.
pub(crate) fn preflight_headers(
    h: &mut HeaderMap,
    methods: &'static str,
    headers: &'static str,
    max_age_s: &'static str,
) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(headers),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(max_age_s),
    );
}

async fn enforce_page(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if let Err(r) = guard.check_page(req.method(), req.headers()) {
        tracing::warn!(path = req.uri().path(), status = r.status.as_u16(), reason = %r.reason, "console request refused");
        return r.into_response();
    }
    next.run(req).await
}

/// Whether the request announces a body (a non-zero length or a chunked body).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// `host[:port]` → (lower-case host, port; 80 when absent). IPv6 stays in brackets.
fn split_authority(authority: &str) -> Option<(String, u16)> {
    let a = authority.trim().to_ascii_lowercase();
    let (name, port) = if a.starts_with('[') {
        let end = a.find(']')?;
        let (name, rest) = a.split_at(end + 1);
        match rest {
            "" => (name.to_owned(), None),
            _ => (name.to_owned(), Some(rest.strip_prefix(':')?)),
        }
    } else {
        match a.split_once(':') {
            Some((n, p)) => (n.to_owned(), Some(p)),
            None => (a.clone(), None),
        }
    };
    if name.is_empty() || name.contains(['/', '@', ' ']) {
        return None;
    }
    let port = match port {
        None => 80,
        Some(p) => p.parse().ok()?,
    };
    Some((name, port))
}

/// An IP as it appears in a `Host` header.
fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn is_ip_literal(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => name.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bound: &str, names: &[&str], token: Option<&str>) -> Guard {
        let access = AdminAccess {
            token: token.map(String::from),
            files_root: None,
            host_names: names.iter().map(|n| n.to_string()).collect(),
            sign_origins: vec![],
        };
        Guard::new(bound.parse().expect("addr"), &access).accept_yaml_at("/__admin/scenario")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn hosts_must_name_this_server_and_port() {
        let g = guard("127.0.0.1:4000", &[], None);
        for ok in [
            "localhost:4000",
            "127.0.0.1:4000",
            "[::1]:4000",
            "LOCALHOST:4000",
        ] {
            assert!(g.host_ok(ok), "{ok}");
        }
        for bad in [
            "evil.example:4000",
            "localhost:4001",
            "localhost",
            "127.0.0.1",
            "10.0.0.1:4000",
            "localhost.evil.example:4000",
            "user@localhost:4000",
            "[::1]x:4000",
            "[::1",
            ":4000",
            "",
        ] {
            assert!(!g.host_ok(bad), "{bad}");
        }
    }

    #[test]
    fn a_named_or_wildcard_bind_widens_the_hosts() {
        let g = guard("10.1.2.3:80", &["devbox.lan"], None);
        assert!(g.host_ok("10.1.2.3"), "port 80 may be left out");
        assert!(g.host_ok("devbox.lan:80"));
        assert!(!g.host_ok("10.1.2.4"));
        let any = guard("0.0.0.0:4000", &[], None);
        assert!(any.host_ok("192.168.1.20:4000"));
        assert!(any.host_ok("[fe80::1]:4000"));
        assert!(!any.host_ok("0.0.0.0.evil.example:4000"));
        assert!(!any.host_ok("rebind.example:4000"));
        let v6 = guard("[::1]:4000", &[], None);
        assert!(v6.host_ok("[::1]:4000"));
    }

    #[test]
    fn origins_must_be_this_server_over_http() {
        let g = guard("127.0.0.1:4000", &[], None);
        assert!(g.origin_ok("http://localhost:4000"));
        assert!(g.origin_ok("http://127.0.0.1:4000"));
        for bad in [
            "http://evil.example",
            "http://localhost:3000",
            "https://localhost:4000",
            "null",
            "http://localhost:4000/x",
            "",
        ] {
            assert!(!g.origin_ok(bad), "{bad}");
        }
    }

    #[test]
    fn checks_in_order_with_statuses() {
        let g = guard("127.0.0.1:4000", &[], None);
        let post = Method::POST;
        let path = "/__admin/reset";
        let status = |h: &HeaderMap, path: &str| g.check(&post, path, h).err().map(|r| r.status);
        assert_eq!(status(&headers(&[]), path), Some(StatusCode::FORBIDDEN));
        let host = ("host", "127.0.0.1:4000");
        assert_eq!(status(&headers(&[host]), path), None);
        let cross = headers(&[host, ("origin", "http://evil.example")]);
        assert_eq!(status(&cross, path), Some(StatusCode::FORBIDDEN));
        let same = headers(&[host, ("origin", "http://localhost:4000")]);
        assert_eq!(status(&same, path), None);
        let site = headers(&[host, ("sec-fetch-site", "cross-site")]);
        assert_eq!(status(&site, path), Some(StatusCode::FORBIDDEN));
        let site = headers(&[host, ("sec-fetch-site", "same-origin")]);
        assert_eq!(status(&site, path), None);
        let plain = headers(&[
            host,
            ("content-type", "text/plain"),
            ("content-length", "4"),
        ]);
        assert_eq!(
            status(&plain, path),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        let form = headers(&[host, ("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(
            status(&form, path),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        let untyped = headers(&[host, ("content-length", "4")]);
        assert_eq!(
            status(&untyped, path),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        let json = headers(&[host, ("content-type", "Application/JSON; charset=utf-8")]);
        assert_eq!(status(&json, path), None);
        let yaml = headers(&[host, ("content-type", "application/yaml")]);
        assert_eq!(
            status(&yaml, path),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(status(&yaml, "/__admin/scenario"), None);
        let get = g.check(
            &Method::GET,
            path,
            &headers(&[host, ("content-type", "text/plain")]),
        );
        assert_eq!(get, Ok(()));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let a = AdminAccess {
            token: Some("s3cret".into()),
            ..AdminAccess::default()
        };
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn the_token_is_a_bearer_compared_whole() {
        let g = guard("127.0.0.1:4000", &[], Some("s3cret"));
        let host = ("host", "localhost:4000");
        let status = |h: &HeaderMap| {
            g.check(&Method::GET, "/__admin/state", h)
                .err()
                .map(|r| r.status)
        };
        assert_eq!(status(&headers(&[host])), Some(StatusCode::UNAUTHORIZED));
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            let h = headers(&[host, ("authorization", bad)]);
            assert_eq!(status(&h), Some(StatusCode::UNAUTHORIZED), "{bad}");
        }
        let h = headers(&[host, ("authorization", "bearer s3cret")]);
        assert_eq!(status(&h), None);
        // The host check comes first: a rebound name learns nothing about the token.
        let h = headers(&[
            ("host", "evil.example:4000"),
            ("authorization", "Bearer s3cret"),
        ]);
        assert_eq!(status(&h), Some(StatusCode::FORBIDDEN));
        assert!(same_secret(b"abc", b"abc"));
        assert!(
            !same_secret(b"abc", b"abd")
                && !same_secret(b"abc", b"abcd")
                && !same_secret(b"", b"a")
        );
    }
}
