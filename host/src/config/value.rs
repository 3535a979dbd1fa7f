//! The resolved value tree: JSON plus the three things JSON cannot say, inline JavaScript
//! (`$code:`), values read from the flow's `process.env` when it starts (`$env`, `$secret`) and
//! references to store instances (`$store.`). The bundler turns the extra nodes into code.

use indexmap::IndexMap;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A config value after `$var`, `$flow` and `$contract` are substituted.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// JSON `null`.
    Null,
    /// JSON boolean.
    Bool(bool),
    /// JSON number, kept exactly as parsed.
    Number(serde_json::Number),
    /// Plain string.
    String(String),
    /// JSON array.
    Array(Vec<ConfigValue>),
    /// JSON object in file order.
    Object(IndexMap<String, ConfigValue>),
    /// Inline JavaScript from a `$code:` string, without the prefix. Checked only lightly at
    /// load time; QuickJS compiles it when the flow is bundled.
    Code(String),
    /// A value read from the flow's `process.env` when the flow factory runs.
    Runtime(RuntimeRef),
    /// `$store.<id>`: the instance of the flow's store `<id>`.
    Store(String),
}

/// A read of the flow's environment that happens inside the guest, when the flow starts.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeRef {
    /// `$env.NAME` or `$env.NAME:default` as the whole string; becomes
    /// `process.env["NAME"] ?? "default"` (or a plain read without default).
    Env {
        /// Variable name.
        name: String,
        /// Text after the colon, if any.
        default: Option<String>,
    },
    /// `$secret.NAME`; becomes a guarded read that throws
    /// `WalkerOS: required secret "NAME" is not set` when the value is missing or empty.
    Secret {
        /// Variable name.
        name: String,
    },
    /// A string with `$env` references inside literal text; becomes a template literal.
    Template(Vec<TemplatePart>),
}

/// One piece of a [`RuntimeRef::Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// An environment read, as in [`RuntimeRef::Env`].
    Env {
        /// Variable name.
        name: String,
        /// Text after the colon, if any.
        default: Option<String>,
    },
}

impl ConfigValue {
    /// Converts parsed JSON without interpreting any reference.
    pub fn from_json(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(*b),
            serde_json::Value::Number(n) => Self::Number(n.clone()),
            serde_json::Value::String(s) => Self::String(s.clone()),
            serde_json::Value::Array(items) => {
                Self::Array(items.iter().map(Self::from_json).collect())
            }
            serde_json::Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The string, if this is a plain string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The map, if this is an object.
    pub fn as_object(&self) -> Option<&IndexMap<String, ConfigValue>> {
        match self {
            Self::Object(map) => Some(map),
            _ => None,
        }
    }

    /// Looks up a key of an object.
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.as_object().and_then(|map| map.get(key))
    }

    /// True when the tree holds only JSON (no code, run-time reads or store references), so
    /// the bundler can ship it as data rather than as code.
    pub fn is_plain(&self) -> bool {
        match self {
            Self::Null | Self::Bool(_) | Self::Number(_) | Self::String(_) => true,
            Self::Array(items) => items.iter().all(Self::is_plain),
            Self::Object(map) => map.values().all(Self::is_plain),
            Self::Code(_) | Self::Runtime(_) | Self::Store(_) => false,
        }
    }

    /// Type name with an article, for "expected ..., found ..." messages.
    pub(crate) fn described(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
            Self::Code(_) => "inline code",
            Self::Runtime(_) => "a run-time $env/$secret value",
            Self::Store(_) => "a store reference",
        }
    }

    /// Bare type name, as in the original's "resolves to non-scalar (object)".
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::Number(_) => "number",
            Self::String(_) => "string",
            Self::Array(_) => "array",
            Self::Object(_) => "object",
            Self::Code(_) => "code",
            Self::Runtime(_) => "run-time value",
            Self::Store(_) => "store",
        }
    }
}

/// Serializes plain JSON as itself and every extra node as a marker object with the single
/// reserved key `$flowhost`:
///
/// | node | marker |
/// | --- | --- |
/// | `Code(js)` | `{"$flowhost": "code", "source": js}` |
/// | `Runtime(Env)` | `{"$flowhost": "env", "name": N, "default": D}` (`default` only if set) |
/// | `Runtime(Secret)` | `{"$flowhost": "secret", "name": N}` |
/// | `Runtime(Template)` | `{"$flowhost": "template", "parts": [string or env marker, ...]}` |
/// | `Store(id)` | `{"$flowhost": "store", "id": id}` |
impl Serialize for ConfigValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    out.serialize_entry(k, v)?;
                }
                out.end()
            }
            Self::Code(source) => {
                let mut out = serializer.serialize_map(Some(2))?;
                out.serialize_entry("$flowhost", "code")?;
                out.serialize_entry("source", source)?;
                out.end()
            }
            Self::Store(id) => {
                let mut out = serializer.serialize_map(Some(2))?;
                out.serialize_entry("$flowhost", "store")?;
                out.serialize_entry("id", id)?;
                out.end()
            }
            Self::Runtime(runtime) => runtime.serialize(serializer),
        }
    }
}

impl Serialize for RuntimeRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Env { name, default } => serialize_env(serializer, name, default.as_deref()),
            Self::Secret { name } => {
                let mut out = serializer.serialize_map(Some(2))?;
                out.serialize_entry("$flowhost", "secret")?;
                out.serialize_entry("name", name)?;
                out.end()
            }
            Self::Template(parts) => {
                let mut out = serializer.serialize_map(Some(2))?;
                out.serialize_entry("$flowhost", "template")?;
                out.serialize_entry("parts", parts)?;
                out.end()
            }
        }
    }
}

impl Serialize for TemplatePart {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => serializer.serialize_str(text),
            Self::Env { name, default } => serialize_env(serializer, name, default.as_deref()),
        }
    }
}

fn serialize_env<S: Serializer>(
    serializer: S,
    name: &str,
    default: Option<&str>,
) -> Result<S::Ok, S::Error> {
    let mut out = serializer.serialize_map(Some(if default.is_some() { 3 } else { 2 }))?;
    out.serialize_entry("$flowhost", "env")?;
    out.serialize_entry("name", name)?;
    if let Some(default) = default {
        out.serialize_entry("default", default)?;
    }
    out.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_json_round_trips_unchanged() {
        let input = json!({"b": [1, 2.5, "x", null, true], "a": {"z": 1, "y": 2}});
        let value = ConfigValue::from_json(&input);
        assert!(value.is_plain());
        assert_eq!(serde_json::to_value(&value).unwrap(), input);
    }

    #[test]
    fn runtime_nodes_serialize_as_marker_objects() {
        let value = ConfigValue::Array(vec![
            ConfigValue::Runtime(RuntimeRef::Env {
                name: "URL".into(),
                default: Some("http://x".into()),
            }),
            ConfigValue::Runtime(RuntimeRef::Secret { name: "KEY".into() }),
            ConfigValue::Runtime(RuntimeRef::Template(vec![
                TemplatePart::Text("Bearer ".into()),
                TemplatePart::Env {
                    name: "TOKEN".into(),
                    default: None,
                },
            ])),
            ConfigValue::Code("(e) => e".into()),
            ConfigValue::Store("cache".into()),
        ]);
        assert!(!value.is_plain());
        assert_eq!(
            serde_json::to_value(&value).unwrap(),
            json!([
                {"$flowhost": "env", "name": "URL", "default": "http://x"},
                {"$flowhost": "secret", "name": "KEY"},
                {"$flowhost": "template", "parts": [
                    "Bearer ", {"$flowhost": "env", "name": "TOKEN"}
                ]},
                {"$flowhost": "code", "source": "(e) => e"},
                {"$flowhost": "store", "id": "cache"}
            ])
        );
    }
}
