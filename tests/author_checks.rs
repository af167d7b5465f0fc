//! Checks that catch a scenario author's mistakes, through the CLI: misspelt API names
//! (method, listener, argument) are `check` errors with "did you mean" and make `run`
//! exit 2 before anything runs; every shape error of a file is reported at once.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jmessage-mock"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jmm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

const TYPOS: &str = "name: typos
fixtures:
  users: [{username: alice, password: pw}, {username: bobby, password: pw}]
steps:
  - create: {client: a}
  - call: {client: a, method: init, args: [{$auth: {flag: 0}}], within_ms: 600000}
  - call: {client: a, method: login, args: [{username: alice, password: pw}], within_ms: 600000}
  - listen: {client: a, listener: onMsgRecieve}
  - call: {client: a, method: sendGroupMessage, args: [{target_gid: 1, content: x}]}
  - call: {client: a, method: sendSingleMsg, args: [{target_usrname: bobby, content: x}]}
";

#[test]
fn misspelt_api_names_are_located_errors_with_suggestions() {
    let dir = temp_dir("api-typos");
    let f = write(&dir, "typos.yaml", TYPOS);
    let out = bin().arg("check").arg(&f).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = f.display();
    for (pos, what, hint) in [
        (
            "8:35",
            "unknown listener \"onMsgRecieve\"",
            "did you mean \"onMsgReceive\"?",
        ),
        (
            "9:31",
            "unknown method \"sendGroupMessage\"",
            "did you mean \"sendGroupMsg\"?",
        ),
        (
            "10:54",
            "sendSingleMsg has no argument \"target_usrname\"",
            "did you mean \"target_username\"?",
        ),
    ] {
        assert!(
            stderr.contains(&format!("{file}:{pos}: {what}")),
            "{pos} {what}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("hint: {hint}")),
            "{hint}: {stderr}"
        );
    }
    // `run` refuses the file as invalid input (exit 2) instead of grading it UNIMPL.
    let out = bin().arg("run").arg(&f).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(!stdout.contains("passed"), "nothing ran: {stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

const LOGGED_IN: &str = "fixtures:
  users: [{username: alice, password: pw}, {username: bobby, password: pw}]
steps:
  - create: {client: a}
  - call: {client: a, method: init, args: [{$auth: {flag: 0}}], within_ms: 600000}
  - call: {client: a, method: login, args: [{username: alice, password: pw}], within_ms: 600000}
";

fn scenario(head: &str, steps: &str) -> jmessage_mock::scenario::Scenario {
    let text = format!("{head}{LOGGED_IN}{steps}");
    jmessage_mock::scenario::parse(&text, "t.yaml").expect("valid scenario")
}

/// `expect: closed` holds when a fault closes the connection before any callback, and
/// fails when the call is answered.
#[tokio::test]
async fn a_call_expects_the_connection_to_close() {
    let cut = "name: cut\ntime_scale: 0.05\nfaults:\n  - id: cut\n    when: {direction: in, kind: request, event: [s_across_single_text]}\n    action: {close: {abrupt: true}}\n";
    let send = "  - call: {client: a, method: sendSingleMsg, args: [{target_username: bobby, content: x}], expect: closed}\nexpect:\n  - messages_stored: 0\n";
    let report = jmessage_mock::conformance::run(&scenario(cut, send)).await;
    assert!(report.passed(), "{:?}", report.failure());
    assert!(
        report.transcript.contains("-> closed"),
        "{}",
        report.transcript
    );
    let answered = scenario("name: answered\ntime_scale: 0.05\n", send);
    let report = jmessage_mock::conformance::run(&answered).await;
    let why = report.failure().expect("an answered call is not closed");
    assert!(why.contains("expected Closed"), "{why}");
}

/// `settle` lets the builtin client's timers run on its scaled clock: the periodic
/// `sync_check` (every 150 s) goes out once more during a 250 s settle, not during 50 s.
#[tokio::test]
async fn settle_runs_the_clients_background_timers() {
    for (ms, checks) in [(50_000, 1), (250_000, 2)] {
        let sc = scenario(
            "name: settle\ntime_scale: 0.01\n",
            &format!("  - settle: {{ms: {ms}}}\nexpect:\n  - count: {{dir: in, event: sync_check, equals: {checks}}}\n"),
        );
        let report = jmessage_mock::conformance::run(&sc).await;
        assert!(report.passed(), "settle {ms}: {:?}", report.failure());
    }
    let e =
        jmessage_mock::scenario::parse("name: long\nsteps:\n  - settle: {ms: 600001}\n", "t.yaml")
            .expect_err("too long");
    assert_eq!((e[0].line, e[0].column), (3, 14), "{e:?}");
}

/// Every broken rule of a file is reported in one `check`, at the offending field, naming
/// the field and the expected type with an example; a fixture file likewise.
#[test]
fn every_shape_error_of_a_file_is_reported_at_once() {
    let dir = temp_dir("shapes");
    let f = write(
        &dir,
        "shapes.yaml",
        "name: shapes\nfaults:\n  - id: a\n    action: drop\n    nth: 2\nsteps:\n  - connect: {client: a, transprt: polling}\n  - wait_ms: soon\nexpect:\n  - messages_stored: lots\n",
    );
    let out = bin().arg("check").arg(&f).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = f.display();
    for want in [
        format!("{file}:5:5: faults[0]: nth: expected a list of non-negative integers, e.g. [2]"),
        format!("{file}:7:26: steps[0]: connect: unknown field \"transprt\""),
        format!("{file}:8:5: steps[1]: wait_ms: expected a non-negative integer, e.g. 2"),
        format!("{file}:10:5: expect[0]: messages_stored: expected a non-negative integer"),
    ] {
        assert!(stderr.contains(&want), "{want}\n{stderr}");
    }
    assert!(
        stderr.contains("hint: did you mean \"transport\"?"),
        "{stderr}"
    );
    let fixtures = dir.join("fixtures");
    std::fs::create_dir_all(&fixtures).expect("dir");
    let fx = write(
        &fixtures,
        "people.yaml",
        "users:\n  - {username: alice, password: 7, nickname: [a]}\n  - {username: bobby, pasword: pw}\n",
    );
    let out = bin().arg("check").arg(&fx).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("users[").count(), 2, "{stderr}");
    assert!(
        stderr.contains("users[1]: unknown field \"pasword\""),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// UNIMPL for a method the driver's `hello` declares unsupported: exit 0, and JUnit lists
/// it as `skipped` with the verdict, as docs/scenarios.md says (tests/drivers/fake_driver.js
/// declares `transPlatMsg` unsupported; needs `node`).
#[test]
fn declared_unsupported_is_unimpl_and_junit_skips_it() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("SKIPPED: node is not installed");
        return;
    }
    let dir = temp_dir("unimpl");
    write(
        &dir,
        "lacks.yaml",
        "id: T-9\nname: lacks transPlatMsg\ntime_scale: 0.05\nsteps:\n  - create: {client: a}\n  - call: {client: a, method: transPlatMsg, args: [{platform: all, cmd: x}]}\n",
    );
    let junit = dir.join("junit.xml");
    let driver = format!(
        "fake=node {}/tests/drivers/fake_driver.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = bin()
        .arg("run")
        .arg(dir.join("lacks.yaml"))
        .args(["--client", &driver, "--junit"])
        .arg(&junit)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("UNIMPL"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        xml.contains("skipped=\"1\" errors=\"0\" failures=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<skipped message=\"UNIMPL: step 2 call a.transPlatMsg: transPlatMsg: the client declares it lacks this"),
        "{xml}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
