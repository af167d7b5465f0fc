//! The browser console on `jmessage-mock proxy` (docs/console.md, "On the proxy"): the
//! console files and the admin routes behind the same guard and headers as on `serve`,
//! `GET /__admin/api` saying `"mode": "proxy"` with no People view and no clock, reset or
//! scenario controls, `GET /__admin/events` and `/__admin/network` acting on the proxy's
//! fault layer, `GET /__admin/record` rendering what went through (without `--record`)
//! as a scenario `check` accepts and `run` replays, and the console end to end in headless
//! Chromium (`adapters/jmessage-web/console-e2e.js` with `JMM_MODE=proxy`; skipped without
//! chromium or Node dependencies unless `JMM_REQUIRE_BROWSER=1` / `JMM_REQUIRE_NODE=1`).

mod common;

use common::*;
use jmessage_mock::client::Transport;
use jmessage_mock::proxy::{self, ProxyConfig, RunningProxy};
use jmessage_mock::server::{AdminAccess, RunningServer};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "pr0xy-t0ken";

/// A status, the response head (lower case) and the body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request with exactly these headers (plus `Connection: close`).
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    send_body(addr, method, path, headers, "", None).await
}

/// One HTTP/1.1 request with exactly these headers and `body`, read until `until` shows
/// in the answer or the server closes (an event stream never closes by itself).
async fn send_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    until: Option<&str>,
) -> Answer {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
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
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).await.expect("read");
            buf.extend_from_slice(&chunk[..n]);
            let done = until.is_some_and(|u| String::from_utf8_lossy(&buf).contains(u));
            if n == 0 || done {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("answer in time");
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

/// A GET as the console's page sends it (same origin, the token).
async fn admin_get(p: &RunningProxy, path: &str) -> Answer {
    let host = p.addr.to_string();
    let auth = format!("Bearer {TOKEN}");
    let h = [
        ("Host", host.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
        ("Authorization", auth.as_str()),
    ];
    send(p.addr, "GET", path, &h).await
}

/// A JSON POST as the console's page sends it.
async fn admin_post(p: &RunningProxy, path: &str, body: &str) -> Answer {
    let host = p.addr.to_string();
    let auth = format!("Bearer {TOKEN}");
    let h = [
        ("Host", host.as_str()),
        ("Origin", &format!("http://{host}")),
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    send_body(p.addr, "POST", path, &h, body, None).await
}

async fn proxy_with_token(upstream: &RunningServer) -> RunningProxy {
    let mut c = ProxyConfig::new(upstream.ws_url());
    c.connect_timeout = Duration::from_secs(3);
    c.admin_access = AdminAccess {
        token: Some(TOKEN.to_owned()),
        ..AdminAccess::default()
    };
    proxy::start(c, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("proxy starts")
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
async fn console_files_on_the_proxy_carry_the_strict_policy_and_pass_only_the_page_guard() {
    bounded(async {
        let up = start().await;
        let p = proxy_with_token(&up).await;
        let host = p.addr.to_string();
        for f in FILES {
            let a = send(
                p.addr,
                "GET",
                &format!("/__console/{f}"),
                &[("Host", &host), ("Sec-Fetch-Site", "same-origin")],
            )
            .await;
            assert_eq!(a.status, 200, "{f}: {}", a.body);
            let csp = format!(
                "content-security-policy: {}",
                "default-src 'none'; script-src 'self'"
            );
            assert!(a.head.contains(&csp), "{f}: {}", a.head);
            assert!(a.head.contains("frame-ancestors 'none'"), "{}", a.head);
            assert!(a.head.contains("x-frame-options: deny"), "{}", a.head);
            assert!(a.head.contains("x-content-type-options: nosniff"));
            assert!(a.head.contains("cache-control: no-store"), "{}", a.head);
        }
        // DNS rebinding and cross-site pages are refused, as on serve.
        let rebound = send(
            p.addr,
            "GET",
            "/__console/",
            &[("Host", &format!("evil.example:{}", p.addr.port()))],
        )
        .await;
        assert_eq!(rebound.status, 403, "{}", rebound.body);
        let cross = send(
            p.addr,
            "GET",
            "/__console/app.js",
            &[("Host", &host), ("Sec-Fetch-Site", "cross-site")],
        )
        .await;
        assert_eq!(cross.status, 403, "{}", cross.body);
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn the_proxy_admin_routes_of_the_console_need_the_token_and_same_origin() {
    bounded(async {
        let up = start().await;
        let p = proxy_with_token(&up).await;
        let host = p.addr.to_string();
        for path in ["/__admin/api", "/__admin/record", "/__admin/network"] {
            let none = send(p.addr, "GET", path, &[("Host", &host)]).await;
            assert_eq!(none.status, 401, "{path}");
            let cross = send(
                p.addr,
                "GET",
                path,
                &[
                    ("Host", &host),
                    ("Authorization", &format!("Bearer {TOKEN}")),
                    ("Origin", "http://evil.example"),
                ],
            )
            .await;
            assert_eq!(cross.status, 403, "{path}");
            assert_eq!(admin_get(&p, path).await.status, 200, "{path}");
        }
        let none = send(p.addr, "GET", "/__admin/events", &[("Host", &host)]).await;
        assert_eq!(none.status, 401);
        // Routes that need a backend are not on the proxy.
        for path in ["/__admin/state", "/__admin/clock"] {
            assert_eq!(admin_get(&p, path).await.status, 404, "{path}");
        }
        let api: Value =
            serde_json::from_str(&admin_get(&p, "/__admin/api").await.body).expect("api json");
        assert_eq!(api["mode"], "proxy");
        assert_eq!(api["upstream"], up.ws_url().as_str());
        assert_eq!(
            api["views"],
            serde_json::json!(["wire", "network", "record"])
        );
        assert_eq!(api["controls"], serde_json::json!(["presets", "faults"]));
        assert_eq!(api["methods"], serde_json::json!([]));
        assert_eq!(api["fault_actions"].as_array().map(Vec::len), Some(15));
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_network_presets_act_on_the_proxy_fault_layer() {
    bounded(async {
        let up = start().await;
        let p = proxy_with_token(&up).await;
        let set = admin_post(&p, "/__admin/network", r#"{"preset": "lossy-wifi"}"#).await;
        assert_eq!(set.status, 200, "{}", set.body);
        assert!(p
            .faults
            .rules()
            .iter()
            .any(|r| r.spec.id == "network:lossy-wifi:jitter"));
        let bad = admin_post(&p, "/__admin/network", r#"{"preset": "lossy_wifi"}"#).await;
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("lossy-wifi"), "{}", bad.body);
        let off = admin_post(&p, "/__admin/network", r#"{"preset": "none"}"#).await;
        assert_eq!(off.status, 200, "{}", off.body);
        assert!(p.faults.rules().is_empty());
        // A login through the proxy shows in its live journal stream.
        let alice = user_at_proxy(&p, "alice").await;
        let host = p.addr.to_string();
        let auth = format!("Bearer {TOKEN}");
        let h = [("Host", host.as_str()), ("Authorization", auth.as_str())];
        let stream = send_body(
            p.addr,
            "GET",
            "/__admin/events?since=0&event=login&dir=in",
            &h,
            "",
            Some("\"event\":\"login\""),
        )
        .await;
        assert_eq!(stream.status, 200, "{}", stream.body);
        assert!(stream.head.contains("text/event-stream"), "{}", stream.head);
        assert!(stream.body.contains("event: frame"), "{}", stream.body);
        drop(alice);
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

/// alice (password pw), registered and logged in through the proxy.
async fn user_at_proxy(p: &RunningProxy, name: &str) -> jmessage_mock::client::Client {
    let config = jmessage_mock::client::ClientConfig {
        transport: Transport::Websocket,
        ..fast()
    };
    let c = jmessage_mock::client::Client::connect(&p.http_url(), config)
        .await
        .expect("connects");
    c.init(APPKEY, SECRET, 0)
        .await
        .expect("init")
        .ok()
        .expect("init ok");
    let r = c.register(name, "pw").await.expect("register");
    assert!(r.code() == 0 || r.code() == 898001, "{:?}", r.body);
    c.login(name, "pw")
        .await
        .expect("login")
        .ok()
        .expect("login ok");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_record_route_renders_a_scenario_that_check_accepts_without_record_flag() {
    bounded(async {
        let up = start().await;
        let p = proxy_with_token(&up).await;
        let a = user_at_proxy(&p, "alice").await;
        let b = user_at_proxy(&p, "bobby").await;
        let r = a
            .send_text("alice", "bobby", "seen by the console")
            .await
            .expect("reply");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        b.expect_push("msg_sync", WAIT).await.expect("msg_sync");
        let rec = admin_get(&p, "/__admin/record").await;
        assert_eq!(rec.status, 200, "{}", rec.body);
        assert!(rec.head.contains("application/yaml"), "{}", rec.head);
        assert!(rec.body.contains("seen by the console"), "{}", rec.body);
        assert!(rec.body.contains("\"login\""), "{}", rec.body);
        let path = temp_file("record-route.yaml");
        std::fs::write(&path, &rec.body).expect("write");
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
        replays(&path).await;
        let _ = std::fs::remove_file(&path);
    })
    .await
}

// ------------------------------------------------------------ the console in Chromium

/// Opens the proxy's console in headless Chromium with the admin token: People and the
/// clock, reset and scenario controls are hidden; alice's login through the proxy shows in
/// the Wire view; a fault added in the Network view answers her next send with its code
/// and marks the frame; deleting it lets the next send through to the upstream; the
/// Record view's export replays with `run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_console_end_to_end_in_chromium() {
    let (web, node) = (
        root().join("adapters/jmessage-web"),
        root().join("tests/node"),
    );
    if let Err(why) = browser_ready(&[&web, &node]) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let up = start().await;
    // alice and bobby exist upstream with password pw (the script logs alice in).
    drop(user(&up, Transport::Websocket, "alice").await);
    drop(user(&up, Transport::Websocket, "bobby").await);
    let p = proxy_with_token(&up).await;
    // The recording learns its fixtures from logins it sees: bobby, alice's peer, logs in
    // through the proxy once so the replay knows him.
    drop(user_at_proxy(&p, "bobby").await);
    let out_file = temp_file("from-the-proxy-console.yaml");
    let child = tokio::process::Command::new("node")
        .arg(root().join("adapters/jmessage-web/console-e2e.js"))
        .env("JMM_MODE", "proxy")
        .env("JMM_ADDRESS", p.http_url())
        .env("JMM_APPKEY", APPKEY)
        .env("JMM_SECRET", SECRET)
        .env("JMM_ADMIN_TOKEN", TOKEN)
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
    assert!(
        text.contains("people, clock, reset, scenario hidden"),
        "{text}"
    );
    p.shutdown().await.expect("stopped");
    up.shutdown().await;
    replays(&out_file).await;
    let _ = std::fs::remove_file(&out_file);
}
