//! The Web SDK V2 public-API facade (`client::sdk`) against a real in-process server.

mod common;

use common::{bounded, fast, start, APPKEY, SECRET, WAIT};
use jmessage_mock::backend::signature;
use jmessage_mock::backend::RoomSeed;
use jmessage_mock::client::sdk::{SdkCall, SdkInstance};
use jmessage_mock::server::{self, RunningServer, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use serde_json::{json, Value};
use std::sync::Arc;

async fn instance(s: &RunningServer) -> SdkInstance {
    SdkInstance::connect(&s.http_url(), &s.upload_url(), fast())
        .await
        .expect("sdk connects")
}

fn init_args() -> Value {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        .to_string();
    let rs = "abcdefghijklmnopqrstuv";
    json!({"appkey": APPKEY, "random_str": rs, "timestamp": ts,
           "signature": signature(APPKEY, &ts, rs, SECRET), "flag": 0})
}

fn ok(call: &SdkCall) -> &[Value] {
    match call {
        SdkCall::Callbacks(c) => c
            .success
            .as_deref()
            .unwrap_or_else(|| panic!("no onSuccess: {call:?}")),
        other => panic!("not callbacks: {other:?}"),
    }
}

/// init + register + login as `name`.
async fn user(s: &RunningServer, name: &str) -> SdkInstance {
    let sdk = instance(s).await;
    let r = sdk.call("init", &[init_args()]).await.expect("init");
    ok(&r);
    let r = sdk
        .call("register", &[json!({"username": name, "password": "pw"})])
        .await
        .expect("register");
    ok(&r);
    let r = sdk
        .call("login", &[json!({"username": name, "password": "pw"})])
        .await
        .expect("login");
    ok(&r);
    sdk
}

fn sent_events(sdk: &SdkInstance, event: &str) -> Vec<Value> {
    sdk.client()
        .sent_frames()
        .iter()
        .filter_map(|f| f.strip_prefix("42"))
        .filter_map(|f| serde_json::from_str::<Value>(f).ok())
        .filter(|v| v[0] == json!(event))
        .map(|v| v[1].clone())
        .collect()
}

#[tokio::test]
async fn init_register_login_and_session_state() {
    bounded(async {
        let s = start().await;
        let sdk = instance(&s).await;
        assert_eq!(
            sdk.call("isInit", &[]).await.expect("isInit"),
            SdkCall::Returned(json!(false))
        );
        assert_eq!(
            sdk.call("isConnect", &[]).await.expect("isConnect"),
            SdkCall::Returned(json!(true))
        );
        // Login before init throws client-side.
        assert!(matches!(
            sdk.call("login", &[json!({"username": "a", "password": "b"})])
                .await
                .expect("login"),
            SdkCall::Thrown(_)
        ));
        ok(&sdk.call("init", &[init_args()]).await.expect("init"));
        assert_eq!(
            sdk.call("isInit", &[]).await.expect("isInit"),
            SdkCall::Returned(json!(true))
        );
        let c_init = &sent_events(&sdk, "c_init")[0];
        assert_eq!(c_init["fromPlatForm"], json!("j"));
        ok(&sdk
            .call("register", &[json!({"username": "anna", "password": "pw"})])
            .await
            .expect("register"));
        assert_eq!(
            sent_events(&sdk, "register")[0]["password"],
            json!(jmessage_mock::backend::md5_hex("pw"))
        );
        let r = sdk
            .call("login", &[json!({"username": "anna", "password": "pw"})])
            .await
            .expect("login");
        let data = &ok(&r)[0];
        assert_eq!(data["code"], json!(0));
        assert!(data.get("rid").is_none(), "rid deleted: {data}");
        let login = &sent_events(&sdk, "login")[0];
        assert_eq!(login["version"], json!("2.5.0"));
        assert_eq!(
            login["password"],
            json!(jmessage_mock::backend::md5_hex("pw"))
        );
        assert_eq!(
            sent_events(&sdk, "sync_check").len(),
            1,
            "sync_check after login"
        );
        assert_eq!(
            sdk.call("isLogin", &[]).await.expect("isLogin"),
            SdkCall::Returned(json!(true))
        );
        // A wrong password fails through onFail.
        let other = instance(&s).await;
        ok(&other.call("init", &[init_args()]).await.expect("init"));
        let r = other
            .call("login", &[json!({"username": "anna", "password": "nope"})])
            .await
            .expect("login");
        match r {
            SdkCall::Callbacks(c) => {
                assert!(c.success.is_none());
                assert_eq!(c.fail.expect("onFail")["code"], json!(880104));
                assert!(c.ack);
            }
            other => panic!("{other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn logged_in_only_methods_throw_before_login() {
    bounded(async {
        let s = start().await;
        let sdk = instance(&s).await;
        ok(&sdk.call("init", &[init_args()]).await.expect("init"));
        let r = sdk
            .call(
                "sendSingleMsg",
                &[json!({"target_username": "x", "content": "hi"})],
            )
            .await
            .expect("call");
        // The SDK's own messages (2.6.0 `__checkLogin` / `__checkInit`).
        assert_eq!(r, SdkCall::Thrown("must login first".into()));
        assert!(sent_events(&sdk, "s_across_single_text").is_empty());
        assert_eq!(
            sdk.call("getGroups", &[]).await.expect("call"),
            SdkCall::Thrown("must login first".into())
        );
        let fresh = instance(&s).await;
        for m in ["login", "register"] {
            let r = fresh
                .call(m, &[json!({"username": "u", "password": "p"})])
                .await
                .expect("call");
            assert_eq!(r, SdkCall::Thrown("must init first".into()), "{m}");
        }
    })
    .await
}

/// The last response frame of `event` the server sent, as JSON.
fn response_frame(s: &RunningServer, event: &str) -> Value {
    let e = s
        .faults
        .journal(0)
        .into_iter()
        .rfind(|e| e.kind == "response" && e.event.as_deref() == Some(event))
        .expect("a response in the journal");
    let text = e.frame.trim_start_matches("42");
    let v: Value = serde_json::from_str(text).expect("frame JSON");
    v[1].clone()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn fields_the_sdk_deletes_leave_the_other_keys_in_wire_order() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "oalice").await;
        let _bob = user(&s, "obob").await;
        let r = alice
            .call("getUserInfo", &[json!({"username": "obob"})])
            .await
            .expect("info");
        let wire = response_frame(&s, "get_across_user_info");
        let mut want = keys(&wire["user_info"]);
        want.retain(|k| k != "uid");
        assert_eq!(keys(&ok(&r)[0]["user_info"]), want);
        ok(&alice
            .call(
                "addSingleBlacks",
                &[json!({"member_usernames": [{"username": "obob"}]})],
            )
            .await
            .expect("black"));
        let r = alice.call("getBlacks", &[]).await.expect("blacks");
        let wire = response_frame(&s, "get_black_list");
        let mut want = keys(&wire["black_list"][0]);
        want.retain(|k| k != "uid");
        assert!(want.len() > 2, "{wire}");
        assert_eq!(keys(&ok(&r)[0]["black_list"][0]), want);
    })
    .await
}

#[tokio::test]
async fn on_timeout_carries_the_rid_of_the_request() {
    bounded(async {
        let s = start().await;
        s.faults
            .add(
                serde_json::from_value(
                    json!({"id": "mute", "when": {"event": ["get_across_user_info"]},
                                              "action": "never_answer"}),
                )
                .expect("rule"),
            )
            .expect("rule added");
        let sdk = SdkInstance::connect(
            &s.http_url(),
            &s.upload_url(),
            jmessage_mock::client::ClientConfig {
                response_timeout: Some(std::time::Duration::from_millis(200)),
                ..fast()
            },
        )
        .await
        .expect("sdk connects");
        ok(&sdk.call("init", &[init_args()]).await.expect("init"));
        ok(&sdk
            .call(
                "register",
                &[json!({"username": "talice", "password": "pw"})],
            )
            .await
            .expect("register"));
        ok(&sdk
            .call("login", &[json!({"username": "talice", "password": "pw"})])
            .await
            .expect("login"));
        let r = sdk
            .call("getUserInfo", &[json!({"username": "talice"})])
            .await
            .expect("call");
        let SdkCall::Callbacks(cb) = r else {
            panic!("not callbacks: {r:?}")
        };
        let t = cb.timeout.expect("onTimeout");
        let sent = sent_events(&sdk, "get_across_user_info");
        assert_eq!(sent.len(), 5);
        assert_eq!(t["rid"], sent[0]["rid"]);
        assert_eq!(keys(&t), ["rid", "data", "response_timeout"]);
        assert_eq!(t["data"], json!({"username": "talice", "appkey": APPKEY}));
        assert_eq!(t["response_timeout"], json!(true));
    })
    .await
}

#[tokio::test]
async fn send_single_msg_reaches_on_msg_receive_enriched() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "alice").await;
        let bob = user(&s, "bobb").await;
        bob.listen("onMsgReceive");
        assert!(alice.call("noSuchMethod", &[]).await.is_err());
        // No content: nothing is sent, no callback.
        let r = alice
            .call("sendSingleMsg", &[json!({"target_username": "bobb"})])
            .await
            .expect("call");
        assert!(matches!(r, SdkCall::Ignored(_)), "{r:?}");
        let r = alice
            .call(
                "sendSingleMsg",
                &[
                    json!({"target_username": "bobb", "target_nickname": "Bobby",
                         "content": "hello", "extras": {"k": 1}}),
                ],
            )
            .await
            .expect("send");
        let succ = ok(&r);
        assert_eq!(succ.len(), 1, "single sends get only (data)");
        assert!(succ[0]["msg_id"].as_i64().is_some());
        let req = &sent_events(&alice, "s_across_single_text")[0];
        assert_eq!(req["target_id"], json!("bobb"));
        assert_eq!(req["no_offline"], json!(false));
        assert_eq!(req["no_notification"], json!(false));
        assert_eq!(req["target_name"], json!("Bobby"));
        assert_eq!(req["appkey"], json!(APPKEY));
        let content = &req["content"];
        assert_eq!(content["from_platform"], json!("web"));
        assert_eq!(content["target_type"], json!("single"));
        assert_eq!(content["from_id"], json!("alice"));
        assert_eq!(
            content["msg_body"],
            json!({"text": "hello", "extras": {"k": 1}})
        );
        assert!(content["create_time"].as_i64().is_some());
        assert!(content.get("from_appkey").is_none());

        let got = bob
            .expect_delivery("onMsgReceive", WAIT)
            .await
            .expect("onMsgReceive");
        let m = &got["messages"][0];
        assert_eq!(m["from_username"], json!("alice"));
        assert_eq!(m["from_appkey"], json!(APPKEY));
        assert_eq!(m["key"], m["from_uid"]);
        assert_eq!(m["content"]["msg_body"]["text"], json!("hello"));
        assert_eq!(
            bob.call("getUnreadMsgCnt", &[json!({"username": "alice"})])
                .await
                .expect("cnt"),
            SdkCall::Returned(json!(1))
        );
        // The reference client confirmed it.
        let deadline = std::time::Instant::now() + WAIT;
        while sent_events(&bob, "msg_recv_v2").is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(sent_events(&bob, "msg_recv_v2").len(), 1);
    })
    .await
}

#[tokio::test]
async fn group_send_gets_data_and_msg_and_group_info_has_group_type() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "galice").await;
        let bob = user(&s, "gbob").await;
        let r = alice
            .call(
                "createGroup",
                &[json!({"group_name": "g1", "group_description": "d"})],
            )
            .await
            .expect("create");
        let gid = ok(&r)[0]["gid"].clone();
        assert!(gid.as_i64().is_some(), "{r:?}");
        ok(&alice
            .call(
                "addGroupMembers",
                &[json!({"gid": gid, "member_usernames": [{"username": "gbob"}]})],
            )
            .await
            .expect("add"));
        bob.listen("onMsgReceive");
        let r = alice
            .call(
                "sendGroupMsg",
                &[json!({"target_gid": gid, "target_gname": "g1", "content": "hey"})],
            )
            .await
            .expect("send");
        let succ = ok(&r);
        assert_eq!(succ.len(), 2, "(data, msg)");
        let (data, msg) = (&succ[0], &succ[1]);
        assert_eq!(msg["msg_id"], data["msg_id"]);
        assert_eq!(msg["target_gid"], json!(gid.to_string()));
        assert_eq!(msg["content"]["target_type"], json!("group"));
        assert_eq!(msg["content"]["target_id"], json!(gid.to_string()));
        assert!(msg.get("rid").is_none());
        let got = bob
            .expect_delivery("onMsgReceive", WAIT)
            .await
            .expect("group message");
        assert_eq!(got["messages"][0]["key"], gid);

        let r = alice
            .call("getGroupInfo", &[json!({"gid": gid})])
            .await
            .expect("info");
        let info = &ok(&r)[0]["group_info"];
        assert!(info.get("group_type").is_some(), "{info}");
        assert!(info.get("flag").is_none(), "{info}");
        let r = alice.call("getGroups", &[]).await.expect("groups");
        let g = &ok(&r)[0]["group_list"][0];
        assert!(
            g.get("group_type").is_some() && g.get("flag").is_none(),
            "{g}"
        );
        let r = alice
            .call("getGroupMembers", &[json!({"gid": gid})])
            .await
            .expect("members");
        for m in ok(&r)[0]["member_list"].as_array().expect("list") {
            assert!(m.get("uid").is_none() && m.get("mtime").is_none(), "{m}");
        }
    })
    .await
}

#[tokio::test]
async fn get_user_info_defaults_appkey_and_drops_uid() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "ualice").await;
        let r = alice
            .call("getUserInfo", &[json!({"username": "seeded"})])
            .await
            .expect("info");
        let info = &ok(&r)[0]["user_info"];
        assert_eq!(info["username"], json!("seeded"));
        assert!(info.get("uid").is_none(), "{info}");
        assert_eq!(
            sent_events(&alice, "get_across_user_info")[0]["appkey"],
            json!(APPKEY)
        );
    })
    .await
}

#[tokio::test]
async fn send_single_pic_uploads_then_sends_the_upload_answer() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "palice").await;
        let _bob = user(&s, "pbob").await;
        // A 1x1 PNG.
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
        let r = alice
            .call(
                "sendSinglePic",
                &[json!({"target_username": "pbob",
                         "image": {"$file": {"name": "a.png", "type": "image/png", "base64": png}}})],
            )
            .await
            .expect("pic");
        let data = &ok(&r)[0];
        assert!(data["msg_id"].as_i64().is_some(), "{data}");
        assert_eq!(sent_events(&alice, "get_upload_token").len(), 1);
        let req = &sent_events(&alice, "s_across_single_text")[0];
        let body = &req["content"]["msg_body"];
        assert_eq!(req["content"]["msg_type"], json!("image"));
        assert!(body["media_id"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        assert_eq!(body["width"], json!(1));
        assert_eq!(body["height"], json!(1));
        // The SDK rebuilds an image body from a fixed field list (no hash, no fname).
        assert_eq!(
            keys(body),
            ["media_id", "media_crc32", "width", "height", "format", "fsize"]
        );
        // A media id the SDK can resolve.
        let r = alice
            .call("getResource", &[json!({"media_id": body["media_id"]})])
            .await
            .expect("resource");
        assert!(ok(&r)[0]["url"].as_str().is_some());
    })
    .await
}

#[tokio::test]
async fn friend_invitation_reaches_on_event_notification() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "falice").await;
        let bob = user(&s, "fbob").await;
        bob.listen("onEventNotification");
        ok(&alice
            .call("addFriend", &[json!({"target_name": "fbob", "why": "hi"})])
            .await
            .expect("add"));
        let req = &sent_events(&alice, "add_friend")[0];
        assert_eq!(req["from_type"], json!(1));
        assert_eq!(req["why"], json!("hi"));
        let ev = bob
            .expect_delivery("onEventNotification", WAIT)
            .await
            .expect("event");
        assert_eq!(ev["event_type"], json!(5));
        assert_eq!(ev["extra"], json!(1));
        assert_eq!(ev["from_username"], json!("falice"));
        for k in ev.as_object().expect("object").keys() {
            assert!(
                [
                    "event_id",
                    "event_type",
                    "from_username",
                    "gid",
                    "to_usernames",
                    "ctime",
                    "extra",
                    "return_code",
                    "from_appkey",
                    "msg_ids",
                    "from_gid",
                    "msgid_list",
                    "to_groups",
                    "new_owner",
                    "group_name",
                    "ctime_ms",
                    "media_id",
                    "from_nickname",
                    "from_eventid",
                    "description"
                ]
                .contains(&k.as_str()),
                "field {k} passed the SDK filter"
            );
        }
        alice.listen("onEventNotification");
        ok(&bob
            .call("acceptFriend", &[json!({"target_name": "falice"})])
            .await
            .expect("accept"));
        assert_eq!(
            sent_events(&bob, "add_friend")[0],
            json!({"target_name": "falice", "why": "yes", "from_type": 2,
                   "rid": sent_events(&bob, "add_friend")[0]["rid"]})
        );
        let ev = alice
            .expect_delivery("onEventNotification", WAIT)
            .await
            .expect("answer");
        assert_eq!(ev["event_type"], json!(5));
        assert_eq!(ev["extra"], json!(2));
        let r = alice.call("getFriendList", &[]).await.expect("friends");
        let f = &ok(&r)[0]["friend_list"][0];
        assert_eq!(f["username"], json!("fbob"));
        assert!(f.get("uid").is_none(), "{f}");
    })
    .await
}

async fn start_with_room() -> RunningServer {
    let mut cfg = common::backend_config();
    cfg.seeds.rooms.push(RoomSeed {
        appkey: APPKEY.into(),
        id: Some(4242),
        name: "lobby".into(),
        description: "the lobby".into(),
        max_member_count: 100,
    });
    server::start(
        ServerConfig::new(cfg, TransportConfig::default()),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("server starts")
}

#[tokio::test]
async fn chatroom_info_cache_room_send_and_on_room_msg() {
    bounded(async {
        let s = start_with_room().await;
        let alice = user(&s, "ralice").await;
        let bob = user(&s, "rbobb").await;
        // Uncached: goes to the server.
        let r = alice
            .call("getChatroomInfo", &[json!({"id": 4242})])
            .await
            .expect("info");
        assert_eq!(ok(&r)[0]["info"]["name"], json!("lobby"));
        assert_eq!(sent_events(&alice, "room_info").len(), 1);
        // Listed rooms are cached: answered locally after ~100 ms, no request, no ack.
        let r = bob
            .call("getAppkeyChatrooms", &[json!({"start": 0})])
            .await
            .expect("rooms");
        let room = ok(&r)[0]["result"]["rooms"][0].clone();
        assert_eq!(room["id"], json!(4242));
        let t0 = std::time::Instant::now();
        let r = bob
            .call("getChatroomInfo", &[json!({"id": "4242"})])
            .await
            .expect("cached info");
        assert!(t0.elapsed() >= std::time::Duration::from_millis(100));
        assert_eq!(ok(&r)[0]["info"], room);
        assert!(matches!(&r, SdkCall::Callbacks(c) if !c.ack));
        assert!(sent_events(&bob, "room_info").is_empty());

        ok(&alice
            .call("enterChatroom", &[json!({"id": 4242})])
            .await
            .expect("join"));
        ok(&bob
            .call("enterChatroom", &[json!({"id": 4242})])
            .await
            .expect("join"));
        alice.listen("onRoomMsg");
        let r = bob
            .call(
                "sendChatroomMsg",
                &[json!({"target_rid": 4242, "content": "yo"})],
            )
            .await
            .expect("room send");
        let succ = ok(&r);
        assert_eq!(succ.len(), 2, "(data, msg)");
        assert_eq!(succ[1]["target_gid"], json!("4242"));
        assert_eq!(succ[1]["target_name"], json!("lobby"), "cached room name");
        assert_eq!(succ[1]["content"]["target_type"], json!("chatroom"));
        assert_eq!(succ[1]["msg_id"], succ[0]["msg_id"]);
        let got = alice
            .expect_delivery("onRoomMsg", WAIT)
            .await
            .expect("onRoomMsg");
        assert_eq!(got["content"]["msg_body"]["text"], json!("yo"));
    })
    .await
}

#[tokio::test]
async fn on_disconnect_fires_when_the_connection_drops_after_login() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "dalice").await;
        alice.listen("onDisconnect");
        alice.client().drop_connection();
        assert!(alice.expect_delivery("onDisconnect", WAIT).await.is_some());
        assert_eq!(
            alice.call("isLogin", &[]).await.expect("isLogin"),
            SdkCall::Returned(json!(false))
        );
        // 2.6.0 clears appkey too, and builds a new connection at once: the app inits and
        // logs in again there (protocol.md 1.7).
        assert_eq!(
            alice.call("isInit", &[]).await.expect("isInit"),
            SdkCall::Returned(json!(false))
        );
        let old = alice.client();
        ok(&alice.call("init", &[init_args()]).await.expect("init"));
        assert!(!Arc::ptr_eq(&old, &alice.client()), "a new connection");
        ok(&alice
            .call("login", &[json!({"username": "dalice", "password": "pw"})])
            .await
            .expect("login"));
        assert_eq!(
            alice.call("isLogin", &[]).await.expect("isLogin"),
            SdkCall::Returned(json!(true))
        );
    })
    .await
}

#[tokio::test]
async fn a_refused_first_handshake_is_retried_like_the_manager_does() {
    bounded(async {
        let s = start().await;
        s.faults
            .add(jmessage_mock::faults::FaultSpec {
                id: "no-ws".into(),
                when: Default::default(),
                action: jmessage_mock::faults::ActionSpec::RefuseWebsocket,
                nth: vec![],
                after: None,
                times: Some(1),
                probability: None,
                seed: None,
                enabled: true,
                steps: None,
            })
            .expect("rule");
        let sdk = instance(&s).await;
        ok(&sdk.call("init", &[init_args()]).await.expect("init"));
        let refused = s
            .faults
            .journal(0)
            .iter()
            .filter(|e| e.fault.is_some())
            .count();
        assert_eq!(refused, 1);
    })
    .await
}

#[tokio::test]
async fn no_disturb_calls_carry_version_zero_and_receipts_use_sessions() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "nalice").await;
        let _bob = user(&s, "nbob").await;
        ok(&alice
            .call("addSingleNoDisturb", &[json!({"target_name": "nbob"})])
            .await
            .expect("nd"));
        assert_eq!(
            sent_events(&alice, "add_msg_no_disturb_single")[0]["version"],
            json!(0)
        );
        let r = alice.call("getNoDisturb", &[]).await.expect("get");
        let nd = &ok(&r)[0]["no_disturb"];
        assert_eq!(nd["users"][0]["username"], json!("nbob"));
        let r = alice
            .call(
                "addSingleReceiptReport",
                &[json!({"username": "nbob", "msg_ids": [1, 1, 2]})],
            )
            .await
            .expect("report");
        let sent = &sent_events(&alice, "receipt_report")[0];
        assert_eq!(
            sent["sessions"][0],
            json!({"username": "nbob", "msg_ids": [1, 2], "appkey": APPKEY, "type": 3})
        );
        if let SdkCall::Callbacks(c) = &r {
            if let Some(s) = &c.success {
                assert_eq!(s[1], json!([1, 2]));
            }
        }
    })
    .await
}

#[tokio::test]
async fn offline_messages_arrive_as_on_sync_conversation_with_unread_msg_count() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "oalice").await;
        let bob = instance(&s).await;
        ok(&bob.call("init", &[init_args()]).await.expect("init"));
        ok(&bob
            .call(
                "register",
                &[json!({"username": "obobb", "password": "pw"})],
            )
            .await
            .expect("register"));
        for text in ["one", "two"] {
            ok(&alice
                .call(
                    "sendSingleMsg",
                    &[json!({"target_username": "obobb", "content": text})],
                )
                .await
                .expect("send"));
        }
        bob.listen("onSyncConversation");
        ok(&bob
            .call("login", &[json!({"username": "obobb", "password": "pw"})])
            .await
            .expect("login"));
        let convs = bob
            .expect_delivery("onSyncConversation", WAIT)
            .await
            .expect("onSyncConversation");
        let c = &convs[0];
        assert_eq!(c["from_username"], json!("oalice"), "{c}");
        assert_eq!(c["unread_msg_count"], json!(2), "{c}");
        assert!(c.get("unsync_count").is_none());
        assert_eq!(c["msgs"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            bob.call("getUnreadMsgCnt", &[json!({"username": "oalice"})])
                .await
                .expect("cnt"),
            SdkCall::Returned(json!(2))
        );
        // resetUnreadCount sends unread_single_count and returns nothing.
        assert_eq!(
            bob.call("resetUnreadCount", &[json!({"username": "oalice"})])
                .await
                .expect("reset"),
            SdkCall::Returned(Value::Null)
        );
        assert_eq!(
            sent_events(&bob, "unread_single_count")[0]["type"],
            json!(3)
        );
        assert_eq!(
            bob.call("getUnreadMsgCnt", &[json!({"username": "oalice"})])
                .await
                .expect("cnt"),
            SdkCall::Returned(json!(0))
        );
    })
    .await
}

#[tokio::test]
async fn update_self_avatar_uploads_and_sends_the_media_id() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "aalice").await;
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
        ok(&alice
            .call(
                "updateSelfAvatar",
                &[json!({"avatar": {"$file": {"name": "a.png", "type": "image/png", "base64": png}}})],
            )
            .await
            .expect("avatar"));
        let sent = &sent_events(&alice, "update_user_inf")[0];
        let media = sent["avatar"].as_str().expect("media id string");
        let r = alice
            .call("getUserInfo", &[json!({"username": "aalice"})])
            .await
            .expect("info");
        assert_eq!(ok(&r)[0]["user_info"]["avatar"], json!(media));
    })
    .await
}

#[tokio::test]
async fn profile_change_seen_through_sui_mtime_fires_on_user_inf_update() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "malice").await;
        let bob = user(&s, "mbobb").await;
        ok(&alice
            .call("addFriend", &[json!({"target_name": "mbobb", "why": "hi"})])
            .await
            .expect("add"));
        ok(&bob
            .call("acceptFriend", &[json!({"target_name": "malice"})])
            .await
            .expect("accept"));
        bob.listen("onUserInfUpdate");
        bob.listen("onMsgReceive");
        // Unknown mtime: no update callback, sui_mtime left in place.
        ok(&alice
            .call(
                "sendSingleMsg",
                &[json!({"target_username": "mbobb", "content": "a"})],
            )
            .await
            .expect("send"));
        let m = bob
            .expect_delivery("onMsgReceive", WAIT)
            .await
            .expect("first message");
        assert!(
            m["messages"][0]["content"].get("sui_mtime").is_some(),
            "{m}"
        );
        // Bob learns alice's mtime, then alice changes her profile and writes again.
        ok(&bob.call("getFriendList", &[]).await.expect("friends"));
        ok(&alice
            .call("updateSelfInfo", &[json!({"nickname": "Alice 2"})])
            .await
            .expect("update"));
        ok(&alice
            .call(
                "sendSingleMsg",
                &[json!({"target_username": "mbobb", "content": "b"})],
            )
            .await
            .expect("send"));
        let d = bob
            .next_delivery(WAIT)
            .await
            .expect("a delivery after the second message");
        assert_eq!(d.listener, "onUserInfUpdate", "{d:?}");
        assert_eq!(d.arg["from_username"], json!("malice"));
        assert_eq!(d.arg["from_appkey"], json!(APPKEY));
        assert!(d.arg["mtime"].as_i64().is_some());
        let m = bob
            .expect_delivery("onMsgReceive", WAIT)
            .await
            .expect("second message");
        assert!(
            m["messages"][0]["content"].get("sui_mtime").is_none(),
            "{m}"
        );
    })
    .await
}

#[tokio::test]
async fn retract_reaches_the_peer_as_event_55_with_type_zero() {
    bounded(async {
        let s = start().await;
        let alice = user(&s, "talice").await;
        let bob = user(&s, "tbobb").await;
        let r = alice
            .call(
                "sendSingleMsg",
                &[json!({"target_username": "tbobb", "content": "oops"})],
            )
            .await
            .expect("send");
        let msg_id = ok(&r)[0]["msg_id"].clone();
        bob.listen("onEventNotification");
        let r = alice
            .call("msgRetract", &[json!({"msg_id": msg_id})])
            .await
            .expect("retract");
        assert_eq!(ok(&r).len(), 1, "msgRetract gets only (data)");
        let ev = bob
            .expect_delivery("onEventNotification", WAIT)
            .await
            .expect("event 55");
        assert_eq!(ev["event_type"], json!(55), "{ev}");
        assert_eq!(ev["type"], json!(0), "single-chat retract: {ev}");
        assert_eq!(ev["msgid_list"], json!([msg_id]));
    })
    .await
}
