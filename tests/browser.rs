//! The real browser: headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `adapters/jmessage-web`) against the real server on 127.0.0.1.
//!
//! - `socket_io_client_v2_in_chromium`: socket.io-client@2's browser bundle in Chromium
//!   pages (`adapters/jmessage-web/browser-smoke.js`), no SDK needed;
//! - `browser_driver_*`: the driver's browser mode (`driver.js --browser`) over a stand-in
//!   SDK (`tests/drivers/fake_sdk.js`), no SDK needed;
//! - `official_sdk_catalogue_cases_in_chromium`: a handful of conformance catalogue cases
//!   through the browser driver with the official SDK (`JMESSAGE_SDK`; skipped without).
//!
//! Without `/usr/bin/chromium` (or `$JMM_CHROMIUM`) the tests skip, saying so, unless
//! `JMM_REQUIRE_BROWSER=1` (CI), which makes them fail. Missing Node dependencies follow
//! `JMM_REQUIRE_NODE` like tests/node_clients.rs.

mod common;

use common::{browser_ready, chromium, root};
use jmessage_mock::conformance::driver::{DriverError, DriverEvent, SubprocessDriver};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

macro_rules! need_browser {
    ($($dir:expr),*) => {
        if let Err(why) = browser_ready(&[$($dir),*]) {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

fn adapter() -> PathBuf {
    root().join("adapters/jmessage-web")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_v2_in_chromium() {
    let nodedir = root().join("tests/node");
    need_browser!(&adapter(), &nodedir);
    let s = common::start().await;
    let bundle = nodedir.join("node_modules/socket.io-client/dist/socket.io.js");
    let child = Command::new("node")
        .arg("browser-smoke.js")
        .current_dir(adapter())
        .env("JMM_ADDRESS", s.http_url())
        .env("JMM_APPKEY", common::APPKEY)
        .env("JMM_SECRET", common::SECRET)
        .env("JMM_SOCKETIO_BUNDLE", bundle)
        .env("JMM_CHROMIUM", chromium())
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(100), child.wait_with_output())
        .await
        .expect("browser-smoke.js finishes within 100 s")
        .expect("browser-smoke.js runs");
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("({:?})\n{text}", started.elapsed());
    assert!(
        out.status.success(),
        "socket.io-client@2 in chromium failed:\n{text}"
    );
    assert!(text.contains("8 passed, 0 failed"), "{text}");
    for case in [
        "ok websocket only",
        "ok polling only",
        "ok polling upgrade to websocket",
        "ok CJK/emoji text websocket -> polling",
        "ok CJK/emoji text polling -> websocket",
        "ok credentialed cross-origin fetch is allowed by CORS",
    ] {
        assert!(text.contains(case), "missing {case:?}:\n{text}");
    }
    s.shutdown().await;
}

async fn spawn_browser_driver(extra: &[&str]) -> Result<SubprocessDriver, DriverError> {
    let mut args = vec![
        adapter().join("driver.js").display().to_string(),
        "--browser".to_owned(),
        "--sdk".to_owned(),
        root()
            .join("tests/drivers/fake_sdk.js")
            .display()
            .to_string(),
        "--chromium".to_owned(),
        chromium().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    SubprocessDriver::spawn("node", &args, &[]).await
}

/// The next callback event of `call`, skipping others (bounded).
async fn callback_of(d: &SubprocessDriver, call: u64) -> (String, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match d.next_event(left).await {
            Some(DriverEvent::Callback {
                call: c,
                name,
                args,
            }) if c == call => return (name, args),
            Some(_) => continue,
            None => panic!("no callback for call {call} within 10 s"),
        }
    }
}

async fn next_matching(
    d: &SubprocessDriver,
    what: &str,
    f: impl Fn(&DriverEvent) -> bool,
) -> DriverEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match d.next_event(left).await {
            Some(e) if f(&e) => return e,
            Some(_) => continue,
            None => panic!("no {what} within 10 s"),
        }
    }
}

/// The browser mode end to end over a stand-in SDK: hello, two instances in their own
/// contexts, callbacks, listeners, `$file` as a real FormData/File, localStorage
/// isolation, page errors, synchronous throws, `advance` on page.clock, a WebSocket from
/// the page to the server, destroy and shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_driver_speaks_protocol_v1_in_chromium() {
    need_browser!(&adapter());
    let s = common::start().await;
    let mut d = tokio::time::timeout(Duration::from_secs(30), spawn_browser_driver(&[]))
        .await
        .expect("hello within 30 s")
        .expect("the browser driver starts");
    assert_eq!(d.hello.driver, "jmessage-web-browser");
    assert_eq!(d.hello.version, "2.4.0", "the stand-in has the 2.4.0 shape");
    for cap in ["multi_instance", "fake_timers", "upload"] {
        assert!(d.can(cap), "{cap} missing from {:?}", d.hello.capabilities);
    }
    d.create("a", &s.ws_url(), &s.upload_url())
        .await
        .expect("create a");
    d.create("b", &s.http_url(), &s.upload_url())
        .await
        .expect("create b");
    let dup = d.create("a", &s.ws_url(), &s.upload_url()).await;
    assert!(matches!(dup, Err(DriverError::Refused { .. })), "{dup:?}");

    // A callback, with the page's realm seeing a real Array and its own origin.
    let r = d
        .call(
            "a",
            "init",
            json!([{"appkey": "k", "list": [1, 2]}]),
            &["onSuccess", "onFail"],
        )
        .await
        .expect("init");
    assert_eq!(r.thrown, None);
    let (name, args) = callback_of(&d, r.seq).await;
    assert_eq!(name, "onSuccess");
    assert_eq!(args[0]["appkey"], "k");
    assert_eq!(args[0]["isArray"], true);
    assert_eq!(args[0]["address"], s.ws_url());
    let origin = args[0]["origin"].as_str().expect("origin").to_owned();
    assert!(origin.starts_with("http://127.0.0.1:"), "{origin}");
    assert_ne!(
        origin,
        s.http_url().trim_end_matches('/'),
        "the page is cross-origin"
    );

    // `b` was given an http:// address: the driver hands the SDK ws://host:port.
    let r = d
        .call("b", "init", json!([{}]), &["onSuccess"])
        .await
        .expect("init b");
    let (_, args) = callback_of(&d, r.seq).await;
    assert_eq!(args[0]["address"], s.ws_url());

    // `$file` becomes a FormData holding a File under the placeholder's key.
    let r = d
        .call(
            "a",
            "sendSinglePic",
            json!([{"target_username": "x", "image": {"$file": {"name": "p.png", "type": "image/png", "base64": "aGVsbG8g5L2g5aW9"}}}]),
            &["onSuccess", "onFail"],
        )
        .await
        .expect("sendSinglePic");
    let (name, args) = callback_of(&d, r.seq).await;
    assert_eq!(name, "onSuccess", "{args}");
    assert_eq!(args[0]["isFile"], true);
    assert_eq!(args[0]["name"], "p.png");
    assert_eq!(args[0]["type"], "image/png");
    assert_eq!(args[0]["size"], 12);
    assert_eq!(args[0]["text"], "hello 你好");
    let bad = d
        .call(
            "a",
            "sendSinglePic",
            json!([{"image": {"$file": {"base64": "%%"}}}]),
            &["onSuccess"],
        )
        .await;
    assert!(matches!(bad, Err(DriverError::Refused { .. })), "{bad:?}");

    // Each instance has its own BrowserContext: localStorage is not shared.
    let r = d
        .call("a", "storage", json!(["k", "from-a"]), &[])
        .await
        .expect("storage a");
    assert_eq!(r.returned, json!("from-a"));
    let r = d
        .call("b", "storage", json!(["k"]), &[])
        .await
        .expect("storage b");
    assert_eq!(r.returned, Value::Null, "b sees a's localStorage");

    // Listener deliveries carry the instance; functions, cycles and Blobs are made JSON-safe.
    d.listen("a", "onMsgReceive").await.expect("listen");
    d.call("a", "emitMsg", json!(["你好 😀"]), &[])
        .await
        .expect("emitMsg");
    let ev = next_matching(&d, "onMsgReceive", |e| {
        matches!(e, DriverEvent::Listener { .. })
    })
    .await;
    let DriverEvent::Listener {
        instance,
        listener,
        args,
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(
        (instance.as_str(), listener.as_str()),
        ("a", "onMsgReceive")
    );
    assert_eq!(args[0]["text"], "你好 😀");
    assert_eq!(args[0]["self"], "[Circular]");
    assert_eq!(args[0]["blob"], "[Blob 3 bytes]");
    assert!(args[0].get("fn").is_none(), "{args}");

    // A synchronous exception is `thrown`; one escaping a timer is an `error` event.
    let r = d
        .call("a", "throwNow", json!([]), &[])
        .await
        .expect("throwNow");
    assert_eq!(r.thrown.as_deref(), Some("fake sdk: thrown synchronously"));
    d.call("b", "boom", json!([]), &[]).await.expect("boom");
    let ev = next_matching(&d, "error event", |e| {
        matches!(e, DriverEvent::Error { .. })
    })
    .await;
    let DriverEvent::Error { instance, message } = ev else {
        unreachable!()
    };
    assert_eq!(instance.as_deref(), Some("b"));
    assert!(message.contains("fake sdk boom"), "{message}");

    // page.clock: a 30 s timer fires on `advance`, not before.
    let r = d
        .call("a", "slow", json!([]), &["onTimeout"])
        .await
        .expect("slow");
    assert!(
        d.next_event(Duration::from_millis(300)).await.is_none(),
        "something fired before advance"
    );
    d.advance(30_000).await.expect("advance");
    let (name, _) = callback_of(&d, r.seq).await;
    assert_eq!(name, "onTimeout");

    // The page reaches the server's Engine.IO endpoint over a real WebSocket.
    let r = d
        .call("a", "connect", json!([]), &["onSuccess", "onFail"])
        .await
        .expect("connect");
    let (name, args) = callback_of(&d, r.seq).await;
    assert_eq!(name, "onSuccess", "{args}");
    let first = args[0]["first"].as_str().expect("first frame");
    assert!(
        first.starts_with('0') && first.contains("\"sid\""),
        "{first}"
    );

    let unknown = d.call("a", "noSuchMethod", json!([]), &[]).await;
    assert!(
        matches!(unknown, Err(DriverError::Refused { .. })),
        "{unknown:?}"
    );
    d.destroy("a").await.expect("destroy a");
    let gone = d.call("a", "storage", json!(["k"]), &[]).await;
    assert!(matches!(gone, Err(DriverError::Refused { .. })), "{gone:?}");
    tokio::time::timeout(Duration::from_secs(15), d.shutdown())
        .await
        .expect("shutdown within 15 s")
        .expect("shutdown");
    s.shutdown().await;
}

/// A missing Chromium is a clear `hello` error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_driver_without_chromium_fails_hello_clearly() {
    let dir = adapter();
    if !dir.join("node_modules").is_dir() {
        if std::env::var("JMM_REQUIRE_NODE").as_deref() == Ok("1") {
            panic!(
                "JMM_REQUIRE_NODE=1 but {}/node_modules is missing",
                dir.display()
            );
        }
        eprintln!("SKIPPED: {}/node_modules is missing", dir.display());
        return;
    }
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        spawn_browser_driver(&["--chromium", "/nonexistent/chromium"]),
    )
    .await
    .expect("hello answered within 20 s");
    match r {
        Err(DriverError::Refused { error, .. }) => {
            assert!(
                error.contains("chromium not found at /nonexistent/chromium")
                    && error.contains("apt-get install chromium"),
                "{error}"
            );
        }
        Err(e) => panic!("expected a refused hello, got {e}"),
        Ok(_) => panic!("hello succeeded without chromium"),
    }
}

/// Catalogue cases through the browser driver with the official SDK: init, register,
/// login and a kick, a single and a group message, two uploads (`$file` as a browser
/// File in a FormData, sent by Chromium's XHR with CORS) and dropped acks under
/// `time_scale` (`advance` on page.clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_catalogue_cases_in_chromium() {
    let Ok(paths) = std::env::var("JMESSAGE_SDK") else {
        eprintln!("SKIPPED: JMESSAGE_SDK is not set (point it at an official Web SDK build; ':' separates several)");
        return;
    };
    need_browser!(&adapter());
    let cases = [
        "scenarios/conformance/session/3_1-001-init-with-a-valid-signature-succeeds-and-isinit-turns-true.yaml",
        "scenarios/conformance/session/3_2-006-a-second-web-login-kicks-the-first-session-with-event-1.yaml",
        "scenarios/conformance/session/3_6-001-register-a-new-user-then-log-in-as-it.yaml",
        "scenarios/conformance/single/5_4-001-sendsinglemsg-succeeds-and-the-target-s-onmsgreceive-gets-th.yaml",
        "scenarios/conformance/group/4_4-017-sendgroupmsg-reaches-the-other-members-onmsgreceive.yaml",
        "scenarios/conformance/media/6-001-sendsinglepic-uploads-and-delivers-an-image.yaml",
        "scenarios/conformance/media/6-002-sendsinglefile-uploads-and-delivers-a-file-with-its-name.yaml",
        "scenarios/conformance/faults/2_2-101-dropped-acks-sendsinglemsg-still-succeeds-once-re-sends-keep.yaml",
    ];
    for sdk in paths.split(':').filter(|p| !p.is_empty()) {
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_jmessage-mock"))
            .current_dir(root())
            .arg("run")
            .args([
                "--client",
                "browser=node adapters/jmessage-web/driver.js --browser",
            ])
            .args(cases)
            .env("JMESSAGE_SDK", sdk)
            .env("JMM_CHROMIUM", chromium())
            .kill_on_drop(true)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jmessage-mock run starts");
        let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
            .await
            .expect("the run finishes within 300 s")
            .expect("jmessage-mock run runs");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{sdk} ({:?}):\n{text}", started.elapsed());
        assert!(
            out.status.success(),
            "{sdk}: catalogue cases failed in chromium:\n{text}"
        );
        assert!(text.contains("8 passed, 0 failed"), "{text}");
    }
}

/// Pids of every live (not zombie) descendant of `pid`, from /proc.
#[cfg(target_os = "linux")]
fn live_descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.to_owned()) else {
                continue;
            };
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("");
            let ppid = f.next().and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
            parent_of.push((p, ppid, state == "Z"));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let cur = found[i];
        for (p, pp, _) in &parent_of {
            if *pp == cur && !found.contains(p) {
                found.push(*p);
            }
        }
        i += 1;
    }
    found
        .into_iter()
        .skip(1)
        .filter(|p| parent_of.iter().any(|(q, _, z)| q == p && !z))
        .collect()
}

#[cfg(target_os = "linux")]
fn alive(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| !r.trim_start().starts_with('Z'))
                        .unwrap_or(false)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Chromium does not outlive the driver: not when stdin closes, not on SIGTERM, not when
/// the driver is killed outright (SIGKILL, what the runner does at the end of a run).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_driver_leaves_no_chromium_behind() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    need_browser!(&adapter());
    let s = common::start().await;
    for how in ["stdin", "SIGTERM", "SIGKILL"] {
        let mut child = Command::new("node")
            .arg(adapter().join("driver.js"))
            .args(["--browser", "--sdk"])
            .arg(root().join("tests/drivers/fake_sdk.js"))
            .arg("--chromium")
            .arg(chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let pid = child.id().expect("pid");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let create = json!({"seq": 2, "cmd": "create", "instance": "a",
            "options": {"address": s.ws_url(), "upload_file": s.upload_url()}});
        let input = format!(
            "{}\n{create}\n",
            json!({"seq": 1, "cmd": "hello", "protocol": 1})
        );
        stdin.write_all(input.as_bytes()).await.expect("write");
        for _ in 0..2 {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("a reply within 30 s")
                .expect("read")
                .expect("a line");
            assert!(line.contains("\"ok\":true"), "{how}: {line}");
        }
        let chromium_pids = live_descendants(pid);
        assert!(
            !chromium_pids.is_empty(),
            "{how}: no chromium processes under the driver"
        );
        match how {
            "stdin" => drop(stdin),
            sig => {
                let flag = if sig == "SIGTERM" { "-TERM" } else { "-KILL" };
                let ok = std::process::Command::new("kill")
                    .args([flag, &pid.to_string()])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "kill {flag} {pid}");
            }
        }
        tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .expect("the driver exits within 15 s")
            .expect("wait");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = alive(&chromium_pids);
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{how}: chromium processes {left:?} still alive 10 s after the driver exited"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    s.shutdown().await;
}
