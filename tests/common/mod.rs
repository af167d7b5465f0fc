//! Shared helpers for integration tests: a real server on 127.0.0.1 (ephemeral port)
//! and reference clients connected to it.
#![allow(dead_code)]

use jmessage_mock::backend::{AppConfig, BackendConfig, UserSeed};
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
    BackendConfig {
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
        groups: vec![],
        rooms: vec![],
        friends: vec![],
        messages: vec![],
        media: vec![],
        blacklists: vec![],
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
