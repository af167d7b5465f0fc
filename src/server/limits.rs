//! Server-level limits (connections, shutdown, journal, dedupe cache) and the `limits:`
//! section of the YAML config file, which also sets the transport's limits. Every
//! default is documented in docs/limits.md.

use crate::transport::TransportConfig;
use std::time::Duration;

/// Limits the server applies outside the transport.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a connection may take to send a complete request head, counted from
    /// accept or from the end of the previous response (so also the keep-alive idle
    /// timeout).
    pub header_read_timeout: Duration,
    /// Most connections open at once (HTTP, polling and websocket alike).
    pub max_connections: usize,
    /// On shutdown, the longest wait for requests in flight to be answered, and then
    /// for connections to close.
    pub shutdown_grace: Duration,
    /// Most bytes of frame text the journal keeps (oldest entries go first).
    pub journal_bytes: usize,
    /// Longest frame text stored in one journal entry; longer frames are cut, with a
    /// marker saying how long they were.
    pub journal_frame_max: usize,
    /// Most answers the dedupe cache keeps.
    pub dedupe_max_entries: usize,
    /// Most bytes of answers the dedupe cache keeps.
    pub dedupe_max_bytes: usize,
    /// How long a cached answer lives.
    pub dedupe_ttl: Duration,
    /// How often expired dedupe answers are swept, whether requests arrive or not.
    pub dedupe_sweep: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: default_max_connections(),
            shutdown_grace: Duration::from_secs(2),
            journal_bytes: 32 * 1024 * 1024,
            journal_frame_max: 64 * 1024,
            dedupe_max_entries: 100_000,
            dedupe_max_bytes: 64 * 1024 * 1024,
            dedupe_ttl: Duration::from_secs(5 * 60),
            dedupe_sweep: Duration::from_secs(10),
        }
    }
}

/// 4096, or fewer when the open-file limit is lower: the limit minus 64 descriptors of
/// headroom (files, the listener, the runtime), at least 16.
pub fn default_max_connections() -> usize {
    match open_file_limit() {
        Some(n) => n.saturating_sub(64).clamp(16, 4096),
        None => 4096,
    }
}

#[cfg(unix)]
fn open_file_limit() -> Option<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    usize::try_from(lim.rlim_cur).ok()
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<usize> {
    None
}

pub use crate::config::LimitsFile;

fn set<T: Copy>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn set_ms(slot: &mut Duration, value: Option<u64>) {
    if let Some(v) = value {
        *slot = Duration::from_millis(v);
    }
}

impl LimitsFile {
    /// Overrides the given limits with the keys present in the file.
    pub fn apply(&self, limits: &mut Limits, transport: &mut TransportConfig) {
        set_ms(&mut limits.header_read_timeout, self.header_read_timeout_ms);
        set(&mut limits.max_connections, self.max_connections);
        set_ms(&mut limits.shutdown_grace, self.shutdown_grace_ms);
        set(&mut limits.journal_bytes, self.journal_bytes);
        set(&mut limits.journal_frame_max, self.journal_frame_max);
        set(&mut limits.dedupe_max_entries, self.dedupe_max_entries);
        set(&mut limits.dedupe_max_bytes, self.dedupe_max_bytes);
        set_ms(&mut limits.dedupe_ttl, self.dedupe_ttl_ms);
        set_ms(&mut limits.dedupe_sweep, self.dedupe_sweep_ms);
        set(&mut transport.max_payload, self.max_payload);
        set(&mut transport.max_queue_frames, self.max_queue_frames);
        set(&mut transport.max_queue_bytes, self.max_queue_bytes);
        set_ms(&mut transport.write_timeout, self.write_timeout_ms);
        set_ms(&mut transport.handshake_timeout, self.handshake_timeout_ms);
        set_ms(&mut transport.body_timeout, self.body_timeout_ms);
        // Zero would refuse every connection or wait for nothing: keep a floor.
        limits.max_connections = limits.max_connections.max(1);
        limits.dedupe_sweep = limits.dedupe_sweep.max(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_connection_limit_is_sane() {
        let n = default_max_connections();
        assert!((16..=4096).contains(&n), "{n}");
    }

    #[test]
    fn file_overrides_only_present_keys() {
        let f: LimitsFile =
            serde_saphyr::from_str("max_connections: 7\nwrite_timeout_ms: 1500\n").unwrap();
        let (mut l, mut t) = (Limits::default(), TransportConfig::default());
        f.apply(&mut l, &mut t);
        assert_eq!(l.max_connections, 7);
        assert_eq!(t.write_timeout, Duration::from_millis(1500));
        assert_eq!(l.journal_bytes, Limits::default().journal_bytes);
        assert!(serde_saphyr::from_str::<LimitsFile>("max_conections: 7\n").is_err());
    }
}
