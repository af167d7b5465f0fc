//! The builtin driver: scenario steps executed with the Rust reference client.

use super::portable::{resolve_auth, Portable};
use super::under_test::{ClientUnderTest, UnderTest};
use super::{redact, subset, Check};
use crate::backend::Clock;
use crate::client::{Client, ClientConfig, Reply, RequestError};
use crate::scenario::{ExpectedReply, Scenario, Step};
use crate::server::RunningServer;
use crate::transport::TransportKind;
use serde_json::{json, Value};

fn verdict<T: Into<String>>(r: Result<T, String>) -> (bool, String) {
    match r {
        Ok(d) => (true, d.into()),
        Err(e) => (false, e),
    }
}
use std::collections::HashMap;
use std::time::Duration;

/// A reference client opened by a `connect` step, and who it logged in as.
struct WireClient {
    client: Client,
    username: Option<String>,
}

/// `ms` of client time in wall time under `time_scale`.
pub(super) fn scaled(ms: u64, scale: f64) -> Duration {
    Duration::from_secs_f64(ms as f64 * scale / 1000.0)
}

fn client_config(transport: TransportKind, scale: f64) -> ClientConfig {
    ClientConfig {
        transport,
        ack_timeout: scaled(5_000, scale),
        response_timeout: Some(scaled(30_000, scale)),
        connect_timeout: Duration::from_secs(10),
        mutant: crate::client::mutants::active(),
        ..ClientConfig::default()
    }
}

/// What a request produced, compared with what the step expects (default: code 0).
fn judge(result: &Result<Reply, RequestError>, expect: &Option<ExpectedReply>) -> (bool, String) {
    let want = expect.clone().unwrap_or(ExpectedReply::Code(0));
    let got = match result {
        Ok(r) => ExpectedReply::Code(r.code()),
        Err(RequestError::AckTimeout { .. }) => ExpectedReply::AckTimeout,
        Err(RequestError::ResponseTimeout { .. }) => ExpectedReply::ResponseTimeout,
        Err(RequestError::Failed(b)) => {
            ExpectedReply::Code(b.get("code").and_then(|c| c.as_i64()).unwrap_or(-1))
        }
        Err(RequestError::Closed) => ExpectedReply::Closed,
    };
    let sends = match result {
        Ok(r) => r.sends,
        Err(
            RequestError::AckTimeout { sends, .. } | RequestError::ResponseTimeout { sends, .. },
        ) => *sends,
        _ => 0,
    };
    (
        got == want,
        format!("expected {want:?}, got {got:?} after {sends} send(s)"),
    )
}

/// Runs every step; stops at the first failing one. Wire-level steps (`connect`,
/// `init`, `request`, ...) use reference clients; portable steps (`create`, `call`, ...)
/// go to `portable`, the driver of the client under test.
pub async fn run_steps(
    server: &RunningServer,
    sc: &Scenario,
    portable: Option<&mut Portable>,
    transcript: &mut Vec<String>,
    red: &mut redact::Redactor,
) -> Vec<Check> {
    let scale = sc.time_scale;
    let mut checks = Vec::new();
    let mut auth_n = 0u64;
    let mut under = UnderTest::new(portable, scale);
    let mut wire = super::settle::WireWatch::for_client(under.is_driver());
    let first_app = sc
        .seeds
        .apps
        .first()
        .map(|a| a.appkey.clone())
        .unwrap_or_default();
    let mut net = Wire {
        server,
        sc,
        clients: HashMap::new(),
        first_app,
    };
    for (i, step) in sc.steps.iter().enumerate() {
        // Faults with a step window are on exactly inside it.
        let n = i as u32 + 1;
        for f in &sc.fault_specs {
            if let Some([from, to]) = f.steps {
                let _ = server.faults.set_enabled(&f.id, from <= n && n <= to);
            }
        }
        let what = format!("step {} {}", i + 1, step_name(step));
        let strict = match step {
            Step::Call { strict, .. } | Step::ExpectListener { strict, .. } => *strict,
            _ => true,
        };
        let (ok, detail) = match step {
            Step::Create { .. }
            | Step::Call { .. }
            | Step::Listen { .. }
            | Step::ExpectListener { .. }
            | Step::AdvanceTimers(_)
            | Step::Settle(_) => {
                let mut out = Out { transcript, red };
                portable_step(&mut under, server, sc, step, &mut auth_n, &mut out).await
            }
            _ => net.step(step, &mut Out { transcript, red }).await,
        };
        checks.push(Check {
            what,
            ok,
            detail,
            strict,
        });
        // A tolerated (non-strict) failure does not stop the run.
        if !ok && strict {
            break;
        }
        // What the step set off lands before the next step starts (see `settle`).
        wire.settle(server, || busy(&under, &net)).await;
    }
    // Before the clients close, a longer quiet window, so that fire-and-forget
    // confirmations and late pushes land in the transcript.
    let faults = !sc.fault_specs.is_empty();
    wire.window =
        super::settle::final_window(under.is_driver(), sc.time_scale, faults, wire.window);
    wire.settle(server, || busy(&under, &net)).await;
    for s in net.clients.values() {
        s.client.drop_connection();
    }
    checks
}

/// Whether an in-process client (the builtin client under test, a reference client of
/// a `connect` step) still waits for a response: a settle does not end then.
fn busy(under: &UnderTest<'_>, net: &Wire<'_>) -> bool {
    under.awaiting_responses() > 0
        || net
            .clients
            .values()
            .any(|c| c.client.awaiting_responses() > 0)
}

fn step_name(s: &Step) -> String {
    match s {
        Step::Connect { client, .. } => format!("connect {client}"),
        Step::Init { client, .. } => format!("init {client}"),
        Step::Register {
            client, username, ..
        } => format!("register {client} as {username}"),
        Step::Login {
            client, username, ..
        } => format!("login {client} as {username}"),
        Step::SendText { client, to, .. } => format!("send_text {client} -> {to}"),
        Step::Request { client, event, .. } => format!("request {client} {event}"),
        Step::ExpectPush { client, event, .. } => format!("expect_push {client} {event}"),
        Step::NoPush { client, event, .. } => format!("no_push {client} {event}"),
        Step::Disconnect { client, abrupt } => format!(
            "disconnect {client}{}",
            if *abrupt { " (abrupt)" } else { "" }
        ),
        Step::ExpectClosed { client, .. } => format!("expect_closed {client}"),
        Step::AdvanceClock(ms) => format!("advance_clock {ms}"),
        Step::WaitMs(ms) => format!("wait_ms {ms}"),
        Step::FaultOn(id) => format!("fault_on {id}"),
        Step::FaultOff(id) => format!("fault_off {id}"),
        Step::Create { client } => format!("create {client}"),
        Step::Call { client, method, .. } => format!("call {client}.{method}"),
        Step::Listen { client, listener } => format!("listen {client}.{listener}"),
        Step::ExpectListener {
            client, listener, ..
        } => format!("expect_listener {client}.{listener}"),
        Step::AdvanceTimers(ms) => format!("advance_timers {ms}"),
        Step::Settle(st) => format!("settle {} ms", st.ms),
        Step::AsDevice {
            user,
            platform,
            event,
            ..
        } => format!("as_device {user}/{platform} {event}"),
    }
}

/// Where a step's transcript lines go.
struct Out<'a> {
    transcript: &'a mut Vec<String>,
    red: &'a mut redact::Redactor,
}

/// A portable step (`create`, `call`, `listen`, `expect_listener`, `advance_timers`,
/// `settle`), run on the client under test whichever it is.
async fn portable_step(
    under: &mut UnderTest<'_>,
    server: &RunningServer,
    sc: &Scenario,
    step: &Step,
    auth_n: &mut u64,
    out: &mut Out<'_>,
) -> (bool, String) {
    let scale = sc.time_scale;
    match step {
        Step::Create { client } => {
            verdict(under.create(client, server).await.map(|()| String::new()))
        }
        Step::Call {
            client,
            method,
            args,
            expect,
            within_ms,
            ..
        } => {
            let args = resolve_auth(
                sc,
                &Value::Array(args.clone()),
                server.clock.now_ms(),
                auth_n,
            );
            let within = scaled(*within_ms, scale).max(Duration::from_millis(200));
            let r = under.call(client, method, args, expect, within).await;
            if let Ok((name, data)) = &r {
                out.transcript.push(format!(
                    "call {client}.{method} -> {name} {}",
                    redact::redact(data, out.red)
                ));
            }
            verdict(r.map(|_| String::new()))
        }
        Step::Listen { client, listener } => {
            verdict(under.listen(client, listener).await.map(|()| String::new()))
        }
        Step::ExpectListener {
            client,
            listener,
            fields,
            within_ms,
            count,
            ..
        } => {
            let within = scaled(*within_ms, scale).max(Duration::from_millis(200));
            let who = (client.as_str(), listener.as_str());
            let r = super::exactly::expect_listener(under, who, fields, within, *count).await;
            for arg in r.iter().flatten() {
                out.transcript.push(format!(
                    "listener {client}.{listener} <- {}",
                    redact::redact(arg, out.red)
                ));
            }
            verdict(r.map(|_| String::new()))
        }
        Step::AdvanceTimers(ms) => verdict(under.advance_timers(*ms).await),
        Step::Settle(st) => verdict(under.settle(st.ms).await),
        _ => (false, "not a portable step".into()),
    }
}

/// The wire-level side of a run: the reference clients of `connect` steps and the server.
struct Wire<'a> {
    server: &'a RunningServer,
    sc: &'a Scenario,
    clients: HashMap<String, WireClient>,
    first_app: String,
}

impl Wire<'_> {
    fn secret_of(&self, appkey: &str) -> Option<String> {
        self.sc
            .seeds
            .apps
            .iter()
            .find(|a| a.appkey == appkey)
            .map(|a| a.secret.clone())
    }

    /// A wire-level step, by kind.
    async fn step(&mut self, step: &Step, out: &mut Out<'_>) -> (bool, String) {
        match step {
            Step::Connect { .. }
            | Step::Disconnect { .. }
            | Step::ExpectClosed { .. }
            | Step::Init { .. }
            | Step::Register { .. }
            | Step::Login { .. } => self.session_step(step).await,
            Step::ExpectPush { .. } | Step::NoPush { .. } => self.push_step(step).await,
            _ => self.server_step(step, out).await,
        }
    }

    /// Opening, authenticating and closing reference clients.
    async fn session_step(&mut self, step: &Step) -> (bool, String) {
        let scale = self.sc.time_scale;
        match step {
            Step::Connect {
                client,
                transport,
                refused,
            } => {
                let mut cfg = client_config(*transport, scale);
                if *refused {
                    cfg.connect_timeout = Duration::from_secs(2);
                }
                match (Client::connect(&self.server.http_url(), cfg).await, refused) {
                    (Ok(c), false) => {
                        self.clients.insert(
                            client.clone(),
                            WireClient {
                                client: c,
                                username: None,
                            },
                        );
                        (true, String::new())
                    }
                    (Err(e), false) => (false, format!("connect failed: {e}")),
                    (Err(e), true) => (true, format!("refused as expected: {e}")),
                    (Ok(_), true) => (
                        false,
                        "connected, but the handshake should have been refused".into(),
                    ),
                }
            }
            Step::Disconnect { client, abrupt } => match self.clients.get(client) {
                Some(s) => {
                    if *abrupt {
                        s.client.drop_connection();
                    } else {
                        s.client.disconnect();
                    }
                    (true, String::new())
                }
                None => (false, format!("no client {client}")),
            },
            Step::ExpectClosed { client, within_ms } => match self.clients.get(client) {
                Some(s) => {
                    match tokio::time::timeout(scaled(*within_ms, scale), s.client.closed()).await {
                        Ok(()) => (true, String::new()),
                        Err(_) => (
                            false,
                            format!("still connected after {within_ms} ms (scaled)"),
                        ),
                    }
                }
                None => (false, format!("no client {client}")),
            },
            Step::Init {
                client,
                appkey,
                flag,
                expect,
            } => {
                let appkey = appkey.clone().unwrap_or_else(|| self.first_app.clone());
                let secret = self.secret_of(&appkey).unwrap_or_default();
                match self.clients.get(client) {
                    Some(s) => judge(
                        &s.client.init(&appkey, &secret, flag.unwrap_or(0)).await,
                        expect,
                    ),
                    None => (false, format!("no client {client}")),
                }
            }
            Step::Register {
                client,
                username,
                password,
                expect,
            } => match self.clients.get(client) {
                Some(s) => judge(&s.client.register(username, password).await, expect),
                None => (false, format!("no client {client}")),
            },
            Step::Login {
                client,
                username,
                password,
                expect,
            } => match self.clients.get_mut(client) {
                Some(s) => {
                    let r = s.client.login(username, password).await;
                    if r.as_ref().is_ok_and(|r| r.code() == 0) {
                        s.username = Some(username.clone());
                    }
                    judge(&r, expect)
                }
                None => (false, format!("no client {client}")),
            },
            _ => (false, "not a session step".into()),
        }
    }

    /// Pushes a reference client must (or must not) receive.
    async fn push_step(&mut self, step: &Step) -> (bool, String) {
        match step {
            Step::ExpectPush {
                client,
                event,
                within_ms,
                fields,
            } => match self.wait_push(client, event, *within_ms).await {
                Err(e) => (false, e),
                Ok(Some(p)) => match fields {
                    Some(f) if !subset(f, &p) => {
                        (false, format!("{event} did not contain {f}: got {p}"))
                    }
                    _ => (true, String::new()),
                },
                Ok(None) => (false, format!("no {event} within {within_ms} ms (scaled)")),
            },
            Step::NoPush {
                client,
                event,
                within_ms,
            } => match self.wait_push(client, event, *within_ms).await {
                Err(e) => (false, e),
                Ok(Some(p)) => (false, format!("unexpected {event}: {p}")),
                Ok(None) => (true, String::new()),
            },
            _ => (false, "not a push step".into()),
        }
    }

    /// The next `event` push of `client` within the scaled `within_ms` (at least 50 ms).
    async fn wait_push(
        &self,
        client: &str,
        event: &str,
        within_ms: u64,
    ) -> Result<Option<Value>, String> {
        let s = self
            .clients
            .get(client)
            .ok_or_else(|| format!("no client {client}"))?;
        let within = scaled(within_ms, self.sc.time_scale).max(Duration::from_millis(50));
        Ok(s.client.expect_push(event, within).await)
    }

    /// Server time, waits, fault switches and requests on behalf of users.
    async fn server_step(&mut self, step: &Step, out: &mut Out<'_>) -> (bool, String) {
        let scale = self.sc.time_scale;
        match step {
            Step::AdvanceClock(ms) => {
                self.server.clock.advance_ms(*ms as i64);
                (
                    true,
                    format!("self.server time now {}", self.server.clock.now_ms()),
                )
            }
            Step::WaitMs(ms) => {
                tokio::time::sleep(scaled(*ms, scale)).await;
                (true, String::new())
            }
            Step::FaultOn(id) | Step::FaultOff(id) => {
                let on = matches!(step, Step::FaultOn(_));
                match self.server.faults.set_enabled(id, on) {
                    Ok(()) => (true, String::new()),
                    Err(e) => (false, e.to_string()),
                }
            }
            Step::SendText {
                client,
                to,
                text,
                expect,
            } => match self.clients.get(client) {
                Some(s) => {
                    let me = s.username.clone().unwrap_or_default();
                    judge(&s.client.send_text(&me, to, text).await, expect)
                }
                None => (false, format!("no client {client}")),
            },
            Step::AsDevice {
                user,
                appkey,
                platform,
                event,
                payload,
                expect,
            } => {
                let key = crate::backend::UserKey::new(
                    appkey.clone().unwrap_or_else(|| self.first_app.clone()),
                    user.clone(),
                );
                let payload = if payload.is_null() {
                    json!({})
                } else {
                    payload.clone()
                };
                let response = self
                    .server
                    .hub
                    .act_as_device(&key, platform, event, payload);
                let code = response
                    .as_ref()
                    .map(|r| r.get("code").and_then(Value::as_i64).unwrap_or(0));
                out.transcript.push(format!(
                    "as_device {user}/{platform} {event} -> {}",
                    code.map_or("no response".into(), |c| format!("code {c}"))
                ));
                let want = expect.clone().unwrap_or(ExpectedReply::Code(0));
                let got = code.map(ExpectedReply::Code);
                (
                    got.as_ref() == Some(&want),
                    format!(
                        "expected {want:?}, got {}",
                        response.map_or("no response".into(), |r| Value::Object(r).to_string())
                    ),
                )
            }
            Step::Request {
                client,
                event,
                payload,
                expect,
            } => match self.clients.get(client) {
                Some(s) => {
                    let payload = if payload.is_null() {
                        json!({})
                    } else {
                        payload.clone()
                    };
                    judge(&s.client.request(event, payload).await, expect)
                }
                None => (false, format!("no client {client}")),
            },
            _ => (false, "not a server step".into()),
        }
    }
}
