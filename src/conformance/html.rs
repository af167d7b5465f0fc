//! The HTML report of a matrix run: one self-contained page (inline CSS, no scripts, no
//! external resources, so CI systems can archive and serve it as it is) with a summary per
//! client, the scenario × client grid coloured by verdict, and for every cell that is not
//! a plain pass a collapsible `<details>` with the failed checks and their diffs.

use super::matrix::{Cell, ClientEntry};
use super::Verdict;
use std::collections::HashMap;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::NonStrict => "nonstrict",
        Verdict::Informational => "info",
        Verdict::Unimplemented => "unimpl",
        Verdict::Excluded => "excl",
        Verdict::Fail => "fail",
    }
}

/// Every verdict, in the order the summary lists them.
const VERDICTS: [Verdict; 6] = [
    Verdict::Pass,
    Verdict::NonStrict,
    Verdict::Informational,
    Verdict::Unimplemented,
    Verdict::Excluded,
    Verdict::Fail,
];

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.v{text-align:center;font-weight:600;white-space:nowrap}\
.pass{background:#d7f5d7}.nonstrict{background:#fff1b8}.info{background:#dde8ff}.unimpl{background:#eee}\
.excl{background:#f4f4f4;color:#777}.fail{background:#ffd0d0}a{color:inherit}\
pre{background:#fafafa;border:1px solid #ddd;padding:.6em;overflow-x:auto;font-size:12px}\
.add{color:#075e07}.del{color:#a00}details{margin:.4em 0 1em}summary{cursor:pointer}\
code{font-size:12px}";

/// A unified diff (or any detail text) with `+`/`-` lines coloured.
fn detail_html(text: &str) -> String {
    let mut out = String::from("<pre>");
    for line in text.lines() {
        let cls = if line.starts_with('+') && !line.starts_with("+++") {
            Some("add")
        } else if line.starts_with('-') && !line.starts_with("---") {
            Some("del")
        } else {
            None
        };
        match cls {
            Some(c) => {
                let _ = writeln!(out, "<span class=\"{c}\">{}</span>", esc(line));
            }
            None => {
                let _ = writeln!(out, "{}", esc(line));
            }
        }
    }
    out.push_str("</pre>");
    out
}

/// The anchor of a cell's details.
fn anchor(row: usize, col: usize) -> String {
    format!("c{row}-{col}")
}

/// Renders the report. `title` heads the page (e.g. the command line or the suite name).
pub fn render(title: &str, clients: &[ClientEntry], cells: &[Cell]) -> String {
    let mut rows: Vec<(&str, &str, Option<&str>)> = Vec::new();
    let mut grid: HashMap<(&str, &str), &Cell> = HashMap::new();
    for c in cells {
        let file = c.report.file.as_str();
        if !rows.iter().any(|(f, _, _)| *f == file) {
            rows.push((file, c.report.name.as_str(), c.report.id.as_deref()));
        }
        grid.insert((file, c.client.as_str()), c);
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(title)
    );

    out.push_str("<h2>Summary</h2>\n<table><tr><th>client</th>");
    for v in VERDICTS {
        let _ = write!(out, "<th class=\"{}\">{}</th>", class(v), v.label());
    }
    out.push_str("<th>total</th></tr>\n");
    for client in clients {
        let _ = write!(out, "<tr><td>{}</td>", esc(&client.name));
        let mine: Vec<&Cell> = cells.iter().filter(|c| c.client == client.name).collect();
        for v in VERDICTS {
            let n = mine.iter().filter(|c| c.verdict == v).count();
            let _ = write!(out, "<td class=\"v\">{n}</td>");
        }
        let _ = writeln!(out, "<td class=\"v\">{}</td></tr>", mine.len());
    }
    out.push_str("</table>\n");

    out.push_str("<h2>Matrix</h2>\n<table><tr><th>id</th><th>scenario</th>");
    for client in clients {
        let _ = write!(out, "<th>{}</th>", esc(&client.name));
    }
    out.push_str("</tr>\n");
    for (ri, (file, name, id)) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td title=\"{}\">{}</td>",
            esc(id.unwrap_or("-")),
            esc(file),
            esc(name)
        );
        for (ci, client) in clients.iter().enumerate() {
            match grid.get(&(*file, client.name.as_str())) {
                Some(cell) if cell.verdict == Verdict::Pass => {
                    let _ = write!(out, "<td class=\"v pass\">PASS</td>");
                }
                Some(cell) => {
                    let _ = write!(
                        out,
                        "<td class=\"v {}\"><a href=\"#{}\">{}</a></td>",
                        class(cell.verdict),
                        anchor(ri, ci),
                        cell.verdict.label()
                    );
                }
                None => out.push_str("<td class=\"v\">-</td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");

    let mut details = String::new();
    for (ri, (file, name, id)) in rows.iter().enumerate() {
        for (ci, client) in clients.iter().enumerate() {
            let Some(cell) = grid.get(&(*file, client.name.as_str())) else {
                continue;
            };
            if cell.verdict == Verdict::Pass {
                continue;
            }
            let _ = write!(
                details,
                "<details id=\"{}\"><summary><span class=\"{}\">{}</span> {} {} — {} ({} ms)</summary>\n<p><code>{}</code></p>\n",
                anchor(ri, ci),
                class(cell.verdict),
                cell.verdict.label(),
                esc(id.unwrap_or("-")),
                esc(name),
                esc(&client.name),
                cell.report.elapsed.as_millis(),
                esc(file)
            );
            if let Some(e) = &cell.report.error {
                let _ = write!(details, "<p>error:</p>{}", detail_html(e));
            }
            for check in cell.report.checks.iter().filter(|c| !c.ok) {
                let _ = write!(
                    details,
                    "<p>{}{}</p>{}",
                    esc(&check.what),
                    if check.strict { "" } else { " (tolerated)" },
                    detail_html(&check.detail)
                );
            }
            if !cell.report.transcript.is_empty() {
                let _ = write!(
                    details,
                    "<details><summary>transcript</summary>{}</details>",
                    detail_html(&cell.report.transcript)
                );
            }
            details.push_str("</details>\n");
        }
    }
    if !details.is_empty() {
        out.push_str("<h2>Details</h2>\n");
        out.push_str(&details);
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{Check, ClientSpec, Report};
    use std::time::Duration;

    fn cell(client: &str, file: &str, checks: Vec<Check>, verdict: Verdict) -> Cell {
        Cell {
            client: client.into(),
            report: Report {
                name: format!("<{file}> & co"),
                id: Some(format!("JMC-{file}")),
                file: format!("{file}.yaml"),
                checks,
                elapsed: Duration::from_millis(3),
                error: None,
                client: client.into(),
                transcript: "# t\n".into(),
            },
            verdict,
        }
    }

    #[test]
    fn grid_summary_details_and_escaping() {
        let clients = vec![
            ClientEntry {
                name: "builtin".into(),
                spec: ClientSpec::Builtin,
                named: false,
            },
            ClientEntry {
                name: "sdk<2.4>".into(),
                spec: ClientSpec::Command(vec!["node".into()]),
                named: true,
            },
        ];
        let cells = vec![
            cell(
                "builtin",
                "a",
                vec![Check::new("s", true, "")],
                Verdict::Pass,
            ),
            cell(
                "builtin",
                "b",
                vec![Check::tolerated("same as ref", false, "-x\n+y\n")],
                Verdict::NonStrict,
            ),
            cell(
                "sdk<2.4>",
                "a",
                vec![Check::new("step 1 call", false, "is not a function")],
                Verdict::Unimplemented,
            ),
            cell(
                "sdk<2.4>",
                "b",
                vec![Check::new("step 2", false, "onFail 880001")],
                Verdict::Fail,
            ),
        ];
        let html = render("suite <1>", &clients, &cells);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>suite &lt;1&gt;</title>"));
        assert!(html.contains("<th>sdk&lt;2.4&gt;</th>"), "{html}");
        assert!(!html.contains("<a>"), "no raw markup from input");
        assert!(html.contains("&lt;a&gt; &amp; co"));
        // Summary: one pass and one non-strict for builtin, one unimpl and one fail for sdk.
        assert!(html.contains(
            "<tr><td>builtin</td><td class=\"v\">1</td><td class=\"v\">1</td><td class=\"v\">0</td>"
        ));
        // Only non-pass cells get details, linked from the grid.
        assert_eq!(html.matches("<details id=").count(), 3);
        assert!(html.contains("<a href=\"#c1-0\">NON-STRICT</a>"));
        assert!(html.contains("same as ref (tolerated)"));
        assert!(html.contains("<span class=\"add\">+y</span>"));
        assert!(html.contains("<span class=\"del\">-x</span>"));
        assert!(html.contains("onFail 880001"));
    }
}
