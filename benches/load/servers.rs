//! The servers under load, each a child process on 127.0.0.1 with an ephemeral port:
//! jmessage-mock (`serve --port 0`, the release binary Cargo builds with the bench), the
//! Node socket.io@2 baseline (benches/baseline-node) and the echo ceiling (this binary
//! with `--serve-echo`). Their CPU time and resident memory are read from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ours,
    /// Another build of jmessage-mock (`--before PATH`), e.g. the previous commit's.
    Before,
    Node,
    Echo,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Ours => "jmessage-mock",
            Kind::Before => "jmessage-mock (before)",
            Kind::Node => "node socket.io@2",
            Kind::Echo => "ws echo (ceiling)",
        }
    }
}

/// Users, groups and rooms a run needs, written for both servers.
pub struct World {
    pub users: Vec<String>,
    pub groups: Vec<(u64, Vec<String>)>,
    pub rooms: Vec<u64>,
}

pub struct Server {
    #[allow(dead_code)]
    pub kind: Kind,
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// True when the Node baseline's dependencies are installed.
pub fn node_available() -> bool {
    manifest_dir()
        .join("benches/baseline-node/node_modules/socket.io")
        .exists()
}

fn yaml_config(w: &World) -> String {
    let mut s = format!(
        "apps:\n  - appkey: {}\n    secret: {}\ndemo_users: false\nlimits:\n  max_connections: 15000\n{}users:\n",
        super::client::APPKEY,
        super::client::SECRET,
        std::env::var("JMM_BENCH_EXTRA_YAML").unwrap_or_default()
    );
    for u in &w.users {
        s.push_str(&format!(
            "  - {{username: {u}, password: \"{}\"}}\n",
            super::client::PASSWORD
        ));
    }
    s.push_str(if w.groups.is_empty() {
        "groups: []\n"
    } else {
        "groups:\n"
    });
    for (gid, members) in &w.groups {
        s.push_str(&format!(
            "  - gid: {gid}\n    name: load\n    owner: {}\n    max_members: {}\n    members: [{}]\n",
            members[0],
            members.len() + 10,
            members[1..].join(", ")
        ));
    }
    s.push_str(if w.rooms.is_empty() {
        "rooms: []\n"
    } else {
        "rooms:\n"
    });
    for id in &w.rooms {
        s.push_str(&format!(
            "  - {{id: {id}, name: load, max_member_count: 100000}}\n"
        ));
    }
    s
}

fn json_config(w: &World) -> String {
    serde_json::json!({
        "appkey": super::client::APPKEY,
        "secret": super::client::SECRET,
        "password": super::client::PASSWORD,
        "users": w.users,
        "groups": w.groups.iter().map(|(g, m)| serde_json::json!({"gid": g, "members": m})).collect::<Vec<_>>(),
        "rooms": w.rooms,
    })
    .to_string()
}

/// Starts a server of `kind` for world `w` and waits for its "listening on" line.
pub async fn start(kind: Kind, w: &World) -> Result<Server, String> {
    let dir = std::env::temp_dir().join(format!(
        "jmm-load-{}-{}",
        std::process::id(),
        super::client::now_us()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let dir = TempDir(dir);
    let mut cmd = match kind {
        Kind::Ours | Kind::Before => {
            let cfg = dir.0.join("config.yaml");
            std::fs::write(&cfg, yaml_config(w)).map_err(|e| e.to_string())?;
            let bin = match (kind, std::env::var_os("JMM_BEFORE_BIN")) {
                (Kind::Before, Some(b)) => PathBuf::from(b),
                _ => PathBuf::from(env!("CARGO_BIN_EXE_jmessage-mock")),
            };
            let mut c = Command::new(bin);
            c.args(["serve", "--port", "0", "--no-admin", "--config"])
                .arg(&cfg)
                .env("JMM_LOG", "warn");
            c
        }
        Kind::Node => {
            let cfg = dir.0.join("config.json");
            std::fs::write(&cfg, json_config(w)).map_err(|e| e.to_string())?;
            let mut c = Command::new("node");
            c.arg(manifest_dir().join("benches/baseline-node/server.js"))
                .arg(&cfg)
                .arg("0");
            c
        }
        Kind::Echo => {
            let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.arg("--serve-echo");
            c
        }
    };
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", kind.label()))?;
    let port = read_port(&mut child).await?;
    Ok(Server {
        kind,
        port,
        child,
        _dir: dir,
    })
}

async fn read_port(child: &mut Child) -> Result<u16, String> {
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(out).lines();
    let find = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(at) = line.find("listening on http://127.0.0.1:") {
                let rest = &line[at + "listening on http://127.0.0.1:".len()..];
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                return digits.parse::<u16>().ok();
            }
        }
        None
    };
    let port = tokio::time::timeout(Duration::from_secs(20), find)
        .await
        .map_err(|_| "server did not start in 20 s".to_string())?
        .ok_or("server printed no port")?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(port)
}

impl Server {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// utime + stime of the process, in seconds.
    pub fn cpu_s(&self) -> f64 {
        self.pid().map_or(0.0, cpu_of)
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return 0;
        };
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// utime + stime of process `pid`, in seconds (0 when it cannot be read).
pub fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which ends with the last ')').
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}
