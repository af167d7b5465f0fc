//! The builtin client's mutants change the wire as described (against a real in-process
//! server), and `jmessage-mock mutants` reports killed mutants and exits as documented.
//! (Payload rewrites are also unit-tested in `src/client/mutants.rs`.)

mod common;

use common::{bounded, fast, start, start_with, user, APPKEY, SECRET, WAIT};
use jmessage_mock::backend::signature;
use jmessage_mock::client::mutants::Mutant;
use jmessage_mock::client::sdk::{SdkCall, SdkInstance};
use jmessage_mock::client::{Client, ClientConfig, RequestError, Transport};
use jmessage_mock::faults::FaultSpec;
use jmessage_mock::server::RunningServer;
use jmessage_mock::transport::TransportConfig;
use serde_json::{json, Value};
use std::time::Duration;

const SEND: &str = "s_across_single_text";

fn with(m: Mutant) -> ClientConfig {
    ClientConfig {
        mutant: Some(m),
        ..fast()
    }
}

fn add(s: &RunningServer, v: Value) {
    let spec: FaultSpec = serde_json::from_value(v).expect("valid fault rule");
    s.faults.add(spec).expect("rule added");
}

/// The rids of the requests named `event` the server received.
fn request_rids(s: &RunningServer, event: &str) -> Vec<String> {
    s.faults
        .journal(0)
        .into_iter()
        .filter(|e| e.dir == "in" && e.kind == "request" && e.event.as_deref() == Some(event))
        .map(|e| e.rid.map(|r| r.to_string()).unwrap_or_default())
        .collect()
}

/// A client logged in as alice with `config` (bobby registered too).
async fn alice(s: &RunningServer, config: ClientConfig) -> Client {
    drop(user(s, Transport::Websocket, "bobby").await);
    drop(user(s, Transport::Websocket, "alice").await);
    let c = Client::connect(&s.http_url(), config)
        .await
        .expect("connect");
    c.init(APPKEY, SECRET, 0)
        .await
        .expect("init")
        .ok()
        .expect("ok");
    c.login("alice", "pw")
        .await
        .expect("login")
        .ok()
        .expect("ok");
    c
}

/// Sends a message no one acks or answers; the error and the rids the server saw.
async fn unanswered(m: Mutant, response_ms: u64) -> (RequestError, Vec<String>) {
    let s = start().await;
    add(
        &s,
        json!({"id": "no-ack", "when": {"direction": "out", "kind": "ack", "event": [SEND]},
               "action": "drop"}),
    );
    add(
        &s,
        json!({"id": "mute", "when": {"event": [SEND]}, "action": "never_answer"}),
    );
    let a = alice(
        &s,
        ClientConfig {
            response_timeout: Some(Duration::from_millis(response_ms)),
            ..with(m)
        },
    )
    .await;
    let err = a
        .send_text("alice", "bobby", "x")
        .await
        .expect_err("unanswered");
    let rids = request_rids(&s, SEND);
    s.shutdown().await;
    (err, rids)
}

#[tokio::test]
async fn renewed_rid_resends_with_new_rids() {
    bounded(async {
        let (err, rids) = unanswered(Mutant::RenewedRid, 60_000).await;
        assert!(
            matches!(err, RequestError::AckTimeout { sends: 5, .. }),
            "{err:?}"
        );
        let distinct: std::collections::BTreeSet<_> = rids.iter().collect();
        assert_eq!((rids.len(), distinct.len()), (5, 5), "{rids:?}");
    })
    .await
}

#[tokio::test]
async fn three_and_six_sends_change_the_number_of_transmissions() {
    bounded(async {
        for (m, n) in [(Mutant::ThreeSends, 3), (Mutant::SixSends, 6)] {
            let (err, rids) = unanswered(m, 60_000).await;
            assert!(
                matches!(err, RequestError::AckTimeout { sends, .. } if sends == n),
                "{m:?}: {err:?}"
            );
            assert_eq!(rids.len(), n as usize, "{m:?}");
            assert!(rids.iter().all(|r| *r == rids[0]), "a resend keeps its rid");
        }
    })
    .await
}

#[tokio::test]
async fn no_resend_leaves_only_the_response_timer() {
    bounded(async {
        // Normally the 300 ms ack timer re-sends and gives up first (AckTimeout); without
        // its resends, only the response timer (1 s) re-sends and ends the request.
        let (err, rids) = unanswered(Mutant::NoResend, 1_000).await;
        assert!(
            matches!(err, RequestError::ResponseTimeout { sends: 5, .. }),
            "{err:?}"
        );
        assert_eq!(rids.len(), 5);
    })
    .await
}

#[tokio::test]
async fn reused_rid_sends_every_request_with_the_first_rid() {
    bounded(async {
        let s = start().await;
        drop(user(&s, Transport::Websocket, "alice").await);
        let c = Client::connect(&s.http_url(), with(Mutant::ReusedRid))
            .await
            .expect("connect");
        c.init(APPKEY, SECRET, 0)
            .await
            .expect("init")
            .ok()
            .expect("ok");
        let _ = c.login("alice", "pw").await;
        let init = request_rids(&s, "c_init");
        let login = request_rids(&s, "login");
        // (Earlier logins in the journal are the normal client's.)
        assert_eq!(login.last(), init.last(), "login reuses c_init's rid");
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn confirmations_are_skipped_or_malformed() {
    bounded(async {
        let s = start().await;
        let a = alice(&s, fast()).await;
        let recv = |c: &Client| -> Vec<Value> {
            c.sent_frames()
                .iter()
                .filter_map(|f| f.strip_prefix("42"))
                .filter_map(|f| serde_json::from_str::<Value>(f).ok())
                .filter(|v| v[0] == "msg_recv_v2")
                .map(|v| v[1].clone())
                .collect()
        };
        for m in [
            Mutant::NoMsgRecv,
            Mutant::MsgRecvFromUidCamel,
            Mutant::MsgRecvWrongIds,
        ] {
            let b = Client::connect(&s.http_url(), with(m))
                .await
                .expect("connect");
            b.init(APPKEY, SECRET, 0)
                .await
                .expect("init")
                .ok()
                .expect("ok");
            b.login("bobby", "pw")
                .await
                .expect("login")
                .ok()
                .expect("ok");
            let sent = a.send_text("alice", "bobby", "hi").await.expect("send");
            let id = sent.get("msg_id").clone();
            // The reader sends the confirmation before it hands the push over.
            let push = b.expect_push("msg_sync", WAIT).await.expect("msg_sync");
            assert_eq!(push["messages"][0]["msg_id"], id);
            let got = recv(&b);
            match m {
                Mutant::NoMsgRecv => assert!(got.is_empty(), "{got:?}"),
                Mutant::MsgRecvFromUidCamel => {
                    assert!(got[0].get("from_uid").is_none() && got[0].get("fromUid").is_some())
                }
                _ => assert_eq!(got[0]["msg_id"], json!(id.as_i64().map(|i| i + 1))),
            }
            drop(b);
        }
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn no_pings_and_late_pings_let_the_server_close_the_session() {
    bounded(async {
        let s = start_with(TransportConfig {
            ping_interval: Duration::from_millis(100),
            ping_timeout: Duration::from_millis(200),
            ..TransportConfig::default()
        })
        .await;
        for m in [Mutant::NoPings, Mutant::LatePings] {
            let c = Client::connect(&s.http_url(), with(m))
                .await
                .expect("connect");
            // The server ends a session whose pings stop (within interval + timeout).
            tokio::time::timeout(WAIT, c.closed())
                .await
                .unwrap_or_else(|_| panic!("{m:?}: the server kept the session"));
        }
        s.shutdown().await;
    })
    .await
}

fn init_args() -> Value {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        .to_string();
    let rs = "abcdefghijklmnopqrstuv";
    json!({"appkey": APPKEY, "random_str": rs, "timestamp": ts,
           "signature": signature(APPKEY, &ts, rs, SECRET), "flag": 0})
}

/// An SDK instance logged in as `name` with mutant `m` (`None`: the normal one).
async fn sdk(s: &RunningServer, name: &str, m: Option<Mutant>) -> SdkInstance {
    let config = ClientConfig {
        mutant: m,
        ..fast()
    };
    let i = SdkInstance::connect(&s.http_url(), &s.upload_url(), config)
        .await
        .expect("connect");
    let login = json!({"username": name, "password": "pw"});
    for (method, arg) in [
        ("init", init_args()),
        ("register", login.clone()),
        ("login", login),
    ] {
        let r = i.call(method, &[arg]).await.expect("call");
        let ok = match (&r, m) {
            (SdkCall::Callbacks(c), Some(Mutant::SwappedCallbacks)) => c.fail.is_some(),
            (SdkCall::Callbacks(c), _) => c.success.is_some(),
            _ => false,
        };
        assert!(ok, "{method}: {r:?}");
    }
    i
}

fn sent(i: &SdkInstance, event: &str) -> usize {
    i.client()
        .sent_frames()
        .iter()
        .filter(|f| f.starts_with(&format!("42[\"{event}\"")))
        .count()
}

#[tokio::test]
async fn swapped_callbacks_report_success_as_fail() {
    bounded(async {
        let s = start().await;
        // `sdk` asserts that each call of the mutant ends in onFail (with code 0).
        let i = sdk(&s, "alice", Some(Mutant::SwappedCallbacks)).await;
        assert_eq!(sent(&i, "login"), 1);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn login_sync_check_and_receipt_reports_can_be_left_out() {
    bounded(async {
        let s = start().await;
        let normal = sdk(&s, "carol", None).await;
        assert_eq!(sent(&normal, "sync_check"), 1);
        let i = sdk(&s, "alice", Some(Mutant::NoLoginSyncCheck)).await;
        assert_eq!(sent(&i, "sync_check"), 0);
        let i = sdk(&s, "bobby", Some(Mutant::NeverReportsReceipt)).await;
        let r = i
            .call(
                "addSingleReceiptReport",
                &[json!({"username": "alice", "msg_ids": [1]})],
            )
            .await
            .expect("call");
        assert!(
            matches!(&r, SdkCall::Callbacks(c) if c.success.is_some()),
            "{r:?}"
        );
        assert_eq!(sent(&i, "receipt_report"), 0);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn no_periodic_sync_check_sends_none_while_the_normal_client_does() {
    bounded(async {
        let s = start().await;
        let quick = |m| ClientConfig {
            ack_timeout: Duration::from_millis(5),
            mutant: m,
            ..fast()
        };
        let (base, upload) = (s.http_url(), s.upload_url());
        let mk = |m| SdkInstance::connect(&base, &upload, quick(m));
        let (normal, mutant) = (
            mk(None).await.expect("c"),
            mk(Some(Mutant::NoPeriodicSyncCheck)).await.expect("c"),
        );
        for (i, name) in [(&mutant, "alice"), (&normal, "bobby")] {
            let login = json!({"username": name, "password": "pw"});
            for (method, arg) in [
                ("init", init_args()),
                ("register", login.clone()),
                ("login", login),
            ] {
                i.call(method, &[arg]).await.expect("call");
            }
        }
        // The mutant logged in first; wait until the normal one has sent a periodic check.
        while sent(&normal, "sync_check") < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            sent(&mutant, "sync_check"),
            1,
            "only the login's sync_check"
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn listener_mutants_drop_duplicate_or_swallow_deliveries() {
    bounded(async {
        let s = start().await;
        let a = sdk(&s, "alice", None).await;
        for (m, to) in [
            (Mutant::DropsFirstMessage, "bobby"),
            (Mutant::DuplicateDeliveries, "carol"),
            (Mutant::DropsEvents, "david"),
        ] {
            let b = sdk(&s, to, Some(m)).await;
            b.listen("onMsgReceive");
            b.listen("onEventNotification");
            // A friend invitation (an event), then two messages, in this order on b's link.
            a.call("addFriend", &[json!({"target_name": to, "why": "hi"})])
                .await
                .expect("addFriend");
            for text in ["one", "two"] {
                let r = a
                    .call(
                        "sendSingleMsg",
                        &[json!({"target_username": to, "content": text})],
                    )
                    .await
                    .expect("send");
                assert!(
                    matches!(r, SdkCall::Callbacks(ref c) if c.success.is_some()),
                    "{r:?}"
                );
            }
            let mut seen = Vec::new();
            while let Some(d) = b.next_delivery(WAIT).await {
                let text = d.arg["messages"][0]["content"]["msg_body"]["text"].clone();
                seen.push((d.listener.clone(), text.as_str().unwrap_or("").to_owned()));
                if text == "two" && (m != Mutant::DuplicateDeliveries || seen.len() == 6) {
                    break;
                }
            }
            let names: Vec<(&str, &str)> =
                seen.iter().map(|(l, t)| (l.as_str(), t.as_str())).collect();
            let expected: Vec<(&str, &str)> = match m {
                Mutant::DropsFirstMessage => {
                    vec![("onEventNotification", ""), ("onMsgReceive", "two")]
                }
                Mutant::DropsEvents => vec![("onMsgReceive", "one"), ("onMsgReceive", "two")],
                _ => vec![
                    ("onEventNotification", ""),
                    ("onEventNotification", ""),
                    ("onMsgReceive", "one"),
                    ("onMsgReceive", "one"),
                    ("onMsgReceive", "two"),
                    ("onMsgReceive", "two"),
                ],
            };
            assert_eq!(names, expected, "{m:?}");
            drop(b);
        }
        s.shutdown().await;
    })
    .await
}

/// `jmessage-mock mutants` on one catalogue directory with two mutants it kills.
#[test]
fn the_mutants_command_reports_killed_mutants_and_exits_0() {
    let dir = std::env::temp_dir().join(format!("jmm-mutants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let report = dir.join("m.md");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jmessage-mock"))
        .args(["mutants", "scenarios/conformance/sync", "--jobs", "1"])
        .args([
            "--mutant",
            "swapped-callbacks",
            "--mutant",
            "no-login-sync-check",
        ])
        .arg("--report")
        .arg(&report)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("KILLED    swapped-callbacks"), "{stdout}");
    assert!(stdout.contains("KILLED    no-login-sync-check"), "{stdout}");
    assert!(stdout.contains("score: 2/2 killed"), "{stdout}");
    let md = std::fs::read_to_string(&report).expect("report");
    assert!(md.contains("**2/2** killed"), "{md}");
    // An unknown mutant is invalid input (2), with a hint.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jmessage-mock"))
        .args([
            "mutants",
            "scenarios/conformance/sync",
            "--mutant",
            "no-msg-rcv",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean no-msg-recv"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Node driver's SDK mutants (`adapters/jmessage-web/test/mutants.test.js`, no SDK
/// needed): skipped without node and the adapter's node_modules, unless JMM_REQUIRE_NODE=1.
#[test]
fn node_driver_mutant_unit_tests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/jmessage-web");
    let missing = if !common::node_installed() {
        Some("node is not installed")
    } else if !dir.join("node_modules").is_dir() {
        Some("adapters/jmessage-web/node_modules is missing (npm ci)")
    } else {
        None
    };
    if let Some(why) = missing {
        assert_ne!(
            std::env::var("JMM_REQUIRE_NODE").as_deref(),
            Ok("1"),
            "{why}"
        );
        eprintln!("SKIPPED: {why}");
        return;
    }
    let mut child = std::process::Command::new("node")
        .args(["--test", "test/mutants.test.js"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node starts");
    // Bounded: the suite takes well under a second; kill it after 60 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("node --test hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("# pass 5"), "{text}");
}
