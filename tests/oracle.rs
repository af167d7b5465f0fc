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

/// Replays one transcript's wire section through a fresh oracle.
fn replay(text: &str) -> Vec<Finding> {
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
            oracle.note_outbound(conn, &frame, &tag, now);
        }
    }
    oracle.overdue_at(now + Duration::from_secs(3600), &mut found);
    found
}

fn snapshots() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir("scenarios/conformance").unwrap().flatten() {
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
    assert!(fails.is_empty(), "{} FAIL findings:\n{}", fails.len(), fails.join("\n"));
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
