//! Network presets (`serve --network PRESET`, `GET`/`POST /__admin/network`): named sets
//! of fault rules that make a real-time session feel like a weak network
//! (docs/admin-api.md, "Network presets", lists each preset's rules).
//!
//! A preset's rules are ordinary fault rules with ids `network:PRESET:…`, so they show in
//! `GET /__admin/faults` and in the journal's `fault`/`action` fields. Switching preset
//! removes the previous preset's rules and leaves every other rule alone; `none` removes
//! them all. Reset and scenario loading replace every rule, the preset's included.

use crate::faults::{FaultLayer, FaultSpec, RuleError};
use serde_json::{json, Value};

/// Prefix of every preset rule id.
pub const PREFIX: &str = "network:";

/// The preset names, `none` first.
pub const PRESETS: &[&str] = &["none", "3g", "lossy-wifi", "flaky", "offline-bursts"];

/// The rules of `preset` as JSON (the fault-rule syntax of the admin API).
fn rules_json(preset: &str) -> Option<Vec<Value>> {
    let out = |kind: &str| json!({"direction": "out", "kind": kind});
    let rules = match preset {
        "none" => vec![],
        "3g" => vec![
            json!({"id": "up", "when": {"direction": "in", "kind": "request"},
                   "action": {"delay": {"lognormal": {"median": 120, "sigma": 0.4}}}, "seed": 31}),
            json!({"id": "down", "when": {"direction": "out"},
                   "action": {"delay": {"lognormal": {"median": 150, "sigma": 0.4}}}, "seed": 32}),
            json!({"id": "bandwidth", "when": {"direction": "out"}, "action": {"throttle": 48_000}}),
        ],
        "lossy-wifi" => vec![
            json!({"id": "jitter", "when": {"direction": "out"},
                   "action": {"delay": {"uniform": [5, 80]}}, "seed": 41}),
            json!({"id": "lost-request", "when": {"direction": "in", "kind": "request"},
                   "action": "drop", "probability": 0.05, "seed": 42}),
            json!({"id": "lost-ack", "when": out("ack"), "action": "drop",
                   "probability": 0.05, "seed": 43}),
        ],
        "flaky" => vec![
            json!({"id": "slow", "when": {"direction": "out"},
                   "action": {"delay": {"lognormal": {"median": 250, "sigma": 1.0}}}, "seed": 51}),
            json!({"id": "drop-link", "when": {"direction": "in", "kind": "request"},
                   "action": {"close": {"abrupt": true}}, "probability": 0.03, "seed": 52}),
            json!({"id": "stall", "when": out("response"), "action": "drop",
                   "probability": 0.02, "seed": 53}),
        ],
        "offline-bursts" => vec![
            json!({"id": "outage", "when": {"direction": "in", "kind": "request"},
                   "action": {"restart": {"down_ms": 8000}}, "probability": 0.05, "seed": 61}),
            json!({"id": "latency", "when": {"direction": "out"},
                   "action": {"delay": {"uniform": [20, 120]}}, "seed": 62}),
        ],
        _ => return None,
    };
    Some(rules)
}

/// The fault rules of `preset` (ids prefixed), or `None` for an unknown name.
pub fn rules(preset: &str) -> Option<Vec<FaultSpec>> {
    let mut specs = Vec::new();
    for mut r in rules_json(preset)? {
        let id = r["id"].as_str().unwrap_or("rule").to_owned();
        r["id"] = json!(format!("{PREFIX}{preset}:{id}"));
        match serde_json::from_value::<FaultSpec>(r) {
            Ok(spec) => specs.push(spec),
            Err(e) => {
                tracing::error!("network preset {preset}: rule {id}: {e}");
                return None;
            }
        }
    }
    Some(specs)
}

/// Why a preset name is refused, with a suggestion.
pub fn unknown(preset: &str) -> String {
    let hint = crate::scenario::suggest(preset, PRESETS.iter().copied())
        .unwrap_or_else(|| format!("known: {}", PRESETS.join(", ")));
    format!("unknown network preset {preset:?}; {hint}")
}

/// Switches `faults` to `preset`: removes the rules of any preset, adds this one's.
pub fn apply(faults: &FaultLayer, preset: &str) -> Result<(), String> {
    let specs = rules(preset).ok_or_else(|| unknown(preset))?;
    for r in faults.rules() {
        if r.spec.id.starts_with(PREFIX) {
            match faults.remove(&r.spec.id) {
                Ok(()) | Err(RuleError::Unknown(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    for spec in specs {
        faults.add(spec).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The preset whose rules are installed now (`none` when there is none).
pub fn current(faults: &FaultLayer) -> String {
    faults
        .rules()
        .iter()
        .find_map(|r| {
            let rest = r.spec.id.strip_prefix(PREFIX)?;
            Some(rest.split(':').next().unwrap_or(rest).to_owned())
        })
        .unwrap_or_else(|| "none".to_owned())
}

/// `GET /__admin/network`'s body: the current preset and every preset's rules.
pub fn listing(faults: &FaultLayer) -> Value {
    let presets: serde_json::Map<String, Value> = PRESETS
        .iter()
        .map(|p| (p.to_string(), json!(rules(p).unwrap_or_default())))
        .collect();
    json!({"current": current(faults), "presets": presets})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_unknown_names_get_a_hint() {
        for p in PRESETS {
            assert!(rules(p).is_some(), "{p}");
        }
        assert!(rules("5g").is_none());
        assert!(
            unknown("lossy_wifi").contains("lossy-wifi"),
            "{}",
            unknown("lossy_wifi")
        );
        let layer = FaultLayer::new(10);
        apply(&layer, "3g").expect("3g");
        assert_eq!(current(&layer), "3g");
        apply(&layer, "flaky").expect("flaky");
        assert_eq!(current(&layer), "flaky");
        assert!(layer
            .rules()
            .iter()
            .all(|r| r.spec.id.starts_with("network:flaky:")));
        apply(&layer, "none").expect("none");
        assert!(layer.rules().is_empty());
    }
}
