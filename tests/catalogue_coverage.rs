//! The conformance catalogue (`scenarios/conformance/`) covers the whole public API and
//! every fault kind: every method and listener of docs/api-coverage.md is called or
//! listened to by some case, every `event_notification` type the server sends is awaited
//! by some case, and every fault action of the scenario schema is used by some case.
//! Each case also has a unique, well-formed id tied to a spec section.

use jmessage_mock::scenario::{self, Scenario, Step};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn catalogue() -> Vec<Scenario> {
    let dir = root().join("scenarios").join("conformance");
    let files = scenario::collect_files(&dir).expect("catalogue folder");
    files
        .iter()
        .filter(|f| !scenario::is_fixture_file(f))
        .map(|f| scenario::load(f).unwrap_or_else(|e| panic!("{}: {e:?}", f.display())))
        .collect()
}

/// The backticked names of the first cell of each row of the "Methods" table.
fn api_names() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs").join("api-coverage.md"))
        .expect("docs/api-coverage.md");
    let methods = doc
        .split("## Methods")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Methods section");
    let mut out = BTreeSet::new();
    for line in methods.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or_default();
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 && !part.is_empty() {
                out.insert(part.to_owned());
            }
        }
    }
    out
}

/// `event_type`s of the "Pushes" table.
fn event_types() -> BTreeSet<i64> {
    let doc = std::fs::read_to_string(root().join("docs").join("api-coverage.md"))
        .expect("docs/api-coverage.md");
    let pushes = doc.split("## Pushes").nth(1).expect("a Pushes section");
    pushes
        .lines()
        .filter(|l| l.starts_with("| `event_notification`"))
        .filter_map(|l| l.split('|').nth(2)?.trim().parse().ok())
        .collect()
}

/// Every `event_type` number inside a JSON value.
fn types_in(v: &Value, out: &mut HashSet<i64>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "event_type" {
                    if let Some(n) = x.as_i64() {
                        out.insert(n);
                    }
                }
                types_in(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| types_in(x, out)),
        _ => {}
    }
}

/// The fault action names of the scenario schema (unit variants and object keys).
fn action_names() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs").join("scenario.schema.json"))
        .expect("docs/scenario.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .expect("schema definitions");
    let variants = defs["ActionSpec"]["oneOf"].as_array().expect("ActionSpec");
    let mut out = BTreeSet::new();
    for v in variants {
        if let Some(c) = v.get("const").and_then(Value::as_str) {
            out.insert(c.to_owned());
        }
        for e in v
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = e.as_str() {
                out.insert(s.to_owned());
            }
        }
        if let Some(req) = v.get("required").and_then(Value::as_array) {
            out.extend(req.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    out
}

#[test]
fn every_api_method_and_listener_is_exercised_by_the_catalogue() {
    let cases = catalogue();
    let mut called = HashSet::new();
    let mut listened = HashSet::new();
    for sc in &cases {
        for step in &sc.steps {
            match step {
                Step::Call { method, .. } => {
                    called.insert(method.clone());
                }
                Step::Listen { listener, .. } => {
                    listened.insert(listener.clone());
                }
                _ => {}
            }
        }
    }
    let names = api_names();
    assert!(
        names.len() > 60,
        "the Methods table looks truncated: {names:?}"
    );
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| {
            if n.starts_with("on") {
                !listened.contains(*n)
            } else {
                !called.contains(*n)
            }
        })
        .collect();
    assert!(
        missing.is_empty(),
        "no catalogue case calls or listens to: {missing:?}"
    );
}

#[test]
fn every_event_notification_type_is_awaited_by_the_catalogue() {
    let mut seen = HashSet::new();
    for sc in catalogue() {
        for step in &sc.steps {
            if let Step::ExpectListener {
                fields: Some(f), ..
            } = step
            {
                types_in(f, &mut seen);
            }
        }
        for x in &sc.expect {
            if let scenario::Expectation::Frame { fields, .. } = x {
                types_in(fields, &mut seen);
            }
        }
    }
    let types = event_types();
    assert!(
        types.len() > 20,
        "the Pushes table looks truncated: {types:?}"
    );
    let missing: Vec<i64> = types.into_iter().filter(|t| !seen.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "no catalogue case awaits event_notification types {missing:?}"
    );
}

#[test]
fn every_fault_action_is_used_by_the_catalogue() {
    let mut used = HashSet::new();
    for sc in catalogue() {
        for f in &sc.fault_specs {
            used.insert(f.action.name().to_owned());
        }
    }
    let all = action_names();
    assert!(all.len() >= 10, "schema actions: {all:?}");
    let missing: Vec<&String> = all.iter().filter(|a| !used.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "no catalogue case uses the fault actions {missing:?}"
    );
}

#[test]
fn catalogue_ids_are_unique_well_formed_and_tied_to_a_section() {
    let cases = catalogue();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let mut ids = HashSet::new();
    for sc in &cases {
        let id = sc
            .id
            .as_deref()
            .unwrap_or_else(|| panic!("{}: no id", sc.file));
        let well_formed = id
            .strip_prefix("JMC-")
            .and_then(|rest| rest.rsplit_once('-'))
            .is_some_and(|(section, n)| {
                !section.is_empty()
                    && section.chars().all(|c| c.is_ascii_digit() || c == '.')
                    && n.len() == 3
                    && n.chars().all(|c| c.is_ascii_digit())
            });
        assert!(
            well_formed,
            "{}: id {id} is not JMC-<section>-<nnn>",
            sc.file
        );
        assert!(ids.insert(id.to_owned()), "{}: duplicate id {id}", sc.file);
        assert!(
            sc.spec.as_deref().is_some_and(|s| !s.trim().is_empty()),
            "{}: no spec section",
            sc.file
        );
        let stem = Path::new(&sc.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            stem.starts_with(&id["JMC-".len()..].replace('.', "_")),
            "{}: the file name does not start with the id {id}",
            sc.file
        );
    }
}
