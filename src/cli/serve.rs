//! `jmessage-mock serve`: the options, the server's settings from the config file,
//! scenario and flags, and the banner that tells a developer how to connect.

use jmessage_mock::backend::BackendConfig;
use jmessage_mock::config::{self, ConfigFile};
use jmessage_mock::faults::FaultSpec;
use jmessage_mock::server::{self, RunningServer, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to bind: an IP or a host name (loopback by default). A name is also
    /// accepted in the admin API's Host check.
    #[arg(long, env = "JMM_HOST")]
    pub host: Option<String>,
    /// Port to bind; 0 picks a free one.
    #[arg(long, short, env = "JMM_PORT")]
    pub port: Option<u16>,
    /// Appkey of the default app.
    #[arg(long, env = "JMM_APPKEY")]
    pub appkey: Option<String>,
    /// Master secret of the default app.
    #[arg(long, env = "JMM_SECRET")]
    pub secret: Option<String>,
    /// YAML config file (apps, users, ...).
    #[arg(long, short, env = "JMM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Engine.IO ping interval in ms.
    #[arg(long, default_value_t = 25_000)]
    pub ping_interval: u64,
    /// Engine.IO ping timeout in ms.
    #[arg(long, default_value_t = 60_000)]
    pub ping_timeout: u64,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Threads that run connections. The backend is one lock, so a second thread
    /// mostly waits for it: one is the fastest measured (docs/performance.md).
    #[arg(long, env = "JMM_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// Start from a scenario file: its fixtures replace the demo data and its faults are
    /// active (steps and expectations are for `run`).
    #[arg(long, env = "JMM_SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Do not serve the admin API at /__admin/ (it is served by default; on a
    /// non-loopback address it needs --admin-token).
    #[arg(long, conflicts_with = "admin")]
    pub no_admin: bool,
    /// Serve the admin API (the default; kept for compatibility: off loopback it still
    /// needs --admin-token).
    #[arg(long)]
    pub admin: bool,
    /// Require `Authorization: Bearer TOKEN` on every admin request. Required when the
    /// admin API is served on a non-loopback address.
    #[arg(long, env = "JMM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Let scenarios posted to /__admin/scenario read `include:` and media `file:` paths
    /// inside this directory (relative paths, no `..`, symlinks must stay inside).
    /// Without it they may read no file.
    #[arg(long, env = "JMM_ADMIN_FILES_ROOT")]
    pub admin_files_root: Option<PathBuf>,
    /// Keep users, groups, messages and media in this file across restarts (created
    /// when missing; when present it wins over the config and demo data). docs/state.md.
    #[arg(long, env = "JMM_STATE")]
    pub state: Option<PathBuf>,
    /// How long a c_init signature stays valid, ms (default 600000, the guide's 10
    /// minutes; overrides the config's signature_ttl_ms).
    #[arg(long, env = "JMM_SIGNATURE_TTL", value_name = "MS")]
    pub signature_ttl: Option<u64>,
    /// Let this page origin (e.g. http://localhost:5173) call GET /__admin/sign
    /// cross-origin, with CORS; that route only. Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// A weak network in real time: none, 3g, lossy-wifi, flaky, offline-bursts
    /// (switchable at run time: POST /__admin/network). docs/admin-api.md.
    #[arg(long, value_name = "PRESET")]
    pub network: Option<String>,
    /// On shutdown, write what happened as a scenario file that `check` accepts and `run`
    /// replays (the same as GET /__admin/record). docs/console.md.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// Runs `jmessage-mock serve` until Ctrl-C or SIGTERM.
pub fn serve(a: ServeArgs) -> ExitCode {
    init_logging(a.log_json);
    let file = match crate::load(a.config.as_ref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let port = a
        .port
        .or_else(|| file.as_ref().and_then(|f| f.port))
        .unwrap_or(config::DEFAULT_PORT);
    let host_arg = a
        .host
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.host.clone()));
    let (host, host_name) = match resolve_host(host_arg.as_deref(), port) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (admin, admin_access) = match admin_setup(&a, host, host_name) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (backend, faults) = match backend_and_faults(&a, file.as_ref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let media_quota_bytes = file
        .as_ref()
        .and_then(|f| f.media_quota_bytes)
        .unwrap_or(jmessage_mock::backend::media::MEDIA_QUOTA_BYTES);
    let mut transport = TransportConfig {
        ping_interval: Duration::from_millis(a.ping_interval),
        ping_timeout: Duration::from_millis(a.ping_timeout),
        ..TransportConfig::default()
    };
    let restoring = a.state.as_ref().is_some_and(|p| p.exists());
    let mut limits = server::Limits::default();
    if let Some(l) = file.as_ref().and_then(|f| f.limits.as_ref()) {
        l.apply(&mut limits, &mut transport);
    }
    let runtime = match runtime(a.threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let stop_signal = shutdown_signal();
        let apps = backend.seeds.apps.clone();
        let demo: Vec<String> = backend
            .seeds
            .users
            .iter()
            .map(|u| u.username.clone())
            .collect();
        let token_required = admin_access.token.is_some();
        let config = ServerConfig {
            faults,
            admin,
            admin_access,
            media_quota_bytes,
            state: a.state.clone(),
            limits,
            record: a.record.clone(),
            ..ServerConfig::new(backend, transport)
        };
        let server = match server::start(config, SocketAddr::new(host, port)).await {
            Ok(s) => s,
            Err(e) => {
                match e {
                    server::StartError::State(e) => eprintln!("error: {e}"),
                    e => eprintln!("error: {host}:{port}: {e}"),
                }
                return ExitCode::FAILURE;
            }
        };
        let banner = Banner {
            apps: &apps,
            demo: &demo,
            state: a.state.as_deref().map(|p| (p, restoring)),
            admin: admin.then_some(token_required),
        };
        banner.print(&server);
        let _ = std::io::Write::flush(&mut std::io::stdout());
        stop_signal.await;
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Logs to stderr, filtered by `JMM_LOG` (default `info`), as JSON lines with --log-json.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The backend state and fault rules: the config file, then --scenario, --signature-ttl
/// and --network. Errors are printed; the exit code is returned.
fn backend_and_faults(
    a: &ServeArgs,
    file: Option<&ConfigFile>,
) -> Result<(BackendConfig, Vec<FaultSpec>), ExitCode> {
    let mut backend = config::backend_config(file, a.appkey.as_deref(), a.secret.as_deref());
    let mut faults = Vec::new();
    if let Some(path) = &a.scenario {
        match jmessage_mock::scenario::load(path) {
            Ok(sc) => {
                backend = sc.backend_config();
                faults = sc.faults();
                eprintln!("scenario: {} ({} fault rules)", sc.name, faults.len());
            }
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                return Err(ExitCode::from(2));
            }
        }
    }
    if let Some(ttl) = a.signature_ttl {
        backend.signature_ttl_ms = ttl.min(i64::MAX as u64) as i64;
    }
    if let Some(preset) = &a.network {
        match server::network::rules(preset) {
            Some(rules) => faults.extend(rules),
            None => {
                eprintln!("error: --network: {}", server::network::unknown(preset));
                return Err(ExitCode::from(2));
            }
        }
    }
    Ok((backend, faults))
}

/// What the start-up banner shows.
struct Banner<'a> {
    apps: &'a [jmessage_mock::backend::AppConfig],
    demo: &'a [String],
    /// The state file, and whether it was restored.
    state: Option<(&'a Path, bool)>,
    /// Whether the admin API is served, and whether it needs a token.
    admin: Option<bool>,
}

impl Banner<'_> {
    fn print(&self, server: &RunningServer) {
        println!(
            "jmessage-mock {} listening on {}",
            env!("CARGO_PKG_VERSION"),
            server.http_url()
        );
        println!(
            "  address:     {}   (new JMessage({{address, upload_file}}))",
            server.ws_url()
        );
        println!("  upload_file: {}", server.upload_url());
        for app in self.apps {
            println!("  appkey:      {}", app.appkey);
            println!("  secret:      {}", app.secret);
        }
        if let Some((path, restoring)) = self.state {
            let how = if restoring { "restored" } else { "created" };
            println!("  state:       {} ({how})", path.display());
        }
        if !self.demo.is_empty() && !self.state.is_some_and(|(_, r)| r) {
            println!(
                "  users:       {} (demo password: {})",
                self.demo.join(", "),
                config::DEMO_PASSWORD
            );
        }
        println!(
            "  sign:        jmessage-mock sign --appkey {} --secret {}",
            self.apps[0].appkey, self.apps[0].secret
        );
        if let Some(token_required) = self.admin {
            let auth = if token_required {
                "   (Authorization: Bearer <admin token>)"
            } else {
                ""
            };
            println!("  admin:       {}/__admin/state{auth}", server.http_url());
            let hint = if token_required {
                "#token=<admin token>"
            } else {
                ""
            };
            println!("  console:     {}/__console/{hint}", server.http_url());
        }
    }
}

/// The address to bind for `--host` (an IP or a name; default loopback), and the name
/// when one was given.
fn resolve_host(host: Option<&str>, port: u16) -> Result<(IpAddr, Option<String>), String> {
    let Some(h) = host else {
        return Ok((IpAddr::from([127, 0, 0, 1]), None));
    };
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    use std::net::ToSocketAddrs;
    let first = (h, port)
        .to_socket_addrs()
        .map_err(|e| format!("--host {h}: cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("--host {h}: no address"))?;
    Ok((first.ip(), Some(h.to_owned())))
}

/// Whether to serve the admin API, and how it is protected. Off loopback it needs a
/// token (or --no-admin); a files root must be a directory.
fn admin_setup(
    a: &ServeArgs,
    host: IpAddr,
    host_name: Option<String>,
) -> Result<(bool, server::AdminAccess), String> {
    let token = a.admin_token.clone().filter(|t| !t.is_empty());
    if a.no_admin {
        return Ok((false, server::AdminAccess::default()));
    }
    if !host.is_loopback() && token.is_none() {
        return Err(format!(
            "the admin API on the non-loopback address {host} needs a token: pass \
             --admin-token TOKEN (or set JMM_ADMIN_TOKEN) and send `Authorization: Bearer \
             TOKEN`, or pass --no-admin to serve without the admin API"
        ));
    }
    if let Some(root) = &a.admin_files_root {
        jmessage_mock::scenario::FileAccess::under(root)
            .map_err(|e| format!("--admin-files-root {}: {e}", root.display()))?;
    }
    Ok((
        true,
        server::AdminAccess {
            token,
            files_root: a.admin_files_root.clone(),
            host_names: host_name.into_iter().collect(),
            sign_origins: a.allow_origin.clone(),
        },
    ))
}

/// Ctrl-C, or SIGTERM on Unix. The handlers are installed when this is called (inside
/// the runtime), so a SIGTERM that arrives while the server starts is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        if let (Some(mut term), Some(mut int)) = handlers {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The server's runtime: one thread runs everything (blocking file work still goes
/// to tokio's blocking pool); more threads share the connections.
fn runtime(threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(threads));
        b
    };
    builder.enable_all().build()
}
