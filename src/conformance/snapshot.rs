//! Transcript snapshots in insta's `.snap` format (reviewable with `cargo insta review`):
//! `<scenario dir>/snapshots/<client>/<scenario file stem>.snap`. A mismatch or a missing
//! snapshot writes `.snap.new` beside it and fails, unless `--accept` writes the `.snap`.

use super::Report;
use std::path::{Path, PathBuf};

/// What comparing a transcript with its snapshot found.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    Matched,
    /// `--accept` wrote (or rewrote) the snapshot.
    Accepted(PathBuf),
    /// No snapshot yet; the transcript was written to `.snap.new`.
    New(PathBuf),
    /// The transcript differs; `.snap.new` holds it and `diff` shows how.
    Changed {
        path: PathBuf,
        diff: String,
    },
}

/// The snapshot file of a report (beside its scenario).
pub fn path_for(report: &Report) -> PathBuf {
    path_of(&report.file, &report.client)
}

/// Where a run keeps each client's own snapshots: beside the scenarios (the default), or
/// under one directory (`run --snapshot-dir DIR`), so an SDK repository keeps its
/// snapshots in its own tree: `<DIR>/<scenario dir relative to the run's path>/<client>/<stem>.snap`.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// `--snapshot-dir`.
    pub dir: Option<PathBuf>,
    /// The paths given to `run`, which scenario files are made relative to.
    pub roots: Vec<PathBuf>,
}

impl Layout {
    /// The snapshot file of `client` for the scenario file `file`.
    pub fn path(&self, file: &str, client: &str) -> PathBuf {
        let Some(dir) = &self.dir else {
            return path_of(file, client);
        };
        let file = Path::new(file);
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        // A file below a directory root keeps its sub-directories; a file given itself
        // (or outside every root) goes to the top.
        let sub = self
            .roots
            .iter()
            .filter(|r| r.as_path() != file)
            .find_map(|r| file.strip_prefix(r).ok())
            .and_then(Path::parent)
            .unwrap_or(Path::new(""));
        dir.join(sub)
            .join(dir_name(client))
            .join(format!("{stem}.snap"))
    }
}

/// The snapshot file of `client` for the scenario file `file`: client names become
/// directory names (anything but ASCII letters, digits, `.` and `-` turns into `_`).
pub fn path_of(file: &str, client: &str) -> PathBuf {
    let file = Path::new(file);
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    file.parent()
        .unwrap_or(Path::new("."))
        .join("snapshots")
        .join(dir_name(client))
        .join(format!("{stem}.snap"))
}

/// A client name as a snapshot directory name.
pub fn dir_name(client: &str) -> String {
    client
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How a transcript compares with the reference client's snapshot of the same scenario.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    Same,
    /// The reference client has no snapshot of this scenario.
    Missing(PathBuf),
    Differs {
        path: PathBuf,
        diff: String,
    },
}

/// Compares a report's transcript with the snapshot `reference` (a client name, e.g.
/// `jmessage-web-2.6.0`) has for the same scenario. Nothing is written.
pub fn compare_reference(report: &Report, reference: &str) -> std::io::Result<Reference> {
    let path = path_of(&report.file, reference);
    match std::fs::read_to_string(&path) {
        Ok(old) if body(&old) == report.transcript => Ok(Reference::Same),
        Ok(old) => {
            let diff = unified_diff(
                body(&old),
                &report.transcript,
                &format!("reference {reference}"),
                &report.client,
            );
            Ok(Reference::Differs { path, diff })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Reference::Missing(path)),
        Err(e) => Err(e),
    }
}

fn render(report: &Report) -> String {
    let expr = format!("{} {}", report.id.as_deref().unwrap_or("-"), report.name).replace('"', "'");
    format!(
        "---\nsource: {}\nexpression: \"{expr}\"\n---\n{}",
        report.file, report.transcript
    )
}

/// A snapshot file's header (between the two `---` lines) and its transcript (after
/// them); text without a header is all transcript.
pub(crate) fn split(text: &str) -> (&str, &str) {
    text.strip_prefix("---\n")
        .and_then(|rest| rest.find("\n---\n").map(|i| (&rest[..i], &rest[i + 5..])))
        .unwrap_or(("", text))
}

/// The transcript part of a snapshot file (after the header).
fn body(text: &str) -> &str {
    split(text).1
}

/// The `expression:` of a snapshot header (the case's id and name), unquoted.
pub(crate) fn expression(header: &str) -> &str {
    header
        .lines()
        .find_map(|l| l.strip_prefix("expression: "))
        .map(|t| t.trim_matches('"'))
        .unwrap_or_default()
}

/// A unified diff from `old` to `new` (2 lines of context) under the given headers.
pub(crate) fn unified_diff(old: &str, new: &str, from: &str, to: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(from, to)
        .to_string()
}

/// What a snapshot check writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Write {
    /// Compare; a missing or changed snapshot fails and leaves `.snap.new`.
    #[default]
    Compare,
    /// Write a missing snapshot (and pass), compare existing ones (`--accept-new`: the
    /// first CI run records, the next ones gate).
    New,
    /// Write every snapshot (`--accept`).
    All,
}

/// Compares (or with `accept`, writes) the snapshot of a report, beside its scenario.
pub fn check(report: &Report, accept: bool) -> std::io::Result<Comparison> {
    let write = if accept { Write::All } else { Write::Compare };
    check_in(report, &Layout::default(), write)
}

/// Compares or writes the snapshot of a report in `layout`.
pub fn check_in(report: &Report, layout: &Layout, write: Write) -> std::io::Result<Comparison> {
    let path = layout.path(&report.file, &report.client);
    let accept = write == Write::All || (write == Write::New && !path.exists());
    let new_path = path.with_extension("snap.new");
    let rendered = render(report);
    if accept {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, &rendered)?;
        let _ = std::fs::remove_file(&new_path);
        return Ok(Comparison::Accepted(path));
    }
    match std::fs::read_to_string(&path) {
        Ok(old) if body(&old) == report.transcript => {
            let _ = std::fs::remove_file(&new_path);
            Ok(Comparison::Matched)
        }
        Ok(old) => {
            std::fs::write(&new_path, &rendered)?;
            let diff = unified_diff(body(&old), &report.transcript, "snapshot", "this run");
            Ok(Comparison::Changed { path, diff })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&new_path, &rendered)?;
            Ok(Comparison::New(new_path))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(dir: &Path, transcript: &str) -> Report {
        Report {
            name: "n".into(),
            id: Some("JMC-1".into()),
            file: dir.join("case.yaml").display().to_string(),
            checks: vec![],
            elapsed: Duration::ZERO,
            error: None,
            client: "jmessage-web 2.6.0".into(),
            transcript: transcript.into(),
            identity: Default::default(),
        }
    }

    #[test]
    fn new_accept_match_and_change() {
        let dir = std::env::temp_dir().join(format!("jmm-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let r = report(&dir, "a\nb\n");
        assert_eq!(
            path_for(&r),
            dir.join("snapshots/jmessage-web_2.6.0/case.snap")
        );
        assert!(
            matches!(check(&r, false).unwrap(), Comparison::New(p) if p.ends_with("case.snap.new"))
        );
        assert!(matches!(check(&r, true).unwrap(), Comparison::Accepted(_)));
        assert!(!dir
            .join("snapshots/jmessage-web_2.6.0/case.snap.new")
            .exists());
        assert_eq!(check(&r, false).unwrap(), Comparison::Matched);
        match check(&report(&dir, "a\nc\n"), false).unwrap() {
            Comparison::Changed { diff, .. } => {
                assert!(diff.contains("-b") && diff.contains("+c"), "{diff}");
            }
            other => panic!("expected a change, got {other:?}"),
        }
        assert!(dir
            .join("snapshots/jmessage-web_2.6.0/case.snap.new")
            .exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_snapshot_dir_mirrors_the_scenario_tree() {
        let layout = Layout {
            dir: Some(PathBuf::from("/repo/snaps")),
            roots: vec![PathBuf::from("cat"), PathBuf::from("one.yaml")],
        };
        assert_eq!(
            layout.path("cat/single/x.yaml", "mine 1"),
            PathBuf::from("/repo/snaps/single/mine_1/x.snap")
        );
        assert_eq!(
            layout.path("cat/top.yaml", "mine"),
            PathBuf::from("/repo/snaps/mine/top.snap")
        );
        assert_eq!(
            layout.path("one.yaml", "mine"),
            PathBuf::from("/repo/snaps/mine/one.snap")
        );
        assert_eq!(
            Layout::default().path("cat/single/x.yaml", "mine"),
            PathBuf::from("cat/single/snapshots/mine/x.snap")
        );
    }

    #[test]
    fn accept_new_writes_only_missing_snapshots() {
        let dir = std::env::temp_dir().join(format!("jmm-snapnew-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let layout = Layout {
            dir: Some(dir.join("snaps")),
            roots: vec![dir.clone()],
        };
        let r = report(&dir, "a\n");
        assert!(matches!(
            check_in(&r, &layout, Write::New).unwrap(),
            Comparison::Accepted(p) if p == dir.join("snaps/jmessage-web_2.6.0/case.snap")
        ));
        assert_eq!(
            check_in(&r, &layout, Write::New).unwrap(),
            Comparison::Matched
        );
        assert!(matches!(
            check_in(&report(&dir, "b\n"), &layout, Write::New).unwrap(),
            Comparison::Changed { .. }
        ));
        assert!(
            !dir.join("snapshots").exists(),
            "nothing beside the scenario"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reference_same_missing_and_differs() {
        let dir = std::env::temp_dir().join(format!("jmm-ref-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut official = report(&dir, "a\nb\n");
        official.client = "sdk-2.6.0".into();
        let mine = report(&dir, "a\nb\n");
        assert!(matches!(
            compare_reference(&mine, "sdk-2.6.0").unwrap(),
            Reference::Missing(p) if p.ends_with("snapshots/sdk-2.6.0/case.snap")
        ));
        check(&official, true).unwrap();
        assert_eq!(
            compare_reference(&mine, "sdk-2.6.0").unwrap(),
            Reference::Same
        );
        match compare_reference(&report(&dir, "a\nc\n"), "sdk-2.6.0").unwrap() {
            Reference::Differs { diff, .. } => {
                assert!(diff.contains("reference sdk-2.6.0"), "{diff}");
                assert!(diff.contains("-b") && diff.contains("+c"), "{diff}");
            }
            other => panic!("expected a difference, got {other:?}"),
        }
        // Comparing never writes: no .snap.new for the reference, none for this client.
        assert!(!dir.join("snapshots/sdk-2.6.0/case.snap.new").exists());
        assert!(!dir.join("snapshots/jmessage-web_2.6.0").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
