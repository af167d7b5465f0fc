//! The Markdown table: medians over the rounds, one row per server, then ratios.

use super::cases::Sample;
use super::servers::Kind;
use super::Opts;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() - 1) / 2]
}

/// Medians of one server's samples.
#[derive(Default, Clone, Copy)]
struct Row {
    rate: f64,
    cpu_us: f64,
    cores: f64,
    p50: f64,
    p99: f64,
    late: f64,
    lost: f64,
    rss_mb: f64,
    per_unit_kib: f64,
}

fn row(s: &[Sample]) -> Row {
    let m = |f: &dyn Fn(&Sample) -> f64| median(s.iter().map(f).collect());
    Row {
        rate: m(&|x| x.units as f64 / x.secs.max(1e-9)),
        cpu_us: m(&|x| x.cpu_s * 1e6 / (x.units.max(1) as f64)),
        cores: m(&|x| x.cpu_s / x.secs.max(1e-9)),
        p50: m(&|x| x.p50_ms),
        p99: m(&|x| x.p99_ms),
        late: m(&|x| x.late_10s as f64),
        lost: m(&|x| x.lost as f64),
        rss_mb: m(&|x| x.rss as f64 / 1048576.0),
        per_unit_kib: m(&|x| x.rss_per_unit / 1024.0),
    }
}

fn unit(case: &str) -> &'static str {
    match case {
        "login" => "login",
        "idle" => "connection",
        "group" | "room" => "delivery",
        _ => "delivered text",
    }
}

/// Prints the case's table (medians over the rounds) and the ratios to the others.
pub fn print(case: &str, o: &Opts, samples: &[(Kind, Vec<Sample>)]) {
    let u = unit(case);
    println!();
    println!(
        "### {case} ({} rounds, medians)  {}",
        o.rounds,
        describe(case, o)
    );
    println!();
    println!("| server | {u}s/s | server CPU µs per {u} | cores | p50 ms | p99 ms | later than 10 s | lost | RSS MB | RSS KiB per {u} |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let rows: Vec<(Kind, Row)> = samples
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(k, s)| (*k, row(s)))
        .collect();
    for (k, r) in &rows {
        println!(
            "| {} | {:.0} | {:.1} | {:.2} | {:.1} | {:.1} | {:.0} | {:.0} | {:.1} | {:.1} |",
            k.label(),
            r.rate,
            r.cpu_us,
            r.cores,
            r.p50,
            r.p99,
            r.late,
            r.lost,
            r.rss_mb,
            r.per_unit_kib
        );
    }
    let get = |k: Kind| rows.iter().find(|(x, _)| *x == k).map(|(_, r)| *r);
    if let Some(ours) = get(Kind::Ours) {
        for other in [Kind::Before, Kind::Node, Kind::Echo] {
            if let Some(b) = get(other) {
                let q = |a: f64, b: f64| a / b.max(1e-9);
                println!(
                    "| ratio ours / {} | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x | | | {:.2}x | {:.2}x |",
                    other.label(),
                    q(ours.rate, b.rate),
                    q(ours.cpu_us, b.cpu_us),
                    q(ours.cores, b.cores),
                    q(ours.p50, b.p50),
                    q(ours.p99, b.p99),
                    q(ours.rss_mb, b.rss_mb),
                    q(ours.per_unit_kib, b.per_unit_kib),
                );
            }
        }
    }
}

fn describe(case: &str, o: &Opts) -> String {
    match case {
        "pairs" if o.rate > 0.0 => format!(
            "{} pairs, {} texts/s offered, at most {} in flight per sender, {} s",
            o.pairs, o.rate, o.inflight, o.secs
        ),
        "pairs" => format!(
            "{} pairs, {} in flight per sender, {} s",
            o.pairs, o.inflight, o.secs
        ),
        "group" => format!(
            "group of {} online, 1 sender, 4 in flight, {} s",
            o.group, o.secs
        ),
        "room" => format!(
            "room of {} members, 1 sender, 4 in flight, {} s",
            o.room, o.secs
        ),
        "login" => format!("{} logins, {} at a time", o.logins, o.login_concurrency),
        "idle" => format!("{} logged-in idle connections", o.idle),
        "history" => format!(
            "{} messages, {} pairs, {} in flight",
            o.history_msgs, o.pairs, o.inflight
        ),
        _ => String::new(),
    }
}
