//! `jmessage-mock run`: load scenarios, keep the filtered (and, with `--partition`, the
//! shard's) cases, run them against every client and write the reports.

use super::{say, write_file};
use jmessage_mock::conformance::matrix::{self, Cell, ClientEntry, Exclusions, Options};
use jmessage_mock::conformance::shard::{case_key, Results, RESULTS_FORMAT};
use jmessage_mock::conformance::{ClientSpec, Verdict};
use jmessage_mock::scenario::Scenario;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Scenario files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// A client to drive: `builtin` (the Rust reference client), a driver command
    /// speaking docs/driver-protocol.md (e.g. `node adapters/jmessage-web/driver.js`), or
    /// `NAME=COMMAND`. Repeat it for a matrix (scenario × client). Default: builtin.
    #[arg(long)]
    pub client: Vec<String>,
    /// Only scenarios whose id, name or file contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// List the scenarios that would run (id, name, file; after --filter) and exit.
    #[arg(long)]
    pub list: bool,
    /// Scenarios run at once, each with its own server.
    #[arg(long, short, default_value_t = 2)]
    pub jobs: usize,
    /// Write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Compare each scenario's transcript with its snapshot
    /// (`snapshots/<client>/<name>.snap` beside the scenario); differences fail and
    /// leave `.snap.new` files for `cargo insta review`.
    #[arg(long)]
    pub snapshots: bool,
    /// Write the snapshots instead of comparing (implies --snapshots).
    #[arg(long)]
    pub accept: bool,
    /// Write the snapshots that do not exist yet (and pass), compare the others (implies
    /// --snapshots): a CI run that records on its first run and gates afterwards.
    #[arg(long)]
    pub accept_new: bool,
    /// Keep each client's own snapshots under DIR
    /// (`DIR/<scenario dir relative to PATH>/<client>/<stem>.snap`) instead of beside
    /// the scenarios. `--reference` snapshots are still read beside the scenarios.
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,
    /// Exclusion lists (YAML: `- {id: JMC-..., reason: ...}` for every client, or a map
    /// from client name to such a list): those scenarios are not run, only reported.
    #[arg(long)]
    pub exclude: Option<PathBuf>,
    /// Write a Markdown report (the scenario × client matrix and details) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write an HTML report (summary, colour-coded matrix, diffs of every non-pass) here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// The client whose committed snapshots are the reference, e.g. `jmessage-web-2.6.0`
    /// (the official SDK): a scenario whose checks hold but whose transcript differs from
    /// the reference snapshot is NON-STRICT, with the diff in the reports.
    #[arg(long)]
    pub reference: Option<String>,
    /// Progress display: `auto` draws a bar on stderr when it is a terminal (non-passes
    /// are printed above it) and prints lines otherwise; `lines` always prints one line
    /// per finished scenario.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
    /// Run only shard K of N (`K/N` or `hash:K/N`, 1 <= K <= N): a case belongs to the
    /// shard its id hashes to, the same on every machine (docs/ci.md). After --filter.
    #[arg(long, value_name = "K/N")]
    pub partition: Option<jmessage_mock::conformance::shard::Partition>,
    /// Also write the graded results as JSON here, for `report merge` to join shards.
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// A progress bar when stderr is a terminal, else lines.
    Auto,
    /// One line per finished scenario on stdout.
    Lines,
}

/// Runs `jmessage-mock run`.
pub fn run(a: RunArgs) -> ExitCode {
    match run_inner(&a) {
        Ok(code) | Err(code) => code,
    }
}

fn run_inner(a: &RunArgs) -> Result<ExitCode, ExitCode> {
    let clients = clients(&a.client)?;
    let mut scenarios = load(&a.paths)?;
    if let Some(f) = &a.filter {
        scenarios.retain(|s| {
            s.name.contains(f.as_str())
                || s.file.contains(f.as_str())
                || s.id.as_deref().is_some_and(|i| i.contains(f.as_str()))
        });
    }
    if let Some(p) = &a.partition {
        scenarios.retain(|s| p.includes(case_key(s.id.as_deref(), &s.file)));
    }
    if a.list {
        for s in &scenarios {
            let id = s.id.as_deref().unwrap_or("-");
            say(&format!("{id:<14} {}  ({})", s.name, s.file));
        }
        say(&format!("{} scenario(s)", scenarios.len()));
        return Ok(ExitCode::SUCCESS);
    }
    let exclusions = match &a.exclude {
        Some(p) => Exclusions::load(p).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })?,
        None => Exclusions::default(),
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })?;
    let opts = Options {
        jobs: a.jobs,
        snapshots: a.snapshots,
        accept: a.accept,
        reference: a.reference.clone(),
        layout: jmessage_mock::conformance::snapshot::Layout {
            dir: a.snapshot_dir.clone(),
            roots: a.paths.clone(),
        },
        accept_new: a.accept_new,
    };
    let bar = progress_bar(a.progress, scenarios.len() * clients.len());
    let several = clients.len() > 1;
    let cells = runtime.block_on(matrix::run_all(
        &scenarios,
        &clients,
        &exclusions,
        &opts,
        |cell, done, total| show(cell, done, total, several, bar.as_ref()),
    ));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let outputs = Outputs {
        html: a.html.clone(),
        report: a.report.clone(),
        junit: a.junit.clone(),
        results: a.results.clone(),
    };
    outputs.write(&title(scenarios.len(), &clients), &clients, &cells)?;
    Ok(summarize(&cells))
}

/// The clients of `--client` (default: builtin).
pub fn clients(specs: &[String]) -> Result<Vec<ClientEntry>, ExitCode> {
    let mut clients = Vec::new();
    for c in specs {
        let Some(e) = ClientEntry::parse(c) else {
            eprintln!("error: --client needs `builtin`, a driver command, or NAME=COMMAND");
            return Err(ExitCode::from(2));
        };
        clients.push(e);
    }
    if clients.is_empty() {
        clients.push(ClientEntry {
            name: "builtin".into(),
            spec: ClientSpec::Builtin,
            named: false,
        });
    }
    Ok(clients)
}

/// Every scenario below the paths (fixtures skipped); all errors are printed first.
fn load(paths: &[PathBuf]) -> Result<Vec<Scenario>, ExitCode> {
    let mut scenarios = Vec::new();
    let mut invalid = false;
    for p in paths {
        let files = jmessage_mock::scenario::collect_files(p).map_err(|e| {
            eprintln!("{}: {e}", p.display());
            ExitCode::from(2)
        })?;
        for f in files
            .iter()
            .filter(|f| !jmessage_mock::scenario::is_fixture_file(f))
        {
            match jmessage_mock::scenario::load(f) {
                Ok(sc) => scenarios.push(sc),
                Err(errors) => {
                    invalid = true;
                    for e in errors {
                        eprintln!("{e}");
                    }
                }
            }
        }
    }
    if invalid {
        return Err(ExitCode::from(2));
    }
    Ok(scenarios)
}

fn progress_bar(progress: Progress, total: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    let wanted = match progress {
        Progress::Lines => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    wanted.then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b
    })
}

/// One finished case: a line (non-passes above the bar when there is one).
fn show(
    cell: &Cell,
    done: usize,
    total: usize,
    several: bool,
    bar: Option<&indicatif::ProgressBar>,
) {
    let who = if several {
        format!("[{}] ", cell.client)
    } else {
        String::new()
    };
    let ms = cell.report.elapsed.as_millis();
    let line = match (cell.verdict, cell.report.failure()) {
        (Verdict::Pass, _) => format!(
            "PASS       [{done}/{total}] {who}{} ({ms} ms)",
            cell.report.name
        ),
        (v, why) => {
            let why = why.unwrap_or_default();
            // A diff can be long: the reports carry it whole.
            let short: String = why.lines().take(12).collect::<Vec<_>>().join("\n      ");
            format!(
                "{:<11}[{done}/{total}] {who}{} ({ms} ms)\n      {short}",
                v.label(),
                cell.report.name,
            )
        }
    };
    match bar {
        Some(b) => {
            if cell.verdict != Verdict::Pass {
                b.println(line);
            }
            b.set_message(format!("{who}{}", cell.report.name));
            b.set_position(done as u64);
        }
        None => say(&line),
    }
}

/// The HTML report's title.
pub fn title(scenarios: usize, clients: &[ClientEntry]) -> String {
    let names: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
    format!(
        "jmessage-mock conformance: {scenarios} scenario(s) × {}",
        names.join(", ")
    )
}

/// The report files a run (or a merge) writes.
pub struct Outputs {
    pub html: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub results: Option<PathBuf>,
}

impl Outputs {
    /// Writes every report asked for; exit code 2 when one cannot be written.
    pub fn write(
        &self,
        title: &str,
        clients: &[ClientEntry],
        cells: &[Cell],
    ) -> Result<(), ExitCode> {
        if let Some(path) = &self.html {
            let html = jmessage_mock::conformance::html::render(title, clients, cells);
            write_file(path, Ok(html))?;
        }
        if let Some(path) = &self.report {
            write_file(path, Ok(matrix::markdown(clients, cells)))?;
        }
        if let Some(path) = &self.junit {
            let pairs: Vec<_> = cells.iter().map(|c| (&c.report, c.verdict)).collect();
            let xml = jmessage_mock::conformance::junit(&pairs).map_err(|e| e.to_string());
            write_file(path, xml)?;
        }
        if let Some(path) = &self.results {
            let results = Results {
                format: RESULTS_FORMAT,
                clients: clients.iter().map(|c| c.name.clone()).collect(),
                cells: cells.to_vec(),
            };
            let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string());
            write_file(path, json)?;
        }
        Ok(())
    }
}

/// Prints the verdict counts; exit code 1 when a case failed.
pub fn summarize(cells: &[Cell]) -> ExitCode {
    let count = |v: Verdict| cells.iter().filter(|c| c.verdict == v).count();
    let failed = cells.iter().filter(|c| c.verdict.fails()).count();
    let passed = count(Verdict::Pass);
    let other: Vec<String> = [
        Verdict::NonStrict,
        Verdict::Informational,
        Verdict::Unimplemented,
        Verdict::Excluded,
    ]
    .into_iter()
    .filter(|v| count(*v) > 0)
    .map(|v| format!("{} {}", count(v), v.label()))
    .collect();
    if !other.is_empty() {
        println!("({})", other.join(", "));
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
