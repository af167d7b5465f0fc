//! The request dedupe cache (protocol.md 2.6): a retried `rid` is answered from here and
//! never executed twice.
//!
//! Keys are `(scope, event, rid)`, where scope is the logged-in user (so retries that
//! arrive on a new connection after a reconnect still hit) or, before login, the
//! connection. Entries live `ttl_ms` (default 5 min, longer than the SDK's 150 s retry
//! window) and the cache is bounded by entries (`max_entries`) and by the bytes of the
//! stored answers (`max_bytes`); the oldest entries go first. Expiry runs on every
//! request and from the server's periodic sweep (`Backend::expire`), so an idle server
//! does not keep old answers.

use super::model::{ConnId, UserKey};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Who a cached answer belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Conn(ConnId),
    User(UserKey),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: Scope,
    event: Arc<str>,
    rid: Arc<str>,
}

/// The serialized size of an answer (measured once per `put`, whatever the scopes).
fn body_len(answer: &Option<Map<String, Value>>) -> usize {
    answer
        .as_ref()
        .map_or(0, |m| serde_json::to_vec(m).map_or(0, |t| t.len()))
}

/// What one stored answer costs: its serialized size plus the key and bookkeeping.
fn weight(key: &Key, body: usize) -> usize {
    128 + key.event.len() + key.rid.len() + body
}

/// The bounded, expiring cache.
#[derive(Debug)]
pub struct Dedupe {
    entries: HashMap<Key, (Option<Map<String, Value>>, usize)>,
    order: VecDeque<(i64, Key)>,
    /// How many entries exist per `(event, rid)`, whatever the scope: lets the server
    /// recognise an old retry on a connection that has not logged in yet.
    seen: HashMap<(Arc<str>, Arc<str>), u32>,
    pub ttl_ms: i64,
    pub max_entries: usize,
    pub max_bytes: usize,
    bytes: usize,
}

impl Default for Dedupe {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            seen: HashMap::new(),
            ttl_ms: 5 * 60 * 1000,
            max_entries: 100_000,
            max_bytes: 64 * 1024 * 1024,
            bytes: 0,
        }
    }
}

impl Dedupe {
    /// The stored answer for the first scope that has one. `Some(None)` means the
    /// request was handled and has no response (ack-only events).
    pub fn get(
        &self,
        scopes: &[Scope],
        event: &str,
        rid: &str,
    ) -> Option<Option<Map<String, Value>>> {
        scopes.iter().find_map(|s| {
            self.entries
                .get(&Key {
                    scope: s.clone(),
                    event: event.into(),
                    rid: rid.into(),
                })
                .map(|(answer, _)| answer.clone())
        })
    }

    /// Whether any scope has handled `(event, rid)`.
    pub fn seen_anywhere(&self, event: &str, rid: &str) -> bool {
        self.seen.contains_key(&(Arc::from(event), Arc::from(rid)))
    }

    /// Stores an answer under every given scope.
    pub fn put(
        &mut self,
        now_ms: i64,
        scopes: &[Scope],
        event: &str,
        rid: &str,
        answer: Option<Map<String, Value>>,
    ) {
        self.expire(now_ms);
        let event: Arc<str> = event.into();
        let rid: Arc<str> = rid.into();
        let body = body_len(&answer);
        for s in scopes {
            let key = Key {
                scope: s.clone(),
                event: event.clone(),
                rid: rid.clone(),
            };
            let w = weight(&key, body);
            self.bytes += w;
            match self.entries.insert(key.clone(), (answer.clone(), w)) {
                Some((_, old)) => self.bytes -= old,
                None => {
                    *self.seen.entry((event.clone(), rid.clone())).or_default() += 1;
                    self.order.push_back((now_ms, key));
                }
            }
        }
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            if !self.pop_oldest() {
                break;
            }
        }
    }

    /// Drops entries older than the ttl.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some((at, _)) = self.order.front() {
            if now_ms - *at < self.ttl_ms {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((_, key)) = self.order.pop_front() else {
            return false;
        };
        if let Some((_, w)) = self.entries.remove(&key) {
            self.bytes -= w;
            let seen_key = (key.event.clone(), key.rid.clone());
            if let Some(n) = self.seen.get_mut(&seen_key) {
                *n -= 1;
                if *n == 0 {
                    self.seen.remove(&seen_key);
                }
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the stored answers account for now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Scope {
        Scope::User(UserKey::new("app", "alice"))
    }

    #[test]
    fn stores_under_every_scope_and_expires() {
        let mut d = Dedupe {
            ttl_ms: 1000,
            ..Default::default()
        };
        let body = Some(Map::new());
        d.put(0, &[Scope::Conn(1), user()], "login", "7", body.clone());
        assert_eq!(
            d.get(&[Scope::Conn(2), user()], "login", "7"),
            Some(body.clone())
        );
        assert_eq!(d.get(&[Scope::Conn(1)], "login", "7"), Some(body));
        assert_eq!(d.get(&[user()], "login", "8"), None);
        assert_eq!(d.get(&[user()], "sync_check", "7"), None);
        assert!(d.seen_anywhere("login", "7"));
        d.expire(999);
        assert_eq!(d.len(), 2);
        d.expire(1000);
        assert!(d.is_empty());
        assert!(!d.seen_anywhere("login", "7"));
    }

    #[test]
    fn bounded() {
        let mut d = Dedupe {
            max_entries: 3,
            ..Default::default()
        };
        for i in 0..10 {
            d.put(i, &[Scope::Conn(1)], "e", &i.to_string(), None);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.get(&[Scope::Conn(1)], "e", "9"), Some(None));
        assert_eq!(d.get(&[Scope::Conn(1)], "e", "0"), None);
    }

    #[test]
    fn bounded_by_bytes() {
        let mut d = Dedupe {
            max_bytes: 10_000,
            ..Default::default()
        };
        let mut body = Map::new();
        body.insert("x".into(), Value::String("y".repeat(1_000)));
        for i in 0..100 {
            d.put(
                i,
                &[Scope::Conn(1)],
                "e",
                &i.to_string(),
                Some(body.clone()),
            );
        }
        assert!(d.bytes() <= 10_000, "{}", d.bytes());
        assert!(d.len() >= 5 && d.len() < 20, "{}", d.len());
        assert!(d.get(&[Scope::Conn(1)], "e", "99").is_some());
        d.put(100, &[Scope::Conn(1)], "e", "99", None);
        d.expire(100 + d.ttl_ms);
        assert_eq!((d.len(), d.bytes()), (0, 0));
    }
}
