//! Shared helpers for integration tests: a real server on 127.0.0.1 (ephemeral port)
//! and reference clients connected to it.
#![allow(dead_code)]

use jmessage_mock::backend::{AppConfig, BackendConfig, Seeds, UserSeed};
use jmessage_mock::client::{Client, ClientConfig, Transport};
use jmessage_mock::server::{self, RunningServer, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use std::time::Duration;

pub const APPKEY: &str = "itestappkey0000000000001";
pub const SECRET: &str = "itest-secret";
pub const APPKEY2: &str = "itestappkey0000000000002";
pub const SECRET2: &str = "itest-secret-2";
pub const WAIT: Duration = Duration::from_secs(5);

pub fn backend_config() -> BackendConfig {
    let seeds = Seeds {
        apps: vec![
            AppConfig {
                appkey: APPKEY.into(),
                secret: SECRET.into(),
                name: "it".into(),
                cross_app: None,
                max_users: None,
            },
            AppConfig {
                appkey: APPKEY2.into(),
                secret: SECRET2.into(),
                name: "it2".into(),
                cross_app: None,
                max_users: None,
            },
        ],
        users: vec![UserSeed::new(APPKEY, "seeded", "123456", "Seeded")],
        ..Seeds::default()
    };
    BackendConfig {
        seeds,
        signature_ttl_ms: 600_000,
        history: Default::default(),
    }
}

pub async fn start() -> RunningServer {
    start_with(TransportConfig::default()).await
}

pub async fn start_with(transport: TransportConfig) -> RunningServer {
    server::start(
        ServerConfig::new(backend_config(), transport),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("server starts")
}

pub fn fast() -> ClientConfig {
    ClientConfig {
        ack_timeout: Duration::from_millis(300),
        response_timeout: Some(Duration::from_millis(1500)),
        connect_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

pub async fn client(s: &RunningServer, transport: Transport) -> Client {
    Client::connect(
        &s.http_url(),
        ClientConfig {
            transport,
            ..fast()
        },
    )
    .await
    .expect("client connects")
}

/// A client that is initialised, registered (if new) and logged in as `name`.
pub async fn user(s: &RunningServer, transport: Transport, name: &str) -> Client {
    let c = client(s, transport).await;
    c.init(APPKEY, SECRET, 0)
        .await
        .expect("init")
        .ok()
        .expect("init ok");
    let r = c.register(name, "pw").await.expect("register");
    assert!(
        r.code() == 0 || r.code() == 898001,
        "register: {:?}",
        r.body
    );
    c.login(name, "pw")
        .await
        .expect("login")
        .ok()
        .expect("login ok");
    c
}

/// Runs a future with an overall limit so a broken server cannot hang the suite.
pub async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out")
}

/// Whether `node` runs on this machine.
pub fn node_installed() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The repository root.
pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Headless Chromium: `$JMM_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> std::path::PathBuf {
    std::env::var_os("JMM_CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/usr/bin/chromium"))
}

/// `Err(reason)` when this machine cannot run a browser test (Node, the `node_modules`
/// of `dirs`, Chromium). `JMM_REQUIRE_BROWSER=1` turns any reason into a panic, and
/// `JMM_REQUIRE_NODE=1` a missing Node or `node_modules`.
pub fn browser_ready(dirs: &[&std::path::Path]) -> Result<(), String> {
    let required = |v: &str| std::env::var(v).as_deref() == Ok("1");
    let node_problem = if !node_installed() {
        Some("node is not installed".to_owned())
    } else {
        dirs.iter()
            .find(|d| !d.join("node_modules").is_dir())
            .map(|d| {
                format!(
                    "{}/node_modules is missing (run `npm ci --prefix {}`)",
                    d.display(),
                    d.display()
                )
            })
    };
    if let Some(why) = node_problem {
        if required("JMM_REQUIRE_NODE") || required("JMM_REQUIRE_BROWSER") {
            panic!("the browser tests are required but {why}");
        }
        return Err(why);
    }
    let c = chromium();
    if !c.is_file() {
        let why = format!(
            "chromium not found at {} (apt-get install chromium, or set JMM_CHROMIUM)",
            c.display()
        );
        if required("JMM_REQUIRE_BROWSER") {
            panic!("JMM_REQUIRE_BROWSER=1 but {why}");
        }
        return Err(why);
    }
    Ok(())
}

/// A fresh path in the temporary directory.
pub fn temp_file(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("jmm-test-{}-{n}-{name}", std::process::id()))
}

/// `jmessage-mock ARGS...` to completion (bounded): (success, output).
pub async fn cli(args: &[&str]) -> (bool, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jmessage-mock"))
        .args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("jmessage-mock starts");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("jmessage-mock in time")
        .expect("jmessage-mock runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `check` accepts the recording at `path` and `run` replays it against the mock.
pub async fn replays(path: &std::path::Path) {
    let p = path.to_str().expect("utf-8 path");
    let (ok, out) = cli(&["check", p]).await;
    assert!(ok, "check refused the recording:\n{out}");
    let (ok, out) = cli(&["run", p]).await;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(ok, "the recording did not replay:\n{out}\n{text}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
}
