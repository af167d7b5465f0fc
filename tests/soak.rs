//! Exactly-once soak: 20 users of the reference client send each other texts over real
//! websockets while seeded fault rules drop acks, responses and pushes, and the users
//! drop their connections (abruptly or after a barrier) and log in again. Afterwards
//! every user logs in once more with no faults and collects what is left.
//!
//! What must hold:
//! - every accepted send (response code 0) reaches its recipient (live `msg_sync` or
//!   `sync_conversation` after a login), under the `msg_id` the sender was given;
//! - no send is stored twice: a request re-sent with the same rid (ack or response
//!   dropped) yields one `msg_id` whatever the number of transmissions;
//! - nothing is delivered that no one sent, or whose send was refused;
//! - a message whose confirmation the server has provably processed (confirmed before a
//!   barrier request that was answered) is never delivered again; redeliveries of
//!   unconfirmed messages (a confirmation lost with an abrupt disconnect) are the
//!   protocol's at-least-once and are dropped by the application by `msg_id`;
//! - every request ends with a response or a client-side timeout or close, never hangs.
//!
//! The counts are printed (`cargo test --test soak -- --nocapture`).

mod common;

use common::*;
use jmessage_mock::client::{Client, ClientConfig, Push, RequestError, Transport};
use jmessage_mock::faults::FaultSpec;
use jmessage_mock::server::RunningServer;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USERS: usize = 20;
const SENDS_PER_USER: usize = 25;
/// Chance (per mille) that a user drops its connection after a send.
const DISCONNECT_PER_MILLE: u64 = 100;
/// Chance (per mille) that the connection is cut while a send is in flight.
const CUT_PER_MILLE: u64 = 50;
/// Longest any single request may take before the test calls it a hang: far beyond
/// 5 transmissions of the response timer below.
const REQUEST_BOUND: Duration = Duration::from_secs(15);

/// splitmix64: a seeded, dependency-free generator (each user has its own stream).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn name(i: usize) -> String {
    format!("soak{i:02}")
}

fn config() -> ClientConfig {
    ClientConfig {
        ack_timeout: Duration::from_millis(200),
        response_timeout: Some(Duration::from_millis(500)),
        retry_times: 5,
        ..fast()
    }
}

/// Outbound frames lost at random (seeded): acks and responses of sends, and the pushes
/// that carry messages.
fn faults() -> Vec<FaultSpec> {
    let rule = |v: Value| serde_json::from_value::<FaultSpec>(v).expect("valid rule");
    vec![
        rule(
            json!({"id": "drop-acks", "action": "drop", "probability": 0.2, "seed": 11,
            "when": {"direction": "out", "kind": "ack", "event": ["s_across_single_text"]}}),
        ),
        rule(
            json!({"id": "drop-responses", "action": "never_answer", "probability": 0.2,
            "seed": 12, "when": {"direction": "out", "event": ["s_across_single_text"]}}),
        ),
        rule(
            json!({"id": "drop-pushes", "action": "drop", "probability": 0.05, "seed": 13,
            "when": {"direction": "out", "kind": "push",
                     "event": ["msg_sync", "sync_conversation"]}}),
        ),
    ]
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    Accepted(u64),
    Refused(i64),
    /// Ack or response timer ran out, or the connection closed: stored or not.
    Unknown,
}

/// One copy of a message a user's client surfaced.
#[derive(Debug, Clone)]
struct Delivery {
    msg_id: u64,
    text: String,
    session: u32,
    by_sync: bool,
}

#[derive(Default)]
struct Counts {
    sent: u64,
    accepted: u64,
    refused: u64,
    unknown: u64,
    retransmissions: u64,
    requests: u64,
    disconnects_abrupt: u64,
    disconnects_after_barrier: u64,
    cut_mid_request: u64,
    barriers_failed: u64,
}

/// What one user observed.
#[derive(Default)]
struct UserLog {
    deliveries: Vec<Delivery>,
    /// msg_ids proven confirmed, with the session in which they were.
    confirmed: HashMap<u64, u32>,
}

struct World {
    server: RunningServer,
    /// text -> (sender, recipient, outcome)
    sends: Mutex<BTreeMap<String, (usize, usize, Sent)>>,
    logs: Vec<Mutex<UserLog>>,
    counts: Mutex<Counts>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one request with the hang bound; counts it.
async fn call<
    F: std::future::Future<Output = Result<jmessage_mock::client::Reply, RequestError>>,
>(
    w: &World,
    f: F,
) -> Result<jmessage_mock::client::Reply, RequestError> {
    let r = tokio::time::timeout(REQUEST_BOUND, f)
        .await
        .expect("a request neither answered nor timed out by the client: hang");
    let mut c = lock(&w.counts);
    c.requests += 1;
    if let Ok(reply) = &r {
        c.retransmissions += u64::from(reply.sends.saturating_sub(1));
    }
    r
}

/// Connects and logs in (login runs `sync_check`, as the SDK does); retries a login the
/// faults or a refused connection broke.
async fn session(w: &World, i: usize) -> Client {
    for _ in 0..10 {
        let Ok(c) = Client::connect(&w.server.http_url(), config()).await else {
            continue;
        };
        let init = call(w, c.init(APPKEY, SECRET, 0)).await;
        if !matches!(init, Ok(ref r) if r.code() == 0) {
            continue;
        }
        let login = call(w, c.login(&name(i), "pw")).await;
        if matches!(login, Ok(ref r) if r.code() == 0) {
            return c;
        }
    }
    panic!("{} could not log in ten times in a row", name(i));
}

fn texts_of(p: &Push) -> Vec<(u64, String)> {
    let wire = |m: &Value| {
        let id = m["msg_id"].as_u64()?;
        let t = m["content"]["msg_body"]["text"].as_str()?.to_owned();
        Some((id, t))
    };
    let msgs = p.payload["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match p.event.as_str() {
        "msg_sync" => msgs.iter().filter_map(wire).collect(),
        "sync_conversation" => msgs
            .iter()
            .flat_map(|c| c["msgs"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| wire(&m))
            .collect(),
        _ => Vec::new(),
    }
}

/// Records what the client surfaced so far; returns the msg_ids.
async fn collect(w: &World, i: usize, c: &Client, session: u32) -> Vec<u64> {
    let mut ids = Vec::new();
    for p in c.drain_pushes().await {
        let by_sync = p.event == "sync_conversation";
        for (msg_id, text) in texts_of(&p) {
            ids.push(msg_id);
            lock(&w.logs[i]).deliveries.push(Delivery {
                msg_id,
                text,
                session,
                by_sync,
            });
        }
    }
    ids
}

/// Drains pushes, then makes a round trip: the server handles a connection's frames in
/// order, so every confirmation the client fired for those pushes has been processed
/// once the barrier is answered.
async fn barrier(w: &World, i: usize, c: &Client, session: u32, mut seen: Vec<u64>) -> bool {
    seen.extend(collect(w, i, c, session).await);
    let ok = matches!(call(w, c.request("get_conversations", json!({}))).await, Ok(ref r) if r.code() == 0);
    if ok {
        let mut log = lock(&w.logs[i]);
        for id in seen {
            log.confirmed.entry(id).or_insert(session);
        }
    } else {
        lock(&w.counts).barriers_failed += 1;
    }
    // Pushes that came in behind the barrier's answer: surfaced, not proven confirmed.
    collect(w, i, c, session).await;
    ok
}

/// Closes a session and records what the client surfaced up to the close (the client
/// confirmed those pushes as they arrived, so they must be counted).
async fn close(w: &World, i: usize, c: Client, session: u32, abrupt: bool) {
    if abrupt {
        c.drop_connection();
    } else {
        c.disconnect();
    }
    c.closed().await;
    collect(w, i, &c, session).await;
}

async fn one_send(w: &World, i: usize, c: &Client, to: usize, n: usize) {
    let text = format!("{}>{}#{n}", name(i), name(to));
    let r = call(w, c.send_text(&name(i), &name(to), &text)).await;
    let outcome = match r {
        Ok(reply) if reply.code() == 0 => {
            let id = reply.get("msg_id");
            let id = id
                .as_u64()
                .or_else(|| id.as_str().and_then(|s| s.parse().ok()));
            Sent::Accepted(id.expect("an accepted send has a msg_id"))
        }
        Ok(reply) => Sent::Refused(reply.code()),
        Err(RequestError::Failed(body)) => Sent::Refused(body["code"].as_i64().unwrap_or(-1)),
        Err(_) => Sent::Unknown,
    };
    let mut c = lock(&w.counts);
    c.sent += 1;
    match outcome {
        Sent::Accepted(_) => c.accepted += 1,
        Sent::Refused(_) => c.refused += 1,
        Sent::Unknown => c.unknown += 1,
    }
    lock(&w.sends).insert(text, (i, to, outcome));
}

async fn user_loop(w: Arc<World>, i: usize) {
    let mut rng = Rng(0x5EED_0000 + i as u64);
    let mut sess = 1u32;
    let mut c = session(&w, i).await;
    for n in 0..SENDS_PER_USER {
        let to = (i + 1 + rng.below(USERS as u64 - 1) as usize) % USERS;
        if rng.below(1000) < CUT_PER_MILLE {
            // The network dies while the send is in flight: stored or not, never twice.
            let cut_after = Duration::from_millis(rng.below(40));
            let cut = async {
                tokio::time::sleep(cut_after).await;
                c.drop_connection();
            };
            tokio::join!(one_send(&w, i, &c, to, n), cut);
            lock(&w.counts).cut_mid_request += 1;
        } else {
            one_send(&w, i, &c, to, n).await;
        }
        let seen = collect(&w, i, &c, sess).await;
        if rng.below(1000) < DISCONNECT_PER_MILLE || c.is_closed() {
            let abrupt = rng.below(2) == 0 || c.is_closed();
            if abrupt {
                lock(&w.counts).disconnects_abrupt += 1;
            } else {
                barrier(&w, i, &c, sess, seen).await;
                lock(&w.counts).disconnects_after_barrier += 1;
            }
            close(&w, i, c, sess, abrupt).await;
            sess += 1;
            c = session(&w, i).await;
        }
    }
    final_sync(&w, i, c, sess).await;
}

/// Waits until every user finished sending, then logs in once more without faults.
async fn final_sync(w: &World, i: usize, c: Client, sess: u32) {
    let seen = collect(w, i, &c, sess).await;
    barrier(w, i, &c, sess, seen).await;
    close(w, i, c, sess, false).await;
}

async fn last_session(w: &World, i: usize, sess: u32) {
    let c = session(w, i).await;
    assert!(
        barrier(w, i, &c, sess, Vec::new()).await,
        "fault-free barrier"
    );
    close(w, i, c, sess, false).await;
}

fn check(w: &World) {
    let sends = lock(&w.sends);
    // text -> msg_ids seen by its recipient
    let mut ids_of_text: HashMap<String, BTreeSet<u64>> = HashMap::new();
    for (u, log) in w.logs.iter().enumerate() {
        let log = lock(log);
        for d in &log.deliveries {
            let (from, to, outcome) = sends
                .get(&d.text)
                .unwrap_or_else(|| panic!("{} got a text no one sent: {:?}", name(u), d.text));
            assert_eq!(
                *to,
                u,
                "{:?} from {} reached the wrong user",
                d.text,
                name(*from)
            );
            assert!(
                !matches!(outcome, Sent::Refused(_)),
                "{:?} was refused yet delivered",
                d.text
            );
            ids_of_text
                .entry(d.text.clone())
                .or_default()
                .insert(d.msg_id);
            if let Some(&s) = log.confirmed.get(&d.msg_id) {
                assert!(
                    d.session <= s,
                    "{} got msg {} again in session {} after it was confirmed in session {s}",
                    name(u),
                    d.msg_id,
                    d.session
                );
            }
        }
    }
    for (text, ids) in &ids_of_text {
        assert_eq!(
            ids.len(),
            1,
            "{text:?} stored as {ids:?}: a retried send stored twice"
        );
    }
    for (text, (_, to, outcome)) in sends.iter() {
        if let Sent::Accepted(id) = outcome {
            let got = ids_of_text.get(text);
            assert!(
                got.is_some_and(|ids| ids.contains(id)),
                "accepted {text:?} (msg {id}) never reached {}",
                name(*to)
            );
        }
    }
}

fn report(w: &World) {
    let c = lock(&w.counts);
    let (mut live, mut sync, mut redelivered) = (0, 0, 0);
    for log in &w.logs {
        let mut seen = BTreeSet::new();
        let log = lock(log);
        for d in &log.deliveries {
            if !seen.insert(d.msg_id) {
                redelivered += 1;
            } else if d.by_sync {
                sync += 1;
            } else {
                live += 1;
            }
        }
    }
    println!(
        "soak: {USERS} users, sent {}, accepted {}, refused {}, outcome unknown {}; \
         delivered live {live}, by sync {sync}, redelivered unconfirmed (dropped by msg_id) \
         {redelivered}; requests {}, retransmissions {}; disconnects abrupt {}, after a \
         barrier {}, mid-request {}; barriers unanswered {}",
        c.sent,
        c.accepted,
        c.refused,
        c.unknown,
        c.requests,
        c.retransmissions,
        c.disconnects_abrupt,
        c.disconnects_after_barrier,
        c.cut_mid_request,
        c.barriers_failed
    );
}

async fn register_all(s: &RunningServer) {
    for i in 0..USERS {
        let c = user(s, Transport::Websocket, &name(i)).await;
        c.disconnect();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_message_reaches_its_recipient_exactly_once() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let server = start().await;
        register_all(&server).await;
        server.faults.replace(faults()).expect("rules");
        let w = Arc::new(World {
            server,
            sends: Mutex::default(),
            logs: (0..USERS).map(|_| Mutex::default()).collect(),
            counts: Mutex::default(),
        });
        let tasks: Vec<_> = (0..USERS)
            .map(|i| tokio::spawn(user_loop(w.clone(), i)))
            .collect();
        for t in tasks {
            t.await.expect("user task");
        }
        w.server.faults.clear();
        for i in 0..USERS {
            last_session(&w, i, 1_000).await;
        }
        report(&w);
        check(&w);
        let c = lock(&w.counts);
        assert!(c.accepted > 0 && c.retransmissions > 0, "the faults fired");
        assert!(c.disconnects_abrupt + c.disconnects_after_barrier > 0);
    })
    .await
    .expect("soak finished within its bound");
}
