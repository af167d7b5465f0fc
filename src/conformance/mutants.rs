//! The mutation harness (`jmessage-mock mutants`): runs the catalogue once per mutant of a
//! client and reports which mutants it kills.
//!
//! A mutant is a deliberately broken client: for the builtin client one of
//! [`crate::client::mutants::Mutant`] (a run-time switch), for a driver command the name is
//! passed on as `--mutant NAME` (docs/driver-protocol.md) and the driver breaks its client
//! in memory. Each mutant's run has no snapshots and no reference: a mutant is **killed**
//! when a case's verdict is FAIL, and its run stops there (no new case starts; cases already
//! running finish). A mutant whose run ends without a FAIL **survives**: the catalogue lacks
//! a case, or the server a rule, that would catch that bug.

use super::{run_with, ClientSpec, Verdict};
use crate::client::mutants::{self, Mutant};
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The marked blocks of the conformance README that `--update-readme` rewrites: the
/// builtin client's table, and the official SDK's (any driver command).
pub const BUILTIN_BLOCK: &str = "mutants";
pub const DRIVER_BLOCK: &str = "mutants-official";

/// The markers `<!-- NAME:begin -->` and `<!-- NAME:end -->` of a README block.
fn markers(block: &str) -> (String, String) {
    (
        format!("<!-- {block}:begin -->"),
        format!("<!-- {block}:end -->"),
    )
}

/// `jmessage-mock mutants`.
#[derive(clap::Args, Debug)]
pub struct MutantsArgs {
    /// Scenario files or directories (the catalogue).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// `builtin` (default), or a driver command that takes `--mutant NAME`.
    #[arg(long, default_value = "builtin")]
    pub client: String,
    /// Only these mutants (repeatable). Default: all of the builtin client's; a driver
    /// command's list comes from `COMMAND --list-mutants`.
    #[arg(long)]
    pub mutant: Vec<String>,
    /// Cases run at once within one mutant's run.
    #[arg(long, short, default_value_t = 2)]
    pub jobs: usize,
    /// Write the result table (Markdown) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Rewrite the block between `<!-- BLOCK:begin -->` and `<!-- BLOCK:end -->` of
    /// this README with the result table (default scenarios/conformance/README.md when
    /// given without a value).
    #[arg(long, value_name = "README", num_args = 0..=1,
          default_missing_value = "scenarios/conformance/README.md")]
    pub update_readme: Option<PathBuf>,
    /// The README block `--update-readme` rewrites: `mutants` for the builtin client and
    /// `mutants-official` for a driver command unless named here.
    #[arg(long, value_name = "BLOCK")]
    pub readme_block: Option<String>,
}

/// A mutant to run: its name, area and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub area: String,
    pub description: String,
}

/// How a mutant's run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: Target,
    /// The case that failed (its id, or file) and why; `None`: survived.
    pub killed_by: Option<(String, String)>,
    /// Cases run.
    pub cases: usize,
    pub elapsed: Duration,
}

/// The builtin client's mutants named in `names` (all when empty).
pub fn builtin_targets(names: &[String]) -> Result<Vec<Target>, String> {
    let list: Vec<Mutant> = if names.is_empty() {
        Mutant::ALL.to_vec()
    } else {
        names
            .iter()
            .map(|n| {
                Mutant::from_name(n).ok_or_else(|| {
                    let hint = Mutant::suggest(n);
                    if hint.is_empty() {
                        format!("unknown mutant `{n}` (the list: `mutants --help`, docs)")
                    } else {
                        format!("unknown mutant `{n}`; did you mean {}?", hint.join(", "))
                    }
                })
            })
            .collect::<Result<_, _>>()?
    };
    Ok(list
        .into_iter()
        .map(|m| Target {
            name: m.name().into(),
            area: m.area().into(),
            description: m.description().into(),
        })
        .collect())
}

/// A driver's mutants: `names` as given, or its own list (`COMMAND --list-mutants`, one
/// `name<TAB>area<TAB>description` per line).
pub fn driver_targets(words: &[String], names: &[String]) -> Result<Vec<Target>, String> {
    let out = std::process::Command::new(&words[0])
        .args(&words[1..])
        .arg("--list-mutants")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", words[0]))?;
    if !out.status.success() {
        return Err(format!(
            "`{} --list-mutants` failed: {}",
            words.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let all: Vec<Target> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            Some(Target {
                name: f.next()?.trim().to_owned(),
                area: f.next().unwrap_or("").trim().to_owned(),
                description: f.next().unwrap_or("").trim().to_owned(),
            })
        })
        .filter(|t| !t.name.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .find(|t| &t.name == n)
                .cloned()
                .ok_or_else(|| format!("the driver has no mutant `{n}` (its --list-mutants)"))
        })
        .collect()
}

/// The client spec running `mutant`, and the builtin mutant to scope (if builtin).
fn mutated(client: &ClientSpec, mutant: &str) -> (ClientSpec, Option<Mutant>) {
    match client {
        ClientSpec::Builtin => (ClientSpec::Builtin, Mutant::from_name(mutant)),
        ClientSpec::Command(words) => {
            let mut w = words.clone();
            w.extend(["--mutant".to_owned(), mutant.to_owned()]);
            (ClientSpec::Command(w), None)
        }
    }
}

/// Runs the scenarios with `target` active, `jobs` at a time, until the first FAIL.
pub async fn run_mutant(
    scenarios: &[Scenario],
    client: &ClientSpec,
    target: &Target,
    jobs: usize,
) -> Outcome {
    let started = Instant::now();
    let (spec, builtin) = mutated(client, &target.name);
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let mut killed_by = None;
    let mut cases = 0;
    for sc in scenarios {
        // Wait for a free slot, taking in the results that came meanwhile.
        let permit = loop {
            if let Ok(p) = sem.clone().try_acquire_owned() {
                break p;
            }
            if let Some(Ok(r)) = set.join_next().await {
                cases += 1;
                killed_by = killed_by.or(r);
            }
        };
        if killed_by.is_some() {
            break;
        }
        let (sc, spec) = (sc.clone(), spec.clone());
        set.spawn(async move {
            let _permit = permit;
            let report = mutants::scope(builtin, run_with(&sc, &spec)).await;
            (report.verdict(sc.informational) == Verdict::Fail).then(|| {
                let case = sc.id.clone().unwrap_or_else(|| sc.file.clone());
                let why = report.failure().unwrap_or_default();
                (case, why.lines().next().unwrap_or("").to_owned())
            })
        });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok(r) = joined {
            cases += 1;
            killed_by = killed_by.or(r);
        }
    }
    Outcome {
        target: target.clone(),
        killed_by,
        cases,
        elapsed: started.elapsed(),
    }
}

/// One line of output for a finished mutant.
pub fn line(o: &Outcome) -> String {
    match &o.killed_by {
        Some((case, why)) => format!(
            "KILLED    {:<28} by {case} after {} case(s), {:.1} s: {why}",
            o.target.name,
            o.cases,
            o.elapsed.as_secs_f64()
        ),
        None => format!(
            "SURVIVED  {:<28} {} case(s), {:.1} s",
            o.target.name,
            o.cases,
            o.elapsed.as_secs_f64()
        ),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The result table (Markdown) with the score.
pub fn markdown(client: &str, outcomes: &[Outcome]) -> String {
    let killed = outcomes.iter().filter(|o| o.killed_by.is_some()).count();
    let mut out = format!(
        "Mutation score ({client}): **{killed}/{}** killed.\n\n| mutant | area | bug | result |\n|---|---|---|---|\n",
        outcomes.len()
    );
    for o in outcomes {
        let result = match &o.killed_by {
            Some((case, why)) => format!("killed by {case}: {}", cell(why)),
            None => "**survived**".to_owned(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {result} |\n",
            o.target.name,
            o.target.area,
            cell(&o.target.description)
        ));
    }
    out
}

/// `text` with the block between the markers replaced by `block`.
pub fn replace_block(text: &str, name: &str, block: &str) -> Result<String, String> {
    let (begin, end) = markers(name);
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        return Err(format!("the README has no `{begin}` … `{end}` block"));
    };
    if e < b {
        return Err(format!("`{end}` comes before `{begin}`"));
    }
    Ok(format!(
        "{}{begin}\n{}{}",
        &text[..b],
        block.trim_end().to_owned() + "\n",
        &text[e..]
    ))
}

/// Loads the scenarios under `paths` (fixture files left out).
pub fn load_scenarios(paths: &[PathBuf]) -> Result<Vec<Scenario>, Vec<String>> {
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        let files =
            crate::scenario::collect_files(p).map_err(|e| vec![format!("{}: {e}", p.display())])?;
        for f in files
            .iter()
            .filter(|f| !crate::scenario::is_fixture_file(f))
        {
            match crate::scenario::load(f) {
                Ok(sc) => scenarios.push(sc),
                Err(e) => errors.extend(e.into_iter().map(|e| e.to_string())),
            }
        }
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

/// The `mutants` command: exit code 0 when every mutant was killed, 1 when one survived,
/// 2 on invalid input (bad path or scenario, unknown mutant, unwritable report).
pub fn main(a: MutantsArgs) -> u8 {
    let Some(client) = ClientSpec::parse(&a.client) else {
        eprintln!("error: --client needs `builtin` or a driver command");
        return 2;
    };
    let scenarios = match load_scenarios(&a.paths) {
        Ok(s) => s,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return 2;
        }
    };
    let targets = match &client {
        ClientSpec::Builtin => builtin_targets(&a.mutant),
        ClientSpec::Command(words) => driver_targets(words, &a.mutant),
    };
    let targets = match targets {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => {
            eprintln!("error: no mutants to run");
            return 2;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 2;
        }
    };
    let mut outcomes = Vec::new();
    for t in &targets {
        let o = runtime.block_on(run_mutant(&scenarios, &client, t, a.jobs));
        println!("{}", line(&o));
        outcomes.push(o);
    }
    let killed = outcomes.iter().filter(|o| o.killed_by.is_some()).count();
    println!("score: {killed}/{} killed", outcomes.len());
    let table = markdown(&a.client, &outcomes);
    if let Err(e) = write_outputs(&a, &table) {
        eprintln!("error: {e}");
        return 2;
    }
    u8::from(killed < outcomes.len())
}

fn write_outputs(a: &MutantsArgs, table: &str) -> Result<(), String> {
    if let Some(p) = &a.report {
        std::fs::write(p, table).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = &a.update_readme {
        let default = match a.client.as_str() {
            "builtin" => BUILTIN_BLOCK,
            _ => DRIVER_BLOCK,
        };
        update_readme(p, a.readme_block.as_deref().unwrap_or(default), table)?;
    }
    Ok(())
}

/// Rewrites the block `name` of `readme` with `table`.
pub fn update_readme(readme: &Path, name: &str, table: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(readme)
        .map_err(|e| format!("cannot read {}: {e}", readme.display()))?;
    let new =
        replace_block(&text, name, table).map_err(|e| format!("{}: {e}", readme.display()))?;
    std::fs::write(readme, new).map_err(|e| format!("cannot write {}: {e}", readme.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_block_is_replaced_and_markers_are_required() {
        let (b, e) = markers(BUILTIN_BLOCK);
        let (ob, oe) = markers(DRIVER_BLOCK);
        let text = format!("intro\n{b}\nold\n{e}\nmid\n{ob}\nsdk\n{oe}\ntail\n");
        let new = replace_block(&text, BUILTIN_BLOCK, "new table\n").unwrap_or_default();
        assert_eq!(
            new,
            format!("intro\n{b}\nnew table\n{e}\nmid\n{ob}\nsdk\n{oe}\ntail\n")
        );
        let new = replace_block(&text, DRIVER_BLOCK, "sdk table").unwrap_or_default();
        assert_eq!(
            new,
            format!("intro\n{b}\nold\n{e}\nmid\n{ob}\nsdk table\n{oe}\ntail\n")
        );
        assert!(replace_block("no markers", BUILTIN_BLOCK, "x").is_err());
        assert!(replace_block(&format!("{e}{b}"), BUILTIN_BLOCK, "x").is_err());
    }

    #[test]
    fn unknown_builtin_mutants_are_errors_with_a_hint() {
        let e = builtin_targets(&["no-msg-rcv".into()])
            .err()
            .unwrap_or_default();
        assert!(e.contains("did you mean no-msg-recv"), "{e}");
        assert_eq!(
            builtin_targets(&[]).map(|t| t.len()).unwrap_or(0),
            Mutant::ALL.len()
        );
    }

    #[test]
    fn a_driver_command_gets_the_mutant_as_an_argument() {
        let (spec, m) = mutated(
            &ClientSpec::Command(vec!["node".into(), "d.js".into()]),
            "x",
        );
        assert_eq!(
            spec,
            ClientSpec::Command(vec![
                "node".into(),
                "d.js".into(),
                "--mutant".into(),
                "x".into()
            ])
        );
        assert_eq!(m, None);
        let (spec, m) = mutated(&ClientSpec::Builtin, "no-pings");
        assert_eq!((spec, m), (ClientSpec::Builtin, Some(Mutant::NoPings)));
    }

    #[test]
    fn the_table_has_the_score_and_escapes_cells() {
        let t = |n: &str| Target {
            name: n.into(),
            area: "sync".into(),
            description: "a|b".into(),
        };
        let md = markdown(
            "builtin",
            &[
                Outcome {
                    target: t("a"),
                    killed_by: Some(("JMC-1".into(), "x".into())),
                    cases: 1,
                    elapsed: Duration::ZERO,
                },
                Outcome {
                    target: t("b"),
                    killed_by: None,
                    cases: 2,
                    elapsed: Duration::ZERO,
                },
            ],
        );
        assert!(md.contains("**1/2** killed"), "{md}");
        assert!(
            md.contains("| `a` | sync | a\\|b | killed by JMC-1: x |"),
            "{md}"
        );
        assert!(md.contains("| `b` | sync | a\\|b | **survived** |"), "{md}");
    }
}
