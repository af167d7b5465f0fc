//! Message history over a real socket: a backlog larger than one sync page reaches a
//! logging-in client complete, in order and once, each page within the page limit.

mod common;

use common::*;
use jmessage_mock::backend::limits::HistoryLimits;
use jmessage_mock::backend::{MessageSeed, UserSeed};
use jmessage_mock::client::Transport;
use jmessage_mock::server::{self, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use serde_json::{json, Value};
use std::time::Duration;

const BACKLOG: usize = 1_200;

/// The `(msg_id, text)` of every message in the `sync_conversation` pushes that arrive
/// within `quiet` of each other, and each push's JSON length.
async fn collect_pages(
    c: &jmessage_mock::client::Client,
    quiet: Duration,
) -> (Vec<(u64, String)>, Vec<usize>) {
    let (mut msgs, mut sizes) = (Vec::new(), Vec::new());
    while let Some(p) = c.expect_push("sync_conversation", quiet).await {
        sizes.push(p.to_string().len());
        for conv in p["messages"].as_array().cloned().unwrap_or_default() {
            for m in conv["msgs"].as_array().cloned().unwrap_or_default() {
                let text = m["content"]["msg_body"]["text"]
                    .as_str()
                    .unwrap_or_default();
                msgs.push((m["msg_id"].as_u64().unwrap_or_default(), text.to_owned()));
            }
        }
    }
    (msgs, sizes)
}

#[tokio::test]
async fn a_backlog_larger_than_a_page_arrives_complete_across_pages() {
    bounded(async {
        let mut cfg = backend_config();
        cfg.seeds
            .users
            .push(UserSeed::new(APPKEY, "sender", "pw", "Sender"));
        cfg.seeds
            .users
            .push(UserSeed::new(APPKEY, "reader", "pw", "Reader"));
        cfg.seeds.messages = (0..BACKLOG)
            .map(|i| MessageSeed {
                appkey: APPKEY.into(),
                from: "sender".into(),
                to: Some("reader".into()),
                group: None,
                text: format!("{i:05} {}", "x".repeat(200)),
            })
            .collect();
        let s = server::start(
            ServerConfig::new(cfg, TransportConfig::default()),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("server starts");
        let reader = user(&s, Transport::Websocket, "reader").await;
        let (msgs, sizes) = collect_pages(&reader, Duration::from_secs(2)).await;
        let limit = HistoryLimits::default().sync_page_bytes + 8 * 1024;
        assert!(
            sizes.len() > 1,
            "one page for {BACKLOG} messages: {sizes:?}"
        );
        assert!(sizes.iter().all(|n| *n <= limit), "{sizes:?} over {limit}");
        let texts: Vec<String> = msgs.iter().map(|(_, t)| t[..5].to_owned()).collect();
        let want: Vec<String> = (0..BACKLOG).map(|i| format!("{i:05}")).collect();
        assert_eq!(texts, want, "complete, in order, once");
        let mut ids: Vec<u64> = msgs.iter().map(|(id, _)| *id).collect();
        ids.dedup();
        assert_eq!(ids.len(), BACKLOG);
        // Every page was confirmed by the client's acks: a new device gets nothing more.
        reader.disconnect();
        let again = user(&s, Transport::Polling, "reader").await;
        let (more, _) = collect_pages(&again, Duration::from_millis(800)).await;
        assert!(more.is_empty(), "{} messages synced twice", more.len());
        // And the session still works.
        let r = again
            .request("get_conversations", json!({}))
            .await
            .expect("reply");
        assert_eq!(r.get("conversations")[0]["username"], Value::from("sender"));
        s.shutdown().await;
    })
    .await
}
