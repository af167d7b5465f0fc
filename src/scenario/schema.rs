//! JSON Schemas of the scenario and fixture formats, for editor completion
//! (`jmessage-mock schema`, committed as `docs/scenario.schema.json` and
//! `docs/fixtures.schema.json`).
//!
//! The schemas are generated from the same types the loader deserializes, so they
//! follow the serde attributes (names, defaults, unknown-key rules). They describe the
//! shape only: cross-references (users, events, fault ids, clients) are checked by
//! `jmessage-mock check`.

use super::model::{Fixtures, ScenarioFile};
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;

/// Which file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Scenario,
    Fixtures,
}

impl Kind {
    /// The committed file, relative to the repository root.
    pub fn committed_path(self) -> &'static str {
        match self {
            Kind::Scenario => "docs/scenario.schema.json",
            Kind::Fixtures => "docs/fixtures.schema.json",
        }
    }
}

fn generate<T: JsonSchema>(title: &str) -> Value {
    // Draft 7: the draft editors (VS Code, yaml-language-server) support best.
    let generator = SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), Value::String(title.into()));
    }
    schema
}

/// The schema as a value.
pub fn schema(kind: Kind) -> Value {
    match kind {
        Kind::Scenario => generate::<ScenarioFile>("jmessage-mock scenario"),
        Kind::Fixtures => generate::<Fixtures>("jmessage-mock fixtures"),
    }
}

/// The schema as the committed file holds it: pretty JSON and a final newline.
pub fn schema_text(kind: Kind) -> String {
    let mut s = serde_json::to_string_pretty(&schema(kind)).unwrap_or_default();
    s.push('\n');
    s
}
