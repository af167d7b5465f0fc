//! Shared helpers of the bench binaries (`harness = false`).
//!
//! Every bench runs in one of two modes:
//! * `cargo bench` passes `--bench`: the full measurement, bounded in time;
//! * anything else (`cargo test --all-targets` runs bench targets without `--bench`):
//!   a tiny smoke iteration, so the test suite stays fast but still executes the code.
//!
//! Results are printed as ratios against a baseline measured in the same run, never as
//! absolute thresholds: the machine is shared and its speed varies.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// True under `cargo bench` (which passes `--bench`), false under `cargo test`.
pub fn full_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Runs `f` in batches until `budget` is spent; returns nanoseconds per call.
pub fn ns_per_iter(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up and size a batch to roughly 1 ms.
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_millis(1) || n == 0 {
        f();
        n += 1;
    }
    let batch = n.max(1);
    let start = Instant::now();
    let mut total = 0u64;
    while start.elapsed() < budget {
        for _ in 0..batch {
            f();
        }
        total += batch;
    }
    start.elapsed().as_nanos() as f64 / total.max(1) as f64
}

/// Median of a sample (0 when empty).
pub fn median(v: &mut [f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile of a sample (0 when empty).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Measures `baseline` and `subject` in alternating rounds (so drift on a shared
/// machine hits both alike) and prints the median ns/op of each and their ratio.
/// Returns `subject / baseline`.
pub fn compare(
    name: &str,
    rounds: usize,
    budget: Duration,
    mut baseline: impl FnMut(),
    mut subject: impl FnMut(),
) -> f64 {
    let (mut b, mut s) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        b.push(ns_per_iter(budget, &mut baseline));
        s.push(ns_per_iter(budget, &mut subject));
    }
    let (b, s) = (median(&mut b), median(&mut s));
    let ratio = s / b.max(f64::MIN_POSITIVE);
    println!("{name:<46} baseline {b:>10.0} ns/op   ours {s:>10.0} ns/op   ratio {ratio:>6.2}x");
    ratio
}
