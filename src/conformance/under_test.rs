//! The client under test: what the portable steps (`create`, `call`, `listen`,
//! `expect_listener`, `advance_timers`, `settle`) ask of a client, as one trait. The
//! builtin client ([`BuiltinApi`], the SDK facade in process) and a subprocess driver
//! ([`Portable`], docs/driver-protocol.md) implement it, and [`UnderTest`] is whichever
//! one a run drives, so the runner (`builtin::run_steps`) has one path for every client.

use super::builtin_api::BuiltinApi;
use super::portable::{Portable, Seen};
use super::subset;
use crate::scenario::model::CallExpect;
use crate::server::RunningServer;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::Duration;

/// A client driven through the Web SDK's public API. Failures are the step's detail text
/// (a step's verdict is the text, callers do not branch on the kind).
// Used with static dispatch only (`UnderTest`), so callers see the concrete futures and
// their `Send`; no boxed, `Send`-bounded futures are needed.
#[allow(async_fn_in_trait)]
pub trait ClientUnderTest {
    /// Opens the SDK instance `client` against `server`.
    async fn create(&mut self, client: &str, server: &RunningServer) -> Result<(), String>;

    /// Calls `method` on `client` and waits (at most `within`) for what `expect` names.
    async fn call(
        &mut self,
        client: &str,
        method: &str,
        args: Value,
        expect: &Option<CallExpect>,
        within: Duration,
    ) -> Result<Seen, String>;

    /// Registers `listener` on `client`.
    async fn listen(&mut self, client: &str, listener: &str) -> Result<(), String>;

    /// Waits (at most `within`) for a `listener` delivery whose first argument contains
    /// `fields`, and returns that argument.
    async fn expect_listener(
        &mut self,
        client: &str,
        listener: &str,
        fields: &Option<Value>,
        within: Duration,
    ) -> Result<Value, String>;

    /// Moves the client's timers `ms` forward (`advance_timers`).
    async fn advance_timers(&mut self, ms: u64) -> Result<String, String>;

    /// Lets `ms` of the client's time pass (`settle`).
    async fn settle(&mut self, ms: u64) -> Result<String, String>;

    /// Whether the client runs in another process (its confirmations come later).
    fn is_driver(&self) -> bool;
}

/// Takes buffered deliveries until one (as `pick` reads it) contains `fields`.
pub(super) fn first_match(
    queue: Option<&mut VecDeque<Value>>,
    fields: &Option<Value>,
    pick: impl Fn(Value) -> Value,
) -> Option<Value> {
    let q = queue?;
    while let Some(delivery) = q.pop_front() {
        let arg = pick(delivery);
        if fields.as_ref().is_none_or(|f| subset(f, &arg)) {
            return Some(arg);
        }
    }
    None
}

/// The failure of an `expect_listener` step that saw no matching delivery.
pub(super) fn no_delivery(listener: &str, fields: &Option<Value>, within: Duration) -> String {
    let containing = fields
        .as_ref()
        .map(|f| format!(" containing {f}"))
        .unwrap_or_default();
    format!("no {listener} delivery{containing} within {within:?}")
}

// Deliberately repeated: `UnderTest` spells out the trait's signatures and forwards to
// the client it holds; the trait has async fns (not object safe), so it dispatches by
// hand. `BuiltinApi` implements the trait in builtin_api.rs, `Portable` in portable.rs.
/// The client a run drives: the builtin one, or a driver the caller owns.
pub enum UnderTest<'a> {
    Builtin(BuiltinApi),
    Driver(&'a mut Portable),
}

impl<'a> UnderTest<'a> {
    /// The driver when there is one, else the builtin client at `time_scale`.
    pub fn new(driver: Option<&'a mut Portable>, time_scale: f64) -> Self {
        match driver {
            Some(p) => UnderTest::Driver(p),
            None => UnderTest::Builtin(BuiltinApi::new(time_scale)),
        }
    }

    /// Requests the client under test still waits a response for, when the runner can
    /// see them: the builtin client's (in process); 0 for a driver, whose requests are in
    /// another process (its settles rely on the quiet window alone).
    pub fn awaiting_responses(&self) -> usize {
        match self {
            UnderTest::Builtin(b) => b.awaiting_responses(),
            UnderTest::Driver(_) => 0,
        }
    }
}

impl ClientUnderTest for UnderTest<'_> {
    async fn create(&mut self, client: &str, server: &RunningServer) -> Result<(), String> {
        match self {
            UnderTest::Builtin(b) => ClientUnderTest::create(b, client, server).await,
            UnderTest::Driver(d) => ClientUnderTest::create(&mut **d, client, server).await,
        }
    }

    async fn call(
        &mut self,
        client: &str,
        method: &str,
        args: Value,
        expect: &Option<CallExpect>,
        within: Duration,
    ) -> Result<Seen, String> {
        match self {
            UnderTest::Builtin(b) => b.call(client, method, args, expect, within).await,
            UnderTest::Driver(d) => d.call(client, method, args, expect, within).await,
        }
    }

    async fn listen(&mut self, client: &str, listener: &str) -> Result<(), String> {
        match self {
            UnderTest::Builtin(b) => b.listen(client, listener).await,
            UnderTest::Driver(d) => d.listen(client, listener).await,
        }
    }

    async fn expect_listener(
        &mut self,
        client: &str,
        listener: &str,
        fields: &Option<Value>,
        within: Duration,
    ) -> Result<Value, String> {
        match self {
            UnderTest::Builtin(b) => b.expect_listener(client, listener, fields, within).await,
            UnderTest::Driver(d) => d.expect_listener(client, listener, fields, within).await,
        }
    }

    async fn advance_timers(&mut self, ms: u64) -> Result<String, String> {
        match self {
            UnderTest::Builtin(b) => b.advance_timers(ms).await,
            UnderTest::Driver(d) => d.advance_timers(ms).await,
        }
    }

    async fn settle(&mut self, ms: u64) -> Result<String, String> {
        match self {
            UnderTest::Builtin(b) => b.settle(ms).await,
            UnderTest::Driver(d) => d.settle(ms).await,
        }
    }

    fn is_driver(&self) -> bool {
        matches!(self, UnderTest::Driver(_))
    }
}
