//! `jmessage-mock report merge`: join the reports of CI shards (`run --partition K/N`).
//!
//! - JUnit files (`*.xml`) are merged into one JUnit file (`-o`), suites of the same
//!   client joined.
//! - Results files (`*.json`, written by `run --results`) are merged and every report a
//!   whole run writes can be produced from them (`--junit`, `--html`, `--report`).

use super::run::{summarize, title, Outputs};
use super::{say, write_file};
use jmessage_mock::conformance::matrix::ClientEntry;
use jmessage_mock::conformance::shard::Results;
use jmessage_mock::conformance::ClientSpec;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(clap::Subcommand)]
pub enum ReportCommand {
    /// Merge shard reports: JUnit files (*.xml) into `-o`, or `run --results` files
    /// (*.json) into --junit/--html/--report (and -o: the merged results). Exit code 1
    /// when a merged results file holds a FAIL, 2 on unreadable or mixed input.
    Merge(MergeArgs),
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The shards' files, all JUnit XML (*.xml) or all results JSON (*.json).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where the merged file of the same kind goes.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// From results: write the JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// From results: write the HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// From results: write the Markdown report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs `jmessage-mock report`.
pub fn report(a: ReportArgs) -> ExitCode {
    let ReportCommand::Merge(m) = a.command;
    match merge(&m) {
        Ok(code) | Err(code) => code,
    }
}

fn merge(m: &MergeArgs) -> Result<ExitCode, ExitCode> {
    let ext = |p: &PathBuf| {
        p.extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_owned()
    };
    let kinds: Vec<String> = m.inputs.iter().map(ext).collect();
    let inputs = read_all(&m.inputs)?;
    if kinds.iter().all(|k| k == "xml") {
        if m.junit.is_some() || m.html.is_some() || m.report.is_some() {
            return usage(
                "JUnit files merge into -o only (--junit/--html/--report need results files)",
            );
        }
        let Some(out) = &m.out else {
            return usage("merging JUnit files needs -o FILE");
        };
        let merged = jmessage_mock::conformance::junit::merge(&inputs).map_err(|e| e.to_string());
        write_file(out, merged)?;
        say(&format!(
            "{} JUnit file(s) merged into {}",
            inputs.len(),
            out.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    if !kinds.iter().all(|k| k == "json") {
        return usage("inputs must be all JUnit (*.xml) or all `run --results` files (*.json)");
    }
    let mut parts = Vec::new();
    for (name, text) in &inputs {
        parts.push(Results::parse(name, text).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })?);
    }
    let all = Results::merge(parts);
    let clients: Vec<ClientEntry> = all
        .clients
        .iter()
        .map(|name| ClientEntry {
            name: name.clone(),
            // Reports read only the name; the command is not kept in results.
            spec: ClientSpec::Builtin,
            named: true,
        })
        .collect();
    let mut files: Vec<&str> = all.cells.iter().map(|c| c.report.file.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    let outputs = Outputs {
        html: m.html.clone(),
        report: m.report.clone(),
        junit: m.junit.clone(),
        results: m.out.clone(),
    };
    outputs.write(&title(files.len(), &clients), &clients, &all.cells)?;
    Ok(summarize(&all.cells))
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<(String, String)>, ExitCode> {
    paths
        .iter()
        .map(|p| {
            let name = p.display().to_string();
            std::fs::read_to_string(p)
                .map(|t| (name.clone(), t))
                .map_err(|e| {
                    eprintln!("error: cannot read {name}: {e}");
                    ExitCode::from(2)
                })
        })
        .collect()
}

fn usage(why: &str) -> Result<ExitCode, ExitCode> {
    eprintln!("error: {why}");
    Err(ExitCode::from(2))
}
