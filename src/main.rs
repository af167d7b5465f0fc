//! The `jmessage-mock` command line.

mod cli;

use clap::{Parser, Subcommand};
use jmessage_mock::config::{self, ConfigFile};
use jmessage_mock::protocol::sign::signature;
use jmessage_mock::server;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: a server of small, short-lived JSON trees
/// and frames spent a fifth of its CPU in glibc malloc and free (docs/performance.md).
/// Built with `no_thp`: with transparent huge pages mimalloc's memory grows in 2 MiB
/// steps, and an idle connection cost half as much again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Serve(cli::serve::ServeArgs),
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
        Command::Serve(a) => cli::serve::serve(a),
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
    let app = &cfg.seeds.apps[0];
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
