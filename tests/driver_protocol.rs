//! The runner's handling of driver subprocesses, against a fake driver that misbehaves on
//! purpose (tests/drivers/fake_driver.js; needs `node`).

mod common;

use jmessage_mock::conformance::driver::{DriverError, DriverEvent, SubprocessDriver};
use jmessage_mock::conformance::ClientUnderTest;
use serde_json::json;
use std::time::{Duration, Instant};

async fn spawn(mode: &str) -> Result<SubprocessDriver, DriverError> {
    let script = format!(
        "{}/tests/drivers/fake_driver.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut d =
        SubprocessDriver::spawn("node", &[script], &[("FAKE_MODE".into(), mode.into())]).await?;
    d.limit = Duration::from_millis(700);
    Ok(d)
}

macro_rules! need_node {
    () => {
        if !common::node_installed() {
            if std::env::var("JMM_REQUIRE_NODE").as_deref() == Ok("1") {
                panic!("JMM_REQUIRE_NODE=1 but node is not installed");
            }
            eprintln!("SKIPPED: node is not installed");
            return;
        }
    };
}

#[tokio::test]
async fn a_good_driver_handshakes_calls_and_delivers_events() {
    need_node!();
    let mut d = spawn("good").await.expect("starts");
    assert_eq!(d.hello.driver, "fake");
    assert!(d.can("multi_instance"));
    assert!(!d.can("fake_timers"));
    d.create("a", "ws://127.0.0.1:1", "http://127.0.0.1:1/resource")
        .await
        .expect("create");
    let reply = d
        .call(
            "a",
            "init",
            json!([{"appkey": "k"}]),
            &["onSuccess", "onFail"],
        )
        .await
        .expect("call");
    assert!(reply.thrown.is_none());
    match d.next_event(Duration::from_secs(5)).await {
        Some(DriverEvent::Callback { call, name, args }) => {
            assert_eq!(call, reply.seq);
            assert_eq!(name, "onSuccess");
            assert_eq!(args[0]["echo"], json!([{"appkey": "k"}]));
        }
        other => panic!("expected a callback, got {other:?}"),
    }
    let thrown = d.call("a", "explode", json!([]), &[]).await.expect("reply");
    assert_eq!(thrown.thrown.as_deref(), Some("TypeError: boom"));
    d.listen("a", "onMsgReceive").await.expect("listen");
    assert!(
        matches!(d.next_event(Duration::from_secs(5)).await, Some(DriverEvent::Listener { ref listener, .. }) if listener == "onMsgReceive")
    );
    let e = d.advance(10).await.expect_err("no fake timers in the fake");
    assert!(
        matches!(e, DriverError::Refused { ref cmd, .. } if cmd == "advance"),
        "{e}"
    );
    d.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn misbehaving_drivers_become_clear_errors_within_their_limits() {
    need_node!();
    let started = Instant::now();
    // Exits before hello.
    match spawn("nohello").await {
        Err(DriverError::DidNotStart(why)) => assert!(why.contains("giving up at once"), "{why}"),
        other => panic!("expected DidNotStart, got {:?}", other.err()),
    }
    // Wrong protocol version.
    assert!(matches!(
        spawn("protocol2").await.err(),
        Some(DriverError::Protocol(2))
    ));
    // Bad JSON.
    let mut d = spawn("badjson").await.expect("starts");
    let e = d.create("a", "x", "y").await.expect_err("bad json");
    assert!(
        matches!(e, DriverError::BadLine(ref l) if l.contains("this is not json")),
        "{e}"
    );
    // Unknown seq.
    let mut d = spawn("unknownseq").await.expect("starts");
    let e = d.create("a", "x", "y").await.expect_err("unknown seq");
    assert!(matches!(e, DriverError::UnknownSeq(_)), "{e}");
    // Crash mid-call: the status and the stderr tail are reported.
    let mut d = spawn("crash").await.expect("starts");
    d.create("a", "x", "y").await.expect("create");
    let e = d
        .call("a", "login", json!([]), &[])
        .await
        .expect_err("crash");
    match e {
        DriverError::Crashed { status, stderr } => {
            assert!(
                status.contains('7') || status.contains("closed"),
                "{status}"
            );
            assert!(
                stderr.contains("crashing on purpose") || status.contains("closed"),
                "{stderr}"
            );
        }
        other => panic!("expected Crashed, got {other}"),
    }
    // Hang: bounded by the limit, and the driver is killed.
    let mut d = spawn("hang").await.expect("starts");
    d.create("a", "x", "y").await.expect("create");
    let t = Instant::now();
    let e = d
        .call("a", "login", json!([]), &[])
        .await
        .expect_err("hang");
    assert!(
        matches!(e, DriverError::Hung { ref cmd, .. } if cmd == "call"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    // Later commands fail fast with the same error.
    assert!(matches!(
        d.create("b", "x", "y").await,
        Err(DriverError::Hung { .. })
    ));
    // Refusals are errors naming the command.
    let mut d = spawn("refuse").await.expect("starts");
    let e = d
        .call("a", "nope", json!([]), &[])
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("no method nope"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn portable_steps_run_through_a_driver_and_report_mismatches() {
    need_node!();
    use jmessage_mock::conformance::{run_with, ClientSpec};
    let script = format!(
        "{}/tests/drivers/fake_driver.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let client = ClientSpec::Command(vec!["node".into(), script]);
    let ok = jmessage_mock::scenario::parse(
        "name: portable\ntime_scale: 0.05\nsteps:\n  - create: {client: a}\n  - call: {client: a, method: init, args: [{$auth: {flag: 0}}], expect: {success: {code: 0}}}\n  - call: {client: a, method: getUserInfo, args: [{username: alice}], expect: thrown}\n  - listen: {client: a, listener: onMsgReceive}\n  - expect_listener: {client: a, listener: onMsgReceive, fields: {hello: world}}\n",
        "portable.yaml",
    )
    .expect("valid");
    let report = run_with(&ok, &client).await;
    assert!(report.passed(), "{:?}", report.failure());
    // The runner signed the $auth placeholder before the driver saw it.
    let bad = jmessage_mock::scenario::parse(
        "name: mismatch\ntime_scale: 0.05\nsteps:\n  - create: {client: a}\n  - call: {client: a, method: init, args: [{$auth: {}}], expect: {fail: 880102}}\n",
        "bad.yaml",
    )
    .expect("valid");
    let report = run_with(&bad, &client).await;
    let why = report.failure().expect("fails");
    assert!(
        why.contains("expected Fail(880102), got onSuccess"),
        "{why}"
    );
    assert!(
        why.contains("\"signature\""),
        "the driver got a signed payload: {why}"
    );
    // A driver that cannot start fails the scenario with a clear error.
    let report = run_with(
        &ok,
        &ClientSpec::Command(vec!["/nonexistent/driver".into()]),
    )
    .await;
    assert!(
        report
            .failure()
            .is_some_and(|f| f.contains("driver did not start")),
        "{:?}",
        report.failure()
    );
    // The builtin client runs portable steps through its SDK facade: init succeeds for
    // real, `getUserInfo` before login throws client-side, and no real message ever
    // arrives for the fake listener expectation.
    let report = jmessage_mock::conformance::run(&ok).await;
    let why = report.failure().expect("fails at the fake delivery");
    assert!(
        why.starts_with("step 5 expect_listener a.onMsgReceive"),
        "{why}"
    );
}

/// With `time_scale` below 1 a waiting `call` moves a `fake_timers` driver's clock by the idle
/// time / `time_scale`, so a 30 s response timeout on the virtual clock ends in `onTimeout`
/// within about 0.6 s of real time at 0.02; at time_scale 1 the clock is left alone.
#[tokio::test]
async fn a_waiting_call_runs_the_fake_clock_faster_by_time_scale() {
    need_node!();
    use jmessage_mock::conformance::portable::Portable;
    use jmessage_mock::scenario::model::CallExpect;
    let started = Instant::now();
    let mut d = spawn("clock").await.expect("starts");
    d.limit = Duration::from_secs(5);
    assert!(d.can("fake_timers"));
    d.create("a", "ws://127.0.0.1:1", "http://127.0.0.1:1/resource")
        .await
        .expect("create");
    let mut p = Portable::new(d);
    p.time_scale = 0.02;
    let r = p
        .call(
            "a",
            "getGroups",
            json!([]),
            &Some(CallExpect::Timeout),
            Duration::from_secs(5),
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    p.time_scale = 1.0;
    let r = p
        .call(
            "a",
            "getGroups",
            json!([]),
            &Some(CallExpect::Timeout),
            Duration::from_millis(600),
        )
        .await;
    let err = r.expect_err("no advance at time_scale 1");
    assert!(err.contains("no callback from getGroups"), "{err}");
}

/// A method or listener the driver's `hello` declares unsupported is graded UNIMPL
/// without being sent; `hello`'s `build` is kept for reports.
#[tokio::test]
async fn what_hello_declares_unsupported_is_unimplemented() {
    need_node!();
    use jmessage_mock::conformance::{run_with, ClientSpec, Verdict};
    let d = spawn("good").await.expect("starts");
    assert_eq!(d.hello.unsupported, ["transPlatMsg", "onRoomMsg"]);
    assert_eq!(d.hello.build.as_deref(), Some("fake-build-1"));
    assert!(d.lacks("onRoomMsg") && !d.lacks("onMsgReceive"));
    let _ = d.shutdown().await;
    let script = format!(
        "{}/tests/drivers/fake_driver.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let client = ClientSpec::Command(vec!["node".into(), script]);
    for step in [
        "call: {client: a, method: transPlatMsg, args: [{platform: all, cmd: x}]}",
        "listen: {client: a, listener: onRoomMsg}",
    ] {
        let sc = jmessage_mock::scenario::parse(
            &format!(
                "name: lacking\ntime_scale: 0.05\nsteps:\n  - create: {{client: a}}\n  - {step}\n"
            ),
            "lacking.yaml",
        )
        .expect("valid");
        let report = run_with(&sc, &client).await;
        assert_eq!(
            report.verdict(false),
            Verdict::Unimplemented,
            "{:?}",
            report.failure()
        );
    }
}
