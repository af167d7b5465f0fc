//! The protocol oracle (src/oracle/): the official builds' committed transcripts break
//! no FAIL rule, and each rule is reported, with its id, when a client breaks it.

mod common;

use jmessage_mock::faults::Finding;
use jmessage_mock::oracle::{rules, Oracle};
use jmessage_mock::transport::{FrameKind, FrameTag};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A redaction token (`<rid:3>`, `<time>`) back to a number; `<redacted>` stays a string.
fn unredact(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with('<') && s.ends_with('>') && s != "<redacted>" => {
            let inner = &s[1..s.len() - 1];
            let ok = inner
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == ':' || c.is_ascii_digit());
            if ok {
                let n: i64 = inner
                    .split_once(':')
                    .and_then(|(_, n)| n.parse().ok())
                    .unwrap_or(0);
                *v = Value::from(n);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(unredact),
        Value::Object(m) => m.values_mut().for_each(unredact),
        _ => {}
    }
}

/// One wire line of a transcript: direction, kind, frame (un-redacted); `None` for a
/// frame a fault kept from its peer.
fn wire_line(line: &str) -> Option<(bool, FrameKind, String)> {
    let (head, rest) = line.split_once(" 42")?;
    let mut words = head.split_whitespace();
    let inbound = words.next()? == "in";
    let kind = match words.next()? {
        "request" => FrameKind::Request,
        "response" => FrameKind::Response,
        "push" => FrameKind::Push,
        "ack" => FrameKind::Ack,
        _ => return None,
    };
    if let Some(i) = head.find("[fault ") {
        let action = head[i..].split(": ").nth(1)?.trim_end_matches(']');
        if !matches!(action, "delay" | "duplicate" | "reorder" | "throttle") {
            return None;
        }
    }
    let mut v: Value = serde_json::from_str(rest).ok()?;
    unredact(&mut v);
    Some((inbound, kind, format!("42{v}")))
}

/// Replays one transcript's wire section through a fresh oracle, frames 10 ms apart, and
/// ends the exchange `end_gap` after the last frame (a long gap lets every window pass:
/// what is owed is overdue; none reports it as owed at the end).
fn replay_with(text: &str, end_gap: Duration) -> Vec<Finding> {
    let oracle = Oracle::new();
    let mut found = Vec::new();
    let mut now = Instant::now();
    let mut conn = 0;
    let mut wire = false;
    for line in text.lines() {
        if line == "## wire" {
            wire = true;
        } else if line.starts_with("## ") {
            wire = false;
        }
        if line.starts_with("### connection ") {
            conn += 1;
        }
        let Some((inbound, kind, frame)) = wire.then(|| wire_line(line)).flatten() else {
            continue;
        };
        now += Duration::from_millis(10);
        if inbound {
            oracle.judge_inbound(conn, None, &frame, now, &mut found);
        } else {
            let (_, payload) = jmessage_mock::oracle::parse_event(&frame).unwrap();
            let event: Value = serde_json::from_str(&frame[2..]).unwrap();
            let event = event[0].as_str().unwrap().to_owned();
            let rid = payload.get("rid").map(|r| r.to_string());
            let tag = FrameTag::event(kind, &event, rid.as_deref());
            // As the server does: the payload object it encoded the frame from.
            oracle.note_outbound(conn, &frame, &tag, payload.as_object(), now);
        }
    }
    oracle.finish_at(now + end_gap, &mut found);
    found
}

/// Both endings: overdue after an hour, and owed right at the end.
fn replay(text: &str) -> Vec<Finding> {
    let mut found = replay_with(text, Duration::from_secs(3600));
    found.extend(replay_with(text, Duration::ZERO));
    found
}

fn snapshots() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir("scenarios/conformance")
        .unwrap()
        .flatten()
    {
        let snaps = dir.path().join("snapshots");
        for build in ["2.4.0", "2.5.0", "2.6.0"] {
            let d = snaps.join(format!("jmessage-web-{build}"));
            for f in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if f.path().extension().is_some_and(|e| e == "snap") {
                    out.push(f.path());
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn official_builds_break_no_fail_rule() {
    let files = snapshots();
    assert!(files.len() > 300, "only {} snapshots found", files.len());
    let mut by_rule: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut fails = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let build = f.parent().unwrap().file_name().unwrap().to_string_lossy();
        let version = build.trim_start_matches("jmessage-web-");
        for finding in replay(&text) {
            if finding.rule == rules::TIME_RESEND_FAST {
                // Transcripts carry no times: replayed frames are 10 ms apart.
                continue;
            }
            let where_ = format!("{}: {}", f.display(), finding.text);
            if rules::grade(finding.rule, version, false) == rules::Severity::Fail {
                fails.push(format!("{} {where_}", finding.rule));
            }
            by_rule.entry(finding.rule).or_default().push(where_);
        }
    }
    for (rule, hits) in &by_rule {
        eprintln!("{rule}: {} (first: {})", hits.len(), hits[0]);
    }
    assert!(
        fails.is_empty(),
        "{} FAIL findings:\n{}",
        fails.len(),
        fails.join("\n")
    );
}

/// Each build a rule names as breaking it does, in the transcript it cites.
#[test]
fn the_evidence_for_non_strict_grades_holds() {
    for r in rules::RULES {
        for (build, evidence) in r.official {
            let file = evidence.split(':').next().unwrap();
            assert!(
                file.contains(&format!("jmessage-web-{build}/")),
                "{evidence}"
            );
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                replay(&text).iter().any(|f| f.rule == r.id),
                "{} not in {file}",
                r.id
            );
            assert_eq!(rules::grade(r.id, build, false), rules::Severity::NonStrict);
        }
    }
}

fn path_exists(p: &str) -> bool {
    Path::new(p).exists()
}

#[test]
fn every_rule_is_documented() {
    assert!(path_exists("docs/rules.md"));
    let doc = std::fs::read_to_string("docs/rules.md").unwrap();
    for r in rules::RULES {
        assert!(doc.contains(r.id), "{} missing from docs/rules.md", r.id);
    }
}

const USERS: &str =
    "fixtures:\n  users:\n    - {username: alice, password: \"123456\"}\ntime_scale: 0.05\n";
const LOGGED_IN: &str = "  - connect: {client: a}\n  - init: {client: a}\n  - login: {client: a, username: alice, password: \"123456\"}\n";

/// Runs a scenario whose wire steps break `rule`; the run reports it with its id, in the
/// transcript's violations section, graded as the catalogue says.
async fn broken_by_wire(rule: &str, steps: &str) -> jmessage_mock::conformance::Report {
    let text = format!("name: breaks {rule}\n{USERS}steps:\n{steps}");
    let sc = jmessage_mock::scenario::parse(&text, "oracle.yaml").expect("valid scenario");
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        jmessage_mock::conformance::run(&sc),
    )
    .await
    .expect("bounded");
    let what = format!("protocol rule {rule} (docs/rules.md)");
    let check = report.checks.iter().find(|c| c.what == what);
    let check = check.unwrap_or_else(|| panic!("{rule} not reported: {:?}", report.checks));
    assert!(!check.ok);
    assert_eq!(
        check.strict,
        rules::grade(rule, "", false) == rules::Severity::Fail,
        "{check:?}"
    );
    assert!(
        report.transcript.contains("## violations\n") && report.transcript.contains(rule),
        "{}",
        report.transcript
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_msg_recv_v2_is_refused_and_reported() {
    // `fromUid` instead of `from_uid`: refused with 880001 (the step expects it).
    let steps = format!("{LOGGED_IN}  - request: {{client: a, event: msg_recv_v2, payload: {{msg_id: 1, msg_type: 3, fromUid: 10001}}, expect: {{code: 880001}}}}\n");
    let report = broken_by_wire(rules::FIELD_MISSING, &steps).await;
    assert!(
        report.transcript.contains("msg_recv_v2 without from_uid"),
        "{}",
        report.transcript
    );
    // Advice (the misspelt `fromUid`) is journaled, but neither graded nor in the transcript.
    assert!(!report.transcript.contains(rules::FIELD_UNKNOWN));
    assert!(!report
        .checks
        .iter()
        .any(|c| c.what.contains(rules::FIELD_UNKNOWN)));
    // The step itself passed: the server answered 880001.
    assert!(
        report
            .checks
            .iter()
            .filter(|c| c.what.starts_with("step"))
            .all(|c| c.ok),
        "{:?}",
        report.checks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_ack_with_a_string_key_is_refused_with_880004() {
    let steps = format!("{LOGGED_IN}  - request: {{client: a, event: sync_event_ack, payload: {{sync_key: \"7\"}}, expect: {{code: 880004}}}}\n");
    let report = broken_by_wire(rules::FIELD_TYPE, &steps).await;
    assert!(
        report
            .checks
            .iter()
            .filter(|c| c.what.starts_with("step"))
            .all(|c| c.ok),
        "{:?}",
        report.checks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_init_and_before_login_are_reported() {
    let steps = "  - connect: {client: a}\n  - request: {client: a, event: get_groups_list, expect: {code: 882004}}\n";
    broken_by_wire(rules::ORDER_INIT, steps).await;
    let steps = "  - connect: {client: a}\n  - init: {client: a}\n  - request: {client: a, event: get_groups_list, expect: {code: 882004}}\n";
    broken_by_wire(rules::ORDER_LOGIN, steps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sync_keys_and_message_ids_are_reported() {
    let steps = format!("{LOGGED_IN}  - request: {{client: a, event: sync_check, payload: {{sync_key: 99, sync_type: 0, sync_event_key: 0, msg_receipt_key: 0}}}}\n");
    broken_by_wire(rules::SYNC_KEY, &steps).await;
    let steps = format!("{LOGGED_IN}  - request: {{client: a, event: msg_recv_v2, payload: {{msg_id: 4242, msg_type: 3, from_uid: 1}}}}\n");
    broken_by_wire(rules::SYNC_MSG_UNKNOWN, &steps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_that_breaks_a_rule_on_purpose_says_so() {
    let text = format!("name: on purpose\n{USERS}breaks: [JMP-ORDER-001]\nsteps:\n  - connect: {{client: a}}\n  - request: {{client: a, event: get_groups_list, expect: {{code: 882004}}}}\n");
    let sc = jmessage_mock::scenario::parse(&text, "oracle.yaml").expect("valid");
    let report = jmessage_mock::conformance::run(&sc).await;
    assert!(report.passed(), "{:?}", report.checks);
    assert!(report
        .checks
        .iter()
        .any(|c| c.what.contains("JMP-ORDER-001 is reported") && c.ok));
    // Declared but not broken: the case fails.
    let text = text.replace(
        "get_groups_list, expect: {code: 882004}",
        "c_init, payload: {}, expect: {code: 880001}",
    );
    let sc = jmessage_mock::scenario::parse(&text, "oracle.yaml").expect("valid");
    let report = jmessage_mock::conformance::run(&sc).await;
    assert!(!report.passed(), "{:?}", report.checks);
    // An unknown id is an error of the file.
    let bad = text.replace("JMP-ORDER-001", "JMP-ORDER-009");
    let err = jmessage_mock::scenario::parse(&bad, "oracle.yaml").unwrap_err();
    assert!(
        format!("{err:?}").contains("unknown protocol rule"),
        "{err:?}"
    );
}

/// The engine itself, with synthetic times: rules the wire steps cannot break (the
/// builtin client always takes a fresh rid and confirms every push).
fn frame(event: &str, payload: Value) -> String {
    format!("42{}", serde_json::json!([event, payload]))
}

fn logged_in(oracle: &Oracle, conn: u64, t: Instant) {
    let mut sink = Vec::new();
    for (rid, event, body) in [
        (
            1,
            "c_init",
            serde_json::json!({"appkey":"k","random_str":"r","timestamp":"1","signature":"s"}),
        ),
        (
            2,
            "login",
            serde_json::json!({"username":"alice","password":"p"}),
        ),
    ] {
        let mut body = body;
        body["rid"] = rid.into();
        oracle.judge_inbound(conn, None, &frame(event, body), t, &mut sink);
        let resp = frame(event, serde_json::json!({"code":0,"rid":rid}));
        let tag = FrameTag::event(FrameKind::Response, event, Some(&rid.to_string()));
        oracle.note_outbound(conn, &resp, &tag, None, t);
    }
    assert!(sink.is_empty(), "{sink:?}");
}

fn ids(found: &[Finding]) -> Vec<&'static str> {
    found.iter().map(|f| f.rule).collect()
}

#[test]
fn rid_rules_reuse_change_count_and_cadence() {
    let oracle = Oracle::new();
    let t0 = Instant::now();
    logged_in(&oracle, 1, t0);
    let mut found = Vec::new();
    let get = |rid: u64, name: &str| {
        frame(
            "get_across_user_info",
            serde_json::json!({"username": name, "rid": rid}),
        )
    };
    oracle.judge_inbound(1, None, &get(7, "bobby"), t0, &mut found);
    // A proper resend: same rid and body, 5 s later.
    oracle.judge_inbound(
        1,
        None,
        &get(7, "bobby"),
        t0 + Duration::from_secs(5),
        &mut found,
    );
    assert!(found.is_empty(), "{found:?}");
    // Changed body on the same rid; then resent too fast.
    oracle.judge_inbound(
        1,
        None,
        &get(7, "carol"),
        t0 + Duration::from_secs(10),
        &mut found,
    );
    assert_eq!(ids(&found), [rules::RID_CHANGED]);
    found.clear();
    oracle.judge_inbound(
        1,
        None,
        &get(7, "carol"),
        t0 + Duration::from_millis(10_100),
        &mut found,
    );
    assert_eq!(ids(&found), [rules::TIME_RESEND_FAST]);
    found.clear();
    for i in 0..2 {
        oracle.judge_inbound(
            1,
            None,
            &get(7, "carol"),
            t0 + Duration::from_secs(20 + 5 * i),
            &mut found,
        );
    }
    assert_eq!(ids(&found), [rules::RID_TOO_MANY]);
    assert!(found[0].text.contains("sent 6 times"), "{}", found[0].text);
    found.clear();
    // Another event on a live rid.
    oracle.judge_inbound(
        1,
        None,
        &frame("get_groups_list", serde_json::json!({"rid": 7})),
        t0 + Duration::from_secs(40),
        &mut found,
    );
    assert_eq!(ids(&found), [rules::RID_REUSED]);
    // Timer rules are advice for drivers on fake timers; the rest keep their grade.
    assert_eq!(
        rules::grade(rules::TIME_RESEND_FAST, "2.6.0", true),
        rules::Severity::Info
    );
    assert_eq!(
        rules::grade(rules::RID_REUSED, "2.6.0", true),
        rules::Severity::Fail
    );
}

/// A rid is one rid whatever its JSON type: the number 7 and the string "7" (or " 7 ")
/// name the same request, "007" and "-7" other ones; an ack tagged with the text reaches
/// the numeric rid's record.
#[test]
fn a_rid_is_its_canonical_text_whether_number_or_string() {
    let oracle = Oracle::new();
    let t0 = Instant::now();
    logged_in(&oracle, 1, t0);
    let get = |rid: Value| {
        frame(
            "get_across_user_info",
            serde_json::json!({"username": "bobby", "rid": rid}),
        )
    };
    let mut found = Vec::new();
    oracle.judge_inbound(1, None, &get(7.into()), t0, &mut found);
    let fast = t0 + Duration::from_millis(100);
    for other in ["007", "-7", "07 "] {
        oracle.judge_inbound(1, None, &get(other.into()), fast, &mut found);
    }
    oracle.judge_inbound(1, None, &get((-7).into()), fast, &mut found);
    assert_eq!(ids(&found), [rules::TIME_RESEND_FAST], "{found:?}");
    assert!(found[0].text.contains("rid -7 resent"), "{}", found[0].text);
    found.clear();
    oracle.judge_inbound(1, None, &get(" 7 ".into()), fast, &mut found);
    assert_eq!(ids(&found), [rules::TIME_RESEND_FAST], "{found:?}");
    assert!(found[0].text.contains("rid 7 resent"), "{}", found[0].text);
    found.clear();
    // Acknowledged under its text, then resent 20 s later: not a late resend of an
    // unacknowledged request.
    let ack = FrameTag::event(FrameKind::Ack, "get_across_user_info", Some("7"));
    oracle.note_outbound(1, "42[\"ack\",{\"rid\":7}]", &ack, None, fast);
    let late = t0 + Duration::from_secs(20);
    oracle.judge_inbound(1, None, &get("7".into()), late, &mut found);
    assert!(found.is_empty(), "{found:?}");
    // Without the ack it would be.
    oracle.judge_inbound(
        1,
        None,
        &get("007".into()),
        t0 + Duration::from_secs(40),
        &mut found,
    );
    assert_eq!(ids(&found), [rules::TIME_RESEND_SLOW], "{found:?}");
}

/// A connection remembers its last MAX_RIDS rids: a rid used `MAX_RIDS - 1` requests
/// ago is still known (another event on it is a reuse), one used `MAX_RIDS` requests ago
/// is forgotten (a fresh request, not a reuse).
#[test]
fn a_connection_forgets_a_rid_after_max_rids_newer_ones() {
    use jmessage_mock::oracle::MAX_RIDS;
    let get = |rid: u64| {
        frame(
            "get_across_user_info",
            serde_json::json!({"username": "bobby", "rid": rid}),
        )
    };
    let reuse = frame("get_groups_list", serde_json::json!({"rid": 100}));
    for (newer, reported) in [(MAX_RIDS - 1, true), (MAX_RIDS, false)] {
        let oracle = Oracle::new();
        let t0 = Instant::now();
        logged_in(&oracle, 1, t0);
        let mut found = Vec::new();
        oracle.judge_inbound(1, None, &get(100), t0, &mut found);
        // (The rids of c_init and login came before: they are not among the newer ones.)
        for rid in 0..newer as u64 {
            oracle.judge_inbound(1, None, &get(1_000 + rid), t0, &mut found);
        }
        assert!(found.is_empty(), "{found:?}");
        oracle.judge_inbound(1, None, &reuse, t0 + Duration::from_secs(5), &mut found);
        let want: &[&str] = if reported { &[rules::RID_REUSED] } else { &[] };
        assert_eq!(ids(&found), want, "{newer} newer rids: {found:?}");
    }
}

#[test]
fn unconfirmed_pushes_are_reported_after_the_window() {
    let oracle = Oracle::new();
    oracle.set_time_scale(0.1);
    let t0 = Instant::now();
    logged_in(&oracle, 1, t0);
    let push = |event: &str, body: Value| {
        let tag = FrameTag::event(FrameKind::Push, event, None);
        oracle.note_outbound(1, &frame(event, body), &tag, None, t0);
    };
    push(
        "msg_sync",
        serde_json::json!({"messages":[{"msg_id": 1234}, {"msg_id": 1235}]}),
    );
    push(
        "sync_event",
        serde_json::json!({"sync_key": 9, "events": []}),
    );
    let mut found = Vec::new();
    let recv = frame(
        "msg_recv_v2",
        serde_json::json!({"msg_id":1235,"msg_type":3,"from_uid":5,"rid":50}),
    );
    oracle.judge_inbound(1, None, &recv, t0 + Duration::from_millis(100), &mut found);
    oracle.overdue_at(t0 + Duration::from_millis(400), &mut found);
    assert!(
        found.is_empty(),
        "within the window (500 ms at 0.1): {found:?}"
    );
    oracle.overdue_at(t0 + Duration::from_millis(600), &mut found);
    assert_eq!(ids(&found), [rules::SYNC_MSG_RECV, rules::SYNC_ACK]);
    assert_eq!(
        found[0].text,
        "msg_recv_v2 for msg 1234 not sent within 500 ms of msg_sync"
    );
    // The key the push gave is a key the server gave.
    found.clear();
    let ack = frame(
        "sync_event_ack",
        serde_json::json!({"sync_key": 9, "rid": 51}),
    );
    oracle.judge_inbound(1, None, &ack, t0 + Duration::from_millis(700), &mut found);
    assert!(found.is_empty(), "{found:?}");
    // 2.4.0 never confirms msg_sync: NON-STRICT for it, FAIL for the others.
    assert_eq!(
        rules::grade(rules::SYNC_MSG_RECV, "2.4.0", false),
        rules::Severity::NonStrict
    );
    assert_eq!(
        rules::grade(rules::SYNC_MSG_RECV, "2.6.0", false),
        rules::Severity::Fail
    );
    assert_eq!(
        rules::grade(rules::SYNC_MSG_RECV, "", false),
        rules::Severity::Fail
    );
}

#[test]
fn a_retry_carried_over_a_reconnect_may_precede_c_init() {
    let oracle = Oracle::new();
    let t0 = Instant::now();
    logged_in(&oracle, 1, t0);
    let mut found = Vec::new();
    let req = |rid: u64| frame("get_groups_list", serde_json::json!({"rid": rid}));
    oracle.judge_inbound(1, None, &req(9), t0, &mut found);
    oracle.close(1, t0, &mut found);
    // The SDK's new connection re-sends the pending request before c_init: not a breach.
    oracle.judge_inbound(2, None, &req(9), t0 + Duration::from_secs(5), &mut found);
    assert!(found.is_empty(), "{found:?}");
    // A new request there is.
    oracle.judge_inbound(2, None, &req(10), t0 + Duration::from_secs(5), &mut found);
    assert_eq!(ids(&found), [rules::ORDER_INIT]);
}

#[test]
fn a_connection_that_lost_frames_gets_the_whole_resend_budget() {
    use jmessage_mock::faults::Observer;
    let oracle = Oracle::new();
    oracle.set_time_scale(0.1);
    let t0 = Instant::now();
    logged_in(&oracle, 1, t0);
    oracle.lost(1);
    let tag = FrameTag::event(FrameKind::Push, "msg_sync", None);
    oracle.note_outbound(
        1,
        &frame("msg_sync", serde_json::json!({"messages":[{"msg_id": 77}]})),
        &tag,
        None,
        t0,
    );
    let mut found = Vec::new();
    // 5 sends, 500 ms apart at 0.1: a confirmation may take 2.5 s.
    oracle.overdue_at(t0 + Duration::from_millis(2_000), &mut found);
    assert!(found.is_empty(), "{found:?}");
    oracle.overdue_at(t0 + Duration::from_millis(2_600), &mut found);
    assert_eq!(ids(&found), [rules::SYNC_MSG_RECV]);
}

/// Over a real socket on a server configured as `serve` is: a reused rid is journaled as a
/// `violation` entry with the rule id and the user; a malformed confirmation is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_journals_violations_and_refuses_malformed_confirmations() {
    common::bounded(async {
        let server = common::start().await;
        let c = common::user(&server, jmessage_mock::client::Transport::Websocket, "vera").await;
        c.send_raw("42[\"get_groups_list\",{\"rid\":5}]");
        c.send_raw("42[\"get_across_user_info\",{\"username\":\"vera\",\"rid\":5}]");
        let r = c
            .request(
                "msg_recv_v2",
                serde_json::json!({"msg_id": 1, "msg_type": 3}),
            )
            .await
            .expect("answered");
        assert_eq!(r.code(), 880001, "{:?}", r.body);
        let violations: Vec<_> = server
            .faults
            .journal(0)
            .into_iter()
            .filter(|e| e.kind == "violation")
            .collect();
        let reuse = violations
            .iter()
            .find(|e| e.event.as_deref() == Some(rules::RID_REUSED))
            .unwrap_or_else(|| panic!("{violations:?}"));
        assert_eq!(reuse.user.as_deref(), Some("vera"));
        assert_eq!(
            &*reuse.frame,
            "get_across_user_info reused rid 5 of a recent get_groups_list request"
        );
        assert!(violations
            .iter()
            .any(|e| e.event.as_deref() == Some(rules::FIELD_MISSING)
                && e.frame.contains("without from_uid")));
        server.shutdown().await;
    })
    .await;
}

#[test]
fn what_is_still_owed_when_the_case_ends_is_reported_without_measuring_time() {
    let oracle = Oracle::new();
    let t0 = Instant::now();
    logged_in(&oracle, 1, t0);
    let tag = FrameTag::event(FrameKind::Push, "sync_receipt", None);
    oracle.note_outbound(
        1,
        &frame(
            "sync_receipt",
            serde_json::json!({"sync_key": 3, "receipts": []}),
        ),
        &tag,
        None,
        t0,
    );
    let mut found = Vec::new();
    oracle.finish_at(t0, &mut found);
    assert_eq!(ids(&found), [rules::SYNC_OWED]);
    assert_eq!(
        found[0].text,
        "sync_receipt_ack with sync_key 3 never sent (push unacknowledged at the end)"
    );
    // Not a timer rule: it holds for drivers on fake timers too.
    assert_eq!(
        rules::grade(rules::SYNC_OWED, "2.6.0", true),
        rules::Severity::Fail
    );
}

/// A client that never answers msg_sync (the builtin client without auto-confirmation) is
/// caught when the exchange ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_confirms_msg_sync_is_caught() {
    common::bounded(async {
        let server = common::start().await;
        let ws = jmessage_mock::client::Transport::Websocket;
        let alice = common::user(&server, ws, "alice").await;
        let silent = jmessage_mock::client::Client::connect(
            &server.http_url(),
            jmessage_mock::client::ClientConfig {
                auto_confirm: false,
                ..common::fast()
            },
        )
        .await
        .expect("connects");
        silent
            .init(common::APPKEY, common::SECRET, 0)
            .await
            .expect("init");
        silent.register("bobby", "pw").await.expect("register");
        silent.login("bobby", "pw").await.expect("login");
        alice.send_text("alice", "bobby", "hi").await.expect("sent");
        silent
            .expect_push("msg_sync", Duration::from_secs(5))
            .await
            .expect("pushed");
        server.faults.finish_observation();
        let owed: Vec<_> = server
            .faults
            .journal(0)
            .into_iter()
            .filter(|e| e.kind == "violation")
            .collect();
        assert!(
            owed.iter()
                .any(|e| e.event.as_deref() == Some(rules::SYNC_OWED)
                    && e.user.as_deref() == Some("bobby")
                    && e.frame.starts_with("msg_recv_v2 for msg ")),
            "{owed:?}"
        );
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_lies_about_its_sender_or_kind_is_reported() {
    let send = |content: &str| {
        format!("{LOGGED_IN}  - request: {{client: a, event: s_across_single_text, payload: {{target_id: alice, appkey: \"{}\", no_offline: false, no_notification: false, content: {content}}}}}\n", common::APPKEY)
    };
    let report = broken_by_wire(
        rules::MSG_CONTENT,
        &send("{version: 1, target_type: single, from_platform: web, target_id: alice, from_id: mallory, create_time: 1, msg_type: text, msg_body: {text: hi}}"),
    )
    .await;
    assert!(
        report.transcript.contains("but \"alice\" is logged in"),
        "{}",
        report.transcript
    );
    let report = broken_by_wire(
        rules::MSG_CONTENT,
        &send("{version: 1, target_type: group, from_platform: web, target_id: alice, from_id: alice, create_time: 1, msg_type: text, msg_body: {text: hi}}"),
    )
    .await;
    assert!(
        report.transcript.contains("content.target_type is"),
        "{}",
        report.transcript
    );
}

/// A session of alice on a client with `mutant` is kicked by a second login of alice; the
/// violations journaled once the exchange is over.
async fn kicked_with(mutant: jmessage_mock::client::mutants::Mutant) -> Vec<(String, String)> {
    let server = common::start().await;
    let ws = jmessage_mock::client::Transport::Websocket;
    let first = jmessage_mock::client::Client::connect(
        &server.http_url(),
        jmessage_mock::client::ClientConfig {
            mutant: Some(mutant),
            ..common::fast()
        },
    )
    .await
    .expect("connects");
    first
        .init(common::APPKEY, common::SECRET, 0)
        .await
        .expect("init");
    first.register("alice", "pw").await.expect("register");
    first.login("alice", "pw").await.expect("login");
    let _second = common::user(&server, ws, "alice").await;
    let kick = first
        .expect_push("event_notification", Duration::from_secs(5))
        .await
        .expect("kicked");
    assert_eq!(kick["event_type"], 1, "{kick}");
    server.faults.finish_observation();
    let found = server
        .faults
        .journal(0)
        .into_iter()
        .filter(|e| e.kind == "violation")
        .map(|e| {
            (
                e.event.as_deref().unwrap_or("").to_owned(),
                e.frame.to_string(),
            )
        })
        .collect();
    server.shutdown().await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_that_is_never_echoed_is_reported() {
    use jmessage_mock::client::mutants::Mutant;
    let found = common::bounded(kicked_with(Mutant::NoEventEcho)).await;
    assert!(
        found.iter().any(|(rule, text)| rule == rules::EVENT_ECHO
            && text.starts_with("event_notification echo for event ")
            && text.ends_with("(type 1) never sent")),
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_naming_another_event_is_reported() {
    use jmessage_mock::client::mutants::Mutant;
    let found = common::bounded(kicked_with(Mutant::EventEchoWrongId)).await;
    let rules_seen: Vec<&str> = found.iter().map(|(r, _)| r.as_str()).collect();
    // The echo names an event never pushed, and the real one stays unechoed.
    assert!(
        rules_seen.contains(&rules::EVENT_ECHO_UNKNOWN) && rules_seen.contains(&rules::EVENT_ECHO),
        "{found:?}"
    );
}

#[test]
fn an_echoed_kick_settles_the_obligation() {
    let oracle = Oracle::new();
    let t0 = Instant::now();
    logged_in(&oracle, 1, t0);
    let push = serde_json::json!({"event_id": 41, "event_type": 1, "gid": 0, "extra": 0});
    let tag = FrameTag::event(FrameKind::Push, "event_notification", None);
    oracle.note_outbound(1, &frame("event_notification", push), &tag, None, t0);
    // Other event types are not echoed by the SDK and owe nothing.
    let other = serde_json::json!({"event_id": 42, "event_type": 40});
    oracle.note_outbound(1, &frame("event_notification", other), &tag, None, t0);
    let mut found = Vec::new();
    let echo = serde_json::json!({"event_id": 41, "event_type": 1, "gid": 0, "rid": 9});
    oracle.judge_inbound(1, None, &frame("event_notification", echo), t0, &mut found);
    oracle.finish_at(t0, &mut found);
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_its_appkey_is_reported() {
    // Every official build names the app in each message request (the field table).
    let steps = format!("{LOGGED_IN}  - request: {{client: a, event: s_across_single_text, payload: {{target_id: alice, no_offline: false, no_notification: false, content: {{version: 1, target_type: single, from_platform: web, target_id: alice, from_id: alice, create_time: 1, msg_type: text, msg_body: {{text: hi}}}}}}}}\n");
    let report = broken_by_wire(rules::FIELD_MISSING, &steps).await;
    assert!(
        report
            .transcript
            .contains("s_across_single_text without appkey (a string)"),
        "{}",
        report.transcript
    );
}

#[test]
fn a_resend_long_after_an_unacknowledged_send_is_late() {
    let oracle = Oracle::new();
    let t0 = Instant::now();
    logged_in(&oracle, 1, t0);
    let req = |rid: u64| frame("get_groups_list", serde_json::json!({"rid": rid}));
    let mut found = Vec::new();
    // No ack reached the client: the resend is due at the ack timeout (5 s), not at the
    // response timer (30 s).
    oracle.judge_inbound(1, None, &req(7), t0, &mut found);
    let late = t0 + Duration::from_secs(30);
    oracle.judge_inbound(1, None, &req(7), late, &mut found);
    assert_eq!(ids(&found), [rules::TIME_RESEND_SLOW]);
    assert!(
        found[0]
            .text
            .starts_with("get_groups_list rid 7 resent 30000 ms after an unacknowledged send"),
        "{found:?}"
    );
    // Acked, but no response: the response timer's resend 30 s later is on time.
    let mut found = Vec::new();
    oracle.judge_inbound(1, None, &req(8), t0, &mut found);
    let ack = FrameTag::event(FrameKind::Ack, "ack", Some("8"));
    oracle.note_outbound(
        1,
        &frame("ack", serde_json::json!({"rid": 8})),
        &ack,
        None,
        t0,
    );
    oracle.judge_inbound(1, None, &req(8), late, &mut found);
    // And a resend at the ack timeout is on time too.
    oracle.judge_inbound(1, None, &req(8), late + Duration::from_secs(5), &mut found);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(
        rules::grade(rules::TIME_RESEND_SLOW, "2.6.0", true),
        rules::Severity::Info
    );
}
