//! `expect_listener` with `count`: exactly N deliveries of a listener, never one more.
//!
//! The step first waits (within its `within_ms`) for `count` deliveries whose first
//! argument contains `fields`, then waits [`QUIET`] of real time for one more: a further
//! matching delivery fails the step ("delivered 2 times, expected 1"). A listener called
//! twice for one push makes both calls at once, so a short window catches it; a later,
//! legitimate delivery (a re-sync after a reconnect) is outside what the step claims.

use super::under_test::ClientUnderTest;
use serde_json::Value;
use std::num::NonZeroU32;
use std::time::Duration;

/// Real time an `expect_listener` with `count` waits for a delivery too many.
pub const QUIET: Duration = Duration::from_millis(300);

/// One `expect_listener` step: the matching deliveries (one when `count` is absent).
pub async fn expect_listener(
    under: &mut impl ClientUnderTest,
    (client, listener): (&str, &str),
    fields: &Option<Value>,
    within: Duration,
    count: Option<NonZeroU32>,
) -> Result<Vec<Value>, String> {
    let want = count.map_or(1, NonZeroU32::get);
    let mut got = Vec::new();
    for _ in 0..want {
        match under
            .expect_listener(client, listener, fields, within)
            .await
        {
            Ok(v) => got.push(v),
            Err(e) if got.is_empty() => return Err(e),
            Err(e) => return Err(format!("{e} (delivered {} of {want})", got.len())),
        }
    }
    if count.is_none() {
        return Ok(got);
    }
    match under.expect_listener(client, listener, fields, QUIET).await {
        Err(_) => Ok(got),
        Ok(v) => Err(format!(
            "{listener} delivered {} times, expected {want}; the one too many: {v}",
            want + 1
        )),
    }
}
