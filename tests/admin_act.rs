//! The live admin routes over real sockets on 127.0.0.1 (docs/admin-api.md): `act` as
//! another user seen by a reference client, the live journal (SSE), the sign endpoint and
//! its CORS allow-list, network presets, and scenario loads that keep sessions.

mod common;

use common::*;
use jmessage_mock::client::Transport;
use jmessage_mock::server::{self, AdminAccess, RunningServer, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    tokio::time::timeout(WAIT * 12, tcp.read_to_end(&mut buf))
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

async fn post(s: &RunningServer, path: &str, body: Value) -> Answer {
    let host = s.addr.to_string();
    let body = body.to_string();
    send(
        s,
        "POST",
        path,
        &[("Host", &host), ("Content-Type", "application/json")],
        &body,
    )
    .await
}

async fn get(s: &RunningServer, path: &str) -> Answer {
    let host = s.addr.to_string();
    send(s, "GET", path, &[("Host", &host)], "").await
}

async fn act(s: &RunningServer, user: &str, method: &str, args: Value) -> Answer {
    post(
        s,
        "/__admin/act",
        json!({"as": user, "appkey": APPKEY, "method": method, "args": args}),
    )
    .await
}

#[tokio::test]
async fn act_makes_bobby_send_and_alice_receives_it_without_kicking_bobbys_web_login() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, Transport::Websocket, "alice").await;
        let bobby_web = user(&s, Transport::Websocket, "bobby").await;
        let a = act(
            &s,
            "bobby",
            "sendSingleMsg",
            json!({"target_username": "alice", "content": "hello from the console"}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let v = a.json();
        assert_eq!(v["callback"], "success", "{v}");
        assert!(v["data"]["msg_id"].is_u64(), "{v}");
        let sync = alice.expect_push("msg_sync", WAIT).await.expect("msg_sync");
        let text = sync.to_string();
        assert!(text.contains("hello from the console"), "{text}");
        assert!(text.contains("bobby"), "{text}");
        // bobby's web session still works (a kicked session would be logged out: 880003).
        let r = bobby_web
            .request(
                "get_across_user_info",
                json!({"username": "bobby", "appkey": APPKEY}),
            )
            .await
            .expect("request");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        // bobby's web session also sees its other device's send (msg_sync to own sessions).
        let own = bobby_web
            .expect_push("msg_sync", WAIT)
            .await
            .expect("own msg_sync");
        assert!(own.to_string().contains("hello from the console"), "{own}");
        // A second action reuses the same device session.
        let b = act(&s, "bobby", "getUserInfo", json!({"username": "alice"})).await;
        assert_eq!(b.json()["callback"], "success", "{}", b.body);
        assert_eq!(get(&s, "/__admin/health").await.json()["devices"], 1);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn act_group_invite_becomes_an_event_for_alice() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, Transport::Websocket, "alice").await;
        let _bobby = user(&s, Transport::Websocket, "bobby").await;
        let g = act(&s, "bobby", "createGroup", json!({"group_name": "team"})).await;
        assert_eq!(g.json()["callback"], "success", "{}", g.body);
        let gid = g.json()["data"]["gid"].clone();
        assert!(gid.is_u64(), "{}", g.body);
        let add = act(
            &s,
            "bobby",
            "addGroupMembers",
            json!({"gid": gid, "member_usernames": [{"username": "alice"}]}),
        )
        .await;
        assert_eq!(add.json()["callback"], "success", "{}", add.body);
        let ev = alice
            .expect_push("event_notification", WAIT)
            .await
            .expect("event");
        assert_eq!(ev["gid"], gid, "{ev}");
        assert_eq!(ev["event_type"], 10, "{ev}");
        // A failure is the SDK's onFail, not an HTTP error.
        let again = act(
            &s,
            "bobby",
            "addGroupMembers",
            json!({"gid": gid, "member_usernames": [{"username": "alice"}]}),
        )
        .await;
        assert_eq!(again.status, 200);
        assert_eq!(again.json()["callback"], "fail", "{}", again.body);
        assert_eq!(again.json()["data"]["code"], 880607, "{}", again.body);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn act_refuses_unknown_methods_users_and_bad_arguments() {
    bounded(async {
        let s = start().await;
        let _ = user(&s, Transport::Websocket, "bobby").await;
        let a = act(&s, "bobby", "sendSingleMessage", json!({})).await;
        assert_eq!(a.status, 400);
        assert!(
            a.json()["error"]
                .as_str()
                .unwrap_or("")
                .contains("sendSingleMsg"),
            "{}",
            a.body
        );
        let a = act(&s, "nobody", "getUserInfo", json!({"username": "bobby"})).await;
        assert_eq!(a.status, 400);
        assert!(a.body.contains("no user \\\"nobody\\\""), "{}", a.body);
        let a = act(&s, "bobbi", "getUserInfo", json!({"username": "bobby"})).await;
        assert_eq!(a.status, 400);
        assert!(a.body.contains("did you mean \\\"bobby\\\""), "{}", a.body);
        let a = act(&s, "bobby", "login", json!({})).await;
        assert_eq!(a.status, 400, "{}", a.body);
        let a = act(&s, "bobby", "onMsgReceive", json!({})).await;
        assert_eq!(a.status, 400, "{}", a.body);
        let a = act(&s, "bobby", "sendSingleMsg", json!("text")).await;
        assert_eq!(a.status, 400, "{}", a.body);
        let a = act(
            &s,
            "bobby",
            "sendSingleMsg",
            json!({"target_username": "alice"}),
        )
        .await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert!(a.body.contains("empty"), "{}", a.body);
        let a = post(
            &s,
            "/__admin/act",
            json!({"as": "bobby", "method": "getGroups", "x": 1}),
        )
        .await;
        assert_eq!(a.status, 400, "{}", a.body);
        s.shutdown().await;
    })
    .await
}

/// Reads an SSE response on `tcp` until `done` holds for the text read so far.
async fn read_until(
    tcp: &mut tokio::net::TcpStream,
    mut text: String,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut buf = [0u8; 8192];
    while !done(&text) {
        let n = tokio::time::timeout(WAIT * 2, tcp.read(&mut buf))
            .await
            .expect("sse data in time")
            .expect("read");
        assert!(n > 0, "stream ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

/// An open event stream and what was read with its head.
async fn open_events(
    s: &RunningServer,
    query: &str,
    extra: &str,
) -> (tokio::net::TcpStream, String) {
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.expect("tcp");
    let req = format!(
        "GET /__admin/events{query} HTTP/1.1\r\nHost: {}\r\n{extra}\r\n",
        s.addr
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let head = read_until(&mut tcp, String::new(), |t| t.contains("\r\n\r\n")).await;
    (tcp, head)
}

#[tokio::test]
async fn events_stream_frames_live_with_filters_and_resume() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, Transport::Websocket, "alice").await;
        let (mut live, head) = open_events(&s, "?user=alice&event=msg_sync&dir=out", "").await;
        let bobby = user(&s, Transport::Websocket, "bobby").await;
        bobby
            .send_text("bobby", "alice", "live one")
            .await
            .expect("send");
        alice.expect_push("msg_sync", WAIT).await.expect("push");
        let text = read_until(&mut live, head, |t| t.contains("live one")).await;
        assert!(text.contains("event: frame"), "{text}");
        // Only alice's outbound msg_sync frames: no login, no bobby frames.
        for data in text.lines().filter(|l| l.starts_with("data:")) {
            let e: Value = serde_json::from_str(&data[5..]).expect("json");
            assert_eq!(e["user"], "alice", "{e}");
            assert_eq!(e["event"], "msg_sync", "{e}");
            assert_eq!(e["dir"], "out", "{e}");
        }
        let id: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("id:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("id");
        // Resume from just before that entry: the stored entry is replayed.
        let (mut again, head) = open_events(
            &s,
            "?event=msg_sync",
            &format!("Last-Event-ID: {}\r\n", id - 1),
        )
        .await;
        let text = read_until(&mut again, head, |t| t.contains("live one")).await;
        assert!(text.contains(&format!("id: {id}")), "{text}");
        let bad = get(&s, "/__admin/events?usr=alice").await;
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("user"), "{}", bad.body);
        s.shutdown().await;
    })
    .await
}

async fn start_with_origins(origins: &[&str]) -> RunningServer {
    let config = ServerConfig {
        admin_access: AdminAccess {
            sign_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..AdminAccess::default()
        },
        ..ServerConfig::new(backend_config(), TransportConfig::default())
    };
    server::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("server starts")
}

#[tokio::test]
async fn sign_gives_a_working_auth_payload_and_cors_only_to_listed_origins() {
    bounded(async {
        let s = start_with_origins(&["http://localhost:5173"]).await;
        let a = get(&s, "/__admin/sign").await;
        assert_eq!(a.status, 200, "{}", a.body);
        let p = a.json();
        assert_eq!(p["appkey"], APPKEY);
        assert!(!a.body.contains(SECRET), "{}", a.body);
        let c = client(&s, Transport::Websocket).await;
        let r = c
            .request(
                "c_init",
                json!({"appkey": p["appkey"], "random_str": p["random_str"],
                       "timestamp": p["timestamp"], "signature": p["signature"]}),
            )
            .await
            .expect("init");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        let other = get(&s, &format!("/__admin/sign?appkey={APPKEY2}")).await;
        assert_eq!(other.json()["appkey"], APPKEY2);
        assert_eq!(get(&s, "/__admin/sign?appkey=nope").await.status, 404);

        let host = s.addr.to_string();
        let listed = [
            ("Host", host.as_str()),
            ("Origin", "http://localhost:5173"),
            ("Sec-Fetch-Site", "cross-site"),
        ];
        let a = send(&s, "GET", "/__admin/sign", &listed, "").await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(
            a.head
                .contains("access-control-allow-origin: http://localhost:5173"),
            "{}",
            a.head
        );
        let pre = send(&s, "OPTIONS", "/__admin/sign", &listed, "").await;
        assert_eq!(pre.status, 204, "{}", pre.head);
        assert!(
            pre.head.contains("access-control-allow-methods: get"),
            "{}",
            pre.head
        );
        // Other origins, and other routes for the listed origin, stay refused.
        let evil = [("Host", host.as_str()), ("Origin", "http://evil.example")];
        let a = send(&s, "GET", "/__admin/sign", &evil, "").await;
        assert_eq!(a.status, 403);
        assert!(
            !a.head.contains("access-control-allow-origin"),
            "{}",
            a.head
        );
        let a = send(&s, "GET", "/__admin/state", &listed, "").await;
        assert_eq!(a.status, 403);
        assert!(
            !a.head.contains("access-control-allow-origin"),
            "{}",
            a.head
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn network_presets_switch_and_the_journal_shows_their_action() {
    bounded(async {
        let s = start().await;
        let listing = get(&s, "/__admin/network").await.json();
        assert_eq!(listing["current"], "none");
        assert!(listing["presets"]["lossy-wifi"].is_array(), "{listing}");
        let a = post(&s, "/__admin/network", json!({"preset": "lossy_wifi"})).await;
        assert_eq!(a.status, 400);
        assert!(a.body.contains("lossy-wifi"), "{}", a.body);
        let alice = user(&s, Transport::Websocket, "alice").await;
        let a = post(&s, "/__admin/network", json!({"preset": "3g"})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["current"], "3g");
        // Answered or not (the client's short timers may give up), the frames are delayed.
        let _ = alice
            .request(
                "get_across_user_info",
                json!({"username": "alice", "appkey": APPKEY}),
            )
            .await;
        drop(alice);
        let journal = get(&s, "/__admin/journal?user=alice").await.json();
        let delayed = journal
            .as_array()
            .expect("list")
            .iter()
            .find(|e| e["action"] == "delay")
            .cloned()
            .unwrap_or(Value::Null);
        assert!(
            delayed["fault"]
                .as_str()
                .unwrap_or("")
                .starts_with("network:3g:"),
            "{journal}"
        );
        let faults = get(&s, "/__admin/faults").await.json();
        assert_eq!(faults.as_array().map(Vec::len), Some(3), "{faults}");
        let a = post(&s, "/__admin/network", json!({"preset": "none"})).await;
        assert_eq!(a.json()["current"], "none");
        assert_eq!(get(&s, "/__admin/faults").await.json(), json!([]));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn scenario_load_keeps_sessions_whose_user_survives_and_closes_the_others() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, Transport::Websocket, "alice").await;
        let bobby = user(&s, Transport::Websocket, "bobby").await;
        // The same app and users, in the same order (same uids), without bobby.
        let yaml = format!(
            "name: keep\nfixtures:\n  apps: [{{appkey: {APPKEY}, secret: {SECRET}}}]\n  users:\n    \
             - {{username: seeded, password: \"123456\"}}\n    - {{username: alice, password: pw}}\n"
        );
        let host = s.addr.to_string();
        let a = send(
            &s,
            "POST",
            "/__admin/scenario",
            &[("Host", &host), ("Content-Type", "application/yaml")],
            &yaml,
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let v = a.json();
        assert_eq!(v["sessions"]["kept"][0]["user"], "alice", "{v}");
        assert_eq!(v["sessions"]["closed"][0]["user"], "bobby", "{v}");
        assert!(
            v["sessions"]["closed"][0]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("not in the new state"),
            "{v}"
        );
        tokio::time::timeout(WAIT, bobby.closed()).await.expect("bobby closed");
        // alice is still logged in, in the new state.
        let r = alice
            .request("get_across_user_info", json!({"username": "alice", "appkey": APPKEY}))
            .await
            .expect("request");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        assert!(!alice.is_closed());
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn socketio_client_2_as_alice_receives_what_act_makes_bobby_send() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let missing = if !node_installed() {
        Some("node is not installed".to_owned())
    } else if !dir.join("node_modules").is_dir() {
        Some("tests/node/node_modules is missing (run `npm ci --prefix tests/node`)".to_owned())
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(
            std::env::var("JMM_REQUIRE_NODE").as_deref() != Ok("1"),
            "JMM_REQUIRE_NODE=1 but {why}"
        );
        eprintln!("SKIPPED: {why}");
        return;
    }
    bounded(async {
        let s = start().await;
        // alice and bobby exist (password pw); node logs in as alice.
        drop(user(&s, Transport::Websocket, "alice").await);
        drop(user(&s, Transport::Websocket, "bobby").await);
        let child = tokio::process::Command::new("node")
            .arg("act_receive.js")
            .current_dir(&dir)
            .env("JMM_ADDRESS", s.http_url())
            .env("JMM_APPKEY", APPKEY)
            .env("JMM_SECRET", SECRET)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(55), child)
            .await
            .expect("node in time")
            .expect("node runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("ok"), "{text}");
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn with_a_token_the_preflight_passes_and_the_sign_call_still_needs_it() {
    bounded(async {
        let config = ServerConfig {
            admin_access: AdminAccess {
                token: Some("t0k3n".into()),
                sign_origins: vec!["http://localhost:5173/".into()],
                ..AdminAccess::default()
            },
            ..ServerConfig::new(backend_config(), TransportConfig::default())
        };
        let s = server::start(config, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("server starts");
        let host = s.addr.to_string();
        let origin = ("Origin", "http://localhost:5173");
        let pre = send(
            &s,
            "OPTIONS",
            "/__admin/sign",
            &[
                ("Host", &host),
                origin,
                ("Access-Control-Request-Method", "GET"),
            ],
            "",
        )
        .await;
        assert_eq!(pre.status, 204, "{}", pre.head);
        assert!(
            pre.head
                .contains("access-control-allow-headers: authorization"),
            "{}",
            pre.head
        );
        let bare = send(&s, "GET", "/__admin/sign", &[("Host", &host), origin], "").await;
        assert_eq!(bare.status, 401, "{}", bare.body);
        let auth = send(
            &s,
            "GET",
            "/__admin/sign",
            &[("Host", &host), origin, ("Authorization", "Bearer t0k3n")],
            "",
        )
        .await;
        assert_eq!(auth.status, 200, "{}", auth.body);
        assert_eq!(auth.json()["appkey"], APPKEY);
        // A preflight elsewhere is refused, token or not.
        let other = send(
            &s,
            "OPTIONS",
            "/__admin/state",
            &[("Host", &host), origin],
            "",
        )
        .await;
        assert_eq!(other.status, 403, "{}", other.head);
        s.shutdown().await;
    })
    .await
}
