//! `jmessage-mock proxy` in front of a second in-process server (the upstream): the
//! reference client through the proxy over websocket and polling, faults applied at the
//! proxy, the journal and admin API on the proxy, clear ends when the upstream is gone,
//! and media pass-through checked against a recording HTTP endpoint (wiremock).

mod common;

use common::*;
use jmessage_mock::client::{Client, ClientConfig, RequestError, Transport};
use jmessage_mock::faults::{Entry, FaultSpec};
use jmessage_mock::proxy::{self, ProxyConfig, RunningProxy};
use jmessage_mock::server::RunningServer;
use rstest::rstest;
use serde_json::{json, Value};
use std::time::Duration;

const SEND: &str = "s_across_single_text";

async fn proxy_to(upstream: &str) -> RunningProxy {
    let mut c = ProxyConfig::new(upstream);
    c.connect_timeout = Duration::from_secs(3);
    proxy::start(c, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("proxy starts")
}

async fn client_at(url: &str, config: ClientConfig) -> Client {
    Client::connect(url, config).await.expect("client connects")
}

/// Initialised, registered and logged in as `name`, through `url`.
async fn user_at(url: &str, transport: Transport, name: &str) -> Client {
    let c = client_at(
        url,
        ClientConfig {
            transport,
            ..fast()
        },
    )
    .await;
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

fn rule(v: Value) -> FaultSpec {
    serde_json::from_value(v).expect("valid fault rule")
}

fn journal(faults: &jmessage_mock::faults::FaultLayer, dir: &str, kind: &str) -> Vec<Entry> {
    faults
        .journal(0)
        .into_iter()
        .filter(|e| e.dir == dir && e.kind == kind)
        .collect()
}

fn stored(s: &RunningServer) -> usize {
    s.hub.with_backend(|b| b.message_count())
}

#[rstest]
#[case::websocket(Transport::Websocket)]
#[case::polling(Transport::Polling)]
#[tokio::test]
async fn a_message_goes_through_the_proxy_to_the_other_user(#[case] transport: Transport) {
    bounded(async {
        let up = start().await;
        let p = proxy_to(&up.ws_url()).await;
        let a = user_at(&p.http_url(), transport, "alice").await;
        let b = user_at(&p.http_url(), Transport::Websocket, "bobby").await;
        let r = a
            .send_text("alice", "bobby", "via proxy")
            .await
            .expect("reply");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        assert!(r.acked, "the upstream's ack reached the client");
        let push = b.expect_push("msg_sync", WAIT).await.expect("msg_sync");
        assert_eq!(push["messages"][0]["msg_id"], *r.get("msg_id"));
        assert_eq!(stored(&up), 1);
        // The proxy's journal labels frames with the user learned from login, and tags
        // the upstream's frames as acks, responses and pushes of the right event.
        let reqs: Vec<_> = journal(&p.faults, "in", "request")
            .into_iter()
            .filter(|e| e.event.as_deref() == Some(SEND))
            .collect();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].user.as_deref(), Some("alice"));
        let acks = journal(&p.faults, "out", "ack");
        assert!(acks.iter().any(|e| e.event.as_deref() == Some(SEND)));
        let resp = journal(&p.faults, "out", "response");
        assert!(resp.iter().any(|e| e.event.as_deref() == Some(SEND)));
        let pushes = journal(&p.faults, "out", "push");
        assert!(pushes
            .iter()
            .any(|e| e.event.as_deref() == Some("msg_sync") && e.user.as_deref() == Some("bobby")));
        // Passwords never reach the proxy's journal.
        assert!(p
            .faults
            .journal(0)
            .iter()
            .all(|e| !e.frame.contains("\"pw\"")));
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_dropped_ack_at_the_proxy_is_retried_and_the_upstream_deduplicates() {
    bounded(async {
        let up = start().await;
        let p = proxy_to(&up.ws_url()).await;
        p.faults
            .add(rule(
                json!({"id": "drop-ack", "when": {"direction": "out", "kind": "ack",
                  "event": [SEND], "user": "alice"}, "action": "drop", "nth": [1, 2]}),
            ))
            .expect("rule");
        let a = user_at(&p.http_url(), Transport::Websocket, "alice").await;
        let b = user_at(&p.http_url(), Transport::Websocket, "bobby").await;
        let r = a
            .send_text("alice", "bobby", "retried")
            .await
            .expect("reply");
        assert_eq!(r.code(), 0, "{:?}", r.body);
        assert!(!r.acked, "the first ack was dropped by the proxy");
        let push = b.expect_push("msg_sync", WAIT).await.expect("delivered");
        assert_eq!(push["messages"][0]["msg_id"], *r.get("msg_id"));
        assert!(b
            .expect_push("msg_sync", Duration::from_millis(300))
            .await
            .is_none());
        // The SDK's ack timer re-sends the identical frame up to 5 sends in all; every
        // one reaches the upstream, which stores the message once.
        while a.late_ack_timeouts().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent: Vec<String> = a
            .sent_frames()
            .into_iter()
            .filter(|f| f.contains(SEND))
            .collect();
        assert_eq!(sent.len(), 5, "{sent:?}");
        assert!(sent.iter().all(|f| f == &sent[0]));
        assert_eq!(stored(&up), 1);
        let upstream_reqs = up
            .faults
            .journal(0)
            .into_iter()
            .filter(|e| e.dir == "in" && e.event.as_deref() == Some(SEND))
            .count();
        assert_eq!(
            upstream_reqs,
            sent.len(),
            "every retry reached the upstream"
        );
        let dropped: Vec<_> = journal(&p.faults, "out", "ack")
            .into_iter()
            .filter(|e| e.fault.as_deref() == Some("drop-ack"))
            .collect();
        assert_eq!(dropped.len(), 2);
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn never_answer_and_error_act_on_the_upstream_answers() {
    bounded(async {
        let up = start().await;
        let p = proxy_to(&up.ws_url()).await;
        let a = user_at(&p.http_url(), Transport::Websocket, "alice").await;
        let _b = user_at(&p.http_url(), Transport::Websocket, "bobby").await;
        p.faults
            .add(rule(json!({"id": "err", "when": {"event": [SEND]}, "action": {"error": 880209}, "times": 1})))
            .expect("rule");
        let r = a.send_text("alice", "bobby", "refused").await.expect("reply");
        assert_eq!(r.code(), 880209, "{:?}", r.body);
        assert_eq!(stored(&up), 0, "an injected error is answered by the proxy alone");
        p.faults.clear();
        p.faults
            .add(rule(json!({"id": "mute", "when": {"event": [SEND]}, "action": "never_answer"})))
            .expect("rule");
        let quick = client_at(
            &p.http_url(),
            ClientConfig {
                response_timeout: Some(Duration::from_millis(300)),
                ..fast()
            },
        )
        .await;
        quick.init(APPKEY, SECRET, 0).await.expect("init").ok().expect("init ok");
        quick.login("alice", "pw").await.expect("login").ok().expect("login ok");
        let e = quick.send_text("alice", "bobby", "unanswered").await;
        assert!(matches!(e, Err(RequestError::ResponseTimeout { .. })), "{e:?}");
        assert!(stored(&up) >= 1, "the upstream did receive and store the message");
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client_session() {
    bounded(async {
        let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = format!("ws://{}", hole.local_addr().expect("addr"));
        drop(hole);
        let p = proxy_to(&dead).await;
        let c = client_at(&p.http_url(), fast()).await;
        tokio::time::timeout(WAIT, c.closed())
            .await
            .expect("session closed");
        assert_eq!(p.engine.session_count(), 0);
        p.shutdown().await.expect("stopped");
    })
    .await
}

#[tokio::test]
async fn an_upstream_that_goes_away_closes_the_client_session() {
    bounded(async {
        let up = start().await;
        let p = proxy_to(&up.ws_url()).await;
        let a = user_at(&p.http_url(), Transport::Websocket, "alice").await;
        up.shutdown().await;
        tokio::time::timeout(WAIT, a.closed())
            .await
            .expect("session closed");
        p.shutdown().await.expect("stopped");
    })
    .await
}

#[tokio::test]
async fn a_frame_the_proxy_cannot_parse_is_forwarded_untouched() {
    bounded(async {
        let up = start().await;
        let p = proxy_to(&up.ws_url()).await;
        let a = user_at(&p.http_url(), Transport::Websocket, "alice").await;
        a.send_raw("42[\"login\",{broken");
        // The upstream answers the next normal request, so it has seen the broken one.
        let r = a
            .request("get_upload_token", json!({}))
            .await
            .expect("reply");
        assert_eq!(r.code(), 0);
        let seen = up
            .faults
            .journal(0)
            .into_iter()
            .any(|e| e.dir == "in" && e.frame.as_ref() == "42[\"login\",{broken");
        assert!(seen, "the upstream received the frame as sent");
        assert!(!a.is_closed());
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_tls_upstream_that_does_not_speak_tls_is_a_clear_error() {
    bounded(async {
        // The plain mock server behind a wss:// URL: the TLS handshake fails.
        let up = start().await;
        let url = format!("wss://{}", up.addr);
        let target = proxy::Upstream::parse(&url).expect("a wss URL");
        let e = proxy::upstream::connect(&target, Duration::from_secs(3))
            .await
            .err()
            .expect("no session");
        let text = e.to_string();
        assert!(text.contains(&url) && text.contains("TLS"), "{text}");
        // Through the proxy: the client's session is closed; media answer 502.
        let p = proxy_to(&url).await;
        let c = client_at(&p.http_url(), fast()).await;
        tokio::time::timeout(WAIT, c.closed())
            .await
            .expect("session closed");
        let (status, _, body) = http(
            &p.addr.to_string(),
            "POST",
            "/resource?type=file",
            &[],
            b"x".to_vec(),
        )
        .await;
        assert_eq!(status, 502);
        assert!(String::from_utf8_lossy(&body).contains("TLS"));
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

/// A self-signed certificate for localhost / 127.0.0.1 and its key (test-only, made with
/// `openssl req -x509 -newkey ec ...`): no public root vouches for it.
const SELF_SIGNED_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBmzCCAUGgAwIBAgIUUM6By9z5W5CBNsOC2fLT2FfoHncwCgYIKoZIzj0EAwIw\nFDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNTIwNDYxOVoYDzIxMjYxMTEx\nMjA0NjE5WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO\nPQMBBwNCAASfEGgZLXb8T3DzHdJFxE1vTIeJZkcR4/067cttwJxlEblxm98PtB5N\nQ/aTAPLPMrLhhAxMz5/vohkNL+BEqXCqo28wbTAdBgNVHQ4EFgQUkPWtDuP+G3JZ\nOgYqbxVI8JmV4k8wHwYDVR0jBBgwFoAUkPWtDuP+G3JZOgYqbxVI8JmV4k8wDwYD\nVR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI\nzj0EAwIDSAAwRQIgBKZ7VV9L4TY8bL9fNbdrMpxZIioaj1Am7Ga36T10bnsCIQDk\nSTVJ/W/oVYC9pweqyP8qaUWBV3f3a7decDAUnl/wlw==\n-----END CERTIFICATE-----";
const SELF_SIGNED_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgV0IV8UxkJCipiMNV\n8PJLrrbCE51pizWGoC1ttgxbKm2hRANCAASfEGgZLXb8T3DzHdJFxE1vTIeJZkcR\n4/067cttwJxlEblxm98PtB5NQ/aTAPLPMrLhhAxMz5/vohkNL+BEqXCq\n-----END PRIVATE KEY-----";

/// A TLS listener presenting the self-signed certificate; it accepts handshakes forever.
async fn self_signed_tls_server() -> std::net::SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(SELF_SIGNED_CERT.as_bytes()).expect("cert");
    let key = PrivateKeyDer::from_pem_slice(SELF_SIGNED_KEY.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn certificates_are_verified_by_default() {
    bounded(async {
        let addr = self_signed_tls_server().await;
        let url = format!("wss://127.0.0.1:{}", addr.port());
        let target = proxy::Upstream::parse(&url).expect("a wss URL");
        let e = proxy::upstream::connect(&target, Duration::from_secs(3))
            .await
            .err()
            .expect("an unknown issuer is refused");
        let text = e.to_string();
        assert!(
            text.contains("TLS") && text.contains("certificate"),
            "{text}"
        );
        let p = proxy_to(&format!("https://127.0.0.1:{}", addr.port())).await;
        let (status, _, body) = http(&p.addr.to_string(), "GET", "/media/x", &[], vec![]).await;
        assert_eq!(status, 502);
        assert!(String::from_utf8_lossy(&body).contains("certificate"));
        p.shutdown().await.expect("stopped");
    })
    .await
}

/// One HTTP/1.1 request to `hostport`; status, headers and body.
async fn http(
    hostport: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(hostport)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", hostport);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(
            req.body(Full::new(bytes::Bytes::from(body)))
                .expect("request"),
        )
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
    (status, headers, body)
}

#[tokio::test]
async fn uploads_and_media_pass_through_to_the_upstream_origin() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    bounded(async {
        let origin = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/resource"))
            .and(query_param("type", "file"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"media_id": "qiniu/file/j/1"})),
            )
            .mount(&origin)
            .await;
        Mock::given(method("GET"))
            .and(path("/media/qiniu/file/j/1"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"file-bytes".to_vec()))
            .mount(&origin)
            .await;
        let p = proxy_to(&origin.uri()).await;
        let hostport = p.addr.to_string();
        let payload = b"\x00\x01upload body\xff".to_vec();
        let (status, _, body) = http(
            &hostport,
            "POST",
            "/resource?type=file",
            &[
                ("X-App-Key", APPKEY),
                ("Authorization", "Basic YTpi"),
                ("Content-Type", "text/plain"),
            ],
            payload.clone(),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(answer["media_id"], json!("qiniu/file/j/1"));
        let got = origin.received_requests().await.expect("recorded");
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.url.query(), Some("type=file"));
        assert_eq!(r.body, payload, "the body arrives byte for byte");
        assert_eq!(
            r.headers.get("x-app-key").and_then(|v| v.to_str().ok()),
            Some(APPKEY)
        );
        assert_eq!(
            r.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Basic YTpi")
        );
        let (status, _, body) = http(&hostport, "GET", "/media/qiniu/file/j/1", &[], vec![]).await;
        assert_eq!((status, body.as_slice()), (200, &b"file-bytes"[..]));
        let (status, _, _) = http(&hostport, "GET", "/media/unknown", &[], vec![]).await;
        assert_eq!(status, 404, "the origin's status passes through");
        p.shutdown().await.expect("stopped");
    })
    .await
}

#[tokio::test]
async fn an_unreachable_media_origin_answers_502_with_a_reason() {
    bounded(async {
        let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = format!("http://{}", hole.local_addr().expect("addr"));
        drop(hole);
        let p = proxy_to(&dead).await;
        let (status, _, body) = http(
            &p.addr.to_string(),
            "POST",
            "/resource?type=file",
            &[],
            b"x".to_vec(),
        )
        .await;
        assert_eq!(status, 502);
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(&dead)),
            "{v}"
        );
        p.shutdown().await.expect("stopped");
    })
    .await
}

#[tokio::test]
async fn the_admin_api_on_the_proxy_manages_faults_and_reads_the_journal() {
    bounded(async {
        let up = start().await;
        let p = proxy_to(&up.ws_url()).await;
        let hp = p.addr.to_string();
        let rule = br#"{"id":"slow","when":{"kind":"push"},"action":{"delay":10}}"#.to_vec();
        let (status, _, _) = http(
            &hp,
            "POST",
            "/__admin/faults",
            &[("Content-Type", "application/json")],
            rule,
        )
        .await;
        assert_eq!(status, 201);
        let (status, _, body) = http(&hp, "GET", "/__admin/faults", &[], vec![]).await;
        assert_eq!(status, 200);
        let rules: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(rules[0]["id"], json!("slow"));
        let _a = user_at(&p.http_url(), Transport::Websocket, "alice").await;
        let (status, _, body) = http(
            &hp,
            "GET",
            "/__admin/journal?user=alice&kind=response",
            &[],
            vec![],
        )
        .await;
        assert_eq!(status, 200);
        let entries: Value = serde_json::from_slice(&body).expect("json");
        assert!(
            entries.as_array().is_some_and(|a| !a.is_empty()),
            "{entries}"
        );
        let (status, _, body) = http(&hp, "GET", "/__admin/health", &[], vec![]).await;
        assert_eq!(status, 200);
        let health: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(health["sessions"], json!(1));
        // The same guard as serve: a foreign Host is refused.
        let (status, _, _) = http(
            &hp,
            "GET",
            "/__admin/journal",
            &[("Host", "evil.example")],
            vec![],
        )
        .await;
        assert_eq!(status, 403);
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

fn temp_file(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("jmm-proxy-{}-{nanos}-{name}", std::process::id()))
}

/// Records alice and bobby (registered during the recording) and the seeded user
/// (logged in only: a fixture) through the proxy; `error_on` makes the upstream answer
/// that event with 880209.
async fn record(error_on: Option<&str>) -> (String, std::path::PathBuf) {
    let up = start().await;
    if let Some(event) = error_on {
        up.faults
            .add(rule(
                json!({"id": "changed", "when": {"event": [event]}, "action": {"error": 880209}}),
            ))
            .expect("rule");
    }
    let path = temp_file("recording.yaml");
    let mut c = ProxyConfig::new(up.ws_url());
    c.record = Some(path.clone());
    let p = proxy::start(c, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("proxy starts");
    let a = user_at(&p.http_url(), Transport::Websocket, "alice").await;
    let b = user_at(&p.http_url(), Transport::Polling, "bobby").await;
    let r = a
        .send_text("alice", "bobby", "recorded")
        .await
        .expect("reply");
    assert_eq!(r.code(), 0);
    b.expect_push("msg_sync", WAIT).await.expect("msg_sync");
    let s = client_at(&p.http_url(), fast()).await;
    s.init(APPKEY, SECRET, 0)
        .await
        .expect("init")
        .ok()
        .expect("init ok");
    s.login("seeded", "123456")
        .await
        .expect("login")
        .ok()
        .expect("login ok");
    let t = a
        .request("get_upload_token", json!({}))
        .await
        .expect("reply");
    assert_eq!(t.code(), if error_on.is_some() { 880209 } else { 0 });
    s.disconnect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.shutdown().await.expect("recording written");
    up.shutdown().await;
    let text = std::fs::read_to_string(&path).expect("recording");
    (text, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_checks_and_replays_against_the_mock() {
    bounded(async {
        let (text, path) = record(None).await;
        assert!(text.contains("password_md5"), "{text}");
        assert!(text.contains(&jmessage_mock::proxy::record::PLACEHOLDER_SECRET.to_string()));
        assert!(
            !text.contains(SECRET),
            "the app secret never crosses the wire"
        );
        assert!(!text.contains("\"rid\""), "{text}");
        assert!(
            !text.contains("signature"),
            "init is replayed with a fresh signature: {text}"
        );
        let sc = jmessage_mock::scenario::load(&path)
            .unwrap_or_else(|e| panic!("check refuses the recording: {e:?}\n{text}"));
        let report = jmessage_mock::conformance::run(&sc).await;
        assert_eq!(report.failure(), None, "{text}");
        let _ = std::fs::remove_file(&path);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_answer_the_mock_does_not_give_fails_the_replay() {
    bounded(async {
        let (text, path) = record(Some("get_upload_token")).await;
        let sc = jmessage_mock::scenario::load(&path).expect("valid");
        let report = jmessage_mock::conformance::run(&sc).await;
        let why = report.failure().expect("the replay fails");
        println!("replay failure: {why}");
        assert!(why.contains("880209"), "{why}\n{text}");
        let _ = std::fs::remove_file(&path);
    })
    .await
}

/// Why the Node scripts in `dir` cannot run here, if they cannot.
fn node_missing(dir: &std::path::Path) -> Option<String> {
    if !node_installed() {
        Some("node is not installed".to_owned())
    } else if !dir.join("node_modules").is_dir() {
        Some(format!("{}/node_modules is missing", dir.display()))
    } else {
        None
    }
}

/// Runs `node script` in `dir` (bounded); its success and its output.
async fn run_node(dir: &std::path::Path, script: &str, envs: &[(&str, String)]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script)
        .current_dir(dir)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("node starts");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the node script finishes")
        .expect("node runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `socket.io-client@2` (tests/node/socketio_smoke.js: websocket, polling and the
/// upgrade) through the proxy. Skips like tests/node_clients.rs when Node or the npm
/// dependencies are missing (fails instead with `JMM_REQUIRE_NODE=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_v2_through_the_proxy() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if let Some(why) = node_missing(&dir) {
        assert!(
            std::env::var("JMM_REQUIRE_NODE").as_deref() != Ok("1"),
            "JMM_REQUIRE_NODE=1 but {why}"
        );
        eprintln!("SKIPPED: {why}");
        return;
    }
    let up = start().await;
    let p = proxy_to(&up.ws_url()).await;
    let envs = [
        ("JMM_ADDRESS", p.http_url()),
        ("JMM_APPKEY", APPKEY.to_owned()),
        ("JMM_SECRET", SECRET.to_owned()),
    ];
    let (ok, text) = run_node(&dir, "socketio_smoke.js", &envs).await;
    println!("{text}");
    assert!(ok, "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    p.shutdown().await.expect("stopped");
    up.shutdown().await;
}

/// The official Web SDK (`JMESSAGE_SDK`, as in tests/node_clients.rs) through the proxy,
/// uploads included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_through_the_proxy() {
    let Ok(paths) = std::env::var("JMESSAGE_SDK") else {
        eprintln!("SKIPPED: JMESSAGE_SDK is not set");
        return;
    };
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("adapters/jmessage-web");
    if let Some(why) = node_missing(&dir) {
        panic!("JMESSAGE_SDK is set but {why}");
    }
    let up = start().await;
    let p = proxy_to(&up.ws_url()).await;
    for sdk in paths.split(':').filter(|p| !p.is_empty()) {
        let envs = [
            ("JMESSAGE_SDK", sdk.to_owned()),
            ("JMM_ADDRESS", format!("ws://{}", p.addr)),
            ("JMM_UPLOAD", format!("{}/resource", p.http_url())),
            ("JMM_APPKEY", APPKEY.to_owned()),
            ("JMM_SECRET", SECRET.to_owned()),
        ];
        let (ok, text) = run_node(&dir, "smoke.js", &envs).await;
        println!("{sdk}:\n{text}");
        assert!(ok, "official SDK {sdk} through the proxy failed:\n{text}");
    }
    p.shutdown().await.expect("stopped");
    up.shutdown().await;
}

#[tokio::test]
async fn the_proxy_keeps_the_upstream_heartbeat_itself() {
    bounded(async {
        // The upstream drops a session not pinged within 150 + 200 ms; the client only
        // pings the proxy every 25 s (the proxy's own interval), so only the proxy's own
        // pings keep the upstream session alive.
        let up = start_with(jmessage_mock::transport::TransportConfig {
            ping_interval: Duration::from_millis(150),
            ping_timeout: Duration::from_millis(200),
            ..Default::default()
        })
        .await;
        let p = proxy_to(&up.ws_url()).await;
        let a = user_at(&p.http_url(), Transport::Websocket, "alice").await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            up.engine.session_count(),
            1,
            "the upstream session is alive"
        );
        let r = a
            .request("get_upload_token", json!({}))
            .await
            .expect("reply");
        assert_eq!(r.code(), 0);
        let pings = up
            .faults
            .journal(0)
            .into_iter()
            .filter(|e| e.dir == "in" && e.kind == "ping")
            .count();
        assert!(pings >= 3, "the proxy pinged the upstream ({pings})");
        p.shutdown().await.expect("stopped");
        up.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn media_urls_from_the_upstream_point_at_the_proxy() {
    use base64::Engine as _;
    bounded(async {
        let s = start().await;
        let p = proxy_to(&s.http_url()).await;
        let hostport = p.addr.to_string();
        let a = user_at(&p.http_url(), Transport::Websocket, "alice").await;
        let token = a
            .request("get_upload_token", json!({}))
            .await
            .expect("reply")
            .ok()
            .expect("token");
        let token = token.get("uptoken").as_str().expect("uptoken").to_owned();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{token}"))
        );
        let headers = [
            ("X-App-Key", APPKEY),
            ("jm-channel", "w"),
            ("Authorization", basic.as_str()),
            ("Content-Type", "text/plain"),
        ];
        let file = b"notes through the proxy".to_vec();
        let path = "/resource?type=file&name=notes.txt";
        let (status, _, body) = http(&hostport, "POST", path, &headers, file.clone()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let up: Value = serde_json::from_slice(&body).expect("json");
        let res = a
            .request("get_resource", json!({"media_id": up["media_id"]}))
            .await
            .expect("reply")
            .ok()
            .expect("url");
        let url = res.get("url").as_str().expect("url").to_owned();
        let prefix = format!("{}/media/", p.http_url());
        assert!(url.starts_with(&prefix), "{url} should start with {prefix}");
        // The rewritten URL keeps the upstream's signature, and downloads through the proxy.
        let (status, _, body) =
            http(&hostport, "GET", &url[p.http_url().len()..], &[], vec![]).await;
        assert_eq!((status, body), (200, file));
        p.shutdown().await.expect("stopped");
        s.shutdown().await;
    })
    .await
}
