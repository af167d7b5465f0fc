//! Server configuration: the embedded default app and demo users, and the optional
//! YAML config file (`--config`).

use crate::backend::{AppConfig, BackendConfig, FriendSeed, GroupSeed, RoomSeed, Seeds, UserSeed};
use serde::Deserialize;
use std::path::Path;

/// The embedded default app: usable with no configuration at all.
pub const DEFAULT_APPKEY: &str = "6b4c1fe2d0a8e5f3a9c7b1d2";
/// The embedded default app's master secret.
pub const DEFAULT_SECRET: &str = "jmessage-mock-dev-secret";
/// Default port of `serve`.
pub const DEFAULT_PORT: u16 = 8787;
/// Password of every demo user.
pub const DEMO_PASSWORD: &str = "123456";
/// The demo users seeded into the default app.
pub const DEMO_USERS: &[(&str, &str)] = &[
    ("alice", "Alice"),
    ("bobby", "Bobby"),
    ("carol", "Carol"),
    ("david", "David"),
];

/// The YAML config file. Every key is optional.
///
/// ```yaml
/// apps:
///   - appkey: 6b4c1fe2d0a8e5f3a9c7b1d2
///     secret: my-secret
/// users:
///   - appkey: 6b4c1fe2d0a8e5f3a9c7b1d2
///     username: alice
///     password: "123456"
/// demo_users: false
/// signature_ttl_ms: 600000
/// media_quota_bytes: 268435456
/// history:            # message retention and sync pages (docs/limits-history.md)
///   per_conversation: 10000
///   total: 200000
/// ```
// Deliberately repeated (the first five lists of `backend::Seeds`): the config file
// takes only these, and serde's flatten cannot be combined with deny_unknown_fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    #[serde(default)]
    pub users: Vec<UserSeed>,
    #[serde(default)]
    pub groups: Vec<GroupSeed>,
    /// Chat rooms; two demo rooms when empty.
    #[serde(default)]
    pub rooms: Vec<RoomSeed>,
    #[serde(default)]
    pub friends: Vec<FriendSeed>,
    /// Seed the demo users, group and friendship into the first app (default true).
    #[serde(default)]
    pub demo_users: Option<bool>,
    #[serde(default)]
    pub signature_ttl_ms: Option<i64>,
    /// Bytes of uploaded media per app (default 256 MiB, docs/security.md).
    #[serde(default)]
    pub media_quota_bytes: Option<usize>,
    /// Message retention and sync page sizes; unset keys keep their defaults.
    #[serde(default)]
    pub history: Option<crate::backend::limits::HistoryLimits>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub host: Option<String>,
    /// Connection, queue, journal and dedupe limits (docs/limits.md).
    #[serde(default)]
    pub limits: Option<LimitsFile>,
}

/// A config file that could not be used, with its location.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// The demo users of an app.
pub fn demo_users(appkey: &str) -> Vec<UserSeed> {
    DEMO_USERS
        .iter()
        .map(|(name, nick)| UserSeed::new(appkey, name, DEMO_PASSWORD, nick))
        .collect()
}

/// Builds the backend state from an optional file and the command-line overrides of the
/// first app.
pub fn backend_config(
    file: Option<&ConfigFile>,
    appkey: Option<&str>,
    secret: Option<&str>,
) -> BackendConfig {
    let mut apps = file.map(|f| f.apps.clone()).unwrap_or_default();
    if apps.is_empty() {
        apps.push(AppConfig {
            appkey: DEFAULT_APPKEY.into(),
            secret: DEFAULT_SECRET.into(),
            name: "jmessage-mock default app".into(),
            cross_app: None,
            max_users: None,
        });
    }
    if let Some(k) = appkey {
        apps[0].appkey = k.to_owned();
    }
    if let Some(s) = secret {
        apps[0].secret = s.to_owned();
    }
    let mut users = file.map(|f| f.users.clone()).unwrap_or_default();
    if file.and_then(|f| f.demo_users).unwrap_or(true) {
        let first = apps[0].appkey.clone();
        for u in demo_users(&first) {
            if !users
                .iter()
                .any(|x| x.appkey == u.appkey && x.username == u.username)
            {
                users.push(u);
            }
        }
    }
    let first = apps[0].appkey.clone();
    let demo = file.and_then(|f| f.demo_users).unwrap_or(true);
    let mut groups = file.map(|f| f.groups.clone()).unwrap_or_default();
    let mut rooms = file.map(|f| f.rooms.clone()).unwrap_or_default();
    let mut friends = file.map(|f| f.friends.clone()).unwrap_or_default();
    if demo {
        groups.push(GroupSeed {
            appkey: first.clone(),
            gid: None,
            name: "Demo Group".into(),
            desc: "alice, bobby, carol and david".into(),
            owner: "alice".into(),
            admins: vec!["bobby".into()],
            members: vec!["carol".into(), "david".into()],
            silenced: vec![],
            public: false,
            max_members: 500,
        });
        friends.push(FriendSeed {
            appkey: first.clone(),
            users: ["alice".into(), "bobby".into()],
        });
    }
    if rooms.is_empty() {
        for (name, description) in [
            ("Lobby", "Everyone is welcome"),
            ("Random", "Off-topic chat"),
        ] {
            rooms.push(RoomSeed {
                appkey: first.clone(),
                id: None,
                name: name.into(),
                description: description.into(),
                max_member_count: 1000,
            });
        }
    }
    BackendConfig {
        seeds: Seeds {
            apps,
            users,
            groups,
            rooms,
            friends,
            ..Seeds::default()
        },
        signature_ttl_ms: file
            .and_then(|f| f.signature_ttl_ms)
            .unwrap_or(crate::protocol::sign::SIGNATURE_TTL_MS),
        history: file.and_then(|f| f.history).unwrap_or_default(),
    }
}

/// The `limits:` section of the config file; every key optional (docs/limits.md).
/// Plain data here; `server::limits` applies it (`LimitsFile::apply`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub header_read_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub shutdown_grace_ms: Option<u64>,
    pub journal_bytes: Option<usize>,
    pub journal_frame_max: Option<usize>,
    pub dedupe_max_entries: Option<usize>,
    pub dedupe_max_bytes: Option<usize>,
    pub dedupe_ttl_ms: Option<u64>,
    pub dedupe_sweep_ms: Option<u64>,
    pub max_payload: Option<usize>,
    pub max_queue_frames: Option<usize>,
    pub max_queue_bytes: Option<usize>,
    pub write_timeout_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_an_app_and_demo_users() {
        let c = backend_config(None, None, None);
        assert_eq!(c.seeds.apps[0].appkey, DEFAULT_APPKEY);
        assert_eq!(c.seeds.users.len(), DEMO_USERS.len());
        let c = backend_config(None, Some("k"), Some("s"));
        assert_eq!(c.seeds.apps[0].appkey, "k");
        assert_eq!(c.seeds.users[0].appkey, "k");
    }

    #[test]
    fn file_errors_have_locations() {
        let err = ConfigFile::parse("apps:\n  - appkey: a\n    secrt: b\n", "x.yaml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("x.yaml: "), "{msg}");
        assert!(msg.contains("secrt"), "{msg}");
        assert!(msg.contains('3'), "line number expected: {msg}");
    }

    #[test]
    fn history_limits_are_configurable_and_default_when_unset() {
        let f = ConfigFile::parse("history:\n  per_conversation: 50\n", "x.yaml").unwrap();
        let h = backend_config(Some(&f), None, None).history;
        assert_eq!(h.per_conversation, 50);
        assert_eq!(
            h.total,
            crate::backend::limits::HistoryLimits::default().total
        );
        assert_eq!(backend_config(None, None, None).history, Default::default());
        let bad = ConfigFile::parse("history:\n  per_conversaton: 5\n", "x.yaml").unwrap_err();
        assert!(bad.to_string().contains("per_conversaton"), "{bad}");
    }

    #[test]
    fn file_parses() {
        let f = ConfigFile::parse(
            "apps:\n  - appkey: a\n    secret: b\nusers:\n  - {appkey: a, username: zed1, password: p}\ndemo_users: false\n",
            "x.yaml",
        )
        .unwrap();
        let c = backend_config(Some(&f), None, None);
        assert_eq!(c.seeds.users.len(), 1);
        assert_eq!(c.seeds.apps[0].secret, "b");
    }
}
