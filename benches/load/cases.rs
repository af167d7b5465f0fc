//! The load cases, the alternation of servers round by round, and the Markdown table.

use super::client::{self, Conn, Recorder};
use super::lean;
use super::servers::{self, Kind, Server, World};
use super::Opts;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const GID: u64 = 90_001;
const ROOM: u64 = 20_001;
/// Longest wait for the last deliveries once the senders stopped.
const GRACE: Duration = Duration::from_secs(40);

/// One measured run of one case on one server.
#[derive(Debug, Default, Clone)]
pub struct Sample {
    /// Deliveries (pushes received), logins, or idle connections held.
    pub units: u64,
    pub secs: f64,
    pub cpu_s: f64,
    pub rss: u64,
    /// Resident bytes added per unit (idle connections, history).
    pub rss_per_unit: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub late_10s: u64,
    pub lost: u64,
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

fn world(case: &str, o: &Opts) -> World {
    let (users, groups, rooms) = match case {
        "pairs" | "history" => {
            let mut u = names("s", o.pairs);
            u.extend(names("r", o.pairs));
            (u, vec![], vec![])
        }
        "group" => {
            let u = names("g", o.group);
            (u.clone(), vec![(GID, u)], vec![])
        }
        "room" => (names("m", o.room), vec![], vec![ROOM]),
        "login" => (names("l", o.logins), vec![], vec![]),
        _ => (names("i", o.idle), vec![], vec![]),
    };
    World {
        users,
        groups,
        rooms,
    }
}

/// Connects and logs in every name, `par` at a time.
async fn login_all(
    s: &Server,
    names: &[String],
    rec: &Arc<Recorder>,
    par: usize,
) -> Result<Vec<Arc<Conn>>, String> {
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(par.max(1)) {
        let batch = futures_util::future::join_all(chunk.iter().map(|n| async {
            let c = Conn::connect(s.port, n, rec.clone()).await?;
            c.login().await?;
            Ok::<_, String>(c)
        }))
        .await;
        for c in batch {
            out.push(c?);
        }
    }
    Ok(out)
}

/// Sends `event` from `c` with `inflight` requests in flight until `until` or `max`
/// sends; returns how many were sent.
/// `rate`: sends per second (paced; missed ticks are caught up), 0 = unpaced.
pub async fn pump(
    c: Arc<Conn>,
    event: &'static str,
    fields: impl Fn() -> String,
    inflight: usize,
    until: Instant,
    max: u64,
    rate: f64,
) -> u64 {
    let window = Arc::new(Semaphore::new(inflight.max(1)));
    let mut pace = (rate > 0.0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
    let mut sent = 0;
    while sent < max && Instant::now() < until {
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout(Duration::from_secs(30), window.clone().acquire_owned()).await
        else {
            break;
        };
        c.send_windowed(event, &fields(), permit);
        sent += 1;
    }
    sent
}

/// Waits (bounded) until `want` deliveries arrived; returns the time of the wait's end.
async fn settle(rec: &Recorder, want: u64) -> Instant {
    let until = Instant::now() + GRACE;
    while rec.delivered.load(Ordering::Relaxed) < want && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Instant::now()
}

pub fn finish(
    s: &Server,
    rec: &Recorder,
    want: u64,
    t0: Instant,
    t1: Instant,
    cpu0: f64,
) -> Sample {
    let mut lat = rec.latencies.lock().map(|v| v.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            let i = ((p / 100.0) * lat.len() as f64).ceil() as usize;
            lat[i.clamp(1, lat.len()) - 1] as f64 / 1000.0
        }
    };
    let got = rec.delivered.load(Ordering::Relaxed);
    Sample {
        units: got,
        secs: t1.duration_since(t0).as_secs_f64(),
        cpu_s: s.cpu_s() - cpu0,
        rss: s.rss(),
        rss_per_unit: 0.0,
        p50_ms: pct(50.0),
        p99_ms: pct(99.0),
        late_10s: lat.iter().filter(|l| **l > 10_000_000).count() as u64,
        lost: want.saturating_sub(got),
    }
}

/// 1:1 text: sender i → receiver i, `inflight` requests in flight per sender.
async fn pairs(s: &Server, o: &Opts) -> Result<Sample, String> {
    let rec = Arc::new(Recorder::default());
    let w = world("pairs", o);
    let conns = login_all(s, &w.users, &rec, 20).await?;
    let (cpu0, t0) = (s.cpu_s(), Instant::now());
    let until = t0 + Duration::from_secs_f64(o.secs);
    let max = (o.max_msgs / o.pairs.max(1) as u64).max(1);
    let mut tasks = Vec::new();
    for (i, c) in conns.iter().take(o.pairs).enumerate() {
        let c = c.clone();
        let (me, to) = (w.users[i].clone(), w.users[o.pairs + i].clone());
        let fields = move || {
            format!(
                "{},\"target_id\":\"{to}\",\"appkey\":\"{}\"",
                client::content("single", &to, &me),
                client::APPKEY
            )
        };
        tasks.push(tokio::spawn(pump(
            c,
            "s_across_single_text",
            fields,
            o.inflight,
            until,
            max,
            o.rate / o.pairs.max(1) as f64,
        )));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap_or(0);
    }
    let t1 = settle(&rec, sent).await;
    let out = finish(s, &rec, sent, t0, t1, cpu0);
    close_all(&conns);
    Ok(out)
}

/// One sender, `inflight` group messages in flight, every other member online.
async fn fanout(s: &Server, o: &Opts, room: bool) -> Result<Sample, String> {
    let rec = Arc::new(Recorder::default());
    let w = world(if room { "room" } else { "group" }, o);
    let conns = login_all(s, &w.users, &rec, 20).await?;
    if room {
        for c in &conns {
            c.call("join_room", &format!("\"id\":{ROOM}")).await?;
        }
    }
    let (cpu0, t0) = (s.cpu_s(), Instant::now());
    let until = t0 + Duration::from_secs_f64(o.secs);
    let me = w.users[0].clone();
    let (event, ty, id) = if room {
        ("send_room_msg", "chatroom", ROOM)
    } else {
        ("send_group_msg", "group", GID)
    };
    let fields = move || {
        format!(
            "{},\"target_gid\":\"{id}\",\"appkey\":\"{}\"",
            client::content(ty, &id.to_string(), &me),
            client::APPKEY
        )
    };
    let max = (o.max_msgs / w.users.len().max(1) as u64).max(1);
    let sent = pump(
        conns[0].clone(),
        event,
        fields,
        o.inflight.min(4),
        until,
        max,
        0.0,
    )
    .await;
    let want = sent * (w.users.len() as u64 - 1);
    let t1 = settle(&rec, want).await;
    let out = finish(s, &rec, want, t0, t1, cpu0);
    close_all(&conns);
    Ok(out)
}

/// Login storm: `logins` users, `login_concurrency` in flight at a time (a new login
/// starts as soon as one finishes): connect, c_init, login, sync_check, close, with the
/// lean client ([`super::lean`]).
async fn logins(s: &Server, o: &Opts) -> Result<Sample, String> {
    let rec = Arc::new(Recorder::default());
    let w = world("login", o);
    let window = Arc::new(Semaphore::new(o.login_concurrency.max(1)));
    let (cpu0, t0) = (s.cpu_s(), Instant::now());
    let mut tasks = Vec::with_capacity(w.users.len());
    for name in w.users {
        let Ok(permit) = window.clone().acquire_owned().await else {
            break;
        };
        let port = s.port;
        tasks.push(tokio::spawn(async move {
            let c = lean::login(port, &name).await;
            drop(permit);
            // Closing is not part of the window (as with the previous client).
            c.map(|c| tokio::spawn(c.close()))
        }));
    }
    let mut done = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => done += 1,
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(e.to_string()),
        }
    }
    let t1 = Instant::now();
    let mut out = finish(s, &rec, 0, t0, t1, cpu0);
    out.units = done;
    Ok(out)
}

/// `idle` logged-in connections held; resident memory added per connection.
async fn idle(s: &Server, o: &Opts) -> Result<Sample, String> {
    let rec = Arc::new(Recorder::default());
    let w = world("idle", o);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss0, cpu0, t0) = (s.rss(), s.cpu_s(), Instant::now());
    let conns = login_all(s, &w.users, &rec, 50).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t1 = Instant::now();
    let mut out = finish(s, &rec, 0, t0, t1, cpu0);
    out.units = conns.len() as u64;
    out.rss_per_unit = out.rss.saturating_sub(rss0) as f64 / conns.len().max(1) as f64;
    close_all(&conns);
    Ok(out)
}

fn close_all(conns: &[Arc<Conn>]) {
    for c in conns {
        c.close();
    }
}

async fn run_one(case: &str, kind: Kind, o: &Opts) -> Result<Sample, String> {
    if kind == Kind::Echo && case != "pairs" {
        return Err("n/a".into());
    }
    let s = servers::start(kind, &world(case, o)).await?;
    let r = match case {
        "pairs" => pairs(&s, o).await,
        "group" => fanout(&s, o, false).await,
        "room" => fanout(&s, o, true).await,
        "login" => logins(&s, o).await,
        "idle" => idle(&s, o).await,
        "history" => super::history::run(&s, o).await,
        other => Err(format!("unknown case {other}")),
    };
    s.stop().await;
    r
}

/// Runs every case, alternating the servers within each round, and prints the table.
pub async fn run_all(o: &Opts) {
    println!("load: {:?}", o);
    for case in &o.cases {
        let mut samples: Vec<(Kind, Vec<Sample>)> =
            o.servers.iter().map(|k| (*k, vec![])).collect();
        for round in 0..o.rounds {
            for (kind, got) in samples.iter_mut() {
                match run_one(case, *kind, o).await {
                    Ok(s) => {
                        eprintln!("  {case} round {round} {}: {s:?}", kind.label());
                        got.push(s);
                    }
                    Err(e) if e == "n/a" => {}
                    Err(e) => eprintln!("  {case} round {round} {}: error: {e}", kind.label()),
                }
            }
        }
        super::table::print(case, o, &samples);
    }
}
