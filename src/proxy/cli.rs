//! The `proxy` subcommand's options and its entry point (called from `main`).

use super::{ProxyConfig, ProxyError};
use crate::server::AdminAccess;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The proxy's default port (next to `serve`'s 8787).
pub const DEFAULT_PROXY_PORT: u16 = 8788;

#[derive(clap::Args, Debug)]
pub struct ProxyArgs {
    /// The server to forward to: ws[s]://host[:port][/path] or http[s]://host[:port][/path]
    /// (TLS certificates are verified against the Mozilla roots; see docs/proxy.md).
    #[arg(long, env = "JMM_UPSTREAM")]
    pub upstream: String,
    /// Apply this scenario's `faults:` (its fixtures and steps are not used).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// On shutdown, write what went through as a scenario file that `check` accepts and
    /// `run` replays against the mock (docs/proxy.md).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Address to bind (an IP; loopback by default).
    #[arg(long)]
    pub host: Option<IpAddr>,
    /// Port to bind; 0 picks a free one.
    #[arg(long, short, default_value_t = DEFAULT_PROXY_PORT)]
    pub port: u16,
    /// Engine.IO ping interval in ms offered to clients.
    #[arg(long, default_value_t = 25_000)]
    pub ping_interval: u64,
    /// Engine.IO ping timeout in ms offered to clients.
    #[arg(long, default_value_t = 60_000)]
    pub ping_timeout: u64,
    /// Do not serve /__admin/ (health, faults, journal) nor the console.
    #[arg(long)]
    pub no_admin: bool,
    /// Require `Authorization: Bearer TOKEN` on every admin request (required off
    /// loopback).
    #[arg(long, env = "JMM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Builds the configuration from the options; errors are printed as they are.
fn config(a: &ProxyArgs, host: IpAddr) -> Result<ProxyConfig, String> {
    let token = a.admin_token.clone().filter(|t| !t.is_empty());
    if !a.no_admin && !host.is_loopback() && token.is_none() {
        return Err(format!(
            "the admin API on the non-loopback address {host} needs a token: pass \
             --admin-token TOKEN, or --no-admin"
        ));
    }
    super::Upstream::parse(&a.upstream).map_err(|e| e.to_string())?;
    let mut c = ProxyConfig::new(a.upstream.clone());
    c.transport.ping_interval = Duration::from_millis(a.ping_interval);
    c.transport.ping_timeout = Duration::from_millis(a.ping_timeout);
    c.admin = !a.no_admin;
    c.record = a.record.clone();
    c.admin_access = AdminAccess {
        token,
        ..AdminAccess::default()
    };
    if let Some(path) = &a.scenario {
        let sc = crate::scenario::load(path).map_err(|errors| {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            list.join("\n")
        })?;
        c.faults = sc.faults();
        eprintln!("scenario: {} ({} fault rules)", sc.name, c.faults.len());
    }
    Ok(c)
}

/// `jmessage-mock proxy`: exit 2 on bad options, 1 when it cannot start.
pub fn run(a: ProxyArgs) -> ExitCode {
    init_logs(a.log_json);
    let host = a.host.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let config = match config(&a, host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Deliberately repeated (as in the binary's `serve`): the binary and the library
    // each report a runtime that cannot start in their own words and exit code.
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let admin = config.admin;
        let hint = match config.admin_access.token {
            Some(_) => "#token=<admin token>",
            None => "",
        };
        let proxy = match super::start(config, SocketAddr::new(host, a.port)).await {
            Ok(p) => p,
            Err(e @ ProxyError::Upstream(_)) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {host}:{}: {e}", a.port);
                return ExitCode::FAILURE;
            }
        };
        println!(
            "jmessage-mock {} proxy on {} -> {}",
            env!("CARGO_PKG_VERSION"),
            proxy.http_url(),
            a.upstream
        );
        println!("  address:     ws://{}", proxy.addr);
        println!("  upload_file: {}/resource", proxy.http_url());
        if let Some(path) = &a.record {
            println!("  record:      {} (written on shutdown)", path.display());
        }
        if admin {
            println!("  admin:       {}/__admin/journal", proxy.http_url());
            println!("  console:     {}/__console/{hint}", proxy.http_url());
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        stop_signal().await;
        tracing::info!("shutting down");
        match proxy.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
