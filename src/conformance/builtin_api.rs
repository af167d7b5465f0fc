//! The builtin client as the client under test: the portable steps (`create`, `call`,
//! `listen`, `expect_listener`) run on the SDK facade over the reference client
//! (`client::sdk`), in process. A subprocess driver's counterpart is
//! [`Portable`](super::portable::Portable); both implement
//! [`ClientUnderTest`](super::under_test::ClientUnderTest).

use super::builtin::scaled;
use super::portable::Seen;
use super::subset;
use super::under_test::{first_match, no_delivery, ClientUnderTest};
use crate::scenario::model::CallExpect;
use crate::server::RunningServer;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// The builtin client's public API: the SDK facade over the reference client.
#[derive(Default)]
pub struct BuiltinApi {
    instances: HashMap<String, crate::client::sdk::SdkInstance>,
    buffers: HashMap<(String, String), VecDeque<Value>>,
    pub scale: f64,
}

impl BuiltinApi {
    /// The builtin SDK facade's own waits (login's 500 ms, the delayed offline-sync
    /// listeners) run 100 times faster than the SDK's under the runner, on top of
    /// `time_scale`: they order nothing against the wire that a settle point does not
    /// already order, and at full length they were most of a catalogue run's time.
    pub const SDK_WAITS: f64 = 0.01;

    pub fn new(scale: f64) -> Self {
        Self {
            scale,
            ..Self::default()
        }
    }

    /// Requests of every instance still waiting for their response.
    pub fn awaiting_responses(&self) -> usize {
        self.instances
            .values()
            .map(|i| i.awaiting_responses())
            .sum()
    }

    fn get(&self, client: &str) -> Result<&crate::client::sdk::SdkInstance, String> {
        self.instances
            .get(client)
            .ok_or_else(|| format!("no instance {client}"))
    }
}

// Deliberately repeated: the signatures are the trait's (`under_test.rs`).
impl ClientUnderTest for BuiltinApi {
    async fn create(&mut self, client: &str, server: &RunningServer) -> Result<(), String> {
        let (base, upload) = (server.http_url(), server.upload_url());
        let config = crate::client::ClientConfig {
            ack_timeout: Duration::from_secs_f64(5.0 * self.scale),
            response_timeout: Some(Duration::from_secs_f64(30.0 * self.scale)),
            connect_timeout: Duration::from_secs(10),
            mutant: crate::client::mutants::active(),
            sdk_waits: Self::SDK_WAITS * self.scale.min(1.0),
            ..crate::client::ClientConfig::default()
        };
        let i = crate::client::sdk::SdkInstance::connect(&base, &upload, config)
            .await
            .map_err(|e| e.to_string())?;
        self.instances.insert(client.to_owned(), i);
        Ok(())
    }

    async fn call(
        &mut self,
        client: &str,
        method: &str,
        args: Value,
        expect: &Option<CallExpect>,
        within: Duration,
    ) -> Result<Seen, String> {
        use crate::client::sdk::SdkCall;
        let args: Vec<Value> = match args {
            Value::Array(a) => a,
            other => vec![other],
        };
        let i = self.get(client)?;
        let outcome = tokio::time::timeout(within, i.call(method, &args))
            .await
            .map_err(|_| format!("no callback from {method} within {within:?}"))?;
        let want = expect.clone().unwrap_or(CallExpect::Success(None));
        let outcome = match (outcome, &want) {
            (Err(crate::client::sdk::SdkError::Closed), CallExpect::Closed) => {
                return Ok(("closed".into(), Value::Null))
            }
            (r, _) => r.map_err(|e| e.to_string())?,
        };
        match (&want, outcome) {
            (CallExpect::Thrown, SdkCall::Thrown(t)) => Ok(("thrown".into(), json!(t))),
            (_, SdkCall::Thrown(t)) => Err(format!("{method} threw {t}")),
            (CallExpect::Returned(v), SdkCall::Returned(r)) if subset(v, &r) => {
                Ok(("returned".into(), r))
            }
            (_, SdkCall::Returned(r)) => Err(format!("{method} returned {r}, expected {want:?}")),
            (_, SdkCall::Ignored(why)) => Err(format!(
                "{method} sent nothing and called nothing back: {why}"
            )),
            (_, SdkCall::Callbacks(c)) => {
                let first = |v: &Option<Vec<Value>>| {
                    v.as_ref()
                        .and_then(|a| a.first().cloned())
                        .unwrap_or(Value::Null)
                };
                let success = ("onSuccess".to_owned(), first(&c.success));
                match (&want, &c.success, &c.fail, &c.timeout) {
                    (CallExpect::Success(None), Some(_), _, _) => Ok(success),
                    (CallExpect::Success(Some(f)), Some(_), _, _) if subset(f, &success.1) => {
                        Ok(success)
                    }
                    (CallExpect::Fail(code), _, Some(d), _)
                        if d.get("code").and_then(Value::as_i64) == Some(*code) =>
                    {
                        Ok(("onFail".into(), d.clone()))
                    }
                    (CallExpect::Timeout, _, _, Some(t)) => Ok(("onTimeout".into(), t.clone())),
                    _ => Err(format!(
                        "expected {want:?}, got success={} fail={} timeout={}",
                        first(&c.success),
                        c.fail.clone().unwrap_or(Value::Null),
                        c.timeout.clone().unwrap_or(Value::Null)
                    )),
                }
            }
        }
    }

    async fn listen(&mut self, client: &str, listener: &str) -> Result<(), String> {
        self.get(client)?.listen(listener);
        Ok(())
    }

    async fn expect_listener(
        &mut self,
        client: &str,
        listener: &str,
        fields: &Option<Value>,
        within: Duration,
    ) -> Result<Value, String> {
        let key = (client.to_owned(), listener.to_owned());
        let deadline = Instant::now() + within;
        loop {
            if let Some(arg) = first_match(self.buffers.get_mut(&key), fields, |a| a) {
                return Ok(arg);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let delivery = match self.get(client) {
                Ok(i) if !left.is_zero() => i.next_delivery(left).await,
                Ok(_) => None,
                Err(e) => return Err(e),
            };
            match delivery {
                Some(d) => self
                    .buffers
                    .entry((client.to_owned(), d.listener))
                    .or_default()
                    .push_back(d.arg),
                None => return Err(no_delivery(listener, fields, within)),
            }
        }
    }

    async fn advance_timers(&mut self, ms: u64) -> Result<String, String> {
        // The builtin client's timers are scaled by time_scale instead.
        tokio::time::sleep(scaled(ms, self.scale)).await;
        Ok("builtin: waited the scaled time".into())
    }

    async fn settle(&mut self, ms: u64) -> Result<String, String> {
        tokio::time::sleep(scaled(ms, self.scale)).await;
        Ok(String::new())
    }

    fn is_driver(&self) -> bool {
        false
    }
}
