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
use std::sync::Arc;

/// Who a cached answer belongs to: a connection, or a user by uid (unique on the
/// server; a user deleted and registered again under the same name is someone else).
/// Both are plain numbers, so a key is compared without following a pointer.
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
/// every scope it was stored under, what it weighs and when it was stored.
#[derive(Debug)]
struct Stored {
    answer: Option<Arc<str>>,
    weight: usize,
    at: i64,
}

/// A stored answer read back (only on a retry). The text was written by `put` from a
/// response that may nest a request's JSON a few levels deeper than serde_json's parse
/// limit of 128, so the limit is lifted here: the depth is what `put` wrote, never
/// more than a parsed request plus the response's own levels.
pub(super) fn parse_answer(text: &str) -> Option<Map<String, Value>> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    Map::deserialize(&mut de).ok()
}

/// What one stored answer costs: its JSON text plus the key and bookkeeping.
fn weight(rid: &str, body: usize) -> usize {
    128 + rid.len() + body
}

/// The entries stored since the last turnover (see [`Dedupe`]).
#[derive(Debug, Default)]
struct Generation {
    entries: FastMap<Key, Stored>,
    /// When each request was last stored here, whatever the scope: lets the server
    /// recognise an old retry on a connection that has not logged in yet.
    seen: FastMap<Request, i64>,
    bytes: usize,
    newest_at: i64,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.seen.is_empty()
    }

    /// Empties the generation, keeping its tables' capacity.
    fn clear(&mut self) {
        self.entries.clear();
        self.seen.clear();
        self.bytes = 0;
        self.newest_at = 0;
    }
}

/// The bounded, expiring cache, in two generations: new entries go into `young`; when
/// the next would take it past half the entry or byte bound, `old` is dropped whole and
/// `young` becomes `old`. So the cache holds between half its bound and all of it, and it
/// frees a generation at once instead of looking up and removing one cold entry (and
/// its request count) for every new one, which was most of its cost under load.
/// Lookups ask `young` first and skip entries older than the ttl; a generation whose
/// newest entry is past the ttl is dropped whole.
#[derive(Debug)]
pub struct Dedupe {
    young: Generation,
    old: Generation,
    pub ttl_ms: i64,
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Default for Dedupe {
    fn default() -> Self {
        Self {
            young: Generation::default(),
            old: Generation::default(),
            ttl_ms: 5 * 60 * 1000,
            max_entries: 100_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Dedupe {
    /// The stored answer for the first scope that has one, stored less than the ttl
    /// before `now_ms`. `Some(None)` means the request was handled and has no response
    /// (ack-only events).
    pub fn get(
        &self,
        now_ms: i64,
        scopes: &[Scope],
        event: Event,
        rid: &str,
    ) -> Option<Option<Arc<str>>> {
        let request = Request {
            event,
            rid: RidKey::of_key(rid),
        };
        // A request never seen under any scope (all but retries) costs two lookups, not
        // one per scope and generation: every stored entry has its request in `seen`.
        if !self.seen_request(now_ms, &request) {
            return None;
        }
        let live = |s: &&Stored| now_ms - s.at < self.ttl_ms;
        scopes.iter().find_map(|s| {
            let key = Key {
                scope: *s,
                request: request.clone(),
            };
            let stored = [&self.young, &self.old]
                .into_iter()
                .find_map(|g| g.entries.get(&key).filter(live))?;
            Some(stored.answer.clone())
        })
    }

    /// Whether any scope has handled `(event, rid)` less than the ttl before `now_ms`.
    pub fn seen_anywhere(&self, now_ms: i64, event: Event, rid: &str) -> bool {
        let request = Request {
            event,
            rid: RidKey::of_key(rid),
        };
        self.seen_request(now_ms, &request)
    }

    fn seen_request(&self, now_ms: i64, request: &Request) -> bool {
        [&self.young, &self.old].into_iter().any(|g| {
            g.seen
                .get(request)
                .is_some_and(|at| now_ms - at < self.ttl_ms)
        })
    }

    /// Stores an answer under every given scope.
    pub fn put(
        &mut self,
        now_ms: i64,
        scopes: &[Scope],
        event: Event,
        rid: &str,
        answer: Option<Arc<str>>,
    ) {
        self.expire(now_ms);
        let w = weight(rid, answer.as_ref().map_or(0, |t| t.len()));
        let request = Request {
            event,
            rid: RidKey::of_key(rid),
        };
        // Room in `young` for this request first, then the hard bound after it.
        let (n, bytes) = (scopes.len(), w * scopes.len());
        let young = &self.young;
        if young.entries.len() + n > self.max_entries / 2
            || young.bytes + bytes > self.max_bytes / 2
        {
            // The dropped generation's tables are emptied and become the new `young`:
            // they keep their capacity, so a busy cache neither grows (rehashing) nor
            // frees and allocates its tables at every turn.
            let mut spare = std::mem::take(&mut self.old);
            spare.clear();
            self.old = std::mem::replace(&mut self.young, spare);
        }
        let g = &mut self.young;
        let mut answer = answer;
        for (i, s) in scopes.iter().enumerate() {
            let key = Key {
                scope: *s,
                request: request.clone(),
            };
            // The last scope takes the text itself: dropping a spare reference is an
            // atomic write, which waits for every store before it.
            let text = if i + 1 == n {
                answer.take()
            } else {
                answer.clone()
            };
            let stored = Stored {
                answer: text,
                weight: w,
                at: now_ms,
            };
            g.bytes += w;
            if let Some(old) = g.entries.insert(key, stored) {
                g.bytes -= old.weight;
            }
        }
        g.seen.insert(request, now_ms);
        g.newest_at = now_ms;
        // Only a request above half the bound gets here over it: keep the newest that
        // fits (a bound below one request's entries keeps nothing).
        if self.over_bound() {
            self.old = Generation::default();
        }
        if self.over_bound() {
            self.young = Generation::default();
        }
    }

    fn over_bound(&self) -> bool {
        self.len() > self.max_entries || self.bytes() > self.max_bytes
    }

    /// Drops the generations whose newest entry is older than the ttl (the older
    /// entries of a live generation are skipped by lookups and go with it).
    pub fn expire(&mut self, now_ms: i64) {
        for g in [&mut self.old, &mut self.young] {
            if !g.is_empty() && now_ms - g.newest_at >= self.ttl_ms {
                *g = Generation::default();
            }
        }
    }

    /// Entries held (some may be past the ttl until their generation goes).
    pub fn len(&self) -> usize {
        self.young.entries.len() + self.old.entries.len()
    }

    /// Bytes the stored answers account for now.
    pub fn bytes(&self) -> usize {
        self.young.bytes + self.old.bytes
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
        let body: Option<Arc<str>> = Some("{}".into());
        d.put(0, &[Scope::Conn(1), user()], LOGIN, &rid(7), body.clone());
        assert_eq!(
            d.get(0, &[Scope::Conn(2), user()], LOGIN, &rid(7)),
            Some(body.clone())
        );
        assert_eq!(d.get(999, &[Scope::Conn(1)], LOGIN, &rid(7)), Some(body));
        assert_eq!(d.get(0, &[user()], LOGIN, &rid(8)), None);
        assert_eq!(d.get(0, &[user()], SYNC, &rid(7)), None);
        assert!(d.seen_anywhere(999, LOGIN, &rid(7)));
        // Past the ttl an entry is neither answered nor seen, then goes.
        assert_eq!(d.get(1000, &[user()], LOGIN, &rid(7)), None);
        assert!(!d.seen_anywhere(1000, LOGIN, &rid(7)));
        d.expire(999);
        assert_eq!(d.len(), 2);
        d.expire(1000);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn an_old_entry_in_a_live_generation_is_not_answered() {
        let mut d = Dedupe {
            ttl_ms: 1000,
            ..Default::default()
        };
        d.put(0, &[user()], SYNC, &rid(1), None);
        d.put(900, &[user()], SYNC, &rid(2), None);
        d.expire(1500);
        assert_eq!(
            d.len(),
            2,
            "the generation lives while its newest entry does"
        );
        assert_eq!(d.get(1500, &[user()], SYNC, &rid(1)), None);
        assert!(!d.seen_anywhere(1500, SYNC, &rid(1)));
        assert_eq!(d.get(1500, &[user()], SYNC, &rid(2)), Some(None));
    }

    #[test]
    fn bounded_keeping_at_least_half_and_the_newest() {
        for max in [0, 1, 2, 3, 10] {
            let mut d = Dedupe {
                max_entries: max,
                ..Default::default()
            };
            for i in 0..50 {
                d.put(i, &[Scope::Conn(1)], SYNC, &rid(i), None);
                assert!(d.len() <= max, "{} > {max}", d.len());
                let least = (max / 2).min(i as usize + 1);
                assert!(d.len() >= least, "{} < {least}", d.len());
            }
            let newest = d.get(49, &[Scope::Conn(1)], SYNC, &rid(49));
            assert_eq!(newest, (max > 0).then_some(None), "max {max}");
            assert_eq!(d.get(49, &[Scope::Conn(1)], SYNC, &rid(0)), None);
            assert!(!d.seen_anywhere(49, SYNC, &rid(0)));
        }
    }

    #[test]
    fn bounded_by_bytes() {
        let mut d = Dedupe {
            max_bytes: 10_000,
            ..Default::default()
        };
        let body: Arc<str> = format!(r#"{{"x":"{}"}}"#, "y".repeat(1_000)).into();
        for i in 0..100 {
            d.put(i, &[Scope::Conn(1)], SYNC, &rid(i), Some(body.clone()));
            assert!(d.bytes() <= 10_000, "{}", d.bytes());
        }
        assert!(d.len() >= 4 && d.len() < 10, "{}", d.len());
        assert!(d.get(99, &[Scope::Conn(1)], SYNC, &rid(99)).is_some());
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
        let text = crate::protocol::body_json(&body);
        d.put(0, &[Scope::Conn(1)], SYNC, &rid(1), Some(text));
        let back = d.get(0, &[Scope::Conn(1)], SYNC, &rid(1)).flatten();
        assert_eq!(back.as_deref().and_then(parse_answer), Some(body));
    }
}
