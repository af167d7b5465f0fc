//! Load generator: jmessage-mock against a Node socket.io@2 server doing the same
//! exchange (benches/baseline-node) and a bare websocket echo (the ceiling), each a child
//! process on 127.0.0.1, alternated round by round in one run. docs/performance.md.
//!
//! ```sh
//! npm ci --prefix benches/baseline-node        # once; without it the Node column is skipped
//! cargo bench --bench load                      # every case, 3 rounds
//! cargo bench --bench load -- --cases pairs --rounds 5 --pairs 10 --inflight 32 --secs 10
//! JMM_BEFORE_BIN=/tmp/jmm-old cargo bench --bench load -- --servers before,ours,node,echo
//! ```
//!
//! Cases: `pairs` (N sender/receiver pairs, K requests in flight per sender, 1:1 text;
//! `--rate R` offers R texts/s in all instead of saturating, to compare latency at equal
//! offered load),
//! `group` (fan-out to G online members), `room` (chat room of R members), `login`
//! (login storm: connect, c_init, login, sync_check, close), `idle` (I logged-in idle
//! connections: resident memory each), `history` (one long pairs run: throughput and
//! memory per tenth). Server CPU is utime+stime from /proc/<pid>/stat over the measured
//! phase; memory is VmRSS. Every run is bounded in count and time.
//!
//! `JMM_BENCH_EXTRA_YAML`: lines added to our server's generated config, inside its
//! `limits:` block (indent them two spaces) or, unindented, as more top-level keys; e.g.
//! `history:` limits that keep every message, to see the history case without retention.
//!
//! Without `--bench` (as `cargo test --all-targets` runs bench targets) it runs a tiny
//! smoke round. `--serve-echo` makes this binary the echo server (used as a child).

mod cases;
mod client;
mod echo;
mod history;
mod lean;
mod servers;
mod table;

use servers::Kind;
use std::time::Duration;

/// Command-line options (all optional).
#[derive(Clone, Debug)]
pub struct Opts {
    pub cases: Vec<String>,
    pub rounds: usize,
    pub pairs: usize,
    pub inflight: usize,
    pub secs: f64,
    pub max_msgs: u64,
    pub group: usize,
    pub room: usize,
    pub logins: usize,
    pub login_concurrency: usize,
    pub idle: usize,
    pub history_msgs: u64,
    /// `pairs`: texts per second offered in all (paced per sender, still capped by the
    /// window); 0 = as fast as the window allows (saturation).
    pub rate: f64,
    pub servers: Vec<Kind>,
}

fn opts(args: &[String]) -> Opts {
    let full = args.iter().any(|a| a == "--bench");
    let mut o = if full {
        Opts {
            cases: ["pairs", "group", "room", "login", "idle"]
                .map(String::from)
                .to_vec(),
            rounds: 3,
            pairs: 10,
            inflight: 32,
            secs: 8.0,
            max_msgs: 300_000,
            group: 500,
            room: 500,
            logins: 3000,
            login_concurrency: 50,
            idle: 2000,
            history_msgs: 1_000_000,
            rate: 0.0,
            servers: vec![Kind::Node, Kind::Ours, Kind::Echo],
        }
    } else {
        Opts {
            cases: ["pairs", "group", "room", "login", "idle"]
                .map(String::from)
                .to_vec(),
            rounds: 1,
            pairs: 1,
            inflight: 2,
            secs: 0.2,
            max_msgs: 20,
            group: 4,
            room: 4,
            logins: 4,
            login_concurrency: 2,
            idle: 4,
            history_msgs: 50,
            rate: 0.0,
            servers: vec![Kind::Ours, Kind::Echo],
        }
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--cases" => o.cases = val().split(',').map(String::from).collect(),
            "--rounds" => o.rounds = val().parse().unwrap_or(o.rounds),
            "--pairs" => o.pairs = val().parse().unwrap_or(o.pairs),
            "--inflight" => o.inflight = val().parse().unwrap_or(o.inflight),
            "--secs" => o.secs = val().parse().unwrap_or(o.secs),
            "--max-msgs" => o.max_msgs = val().parse().unwrap_or(o.max_msgs),
            "--group" => o.group = val().parse().unwrap_or(o.group),
            "--room" => o.room = val().parse().unwrap_or(o.room),
            "--logins" => o.logins = val().parse().unwrap_or(o.logins),
            "--login-concurrency" => {
                o.login_concurrency = val().parse().unwrap_or(o.login_concurrency)
            }
            "--idle" => o.idle = val().parse().unwrap_or(o.idle),
            "--history-msgs" => o.history_msgs = val().parse().unwrap_or(o.history_msgs),
            "--rate" => o.rate = val().parse().unwrap_or(o.rate),
            "--servers" => {
                o.servers = val()
                    .split(',')
                    .filter_map(|s| match s {
                        "ours" => Some(Kind::Ours),
                        "before" => Some(Kind::Before),
                        "node" => Some(Kind::Node),
                        "echo" => Some(Kind::Echo),
                        _ => None,
                    })
                    .collect()
            }
            _ => {}
        }
    }
    if std::env::var_os("JMM_BEFORE_BIN").is_none() && o.servers.contains(&Kind::Before) {
        eprintln!("--servers before needs JMM_BEFORE_BIN=<path of another jmessage-mock build>");
        o.servers.retain(|k| *k != Kind::Before);
    }
    if !servers::node_available() && o.servers.contains(&Kind::Node) {
        eprintln!("benches/baseline-node/node_modules missing (npm ci --prefix benches/baseline-node): no Node column");
        o.servers.retain(|k| *k != Kind::Node);
    }
    o
}

fn hold_idle(port: u16, n: usize, secs: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            match lean::login(port, &format!("i{i:05}")).await {
                Ok(c) => held.push(c),
                Err(e) => eprintln!("login {i}: {e}"),
            }
        }
        println!("holding {} connections for {secs} s", held.len());
        tokio::time::sleep(Duration::from_secs(secs)).await;
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve-echo") {
        echo::serve();
        return;
    }
    let o = opts(&args);
    if let Some(at) = args.iter().position(|a| a == "--hold-idle") {
        // `--hold-idle PORT N SECS`: log in users i00000.. to an already running server
        // with the lean client and hold them (for profiling a server by hand).
        let num = |i: usize| args.get(at + i).and_then(|v| v.parse::<u64>().ok());
        let (port, n, secs) = (
            num(1).unwrap_or(0),
            num(2).unwrap_or(1),
            num(3).unwrap_or(10),
        );
        hold_idle(port as u16, n as usize, secs);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The whole run is bounded: generous per case and round, never unbounded.
    let bound = Duration::from_secs(60 + 240 * (o.cases.len() * o.rounds) as u64);
    rt.block_on(async {
        if tokio::time::timeout(bound, cases::run_all(&o))
            .await
            .is_err()
        {
            eprintln!("load: stopped at its time bound ({bound:?})");
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}
