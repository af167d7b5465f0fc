//! Runs scenarios against one or more clients (a matrix), with exclusion lists, snapshot
//! checks, graded verdicts and reports. The `run` command is a thin shell over this.

use super::{run_with, snapshot, Check, ClientSpec, Exclusion, Report, Verdict};
use crate::scenario::Scenario;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A client column: a display name and how to drive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEntry {
    pub name: String,
    pub spec: ClientSpec,
    /// Named by the user (`NAME=COMMAND`): snapshots go to `snapshots/NAME/`; otherwise
    /// to the driver's own name and version.
    pub named: bool,
}

impl ClientEntry {
    /// `builtin`, `NAME=COMMAND`, or a bare driver command (named after itself).
    pub fn parse(s: &str) -> Option<Self> {
        let (name, command, named) = match s.split_once('=') {
            Some((n, c)) if !n.trim().is_empty() && !n.contains(' ') => {
                (n.trim().to_owned(), c, true)
            }
            _ => (s.trim().to_owned(), s, false),
        };
        Some(Self {
            name,
            spec: ClientSpec::parse(command)?,
            named,
        })
    }
}

/// Exclusion lists: one for every client, or one per client name.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum Exclusions {
    All(Vec<Exclusion>),
    PerClient(HashMap<String, Vec<Exclusion>>),
}

impl Default for Exclusions {
    fn default() -> Self {
        Exclusions::All(Vec::new())
    }
}

impl Exclusions {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Why `sc` is excluded for `client`, if it is (matched by id or file stem).
    pub fn reason(&self, client: &str, sc: &Scenario) -> Option<String> {
        let list: &[Exclusion] = match self {
            Exclusions::All(l) => l,
            Exclusions::PerClient(m) => m.get(client).map(Vec::as_slice).unwrap_or(&[]),
        };
        let stem = Path::new(&sc.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        list.iter()
            .find(|x| sc.id.as_deref() == Some(x.id.as_str()) || x.id == stem)
            .map(|x| x.reason.clone())
    }
}

/// Options of a matrix run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub jobs: usize,
    pub snapshots: bool,
    pub accept: bool,
    /// The client whose snapshots are the reference (e.g. `jmessage-web-2.6.0`): a
    /// transcript that differs from its snapshot of the same scenario is NON-STRICT.
    pub reference: Option<String>,
    /// Where own snapshots live (`--snapshot-dir`) and whether missing ones are written
    /// (`--accept-new`).
    pub layout: snapshot::Layout,
    pub accept_new: bool,
}

/// One cell: a scenario's report and verdict for one client.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    pub client: String,
    pub report: Report,
    pub verdict: Verdict,
}

fn snapshot_check(report: &mut Report, opts: &Options) {
    let write = match (opts.accept, opts.accept_new) {
        (true, _) => snapshot::Write::All,
        (false, true) => snapshot::Write::New,
        (false, false) => snapshot::Write::Compare,
    };
    let (ok, detail) = match snapshot::check_in(report, &opts.layout, write) {
        Ok(snapshot::Comparison::Matched) => (true, String::new()),
        Ok(snapshot::Comparison::Accepted(p)) => (true, format!("wrote {}", p.display())),
        Ok(snapshot::Comparison::New(p)) => (
            false,
            format!(
                "no snapshot yet; wrote {} (review, then run with --accept)",
                p.display()
            ),
        ),
        Ok(snapshot::Comparison::Changed { path, diff }) => {
            (false, format!("differs from {}:\n{diff}", path.display()))
        }
        Err(e) => (false, format!("snapshot: {e}")),
    };
    report.checks.push(Check::new("snapshot", ok, detail));
}

/// Compares the transcript with the reference client's snapshot: a difference is a
/// tolerated (non-strict) failure carrying the diff; a missing reference snapshot is noted.
fn reference_check(report: &mut Report, reference: &str) {
    if snapshot::dir_name(&report.client) == snapshot::dir_name(reference) {
        return;
    }
    let what = format!("same transcript as the reference ({reference})");
    let check = match snapshot::compare_reference(report, reference) {
        Ok(snapshot::Reference::Same) => Check::tolerated(what, true, ""),
        Ok(snapshot::Reference::Missing(p)) => Check::tolerated(
            what,
            true,
            format!("no reference snapshot at {}", p.display()),
        ),
        Ok(snapshot::Reference::Differs { path, diff }) => Check::tolerated(
            what,
            false,
            format!("differs from {}:\n{diff}", path.display()),
        ),
        Err(e) => Check::tolerated(what, false, format!("reference snapshot: {e}")),
    };
    report.checks.push(check);
}

fn excluded(client: &str, sc: &Scenario, reason: String) -> Cell {
    Cell {
        client: client.to_owned(),
        report: Report {
            name: sc.name.clone(),
            id: sc.id.clone(),
            file: sc.file.clone(),
            checks: vec![Check::new("excluded", false, reason)],
            elapsed: std::time::Duration::ZERO,
            error: None,
            client: client.to_owned(),
            transcript: String::new(),
            identity: Default::default(),
        },
        verdict: Verdict::Excluded,
    }
}

/// A cell to run: its slot in the result and what it runs.
struct Job {
    slot: usize,
    sc: Scenario,
    client: ClientEntry,
}

/// Runs every scenario for every client, `jobs` at a time (each with its own server),
/// the longest cases first ([`schedule`](super::schedule)); `progress` is called as each
/// cell finishes, with (cell, done, total). Cells come back in (client, scenario) order.
pub async fn run_all(
    scenarios: &[Scenario],
    clients: &[ClientEntry],
    exclusions: &Exclusions,
    opts: &Options,
    mut progress: impl FnMut(&Cell, usize, usize),
) -> Vec<Cell> {
    let total = scenarios.len() * clients.len();
    let mut cells: Vec<Option<Cell>> = vec![None; total];
    let mut done = 0;
    let mut jobs = Vec::new();
    for (ci, client) in clients.iter().enumerate() {
        for (si, sc) in scenarios.iter().enumerate() {
            let slot = ci * scenarios.len() + si;
            if let Some(reason) = exclusions.reason(&client.name, sc) {
                let cell = excluded(&client.name, sc, reason);
                done += 1;
                progress(&cell, done, total);
                cells[slot] = Some(cell);
                continue;
            }
            jobs.push(Job {
                slot,
                sc: sc.clone(),
                client: client.clone(),
            });
        }
    }
    let costs: Vec<u64> = jobs
        .iter()
        .map(|j| super::schedule::estimated_ms(&j.sc))
        .collect();
    let mut jobs: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
    let queue: std::collections::VecDeque<Job> = super::schedule::longest_first(&costs)
        .into_iter()
        .filter_map(|i| jobs[i].take())
        .collect();
    let mut finished = start_workers(queue, opts);
    while let Some((slot, cell)) = finished.recv().await {
        done += 1;
        progress(&cell, done, total);
        cells[slot] = Some(cell);
    }
    cells.into_iter().flatten().collect()
}

/// `opts.jobs` workers taking cells from `queue` in order; each finished cell comes out
/// of the receiver (the channel closes when the queue is done). A case that panics is
/// left out, as its own task ends; the worker goes on with the next.
fn start_workers(
    queue: std::collections::VecDeque<Job>,
    opts: &Options,
) -> tokio::sync::mpsc::UnboundedReceiver<(usize, Cell)> {
    let queue = Arc::new(std::sync::Mutex::new(queue));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..opts.jobs.max(1) {
        let (queue, tx, opts) = (queue.clone(), tx.clone(), opts.clone());
        tokio::spawn(async move {
            loop {
                let Some(job) = crate::lock::lock(&queue).pop_front() else {
                    break;
                };
                let opts = opts.clone();
                let slot = job.slot;
                if let Ok(cell) = tokio::spawn(run_cell(job, opts)).await {
                    let _ = tx.send((slot, cell));
                }
            }
        });
    }
    rx
}

/// Runs one cell and grades it (snapshot and reference checks included).
async fn run_cell(job: Job, opts: Options) -> Cell {
    let Job { sc, client, .. } = job;
    let mut report = run_with(&sc, &client.spec).await;
    if client.named {
        report.client = client.name.clone();
    }
    if (opts.snapshots || opts.accept || opts.accept_new) && report.error.is_none() {
        snapshot_check(&mut report, &opts);
    }
    if let (Some(r), None) = (&opts.reference, &report.error) {
        reference_check(&mut report, r);
    }
    let verdict = report.verdict(sc.informational);
    Cell {
        client: client.name.clone(),
        report,
        verdict,
    }
}

/// A Markdown matrix: scenarios × clients, then the details of every non-pass.
pub fn markdown(clients: &[ClientEntry], cells: &[Cell]) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut grid: HashMap<(String, String), &Cell> = HashMap::new();
    for c in cells {
        let key = (c.report.file.clone(), c.report.name.clone());
        if !rows.contains(&key) {
            rows.push(key.clone());
        }
        grid.insert((c.report.file.clone(), c.client.clone()), c);
    }
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from("# Conformance matrix\n\n| id | scenario |");
    for c in clients {
        out.push_str(&format!(" {} |", esc(&c.name)));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(clients.len()));
    out.push('\n');
    for (file, name) in &rows {
        let id = cells
            .iter()
            .find(|c| &c.report.file == file)
            .and_then(|c| c.report.id.clone())
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!("| {} | {} |", esc(&id), esc(name)));
        for c in clients {
            let v = grid
                .get(&(file.clone(), c.name.clone()))
                .map(|x| x.verdict.label())
                .unwrap_or("-");
            out.push_str(&format!(" {v} |"));
        }
        out.push('\n');
    }
    out.push_str("\n## Summary\n\n| client | pass | non-strict | fail | unimplemented | informational | excluded |\n|---|---|---|---|---|---|---|\n");
    for c in clients {
        let count = |v: Verdict| {
            cells
                .iter()
                .filter(|x| x.client == c.name && x.verdict == v)
                .count()
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            esc(&c.name),
            count(Verdict::Pass),
            count(Verdict::NonStrict),
            count(Verdict::Fail),
            count(Verdict::Unimplemented),
            count(Verdict::Informational),
            count(Verdict::Excluded)
        ));
    }
    let details: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .collect();
    if !details.is_empty() {
        out.push_str("\n## Details\n\n");
        for c in details {
            let why: String = c
                .report
                .failure()
                .unwrap_or_default()
                .chars()
                .take(2000)
                .collect();
            out.push_str(&format!(
                "### {} — {} ({})\n\n```\n{}\n```\n\n",
                c.report.id.as_deref().unwrap_or("-"),
                c.client,
                c.verdict.label(),
                why
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_entries_parse() {
        assert_eq!(
            ClientEntry::parse("builtin"),
            Some(ClientEntry {
                name: "builtin".into(),
                spec: ClientSpec::Builtin,
                named: false,
            })
        );
        let e = ClientEntry::parse("sdk-2.6=node driver.js --sdk /x/2.6.js").expect("parses");
        assert_eq!(e.name, "sdk-2.6");
        assert!(e.named);
        assert_eq!(
            e.spec,
            ClientSpec::Command(vec![
                "node".into(),
                "driver.js".into(),
                "--sdk".into(),
                "/x/2.6.js".into()
            ])
        );
        let e = ClientEntry::parse("node driver.js").expect("parses");
        assert_eq!(e.name, "node driver.js");
        assert_eq!(ClientEntry::parse("   "), None);
    }

    #[test]
    fn exclusions_for_all_or_per_client() {
        let all: Exclusions = serde_saphyr::from_str("- {id: JMC-1, reason: r}\n").expect("list");
        let per: Exclusions =
            serde_saphyr::from_str("sdk-2.4:\n  - {id: case, reason: no rooms in 2.4.0}\n")
                .expect("map");
        let sc = crate::scenario::parse("id: JMC-1\nname: x\n", "dir/case.yaml").expect("valid");
        assert_eq!(all.reason("anything", &sc).as_deref(), Some("r"));
        assert_eq!(
            per.reason("sdk-2.4", &sc).as_deref(),
            Some("no rooms in 2.4.0")
        );
        assert_eq!(per.reason("builtin", &sc), None);
    }
}
