//! The scenario runner: starts a server with a scenario's state and faults, drives
//! clients through its steps, and checks its expectations against what the clients saw
//! and what crossed the wire (the journal).
//!
//! Clients are driven through the [`builtin`] driver (the Rust reference client). Every
//! wait is bounded; client timers and waits are multiplied by the scenario's
//! `time_scale`, so the SDK's 5 s / 30 s timers run in milliseconds.

pub(crate) mod builtin;
pub(crate) mod builtin_api;
pub mod compare;
pub mod driver;
pub(crate) mod exactly;
pub mod html;
pub mod junit;
pub mod matrix;
pub mod mutants;
pub mod portable;
pub(crate) mod redact;
pub mod schedule;
pub(crate) mod settle;
pub mod shard;
pub mod snapshot;
pub(crate) mod under_test;

pub use junit::junit;
pub use under_test::ClientUnderTest;

use crate::faults::{Direction, Entry, KindSpec};
use crate::scenario::{Expectation, FrameFilter, Scenario};
use crate::server::{self, RunningServer, ServerConfig};
use crate::transport::TransportConfig;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The result of one step or expectation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
    /// A strict check's failure fails the scenario; a non-strict one (a step or
    /// expectation marked `strict: false`, or a difference from the reference client's
    /// snapshot) only lowers the verdict to NON-STRICT.
    pub strict: bool,
}

impl Check {
    /// A strict check.
    pub fn new(what: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            ok,
            detail: detail.into(),
            strict: true,
        }
    }

    /// A non-strict check (see [`Check::strict`]).
    pub fn tolerated(what: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            strict: false,
            ..Self::new(what, ok, detail)
        }
    }
}

/// The result of one scenario.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub name: String,
    pub id: Option<String>,
    pub file: String,
    pub checks: Vec<Check>,
    pub elapsed: Duration,
    /// Set when the run could not even start (server failed, ...).
    pub error: Option<String>,
    /// `builtin`, or the driver's name and client version.
    pub client: String,
    /// What the client saw and what crossed the wire, redacted (see [`redact`]).
    pub transcript: String,
    /// Who the client is, from its driver's `hello` (for reports).
    pub identity: Identity,
}

/// A client's identity as its driver's `hello` gives it (`builtin` and this crate's version
/// for the builtin client).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub driver: String,
    pub version: String,
    /// A commit or build hash, when the driver's `hello` has `build`.
    pub build: Option<String>,
}

impl Report {
    /// No error and no failed strict check (non-strict differences may remain).
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.ok || !c.strict)
    }

    /// The graded verdict (as Autobahn grades): a failing `informational` scenario is
    /// informational, a failure because the client lacks the API method is
    /// unimplemented, any other failure fails. When every strict check holds but a
    /// non-strict one does not, the client works but differs in a tolerated way:
    /// non-strict.
    pub fn verdict(&self, informational: bool) -> Verdict {
        if self.passed() {
            return if self.checks.iter().any(|c| !c.ok) {
                Verdict::NonStrict
            } else {
                Verdict::Pass
            };
        }
        let why = self.failure().unwrap_or_default();
        let unimplemented = [
            LACKS,
            "is not a function",
            "unknown SDK method",
            "no method",
            "unknown method",
            "unknown listener",
        ];
        if unimplemented.iter().any(|m| why.contains(m)) {
            Verdict::Unimplemented
        } else if informational {
            Verdict::Informational
        } else {
            Verdict::Fail
        }
    }

    /// The first failure (strict ones first), for summaries.
    pub fn failure(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        self.checks
            .iter()
            .find(|c| !c.ok && c.strict)
            .or_else(|| self.checks.iter().find(|c| !c.ok))
            .map(|c| format!("{}: {}", c.what, c.detail))
    }
}

/// What a failure says when the driver's `hello` declared the method or listener
/// unsupported (graded UNIMPL).
pub const LACKS: &str = "declares it lacks this";

/// A scenario's graded result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    Pass,
    /// Works (every strict check holds) but differs in a tolerated way: a `strict:
    /// false` check failed, or the transcript differs from the reference client's.
    NonStrict,
    /// Failed, but the scenario documents behaviour, it does not require it.
    Informational,
    /// The client does not have the API method the scenario calls.
    Unimplemented,
    /// Not run: the client's exclusion list names it.
    Excluded,
    Fail,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Informational => "INFO",
            Verdict::Unimplemented => "UNIMPL",
            Verdict::Excluded => "EXCL",
            Verdict::Fail => "FAIL",
        }
    }

    /// Whether the verdict fails a run (exit code 1).
    pub fn fails(self) -> bool {
        self == Verdict::Fail
    }
}

/// A client's exclusion list: scenario ids (or file stems) with reasons.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    pub id: String,
    pub reason: String,
}

/// `true` when `actual` contains every field of `expected` (recursively; arrays must
/// match element by element).
pub fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| subset(x, y))
        }
        (e, a) => e == a,
    }
}

fn entry_matches(f: &FrameFilter, e: &Entry) -> bool {
    let dir = match f.dir {
        Some(Direction::In) => e.dir == "in",
        Some(Direction::Out) => e.dir == "out",
        None => true,
    };
    let kind = f.kind.is_none_or(|k| {
        let name = match k {
            KindSpec::Handshake => "open",
            KindSpec::Connect => "connect",
            KindSpec::Disconnect => "disconnect",
            KindSpec::Ping => "ping",
            KindSpec::Pong => "pong",
            KindSpec::Noop => "noop",
            KindSpec::Request => "request",
            KindSpec::Ack => "ack",
            KindSpec::Response => "response",
            KindSpec::Push => "push",
        };
        e.kind == name
    });
    dir && kind
        && f.event
            .as_deref()
            .is_none_or(|ev| e.event.as_deref() == Some(ev))
        && f.user
            .as_deref()
            .is_none_or(|u| e.user.as_deref() == Some(u))
        && f.fault
            .as_deref()
            .is_none_or(|id| e.fault.as_deref() == Some(id))
}

fn describe(f: &FrameFilter) -> String {
    let mut parts = Vec::new();
    if let Some(d) = f.dir {
        parts.push(format!(
            "dir={}",
            if d == Direction::In { "in" } else { "out" }
        ));
    }
    if let Some(k) = f.kind {
        parts.push(format!("kind={k:?}").to_lowercase());
    }
    if let Some(e) = &f.event {
        parts.push(format!("event={e}"));
    }
    if let Some(u) = &f.user {
        parts.push(format!("user={u}"));
    }
    if let Some(id) = &f.fault {
        parts.push(format!("fault={id}"));
    }
    parts.join(" ")
}

/// The payload of a `42["event",{...}]` frame.
fn payload(frame: &str) -> Option<Value> {
    let rest = frame.strip_prefix("42")?;
    let (_, p): (String, Value) = serde_json::from_str(rest).ok()?;
    Some(p)
}

/// Checks the end-of-run expectations.
pub fn check_expectations(server: &RunningServer, expect: &[Expectation]) -> Vec<Check> {
    let journal = server.faults.journal(0);
    expect
        .iter()
        .map(|x| {
            let check = match x {
                Expectation::Count { equals, .. } => {
                    let frames = &x.filter().unwrap_or_default();
                    let n = journal.iter().filter(|e| entry_matches(frames, e)).count();
                    Check::new(
                        format!("expect count({}) == {equals}", describe(frames)),
                        n == *equals,
                        format!("counted {n}"),
                    )
                }
                Expectation::SameRid(frames) => {
                    let rids: std::collections::BTreeSet<_> = journal
                        .iter()
                        .filter(|e| entry_matches(frames, e))
                        .map(|e| e.rid.clone())
                        .collect();
                    Check::new(
                        format!("expect same_rid({})", describe(frames)),
                        rids.len() == 1 && rids.iter().all(Option::is_some),
                        format!("rids seen: {rids:?}"),
                    )
                }
                Expectation::Frame { fields, .. } => {
                    let frames = &x.filter().unwrap_or_default();
                    let matching: Vec<&Entry> = journal
                        .iter()
                        .filter(|e| entry_matches(frames, e))
                        .collect();
                    let found = matching
                        .iter()
                        .any(|e| payload(&e.frame).is_some_and(|p| subset(fields, &p)));
                    Check::new(
                        format!("expect frame({}) with {fields}", describe(frames)),
                        found,
                        format!(
                            "{} matching frame(s){}",
                            matching.len(),
                            matching
                                .first()
                                .map(|e| format!(", first: {}", e.frame))
                                .unwrap_or_default()
                        ),
                    )
                }
                Expectation::MessagesStored(n) => {
                    let got = server.hub.with_backend(|b| b.message_count());
                    Check::new(
                        format!("expect messages_stored == {n}"),
                        got == *n,
                        format!("stored {got}"),
                    )
                }
            };
            Check {
                strict: x.strict(),
                ..check
            }
        })
        .collect()
}

/// Which client implementation to drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSpec {
    /// The Rust reference client.
    Builtin,
    /// A driver subprocess: program and arguments.
    Command(Vec<String>),
}

impl ClientSpec {
    /// `builtin`, or a command line split on whitespace.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "builtin" {
            return Some(Self::Builtin);
        }
        let words: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            None
        } else {
            Some(Self::Command(words))
        }
    }
}

/// Runs one scenario with the builtin driver.
pub async fn run(scenario: &Scenario) -> Report {
    run_with(scenario, &ClientSpec::Builtin).await
}

/// Runs one scenario with the given client.
pub async fn run_with(scenario: &Scenario, client: &ClientSpec) -> Report {
    let started = Instant::now();
    let mut report = Report {
        name: scenario.name.clone(),
        id: scenario.id.clone(),
        file: scenario.file.clone(),
        checks: Vec::new(),
        elapsed: Duration::ZERO,
        error: None,
        client: String::new(),
        transcript: String::new(),
        identity: Identity::default(),
    };
    let scale = scenario.time_scale;
    let mut portable = match open_driver(client, scale).await {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(e);
            report.elapsed = started.elapsed();
            return report;
        }
    };
    let is_driver = portable.is_some();
    let timers_faked = portable
        .as_ref()
        .is_some_and(|p| p.driver.can("fake_timers"));
    let config = case_server_config(scenario, timers_faked);
    let server = match server::start(config, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
    {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(format!("server did not start: {e}"));
            if let Some(p) = portable {
                let _ = p.driver.shutdown().await;
            }
            return report;
        }
    };
    server.oracle.set_time_scale(scale);
    let limit = Duration::from_secs(180);
    let mut red = redact::Redactor::default();
    let mut transcript = Vec::new();
    let steps = builtin::run_steps(
        &server,
        scenario,
        portable.as_mut(),
        &mut transcript,
        &mut red,
    );
    match tokio::time::timeout(limit, steps).await {
        Ok(checks) => report.checks = checks,
        Err(_) => report.error = Some(format!("the scenario did not finish within {limit:?}")),
    }
    (report.client, report.identity) = who(portable.as_ref());
    server.faults.finish_observation();
    let journal = server.faults.journal(0);
    report.transcript = transcript_text(scenario, &transcript, &journal, &mut red);
    let version = if is_driver {
        report.identity.version.clone()
    } else {
        String::new()
    };
    let graded_fail = |id: &str| {
        !scenario.breaks.iter().any(|b| b == id)
            && crate::oracle::rules::grade(id, &version, timers_faked)
                == crate::oracle::rules::Severity::Fail
    };
    report
        .transcript
        .push_str(&violations_text(&journal, graded_fail));
    if let Some(p) = portable {
        if !p.errors.is_empty() {
            report.checks.push(Check::new(
                "no exception escaped the client",
                false,
                p.errors.join("; "),
            ));
        }
        let _ = p.driver.shutdown().await;
    }
    if report.passed() {
        report
            .checks
            .extend(check_expectations(&server, &scenario.expect));
    }
    report.checks.extend(violation_checks(
        &journal,
        &version,
        timers_faked,
        &scenario.breaks,
    ));
    server.shutdown().await;
    report.elapsed = started.elapsed();
    report
}

/// The driver of a `--client` command, or `None` for the builtin client.
async fn open_driver(
    client: &ClientSpec,
    scale: f64,
) -> Result<Option<portable::Portable>, String> {
    match client {
        ClientSpec::Builtin => Ok(None),
        ClientSpec::Command(words) => {
            let d = driver::SubprocessDriver::spawn(&words[0], &words[1..], &[])
                .await
                .map_err(|e| format!("driver: {e}"))?;
            let mut p = portable::Portable::new(d);
            p.time_scale = scale;
            Ok(Some(p))
        }
    }
}

/// The server of one case: the scenario's state and faults, timers at its `time_scale`.
fn case_server_config(scenario: &Scenario, timers_faked: bool) -> ServerConfig {
    let scale = scenario.time_scale;
    // A driver with fake timers already runs its clock 1/time_scale faster while a call
    // waits, so the heartbeat is not scaled again for it: a scaled ping timeout (1.2 s at
    // 0.02) would fire inside one 5 s clock jump before the pong could arrive.
    let heartbeat = if timers_faked { 1.0 } else { scale };
    let transport = TransportConfig {
        ping_interval: Duration::from_secs_f64(25.0 * heartbeat),
        ping_timeout: Duration::from_secs_f64(60.0 * heartbeat),
        poll_hold: Duration::from_secs_f64(25.0 * scale),
        ..TransportConfig::default()
    };
    ServerConfig {
        faults: scenario.faults(),
        journal_capacity: 100_000,
        admin: false,
        limits: crate::server::Limits {
            shutdown_grace: CASE_SHUTDOWN_GRACE,
            ..crate::server::Limits::default()
        },
        ..ServerConfig::new(scenario.backend_config(), transport)
    }
}

/// A case's server is shut down after its journal was read and its checks ran, so
/// nothing it still answers or closes can change the verdict or the transcript: it
/// closes its sessions at once instead of waiting for the wire to go quiet (100 ms of a
/// clean shutdown's drain, most of a short case's time).
const CASE_SHUTDOWN_GRACE: Duration = Duration::ZERO;

/// The client's name in reports and its identity (from the driver's `hello`).
fn who(portable: Option<&portable::Portable>) -> (String, Identity) {
    match portable {
        Some(p) => (
            format!("{}-{}", p.driver.hello.driver, p.driver.hello.version),
            Identity {
                driver: p.driver.hello.driver.clone(),
                version: p.driver.hello.version.clone(),
                build: p.driver.hello.build.clone(),
            },
        ),
        None => (
            "builtin".into(),
            Identity {
                driver: "builtin".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                build: None,
            },
        ),
    }
}

/// The transcript: the client's view of each portable step, then the application frames
/// that crossed the wire (requests, acks, responses, pushes; no pings), per user.
fn transcript_text(
    sc: &Scenario,
    seen: &[String],
    journal: &[Entry],
    red: &mut redact::Redactor,
) -> String {
    let mut out = format!("# {} {}\n", sc.id.as_deref().unwrap_or("-"), sc.name);
    out.push_str("## client\n");
    for line in seen {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("## wire\n");
    // Grouped per connection (in order of first appearance): the order within a
    // connection is the client's own, while interleaving between clients is timing.
    let mut order: Vec<u64> = Vec::new();
    let mut lines: std::collections::HashMap<u64, Vec<(String, std::sync::Arc<str>)>> =
        std::collections::HashMap::new();
    let mut names: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    for e in journal {
        if !matches!(e.kind, "request" | "ack" | "response" | "push") {
            continue;
        }
        if !lines.contains_key(&e.conn) {
            order.push(e.conn);
        }
        if let Some(u) = &e.user {
            names.entry(e.conn).or_insert_with(|| u.to_string());
        }
        let fault = e
            .fault
            .as_deref()
            .map(|f| format!(" [fault {f}: {}]", e.action.unwrap_or("?")))
            .unwrap_or_default();
        lines
            .entry(e.conn)
            .or_default()
            .push((format!("{} {}{fault}", e.dir, e.kind), e.frame.clone()));
    }
    for (i, conn) in order.iter().enumerate() {
        let who = names.get(conn).cloned().unwrap_or_else(|| "-".into());
        out.push_str(&format!("### connection {} ({who})\n", i + 1));
        // Redacted in print order, so placeholder numbers do not depend on timing.
        for (head, frame) in lines.get(conn).into_iter().flatten() {
            out.push_str(&format!("{head} {}\n", redact::redact_frame(frame, red)));
        }
    }
    out
}

/// The protocol rules the clients broke that fail the case (src/oracle/; `shown` says
/// which), one line each: rule id, connection (numbered as in the wire section), what
/// happened with numbers masked (ids and times differ between runs). Empty when none,
/// so transcripts stay as they were; NON-STRICT and INFO findings are in the journal and
/// the checks only, so an official build's reference transcript never changes.
fn violations_text(journal: &[Entry], shown: impl Fn(&str) -> bool) -> String {
    let mut order: Vec<u64> = Vec::new();
    for e in journal {
        if matches!(e.kind, "request" | "ack" | "response" | "push") && !order.contains(&e.conn) {
            order.push(e.conn);
        }
    }
    let mut out = String::new();
    for e in journal
        .iter()
        .filter(|e| e.kind == "violation" && shown(e.event.as_deref().unwrap_or("")))
    {
        let n = order.iter().position(|c| *c == e.conn).map_or(0, |i| i + 1);
        out.push_str(&format!(
            "{} connection {n}: {}\n",
            e.event.as_deref().unwrap_or("?"),
            mask_numbers(&e.frame)
        ));
    }
    if out.is_empty() {
        out
    } else {
        format!("## violations\n{out}")
    }
}

/// `text` with every number replaced by `<n>` (digits inside a name, as in
/// `msg_recv_v2`, stay).
fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_number, mut in_word) = (false, false);
    for ch in text.chars() {
        if ch.is_ascii_digit() && !in_word {
            if !in_number {
                out.push_str("<n>");
            }
            in_number = true;
            continue;
        }
        in_word = ch.is_alphanumeric() || ch == '_';
        in_number = false;
        out.push(ch);
    }
    out
}

/// One check per broken rule, graded by [`crate::oracle::rules::grade`]: strict for a
/// FAIL rule, tolerated for a NON-STRICT one, none for advice.
/// Rules in `breaks` are broken on purpose: each must be reported, none is graded.
fn violation_checks(
    journal: &[Entry],
    version: &str,
    fake_timers: bool,
    breaks: &[String],
) -> Vec<Check> {
    use crate::oracle::rules::{grade, Severity};
    let mut checks = Vec::new();
    let broken = |id: &str| {
        journal
            .iter()
            .any(|e| e.kind == "violation" && e.event.as_deref() == Some(id))
    };
    for id in breaks {
        checks.push(Check::new(
            format!("protocol rule {id} is reported (breaks)"),
            broken(id),
            format!("the server reported no {id} violation"),
        ));
    }
    for e in journal.iter().filter(|e| e.kind == "violation") {
        let id = e.event.as_deref().unwrap_or("?");
        if breaks.iter().any(|b| b == id) {
            continue;
        }
        let what = format!("protocol rule {id} (docs/rules.md)");
        match grade(id, version, fake_timers) {
            Severity::Fail => checks.push(Check::new(what, false, e.frame.to_string())),
            Severity::NonStrict => checks.push(Check::tolerated(what, false, e.frame.to_string())),
            Severity::Info => {}
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_masked_but_not_inside_names() {
        assert_eq!(
            mask_numbers("msg_recv_v2 for msg 1234 not sent within 500 ms"),
            "msg_recv_v2 for msg <n> not sent within <n> ms"
        );
    }

    #[test]
    fn subset_matching() {
        assert!(subset(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!subset(&json!({"a": 2}), &json!({"a": 1})));
        assert!(subset(
            &json!({"m": [{"x": 1}]}),
            &json!({"m": [{"x": 1, "y": 2}]})
        ));
        assert!(!subset(
            &json!({"m": [{"x": 1}]}),
            &json!({"m": [{"x": 1}, {"x": 2}]})
        ));
        assert!(!subset(&json!({"missing": null}), &json!({})));
    }
}
