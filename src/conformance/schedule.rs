//! The order cases start in: longest first. With `--jobs N`, a long case that starts last
//! runs alone while the other jobs sit idle (the 220 s `sync_check` case takes seconds
//! even scaled); starting the longest cases first lets the jobs finish close together
//! (longest-processing-time order). Reports keep the catalogue's order whatever the
//! start order; only the progress lines come in another order.
//!
//! A case's length is estimated from its file, before it runs: the waits its steps name
//! (`settle`, `advance_timers`, `wait_ms`, `no_push`, `expect_closed`, a `call` that
//! expects `onTimeout`), in client time multiplied by `time_scale`, plus the real time
//! of its fault delays and restarts, plus a small cost per step. It only orders cases;
//! nothing is cut short by it.

use crate::faults::{ActionSpec, DelayDist, DelaySpec};
use crate::scenario::model::CallExpect;
use crate::scenario::{Scenario, Step};

/// What a step without a wait costs, ms (a settle window and a round trip).
const STEP_MS: f64 = 20.0;

/// The SDK gives up a never-answered request after at most five 30 s response timers.
const TIMEOUT_CAP_MS: u64 = 150_000;

/// The estimated wall time of a case, ms.
pub fn estimated_ms(sc: &Scenario) -> u64 {
    let scale = if sc.time_scale.is_finite() && sc.time_scale > 0.0 {
        sc.time_scale
    } else {
        1.0
    };
    let client_ms: u64 = sc.steps.iter().map(step_wait_ms).sum();
    let fault_ms: u64 = sc.fault_specs.iter().map(|f| fault_ms(&f.action)).sum();
    let total = client_ms as f64 * scale + fault_ms as f64 + STEP_MS * sc.steps.len() as f64;
    total.min(u64::MAX as f64) as u64
}

/// The client time a step waits, ms (0 for a step that only waits for an answer).
fn step_wait_ms(step: &Step) -> u64 {
    match step {
        Step::Settle(s) => s.ms,
        Step::AdvanceTimers(ms) | Step::WaitMs(ms) => *ms,
        Step::NoPush { within_ms, .. } | Step::ExpectClosed { within_ms, .. } => *within_ms,
        Step::Call {
            expect: Some(CallExpect::Timeout),
            within_ms,
            ..
        } => (*within_ms).min(TIMEOUT_CAP_MS),
        _ => 0,
    }
}

/// The real time a fault rule holds frames back, ms (its longest delay, a restart's
/// down time).
fn fault_ms(action: &ActionSpec) -> u64 {
    match action {
        ActionSpec::Delay(DelaySpec::Fixed(ms) | DelaySpec::Dist(DelayDist::Fixed(ms))) => *ms,
        ActionSpec::Delay(DelaySpec::Dist(DelayDist::Uniform([_, hi]))) => *hi,
        ActionSpec::Delay(DelaySpec::Dist(DelayDist::Lognormal { median, .. })) => *median,
        ActionSpec::Restart { down_ms } => *down_ms,
        _ => 0,
    }
}

/// The indices of `costs` in start order: the most expensive first, ties in their
/// original order.
pub fn longest_first(costs: &[u64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|a, b| costs[*b].cmp(&costs[*a]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(yaml: &str) -> Scenario {
        crate::scenario::parse(yaml, "case.yaml").expect("valid scenario")
    }

    #[test]
    fn scaled_waits_and_fault_delays_count() {
        let quick = scenario(
            "name: quick\nsteps:\n  - {create: {client: a}}\n  - {listen: {client: a, listener: onMsgReceive}}\n",
        );
        assert_eq!(estimated_ms(&quick), 40);
        let settle = scenario(
            "name: long\ntime_scale: 0.02\nsteps:\n  - {create: {client: a}}\n  - {settle: {ms: 220000}}\n",
        );
        assert_eq!(estimated_ms(&settle), 4400 + 40);
        let delayed = scenario(
            "name: delayed\nfaults:\n  - {id: d, action: {delay: 2000}}\nsteps:\n  - {create: {client: a}}\n",
        );
        assert_eq!(estimated_ms(&delayed), 2000 + 20);
        let timeout = scenario(
            "name: t\ntime_scale: 0.02\nsteps:\n  - {create: {client: a}}\n  - {call: {client: a, method: getUserInfo, args: [{username: b}], expect: timeout, within_ms: 600000}}\n",
        );
        assert_eq!(estimated_ms(&timeout), 3000 + 40);
    }

    #[test]
    fn longest_first_keeps_ties_in_order() {
        assert_eq!(longest_first(&[5, 40, 5, 4400, 40]), vec![3, 1, 4, 0, 2]);
        assert!(longest_first(&[]).is_empty());
    }
}
