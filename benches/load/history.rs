//! `history`: one long 1:1 run through one server; throughput and resident memory for
//! each tenth of the messages, to show whether the server stays flat as history grows.

use super::cases::Sample;
use super::client::{self, Conn, Recorder};
use super::servers::Server;
use super::Opts;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest the sending phase may last.
const LIMIT: Duration = Duration::from_secs(200);

pub async fn run(s: &Server, o: &Opts) -> Result<Sample, String> {
    let rec = Arc::new(Recorder::default());
    let mut users: Vec<String> = (0..o.pairs).map(|i| format!("s{i:05}")).collect();
    users.extend((0..o.pairs).map(|i| format!("r{i:05}")));
    let mut conns = Vec::new();
    for n in &users {
        let c = Conn::connect(s.port, n, rec.clone()).await?;
        c.login().await?;
        conns.push(c);
    }
    let total = o.history_msgs;
    let (rss0, cpu0, t0) = (s.rss(), s.cpu_s(), Instant::now());
    let until = t0 + LIMIT;
    let per = (total / o.pairs.max(1) as u64).max(1);
    let mut tasks = Vec::new();
    for (i, c) in conns.iter().take(o.pairs).enumerate() {
        let c: Arc<Conn> = c.clone();
        let (me, to) = (users[i].clone(), users[o.pairs + i].clone());
        let fields = move || {
            format!(
                "{},\"target_id\":\"{to}\",\"appkey\":\"{}\"",
                client::content("single", &to, &me),
                client::APPKEY
            )
        };
        tasks.push(tokio::spawn(super::cases::pump(
            c,
            "s_across_single_text",
            fields,
            o.inflight,
            until,
            per,
            0.0,
        )));
    }
    // Tenths: time, RSS and both sides' CPU when the deliveries cross each tenth.
    let tenth = (per * o.pairs as u64 / 10).max(1);
    let mark = || Mark {
        at: Instant::now(),
        rss: s.rss(),
        server_cpu: s.cpu_s(),
        load_cpu: super::servers::cpu_of(std::process::id()),
    };
    let mut marks = vec![Mark { at: t0, ..mark() }];
    while marks.len() <= 10 && Instant::now() < until + Duration::from_secs(30) {
        if rec.delivered.load(Ordering::Relaxed) >= tenth * marks.len() as u64 {
            marks.push(mark());
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap_or(0);
    }
    print_tenths(&marks, tenth);
    let t1 = marks.last().map(|m| m.at).unwrap_or(t0);
    let mut out = super::cases::finish(s, &rec, sent, t0, t1, cpu0);
    out.rss_per_unit = out.rss.saturating_sub(rss0) as f64 / out.units.max(1) as f64;
    for c in &conns {
        c.close();
    }
    Ok(out)
}

/// Where the run stood when the deliveries crossed a tenth.
struct Mark {
    at: Instant,
    rss: u64,
    /// The server's CPU seconds so far.
    server_cpu: f64,
    /// The load generator's own CPU seconds so far (it shares the machine: a slower
    /// tenth may be the generator's, not the server's).
    load_cpu: f64,
}

fn print_tenths(marks: &[Mark], tenth: u64) {
    println!(
        "\n| tenth | msgs/s | server CPU µs per text | load generator CPU µs per text | RSS MB |\n|---|---|---|---|---|"
    );
    let per_text = |s: f64| s * 1e6 / tenth as f64;
    for (i, w) in marks.windows(2).enumerate() {
        let dt = w[1].at.duration_since(w[0].at).as_secs_f64();
        println!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} |",
            i + 1,
            tenth as f64 / dt.max(1e-9),
            per_text(w[1].server_cpu - w[0].server_cpu),
            per_text(w[1].load_cpu - w[0].load_cpu),
            w[1].rss as f64 / 1048576.0
        );
    }
}
