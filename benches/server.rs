//! End-to-end server benchmarks with the Rust reference client, all on 127.0.0.1.
//!
//! `cargo bench --bench server` for the full run (about 45 s on 2 cores); without
//! `--bench` (as `cargo test --all-targets` runs it) every case runs once, tiny.
//!
//! Cases (each reported as a ratio against a baseline measured in the same run):
//! * pairs: N sender/receiver pairs; each sender sends text messages one after the other
//!   (request → ack → response) while its receiver gets `msg_sync` (and answers
//!   `msg_recv_v2`). Baseline: a bare tokio-tungstenite websocket server answering each
//!   request with one reply of the `msg_sync` frame's size, N clients in lock-step.
//! * fan-out: one group message to G online members, time until every member got its
//!   `msg_sync`; baseline: G-1 single messages (sent concurrently) to the same members.
//! * journal: the pairs case with the fault journal on (10 000 entries, the default) vs
//!   off (0).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use futures_util::{SinkExt, StreamExt};
use jmessage_mock::backend::{GroupSeed, UserSeed};
use jmessage_mock::client::{single_msg, Client, ClientConfig, Transport};
use jmessage_mock::server::{self, RunningServer, ServerConfig};
use jmessage_mock::transport::{socketio, TransportConfig};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const GID: u64 = 77_001;
const TEXT: &str = "Hello there, this is a fairly ordinary chat message of some length.";

struct Plan {
    pairs: Vec<usize>,
    /// Time each throughput phase runs for.
    phase: Duration,
    /// Messages per sender at most (the phase usually ends first).
    max_per_sender: u64,
    group_size: usize,
    fanout_reps: usize,
    journal_rounds: usize,
}

fn plan(full: bool) -> Plan {
    if full {
        Plan {
            pairs: vec![1, 10, 50],
            phase: Duration::from_secs(3),
            max_per_sender: 1_000_000,
            group_size: 150,
            fanout_reps: 15,
            journal_rounds: 2,
        }
    } else {
        Plan {
            pairs: vec![1, 3],
            phase: Duration::from_millis(150),
            max_per_sender: 5,
            group_size: 6,
            fanout_reps: 1,
            journal_rounds: 1,
        }
    }
}

fn seed(name: &str) -> UserSeed {
    UserSeed::new(common::APPKEY, name, "pw", name)
}

async fn start(users: &[String], group: bool, journal: usize) -> RunningServer {
    let mut backend = common::backend_config();
    backend.seeds.users.extend(users.iter().map(|u| seed(u)));
    if group {
        backend.seeds.groups.push(GroupSeed {
            appkey: String::new(),
            gid: Some(GID),
            name: "bench".into(),
            desc: String::new(),
            owner: users[0].clone(),
            admins: vec![],
            members: users[1..].to_vec(),
            silenced: vec![],
            public: false,
            max_members: users.len() + 10,
        });
    }
    let mut config = ServerConfig::new(backend, TransportConfig::default());
    config.journal_capacity = journal;
    server::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("server starts")
}

fn client_config() -> ClientConfig {
    ClientConfig {
        transport: Transport::Websocket,
        ack_timeout: Duration::from_secs(10),
        response_timeout: Some(Duration::from_secs(10)),
        retry_times: 1,
        connect_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

async fn login(s: &RunningServer, name: &str) -> Client {
    let c = Client::connect(&s.http_url(), client_config())
        .await
        .expect("connect");
    c.init(common::APPKEY, common::SECRET, 0)
        .await
        .expect("init")
        .ok()
        .expect("init ok");
    c.login(name, "pw")
        .await
        .expect("login")
        .ok()
        .expect("login ok");
    c
}

/// Logs every name in, a few at a time.
async fn login_all(s: &RunningServer, names: &[String]) -> Vec<Arc<Client>> {
    let mut out = Vec::new();
    for chunk in names.chunks(10) {
        let batch = futures_util::future::join_all(chunk.iter().map(|n| login(s, n))).await;
        out.extend(batch.into_iter().map(Arc::new));
    }
    out
}

/// Throughput and latency of one run.
#[derive(Debug, Default, Clone)]
struct Run {
    msgs: u64,
    msgs_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    /// Bytes of one request frame and one `msg_sync` frame (for the echo baseline).
    request_len: usize,
    push_len: usize,
}

fn print_run(label: &str, r: &Run) {
    println!(
        "    {label:<34} {:>8} msgs {:>9.0} msgs/s  p50 {:>7.0} us  p99 {:>7.0} us  errors {}",
        r.msgs, r.msgs_per_s, r.p50_us, r.p99_us, r.errors
    );
}

/// N pairs through the mock server.
async fn pairs_run(n: usize, journal: usize, p: &Plan) -> Run {
    let names: Vec<String> = (0..2 * n).map(|i| format!("user{i:03}")).collect();
    let s = start(&names, false, journal).await;
    let clients = login_all(&s, &names).await;
    let request_len = socketio::encode_event_frame("s_across_single_text", &{
        let mut m = single_msg("user000", "user001", "text", json!({"text": TEXT}));
        m["rid"] = json!(1_234_567_890u64);
        m
    })
    .len();
    let delivered = Arc::new(AtomicU64::new(0));
    let push_len = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    // Receivers count msg_sync pushes (the client answers msg_recv_v2 by itself).
    let mut receivers = Vec::new();
    for i in 0..n {
        let c = clients[2 * i + 1].clone();
        let (d, pl, stop) = (delivered.clone(), push_len.clone(), stop.clone());
        receivers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    p = c.expect_push("msg_sync", Duration::from_secs(30)) => match p {
                        Some(v) => {
                            if pl.load(Ordering::Relaxed) == 0 {
                                let len = socketio::encode_event_frame("msg_sync", &v).len();
                                pl.store(len as u64, Ordering::Relaxed);
                            }
                            d.fetch_add(1, Ordering::Relaxed);
                        }
                        None => return,
                    },
                    _ = stop.cancelled() => return,
                }
            }
        }));
    }
    let start_t = Instant::now();
    let until = start_t + p.phase;
    let mut senders = Vec::new();
    for i in 0..n {
        let c = clients[2 * i].clone();
        let (me, to) = (names[2 * i].clone(), names[2 * i + 1].clone());
        let max = p.max_per_sender;
        senders.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut sent) = (Vec::new(), 0u64, 0u64);
            while sent < max && Instant::now() < until {
                let t = Instant::now();
                match c.send_text(&me, &to, TEXT).await {
                    Ok(r) if r.code() == 0 => lat.push(t.elapsed().as_secs_f64() * 1e6),
                    _ => errors += 1,
                }
                sent += 1;
            }
            (lat, errors, sent)
        }));
    }
    let (mut lat, mut errors, mut sent) = (Vec::new(), 0, 0);
    for h in senders {
        let (l, e, s) = h.await.expect("sender");
        lat.extend(l);
        errors += e;
        sent += s;
    }
    // Wait for the last delivery (bounded).
    let wait_until = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < sent - errors && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start_t.elapsed().as_secs_f64();
    let got = delivered.load(Ordering::Relaxed);
    stop.cancel();
    for r in receivers {
        let _ = r.await;
    }
    for c in &clients {
        c.disconnect();
    }
    s.shutdown().await;
    Run {
        msgs: got,
        msgs_per_s: got as f64 / elapsed,
        p50_us: support::percentile(&mut lat, 50.0),
        p99_us: support::percentile(&mut lat, 99.0),
        errors: errors + (sent - errors).saturating_sub(got),
        request_len,
        push_len: push_len.load(Ordering::Relaxed) as usize,
    }
}

/// A bare websocket server: one reply of `reply_len` bytes per text message.
async fn echo_server(reply_len: usize) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reply: Arc<str> = format!(
        "42[\"msg_sync\",\"{}\"]",
        "x".repeat(reply_len.saturating_sub(15))
    )
    .into();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let reply = reply.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    match m {
                        Message::Text(_) if ws.send(Message::text(&*reply)).await.is_err() => {
                            return;
                        }
                        Message::Close(_) => return,
                        _ => {}
                    }
                }
            });
        }
    });
    (addr, task)
}

/// N lock-step clients against the echo server, same frame sizes.
async fn echo_run(n: usize, request_len: usize, reply_len: usize, p: &Plan) -> Run {
    let (addr, server) = echo_server(reply_len).await;
    let request: Arc<str> = format!(
        "42[\"s\",\"{}\"]",
        "y".repeat(request_len.saturating_sub(9))
    )
    .into();
    let mut conns = Vec::new();
    for _ in 0..n {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .expect("echo connect");
        conns.push(ws);
    }
    let start_t = Instant::now();
    let until = start_t + p.phase;
    let max = p.max_per_sender;
    let mut tasks = Vec::new();
    for mut ws in conns {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut ok) = (Vec::new(), 0u64, 0u64);
            let mut sent = 0;
            while sent < max && Instant::now() < until {
                let t = Instant::now();
                sent += 1;
                if ws.send(Message::text(&*request)).await.is_err() {
                    errors += 1;
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                    Ok(Some(Ok(Message::Text(_)))) => {
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                        ok += 1;
                    }
                    _ => {
                        errors += 1;
                        break;
                    }
                }
            }
            let _ = ws.close(None).await;
            (lat, errors, ok)
        }));
    }
    let (mut lat, mut errors, mut ok) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, e, o) = t.await.expect("echo client");
        lat.extend(l);
        errors += e;
        ok += o;
    }
    let elapsed = start_t.elapsed().as_secs_f64();
    server.abort();
    Run {
        msgs: ok,
        msgs_per_s: ok as f64 / elapsed,
        p50_us: support::percentile(&mut lat, 50.0),
        p99_us: support::percentile(&mut lat, 99.0),
        errors,
        request_len,
        push_len: reply_len,
    }
}

/// Per-receiver task forwarding the arrival time of every `msg_sync`.
fn watch(
    clients: &[Arc<Client>],
    stop: &tokio_util::sync::CancellationToken,
) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    for c in clients {
        let (c, tx, stop) = (c.clone(), tx.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    p = c.expect_push("msg_sync", Duration::from_secs(30)) => match p {
                        Some(_) => { let _ = tx.send(Instant::now()); }
                        None => return,
                    },
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    rx
}

/// Waits for `k` arrivals; the time of the last one since `t0` (None on timeout).
async fn all_arrived(
    rx: &mut mpsc::UnboundedReceiver<Instant>,
    k: usize,
    t0: Instant,
) -> Option<f64> {
    let mut last = t0;
    for _ in 0..k {
        last = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .ok()
            .flatten()?;
    }
    Some(last.duration_since(t0).as_secs_f64() * 1e6)
}

async fn fanout(p: &Plan) {
    let g = p.group_size;
    let names: Vec<String> = (0..g).map(|i| format!("member{i:03}")).collect();
    let s = start(&names, true, 10_000).await;
    let t = Instant::now();
    let clients = login_all(&s, &names).await;
    println!(
        "  fan-out: {g} members logged in ({:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let mut rx = watch(&clients[1..], &stop);
    let sender = clients[0].clone();
    let k = g - 1;
    let (mut group_us, mut single_us) = (Vec::new(), Vec::new());
    let mut failures = 0;
    for rep in 0..p.fanout_reps {
        // One group message.
        let t0 = Instant::now();
        let now = chrono_ms();
        let r = sender
            .request(
                "send_group_msg",
                json!({
                    "target_gid": GID,
                    "content": {"version": 1, "target_type": "group", "from_platform": "web",
                                "target_id": GID.to_string(), "from_id": names[0], "create_time": now,
                                "msg_type": "text", "msg_body": {"text": format!("{TEXT} #{rep}")}},
                    "no_offline": false, "no_notification": false,
                }),
            )
            .await;
        match (r, all_arrived(&mut rx, k, t0).await) {
            (Ok(r), Some(us)) if r.code() == 0 => group_us.push(us),
            _ => failures += 1,
        }
        // The same recipients, one single message each, all sent at once.
        let t0 = Instant::now();
        let sends = futures_util::future::join_all(
            names[1..]
                .iter()
                .map(|to| sender.send_text(&names[0], to, TEXT)),
        )
        .await;
        let ok = sends.iter().all(|r| matches!(r, Ok(r) if r.code() == 0));
        match all_arrived(&mut rx, k, t0).await {
            Some(us) if ok => single_us.push(us),
            _ => failures += 1,
        }
    }
    stop.cancel();
    for c in &clients {
        c.disconnect();
    }
    s.shutdown().await;
    let (gm, sm) = (
        support::median(&mut group_us),
        support::median(&mut single_us),
    );
    println!(
        "  fan-out to {k}: one group msg {gm:>8.0} us   {k} single msgs {sm:>8.0} us   ratio group/singles {:>5.2}x   (median of {} reps, failures {failures})",
        gm / sm.max(1.0),
        group_us.len()
    );
}

fn chrono_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How long `server::start` takes in process (bind, backend, tasks) until it listens:
/// what a Rust test pays per mock server. Median and worst of 20 starts.
async fn startup() {
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let s = start(&[], false, 10_000).await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        s.shutdown().await;
    }
    let worst = times.iter().copied().fold(0.0, f64::max);
    println!(
        "  in-process server start: median {:.2} ms, worst {worst:.2} ms (20 starts)",
        support::median(&mut times)
    );
}

async fn bench(full: bool) {
    let p = plan(full);
    println!(
        "server benchmarks ({} mode, {:?} per throughput phase): ratio = ours / baseline",
        if full { "full" } else { "smoke" },
        p.phase
    );
    for &n in &p.pairs {
        println!("  pairs N={n}:");
        let ours = pairs_run(n, 10_000, &p).await;
        print_run("mock server (journal on)", &ours);
        let echo = echo_run(n, ours.request_len, ours.push_len.max(100), &p).await;
        print_run(
            &format!(
                "ws echo ({} B req / {} B reply)",
                echo.request_len, echo.push_len
            ),
            &echo,
        );
        println!(
            "    ratio: throughput {:.2}x   p50 latency {:.2}x   p99 latency {:.2}x",
            ours.msgs_per_s / echo.msgs_per_s.max(1e-9),
            ours.p50_us / echo.p50_us.max(1e-9),
            ours.p99_us / echo.p99_us.max(1e-9)
        );
    }
    fanout(&p).await;
    startup().await;
    // Journal cost, alternating on/off.
    let n = if full { 10 } else { 2 };
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..p.journal_rounds {
        off.push(pairs_run(n, 0, &p).await.msgs_per_s);
        on.push(pairs_run(n, 10_000, &p).await.msgs_per_s);
    }
    let (on, off) = (support::median(&mut on), support::median(&mut off));
    println!(
        "  journal (N={n} pairs): on {on:.0} msgs/s, off {off:.0} msgs/s   ratio on/off {:.2}x",
        on / off.max(1e-9)
    );
}

fn main() {
    let full = support::full_mode();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let limit = if full { 58 } else { 20 };
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(limit), bench(full))
            .await
            .expect("benchmark exceeded its time bound")
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}
