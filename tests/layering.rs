//! The house rules, checked from the source text (docs/architecture.md):
//!
//! - `layers_only_point_down`: every `crate::<module>` path (and `jmessage_mock::<module>`
//!   in the binary, and `super::` paths that climb out of a module) is an arrow from one
//!   top-level module to another; an arrow the layer table does not allow fails with
//!   `file:line`, the arrow and the rule it breaks.
//! - `no_long_functions`: no function in `src/` is longer than 100 lines unless it is
//!   named in `LONG_FUNCTIONS` with its reason; an entry that got short must leave the list.
//!
//! Both read files as text: no build step, no dependency, and a failure names the line.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// A top-level module, the modules it may reach, and the rule in words.
struct Layer {
    module: &'static str,
    may_reach: &'static [&'static str],
    rule: &'static str,
}

/// The top layers (the library's root, the binary) may reach every module.
const ANY: &[&str] = &["*"];

/// The layer table, bottom to top. `lock` is the poison-ignoring mutex helper every
/// layer may use; `lib` and `main` are the crate roots.
const LAYERS: &[Layer] = &[
    Layer {
        module: "lock",
        may_reach: &[],
        rule: "lock is the floor: it reaches nothing in the crate",
    },
    Layer {
        module: "transport",
        may_reach: &["lock"],
        rule: "transport reaches nothing above it (protocol, backend, server, ...)",
    },
    Layer {
        module: "protocol",
        may_reach: &["lock", "transport"],
        rule: "protocol reaches only transport",
    },
    Layer {
        module: "backend",
        may_reach: &["lock", "protocol"],
        rule: "backend is plain deterministic state: it reaches only protocol \
               (never transport, server, faults, client, conformance, oracle, proxy, scenario)",
    },
    Layer {
        module: "client",
        may_reach: &["lock", "transport", "protocol"],
        rule: "the reference client speaks the wire: it reaches only transport and protocol",
    },
    Layer {
        module: "faults",
        may_reach: &["lock", "transport", "protocol"],
        rule: "faults act on frames: they reach only transport and protocol",
    },
    Layer {
        module: "config",
        may_reach: &["lock", "protocol", "backend"],
        rule: "config reads files into backend settings: it reaches only protocol and backend",
    },
    Layer {
        module: "oracle",
        may_reach: &["lock", "transport", "protocol", "faults"],
        rule:
            "the oracle judges frames: it reaches transport, protocol and faults, never conformance",
    },
    Layer {
        module: "scenario",
        may_reach: &[
            "lock",
            "transport",
            "protocol",
            "backend",
            "faults",
            "oracle",
            "config",
        ],
        rule: "scenarios are data: they reach transport (its TransportKind), protocol, backend, \
               faults, oracle and config, never server, client or conformance",
    },
    Layer {
        module: "server",
        may_reach: &[
            "lock",
            "transport",
            "protocol",
            "backend",
            "client",
            "faults",
            "oracle",
            "scenario",
            "config",
        ],
        rule: "server is the glue below the runner and the proxy: never conformance or proxy",
    },
    Layer {
        module: "proxy",
        may_reach: &[
            "lock",
            "transport",
            "protocol",
            "faults",
            "oracle",
            "scenario",
            "server",
            "config",
        ],
        rule: "the proxy reaches the layers below it, never conformance, backend or client",
    },
    Layer {
        module: "conformance",
        may_reach: &[
            "lock",
            "transport",
            "protocol",
            "backend",
            "client",
            "faults",
            "oracle",
            "scenario",
            "server",
            "config",
        ],
        rule: "the runner reaches every layer below it, never the proxy",
    },
    Layer {
        module: "lib",
        may_reach: ANY,
        rule: "lib.rs is the map: it names and re-exports every module",
    },
    Layer {
        module: "main",
        may_reach: ANY,
        rule: "main.rs is the top: only the binary reaches conformance from outside it",
    },
    Layer {
        module: "cli",
        may_reach: ANY,
        rule: "the CLI (main.rs and src/cli/) is the top layer",
    },
];

/// Functions over 100 lines that are flat tables (a `match` of one-line arms), each with
/// its reason: `path:name`, reason. None today.
const LONG_FUNCTIONS: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
}

/// The module path of a file below `src/`: `src/a/b.rs` is `[a, b]`, `src/a/mod.rs` is `[a]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The line without its `//` comment and with string literals emptied.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            if c == '\\' {
                chars.next();
            } else if c == '"' {
                in_str = false;
                out.push('"');
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            break;
        }
        if c == '"' {
            in_str = true;
        }
        out.push(c);
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segments of a `{a::x, b::{y, z}}` group (from just after `{`).
fn group_heads(rest: &str) -> Vec<String> {
    let (mut depth, mut heads, mut at_start) = (1, Vec::new(), true);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => at_start = true,
            c if at_start && depth == 1 && !c.is_whitespace() => {
                heads.push(ident_at(&rest[i..]).to_owned());
                at_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// The top-level modules one source text reaches, with the 1-based line of each arrow.
/// `roots` are the names of the crate root in this file (`crate`, `jmessage_mock`).
fn arrows(text: &str, module: &[String], roots: &[&str]) -> Vec<(usize, String)> {
    // Joined so that a `use crate::{` group spanning lines is read whole.
    let lines: Vec<String> = text.lines().map(code_of).collect();
    let joined = lines.join("\n");
    let line_of = |offset: usize| joined[..offset].matches('\n').count() + 1;
    let mut out = Vec::new();
    for root in roots {
        let pat = format!("{root}::");
        for (at, _) in joined.match_indices(&pat) {
            let before = joined[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &joined[at + pat.len()..];
            let heads = match rest.strip_prefix('{') {
                Some(group) => group_heads(group),
                None => vec![ident_at(rest).to_owned()],
            };
            out.extend(heads.into_iter().map(|h| (line_of(at), h)));
        }
    }
    // `super::super::x` from `src/a/b.rs` climbs to the crate root and names `x`.
    for (at, _) in joined.match_indices("super::") {
        if joined[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &joined[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        // `mod tests` inside a file adds one level the path does not show.
        let depth = module.len() + usize::from(in_test_module(&joined[..at]));
        if ups == depth {
            out.push((line_of(at), ident_at(rest).to_owned()));
        }
    }
    out.retain(|(_, m)| !m.is_empty() && m != "self" && m != "super");
    out
}

fn in_test_module(before: &str) -> bool {
    before.contains("mod tests {")
}

fn layer(module: &str) -> Option<&'static Layer> {
    LAYERS.iter().find(|l| l.module == module)
}

#[test]
fn layers_only_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "expected the crate's sources under {src:?}"
    );
    let known: BTreeSet<&str> = LAYERS.iter().map(|l| l.module).collect();
    let mut broken = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("below src");
        let module = module_path(rel);
        let top = module[0].as_str();
        let Some(this) = layer(top) else {
            broken.push(format!(
                "src/{}: module `{top}` is in no layer; add it to LAYERS and docs/architecture.md",
                rel.display()
            ));
            continue;
        };
        let in_binary = top == "main" || top == "cli";
        let roots: &[&str] = if in_binary {
            &["crate", "jmessage_mock"]
        } else {
            &["crate"]
        };
        let text = fs::read_to_string(file).expect("readable source");
        for (line, target) in arrows(&text, &module, roots) {
            if target == top || !known.contains(target.as_str()) {
                continue;
            }
            if this.may_reach != ANY && !this.may_reach.contains(&target.as_str()) {
                broken.push(format!(
                    "src/{}:{line}: {top} -> {target} is forbidden: {}",
                    rel.display(),
                    this.rule
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "layering broken (docs/architecture.md):\n{}",
        broken.join("\n")
    );
}

/// `(name, first line, length)` of every `fn` with a body in a source text.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<String> = text.lines().map(code_of).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else {
            continue;
        };
        let head = line[..at].trim();
        let words_ok = head
            .split_whitespace()
            .all(|w| matches!(w, "pub" | "async" | "const" | "unsafe") || w.starts_with("pub("));
        if !words_ok {
            continue;
        }
        let name = ident_at(&line[at + 3..]).to_owned();
        let (mut depth, mut started, mut end) = (0i32, false, None);
        for (j, l) in lines.iter().enumerate().skip(i) {
            if !started && l.contains(';') && !l.contains('{') {
                break;
            }
            for c in l.chars().filter(|c| *c == '{' || *c == '}') {
                depth += if c == '{' { 1 } else { -1 };
                started = true;
            }
            if started && depth <= 0 {
                end = Some(j);
                break;
            }
        }
        if let Some(end) = end {
            out.push((name, i + 1, end - i + 1));
        }
    }
    out
}

#[test]
fn no_long_functions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut long = BTreeSet::new();
    let mut broken = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(root).expect("below the crate");
        let text = fs::read_to_string(file).expect("readable source");
        for (name, line, len) in functions(&text) {
            if len <= 100 {
                continue;
            }
            let key = format!("{}:{name}", rel.display());
            if LONG_FUNCTIONS.iter().any(|(k, _)| *k == key) {
                long.insert(key);
            } else {
                broken.push(format!(
                    "{}:{line}: fn {name} is {len} lines (limit 100): split it, or if it is a flat \
                     table add it to LONG_FUNCTIONS with the reason",
                    rel.display()
                ));
            }
        }
    }
    for (key, _) in LONG_FUNCTIONS {
        if !long.contains(*key) {
            broken.push(format!(
                "{key} is no longer over 100 lines (or gone): remove it from LONG_FUNCTIONS"
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_reader_sees_grouped_and_climbing_paths() {
    let text =
        "use crate::{backend::X, protocol::{a, b}};\nfn f() { super::super::server::go(); }\n\
                // crate::conformance in a comment\nlet s = \"crate::proxy\";\n";
    let module = vec!["client".to_owned(), "sdk".to_owned()];
    let got: Vec<String> = arrows(text, &module, &["crate"])
        .into_iter()
        .map(|(l, m)| format!("{l}:{m}"))
        .collect();
    assert_eq!(got, ["1:backend", "1:protocol", "2:server"]);
    let fns = functions("fn a() {\n    1\n}\npub(crate) async fn b(x: u8) -> u8 {\n    x\n}\n");
    assert_eq!(fns, [("a".to_owned(), 1, 3), ("b".to_owned(), 4, 3)]);
}
