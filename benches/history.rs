//! Message history cost: resident memory per stored message and the size and backend
//! time of the first sync page after a flood, on the backend alone (no sockets).
//!
//! `cargo bench --bench history` stores 100,000 texts of 64 bytes from one user to an
//! offline one (retention raised so all are kept), then logs the recipient in and follows
//! the sync pages. Without `--bench` it stores 2,000. Memory comes from
//! `/proc/self/status` (VmRSS), so it is only meaningful in a fresh process; nothing here
//! asserts on memory or time.

mod support;

use jmessage_mock::backend::limits::HistoryLimits;
use jmessage_mock::backend::{
    md5_hex, signature, AppConfig, Backend, BackendConfig, ManualClock, Outcome, Seeds,
};
use jmessage_mock::protocol::Rid;
use jmessage_mock::server::persist::{MessageCache, Snapshot};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

const APP: &str = "benchappkey0000000000001";
const SECRET: &str = "bench-secret";

struct Bench {
    b: Backend,
    rid: u64,
}

impl Bench {
    fn req(&mut self, conn: u64, event: &str, payload: Value) -> Outcome {
        self.rid += 1;
        let mut m = payload.as_object().cloned().unwrap_or_default();
        m.insert("rid".into(), json!(self.rid));
        let rid = Rid::from_payload(&m).expect("rid");
        self.b.handle(conn, event, &rid, &mut m)
    }

    fn login(&mut self, conn: u64, name: &str) {
        let ts = "1800000000000";
        let rs = "0123456789abcdefghij";
        self.req(
            conn,
            "c_init",
            json!({"appkey": APP, "random_str": rs, "timestamp": ts,
            "signature": signature(APP, ts, rs, SECRET), "flag": 0}),
        );
        self.req(
            conn,
            "register",
            json!({"username": name, "password": md5_hex("pw")}),
        );
        let l = self.req(
            conn,
            "login",
            json!({"username": name, "password": md5_hex("pw"), "version": "2.5.0"}),
        );
        assert_eq!(l.code(), Some(0), "login {name}");
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// How long a state save holds the backend lock: the first save (every message
/// encoded) and a later one (messages already encoded), then the file image outside it.
fn save_cost(b: &Backend) {
    let mut cache = MessageCache::default();
    let t = Instant::now();
    drop(Snapshot::take(b, &mut cache, 0));
    let first = t.elapsed();
    let t = Instant::now();
    let snap = Snapshot::take(b, &mut cache, 0).expect("snapshot");
    let locked = t.elapsed();
    let t = Instant::now();
    let bytes = snap.to_bytes().expect("image").len();
    println!(
        "history: state save holds the lock {first:?} (first save), {locked:?} (next saves); {bytes} bytes encoded outside it in {:?}",
        t.elapsed()
    );
}

fn main() {
    let n: usize = if support::full_mode() { 100_000 } else { 2_000 };
    let config = BackendConfig {
        seeds: Seeds {
            apps: vec![AppConfig {
                appkey: APP.into(),
                secret: SECRET.into(),
                name: "bench".into(),
                cross_app: None,
                max_users: None,
            }],
            ..Seeds::default()
        },
        history: HistoryLimits {
            per_conversation: n,
            total: n,
            ..HistoryLimits::default()
        },
        signature_ttl_ms: 600_000,
    };
    let clock = ManualClock::new(1_800_000_000_000);
    let mut bench = Bench {
        b: Backend::new(config, Arc::new(clock)),
        rid: 0,
    };
    bench.login(1, "alice");
    bench.login(2, "bobby");
    bench.b.disconnect(2);
    let text = "x".repeat(64);
    let before = rss_kb();
    for _ in 0..n {
        bench.req(
            1,
            "s_across_single_text",
            json!({"target_id": "bobby",
            "content": {"msg_type": "text", "msg_body": {"text": text}}}),
        );
    }
    let grown = rss_kb().saturating_sub(before);
    println!(
        "history: {} messages stored, RSS +{grown} KB = {} bytes per message (dedupe cache included)",
        bench.b.message_count(),
        grown * 1024 / n as u64
    );
    let f = bench.b.footprint();
    let per = |x: usize| x / n.max(1);
    println!(
        "history: estimated heap per message: store {} (wire {}), retention index {}, sync logs {}, conversations {}; dedupe cache {} KB in all (bounded)",
        per(f.messages),
        per(f.wire),
        per(f.threads),
        per(f.sync_logs),
        per(f.conversations),
        f.dedupe / 1024
    );
    save_cost(&bench.b);
    bench.login(3, "bobby");
    let t = Instant::now();
    let mut o = bench.req(3, "sync_check", json!({"sync_key": 0}));
    let mut first = Some(t.elapsed());
    let (mut pages, mut largest, mut msgs) = (0, 0, 0);
    while let Some(p) = o.pushes.iter().find(|p| p.event == "sync_conversation") {
        pages += 1;
        largest = largest.max(p.payload.to_string().len());
        for c in p.payload["messages"].as_array().into_iter().flatten() {
            msgs += c["msgs"].as_array().map_or(0, Vec::len);
        }
        if let Some(d) = first.take() {
            println!("history: first sync_check {d:?}");
        }
        let key = p.payload["sync_key"].clone();
        o = bench.req(3, "sync_conversation_ack", json!({"sync_key": key}));
    }
    println!("history: {msgs} messages synced in {pages} pages, largest {largest} bytes");
}
