//! The browser console and the session recording (docs/console.md): the page guard and
//! security headers of `/__console/`, the guard on `/__admin/record` and `/__admin/api`,
//! a recording that `check` accepts and `run` replays against a fresh server (and a
//! changed answer that `run` then reports), `serve --record` on shutdown, and the console
//! end to end in headless Chromium (`adapters/jmessage-web/console-e2e.js`; skipped
//! without chromium or Node dependencies unless `JMM_REQUIRE_BROWSER=1`).

mod common;

use common::*;
use jmessage_mock::client::Transport;
use jmessage_mock::server::{self, AdminAccess, RunningServer, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A status, the response head (lower case) and the body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request with exactly these headers (plus `Connection: close`).
async fn send(s: &RunningServer, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.expect("tcp");
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\nContent-Length: 0\r\n\r\n");
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
    Answer {
        status,
        head,
        body: body.to_owned(),
    }
}

/// A GET as a browser on the console's own origin sends it.
async fn get(s: &RunningServer, path: &str, extra: &[(&str, &str)]) -> Answer {
    let host = s.addr.to_string();
    let mut h = vec![("Host", host.as_str()), ("Sec-Fetch-Site", "same-origin")];
    h.extend_from_slice(extra);
    send(s, "GET", path, &h).await
}

async fn start_with_token(token: Option<&str>) -> RunningServer {
    let config = ServerConfig {
        admin_access: AdminAccess {
            token: token.map(str::to_owned),
            ..AdminAccess::default()
        },
        ..ServerConfig::new(backend_config(), TransportConfig::default())
    };
    server::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("server starts")
}

const FILES: &[&str] = &[
    "index.html",
    "console.css",
    "util.js",
    "app.js",
    "wire.js",
    "people.js",
    "network.js",
    "record.js",
];

#[tokio::test]
async fn console_files_carry_a_strict_policy_and_pass_only_the_page_guard() {
    bounded(async {
        let s = start_with_token(Some("t0ken")).await;
        let host = s.addr.to_string();
        for f in FILES {
            let a = get(&s, &format!("/__console/{f}"), &[]).await;
            assert_eq!(a.status, 200, "{f}: {}", a.body);
            assert!(
                a.head
                    .contains("content-security-policy: default-src 'none'; script-src 'self'"),
                "{f}: {}",
                a.head
            );
            assert!(
                !a.head.contains("unsafe-inline") && !a.head.contains("unsafe-eval"),
                "{}",
                a.head
            );
            assert!(a.head.contains("frame-ancestors 'none'"), "{}", a.head);
            assert!(a.head.contains("x-frame-options: deny"), "{}", a.head);
            assert!(
                a.head.contains("x-content-type-options: nosniff"),
                "{}",
                a.head
            );
        }
        // A navigation typed by the user (no token: the page holds no data).
        let typed = send(
            &s,
            "GET",
            "/__console/",
            &[("Host", &host), ("Sec-Fetch-Site", "none")],
        )
        .await;
        assert_eq!(typed.status, 200);
        assert!(
            typed.head.contains("content-type: text/html"),
            "{}",
            typed.head
        );
        let moved = get(&s, "/__console", &[]).await;
        assert_eq!(moved.status, 308, "{}", moved.head);
        assert_eq!(get(&s, "/__console/secret.txt", &[]).await.status, 404);
        // DNS rebinding, cross-site pages and writes are refused.
        let rebound = send(
            &s,
            "GET",
            "/__console/",
            &[("Host", &format!("evil.example:{}", s.addr.port()))],
        )
        .await;
        assert_eq!(rebound.status, 403, "{}", rebound.body);
        let cross = send(
            &s,
            "GET",
            "/__console/app.js",
            &[("Host", &host), ("Sec-Fetch-Site", "cross-site")],
        )
        .await;
        assert_eq!(cross.status, 403, "{}", cross.body);
        let origin = send(
            &s,
            "GET",
            "/__console/app.js",
            &[("Host", &host), ("Origin", "http://evil.example")],
        )
        .await;
        assert_eq!(origin.status, 403, "{}", origin.body);
        let post = send(&s, "POST", "/__console/", &[("Host", &host)]).await;
        assert_eq!(post.status, 405, "{}", post.body);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn record_and_api_routes_need_the_admin_token_and_same_origin() {
    bounded(async {
        let s = start_with_token(Some("t0ken")).await;
        for path in ["/__admin/record", "/__admin/api"] {
            assert_eq!(get(&s, path, &[]).await.status, 401, "{path}");
            let wrong = get(&s, path, &[("Authorization", "Bearer nope")]).await;
            assert_eq!(wrong.status, 401, "{path}");
            let cross = get(
                &s,
                path,
                &[
                    ("Authorization", "Bearer t0ken"),
                    ("Origin", "http://evil.example"),
                ],
            )
            .await;
            assert_eq!(cross.status, 403, "{path}");
            let ok = get(&s, path, &[("Authorization", "Bearer t0ken")]).await;
            assert_eq!(ok.status, 200, "{path}: {}", ok.body);
        }
        let api: Value = serde_json::from_str(
            &get(&s, "/__admin/api", &[("Authorization", "Bearer t0ken")])
                .await
                .body,
        )
        .expect("json");
        let names: Vec<&str> = api["methods"]
            .as_array()
            .expect("methods")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        for m in [
            "sendSingleMsg",
            "sendSinglePic",
            "addGroupMembers",
            "msgRetract",
            "transSingleMsg",
            "updateSelfInfo",
        ] {
            assert!(names.contains(&m), "{m} missing from {names:?}");
        }
        assert!(
            !names.contains(&"login"),
            "the device lifecycle is act's own"
        );
        assert_eq!(api["fault_actions"].as_array().map(Vec::len), Some(15));
        s.shutdown().await;
    })
    .await
}

#[test]
fn console_pages_hold_no_inline_code_and_never_parse_html() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/console");
    let html = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    for bad in [" style=", " onclick=", " onload=", "javascript:", "<style"] {
        assert!(!html.contains(bad), "index.html has {bad}");
    }
    let scripts = html.matches("<script").count();
    assert_eq!(
        scripts,
        html.matches("<script type=\"module\" src=").count(),
        "an inline script"
    );
    for f in FILES.iter().filter(|f| f.ends_with(".js")) {
        let js = std::fs::read_to_string(dir.join(f)).expect("js");
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(bad), "{f} uses {bad}");
        }
    }
}

/// Traffic worth recording: a registration, logins, a text, a group made by `act`, a
/// request a fault answered (left out of the recording).
async fn some_traffic(s: &RunningServer) {
    let alice = user(s, Transport::Websocket, "alice").await;
    let _bob = user(s, Transport::Websocket, "bobby").await;
    let r = alice
        .send_text("alice", "bobby", "hello bob")
        .await
        .expect("send");
    assert_eq!(r.code(), 0, "{:?}", r.body);
    let act = json!({"as": "bobby", "method": "createGroup", "args": {"group_name": "team"}});
    let a = post_json(s, "/__admin/act", &act).await;
    assert!(a.contains("\"success\""), "{a}");
    let rule = json!({"id": "busy", "when": {"user": "alice", "event": ["s_across_single_text"]}, "action": {"error": 880209}, "times": 1});
    post_json(s, "/__admin/faults", &rule).await;
    let r = alice
        .send_text("alice", "bobby", "refused")
        .await
        .expect("send");
    assert_eq!(r.code(), 880209, "{:?}", r.body);
}

async fn post_json(s: &RunningServer, path: &str, body: &Value) -> String {
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.expect("tcp");
    let text = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{text}",
        s.addr,
        text.len()
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_replays_with_run_and_a_changed_answer_fails() {
    bounded(async {
        let s = start_with_token(None).await;
        some_traffic(&s).await;
        let yaml = get(&s, "/__admin/record", &[]).await;
        assert_eq!(yaml.status, 200);
        assert!(
            yaml.head.contains("content-type: application/yaml"),
            "{}",
            yaml.head
        );
        let body = yaml.body;
        assert!(
            body.contains("\"event\":\"register\"") && body.contains("\"create_group\""),
            "{body}"
        );
        assert!(
            !body.contains("refused") && !body.contains("<redacted>"),
            "{body}"
        );
        let path = temp_file("recorded.yaml");
        std::fs::write(&path, &body).expect("write");
        replays(&path).await;
        // The replay compares answers: a changed expectation is reported.
        let changed = body.replacen(
            "\"payload\":{\"group_name\":\"team\"},\"expect\":{\"code\":0}",
            "\"payload\":{\"group_name\":\"team\"},\"expect\":{\"code\":881234}",
            1,
        );
        assert_ne!(
            changed, body,
            "the create_group step is where it was expected"
        );
        std::fs::write(&path, &changed).expect("write");
        let (ok, out) = cli(&["run", path.to_str().expect("utf-8")]).await;
        assert!(!ok && out.contains("881234"), "{out}");
        let _ = std::fs::remove_file(&path);
        s.shutdown().await;
    })
    .await
}

/// A recording is the journal on top of a baseline state: clearing the journal retakes
/// the baseline, so what is recorded afterwards replays (a user registered and a group
/// made before the clear are in the fixtures, not in the steps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_after_the_journal_is_cleared_still_replays() {
    bounded(async {
        let s = start_with_token(None).await;
        some_traffic(&s).await;
        let host = s.addr.to_string();
        let headers = [("Host", host.as_str()), ("Sec-Fetch-Site", "same-origin")];
        let cleared = send(&s, "DELETE", "/__admin/journal", &headers).await;
        assert_eq!(cleared.status, 204, "{}", cleared.body);
        let alice = user(&s, Transport::Websocket, "alice").await;
        let r = alice
            .send_text("alice", "bobby", "after the clear")
            .await
            .expect("send");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        let body = get(&s, "/__admin/record", &[]).await.body;
        let (fixtures, steps) = body.split_once("\nsteps:").expect("a steps section");
        assert!(
            fixtures.contains("\"name\":\"team\"") && fixtures.contains("hello bob"),
            "what came before the clear is state: {body}"
        );
        assert!(
            steps.contains("after the clear") && !steps.contains("hello bob"),
            "{body}"
        );
        let path = temp_file("after-clear.yaml");
        std::fs::write(&path, &body).expect("write");
        replays(&path).await;
        let _ = std::fs::remove_file(&path);
        s.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_record_writes_the_session_on_shutdown() {
    bounded(async {
        let path = temp_file("on-shutdown.yaml");
        let config = ServerConfig {
            record: Some(path.clone()),
            ..ServerConfig::new(backend_config(), TransportConfig::default())
        };
        let s = server::start(config, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("server starts");
        some_traffic(&s).await;
        s.shutdown().await;
        let text = std::fs::read_to_string(&path).expect("the recording was written");
        assert!(text.contains("\"s_across_single_text\""), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "it holds secrets: owner only");
        }
        replays(&path).await;
        let _ = std::fs::remove_file(&path);
    })
    .await
}

// ------------------------------------------------------------ the console in Chromium

/// Opens the console in headless Chromium with the admin token, logs alice in with
/// socket.io-client@2, acts as bobby from the People view (alice receives it), switches
/// a fault from the Network view (alice's send fails with its code, the Wire view marks
/// the frame), exports the session from the Record view, and replays it with `run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_end_to_end_in_chromium() {
    let (web, node) = (
        root().join("adapters/jmessage-web"),
        root().join("tests/node"),
    );
    if let Err(why) = browser_ready(&[&web, &node]) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let s = start_with_token(Some("e2e-t0ken")).await;
    // alice and bobby exist with password pw (the script logs alice in).
    drop(user(&s, Transport::Websocket, "alice").await);
    drop(user(&s, Transport::Websocket, "bobby").await);
    let out_file = temp_file("from-the-console.yaml");
    let child = tokio::process::Command::new("node")
        .arg(root().join("adapters/jmessage-web/console-e2e.js"))
        .env("JMM_ADDRESS", s.http_url())
        .env("JMM_APPKEY", APPKEY)
        .env("JMM_SECRET", SECRET)
        .env("JMM_ADMIN_TOKEN", "e2e-t0ken")
        .env("JMM_RECORD_OUT", &out_file)
        .env("JMM_CHROMIUM", chromium())
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the console script finishes within 120 s")
        .expect("node runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success() && text.contains("all passed"),
        "{text}"
    );
    s.shutdown().await;
    replays(&out_file).await;
    let _ = std::fs::remove_file(&out_file);
}
