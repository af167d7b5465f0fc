//! The request dedupe cache (protocol.md 2.6): a retried `rid` is answered from here and
//! never executed twice.
//!
//! Keys are `(scope, event, rid)` of known events (an unknown event executes nothing
//! and is answered with the same error again), where scope is the logged-in user (so retries that
//! arrive on a new connection after a reconnect still hit) or, before login, the
//! connection. Entries live `ttl_ms` (default 5 min, longer than the SDK's 150 s retry
//! window) and the cache is bounded by entries (`max_entries`) and by the bytes of the
//! stored answers (`max_bytes`); the oldest entries go first. Expiry runs on every
//! request and from the server's periodic sweep (`Backend::expire`), so an idle server
//! does not keep old answers.

use super::model::ConnId;
use super::FastMap;
use crate::protocol::{Event, RidKey};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;

/// Who a cached answer belongs to: a connection, or a user by uid (unique on the
/// server; a user deleted and registered again under the same name is someone else).
/// Both are plain numbers, so a key is compared without following a pointer: at its
/// bound the cache drops an old entry for every new one, and those old keys are cold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Conn(ConnId),
    User(u64),
}

/// A request: its event and rid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Request {
    event: Event,
    rid: RidKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: Scope,
    request: Request,
}

/// One stored answer: the response body as JSON text (`None`: ack only), shared by
/// every scope it was stored under, and what it weighs.
#[derive(Debug)]
struct Stored {
    answer: Option<Arc<str>>,
    weight: usize,
}

/// A stored answer read back (only on a retry). The text was written by `put` from a
/// response that may nest a request's JSON a few levels deeper than serde_json's parse
/// limit of 128, so the limit is lifted here: the depth is what `put` wrote, never
/// more than a parsed request plus the response's own levels.
fn parse_answer(text: &str) -> Option<Map<String, Value>> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    Map::deserialize(&mut de).ok()
}

/// What one stored answer costs: its JSON text plus the key and bookkeeping.
fn weight(rid: &str, body: usize) -> usize {
    128 + rid.len() + body
}

/// The bounded, expiring cache.
#[derive(Debug)]
pub struct Dedupe {
    entries: FastMap<Key, Stored>,
    order: VecDeque<(i64, Key)>,
    /// How many entries exist per request, whatever the scope: lets the server
    /// recognise an old retry on a connection that has not logged in yet.
    seen: FastMap<Request, u32>,
    pub ttl_ms: i64,
    pub max_entries: usize,
    pub max_bytes: usize,
    bytes: usize,
}

impl Default for Dedupe {
    fn default() -> Self {
        Self {
            entries: FastMap::default(),
            order: VecDeque::new(),
            seen: FastMap::default(),
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
        event: Event,
        rid: &str,
    ) -> Option<Option<Map<String, Value>>> {
        let request = Request {
            event,
            rid: RidKey::of_key(rid),
        };
        scopes.iter().find_map(|s| {
            let key = Key {
                scope: *s,
                request: request.clone(),
            };
            let stored = self.entries.get(&key)?;
            match &stored.answer {
                None => Some(None),
                Some(text) => parse_answer(text).map(Some),
            }
        })
    }

    /// Whether any scope has handled `(event, rid)`.
    pub fn seen_anywhere(&self, event: Event, rid: &str) -> bool {
        self.seen.contains_key(&Request {
            event,
            rid: RidKey::of_key(rid),
        })
    }

    /// Stores an answer under every given scope.
    pub fn put(
        &mut self,
        now_ms: i64,
        scopes: &[Scope],
        event: Event,
        rid: &str,
        answer: Option<&Map<String, Value>>,
    ) {
        self.expire(now_ms);
        let answer: Option<Arc<str>> =
            answer.and_then(|m| serde_json::to_string(m).ok().map(Into::into));
        let w = weight(rid, answer.as_ref().map_or(0, |t| t.len()));
        let request = Request {
            event,
            rid: RidKey::of_key(rid),
        };
        for s in scopes {
            let key = Key {
                scope: *s,
                request: request.clone(),
            };
            self.bytes += w;
            let stored = Stored {
                answer: answer.clone(),
                weight: w,
            };
            match self.entries.insert(key.clone(), stored) {
                Some(old) => self.bytes -= old.weight,
                None => {
                    *self.seen.entry(request.clone()).or_default() += 1;
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
        if let Some(stored) = self.entries.remove(&key) {
            self.bytes -= stored.weight;
            if let Some(n) = self.seen.get_mut(&key.request) {
                *n -= 1;
                if *n == 0 {
                    self.seen.remove(&key.request);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Scope {
        Scope::User(10_001)
    }

    fn rid(r: impl ToString) -> String {
        r.to_string()
    }

    const LOGIN: Event = Event::Login;
    const SYNC: Event = Event::SyncCheck;

    #[test]
    fn stores_under_every_scope_and_expires() {
        let mut d = Dedupe {
            ttl_ms: 1000,
            ..Default::default()
        };
        let body = Some(Map::new());
        d.put(0, &[Scope::Conn(1), user()], LOGIN, &rid(7), body.as_ref());
        assert_eq!(
            d.get(&[Scope::Conn(2), user()], LOGIN, &rid(7)),
            Some(body.clone())
        );
        assert_eq!(d.get(&[Scope::Conn(1)], LOGIN, &rid(7)), Some(body));
        assert_eq!(d.get(&[user()], LOGIN, &rid(8)), None);
        assert_eq!(d.get(&[user()], SYNC, &rid(7)), None);
        assert!(d.seen_anywhere(LOGIN, &rid(7)));
        d.expire(999);
        assert_eq!(d.len(), 2);
        d.expire(1000);
        assert_eq!(d.len(), 0);
        assert!(!d.seen_anywhere(LOGIN, &rid(7)));
    }

    #[test]
    fn bounded() {
        let mut d = Dedupe {
            max_entries: 3,
            ..Default::default()
        };
        for i in 0..10 {
            d.put(i, &[Scope::Conn(1)], SYNC, &rid(i), None);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.get(&[Scope::Conn(1)], SYNC, &rid(9)), Some(None));
        assert_eq!(d.get(&[Scope::Conn(1)], SYNC, &rid(0)), None);
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
            d.put(i, &[Scope::Conn(1)], SYNC, &rid(i), Some(&body));
        }
        assert!(d.bytes() <= 10_000, "{}", d.bytes());
        assert!(d.len() >= 5 && d.len() < 20, "{}", d.len());
        assert!(d.get(&[Scope::Conn(1)], SYNC, &rid(99)).is_some());
        d.put(100, &[Scope::Conn(1)], SYNC, &rid(99), None);
        d.expire(100 + d.ttl_ms);
        assert_eq!((d.len(), d.bytes()), (0, 0));
    }

    #[test]
    fn a_deep_answer_comes_back_from_the_cache() {
        let mut d = Dedupe::default();
        let mut nested = Value::Null;
        for _ in 0..200 {
            nested = Value::Array(vec![nested]);
        }
        let mut body = Map::new();
        body.insert("deep".into(), nested);
        d.put(0, &[Scope::Conn(1)], SYNC, &rid(1), Some(&body));
        assert_eq!(d.get(&[Scope::Conn(1)], SYNC, &rid(1)), Some(Some(body)));
    }
}
