//! The durable part of the backend state, as `serve --state FILE` keeps it across
//! restarts (docs/state.md). This module only converts: [`Backend::to_saved`] copies
//! the state for serialization, [`Backend::from_saved`] rebuilds a backend. Encoding,
//! checksums and files are the server's business (`server/persist.rs`).
//!
//! Kept: apps, users (with password hashes), messages and retracted messages, every
//! user's mailbox (sync log, conversations, event log), groups, chat rooms (without
//! members: room membership ends with the session), friends, invitations, blacklists,
//! no-disturb and shield settings, read receipts and receipt logs, pending join
//! requests, stored media and the id counters. Not kept: connections and logins, the
//! dedupe cache of retried rids, upload tokens, and the public URL and limits (set again
//! by the server at start).

use super::clock::Ids;
use super::groups::JoinRequest;
use super::media::StoredMedia;
use super::model::{Group, Mailbox, Message, ReceiptState, Room, Social, User};
use super::receipts::ReceiptLog;
use super::FastMap;
use super::{AppConfig, Backend, BackendConfig, Clock, UserKey};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The parts of a saved state, as read back.
#[derive(Debug)]
pub struct SavedParts {
    pub state: SavedState,
    pub messages: Vec<Message>,
    pub media: Vec<SavedMedia>,
}

/// The durable state other than messages and media: a copy, taken under the server's
/// backend lock and encoded outside it. Messages never change once stored, so the saver
/// encodes each once (see [`Backend::stored_messages`]); media bytes are shared (see
/// [`Backend::saved_media`]).
// Deliberately repeated (most of `Backend`'s fields): this is the state file's shape,
// kept apart so that a new runtime-only field of `Backend` does not change the file.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedState {
    ids: Ids,
    signature_ttl_ms: i64,
    apps: BTreeMap<String, AppConfig>,
    users: FastMap<UserKey, User>,
    mailboxes: FastMap<UserKey, Mailbox>,
    groups: BTreeMap<u64, Group>,
    rooms: BTreeMap<u64, Room>,
    social: FastMap<UserKey, Social>,
    receipts: FastMap<u64, ReceiptState>,
    join_requests: BTreeMap<u64, JoinRequest>,
    receipt_logs: FastMap<UserKey, ReceiptLog>,
    retracted: BTreeMap<u64, Message>,
}

/// One stored media file. The bytes are shared with the backend, so taking the list
/// under the lock copies no content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedMedia {
    pub media_id: String,
    pub owner: UserKey,
    pub content_type: String,
    pub name: String,
    #[serde(
        serialize_with = "bytes_out",
        deserialize_with = "bytes_in",
        rename = "bytes"
    )]
    pub bytes: Arc<[u8]>,
    /// Who may see it besides the owner (docs/authorization.md).
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub readers: Vec<UserKey>,
    #[serde(default)]
    pub groups: Vec<u64>,
}

fn bytes_out<S: Serializer>(b: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(b)
}

fn bytes_in<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
    let buf: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
    Ok(Arc::from(buf.into_vec()))
}

impl Backend {
    /// A copy of the durable state other than messages and media (a copy is several
    /// times cheaper than encoding, so the lock is released sooner).
    pub fn to_saved(&self) -> SavedState {
        SavedState {
            ids: self.ids.clone(),
            signature_ttl_ms: self.signature_ttl_ms,
            apps: self.apps.clone(),
            users: self.users.clone(),
            mailboxes: self.mailboxes.clone(),
            groups: self.groups.clone(),
            rooms: self.rooms.clone(),
            social: self.social.clone(),
            receipts: self.receipts.clone(),
            join_requests: self.join_requests.clone(),
            receipt_logs: self.receipt_logs.clone(),
            retracted: self.retracted.clone(),
        }
    }

    /// The stored messages (not retracted) by msg_id. A stored message never changes;
    /// it is only removed (retraction, retention).
    pub fn stored_messages(&self) -> &super::messages::Messages {
        &self.messages
    }

    /// Every stored media file, sorted by media_id; the bytes are shared, not copied.
    pub fn saved_media(&self) -> Vec<SavedMedia> {
        let mut list: Vec<SavedMedia> = self
            .media
            .blobs()
            .iter()
            .map(|(id, m)| SavedMedia {
                media_id: id.clone(),
                owner: m.owner.clone(),
                content_type: m.content_type.clone(),
                name: m.name.clone(),
                bytes: m.bytes.clone(),
                public: m.public,
                readers: sorted(m.readers.iter().cloned()),
                groups: sorted(m.groups.iter().copied()),
            })
            .collect();
        list.sort_by(|a, b| a.media_id.cmp(&b.media_id));
        list
    }

    /// A backend holding a saved state. Nobody is logged in; chat rooms start empty.
    pub fn from_saved(parts: SavedParts, clock: Arc<dyn Clock>) -> Self {
        let SavedParts {
            state,
            messages,
            media,
        } = parts;
        let (mut b, _) = Self::build(BackendConfig::default(), clock);
        b.ids = state.ids;
        b.signature_ttl_ms = state.signature_ttl_ms;
        b.apps = state.apps;
        b.uids = state
            .users
            .values()
            .map(|u| (u.uid, u.key.clone()))
            .collect();
        b.users = state.users;
        b.messages = messages.into_iter().map(|m| (m.msg_id, m)).collect();
        b.mailboxes = state.mailboxes;
        b.groups = state.groups;
        b.rooms = state.rooms;
        for r in b.rooms.values_mut() {
            r.members.clear();
        }
        b.social = state.social;
        b.receipts = state.receipts;
        b.join_requests = state.join_requests;
        b.receipt_logs = state.receipt_logs;
        b.retracted = state.retracted;
        b.rebuild_threads();
        for m in media {
            b.media.restore_blob(
                m.media_id,
                StoredMedia {
                    bytes: m.bytes,
                    content_type: m.content_type,
                    name: m.name,
                    owner: m.owner,
                    public: m.public,
                    readers: m.readers.into_iter().collect(),
                    groups: m.groups.into_iter().collect(),
                },
            );
        }
        b
    }
}

/// A set as a sorted list, so equal states give equal files.
fn sorted<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort();
    v
}
