//! Named contracts (`contract` at the root): `extend` chains, wildcard expansion and annotation
//! stripping, so `$contract.<name>(.path)` reads the same resolved contract the original does.

use indexmap::IndexMap;

use super::error::{ConfigErrorKind, Diagnostics, child};
use super::value::ConfigValue;

/// `extend` chains longer than this are refused rather than followed. Arbitrary; real chains
/// are two or three long.
const MAX_EXTEND_DEPTH: usize = 32;

/// Annotation keywords, removed from event schemas because validators ignore them.
const ANNOTATION_KEYS: &[&str] = &["description", "examples", "title", "$comment"];
/// Keywords whose value is one sub-schema.
const SCHEMA_KEYWORDS: &[&str] = &[
    "additionalItems",
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
];
/// Keywords whose value is an array of sub-schemas.
const SCHEMA_ARRAY_KEYWORDS: &[&str] = &["allOf", "anyOf", "items", "oneOf", "prefixItems"];
/// Keywords whose value maps author-chosen names to sub-schemas.
const NAME_MAP_KEYWORDS: &[&str] = &[
    "properties",
    "patternProperties",
    "dependentSchemas",
    "dependentRequired",
    "dependencies",
    "$defs",
    "definitions",
];

type Map = IndexMap<String, ConfigValue>;

/// Resolves every contract of `contracts` (already `$var`-resolved), reporting broken `extend`
/// chains at `<path>.<name>.extend`.
pub(crate) fn resolve_contracts(contracts: &Map, path: &str, diag: &mut Diagnostics) -> Map {
    let mut resolver = ContractResolver {
        contracts,
        path,
        resolved: Map::new(),
        resolving: Vec::new(),
        diag,
    };
    for name in contracts.keys() {
        resolver.resolve(name);
    }
    resolver.resolved
}

struct ContractResolver<'a, 'd> {
    contracts: &'a Map,
    path: &'a str,
    resolved: Map,
    resolving: Vec<String>,
    diag: &'d mut Diagnostics,
}

impl ContractResolver<'_, '_> {
    fn resolve(&mut self, name: &str) -> Map {
        if let Some(ConfigValue::Object(done)) = self.resolved.get(name) {
            return done.clone();
        }
        let entry_path = child(self.path, name);
        let entry = match self.contracts.get(name) {
            Some(ConfigValue::Object(entry)) => entry.clone(),
            _ => Map::new(),
        };

        let mut result = match entry.get("extend") {
            Some(ConfigValue::String(parent)) => {
                let parent = parent.clone();
                self.resolve_parent(name, &parent, &child(&entry_path, "extend"))
                    .map_or_else(|| entry.clone(), |p| merge_entries(&p, &entry))
            }
            _ => entry.clone(),
        };
        result.shift_remove("extend");

        if let Some(ConfigValue::Object(events)) = result.get("events") {
            let expanded = expand_wildcards(events);
            let stripped = expanded
                .into_iter()
                .map(|(entity, actions)| {
                    let actions = match actions {
                        ConfigValue::Object(actions) => ConfigValue::Object(
                            actions
                                .into_iter()
                                .map(|(action, schema)| (action, strip_annotations(&schema)))
                                .collect(),
                        ),
                        other => other,
                    };
                    (entity, actions)
                })
                .collect();
            result.insert("events".to_string(), ConfigValue::Object(stripped));
        }

        self.resolved
            .insert(name.to_string(), ConfigValue::Object(result.clone()));
        result
    }

    fn resolve_parent(&mut self, name: &str, parent: &str, extend_path: &str) -> Option<Map> {
        if !self.contracts.contains_key(parent) {
            self.diag.error(
                extend_path,
                ConfigErrorKind::ContractNotFound {
                    name: parent.to_string(),
                    known: self.contracts.keys().cloned().collect(),
                },
            );
            return None;
        }
        if self.resolving.iter().any(|n| n == parent) || parent == name {
            let mut chain = self.resolving.clone();
            chain.push(name.to_string());
            chain.push(parent.to_string());
            self.diag.error(
                extend_path,
                ConfigErrorKind::ContractExtendCycle {
                    chain: chain.join(" -> "),
                },
            );
            return None;
        }
        if self.resolving.len() >= MAX_EXTEND_DEPTH {
            self.diag.error(
                extend_path,
                ConfigErrorKind::TooDeep {
                    limit: MAX_EXTEND_DEPTH,
                },
            );
            return None;
        }
        self.resolving.push(name.to_string());
        let resolved = self.resolve(parent);
        self.resolving.pop();
        Some(resolved)
    }
}

/// Child metadata wins, `schema` merges deeply, `events` merge per entity and action. Like the
/// original, other keys of an extending contract are not kept.
fn merge_entries(parent: &Map, child: &Map) -> Map {
    let mut result = Map::new();
    for key in ["tagging", "description"] {
        if let Some(value) = child.get(key).or_else(|| parent.get(key)) {
            result.insert(key.to_string(), value.clone());
        }
    }
    match (parent.get("schema"), child.get("schema")) {
        (Some(ConfigValue::Object(p)), Some(ConfigValue::Object(c))) => {
            result.insert("schema".into(), ConfigValue::Object(merge_schemas(p, c)));
        }
        (p, c) => {
            if let Some(schema) = c.or(p) {
                result.insert("schema".into(), schema.clone());
            }
        }
    }
    let parent_events = parent.get("events").and_then(ConfigValue::as_object);
    let child_events = child.get("events").and_then(ConfigValue::as_object);
    if parent_events.is_some() || child_events.is_some() {
        let empty = Map::new();
        let (pe, ce) = (
            parent_events.unwrap_or(&empty),
            child_events.unwrap_or(&empty),
        );
        let mut merged = Map::new();
        for entity in pe.keys().chain(ce.keys()) {
            if merged.contains_key(entity) {
                continue;
            }
            let pa = pe
                .get(entity)
                .and_then(ConfigValue::as_object)
                .unwrap_or(&empty);
            let ca = ce
                .get(entity)
                .and_then(ConfigValue::as_object)
                .unwrap_or(&empty);
            let mut actions = Map::new();
            for action in pa.keys().chain(ca.keys()) {
                if actions.contains_key(action) {
                    continue;
                }
                let schema = match (pa.get(action), ca.get(action)) {
                    (Some(ConfigValue::Object(p)), Some(ConfigValue::Object(c))) => {
                        ConfigValue::Object(merge_schemas(p, c))
                    }
                    (p, c) => c.or(p).cloned().unwrap_or(ConfigValue::Object(Map::new())),
                };
                actions.insert(action.clone(), schema);
            }
            merged.insert(entity.clone(), ConfigValue::Object(actions));
        }
        result.insert("events".into(), ConfigValue::Object(merged));
    }
    result
}

/// Additive JSON-schema merge: `required` arrays are united, objects merge, the child wins
/// everywhere else.
pub(crate) fn merge_schemas(parent: &Map, child: &Map) -> Map {
    let mut result = parent.clone();
    for (key, child_value) in child {
        let merged = match (parent.get(key), child_value) {
            (Some(ConfigValue::Array(p)), ConfigValue::Array(c)) if key == "required" => {
                let mut union = p.clone();
                for item in c {
                    if !union.contains(item) {
                        union.push(item.clone());
                    }
                }
                ConfigValue::Array(union)
            }
            (Some(ConfigValue::Object(p)), ConfigValue::Object(c)) => {
                ConfigValue::Object(merge_schemas(p, c))
            }
            _ => child_value.clone(),
        };
        result.insert(key.clone(), merged);
    }
    result
}

/// Merges `*.*`, `*.<action>` and `<entity>.*` into every concrete entity/action, keeping the
/// `*` entity for reference.
fn expand_wildcards(events: &Map) -> Map {
    let schema_at = |entity: &str, action: &str| -> Option<&Map> {
        events.get(entity)?.get(action)?.as_object()
    };
    let mut result = Map::new();
    for (entity, actions) in events {
        if entity == "*" {
            continue;
        }
        let Some(actions) = actions.as_object() else {
            result.insert(entity.clone(), actions.clone());
            continue;
        };
        let mut expanded = Map::new();
        for action in actions.keys() {
            let mut merged = Map::new();
            let mut levels = vec![schema_at("*", "*")];
            if action != "*" {
                levels.push(schema_at("*", action));
                levels.push(schema_at(entity, "*"));
            }
            levels.push(schema_at(entity, action));
            for level in levels.into_iter().flatten() {
                merged = merge_schemas(&merged, level);
            }
            expanded.insert(action.clone(), ConfigValue::Object(merged));
        }
        result.insert(entity.clone(), ConfigValue::Object(expanded));
    }
    if let Some(wild) = events.get("*") {
        result.insert("*".to_string(), wild.clone());
    }
    result
}

/// Removes annotation keywords at schema positions only; data keys named `title` survive.
fn strip_annotations(schema: &ConfigValue) -> ConfigValue {
    let ConfigValue::Object(map) = schema else {
        return schema.clone();
    };
    let mut result = Map::new();
    for (key, value) in map {
        let key_str = key.as_str();
        if ANNOTATION_KEYS.contains(&key_str) {
            continue;
        }
        let stripped = match value {
            ConfigValue::Object(names) if NAME_MAP_KEYWORDS.contains(&key_str) => {
                ConfigValue::Object(
                    names
                        .iter()
                        .map(|(n, v)| (n.clone(), strip_annotations(v)))
                        .collect(),
                )
            }
            ConfigValue::Array(items) if SCHEMA_ARRAY_KEYWORDS.contains(&key_str) => {
                ConfigValue::Array(items.iter().map(strip_annotations).collect())
            }
            ConfigValue::Object(_) if SCHEMA_KEYWORDS.contains(&key_str) => {
                strip_annotations(value)
            }
            other => other.clone(),
        };
        result.insert(key.clone(), stripped);
    }
    ConfigValue::Object(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn resolve(input: serde_json::Value) -> Result<serde_json::Value, String> {
        let ConfigValue::Object(map) = ConfigValue::from_json(&input) else {
            panic!("test input must be an object");
        };
        let mut diag = Diagnostics::new(Path::new("f.json"));
        let out = resolve_contracts(&map, "contract", &mut diag);
        diag.finish()
            .map(|_| serde_json::to_value(ConfigValue::Object(out)).unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn extend_merges_required_and_properties_and_strips_annotations() {
        let out = resolve(json!({
            "base": {"tagging": 1, "events": {"page": {"view": {
                "required": ["a"], "properties": {"title": {"type": "string", "description": "x"}}
            }}}},
            "web": {"extend": "base", "events": {"page": {"view": {
                "required": ["b"], "description": "dropped"
            }}}}
        }))
        .unwrap();
        assert_eq!(
            out["web"],
            json!({"tagging": 1, "events": {"page": {"view": {
                "required": ["a", "b"], "properties": {"title": {"type": "string"}}
            }}}})
        );
    }

    #[test]
    fn wildcards_merge_into_concrete_actions() {
        let out = resolve(json!({"c": {"events": {
            "*": {"*": {"required": ["id"]}},
            "order": {"complete": {"required": ["total"]}}
        }}}))
        .unwrap();
        assert_eq!(
            out["c"]["events"]["order"]["complete"],
            json!({"required": ["id", "total"]})
        );
    }

    #[test]
    fn extend_cycles_and_unknown_parents_are_errors() {
        let error = resolve(json!({"a": {"extend": "b"}, "b": {"extend": "a"}})).unwrap_err();
        assert!(
            error.contains("Circular extend chain detected: a -> b -> a"),
            "{error}"
        );
        let error = resolve(json!({"a": {"extend": "zzz"}})).unwrap_err();
        assert!(
            error.contains("contract.a.extend: Contract \"zzz\" not found"),
            "{error}"
        );
    }
}
