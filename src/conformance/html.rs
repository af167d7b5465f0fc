//! The HTML report of a matrix run: one self-contained page (inline CSS, no external
//! resources, so CI systems can archive and serve it as it is) with the clients' identity
//! (name, driver, version and build from `hello`, the date), a summary per client, the
//! failures first, grouped when several cases fail the same way (same diff or same failing
//! check), the scenario × client grid coloured by verdict, and for every cell that is not a
//! plain pass a collapsible `<details>` (failures first) with the failed checks and their
//! diffs. A link to a case opens it: one tiny inline script sets `open` on the `<details>` a
//! fragment names (without scripts the case is highlighted by `:target` and opens on a
//! click). Long lines wrap.
//!
//! The page is written with `maud`, which escapes every interpolated value: no case name,
//! client name, check or payload can open a tag. Only the page's own style and script are
//! written raw (`PreEscaped`, constants below).

use super::matrix::{Cell, ClientEntry};
use super::Verdict;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::collections::HashMap;

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
pre{background:#fafafa;border:1px solid #ddd;padding:.6em;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}\
.add{color:#075e07}.del{color:#a00}details{margin:.4em 0 1em}summary{cursor:pointer}\
details:target{outline:2px solid #c00;outline-offset:2px}td,li{overflow-wrap:anywhere}\
code{font-size:12px}";

/// Opens the `<details>` the URL's fragment names (on load and on every link followed).
const SCRIPT: &str = "function jmmOpen(){var e=document.getElementById(location.hash.slice(1));\
if(e&&e.tagName==='DETAILS'){e.open=true;}}addEventListener('hashchange',jmmOpen);\
addEventListener('DOMContentLoaded',jmmOpen);";

/// Order of the details: failures first, then the other non-passes.
fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Fail => 0,
        Verdict::NonStrict => 1,
        Verdict::Unimplemented => 2,
        Verdict::Informational => 3,
        Verdict::Excluded => 4,
        Verdict::Pass => 5,
    }
}

/// What makes two failures the same: the failing check's diff (without its first line,
/// which names the per-case snapshot file) or, when there is no diff, the check itself
/// without its step number.
fn signature(cell: &Cell) -> String {
    if let Some(e) = &cell.report.error {
        return e.clone();
    }
    let Some(check) = cell
        .report
        .checks
        .iter()
        .find(|c| !c.ok && c.strict)
        .or_else(|| cell.report.checks.iter().find(|c| !c.ok))
    else {
        return String::new();
    };
    let mut lines = check.detail.lines().peekable();
    if lines
        .peek()
        .is_some_and(|l| l.starts_with("differs from ") || l.starts_with("no snapshot yet"))
    {
        lines.next();
    }
    let body: Vec<&str> = lines.collect();
    if body.iter().any(|l| l.starts_with("@@")) {
        return body.join("\n");
    }
    let what = check
        .what
        .strip_prefix("step ")
        .and_then(|w| w.split_once(' ').map(|(_, rest)| rest))
        .unwrap_or(&check.what);
    format!("{what}: {}", check.detail)
}

/// A unified diff (or any detail text) with `+`/`-` lines coloured.
fn detail_html(text: &str) -> Markup {
    let cls = |line: &str| {
        if line.starts_with('+') && !line.starts_with("+++") {
            Some("add")
        } else if line.starts_with('-') && !line.starts_with("---") {
            Some("del")
        } else {
            None
        }
    };
    html! {
        pre {
            @for line in text.lines() {
                @match cls(line) {
                    Some(c) => { span class=(c) { (line) } "\n" }
                    None => { (line) "\n" }
                }
            }
        }
    }
}

/// The anchor of a cell's details.
fn anchor(row: usize, col: usize) -> String {
    format!("c{row}-{col}")
}

/// The date of a report, `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The scenarios in order of first appearance: (file, name, id).
type Row<'a> = (&'a str, &'a str, Option<&'a str>);

/// A non-pass case: its anchor, cell and row.
type Listed<'a> = (String, &'a Cell, Row<'a>);

/// Renders the report dated now. `title` heads the page (e.g. the suite name).
pub fn render(title: &str, clients: &[ClientEntry], cells: &[Cell]) -> String {
    render_at(title, clients, cells, &utc_now())
}

/// Renders the report with the given date.
pub fn render_at(title: &str, clients: &[ClientEntry], cells: &[Cell], date: &str) -> String {
    let mut rows: Vec<Row> = Vec::new();
    let mut grid: HashMap<(&str, &str), &Cell> = HashMap::new();
    for c in cells {
        let file = c.report.file.as_str();
        if !rows.iter().any(|(f, _, _)| *f == file) {
            rows.push((file, c.report.name.as_str(), c.report.id.as_deref()));
        }
        grid.insert((file, c.client.as_str()), c);
    }
    // Every non-pass cell with its anchor, failures first.
    let mut listed: Vec<Listed> = Vec::new();
    for (ri, row) in rows.iter().enumerate() {
        for (ci, client) in clients.iter().enumerate() {
            if let Some(cell) = grid.get(&(row.0, client.name.as_str())) {
                if cell.verdict != Verdict::Pass {
                    listed.push((anchor(ri, ci), cell, *row));
                }
            }
        }
    }
    listed.sort_by_key(|(_, c, _)| rank(c.verdict));
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
                script { (PreEscaped(SCRIPT)) }
            }
            body {
                h1 { (title) }
                p { (date) }
                (identities(clients, cells))
                (summary(clients, cells))
                (failures(&listed))
                (matrix(clients, &rows, &grid))
                @if !listed.is_empty() {
                    h2 { "Details" }
                    @for (id, cell, row) in &listed {
                        (case(id, cell, *row))
                    }
                }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}

/// Who each client is: its driver, version and build from `hello`.
fn identities(clients: &[ClientEntry], cells: &[Cell]) -> Markup {
    let identity = |name: &str| {
        cells
            .iter()
            .filter(|c| c.client == name)
            .map(|c| &c.report.identity)
            .find(|i| !i.driver.is_empty())
            .cloned()
            .unwrap_or_default()
    };
    html! {
        h2 { "Clients" }
        table {
            tr { th { "client" } th { "driver" } th { "version" } th { "build" } }
            @for client in clients {
                @let id = identity(&client.name);
                tr {
                    td { (client.name) }
                    td { (id.driver) }
                    td { (id.version) }
                    td { code { (id.build.as_deref().unwrap_or("-")) } }
                }
            }
        }
    }
}

fn summary(clients: &[ClientEntry], cells: &[Cell]) -> Markup {
    html! {
        h2 { "Summary" }
        table {
            tr {
                th { "client" }
                @for v in VERDICTS { th class=(class(v)) { (v.label()) } }
                th { "total" }
            }
            @for client in clients {
                @let mine: Vec<&Cell> = cells.iter().filter(|c| c.client == client.name).collect();
                tr {
                    td { (client.name) }
                    @for v in VERDICTS {
                        td.v { (mine.iter().filter(|c| c.verdict == v).count()) }
                    }
                    td.v { (mine.len()) }
                }
            }
        }
    }
}

/// The failures, grouped by [`signature`]: the largest group first, each with the shared
/// failure once and a link to every case.
fn failures(listed: &[Listed]) -> Markup {
    let mut groups: Vec<(String, Vec<&Listed>)> = Vec::new();
    for item in listed.iter().filter(|(_, c, _)| c.verdict == Verdict::Fail) {
        let sig = signature(item.1);
        match groups.iter_mut().find(|(s, _)| *s == sig) {
            Some((_, members)) => members.push(item),
            None => groups.push((sig, vec![item])),
        }
    }
    groups.sort_by_key(|(_, m)| std::cmp::Reverse(m.len()));
    html! {
        @if !groups.is_empty() {
            h2 { "Failures" }
            @for (sig, members) in &groups {
                h3.fail {
                    (members.len()) " case" @if members.len() != 1 { "s" } " fail the same way"
                }
                ul {
                    @for (id, cell, (_, name, sid)) in members {
                        li {
                            a href={ "#" (id) } { (sid.unwrap_or("-")) " " (name) }
                            " — " (cell.client)
                        }
                    }
                }
                (detail_html(sig))
            }
        }
    }
}

fn matrix(clients: &[ClientEntry], rows: &[Row], grid: &HashMap<(&str, &str), &Cell>) -> Markup {
    html! {
        h2 { "Matrix" }
        table {
            tr {
                th { "id" }
                th { "scenario" }
                @for client in clients { th { (client.name) } }
            }
            @for (ri, (file, name, id)) in rows.iter().enumerate() {
                tr {
                    td { code { (id.unwrap_or("-")) } }
                    td title=(file) { (name) }
                    @for (ci, client) in clients.iter().enumerate() {
                        @match grid.get(&(*file, client.name.as_str())) {
                            Some(cell) if cell.verdict == Verdict::Pass => { td.v.pass { "PASS" } }
                            Some(cell) => {
                                td class={ "v " (class(cell.verdict)) } {
                                    a href={ "#" (anchor(ri, ci)) } { (cell.verdict.label()) }
                                }
                            }
                            None => { td.v { "-" } }
                        }
                    }
                }
            }
        }
    }
}

/// One case's details.
fn case(id: &str, cell: &Cell, (file, name, sid): Row) -> Markup {
    let report = &cell.report;
    html! {
        details id=(id) {
            summary {
                span class=(class(cell.verdict)) { (cell.verdict.label()) }
                " " (sid.unwrap_or("-")) " " (name) " — " (cell.client)
                " (" (report.elapsed.as_millis()) " ms)"
            }
            p { code { (file) } }
            @if let Some(e) = &report.error {
                p { "error:" }
                (detail_html(e))
            }
            @for check in report.checks.iter().filter(|c| !c.ok) {
                p { (check.what) @if !check.strict { " (tolerated)" } }
                (detail_html(&check.detail))
            }
            @if !report.transcript.is_empty() {
                details { summary { "transcript" } (detail_html(&report.transcript)) }
            }
        }
    }
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
                identity: Default::default(),
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

    #[test]
    fn failures_first_grouped_with_identity_and_escaped_names() {
        use crate::conformance::Identity;
        let clients = vec![ClientEntry {
            name: "mine".into(),
            spec: ClientSpec::Command(vec!["node".into()]),
            named: true,
        }];
        let diff = |file: &str| {
            format!("differs from {file}/snapshots/mine/x.snap:\n@@ -1 +1 @@\n-a\n+b\n")
        };
        let mut cells = vec![
            cell(
                "mine",
                "a",
                vec![Check::tolerated("ref", false, "-x\n+y\n")],
                Verdict::NonStrict,
            ),
            cell(
                "mine",
                "b",
                vec![Check::new("snapshot", false, diff("b"))],
                Verdict::Fail,
            ),
            cell(
                "mine",
                "c",
                vec![Check::new("snapshot", false, diff("c"))],
                Verdict::Fail,
            ),
            cell(
                "mine",
                "d",
                vec![Check::new("step 4 call a.login", false, "no callback")],
                Verdict::Fail,
            ),
        ];
        cells[3].report.name = "<script>alert(1)</script>".into();
        for c in &mut cells {
            c.report.identity = Identity {
                driver: "jmessage-web".into(),
                version: "2.6.0".into(),
                build: Some("abc123".into()),
            };
        }
        let html = render_at("suite", &clients, &cells, "2026-12-05 20:00 UTC");
        // Identity and date.
        assert!(html.contains("<p>2026-12-05 20:00 UTC</p>"), "{html}");
        assert!(html.contains(
            "<tr><td>mine</td><td>jmessage-web</td><td>2.6.0</td><td><code>abc123</code></td></tr>"
        ));
        // Failures come before the matrix, the largest group first, sharing one diff.
        let failures = html.find("<h2>Failures</h2>").expect("failures section");
        assert!(failures < html.find("<h2>Matrix</h2>").expect("matrix"));
        let groups: Vec<usize> = html
            .match_indices("fail the same way")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(groups.len(), 2, "{html}");
        assert!(html[..groups[0]].ends_with("2 cases "), "{html}");
        assert!(html[..groups[1]].ends_with("1 case "), "{html}");
        assert_eq!(
            html.matches("<a href=\"#c1-0\">").count(),
            2,
            "grid and group link"
        );
        // Details: every failure before the non-strict case, linked by id.
        let detail = |id: &str| html.find(&format!("<details id=\"{id}\">")).expect(id);
        assert!(detail("c1-0") < detail("c0-0") && detail("c3-0") < detail("c0-0"));
        // A case name cannot inject markup: the only script is the report's own.
        assert_eq!(html.matches("<script>").count(), 1, "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("white-space:pre-wrap"), "long lines wrap");
        assert!(
            html.contains("e.open=true"),
            "a followed link opens its case"
        );
    }

    #[test]
    fn hostile_names_and_payloads_cannot_break_the_markup() {
        let hostile = "</script><b>x</b><img src=x onerror=alert(1)>\"'&";
        let clients = vec![ClientEntry {
            name: hostile.into(),
            spec: ClientSpec::Builtin,
            named: true,
        }];
        let mut c = cell(
            hostile,
            "h",
            vec![Check::new(
                hostile,
                false,
                format!("+{hostile}\n-{hostile}"),
            )],
            Verdict::Fail,
        );
        c.report.name = hostile.into();
        c.report.id = Some(hostile.into());
        c.report.error = Some(hostile.into());
        c.report.transcript = hostile.into();
        let html = render_at(hostile, &clients, &[c], hostile);
        // The page's own script is the only one, opened and closed once.
        assert_eq!(html.matches("<script>").count(), 1, "{html}");
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
        assert!(!html.contains("<b>") && !html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;"),
            "{html}"
        );
        // Every tag that opens closes (the page is well nested).
        let mut open: Vec<&str> = Vec::new();
        for (i, _) in html.match_indices('<') {
            let tag = &html[i + 1..];
            let end = tag.find(['>', ' ']).unwrap_or(tag.len());
            let name = &tag[..end];
            if name.starts_with('!') || matches!(name, "meta") {
                continue;
            }
            match name.strip_prefix('/') {
                Some(closing) => assert_eq!(open.pop(), Some(closing), "{html}"),
                None => open.push(name),
            }
        }
        assert!(open.is_empty(), "unclosed {open:?}");
    }
}
