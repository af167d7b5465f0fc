//! `serve --state FILE`: the state survives a graceful restart and a `kill -9`, a
//! corrupt file is refused and left untouched, and `export-state` writes fixtures that
//! `check` accepts and `include:` loads. In-process servers and the built binary.

mod common;

use base64::Engine as _;
use common::*;
use jmessage_mock::backend::{Backend, ManualClock};
use jmessage_mock::client::{Client, Transport};
use jmessage_mock::server::{self, persist, RunningServer, ServerConfig, StartError};
use jmessage_mock::transport::TransportConfig;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_jmessage-mock");
/// The embedded default app and demo password of `serve` without a config.
const DEMO_APPKEY: &str = "6b4c1fe2d0a8e5f3a9c7b1d2";
const DEMO_SECRET: &str = "jmessage-mock-dev-secret";

/// A fresh directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let d = std::env::temp_dir().join(format!("jmm-state-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

async fn start_at(path: &Path) -> Result<RunningServer, StartError> {
    let config = ServerConfig {
        state: Some(path.to_path_buf()),
        ..ServerConfig::new(backend_config(), TransportConfig::default())
    };
    server::start(config, "127.0.0.1:0".parse().expect("addr")).await
}

async fn login(s: &RunningServer, name: &str, flag: i64) -> Client {
    let c = client(s, Transport::Websocket).await;
    c.init(APPKEY, SECRET, flag)
        .await
        .expect("init")
        .ok()
        .expect("init ok");
    let r = c.login(name, "pw").await.expect("login");
    assert_eq!(r.code(), 0, "login {name} after restart: {:?}", r.body);
    c
}

async fn ok(c: &Client, event: &str, payload: Value) -> jmessage_mock::client::Reply {
    let r = c.request(event, payload).await.expect("reply");
    assert_eq!(r.code(), 0, "{event}: {:?}", r.body);
    r
}

/// A PNG header that the upload's image check accepts.
fn png() -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(b"IHDR");
    v.extend_from_slice(&8u32.to_be_bytes());
    v.extend_from_slice(&6u32.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    v
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
async fn http(
    s: &RunningServer,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        s.addr,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp.write_all(body).await.expect("write");
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.expect("read");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end")
        + 4;
    let status = String::from_utf8_lossy(&out[9..12])
        .parse()
        .expect("status");
    (status, out[split..].to_vec())
}

/// A media file's bytes through the signed URL that `get_resource` gives `c`.
async fn media_bytes(s: &RunningServer, c: &Client, media_id: &str) -> (u16, Vec<u8>) {
    let r = ok(c, "get_resource", json!({"media_id": media_id})).await;
    let url = r.get("url").as_str().expect("url").to_owned();
    let path = &url[url.find("/media/").expect("a media URL")..];
    http(s, "GET", path, &[], b"").await
}

/// Uploads `bytes` as alice's image; returns the media_id.
async fn upload(s: &RunningServer, c: &Client, name: &str, bytes: &[u8]) -> String {
    let token = ok(c, "get_upload_token", json!({}))
        .await
        .get("uptoken")
        .as_str()
        .expect("uptoken")
        .to_owned();
    let boundary = "----jmmstate";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n").into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{token}"));
    let headers = [
        ("X-App-Key", APPKEY.to_owned()),
        ("jm-channel", "w".to_owned()),
        ("Authorization", format!("Basic {auth}")),
        (
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        ),
    ];
    let (status, reply) = http(s, "POST", "/resource?type=image", &headers, &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let v: Value = serde_json::from_slice(&reply).expect("json");
    v["media_id"].as_str().expect("media_id").to_owned()
}

/// What the first run leaves behind, to check after the restart.
struct Made {
    msg_ids: Vec<Value>,
    gid: u64,
    media_id: String,
}

/// alice and bobby register; alice sends bobby (offline) two texts, creates a group
/// with him and uploads an image.
async fn make_state(s: &RunningServer) -> Made {
    let b = user(s, Transport::Websocket, "bobby").await;
    b.disconnect();
    let a = user(s, Transport::Websocket, "alice").await;
    let mut msg_ids = Vec::new();
    for text in ["one", "two"] {
        msg_ids.push(
            a.send_text("alice", "bobby", text)
                .await
                .expect("reply")
                .ok()
                .expect("sent")
                .get("msg_id")
                .clone(),
        );
    }
    let gid = ok(&a, "create_group", json!({"group_name": "kept"}))
        .await
        .get("gid")
        .as_u64()
        .expect("gid");
    ok(
        &a,
        "add_across_group_member",
        json!({"gid": gid, "member_usernames": [{"username": "bobby", "appkey": APPKEY}]}),
    )
    .await;
    let media_id = upload(s, &a, "alice", &png()).await;
    a.disconnect();
    Made {
        msg_ids,
        gid,
        media_id,
    }
}

/// bobby sees everything `make_state` made.
async fn check_state(s: &RunningServer, made: &Made) {
    let b = login(s, "bobby", 0).await;
    let sync = b
        .expect_push("sync_conversation", WAIT)
        .await
        .expect("sync_conversation");
    let conv = &sync["messages"][0];
    assert_eq!(conv["from_username"], json!("alice"), "{sync}");
    let ids: Vec<Value> = conv["msgs"]
        .as_array()
        .expect("msgs")
        .iter()
        .map(|m| m["msg_id"].clone())
        .collect();
    assert_eq!(ids, made.msg_ids);
    let members = ok(&b, "get_group_members", json!({"gid": made.gid})).await;
    let mut names: Vec<&str> = members
        .get("member_list")
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["username"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["alice", "bobby"]);
    let a = login(s, "alice", 0).await;
    assert_eq!(media_bytes(s, &a, &made.media_id).await, (200, png()));
    // New ids continue after the saved ones.
    let next = a
        .send_text("alice", "bobby", "three")
        .await
        .expect("reply")
        .ok()
        .expect("sent")
        .get("msg_id")
        .clone();
    assert!(
        next.as_u64() > made.msg_ids[1].as_u64(),
        "{next} after {:?}",
        made.msg_ids
    );
}

#[tokio::test]
async fn users_messages_groups_and_media_survive_a_restart() {
    bounded(async {
        let dir = temp_dir("restart");
        let path = dir.join("jmm.state");
        let s = start_at(&path).await.expect("first start");
        let made = make_state(&s).await;
        s.shutdown().await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("state file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the state file holds password hashes");
        }
        let s = start_at(&path).await.expect("restart");
        check_state(&s, &made).await;
        s.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    })
    .await
}

/// A `serve` subprocess, killed when dropped.
struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_serve(state: &Path) -> Serve {
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--state"])
        .arg(state)
        .env_remove("JMM_CONFIG")
        .env_remove("JMM_SCENARIO")
        .env("JMM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("listening on ").nth(1) {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve prints its address");
    Serve { child, url }
}

async fn demo_login(url: &str, name: &str) -> Client {
    let c = Client::connect(url, fast()).await.expect("connect");
    c.init(DEMO_APPKEY, DEMO_SECRET, 0)
        .await
        .expect("init")
        .ok()
        .expect("init ok");
    c.login(name, "123456")
        .await
        .expect("login")
        .ok()
        .expect("login ok");
    c
}

/// Messages in the state file, or 0 while it is missing or unreadable.
fn saved_messages(path: &Path) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    match persist::decode(&bytes) {
        Ok(parts) => Backend::from_saved(parts, Arc::new(ManualClock::new(0))).message_count(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn kill_9_loses_nothing_saved_a_second_before() {
    bounded(async {
        let dir = temp_dir("kill9");
        let path = dir.join("jmm.state");
        let serve = spawn_serve(&path);
        let a = demo_login(&serve.url, "alice").await;
        let sent = a
            .send_text("alice", "bobby", "before the crash")
            .await
            .expect("reply")
            .ok()
            .expect("sent");
        // The saver writes within its interval (1 s); wait for it, bounded.
        let until = Instant::now() + Duration::from_secs(20);
        while saved_messages(&path) < 1 {
            assert!(
                Instant::now() < until,
                "the state file never held the message"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(a);
        drop(serve); // SIGKILL: no shutdown path runs.
        let serve = spawn_serve(&path);
        let b = demo_login(&serve.url, "bobby").await;
        let sync = b
            .expect_push("sync_conversation", WAIT)
            .await
            .expect("sync_conversation");
        assert_eq!(
            sync["messages"][0]["msgs"][0]["msg_id"],
            *sent.get("msg_id"),
            "{sync}"
        );
        drop(serve);
        let _ = std::fs::remove_dir_all(dir);
    })
    .await
}

/// Runs `serve --state path`, which must exit by itself; returns (exit code, stderr).
fn serve_must_exit(path: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--state"])
        .arg(path)
        .env_remove("JMM_CONFIG")
        .env_remove("JMM_SCENARIO")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve kept running on the bad state file {}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status.code(), err)
}

#[tokio::test]
async fn a_corrupt_state_file_is_refused_and_left_untouched() {
    let dir = temp_dir("corrupt");
    let good = dir.join("good.state");
    let s = bounded(start_at(&good)).await.expect("start");
    bounded(async {
        user(&s, Transport::Websocket, "alice").await;
    })
    .await;
    bounded(s.shutdown()).await;
    let bytes = std::fs::read(&good).expect("good file");
    assert!(persist::decode(&bytes).is_ok());
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let mut newer = bytes.clone();
    newer[8] = 99;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", bytes[..bytes.len() - 7].to_vec(), "truncated"),
        ("flipped", flipped, "checksum"),
        ("garbage", b"{\"users\": [] }\n".repeat(5), "JMMSTATE"),
        ("empty", Vec::new(), "header"),
        ("newer", newer, "version 99"),
    ];
    for (name, content, reason) in cases {
        let path = dir.join(format!("{name}.state"));
        std::fs::write(&path, &content).expect("write case");
        let (code, err) = serve_must_exit(&path);
        assert!(code.is_some_and(|c| c != 0), "{name}: exit {code:?}, {err}");
        assert!(
            err.contains("corrupt")
                && err.contains(reason)
                && err.contains(&path.display().to_string()),
            "{name}: {err}"
        );
        assert!(err.contains("left untouched"), "{name}: {err}");
        assert_eq!(
            std::fs::read(&path).expect("still there"),
            content,
            "{name} changed"
        );
        // The same refusal in-process.
        let e = bounded(start_at(&path)).await.err().expect("refused");
        assert!(e.to_string().contains(reason), "{name}: {e}");
        assert_eq!(
            std::fs::read(&path).expect("still there"),
            content,
            "{name} changed"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn run_bin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn export_state_writes_fixtures_that_check_and_include_accept() {
    let dir = temp_dir("export");
    let path = dir.join("jmm.state");
    let s = bounded(start_at(&path)).await.expect("start");
    let made = bounded(make_state(&s)).await;
    bounded(s.shutdown()).await;
    std::fs::create_dir_all(dir.join("fixtures")).expect("dir");
    let fx = dir.join("fixtures/exported.yaml");
    let (ok_export, _, err) = run_bin(&[
        "export-state",
        &path.display().to_string(),
        "--out",
        &fx.display().to_string(),
    ]);
    assert!(ok_export, "{err}");
    let (ok_check, out, err) = run_bin(&["check", &fx.display().to_string()]);
    assert!(ok_check, "{out}{err}");
    let scenario = dir.join("from-state.yaml");
    let mut f = std::fs::File::create(&scenario).expect("scenario");
    writeln!(
        f,
        "name: from exported state\ninclude: [fixtures/exported.yaml]"
    )
    .expect("write");
    drop(f);
    let sc = jmessage_mock::scenario::load(&scenario).expect("scenario with the export loads");
    // A server from the scenario: alice logs in with her original password and bobby
    // finds the group, the messages and the image.
    let config = ServerConfig::new(sc.backend_config(), TransportConfig::default());
    let s = bounded(server::start(config, "127.0.0.1:0".parse().expect("addr")))
        .await
        .expect("start");
    bounded(async {
        let b = login(&s, "bobby", 0).await;
        let sync = b
            .expect_push("sync_conversation", WAIT)
            .await
            .expect("sync_conversation");
        let texts: Vec<Value> = sync["messages"][0]["msgs"]
            .as_array()
            .expect("msgs")
            .iter()
            .map(|m| m["content"]["msg_body"]["text"].clone())
            .collect();
        assert_eq!(texts, [json!("one"), json!("two")]);
        let members = ok(&b, "get_group_members", json!({"gid": made.gid})).await;
        assert_eq!(members.get("member_list").as_array().map(Vec::len), Some(2));
        let a = login(&s, "alice", 0).await;
        assert_eq!(media_bytes(&s, &a, &made.media_id).await, (200, png()));
    })
    .await;
    bounded(s.shutdown()).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sigterm_writes_the_last_changes_before_exiting() {
    bounded(async {
        let dir = temp_dir("sigterm");
        let path = dir.join("jmm.state");
        let mut serve = spawn_serve(&path);
        let a = demo_login(&serve.url, "alice").await;
        a.send_text("alice", "bobby", "just before the stop")
            .await
            .expect("reply")
            .ok()
            .expect("sent");
        let pid = serve.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let until = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = serve.child.try_wait().expect("wait") {
                break st;
            }
            assert!(Instant::now() < until, "serve did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.code(), Some(0));
        assert_eq!(saved_messages(&path), 1);
        drop(serve);
        let _ = std::fs::remove_dir_all(dir);
    })
    .await
}

#[tokio::test]
async fn admin_reset_writes_the_configured_state_to_the_file() {
    bounded(async {
        let dir = temp_dir("reset");
        let path = dir.join("jmm.state");
        let s = start_at(&path).await.expect("start");
        user(&s, Transport::Websocket, "alice").await;
        let headers = [("Content-Type", "application/json".to_owned())];
        let (status, body) = http(&s, "POST", "/__admin/reset", &headers, b"{}").await;
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
        s.shutdown().await;
        let s = start_at(&path).await.expect("restart");
        let c = client(&s, Transport::Websocket).await;
        c.init(APPKEY, SECRET, 0)
            .await
            .expect("init")
            .ok()
            .expect("init ok");
        let gone = c.login("alice", "pw").await.expect("login");
        assert_ne!(gone.code(), 0, "alice was registered before the reset");
        let seeded = c.login("seeded", "123456").await.expect("login");
        assert_eq!(seeded.code(), 0, "{:?}", seeded.body);
        s.shutdown().await;
        let _ = std::fs::remove_dir_all(dir);
    })
    .await
}
