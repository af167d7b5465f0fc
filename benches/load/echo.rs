//! The ceiling: a bare tokio-tungstenite server that moves the same frames as a JMessage
//! server for the 1:1 text workload and does nothing else. It answers every request with
//! `ack` and a response carrying the rid (found by scanning, no JSON parse), remembers
//! each connection's login name, and forwards a `s_across_single_text` to the target's
//! connections as a `msg_sync` wrapping the request's payload. No state, no checks.

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Peers = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<String>>>>>;

fn scan_str<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let at = s.find(key)? + key.len();
    let rest = &s[at..];
    Some(&rest[..rest.find('"')?])
}

/// Runs the echo server until killed; prints "listening on http://127.0.0.1:PORT".
pub fn serve() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        println!("listening on http://127.0.0.1:{port}");
        let peers: Peers = Arc::default();
        let ids = Arc::new(AtomicU64::new(1));
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(conn(tcp, peers.clone(), ids.clone()));
        }
    });
}

async fn conn(tcp: tokio::net::TcpStream, peers: Peers, ids: Arc<AtomicU64>) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(Message::text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let _ = tx.send(
        "0{\"sid\":\"echo\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":60000}".into(),
    );
    let _ = tx.send("40".into());
    while let Some(Ok(m)) = stream.next().await {
        let Message::Text(t) = m else { continue };
        let t = t.as_str();
        if t == "2" {
            let _ = tx.send("3".into());
            continue;
        }
        let (Some(ev), Some(rid)) = (scan_str(t, "42[\""), super::client::scan_num(t, "\"rid\":"))
        else {
            continue;
        };
        let _ = tx.send(format!("42[\"ack\",{{\"rid\":{rid}}}]"));
        if ev == "login" {
            if let (Some(name), Ok(mut p)) = (scan_str(t, "\"username\":\""), peers.lock()) {
                p.entry(name.to_owned()).or_default().push(tx.clone());
            }
        }
        let msg_id = ids.fetch_add(1, Ordering::Relaxed);
        if ev == "s_across_single_text" {
            let body = &t[ev.len() + 6..t.len() - 1];
            let push = format!("42[\"msg_sync\",{{\"messages\":[{{\"msg_id\":{msg_id},\"msg_type\":3,\"from_uid\":1,\"from_gid\":0,\"m\":{body}}}]}}]");
            let to = scan_str(t, "\"target_id\":\"").unwrap_or("");
            if let Ok(p) = peers.lock() {
                for peer in p.get(to).into_iter().flatten() {
                    let _ = peer.send(push.clone());
                }
            }
        }
        let _ = tx.send(format!(
            "42[\"{ev}\",{{\"code\":0,\"message\":\"success\",\"msg_id\":{msg_id},\"rid\":{rid}}}]"
        ));
    }
}
