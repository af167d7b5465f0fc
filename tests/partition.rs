//! `run --partition K/N` and `report merge`: the shards of a directory are disjoint and
//! together are the whole, and the merged reports of the shards hold every case once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jmessage-mock"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The case lines `run --list` prints (without the count line).
fn list(dir: &str, partition: Option<&str>) -> BTreeSet<String> {
    let mut cmd = bin();
    cmd.current_dir(root()).args(["run", dir, "--list"]);
    if let Some(p) = partition {
        cmd.args(["--partition", p]);
    }
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.ends_with("scenario(s)"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn shards_are_disjoint_and_their_union_is_the_whole() {
    for dir in ["scenarios/conformance/group", "scenarios/basics"] {
        let whole = list(dir, None);
        assert!(whole.len() >= 5, "{dir}: {whole:?}");
        for n in [2, 3] {
            let shards: Vec<BTreeSet<String>> = (1..=n)
                .map(|k| list(dir, Some(&format!("{k}/{n}"))))
                .collect();
            let total: usize = shards.iter().map(BTreeSet::len).sum();
            let union: BTreeSet<String> = shards.iter().flatten().cloned().collect();
            assert_eq!(total, whole.len(), "{dir} {n}: a case is in two shards");
            assert_eq!(union, whole, "{dir} {n}: the shards miss a case");
        }
        // The same split every time, and nextest's spelling means the same.
        assert_eq!(list(dir, Some("1/2")), list(dir, Some("hash:1/2")));
    }
}

#[test]
fn the_split_of_a_directory_is_fixed() {
    // The hash is part of the CLI's contract: a CI matrix keeps its shards across releases.
    let shard = |k: u32| list("scenarios/basics", Some(&format!("{k}/2")));
    let text = format!("1/2:\n{}\n2/2:\n{}\n", join(&shard(1)), join(&shard(2)));
    insta::assert_snapshot!(text);
}

fn join(lines: &BTreeSet<String>) -> String {
    lines.iter().cloned().collect::<Vec<_>>().join("\n")
}

#[test]
fn a_bad_partition_is_refused_with_the_syntax() {
    for bad in ["0/2", "3/2", "two"] {
        let out = bin()
            .current_dir(root())
            .args(["run", "scenarios/basics", "--list", "--partition", bad])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("expected K/N"), "{bad}: {err}");
    }
}

fn run_shard(dir: &str, k: u32, out: &Path) -> (PathBuf, PathBuf) {
    let (junit, results) = (
        out.join(format!("junit{k}.xml")),
        out.join(format!("results{k}.json")),
    );
    let status = bin()
        .current_dir(root())
        .args(["run", dir, "--jobs", "1", "--progress", "lines"])
        .args(["--partition", &format!("{k}/2")])
        .arg("--junit")
        .arg(&junit)
        .arg("--results")
        .arg(&results)
        .output()
        .expect("runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    (junit, results)
}

/// The `(classname, name)` of every test case in a JUnit file, and its failure count.
fn cases(xml: &str) -> (BTreeSet<String>, usize) {
    let names = xml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<testcase name=\""))
        .map(|rest| rest.split('"').next().unwrap_or("").to_owned())
        .collect();
    (names, xml.matches("<failure").count())
}

#[test]
fn merged_shard_reports_hold_every_case_once() {
    let dir = "scenarios/basics";
    let out = std::env::temp_dir().join(format!("jmm-partition-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    let (j1, r1) = run_shard(dir, 1, &out);
    let (j2, r2) = run_shard(dir, 2, &out);
    let merged = out.join("all.xml");
    let status = bin()
        .args(["report", "merge"])
        .args([&j1, &j2])
        .arg("-o")
        .arg(&merged)
        .status()
        .expect("runs");
    assert!(status.success());
    let (html, junit) = (out.join("all.html"), out.join("from-results.xml"));
    let status = bin()
        .args(["report", "merge"])
        .args([&r1, &r2])
        .arg("--html")
        .arg(&html)
        .arg("--junit")
        .arg(&junit)
        .status()
        .expect("runs");
    assert!(status.success());
    let whole = list(dir, None).len();
    let read = |p: &Path| std::fs::read_to_string(p).expect("written");
    let (from_junit, failures) = cases(&read(&merged));
    assert_eq!((from_junit.len(), failures), (whole, 0));
    assert_eq!(cases(&read(&junit)).0, from_junit);
    assert!(read(&merged).contains(&format!("<testsuite name=\"builtin\" tests=\"{whole}\"")));
    let page = read(&html);
    assert!(
        page.contains(&format!("{whole} scenario(s) × builtin")),
        "{page}"
    );
    // Mixed inputs are refused.
    let mixed = bin()
        .args(["report", "merge"])
        .args([&j1, &r2])
        .arg("-o")
        .arg(out.join("x"))
        .output()
        .expect("runs");
    assert_eq!(mixed.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&out);
}
