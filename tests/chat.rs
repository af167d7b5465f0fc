//! One-to-one chat between reference clients over real sockets.

mod common;

use common::*;
use jmessage_mock::client::{single_msg, Transport};
use rstest::rstest;
use serde_json::{json, Value};
use std::time::Duration;

fn bodies() -> Vec<(&'static str, Value)> {
    vec![
        (
            "text",
            json!({"text": "hello 你好 😀", "extras": {"k": "v"}}),
        ),
        (
            "image",
            json!({"media_id": "qiniu/image/j/1", "media_crc32": 12345, "width": 64, "height": 48, "format": "png", "fsize": 1024}),
        ),
        (
            "file",
            json!({"media_id": "qiniu/file/j/2", "media_crc32": 999, "hash": "Fh", "fsize": 77, "fname": "notes.txt"}),
        ),
        (
            "location",
            json!({"latitude": 39.9, "longitude": 116.4, "scale": 1, "label": "北京"}),
        ),
        ("custom", json!({"order": 42, "items": ["a", "b"]})),
    ]
}

#[rstest]
#[case::websocket_to_websocket(Transport::Websocket, Transport::Websocket)]
#[case::polling_to_websocket(Transport::Polling, Transport::Websocket)]
#[case::websocket_to_polling(Transport::Websocket, Transport::Polling)]
#[tokio::test]
async fn two_clients_exchange_every_content_type(#[case] a_t: Transport, #[case] b_t: Transport) {
    bounded(async {
        let s = start().await;
        let a = user(&s, a_t, "alice").await;
        let b = user(&s, b_t, "bobby").await;
        for (msg_type, body) in bodies() {
            let r = a
                .request(
                    "s_across_single_text",
                    single_msg("alice", "bobby", msg_type, body.clone()),
                )
                .await
                .expect("reply");
            assert_eq!(r.code(), 0, "{msg_type}: {:?}", r.body);
            assert_eq!(r.get("target_username"), &json!("bobby"));
            assert_eq!(r.get("appkey"), &json!(APPKEY));
            let push = b.expect_push("msg_sync", WAIT).await.expect("msg_sync");
            let m = &push["messages"][0];
            assert_eq!(m["msg_id"], *r.get("msg_id"));
            assert_eq!(m["content"]["msg_type"], json!(msg_type));
            assert_eq!(m["content"]["msg_body"], body);
            assert_eq!(m["content"]["from_appkey"], json!(APPKEY));
            assert_eq!(m["content"]["from_id"], json!("alice"));
            assert!(m.get("rid").is_none(), "pushes never carry a rid");
        }
        // And back.
        let r = b
            .send_text("bobby", "alice", "pong ✓")
            .await
            .expect("reply")
            .ok()
            .expect("ok");
        let push = a.expect_push("msg_sync", WAIT).await.expect("msg_sync");
        assert_eq!(push["messages"][0]["msg_id"], *r.get("msg_id"));
        assert_eq!(
            push["messages"][0]["content"]["msg_body"]["text"],
            json!("pong ✓")
        );
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_rid_sent_five_times_is_stored_and_delivered_once() {
    bounded(async {
        let s = start().await;
        let a = user(&s, Transport::Websocket, "alice").await;
        let b = user(&s, Transport::Websocket, "bobby").await;
        let mut req = single_msg("alice", "bobby", "text", json!({"text": "once"}));
        req["rid"] = json!(123_456_789);
        let frame = format!("42{}", json!(["s_across_single_text", req]));
        for _ in 0..5 {
            a.send_raw(&frame);
        }
        let first = b.expect_push("msg_sync", WAIT).await.expect("delivered");
        assert_eq!(
            first["messages"][0]["content"]["msg_body"]["text"],
            json!("once")
        );
        assert!(
            b.expect_push("msg_sync", Duration::from_millis(500))
                .await
                .is_none(),
            "delivered twice"
        );
        let stored = s.hub.with_backend(|be| be.message_count());
        assert_eq!(stored, 1);
        // Five acks and five identical responses came back to the sender.
        let answers: Vec<_> = a
            .drain_pushes()
            .await
            .into_iter()
            .filter(|p| p.event == "s_across_single_text")
            .collect();
        assert_eq!(answers.len(), 5);
        assert!(answers.iter().all(|p| p.payload == answers[0].payload));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn retries_after_a_reconnect_hit_the_cache() {
    bounded(async {
        let s = start().await;
        let a = user(&s, Transport::Websocket, "alice").await;
        let b = user(&s, Transport::Websocket, "bobby").await;
        let mut req = single_msg(
            "alice",
            "bobby",
            "text",
            json!({"text": "across reconnect"}),
        );
        req["rid"] = json!(777);
        let frame = format!("42{}", json!(["s_across_single_text", req]));
        a.send_raw(&frame);
        b.expect_push("msg_sync", WAIT).await.expect("delivered");
        a.drop_connection();
        // The SDK's retry timer fires on the new connection, before and after login.
        let a2 = client(&s, Transport::Websocket).await;
        a2.send_raw(&frame);
        a2.init(APPKEY, SECRET, 0)
            .await
            .expect("init")
            .ok()
            .expect("ok");
        a2.login("alice", "pw")
            .await
            .expect("login")
            .ok()
            .expect("ok");
        a2.send_raw(&frame);
        assert!(
            b.expect_push("msg_sync", Duration::from_millis(500))
                .await
                .is_none(),
            "re-delivered"
        );
        assert_eq!(s.hub.with_backend(|be| be.message_count()), 1);
        let answers: Vec<_> = a2
            .drain_pushes()
            .await
            .into_iter()
            .filter(|p| p.event == "s_across_single_text")
            .collect();
        assert_eq!(
            answers.len(),
            1,
            "only the post-login retry is answered: {answers:?}"
        );
        assert_eq!(answers[0].payload["code"], json!(0));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn an_offline_recipient_gets_the_message_at_next_login() {
    bounded(async {
        let s = start().await;
        let b = user(&s, Transport::Websocket, "bobby").await;
        b.disconnect();
        let a = user(&s, Transport::Polling, "alice").await;
        let r1 = a
            .send_text("alice", "bobby", "while you were out")
            .await
            .expect("reply")
            .ok()
            .expect("ok");
        let r2 = a
            .send_text("alice", "bobby", "second")
            .await
            .expect("reply")
            .ok()
            .expect("ok");
        // bobby comes back: login + sync_check.
        let b2 = user(&s, Transport::Websocket, "bobby").await;
        let sync = b2
            .expect_push("sync_conversation", WAIT)
            .await
            .expect("sync_conversation");
        let conv = &sync["messages"][0];
        assert_eq!(conv["from_username"], json!("alice"));
        assert_eq!(conv["unsync_count"], json!(2));
        let ids: Vec<_> = conv["msgs"]
            .as_array()
            .expect("msgs")
            .iter()
            .map(|m| m["msg_id"].clone())
            .collect();
        assert_eq!(
            ids,
            vec![r1.get("msg_id").clone(), r2.get("msg_id").clone()]
        );
        // The client acked the sync: a new check finds nothing.
        let key = sync["sync_key"].clone();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = b2
            .request(
                "sync_check",
                json!({"sync_key": key, "sync_type": 0, "sync_event_key": 0, "msg_receipt_key": 0}),
            )
            .await
            .expect("reply");
        assert_eq!(again.get("sync_key"), &key);
        assert!(b2
            .expect_push("sync_conversation", Duration::from_millis(400))
            .await
            .is_none());
        // get_conversations lists the peer.
        let conv = b2
            .request("get_conversations", json!({}))
            .await
            .expect("reply")
            .ok()
            .expect("ok");
        assert_eq!(conv.get("conversations")[0]["username"], json!("alice"));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn seeded_user_logs_in_and_second_web_login_kicks_the_first() {
    bounded(async {
        let s = start().await;
        let c1 = client(&s, Transport::Websocket).await;
        c1.init(APPKEY, SECRET, 0)
            .await
            .expect("init")
            .ok()
            .expect("ok");
        c1.login("seeded", "123456")
            .await
            .expect("login")
            .ok()
            .expect("ok");
        let c2 = client(&s, Transport::Websocket).await;
        c2.init(APPKEY, SECRET, 0)
            .await
            .expect("init")
            .ok()
            .expect("ok");
        let r = c2
            .login("seeded", "123456")
            .await
            .expect("login")
            .ok()
            .expect("ok");
        assert_eq!(r.get("online_list")[0]["flag"], json!(true));
        let ev = c1
            .expect_push("event_notification", WAIT)
            .await
            .expect("kicked");
        assert_eq!(ev["event_type"], json!(1));
        assert_eq!(ev["extra"], json!(0));
        // The kicked session can no longer act as the user.
        let after = c1
            .request("get_conversations", json!({}))
            .await
            .expect("reply");
        assert_eq!(after.code(), 882004);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn user_info_and_password_change() {
    bounded(async {
        let s = start().await;
        let a = user(&s, Transport::Websocket, "alice").await;
        a.request("update_user_inf", json!({"nickname": "Alice W", "signature": "hi", "extras": {"team": "qa"}})).await.expect("reply").ok().expect("ok");
        let b = user(&s, Transport::Websocket, "bobby").await;
        let info = b.request("get_across_user_info", json!({"username": "alice", "appkey": APPKEY})).await.expect("reply").ok().expect("ok");
        assert_eq!(info.get("user_info")["nickname"], json!("Alice W"));
        assert_eq!(info.get("user_info")["extras"]["team"], json!("qa"));
        let missing = b.request("get_across_user_info", json!({"username": "ghost"})).await.expect("reply");
        assert_eq!(missing.code(), 898002);
        let pwd = a.request("update_user_pwd", json!({"old_pwd": jmessage_mock::backend::md5_hex("pw"), "new_pwd": jmessage_mock::backend::md5_hex("pw2")})).await.expect("reply");
        assert_eq!(pwd.code(), 0);
        let c = client(&s, Transport::Websocket).await;
        c.init(APPKEY, SECRET, 0).await.expect("init").ok().expect("ok");
        assert_eq!(c.login("alice", "pw").await.expect("login").code(), 880104);
        assert_eq!(c.login("alice", "pw2").await.expect("login").code(), 0);
        s.shutdown().await;
    })
    .await
}
