//! The oracle's bookkeeping: how it keys rids and events, the recent rids of one
//! connection and the recent requests of all of them.
//!
//! Every request the oracle judges is looked up here, so the keys are small and
//! compared without allocating: an SDK rid (an integer) is kept inline as
//! [`RidKey::Num`], a known event as its [`Event`]. A connection's rids are a ring in
//! arrival order ([`Rids`]). The recent requests of all connections forget by generation
//! instead of keeping a queue of their keys: each entry carries the sequence number of
//! its insertion, an entry more than the table's bound insertions old counts as gone,
//! and the gone entries are swept out in one pass when the table reaches 7/4 of its bound
//! (so it holds at most that many entries, its bound of them live).

use super::FastMap;
use crate::protocol::{Event, Needs};
use serde_json::{Map, Value};
use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

pub use crate::protocol::RidKey;

impl RidKey {
    /// The payload's rid, under the rules of [`crate::protocol::Rid::from_payload`]: an
    /// integer, or a non-empty string of at most 64 chars (trimmed); `None` otherwise.
    pub fn of_payload(payload: &Map<String, Value>) -> Option<Self> {
        match super::field(payload, "rid")? {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Some(Self::Num(u)),
                (None, Some(i)) => Some(Self::Text(i.to_string().into())),
                _ => None,
            },
            Value::String(s) if !s.is_empty() && s.len() <= 64 => Some(Self::of_key(s.trim())),
            _ => None,
        }
    }
}

/// An event name: a known event, or a copy of an unknown name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ev {
    Known(Event),
    Other(Arc<str>),
}

impl Ev {
    pub fn of(event: &str) -> Self {
        match Event::from_wire(event) {
            Some(e) => Ev::Known(e),
            None => Ev::Other(event.into()),
        }
    }

    /// What the connection must have done first (an unknown event needs a login).
    pub fn needs(&self) -> Needs {
        match self {
            Ev::Known(e) => e.needs(),
            Ev::Other(_) => Needs::Login,
        }
    }
}

impl fmt::Display for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ev::Known(e) => f.write_str(e.wire()),
            Ev::Other(name) => f.write_str(name),
        }
    }
}

/// What the oracle remembers of a request it has seen.
pub struct Sent {
    pub event: Ev,
    /// The request without its rid, as sent the first time ([`super::fingerprint`]).
    pub body: u64,
    pub last: Instant,
    pub sends: u32,
    /// An ack for this rid reached the client since its last send.
    pub acked: bool,
}

struct Slot<T> {
    value: T,
    seq: u64,
}

/// A map that remembers its last `bound` insertions (see the module docs).
struct Generations<K, V> {
    map: FastMap<K, Slot<V>>,
    /// The sequence number of the next insertion.
    next: u64,
    bound: usize,
}

impl<K: std::hash::Hash + Eq, V> Generations<K, V> {
    fn new(bound: usize) -> Self {
        Self {
            map: FastMap::default(),
            next: 0,
            bound,
        }
    }

    #[cfg(test)]
    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let next = self.next;
        let bound = self.bound as u64;
        self.map
            .get_mut(key)
            .filter(|s| next - s.seq <= bound)
            .map(|s| &mut s.value)
    }

    /// The live value of `key`, or `None` after `fresh()` was inserted as its value.
    fn get_or_insert(&mut self, key: K, fresh: impl FnOnce() -> V) -> Option<&mut V> {
        let (seq, bound) = (self.next, self.bound as u64);
        if self.map.len() >= self.bound / 4 * 7 {
            self.map.retain(|_, s| seq - s.seq <= bound);
        }
        let slot = || Slot {
            value: fresh(),
            seq,
        };
        match self.map.entry(key) {
            Entry::Occupied(o) if seq - o.get().seq <= bound => {
                return Some(&mut o.into_mut().value)
            }
            Entry::Occupied(mut o) => {
                o.insert(slot());
            }
            Entry::Vacant(v) => {
                v.insert(slot());
            }
        }
        self.next += 1;
        None
    }

    #[cfg(test)]
    fn stored(&self) -> usize {
        self.map.len()
    }
}

/// The recent rids of one connection (its last [`super::MAX_RIDS`] new ones) and what
/// was sent under each, in the order they came.
///
/// A ring, with an index from rid to place: a connection's table is cold whenever the
/// server serves many connections, and every request inserts into it. The ring forgets
/// its oldest rid as a new one comes (no sweeps), the index holds only small entries,
/// and an ack, whose rid is nearly always the newest, is matched at the ring's back
/// without the index.
pub struct Rids {
    ring: VecDeque<(RidKey, Sent)>,
    /// Each rid of `ring` and its arrival number (`ring[i]` arrived as `first + i`).
    index: FastMap<RidKey, u64>,
    first: u64,
    bound: usize,
}

impl Default for Rids {
    fn default() -> Self {
        Self::with_bound(super::MAX_RIDS)
    }
}

impl Rids {
    fn with_bound(bound: usize) -> Self {
        Self {
            ring: VecDeque::new(),
            index: FastMap::default(),
            first: 0,
            bound,
        }
    }

    fn position(&self, rid: &RidKey) -> Option<usize> {
        let last = self.ring.len().checked_sub(1)?;
        if self.ring[last].0 == *rid {
            return Some(last);
        }
        self.index.get(rid).map(|n| (n - self.first) as usize)
    }

    /// The request last sent under `rid`, if it is recent.
    pub fn get_mut(&mut self, rid: &RidKey) -> Option<&mut Sent> {
        let at = self.position(rid)?;
        self.ring.get_mut(at).map(|(_, s)| s)
    }

    /// The recent request under `rid`; `None` when there was none and `fresh()` is now
    /// remembered under it (the oldest rid is forgotten beyond the bound). A request sent
    /// anew under a recent rid keeps the rid's place.
    pub fn get_or_insert(
        &mut self,
        rid: RidKey,
        fresh: impl FnOnce() -> Sent,
    ) -> Option<&mut Sent> {
        let arrival = self.first + self.ring.len() as u64;
        match self.index.entry(rid.clone()) {
            Entry::Occupied(o) => {
                let at = (*o.get() - self.first) as usize;
                return self.ring.get_mut(at).map(|(_, s)| s);
            }
            Entry::Vacant(v) => {
                v.insert(arrival);
            }
        }
        self.ring.push_back((rid, fresh()));
        while self.ring.len() > self.bound {
            if let Some((gone, _)) = self.ring.pop_front() {
                self.index.remove(&gone);
            }
            self.first += 1;
        }
        None
    }
}

/// Recent requests, (event, rid), on any connection (at most [`super::MAX_RECENT`]).
pub struct Recent(Generations<(Ev, RidKey), ()>);

impl Default for Recent {
    fn default() -> Self {
        Self(Generations::new(super::MAX_RECENT))
    }
}

impl Recent {
    /// Whether `(event, rid)` is a recent request; if not, it is remembered now.
    pub fn seen(&mut self, event: &Ev, rid: &RidKey) -> bool {
        self.0
            .get_or_insert((event.clone(), rid.clone()), || ())
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(v: Value) -> Option<RidKey> {
        RidKey::of_payload(json!({ "rid": v }).as_object().expect("object"))
    }

    #[test]
    fn rid_keys_follow_the_canonical_text_of_a_rid() {
        use crate::protocol::Rid;
        let cases = [
            json!(7),
            json!("7"),
            json!(" 7 "),
            json!("007"),
            json!(-7),
            json!("-7"),
            json!("0"),
            json!(0),
            json!(u64::MAX),
            json!(u64::MAX.to_string()),
            json!("18446744073709551616"),
            json!("abc"),
            json!("   "),
            json!("+7"),
        ];
        for a in &cases {
            let ra = Rid::from_payload(json!({ "rid": a }).as_object().expect("object"));
            let ka = key(a.clone());
            assert_eq!(ra.is_some(), ka.is_some(), "{a}");
            let (Some(ra), Some(ka)) = (ra, ka) else {
                continue;
            };
            assert_eq!(ka.to_string(), ra.key(), "{a}");
            assert_eq!(RidKey::of_key(ra.key()), ka, "{a}");
            for b in &cases {
                let rb = Rid::from_payload(json!({ "rid": b }).as_object().expect("object"));
                if let (Some(rb), Some(kb)) = (rb, key(b.clone())) {
                    assert_eq!(ra.key() == rb.key(), ka == kb, "{a} vs {b}");
                }
            }
        }
        assert_eq!(key(json!(7)), Some(RidKey::Num(7)));
        assert!(matches!(key(json!("007")), Some(RidKey::Text(_))));
        for bad in [
            json!(1.5),
            json!(""),
            json!(null),
            json!("x".repeat(65)),
            json!([1]),
        ] {
            assert_eq!(key(bad.clone()), None, "{bad}");
        }
    }

    #[test]
    fn a_generation_table_forgets_exactly_its_oldest_insertions() {
        let mut g: Generations<u64, u64> = Generations::new(8);
        for k in 0..8 {
            assert!(g.get_or_insert(k, || k).is_none());
        }
        // A hit neither moves nor renews an entry.
        assert_eq!(g.get_or_insert(0, || 99).copied(), Some(0));
        assert!(g.get_or_insert(8, || 8).is_none());
        assert!(
            g.get_mut(&0).is_none(),
            "the oldest is forgotten at the bound"
        );
        assert_eq!(g.get_mut(&1).copied(), Some(1));
        // A forgotten key comes back as new, with its new value.
        assert!(g.get_or_insert(0, || 100).is_none());
        assert!(g.get_mut(&1).is_none());
        assert_eq!(g.get_mut(&0).copied(), Some(100));
        for k in 9..1000 {
            g.get_or_insert(k, || k);
            assert!(g.stored() <= 8 / 4 * 7, "swept at 7/4 of the bound");
            let live = (0..=k).filter(|j| g.get_mut(j).is_some()).count();
            assert_eq!(live, 8);
        }
        assert!((992..1000).all(|j| g.get_mut(&j).is_some()));
    }

    fn sent(body: u64) -> Sent {
        Sent {
            event: Ev::of("login"),
            body,
            last: Instant::now(),
            sends: 1,
            acked: false,
        }
    }

    /// Follows a model (the list of the last `bound` new rids) through random, repeated,
    /// increasing and text rids.
    #[test]
    fn a_rid_ring_remembers_exactly_the_last_new_rids() {
        let bound = 16;
        let mut r = Rids::with_bound(bound);
        let mut model: Vec<(RidKey, u64)> = Vec::new();
        let mut x: u64 = 7;
        for i in 0..5_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let rid = match (x >> 33) % 10 {
                0 => RidKey::Text(format!("t{}", (x >> 40) % 24).into()),
                1 | 2 => RidKey::Num((x >> 40) % (i + 1)),
                3..=5 => RidKey::Num(x >> 33),
                _ => RidKey::Num(1_000 + i),
            };
            let hit = r.get_or_insert(rid.clone(), || sent(i)).map(|s| s.body);
            let known = model.iter().find(|(k, _)| *k == rid).map(|(_, b)| *b);
            assert_eq!(hit, known, "step {i}: {rid}");
            if known.is_none() {
                model.push((rid, i));
                if model.len() > bound {
                    model.remove(0);
                }
            }
            for (k, b) in &model {
                assert_eq!(r.get_mut(k).map(|s| s.body), Some(*b), "step {i}: {k}");
            }
            assert!(r.get_mut(&RidKey::Num(u64::MAX)).is_none());
            assert!(r.get_mut(&RidKey::Text("absent".into())).is_none());
            assert_eq!(r.index.len(), r.ring.len(), "step {i}");
        }
    }

    #[test]
    fn recent_requests_are_keyed_by_event_and_rid() {
        let mut r = Recent::default();
        let (login, init) = (Ev::of("login"), Ev::of("c_init"));
        assert!(!r.seen(&login, &RidKey::Num(1)));
        assert!(r.seen(&login, &RidKey::of_key("1")));
        assert!(!r.seen(&init, &RidKey::Num(1)));
        assert!(!r.seen(&login, &RidKey::of_key("01")));
        assert!(!r.seen(&Ev::of("no_such_event"), &RidKey::Num(1)));
        assert!(r.seen(&Ev::of("no_such_event"), &RidKey::Num(1)));
        for n in 2..=super::super::MAX_RECENT as u64 {
            r.seen(&login, &RidKey::Num(1_000 + n));
        }
        assert!(
            !r.seen(&login, &RidKey::Num(1)),
            "forgotten after MAX_RECENT"
        );
    }
}
