//! Durable state for `serve --state FILE` (docs/state.md).
//!
//! The whole durable backend state is written as one snapshot file, atomically: a
//! temporary file in the same directory (mode 0600), `fsync`, `rename` over the old
//! file, `fsync` of the directory. A [`Persister`] task checks the hub's change counter
//! once per [`SAVE_INTERVAL`] and writes only when it moved, so `kill -9` loses at most
//! the last interval.
//!
//! The backend lock is held only to copy the state other than messages and media, and to
//! encode the messages stored since the last save: a stored message never changes, so the
//! saver keeps each one encoded ([`MessageCache`], filled at start). Media bytes are
//! shared (`Arc`); the copy is encoded and the file written outside the lock.
//!
//! File layout (integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `JMMSTATE` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 8 | length of the state section |
//! | 8 | length of the messages section |
//! | 8 | length of the media section |
//! | 4 | CRC-32 of the three sections |
//! | … | state section: CBOR of `backend::saved::SavedState` |
//! | … | messages section: CBOR array of stored messages |
//! | … | media section: CBOR array of [`SavedMedia`] |
//!
//! A file that is short, long, has another magic, another version, a bad checksum or
//! undecodable content is refused with a [`StateError::Corrupt`] naming the reason, and
//! is never written over.

use super::Hub;
use crate::backend::saved::{SavedMedia, SavedParts, SavedState};
use crate::backend::{Backend, BackendConfig, Clock};
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The first bytes of every state file.
pub const MAGIC: &[u8; 8] = b"JMMSTATE";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// How often the change counter is checked (the most a `kill -9` can lose).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);
const HEADER_LEN: usize = 8 + 4 + 3 * 8 + 4;

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "state file {path} is corrupt or not a state file ({reason}); it was left untouched. \
         Move it away (or pass another --state path) to start from the configured data"
    )]
    Corrupt { path: String, reason: String },
    #[error("cannot write state file {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("bad initial state: {0}")]
    Seed(String),
}

/// Encoded messages by msg_id. A stored message never changes, so each is encoded once
/// and the lock is held only for new ones. Void when the backend is replaced (`epoch`:
/// ids start over).
/// Kept in msg_id order like the store, so a save walks both side by side instead of
/// looking each message up.
#[derive(Default)]
pub struct MessageCache {
    epoch: u64,
    encoded: BTreeMap<u64, Arc<[u8]>>,
}

impl MessageCache {
    /// The encoded messages of `b`, encoding only those not seen before.
    fn take(&mut self, b: &Backend, epoch: u64) -> Result<Vec<Arc<[u8]>>, String> {
        if epoch != self.epoch {
            self.encoded.clear();
            self.epoch = epoch;
        }
        let stored = b.stored_messages();
        let mut out = Vec::with_capacity(stored.len());
        let mut fresh = Vec::new();
        let mut cached = self.encoded.iter().peekable();
        for (id, m) in stored.iter() {
            while cached.next_if(|(c, _)| *c < id).is_some() {}
            let item = match cached.next_if(|(c, _)| *c == id) {
                Some((_, e)) => e.clone(),
                None => {
                    let mut e = Vec::new();
                    ciborium::into_writer(m, &mut e).map_err(|e| e.to_string())?;
                    let e: Arc<[u8]> = e.into();
                    fresh.push((*id, e.clone()));
                    e
                }
            };
            out.push(item);
        }
        self.encoded.extend(fresh);
        Ok(out)
    }

    /// Forgets messages no longer stored (after a snapshot, outside the lock).
    fn prune(&mut self, kept: &[Arc<[u8]>]) {
        if self.encoded.len() > kept.len() {
            let live: HashSet<*const u8> = kept.iter().map(|e| e.as_ptr()).collect();
            self.encoded.retain(|_, e| live.contains(&e.as_ptr()));
        }
    }
}

/// A snapshot taken under the lock, made into a file image outside it.
pub struct Snapshot {
    state: SavedState,
    messages: Vec<Arc<[u8]>>,
    media: Vec<SavedMedia>,
}

impl Snapshot {
    /// Copies the state other than messages and media, takes the messages from `cache`
    /// (encoding new ones) and shares the media bytes: the part that needs the lock.
    pub fn take(b: &Backend, cache: &mut MessageCache, epoch: u64) -> Result<Self, String> {
        Ok(Self {
            state: b.to_saved(),
            messages: cache.take(b, epoch)?,
            media: b.saved_media(),
        })
    }

    /// The complete file image.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut state = Vec::new();
        ciborium::into_writer(&self.state, &mut state).map_err(|e| e.to_string())?;
        let mut messages = cbor_array_head(self.messages.len() as u64);
        for m in &self.messages {
            messages.extend_from_slice(m);
        }
        let mut media = Vec::new();
        ciborium::into_writer(&self.media, &mut media).map_err(|e| e.to_string())?;
        let sections = [&state[..], &messages[..], &media[..]];
        let total: usize = sections.iter().map(|s| s.len()).sum();
        let mut crc = crc32fast::Hasher::new();
        let mut out = Vec::with_capacity(HEADER_LEN + total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        for s in sections {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            crc.update(s);
        }
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        for s in sections {
            out.extend_from_slice(s);
        }
        Ok(out)
    }
}

/// The CBOR head of an array of `n` items (RFC 8949, major type 4).
fn cbor_array_head(n: u64) -> Vec<u8> {
    match n {
        0..=23 => vec![0x80 | n as u8],
        24..=0xff => vec![0x98, n as u8],
        0x100..=0xffff => [&[0x99][..], &(n as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[0x9a][..], &(n as u32).to_be_bytes()].concat(),
        _ => [&[0x9b][..], &n.to_be_bytes()].concat(),
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Checks and decodes a file image; the error is the reason it is unusable.
pub fn decode(bytes: &[u8]) -> Result<SavedParts, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("it does not start with JMMSTATE".into());
    }
    let version = le_u32(&bytes[8..]);
    if version != FORMAT_VERSION {
        return Err(format!(
            "format version {version}; this build reads version {FORMAT_VERSION}"
        ));
    }
    let lens = [
        le_u64(&bytes[12..]),
        le_u64(&bytes[20..]),
        le_u64(&bytes[28..]),
    ];
    let body = &bytes[HEADER_LEN..];
    let announced = lens.iter().try_fold(0u64, |acc, l| acc.checked_add(*l));
    if announced != Some(body.len() as u64) {
        return Err(format!(
            "the header announces {} bytes of content, the file has {} (truncated or appended to)",
            announced.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
            body.len()
        ));
    }
    if crc32fast::hash(body) != le_u32(&bytes[36..]) {
        return Err("checksum mismatch (the content was changed or damaged)".into());
    }
    let (state, rest) = body.split_at(lens[0] as usize);
    let (messages, media) = rest.split_at(lens[1] as usize);
    Ok(SavedParts {
        state: ciborium::from_reader(state).map_err(|e| format!("state section: {e}"))?,
        messages: ciborium::from_reader(messages).map_err(|e| format!("messages section: {e}"))?,
        media: ciborium::from_reader(media).map_err(|e| format!("media section: {e}"))?,
    })
}

/// Reads a state file; `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<SavedParts>, StateError> {
    let shown = path.display().to_string();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateError::Read {
                path: shown,
                reason: e.to_string(),
            })
        }
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| StateError::Corrupt {
            path: shown,
            reason,
        })
}

/// Replaces `path` with `bytes` atomically: a crash leaves the old file or the new
/// one, never a mix. The file is readable by its owner only (it holds password hashes).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    #[cfg(unix)]
    File::open(&dir)?.sync_all()?;
    Ok(())
}

/// What [`open`] starts a server with.
pub struct Opened {
    pub backend: Backend,
    /// The state came from the file (else from the config, and the file was created).
    pub restored: bool,
    /// Every stored message already encoded, so the first save after a start holds the
    /// lock no longer than later ones. For [`Persister::spawn`].
    pub cache: MessageCache,
}

/// The backend to start with: the saved state when `path` exists, else one built from
/// `config` and written to `path` at once (so an unwritable path fails at start).
pub fn open(
    path: &Path,
    config: &BackendConfig,
    clock: Arc<dyn Clock>,
) -> Result<Opened, StateError> {
    let mut cache = MessageCache::default();
    if let Some(parts) = read(path)? {
        let mut backend = Backend::from_saved(parts, clock);
        backend.set_history_limits(config.history);
        cache.take(&backend, 0).map_err(|e| StateError::Corrupt {
            path: path.display().to_string(),
            reason: e,
        })?;
        let saved: Vec<&str> = backend.apps().map(|a| a.appkey.as_str()).collect();
        for app in config
            .seeds
            .apps
            .iter()
            .filter(|a| !saved.contains(&a.appkey.as_str()))
        {
            tracing::warn!(appkey = %app.appkey, path = %path.display(), "app configured but absent from the state file, which wins");
        }
        return Ok(Opened {
            backend,
            restored: true,
            cache,
        });
    }
    let backend =
        Backend::try_new(config.clone(), clock).map_err(|e| StateError::Seed(e.join("; ")))?;
    let write_err = |source| StateError::Write {
        path: path.display().to_string(),
        source,
    };
    let bytes = Snapshot::take(&backend, &mut cache, 0)
        .and_then(|s| s.to_bytes())
        .map_err(|e| write_err(io::Error::other(e)))?;
    write_atomic(path, &bytes).map_err(write_err)?;
    Ok(Opened {
        backend,
        restored: false,
        cache,
    })
}

/// The task that saves the state while the server runs.
pub struct Persister {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Persister {
    /// Starts saving `hub`'s backend to `path` (which holds its state now); `cache`
    /// holds its messages encoded ([`Opened::cache`]).
    pub fn spawn(hub: Arc<Hub>, path: PathBuf, interval: Duration, cache: MessageCache) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut saver = Saver {
                saved: hub.generation(),
                hub,
                path,
                cache,
                last_error: None,
            };
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => saver.save_if_changed().await,
                    _ = stopped.cancelled() => break,
                }
            }
            saver.save_if_changed().await;
        });
        Self { stop, task }
    }

    /// Stops the task after a last save (graceful shutdown).
    pub async fn finish(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "state saver failed");
        }
    }
}

struct Saver {
    hub: Arc<Hub>,
    path: PathBuf,
    /// The generation the file holds.
    saved: u64,
    cache: MessageCache,
    last_error: Option<String>,
}

impl Saver {
    async fn save_if_changed(&mut self) {
        if self.hub.generation() == self.saved {
            return;
        }
        let started = std::time::Instant::now();
        let cache = &mut self.cache;
        let (generation, snapshot) = self
            .hub
            .read_backend(|b, g, epoch| (g, Snapshot::take(b, cache, epoch)));
        let locked = started.elapsed();
        let snapshot = match snapshot {
            Ok(s) => Arc::new(s),
            Err(e) => return self.failed(e),
        };
        self.cache.prune(&snapshot.messages);
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let bytes = snapshot.to_bytes()?;
            write_atomic(&path, &bytes).map_err(|e| e.to_string())?;
            Ok::<usize, String>(bytes.len())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match written {
            Ok(len) => {
                self.saved = generation;
                self.last_error = None;
                tracing::debug!(
                    bytes = len,
                    locked_us = locked.as_micros() as u64,
                    total_ms = started.elapsed().as_millis() as u64,
                    "state saved"
                );
            }
            Err(e) => self.failed(e),
        }
    }

    /// Logs a failed save once per distinct error; the next interval retries.
    fn failed(&mut self, e: String) {
        if self.last_error.as_ref() != Some(&e) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot save the state; retrying every interval");
            self.last_error = Some(e);
        }
    }
}

/// A state file as fixtures JSON (`jmessage-mock export-state`), with what the fixture
/// format could not hold, by kind and count.
pub fn export(path: &Path) -> Result<(String, Vec<(String, usize)>), StateError> {
    let Some(parts) = read(path)? else {
        return Err(StateError::Read {
            path: path.display().to_string(),
            reason: "no such file".into(),
        });
    };
    let clock: Arc<dyn Clock> = Arc::new(crate::backend::SystemClock);
    let backend = Backend::from_saved(parts, clock);
    let x = backend.export_fixtures();
    let skipped = x
        .skipped
        .iter()
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect();
    Ok((crate::backend::export::to_json(&x), skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{AppConfig, ManualClock, MessageSeed, Seeds, UserSeed};

    const APP: &str = "persistappkey00000000001";

    fn config(messages: usize) -> BackendConfig {
        let users = ["ann", "ben", "cid"]
            .iter()
            .map(|n| UserSeed::new(APP, n, "pw", n))
            .collect();
        let seeds = Seeds {
            apps: vec![AppConfig {
                appkey: APP.into(),
                secret: "s".into(),
                name: String::new(),
                cross_app: None,
                max_users: None,
            }],
            users,
            messages: (0..messages)
                .map(|i| MessageSeed {
                    appkey: String::new(),
                    from: ["ann", "ben"][i % 2].into(),
                    to: Some("cid".into()),
                    group: None,
                    text: format!("message {i}"),
                })
                .collect(),
            ..Seeds::default()
        };
        BackendConfig {
            seeds,
            signature_ttl_ms: 1000,
            ..BackendConfig::default()
        }
    }

    fn backend(messages: usize) -> Backend {
        Backend::try_new(
            config(messages),
            Arc::new(ManualClock::new(1_800_000_000_000)),
        )
        .expect("seeded")
    }

    fn image(b: &Backend) -> Vec<u8> {
        Snapshot::take(b, &mut MessageCache::default(), 0)
            .and_then(|s| s.to_bytes())
            .expect("encodes")
    }

    #[test]
    fn a_snapshot_decodes_to_the_same_state() {
        let b = backend(20);
        let parts = decode(&image(&b)).expect("decodes");
        let back = Backend::from_saved(parts, Arc::new(ManualClock::new(0)));
        assert_eq!(back.message_count(), 20);
        let json = |b: &Backend| crate::backend::export::to_json(&b.export_fixtures());
        assert_eq!(json(&back), json(&b));
    }

    #[test]
    fn every_single_byte_change_or_cut_is_detected() {
        let bytes = image(&backend(3));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {i} accepted");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).unwrap_err().contains("appended"));
    }

    #[test]
    fn a_replaced_backend_is_saved_with_its_own_messages() {
        let texts = |b: &Backend| -> Vec<String> {
            let mut t: Vec<String> = b
                .export_fixtures()
                .seeds
                .messages
                .into_iter()
                .map(|m| m.text)
                .collect();
            t.sort();
            t
        };
        let mut cache = MessageCache::default();
        let first = backend(2);
        Snapshot::take(&first, &mut cache, 0).expect("take");
        // Same msg_ids, other content: what an admin reset or scenario load produces.
        let mut cfg = config(2);
        for m in &mut cfg.seeds.messages {
            m.text = format!("after reset: {}", m.text);
        }
        let second =
            Backend::try_new(cfg, Arc::new(ManualClock::new(1_800_000_000_000))).expect("seeded");
        let bytes = Snapshot::take(&second, &mut cache, 1)
            .and_then(|s| s.to_bytes())
            .expect("encodes");
        let back = Backend::from_saved(
            decode(&bytes).expect("decodes"),
            Arc::new(ManualClock::new(0)),
        );
        assert_eq!(texts(&back), texts(&second));
        assert_ne!(texts(&back), texts(&first));
    }

    /// The cost of one save, for docs/state.md:
    /// `cargo test --release --lib persist::tests::measure -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_snapshot_cost() {
        for n in [1_000, 10_000, 100_000] {
            let b = backend(n);
            let mut cache = MessageCache::default();
            let t = std::time::Instant::now();
            drop(Snapshot::take(&b, &mut cache, 0).expect("take"));
            let first = t.elapsed();
            let t = std::time::Instant::now();
            let snap = Snapshot::take(&b, &mut cache, 0).expect("take");
            let locked = t.elapsed();
            let bytes = snap.to_bytes().expect("bytes");
            let total = t.elapsed();
            let t = std::time::Instant::now();
            decode(&bytes).expect("decodes");
            println!(
                "{n} messages: {} bytes, lock held {first:?} (first save), {locked:?} (next saves), file image after {total:?}, decoded {:?}",
                bytes.len(),
                t.elapsed()
            );
        }
    }
}
