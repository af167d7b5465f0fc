//! Every fault kind over real sockets with the reference client: what the client sees,
//! and what the server's wire journal records. Plus the admin API over HTTP.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use jmessage_mock::client::{Client, ClientConfig, RequestError, Transport};
use jmessage_mock::faults::{Entry, FaultSpec};
use jmessage_mock::server::RunningServer;
use jmessage_mock::transport::TransportConfig;
use rstest::rstest;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

const SEND: &str = "s_across_single_text";

/// A rule in its JSON form (the admin API's body).
fn rule(v: Value) -> FaultSpec {
    serde_json::from_value(v).expect("valid fault rule")
}

fn add(s: &RunningServer, v: Value) {
    s.faults.add(rule(v)).expect("rule added");
}

/// Journal entries matching `dir`, `kind` and `event` (`None`: any).
fn journal(s: &RunningServer, dir: &str, kind: &str, event: Option<&str>) -> Vec<Entry> {
    s.faults
        .journal(0)
        .into_iter()
        .filter(|e| e.dir == dir && e.kind == kind)
        .filter(|e| event.is_none_or(|ev| e.event.as_deref() == Some(ev)))
        .collect()
}

fn stored(s: &RunningServer) -> usize {
    s.hub.with_backend(|b| b.message_count())
}

fn fault_of(e: &Entry) -> (Option<&str>, Option<&str>) {
    (e.fault.as_deref(), e.action)
}

/// The fast config with a short response timer too.
fn quick() -> ClientConfig {
    ClientConfig {
        response_timeout: Some(Duration::from_millis(300)),
        ..fast()
    }
}

async fn pair(s: &RunningServer) -> (Client, Client) {
    let a = user(s, Transport::Websocket, "alice").await;
    let b = user(s, Transport::Websocket, "bobby").await;
    (a, b)
}

/// Sender's frames of one event.
fn sent(c: &Client, event: &str) -> Vec<String> {
    let prefix = format!("42[\"{event}\"");
    c.sent_frames()
        .into_iter()
        .filter(|f| f.starts_with(&prefix))
        .collect()
}

fn text_of(push: &Value) -> String {
    push["messages"][0]["content"]["msg_body"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------- acks and responses

/// Waits (bounded by the test's `bounded`) until the ack timer the SDK leaves running after
/// an unacked response has run out.
async fn ack_tail_done(c: &Client) -> Vec<u64> {
    loop {
        let late = c.late_ack_timeouts();
        if !late.is_empty() {
            return late;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// The SDK calls onSuccess when the response arrives, acked or not, and forgets the request;
// its ack timer, not stopped by a response, keeps re-sending the identical frame every ack
// timeout up to 5 transmissions whatever the re-sends get (2.6.0's channel code; the
// reference transcript of JMC-2.2-101 shows the response delivered before any re-send).
#[rstest]
#[case::once(1)]
#[case::twice(2)]
#[case::three_times(3)]
#[case::four_times(4)]
#[case::five_times(5)]
#[tokio::test]
async fn dropped_acks_do_not_delay_the_reply_and_the_ack_timer_resends_the_same_rid(
    #[case] n: u32,
) {
    bounded(async {
        let s = start().await;
        let nth: Vec<u32> = (1..=n).collect();
        add(
            &s,
            json!({"id": "drop-ack", "when": {"direction": "out", "kind": "ack", "event": [SEND]},
                   "action": "drop", "nth": nth}),
        );
        let (a, b) = pair(&s).await;
        let r = a
            .send_text("alice", "bobby", "retried")
            .await
            .expect("reply");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        // Answered by the first transmission, before any ack.
        assert_eq!((r.sends, r.acked), (1, false));
        let late = ack_tail_done(&a).await;
        assert_eq!(late.len(), 1);
        let push = b.expect_push("msg_sync", WAIT).await.expect("delivered");
        assert_eq!(push["messages"][0]["msg_id"], *r.get("msg_id"));
        assert!(
            b.expect_push("msg_sync", Duration::from_millis(300))
                .await
                .is_none(),
            "delivered twice"
        );
        assert_eq!(stored(&s), 1);
        // The client re-sent the identical frame up to 5 transmissions, acks or not.
        let frames = sent(&a, SEND);
        assert_eq!(frames.len(), 5);
        assert!(frames.iter().all(|f| f == &frames[0]));
        // The journal: 5 requests with one rid (the one the late timeout names), the first
        // N acks dropped, the others sent.
        let reqs = journal(&s, "in", "request", Some(SEND));
        assert_eq!(reqs.len(), 5);
        let rid = reqs[0].rid.clone().expect("rid");
        assert_eq!(rid.to_string(), late[0].to_string());
        assert!(reqs.iter().all(|e| e.rid.as_ref() == Some(&rid)));
        assert!(reqs.iter().all(|e| e.user.as_deref() == Some("alice")));
        let acks = journal(&s, "out", "ack", Some(SEND));
        assert_eq!(acks.len(), 5);
        for (i, e) in acks.iter().enumerate() {
            let want = if (i as u32) < n {
                (Some("drop-ack"), Some("drop"))
            } else {
                (None, None)
            };
            assert_eq!(fault_of(e), want, "ack {i}");
        }
        // Every send was answered, from the dedupe cache after the first.
        let resp = journal(&s, "out", "response", Some(SEND));
        assert_eq!(resp.len(), 5);
        assert!(resp
            .iter()
            .all(|e| e.frame == resp[0].frame && e.fault.is_none()));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn acks_and_responses_never_sent_end_in_an_ack_timeout_after_five_sends() {
    bounded(async {
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
        drop(pair(&s).await); // registers both users
                              // The SDK's ratio: 5 ack timeouts end before the response timer (30 s vs 5 x 5 s).
        let a = Client::connect(
            &s.http_url(),
            ClientConfig {
                response_timeout: Some(Duration::from_secs(60)),
                ..fast()
            },
        )
        .await
        .expect("connect");
        a.init(APPKEY, SECRET, 0)
            .await
            .expect("init")
            .ok()
            .expect("ok");
        a.login("alice", "pw")
            .await
            .expect("login")
            .ok()
            .expect("ok");
        let err = a
            .send_text("alice", "bobby", "never acked")
            .await
            .expect_err("no ack");
        let RequestError::AckTimeout { sends, rid } = err else {
            panic!("expected an ack timeout, got {err:?}");
        };
        assert_eq!(sends, 5);
        let reqs = journal(&s, "in", "request", Some(SEND));
        assert_eq!(reqs.len(), 5);
        assert!(reqs
            .iter()
            .all(|e| e.rid.as_ref().map(ToString::to_string) == Some(rid.to_string())));
        assert!(a.late_ack_timeouts().is_empty());
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn never_answer_ends_in_a_response_timeout_after_five_sends() {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "mute", "when": {"event": [SEND]}, "action": "never_answer"}),
        );
        let (a, b) = pair(&s).await;
        let a = {
            // Re-login with a short response timer.
            drop(a);
            let c = Client::connect(&s.http_url(), quick())
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
        };
        let err = a
            .send_text("alice", "bobby", "into the void")
            .await
            .expect_err("no response");
        assert!(
            matches!(err, RequestError::ResponseTimeout { sends: 5, .. }),
            "{err:?}"
        );
        let push = b.expect_push("msg_sync", WAIT).await.expect("delivered");
        assert_eq!(text_of(&push), "into the void");
        assert!(b
            .expect_push("msg_sync", Duration::from_millis(300))
            .await
            .is_none());
        assert_eq!(stored(&s), 1);
        // Acked each time, every response swallowed.
        assert_eq!(journal(&s, "in", "request", Some(SEND)).len(), 5);
        let acks = journal(&s, "out", "ack", Some(SEND));
        assert_eq!(acks.len(), 5);
        assert!(acks.iter().all(|e| e.fault.is_none()));
        let resp = journal(&s, "out", "response", Some(SEND));
        assert_eq!(resp.len(), 5);
        assert!(resp
            .iter()
            .all(|e| fault_of(e) == (Some("mute"), Some("never_answer"))));
        // Other requests are still answered.
        assert_eq!(
            a.request("get_conversations", json!({}))
                .await
                .expect("answered")
                .code(),
            0
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn an_injected_error_answers_instead_of_the_backend() {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "busy", "when": {"event": [SEND]}, "action": {"error": 880209}, "times": 1}),
        );
        let (a, b) = pair(&s).await;
        let r = a
            .send_text("alice", "bobby", "refused")
            .await
            .expect("reply");
        assert_eq!(r.code(), 880209, "{:?}", r.body);
        assert_eq!((r.sends, r.acked), (1, true));
        assert!(r.get("msg_id").is_null());
        assert!(b
            .expect_push("msg_sync", Duration::from_millis(300))
            .await
            .is_none());
        assert_eq!(stored(&s), 0);
        let req = journal(&s, "in", "request", Some(SEND));
        assert_eq!(req.len(), 1);
        assert_eq!(fault_of(&req[0]), (Some("busy"), Some("error")));
        let resp = journal(&s, "out", "response", Some(SEND));
        assert_eq!(resp.len(), 1);
        assert!(resp[0].frame.contains("880209"), "{}", resp[0].frame);
        assert_eq!(resp[0].rid, req[0].rid);
        // `times: 1`: the next one goes through.
        let r = a.send_text("alice", "bobby", "ok now").await.expect("reply");
        assert_eq!(r.code(), 0);
        assert_eq!(stored(&s), 1);
        s.shutdown().await;
    })
    .await
}

// ---------------------------------------------------------------- delays

#[rstest]
#[case::fixed(json!({"delay": 300}))]
#[case::fixed_dist(json!({"delay": {"fixed": 250}}))]
#[case::uniform(json!({"delay": {"uniform": [150, 350]}}))]
#[case::lognormal(json!({"delay": {"lognormal": {"median": 200, "sigma": 0.5}}}))]
#[tokio::test]
async fn delayed_responses_arrive_no_earlier_than_the_delay(#[case] action: Value) {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "slow", "when": {"direction": "out", "kind": "response", "event": [SEND]},
                   "action": action, "seed": 3}),
        );
        let (a, _b) = pair(&s).await;
        for i in 0..2 {
            let t0 = Instant::now();
            let r = a
                .send_text("alice", "bobby", &format!("slow {i}"))
                .await
                .expect("reply");
            let took = t0.elapsed();
            assert_eq!((r.code(), r.sends), (0, 1));
            let resp = journal(&s, "out", "response", Some(SEND));
            let e = resp.last().expect("journaled");
            assert_eq!(fault_of(e), (Some("slow"), Some("delay")));
            let delay = Duration::from_millis(e.delay_ms.expect("delay recorded"));
            assert!(took >= delay, "took {took:?}, delay {delay:?}");
        }
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn random_delays_keep_frames_in_order() {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "jitter", "when": {"direction": "out", "kind": "push", "event": ["msg_sync"], "user": "bobby"},
                   "action": {"delay": {"uniform": [20, 300]}}, "seed": 11}),
        );
        let (a, b) = pair(&s).await;
        for i in 0..6 {
            a.send_text("alice", "bobby", &format!("m{i}"))
                .await
                .expect("reply")
                .ok()
                .expect("ok");
        }
        let delays: Vec<u64> = journal(&s, "out", "push", Some("msg_sync"))
            .iter()
            .filter_map(|e| e.delay_ms)
            .collect();
        assert_eq!(delays.len(), 6);
        assert!(
            delays.windows(2).any(|w| w[1] + 30 < w[0]),
            "the seed should give a later frame a shorter delay: {delays:?}"
        );
        for i in 0..6 {
            let p = b.expect_push("msg_sync", WAIT).await.expect("delivered");
            assert_eq!(text_of(&p), format!("m{i}"));
        }
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn delayed_requests_are_processed_in_order() {
    bounded(async {
        let s = start().await;
        let a = user(&s, Transport::Websocket, "alice").await;
        user(&s, Transport::Websocket, "bobby").await;
        add(
            &s,
            json!({"id": "uplink", "when": {"direction": "in", "kind": "request", "event": [SEND]},
                   "action": {"delay": {"uniform": [10, 300]}}, "seed": 5}),
        );
        let t0 = Instant::now();
        let (r1, r2, r3) = tokio::join!(
            a.send_text("alice", "bobby", "first"),
            a.send_text("alice", "bobby", "second"),
            a.send_text("alice", "bobby", "third"),
        );
        let ids: Vec<u64> = [r1, r2, r3]
            .into_iter()
            .map(|r| r.expect("reply").get("msg_id").as_u64().expect("msg_id"))
            .collect();
        let delays: Vec<u64> = journal(&s, "in", "request", Some(SEND))
            .iter()
            .filter_map(|e| e.delay_ms)
            .collect();
        assert_eq!(delays.len(), 3);
        assert!(t0.elapsed() >= Duration::from_millis(*delays.iter().max().unwrap_or(&0)));
        // Sent first, stored first, whatever each frame's own delay.
        let texts: Vec<String> = s
            .hub
            .with_backend(|b| b.messages())
            .iter()
            .map(|m| {
                m["content"]["msg_body"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(texts, ["first", "second", "third"], "delays {delays:?}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn throttled_delivery_time_grows_with_frame_size() {
    bounded(async {
        let s = start().await;
        let (a, b) = pair(&s).await;
        add(
            &s,
            json!({"id": "3g", "when": {"direction": "out", "kind": "push", "event": ["msg_sync"], "user": "bobby"},
                   "action": {"throttle": 4000}}),
        );
        let mut took = Vec::new();
        for len in [10usize, 2000] {
            let text = "x".repeat(len);
            let t0 = Instant::now();
            a.send_text("alice", "bobby", &text)
                .await
                .expect("reply")
                .ok()
                .expect("ok");
            let p = b.expect_push("msg_sync", WAIT).await.expect("delivered");
            took.push(t0.elapsed());
            assert_eq!(text_of(&p).len(), len);
            let e = journal(&s, "out", "push", Some("msg_sync"))
                .pop()
                .expect("journaled");
            assert_eq!(fault_of(&e), (Some("3g"), Some("throttle")));
            // frame bytes / (4000 bytes/s)
            let min = Duration::from_millis(e.frame.len() as u64 * 1000 / 4000);
            assert!(took[took.len() - 1] >= min, "{took:?} < {min:?}");
        }
        assert!(
            took[1] >= took[0] + Duration::from_millis(400),
            "a 2000-byte frame should take ~0.5 s longer: {took:?}"
        );
        s.shutdown().await;
    })
    .await
}

// ---------------------------------------------------------------- duplicate, reorder, corrupt

#[tokio::test]
async fn a_duplicated_push_arrives_twice_and_is_stored_once() {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "dup", "when": {"direction": "out", "kind": "push", "event": ["msg_sync"]},
                   "action": "duplicate", "times": 1}),
        );
        let (a, b) = pair(&s).await;
        let r = a.send_text("alice", "bobby", "twice").await.expect("reply");
        assert_eq!(r.code(), 0);
        let p1 = b.expect_push("msg_sync", WAIT).await.expect("first");
        let p2 = b.expect_push("msg_sync", WAIT).await.expect("second");
        assert_eq!(p1, p2, "identical pushes; dedupe is the client's business");
        assert_eq!(p1["messages"][0]["msg_id"], *r.get("msg_id"));
        assert!(b
            .expect_push("msg_sync", Duration::from_millis(300))
            .await
            .is_none());
        assert_eq!(stored(&s), 1);
        let pushes = journal(&s, "out", "push", Some("msg_sync"));
        assert_eq!(pushes.len(), 1, "one frame, duplicated on the wire");
        assert_eq!(fault_of(&pushes[0]), (Some("dup"), Some("duplicate")));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_reordered_push_arrives_after_the_next_one() {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "swap", "when": {"direction": "out", "kind": "push", "event": ["msg_sync"], "user": "bobby"},
                   "action": "reorder", "nth": [1, 3]}),
        );
        let (a, b) = pair(&s).await;
        for t in ["one", "two"] {
            a.send_text("alice", "bobby", t)
                .await
                .expect("reply")
                .ok()
                .expect("ok");
        }
        let first = b.expect_push("msg_sync", WAIT).await.expect("push");
        let second = b.expect_push("msg_sync", WAIT).await.expect("push");
        assert_eq!((text_of(&first), text_of(&second)), ("two".into(), "one".into()));
        // A held frame with nothing after it still arrives (after a short hold).
        let t0 = Instant::now();
        a.send_text("alice", "bobby", "three")
            .await
            .expect("reply")
            .ok()
            .expect("ok");
        let third = b.expect_push("msg_sync", WAIT).await.expect("released");
        assert_eq!(text_of(&third), "three");
        assert!(t0.elapsed() >= Duration::from_millis(150), "{:?}", t0.elapsed());
        let actions: Vec<_> = journal(&s, "out", "push", Some("msg_sync"))
            .iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, [Some("reorder"), None, Some("reorder")]);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn reordered_requests_are_processed_after_the_next_one() {
    bounded(async {
        let s = start().await;
        let (a, _b) = pair(&s).await;
        add(
            &s,
            json!({"id": "swap-in", "when": {"direction": "in", "kind": "request", "event": [SEND]},
                   "action": "reorder", "nth": [1]}),
        );
        let (r1, r2) = tokio::join!(
            a.send_text("alice", "bobby", "sent first"),
            a.send_text("alice", "bobby", "sent second"),
        );
        let (r1, r2) = (r1.expect("reply"), r2.expect("reply"));
        assert_eq!((r1.code(), r2.code(), r1.sends, r2.sends), (0, 0, 1, 1));
        let texts: Vec<String> = s
            .hub
            .with_backend(|b| b.messages())
            .iter()
            .map(|m| {
                m["content"]["msg_body"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(texts, ["sent second", "sent first"]);
        let reqs = journal(&s, "in", "request", Some(SEND));
        assert_eq!(fault_of(&reqs[0]), (Some("swap-in"), Some("reorder")));
        let acks = journal(&s, "out", "ack", Some(SEND));
        assert_eq!(
            acks[0].rid, reqs[1].rid,
            "the second request is acked first"
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_corrupt_push_is_ignored_by_the_client_and_the_connection_survives() {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "garble", "when": {"direction": "out", "kind": "push", "event": ["msg_sync"]},
                   "action": "corrupt", "nth": [1]}),
        );
        let (a, b) = pair(&s).await;
        for t in ["lost", "kept"] {
            a.send_text("alice", "bobby", t)
                .await
                .expect("reply")
                .ok()
                .expect("ok");
        }
        let p = b.expect_push("msg_sync", WAIT).await.expect("push");
        assert_eq!(text_of(&p), "kept", "the corrupt frame was not understood");
        assert!(!b.is_closed());
        assert_eq!(stored(&s), 2);
        let pushes = journal(&s, "out", "push", Some("msg_sync"));
        assert_eq!(fault_of(&pushes[0]), (Some("garble"), Some("corrupt")));
        // The client confirms only the message it could read.
        let kept_id = p["messages"][0]["msg_id"].to_string();
        let recv = tokio::time::timeout(WAIT, async {
            loop {
                let recv = journal(&s, "in", "request", Some("msg_recv_v2"));
                if !recv.is_empty() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return journal(&s, "in", "request", Some("msg_recv_v2"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("msg_recv_v2");
        assert_eq!(recv.len(), 1, "{recv:?}");
        assert!(
            recv[0].frame.contains(&format!("\"msg_id\":{kept_id}")),
            "{}",
            recv[0].frame
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_corrupt_request_is_dropped_and_the_retry_succeeds() {
    bounded(async {
        let s = start().await;
        let (a, b) = pair(&s).await;
        add(
            &s,
            json!({"id": "garble-in", "when": {"direction": "in", "event": [SEND]},
                   "action": "corrupt", "nth": [1]}),
        );
        let r = a.send_text("alice", "bobby", "again").await.expect("reply");
        assert_eq!((r.code(), r.sends, r.acked), (0, 2, true));
        assert!(b.expect_push("msg_sync", WAIT).await.is_some());
        assert_eq!(stored(&s), 1);
        assert_eq!(journal(&s, "out", "ack", Some(SEND)).len(), 1);
        s.shutdown().await;
    })
    .await
}

// ---------------------------------------------------------------- closing connections

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_ws(s: &RunningServer) -> Ws {
    let url = format!("ws://{}/socket.io/?EIO=3&transport=websocket", s.addr);
    let mut ws = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects")
        .0;
    let open = next_text(&mut ws).await.expect("open");
    assert!(open.starts_with('0'));
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("40"));
    ws
}

async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// How a connection ended, seen from the client.
#[derive(Debug, PartialEq)]
enum End {
    /// A websocket close frame.
    Clean,
    /// The TCP connection went away without one.
    Reset,
}

/// Every text frame until the connection ends, and how it ended.
async fn until_end(ws: &mut Ws) -> (Vec<String>, End) {
    let mut texts = Vec::new();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the connection should end");
        match msg {
            Some(Ok(Message::Text(t))) => texts.push(t.to_string()),
            Some(Ok(Message::Close(_))) => return (texts, End::Clean),
            Some(Ok(_)) => {}
            Some(Err(tungstenite::Error::ConnectionClosed)) => return (texts, End::Clean),
            Some(Err(_)) | None => return (texts, End::Reset),
        }
    }
}

#[rstest]
#[case::before_clean(false, false)]
#[case::before_abrupt(false, true)]
#[case::after_clean(true, false)]
#[case::after_abrupt(true, true)]
#[tokio::test]
async fn close_on_a_response(#[case] after: bool, #[case] abrupt: bool) {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "cut", "when": {"direction": "out", "kind": "response", "event": ["sync_check"]},
                   "action": {"close": {"after": after, "abrupt": abrupt}}}),
        );
        let mut ws = raw_ws(&s).await;
        ws.send(Message::Text(r#"42["sync_check",{"rid":3}]"#.into()))
            .await
            .expect("send");
        let (texts, end) = until_end(&mut ws).await;
        assert_eq!(texts[0], r#"42["ack",{"rid":3}]"#);
        if after {
            assert_eq!(texts.len(), 2, "{texts:?}");
            assert!(texts[1].starts_with(r#"42["sync_check",{"code":882004"#));
        } else {
            assert_eq!(texts.len(), 1, "the response is lost: {texts:?}");
        }
        assert_eq!(end, if abrupt { End::Reset } else { End::Clean });
        let resp = journal(&s, "out", "response", Some("sync_check"));
        assert_eq!(fault_of(&resp[0]), (Some("cut"), Some("close")));
        tokio::time::timeout(WAIT, async {
            while s.engine.session_count() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("session ended");
        s.shutdown().await;
    })
    .await
}

#[rstest]
#[case::before(false)]
#[case::after(true)]
#[tokio::test]
async fn close_on_a_request_decides_whether_it_is_processed(#[case] after: bool) {
    bounded(async {
        let s = start().await;
        let (a, b) = pair(&s).await;
        add(
            &s,
            json!({"id": "cut-in", "when": {"direction": "in", "event": [SEND], "user": "alice"},
                   "action": {"close": {"after": after}}}),
        );
        let r = a.send_text("alice", "bobby", "maybe").await;
        if after {
            // Processed and answered, then closed.
            assert_eq!(r.expect("reply").code(), 0);
            assert!(b.expect_push("msg_sync", WAIT).await.is_some());
            assert_eq!(stored(&s), 1);
        } else {
            assert_eq!(r, Err(RequestError::Closed));
            assert_eq!(stored(&s), 0);
        }
        tokio::time::timeout(WAIT, a.closed())
            .await
            .expect("closed");
        assert!(!b.is_closed());
        let req = journal(&s, "in", "request", Some(SEND));
        assert_eq!(fault_of(&req[0]), (Some("cut-in"), Some("close")));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn kick_sends_41_then_closes() {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "boot", "when": {"direction": "in", "kind": "request", "event": ["sync_check"]},
                   "action": "kick"}),
        );
        let mut ws = raw_ws(&s).await;
        ws.send(Message::Text(r#"42["sync_check",{"rid":3}]"#.into()))
            .await
            .expect("send");
        let (texts, end) = until_end(&mut ws).await;
        assert_eq!((texts, end), (vec!["41".to_owned()], End::Clean));
        // The reference client reports the kick as a closed connection.
        let c = client(&s, Transport::Websocket).await;
        let r = c.request("sync_check", json!({})).await;
        assert_eq!(r, Err(RequestError::Closed));
        assert!(c.is_closed());
        let kicked: Vec<_> = journal(&s, "in", "request", Some("sync_check"))
            .into_iter()
            .filter(|e| e.action == Some("kick"))
            .collect();
        assert_eq!(kicked.len(), 2);
        assert_eq!(journal(&s, "out", "ack", Some("sync_check")).len(), 0);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn stopped_pongs_make_the_client_give_up_the_connection() {
    bounded(async {
        let s = start_with(TransportConfig {
            ping_interval: Duration::from_millis(150),
            ping_timeout: Duration::from_millis(250),
            ..TransportConfig::default()
        })
        .await;
        let a = user(&s, Transport::Websocket, "alice").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!a.is_closed(), "heartbeat works without the fault");
        let pongs = journal(&s, "out", "pong", None);
        assert!(!pongs.is_empty() && pongs.iter().all(|e| e.fault.is_none()));
        add(&s, json!({"id": "mute-pongs", "action": "stop_pings"}));
        let t0 = Instant::now();
        tokio::time::timeout(Duration::from_secs(3), a.closed())
            .await
            .expect("the client closes after a missing pong");
        assert!(t0.elapsed() >= Duration::from_millis(250));
        let stopped: Vec<_> = journal(&s, "out", "pong", None)
            .into_iter()
            .filter(|e| e.fault.is_some())
            .collect();
        assert!(!stopped.is_empty());
        assert!(stopped
            .iter()
            .all(|e| fault_of(e) == (Some("mute-pongs"), Some("stop_pings"))));
        // The server notices the closed connection too.
        tokio::time::timeout(WAIT, async {
            while s.engine.session_count() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("session gone");
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_retry_on_a_new_connection_after_a_disconnect_hits_the_dedupe_cache() {
    bounded(async {
        let s = start().await;
        let (a, b) = pair(&s).await;
        add(
            &s,
            json!({"id": "drop-line", "when": {"direction": "out", "kind": "response", "event": [SEND]},
                   "action": {"close": {"abrupt": true}}, "times": 1}),
        );
        let r = a.send_text("alice", "bobby", "in flight").await;
        assert_eq!(r, Err(RequestError::Closed), "disconnected mid-request");
        let push = b.expect_push("msg_sync", WAIT).await.expect("delivered");
        let frame = sent(&a, SEND).pop().expect("sent");
        // The SDK re-inits, logs in, and its retry timer re-sends the same frame.
        let a2 = Client::connect(&s.http_url(), fast()).await.expect("reconnect");
        a2.init(APPKEY, SECRET, 0).await.expect("init").ok().expect("ok");
        a2.login("alice", "pw").await.expect("login").ok().expect("ok");
        a2.send_raw(&frame);
        let answer = tokio::time::timeout(WAIT, async {
            loop {
                let p = a2.next_push(WAIT).await.expect("answer");
                if p.event == SEND {
                    return p.payload;
                }
            }
        })
        .await
        .expect("answered");
        assert_eq!(answer["code"], json!(0));
        assert_eq!(answer["msg_id"], push["messages"][0]["msg_id"]);
        assert!(b
            .expect_push("msg_sync", Duration::from_millis(300))
            .await
            .is_none());
        assert_eq!(stored(&s), 1);
        let reqs = journal(&s, "in", "request", Some(SEND));
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].rid, reqs[1].rid);
        assert_ne!(reqs[0].conn, reqs[1].conn);
        let resp = journal(&s, "out", "response", Some(SEND));
        assert_eq!(fault_of(&resp[0]), (Some("drop-line"), Some("close")));
        assert_eq!(fault_of(&resp[1]), (None, None));
        s.shutdown().await;
    })
    .await
}

// ---------------------------------------------------------------- handshake refusals

/// A raw HTTP/1.1 request; returns (status, body).
async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("http timed out")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Chunked bodies (axum's JSON) carry hex sizes; strip them.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
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

fn refusals(s: &RunningServer) -> Vec<Entry> {
    s.faults
        .journal(0)
        .into_iter()
        .filter(|e| e.kind == "open" && e.fault.is_some())
        .collect()
}

async fn connect(s: &RunningServer, t: Transport) -> Result<Client, String> {
    Client::connect(
        &s.http_url(),
        ClientConfig {
            transport: t,
            ..fast()
        },
    )
    .await
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn refuse_websocket_leaves_polling_working() {
    bounded(async {
        let s = start().await;
        add(&s, json!({"id": "no-ws", "action": "refuse_websocket"}));
        let err = connect(&s, Transport::Websocket)
            .await
            .err()
            .expect("refused");
        assert!(err.contains("503"), "{err}");
        let c = user(&s, Transport::Polling, "alice").await;
        assert_eq!(
            c.request("get_conversations", json!({}))
                .await
                .expect("reply")
                .code(),
            0
        );
        let r = refusals(&s);
        assert_eq!(r.len(), 1);
        assert_eq!(fault_of(&r[0]), (Some("no-ws"), Some("refuse_websocket")));
        assert_eq!(r[0].conn, 0);
        s.faults.set_enabled("no-ws", false).expect("switch");
        assert!(connect(&s, Transport::Websocket).await.is_ok());
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn refuse_polling_leaves_websocket_working() {
    bounded(async {
        let s = start().await;
        add(&s, json!({"id": "no-poll", "action": "refuse_polling"}));
        let err = connect(&s, Transport::Polling)
            .await
            .err()
            .expect("refused");
        assert!(err.contains("503"), "{err}");
        user(&s, Transport::Websocket, "alice").await;
        let r = refusals(&s);
        assert_eq!(r.len(), 1);
        assert_eq!(fault_of(&r[0]), (Some("no-poll"), Some("refuse_polling")));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn refuse_upgrade_keeps_a_polling_session_on_polling() {
    bounded(async {
        let s = start().await;
        add(&s, json!({"id": "no-upgrade", "action": "refuse_upgrade"}));
        let addr = s.addr.to_string();
        let (st, body) = http(&addr, "GET", "/socket.io/?EIO=3&transport=polling", "").await;
        assert_eq!(st, 200);
        let p = jmessage_mock::transport::engineio::decode_payload(&body).expect("payload");
        let open: Value = serde_json::from_str(&p[0][1..]).expect("open");
        assert_eq!(open["upgrades"], json!(["websocket"]));
        let sid = open["sid"].as_str().expect("sid").to_owned();
        let url = format!("ws://{addr}/socket.io/?EIO=3&transport=websocket&sid={sid}");
        match tokio_tungstenite::connect_async(url).await {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
            other => panic!("expected a 503, got {other:?}"),
        }
        // The polling session still works.
        let path = format!("/socket.io/?EIO=3&transport=polling&sid={sid}");
        let post =
            jmessage_mock::transport::engineio::encode_payload(&[r#"42["sync_check",{"rid":4}]"#]);
        let (st, _) = http(&addr, "POST", &path, &post).await;
        assert_eq!(st, 200);
        let (st, body) = http(&addr, "GET", &path, "").await;
        assert_eq!(st, 200);
        assert!(body.contains(r#"42["ack",{"rid":4}]"#), "{body}");
        // A fresh websocket (no sid) is not an upgrade: accepted.
        assert!(connect(&s, Transport::Websocket).await.is_ok());
        let r = refusals(&s);
        assert_eq!(r.len(), 1);
        assert_eq!(
            fault_of(&r[0]),
            (Some("no-upgrade"), Some("refuse_upgrade"))
        );
        s.shutdown().await;
    })
    .await
}

// ---------------------------------------------------------------- restart

#[tokio::test]
async fn restart_drops_every_session_refuses_for_a_while_and_keeps_state() {
    bounded(async {
        let s = start().await;
        let (a, b) = pair(&s).await;
        a.send_text("alice", "bobby", "before")
            .await
            .expect("reply")
            .ok()
            .expect("ok");
        b.expect_push("msg_sync", WAIT).await.expect("delivered");
        add(
            &s,
            json!({"id": "bounce", "when": {"direction": "in", "kind": "request", "event": ["get_conversations"]},
                   "action": {"restart": {"down_ms": 700}}, "times": 1}),
        );
        let t0 = Instant::now();
        let r = a.request("get_conversations", json!({})).await;
        assert_eq!(r, Err(RequestError::Closed));
        tokio::time::timeout(WAIT, b.closed()).await.expect("b dropped too");
        assert_eq!(s.engine.session_count(), 0);
        let err = connect(&s, Transport::Websocket).await.err().expect("refused while down");
        assert!(err.contains("503"), "{err}");
        assert!(connect(&s, Transport::Polling).await.is_err());
        assert!(t0.elapsed() < Duration::from_millis(700), "test too slow to see the window");
        tokio::time::sleep(Duration::from_millis(700).saturating_sub(t0.elapsed()) + Duration::from_millis(50)).await;
        // Back up: same users, same messages.
        let a2 = client(&s, Transport::Websocket).await;
        a2.init(APPKEY, SECRET, 0).await.expect("init").ok().expect("ok");
        a2.login("alice", "pw").await.expect("login").ok().expect("registered user kept");
        assert_eq!(stored(&s), 1);
        let r = a2.request("get_conversations", json!({})).await.expect("reply");
        assert_eq!(r.code(), 0);
        let req = journal(&s, "in", "request", Some("get_conversations"));
        assert_eq!(fault_of(&req[0]), (Some("bounce"), Some("restart")));
        let r = refusals(&s);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|e| fault_of(e) == (Some("bounce"), Some("restart"))));
        s.shutdown().await;
    })
    .await
}

// ---------------------------------------------------------------- probability, switching

/// Which of 16 pushes a seeded 50 % drop rule drops.
async fn dropped_pattern(seed: u64) -> Vec<bool> {
    let s = start().await;
    let (a, b) = pair(&s).await;
    add(
        &s,
        json!({"id": "coin", "when": {"direction": "out", "kind": "push", "event": ["msg_sync"], "user": "bobby"},
               "action": "drop", "probability": 0.5, "seed": seed}),
    );
    for i in 0..16 {
        a.send_text("alice", "bobby", &format!("n{i}"))
            .await
            .expect("reply")
            .ok()
            .expect("ok");
    }
    let pattern: Vec<bool> = journal(&s, "out", "push", Some("msg_sync"))
        .iter()
        .map(|e| e.action == Some("drop"))
        .collect();
    assert_eq!(pattern.len(), 16);
    let mut got = Vec::new();
    while let Some(p) = b.expect_push("msg_sync", Duration::from_millis(300)).await {
        got.push(text_of(&p));
    }
    let expected: Vec<String> = pattern
        .iter()
        .enumerate()
        .filter(|(_, d)| !**d)
        .map(|(i, _)| format!("n{i}"))
        .collect();
    assert_eq!(got, expected);
    let rules = s.faults.rules();
    assert_eq!(rules[0].matched, 16);
    assert_eq!(
        rules[0].fired as usize,
        pattern.iter().filter(|d| **d).count()
    );
    s.shutdown().await;
    pattern
}

#[tokio::test]
async fn seeded_probability_repeats_across_runs() {
    bounded(async {
        let first = dropped_pattern(42).await;
        let second = dropped_pattern(42).await;
        assert_eq!(first, second);
        let n = first.iter().filter(|d| **d).count();
        assert!((2..=14).contains(&n), "{n} of 16 dropped at p=0.5");
        let other = dropped_pattern(43).await;
        assert_ne!(first, other, "another seed, another pattern");
    })
    .await
}

#[tokio::test]
async fn rules_switch_on_and_off_at_runtime() {
    bounded(async {
        let s = start().await;
        add(
            &s,
            json!({"id": "gate", "when": {"direction": "out", "kind": "push", "event": ["msg_sync"]},
                   "action": "drop", "enabled": false}),
        );
        let (a, b) = pair(&s).await;
        let quiet = Duration::from_millis(300);
        a.send_text("alice", "bobby", "off").await.expect("reply");
        assert!(b.expect_push("msg_sync", WAIT).await.is_some());
        s.faults.set_enabled("gate", true).expect("on");
        a.send_text("alice", "bobby", "on").await.expect("reply");
        assert!(b.expect_push("msg_sync", quiet).await.is_none());
        s.faults.set_enabled("gate", false).expect("off");
        a.send_text("alice", "bobby", "off again").await.expect("reply");
        let p = b.expect_push("msg_sync", WAIT).await.expect("delivered");
        assert_eq!(text_of(&p), "off again");
        let actions: Vec<_> = journal(&s, "out", "push", Some("msg_sync"))
            .iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, [None, Some("drop"), None]);
        assert!(s.faults.set_enabled("nope", true).is_err());
        s.shutdown().await;
    })
    .await
}

// ---------------------------------------------------------------- admin API over HTTP

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[tokio::test]
async fn admin_api_adds_switches_and_removes_rules_and_reads_the_journal() {
    bounded(async {
        let s = start().await;
        let addr = s.addr.to_string();
        let (st, body) = http(&addr, "GET", "/__admin/health", "").await;
        assert_eq!((st, parse(&body)), (200, json!({"ok": true, "sessions": 0, "devices": 0})));
        let drop_rule = json!({"id": "no-sync", "when": {"direction": "out", "kind": "push", "event": ["msg_sync"], "user": "bobby"}, "action": "drop"}).to_string();
        let (st, body) = http(&addr, "POST", "/__admin/faults", &drop_rule).await;
        assert_eq!(st, 201, "{body}");
        let list = parse(&body);
        assert_eq!(list[0]["id"], json!("no-sync"));
        assert_eq!((list[0]["matched"].clone(), list[0]["enabled"].clone()), (json!(0), json!(true)));
        let (st, _) = http(&addr, "POST", "/__admin/faults", &drop_rule).await;
        assert_eq!(st, 409);
        let (st, body) = http(&addr, "POST", "/__admin/faults", r#"{"id":"x","action":"explode"}"#).await;
        assert_eq!(st, 400);
        assert!(parse(&body)["error"].as_str().is_some());
        let (st, _) = http(&addr, "POST", "/__admin/faults", r#"{"id":"x","action":"drop","probability":2}"#).await;
        assert_eq!(st, 400);
        // Every action's JSON form is accepted.
        for (i, action) in [
            json!({"delay": 100}),
            json!({"delay": {"uniform": [10, 20]}}),
            json!({"delay": {"lognormal": {"median": 50, "sigma": 0.3}}}),
            json!({"error": 880209}),
            json!({"close": {"abrupt": true, "after": false}}),
            json!("refuse_websocket"),
            json!({"throttle": 1000}),
        ]
        .into_iter()
        .enumerate()
        {
            let r = json!({"id": format!("r{i}"), "action": action, "enabled": false}).to_string();
            let (st, body) = http(&addr, "POST", "/__admin/faults", &r).await;
            assert_eq!(st, 201, "{r}: {body}");
        }
        let (a, b) = pair(&s).await;
        a.send_text("alice", "bobby", "dropped").await.expect("reply");
        assert!(b.expect_push("msg_sync", Duration::from_millis(300)).await.is_none());
        let (_, body) = http(&addr, "GET", "/__admin/faults", "").await;
        let list = parse(&body);
        assert_eq!(list.as_array().map(Vec::len), Some(8));
        assert_eq!((list[0]["matched"].clone(), list[0]["fired"].clone()), (json!(1), json!(1)));
        let (st, _) = http(&addr, "POST", "/__admin/faults/no-sync/disable", "").await;
        assert_eq!(st, 204);
        a.send_text("alice", "bobby", "through").await.expect("reply");
        assert!(b.expect_push("msg_sync", WAIT).await.is_some());
        let (st, _) = http(&addr, "POST", "/__admin/faults/no-sync/enable", "").await;
        assert_eq!(st, 204);
        let (st, _) = http(&addr, "POST", "/__admin/faults/ghost/enable", "").await;
        assert_eq!(st, 404);
        let (st, _) = http(&addr, "DELETE", "/__admin/faults/no-sync", "").await;
        assert_eq!(st, 204);
        let (st, _) = http(&addr, "DELETE", "/__admin/faults/no-sync", "").await;
        assert_eq!(st, 404);
        a.send_text("alice", "bobby", "rule gone").await.expect("reply");
        assert!(b.expect_push("msg_sync", WAIT).await.is_some());
        // The journal, filtered.
        let (st, body) = http(&addr, "GET", "/__admin/journal?event=msg_sync", "").await;
        assert_eq!(st, 200);
        let j = parse(&body);
        let j = j.as_array().expect("array");
        assert_eq!(j.len(), 3, "{j:?}");
        assert_eq!(j[0]["fault"], json!("no-sync"));
        assert_eq!(j[0]["action"], json!("drop"));
        assert_eq!((j[0]["dir"].clone(), j[0]["kind"].clone(), j[0]["user"].clone()), (json!("out"), json!("push"), json!("bobby")));
        assert!(j[1].get("fault").is_none());
        for k in ["seq", "t_ms", "conn", "frame"] {
            assert!(j[0].get(k).is_some(), "{k} missing: {}", j[0]);
        }
        let (_, body) = http(&addr, "GET", &format!("/__admin/journal?dir=in&kind=request&event={SEND}"), "").await;
        let reqs = parse(&body);
        assert_eq!(reqs.as_array().map(Vec::len), Some(3));
        assert!(reqs[0]["rid"].is_string());
        assert_eq!(reqs[0]["user"], json!("alice"));
        let last_seq = j[2]["seq"].as_u64().expect("seq");
        let (_, body) = http(&addr, "GET", &format!("/__admin/journal?event=msg_sync&since={last_seq}"), "").await;
        assert_eq!(parse(&body), json!([]));
        let (st, _) = http(&addr, "GET", "/__admin/journal?since=soon", "").await;
        assert_eq!(st, 400);
        let (st, _) = http(&addr, "DELETE", "/__admin/journal", "").await;
        assert_eq!(st, 204);
        assert!(s.faults.journal(0).is_empty());
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn admin_api_state_clock_and_reset() {
    bounded(async {
        let s = start().await;
        let addr = s.addr.to_string();
        let (a, b) = pair(&s).await;
        a.send_text("alice", "bobby", "hello")
            .await
            .expect("reply")
            .ok()
            .expect("ok");
        b.expect_push("msg_sync", WAIT).await.expect("delivered");
        let (st, body) = http(&addr, "GET", "/__admin/state", "").await;
        assert_eq!(st, 200);
        let state = parse(&body);
        assert_eq!(state["messages"], json!(1));
        let names: Vec<&str> = state["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["username"].as_str())
            .collect();
        for n in ["seeded", "alice", "bobby"] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert_eq!(state["sessions"].as_array().map(Vec::len), Some(2));
        let (_, body) = http(&addr, "GET", "/__admin/messages", "").await;
        let msgs = parse(&body);
        assert_eq!(msgs[0]["content"]["msg_body"]["text"], json!("hello"));
        // Virtual time: a signature made now is 10 minutes old for the server.
        let (st, body) = http(&addr, "POST", "/__admin/clock", r#"{"advance_ms": 600001}"#).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(parse(&body)["offset_ms"], json!(600001));
        let (_, body) = http(&addr, "GET", "/__admin/clock", "").await;
        let clock = parse(&body);
        assert_eq!(clock["offset_ms"], json!(600001));
        assert!(clock["now_ms"].as_i64().is_some());
        let c = client(&s, Transport::Websocket).await;
        let r = c.init(APPKEY, SECRET, 0).await.expect("reply");
        assert_eq!(r.code(), 880106, "{:?}", r.body);
        let (st, _) = http(&addr, "POST", "/__admin/clock", r#"{"advance_ms": -5}"#).await;
        assert_eq!(st, 400);
        let (st, _) = http(&addr, "POST", "/__admin/clock", r#"{"advance": 5}"#).await;
        assert_eq!(st, 400);
        // Reset: initial state, initial rules, empty journal, clock back to real time.
        add(
            &s,
            json!({"id": "temp", "action": "drop", "enabled": false}),
        );
        let (st, _) = http(&addr, "POST", "/__admin/reset", "").await;
        assert_eq!(st, 204);
        tokio::time::timeout(WAIT, a.closed())
            .await
            .expect("sessions dropped");
        let (_, body) = http(&addr, "GET", "/__admin/state", "").await;
        let state = parse(&body);
        assert_eq!(state["messages"], json!(0));
        let names: Vec<&str> = state["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["username"].as_str())
            .collect();
        assert_eq!(names, ["seeded"]);
        assert!(s.faults.rules().is_empty());
        let (_, body) = http(&addr, "GET", "/__admin/clock", "").await;
        assert_eq!(parse(&body)["offset_ms"], json!(0));
        let c = client(&s, Transport::Websocket).await;
        assert_eq!(c.init(APPKEY, SECRET, 0).await.expect("reply").code(), 0);
        s.shutdown().await;
    })
    .await
}

const SCENARIO: &str = "\
name: flaky sends
fixtures:
  users:
    - {username: alice, password: pw}
    - {username: bobby, password: pw}
faults:
  - id: busy
    when: {direction: in, event: [s_across_single_text], user: alice}
    action: {error: 880209}
    nth: [1]
  - id: slow-sync
    when: {direction: out, kind: push, event: [msg_sync]}
    action: {delay: {uniform: [50, 100]}}
    seed: 9
";

#[tokio::test]
async fn admin_api_loads_a_scenario() {
    bounded(async {
        let s = start().await;
        let addr = s.addr.to_string();
        let old = user(&s, Transport::Websocket, "olduser").await;
        let (st, body) = http(&addr, "POST", "/__admin/scenario", SCENARIO).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(parse(&body)["loaded"], "flaky sends");
        // olduser is not in the new state: its session is closed, and the answer says so.
        assert_eq!(
            parse(&body)["sessions"]["closed"][0]["user"],
            "olduser",
            "{body}"
        );
        tokio::time::timeout(WAIT, old.closed())
            .await
            .expect("old sessions dropped");
        let (_, body) = http(&addr, "GET", "/__admin/faults", "").await;
        let ids: Vec<Value> = parse(&body)
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(ids, [json!("busy"), json!("slow-sync")]);
        let (_, body) = http(&addr, "GET", "/__admin/state", "").await;
        let state = parse(&body);
        let appkey = state["apps"][0]["appkey"]
            .as_str()
            .expect("appkey")
            .to_owned();
        assert_eq!(appkey, jmessage_mock::config::DEFAULT_APPKEY);
        // The scenario's users and faults are live.
        let login = |name: &'static str| {
            let url = s.http_url();
            async move {
                let c = Client::connect(&url, fast()).await.expect("connect");
                c.init(&appkey_of(), jmessage_mock::config::DEFAULT_SECRET, 0)
                    .await
                    .expect("init")
                    .ok()
                    .expect("ok");
                c.login(name, "pw")
                    .await
                    .expect("login")
                    .ok()
                    .expect("fixture user");
                c
            }
        };
        let a = login("alice").await;
        let b = login("bobby").await;
        let r = a.send_text("alice", "bobby", "x").await.expect("reply");
        assert_eq!(r.code(), 880209);
        let t0 = Instant::now();
        a.send_text("alice", "bobby", "y")
            .await
            .expect("reply")
            .ok()
            .expect("ok");
        let p = b.expect_push("msg_sync", WAIT).await.expect("delivered");
        assert_eq!(text_of(&p), "y");
        assert!(t0.elapsed() >= Duration::from_millis(50));
        // A bad scenario is refused with located errors and changes nothing.
        let (st, body) = http(
            &addr,
            "POST",
            "/__admin/scenario",
            "name: bad\nfaults:\n  - id: a\n    action: explode\n",
        )
        .await;
        assert_eq!(st, 400);
        let err = parse(&body);
        assert_eq!(err["error"], json!("invalid scenario"));
        let first = err["errors"][0].as_str().expect("diagnostic");
        assert!(first.starts_with("<request body>:4:"), "{first}");
        assert_eq!(s.faults.rules().len(), 2);
        assert!(!a.is_closed());
        s.shutdown().await;
    })
    .await
}

fn appkey_of() -> String {
    jmessage_mock::config::DEFAULT_APPKEY.to_owned()
}
