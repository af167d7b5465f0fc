//! The protocol oracle's bookkeeping cost per delivered 1:1 text, in-process (no
//! sockets, no backend): what the oracle adds to every frame the fault layer shows it.
//!
//! 20 connections (10 pairs) each send `c_init` and `login` and get their acks and
//! responses; then every sender sends `s_across_single_text` texts and the oracle sees
//! what the server would send and receive for each: the request, its ack and response,
//! the `msg_sync` push to the recipient, and the recipient's `msg_recv_v2` with its ack
//! and response. Frames are built (and parsed, as the fault layer parses them) before the
//! clock starts, in batches of 40 texts; only the oracle's calls are timed (two clock
//! reads per batch), in CPU time of the thread: the machine is shared, and wall time would
//! count the time others ran. Allocations are counted with a wrapper around mimalloc (the
//! server's allocator).
//!
//! `cargo bench --bench oracle` runs for about 5 s of oracle CPU time (`--secs N` to
//! change); without `--bench` (as `cargo test --all-targets` runs it) a few hundred
//! texts. Nothing here asserts on time; a finding on this clean stream is a bug and stops
//! the bench.

mod support;

use jmessage_mock::faults::Observer;
use jmessage_mock::oracle::Oracle;
use jmessage_mock::transport::{FrameKind, FrameTag};
use serde_json::{json, Map, Value};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts allocations (and reallocations) on top of mimalloc.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PAIRS: u64 = 10;
const APPKEY: &str = "benchappkey0000000000001";

/// One frame the oracle sees: inbound (event parsed) or outbound (payload given).
enum Frame {
    In {
        conn: u64,
        event: String,
        payload: Value,
    },
    Out {
        conn: u64,
        tag: FrameTag,
        payload: Option<Map<String, Value>>,
    },
}

fn inbound(conn: u64, event: &str, payload: Value) -> Frame {
    Frame::In {
        conn,
        event: event.into(),
        payload,
    }
}

/// The ack and the response of a request, as the server tags them.
fn answer(out: &mut Vec<Frame>, conn: u64, event: &str, rid: u64, body: Value) {
    let rid = rid.to_string();
    out.push(Frame::Out {
        conn,
        tag: FrameTag::event(FrameKind::Ack, event, Some(&rid)),
        payload: None,
    });
    let mut body = body.as_object().cloned().unwrap_or_default();
    body.insert("code".into(), json!(0));
    body.insert("message".into(), json!("success"));
    out.push(Frame::Out {
        conn,
        tag: FrameTag::event(FrameKind::Response, event, Some(&rid)),
        payload: Some(body),
    });
}

fn user(conn: u64) -> String {
    format!("user{conn:02}")
}

/// `c_init` and `login` on every connection.
fn logins() -> Vec<Frame> {
    let mut out = Vec::new();
    for conn in 0..2 * PAIRS {
        let init = json!({"appkey": APPKEY, "random_str": "0123456789abcdef",
            "timestamp": 1_800_000_000_000u64, "signature": "0123456789abcdef0123456789abcdef",
            "flag": 0, "fromPlatForm": "j", "rid": 1});
        out.push(inbound(conn, "c_init", init));
        answer(&mut out, conn, "c_init", 1, json!({}));
        let login = json!({"username": user(conn), "password": "0123456789abcdef0123456789abcdef",
            "is_md5": true, "version": "2.5.0", "rid": 2});
        out.push(inbound(conn, "login", login));
        answer(&mut out, conn, "login", 2, json!({"uid": 10_000 + conn}));
    }
    out
}

/// The frames of text `n` from sender `2p` to recipient `2p + 1` (rids from 3 on).
fn text(out: &mut Vec<Frame>, pair: u64, n: u64) {
    let (from, to) = (2 * pair, 2 * pair + 1);
    let (rid, msg_id) = (3 + n, 1_000_000 + n * PAIRS + pair);
    let content = json!({"version": 1, "target_type": "single", "from_platform": "web",
        "target_id": user(to), "from_id": user(from), "create_time": 1_764_150_000_000u64,
        "msg_type": "text", "msg_body": {"text": format!("text {n} of pair {pair}")}});
    let request = json!({"content": content, "no_offline": false, "no_notification": false,
        "target_id": user(to), "appkey": APPKEY, "rid": rid});
    out.push(inbound(from, "s_across_single_text", request));
    answer(
        out,
        from,
        "s_across_single_text",
        rid,
        json!({"msg_id": msg_id, "ctime_ms": 1_764_150_000_000u64}),
    );
    let push = json!({"messages": [{"msg_id": msg_id, "msg_type": 3, "from_uid": 10_000 + from,
        "ctime_ms": 1_764_150_000_000u64, "msg_level": 0, "need_receipt": false,
        "content": content}]});
    out.push(Frame::Out {
        conn: to,
        tag: FrameTag::event(FrameKind::Push, "msg_sync", None),
        payload: push.as_object().cloned(),
    });
    let recv = json!({"msg_id": msg_id, "msg_type": 3, "from_uid": 10_000 + from,
        "from_gid": 0, "rid": rid});
    out.push(inbound(to, "msg_recv_v2", recv));
    answer(out, to, "msg_recv_v2", rid, json!({}));
}

/// CPU time of this thread.
fn cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Shows `frames` to the oracle; returns the findings.
fn feed(o: &Oracle, frames: &[Frame]) -> usize {
    let mut found = Vec::new();
    for f in frames {
        match f {
            Frame::In {
                conn,
                event,
                payload,
            } => {
                let answer = o.inbound(
                    *conn,
                    None,
                    "",
                    Some((event, payload)),
                    Instant::now(),
                    &mut found,
                );
                assert!(answer.is_none(), "the oracle refused {event}");
            }
            Frame::Out { conn, tag, payload } => {
                o.outbound(*conn, "", tag, payload.as_ref(), Instant::now(), &mut found);
            }
        }
    }
    found.len()
}

struct Run {
    texts: u64,
    ns: f64,
    allocs: u64,
}

/// Feeds texts in batches of `batch` per pair until `budget` is spent.
fn run(budget: Duration, batch: u64) -> Run {
    let o = Oracle::new();
    let found = feed(&o, &logins());
    assert_eq!(found, 0, "findings on the logins");
    let (mut texts, mut spent, mut allocs) = (0u64, Duration::ZERO, 0u64);
    while spent < budget || texts == 0 {
        let mut frames = Vec::new();
        for n in texts / PAIRS..texts / PAIRS + batch {
            for pair in 0..PAIRS {
                text(&mut frames, pair, n);
            }
        }
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t = cpu();
        let found = feed(&o, &frames);
        spent += cpu().saturating_sub(t);
        allocs += ALLOCS.load(Ordering::Relaxed) - a0;
        assert_eq!(found, 0, "findings on a clean stream");
        texts += batch * PAIRS;
    }
    let mut found = Vec::new();
    o.finish(&mut found);
    assert!(found.is_empty(), "owed at the end: {:?}", found.first());
    Run {
        texts,
        ns: spent.as_nanos() as f64 / texts as f64,
        allocs,
    }
}

fn main() {
    let full = support::full_mode();
    let args: Vec<String> = std::env::args().collect();
    let secs = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(5.0);
    let (budget, rounds) = if full {
        (Duration::from_secs_f64(secs / 3.0), 3)
    } else {
        (Duration::ZERO, 1)
    };
    // Small batches: the frames of a batch are still in the cache when the oracle sees
    // them, as a frame the server has just parsed is.
    let batch = if full { 4 } else { 20 };
    println!("oracle: 1:1 texts on {} connections", 2 * PAIRS);
    let mut best = f64::MAX;
    for round in 1..=rounds {
        let r = run(budget, batch);
        best = best.min(r.ns);
        println!(
            "  round {round}: {} texts, {:.0} ns CPU per text (7 frames), {:.2} allocations per text",
            r.texts,
            r.ns,
            r.allocs as f64 / r.texts as f64
        );
    }
    println!("oracle per text (best round): {best:.0} ns");
}
