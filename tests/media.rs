//! Media upload/download over real HTTP, and rooms, receipts and retract between
//! reference clients over real sockets.

mod common;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use jmessage_mock::backend::RoomSeed;
use jmessage_mock::client::{single_msg, Client, Transport};
use jmessage_mock::server::RunningServer;
use serde_json::{json, Value};
use tokio::net::TcpStream;

struct HttpReply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl HttpReply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn http(
    s: &RunningServer,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> HttpReply {
    let hostport = s.addr.to_string();
    let stream = TcpStream::connect(&hostport).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", &hostport);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    HttpReply {
        status,
        headers,
        body,
    }
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(b"IHDR");
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    v
}

fn multipart(field: &str, fname: &str, ctype: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----WebKitFormBoundaryJm0ck";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{fname}\"\r\nContent-Type: {ctype}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn auth(c: &Client, name: &str) -> Vec<(&'static str, String)> {
    let r = c
        .request("get_upload_token", json!({}))
        .await
        .expect("reply")
        .ok()
        .expect("token");
    let token = r.get("uptoken").as_str().expect("uptoken").to_owned();
    vec![
        ("X-App-Key", APPKEY.to_owned()),
        ("jm-channel", "w".to_owned()),
        (
            "Authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{name}:{token}"))
            ),
        ),
    ]
}

#[tokio::test]
async fn upload_send_and_download_an_image() {
    bounded(async {
        let s = start().await;
        let a = user(&s, Transport::Websocket, "alice").await;
        let b = user(&s, Transport::Polling, "bobby").await;
        let image = png(64, 48);
        let (ctype, body) = multipart("anything", "cat.png", "image/png", &image);
        let mut headers = auth(&a, "alice").await;
        headers.push(("Content-Type", ctype));
        let up = http(&s, "POST", "/resource?type=image", &headers, body).await;
        assert_eq!(up.status, 200, "{}", String::from_utf8_lossy(&up.body));
        assert_eq!(up.header("access-control-allow-origin"), "*");
        let r = up.json();
        assert_eq!(r["width"], json!(64));
        assert_eq!(r["height"], json!(48));
        assert_eq!(r["format"], json!("png"));
        assert_eq!(r["fsize"], json!(image.len()));
        assert_eq!(r["media_crc32"], json!(crc32fast::hash(&image)));
        assert_eq!(r["fname"], json!("cat.png"));
        assert!(r["hash"].is_string());
        // Send it as an image message; the receiver resolves and downloads it.
        let sent = a
            .request(
                "s_across_single_text",
                single_msg("alice", "bobby", "image", r.clone()),
            )
            .await
            .expect("reply");
        assert_eq!(sent.code(), 0);
        let push = b.expect_push("msg_sync", WAIT).await.expect("msg_sync");
        let media_id = push["messages"][0]["content"]["msg_body"]["media_id"].clone();
        assert_eq!(media_id, r["media_id"]);
        let res = b
            .request("get_resource", json!({"media_id": media_id}))
            .await
            .expect("reply")
            .ok()
            .expect("url");
        let url = res.get("url").as_str().expect("url").to_owned();
        let prefix = format!("{}/media/", s.http_url());
        assert!(url.starts_with(&prefix), "{url}");
        let got = http(&s, "GET", &url[s.http_url().len()..], &[], vec![]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-type"), "image/png");
        assert_eq!(got.header("x-content-type-options"), "nosniff");
        assert_eq!(got.header("content-security-policy"), "sandbox");
        assert_eq!(got.header("content-disposition"), "inline");
        assert_eq!(got.body, image);
        // Without the signature of a get_resource URL: 403, whether the media exists.
        let missing = http(&s, "GET", "/media/qiniu/image/j/none", &[], vec![]).await;
        assert_eq!(missing.status, 403);
        assert_eq!(missing.json()["error"]["code"], json!(882004));
        let r = b
            .request("get_resource", json!({"media_id": "qiniu/none"}))
            .await
            .expect("reply");
        assert_eq!(r.code(), 880005);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn raw_file_upload_preflight_and_refusals() {
    bounded(async {
        let s = start().await;
        let a = user(&s, Transport::Websocket, "alice").await;
        // CORS preflight.
        let pre = http(
            &s,
            "OPTIONS",
            "/resource?type=file",
            &[
                ("Origin", "http://app.example".to_owned()),
                ("Access-Control-Request-Method", "POST".to_owned()),
            ],
            vec![],
        )
        .await;
        assert!(pre.status == 204 || pre.status == 200, "{}", pre.status);
        assert_eq!(pre.header("access-control-allow-origin"), "*");
        assert!(pre.header("access-control-allow-methods").contains("POST"));
        let allowed = pre
            .header("access-control-allow-headers")
            .to_ascii_lowercase();
        for h in ["x-app-key", "jm-channel", "authorization", "content-type"] {
            assert!(allowed.contains(h), "{h} not allowed: {allowed}");
        }
        // A raw body.
        let mut headers = auth(&a, "alice").await;
        headers.push(("Content-Type", "text/plain".to_owned()));
        let up = http(
            &s,
            "POST",
            "/resource?type=file&name=notes.txt",
            &headers,
            b"hello file".to_vec(),
        )
        .await;
        assert_eq!(up.status, 200);
        let r = up.json();
        for k in [
            "media_id",
            "media_crc32",
            "width",
            "height",
            "format",
            "fsize",
            "hash",
            "fname",
        ] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
        assert_eq!(r["fname"], json!("notes.txt"));
        assert_eq!(r["fsize"], json!(10));
        // Bad credentials.
        let bad = http(
            &s,
            "POST",
            "/resource?type=file",
            &[("Authorization", "Basic YWxpY2U6bm9wZQ==".to_owned())],
            b"x".to_vec(),
        )
        .await;
        assert_eq!(bad.status, 401);
        assert_eq!(bad.header("access-control-allow-origin"), "*");
        assert!(bad.json()["error"]["code"].is_number());
        // The token was spent by the upload above: single use.
        let again = http(&s, "POST", "/resource?type=file", &headers, b"x".to_vec()).await;
        assert_eq!(
            again.status,
            401,
            "{}",
            String::from_utf8_lossy(&again.body)
        );
        // Too large: 413 with 898061 (the SDK turns it into 880210).
        s.hub.with_backend(|b| b.set_media_limits(16, 16));
        let mut headers = auth(&a, "alice").await;
        headers.push(("Content-Type", "text/plain".to_owned()));
        let big = http(&s, "POST", "/resource?type=file", &headers, vec![7; 17]).await;
        assert_eq!(big.status, 413);
        assert_eq!(big.json()["error"]["code"], json!(898061));
        let (ctype, body) = multipart("f", "big.png", "image/png", &png(5, 5));
        let mut mh = auth(&a, "alice").await;
        mh.push(("Content-Type", ctype));
        let big = http(&s, "POST", "/resource?type=image", &mh, body).await;
        assert_eq!(big.status, 413);
        assert_eq!(big.json()["error"]["code"], json!(898061));
        s.shutdown().await;
    })
    .await
}

/// The path and query of an absolute URL from `get_resource`.
fn path_of(s: &RunningServer, url: &str) -> String {
    url.strip_prefix(&s.http_url()).unwrap_or(url).to_owned()
}

#[tokio::test]
async fn media_urls_are_signed_expiring_and_active_types_download() {
    bounded(async {
        let s = start().await;
        let a = user(&s, Transport::Websocket, "alice").await;
        let b = user(&s, Transport::Websocket, "bobby").await;
        let c = user(&s, Transport::Websocket, "carol").await;
        // An html page uploaded as a file and sent to bobby.
        let page = b"<script>fetch('/__admin/state')</script>".to_vec();
        let (ctype, body) = multipart("file", "evil.html", "text/html", &page);
        let mut headers = auth(&a, "alice").await;
        headers.push(("Content-Type", ctype));
        let up = http(&s, "POST", "/resource?type=file", &headers, body).await;
        assert_eq!(up.status, 200, "{}", String::from_utf8_lossy(&up.body));
        let r = up.json();
        let sent = a
            .request(
                "s_across_single_text",
                single_msg("alice", "bobby", "file", r.clone()),
            )
            .await
            .expect("reply");
        assert_eq!(sent.code(), 0);
        let id = r["media_id"].clone();
        // carol got no message carrying it: the media does not exist for her.
        let denied = c
            .request("get_resource", json!({"media_id": id}))
            .await
            .expect("reply");
        assert_eq!(denied.code(), 880005);
        let res = b
            .request("get_resource", json!({"media_id": id}))
            .await
            .expect("reply")
            .ok()
            .expect("url");
        let url = path_of(&s, res.get("url").as_str().expect("url"));
        let (bare, query) = url.split_once('?').expect("a query");
        assert!(
            query.starts_with("expires=") && query.contains("&sign="),
            "{query}"
        );
        // Served as a download, never rendered: attachment + nosniff + sandbox.
        let got = http(&s, "GET", &url, &[], vec![]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, page);
        assert!(
            got.header("content-disposition")
                .starts_with("attachment; filename=\"evil.html\""),
            "{}",
            got.header("content-disposition")
        );
        assert_eq!(got.header("x-content-type-options"), "nosniff");
        assert_eq!(got.header("content-security-policy"), "sandbox");
        // Unsigned, tampered, or the signature of another id: 403 with a JSON reason.
        let flipped = if url.ends_with('0') { "1" } else { "0" };
        let tampered = format!("{}{flipped}", &url[..url.len() - 1]);
        let other = url.replacen("/media/", "/media/x", 1);
        for bad in [
            bare.to_owned(),
            tampered,
            other,
            format!("{bare}?expires=9999999999&sign=00"),
        ] {
            let r = http(&s, "GET", &bad, &[], vec![]).await;
            assert_eq!(r.status, 403, "{bad}");
            assert_eq!(r.json()["error"]["code"], json!(882004), "{bad}");
        }
        // An hour later the URL has expired; a fresh get_resource works again.
        s.clock
            .advance_ms(jmessage_mock::backend::media_access::MEDIA_URL_TTL_MS + 1000);
        let late = http(&s, "GET", &url, &[], vec![]).await;
        assert_eq!(late.status, 403);
        assert!(late.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("expired"));
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn uploads_past_the_app_quota_are_refused() {
    bounded(async {
        // The quota comes from the server configuration (config file `media_quota_bytes`).
        let config = jmessage_mock::server::ServerConfig {
            media_quota_bytes: 20,
            ..jmessage_mock::server::ServerConfig::new(backend_config(), Default::default())
        };
        let s = jmessage_mock::server::start(config, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("server starts");
        assert_eq!(s.hub.with_backend(|b| b.media_used(APPKEY)), 0);
        let a = user(&s, Transport::Websocket, "alice").await;
        let mut headers = auth(&a, "alice").await;
        headers.push(("Content-Type", "text/plain".to_owned()));
        let ok = http(&s, "POST", "/resource?type=file", &headers, vec![1; 15]).await;
        assert_eq!(ok.status, 200);
        let mut headers = auth(&a, "alice").await;
        headers.push(("Content-Type", "text/plain".to_owned()));
        let over = http(&s, "POST", "/resource?type=file", &headers, vec![1; 15]).await;
        assert_eq!(over.status, 413);
        assert_eq!(over.json()["error"]["code"], json!(880210));
        let msg = over.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(msg.contains("quota"), "{msg}");
        // The refused upload did not spend the token.
        let fits = http(&s, "POST", "/resource?type=file", &headers, vec![1; 5]).await;
        assert_eq!(fits.status, 200);
        s.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn room_messages_receipts_and_retract_over_sockets() {
    bounded(async {
        let s = start().await;
        let room = s.hub.with_backend(|b| {
            b.seed_room(RoomSeed {
                appkey: APPKEY.into(),
                id: Some(7_000_001),
                name: "lobby".into(),
                description: "d".into(),
                max_member_count: 10,
            })
        });
        let room = room.expect("room");
        let a = user(&s, Transport::Websocket, "alice").await;
        let b = user(&s, Transport::Websocket, "bobby").await;
        for c in [&a, &b] {
            let r = c
                .request("join_room", json!({"id": room}))
                .await
                .expect("reply");
            assert_eq!(r.code(), 0, "{:?}", r.body);
        }
        let r = a
            .request(
                "send_room_msg",
                json!({"target_gid": room.to_string(), "no_offline": false, "no_notification": false,
                       "content": {"version": 1, "target_type": "chatroom", "from_platform": "web",
                                   "target_id": room.to_string(), "from_id": "alice", "create_time": 1,
                                   "msg_type": "text", "msg_body": {"text": "hello room"}}}),
            )
            .await
            .expect("reply");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        assert_eq!(r.get("room_id"), &json!(room));
        let p = b
            .expect_push("room_msg_sync", WAIT)
            .await
            .expect("room_msg_sync");
        assert_eq!(p["msg_id"], *r.get("msg_id"));
        assert_eq!(p["content"]["from_id"], json!("alice"));
        assert!(p.get("rid").is_none());

        // A need-receipt message, read by bobby.
        let mut req = single_msg("alice", "bobby", "text", json!({"text": "read me"}));
        req["need_receipt"] = json!(true);
        let sent = a.request("s_across_single_text", req).await.expect("reply");
        let msg_id = sent.get("msg_id").clone();
        b.expect_push("msg_sync", WAIT).await.expect("msg_sync");
        let rr = b
            .request(
                "receipt_report",
                json!({"sessions": [{"type": 3, "username": "alice", "appkey": APPKEY, "msg_ids": [msg_id]}]}),
            )
            .await
            .expect("reply");
        assert_eq!(rr.code(), 0);
        assert_eq!(rr.get("username"), &json!("alice"));
        let rc = a
            .expect_push("receipt_change", WAIT)
            .await
            .expect("receipt_change");
        assert_eq!(rc["receipt_msgs"], json!([{"msg_id": msg_id, "unread_count": 0}]));
        assert_eq!(rc["username"], json!("bobby"));

        // Retract it.
        let r = a
            .request("msg_retract", json!({"msg_id": msg_id}))
            .await
            .expect("reply");
        assert_eq!(r.code(), 0);
        let ev = b
            .expect_push("event_notification", WAIT)
            .await
            .expect("event 55");
        assert_eq!(ev["event_type"], json!(55));
        assert_eq!(ev["from_gid"], json!(0));
        assert_eq!(ev["msgid_list"], json!([msg_id]));
        let again = a
            .request("msg_retract", json!({"msg_id": msg_id}))
            .await
            .expect("reply");
        assert_eq!(again.code(), 881404);
        s.shutdown().await;
    })
    .await
}

/// The case over real sockets: a user of an app with `cross_app: []` can neither
/// enter nor write to another app's chat room, nor read its users.
#[tokio::test]
async fn a_closed_app_cannot_enter_another_apps_room() {
    bounded(async {
        let mut backend = backend_config();
        backend.seeds.apps[1].cross_app = Some(vec![]);
        backend.seeds.rooms.push(RoomSeed {
            appkey: APPKEY.into(),
            id: Some(7_000_002),
            name: "lobby".into(),
            description: String::new(),
            max_member_count: 10,
        });
        let config = jmessage_mock::server::ServerConfig::new(backend, Default::default());
        let s = jmessage_mock::server::start(config, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("server starts");
        let a = user(&s, Transport::Websocket, "alice").await;
        let r = a
            .request("join_room", json!({"id": 7_000_002}))
            .await
            .expect("reply");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        let m = client(&s, Transport::Websocket).await;
        m.init(APPKEY2, SECRET2, 0).await.expect("init").ok().expect("init ok");
        assert_eq!(m.register("mallory", "pw").await.expect("register").code(), 0);
        m.login("mallory", "pw").await.expect("login").ok().expect("login ok");
        let join = m
            .request("join_room", json!({"id": 7_000_002}))
            .await
            .expect("reply");
        assert_eq!(join.code(), 881503, "{:?}", join.body);
        let send = m
            .request(
                "send_room_msg",
                json!({"target_gid": "7000002",
                       "content": {"msg_type": "text", "target_id": "7000002", "msg_body": {"text": "hi"}}}),
            )
            .await
            .expect("reply");
        assert_eq!(send.code(), 881503, "{:?}", send.body);
        let info = m
            .request("get_across_user_info", json!({"username": "alice", "appkey": APPKEY}))
            .await
            .expect("reply");
        assert_eq!(info.code(), 898002, "{:?}", info.body);
        let listed = m
            .request("room_list", json!({"appkey": APPKEY}))
            .await
            .expect("reply");
        assert_eq!(listed.get("result")["total"], json!(0), "{:?}", listed.body);
        // alice got nothing from mallory.
        assert_eq!(a.request("get_conversations", json!({})).await.expect("reply").code(), 0);
        let pushes = a.drain_pushes().await;
        assert!(pushes.iter().all(|p| p.event != "room_msg_sync"), "{pushes:?}");
        s.shutdown().await;
    })
    .await
}
