//! docs/ci.md's recipe, followed literally: the lines between `recipe: begin` and
//! `recipe: end` run under `sh` with the builtin client on three scenarios. The first run
//! records the snapshots and exits 0, the second compares and exits 0, and after one
//! snapshot is edited the run exits 1.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The recipe's shell lines, as docs/ci.md shows them (YAML indentation removed).
fn recipe() -> String {
    let doc = std::fs::read_to_string(root().join("docs/ci.md")).expect("docs/ci.md");
    let lines: Vec<&str> = doc
        .lines()
        .skip_while(|l| !l.contains("# recipe: begin"))
        .take_while(|l| !l.contains("# recipe: end"))
        .collect();
    assert!(lines.len() > 1, "no recipe block in docs/ci.md");
    lines
        .iter()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect()
}

const CASES: &[&str] = &[
    "4_2-001-getconversation-lists-the-peer-after-an-exchange.yaml",
    "5_2-001-sendsinglelocation-delivers-a-location-message.yaml",
    "5_2-002-sendsinglecustom-delivers-a-custom-message.yaml",
];

/// A small SDK-repository-like tree: the three cases and the fixture they include.
fn workspace(dir: &Path) {
    let single = dir.join("scenarios/conformance/single");
    std::fs::create_dir_all(&single).expect("dirs");
    std::fs::create_dir_all(dir.join("fixtures")).expect("dirs");
    std::fs::copy(
        root().join("fixtures/conformance.yaml"),
        dir.join("fixtures/conformance.yaml"),
    )
    .expect("fixture");
    for c in CASES {
        std::fs::copy(
            root().join("scenarios/conformance/single").join(c),
            single.join(c),
        )
        .expect("case");
    }
}

fn run_recipe(dir: &Path) -> (Option<i32>, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(recipe())
        .current_dir(dir)
        .env("JMM", env!("CARGO_BIN_EXE_jmessage-mock"))
        .env("SCENARIOS", "scenarios/conformance")
        .env("CLIENT", "builtin")
        .env("SNAPSHOTS", dir.join("conformance/snapshots"))
        .env("OUT", dir)
        .output()
        .expect("sh runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn the_ci_recipe_records_on_its_first_run_then_gates() {
    let dir = std::env::temp_dir().join(format!("jmm-ci-recipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    workspace(&dir);
    let (code, text) = run_recipe(&dir);
    assert_eq!(code, Some(0), "first run records and passes: {text}");
    assert!(text.contains("3 passed, 0 failed"), "{text}");
    let snap = dir
        .join("conformance/snapshots/single/builtin")
        .join(CASES[1].replace(".yaml", ".snap"));
    assert!(snap.exists(), "recorded in the snapshot dir: {text}");
    assert!(
        !dir.join("scenarios/conformance/single/snapshots").exists(),
        "nothing beside the scenarios"
    );
    for report in ["conformance.xml", "conformance.md", "conformance.html"] {
        assert!(dir.join(report).exists(), "{report} written");
    }
    let (code, text) = run_recipe(&dir);
    assert_eq!(code, Some(0), "second run compares and passes: {text}");
    let edited =
        std::fs::read_to_string(&snap).expect("snapshot") + "a line the client never said\n";
    std::fs::write(&snap, edited).expect("edit");
    let (code, text) = run_recipe(&dir);
    assert_eq!(code, Some(1), "a changed snapshot fails: {text}");
    assert!(text.contains("1 failed"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
