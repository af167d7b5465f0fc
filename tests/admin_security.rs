//! The admin API next to a browser (docs/security.md): DNS rebinding, cross-site
//! requests, content types, the admin token, posted scenarios that try to read files, and
//! secrets in the journal and state. Raw HTTP over real sockets on 127.0.0.1, so every
//! header is the test's choice.

mod common;

use common::*;
use jmessage_mock::backend::md5_hex;
use jmessage_mock::client::Transport;
use jmessage_mock::server::{self, AdminAccess, RunningServer, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A status, the response head (lower case) and the body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One request with exactly these headers (plus `Connection: close` and the length).
async fn send(
    s: &RunningServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.expect("tcp");
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head = head.to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer { status, head, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// A same-origin request as `curl` would send it: the right Host and a content type.
async fn admin(
    s: &RunningServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Answer {
    let host = s.addr.to_string();
    send(
        s,
        method,
        path,
        &[("Host", &host), ("Content-Type", content_type)],
        body,
    )
    .await
}

async fn start_with_access(access: AdminAccess) -> RunningServer {
    let config = ServerConfig {
        admin_access: access,
        ..ServerConfig::new(backend_config(), TransportConfig::default())
    };
    server::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("server starts")
}

/// Whether the state has a user of this name.
async fn has_user(s: &RunningServer, name: &str) -> bool {
    let a = admin(s, "GET", "/__admin/state", "application/json", "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["users"]
        .as_array()
        .is_some_and(|u| u.iter().any(|u| u["username"] == name))
}

const SCENARIO: &str =
    "name: planted\nfixtures:\n  users:\n    - {username: planted, password: pw}\n";

fn no_cors_headers(a: &Answer) {
    assert!(!a.head.contains("access-control-allow"), "{}", a.head);
}

#[tokio::test]
async fn a_cross_origin_text_plain_scenario_post_is_refused() {
    bounded(async {
        let s = start().await;
        let host = s.addr.to_string();
        let page = [
            ("Host", host.as_str()),
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("Sec-Fetch-Site", "cross-site"),
        ];
        let a = send(&s, "POST", "/__admin/scenario", &page, SCENARIO).await;
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(
            a.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("cross-origin")),
            "{}",
            a.body
        );
        no_cors_headers(&a);
        // Without the Origin (a client that hides it), the content type alone is refused.
        let a = send(
            &s,
            "POST",
            "/__admin/scenario",
            &[("Host", &host), ("Content-Type", "text/plain")],
            SCENARIO,
        )
        .await;
        assert_eq!(a.status, 415, "{}", a.body);
        let a = send(
            &s,
            "POST",
            "/__admin/reset",
            &[
                ("Host", &host),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "a=b",
        )
        .await;
        assert_eq!(a.status, 415, "{}", a.body);
        let a = send(
            &s,
            "POST",
            "/__admin/scenario",
            &[
                ("Host", &host),
                ("Sec-Fetch-Site", "cross-site"),
                ("Content-Type", "application/yaml"),
            ],
            SCENARIO,
        )
        .await;
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(!has_user(&s, "planted").await, "nothing was loaded");
        // A CORS preflight from the page gets no permission either.
        let pre = [
            ("Host", host.as_str()),
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ];
        let a = send(&s, "OPTIONS", "/__admin/scenario", &pre, "").await;
        assert_eq!(a.status, 403, "{}", a.body);
        no_cors_headers(&a);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_rebound_host_name_is_refused() {
    bounded(async {
        let s = start().await;
        let port = s.addr.port();
        for host in [
            format!("evil.example:{port}"),
            "evil.example".to_owned(),
            format!("localhost:{}", port.wrapping_add(1)),
        ] {
            let a = send(&s, "GET", "/__admin/state", &[("Host", &host)], "").await;
            assert_eq!(a.status, 403, "{host}: {}", a.body);
            assert!(
                a.json()["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("DNS rebinding")),
                "{}",
                a.body
            );
            assert!(!a.body.contains("users"), "no state leaks: {}", a.body);
        }
        let a = send(
            &s,
            "POST",
            "/__admin/scenario",
            &[
                ("Host", &format!("evil.example:{port}")),
                ("Content-Type", "application/yaml"),
            ],
            SCENARIO,
        )
        .await;
        assert_eq!(a.status, 403);
        let a = send(&s, "GET", "/__admin/state", &[], "").await;
        assert_eq!(a.status, 403, "a missing Host is refused: {}", a.body);
        for host in [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ] {
            let a = send(&s, "GET", "/__admin/health", &[("Host", &host)], "").await;
            assert_eq!(a.status, 200, "{host}: {}", a.body);
        }
        // The SDK's endpoints stay open to other names and origins.
        let a = send(
            &s,
            "GET",
            "/socket.io/?EIO=3&transport=polling",
            &[
                ("Host", &format!("evil.example:{port}")),
                ("Origin", "http://evil.example"),
            ],
            "",
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn same_origin_json_and_yaml_are_accepted() {
    bounded(async {
        let s = start().await;
        let host = s.addr.to_string();
        let origin = format!("http://{host}");
        let rule =
            r#"{"id":"lossy","when":{"kind":"push"},"action":"drop","probability":0.1,"seed":1}"#;
        let page = [
            ("Host", host.as_str()),
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
            ("Content-Type", "application/json"),
        ];
        let a = send(&s, "POST", "/__admin/faults", &page, rule).await;
        assert_eq!(a.status, 201, "{}", a.body);
        no_cors_headers(&a);
        assert!(
            a.head.contains("x-content-type-options: nosniff"),
            "{}",
            a.head
        );
        let localhost = format!("http://localhost:{}", s.addr.port());
        let a = send(
            &s,
            "DELETE",
            "/__admin/faults/lossy",
            &[("Host", &host), ("Origin", &localhost)],
            "",
        )
        .await;
        assert_eq!(a.status, 204, "{}", a.body);
        let a = admin(
            &s,
            "POST",
            "/__admin/scenario",
            "application/x-yaml",
            SCENARIO,
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(has_user(&s, "planted").await);
        let a = send(&s, "POST", "/__admin/reset", &[("Host", &host)], "").await;
        assert_eq!(
            a.status, 204,
            "a bodiless POST needs no content type: {}",
            a.body
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn the_admin_token_is_required_when_set() {
    bounded(async {
        let s = start_with_access(AdminAccess {
            token: Some("t0k3n-for-tests".into()),
            ..AdminAccess::default()
        })
        .await;
        let host = s.addr.to_string();
        let a = send(&s, "GET", "/__admin/state", &[("Host", &host)], "").await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert!(a.head.contains("www-authenticate: bearer"), "{}", a.head);
        assert!(!a.body.contains("users"));
        for wrong in [
            "Bearer t0k3n-for-test",
            "Bearer t0k3n-for-tests-",
            "Basic dDBrM24=",
            "t0k3n-for-tests",
        ] {
            let a = send(
                &s,
                "GET",
                "/__admin/state",
                &[("Host", &host), ("Authorization", wrong)],
                "",
            )
            .await;
            assert_eq!(a.status, 401, "{wrong}: {}", a.body);
        }
        let auth = ("Authorization", "Bearer t0k3n-for-tests");
        let a = send(&s, "GET", "/__admin/state", &[("Host", &host), auth], "").await;
        assert_eq!(a.status, 200, "{}", a.body);
        let a = send(
            &s,
            "POST",
            "/__admin/scenario",
            &[("Host", &host), auth, ("Content-Type", "application/yaml")],
            SCENARIO,
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        // The token does not excuse a foreign Host or Origin.
        let a = send(
            &s,
            "GET",
            "/__admin/state",
            &[("Host", "evil.example"), auth],
            "",
        )
        .await;
        assert_eq!(a.status, 403);
        let a = send(
            &s,
            "GET",
            "/__admin/state",
            &[("Host", &host), ("Origin", "http://evil.example"), auth],
            "",
        )
        .await;
        assert_eq!(a.status, 403);
        s.shutdown().await;
    })
    .await
}

/// A scratch directory holding a secret file outside `root/`.
fn scratch(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("jmm-admin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("fx")).expect("mkdir");
    let secret = dir.join("secret.yaml");
    std::fs::write(&secret, "TOPSECRET-LINE: do not leak\n").expect("write");
    (dir, root, secret)
}

fn media_scenario(file: &str) -> String {
    format!("name: leak\nfixtures:\n  users: [{{username: alice, password: pw}}]\n  media:\n    - {{owner: alice, file: {file}, id: leak}}\n")
}

fn include_scenario(file: &str) -> String {
    format!("name: leak\nfixtures:\n  include: [{file}]\n")
}

async fn refused(s: &RunningServer, body: &str, why: &str) -> String {
    let a = admin(s, "POST", "/__admin/scenario", "application/yaml", body).await;
    assert_eq!(a.status, 400, "{body}: {}", a.body);
    assert!(
        a.body.contains(why),
        "{body}: expected {why:?} in {}",
        a.body
    );
    for leak in ["root:", "TOPSECRET", "do not leak"] {
        assert!(
            !a.body.contains(leak),
            "{body}: leaked {leak:?}: {}",
            a.body
        );
    }
    a.body
}

#[tokio::test]
async fn a_posted_scenario_reads_no_file() {
    bounded(async {
        let (dir, _root, secret) = scratch("denied");
        let s = start().await;
        let secret = secret.display().to_string();
        for body in [
            media_scenario("/etc/passwd"),
            media_scenario(&secret),
            include_scenario("/etc/passwd"),
            include_scenario(&secret),
            include_scenario("../../x"),
        ] {
            refused(&s, &body, "may not read files").await;
        }
        let stored = s.hub.with_backend(|b| b.media("leak").is_some());
        assert!(!stored, "a refused scenario stored no media");
        s.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}

#[tokio::test]
async fn the_files_root_allows_files_inside_it_only() {
    bounded(async {
        let (dir, root, secret) = scratch("root");
        std::fs::write(root.join("fx/users.yaml"), "users: [{username: rooted, password: pw}]\n").expect("write");
        std::fs::write(root.join("fx/hello.txt"), "hello").expect("write");
        std::fs::write(root.join("broken.yaml"), "TOPSECRET-LINE: [unclosed\n").expect("write");
        link(&secret, &root.join("link.yaml"));
        let s = start_with_access(AdminAccess {
            files_root: Some(root.clone()),
            ..AdminAccess::default()
        })
        .await;
        let ok = "name: rooted\nfixtures:\n  include: [fx/users.yaml]\n  media:\n    - {owner: rooted, file: fx/hello.txt, id: hello}\n";
        let a = admin(&s, "POST", "/__admin/scenario", "application/yaml", ok).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(has_user(&s, "rooted").await);
        refused(&s, &include_scenario("../secret.yaml"), "without `..`").await;
        refused(&s, &include_scenario(&secret.display().to_string()), "without `..`").await;
        refused(&s, &media_scenario("/etc/passwd"), "without `..`").await;
        refused(&s, &include_scenario("fx/../../secret.yaml"), "without `..`").await;
        refused(&s, &include_scenario("nope.yaml"), "no such file").await;
        if cfg!(unix) {
            refused(&s, &include_scenario("link.yaml"), "outside the files root").await;
        }
        let body = refused(&s, &include_scenario("broken.yaml"), "not a valid fixtures file").await;
        assert!(body.contains("broken.yaml:1:"), "located: {body}");
        s.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}

#[cfg(unix)]
fn link(target: &Path, at: &Path) {
    std::os::unix::fs::symlink(target, at).expect("symlink");
}

#[cfg(not(unix))]
fn link(_: &Path, _: &Path) {}

#[tokio::test]
async fn the_journal_and_state_hold_no_secret() {
    bounded(async {
        let s = start().await;
        let c = user(&s, Transport::Websocket, "alice").await;
        let hash = md5_hex("pw");
        let init = c
            .sent_frames()
            .into_iter()
            .find(|f| f.contains("\"c_init\""))
            .expect("c_init was sent");
        let v: Value =
            serde_json::from_str(init.trim_start_matches(|ch: char| ch.is_ascii_digit()))
                .expect("frame");
        let signature = v[1]["data"]["signature"]
            .as_str()
            .or_else(|| v[1]["signature"].as_str())
            .expect("signature")
            .to_owned();
        assert!(
            c.sent_frames().iter().any(|f| f.contains(&hash)),
            "the client did send the hash"
        );
        let a = admin(
            &s,
            "GET",
            "/__admin/journal?event=login",
            "application/json",
            "",
        )
        .await;
        assert_eq!(a.status, 200);
        let logins = a.json();
        assert!(
            logins.as_array().is_some_and(|l| !l.is_empty()),
            "{}",
            a.body
        );
        assert!(
            a.body.contains(r#"\"password\":\"<redacted>\""#),
            "{}",
            a.body
        );
        let all = admin(&s, "GET", "/__admin/journal", "application/json", "").await;
        for secret in [&hash, &signature] {
            assert!(
                !all.body.contains(secret.as_str()),
                "journal shows {secret}: {}",
                all.body
            );
        }
        assert!(!s.faults.journal(0).iter().any(|e| e.frame.contains(&hash)));
        let state = admin(&s, "GET", "/__admin/state", "application/json", "").await;
        assert!(state.body.contains("alice"), "{}", state.body);
        assert!(
            !state.body.contains(&hash) && !state.body.contains(&signature),
            "{}",
            state.body
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn serve_off_loopback_without_a_token_refuses_to_start() {
    bounded(async {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_jmessage-mock"))
            .args(["serve", "--host", "0.0.0.0", "--port", "0"])
            .env_remove("JMM_ADMIN_TOKEN")
            .kill_on_drop(true)
            .output()
            .await
            .expect("runs");
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--admin-token") && err.contains("--no-admin"),
            "{err}"
        );
    })
    .await
}
