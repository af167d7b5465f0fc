//! The JSON Schemas for editor completion: the committed files are what the code
//! generates, every shipped scenario and fixture validates, the schema rejects what the
//! loader rejects (unknown keys, unknown actions), and every full scenario shown in
//! docs/scenarios.md both loads and validates.

use jmessage_mock::scenario::schema::{schema, schema_text, Kind};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_to_json(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("YAML converts to JSON")
}

fn validator(kind: Kind) -> jsonschema::Validator {
    jsonschema::draft7::new(&schema(kind)).expect("the generated schema is a valid draft-7 schema")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    jmessage_mock::scenario::collect_files(dir).expect("directory lists")
}

#[test]
fn committed_schemas_match_the_code() {
    for kind in [Kind::Scenario, Kind::Fixtures] {
        let path = root().join(kind.committed_path());
        let committed = std::fs::read_to_string(&path).expect("committed schema exists");
        let generated = schema_text(kind);
        assert!(
            committed == generated,
            "{} is out of date; regenerate it with\n  cargo run -- schema {} > {}",
            path.display(),
            match kind {
                Kind::Scenario => "scenario",
                Kind::Fixtures => "fixtures",
            },
            kind.committed_path()
        );
    }
}

#[test]
fn the_schema_command_prints_the_committed_files() {
    for (arg, kind) in [
        (None, Kind::Scenario),
        (Some("scenario"), Kind::Scenario),
        (Some("fixtures"), Kind::Fixtures),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jmessage-mock"));
        cmd.arg("schema");
        cmd.args(arg);
        let out = cmd.output().expect("runs");
        assert!(out.status.success(), "{arg:?}");
        let committed =
            std::fs::read_to_string(root().join(kind.committed_path())).expect("committed");
        assert_eq!(String::from_utf8_lossy(&out.stdout), committed, "{arg:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_jmessage-mock"))
        .args(["schema", "config"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_shipped_scenario_and_fixture_validates() {
    let scenario = validator(Kind::Scenario);
    let fixtures = validator(Kind::Fixtures);
    let mut checked = (0, 0);
    for f in yaml_files(&root().join("scenarios"))
        .into_iter()
        .chain(yaml_files(&root().join("fixtures")))
    {
        let doc = yaml_to_json(&std::fs::read_to_string(&f).expect("readable"));
        let (v, n) = if jmessage_mock::scenario::is_fixture_file(&f) {
            (&fixtures, &mut checked.1)
        } else {
            (&scenario, &mut checked.0)
        };
        let e = errors(v, &doc);
        assert!(e.is_empty(), "{}: {e:#?}", f.display());
        *n += 1;
    }
    assert!(checked.0 >= 10 && checked.1 >= 1, "{checked:?}");
}

/// Files the loader rejects for their shape; the schema must reject them too.
const REJECTED_SCENARIOS: &[(&str, &str)] = &[
    (
        "unknown top-level key",
        "name: x\nsteps: []\nexpectations: []\n",
    ),
    ("missing name", "steps: []\n"),
    (
        "unknown key in a fault",
        "name: x\nfaults:\n  - id: a\n    action: drop\n    whne: {}\n",
    ),
    (
        "unknown key in a match",
        "name: x\nfaults:\n  - {id: a, action: drop, when: {dir: in}}\n",
    ),
    (
        "unknown action",
        "name: x\nfaults:\n  - {id: a, action: explode}\n",
    ),
    (
        "unknown delay distribution",
        "name: x\nfaults:\n  - {id: a, action: {delay: {pareto: 3}}}\n",
    ),
    (
        "unknown key in close",
        "name: x\nfaults:\n  - {id: a, action: {close: {abrupt: true, later: true}}}\n",
    ),
    (
        "wrong type",
        "name: x\nfaults:\n  - {id: a, action: drop, times: many}\n",
    ),
    ("unknown step", "name: x\nsteps:\n  - conect: {client: a}\n"),
    (
        "unknown outcome",
        "name: x\nsteps:\n  - connect: {client: a}\n  - init: {client: a, expect: timeout}\n",
    ),
    (
        "unknown expectation",
        "name: x\nexpect:\n  - messages_sent: 1\n",
    ),
    (
        "unknown key in a fixture user",
        "name: x\nfixtures:\n  users:\n    - {username: a, password: p, pasword: q}\n",
    ),
    (
        "unknown fixtures section",
        "name: x\nfixtures:\n  channels: []\n",
    ),
];

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let v = validator(Kind::Scenario);
    for (what, text) in REJECTED_SCENARIOS {
        assert!(
            jmessage_mock::scenario::parse(text, "t.yaml").is_err(),
            "{what}: the loader accepts it"
        );
        assert!(
            !errors(&v, &yaml_to_json(text)).is_empty(),
            "{what}: the schema accepts it"
        );
    }
    let f = validator(Kind::Fixtures);
    for text in [
        "users: []\nmembers: []\n",
        "apps:\n  - {appkey: k, secret: s, maxusers: 3}\n",
    ] {
        assert!(!errors(&f, &yaml_to_json(text)).is_empty(), "{text}");
    }
    assert!(errors(
        &f,
        &yaml_to_json("users:\n  - {username: a, password: p}\n")
    )
    .is_empty());
}

/// Every step, action, delay distribution, outcome and expectation in one file: both
/// the loader and the schema accept it.
const EVERYTHING: &str = r#"
id: JMC-X-001
name: everything
description: every construct once
spec: "protocol.md 2.2"
include: [fixtures/two-users.yaml]
fixtures:
  apps:
    - {appkey: other-app, secret: s2, name: Other, cross_app: [], max_users: 10}
  users:
    - {appkey: other-app, username: carl, password: pw, nickname: C, signature: s, gender: 1,
       region: r, address: a, birthday: "2000-01-01", extras: {k: v}}
  groups:
    - {gid: 90001, name: g, desc: d, owner: alice, admins: [bobby], members: [], silenced: [bobby],
       public: true, max_members: 50}
  rooms:
    - {id: 90002, name: r, description: d, max_member_count: 10}
  friends:
    - users: [alice, bobby]
  messages:
    - {from: alice, to: bobby, text: hi}
    - {from: alice, group: 90001, text: hi all}
demo_data: false
time_scale: 0.5
faults:
  - {id: f1, when: {direction: out, kind: ack, event: [s_across_single_text], user: alice}, action: drop, nth: [1, 2]}
  - {id: f2, action: duplicate, after: 1, times: 2, probability: 0.5, seed: 7, enabled: false}
  - {id: f3, action: reorder}
  - {id: f4, action: kick}
  - {id: f5, action: corrupt}
  - {id: f6, action: stop_pings}
  - {id: f7, action: never_answer}
  - {id: f8, action: refuse_websocket}
  - {id: f9, action: refuse_upgrade}
  - {id: f10, action: refuse_polling}
  - {id: f11, action: {delay: 100}}
  - {id: f12, action: {delay: {fixed: 100}}}
  - {id: f13, action: {delay: {uniform: [10, 20]}}}
  - {id: f14, action: {delay: {lognormal: {median: 100, sigma: 0.5}}}}
  - {id: f15, action: {error: 880209}}
  - {id: f16, action: {close: {abrupt: true, after: true}}}
  - {id: f17, action: {close: {}}}
  - {id: f18, action: {throttle: 2000}}
  - {id: f19, action: {restart: {down_ms: 500}}}
steps:
  - connect: {client: a, transport: polling, refused: false}
  - init: {client: a, appkey: other-app, flag: 0, expect: {code: 0}}
  - register: {client: a, username: zed, password: pw, expect: ack_timeout}
  - login: {client: a, username: alice, password: pw, expect: response_timeout}
  - send_text: {client: a, to: bobby, text: hi, expect: closed}
  - request: {client: a, event: get_across_user_info, payload: {username: bobby}}
  - expect_push: {client: a, event: msg_sync, within_ms: 100, fields: {messages: []}}
  - no_push: {client: a, event: event_notification, within_ms: 50}
  - disconnect: {client: a, abrupt: true}
  - expect_closed: {client: a, within_ms: 100}
  - advance_clock: 600000
  - wait_ms: 10
  - fault_on: f2
  - fault_off: f2
expect:
  - count: {dir: in, kind: request, event: s_across_single_text, user: alice, fault: f1, equals: 2}
  - same_rid: {dir: in, event: s_across_single_text}
  - messages_stored: 1
"#;

#[test]
fn every_construct_is_accepted_by_loader_and_schema() {
    std::env::set_current_dir(root()).expect("cd to the package root");
    if let Err(e) = jmessage_mock::scenario::parse(EVERYTHING, "everything.yaml") {
        panic!("{e:#?}");
    }
    let e = errors(&validator(Kind::Scenario), &yaml_to_json(EVERYTHING));
    assert!(e.is_empty(), "{e:#?}");
}

/// The ```yaml blocks of docs/scenarios.md that are whole files: scenarios (a `name:`
/// line at the top level) and fixture files (a first line that starts with `# fixtures`
/// or names the fixtures schema). The scenarios are also run with the builtin driver.
#[test]
fn the_examples_in_the_reference_load_and_validate() {
    std::env::set_current_dir(root()).expect("cd to the package root");
    let doc = std::fs::read_to_string(root().join("docs/scenarios.md")).expect("docs exist");
    let scenario = validator(Kind::Scenario);
    let fixtures = validator(Kind::Fixtures);
    let (mut n_scenarios, mut n_fixtures) = (0, 0);
    let mut loaded = Vec::new();
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed code block");
        let block = &body[..end];
        rest = &body[end + 3..];
        if block.lines().any(|l| l.starts_with("name:")) {
            match jmessage_mock::scenario::parse(block, "docs/scenarios.md") {
                Ok(sc) => loaded.push(sc),
                Err(e) => panic!("{block}\n{e:#?}"),
            }
            let e = errors(&scenario, &yaml_to_json(block));
            assert!(e.is_empty(), "{block}\n{e:#?}");
            n_scenarios += 1;
        } else if block.starts_with("# fixtures")
            || block
                .lines()
                .next()
                .is_some_and(|l| l.contains("fixtures.schema.json"))
        {
            let e = errors(&fixtures, &yaml_to_json(block));
            assert!(e.is_empty(), "{block}\n{e:#?}");
            n_fixtures += 1;
        }
    }
    assert!(
        n_scenarios >= 3 && n_fixtures >= 1,
        "{n_scenarios} {n_fixtures}"
    );
    // The documented scenarios also pass when run, so the reference shows real behaviour.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        for sc in &loaded {
            let report = tokio::time::timeout(
                std::time::Duration::from_secs(60),
                jmessage_mock::conformance::run(sc),
            )
            .await
            .expect("scenario finished in time");
            assert!(report.passed(), "{}: {:?}", report.name, report.failure());
        }
    });
}
