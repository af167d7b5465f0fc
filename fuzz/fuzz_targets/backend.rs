//! Request field decoding and dispatch: a fresh `Backend` with two apps, three users, a
//! group and a room; alice (conn 1) and bob (conn 2) are logged in. Each input line is
//! one request, `[@<conn>] <event> <json object>`, handled as the hub would (the rid is
//! the line number). Any event name, any field of any type: the answer is a response
//! code, never a panic.
#![no_main]

use jmessage_mock::backend::{md5_hex, signature, Backend, BackendConfig, Clock, ManualClock};
use jmessage_mock::protocol::Rid;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const APP: &str = "fuzzappkey00000000000000";
const SECRET: &str = "fuzzsecret00000000000000";
const T0: i64 = 1_800_000_000_000;

fn config() -> BackendConfig {
    serde_json::from_value(json!({
        "apps": [
            {"appkey": APP, "secret": SECRET, "name": "f"},
            {"appkey": "otherappkey000000000000b", "secret": "s2", "cross_app": [], "max_users": 2}
        ],
        "users": [
            {"username": "alice", "password": "pw", "nickname": "Alice"},
            {"username": "bob", "password": "pw"},
            {"username": "carol", "password": "pw"},
            {"appkey": "otherappkey000000000000b", "username": "dave", "password": "pw"}
        ],
        "groups": [{"gid": 100, "name": "g", "owner": "alice", "members": ["bob"]}],
        "rooms": [{"id": 200, "name": "r"}],
        "messages": [{"from": "bob", "to": "alice", "text": "hi"}]
    }))
    .expect("fixed config")
}

fn request(b: &mut Backend, conn: u64, event: &str, rid: u64, payload: Value) -> Option<i64> {
    let mut m = match payload {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.insert("rid".into(), json!(rid));
    let rid = Rid::from_payload(&m)?;
    b.handle(conn, event, &rid, &m).code()
}

fn login(b: &mut Backend, clock: &ManualClock, conn: u64, name: &str) {
    let ts = clock.now_ms().to_string();
    let rs = "0123456789abcdefghij";
    let init = json!({"appkey": APP, "random_str": rs, "timestamp": ts,
        "signature": signature(APP, &ts, rs, SECRET), "flag": 0});
    assert_eq!(request(b, conn, "c_init", conn * 1000, init), Some(0));
    let l = json!({"username": name, "password": md5_hex("pw"), "version": "2.5.0"});
    assert_eq!(request(b, conn, "login", conn * 1000 + 1, l), Some(0));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let clock = ManualClock::new(T0);
    let mut b = Backend::new(config(), Arc::new(clock.clone()));
    login(&mut b, &clock, 1, "alice");
    login(&mut b, &clock, 2, "bob");
    for (n, line) in text.lines().take(64).enumerate() {
        let (conn, line) = match line.strip_prefix('@') {
            Some(rest) => {
                let (c, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                (c.parse::<u64>().unwrap_or(3) % 4, rest)
            }
            None => (1, line),
        };
        let (event, body) = line.split_once(' ').unwrap_or((line, "{}"));
        let Ok(payload) = serde_json::from_str::<Value>(body) else {
            continue;
        };
        clock.advance_ms(250);
        let _ = request(&mut b, conn, event, n as u64 + 1, payload);
    }
});
