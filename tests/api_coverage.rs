//! Keeps docs/api-coverage.md honest: every wire event of the SDK has a row with at least
//! one success and one failure test, every named test exists, every push and every
//! `event_notification` type the server emits has a row naming its receiver tests.
//!
//! Pure file parsing: no sockets, no waiting.

use jmessage_mock::protocol::Event;
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

const DOC: &str = "docs/api-coverage.md";

/// Pushes the server sends (protocol.md 7.1) that the push table must cover.
const PUSHES: &[&str] = &[
    "msg_sync",
    "event_notification",
    "sync_conversation",
    "sync_event",
    "sync_receipt",
    "receipt_change",
    "trans_msg_rec",
    "room_msg_sync",
];

/// `event_notification` types the server emits.
const EVENT_TYPES: &[i64] = &[
    1, 2, 5, 6, 8, 9, 10, 11, 12, 37, 38, 39, 40, 55, 56, 57, 58, 65, 80, 82, 100, 101, 102, 103,
    200, 201,
];

const STATUSES: &[&str] = &["implemented", "local-only", "n/a"];

/// The names between backticks in a cell.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The cells of a table row, or `None` if the line is not a row.
fn cells(line: &str) -> Option<Vec<&str>> {
    let l = line.trim();
    if !l.starts_with('|') || !l.ends_with('|') || l.len() < 2 {
        return None;
    }
    Some(l[1..l.len() - 1].split('|').map(str::trim).collect())
}

fn is_separator(cells: &[&str]) -> bool {
    cells
        .iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
}

#[derive(Clone, Copy, PartialEq)]
enum Table {
    None,
    Methods,
    Pushes,
}

/// Every problem of `doc`, given the test functions that exist.
fn check(doc: &str, fns: &HashSet<String>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut table = Table::None;
    let mut seen_methods = false;
    let mut seen_pushes = false;
    let mut covered_events: BTreeSet<&str> = BTreeSet::new();
    let mut covered_pushes: BTreeSet<&str> = BTreeSet::new();
    let mut covered_types: BTreeSet<i64> = BTreeSet::new();

    for (i, line) in doc.lines().enumerate() {
        let n = i + 1;
        let Some(row) = cells(line) else {
            table = Table::None;
            continue;
        };
        if table == Table::None {
            table = match row.first().copied() {
                Some("method") => {
                    seen_methods = true;
                    let want = [
                        "method",
                        "event",
                        "status",
                        "success tests",
                        "failure tests",
                    ];
                    if row != want {
                        errors.push(format!("{DOC}:{n}: method table header must be {want:?}"));
                    }
                    Table::Methods
                }
                Some("push") => {
                    seen_pushes = true;
                    let want = ["push", "type", "receivers", "tests"];
                    if row != want {
                        errors.push(format!("{DOC}:{n}: push table header must be {want:?}"));
                    }
                    Table::Pushes
                }
                _ => {
                    errors.push(format!(
                        "{DOC}:{n}: a table that is neither `method` nor `push`"
                    ));
                    Table::None
                }
            };
            continue;
        }
        if is_separator(&row) {
            continue;
        }
        let name = row.first().copied().unwrap_or("");
        let at = format!("{DOC}:{n} (row {name})");
        let known_tests = |cell: &str, errors: &mut Vec<String>| -> usize {
            let names = ticked(cell);
            for t in &names {
                if !fns.contains(*t) {
                    errors.push(format!(
                        "{at}: test `{t}` does not exist (no `fn {t}` under src/ or tests/)"
                    ));
                }
            }
            names.len()
        };
        match table {
            Table::Methods => {
                if row.len() != 5 {
                    errors.push(format!("{at}: {} columns, want 5", row.len()));
                    continue;
                }
                let (event, status, ok, fail) = (row[1], row[2], row[3], row[4]);
                if !STATUSES.contains(&status) {
                    errors.push(format!(
                        "{at}: status `{status}` is not one of {STATUSES:?}"
                    ));
                }
                let n_ok = known_tests(ok, &mut errors);
                let n_fail = known_tests(fail, &mut errors);
                if event.starts_with("local") {
                    if !ticked(event).is_empty() {
                        errors.push(format!("{at}: a `local` row names wire events"));
                    }
                    if status == "implemented" {
                        errors.push(format!("{at}: a `local` row cannot be `implemented`"));
                    }
                } else if let Some(rest) = event.strip_prefix("push") {
                    let names = ticked(rest);
                    if names.is_empty() {
                        errors.push(format!("{at}: `push` names no push"));
                    }
                    for p in names {
                        if !PUSHES.contains(&p) {
                            errors.push(format!("{at}: `{p}` is not a push the server sends"));
                        }
                    }
                } else {
                    let names = ticked(event);
                    if names.is_empty() {
                        errors.push(format!(
                            "{at}: event `{event}` is neither wire events in backticks, `local` nor `push`"
                        ));
                    }
                    for w in names {
                        match Event::from_wire(w) {
                            Some(e) => {
                                covered_events.insert(e.wire());
                            }
                            None => errors.push(format!(
                                "{at}: `{w}` is not a wire event known to Event::from_wire"
                            )),
                        }
                    }
                    if status != "implemented" {
                        errors.push(format!("{at}: a wire-event row must be `implemented`"));
                    }
                    if n_ok == 0 {
                        errors.push(format!("{at}: no success test"));
                    }
                    if n_fail == 0 {
                        errors.push(format!("{at}: no failure test"));
                    }
                }
            }
            Table::Pushes => {
                if row.len() != 4 {
                    errors.push(format!("{at}: {} columns, want 4", row.len()));
                    continue;
                }
                let (push, ty, receivers, tests) = (row[0], row[1], row[2], row[3]);
                let names = ticked(push);
                let push = match names.as_slice() {
                    [p] if PUSHES.contains(p) => *p,
                    _ => {
                        errors.push(format!("{at}: push must be one of {PUSHES:?} in backticks"));
                        continue;
                    }
                };
                covered_pushes.insert(push);
                if push == "event_notification" {
                    match ty.parse::<i64>() {
                        Ok(t) if EVENT_TYPES.contains(&t) => {
                            covered_types.insert(t);
                        }
                        _ => errors.push(format!(
                            "{at}: type `{ty}` is not an event_type the server emits {EVENT_TYPES:?}"
                        )),
                    }
                } else if ty != "—" && ty != "-" {
                    errors.push(format!("{at}: only event_notification rows have a type"));
                }
                if receivers.is_empty() {
                    errors.push(format!("{at}: receivers are not described"));
                }
                if known_tests(tests, &mut errors) == 0 {
                    errors.push(format!("{at}: no test asserting receivers and fields"));
                }
            }
            Table::None => {}
        }
    }
    if !seen_methods {
        errors.push(format!(
            "{DOC}: no method table (header `| method | event | ...`)"
        ));
    }
    if !seen_pushes {
        errors.push(format!(
            "{DOC}: no push table (header `| push | type | ...`)"
        ));
    }
    for e in Event::ALL {
        if !covered_events.contains(e.wire()) {
            errors.push(format!(
                "{DOC}: wire event `{}` (Event::ALL) has no method row",
                e.wire()
            ));
        }
    }
    for p in PUSHES {
        if !covered_pushes.contains(p) {
            errors.push(format!("{DOC}: push `{p}` has no row in the push table"));
        }
    }
    for t in EVENT_TYPES {
        if !covered_types.contains(t) {
            errors.push(format!(
                "{DOC}: event_notification type {t} has no row in the push table"
            ));
        }
    }
    errors
}

/// Names after `fn ` in a Rust source.
fn fn_names(src: &str, out: &mut HashSet<String>) {
    let b = src.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while let Some(off) = src[i..].find("fn ") {
        let at = i + off;
        i = at + 3;
        if at > 0 && ident(b[at - 1]) {
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let start = j;
        while j < b.len() && ident(b[j]) {
            j += 1;
        }
        if j > start {
            out.insert(src[start..j].to_owned());
        }
    }
}

fn scan(dir: &Path, out: &mut HashSet<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "node_modules") {
                continue;
            }
            scan(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let src = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            fn_names(&src, out);
        }
    }
}

fn source_fns() -> HashSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fns = HashSet::new();
    scan(&root.join("src"), &mut fns);
    scan(&root.join("tests"), &mut fns);
    fns
}

#[test]
fn api_coverage_table_is_complete_and_names_real_tests() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let doc = std::fs::read_to_string(&path).expect("docs/api-coverage.md");
    let errors = check(&doc, &source_fns());
    assert!(
        errors.is_empty(),
        "{} problem(s) in {DOC}:\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
}

#[test]
fn every_push_named_here_is_sent_by_the_backend() {
    // A renamed push must break this file, not silently leave a stale row.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backend");
    let mut all = String::new();
    for entry in std::fs::read_dir(&dir).expect("src/backend") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "rs") {
            all.push_str(&std::fs::read_to_string(&p).expect("read"));
        }
    }
    for p in PUSHES {
        assert!(
            all.contains(&format!("\"{p}\"")),
            "push `{p}` is not sent anywhere in src/backend"
        );
    }
}

// ----- the checker itself ------------------------------------------------------------

/// A minimal valid document around `method_rows`, with every wire event and push covered.
fn synthetic(method_rows: &str, push_rows: &str) -> String {
    let mut doc = String::from(
        "intro\n\n| method | event | status | success tests | failure tests |\n|---|---|---|---|---|\n",
    );
    for e in Event::ALL {
        doc.push_str(&format!(
            "| `m` | `{}` | implemented | `ok_test` | `bad_test` |\n",
            e.wire()
        ));
    }
    doc.push_str(method_rows);
    doc.push_str("\n| push | type | receivers | tests |\n|---|---|---|---|\n");
    for p in PUSHES.iter().filter(|p| **p != "event_notification") {
        doc.push_str(&format!("| `{p}` | — | someone | `ok_test` |\n"));
    }
    for t in EVENT_TYPES {
        doc.push_str(&format!(
            "| `event_notification` | {t} | someone | `ok_test` |\n"
        ));
    }
    doc.push_str(push_rows);
    doc
}

fn fake_fns() -> HashSet<String> {
    ["ok_test", "bad_test"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn checker_accepts_a_complete_document() {
    let doc = synthetic(
        "| `isInit` | local | local-only | — | — |\n| `onRoomMsg` | push `room_msg_sync` | implemented | `ok_test` | — |\n",
        "",
    );
    assert_eq!(check(&doc, &fake_fns()), Vec::<String>::new());
}

#[test]
fn checker_names_the_row_of_each_problem() {
    let cases = [
        (
            "| `sendX` | `s_single_text` | implemented | `ok_test` | `bad_test` |\n",
            "`s_single_text` is not a wire event",
        ),
        (
            "| `getX` | `get_resource` | implemented | `ok_test` | — |\n",
            "(row `getX`): no failure test",
        ),
        (
            "| `getY` | `get_resource` | implemented | | `bad_test` |\n",
            "(row `getY`): no success test",
        ),
        (
            "| `getZ` | `get_resource` | implemented | `no_such_fn` | `bad_test` |\n",
            "test `no_such_fn` does not exist",
        ),
        (
            "| `onX` | push `room_msg_sync_his` | implemented | `ok_test` | — |\n",
            "`room_msg_sync_his` is not a push",
        ),
        ("| `isX` | local | maybe | — | — |\n", "status `maybe`"),
    ];
    for (row, want) in cases {
        let errors = check(&synthetic(row, ""), &fake_fns());
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{row}: want an error containing {want:?}, got {errors:?}"
        );
    }
}

#[test]
fn checker_finds_missing_events_pushes_and_types() {
    let full = synthetic("", "");
    let without = |needle: &str| -> String {
        full.lines()
            .filter(|l| !l.contains(needle))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let errors = check(&without("`sync_event_ack`"), &fake_fns());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`sync_event_ack` (Event::ALL) has no method row")),
        "{errors:?}"
    );
    let errors = check(&without("| `trans_msg_rec` |"), &fake_fns());
    assert!(
        errors
            .iter()
            .any(|e| e.contains("push `trans_msg_rec` has no row")),
        "{errors:?}"
    );
    let errors = check(&without("| 201 |"), &fake_fns());
    assert!(
        errors.iter().any(|e| e.contains("type 201 has no row")),
        "{errors:?}"
    );
    let errors = check(
        &synthetic("", "| `event_notification` | 7 | someone | `ok_test` |\n"),
        &fake_fns(),
    );
    assert!(errors.iter().any(|e| e.contains("type `7`")), "{errors:?}");
}

#[test]
fn fn_names_reads_definitions_only() {
    let mut out = HashSet::new();
    fn_names(
        "fn a_b() {}\npub(crate) fn c1(x: u8)\n    async fn  d() {}\nlet def_fn = 1; // fn\nfn_e();",
        &mut out,
    );
    let mut got: Vec<_> = out.into_iter().collect();
    got.sort();
    assert_eq!(got, vec!["a_b", "c1", "d"]);
}
