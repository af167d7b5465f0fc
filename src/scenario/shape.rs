//! Every shape error of a file at once. The YAML deserializer stops at the first error, so
//! when a file does not deserialize this second pass reads it as plain YAML values, keeps
//! where each rule (step, expectation, fault, fixture entry) starts, and deserializes each
//! rule on its own. Every failing rule gives one diagnostic at the offending key (at the
//! rule's start for a missing one), naming the
//! field and the expected type with an example taken from the JSON Schema of the format
//! (`faults[0]: nth: expected a list of integers, e.g. [2]`).

use super::model::{Fixtures, ScenarioFile};
use super::schema::{schema, Kind};
use super::{suggest, Diagnostic};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::{Location, Spanned};

/// Lists whose entries are rules, and the schema definition of one entry.
const SCENARIO_LISTS: &[(&str, &str)] = &[
    ("faults", "FaultSpec"),
    ("steps", "Step"),
    ("expect", "Expectation"),
];
const FIXTURE_LISTS: &[(&str, &str)] = &[
    ("apps", "AppConfig"),
    ("users", "UserSeed"),
    ("groups", "GroupSeed"),
    ("rooms", "RoomSeed"),
    ("friends", "FriendSeed"),
    ("messages", "MessageSeed"),
    ("media", "MediaSeed"),
    ("blacklists", "BlacklistSeed"),
];

type Located = Map<String, Value>;

/// A top-level value: a list of located entries, or anything else.
enum ListOrOther {
    List(Vec<Spanned<Value>>),
    Map(Vec<(String, Spanned<ListOrOther>)>),
    Other(Value),
}

impl<'de> Deserialize<'de> for ListOrOther {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ListOrOther;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ListOrOther, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = a.next_element::<Spanned<Value>>()? {
                    out.push(x);
                }
                Ok(ListOrOther::List(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ListOrOther, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = a.next_key::<String>()? {
                    out.push((k, a.next_value::<Spanned<ListOrOther>>()?));
                }
                Ok(ListOrOther::Map(out))
            }
            fn visit_bool<E>(self, v: bool) -> Result<ListOrOther, E> {
                Ok(ListOrOther::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ListOrOther, E> {
                Ok(ListOrOther::Other(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ListOrOther, E> {
                Ok(ListOrOther::Other(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ListOrOther, E> {
                Ok(ListOrOther::Other(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<ListOrOther, E> {
                Ok(ListOrOther::Other(v.into()))
            }
            fn visit_unit<E>(self) -> Result<ListOrOther, E> {
                Ok(ListOrOther::Other(Value::Null))
            }
            fn visit_none<E>(self) -> Result<ListOrOther, E> {
                Ok(ListOrOther::Other(Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

/// Every shape error of a scenario file; empty when the second pass finds none (the
/// caller then reports the deserializer's own first error).
pub fn scenario_errors(text: &str, file: &str) -> Vec<Diagnostic> {
    errors::<ScenarioFile>(text, file, Kind::Scenario, SCENARIO_LISTS, true)
}

/// Every shape error of a fixture file.
pub fn fixture_errors(text: &str, file: &str) -> Vec<Diagnostic> {
    errors::<Fixtures>(text, file, Kind::Fixtures, FIXTURE_LISTS, false)
}

fn errors<T: DeserializeOwned>(
    text: &str,
    file: &str,
    kind: Kind,
    lists: &[(&str, &str)],
    nested_fixtures: bool,
) -> Vec<Diagnostic> {
    let Ok(ListOrOther::Map(top)) = serde_saphyr::from_str::<ListOrOther>(text) else {
        return Vec::new();
    };
    let schema = schema(kind);
    let mut out = Vec::new();
    let mut rest = Located::new();
    let mut places = Vec::new();
    for (key, value) in top {
        places.push((key.clone(), value.referenced));
        let def = lists.iter().find(|(k, _)| *k == key).map(|(_, d)| *d);
        let v = match (value.value, def) {
            (ListOrOther::List(items), Some(def)) => {
                check_items(&schema, (def, &key), &items, (text, file), &mut out);
                Value::Array(Vec::new())
            }
            (ListOrOther::Map(entries), _) if nested_fixtures && key == "fixtures" => {
                let mut fx = Located::new();
                for (k, v) in entries {
                    let def = FIXTURE_LISTS.iter().find(|(n, _)| *n == k).map(|(_, d)| *d);
                    let v = match (v.value, def) {
                        (ListOrOther::List(items), Some(def)) => {
                            let list = format!("fixtures.{k}");
                            check_items(&schema, (def, &list), &items, (text, file), &mut out);
                            Value::Array(Vec::new())
                        }
                        (other, _) => plain(other),
                    };
                    fx.insert(k, v);
                }
                Value::Object(fx)
            }
            (other, _) => plain(other),
        };
        rest.insert(key, v);
    }
    // What is left (every list emptied): top-level fields, at the key's value.
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(Value::Object(rest)) {
        let first = e.path().iter().next().map(|s| s.to_string());
        let loc = places
            .iter()
            .find(|(k, _)| Some(k) == first.as_ref())
            .map_or(Location::UNKNOWN, |(_, l)| *l);
        out.push(describe_error(&schema, None, "", &e, file, loc));
    }
    out
}

fn plain(v: ListOrOther) -> Value {
    match v {
        ListOrOther::List(items) => Value::Array(items.into_iter().map(|i| i.value).collect()),
        ListOrOther::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k, plain(v.value)))
                .collect(),
        ),
        ListOrOther::Other(v) => v,
    }
}

fn check_items(
    schema: &Value,
    (def, list): (&str, &str),
    items: &[Spanned<Value>],
    (text, file): (&str, &str),
    out: &mut Vec<Diagnostic>,
) {
    for (i, item) in items.iter().enumerate() {
        let end = items.get(i + 1).map(|n| n.referenced.line());
        let r = match def {
            "FaultSpec" => de::<crate::faults::FaultSpec>(&item.value),
            "Step" => de::<super::model::Step>(&item.value),
            "Expectation" => de::<super::model::Expectation>(&item.value),
            "AppConfig" => de::<crate::backend::AppConfig>(&item.value),
            "UserSeed" => de::<crate::backend::UserSeed>(&item.value),
            "GroupSeed" => de::<crate::backend::GroupSeed>(&item.value),
            "RoomSeed" => de::<crate::backend::RoomSeed>(&item.value),
            "FriendSeed" => de::<crate::backend::FriendSeed>(&item.value),
            "MessageSeed" => de::<crate::backend::MessageSeed>(&item.value),
            "MediaSeed" => de::<crate::backend::MediaSeed>(&item.value),
            _ => de::<crate::backend::BlacklistSeed>(&item.value),
        };
        if let Err(e) = r {
            let prefix = format!("{list}[{}]: ", i);
            let root = definition(schema, def);
            let mut d = describe_error(schema, root, &prefix, &e, file, item.referenced);
            if let Some(word) = needle(&e) {
                (d.line, d.column) = within(text, item.referenced, end, &word);
            }
            out.push(d);
        }
    }
}

type PathError = serde_path_to_error::Error<serde_json::Error>;

fn de<T: DeserializeOwned>(v: &Value) -> Result<(), PathError> {
    serde_path_to_error::deserialize::<_, T>(v.clone()).map(|_| ())
}

fn definition<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema.get("definitions").and_then(|d| d.get(name))
}

/// Follows `$ref`s (`#/definitions/X`) and single-entry `allOf`s.
fn resolve<'a>(schema: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..8 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match r.rsplit('/').next().and_then(|n| definition(schema, n)) {
                Some(d) => s = d,
                None => return s,
            }
        } else if let Some([one]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            s = one;
        } else {
            return s;
        }
    }
    s
}

/// The sub-schema of property `key` in `s` (through `oneOf`/`anyOf` alternatives).
fn property<'a>(schema: &'a Value, s: &'a Value, key: &str) -> Option<&'a Value> {
    let s = resolve(schema, s);
    if let Some(p) = s.get("properties").and_then(|p| p.get(key)) {
        return Some(p);
    }
    for alt in ["oneOf", "anyOf"] {
        for a in s.get(alt).and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = property(schema, a, key) {
                return Some(p);
            }
        }
    }
    None
}

/// Walks a path of field names and indexes from `root`.
fn at<'a>(schema: &'a Value, root: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut s = root;
    for seg in path {
        s = if seg.parse::<usize>().is_ok() {
            resolve(schema, s).get("items")?
        } else {
            property(schema, s, seg)?
        };
    }
    Some(resolve(schema, s))
}

/// "a list of integers, e.g. [2]" for a schema.
pub(crate) fn expected(schema: &Value, s: &Value) -> Option<(String, String)> {
    let s = resolve(schema, s);
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = e.iter().map(|v| v.to_string()).collect();
        return Some((
            format!("one of {}", names.join(", ")),
            names.first()?.clone(),
        ));
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null")?,
        _ => return None,
    };
    Some(match ty {
        "integer" if s.get("minimum").is_some() => ("a non-negative integer".into(), "2".into()),
        "integer" => ("an integer".into(), "2".into()),
        "number" => ("a number".into(), "0.5".into()),
        "boolean" => ("true or false".into(), "true".into()),
        "string" => ("a string".into(), "\"text\"".into()),
        "array" => {
            let (what, ex) = s
                .get("items")
                .and_then(|i| expected(schema, i))
                .unwrap_or_else(|| ("values".into(), "...".into()));
            (format!("a list of {}", plural(&what)), format!("[{ex}]"))
        }
        _ => {
            let keys: Vec<&str> = s
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().map(String::as_str).take(4).collect())
                .unwrap_or_default();
            match keys.first() {
                Some(k) => (
                    format!("a map (keys: {})", keys.join(", ")),
                    format!("{{{k}: ...}}"),
                ),
                None => ("a map".into(), "{key: value}".into()),
            }
        }
    })
}

fn plural(what: &str) -> String {
    let w = what
        .trim_start_matches("an ")
        .trim_start_matches("a ")
        .to_owned();
    match w.as_str() {
        "non-negative integer" => "non-negative integers".into(),
        "integer" | "number" | "string" | "map" => format!("{w}s"),
        _ => w,
    }
}

/// `field: ` (nothing for an empty field).
fn label(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// The backticked names after "expected" in a serde message (the known fields or variants).
fn known_names(inner: &str) -> Vec<String> {
    inner
        .split("expected ")
        .nth(1)
        .map(|t| t.split('`').skip(1).step_by(2).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Message and hint for an error of `field` (a dotted path inside the rule).
fn explain(schema: &Value, root: &Value, path: &[String], inner: &str) -> (String, Option<String>) {
    let field = path.join(".");
    if let Some(unknown) = backticked(inner, "unknown variant `") {
        let known = known_names(inner);
        let hint = suggest(&unknown, known.iter().map(String::as_str))
            .or_else(|| Some(format!("known: {}", known.join(", "))));
        return (format!("{}unknown {unknown:?}", label(&field)), hint);
    }
    if let Some(unknown) = backticked(inner, "unknown field `") {
        let known = known_names(inner);
        let parent = field
            .strip_suffix(unknown.as_str())
            .map(|p| p.trim_end_matches('.'))
            .unwrap_or(&field);
        let hint = suggest(&unknown, known.iter().map(String::as_str));
        return (format!("{}unknown field {unknown:?}", label(parent)), hint);
    }
    if let Some(missing) = backticked(inner, "missing field `") {
        return (format!("{}missing field {missing:?}", label(&field)), None);
    }
    let found = inner
        .strip_prefix("invalid type: ")
        .and_then(|t| t.split(", expected").next())
        .map(|f| format!(" (found {f})"))
        .unwrap_or_else(|| format!(" ({inner})"));
    match at(schema, root, path).and_then(|s| expected(schema, s)) {
        Some((what, ex)) if !field.is_empty() => {
            (format!("{field}: expected {what}, e.g. {ex}{found}"), None)
        }
        _ => (format!("{}{inner}", label(&field)), None),
    }
}

fn describe_error(
    schema: &Value,
    root: Option<&Value>,
    prefix: &str,
    e: &PathError,
    file: &str,
    loc: Location,
) -> Diagnostic {
    let path: Vec<String> = e
        .path()
        .iter()
        .map(|s| s.to_string())
        .filter(|s| s != "?")
        .collect();
    let inner = e.inner().to_string();
    let inner = inner.split(" at line ").next().unwrap_or(&inner);
    let (message, hint) = explain(schema, root.unwrap_or(schema), &path, inner);
    Diagnostic {
        file: file.to_owned(),
        line: loc.line().max(1),
        column: loc.column().max(1),
        message: format!("{prefix}{message}"),
        hint,
    }
}

/// The word to point at: an unknown key, else the last field name of the path (none for
/// a missing field, which is reported at the rule's start).
fn needle(e: &PathError) -> Option<String> {
    let inner = e.inner().to_string();
    if let Some(k) =
        backticked(&inner, "unknown field `").or_else(|| backticked(&inner, "unknown variant `"))
    {
        return Some(k);
    }
    if inner.contains("missing field") {
        return None;
    }
    e.path()
        .iter()
        .map(|s| s.to_string())
        .rfind(|s| s != "?" && s.parse::<usize>().is_err())
}

/// Where `word` (as a key, `word:`) first appears from the rule's start up to the next
/// rule's line; the rule's start when it does not.
fn within(text: &str, start: Location, end: Option<u64>, word: &str) -> (u64, u64) {
    for key in [format!("{word}:"), word.to_owned()] {
        if let Some(at) = find_from(text, start, end, &key) {
            return at;
        }
    }
    (start.line().max(1), start.column().max(1))
}

/// The first `key` from `start` (line and column) up to the line `end` (excluded).
fn find_from(text: &str, start: Location, end: Option<u64>, key: &str) -> Option<(u64, u64)> {
    let from = start.line().max(1) as usize;
    for (i, line) in text.lines().enumerate().skip(from - 1) {
        if end.is_some_and(|e| i as u64 + 1 >= e) {
            break;
        }
        let skip = if i + 1 == from {
            start.column().saturating_sub(1) as usize
        } else {
            0
        };
        let hay: String = line.chars().skip(skip).collect();
        if let Some(c) = hay.find(key) {
            let col = hay[..c].chars().count() + skip;
            return Some((i as u64 + 1, col as u64 + 1));
        }
    }
    None
}

fn backticked(text: &str, after: &str) -> Option<String> {
    let rest = text.split(after).nth(1)?;
    rest.split('`').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_broken_rule_is_reported_at_its_start() {
        let text = "name: x\nfaults:\n  - id: a\n    action: drop\n    nth: 2\n  - id: b\n    action: drop\n    times: many\nsteps:\n  - connect: {client: a, witihn: 1}\n  - wait_ms: soon\n  - create: {client: a}\n";
        let e = scenario_errors(text, "t.yaml");
        let lines: Vec<String> = e
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect();
        assert_eq!(e.len(), 4, "{lines:#?}");
        assert_eq!(
            lines[0],
            "5:5 faults[0]: nth: expected a list of non-negative integers, e.g. [2] (found integer `2`)"
        );
        assert!(
            lines[1].starts_with("8:5 faults[1]: times: expected a non-negative integer, e.g. 2"),
            "{lines:#?}"
        );
        assert!(
            lines[2].starts_with("10:26 steps[0]: connect: unknown field \"witihn\""),
            "{lines:#?}"
        );
        assert!(
            lines[3].starts_with("11:5 steps[1]: wait_ms: expected a non-negative integer"),
            "{lines:#?}"
        );
    }
}
