//! Compares the committed snapshots of several clients (e.g. the official SDK builds
//! 2.4.0, 2.5.0 and 2.6.0) case by case and renders the differences as Markdown: per
//! case whether consecutive clients' transcripts are identical, and the unified diff of
//! those that differ. Differences between SDK versions are shown, not hidden
//! (`jmessage-mock diff-snapshots`; scenarios/conformance/VERSIONS.md is its output).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One case: its scenario directory (relative to the root) and snapshot stem.
type CaseKey = (String, String);

/// The transcripts of one case, per client (`None`: no snapshot).
#[derive(Debug, Default)]
struct Case {
    title: String,
    bodies: Vec<Option<String>>,
}

/// The SDK names its own version in every `login` request (`"version":"2.4.0"`); that one
/// field would make every case of two builds differ. It is replaced by `<sdk version>`
/// for the comparison, and the report lists the versions each client sent instead, so the
/// difference is shown once rather than in every diff.
const VERSION_KEY: &str = "\"version\":\"";

fn mask_version(body: &str, seen: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        let start = line
            .starts_with("in request 42[\"login\"")
            .then(|| line.find(VERSION_KEY))
            .flatten();
        match start {
            Some(i) => {
                let value_at = i + VERSION_KEY.len();
                let len = line[value_at..].find('"').unwrap_or(0);
                let value = &line[value_at..value_at + len];
                if !seen.iter().any(|v| v == value) {
                    seen.push(value.to_owned());
                }
                out.push_str(&line[..value_at]);
                out.push_str("<sdk version>");
                out.push_str(&line[value_at + len..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Every `snapshots/` directory below `root`.
fn snapshot_dirs(root: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for dir in entries {
        if dir.file_name().is_some_and(|n| n == "snapshots") {
            out.push(dir);
        } else {
            snapshot_dirs(&dir, out)?;
        }
    }
    Ok(())
}

/// The cases, and per client the SDK versions its `login` requests named.
type Collected = (BTreeMap<CaseKey, Case>, Vec<Vec<String>>);

fn collect(root: &Path, clients: &[String]) -> std::io::Result<Collected> {
    let mut dirs = Vec::new();
    snapshot_dirs(root, &mut dirs)?;
    let mut cases: BTreeMap<CaseKey, Case> = BTreeMap::new();
    let mut versions = vec![Vec::new(); clients.len()];
    for dir in dirs {
        let scenario_dir = dir
            .parent()
            .and_then(|p| p.strip_prefix(root).ok())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        for (i, client) in clients.iter().enumerate() {
            let Ok(read) = std::fs::read_dir(dir.join(client)) else {
                continue;
            };
            for entry in read.filter_map(Result::ok) {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "snap") {
                    continue;
                }
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let text = std::fs::read_to_string(&path)?;
                let (header, body) = super::snapshot::split(&text);
                let case = cases.entry((scenario_dir.clone(), stem)).or_default();
                case.bodies.resize(clients.len(), None);
                if case.title.is_empty() {
                    case.title = super::snapshot::expression(header).to_owned();
                }
                case.bodies[i] = Some(mask_version(body, &mut versions[i]));
            }
        }
    }
    for v in &mut versions {
        v.sort();
    }
    Ok((cases, versions))
}

/// The command that regenerates a report (printed in its header).
pub fn command_line(root: &str, clients: &[String]) -> String {
    format!("jmessage-mock diff-snapshots {root} {}", clients.join(" "))
}

/// The Markdown report comparing `clients`' snapshots below `root`, consecutive clients
/// pairwise (a → b, b → c, ...). `shown_root` is how the header names `root`.
pub fn report(root: &Path, shown_root: &str, clients: &[String]) -> std::io::Result<String> {
    if clients.len() < 2 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "comparing needs at least two clients",
        ));
    }
    let (cases, versions) = collect(root, clients)?;
    let pairs: Vec<(usize, usize)> = (1..clients.len()).map(|i| (i - 1, i)).collect();
    let mut out = String::new();
    out.push_str("# Transcripts of the official SDK builds compared\n\n");
    out.push_str(&format!(
        "Generated by `{}` from the committed snapshots; do not edit \
         (a test fails when it is out of date). A transcript is what the client saw and what \
         crossed the wire, with volatile values (rids, ids, times, signatures, ports) \
         redacted; see scenarios/conformance/README.md.\n\n",
        command_line(shown_root, clients)
    ));
    let mut counts = vec![(0usize, 0usize, 0usize); pairs.len()];
    let mut table = String::new();
    table.push_str("| case |");
    for (a, b) in &pairs {
        table.push_str(&format!(" {} → {} |", clients[*a], clients[*b]));
    }
    table.push_str("\n|---|");
    for _ in &pairs {
        table.push_str("---|");
    }
    table.push('\n');
    let mut diffs = String::new();
    for ((dir, stem), case) in &cases {
        let name = format!("{dir}/{stem}");
        table.push_str(&format!("| `{name}` |"));
        for (k, (a, b)) in pairs.iter().enumerate() {
            let cell = match (&case.bodies[*a], &case.bodies[*b]) {
                (Some(x), Some(y)) if x == y => {
                    counts[k].0 += 1;
                    "identical".to_owned()
                }
                (Some(x), Some(y)) => {
                    counts[k].1 += 1;
                    let diff = super::snapshot::unified_diff(x, y, &clients[*a], &clients[*b]);
                    diffs.push_str(&format!(
                        "### `{name}`: {} → {}\n\n{}\n\n```diff\n{diff}```\n\n",
                        clients[*a], clients[*b], case.title
                    ));
                    "**differs**".to_owned()
                }
                _ => {
                    counts[k].2 += 1;
                    "missing snapshot".to_owned()
                }
            };
            table.push_str(&format!(" {cell} |"));
        }
        table.push('\n');
    }
    out.push_str("## Summary\n\n");
    for (k, (a, b)) in pairs.iter().enumerate() {
        let (same, differ, missing) = counts[k];
        out.push_str(&format!(
            "- {} → {}: {same} identical, {differ} differ{}\n",
            clients[*a],
            clients[*b],
            if missing > 0 {
                format!(", {missing} without a snapshot for both")
            } else {
                String::new()
            }
        ));
    }
    out.push_str(
        "\nThe `version` each build sends in `login` is compared here, not in every case (the \
         transcripts below show it as `<sdk version>`):\n\n",
    );
    for (client, v) in clients.iter().zip(&versions) {
        let list: Vec<String> = v.iter().map(|x| format!("`{x}`")).collect();
        out.push_str(&format!(
            "- {client}: {}\n",
            if list.is_empty() {
                "no login".to_owned()
            } else {
                list.join(", ")
            }
        ));
    }
    out.push_str("\n## Cases\n\n");
    out.push_str(&table);
    out.push_str("\n## Differences\n\n");
    if diffs.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str(&diffs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(dir: &Path, client: &str, stem: &str, body: &str) {
        let d = dir.join("group/snapshots").join(client);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(
            d.join(format!("{stem}.snap")),
            format!("---\nsource: x.yaml\nexpression: \"JMC-1 {stem}\"\n---\n{body}"),
        )
        .expect("write");
    }

    #[test]
    fn identical_differing_and_missing_cases() {
        let dir = std::env::temp_dir().join(format!("jmm-compare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Only the SDK's own version in `login` differs: compared once, not per case.
        let login = |v: &str| {
            format!("a\nin request 42[\"login\",{{\"username\":\"u\",\"version\":\"{v}\",\"rid\":1}}]\nb\n")
        };
        snap(&dir, "v1", "same", &login("2.4.0"));
        snap(&dir, "v2", "same", &login("2.5.0"));
        snap(&dir, "v1", "changed", "a\nold\n");
        snap(&dir, "v2", "changed", "a\nnew\n");
        snap(&dir, "v1", "only-one", "a\n");
        let clients = vec!["v1".to_owned(), "v2".to_owned()];
        let md = report(&dir, "ROOT", &clients).expect("report");
        assert!(
            md.contains("jmessage-mock diff-snapshots ROOT v1 v2"),
            "{md}"
        );
        assert!(
            md.contains("v1 → v2: 1 identical, 1 differ, 1 without a snapshot for both"),
            "{md}"
        );
        assert!(md.contains("| `group/same` | identical |"), "{md}");
        assert!(md.contains("| `group/changed` | **differs** |"), "{md}");
        assert!(
            md.contains("| `group/only-one` | missing snapshot |"),
            "{md}"
        );
        assert!(md.contains("-old\n+new\n"), "{md}");
        assert!(md.contains("- v1: `2.4.0`\n- v2: `2.5.0`\n"), "{md}");
        assert!(md.contains("JMC-1 changed"), "{md}");
        assert!(report(&dir, "ROOT", &clients[..1]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
