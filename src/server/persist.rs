//! Durable state for `serve --state FILE` (docs/state.md).
//!
//! The whole durable backend state is written as one snapshot file, atomically: a
//! temporary file in the same directory (mode 0600), `fsync`, `rename` over the old
//! file, `fsync` of the directory. A [`Persister`] task checks the hub's change counter
//! once per [`SAVE_INTERVAL`] and writes only when it moved, so `kill -9` loses at most
//! the last interval. The backend lock is held only to encode the non-media state; media
//! bytes are shared (`Arc`) and encoded, like the file write, outside the lock.
//!
//! File layout (integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `JMMSTATE` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 8 | length of the state section |
//! | 8 | length of the media section |
//! | 4 | CRC-32 of both sections |
//! | … | state section: CBOR of [`SavedState`] |
//! | … | media section: CBOR of a list of [`SavedMedia`] |
//!
//! A file that is short, long, has another magic, a newer version, a bad checksum or
//! undecodable content is refused with a [`StateError::Corrupt`] naming the reason, and
//! is never written over.

use super::Hub;
use crate::backend::saved::{SavedMedia, SavedState};
use crate::backend::{Backend, BackendConfig, Clock};
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
const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 4;

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: String, source: io::Error },
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

/// A snapshot taken under the lock, encoded to a file image outside it.
pub struct Snapshot {
    state: Vec<u8>,
    media: Vec<SavedMedia>,
}

impl Snapshot {
    /// Encodes the non-media state (the part that needs the lock) and shares the media.
    pub fn take(b: &Backend) -> Result<Self, String> {
        let mut state = Vec::new();
        ciborium::into_writer(&b.to_saved(), &mut state).map_err(|e| e.to_string())?;
        Ok(Self {
            state,
            media: b.saved_media(),
        })
    }

    /// The complete file image.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut media = Vec::new();
        ciborium::into_writer(&self.media, &mut media).map_err(|e| e.to_string())?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.state);
        crc.update(&media);
        let mut out = Vec::with_capacity(HEADER_LEN + self.state.len() + media.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.state.len() as u64).to_le_bytes());
        out.extend_from_slice(&(media.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&self.state);
        out.extend_from_slice(&media);
        Ok(out)
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
pub fn decode(bytes: &[u8]) -> Result<(SavedState, Vec<SavedMedia>), String> {
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
    let (state_len, media_len) = (le_u64(&bytes[12..]), le_u64(&bytes[20..]));
    let body = &bytes[HEADER_LEN..];
    let expected = state_len.checked_add(media_len);
    if expected != Some(body.len() as u64) {
        return Err(format!(
            "the header announces {state_len} + {media_len} bytes of content, the file has {} (truncated or appended to)",
            body.len()
        ));
    }
    if crc32fast::hash(body) != le_u32(&bytes[28..]) {
        return Err("checksum mismatch (the content was changed or damaged)".into());
    }
    let (state, media) = body.split_at(state_len as usize);
    let state: SavedState =
        ciborium::from_reader(state).map_err(|e| format!("state section: {e}"))?;
    let media: Vec<SavedMedia> =
        ciborium::from_reader(media).map_err(|e| format!("media section: {e}"))?;
    Ok((state, media))
}

/// Reads a state file; `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<(SavedState, Vec<SavedMedia>)>, StateError> {
    let shown = path.display().to_string();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: shown,
                source,
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

/// The backend to start with: the saved state when `path` exists, else one built
/// from `config` and written to `path` at once (so a bad path fails at start).
pub fn open(
    path: &Path,
    config: &BackendConfig,
    clock: Arc<dyn Clock>,
) -> Result<(Backend, bool), StateError> {
    if let Some((state, media)) = read(path)? {
        return Ok((Backend::from_saved(state, media, clock), true));
    }
    let backend =
        Backend::try_new(config.clone(), clock).map_err(|e| StateError::Seed(e.join("; ")))?;
    let write_err = |source| StateError::Write {
        path: path.display().to_string(),
        source,
    };
    let bytes = Snapshot::take(&backend)
        .and_then(|s| s.to_bytes())
        .map_err(|e| write_err(io::Error::other(e)))?;
    write_atomic(path, &bytes).map_err(write_err)?;
    Ok((backend, false))
}

/// The task that saves the state while the server runs.
pub struct Persister {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Persister {
    /// Starts saving `hub`'s backend to `path` (which holds its state now).
    pub fn spawn(hub: Arc<Hub>, path: PathBuf, interval: Duration) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut saver = Saver {
                saved: hub.generation(),
                hub,
                path,
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
    last_error: Option<String>,
}

impl Saver {
    async fn save_if_changed(&mut self) {
        if self.hub.generation() == self.saved {
            return;
        }
        let started = std::time::Instant::now();
        let (generation, snapshot) = self.hub.read_backend(|b, g| (g, Snapshot::take(b)));
        let locked = started.elapsed();
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let bytes = snapshot?.to_bytes()?;
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
            Err(e) if self.last_error.as_ref() != Some(&e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot save the state; retrying every interval");
                self.last_error = Some(e);
            }
            Err(_) => {}
        }
    }
}

/// A state file as fixtures JSON (`jmessage-mock export-state`), with what the fixture
/// format could not hold, by kind and count.
pub fn export(path: &Path) -> Result<(String, Vec<(String, usize)>), StateError> {
    let Some((state, media)) = read(path)? else {
        return Err(StateError::Read {
            path: path.display().to_string(),
            source: io::Error::from(io::ErrorKind::NotFound),
        });
    };
    let clock: Arc<dyn Clock> = Arc::new(crate::backend::SystemClock);
    let backend = Backend::from_saved(state, media, clock);
    let x = backend.export_fixtures();
    let skipped = x
        .skipped
        .iter()
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect();
    Ok((crate::backend::export::to_json(&x), skipped))
}
