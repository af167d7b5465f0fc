//! Reference snapshots of the official SDK builds: transcripts are deterministic (the same
//! case run twice gives the same text), and scenarios/conformance/VERSIONS.md, the
//! comparison of the committed 2.4.0 / 2.5.0 / 2.6.0 snapshots, is up to date.

use jmessage_mock::conformance::{self, compare, ClientSpec};
use std::path::PathBuf;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The clients VERSIONS.md compares, oldest first.
const VERSIONS: &[&str] = &[
    "jmessage-web-2.4.0",
    "jmessage-web-2.5.0",
    "jmessage-web-2.6.0",
];

#[test]
fn versions_md_is_up_to_date_with_the_committed_snapshots() {
    let clients: Vec<String> = VERSIONS.iter().map(|s| (*s).to_owned()).collect();
    let dir = root().join("scenarios/conformance");
    let text =
        compare::report(&dir, "scenarios/conformance", &clients).expect("snapshots readable");
    let committed = std::fs::read_to_string(dir.join("VERSIONS.md")).unwrap_or_default();
    assert!(
        committed == text,
        "scenarios/conformance/VERSIONS.md is out of date: run `{} --out scenarios/conformance/VERSIONS.md`",
        compare::command_line("scenarios/conformance", &clients)
    );
    // Every case has a snapshot of every build (a missing one would hide a difference).
    assert!(!text.contains("missing snapshot"), "{text}");
}

/// Cases that raced before the runner settled the wire after each step (a push racing
/// the SDK's post-login `sync_check`, an automatic `msg_recv_v2` racing the peer's next
/// request); all pass with 2.4.0, 2.5.0 and 2.6.0.
const RACY: &[&str] = &[
    "single/4_2-001-getconversation-lists-the-peer-after-an-exchange.yaml",
    "friends/4_7-006-declinefriend-tells-the-inviter-with-a-non-zero-return-code.yaml",
    "retract/4_2-014-msgretract-of-a-group-message-notifies-the-other-members.yaml",
    "single/5_4-001-sendsinglemsg-succeeds-and-the-target-s-onmsgreceive-gets-th.yaml",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_transcripts_are_the_same_run_after_run() {
    let Ok(paths) = std::env::var("JMESSAGE_SDK") else {
        eprintln!("SKIPPED: JMESSAGE_SDK is not set (point it at an official Web SDK build; ':' separates several)");
        return;
    };
    let driver = root().join("adapters/jmessage-web/driver.js");
    if !root().join("adapters/jmessage-web/node_modules").is_dir() {
        panic!("JMESSAGE_SDK is set but adapters/jmessage-web has no node_modules (run npm ci)");
    }
    for sdk in paths.split(':').filter(|p| !p.is_empty()) {
        let client = ClientSpec::Command(vec![
            "node".into(),
            driver.display().to_string(),
            "--sdk".into(),
            sdk.to_owned(),
        ]);
        for case in RACY {
            let path = root().join("scenarios/conformance").join(case);
            let sc = jmessage_mock::scenario::load(&path)
                .unwrap_or_else(|e| panic!("{case} does not load: {e:?}"));
            let mut transcripts = Vec::new();
            let mut last = None;
            for _ in 0..2 {
                let r = tokio::time::timeout(
                    Duration::from_secs(120),
                    conformance::run_with(&sc, &client),
                )
                .await
                .expect("the case finishes within 120 s");
                assert!(r.passed(), "{sdk} {case}: {:?}", r.failure());
                transcripts.push(r.transcript.clone());
                last = Some(r);
            }
            let last = last.expect("two runs");
            // The committed reference snapshot of this build, when there is one.
            let snap = conformance::snapshot::path_for(&last);
            if let Ok(text) = std::fs::read_to_string(&snap) {
                let body = text
                    .strip_prefix("---\n")
                    .and_then(|rest| rest.find("\n---\n").map(|i| &rest[i + 5..]))
                    .unwrap_or(&text);
                assert!(
                    body == transcripts[0],
                    "{sdk} {case}: the transcript differs from {}",
                    snap.display()
                );
            }
            if transcripts[0] != transcripts[1] {
                let diff = similar::TextDiff::from_lines(&transcripts[0], &transcripts[1])
                    .unified_diff()
                    .header("first run", "second run")
                    .to_string();
                panic!("{sdk} {case}: the transcript changed between runs:\n{diff}");
            }
        }
    }
}
