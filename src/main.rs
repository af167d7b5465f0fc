//! The `jmessage-mock` command line.

mod cli;

use clap::{Parser, Subcommand};
use jmessage_mock::config::{self, ConfigFile};
use jmessage_mock::protocol::sign::signature;
use jmessage_mock::server::{self, ServerConfig};
use jmessage_mock::transport::TransportConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "jmessage-mock",
    version,
    about = "A fake JMessage (Jiguang IM) backend for the Web SDK V2"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a JMessage backend for the Web SDK (embedded default app and demo users).
    Serve(ServeArgs),
    /// Print a valid c_init auth payload (appkey, random_str, timestamp, signature) as JSON.
    Sign(SignArgs),
    /// Validate scenario and fixture files (files or directories). Exit code 1 on errors.
    Check(CheckArgs),
    /// Run scenarios against one or more clients and grade them (PASS, NON-STRICT, INFO,
    /// UNIMPL, EXCL, FAIL). Exit codes: 0 no FAIL (other verdicts do not fail a run), 1 at
    /// least one FAIL (including a changed snapshot with --snapshots), 2 invalid input
    /// (bad scenario, bad option, unwritable report).
    Run(cli::run::RunArgs),
    /// Work with reports: `report merge` joins the reports of CI shards (docs/ci.md).
    Report(cli::report::ReportArgs),
    /// Print the JSON Schema of scenario or fixture files (for editor completion; the
    /// same schemas are committed as docs/scenario.schema.json and docs/fixtures.schema.json).
    Schema(SchemaArgs),
    /// Compare the committed snapshots of several clients case by case (consecutive
    /// clients pairwise) and print a Markdown report with the diffs (e.g.
    /// scenarios/conformance/VERSIONS.md). Exit code 1 with --check when FILE differs.
    DiffSnapshots(DiffSnapshotsArgs),
    /// Write a `serve --state` file as a fixtures file (JSON, which is YAML) that a
    /// scenario's `include:` loads; what fixtures cannot hold is listed on stderr.
    ExportState(ExportStateArgs),
    /// Forward clients to another JMessage server (ws://, http://), applying a
    /// scenario's fault rules at the frame level; journal and admin API as on `serve`
    /// (docs/proxy.md).
    Proxy(jmessage_mock::proxy::cli::ProxyArgs),
    /// Run the catalogue once per mutant (a deliberately broken client) without snapshots,
    /// stopping a mutant's run at its first FAIL (killed). Exit codes: 0 every mutant
    /// killed, 1 at least one survived, 2 invalid input.
    Mutants(jmessage_mock::conformance::mutants::MutantsArgs),
}

#[derive(clap::Args)]
struct ExportStateArgs {
    /// The state file (read only).
    state: PathBuf,
    /// Write here instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DiffSnapshotsArgs {
    /// The scenario directory (its `*/snapshots/<client>/` directories are read).
    dir: PathBuf,
    /// Client names (snapshot directories), in order, at least two.
    #[arg(required = true, num_args = 2..)]
    clients: Vec<String>,
    /// Write the report here instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not write: fail (exit code 1) when the file given with --out is not up to date.
    #[arg(long, requires = "out")]
    check: bool,
}

#[derive(clap::Args)]
struct SchemaArgs {
    /// Which format.
    #[arg(value_enum, default_value = "scenario")]
    kind: SchemaKind,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SchemaKind {
    Scenario,
    Fixtures,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Files or directories (every .yaml/.yml below them). Files under a `fixtures`
    /// directory are checked as fixtures, the rest as scenarios.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to bind: an IP or a host name (loopback by default). A name is also
    /// accepted in the admin API's Host check.
    #[arg(long, env = "JMM_HOST")]
    host: Option<String>,
    /// Port to bind; 0 picks a free one.
    #[arg(long, short, env = "JMM_PORT")]
    port: Option<u16>,
    /// Appkey of the default app.
    #[arg(long, env = "JMM_APPKEY")]
    appkey: Option<String>,
    /// Master secret of the default app.
    #[arg(long, env = "JMM_SECRET")]
    secret: Option<String>,
    /// YAML config file (apps, users, ...).
    #[arg(long, short, env = "JMM_CONFIG")]
    config: Option<PathBuf>,
    /// Engine.IO ping interval in ms.
    #[arg(long, default_value_t = 25_000)]
    ping_interval: u64,
    /// Engine.IO ping timeout in ms.
    #[arg(long, default_value_t = 60_000)]
    ping_timeout: u64,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Start from a scenario file: its fixtures replace the demo data and its faults are
    /// active (steps and expectations are for `run`).
    #[arg(long, env = "JMM_SCENARIO")]
    scenario: Option<PathBuf>,
    /// Do not serve the admin API at /__admin/ (it is served by default; on a
    /// non-loopback address it needs --admin-token).
    #[arg(long, conflicts_with = "admin")]
    no_admin: bool,
    /// Serve the admin API (the default; kept for compatibility: off loopback it still
    /// needs --admin-token).
    #[arg(long)]
    admin: bool,
    /// Require `Authorization: Bearer TOKEN` on every admin request. Required when the
    /// admin API is served on a non-loopback address.
    #[arg(long, env = "JMM_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Let scenarios posted to /__admin/scenario read `include:` and media `file:` paths
    /// inside this directory (relative paths, no `..`, symlinks must stay inside).
    /// Without it they may read no file.
    #[arg(long, env = "JMM_ADMIN_FILES_ROOT")]
    admin_files_root: Option<PathBuf>,
    /// Keep users, groups, messages and media in this file across restarts (created
    /// when missing; when present it wins over the config and demo data). docs/state.md.
    #[arg(long, env = "JMM_STATE")]
    state: Option<PathBuf>,
    /// How long a c_init signature stays valid, ms (default 600000, the guide's 10
    /// minutes; overrides the config's signature_ttl_ms).
    #[arg(long, env = "JMM_SIGNATURE_TTL", value_name = "MS")]
    signature_ttl: Option<u64>,
    /// Let this page origin (e.g. http://localhost:5173) call GET /__admin/sign
    /// cross-origin, with CORS; that route only. Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// A weak network in real time: none, 3g, lossy-wifi, flaky, offline-bursts
    /// (switchable at run time: POST /__admin/network). docs/admin-api.md.
    #[arg(long, value_name = "PRESET")]
    network: Option<String>,
    /// On shutdown, write what happened as a scenario file that `check` accepts and `run`
    /// replays (the same as GET /__admin/record). docs/console.md.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SignArgs {
    #[arg(long, env = "JMM_APPKEY")]
    appkey: Option<String>,
    #[arg(long, env = "JMM_SECRET")]
    secret: Option<String>,
    #[arg(long, short, env = "JMM_CONFIG")]
    config: Option<PathBuf>,
    /// Timestamp in ms (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
}

fn load(path: Option<&PathBuf>) -> Result<Option<ConfigFile>, String> {
    path.map(|p| ConfigFile::load(p).map_err(|e| e.to_string()))
        .transpose()
}

fn random_str() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < 32 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(out.len());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(32);
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sign(a) => sign(a),
        Command::Serve(a) => serve(a),
        Command::Check(a) => check(a),
        Command::Run(a) => cli::run::run(a),
        Command::Report(a) => cli::report::report(a),
        Command::Schema(a) => schema(a),
        Command::DiffSnapshots(a) => diff_snapshots(a),
        Command::ExportState(a) => export_state(a),
        Command::Proxy(a) => jmessage_mock::proxy::cli::run(a),
        Command::Mutants(a) => ExitCode::from(jmessage_mock::conformance::mutants::main(a)),
    }
}

fn export_state(a: ExportStateArgs) -> ExitCode {
    let (text, skipped) = match server::persist::export(&a.state) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (what, n) in skipped {
        eprintln!("not exported: {n} {what}");
    }
    match &a.out {
        Some(out) => {
            if let Err(e) = std::fs::write(out, text) {
                eprintln!("error: cannot write {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
        }
        None => print!("{text}"),
    }
    ExitCode::SUCCESS
}

fn diff_snapshots(a: DiffSnapshotsArgs) -> ExitCode {
    use jmessage_mock::conformance::compare;
    let shown = a.dir.display().to_string();
    let text = match compare::report(&a.dir, &shown, &a.clients) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", a.dir.display());
            return ExitCode::from(2);
        }
    };
    match (&a.out, a.check) {
        (None, _) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        (Some(out), true) => match std::fs::read_to_string(out) {
            Ok(old) if old == text => ExitCode::SUCCESS,
            _ => {
                eprintln!(
                    "{} is out of date: run `{} --out {}`",
                    out.display(),
                    compare::command_line(&shown, &a.clients),
                    out.display()
                );
                ExitCode::from(1)
            }
        },
        (Some(out), false) => match std::fs::write(out, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}: {e}", out.display());
                ExitCode::from(2)
            }
        },
    }
}

fn schema(a: SchemaArgs) -> ExitCode {
    use jmessage_mock::scenario::schema::{schema_text, Kind};
    let kind = match a.kind {
        SchemaKind::Scenario => Kind::Scenario,
        SchemaKind::Fixtures => Kind::Fixtures,
    };
    print!("{}", schema_text(kind));
    ExitCode::SUCCESS
}

fn check(a: CheckArgs) -> ExitCode {
    let mut files = Vec::new();
    for p in &a.paths {
        match jmessage_mock::scenario::collect_files(p) {
            Ok(f) if !f.is_empty() => files.extend(f),
            Ok(_) => {
                eprintln!("{}: no .yaml files", p.display());
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
    }
    let mut bad = 0;
    for f in &files {
        let result = if jmessage_mock::scenario::is_fixture_file(f) {
            jmessage_mock::scenario::check_fixture_file(f)
        } else {
            jmessage_mock::scenario::load(f).map(|_| ())
        };
        match result {
            Ok(()) => println!("ok    {}", f.display()),
            Err(errors) => {
                bad += 1;
                println!("FAIL  {}", f.display());
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
    }
    println!("{} files checked, {} with errors", files.len(), bad);
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn sign(a: SignArgs) -> ExitCode {
    let file = match load(a.config.as_ref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = config::backend_config(file.as_ref(), a.appkey.as_deref(), a.secret.as_deref());
    let app = &cfg.apps[0];
    let ts = a
        .timestamp
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        })
        .to_string();
    let rs = random_str();
    let payload = serde_json::json!({
        "appkey": app.appkey,
        "random_str": rs,
        "timestamp": ts,
        "signature": signature(&app.appkey, &ts, &rs, &app.secret),
    });
    println!("{payload}");
    ExitCode::SUCCESS
}

fn serve(a: ServeArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if a.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let file = match load(a.config.as_ref()) {
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
    let mut backend =
        config::backend_config(file.as_ref(), a.appkey.as_deref(), a.secret.as_deref());
    let media_quota_bytes = file
        .as_ref()
        .and_then(|f| f.media_quota_bytes)
        .unwrap_or(jmessage_mock::backend::media::MEDIA_QUOTA_BYTES);
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
                return ExitCode::from(2);
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
                return ExitCode::from(2);
            }
        }
    }
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let stop_signal = shutdown_signal();
        let apps = backend.apps.clone();
        let demo: Vec<String> = backend.users.iter().map(|u| u.username.clone()).collect();
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
        for app in &apps {
            println!("  appkey:      {}", app.appkey);
            println!("  secret:      {}", app.secret);
        }
        if let Some(path) = &a.state {
            let how = if restoring { "restored" } else { "created" };
            println!("  state:       {} ({how})", path.display());
        }
        if !demo.is_empty() && !restoring {
            println!(
                "  users:       {} (demo password: {})",
                demo.join(", "),
                config::DEMO_PASSWORD
            );
        }
        println!(
            "  sign:        jmessage-mock sign --appkey {} --secret {}",
            apps[0].appkey, apps[0].secret
        );
        if admin {
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
        let _ = std::io::Write::flush(&mut std::io::stdout());
        stop_signal.await;
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
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
