//! The stored messages, by msg_id.
//!
//! Written by hand rather than a `BTreeMap`: msg_ids are handed out in increasing order
//! and retention drops the oldest, so a deque sorted by id takes a new message at the
//! back and drops one at the front in constant time, and a lookup probes the slot its id
//! would have if no id were missing before searching. A `BTreeMap` shifted a leaf's
//! hundred-byte entries on every drop from the front and scattered its nodes over the
//! heap (docs/performance.md, run 6).
//!
//! A message removed from the middle (a retraction, retention of a quiet conversation)
//! leaves an empty slot; empty slots at either end are let go at once, and once they
//! are more than half of all slots the deque is compacted, so it never holds more than
//! twice the stored messages plus a small constant.

use super::model::Message;
use std::collections::VecDeque;

/// Below this many slots, empty ones are not worth compacting.
const COMPACT_FLOOR: usize = 64;

/// The stored messages in msg_id order (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Messages {
    /// Sorted by id; the first and the last slot are never empty.
    slots: VecDeque<(u64, Option<Message>)>,
    /// Slots that hold a message.
    live: usize,
}

impl Messages {
    /// How many messages are stored.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The slot of `id`: `Ok` where it is, `Err` where it would go.
    fn find(&self, id: u64) -> Result<usize, usize> {
        let first = self.slots.front().map_or(0, |s| s.0);
        // Ids are dense unless some were skipped or dropped: try the direct slot first.
        if let Some(guess) = id.checked_sub(first).and_then(|d| usize::try_from(d).ok()) {
            if self.slots.get(guess).is_some_and(|s| s.0 == id) {
                return Ok(guess);
            }
        }
        self.slots.binary_search_by_key(&id, |s| s.0)
    }

    pub fn get(&self, id: &u64) -> Option<&Message> {
        let i = self.find(*id).ok()?;
        self.slots[i].1.as_ref()
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut Message> {
        let i = self.find(*id).ok()?;
        self.slots[i].1.as_mut()
    }

    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    /// Stores `m` under `id`, returning the message it replaces. A new id (the usual
    /// case) goes at the back; an older one (a restored state) is put in its place.
    pub fn insert(&mut self, id: u64, m: Message) -> Option<Message> {
        if self.slots.back().is_none_or(|s| s.0 < id) {
            self.slots.push_back((id, Some(m)));
            self.live += 1;
            return None;
        }
        match self.find(id) {
            Ok(i) => {
                let old = self.slots[i].1.replace(m);
                if old.is_none() {
                    self.live += 1;
                }
                old
            }
            Err(i) => {
                self.slots.insert(i, (id, Some(m)));
                self.live += 1;
                None
            }
        }
    }

    pub fn remove(&mut self, id: &u64) -> Option<Message> {
        let i = self.find(*id).ok()?;
        let m = self.slots[i].1.take()?;
        self.live -= 1;
        while self.slots.front().is_some_and(|s| s.1.is_none()) {
            self.slots.pop_front();
        }
        while self.slots.back().is_some_and(|s| s.1.is_none()) {
            self.slots.pop_back();
        }
        if self.slots.len() > COMPACT_FLOOR && self.slots.len() > 2 * self.live {
            self.slots.retain(|s| s.1.is_some());
        }
        Some(m)
    }

    /// The oldest stored message's id.
    pub fn first_id(&self) -> Option<u64> {
        self.slots.front().map(|s| s.0)
    }

    /// Every stored message with its id, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Message)> {
        self.slots
            .iter()
            .filter_map(|(id, m)| m.as_ref().map(|m| (id, m)))
    }

    /// Every stored message, oldest first.
    pub fn values(&self) -> impl Iterator<Item = &Message> {
        self.slots.iter().filter_map(|s| s.1.as_ref())
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Message> {
        self.slots.iter_mut().filter_map(|s| s.1.as_mut())
    }

    /// How many slots the deque holds, empty ones included.
    #[cfg(test)]
    fn slots(&self) -> usize {
        self.slots.len()
    }
}

impl FromIterator<(u64, Message)> for Messages {
    fn from_iter<I: IntoIterator<Item = (u64, Message)>>(iter: I) -> Self {
        let mut all: Vec<(u64, Message)> = iter.into_iter().collect();
        all.sort_by_key(|(id, _)| *id);
        let mut out = Messages::default();
        for (id, m) in all {
            out.insert(id, m);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::model::{Target, UserKey};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn msg(id: u64) -> Message {
        let k = Arc::new(UserKey {
            appkey: "a".into(),
            username: "u".into(),
        });
        Message::new(id, k.clone(), Target::User(k), 0, format!("{id}").into())
    }

    /// Follows a `BTreeMap` through a mix of appends, old inserts and removals at the
    /// front, in the middle and at the back.
    #[test]
    fn behaves_like_an_ordered_map() {
        let mut ours = Messages::default();
        let mut model: BTreeMap<u64, Message> = BTreeMap::new();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        let mut top = 0u64;
        for _ in 0..20_000 {
            let r = next();
            let id = match r % 10 {
                0..=4 => {
                    top += 1 + r % 3;
                    top
                }
                5 => r % (top + 2),
                _ => {
                    let live: Vec<u64> = model.keys().copied().collect();
                    let pick = match live.len() {
                        0 => 0,
                        n if r % 4 == 0 => live[n / 2],
                        n if r % 4 == 1 => live[n - 1],
                        _ => live[0],
                    };
                    assert_eq!(ours.remove(&pick), model.remove(&pick));
                    continue;
                }
            };
            assert_eq!(ours.insert(id, msg(id)), model.insert(id, msg(id)));
            assert_eq!(ours.len(), model.len());
            assert_eq!(ours.first_id(), model.keys().next().copied());
        }
        let a: Vec<u64> = ours.iter().map(|(id, _)| *id).collect();
        let b: Vec<u64> = model.keys().copied().collect();
        assert_eq!(a, b);
        for id in 0..top + 2 {
            assert_eq!(ours.get(&id), model.get(&id), "id {id}");
        }
    }

    #[test]
    fn empty_slots_are_let_go() {
        let mut m: Messages = (1..=1000).map(|id| (id, msg(id))).collect();
        for id in (2..1000).filter(|id| id % 10 != 0) {
            m.remove(&id);
        }
        // 99 left in the middle plus both ends: compacted to at most twice that.
        assert_eq!(m.len(), 101);
        assert!(m.slots() <= 2 * 101, "{} slots", m.slots());
        for id in (10..1000).step_by(10).chain([1, 1000]) {
            assert!(m.contains_key(&id));
        }
        m.remove(&1);
        assert_eq!(m.first_id(), Some(10));
        while let Some(id) = m.first_id() {
            m.remove(&id);
        }
        assert!(m.is_empty() && m.slots() == 0);
    }
}
