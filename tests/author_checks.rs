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
  - call: {client: a, method: init, args: [{$auth: {flag: 0}}]}
  - call: {client: a, method: login, args: [{username: alice, password: pw}]}
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
        ("8:35", "unknown listener \"onMsgRecieve\"", "did you mean \"onMsgReceive\"?"),
        ("9:31", "unknown method \"sendGroupMessage\"", "did you mean \"sendGroupMsg\"?"),
        (
            "10:54",
            "sendSingleMsg has no argument \"target_usrname\"",
            "did you mean \"target_username\"?",
        ),
    ] {
        assert!(stderr.contains(&format!("{file}:{pos}: {what}")), "{pos} {what}: {stderr}");
        assert!(stderr.contains(&format!("hint: {hint}")), "{hint}: {stderr}");
    }
    // `run` refuses the file as invalid input (exit 2) instead of grading it UNIMPL.
    let out = bin().arg("run").arg(&f).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(!stdout.contains("passed"), "nothing ran: {stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
